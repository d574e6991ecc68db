/* test_groups — DAG templates at run time, on a real droverd
 * (scheduler/dag.c "Groups", flow.c's group inputs and outputs).
 *
 * Specs go through the spec compiler and dag_create_run; tasks are placed
 * with placer_place and finished with EXITED reports, as agents send
 * them. What is checked is what a user sees: the names members get
 * (GROUP.STEP, GROUP[i].STEP, nested), which run and when (a for_each of
 * sub-DAGs runs each item's chain on its own; parallelism counts items),
 * a group's status and declared outputs, its finally, recursion expanded
 * only while its `when` holds and bounded by max_depth, a restart in the
 * middle (members never assigned are made again, nothing runs twice),
 * cancel, and lookups of full names.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <stdarg.h>

#include "strbuf.h"

TestSuite(groups, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

static agent_t *agent(void)
{
    agent_t *a = fleet_find(&s->fleet, "a1");
    return a && a->connected ? a : h_register(s, "a1", 1000000, 1ull << 40, 0, NULL);
}

/* Place t if it is READY; it must then be on the agent. */
static void ensure_assigned(task_t *t)
{
    agent();
    if (t->status == ST(READY))
        placer_place(s);
    cr_assert(t->status == ST(ASSIGNED) || t->status == ST(RUNNING), "task %s is %s, not placed",
              t->name, util_task_status_name(t->status));
}

/* The agent running t reports EXITED with code and params (NULL-terminated
 * key, value pairs). */
static void finish_code(task_t *t, int code, ...)
{
    ensure_assigned(t);
    Drover__KeyValue *kvs[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, code);
    for (const char *k; (k = va_arg(ap, const char *));) {
        cr_assert_lt(n, 8);
        kvs[n++] = util_kv_new(k, va_arg(ap, const char *));
    }
    va_end(ap);
    h_exit_params(s, t, code, kvs, n);
    for (size_t i = 0; i < n; i++)
        drover__key_value__free_unpacked(kvs[i], NULL);
}

#define finish(t, ...) finish_code((t), 0, ##__VA_ARGS__, NULL)

static const char *param(const task_t *t, const char *key)
{
    for (size_t i = 0; i < t->n_out_params; i++)
        if (strcmp(t->out_params[i]->key, key) == 0)
            return t->out_params[i]->value;
    return NULL;
}

static const char *arg(const task_t *t, size_t i)
{
    cr_assert_not_null(t->argv, "task %s not prepared", t->name);
    cr_assert_lt(i, t->argc);
    return t->argv[i];
}

/* After a droverd restart: agent a1 registers again holding task t's
 * current attempt, as a real agent that kept running it would. */
static void reregister_holding(task_t *t)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    uint64_t held = dag_current_attempt(t)->id;
    cap.cpu_milli = 1000000;
    cap.memory_bytes = 1ull << 40;
    reg.name = "a1";
    reg.capacity = &cap;
    reg.attempts = &held;
    reg.n_attempts = 1;
    m.register_ = &reg;
    h_agent_send(s, "a1", &m);
    expect_status(t, ST(ASSIGNED));
}

/* The group commit alone (no placement, nothing sent). */
static void commit(void)
{
    cr_assert_eq(commit_journal(s), 0, "commit failed");
}

static run_t *find_run(const char *id)
{
    run_t *r = dag_find_run(s, id);
    cr_assert_not_null(r, "run %s not found", id);
    return r;
}

/* ------------------------------------------------------------ specs */

/* A two-step chained body (a, then b reading a's output) under for_each. */
static const char *PAIRS = "name: pairs\n"
                           "templates:\n"
                           "  pair:\n"
                           "    inputs: {params: {x: null, tag: \"t\"}}\n"
                           "    steps:\n"
                           "      - name: a\n"
                           "        command: [echo, \"{{inputs.params.x}}\"]\n"
                           "        outputs: {params: [v]}\n"
                           "      - name: b\n"
                           "        needs: [a]\n"
                           "        command: [echo, \"{{steps.a.outputs.params.v}}\", "
                           "\"{{inputs.params.tag}}\"]\n"
                           "        outputs: {params: [best]}\n"
                           "    outputs:\n"
                           "      params: {best: \"{{steps.b.outputs.params.best}}\"}\n"
                           "steps:\n"
                           "  - name: prep\n"
                           "    command: [echo, prep]\n"
                           "  - name: fan\n"
                           "    needs: [prep]\n"
                           "    uses: pair\n"
                           "    for_each: [\"x0\", \"x1\", \"x2\"]\n"
                           "    parallelism: 2\n"
                           "    with: {x: \"{{item}}\"}\n"
                           "  - name: after\n"
                           "    needs: [fan]\n"
                           "    command: [echo, \"{{steps.fan.outputs.params.best}}\"]\n";

