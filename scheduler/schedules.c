/* schedules — recurring runs (README "Schedules"): cron or interval
 * cadences, catch-up after downtime, concurrency policies, backfill, and
 * runs that trigger runs.
 *
 * A schedule is its record (ScheduleRecord: the spec it was created with,
 * imports resolved, its cadence and policies, and the cursor
 * `last_fire_ms`: the latest fire it has handled) plus runtime state (the
 * parsed cron, the next fire, how many of its runs are going). The 100 ms
 * tick asks each schedule whose next fire has come which fires are due
 * (cadence_due: catch-up), and for each what its policy does with the
 * runs going (cadence_admit): start a run for it, skip it (forbid;
 * counted, with the reason), cancel the going runs and start (replace),
 * or leave it due until a run ends (allow at max-active). A fire started
 * or skipped moves the cursor, in the same commit as the runs it made, so
 * after a kill -9 droverd neither loses a fire nor starts one twice.
 *
 * A fire compiles the stored spec again (it was validated at creation;
 * should it no longer compile, the error is recorded and the fire passed
 * over) and makes the run in two halves (dag_new_run, then the logical
 * time set on the run's record, then dag_start_run), so templates read
 * {{run.scheduled_at}} from the first activation on.
 *
 * Runs that trigger runs: when a run ends, each schedule whose `after`
 * names that run's schedule or pipeline, and whose `on` the outcome
 * satisfies, fires with the upstream run's id and output params
 * ({{trigger.*}}); chains are refused at creation when they would loop.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cadence.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define MAX_DUE_PER_TICK 16   /* fires one schedule starts per tick (catch-up spreads) */
#define MAX_BACKFILL     1000 /* intervals one backfill may cover */

struct schedule {
    Drover__ScheduleRecord *rec; /* owned */
    cron_t *cron;                /* rec->cron parsed, or NULL */
    int64_t next_ms;             /* when to look again; 0 = at the next tick */
    uint32_t active;             /* its runs not yet ended */
    bool dirty;
    schedule_t *dirty_next;
};

/* ------------------------------------------------------------ table */

static void schedule_free(void **p)
{
    schedule_t *sc = *p;
    if (!sc)
        return;
    drover__schedule_record__free_unpacked(sc->rec, NULL);
    cron_destroy(&sc->cron);
    free(sc);
    *p = NULL;
}

void schedules_init(sched_t *s)
{
    s->schedules.by_name = zhashx_new();
    zhashx_set_destructor(s->schedules.by_name, schedule_free);
}

void schedules_free(sched_t *s)
{
    zhashx_destroy(&s->schedules.by_name);
    for (size_t i = 0; i < s->schedules.n_deleted; i++)
        free(s->schedules.deleted[i]);
    free(s->schedules.deleted);
    s->schedules.deleted = NULL;
    s->schedules.n_deleted = 0;
    s->schedules.dirty = NULL;
}

/* Take sc off the dirty list (before it is freed). */
static void unmark(sched_t *s, schedule_t *sc)
{
    for (schedule_t **p = &s->schedules.dirty; *p; p = &(*p)->dirty_next)
        if (*p == sc) {
            *p = sc->dirty_next;
            break;
        }
    sc->dirty = false;
    sc->dirty_next = NULL;
}

static void mark(sched_t *s, schedule_t *sc)
{
    s->journal.must_commit = true;
    if (sc->dirty)
        return;
    sc->dirty = true;
    sc->dirty_next = s->schedules.dirty;
    s->schedules.dirty = sc;
}

int schedules_commit(sched_t *s)
{
    int rc = 0;
    for (size_t i = 0; i < s->schedules.n_deleted && rc == 0; i++)
        rc = store_delete_schedule(s->store, s->schedules.deleted[i]);
    for (schedule_t *sc = s->schedules.dirty; sc && rc == 0; sc = sc->dirty_next)
        rc = store_put_schedule(s->store, sc->rec);
    return rc;
}

