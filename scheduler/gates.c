/* gates — approval gates (a step with `suspend:`; README "Approval gates").
 *
 * A gate runs nothing. When it is activated (all needs met, `when` true)
 * it becomes SUSPENDED, a durable state: the task record keeps when it
 * began and when its timeout fires (TaskRecord.suspended_ms,
 * suspend_deadline_ms), so a droverd restart finds it SUSPENDED with the
 * same deadline, and a deadline that passed while droverd was down fires
 * at the first tick. It ends by `drover run resume` (SUCCEEDED, with the
 * output params given by -p; --reject: FAILED "rejected by USER"), by its
 * timeout (on_timeout fail: FAILED "suspend timeout DUR"; continue:
 * SUCCEEDED, as if approved, the reason saying so) or by a cancel of the
 * run (CANCELLED, dag_cancel_run). Who ended it and when are recorded
 * (gate_by, gate_at_ms, gate_rejected) and shown by `run get`.
 *
 * Invariants: s->dag.gates holds exactly the SUSPENDED gates (tracked at
 * suspension and at load, untracked by task_finished), so the tick never
 * sees a task of a deleted run; a refused resume changes nothing.
 */
#include "sched_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* ms as a short duration ("24h", "1h30m", "90s", "250ms"), for reasons. */
static const char *span(uint64_t ms, char *buf, size_t len)
{
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, sec = ms / 1000 % 60, rest = ms % 1000;
    int o = 0;
    buf[0] = '\0';
    if (h)
        o += snprintf(buf + o, len - (size_t)o, "%" PRIu64 "h", h);
    if (m && o < (int)len)
        o += snprintf(buf + o, len - (size_t)o, "%" PRIu64 "m", m);
    if (sec && o < (int)len)
        o += snprintf(buf + o, len - (size_t)o, "%" PRIu64 "s", sec);
    if ((rest || ms == 0) && o < (int)len)
        snprintf(buf + o, len - (size_t)o, "%" PRIu64 "ms", rest);
    return buf;
}

void gates_track(sched_t *s, task_t *t)
{
    dag_state_t *d = &s->dag;
    for (size_t i = 0; i < d->n_gates; i++)
        if (d->gates[i] == t)
            return;
    if (d->n_gates == d->cap_gates) {
        d->cap_gates = d->cap_gates ? d->cap_gates * 2 : 8;
        d->gates = xrealloc(d->gates, d->cap_gates * sizeof *d->gates);
    }
    d->gates[d->n_gates++] = t;
}

void gates_untrack(sched_t *s, task_t *t)
{
    dag_state_t *d = &s->dag;
    for (size_t i = 0; i < d->n_gates; i++) {
        if (d->gates[i] == t) {
            d->gates[i] = d->gates[--d->n_gates];
            return;
        }
    }
}

void gate_suspend(sched_t *s, task_t *t)
{
    char b[64];
    int64_t now = util_now_ms();
    if (!t->gate)
        t->gate = xcalloc(1, sizeof *t->gate);
    t->gate->suspended_ms = now;
    t->gate->deadline_ms =
        t->step->suspend_timeout_ms ? now + (int64_t)t->step->suspend_timeout_ms : 0;
    task_set_status(t, DROVER__TASK_STATUS__TASK_SUSPENDED);
    free(t->reason);
    if (t->step->suspend_timeout_ms)
        t->reason = xasprintf("waiting for drover run resume (timeout %s, then %s)",
                              span(t->step->suspend_timeout_ms, b, sizeof b),
                              t->step->suspend_continue ? "continue" : "fail");
    else
        t->reason = xstrdup("waiting for drover run resume");
    journal_mark_task(&s->journal, t);
    gates_track(s, t);
    log_info("run %s: %s suspended: %s", t->run->rec->id, t->name, t->reason);
}

void gates_due(sched_t *s, int64_t now_ms)
{
    char b[64];
    for (size_t i = s->dag.n_gates; i-- > 0;) {
        if (i >= s->dag.n_gates)
            continue; /* ending one ended others */
        task_t *t = s->dag.gates[i];
        if (!t->gate || !t->gate->deadline_ms || t->gate->deadline_ms > now_ms ||
            t->status != DROVER__TASK_STATUS__TASK_SUSPENDED)
            continue;
        bool go_on = t->step->suspend_continue;
        char *why =
            xasprintf("suspend timeout %s%s", span(t->step->suspend_timeout_ms, b, sizeof b),
                      go_on ? ": continued as if approved (on_timeout: continue)" : "");
        log_info("run %s: %s %s", t->run->rec->id, t->name, why);
        t->gate->at_ms = now_ms;
        if (go_on) { /* declared params are there, empty, as for a resume without -p */
            Drover__KeyValue **kv = xcalloc(t->step->n_out_params, sizeof *kv);
            for (size_t k = 0; k < t->step->n_out_params; k++)
                kv[k] = util_kv_new(t->step->out_params[k], "");
            flow_set_outputs(s, t, NULL, 0, kv, t->step->n_out_params);
            util_free_kvs(kv, t->step->n_out_params);
        }
        dag_gate_end(s, t, go_on, why);
        free(why);
    }
}

