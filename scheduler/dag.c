/* dag — runs and tasks: the task state machine (docs/architecture.md,
 * "Task lifecycle").
 *
 * Readiness is incremental: each task counts its needs that have not yet
 * ended (unfinished_deps) and those that ended succeeded, failed or
 * skipped (deps_*), and lists its children; a need that ends updates its
 * WAITING children's counts and decides each by its trigger rule
 * (common/trigger.h: O(1) from the counts; a `depends` expression once
 * every need has ended): the rule holds → activate, it can no longer hold →
 * SKIPPED with a reason naming the rule and the needs that broke it (and,
 * when a failure broke it, upstream_failed: it counts as failed for its
 * own dependants, as Airflow's upstream_failed), else wait. No event scans
 * a whole run. Activation decides a step: its `when` (false →
 * SKIPPED; for a for_each step whose `when` refers to the item, decided
 * per item instead: StepSpec.when_scope, fixed at submit), its fan-out (a for_each step becomes a
 * group of item tasks, released under its parallelism cap), the cache (a hit → CACHED, no agent),
 * else READY for the placer.
 *
 * An approval gate (suspend:) is not made READY: activation makes it
 * SUSPENDED (gates.c) until resumed, rejected, timed out or cancelled.
 *
 * With the default rule a task that fails for good, or is skipped, skips its WAITING
 * descendants. Exit handlers (finally steps) wait until every main task has
 * ended and then run whatever happened, with {{run.status}}. A run ends
 * when its last task does: CANCELLED if cancelled, FAILED if any task
 * failed, else SUCCEEDED. A failed step with continue_on: failed does not
 * fail the run (its dependants' rules still see it failed).
 *
 * Groups (README "Templates"): a step that uses a DAG template (or each
 * item of such a for_each step) is an instance. Activated, it expands its
 * `with` values and instantiates the template's body: one member task
 * per body step, appended to the run's tasks, named INSTANCE.STEP, whose
 * needs are among its fellow members (dag_member maps a body step to the
 * instance's member). The body is compiled once per template, so
 * recursion is an instance whose body holds a step using the same
 * template: expanded only when that step is activated, at most max_depth
 * deep. An instance is RUNNING while its members run; its body's finally
 * members run once its other members have ended; when the last member
 * ends, the instance ends as a run would (failed, cancelled, all skipped,
 * else succeeded with its declared outputs) and its dependants are
 * decided as for any step. Only the run's own steps (and their items)
 * count in the run's finally and failure; a member counts in its
 * instance's. Members are stored like items: not until something is
 * decided about them (a reload makes the rest again from the instance).
 *
 * LOST (the agent vanished) and PREEMPTED requeue the task without using a
 * retry; they count against the step's max_preemptions instead. A system
 * error (the agent's disk was full, it could not fetch the inputs or make
 * a process: Report.system_error) is not the step's failure either: the
 * task goes back to READY at once, avoiding that agent, without using a
 * retry, and fails only after --max-system-errors of them.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "expr.h"
#include "json.h"
#include "log.h"
#include "strbuf.h"
#include "trigger.h"
#include "util.h"

static void activate(sched_t *s, task_t *t);
static void group_free(task_t *t);

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

static bool succeeded(const task_t *t)
{
    return t->status == DROVER__TASK_STATUS__TASK_SUCCEEDED ||
           t->status == DROVER__TASK_STATUS__TASK_CACHED;
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

void dag_add_attempt(task_t *t, Drover__AttemptRecord *a)
{
    if (t->n_attempts == 0) {
        t->first_attempt = a;
        t->attempts = &t->first_attempt;
    } else {
        Drover__AttemptRecord **old = t->attempts;
        t->attempts = xmalloc((t->n_attempts + 1) * sizeof *t->attempts);
        memcpy(t->attempts, old, t->n_attempts * sizeof *t->attempts);
        if (old != &t->first_attempt)
            free(old);
    }
    t->attempts[t->n_attempts++] = a;
}

void dag_attempt_free(Drover__AttemptRecord *a)
{
    a->agent = NULL; /* interned */
    a->agent_incarnation = NULL;
    drover__attempt_record__free_unpacked(a, NULL);
}

Drover__AttemptRecord *dag_current_attempt(const task_t *t)
{
    return t->n_attempts ? t->attempts[t->n_attempts - 1] : NULL;
}

/* ------------------------------------------------------------ ready queue */

void dag_ready_push(sched_t *s, task_t *t)
{
    if (t->in_ready || t->held || t->park)
        return;
    t->run->queued++;
    t->ready_next = NULL;
    t->ready_prev = s->dag.ready_tail;
    if (s->dag.ready_tail)
        s->dag.ready_tail->ready_next = t;
    else
        s->dag.ready_head = t;
    s->dag.ready_tail = t;
    t->in_ready = true;
    s->dag.n_ready++;
}

void dag_ready_remove(sched_t *s, task_t *t)
{
    if (t->held)
        limits_unhold(s, t);
    if (t->park)
        placer_unpark(s, t);
    if (!t->in_ready)
        return;
    t->run->queued--;
    if (t->ready_prev)
        t->ready_prev->ready_next = t->ready_next;
    else
        s->dag.ready_head = t->ready_next;
    if (t->ready_next)
        t->ready_next->ready_prev = t->ready_prev;
    else
        s->dag.ready_tail = t->ready_prev;
    t->ready_prev = t->ready_next = NULL;
    t->in_ready = false;
    s->dag.n_ready--;
}

/* ------------------------------------------------------------ helpers */

static void set_reason(task_t *t, const char *reason)
{
    char *copy = reason ? xstrdup(reason) : NULL; /* reason may be t->reason */
    free(t->reason);
    t->reason = copy;
}

/* Remember a task waiting out its retry backoff (see dag_retry_due). */
static void retry_push(sched_t *s, task_t *t)
{
    if (s->dag.n_retrying == s->dag.cap_retrying) {
        s->dag.cap_retrying = s->dag.cap_retrying ? s->dag.cap_retrying * 2 : 16;
        s->dag.retrying = xrealloc(s->dag.retrying, s->dag.cap_retrying * sizeof *s->dag.retrying);
    }
    s->dag.retrying[s->dag.n_retrying++] = t;
}

/* An item's name ("step[k]") and value in one allocation: a million items
 * make two million small strings otherwise. t->name owns the block. */
static void item_label(task_t *t, const char *step, uint32_t k, const char *value)
{
    size_t nlen = (size_t)snprintf(NULL, 0, "%s[%u]", step, k), vlen = strlen(value);
    free(t->name);
    t->name = xmalloc(nlen + 1 + vlen + 1);
    snprintf(t->name, nlen + 1, "%s[%u]", step, k);
    t->item_value = t->name + nlen + 1;
    memcpy(t->item_value, value, vlen + 1);
}

static task_t *task_new(run_t *r, uint32_t step_index)
{
    if (r->n_tasks == r->cap_tasks) {
        r->cap_tasks = r->cap_tasks ? r->cap_tasks * 2 : 8;
        r->tasks = xrealloc(r->tasks, r->cap_tasks * sizeof *r->tasks);
    }
    task_t *t = xcalloc(1, sizeof *t);
    t->run = r;
    t->index = (uint32_t)r->n_tasks;
    t->step_index = step_index;
    t->step = r->steps->steps[step_index];
    t->progress = -1;
    r->tasks[r->n_tasks++] = t;
    r->n_status[DROVER__TASK_STATUS__TASK_WAITING]++; /* calloc's status */
    return t;
}

static void task_free(task_t *t)
{
    for (size_t k = 0; k < t->n_attempts; k++)
        dag_attempt_free(t->attempts[k]);
    if (t->attempts != &t->first_attempt)
        free(t->attempts);
    free(t->children);
    free(t->items);
    free(t->item_status);
    free(t->reason);
    free(t->name); /* an item's value shares its block (item_label) */
    free(t->cached_from);
    free(t->result);
    free(t->cache_key);
    free(t->avoid_agent);
    gate_free(t);
    group_free(t);
    for (size_t k = 0; k < t->n_checkpoints; k++)
        drover__checkpoint__free_unpacked(t->checkpoints[k], NULL);
    free(t->checkpoints);
    util_free_kvs(t->out_params, t->n_out_params);
    for (size_t k = 0; k < t->n_outputs; k++)
        drover__artifact__free_unpacked(t->outputs[k], NULL);
    free(t->outputs);
    flow_unprepare(t);
    flow_settings_free(t);
    free(t);
}

/* ------------------------------------------------------------ groups */

/* The template body group instance g instantiates, or NULL. */
static const Drover__TemplateBody *body_of(const task_t *g)
{
    const Drover__RunSteps *st = g->run->steps;
    uint32_t k = g->step->uses_body;
    return k && k <= st->n_bodies ? st->bodies[k - 1] : NULL;
}

task_t *dag_member(const run_t *r, const task_t *scope, uint32_t step)
{
    if (!scope)
        return step < r->n_root && step < r->n_tasks ? r->tasks[step] : NULL;
    const Drover__TemplateBody *b = scope->grp ? body_of(scope) : NULL;
    if (!b || step < b->first_step || step - b->first_step >= scope->grp->n_members)
        return NULL;
    uint32_t i = scope->grp->first_member + (step - b->first_step);
    return i < r->n_tasks ? r->tasks[i] : NULL;
}

/* The steps of scope's body (NULL: the run's own): [*from, *from + *n). */
static bool scope_steps(const run_t *r, const task_t *scope, uint32_t *from, uint32_t *n)
{
    if (!scope) {
        *from = 0;
        *n = r->n_root;
        return true;
    }
    const Drover__TemplateBody *b = scope->grp ? body_of(scope) : NULL;
    if (!b)
        return false;
    *from = b->first_step;
    *n = scope->grp->n_members;
    return true;
}

