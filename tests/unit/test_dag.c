/* test_dag — the task state machine (docs/architecture.md,
 * "Task lifecycle") on a real droverd.
 *
 * Each test opens a scheduler (sched_new on a temp state h_dir, ipc://
 * endpoints there; the loop is never run), submits specs through the spec
 * parser, registers agents through the agents protocol, and drives tasks
 * with placer_place / dag_task_started / dag_task_exited / dag_task_lost /
 * dag_cancel_run / dag_retry_due, then checks what a user would see: task
 * and run statuses, reasons, attempt history, the ready queue, retry times
 * and agent resources. The persistence tests close the scheduler (which
 * commits) and reopen the same state dir (one after turning it back into
 * schema 1's layout). One test counts what each commit stores
 * (store_bytes_put): a task's transition must not rewrite its run.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>

TestSuite(dag, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

/* READY and in the queue, or not READY and not in it. */
static void expect_ready(const task_t *t, bool ready)
{
    if (ready)
        expect_status(t, ST(READY));
    else
        cr_assert_neq(t->status, ST(READY), "task %s unexpectedly READY", t->step->name);
    cr_assert_eq(h_in_ready_queue(s, t), ready, "task %s %s the ready queue", t->step->name,
                 ready ? "missing from" : "still in");
}

static agent_t *big_agent(const char *name)
{
    return h_register(s, name, 64000, 64ull << 30, 0, NULL);
}

static const char *DIAMOND = "name: diamond\n"
                             "steps:\n"
                             "  - name: root\n"
                             "    command: [true]\n"
                             "  - name: left\n"
                             "    needs: [root]\n"
                             "    command: [true]\n"
                             "  - name: right\n"
                             "    needs: [root]\n"
                             "    command: [true]\n"
                             "  - name: join\n"
                             "    needs: [left, right]\n"
                             "    command: [true]\n";

Test(dag, diamond_readiness_follows_dependencies)
{
    run_t *r = h_submit(s, DIAMOND);
    task_t *root = h_task(r, "root"), *left = h_task(r, "left"), *right = h_task(r, "right"),
           *join = h_task(r, "join");
    expect_run(r, RS(RUNNING));
    cr_assert_str_eq(r->rec->id, "r000001");
    cr_assert_eq(r->unfinished, 4);
    expect_ready(root, true);
    expect_ready(left, false);
    expect_ready(right, false);
    expect_ready(join, false);
    expect_status(left, ST(WAITING));
    cr_assert_eq(s->dag.n_ready, 1);

    /* No agent: nothing moves. */
    placer_place(s);
    expect_ready(root, true);

    agent_t *a = big_agent("a1");
    placer_place(s);
    expect_status(root, ST(ASSIGNED));
    expect_ready(root, false);
    cr_assert_eq(s->dag.n_ready, 0);
    cr_assert_eq(root->n_attempts, 1);
    Drover__AttemptRecord *at = dag_current_attempt(root);
    cr_assert_eq(at->number, 1);
    cr_assert_str_eq(at->agent, "a1");
    cr_assert_eq(root->agent, a);
    cr_assert_eq(idmap_get(s->dag.attempts, at->id), root);
    cr_assert_eq(a->out.n_assigns, 1, "the assignment is queued for the agent");
    cr_assert_eq(a->out.assigns[0]->attempt_id, at->id);
    cr_assert_str_eq(a->out.assigns[0]->task, "root");

    dag_task_started(s, root, 0);
    expect_status(root, ST(RUNNING));
    cr_assert_gt(at->started_ms, 0);
    h_exit(s, root, 0);
    expect_status(root, ST(SUCCEEDED));
    cr_assert_eq(at->status, ST(SUCCEEDED));
    cr_assert_gt(at->finished_ms, 0);
    cr_assert_null(idmap_get(s->dag.attempts, at->id), "a finished attempt is no longer current");
    cr_assert_eq(a->used.cpu_milli, 0, "resources released");
    expect_ready(left, true);
    expect_ready(right, true);
    expect_ready(join, false);
    expect_status(join, ST(WAITING));
    expect_run(r, RS(RUNNING));

    placer_place(s);
    expect_status(left, ST(ASSIGNED));
    expect_status(right, ST(ASSIGNED));
    h_exit(s, left, 0);
    expect_ready(join, false);
    expect_status(join, ST(WAITING));
    cr_assert_eq(join->unfinished_deps, 1);
    h_exit(s, right, 0);
    expect_ready(join, true);
    expect_run(r, RS(RUNNING));
    cr_assert_eq(r->rec->finished_ms, 0);

    placer_place(s);
    h_exit(s, join, 0);
    expect_status(join, ST(SUCCEEDED));
    expect_run(r, RS(SUCCEEDED));
    cr_assert_gt(r->rec->finished_ms, 0);
    cr_assert_eq(r->unfinished, 0);
    cr_assert_eq(s->dag.n_ready, 0);
}

