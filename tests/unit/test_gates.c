/* test_gates — approval gates (suspend:): the spec keys and their errors
 * (FILE:LINE:COL), and the state machine on a real droverd model (sched_new
 * on a temp state dir, the loop never run): a gate becomes SUSPENDED
 * without being placed, resume / reject / timeout / cancel end it, refused
 * resumes change nothing, and SUSPENDED with its deadline survives a
 * restart (the scheduler closed and the state dir reopened).
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <errno.h>

TestSuite(gates, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

#define E(x) DROVER__API_ERROR_CODE__API_ERROR_##x

static char err[1024];

static int parse(const char *yaml, spec_t **out)
{
    *out = NULL;
    return spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, out, err, sizeof err);
}

static void parse_bad(const char *yaml, const char *want)
{
    spec_t *sp;
    cr_assert_eq(parse(yaml, &sp), -EINVAL, "accepted: %s", yaml);
    cr_assert(strstr(err, want), "error '%s' lacks '%s'", err, want);
    spec_destroy(&sp);
}

Test(gates, spec_keys)
{
    spec_t *sp;
    cr_assert_eq(parse("name: g\nsteps:\n"
                       "  - {name: a, suspend: true}\n"
                       "  - {name: b, suspend: {}}\n"
                       "  - {name: c, suspend: {timeout: 24h, on_timeout: continue},\n"
                       "     outputs: {params: [approved_by]}, image: x}\n"
                       "  - {name: d, suspend: {timeout: 90m}, needs: [c]}\n"
                       "  - {name: e, suspend: false, command: [true]}\n",
                       &sp),
                 -EINVAL, "a gate with an image is refused");
    cr_assert(strstr(err, "t.yaml:6:40: step 'c' has 'suspend' and 'image'"), "%s", err);
    spec_destroy(&sp);

    cr_assert_eq(parse("name: g\nsteps:\n"
                       "  - {name: a, suspend: true}\n"
                       "  - {name: b, suspend: {}}\n"
                       "  - {name: c, suspend: {timeout: 24h, on_timeout: continue},\n"
                       "     outputs: {params: [approved_by]}}\n"
                       "  - {name: d, suspend: {timeout: 90m}, needs: [c]}\n"
                       "  - {name: e, suspend: false, command: [true]}\n"
                       "  - {name: f, needs: [c], command: [echo, "
                       "'{{steps.c.outputs.params.approved_by}}']}\n",
                       &sp),
                 0, "%s", err);
    const Drover__StepSpec *const *st = (const Drover__StepSpec *const *)sp->steps;
    cr_assert(st[0]->suspend && st[0]->suspend_timeout_ms == 0 && !st[0]->suspend_continue);
    cr_assert_eq(st[0]->n_argv, 0, "a gate runs nothing");
    cr_assert_not(st[0]->cache, "a gate is never cached");
    cr_assert(st[1]->suspend && st[1]->suspend_timeout_ms == 0);
    cr_assert(st[2]->suspend && st[2]->suspend_continue);
    cr_assert_eq(st[2]->suspend_timeout_ms, 24ull * 3600 * 1000);
    cr_assert_eq(st[3]->suspend_timeout_ms, 90ull * 60 * 1000);
    cr_assert_not(st[3]->suspend_continue);
    cr_assert_not(st[4]->suspend);
    spec_destroy(&sp);
}

Test(gates, spec_errors_name_the_place)
{
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: true, command: [true]}\n",
              "t.yaml:3:30: step 'a' has 'suspend' and 'command'");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: true, script: x}\n",
              "t.yaml:3:30: step 'a' has 'suspend' and 'script'");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: true, for_each: [1, 2]}\n",
              "t.yaml:3:30: step 'a' has 'suspend' and 'for_each'");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: {}, outputs: {artifacts: [m]}}\n",
              "t.yaml:3:5: step 'a' has 'suspend' and output artifacts");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: maybe}\n",
              "t.yaml:3:24: 'suspend' must be true or a map");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: [1]}\n",
              "t.yaml:3:24: 'suspend' must be true or a map");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: {timeout: soon}}\n", "t.yaml:3:34: ");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: {timeout: 0s}}\n",
              "t.yaml:3:34: 'suspend.timeout' must be more than 0");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: {on_timeout: skip}}\n",
              "t.yaml:3:37: 'suspend.on_timeout' must be fail or continue, not 'skip'");
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: {timout: 1h}}\n",
              "t.yaml:3:25: unknown key 'timout' in suspend (timeout, on_timeout)");
    parse_bad("name: g\ndefaults: {suspend: true}\nsteps:\n  - {name: a, command: [true]}\n",
              "suspend");
    /* a later step may read only declared params of the gate */
    parse_bad("name: g\nsteps:\n  - {name: a, suspend: true}\n"
              "  - {name: b, needs: [a], command: [echo, '{{steps.a.outputs.params.who}}']}\n",
              "who");
}