task_t *dag_scope_find(const run_t *r, const task_t *scope, const char *name, size_t len)
{
    uint32_t from, n;
    if (!scope_steps(r, scope, &from, &n))
        return NULL;
    for (uint32_t j = from; j < from + n && j < r->steps->n_steps; j++) {
        const char *sn = r->steps->steps[j]->name;
        if (strlen(sn) == len && !memcmp(sn, name, len))
            return dag_member(r, scope, j);
    }
    return NULL;
}

uint32_t dag_depth(const task_t *t)
{
    uint32_t d = 0;
    for (const task_t *sc = t->scope; sc; sc = sc->scope)
        d++;
    return d;
}

/* The task of t's j-th need. */
static task_t *need_task(const task_t *t, size_t j)
{
    return dag_member(t->run, t->scope, t->step->needs[j]);
}

/* The for_each step task an item belongs to. */
static task_t *group_of(const task_t *item)
{
    return dag_member(item->run, item->scope, item->step_index);
}

static unsigned status_slot(unsigned st)
{
    return st < TASK_STATUS_SLOTS - 1 ? st : TASK_STATUS_SLOTS - 1;
}

void dag_item_moved(task_t *item, unsigned was, unsigned now)
{
    task_t *g = group_of(item);
    if (g && g->item_status) { /* else not counting yet (expanding, loading) */
        g->item_status[status_slot(was)]--;
        g->item_status[status_slot(now)]++;
    }
}

/* Count fan-out g's items by status into g->item_status, from now on kept
 * by task_set_status: once its items are all made (expanded, or rebuilt
 * at load). */
static void count_items(task_t *g)
{
    if (!g->item_status)
        g->item_status = xmalloc(TASK_STATUS_SLOTS * sizeof *g->item_status);
    memset(g->item_status, 0, TASK_STATUS_SLOTS * sizeof *g->item_status);
    for (uint32_t k = 0; k < g->n_items; k++)
        if (g->items[k] < g->run->n_tasks)
            g->item_status[status_slot((unsigned)g->run->tasks[g->items[k]]->status)]++;
}

/* Whether t's exit handlers' turn has come: its instance's main members
 * (or the run's main steps) have all ended. */
static bool finally_started(const task_t *t)
{
    return t->scope ? t->scope->grp && t->scope->grp->finally_started : t->run->finally_started;
}

/* Whether t runs as an exit handler: its step is a finally step, or it
 * is a member (at any depth) of a group that is. A cancel leaves those. */
static bool in_finally(const task_t *t)
{
    for (; t; t = t->scope)
        if (t->step->is_finally)
            return true;
    return false;
}

static void group_free(task_t *t)
{
    if (!t->grp)
        return;
    util_free_kvs(t->grp->in_params, t->grp->n_in_params);
    free(t->grp);
    t->grp = NULL;
}

/* ------------------------------------------------------------ endings */

static void start_finally(sched_t *s, run_t *r);
static void task_succeeded(sched_t *s, task_t *t, Drover__TaskStatus status);
static void fail_for_good(sched_t *s, task_t *t, const char *reason);

static void group_item_done(sched_t *s, task_t *item);
static void group_complete(sched_t *s, task_t *g);
static void member_done(sched_t *s, task_t *m);

/* A task reached a final state: account for it in its run. */
static void task_finished(sched_t *s, task_t *t)
{
    run_t *r = t->run;
    dag_ready_remove(s, t);
    flow_unprepare(t);
    if (t->gate)
        gates_untrack(s, t);
    if (!t->agent) /* unbound: its resources are released (always, so far) */
        flow_settings_free(t);
    if (r->unfinished > 0)
        r->unfinished--;
    /* A member counts in its instance's accounts (member_done), not the run's. */
    if (!t->scope && !t->step->is_finally && r->main_unfinished > 0)
        r->main_unfinished--;
    if (!t->scope && t->status == DROVER__TASK_STATUS__TASK_FAILED && !t->step->continue_on_failed)
        r->failed = true; /* the run fails, but only once every branch has ended */
    if (t->is_item)
        group_item_done(s, t);
    else if (t->scope)
        member_done(s, t);
    if (r->main_unfinished == 0)
        start_finally(s, r);
    if (r->unfinished == 0 && !dag_run_final(r)) {
        r->rec->status = r->cancelled ? DROVER__RUN_STATUS__RUN_CANCELLED
                         : r->failed  ? DROVER__RUN_STATUS__RUN_FAILED
                                      : DROVER__RUN_STATUS__RUN_SUCCEEDED;
        r->rec->finished_ms = util_now_ms();
        limits_run_ended(s, r);
        log_info("run %s %s", r->rec->id, util_run_status_name(r->rec->status));
        journal_mark_run(&s->journal, r); /* the run's record changes only here */
        schedules_run_ended(s, r);
    }
}

/* ------------------------------------------------------------ readiness */

static void need_ended(sched_t *s, task_t *t);

/* What need p ended as, for its dependants' rules (TRIG_PENDING: not yet). */
static int outcome_of(const task_t *p)
{
    if (!dag_task_final(p))
        return TRIG_PENDING;
    switch (p->status) {
    case DROVER__TASK_STATUS__TASK_SUCCEEDED:
        return TRIG_SUCCEEDED;
    case DROVER__TASK_STATUS__TASK_CACHED:
        return TRIG_CACHED;
    case DROVER__TASK_STATUS__TASK_FAILED:
        return TRIG_FAILED | (p->step->continue_on_failed ? TRIG_TOLERATED : 0);
    case DROVER__TASK_STATUS__TASK_SKIPPED:
        return p->upstream_failed ? TRIG_FAILED : TRIG_SKIPPED;
    default:
        return TRIG_CANCELLED;
    }
}

/* Account for need p's ending in c's counts. */
static void count_need(task_t *c, const task_t *p)
{
    int o = outcome_of(p) & ~TRIG_TOLERATED;
    if (c->unfinished_deps > 0)
        c->unfinished_deps--;
    c->deps_ok += o == TRIG_SUCCEEDED || o == TRIG_CACHED;
    c->deps_failed += o == TRIG_FAILED;
    c->deps_skipped += o == TRIG_SKIPPED;
}

/* The outcome of need name[0..len) of the task in arg, for depends. */
static int depends_lookup(const char *name, size_t len, void *arg)
{
    const task_t *t = arg;
    for (size_t j = 0; j < t->step->n_needs; j++) {
        const task_t *p = need_task(t, j);
        if (p && strlen(p->step->name) == len && !memcmp(p->step->name, name, len)) {
            int o = outcome_of(p);
            return p->status == DROVER__TASK_STATUS__TASK_SKIPPED && o == TRIG_FAILED
                       ? TRIG_SKIPPED | TRIG_UPSTREAM_FAILED /* .skipped, not a bare name */
                       : o;
        }
    }
    return TRIG_PENDING; /* the spec compiler made every name a need */
}

static trigger_verdict_t verdict(const task_t *t, bool *by_failure)
{
    trigger_counts_t c = {.total = (uint32_t)t->step->n_needs,
                          .ended = (uint32_t)t->step->n_needs - t->unfinished_deps,
                          .ok = t->deps_ok,
                          .failed = t->deps_failed,
                          .skipped = t->deps_skipped};
    *by_failure = false;
    if (t->step->trigger != DROVER__TRIGGER_RULE__TRIGGER_RULE_DEPENDS)
        return trigger_rule_decide(t->step->trigger, &c, by_failure);
    if (c.ended < c.total)
        return TRIGGER_UNDECIDED; /* as Argo: once every need has ended */
    bool ok = false;
    char err[256];
    if (trigger_depends_eval(t->step->depends, depends_lookup, (void *)t, &ok, err, sizeof err) < 0)
        log_warn("%s/%s: depends: %s", t->run->rec->id, t->name, err); /* checked at submit */
    *by_failure = !ok && t->deps_failed > 0; /* omitted after a failure, as Argo's */
    return ok ? TRIGGER_HOLDS : TRIGGER_BROKEN;
}

static const char *outcome_word(const task_t *p)
{
    switch (outcome_of(p) & ~TRIG_TOLERATED) {
    case TRIG_SUCCEEDED:
        return "succeeded";
    case TRIG_CACHED:
        return "cached";
    case TRIG_FAILED:
        return p->status == DROVER__TASK_STATUS__TASK_SKIPPED ? "upstream_failed" : "failed";
    case TRIG_SKIPPED:
        return "skipped";
    case TRIG_CANCELLED:
        return "cancelled";
    default:
        return "not ended";
    }
}

/* Why t's rule can no longer hold: the rule and the needs' outcomes that
 * broke it ("trigger all_success: 'train' failed"); caller frees. */
static char *broken_reason(const task_t *t)
{
    Drover__TriggerRule rule = t->step->trigger;
    strbuf_t sb = {0};
    unsigned bad = 0; /* bits: 1 ok, 2 failed, 4 skipped, 8 cancelled */
    switch (rule) {
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_SUCCESS:
        bad = 2 | 4 | 8;
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_FAILED:
        bad = 1 | 4 | 8;
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED:
        bad = 2 | 8;
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED_MIN_ONE_SUCCESS:
        bad = t->deps_failed || t->deps_ok + t->deps_failed + t->deps_skipped <
                                    t->step->n_needs - t->unfinished_deps
                  ? 2 | 8
                  : 4;
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_SKIPPED:
        bad = 4;
        break;
    default: /* one_success, one_failed, depends: every need's outcome */
        bad = 1 | 2 | 4 | 8;
        break;
    }
    if (rule == DROVER__TRIGGER_RULE__TRIGGER_RULE_DEPENDS)
        sb_printf(&sb, "depends: %s was false:", t->step->depends);
    else
        sb_printf(&sb, "trigger %s:", trigger_rule_name(rule));
    if (rule == DROVER__TRIGGER_RULE__TRIGGER_RULE_ONE_SUCCESS ||
        (rule == DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED_MIN_ONE_SUCCESS && bad == 4))
        sb_printf(&sb, " no need succeeded;");
    else if (rule == DROVER__TRIGGER_RULE__TRIGGER_RULE_ONE_FAILED)
        sb_printf(&sb, " no need failed;");
    size_t listed = 0, more = 0;
    for (size_t j = 0; j < t->step->n_needs; j++) {
        const task_t *p = need_task(t, j);
        if (!p)
            continue;
        int o = outcome_of(p) & ~TRIG_TOLERATED;
        unsigned bit = o == TRIG_SUCCEEDED || o == TRIG_CACHED ? 1
                       : o == TRIG_FAILED                      ? 2
                       : o == TRIG_SKIPPED                     ? 4
                       : o == TRIG_CANCELLED                   ? 8
                                                               : 0;
        if (!(bit & bad))
            continue;
        if (listed == 8) {
            more++;
            continue;
        }
        sb_printf(&sb, "%s '%s' %s", listed ? "," : "", p->name, outcome_word(p));
        listed++;
    }
    if (more)
        sb_printf(&sb, " and %zu more", more);
    return sb.buf;
}

