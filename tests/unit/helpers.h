/* helpers — shared by the unit tests (header-only; every helper is static
 * inline so a test that does not use one gets no warning).
 *
 * Always: temporary directories, a seeded PRNG, and a state dir turned
 * back into schema 1's layout (to test the migration). With DROVER_TEST_SCHED
 * defined before inclusion: a real droverd (sched_new on a temp state dir
 * with ipc:// endpoints, no loop run) and shortcuts that drive it the way
 * agents and the CLI do: submit a spec, register an agent, report an exit;
 * and the one fixture of the scheduler suites (h_sched_setup/teardown: a
 * droverd s on a fresh state dir h_dir; h_sched_restart reopens it).
 * With DROVER_TEST_AGENT defined: the agent-side fixture (the default
 * libev loop, a temporary directory, a worker thread when asked), a loop
 * pump that runs until a condition holds or a deadline passes, and the
 * collector of a process's output and exit (runner and runtime callbacks).
 * Include this header first: sched_internal.h brings czmq, whose prelude
 * must come before system headers.
 */
#ifndef DROVER_TEST_HELPERS_H
#define DROVER_TEST_HELPERS_H

#ifdef DROVER_TEST_SCHED
#include "sched_internal.h"
#endif

#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A new empty directory under /tmp (caller frees the string). */
static inline char *h_tmpdir(void)
{
    char *d = xstrdup("/tmp/drover-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(d), "mkdtemp failed");
    return d;
}

/* xorshift64*: reproducible pseudo-random numbers from a seed. */
static inline uint64_t h_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Rewrite the state dir dir (no store open on it) into the layout of
 * schema 1, as a droverd before the steps database left it: each run's
 * steps back inside its RunRecord (field 8, which schema 1 called steps
 * and is now legacy_steps: the same bytes), no steps database, meta
 * schema "1". Returns how many runs it rewrote. */
static inline size_t h_state_to_schema1(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, runs, steps;
    MDB_cursor *cur;
    MDB_val key, val, skey = {.mv_size = 6, .mv_data = "schema"}, sval = {1, "1"};
    size_t n = 0;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0640), 0, "no state in %s", dir);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    cr_assert_eq(mdb_dbi_open(txn, "runs", 0, &runs), 0);
    cr_assert_eq(mdb_dbi_open(txn, "steps", 0, &steps), 0, "no steps database to fold back");
    cr_assert_eq(mdb_cursor_open(txn, steps, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        Drover__RunSteps *st = drover__run_steps__unpack(NULL, val.mv_size, val.mv_data);
        MDB_val rval;
        cr_assert_not_null(st);
        cr_assert_eq(mdb_get(txn, runs, &key, &rval), 0, "steps of a run without a record");
        Drover__RunRecord *r = drover__run_record__unpack(NULL, rval.mv_size, rval.mv_data);
        cr_assert_not_null(r);
        r->n_legacy_steps = st->n_steps;
        r->legacy_steps = st->steps;
        rval.mv_size = drover__run_record__get_packed_size(r);
        cr_assert_eq(mdb_put(txn, runs, &key, &rval, MDB_RESERVE), 0);
        drover__run_record__pack(r, rval.mv_data);
        r->n_legacy_steps = 0; /* they belong to st */
        r->legacy_steps = NULL;
        drover__run_record__free_unpacked(r, NULL);
        drover__run_steps__free_unpacked(st, NULL);
        n++;
    }
    mdb_cursor_close(cur);
    cr_assert_eq(mdb_drop(txn, steps, 1), 0);
    cr_assert_eq(mdb_put(txn, meta, &skey, &sval, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    return n;
}

#ifdef DROVER_TEST_SCHED

/* A scheduler on a fresh (or the given) state dir; sockets are ipc:// in
 * that dir so tests never collide. The loop is never run: tests call the
 * modules directly and inspect the model. */
static inline sched_t *h_sched_open(const char *dir)
{
    sched_config_t cfg;
    sched_config_defaults(&cfg);
    char *listen = xasprintf("ipc://%s/agents.sock", dir);
    char *api = xasprintf("ipc://%s/api.sock", dir);
    cfg.state_dir = dir;
    cfg.listen = listen;
    cfg.api = api;
    sched_t *s = sched_new(&cfg);
    cr_assert_not_null(s, "sched_new(%s) failed", dir);
    /* sched keeps cfg by value; keep the strings alive as long as s: they
     * are leaked into the config on purpose and freed by h_sched_close. */
    return s;
}

/* Every run's tasks by status (run_t.n_status, kept by task_set_status for
 * the metrics) are what a walk of its tasks counts: checked whenever a
 * test closes or restarts its droverd, so every scheduler test checks that
 * no status changes behind task_set_status's back. */
static inline void h_check_status_counts(const sched_t *s)
{
    for (size_t i = 0; i < s->dag.n_runs; i++) {
        const run_t *r = s->dag.runs[i];
        uint32_t n[TASK_STATUS_SLOTS] = {0};
        for (size_t k = 0; k < r->n_tasks; k++) {
            unsigned st = (unsigned)r->tasks[k]->status;
            n[st < TASK_STATUS_SLOTS - 1 ? st : TASK_STATUS_SLOTS - 1]++;
        }
        for (size_t k = 0; k < TASK_STATUS_SLOTS; k++)
            cr_assert_eq(r->n_status[k], n[k], "run %s: n_status[%s] is %u, its tasks %u",
                         r->rec->id,
                         k + 1 < TASK_STATUS_SLOTS ? util_task_status_name((Drover__TaskStatus)k)
                                                   : "unknown",
                         r->n_status[k], n[k]);
        /* and each fan-out's items by status (task_t.item_status, the
         * run views' item_counts) are what a walk of its items counts */
        for (size_t k = 0; k < r->n_tasks; k++) {
            const task_t *g = r->tasks[k];
            if (!g->item_status)
                continue;
            uint32_t m[TASK_STATUS_SLOTS] = {0};
            for (uint32_t j = 0; j < g->n_items; j++) {
                unsigned st = (unsigned)r->tasks[g->items[j]]->status;
                m[st < TASK_STATUS_SLOTS - 1 ? st : TASK_STATUS_SLOTS - 1]++;
            }
            for (size_t j = 0; j < TASK_STATUS_SLOTS; j++)
                cr_assert_eq(g->item_status[j], m[j],
                             "run %s: %s's item_status[%zu] is %u, its items %u", r->rec->id,
                             g->name, j, g->item_status[j], m[j]);
        }
    }
}

/* sched_destroy (which commits what is pending) and free the endpoint
 * strings h_sched_open allocated. */
static inline void h_sched_close(sched_t **s)
{
    if (!*s)
        return;
    h_check_status_counts(*s);
    char *listen = (char *)(*s)->cfg.listen;
    char *api = (char *)(*s)->cfg.api;
    sched_destroy(s);
    free(listen);
    free(api);
}

/* Parse yaml and create a run from it (the API's submit, minus the reply). */
static inline run_t *h_submit(sched_t *s, const char *yaml)
{
    char err[512] = "";
    spec_t *spec = NULL;
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &spec, err, sizeof err);
    cr_assert_eq(rc, 0, "spec_parse: %s", err);
    run_t *r = dag_create_run(s, spec, "t.yaml", false);
    spec_destroy(&spec);
    cr_assert_not_null(r);
    return r;
}

static inline task_t *h_task(run_t *r, const char *name)
{
    task_t *t = dag_find_task(r, name);
    cr_assert_not_null(t, "run %s has no task %s", r->rec->id, name);
    return t;
}

/* Deliver one packed AgentMessage from the agent called name, as the
 * agents socket would. */
static inline void h_agent_send(sched_t *s, const char *name, const Drover__AgentMessage *m)
{
    size_t n = drover__agent_message__get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__agent_message__pack(m, buf);
    zframe_t *id = zframe_new(name, strlen(name));
    agents_handle(s, id, NULL, buf, n);
    zframe_destroy(&id);
    free(buf);
}

/* Register an agent: capacity and labels ("k=v,k=v" or NULL), holding no
 * attempts. Returns the agent as droverd sees it. */
static inline agent_t *h_register(sched_t *s, const char *name, uint32_t cpu_milli, uint64_t memory,
                                  uint32_t gpus, const char *labels)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    Drover__KeyValue **kvs = NULL;
    size_t n_kvs = 0;
    if (labels)
        cr_assert_eq(util_parse_kv_list(labels, &kvs, &n_kvs), 0, "bad labels %s", labels);
    cap.cpu_milli = cpu_milli;
    cap.memory_bytes = memory;
    cap.gpus = gpus;
    reg.name = (char *)name;
    reg.capacity = &cap;
    reg.labels = kvs;
    reg.n_labels = n_kvs;
    m.register_ = &reg;
    h_agent_send(s, name, &m);
    util_free_kvs(kvs, n_kvs);
    agent_t *a = fleet_find(&s->fleet, name);
    const char *refused =
        s->out.n_peer_replies ? s->out.peer_replies[s->out.n_peer_replies - 1].refused : NULL;
    cr_assert_not_null(a, "agent %s not made (refused: %s)", name, refused ? refused : "-");
    cr_assert(a->connected, "agent %s not connected after registering (refused: %s)", name,
              refused ? refused : "-");
    return a;
}