void schedules_after_commit(sched_t *s)
{
    for (schedule_t *sc = s->schedules.dirty, *n; sc; sc = n) {
        n = sc->dirty_next;
        sc->dirty = false;
        sc->dirty_next = NULL;
    }
    s->schedules.dirty = NULL;
    for (size_t i = 0; i < s->schedules.n_deleted; i++)
        free(s->schedules.deleted[i]);
    s->schedules.n_deleted = 0;
}

static cadence_t cadence_of(const schedule_t *sc)
{
    const Drover__ScheduleRecord *r = sc->rec;
    return (cadence_t){.cron = sc->cron,
                       .tz = r->timezone ? r->timezone : "",
                       .every_s = (int64_t)(r->every_ms / 1000),
                       .start_s = r->start_ms / 1000,
                       .end_s = r->end_ms / 1000};
}

/* Whether sc fires by itself (a cadence), not only when triggered. */
static bool has_cadence(const schedule_t *sc)
{
    return sc->cron || sc->rec->every_ms >= 1000;
}

static uint32_t max_active(const schedule_t *sc)
{
    return sc->rec->max_active ? sc->rec->max_active : 1;
}

static schedule_t *schedule_new(Drover__ScheduleRecord *rec)
{
    schedule_t *sc = xcalloc(1, sizeof *sc);
    sc->rec = rec;
    if (rec->cron && *rec->cron) {
        char err[256];
        if (cron_parse(rec->cron, &sc->cron, err, sizeof err) < 0)
            log_warn("schedule %s: cron '%s': %s", rec->name, rec->cron,
                     err); /* checked at create */
    }
    return sc;
}

schedule_t *schedules_find(sched_t *s, const char *name)
{
    return zhashx_lookup(s->schedules.by_name, name);
}

void schedules_load(sched_t *s, const Drover__ScheduleRecord *rec)
{
    schedule_t *sc = schedule_new(util_pb_copy(rec));
    zhashx_update(s->schedules.by_name, sc->rec->name, sc);
}

void schedules_loaded(sched_t *s)
{
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        run_t *r = s->dag.runs[i];
        schedule_t *sc =
            r->rec->schedule && *r->rec->schedule ? schedules_find(s, r->rec->schedule) : NULL;
        if (sc && !dag_run_final(r))
            sc->active++;
    }
    if (zhashx_size(s->schedules.by_name))
        log_info("loaded %zu schedules", zhashx_size(s->schedules.by_name));
}

/* ------------------------------------------------------------ firing */

/* Compile sc's stored spec (with its -p values). 0 or -EINVAL + err. */
static int compile(sched_t *s, const schedule_t *sc, spec_t **out, char *err, size_t errlen)
{
    const Drover__ScheduleRecord *r = sc->rec;
    spec_import_t *imps = xcalloc(r->n_imports + 1, sizeof *imps);
    spec_kv_t *ov = xcalloc(r->n_params + 1, sizeof *ov);
    for (size_t i = 0; i < r->n_imports; i++)
        imps[i] = (spec_import_t){.path = r->imports[i]->path,
                                  .text = (const char *)r->imports[i]->text.data,
                                  .len = r->imports[i]->text.len};
    for (size_t i = 0; i < r->n_params; i++)
        ov[i] = (spec_kv_t){.key = r->params[i]->key, .value = r->params[i]->value};
    int rc = spec_parse_files(r->spec_file, (const char *)r->spec.data, r->spec.len, imps,
                              r->n_imports, ov, r->n_params, &s->cfg.spec_limits, out, err, errlen);
    free(imps);
    free(ov);
    return rc;
}

/* The facts a fire gives its run (the logical time, or the triggering run). */
typedef struct {
    int64_t at_ms;      /* the fire's instant; 0 for a trigger */
    const run_t *after; /* the triggering run, or NULL */
} fire_t;