static const char *GATED = "name: gated\n"
                           "steps:\n"
                           "  - {name: build, command: [true]}\n"
                           "  - name: gate\n"
                           "    needs: [build]\n"
                           "    suspend: {timeout: 1h}\n"
                           "    outputs: {params: [approved_by, ticket]}\n"
                           "  - {name: deploy, needs: [gate], command: [true]}\n";

static Drover__KeyValue *kv(const char *k, const char *v)
{
    return util_kv_new(k, v);
}

/* Free n pairs made by kv() (the array is the caller's). */
static void kv_free(Drover__KeyValue **kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kvs[i]->key);
        free(kvs[i]->value);
        free(kvs[i]);
    }
}

Test(gates, resume_reject_and_refusals)
{
    run_t *r = h_submit(s, GATED);
    h_register(s, "a1", 8000, 16ull << 30, 0, "");
    placer_place(s);
    task_t *build = h_task(r, "build"), *gate = h_task(r, "gate"), *deploy = h_task(r, "deploy");
    cr_assert_eq(gate->status, ST(WAITING));
    int64_t before = util_now_ms();
    h_exit(s, build, 0);
    cr_assert_eq(gate->status, ST(SUSPENDED));
    cr_assert_not(h_in_ready_queue(s, gate), "a gate is never placed");
    cr_assert_not_null(gate->gate);
    cr_assert_geq(gate->gate->suspended_ms, before);
    cr_assert_eq(gate->gate->deadline_ms, gate->gate->suspended_ms + 3600 * 1000);
    cr_assert_str_eq(gate->reason, "waiting for drover run resume (timeout 1h, then fail)");
    cr_assert_eq(s->dag.n_gates, 1);
    placer_place(s);
    cr_assert_eq(gate->n_attempts, 0);

    /* refusals change nothing */
    Drover__KeyValue *bad[2] = {kv("nope", "1"), kv("ticket", "x")};
    cr_assert_eq(gate_resume(s, gate, "alice", false, bad, 1, 100, err, sizeof err), E(INVALID));
    cr_assert(strstr(err, "does not declare output param 'nope'"), "%s", err);
    Drover__KeyValue *dup[2] = {kv("ticket", "1"), kv("ticket", "2")};
    cr_assert_eq(gate_resume(s, gate, "alice", false, dup, 2, 100, err, sizeof err), E(INVALID));
    cr_assert(strstr(err, "given twice"), "%s", err);
    Drover__KeyValue *big[1] = {kv("ticket", "0123456789")};
    cr_assert_eq(gate_resume(s, gate, "alice", false, big, 1, 5, err, sizeof err), E(INVALID));
    cr_assert(strstr(err, "longer than 5 bytes"), "%s", err);
    cr_assert_eq(gate_resume(s, gate, "alice", true, big, 1, 100, err, sizeof err), E(INVALID));
    cr_assert_eq(gate_resume(s, build, "alice", false, NULL, 0, 100, err, sizeof err), E(INVALID));
    cr_assert(strstr(err, "not an approval gate"), "%s", err);
    cr_assert_eq(gate_resume(s, deploy, "alice", false, NULL, 0, 100, err, sizeof err), E(INVALID));
    cr_assert_eq(gate->status, ST(SUSPENDED));
    cr_assert_eq(gate->n_out_params, 0);

    Drover__KeyValue *ok[1] = {kv("approved_by", "alice")};
    cr_assert_eq(gate_resume(s, gate, "alice", false, ok, 1, 100, err, sizeof err), 0, "%s", err);
    cr_assert_eq(gate->status, ST(SUCCEEDED));
    cr_assert_str_eq(gate->reason, "approved by alice");
    cr_assert_str_eq(gate->gate->by, "alice");
    cr_assert_gt(gate->gate->at_ms, 0);
    cr_assert_eq(gate->n_out_params, 2, "every declared param, given or \"\"");
    cr_assert_str_eq(gate->out_params[0]->key, "approved_by");
    cr_assert_str_eq(gate->out_params[0]->value, "alice");
    cr_assert_str_eq(gate->out_params[1]->key, "ticket");
    cr_assert_str_eq(gate->out_params[1]->value, "");
    cr_assert_eq(s->dag.n_gates, 0);
    cr_assert(h_in_ready_queue(s, deploy), "the step after the gate goes on");
    cr_assert_eq(gate_resume(s, gate, "bob", false, NULL, 0, 100, err, sizeof err), E(CONFLICT));
    cr_assert(strstr(err, "is not suspended: it is SUCCEEDED (approved by alice)"), "%s", err);

    /* reject: FAILED, its dependants SKIPPED, the run FAILED */
    run_t *r2 = h_submit(s, GATED);
    placer_place(s);
    h_exit(s, h_task(r2, "build"), 0);
    task_t *g2 = h_task(r2, "gate");
    cr_assert_eq(g2->status, ST(SUSPENDED));
    cr_assert_eq(gate_resume(s, g2, "carol", true, NULL, 0, 100, err, sizeof err), 0);
    cr_assert_eq(g2->status, ST(FAILED));
    cr_assert_str_eq(g2->reason, "rejected by carol");
    cr_assert(g2->gate->rejected);
    cr_assert_eq(h_task(r2, "deploy")->status, ST(SKIPPED));
    cr_assert_eq(r2->rec->status, RS(FAILED));
    kv_free(bad, 2);
    kv_free(dup, 2);
    kv_free(big, 1);
    kv_free(ok, 1);
}