/* The agent running t reports its current attempt EXITED with code and
 * output params kvs[0..n) (not taken). */
static inline void h_exit_params(sched_t *s, task_t *t, int code, Drover__KeyValue **kvs, size_t n)
{
    Drover__Report rep = DROVER__REPORT__INIT;
    Drover__AttemptRecord *a = dag_current_attempt(t);
    cr_assert_not_null(a, "task %s has no attempt", t->step->name);
    rep.attempt_id = a->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = code;
    rep.out_params = kvs;
    rep.n_out_params = n;
    dag_task_exited(s, t, &rep);
}

/* The agent running t reports its current attempt EXITED with code. */
static inline void h_exit(sched_t *s, task_t *t, int code)
{
    h_exit_params(s, t, code, NULL, 0);
}

/* Whether t sits in the scheduler's ready queue (walking the queue, not
 * trusting the task's own flag). */
/* Whether t waits to be placed: in the ready queue, or parked there by
 * the placer (no agent in service could hold it: placer.c). */
static inline bool h_in_ready_queue(const sched_t *s, const task_t *t)
{
    for (const task_t *q = s->dag.ready_head; q; q = q->ready_next)
        if (q == t)
            return true;
    for (const park_t *g = s->dag.parks; g; g = g->next)
        for (const task_t *q = g->head; q; q = q->ready_next)
            if (q == t)
                return q->park == g;
    return false;
}

