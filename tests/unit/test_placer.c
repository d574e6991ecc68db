/* test_placer — which READY task goes to which agent.
 *
 * On a real droverd (temp state h_dir, loop not run), agents register
 * through the agents protocol and runs come from specs; placer_place() is
 * called directly. Checked: cpu, memory and GPU requests against what is
 * free (capacity minus what droverd has bound there), labels (all must
 * match), drained and disconnected agents, spreading to the least loaded
 * agent, FIFO order with blocked tasks skipped, resources coming back
 * when a task ends, the index agreeing with a scan, bounded passes and
 * flow control (unacknowledged assignments).
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

TestSuite(placer, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

#define GiB (1ull << 30)

static void expect_on(const task_t *t, const agent_t *a)
{
    expect_status(t, ST(ASSIGNED));
    cr_assert_eq(t->agent, a, "task %s on %s, want %s", t->step->name,
                 t->agent ? t->agent->name : "(none)", a->name);
    cr_assert_str_eq(dag_current_attempt(t)->agent, a->name);
}

/* What `drover run get` shows as READY t's reason (placer_why). */
static const char *h_why(const task_t *t)
{
    static placer_why_t memo;
    placer_why_init(s, &memo);
    return placer_why(s, t, &memo);
}

static void expect_waiting_for_room(const task_t *t)
{
    expect_status(t, ST(READY));
    cr_assert(h_in_ready_queue(s, t), "task %s left the ready queue", t->step->name);
    cr_assert_null(t->agent);
    cr_assert_eq(t->n_attempts, 0, "no attempt was started for %s", t->step->name);
}

Test(placer, gpu_request_needs_a_gpu_agent)
{
    run_t *r = h_submit(s, "name: g\n"
                           "steps:\n"
                           "  - {name: train, command: [x], resources: {cpu: 1, gpu: 1}}\n");
    task_t *t = h_task(r, "train");
    agent_t *cpu_only = h_register(s, "cpu-only", 32000, 64 * GiB, 0, NULL);
    placer_place(s);
    expect_waiting_for_room(t);
    cr_assert_not(placer_fits(cpu_only, t));

    agent_t *gpu = h_register(s, "gpu", 4000, 16 * GiB, 1, NULL);
    cr_assert(placer_fits(gpu, t));
    placer_place(s);
    expect_on(t, gpu);
    cr_assert_eq(gpu->used.gpus, 1);
    cr_assert_eq(cpu_only->n_tasks, 0);
}

Test(placer, second_gpu_task_waits_for_the_first)
{
    run_t *r = h_submit(s, "name: g\n"
                           "steps:\n"
                           "  - {name: one, command: [x], resources: {cpu: 1, gpu: 1}}\n"
                           "  - {name: two, command: [x], resources: {cpu: 1, gpu: 1}}\n");
    task_t *one = h_task(r, "one"), *two = h_task(r, "two");
    agent_t *a = h_register(s, "gpu", 16000, 64 * GiB, 1, NULL);
    placer_place(s);
    expect_on(one, a);
    expect_waiting_for_room(two);
    cr_assert_not(placer_fits(a, two), "the only GPU is taken");
    placer_place(s); /* placing again changes nothing */
    expect_waiting_for_room(two);

    h_exit(s, one, 0);
    cr_assert_eq(a->used.gpus, 0, "the GPU is released when the task ends");
    placer_place(s);
    expect_on(two, a);
}

