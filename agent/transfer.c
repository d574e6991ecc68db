/* transfer — see transfer.h.
 *
 * Threading: session fields are owned by the loop thread, except the
 * w_* fields, which only worker jobs touch (jobs run one at a time, in
 * order). Every job carries the session's generation; a restart bumps it,
 * so results of jobs queued before the restart are ignored, and the first
 * write job of the new generation starts the temp file and hash afresh.
 */
#include "transfer.h"

#include <czmq.h>

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "path.h"
#include "util.h"

#define CHUNK    (256 * 1024)
#define WINDOW   8
#define STALL_MS 10000
/* droverd could not store an upload (its disk is full): offer it again
 * after 1 s, doubling up to 30 s, for as long as it takes. */
#define STORE_RETRY_MIN_MS 1000
#define STORE_RETRY_MAX_MS 30000
#define MAX_PARAM          65536
#define MAX_FILES          100000
#define MAX_DEPTH          64

/* ------------------------------------------------------------ common */

static char *cache_path(const char *cache_dir, const uint8_t *digest)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(digest, hex);
    return xasprintf("%s/%.2s/%s", cache_dir, hex, hex);
}

static ProtobufCBinaryData dup_digest(const uint8_t *d)
{
    ProtobufCBinaryData b = {.len = DIGEST_LEN, .data = xmalloc(DIGEST_LEN)};
    memcpy(b.data, d, DIGEST_LEN);
    return b;
}

static bool same_digest(ProtobufCBinaryData b, const uint8_t *d)
{
    return b.len == DIGEST_LEN && memcmp(b.data, d, DIGEST_LEN) == 0;
}

/* ------------------------------------------------------------ cache */

struct xfer_cache {
    char *dir;
    uint64_t limit;
    pthread_mutex_t mu; /* guards everything below */
    zhashx_t *pins;     /* hex digest → pin count (as a pointer) */
    xfer_cache_stats_t st;
};

xfer_cache_t *xfer_cache_new(const char *dir, uint64_t limit)
{
    xfer_cache_t *c = xcalloc(1, sizeof *c);
    c->dir = xstrdup(dir);
    c->limit = c->st.limit = limit;
    pthread_mutex_init(&c->mu, NULL);
    c->pins = zhashx_new();
    return c;
}

void xfer_cache_destroy(xfer_cache_t **cp)
{
    xfer_cache_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    *cp = NULL;
    zhashx_destroy(&c->pins);
    pthread_mutex_destroy(&c->mu);
    free(c->dir);
    free(c);
}

void xfer_cache_stats(xfer_cache_t *c, xfer_cache_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

static void cache_pin(xfer_cache_t *c, const uint8_t *digest, int by)
{
    if (!c)
        return;
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(digest, hex);
    pthread_mutex_lock(&c->mu);
    uintptr_t n = (uintptr_t)zhashx_lookup(c->pins, hex) + (uintptr_t)(intptr_t)by;
    if (n)
        zhashx_update(c->pins, hex, (void *)n);
    else
        zhashx_delete(c->pins, hex);
    pthread_mutex_unlock(&c->mu);
}

static void cache_count(xfer_cache_t *c, uint64_t hits, uint64_t misses)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->st.hits += hits;
    c->st.misses += misses;
    pthread_mutex_unlock(&c->mu);
}

typedef struct {
    char name[DIGEST_HEX_LEN + 1];
    uint64_t size;
    struct timespec used;
} cached_t;

