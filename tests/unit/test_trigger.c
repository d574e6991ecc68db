/* test_trigger — trigger rules, depends expressions and continue_on
 * (common/trigger.c, common/spec_trigger.c, readiness in scheduler/dag.c).
 *
 * The rules are checked against Airflow's trigger_rule_dep for every mix
 * of succeeded / failed / skipped / cancelled / not-yet-ended needs; the
 * spec errors for their FILE:LINE:COL; and readiness on a real droverd
 * (sched_new on a temp state dir, the loop never run): early READY,
 * skips with reasons naming the rule, upstream_failed counting as failed,
 * tolerated failures, Argo's depends, and the same decisions after a
 * restart between a failure and its dependant's decision.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <errno.h>

#include "trigger.h"

TestSuite(trigger, .timeout = 60);
TestSuite(trigger_dag, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

#define TR(x) DROVER__TRIGGER_RULE__TRIGGER_RULE_##x

/* ------------------------------------------------------------ rules */

typedef struct {
    uint32_t ok, failed, skipped, cancelled, pending;
    trigger_verdict_t want;
    bool by_failure;
} rule_case_t;

static void check_rule(const char *name, const rule_case_t *cases, size_t n)
{
    Drover__TriggerRule rule;
    cr_assert(trigger_rule_parse(name, strlen(name), &rule), "rule %s unknown", name);
    cr_assert_str_eq(trigger_rule_name(rule), name);
    for (size_t i = 0; i < n; i++) {
        const rule_case_t *k = &cases[i];
        trigger_counts_t c = {.ok = k->ok, .failed = k->failed, .skipped = k->skipped};
        c.ended = k->ok + k->failed + k->skipped + k->cancelled;
        c.total = c.ended + k->pending;
        bool by_failure = !k->by_failure;
        trigger_verdict_t v = trigger_rule_decide(rule, &c, &by_failure);
        cr_assert_eq(v, k->want, "%s with ok=%u failed=%u skipped=%u cancelled=%u pending=%u: %d",
                     name, k->ok, k->failed, k->skipped, k->cancelled, k->pending, v);
        cr_assert_eq(by_failure, k->by_failure, "%s case %zu: by_failure %d", name, i, by_failure);
    }
}

#define U TRIGGER_UNDECIDED
#define H TRIGGER_HOLDS
#define B TRIGGER_BROKEN
#define CHECK(name, ...)                                                                           \
    do {                                                                                           \
        const rule_case_t cs[] = {__VA_ARGS__};                                                    \
        check_rule(name, cs, sizeof cs / sizeof cs[0]);                                            \
    } while (0)

Test(trigger, airflow_rules_over_every_outcome_mix)
{
    /* ok failed skipped cancelled pending -> verdict, broken by a failure */
    CHECK("all_success", {2, 0, 0, 0, 0, H, false}, {1, 0, 0, 0, 1, U, false},
          {1, 1, 0, 0, 1, B, true}, {1, 0, 1, 0, 1, B, false}, {1, 0, 0, 1, 0, B, false},
          {0, 1, 1, 0, 0, B, true});
    CHECK("all_done", {1, 1, 1, 1, 0, H, false}, {1, 1, 1, 0, 1, U, false},
          {0, 0, 3, 0, 0, H, false});
    CHECK("all_failed", {0, 2, 0, 0, 0, H, false}, {0, 1, 0, 0, 1, U, false},
          {1, 1, 0, 0, 0, B, false}, {0, 1, 1, 0, 0, B, false}, {0, 1, 0, 0, 0, H, false});
    /* decided early: at the first success, or once all ended */
    CHECK("one_success", {1, 0, 0, 0, 3, H, false}, {0, 1, 1, 0, 1, U, false},
          {0, 1, 1, 0, 0, B, true}, {0, 0, 2, 0, 0, B, false}, {0, 0, 0, 1, 0, B, true});
    CHECK("one_failed", {0, 1, 0, 0, 3, H, false}, {2, 0, 0, 0, 1, U, false},
          {2, 0, 1, 0, 0, B, false});
    CHECK("none_failed", {1, 0, 1, 0, 0, H, false}, {0, 0, 2, 0, 0, H, false},
          {1, 0, 0, 0, 1, U, false}, {0, 1, 0, 0, 2, B, true}, {1, 0, 0, 1, 0, B, false});
    CHECK("none_failed_min_one_success", {1, 0, 2, 0, 0, H, false}, {0, 0, 2, 0, 0, B, false},
          {0, 0, 1, 0, 1, U, false}, {1, 1, 0, 0, 1, B, true}, {2, 0, 0, 0, 0, H, false});
    CHECK("none_skipped", {1, 1, 0, 0, 0, H, false}, {1, 0, 0, 0, 1, U, false},
          {1, 0, 1, 0, 1, B, false});
    /* no needs: nothing to wait for */
    trigger_counts_t none = {0};
    cr_assert_eq(trigger_rule_decide(TR(ONE_FAILED), &none, NULL), H);
    Drover__TriggerRule r;
    cr_assert_not(trigger_rule_parse("any_success", 11, &r));
}

