/* blobs — moving blobs between droverd and agents, and API reads of them
 * (the store itself, its references and sweep: blobstore.c).
 *
 * An upload is written under blobs/tmp/ and renamed into place only after
 * the digest checked out and the data was fsync'd, so a blob that exists
 * is always whole; a crash leaves at most a temp file, removed at the
 * next start.
 *
 * Transfers run over the agents socket in CHUNK-sized pieces. The receiver
 * acknowledges each chunk once it is written; the sender keeps at most
 * WINDOW unacknowledged chunks (credit), so memory stays bounded on both
 * sides whatever the blob's size, and heartbeats interleave with data.
 * Every read, write, hash, fsync and unlink runs on the worker thread.
 * A finished upload queues a BLOB_OP_NEW (blobstore.c) so the sweep of
 * unreferenced blobs spares it until the step reports.
 */
#include "sched_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "util.h"

#define CHUNK    (256 * 1024)
#define WINDOW   8
#define MAX_BLOB (1ULL << 40)

/* One blob moving between droverd and an agent for one attempt. */
typedef struct xfer xfer_t;
struct xfer {
    sched_t *s;
    char *key; /* "attempt:hex" */
    char agent[64];
    uint64_t attempt_id;
    uint8_t digest[DIGEST_LEN];
    bool upload; /* agent → droverd, else droverd → agent (fetch) */
    uint64_t size;
    uint64_t next;  /* upload: next offset expected; fetch: next offset to read */
    uint64_t acked; /* fetch: bytes the agent has written */
    int fd;
    char *tmp_path;
    digest_ctx_t *hash;
    unsigned jobs; /* worker jobs in flight */
    bool cancelled;
};

typedef struct {
    xfer_t *x;
    uint64_t offset;
    size_t len;
    uint8_t *data;
    bool last;
    int error; /* 0 or -errno */
    char reason[512];
} chunk_job_t;

int blobs_init(sched_t *s)
{
    s->blobs.xfers = zhashx_new();
    return blobstore_init(s);
}

/* ------------------------------------------------------------ sessions */

static char *xfer_key(uint64_t attempt_id, const uint8_t *digest, bool upload)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(digest, hex);
    return xasprintf("%c%" PRIu64 ":%s", upload ? 'u' : 'f', attempt_id, hex);
}

static void xfer_free(xfer_t *x)
{
    if (x->fd >= 0)
        close(x->fd);
    if (x->tmp_path) {
        unlink(x->tmp_path);
        free(x->tmp_path);
    }
    digest_abort(x->hash);
    free(x->key);
    free(x);
}

/* End a session; freed now or when its last worker job comes back. */
static void xfer_end(sched_t *s, xfer_t *x)
{
    if (!x->cancelled) {
        x->cancelled = true;
        zhashx_delete(s->blobs.xfers, x->key);
    }
    if (x->jobs == 0)
        xfer_free(x);
}

static bool valid_digest(ProtobufCBinaryData d)
{
    return d.len == DIGEST_LEN;
}

/* The task whose current attempt is attempt_id on agent a, or NULL. */
static task_t *attempt_task(sched_t *s, agent_t *a, uint64_t attempt_id)
{
    task_t *t = idmap_get(s->dag.attempts, attempt_id);
    return t && t->agent == a && dag_current_attempt(t)->id == attempt_id ? t : NULL;
}

/* retry: not ok for droverd's own reasons; the agent offers it again. */
static void queue_done(sched_t *s, agent_t *a, uint64_t attempt_id, const uint8_t *digest, bool ok,
                       const char *error, bool retry)
{
    agent_out_t *out = outbound_batch(&s->out, a);
    Drover__BlobDone *d = xmalloc(sizeof *d);
    drover__blob_done__init(d);
    d->attempt_id = attempt_id;
    d->digest.data = xmalloc(DIGEST_LEN);
    memcpy(d->digest.data, digest, DIGEST_LEN);
    d->digest.len = DIGEST_LEN;
    d->ok = ok;
    d->retry = retry;
    d->error = xstrdup(error ? error : "");
    out->done = xrealloc(out->done, (out->n_done + 1) * sizeof *out->done);
    out->done[out->n_done++] = d;
}

/* ------------------------------------------------------------ uploads */

