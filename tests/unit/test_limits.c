/* test_limits — retry rules (retries.when, retries.max_duration),
 * skip_on_exit_code and the run limits (top-level parallelism, timeout):
 * the spec keys (accepted, refused at FILE:LINE:COL), the retry-context
 * references of the one {{ }} grammar, and droverd's decisions on a real
 * scheduler (sched_new on a temp state dir, driven through the agents
 * protocol and the model's functions, as test_dag does), including a
 * restart (sched_destroy commits; reopen the same dir).
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <errno.h>
#include <signal.h>

#include "expr.h"
#include "units.h"

/* ------------------------------------------------------------ the spec */

static spec_t *parse_ok(const char *yaml)
{
    char err[512] = "";
    spec_t *sp = NULL;
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &sp, err, sizeof err);
    cr_assert_eq(rc, 0, "spec_parse failed: %s", err);
    return sp;
}

/* Parsing yaml fails with a message starting "t.yaml:" + at and holding what. */
static void parse_err(const char *yaml, const char *at, const char *what)
{
    char err[512] = "";
    spec_t *sp = NULL;
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &sp, err, sizeof err);
    cr_assert_eq(rc, -EINVAL, "accepted: %s", yaml);
    cr_assert_null(sp);
    char *want = xasprintf("t.yaml:%s: ", at);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "error '%s' not at %s", err, at);
    cr_assert(strstr(err, what) != NULL, "error '%s' lacks '%s'", err, what);
    free(want);
}

Test(limits_spec, retry_rules_and_run_limits_parse)
{
    spec_t *sp = parse_ok("name: p\n"
                          "parallelism: 3\n"
                          "timeout: 2h\n"
                          "params: {code: '2'}\n"
                          "defaults:\n"
                          "  retries: {limit: 4, max_duration: 30m}\n"
                          "steps:\n"
                          "  - name: a\n"
                          "    command: [x]\n"
                          "    retries:\n"
                          "      limit: 5\n"
                          "      when: \"{{exit_code}} != {{params.code}} && {{ reason }} != "
                          "'OOMKilled'\"\n"
                          "    skip_on_exit_code: [99, 100]\n"
                          "  - name: b\n"
                          "    command: [x]\n"
                          "    skip_on_exit_code: 7\n");
    cr_assert_eq(sp->parallelism, 3);
    cr_assert_eq(sp->timeout_ms, 2 * 3600 * 1000ull);
    const Drover__StepSpec *a = sp->steps[0], *b = sp->steps[1];
    cr_assert_eq(a->retries->limit, 5);
    cr_assert_eq(a->retries->max_duration_ms, 30 * 60 * 1000ull, "inherited from defaults");
    cr_assert_str_eq(a->retries->when, "{{exit_code}} != 2 && {{ reason }} != 'OOMKilled'");
    cr_assert_eq(a->n_skip_on_exit_code, 2);
    cr_assert_eq(a->skip_on_exit_code[0], 99);
    cr_assert_eq(a->skip_on_exit_code[1], 100);
    cr_assert_eq(b->retries->limit, 4);
    cr_assert_str_eq(b->retries->when, "");
    cr_assert_eq(b->n_skip_on_exit_code, 1);
    cr_assert_eq(b->skip_on_exit_code[0], 7);
    /* droverd's copy keeps them (one schema) */
    Drover__StepSpec *dup = spec_step_dup(a);
    cr_assert_str_eq(dup->retries->when, a->retries->when);
    cr_assert_eq(dup->n_skip_on_exit_code, 2);
    drover__step_spec__free_unpacked(dup, NULL);
    spec_destroy(&sp);

    sp = parse_ok("name: p\nsteps:\n  - {name: a, command: [x]}\n");
    cr_assert_eq(sp->parallelism, 0, "no bound unless given");
    cr_assert_eq(sp->timeout_ms, 0);
    cr_assert_eq(sp->steps[0]->retries->max_duration_ms, 0);
    spec_destroy(&sp);
}