/* ------------------------------------------------------------ depends */

typedef struct {
    const char *name;
    int outcome;
} named_t;

static const named_t OUTCOMES[] = {
    {"train", TRIG_SUCCEEDED},
    {"fallback", TRIG_FAILED},
    {"probe", TRIG_SKIPPED},
    {"old", TRIG_CACHED},
    {"gone", TRIG_CANCELLED},
    {"a.b-c", TRIG_SUCCEEDED},
    {"soft", TRIG_FAILED | TRIG_TOLERATED},
    {"omitted", TRIG_SKIPPED | TRIG_UPSTREAM_FAILED},
};

static int lookup(const char *name, size_t len, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof OUTCOMES / sizeof OUTCOMES[0]; i++)
        if (strlen(OUTCOMES[i].name) == len && !memcmp(OUTCOMES[i].name, name, len))
            return OUTCOMES[i].outcome;
    return TRIG_PENDING;
}

static bool eval(const char *text)
{
    bool v = false;
    char err[256];
    cr_assert_eq(trigger_depends_eval(text, lookup, NULL, &v, err, sizeof err), 0, "%s: %s", text,
                 err);
    return v;
}

Test(trigger, depends_expressions_read_each_outcome)
{
    cr_assert(eval("train.succeeded || (fallback.failed && !probe.skipped)"));
    cr_assert_not(eval("!train.succeeded || (fallback.failed && !probe.skipped)"));
    cr_assert(eval("fallback.failed && probe.skipped && probe.done && old.cached"));
    cr_assert(eval("old.succeeded"), "cached counts as succeeded");
    cr_assert_not(eval("train.cached"));
    cr_assert(eval("gone.cancelled && gone.done && !gone.succeeded"));
    cr_assert(eval("a.b-c.succeeded && a.b-c"), "names with dots and dashes");
    cr_assert(eval("train.Succeeded && fallback.Failed"), "Argo's capitalised suffixes");
    /* bare names: succeeded or skipped, or a tolerated failure (Argo) */
    cr_assert(eval("train && probe && soft"));
    cr_assert_not(eval("fallback"));
    cr_assert(eval("soft.failed"));
    cr_assert_not(eval("omitted"), "skipped by a failure upstream: Argo's omitted");
    cr_assert(eval("omitted.skipped && !omitted.failed"));
    cr_assert(eval("a.b-c.succeeded || fallback.succeeded && train.failed"),
              "&& binds tighter than ||");
}

Test(trigger, depends_syntax_errors_name_the_column)
{
    char err[256];
    const struct {
        const char *text, *want;
    } bad[] = {
        {"", "col 1: expression ends"},
        {"a.succeeded &&", "col 15: expression ends"},
        {"(a.succeeded", "col 13: expected ')'"},
        {"a.succeeded b.failed", "col 13: unexpected 'b'"},
        {"a.succeeded & b", "col 13: unexpected '&'"},
        {"{{steps.a.status}}", "col 1: unexpected '{'"},
        {".failed", "col 1: a step name is missing"},
        {"a.failed \x01", "col 10: unexpected '\\x01'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(trigger_depends_check(bad[i].text, NULL, NULL, err, sizeof err), -EINVAL,
                     "%s accepted", bad[i].text);
        cr_assert(strstr(err, bad[i].want), "'%s': got '%s', want '%s'", bad[i].text, err,
                  bad[i].want);
    }
    char deep[300];
    memset(deep, '(', 200);
    strcpy(deep + 200, "a");
    cr_assert_eq(trigger_depends_check(deep, NULL, NULL, err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "nested too deeply"), "%s", err);
}

