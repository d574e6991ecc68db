/* test_flow — what moves between steps, on a real droverd
 * (scheduler/flow.c and its use by dag.c).
 *
 * Specs go through the spec parser and dag_create_run; an agent is
 * registered through the agents protocol, tasks are placed with
 * placer_place and finished with EXITED reports carrying output params
 * and artifacts, as agents send them. What is checked is what a user
 * sees: task and run statuses, reasons, item tasks and their values, the
 * argv an agent is handed, fan-in lists, CACHED steps and what they
 * reuse, and state after a restart.
 *
 * `when` with step outputs (true, false, error) and missing declared
 * outputs; fan-out from literal lists and from output params, parallelism,
 * fan-in, failures, empty and malformed lists; exit handlers and
 * {{run.status}}, cancel and a second cancel; the step cache (identical
 * runs, one changed param, cache: false, no_cache, clear_cache); a fan-out
 * half done surviving a restart.
 *
 * Cache entries and blob records become durable at the group commit,
 * which the tests trigger by running the loop once (its prepare watcher
 * places READY tasks, commits and sends the agents' batches).
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <errno.h>
#include <stdarg.h>

#include "digest.h"

TestSuite(flow, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

static agent_t *agent(void)
{
    agent_t *a = fleet_find(&s->fleet, "a1");
    return a && a->connected ? a : h_register(s, "a1", 1000000, 1ull << 40, 0, NULL);
}

/* Parse and submit with `-p k=v` overrides (NULL-terminated pairs). */
static run_t *submit_with(const char *yaml, int no_cache, ...)
{
    spec_kv_t ov[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, no_cache);
    for (const char *k; (k = va_arg(ap, const char *));) {
        cr_assert_lt(n, 8);
        ov[n].key = (char *)k;
        ov[n].value = va_arg(ap, char *);
        n++;
    }
    va_end(ap);
    char err[512] = "";
    spec_t *spec = NULL;
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), ov, n, &spec, err, sizeof err);
    cr_assert_eq(rc, 0, "spec_parse: %s", err);
    run_t *r = dag_create_run(s, spec, "t.yaml", no_cache != 0);
    spec_destroy(&spec);
    cr_assert_not_null(r);
    return r;
}

/* The latest assignment for t in the agent's outbound batch, or NULL. */
static const Drover__Assignment *assignment(const task_t *t)
{
    agent_t *a = fleet_find(&s->fleet, "a1");
    if (!a)
        return NULL;
    for (size_t i = a->out.n_assigns; i-- > 0;)
        if (strcmp(a->out.assigns[i]->task, t->name) == 0)
            return a->out.assigns[i];
    return NULL;
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

typedef struct {
    const char *name;
    const uint8_t *digest; /* one file */
    uint64_t size;
} art_t;

/* The agent running t reports EXITED with code, params (NULL-terminated
 * key, value pairs) and artifacts. */
static void finish_full(task_t *t, int code, const art_t *arts, size_t n_arts, ...)
{
    ensure_assigned(t);
    Drover__Report rep = DROVER__REPORT__INIT;
    Drover__KeyValue *kvs[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, n_arts);
    for (const char *k; (k = va_arg(ap, const char *));) {
        cr_assert_lt(n, 16);
        kvs[n++] = util_kv_new(k, va_arg(ap, const char *));
    }
    va_end(ap);
    Drover__Artifact *as[4];
    Drover__FileEntry *fs[4], *fps[4][1];
    cr_assert_leq(n_arts, 4);
    for (size_t i = 0; i < n_arts; i++) {
        fs[i] = xmalloc(sizeof *fs[i]);
        drover__file_entry__init(fs[i]);
        fs[i]->path = "";
        fs[i]->mode = 0644;
        fs[i]->size = arts[i].size;
        fs[i]->digest.data = (uint8_t *)arts[i].digest;
        fs[i]->digest.len = DIGEST_LEN;
        fps[i][0] = fs[i];
        as[i] = xmalloc(sizeof *as[i]);
        drover__artifact__init(as[i]);
        as[i]->name = (char *)arts[i].name;
        as[i]->files = fps[i];
        as[i]->n_files = 1;
        as[i]->digest = fs[i]->digest;
        as[i]->size = arts[i].size;
    }
    Drover__AttemptRecord *a = dag_current_attempt(t);
    rep.attempt_id = a->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = code;
    rep.out_params = kvs;
    rep.n_out_params = n;
    rep.outputs = as;
    rep.n_outputs = n_arts;
    dag_task_exited(s, t, &rep);
    for (size_t i = 0; i < n; i++)
        drover__key_value__free_unpacked(kvs[i], NULL);
    for (size_t i = 0; i < n_arts; i++) {
        free(as[i]);
        free(fs[i]);
    }
}

#define finish(t, ...) finish_full((t), 0, NULL, 0, ##__VA_ARGS__, NULL)
#define fail(t, code)  finish_full((t), (code), NULL, 0, NULL)

static const char *param(const task_t *t, const char *key)
{
    for (size_t i = 0; i < t->n_out_params; i++)
        if (strcmp(t->out_params[i]->key, key) == 0)
            return t->out_params[i]->value;
    return NULL;
}

static bool active(const task_t *t)
{
    return t->status == ST(READY) || t->status == ST(ASSIGNED) || t->status == ST(RUNNING);
}

/* Items of group g that are READY, ASSIGNED or RUNNING. */
static size_t active_items(const task_t *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_items; i++)
        n += active(g->run->tasks[g->items[i]]);
    return n;
}

static task_t *item(run_t *r, const char *step, size_t i)
{
    char name[96];
    snprintf(name, sizeof name, "%s[%zu]", step, i);
    return h_task(r, name);
}

static bool worker_idle(void *arg)
{
    return worker_pending(s->worker) == 0;
}

static void tick_cb(struct ev_loop *l, ev_timer *t, int revents) {}

/* One loop iteration: place, group commit, send; then let the worker
 * finish what the commit queued. */
static void commit(void)
{
    ev_run(s->loop, EVRUN_NOWAIT);
    cr_assert_eq(s->fatal, 0, "commit failed");
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(s->loop, &tick);
    int64_t deadline = util_mono_ms() + 10000;
    while (!worker_idle(NULL) && util_mono_ms() < deadline)
        ev_run(s->loop, EVRUN_ONCE);
    ev_timer_stop(s->loop, &tick);
    cr_assert(worker_idle(NULL));
}

/* ------------------------------------------------------------ when */

static const char *GATE =
    "name: gate\n"
    "steps:\n"
    "  - name: evaluate\n"
    "    command: [eval]\n"
    "    outputs: {params: [better]}\n"
    "  - name: deploy\n"
    "    needs: [evaluate]\n"
    "    when: \"{{steps.evaluate.outputs.params.better}} == true\"\n"
    "    command: [deploy, \"--better={{steps.evaluate.outputs.params.better}}\"]\n"
    "  - name: announce\n"
    "    needs: [deploy]\n"
    "    command: [announce]\n"
    "  - name: audit\n"
    "    needs: [evaluate]\n"
    "    command: [audit]\n";

Test(flow, when_true_runs_the_step)
{
    run_t *r = h_submit(s, GATE);
    task_t *ev = h_task(r, "evaluate"), *deploy = h_task(r, "deploy"),
           *announce = h_task(r, "announce"), *audit = h_task(r, "audit");
    expect_status(deploy, ST(WAITING));
    finish(ev, "better", "true");
    expect_status(ev, ST(SUCCEEDED));
    cr_assert_str_eq(param(ev, "better"), "true");
    expect_status(deploy, ST(READY));
    expect_status(audit, ST(READY));
    expect_status(announce, ST(WAITING));
    placer_place(s);
    const Drover__Assignment *as = assignment(deploy);
    cr_assert_not_null(as);
    cr_assert_eq(as->n_argv, 2);
    cr_assert_str_eq(as->argv[1], "--better=true", "argv[1] = %s", as->argv[1]);
    finish(deploy);
    expect_status(announce, ST(READY));
    finish(announce);
    finish(audit);
    expect_run(r, RS(SUCCEEDED));
}

Test(flow, when_false_skips_the_step_and_its_descendants)
{
    run_t *r = h_submit(s, GATE);
    task_t *ev = h_task(r, "evaluate"), *deploy = h_task(r, "deploy"),
           *announce = h_task(r, "announce"), *audit = h_task(r, "audit");
    finish(ev, "better", "false");
    expect_status(deploy, ST(SKIPPED));
    expect_reason(deploy, "when");
    expect_reason(deploy, "false");
    cr_assert_eq(deploy->n_attempts, 0, "a skipped step never runs");
    expect_status(announce, ST(SKIPPED));
    expect_reason(announce, "deploy");
    expect_status(audit, ST(READY));
    expect_run(r, RS(RUNNING));
    finish(audit);
    expect_run(r, RS(SUCCEEDED)); /* a condition that is false is not a failure */
    cr_assert_not(r->failed);
}

Test(flow, when_compares_numbers_numerically)
{
    run_t *r = h_submit(s, "name: num\n"
                           "steps:\n"
                           "  - {name: score, command: [s], outputs: {params: [v]}}\n"
                           "  - name: big\n"
                           "    needs: [score]\n"
                           "    when: \"{{steps.score.outputs.params.v}} > 9\"\n"
                           "    command: [big]\n"
                           "  - name: small\n"
                           "    needs: [score]\n"
                           "    when: \"{{steps.score.outputs.params.v}} < 9\"\n"
                           "    command: [small]\n");
    finish(h_task(r, "score"), "v", "10");
    expect_status(h_task(r, "big"), ST(READY)); /* 10 > 9, not "10" < "9" */
    expect_status(h_task(r, "small"), ST(SKIPPED));
}

