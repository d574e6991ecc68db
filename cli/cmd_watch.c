/* cmd_watch — `drover run watch ID`: follow a run until it ends.
 *
 * On droverd's event log (README "Events"): the log's end, then the run's
 * whole view (get_run), then the run's events after that end, each
 * request held by droverd until one commits (EventsRequest.wait_ms: no
 * polling). Each event updates the held view (a step's status, attempt,
 * agent, exit, reason and times; the run's status), which is shown again;
 * an event the view is already past (it was read after the event
 * committed) is skipped. The whole view is re-read at most every
 * WATCH_READ_MS for what events do not carry (waiting reasons, progress,
 * retry times, new fan-out items) — the held request's wait ends then. The
 * run's end event ends the watch at once (bench/: the lag). A reader that
 * fell behind the pruned log (truncated) starts over from a fresh view.
 * On a terminal the
 * whole view (title, step table, summary) is redrawn in place: the cursor
 * goes back up over the previous drawing and clears to the end of the
 * screen, so every line is clipped to the terminal's width and the table
 * to its height (a wrapped line would break the count). Elsewhere (a pipe,
 * a log file) it prints one line per step status change, stamped with the
 * time of the change to the millisecond (the attempt's start or end, as
 * droverd recorded it) and sorted by it, so a file reads in the order
 * things happened even when several changed between two polls. Either way it ends with "run ID
 * STATUS in 4.2s" and exits 0 only if the run SUCCEEDED.
 *
 * READY steps are counted by their reason (droverd says why each waits):
 * a line per distinct reason, "3 waiting: no agent in service offers
 * gpus: 1 (...)", under the summary on a terminal (at most
 * WATCH_REASONS), and in line mode again whenever the counts change.
 *
 * A droverd restart does not end the watch: polls that get no answer are
 * retried for up to WATCH_PATIENCE_MS (api_set_patience); on a terminal the
 * next drawing starts below the notes that were printed meanwhile.
 */
#include <czmq.h> /* first: it includes the system headers its own way */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "api.h"
#include "cli.h"
#include "fmt.h"
#include "runview.h"
#include "strbuf.h"
#include "table.h"
#include "util.h"

#define WATCH_READ_MS     1000 /* the whole view re-read at most this often */
#define WATCH_OLD_POLL_MS 300  /* a droverd from before wait_ms: polled */
#define WATCH_PATIENCE_MS 60000
#define WATCH_REASONS     5

#define WATCH_USAGE "drover run watch ID"
#define WATCH_HELP                                                                                 \
    "Follow a run until it ends, showing each step's status as its change commits\n"               \
    "(on droverd's event log: no polling; the end is printed at once). Exits 0 if\n"               \
    "the run succeeded, 1 if it failed or was cancelled. If droverd stops\n"                       \
    "answering (a restart), keeps trying for up to 60s before giving up (exit\n"                   \
    "status 4). Piped to a file, it prints a line per change, in the order they\n"                 \
    "happened, with millisecond times. Steps ready to run but waiting are counted\n"               \
    "by why they wait (\"3 waiting: no agent in service offers gpus: 1 ...\").\n"

/* What was last shown for a step (line mode). */
typedef struct {
    char *name;
    Drover__TaskStatus status;
    uint32_t attempts;
    int tenth; /* progress shown, in tenths; -1 = none */
} shown_t;

typedef struct {
    bool tty, color;
    size_t lines_drawn; /* tty mode: lines of the previous drawing */
    shown_t *shown;     /* line mode: one per step seen */
    size_t n_shown;
    zhashx_t *by_name; /* name -> index in shown + 1 */
    char *waiting;     /* line mode: the reason counts last printed (owned) */
} watch_t;

/* The READY steps of run counted by reason (without "waiting: "), in
 * order of first appearance: "3 waiting: REASON" lines, each ending in
 * '\n', at most max of them (then "N more reasons"). Caller frees. */
