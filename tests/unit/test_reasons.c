/* test_reasons — why a READY task waits, and a backlog that cannot be
 * placed (issue 18, item 1).
 *
 * On a real droverd (temp state h_dir, loop not run), agents register
 * through the agents protocol, runs come from specs, placer_place() is
 * called directly and the reasons are read as `drover run get` and
 * `drover status` read them (placer_why, placer_waiting_counts). Checked:
 * each reason names what is missing with numbers (GPUs, memory, labels and
 * how many agents lack them, spot, containers, all agents busy, the run's
 * parallelism), the counts by reason, reasons bounded whatever the step
 * asks for, and parking: tasks no agent could ever hold do not keep the
 * tasks behind them from being placed, and come back when an agent that
 * can hold them registers.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"
#include "strbuf.h"

TestSuite(reasons, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

#define GiB (1ull << 30)

static placer_why_t memo;

static const char *why(const task_t *t)
{
    expect_status(t, ST(READY));
    placer_why_init(s, &memo);
    return placer_why(s, t, &memo);
}

static void expect_why(const task_t *t, const char *want)
{
    const char *got = why(t);
    cr_assert_str_eq(got, want, "task %s: reason %s, want %s", t->name, got, want);
}

/* The count of reason (without "waiting: ") in `drover status`'s counts;
 * *total gets the READY tasks counted. */
static uint64_t count_of(const char *reason, uint64_t *total)
{
    char **reasons;
    uint64_t *counts, n = 0;
    size_t k = placer_waiting_counts(s, 20, &reasons, &counts, total);
    for (size_t i = 0; i < k; i++) {
        if (!strcmp(reasons[i], reason))
            n = counts[i];
        free(reasons[i]);
    }
    free(reasons);
    free(counts);
    return n;
}

Test(reasons, gpu_step_on_a_cpu_fleet_names_the_gpus)
{
    run_t *r = h_submit(s, "name: g\n"
                           "steps:\n"
                           "  - {name: train, command: [x], resources: {cpu: 1, gpu: 2}}\n");
    h_register(s, "c1", 8000, 16 * GiB, 0, NULL);
    h_register(s, "c2", 4000, 16 * GiB, 1, NULL);
    placer_place(s);
    expect_why(h_task(r, "train"),
               "waiting: no agent in service offers gpus: 2 (the largest has 1; 2 agents)");
}

Test(reasons, memory_and_cpu_name_the_largest_agent)
{
    run_t *r = h_submit(s, "name: m\n"
                           "steps:\n"
                           "  - {name: mem, command: [x], resources: {cpu: 1, memory: 64Gi}}\n"
                           "  - {name: cpu, command: [x], resources: {cpu: 12}}\n");
    h_register(s, "a", 8000, 16 * GiB, 0, NULL);
    placer_place(s);
    expect_why(h_task(r, "mem"),
               "waiting: no agent in service offers memory: 64.0 GiB (the largest has 16.0 GiB; "
               "1 agent)");
    expect_why(h_task(r, "cpu"),
               "waiting: no agent in service offers cpu: 12 (the largest has 8; 1 agent)");
}

Test(reasons, labels_say_how_many_agents_lack_which)
{
    run_t *r = h_submit(s, "name: l\n"
                           "steps:\n"
                           "  - {name: t, command: [x], placement: {labels: {pool: train, zone: "
                           "b}}}\n");
    h_register(s, "a", 8000, 16 * GiB, 0, "pool=train,zone=a");
    h_register(s, "b", 8000, 16 * GiB, 0, "zone=b");
    h_register(s, "c", 8000, 16 * GiB, 0, NULL);
    placer_place(s);
    expect_why(h_task(r, "t"), "waiting: no agent in service has the labels the step asks for: "
                               "2 of 3 agents lack pool=train, 2 of 3 agents lack zone=b");
}

Test(reasons, spot_and_containers)
{
    run_t *r = h_submit(s, "name: sp\n"
                           "steps:\n"
                           "  - {name: req, command: [x], placement: {spot: require}}\n"
                           "  - {name: img, command: [x], image: alpine}\n");
    h_register(s, "od1", 8000, 16 * GiB, 0, NULL);
    h_register(s, "od2", 8000, 16 * GiB, 0, NULL);
    placer_place(s);
    expect_why(h_task(r, "req"),
               "waiting: spot: require and no spot agent in service (2 on-demand agents)");
    expect_why(h_task(r, "img"), "waiting: the step has an image and no agent in service can run "
                                 "containers (2 agents without)");
}

