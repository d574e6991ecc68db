/* sched_internal — the scheduler's in-memory model, shared by its modules.
 *
 * droverd keeps every unfinished run fully in memory and LMDB as its
 * durable copy. Each module owns one concern:
 *   dag.c     runs and tasks: creation from a spec, reload, the task state
 *             machine, incremental readiness (per-task count of unfinished
 *             needs + children lists), retries, run completion, cancel;
 *   placer.c  matching READY tasks to agents with room and labels;
 *   agents.c  the agents protocol: register, heartbeat, reports, lost
 *             agents, re-sending unacknowledged assignments;
 *   api.c     the CLI's requests;
 *   scheduler.c the loop, sockets, group commit and the outbound batches.
 * Any change to a record sets its dirty flag (sched_mark_*); sched.c writes
 * all dirty records in one transaction per loop iteration.
 */
#ifndef DROVER_SCHED_INTERNAL_H
#define DROVER_SCHED_INTERNAL_H

#include <czmq.h>
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "drover.pb-c.h"
#include "idmap.h"
#include "scheduler.h"
#include "spec.h"
#include "store.h"
#include "zev.h"

typedef struct run run_t;
typedef struct task task_t;
typedef struct agent agent_t;

struct task {
    run_t *run;
    uint32_t index;
    Drover__StepSpec *step; /* owned by run->rec */
    Drover__TaskStatus status;
    uint32_t retries_used, preemptions;
    int64_t retry_at_ms; /* FAILED with a retry pending: when it becomes READY */
    char *reason;
    Drover__AttemptRecord **attempts; /* history, oldest first; owned */
    size_t n_attempts;
    uint32_t unfinished_deps; /* needs not yet SUCCEEDED */
    uint32_t *children;       /* indexes of tasks that need this one */
    size_t n_children;

    /* Runtime only (rebuilt on load). */
    agent_t *agent; /* where the current attempt is, while ASSIGNED/RUNNING */
    size_t agent_slot;
    bool assign_acked;
    int64_t assign_sent_mono;
    bool dirty;
    task_t *dirty_next;
    task_t *ready_prev, *ready_next;
    bool in_ready;
};

struct run {
    Drover__RunRecord *rec; /* owned: protobuf_c_message_free_unpacked */
    task_t *tasks;
    size_t n_tasks;
    size_t unfinished; /* tasks not in a final state */
    bool failed;       /* a task FAILED for good: the run will end FAILED */
    bool dirty;
    run_t *dirty_next;
};

typedef struct {
    Drover__Assignment **assigns;
    size_t n_assigns;
    uint64_t *kills, *acks;
    size_t n_kills, n_acks;
    bool registered, heartbeat_ack;
    const char *refused;
    bool queued; /* on sched->outbound */
} agent_out_t;

struct agent {
    char *name;
    Drover__KeyValue **labels;
    size_t n_labels;
    Drover__Resources capacity, used;
    bool connected; /* registered in this droverd session and not lost */
    bool drained;
    bool dirty;
    int64_t last_seen_mono, last_seen_ms;
    task_t **tasks; /* tasks whose current attempt is on this agent */
    size_t n_tasks, cap_tasks;
    agent_out_t out;
    agent_t *dirty_next, *out_next;
};

typedef struct log_write log_write_t;
struct log_write {
    const char *run_id;
    uint32_t task, attempt;
    uint64_t offset;
    size_t len;
    log_write_t *next;
    uint8_t data[];
};

typedef struct api_reply api_reply_t;
struct api_reply {
    zframe_t *identity;
    uint8_t *data;
    size_t len;
    api_reply_t *next;
};

struct sched {
    sched_config_t cfg;
    char *api_endpoint;
    struct ev_loop *loop;
    store_t *store;
    zsock_t *agents_sock, *api_sock;
    zev_t *agents_zev, *api_zev;
    ev_prepare flush_w;
    ev_timer tick_w, watchdog_w;
    ev_signal sigint_w, sigterm_w;

    zhashx_t *runs_by_id; /* id → run_t (owned) */
    run_t **runs;         /* creation order */
    size_t n_runs, cap_runs;
    zhashx_t *agents;  /* name → agent_t (owned) */
    idmap_t *attempts; /* attempt id → task_t, for current attempts */