#define ST(x) DROVER__TASK_STATUS__TASK_##x
#define RS(x) DROVER__RUN_STATUS__RUN_##x

/* Assertions on the model, naming the task and its reason on failure. */
static inline void expect_status(const task_t *t, Drover__TaskStatus want)
{
    cr_assert_eq(t->status, want, "task %s is %s, want %s (reason: %s)", t->name,
                 util_task_status_name(t->status), util_task_status_name(want),
                 t->reason ? t->reason : "-");
}

static inline void expect_run(const run_t *r, Drover__RunStatus want)
{
    cr_assert_eq(r->rec->status, want, "run %s is %s, want %s", r->rec->id,
                 util_run_status_name(r->rec->status), util_run_status_name(want));
}

static inline void expect_reason(const task_t *t, const char *part)
{
    cr_assert(t->reason && strstr(t->reason, part), "task %s: reason '%s' lacks '%s'", t->name,
              t->reason ? t->reason : "(none)", part);
}

/* The fixture every scheduler suite shares: h_dir, a fresh state dir, and
 * s, a droverd on it, made before each test and closed and removed after:
 *   TestSuite(name, .init = h_sched_setup, .fini = h_sched_teardown);
 * Tests use s and h_dir directly. */
static char *h_dir;
static sched_t *s;

