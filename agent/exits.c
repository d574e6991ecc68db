/* exits — see exits.h. One append-only journal, <work_dir>/exits.journal,
 * of records {u8 kind, u64 attempt id, u32 length, packed report}: kind 1
 * keeps a report, kind 2 drops the attempt's. A file per report would cost
 * an inode created and deleted per step, which ext4 makes slow under churn
 * (its allocator skips recently deleted inodes: the same scan that made the
 * agent recycle attempt dirs), so records are appended instead, and the
 * journal is rewritten with only the live ones (a temporary renamed into
 * place) when it has grown to several times their size. The live reports
 * are kept in memory (they are few: those droverd has not acknowledged) so
 * that the rewrite needs no read. The worker does every write, in order.
 */
#include "exits.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idmap.h"
#include "log.h"
#include "util.h"

#define HEADER       13            /* kind, attempt id, length */
#define MAX_REPORT   (64u << 20)   /* an EXITED report is far smaller */
#define MAX_JOURNAL  (1024u << 20) /* what a start reads at most */
#define COMPACT_FROM (1u << 20)    /* rewrite when the journal is this big... */
#define COMPACT_X    4             /* ...and this many times the live records */
enum { KEEP = 1, DROP = 2 };

typedef struct {
    size_t len;
    uint8_t data[]; /* one record: header and packed report */
} record_t;

struct exits {
    char *path, *tmp;
    worker_t *worker;
    int fd;            /* the journal, O_APPEND (worker only, after open) */
    idmap_t *live;     /* attempt id → record_t of a kept report (loop only) */
    size_t live_bytes; /* their records' total size */
    size_t file_bytes; /* the journal's size once queued writes are done */
};

typedef struct {
    exits_t *e;
    uint8_t *data; /* records to append, or the whole new journal */
    size_t len;
    bool rewrite;
} job_t;