static int cmp_used(const void *a, const void *b)
{
    const struct timespec *x = &((const cached_t *)a)->used, *y = &((const cached_t *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return x->tv_sec < y->tv_sec ? -1 : 1;
    return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

void xfer_cache_prune(xfer_cache_t *c)
{
    if (!c)
        return;
    cached_t *all = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    DIR *top = opendir(c->dir);
    for (struct dirent *e; top && (e = readdir(top));) {
        if (strlen(e->d_name) != 2) /* "tmp", ".", ".." */
            continue;
        char *sub = xasprintf("%s/%s", c->dir, e->d_name);
        DIR *d = opendir(sub);
        for (struct dirent *f; d && (f = readdir(d));) {
            struct stat st;
            if (strlen(f->d_name) != DIGEST_HEX_LEN || fstatat(dirfd(d), f->d_name, &st, 0) < 0 ||
                !S_ISREG(st.st_mode))
                continue;
            if (n == cap)
                all = xrealloc(all, (cap = cap ? cap * 2 : 64) * sizeof *all);
            memcpy(all[n].name, f->d_name, DIGEST_HEX_LEN + 1);
            all[n].size = (uint64_t)st.st_size;
            all[n++].used = st.st_mtim;
            total += (uint64_t)st.st_size;
        }
        if (d)
            closedir(d);
        free(sub);
    }
    if (top)
        closedir(top);
    uint64_t evicted = 0, bytes = 0;
    if (c->limit && total > c->limit) {
        qsort(all, n, sizeof *all, cmp_used);
        for (size_t i = 0; i < n && total > c->limit; i++) {
            pthread_mutex_lock(&c->mu);
            bool pinned = zhashx_lookup(c->pins, all[i].name) != NULL;
            pthread_mutex_unlock(&c->mu);
            if (pinned)
                continue; /* in use: an input session still needs it */
            char *p = xasprintf("%s/%.2s/%s", c->dir, all[i].name, all[i].name);
            if (unlink(p) == 0) {
                total -= all[i].size;
                bytes += all[i].size;
                evicted++;
            }
            free(p);
        }
    }
    free(all);
    pthread_mutex_lock(&c->mu);
    c->st.evictions += evicted;
    c->st.evicted_bytes += bytes;
    c->st.bytes = total;
    xfer_cache_stats_t st = c->st;
    pthread_mutex_unlock(&c->mu);
    if (evicted)
        log_info("cache: %" PRIu64 " least recently used blobs (%.1f MiB) evicted; %.1f MiB of "
                 "%.1f MiB used; hits %" PRIu64 ", misses %" PRIu64 ", evictions %" PRIu64,
                 evicted, bytes / 1048576.0, total / 1048576.0, c->limit / 1048576.0, st.hits,
                 st.misses, st.evictions);
}

/* ------------------------------------------------------------ inputs */

typedef struct {
    uint8_t digest[DIGEST_LEN];
    uint64_t size;
} need_t;

struct xfer_in {
    xfer_host_t h;
    uint64_t attempt_id;
    char *inputs_dir;
    Drover__InputArtifact **inputs; /* deep copies */
    size_t n_inputs;
    need_t *need; /* blobs to fetch */
    size_t n_need, cur;
    uint64_t received; /* bytes of need[cur] handed to the worker */
    unsigned gen, jobs;
    bool cancelled, finished;
    bool fetching; /* a FetchRequest is out (not checking or materializing) */
    int64_t last_progress;
    void (*done)(void *arg, const char *error);
    void *arg;
    /* worker-only */
    unsigned w_gen;
    int w_fd;
    digest_ctx_t *w_hash;
    char *w_tmp;
};

typedef struct {
    xfer_in_t *x;
    unsigned gen;
    uint64_t offset;
    uint8_t *data;
    size_t len;
    bool last;
    char error[256];
} in_job_t;

static void in_free(xfer_in_t *x)
{
    for (size_t i = 0; i < x->n_need; i++)
        cache_pin(x->h.cache, x->need[i].digest, -1);
    if (x->w_fd >= 0)
        close(x->w_fd);
    if (x->w_tmp) {
        unlink(x->w_tmp);
        free(x->w_tmp);
    }
    digest_abort(x->w_hash);
    for (size_t i = 0; i < x->n_inputs; i++) {
        free(x->inputs[i]->local);
        drover__artifact__free_unpacked(x->inputs[i]->artifact, NULL);
        free(x->inputs[i]);
    }
    free(x->inputs);
    free(x->need);
    free(x->inputs_dir);
    free(x);
}

static void in_finish(xfer_in_t *x, const char *error)
{
    if (x->finished)
        return;
    x->finished = true;
    x->done(x->arg, error);
}

static void in_job_release(xfer_in_t *x)
{
    x->jobs--;
    if (x->cancelled && x->jobs == 0)
        in_free(x);
}

/* Worker: which needed blobs are already in the cache (size 0 ones are
 * created here). Marks found ones by zeroing their size to UINT64_MAX. */
static void in_check_work(void *arg)
{
    in_job_t *j = arg;
    xfer_in_t *x = j->x;
    uint64_t hits = 0;
    for (size_t i = 0; i < x->n_need; i++) {
        char *p = cache_path(x->h.cache_dir, x->need[i].digest);
        struct stat st;
        if (stat(p, &st) == 0 && (uint64_t)st.st_size == x->need[i].size) {
            x->need[i].size = UINT64_MAX;
            utimensat(AT_FDCWD, p, NULL, 0); /* used now: last to be evicted */
            hits++;
        } else if (x->need[i].size == 0) {
            char *dir = xstrndup(p, (size_t)(strrchr(p, '/') - p));
            util_mkdir_p(dir, 0755);
            int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0) {
                close(fd);
                x->need[i].size = UINT64_MAX;
            }
            free(dir);
        }
        free(p);
    }
    uint64_t misses = 0;
    for (size_t i = 0; i < x->n_need; i++)
        misses += x->need[i].size != UINT64_MAX;
    cache_count(x->h.cache, hits, misses);
}

static void in_materialize_work(void *arg);
static void in_materialize_done(void *arg);

static void in_next(xfer_in_t *x)
{
    while (x->cur < x->n_need && x->need[x->cur].size == UINT64_MAX)
        x->cur++;
    if (x->cur == x->n_need) {
        x->fetching = false;
        in_job_t *j = xcalloc(1, sizeof *j);
        j->x = x;
        j->gen = x->gen;
        x->jobs++;
        worker_submit(x->h.worker, in_materialize_work, in_materialize_done, j);
        return;
    }
    x->received = 0;
    x->last_progress = util_mono_ms();
    x->fetching = true;
    Drover__FetchRequest *f = xmalloc(sizeof *f);
    drover__fetch_request__init(f);
    f->attempt_id = x->attempt_id;
    f->digest = dup_digest(x->need[x->cur].digest);
    x->h.send_fetch(x->h.host, f);
}

static void in_check_done(void *arg)
{
    in_job_t *j = arg;
    xfer_in_t *x = j->x;
    free(j);
    if (!x->cancelled)
        in_next(x);
    in_job_release(x);
}

static int cmp_need(const void *a, const void *b)
{
    return memcmp(((const need_t *)a)->digest, ((const need_t *)b)->digest, DIGEST_LEN);
}

xfer_in_t *xfer_in_start(const xfer_host_t *h, uint64_t attempt_id,
                         Drover__InputArtifact *const *inputs, size_t n, const char *inputs_dir,
                         void (*done)(void *arg, const char *error), void *arg)
{
    xfer_in_t *x = xcalloc(1, sizeof *x);
    x->h = *h;
    x->attempt_id = attempt_id;
    x->inputs_dir = xstrdup(inputs_dir);
    x->done = done;
    x->arg = arg;
    x->w_fd = -1;
    x->inputs = xcalloc(n, sizeof *x->inputs);
    for (size_t i = 0; i < n; i++) {
        Drover__InputArtifact *in = xmalloc(sizeof *in);
        drover__input_artifact__init(in);
        in->local = xstrdup(inputs[i]->local);
        in->artifact = util_pb_copy(inputs[i]->artifact);
        x->inputs[x->n_inputs++] = in;
        for (size_t k = 0; in->artifact && k < in->artifact->n_files; k++) {
            const Drover__FileEntry *f = in->artifact->files[k];
            if (f->digest.len != DIGEST_LEN)
                continue;
            if ((x->n_need & (x->n_need - 1)) == 0) /* capacity doubles at powers of two */
                x->need = xrealloc(x->need, (x->n_need ? x->n_need * 2 : 8) * sizeof *x->need);
            memcpy(x->need[x->n_need].digest, f->digest.data, DIGEST_LEN);
            x->need[x->n_need++].size = f->size;
        }
    }
    /* Each content once, however many files hold it: sorted, then unique. */
    if (x->n_need) {
        qsort(x->need, x->n_need, sizeof *x->need, cmp_need);
        size_t kept = 1;
        for (size_t i = 1; i < x->n_need; i++) {
            if (cmp_need(&x->need[kept - 1], &x->need[i]) != 0)
                x->need[kept++] = x->need[i];
        }
        x->n_need = kept;
    }
    for (size_t i = 0; i < x->n_need; i++) /* in use until the session is freed */
        cache_pin(x->h.cache, x->need[i].digest, +1);
    in_job_t *j = xcalloc(1, sizeof *j);
    j->x = x;
    x->jobs++;
    worker_submit(h->worker, in_check_work, in_check_done, j);
    return x;
}

static void in_write_work(void *arg)
{
    in_job_t *j = arg;
    xfer_in_t *x = j->x;
    const need_t *nd = &x->need[x->cur];
    if (j->gen != x->w_gen || x->w_fd < 0) {
        if (x->w_fd >= 0)
            close(x->w_fd);
        digest_abort(x->w_hash);
        if (!x->w_tmp) {
            char hex[DIGEST_HEX_LEN + 1];
            digest_hex(nd->digest, hex);
            char *tmpdir = xasprintf("%s/tmp", x->h.cache_dir);
            util_mkdir_p(tmpdir, 0755);
            x->w_tmp = xasprintf("%s/%" PRIu64 "-%s", tmpdir, x->attempt_id, hex);
            free(tmpdir);
        }
        x->w_fd = open(x->w_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        x->w_hash = digest_begin();
        x->w_gen = j->gen;
        if (x->w_fd < 0) {
            snprintf(j->error, sizeof j->error, "open(%s): %s", x->w_tmp, strerror(errno));
            return;
        }
    }
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = pwrite(x->w_fd, j->data + done, j->len - done, (off_t)(j->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(j->error, sizeof j->error, "writing input blob: %s", strerror(errno));
            return;
        }
        done += (size_t)n;
    }
    digest_update(x->w_hash, j->data, j->len);
    if (!j->last)
        return;
    uint8_t got[DIGEST_LEN];
    digest_final(x->w_hash, got);
    x->w_hash = NULL;
    close(x->w_fd);
    x->w_fd = -1;
    if (memcmp(got, nd->digest, DIGEST_LEN) != 0) {
        snprintf(j->error, sizeof j->error, "input blob arrived corrupted (digest mismatch)");
        return;
    }
    char *dest = cache_path(x->h.cache_dir, nd->digest);
    char *dir = xstrndup(dest, (size_t)(strrchr(dest, '/') - dest));
    util_mkdir_p(dir, 0755);
    if (rename(x->w_tmp, dest) < 0)
        snprintf(j->error, sizeof j->error, "rename into cache: %s", strerror(errno));
    free(x->w_tmp);
    x->w_tmp = NULL;
    free(dir);
    free(dest);
}

static void in_write_done(void *arg)
{
    in_job_t *j = arg;
    xfer_in_t *x = j->x;
    if (!x->cancelled && j->gen == x->gen && !x->finished) {
        if (j->error[0]) {
            in_finish(x, j->error);
        } else {
            x->last_progress = util_mono_ms();
            Drover__ChunkAck *a = xmalloc(sizeof *a);
            drover__chunk_ack__init(a);
            a->attempt_id = x->attempt_id;
            a->digest = dup_digest(x->need[x->cur].digest);
            a->end = j->offset + j->len;
            x->h.send_chunk_ack(x->h.host, a);
            if (j->last) {
                x->need[x->cur].size = UINT64_MAX;
                in_next(x);
            }
        }
    }
    free(j->data);
    free(j);
    in_job_release(x);
}

void xfer_in_chunk(xfer_in_t *x, const Drover__BlobChunk *c)
{
    if (x->finished || x->cur >= x->n_need || !same_digest(c->digest, x->need[x->cur].digest))
        return;
    const need_t *nd = &x->need[x->cur];
    if (c->offset != x->received || c->offset + c->data.len > nd->size)
        return; /* stale or out of order: the stall timer restarts the blob */
    in_job_t *j = xcalloc(1, sizeof *j);
    j->x = x;
    j->gen = x->gen;
    j->offset = c->offset;
    j->len = c->data.len;
    j->data = xmalloc(j->len ? j->len : 1);
    if (j->len)
        memcpy(j->data, c->data.data, j->len);
    j->last = c->offset + c->data.len == nd->size;
    x->received += c->data.len;
    x->jobs++;
    worker_submit(x->h.worker, in_write_work, in_write_done, j);
}

void xfer_in_blob_done(xfer_in_t *x, const Drover__BlobDone *d)
{
    if (x->finished || d->ok || x->cur >= x->n_need ||
        !same_digest(d->digest, x->need[x->cur].digest))
        return;
    char *why = xasprintf("fetching input: %s", d->error);
    in_finish(x, why);
    free(why);
}

void xfer_in_restart(xfer_in_t *x)
{
    if (x->finished || !x->fetching)
        return; /* checking or materializing: nothing on the wire */
    x->gen++;
    in_next(x);
}

void xfer_in_tick(xfer_in_t *x, int64_t now_ms)
{
    if (!x->finished && x->fetching && now_ms - x->last_progress > STALL_MS) {
        log_warn("attempt %" PRIu64 ": input transfer stalled; asking again", x->attempt_id);
        x->gen++;
        in_next(x);
    }
}

void xfer_in_cancel(xfer_in_t **xp)
{
    if (!xp || !*xp)
        return;
    xfer_in_t *x = *xp;
    *xp = NULL;
    x->cancelled = true;
    if (x->jobs == 0)
        in_free(x);
}

/* Copy src to dest (kernel-side copy; a link would let a step change the
 * cache through its input). */
static int copy_file(const char *src, const char *dest, uint32_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode & 0777 : 0644);
    if (out < 0) {
        int e = -errno;
        close(in);
        return e;
    }
    int rc = 0;
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
    }
    if (mode)
        fchmod(out, mode & 0777);
    close(in);
    close(out);
    return rc;
}

/* ------------------------------------------------------------ snapshots */

/* Whether the checkpoint rule leaves name out: dot-files and "*.tmp". */
static bool snapshot_skips(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n >= 4 && strcmp(name + n - 4, ".tmp") == 0);
}