Test(dag, stale_and_duplicate_exit_reports_are_ignored)
{
    run_t *r = h_submit(s, DIAMOND);
    task_t *root = h_task(r, "root");
    big_agent("a1");
    placer_place(s);
    uint64_t id = dag_current_attempt(root)->id;
    h_exit(s, root, 0);
    expect_status(root, ST(SUCCEEDED));

    /* The agent re-sends EXITED (its ack got lost), now saying it failed. */
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Report rep = DROVER__REPORT__INIT, *reps[1] = {&rep};
    rep.seq = 41;
    rep.attempt_id = id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = 1;
    m.n_reports = 1;
    m.reports = reps;
    h_agent_send(s, "a1", &m);
    expect_status(root, ST(SUCCEEDED));
    cr_assert_eq(root->n_attempts, 1);
    cr_assert_eq(dag_current_attempt(root)->exit_code, 0);
    agent_t *a = fleet_find(&s->fleet, "a1");
    cr_assert_eq(a->out.n_acks, 1, "the report is still acknowledged");
    cr_assert_eq(a->out.acks[0], 41);
    cr_assert_eq(a->out.n_kills, 0, "an EXITED report needs no kill");

    /* A STARTED for an attempt that is not current: the agent is told to
     * kill it (fencing). */
    rep.seq = 42;
    rep.kind = DROVER__REPORT_KIND__REPORT_STARTED;
    h_agent_send(s, "a1", &m);
    cr_assert_eq(a->out.n_kills, 1);
    cr_assert_eq(a->out.kills[0], id);
    expect_status(root, ST(SUCCEEDED));
}

static const char *RETRY = "name: retry\n"
                           "steps:\n"
                           "  - name: flaky\n"
                           "    command: [false]\n"
                           "    retries: {limit: 2, backoff: 10s, factor: 2, max_backoff: 1h}\n"
                           "  - name: after\n"
                           "    needs: [flaky]\n"
                           "    command: [true]\n"
                           "  - name: after2\n"
                           "    needs: [after]\n"
                           "    command: [true]\n"
                           "  - name: independent\n"
                           "    command: [true]\n";

/* Fail the current attempt of t with code; returns the retry time, checking
 * it lies backoff ms after the failure. */
static int64_t fail_with_retry(task_t *t, int code, int64_t backoff)
{
    int64_t before = util_now_ms();
    h_exit(s, t, code);
    int64_t after = util_now_ms();
    expect_status(t, ST(FAILED));
    cr_assert_not(dag_task_final(t), "a FAILED task with retries left is not final");
    cr_assert_geq(t->retry_at_ms, before + backoff, "retry at %ld, failed at %ld, backoff %ld",
                  (long)t->retry_at_ms, (long)before, (long)backoff);
    cr_assert_leq(t->retry_at_ms, after + backoff);
    expect_ready(t, false);
    return t->retry_at_ms;
}

Test(dag, failed_step_is_retried_after_backoff_then_fails_for_good)
{
    run_t *r = h_submit(s, RETRY);
    task_t *flaky = h_task(r, "flaky"), *after = h_task(r, "after"), *after2 = h_task(r, "after2"),
           *indep = h_task(r, "independent");
    agent_t *a = big_agent("a1");
    placer_place(s);
    expect_status(flaky, ST(ASSIGNED));
    expect_status(indep, ST(ASSIGNED));

    /* First failure: retry 1 after 10 s. */
    int64_t at1 = fail_with_retry(flaky, 3, 10000);
    cr_assert_eq(flaky->retries_used, 1);
    cr_assert_str_eq(flaky->reason, "exit code 3");
    cr_assert_eq(flaky->attempts[0]->status, ST(FAILED));
    cr_assert_eq(flaky->attempts[0]->exit_code, 3);
    expect_status(after, ST(WAITING));
    expect_run(r, RS(RUNNING));
    cr_assert_eq(r->unfinished, 4, "a retry pending is not the end of the task");
    cr_assert_eq(a->used.cpu_milli, 1000, "only 'independent' still holds resources");

    dag_retry_due(s, at1 - 1);
    expect_status(flaky, ST(FAILED));
    expect_ready(flaky, false);
    placer_place(s);
    expect_status(flaky, ST(FAILED));
    cr_assert_eq(flaky->n_attempts, 1, "not re-placed before its time");

    dag_retry_due(s, at1);
    expect_ready(flaky, true);
    cr_assert_eq(flaky->retry_at_ms, 0);
    placer_place(s);
    expect_status(flaky, ST(ASSIGNED));
    cr_assert_eq(flaky->n_attempts, 2);
    cr_assert_eq(dag_current_attempt(flaky)->number, 2);

    /* Second failure: backoff doubles. */
    int64_t at2 = fail_with_retry(flaky, 3, 20000);
    cr_assert_eq(flaky->retries_used, 2);
    dag_retry_due(s, at2);
    expect_ready(flaky, true);
    placer_place(s);
    cr_assert_eq(flaky->n_attempts, 3);

    /* Third failure: no retries left. */
    h_exit(s, flaky, 3);
    expect_status(flaky, ST(FAILED));
    cr_assert(dag_task_final(flaky));
    cr_assert_eq(flaky->retry_at_ms, 0);
    cr_assert_eq(flaky->retries_used, 2);
    cr_assert_str_eq(flaky->reason, "exit code 3");
    expect_status(after, ST(SKIPPED));
    expect_status(after2, ST(SKIPPED));
    cr_assert_not_null(after->reason);
    cr_assert(strstr(after->reason, "flaky") != NULL, "skip reason names the upstream: %s",
              after->reason);
    cr_assert(strstr(after2->reason, "after") != NULL, "skip reason names the upstream: %s",
              after2->reason);
    cr_assert_eq(after->n_attempts, 0, "a skipped task never ran");
    expect_run(r, RS(RUNNING)); /* FAILED only once every branch has ended */
    cr_assert(r->failed);
    cr_assert_eq(r->rec->finished_ms, 0, "'independent' is still running");
    cr_assert_eq(r->unfinished, 1);

    /* A later retry_due cannot bring a finished task back. */
    dag_retry_due(s, INT64_MAX);
    expect_status(flaky, ST(FAILED));
    expect_ready(flaky, false);

    h_exit(s, indep, 0);
    expect_status(indep, ST(SUCCEEDED));
    expect_run(r, RS(FAILED));
    cr_assert_gt(r->rec->finished_ms, 0);
    cr_assert_eq(r->unfinished, 0);
    cr_assert_eq(a->used.cpu_milli, 0);
}