Test(flow, when_that_cannot_be_evaluated_fails_the_step)
{
    run_t *r = h_submit(s, "name: bad\n"
                           "steps:\n"
                           "  - {name: evaluate, command: [e], outputs: {params: [better]}}\n"
                           "  - name: deploy\n"
                           "    needs: [evaluate]\n"
                           "    when: \"{{steps.evaluate.outputs.params.better}}\"\n"
                           "    command: [deploy]\n"
                           "  - {name: announce, needs: [deploy], command: [a]}\n"
                           "  - {name: audit, needs: [evaluate], command: [a]}\n");
    finish(h_task(r, "evaluate"), "better", "maybe");
    task_t *deploy = h_task(r, "deploy");
    expect_status(deploy, ST(FAILED));
    cr_assert(dag_task_final(deploy));
    expect_reason(deploy, "when");
    expect_reason(deploy, "maybe");
    cr_assert_eq(deploy->n_attempts, 0);
    expect_status(h_task(r, "announce"), ST(SKIPPED));
    expect_reason(h_task(r, "announce"), "deploy");
    expect_run(r, RS(RUNNING));
    finish(h_task(r, "audit"));
    expect_run(r, RS(FAILED));
}

Test(flow, declared_output_params_must_be_written)
{
    run_t *r = h_submit(s, GATE);
    task_t *ev = h_task(r, "evaluate");
    finish(ev, "other", "1"); /* exit 0, but without 'better' */
    expect_status(ev, ST(FAILED));
    cr_assert(dag_task_final(ev));
    expect_reason(ev, "declared output param 'better' was not written");
    cr_assert_eq(dag_current_attempt(ev)->status, ST(FAILED));
    expect_status(h_task(r, "deploy"), ST(SKIPPED));
    expect_status(h_task(r, "announce"), ST(SKIPPED));
    expect_status(h_task(r, "audit"), ST(SKIPPED));
    expect_run(r, RS(FAILED));
}

Test(flow, declared_output_artifacts_must_be_uploaded)
{
    run_t *r = h_submit(s, "name: art\n"
                           "steps:\n"
                           "  - {name: make, command: [m], outputs: {artifacts: [model]}}\n");
    task_t *t = h_task(r, "make");
    finish(t);
    expect_status(t, ST(FAILED));
    expect_reason(t, "'model' was not produced");

    /* named, but its blob never reached droverd */
    r = h_submit(s, "name: art2\n"
                    "steps:\n"
                    "  - {name: make, command: [m], outputs: {artifacts: [model]}}\n");
    t = h_task(r, "make");
    uint8_t d[DIGEST_LEN];
    digest_buffer("never uploaded", 14, d);
    art_t a = {"model", d, 14};
    finish_full(t, 0, &a, 1, NULL);
    expect_status(t, ST(FAILED));
    expect_reason(t, "not uploaded");
}

/* ------------------------------------------------------------ fan-out */

static const char *FAN = "name: fan\n"
                         "steps:\n"
                         "  - name: shard\n"
                         "    for_each: [\"a\", \"b\", \"c\", \"d\", \"e\"]\n"
                         "    parallelism: 2\n"
                         "    command: [work, \"{{item}}\"]\n"
                         "    outputs: {params: [r]}\n"
                         "  - name: gather\n"
                         "    needs: [shard]\n"
                         "    command: [gather, \"{{steps.shard.outputs.params.r}}\"]\n";

static void expect_at_most_active(const task_t *g, size_t cap)
{
    size_t n = active_items(g);
    cr_assert_leq(n, cap, "%zu items of %s active, parallelism %zu", n, g->name, cap);
}

Test(flow, fan_out_of_a_literal_list_under_parallelism)
{
    run_t *r = h_submit(s, FAN);
    task_t *g = h_task(r, "shard"), *gather = h_task(r, "gather");
    expect_status(g, ST(RUNNING));
    cr_assert_eq(g->n_items, 5);
    const char *vals[] = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < 5; i++) {
        task_t *it = item(r, "shard", i);
        cr_assert(it->is_item);
        cr_assert_eq(it->item, i);
        cr_assert_str_eq(it->item_value, vals[i]);
        char want[16];
        snprintf(want, sizeof want, "shard[%zu]", i);
        cr_assert_str_eq(it->name, want);
        expect_status(it, i < 2 ? ST(READY) : ST(WAITING));
    }
    cr_assert_eq(active_items(g), 2);

    agent();
    placer_place(s);
    expect_status(item(r, "shard", 0), ST(ASSIGNED));
    expect_status(item(r, "shard", 1), ST(ASSIGNED));
    expect_status(item(r, "shard", 2), ST(WAITING));
    cr_assert_eq(g->n_attempts, 0, "the group itself never runs");
    for (size_t i = 0; i < 2; i++) {
        const Drover__Assignment *as = assignment(item(r, "shard", i));
        cr_assert_not_null(as, "no assignment for shard[%zu]", i);
        cr_assert_eq(as->n_argv, 2);
        cr_assert_str_eq(as->argv[0], "work");
        cr_assert_str_eq(as->argv[1], vals[i]);
    }

    /* items end out of order; each end releases exactly one more */
    size_t order[] = {1, 0, 3, 2, 4};
    for (size_t k = 0; k < 5; k++) {
        task_t *it = item(r, "shard", order[k]);
        char out[8];
        snprintf(out, sizeof out, "R-%s", vals[order[k]]);
        dag_task_started(s, it, 0);
        expect_at_most_active(g, 2);
        finish(it, "r", out);
        expect_status(it, ST(SUCCEEDED));
        expect_at_most_active(g, 2);
        size_t left = 0;
        for (size_t i = 0; i < 5; i++)
            left += !dag_task_final(item(r, "shard", i));
        cr_assert_eq(active_items(g), left < 2 ? left : 2, "after shard[%zu]: %zu active", order[k],
                     active_items(g));
        if (k < 4) {
            expect_status(g, ST(RUNNING));
            expect_status(gather, ST(WAITING));
            placer_place(s);
        }
    }
    expect_status(g, ST(SUCCEEDED));
    /* fan-in: the items' values in item order, whatever order they ended */
    cr_assert_str_eq(param(g, "r"), "[\"R-a\",\"R-b\",\"R-c\",\"R-d\",\"R-e\"]", "r = %s",
                     param(g, "r"));
    expect_status(gather, ST(READY));
    placer_place(s);
    const Drover__Assignment *as = assignment(gather);
    cr_assert_not_null(as);
    cr_assert_str_eq(as->argv[1], "[\"R-a\",\"R-b\",\"R-c\",\"R-d\",\"R-e\"]");
    expect_run(r, RS(RUNNING));
    finish(gather);
    expect_run(r, RS(SUCCEEDED));
}

static const char *DYN = "name: dyn\n"
                         "steps:\n"
                         "  - {name: list, command: [list], outputs: {params: [shards]}}\n"
                         "  - name: work\n"
                         "    needs: [list]\n"
                         "    for_each: \"{{steps.list.outputs.params.shards}}\"\n"
                         "    command: [work, \"{{item}}\"]\n"
                         "    outputs: {params: [n]}\n"
                         "  - name: sum\n"
                         "    needs: [work]\n"
                         "    command: [sum, \"{{steps.work.outputs.params.n}}\"]\n";

Test(flow, fan_out_of_an_output_param_list)
{
    run_t *r = h_submit(s, DYN);
    task_t *work = h_task(r, "work"), *sum = h_task(r, "sum");
    expect_status(work, ST(WAITING));
    cr_assert_eq(r->n_tasks, 3, "no items before the list is known");
    finish(h_task(r, "list"), "shards", "[\"x\", {\"k\": 1}, 3, \"y z\"]");
    expect_status(work, ST(RUNNING));
    cr_assert_eq(work->n_items, 4);
    const char *vals[] = {"x", "{\"k\":1}", "3", "y z"};
    for (size_t i = 0; i < 4; i++) {
        task_t *it = item(r, "work", i);
        cr_assert_str_eq(it->item_value, vals[i]);
        expect_status(it, ST(READY)); /* no parallelism cap */
    }
    placer_place(s);
    for (size_t i = 0; i < 4; i++) {
        const Drover__Assignment *as = assignment(item(r, "work", i));
        cr_assert_not_null(as);
        cr_assert_str_eq(as->argv[1], vals[i], "work[%zu] got %s", i, as->argv[1]);
    }
    for (size_t i = 4; i-- > 0;) {
        char n[8];
        snprintf(n, sizeof n, "%zu", i * 10);
        finish(item(r, "work", i), "n", n);
    }
    expect_status(work, ST(SUCCEEDED));
    cr_assert_str_eq(param(work, "n"), "[\"0\",\"10\",\"20\",\"30\"]");
    expect_status(sum, ST(READY));
    cr_assert_not_null(sum->argv);
    cr_assert_str_eq(sum->argv[1], "[\"0\",\"10\",\"20\",\"30\"]");
}

Test(flow, a_failed_item_fails_the_group_after_the_others_end)
{
    run_t *r = h_submit(s, "name: fan\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: [a, b, c]\n"
                           "    parallelism: 1\n"
                           "    command: [work, \"{{item}}\"]\n"
                           "  - {name: gather, needs: [shard], command: [g]}\n"
                           "  - {name: after, needs: [gather], command: [g]}\n");
    task_t *g = h_task(r, "shard");
    fail(item(r, "shard", 0), 3);
    expect_status(item(r, "shard", 0), ST(FAILED));
    cr_assert(dag_task_final(item(r, "shard", 0)), "no retries: final");
    /* the others still run, one at a time */
    expect_status(g, ST(RUNNING));
    expect_status(item(r, "shard", 1), ST(READY));
    expect_status(item(r, "shard", 2), ST(WAITING));
    expect_status(h_task(r, "gather"), ST(WAITING));
    finish(item(r, "shard", 1));
    expect_status(item(r, "shard", 2), ST(READY));
    expect_status(g, ST(RUNNING));
    finish(item(r, "shard", 2));
    expect_status(g, ST(FAILED));
    expect_reason(g, "1 of 3 items failed");
    expect_status(h_task(r, "gather"), ST(SKIPPED));
    expect_reason(h_task(r, "gather"), "shard");
    expect_status(h_task(r, "after"), ST(SKIPPED));
    expect_run(r, RS(FAILED));
}