Test(placer, cpu_and_memory_limit_what_fits)
{
    run_t *r = h_submit(s, "name: m\n"
                           "steps:\n"
                           "  - {name: a, command: [x], resources: {cpu: 1, memory: 512Mi}}\n"
                           "  - {name: b, command: [x], resources: {cpu: 1, memory: 512Mi}}\n"
                           "  - {name: c, command: [x], resources: {cpu: 1, memory: 512Mi}}\n"
                           "  - {name: huge, command: [x], resources: {cpu: 1, memory: 4Gi}}\n"
                           "  - {name: cpu2, command: [x], resources: {cpu: 2}}\n");
    task_t *a = h_task(r, "a"), *b = h_task(r, "b"), *c = h_task(r, "c"), *huge = h_task(r, "huge"),
           *cpu2 = h_task(r, "cpu2");
    /* 3.5 cores, 1 GiB. */
    agent_t *n = h_register(s, "n1", 3500, 1 * GiB, 0, NULL);
    placer_place(s);
    expect_on(a, n);
    expect_on(b, n);
    expect_waiting_for_room(c);    /* memory: 1 GiB is used up */
    expect_waiting_for_room(huge); /* never fits 1 GiB */
    expect_waiting_for_room(cpu2); /* 1.5 cores left (no memory asked) */
    cr_assert_eq(n->used.cpu_milli, 2000);
    cr_assert_eq(n->used.memory_bytes, 1 * GiB);

    h_exit(s, a, 0);
    cr_assert_eq(n->used.memory_bytes, 512ull << 20);
    placer_place(s);
    expect_on(c, n); /* FIFO: c was queued before cpu2 */
    expect_waiting_for_room(cpu2);
    h_exit(s, b, 0);
    placer_place(s);
    expect_on(cpu2, n);
    cr_assert_eq(n->used.cpu_milli, 3000);
    expect_waiting_for_room(huge);
}

Test(placer, blocked_task_does_not_hold_up_the_queue)
{
    run_t *r = h_submit(s, "name: q\n"
                           "steps:\n"
                           "  - {name: big, command: [x], resources: {cpu: 64}}\n"
                           "  - {name: small, command: [x], resources: {cpu: 1}}\n");
    agent_t *a = h_register(s, "n1", 4000, 0, 0, NULL);
    placer_place(s);
    expect_waiting_for_room(h_task(r, "big"));
    expect_on(h_task(r, "small"), a);
}

Test(placer, every_label_must_match)
{
    run_t *r = h_submit(s, "name: l\n"
                           "steps:\n"
                           "  - name: t\n"
                           "    command: [x]\n"
                           "    placement: {labels: {pool: train, zone: a}}\n");
    task_t *t = h_task(r, "t");
    agent_t *none = h_register(s, "none", 64000, 0, 0, NULL);
    agent_t *pool_only = h_register(s, "pool-only", 64000, 0, 0, "pool=train");
    agent_t *zone_b = h_register(s, "zone-b", 64000, 0, 0, "pool=train,zone=b");
    agent_t *swapped = h_register(s, "swapped", 64000, 0, 0, "pool=a,zone=train");
    agent_t *prefix = h_register(s, "prefix", 64000, 0, 0, "pool=trainer,zone=a");
    placer_place(s);
    expect_waiting_for_room(t);
    cr_assert_not(placer_fits(none, t));
    cr_assert_not(placer_fits(pool_only, t));
    cr_assert_not(placer_fits(zone_b, t));
    cr_assert_not(placer_fits(swapped, t));
    cr_assert_not(placer_fits(prefix, t));

    /* Extra labels on the agent do not matter; order does not either. */
    agent_t *ok = h_register(s, "ok", 1000, 0, 0, "gpu=none,zone=a,pool=train");
    placer_place(s);
    expect_on(t, ok);
}

Test(placer, unlabelled_task_runs_anywhere)
{
    run_t *r = h_submit(s, "name: u\nsteps:\n  - {name: t, command: [x]}\n");
    agent_t *a = h_register(s, "n1", 1000, 0, 0, "pool=gpu,zone=z");
    placer_place(s);
    expect_on(h_task(r, "t"), a);
}

