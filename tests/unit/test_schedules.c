/* test_schedules — recurring runs in droverd (scheduler/schedules.c), on
 * an injected clock: the tick is called with chosen times, so no test
 * waits for a minute to pass.
 *
 * A fire makes a run that carries its logical time ({{run.scheduled_at}}
 * in the schedule's zone), catch-up after downtime (all, latest, none),
 * the concurrency policies (allow up to max-active, forbid with the skip
 * recorded, replace cancelling the going run), a droverd restart across
 * fire times (none lost, none doubled), backfill (ordered, bounded by
 * max-active, successful intervals left out unless rerun), runs that
 * trigger runs with the upstream's id and outputs, and what is refused at
 * creation (a bad cron or zone, a spec that does not compile, a loop of
 * triggers).
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <time.h>

TestSuite(schedules, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

static int64_t at(const char *utc)
{
    struct tm tm = {0};
    cr_assert_not_null(strptime(utc, "%Y-%m-%dT%H:%M:%SZ", &tm), "bad time %s", utc);
    return (int64_t)timegm(&tm) * 1000;
}

static const char *NIGHTLY = "name: nightly\n"
                             "steps:\n"
                             "  - name: train\n"
                             "    command: [echo, \"{{run.scheduled_at}}\", "
                             "\"{{run.interval_start}}\", \"{{schedule.name}}\"]\n"
                             "    outputs: {params: [score]}\n";

typedef struct {
    const char *cron, *tz, *after;
    uint64_t every_ms;
    Drover__Concurrency conc;
    Drover__Catchup catchup;
    uint32_t max_active;
    const char *spec;
    Drover__AfterOn on;
} opts_t;

/* Create schedule name with o; created at created_ms (the injected "now"). */
static Drover__ScheduleRecord *put(const char *name, const opts_t *o, int64_t created_ms)
{
    Drover__ScheduleRecord rec = DROVER__SCHEDULE_RECORD__INIT;
    char err[8192] = "";
    rec.name = (char *)name;
    rec.spec_file = "nightly.yaml";
    const char *spec = o->spec ? o->spec : NIGHTLY;
    rec.spec.data = (uint8_t *)spec;
    rec.spec.len = strlen(spec);
    rec.cron = (char *)(o->cron ? o->cron : "");
    rec.timezone = (char *)(o->tz ? o->tz : "");
    rec.every_ms = o->every_ms;
    rec.concurrency = o->conc;
    rec.catchup = o->catchup;
    rec.max_active = o->max_active;
    rec.after = (char *)(o->after ? o->after : "");
    rec.after_on = o->on;
    cr_assert_eq(schedules_put(s, &rec, false, "alice", err, sizeof err), 0, "%s", err);
    Drover__ScheduleView v;
    schedules_view(s, schedules_find(s, name), &v);
    v.schedule->created_ms = created_ms;
    return v.schedule;
}

static size_t runs_of(const char *name, run_t **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        run_t *r = s->dag.runs[i];
        if (r->rec->schedule && !strcmp(r->rec->schedule, name)) {
            if (n < max)
                out[n] = r;
            n++;
        }
    }
    return n;
}

static agent_t *agent(void)
{
    agent_t *a = fleet_find(&s->fleet, "a1");
    return a && a->connected ? a : h_register(s, "a1", 1000000, 1ull << 40, 0, NULL);
}

/* Run r's one step to its end with exit code (and output score). */
static void finish_run(run_t *r, int code)
{
    task_t *t = h_task(r, "train");
    agent();
    if (t->status == ST(READY))
        placer_place(s);
    Drover__KeyValue *kv = util_kv_new("score", "0.9");
    h_exit_params(s, t, code, &kv, code == 0);
    drover__key_value__free_unpacked(kv, NULL);
}

static const char *arg(run_t *r, size_t i)
{
    task_t *t = h_task(r, "train");
    cr_assert_eq(dag_prepare(s, t), 0);
    cr_assert_lt(i, t->argc);
    return t->argv[i];
}

