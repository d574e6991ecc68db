/* metrics — droverd's metrics as a MetricsView (README "Metrics"), made
 * on request (ApiRequest.metrics, api.c) on the loop thread.
 *
 * What metrics.h measured since droverd started (the dispatch and commit
 * histograms, preemptions, lost attempts, checkpoints) is copied; the
 * rest is counted now from what droverd holds anyway, bounded by what it
 * holds rather than by tasks: tasks by status sum each run's n_status
 * (kept by task_set_status), runs by status walk the runs, agents the
 * fleet, pool nodes and demand come from the pools' own view
 * (pools_api's list), the blob store's size from store_blob_totals (kept
 * by the commits), the event log's extent from its first key and
 * next_seq. The refusal counters and the READY tasks by reason are the
 * StatusView's (`drover status` shows the same numbers). Every family is
 * always present, zeros included, so alert rules need no absent().
 *
 * The view owns every string and array it holds (malloc), so it is freed
 * with free_unpacked (metrics_view_free). Names follow Prometheus'
 * conventions: drover_ prefix, base units in the name (_seconds,
 * _bytes), counters end _total.
 */
#include "sched_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static const double dispatch_bounds[] = {METRICS_DISPATCH_BOUNDS};
static const double commit_bounds[] = {METRICS_COMMIT_BOUNDS};
_Static_assert(sizeof dispatch_bounds / sizeof *dispatch_bounds <= METRICS_BUCKETS_MAX,
               "dispatch buckets");
_Static_assert(sizeof commit_bounds / sizeof *commit_bounds <= METRICS_BUCKETS_MAX,
               "commit buckets");

/* Append a new family to v and return it. */
static Drover__MetricFamily *family(Drover__MetricsView *v, const char *name, const char *type,
                                    const char *help)
{
    Drover__MetricFamily *f = xmalloc(sizeof *f);
    drover__metric_family__init(f);
    f->name = xstrdup(name);
    f->type = xstrdup(type);
    f->help = xstrdup(help);
    v->families = xrealloc(v->families, (v->n_families + 1) * sizeof *v->families);
    v->families[v->n_families++] = f;
    return f;
}

/* Append a sample of value to f with the labels given as key, value
 * pairs (n_labels of them). */
static Drover__MetricSample *sample(Drover__MetricFamily *f, double value, size_t n_labels, ...)
{
    Drover__MetricSample *s = xmalloc(sizeof *s);
    drover__metric_sample__init(s);
    s->value = value;
    if (n_labels) {
        s->labels = xcalloc(n_labels, sizeof *s->labels);
        va_list ap;
        va_start(ap, n_labels);
        for (size_t i = 0; i < n_labels; i++) {
            const char *k = va_arg(ap, const char *), *val = va_arg(ap, const char *);
            Drover__KeyValue *kv = xmalloc(sizeof *kv);
            drover__key_value__init(kv);
            kv->key = xstrdup(k);
            kv->value = xstrdup(val);
            s->labels[s->n_labels++] = kv;
        }
        va_end(ap);
    }
    f->samples = xrealloc(f->samples, (f->n_samples + 1) * sizeof *f->samples);
    f->samples[f->n_samples++] = s;
    return s;
}

static void one(Drover__MetricsView *v, const char *name, const char *type, const char *help,
                double value)
{
    sample(family(v, name, type, help), value, 0);
}

static void histogram(Drover__MetricsView *v, const char *name, const char *help,
                      const metrics_hist_t *h, const double *bounds, size_t n)
{
    Drover__MetricSample *s = sample(family(v, name, "histogram", help), 0, 0);
    s->n_bounds = n;
    s->bounds = xmalloc(n * sizeof *s->bounds);
    memcpy(s->bounds, bounds, n * sizeof *s->bounds);
    s->n_buckets = n + 1;
    s->buckets = xmalloc((n + 1) * sizeof *s->buckets);
    memcpy(s->buckets, h->counts, (n + 1) * sizeof *s->buckets);
    s->sum = h->sum;
}

/* A status name as a label value: "SUCCEEDED" → "succeeded". */
static const char *lower(const char *name, char *buf, size_t len)
{
    size_t i = 0;
    for (; name[i] && i + 1 < len; i++)
        buf[i] = (char)tolower((unsigned char)name[i]);
    buf[i] = '\0';
    return buf;
}

#ifndef NDEBUG
/* Debug builds (the sanitizer build): r's n_status must be what a walk
 * of its tasks counts; a status changed without task_set_status aborts
 * here, in the tests that scrape. */