Test(limits_spec, bad_keys_are_refused_where_written)
{
    /* the retry-context references outside retries.when */
    parse_err("name: p\nsteps:\n  - name: a\n    command: [echo, \"{{exit_code}}\"]\n", "4:21",
              "{{exit_code}} is only known in retries.when");
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n    when: \"{{reason}} == x\"\n",
              "5:11", "only known in retries.when");
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n    env: {A: \"{{attempt}}\"}\n",
              "5:14", "only known in retries.when");
    /* other references, or bad syntax, inside retries.when */
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n"
              "    retries: {limit: 2, when: \"{{item}} == 1\"}\n",
              "5:31", "cannot be used in retries.when");
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n"
              "    retries: {limit: 2, when: \"{{exit_code}} ==\"}\n",
              "5:31", "bad retries.when expression");
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n"
              "    retries: {limit: 2, max_duration: soon}\n",
              "5:39", "retries.max_duration");
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n"
              "    retries: {limit: 2, wen: x}\n",
              "5:25", "unknown key 'wen' in retries");
    /* skip codes */
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n    skip_on_exit_code: [0]\n",
              "5:25", "skip_on_exit_code");
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n    skip_on_exit_code: 256\n",
              "5:24", "from 1 to 255");
    parse_err("name: p\nsteps:\n  - name: a\n    command: [x]\n    skip_on_exit_code: {a: 1}\n",
              "5:24", "'skip_on_exit_code' must be an exit code");
    /* run limits */
    parse_err("name: p\nparallelism: 0\nsteps:\n  - {name: a, command: [x]}\n", "2:14",
              "'parallelism' must be a whole number");
    parse_err("name: p\ntimeout: forever\nsteps:\n  - {name: a, command: [x]}\n", "2:10",
              "bad duration 'forever' for timeout");
    parse_err("name: p\ntimeout: 0s\nsteps:\n  - {name: a, command: [x]}\n", "2:10",
              "'timeout' must be more than 0");
}

Test(limits_spec, retry_references_parse_as_their_own_kind)
{
    const char *ok[] = {"exit_code", "reason", "signal", "attempt"};
    for (size_t i = 0; i < 4; i++) {
        expr_ref_t r = expr_ref_parse(ok[i], strlen(ok[i]));
        cr_assert_eq(r.kind, EXPR_REF_RETRY, "%s", ok[i]);
        cr_assert_eq(r.alen, strlen(ok[i]));
    }
    const char *bad[] = {"exit_codes", "exit", "reason.x", "attempts"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(expr_ref_parse(bad[i], strlen(bad[i])).kind, EXPR_REF_BAD, "%s", bad[i]);
}

Test(limits_spec, durations_format_as_they_parse)
{
    char b[64];
    uint64_t ms[] = {0, 1, 999, 1000, 90000, 7200000, 5400000, 3723004};
    const char *want[] = {"0s", "1ms", "999ms", "1s", "1m30s", "2h", "1h30m", "1h2m3s4ms"};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        units_format_duration(ms[i], b, sizeof b);
        cr_assert_str_eq(b, want[i]);
        uint64_t back;
        cr_assert_eq(spec_parse_duration(b, &back), 0, "%s", b);
        cr_assert_eq(back, ms[i], "%s", b);
    }
    units_format_duration(3723004, b, 5);
    cr_assert_eq(strlen(b), 4, "cut to the buffer: '%s'", b);
}

/* ------------------------------------------------------------ droverd */