Test(reasons, no_agent_at_all)
{
    run_t *r = h_submit(s, "name: n\nsteps:\n  - {name: t, command: [x]}\n");
    placer_place(s);
    expect_why(h_task(r, "t"), "waiting: no agent in service");
}

/* A task that an agent suits but that is full has a reason too (before:
 * none), naming what is short. */
Test(reasons, all_agents_that_fit_are_busy)
{
    run_t *r = h_submit(s, "name: b\n"
                           "steps:\n"
                           "  - {name: one, command: [x], resources: {cpu: 3}}\n"
                           "  - {name: two, command: [x], resources: {cpu: 3}}\n"
                           "  - {name: three, command: [x], resources: {cpu: 3}}\n");
    h_register(s, "a", 4000, 16 * GiB, 0, NULL);
    h_register(s, "b", 4000, 16 * GiB, 0, NULL);
    h_register(s, "tiny", 1000, 16 * GiB, 0, NULL); /* suits, too small: not counted */
    placer_place(s);
    task_t *three = h_task(r, "three");
    expect_why(three, "waiting: all 2 agents that fit are busy (the most free cpu is 1, 3 wanted)");
    h_exit(s, h_task(r, "one"), 0);
    /* Room now, before the next pass. */
    expect_why(three, "waiting: the next placement pass (1 agent has room)");
    placer_place(s);
    expect_status(three, ST(ASSIGNED));
}

Test(reasons, run_parallelism_holds_with_a_reason)
{
    run_t *r = h_submit(s, "name: p\n"
                           "parallelism: 2\n"
                           "steps:\n"
                           "  - {name: t, command: [x], for_each: '[1,2,3,4,5]'}\n");
    h_register(s, "a", 64000, 64 * GiB, 0, NULL);
    placer_place(s);
    task_t *last = h_task(r, "t[4]");
    cr_assert(last->held, "t[4] is held by the run's parallelism");
    expect_why(last, "waiting: run parallelism 2 reached (2 running)");
    uint64_t total;
    cr_assert_eq(count_of("run parallelism 2 reached (2 running)", &total), 3);
    cr_assert_eq(total, 3);
}

/* `drover status`: every READY task counted once, by reason, with the
 * parked (no agent could hold them), the held and the queued. */
Test(reasons, counts_by_reason)
{
    run_t *r = h_submit(s, "name: c\n"
                           "steps:\n"
                           "  - {name: g, command: [x], resources: {gpu: 1}, for_each: {range: "
                           "3000}}\n"
                           "  - {name: busy, command: [x], resources: {cpu: 4}, for_each: "
                           "{range: 3}}\n"
                           "  - {name: l, command: [x], placement: {labels: {k: v}}}\n");
    h_register(s, "a", 4000, 16 * GiB, 0, NULL);
    placer_place(s);
    placer_place(s);
    uint64_t total;
    cr_assert_eq(
        count_of("no agent in service offers gpus: 1 (the largest has 0; 1 agent)", &total), 3000);
    cr_assert_eq(
        count_of("the one agent that fits is busy (the most free cpu is 0, 4 wanted)", &total), 2);
    cr_assert_eq(count_of("no agent in service has the labels the step asks for: 1 of 1 "
                          "agent lacks k=v",
                          &total),
                 1);
    cr_assert_eq(total, 3003);
    cr_assert_eq(total, s->dag.n_ready + 3001, "2 queued, 3001 parked");
    (void)r;
}

/* The defect: a backlog that no agent can hold filled each pass's budget
 * of misses (1024), so the tasks queued behind it were never looked at:
 * a placeable run waited for good behind an unplaceable fan-out. */
Test(reasons, backlog_that_cannot_be_placed_does_not_block_the_queue)
{
    run_t *back = h_submit(s, "name: backlog\n"
                              "steps:\n"
                              "  - {name: t, command: [x], placement: {labels: {pool: none}}, "
                              "for_each: {range: 5000}}\n");
    run_t *r = h_submit(s, "name: after\nsteps:\n  - {name: t, command: [x]}\n");
    agent_t *a = h_register(s, "a", 8000, 16 * GiB, 0, NULL);
    for (int i = 0; i < 3; i++)
        placer_place(s);
    expect_status(h_task(r, "t"), ST(ASSIGNED));
    cr_assert_eq(a->n_tasks, 1);
    /* Parked, not lost: each still waits, with its reason, and counts. */
    task_t *item = h_task(back, "t[4999]");
    cr_assert(h_in_ready_queue(s, item));
    expect_why(item, "waiting: no agent in service has the labels the step asks for: 1 of 1 "
                     "agent lacks pool=none");
    uint64_t total;
    count_of("", &total);
    cr_assert_eq(total, 5000);
    /* An agent that can hold them comes: they are placed, FIFO. */
    agent_t *b = h_register(s, "b", 1000000, 16 * GiB, 0, "pool=none");
    placer_place(s);
    expect_status(h_task(back, "t[0]"), ST(ASSIGNED));
    cr_assert_eq(b->n_tasks, 64, "as many as flow control lets go at once");
}

