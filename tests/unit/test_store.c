/* test_store — droverd's LMDB store on real environments in temp dirs.
 *
 * Covers: a new state dir gets the schema version; committed records and
 * counters come back after reopening, in the documented order; an aborted
 * (or never committed) transaction leaves nothing; a run's steps are
 * stored apart from its record, which never carries them, so rewriting a
 * run stores the run alone; a state dir of schema 1 (steps inside the run
 * records) is migrated when opened and loads as it was; a state dir of
 * another schema version is refused with both versions named; deleting a
 * run removes its record, steps, tasks and logs and nothing of another;
 * log chunks read back contiguously from any offset, stop at gaps, respect
 * max and never mix attempts, tasks or runs; a commit on a full filesystem
 * fails with -ENOSPC and leaves the previous durable state readable, and a
 * migration there fails the open and leaves schema 1 as it was, and a
 * commit's error (EIO too: a write cut short) is explained as the full
 * disk it is (needs root to mount a tiny tmpfs; skipped with the reason
 * otherwise).
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <unistd.h>

#include "store.h"

static char *dir;
static store_t *st;
static char err[512];

static void setup(void)
{
    dir = h_tmpdir();
    err[0] = '\0';
}

static void teardown(void)
{
    store_destroy(&st);
    if (dir) {
        util_rm_rf(dir);
        free(dir);
        dir = NULL;
    }
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

static store_t *open_ok(void)
{
    store_t *s = store_new(dir, err, sizeof err);
    cr_assert_not_null(s, "store_new(%s): %s", dir, err);
    return s;
}

/* Read db/key of the environment in d with plain LMDB (store closed):
 * the value (NUL-terminated copy, caller frees; *len its size), or NULL
 * when the key, or the whole database, is not there. */
static char *read_raw(const char *d, const char *db, const char *k, size_t *len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val key = {.mv_size = strlen(k), .mv_data = (void *)k}, val;
    char *out = NULL;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, d, MDB_RDONLY, 0640), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0 && mdb_get(txn, dbi, &key, &val) == 0) {
        out = xmalloc(val.mv_size + 1); /* records are binary: no strndup */
        memcpy(out, val.mv_data, val.mv_size);
        out[val.mv_size] = '\0';
        if (len)
            *len = val.mv_size;
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return out;
}

static char *read_meta(const char *d, const char *k)
{
    return read_raw(d, "meta", k, NULL);
}

/* The run record of id as stored (store closed); the caller frees it. */
static Drover__RunRecord *read_run_record(const char *d, const char *id)
{
    size_t len = 0;
    char *raw = read_raw(d, "runs", id, &len);
    cr_assert_not_null(raw, "no run record %s", id);
    Drover__RunRecord *r = drover__run_record__unpack(NULL, len, (uint8_t *)raw);
    cr_assert_not_null(r, "run record %s undecodable", id);
    free(raw);
    return r;
}