/* Upstream run u's steps' output params as "STEP.PARAM" → value. */
static void trigger_outputs(Drover__RunRecord *rec, const run_t *u)
{
    for (size_t i = 0; i < u->n_tasks; i++) {
        const task_t *t = u->tasks[i];
        if (t->is_item || t->scope)
            continue;
        for (size_t k = 0; k < t->n_out_params; k++) {
            char *key = xasprintf("%s.%s", t->name, t->out_params[k]->key);
            rec->trigger_outputs = xrealloc(rec->trigger_outputs, (rec->n_trigger_outputs + 1) *
                                                                      sizeof *rec->trigger_outputs);
            rec->trigger_outputs[rec->n_trigger_outputs++] =
                util_kv_new(key, t->out_params[k]->value);
            free(key);
        }
    }
}

/* Start a run of sc for fire f. Returns it, or NULL (the error recorded
 * on the schedule). */
static run_t *fire(sched_t *s, schedule_t *sc, const fire_t *f)
{
    char err[8192];
    spec_t *spec = NULL;
    if (compile(s, sc, &spec, err, sizeof err) < 0) {
        util_pb_set_str(&sc->rec->last_error, err);
        log_warn("schedule %s: its spec no longer compiles; fire passed over: %s", sc->rec->name,
                 err);
        mark(s, sc);
        return NULL;
    }
    run_t *r = dag_new_run(s, spec, sc->rec->spec_file, false);
    Drover__RunRecord *rec = r->rec;
    Drover__RunSpecRecord src = DROVER__RUN_SPEC_RECORD__INIT; /* `drover run spec ID` */
    src.file = sc->rec->spec_file;
    src.text = sc->rec->spec;
    src.n_imports = sc->rec->n_imports;
    src.imports = sc->rec->imports;
    src.n_params = sc->rec->n_params;
    src.params = sc->rec->params;
    r->source = util_pb_copy(&src); /* written with the run, then freed (commit.c) */
    util_pb_set_str(&rec->owner, sc->rec->owner && *sc->rec->owner ? sc->rec->owner : "local");
    util_pb_set_str(&rec->schedule, sc->rec->name);
    util_pb_set_str(&rec->timezone, sc->rec->timezone ? sc->rec->timezone : "");
    if (f->at_ms) {
        cadence_t c = cadence_of(sc);
        rec->scheduled_ms = f->at_ms;
        rec->interval_start_ms = has_cadence(sc) ? cadence_prev(&c, f->at_ms / 1000) * 1000 : 0;
    } else {
        rec->scheduled_ms = util_now_ms();
    }
    if (f->after) {
        util_pb_set_str(&rec->trigger_run_id, f->after->rec->id);
        trigger_outputs(rec, f->after);
    }
    dag_start_run(s, r);
    spec_destroy(&spec);
    util_pb_set_str(&sc->rec->last_run_id, rec->id);
    util_pb_set_str(&sc->rec->last_error, "");
    sc->active++;
    mark(s, sc);
    log_info("schedule %s: run %s for %" PRId64, sc->rec->name, rec->id, rec->scheduled_ms);
    return r;
}

/* Cancel sc's runs that are going (replace). */
static void cancel_active(sched_t *s, schedule_t *sc)
{
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        run_t *r = s->dag.runs[i];
        if (!dag_run_final(r) && !r->cancelled && r->rec->schedule &&
            !strcmp(r->rec->schedule, sc->rec->name)) {
            util_pb_set_str(&r->rec->reason, "replaced by a newer run of its schedule");
            dag_cancel_run(s, r);
        }
    }
}

static void record_skip(sched_t *s, schedule_t *sc, int64_t at_ms, const char *why)
{
    char *msg = xasprintf("%" PRId64 ": %s", at_ms, why);
    util_pb_set_str(&sc->rec->last_skip, msg);
    free(msg);
    sc->rec->skipped++;
    mark(s, sc);
    log_info("schedule %s: fire at %" PRId64 " skipped: %s", sc->rec->name, at_ms, why);
}

/* One fire of sc by its policy: true when it was handled (started or
 * skipped), false when it must wait for room. */
