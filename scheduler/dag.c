/* dag — runs and tasks: the task state machine of DESIGN.md.
 *
 * Readiness is incremental: each task counts its needs that have not yet
 * SUCCEEDED (unfinished_deps) and lists its children; a success decrements
 * the children's counts and pushes those that reach zero onto the ready
 * queue, so no event scans a whole run. A task that fails for good skips
 * its WAITING descendants (an upstream failed). A run ends when its last
 * task reaches a final state: FAILED if any task failed, else SUCCEEDED.
 *
 * LOST (the agent vanished) and PREEMPTED requeue the task without using a
 * retry; they count against the step's max_preemptions instead.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

bool dag_task_final(const task_t *t)
{
    switch (t->status) {
    case DROVER__TASK_STATUS__TASK_SUCCEEDED:
    case DROVER__TASK_STATUS__TASK_SKIPPED:
    case DROVER__TASK_STATUS__TASK_CANCELLED:
    case DROVER__TASK_STATUS__TASK_CACHED:
        return true;
    case DROVER__TASK_STATUS__TASK_FAILED:
        return t->retry_at_ms == 0;
    default:
        return false;
    }
}

uint64_t dag_backoff_ms(const Drover__RetryPolicy *p, uint32_t n)
{
    double delay = (double)p->backoff_ms;
    double factor = p->factor >= 1.0 ? p->factor : 1.0;
    for (uint32_t i = 1; i < n; i++) {
        delay *= factor;
        if (p->max_backoff_ms && delay >= (double)p->max_backoff_ms)
            break;
        if (delay > 1e15)
            break;
    }
    if (p->max_backoff_ms && delay > (double)p->max_backoff_ms)
        delay = (double)p->max_backoff_ms;
    if (delay > 1e15)
        delay = 1e15;
    return (uint64_t)delay;
}

Drover__AttemptRecord *dag_current_attempt(const task_t *t)
{
    return t->n_attempts ? t->attempts[t->n_attempts - 1] : NULL;
}

/* ------------------------------------------------------------ ready queue */

void dag_ready_push(sched_t *s, task_t *t)
{
    if (t->in_ready)
        return;
    t->ready_next = NULL;
    t->ready_prev = s->ready_tail;
    if (s->ready_tail)
        s->ready_tail->ready_next = t;
    else
        s->ready_head = t;
    s->ready_tail = t;
    t->in_ready = true;
    s->n_ready++;
}

void dag_ready_remove(sched_t *s, task_t *t)
{
    if (!t->in_ready)
        return;
    if (t->ready_prev)
        t->ready_prev->ready_next = t->ready_next;
    else
        s->ready_head = t->ready_next;
    if (t->ready_next)
        t->ready_next->ready_prev = t->ready_prev;
    else
        s->ready_tail = t->ready_prev;
    t->ready_prev = t->ready_next = NULL;
    t->in_ready = false;
    s->n_ready--;
}

/* ------------------------------------------------------------ transitions */

static void set_reason(task_t *t, const char *reason)
{
    free(t->reason);
    t->reason = reason ? xstrdup(reason) : NULL;
}

/* Remember a task waiting out its retry backoff (see dag_retry_due). */
static void retry_push(sched_t *s, task_t *t)
{
    if (s->n_retrying == s->cap_retrying) {
        s->cap_retrying = s->cap_retrying ? s->cap_retrying * 2 : 16;
        s->retrying = xrealloc(s->retrying, s->cap_retrying * sizeof *s->retrying);
    }
    s->retrying[s->n_retrying++] = t;
}

static void make_ready(sched_t *s, task_t *t)
{
    t->status = DROVER__TASK_STATUS__TASK_READY;
    t->retry_at_ms = 0;
    dag_ready_push(s, t);
    sched_mark_task(s, t);
}

/* A task reached a final state: account for it in its run. */
static void task_finished(sched_t *s, task_t *t)
{
    run_t *r = t->run;
    dag_ready_remove(s, t);
    if (r->unfinished > 0)
        r->unfinished--;
    if (t->status == DROVER__TASK_STATUS__TASK_FAILED)
        r->failed = true; /* the run fails, but only once every branch has ended */
    if (r->unfinished == 0) {
        if (r->rec->status != DROVER__RUN_STATUS__RUN_CANCELLED)
            r->rec->status =
                r->failed ? DROVER__RUN_STATUS__RUN_FAILED : DROVER__RUN_STATUS__RUN_SUCCEEDED;
        r->rec->finished_ms = util_now_ms();
        log_info("run %s %s", r->rec->id, util_run_status_name(r->rec->status));
    }
    sched_mark_run(s, r);
}