static void write_meta(const char *d, const char *k, const char *v)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val key = {.mv_size = strlen(k), .mv_data = (void *)k};
    MDB_val val = {.mv_size = strlen(v), .mv_data = (void *)v};
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
    cr_assert_eq(mdb_env_open(env, d, 0, 0640), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    cr_assert_eq(mdb_put(txn, dbi, &key, &val, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* ------------------------------------------------------------ records */

/* Everything store_load hands back, copied. */
typedef struct {
    char order[64]; /* 'R' run, 'T' task, 'A' agent, in callback order */
    size_t n;
    char *run_ids[8];
    char *run_names[8];
    Drover__RunStatus run_status[8];
    size_t run_steps[8];
    char *step0_name[8];
    char *step0_argv1[8];
    uint64_t step0_memory[8];
    size_t n_runs;
    char *task_run[16];
    uint32_t task_index[16];
    Drover__TaskStatus task_status[16];
    size_t task_attempts[16];
    char *task_reason[16];
    int32_t task_a0_exit[16];
    char *task_a0_agent[16];
    size_t n_tasks;
    char *agent_names[8];
    size_t agent_labels[8];
    char *agent_label0[8];
    uint32_t agent_cpu[8];
    uint32_t agent_gpus[8];
    bool agent_drained[8];
    size_t n_agents;
} loaded_t;

static void on_run(const Drover__RunRecord *r, const Drover__RunSteps *plan, void *arg)
{
    loaded_t *l = arg;
    cr_assert_lt(l->n_runs, 8);
    cr_assert_not_null(plan, "a run always comes with its steps");
    cr_assert_eq(r->n_legacy_steps, 0, "steps inside a run record (schema 1) reached the loader");
    l->order[l->n++] = 'R';
    size_t i = l->n_runs++;
    l->run_ids[i] = xstrdup(r->id);
    l->run_names[i] = xstrdup(r->name);
    l->run_status[i] = r->status;
    l->run_steps[i] = plan->n_steps;
    if (plan->n_steps) {
        l->step0_name[i] = xstrdup(plan->steps[0]->name);
        l->step0_argv1[i] = xstrdup(plan->steps[0]->n_argv > 1 ? plan->steps[0]->argv[1] : "");
        l->step0_memory[i] =
            plan->steps[0]->resources ? plan->steps[0]->resources->memory_bytes : 0;
    }
}

static void on_task(const char *run_id, const Drover__TaskRecord *t, void *arg)
{
    loaded_t *l = arg;
    cr_assert_lt(l->n_tasks, 16);
    l->order[l->n++] = 'T';
    size_t i = l->n_tasks++;
    l->task_run[i] = xstrdup(run_id);
    l->task_index[i] = t->index;
    l->task_status[i] = t->status;
    l->task_attempts[i] = t->n_attempts;
    l->task_reason[i] = xstrdup(t->reason);
    if (t->n_attempts) {
        l->task_a0_exit[i] = t->attempts[0]->exit_code;
        l->task_a0_agent[i] = xstrdup(t->attempts[0]->agent);
    }
}

static void on_agent(const Drover__AgentRecord *a, void *arg)
{
    loaded_t *l = arg;
    cr_assert_lt(l->n_agents, 8);
    l->order[l->n++] = 'A';
    size_t i = l->n_agents++;
    l->agent_names[i] = xstrdup(a->name);
    l->agent_labels[i] = a->n_labels;
    if (a->n_labels)
        l->agent_label0[i] = xasprintf("%s=%s", a->labels[0]->key, a->labels[0]->value);
    l->agent_cpu[i] = a->capacity ? a->capacity->cpu_milli : 0;
    l->agent_gpus[i] = a->capacity ? a->capacity->gpus : 0;
    l->agent_drained[i] = a->drained;
}

static void load_all(store_t *s, loaded_t *l)
{
    memset(l, 0, sizeof *l);
    store_loader_t loader = {.run = on_run, .task = on_task, .agent = on_agent, .arg = l};
    cr_assert_eq(store_load(s, &loader), 0);
}

static void loaded_free(loaded_t *l)
{
    for (size_t i = 0; i < l->n_runs; i++) {
        free(l->run_ids[i]);
        free(l->run_names[i]);
        free(l->step0_name[i]);
        free(l->step0_argv1[i]);
    }
    for (size_t i = 0; i < l->n_tasks; i++) {
        free(l->task_run[i]);
        free(l->task_reason[i]);
        free(l->task_a0_agent[i]);
    }
    for (size_t i = 0; i < l->n_agents; i++) {
        free(l->agent_names[i]);
        free(l->agent_label0[i]);
    }
}

/* A run record and its steps: one step "train" (argv python3 train.py,
 * 512 MiB). */
typedef struct {
    Drover__RunRecord run;
    Drover__RunSteps plan;
    Drover__StepSpec step, *steps[1];
    Drover__Resources res;
    char *argv[2];
} run_fixture_t;

static void run_fixture(run_fixture_t *f, const char *id, const char *name)
{
    drover__run_record__init(&f->run);
    drover__step_spec__init(&f->step);
    drover__resources__init(&f->res);
    f->argv[0] = "python3";
    f->argv[1] = "train.py";
    f->res.memory_bytes = 512ull << 20;
    f->step.name = "train";
    f->step.n_argv = 2;
    f->step.argv = f->argv;
    f->step.resources = &f->res;
    f->steps[0] = &f->step;
    f->run.id = (char *)id;
    f->run.name = (char *)name;
    f->run.status = DROVER__RUN_STATUS__RUN_RUNNING;
    drover__run_steps__init(&f->plan);
    f->plan.n_steps = 1;
    f->plan.steps = f->steps;
}

/* Put the fixture's run record and steps, as droverd does at submit. */
static void put_run_fixture(run_fixture_t *f)
{
    cr_assert_eq(store_put_run(st, &f->run), 0);
    cr_assert_eq(store_put_steps(st, f->run.id, &f->plan), 0);
}

Test(store, new_dir_gets_schema_version)
{
    char *sub = xasprintf("%s/a/b/state", dir); /* parents are created */
    st = store_new(sub, err, sizeof err);
    cr_assert_not_null(st, "store_new: %s", err);
    cr_assert_eq(store_get_counter(st, "next_run"), 0, "unset counter reads 0");
    store_destroy(&st);
    cr_assert_null(st);
    store_destroy(&st); /* NULL is fine */
    char *v = read_meta(sub, "schema");
    char want[16];
    snprintf(want, sizeof want, "%d", STORE_SCHEMA_VERSION);
    cr_assert_not_null(v, "no schema key written");
    cr_assert_str_eq(v, want);
    free(v);
    /* Reopening an existing dir of the right version works. */
    st = store_new(sub, err, sizeof err);
    cr_assert_not_null(st, "reopen: %s", err);
    free(sub);
}

Test(store, committed_records_and_counters_survive_reopen)
{
    st = open_ok();
    run_fixture_t r1, r2;
    run_fixture(&r1, "r000002", "second");
    run_fixture(&r2, "r000001", "first");
    r2.run.status = DROVER__RUN_STATUS__RUN_SUCCEEDED;

    Drover__AttemptRecord at = DROVER__ATTEMPT_RECORD__INIT, *ats[1] = {&at};
    at.id = 17;
    at.number = 1;
    at.agent = "node-a";
    at.exit_code = 3;
    at.status = DROVER__TASK_STATUS__TASK_FAILED;
    Drover__TaskRecord t0 = DROVER__TASK_RECORD__INIT, t1 = DROVER__TASK_RECORD__INIT,
                       t256 = DROVER__TASK_RECORD__INIT, u0 = DROVER__TASK_RECORD__INIT;
    t0.index = 0;
    t0.status = DROVER__TASK_STATUS__TASK_FAILED;
    t0.reason = "exit code 3";
    t0.n_attempts = 1;
    t0.attempts = ats;
    t1.index = 1;
    t1.status = DROVER__TASK_STATUS__TASK_READY;
    t256.index = 256; /* sorts after 1 only if the index is big-endian */
    t256.status = DROVER__TASK_STATUS__TASK_WAITING;
    u0.index = 0;
    u0.status = DROVER__TASK_STATUS__TASK_SUCCEEDED;

    Drover__KeyValue kv = DROVER__KEY_VALUE__INIT, *kvs[1] = {&kv};
    kv.key = "pool";
    kv.value = "gpu";
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    cap.cpu_milli = 8000;
    cap.gpus = 2;
    Drover__AgentRecord ag = DROVER__AGENT_RECORD__INIT;
    ag.name = "node-a";
    ag.n_labels = 1;
    ag.labels = kvs;
    ag.capacity = &cap;
    ag.drained = true;

    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_begin(st), -EBUSY, "a second begin while one is open");
    put_run_fixture(&r1);
    put_run_fixture(&r2);
    cr_assert_eq(store_put_task(st, "r000002", &t256), 0);
    cr_assert_eq(store_put_task(st, "r000002", &t1), 0);
    cr_assert_eq(store_put_task(st, "r000002", &t0), 0);
    cr_assert_eq(store_put_task(st, "r000001", &u0), 0);
    cr_assert_eq(store_put_agent(st, &ag), 0);
    cr_assert_eq(store_put_counter(st, "next_run", 2), 0);
    cr_assert_eq(store_put_counter(st, "next_attempt", UINT64_MAX - 1), 0);
    cr_assert_eq(store_commit(st), 0);
    cr_assert_eq(store_commit(st), -EINVAL, "commit without a transaction");
    cr_assert_eq(store_put_run(st, &r1.run), -EINVAL, "put outside a transaction");
    store_destroy(&st);

    st = open_ok();
    cr_assert_eq(store_get_counter(st, "next_run"), 2);
    cr_assert_eq(store_get_counter(st, "next_attempt"), UINT64_MAX - 1);
    cr_assert_eq(store_get_counter(st, "never_set"), 0);
    loaded_t l;
    load_all(st, &l);
    cr_assert_str_eq(l.order, "RRTTTTA", "runs, then tasks grouped by run, then agents");
    cr_assert_eq(l.n_runs, 2);
    cr_assert_str_eq(l.run_ids[0], "r000001");
    cr_assert_str_eq(l.run_names[0], "first");
    cr_assert_eq(l.run_status[0], DROVER__RUN_STATUS__RUN_SUCCEEDED);
    cr_assert_str_eq(l.run_ids[1], "r000002");
    cr_assert_eq(l.run_status[1], DROVER__RUN_STATUS__RUN_RUNNING);
    cr_assert_eq(l.run_steps[1], 1);
    cr_assert_str_eq(l.step0_name[1], "train");
    cr_assert_str_eq(l.step0_argv1[1], "train.py");
    cr_assert_eq(l.step0_memory[1], 512ull << 20);

    cr_assert_eq(l.n_tasks, 4);
    cr_assert_str_eq(l.task_run[0], "r000001");
    cr_assert_eq(l.task_status[0], DROVER__TASK_STATUS__TASK_SUCCEEDED);
    cr_assert_str_eq(l.task_run[1], "r000002");
    cr_assert_eq(l.task_index[1], 0);
    cr_assert_eq(l.task_status[1], DROVER__TASK_STATUS__TASK_FAILED);
    cr_assert_str_eq(l.task_reason[1], "exit code 3");
    cr_assert_eq(l.task_attempts[1], 1);
    cr_assert_eq(l.task_a0_exit[1], 3);
    cr_assert_str_eq(l.task_a0_agent[1], "node-a");
    cr_assert_eq(l.task_index[2], 1);
    cr_assert_eq(l.task_status[2], DROVER__TASK_STATUS__TASK_READY);
    cr_assert_eq(l.task_index[3], 256, "tasks of a run come in index order");

    cr_assert_eq(l.n_agents, 1);
    cr_assert_str_eq(l.agent_names[0], "node-a");
    cr_assert_eq(l.agent_labels[0], 1);
    cr_assert_str_eq(l.agent_label0[0], "pool=gpu");
    cr_assert_eq(l.agent_cpu[0], 8000);
    cr_assert_eq(l.agent_gpus[0], 2);
    cr_assert(l.agent_drained[0]);
    loaded_free(&l);
}

Test(store, delete_agent_removes_only_that_agent)
{
    st = open_ok();
    Drover__AgentRecord a = DROVER__AGENT_RECORD__INIT, b = DROVER__AGENT_RECORD__INIT;
    a.name = "gone";
    b.name = "kept";
    cr_assert_eq(store_delete_agent(st, "gone"), -EINVAL, "delete outside a transaction");
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_put_agent(st, &a), 0);
    cr_assert_eq(store_put_agent(st, &b), 0);
    cr_assert_eq(store_commit(st), 0);
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_delete_agent(st, "gone"), 0);
    cr_assert_eq(store_delete_agent(st, "never-was"), 0, "an absent agent is no error");
    cr_assert_eq(store_commit(st), 0);
    store_destroy(&st);

    st = open_ok();
    loaded_t l;
    load_all(st, &l);
    cr_assert_eq(l.n_agents, 1);
    cr_assert_str_eq(l.agent_names[0], "kept");
    loaded_free(&l);
}