/* A rule other than all_success may let a step run while a need it takes
 * an input artifact from has not succeeded: say which (caller frees), or
 * NULL when every input is there. */
static char *inputs_missing(const task_t *t)
{
    for (size_t i = 0; i < t->step->n_inputs; i++) {
        const Drover__InputSpec *in = t->step->inputs[i];
        const task_t *src = in->from_group_input ? NULL : dag_member(t->run, t->scope, in->step);
        if (src && !succeeded(src))
            return xasprintf("input '%s' comes from step '%s', which %s (its trigger %s let "
                             "this step run without it)",
                             in->local, src->name,
                             dag_task_final(src) ? outcome_word(src) : "has not ended",
                             trigger_rule_name(t->step->trigger));
    }
    return NULL;
}

/* Decide WAITING step task t by its rule over its needs' outcomes so far:
 * activate it, skip it, or leave it waiting. */
static void decide(sched_t *s, task_t *t)
{
    bool by_failure;
    if (t->status != DROVER__TASK_STATUS__TASK_WAITING || t->is_item)
        return;
    if (t->run->cancelled && !in_finally(t))
        return; /* dag_cancel_run ends it */
    switch (verdict(t, &by_failure)) {
    case TRIGGER_HOLDS: {
        char *why = inputs_missing(t);
        if (why) {
            fail_for_good(s, t, why);
            free(why);
            break;
        }
        activate(s, t);
        break;
    }
    case TRIGGER_BROKEN: {
        char *why = broken_reason(t);
        task_set_status(t, DROVER__TASK_STATUS__TASK_SKIPPED);
        t->upstream_failed = by_failure;
        set_reason(t, why);
        free(why);
        journal_mark_task(&s->journal, t);
        task_finished(s, t);
        need_ended(s, t);
        break;
    }
    default:
        break;
    }
}

/* t reached a final state: count it in its WAITING children and decide
 * them (those already activated early, by one_success say, are left). */
static void need_ended(sched_t *s, task_t *t)
{
    for (size_t i = 0; i < t->n_children; i++) {
        task_t *c = t->run->tasks[t->children[i]];
        if (c->status != DROVER__TASK_STATUS__TASK_WAITING)
            continue;
        count_need(c, t);
        decide(s, c);
    }
}

static void skip(sched_t *s, task_t *t, const char *reason)
{
    task_set_status(t, DROVER__TASK_STATUS__TASK_SKIPPED);
    set_reason(t, reason);
    journal_mark_task(&s->journal, t);
    task_finished(s, t);
    need_ended(s, t);
}

static void fail_for_good(sched_t *s, task_t *t, const char *reason)
{
    task_set_status(t, DROVER__TASK_STATUS__TASK_FAILED);
    t->retry_at_ms = 0;
    set_reason(t, reason);
    journal_mark_task(&s->journal, t);
    task_finished(s, t);
    need_ended(s, t);
}

/* Whether t's result may be stored in the cache: a run submitted with
 * --no-cache still refreshes it (it only refuses to read it). */
static bool cacheable(const task_t *t)
{
    return t->step->cache && !(t->step->fan_out && !t->is_item) && !t->step->uses_body;
}

/* Keep the newest `keep` checkpoints of t; release the others' blobs. */
static void trim_checkpoints(sched_t *s, task_t *t, size_t keep)
{
    if (t->n_checkpoints <= keep)
        return;
    size_t drop = t->n_checkpoints - keep;
    for (size_t k = 0; k < drop; k++) {
        blobstore_ref_artifact(s, t->checkpoints[k]->artifact, -1);
        drover__checkpoint__free_unpacked(t->checkpoints[k], NULL);
    }
    memmove(t->checkpoints, t->checkpoints + drop, keep * sizeof *t->checkpoints);
    t->n_checkpoints = keep;
    journal_mark_task(&s->journal, t);
}

/* t ended well (status SUCCEEDED or CACHED): release its children. */
static void task_succeeded(sched_t *s, task_t *t, Drover__TaskStatus status)
{
    task_set_status(t, status);
    set_reason(t, NULL);
    trim_checkpoints(s, t, 0); /* a finished step never resumes */
    journal_mark_task(&s->journal, t);
    if (cacheable(t) && dag_prepare(s, t) == 0) { /* it ran with this expansion */
        if (!t->cache_key)
            t->cache_key = xmalloc(DIGEST_LEN);
        flow_cache_key(t, t->cache_key);
        journal_cache_put(&s->journal, t);
    } else {
        set_reason(t, NULL); /* a failed expansion leaves one: it succeeded, uncached */
    }
    task_finished(s, t);
    need_ended(s, t);
}

static void task_failed(sched_t *s, task_t *t, const char *reason)
{
    const Drover__RetryPolicy *p = t->step->retries;
    char why[384];
    int64_t at = p ? util_now_ms() + (int64_t)dag_backoff_ms(p, t->retries_used + 1) : 0;
    if (p && t->retries_used < p->limit &&
        limits_may_retry(t, dag_current_attempt(t), at, why, sizeof why)) {
        set_reason(t, reason);
        task_set_status(t, DROVER__TASK_STATUS__TASK_FAILED);
        t->retries_used++;
        t->retry_at_ms = at;
        retry_push(s, t);
        journal_mark_task(&s->journal, t);
        return;
    }
    if (p && t->retries_used < p->limit) {
        char *full = xasprintf("%s; not retried: %s", reason, why);
        fail_for_good(s, t, full);
        free(full);
        return;
    }
    fail_for_good(s, t, reason);
}

/* ------------------------------------------------------------ activation */

/* Serve t from the cache if an identical step already succeeded. */
static bool try_cache(sched_t *s, task_t *t)
{
    char run_id[128];
    uint32_t index;
    if (!cacheable(t))
        return false;
    if (t->run->rec->no_cache)
        return false; /* the result still refreshes the cache */
    uint8_t key[DIGEST_LEN];
    flow_cache_key(t, key);
    if (store_cache_get(s->store, key, run_id, sizeof run_id, &index) < 0)
        return false;
    run_t *src_run = dag_find_run(s, run_id);
    if (!src_run || src_run->deleting || index >= src_run->n_tasks)
        return false;
    task_t *src = src_run->tasks[index];
    if (src == t || !succeeded(src))
        return false;
    if (t->step->capture_result && !src->result)
        return false; /* it ran without capturing: run again to capture */
    flow_set_outputs(s, t, src->outputs, src->n_outputs, src->out_params, src->n_out_params);
    free(t->result);
    t->result = src->result ? xstrdup(src->result) : NULL;
    /* Name the task that really ran the step, even when src reused it. */
    free(t->cached_from);
    t->cached_from = src->cached_from ? xstrdup(src->cached_from)
                                      : xasprintf("%s/%s", src_run->rec->id, src->name);
    log_debug("%s/%s served from cache (%s)", t->run->rec->id, t->name, t->cached_from);
    task_succeeded(s, t, DROVER__TASK_STATUS__TASK_CACHED);
    return true;
}

static void make_ready(sched_t *s, task_t *t)
{
    char err[512];
    t->retry_at_ms = 0;
    if (flow_settings(s, t, err, sizeof err) < 0) {
        fail_for_good(s, t, err); /* a bad value: no retry would change it */
        return;
    }
    if (dag_prepare(s, t) < 0) {
        char *why = xasprintf("cannot expand templates: %s", t->reason);
        fail_for_good(s, t, why);
        free(why);
        return;
    }
    if (t->n_attempts == 0 && try_cache(s, t))
        return;
    if (t->is_item || t->scope)
        flow_unprepare(t); /* checked; expanded again when it is assigned */
    task_set_status(t, DROVER__TASK_STATUS__TASK_READY);
    dag_ready_push(s, t);
    if ((!t->is_item && !t->scope) || t->n_attempts)
        journal_mark_task(&s->journal, t); /* a fresh item or member: once it is assigned */
}

/* Release WAITING items of a fan-out group up to its parallelism. Items
 * decided at once (skipped, cached) end inside activate(); the loop here
 * picks up the room they leave, so the recursion never nests per item. */
static void release_items(sched_t *s, task_t *g)
{
    uint32_t cap = g->step->parallelism;
    if (g->releasing)
        return;
    g->releasing = true;
    while (g->items_released < g->n_items &&
           (cap == 0 || g->items_released - g->items_done < cap)) {
        task_t *it = g->run->tasks[g->items[g->items_released++]];
        if (it->status == DROVER__TASK_STATUS__TASK_WAITING)
            activate(s, it);
    }
    g->releasing = false;
    if (g->n_items && g->items_done == g->n_items && !dag_task_final(g))
        group_complete(s, g);
}

/* Whether making n more tasks for g would take its run over --max-tasks
 * (a fan-out of recursive templates multiplies): g then fails, saying so. */
static bool too_many_tasks(sched_t *s, task_t *g, size_t n)
{
    size_t have = g->run->n_tasks;
    if (n <= s->cfg.max_run_tasks && have <= s->cfg.max_run_tasks - n)
        return false;
    s->counters.over_limits++;
    char *why = xasprintf("would make the run %zu tasks, more than droverd's --max-tasks %zu",
                          have + n, s->cfg.max_run_tasks);
    fail_for_good(s, g, why);
    free(why);
    return true;
}