/* Skip every WAITING descendant of t (an upstream failed or was skipped). */
static void skip_descendants(sched_t *s, task_t *t, const char *why)
{
    for (size_t i = 0; i < t->n_children; i++) {
        task_t *c = &t->run->tasks[t->children[i]];
        if (c->status != DROVER__TASK_STATUS__TASK_WAITING)
            continue;
        c->status = DROVER__TASK_STATUS__TASK_SKIPPED;
        char *reason = xasprintf("upstream %s %s", t->step->name, why);
        set_reason(c, reason);
        free(reason);
        sched_mark_task(s, c);
        task_finished(s, c);
        skip_descendants(s, c, "skipped");
    }
}

static void task_succeeded(sched_t *s, task_t *t)
{
    t->status = DROVER__TASK_STATUS__TASK_SUCCEEDED;
    set_reason(t, NULL);
    sched_mark_task(s, t);
    task_finished(s, t);
    for (size_t i = 0; i < t->n_children; i++) {
        task_t *c = &t->run->tasks[t->children[i]];
        if (c->unfinished_deps > 0 && --c->unfinished_deps == 0 &&
            c->status == DROVER__TASK_STATUS__TASK_WAITING)
            make_ready(s, c);
    }
}

static void task_failed(sched_t *s, task_t *t, const char *reason)
{
    const Drover__RetryPolicy *p = t->step->retries;
    set_reason(t, reason);
    t->status = DROVER__TASK_STATUS__TASK_FAILED;
    sched_mark_task(s, t);
    if (p && t->retries_used < p->limit) {
        t->retries_used++;
        t->retry_at_ms = util_now_ms() + (int64_t)dag_backoff_ms(p, t->retries_used);
        retry_push(s, t);
        return;
    }
    t->retry_at_ms = 0;
    task_finished(s, t);
    skip_descendants(s, t, "failed");
}

static Drover__AttemptRecord *current_open_attempt(task_t *t)
{
    Drover__AttemptRecord *a = dag_current_attempt(t);
    if (!a || a->finished_ms)
        return NULL;
    return a;
}

void dag_task_started(sched_t *s, task_t *t, int64_t time_ms)
{
    Drover__AttemptRecord *a = current_open_attempt(t);
    if (!a || t->status != DROVER__TASK_STATUS__TASK_ASSIGNED)
        return;
    t->status = DROVER__TASK_STATUS__TASK_RUNNING;
    a->status = DROVER__TASK_STATUS__TASK_RUNNING;
    a->started_ms = time_ms ? time_ms : util_now_ms();
    sched_mark_task(s, t);
}

/* Close the current attempt with a final status; frees the task's agent. */
static void close_attempt(sched_t *s, task_t *t, Drover__TaskStatus status, const char *reason)
{
    Drover__AttemptRecord *a = current_open_attempt(t);
    if (a) {
        a->status = status;
        a->finished_ms = util_now_ms();
        if (!a->started_ms)
            a->started_ms = a->finished_ms;
        if (reason) {
            free(a->reason);
            a->reason = xstrdup(reason);
        }
        idmap_del(s->attempts, a->id);
    }
    placer_unbind(s, t);
    sched_mark_task(s, t);
}

void dag_task_exited(sched_t *s, task_t *t, const Drover__Report *rep)
{
    Drover__AttemptRecord *a = current_open_attempt(t);
    if (!a)
        return;
    a->exit_code = rep->exit_code;
    a->term_signal = rep->term_signal;
    if (!a->started_ms && rep->time_ms)
        a->started_ms = rep->time_ms;
    if (rep->exit_code == 0 && rep->term_signal == 0 && !rep->timed_out &&
        (!rep->reason || !*rep->reason)) {
        close_attempt(s, t, DROVER__TASK_STATUS__TASK_SUCCEEDED, NULL);
        task_succeeded(s, t);
        return;
    }
    char *reason;
    if (rep->timed_out)
        reason = xasprintf("timeout after %.3gs", (double)t->step->timeout_ms / 1000.0);
    else if (rep->reason && *rep->reason)
        reason = xstrdup(rep->reason);
    else if (rep->term_signal)
        reason =
            xasprintf("killed by signal %d (%s)", rep->term_signal, strsignal(rep->term_signal));
    else
        reason = xasprintf("exit code %d", rep->exit_code);
    close_attempt(s, t, DROVER__TASK_STATUS__TASK_FAILED, reason);
    task_failed(s, t, reason);
    free(reason);
}