static char *waiting_lines(const Drover__RunView *run, size_t max)
{
    const char **why = NULL;
    size_t *count = NULL, n = 0, last = 0;
    for (size_t i = 0; i < run->n_tasks; i++) {
        const Drover__TaskView *t = run->tasks[i];
        if (t->status != DROVER__TASK_STATUS__TASK_READY)
            continue;
        const char *r = t->reason;
        if (!strncmp(r, "waiting: ", 9))
            r += 9;
        if (n && !strcmp(why[last], r)) { /* a fan-out's items: one reason */
            count[last]++;
            continue;
        }
        for (last = 0; last < n && strcmp(why[last], r); last++)
            ;
        if (last == n) {
            why = xrealloc(why, (n + 1) * sizeof *why);
            count = xrealloc(count, (n + 1) * sizeof *count);
            why[n] = r;
            count[n++] = 0;
        }
        count[last]++;
    }
    strbuf_t b = {0};
    for (size_t i = 0; i < n && i < max; i++)
        sb_printf(&b, "%zu waiting: %s\n", count[i], *why[i] ? why[i] : "(no reason given)");
    if (n > max)
        sb_printf(&b, "... %zu more reasons\n", n - max);
    free(why);
    free(count);
    return sb_take(&b);
}

static void watch_free(watch_t *w)
{
    zhashx_destroy(&w->by_name);
    for (size_t i = 0; i < w->n_shown; i++)
        free(w->shown[i].name);
    free(w->shown);
    free(w->waiting);
}

/* ---------------------------------------------------------------- terminal */

static void term_size(size_t *cols, size_t *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    }
}

static void summary_counts(const Drover__RunView *run, size_t *running, size_t *failed)
{
    *running = *failed = 0;
    for (size_t i = 0; i < run->n_tasks; i++) {
        Drover__TaskStatus s = run->tasks[i]->status;
        if (s == DROVER__TASK_STATUS__TASK_RUNNING)
            (*running)++;
        if (s == DROVER__TASK_STATUS__TASK_FAILED || s == DROVER__TASK_STATUS__TASK_LOST)
            (*failed)++;
    }
}

/* "RUNNING  3/5 done, 1 running  12.3s" — short, so not clipped. */
static void print_summary(const watch_t *w, const Drover__RunView *run, int64_t now)
{
    size_t running, failed;
    char buf[FMT_BUF];
    const char *sgr = w->color ? fmt_run_color(run->status) : NULL;
    int64_t end = run->finished_ms ? run->finished_ms : now;
    summary_counts(run, &running, &failed);
    if (sgr)
        printf("\033[%sm%s\033[0m", sgr, util_run_status_name(run->status));
    else
        fputs(util_run_status_name(run->status), stdout);
    printf("  %u/%u done, %zu running", run->tasks_done, run->task_count, running);
    if (failed)
        printf(", %zu failed", failed);
    size_t gates = 0; /* approval gates waiting for drover run resume */
    for (size_t i = 0; i < run->n_tasks; i++)
        gates += run->tasks[i]->status == DROVER__TASK_STATUS__TASK_SUSPENDED;
    if (gates)
        printf(", %zu awaiting approval", gates);
    printf("  %s\n", run->created_ms ? fmt_duration(end - run->created_ms, buf) : "");
}

/* How much a step's row deserves one of few lines: lower is more. */
static int row_rank(Drover__TaskStatus s)
{
    switch (s) {
    case DROVER__TASK_STATUS__TASK_WAITING:
        return 2;
    case DROVER__TASK_STATUS__TASK_READY:
        return 1;
    case DROVER__TASK_STATUS__TASK_SUCCEEDED:
    case DROVER__TASK_STATUS__TASK_SKIPPED:
    case DROVER__TASK_STATUS__TASK_CANCELLED:
    case DROVER__TASK_STATUS__TASK_CACHED:
        return 3;
    default:
        return 0; /* assigned, running, failed, lost, preempted */
    }
}

/* Choose at most max steps to show, the liveliest first, kept in file
 * order. Returns the count; idx has room for run->n_tasks. */
static size_t pick_rows(const Drover__RunView *run, size_t max, size_t *idx)
{
    size_t n = 0;
    for (int rank = 0; rank <= 3 && n < max; rank++)
        for (size_t i = 0; i < run->n_tasks && n < max; i++)
            if (row_rank(run->tasks[i]->status) == rank)
                idx[n++] = i;
    for (size_t i = 1; i < n; i++) /* insertion sort back to file order */
        for (size_t k = i; k > 0 && idx[k - 1] > idx[k]; k--) {
            size_t tmp = idx[k];
            idx[k] = idx[k - 1];
            idx[k - 1] = tmp;
        }
    return n;
}