Test(dag, failure_reasons_name_the_cause)
{
    run_t *r = h_submit(s, "name: reasons\n"
                           "steps:\n"
                           "  - {name: sig, command: [x]}\n"
                           "  - {name: slow, command: [x], timeout: 90s}\n"
                           "  - {name: agentsays, command: [x]}\n");
    big_agent("a1");
    placer_place(s);
    Drover__Report rep = DROVER__REPORT__INIT;
    task_t *sig = h_task(r, "sig"), *slow = h_task(r, "slow"), *says = h_task(r, "agentsays");

    rep.attempt_id = dag_current_attempt(sig)->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.term_signal = 9;
    dag_task_exited(s, sig, &rep);
    expect_status(sig, ST(FAILED));
    cr_assert(strstr(sig->reason, "signal 9") != NULL, "reason: %s", sig->reason);
    cr_assert_eq(sig->attempts[0]->term_signal, 9);

    rep.term_signal = 15;
    rep.timed_out = true;
    rep.attempt_id = dag_current_attempt(slow)->id;
    dag_task_exited(s, slow, &rep);
    expect_status(slow, ST(FAILED));
    cr_assert(strstr(slow->reason, "timeout") != NULL, "reason: %s", slow->reason);
    cr_assert(strstr(slow->reason, "90") != NULL, "reason names the limit: %s", slow->reason);

    /* Exit 0 with a reason from the agent (e.g. it could not start) is a
     * failure, and the agent's words are kept. */
    Drover__Report rep2 = DROVER__REPORT__INIT;
    rep2.attempt_id = dag_current_attempt(says)->id;
    rep2.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep2.reason = "cannot run 'x': No such file or directory";
    dag_task_exited(s, says, &rep2);
    expect_status(says, ST(FAILED));
    cr_assert_str_eq(says->reason, "cannot run 'x': No such file or directory");
    expect_run(r, RS(FAILED));
    cr_assert_gt(r->rec->finished_ms, 0);
}

static const char *LOSSY = "name: lossy\n"
                           "steps:\n"
                           "  - name: train\n"
                           "    command: [true]\n"
                           "    retries: {limit: 5}\n"
                           "    preemption: {max_preemptions: 2}\n"
                           "  - name: eval\n"
                           "    needs: [train]\n"
                           "    command: [true]\n";

Test(dag, lost_attempts_requeue_without_spending_retries)
{
    run_t *r = h_submit(s, LOSSY);
    task_t *t = h_task(r, "train"), *ev = h_task(r, "eval");
    agent_t *a = big_agent("a1");

    for (uint32_t n = 1; n <= 2; n++) {
        placer_place(s);
        expect_status(t, ST(ASSIGNED));
        cr_assert_eq(t->n_attempts, n);
        uint64_t id = dag_current_attempt(t)->id;
        if (n == 1)
            dag_task_started(s, t, 0); /* lost while RUNNING, then while ASSIGNED */
        dag_task_lost(s, t, "agent stopped answering");
        expect_ready(t, true);
        cr_assert_eq(t->retries_used, 0, "a loss is not a retry");
        cr_assert_eq(t->preemptions, n);
        cr_assert_eq(t->retry_at_ms, 0, "requeued at once, no backoff");
        cr_assert_eq(t->attempts[n - 1]->status, ST(LOST));
        cr_assert_str_eq(t->attempts[n - 1]->reason, "agent stopped answering");
        cr_assert_gt(t->attempts[n - 1]->finished_ms, 0);
        cr_assert_null(idmap_get(s->dag.attempts, id));
        cr_assert_null(t->agent);
        cr_assert_eq(a->n_tasks, 0);
        cr_assert_eq(a->used.cpu_milli, 0);
        expect_run(r, RS(RUNNING));
    }
    /* Losing a task that is not running changes nothing. */
    dag_task_lost(s, t, "again");
    expect_ready(t, true);
    cr_assert_eq(t->preemptions, 2);

    /* The third loss exceeds max_preemptions (2). */
    placer_place(s);
    dag_task_lost(s, t, "agent stopped answering");
    expect_status(t, ST(FAILED));
    expect_ready(t, false);
    cr_assert(dag_task_final(t), "gave up: final even with retries left");
    cr_assert_eq(t->retries_used, 0);
    cr_assert_eq(t->preemptions, 3);
    cr_assert(strstr(t->reason, "gave up after 3") != NULL, "reason: %s", t->reason);
    expect_status(ev, ST(SKIPPED));
    expect_run(r, RS(FAILED));
    cr_assert_gt(r->rec->finished_ms, 0);
}