/* Capture one file: a reflink clone (a true copy-on-write snapshot) where
 * the filesystem has one, else a hard link, else a copy. *mode remembers
 * what worked, so a filesystem without reflinks is asked once. */
static int capture_file(const char *src, const char *dest, const struct stat *st, int *mode)
{
    if (*mode == 0) {
        int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
            return -errno;
        int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 0777);
        if (out < 0) {
            int e = -errno;
            close(in);
            return e;
        }
        int rc = ioctl(out, FICLONE, in) < 0 ? -errno : 0;
        close(in);
        close(out);
        if (rc == 0)
            return 0;
        unlink(dest);
        *mode = 1; /* EOPNOTSUPP, EXDEV, EINVAL...: links from now on */
    }
    if (*mode == 1) {
        if (link(src, dest) == 0)
            return 0;
        if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)
            return -errno;
        *mode = 2;
    }
    return copy_file(src, dest, st->st_mode);
}

static int snapshot_dir(const char *src, const char *dest, int depth, int *mode, char *err,
                        size_t errlen)
{
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "checkpoint is nested too deeply");
        return -ELOOP;
    }
    if (mkdir(dest, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "snapshot %s: %s", dest, strerror(errno));
        return -errno;
    }
    DIR *d = opendir(src);
    if (!d) {
        snprintf(err, errlen, "reading checkpoint %s: %s", src, strerror(errno));
        return -errno;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (snapshot_skips(e->d_name)) /* also "." and ".." */
            continue;
        char *cs = xasprintf("%s/%s", src, e->d_name);
        char *cd = xasprintf("%s/%s", dest, e->d_name);
        struct stat st;
        if (lstat(cs, &st) < 0) {
            if (errno != ENOENT) { /* gone since readdir: not part of it */
                rc = -errno;
                snprintf(err, errlen, "reading checkpoint %s: %s", cs, strerror(errno));
            }
        } else if (S_ISDIR(st.st_mode)) {
            rc = snapshot_dir(cs, cd, depth + 1, mode, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            rc = capture_file(cs, cd, &st, mode);
            if (rc == -ENOENT) /* renamed away since readdir */
                rc = 0;
            else if (rc < 0)
                snprintf(err, errlen, "snapshot of %s: %s", cs, strerror(-rc));
        } else {
            snprintf(err, errlen,
                     "checkpoint contains %s '%s': only regular files and directories are stored",
                     S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file", e->d_name);
            rc = -EINVAL;
        }
        free(cs);
        free(cd);
    }
    closedir(d);
    return rc;
}

int xfer_snapshot(const char *src, const char *dest, char *err, size_t errlen)
{
    static int mode; /* loop thread only: 0 reflink, 1 link, 2 copy */
    err[0] = '\0';
    int rc = snapshot_dir(src, dest, 0, &mode, err, errlen);
    if (rc < 0)
        util_rm_rf(dest);
    return rc;
}

static void in_materialize_work(void *arg)
{
    in_job_t *j = arg;
    xfer_in_t *x = j->x;
    for (size_t i = 0; i < x->n_inputs && !j->error[0]; i++) {
        const Drover__InputArtifact *in = x->inputs[i];
        const Drover__Artifact *a = in->artifact;
        if (!a || !path_is_component(in->local, 63, NULL)) {
            snprintf(j->error, sizeof j->error, "input '%s': bad name", in->local);
            break;
        }
        char *base = xasprintf("%s/%s", x->inputs_dir, in->local);
        if (a->is_dir)
            util_mkdir_p(base, 0755);
        for (size_t k = 0; k < a->n_files && !j->error[0]; k++) {
            const Drover__FileEntry *f = a->files[k];
            if (a->is_dir && !path_is_safe_relative(f->path)) {
                snprintf(j->error, sizeof j->error,
                         "input '%s': path '%.80s' escapes the task dir; refused", in->local,
                         f->path);
                break;
            }
            char *dest = a->is_dir ? xasprintf("%s/%s", base, f->path) : xstrdup(base);
            char *slash = strrchr(dest, '/');
            *slash = '\0';
            util_mkdir_p(dest, 0755);
            *slash = '/';
            char *src = cache_path(x->h.cache_dir, f->digest.data);
            int rc = f->digest.len == DIGEST_LEN ? copy_file(src, dest, f->mode) : -EINVAL;
            if (rc < 0)
                snprintf(j->error, sizeof j->error, "input '%s': %s: %s", in->local, f->path,
                         strerror(-rc));
            free(src);
            free(dest);
        }
        free(base);
    }
    xfer_cache_prune(x->h.cache); /* its blobs are copied out: bound the cache */
}

static void in_materialize_done(void *arg)
{
    in_job_t *j = arg;
    xfer_in_t *x = j->x;
    if (!x->cancelled)
        in_finish(x, j->error[0] ? j->error : NULL);
    free(j);
    in_job_release(x);
}

/* ------------------------------------------------------------ outputs */

typedef struct {
    uint8_t digest[DIGEST_LEN];
    uint64_t size;
    char *path; /* a file with this content */
} blob_src_t;

struct xfer_out {
    xfer_host_t h;
    uint64_t attempt_id;
    char *outputs_dir;
    char **names, **params;
    size_t n_names, n_params;
    /* scan results */
    Drover__Artifact **arts;
    size_t n_arts;
    Drover__KeyValue **vals;
    size_t n_vals;
    blob_src_t *blobs;
    size_t n_blobs;
    /* upload state */
    bool offered, wanted;
    size_t *queue; /* indexes into blobs */
    size_t n_queue, qpos;
    uint64_t sent, acked;
    unsigned gen, jobs;
    bool cancelled, finished;
    int64_t last_progress;
    int64_t retry_at, retry_ms; /* droverd asked to offer again then (mono) */
    char error[512];
    xfer_out_done_fn done;
    void *arg;
    xfer_memo_t *memo; /* checkpoints: digests already known (worker only) */
};

struct xfer_memo {
    zhashx_t *by_path; /* relative path → memo_entry_t */
    int racy_s;
};

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint8_t digest[DIGEST_LEN];
} memo_entry_t;

