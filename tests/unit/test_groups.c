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
    Drover__Report rep = DROVER__REPORT__INIT;
    Drover__KeyValue *kvs[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, code);
    for (const char *k; (k = va_arg(ap, const char *));) {
        cr_assert_lt(n, 8);
        kvs[n++] = util_kv_new(k, va_arg(ap, const char *));
    }
    va_end(ap);
    rep.attempt_id = dag_current_attempt(t)->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = code;
    rep.out_params = kvs;
    rep.n_out_params = n;
    dag_task_exited(s, t, &rep);
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

/* TEMPORARY (until the compiler knows templates): a spec whose steps are
 * written flat, then shaped into root steps and one body the way the
 * compiler lays them out. INPUT_x in an argv becomes {{inputs.params.x}}. */
typedef struct {
    size_t root;               /* root steps: [0, root) */
    size_t first, n;           /* the body's steps */
    const char *name;          /* the template */
    const char *out_key, *out; /* one declared output param */
    const char *groups;        /* indexes of steps using the body, e.g. "1" or "1,4" */
    const char *with_key, *with_val;
    const char *with2_key, *with2_val;
} shape_t;

static void fix_inputs(char **pstr)
{
    char *p = strstr(*pstr, "INPUT_");
    if (!p)
        return;
    char *v = xasprintf("%.*s{{inputs.params.%s}}", (int)(p - *pstr), *pstr, p + 6);
    free(*pstr);
    *pstr = v;
}

static run_t *submit_shaped(const char *yaml, const shape_t *sh)
{
    char err[2048] = "";
    spec_t *spec = NULL;
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &spec, err, sizeof err);
    cr_assert_eq(rc, 0, "spec_parse: %s", err);
    spec->root_count = sh->root;
    spec->body_count = 1;
    spec->bodies = xcalloc(1, sizeof *spec->bodies);
    Drover__TemplateBody *b = xmalloc(sizeof *b);
    drover__template_body__init(b);
    b->name = xstrdup(sh->name);
    b->first_step = (uint32_t)sh->first;
    b->n_steps = (uint32_t)sh->n;
    if (sh->out_key) {
        b->n_out_params = 1;
        b->out_params = xcalloc(1, sizeof *b->out_params);
        b->out_params[0] = util_kv_new(sh->out_key, sh->out);
    }
    spec->bodies[0] = b;
    for (size_t i = sh->first; i < sh->first + sh->n; i++) {
        spec->steps[i]->in_body = 1;
        for (size_t k = 0; k < spec->steps[i]->n_argv; k++)
            fix_inputs(&spec->steps[i]->argv[k]);
    }
    for (const char *g = sh->groups; *g;) {
        char *end;
        size_t i = strtoul(g, &end, 10);
        Drover__StepSpec *st = spec->steps[i];
        for (size_t k = 0; k < st->n_argv; k++)
            free(st->argv[k]);
        st->n_argv = 0;
        st->uses_body = 1;
        if (sh->with_key) {
            st->with = xcalloc(2, sizeof *st->with);
            st->with[st->n_with++] = util_kv_new(sh->with_key, sh->with_val);
            if (sh->with2_key)
                st->with[st->n_with++] = util_kv_new(sh->with2_key, sh->with2_val);
        }
        g = *end == ',' ? end + 1 : end;
    }
    run_t *r = dag_create_run(s, spec, "t.yaml", false);
    spec_destroy(&spec);
    cr_assert_not_null(r);
    return r;
}

static const char *PAIRS_FLAT =
    "name: pairs\n"
    "steps:\n"
    "  - name: prep\n"
    "    command: [echo, prep]\n"
    "  - name: fan\n"
    "    needs: [prep]\n"
    "    command: [x]\n"
    "    for_each: [\"x0\", \"x1\", \"x2\"]\n"
    "    parallelism: 2\n"
    "    outputs: {params: [best]}\n"
    "  - name: after\n"
    "    needs: [fan]\n"
    "    command: [echo, \"{{steps.fan.outputs.params.best}}\"]\n"
    "  - name: a\n"
    "    command: [echo, \"INPUT_x\"]\n"
    "    outputs: {params: [v]}\n"
    "  - name: b\n"
    "    needs: [a]\n"
    "    command: [echo, \"{{steps.a.outputs.params.v}}\", \"INPUT_tag\"]\n"
    "    outputs: {params: [best]}\n";