Test(placer, drained_and_disconnected_agents_get_no_work)
{
    run_t *r = h_submit(s, "name: d\n"
                           "steps:\n"
                           "  - {name: t1, command: [x]}\n"
                           "  - {name: t2, command: [x]}\n");
    task_t *t1 = h_task(r, "t1"), *t2 = h_task(r, "t2");

    /* Drained through the API, as `drover drain` does. */
    agent_t *drained = h_register(s, "drained", 64000, 0, 0, NULL);
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    ar.name = "drained";
    req.op_case = DROVER__API_REQUEST__OP_DRAIN_AGENT;
    req.drain_agent = &ar;
    size_t n = drover__api_request__get_packed_size(&req);
    uint8_t *buf = xmalloc(n);
    drover__api_request__pack(&req, buf);
    api_handle(s, zframe_new("cli", 3), buf, n);
    free(buf);
    cr_assert(drained->drained);

    /* Known from a stored record but not registered in this session. */
    Drover__AgentRecord rec = DROVER__AGENT_RECORD__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    cap.cpu_milli = 64000;
    rec.name = "offline";
    rec.capacity = &cap;
    fleet_load(&s->fleet, &rec);
    agent_t *offline = fleet_find(&s->fleet, "offline");
    cr_assert_not_null(offline);
    cr_assert_not(offline->connected);

    /* Registered, then stopped answering. */
    agent_t *lost = h_register(s, "lost", 64000, 0, 0, NULL);
    lost->last_seen_mono = util_mono_ms() - (int64_t)s->cfg.agent_timeout_ms - 1000;
    agents_tick(s);
    cr_assert_not(lost->connected);

    placer_place(s);
    expect_waiting_for_room(t1);
    expect_waiting_for_room(t2);
    cr_assert_not(placer_fits(drained, t1));
    cr_assert_not(placer_fits(offline, t1));
    cr_assert_not(placer_fits(lost, t1));

    agent_t *good = h_register(s, "good", 1000, 0, 0, NULL);
    placer_place(s);
    expect_on(t1, good);
    expect_waiting_for_room(t2); /* good has room for one only */
    cr_assert_eq(drained->n_tasks + offline->n_tasks + lost->n_tasks, 0);
}

Test(placer, draining_keeps_running_work_but_adds_none)
{
    run_t *r = h_submit(s, "name: d\n"
                           "steps:\n"
                           "  - {name: t1, command: [x]}\n"
                           "  - {name: t2, needs: [t1], command: [x]}\n");
    agent_t *a = h_register(s, "n1", 8000, 0, 0, NULL);
    placer_place(s);
    task_t *t1 = h_task(r, "t1"), *t2 = h_task(r, "t2");
    expect_on(t1, a);
    a->drained = true;
    dag_task_started(s, t1, 0);
    cr_assert_eq(t1->agent, a, "a drained agent keeps what it runs");
    h_exit(s, t1, 0);
    placer_place(s);
    expect_waiting_for_room(t2);
}

Test(placer, work_spreads_to_the_least_loaded_agent)
{
    run_t *r = h_submit(s, "name: spread\n"
                           "steps:\n"
                           "  - {name: t1, command: [x]}\n"
                           "  - {name: t2, command: [x]}\n"
                           "  - {name: t3, command: [x]}\n"
                           "  - {name: t4, command: [x]}\n"
                           "  - {name: t5, command: [x]}\n");
    agent_t *a = h_register(s, "a", 4000, 0, 0, NULL);
    agent_t *b = h_register(s, "b", 4000, 0, 0, NULL);
    placer_place(s);
    /* 5 one-core tasks over two 4-core agents: 3 + 2, never 4 + 1. */
    cr_assert_eq(a->n_tasks + b->n_tasks, 5);
    cr_assert(a->n_tasks >= 2 && b->n_tasks >= 2, "a has %zu, b has %zu", a->n_tasks, b->n_tasks);
    /* Consecutive tasks alternate. */
    cr_assert_neq(h_task(r, "t1")->agent, h_task(r, "t2")->agent);
    cr_assert_neq(h_task(r, "t3")->agent, h_task(r, "t4")->agent);

    /* A bigger agent takes work first. */
    run_t *r2 = h_submit(s, "name: more\nsteps:\n  - {name: x, command: [x]}\n");
    agent_t *c = h_register(s, "c", 16000, 0, 0, NULL);
    placer_place(s);
    expect_on(h_task(r2, "x"), c);
}