Test(store, later_put_of_same_key_replaces_record)
{
    st = open_ok();
    run_fixture_t r;
    run_fixture(&r, "r000001", "p");
    cr_assert_eq(store_begin(st), 0);
    put_run_fixture(&r);
    cr_assert_eq(store_commit(st), 0);
    r.run.status = DROVER__RUN_STATUS__RUN_FAILED;
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_put_run(st, &r.run), 0);
    cr_assert_eq(store_commit(st), 0);
    loaded_t l;
    load_all(st, &l);
    cr_assert_eq(l.n_runs, 1, "one run, not two versions");
    cr_assert_eq(l.run_status[0], DROVER__RUN_STATUS__RUN_FAILED);
    cr_assert_eq(l.run_steps[0], 1, "rewriting the run keeps the steps stored at submit");
    cr_assert_str_eq(l.step0_name[0], "train");
    loaded_free(&l);
}

/* The steps are stored once, apart: a run record never carries them (what
 * made every rewrite of a run as big as its spec), and rewriting the run
 * stores only the run. */
Test(store, run_record_is_small_and_steps_are_stored_apart)
{
    st = open_ok();
    run_fixture_t r;
    run_fixture(&r, "r000001", "p");
    cr_assert_eq(store_begin(st), 0);
    put_run_fixture(&r);
    r.run.n_legacy_steps = r.plan.n_steps; /* a schema-1 record */
    r.run.legacy_steps = r.plan.steps;
    cr_assert_eq(store_put_run(st, &r.run), -EINVAL, "a run record with steps inside");
    r.run.n_legacy_steps = 0;
    r.run.legacy_steps = NULL;
    cr_assert_eq(store_commit(st), 0);

    uint64_t before = store_bytes_put(st);
    r.run.status = DROVER__RUN_STATUS__RUN_SUCCEEDED;
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_put_run(st, &r.run), 0);
    cr_assert_eq(store_commit(st), 0);
    cr_assert_eq(store_bytes_put(st) - before, drover__run_record__get_packed_size(&r.run),
                 "rewriting the run stores the run record alone");
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_put_run(st, &r.run), 0);
    store_abort(st);
    cr_assert_eq(store_bytes_put(st) - before, drover__run_record__get_packed_size(&r.run),
                 "an aborted transaction stored nothing");
    store_destroy(&st);

    Drover__RunRecord *rec = read_run_record(dir, "r000001");
    cr_assert_eq(rec->n_legacy_steps, 0);
    cr_assert_eq(rec->status, DROVER__RUN_STATUS__RUN_SUCCEEDED);
    drover__run_record__free_unpacked(rec, NULL);
    size_t len = 0;
    char *raw = read_raw(dir, "steps", "r000001", &len);
    cr_assert_not_null(raw, "no steps record");
    Drover__RunSteps *steps = drover__run_steps__unpack(NULL, len, (uint8_t *)raw);
    cr_assert_not_null(steps);
    cr_assert_eq(steps->n_steps, 1);
    cr_assert_str_eq(steps->steps[0]->argv[1], "train.py");
    drover__run_steps__free_unpacked(steps, NULL);
    free(raw);
}