static void redraw(watch_t *w, const Drover__RunView *run, int64_t now)
{
    size_t cols, rows, lines = 0;
    term_size(&cols, &rows);
    char *waiting = waiting_lines(run, WATCH_REASONS);
    size_t n_waiting = 0;
    for (const char *p = waiting; *p; p++)
        n_waiting += *p == '\n';
    /* title + table header + summary + "more" line + the final line */
    size_t max_rows = rows > 6 + n_waiting ? rows - 5 - n_waiting : 1;
    size_t *idx = xcalloc(run->n_tasks, sizeof *idx);
    size_t shown = pick_rows(run, max_rows, idx);
    table_t *t = runview_task_table(run, idx, shown, now);
    char *title = xasprintf("run %s  %s", run->id, run->name);

    if (w->lines_drawn)
        printf("\033[%zuA\r\033[J", w->lines_drawn);
    table_clip(title, cols - 1);
    fmt_put_clean(stdout, title);
    putchar('\n');
    lines++;
    lines += table_print(t, stdout, 0, cols - 1, w->color);
    if (shown < run->n_tasks) {
        printf("... %zu more steps\n", run->n_tasks - shown);
        lines++;
    }
    print_summary(w, run, now);
    lines++;
    for (char *line = waiting, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        char *row = xasprintf("  %s", line);
        table_clip(row, cols - 1);
        fmt_put_clean(stdout, row);
        putchar('\n');
        free(row);
        lines++;
    }
    free(waiting);
    fflush(stdout);
    w->lines_drawn = lines;
    free(title);
    free(idx);
    table_destroy(&t);
}

/* ---------------------------------------------------------------- lines */

/* The record for step name, which usually sits at index hint (droverd
 * lists steps in a fixed order, but new items and group members come in
 * the middle of it: then the name's index), so big fan-outs stay linear. */
static shown_t *find_shown(watch_t *w, const char *name, size_t hint)
{
    if (hint < w->n_shown && strcmp(w->shown[hint].name, name) == 0)
        return &w->shown[hint];
    uintptr_t at = w->by_name ? (uintptr_t)zhashx_lookup(w->by_name, name) : 0;
    return at ? &w->shown[at - 1] : NULL;
}

/* A new record for step name (its status as never seen). */
static shown_t *add_shown(watch_t *w, const char *name)
{
    if (!w->by_name)
        w->by_name = zhashx_new();
    w->shown = xrealloc(w->shown, (w->n_shown + 1) * sizeof *w->shown);
    shown_t *s = &w->shown[w->n_shown++];
    s->name = xstrdup(name);
    s->status = DROVER__TASK_STATUS__TASK_WAITING;
    s->attempts = 0;
    s->tenth = -1;
    zhashx_update(w->by_name, name, (void *)(uintptr_t)w->n_shown);
    return s;
}

/* Whether a task's reason explains this status (it is also left over
 * from an earlier attempt while a later one runs). */
static bool reason_applies(Drover__TaskStatus s)
{
    return s != DROVER__TASK_STATUS__TASK_ASSIGNED && s != DROVER__TASK_STATUS__TASK_RUNNING &&
           s != DROVER__TASK_STATUS__TASK_SUCCEEDED && s != DROVER__TASK_STATUS__TASK_CACHED;
}

/* "12:00:01.250 train FAILED on a1 (attempt 1, exit 1): reason; retry in 5s",
 * at time `when`. */
static void print_change(const Drover__TaskView *t, int64_t when, int64_t now)
{
    char clock[FMT_BUF], ex[FMT_BUF];
    strbuf_t m = {0};
    sb_printf(&m, "%s %s %s", fmt_clock(when, clock), t->name, util_task_status_name(t->status));
    if (*t->agent && t->status != DROVER__TASK_STATUS__TASK_READY)
        sb_printf(&m, " on %s", t->agent);
    if (t->attempts) {
        sb_printf(&m, " (attempt %u", t->attempts);
        if (t->term_signal)
            sb_printf(&m, ", %s", fmt_task_exit(t, ex));
        else if (t->has_exit)
            sb_printf(&m, ", exit %s", fmt_task_exit(t, ex));
        sb_putc(&m, ')');
    }
    if (*t->reason && (reason_applies(t->status) || t->gate_at_ms)) /* a gate: who, or timeout */
        sb_printf(&m, ": %s", t->reason);
    if (t->status == DROVER__TASK_STATUS__TASK_FAILED && t->retry_at_ms > now)
        sb_printf(&m, "; retry in %llds", (long long)(t->retry_at_ms - now + 999) / 1000);
    if (t->status == DROVER__TASK_STATUS__TASK_RUNNING && t->progress >= 0)
        sb_printf(&m, " %s", fmt_progress(t->progress, ex));
    char *line = sb_take(&m);
    fmt_put_clean(stdout, line);
    putchar('\n');
    free(line);
}