static void expand_fan_out(sched_t *s, task_t *g)
{
    char err[512], **items = NULL;
    size_t n = 0;
    if (flow_items(s, g, &items, &n, err, sizeof err) < 0) {
        fail_for_good(s, g, err);
        return;
    }
    run_t *r = g->run;
    if (too_many_tasks(s, g, n)) {
        json_text_list_free(items, n);
        return;
    }
    free(g->items); /* an empty list when reloaded before it expanded */
    free(g->item_status);
    g->item_status = NULL; /* counted once they are all made */
    g->items = xcalloc(n, sizeof *g->items);
    g->n_items = n;
    for (size_t i = 0; i < n; i++) {
        task_t *it = task_new(r, g->step_index);
        it->is_item = true;
        it->scope = g->scope;
        it->item = (uint32_t)i;
        item_label(it, g->name, (uint32_t)i, items[i]);
        task_set_status(it, DROVER__TASK_STATUS__TASK_WAITING);
        g->items[i] = it->index;
        r->unfinished++;
        if (!g->scope && !g->step->is_finally)
            r->main_unfinished++;
        /* Not written: a fresh item is WAITING or READY, which a reload
         * derives from its group (rebuild_items); it is stored from its
         * first assignment or decision on. A million-item fan-out is then
         * one small record, and its items go to disk in placement-sized
         * transactions. */
    }
    json_text_list_free(items, n);
    count_items(g);
    task_set_status(g, DROVER__TASK_STATUS__TASK_RUNNING);
    journal_mark_task(&s->journal, g);
    if (n == 0) {
        flow_collect_items(s, g);
        task_succeeded(s, g, DROVER__TASK_STATUS__TASK_SUCCEEDED);
        return;
    }
    release_items(s, g);
}

static void group_item_done(sched_t *s, task_t *item)
{
    task_t *g = group_of(item);
    g->items_done++;
    if (item->status == DROVER__TASK_STATUS__TASK_FAILED)
        g->items_failed++;
    if (dag_task_final(g) || g->releasing)
        return; /* cancelled meanwhile, or release_items carries on */
    if (g->items_done < g->n_items) {
        if (item->status == DROVER__TASK_STATUS__TASK_CANCELLED)
            return; /* a cancel is under way: release nothing more */
        release_items(s, g);
        return;
    }
    group_complete(s, g);
}

/* A fan-out all of whose items were skipped (their per-item `when` was
 * false) is SKIPPED itself, with the first item's reason; true if so. */
static bool all_items_skipped(sched_t *s, task_t *g)
{
    const task_t *first = NULL;
    for (uint32_t i = 0; i < g->n_items; i++) {
        const task_t *it = g->run->tasks[g->items[i]];
        if (it->status != DROVER__TASK_STATUS__TASK_SKIPPED)
            return false;
        first = first ? first : it;
    }
    if (!first)
        return false; /* an empty list: SUCCEEDED with an empty list, as before */
    char *why = xasprintf("all %u items were skipped (%s: %s)", g->n_items, first->name,
                          first->reason ? first->reason : "skipped");
    skip(s, g, why);
    free(why);
    return true;
}

/* Every item of g has ended: the group succeeds or fails as a whole. */
static void group_complete(sched_t *s, task_t *g)
{
    if (g->items_failed) {
        char *why = xasprintf("%u of %u items failed", g->items_failed, g->n_items);
        fail_for_good(s, g, why);
        free(why);
        return;
    }
    /* Items cancelled (the run cancelled, or stopped by its timeout): so
     * is the group, with their reason. */
    const task_t *cancelled = NULL;
    for (uint32_t i = 0; i < g->n_items && !cancelled; i++) {
        const task_t *it = g->run->tasks[g->items[i]];
        if (it->status == DROVER__TASK_STATUS__TASK_CANCELLED)
            cancelled = it;
    }
    if (g->run->cancelled || cancelled) {
        task_set_status(g, DROVER__TASK_STATUS__TASK_CANCELLED);
        set_reason(g, cancelled && cancelled->reason ? cancelled->reason : "run cancelled");
        journal_mark_task(&s->journal, g);
        task_finished(s, g);
        return;
    }
    if (all_items_skipped(s, g))
        return;
    flow_collect_items(s, g);
    task_succeeded(s, g, DROVER__TASK_STATUS__TASK_SUCCEEDED);
}

/* Make the children lists of instance g's members (their needs are
 * fellow members). */
static void link_members(run_t *r, task_t *g)
{
    const group_t *grp = g->grp;
    for (uint32_t j = 0; j < grp->n_members; j++) {
        task_t *m = r->tasks[grp->first_member + j];
        for (size_t k = 0; k < m->step->n_needs; k++) {
            task_t *p = need_task(m, k);
            if (p)
                p->n_children++;
        }
    }
    for (uint32_t j = 0; j < grp->n_members; j++) {
        task_t *p = r->tasks[grp->first_member + j];
        free(p->children);
        p->children = xcalloc(p->n_children, sizeof *p->children);
        p->n_children = 0;
    }
    for (uint32_t j = 0; j < grp->n_members; j++) {
        task_t *m = r->tasks[grp->first_member + j];
        for (size_t k = 0; k < m->step->n_needs; k++) {
            task_t *p = need_task(m, k);
            if (p)
                p->children[p->n_children++] = m->index;
        }
    }
}

/* A member of group instance g, made (again) at position j of its body. */
static void member_init(task_t *m, task_t *g)
{
    m->scope = g;
    free(m->name);
    m->name = xasprintf("%s.%s", g->name, m->step->name);
    task_set_status(m, DROVER__TASK_STATUS__TASK_WAITING);
}

static void start_group_finally(sched_t *s, task_t *g)
{
    group_t *grp = g->grp;
    if (grp->finally_started)
        return;
    grp->finally_started = true;
    for (uint32_t j = 0; j < grp->n_members; j++) {
        task_t *m = g->run->tasks[grp->first_member + j];
        if (m->step->is_finally)
            decide(s, m); /* its rule over the finally members it needs */
    }
}

/* Every member of instance g has ended: g ends as a run would. */
static void group_end(sched_t *s, task_t *g)
{
    run_t *r = g->run;
    const group_t *grp = g->grp;
    const task_t *failed = NULL, *cancelled = NULL;
    uint32_t skipped = 0;
    for (uint32_t j = 0; j < grp->n_members; j++) {
        const task_t *m = r->tasks[grp->first_member + j];
        if (!failed && m->status == DROVER__TASK_STATUS__TASK_FAILED &&
            !m->step->continue_on_failed)
            failed = m;
        if (!cancelled && m->status == DROVER__TASK_STATUS__TASK_CANCELLED)
            cancelled = m;
        skipped += m->status == DROVER__TASK_STATUS__TASK_SKIPPED;
    }
    if (failed) {
        /* a failed group names the step that failed inside it already:
         * pass that on, so a deep recursion's reason stays one step's */
        char *why = failed->grp && failed->reason
                        ? xstrdup(failed->reason)
                        : xasprintf("step '%s' failed: %s", failed->name,
                                    failed->reason ? failed->reason : "failed");
        fail_for_good(s, g, why);
        free(why);
    } else if (cancelled || (r->cancelled && !in_finally(g))) {
        task_set_status(g, DROVER__TASK_STATUS__TASK_CANCELLED);
        set_reason(g, cancelled && cancelled->reason ? cancelled->reason : "run cancelled");
        journal_mark_task(&s->journal, g);
        task_finished(s, g);
    } else if (grp->n_members && skipped == grp->n_members) {
        char *why = xasprintf("all %u steps of template '%s' were skipped", grp->n_members,
                              body_of(g)->name);
        skip(s, g, why);
        free(why);
    } else {
        flow_group_outputs(s, g);
        task_succeeded(s, g, DROVER__TASK_STATUS__TASK_SUCCEEDED);
    }
}

/* Member m of an instance ended: count it; start the body's exit handlers
 * once its main members have ended, end the instance once all have. */
static void member_done(sched_t *s, task_t *m)
{
    task_t *g = m->scope;
    group_t *grp = g->grp;
    if (!grp)
        return;
    grp->done++;
    if (!m->step->is_finally && grp->main_left > 0)
        grp->main_left--;
    if (m->status == DROVER__TASK_STATUS__TASK_FAILED && !m->step->continue_on_failed)
        grp->failed++;
    if (dag_task_final(g))
        return;
    if (grp->main_left == 0)
        start_group_finally(s, g);
    if (grp->done == grp->n_members && !dag_task_final(g))
        group_end(s, g);
}

/* The deepest a group may nest in run r. */
static uint32_t max_depth(const sched_t *s, const run_t *r)
{
    uint32_t max = s->cfg.max_depth ? s->cfg.max_depth : 100;
    return r->rec->max_depth && r->rec->max_depth < max ? r->rec->max_depth : max;
}

/* Activated instance g (a step using a DAG template, or an item of such a
 * for_each step): expand its inputs, make its members and activate those
 * that need nothing. Members of a recursive template are made only here,
 * so a recursion goes as deep as its `when`s let it (bounded by
 * max_depth). */