Test(groups, a_for_each_of_sub_dags_runs_each_items_chain_on_its_own)
{
    run_t *r = h_submit(s, PAIRS);
    task_t *fan = h_task(r, "fan");
    expect_status(fan, ST(WAITING));
    finish(h_task(r, "prep"));
    expect_status(fan, ST(RUNNING));
    /* parallelism 2 counts items: two sub-DAGs made, the third waits */
    task_t *a0 = h_task(r, "fan[0].a"), *a1 = h_task(r, "fan[1].a");
    cr_assert_null(dag_find_task(r, "fan[2].a"), "item 2 instantiated beyond parallelism 2");
    expect_status(a0, ST(READY));
    expect_status(a1, ST(READY));
    cr_assert_str_eq(h_task(r, "fan[0]")->name, "fan[0]");
    ensure_assigned(a0);
    ensure_assigned(a1);
    cr_assert_str_eq(arg(a0, 1), "x0", "{{inputs.params.x}} of item 0");
    cr_assert_str_eq(arg(a1, 1), "x1");
    /* item 0's b starts without waiting for item 1's a */
    finish(a0, "v", "v0");
    task_t *b0 = h_task(r, "fan[0].b");
    expect_status(b0, ST(READY));
    expect_status(a1, ST(ASSIGNED));
    ensure_assigned(b0);
    cr_assert_str_eq(arg(b0, 1), "v0");
    cr_assert_str_eq(arg(b0, 2), "t", "a default input");
    finish(b0, "best", "B0");
    expect_status(h_task(r, "fan[0]"), ST(SUCCEEDED));
    cr_assert_str_eq(param(h_task(r, "fan[0]"), "best"), "B0");
    /* item 0 ended: item 2 is instantiated */
    task_t *a2 = h_task(r, "fan[2].a");
    expect_status(a2, ST(READY));
    finish(a1, "v", "v1");
    finish(h_task(r, "fan[1].b"), "best", "B1");
    finish(a2, "v", "v2");
    expect_status(fan, ST(RUNNING));
    finish(h_task(r, "fan[2].b"), "best", "B2");
    expect_status(fan, ST(SUCCEEDED));
    task_t *after = h_task(r, "after");
    ensure_assigned(after);
    cr_assert_str_eq(arg(after, 1), "[\"B0\",\"B1\",\"B2\"]", "fan-in of the groups' outputs");
    finish(after);
    expect_run(r, RS(SUCCEEDED));
}

Test(groups, a_failed_member_fails_its_group_and_the_run_after_the_rest)
{
    run_t *r = h_submit(s, PAIRS);
    finish(h_task(r, "prep"));
    finish_code(h_task(r, "fan[0].a"), 3, NULL);
    task_t *g0 = h_task(r, "fan[0]");
    expect_status(g0, ST(FAILED));
    expect_reason(g0, "step 'fan[0].a' failed: exit code 3");
    expect_status(h_task(r, "fan[0].b"), ST(SKIPPED));
    expect_status(h_task(r, "fan"), ST(RUNNING)); /* the other items go on */
    finish(h_task(r, "fan[1].a"), "v", "1");
    finish(h_task(r, "fan[1].b"), "best", "1");
    finish(h_task(r, "fan[2].a"), "v", "2");
    finish(h_task(r, "fan[2].b"), "best", "2");
    expect_status(h_task(r, "fan"), ST(FAILED));
    expect_status(h_task(r, "after"), ST(SKIPPED));
    expect_run(r, RS(FAILED));
}