void blobs_offer(sched_t *s, agent_t *a, const Drover__UploadOffer *o)
{
    if (!attempt_task(s, a, o->attempt_id)) {
        /* Not current (cancelled, superseded, handed back): no blob is
         * wanted, and the agent is told to drop the attempt, or it would
         * offer the upload again forever. */
        outbound_kill(&s->out, a, o->attempt_id);
        return;
    }
    agent_out_t *out = outbound_batch(&s->out, a);
    Drover__UploadWant *w = xmalloc(sizeof *w);
    drover__upload_want__init(w);
    w->attempt_id = o->attempt_id;
    w->digests = xcalloc(o->n_digests, sizeof *w->digests);
    for (size_t i = 0; i < o->n_digests; i++) {
        uint64_t size, refs;
        if (!valid_digest(o->digests[i]))
            continue;
        if (store_blob_get(s->store, o->digests[i].data, &size, &refs) == 0) {
            /* stored once, whoever produced it; touch it so the sweep of
             * unreferenced blobs spares it until the step reports */
            blobstore_queue_op(s, BLOB_OP_NEW, o->digests[i].data, 0, size);
            continue;
        }
        ProtobufCBinaryData *d = &w->digests[w->n_digests++];
        d->data = xmalloc(DIGEST_LEN);
        memcpy(d->data, o->digests[i].data, DIGEST_LEN);
        d->len = DIGEST_LEN;
    }
    out->wants = xrealloc(out->wants, (out->n_wants + 1) * sizeof *out->wants);
    out->wants[out->n_wants++] = w;
}

/* A write error of job j: what (and errno) in its reason, or, when the
 * state dir's disk is full, that (with the bytes left) instead. Worker. */
static void write_failed(chunk_job_t *j, const char *what, int err)
{
    char note[sizeof j->reason - 64];
    j->error = -err;
    if (util_disk_full(j->x->s->cfg.state_dir, "state dir", note, sizeof note))
        snprintf(j->reason, sizeof j->reason, "%.40s: %s", what, note);
    else
        snprintf(j->reason, sizeof j->reason, "%s: %s", what, strerror(err));
}