static record_t *record_new(int kind, uint64_t id, const uint8_t *payload, size_t len)
{
    record_t *r = xmalloc(sizeof *r + HEADER + len);
    r->len = HEADER + len;
    uint32_t n = (uint32_t)len;
    r->data[0] = (uint8_t)kind;
    memcpy(r->data + 1, &id, 8);
    memcpy(r->data + 9, &n, 4);
    if (len)
        memcpy(r->data + HEADER, payload, len);
    return r;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void work(void *arg)
{
    job_t *j = arg;
    exits_t *e = j->e;
    if (!j->rewrite) {
        if (e->fd >= 0 && !write_all(e->fd, j->data, j->len))
            log_warn("exits: appending to %s: %s", e->path, strerror(errno));
        return;
    }
    /* Not fatal either way: only a crash before the acks would need it. */
    int fd = open(e->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write_all(fd, j->data, j->len);
    if (fd >= 0 && close(fd) < 0)
        ok = false;
    if (!ok || rename(e->tmp, e->path) < 0) {
        log_warn("exits: rewriting %s: %s", e->path, strerror(errno));
        unlink(e->tmp);
        return;
    }
    if (e->fd >= 0)
        close(e->fd);
    e->fd = open(e->path, O_WRONLY | O_APPEND | O_CLOEXEC);
}

static void done(void *arg)
{
    job_t *j = arg;
    free(j->data);
    free(j);
}

static void submit(exits_t *e, uint8_t *data, size_t len, bool rewrite)
{
    job_t *j = xmalloc(sizeof *j);
    *j = (job_t){e, data, len, rewrite};
    if (!rewrite)
        e->file_bytes += len;
    worker_submit(e->worker, work, done, j);
}

static void append(exits_t *e, const record_t *r)
{
    uint8_t *copy = xmalloc(r->len);
    memcpy(copy, r->data, r->len);
    submit(e, copy, r->len, false);
}

struct gather {
    uint8_t *buf;
    size_t len;
};

static void gather(uint64_t id, void *value, void *arg)
{
    struct gather *g = arg;
    const record_t *r = value;
    memcpy(g->buf + g->len, r->data, r->len);
    g->len += r->len;
}

/* Queue a journal of the live records alone. */
static void rewrite(exits_t *e)
{
    struct gather g = {xmalloc(e->live_bytes ? e->live_bytes : 1), 0};
    idmap_each(e->live, gather, &g);
    e->file_bytes = g.len;
    submit(e, g.buf, g.len, true);
}

exits_t *exits_open(const char *work_dir, worker_t *worker)
{
    exits_t *e = xcalloc(1, sizeof *e);
    e->path = xasprintf("%s/exits.journal", work_dir);
    e->tmp = xasprintf("%s/exits.journal.tmp", work_dir);
    e->worker = worker;
    e->live = idmap_new();
    e->fd = open(e->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (e->fd < 0)
        log_warn("exits: %s: %s (exit reports are kept in memory only)", e->path, strerror(errno));
    return e;
}

void exits_save(exits_t *e, const Drover__Report *rep)
{
    if (!e)
        return;
    size_t len = drover__report__get_packed_size(rep);
    uint8_t *packed = xmalloc(len ? len : 1);
    drover__report__pack(rep, packed);
    record_t *r = record_new(KEEP, rep->attempt_id, packed, len);
    free(packed);
    record_t *old = idmap_del(e->live, rep->attempt_id);
    if (old) {
        e->live_bytes -= old->len;
        free(old);
    }
    idmap_put(e->live, rep->attempt_id, r);
    e->live_bytes += r->len;
    append(e, r);
}

void exits_drop(exits_t *e, uint64_t attempt_id)
{
    record_t *r = e ? idmap_del(e->live, attempt_id) : NULL;
    if (!r)
        return;
    e->live_bytes -= r->len;
    free(r);
    record_t *drop = record_new(DROP, attempt_id, NULL, 0);
    append(e, drop);
    free(drop);
    if (e->file_bytes >= COMPACT_FROM && e->file_bytes >= COMPACT_X * e->live_bytes)
        rewrite(e);
}

static void free_record(uint64_t id, void *value, void *arg)
{
    free(value);
}

struct load {
    exits_t *e;
    void (*fn)(Drover__Report *rep, void *arg);
    void *arg;
    uint64_t *bad; /* ids whose record is not a report */
    size_t n_bad, loaded;
};

static void load_one(uint64_t id, void *value, void *arg)
{
    struct load *ld = arg;
    const record_t *r = value;
    Drover__Report *rep = drover__report__unpack(NULL, r->len - HEADER, r->data + HEADER);
    if (rep && rep->attempt_id == id && rep->kind == DROVER__REPORT_KIND__REPORT_EXITED) {
        ld->fn(rep, ld->arg);
        ld->loaded++;
        return;
    }
    if (rep)
        drover__report__free_unpacked(rep, NULL);
    ld->bad[ld->n_bad++] = id;
}

size_t exits_load(exits_t *e, void (*fn)(Drover__Report *rep, void *arg), void *arg)
{
    if (!e)
        return 0;
    char *text = NULL;
    size_t len = 0;
    if (util_read_file(e->path, MAX_JOURNAL, &text, &len) < 0)
        return 0;
    /* Replay: the last word on each attempt counts. A record cut short (the
     * agent died mid-append) ends the journal. */
    const uint8_t *p = (const uint8_t *)text, *end = p + len;
    while (end - p >= HEADER) {
        uint64_t id;
        uint32_t n;
        memcpy(&id, p + 1, 8);
        memcpy(&n, p + 9, 4);
        if ((p[0] != KEEP && p[0] != DROP) || n > MAX_REPORT || (size_t)(end - p - HEADER) < n)
            break;
        record_t *old = idmap_del(e->live, id);
        if (old) {
            e->live_bytes -= old->len;
            free(old);
        }
        if (p[0] == KEEP) {
            record_t *r = record_new(KEEP, id, p + HEADER, n);
            idmap_put(e->live, id, r);
            e->live_bytes += r->len;
        }
        p += HEADER + n;
    }
    if (p != end)
        log_warn("exits: %s: %zu bytes at the end are not a whole record: ignored", e->path,
                 (size_t)(end - p));
    free(text);
    /* Hand over what unpacks to an EXITED report of its own attempt; forget
     * the rest. Then start the journal anew with what was handed over. */
    struct load ld = {e, fn, arg, xcalloc(idmap_size(e->live) + 1, sizeof(uint64_t)), 0, 0};
    idmap_each(e->live, load_one, &ld);
    for (size_t i = 0; i < ld.n_bad; i++) {
        record_t *r = idmap_del(e->live, ld.bad[i]);
        e->live_bytes -= r->len;
        free(r);
    }
    if (ld.n_bad)
        log_warn("exits: %zu records of %s are not exit reports: forgotten", ld.n_bad, e->path);
    free(ld.bad);
    rewrite(e);
    return ld.loaded;
}

void exits_close(exits_t **ep)
{
    if (!ep || !*ep)
        return;
    exits_t *e = *ep;
    if (e->fd >= 0)
        close(e->fd);
    idmap_each(e->live, free_record, NULL);
    idmap_destroy(&e->live);
    free(e->path);
    free(e->tmp);
    free(e);
    *ep = NULL;
}