static inline void h_sched_setup(void)
{
    h_dir = h_tmpdir();
    s = h_sched_open(h_dir);
}

static inline void h_sched_teardown(void)
{
    h_sched_close(&s);
    util_rm_rf(h_dir);
    free(h_dir);
    h_dir = NULL;
}

/* A droverd restart: close s (sched_destroy commits what is pending) and
 * open the same state dir again. */
static inline void h_sched_restart(void)
{
    h_sched_close(&s);
    s = h_sched_open(h_dir);
}

#endif /* DROVER_TEST_SCHED */

#ifdef DROVER_TEST_AGENT
/* ------------------------------------------------------------------------
 * The agent's modules on a real loop (test_runner, test_runtime,
 * test_preempt, test_transfer, test_workdirs, test_worker). */
#include <ev.h>

#include "runner.h"
#include "worker.h"

/* What a test of the agent's modules runs on. The loop is libev's default
 * one (child watchers need it); dir is a new directory under /tmp, removed
 * with what it holds by h_agent_fini; worker is NULL unless asked for. */
typedef struct {
    struct ev_loop *loop;
    char *dir;
    worker_t *worker;
} h_agent_t;

static inline void h_agent_init(h_agent_t *fx, bool with_worker)
{
    fx->loop = EV_DEFAULT;
    fx->dir = h_tmpdir();
    fx->worker = NULL;
    if (with_worker) {
        fx->worker = worker_new(fx->loop);
        cr_assert_not_null(fx->worker);
    }
}

/* Stop the worker (its jobs finished first), remove the directory. */
static inline void h_agent_fini(h_agent_t *fx)
{
    worker_destroy(&fx->worker);
    if (fx->dir) {
        util_rm_rf(fx->dir);
        free(fx->dir);
        fx->dir = NULL;
    }
}

static inline void h_tick_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
}

/* Run loop until cond(arg) holds or ms milliseconds pass (a 10 ms tick
 * wakes the loop to look again); returns cond's last answer. */
static inline bool h_pump_until(struct ev_loop *loop, bool (*cond)(void *), void *arg, int64_t ms)
{
    ev_timer tick;
    ev_timer_init(&tick, h_tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    int64_t deadline = util_mono_ms() + ms;
    bool ok;
    while (!(ok = cond(arg)) && util_mono_ms() < deadline)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return ok;
}

/* A process's output (NUL-terminated, len bytes; free out) and its exit,
 * as the runner and the runtime report them: pass h_proc_output and
 * h_proc_exit as the callbacks with a zeroed h_proc_t as their arg. */
typedef struct {
    char *out;
    size_t len;
    int exits; /* how many times on_exit came: exactly 1 once it ended */
    runner_exit_t ex;
    int64_t start_ms, exit_ms; /* util_mono_ms() (start_ms: set by the test) */
} h_proc_t;

static inline void h_proc_output(void *arg, const uint8_t *data, size_t len)
{
    h_proc_t *r = arg;
    cr_assert_eq(r->exits, 0, "output after on_exit");
    r->out = xrealloc(r->out, r->len + len + 1);
    memcpy(r->out + r->len, data, len);
    r->len += len;
    r->out[r->len] = '\0';
}

static inline void h_proc_exit(void *arg, const runner_exit_t *ex)
{
    h_proc_t *r = arg;
    r->exits++;
    r->ex = *ex;
    r->exit_ms = util_mono_ms();
}

/* A condition for h_pump_until: the h_proc_t at arg has exited. */
static inline bool h_proc_exited(void *arg)
{
    return ((h_proc_t *)arg)->exits > 0;
}

#endif /* DROVER_TEST_AGENT */

#endif