static void write_chunk(void *arg)
{
    chunk_job_t *j = arg;
    xfer_t *x = j->x;
    if (x->fd < 0) {
        x->fd = open(x->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (x->fd < 0) {
            write_failed(j, "creating blob", errno);
            return;
        }
    }
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = pwrite(x->fd, j->data + done, j->len - done, (off_t)(j->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            write_failed(j, "writing blob", errno);
            return;
        }
        done += (size_t)n;
    }
    digest_update(x->hash, j->data, j->len);
    if (!j->last)
        return;
    uint8_t got[DIGEST_LEN];
    digest_final(x->hash, got);
    x->hash = NULL;
    if (memcmp(got, x->digest, DIGEST_LEN) != 0) {
        j->error = -EBADMSG;
        snprintf(j->reason, sizeof j->reason, "content does not match its digest");
        return;
    }
    if (fsync(x->fd) < 0) {
        write_failed(j, "fsync", errno);
        return;
    }
    char *path = blobstore_path(x->s, x->digest);
    char *dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
    util_mkdir_p(dir, 0750);
    if (rename(x->tmp_path, path) < 0) {
        write_failed(j, "renaming blob into place", errno);
    } else {
        free(x->tmp_path);
        x->tmp_path = NULL;
        /* the rename itself must survive a crash before we record it */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(dir);
    free(path);
}

static void queue_chunk_ack(sched_t *s, agent_t *a, xfer_t *x, uint64_t end)
{
    agent_out_t *out = outbound_batch(&s->out, a);
    Drover__ChunkAck *ack = xmalloc(sizeof *ack);
    drover__chunk_ack__init(ack);
    ack->attempt_id = x->attempt_id;
    ack->digest.data = xmalloc(DIGEST_LEN);
    memcpy(ack->digest.data, x->digest, DIGEST_LEN);
    ack->digest.len = DIGEST_LEN;
    ack->end = end;
    out->chunk_acks = xrealloc(out->chunk_acks, (out->n_chunk_acks + 1) * sizeof *out->chunk_acks);
    out->chunk_acks[out->n_chunk_acks++] = ack;
}

static void write_done(void *arg)
{
    chunk_job_t *j = arg;
    xfer_t *x = j->x;
    sched_t *s = x->s;
    x->jobs--;
    agent_t *a = x->cancelled ? NULL : fleet_find(&s->fleet, x->agent);
    if (!a) {
        xfer_end(s, x);
    } else if (j->error) {
        /* A blob that does not match its digest is the sender's; anything
         * else (a full disk, an I/O error) is droverd's own, never the
         * step's: the agent keeps its outputs and offers them again. */
        bool ours = j->error != -EBADMSG;
        if (ours)
            log_error("upload of a blob from %s (attempt %" PRIu64 ") failed: %s; the agent "
                      "offers it again",
                      x->agent, x->attempt_id, j->reason);
        else
            log_warn("upload of a blob from %s (attempt %" PRIu64 ") failed: %s", x->agent,
                     x->attempt_id, j->reason);
        queue_done(s, a, x->attempt_id, x->digest, false, j->reason, ours);
        xfer_end(s, x);
    } else {
        queue_chunk_ack(s, a, x, j->offset + j->len);
        if (j->last) {
            blobstore_queue_op(s, BLOB_OP_NEW, x->digest, 0, x->size);
            queue_done(s, a, x->attempt_id, x->digest, true, NULL, false);
            xfer_end(s, x);
        }
    }
    free(j->data);
    free(j);
}

void blobs_chunk_in(sched_t *s, agent_t *a, const Drover__BlobChunk *c)
{
    if (!valid_digest(c->digest) || c->size > MAX_BLOB || c->data.len > 4 * CHUNK ||
        c->offset + c->data.len > c->size || !attempt_task(s, a, c->attempt_id))
        return;
    char *key = xfer_key(c->attempt_id, c->digest.data, true);
    xfer_t *x = zhashx_lookup(s->blobs.xfers, key);
    if (!x && c->offset == 0) {
        x = xcalloc(1, sizeof *x);
        x->s = s;
        x->key = key;
        key = NULL;
        snprintf(x->agent, sizeof x->agent, "%s", a->name);
        x->attempt_id = c->attempt_id;
        memcpy(x->digest, c->digest.data, DIGEST_LEN);
        x->upload = true;
        x->size = c->size;
        x->fd = -1;
        x->hash = digest_begin();
        x->tmp_path = xasprintf("%s/blobs/tmp/%s", s->cfg.state_dir, x->key);
        zhashx_insert(s->blobs.xfers, x->key, x);
    }
    free(key);
    if (!x)
        return; /* mid-blob chunk of a session we do not have: the agent restarts it */
    if (c->offset != x->next) {
        if (c->offset < x->next)
            queue_chunk_ack(s, a, x, x->next); /* a re-send: say how far we are */
        return;
    }
    chunk_job_t *j = xcalloc(1, sizeof *j);
    j->x = x;
    j->offset = c->offset;
    j->len = c->data.len;
    j->data = xmalloc(j->len ? j->len : 1);
    if (j->len) /* an empty blob arrives as one empty chunk */
        memcpy(j->data, c->data.data, j->len);
    j->last = c->offset + c->data.len == x->size;
    x->next += c->data.len;
    x->jobs++;
    worker_submit(s->worker, write_chunk, write_done, j);
}

/* ------------------------------------------------------------ fetches */

static void read_chunk(void *arg)
{
    chunk_job_t *j = arg;
    xfer_t *x = j->x;
    if (x->fd < 0) {
        char *path = blobstore_path(x->s, x->digest);
        x->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (x->fd < 0) {
            j->error = -errno;
            snprintf(j->reason, sizeof j->reason, "blob missing from the store: %s",
                     strerror(errno));
        }
        free(path);
        if (j->error)
            return;
    }
    j->data = xmalloc(j->len ? j->len : 1);
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = pread(x->fd, j->data + done, j->len - done, (off_t)(j->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            j->error = n < 0 ? -errno : -EIO;
            snprintf(j->reason, sizeof j->reason, "reading blob: %s",
                     n < 0 ? strerror(errno) : "file shorter than its record");
            return;
        }
        done += (size_t)n;
    }
}

static void pump_fetch(sched_t *s, xfer_t *x);

static void read_done(void *arg)
{
    chunk_job_t *j = arg;
    xfer_t *x = j->x;
    sched_t *s = x->s;
    x->jobs--;
    agent_t *a = x->cancelled ? NULL : fleet_find(&s->fleet, x->agent);
    if (!a) {
        xfer_end(s, x);
        free(j->data);
    } else if (j->error) {
        queue_done(s, a, x->attempt_id, x->digest, false, j->reason, false);
        xfer_end(s, x);
        free(j->data);
    } else {
        agent_out_t *out = outbound_batch(&s->out, a);
        Drover__BlobChunk *c = xmalloc(sizeof *c);
        drover__blob_chunk__init(c);
        c->attempt_id = x->attempt_id;
        c->digest.data = xmalloc(DIGEST_LEN);
        memcpy(c->digest.data, x->digest, DIGEST_LEN);
        c->digest.len = DIGEST_LEN;
        c->offset = j->offset;
        c->data.data = j->data; /* the message owns it now */
        c->data.len = j->len;
        c->size = x->size;
        out->chunks = xrealloc(out->chunks, (out->n_chunks + 1) * sizeof *out->chunks);
        out->chunks[out->n_chunks++] = c;
    }
    free(j);
}

static void pump_fetch(sched_t *s, xfer_t *x)
{
    while (x->next < x->size && x->next - x->acked < (uint64_t)WINDOW * CHUNK) {
        chunk_job_t *j = xcalloc(1, sizeof *j);
        j->x = x;
        j->offset = x->next;
        j->len = x->size - x->next < CHUNK ? (size_t)(x->size - x->next) : CHUNK;
        x->next += j->len;
        x->jobs++;
        worker_submit(s->worker, read_chunk, read_done, j);
    }
}

void blobs_fetch(sched_t *s, agent_t *a, const Drover__FetchRequest *f)
{
    uint64_t size, refs;
    if (!valid_digest(f->digest) || !attempt_task(s, a, f->attempt_id))
        return;
    if (store_blob_get(s->store, f->digest.data, &size, &refs) < 0) {
        queue_done(s, a, f->attempt_id, f->digest.data, false, "no such blob in the store", false);
        return;
    }
    char *key = xfer_key(f->attempt_id, f->digest.data, false);
    xfer_t *old = zhashx_lookup(s->blobs.xfers, key);
    if (old)
        xfer_end(s, old); /* the agent restarted this fetch */
    xfer_t *x = xcalloc(1, sizeof *x);
    x->s = s;
    x->key = key;
    snprintf(x->agent, sizeof x->agent, "%s", a->name);
    x->attempt_id = f->attempt_id;
    memcpy(x->digest, f->digest.data, DIGEST_LEN);
    x->size = size;
    x->fd = -1;
    zhashx_insert(s->blobs.xfers, x->key, x);
    if (size == 0) {
        queue_done(s, a, x->attempt_id, x->digest, true, NULL, false);
        xfer_end(s, x);
        return;
    }
    pump_fetch(s, x);
}

void blobs_chunk_ack(sched_t *s, agent_t *a, const Drover__ChunkAck *ack)
{
    if (!valid_digest(ack->digest))
        return;
    char *key = xfer_key(ack->attempt_id, ack->digest.data, false);
    xfer_t *x = zhashx_lookup(s->blobs.xfers, key);
    free(key);
    if (!x || strcmp(x->agent, a->name) != 0 || ack->end <= x->acked || ack->end > x->next)
        return;
    x->acked = ack->end;
    if (x->acked == x->size) {
        queue_done(s, a, x->attempt_id, x->digest, true, NULL, false);
        xfer_end(s, x);
        return;
    }
    pump_fetch(s, x);
}

void blobs_agent_gone(sched_t *s, agent_t *a)
{
    zlistx_t *keys = zhashx_keys(s->blobs.xfers);
    for (char *k = zlistx_first(keys); k; k = zlistx_next(keys)) {
        xfer_t *x = zhashx_lookup(s->blobs.xfers, k);
        if (x && strcmp(x->agent, a->name) == 0)
            xfer_end(s, x);
    }
    zlistx_destroy(&keys);
}

/* ------------------------------------------------------------ API reads */

typedef struct {
    sched_t *s;
    zframe_t *identity;
    char *path;
    uint64_t offset;
    size_t max;
    uint8_t *data;
    size_t len;
    char error[200];
} api_read_t;

static void api_read_work(void *arg)
{
    api_read_t *r = arg;
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(r->error, sizeof r->error, "blob not in the store: %s", strerror(errno));
        return;
    }
    r->data = xmalloc(r->max ? r->max : 1);
    ssize_t n = pread(fd, r->data, r->max, (off_t)r->offset);
    if (n < 0)
        snprintf(r->error, sizeof r->error, "reading blob: %s", strerror(errno));
    else
        r->len = (size_t)n;
    close(fd);
}

static void api_read_done(void *arg)
{
    api_read_t *r = arg;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    resp.error = r->error;
    resp.blob.data = r->data;
    resp.blob.len = r->len;
    size_t n = drover__api_response__get_packed_size(&resp);
    uint8_t *buf = xmalloc(n);
    drover__api_response__pack(&resp, buf);
    sched_queue_reply(r->s, r->identity, buf, n);
    free(r->data);
    free(r->path);
    free(r);
}

void blobs_api_read(sched_t *s, zframe_t *identity, const uint8_t digest[DIGEST_LEN],
                    uint64_t offset, size_t max)
{
    api_read_t *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->identity = identity;
    r->path = blobstore_path(s, digest);
    r->offset = offset;
    r->max = max;
    worker_submit(s->worker, api_read_work, api_read_done, r);
}

void blobs_shutdown(sched_t *s)
{
    if (!s->blobs.xfers)
        return;
    zlistx_t *keys = zhashx_keys(s->blobs.xfers);
    for (char *k = zlistx_first(keys); k; k = zlistx_next(keys))
        xfer_end(s, zhashx_lookup(s->blobs.xfers, k));
    zlistx_destroy(&keys);
    zhashx_destroy(&s->blobs.xfers);
}