/* ------------------------------------------------------------ spec */

static const char *spec_err(const char *yaml)
{
    static char err[512];
    spec_t *sp = NULL;
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &sp, err, sizeof err);
    cr_assert_eq(rc, -EINVAL, "accepted:\n%s", yaml);
    cr_assert_null(sp);
    return err;
}

static void expect_err(const char *yaml, const char *want)
{
    const char *e = spec_err(yaml);
    cr_assert(strstr(e, want), "got '%s', want '%s'", e, want);
}

#define TWO "name: p\nsteps:\n  - name: a\n    command: [true]\n  - name: b\n    command: [true]\n"

Test(trigger, spec_errors_have_file_line_col)
{
    expect_err(TWO "  - name: c\n    needs: [a]\n    trigger: any_success\n    command: [true]\n",
               "t.yaml:9:14: unknown trigger 'any_success' in step 'c' (one of: all_success");
    expect_err(TWO
               "  - name: c\n    depends: \"a.succeeded || nope.failed\"\n    command: [true]\n",
               "t.yaml:8:30: step 'c' depends on unknown step 'nope'");
    expect_err(TWO "  - name: c\n    depends: a.succeeded || nope.failed\n    command: [true]\n",
               "t.yaml:8:29: step 'c' depends on unknown step 'nope'");
    expect_err(TWO "  - name: c\n    needs: [a]\n    trigger: all_done\n    depends: a.failed\n"
                   "    command: [true]\n",
               "t.yaml:10:5: step 'c' has both 'trigger' and 'depends'");
    expect_err(TWO "  - name: c\n    depends: \"a.succeeded ||\"\n    command: [true]\n",
               "t.yaml:8:14: bad depends expression: col 15: expression ends");
    expect_err(TWO "  - name: c\n    depends: a.worked\n    command: [true]\n",
               "depends on unknown step 'a.worked'");
    expect_err(TWO "  - name: c\n    trigger: all_done\n    command: [true]\n",
               "t.yaml:8:14: step 'c' has a trigger but no needs");
    expect_err(TWO "  - name: c\n    needs: [a]\n    continue_on: error\n    command: [true]\n",
               "t.yaml:9:18: continue_on must be 'failed'");
    /* a step in depends that is downstream of it: the cycle, at the depends */
    expect_err("name: p\nsteps:\n  - name: a\n    depends: b.failed\n    command: [true]\n"
               "  - name: b\n    needs: [a]\n    command: [true]\n",
               "t.yaml:7:13: cycle: a -> b -> a");
    expect_err(TWO "finally:\n  - name: f\n    depends: a.failed\n    command: [true]\n",
               "finally step 'f' cannot depend on main step 'a'");
    expect_err(
        "name: p\ndefaults:\n  trigger: all_done\nsteps:\n  - name: a\n    command: [true]\n",
        "t.yaml:3:3: 'trigger' cannot be set under defaults");
}

Test(trigger, depends_implies_needs)
{
    spec_t *sp = NULL;
    char err[512];
    const char *y =
        TWO "  - name: c\n    needs: [a]\n    depends: \"a.failed || (b && !a.skipped)\"\n"
            "    continue_on: failed\n    command: [true]\n";
    cr_assert_eq(spec_parse("t.yaml", y, strlen(y), NULL, 0, &sp, err, sizeof err), 0, "%s", err);
    const Drover__StepSpec *c = sp->steps[2];
    cr_assert_eq(c->n_needs, 2, "a once, b added");
    cr_assert_eq(c->needs[0], 0);
    cr_assert_eq(c->needs[1], 1);
    cr_assert_eq(c->trigger, TR(DEPENDS));
    cr_assert_str_eq(c->depends, "a.failed || (b && !a.skipped)");
    cr_assert(c->continue_on_failed);
    cr_assert_eq(sp->steps[0]->trigger, TR(ALL_SUCCESS), "the default");
    spec_destroy(&sp);
}

