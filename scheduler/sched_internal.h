/* sched_internal — the scheduler's in-memory model and its layers, shared
 * by its modules (docs/architecture.md, "droverd's layers", has the
 * picture). From the top down; a file calls only into its own layer or
 * the ones below, never up:
 *   loop      scheduler.c: sockets, timers, and the order of the phases
 *             in each iteration: handlers mark → placer_place → commit →
 *             outbound_send + replies_flush. commit.c is its commit phase.
 *   handlers  agents.c (the agents protocol), api.c (the CLI's requests;
 *             api_schedules.c its schedule requests), blobs.c (blob
 *             transfers), auth.c (keys): they decode, check and call the
 *             model.
 *   model     dag.c (runs and tasks: creation, reload, the state machine,
 *             readiness, retries, completion, cancel, groups), flow.c
 *             (templates, when, fan-out lists, outputs, cache keys),
 *             placer.c (READY tasks onto agents), schedules.c (recurring
 *             runs). It records what it changed in the journal (schedules:
 *             their own dirty list, written by the commit phase) and what
 *             to send in the outbound queue.
 *   below     journal.h (what changed, interned names, cache puts),
 *             outbound.h (agent batches, kills, peer replies), replies.c
 *             (API replies), fleet.h (the agents table, records, bound
 *             tasks), blobstore.h (blob files and references), store.c
 *             (LMDB).
 * struct sched holds one sub-struct per module; a module's functions take
 * the sub-struct where they need nothing else.
 */
#ifndef DROVER_SCHED_INTERNAL_H
#define DROVER_SCHED_INTERNAL_H

#include <czmq.h>
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "drover.pb-c.h"
#include "idmap.h"
#include "keys.h"
#include "scheduler.h"
#include "spec.h"
#include "store.h"
#include "worker.h"
#include "zev.h"

#include "metrics.h"

/* run_t.n_status: one slot per TaskStatus (SUSPENDED is the last), one
 * for a value beyond them. */
#define TASK_STATUS_SLOTS (DROVER__TASK_STATUS__TASK_SUSPENDED + 2)

typedef struct run run_t;
typedef struct task task_t;
typedef struct agent agent_t;
typedef struct park park_t;
typedef struct schedule schedule_t;

/* An approval gate's own state (gates.c), on the task of a suspend: step
 * once it has been activated; NULL on every other task. */
typedef struct {
    int64_t suspended_ms; /* when it began waiting */
    int64_t deadline_ms;  /* when its timeout fires; 0 = none */
    int64_t at_ms;        /* when it was resumed or rejected; 0 = not (yet) */
    char *by;             /* who did (owned), or NULL */
    bool rejected;
} gate_t;

/* A group instance's own state (dag.c, "Groups"): on a task whose step
 * uses a DAG template (or an item of such a for_each step) once it has
 * been instantiated; NULL on every other task. Its members are the tasks
 * [first_member, first_member + n_members) of its run, in body order. */
typedef struct {
    uint32_t first_member, n_members;
    uint32_t done;      /* members ended */
    uint32_t main_left; /* members not in the body's finally, not ended */
    uint32_t failed;    /* members FAILED for good (continue_on: failed aside) */
    bool finally_started;
    Drover__KeyValue **in_params; /* its inputs' values, expanded (owned) */
    uint32_t n_in_params;
} group_t;

struct task {
    run_t *run;
    Drover__StepSpec *step; /* owned by run->steps */
    char *name;             /* step name, or "step[i]" for an item */
    char *item_value;       /* {{item}}; inside name's allocation */
    uint32_t index;         /* position in run->tasks (steps first, then items) */
    uint32_t step_index;    /* the step it runs */
    uint32_t item;          /* position in the fan-out list */
    Drover__TaskStatus status;
    uint32_t retries_used, preemptions;
    uint32_t system_errors;   /* attempts ended by system errors (--max-system-errors) */
    uint32_t unfinished_deps; /* needs not yet ended */
    float progress;           /* latest from the agent's heartbeat; -1 = none */
    int64_t retry_at_ms;      /* FAILED with a retry pending: when it becomes READY */
    char *reason;
    Drover__AttemptRecord **attempts;     /* history, oldest first; owned (dag_add_attempt) */
    Drover__AttemptRecord *first_attempt; /* attempts[] while there is one (no array) */
    uint32_t n_attempts;
    uint32_t n_children;
    uint32_t *children; /* indexes of tasks that need this one */
    /* Fan-out step: its items (task indexes), how many ended, failed, and
     * the next one to release under the parallelism cap. */
    uint32_t *items;
    uint32_t n_items, items_done, items_failed, items_released;
    /* ...and its items by status (TASK_STATUS_SLOTS, as run_t.n_status;
     * owned), kept by task_set_status from its expansion (or its reload's
     * rebuild) on: a run view's item_counts without a walk of the items.
     * NULL until then, and on every other task. */
    uint32_t *item_status;
    /* Results (owned). */
    Drover__KeyValue **out_params;
    Drover__Artifact **outputs;
    uint32_t n_out_params, n_outputs;
    uint8_t *cache_key; /* 32 bytes (owned) from success until its entry is stored */
    char *cached_from;
    /* {{steps.S.outputs.result}}: the last attempt's captured standard
     * output (owned; NULL: none captured). TaskRecord.result. */
    char *result;
    /* Committed checkpoints, oldest first (owned; blobs referenced). */
    Drover__Checkpoint **checkpoints;
    uint32_t n_checkpoints;
    /* Templates expanded for dispatch (owned; NULL until prepared). */
    uint32_t argc;
    char **argv;
    Drover__KeyValue **env;
    uint32_t n_env;
    uint32_t agent_slot; /* runtime: position in agent->tasks */
    char *avoid_agent;   /* the node it was last preempted on, or hit a system error on */
    gate_t *gate;        /* an approval gate's state (owned), or NULL */
    task_t *scope;       /* the group instance it is a member of; NULL: the run's own */
    group_t *grp;        /* a group instance's state (owned), or NULL */

    /* Runtime only (rebuilt on load). */
    agent_t *agent; /* where the current attempt is, while ASSIGNED/RUNNING */
    int64_t assign_sent_mono;
    task_t *dirty_next;
    task_t *ready_prev, *ready_next;
    bool is_item;
    bool releasing; /* release_items is on the stack */
    bool assign_acked;
    uint8_t resends; /* of the current assignment, for the backoff */
    bool dirty;
    /* The event log (events.c): the status last written to the store + 1
     * (0: never written), and the time of the latest checkpoint written. */
    uint8_t committed_status;
    int64_t committed_checkpoint_ms;
    bool in_ready;
    bool held;    /* READY, on its run's held list, not the ready queue (limits.c) */
    park_t *park; /* READY, parked by the placer off the ready queue (placer.c) */
    /* Readiness by trigger rule (dag.c): needs ended so, beside
     * unfinished_deps (runtime, recomputed on load); upstream_failed is
     * stored: SKIPPED because a failure broke its rule. */
    uint32_t deps_ok, deps_failed, deps_skipped;
    bool upstream_failed;