/* The agent running t reports its attempt failed for the agent's own
 * reasons (Report.system_error), as the agent does when its disk is full. */
static void system_error_exit(task_t *t, const char *why)
{
    Drover__Report rep = DROVER__REPORT__INIT;
    rep.attempt_id = dag_current_attempt(t)->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = 1;
    rep.reason = (char *)why;
    rep.system_error = true;
    dag_task_exited(s, t, &rep);
}

static const char *DISKY = "name: disky\n"
                           "steps:\n"
                           "  - name: write\n"
                           "    command: [true]\n"
                           "    retries: {limit: 2}\n"
                           "  - name: after\n"
                           "    needs: [write]\n"
                           "    command: [true]\n";

Test(dag, system_errors_move_the_task_without_spending_retries)
{
    run_t *r = h_submit(s, DISKY);
    task_t *t = h_task(r, "write"), *after = h_task(r, "after");
    agent_t *full = h_register(s, "full", 8000, 16ull << 30, 0, NULL); /* most free cpu */
    agent_t *ok = h_register(s, "ok", 2000, 16ull << 30, 0, NULL);
    const char *why = "system error on agent full (not the step's failure): no space left on "
                      "device (work dir /w: 0 bytes free); the step ended with: exit code 1";

    placer_place(s);
    cr_assert_eq(t->agent, full);
    dag_task_started(s, t, 0);
    system_error_exit(t, why);
    expect_ready(t, true);
    expect_run(r, RS(RUNNING));
    cr_assert_eq(t->retries_used, 0, "a system error is not a retry");
    cr_assert_eq(t->system_errors, 1);
    cr_assert_eq(t->retry_at_ms, 0, "requeued at once, no backoff");
    cr_assert_eq(t->attempts[0]->status, ST(FAILED));
    cr_assert(t->attempts[0]->system_error);
    cr_assert_str_eq(t->attempts[0]->reason, why);
    cr_assert_str_eq(t->reason, why);
    cr_assert_eq(full->used.cpu_milli, 0, "resources released");

    placer_place(s);
    cr_assert_eq(t->agent, ok, "the agent of the system error is avoided while another fits");
    system_error_exit(t, "system error on agent ok (not the step's failure): inputs: x");
    expect_ready(t, true);
    placer_place(s);
    cr_assert_eq(t->agent, full, "now the other one is avoided");

    /* The third is the last (--max-system-errors 3 by default). */
    system_error_exit(t, why);
    expect_status(t, ST(FAILED));
    cr_assert(dag_task_final(t), "gave up: final with retries left");
    cr_assert_eq(t->retries_used, 0);
    cr_assert_eq(t->system_errors, 3);
    cr_assert(strstr(t->reason, "no space left on device") != NULL, "reason: %s", t->reason);
    cr_assert(strstr(t->reason, "gave up after 3 system errors") != NULL, "reason: %s", t->reason);
    expect_status(after, ST(SKIPPED));
    expect_run(r, RS(FAILED));

    /* Durable: the count and which attempts were system errors. */
    h_sched_restart();
    run_t *again = dag_find_run(s, "r000001");
    cr_assert_not_null(again);
    t = h_task(again, "write");
    cr_assert_eq(t->system_errors, 3);
    cr_assert_eq(t->retries_used, 0);
    cr_assert_eq(t->n_attempts, 3);
    for (uint32_t i = 0; i < 3; i++)
        cr_assert(t->attempts[i]->system_error, "attempt %u", i + 1);
}

Test(dag, system_error_on_the_only_agent_that_fits_tries_it_again)
{
    run_t *r = h_submit(s, DISKY);
    task_t *t = h_task(r, "write");
    agent_t *a1 = h_register(s, "a1", 4000, 16ull << 30, 0, NULL);
    h_register(s, "tiny", 500, 16ull << 30, 0, NULL); /* never room for cpu: 1 */
    placer_place(s);
    cr_assert_eq(t->agent, a1);
    system_error_exit(t, "system error on agent a1 (not the step's failure): fork: EAGAIN");
    expect_ready(t, true);
    placer_place(s);
    expect_status(t, ST(ASSIGNED));
    cr_assert_eq(t->agent, a1, "no other agent could ever take it: a1 again, not forever READY");
    cr_assert_eq(dag_current_attempt(t)->number, 2);
    h_exit(s, t, 0);
    expect_status(t, ST(SUCCEEDED));
    cr_assert_eq(t->system_errors, 1);
    cr_assert_eq(t->retries_used, 0);
}

