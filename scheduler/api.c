/* api — droverd's answers to the CLI (ApiRequest → ApiResponse).
 *
 * Each request is handled at once on the loop thread and its reply queued;
 * scheduler.c sends it after the iteration's commit, so "submitted" means
 * stored. Views point into the live model (no copies); the reply is packed
 * before anything can change it.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define API_MAX_LIST     10000
#define API_DEFAULT_LIST 100
#define API_MAX_LOG      (4u << 20)

/* resp's error and kind (sched_internal.h); its short name here */
#define set_error api_set_error

void api_set_error(Drover__ApiResponse *resp, char **owned, Drover__ApiErrorCode code,
                   const char *fmt, ...)
{
    resp->error_code = code;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(owned, fmt, ap) < 0)
        *owned = NULL;
    va_end(ap);
    resp->error = *owned ? *owned : (char *)"out of memory";
}

/* The file name a line of err begins with: the longest of names[0..n)
 * followed by ":LINE:COL: " (a name may itself hold ':'), else the text
 * before the first ":LINE:COL: " (a name the compiler wrote otherwise).
 * Sets *line, *col and *msg (where the reason starts); 0 when the line is
 * not one ("and N more errors"), else the name's length. */
static size_t error_file(const char *l, size_t len, const char *const *names, size_t n,
                         unsigned *line, unsigned *col, size_t *msg)
{
    size_t best = 0;
    for (size_t pass = 0; pass < 2 && !best; pass++) {
        for (size_t k = 0; pass == 0 ? k < n : k < len; k++) {
            size_t flen = pass == 0 ? strlen(names[k]) : k;
            unsigned a, b;
            int used = 0;
            char tail[32];
            if (flen <= best || flen >= len || (pass == 0 && strncmp(l, names[k], flen) != 0) ||
                l[flen] != ':')
                continue;
            /* sscanf must not run past the line: copy what it may read */
            size_t t = len - flen < sizeof tail - 1 ? len - flen : sizeof tail - 1;
            memcpy(tail, l + flen, t);
            tail[t] = '\0';
            if (sscanf(tail, ":%u:%u: %n", &a, &b, &used) == 2 && used > 0 && a > 0) {
                best = flen;
                *line = a;
                *col = b;
                *msg = flen + (size_t)used;
                if (pass == 1)
                    break; /* the first one */
            }
        }
    }
    return best;
}

/* The errors of a refused spec, err's "FILE:LINE:COL: reason" lines, as
 * resp->spec_errors (each and its strings malloc'd: spec_errors_free),
 * FILE the spec's own name or an imported file's path. A line that is not
 * one (the "and N more" line) is left out. */
static void spec_errors_set(Drover__ApiResponse *resp, const char *file,
                            const Drover__SubmitRequest *req, const char *err)
{
    size_t n = 0, n_names = 1 + req->n_imports;
    const char **names = xcalloc(n_names, sizeof *names);
    names[0] = file;
    for (size_t i = 0; i < req->n_imports; i++)
        names[i + 1] = req->imports[i]->path;
    for (const char *l = err; *l;) {
        size_t len = strcspn(l, "\n"), msg = 0;
        unsigned line = 0, col = 0;
        size_t flen = error_file(l, len, names, n_names, &line, &col, &msg);
        if (flen) {
            resp->spec_errors = xrealloc(resp->spec_errors, (n + 1) * sizeof *resp->spec_errors);
            Drover__SpecError *e = xmalloc(sizeof *e);
            drover__spec_error__init(e);
            e->file = xstrndup(l, flen);
            e->line = line;
            e->col = col;
            e->message = xstrndup(l + msg, len - msg);
            resp->spec_errors[n++] = e;
        }
        l += len + (l[len] == '\n');
    }
    resp->n_spec_errors = n;
    free(names);
}

static void spec_errors_free(Drover__ApiResponse *resp)
{
    for (size_t i = 0; i < resp->n_spec_errors; i++) {
        free(resp->spec_errors[i]->file);
        free(resp->spec_errors[i]->message);
        free(resp->spec_errors[i]);
    }
    free(resp->spec_errors);
}

static const char *shown_name(const char *name);

/* Why the files a submit imports are refused, or NULL: more than
 * SPEC_MAX_IMPORTS, a path that is not one (bundle_path_ok) or twice, or
 * all the texts together beyond --max-spec (droverd trusts no client:
 * `drover submit` keeps to these too). The reason is formatted in buf. */
static const char *imports_refused(const sched_t *s, const Drover__SubmitRequest *req, char *buf,
                                   size_t len)
{
    size_t total = req->spec.len, max = s->cfg.spec_limits.max_bytes;
    if (req->n_imports > SPEC_MAX_IMPORTS) {
        snprintf(buf, len,
                 "the spec imports %zu files; the limit is %u (counting the files they "
                 "import)",
                 req->n_imports, SPEC_MAX_IMPORTS);
        return buf;
    }
    for (size_t i = 0; i < req->n_imports; i++) {
        const char *p = req->imports[i]->path;
        if (!bundle_path_ok(p) || strlen(p) > 1024) {
            snprintf(buf, len,
                     "imported file %zu has the path '%.64s%s', which is not a relative path "
                     "('/' separated, '..' only leading, no control characters, at most 1024 "
                     "bytes)",
                     i + 1, shown_name(p), strlen(p) > 64 ? "..." : "");
            return buf;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(req->imports[k]->path, p) == 0) {
                snprintf(buf, len, "imported file '%.128s' is sent twice", p);
                return buf;
            }
        total += req->imports[i]->text.len;
    }
    if (req->n_imports && total > max) {
        snprintf(buf, len,
                 "the spec and the %zu files it imports are %zu bytes together; the "
                 "limit is %zu (droverd's --max-spec)",
                 req->n_imports, total, max);
        return buf;
    }
    return NULL;
}

/* err's lines that begin "base:LINE" with name instead of base (a new
 * string, the caller frees): see do_submit. */
static char *errors_named(const char *err, const char *base, const char *name)
{
    strbuf_t b = {0};
    size_t blen = strlen(base);
    for (const char *l = err; *l;) {
        size_t len = strcspn(l, "\n");
        bool mine = len > blen + 1 && strncmp(l, base, blen) == 0 && l[blen] == ':' &&
                    l[blen + 1] >= '0' && l[blen + 1] <= '9';
        if (mine)
            sb_puts(&b, name);
        sb_add(&b, l + (mine ? blen : 0), len - (mine ? blen : 0) + (l[len] == '\n'));
        l += len + (l[len] == '\n');
    }
    return sb_take(&b);
}

