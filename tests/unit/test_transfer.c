/* test_transfer — the agent's side of artifact movement (agent/transfer.c)
 * against a fake droverd written here.
 *
 * The fake is an xfer_host_t whose send_* callbacks record every message
 * the agent would put on the wire; the tests then answer as droverd does
 * (UploadWant, ChunkAck, BlobDone for uploads; BlobChunk for fetches)
 * by calling the xfer_* entry points, and run the default libev loop until
 * the worker thread's results are back.
 *
 * Outputs: the scan offers the right digests and sizes; only the blobs
 * droverd wants are uploaded, in chunks of at most 256 KiB with never more
 * than 8 unacknowledged; done() gets manifests listing every file (sorted
 * paths, modes, sizes, digests) and the params with one trailing newline
 * stripped; symlinks, missing outputs and oversized params are errors; a
 * blob droverd could not store for its own reasons is offered again.
 * Inputs: missing blobs are fetched (acks come back), verified, stored in
 * the cache and materialized with their modes; a corrupted chunk fails
 * the transfer; a manifest path that would leave the inputs dir is
 * refused; blobs already cached are not fetched again.
 */
#define DROVER_TEST_AGENT
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "transfer.h"
#include "worker.h"

#define CHUNK   (256 * 1024)
#define WINDOW  8
#define WAIT_MS 10000

static h_agent_t fx; /* with a worker */
static char *outdir, *cachedir, *indir, *srcdir;

/* ------------------------------------------------------------ fake droverd */

typedef struct {
    Drover__UploadOffer **offers;
    size_t n_offers;
    Drover__BlobChunk **chunks;
    size_t n_chunks;
    Drover__ChunkAck **acks;
    size_t n_acks;
    Drover__FetchRequest **fetches;
    size_t n_fetches;
} fake_t;

static fake_t fake;

#define APPEND(arr, n, m)                                                                          \
    do {                                                                                           \
        (arr) = xrealloc((arr), ((n) + 1) * sizeof *(arr));                                        \
        (arr)[(n)++] = (m);                                                                        \
    } while (0)

static void host_offer(void *host, Drover__UploadOffer *m)
{
    cr_assert_eq(host, &fake);
    APPEND(fake.offers, fake.n_offers, m);
}

static void host_chunk(void *host, Drover__BlobChunk *m)
{
    APPEND(fake.chunks, fake.n_chunks, m);
}

static void host_chunk_ack(void *host, Drover__ChunkAck *m)
{
    APPEND(fake.acks, fake.n_acks, m);
}

static void host_fetch(void *host, Drover__FetchRequest *m)
{
    APPEND(fake.fetches, fake.n_fetches, m);
}

static void fake_free(void)
{
    for (size_t i = 0; i < fake.n_offers; i++)
        drover__upload_offer__free_unpacked(fake.offers[i], NULL);
    for (size_t i = 0; i < fake.n_chunks; i++)
        drover__blob_chunk__free_unpacked(fake.chunks[i], NULL);
    for (size_t i = 0; i < fake.n_acks; i++)
        drover__chunk_ack__free_unpacked(fake.acks[i], NULL);
    for (size_t i = 0; i < fake.n_fetches; i++)
        drover__fetch_request__free_unpacked(fake.fetches[i], NULL);
    free(fake.offers);
    free(fake.chunks);
    free(fake.acks);
    free(fake.fetches);
    memset(&fake, 0, sizeof fake);
}

static xfer_host_t host(void)
{
    return (xfer_host_t){.worker = fx.worker,
                         .cache_dir = cachedir,
                         .send_offer = host_offer,
                         .send_chunk = host_chunk,
                         .send_chunk_ack = host_chunk_ack,
                         .send_fetch = host_fetch,
                         .host = &fake};
}

/* What done() reported (copies: the session keeps its own). */
typedef struct {
    int calls;
    char *error;
    Drover__Artifact **arts;
    size_t n_arts;
    Drover__KeyValue **params;
    size_t n_params;
} result_t;

static result_t res;

static void result_free(void)
{
    free(res.error);
    for (size_t i = 0; i < res.n_arts; i++)
        drover__artifact__free_unpacked(res.arts[i], NULL);
    free(res.arts);
    util_free_kvs(res.params, res.n_params);
    memset(&res, 0, sizeof res);
}

static Drover__Artifact *copy_artifact(const Drover__Artifact *a)
{
    size_t n = drover__artifact__get_packed_size(a);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__artifact__pack(a, buf);
    Drover__Artifact *c = drover__artifact__unpack(NULL, n, buf);
    free(buf);
    cr_assert_not_null(c);
    return c;
}

static void out_done(void *arg, Drover__Artifact **arts, size_t n_arts, Drover__KeyValue **params,
                     size_t n_params, const char *error)
{
    cr_assert_eq(arg, &res);
    res.calls++;
    if (error) {
        cr_assert_null(arts);
        cr_assert_eq(n_arts, 0);
        res.error = xstrdup(error);
        return;
    }
    res.arts = xcalloc(n_arts, sizeof *res.arts);
    for (size_t i = 0; i < n_arts; i++)
        res.arts[res.n_arts++] = copy_artifact(arts[i]);
    res.params = xcalloc(n_params, sizeof *res.params);
    for (size_t i = 0; i < n_params; i++)
        res.params[res.n_params++] = util_kv_new(params[i]->key, params[i]->value);
}

static void in_done(void *arg, const char *error)
{
    cr_assert_eq(arg, &res);
    res.calls++;
    if (error)
        res.error = xstrdup(error);
}

/* ------------------------------------------------------------ setup */

static void setup(void)
{
    h_agent_init(&fx, true);
    outdir = xasprintf("%s/outputs", fx.dir);
    cachedir = xasprintf("%s/cache", fx.dir);
    indir = xasprintf("%s/task/inputs", fx.dir);
    srcdir = xasprintf("%s/src", fx.dir);
    cr_assert_eq(util_mkdir_p(outdir, 0755), 0);
    cr_assert_eq(util_mkdir_p(cachedir, 0755), 0);
    cr_assert_eq(util_mkdir_p(srcdir, 0755), 0);
    memset(&fake, 0, sizeof fake);
    memset(&res, 0, sizeof res);
}

static void teardown(void)
{
    worker_destroy(&fx.worker); /* first: its last jobs may still touch res */
    fake_free();
    result_free();
    h_agent_fini(&fx);
    free(outdir);
    free(cachedir);
    free(indir);
    free(srcdir);
}

TestSuite(transfer, .init = setup, .fini = teardown, .timeout = 120);

static bool idle(void *arg)
{
    return worker_pending(fx.worker) == 0;
}

static bool finished(void *arg)
{
    return res.calls > 0;
}

static bool have_fetch(void *arg)
{
    return fake.n_fetches > 0 || res.calls > 0;
}

static bool have_offer(void *arg)
{
    return fake.n_offers > 0 || res.calls > 0;
}

/* Let every queued worker job come back. */
static void settle(void)
{
    cr_assert(h_pump_until(fx.loop, idle, NULL, WAIT_MS), "worker still busy: %u jobs",
              worker_pending(fx.worker));
}

static void wait_done(void)
{
    cr_assert(h_pump_until(fx.loop, finished, NULL, WAIT_MS), "done() was never called");
    settle();
    cr_assert_eq(res.calls, 1, "done() called %d times", res.calls);
}

/* ------------------------------------------------------------ files */

