/* test_worker — the background thread for blocking work (common/worker.c).
 *
 * What callers rely on: work() runs on the worker thread, never on the
 * loop thread; done() runs on the loop thread, in submission order (chunk
 * writes of one blob depend on it); every job submitted completes, also
 * when the worker is destroyed with jobs still queued; worker_pending
 * counts jobs not yet done. The loop is the default libev loop, run with
 * EVRUN_ONCE until a condition holds (a repeating timer bounds each wait,
 * and a deadline bounds the whole).
 */
#define DROVER_TEST_AGENT
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>

#include "worker.h"

#define WAIT_MS 10000

static struct ev_loop *loop;
static worker_t *w;
static pthread_t loop_thread;

/* A gate a job's work() can block on until the test opens it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int gate_waiting; /* work() calls blocked on the gate */

static void gate_wait(void)
{
    pthread_mutex_lock(&gate_lock);
    atomic_fetch_add(&gate_waiting, 1);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void setup(void)
{
    loop = EV_DEFAULT;
    loop_thread = pthread_self();
    gate_open = false;
    atomic_store(&gate_waiting, 0);
    w = worker_new(loop);
    cr_assert_not_null(w);
}

static void teardown(void)
{
    gate_release(); /* never leave the thread blocked */
    worker_destroy(&w);
}

TestSuite(worker, .init = setup, .fini = teardown, .timeout = 60);

/* Run the loop until cond(arg) holds or WAIT_MS pass; returns cond. */
static bool pump_until(bool (*cond)(void *), void *arg)
{
    return h_pump_until(loop, cond, arg, WAIT_MS);
}

/* ------------------------------------------------------------ jobs */

typedef struct {
    int idx;
    pthread_t work_thread;
    int work_seq; /* order in which work() ran */
    bool worked;
    bool gated; /* work() waits for the gate first */
    uint64_t input, output;
} job_t;

static atomic_int work_seq;
static int *done_order;
static size_t n_done;
static bool done_off_loop; /* a done() ran on another thread */
static bool done_before_work;

static void job_work(void *arg)
{
    job_t *j = arg;
    if (j->gated)
        gate_wait();
    j->work_thread = pthread_self();
    j->work_seq = atomic_fetch_add(&work_seq, 1);
    /* some real computation, so work() is not trivially empty */
    uint64_t x = j->input;
    for (int i = 0; i < 1000; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    j->output = x;
    j->worked = true;
}

static uint64_t expected_output(uint64_t x)
{
    for (int i = 0; i < 1000; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

static void job_done(void *arg)
{
    job_t *j = arg;
    if (!pthread_equal(pthread_self(), loop_thread))
        done_off_loop = true;
    if (!j->worked)
        done_before_work = true;
    done_order[n_done++] = j->idx;
}

static job_t *make_jobs(size_t n)
{
    job_t *jobs = xcalloc(n, sizeof *jobs);
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n; i++) {
        jobs[i].idx = (int)i;
        jobs[i].input = h_rand(&seed);
    }
    done_order = xcalloc(n, sizeof *done_order);
    n_done = 0;
    atomic_store(&work_seq, 0);
    done_off_loop = done_before_work = false;
    return jobs;
}

static bool all_done(void *arg)
{
    return n_done == *(size_t *)arg;
}

static void check_all_ran(const job_t *jobs, size_t n)
{
    cr_assert_eq(n_done, n, "%zu of %zu done callbacks ran", n_done, n);
    cr_assert_not(done_off_loop, "a done callback ran off the loop thread");
    cr_assert_not(done_before_work, "a done callback ran before its work");
    for (size_t i = 0; i < n; i++) {
        cr_assert(jobs[i].worked, "job %zu never ran", i);
        cr_assert_eq(done_order[i], (int)i, "done #%zu was job %d: not submission order", i,
                     done_order[i]);
        cr_assert_eq(jobs[i].work_seq, (int)i, "job %zu's work ran as #%d", i, jobs[i].work_seq);
        cr_assert_eq(jobs[i].output, expected_output(jobs[i].input), "job %zu: wrong result", i);
    }
}

Test(worker, work_runs_off_the_loop_thread_and_done_on_it_in_order)
{
    size_t n = 200;
    job_t *jobs = make_jobs(n);
    for (size_t i = 0; i < n; i++)
        worker_submit(w, job_work, job_done, &jobs[i]);
    cr_assert(pump_until(all_done, &n), "only %zu of %zu jobs completed", n_done, n);
    check_all_ran(jobs, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_not(pthread_equal(jobs[i].work_thread, loop_thread),
                      "job %zu's work ran on the loop thread", i);
        cr_assert(pthread_equal(jobs[i].work_thread, jobs[0].work_thread),
                  "jobs ran on more than one background thread");
    }
    cr_assert_eq(worker_pending(w), 0);
    free(jobs);
    free(done_order);
}

Test(worker, a_thousand_jobs_all_complete)
{
    size_t n = 1000;
    job_t *jobs = make_jobs(n);
    /* submitted in bursts while the loop runs, as droverd does */
    for (size_t i = 0; i < n; i++) {
        worker_submit(w, job_work, job_done, &jobs[i]);
        if (i % 97 == 0)
            ev_run(loop, EVRUN_NOWAIT);
    }
    cr_assert(pump_until(all_done, &n), "only %zu of %zu jobs completed", n_done, n);
    check_all_ran(jobs, n);
    cr_assert_eq(worker_pending(w), 0);
    free(jobs);
    free(done_order);
}

static bool gate_has_waiter(void *arg)
{
    return atomic_load(&gate_waiting) > 0;
}

Test(worker, destroy_finishes_queued_jobs_and_runs_their_done_callbacks)
{
    size_t n = 100;
    job_t *jobs = make_jobs(n);
    jobs[0].gated = true; /* holds the thread: the other 99 stay queued */
    for (size_t i = 0; i < n; i++)
        worker_submit(w, job_work, job_done, &jobs[i]);
    cr_assert(pump_until(gate_has_waiter, NULL), "the first job never started");
    cr_assert_eq(n_done, 0);
    cr_assert_eq(worker_pending(w), n);
    cr_assert_not(jobs[1].worked, "job 1 ran while job 0 was still running");

    gate_release();
    worker_destroy(&w); /* without running the loop */
    cr_assert_null(w, "worker_destroy NULLs the pointer");
    check_all_ran(jobs, n);

    worker_destroy(&w); /* NULL is accepted */
    worker_destroy(NULL);
    free(jobs);
    free(done_order);
}

Test(worker, pending_counts_jobs_not_yet_done)
{
    size_t n = 5;
    job_t *jobs = make_jobs(n);
    cr_assert_eq(worker_pending(w), 0);
    jobs[0].gated = true;
    for (size_t i = 0; i < n; i++) {
        worker_submit(w, job_work, job_done, &jobs[i]);
        cr_assert_eq(worker_pending(w), i + 1);
    }
    cr_assert(pump_until(gate_has_waiter, NULL));
    /* running (job 0) and queued (1..4) jobs all count */
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(worker_pending(w), n);
    cr_assert_eq(n_done, 0);

    gate_release();
    cr_assert(pump_until(all_done, &n));
    check_all_ran(jobs, n);
    cr_assert_eq(worker_pending(w), 0);
    free(jobs);
    free(done_order);
}

/* done may be NULL: the job still runs and stops counting as pending. */
static atomic_int bare_runs;

static void bare_work(void *arg)
{
    atomic_fetch_add(&bare_runs, 1);
}

static bool nothing_pending(void *arg)
{
    return worker_pending(w) == 0;
}

Test(worker, jobs_without_done_callback)
{
    atomic_store(&bare_runs, 0);
    for (int i = 0; i < 50; i++)
        worker_submit(w, bare_work, NULL, NULL);
    cr_assert_eq(worker_pending(w), 50);
    cr_assert(pump_until(nothing_pending, NULL), "%u jobs still pending", worker_pending(w));
    cr_assert_eq(atomic_load(&bare_runs), 50);
}

/* A done callback may submit the next job (droverd's chunk pipeline does):
 * the chain runs to its end, in order. */
typedef struct {
    int links, seen;
    int order[64];
    bool wrong_thread;
} chain_t;

static chain_t chain;

static void chain_work(void *arg)
{
    if (pthread_equal(pthread_self(), loop_thread))
        chain.wrong_thread = true;
}

static void chain_done(void *arg)
{
    int i = (int)(intptr_t)arg;
    chain.order[chain.seen++] = i;
    if (i + 1 < chain.links)
        worker_submit(w, chain_work, chain_done, (void *)(intptr_t)(i + 1));
}

static bool chain_finished(void *arg)
{
    return chain.seen == chain.links;
}

Test(worker, done_callbacks_may_submit_more_work)
{
    memset(&chain, 0, sizeof chain);
    chain.links = 64;
    worker_submit(w, chain_work, chain_done, (void *)(intptr_t)0);
    cr_assert(pump_until(chain_finished, NULL), "chain stopped after %d links", chain.seen);
    cr_assert_not(chain.wrong_thread);
    for (int i = 0; i < chain.links; i++)
        cr_assert_eq(chain.order[i], i);
    cr_assert_eq(worker_pending(w), 0);
}