/* One line to print: a step's status at the time it took it. */
typedef struct {
    int64_t when;
    size_t seq; /* ties keep the order they were found in */
    Drover__TaskView view;
} event_t;

static bool ended(Drover__TaskStatus s)
{
    return s >= DROVER__TASK_STATUS__TASK_SUCCEEDED;
}

/* When t took its status, as far as the view tells: the attempt's start
 * for ASSIGNED/RUNNING, its end for an ended status; else now. */
static int64_t status_time(const Drover__TaskView *t, int64_t now)
{
    int64_t at = 0;
    if (t->status == DROVER__TASK_STATUS__TASK_RUNNING ||
        t->status == DROVER__TASK_STATUS__TASK_ASSIGNED)
        at = t->started_ms;
    else if (ended(t->status))
        at = t->finished_ms;
    return at > 0 && at <= now ? at : now;
}

static int compare_events(const void *a, const void *b)
{
    const event_t *x = a, *y = b;
    if (x->when != y->when)
        return x->when < y->when ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void push_event(event_t **ev, size_t *n, const Drover__TaskView *t, int64_t when)
{
    if ((*n & (*n - 1)) == 0)
        *ev = xrealloc(*ev, (*n ? *n * 2 : 8) * sizeof **ev);
    (*ev)[*n] = (event_t){.when = when, .seq = *n, .view = *t};
    (*n)++;
}

/* Print what changed since the last poll, in the order it happened: a step
 * that started and ended between two polls gets its RUNNING line (at its
 * start) before its end, and the lines of all steps are sorted by time. */
static void print_changes(watch_t *w, const Drover__RunView *run, int64_t now)
{
    event_t *ev = NULL;
    size_t n = 0;
    for (size_t i = 0; i < run->n_tasks; i++) {
        const Drover__TaskView *t = run->tasks[i];
        shown_t *s = find_shown(w, t->name, i);
        if (!s)
            s = add_shown(w, t->name);
        /* progress: a line per tenth done */
        int tenth = t->status == DROVER__TASK_STATUS__TASK_RUNNING && t->progress >= 0
                        ? (int)(t->progress * 10.0f)
                        : -1;
        bool changed = s->status != t->status || s->attempts != t->attempts;
        if (changed && ended(t->status) && t->started_ms > 0 &&
            (s->status != DROVER__TASK_STATUS__TASK_RUNNING || s->attempts != t->attempts)) {
            Drover__TaskView running = *t; /* the start this poll missed */
            running.status = DROVER__TASK_STATUS__TASK_RUNNING;
            running.has_exit = false;
            running.term_signal = 0;
            running.reason = (char *)"";
            running.progress = -1;
            push_event(&ev, &n, &running, status_time(&running, now));
        }
        if (changed)
            push_event(&ev, &n, t, status_time(t, now));
        else if (tenth > s->tenth)
            push_event(&ev, &n, t, now);
        s->status = t->status;
        s->attempts = t->attempts;
        s->tenth = tenth;
    }
    if (n)
        qsort(ev, n, sizeof *ev, compare_events);
    for (size_t i = 0; i < n; i++)
        print_change(&ev[i].view, ev[i].when, now);
    free(ev);
    char *waiting = waiting_lines(run, WATCH_REASONS);
    if (!w->waiting || strcmp(w->waiting, waiting) != 0) {
        char clock[FMT_BUF];
        fmt_clock(now, clock);
        for (char *line = waiting, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
            printf("%s ", clock);
            *nl = 0;
            fmt_put_clean(stdout, line); /* the reasons hold label values */
            *nl = '\n';
            putchar('\n');
        }
        free(w->waiting);
        w->waiting = waiting;
    } else {
        free(waiting);
    }
    fflush(stdout);
}

/* ---------------------------------------------------------------- events */

/* Replace a string field of an unpacked message with a copy of v (the
 * message's free_unpacked frees it; the shared empty default is not ours). */
static void set_str(char **field, const char *v)
{
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = xstrdup(v);
}

static bool task_status_of(const char *name, Drover__TaskStatus *out)
{
    for (int v = DROVER__TASK_STATUS__TASK_WAITING; v <= DROVER__TASK_STATUS__TASK_SUSPENDED; v++)
        if (strcmp(util_task_status_name((Drover__TaskStatus)v), name) == 0) {
            *out = (Drover__TaskStatus)v;
            return true;
        }
    return false;
}

static bool run_status_of(const char *name, Drover__RunStatus *out)
{
    for (int v = DROVER__RUN_STATUS__RUN_PENDING; v <= DROVER__RUN_STATUS__RUN_CANCELLED; v++)
        if (strcmp(util_run_status_name((Drover__RunStatus)v), name) == 0) {
            *out = (Drover__RunStatus)v;
            return true;
        }
    return false;
}

/* The held view's steps by name (index + 1), built for each view read. */
static void index_view(zhashx_t **idx, const Drover__RunView *run)
{
    zhashx_destroy(idx);
    *idx = zhashx_new();
    for (size_t i = 0; i < run->n_tasks; i++)
        zhashx_update(*idx, run->tasks[i]->name, (void *)(uintptr_t)(i + 1));
}

typedef enum { APPLY_SKIP, APPLY_DONE, APPLY_UNKNOWN } apply_t;

/* Apply one event of the run to the held view. An event the view is
 * already past (it was read after the event committed: the step's status
 * is not the event's `from`, or a later attempt runs) is skipped; a step
 * the view does not have yet (a fan-out's new items) asks for a re-read. */
static apply_t apply_event(Drover__RunView *run, zhashx_t *idx, const Drover__EventRecord *ev)
{
    if (ev->kind == DROVER__EVENT_KIND__EVENT_RUN) {
        Drover__RunStatus to;
        if (!run_status_of(ev->to, &to) || to == run->status)
            return APPLY_SKIP;
        run->status = to;
        if (runview_run_final(to))
            run->finished_ms = ev->time_ms;
        return APPLY_DONE;
    }
    if (ev->kind != DROVER__EVENT_KIND__EVENT_TASK)
        return APPLY_SKIP;
    uintptr_t at = (uintptr_t)zhashx_lookup(idx, ev->task);
    if (!at)
        return APPLY_UNKNOWN;
    Drover__TaskView *t = run->tasks[at - 1];
    Drover__TaskStatus to;
    if (!task_status_of(ev->to, &to) || strcmp(ev->from, util_task_status_name(t->status)) != 0 ||
        ev->attempt < t->attempts)
        return APPLY_SKIP;
    Drover__TaskStatus was = t->status;
    t->status = to;
    if (ev->attempt)
        t->attempts = ev->attempt;
    if (*ev->agent)
        set_str(&t->agent, ev->agent);
    set_str(&t->reason, ev->reason);
    t->has_exit = ev->has_exit;
    t->exit_code = ev->exit_code;
    t->term_signal = 0;
    t->retry_at_ms = 0; /* the next read tells */
    if (to == DROVER__TASK_STATUS__TASK_ASSIGNED || to == DROVER__TASK_STATUS__TASK_RUNNING) {
        t->started_ms = ev->time_ms;
        t->finished_ms = 0;
    } else if (ended(to)) {
        t->finished_ms = ev->time_ms;
        if (ev->has_exit && t->started_ms <= 0)
            t->started_ms = ev->time_ms; /* it ran: started and ended in one commit */
    }
    if (was == DROVER__TASK_STATUS__TASK_SUSPENDED && ended(to))
        t->gate_at_ms = ev->time_ms; /* approved or rejected: the reason says by whom */
    if (to == DROVER__TASK_STATUS__TASK_SUSPENDED)
        t->suspended_ms = ev->time_ms;
    if (!ended(was) && ended(to))
        run->tasks_done++;
    else if (ended(was) && !ended(to) && run->tasks_done)
        run->tasks_done--;
    return APPLY_DONE;
}

/* The event log's end now: where a subscription started after it
 * begins. 0 or -errno (reported). */
static int log_end(api_t *api, uint64_t *end)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__EventsRequest er = DROVER__EVENTS_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    er.since = UINT64_MAX; /* nothing after it: next_seq = the end */
    er.max = 1;
    req.op_case = DROVER__API_REQUEST__OP_EVENTS;
    req.events = &er;
    int rc = api_call(api, &req, &resp);
    if (rc == 0) {
        *end = resp->next_seq;
        drover__api_response__free_unpacked(resp, NULL);
    }
    return rc;
}