    /* A step with templated settings: from the moment the task is made
     * READY until it ends (about 0.5 KiB), a shallow copy of its step with
     * timeout, image, resources and retries expanded for this task, which
     * step then points to instead of run->steps' (owned:
     * flow_settings_free; its other fields are the step's). Rebuilt on
     * load. */
    Drover__StepSpec *own_step;
    /* Metrics (metrics.h): when it last became READY (metrics_now_us;
     * 0: not since droverd started), for the dispatch latency. */
    int64_t ready_us;
};

/* A run's sums over its tasks' attempts (RunView's). */
typedef struct {
    double cost; /* from the agents' prices */
    int64_t spot_ms, ondemand_ms, lost_ms;
    uint32_t preemptions;
} run_totals_t;

struct run {
    Drover__RunRecord *rec;  /* owned: protobuf_c_message_free_unpacked */
    Drover__RunSteps *steps; /* owned, likewise: the compiled steps, never changed */
    task_t **tasks;          /* root steps (index = step index), then fan-out items
                              * and group members, in the order they were made */
    uint32_t n_root;         /* the pipeline's own steps: steps[0, n_root) */
    size_t n_tasks, cap_tasks;
    size_t unfinished;      /* tasks not in a final state */
    size_t main_unfinished; /* of those, not exit handlers (finally) */
    bool failed;            /* a task FAILED for good: the run will end FAILED */
    bool cancelled;         /* mirrors rec->cancelled */
    bool finally_started;   /* main steps all ended: exit handlers may run */
    bool deleting;          /* removed at the next commit */
    run_t *deleting_next;
    /* rec changed (status, end, cancel): written at the next commit. Only
     * the run's own state marks it, never a task's transition. */
    bool dirty;
    uint8_t committed_status; /* rec->status last written + 1; 0: never (events.c) */
    bool steps_unwritten;     /* just created: the steps go with the next commit */
    /* What it was submitted from (the spec and its imports' texts, -p
     * values), owned, from its creation (api.c) until the commit that
     * creates it writes it to the store (commit.c frees it then, or
     * after a failed one); NULL after, and for a run loaded at start:
     * `drover run spec` reads the store. */
    Drover__RunSpecRecord *source;
    run_t *dirty_next;
    uint32_t active; /* tasks bound to an agent (fleet_bind_task): run parallelism */
    uint32_t queued; /* tasks in the ready queue */
    /* READY tasks the placer held back while the run was at its
     * parallelism (linked through ready_prev/ready_next; runtime only). */
    task_t *held_head, *held_tail;
    uint32_t n_held; /* tasks on that list */
    /* Its tasks by status (index: Drover__TaskStatus; the last slot any
     * status beyond the known ones), kept by task_set_status: the
     * metrics' tasks by status cost a sum over runs, not a walk. */
    uint32_t n_status[TASK_STATUS_SLOTS];
    /* Its attempts' time on spot and on-demand nodes, work lost, cost and
     * preemptions, summed over every task (api.c run_totals), as of
     * totals_ms (0: never): a view re-sums at most once a second while the
     * run goes on, and never again once it has ended. */
    run_totals_t totals;
    int64_t totals_ms;
};

/* An item's status changed from was to now: its fan-out's item_status
 * (dag.c). */
void dag_item_moved(task_t *item, unsigned was, unsigned now);

/* Set t's status, keeping its run's n_status, an item's fan-out's
 * item_status (and, becoming READY, the time for the dispatch latency).
 * Every change of a task's status goes through here (dag.c, gates.c,
 * placer.c). */
static inline void task_set_status(task_t *t, Drover__TaskStatus st)
{
    unsigned was = (unsigned)t->status, now = (unsigned)st;
    t->run->n_status[was < TASK_STATUS_SLOTS - 1 ? was : TASK_STATUS_SLOTS - 1]--;
    t->run->n_status[now < TASK_STATUS_SLOTS - 1 ? now : TASK_STATUS_SLOTS - 1]++;
    if (t->is_item)
        dag_item_moved(t, was, now);
    t->status = st;
    if (st == DROVER__TASK_STATUS__TASK_READY)
        t->ready_us = metrics_now_us();
}

typedef struct {
    Drover__Assignment **assigns;
    size_t n_assigns;
    uint64_t *kills, *acks;
    size_t n_kills, n_acks;
    /* artifact transfers (owned; freed after sending) */
    Drover__UploadWant **wants;
    size_t n_wants;
    Drover__BlobChunk **chunks;
    size_t n_chunks;
    Drover__ChunkAck **chunk_acks;
    size_t n_chunk_acks;
    Drover__BlobDone **done;
    size_t n_done;
    bool registered, heartbeat_ack;
    Drover__PreemptNotice *preempt; /* a drill (owned) */
    bool queued;                    /* on sched->out.queue */
} agent_out_t;