/* What a run is submitted from, to keep with it (run_t.source): a copy of
 * the request's spec, imports and -p values (caller owns it). */
static Drover__RunSpecRecord *spec_source(const Drover__SubmitRequest *req, const char *file)
{
    Drover__RunSpecRecord rec = DROVER__RUN_SPEC_RECORD__INIT;
    rec.file = (char *)file;
    rec.text = req->spec;
    rec.n_imports = req->n_imports;
    rec.imports = req->imports;
    rec.n_params = req->n_params;
    rec.params = req->params;
    return util_pb_copy(&rec);
}

static void do_submit(sched_t *s, const Drover__SubmitRequest *req, const char *owner,
                      Drover__ApiResponse *resp, char **err_owned)
{
    char err[8192]; /* up to 20 errors, one a line (spec.h) */
    spec_t *spec = NULL;
    spec_kv_t *overrides = xcalloc(req->n_params, sizeof *overrides);
    spec_import_t *imports = xcalloc(req->n_imports, sizeof *imports);
    for (size_t i = 0; i < req->n_params; i++) {
        overrides[i].key = req->params[i]->key;
        overrides[i].value = req->params[i]->value;
    }
    const char *file = req->file && *req->file ? req->file : "<spec>";
    if (imports_refused(s, req, err, sizeof err)) {
        s->counters.over_limits++;
        log_warn("api: spec refused (%s): %s", owner, err);
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_INVALID, "%s: %s", file, err);
        goto cleanup;
    }
    for (size_t i = 0; i < req->n_imports; i++) {
        imports[i].path = req->imports[i]->path;
        const uint8_t *data = req->imports[i]->text.data;
        imports[i].text = data ? (const char *)data : ""; /* never NULL, even empty */
        imports[i].len = req->imports[i]->text.len;
    }
    /* The imports' paths are relative to the main spec's directory: the
     * compiler gets its base name (so that its directory is theirs,
     * however it joins), its messages the name given back. */
    const char *slash = strrchr(file, '/');
    const char *base = slash && slash[1] ? slash + 1 : file;
    const char *text = req->spec.data ? (const char *)req->spec.data : "";
    int rc = spec_parse_files(base, text, req->spec.len, imports, req->n_imports, overrides,
                              req->n_params, &s->cfg.spec_limits, &spec, err, sizeof err);
    if (rc < 0) {
        char *named = base != file ? errors_named(err, base, file) : xstrdup(err);
        if (rc == -E2BIG) {
            s->counters.over_limits++;
            log_warn("api: spec refused (%s): %s", owner, named);
        }
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_INVALID, "%s", named);
        spec_errors_set(resp, file, req, named);
        free(named);
        goto cleanup;
    }
    run_t *r = dag_create_run(s, spec, file, req->no_cache);
    util_pb_set_str(&r->rec->owner, owner); /* committed with the run */
    r->source = spec_source(req, file);     /* likewise; freed once stored */
    resp->run_id = r->rec->id;
cleanup:
    free(imports);
    free(overrides);
    spec_destroy(&spec);
}

/* Spot accounting of a task from its attempts: time on spot and
 * on-demand nodes, work lost to preemptions, and the estimated cost. */
/* Add t's attempts' time on spot and on-demand nodes (a running one: until
 * now), work lost, cost and preemptions to *sum. */
static void add_attempts(const task_t *t, int64_t now, run_totals_t *sum)
{
    sum->preemptions += t->preemptions; /* preempted or lost */
    for (size_t k = 0; k < t->n_attempts; k++) {
        const Drover__AttemptRecord *a = t->attempts[k];
        if (!a->started_ms)
            continue;
        int64_t end = a->finished_ms ? a->finished_ms : now;
        int64_t ran = end > a->started_ms ? end - a->started_ms : 0;
        *(a->spot ? &sum->spot_ms : &sum->ondemand_ms) += ran;
        sum->lost_ms += a->lost_ms;
        sum->cost += a->price * (double)ran / 3600000.0;
    }
}

static void spot_view(const task_t *t, Drover__TaskView *tv, int64_t now)
{
    run_totals_t sum = {0};
    add_attempts(t, now, &sum);
    tv->spot_ms = sum.spot_ms;
    tv->ondemand_ms = sum.ondemand_ms;
    tv->lost_ms = sum.lost_ms;
    tv->cost = sum.cost;
    const Drover__Checkpoint *ck = dag_latest_checkpoint(t);
    tv->checkpoints = (uint32_t)t->n_checkpoints;
    tv->checkpoint_step = ck ? ck->step : 0;
    tv->checkpoint_ms = ck ? ck->time_ms : 0;
}

/* A run id's number ("r000042" -> 42), which orders runs by creation;
 * 0 when id is not one. */
static uint64_t run_number(const char *id)
{
    char *end;
    if (!id || id[0] != 'r' || id[1] < '0' || id[1] > '9')
        return 0;
    errno = 0;
    uint64_t n = strtoull(id + 1, &end, 10);
    return errno || *end ? 0 : n;
}

/* Whether run r passes the filters of a list_runs request (each one unset
 * passes everything; `before` is checked by the caller). */
static bool run_matches(const run_t *r, const Drover__ListRunsRequest *lr)
{
    bool status_ok = lr->n_status == 0;
    for (size_t i = 0; i < lr->n_status; i++)
        status_ok |= r->rec->status == lr->status[i];
    return status_ok && (!*lr->name || strcmp(r->rec->name, lr->name) == 0) &&
           r->rec->created_ms >= lr->since_ms &&
           (!*lr->owner || strcmp(r->rec->owner, lr->owner) == 0) &&
           (!lr->schedule || !*lr->schedule ||
            (r->rec->schedule && strcmp(r->rec->schedule, lr->schedule) == 0));
}

/* ---- groups in run views (reuse) ---- */

/* The order a run's tasks are listed in (run get, watch): its tree. Each
 * step of the run itself in step order, each followed by its fan-out
 * items and, for a group instance (task_t.grp), its members in body
 * order, each of them followed by its own, recursively. order[0, n) are
 * task indexes; depth (by task index: how many groups enclose it, as
 * dag_depth says, without its walk up per task) is NULL when no task is
 * a member (all at the top). O(tasks): one walk with an explicit stack; a
 * task the walk does not reach (none should be) ends the list. Without
 * items (a summary view) the walk leaves out the fan-outs' items and so
 * everything inside them (the members of item instances), and n is what
 * it reached. */