static bool admit_and_fire(sched_t *s, schedule_t *sc, const fire_t *f)
{
    uint32_t going = sc->active;
    switch (cadence_admit((cadence_policy_t)sc->rec->concurrency, going, max_active(sc))) {
    case ADMIT_WAIT:
        return false;
    case ADMIT_SKIP:
        record_skip(s, sc, f->at_ms ? f->at_ms : util_now_ms(),
                    "a run of the schedule is still going (concurrency forbid)");
        return true;
    case ADMIT_REPLACE:
        cancel_active(s, sc);
        /* fall through */
    case ADMIT_START:
        break;
    }
    fire(s, sc, f);
    return true;
}

/* Fires queued by a backfill (oldest first), as room allows. */
static void run_queued(sched_t *s, schedule_t *sc)
{
    size_t done = 0;
    while (done < sc->rec->n_queued_ms && done < MAX_DUE_PER_TICK && sc->active < max_active(sc)) {
        fire_t f = {.at_ms = sc->rec->queued_ms[done]};
        fire(s, sc, &f);
        done++;
    }
    if (!done)
        return;
    memmove(sc->rec->queued_ms, sc->rec->queued_ms + done,
            (sc->rec->n_queued_ms - done) * sizeof *sc->rec->queued_ms);
    sc->rec->n_queued_ms -= done;
    mark(s, sc);
}

static void tick_one(sched_t *s, schedule_t *sc, int64_t now_ms)
{
    if (sc->rec->n_queued_ms)
        run_queued(s, sc);
    if (sc->rec->paused || !has_cadence(sc) || (sc->next_ms && now_ms < sc->next_ms))
        return;
    cadence_t c = cadence_of(sc);
    int64_t due[MAX_DUE_PER_TICK], handled;
    size_t n;
    cadence_due(&c, sc->rec->last_fire_ms / 1000, sc->rec->created_ms / 1000, now_ms / 1000,
                (cadence_catchup_t)sc->rec->catchup, MAX_DUE_PER_TICK, due, &n, &handled);
    int64_t cursor = sc->rec->last_fire_ms;
    bool waiting = false;
    for (size_t i = 0; i < n && !waiting; i++) {
        fire_t f = {.at_ms = due[i] * 1000};
        if (admit_and_fire(s, sc, &f))
            cursor = f.at_ms;
        else
            waiting = true;
    }
    if (!waiting && handled * 1000 > cursor)
        cursor = handled * 1000; /* passed over by the catch-up rule */
    if (cursor != sc->rec->last_fire_ms) {
        sc->rec->last_fire_ms = cursor;
        mark(s, sc);
    }
    int64_t next;
    if (waiting)
        sc->next_ms = INT64_MAX; /* at max-active: look again when one of its runs ends */
    else if (n == MAX_DUE_PER_TICK)
        sc->next_ms = 0; /* more to catch up: at the next tick */
    else
        sc->next_ms = cadence_next(&c, cursor / 1000, &next) == 0 ? next * 1000 : INT64_MAX;
}

/* The schedules, as an array (caller frees): a fire may end runs (replace,
 * a cached run), whose ending walks the table again, so no walk of it may
 * span a fire. */
static schedule_t **snapshot(sched_t *s, size_t *n)
{
    *n = zhashx_size(s->schedules.by_name);
    schedule_t **all = xcalloc(*n + 1, sizeof *all), **p = all;
    for (schedule_t *sc = zhashx_first(s->schedules.by_name); sc;
         sc = zhashx_next(s->schedules.by_name))
        *p++ = sc;
    return all;
}

void schedules_tick(sched_t *s, int64_t now_ms)
{
    size_t n;
    schedule_t **all = snapshot(s, &n);
    for (size_t i = 0; i < n; i++)
        tick_one(s, all[i], now_ms);
    free(all);
}

/* ------------------------------------------------------------ runs ending */

static bool outcome_matches(Drover__AfterOn on, Drover__RunStatus st)
{
    switch (on) {
    case DROVER__AFTER_ON__AFTER_SUCCEEDED:
        return st == DROVER__RUN_STATUS__RUN_SUCCEEDED;
    case DROVER__AFTER_ON__AFTER_FAILED:
        return st == DROVER__RUN_STATUS__RUN_FAILED;
    default:
        return true;
    }
}