static uint8_t *random_bytes(size_t len, uint64_t seed)
{
    uint8_t *b = xmalloc(len ? len : 1);
    uint64_t st = seed | 1;
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(h_rand(&st) >> 24);
    return b;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char *dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
    cr_assert_eq(util_mkdir_p(dir, 0755), 0);
    free(dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const uint8_t *)data + done, len - done);
        cr_assert_gt(n, 0);
        done += (size_t)n;
    }
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_all(const char *path, size_t *len)
{
    char *text = NULL;
    int rc = util_read_file(path, 64 << 20, &text, len);
    cr_assert_eq(rc, 0, "reading %s: %s", path, strerror(-rc));
    return text;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void file_digest(const char *path, uint8_t d[DIGEST_LEN], uint64_t *size)
{
    uint64_t sz = 0;
    cr_assert_eq(digest_file(path, d, &sz), 0, "digest_file(%s)", path);
    if (size)
        *size = sz;
}

static char *cache_file(const uint8_t *d)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    return xasprintf("%s/%.2s/%s", cachedir, hex, hex);
}

static size_t n_entries;

static int count_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    if (f->level > 0)
        n_entries++;
    return 0;
}

/* Files and directories under dir (0 when dir does not exist). */
static size_t count_entries(const char *dir)
{
    n_entries = 0;
    if (exists(dir))
        cr_assert_eq(nftw(dir, count_one, 16, FTW_PHYS), 0);
    return n_entries;
}

static bool same(ProtobufCBinaryData b, const uint8_t *d)
{
    return b.len == DIGEST_LEN && memcmp(b.data, d, DIGEST_LEN) == 0;
}

/* ------------------------------------------------------------ outputs */

/* The outputs of the main upload test. */
typedef struct {
    const char *rel; /* under outputs/ */
    size_t size;
    mode_t mode;
    uint64_t seed; /* 0: text below */
    const char *text;
    uint8_t digest[DIGEST_LEN];
} out_file_t;

static out_file_t OUT_FILES[] = {
    {"model", 700000, 0640, 11, NULL, {0}},                    /* 3 chunks */
    {"data/a.txt", 0, 0644, 0, "hello\n", {0}},                /* same content as c.txt */
    {"data/sub/b.bin", 10 * CHUNK + 100, 0755, 12, NULL, {0}}, /* 11 chunks > window */
    {"data/sub/deep/c.txt", 0, 0600, 0, "hello\n", {0}},       /* duplicate of a.txt */
    {"data/z_empty", 0, 0644, 0, "", {0}},                     /* an empty blob */
    {"data/sub/deep/e2.bin", 2 * CHUNK, 0400, 13, NULL, {0}},  /* exactly two chunks */
};
#define N_OUT_FILES (sizeof OUT_FILES / sizeof *OUT_FILES)

static void make_outputs(void)
{
    for (size_t i = 0; i < N_OUT_FILES; i++) {
        out_file_t *f = &OUT_FILES[i];
        char *path = xasprintf("%s/%s", outdir, f->rel);
        if (f->text) {
            f->size = strlen(f->text);
            write_file(path, f->text, f->size, f->mode);
        } else {
            uint8_t *b = random_bytes(f->size, f->seed);
            write_file(path, b, f->size, f->mode);
            free(b);
        }
        uint64_t size;
        file_digest(path, f->digest, &size);
        cr_assert_eq(size, f->size);
        free(path);
    }
    char *p = xasprintf("%s/acc", outdir);
    write_file(p, "0.93\n", 5, 0644);
    free(p);
    p = xasprintf("%s/n", outdir);
    write_file(p, "42", 2, 0644);
    free(p);
    p = xasprintf("%s/multi", outdir);
    write_file(p, "line1\nline2\n\n", 13, 0644);
    free(p);
}

static const out_file_t *out_file(const char *rel)
{
    for (size_t i = 0; i < N_OUT_FILES; i++)
        if (strcmp(OUT_FILES[i].rel, rel) == 0)
            return &OUT_FILES[i];
    cr_assert_fail("no output file %s", rel);
    return NULL;
}

static ssize_t offer_index(const Drover__UploadOffer *o, const uint8_t *d)
{
    for (size_t i = 0; i < o->n_digests; i++)
        if (same(o->digests[i], d))
            return (ssize_t)i;
    return -1;
}

/* Play droverd for one wanted blob: take its chunks as they come (checking
 * sizes, offsets and the window), acknowledge `batch` chunks at a time, and
 * answer BlobDone once all bytes arrived and match the digest. Returns the
 * most chunks seen unacknowledged at once. */
static size_t serve_blob(xfer_out_t *x, uint64_t attempt, const out_file_t *f, size_t *next_chunk,
                         size_t batch)
{
    uint8_t *got = xmalloc(f->size ? f->size : 1);
    uint64_t received = 0;
    size_t max_unacked = 0;
    /* ends of chunks received but not yet acknowledged, oldest first */
    uint64_t pend[64];
    size_t n_pend = 0;
    bool empty_seen = false;
    for (;;) {
        settle();
        size_t fresh = 0;
        for (; *next_chunk < fake.n_chunks; (*next_chunk)++) {
            const Drover__BlobChunk *c = fake.chunks[*next_chunk];
            cr_assert(same(c->digest, f->digest), "a chunk of another blob while %s uploads",
                      f->rel);
            cr_assert_eq(c->attempt_id, attempt);
            cr_assert_eq(c->size, f->size, "chunk says blob size %lu, want %zu",
                         (unsigned long)c->size, f->size);
            cr_assert_eq(c->offset, received, "%s: chunk at %lu, expected %lu", f->rel,
                         (unsigned long)c->offset, (unsigned long)received);
            cr_assert_leq(c->data.len, CHUNK, "chunk of %zu bytes", c->data.len);
            if (f->size == 0) {
                cr_assert_eq(c->data.len, 0);
                cr_assert_not(empty_seen, "the empty blob was sent twice");
                empty_seen = true;
            } else {
                cr_assert_gt(c->data.len, 0, "an empty chunk inside %s", f->rel);
                cr_assert(c->data.len == CHUNK || received + c->data.len == f->size,
                          "short chunk (%zu bytes) before the end of %s", c->data.len, f->rel);
            }
            memcpy(got + received, c->data.data, c->data.len);
            received += c->data.len;
            cr_assert_lt(n_pend, 64);
            pend[n_pend++] = received;
            fresh++;
        }
        if (n_pend > max_unacked)
            max_unacked = n_pend;
        cr_assert_leq(n_pend, WINDOW, "%zu chunks of %s unacknowledged (window %d)", n_pend, f->rel,
                      WINDOW);
        /* the window is used fully: with nothing acked, exactly min(8, left) */
        if (received < f->size)
            cr_assert_eq(n_pend, WINDOW, "%s: only %zu chunks in flight with %lu bytes left",
                         f->rel, n_pend, (unsigned long)(f->size - received));
        if (received == f->size && (f->size > 0 || empty_seen))
            break;
        cr_assert_gt(fresh + n_pend, 0, "%s: upload stalled at %lu", f->rel,
                     (unsigned long)received);
        /* acknowledge the oldest `batch` chunks */
        size_t k = batch < n_pend ? batch : n_pend;
        Drover__ChunkAck ack = DROVER__CHUNK_ACK__INIT;
        ack.attempt_id = attempt;
        ack.digest.data = (uint8_t *)f->digest;
        ack.digest.len = DIGEST_LEN;
        ack.end = pend[k - 1];
        memmove(pend, pend + k, (n_pend - k) * sizeof *pend);
        n_pend -= k;
        xfer_out_chunk_ack(x, &ack);
    }
    uint8_t d[DIGEST_LEN];
    digest_buffer(got, f->size, d);
    cr_assert_arr_eq(d, f->digest, DIGEST_LEN, "%s arrived corrupted", f->rel);
    free(got);
    /* droverd acks the tail, then says it stored the blob */
    Drover__BlobDone done = DROVER__BLOB_DONE__INIT;
    done.attempt_id = attempt;
    done.digest.data = (uint8_t *)f->digest;
    done.digest.len = DIGEST_LEN;
    done.ok = true;
    done.error = "";
    xfer_out_blob_done(x, &done);
    return max_unacked;
}