Test(placer, resources_come_back_when_tasks_end_any_way)
{
    run_t *r =
        h_submit(s, "name: rel\n"
                    "steps:\n"
                    "  - {name: ok, command: [x], resources: {cpu: 1, memory: 1Gi, gpu: 1}}\n"
                    "  - {name: bad, command: [x], resources: {cpu: 1, memory: 1Gi, gpu: "
                    "1}}\n"
                    "  - {name: gone, command: [x], resources: {cpu: 1, memory: 1Gi, gpu: "
                    "1}}\n");
    agent_t *a = h_register(s, "n1", 3000, 3 * GiB, 3, NULL);
    placer_place(s);
    cr_assert_eq(a->used.cpu_milli, 3000);
    cr_assert_eq(a->used.memory_bytes, 3 * GiB);
    cr_assert_eq(a->used.gpus, 3);
    cr_assert_eq(a->n_tasks, 3);

    h_exit(s, h_task(r, "ok"), 0);
    h_exit(s, h_task(r, "bad"), 1);
    dag_task_lost(s, h_task(r, "gone"), "preempted");
    cr_assert_eq(a->used.cpu_milli, 0, "every ending returned its share");
    cr_assert_eq(a->used.memory_bytes, 0);
    cr_assert_eq(a->used.gpus, 0);
    cr_assert_eq(a->n_tasks, 0);
    placer_place(s); /* only the requeued task is placed again */
    expect_on(h_task(r, "gone"), a);
    cr_assert_eq(a->used.cpu_milli, 1000);
    cr_assert_eq(a->used.memory_bytes, 1 * GiB);
    cr_assert_eq(a->used.gpus, 1);
    cr_assert_eq(a->n_tasks, 1);
    cr_assert_eq(a->tasks[0], h_task(r, "gone"));
    dag_cancel_run(s, r);
    cr_assert_eq(a->used.cpu_milli, 0);
    cr_assert_eq(a->used.memory_bytes, 0);
    cr_assert_eq(a->used.gpus, 0);
    cr_assert_eq(a->n_tasks, 0);
}

Test(placer, many_tasks_fill_agents_exactly)
{
    /* 40 one-core tasks, agents of 8 + 8 + 4 cores: 20 run, 20 wait; as
     * they finish, the waiting ones take their place. */
    char *yaml = xstrdup("name: many\nsteps:\n");
    for (int i = 0; i < 40; i++) {
        char *more = xasprintf("%s  - {name: t%02d, command: [x]}\n", yaml, i);
        free(yaml);
        yaml = more;
    }
    run_t *r = h_submit(s, yaml);
    free(yaml);
    agent_t *ag[3] = {h_register(s, "a", 8000, 0, 0, NULL), h_register(s, "b", 8000, 0, 0, NULL),
                      h_register(s, "c", 4000, 0, 0, NULL)};
    placer_place(s);
    cr_assert_eq(ag[0]->n_tasks, 8);
    cr_assert_eq(ag[1]->n_tasks, 8);
    cr_assert_eq(ag[2]->n_tasks, 4);
    cr_assert_eq(s->dag.n_ready, 20);
    for (int round = 0; round < 10; round++) {
        for (size_t i = 0; i < r->n_tasks; i++) {
            task_t *t = r->tasks[i];
            if (t->status == ST(ASSIGNED) && (i + round) % 3 == 0)
                h_exit(s, t, 0);
        }
        placer_place(s);
        for (int k = 0; k < 3; k++)
            cr_assert_leq(ag[k]->used.cpu_milli, ag[k]->capacity.cpu_milli);
    }
    while (r->unfinished) {
        for (size_t i = 0; i < r->n_tasks; i++)
            if (r->tasks[i]->status == ST(ASSIGNED))
                h_exit(s, r->tasks[i], 0);
        placer_place(s);
    }
    cr_assert_eq(r->rec->status, DROVER__RUN_STATUS__RUN_SUCCEEDED);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(ag[k]->used.cpu_milli, 0);
        cr_assert_eq(ag[k]->n_tasks, 0);
    }
}