void schedules_run_ended(sched_t *s, run_t *r)
{
    if (!s->schedules.by_name || !zhashx_size(s->schedules.by_name))
        return;
    const char *own = r->rec->schedule && *r->rec->schedule ? r->rec->schedule : NULL;
    schedule_t *mine = own ? schedules_find(s, own) : NULL;
    if (mine && mine->active) {
        mine->active--;
        mine->next_ms = 0; /* a waiting fire may start now */
    }
    size_t n;
    schedule_t **all = snapshot(s, &n);
    for (size_t i = 0; i < n; i++) {
        schedule_t *sc = all[i];
        const char *after = sc->rec->after;
        if (!after || !*after || sc->rec->paused ||
            !outcome_matches(sc->rec->after_on, r->rec->status))
            continue;
        if (!(own && !strcmp(after, own)) && strcmp(after, r->rec->name) != 0)
            continue;
        fire_t f = {.after = r};
        if (!admit_and_fire(s, sc, &f)) {
            /* at max-active: remembered, started when a run ends */
            sc->rec->pending_after =
                xrealloc(sc->rec->pending_after, (sc->rec->n_pending_after + 1) * sizeof(char *));
            sc->rec->pending_after[sc->rec->n_pending_after++] = xstrdup(r->rec->id);
            mark(s, sc);
        }
    }
    /* triggers that waited for room */
    for (size_t i = 0; i < n; i++) {
        schedule_t *sc = all[i];
        while (sc->rec->n_pending_after && sc->active < max_active(sc)) {
            char *id = sc->rec->pending_after[0];
            memmove(sc->rec->pending_after, sc->rec->pending_after + 1,
                    (sc->rec->n_pending_after - 1) * sizeof(char *));
            sc->rec->n_pending_after--;
            run_t *u = dag_find_run(s, id);
            fire_t f = {.after = u};
            if (u)
                fire(s, sc, &f);
            free(id);
            mark(s, sc);
        }
    }
    free(all);
}

/* ------------------------------------------------------------ requests */

/* Whether sc (not yet in the table) would close a loop of triggers: its
 * `after` names a schedule (or the pipeline of one) whose `after` ... comes
 * back to sc's name or pipeline. */
static bool trigger_loop(sched_t *s, const Drover__ScheduleRecord *sc, const char *pipeline,
                         char *why, size_t whylen)
{
    const char *after = sc->after;
    strbuf_t path = {0};
    sb_printf(&path, "%s", sc->name);
    for (int hops = 0; after && *after && hops <= (int)zhashx_size(s->schedules.by_name) + 1;
         hops++) {
        if (!strcmp(after, sc->name) || !strcmp(after, pipeline)) {
            snprintf(why, whylen, "triggers would loop: %s -> %s", path.buf, after);
            sb_free(&path);
            return true;
        }
        const Drover__ScheduleRecord *next = NULL;
        for (schedule_t *o = zhashx_first(s->schedules.by_name); o && !next;
             o = zhashx_next(s->schedules.by_name))
            if (strcmp(o->rec->name, sc->name) != 0 &&
                (!strcmp(o->rec->name, after) ||
                 (o->rec->pipeline && !strcmp(o->rec->pipeline, after))))
                next = o->rec;
        if (!next)
            break;
        sb_printf(&path, " -> %s", next->name);
        after = next->after;
    }
    sb_free(&path);
    return false;
}