Test(schedules, a_fire_makes_a_run_that_knows_its_logical_time)
{
    opts_t o = {.cron = "0 3 * * *", .tz = "Europe/Berlin"};
    put("nightly", &o, at("2026-12-07T10:00:00Z"));
    run_t *rs[4];
    schedules_tick(s, at("2026-12-08T01:59:59Z"));
    cr_assert_eq(runs_of("nightly", rs, 4), 0, "fired before 03:00 Berlin");
    schedules_tick(s, at("2026-12-08T02:00:00Z"));
    cr_assert_eq(runs_of("nightly", rs, 4), 1);
    cr_assert_str_eq(arg(rs[0], 1), "2026-12-08T03:00:00+01:00");
    cr_assert_str_eq(arg(rs[0], 2), "2026-12-07T03:00:00+01:00", "the interval's start");
    cr_assert_str_eq(arg(rs[0], 3), "nightly");
    cr_assert_str_eq(rs[0]->rec->owner, "alice");
    schedules_tick(s, at("2026-12-08T02:00:05Z"));
    cr_assert_eq(runs_of("nightly", rs, 4), 1, "fired twice");
}

Test(schedules, catch_up_all_runs_every_missed_fire_in_order_within_max_active)
{
    opts_t o = {.every_ms = 60000, .max_active = 3};
    Drover__ScheduleRecord *rec = put("every", &o, at("2026-12-07T10:00:10Z"));
    schedules_tick(s, at("2026-12-07T10:01:00Z"));
    cr_assert_eq(rec->last_fire_ms, at("2026-12-07T10:01:00Z"));
    /* droverd "down" until 10:06:30: 10:02 .. 10:06 were missed */
    run_t *rs[16];
    finish_run(s->dag.runs[0], 0);
    schedules_tick(s, at("2026-12-07T10:06:30Z"));
    size_t n = runs_of("every", rs, 16);
    cr_assert_eq(n, 4, "1 + 3 (max-active), got %zu", n);
    cr_assert_eq(rs[1]->rec->scheduled_ms, at("2026-12-07T10:02:00Z"));
    cr_assert_eq(rs[3]->rec->scheduled_ms, at("2026-12-07T10:04:00Z"));
    finish_run(rs[1], 0);
    finish_run(rs[2], 0);
    schedules_tick(s, at("2026-12-07T10:06:31Z"));
    n = runs_of("every", rs, 16);
    cr_assert_eq(n, 6);
    cr_assert_eq(rs[4]->rec->scheduled_ms, at("2026-12-07T10:05:00Z"));
    cr_assert_eq(rs[5]->rec->scheduled_ms, at("2026-12-07T10:06:00Z"));
}

Test(schedules, catch_up_latest_and_none)
{
    opts_t latest = {.every_ms = 60000, .catchup = DROVER__CATCHUP__CATCHUP_LATEST};
    opts_t none = {.every_ms = 60000, .catchup = DROVER__CATCHUP__CATCHUP_NONE};
    put("latest", &latest, at("2026-12-07T10:00:30Z"));
    put("none", &none, at("2026-12-07T10:00:30Z"));
    run_t *rs[8];
    schedules_tick(s, at("2026-12-07T10:05:40Z"));
    cr_assert_eq(runs_of("latest", rs, 8), 1);
    cr_assert_eq(rs[0]->rec->scheduled_ms, at("2026-12-07T10:05:00Z"));
    cr_assert_eq(runs_of("none", rs, 8), 0, "none runs no missed fire");
    schedules_tick(s, at("2026-12-07T10:06:01Z"));
    cr_assert_eq(runs_of("none", rs, 8), 1, "but the next on-time one");
    cr_assert_eq(rs[0]->rec->scheduled_ms, at("2026-12-07T10:06:00Z"));
}

Test(schedules, forbid_skips_and_records_replace_cancels)
{
    opts_t forbid = {.every_ms = 60000, .conc = DROVER__CONCURRENCY__CONCURRENCY_FORBID};
    opts_t replace = {.every_ms = 60000, .conc = DROVER__CONCURRENCY__CONCURRENCY_REPLACE};
    Drover__ScheduleRecord *f = put("forbid", &forbid, at("2026-12-07T10:00:30Z"));
    put("replace", &replace, at("2026-12-07T10:00:30Z"));
    run_t *rs[8];
    schedules_tick(s, at("2026-12-07T10:01:00Z"));
    schedules_tick(s, at("2026-12-07T10:02:00Z"));
    cr_assert_eq(runs_of("forbid", rs, 8), 1, "a fire while its run goes is skipped");
    cr_assert_eq(f->skipped, 1);
    cr_assert(strstr(f->last_skip, "concurrency forbid"), "%s", f->last_skip);
    cr_assert_eq(runs_of("replace", rs, 8), 2);
    cr_assert(rs[0]->cancelled, "the older run is cancelled");
    cr_assert(!rs[1]->cancelled);
    cr_assert_str_eq(rs[0]->rec->reason, "replaced by a newer run of its schedule");
}

