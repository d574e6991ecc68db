/* agent_internal — the agent's in-memory model, shared by its modules.
 *
 *   agent.c  the loop, socket, registration, heartbeats, the outbox,
 *            assignments and the attempt life cycle;
 *   spot.c   progress lines, checkpoint commits, preemption notices and
 *            the drain that hands work back before a node is reclaimed.
 * Everything runs on the loop thread; file I/O and hashing go to the
 * worker (transfer.c), cloud metadata HTTP to the watchers' thread
 * (preempt.c).
 */
#ifndef DROVER_AGENT_INTERNAL_H
#define DROVER_AGENT_INTERNAL_H

#include <czmq.h>
#include <ev.h>

#include "agent.h"
#include "gpu.h"
#include "idmap.h"
#include "keys.h"
#include "outbox.h"
#include "preempt.h"
#include "progress.h"
#include "result.h"
#include "runtime.h"
#include "transfer.h"
#include "workdirs.h"
#include "exits.h"
#include "zev.h"

#define FINISHED_MEMORY 4096 /* finished attempt ids remembered (re-sent assignments) */

typedef struct attempt attempt_t;
struct attempt {
    agent_t *agent;
    uint64_t id;
    char *run_id, *task, *dir;
    uint32_t number;
    Drover__Assignment *as; /* a copy: the process starts after inputs arrive */
    rt_task_t *proc;        /* the running step (process or container) */
    int gpus[GPU_MAX];      /* device indexes allocated to it */
    size_t n_gpus;
    xfer_in_t *xin;   /* fetching inputs, before the process */
    xfer_out_t *xout; /* uploading outputs, after it */
    runner_exit_t result;
    /* Why it failed for the agent's own reasons (owned; NULL: it did not):
     * reported as a system error, which droverd retries elsewhere without
     * spending the step's retries. */
    char *system_error;
    uint8_t *logbuf;
    size_t loglen;
    uint64_t log_start; /* stream offset of logbuf[0] */
    /* as->capture_result: the step's stdout, bounded (result.h), and once
     * it exited the result for the EXITED report (owned). */
    result_t result_out;
    char *captured;
    bool exited;
    bool queued;   /* accepted, waiting in the start queue */
    bool dir_made; /* workdirs_make called: workdirs_release follows */
    bool kill_logged;
    /* Progress and checkpoints (spot.c). */
    int progress_fd; /* $DROVER_PROGRESS, read as the task appends; -1 = none */
    uint64_t progress_off;
    progress_reader_t *progress_rd;
    float progress;   /* latest fraction; -1 = none reported */
    bool ck_pending;  /* a checkpoint line not committed yet */
    uint64_t ck_step; /* ... its step and time */
    int64_t ck_time_ms;
    uint64_t up_step; /* the checkpoint being uploaded */
    int64_t up_time_ms;
    int64_t ck_last_mono; /* when the last commit began; 0 = never */
    bool ck_warned;       /* "checkpointing is off" logged once */
    xfer_memo_t *ck_memo; /* digests of its checkpoint files (worker only) */
    bool final_commit;    /* the upload is the preempted task's last */
    char *ck_snap;        /* snapshot of the newest pending line (dir) */
    char *up_snap;        /* snapshot being uploaded (dir) */
    unsigned snap_seq;    /* names snapshots <dir>/snap-<seq> */
    /* Preemption. */
    bool preempted;     /* signalled for a preemption: it ends PREEMPTED */
    ev_timer preempt_w; /* SIGKILL at min(grace, deadline - upload margin) */
    attempt_t *pending_next, *dead_next;
};