Test(store, aborted_transaction_stores_nothing)
{
    st = open_ok();
    run_fixture_t r;
    run_fixture(&r, "r000001", "p");
    Drover__TaskRecord t = DROVER__TASK_RECORD__INIT;
    const uint8_t chunk[] = "hello";

    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_put_run(st, &r.run), 0);
    cr_assert_eq(store_put_task(st, "r000001", &t), 0);
    cr_assert_eq(store_put_counter(st, "next_run", 1), 0);
    cr_assert_eq(store_put_log(st, "r000001", 0, 1, 0, chunk, 5), 0);
    store_abort(st);
    store_abort(st); /* twice is harmless */
    cr_assert_eq(store_get_counter(st, "next_run"), 0);

    /* A transaction left open at close is aborted too. */
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_put_run(st, &r.run), 0);
    cr_assert_eq(store_put_counter(st, "next_run", 9), 0);
    store_destroy(&st);

    st = open_ok();
    loaded_t l;
    load_all(st, &l);
    cr_assert_eq(l.n, 0, "nothing of an aborted transaction is stored");
    loaded_free(&l);
    cr_assert_eq(store_get_counter(st, "next_run"), 0);
    uint8_t *out = NULL;
    size_t len = 99;
    cr_assert_eq(store_get_log(st, "r000001", 0, 1, 0, 100, &out, &len), 0);
    cr_assert_eq(len, 0);
    free(out);
}

Test(store, other_schema_version_is_refused)
{
    st = open_ok();
    store_destroy(&st);
    write_meta(dir, "schema", "7");
    st = store_new(dir, err, sizeof err);
    cr_assert_null(st, "a state dir of schema 7 must be refused");
    char want[16];
    snprintf(want, sizeof want, "%d", STORE_SCHEMA_VERSION);
    cr_assert(strstr(err, "7") != NULL, "message names the dir's version: %s", err);
    cr_assert(strstr(err, want) != NULL, "message names our version: %s", err);
    cr_assert(strstr(err, "schema") != NULL, "message says what is wrong: %s", err);
    /* Nothing was overwritten: the dir still says 7. */
    char *v = read_meta(dir, "schema");
    cr_assert_str_eq(v, "7");
    free(v);
}