static const Drover__Artifact *find_art(const char *name)
{
    for (size_t i = 0; i < res.n_arts; i++)
        if (strcmp(res.arts[i]->name, name) == 0)
            return res.arts[i];
    cr_assert_fail("done() has no artifact %s", name);
    return NULL;
}

static const char *find_param(const char *key)
{
    for (size_t i = 0; i < res.n_params; i++)
        if (strcmp(res.params[i]->key, key) == 0)
            return res.params[i]->value;
    return NULL;
}

static void want(xfer_out_t *x, uint64_t attempt, const out_file_t **files, size_t n)
{
    Drover__UploadWant wm = DROVER__UPLOAD_WANT__INIT;
    ProtobufCBinaryData ds[16];
    cr_assert_leq(n, 16);
    for (size_t i = 0; i < n; i++) {
        ds[i].data = (uint8_t *)files[i]->digest;
        ds[i].len = DIGEST_LEN;
    }
    wm.attempt_id = attempt;
    wm.digests = ds;
    wm.n_digests = n;
    xfer_out_want(x, &wm);
}

static char *const OUT_ARTS[] = {"model", "data"};
static char *const OUT_PARAMS[] = {"acc", "n", "multi"};

Test(transfer, outputs_offered_uploaded_on_demand_and_reported)
{
    make_outputs();
    xfer_host_t h = host();
    uint64_t attempt = 77;
    xfer_out_t *x = xfer_out_start(&h, attempt, outdir, OUT_ARTS, 2, OUT_PARAMS, 3, out_done, &res);
    cr_assert_not_null(x);
    cr_assert(h_pump_until(fx.loop, have_offer, NULL, WAIT_MS), "no offer");
    cr_assert_eq(res.calls, 0, "done before the upload: %s", res.error ? res.error : "-");
    cr_assert_eq(fake.n_offers, 1);
    settle();
    cr_assert_eq(fake.n_chunks, 0, "nothing is uploaded before droverd says what it wants");

    /* the offer: every distinct content once, with its size */
    const Drover__UploadOffer *o = fake.offers[0];
    cr_assert_eq(o->attempt_id, attempt);
    cr_assert_eq(o->n_digests, 5, "6 files, 5 distinct contents; offered %zu", o->n_digests);
    cr_assert_eq(o->n_sizes, o->n_digests);
    for (size_t i = 0; i < N_OUT_FILES; i++) {
        ssize_t k = offer_index(o, OUT_FILES[i].digest);
        cr_assert_geq(k, 0, "%s not offered", OUT_FILES[i].rel);
        cr_assert_eq(o->sizes[k], OUT_FILES[i].size, "%s offered with size %lu", OUT_FILES[i].rel,
                     (unsigned long)o->sizes[k]);
    }

    /* droverd already has a.txt's content (and so c.txt's) and e2.bin */
    const out_file_t *wanted[] = {out_file("data/sub/b.bin"), out_file("model"),
                                  out_file("data/z_empty")};
    want(x, attempt, wanted, 3);
    size_t next = 0;
    size_t m1 = serve_blob(x, attempt, wanted[0], &next, 1);
    cr_assert_eq(m1, WINDOW, "b.bin (11 chunks) fills the window");
    cr_assert_eq(res.calls, 0, "done before the last blob");
    size_t m2 = serve_blob(x, attempt, wanted[1], &next, 2);
    cr_assert_eq(m2, 3);
    serve_blob(x, attempt, wanted[2], &next, 1);
    wait_done();
    cr_assert_eq(next, fake.n_chunks, "chunks after the last BlobDone");
    cr_assert_null(res.error, "upload failed: %s", res.error);
    for (size_t i = 0; i < fake.n_chunks; i++) {
        cr_assert_not(same(fake.chunks[i]->digest, out_file("data/a.txt")->digest),
                      "uploaded a blob droverd did not want");
        cr_assert_not(same(fake.chunks[i]->digest, out_file("data/sub/deep/e2.bin")->digest));
    }
    cr_assert_eq(fake.n_offers, 1);

    /* the artifacts */
    cr_assert_eq(res.n_arts, 2);
    const Drover__Artifact *model = find_art("model");
    const out_file_t *mf = out_file("model");
    cr_assert_not(model->is_dir);
    cr_assert_eq(model->n_files, 1);
    cr_assert_str_eq(model->files[0]->path, "");
    cr_assert_eq(model->files[0]->mode, 0640, "mode %o", model->files[0]->mode);
    cr_assert_eq(model->files[0]->size, mf->size);
    cr_assert(same(model->files[0]->digest, mf->digest));
    cr_assert(same(model->digest, mf->digest), "a file artifact's digest is its content's");
    cr_assert_eq(model->size, mf->size);

    const Drover__Artifact *data = find_art("data");
    cr_assert(data->is_dir);
    const char *order[] = {"a.txt", "sub/b.bin", "sub/deep/c.txt", "sub/deep/e2.bin", "z_empty"};
    cr_assert_eq(data->n_files, 5, "manifest has %zu files", data->n_files);
    uint64_t total = 0;
    for (size_t i = 0; i < 5; i++) {
        const Drover__FileEntry *e = data->files[i];
        cr_assert_str_eq(e->path, order[i], "manifest entry %zu", i);
        char *rel = xasprintf("data/%s", order[i]);
        const out_file_t *f = out_file(rel);
        free(rel);
        cr_assert_eq(e->mode, (uint32_t)f->mode, "%s: mode %o, want %o", e->path, e->mode,
                     (unsigned)f->mode);
        cr_assert_eq(e->size, f->size, "%s: size", e->path);
        cr_assert(same(e->digest, f->digest), "%s: digest", e->path);
        total += f->size;
    }
    cr_assert_eq(data->size, total);
    /* a directory's digest is the hash of its packed manifest */
    Drover__Artifact *m = copy_artifact(data);
    free(m->digest.data);
    m->digest.data = NULL;
    m->digest.len = 0;
    size_t n = drover__artifact__get_packed_size(m);
    uint8_t *buf = xmalloc(n);
    drover__artifact__pack(m, buf);
    uint8_t md[DIGEST_LEN];
    digest_buffer(buf, n, md);
    free(buf);
    drover__artifact__free_unpacked(m, NULL);
    cr_assert(same(data->digest, md), "directory digest is not its manifest's");

    /* params, one trailing newline stripped */
    cr_assert_eq(res.n_params, 3);
    cr_assert_str_eq(find_param("acc"), "0.93");
    cr_assert_str_eq(find_param("n"), "42");
    cr_assert_str_eq(find_param("multi"), "line1\nline2\n");

    /* late messages after done change nothing */
    Drover__BlobDone late = DROVER__BLOB_DONE__INIT;
    late.digest.data = (uint8_t *)mf->digest;
    late.digest.len = DIGEST_LEN;
    late.error = "";
    xfer_out_blob_done(x, &late);
    Drover__ChunkAck late_ack = DROVER__CHUNK_ACK__INIT;
    late_ack.attempt_id = attempt;
    late_ack.digest = late.digest;
    late_ack.end = 1;
    xfer_out_chunk_ack(x, &late_ack);
    settle();
    cr_assert_eq(fake.n_chunks, next, "nothing is sent after done");
    cr_assert_eq(res.calls, 1);
    xfer_out_cancel(&x);
    cr_assert_null(x);
}