Test(schedules, a_restart_across_fire_times_loses_none_and_doubles_none)
{
    opts_t o = {.every_ms = 60000, .max_active = 10};
    put("every", &o, at("2026-12-07T10:00:30Z"));
    schedules_tick(s, at("2026-12-07T10:02:10Z"));
    run_t *rs[16];
    cr_assert_eq(runs_of("every", rs, 16), 2);
    cr_assert_eq(commit_journal(s), 0);
    h_sched_restart();
    schedules_tick(s, at("2026-12-07T10:02:20Z"));
    cr_assert_eq(runs_of("every", rs, 16), 2, "fired again after the restart");
    schedules_tick(s, at("2026-12-07T10:04:05Z"));
    cr_assert_eq(runs_of("every", rs, 16), 4);
    cr_assert_eq(rs[2]->rec->scheduled_ms, at("2026-12-07T10:03:00Z"));
    cr_assert_eq(rs[3]->rec->scheduled_ms, at("2026-12-07T10:04:00Z"));
}

Test(schedules, backfill_is_ordered_bounded_and_skips_what_succeeded)
{
    opts_t o = {.cron = "0 0 * * *", .max_active = 2};
    put("daily", &o, at("2026-12-07T10:00:00Z"));
    char err[256];
    size_t queued, done;
    cr_assert_eq(schedules_backfill(s, "daily", at("2026-11-01T00:00:00Z"),
                                    at("2026-11-05T00:00:00Z"), false, &queued, &done, err,
                                    sizeof err),
                 0, "%s", err);
    cr_assert_eq(queued, 5);
    run_t *rs[16];
    cr_assert_eq(runs_of("daily", rs, 16), 2, "max-active 2");
    cr_assert_eq(rs[0]->rec->scheduled_ms, at("2026-11-01T00:00:00Z"));
    cr_assert_eq(rs[1]->rec->scheduled_ms, at("2026-11-02T00:00:00Z"));
    finish_run(rs[0], 0);
    finish_run(rs[1], 1);
    schedules_tick(s, at("2026-12-07T10:00:01Z"));
    cr_assert_eq(runs_of("daily", rs, 16), 4);
    cr_assert_eq(rs[2]->rec->scheduled_ms, at("2026-11-03T00:00:00Z"));
    /* again: 11-01 succeeded and is left out; 11-02 failed and runs again */
    finish_run(rs[2], 0);
    finish_run(rs[3], 0);
    schedules_tick(s, at("2026-12-07T10:00:02Z"));
    finish_run(s->dag.runs[s->dag.n_runs - 1], 0);
    cr_assert_eq(schedules_backfill(s, "daily", at("2026-11-01T00:00:00Z"),
                                    at("2026-11-02T00:00:00Z"), false, &queued, &done, err,
                                    sizeof err),
                 0);
    cr_assert_eq(queued, 1);
    cr_assert_eq(done, 1);
    cr_assert_eq(schedules_backfill(s, "daily", at("2026-11-01T00:00:00Z"),
                                    at("2026-11-01T00:00:00Z"), false, &queued, &done, err,
                                    sizeof err),
                 0);
    cr_assert_eq(queued, 0, "nothing to queue: every interval succeeded");
    cr_assert_eq(done, 1);
    cr_assert_eq(schedules_backfill(s, "daily", at("2023-01-01T00:00:00Z"),
                                    at("2026-01-01T00:00:00Z"), true, &queued, &done, err,
                                    sizeof err),
                 -E2BIG, "three years of days is more than a backfill's 1000 intervals");
    cr_assert(strstr(err, "more than 1000 intervals"), "%s", err);
}