void dag_task_lost(sched_t *s, task_t *t, const char *reason)
{
    if (t->status != DROVER__TASK_STATUS__TASK_ASSIGNED &&
        t->status != DROVER__TASK_STATUS__TASK_RUNNING)
        return;
    close_attempt(s, t, DROVER__TASK_STATUS__TASK_LOST, reason);
    t->preemptions++;
    if (t->preemptions > t->step->max_preemptions) {
        char *why =
            xasprintf("%s; gave up after %u lost/preempted attempts", reason, t->preemptions);
        t->status = DROVER__TASK_STATUS__TASK_FAILED;
        t->retry_at_ms = 0;
        set_reason(t, why);
        free(why);
        task_finished(s, t);
        skip_descendants(s, t, "failed");
        return;
    }
    set_reason(t, reason);
    make_ready(s, t);
}

void dag_cancel_run(sched_t *s, run_t *r)
{
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = &r->tasks[i];
        if (dag_task_final(t))
            continue;
        if (t->agent) {
            Drover__AttemptRecord *a = current_open_attempt(t);
            agent_out_t *out = sched_agent_out(s, t->agent);
            out->kills = xrealloc(out->kills, (out->n_kills + 1) * sizeof *out->kills);
            out->kills[out->n_kills++] = a ? a->id : 0;
        }
        close_attempt(s, t, DROVER__TASK_STATUS__TASK_CANCELLED, "run cancelled");
        t->status = DROVER__TASK_STATUS__TASK_CANCELLED;
        t->retry_at_ms = 0;
        set_reason(t, "run cancelled");
        r->rec->status = DROVER__RUN_STATUS__RUN_CANCELLED;
        task_finished(s, t);
    }
    r->rec->status = DROVER__RUN_STATUS__RUN_CANCELLED;
    if (!r->rec->finished_ms)
        r->rec->finished_ms = util_now_ms();
    sched_mark_run(s, r);
}

void dag_retry_due(sched_t *s, int64_t now_ms)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->n_retrying; i++) {
        task_t *t = s->retrying[i];
        if (t->status != DROVER__TASK_STATUS__TASK_FAILED || !t->retry_at_ms)
            continue; /* cancelled meanwhile */
        if (t->retry_at_ms <= now_ms)
            make_ready(s, t);
        else
            s->retrying[kept++] = t;
    }
    s->n_retrying = kept;
}

/* ------------------------------------------------------------ creation */

static Drover__KeyValue **copy_spec_kvs(const spec_kv_t *kvs, size_t n)
{
    Drover__KeyValue **out = xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = util_kv_new(kvs[i].key, kvs[i].value);
    return out;
}

static Drover__StepSpec *step_from_spec(const spec_step_t *st)
{
    Drover__StepSpec *p = xmalloc(sizeof *p);
    drover__step_spec__init(p);
    p->name = xstrdup(st->name);
    p->n_argv = st->argc;
    p->argv = xcalloc(st->argc, sizeof *p->argv);
    for (size_t i = 0; i < st->argc; i++)
        p->argv[i] = xstrdup(st->argv[i]);
    p->n_env = st->env_count;
    p->env = copy_spec_kvs(st->env, st->env_count);
    p->resources = xmalloc(sizeof *p->resources);
    drover__resources__init(p->resources);
    p->resources->cpu_milli = st->cpu_milli;
    p->resources->memory_bytes = st->memory_bytes;
    p->resources->gpus = st->gpus;
    p->n_labels = st->label_count;
    p->labels = copy_spec_kvs(st->labels, st->label_count);
    p->retries = xmalloc(sizeof *p->retries);
    drover__retry_policy__init(p->retries);
    p->retries->limit = st->retries.limit;
    p->retries->backoff_ms = st->retries.backoff_ms;
    p->retries->factor = st->retries.factor;
    p->retries->max_backoff_ms = st->retries.max_backoff_ms;
    p->timeout_ms = st->timeout_ms;
    p->n_needs = st->need_count;
    p->needs = xcalloc(st->need_count, sizeof *p->needs);
    for (size_t i = 0; i < st->need_count; i++)
        p->needs[i] = (uint32_t)st->needs[i];
    p->max_preemptions = st->max_preemptions;
    return p;
}

