/* droverd — the drover scheduler daemon: flags and config, then sched_run.
 * Every flag can also be set in the --config file (see common/config.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "path.h"
#include "scheduler.h"
#include "units.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: droverd [options]\n"
               "  --state-dir DIR        state (LMDB) directory [/var/lib/drover]\n"
               "  --listen ENDPOINT      agents endpoint [tcp://127.0.0.1:7070]\n"
               "  --api ENDPOINT         API endpoint [ipc://STATE_DIR/api.sock]\n"
               "  --config FILE          YAML file of the same settings (key: value)\n"
               "  --agent-timeout DUR    declare an agent lost after this silence [10s]\n"
               "  --log-limit BYTES      stored log bytes per attempt [8Mi]\n"
               "  --retention DUR        delete finished runs (logs, unreferenced artifacts)\n"
               "                         older than this; 0 keeps them [720h]\n"
               "  --max-system-errors N  attempts of a step that may end in system errors (an\n"
               "                         agent's full disk, no process to be had: retried\n"
               "                         elsewhere, not its retries) before it fails [3]\n"
               "  --events-max N         the event log (drover events) keeps the newest N\n"
               "                         events (by whole commits), pruned at start and\n"
               "                         hourly from the oldest; 0: no bound [1000000]\n"
               "  --events-max-age DUR   and none older than this; 0: no bound [168h]\n"
               "limits (each violation is refused with a reason and counted; drover status):\n"
               "  --max-items N          items of one fan-out [1000000 at run time and in\n"
               "                         a for_each range, 100000 in a literal list]\n"
               "  --max-depth N          how deep groups (DAG templates) may nest, recursion\n"
               "                         included; a spec's max_depth may only lower it [100]\n"
               "  --max-tasks N          tasks one run may have, items and groups' steps\n"
               "                         included; a fan-out or group beyond fails [10000000]\n"
               "  --max-schedules N      schedules droverd keeps; one more is refused [1000]\n"
               "  --max-spec BYTES       size of a submitted spec [1Mi]\n"
               "  --max-steps N          steps of one run [10000]\n"
               "  --max-param BYTES      one param value [64Ki]\n"
               "  --max-labels N         placement labels of a step, and an agent's [64]\n"
               "  --max-message BYTES    one message on the agents or API socket [64Mi]\n"
               "  --api-peer-queue BYTES replies held for one API client; one that does not\n"
               "                         read them is dropped (at least 64Ki) [32Mi]\n"
               "  --api-waiters N        event requests (drover events -f, run watch) held\n"
               "                         until an event commits, in all; more are answered at\n"
               "                         once [1024]\n"
               "security (README: Running on several machines):\n"
               "  --key FILE             droverd's secret key (drover keygen droverd): CURVE on\n"
               "                         the agents socket and a TCP API\n"
               "  --authorized-keys DIR  agents' public keys, one file each (SIGHUP reloads)\n"
               "  --api-keys DIR         CLI users' public keys with roles admin, submit, read\n"
               "  --insecure             allow non-loopback endpoints without keys (warned)\n"
               "node pools (README: Autoscaling node pools):\n"
               "  --pools JSON           the pools (in the config file: a YAML list `pools:`)\n"
               "  --advertise ENDPOINT   the agents endpoint new nodes connect to [--listen,\n"
               "                         with 0.0.0.0 or * read as 127.0.0.1]\n"
               "  --debug                verbose logging\n"
               "  -V, --version          print the version and exit\n"
               "  -h, --help             print this help and exit\n");
}

typedef struct {
    sched_config_t cfg;
    char *owned[16]; /* strings from the config file */
    int n_owned;
    char *resolved[4]; /* the absolute paths of resolve_paths */
    int n_resolved;
    pool_config_t *pools; /* the last --pools (cfg.pools) */
} options_t;

static const char *keep(options_t *o, const char *v)
{
    if (o->n_owned == 16)
        return v;
    return o->owned[o->n_owned++] = xstrdup(v);
}

/* *field made absolute (owned by o) when it is a relative path. */
static int absolute(options_t *o, const char **field)
{
    return path_option_absolute("droverd", field, o->resolved, &o->n_resolved);
}