Test(store, schema_that_only_shares_a_prefix_is_refused)
{
    st = open_ok();
    store_destroy(&st);
    char v[16];
    snprintf(v, sizeof v, "%d0", STORE_SCHEMA_VERSION); /* "10" vs "1" */
    write_meta(dir, "schema", v);
    st = store_new(dir, err, sizeof err);
    cr_assert_null(st, "schema %s must not pass for %d", v, STORE_SCHEMA_VERSION);
    cr_assert(strstr(err, v) != NULL, "message names %s: %s", v, err);
}

/* A state dir written before the steps had their own database (schema 1:
 * the steps inside each RunRecord) is migrated when opened, and everything
 * in it loads as it was. */
Test(store, schema_1_state_dir_is_migrated_on_open)
{
    st = open_ok();
    run_fixture_t r1, r2;
    run_fixture(&r1, "r000001", "first");
    run_fixture(&r2, "r000002", "second");
    r1.run.status = DROVER__RUN_STATUS__RUN_SUCCEEDED;
    Drover__TaskRecord t0 = DROVER__TASK_RECORD__INIT;
    t0.index = 0;
    t0.status = DROVER__TASK_STATUS__TASK_READY;
    cr_assert_eq(store_begin(st), 0);
    put_run_fixture(&r1);
    put_run_fixture(&r2);
    cr_assert_eq(store_put_task(st, "r000002", &t0), 0);
    cr_assert_eq(store_put_counter(st, "next_run", 2), 0);
    cr_assert_eq(store_commit(st), 0);
    store_destroy(&st);
    cr_assert_eq(h_state_to_schema1(dir), 2);

    /* The old layout, as a droverd of schema 1 left it. */
    char *v = read_meta(dir, "schema");
    cr_assert_str_eq(v, "1");
    free(v);
    Drover__RunRecord *rec = read_run_record(dir, "r000002");
    cr_assert_eq(rec->n_legacy_steps, 1, "schema 1 keeps the steps in the run record");
    drover__run_record__free_unpacked(rec, NULL);
    cr_assert_null(read_raw(dir, "steps", "r000002", NULL));

    st = open_ok();
    loaded_t l;
    load_all(st, &l);
    cr_assert_str_eq(l.order, "RRT");
    cr_assert_str_eq(l.run_names[0], "first");
    cr_assert_eq(l.run_status[0], DROVER__RUN_STATUS__RUN_SUCCEEDED);
    cr_assert_str_eq(l.run_names[1], "second");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(l.run_steps[i], 1, "run %d lost its steps in the migration", i);
        cr_assert_str_eq(l.step0_name[i], "train");
        cr_assert_str_eq(l.step0_argv1[i], "train.py");
        cr_assert_eq(l.step0_memory[i], 512ull << 20);
    }
    cr_assert_eq(l.task_status[0], DROVER__TASK_STATUS__TASK_READY);
    loaded_free(&l);
    cr_assert_eq(store_get_counter(st, "next_run"), 2);
    store_destroy(&st);

    /* Stored in the new layout, durably: version 2, the steps apart. */
    char want[16];
    snprintf(want, sizeof want, "%d", STORE_SCHEMA_VERSION);
    v = read_meta(dir, "schema");
    cr_assert_str_eq(v, want);
    free(v);
    rec = read_run_record(dir, "r000002");
    cr_assert_eq(rec->n_legacy_steps, 0, "the migrated run record still carries its steps");
    cr_assert_str_eq(rec->name, "second");
    drover__run_record__free_unpacked(rec, NULL);
    size_t len = 0;
    char *raw = read_raw(dir, "steps", "r000002", &len);
    cr_assert_not_null(raw, "the migration stored no steps record");
    free(raw);

    /* Opening it again is a plain open. */
    st = open_ok();
    load_all(st, &l);
    cr_assert_eq(l.n_runs, 2);
    cr_assert_eq(l.run_steps[1], 1);
    loaded_free(&l);
}

