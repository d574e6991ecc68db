/* runview — see runview.h. JSON numbers that mean "unset" stay 0 as the
 * API sends them (times) except exit codes and signals, which are null when
 * there is none, since 0 is a real exit code: exit_code is null unless the
 * process exited by itself (has_exit, no signal), signal null unless it was
 * killed by one. cached_from and item are null rather than "" when a task
 * has none; so are group and template. Tasks come in droverd's order, the
 * run's tree (a group's members after it, items after their step). */
#include "runview.h"

#include <inttypes.h>
#include <stdlib.h>

#include "fmt.h"
#include "util.h"

table_t *runview_task_table(const Drover__RunView *run, const size_t *idx, size_t n, int64_t now_ms)
{
    static const char *const headers[] = {"STEP", "STATUS", "ATTEMPTS", "AGENT", "EXIT", "REASON"};
    table_t *t = table_new(6, headers);
    char buf[FMT_BUF];
    if (!idx)
        n = run->n_tasks;
    for (size_t i = 0; i < n; i++) {
        const Drover__TaskView *task = run->tasks[idx ? idx[i] : i];
        if (task->depth) { /* a group's member, under it */
            uint32_t d = task->depth > RUNVIEW_MAX_INDENT ? RUNVIEW_MAX_INDENT : task->depth;
            table_addf(t, "%*s%s", (int)d * 2, "", task->name);
        } else {
            table_add(t, task->name, NULL);
        }
        table_add(t, fmt_task_status(task, now_ms, buf), fmt_task_color(task->status));
        table_addf(t, "%u", task->attempts);
        table_add(t, task->agent, NULL);
        table_add(t, fmt_task_exit(task, buf), NULL);
        if (task->status == DROVER__TASK_STATUS__TASK_CACHED && *task->cached_from)
            table_addf(t, "reused %s", task->cached_from);
        else
            table_add(t, task->reason, NULL);
    }
    return t;
}