xfer_memo_t *xfer_memo_new(int racy_s)
{
    xfer_memo_t *m = xcalloc(1, sizeof *m);
    m->racy_s = racy_s;
    m->by_path = zhashx_new();
    zhashx_set_destructor(m->by_path, util_free_item);
    return m;
}

static void memo_free_work(void *arg)
{
    xfer_memo_t *m = arg;
    zhashx_destroy(&m->by_path);
    free(m);
}

void xfer_memo_release(const xfer_host_t *h, xfer_memo_t *m)
{
    if (m)
        worker_submit(h->worker, memo_free_work, NULL, m); /* after the scans queued before */
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* The digest of rel remembered for exactly this file state, if any. */
static bool memo_get(xfer_memo_t *m, const char *rel, const struct stat *st, uint8_t *digest)
{
    const memo_entry_t *e = m ? zhashx_lookup(m->by_path, rel) : NULL;
    if (!e || e->dev != st->st_dev || e->ino != st->st_ino || e->size != st->st_size ||
        !same_time(e->mtime, st->st_mtim))
        return false;
    memcpy(digest, e->digest, DIGEST_LEN);
    return true;
}

static void memo_put(xfer_memo_t *m, const char *rel, const struct stat *st, const uint8_t *digest,
                     uint64_t size_read)
{
    time_t now = time(NULL);
    if (!m || (uint64_t)st->st_size != size_read || st->st_mtim.tv_sec >= now - m->racy_s)
        return; /* changing, or too recent to tell a later write apart */
    memo_entry_t *e = xmalloc(sizeof *e);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    memcpy(e->digest, digest, DIGEST_LEN);
    zhashx_update(m->by_path, rel, e);
}

typedef struct {
    xfer_out_t *x;
    unsigned gen;
    size_t blob;
    uint64_t offset;
    size_t len;
    uint8_t *data;
    char error[256];
} out_job_t;

static void out_free(xfer_out_t *x)
{
    for (size_t i = 0; i < x->n_arts; i++)
        drover__artifact__free_unpacked(x->arts[i], NULL);
    free(x->arts);
    util_free_kvs(x->vals, x->n_vals);
    for (size_t i = 0; i < x->n_blobs; i++)
        free(x->blobs[i].path);
    free(x->blobs);
    free(x->queue);
    for (size_t i = 0; i < x->n_names; i++)
        free(x->names[i]);
    free(x->names);
    for (size_t i = 0; i < x->n_params; i++)
        free(x->params[i]);
    free(x->params);
    free(x->outputs_dir);
    free(x);
}

static void out_job_release(xfer_out_t *x)
{
    x->jobs--;
    if (x->cancelled && x->jobs == 0)
        out_free(x);
}

static void out_finish(xfer_out_t *x, const char *error)
{
    if (x->finished)
        return;
    x->finished = true;
    if (error)
        x->done(x->arg, NULL, 0, NULL, 0, error);
    else
        x->done(x->arg, x->arts, x->n_arts, x->vals, x->n_vals, NULL);
}

static int cmp_entry(const void *a, const void *b)
{
    const Drover__FileEntry *x = *(Drover__FileEntry *const *)a;
    const Drover__FileEntry *y = *(Drover__FileEntry *const *)b;
    return strcmp(x->path, y->path);
}

/* Worker: add one regular file to artifact a (path relative, "" for a
 * single-file artifact) and to the blob list. */
static int add_file(xfer_out_t *x, Drover__Artifact *a, const char *full, const char *rel,
                    const struct stat *st, char *err, size_t errlen)
{
    if (a->n_files >= MAX_FILES) {
        snprintf(err, errlen, "output '%s' has more than %d files", a->name, MAX_FILES);
        return -E2BIG;
    }
    Drover__FileEntry *e = xmalloc(sizeof *e);
    drover__file_entry__init(e);
    e->path = xstrdup(rel);
    e->mode = st->st_mode & 0777;
    e->digest.data = xmalloc(DIGEST_LEN);
    e->digest.len = DIGEST_LEN;
    int rc = 0;
    if (memo_get(x->memo, rel, st, e->digest.data)) {
        e->size = (uint64_t)st->st_size;
    } else {
        rc = digest_file(full, e->digest.data, &e->size);
        if (rc == 0)
            memo_put(x->memo, rel, st, e->digest.data, e->size);
    }
    a->files = xrealloc(a->files, (a->n_files + 1) * sizeof *a->files);
    a->files[a->n_files++] = e;
    if (rc < 0) {
        snprintf(err, errlen, "reading output %s: %s", full, strerror(-rc));
        return rc;
    }
    a->size += e->size;
    /* Duplicates are dropped once the scan is done (unique_blobs). */
    if ((x->n_blobs & (x->n_blobs - 1)) == 0) /* capacity doubles at powers of two */
        x->blobs = xrealloc(x->blobs, (x->n_blobs ? x->n_blobs * 2 : 8) * sizeof *x->blobs);
    memcpy(x->blobs[x->n_blobs].digest, e->digest.data, DIGEST_LEN);
    x->blobs[x->n_blobs].size = e->size;
    x->blobs[x->n_blobs++].path = xstrdup(full);
    return 0;
}

static int cmp_blob(const void *a, const void *b)
{
    return memcmp(((const blob_src_t *)a)->digest, ((const blob_src_t *)b)->digest, DIGEST_LEN);
}

/* Sort the scanned blobs by digest and keep one of each content, so the
 * offer names it once and xfer_out_want finds it by binary search (a
 * directory of 100,000 files is not a quadratic scan). */
static void unique_blobs(xfer_out_t *x)
{
    if (x->n_blobs == 0)
        return;
    qsort(x->blobs, x->n_blobs, sizeof *x->blobs, cmp_blob);
    size_t kept = 1;
    for (size_t i = 1; i < x->n_blobs; i++) {
        if (cmp_blob(&x->blobs[kept - 1], &x->blobs[i]) == 0)
            free(x->blobs[i].path);
        else
            x->blobs[kept++] = x->blobs[i];
    }
    x->n_blobs = kept;
}

static int walk(xfer_out_t *x, Drover__Artifact *a, const char *full, const char *rel, int depth,
                char *err, size_t errlen)
{
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "output '%s' is nested too deeply", a->name);
        return -ELOOP;
    }
    DIR *d = opendir(full);
    if (!d) {
        snprintf(err, errlen, "reading output %s: %s", full, strerror(errno));
        return -errno;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *cfull = xasprintf("%s/%s", full, e->d_name);
        char *crel = *rel ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
        struct stat st;
        if (lstat(cfull, &st) < 0) {
            snprintf(err, errlen, "reading output %s: %s", cfull, strerror(errno));
            rc = -errno;
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(x, a, cfull, crel, depth + 1, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(x, a, cfull, crel, &st, err, errlen);
        } else {
            snprintf(err, errlen,
                     "output '%s' contains %s '%s': only regular files and directories are "
                     "stored (a link could point outside the task dir)",
                     a->name, S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file", crel);
            rc = -EINVAL;
        }
        free(cfull);
        free(crel);
    }
    closedir(d);
    return rc;
}

static void out_scan_work(void *arg)
{
    out_job_t *j = arg;
    xfer_out_t *x = j->x;
    char *err = x->error;
    size_t errlen = sizeof x->error;
    if (err[0])
        return;
    x->arts = xcalloc(x->n_names, sizeof *x->arts);
    for (size_t i = 0; i < x->n_names && !err[0]; i++) {
        char *full = xasprintf("%s/%s", x->outputs_dir, x->names[i]);
        struct stat st;
        Drover__Artifact *a = xmalloc(sizeof *a);
        drover__artifact__init(a);
        a->name = xstrdup(x->names[i]);
        x->arts[x->n_arts++] = a;
        if (lstat(full, &st) < 0) {
            snprintf(err, errlen,
                     "declared output artifact '%s' was not written to $DROVER_OUTPUTS/%s",
                     x->names[i], x->names[i]);
        } else if (S_ISREG(st.st_mode)) {
            add_file(x, a, full, "", &st, err, errlen);
        } else if (S_ISDIR(st.st_mode)) {
            a->is_dir = true;
            if (walk(x, a, full, "", 0, err, errlen) == 0 && a->n_files)
                qsort(a->files, a->n_files, sizeof *a->files, cmp_entry);
        } else {
            snprintf(err, errlen, "output '%s' is not a regular file or directory", x->names[i]);
        }
        free(full);
        if (err[0])
            break;
        if (a->is_dir) { /* a directory's digest is its manifest's */
            size_t n = drover__artifact__get_packed_size(a);
            uint8_t *buf = xmalloc(n);
            drover__artifact__pack(a, buf);
            a->digest = dup_digest((uint8_t[DIGEST_LEN]){0});
            digest_buffer(buf, n, a->digest.data);
            free(buf);
        } else {
            a->digest = dup_digest(a->files[0]->digest.data);
        }
    }
    x->vals = xcalloc(x->n_params, sizeof *x->vals);
    for (size_t i = 0; i < x->n_params && !err[0]; i++) {
        char *full = xasprintf("%s/%s", x->outputs_dir, x->params[i]);
        char *text = NULL;
        size_t len = 0;
        struct stat st;
        int rc = lstat(full, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
        if (rc == 0)
            rc = util_read_file(full, MAX_PARAM, &text, &len);
        if (rc == -ENOENT)
            snprintf(err, errlen,
                     "declared output param '%s' was not written to $DROVER_OUTPUTS/%s",
                     x->params[i], x->params[i]);
        else if (rc == -EFBIG)
            snprintf(err, errlen, "output param '%s' is larger than %d bytes (use an artifact)",
                     x->params[i], MAX_PARAM);
        else if (rc < 0)
            snprintf(err, errlen, "output param '%s': %s", x->params[i], strerror(-rc));
        if (rc == 0) {
            if (len > 0 && text[len - 1] == '\n')
                text[--len] = '\0';
            x->vals[x->n_vals++] = util_kv_new(x->params[i], text);
        }
        free(text);
        free(full);
    }
    unique_blobs(x);
}

static void send_offer(xfer_out_t *x)
{
    Drover__UploadOffer *o = xmalloc(sizeof *o);
    drover__upload_offer__init(o);
    o->attempt_id = x->attempt_id;
    o->digests = xcalloc(x->n_blobs, sizeof *o->digests);
    o->sizes = xcalloc(x->n_blobs, sizeof *o->sizes);
    for (size_t i = 0; i < x->n_blobs; i++) {
        o->digests[i] = dup_digest(x->blobs[i].digest);
        o->sizes[i] = x->blobs[i].size;
    }
    o->n_digests = o->n_sizes = x->n_blobs;
    x->offered = true;
    x->wanted = false;
    x->last_progress = util_mono_ms();
    x->h.send_offer(x->h.host, o);
}

static void out_scan_done(void *arg)
{
    out_job_t *j = arg;
    xfer_out_t *x = j->x;
    free(j);
    if (!x->cancelled) {
        if (x->error[0])
            out_finish(x, x->error);
        else if (x->n_blobs == 0)
            out_finish(x, NULL);
        else
            send_offer(x);
    }
    out_job_release(x);
}

static xfer_out_t *out_start(const xfer_host_t *h, uint64_t attempt_id, const char *outputs_dir,
                             char *const *artifacts, size_t n_artifacts, char *const *params,
                             size_t n_params, xfer_memo_t *memo, xfer_out_done_fn done, void *arg)
{
    xfer_out_t *x = xcalloc(1, sizeof *x);
    x->memo = memo;
    x->h = *h;
    x->attempt_id = attempt_id;
    x->outputs_dir = xstrdup(outputs_dir);
    x->names = xcalloc(n_artifacts, sizeof *x->names);
    for (size_t i = 0; i < n_artifacts; i++)
        x->names[i] = xstrdup(artifacts[i]);
    x->n_names = n_artifacts;
    x->params = xcalloc(n_params, sizeof *x->params);
    for (size_t i = 0; i < n_params; i++)
        x->params[i] = xstrdup(params[i]);
    x->n_params = n_params;
    x->done = done;
    x->arg = arg;
    /* Names are paths under $DROVER_OUTPUTS: refuse anything that could
     * leave it (the scan then reports the error). */
    for (size_t i = 0; i < n_artifacts + n_params && !x->error[0]; i++) {
        const char *n = i < n_artifacts ? artifacts[i] : params[i - n_artifacts];
        if (!path_is_component(n, 63, NULL))
            snprintf(x->error, sizeof x->error, "bad output name '%.80s'", n);
    }
    out_job_t *j = xcalloc(1, sizeof *j);
    j->x = x;
    x->jobs++;
    worker_submit(h->worker, out_scan_work, out_scan_done, j);
    return x;
}

xfer_out_t *xfer_out_start(const xfer_host_t *h, uint64_t attempt_id, const char *outputs_dir,
                           char *const *artifacts, size_t n_artifacts, char *const *params,
                           size_t n_params, xfer_out_done_fn done, void *arg)
{
    return out_start(h, attempt_id, outputs_dir, artifacts, n_artifacts, params, n_params, NULL,
                     done, arg);
}

xfer_out_t *xfer_checkpoint_start(const xfer_host_t *h, uint64_t attempt_id, const char *dir,
                                  xfer_memo_t *memo, xfer_out_done_fn done, void *arg)
{
    char *names[] = {(char *)"checkpoint"};
    return out_start(h, attempt_id, dir, names, 1, NULL, 0, memo, done, arg);
}

static void out_read_work(void *arg)
{
    out_job_t *j = arg;
    const blob_src_t *b = &j->x->blobs[j->blob];
    int fd = open(b->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(j->error, sizeof j->error, "reading output %s: %s", b->path, strerror(errno));
        return;
    }
    j->data = xmalloc(j->len ? j->len : 1);
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = pread(fd, j->data + done, j->len - done, (off_t)(j->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(j->error, sizeof j->error, "output %s changed while uploading", b->path);
            break;
        }
        done += (size_t)n;
    }
    close(fd);
}

static void pump(xfer_out_t *x);

static void out_read_done(void *arg)
{
    out_job_t *j = arg;
    xfer_out_t *x = j->x;
    if (!x->cancelled && j->gen == x->gen && !x->finished) {
        if (j->error[0]) {
            out_finish(x, j->error);
        } else {
            Drover__BlobChunk *c = xmalloc(sizeof *c);
            drover__blob_chunk__init(c);
            c->attempt_id = x->attempt_id;
            c->digest = dup_digest(x->blobs[j->blob].digest);
            c->offset = j->offset;
            c->data.data = j->data;
            c->data.len = j->len;
            c->size = x->blobs[j->blob].size;
            j->data = NULL;
            x->h.send_chunk(x->h.host, c);
        }
    }
    free(j->data);
    free(j);
    out_job_release(x);
}

/* Keep up to WINDOW chunks of the current blob in flight. */
static void pump(xfer_out_t *x)
{
    if (x->qpos >= x->n_queue) {
        out_finish(x, NULL);
        return;
    }
    size_t b = x->queue[x->qpos];
    uint64_t size = x->blobs[b].size;
    if (size == 0 && x->sent == 0) { /* an empty blob: one empty chunk */
        x->sent = 1;
        out_job_t *j = xcalloc(1, sizeof *j);
        j->x = x;
        j->gen = x->gen;
        j->blob = b;
        x->jobs++;
        worker_submit(x->h.worker, out_read_work, out_read_done, j);
        return;
    }
    while (x->sent < size && x->sent - x->acked < (uint64_t)WINDOW * CHUNK) {
        out_job_t *j = xcalloc(1, sizeof *j);
        j->x = x;
        j->gen = x->gen;
        j->blob = b;
        j->offset = x->sent;
        j->len = size - x->sent < CHUNK ? (size_t)(size - x->sent) : CHUNK;
        x->sent += j->len;
        x->jobs++;
        worker_submit(x->h.worker, out_read_work, out_read_done, j);
    }
}

void xfer_out_want(xfer_out_t *x, const Drover__UploadWant *w)
{
    if (x->finished || !x->offered || x->wanted)
        return;
    x->wanted = true;
    x->gen++;
    free(x->queue);
    x->queue = xcalloc(w->n_digests + 1, sizeof *x->queue);
    x->n_queue = x->qpos = 0;
    for (size_t i = 0; i < w->n_digests; i++) {
        blob_src_t key;
        if (w->digests[i].len != DIGEST_LEN)
            continue;
        memcpy(key.digest, w->digests[i].data, DIGEST_LEN);
        const blob_src_t *b = bsearch(&key, x->blobs, x->n_blobs, sizeof *x->blobs, cmp_blob);
        if (b)
            x->queue[x->n_queue++] = (size_t)(b - x->blobs);
    }
    x->sent = x->acked = 0;
    x->last_progress = util_mono_ms();
    pump(x);
}

void xfer_out_chunk_ack(xfer_out_t *x, const Drover__ChunkAck *a)
{
    if (x->finished || !x->wanted || x->qpos >= x->n_queue ||
        !same_digest(a->digest, x->blobs[x->queue[x->qpos]].digest) || a->end <= x->acked ||
        a->end > x->sent)
        return;
    x->acked = a->end;
    x->last_progress = util_mono_ms();
    pump(x);
}

void xfer_out_blob_done(xfer_out_t *x, const Drover__BlobDone *d)
{
    if (x->finished || !x->wanted || x->qpos >= x->n_queue ||
        !same_digest(d->digest, x->blobs[x->queue[x->qpos]].digest))
        return;
    if (!d->ok && d->retry) {
        /* droverd's own trouble, not the step's: the outputs stay here and
         * are offered again (droverd keeps the blobs it already has). */
        x->retry_ms = x->retry_ms ? x->retry_ms * 2 : STORE_RETRY_MIN_MS;
        if (x->retry_ms > STORE_RETRY_MAX_MS)
            x->retry_ms = STORE_RETRY_MAX_MS;
        x->retry_at = util_mono_ms() + x->retry_ms;
        x->wanted = false; /* late chunk acks of this round are ignored */
        x->gen++;
        log_warn("attempt %" PRIu64 ": droverd could not store an upload: %s; offering again in "
                 "%.0fs",
                 x->attempt_id, d->error, x->retry_ms / 1000.0);
        return;
    }
    if (!d->ok) {
        char *why = xasprintf("uploading output: %s", d->error);
        out_finish(x, why);
        free(why);
        return;
    }
    x->retry_ms = 0;
    x->qpos++;
    x->sent = x->acked = 0;
    x->gen++;
    x->last_progress = util_mono_ms();
    pump(x);
}

void xfer_out_restart(xfer_out_t *x)
{
    if (!x->finished && x->offered) {
        x->gen++;
        x->retry_at = 0;
        send_offer(x);
    }
}

void xfer_out_tick(xfer_out_t *x, int64_t now_ms)
{
    if (!x->finished && x->retry_at) {
        if (now_ms >= x->retry_at)
            xfer_out_restart(x);
        return;
    }
    if (!x->finished && x->offered && now_ms - x->last_progress > STALL_MS) {
        log_warn("attempt %" PRIu64 ": output upload stalled; offering again", x->attempt_id);
        xfer_out_restart(x);
    }
}

void xfer_out_cancel(xfer_out_t **xp)
{
    if (!xp || !*xp)
        return;
    xfer_out_t *x = *xp;
    *xp = NULL;
    x->cancelled = true;
    if (x->jobs == 0)
        out_free(x);
}