/* Every path option made absolute at start, as drover-agent does, so what
 * the log and the API's socket name is where the files are whatever the
 * daemon's (or a reload's) current directory. */
static int resolve_paths(options_t *o)
{
    sched_config_t *c = &o->cfg;
    return absolute(o, &c->state_dir) < 0 || absolute(o, &c->key) < 0 ||
                   absolute(o, &c->authorized_keys) < 0 || absolute(o, &c->api_keys) < 0
               ? -1
               : 0;
}

/* Apply one setting; shared by flags and the config file. */
static int apply(const char *key, const char *value, void *arg)
{
    options_t *o = arg;
    sched_config_t *c = &o->cfg;
    if (strcmp(key, "state-dir") == 0)
        c->state_dir = keep(o, value);
    else if (strcmp(key, "listen") == 0)
        c->listen = keep(o, value);
    else if (strcmp(key, "api") == 0)
        c->api = keep(o, value);
    else if (strcmp(key, "agent-timeout") == 0)
        return spec_parse_duration(value, &c->agent_timeout_ms);
    else if (strcmp(key, "log-limit") == 0)
        return spec_parse_memory(value, &c->log_limit);
    else if (strcmp(key, "events-max-age") == 0)
        return strcmp(value, "0") == 0 ? (c->events_max_age_ms = 0, 0)
                                       : spec_parse_duration(value, &c->events_max_age_ms);
    else if (strcmp(key, "retention") == 0)
        return strcmp(value, "0") == 0 ? (c->retention_ms = 0, 0)
                                       : spec_parse_duration(value, &c->retention_ms);
    else if (strcmp(key, "max-items") == 0) {
        char *end;
        unsigned long long n = strtoull(value, &end, 10);
        if (!*value || *end || n == 0 || n > 100000000ULL)
            return -EINVAL;
        c->max_items = (size_t)n;
        c->spec_limits.max_range_items = (size_t)n; /* a range's items are made at run time */
        if (n < c->spec_limits.max_items)
            c->spec_limits.max_items = (size_t)n; /* lowers the literal list's cap too */
    } else if (strcmp(key, "max-message") == 0 || strcmp(key, "max-spec") == 0 ||
               strcmp(key, "max-param") == 0) {
        uint64_t n;
        /* a message must hold a blob chunk (256 KiB) and its envelope */
        uint64_t min = key[4] == 'm' ? 512ull << 10 : 1;
        if (spec_parse_memory(value, &n) < 0 || n < min || n > (1ull << 30))
            return -EINVAL;
        *(key[4] == 'm'   ? &c->max_message
          : key[4] == 's' ? &c->spec_limits.max_bytes
                          : &c->spec_limits.max_param_bytes) = (size_t)n;
    } else if (strcmp(key, "api-peer-queue") == 0) {
        uint64_t n;
        if (spec_parse_memory(value, &n) < 0 || n < (64u << 10) || n > (1ull << 40))
            return -EINVAL;
        c->api_peer_queue = (size_t)n;
    } else if (strcmp(key, "max-tasks") == 0 || strcmp(key, "max-schedules") == 0) {
        char *end;
        unsigned long long n = strtoull(value, &end, 10);
        if (!*value || *end || n == 0 || n > 1000000000ULL)
            return -EINVAL;
        *(key[4] == 't' ? &c->max_run_tasks : &c->max_schedules) = (size_t)n;
    } else if (strcmp(key, "api-waiters") == 0) {
        char *end;
        unsigned long n = strtoul(value, &end, 10);
        if (!*value || *end || *value == '-' || n > 1000000)
            return -EINVAL;
        c->api_waiters = (uint32_t)n;
    } else if (strcmp(key, "events-max") == 0) {
        char *end;
        unsigned long long n = strtoull(value, &end, 10);
        if (!*value || *end || *value == '-' || n > (1ULL << 40))
            return -EINVAL;
        c->events_max = n;
    } else if (strcmp(key, "max-depth") == 0) {
        char *end;
        unsigned long n = strtoul(value, &end, 10);
        if (!*value || *end || n == 0 || n > 1000)
            return -EINVAL;
        c->max_depth = (uint32_t)n;
    } else if (strcmp(key, "max-system-errors") == 0) {
        char *end;
        unsigned long n = strtoul(value, &end, 10);
        if (!*value || *end || n == 0 || n > 1000)
            return -EINVAL;
        c->max_system_errors = (uint32_t)n;
    } else if (strcmp(key, "max-steps") == 0 || strcmp(key, "max-labels") == 0) {
        char *end;
        unsigned long long n = strtoull(value, &end, 10);
        if (!*value || *end || n == 0 || n > 1000000ULL)
            return -EINVAL;
        *(key[4] == 's' ? &c->spec_limits.max_steps : &c->spec_limits.max_labels) = (size_t)n;
    } else if (strcmp(key, "key") == 0)
        c->key = keep(o, value);
    else if (strcmp(key, "authorized-keys") == 0)
        c->authorized_keys = keep(o, value);
    else if (strcmp(key, "api-keys") == 0)
        c->api_keys = keep(o, value);
    else if (strcmp(key, "insecure") == 0)
        c->insecure = strcmp(value, "true") == 0 || strcmp(value, "1") == 0;
    else if (strcmp(key, "advertise") == 0)
        c->advertise = keep(o, value);
    else if (strcmp(key, "pools") == 0) {
        pool_config_t *pools;
        size_t n;
        char err[512];
        if (pools_config_parse(value, &pools, &n, err, sizeof err) < 0) {
            config_explain("%s", err);
            return -EINVAL;
        }
        pools_config_free(o->pools, c->n_pools);
        c->pools = o->pools = pools;
        c->n_pools = n;
    } else if (strcmp(key, "debug") == 0)
        log_set_debug(strcmp(value, "true") == 0 || strcmp(value, "1") == 0);
    else
        return -ENOENT;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"state-dir", required_argument, 0, 0},
                                             {"listen", required_argument, 0, 0},
                                             {"api", required_argument, 0, 0},
                                             {"config", required_argument, 0, 0},
                                             {"agent-timeout", required_argument, 0, 0},
                                             {"log-limit", required_argument, 0, 0},
                                             {"retention", required_argument, 0, 0},
                                             {"events-max", required_argument, 0, 0},
                                             {"events-max-age", required_argument, 0, 0},
                                             {"max-items", required_argument, 0, 0},
                                             {"max-spec", required_argument, 0, 0},
                                             {"max-steps", required_argument, 0, 0},
                                             {"max-param", required_argument, 0, 0},
                                             {"max-labels", required_argument, 0, 0},
                                             {"max-message", required_argument, 0, 0},
                                             {"api-peer-queue", required_argument, 0, 0},
                                             {"api-waiters", required_argument, 0, 0},
                                             {"max-system-errors", required_argument, 0, 0},
                                             {"max-depth", required_argument, 0, 0},
                                             {"max-tasks", required_argument, 0, 0},
                                             {"max-schedules", required_argument, 0, 0},
                                             {"key", required_argument, 0, 0},
                                             {"authorized-keys", required_argument, 0, 0},
                                             {"api-keys", required_argument, 0, 0},
                                             {"insecure", no_argument, 0, 0},
                                             {"pools", required_argument, 0, 0},
                                             {"advertise", required_argument, 0, 0},
                                             {"debug", no_argument, 0, 0},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    options_t o = {0};
    int rc = 1;

    log_init("droverd");
    log_daemon_timestamps();
    sched_config_defaults(&o.cfg);
    o.cfg.state_dir = "/var/lib/drover";
    static const char *const nested[] = {"pools", NULL}; /* a YAML list in the config file */
    int status = config_parse_args(argc, argv, longopts, apply, &o, nested, usage);
    sched_t *s = status < 0 && resolve_paths(&o) == 0 ? sched_new(&o.cfg) : NULL;
    if (s) {
        rc = sched_run(s) < 0 ? 1 : 0;
        sched_destroy(&s);
    }
    if (status >= 0) /* --help, --version, or a bad setting */
        rc = status;
    for (int i = 0; i < o.n_owned; i++)
        free(o.owned[i]);
    for (int i = 0; i < o.n_resolved; i++)
        free(o.resolved[i]);
    pools_config_free(o.pools, o.cfg.n_pools);
    return rc;
}