typedef struct {
    uint32_t *order;
    uint32_t *depth;
    size_t n;
} view_tree_t;

static void view_tree(const run_t *r, view_tree_t *vt, bool items)
{
    size_t n = r->n_tasks, done = 0, top = 0;
    /* members only where there are DAG templates; the run's own steps are
     * tasks[0, n_root): neither costs a look at every task (a summary of
     * a million items looks only at what it shows) */
    bool groups = r->steps->n_bodies > 0;
    vt->order = xmalloc((n ? n : 1) * sizeof *vt->order);
    vt->depth = groups ? xcalloc(n, sizeof *vt->depth) : NULL;
    uint8_t *seen = xcalloc(n ? n : 1, 1);
    uint32_t *stack = xmalloc((n ? n : 1) * sizeof *stack);
    for (size_t i = r->n_root < n ? r->n_root : n; i-- > 0;) /* popped in step order */
        if (!r->tasks[i]->is_item && !r->tasks[i]->scope)
            stack[top++] = (uint32_t)i;
    while (top) {
        uint32_t k = stack[--top];
        if (seen[k])
            continue;
        seen[k] = 1;
        vt->order[done++] = k;
        const task_t *t = r->tasks[k];
        /* pushed first, popped last: members after the items */
        for (uint32_t j = t->grp ? t->grp->n_members : 0; j-- > 0 && top < n;) {
            uint32_t m = t->grp->first_member + j;
            if (m >= n || seen[m])
                continue;
            if (vt->depth)
                vt->depth[m] = vt->depth[k] + 1;
            stack[top++] = m;
        }
        for (uint32_t j = items ? t->n_items : 0; j-- > 0 && top < n;) {
            uint32_t it = t->items[j];
            if (it >= n || seen[it])
                continue;
            if (vt->depth)
                vt->depth[it] = vt->depth[k];
            stack[top++] = it;
        }
    }
    for (size_t i = 0; i < n && done < n && items; i++)
        if (!seen[i])
            vt->order[done++] = (uint32_t)i;
    vt->n = done;
    free(stack);
    free(seen);
}

/* What a run's view owns beside its TaskViews (freed after the reply):
 * the reasons of READY tasks shown (placer_why), each distinct text once,
 * as the tasks of a fan-out share one; and the names of the shown tasks'
 * needs, one array (needs[0, cap)) the TaskViews' needs are slices of. */
typedef struct {
    char **texts;
    size_t n;
    placer_why_t memo;
    char **needs;
    size_t n_needs, cap_needs;
} view_whys_t;

static char *view_why(sched_t *s, view_whys_t *w, const task_t *t)
{
    const char *why = placer_why(s, t, &w->memo);
    for (size_t i = w->n; i-- > 0;) /* the latest first: usually it */
        if (!strcmp(w->texts[i], why))
            return w->texts[i];
    w->texts = xrealloc(w->texts, (w->n + 1) * sizeof *w->texts);
    return w->texts[w->n++] = xstrdup(why);
}

/* Room in w->needs for the needs of tasks[order[0, n)] (items have none). */
static void view_needs_reserve(const run_t *r, const uint32_t *order, size_t n, view_whys_t *w)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const task_t *t = r->tasks[order ? order[i] : i];
        total += t->is_item ? 0 : t->step->n_needs;
    }
    w->needs = xmalloc((total ? total : 1) * sizeof *w->needs);
    w->cap_needs = total;
    w->n_needs = 0;
}

/* t's needs' task names into tv (a slice of w->needs: their names, not
 * copies); a need with no task (never expected) is left out. */
static void view_needs(const task_t *t, Drover__TaskView *tv, view_whys_t *w)
{
    if (t->is_item || !t->step->n_needs || w->n_needs + t->step->n_needs > w->cap_needs)
        return;
    tv->needs = w->needs + w->n_needs;
    for (size_t j = 0; j < t->step->n_needs; j++) {
        const task_t *d = dag_member(t->run, t->scope, t->step->needs[j]);
        if (d)
            tv->needs[tv->n_needs++] = d->name;
    }
    w->n_needs += tv->n_needs;
}

/* A fan-out task's items by status (non-zero only) into tv: one block
 * holding the pointers and the StatusCounts (freed with tv's item_counts).
 * From the counts task_set_status keeps (task_t.item_status), O(1); a walk
 * of the items only where there are none (never expected). */
static void view_item_counts(const task_t *t, Drover__TaskView *tv)
{
    uint32_t by[TASK_STATUS_SLOTS] = {0};
    size_t kinds = 0;
    const run_t *r = t->run;
    if (t->item_status)
        memcpy(by, t->item_status, sizeof by);
    for (uint32_t j = 0; j < t->n_items && !t->item_status; j++) {
        if (t->items[j] >= r->n_tasks)
            continue;
        unsigned st = (unsigned)r->tasks[t->items[j]]->status;
        by[st < TASK_STATUS_SLOTS - 1 ? st : TASK_STATUS_SLOTS - 1]++;
    }
    for (size_t k = 0; k < TASK_STATUS_SLOTS - 1; k++) /* an unknown status: not one */
        kinds += by[k] != 0;
    if (!kinds)
        return;
    char *blk = xmalloc(kinds * (sizeof *tv->item_counts + sizeof **tv->item_counts));
    tv->item_counts = (Drover__StatusCount **)blk;
    Drover__StatusCount *c = (Drover__StatusCount *)(blk + kinds * sizeof *tv->item_counts);
    for (size_t k = 0; k < TASK_STATUS_SLOTS - 1; k++) {
        if (!by[k])
            continue;
        drover__status_count__init(c);
        c->status = (Drover__TaskStatus)k;
        c->count = by[k];
        tv->item_counts[tv->n_item_counts++] = c++;
    }
}

/* One task's view (pointing into t; free_run_view_tasks frees it): its
 * attempts in history when history. */