/* Whether name is one of st's declared output params. */
static bool declared(const Drover__StepSpec *st, const char *name)
{
    for (size_t k = 0; k < st->n_out_params; k++)
        if (!strcmp(st->out_params[k], name))
            return true;
    return false;
}

int gate_resume(sched_t *s, task_t *t, const char *who, bool reject,
                Drover__KeyValue *const *params, size_t n, size_t max_value, char *err,
                size_t errlen)
{
    if (!t->step->suspend || t->is_item) {
        snprintf(err, errlen, "step %s of run %s is not an approval gate (it has no 'suspend:')",
                 t->name, t->run->rec->id);
        return DROVER__API_ERROR_CODE__API_ERROR_INVALID;
    }
    if (t->status != DROVER__TASK_STATUS__TASK_SUSPENDED) {
        if (t->gate && t->gate->at_ms && t->gate->by)
            snprintf(err, errlen, "step %s of run %s is not suspended: it is %s (%s by %s)",
                     t->name, t->run->rec->id, util_task_status_name(t->status),
                     t->gate->rejected ? "rejected" : "approved", t->gate->by);
        else
            snprintf(err, errlen, "step %s of run %s is not suspended: it is %s", t->name,
                     t->run->rec->id, util_task_status_name(t->status));
        return DROVER__API_ERROR_CODE__API_ERROR_CONFLICT;
    }
    if (reject && n) {
        snprintf(err, errlen, "--reject takes no -p: a rejected gate has no outputs");
        return DROVER__API_ERROR_CODE__API_ERROR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k = params[i]->key ? params[i]->key : "";
        const char *v = params[i]->value ? params[i]->value : "";
        if (!declared(t->step, k)) {
            char shown[80];
            snprintf(shown, sizeof shown, "%.64s%s", k, strlen(k) > 64 ? "..." : "");
            for (char *c = shown; *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
                    *c = '?';
            snprintf(err, errlen,
                     "step %s does not declare output param '%s' (declare it in the gate's "
                     "outputs: {params: [...]})",
                     t->name, shown);
            return DROVER__API_ERROR_CODE__API_ERROR_INVALID;
        }
        if (strlen(v) > max_value) {
            snprintf(err, errlen, "param '%s' is longer than %zu bytes", k, max_value);
            return DROVER__API_ERROR_CODE__API_ERROR_INVALID;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(params[j]->key, k)) {
                snprintf(err, errlen, "param '%s' given twice", k);
                return DROVER__API_ERROR_CODE__API_ERROR_INVALID;
            }
        }
    }
    /* every declared param, in declared order: given, or "" */
    size_t np = reject ? 0 : t->step->n_out_params;
    Drover__KeyValue **kv = xcalloc(np ? np : 1, sizeof *kv);
    for (size_t k = 0; k < np; k++) {
        const char *v = "";
        for (size_t i = 0; i < n; i++)
            if (!strcmp(params[i]->key, t->step->out_params[k]))
                v = params[i]->value;
        kv[k] = util_kv_new(t->step->out_params[k], v);
    }
    if (np)
        flow_set_outputs(s, t, NULL, 0, kv, np);
    util_free_kvs(kv, np);
    free(t->gate->by);
    t->gate->by = xstrdup(who);
    t->gate->at_ms = util_now_ms();
    t->gate->rejected = reject;
    char *why = xasprintf("%s by %s", reject ? "rejected" : "approved", who);
    log_info("run %s: %s %s", t->run->rec->id, t->name, why);
    dag_gate_end(s, t, !reject, why);
    free(why);
    return 0;
}

void gate_record(const task_t *t, Drover__TaskRecord *rec)
{
    if (!t->gate)
        return;
    rec->suspended_ms = t->gate->suspended_ms;
    rec->suspend_deadline_ms = t->gate->deadline_ms;
    rec->gate_by = t->gate->by ? t->gate->by : (char *)"";
    rec->gate_at_ms = t->gate->at_ms;
    rec->gate_rejected = t->gate->rejected;
}

void gate_load(task_t *t, const Drover__TaskRecord *rec)
{
    if (!rec->suspended_ms && !rec->gate_at_ms)
        return;
    gate_free(t);
    t->gate = xcalloc(1, sizeof *t->gate);
    t->gate->suspended_ms = rec->suspended_ms;
    t->gate->deadline_ms = rec->suspend_deadline_ms;
    t->gate->at_ms = rec->gate_at_ms;
    t->gate->by = rec->gate_by && *rec->gate_by ? xstrdup(rec->gate_by) : NULL;
    t->gate->rejected = rec->gate_rejected;
}

void gate_free(task_t *t)
{
    if (!t->gate)
        return;
    free(t->gate->by);
    free(t->gate);
    t->gate = NULL;
}
