/* api_schedules — the schedule requests of the API (`drover schedule ...`,
 * `drover schedules`): decoded and role-checked by api.c, which calls
 * api_schedule and frees what it put in the response with
 * api_schedule_done. Listing needs role read; everything else role
 * submit, and a schedule created by another key needs admin.
 */
#include "sched_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_SCHEDULE_NAME 63
#define MAX_IMPORTS       100

api_role_t api_schedule_role(const Drover__ScheduleRequest *req)
{
    return req && req->op == DROVER__SCHEDULE_REQUEST__OP__LIST ? API_ROLE_READ : API_ROLE_SUBMIT;
}

static bool valid_schedule_name(const char *n)
{
    size_t len = n ? strlen(n) : 0;
    if (len == 0 || len > MAX_SCHEDULE_NAME)
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return false;
    return true;
}

/* The request's shape: a name, and for create/update a cadence. NULL or why. */
static const char *malformed(const Drover__ScheduleRequest *req)
{
    const Drover__ScheduleRecord *sc = req->schedule;
    bool put = req->op == DROVER__SCHEDULE_REQUEST__OP__CREATE ||
               req->op == DROVER__SCHEDULE_REQUEST__OP__UPDATE;
    if (req->op == DROVER__SCHEDULE_REQUEST__OP__LIST)
        return NULL;
    const char *name = put ? (sc ? sc->name : NULL) : req->name;
    if (!valid_schedule_name(name))
        return "a schedule name is 1-63 of [A-Za-z0-9_.-]";
    if (!put)
        return NULL;
    bool cron = sc->cron && *sc->cron, every = sc->every_ms > 0, after = sc->after && *sc->after;
    if (cron && every)
        return "give --cron or --every, not both";
    if (!cron && !every && !after)
        return "a schedule needs --cron, --every or --after";
    if (every && sc->every_ms < 1000)
        return "--every must be at least 1s";
    if ((sc->timezone && *sc->timezone) && !cron)
        return "--timezone goes with --cron";
    if (sc->end_ms && sc->end_ms < sc->start_ms)
        return "--end is before --start";
    if (sc->max_active > 1000)
        return "--max-active is at most 1000";
    if (sc->n_imports > MAX_IMPORTS)
        return "too many imported files";
    if (!sc->spec.len)
        return "no spec";
    return NULL;
}

static Drover__ApiErrorCode code_of(int rc)
{
    return rc == -ENOENT   ? DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND
           : rc == -EEXIST ? DROVER__API_ERROR_CODE__API_ERROR_CONFLICT
                           : DROVER__API_ERROR_CODE__API_ERROR_INVALID;
}

void api_schedule(sched_t *s, const api_caller_t *caller, const Drover__ScheduleRequest *req,
                  Drover__ApiResponse *resp, char **err)
{
    char why[8192] = "";
    const char *bad = malformed(req);
    int rc = 0;
    if (bad) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID, "%s", bad);
        return;
    }
    const char *name = req->schedule && (req->op == DROVER__SCHEDULE_REQUEST__OP__CREATE ||
                                         req->op == DROVER__SCHEDULE_REQUEST__OP__UPDATE)
                           ? req->schedule->name
                           : req->name;
    schedule_t *sc = req->op == DROVER__SCHEDULE_REQUEST__OP__LIST ? NULL : schedules_find(s, name);
    if (sc && caller->role < API_ROLE_ADMIN) {
        Drover__ScheduleView v;
        schedules_view(s, sc, &v);
        if (v.schedule->owner && strcmp(v.schedule->owner, caller->name) != 0) {
            api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED,
                          "permission denied: schedule %s was created by '%s'; role submit may "
                          "change only its own",
                          name, v.schedule->owner);
            return;
        }
    }
    switch (req->op) {
    case DROVER__SCHEDULE_REQUEST__OP__CREATE:
    case DROVER__SCHEDULE_REQUEST__OP__UPDATE:
        rc = schedules_put(s, req->schedule, req->op == DROVER__SCHEDULE_REQUEST__OP__UPDATE,
                           caller->name, why, sizeof why);
        if (rc < 0) {
            api_set_error(resp, err, code_of(rc), "%s", why);
            return;
        }
        break;
    case DROVER__SCHEDULE_REQUEST__OP__PAUSE:
    case DROVER__SCHEDULE_REQUEST__OP__RESUME:
        rc = schedules_pause(s, name, req->op == DROVER__SCHEDULE_REQUEST__OP__PAUSE);
        break;
    case DROVER__SCHEDULE_REQUEST__OP__DELETE:
        rc = schedules_delete(s, name);
        break;
    case DROVER__SCHEDULE_REQUEST__OP__TRIGGER: {
        if (!sc) {
            rc = -ENOENT;
            break;
        }
        run_t *r = schedules_trigger(s, name);
        if (!r) {
            Drover__ScheduleView v;
            schedules_view(s, sc, &v);
            api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                          "schedule %s: its spec no longer compiles: %s", name,
                          v.schedule->last_error);
            return;
        }
        resp->run_ids = xcalloc(1, sizeof *resp->run_ids);
        resp->run_ids[resp->n_run_ids++] = xstrdup(r->rec->id);
        break;
    }
    case DROVER__SCHEDULE_REQUEST__OP__BACKFILL: {
        size_t queued, skipped;
        rc = schedules_backfill(s, name, req->from_ms, req->to_ms, req->rerun, &queued, &skipped,
                                why, sizeof why);
        if (rc < 0) {
            api_set_error(resp, err, code_of(rc), "%s", why);
            return;
        }
        resp->backfill_queued = (uint32_t)queued;
        resp->backfill_done = (uint32_t)skipped;
        break;
    }
    case DROVER__SCHEDULE_REQUEST__OP__LIST:
    default:
        break;
    }
    if (rc == -ENOENT) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                      "no schedule named '%s'", name);
        return;
    }
    /* every request answers with the schedules it concerns (list: all) */
    size_t n = 0;
    for (const schedule_t *x = schedules_each(s, true); x; x = schedules_each(s, false))
        n++;
    resp->schedules = xcalloc(n + 1, sizeof *resp->schedules);
    for (const schedule_t *x = schedules_each(s, true); x; x = schedules_each(s, false)) {
        Drover__ScheduleView *v = xmalloc(sizeof *v);
        schedules_view(s, x, v);
        if (req->op != DROVER__SCHEDULE_REQUEST__OP__LIST && strcmp(v->schedule->name, name)) {
            free(v);
            continue;
        }
        /* the view shows the record without its spec (the record is the
         * schedule's own: a shallow copy with the big fields cleared) */
        Drover__ScheduleRecord *shown = xmalloc(sizeof *shown);
        *shown = *v->schedule;
        shown->spec.len = 0;
        shown->spec.data = NULL;
        shown->n_imports = 0;
        shown->imports = NULL;
        v->schedule = shown;
        resp->schedules[resp->n_schedules++] = v;
    }
}

void api_schedule_done(Drover__ApiResponse *resp)
{
    for (size_t i = 0; i < resp->n_schedules; i++) {
        free(resp->schedules[i]->schedule);
        free(resp->schedules[i]);
    }
    free(resp->schedules);
    for (size_t i = 0; i < resp->n_run_ids; i++)
        free(resp->run_ids[i]);
    free(resp->run_ids);
}