static Drover__TaskView *task_view(sched_t *s, const task_t *t, uint32_t depth, bool history,
                                   view_whys_t *whys)
{
    Drover__TaskView *tv = xmalloc(sizeof *tv);
    drover__task_view__init(tv);
    tv->name = t->name;
    tv->group = t->scope ? t->scope->name : (char *)"";
    tv->depth = depth;
    tv->is_group = t->step->uses_body != 0;
    tv->template_ = t->step->template_;
    tv->n_out_params = t->n_out_params;
    tv->out_params = t->out_params;
    tv->cached_from = t->cached_from ? t->cached_from : (char *)"";
    tv->item_value = t->item_value ? t->item_value : (char *)"";
    tv->status = t->status;
    tv->attempts = (uint32_t)t->n_attempts;
    tv->reason = t->reason ? t->reason : (char *)"";
    if (t->status == DROVER__TASK_STATUS__TASK_READY)
        tv->reason = view_why(s, whys, t); /* why it is not running yet */
    tv->retry_at_ms = t->retry_at_ms;
    tv->retries_used = t->retries_used;
    tv->system_errors = t->system_errors;
    if (t->gate) {
        tv->suspended_ms = t->gate->suspended_ms;
        tv->suspend_deadline_ms = t->gate->deadline_ms;
        tv->gate_by = t->gate->by ? t->gate->by : (char *)"";
        tv->gate_at_ms = t->gate->at_ms;
        tv->gate_rejected = t->gate->rejected;
    }
    tv->preemptions = t->preemptions;
    if (history) {
        tv->n_history = t->n_attempts;
        tv->history = t->attempts;
    }
    tv->progress = t->status == DROVER__TASK_STATUS__TASK_SUCCEEDED ? 1.0f : t->progress;
    spot_view(t, tv, util_now_ms());
    const Drover__AttemptRecord *a = dag_current_attempt(t);
    if (a) {
        tv->agent = a->agent;
        tv->exit_code = a->exit_code;
        tv->term_signal = a->term_signal;
        tv->started_ms = a->started_ms;
        tv->finished_ms = a->finished_ms;
        tv->has_exit = a->finished_ms && a->term_signal == 0 &&
                       (a->status == DROVER__TASK_STATUS__TASK_SUCCEEDED ||
                        a->status == DROVER__TASK_STATUS__TASK_FAILED);
    }
    view_needs(t, tv, whys);
    if (t->is_item) {
        const task_t *f = dag_member(t->run, t->scope, t->step_index);
        tv->fan_out_of = f ? f->name : (char *)"";
        tv->item = t->item;
    } else if (t->step->fan_out) {
        tv->fan_out = true;
        tv->item_total = t->n_items;
        view_item_counts(t, tv);
    }
    return tv;
}

/* The run's own fields of its view (no tasks). */
/* r's totals (run_t.totals), summed again when older than a second and
 * the run has not ended: a list of runs with a million tasks each costs a
 * walk of each a second at most. */
static const run_totals_t *run_totals(run_t *r)
{
    int64_t now = util_now_ms();
    bool fresh = r->unfinished == 0 && r->rec->finished_ms
                     ? r->totals_ms >= r->rec->finished_ms /* summed after the end: final */
                     : now - r->totals_ms < 1000;
    if (r->totals_ms && fresh)
        return &r->totals;
    run_totals_t t = {0};
    for (size_t i = 0; i < r->n_tasks; i++)
        add_attempts(r->tasks[i], now, &t);
    r->totals = t;
    r->totals_ms = now;
    return &r->totals;
}

static void run_view_head(sched_t *s, const run_t *r, Drover__RunView *v)
{
    drover__run_view__init(v);
    v->id = r->rec->id;
    v->name = r->rec->name;
    v->status = r->rec->status;
    v->created_ms = r->rec->created_ms;
    v->finished_ms = r->rec->finished_ms;
    v->task_count = (uint32_t)r->n_tasks;
    v->tasks_done = (uint32_t)(r->n_tasks - r->unfinished);
    v->n_params = r->rec->n_params;
    v->params = r->rec->params;
    v->owner = r->rec->owner;
    v->reason = r->rec->reason;
    v->schedule = r->rec->schedule;
    v->scheduled_ms = r->rec->scheduled_ms;
    v->interval_start_ms = r->rec->interval_start_ms;
    v->timezone = r->rec->timezone;
    v->trigger_run_id = r->rec->trigger_run_id;
    v->event_seq = events_last_seq(s);
    const run_totals_t *t = run_totals((run_t *)r); /* a cache: the view stays read-only */
    v->cost = t->cost;
    v->spot_ms = t->spot_ms;
    v->ondemand_ms = t->ondemand_ms;
    v->lost_ms = t->lost_ms;
    v->preemptions = t->preemptions;
}

/* A run's view with its tasks in tree order (view_tree): all of them
 * with their history, or (summary) all but the fan-outs' items and what is
 * inside them, without history. whys: what the view owns beside. */
static void run_view(sched_t *s, const run_t *r, Drover__RunView *v, bool summary,
                     view_whys_t *whys)
{
    run_view_head(s, r, v);
    v->summary = summary;
    view_tree_t vt;
    view_tree(r, &vt, !summary);
    placer_why_init(s, &whys->memo);
    view_needs_reserve(r, vt.order, vt.n, whys);
    v->n_tasks = vt.n;
    v->tasks = xcalloc(vt.n ? vt.n : 1, sizeof *v->tasks);
    for (size_t i = 0; i < vt.n; i++) {
        const task_t *t = r->tasks[vt.order[i]];
        v->tasks[i] = task_view(s, t, vt.depth ? vt.depth[t->index] : 0, !summary, whys);
    }
    free(vt.order);
    free(vt.depth);
}

#define API_PAGE_DEFAULT 100
#define API_PAGE_MAX     1000

/* RunRequest.fanout: a page of fan-out task req->fanout's items in item
 * order (those in req->status, if any) from req->offset, at most
 * req->limit, without history; page_total counts the matching items. An
 * unknown task: NOT_FOUND; one that is not a fan-out or a bad limit:
 * INVALID. O(limit) unfiltered, O(items) with a status filter. */