Test(dag, silent_agent_is_declared_lost_and_its_tasks_move)
{
    run_t *r = h_submit(s, LOSSY);
    task_t *t = h_task(r, "train");
    agent_t *a1 = big_agent("a1");
    placer_place(s);
    dag_task_started(s, t, 0);
    cr_assert_eq(t->agent, a1);

    /* a1 has not been heard from for longer than agent_timeout_ms. */
    a1->last_seen_mono = util_mono_ms() - (int64_t)s->cfg.agent_timeout_ms - 1000;
    agents_tick(s);
    cr_assert_not(a1->connected);
    expect_ready(t, true);
    cr_assert_eq(t->preemptions, 1);
    cr_assert_eq(t->retries_used, 0);
    cr_assert_eq(t->attempts[0]->status, ST(LOST));

    placer_place(s);
    expect_ready(t, true); /* the lost agent gets no work */
    agent_t *a2 = big_agent("a2");
    placer_place(s);
    expect_status(t, ST(ASSIGNED));
    cr_assert_eq(t->agent, a2);
    cr_assert_str_eq(dag_current_attempt(t)->agent, "a2");
    cr_assert_eq(dag_current_attempt(t)->number, 2);
}

Test(dag, cancel_marks_unfinished_tasks_and_the_run)
{
    run_t *r = h_submit(s, "name: cancel\n"
                           "steps:\n"
                           "  - {name: done, command: [true]}\n"
                           "  - {name: running, command: [sleep, '60']}\n"
                           "  - {name: waiting, needs: [running], command: [true]}\n"
                           "  - name: parked\n"
                           "    command: [true]\n"
                           "    placement: {labels: {pool: nowhere}}\n"
                           "  - name: retrying\n"
                           "    command: [false]\n"
                           "    retries: {limit: 3, backoff: 1h}\n");
    task_t *done = h_task(r, "done"), *running = h_task(r, "running"),
           *waiting = h_task(r, "waiting"), *parked = h_task(r, "parked"),
           *retrying = h_task(r, "retrying");
    agent_t *a = big_agent("a1");
    placer_place(s);
    h_exit(s, done, 0);
    dag_task_started(s, running, 0);
    uint64_t running_id = dag_current_attempt(running)->id;
    h_exit(s, retrying, 1);
    expect_status(retrying, ST(FAILED));
    cr_assert_neq(retrying->retry_at_ms, 0);
    expect_ready(parked, true);
    size_t kills_before = a->out.n_kills;

    dag_cancel_run(s, r);
    expect_run(r, RS(CANCELLED));
    cr_assert_gt(r->rec->finished_ms, 0);
    cr_assert_eq(r->unfinished, 0);
    expect_status(done, ST(SUCCEEDED));
    expect_status(running, ST(CANCELLED));
    cr_assert_eq(running->attempts[0]->status, ST(CANCELLED));
    cr_assert_gt(running->attempts[0]->finished_ms, 0);
    expect_status(waiting, ST(CANCELLED));
    expect_status(parked, ST(CANCELLED));
    expect_status(retrying, ST(CANCELLED));
    cr_assert_eq(retrying->retry_at_ms, 0);
    for (size_t i = 0; i < r->n_tasks; i++)
        cr_assert(dag_task_final(r->tasks[i]), "task %s not final", r->tasks[i]->name);
    cr_assert_str_eq(waiting->reason, "run cancelled");
    cr_assert_eq(s->dag.n_ready, 0);
    cr_assert_null(s->dag.ready_head);

    /* The running attempt is killed on its agent and its resources freed. */
    cr_assert_eq(a->out.n_kills, kills_before + 1);
    cr_assert_eq(a->out.kills[kills_before], running_id);
    cr_assert_eq(a->used.cpu_milli, 0);
    cr_assert_eq(a->n_tasks, 0);

    /* Nothing comes back: no retry, no placement, no late exit. */
    dag_retry_due(s, INT64_MAX);
    expect_status(retrying, ST(CANCELLED));
    placer_place(s);
    for (size_t i = 0; i < r->n_tasks; i++)
        cr_assert_neq(r->tasks[i]->status, ST(ASSIGNED));
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Report rep = DROVER__REPORT__INIT, *reps[1] = {&rep};
    rep.seq = 7;
    rep.attempt_id = running_id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.term_signal = 15;
    m.n_reports = 1;
    m.reports = reps;
    h_agent_send(s, "a1", &m);
    expect_status(running, ST(CANCELLED));
    expect_run(r, RS(CANCELLED));
}