Test(schedules, a_run_triggers_a_run_with_its_outputs)
{
    opts_t a = {.every_ms = 60000};
    opts_t b = {.after = "nightly",
                .on = DROVER__AFTER_ON__AFTER_SUCCEEDED,
                .spec = "name: evaluate\nsteps:\n  - name: train\n    command: [echo, "
                        "\"{{trigger.run_id}}\", \"{{trigger.outputs.train.score}}\"]\n"};
    put("train", &a, at("2026-12-07T10:00:30Z"));
    put("eval", &b, at("2026-12-07T10:00:30Z"));
    schedules_tick(s, at("2026-12-07T10:01:00Z"));
    run_t *rs[8];
    cr_assert_eq(runs_of("train", rs, 8), 1);
    run_t *up = rs[0];
    finish_run(up, 0);
    cr_assert_eq(runs_of("eval", rs, 8), 1, "the pipeline's success triggers eval");
    cr_assert_str_eq(rs[0]->rec->trigger_run_id, up->rec->id);
    cr_assert_str_eq(arg(rs[0], 1), up->rec->id);
    cr_assert_str_eq(arg(rs[0], 2), "0.9");
    /* a failure does not (on: succeeded) */
    schedules_tick(s, at("2026-12-07T10:02:00Z"));
    runs_of("train", rs, 8);
    finish_run(rs[1], 1);
    cr_assert_eq(runs_of("eval", rs, 8), 1);
}

Test(schedules, what_is_refused_at_creation)
{
    Drover__ScheduleRecord rec = DROVER__SCHEDULE_RECORD__INIT;
    char err[8192];
    rec.name = "bad";
    rec.spec_file = "x.yaml";
    rec.spec.data = (uint8_t *)NIGHTLY;
    rec.spec.len = strlen(NIGHTLY);
    rec.cron = "61 * * * *";
    cr_assert_eq(schedules_put(s, &rec, false, "alice", err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "field 1 (minute): 61"), "%s", err);
    rec.cron = "0 3 * * *";
    rec.timezone = "Mars/Olympus";
    cr_assert_eq(schedules_put(s, &rec, false, "alice", err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "unknown time zone 'Mars/Olympus'"), "%s", err);
    rec.timezone = "";
    rec.spec.data = (uint8_t *)"name: x\nsteps: 3\n";
    rec.spec.len = strlen("name: x\nsteps: 3\n");
    cr_assert_eq(schedules_put(s, &rec, false, "alice", err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "x.yaml:2:"), "spec errors name the file: %s", err);
    cr_assert_null(schedules_find(s, "bad"));
    /* a client does not say what droverd keeps: no fires queued, no cursor */
    int64_t forged[3] = {1, 2, 3};
    rec.name = "forged";
    rec.spec.data = (uint8_t *)NIGHTLY;
    rec.spec.len = strlen(NIGHTLY);
    rec.cron = "";
    rec.every_ms = 3600000;
    rec.queued_ms = forged;
    rec.n_queued_ms = 3;
    rec.last_fire_ms = INT64_MAX / 2;
    rec.owner = "root";
    cr_assert_eq(schedules_put(s, &rec, false, "mallory", err, sizeof err), 0, "%s", err);
    Drover__ScheduleView fv;
    schedules_view(s, schedules_find(s, "forged"), &fv);
    cr_assert_eq(fv.schedule->n_queued_ms, 0);
    cr_assert_eq(fv.schedule->last_fire_ms, 0);
    cr_assert_str_eq(fv.schedule->owner, "mallory");
    cr_assert_eq(s->dag.n_runs, 0);
    /* a loop of triggers: a after b, b after a */
    opts_t a = {.every_ms = 60000, .after = ""};
    put("a", &a, 1);
    opts_t b = {.after = "a"};
    put("b", &b, 1);
    Drover__ScheduleView v;
    schedules_view(s, schedules_find(s, "a"), &v);
    Drover__ScheduleRecord upd = *v.schedule;
    upd.after = "b";
    cr_assert_eq(schedules_put(s, &upd, true, "alice", err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "triggers would loop"), "%s", err);
}

/* One schedule request from a caller (name, role); the reply (caller frees). */
static Drover__ApiResponse *call_as(const char *name, api_role_t role, Drover__ScheduleRequest *sr)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    req.op_case = DROVER__API_REQUEST__OP_SCHEDULE;
    req.schedule = sr;
    api_caller_t who = {.role = role};
    snprintf(who.name, sizeof who.name, "%s", name);
    size_t len = drover__api_request__get_packed_size(&req);
    uint8_t *buf = xmalloc(len ? len : 1);
    drover__api_request__pack(&req, buf);
    api_handle_as(s, &who, zframe_new("cli-1", 5), buf, len);
    free(buf);
    api_reply_t *last = s->replies.head;
    cr_assert_not_null(last, "no reply queued");
    while (last->next)
        last = last->next;
    Drover__ApiResponse *resp = drover__api_response__unpack(NULL, last->len, last->data);
    cr_assert_not_null(resp);
    return resp;
}