Test(store, unopenable_dir_is_reported)
{
    char *file = xasprintf("%s/plainfile", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    char *bad = xasprintf("%s/state", file); /* a dir under a regular file */
    st = store_new(bad, err, sizeof err);
    cr_assert_null(st);
    cr_assert(strstr(err, bad) != NULL, "message names the dir: %s", err);
    free(bad);
    free(file);
}

/* ------------------------------------------------------------ logs */

static uint8_t pat(uint64_t off, unsigned salt)
{
    return (uint8_t)(off * 7 + 3 + salt * 101);
}

static void put_chunk(const char *run, uint32_t task, uint32_t attempt, uint64_t off, size_t len,
                      unsigned salt)
{
    uint8_t *b = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = pat(off + i, salt);
    cr_assert_eq(store_put_log(st, run, task, attempt, off, b, len), 0);
    free(b);
}

/* Read and check that exactly want bytes of pattern salt come back. */
static void expect_log(const char *run, uint32_t task, uint32_t attempt, uint64_t off, size_t max,
                       size_t want, unsigned salt)
{
    uint8_t *out = NULL;
    size_t len = 12345;
    cr_assert_eq(store_get_log(st, run, task, attempt, off, max, &out, &len), 0);
    cr_assert_eq(len, want, "%s/%u/%u from %lu max %zu: got %zu bytes, want %zu", run, task,
                 attempt, (unsigned long)off, max, len, want);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(out[i], pat(off + i, salt), "%s/%u/%u byte %lu differs", run, task, attempt,
                     (unsigned long)(off + i));
    free(out);
}

Test(store, logs_read_back_contiguously)
{
    st = open_ok();
    cr_assert_eq(store_begin(st), 0);
    /* The log under test: r1, task 2, attempt 1: [0,100) [100,250) [250,300). */
    put_chunk("r1", 2, 1, 250, 50, 0);
    put_chunk("r1", 2, 1, 0, 100, 0);
    put_chunk("r1", 2, 1, 100, 150, 0);
    /* Neighbours that would continue it if keys were mixed: each starts at
     * 300 or 0, and sorts right before or after the log under test. */
    put_chunk("r1", 2, 2, 0, 80, 1);    /* next attempt */
    put_chunk("r1", 2, 2, 300, 80, 1);  /* next attempt, right where ours ends */
    put_chunk("r1", 2, 0, 300, 80, 2);  /* previous attempt */
    put_chunk("r1", 3, 1, 300, 80, 3);  /* next task */
    put_chunk("r1", 1, 1, 0, 400, 4);   /* previous task, longer */
    put_chunk("r10", 2, 1, 300, 80, 5); /* a run whose id extends ours */
    put_chunk("r", 2, 1, 0, 400, 6);    /* a run whose id is our prefix */
    cr_assert_eq(store_commit(st), 0);

    expect_log("r1", 2, 1, 0, 1 << 20, 300, 0);
    expect_log("r1", 2, 1, 37, 1 << 20, 263, 0);  /* mid first chunk */
    expect_log("r1", 2, 1, 100, 1 << 20, 200, 0); /* a chunk boundary */
    expect_log("r1", 2, 1, 199, 1 << 20, 101, 0); /* mid second chunk */
    expect_log("r1", 2, 1, 299, 1 << 20, 1, 0);   /* last byte */
    expect_log("r1", 2, 1, 300, 1 << 20, 0, 0);   /* at the end */
    expect_log("r1", 2, 1, 5000, 1 << 20, 0, 0);  /* far past it */
    /* max is respected, also across chunk boundaries. */
    expect_log("r1", 2, 1, 0, 100, 100, 0);
    expect_log("r1", 2, 1, 95, 10, 10, 0);
    expect_log("r1", 2, 1, 90, 170, 170, 0);
    expect_log("r1", 2, 1, 10, 1, 1, 0);
    expect_log("r1", 2, 1, 10, 0, 0, 0);
    /* The neighbours are intact and separate. */
    expect_log("r1", 2, 2, 0, 1 << 20, 80, 1);
    expect_log("r1", 2, 0, 0, 1 << 20, 0, 2); /* starts at 300: a gap at 0 */
    expect_log("r1", 2, 0, 300, 1 << 20, 80, 2);
    expect_log("r10", 2, 1, 300, 1 << 20, 80, 5);
    expect_log("r", 2, 1, 0, 1 << 20, 400, 6);
    expect_log("r1", 1, 1, 350, 1 << 20, 50, 4);
    /* A log never written reads as empty. */
    expect_log("r1", 9, 1, 0, 1 << 20, 0, 0);
    expect_log("zzz", 0, 1, 0, 1 << 20, 0, 0);
}

Test(store, log_gap_stops_the_read)
{
    st = open_ok();
    cr_assert_eq(store_begin(st), 0);
    put_chunk("r1", 0, 1, 0, 100, 0);
    put_chunk("r1", 0, 1, 150, 50, 0); /* bytes 100..149 never arrived */
    put_chunk("r1", 0, 1, 200, 50, 0);
    cr_assert_eq(store_commit(st), 0);
    expect_log("r1", 0, 1, 0, 1 << 20, 100, 0);
    expect_log("r1", 0, 1, 60, 1 << 20, 40, 0);
    expect_log("r1", 0, 1, 120, 1 << 20, 0, 0); /* inside the gap */
    expect_log("r1", 0, 1, 150, 1 << 20, 100, 0);
    expect_log("r1", 0, 1, 175, 1 << 20, 75, 0);
}

Test(store, log_chunk_resent_with_other_bounds_reads_once)
{
    st = open_ok();
    cr_assert_eq(store_begin(st), 0);
    put_chunk("r1", 0, 1, 0, 100, 0);
    put_chunk("r1", 0, 1, 50, 100, 0); /* overlaps [50,100) */
    put_chunk("r1", 0, 1, 0, 100, 0);  /* the same chunk again */
    cr_assert_eq(store_commit(st), 0);
    expect_log("r1", 0, 1, 0, 1 << 20, 150, 0);
    expect_log("r1", 0, 1, 75, 1 << 20, 75, 0);
}

/* Deleting a run removes its steps with it, and nothing of a run whose id
 * extends its own. */
Test(store, delete_run_removes_record_steps_tasks_and_logs)
{
    st = open_ok();
    run_fixture_t r1, r10;
    run_fixture(&r1, "r1", "gone");
    run_fixture(&r10, "r10", "kept");
    Drover__TaskRecord t0 = DROVER__TASK_RECORD__INIT;
    cr_assert_eq(store_begin(st), 0);
    put_run_fixture(&r1);
    put_run_fixture(&r10);
    cr_assert_eq(store_put_task(st, "r1", &t0), 0);
    cr_assert_eq(store_put_task(st, "r10", &t0), 0);
    put_chunk("r1", 0, 1, 0, 100, 0);
    put_chunk("r10", 0, 1, 0, 100, 1);
    cr_assert_eq(store_commit(st), 0);
    cr_assert_eq(store_delete_run(st, "r1"), -EINVAL, "outside a transaction");
    cr_assert_eq(store_begin(st), 0);
    cr_assert_eq(store_delete_run(st, "r1"), 0);
    cr_assert_eq(store_delete_run(st, "r1"), 0, "deleting what is gone is fine");
    cr_assert_eq(store_commit(st), 0);

    loaded_t l;
    load_all(st, &l);
    cr_assert_str_eq(l.order, "RT");
    cr_assert_str_eq(l.run_ids[0], "r10");
    cr_assert_eq(l.run_steps[0], 1);
    cr_assert_str_eq(l.task_run[0], "r10");
    loaded_free(&l);
    expect_log("r1", 0, 1, 0, 1 << 20, 0, 0);
    expect_log("r10", 0, 1, 0, 1 << 20, 100, 1);
    store_destroy(&st);
    cr_assert_null(read_raw(dir, "steps", "r1", NULL), "the deleted run's steps are still stored");
    char *raw = read_raw(dir, "steps", "r10", NULL);
    cr_assert_not_null(raw);
    free(raw);
}

/* ------------------------------------------------------------ full disk */

static char *mnt;
static bool mounted;

static void disk_setup(void)
{
    mnt = h_tmpdir();
    dir = NULL;
    mounted = false;
}

static void disk_teardown(void)
{
    store_destroy(&st);
    if (mounted)
        umount2(mnt, MNT_DETACH);
    util_rm_rf(mnt);
    free(mnt);
    free(dir);
    dir = NULL;
}

/* Write a file until the filesystem refuses; returns its path. */
static char *fill_fs(const char *where)
{
    char *path = xasprintf("%s/filler", where);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static uint8_t block[65536];
    memset(block, 0xAB, sizeof block);
    for (size_t sz = sizeof block; sz >= 1; sz /= 2) {
        for (;;) {
            ssize_t n = write(fd, block, sz);
            if (n < 0) {
                cr_assert_eq(errno, ENOSPC, "filling: %s", strerror(errno));
                break;
            }
        }
    }
    close(fd);
    return path;
}

Test(store_disk, commit_on_full_disk_fails_and_keeps_state, .init = disk_setup,
     .fini = disk_teardown, .timeout = 60)
{
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0)
        cr_skip_test("cannot mount a 1 MiB tmpfs on %s (%s): needs root", mnt, strerror(errno));
    mounted = true;
    dir = xasprintf("%s/state", mnt);
    st = open_ok();
    run_fixture_t r1, r2;
    run_fixture(&r1, "r000001", "kept");
    run_fixture(&r2, "r000002", "lost");
    cr_assert_eq(store_begin(st), 0);
    put_run_fixture(&r1);
    cr_assert_eq(store_put_counter(st, "next_run", 1), 0);
    put_chunk("r000001", 0, 1, 0, 1000, 0);
    cr_assert_eq(store_commit(st), 0);

    char *filler = fill_fs(mnt);
    cr_assert_eq(store_begin(st), 0);
    put_run_fixture(&r2);
    cr_assert_eq(store_put_counter(st, "next_run", 2), 0);
    put_chunk("r000001", 0, 1, 1000, 256 * 1024, 0); /* cannot fit */
    int rc = store_commit(st);
    cr_assert_eq(rc, -ENOSPC, "commit on a full disk: %d (%s), want -ENOSPC", rc, strerror(-rc));
    char why[512], *want = xasprintf("no space left on device (state dir %s: ", dir);
    cr_assert(strstr(store_strerror(st, rc, why, sizeof why), want), "explained as: %s", why);
    free(want);

    /* The previous durable state is what reads back, in this handle... */
    cr_assert_eq(store_get_counter(st, "next_run"), 1);
    loaded_t l;
    load_all(st, &l);
    cr_assert_eq(l.n_runs, 1);
    cr_assert_str_eq(l.run_ids[0], "r000001");
    cr_assert_str_eq(l.run_names[0], "kept");
    loaded_free(&l);
    expect_log("r000001", 0, 1, 0, 1 << 20, 1000, 0);
    /* ...and after reopening. */
    store_destroy(&st);
    st = open_ok();
    cr_assert_eq(store_get_counter(st, "next_run"), 1);
    load_all(st, &l);
    cr_assert_eq(l.n_runs, 1);
    loaded_free(&l);
    expect_log("r000001", 0, 1, 0, 1 << 20, 1000, 0);

    /* Once space is back, the store works again. */
    cr_assert_eq(unlink(filler), 0);
    free(filler);
    cr_assert_eq(store_begin(st), 0);
    put_run_fixture(&r2);
    cr_assert_eq(store_put_counter(st, "next_run", 2), 0);
    cr_assert_eq(store_commit(st), 0);
    cr_assert_eq(store_get_counter(st, "next_run"), 2);
}