static void items_page(sched_t *s, run_t *r, const Drover__RunRequest *req, Drover__RunView *v,
                       view_whys_t *whys, Drover__ApiResponse *resp, char **err)
{
    const task_t *f = dag_find_task(r, req->fanout);
    if (!f) {
        set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                  "run %s has no step '%.128s'", r->rec->id, shown_name(req->fanout));
        return;
    }
    if (f->is_item || !f->step->fan_out) {
        set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                  "task: '%.128s' of run %s is not a fan-out (a for_each step)%s",
                  shown_name(req->fanout), r->rec->id, f->is_item ? " but one of its items" : "");
        return;
    }
    if (req->limit > API_PAGE_MAX) {
        set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                  "limit: expected 1..%d, got %u", API_PAGE_MAX, req->limit);
        return;
    }
    uint32_t limit = req->limit ? req->limit : API_PAGE_DEFAULT, depth = dag_depth(f);
    run_view_head(s, r, v);
    placer_why_init(s, &whys->memo);
    whys->needs = NULL; /* items have none */
    v->tasks = xcalloc(limit, sizeof *v->tasks);
    if (!req->n_status) { /* every item matches: straight to the page */
        for (uint64_t j = req->offset; j < f->n_items && v->n_tasks < limit; j++)
            if (f->items[j] < r->n_tasks)
                v->tasks[v->n_tasks++] = task_view(s, r->tasks[f->items[j]], depth, false, whys);
        v->page_total = f->n_items;
        return;
    }
    uint64_t matched = 0;
    for (uint32_t j = 0; j < f->n_items; j++) {
        if (f->items[j] >= r->n_tasks)
            continue;
        const task_t *it = r->tasks[f->items[j]];
        bool in = false;
        for (size_t k = 0; k < req->n_status && !in; k++)
            in = it->status == req->status[k];
        if (!in)
            continue;
        if (matched >= req->offset && v->n_tasks < limit)
            v->tasks[v->n_tasks++] = task_view(s, it, depth, false, whys);
        matched++;
    }
    v->page_total = matched;
}

/* name, or a stand-in when it holds control bytes (it is echoed in an
 * error the CLI prints on a terminal). */
static const char *shown_name(const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return "(a name with control characters)";
    return name;
}

/* `drover run spec`: what run req->id was submitted from: kept on the run
 * until the commit creating it, then in the store (*loaded, which the
 * caller frees after the reply). */
static void do_get_spec(sched_t *s, const Drover__RunRequest *req, Drover__ApiResponse *resp,
                        Drover__RunSpecRecord **loaded, char **err_owned)
{
    run_t *r = dag_find_run(s, req->id);
    if (!r) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no run '%.128s'",
                  shown_name(req->id));
        return;
    }
    if (r->source) {
        resp->spec = r->source;
        return;
    }
    int rc = store_get_spec(s->store, r->rec->id, loaded);
    if (rc == -ENOENT)
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                  "run %s has no stored spec: it was submitted before droverd kept them",
                  r->rec->id);
    else if (rc < 0)
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_OTHER,
                  "reading the spec of run %s: %s", r->rec->id, strerror(-rc));
    else
        resp->spec = *loaded;
}

/* `drover run resume`: end an approval gate (gates.c). */
static void do_resume(sched_t *s, const api_caller_t *caller, const Drover__ResumeRequest *req,
                      Drover__ApiResponse *resp, char **err_owned)
{
    char err[512];
    run_t *r = dag_find_run(s, req->run_id);
    if (!r) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no run '%.128s'",
                  shown_name(req->run_id));
        return;
    }
    task_t *t = dag_find_task(r, req->step);
    if (!t) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                  "run %s has no step '%.128s'", r->rec->id, shown_name(req->step));
        return;
    }
    int code = gate_resume(s, t, caller->name, req->reject, req->params, req->n_params,
                           s->cfg.spec_limits.max_param_bytes, err, sizeof err);
    if (code) {
        set_error(resp, err_owned, (Drover__ApiErrorCode)code, "%s", err);
        return;
    }
    resp->run_id = r->rec->id;
}

static void free_run_view_tasks(Drover__RunView *v)
{
    for (size_t i = 0; i < v->n_tasks; i++) {
        free(v->tasks[i]->item_counts); /* one block: view_item_counts */
        free(v->tasks[i]);
    }
    free(v->tasks);
}

static void do_logs(sched_t *s, const Drover__LogsRequest *req, Drover__ApiResponse *resp,
                    Drover__LogsView *lv, char **err_owned)
{
    run_t *r = dag_find_run(s, req->run_id);
    if (!r) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no run '%s'",
                  req->run_id);
        return;
    }
    task_t *t = dag_find_task(r, req->task);
    if (!t) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                  "run %s has no step '%s'", r->rec->id, req->task);
        return;
    }
    drover__logs_view__init(lv);
    resp->logs = lv;
    if (t->n_attempts == 0) {
        lv->done = dag_task_final(t);
        return;
    }
    uint32_t number = req->attempt ? req->attempt : (uint32_t)t->n_attempts;
    if (number > t->n_attempts) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                  "step '%s' of run %s has %u attempts, not %u", req->task, r->rec->id,
                  t->n_attempts, number);
        resp->logs = NULL;
        return;
    }
    const Drover__AttemptRecord *a = t->attempts[number - 1];
    size_t max = req->max_bytes && req->max_bytes < API_MAX_LOG ? req->max_bytes : API_MAX_LOG;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = store_get_log(s->store, r->rec->id, t->index, number, req->offset, max, &data, &len);
    if (rc < 0) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_OTHER, "reading logs: %s",
                  strerror(-rc));
        resp->logs = NULL;
        return;
    }
    lv->data.data = data;
    lv->data.len = len;
    lv->next_offset = req->offset + len;
    lv->attempt = number;
    lv->truncated = a->log_truncated;
    lv->done = a->finished_ms != 0 && lv->next_offset >= a->log_bytes;
}

static void do_artifacts(sched_t *s, const Drover__ArtifactsRequest *req, Drover__ApiResponse *resp,
                         char **err_owned)
{
    run_t *r = dag_find_run(s, req->run_id);
    if (!r) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no run '%s'",
                  req->run_id);
        return;
    }
    bool one = req->task && *req->task;
    if (one && !dag_find_task(r, req->task)) {
        set_error(resp, err_owned, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                  "run %s has no step '%s'", r->rec->id, req->task);
        return;
    }
    for (size_t i = 0; i < r->n_tasks; i++) {
        const task_t *t = r->tasks[i];
        if (one && strcmp(t->name, req->task) != 0)
            continue;
        for (size_t k = 0; k < t->n_outputs; k++) {
            Drover__ArtifactView *v = xmalloc(sizeof *v);
            drover__artifact_view__init(v);
            v->task = t->name;
            v->artifact = t->outputs[k];
            resp->artifacts = xrealloc(resp->artifacts, (resp->n_artifacts + 1) * sizeof *v);
            resp->artifacts[resp->n_artifacts++] = v;
        }
    }
}