struct agent {
    char *name;
    /* Its connection: the routing id droverd's ROUTER gave the socket that
     * last registered as this agent (peers never choose routing ids, so
     * none can claim another's), and its hex form, the key of
     * sched->fleet.conns. NULL while it has none. With CURVE, key is the public
     * key (Z85) it registered with: only that key's messages count. */
    zframe_t *conn;
    char *conn_hex;
    char key[41];
    Drover__KeyValue **labels;
    size_t n_labels;
    Drover__Resources capacity, used;
    char *runtime;     /* the agent's step runtime ("process", "oci", ...) */
    char *incarnation; /* its process's, from Register (interned; "" if none) */
    bool images;       /* it can run steps with an image */
    bool connected;    /* registered in this droverd session and not lost */
    bool drained;
    bool spot;    /* a spot/preemptible node */
    double price; /* per hour, for cost estimates */
    /* Its preemption notice, while it has one (from its heartbeats). */
    bool noticed, terminating; /* terminating: it goes away (else only at risk) */
    int64_t notice_deadline_ms;
    char *notice_reason;
    bool dirty;
    uint8_t committed_state; /* AGENT_EV_* bits last written (events.c) */
    int64_t last_seen_mono, last_seen_ms;
    task_t **tasks;   /* tasks whose current attempt is on this agent */
    uint32_t unacked; /* of those, assignments it has not acknowledged yet */
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
typedef struct api_peer api_peer_t;

/* placer.c: READY tasks of one shape (placer_why) that no agent in service
 * could ever hold, parked off the ready queue (linked through
 * ready_prev/ready_next, FIFO) until the fleet changes, so a backlog that
 * cannot be placed costs a placement pass nothing. A parked task counts in
 * its run's queued; dag_ready_remove takes it out. Runtime only. */
struct park {
    task_t *head, *tail;
    size_t n;
    bool fallback; /* its tasks' spot fallback (placer.c fallback_on) */
    park_t *next;
};

/* placer_why's memo: the verdict and words for the last few task shapes
 * (a step, or copies of one with equal templated settings, and whether
 * the spot fallback is on), so a walk over many tasks of few shapes works
 * each out once. Valid while the fleet does not change (one request or
 * one pass); placer_why_init before use. */
#define PLACER_WHY_SHAPES 8
#define PLACER_WHY_LEN    256
typedef struct {
    const Drover__StepSpec *step;
    bool fallback;
    bool busy; /* an agent in service suits it: it waits for room */
    char why[PLACER_WHY_LEN];
} placer_shape_t;
typedef struct {
    placer_shape_t shapes[PLACER_WHY_SHAPES];
    size_t n, next, last;
    bool ondemand_fleet;
    char held[PLACER_WHY_LEN]; /* for a task held by its run's parallelism */
} placer_why_t;

typedef enum { API_ROLE_READ = 0, API_ROLE_SUBMIT = 1, API_ROLE_ADMIN = 2 } api_role_t;
typedef struct {
    api_role_t role;
    char name[64]; /* the key's name ("local" on the ipc socket), or the API token's */
    bool token;    /* the request came with an API token (apitokens.c): it acts as it */
} api_caller_t;

/* What droverd refused, for `drover status`. */
typedef struct {
    uint64_t refused_agents;    /* messages from unknown or mismatched agent keys */
    uint64_t refused_api;       /* API requests from unknown keys */
    uint64_t refused_role;      /* API requests beyond the caller's role */
    uint64_t bad_messages;      /* undecodable or out-of-bounds agent messages */
    uint64_t bad_requests;      /* undecodable or out-of-bounds API requests */
    uint64_t over_limits;       /* specs beyond a configured limit */
    uint64_t truncated_logs;    /* attempts whose log went past log-limit */
    uint64_t failed_handshakes; /* CURVE handshakes that failed (no or wrong keys) */
    uint64_t revoked_agents;    /* connected agents dropped when their key was revoked */
    uint64_t dropped_api_peers; /* API peers over --api-peer-queue (not reading) */
    uint64_t refused_joins;     /* Join messages refused (tokens.c) */
    uint64_t refused_tokens;    /* API requests with a bad bearer token (apitokens.c) */
} sched_counters_t;
struct api_reply {
    zframe_t *identity; /* NULL once sent */
    uint8_t *data;
    size_t len;
    api_reply_t *next;
    api_peer_t *peer; /* holds a reference (replies.c) */
};

#include "journal.h"
#include "outbound.h"
#include "fleet.h"
#include "blobstore.h"

/* dag.c: every run, the ready queue, the retry list, current attempts. */
typedef struct {
    zhashx_t *runs_by_id; /* id → run_t (owned) */
    run_t **runs;         /* creation order */
    size_t n_runs, cap_runs;
    idmap_t *attempts; /* attempt id → task_t, for current attempts */
    task_t *ready_head, *ready_tail;
    size_t n_ready;
    task_t **retrying; /* FAILED tasks waiting out their backoff */
    size_t n_retrying, cap_retrying;
    uint64_t next_run, next_attempt; /* id counters (journal_mark_counters) */
    run_t **timed;                   /* unfinished runs with a timeout (limits.c) */
    size_t n_timed, cap_timed;
    run_t **holding; /* runs with held tasks (limits.c) */
    size_t n_holding, cap_holding;
    task_t **gates; /* SUSPENDED approval gates (gates.c), in no order */
    size_t n_gates, cap_gates;
    park_t *parks;       /* parked READY tasks by shape (placer.c) */
    size_t n_parks;      /* groups in parks */
    uint64_t park_fleet; /* the fleet's fingerprint when they were checked */
} dag_state_t;

/* replies.c: API replies on their way out. */
typedef struct {
    api_reply_t *head, **tail;
    zhashx_t *peers; /* routing id (hex) → api_peer_t with replies queued or in ZMQ */
} replies_t;

/* auth.c */
typedef struct {
    zcert_t *cert;                /* droverd's key pair; NULL = no CURVE */
    zhashx_t *agent_keys;         /* Z85 → keys_entry_t */
    zhashx_t *api_keys;           /* Z85 → keys_entry_t (with role) */
    bool agents_curve, api_curve; /* which sockets are CURVE servers */
    zsock_t *zap;                 /* our ZAP handler */
    zev_t *zap_zev;
    zsock_t *monitor; /* the agents socket's failed handshakes */
    zev_t *monitor_zev;
} auth_state_t;

/* tokens.c: a join token or an API token (its record owned:
 * free_unpacked frees it). */
typedef struct {
    Drover__TokenRecord *rec;
    bool dirty;      /* written by the next commit */
    int64_t used_ms; /* API token: its last request (rec->last_used_ms: written lazily) */
} token_t;

struct sched {
    /* the loop (scheduler.c) */
    sched_config_t cfg;
    char *api_endpoint;
    struct ev_loop *loop;
    store_t *store;
    zsock_t *agents_sock, *api_sock;
    zev_t *agents_zev, *api_zev;
    ev_prepare flush_w;
    ev_idle more_w; /* keeps the loop turning while a placement backlog drains */
    ev_timer tick_w, watchdog_w;
    ev_signal sigint_w, sigterm_w, sighup_w;
    worker_t *worker;   /* file I/O and hashing off the loop */
    int64_t last_gc_ms; /* retention and blob sweep, hourly */
    int fatal;          /* a commit failed: stop */
    sched_counters_t counters;
    sched_metrics_t metrics; /* metrics.h */