/* store_load callback: count runs and steps into size_t[2]. */
static void count_run(const Drover__RunRecord *r, const Drover__RunSteps *steps, void *arg)
{
    size_t *counts = arg;
    counts[0]++;
    counts[1] += steps->n_steps + r->n_legacy_steps;
}

/* A migration that cannot be stored (full disk) fails the open with the
 * reason and leaves the schema-1 state as it was; with space back, the
 * next open migrates it. */
Test(store_disk, migration_on_full_disk_keeps_schema_1, .init = disk_setup, .fini = disk_teardown,
     .timeout = 60)
{
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") < 0)
        cr_skip_test("cannot mount a 2 MiB tmpfs on %s (%s): needs root", mnt, strerror(errno));
    mounted = true;
    dir = xasprintf("%s/state", mnt);
    st = open_ok();
    /* 40 runs of 20 steps with long commands: about 200 KiB to move. */
    enum { RUNS = 40, STEPS = 20 };
    char arg[4096];
    memset(arg, 'x', 200);
    arg[200] = '\0';
    Drover__StepSpec steps[STEPS], *stepv[STEPS];
    char *argv[STEPS][2];
    for (int k = 0; k < STEPS; k++) {
        drover__step_spec__init(&steps[k]);
        argv[k][0] = "echo";
        argv[k][1] = arg;
        steps[k].name = "s";
        steps[k].n_argv = 2;
        steps[k].argv = argv[k];
        stepv[k] = &steps[k];
    }
    cr_assert_eq(store_begin(st), 0);
    for (int i = 0; i < RUNS; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%06d", i + 1);
        Drover__RunRecord run = DROVER__RUN_RECORD__INIT;
        Drover__RunSteps plan = DROVER__RUN_STEPS__INIT;
        run.id = id;
        run.name = "many";
        plan.n_steps = STEPS;
        plan.steps = stepv;
        cr_assert_eq(store_put_run(st, &run), 0);
        cr_assert_eq(store_put_steps(st, id, &plan), 0);
    }
    cr_assert_eq(store_commit(st), 0);
    store_destroy(&st);
    cr_assert_eq(h_state_to_schema1(dir), RUNS);

    char *filler = fill_fs(mnt);
    st = store_new(dir, err, sizeof err);
    cr_assert_null(st, "the migration cannot have been stored on a full disk");
    cr_assert(strstr(err, "space") != NULL, "the reason names the full disk: %s", err);
    char *v = read_meta(dir, "schema");
    cr_assert_str_eq(v, "1", "a failed migration left schema %s", v);
    free(v);
    Drover__RunRecord *rec = read_run_record(dir, "r000040");
    cr_assert_eq(rec->n_legacy_steps, STEPS, "a failed migration changed a run record");
    drover__run_record__free_unpacked(rec, NULL);

    cr_assert_eq(unlink(filler), 0);
    free(filler);
    st = open_ok();
    size_t counts[2] = {0, 0}; /* runs, steps */
    store_loader_t loader = {.run = count_run, .task = NULL, .agent = NULL, .arg = counts};
    cr_assert_eq(store_load(st, &loader), 0);
    cr_assert_eq(counts[0], RUNS);
    cr_assert_eq(counts[1], RUNS * STEPS, "steps lost in the migration");
}