static run_t *submit_pairs(void)
{
    shape_t sh = {.root = 3,
                  .first = 3,
                  .n = 2,
                  .name = "pair",
                  .out_key = "best",
                  .out = "{{steps.b.outputs.params.best}}",
                  .groups = "1",
                  .with_key = "x",
                  .with_val = "{{item}}",
                  .with2_key = "tag",
                  .with2_val = "t"};
    return submit_shaped(PAIRS_FLAT, &sh);
}

static const char *COIN_FLAT = "name: coinflip\n"
                               "steps:\n"
                               "  - name: play\n"
                               "    command: [x]\n"
                               "  - name: flip\n"
                               "    command: [flip]\n"
                               "    outputs: {params: [side]}\n"
                               "  - name: heads\n"
                               "    needs: [flip]\n"
                               "    when: \"{{steps.flip.outputs.params.side}} == heads\"\n"
                               "    command: [echo, heads]\n"
                               "  - name: tails\n"
                               "    needs: [flip]\n"
                               "    when: \"{{steps.flip.outputs.params.side}} == tails\"\n"
                               "    command: [x]\n";

static run_t *submit_coin(void)
{
    shape_t sh = {.root = 1, .first = 1, .n = 3, .name = "coinflip", .groups = "0,3"};
    return submit_shaped(COIN_FLAT, &sh);
}

static const char *SCOPED_FLAT = "name: scoped\n"
                                 "steps:\n"
                                 "  - name: g\n"
                                 "    command: [x]\n"
                                 "    continue_on: failed\n"
                                 "  - name: next\n"
                                 "    needs: [g]\n"
                                 "    trigger: all_done\n"
                                 "    command: [next]\n"
                                 "  - name: run\n"
                                 "    command: [work]\n"
                                 "finally:\n"
                                 "  - name: cleanup\n"
                                 "    command: [echo, \"{{run.status}}\"]\n";

static run_t *submit_scoped(void)
{
    shape_t sh = {.root = 2, .first = 2, .n = 2, .name = "work", .groups = "0"};
    return submit_shaped(SCOPED_FLAT, &sh);
}

/* A two-step chained body (a, then b reading a's output) under for_each. */
__attribute__((unused)) static const char *PAIRS =
    "name: pairs\n"
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
    run_t *r = submit_pairs();
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
    run_t *r = submit_pairs();
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
    run_t *r = submit_pairs();
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
__attribute__((unused)) static const char *COIN =
    "name: coinflip\n"
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

Test(groups, recursion_expands_only_while_its_when_holds)
{
    run_t *r = submit_coin();
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
    run_t *r = submit_coin();
    finish(h_task(r, "play.flip"), "side", "tails");
    finish(h_task(r, "play.tails.flip"), "side", "tails");
    task_t *deep = h_task(r, "play.tails.tails");
    expect_status(deep, ST(FAILED));
    expect_reason(deep, "max_depth 2");
    expect_status(h_task(r, "play.tails"), ST(FAILED));
    expect_status(h_task(r, "play"), ST(FAILED));
    expect_run(r, RS(FAILED));
}

Test(groups, a_restart_in_the_middle_of_a_recursion)
{
    run_t *r = submit_coin();
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
__attribute__((unused)) static const char *SCOPED = "name: scoped\n"
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
    run_t *r = submit_scoped();
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
    run_t *r = submit_scoped();
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

Test(groups, names_resolve_only_to_what_exists)
{
    run_t *r = submit_pairs();
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