/* ---------------------------------------------------------------- loop */

static void print_final(const Drover__RunView *run, int64_t now)
{
    char buf[FMT_BUF];
    int64_t end = run->finished_ms ? run->finished_ms : now;
    printf("run %s %s in %s\n", run->id, util_run_status_name(run->status),
           fmt_duration(run->created_ms ? end - run->created_ms : 0, buf));
    fflush(stdout);
}

static void show(watch_t *w, api_t *api, const Drover__RunView *run)
{
    int64_t now = util_now_ms();
    if (api_take_outage(api))
        w->lines_drawn = 0; /* notes were printed below the last drawing */
    if (w->tty)
        redraw(w, run, now);
    else
        print_changes(w, run, now);
}

int run_watch(cli_t *cli, const char *run_id)
{
    watch_t w = {.tty = fmt_is_terminal(stdout), .color = fmt_color_ok(stdout)};
    api_t *api = api_new(api_endpoint(cli->api));
    Drover__ApiResponse *view = NULL;
    zhashx_t *idx = NULL;
    int rc = CLI_EXIT_ERROR;
    uint64_t pos = 0;
    bool reread = true, resync = true;
    int64_t next_read = 0;
    if (!api)
        goto cleanup;
    api_set_patience(api, WATCH_PATIENCE_MS);
    for (;;) {
        int64_t now = util_mono_ms();
        if (reread || now >= next_read) {
            /* the log's end before the view: every later change is an event after pos */
            if (resync && log_end(api, &pos) < 0)
                goto cleanup;
            Drover__ApiResponse *fresh = NULL;
            if (api_get_run(api, run_id, &fresh) < 0)
                goto cleanup;
            if (view)
                drover__api_response__free_unpacked(view, NULL);
            view = fresh;
            index_view(&idx, view->run);
            show(&w, api, view->run);
            reread = resync = false;
            next_read = util_mono_ms() + WATCH_READ_MS;
            if (runview_run_final(view->run->status))
                break;
            continue;
        }
        /* held by droverd until an event of the run commits, or until the next read */
        Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
        Drover__EventsRequest er = DROVER__EVENTS_REQUEST__INIT;
        Drover__ApiResponse *resp = NULL;
        er.since = pos;
        er.run_id = (char *)run_id;
        er.wait_ms = (uint32_t)(next_read - now);
        req.op_case = DROVER__API_REQUEST__OP_EVENTS;
        req.events = &er;
        if (api_call(api, &req, &resp) < 0)
            goto cleanup;
        if (resp->truncated) { /* fell behind the log: the view again, from now */
            drover__api_response__free_unpacked(resp, NULL);
            reread = resync = true;
            continue;
        }
        bool changed = false;
        for (size_t i = 0; i < resp->n_events; i++) {
            /* a step the view lacks (new fan-out items) shows from the next read */
            changed |= apply_event(view->run, idx, resp->events[i]) == APPLY_DONE;
            pos = resp->events[i]->seq;
        }
        if (resp->next_seq > pos)
            pos = resp->next_seq;
        bool old = !resp->n_events && !resp->next_seq; /* a droverd that does not hold */
        drover__api_response__free_unpacked(resp, NULL);
        if (old)
            cli_sleep_ms(WATCH_OLD_POLL_MS);
        if (changed)
            show(&w, api, view->run);
        if (runview_run_final(view->run->status))
            break; /* its end event: printed at once */
    }
    print_final(view->run, util_now_ms());
    rc = view->run->status == DROVER__RUN_STATUS__RUN_SUCCEEDED ? CLI_EXIT_OK : CLI_EXIT_FAILED;
cleanup:
    if (view)
        drover__api_response__free_unpacked(view, NULL);
    zhashx_destroy(&idx);
    api_destroy(&api);
    watch_free(&w);
    return rc;
}

int cmd_run_watch(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    const char *id = NULL;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, none, WATCH_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(WATCH_USAGE, WATCH_HELP);
        if (id)
            return cli_usage_error(WATCH_USAGE, "unexpected argument '%s'", a.value);
        id = a.value;
    }
    if (!id)
        return cli_usage_error(WATCH_USAGE, "missing run ID");
    return run_watch(cli, id);
}