int schedules_put(sched_t *s, const Drover__ScheduleRecord *in, bool update, const char *owner,
                  char *err, size_t errlen)
{
    schedule_t *old = schedules_find(s, in->name);
    if (update && !old) {
        snprintf(err, errlen, "no schedule named '%s'", in->name);
        return -ENOENT;
    }
    if (!update && old) {
        snprintf(err, errlen, "a schedule named '%s' exists (drover schedule update changes it)",
                 in->name);
        return -EEXIST;
    }
    if (!update && zhashx_size(s->schedules.by_name) >= s->cfg.max_schedules) {
        s->counters.over_limits++;
        snprintf(err, errlen, "droverd holds %zu schedules, its --max-schedules",
                 s->cfg.max_schedules);
        return -E2BIG;
    }
    Drover__ScheduleRecord *rec = util_pb_copy(in);
    /* what droverd keeps for itself is never a client's to say: a create
     * starts it afresh, an update carries it over from the old record */
    rec->created_ms = rec->last_fire_ms = 0;
    rec->skipped = 0;
    rec->paused = false;
    util_pb_set_str(&rec->last_run_id, "");
    util_pb_set_str(&rec->last_skip, "");
    util_pb_set_str(&rec->last_error, "");
    util_pb_set_str(&rec->owner, "");
    free(rec->queued_ms);
    rec->queued_ms = NULL;
    rec->n_queued_ms = 0;
    for (size_t i = 0; i < rec->n_pending_after; i++)
        free(rec->pending_after[i]);
    free(rec->pending_after);
    rec->pending_after = NULL;
    rec->n_pending_after = 0;
    schedule_t probe = {.rec = rec};
    int rc = 0;
    spec_t *spec = NULL;
    if (rec->cron && *rec->cron && cron_parse(rec->cron, &probe.cron, err, errlen) < 0)
        rc = -EINVAL;
    else if (cron_zone_check(rec->timezone, err, errlen) < 0)
        rc = -EINVAL;
    else if (compile(s, &probe, &spec, err, errlen) < 0)
        rc = -EINVAL;
    if (rc == 0) {
        util_pb_set_str(&rec->pipeline, spec->name);
        if (trigger_loop(s, rec, spec->name, err, errlen))
            rc = -EINVAL;
    }
    spec_destroy(&spec);
    cron_destroy(&probe.cron);
    if (rc < 0) {
        drover__schedule_record__free_unpacked(rec, NULL);
        return rc;
    }
    int64_t now = util_now_ms();
    if (old) { /* update: the spec and settings; its history stays */
        rec->created_ms = old->rec->created_ms;
        rec->last_fire_ms = old->rec->last_fire_ms;
        util_pb_set_str(&rec->last_run_id, old->rec->last_run_id);
        rec->skipped = old->rec->skipped;
        util_pb_set_str(&rec->last_skip, old->rec->last_skip);
        util_pb_set_str(&rec->owner, old->rec->owner);
        rec->paused = old->rec->paused;
        /* what it still owes: backfilled fires and runs waiting to trigger it */
        rec->queued_ms = old->rec->queued_ms;
        rec->n_queued_ms = old->rec->n_queued_ms;
        old->rec->queued_ms = NULL;
        old->rec->n_queued_ms = 0;
        rec->pending_after = old->rec->pending_after;
        rec->n_pending_after = old->rec->n_pending_after;
        old->rec->pending_after = NULL;
        old->rec->n_pending_after = 0;
    } else {
        rec->created_ms = now;
        rec->last_fire_ms = 0;
        util_pb_set_str(&rec->owner, owner);
    }
    schedule_t *sc = schedule_new(rec);
    if (old) {
        sc->active = old->active;
        unmark(s, old);
    }
    zhashx_update(s->schedules.by_name, rec->name, sc); /* frees old */
    mark(s, sc);
    log_info("schedule %s %s", rec->name, update ? "updated" : "created");
    return 0;
}

int schedules_delete(sched_t *s, const char *name)
{
    schedule_t *sc = schedules_find(s, name);
    if (!sc)
        return -ENOENT;
    unmark(s, sc);
    zhashx_delete(s->schedules.by_name, name); /* frees sc */
    s->schedules.deleted =
        xrealloc(s->schedules.deleted, (s->schedules.n_deleted + 1) * sizeof *s->schedules.deleted);
    s->schedules.deleted[s->schedules.n_deleted++] = xstrdup(name);
    s->journal.must_commit = true;
    log_info("schedule %s deleted", name);
    return 0;
}

