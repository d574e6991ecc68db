/* drover-agent — flags and config, then agent_run. Every flag can also be
 * set in the --config file (see common/config.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "gpu.h"
#include "log.h"
#include "path.h"
#include "units.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: drover-agent [options]\n"
               "  --scheduler ENDPOINT   droverd's agents endpoint [tcp://127.0.0.1:7070]\n"
               "  --work-dir DIR         where steps run [/var/lib/drover-agent]\n"
               "  --name NAME            agent name [hostname]\n"
               "  --cpus N               cpus offered (e.g. 4, 0.5) [detected]\n"
               "  --memory QTY           memory offered (e.g. 8Gi) [detected]\n"
               "  --gpus N|I,J|none      GPUs offered: a count, device indexes, or none\n"
               "                         [detected with nvidia-smi or /proc/driver/nvidia]\n"
               "  --runtime NAME         how steps run: process, oci, podman, docker or auto\n"
               "                         (oci = runc or crun; NAME:/path picks the binary) [auto]\n"
               "  --labels k=v,...       labels steps can select with placement.labels\n"
               "  --heartbeat DUR        heartbeat interval [1s]\n"
               "  --kill-grace DUR       SIGTERM → SIGKILL delay when stopping a step [10s]\n"
               "  --log-limit BYTES      log bytes sent per attempt [8Mi]\n"
               "  --cache-size BYTES     bound of WORK_DIR/cache (inputs, restored\n"
               "                         checkpoints): least recently used blobs are\n"
               "                         evicted [a quarter of its disk]\n"
               "  --keep-work-dirs       keep each attempt's directory after it ends\n"
               "spot nodes:\n"
               "  --spot true|false      this is a spot/preemptible node [label spot=, else\n"
               "                         asked from the metadata below, else false]\n"
               "  --price N              its price per hour, for cost estimates [0]\n"
               "  --aws-metadata URL     watch AWS IMDSv2 for spot interruptions and rebalance\n"
               "                         recommendations ('on' = http://169.254.169.254)\n"
               "  --gcp-metadata URL     watch GCP for preemption and maintenance events\n"
               "                         ('on' = http://metadata.google.internal)\n"
               "  --azure-metadata URL   watch Azure Scheduled Events for Preempt/Terminate\n"
               "                         ('on' = http://169.254.169.254)\n"
               "  --metadata-poll DUR    between metadata polls [1s]\n"
               "  --stop-timeout DUR     on SIGTERM, time to hand steps back before exiting;\n"
               "                         match the unit's TimeoutStopSec [90s]\n"
               "  --upload-margin DUR    kept before a preemption deadline for the last\n"
               "                         checkpoint's upload [10s]\n"
               "  --drill-exit           at a drill's deadline (drover agent preempt) exit,\n"
               "                         as a reclaimed node would [return to service]\n"
               "security:\n"
               "  --key FILE             this agent's secret key (drover keygen NAME)\n"
               "  --scheduler-key FILE   droverd's public key (droverd.key)\n"
               "  --join-token TOKEN     join with a token (drover token create): --key FILE\n"
               "                         (NAME.key_secret) is made here if it does not exist,\n"
               "                         and droverd authorizes it for --name\n"
               "  --config FILE          YAML file of the same settings (key: value)\n"
               "  --debug                verbose logging\n"
               "  -V, --version          print the version and exit\n"
               "  -h, --help             print this help and exit\n");
}

typedef struct {
    agent_config_t cfg;
    char *owned[32];
    int n_owned;
    char *resolved[4]; /* the absolute paths of resolve_paths */
    int n_resolved;
} options_t;

static const char *keep(options_t *o, const char *v)
{
    if (o->n_owned == 32)
        return v;
    return o->owned[o->n_owned++] = xstrdup(v);
}

static int parse_bool(const char *v)
{
    return strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0;
}

/* A metadata base URL: "on" = the provider's well-known address. */
static int metadata_url(options_t *o, const char **field, const char *value, const char *dflt)
{
    if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0 &&
        strcmp(value, "on") != 0)
        return -EINVAL;
    *field = strcmp(value, "on") == 0 ? dflt : keep(o, value);
    return 0;
}

/* *field made absolute (owned by o) when it is a relative path: the steps
 * run in directories of their own, and runc runs from the bundle. */
static int absolute(options_t *o, const char **field)
{
    return path_option_absolute("drover-agent", field, o->resolved, &o->n_resolved);
}

/* Every path option made absolute at start: a relative --work-dir would
 * register and then fail every step ("the attempt dir must be an absolute
 * path"). The runtime's NAME:PATH has its PATH resolved the same way. */
static int resolve_paths(options_t *o)
{
    agent_config_t *c = &o->cfg;
    if (absolute(o, &c->work_dir) < 0 || absolute(o, &c->key) < 0 ||
        absolute(o, &c->scheduler_key) < 0)
        return -1;
    const char *colon = c->runtime ? strchr(c->runtime, ':') : NULL;
    if (colon && colon[1] && colon[1] != '/') {
        const char *bin = colon + 1;
        if (absolute(o, &bin) < 0)
            return -1;
        c->runtime = o->resolved[o->n_resolved++] =
            xasprintf("%.*s:%s", (int)(colon - c->runtime), c->runtime, bin);
    }
    return 0;
}