static void instantiate(sched_t *s, task_t *g)
{
    run_t *r = g->run;
    const Drover__TemplateBody *b = body_of(g);
    uint32_t depth = dag_depth(g) + 1, max = max_depth(s, r);
    char err[512];
    if (!b) {
        fail_for_good(s, g, "its template's body is missing from the run");
        return;
    }
    if (depth > max) {
        char *why = xasprintf("template '%s' would nest %u groups deep, more than max_depth %u",
                              b->name, depth, max);
        fail_for_good(s, g, why);
        free(why);
        return;
    }
    if (too_many_tasks(s, g, b->n_steps))
        return;
    Drover__KeyValue **in = NULL;
    size_t n_in = 0;
    if (flow_group_inputs(s, g, &in, &n_in, err, sizeof err) < 0) {
        fail_for_good(s, g, err);
        return;
    }
    group_t *grp = xcalloc(1, sizeof *grp);
    grp->in_params = in;
    grp->n_in_params = (uint32_t)n_in;
    grp->first_member = (uint32_t)r->n_tasks;
    grp->n_members = b->n_steps;
    g->grp = grp;
    for (uint32_t j = 0; j < b->n_steps; j++) {
        task_t *m = task_new(r, b->first_step + j);
        member_init(m, g);
        m->unfinished_deps = (uint32_t)m->step->n_needs;
        grp->main_left += !m->step->is_finally;
        r->unfinished++;
    }
    link_members(r, g);
    task_set_status(g, DROVER__TASK_STATUS__TASK_RUNNING);
    journal_mark_task(&s->journal, g); /* its members are stored once decided (make_ready) */
    log_debug("%s/%s: template '%s' instantiated (%u steps, depth %u)", r->rec->id, g->name,
              b->name, b->n_steps, depth);
    if (grp->n_members == 0) {
        group_end(s, g);
        return;
    }
    if (grp->main_left == 0)
        start_group_finally(s, g);
    for (uint32_t j = 0; j < grp->n_members; j++) {
        task_t *m = r->tasks[grp->first_member + j];
        if (m->unfinished_deps == 0 && m->status == DROVER__TASK_STATUS__TASK_WAITING)
            activate(s, m);
    }
}

/* All needs done: decide the step (condition, fan-out, cache) or queue it. */
static void activate(sched_t *s, task_t *t)
{
    if (t->step->is_finally && !finally_started(t))
        return; /* exit handlers wait for every main step */
    bool item_when = t->step->when_scope == DROVER__WHEN_SCOPE__WHEN_SCOPE_ITEM;
    if (t->step->when && *t->step->when && item_when == t->is_item) {
        char err[512];
        bool ok = false;
        if (flow_when(s, t, &ok, err, sizeof err) < 0) {
            char *why = xasprintf("when: %s", err);
            fail_for_good(s, t, why);
            free(why);
            return;
        }
        if (!ok) {
            char *shown = flow_when_shown(s, t);
            char *why = xasprintf("when: %s was false", shown);
            free(shown);
            skip(s, t, why);
            free(why);
            return;
        }
    }
    if (t->step->suspend && !t->is_item) {
        gate_suspend(s, t); /* an approval gate runs nothing */
        return;
    }
    if (t->step->fan_out && !t->is_item) {
        expand_fan_out(s, t);
        return;
    }
    if (t->step->uses_body) {
        instantiate(s, t); /* a group, or an item of a for_each group */
        return;
    }
    make_ready(s, t);
}

void dag_gate_end(sched_t *s, task_t *t, bool ok, const char *reason)
{
    if (!ok) {
        fail_for_good(s, t, reason);
        return;
    }
    char *why = xstrdup(reason); /* task_succeeded clears the reason */
    task_succeeded(s, t, DROVER__TASK_STATUS__TASK_SUCCEEDED);
    set_reason(t, why);
    free(why);
}

static void start_finally(sched_t *s, run_t *r)
{
    if (r->finally_started)
        return;
    r->finally_started = true;
    for (size_t i = 0; i < r->n_root; i++) {
        task_t *t = r->tasks[i];
        if (t->step->is_finally)
            decide(s, t); /* its rule over the finally steps it needs */
    }
}

/* ------------------------------------------------------------ agents' events */

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
    task_set_status(t, DROVER__TASK_STATUS__TASK_RUNNING);
    a->status = DROVER__TASK_STATUS__TASK_RUNNING;
    a->started_ms = time_ms ? time_ms : util_now_ms();
    if (t->ready_us) /* READY since droverd started: the dispatch latency */
        metrics_observe_dispatch(&s->metrics, (double)(metrics_now_us() - t->ready_us) / 1e6);
    /* Written with the next commit, but not worth one of its own: nothing
     * is sent because of it, and if it is lost in a crash the task is still
     * ASSIGNED to the agent that re-registers holding it, and its EXITED
     * report is accepted from ASSIGNED as well. */
    journal_mark_task_lazy(&s->journal, t);
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
        if (reason)
            util_pb_set_str(&a->reason, reason);
        idmap_del(s->dag.attempts, a->id);
    }
    fleet_unbind_task(t);
    journal_mark_task(&s->journal, t);
}

const Drover__Checkpoint *dag_latest_checkpoint(const task_t *t)
{
    return t->n_checkpoints ? t->checkpoints[t->n_checkpoints - 1] : NULL;
}

void dag_task_checkpoint(sched_t *s, task_t *t, const Drover__Checkpoint *ck)
{
    char err[256];
    Drover__AttemptRecord *a = current_open_attempt(t);
    if (!a || !ck || !ck->artifact || !t->step->checkpoint)
        return;
    if (flow_check_artifact(s, ck->artifact, err, sizeof err) < 0) {
        log_warn("%s/%s: checkpoint of attempt %u ignored: %s", t->run->rec->id, t->name, a->number,
                 err);
        return;
    }
    const Drover__Checkpoint *last = dag_latest_checkpoint(t);
    if (last && last->attempt == a->number && last->time_ms == ck->time_ms &&
        last->step == ck->step)
        return; /* the same one again (a final checkpoint already committed) */
    Drover__Checkpoint *copy = xmalloc(sizeof *copy);
    drover__checkpoint__init(copy);
    copy->artifact = util_pb_copy(ck->artifact);
    copy->step = ck->step;
    copy->time_ms = ck->time_ms ? ck->time_ms : util_now_ms();
    copy->attempt = a->number;
    blobstore_ref_artifact(s, copy->artifact, +1);
    t->checkpoints = xrealloc(t->checkpoints, (t->n_checkpoints + 1) * sizeof *t->checkpoints);
    t->checkpoints[t->n_checkpoints++] = copy;
    trim_checkpoints(s, t, t->step->checkpoint_keep ? t->step->checkpoint_keep : 1);
    a->checkpoints++;
    s->metrics.checkpoints++;
    s->metrics.checkpoint_bytes += copy->artifact->size;
    journal_mark_task(&s->journal, t);
    log_info("%s/%s: checkpoint at step %" PRIu64 " committed (%zu files, %" PRIu64 " bytes)",
             t->run->rec->id, t->name, copy->step, copy->artifact->n_files, copy->artifact->size);
}

/* The attempt ended by its node going away, not by its own failure: back
 * to READY (resuming from the latest checkpoint), counted against
 * max_preemptions and never against retries. status: PREEMPTED or LOST. */
/* An attempt ended for no fault of the step: READY again (not a retry),
 * or, once `give_up` (its own bound passed), failed for good saying after
 * how many `what`. */
static void back_to_ready(sched_t *s, task_t *t, const char *reason, bool give_up, uint32_t count,
                          const char *what)
{
    if (give_up) {
        char *why = xasprintf("%s; gave up after %u %s", reason, count, what);
        fail_for_good(s, t, why);
        free(why);
        return;
    }
    set_reason(t, reason);
    task_set_status(t, DROVER__TASK_STATUS__TASK_READY);
    dag_ready_push(s, t);
    journal_mark_task(&s->journal, t);
}

static void requeue(sched_t *s, task_t *t, Drover__TaskStatus status, const char *reason)
{
    Drover__AttemptRecord *a = current_open_attempt(t);
    const Drover__Checkpoint *ck = dag_latest_checkpoint(t);
    int64_t heard = t->agent ? t->agent->last_seen_ms : 0; /* its node's last heartbeat */
    if (a) {
        /* Work lost: from this attempt's last checkpoint (or its start) to
         * when its node was last heard from. */
        int64_t from = ck && ck->attempt == a->number ? ck->time_ms : a->started_ms;
        int64_t end = t->agent && t->agent->last_seen_ms ? t->agent->last_seen_ms : util_now_ms();
        a->lost_ms = a->started_ms && from && end > from ? end - from : 0;
        if (status == DROVER__TASK_STATUS__TASK_PREEMPTED)
            util_pb_set_str(&t->avoid_agent, a->agent);
    }
    close_attempt(s, t, status, reason);
    if (a && status == DROVER__TASK_STATUS__TASK_LOST) {
        /* Its node went silent: it ran (and is charged, spot time and
         * cost) until the last heartbeat, not until the loss was noticed
         * an agent timeout later. */
        if (heard && heard >= a->started_ms && heard < a->finished_ms)
            a->finished_ms = heard;
    }
    t->preemptions++;
    if (status == DROVER__TASK_STATUS__TASK_PREEMPTED)
        s->metrics.preemptions++;
    else
        s->metrics.lost++;
    back_to_ready(s, t, reason, t->preemptions > t->step->max_preemptions, t->preemptions,
                  "lost/preempted attempts");
}

/* The attempt failed for its agent's reasons, not the step's: back to
 * READY at once, on another agent if one could take it (placer.c waives
 * the avoidance otherwise), without using a retry; after
 * max_system_errors of them the task fails, with the cause. */
static void system_error(sched_t *s, task_t *t, const char *reason)
{
    Drover__AttemptRecord *a = current_open_attempt(t);
    if (a) {
        a->system_error = true;
        util_pb_set_str(&t->avoid_agent, a->agent);
    }
    close_attempt(s, t, DROVER__TASK_STATUS__TASK_FAILED, reason);
    t->system_errors++;
    log_warn("%s/%s: attempt %u: %s (%u of %u system errors)", t->run->rec->id, t->name,
             a ? a->number : 0, reason, t->system_errors, s->cfg.max_system_errors);
    back_to_ready(s, t, reason, t->system_errors >= s->cfg.max_system_errors, t->system_errors,
                  "system errors");
}