Test(flow, an_empty_list_succeeds_at_once)
{
    run_t *r = h_submit(s, "name: empty\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: []\n"
                           "    command: [work, \"{{item}}\"]\n"
                           "    outputs: {params: [r]}\n"
                           "  - name: gather\n"
                           "    needs: [shard]\n"
                           "    command: [gather, \"{{steps.shard.outputs.params.r}}\"]\n");
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(SUCCEEDED));
    cr_assert_eq(g->n_items, 0);
    cr_assert_eq(r->n_tasks, 2);
    cr_assert_str_eq(param(g, "r"), "[]");
    task_t *gather = h_task(r, "gather");
    expect_status(gather, ST(READY));
    cr_assert_str_eq(gather->argv[1], "[]");

    /* the same from an output param */
    r = h_submit(s, DYN);
    finish(h_task(r, "list"), "shards", " [ ] ");
    expect_status(h_task(r, "work"), ST(SUCCEEDED));
    expect_status(h_task(r, "sum"), ST(READY));
    cr_assert_str_eq(h_task(r, "sum")->argv[1], "[]");
}

Test(flow, for_each_from_a_param_that_is_not_a_list_fails_the_group)
{
    const char *bad[] = {"{\"a\": 1}", "a, b", "[1,]", "", "\"[1]\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        run_t *r = h_submit(s, DYN);
        finish(h_task(r, "list"), "shards", bad[i]);
        task_t *work = h_task(r, "work");
        expect_status(work, ST(FAILED));
        expect_reason(work, "not a JSON list");
        cr_assert_eq(work->n_items, 0, "'%s' made %zu items", bad[i], work->n_items);
        expect_status(h_task(r, "sum"), ST(SKIPPED));
        expect_run(r, RS(FAILED));
    }
}

/* for_each: {range: ...}: the items are the decimal strings, made when
 * the group is decided, and behave as a list of those numbers would */
Test(flow, fan_out_of_a_range)
{
    run_t *r = h_submit(s, "name: rng\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: {range: [10, 0, -3]}\n"
                           "    parallelism: 2\n"
                           "    when: \"{{item}} != 4\"\n"
                           "    command: [work, \"{{item}}\"]\n"
                           "    outputs: {params: [r]}\n"
                           "  - name: gather\n"
                           "    needs: [shard]\n"
                           "    command: [gather, \"{{steps.shard.outputs.params.r}}\"]\n");
    task_t *g = h_task(r, "shard");
    cr_assert(g->step->has_range);
    cr_assert_eq(g->step->n_items, 0, "a range is stored as three numbers");
    expect_status(g, ST(RUNNING));
    cr_assert_eq(g->n_items, 4);
    const char *vals[] = {"10", "7", "4", "1"};
    for (size_t i = 0; i < 4; i++) {
        task_t *it = item(r, "shard", i);
        char want[16];
        snprintf(want, sizeof want, "shard[%zu]", i);
        cr_assert_str_eq(it->name, want);
        cr_assert(it->is_item);
        cr_assert_eq(it->item, i);
        cr_assert_str_eq(it->item_value, vals[i]);
        expect_status(it, i < 2 ? ST(READY) : ST(WAITING));
    }
    agent();
    placer_place(s);
    for (size_t i = 0; i < 2; i++) {
        const Drover__Assignment *as = assignment(item(r, "shard", i));
        cr_assert_not_null(as, "no assignment for shard[%zu]", i);
        cr_assert_str_eq(as->argv[1], vals[i]);
    }
    finish(item(r, "shard", 0), "r", "R10");
    finish(item(r, "shard", 1), "r", "R7");
    /* 4 is skipped by its condition as it is released; 1 runs */
    expect_status(item(r, "shard", 2), ST(SKIPPED));
    expect_status(item(r, "shard", 3), ST(READY));
    placer_place(s);
    cr_assert_str_eq(assignment(item(r, "shard", 3))->argv[1], "1");
    finish(item(r, "shard", 3), "r", "R1");
    expect_status(g, ST(SUCCEEDED));
    cr_assert_str_eq(param(g, "r"), "[\"R10\",\"R7\",\"R1\"]"); /* the skip left out */
    expect_status(h_task(r, "gather"), ST(READY));
}

Test(flow, an_empty_range_succeeds_at_once)
{
    run_t *r =
        h_submit(s, "name: rng\n"
                    "steps:\n"
                    "  - {name: shard, for_each: {range: [5, 5]}, command: [w, \"{{item}}\"]}\n"
                    "  - {name: after, needs: [shard], command: [a]}\n");
    expect_status(h_task(r, "shard"), ST(SUCCEEDED));
    cr_assert_eq(h_task(r, "shard")->n_items, 0);
    expect_status(h_task(r, "after"), ST(READY));
}

Test(flow, a_range_at_the_ends_of_int64)
{
    run_t *r = h_submit(s, "name: rng\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each:\n"
                           "      range: [-9223372036854775808, 9223372036854775807, "
                           "9223372036854775807]\n"
                           "    command: [w, \"{{item}}\"]\n");
    task_t *g = h_task(r, "shard");
    cr_assert_eq(g->n_items, 3);
    cr_assert_str_eq(item(r, "shard", 0)->item_value, "-9223372036854775808");
    cr_assert_str_eq(item(r, "shard", 1)->item_value, "-1");
    cr_assert_str_eq(item(r, "shard", 2)->item_value, "9223372036854775806");
}

/* Beyond the literal list's 100,000: a range costs no spec bytes. Items
 * decided at once must not nest (see a_large_fan_out_whose_items_...). */
Test(flow, a_range_larger_than_a_literal_list_may_be)
{
    run_t *r = h_submit(s, "name: big\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: {range: [0, 300000, 2]}\n"
                           "    when: \"{{item}} < 0\"\n"
                           "    command: [w, \"{{item}}\"]\n");
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(SKIPPED)); /* every item skipped (issue 15) */
    cr_assert_eq(g->n_items, 150000);
    task_t *last = item(r, "shard", 149999);
    cr_assert_str_eq(last->item_value, "299998");
    expect_status(last, ST(SKIPPED));
    expect_run(r, RS(SUCCEEDED));
}

Test(flow, a_range_beyond_max_items_fails_the_group)
{
    s->cfg.max_items = 3; /* droverd restarted with less than the run was submitted under */
    uint64_t over = s->counters.over_limits;
    run_t *r = h_submit(s, "name: rng\n"
                           "steps:\n"
                           "  - {name: shard, for_each: {range: 4}, command: [w, \"{{item}}\"]}\n"
                           "  - {name: after, needs: [shard], command: [a]}\n");
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(FAILED));
    expect_reason(g, "for_each range has 4 items, more than 3 (droverd's --max-items)");
    cr_assert_eq(g->n_items, 0);
    cr_assert_eq(s->counters.over_limits, over + 1);
    expect_status(h_task(r, "after"), ST(SKIPPED));
    expect_run(r, RS(FAILED));
    /* exactly the limit is fine */
    r = h_submit(s, "name: rng\n"
                    "steps:\n"
                    "  - {name: shard, for_each: {range: [1, 4]}, command: [w, \"{{item}}\"]}\n");
    expect_status(h_task(r, "shard"), ST(RUNNING));
    cr_assert_eq(h_task(r, "shard")->n_items, 3);
    cr_assert_str_eq(item(r, "shard", 2)->item_value, "3");
}

/* ------------------------------------------------------------ finally */

static const char *HANDLERS = "name: handlers\n"
                              "steps:\n"
                              "  - {name: a, command: [a], outputs: {params: [p]}}\n"
                              "  - {name: b, needs: [a], command: [b]}\n"
                              "  - {name: c, command: [c]}\n"
                              "finally:\n"
                              "  - name: notify\n"
                              "    command: [notify, \"{{run.status}}\", \"{{run.id}}\"]\n"
                              "  - name: cleanup\n"
                              "    script: echo cleaning up after {{run.name}}\n";

Test(flow, exit_handlers_wait_for_every_main_step_then_see_succeeded)
{
    run_t *r = h_submit(s, HANDLERS);
    task_t *a = h_task(r, "a"), *b = h_task(r, "b"), *c = h_task(r, "c"),
           *notify = h_task(r, "notify"), *cleanup = h_task(r, "cleanup");
    expect_status(notify, ST(WAITING));
    expect_status(cleanup, ST(WAITING));
    finish(a, "p", "1");
    finish(c);
    expect_status(notify, ST(WAITING));
    finish(b);
    expect_status(notify, ST(READY));
    expect_status(cleanup, ST(READY));
    cr_assert_str_eq(notify->argv[1], "succeeded");
    cr_assert_str_eq(notify->argv[2], r->rec->id);
    placer_place(s);
    const Drover__Assignment *as = assignment(notify);
    cr_assert_not_null(as);
    cr_assert_str_eq(as->argv[1], "succeeded");
    expect_run(r, RS(RUNNING));
    cr_assert_eq(r->rec->finished_ms, 0, "the run ends after its handlers");
    finish(notify);
    expect_run(r, RS(RUNNING));
    finish(cleanup);
    expect_run(r, RS(SUCCEEDED));
}

Test(flow, exit_handlers_see_failed)
{
    run_t *r = h_submit(s, HANDLERS);
    task_t *notify = h_task(r, "notify");
    fail(h_task(r, "a"), 1);
    expect_status(h_task(r, "b"), ST(SKIPPED));
    expect_status(notify, ST(WAITING)); /* c still runs */
    finish(h_task(r, "c"));
    expect_status(notify, ST(READY));
    cr_assert_str_eq(notify->argv[1], "failed");
    finish(notify);
    finish(h_task(r, "cleanup"));
    expect_run(r, RS(FAILED));
}

Test(flow, exit_handlers_read_outputs_of_steps_that_ran)
{
    run_t *r = h_submit(s, "name: h\n"
                           "steps:\n"
                           "  - {name: a, command: [a], outputs: {params: [p]}}\n"
                           "  - {name: b, needs: [a], command: [b], outputs: {params: [q]}}\n"
                           "finally:\n"
                           "  - name: notify\n"
                           "    command: [n, \"p={{steps.a.outputs.params.p}}\", "
                           "\"q={{steps.b.outputs.params.q}}\"]\n");
    finish(h_task(r, "a"), "p", "42");
    fail(h_task(r, "b"), 2);
    task_t *notify = h_task(r, "notify");
    expect_status(notify, ST(READY));
    cr_assert_str_eq(notify->argv[1], "p=42");
    cr_assert_str_eq(notify->argv[2], "q=", "a step that failed has empty outputs");
}