    dag_state_t dag;
    journal_t journal;
    outbound_t out;
    fleet_t fleet;
    replies_t replies;
    auth_state_t auth;
    struct {
        zhashx_t *xfers; /* blob transfers in progress */
    } blobs;
    struct {
        zhashx_t *by_name; /* name → schedule_t (owned) */
        schedule_t *dirty; /* changed since the last commit */
        char **deleted;    /* names whose records the next commit deletes */
        size_t n_deleted;
    } schedules;
    struct {
        zhashx_t *by_id; /* id → token_t (owned), join and API tokens alike */
        size_t n_api;    /* how many of them are API tokens */
    } tokens;
    struct pools *pools; /* pools.c (opaque) */
    struct {
        uint64_t next_seq; /* the next event's seq (meta "next_event") */
        uint64_t pending;  /* events put in the open transaction */
        bool prune_more;   /* the last prune stopped at its batch */
        void **order;      /* events_derive's scratch: dirty records (owned) */
        size_t cap;
        Drover__EventRecord *batch; /* the open commit's events (owned array; strings borrowed) */
        size_t cap_batch;
        int64_t now_ms;                /* the open commit's events' time */
        uint64_t first_seq;            /* the oldest event kept (next_seq when none is) */
        uint64_t pruned;               /* events the open transaction pruned */
        struct events_waiter *waiters; /* held EventsRequests (owned array) */
        size_t n_waiters, cap_waiters;
        ev_timer wait_w; /* the earliest waiter's deadline */
    } events;
};

/* --- metrics.c: droverd's metrics (README "Metrics") */
/* The metrics now (ApiRequest.metrics, role read): what metrics.h
 * measured and what is counted now (tasks and runs by status, READY tasks
 * by reason, agents, pool nodes and demand, the blob store, the event
 * log), as families for metrics_text (common/); the refusal counters and
 * READY tasks by reason are st's (the caller's status view: `drover
 * status` shows the same); began_us: when the request's handling began
 * (metrics_now_us), for drover_metrics_duration_seconds. Freed with
 * metrics_view_free. O(runs + agents + pool nodes + the ready
 * queue's unparked tasks). */
Drover__MetricsView *metrics_view(sched_t *s, const api_caller_t *caller,
                                  const Drover__StatusView *st, int64_t began_us);
void metrics_view_free(Drover__MetricsView *v);

/* --- commit.c: the loop's commit phase */
/* Write everything the journal holds in ONE store transaction and commit
 * it, then empty the journal, unlink dropped blobs and free deleted runs.
 * Nothing to write: nothing done. 0 or -errno (the transaction aborted,
 * the journal kept). */
int commit_journal(sched_t *s);

/* --- replies.c */
/* No replies queued, no peers known. */
void replies_init(sched_t *s);
/* Queue an API reply for sending after the next commit (takes ownership
 * of identity and data). Discarded when its peer was dropped, or when it
 * would take the peer over --api-peer-queue: the peer is then dropped
 * (counted, logged). */
void sched_queue_reply(sched_t *s, zframe_t *identity, uint8_t *data, size_t len);
/* Hand every queued reply to ZMQ. */
void replies_flush(sched_t *s);
/* Whether the peer with this routing id was dropped and ZMQ has not let go
 * of its replies yet (it neither read them nor left): ignore its requests. */
bool replies_peer_dropped(sched_t *s, zframe_t *identity);
/* Hold a request of the peer with this routing id (events.c: an
 * EventsRequest waiting for events): it counts like a small queued reply
 * and keeps the peer known until replies_unhold. NULL when the peer may
 * not hold one more (dropped, HOLDS_PER_PEER held, or at its bound):
 * answer it at once. */
api_peer_t *replies_hold(sched_t *s, zframe_t *identity);
/* The held request is answered (queue its reply after this) or dropped. */
void replies_unhold(api_peer_t *p);
/* Forget peers with no reply queued or in ZMQ (from the tick). */
void replies_sweep(sched_t *s);
/* Free the queued replies and the table; peers ZMQ still holds replies
 * for are freed with those. */
void replies_shutdown(sched_t *s);

/* --- dag.c */
bool dag_task_final(const task_t *t);
/* Backoff before retry number n (1 = first retry), per the policy. */
uint64_t dag_backoff_ms(const Drover__RetryPolicy *p, uint32_t n);
/* Create a run from a parsed spec; returns the new run (owned by s).
 * dag_new_run + dag_start_run. */
run_t *dag_create_run(sched_t *s, const spec_t *spec, const char *file, bool no_cache);
/* The halves of dag_create_run: make the run, its record and tasks, none
 * activated (a caller may set facts on r->rec that templates read, as a
 * schedule's logical time); then activate what needs nothing. */
run_t *dag_new_run(sched_t *s, const spec_t *spec, const char *file, bool no_cache);
void dag_start_run(sched_t *s, run_t *r);
/* Whether the run has reached SUCCEEDED, FAILED or CANCELLED. */
bool dag_run_final(const run_t *r);
/* Commit-time halves of dag_delete_run: delete records (in the
 * transaction), then free the runs (after it). */
int dag_commit_deletions(sched_t *s);
void dag_free_deleted(sched_t *s);
/* Rebuild the in-memory model from the store at startup. 0 or -errno. */
int dag_load(sched_t *s);
run_t *dag_find_run(sched_t *s, const char *id);
/* By full name: "step", "step[i]", "group.step", "group[i].step",
 * nested ("a.b[2].c"); NULL when there is none. */
task_t *dag_find_task(run_t *r, const char *name);
/* The task of step index step in group instance scope (NULL: the run's
 * own steps), or NULL when scope has no such member. */
task_t *dag_member(const run_t *r, const task_t *scope, uint32_t step);
/* The task of the step named name[0..len) among the steps of group
 * instance scope (NULL: the run's own), or NULL: how {{steps.S...}}
 * references find S (scope: the referring task's). */
task_t *dag_scope_find(const run_t *r, const task_t *scope, const char *name, size_t len);
/* How many groups t is nested in (0: one of the run's own steps). */
uint32_t dag_depth(const task_t *t);
/* Transitions driven by agents. */
void dag_task_started(sched_t *s, task_t *t, int64_t time_ms);
void dag_task_exited(sched_t *s, task_t *t, const Drover__Report *rep);
/* The current attempt vanished with its agent (not a retry). */
void dag_task_lost(sched_t *s, task_t *t, const char *reason);
/* Record a checkpoint the current attempt committed (its blobs are
 * uploaded); older ones beyond checkpoint_keep are released. */
void dag_task_checkpoint(sched_t *s, task_t *t, const Drover__Checkpoint *ck);
/* The checkpoint a new attempt resumes from, or NULL. */
const Drover__Checkpoint *dag_latest_checkpoint(const task_t *t);
/* Cancel every unfinished task of a run; running attempts are killed. */
void dag_cancel_run(sched_t *s, run_t *r);
/* Move FAILED tasks whose backoff has passed back to READY. */
void dag_retry_due(sched_t *s, int64_t now_ms);
/* Append an attempt to t's history (most tasks have one: it needs no
 * array of its own). */
void dag_add_attempt(task_t *t, Drover__AttemptRecord *a);
/* Free an attempt record whose agent name is interned. */
void dag_attempt_free(Drover__AttemptRecord *a);
/* Current attempt record of a task, or NULL. */
Drover__AttemptRecord *dag_current_attempt(const task_t *t);
/* Ready queue. */
void dag_ready_push(sched_t *s, task_t *t);
void dag_ready_remove(sched_t *s, task_t *t);
/* Free all runs. */
void dag_free_all(sched_t *s);
/* Delete a finished run: records, logs, blob references. 0 or -errno
 * (-EBUSY while it still runs). */
int dag_delete_run(sched_t *s, run_t *r);
/* Delete finished runs older than the retention setting. */
void dag_retention(sched_t *s, int64_t now_ms);
/* Expand a task's run-time templates for dispatch (idempotent). 0, or
 * -EINVAL with the reason in t->reason... the task is then failed. */
int dag_prepare(sched_t *s, task_t *t);
/* A task record as stored (points into t; valid until t changes). */
void dag_task_record(const task_t *t, Drover__TaskRecord *rec);

/* Stop run r (its timeout passed): every unfinished task but the exit
 * handlers is CANCELLED with reason (running attempts killed), the exit
 * handlers still run, and the run ends FAILED with rec->reason = reason. */
void dag_stop_run(sched_t *s, run_t *r, const char *reason);

/* --- schedules.c: recurring runs (README "Schedules") */
/* An empty table; free it all. */
void schedules_init(sched_t *s);
void schedules_free(sched_t *s);
/* Load one stored schedule (store_load's callback); after every run is
 * loaded, count each schedule's runs still going. */
void schedules_load(sched_t *s, const Drover__ScheduleRecord *rec);
void schedules_loaded(sched_t *s);
/* Fire what is due at now_ms (the tick). */
void schedules_tick(sched_t *s, int64_t now_ms);
/* Run r ended: its schedule has room again; schedules `after` it fire. */
void schedules_run_ended(sched_t *s, run_t *r);
/* The commit phase's part: write changed schedules and delete removed
 * ones (in the open transaction); then forget what was written. */
int schedules_commit(sched_t *s);
void schedules_after_commit(sched_t *s);
/* Create (update: replace the spec and settings of) a schedule from in
 * (copied): its cron, zone and spec are checked (the spec compiled with
 * its imports and -p values), a loop of --after triggers refused. 0, or
 * -EINVAL / -ENOENT / -EEXIST with the reason in err. */
int schedules_put(sched_t *s, const Drover__ScheduleRecord *in, bool update, const char *owner,
                  char *err, size_t errlen);
/* Delete, pause or resume the schedule named name: 0 or -ENOENT. */
int schedules_delete(sched_t *s, const char *name);
int schedules_pause(sched_t *s, const char *name, bool paused);
/* A run of the named schedule now (its logical time now); NULL when there
 * is no such schedule or its spec no longer compiles (recorded). */
run_t *schedules_trigger(sched_t *s, const char *name);
/* Queue runs for the schedule's fires in [from_ms, to_ms] (at most 1000),
 * leaving out those with a successful run unless rerun; they start as
 * max-active allows, oldest first. 0 or -errno + err. */
int schedules_backfill(sched_t *s, const char *name, int64_t from_ms, int64_t to_ms, bool rerun,
                       size_t *queued, size_t *skipped, char *err, size_t errlen);
schedule_t *schedules_find(sched_t *s, const char *name);
/* A view of sc (pointing into it; valid until sc changes). */
void schedules_view(sched_t *s, const schedule_t *sc, Drover__ScheduleView *v);
/* Iterate the schedules (first: start over); NULL at the end. */
const schedule_t *schedules_each(sched_t *s, bool first);

/* --- limits.c: retry rules, run parallelism and timeout */
/* Whether a failed attempt a of t may be retried at retry_at_ms: within
 * retries.max_duration of the first attempt's start, and retries.when
 * true over a. false with why (whylen bytes) when not. */
bool limits_may_retry(const task_t *t, const Drover__AttemptRecord *a, int64_t retry_at_ms,
                      char *why, size_t whylen);
/* Whether the EXITED report ends t SKIPPED (skip_on_exit_code). */
bool limits_skip_code(const task_t *t, const Drover__Report *rep);
/* Whether r has as many tasks ASSIGNED/RUNNING as its parallelism. */
bool limits_run_full(const run_t *r);
/* The placer met READY t while its run was full: off the ready queue,
 * onto the run's held list (O(1)); dag_ready_remove takes it off that. */
void limits_hold(sched_t *s, task_t *t);
void limits_unhold(sched_t *s, task_t *t);
/* Before a placer pass: back into the ready queue, for each run holding
 * tasks, as many as it has room for (parallelism - bound - queued). */
void limits_release(sched_t *s);
/* Why a task r holds (limits_hold) waits, in words, with "waiting: "
 * ("waiting: run parallelism 4 reached (4 running)"), into buf. */
void limits_why_held(const run_t *r, char *buf, size_t len);
/* A new run: its limits into its record (from the spec); a load: its
 * deadline tracked again, a stopped run's failure remembered. */
void limits_run_created(sched_t *s, run_t *r, const spec_t *spec);
void limits_run_loaded(sched_t *s, run_t *r);
/* r reached a final state: its deadline is forgotten. */
void limits_run_ended(sched_t *s, run_t *r);
/* Stop the runs whose timeout has passed (the 100 ms tick, and at load). */
void limits_tick(sched_t *s, int64_t now_ms);
/* End approval gate t (SUSPENDED): ok → SUCCEEDED (its children go on),
 * else FAILED for good (its dependants SKIPPED); reason is kept on the task
 * either way (copied). */
void dag_gate_end(sched_t *s, task_t *t, bool ok, const char *reason);

/* --- gates.c: approval gates (suspend:), README "Approval gates" */
/* t (a suspend: step, activated) starts waiting: SUSPENDED, its timeout
 * deadline set, tracked for gates_due. */
void gate_suspend(sched_t *s, task_t *t);
/* Track t (SUSPENDED, loaded from the store) for its timeout. */
void gates_track(sched_t *s, task_t *t);
/* Forget t (it reached a final state; called from task_finished). */
void gates_untrack(sched_t *s, task_t *t);
/* End the gates whose timeout has passed (from the tick): on_timeout fail
 * → FAILED, continue → SUCCEEDED, each with a reason saying so. */
void gates_due(sched_t *s, int64_t now_ms);
/* `drover run resume`: end gate t of run r as who (the caller's name)
 * approving (or rejecting) it, with output params params[0..n) (each a
 * declared output param of the step; bounded by max_value bytes). Returns
 * 0, or the ApiErrorCode of the refusal with the message in err (nothing
 * changed then). */
int gate_resume(sched_t *s, task_t *t, const char *who, bool reject,
                Drover__KeyValue *const *params, size_t n, size_t max_value, char *err,
                size_t errlen);
/* A gate's record fields from t->gate (into rec, pointing into t). */
void gate_record(const task_t *t, Drover__TaskRecord *rec);
/* t->gate from a loaded record (when it has gate fields). */
void gate_load(task_t *t, const Drover__TaskRecord *rec);
/* Free t->gate. */
void gate_free(task_t *t);

/* --- flow.c */
/* Evaluate t's `when`. 0 or -EINVAL with the reason in err. */
int flow_when(sched_t *s, task_t *t, bool *result, char *err, size_t errlen);
/* t's `when` with each reference replaced by its value (cut to 80 bytes),
 * for a skip reason: "tails == heads"; the text as written when a
 * reference cannot be resolved. Caller frees. */
char *flow_when_shown(sched_t *s, task_t *t);
/* {{run.failures}}: a JSON list of r's failed main steps, in order, each
 * {"name": ..., "exit_code": N or null, "reason": ...}. Caller frees. */
char *flow_run_failures(const run_t *r);
/* t's fan-out list (caller frees with json_text_list_free). 0 or -errno + err. */
int flow_items(sched_t *s, task_t *t, char ***items, size_t *n, char *err, size_t errlen);
/* Free what dag_prepare expanded. */
void flow_unprepare(task_t *t);
/* The upstream artifact an input names, or NULL if it has none. */
const Drover__Artifact *flow_input_artifact(const task_t *t, const Drover__InputSpec *in);
/* t's cache key, from its prepared argv/env and inputs. */
void flow_cache_key(const task_t *t, uint8_t key[32]);
/* Record outputs on t (copies) and take blob references. */
void flow_set_outputs(sched_t *s, task_t *t, Drover__Artifact **arts, size_t n_arts,
                      Drover__KeyValue **params, size_t n_params);
/* Whether every file of art is in the blob store. 0 or -EINVAL + err. */
int flow_check_artifact(sched_t *s, const Drover__Artifact *art, char *err, size_t errlen);
/* Whether an EXITED report carries every declared output (uploaded). */
int flow_check_outputs(sched_t *s, const task_t *t, const Drover__Report *rep, char *err,
                       size_t errlen);
/* A fan-out step's outputs from its items'. */
void flow_collect_items(sched_t *s, task_t *g);
/* Expand t's templated settings (timeout, image, resources, retries.limit;
 * README "Templated settings") into t->own_step and point t->step at it;
 * 0 (also when the step has none, or t is a fan-out group, or it was done
 * already), or -EINVAL with a reason naming the key and the value in err.
 * Called when t is made READY (and again on reload), so the placer only
 * reads numbers. */
int flow_settings(sched_t *s, task_t *t, char *err, size_t errlen);
/* Free t->own_step; t->step is its run's step again. */
void flow_settings_free(task_t *t);
/* Group instance g's input params (its step's `with`), expanded in g's
 * scope ({{item}} is g's, {{steps.S}} its siblings', {{inputs.params.X}}
 * its enclosing group's) and checked against the template's declared
 * types, into *out (caller frees with util_free_kvs). 0, or -EINVAL with
 * a reason naming the input in err. */
int flow_group_inputs(sched_t *s, task_t *g, Drover__KeyValue ***out, size_t *n, char *err,
                      size_t errlen);
/* Group instance g ended well: its declared outputs from its members
 * (a param whose source did not succeed is left out, so a reader of it
 * gets "no such output"), recorded on g. */
void flow_group_outputs(sched_t *s, task_t *g);

/* --- placer.c */
/* Whether agent a can take task t now (labels, resources, state). */
bool placer_fits(const agent_t *a, const task_t *t);
/* What of that does not change while t waits: spot: require, images,
 * labels. */
bool placer_suits(const agent_t *a, const task_t *t);
/* How much t would rather not run on a (0 = best), -1 = not at all: its
 * spot policy, then nodes at risk last. ondemand_fleet: an on-demand
 * agent is in service (the fallback to on-demand needs one). */
int placer_rank(const agent_t *a, const task_t *t, bool ondemand_fleet);
/* Assign READY tasks to agents with room, at most a bounded batch per
 * call; true if it stopped at that bound with tasks left to place (call
 * again in the next loop iteration). */
bool placer_place(sched_t *s);
/* Queue the assignment message for t's current attempt to its agent. */
void placer_send_assignment(sched_t *s, task_t *t);
/* Take parked t out of its park (dag_ready_remove does it). */
void placer_unpark(sched_t *s, task_t *t);
/* Free every park (shutdown; the tasks are freed by their runs). */
void placer_parks_free(sched_t *s);
void placer_why_init(sched_t *s, placer_why_t *c);
/* Why READY t is not running, in words a user acts on, starting with
 * "waiting: " ("waiting: no agent in service offers gpus: 1 (the largest
 * has 0; 2 agents)", "waiting: run parallelism 4 reached (4 running)",
 * "waiting: all 3 agents that fit are busy (the most free cpu is 0.5, 1
 * wanted)", a pool's words from pools_explain). The text is c's (valid until the
 * next call with c), at most PLACER_WHY_LEN - 1 bytes (truncated). O(1) for
 * a shape c knows, else O(agents + pools). */
const char *placer_why(sched_t *s, const task_t *t, placer_why_t *c);
/* Every READY task counted by reason (placer_why without "waiting: "),
 * most first, at most max reasons (the rest under "other reasons"):
 * reasons[i] (caller frees each and the array) with counts[i]. Returns how
 * many; *total: READY tasks. O(1) per parked shape and per held run,
 * O(tasks) for the ready queue itself (what no pass parked). */
size_t placer_waiting_counts(sched_t *s, size_t max, char ***reasons, uint64_t **counts,
                             uint64_t *total);

/* --- agents.c */
/* Handle one frame that arrived on connection conn (its routing id).
 * key: with CURVE, the sender's authorized key (auth_agent_key), which
 * names the one agent it may be; NULL without CURVE. A Register binds
 * the connection to the agent it names (if the key allows); any other
 * message counts only on a bound connection. */
void agents_handle(sched_t *s, zframe_t *conn, const keys_entry_t *key, const uint8_t *data,
                   size_t len);
/* The authorized keys changed (SIGHUP): an agent whose key is gone, or
 * now names another agent, is lost at once and its connection unbound. */
void agents_keys_changed(sched_t *s);
/* Periodic: lost agents, re-sending unacknowledged assignments. */
void agents_tick(sched_t *s);

/* Forget agent a (`drover agent forget`): it must be disconnected with no
 * tasks. It leaves every list and index now and is freed; its record is
 * deleted at the next commit (journal_forget_agent). An agent of that name
 * that registers later starts afresh. */
void agents_forget(sched_t *s, agent_t *a);

/* --- blobs.c: blob transfers (the store itself: blobstore.h) */
/* The transfers table, and the blob store (blobstore_init). 0 or -errno. */
int blobs_init(sched_t *s);
/* End every transfer (their temp files go). */
void blobs_shutdown(sched_t *s);
/* Agent → droverd upload, droverd → agent fetch. */
void blobs_offer(sched_t *s, agent_t *a, const Drover__UploadOffer *o);
void blobs_chunk_in(sched_t *s, agent_t *a, const Drover__BlobChunk *c);
void blobs_fetch(sched_t *s, agent_t *a, const Drover__FetchRequest *f);
void blobs_chunk_ack(sched_t *s, agent_t *a, const Drover__ChunkAck *ack);
/* Drop the transfers of an agent that went away or re-registered. */
void blobs_agent_gone(sched_t *s, agent_t *a);
/* Answer an API read of a blob range (reply queued when read). */
void blobs_api_read(sched_t *s, zframe_t *identity, const uint8_t digest[32], uint64_t offset,
                    size_t max);

/* --- api.c */
/* Handle one API request frame from an admin; queues exactly one reply. */
void api_handle(sched_t *s, zframe_t *identity, const uint8_t *data, size_t len);
/* Set resp's error (formatted into *owned, which the caller frees) and its kind. */
void api_set_error(Drover__ApiResponse *resp, char **owned, Drover__ApiErrorCode code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* --- api_schedules.c: the schedule requests */
/* The role a schedule request needs (list: read; else submit). */
api_role_t api_schedule_role(const Drover__ScheduleRequest *req);
/* Handle req for caller into resp (*err: an error message it owns, freed
 * by the caller); api_schedule_done frees what it added to resp. */
void api_schedule(sched_t *s, const api_caller_t *caller, const Drover__ScheduleRequest *req,
                  Drover__ApiResponse *resp, char **err);
void api_schedule_done(Drover__ApiResponse *resp);
/* The same for a caller whose role limits what it may do. */
void api_handle_as(sched_t *s, const api_caller_t *caller, zframe_t *identity, const uint8_t *data,
                   size_t len);

/* --- auth.c */
/* Load keys, check the safe defaults, start the ZAP handler (before any
 * socket binds). 0, or -errno with the reason in err. */
int auth_init(sched_t *s, char *err, size_t errlen);
/* Make sock a CURVE server if that side is secured (before binding). */
void auth_secure(sched_t *s, zsock_t *sock, bool api);
/* ipc:// endpoints: make the socket's directory (0770) before binding,
 * and the socket 0660 after. */
int auth_prepare_ipc(const char *endpoint, char *err, size_t errlen);
void auth_after_bind(const char *endpoint);
/* SIGHUP: reload authorized-keys and api-keys. */
void auth_reload(sched_t *s);
/* The authorized key a message on the agents socket was sent with: *key
 * (NULL without CURVE) and 0, or -EPERM with why in buf (unknown key;
 * counted), or -EAGAIN (not counted) for an unknown key while join tokens
 * exist: the message may be a Join, for tokens_join. */
int auth_agent_key(sched_t *s, zframe_t *body, const keys_entry_t **key, char *buf, size_t len);
/* The refusal of a message from unknown key user (may be NULL) into buf,
 * counted in refused_agents. */
void auth_unknown_key(sched_t *s, const char *user, char *buf, size_t len);
/* Count and log a failed CURVE handshake on the agents socket. */
void auth_handshake_failed(sched_t *s, int event, int value, const char *address);
/* Who sent an API request: 0, or -EPERM for an unknown key (why says so). */
int auth_api_caller(sched_t *s, zframe_t *body, api_caller_t *caller, char *why, size_t len);
void auth_shutdown(sched_t *s);

/* --- pools.c: node pools (README "Autoscaling node pools") */
/* The pools of s->cfg.pools and what the store knows of their nodes
 * (after tokens_init). 0 or -errno. */
int pools_init(sched_t *s);
void pools_free(sched_t *s);
/* Watch the nodes, work out demand, grow and shrink, call providers (the
 * 100 ms tick; demand every 500 ms). */
void pools_tick(sched_t *s, int64_t now_ms);
/* The commit phase: changed node records and holds; then mark them
 * durable (a provider is called only about durable decisions). */
int pools_commit(sched_t *s);
void pools_after_commit(sched_t *s);
/* What a READY task of t's shape that no agent in service can take waits
 * for in the node pools, in words ("pool gpu-spot is growing: 2 nodes
 * booting", "pool gpu-spot is at its max (20 nodes)", ...), written into
 * buf without the "waiting: " prefix. fallback: t's spot fallback to
 * on-demand is on. false (buf untouched) when no pool could ever hold
 * such a task. O(pools): call it once per shape, not per task. */
bool pools_explain(sched_t *s, const task_t *t, bool fallback, char *buf, size_t len);
/* `drover pools`, `drover pool scale|drain`: the role a request needs,
 * its handling into resp (*err: an error it owns), and freeing what it
 * added to resp. */
api_role_t pools_api_role(const Drover__PoolRequest *req);
void pools_api(sched_t *s, const api_caller_t *caller, const Drover__PoolRequest *req,
               Drover__ApiResponse *resp, char **err);
void pools_api_done(Drover__ApiResponse *resp);

/* --- events.c: the event log (README "Events") */
/* agent_t.committed_state bits */
#define AGENT_EV_WRITTEN   0x80
#define AGENT_EV_CONNECTED 0x01
#define AGENT_EV_DRAINED   0x02
#define AGENT_EV_NOTICED   0x04
/* next_seq from the store (after it is open). */
void events_init(sched_t *s);
/* Free events_derive's scratch (sched_destroy). */
void events_free(sched_t *s);
/* Commit phase, inside the write transaction, once the dirty records are
 * written: an event for each difference between what was written now and
 * what was written last (an agent's connection, drain and notice; a
 * task's status and latest checkpoint; a run's status), which then
 * becomes the last written. Agents first, then tasks, then runs, each in
 * the order they were marked (causes before effects). 0 or -errno. */
int events_derive(sched_t *s);
/* A pool node's state changed (pools_commit): from ("" = new) → to. */
int events_pool_node(sched_t *s, const char *pool, const char *node, const char *from,
                     const char *to, const char *why);
/* Commit phase, last: the pruning pass when one is due, and the seq
 * counter when events were put. 0 or -errno. */
int events_commit(sched_t *s);
/* After the commit (committed: it succeeded): the pending events count,
 * or are forgotten; an unfinished prune asks for the next commit. */
void events_after_commit(sched_t *s, bool committed);
/* An EventsRequest (role read) into resp (events, first_seq, truncated,
 * next_seq); a bad request (max over 10000, wait_ms over 60000, an
 * unknown run) gets resp's error (in *err, which the caller frees).
 * Returns true when the request is held instead (wait_ms, nothing yet):
 * it took identity and answers it itself (events_wake, or its timer). */
bool events_api(sched_t *s, zframe_t *identity, const Drover__EventsRequest *req,
                Drover__ApiResponse *resp, char **err);
/* Right after a commit succeeded, before anything it wrote is freed: answer
 * the held requests that the events it put match, from the batch. */
void events_wake(sched_t *s);
/* Free what events_api added to resp. */
void events_api_done(Drover__ApiResponse *resp);
/* The seq of the last event committed (0: none yet): RunView.event_seq,
 * where a reader of /events starts to follow what a view showed. */
uint64_t events_last_seq(const sched_t *s);

/* --- tokens.c: join tokens (README "Join tokens") */
/* Load every token record from the store (before auth_init). 0 or -errno. */
int tokens_init(sched_t *s);
void tokens_free(sched_t *s);
/* Whether any token record exists (then unknown keys may try a Join). */
bool tokens_any(const sched_t *s);
/* Commit phase: write the tokens changed since the last commit. 0 or -errno. */
int tokens_commit(sched_t *s);
/* Mint a one-use token bound to node_name for pool (the pool manager, for
 * a node it creates): 0 and *token_out (the token's text, shown to no
 * one else; caller frees), or -EINVAL with why in err. Durable at the
 * next commit, before anything is sent. */
int tokens_mint(sched_t *s, const char *pool, const char *node_name, uint64_t ttl_ms,
                char **token_out, char *err, size_t errlen);
/* "drv1.<8 hex>.<64 hex>" → id and the secret's bytes: 0 or -EINVAL. */
int tokens_parse(const char *text, char id[9], uint8_t secret[32]);
/* Why r does not admit name with secret at now_ms (a reason for the
 * agent, possibly formatted into buf), or NULL: it does. The hash is
 * compared in constant time. */
const char *tokens_refusal(const Drover__TokenRecord *r, const uint8_t secret[32], const char *name,
                           int64_t now_ms, char *buf, size_t len);
/* valid, expired, used or revoked (a static string). */
const char *tokens_state(const Drover__TokenRecord *r, int64_t now_ms);
/* A message on the agents socket from an unknown key (auth_agent_key said
 * -EAGAIN): a Join is checked and, admitted, its key authorized for its
 * name and the message handled by agents_handle; anything else refused. */
void tokens_join(sched_t *s, zframe_t *conn, zframe_t *body);
/* Add the keys of every live token's admissions to keys (Z85 →
 * keys_entry_t; a key already there stays as it is). */
void tokens_add_keys(sched_t *s, zhashx_t *keys);
/* `drover agent forget NAME`: the keys tokens admitted for name are
 * revoked (the admissions dropped, in the next commit). */
void tokens_forget_node(sched_t *s, const char *name);
/* A TokenRequest (admin) into resp: create (resp->token: the token, once),
 * revoke, list (resp->tokens). *err: an error message it owns. */
void tokens_api(sched_t *s, const api_caller_t *caller, const Drover__TokenRequest *req,
                Drover__ApiResponse *resp, char **err);
/* Free what tokens_api added to resp. */
void tokens_api_done(Drover__ApiResponse *resp);
/* "<prefix><8 hex>.<64 hex>" → id and the secret's bytes: 0 or -EINVAL
 * (tokens_parse is it with "drv1.", apitokens_parse with "drva1."). */
int tokens_parse_as(const char *text, const char *prefix, char id[9], uint8_t secret[32]);
/* Whether secret's SHA-256 is r's (compared in constant time). */
bool tokens_secret_matches(const Drover__TokenRecord *r, const uint8_t secret[32]);
/* Add a new token made of tmpl (copied; its id, hash, created_ms and
 * expires_ms, ttl_ms after created_ms or 0 when ttl_ms is 0, are set
 * here) with a fresh random id and secret: *text_out gets
 * "<prefix><id>.<secret>" (caller frees; shown once), the token is
 * returned (owned by s->tokens) and written by the next commit. */
token_t *tokens_new(sched_t *s, const Drover__TokenRecord *tmpl, uint64_t ttl_ms,
                    const char *prefix, char **text_out);
/* Replace t's record with a copy of m (which may point into t->rec),
 * written by the next commit. */
void tokens_update(sched_t *s, token_t *t, const Drover__TokenRecord *m);

/* --- apitokens.c: bearer API tokens (README "API tokens") */
/* Whether r is an API token's record (it has a role), not a join token's. */
bool apitokens_is_api(const Drover__TokenRecord *r);
/* "drva1.<8 hex>.<64 hex>" → id and the secret's bytes: 0 or -EINVAL. */
int apitokens_parse(const char *text, char id[9], uint8_t secret[32]);
/* Authenticate a request's bearer token at now_ms: 0 with *caller set to
 * act as the token (its role and name, caller->token), or -EACCES with
 * why the token is refused in buf (unknown, revoked, expired, malformed;
 * never the secret), counted in refused_tokens. */
int apitokens_check(sched_t *s, const char *bearer, int64_t now_ms, api_caller_t *caller, char *buf,
                    size_t len);
/* Create an API token for req (role, name, ttl_ms) by caller: 0 with
 * resp->token (the text, once; tokens_api_done frees it) and *made, or
 * -EINVAL/-EEXIST with why in buf. */
int apitokens_create(sched_t *s, const api_caller_t *caller, const Drover__TokenRequest *req,
                     Drover__ApiResponse *resp, token_t **made, char *buf, size_t len);
/* The API token named name: the valid one, else the newest of that name;
 * NULL when none. */
token_t *apitokens_find_name(sched_t *s, const char *name, int64_t now_ms);
/* Commit phase: whether t's last use is worth writing now (lazily: at most
 * once a minute a token, and only with a commit that happens anyway). */
bool apitokens_stale_use(const token_t *t);

#endif