/* Build the tasks of r from r->rec->steps (one task per step). */
static void build_tasks(run_t *r)
{
    size_t n = r->rec->n_steps;
    r->tasks = xcalloc(n, sizeof *r->tasks);
    r->n_tasks = n;
    r->unfinished = n;
    size_t *child_counts = xcalloc(n, sizeof *child_counts);
    for (size_t i = 0; i < n; i++) {
        task_t *t = &r->tasks[i];
        t->run = r;
        t->index = (uint32_t)i;
        t->step = r->rec->steps[i];
        for (size_t j = 0; j < t->step->n_needs; j++)
            if (t->step->needs[j] < n)
                child_counts[t->step->needs[j]]++;
    }
    for (size_t i = 0; i < n; i++)
        r->tasks[i].children = xcalloc(child_counts[i], sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        task_t *t = &r->tasks[i];
        for (size_t j = 0; j < t->step->n_needs; j++) {
            uint32_t p = t->step->needs[j];
            if (p < n)
                r->tasks[p].children[r->tasks[p].n_children++] = (uint32_t)i;
        }
    }
    free(child_counts);
}

static void add_run(sched_t *s, run_t *r)
{
    if (s->n_runs == s->cap_runs) {
        s->cap_runs = s->cap_runs ? s->cap_runs * 2 : 64;
        s->runs = xrealloc(s->runs, s->cap_runs * sizeof *s->runs);
    }
    s->runs[s->n_runs++] = r;
    zhashx_insert(s->runs_by_id, r->rec->id, r);
}

run_t *dag_create_run(sched_t *s, const spec_t *spec, const char *file)
{
    Drover__RunRecord *rec = xmalloc(sizeof *rec);
    drover__run_record__init(rec);
    rec->id = xasprintf("r%06" PRIu64, ++s->next_run);
    s->counters_dirty = true;
    rec->name = xstrdup(spec->name);
    rec->status = DROVER__RUN_STATUS__RUN_RUNNING;
    rec->created_ms = util_now_ms();
    rec->spec_file = xstrdup(file ? file : "");
    rec->n_params = spec->param_count;
    rec->params = copy_spec_kvs(spec->params, spec->param_count);
    rec->n_steps = spec->step_count;
    rec->steps = xcalloc(spec->step_count, sizeof *rec->steps);
    for (size_t i = 0; i < spec->step_count; i++)
        rec->steps[i] = step_from_spec(&spec->steps[i]);

    run_t *r = xcalloc(1, sizeof *r);
    r->rec = rec;
    build_tasks(r);
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = &r->tasks[i];
        t->unfinished_deps = (uint32_t)t->step->n_needs;
        t->status = DROVER__TASK_STATUS__TASK_WAITING;
        sched_mark_task(s, t);
        if (t->unfinished_deps == 0)
            make_ready(s, t);
    }
    add_run(s, r);
    sched_mark_run(s, r);
    log_info("run %s (%s) submitted: %zu steps", rec->id, rec->name, r->n_tasks);
    if (r->n_tasks == 0)
        rec->status = DROVER__RUN_STATUS__RUN_SUCCEEDED;
    return r;
}

/* ------------------------------------------------------------ lookup */

run_t *dag_find_run(sched_t *s, const char *id)
{
    return zhashx_lookup(s->runs_by_id, id);
}

task_t *dag_find_task(run_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_tasks; i++)
        if (strcmp(r->tasks[i].step->name, name) == 0)
            return &r->tasks[i];
    return NULL;
}

/* ------------------------------------------------------------ records */

void dag_task_record(const task_t *t, Drover__TaskRecord *rec)
{
    drover__task_record__init(rec);
    rec->index = t->index;
    rec->status = t->status;
    rec->retries_used = t->retries_used;
    rec->preemptions = t->preemptions;
    rec->retry_at_ms = t->retry_at_ms;
    rec->reason = t->reason ? t->reason : (char *)"";
    rec->n_attempts = t->n_attempts;
    rec->attempts = t->attempts;
}

static Drover__AttemptRecord *copy_attempt(const Drover__AttemptRecord *src)
{
    Drover__AttemptRecord *a = xmalloc(sizeof *a);
    *a = *src;
    a->agent = xstrdup(src->agent);
    a->reason = xstrdup(src->reason);
    return a;
}

static void free_attempt(Drover__AttemptRecord *a)
{
    free(a->agent);
    free(a->reason);
    free(a);
}

static void load_run(const Drover__RunRecord *rec, void *arg)
{
    sched_t *s = arg;
    size_t n = protobuf_c_message_get_packed_size(&rec->base);
    uint8_t *buf = xmalloc(n);
    protobuf_c_message_pack(&rec->base, buf);
    run_t *r = xcalloc(1, sizeof *r);
    r->rec = drover__run_record__unpack(NULL, n, buf);
    free(buf);
    build_tasks(r);
    add_run(s, r);
}