/* LMDB reports a write cut short by a full disk as EIO ("store commit
 * failed (Input/output error)" told an operator nothing): the explanation
 * looks at the disk and says it is full; with room, EIO stays EIO, with
 * the free space. */
Test(store_disk, commit_cut_short_by_a_full_disk_is_named, .init = disk_setup,
     .fini = disk_teardown, .timeout = 60)
{
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") < 0)
        cr_skip_test("cannot mount a 2 MiB tmpfs on %s (%s): needs root", mnt, strerror(errno));
    mounted = true;
    dir = xasprintf("%s/state", mnt);
    st = open_ok();
    /* Leave a few pages: the commit's write starts, then runs out. */
    uint64_t bytes, inodes;
    cr_assert_eq(util_disk_free(mnt, &bytes, &inodes), 0);
    char *filler = xasprintf("%s/filler", mnt);
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static uint8_t block[65536];
    for (uint64_t left = bytes - 3 * 4096; left > 0;) {
        ssize_t n = write(fd, block, left < sizeof block ? (size_t)left : sizeof block);
        cr_assert_gt(n, 0, "filling: %s", strerror(errno));
        left -= (uint64_t)n;
    }
    close(fd);
    cr_assert_eq(store_begin(st), 0);
    put_chunk("r000001", 0, 1, 0, 256 * 1024, 0);
    int rc = store_commit(st);
    cr_assert(rc == -EIO || rc == -ENOSPC, "commit with 12 KiB left: %d (%s)", rc, strerror(-rc));
    char why[512], *want = xasprintf("no space left on device (state dir %s: ", dir);
    cr_assert(strstr(store_strerror(st, rc, why, sizeof why), want), "%s explained as: %s",
              strerror(-rc), why);
    cr_assert(strstr(store_strerror(st, -EIO, why, sizeof why), want), "EIO explained as: %s", why);
    free(want);

    cr_assert_eq(unlink(filler), 0);
    free(filler);
    store_strerror(st, -EIO, why, sizeof why);
    cr_assert(strstr(why, "Input/output error (state dir ") == why, "with room: %s", why);
    cr_assert(strstr(why, "bytes free)"), "with room: %s", why);
    store_strerror(st, -EPROTO, why, sizeof why);
    cr_assert_str_eq(why, strerror(EPROTO));
}