Test(flow, cancel_leaves_exit_handlers_to_run_and_a_second_cancel_stops_them)
{
    run_t *r = h_submit(s, HANDLERS);
    task_t *a = h_task(r, "a"), *b = h_task(r, "b"), *c = h_task(r, "c"),
           *notify = h_task(r, "notify"), *cleanup = h_task(r, "cleanup");
    agent_t *ag = agent();
    placer_place(s);
    dag_task_started(s, a, 0);
    finish(c);
    dag_cancel_run(s, r);
    expect_status(a, ST(CANCELLED));
    expect_status(b, ST(CANCELLED));
    expect_status(c, ST(SUCCEEDED));
    expect_status(notify, ST(READY));
    expect_status(cleanup, ST(READY));
    cr_assert_str_eq(notify->argv[1], "cancelled");
    expect_run(r, RS(RUNNING));
    cr_assert_eq(r->rec->finished_ms, 0);
    placer_place(s);
    const Drover__Assignment *as = assignment(notify);
    cr_assert_not_null(as);
    cr_assert_str_eq(as->argv[1], "cancelled");
    uint64_t notify_attempt = dag_current_attempt(notify)->id;
    finish(cleanup);
    expect_run(r, RS(RUNNING));

    size_t kills = ag->out.n_kills;
    dag_cancel_run(s, r);
    expect_status(notify, ST(CANCELLED));
    expect_status(cleanup, ST(SUCCEEDED));
    expect_run(r, RS(CANCELLED));
    cr_assert_gt(r->rec->finished_ms, 0);
    cr_assert_eq(ag->out.n_kills, kills + 1, "the running handler is killed");
    cr_assert_eq(ag->out.kills[kills], notify_attempt);
}

Test(flow, a_cancelled_run_ends_cancelled_when_its_handlers_finish)
{
    run_t *r = h_submit(s, HANDLERS);
    dag_cancel_run(s, r);
    task_t *notify = h_task(r, "notify");
    expect_status(notify, ST(READY));
    cr_assert_str_eq(notify->argv[1], "cancelled");
    finish(notify);
    finish(h_task(r, "cleanup"));
    expect_run(r, RS(CANCELLED));
}

/* ------------------------------------------------------------ cache */

static const char *CACHED = "name: cached\n"
                            "params: {lr: \"0.1\"}\n"
                            "steps:\n"
                            "  - name: prep\n"
                            "    command: [prep]\n"
                            "    outputs: {params: [n], artifacts: [data]}\n"
                            "  - name: train\n"
                            "    needs: [prep]\n"
                            "    command: [train, --lr, \"{{params.lr}}\", --n, "
                            "\"{{steps.prep.outputs.params.n}}\"]\n"
                            "    inputs: {artifacts: {d: prep.data}}\n"
                            "    outputs: {params: [acc], artifacts: [model]}\n"
                            "  - name: eval\n"
                            "    needs: [train]\n"
                            "    inputs: {artifacts: {m: train.model}}\n"
                            "    command: [eval]\n"
                            "    outputs: {params: [score]}\n"
                            "  - name: report\n"
                            "    needs: [eval]\n"
                            "    cache: false\n"
                            "    command: [report, \"{{steps.eval.outputs.params.score}}\"]\n";

typedef struct {
    uint8_t data[DIGEST_LEN], model[DIGEST_LEN], model2[DIGEST_LEN];
} cache_blobs_t;

/* Blob records the outputs can name (as uploads leave them). */
static void make_blobs(cache_blobs_t *b)
{
    digest_buffer("dataset", 7, b->data);
    digest_buffer("model-1", 7, b->model);
    digest_buffer("model-2", 7, b->model2);
    blobstore_queue_op(s, BLOB_OP_NEW, b->data, 0, 7);
    blobstore_queue_op(s, BLOB_OP_NEW, b->model, 0, 7);
    blobstore_queue_op(s, BLOB_OP_NEW, b->model2, 0, 7);
    commit();
}

/* Run every step of a CACHED run that is not served from the cache;
 * train produces model (or model2). */
static void run_cached_pipeline(run_t *r, const cache_blobs_t *b, bool second_model)
{
    task_t *prep = h_task(r, "prep"), *train = h_task(r, "train"), *ev = h_task(r, "eval"),
           *rep = h_task(r, "report");
    if (!dag_task_final(prep)) {
        art_t a = {"data", b->data, 7};
        finish_full(prep, 0, &a, 1, "n", "100", NULL);
    }
    if (!dag_task_final(train)) {
        art_t a = {"model", second_model ? b->model2 : b->model, 7};
        finish_full(train, 0, &a, 1, "acc", "0.9", NULL);
    }
    if (!dag_task_final(ev))
        finish(ev, "score", "0.8");
    if (!dag_task_final(rep))
        finish(rep);
    expect_run(r, RS(SUCCEEDED));
}

static void expect_cached_from(const task_t *t, const run_t *src)
{
    expect_status(t, ST(CACHED));
    cr_assert_eq(t->n_attempts, 0, "a cached step never runs");
    char *want = xasprintf("%s/%s", src->rec->id, t->name);
    cr_assert_str_eq(t->cached_from, want);
    free(want);
}

/* CACHED from the same step of another run (whichever the cache now
 * points at: the entry follows the latest run that produced or reused the
 * result). */
static void expect_cached(const task_t *t)
{
    expect_status(t, ST(CACHED));
    cr_assert_eq(t->n_attempts, 0, "a cached step never runs");
    cr_assert_not_null(t->cached_from);
    const char *slash = strchr(t->cached_from, '/');
    cr_assert_not_null(slash, "cached_from '%s'", t->cached_from);
    cr_assert_str_eq(slash + 1, t->name);
    cr_assert(strncmp(t->cached_from, t->run->rec->id, (size_t)(slash - t->cached_from)) != 0,
              "%s cached from its own run", t->name);
}

Test(flow, an_identical_run_is_served_from_the_cache)
{
    cache_blobs_t b;
    make_blobs(&b);
    run_t *r1 = h_submit(s, CACHED);
    run_cached_pipeline(r1, &b, false);
    commit(); /* the cache entries become durable */

    run_t *r2 = h_submit(s, CACHED);
    task_t *prep = h_task(r2, "prep"), *train = h_task(r2, "train"), *ev = h_task(r2, "eval"),
           *rep = h_task(r2, "report");
    expect_cached_from(prep, r1);
    expect_cached_from(train, r1);
    expect_cached_from(ev, r1);
    /* with the same outputs */
    cr_assert_str_eq(param(prep, "n"), "100");
    cr_assert_str_eq(param(train, "acc"), "0.9");
    cr_assert_str_eq(param(ev, "score"), "0.8");
    cr_assert_eq(train->n_outputs, 1);
    cr_assert_str_eq(train->outputs[0]->name, "model");
    cr_assert_arr_eq(train->outputs[0]->digest.data, b.model, DIGEST_LEN);
    cr_assert_eq(prep->n_outputs, 1);
    cr_assert_arr_eq(prep->outputs[0]->files[0]->digest.data, b.data, DIGEST_LEN);
    /* cache: false still runs, with the reused outputs */
    expect_status(rep, ST(READY));
    cr_assert_str_eq(rep->argv[1], "0.8");
    finish(rep);
    expect_run(r2, RS(SUCCEEDED));

    /* durable: also after a restart */
    commit();
    h_sched_restart();
    run_t *r3 = h_submit(s, CACHED);
    task_t *t3 = h_task(r3, "train");
    expect_cached(t3);
    cr_assert_str_eq(param(t3, "acc"), "0.9");
    cr_assert_arr_eq(t3->outputs[0]->digest.data, b.model, DIGEST_LEN);
    expect_status(h_task(r3, "report"), ST(READY));
    cr_assert_str_eq(h_task(r3, "report")->argv[1], "0.8");
}

Test(flow, a_changed_param_reruns_only_what_it_changes)
{
    cache_blobs_t b;
    make_blobs(&b);
    run_t *r1 = h_submit(s, CACHED);
    run_cached_pipeline(r1, &b, false);
    commit();

    /* lr changes train's command; train makes the same model again, so
     * eval (same command, same input digest) is still cached */
    run_t *r2 = submit_with(CACHED, 0, "lr", "0.2", NULL);
    task_t *train = h_task(r2, "train");
    expect_cached_from(h_task(r2, "prep"), r1);
    expect_status(train, ST(READY));
    cr_assert_str_eq(train->argv[2], "0.2");
    art_t m = {"model", b.model, 7};
    finish_full(train, 0, &m, 1, "acc", "0.9", NULL);
    expect_cached_from(h_task(r2, "eval"), r1);
    expect_status(h_task(r2, "report"), ST(READY));
    finish(h_task(r2, "report"));
    commit();

    /* lr changes again and train makes a different model: eval reruns */
    run_t *r3 = submit_with(CACHED, 0, "lr", "0.3", NULL);
    expect_cached(h_task(r3, "prep"));
    expect_status(h_task(r3, "train"), ST(READY));
    art_t m2 = {"model", b.model2, 7};
    finish_full(h_task(r3, "train"), 0, &m2, 1, "acc", "0.7", NULL);
    expect_status(h_task(r3, "eval"), ST(READY));
    finish(h_task(r3, "eval"), "score", "0.5");
    expect_status(h_task(r3, "report"), ST(READY));
    cr_assert_str_eq(h_task(r3, "report")->argv[1], "0.5");
    finish(h_task(r3, "report"));
    commit();

    /* back to lr=0.2: train from r2 (the only run with that command), and
     * eval with the score of the first model, not the second */
    run_t *r4 = submit_with(CACHED, 0, "lr", "0.2", NULL);
    expect_cached_from(h_task(r4, "train"), r2);
    expect_cached(h_task(r4, "eval"));
    cr_assert_str_eq(param(h_task(r4, "eval"), "score"), "0.8");
    cr_assert_str_eq(h_task(r4, "report")->argv[1], "0.8");
}