static void check_counts(const run_t *r)
{
    uint32_t n[TASK_STATUS_SLOTS] = {0};
    for (size_t i = 0; i < r->n_tasks; i++) {
        unsigned st = (unsigned)r->tasks[i]->status;
        n[st < TASK_STATUS_SLOTS - 1 ? st : TASK_STATUS_SLOTS - 1]++;
    }
    for (size_t k = 0; k < TASK_STATUS_SLOTS; k++)
        if (n[k] != r->n_status[k]) {
            log_error("metrics: run %s has %u tasks of status %zu, counted %u", r->rec->id, n[k], k,
                      r->n_status[k]);
            abort();
        }
}
#endif

static void tasks_and_runs(sched_t *s, Drover__MetricsView *v)
{
    uint64_t tasks[TASK_STATUS_SLOTS] = {0};
    uint64_t runs[DROVER__RUN_STATUS__RUN_CANCELLED + 1] = {0};
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        const run_t *r = s->dag.runs[i];
        if (r->deleting)
            continue;
#ifndef NDEBUG
        check_counts(r);
#endif
        for (size_t k = 0; k < TASK_STATUS_SLOTS; k++)
            tasks[k] += r->n_status[k];
        if ((unsigned)r->rec->status <= DROVER__RUN_STATUS__RUN_CANCELLED)
            runs[r->rec->status]++;
    }
    char buf[32];
    Drover__MetricFamily *f =
        family(v, "drover_tasks", "gauge", "Tasks of the runs droverd holds, by status.");
    for (size_t k = 0; k + 1 < TASK_STATUS_SLOTS; k++)
        sample(f, (double)tasks[k], 1, "status",
               lower(util_task_status_name((Drover__TaskStatus)k), buf, sizeof buf));
    f = family(v, "drover_runs", "gauge", "Runs droverd holds, by status.");
    for (size_t k = 0; k <= DROVER__RUN_STATUS__RUN_CANCELLED; k++)
        sample(f, (double)runs[k], 1, "status",
               lower(util_run_status_name((Drover__RunStatus)k), buf, sizeof buf));
}

static void agents(sched_t *s, Drover__MetricsView *v)
{
    static const char *states[] = {"connected", "draining", "preempting", "lost"};
    uint64_t n[4][2] = {{0}};
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (!a->connected && a->capacity.cpu_milli == 0 && !a->n_tasks)
            continue; /* spoke once, never registered (as `drover agents`) */
        size_t st = !a->connected ? 3 : a->noticed ? 2 : a->drained ? 1 : 0;
        n[st][a->spot ? 1 : 0]++;
    }
    Drover__MetricFamily *f = family(v, "drover_agents", "gauge",
                                     "Agents by state (connected: in service; draining: drained; "
                                     "preempting: under a preemption notice; lost: disconnected) "
                                     "and class (spot, on_demand).");
    for (size_t st = 0; st < 4; st++)
        for (size_t c = 0; c < 2; c++)
            sample(f, (double)n[st][c], 2, "state", states[st], "class", c ? "spot" : "on_demand");
}

static void pools(sched_t *s, const api_caller_t *caller, Drover__MetricsView *v)
{
    static const char *states[] = {"requested", "booting", "up", "draining", "deleting"};
    Drover__PoolRequest req = DROVER__POOL_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    pools_api(s, caller, &req, &resp, &err); /* the list: reads only */
    Drover__MetricFamily *nodes =
        family(v, "drover_pool_nodes", "gauge",
               "Nodes of each node pool by state (removed ones left out).");
    Drover__MetricFamily *demand = family(v, "drover_pool_demand_nodes", "gauge",
                                          "Nodes the waiting tasks need from each pool beyond "
                                          "those it has (the last demand pass).");
    Drover__MetricFamily *waiting = family(v, "drover_pool_waiting_tasks", "gauge",
                                           "Waiting tasks each pool's nodes would take.");
    Drover__MetricFamily *cost = family(v, "drover_pool_cost_per_hour", "gauge",
                                        "Each pool's price times its nodes not removed.");
    for (size_t i = 0; i < resp.n_pools; i++) {
        const Drover__PoolView *p = resp.pools[i];
        uint64_t n[5] = {0};
        for (size_t k = 0; k < p->n_nodes; k++)
            if ((unsigned)p->nodes[k]->state < 5)
                n[p->nodes[k]->state]++;
        for (size_t k = 0; k < 5; k++)
            sample(nodes, (double)n[k], 2, "pool", p->name, "state", states[k]);
        sample(demand, p->demand, 1, "pool", p->name);
        sample(waiting, p->waiting, 1, "pool", p->name);
        sample(cost, p->cost_per_hour, 1, "pool", p->name);
    }
    pools_api_done(&resp);
    free(err);
}