static void agent_view(const agent_t *a, Drover__AgentView *v)
{
    drover__agent_view__init(v);
    v->name = a->name;
    v->connected = a->connected;
    v->drained = a->drained;
    v->n_labels = a->n_labels;
    v->labels = a->labels;
    v->capacity = (Drover__Resources *)&a->capacity;
    v->used = (Drover__Resources *)&a->used;
    v->running = (uint32_t)a->n_tasks;
    v->last_seen_ms = a->last_seen_ms;
    v->runtime = a->runtime ? a->runtime : (char *)"";
    v->images = a->images;
    v->spot = a->spot;
    v->price = a->price;
    if (a->noticed) { /* freed with the view; the reason stays the agent's */
        v->preempt = xmalloc(sizeof *v->preempt);
        drover__preempt_notice__init(v->preempt);
        v->preempt->terminate = a->terminating;
        v->preempt->deadline_ms = a->notice_deadline_ms;
        v->preempt->reason = a->notice_reason;
    }
}

static void add_kv(Drover__KeyValue ***list, size_t *n, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    *list = xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = util_kv_new(key, buf);
}

/* READY tasks by why they wait (placer_waiting_counts), at most
 * API_WAITING_REASONS lines, into v (owned by it). */
#define API_WAITING_REASONS 20
static void waiting_counts(sched_t *s, Drover__StatusView *v)
{
    char **reasons;
    uint64_t *counts, total;
    size_t n = placer_waiting_counts(s, API_WAITING_REASONS, &reasons, &counts, &total);
    v->waiting_total = total;
    v->n_waiting = n;
    v->waiting = n ? xcalloc(n, sizeof *v->waiting) : NULL;
    for (size_t i = 0; i < n; i++) {
        Drover__WaitingCount *w = xmalloc(sizeof *w);
        drover__waiting_count__init(w);
        w->reason = reasons[i]; /* handed to w */
        w->count = counts[i];
        v->waiting[i] = w;
    }
    free(reasons);
    free(counts);
}

/* Security settings, limits, refusal counters and READY tasks by reason
 * (freed with the reply). */
static Drover__StatusView *status_view(sched_t *s, const api_caller_t *caller)
{
    Drover__StatusView *v = xmalloc(sizeof *v);
    drover__status_view__init(v);
    const sched_config_t *c = &s->cfg;
    const sched_counters_t *k = &s->counters;
    v->version = xstrdup(DROVER_VERSION);
    v->curve = s->auth.agents_curve;
    v->api_curve = s->auth.api_curve;
    v->agent_keys = s->auth.agent_keys ? (uint32_t)zhashx_size(s->auth.agent_keys) : 0;
    v->api_keys = s->auth.api_keys ? (uint32_t)zhashx_size(s->auth.api_keys) : 0;
    v->caller = xasprintf("%s%s (%s)", caller->token ? "API token " : "", caller->name,
                          caller->role == API_ROLE_ADMIN    ? "admin"
                          : caller->role == API_ROLE_SUBMIT ? "submit"
                                                            : "read");
    add_kv(&v->limits, &v->n_limits, "max-message", c->max_message);
    add_kv(&v->limits, &v->n_limits, "max-spec", c->spec_limits.max_bytes);
    add_kv(&v->limits, &v->n_limits, "max-steps", c->spec_limits.max_steps);
    add_kv(&v->limits, &v->n_limits, "max-items", c->max_items);
    add_kv(&v->limits, &v->n_limits, "max-depth", c->max_depth);
    add_kv(&v->limits, &v->n_limits, "max-tasks", c->max_run_tasks);
    add_kv(&v->limits, &v->n_limits, "max-schedules", c->max_schedules);
    add_kv(&v->limits, &v->n_limits, "max-param", c->spec_limits.max_param_bytes);
    add_kv(&v->limits, &v->n_limits, "max-labels", c->spec_limits.max_labels);
    add_kv(&v->limits, &v->n_limits, "log-limit", c->log_limit);
    add_kv(&v->limits, &v->n_limits, "api-peer-queue", c->api_peer_queue);
    add_kv(&v->limits, &v->n_limits, "api-waiters", c->api_waiters);
    add_kv(&v->limits, &v->n_limits, "max-system-errors", c->max_system_errors);
    add_kv(&v->counters, &v->n_counters, "refused_agents", k->refused_agents);
    add_kv(&v->counters, &v->n_counters, "refused_api", k->refused_api);
    add_kv(&v->counters, &v->n_counters, "refused_role", k->refused_role);
    add_kv(&v->counters, &v->n_counters, "failed_handshakes", k->failed_handshakes);
    add_kv(&v->counters, &v->n_counters, "revoked_agents", k->revoked_agents);
    add_kv(&v->counters, &v->n_counters, "over_limits", k->over_limits);
    add_kv(&v->counters, &v->n_counters, "bad_messages", k->bad_messages);
    add_kv(&v->counters, &v->n_counters, "bad_requests", k->bad_requests);
    add_kv(&v->counters, &v->n_counters, "truncated_logs", k->truncated_logs);
    add_kv(&v->counters, &v->n_counters, "dropped_api_peers", k->dropped_api_peers);
    add_kv(&v->counters, &v->n_counters, "refused_joins", k->refused_joins);
    add_kv(&v->counters, &v->n_counters, "refused_tokens", k->refused_tokens);
    waiting_counts(s, v);
    return v;
}

/* The least role an operation needs: read (look), submit (run and cancel
 * one's own runs), admin (the fleet and everything else). */
static api_role_t role_needed(Drover__ApiRequest__OpCase op)
{
    switch (op) {
    case DROVER__API_REQUEST__OP_LIST_RUNS:
    case DROVER__API_REQUEST__OP_GET_RUN:
    case DROVER__API_REQUEST__OP_LOGS:
    case DROVER__API_REQUEST__OP_LIST_AGENTS:
    case DROVER__API_REQUEST__OP_ARTIFACTS:
    case DROVER__API_REQUEST__OP_READ_BLOB:
    case DROVER__API_REQUEST__OP_STATUS:
    case DROVER__API_REQUEST__OP_GET_SPEC:
    case DROVER__API_REQUEST__OP_EVENTS:
    case DROVER__API_REQUEST__OP_METRICS:
    case DROVER__API_REQUEST__OP_WHOAMI:
        return API_ROLE_READ;
    case DROVER__API_REQUEST__OP_SUBMIT:
    case DROVER__API_REQUEST__OP_CANCEL_RUN:
    case DROVER__API_REQUEST__OP_RESUME:
        return API_ROLE_SUBMIT;
    default:
        return API_ROLE_ADMIN;
    }
}

static const char *role_name(api_role_t r)
{
    return r == API_ROLE_ADMIN ? "admin" : r == API_ROLE_SUBMIT ? "submit" : "read";
}