Test(flow, no_cache_runs_everything_and_cache_false_steps_always_run)
{
    cache_blobs_t b;
    make_blobs(&b);
    run_t *r1 = h_submit(s, CACHED);
    run_cached_pipeline(r1, &b, false);
    commit();

    run_t *r2 = submit_with(CACHED, 1, NULL);
    cr_assert(r2->rec->no_cache);
    expect_status(h_task(r2, "prep"), ST(READY));
    run_cached_pipeline(r2, &b, true); /* a different model this time */
    for (size_t i = 0; i < r2->n_tasks; i++)
        cr_assert_eq(r2->tasks[i]->n_attempts, 1, "%s did not run", r2->tasks[i]->name);
    commit();

    /* a --no-cache run still refreshes the cache: the next run reuses
     * r2's results */
    run_t *r3 = h_submit(s, CACHED);
    expect_cached_from(h_task(r3, "prep"), r2);
    expect_cached_from(h_task(r3, "train"), r2);
    cr_assert_arr_eq(h_task(r3, "train")->outputs[0]->digest.data, b.model2, DIGEST_LEN);
    expect_status(h_task(r3, "report"), ST(READY));

    /* a step with cache: false never is served from the cache */
    const char *nc = "name: nc\n"
                     "steps:\n"
                     "  - {name: a, command: [a], cache: false}\n";
    run_t *n1 = h_submit(s, nc);
    finish(h_task(n1, "a"));
    commit();
    run_t *n2 = h_submit(s, nc);
    expect_status(h_task(n2, "a"), ST(READY));
}

static void api_clear_cache(void)
{
    /* as `drover cache clear` asks */
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty empty = DROVER__EMPTY__INIT;
    req.op_case = DROVER__API_REQUEST__OP_CLEAR_CACHE;
    req.clear_cache = &empty;
    size_t n = drover__api_request__get_packed_size(&req);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__api_request__pack(&req, buf);
    api_handle(s, zframe_new("cli", 3), buf, n);
    free(buf);
}

Test(flow, clear_cache_drops_every_entry)
{
    cache_blobs_t b;
    make_blobs(&b);
    run_t *r1 = h_submit(s, CACHED);
    run_cached_pipeline(r1, &b, false);
    commit();
    run_t *r2 = h_submit(s, CACHED);
    expect_cached_from(h_task(r2, "prep"), r1);
    finish(h_task(r2, "report"));
    commit();

    api_clear_cache();
    commit();
    run_t *r3 = h_submit(s, CACHED);
    expect_status(h_task(r3, "prep"), ST(READY));
    cr_assert_null(h_task(r3, "prep")->cached_from);
    /* it refills as steps succeed */
    run_cached_pipeline(r3, &b, false);
    commit();
    expect_cached_from(h_task(h_submit(s, CACHED), "train"), r3);
}

static bool count_entry(const char *run_id, void *arg)
{
    (*(size_t *)arg)++;
    return true;
}

static size_t cache_entries(void)
{
    size_t n = 0;
    uint64_t removed;
    cr_assert_eq(store_begin(s->store), 0);
    cr_assert_eq(store_cache_prune(s->store, count_entry, &n, &removed), 0);
    store_abort(s->store);
    return n;
}

/* Entries that point at deleted runs leave the cache at the hourly sweep
 * (the store does not grow with every run ever cached). */
Test(flow, entries_of_deleted_runs_leave_the_cache)
{
    cache_blobs_t b;
    make_blobs(&b);
    run_t *r1 = h_submit(s, CACHED);
    run_cached_pipeline(r1, &b, false);
    commit();
    size_t n = cache_entries();
    cr_assert_gt(n, 0);
    cr_assert_eq(dag_delete_run(s, r1), 0);
    commit();
    cr_assert_eq(cache_entries(), n, "kept until the sweep");
    s->journal.prune_cache = true; /* what the hourly sweep sets */
    commit();
    cr_assert_eq(cache_entries(), 0);
    run_t *r2 = h_submit(s, CACHED);
    expect_status(h_task(r2, "prep"), ST(READY));
    cr_assert_null(h_task(r2, "prep")->cached_from);
}

/* The clear is applied in the same commit as entries queued before it
 * (a run served from the cache, or a step that succeeded, in the same
 * loop iteration as the request): those must go too. */
Test(flow, clear_cache_drops_entries_queued_before_it)
{
    cache_blobs_t b;
    make_blobs(&b);
    run_t *r1 = h_submit(s, CACHED);
    run_cached_pipeline(r1, &b, false);
    commit();
    run_t *r2 = h_submit(s, CACHED); /* served from the cache: entries queued */
    expect_cached_from(h_task(r2, "prep"), r1);
    api_clear_cache();
    commit();
    run_t *r3 = h_submit(s, CACHED);
    expect_status(h_task(r3, "prep"), ST(READY));
}

Test(flow, fan_out_items_are_cached_one_by_one)
{
    const char *spec = "name: items\n"
                       "params: {extra: \"\"}\n"
                       "steps:\n"
                       "  - name: shard\n"
                       "    for_each: [a, b]\n"
                       "    command: [work, \"{{item}}\"]\n"
                       "    outputs: {params: [r]}\n"
                       "  - name: more\n"
                       "    for_each: [a, b]\n"
                       "    command: [work, \"{{item}}{{params.extra}}\"]\n";
    run_t *r1 = h_submit(s, spec);
    finish(item(r1, "shard", 0), "r", "ra");
    finish(item(r1, "shard", 1), "r", "rb");
    finish(item(r1, "more", 0));
    finish(item(r1, "more", 1));
    expect_run(r1, RS(SUCCEEDED));
    commit();
    run_t *r2 = submit_with(spec, 0, "extra", "-x", NULL);
    expect_status(h_task(r2, "shard"), ST(SUCCEEDED));
    expect_cached_from(item(r2, "shard", 0), r1);
    expect_cached_from(item(r2, "shard", 1), r1);
    cr_assert_str_eq(param(h_task(r2, "shard"), "r"), "[\"ra\",\"rb\"]");
    expect_status(item(r2, "more", 0), ST(READY));
    ensure_assigned(item(r2, "more", 0)); /* a READY item is expanded when assigned */
    cr_assert_str_eq(assignment(item(r2, "more", 0))->argv[1], "a-x");
}

/* ------------------------------------------------------------ restart */

Test(flow, a_half_done_fan_out_survives_a_restart)
{
    run_t *r = h_submit(s, FAN);
    agent();
    placer_place(s);
    task_t *i0 = item(r, "shard", 0), *i1 = item(r, "shard", 1);
    dag_task_started(s, i0, 0);
    dag_task_started(s, i1, 0);
    finish(i0, "r", "R-a");
    placer_place(s); /* shard[2] */
    expect_status(item(r, "shard", 2), ST(ASSIGNED));
    uint64_t id1 = dag_current_attempt(i1)->id;
    uint64_t id2 = dag_current_attempt(item(r, "shard", 2))->id;

    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    expect_run(r, RS(RUNNING));
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(RUNNING));
    cr_assert_eq(g->n_items, 5);
    cr_assert_eq(r->n_tasks, 7);
    const char *vals[] = {"a", "b", "c", "d", "e"};
    Drover__TaskStatus want[] = {ST(SUCCEEDED), ST(RUNNING), ST(ASSIGNED), ST(WAITING),
                                 ST(WAITING)};
    for (size_t i = 0; i < 5; i++) {
        task_t *it = item(r, "shard", i);
        cr_assert(it->is_item);
        cr_assert_str_eq(it->item_value, vals[i]);
        expect_status(it, want[i]);
    }
    cr_assert_str_eq(param(item(r, "shard", 0), "r"), "R-a");
    cr_assert_eq(active_items(g), 2, "parallelism holds after a restart");
    expect_status(h_task(r, "gather"), ST(WAITING));

    /* the agent comes back holding both attempts */
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    uint64_t held[2] = {id1, id2};
    cap.cpu_milli = 1000000;
    cap.memory_bytes = 1ull << 40;
    reg.name = "a1";
    reg.capacity = &cap;
    reg.attempts = held;
    reg.n_attempts = 2;
    m.register_ = &reg;
    h_agent_send(s, "a1", &m);

    finish(item(r, "shard", 1), "r", "R-b");
    expect_status(item(r, "shard", 3), ST(READY));
    cr_assert_eq(active_items(g), 2);
    expect_status(item(r, "shard", 4), ST(WAITING));
    finish(item(r, "shard", 2), "r", "R-c");
    cr_assert_eq(active_items(g), 2);
    finish(item(r, "shard", 3), "r", "R-d");
    expect_status(g, ST(RUNNING));
    finish(item(r, "shard", 4), "r", "R-e");
    expect_status(g, ST(SUCCEEDED));
    cr_assert_str_eq(param(g, "r"), "[\"R-a\",\"R-b\",\"R-c\",\"R-d\",\"R-e\"]");
    task_t *gather = h_task(r, "gather");
    expect_status(gather, ST(READY));
    cr_assert_str_eq(gather->argv[1], "[\"R-a\",\"R-b\",\"R-c\",\"R-d\",\"R-e\"]");
    finish(gather);
    expect_run(r, RS(SUCCEEDED));
}

Test(flow, a_fan_out_group_restored_with_items_still_to_release)
{
    /* parallelism 1: after a restart the WAITING items are still released
     * one at a time */
    run_t *r = h_submit(s, "name: one\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: [a, b, c]\n"
                           "    parallelism: 1\n"
                           "    command: [w, \"{{item}}\"]\n");
    finish(item(r, "shard", 0));
    expect_status(item(r, "shard", 1), ST(READY));
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    task_t *g = h_task(r, "shard");
    expect_status(item(r, "shard", 1), ST(READY));
    expect_status(item(r, "shard", 2), ST(WAITING));
    cr_assert(h_in_ready_queue(s, item(r, "shard", 1)));
    cr_assert_eq(active_items(g), 1);
    finish(item(r, "shard", 1));
    expect_status(item(r, "shard", 2), ST(READY));
    finish(item(r, "shard", 2));
    expect_status(g, ST(SUCCEEDED));
    expect_run(r, RS(SUCCEEDED));
}

/* The range is kept in the run's record: a group not yet expanded makes
 * its items after a restart; items are cached one by one. */