TestSuite(limits, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

/* The agent reports t's attempt EXITED: code, signal, timed out, reason. */
static void exit_with(task_t *t, int code, int sig, bool timed_out, const char *reason)
{
    Drover__Report rep = DROVER__REPORT__INIT;
    Drover__AttemptRecord *a = dag_current_attempt(t);
    cr_assert_not_null(a);
    rep.attempt_id = a->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = code;
    rep.term_signal = sig;
    rep.timed_out = timed_out;
    if (reason)
        rep.reason = (char *)reason;
    dag_task_exited(s, t, &rep);
}

/* Place t, fail it with the given report, and say whether a retry is pending. */
static bool fails_and_retries(task_t *t, int code, int sig, bool timed_out, const char *reason)
{
    if (t->status == ST(FAILED) && t->retry_at_ms)
        dag_retry_due(s, INT64_MAX);
    placer_place(s);
    expect_status(t, ST(ASSIGNED));
    dag_task_started(s, t, 0);
    exit_with(t, code, sig, timed_out, reason);
    cr_assert_eq(t->status, ST(FAILED));
    return t->retry_at_ms != 0;
}

Test(limits, retries_follow_when_over_the_failed_attempt)
{
    run_t *r = h_submit(s, "name: p\n"
                           "steps:\n"
                           "  - name: a\n"
                           "    command: [x]\n"
                           "    retries: {limit: 9, backoff: 1s, when: \"{{exit_code}} != 2 && "
                           "{{reason}} != 'OOMKilled' && {{attempt}} < 5\"}\n"
                           "  - name: b\n"
                           "    command: [x]\n"
                           "    retries: {limit: 9, when: \"{{reason}} == Timeout || {{signal}} "
                           "== 15\"}\n"
                           "  - name: after\n"
                           "    needs: [a]\n"
                           "    command: [x]\n");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    task_t *a = h_task(r, "a"), *b = h_task(r, "b"), *after = h_task(r, "after");
    cr_assert(fails_and_retries(a, 1, 0, false, NULL), "exit 1 is retried");
    cr_assert(fails_and_retries(a, 0, SIGKILL, false, NULL), "a signal is retried");
    cr_assert_not(fails_and_retries(a, 137, 0, false, "OOMKilled: memory limit 1Mi exceeded"));
    cr_assert(dag_task_final(a));
    cr_assert_eq(a->retries_used, 2);
    cr_assert_str_eq(a->reason, "OOMKilled: memory limit 1Mi exceeded; not retried: retries.when "
                                "was false (exit_code=137, reason=OOMKilled, signal=0, "
                                "attempt=3)");
    expect_status(after, ST(SKIPPED));

    cr_assert(fails_and_retries(b, 0, 0, true, NULL), "a timeout is retried");
    cr_assert(fails_and_retries(b, 0, SIGTERM, false, NULL), "SIGTERM is retried");
    cr_assert_not(fails_and_retries(b, 3, 0, false, NULL), "exit 3 is not");
    cr_assert(strstr(b->reason, "exit code 3; not retried: retries.when was false (exit_code=3, "
                                "reason=Error, signal=0, attempt=3)"),
              "%s", b->reason);
    cr_assert_eq(r->rec->status, RS(FAILED));
}

Test(limits, max_duration_counts_from_the_first_start)
{
    run_t *r = h_submit(s, "name: p\n"
                           "steps:\n"
                           "  - name: a\n"
                           "    command: [x]\n"
                           "    retries: {limit: 9, backoff: 1s, factor: 1, max_duration: 1m}\n");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    task_t *a = h_task(r, "a");
    cr_assert(fails_and_retries(a, 1, 0, false, NULL));
    cr_assert(fails_and_retries(a, 1, 0, false, NULL));
    /* the first attempt started 59.5 s ago: a retry after a 1 s backoff
     * would start past the minute */
    a->attempts[0]->started_ms -= 59500;
    cr_assert_not(fails_and_retries(a, 1, 0, false, NULL));
    cr_assert(strstr(a->reason, "not retried: retries.max_duration 60s passed"), "%s", a->reason);
    cr_assert_eq(a->n_attempts, 3);
}

Test(limits, preemptions_and_system_errors_are_outside_the_rules)
{
    run_t *r = h_submit(s, "name: p\n"
                           "steps:\n"
                           "  - name: a\n"
                           "    command: [x]\n"
                           "    retries: {limit: 1, when: \"{{exit_code}} == 1\"}\n");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    h_register(s, "a2", 64000, 64ull << 30, 0, NULL);
    task_t *a = h_task(r, "a");
    placer_place(s);
    Drover__Report rep = DROVER__REPORT__INIT;
    rep.attempt_id = dag_current_attempt(a)->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = 5;
    rep.system_error = true;
    rep.reason = "disk full";
    dag_task_exited(s, a, &rep);
    expect_status(a, ST(READY)); /* not the step's failure: when is not asked */
    placer_place(s);
    exit_with(a, 0, 0, false, NULL);
    expect_status(a, ST(SUCCEEDED));
}

Test(limits, skip_on_exit_code_skips_the_step_and_its_dependants)
{
    run_t *r = h_submit(s, "name: p\n"
                           "steps:\n"
                           "  - {name: a, command: [x], skip_on_exit_code: [99], retries: 3}\n"
                           "  - {name: b, needs: [a], command: [x]}\n"
                           "  - {name: c, command: [x], skip_on_exit_code: 99}\n"
                           "  - name: f\n"
                           "    for_each: ['1', '2']\n"
                           "    command: [x, '{{item}}']\n"
                           "    skip_on_exit_code: 3\n");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s);
    task_t *a = h_task(r, "a"), *b = h_task(r, "b"), *c = h_task(r, "c");
    exit_with(a, 99, 0, false, NULL);
    expect_status(a, ST(SKIPPED));
    cr_assert_str_eq(a->reason, "exit code 99 (skip_on_exit_code)");
    cr_assert_eq(a->attempts[0]->status, ST(SKIPPED));
    cr_assert_eq(a->retries_used, 0, "a skip code is not a failure to retry");
    expect_status(b, ST(SKIPPED));
    cr_assert(strstr(b->reason, "'a' skipped"), "%s", b->reason);
    /* killed by a signal, or timed out, with the same number: a failure */
    exit_with(c, 99, 0, true, NULL);
    expect_status(c, ST(FAILED));
    task_t *f0 = h_task(r, "f[0]"), *f1 = h_task(r, "f[1]");
    exit_with(f0, 3, 0, false, NULL);
    exit_with(f1, 0, 0, false, NULL);
    expect_status(f0, ST(SKIPPED));
    expect_status(f1, ST(SUCCEEDED));
}

