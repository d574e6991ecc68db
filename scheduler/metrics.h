/* metrics — what droverd measures for its metrics (README "Metrics";
 * included by sched_internal.h, after the model's types: include that
 * instead).
 *
 * Only what cannot be counted on request is kept here, in fixed arrays:
 * a histogram observation is a bucket search over at most
 * METRICS_BUCKETS_MAX bounds and two additions, a counter an increment;
 * nothing allocates. Tasks by status are counted by the model itself,
 * per run (run_t.n_status, kept by task_set_status), so a scrape sums
 * runs, never walks tasks; everything else (runs, agents, pools, the
 * blob store, the event log) is counted by metrics.c when asked.
 * Counters start at zero with droverd (Prometheus' rate() takes the
 * reset).
 */
#ifndef DROVER_METRICS_H
#define DROVER_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define METRICS_BUCKETS_MAX 20

/* A histogram: counts[i] observations <= bounds[i] (and above
 * bounds[i-1]); counts[n_bounds] those above the last bound. The bounds
 * are the histogram's owner's (a static array). */
typedef struct {
    uint64_t counts[METRICS_BUCKETS_MAX + 1];
    double sum;
} metrics_hist_t;

typedef struct {
    metrics_hist_t dispatch;   /* READY → RUNNING (the agent's STARTED handled), seconds */
    metrics_hist_t commit;     /* the commit phase's LMDB transaction, begin to durable, seconds */
    uint64_t preemptions;      /* attempts handed back PREEMPTED (a notice, a drill) */
    uint64_t lost;             /* attempts LOST (agent silent, or restarted without it) */
    uint64_t checkpoints;      /* checkpoints committed */
    uint64_t checkpoint_bytes; /* their artifacts' bytes */
    int64_t started_ms;        /* when droverd started (sched_new) */
} sched_metrics_t;

/* The buckets' upper bounds (seconds) of the two histograms: dispatch
 * latency spans a busy local fleet's milliseconds to a backlog's hours; a
 * commit is an fsync, milliseconds, seconds on a sick disk. */
#define METRICS_DISPATCH_BOUNDS                                                                    \
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600
#define METRICS_COMMIT_BOUNDS                                                                      \
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5

/* Monotonic microseconds (vDSO clock_gettime: tens of nanoseconds). */
static inline int64_t metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Count v (seconds) into h, whose bounds are bounds[0..n). */
static inline void metrics_observe(metrics_hist_t *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
}

/* A task started running (dag.c) v seconds after it became READY. */
static inline void metrics_observe_dispatch(sched_metrics_t *m, double v)
{
    static const double b[] = {METRICS_DISPATCH_BOUNDS};
    metrics_observe(&m->dispatch, b, sizeof b / sizeof *b, v);
}

/* A commit (commit.c) took v seconds. */
static inline void metrics_observe_commit(sched_metrics_t *m, double v)
{
    static const double b[] = {METRICS_COMMIT_BOUNDS};
    metrics_observe(&m->commit, b, sizeof b / sizeof *b, v);
}

#endif