Test(flow, a_range_survives_a_restart_and_its_items_are_cached)
{
    const char *spec = "name: rng\n"
                       "steps:\n"
                       "  - {name: first, command: [f]}\n"
                       "  - name: shard\n"
                       "    needs: [first]\n"
                       "    for_each: {range: [0, 30, 10]}\n"
                       "    command: [w, \"{{item}}\"]\n"
                       "    outputs: {params: [r]}\n";
    run_t *r = h_submit(s, spec);
    cr_assert_eq(r->n_tasks, 2, "no items before the group is decided");
    commit();
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    finish(h_task(r, "first"));
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(RUNNING));
    cr_assert_eq(g->n_items, 3);
    const char *vals[] = {"0", "10", "20"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(item(r, "shard", i)->item_value, vals[i]);
        char out[8];
        snprintf(out, sizeof out, "r%s", vals[i]);
        finish(item(r, "shard", i), "r", out);
    }
    expect_status(g, ST(SUCCEEDED));
    cr_assert_str_eq(param(g, "r"), "[\"r0\",\"r10\",\"r20\"]");
    expect_run(r, RS(SUCCEEDED));
    commit();

    run_t *r2 = h_submit(s, spec);
    expect_cached_from(h_task(r2, "first"), r);
    task_t *g2 = h_task(r2, "shard");
    expect_status(g2, ST(SUCCEEDED));
    for (size_t i = 0; i < 3; i++)
        expect_cached_from(item(r2, "shard", i), r);
    cr_assert_str_eq(param(g2, "r"), "[\"r0\",\"r10\",\"r20\"]");
}

/* Fresh items are not stored (only the group is): a restart right after
 * the expansion makes them again, with their values, names and order. */
Test(flow, items_never_assigned_are_made_again_after_a_restart)
{
    run_t *r = h_submit(s, "name: fresh\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: {range: [5, 11, 2]}\n"
                           "    parallelism: 2\n"
                           "    command: [w, \"{{item}}\"]\n"
                           "  - {name: after, needs: [shard], command: [a]}\n");
    cr_assert_eq(r->n_tasks, 5);
    commit();
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    cr_assert_eq(r->n_tasks, 5, "both steps and all three items");
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(RUNNING));
    cr_assert_eq(active_items(g), 2, "parallelism holds after a restart");
    const char *vals[] = {"5", "7", "9"};
    for (size_t i = 0; i < 3; i++) {
        task_t *it = item(r, "shard", i);
        cr_assert(it->is_item);
        cr_assert_str_eq(it->item_value, vals[i]);
        char name[16];
        snprintf(name, sizeof name, "shard[%zu]", i);
        cr_assert_str_eq(it->name, name);
        cr_assert_eq(dag_find_task(r, name), it);
        cr_assert_str_eq(h_task(r, name)->name, name);
    }
    expect_status(item(r, "shard", 2), ST(WAITING));
    for (size_t i = 0; i < 3; i++) {
        finish(item(r, "shard", i));
        if (i < 2)
            expect_status(g, ST(RUNNING));
    }
    expect_status(g, ST(SUCCEEDED));
    finish(h_task(r, "after"));
    expect_run(r, RS(SUCCEEDED));
}

/* ------------------------------------------------------------ more fan-out */

Test(flow, fan_in_of_artifacts_is_one_directory_with_a_dir_per_item)
{
    uint8_t d[3][DIGEST_LEN];
    const char *content[] = {"part zero", "part one", "part two"};
    for (int i = 0; i < 3; i++) {
        digest_buffer(content[i], strlen(content[i]), d[i]);
        blobstore_queue_op(s, BLOB_OP_NEW, d[i], 0, strlen(content[i]));
    }
    commit();
    run_t *r = h_submit(s, "name: parts\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: [a, b, c]\n"
                           "    command: [w, \"{{item}}\"]\n"
                           "    outputs: {artifacts: [part]}\n"
                           "  - name: merge\n"
                           "    needs: [shard]\n"
                           "    inputs: {artifacts: {parts: shard.part}}\n"
                           "    command: [merge]\n");
    for (int i = 2; i >= 0; i--) {
        art_t a = {"part", d[i], strlen(content[i])};
        finish_full(item(r, "shard", (size_t)i), 0, &a, 1, NULL);
    }
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(SUCCEEDED));
    cr_assert_eq(g->n_outputs, 1);
    const Drover__Artifact *m = g->outputs[0];
    cr_assert_str_eq(m->name, "part");
    cr_assert(m->is_dir);
    cr_assert_eq(m->n_files, 3);
    for (size_t i = 0; i < 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "%zu/part", i);
        cr_assert_str_eq(m->files[i]->path, want);
        cr_assert_arr_eq(m->files[i]->digest.data, d[i], DIGEST_LEN);
        cr_assert_eq(m->files[i]->size, strlen(content[i]));
    }
    cr_assert_eq(m->size, strlen(content[0]) + strlen(content[1]) + strlen(content[2]));
    /* the merge step is handed that directory */
    task_t *merge = h_task(r, "merge");
    expect_status(merge, ST(READY));
    placer_place(s);
    const Drover__Assignment *as = assignment(merge);
    cr_assert_not_null(as);
    cr_assert_eq(as->n_inputs, 1);
    cr_assert_str_eq(as->inputs[0]->local, "parts");
    cr_assert_eq(as->inputs[0]->artifact->n_files, 3);
    cr_assert_str_eq(as->inputs[0]->artifact->files[1]->path, "1/part");
}

Test(flow, when_false_on_a_fan_out_skips_the_whole_group)
{
    run_t *r = h_submit(s, "name: g\n"
                           "steps:\n"
                           "  - {name: check, command: [c], outputs: {params: [go]}}\n"
                           "  - name: shard\n"
                           "    needs: [check]\n"
                           "    when: \"{{steps.check.outputs.params.go}} == yes\"\n"
                           "    for_each: [a, b]\n"
                           "    command: [w, \"{{item}}\"]\n"
                           "  - {name: after, needs: [shard], command: [a]}\n");
    finish(h_task(r, "check"), "go", "no");
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(SKIPPED));
    cr_assert_eq(g->n_items, 0, "a skipped group makes no items");
    expect_status(h_task(r, "after"), ST(SKIPPED));
    expect_run(r, RS(SUCCEEDED));
}

Test(flow, items_with_an_item_condition_are_skipped_one_by_one)
{
    run_t *r = h_submit(s, "name: g\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: [a, b, c, d]\n"
                           "    parallelism: 1\n"
                           "    when: \"'{{item}}' != b && '{{item}}' != c\"\n"
                           "    command: [w, \"{{item}}\"]\n"
                           "    outputs: {params: [r]}\n");
    task_t *g = h_task(r, "shard");
    expect_status(item(r, "shard", 0), ST(READY));
    finish(item(r, "shard", 0), "r", "ra");
    /* b and c are skipped as they are released; d runs */
    expect_status(item(r, "shard", 1), ST(SKIPPED));
    expect_status(item(r, "shard", 2), ST(SKIPPED));
    expect_reason(item(r, "shard", 1), "when");
    expect_status(item(r, "shard", 3), ST(READY));
    expect_status(g, ST(RUNNING));
    finish(item(r, "shard", 3), "r", "rd");
    expect_status(g, ST(SUCCEEDED));
    /* issue 15: skipped items are left out of the collected list */
    cr_assert_str_eq(param(g, "r"), "[\"ra\",\"rd\"]");
}

/* issue 14: "{{ item }}" (spaced) is the same reference as "{{item}}":
 * the condition is decided per item, not taken for the group's (which
 * failed the whole group with "unknown reference: {{item}}"). */
Test(flow, a_spaced_item_condition_is_decided_per_item)
{
    run_t *r = h_submit(s, "name: g\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: [1, 4, 5]\n"
                           "    when: \"{{ item }} != 4\"\n"
                           "    command: [w, \"{{ item }}\", \"{{\\titem\\t}}\"]\n"
                           "    outputs: {params: [r]}\n");
    task_t *g = h_task(r, "shard");
    cr_assert_eq(g->step->when_scope, DROVER__WHEN_SCOPE__WHEN_SCOPE_ITEM);
    expect_status(g, ST(RUNNING));
    cr_assert_eq(g->n_items, 3);
    expect_status(item(r, "shard", 0), ST(READY));
    expect_status(item(r, "shard", 1), ST(SKIPPED));
    expect_reason(item(r, "shard", 1), "when");
    expect_status(item(r, "shard", 2), ST(READY));
    agent();
    placer_place(s);
    cr_assert_str_eq(assignment(item(r, "shard", 0))->argv[1], "1");
    cr_assert_str_eq(assignment(item(r, "shard", 2))->argv[2], "5");
    finish(item(r, "shard", 0), "r", "r1");
    finish(item(r, "shard", 2), "r", "r5");
    expect_status(g, ST(SUCCEEDED));
    cr_assert_str_eq(param(g, "r"), "[\"r1\",\"r5\"]"); /* the skip left out */
    expect_run(r, RS(SUCCEEDED));
}

/* Every spaced form, as a user may write them: items from a step's
 * output, keys of map items, step outputs, the run's name, in command and
 * env and a per-item condition on a key. */
Test(flow, spaced_references_in_every_place)
{
    run_t *r = h_submit(s, "name: sp\n"
                           "steps:\n"
                           "  - {name: list, command: [l], outputs: {params: [xs, tag]}}\n"
                           "  - name: each\n"
                           "    needs: [list]\n"
                           "    for_each: \"{{  steps.list.outputs.params.xs  }}\"\n"
                           "    when: \"'{{ item.k }}' != skip && {{ steps.list.outputs.params.tag "
                           "}} == go\"\n"
                           "    env: {K: \"{{ item.k }}\"}\n"
                           "    command: [w, \"{{ item.k }}-{{ run.name }}\",\n"
                           "              \"{{ steps.list.outputs.params.tag }}\"]\n");
    task_t *g = h_task(r, "each");
    cr_assert_eq(g->step->when_scope, DROVER__WHEN_SCOPE__WHEN_SCOPE_ITEM);
    finish(h_task(r, "list"), "xs", "[{\"k\": \"a\"}, {\"k\": \"skip\"}]", "tag", "go");
    expect_status(g, ST(RUNNING));
    cr_assert_eq(g->n_items, 2);
    expect_status(item(r, "each", 1), ST(SKIPPED));
    task_t *a = item(r, "each", 0);
    expect_status(a, ST(READY));
    agent();
    placer_place(s);
    const Drover__Assignment *as = assignment(a);
    cr_assert_not_null(as);
    cr_assert_str_eq(as->argv[1], "a-sp");
    cr_assert_str_eq(as->argv[2], "go");
    bool found = false;
    for (size_t i = 0; i < as->n_env; i++)
        if (!strcmp(as->env[i]->key, "K")) {
            cr_assert_str_eq(as->env[i]->value, "a");
            found = true;
        }
    cr_assert(found, "env K was not handed to the agent");
    finish(a);
    expect_status(g, ST(SUCCEEDED));
    expect_run(r, RS(SUCCEEDED));
}

