/* limits — the retry rules of a step and the limits of a run (README.md,
 * "Pipeline spec": retries.when, retries.max_duration, skip_on_exit_code,
 * top-level parallelism and timeout).
 *
 * Retry rules: when an attempt fails for the step's own reasons (not a
 * preemption, a lost node or a system error: those never spend retries),
 * dag.c asks limits_may_retry whether a retry may start: not once
 * max_duration has passed since the first attempt started (counting the
 * backoff: the retry would start later still), and only while
 * retries.when holds over the failed attempt:
 *   {{exit_code}}  its exit code (0 when a signal ended it)
 *   {{signal}}     the signal that ended it (0 = none)
 *   {{attempt}}    its number (1 = the first)
 *   {{reason}}     OOMKilled (the agent saw its memory limit kill it),
 *                  Timeout (the step's timeout), Signaled (another
 *                  signal) or Error (anything else: an exit code, missing
 *                  outputs).
 *
 * Run parallelism: run_t.active counts the run's tasks bound to an agent
 * (ASSIGNED or RUNNING: fleet_bind_task / fleet_unbind_task keep it, so a
 * restart rebuilds it as it re-binds them). A READY task the placer meets
 * while its run is at its bound leaves the ready queue for the run's held
 * list (O(1), so a blocked run costs later runs nothing); before each pass
 * limits_release puts back as many as the run has room for (bound minus
 * bound tasks minus its tasks already queued). Held is runtime only: a
 * restart queues every READY task again and the placer sorts them anew.
 * A held task's reason (`drover run get`, placer_why) is limits_why_held;
 * r->n_held counts the list, so `drover status` counts them per run.
 *
 * Run timeout: the deadline is the run's created_ms + timeout_ms, both in
 * its record, so a restarted droverd finds it again (dag_load calls
 * limits_run_loaded, then limits_tick at once: a deadline that passed
 * while droverd was down stops the run before anything is placed). Runs
 * with a deadline pending are in dag_state_t.timed (few; checked by the
 * 100 ms tick); a run leaves it when it ends (limits_run_ended) or is
 * stopped, or once its main steps have all ended (its exit handlers are
 * not timed). Stopping (dag_stop_run) cancels every unfinished main task,
 * killing running attempts, lets the exit handlers run, and ends the run
 * FAILED with its record's reason "run timeout 2h".
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "log.h"
#include "units.h"
#include "util.h"

/* ------------------------------------------------------------ retries */

typedef struct {
    const Drover__AttemptRecord *a;
    char buf[32];
} retry_ctx_t;

/* The one word {{reason}} gives for a failed attempt (see the top). */
static const char *reason_word(const Drover__AttemptRecord *a)
{
    const char *r = a->reason ? a->reason : "";
    if (!strncmp(r, "OOMKilled", 9))
        return "OOMKilled";
    if (!strncmp(r, "timeout after", 13))
        return "Timeout";
    if (a->term_signal)
        return "Signaled";
    return "Error";
}

static int retry_resolve(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    retry_ctx_t *x = arg;
    if (!strcmp(ref, "reason")) {
        *value = reason_word(x->a);
        return 0;
    }
    if (!strcmp(ref, "exit_code"))
        snprintf(x->buf, sizeof x->buf, "%d", x->a->exit_code);
    else if (!strcmp(ref, "signal"))
        snprintf(x->buf, sizeof x->buf, "%d", x->a->term_signal);
    else if (!strcmp(ref, "attempt"))
        snprintf(x->buf, sizeof x->buf, "%u", x->a->number);
    else {
        snprintf(err, errlen, "{{%s}} is not known in retries.when", ref);
        return -EINVAL;
    }
    *value = x->buf;
    return 0;
}

bool limits_may_retry(const task_t *t, const Drover__AttemptRecord *a, int64_t retry_at_ms,
                      char *why, size_t whylen)
{
    const Drover__RetryPolicy *p = t->step->retries;
    if (!p)
        return true;
    const Drover__AttemptRecord *first = t->n_attempts ? t->attempts[0] : NULL;
    if (p->max_duration_ms && first && first->started_ms &&
        retry_at_ms > first->started_ms + (int64_t)p->max_duration_ms) {
        snprintf(why, whylen, "retries.max_duration %.6gs passed since the first attempt started",
                 (double)p->max_duration_ms / 1000.0);
        return false;
    }
    if (p->when && *p->when && a) {
        retry_ctx_t x = {.a = a};
        char err[256];
        bool ok = false;
        if (expr_eval(p->when, retry_resolve, &x, &ok, err, sizeof err) < 0) {
            snprintf(why, whylen, "retries.when: %s", err);
            return false;
        }
        if (!ok) {
            snprintf(why, whylen,
                     "retries.when was false (exit_code=%d, reason=%s, signal=%d, attempt=%u)",
                     a->exit_code, reason_word(a), a->term_signal, a->number);
            return false;
        }
    }
    return true;
}

bool limits_skip_code(const task_t *t, const Drover__Report *rep)
{
    if (rep->timed_out || rep->term_signal || rep->exit_code == 0)
        return false;
    for (size_t i = 0; i < t->step->n_skip_on_exit_code; i++)
        if (t->step->skip_on_exit_code[i] == rep->exit_code)
            return true;
    return false;
}