/* Apply one setting; shared by flags and the config file. */
static int apply(const char *key, const char *value, void *arg)
{
    options_t *o = arg;
    agent_config_t *c = &o->cfg;
    if (strcmp(key, "scheduler") == 0)
        c->scheduler = keep(o, value);
    else if (strcmp(key, "work-dir") == 0)
        c->work_dir = keep(o, value);
    else if (strcmp(key, "name") == 0) {
        if (!util_valid_name(value, strlen(value), 63, NULL))
            return -EINVAL;
        c->name = keep(o, value);
    } else if (strcmp(key, "cpus") == 0)
        return spec_parse_cpu(value, &c->cpu_milli);
    else if (strcmp(key, "memory") == 0)
        return spec_parse_memory(value, &c->memory_bytes);
    else if (strcmp(key, "gpus") == 0) {
        gpu_info_t probe = {0};
        if (gpu_override(&probe, value) < 0)
            return -EINVAL;
        c->gpus = keep(o, value);
    } else if (strcmp(key, "runtime") == 0)
        c->runtime = keep(o, value);
    else if (strcmp(key, "labels") == 0) {
        util_free_kvs(c->labels, c->n_labels);
        return util_parse_kv_list(value, &c->labels, &c->n_labels);
    } else if (strcmp(key, "heartbeat") == 0) {
        int rc = spec_parse_duration(value, &c->heartbeat_ms);
        return rc < 0 || c->heartbeat_ms == 0 ? -EINVAL : 0;
    } else if (strcmp(key, "kill-grace") == 0)
        return spec_parse_duration(value, &c->kill_grace_ms);
    else if (strcmp(key, "log-limit") == 0)
        return spec_parse_memory(value, &c->log_limit);
    else if (strcmp(key, "keep-work-dirs") == 0)
        c->keep_work_dirs = parse_bool(value);
    else if (strcmp(key, "spot") == 0) {
        if (strcmp(value, "true") && strcmp(value, "false"))
            return -EINVAL;
        c->spot = parse_bool(value);
    } else if (strcmp(key, "price") == 0) {
        char *end;
        c->price = strtod(value, &end);
        return *end || !(c->price >= 0 && c->price < 1e6) ? -EINVAL : 0;
    } else if (strcmp(key, "aws-metadata") == 0)
        return metadata_url(o, &c->aws_url, value, "http://169.254.169.254");
    else if (strcmp(key, "gcp-metadata") == 0)
        return metadata_url(o, &c->gcp_url, value, "http://metadata.google.internal");
    else if (strcmp(key, "azure-metadata") == 0)
        return metadata_url(o, &c->azure_url, value, "http://169.254.169.254");
    else if (strcmp(key, "metadata-poll") == 0) {
        int rc = spec_parse_duration(value, &c->metadata_poll_ms);
        return rc < 0 || c->metadata_poll_ms == 0 ? -EINVAL : 0;
    } else if (strcmp(key, "stop-timeout") == 0)
        return spec_parse_duration(value, &c->stop_timeout_ms);
    else if (strcmp(key, "upload-margin") == 0)
        return spec_parse_duration(value, &c->upload_margin_ms);
    else if (strcmp(key, "cache-size") == 0)
        return spec_parse_memory(value, &c->cache_size);
    else if (strcmp(key, "drill-exit") == 0)
        c->drill_exit = parse_bool(value);
    else if (strcmp(key, "key") == 0)
        c->key = keep(o, value);
    else if (strcmp(key, "scheduler-key") == 0)
        c->scheduler_key = keep(o, value);
    else if (strcmp(key, "join-token") == 0)
        c->join_token = keep(o, value);
    else if (strcmp(key, "debug") == 0)
        log_set_debug(parse_bool(value));
    else
        return -ENOENT;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"scheduler", required_argument, 0, 0},
                                             {"work-dir", required_argument, 0, 0},
                                             {"name", required_argument, 0, 0},
                                             {"cpus", required_argument, 0, 0},
                                             {"memory", required_argument, 0, 0},
                                             {"gpus", required_argument, 0, 0},
                                             {"labels", required_argument, 0, 0},
                                             {"runtime", required_argument, 0, 0},
                                             {"heartbeat", required_argument, 0, 0},
                                             {"kill-grace", required_argument, 0, 0},
                                             {"log-limit", required_argument, 0, 0},
                                             {"keep-work-dirs", no_argument, 0, 0},
                                             {"config", required_argument, 0, 0},
                                             {"debug", no_argument, 0, 0},
                                             {"spot", required_argument, 0, 0},
                                             {"price", required_argument, 0, 0},
                                             {"aws-metadata", required_argument, 0, 0},
                                             {"gcp-metadata", required_argument, 0, 0},
                                             {"azure-metadata", required_argument, 0, 0},
                                             {"metadata-poll", required_argument, 0, 0},
                                             {"stop-timeout", required_argument, 0, 0},
                                             {"upload-margin", required_argument, 0, 0},
                                             {"drill-exit", no_argument, 0, 0},
                                             {"cache-size", required_argument, 0, 0},
                                             {"key", required_argument, 0, 0},
                                             {"scheduler-key", required_argument, 0, 0},
                                             {"join-token", required_argument, 0, 0},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    options_t o = {0};
    int rc = 1;

    log_init("drover-agent");
    log_daemon_timestamps();
    agent_config_defaults(&o.cfg);
    int status = config_parse_args(argc, argv, longopts, apply, &o, NULL, usage);
    if (status >= 0)
        return status;
    agent_t *a = resolve_paths(&o) == 0 ? agent_new(&o.cfg) : NULL;
    if (a) {
        rc = agent_run(a);
        agent_destroy(&a);
    }
    util_free_kvs(o.cfg.labels, o.cfg.n_labels);
    for (int i = 0; i < o.n_owned; i++)
        free(o.owned[i]);
    for (int i = 0; i < o.n_resolved; i++)
        free(o.resolved[i]);
    return rc;
}