Test(schedules, roles_decide_who_may_list_create_and_change)
{
    Drover__ScheduleRecord rec = DROVER__SCHEDULE_RECORD__INIT;
    Drover__ScheduleRequest sr = DROVER__SCHEDULE_REQUEST__INIT;
    rec.name = "n";
    rec.spec_file = "n.yaml";
    rec.spec.data = (uint8_t *)NIGHTLY;
    rec.spec.len = strlen(NIGHTLY);
    rec.every_ms = 3600000;
    sr.op = DROVER__SCHEDULE_REQUEST__OP__CREATE;
    sr.schedule = &rec;
    Drover__ApiResponse *r = call_as("reader", API_ROLE_READ, &sr);
    cr_assert_eq(r->error_code, DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED, "%s",
                 r->error);
    drover__api_response__free_unpacked(r, NULL);
    cr_assert_null(schedules_find(s, "n"));
    r = call_as("alice", API_ROLE_SUBMIT, &sr);
    cr_assert_str_empty(r->error, "%s", r->error);
    cr_assert_eq(r->n_schedules, 1);
    cr_assert_eq(r->schedules[0]->schedule->spec.len, 0, "a view carries no spec");
    drover__api_response__free_unpacked(r, NULL);
    /* bob (submit) may list, not change alice's */
    Drover__ScheduleRequest op = DROVER__SCHEDULE_REQUEST__INIT;
    op.op = DROVER__SCHEDULE_REQUEST__OP__LIST;
    r = call_as("bob", API_ROLE_READ, &op);
    cr_assert_eq(r->n_schedules, 1);
    drover__api_response__free_unpacked(r, NULL);
    op.op = DROVER__SCHEDULE_REQUEST__OP__DELETE;
    op.name = "n";
    r = call_as("bob", API_ROLE_SUBMIT, &op);
    cr_assert_eq(r->error_code, DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED, "%s",
                 r->error);
    cr_assert(strstr(r->error, "created by 'alice'"), "%s", r->error);
    drover__api_response__free_unpacked(r, NULL);
    op.op = DROVER__SCHEDULE_REQUEST__OP__TRIGGER;
    r = call_as("bob", API_ROLE_SUBMIT, &op);
    cr_assert_eq(r->error_code, DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED);
    drover__api_response__free_unpacked(r, NULL);
    cr_assert_eq(s->dag.n_runs, 0, "bob triggered a run");
    /* an admin may; a malformed name is refused before anything */
    op.op = DROVER__SCHEDULE_REQUEST__OP__PAUSE;
    op.name = "../etc";
    r = call_as("root", API_ROLE_ADMIN, &op);
    cr_assert_eq(r->error_code, DROVER__API_ERROR_CODE__API_ERROR_INVALID);
    drover__api_response__free_unpacked(r, NULL);
    op.name = "n";
    r = call_as("root", API_ROLE_ADMIN, &op);
    cr_assert_str_empty(r->error, "%s", r->error);
    cr_assert(r->schedules[0]->schedule->paused);
    drover__api_response__free_unpacked(r, NULL);
}

Test(schedules, droverd_keeps_at_most_max_schedules)
{
    s->cfg.max_schedules = 2;
    opts_t o = {.every_ms = 3600000};
    put("one", &o, 1);
    put("two", &o, 1);
    Drover__ScheduleRecord rec = DROVER__SCHEDULE_RECORD__INIT;
    char err[256];
    rec.name = "three";
    rec.spec_file = "n.yaml";
    rec.spec.data = (uint8_t *)NIGHTLY;
    rec.spec.len = strlen(NIGHTLY);
    rec.every_ms = 3600000;
    cr_assert_eq(schedules_put(s, &rec, false, "alice", err, sizeof err), -E2BIG);
    cr_assert(strstr(err, "--max-schedules"), "%s", err);
    cr_assert_null(schedules_find(s, "three"));
    rec.name = "two"; /* an update is no new schedule */
    cr_assert_eq(schedules_put(s, &rec, true, "alice", err, sizeof err), 0, "%s", err);
}