Test(limits, run_parallelism_bounds_assigned_and_running_tasks)
{
    run_t *r = h_submit(s, "name: p\n"
                           "parallelism: 2\n"
                           "steps:\n"
                           "  - name: f\n"
                           "    for_each: ['1', '2', '3', '4', '5']\n"
                           "    command: [x, '{{item}}']\n"
                           "  - {name: solo, command: [x]}\n");
    run_t *other = h_submit(s, "name: q\nsteps:\n  - {name: x, command: [x]}\n");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s);
    cr_assert_eq(r->active, 2);
    cr_assert_eq(other->active, 1, "another run is not held back");
    size_t bound = 0;
    for (size_t i = 0; i < r->n_tasks; i++)
        bound += r->tasks[i]->agent != NULL;
    cr_assert_eq(bound, 2);
    size_t held = 0;
    for (size_t i = 0; i < r->n_tasks; i++) {
        task_t *t = r->tasks[i];
        if (t->status == ST(READY)) {
            cr_assert(t->held, "READY task %s beyond the bound is held", t->name);
            held++;
        }
    }
    cr_assert_eq(held, 4, "the others wait READY");
    cr_assert_eq(s->dag.n_ready, 0, "held tasks are not in the ready queue");
    cr_assert_eq(s->dag.n_holding, 1);

    /* a restart rebuilds the counter from the bound tasks */
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL); /* holds nothing: both lost */
    placer_place(s);
    cr_assert_eq(r->active, 2);
    int done = 0;
    for (int round = 0; round < 10 && r->rec->status == RS(RUNNING); round++) {
        for (size_t i = 0; i < r->n_tasks; i++) {
            task_t *t = r->tasks[i];
            if (t->agent) {
                exit_with(t, 0, 0, false, NULL);
                done++;
            }
        }
        placer_place(s);
        cr_assert_leq(r->active, 2);
    }
    cr_assert_eq(done, 6);
    cr_assert_eq(r->rec->status, RS(SUCCEEDED));
    cr_assert_eq(r->active, 0);
}

Test(limits, a_run_at_its_bound_does_not_block_later_runs)
{
    /* 3000 READY items of a run at parallelism 1 ahead of another run's
     * task: the placer holds them (once each), not walks them every pass */
    run_t *big = h_submit(s, "name: big\nparallelism: 1\nsteps:\n  - name: f\n"
                             "    for_each: {range: 3000}\n    command: [x, '{{item}}']\n");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s); /* the fan-out's items become READY */
    placer_place(s);
    run_t *later = h_submit(s, "name: later\nsteps:\n  - {name: x, command: [x]}\n");
    placer_place(s);
    cr_assert_eq(big->active, 1);
    expect_status(h_task(later, "x"), ST(ASSIGNED));
    cr_assert_eq(s->dag.n_ready, 0);
    /* one ends: the next item goes, in order, and only one */
    task_t *first = NULL;
    for (size_t i = 0; i < big->n_tasks && !first; i++)
        if (big->tasks[i]->agent)
            first = big->tasks[i];
    cr_assert_not_null(first);
    uint32_t item = first->item;
    exit_with(first, 0, 0, false, NULL);
    placer_place(s);
    cr_assert_eq(big->active, 1);
    task_t *second = NULL;
    for (size_t i = 0; i < big->n_tasks && !second; i++)
        if (big->tasks[i]->agent)
            second = big->tasks[i];
    cr_assert_eq(second->item, item + 1);
    /* a cancel takes held tasks off their list */
    dag_cancel_run(s, big);
    cr_assert_eq(s->dag.n_holding, 0);
    cr_assert_null(big->held_head);
}