/* ------------------------------------------------------------ readiness */

static agent_t *agent(void)
{
    return h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
}

/* Airflow's branch join: the branch not taken is skipped; the join runs
 * with none_failed_min_one_success, and a plain all_success join skips. */
Test(trigger_dag, branch_join_runs_with_none_failed_min_one_success)
{
    run_t *r = h_submit(s, "name: branch\nsteps:\n"
                           "  - name: pick\n    command: [true]\n"
                           "  - name: left\n    needs: [pick]\n    when: \"1 == 2\"\n"
                           "    command: [true]\n"
                           "  - name: right\n    needs: [pick]\n    command: [true]\n"
                           "  - name: join\n    needs: [left, right]\n"
                           "    trigger: none_failed_min_one_success\n    command: [true]\n"
                           "  - name: strict\n    needs: [left, right]\n    command: [true]\n");
    agent();
    placer_place(s);
    h_exit(s, h_task(r, "pick"), 0);
    expect_status(h_task(r, "left"), ST(SKIPPED));
    task_t *strict = h_task(r, "strict"), *join = h_task(r, "join");
    expect_status(strict, ST(SKIPPED));
    expect_reason(strict, "trigger all_success: 'left' skipped");
    cr_assert_not(strict->upstream_failed);
    expect_status(join, ST(WAITING));
    placer_place(s);
    h_exit(s, h_task(r, "right"), 0);
    expect_status(join, ST(READY));
    placer_place(s);
    h_exit(s, join, 0);
    expect_run(r, RS(SUCCEEDED));
}

/* one_success is decided at the first success: READY while the other
 * need still runs. one_failed likewise at the first failure. */
Test(trigger_dag, one_success_and_one_failed_are_decided_early)
{
    run_t *r = h_submit(s, "name: early\nsteps:\n"
                           "  - name: fast\n    command: [true]\n"
                           "  - name: slow\n    command: [true]\n"
                           "  - name: any\n    needs: [fast, slow]\n    trigger: one_success\n"
                           "    command: [true]\n"
                           "  - name: alarm\n    needs: [fast, slow]\n    trigger: one_failed\n"
                           "    command: [true]\n");
    agent();
    placer_place(s);
    task_t *slow = h_task(r, "slow"), *any = h_task(r, "any"), *alarm = h_task(r, "alarm");
    h_exit(s, h_task(r, "fast"), 0);
    expect_status(slow, ST(ASSIGNED));
    expect_status(any, ST(READY));
    expect_status(alarm, ST(WAITING));
    placer_place(s);
    h_exit(s, any, 0);
    h_exit(s, slow, 0);
    expect_status(alarm, ST(SKIPPED));
    expect_reason(alarm, "trigger one_failed: no need failed; 'fast' succeeded, 'slow' succeeded");
    expect_run(r, RS(SUCCEEDED));
}

/* A failure skips an all_success dependant as upstream_failed, which its
 * own one_failed dependant counts as a failure (Airflow's cleanup-on-error
 * pattern); an all_done step runs whatever happened. */
Test(trigger_dag, upstream_failed_counts_as_failed_downstream)
{
    run_t *r = h_submit(s, "name: uf\nsteps:\n"
                           "  - name: train\n    command: [false]\n"
                           "  - name: eval\n    needs: [train]\n    command: [true]\n"
                           "  - name: report\n    needs: [eval]\n    command: [true]\n"
                           "  - name: cleanup\n    needs: [eval]\n    trigger: one_failed\n"
                           "    command: [true]\n"
                           "  - name: always\n    needs: [train, eval]\n    trigger: all_done\n"
                           "    command: [true]\n");
    agent();
    placer_place(s);
    h_exit(s, h_task(r, "train"), 1);
    task_t *ev = h_task(r, "eval"), *report = h_task(r, "report");
    expect_status(ev, ST(SKIPPED));
    expect_reason(ev, "trigger all_success: 'train' failed");
    cr_assert(ev->upstream_failed);
    expect_status(report, ST(SKIPPED));
    expect_reason(report, "trigger all_success: 'eval' upstream_failed");
    expect_status(h_task(r, "cleanup"), ST(READY));
    expect_status(h_task(r, "always"), ST(READY));
    placer_place(s);
    h_exit(s, h_task(r, "cleanup"), 0);
    h_exit(s, h_task(r, "always"), 0);
    expect_run(r, RS(FAILED));
}