void dag_task_exited(sched_t *s, task_t *t, const Drover__Report *rep)
{
    char err[512];
    Drover__AttemptRecord *a = current_open_attempt(t);
    if (!a)
        return;
    a->exit_code = rep->exit_code;
    a->term_signal = rep->term_signal;
    if (!a->started_ms && rep->time_ms)
        a->started_ms = rep->time_ms;
    if (rep->preempted) {
        if (rep->checkpoint)
            dag_task_checkpoint(s, t, rep->checkpoint);
        requeue(s, t, DROVER__TASK_STATUS__TASK_PREEMPTED,
                rep->reason && *rep->reason ? rep->reason : "node preempted");
        return;
    }
    if (rep->system_error) {
        system_error(s, t, rep->reason && *rep->reason ? rep->reason : "system error on its agent");
        return;
    }
    if (t->step->capture_result) { /* kept whatever the outcome: a failure's output is data */
        free(t->result);
        t->result = rep->has_result ? xstrdup(rep->result ? rep->result : "") : NULL;
    }
    if (limits_skip_code(t, rep)) {
        char *why = xasprintf("exit code %d (skip_on_exit_code)", rep->exit_code);
        close_attempt(s, t, DROVER__TASK_STATUS__TASK_SKIPPED, why);
        skip(s, t, why);
        free(why);
        return;
    }
    bool clean = rep->exit_code == 0 && rep->term_signal == 0 && !rep->timed_out &&
                 (!rep->reason || !*rep->reason);
    if (clean && flow_check_outputs(s, t, rep, err, sizeof err) == 0) {
        close_attempt(s, t, DROVER__TASK_STATUS__TASK_SUCCEEDED, NULL);
        flow_set_outputs(s, t, rep->outputs, rep->n_outputs, rep->out_params, rep->n_out_params);
        task_succeeded(s, t, DROVER__TASK_STATUS__TASK_SUCCEEDED);
        return;
    }
    char *reason;
    if (clean)
        reason = xstrdup(err);
    else if (rep->timed_out)
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
    requeue(s, t, DROVER__TASK_STATUS__TASK_LOST, reason);
}

static void cancel_task_why(sched_t *s, task_t *t, const char *why)
{
    Drover__AttemptRecord *a = current_open_attempt(t);
    if (t->agent && a)
        outbound_kill(&s->out, t->agent, a->id);
    close_attempt(s, t, DROVER__TASK_STATUS__TASK_CANCELLED, why);
    task_set_status(t, DROVER__TASK_STATUS__TASK_CANCELLED);
    t->retry_at_ms = 0;
    set_reason(t, why);
    task_finished(s, t);
}

static void cancel_task(sched_t *s, task_t *t)
{
    cancel_task_why(s, t, "run cancelled");
}

void dag_stop_run(sched_t *s, run_t *r, const char *reason)
{
    util_pb_set_str(&r->rec->reason, reason);
    r->failed = true;
    journal_mark_run(&s->journal, r);
    for (size_t i = r->n_tasks; i-- > 0;) { /* items first, as for a cancel */
        task_t *t = r->tasks[i];
        if (!dag_task_final(t) && !in_finally(t) && !t->grp) /* an instance: its members */
            cancel_task_why(s, t, reason);
    }
}

void dag_cancel_run(sched_t *s, run_t *r)
{
    bool again = r->cancelled; /* a second cancel stops the exit handlers too */
    r->cancelled = true;
    r->rec->cancelled = true;
    /* Items first, so their groups end after them. */
    for (size_t i = r->n_tasks; i-- > 0;) {
        task_t *t = r->tasks[i];
        /* an instance ends with its members (its exit handlers may still run) */
        if (!dag_task_final(t) && (!in_finally(t) || again) && !t->grp)
            cancel_task(s, t);
    }
    journal_mark_run(&s->journal, r);
}

void dag_retry_due(sched_t *s, int64_t now_ms)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->dag.n_retrying; i++) {
        task_t *t = s->dag.retrying[i];
        if (t->status != DROVER__TASK_STATUS__TASK_FAILED || !t->retry_at_ms)
            continue; /* cancelled meanwhile */
        if (t->retry_at_ms <= now_ms)
            make_ready(s, t);
        else
            s->dag.retrying[kept++] = t;
    }
    s->dag.n_retrying = kept;
}

bool dag_run_final(const run_t *r)
{
    return r->rec->status == DROVER__RUN_STATUS__RUN_SUCCEEDED ||
           r->rec->status == DROVER__RUN_STATUS__RUN_FAILED ||
           r->rec->status == DROVER__RUN_STATUS__RUN_CANCELLED;
}

/* ------------------------------------------------------------ creation */

static Drover__KeyValue **copy_spec_kvs(const spec_kv_t *kvs, size_t n)
{
    Drover__KeyValue **out = xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = util_kv_new(kvs[i].key, kvs[i].value);
    return out;
}

/* Decide, once, whether st's `when` is evaluated for each item or for the
 * step as a whole: at submit, or at load for a run stored before the
 * field existed (when_scope UNSET). */
static void decide_when_scope(Drover__StepSpec *st)
{
    if (st->when_scope == DROVER__WHEN_SCOPE__WHEN_SCOPE_UNSET)
        st->when_scope = st->fan_out && expr_when_per_item(st->when)
                             ? DROVER__WHEN_SCOPE__WHEN_SCOPE_ITEM
                             : DROVER__WHEN_SCOPE__WHEN_SCOPE_STEP;
}

/* The run's own steps: the first root_steps (all, in a run stored before
 * templates). */
static uint32_t root_count(const Drover__RunSteps *st)
{
    return st->root_steps && st->root_steps <= st->n_steps ? st->root_steps : (uint32_t)st->n_steps;
}

/* Create the tasks of r's own steps and their children lists (a group's
 * members are made when it is instantiated: link_members). */
static void build_step_tasks(run_t *r)
{
    r->n_root = root_count(r->steps);
    size_t n = r->n_root;
    size_t *child_counts = xcalloc(n, sizeof *child_counts);
    for (size_t i = 0; i < n; i++) {
        task_t *t = task_new(r, (uint32_t)i);
        t->name = xstrdup(t->step->name);
        for (size_t j = 0; j < t->step->n_needs; j++)
            if (t->step->needs[j] < n)
                child_counts[t->step->needs[j]]++;
    }
    for (size_t i = 0; i < n; i++)
        r->tasks[i]->children = xcalloc(child_counts[i], sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        task_t *t = r->tasks[i];
        for (size_t j = 0; j < t->step->n_needs; j++) {
            uint32_t p = t->step->needs[j];
            if (p < n) {
                task_t *parent = r->tasks[p];
                parent->children[parent->n_children++] = (uint32_t)i;
            }
        }
    }
    free(child_counts);
}

static void add_run(sched_t *s, run_t *r)
{
    if (s->dag.n_runs == s->dag.cap_runs) {
        s->dag.cap_runs = s->dag.cap_runs ? s->dag.cap_runs * 2 : 64;
        s->dag.runs = xrealloc(s->dag.runs, s->dag.cap_runs * sizeof *s->dag.runs);
    }
    s->dag.runs[s->dag.n_runs++] = r;
    zhashx_insert(s->dag.runs_by_id, r->rec->id, r);
}

static size_t count_main(const run_t *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_root; i++)
        n += !r->steps->steps[i]->is_finally;
    return n;
}

run_t *dag_create_run(sched_t *s, const spec_t *spec, const char *file, bool no_cache)
{
    run_t *r = dag_new_run(s, spec, file, no_cache);
    dag_start_run(s, r);
    return r;
}

run_t *dag_new_run(sched_t *s, const spec_t *spec, const char *file, bool no_cache)
{
    Drover__RunRecord *rec = xmalloc(sizeof *rec);
    drover__run_record__init(rec);
    rec->id = xasprintf("r%06" PRIu64, ++s->dag.next_run);
    journal_mark_counters(&s->journal);
    rec->name = xstrdup(spec->name);
    rec->status = DROVER__RUN_STATUS__RUN_RUNNING;
    rec->created_ms = util_now_ms();
    rec->spec_file = xstrdup(file ? file : "");
    rec->n_params = spec->param_count;
    rec->params = copy_spec_kvs(spec->params, spec->param_count);
    rec->no_cache = no_cache;
    rec->max_depth = spec->max_depth;
    Drover__RunSteps *steps = xmalloc(sizeof *steps);
    drover__run_steps__init(steps);
    steps->n_steps = spec->step_count;
    steps->steps = xcalloc(spec->step_count, sizeof *steps->steps);
    for (size_t i = 0; i < spec->step_count; i++) {
        steps->steps[i] = spec_step_dup(spec->steps[i]); /* the parser's message */
        decide_when_scope(steps->steps[i]);
    }
    steps->root_steps = (uint32_t)(spec->root_count ? spec->root_count : spec->step_count);
    steps->n_bodies = spec->body_count;
    steps->bodies = spec->body_count ? xcalloc(spec->body_count, sizeof *steps->bodies) : NULL;
    for (size_t i = 0; i < spec->body_count; i++)
        steps->bodies[i] = util_pb_copy(spec->bodies[i]);

    run_t *r = xcalloc(1, sizeof *r);
    r->rec = rec;
    r->steps = steps;
    r->steps_unwritten = true;
    build_step_tasks(r);
    r->unfinished = r->n_tasks;
    r->main_unfinished = count_main(r);
    add_run(s, r);
    limits_run_created(s, r, spec);
    journal_mark_run(&s->journal, r);
    log_info("run %s (%s) submitted: %zu steps, %zu templates", rec->id, rec->name, r->n_tasks,
             spec->body_count);
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = r->tasks[i];
        t->unfinished_deps = (uint32_t)t->step->n_needs;
        task_set_status(t, DROVER__TASK_STATUS__TASK_WAITING);
        journal_mark_task(&s->journal, t);
    }
    return r;
}