Test(dag, backoff_arithmetic)
{
    Drover__RetryPolicy p = DROVER__RETRY_POLICY__INIT;
    p.backoff_ms = 1000;
    p.factor = 2.0;
    cr_assert_eq(dag_backoff_ms(&p, 1), 1000);
    cr_assert_eq(dag_backoff_ms(&p, 2), 2000);
    cr_assert_eq(dag_backoff_ms(&p, 3), 4000);
    cr_assert_eq(dag_backoff_ms(&p, 11), 1024000);

    p.max_backoff_ms = 3000;
    cr_assert_eq(dag_backoff_ms(&p, 1), 1000);
    cr_assert_eq(dag_backoff_ms(&p, 2), 2000);
    cr_assert_eq(dag_backoff_ms(&p, 3), 3000, "capped by max_backoff");
    cr_assert_eq(dag_backoff_ms(&p, 100), 3000);
    p.max_backoff_ms = 500; /* a cap below the first delay wins too */
    cr_assert_eq(dag_backoff_ms(&p, 1), 500);

    p.max_backoff_ms = 0;
    p.factor = 0.5; /* < 1 is treated as 1: never shrinks */
    cr_assert_eq(dag_backoff_ms(&p, 1), 1000);
    cr_assert_eq(dag_backoff_ms(&p, 5), 1000);
    p.factor = 0;
    cr_assert_eq(dag_backoff_ms(&p, 7), 1000);
    p.factor = NAN;
    cr_assert_eq(dag_backoff_ms(&p, 7), 1000, "NaN factor is treated as 1");
    p.factor = 1.5;
    cr_assert_eq(dag_backoff_ms(&p, 3), 2250);

    /* Huge n: saturates instead of overflowing, and stays monotone. */
    p.factor = 2.0;
    uint64_t prev = 0;
    for (uint32_t n = 1; n <= 200; n++) {
        uint64_t d = dag_backoff_ms(&p, n);
        cr_assert_geq(d, prev, "backoff shrank at n=%u: %lu < %lu", n, (unsigned long)d,
                      (unsigned long)prev);
        prev = d;
    }
    uint64_t huge = dag_backoff_ms(&p, UINT32_MAX);
    cr_assert_geq(huge, dag_backoff_ms(&p, 40));
    cr_assert_lt(huge, (uint64_t)INT64_MAX / 2, "retry_at = now + backoff must not overflow");
    p.backoff_ms = UINT64_MAX;
    cr_assert_lt(dag_backoff_ms(&p, 3), (uint64_t)INT64_MAX / 2);
    p.max_backoff_ms = 60000;
    cr_assert_eq(dag_backoff_ms(&p, UINT32_MAX), 60000);
}

Test(dag, run_with_independent_steps_succeeds_when_all_do)
{
    run_t *r = h_submit(s, "name: flat\n"
                           "steps:\n"
                           "  - {name: a, command: [true]}\n"
                           "  - {name: b, command: [true]}\n"
                           "  - {name: c, command: [true]}\n");
    big_agent("a1");
    placer_place(s);
    cr_assert_eq(s->dag.n_ready, 0);
    h_exit(s, h_task(r, "b"), 0);
    h_exit(s, h_task(r, "a"), 0);
    expect_run(r, RS(RUNNING));
    cr_assert_eq(r->rec->finished_ms, 0);
    h_exit(s, h_task(r, "c"), 0);
    expect_run(r, RS(SUCCEEDED));
    cr_assert_gt(r->rec->finished_ms, 0);
    /* A second run gets the next id. */
    run_t *r2 = h_submit(s, "name: flat2\nsteps:\n  - {name: a, command: [true]}\n");
    cr_assert_str_eq(r2->rec->id, "r000002");
    cr_assert_eq(dag_find_run(s, "r000001"), r);
    cr_assert_eq(dag_find_run(s, "r000002"), r2);
    cr_assert_null(dag_find_run(s, "r000003"));
    cr_assert_null(dag_find_task(r2, "nope"));
}

/* ------------------------------------------------------------ restart */

static const char *PERSIST = "name: persist\n"
                             "steps:\n"
                             "  - {name: root, command: [true]}\n"
                             "  - {name: left, needs: [root], command: [true]}\n"
                             "  - {name: right, needs: [root], command: [true]}\n"
                             "  - {name: join, needs: [left, right], command: [true]}\n"
                             "  - name: flaky\n"
                             "    command: [false]\n"
                             "    retries: {limit: 2, backoff: 1h}\n"
                             "  - name: parked\n"
                             "    command: [true]\n"
                             "    placement: {labels: {pool: nowhere}}\n";