/* Why caller may not do req, or NULL. */
static char *forbidden(sched_t *s, const api_caller_t *c, const Drover__ApiRequest *req)
{
    api_role_t need = req->op_case == DROVER__API_REQUEST__OP_SCHEDULE
                          ? api_schedule_role(req->schedule)
                      : req->op_case == DROVER__API_REQUEST__OP_POOL ? pools_api_role(req->pool)
                                                                     : role_needed(req->op_case);
    if (c->role < need)
        return xasprintf("permission denied: %s '%s' has role %s; this needs %s",
                         c->token ? "API token" : "key", c->name, role_name(c->role),
                         role_name(need));
    bool resume = req->op_case == DROVER__API_REQUEST__OP_RESUME;
    if (c->role == API_ROLE_SUBMIT &&
        (req->op_case == DROVER__API_REQUEST__OP_CANCEL_RUN || resume)) {
        const run_t *r = dag_find_run(s, resume ? req->resume->run_id : req->cancel_run->id);
        if (r && strcmp(r->rec->owner, c->name) != 0)
            return xasprintf("permission denied: run %s was submitted by '%s'; role submit may "
                             "%s only its own runs",
                             r->rec->id, *r->rec->owner ? r->rec->owner : "someone else",
                             resume ? "resume gates of" : "cancel");
    }
    return NULL;
}

void api_handle(sched_t *s, zframe_t *identity, const uint8_t *data, size_t len)
{
    api_caller_t admin = {.role = API_ROLE_ADMIN, .name = "local"};
    api_handle_as(s, &admin, identity, data, len);
}