static const char *TIMED = "name: p\n"
                           "timeout: 90s\n"
                           "steps:\n"
                           "  - {name: long, command: [x]}\n"
                           "  - {name: next, needs: [long], command: [x]}\n"
                           "finally:\n"
                           "  - {name: fin, command: [x]}\n";

static void expect_stopped(run_t *r)
{
    task_t *lg = h_task(r, "long"), *nx = h_task(r, "next"), *fin = h_task(r, "fin");
    expect_status(lg, ST(CANCELLED));
    expect_status(nx, ST(CANCELLED));
    cr_assert_str_eq(lg->reason, "run timeout 1m30s");
    cr_assert_str_eq(r->rec->reason, "run timeout 1m30s");
    expect_status(fin, ST(READY)); /* the exit handler still runs */
    cr_assert_eq(r->rec->status, RS(RUNNING));
    placer_place(s);
    exit_with(fin, 0, 0, false, NULL);
    cr_assert_eq(r->rec->status, RS(FAILED), "a stopped run ends FAILED");
}

Test(limits, run_timeout_stops_the_run)
{
    run_t *r = h_submit(s, TIMED);
    agent_t *ag = h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s);
    task_t *lg = h_task(r, "long");
    uint64_t id = dag_current_attempt(lg)->id;
    ag->out.n_kills = 0;
    limits_tick(s, r->rec->created_ms + 89999);
    expect_status(lg, ST(ASSIGNED));
    limits_tick(s, r->rec->created_ms + 90000);
    cr_assert_eq(ag->out.n_kills, 1, "the running attempt is killed");
    cr_assert_eq(ag->out.kills[0], id);
    expect_stopped(r);
    cr_assert_eq(s->dag.n_timed, 0);
}

/* A fan-out stopped by the run's timeout is CANCELLED with its items, not
 * SUCCEEDED once its last item ends (found by argo-timeouts-workflow). */
Test(limits, run_timeout_cancels_a_fan_out_with_its_items)
{
    run_t *r = h_submit(s, "name: p\n"
                           "timeout: 2s\n"
                           "steps:\n"
                           "  - {name: fan, for_each: ['1', '2'], command: [x, '{{item}}']}\n");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s);
    limits_tick(s, r->rec->created_ms + 2000);
    task_t *g = h_task(r, "fan");
    expect_status(h_task(r, "fan[0]"), ST(CANCELLED));
    expect_status(g, ST(CANCELLED));
    cr_assert_str_eq(g->reason, "run timeout 2s");
    cr_assert_eq(r->rec->status, RS(FAILED));
}

Test(limits, run_timeout_passed_while_droverd_was_down)
{
    run_t *r = h_submit(s, TIMED);
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s);
    r->rec->created_ms -= 100000; /* as if droverd had been down past the deadline */
    journal_mark_run(&s->journal, r);
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    /* stopped at load, before anything could be placed */
    cr_assert_str_eq(r->rec->reason, "run timeout 1m30s");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    expect_stopped(r);

    /* and a stopped run stays FAILED across another restart */
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_eq(r->rec->status, RS(FAILED));
    cr_assert_str_eq(r->rec->reason, "run timeout 1m30s");
}

Test(limits, run_timeout_deadline_survives_a_restart)
{
    h_submit(s, TIMED);
    h_sched_restart();
    cr_assert_eq(s->dag.n_timed, 1, "the deadline is tracked again at load");
    run_t *r = dag_find_run(s, "r000001");
    cr_assert_eq(r->rec->timeout_ms, 90000);
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s);
    limits_tick(s, r->rec->created_ms + 90000);
    expect_stopped(r);
}

Test(limits, run_timeout_spares_the_exit_handlers)
{
    run_t *r = h_submit(s, TIMED);
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    placer_place(s);
    exit_with(h_task(r, "long"), 0, 0, false, NULL);
    placer_place(s);
    exit_with(h_task(r, "next"), 0, 0, false, NULL);
    placer_place(s);
    task_t *fin = h_task(r, "fin");
    expect_status(fin, ST(ASSIGNED));
    limits_tick(s, r->rec->created_ms + 90000);
    expect_status(fin, ST(ASSIGNED));
    cr_assert_str_eq(r->rec->reason, "");
    cr_assert_eq(s->dag.n_timed, 0);
    exit_with(fin, 0, 0, false, NULL);
    cr_assert_eq(r->rec->status, RS(SUCCEEDED));
}