/* A group-level condition written with spaces stays the group's: false
 * skips the whole group before any item exists. */
Test(flow, a_spaced_group_condition_skips_the_whole_group)
{
    run_t *r = h_submit(s, "name: g\n"
                           "steps:\n"
                           "  - {name: check, command: [c], outputs: {params: [go]}}\n"
                           "  - name: shard\n"
                           "    needs: [check]\n"
                           "    when: \"{{ steps.check.outputs.params.go }} == yes\"\n"
                           "    for_each: [a, b]\n"
                           "    command: [w, \"{{ item }}\"]\n");
    task_t *g = h_task(r, "shard");
    cr_assert_eq(g->step->when_scope, DROVER__WHEN_SCOPE__WHEN_SCOPE_STEP);
    finish(h_task(r, "check"), "go", "no");
    expect_status(g, ST(SKIPPED));
    cr_assert_eq(g->n_items, 0, "a skipped group makes no items");
    expect_run(r, RS(SUCCEEDED));
}

/* A run stored before StepSpec.when_scope existed has no such field in
 * its record (0, UNSET): droverd decides it when it loads the run. */
Test(flow, a_run_stored_without_when_scope_decides_it_at_load)
{
    run_t *r = h_submit(s, "name: old\n"
                           "steps:\n"
                           "  - {name: first, command: [f]}\n"
                           "  - name: shard\n"
                           "    needs: [first]\n"
                           "    for_each: [1, 4, 5]\n"
                           "    when: \"{{ item }} != 4\"\n"
                           "    command: [w, \"{{ item }}\"]\n");
    cr_assert(r->steps_unwritten, "the steps are stored at the next commit");
    r->steps->steps[1]->when_scope = DROVER__WHEN_SCOPE__WHEN_SCOPE_UNSET;
    r->steps->steps[0]->when_scope = DROVER__WHEN_SCOPE__WHEN_SCOPE_UNSET;
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    task_t *g = h_task(r, "shard");
    cr_assert_eq(g->step->when_scope, DROVER__WHEN_SCOPE__WHEN_SCOPE_ITEM);
    cr_assert_eq(h_task(r, "first")->step->when_scope, DROVER__WHEN_SCOPE__WHEN_SCOPE_STEP);
    finish(h_task(r, "first"));
    expect_status(g, ST(RUNNING));
    expect_status(item(r, "shard", 0), ST(READY));
    expect_status(item(r, "shard", 1), ST(SKIPPED));
    expect_status(item(r, "shard", 2), ST(READY));
}

Test(flow, cancel_stops_every_item_and_the_group)
{
    run_t *r = h_submit(s, FAN);
    agent_t *ag = agent();
    placer_place(s);
    finish(item(r, "shard", 0), "r", "x");
    placer_place(s);
    dag_task_started(s, item(r, "shard", 1), 0);
    size_t kills = ag->out.n_kills;
    dag_cancel_run(s, r);
    task_t *g = h_task(r, "shard");
    expect_status(item(r, "shard", 0), ST(SUCCEEDED));
    for (size_t i = 1; i < 5; i++)
        expect_status(item(r, "shard", i), ST(CANCELLED));
    expect_status(g, ST(CANCELLED));
    expect_status(h_task(r, "gather"), ST(CANCELLED));
    expect_run(r, RS(CANCELLED));
    cr_assert_eq(ag->out.n_kills, kills + 2, "both running items are killed");
    cr_assert_eq(ag->used.cpu_milli, 0);
    placer_place(s);
    for (size_t i = 1; i < 5; i++)
        cr_assert_eq(item(r, "shard", i)->n_attempts, i < 3 ? 1 : 0);
}

/* A spec with one fan-out step of n literal items; when non-NULL is the
 * step's condition. */
static char *big_fan(size_t n, const char *when)
{
    size_t cap = n * 12 + 512, o = 0;
    char *y = xmalloc(cap);
    o += (size_t)snprintf(y + o, cap - o, "name: big\nsteps:\n  - name: shard\n    for_each: [");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(y + o, cap - o, "%si%zu", i ? "," : "", i);
    o += (size_t)snprintf(y + o, cap - o, "]\n    command: [w, \"{{item}}\"]\n");
    if (when)
        o += (size_t)snprintf(y + o, cap - o, "    when: \"%s\"\n", when);
    cr_assert_lt(o, cap);
    return y;
}

/* Items decided at once (skipped by their condition, or served from the
 * cache) must not each nest a call deeper: a large fan-out would run out
 * of stack and take droverd down. */
Test(flow, a_large_fan_out_whose_items_are_all_skipped)
{
    char *y = big_fan(30000, "'{{item}}' == none");
    run_t *r = h_submit(s, y);
    free(y);
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(SKIPPED)); /* issue 15: every item skipped */
    cr_assert_eq(g->n_items, 30000);
    expect_status(item(r, "shard", 29999), ST(SKIPPED));
    expect_run(r, RS(SUCCEEDED));
}

Test(flow, a_large_fan_out_served_entirely_from_the_cache)
{
    size_t n = 100000; /* the most literal items a spec may list */
    char *y = big_fan(n, NULL);
    run_t *r1 = h_submit(s, y);
    for (int i = 0; i < 16; i++) { /* 16 x 64 unacknowledged: 1,024 items at a time */
        char name[8];
        snprintf(name, sizeof name, "a%d", i);
        h_register(s, name, 1000 * 1000, 1ull << 50, 0, NULL);
    }
    task_t *g1 = h_task(r1, "shard");
    for (size_t next = 0; next < n;) {
        commit(); /* places the next items; sends (and so empties) the agent's batch */
        size_t end = next;
        while (end < n && r1->tasks[g1->items[end]]->status == ST(ASSIGNED))
            end++;
        cr_assert_gt(end, next, "nothing placed at item %zu", next);
        for (; next < end; next++)
            h_exit(s, r1->tasks[g1->items[next]], 0);
    }
    expect_status(g1, ST(SUCCEEDED));
    commit();
    run_t *r2 = h_submit(s, y);
    free(y);
    task_t *g2 = h_task(r2, "shard");
    expect_status(g2, ST(SUCCEEDED));
    expect_cached_from(item(r2, "shard", n - 1), r1);
    expect_run(r2, RS(SUCCEEDED));
}

/* ------------------------------------------------------------ outcomes (issue 15) */

/* The agent running t reports EXITED with code and the captured result. */
static void finish_result(task_t *t, int code, const char *result)
{
    ensure_assigned(t);
    Drover__Report rep = DROVER__REPORT__INIT;
    rep.attempt_id = dag_current_attempt(t)->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = code;
    rep.has_result = true;
    rep.result = (char *)result;
    dag_task_exited(s, t, &rep);
}

static const char *COINFLIP = "name: coin\n"
                              "steps:\n"
                              "  - {name: flip, command: [flip]}\n"
                              "  - name: heads\n"
                              "    needs: [flip]\n"
                              "    when: \"{{steps.flip.outputs.result}} == heads\"\n"
                              "    command: [h]\n"
                              "  - name: tails\n"
                              "    needs: [flip]\n"
                              "    when: \"'{{steps.flip.outputs.result}}' == tails\"\n"
                              "    command: [t, \"{{steps.flip.outputs.result}}\", "
                              "\"{{steps.flip.status}}:{{steps.flip.exit_code}}\"]\n";

Test(flow, a_result_is_captured_and_read_by_when_and_argv)
{
    run_t *r = h_submit(s, COINFLIP);
    task_t *flip = h_task(r, "flip"), *heads = h_task(r, "heads"), *tails = h_task(r, "tails");
    cr_assert(flip->step->capture_result, "a step whose result is read captures it");
    cr_assert_not(heads->step->capture_result);
    ensure_assigned(flip);
    cr_assert(assignment(flip)->capture_result, "the agent is asked to capture");
    finish_result(flip, 0, "tails");
    expect_status(heads, ST(SKIPPED));
    cr_assert_str_eq(heads->reason, "when: tails == heads was false");
    expect_status(tails, ST(READY));
    placer_place(s);
    cr_assert_str_eq(tails->argv[1], "tails");
    cr_assert_str_eq(tails->argv[2], "succeeded:0");
}

Test(flow, a_result_survives_a_restart)
{
    run_t *r = h_submit(s, COINFLIP);
    char id[64];
    snprintf(id, sizeof id, "%s", r->rec->id);
    finish_result(h_task(r, "flip"), 0, "heads");
    commit();
    h_sched_restart();
    r = dag_find_run(s, id);
    cr_assert_not_null(r);
    cr_assert_str_eq(h_task(r, "flip")->result, "heads");
    expect_status(h_task(r, "tails"), ST(SKIPPED));
    cr_assert_str_eq(h_task(r, "tails")->reason, "when: 'heads' == tails was false");
    ensure_assigned(h_task(r, "heads"));
    cr_assert_str_eq(h_task(r, "heads")->argv[0], "h");
}

Test(flow, exit_handlers_read_failures_status_and_exit_codes)
{
    run_t *r = h_submit(s, "name: h\n"
                           "steps:\n"
                           "  - {name: ok, command: [a]}\n"
                           "  - {name: bad, command: [b]}\n"
                           "  - {name: after, needs: [bad], command: [c]}\n"
                           "finally:\n"
                           "  - name: notify\n"
                           "    command: [n, \"{{run.failures}}\", "
                           "\"{{steps.bad.status}}/{{steps.bad.exit_code}}\", "
                           "\"{{steps.after.status}}/{{steps.after.exit_code}}\", "
                           "\"{{run.status}}\", \"{{run.duration}}\"]\n");
    finish(h_task(r, "ok"));
    fail(h_task(r, "bad"), 3);
    task_t *notify = h_task(r, "notify");
    expect_status(notify, ST(READY));
    cr_assert_str_eq(notify->argv[1],
                     "[{\"name\":\"bad\",\"exit_code\":3,\"reason\":\"exit code 3\"}]", "%s",
                     notify->argv[1]);
    cr_assert_str_eq(notify->argv[2], "failed/3");
    cr_assert_str_eq(notify->argv[3], "skipped/", "a skipped step has no exit code");
    cr_assert_str_eq(notify->argv[4], "failed");
    double secs = -1;
    cr_assert_eq(sscanf(notify->argv[5], "%lf", &secs), 1, "%s", notify->argv[5]);
    cr_assert_geq(secs, 0);
}

