/* test_blobs — droverd's content-addressed artifact store: reference
 * counts, run deletion and the hourly sweep (scheduler/blobs.c).
 *
 * A real droverd on a temp state dir. Blob files are created by the test
 * under STATE/blobs/AB/hex and recorded with a BLOB_OP_NEW op, as an upload
 * would; tasks take references by reporting outputs through
 * dag_task_exited. Changes are applied by the group commit, which the
 * tests trigger by running the loop once (its prepare watcher places,
 * commits and sends); unlinks happen on the worker thread afterwards, so
 * the tests run the loop until the worker is idle. Records with an old
 * creation time are written straight into LMDB while droverd is closed.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"

#define WAIT_MS 10000

TestSuite(blobs, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

/* ------------------------------------------------------------ loop */

static void tick_cb(struct ev_loop *l, ev_timer *t, int revents) {}

static bool pump_until(bool (*cond)(void *), void *arg)
{
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(s->loop, &tick);
    int64_t deadline = util_mono_ms() + WAIT_MS;
    bool ok;
    while (!(ok = cond(arg)) && util_mono_ms() < deadline)
        ev_run(s->loop, EVRUN_ONCE);
    ev_timer_stop(s->loop, &tick);
    return ok;
}

static bool worker_idle(void *arg)
{
    return worker_pending(s->worker) == 0;
}

/* One loop iteration: droverd's flush (place, commit, send); then let the
 * worker finish what the commit queued (unlinks). */
static void commit(void)
{
    ev_run(s->loop, EVRUN_NOWAIT);
    cr_assert_eq(s->fatal, 0, "commit failed");
    cr_assert_eq(s->journal.n_blob_ops, 0, "blob ops left after the commit");
    cr_assert(pump_until(worker_idle, NULL), "worker still busy");
}

/* ------------------------------------------------------------ blobs */

typedef struct {
    uint8_t d[DIGEST_LEN];
    size_t size;
} blob_t;

static bool file_exists(const uint8_t d[DIGEST_LEN])
{
    char *p = blobstore_path(s, d);
    struct stat st;
    bool ok = stat(p, &st) == 0;
    free(p);
    return ok;
}

/* A blob file with this content in the store, as an upload leaves it
 * (recorded at the next commit with no references). */
static blob_t make_blob(const char *content)
{
    blob_t b;
    b.size = strlen(content);
    digest_buffer(content, b.size, b.d);
    char *p = blobstore_path(s, b.d);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    cr_assert_eq(util_mkdir_p(p, 0750), 0);
    *slash = '/';
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "fopen %s", p);
    cr_assert_eq(fwrite(content, 1, b.size, f), b.size);
    fclose(f);
    free(p);
    blobstore_queue_op(s, BLOB_OP_NEW, b.d, 0, b.size);
    return b;
}

/* References as stored: -1 when there is no record. */
static int64_t refs(const blob_t *b)
{
    uint64_t size = 0, n = 0;
    int rc = store_blob_get(s->store, b->d, &size, &n);
    if (rc == -ENOENT)
        return -1;
    cr_assert_eq(rc, 0, "store_blob_get: %s", strerror(-rc));
    cr_assert_eq(size, b->size, "recorded size %lu, want %zu", (unsigned long)size, b->size);
    return (int64_t)n;
}