/* Names of files in the watched dir opened since the last call. */
static size_t opened(int ino_fd, char names[][32], size_t max)
{
    size_t n = 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len;
    while ((len = read(ino_fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if ((ev->mask & IN_OPEN) && ev->len && n < max)
                snprintf(names[n++], 32, "%s", ev->name);
            p += sizeof *ev + ev->len;
        }
    }
    return n;
}

/* One checkpoint commit of root/checkpoint: the digests of a.bin, b.bin. */
static void checkpoint_scan(xfer_memo_t *memo, uint8_t a_digest[DIGEST_LEN],
                            uint8_t b_digest[DIGEST_LEN])
{
    xfer_host_t h = host();
    result_free();
    fake_free();
    xfer_out_t *x = xfer_checkpoint_start(&h, 9, fx.dir, memo, out_done, &res);
    cr_assert(h_pump_until(fx.loop, have_offer, NULL, WAIT_MS));
    want(x, 9, NULL, 0);
    wait_done();
    cr_assert_null(res.error, "%s", res.error);
    const Drover__Artifact *ck = find_art("checkpoint");
    cr_assert_eq(ck->n_files, 2);
    cr_assert_str_eq(ck->files[0]->path, "a.bin");
    cr_assert_str_eq(ck->files[1]->path, "b.bin");
    memcpy(a_digest, ck->files[0]->digest.data, DIGEST_LEN);
    memcpy(b_digest, ck->files[1]->digest.data, DIGEST_LEN);
    xfer_out_cancel(&x);
}

/* A checkpoint commit reads only the files that changed since the last
 * one: a multi-gigabyte model shard that stayed the same is not hashed
 * again at every checkpoint. */
Test(transfer, checkpoints_hash_only_what_changed)
{
    char *ckdir = xasprintf("%s/checkpoint", fx.dir);
    cr_assert_eq(util_mkdir_p(ckdir, 0755), 0);
    char *a = xasprintf("%s/a.bin", ckdir), *b = xasprintf("%s/b.bin", ckdir);
    write_file(a, "model weights", 13, 0644);
    write_file(b, "optimizer v1", 12, 0644);
    int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    cr_assert_geq(ino, 0);
    cr_assert_geq(inotify_add_watch(ino, ckdir, IN_OPEN), 0);
    /* racy window -10 s: trust what was just written (the agent uses 2 s) */
    xfer_memo_t *memo = xfer_memo_new(-10);
    uint8_t a1[DIGEST_LEN], b1[DIGEST_LEN], a2[DIGEST_LEN], b2[DIGEST_LEN], want_b[DIGEST_LEN];
    char names[8][32];

    checkpoint_scan(memo, a1, b1);
    size_t n = opened(ino, names, 8);
    cr_assert_eq(n, 2, "the first commit reads both files (%zu opens)", n);

    write_file(b, "optimizer v2", 12, 0644); /* same size, new content */
    opened(ino, names, 8);                   /* (the write itself) */
    checkpoint_scan(memo, a2, b2);
    n = opened(ino, names, 8);
    cr_assert_eq(n, 1, "only the changed file is read again (%zu opens)", n);
    cr_assert_str_eq(names[0], "b.bin");
    cr_assert(memcmp(a1, a2, DIGEST_LEN) == 0, "the unchanged file keeps its digest");
    uint64_t size;
    cr_assert_eq(digest_file(b, want_b, &size), 0);
    cr_assert(memcmp(b2, want_b, DIGEST_LEN) == 0, "the changed file has its new content's digest");
    cr_assert_neq(memcmp(b1, b2, DIGEST_LEN), 0);

    /* Without the memo (outputs), every file is read. */
    opened(ino, names, 8); /* (digest_file above) */
    checkpoint_scan(NULL, a2, b2);
    n = opened(ino, names, 8);
    cr_assert_eq(n, 2, "without a memo both files are read (%zu opens)", n);

    xfer_host_t h = host();
    xfer_memo_release(&h, memo);
    settle();
    close(ino);
    free(a);
    free(b);
    free(ckdir);
}

Test(transfer, nothing_wanted_means_done_without_uploading)
{
    make_outputs();
    xfer_host_t h = host();
    xfer_out_t *x = xfer_out_start(&h, 5, outdir, OUT_ARTS, 2, OUT_PARAMS, 3, out_done, &res);
    cr_assert(h_pump_until(fx.loop, have_offer, NULL, WAIT_MS));
    cr_assert_eq(fake.n_offers, 1);
    want(x, 5, NULL, 0);
    wait_done();
    cr_assert_null(res.error, "%s", res.error);
    cr_assert_eq(fake.n_chunks, 0, "droverd has every blob: nothing to upload");
    cr_assert_eq(res.n_arts, 2);
    cr_assert_eq(find_art("data")->n_files, 5);
    cr_assert_str_eq(find_param("acc"), "0.93");
    xfer_out_cancel(&x);
}

Test(transfer, params_only_need_no_offer)
{
    char *p = xasprintf("%s/only", outdir);
    write_file(p, "v\n", 2, 0644);
    free(p);
    char *params[] = {"only"};
    xfer_host_t h = host();
    xfer_out_t *x = xfer_out_start(&h, 6, outdir, NULL, 0, params, 1, out_done, &res);
    wait_done();
    cr_assert_null(res.error, "%s", res.error);
    cr_assert_eq(fake.n_offers, 0, "no blobs, no offer");
    cr_assert_eq(res.n_params, 1);
    cr_assert_str_eq(find_param("only"), "v");
    xfer_out_cancel(&x);
}

Test(transfer, failed_blob_fails_the_upload)
{
    make_outputs();
    xfer_host_t h = host();
    xfer_out_t *x = xfer_out_start(&h, 8, outdir, OUT_ARTS, 2, OUT_PARAMS, 3, out_done, &res);
    cr_assert(h_pump_until(fx.loop, have_offer, NULL, WAIT_MS));
    const out_file_t *wanted[] = {out_file("model"), out_file("data/sub/b.bin")};
    want(x, 8, wanted, 2);
    settle();
    cr_assert_gt(fake.n_chunks, 0);
    Drover__BlobDone d = DROVER__BLOB_DONE__INIT;
    d.attempt_id = 8;
    d.digest.data = (uint8_t *)wanted[0]->digest;
    d.digest.len = DIGEST_LEN;
    d.ok = false;
    d.error = "fsync: No space left on device";
    xfer_out_blob_done(x, &d);
    wait_done();
    cr_assert_not_null(res.error);
    cr_assert(strstr(res.error, "No space left on device") != NULL, "error: %s", res.error);
    size_t n = fake.n_chunks;
    settle();
    for (size_t i = 0; i < n; i++)
        cr_assert(same(fake.chunks[i]->digest, wanted[0]->digest),
                  "the second blob was uploaded after the first failed");
    xfer_out_cancel(&x);
}

/* droverd could not store a blob for its own reasons (its disk is full:
 * BlobDone.retry): the upload is not over and nothing is reported; the
 * outputs are offered again after a delay, and once stored the artifacts
 * are reported as if nothing had happened. */
Test(transfer, blob_droverd_could_not_store_is_offered_again)
{
    make_outputs();
    xfer_host_t h = host();
    xfer_out_t *x = xfer_out_start(&h, 9, outdir, OUT_ARTS, 2, OUT_PARAMS, 3, out_done, &res);
    cr_assert(h_pump_until(fx.loop, have_offer, NULL, WAIT_MS));
    cr_assert_eq(fake.n_offers, 1);
    const out_file_t *wanted[] = {out_file("model")};
    want(x, 9, wanted, 1);
    settle();
    cr_assert_gt(fake.n_chunks, 0);
    Drover__BlobDone d = DROVER__BLOB_DONE__INIT;
    d.attempt_id = 9;
    d.digest.data = (uint8_t *)wanted[0]->digest;
    d.digest.len = DIGEST_LEN;
    d.ok = false;
    d.retry = true;
    d.error = "writing blob: no space left on device (state dir /s: 0 bytes free)";
    xfer_out_blob_done(x, &d);
    settle();
    cr_assert_eq(res.calls, 0, "droverd's full disk ended the upload: %s", res.error);
    int64_t now = util_mono_ms();
    xfer_out_tick(x, now + 500);
    cr_assert_eq(fake.n_offers, 1, "offered again before the delay");
    xfer_out_tick(x, now + 1500);
    cr_assert_eq(fake.n_offers, 2, "never offered again");
    cr_assert_eq(fake.offers[1]->n_digests, fake.offers[0]->n_digests);

    size_t next = fake.n_chunks; /* the failed round's chunks are history */
    want(x, 9, wanted, 1);
    serve_blob(x, 9, wanted[0], &next, 3);
    wait_done();
    cr_assert_null(res.error, "error: %s", res.error);
    cr_assert_eq(res.n_arts, 2);
    cr_assert_eq(find_art("model")->size, wanted[0]->size);
    xfer_out_cancel(&x);
}

/* Run an output scan that must fail; returns the error (owned by res). */
static const char *scan_error(char *const *arts, size_t n_arts, char *const *params,
                              size_t n_params)
{
    xfer_host_t h = host();
    xfer_out_t *x = xfer_out_start(&h, 9, outdir, arts, n_arts, params, n_params, out_done, &res);
    wait_done();
    xfer_out_cancel(&x);
    cr_assert_not_null(res.error, "the scan succeeded");
    cr_assert_eq(fake.n_offers, 0, "an offer was sent for failed outputs");
    cr_assert_eq(fake.n_chunks, 0);
    return res.error;
}

Test(transfer, symlink_in_an_output_dir_is_refused)
{
    make_outputs();
    char *link = xasprintf("%s/data/sub/passwd", outdir);
    cr_assert_eq(symlink("/etc/passwd", link), 0);
    free(link);
    const char *err = scan_error(OUT_ARTS, 2, OUT_PARAMS, 3);
    cr_assert(strstr(err, "symbolic link") != NULL, "error: %s", err);
    cr_assert(strstr(err, "sub/passwd") != NULL, "error names the link: %s", err);
}

Test(transfer, symlink_as_an_output_is_refused)
{
    char *target = xasprintf("%s/real", srcdir);
    write_file(target, "x", 1, 0644);
    char *link = xasprintf("%s/model", outdir);
    cr_assert_eq(symlink(target, link), 0);
    free(link);
    free(target);
    char *arts[] = {"model"};
    const char *err = scan_error(arts, 1, NULL, 0);
    cr_assert(strstr(err, "model") != NULL, "error: %s", err);
}

Test(transfer, missing_declared_output_is_named)
{
    make_outputs();
    char *arts[] = {"model", "weights"};
    const char *err = scan_error(arts, 2, OUT_PARAMS, 3);
    cr_assert(strstr(err, "'weights'") != NULL, "error: %s", err);
    cr_assert(strstr(err, "not written") != NULL, "error: %s", err);
}

Test(transfer, missing_declared_param_is_named)
{
    make_outputs();
    char *params[] = {"acc", "recall"};
    const char *err = scan_error(OUT_ARTS, 2, params, 2);
    cr_assert(strstr(err, "'recall'") != NULL, "error: %s", err);
}

Test(transfer, output_param_over_64_KiB_is_refused)
{
    size_t len = 65537;
    char *big = xmalloc(len);
    memset(big, 'x', len);
    char *p = xasprintf("%s/huge", outdir);
    write_file(p, big, len, 0644);
    free(p);
    free(big);
    char *params[] = {"huge"};
    const char *err = scan_error(NULL, 0, params, 1);
    cr_assert(strstr(err, "'huge'") != NULL, "error: %s", err);
    cr_assert(strstr(err, "larger than") != NULL, "error: %s", err);
}

/* The limit is 64 KiB: a param of exactly 65,536 bytes is within it. */
Test(transfer, output_param_of_exactly_64_KiB_is_accepted)
{
    size_t len = 65536;
    char *big = xmalloc(len);
    memset(big, 'y', len);
    char *p = xasprintf("%s/edge", outdir);
    write_file(p, big, len, 0644);
    free(p);
    free(big);
    char *params[] = {"edge"};
    xfer_host_t h = host();
    xfer_out_t *x = xfer_out_start(&h, 10, outdir, NULL, 0, params, 1, out_done, &res);
    wait_done();
    xfer_out_cancel(&x);
    cr_assert_null(res.error, "a 65536-byte param was refused: %s", res.error);
    cr_assert_eq(res.n_params, 1);
    cr_assert_eq(strlen(find_param("edge")), len);
}

Test(transfer, output_names_cannot_leave_the_outputs_dir)
{
    char *outside = xasprintf("%s/secret", fx.dir);
    write_file(outside, "s3cret", 6, 0644);
    free(outside);
    char *arts[] = {"../secret"};
    const char *err = scan_error(arts, 1, NULL, 0);
    cr_assert(strstr(err, "bad output name") != NULL, "error: %s", err);
    result_free();
    char *params[] = {".."};
    err = scan_error(NULL, 0, params, 1);
    cr_assert(strstr(err, "bad output name") != NULL, "error: %s", err);
}

Test(transfer, restart_offers_again_and_uploads_from_the_start)
{
    make_outputs();
    xfer_host_t h = host();
    xfer_out_t *x = xfer_out_start(&h, 12, outdir, OUT_ARTS, 2, OUT_PARAMS, 3, out_done, &res);
    cr_assert(h_pump_until(fx.loop, have_offer, NULL, WAIT_MS));
    const out_file_t *wanted[] = {out_file("data/sub/b.bin")};
    want(x, 12, wanted, 1);
    settle();
    cr_assert_eq(fake.n_chunks, WINDOW);
    /* droverd restarted: it lost the half-received blob */
    xfer_out_restart(x);
    settle();
    cr_assert_eq(fake.n_offers, 2, "the offer is sent again");
    size_t next = fake.n_chunks;
    want(x, 12, wanted, 1);
    serve_blob(x, 12, wanted[0], &next, 3);
    wait_done();
    cr_assert_null(res.error, "%s", res.error);
    xfer_out_cancel(&x);
}

/* ------------------------------------------------------------ inputs */

typedef struct {
    uint8_t digest[DIGEST_LEN];
    uint8_t *data;
    size_t size;
} blob_t;

static blob_t blobs[8];
static size_t n_blobs;

static int add_blob(uint8_t *data, size_t size)
{
    cr_assert_lt(n_blobs, 8);
    blob_t *b = &blobs[n_blobs];
    b->data = data;
    b->size = size;
    digest_buffer(data, size, b->digest);
    return (int)n_blobs++;
}

static int blob_index(ProtobufCBinaryData d)
{
    for (size_t i = 0; i < n_blobs; i++)
        if (same(d, blobs[i].digest))
            return (int)i;
    return -1;
}

static void blobs_free(void)
{
    for (size_t i = 0; i < n_blobs; i++)
        free(blobs[i].data);
    n_blobs = 0;
}

/* Put a blob into the agent's cache as if fetched earlier. */
static void cache_put(int b)
{
    char *p = cache_file(blobs[b].digest);
    write_file(p, blobs[b].data, blobs[b].size, 0644);
    free(p);
}

static Drover__FileEntry *entry(const char *path, uint32_t mode, int b)
{
    Drover__FileEntry *e = xmalloc(sizeof *e);
    drover__file_entry__init(e);
    e->path = xstrdup(path);
    e->mode = mode;
    e->size = blobs[b].size;
    e->digest.len = DIGEST_LEN;
    e->digest.data = xmalloc(DIGEST_LEN);
    memcpy(e->digest.data, blobs[b].digest, DIGEST_LEN);
    return e;
}

static Drover__InputArtifact *input(const char *local, const char *name, bool is_dir,
                                    Drover__FileEntry **files, size_t n)
{
    Drover__InputArtifact *in = xmalloc(sizeof *in);
    drover__input_artifact__init(in);
    in->local = xstrdup(local);
    Drover__Artifact *a = xmalloc(sizeof *a);
    drover__artifact__init(a);
    a->name = xstrdup(name);
    a->is_dir = is_dir;
    a->files = xcalloc(n, sizeof *a->files);
    for (size_t i = 0; i < n; i++) {
        a->files[a->n_files++] = files[i];
        a->size += files[i]->size;
    }
    in->artifact = a;
    return in;
}

static void inputs_free(Drover__InputArtifact **ins, size_t n)
{
    for (size_t i = 0; i < n; i++)
        drover__input_artifact__free_unpacked(ins[i], NULL);
}

enum { B_SH, B_EMPTY, B_A, B_M };

/* The blobs of the main input test: a script, an empty file, a big binary
 * (over the window) and a model. */
static void make_blobs(void)
{
    const char *sh = "#!/bin/sh\necho hi\n";
    cr_assert_eq(add_blob((uint8_t *)xstrdup(sh), strlen(sh)), B_SH);
    cr_assert_eq(add_blob(xmalloc(1), 0), B_EMPTY);
    size_t asz = 9 * CHUNK + 5;
    cr_assert_eq(add_blob(random_bytes(asz, 21), asz), B_A);
    cr_assert_eq(add_blob(random_bytes(300000, 22), 300000), B_M);
}

/* ds: a directory (script, empty file, the big blob twice under different
 * modes); model: one file. */
static size_t make_inputs(Drover__InputArtifact **ins)
{
    Drover__FileEntry *files[] = {entry("b.sh", 0755, B_SH), entry("empty", 0644, B_EMPTY),
                                  entry("x/a.bin", 0640, B_A), entry("x/y/dup.bin", 0600, B_A)};
    ins[0] = input("data", "ds", true, files, 4);
    Drover__FileEntry *m[] = {entry("", 0600, B_M)};
    ins[1] = input("model", "model", false, m, 1);
    return 2;
}

typedef struct {
    int fetched[16]; /* blob indexes in fetch order */
    size_t n_fetched;
    uint64_t last_ack[16];
    size_t max_unacked_bytes;
} served_t;

/* Play droverd for fetches until done() is called: answer each
 * FetchRequest with chunks of at most CHUNK bytes, at most WINDOW chunks
 * ahead of the agent's acks. corrupt: a blob index whose first chunk gets
 * one byte flipped (-1: none). */
static void serve_fetches(xfer_in_t *x, uint64_t attempt, int corrupt, served_t *sv)
{
    memset(sv, 0, sizeof *sv);
    size_t next_fetch = 0, next_ack = 0;
    int cur = -1;
    uint64_t sent = 0, acked = 0;
    ev_timer tick;
    ev_timer_init(&tick, h_tick_cb, 0.01, 0.01);
    ev_timer_start(fx.loop, &tick);
    int64_t deadline = util_mono_ms() + WAIT_MS;
    while (res.calls == 0) {
        cr_assert_lt(util_mono_ms(), deadline, "input transfer stalled");
        while (next_ack < fake.n_acks) {
            const Drover__ChunkAck *a = fake.acks[next_ack++];
            cr_assert_geq(cur, 0, "an ack before any fetch");
            cr_assert(same(a->digest, blobs[cur].digest), "an ack for another blob");
            cr_assert_eq(a->attempt_id, attempt);
            cr_assert_gt(a->end, acked, "acks go forward");
            cr_assert_leq(a->end, sent, "ack beyond what was sent");
            acked = a->end;
            sv->last_ack[sv->n_fetched - 1] = acked;
        }
        while (next_fetch < fake.n_fetches) {
            const Drover__FetchRequest *f = fake.fetches[next_fetch++];
            cr_assert_eq(f->attempt_id, attempt);
            cr_assert(cur < 0 || acked == blobs[cur].size,
                      "asked for the next blob before the current one was written");
            cur = blob_index(f->digest);
            cr_assert_geq(cur, 0, "fetch of an unknown blob");
            cr_assert_lt(sv->n_fetched, 16);
            sv->fetched[sv->n_fetched++] = cur;
            sent = acked = 0;
        }
        while (cur >= 0 && sent < blobs[cur].size && sent - acked < (uint64_t)WINDOW * CHUNK) {
            size_t len = blobs[cur].size - sent < CHUNK ? blobs[cur].size - sent : CHUNK;
            uint8_t *copy = xmalloc(len);
            memcpy(copy, blobs[cur].data + sent, len);
            if (cur == corrupt && sent == 0)
                copy[len / 2] ^= 0x40;
            Drover__BlobChunk c = DROVER__BLOB_CHUNK__INIT;
            c.attempt_id = attempt;
            c.digest.data = blobs[cur].digest;
            c.digest.len = DIGEST_LEN;
            c.offset = sent;
            c.size = blobs[cur].size;
            c.data.data = copy;
            c.data.len = len;
            xfer_in_chunk(x, &c);
            free(copy);
            sent += len;
            if (sent - acked > sv->max_unacked_bytes)
                sv->max_unacked_bytes = sent - acked;
        }
        ev_run(fx.loop, EVRUN_ONCE);
    }
    ev_timer_stop(fx.loop, &tick);
    settle();
}

static void expect_file(const char *path, int b, mode_t mode)
{
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s missing", path);
    cr_assert(S_ISREG(st.st_mode), "%s is not a regular file", path);
    cr_assert_eq(st.st_mode & 0777, mode, "%s: mode %o, want %o", path, st.st_mode & 0777,
                 (unsigned)mode);
    size_t len;
    char *text = read_all(path, &len);
    cr_assert_eq(len, blobs[b].size, "%s: %zu bytes, want %zu", path, len, blobs[b].size);
    cr_assert(len == 0 || memcmp(text, blobs[b].data, len) == 0, "%s: wrong content", path);
    free(text);
}

static void expect_materialized(const char *dir)
{
    char *p;
    expect_file(p = xasprintf("%s/data/b.sh", dir), B_SH, 0755);
    free(p);
    expect_file(p = xasprintf("%s/data/empty", dir), B_EMPTY, 0644);
    free(p);
    expect_file(p = xasprintf("%s/data/x/a.bin", dir), B_A, 0640);
    free(p);
    expect_file(p = xasprintf("%s/data/x/y/dup.bin", dir), B_A, 0600);
    free(p);
    expect_file(p = xasprintf("%s/model", dir), B_M, 0600);
    free(p);
}

Test(transfer, inputs_are_fetched_verified_cached_and_materialized)
{
    make_blobs();
    Drover__InputArtifact *ins[2];
    size_t n = make_inputs(ins);
    xfer_host_t h = host();
    xfer_in_t *x = xfer_in_start(&h, 31, ins, n, indir, in_done, &res);
    inputs_free(ins, n); /* the session keeps its own copy */
    served_t sv;
    serve_fetches(x, 31, -1, &sv);
    cr_assert_eq(res.calls, 1);
    cr_assert_null(res.error, "inputs failed: %s", res.error);

    /* each missing blob once (the big one is listed twice; the empty one
     * needs no transfer), in manifest order */
    cr_assert_eq(sv.n_fetched, 3, "%zu fetches", sv.n_fetched);
    cr_assert_eq(sv.fetched[0], B_SH);
    cr_assert_eq(sv.fetched[1], B_A);
    cr_assert_eq(sv.fetched[2], B_M);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(sv.last_ack[i], blobs[sv.fetched[i]].size, "blob %zu: acked up to %lu of %zu",
                     i, (unsigned long)sv.last_ack[i], blobs[sv.fetched[i]].size);
    cr_assert_eq(sv.max_unacked_bytes, (uint64_t)WINDOW * CHUNK,
                 "the big blob kept a full window in flight");

    expect_materialized(indir);
    /* the cache holds every blob under its digest, and no temp files */
    for (int b = 0; b < (int)n_blobs; b++) {
        char *p = cache_file(blobs[b].digest);
        size_t len;
        char *text = read_all(p, &len);
        cr_assert_eq(len, blobs[b].size, "cache %s", p);
        cr_assert(len == 0 || memcmp(text, blobs[b].data, len) == 0, "cache %s content", p);
        free(text);
        free(p);
    }
    char *tmp = xasprintf("%s/tmp", cachedir);
    cr_assert_eq(count_entries(tmp), 0, "temp files left in %s", tmp);
    free(tmp);
    xfer_in_cancel(&x);
    cr_assert_null(x);

    /* a second attempt with the same inputs fetches nothing */
    char *indir2 = xasprintf("%s/task2/inputs", fx.dir);
    n = make_inputs(ins);
    size_t fetches_before = fake.n_fetches;
    x = xfer_in_start(&h, 32, ins, n, indir2, in_done, &res);
    inputs_free(ins, n);
    result_free();
    wait_done();
    cr_assert_null(res.error, "%s", res.error);
    cr_assert_eq(fake.n_fetches, fetches_before, "cached blobs were fetched again");
    expect_materialized(indir2);
    free(indir2);
    xfer_in_cancel(&x);
    blobs_free();
}

Test(transfer, only_blobs_missing_from_the_cache_are_fetched)
{
    make_blobs();
    cache_put(B_A);
    cache_put(B_SH);
    Drover__InputArtifact *ins[2];
    size_t n = make_inputs(ins);
    xfer_host_t h = host();
    xfer_in_t *x = xfer_in_start(&h, 33, ins, n, indir, in_done, &res);
    inputs_free(ins, n);
    served_t sv;
    serve_fetches(x, 33, -1, &sv);
    cr_assert_null(res.error, "%s", res.error);
    cr_assert_eq(sv.n_fetched, 1);
    cr_assert_eq(sv.fetched[0], B_M);
    expect_materialized(indir);
    xfer_in_cancel(&x);
    blobs_free();
}

Test(transfer, corrupted_chunk_fails_with_a_digest_mismatch)
{
    make_blobs();
    Drover__InputArtifact *ins[2];
    size_t n = make_inputs(ins);
    xfer_host_t h = host();
    xfer_in_t *x = xfer_in_start(&h, 34, ins, n, indir, in_done, &res);
    inputs_free(ins, n);
    served_t sv;
    serve_fetches(x, 34, B_A, &sv);
    cr_assert_not_null(res.error, "a corrupted blob was accepted");
    cr_assert(strstr(res.error, "digest mismatch") != NULL, "error: %s", res.error);
    char *p = cache_file(blobs[B_A].digest);
    cr_assert_not(exists(p), "the corrupted blob entered the cache");
    free(p);
    p = xasprintf("%s/data/x/a.bin", indir);
    cr_assert_not(exists(p), "a corrupted input was materialized");
    free(p);
    /* a late chunk changes nothing */
    Drover__BlobChunk c = DROVER__BLOB_CHUNK__INIT;
    c.attempt_id = 34;
    c.digest.data = blobs[B_M].digest;
    c.digest.len = DIGEST_LEN;
    c.size = blobs[B_M].size;
    c.data.data = blobs[B_M].data;
    c.data.len = CHUNK;
    xfer_in_chunk(x, &c);
    settle();
    cr_assert_eq(res.calls, 1);
    xfer_in_cancel(&x);
    settle();
    char *tmp = xasprintf("%s/tmp", cachedir);
    cr_assert_eq(count_entries(tmp), 0, "the corrupted temp file was left in %s", tmp);
    free(tmp);
    blobs_free();
}

Test(transfer, manifest_paths_cannot_leave_the_inputs_dir)
{
    make_blobs();
    cache_put(B_SH);
    const char *bad[] = {"../evil", "x/../../evil", "/evil", "x/./../../evil", "", "x//evil"};
    char *outside1 = xasprintf("%s/task/evil", fx.dir);
    char *outside2 = xasprintf("%s/evil", fx.dir);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Drover__FileEntry *files[] = {entry(bad[i], 0755, B_SH)};
        Drover__InputArtifact *in = input("data", "ds", true, files, 1);
        xfer_host_t h = host();
        xfer_in_t *x = xfer_in_start(&h, 40 + i, &in, 1, indir, in_done, &res);
        inputs_free(&in, 1);
        wait_done();
        cr_assert_not_null(res.error, "path '%s' accepted", bad[i]);
        cr_assert(strstr(res.error, "escapes") != NULL, "path '%s': error %s", bad[i], res.error);
        cr_assert_not(exists(outside1), "'%s' wrote %s", bad[i], outside1);
        cr_assert_not(exists(outside2), "'%s' wrote %s", bad[i], outside2);
        cr_assert_eq(fake.n_fetches, 0);
        xfer_in_cancel(&x);
        result_free();
    }
    /* the local name is checked too */
    const char *bad_local[] = {"..", "../model", "a/b", "."};
    for (size_t i = 0; i < sizeof bad_local / sizeof *bad_local; i++) {
        Drover__FileEntry *files[] = {entry("", 0644, B_SH)};
        Drover__InputArtifact *in = input(bad_local[i], "m", false, files, 1);
        xfer_host_t h = host();
        xfer_in_t *x = xfer_in_start(&h, 50 + i, &in, 1, indir, in_done, &res);
        inputs_free(&in, 1);
        wait_done();
        cr_assert_not_null(res.error, "local name '%s' accepted", bad_local[i]);
        cr_assert(strstr(res.error, "bad name") != NULL, "error: %s", res.error);
        xfer_in_cancel(&x);
        result_free();
    }
    char *model_outside = xasprintf("%s/task/model", fx.dir);
    cr_assert_not(exists(model_outside), "a bad local name wrote outside the inputs dir");
    free(model_outside);
    free(outside1);
    free(outside2);
    blobs_free();
}