    task_t *ready_head, *ready_tail;
    size_t n_ready;
    task_t **retrying; /* FAILED tasks waiting out their backoff */
    size_t n_retrying, cap_retrying;
    uint64_t next_run, next_attempt;
    bool counters_dirty;

    run_t *dirty_runs;
    task_t *dirty_tasks;
    agent_t *dirty_agents;
    log_write_t *log_writes, **log_writes_tail;
    agent_t *outbound;
    api_reply_t *replies, **replies_tail;
    char **reregister; /* routing ids to tell "register first" */
    size_t n_reregister;
    int fatal; /* a commit failed: stop */
};

/* --- scheduler.c */
void sched_mark_run(sched_t *s, run_t *r);
void sched_mark_task(sched_t *s, task_t *t);
void sched_mark_agent(sched_t *s, agent_t *a);
/* The agent's outbound batch, queued for sending after the next commit. */
agent_out_t *sched_agent_out(sched_t *s, agent_t *a);
/* Tell the peer with this routing id to register (it is not known). */
void sched_queue_reregister(sched_t *s, const char *routing_id);
/* Queue an API reply (takes ownership of identity and data). */
void sched_queue_reply(sched_t *s, zframe_t *identity, uint8_t *data, size_t len);

/* --- dag.c */
bool dag_task_final(const task_t *t);
/* Backoff before retry number n (1 = first retry), per the policy. */
uint64_t dag_backoff_ms(const Drover__RetryPolicy *p, uint32_t n);
/* Create a run from a parsed spec; returns the new run (owned by s). */
run_t *dag_create_run(sched_t *s, const spec_t *spec, const char *file);
/* Rebuild the in-memory model from the store at startup. 0 or -errno. */
int dag_load(sched_t *s);
run_t *dag_find_run(sched_t *s, const char *id);
task_t *dag_find_task(run_t *r, const char *name);
/* Transitions driven by agents. */
void dag_task_started(sched_t *s, task_t *t, int64_t time_ms);
void dag_task_exited(sched_t *s, task_t *t, const Drover__Report *rep);
/* The current attempt vanished with its agent (not a retry). */
void dag_task_lost(sched_t *s, task_t *t, const char *reason);
/* Cancel every unfinished task of a run; running attempts are killed. */
void dag_cancel_run(sched_t *s, run_t *r);
/* Move FAILED tasks whose backoff has passed back to READY. */
void dag_retry_due(sched_t *s, int64_t now_ms);
/* Current attempt record of a task, or NULL. */
Drover__AttemptRecord *dag_current_attempt(const task_t *t);
/* Ready queue. */
void dag_ready_push(sched_t *s, task_t *t);
void dag_ready_remove(sched_t *s, task_t *t);
/* Free all runs. */
void dag_free_all(sched_t *s);
/* A task record as stored (points into t; valid until t changes). */
void dag_task_record(const task_t *t, Drover__TaskRecord *rec);

/* --- placer.c */
/* Whether agent a can take task t now (labels, resources, state). */
bool placer_fits(const agent_t *a, const task_t *t);
/* Assign as many READY tasks as agents have room for. */
void placer_place(sched_t *s);
/* Bind/unbind a task's current attempt to an agent (resources, task list). */
void placer_bind(sched_t *s, agent_t *a, task_t *t);
void placer_unbind(sched_t *s, task_t *t);
/* Queue the assignment message for t's current attempt to its agent. */
void placer_send_assignment(sched_t *s, task_t *t);

/* --- agents.c */
/* Handle one frame from an agent. */
void agents_handle(sched_t *s, zframe_t *identity, const uint8_t *data, size_t len);
/* Periodic: lost agents, re-sending unacknowledged assignments. */
void agents_tick(sched_t *s);
agent_t *agents_find(sched_t *s, const char *name);
/* Startup: recreate an agent from its record (disconnected). */
void agents_load(sched_t *s, const Drover__AgentRecord *rec);
void agents_free_all(sched_t *s);
void agents_record(const agent_t *a, Drover__AgentRecord *rec);

/* --- api.c */
/* Handle one API request frame; queues exactly one reply. */
void api_handle(sched_t *s, zframe_t *identity, const uint8_t *data, size_t len);

#endif