/* Cancelling a run takes its parked tasks out of the park. */
Test(reasons, cancel_takes_parked_tasks_out)
{
    run_t *r = h_submit(s, "name: x\n"
                           "steps:\n"
                           "  - {name: t, command: [x], resources: {gpu: 1}, for_each: {range: "
                           "10}}\n");
    h_register(s, "a", 8000, 16 * GiB, 0, NULL);
    placer_place(s);
    cr_assert_not_null(s->dag.parks);
    cr_assert_eq(s->dag.parks->n, 10);
    dag_cancel_run(s, r);
    cr_assert_null(s->dag.parks, "the park went with its last task");
    uint64_t total;
    count_of("", &total);
    cr_assert_eq(total, 0);
}

/* Attack: 64 labels of long values and resources near their limits give
 * a reason bounded by its buffer, cut at a character, never past it. */
Test(reasons, reason_is_bounded_whatever_the_step_asks)
{
    strbuf_t y = {0};
    sb_puts(&y, "name: big\nsteps:\n  - name: t\n    command: [x]\n    placement:\n"
                "      labels:\n");
    for (int i = 0; i < 64; i++)
        sb_printf(&y, "        key%02d: value-%02d-\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\n", i, i);
    char *yaml = sb_take(&y);
    run_t *r = h_submit(s, yaml);
    free(yaml);
    h_register(s, "a", 8000, 16 * GiB, 0, NULL);
    placer_place(s);
    const char *w = why(h_task(r, "t"));
    cr_assert_lt(strlen(w), PLACER_WHY_LEN);
    cr_assert(strstr(w, "lacks key00=value-00") != NULL, "%s", w);
    cr_assert(!strcmp(w + strlen(w) - 3, "..."), "cut, and says so: %s", w);
    const char *end = w + strlen(w) - 4; /* the last byte kept is a whole character */
    cr_assert((*end & 0x80) == 0 || ((unsigned char)end[-1] == 0xc3), "%s", w);

    run_t *r2 =
        h_submit(s, "name: huge\nsteps:\n  - {name: t, command: [x], resources: {cpu: 1}}\n");
    task_t *t = h_task(r2, "t");
    t->step->resources->cpu_milli = UINT32_MAX;
    t->step->resources->memory_bytes = UINT64_MAX;
    t->step->resources->gpus = UINT32_MAX;
    w = why(t);
    cr_assert_lt(strlen(w), PLACER_WHY_LEN);
    cr_assert(strstr(w, "no agent in service offers cpu: 4.29497e+06 (the largest has 8") == w + 9,
              "%s", w);
}

/* A fan-out item made READY is written only once assigned, and its
 * reason is not stored: after a restart an item that waited (3 cpus on a
 * 2-cpu agent) while a later item ran must be READY again, with its
 * reason (before, the later item's record marked it released and it
 * stayed WAITING for good). */
Test(reasons, waiting_item_is_ready_again_after_a_restart)
{
    run_t *r = h_submit(s, "name: f\n"
                           "steps:\n"
                           "  - name: fan\n"
                           "    for_each: ['1', '3', '1']\n"
                           "    resources: {cpu: '{{item}}'}\n"
                           "    command: [x]\n");
    h_register(s, "a", 2000, 16 * GiB, 0, NULL);
    placer_place(s);
    expect_status(h_task(r, "fan[0]"), ST(ASSIGNED));
    expect_status(h_task(r, "fan[2]"), ST(ASSIGNED));
    expect_why(h_task(r, "fan[1]"),
               "waiting: no agent in service offers cpu: 3 (the largest has 2; 1 agent)");
    char id[32];
    snprintf(id, sizeof id, "%s", r->rec->id);
    h_sched_restart();
    r = dag_find_run(s, id);
    cr_assert_not_null(r);
    task_t *t = h_task(r, "fan[1]");
    expect_status(t, ST(READY));
    cr_assert(h_in_ready_queue(s, t));
    h_register(s, "a", 2000, 16 * GiB, 0, NULL);
    placer_place(s);
    expect_why(t, "waiting: no agent in service offers cpu: 3 (the largest has 2; 1 agent)");
}