#define expect_refs(b, n)                                                                          \
    cr_assert_eq(refs(b), (n), "%s: %ld references, want %ld", #b, (long)refs(b), (long)(n))

/* ------------------------------------------------------------ artifacts */

static Drover__FileEntry *entry(const char *path, const blob_t *b)
{
    Drover__FileEntry *e = xmalloc(sizeof *e);
    drover__file_entry__init(e);
    e->path = xstrdup(path);
    e->mode = 0644;
    e->size = b->size;
    e->digest.len = DIGEST_LEN;
    e->digest.data = xmalloc(DIGEST_LEN);
    memcpy(e->digest.data, b->d, DIGEST_LEN);
    return e;
}

static Drover__Artifact *file_art(const char *name, const blob_t *b)
{
    Drover__Artifact *a = xmalloc(sizeof *a);
    drover__artifact__init(a);
    a->name = xstrdup(name);
    a->files = xcalloc(1, sizeof *a->files);
    a->files[a->n_files++] = entry("", b);
    a->size = b->size;
    a->digest.len = DIGEST_LEN;
    a->digest.data = xmalloc(DIGEST_LEN);
    memcpy(a->digest.data, b->d, DIGEST_LEN);
    return a;
}

static Drover__Artifact *dir_art(const char *name, const char **paths, const blob_t **bs, size_t n)
{
    Drover__Artifact *a = xmalloc(sizeof *a);
    drover__artifact__init(a);
    a->name = xstrdup(name);
    a->is_dir = true;
    a->files = xcalloc(n, sizeof *a->files);
    for (size_t i = 0; i < n; i++) {
        a->files[a->n_files++] = entry(paths[i], bs[i]);
        a->size += bs[i]->size;
    }
    a->digest.len = DIGEST_LEN;
    a->digest.data = xcalloc(1, DIGEST_LEN);
    return a;
}

/* The agent running t reports exit 0 with these outputs (taken, freed). */
static void exit_with(task_t *t, Drover__Artifact **arts, size_t n)
{
    Drover__Report rep = DROVER__REPORT__INIT;
    Drover__AttemptRecord *a = dag_current_attempt(t);
    cr_assert_not_null(a, "task %s has no attempt", t->name);
    rep.attempt_id = a->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.outputs = arts;
    rep.n_outputs = n;
    dag_task_exited(s, t, &rep);
    for (size_t i = 0; i < n; i++)
        drover__artifact__free_unpacked(arts[i], NULL);
}

static const char *PRODUCE = "name: produce\n"
                             "steps:\n"
                             "  - name: make\n"
                             "    command: [make]\n"
                             "    outputs: {artifacts: [model, data]}\n";

static const char *OTHER = "name: other\n"
                           "steps:\n"
                           "  - name: build\n"
                           "    command: [build]\n"
                           "    outputs: {artifacts: [out]}\n";

/* Run PRODUCE to success: model = x, data = {y, z, y again}. */
static run_t *produce(const blob_t *x, const blob_t *y, const blob_t *z)
{
    run_t *r = h_submit(s, PRODUCE);
    placer_place(s);
    task_t *t = h_task(r, "make");
    cr_assert_eq(t->status, ST(ASSIGNED));
    const char *paths[] = {"a", "b/c", "b/copy-of-a"};
    const blob_t *bs[] = {y, z, y};
    Drover__Artifact *arts[] = {file_art("model", x), dir_art("data", paths, bs, 3)};
    exit_with(t, arts, 2);
    cr_assert_eq(t->status, ST(SUCCEEDED), "make: %s", t->reason ? t->reason : "-");
    cr_assert_eq(r->rec->status, RS(SUCCEEDED));
    return r;
}

/* Run OTHER to success: out = {y, w}. */
static run_t *other(const blob_t *y, const blob_t *w)
{
    run_t *r = h_submit(s, OTHER);
    placer_place(s);
    task_t *t = h_task(r, "build");
    const char *paths[] = {"shared", "own"};
    const blob_t *bs[] = {y, w};
    Drover__Artifact *arts[] = {dir_art("out", paths, bs, 2)};
    exit_with(t, arts, 1);
    cr_assert_eq(t->status, ST(SUCCEEDED), "build: %s", t->reason ? t->reason : "-");
    return r;
}

/* ------------------------------------------------------------ tests */

Test(blobs, references_follow_outputs_and_are_applied_at_commit)
{
    h_register(s, "a1", 8000, 8ull << 30, 0, NULL);
    blob_t x = make_blob("model weights"), y = make_blob("rows\n"), z = make_blob("zz");
    cr_assert_not(blobstore_exists(s, x.d), "recorded before the commit");
    commit();
    expect_refs(&x, 0);
    expect_refs(&y, 0);
    cr_assert(blobstore_exists(s, x.d));

    produce(&x, &y, &z);
    /* nothing is durable before the group commit */
    expect_refs(&x, 0);
    expect_refs(&y, 0);
    commit();
    expect_refs(&x, 1);
    expect_refs(&y, 2); /* two files of the directory have this content */
    expect_refs(&z, 1);

    /* direct reference changes through the op queue */
    Drover__Artifact *a = file_art("m", &z);
    blobstore_ref_artifact(s, a, +1);
    blobstore_ref_artifact(s, a, +1);
    commit();
    expect_refs(&z, 3);
    blobstore_ref_artifact(s, a, -1);
    commit();
    expect_refs(&z, 2);
    drover__artifact__free_unpacked(a, NULL);
    blobstore_queue_op(s, BLOB_OP_REF, y.d, +5, y.size);
    blobstore_queue_op(s, BLOB_OP_REF, y.d, -3, y.size);
    commit();
    expect_refs(&y, 4);

    /* an upload of a blob that already exists keeps its references */
    blobstore_queue_op(s, BLOB_OP_NEW, x.d, 0, x.size);
    commit();
    expect_refs(&x, 1);

    /* and counts survive a restart */
    h_sched_restart();
    expect_refs(&x, 1);
    expect_refs(&y, 4);
    expect_refs(&z, 2);
}

Test(blobs, outputs_naming_a_blob_not_uploaded_fail_the_task)
{
    h_register(s, "a1", 8000, 8ull << 30, 0, NULL);
    blob_t x = make_blob("model weights"), y = make_blob("rows\n");
    commit();
    blob_t ghost = {.size = 5};
    digest_buffer("ghost", 5, ghost.d);
    run_t *r = h_submit(s, PRODUCE);
    placer_place(s);
    task_t *t = h_task(r, "make");
    const char *paths[] = {"a", "b"};
    const blob_t *bs[] = {&y, &ghost};
    Drover__Artifact *arts[] = {file_art("model", &x), dir_art("data", paths, bs, 2)};
    exit_with(t, arts, 2);
    cr_assert_eq(t->status, ST(FAILED));
    cr_assert(strstr(t->reason, "not uploaded") != NULL, "reason: %s", t->reason);
    commit();
    expect_refs(&x, 0);
    expect_refs(&y, 0);
    cr_assert_eq(refs(&ghost), -1);
}

static bool file_gone(void *arg)
{
    return !file_exists(arg);
}

Test(blobs, deleting_a_run_drops_its_references_and_unlinks_unshared_blobs)
{
    h_register(s, "a1", 8000, 8ull << 30, 0, NULL);
    blob_t x = make_blob("model weights"), y = make_blob("shared rows\n"), z = make_blob("zz"),
           w = make_blob("w only");
    commit();
    run_t *r1 = produce(&x, &y, &z);
    run_t *r2 = other(&y, &w);
    commit();
    expect_refs(&x, 1);
    expect_refs(&y, 3);
    expect_refs(&z, 1);
    expect_refs(&w, 1);
    char *id1 = xstrdup(r1->rec->id), *id2 = xstrdup(r2->rec->id);

    cr_assert_eq(dag_delete_run(s, r1), 0);
    cr_assert_eq(dag_delete_run(s, r1), 0, "deleting twice before the commit is harmless");
    cr_assert_null(dag_find_run(s, id1), "a deleted run is no longer found");
    cr_assert(file_exists(x.d), "files stay until the deletion is committed");
    commit();
    cr_assert_eq(s->dag.n_runs, 1);
    cr_assert_eq(refs(&x), -1, "x had only r1's reference");
    cr_assert_eq(refs(&z), -1);
    expect_refs(&y, 1); /* r2 still uses it */
    expect_refs(&w, 1);
    cr_assert(pump_until(file_gone, x.d), "x's file was not removed");
    cr_assert(pump_until(file_gone, z.d), "z's file was not removed");
    cr_assert(file_exists(y.d), "a blob another run references was removed");
    cr_assert(file_exists(w.d));

    /* the deletion is durable; r2 is untouched */
    h_sched_restart();
    cr_assert_null(dag_find_run(s, id1), "the deleted run came back after a restart");
    run_t *back = dag_find_run(s, id2);
    cr_assert_not_null(back);
    cr_assert_eq(back->rec->status, RS(SUCCEEDED));
    task_t *bt = h_task(back, "build");
    cr_assert_eq(bt->n_outputs, 1);
    cr_assert_eq(bt->outputs[0]->n_files, 2);
    expect_refs(&y, 1);

    cr_assert_eq(dag_delete_run(s, back), 0);
    commit();
    cr_assert_eq(refs(&y), -1);
    cr_assert_eq(refs(&w), -1);
    cr_assert(pump_until(file_gone, y.d));
    cr_assert(pump_until(file_gone, w.d));
    cr_assert_eq(s->dag.n_runs, 0);
    free(id1);
    free(id2);
}

Test(blobs, a_cached_run_holds_its_own_references)
{
    h_register(s, "a1", 8000, 8ull << 30, 0, NULL);
    blob_t x = make_blob("model weights"), y = make_blob("rows\n"), z = make_blob("zz");
    commit();
    run_t *r1 = produce(&x, &y, &z);
    commit();
    run_t *r2 = h_submit(s, PRODUCE);
    task_t *t2 = h_task(r2, "make");
    cr_assert_eq(t2->status, ST(CACHED), "identical step not served from the cache");
    commit();
    expect_refs(&x, 2);
    expect_refs(&y, 4);
    cr_assert_eq(dag_delete_run(s, r1), 0);
    commit();
    expect_refs(&x, 1);
    expect_refs(&y, 2);
    expect_refs(&z, 1);
    cr_assert(file_exists(x.d), "the cached run's blobs were removed with the original run");
    cr_assert(file_exists(z.d));
}

Test(blobs, deleting_an_unfinished_run_is_refused)
{
    h_register(s, "a1", 8000, 8ull << 30, 0, NULL);
    blob_t x = make_blob("model weights");
    commit();
    run_t *r = h_submit(s, "name: two\n"
                           "steps:\n"
                           "  - {name: first, command: [a], outputs: {artifacts: [m]}}\n"
                           "  - {name: second, needs: [first], command: [b]}\n");
    placer_place(s);
    task_t *first = h_task(r, "first");
    dag_task_started(s, first, 0);
    cr_assert_eq(dag_delete_run(s, r), -EBUSY);
    Drover__Artifact *arts[] = {file_art("m", &x)};
    exit_with(first, arts, 1);
    cr_assert_eq(first->status, ST(SUCCEEDED));
    cr_assert_eq(dag_delete_run(s, r), -EBUSY, "second has not run yet");
    commit();
    cr_assert_not_null(dag_find_run(s, r->rec->id));
    expect_refs(&x, 1);
    cr_assert(file_exists(x.d));

    /* once it has ended (here: cancelled), it can go */
    dag_cancel_run(s, r);
    cr_assert_eq(r->rec->status, RS(CANCELLED));
    cr_assert_eq(dag_delete_run(s, r), 0);
    commit();
    cr_assert_eq(refs(&x), -1);
    cr_assert(pump_until(file_gone, x.d));
}

/* ------------------------------------------------------------ sweep */

/* Write a blob record straight into LMDB (droverd must be closed). */
static void raw_put_blob(const blob_t *b, uint64_t nrefs, int64_t created_ms)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    int rc = mdb_env_open(env, h_dir, MDB_NOTLS, 0640);
    cr_assert_eq(rc, 0, "mdb_env_open: %s", mdb_strerror(rc));
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "blobs", 0, &dbi), 0);
    Drover__BlobRecord rec = DROVER__BLOB_RECORD__INIT;
    rec.size = b->size;
    rec.refs = nrefs;
    rec.created_ms = created_ms;
    uint8_t buf[64];
    size_t n = drover__blob_record__pack(&rec, buf);
    MDB_val key = {.mv_size = DIGEST_LEN, .mv_data = (void *)b->d};
    MDB_val val = {.mv_size = n, .mv_data = buf};
    cr_assert_eq(mdb_put(txn, dbi, &key, &val, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

Test(blobs, sweep_removes_only_unreferenced_blobs_older_than_an_hour)
{
    blob_t old0 = make_blob("old, unreferenced"), old1 = make_blob("old, referenced"),
           edge = make_blob("59 minutes, unreferenced"), fresh = make_blob("fresh, unreferenced");
    commit();
    h_sched_close(&s);
    int64_t now = util_now_ms();
    raw_put_blob(&old0, 0, now - 2 * 3600 * 1000);
    raw_put_blob(&old1, 1, now - 2 * 3600 * 1000);
    raw_put_blob(&edge, 0, now - 59 * 60 * 1000);
    s = h_sched_open(h_dir);
    expect_refs(&old0, 0);
    expect_refs(&old1, 1);

    blobstore_sweep(s);
    commit();
    cr_assert_eq(refs(&old0), -1, "an old unreferenced blob survived the sweep");
    cr_assert(pump_until(file_gone, old0.d), "its file was not removed");
    expect_refs(&old1, 1);
    expect_refs(&edge, 0);
    expect_refs(&fresh, 0);
    cr_assert(file_exists(old1.d), "a referenced blob was swept");
    cr_assert(file_exists(edge.d), "a blob younger than an hour was swept");
    cr_assert(file_exists(fresh.d));

    /* a second sweep finds nothing more */
    blobstore_sweep(s);
    commit();
    expect_refs(&old1, 1);
    expect_refs(&edge, 0);
    cr_assert(file_exists(edge.d));
}

Test(blobs, sweep_spares_a_blob_referenced_before_the_commit)
{
    blob_t old0 = make_blob("old, about to be reused");
    commit();
    h_sched_close(&s);
    raw_put_blob(&old0, 0, util_now_ms() - 2 * 3600 * 1000);
    s = h_sched_open(h_dir);
    h_register(s, "a1", 8000, 8ull << 30, 0, NULL);

    /* The hourly sweep and a task reporting this blob as its output land
     * in the same loop iteration (the agent was told droverd already had
     * the content, so it did not upload it again). */
    run_t *r = h_submit(s, OTHER);
    placer_place(s);
    blobstore_sweep(s);
    const char *paths[] = {"f"};
    const blob_t *bs[] = {&old0};
    Drover__Artifact *arts[] = {dir_art("out", paths, bs, 1)};
    exit_with(h_task(r, "build"), arts, 1);
    cr_assert_eq(h_task(r, "build")->status, ST(SUCCEEDED));
    commit();
    int64_t n = refs(&old0);
    cr_assert_eq(n, 1, "the task's reference was lost (refs %ld)", (long)n);
    cr_assert(file_exists(old0.d),
              "the blob's file was removed while its record says it is referenced");
}