/* continue_on: failed: the run does not fail because of the step; its
 * dependants see it failed (a default-rule one skips, Argo's bare name
 * and .failed hold), and exit handlers see the run's final status. */
Test(trigger_dag, tolerated_failure_does_not_fail_the_run)
{
    run_t *r = h_submit(s, "name: tol\nsteps:\n"
                           "  - name: a\n    command: [true]\n"
                           "  - name: b\n    needs: [a]\n    continue_on: failed\n"
                           "    retries: {limit: 1, backoff: 0s}\n    command: [false]\n"
                           "  - name: c\n    needs: [a]\n    command: [true]\n"
                           "  - name: d\n    depends: \"b && c\"\n    command: [true]\n"
                           "  - name: e\n    needs: [b]\n    command: [true]\n"
                           "  - name: f\n    depends: b.failed\n    command: [true]\n"
                           "finally:\n  - name: notify\n    command: [echo, \"{{run.status}}\"]\n");
    agent();
    placer_place(s);
    h_exit(s, h_task(r, "a"), 0);
    placer_place(s);
    task_t *b = h_task(r, "b");
    h_exit(s, b, 1);
    expect_status(b, ST(FAILED));
    cr_assert_not(dag_task_final(b), "a retry is left");
    dag_retry_due(s, b->retry_at_ms);
    placer_place(s);
    h_exit(s, b, 1);
    cr_assert(dag_task_final(b));
    expect_status(h_task(r, "e"), ST(SKIPPED));
    expect_reason(h_task(r, "e"), "trigger all_success: 'b' failed");
    expect_status(h_task(r, "f"), ST(READY));
    expect_status(h_task(r, "d"), ST(WAITING));
    h_exit(s, h_task(r, "c"), 0);
    expect_status(h_task(r, "d"), ST(READY));
    placer_place(s);
    h_exit(s, h_task(r, "d"), 0);
    h_exit(s, h_task(r, "f"), 0);
    task_t *notify = h_task(r, "notify");
    expect_status(notify, ST(READY));
    cr_assert_eq(dag_prepare(s, notify), 0);
    cr_assert_str_eq(notify->argv[1], "succeeded", "exit handlers see the final status");
    placer_place(s);
    h_exit(s, notify, 0);
    expect_run(r, RS(SUCCEEDED));
}

/* Argo's depends, decided once every need has ended; false → SKIPPED
 * with the expression and the outcomes. */
Test(trigger_dag, depends_waits_for_every_need_then_decides)
{
    run_t *r = h_submit(s, "name: dep\nsteps:\n"
                           "  - name: train\n    command: [true]\n"
                           "  - name: fallback\n    command: [true]\n"
                           "  - name: use\n    depends: \"train.succeeded || fallback.failed\"\n"
                           "    command: [true]\n"
                           "  - name: rescue\n    depends: \"!train.succeeded\"\n"
                           "    command: [true]\n");
    agent();
    placer_place(s);
    h_exit(s, h_task(r, "train"), 0);
    expect_status(h_task(r, "use"), ST(WAITING));
    h_exit(s, h_task(r, "fallback"), 0);
    expect_status(h_task(r, "use"), ST(READY));
    expect_status(h_task(r, "rescue"), ST(SKIPPED));
    expect_reason(h_task(r, "rescue"), "depends: !train.succeeded was false: 'train' succeeded");
}

/* Counters are runtime only: a restart between a failure and the decision
 * its dependant still waits for recomputes them, so the later ending
 * decides as it would have without the restart. */