Test(groups, a_restart_keeps_members_and_remakes_those_never_assigned)
{
    run_t *r = h_submit(s, PAIRS);
    char id[32];
    snprintf(id, sizeof id, "%s", r->rec->id);
    finish(h_task(r, "prep"));
    ensure_assigned(h_task(r, "fan[0].a"));
    finish(h_task(r, "fan[1].a"), "v", "v1");
    /* fan[1].b READY, never assigned: no record of its own */
    commit();
    uint64_t attempt0 = dag_current_attempt(h_task(r, "fan[0].a"))->id;
    h_sched_restart();
    r = find_run(id);
    task_t *a0 = h_task(r, "fan[0].a");
    cr_assert_eq(a0->status, ST(ASSIGNED), "fan[0].a is %s", util_task_status_name(a0->status));
    cr_assert_eq(dag_current_attempt(a0)->id, attempt0, "the same attempt, not a new one");
    cr_assert_eq(a0->n_attempts, 1);
    task_t *b1 = h_task(r, "fan[1].b");
    expect_status(b1, ST(READY));
    cr_assert_eq(b1->n_attempts, 0);
    expect_status(h_task(r, "fan[1].a"), ST(SUCCEEDED));
    cr_assert_null(dag_find_task(r, "fan[2].a"));
    reregister_holding(a0);
    finish(a0, "v", "v0");
    ensure_assigned(h_task(r, "fan[0].b"));
    cr_assert_str_eq(arg(h_task(r, "fan[0].b"), 1), "v0");
    finish(h_task(r, "fan[0].b"), "best", "B0");
    finish(b1, "best", "B1");
    finish(h_task(r, "fan[2].a"), "v", "v2");
    finish(h_task(r, "fan[2].b"), "best", "B2");
    finish(h_task(r, "after"));
    expect_run(r, RS(SUCCEEDED));
    cr_assert_eq(h_task(r, "fan[1].a")->n_attempts, 1, "nothing ran twice");
    cr_assert_eq(h_task(r, "fan[0].a")->n_attempts, 1);
}

/* Argo's coinflip-recursive: flip until heads. */
static const char *COIN = "name: coinflip\n"
                          "templates:\n"
                          "  coinflip:\n"
                          "    steps:\n"
                          "      - name: flip\n"
                          "        command: [flip]\n"
                          "        outputs: {params: [side]}\n"
                          "      - name: heads\n"
                          "        needs: [flip]\n"
                          "        when: \"{{steps.flip.outputs.params.side}} == heads\"\n"
                          "        command: [echo, heads]\n"
                          "      - name: tails\n"
                          "        needs: [flip]\n"
                          "        when: \"{{steps.flip.outputs.params.side}} == tails\"\n"
                          "        uses: coinflip\n"
                          "steps:\n"
                          "  - name: play\n"
                          "    uses: coinflip\n";

/* A template that uses itself unconditionally: a recursion bomb. */
static const char *BOMB =
    "name: bomb\n"
    "templates:\n"
    "  bomb:\n"
    "    steps:\n"
    "      - {name: again, uses: bomb}\n"
    "      - {name: work, needs: [again], trigger: all_done, command: [work]}\n"
    "steps:\n"
    "  - {name: go, uses: bomb}\n";

Test(groups, recursion_expands_only_while_its_when_holds)
{
    run_t *r = h_submit(s, COIN);
    finish(h_task(r, "play.flip"), "side", "tails");
    expect_status(h_task(r, "play.heads"), ST(SKIPPED));
    expect_status(h_task(r, "play.tails"), ST(RUNNING));
    finish(h_task(r, "play.tails.flip"), "side", "tails");
    finish(h_task(r, "play.tails.tails.flip"), "side", "heads");
    cr_assert_null(dag_find_task(r, "play.tails.tails.tails.flip"),
                   "expanded though `when` was false");
    expect_status(h_task(r, "play.tails.tails.tails"), ST(SKIPPED));
    task_t *h = h_task(r, "play.tails.tails.heads");
    finish(h);
    expect_status(h_task(r, "play.tails.tails"), ST(SUCCEEDED));
    expect_status(h_task(r, "play.tails"), ST(SUCCEEDED));
    expect_status(h_task(r, "play"), ST(SUCCEEDED));
    expect_run(r, RS(SUCCEEDED));
    cr_assert_eq(dag_depth(h), 3);
}

Test(groups, recursion_deeper_than_max_depth_fails_that_step)
{
    s->cfg.max_depth = 2;
    run_t *r = h_submit(s, COIN);
    finish(h_task(r, "play.flip"), "side", "tails");
    finish(h_task(r, "play.tails.flip"), "side", "tails");
    task_t *deep = h_task(r, "play.tails.tails");
    expect_status(deep, ST(FAILED));
    expect_reason(deep, "max_depth 2");
    expect_status(h_task(r, "play.tails"), ST(FAILED));
    expect_status(h_task(r, "play"), ST(FAILED));
    expect_run(r, RS(FAILED));
}