int schedules_pause(sched_t *s, const char *name, bool paused)
{
    schedule_t *sc = schedules_find(s, name);
    if (!sc)
        return -ENOENT;
    if (sc->rec->paused == paused)
        return 0;
    sc->rec->paused = paused;
    sc->next_ms = 0;
    mark(s, sc);
    return 0;
}

run_t *schedules_trigger(sched_t *s, const char *name)
{
    schedule_t *sc = schedules_find(s, name);
    fire_t f = {.at_ms = util_now_ms()};
    return sc ? fire(s, sc, &f) : NULL;
}

/* Whether sc already has a successful run standing for at_ms. */
static bool interval_done(sched_t *s, const schedule_t *sc, int64_t at_ms)
{
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        const run_t *r = s->dag.runs[i];
        if (r->rec->scheduled_ms == at_ms && r->rec->schedule &&
            !strcmp(r->rec->schedule, sc->rec->name) &&
            r->rec->status == DROVER__RUN_STATUS__RUN_SUCCEEDED)
            return true;
    }
    return false;
}

int schedules_backfill(sched_t *s, const char *name, int64_t from_ms, int64_t to_ms, bool rerun,
                       size_t *queued, size_t *skipped, char *err, size_t errlen)
{
    schedule_t *sc = schedules_find(s, name);
    *queued = *skipped = 0;
    if (!sc) {
        snprintf(err, errlen, "no schedule named '%s'", name);
        return -ENOENT;
    }
    if (!has_cadence(sc)) {
        snprintf(err, errlen, "schedule '%s' has no cron or interval to backfill", name);
        return -EINVAL;
    }
    if (to_ms < from_ms) {
        snprintf(err, errlen, "--to is before --from");
        return -EINVAL;
    }
    cadence_t c = cadence_of(sc);
    int64_t t = from_ms / 1000 - 1, next;
    int64_t *add = NULL;
    size_t n = 0;
    while (cadence_next(&c, t, &next) == 0 && next * 1000 <= to_ms) {
        if (n == MAX_BACKFILL) {
            free(add);
            snprintf(err, errlen, "more than %d intervals between --from and --to", MAX_BACKFILL);
            return -E2BIG;
        }
        t = next;
        if (!rerun && interval_done(s, sc, next * 1000)) {
            (*skipped)++;
            continue;
        }
        add = xrealloc(add, (n + 1) * sizeof *add);
        add[n++] = next * 1000;
    }
    *queued = n;
    if (!n)
        return 0; /* every interval already succeeded */
    Drover__ScheduleRecord *r = sc->rec;
    r->queued_ms = xrealloc(r->queued_ms, (r->n_queued_ms + n) * sizeof *r->queued_ms);
    memcpy(r->queued_ms + r->n_queued_ms, add, n * sizeof *add);
    r->n_queued_ms += n;
    free(add);
    mark(s, sc);
    run_queued(s, sc);
    return 0;
}

void schedules_view(sched_t *s, const schedule_t *sc, Drover__ScheduleView *v)
{
    drover__schedule_view__init(v);
    v->schedule = (Drover__ScheduleRecord *)sc->rec; /* read: the spec is left out by the caller */
    v->active = sc->active;
    cadence_t c = cadence_of(sc);
    int64_t next;
    if (!sc->rec->paused && has_cadence(sc) &&
        cadence_next(&c,
                     sc->rec->last_fire_ms ? sc->rec->last_fire_ms / 1000
                                           : sc->rec->created_ms / 1000 - 1,
                     &next) == 0)
        v->next_fire_ms = next * 1000;
    const run_t *last = sc->rec->last_run_id && *sc->rec->last_run_id
                            ? dag_find_run(s, sc->rec->last_run_id)
                            : NULL;
    if (last) {
        v->has_last = true;
        v->last_status = last->rec->status;
    }
}

const schedule_t *schedules_each(sched_t *s, bool first)
{
    return first ? zhashx_first(s->schedules.by_name) : zhashx_next(s->schedules.by_name);
}