struct agent {
    agent_config_t cfg;
    struct ev_loop *loop;
    zsock_t *sock;
    zev_t *zev;
    ev_prepare flush_w;
    ev_timer heartbeat_w, logflush_w, stop_w, watchdog_w;
    ev_signal sigint_w, sigterm_w;
    bool registered, stopping, want_send;
    bool joined;                /* registered once with the join token: no more Join */
    bool forced;                /* a second stop signal: no more draining */
    int64_t refused_until_mono; /* droverd refused us: next try after this */
    int64_t refused_backoff_ms;
    int64_t last_rx_mono;
    char incarnation[33]; /* this process's Register.incarnation (random) */
    /* Connection: CURVE keys (NULL without), when this socket was made, and
     * the back-off of the "droverd does not answer" warning. */
    zcert_t *cert, *scheduler_cert;
    int64_t connected_mono;
    int64_t silence_warn_mono, silence_warn_ms;
    outbox_t *outbox;
    exits_t *exits;    /* EXITED reports on disk until acked (may be NULL) */
    idmap_t *attempts; /* running (or finishing) attempts by id */
    idmap_t *finished; /* recently finished attempt ids (value unused) */
    uint64_t finished_ring[FINISHED_MEMORY];
    size_t finished_pos;
    uint64_t *acks;
    size_t n_acks;
    attempt_t *dead;
    attempt_t *pending_head, *pending_tail; /* accepted, not started yet */
    ev_idle starts_w;
    runtime_t *rt;             /* how steps run (process or a container runtime) */
    gpu_info_t gpu_info;       /* detected or --gpus */
    gpu_pool_t *gpus;          /* which device indexes are free */
    Drover__KeyValue **labels; /* --labels plus gpu.model */
    size_t n_labels;
    worker_t *worker;     /* artifact I/O and hashing */
    workdirs_t *workdirs; /* attempt dirs, recycled */
    xfer_host_t xfer;
    char *cache_dir;
    xfer_cache_t *cache; /* its bound and counters (transfer.c) */
    /* transfer messages for the next batch (owned) */
    Drover__UploadOffer **offers;
    size_t n_offers;
    Drover__BlobChunk **chunks;
    size_t n_chunks;
    Drover__ChunkAck **chunk_acks;
    size_t n_chunk_acks;
    Drover__FetchRequest **fetches;
    size_t n_fetches;
    /* Spot (spot.c): the node's preemption notice, and the watchers. */
    preempt_watch_t *watch;
    ev_timer progress_w;
    bool noticed, terminating;  /* terminating: it goes away (else: at risk) */
    int64_t notice_deadline_ms; /* the earliest of the terminating notices; 0 = none given */
    char notice_reason[256];    /* of the notice that set the deadline */
    char notice_source[16];     /* "aws", "gcp", "azure" for a cloud's; "" otherwise */
    bool drained_logged;        /* after a terminating notice, all work handed back */
    ev_timer drill_w;           /* a drill's deadline: its end (or the agent's, --drill-exit) */
};

/* --- agent.c */
Drover__Report *agent_report_new(const attempt_t *at, Drover__ReportKind kind);
/* Queue a report in the outbox (sent with the next batch). Takes r. */
void agent_queue_report(agent_t *a, Drover__Report *r);
/* The attempt is over and reported: forget it (freed after the batch). */
void agent_retire(agent_t *a, attempt_t *at);
/* After the step's process ended (and any checkpoint upload): upload
 * outputs or report the exit. */
void agent_finish_attempt(attempt_t *at);
/* Take a queued attempt out of the start queue. */
void agent_unqueue(agent_t *a, attempt_t *at);
void agent_send_heartbeat(agent_t *a);

/* --- spot.c */
/* Start watching the clouds' metadata, per the config (none: no-op). */
void spot_start(agent_t *a);
void spot_stop(agent_t *a);
/* The step's process started: follow its progress file. */
void spot_attempt_started(attempt_t *at);
/* Read what the task appended to its progress file. */
void spot_read_progress(attempt_t *at);
/* Free what spot.c holds for the attempt. */
void spot_attempt_free(attempt_t *at);
/* The process ended after a preemption signal: commit its last
 * checkpoint if it left one, then report it PREEMPTED. */
void spot_finish_preempted(attempt_t *at);
/* Report an attempt that never ran (or whose inputs were still coming)
 * as PREEMPTED. */
void spot_report_unstarted(attempt_t *at);
/* A notice (a cloud's, SIGTERM, or droverd's drill). terminate: the node
 * goes away at deadline_ms (0 = unknown); else it is only at risk. A
 * terminating notice after the first one only moves the deadline earlier
 * (and the SIGKILLs planned from it), never later. */
void spot_notice(agent_t *a, bool terminate, int64_t deadline_ms, const char *reason);
/* droverd's drill (drover agent preempt): a terminating notice that ends
 * at its deadline: the agent then exits (--drill-exit, as a reclaimed node
 * would) or takes work again. spot_drill_end ends it at once (drover agent
 * undrain); a cloud's or SIGTERM's notice is not ended by it. */
void spot_drill(agent_t *a, int64_t deadline_ms, const char *reason);
void spot_drill_end(agent_t *a, const char *why);
/* The notice as sent in heartbeats and registration (NULL = none; the
 * caller frees nothing: it points into a). */
Drover__PreemptNotice *spot_notice_message(agent_t *a, Drover__PreemptNotice *buf);
/* Once a terminating node has handed back all its work. */
void spot_check_drained(agent_t *a);
/* droverd killed at (cancelled, superseded): its checkpoint upload and
 * pending snapshot are dropped, and later checkpoint lines are ignored,
 * so its end is reported at once. */
void spot_drop_checkpoints(attempt_t *at);

#endif