Test(dag, state_survives_restart)
{
    run_t *r = h_submit(s, PERSIST);
    h_register(s, "a1", 8000, 16ull << 30, 0, "zone=a,pool=cpu");
    placer_place(s); /* root, flaky */
    task_t *root = h_task(r, "root"), *flaky = h_task(r, "flaky");
    uint64_t root_id = dag_current_attempt(root)->id;
    h_exit(s, root, 0);
    h_exit(s, flaky, 2);
    int64_t retry_at = flaky->retry_at_ms;
    placer_place(s); /* left, right */
    task_t *left = h_task(r, "left"), *right = h_task(r, "right");
    dag_task_started(s, left, 0);
    uint64_t left_id = dag_current_attempt(left)->id;
    uint64_t right_id = dag_current_attempt(right)->id;
    expect_status(right, ST(ASSIGNED));
    uint64_t next_attempt = s->dag.next_attempt;

    /* Restart: sched_destroy commits what is pending; reopen the dir. */
    h_sched_restart();

    cr_assert_eq(s->dag.n_runs, 1);
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    expect_run(r, RS(RUNNING));
    cr_assert_str_eq(r->rec->name, "persist");
    cr_assert_eq(r->unfinished, 5);
    root = h_task(r, "root");
    left = h_task(r, "left");
    right = h_task(r, "right");
    flaky = h_task(r, "flaky");
    task_t *join = h_task(r, "join"), *parked = h_task(r, "parked");

    expect_status(root, ST(SUCCEEDED));
    cr_assert_eq(root->n_attempts, 1);
    cr_assert_eq(root->attempts[0]->id, root_id);
    cr_assert_eq(root->attempts[0]->status, ST(SUCCEEDED));
    cr_assert_str_eq(root->attempts[0]->agent, "a1");
    cr_assert_gt(root->attempts[0]->finished_ms, 0);

    agent_t *a1 = fleet_find(&s->fleet, "a1");
    cr_assert_not_null(a1, "the agent record was restored");
    cr_assert_not(a1->connected, "an agent is disconnected until it registers again");
    cr_assert_eq(a1->capacity.cpu_milli, 8000);
    cr_assert_eq(a1->capacity.memory_bytes, 16ull << 30);
    cr_assert_eq(a1->n_labels, 2);

    /* Attempts in flight are bound to their agent again. */
    expect_status(left, ST(RUNNING));
    expect_status(right, ST(ASSIGNED));
    cr_assert_eq(left->agent, a1);
    cr_assert_eq(right->agent, a1);
    cr_assert_eq(a1->n_tasks, 2);
    cr_assert_eq(a1->used.cpu_milli, 2000);
    cr_assert_eq(idmap_get(s->dag.attempts, left_id), left);
    cr_assert_eq(idmap_get(s->dag.attempts, right_id), right);
    cr_assert(left->assign_acked, "a RUNNING attempt was acknowledged");
    cr_assert_not(right->assign_acked, "an ASSIGNED one must be re-sent");
    cr_assert_gt(left->attempts[0]->started_ms, 0);

    expect_status(join, ST(WAITING));
    cr_assert_eq(join->unfinished_deps, 2);
    expect_ready(join, false);

    expect_status(flaky, ST(FAILED));
    cr_assert_eq(flaky->retry_at_ms, retry_at);
    cr_assert_eq(flaky->retries_used, 1);
    cr_assert_str_eq(flaky->reason, "exit code 2");
    cr_assert_not(dag_task_final(flaky));

    expect_ready(parked, true);
    cr_assert_eq(s->dag.n_ready, 1);

    /* The pending retry is remembered. */
    dag_retry_due(s, retry_at - 1);
    expect_status(flaky, ST(FAILED));
    dag_retry_due(s, retry_at);
    expect_ready(flaky, true);

    /* Ids continue where they were. */
    cr_assert_eq(s->dag.next_attempt, next_attempt);
    run_t *r2 = h_submit(s, "name: more\nsteps:\n  - {name: a, command: [true]}\n");
    cr_assert_str_eq(r2->rec->id, "r000002");

    /* a1 comes back holding both attempts: they carry on. */
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    uint64_t held[2] = {left_id, right_id};
    cap.cpu_milli = 8000;
    cap.memory_bytes = 16ull << 30;
    reg.name = "a1";
    reg.capacity = &cap;
    reg.attempts = held;
    reg.n_attempts = 2;
    m.register_ = &reg;
    h_agent_send(s, "a1", &m);
    cr_assert(a1->connected);
    expect_status(left, ST(RUNNING));
    expect_status(right, ST(ASSIGNED));
    cr_assert(right->assign_acked, "held by the agent: no need to re-send");
    cr_assert_eq(a1->out.n_kills, 0);

    h_exit(s, left, 0);
    h_exit(s, right, 0);
    expect_ready(join, true);
}

Test(dag, restart_loses_attempts_on_an_agent_that_comes_back_without_them)
{
    run_t *r = h_submit(s, DIAMOND);
    h_register(s, "a1", 8000, 0, 0, NULL);
    placer_place(s);
    task_t *root = h_task(r, "root");
    dag_task_started(s, root, 0);
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    root = h_task(r, "root");
    expect_status(root, ST(RUNNING));

    /* a1 restarted meanwhile: it registers holding nothing. */
    h_register(s, "a1", 8000, 0, 0, NULL);
    expect_ready(root, true);
    cr_assert_eq(root->attempts[0]->status, ST(LOST));
    cr_assert_eq(root->preemptions, 1);
    cr_assert_eq(root->retries_used, 0);
    placer_place(s);
    expect_status(root, ST(ASSIGNED));
    cr_assert_eq(dag_current_attempt(root)->number, 2);
}

/* ------------------------------------------------------------ what a commit writes */

/* A chain of n steps whose commands are long: its compiled steps are n ×
 * about 300 bytes. Caller frees. */
static char *long_chain(size_t n)
{
    const char *pad =
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    size_t cap = 256 + n * 512, len = 0;
    char *y = xmalloc(cap);
    len += (size_t)snprintf(y + len, cap - len, "name: long\nsteps:\n");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(y + len, cap - len, "  - name: s%zu\n", i);
        if (i)
            len += (size_t)snprintf(y + len, cap - len, "    needs: [s%zu]\n", i - 1);
        len +=
            (size_t)snprintf(y + len, cap - len, "    command: [sh, -c, 'echo %zu %s']\n", i, pad);
    }
    return y;
}

/* One loop iteration: place, commit, send. What it stored, in bytes. */
static uint64_t flush_bytes(void)
{
    uint64_t before = store_bytes_put(s->store);
    ev_run(s->loop, EVRUN_NOWAIT);
    cr_assert_eq(s->fatal, 0, "commit failed");
    return store_bytes_put(s->store) - before;
}