Test(gates, timeouts_fail_or_continue)
{
    const char *spec = "name: t\nsteps:\n"
                       "  - {name: g, suspend: {timeout: 10s}}\n"
                       "  - {name: h, suspend: {timeout: 20s, on_timeout: continue},"
                       " outputs: {params: [who]}}\n"
                       "  - {name: after_g, needs: [g], command: [true]}\n"
                       "  - {name: after_h, needs: [h], command: [true]}\n";
    run_t *r = h_submit(s, spec);
    task_t *g = h_task(r, "g"), *h = h_task(r, "h");
    cr_assert_eq(g->status, ST(SUSPENDED));
    cr_assert_eq(h->status, ST(SUSPENDED));
    gates_due(s, g->gate->deadline_ms - 1);
    cr_assert_eq(g->status, ST(SUSPENDED));
    gates_due(s, g->gate->deadline_ms);
    cr_assert_eq(g->status, ST(FAILED));
    cr_assert_str_eq(g->reason, "suspend timeout 10s");
    cr_assert_eq(h_task(r, "after_g")->status, ST(SKIPPED));
    cr_assert_eq(h->status, ST(SUSPENDED));
    gates_due(s, h->gate->deadline_ms);
    cr_assert_eq(h->status, ST(SUCCEEDED));
    cr_assert_str_eq(h->reason,
                     "suspend timeout 20s: continued as if approved (on_timeout: continue)");
    cr_assert_eq(h->n_out_params, 1);
    cr_assert(h_in_ready_queue(s, h_task(r, "after_h")));
    cr_assert_eq(s->dag.n_gates, 0);
}

Test(gates, cancel_ends_a_gate)
{
    run_t *r = h_submit(s, "name: c\nsteps:\n  - {name: g, suspend: true}\n"
                           "  - {name: x, needs: [g], command: [true]}\n");
    task_t *g = h_task(r, "g");
    cr_assert_eq(g->status, ST(SUSPENDED));
    cr_assert_eq(g->gate->deadline_ms, 0);
    dag_cancel_run(s, r);
    cr_assert_eq(g->status, ST(CANCELLED));
    cr_assert_eq(r->rec->status, RS(CANCELLED));
    cr_assert_eq(s->dag.n_gates, 0, "a cancelled gate is no longer tracked");
    cr_assert_eq(gate_resume(s, g, "a", false, NULL, 0, 100, err, sizeof err), E(CONFLICT));
}

Test(gates, suspended_and_deadline_survive_a_restart)
{
    run_t *r = h_submit(s, "name: p\nsteps:\n"
                           "  - {name: g, suspend: {timeout: 1h}}\n"
                           "  - {name: w, suspend: true, outputs: {params: [who]}}\n"
                           "  - {name: x, needs: [w], command: [true]}\n");
    task_t *g = h_task(r, "g");
    int64_t since = g->gate->suspended_ms, deadline = g->gate->deadline_ms;
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    g = h_task(r, "g");
    task_t *w = h_task(r, "w");
    cr_assert_eq(g->status, ST(SUSPENDED));
    cr_assert_eq(w->status, ST(SUSPENDED));
    cr_assert_eq(g->gate->suspended_ms, since);
    cr_assert_eq(g->gate->deadline_ms, deadline);
    cr_assert_eq(s->dag.n_gates, 2, "both are tracked again");
    cr_assert_str_eq(g->reason, "waiting for drover run resume (timeout 1h, then fail)");
    /* a deadline that passed while droverd was down fires at the tick */
    gates_due(s, deadline + 5000);
    cr_assert_eq(g->status, ST(FAILED));
    cr_assert_eq(w->status, ST(SUSPENDED), "no timeout: waits for ever");
    Drover__KeyValue *p[1] = {kv("who", "bob")};
    cr_assert_eq(gate_resume(s, w, "bob", false, p, 1, 100, err, sizeof err), 0, "%s", err);
    kv_free(p, 1);
    /* and who approved it, after another restart */
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    w = h_task(r, "w");
    cr_assert_eq(w->status, ST(SUCCEEDED));
    cr_assert_str_eq(w->gate->by, "bob");
    cr_assert_gt(w->gate->at_ms, 0);
    cr_assert_str_eq(w->reason, "approved by bob");
    cr_assert_str_eq(w->out_params[0]->value, "bob");
    cr_assert_eq(s->dag.n_gates, 0);
}