Test(transfer, missing_blob_on_the_scheduler_fails_the_fetch)
{
    make_blobs();
    Drover__InputArtifact *ins[2];
    size_t n = make_inputs(ins);
    xfer_host_t h = host();
    xfer_in_t *x = xfer_in_start(&h, 60, ins, n, indir, in_done, &res);
    inputs_free(ins, n);
    cr_assert(h_pump_until(fx.loop, have_fetch, NULL, WAIT_MS));
    Drover__BlobDone d = DROVER__BLOB_DONE__INIT;
    d.attempt_id = 60;
    d.digest = fake.fetches[0]->digest;
    d.ok = false;
    d.error = "no such blob in the store";
    xfer_in_blob_done(x, &d);
    wait_done();
    cr_assert_not_null(res.error);
    cr_assert(strstr(res.error, "no such blob in the store") != NULL, "error: %s", res.error);
    xfer_in_cancel(&x);
    blobs_free();
}

/* The file at path holds exactly text. */
static void assert_content(const char *path, const char *text)
{
    char *got = NULL;
    size_t len = 0;
    cr_assert_eq(util_read_file(path, 1024, &got, &len), 0, "%s", path);
    cr_assert(len == strlen(text) && memcmp(got, text, len) == 0, "%s: '%.*s', not '%s'", path,
              (int)len, got, text);
    free(got);
}