Test(groups, an_unbounded_recursion_stops_at_max_depth_whatever_it_is)
{
    s->cfg.max_depth = 1000; /* the most droverd allows: made synchronously, 1000 deep */
    run_t *r = h_submit(s, BOMB);
    expect_status(h_task(r, "go"), ST(RUNNING));
    strbuf_t deepest = {0};
    sb_printf(&deepest, "go");
    for (int i = 0; i < 1000; i++)
        sb_printf(&deepest, ".again");
    task_t *d = h_task(r, deepest.buf);
    expect_status(d, ST(FAILED));
    expect_reason(d, "max_depth 1000");
    cr_assert_eq(dag_depth(d), 1000);
    sb_free(&deepest);
    /* each level's `work` (trigger all_done) still runs, innermost first */
    size_t ready = 0;
    for (const task_t *q = s->dag.ready_head; q; q = q->ready_next)
        ready++;
    cr_assert_eq(ready, 1, "only the innermost work is READY, %zu are", ready);
}

Test(groups, a_run_beyond_max_tasks_fails_the_step_that_would_grow_it)
{
    s->cfg.max_run_tasks = 50;
    run_t *r = h_submit(s, BOMB);
    size_t n = r->n_tasks;
    cr_assert_leq(n, 50, "the run has %zu tasks", n);
    bool found = false;
    for (size_t i = 0; i < r->n_tasks; i++)
        if (r->tasks[i]->reason && strstr(r->tasks[i]->reason, "--max-tasks 50"))
            found = true;
    cr_assert(found, "no step says it went over --max-tasks");
    cr_assert_gt(s->counters.over_limits, 0);
}

Test(groups, a_restart_in_the_middle_of_a_recursion)
{
    run_t *r = h_submit(s, COIN);
    char id[32];
    snprintf(id, sizeof id, "%s", r->rec->id);
    finish(h_task(r, "play.flip"), "side", "tails");
    ensure_assigned(h_task(r, "play.tails.flip"));
    commit();
    h_sched_restart();
    r = find_run(id);
    task_t *f = h_task(r, "play.tails.flip");
    reregister_holding(f);
    finish(f, "side", "heads");
    finish(h_task(r, "play.tails.heads"));
    expect_run(r, RS(SUCCEEDED));
    cr_assert_eq(h_task(r, "play.flip")->n_attempts, 1);
    cr_assert_eq(h_task(r, "play.tails.flip")->n_attempts, 1);
}

/* A group's finally runs when the group ends, before what follows it. */
static const char *SCOPED = "name: scoped\n"
                            "templates:\n"
                            "  work:\n"
                            "    steps:\n"
                            "      - name: run\n"
                            "        command: [work]\n"
                            "    finally:\n"
                            "      - name: cleanup\n"
                            "        command: [echo, \"{{run.status}}\"]\n"
                            "steps:\n"
                            "  - name: g\n"
                            "    uses: work\n"
                            "    continue_on: failed\n"
                            "  - name: next\n"
                            "    needs: [g]\n"
                            "    trigger: all_done\n"
                            "    command: [next]\n";

Test(groups, a_groups_finally_runs_when_the_group_ends)
{
    run_t *r = h_submit(s, SCOPED);
    task_t *cleanup = h_task(r, "g.cleanup");
    expect_status(cleanup, ST(WAITING));
    finish_code(h_task(r, "g.run"), 1, NULL);
    ensure_assigned(cleanup);
    cr_assert_str_eq(arg(cleanup, 1), "failed", "{{run.status}} is the group's");
    expect_status(h_task(r, "g"), ST(RUNNING));
    expect_status(h_task(r, "next"), ST(WAITING));
    finish(cleanup);
    expect_status(h_task(r, "g"), ST(FAILED));
    finish(h_task(r, "next"));
    expect_run(r, RS(SUCCEEDED)); /* continue_on: failed */
}

Test(groups, cancel_ends_members_then_groups_and_their_finally_still_runs)
{
    run_t *r = h_submit(s, SCOPED);
    ensure_assigned(h_task(r, "g.run"));
    dag_cancel_run(s, r);
    expect_status(h_task(r, "g.run"), ST(CANCELLED));
    task_t *cleanup = h_task(r, "g.cleanup");
    ensure_assigned(cleanup);
    cr_assert_str_eq(arg(cleanup, 1), "cancelled");
    expect_status(h_task(r, "g"), ST(RUNNING));
    finish(cleanup);
    expect_status(h_task(r, "g"), ST(CANCELLED));
    expect_run(r, RS(CANCELLED));
}

