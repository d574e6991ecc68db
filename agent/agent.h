/* agent — drover-agent: one per node; runs the steps droverd assigns.
 *
 * A DEALER socket to droverd (its routing id is droverd's to choose; the
 * agent is known by the name it registers, and with CURVE by its key). A
 * socket that hears nothing for 5 heartbeats is replaced by a new one, and
 * the silence is logged with its likely cause. The agent
 * registers with its name, labels and capacity plus the attempts it still
 * holds, heartbeats with the attempts it runs, and sends reports through
 * the outbox (sequence-numbered, re-sent until acknowledged). Assignments
 * are acknowledged and applied idempotently by attempt id, so a re-sent
 * one never starts a step twice. If droverd goes quiet or answers
 * "reregister" (it restarted), the agent registers again and re-sends its
 * whole outbox; running steps are never interrupted by a droverd restart.
 *
 * On a spot node the agent also follows each task's progress file,
 * commits its checkpoints to droverd's artifact store, and on a
 * preemption notice (a cloud's metadata, SIGTERM, or a drill) hands all
 * its work back: signal, wait, last checkpoint, PREEMPTED (spot.c).
 */
#ifndef DROVER_AGENT_H
#define DROVER_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drover.pb-c.h"

typedef struct {
    const char *scheduler; /* droverd's agents endpoint */
    const char *work_dir;
    const char *name;
    uint32_t cpu_milli;
    uint64_t memory_bytes;
    const char *gpus;    /* --gpus override: "N", "0,2" or "none"; NULL = detect */
    const char *runtime; /* "process", "oci", "podman", "docker", "auto" (+ ":/path") */
    Drover__KeyValue **labels;
    size_t n_labels;
    uint64_t heartbeat_ms;
    uint64_t kill_grace_ms; /* SIGTERM → SIGKILL when a step is stopped */
    uint64_t log_limit;     /* log bytes sent per attempt */
    bool keep_work_dirs;
    /* Spot capacity. */
    int spot;     /* 1 spot node, 0 on-demand, -1 = detect from metadata (else 0) */
    double price; /* per hour, for cost estimates */
    const char *aws_url, *gcp_url, *azure_url; /* metadata watchers; NULL = off */
    uint64_t metadata_poll_ms;
    uint64_t stop_timeout_ms;  /* SIGTERM: the drain's deadline (systemd TimeoutStopSec) */
    uint64_t upload_margin_ms; /* kept before a deadline for the last checkpoint */
    bool drill_exit;           /* at a drill's deadline: exit (else: back in service) */
    uint64_t cache_size;       /* bound of WORK_DIR/cache; 0 = a quarter of its disk */
    /* CURVE (both or neither). */
    const char *key;           /* this agent's secret key file */
    const char *scheduler_key; /* droverd's public key file */
    /* A join token (README "Join tokens"): key made if absent, sent in a
     * Join beside the Register until droverd accepts a registration. */
    const char *join_token;
} agent_config_t;

typedef struct agent agent_t;

/* Defaults; detects cpus, memory and NVIDIA GPUs of this machine. */
void agent_config_defaults(agent_config_t *cfg);

/* Create the work dir and socket. NULL on failure (the reason is logged). */
agent_t *agent_new(const agent_config_t *cfg);

/* Serve until SIGINT/SIGTERM, which is a preemption notice: the steps
 * are handed back (see above), then it returns 0. A second signal stops
 * at once. */
int agent_run(agent_t *a);

/* Free everything; NULLs the pointer. */
void agent_destroy(agent_t **a);

#endif