void dag_start_run(sched_t *s, run_t *r)
{
    Drover__RunRecord *rec = r->rec;
    if (r->main_unfinished == 0)
        start_finally(s, r);
    for (size_t i = 0; i < r->n_root; i++) {
        task_t *t = r->tasks[i];
        if (t->unfinished_deps == 0 && t->status == DROVER__TASK_STATUS__TASK_WAITING)
            activate(s, t);
    }
    if (r->n_tasks == 0) {
        rec->status = DROVER__RUN_STATUS__RUN_SUCCEEDED;
        rec->finished_ms = rec->created_ms;
    }
}

/* ------------------------------------------------------------ lookup */

run_t *dag_find_run(sched_t *s, const char *id)
{
    run_t *r = zhashx_lookup(s->dag.runs_by_id, id);
    return r && !r->deleting ? r : NULL;
}

/* path among the steps of scope (NULL: the run's own): a step name, then
 * "[i]" for an item, then ".REST" within that instance. Names may hold
 * dots, so every step whose name is a prefix of path at a boundary is
 * tried. Scans a body's steps, never a fan-out's items. */
static task_t *find_in_scope(run_t *r, task_t *scope, const char *path)
{
    uint32_t from, n;
    if (!scope_steps(r, scope, &from, &n))
        return NULL;
    for (uint32_t j = from; j < from + n && j < r->steps->n_steps; j++) {
        const char *sn = r->steps->steps[j]->name;
        size_t len = strlen(sn);
        const char *rest = path + len;
        if (strncmp(path, sn, len) != 0 || (*rest && *rest != '[' && *rest != '.'))
            continue;
        task_t *t = dag_member(r, scope, j);
        if (!t)
            continue;
        if (*rest == '[') {
            char *end;
            unsigned long k = strtoul(rest + 1, &end, 10);
            if (rest[1] < '0' || rest[1] > '9' || *end != ']' || k >= t->n_items ||
                t->items[k] >= r->n_tasks)
                continue;
            t = r->tasks[t->items[k]];
            rest = end + 1;
        }
        if (!*rest)
            return t;
        task_t *found = *rest == '.' && t->grp ? find_in_scope(r, t, rest + 1) : NULL;
        if (found)
            return found;
    }
    return NULL;
}

task_t *dag_find_task(run_t *r, const char *name)
{
    return find_in_scope(r, NULL, name);
}

/* ------------------------------------------------------------ records */

void dag_task_record(const task_t *t, Drover__TaskRecord *rec)
{
    drover__task_record__init(rec);
    rec->index = t->index;
    rec->status = t->status;
    rec->retries_used = t->retries_used;
    rec->system_errors = t->system_errors;
    rec->preemptions = t->preemptions;
    rec->retry_at_ms = t->retry_at_ms;
    rec->reason = t->reason ? t->reason : (char *)"";
    rec->n_attempts = t->n_attempts;
    rec->attempts = t->attempts;
    rec->step = t->step_index;
    rec->is_item = t->is_item;
    rec->item = t->item;
    rec->item_value = t->item_value ? t->item_value : (char *)"";
    rec->n_items = t->n_items;
    rec->items = t->items;
    rec->n_out_params = t->n_out_params;
    rec->out_params = t->out_params;
    rec->n_outputs = t->n_outputs;
    rec->outputs = t->outputs;
    rec->cached_from = t->cached_from ? t->cached_from : (char *)"";
    rec->has_result = t->result != NULL;
    rec->result = t->result ? t->result : (char *)"";
    rec->n_checkpoints = t->n_checkpoints;
    rec->checkpoints = t->checkpoints;
    rec->avoid_agent = t->avoid_agent ? t->avoid_agent : (char *)"";
    rec->upstream_failed = t->upstream_failed;
    rec->scope = t->scope ? t->scope->index + 1 : 0;
    if (t->grp) {
        rec->first_member = t->grp->first_member;
        rec->n_in_params = t->grp->n_in_params;
        rec->in_params = t->grp->in_params;
    }
    gate_record(t, rec);
}

static void load_run(const Drover__RunRecord *rec, const Drover__RunSteps *steps, void *arg)
{
    sched_t *s = arg;
    run_t *r = xcalloc(1, sizeof *r);
    r->rec = util_pb_copy(rec);
    r->steps = util_pb_copy(steps);
    for (size_t i = 0; i < r->steps->n_steps; i++)
        decide_when_scope(r->steps->steps[i]);
    r->cancelled = r->rec->cancelled;
    r->committed_status = (uint8_t)(r->rec->status + 1); /* the event log */
    build_step_tasks(r);
    add_run(s, r);
}

static Drover__KeyValue **copy_kvs(Drover__KeyValue **kvs, size_t n)
{
    if (!n)
        return NULL;
    Drover__KeyValue **out = xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = util_kv_new(kvs[i]->key, kvs[i]->value);
    return out;
}

static void load_task(const char *run_id, const Drover__TaskRecord *rec, void *arg)
{
    sched_t *s = arg;
    run_t *r = dag_find_run(s, run_id);
    if (!r || rec->step >= r->steps->n_steps || rec->index > 100000000u) {
        log_warn("store: task %u of unknown run %s ignored", rec->index, run_id);
        return;
    }
    while (r->n_tasks <= rec->index) /* items: created in order, so no real gaps */
        task_set_status(task_new(r, rec->step), DROVER__TASK_STATUS__TASK_CANCELLED);
    task_t *t = r->tasks[rec->index];
    t->step_index = rec->step;
    t->step = r->steps->steps[rec->step];
    task_set_status(t, rec->status);
    t->committed_status = (uint8_t)(rec->status + 1); /* the event log */
    t->retries_used = rec->retries_used;
    t->system_errors = rec->system_errors;
    t->preemptions = rec->preemptions;
    t->retry_at_ms = rec->retry_at_ms;
    t->reason = rec->reason && *rec->reason ? xstrdup(rec->reason) : NULL;
    for (size_t i = 0; i < rec->n_attempts; i++) {
        Drover__AttemptRecord *a = util_pb_copy(rec->attempts[i]);
        char *own = a->agent, *inc = a->agent_incarnation;
        a->agent = journal_intern(&s->journal, own ? own : "");
        a->agent_incarnation = journal_intern(&s->journal, inc ? inc : "");
        if (own != protobuf_c_empty_string)
            free(own);
        if (inc != protobuf_c_empty_string)
            free(inc);
        dag_add_attempt(t, a);
    }
    t->is_item = rec->is_item;
    t->item = rec->item;
    if (rec->scope && rec->scope <= rec->index) /* its instance: an earlier task */
        t->scope = r->tasks[rec->scope - 1];
    if (t->is_item) {
        const task_t *g = group_of(t);
        item_label(t, g && g->name ? g->name : t->step->name, rec->item,
                   rec->item_value ? rec->item_value : "");
    } else if (t->scope && t->scope->name) {
        t->name = xasprintf("%s.%s", t->scope->name, t->step->name);
    }
    if (rec->first_member > rec->index) {
        t->grp = xcalloc(1, sizeof *t->grp);
        t->grp->first_member = rec->first_member;
        const Drover__TemplateBody *b = body_of(t);
        t->grp->n_members = b ? b->n_steps : 0;
        t->grp->in_params = copy_kvs(rec->in_params, rec->n_in_params);
        t->grp->n_in_params = (uint32_t)rec->n_in_params;
    }
    t->n_items = rec->n_items;
    t->items = xcalloc(rec->n_items, sizeof *t->items);
    if (rec->n_items)
        memcpy(t->items, rec->items, rec->n_items * sizeof *t->items);
    t->out_params = copy_kvs(rec->out_params, rec->n_out_params);
    t->n_out_params = rec->n_out_params;
    t->outputs = rec->n_outputs ? xcalloc(rec->n_outputs, sizeof *t->outputs) : NULL;
    for (size_t i = 0; i < rec->n_outputs; i++)
        t->outputs[i] = util_pb_copy(rec->outputs[i]);
    t->n_outputs = rec->n_outputs;
    t->cached_from = rec->cached_from && *rec->cached_from ? xstrdup(rec->cached_from) : NULL;
    t->result = rec->has_result ? xstrdup(rec->result ? rec->result : "") : NULL;
    t->checkpoints = xcalloc(rec->n_checkpoints, sizeof *t->checkpoints);
    for (size_t i = 0; i < rec->n_checkpoints; i++) {
        if (rec->checkpoints[i]->artifact)
            t->checkpoints[t->n_checkpoints++] = util_pb_copy(rec->checkpoints[i]);
    }
    if (t->n_checkpoints) /* the event log: written already */
        t->committed_checkpoint_ms = t->checkpoints[t->n_checkpoints - 1]->time_ms;
    t->avoid_agent = rec->avoid_agent && *rec->avoid_agent ? xstrdup(rec->avoid_agent) : NULL;
    t->upstream_failed = rec->upstream_failed;
    gate_load(t, rec);
}

static void load_schedule(const Drover__ScheduleRecord *rec, void *arg)
{
    schedules_load(arg, rec);
}

static void load_agent(const Drover__AgentRecord *rec, void *arg)
{
    fleet_load(&((sched_t *)arg)->fleet, rec);
}

/* Recreate the items of group g that have no record (never assigned nor
 * decided: WAITING), with their values from the fan-out list again. */
static void rebuild_items(sched_t *s, task_t *g)
{
    char **values = NULL, err[512];
    size_t n_values = 0;
    bool listed = false;
    for (uint32_t k = 0; k < g->n_items; k++) {
        if (g->items[k] > 100000000u)
            continue;
        run_t *r = g->run;
        while (r->n_tasks <= g->items[k])
            task_set_status(task_new(r, g->step_index), DROVER__TASK_STATUS__TASK_CANCELLED);
        task_t *it = r->tasks[g->items[k]];
        if (it->name)
            continue; /* it has its record */
        if (!listed && flow_items(s, g, &values, &n_values, err, sizeof err) < 0)
            log_warn("run %s: %s: items without a record get no value: %s", r->rec->id, g->name,
                     err);
        listed = true;
        it->step_index = g->step_index;
        it->step = r->steps->steps[g->step_index];
        it->is_item = true;
        it->scope = g->scope;
        it->item = k;
        item_label(it, g->name, k, k < n_values ? values[k] : "");
        task_set_status(it, DROVER__TASK_STATUS__TASK_WAITING);
    }
    json_text_list_free(values, n_values);
}