/* A checkpoint snapshot is the directory as it was when taken: a save that
 * replaces last.pt by rename afterwards does not change it, and the temp
 * files of the save idiom and dot-files are not part of it. */
Test(transfer, snapshot_is_the_checkpoint_as_it_was)
{
    char *ck = xasprintf("%s/ck", fx.dir), *sub = xasprintf("%s/ck/sub", fx.dir);
    cr_assert_eq(util_mkdir_p(sub, 0755), 0);
    char *last = xasprintf("%s/last.pt", ck), *tmp = xasprintf("%s/last.pt.tmp", ck);
    char *hidden = xasprintf("%s/.lock", ck), *opt = xasprintf("%s/opt.bin", sub);
    char *subtmp = xasprintf("%s/x.tmp", sub);
    write_file(last, "epoch 1", 7, 0600);
    write_file(tmp, "half of epoch 2", 15, 0644);
    write_file(hidden, "x", 1, 0644);
    write_file(opt, "adam 1", 6, 0644);
    write_file(subtmp, "y", 1, 0644);
    char *snap = xasprintf("%s/snap", fx.dir), err[512];
    cr_assert_eq(xfer_snapshot(ck, snap, err, sizeof err), 0, "%s", err);

    write_file(tmp, "epoch 2", 7, 0644); /* the next save lands */
    cr_assert_eq(rename(tmp, last), 0);
    cr_assert_eq(unlink(opt), 0); /* replaced, not rewritten in place */
    write_file(opt, "adam 2!", 7, 0644);

    char *p = xasprintf("%s/last.pt", snap);
    assert_content(p, "epoch 1");
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the file's mode is kept");
    free(p);
    p = xasprintf("%s/sub/opt.bin", snap);
    assert_content(p, "adam 1");
    free(p);
    const char *left_out[] = {"last.pt.tmp", ".lock", "sub/x.tmp"};
    for (size_t i = 0; i < 3; i++) {
        p = xasprintf("%s/%s", snap, left_out[i]);
        cr_assert_eq(access(p, F_OK), -1, "%s is not part of the snapshot", left_out[i]);
        free(p);
    }

    /* A link could point outside the task dir: refused, nothing left. */
    char *lnk = xasprintf("%s/escape", ck), *snap2 = xasprintf("%s/snap2", fx.dir);
    cr_assert_eq(symlink("/etc/passwd", lnk), 0);
    cr_assert_lt(xfer_snapshot(ck, snap2, err, sizeof err), 0);
    cr_assert(strstr(err, "symbolic link 'escape'"), "%s", err);
    cr_assert_eq(access(snap2, F_OK), -1, "a failed snapshot is removed");
    free(ck), free(sub), free(last), free(tmp), free(hidden), free(opt), free(subtmp);
    free(snap), free(lnk), free(snap2);
}