Test(trigger_dag, decisions_after_restart_are_the_same)
{
    run_t *r = h_submit(s, "name: rs\nsteps:\n"
                           "  - name: a\n    command: [false]\n"
                           "  - name: b\n    command: [true]\n"
                           "  - name: mid\n    needs: [a]\n    command: [true]\n"
                           "  - name: any\n    needs: [a, b]\n    trigger: one_success\n"
                           "    command: [true]\n"
                           "  - name: down\n    needs: [mid]\n    trigger: one_failed\n"
                           "    command: [true]\n"
                           "  - name: none\n    needs: [a, b]\n    trigger: none_failed\n"
                           "    command: [true]\n");
    agent();
    placer_place(s);
    h_exit(s, h_task(r, "a"), 1);
    expect_status(h_task(r, "any"), ST(WAITING));
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    task_t *mid = h_task(r, "mid"), *any = h_task(r, "any");
    expect_status(mid, ST(SKIPPED));
    cr_assert(mid->upstream_failed, "upstream_failed is stored");
    expect_status(h_task(r, "down"), ST(READY));
    expect_status(h_task(r, "none"), ST(SKIPPED));
    expect_status(any, ST(WAITING));
    cr_assert_eq(any->deps_failed, 1);
    cr_assert_eq(any->unfinished_deps, 1);
    task_t *b = h_task(r, "b");
    h_register(s, "a1", 64000, 64ull << 30, 0, NULL);
    if (b->status != ST(ASSIGNED) && b->status != ST(RUNNING))
        placer_place(s);
    h_exit(s, b, 0);
    expect_status(any, ST(READY));
}

/* A need on a fan-out step sees the group's status: FAILED once an item
 * failed (tolerated here: continue_on covers its items too). */
Test(trigger_dag, a_fan_out_need_is_the_group)
{
    run_t *r = h_submit(s, "name: fan\nsteps:\n"
                           "  - name: shard\n    for_each: [1, 2]\n    continue_on: failed\n"
                           "    command: [w, \"{{item}}\"]\n"
                           "  - name: merge\n    needs: [shard]\n    command: [true]\n"
                           "  - name: report\n    needs: [shard]\n    trigger: all_done\n"
                           "    command: [true]\n"
                           "  - name: triage\n    depends: shard.failed\n    command: [true]\n");
    agent();
    placer_place(s);
    h_exit(s, h_task(r, "shard[0]"), 0);
    expect_status(h_task(r, "report"), ST(WAITING));
    h_exit(s, h_task(r, "shard[1]"), 3);
    expect_status(h_task(r, "shard"), ST(FAILED));
    expect_status(h_task(r, "merge"), ST(SKIPPED));
    expect_reason(h_task(r, "merge"), "trigger all_success: 'shard' failed");
    expect_status(h_task(r, "report"), ST(READY));
    expect_status(h_task(r, "triage"), ST(READY));
    placer_place(s);
    h_exit(s, h_task(r, "report"), 0);
    h_exit(s, h_task(r, "triage"), 0);
    expect_run(r, RS(SUCCEEDED));
}

/* A rule that lets a step run without a need it takes an input from fails
 * the step with a reason, instead of running it with the input missing. */
Test(trigger_dag, an_input_from_a_need_that_did_not_succeed_fails_the_step)
{
    run_t *r = h_submit(s, "name: in\nsteps:\n"
                           "  - name: make\n    command: [false]\n"
                           "    outputs: {artifacts: [data]}\n"
                           "  - name: use\n    needs: [make]\n    trigger: all_done\n"
                           "    inputs: {artifacts: {d: make.data}}\n    command: [true]\n");
    agent();
    placer_place(s);
    h_exit(s, h_task(r, "make"), 1);
    task_t *use = h_task(r, "use");
    expect_status(use, ST(FAILED));
    expect_reason(use, "input 'd' comes from step 'make', which failed (its trigger all_done");
    expect_run(r, RS(FAILED));
}

/* A cancel ends waiting steps CANCELLED: the needs it cancels do not make
 * an all_done step run. */
Test(trigger_dag, cancel_does_not_start_an_all_done_step)
{
    run_t *r = h_submit(s, "name: cx\nsteps:\n"
                           "  - name: a\n    command: [sleep, 60]\n"
                           "  - name: b\n    needs: [a]\n    trigger: all_done\n"
                           "    command: [true]\n");
    agent();
    placer_place(s);
    dag_cancel_run(s, r);
    expect_status(h_task(r, "a"), ST(CANCELLED));
    expect_status(h_task(r, "b"), ST(CANCELLED));
    cr_assert_eq(s->dag.n_ready, 0);
    expect_run(r, RS(CANCELLED));
}