/* Spot policies: where each step would rather run, and what it must not. */
Test(placer, spot_policies_rank_spot_and_on_demand_agents)
{
    run_t *r = h_submit(s, "name: sp\n"
                           "steps:\n"
                           "  - {name: ckpt, command: [x], checkpoint: true}\n"
                           "  - {name: plain, command: [x]}\n"
                           "  - {name: req, command: [x], placement: {spot: require}}\n"
                           "  - {name: any, command: [x], placement: {spot: any}}\n"
                           "  - {name: fb, command: [x], checkpoint: true,\n"
                           "     preemption: {fallback_after: 2}}\n");
    /* the spot agent has more free cpu, so without a policy it would win */
    agent_t *spot = h_register(s, "spot", 16000, 64 * GiB, 0, NULL);
    agent_t *od = h_register(s, "od", 8000, 64 * GiB, 0, NULL);
    spot->spot = true;
    task_t *ckpt = h_task(r, "ckpt"), *plain = h_task(r, "plain"), *req = h_task(r, "req");
    task_t *any = h_task(r, "any"), *fb = h_task(r, "fb");
    cr_assert_eq(placer_rank(spot, ckpt, true), 0, "a checkpointing step prefers spot");
    cr_assert_eq(placer_rank(od, ckpt, true), 1);
    cr_assert_eq(placer_rank(spot, plain, true), 1, "a step without checkpoints prefers on-demand");
    cr_assert_eq(placer_rank(od, plain, true), 0);
    cr_assert_not(placer_fits(od, req), "require: spot only");
    cr_assert_eq(placer_rank(spot, any, true), placer_rank(od, any, true));
    fb->preemptions = 2;
    cr_assert_eq(placer_rank(spot, fb, true), -1, "preempted twice: on-demand only");
    cr_assert_eq(placer_rank(spot, fb, false), 0, "... unless the fleet has no on-demand node");
    placer_place(s);
    expect_on(ckpt, spot);
    expect_on(plain, od);
    expect_on(req, spot);
    expect_on(any, spot); /* most free cpu */
    expect_on(fb, od);
}

/* issue 14: spot: require with fallback_after (a run stored before such
 * specs were refused, or a step built that way): the fallback does not
 * apply to require, so preempted often enough it still goes to the spot
 * agent (before, spot agents ranked -1 and on-demand never suits: it
 * waited for good). With no spot agent in service it waits, saying why,
 * and the reason goes once it is placed. */
Test(placer, spot_require_ignores_fallback_and_says_why_it_waits)
{
    run_t *r = h_submit(s, "name: rq\n"
                           "steps:\n"
                           "  - {name: req, command: [x], placement: {spot: require}}\n");
    task_t *req = h_task(r, "req");
    req->step->fallback_after = 1; /* as a stored run may have it */
    req->preemptions = 1;
    agent_t *od = h_register(s, "od", 8000, 64 * GiB, 0, NULL);
    agent_t *spot = h_register(s, "spot", 8000, 64 * GiB, 0, NULL);
    spot->spot = true;
    cr_assert_eq(placer_rank(spot, req, true), 0, "require: the fallback does not apply");
    spot->drained = true;
    placer_place(s);
    expect_waiting_for_room(req);
    const char *why = h_why(req);
    cr_assert(strstr(why, "waiting: spot: require and no spot agent in service (1 on-demand "
                          "agent)") == why,
              "reason: %s", why);
    spot->drained = false;
    placer_place(s);
    expect_on(req, spot);
    cr_assert_null(req->reason, "placed: it waits no longer");
    (void)od;
}

Test(placer, preempting_and_at_risk_agents)
{
    run_t *r = h_submit(s, "name: pr\n"
                           "steps:\n"
                           "  - {name: a, command: [x], placement: {spot: any}}\n"
                           "  - {name: b, command: [x], placement: {spot: any}}\n");
    agent_t *going = h_register(s, "going", 16000, 64 * GiB, 0, NULL);
    agent_t *risky = h_register(s, "risky", 16000, 64 * GiB, 0, NULL);
    agent_t *calm = h_register(s, "calm", 1000, 64 * GiB, 0, NULL);
    going->noticed = going->terminating = true;
    risky->noticed = true; /* a rebalance recommendation: at risk only */
    task_t *a = h_task(r, "a"), *b = h_task(r, "b");
    cr_assert_not(placer_fits(going, a), "a node being reclaimed takes no work");
    cr_assert_eq(placer_rank(risky, a, true), 2);
    placer_place(s);
    expect_on(a, calm);
    expect_on(b, risky); /* calm is full: an at-risk node beats none */
}