Test(groups, a_group_in_the_runs_finally_runs_whole_after_a_cancel)
{
    run_t *r = h_submit(s, "name: fin\n"
                           "templates:\n"
                           "  cleanup:\n"
                           "    steps:\n"
                           "      - {name: one, command: [one]}\n"
                           "      - {name: two, needs: [one], command: [two]}\n"
                           "steps:\n"
                           "  - {name: main, command: [main]}\n"
                           "finally:\n"
                           "  - {name: tidy, uses: cleanup}\n");
    ensure_assigned(h_task(r, "main"));
    dag_cancel_run(s, r);
    expect_status(h_task(r, "main"), ST(CANCELLED));
    finish(h_task(r, "tidy.one"));
    task_t *two = h_task(r, "tidy.two");
    expect_status(two, ST(READY)); /* not left WAITING by the cancel */
    finish(two);
    expect_status(h_task(r, "tidy"), ST(SUCCEEDED));
    expect_run(r, RS(CANCELLED));
}

Test(groups, members_are_cached_one_by_one_in_their_groups)
{
    run_t *r = h_submit(s, PAIRS);
    finish(h_task(r, "prep"));
    for (int i = 0; i < 3; i++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "fan[%d].a", i);
        snprintf(b, sizeof b, "fan[%d].b", i);
        finish(h_task(r, a), "v", "v");
        finish(h_task(r, b), "best", "B");
    }
    finish(h_task(r, "after"));
    expect_run(r, RS(SUCCEEDED));
    commit();
    /* the same run again: every member is served from the cache, each
     * with the outputs of the member of the same group and item */
    run_t *again = h_submit(s, PAIRS);
    expect_status(h_task(again, "prep"), ST(CACHED));
    task_t *b2 = h_task(again, "fan[2].b");
    expect_status(h_task(again, "fan[0].a"), ST(CACHED));
    expect_status(b2, ST(CACHED));
    cr_assert(b2->cached_from && strstr(b2->cached_from, "/fan[2].b"), "cached from %s",
              b2->cached_from ? b2->cached_from : "-");
    expect_status(h_task(again, "fan"), ST(SUCCEEDED));
    cr_assert_str_eq(param(h_task(again, "fan"), "best"), "[\"B\",\"B\",\"B\"]");
}

Test(groups, a_when_with_two_run_time_values_holds_both)
{
    /* each reference's value lives until the whole expression is decided
     * (it was freed at the next reference: "1 < 10" came out false) */
    run_t *r = h_submit(s, "name: two\n"
                           "steps:\n"
                           "  - {name: a, command: [a]}\n"
                           "  - {name: b, command: [b]}\n"
                           "  - name: c\n"
                           "    needs: [a, b]\n"
                           "    when: \"{{steps.a.exit_code}} < {{steps.b.exit_code}} && "
                           "{{steps.a.status}} == {{steps.b.status}}\"\n"
                           "    trigger: all_done\n"
                           "    command: [c]\n");
    finish(h_task(r, "a"));
    finish_code(h_task(r, "b"), 10, NULL);
    expect_status(h_task(r, "c"), ST(SKIPPED)); /* failed != succeeded */
    run_t *r2 = h_submit(s, "name: two2\n"
                            "steps:\n"
                            "  - {name: a, command: [a], skip_on_exit_code: 3}\n"
                            "  - {name: b, command: [b], skip_on_exit_code: 3}\n"
                            "  - name: c\n"
                            "    needs: [a, b]\n"
                            "    when: \"{{steps.a.status}} == {{steps.b.status}}\"\n"
                            "    trigger: all_done\n"
                            "    command: [c]\n");
    finish_code(h_task(r2, "a"), 3, NULL);
    finish_code(h_task(r2, "b"), 3, NULL);
    expect_status(h_task(r2, "c"), ST(READY)); /* skipped == skipped */
}

Test(groups, names_resolve_only_to_what_exists)
{
    run_t *r = h_submit(s, PAIRS);
    finish(h_task(r, "prep"));
    cr_assert_not_null(dag_find_task(r, "fan[1].b"));
    cr_assert_null(dag_find_task(r, "fan[1].c"));
    cr_assert_null(dag_find_task(r, "fan[9].a"));
    cr_assert_null(dag_find_task(r, "fan[-1].a"));
    cr_assert_null(dag_find_task(r, "fan[ 1].a"));
    cr_assert_null(dag_find_task(r, "fan.a"), "a for_each group's members are per item");
    cr_assert_null(dag_find_task(r, "prep.a"));
    cr_assert_null(dag_find_task(r, "fan[1]."));
    cr_assert_null(dag_find_task(r, ""));
}