Test(flow, run_failures_is_an_empty_list_when_nothing_failed)
{
    run_t *r = h_submit(s, "name: h\n"
                           "steps:\n"
                           "  - {name: ok, command: [a]}\n"
                           "finally:\n"
                           "  - {name: notify, command: [n, \"{{run.failures}}\"]}\n");
    finish(h_task(r, "ok"));
    task_t *notify = h_task(r, "notify");
    expect_status(notify, ST(READY));
    cr_assert_str_eq(notify->argv[1], "[]");
}

Test(flow, a_cached_step_reuses_its_result)
{
    const char *yaml = "name: c\n"
                       "steps:\n"
                       "  - {name: a, command: [a], cache: true}\n"
                       "  - {name: b, needs: [a], cache: false, command: [b, "
                       "\"{{steps.a.outputs.result}}\"]}\n";
    run_t *r = h_submit(s, yaml);
    finish_result(h_task(r, "a"), 0, "v1");
    placer_place(s);
    cr_assert_str_eq(h_task(r, "b")->argv[1], "v1");
    finish(h_task(r, "b"));
    commit();
    run_t *r2 = h_submit(s, yaml);
    expect_status(h_task(r2, "a"), ST(CACHED));
    expect_status(h_task(r2, "b"), ST(READY));
    placer_place(s);
    cr_assert_str_eq(h_task(r2, "b")->argv[1], "v1", "a cached step's result is reused");
}

Test(flow, a_failed_steps_result_and_reason_reach_the_exit_handler)
{
    run_t *r =
        h_submit(s, "name: h\n"
                    "steps:\n"
                    "  - {name: bad, command: [b]}\n"
                    "finally:\n"
                    "  - name: notify\n"
                    "    command: [n, \"{{steps.bad.outputs.result}}\", \"{{run.failures}}\"]\n");
    task_t *bad = h_task(r, "bad");
    ensure_assigned(bad);
    Drover__Report rep = DROVER__REPORT__INIT;
    rep.attempt_id = dag_current_attempt(bad)->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = 0;
    rep.reason = "standard output is 70000 bytes, \"over\"";
    rep.has_result = true;
    rep.result = "partial";
    dag_task_exited(s, bad, &rep);
    expect_status(bad, ST(FAILED));
    task_t *notify = h_task(r, "notify");
    expect_status(notify, ST(READY));
    cr_assert_str_eq(notify->argv[1], "partial", "a failure's output is data too");
    cr_assert_str_eq(notify->argv[2],
                     "[{\"name\":\"bad\",\"exit_code\":0,\"reason\":\"standard output is 70000 "
                     "bytes, \\\"over\\\"\"}]",
                     "%s", notify->argv[2]);
}

/* ------------------------------------------------------------ templated settings */

static const char *TMPL = "name: tmpl\n"
                          "steps:\n"
                          "  - {name: up, command: [up], outputs: {params: [n, mem]}}\n"
                          "  - name: fan\n"
                          "    needs: [up]\n"
                          "    for_each: [{cpu: \"2\", t: 10s, img: a}, {cpu: 500m, t: 1m, img: "
                          "\"\"}]\n"
                          "    command: [work, \"{{item.cpu}}\"]\n"
                          "    image: \"{{item.img}}\"\n"
                          "    timeout: \"{{item.t}}\"\n"
                          "    resources: {cpu: \"{{item.cpu}}\", memory: "
                          "\"{{steps.up.outputs.params.mem}}\"}\n"
                          "    retries: {limit: \"{{steps.up.outputs.params.n}}\", backoff: 1s}\n"
                          "  - {name: other, needs: [up], command: [other]}\n";

Test(flow, templated_settings_are_expanded_per_item_before_ready)
{
    run_t *r = h_submit(s, TMPL);
    finish(h_task(r, "up"), "n", "2", "mem", "3Gi");
    task_t *i0 = item(r, "fan", 0), *i1 = item(r, "fan", 1);
    expect_status(i0, ST(READY));
    expect_status(i1, ST(READY));
    /* the placer sees numbers: the task's own copy of its step */
    cr_assert_eq(i0->step->resources->cpu_milli, 2000);
    cr_assert_eq(i1->step->resources->cpu_milli, 500);
    cr_assert_eq(i0->step->resources->memory_bytes, 3ull << 30);
    cr_assert_eq(i0->step->timeout_ms, 10000);
    cr_assert_eq(i1->step->timeout_ms, 60000);
    cr_assert_str_eq(i0->step->image, "a");
    cr_assert_str_empty(i1->step->image, "an empty image runs as a process");
    cr_assert_eq(i0->step->retries->limit, 2);
    cr_assert_eq(i0->step->retries->backoff_ms, 1000, "literal fields are the step's");
    cr_assert_eq(r->steps->steps[1]->resources->cpu_milli, 0, "the stored step is unchanged");
    /* the process item is placed with its expanded values */
    ensure_assigned(i1);
    const Drover__Assignment *as = assignment(i1);
    cr_assert_not_null(as);
    cr_assert_eq(as->timeout_ms, 60000);
    cr_assert_eq(as->resources->cpu_milli, 500);
    cr_assert_str_empty(as->image);
    /* retries.limit from upstream: 2 retries, then FAILED for good */
    for (int k = 0; k < 3; k++) {
        fail(i1, 1);
        if (k < 2) {
            expect_status(i1, ST(FAILED));
            cr_assert(!dag_task_final(i1), "retry %d of 2 pending", k + 1);
            dag_retry_due(s, INT64_MAX);
        }
    }
    cr_assert(dag_task_final(i1));
    cr_assert_eq(i1->retries_used, 2);
    cr_assert_null(i1->own_step, "its expanded copy goes once it has ended");
    cr_assert_eq(i1->step, r->steps->steps[1]);
}

Test(flow, a_bad_templated_value_fails_only_that_step_without_retry)
{
    run_t *r = h_submit(s, TMPL);
    finish(h_task(r, "up"), "n", "3", "mem", "lots");
    task_t *i0 = item(r, "fan", 0), *other = h_task(r, "other");
    expect_status(i0, ST(FAILED));
    cr_assert(dag_task_final(i0), "a bad value is not retried");
    cr_assert_eq(i0->n_attempts, 0, "nothing was dispatched");
    expect_reason(i0, "resources.memory: {{steps.up.outputs.params.mem}} gave 'lots', not a "
                      "memory quantity (e.g. 512Mi, 2Gi, 1G)");
    expect_status(other, ST(READY));
    finish(other);
    expect_status(h_task(r, "fan"), ST(FAILED));
    expect_run(r, RS(FAILED));
    /* a value over the bound is bad too */
    r = h_submit(s, TMPL);
    finish(h_task(r, "up"), "n", "101", "mem", "1Gi");
    expect_reason(item(r, "fan", 1), "retries.limit: {{steps.up.outputs.params.n}} gave '101', "
                                     "not a whole number of retries 0-100");
}

Test(flow, templated_settings_are_the_same_after_a_restart)
{
    run_t *r = h_submit(s, TMPL);
    finish(h_task(r, "up"), "n", "1", "mem", "3Gi");
    task_t *i1 = item(r, "fan", 1);
    ensure_assigned(i1);
    fail(i1, 1); /* waiting out its one retry */
    commit();
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    i1 = item(r, "fan", 1);
    expect_status(i1, ST(FAILED));
    cr_assert(!dag_task_final(i1));
    cr_assert_eq(i1->step->resources->cpu_milli, 500);
    cr_assert_eq(i1->step->resources->memory_bytes, 3ull << 30);
    cr_assert_eq(i1->step->retries->limit, 1);
    dag_retry_due(s, INT64_MAX);
    expect_status(i1, ST(READY));
    fail(i1, 1);
    cr_assert(dag_task_final(i1), "the limit read after the restart is the same");
}

/* ------------------------------------------------------------ skipped items */

static const char *SKIPS = "name: skips\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: [\"1\", \"2\", \"3\", \"4\"]\n"
                           "    when: \"{{item}} != 2 && {{item}} != 4\"\n"
                           "    command: [work, \"{{item}}\"]\n"
                           "    outputs: {params: [r]}\n"
                           "  - name: again\n"
                           "    needs: [shard]\n"
                           "    for_each: \"{{steps.shard.outputs.params.r}}\"\n"
                           "    command: [again, \"{{item}}\"]\n";

Test(flow, skipped_items_are_left_out_of_the_collected_list)
{
    run_t *r = h_submit(s, SKIPS);
    expect_status(item(r, "shard", 1), ST(SKIPPED));
    expect_status(item(r, "shard", 3), ST(SKIPPED));
    finish(item(r, "shard", 0), "r", "R1");
    finish(item(r, "shard", 2), "r", "R3");
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(SUCCEEDED));
    cr_assert_str_eq(param(g, "r"), "[\"R1\",\"R3\"]", "not [\"R1\",\"\",\"R3\",\"\"]");
    task_t *again = h_task(r, "again");
    cr_assert_eq(again->n_items, 2, "no task on an empty string");
    cr_assert_str_eq(item(r, "again", 0)->item_value, "R1");
    cr_assert_str_eq(item(r, "again", 1)->item_value, "R3");
}

Test(flow, a_fan_out_whose_items_are_all_skipped_is_skipped)
{
    run_t *r = h_submit(s, "name: none\n"
                           "steps:\n"
                           "  - name: shard\n"
                           "    for_each: [\"1\", \"2\"]\n"
                           "    when: \"{{item}} > 5\"\n"
                           "    command: [work, \"{{item}}\"]\n"
                           "  - {name: after, needs: [shard], command: [after]}\n"
                           "  - {name: free, command: [free]}\n");
    task_t *g = h_task(r, "shard");
    expect_status(g, ST(SKIPPED));
    expect_reason(g, "all 2 items were skipped (shard[0]: when: ");
    expect_status(h_task(r, "after"), ST(SKIPPED));
    finish(h_task(r, "free"));
    expect_run(r, RS(SUCCEEDED));
}