void api_handle_as(sched_t *s, const api_caller_t *caller, zframe_t *identity, const uint8_t *data,
                   size_t len)
{
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    Drover__RunView run = DROVER__RUN_VIEW__INIT;
    Drover__RunView **runs = NULL;
    Drover__AgentView **agents = NULL;
    Drover__LogsView logs;
    Drover__CallerView caller_view;
    view_whys_t whys = {.n = 0, .texts = NULL, .needs = NULL};
    Drover__RunSpecRecord *spec_loaded = NULL; /* get_spec's, read from the store */
    char *err = NULL;
    Drover__ApiRequest *req = drover__api_request__unpack(NULL, len, data);
    api_caller_t as_token; /* a bearer's: the request runs as the token */

    if (!req) {
        s->counters.bad_requests++;
        set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                  "undecodable request (%zu bytes): is the CLI the same version?", len);
        goto reply;
    }
    if (req->bearer && *req->bearer) {
        char why[256];
        int rc = apitokens_check(s, req->bearer, util_now_ms(), &as_token, why, sizeof why);
        explicit_bzero(req->bearer, strlen(req->bearer)); /* the secret, used */
        if (rc < 0) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_UNAUTHENTICATED, "%s", why);
            goto reply;
        }
        caller = &as_token;
    }
    if ((err = forbidden(s, caller, req))) {
        resp.error = err;
        resp.error_code = DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED;
        s->counters.refused_role++;
        log_warn("api: %s", err);
        goto reply;
    }
    switch (req->op_case) {
    case DROVER__API_REQUEST__OP_SUBMIT:
        do_submit(s, req->submit, caller->name, &resp, &err);
        break;
    case DROVER__API_REQUEST__OP_LIST_RUNS: {
        const Drover__ListRunsRequest *lr = req->list_runs;
        size_t limit = lr->limit ? lr->limit : API_DEFAULT_LIST, n = 0;
        uint64_t before = lr->before && *lr->before ? run_number(lr->before) : UINT64_MAX;
        if (before == 0) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                      "before: '%s' is not a run id", lr->before);
            break;
        }
        if (limit > API_MAX_LIST)
            limit = API_MAX_LIST;
        runs = xcalloc(s->dag.n_runs < limit ? s->dag.n_runs : limit, sizeof *runs);
        for (size_t i = s->dag.n_runs; i-- > 0 && n < limit;) { /* newest first */
            if (!run_matches(s->dag.runs[i], lr) || run_number(s->dag.runs[i]->rec->id) >= before)
                continue;
            runs[n] = xmalloc(sizeof **runs);
            run_view_head(s, s->dag.runs[i], runs[n++]);
        }
        resp.n_runs = n;
        resp.runs = runs;
        break;
    }
    case DROVER__API_REQUEST__OP_GET_RUN:
    case DROVER__API_REQUEST__OP_CANCEL_RUN: {
        const char *id = req->op_case == DROVER__API_REQUEST__OP_GET_RUN ? req->get_run->id
                                                                         : req->cancel_run->id;
        run_t *r = dag_find_run(s, id);
        if (!r) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no run '%s'", id);
            break;
        }
        if (req->op_case == DROVER__API_REQUEST__OP_CANCEL_RUN) {
            if (r->unfinished == 0) {
                set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_CONFLICT,
                          "run %s already ended %s", id, util_run_status_name(r->rec->status));
                break;
            }
            log_info("run %s cancelled", id);
            dag_cancel_run(s, r);
            resp.run_id = r->rec->id;
            break;
        }
        const Drover__RunRequest *rr = req->get_run;
        if (rr->fanout && *rr->fanout) {
            items_page(s, r, rr, &run, &whys, &resp, &err);
            if (!err)
                resp.run = &run;
            break;
        }
        if (rr->task && *rr->task) {
            const task_t *t = dag_find_task(r, rr->task);
            if (!t) {
                set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                          "run %s has no step '%.128s'", r->rec->id, shown_name(rr->task));
                break;
            }
            run_view_head(s, r, &run); /* the one task, with its history */
            placer_why_init(s, &whys.memo);
            view_needs_reserve(r, &t->index, 1, &whys);
            run.tasks = xmalloc(sizeof *run.tasks);
            run.tasks[run.n_tasks++] = task_view(s, t, dag_depth(t), true, &whys);
            resp.run = &run;
            break;
        }
        run_view(s, r, &run, rr->summary, &whys);
        resp.run = &run;
        break;
    }
    case DROVER__API_REQUEST__OP_LOGS:
        do_logs(s, req->logs, &resp, &logs, &err);
        break;
    case DROVER__API_REQUEST__OP_LIST_AGENTS: {
        size_t n = zhashx_size(s->fleet.agents), i = 0;
        agents = xcalloc(n, sizeof *agents);
        for (agent_t *a = zhashx_first(s->fleet.agents); a && i < n;
             a = zhashx_next(s->fleet.agents)) {
            if (!a->connected && a->capacity.cpu_milli == 0 && !a->n_tasks)
                continue; /* spoke once, never registered */
            agents[i] = xmalloc(sizeof **agents);
            agent_view(a, agents[i++]);
        }
        resp.n_agents = i;
        resp.agents = agents;
        break;
    }
    case DROVER__API_REQUEST__OP_DRAIN_AGENT: {
        agent_t *a = fleet_find(&s->fleet, req->drain_agent->name);
        if (!a) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no agent '%s'",
                      req->drain_agent->name);
            break;
        }
        a->drained = !req->drain_agent->undrain;
        if (!a->drained && a->connected)
            outbound_end_drill(&s->out, a); /* a drill ends with undrain */
        journal_mark_agent(&s->journal, a);
        log_info("agent %s %s", a->name,
                 a->drained ? "drained: no new work will be placed there" : "back in service");
        break;
    }
    case DROVER__API_REQUEST__OP_FORGET_AGENT: {
        agent_t *a = fleet_find(&s->fleet, req->forget_agent->name);
        if (!a) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no agent '%s'",
                      req->forget_agent->name);
            break;
        }
        if (a->connected || a->n_tasks) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_CONFLICT,
                      "agent %s is %s: only a disconnected agent with no steps can be forgotten "
                      "(stop it first)",
                      a->name, a->connected ? "connected" : "still holding steps");
            break;
        }
        log_info("agent %s forgotten", a->name);
        tokens_forget_node(s, a->name);
        agents_forget(s, a);
        break;
    }
    case DROVER__API_REQUEST__OP_PREEMPT_AGENT: {
        agent_t *a = fleet_find(&s->fleet, req->preempt_agent->name);
        if (!a || !a->connected) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                      "no connected agent '%s'", req->preempt_agent->name);
            break;
        }
        log_info("agent %s: preemption drill, deadline in %.1fs", a->name,
                 req->preempt_agent->deadline_ms / 1000.0);
        outbound_drill(&s->out, a, req->preempt_agent->deadline_ms);
        break;
    }
    case DROVER__API_REQUEST__OP_ARTIFACTS:
        do_artifacts(s, req->artifacts, &resp, &err);
        break;
    case DROVER__API_REQUEST__OP_STATUS:
        resp.status = status_view(s, caller);
        break;
    case DROVER__API_REQUEST__OP_READ_BLOB: {
        const Drover__BlobRequest *b = req->read_blob;
        if (b->digest.len != 32 || !blobstore_exists(s, b->digest.data)) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no such blob");
            break;
        }
        size_t max = b->max_bytes && b->max_bytes < API_MAX_LOG ? b->max_bytes : API_MAX_LOG;
        blobs_api_read(s, identity, b->digest.data, b->offset, max); /* replies when read */
        identity = NULL;
        goto done;
    }
    case DROVER__API_REQUEST__OP_DELETE_RUN: {
        run_t *r = dag_find_run(s, req->delete_run->id);
        if (!r) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no run '%s'",
                      req->delete_run->id);
            break;
        }
        if (dag_delete_run(s, r) < 0) {
            set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_CONFLICT,
                      "run %s is still running: cancel it first", r->rec->id);
            break;
        }
        resp.run_id = req->delete_run->id;
        break;
    }
    case DROVER__API_REQUEST__OP_RESUME:
        do_resume(s, caller, req->resume, &resp, &err);
        break;
    case DROVER__API_REQUEST__OP_SCHEDULE:
        api_schedule(s, caller, req->schedule, &resp, &err);
        break;
    case DROVER__API_REQUEST__OP_GET_SPEC:
        do_get_spec(s, req->get_spec, &resp, &spec_loaded, &err);
        break;
    case DROVER__API_REQUEST__OP_TOKEN:
        tokens_api(s, caller, req->token, &resp, &err);
        break;
    case DROVER__API_REQUEST__OP_POOL:
        pools_api(s, caller, req->pool, &resp, &err);
        break;
    case DROVER__API_REQUEST__OP_EVENTS:
        if (events_api(s, identity, req->events, &resp, &err)) {
            identity = NULL; /* held: answered when events commit, or at its wait_ms */
            goto done;
        }
        break;
    case DROVER__API_REQUEST__OP_METRICS: { /* metrics.c; its refusals and waiting: status's */
        int64_t began_us = metrics_now_us();
        Drover__StatusView *st = status_view(s, caller);
        resp.metrics = metrics_view(s, caller, st, began_us);
        drover__status_view__free_unpacked(st, NULL);
        break;
    }
    case DROVER__API_REQUEST__OP_WHOAMI:
        drover__caller_view__init(&caller_view);
        caller_view.name = (char *)caller->name;
        caller_view.role = (char *)role_name(caller->role);
        caller_view.token = caller->token;
        resp.caller = &caller_view;
        break;
    case DROVER__API_REQUEST__OP_CLEAR_CACHE:
        journal_clear_cache(&s->journal); /* and the puts before it */
        log_info("step cache cleared");
        break;
    default:
        set_error(&resp, &err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                  "unknown request: is the CLI newer than droverd?");
    }

reply:;
    size_t n = drover__api_response__get_packed_size(&resp);
    uint8_t *buf = xmalloc(n);
    drover__api_response__pack(&resp, buf);
    sched_queue_reply(s, identity, buf, n);
done:
    spec_errors_free(&resp);
    api_schedule_done(&resp);
    tokens_api_done(&resp);
    pools_api_done(&resp);
    events_api_done(&resp);
    if (spec_loaded)
        drover__run_spec_record__free_unpacked(spec_loaded, NULL);
    if (resp.status)
        drover__status_view__free_unpacked(resp.status, NULL);
    metrics_view_free(resp.metrics);
    for (size_t i = 0; i < resp.n_artifacts; i++)
        free(resp.artifacts[i]);
    free(resp.artifacts);

    if (resp.logs)
        free(resp.logs->data.data);
    free_run_view_tasks(&run);
    for (size_t i = 0; i < whys.n; i++)
        free(whys.texts[i]);
    free(whys.texts);
    free(whys.needs);
    for (size_t i = 0; i < resp.n_runs; i++)
        free(runs[i]);
    free(runs);
    for (size_t i = 0; i < resp.n_agents; i++) {
        free(agents[i]->preempt);
        free(agents[i]);
    }
    free(agents);
    free(err);
    if (req)
        drover__api_request__free_unpacked(req, NULL);
}