/* Put a blob of size bytes into cache dir c, last used `age` seconds ago. */
static void lru_put(const char *c, char fill, size_t size, int age)
{
    char *data = xmalloc(size);
    memset(data, fill, size);
    uint8_t d[DIGEST_LEN];
    digest_buffer(data, size, d);
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    char *p = xasprintf("%s/%.2s/%s", c, hex, hex);
    write_file(p, data, size, 0644);
    struct timespec t[2] = {{.tv_sec = time(NULL) - age}, {.tv_sec = time(NULL) - age}};
    cr_assert_eq(utimensat(AT_FDCWD, p, t, 0), 0);
    free(p);
    free(data);
}

static size_t cache_files(const char *c)
{
    char *cmd = xasprintf("find %s -type f | wc -l", c);
    FILE *f = popen(cmd, "r");
    size_t n = 0;
    cr_assert_eq(fscanf(f, "%zu", &n), 1);
    pclose(f);
    free(cmd);
    return n;
}

/* The cache keeps at most its bound: the least recently used blobs go
 * first, and what goes is counted. */
Test(transfer, cache_evicts_least_recently_used)
{
    char *c = xasprintf("%s/lru", fx.dir);
    lru_put(c, 'a', 1000, 300); /* oldest */
    lru_put(c, 'b', 1000, 200);
    lru_put(c, 'c', 1000, 100);
    xfer_cache_t *cache = xfer_cache_new(c, 2500);
    xfer_cache_prune(cache);
    xfer_cache_stats_t st;
    xfer_cache_stats(cache, &st);
    cr_assert_eq(st.evictions, 1);
    cr_assert_eq(st.evicted_bytes, 1000);
    cr_assert_eq(st.bytes, 2000);
    cr_assert_eq(cache_files(c), 2);
    uint8_t d[DIGEST_LEN];
    char buf[1000], hex[DIGEST_HEX_LEN + 1];
    memset(buf, 'a', sizeof buf);
    digest_buffer(buf, sizeof buf, d);
    digest_hex(d, hex);
    char *p = xasprintf("%s/%.2s/%s", c, hex, hex);
    cr_assert_eq(access(p, F_OK), -1, "the least recently used blob is the one evicted");
    free(p);
    xfer_cache_prune(cache); /* under the bound: nothing more */
    xfer_cache_stats(cache, &st);
    cr_assert_eq(st.evictions, 1);
    xfer_cache_destroy(&cache);
    free(c);
}
