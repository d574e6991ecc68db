/* droverd — the drover scheduler daemon: flags and config, then sched_run.
 * Every flag can also be set in the --config file (see common/config.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "scheduler.h"
#include "spec.h"
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
               "  --max-items N          items one fan-out may produce [1000000]\n"
               "  --debug                verbose logging\n");
}

typedef struct {
    sched_config_t cfg;
    char *owned[8]; /* strings from the config file */
    int n_owned;
} options_t;

static const char *keep(options_t *o, const char *v)
{
    if (o->n_owned == 8)
        return v;
    return o->owned[o->n_owned++] = xstrdup(v);
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
    else if (strcmp(key, "retention") == 0)
        return strcmp(value, "0") == 0 ? (c->retention_ms = 0, 0)
                                       : spec_parse_duration(value, &c->retention_ms);
    else if (strcmp(key, "max-items") == 0) {
        char *end;
        unsigned long long n = strtoull(value, &end, 10);
        if (!*value || *end || n == 0 || n > 100000000ULL)
            return -EINVAL;
        c->max_items = (size_t)n;
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
                                             {"debug", no_argument, 0, 0},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    options_t o = {0};
    int rc = 1;

    log_init("droverd");
    sched_config_defaults(&o.cfg);
    o.cfg.state_dir = "/var/lib/drover";
    int status = config_parse_args(argc, argv, longopts, apply, &o, usage);
    if (status >= 0)
        return status;
    sched_t *s = sched_new(&o.cfg);
    if (s) {
        rc = sched_run(s) < 0 ? 1 : 0;
        sched_destroy(&s);
    }
    for (int i = 0; i < o.n_owned; i++)
        free(o.owned[i]);
    return rc;
}
