/* agent — drover-agent: one per node; runs the steps droverd assigns.
 *
 * A DEALER socket (routing id = the agent's name) to droverd. The agent
 * registers with its name, labels and capacity plus the attempts it still
 * holds, heartbeats with the attempts it runs, and sends reports through
 * the outbox (sequence-numbered, re-sent until acknowledged). Assignments
 * are acknowledged and applied idempotently by attempt id, so a re-sent
 * one never starts a step twice. If droverd goes quiet or answers
 * "reregister" (it restarted), the agent registers again and re-sends its
 * whole outbox; running steps are never interrupted by a droverd restart.
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
} agent_config_t;

typedef struct agent agent_t;

/* Defaults; detects cpus, memory and NVIDIA GPUs of this machine. */
void agent_config_defaults(agent_config_t *cfg);

/* Create the work dir and socket. NULL on failure (the reason is logged). */
agent_t *agent_new(const agent_config_t *cfg);

/* Serve until SIGINT/SIGTERM; running steps are then stopped. Returns 0. */
int agent_run(agent_t *a);

/* Free everything; NULLs the pointer. */
void agent_destroy(agent_t **a);

#endif