/* Seconds as "12s", "3m04s", "1h02m". */
static char *fmt_span(int64_t ms, char *buf)
{
    int64_t s = ms / 1000;
    if (s < 60)
        snprintf(buf, FMT_BUF, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, FMT_BUF, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else
        snprintf(buf, FMT_BUF, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    return buf;
}

void runview_print_spot(FILE *out, const Drover__RunView *run, bool color)
{
    static const char *const headers[] = {"STEP", "PREEMPTED", "RETRIES",   "CHECKPOINT",
                                          "SPOT", "ON-DEMAND", "WORK LOST", "COST"};
    bool any = false;
    for (size_t i = 0; i < run->n_tasks && !any; i++) {
        const Drover__TaskView *t = run->tasks[i];
        any = t->spot_ms || t->preemptions || t->checkpoints || t->cost > 0;
    }
    if (!any)
        return;
    table_t *tab = table_new(8, headers);
    char buf[FMT_BUF];
    double total = 0;
    for (size_t i = 0; i < run->n_tasks; i++) {
        const Drover__TaskView *t = run->tasks[i];
        if (!t->attempts)
            continue;
        table_add(tab, t->name, NULL);
        table_addf(tab, "%u", t->preemptions);
        table_addf(tab, "%u", t->retries_used);
        if (t->checkpoint_ms)
            table_addf(tab, "step %" PRIu64, t->checkpoint_step);
        else
            table_add(tab, "-", NULL);
        table_add(tab, fmt_span(t->spot_ms, buf), NULL);
        table_add(tab, fmt_span(t->ondemand_ms, buf), NULL);
        table_add(tab, fmt_span(t->lost_ms, buf), t->lost_ms ? "33" : NULL);
        table_addf(tab, "$%.4f", t->cost);
        total += t->cost;
    }
    fputs("\nSPOT\n", out);
    table_print(tab, out, 0, 0, color);
    table_destroy(&tab);
    fprintf(out, "estimated cost: $%.4f\n", total);
}

void runview_print_gates(FILE *out, const Drover__RunView *run, bool color)
{
    static const char *const headers[] = {"GATE", "STATUS", "SINCE", "TIMEOUT", "BY", "AT"};
    table_t *tab = NULL;
    char buf[FMT_BUF];
    for (size_t i = 0; i < run->n_tasks; i++) {
        const Drover__TaskView *t = run->tasks[i];
        if (!t->suspended_ms && !t->gate_at_ms)
            continue;
        if (!tab)
            tab = table_new(6, headers);
        table_add(tab, t->name, NULL);
        table_add(tab, util_task_status_name(t->status), fmt_task_color(t->status));
        table_add(tab, fmt_local_time(t->suspended_ms, buf), NULL);
        if (t->suspend_deadline_ms)
            table_add(tab, fmt_local_time(t->suspend_deadline_ms, buf), NULL);
        else
            table_add(tab, "none", NULL);
        if (*t->gate_by)
            table_addf(tab, "%s %s", t->gate_rejected ? "rejected by" : "approved by", t->gate_by);
        else
            table_add(tab, t->gate_at_ms ? "timeout" : "-", NULL);
        table_add(tab, t->gate_at_ms ? fmt_local_time(t->gate_at_ms, buf) : "-", NULL);
    }
    if (!tab)
        return;
    fputs("\nGATES\n", out);
    table_print(tab, out, 0, 0, color);
    table_destroy(&tab);
}

void runview_print_outputs(FILE *out, const Drover__RunView *run)
{
    bool any = false;
    for (size_t i = 0; i < run->n_tasks; i++) {
        const Drover__TaskView *t = run->tasks[i];
        for (size_t k = 0; k < t->n_out_params; k++) {
            char *name = xasprintf("%s.%s", t->name, t->out_params[k]->key);
            char *shown = fmt_clean(name, 0);
            char *value = fmt_clean(t->out_params[k]->value, RUNVIEW_MAX_VALUE);
            if (!any)
                fputs("\nOUTPUTS\n", out);
            any = true;
            fprintf(out, "%s = %s\n", shown, value);
            free(value);
            free(shown);
            free(name);
        }
    }
}

/* A string, or null when it is empty. */
static void json_str_or_null(doc_t *j, const char *key, const char *s)
{
    doc_key(j, key);
    if (s && *s)
        doc_str(j, s);
    else
        doc_null(j);
}

/* "exit_code" (null unless the process exited) and "signal" (null
 * unless a signal ended it). */
static void json_exit(doc_t *j, bool exited, int32_t code, int32_t sig)
{
    doc_key(j, "exit_code");
    if (exited)
        doc_int(j, code);
    else
        doc_null(j);
    doc_key(j, "signal");
    if (sig)
        doc_int(j, sig);
    else
        doc_null(j);
}

static void json_attempt(doc_t *j, const Drover__AttemptRecord *a)
{
    bool exited =
        a->finished_ms != 0 && a->status != DROVER__TASK_STATUS__TASK_LOST && a->term_signal == 0;
    doc_object_begin(j);
    doc_field_uint(j, "attempt", a->number);
    doc_field_uint(j, "id", a->id);
    doc_field_str(j, "agent", a->agent);
    doc_field_str(j, "status", util_task_status_name(a->status));
    json_exit(j, exited, a->exit_code, a->term_signal);
    doc_field_time(j, "started", a->started_ms);
    doc_field_time(j, "finished", a->finished_ms);
    doc_field_str(j, "reason", a->reason);
    doc_field_uint(j, "log_bytes", a->log_bytes);
    doc_field_bool(j, "log_truncated", a->log_truncated);
    doc_field_bool(j, "spot", a->spot);
    doc_field_double(j, "price", a->price);
    doc_field_int(j, "lost_ms", a->lost_ms);
    doc_field_uint(j, "checkpoints", a->checkpoints);
    doc_field_bool(j, "system_error", a->system_error);
    doc_key(j, "resumed_step");
    if (a->resumed)
        doc_uint(j, a->resumed_step);
    else
        doc_null(j);
    doc_object_end(j);
}

static void json_task(doc_t *j, const Drover__TaskView *t)
{
    doc_object_begin(j);
    doc_field_str(j, "name", t->name);
    doc_field_str(j, "status", util_task_status_name(t->status));
    doc_field_uint(j, "attempts", t->attempts);
    doc_field_str(j, "agent", t->agent);
    json_exit(j, t->has_exit && t->term_signal == 0, t->exit_code, t->term_signal);
    doc_field_str(j, "reason", t->reason);
    doc_field_uint(j, "retries_used", t->retries_used);
    doc_field_uint(j, "preemptions", t->preemptions);
    doc_field_uint(j, "system_errors", t->system_errors);
    doc_key(j, "progress");
    if (t->progress >= 0)
        doc_double(j, t->progress);
    else
        doc_null(j);
    doc_key(j, "checkpoint");
    if (t->checkpoint_ms) {
        doc_object_begin(j);
        doc_field_uint(j, "step", t->checkpoint_step);
        doc_field_int(j, "time_ms", t->checkpoint_ms);
        doc_field_uint(j, "kept", t->checkpoints);
        doc_object_end(j);
    } else {
        doc_null(j);
    }
    doc_field_int(j, "spot_ms", t->spot_ms);
    doc_field_int(j, "ondemand_ms", t->ondemand_ms);
    doc_field_int(j, "lost_ms", t->lost_ms);
    doc_field_double(j, "cost", t->cost);
    doc_field_time(j, "retry_at", t->retry_at_ms);
    doc_field_time(j, "started", t->started_ms);
    doc_field_time(j, "finished", t->finished_ms);
    doc_key(j, "outputs");
    doc_object_begin(j);
    doc_key(j, "params");
    doc_kv_object(j, t->out_params, t->n_out_params);
    doc_object_end(j);
    json_str_or_null(j, "cached_from", t->cached_from);
    json_str_or_null(j, "item", t->item_value);
    json_str_or_null(j, "group", t->group); /* the enclosing group instance */
    doc_field_uint(j, "depth", t->depth);
    doc_field_bool(j, "is_group", t->is_group);
    json_str_or_null(j, "template", t->template_);
    doc_key(j, "gate"); /* an approval gate (suspend:) once activated, else null */
    if (t->suspended_ms || t->gate_at_ms) {
        doc_object_begin(j);
        doc_field_time(j, "suspended", t->suspended_ms);
        doc_field_time(j, "timeout_at", t->suspend_deadline_ms);
        json_str_or_null(j, "by", t->gate_by);
        doc_field_time(j, "at", t->gate_at_ms);
        doc_field_bool(j, "rejected", t->gate_rejected);
        doc_object_end(j);
    } else {
        doc_null(j);
    }
    doc_key(j, "history");
    doc_array_begin(j);
    for (size_t i = 0; i < t->n_history; i++)
        json_attempt(j, t->history[i]);
    doc_array_end(j);
    doc_object_end(j);
}

void runview_json_run(doc_t *j, const Drover__RunView *run)
{
    doc_object_begin(j);
    doc_field_str(j, "id", run->id);
    doc_field_str(j, "name", run->name);
    doc_field_str(j, "status", util_run_status_name(run->status));
    doc_key(j, "params");
    doc_kv_object(j, run->params, run->n_params);
    doc_field_time(j, "created", run->created_ms);
    doc_field_time(j, "finished", run->finished_ms);
    doc_field_uint(j, "task_count", run->task_count);
    doc_field_uint(j, "tasks_done", run->tasks_done);
    json_str_or_null(j, "reason", run->reason); /* why it was stopped (run timeout) */
    runview_json_schedule(j, run);
    doc_key(j, "tasks");
    doc_array_begin(j);
    for (size_t i = 0; i < run->n_tasks; i++)
        json_task(j, run->tasks[i]);
    doc_array_end(j);
    doc_object_end(j);
}

void runview_json_schedule(doc_t *j, const Drover__RunView *run)
{
    if (!run->schedule || !*run->schedule) {
        doc_key(j, "schedule");
        doc_null(j);
        return;
    }
    doc_field_str(j, "schedule", run->schedule);
    doc_field_time(j, "scheduled", run->scheduled_ms);
    doc_field_time(j, "interval_start", run->interval_start_ms);
    doc_field_str(j, "timezone", run->timezone);
    doc_field_str(j, "trigger_run", run->trigger_run_id);
}

void runview_json_summary(doc_t *j, const Drover__RunView *run)
{
    doc_object_begin(j);
    doc_field_str(j, "id", run->id);
    doc_field_str(j, "name", run->name);
    doc_field_str(j, "status", util_run_status_name(run->status));
    doc_field_time(j, "created", run->created_ms);
    doc_field_time(j, "finished", run->finished_ms);
    doc_field_uint(j, "tasks", run->task_count);
    doc_field_uint(j, "done", run->tasks_done);
    doc_field_str(j, "owner", run->owner);
    runview_json_schedule(j, run);
    doc_object_end(j);
}

bool runview_run_final(Drover__RunStatus s)
{
    return s == DROVER__RUN_STATUS__RUN_SUCCEEDED || s == DROVER__RUN_STATUS__RUN_FAILED ||
           s == DROVER__RUN_STATUS__RUN_CANCELLED;
}
