/* scheduler — droverd: the scheduler's event loop and its configuration.
 *
 * sched_new() opens the store, reloads every run, task and agent, binds
 * the agents socket (ROUTER) and the API socket (ROUTER), and sched_run()
 * serves until SIGINT/SIGTERM. Each loop iteration handles a bounded batch
 * of messages, places ready tasks, commits every change in one LMDB write
 * transaction, and only then sends the replies and assignments that depend
 * on it (durable first, then act).
 */
#ifndef DROVER_SCHEDULER_H
#define DROVER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

/* A node pool (README "Autoscaling node pools"): nodes of one shape that
 * droverd asks a provider program to make when steps wait, and to remove
 * when they idle. Parsed from `pools:` by pools_config_parse. */
typedef struct {
    char *name;
    uint32_t cpu_milli; /* each node's size */
    uint64_t memory_bytes;
    uint32_t gpus;
    char **label_keys, **label_values; /* each node's labels */
    size_t n_labels;
    bool spot;
    double price; /* per node-hour */
    uint32_t min, max;
    uint64_t idle_ms;         /* an idle node above min is drained and removed after */
    uint64_t boot_timeout_ms; /* a node not registered by then is given up */
    char *fallback;           /* pool that takes this one's demand while it backs off */
    char *command;            /* the provider program (absolute path) */
    char **args;              /* provider.args */
    size_t n_args;
    uint64_t call_timeout_ms; /* a provider call is killed after */
} pool_config_t;

typedef struct {
    const char *state_dir;
    const char *listen;         /* agents endpoint */
    const char *api;            /* API endpoint; NULL = ipc://STATE_DIR/api.sock */
    uint64_t agent_timeout_ms;  /* no heartbeat for this long → agent lost */
    uint64_t log_limit;         /* stored log bytes per attempt */
    uint64_t assign_resend_ms;  /* re-send unacknowledged assignments after */
    uint64_t retention_ms;      /* delete finished runs older than this; 0 = keep */
    size_t max_items;           /* items one fan-out may produce (run time) */
    size_t max_run_tasks;       /* tasks one run may have (fan-outs, groups) */
    size_t max_schedules;       /* schedules droverd keeps */
    spec_limits_t spec_limits;  /* what a submitted spec may be */
    size_t max_message;         /* bytes of one message on either socket */
    size_t api_peer_queue;      /* reply bytes droverd holds for one API peer */
    uint32_t max_system_errors; /* system errors (not the step's) before a task fails */
    uint32_t max_depth;         /* groups (DAG templates) nest at most this deep */
    uint64_t events_max;        /* the event log keeps at most this many; 0 = no bound */
    uint64_t events_max_age_ms; /* and none older than this; 0 = no bound */
    uint32_t api_waiters;       /* EventsRequests held (wait_ms) at most, in all */
    /* Security (auth.c). */
    const char *key;             /* droverd's secret key file: CURVE on */
    const char *authorized_keys; /* dir of agents' public keys */
    const char *api_keys;        /* dir of CLI users' public keys (with roles) */
    bool insecure;               /* allow non-loopback endpoints without keys */
    /* Node pools (pools.c), owned by whoever parsed them. */
    const pool_config_t *pools;
    size_t n_pools;
    const char *advertise; /* the agents endpoint pool nodes connect to; NULL: from listen */
} sched_config_t;

typedef struct sched sched_t;

/* Parse `pools:` (JSON text: an array of pool objects, as config_load
 * hands a nested value over, or as --pools takes it): 0 with *out (an
 * array of *n; pools_config_free frees it), or -EINVAL with what is wrong
 * and where ("pools[2] (gpu-spot): max: ...") in err. */
int pools_config_parse(const char *json, pool_config_t **out, size_t *n, char *err, size_t errlen);
void pools_config_free(pool_config_t *pools, size_t n);

/* Default configuration values (state_dir left NULL). */
void sched_config_defaults(sched_config_t *cfg);

/* Open state and bind sockets. NULL on failure (the reason is logged). */
sched_t *sched_new(const sched_config_t *cfg);

/* Serve until a stop signal. Returns 0, or -errno if the store failed. */
int sched_run(sched_t *s);

/* Close sockets and store, free everything; NULLs the pointer. */
void sched_destroy(sched_t **s);

#endif