/* The issue: every finished task rewrote its run record with every
 * compiled step (641 KiB per task in a 5,000-step chain). A task's
 * transition now stores that task (and small counters); the steps are
 * stored once, at submit, and the run record only when the run's own
 * state changes, and it stays small. */
Test(dag, a_task_transition_writes_the_task_not_the_run)
{
    const size_t n = 200;
    char *y = long_chain(n);
    run_t *r = h_submit(s, y);
    free(y);
    big_agent("a1");
    uint64_t submit = flush_bytes();
    cr_assert_gt(submit, n * 300, "the submit stores the compiled steps: %" PRIu64 " bytes",
                 submit);

    for (size_t i = 0; i + 1 < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%zu", i);
        task_t *t = h_task(r, name);
        expect_status(t, ST(ASSIGNED));
        dag_task_started(s, t, 0);
        h_exit(s, t, 0);
        /* t SUCCEEDED, the next step READY, placed, ASSIGNED: */
        uint64_t w = flush_bytes();
        cr_assert_lt(w, 2048,
                     "step %zu of %zu: one task's transition stored %" PRIu64
                     " bytes (the compiled steps are %" PRIu64 ")",
                     i, n, w, submit);
    }
    task_t *last = h_task(r, "s199");
    dag_task_started(s, last, 0);
    h_exit(s, last, 0);
    expect_run(r, RS(SUCCEEDED));
    uint64_t w = flush_bytes();
    cr_assert_lt(w, 2048, "the run's end stored %" PRIu64 " bytes", w);

    /* Reloaded, the run has every step and its outcome. */
    h_sched_restart();
    r = dag_find_run(s, "r000001");
    cr_assert_not_null(r);
    expect_run(r, RS(SUCCEEDED));
    cr_assert_eq(r->n_tasks, n);
    task_t *t = h_task(r, "s150");
    expect_status(t, ST(SUCCEEDED));
    cr_assert_str_eq(t->step->argv[0], "sh");
    cr_assert(strncmp(t->step->argv[2], "echo 150 xxx", 12) == 0, "%s", t->step->argv[2]);
    cr_assert_eq(t->step->n_needs, 1);
    cr_assert_eq(t->step->needs[0], 149);
}

/* An operator's state dir from before the steps had their own database
 * (schema 1) loads: runs in flight carry on where they were, and a
 * finished one can be deleted. */
Test(dag, schema_1_state_dir_loads_and_its_runs_carry_on)
{
    run_t *r = h_submit(s, DIAMOND);
    run_t *done = h_submit(s, "name: done\nsteps:\n  - {name: a, command: [echo, hi]}\n");
    h_register(s, "a1", 8000, 0, 0, NULL);
    placer_place(s);
    h_exit(s, h_task(done, "a"), 0);
    expect_run(done, RS(SUCCEEDED));
    task_t *root = h_task(r, "root");
    dag_task_started(s, root, 0);
    h_exit(s, root, 0);
    placer_place(s); /* left, right */
    uint64_t left_id = dag_current_attempt(h_task(r, "left"))->id;
    uint64_t right_id = dag_current_attempt(h_task(r, "right"))->id;
    h_sched_close(&s);
    cr_assert_eq(h_state_to_schema1(h_dir), 2);

    s = h_sched_open(h_dir);
    cr_assert_eq(s->dag.n_runs, 2);
    r = dag_find_run(s, "r000001");
    done = dag_find_run(s, "r000002");
    cr_assert_not_null(r);
    cr_assert_not_null(done);
    expect_run(r, RS(RUNNING));
    expect_run(done, RS(SUCCEEDED));
    cr_assert_eq(r->steps->n_steps, 4);
    cr_assert_eq(r->rec->n_legacy_steps, 0);
    task_t *join = h_task(r, "join");
    cr_assert_eq(join->step->n_needs, 2);
    cr_assert_str_eq(h_task(done, "a")->step->argv[1], "hi");
    expect_status(h_task(r, "root"), ST(SUCCEEDED));
    expect_status(h_task(r, "left"), ST(ASSIGNED));
    cr_assert_eq(join->unfinished_deps, 2);

    /* a1 comes back holding both attempts; the run finishes. */
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    uint64_t held[2] = {left_id, right_id};
    cap.cpu_milli = 8000;
    reg.name = "a1";
    reg.capacity = &cap;
    reg.attempts = held;
    reg.n_attempts = 2;
    m.register_ = &reg;
    h_agent_send(s, "a1", &m);
    h_exit(s, h_task(r, "left"), 0);
    h_exit(s, h_task(r, "right"), 0);
    placer_place(s);
    h_exit(s, join, 0);
    expect_run(r, RS(SUCCEEDED));

    /* The finished run of the old layout is deleted like any other. */
    cr_assert_eq(dag_delete_run(s, done), 0);
    flush_bytes();
    h_sched_restart();
    cr_assert_eq(s->dag.n_runs, 1);
    cr_assert_null(dag_find_run(s, "r000002"));
    expect_run(dag_find_run(s, "r000001"), RS(SUCCEEDED));
}