/* Flow control: an agent that has not acknowledged 64 assignments gets no
 * more, however much room it has, until it acknowledges them. */
Test(placer, an_agent_that_does_not_acknowledge_gets_no_more_work)
{
    run_t *r =
        h_submit(s, "name: flood\n"
                    "steps:\n"
                    "  - {name: t, command: [x], for_each: {range: 200}, resources: {cpu: 1m}}\n");
    agent_t *a = h_register(s, "slow", 64000, 0, 0, NULL);
    placer_place(s);
    cr_assert_eq(a->n_tasks, 64, "%zu assignments before any acknowledgement", a->n_tasks);
    cr_assert_eq(a->unacked, 64);
    placer_place(s);
    cr_assert_eq(a->n_tasks, 64, "still 64: nothing was acknowledged");

    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    uint64_t acks[64];
    for (size_t i = 0; i < 64; i++)
        acks[i] = dag_current_attempt(a->tasks[i])->id;
    m.assign_acks = acks;
    m.n_assign_acks = 64;
    h_agent_send(s, "slow", &m);
    cr_assert_eq(a->unacked, 0);
    placer_place(s);
    cr_assert_eq(a->n_tasks, 128, "64 more once the first were acknowledged");
    while (r->unfinished) {
        for (size_t i = a->n_tasks; i-- > 0;)
            h_exit(s, a->tasks[i], 0); /* an exit acknowledges too */
        placer_place(s);
    }
    cr_assert_eq(r->rec->status, DROVER__RUN_STATUS__RUN_SUCCEEDED);
    cr_assert_eq(a->unacked, 0);
}

/* A pass assigns a bounded batch and says more is waiting; the next
 * passes place the rest. */
Test(placer, a_big_backlog_goes_out_in_bounded_passes)
{
    run_t *r = h_submit(s, "name: big\n"
                           "steps:\n"
                           "  - {name: t, command: [x], for_each: {range: 20000}, "
                           "resources: {cpu: 1m}}\n");
    agent_t *ag[400]; /* room for 20,000 unacknowledged (64 each) */
    for (int i = 0; i < 400; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%03d", i);
        ag[i] = h_register(s, name, 1000000, 0, 0, NULL);
    }
    cr_assert(placer_place(s), "the first pass stops at its bound");
    cr_assert_eq(s->dag.n_ready, 20000 - 8192);
    cr_assert(placer_place(s));
    cr_assert_not(placer_place(s), "the third pass places the rest");
    cr_assert_eq(s->dag.n_ready, 0);
    size_t total = 0;
    for (int i = 0; i < 400; i++) {
        cr_assert_eq(ag[i]->n_tasks, 50, "%s has %zu tasks: work is spread", ag[i]->name,
                     ag[i]->n_tasks);
        total += ag[i]->n_tasks;
    }
    cr_assert_eq(total, r->n_tasks - 1);
}

/* The index finds what a scan of every agent would: the fitting agent with
 * the most free cpu, labels and memory honoured, across spot classes. */
Test(placer, the_index_picks_the_agent_a_full_scan_would)
{
    agent_t *big_a = h_register(s, "big-a", 16000, 1 * GiB, 0, NULL);
    agent_t *mid_b = h_register(s, "mid-b", 8000, 64 * GiB, 0, "zone=b");
    agent_t *small_b = h_register(s, "small-b", 2000, 64 * GiB, 0, "zone=b");
    run_t *r = h_submit(s, "name: idx\n"
                           "steps:\n"
                           "  - {name: anywhere, command: [x], resources: {cpu: 1}}\n"
                           "  - {name: in-b, command: [x], resources: {cpu: 1},\n"
                           "     placement: {labels: {zone: b}}}\n"
                           "  - {name: big-mem, command: [x], resources: {cpu: 1, memory: 8Gi}}\n");
    placer_place(s);
    expect_on(h_task(r, "anywhere"), big_a); /* the most free cpu */
    expect_on(h_task(r, "in-b"), mid_b);     /* big-a lacks the label: set aside */
    expect_on(h_task(r, "big-mem"), mid_b);  /* big-a lacks the memory */
    cr_assert_eq(small_b->n_tasks, 0);
}