static void load_task(const char *run_id, const Drover__TaskRecord *rec, void *arg)
{
    sched_t *s = arg;
    run_t *r = dag_find_run(s, run_id);
    if (!r || rec->index >= r->n_tasks) {
        log_warn("store: task %u of unknown run %s ignored", rec->index, run_id);
        return;
    }
    task_t *t = &r->tasks[rec->index];
    t->status = rec->status;
    t->retries_used = rec->retries_used;
    t->preemptions = rec->preemptions;
    t->retry_at_ms = rec->retry_at_ms;
    t->reason = rec->reason && *rec->reason ? xstrdup(rec->reason) : NULL;
    t->n_attempts = rec->n_attempts;
    t->attempts = xcalloc(rec->n_attempts, sizeof *t->attempts);
    for (size_t i = 0; i < rec->n_attempts; i++)
        t->attempts[i] = copy_attempt(rec->attempts[i]);
}

static void load_agent(const Drover__AgentRecord *rec, void *arg)
{
    agents_load(arg, rec);
}

/* After records are loaded: recompute counters, queues and bindings. */
static void rebuild_run(sched_t *s, run_t *r)
{
    r->unfinished = 0;
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = &r->tasks[i];
        if (!dag_task_final(t))
            r->unfinished++;
        else if (t->status == DROVER__TASK_STATUS__TASK_FAILED)
            r->failed = true;
        t->unfinished_deps = 0;
        for (size_t j = 0; j < t->step->n_needs; j++) {
            uint32_t p = t->step->needs[j];
            if (p < r->n_tasks && r->tasks[p].status != DROVER__TASK_STATUS__TASK_SUCCEEDED &&
                r->tasks[p].status != DROVER__TASK_STATUS__TASK_CACHED)
                t->unfinished_deps++;
        }
    }
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = &r->tasks[i];
        Drover__AttemptRecord *a = current_open_attempt(t);
        switch (t->status) {
        case DROVER__TASK_STATUS__TASK_READY:
            dag_ready_push(s, t);
            break;
        case DROVER__TASK_STATUS__TASK_FAILED:
            if (t->retry_at_ms)
                retry_push(s, t);
            break;
        case DROVER__TASK_STATUS__TASK_WAITING:
            /* A crash between a parent's success and this task's promotion
             * cannot happen (one transaction), but be forgiving. */
            if (t->unfinished_deps == 0)
                make_ready(s, t);
            break;
        case DROVER__TASK_STATUS__TASK_ASSIGNED:
        case DROVER__TASK_STATUS__TASK_RUNNING: {
            agent_t *ag = a ? agents_find(s, a->agent) : NULL;
            if (!ag) {
                dag_task_lost(s, t, "agent unknown after restart");
                break;
            }
            idmap_put(s->attempts, a->id, t);
            placer_bind(s, ag, t);
            t->assign_acked = t->status == DROVER__TASK_STATUS__TASK_RUNNING;
            break;
        }
        default:
            break;
        }
    }
}

int dag_load(sched_t *s)
{
    store_loader_t loader = {.run = load_run, .task = load_task, .agent = load_agent, .arg = s};
    int rc = store_load(s->store, &loader);
    if (rc < 0)
        return rc;
    s->next_run = store_get_counter(s->store, "next_run");
    s->next_attempt = store_get_counter(s->store, "next_attempt");
    size_t active = 0;
    for (size_t i = 0; i < s->n_runs; i++) {
        rebuild_run(s, s->runs[i]);
        if (s->runs[i]->unfinished)
            active++;
    }
    log_info("loaded %zu runs (%zu active), %zu agents", s->n_runs, active, zhashx_size(s->agents));
    return 0;
}

void dag_free_all(sched_t *s)
{
    for (size_t i = 0; i < s->n_runs; i++) {
        run_t *r = s->runs[i];
        for (size_t j = 0; j < r->n_tasks; j++) {
            task_t *t = &r->tasks[j];
            for (size_t k = 0; k < t->n_attempts; k++)
                free_attempt(t->attempts[k]);
            free(t->attempts);
            free(t->children);
            free(t->reason);
        }
        free(r->tasks);
        drover__run_record__free_unpacked(r->rec, NULL);
        free(r);
    }
    free(s->runs);
    free(s->retrying);
    s->retrying = NULL;
    s->runs = NULL;
    s->n_runs = s->cap_runs = 0;
}