/* Recreate the members of instance g that have no record (WAITING, or
 * READY and never assigned), and its members' children lists. */
static void rebuild_members(task_t *g)
{
    run_t *r = g->run;
    group_t *grp = g->grp;
    const Drover__TemplateBody *b = body_of(g);
    if (!b || grp->first_member > 100000000u || grp->n_members > 100000000u) {
        grp->n_members = 0;
        return;
    }
    while (r->n_tasks < (size_t)grp->first_member + grp->n_members)
        task_set_status(task_new(r, b->first_step), DROVER__TASK_STATUS__TASK_CANCELLED);
    for (uint32_t j = 0; j < grp->n_members; j++) {
        task_t *m = r->tasks[grp->first_member + j];
        if (m->name)
            continue; /* it has its record */
        m->step_index = b->first_step + j;
        m->step = r->steps->steps[m->step_index];
        member_init(m, g);
    }
    link_members(r, g);
}

/* After records are loaded: recompute counters, queues and bindings. */
static void rebuild_run(sched_t *s, run_t *r)
{
    /* In task order, which grows: an instance or a fan-out comes before
     * its members or items, which may be instances or fan-outs too. */
    for (size_t i = 0; i < r->n_tasks; i++) {
        if (r->tasks[i]->n_items) {
            rebuild_items(s, r->tasks[i]);
            count_items(r->tasks[i]);
        }
        if (r->tasks[i]->grp)
            rebuild_members(r->tasks[i]);
    }
    r->unfinished = r->main_unfinished = 0;
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = r->tasks[i];
        if (!t->name)
            t->name = xasprintf("%s[%u]", t->step->name, t->item);
        bool member = t->scope && !t->is_item && t->scope->grp;
        if (!dag_task_final(t)) {
            r->unfinished++;
            r->main_unfinished += !t->scope && !t->step->is_finally;
        } else if (!t->scope && t->status == DROVER__TASK_STATUS__TASK_FAILED &&
                   !t->step->continue_on_failed) {
            r->failed = true;
        }
        if (member) {
            group_t *grp = t->scope->grp;
            if (dag_task_final(t)) {
                grp->done++;
                grp->failed +=
                    t->status == DROVER__TASK_STATUS__TASK_FAILED && !t->step->continue_on_failed;
            } else {
                grp->main_left += !t->step->is_finally;
            }
        }
        if (t->is_item)
            continue;
        t->unfinished_deps = (uint32_t)t->step->n_needs;
        t->deps_ok = t->deps_failed = t->deps_skipped = 0;
        for (size_t j = 0; j < t->step->n_needs; j++) {
            task_t *p = need_task(t, j);
            if (p && dag_task_final(p))
                count_need(t, p);
        }
        for (size_t k = 0; k < t->n_items; k++) {
            const task_t *it = t->items[k] < r->n_tasks ? r->tasks[t->items[k]] : NULL;
            if (!it)
                continue;
            t->items_done += dag_task_final(it);
            t->items_failed += it->status == DROVER__TASK_STATUS__TASK_FAILED;
            if (it->status != DROVER__TASK_STATUS__TASK_WAITING)
                t->items_released = k + 1;
        }
    }
    r->finally_started = r->main_unfinished == 0;
    for (size_t i = 0; i < r->n_tasks; i++)
        if (r->tasks[i]->grp)
            r->tasks[i]->grp->finally_started = r->tasks[i]->grp->main_left == 0;
    size_t n_tasks = r->n_tasks; /* decisions below may instantiate more */
    for (size_t i = 0; i < n_tasks; i++) {
        task_t *t = r->tasks[i];
        Drover__AttemptRecord *a = current_open_attempt(t);
        char err[512];
        /* made READY before the crash (or waiting to retry): the same
         * values again, from the item and upstream outputs (durable) */
        if (!dag_task_final(t) && t->status != DROVER__TASK_STATUS__TASK_WAITING &&
            flow_settings(s, t, err, sizeof err) < 0)
            log_warn("run %s: %s: %s", r->rec->id, t->name, err);
        switch (t->status) {
        case DROVER__TASK_STATUS__TASK_READY:
            dag_ready_push(s, t);
            break;
        case DROVER__TASK_STATUS__TASK_FAILED:
            if (t->retry_at_ms)
                retry_push(s, t);
            break;
        case DROVER__TASK_STATUS__TASK_SUSPENDED:
            gates_track(s, t); /* a timeout passed while droverd was down fires at the tick */
            break;
        case DROVER__TASK_STATUS__TASK_WAITING: {
            /* A fresh item made READY is written only once assigned: one
             * released before the crash (below its group's released
             * mark, which a later item set) is READY again. */
            const task_t *g = t->is_item ? group_of(t) : NULL;
            if (g && !r->cancelled && t->item < g->items_released) {
                activate(s, t);
                break;
            }
            /* Decisions are made in the same transaction as the event that
             * enables them; this only catches what a crash could leave. */
            decide(s, t);
            break;
        }
        case DROVER__TASK_STATUS__TASK_RUNNING:
            if (t->step->fan_out && !t->is_item) {
                release_items(s, t);
                break;
            }
            if (t->grp) { /* an instance: it ends with its members */
                if (t->grp->main_left == 0)
                    start_group_finally(s, t);
                if (t->grp->done == t->grp->n_members && !dag_task_final(t))
                    group_end(s, t);
                break;
            }
            /* fall through */
        case DROVER__TASK_STATUS__TASK_ASSIGNED: {
            agent_t *ag = a ? fleet_find(&s->fleet, a->agent) : NULL;
            if (!ag) {
                dag_task_lost(s, t, "agent unknown after restart");
                break;
            }
            idmap_put(s->dag.attempts, a->id, t);
            fleet_bind_task(ag, t);
            if (t->status == DROVER__TASK_STATUS__TASK_RUNNING)
                fleet_acked(t);
            break;
        }
        default:
            break;
        }
    }
}

int dag_load(sched_t *s)
{
    store_loader_t loader = {.run = load_run,
                             .task = load_task,
                             .agent = load_agent,
                             .schedule = load_schedule,
                             .arg = s};
    int rc = store_load(s->store, &loader);
    if (rc < 0)
        return rc;
    s->dag.next_run = store_get_counter(s->store, "next_run");
    s->dag.next_attempt = store_get_counter(s->store, "next_attempt");
    size_t active = 0;
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        limits_run_loaded(s, s->dag.runs[i]);
        rebuild_run(s, s->dag.runs[i]);
        if (s->dag.runs[i]->unfinished)
            active++;
    }
    limits_tick(s, util_now_ms()); /* deadlines that passed while droverd was down */
    schedules_loaded(s);
    log_info("loaded %zu runs (%zu active), %zu agents", s->dag.n_runs, active,
             zhashx_size(s->fleet.agents));
    return 0;
}

/* ------------------------------------------------------------ deletion */

static void run_free(run_t *r)
{
    for (size_t j = 0; j < r->n_tasks; j++)
        task_free(r->tasks[j]);
    free(r->tasks);
    drover__run_record__free_unpacked(r->rec, NULL);
    drover__run_steps__free_unpacked(r->steps, NULL);
    free(r);
}

int dag_delete_run(sched_t *s, run_t *r)
{
    if (r->unfinished)
        return -EBUSY;
    if (r->deleting)
        return 0;
    limits_run_ended(s, r); /* whatever ended it, no list keeps it */
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = r->tasks[i];
        for (size_t k = 0; k < t->n_outputs; k++)
            blobstore_ref_artifact(s, t->outputs[k], -1);
        for (size_t k = 0; k < t->n_checkpoints; k++) /* of tasks that never succeeded */
            blobstore_ref_artifact(s, t->checkpoints[k]->artifact, -1);
    }
    journal_delete_run(&s->journal, r);
    log_info("run %s deleted", r->rec->id);
    return 0;
}

int dag_commit_deletions(sched_t *s)
{
    for (run_t *r = s->journal.deleting; r; r = r->deleting_next) {
        int rc = store_delete_run(s->store, r->rec->id);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void dag_free_deleted(sched_t *s)
{
    for (run_t *r = s->journal.deleting, *next; r; r = next) {
        next = r->deleting_next;
        zhashx_delete(s->dag.runs_by_id, r->rec->id);
        size_t kept = 0;
        for (size_t i = 0; i < s->dag.n_runs; i++)
            if (s->dag.runs[i] != r)
                s->dag.runs[kept++] = s->dag.runs[i];
        s->dag.n_runs = kept;
        run_free(r);
    }
    s->journal.deleting = NULL;
}

void dag_retention(sched_t *s, int64_t now_ms)
{
    if (!s->cfg.retention_ms)
        return;
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        run_t *r = s->dag.runs[i];
        if (!r->unfinished && r->rec->finished_ms &&
            r->rec->finished_ms < now_ms - (int64_t)s->cfg.retention_ms)
            dag_delete_run(s, r);
    }
}

void dag_free_all(sched_t *s)
{
    placer_parks_free(s);
    for (size_t i = 0; i < s->dag.n_runs; i++)
        run_free(s->dag.runs[i]);
    free(s->dag.runs);
    free(s->dag.retrying);
    free(s->dag.gates);
    s->dag.gates = NULL;
    s->dag.n_gates = s->dag.cap_gates = 0;
    s->dag.retrying = NULL;
    free(s->dag.timed);
    s->dag.timed = NULL;
    s->dag.n_timed = s->dag.cap_timed = 0;
    free(s->dag.holding);
    s->dag.holding = NULL;
    s->dag.n_holding = s->dag.cap_holding = 0;
    s->dag.runs = NULL;
    s->dag.n_runs = s->dag.cap_runs = 0;
    s->journal.deleting = NULL;
}