/* ------------------------------------------------------------ parallelism */

bool limits_run_full(const run_t *r)
{
    return r->rec->parallelism && r->active >= r->rec->parallelism;
}

/* Runs with held tasks are in dag.holding (few: those at their bound). */
static void holding_remove(sched_t *s, run_t *r)
{
    dag_state_t *d = &s->dag;
    for (size_t i = 0; i < d->n_holding; i++) {
        if (d->holding[i] == r) {
            d->holding[i] = d->holding[--d->n_holding];
            return;
        }
    }
}

void limits_hold(sched_t *s, task_t *t)
{
    run_t *r = t->run;
    dag_ready_remove(s, t);
    t->held = true;
    t->ready_next = NULL;
    t->ready_prev = r->held_tail;
    if (r->held_tail) {
        r->held_tail->ready_next = t;
    } else {
        r->held_head = t;
        dag_state_t *d = &s->dag;
        if (d->n_holding == d->cap_holding) {
            d->cap_holding = d->cap_holding ? d->cap_holding * 2 : 8;
            d->holding = xrealloc(d->holding, d->cap_holding * sizeof *d->holding);
        }
        d->holding[d->n_holding++] = r;
    }
    r->held_tail = t;
    r->n_held++;
}

void limits_unhold(sched_t *s, task_t *t)
{
    run_t *r = t->run;
    if (!t->held)
        return;
    if (t->ready_prev)
        t->ready_prev->ready_next = t->ready_next;
    else
        r->held_head = t->ready_next;
    if (t->ready_next)
        t->ready_next->ready_prev = t->ready_prev;
    else
        r->held_tail = t->ready_prev;
    t->ready_prev = t->ready_next = NULL;
    t->held = false;
    r->n_held--;
    if (!r->held_head)
        holding_remove(s, r);
}

void limits_release(sched_t *s)
{
    for (size_t i = 0; i < s->dag.n_holding;) {
        run_t *r = s->dag.holding[i];
        uint64_t busy = (uint64_t)r->active + r->queued;
        uint64_t room = r->rec->parallelism > busy ? r->rec->parallelism - busy : 0;
        for (; room && r->held_head; room--) {
            task_t *t = r->held_head;
            limits_unhold(s, t); /* may take r out of holding */
            dag_ready_push(s, t);
        }
        if (i < s->dag.n_holding && s->dag.holding[i] == r)
            i++;
    }
}

void limits_why_held(const run_t *r, char *buf, size_t len)
{
    if (r->active >= r->rec->parallelism)
        snprintf(buf, len, "waiting: run parallelism %u reached (%u running)", r->rec->parallelism,
                 r->active);
    else /* its room is taken by tasks of the run queued ahead of it */
        snprintf(buf, len,
                 "waiting: run parallelism %u reached (%u running, %u queued ahead of it)",
                 r->rec->parallelism, r->active, r->queued);
}

/* ------------------------------------------------------------ timeout */

static void track(sched_t *s, run_t *r)
{
    dag_state_t *d = &s->dag;
    if (d->n_timed == d->cap_timed) {
        d->cap_timed = d->cap_timed ? d->cap_timed * 2 : 8;
        d->timed = xrealloc(d->timed, d->cap_timed * sizeof *d->timed);
    }
    d->timed[d->n_timed++] = r;
}

void limits_run_created(sched_t *s, run_t *r, const spec_t *spec)
{
    r->rec->parallelism = spec->parallelism;
    r->rec->timeout_ms = spec->timeout_ms;
    if (spec->timeout_ms)
        track(s, r);
}

void limits_run_loaded(sched_t *s, run_t *r)
{
    if (r->rec->reason && *r->rec->reason)
        r->failed = true; /* stopped: ends FAILED whatever its tasks did */
    else if (r->rec->timeout_ms && !dag_run_final(r))
        track(s, r);
}

void limits_run_ended(sched_t *s, run_t *r)
{
    dag_state_t *d = &s->dag;
    for (size_t i = 0; i < d->n_timed; i++) {
        if (d->timed[i] == r) {
            d->timed[i] = d->timed[--d->n_timed];
            return;
        }
    }
}

void limits_tick(sched_t *s, int64_t now_ms)
{
    dag_state_t *d = &s->dag;
    for (size_t i = 0; i < d->n_timed;) {
        run_t *r = d->timed[i];
        if (dag_run_final(r) || r->finally_started) {
            /* over, or only its exit handlers left: they are not stopped */
            d->timed[i] = d->timed[--d->n_timed];
            continue;
        }
        if (now_ms < r->rec->created_ms + (int64_t)r->rec->timeout_ms) {
            i++;
            continue;
        }
        d->timed[i] = d->timed[--d->n_timed];
        char dur[64], *reason;
        units_format_duration(r->rec->timeout_ms, dur, sizeof dur);
        reason = xasprintf("run timeout %s", dur);
        log_info("run %s: %s: stopping it", r->rec->id, reason);
        dag_stop_run(s, r, reason);
        free(reason);
    }
}