Drover__MetricsView *metrics_view(sched_t *s, const api_caller_t *caller,
                                  const Drover__StatusView *st, int64_t began_us)
{
    const sched_metrics_t *m = &s->metrics;
    Drover__MetricsView *v = xmalloc(sizeof *v);
    drover__metrics_view__init(v);
    v->time_ms = util_now_ms();

    Drover__MetricFamily *f =
        family(v, "drover_build_info", "gauge", "droverd's version (the value is 1).");
    sample(f, 1, 1, "version", DROVER_VERSION);
    one(v, "drover_start_time_seconds", "gauge",
        "When droverd started, in seconds since the epoch.", (double)m->started_ms / 1000.0);
    histogram(v, "drover_dispatch_latency_seconds",
              "Time from a task becoming READY to droverd handling its agent's STARTED report "
              "(tasks made READY since droverd started).",
              &m->dispatch, dispatch_bounds, sizeof dispatch_bounds / sizeof *dispatch_bounds);
    histogram(v, "drover_commit_duration_seconds",
              "The commit phase's LMDB write transaction, from begin to durable (one per loop "
              "iteration with changes).",
              &m->commit, commit_bounds, sizeof commit_bounds / sizeof *commit_bounds);
    one(v, "drover_preemptions_total", "counter",
        "Attempts handed back PREEMPTED (a preemption notice or drill).", (double)m->preemptions);
    one(v, "drover_attempts_lost_total", "counter",
        "Attempts LOST (their agent went silent, or restarted without them).", (double)m->lost);
    one(v, "drover_checkpoints_total", "counter", "Checkpoints committed.", (double)m->checkpoints);
    one(v, "drover_checkpoint_bytes_total", "counter", "Bytes of the checkpoints committed.",
        (double)m->checkpoint_bytes);
    f = family(v, "drover_refusals_total", "counter",
               "What droverd refused or dropped, by kind (as drover status shows).");
    for (size_t i = 0; st && i < st->n_counters; i++)
        sample(f, strtod(st->counters[i]->value, NULL), 1, "kind", st->counters[i]->key);

    tasks_and_runs(s, v);
    f = family(v, "drover_tasks_waiting", "gauge",
               "READY tasks by why they wait (as drover status shows; at most 20 reasons, the "
               "rest as \"other reasons\").");
    for (size_t i = 0; st && i < st->n_waiting; i++)
        sample(f, (double)st->waiting[i]->count, 1, "reason", st->waiting[i]->reason);
    agents(s, v);
    pools(s, caller, v);

    uint64_t blobs = 0, blob_bytes = 0;
    store_blob_totals(s->store, &blobs, &blob_bytes);
    one(v, "drover_blobs", "gauge", "Blobs (artifact and checkpoint files) in the blob store.",
        (double)blobs);
    one(v, "drover_blob_bytes", "gauge", "Bytes of the blobs in the blob store.",
        (double)blob_bytes);
    one(v, "drover_state_bytes", "gauge", "Bytes of droverd's LMDB state in use.",
        (double)store_used_bytes(s->store));

    Drover__EventRecord **evs = NULL;
    size_t n_evs = 0;
    uint64_t first = 0;
    if (store_read_events(s->store, UINT64_MAX, NULL, 0, &evs, &n_evs, &first) == 0)
        store_events_free(evs, n_evs);
    uint64_t next = s->events.next_seq;
    if (!first || first > next)
        first = next;
    one(v, "drover_events", "gauge", "Events kept in the event log.", (double)(next - first));
    one(v, "drover_events_first_seq", "gauge",
        "The oldest event's seq kept (the next one's when none is).", (double)first);
    one(v, "drover_events_next_seq", "gauge", "The seq the next event will get.", (double)next);

    one(v, "drover_metrics_duration_seconds", "gauge",
        "How long droverd took to count these metrics (its loop waits meanwhile).",
        (double)(metrics_now_us() - began_us) / 1e6);
    return v;
}

void metrics_view_free(Drover__MetricsView *v)
{
    if (v)
        drover__metrics_view__free_unpacked(v, NULL);
}
