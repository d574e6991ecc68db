/* routes_files — a run's logs and artifacts over HTTP (README "HTTP API"):
 *   GET /api/v1/runs/{id}/logs/{task}?attempt=N&offset=N   text/plain
 *   GET /api/v1/runs/{id}/logs/{task}?follow=1             server-sent events
 *   GET /api/v1/runs/{id}/artifacts                        {"artifacts": [ArtifactView]}
 *   GET /api/v1/runs/{id}/artifacts/{task}/{name}          the bytes (a directory: a tar)
 *   POST /api/v1/runs/{id}/artifacts/{task}/{name}/ticket  a download ticket: {"url",
 *                                                          "expires_ms"}
 *   GET /api/v1/downloads/{ticket}                         the artifact, no token
 *
 * Download tickets are for a browser, which cannot send a bearer with a
 * plain link: the console asks for a ticket (with its token), then lets
 * the browser fetch the ticket's URL as an ordinary download, streamed to
 * disk — a checkpoint of gigabytes never sits in the tab's memory. A ticket
 * is 32 random bytes, used once, good for TICKET_TTL_MS, and carries its
 * maker's token: the download runs as that token (droverd checks it again,
 * so a token revoked meanwhile gets 401). At most TICKETS are outstanding.
 *
 * Every answer is streamed (web_stream) from droverd's paged requests
 * (LogsRequest, BlobRequest read_blob), a page at a time, on the
 * connection's own thread: MHD asks for more only when the client has taken
 * what came before, so a client that does not read holds at most a page
 * (PAGE bytes, plus one tar block) in drover-web, whatever the size. The
 * first request of each answer is made before the stream starts, so an
 * unknown run, step, attempt or artifact, or a refused token, is an HTTP
 * error (404, 401, 403) and not a cut stream; a failure after the headers
 * went out can only cut the connection (a short body: Content-Length, or
 * no final chunk), never end it as if complete.
 *
 * Logs: the attempt is pinned from the first answer (attempt 0 = the
 * latest), so a retry starting meanwhile does not splice two attempts.
 * Following (SSE): each chunk is one `event: log` whose `id:` is the byte
 * offset after it (Last-Event-ID, or ?offset=, resumes there), cut before
 * an incomplete UTF-8 sequence at its end (the rest comes with the next
 * chunk), so a character is never split between events; droverd is asked
 * again every POLL_MS while nothing comes (a step not started yet too),
 * with a `: ping` comment every PING_MS; `event: end` {"attempt", "exit_code",
 * "truncated"} when droverd says the attempt has ended and all was read.
 * A step droverd does not know yet (a fan-out item, made when its fan-out
 * expands) is waited for while the run goes on; a run that ends without
 * it ends the stream with `event: error` (code not_found).
 * A client that goes away is noticed between polls (POLLRDHUP on its
 * socket), so the thread and its droverd client are released at once.
 *
 * Artifacts: the digests of droverd's listing are checked as the bytes
 * stream: each file's last page is held back until its SHA-256 matches,
 * and a mismatch (or a short or overlong blob) cuts the connection. A
 * directory artifact streams as a tar (libarchive, pax restricted: ustar
 * unless a name needs pax) with the files at their manifest paths (checked
 * with path_is_safe_relative before anything is sent, as `drover artifact
 * get` does) and modes of permission bits only.
 */
#include "pbjson.h"
#include "web.h"

#include <archive.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "digest.h"
#include "path.h"
#include "sse.h"
#include "strbuf.h"
#include "log.h"
#include "util.h"

#define PAGE    (256u << 10) /* bytes asked of droverd at a time */
#define POLL_MS 200          /* a followed log with nothing new: asked again after this */
#define PING_MS 15000        /* a quiet event stream gets a comment this often */

/* ---------------------------------------------------------------- common */

/* A query argument as a number (absent: def); false after answering 400. */
static bool query_u64(web_req_t *r, const char *key, uint64_t max, uint64_t def, uint64_t *out)
{
    const char *v = web_query(r, key);
    *out = def;
    if (!v)
        return true;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || n > max) {
        web_error(r, 400, "invalid", "?%s= expects a whole number from 0 to %" PRIu64, key, max);
        return false;
    }
    *out = n;
    return true;
}

/* Copy what is left of pending (from *done) into buf; the count. */
static size_t drain_pending(strbuf_t *pending, size_t *done, char *buf, size_t max)
{
    size_t n = pending->len - *done;
    if (n > max)
        n = max;
    memcpy(buf, pending->buf + *done, n);
    *done += n;
    if (*done == pending->len) {
        pending->len = 0;
        *done = 0;
    }
    return n;
}

/* ---------------------------------------------------------------- logs */

typedef struct {
    char *run_id, *task, *bearer;
    uint32_t attempt; /* pinned from the first answer */
    uint64_t offset;  /* the next byte to ask for */
    bool follow, done, truncated, ended;
    int fd; /* the client's socket: to notice it going away */
    strbuf_t pending;
    size_t pending_done;
    int64_t last_out_ms;
} logs_t;

static void logs_free(void *arg)
{
    logs_t *l = arg;
    free(l->run_id);
    free(l->task);
    free(l->bearer);
    sb_free(&l->pending);
    free(l);
}

/* One LogsRequest at l->offset into *resp; 0, or -1 with err filled. */
static int logs_page(logs_t *l, Drover__ApiResponse **resp, web_call_error_t *err)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__LogsRequest lr = DROVER__LOGS_REQUEST__INIT;
    lr.run_id = l->run_id;
    lr.task = l->task;
    lr.attempt = l->attempt;
    lr.offset = l->offset;
    lr.max_bytes = PAGE;
    req.op_case = DROVER__API_REQUEST__OP_LOGS;
    req.logs = &lr;
    return web_call(l->bearer, &req, resp, err);
}

/* How many of the len bytes at p end on a whole UTF-8 character: a
 * sequence begun in the last 3 bytes and not complete is left out. */
static size_t utf8_whole(const uint8_t *p, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        uint8_t c = p[len - back];
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: look further back */
        size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        return need > back ? len - back : len;
    }
    return len;
}

/* The exit code of the pinned attempt of the step, as JSON (null when not
 * known: killed by a signal, no exit, or the step not in the run's view):
 * the task's own for its latest attempt, else from its history. */
static json_t *attempt_exit(logs_t *l)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    Drover__ApiResponse *resp;
    web_call_error_t err;
    json_t *out = json_null();
    rr.id = l->run_id;
    rr.task = l->task; /* only it (an older droverd: all; found by name below) */
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = &rr;
    if (web_call(l->bearer, &req, &resp, &err) < 0) {
        web_call_error_free(&err);
        return out;
    }
    for (size_t i = 0; resp->run && i < resp->run->n_tasks; i++) {
        const Drover__TaskView *t = resp->run->tasks[i];
        if (strcmp(t->name, l->task) != 0)
            continue;
        if (t->attempts == l->attempt && t->has_exit && !t->term_signal)
            out = json_integer(t->exit_code); /* the latest attempt's */
        for (size_t k = 0; k < t->n_history && json_is_null(out); k++)
            if (t->history[k]->number == l->attempt && !t->history[k]->term_signal &&
                t->history[k]->finished_ms)
                out = json_integer(t->history[k]->exit_code);
    }
    drover__api_response__free_unpacked(resp, NULL);
    return out;
}

/* Take one answer of droverd into l: the data (SSE-framed when
 * following) into l->pending; the offset, attempt, done moved on. */
static void logs_take(logs_t *l, const Drover__LogsView *v)
{
    if (!l->attempt)
        l->attempt = v->attempt;
    l->truncated |= v->truncated;
    size_t n = v->data.len;
    if (l->follow) {
        if (!v->done)
            n = utf8_whole(v->data.data, n);
        if (n > 0) {
            char id[32];
            snprintf(id, sizeof id, "%" PRIu64, l->offset + n);
            sse_event(&l->pending, id, "log", (const char *)v->data.data, n);
        }
    } else {
        sb_add(&l->pending, (const char *)v->data.data, n);
    }
    l->offset += n;
    /* done: the attempt ended and this answer reached its end */
    l->done = v->done && n == v->data.len;
}

static void logs_end_event(logs_t *l)
{
    json_t *j = json_pack("{s:I,s:o,s:b}", "attempt", (json_int_t)l->attempt, "exit_code",
                          attempt_exit(l), "truncated", l->truncated);
    char *text = json_dumps(j, JSON_COMPACT);
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64, l->offset);
    sse_event(&l->pending, id, "end", text, strlen(text));
    free(text);
    json_decref(j);
}

/* Whether err says the step is not in the run (yet) while the run goes on:
 * a fan-out item appears when its fan-out expands, so a follower waits for
 * it (as `drover logs -f` does). Asks droverd for the run. */
static bool step_not_yet(logs_t *l, const web_call_error_t *err)
{
    if (l->offset != 0 || err->api_code != DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND ||
        !strstr(err->message, "has no step"))
        return false;
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    Drover__ApiResponse *resp;
    web_call_error_t e;
    rr.id = l->run_id;
    rr.summary = true; /* its status: not a million items' views */
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = &rr;
    if (web_call(l->bearer, &req, &resp, &e) < 0) {
        web_call_error_free(&e);
        return false;
    }
    bool going = resp->run && (resp->run->status == DROVER__RUN_STATUS__RUN_PENDING ||
                               resp->run->status == DROVER__RUN_STATUS__RUN_RUNNING);
    drover__api_response__free_unpacked(resp, NULL);
    return going;
}

static ssize_t logs_produce(void *arg, uint64_t pos, char *buf, size_t max)
{
    logs_t *l = arg;
    (void)pos;
    for (;;) {
        if (l->pending.len > 0) {
            l->last_out_ms = util_mono_ms();
            return (ssize_t)drain_pending(&l->pending, &l->pending_done, buf, max);
        }
        if (l->ended || web_stopping())
            return WEB_STREAM_END;
        if (l->done) {
            if (l->follow)
                logs_end_event(l);
            l->ended = true;
            continue;
        }
        Drover__ApiResponse *resp;
        web_call_error_t err;
        bool got = false;
        if (logs_page(l, &resp, &err) < 0 && l->follow && step_not_yet(l, &err)) {
            web_call_error_free(&err); /* not there yet: asked again below */
        } else if (!resp) {
            /* the headers are out: a follower is told why, then the end */
            if (!l->follow) {
                web_call_error_free(&err);
                return WEB_STREAM_ERROR;
            }
            json_t *j = json_pack("{s:s,s:s}", "error", err.message, "code", err.code);
            char *text = json_dumps(j, JSON_COMPACT);
            sse_event(&l->pending, NULL, "error", text ? text : "{}", text ? strlen(text) : 2);
            free(text);
            json_decref(j);
            web_call_error_free(&err);
            l->ended = true;
            continue;
        } else {
            if (resp->logs)
                logs_take(l, resp->logs);
            else
                l->done = true;
            got = l->pending.len > 0;
            drover__api_response__free_unpacked(resp, NULL);
        }
        if (got || l->done)
            continue;
        if (!l->follow) /* nothing more now: the log so far is the answer */
            return WEB_STREAM_END;
        if (util_mono_ms() - l->last_out_ms >= PING_MS) {
            sse_comment(&l->pending, "ping");
            continue;
        }
        if (!web_nap(l->fd, POLL_MS))
            return WEB_STREAM_ERROR; /* gone, or stopping: the thread is freed */
    }
}

static void get_logs(web_req_t *r)
{
    uint64_t attempt, offset, follow;
    if (!query_u64(r, "attempt", UINT32_MAX, 0, &attempt) ||
        !query_u64(r, "offset", UINT64_MAX / 2, 0, &offset) ||
        !query_u64(r, "follow", 1, 0, &follow))
        return;
    const char *last = web_header(r, "Last-Event-ID");
    if (follow && last && *last) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(last, &end, 10);
        if (*end || errno || last[0] == '-') {
            web_error(r, 400, "invalid", "Last-Event-ID: expected a byte offset");
            return;
        }
        offset = n;
    }
    logs_t *l = xcalloc(1, sizeof *l);
    l->run_id = xstrdup(web_capture(r, "id"));
    l->task = xstrdup(web_capture(r, "task"));
    l->bearer = xstrdup(web_bearer(r));
    l->attempt = (uint32_t)attempt;
    l->offset = offset;
    l->follow = follow != 0;
    l->fd = web_peer_fd(r);
    l->last_out_ms = util_mono_ms();

    /* the first page here: an unknown run, step or attempt is a 404 */
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__LogsRequest lr = DROVER__LOGS_REQUEST__INIT;
    Drover__ApiResponse *resp;
    lr.run_id = l->run_id;
    lr.task = l->task;
    lr.attempt = l->attempt;
    lr.offset = l->offset;
    lr.max_bytes = PAGE;
    req.op_case = DROVER__API_REQUEST__OP_LOGS;
    req.logs = &lr;
    web_call_error_t err;
    if (web_call(l->bearer, &req, &resp, &err) < 0) {
        bool wait = l->follow && step_not_yet(l, &err);
        if (!wait) {
            web_error_with(r, err.status, err.code, NULL, err.message);
            web_call_error_free(&err);
            logs_free(l);
            return;
        }
        web_call_error_free(&err);
    } else {
        if (resp->logs)
            logs_take(l, resp->logs);
        else
            l->done = true;
        drover__api_response__free_unpacked(resp, NULL);
    }
    if (l->follow) {
        web_stream(r, 200, "text/event-stream", WEB_SIZE_UNKNOWN, logs_produce, l, logs_free);
        return;
    }
    char a[16];
    snprintf(a, sizeof a, "%" PRIu32, l->attempt);
    web_stream(r, 200, "text/plain; charset=utf-8", WEB_SIZE_UNKNOWN, logs_produce, l, logs_free);
    web_add_header(r, "X-Drover-Attempt", a);
}

/* ---------------------------------------------------------------- artifacts */

static void get_artifact_list(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ArtifactsRequest ar = DROVER__ARTIFACTS_REQUEST__INIT;
    Drover__ApiResponse *resp;
    ar.run_id = (char *)web_capture(r, "id");
    ar.task = (char *)(web_query(r, "task") ? web_query(r, "task") : "");
    req.op_case = DROVER__API_REQUEST__OP_ARTIFACTS;
    req.artifacts = &ar;
    if (web_api(r, &req, &resp) < 0)
        return;
    json_t *list = json_array();
    for (size_t i = 0; i < resp->n_artifacts; i++)
        json_array_append_new(list, pbjson_message(&resp->artifacts[i]->base));
    web_json(r, 200, json_pack("{s:o}", "artifacts", list));
    drover__api_response__free_unpacked(resp, NULL);
}

/* A download: the files of one artifact, read from droverd a page at a
 * time and checked against their digests. */
typedef struct {
    char *bearer;
    Drover__ApiResponse *listing; /* owns art */
    const Drover__Artifact *art;
    size_t file;  /* the file being read */
    uint64_t off; /* bytes of it read */
    bool started; /* its tar header written */
    digest_ctx_t *dc;
    strbuf_t pending; /* bytes ready for the client */
    size_t pending_done;
    struct archive *tar; /* a directory's; NULL for a file */
    bool closed;
} dl_t;

static void dl_free(void *arg)
{
    dl_t *d = arg;
    if (d->tar)
        archive_write_free(d->tar);
    if (d->dc)
        digest_abort(d->dc);
    if (d->listing)
        drover__api_response__free_unpacked(d->listing, NULL);
    sb_free(&d->pending);
    free(d->bearer);
    free(d);
}

static la_ssize_t tar_write(struct archive *a, void *arg, const void *buf, size_t len)
{
    (void)a;
    dl_t *d = arg;
    sb_add(&d->pending, buf, len);
    return (la_ssize_t)len;
}

/* Read the next page of the current file into pending (through the tar
 * for a directory). 0, or -1: cut the connection (logged). */
static int dl_next_page(dl_t *d)
{
    const Drover__FileEntry *f = d->art->files[d->file];
    if (d->tar && !d->started) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, f->path);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, f->mode & 0777 ? f->mode & 0777 : 0644);
        archive_entry_set_size(e, (la_int64_t)f->size);
        archive_entry_set_mtime(e, time(NULL), 0);
        int rc = archive_write_header(d->tar, e);
        archive_entry_free(e);
        if (rc != ARCHIVE_OK) {
            log_warn("artifact %s: tar header of %s: %s", d->art->name, f->path,
                     archive_error_string(d->tar));
            return -1;
        }
        d->started = true;
        d->dc = digest_begin();
        if (!d->dc)
            return -1;
    }
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__BlobRequest br = DROVER__BLOB_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    web_call_error_t err;
    uint64_t left = f->size - d->off;
    size_t n = 0;
    const uint8_t *data = NULL;
    if (left > 0) {
        br.digest = f->digest;
        br.offset = d->off;
        br.max_bytes = left < PAGE ? (uint32_t)left : PAGE;
        req.op_case = DROVER__API_REQUEST__OP_READ_BLOB;
        req.read_blob = &br;
        if (web_call(d->bearer, &req, &resp, &err) < 0) {
            log_warn("artifact %s: reading %s at %" PRIu64 ": %s", d->art->name,
                     d->tar ? f->path : "its blob", d->off, err.message);
            web_call_error_free(&err);
            return -1;
        }
        n = resp->blob.len;
        data = resp->blob.data;
        if (n == 0 || n > left) {
            log_warn("artifact %s: droverd sent %zu bytes at offset %" PRIu64 " of %" PRIu64,
                     d->art->name, n, d->off, f->size);
            drover__api_response__free_unpacked(resp, NULL);
            return -1;
        }
        digest_update(d->dc, data, n);
    }
    d->off += n;
    if (d->off == f->size) { /* the last page: out only once the digest matches */
        uint8_t got[DIGEST_LEN];
        digest_final(d->dc, got);
        d->dc = NULL;
        if (memcmp(got, f->digest.data, DIGEST_LEN) != 0) {
            char want_hex[DIGEST_HEX_LEN + 1], got_hex[DIGEST_HEX_LEN + 1];
            digest_hex(f->digest.data, want_hex);
            digest_hex(got, got_hex);
            log_warn("artifact %s%s%s: digest mismatch: expected sha256 %s, got %s; cutting the "
                     "download",
                     d->art->name, d->tar ? ", file " : "", d->tar ? f->path : "", want_hex,
                     got_hex);
            if (resp)
                drover__api_response__free_unpacked(resp, NULL);
            return -1;
        }
    }
    int rc = 0;
    if (!d->tar)
        sb_add(&d->pending, (const char *)data, n);
    else if (n > 0 && archive_write_data(d->tar, data, n) != (la_ssize_t)n) {
        log_warn("artifact %s: tar data of %s: %s", d->art->name, f->path,
                 archive_error_string(d->tar));
        rc = -1;
    }
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
    if (d->off == f->size) {
        d->file++;
        d->off = 0;
        d->started = false;
        if (!d->tar && d->file < d->art->n_files)
            return -1; /* a file artifact has one file: checked before */
    }
    return rc;
}

static ssize_t dl_produce(void *arg, uint64_t pos, char *buf, size_t max)
{
    dl_t *d = arg;
    (void)pos;
    while (d->pending.len == 0) {
        if (web_stopping())
            return WEB_STREAM_ERROR;
        if (d->file < d->art->n_files) {
            if (!d->tar && !d->dc && !(d->dc = digest_begin()))
                return WEB_STREAM_ERROR;
            if (dl_next_page(d) < 0)
                return WEB_STREAM_ERROR;
            continue;
        }
        if (!d->tar || d->closed)
            return WEB_STREAM_END;
        if (archive_write_close(d->tar) != ARCHIVE_OK) {
            log_warn("artifact %s: closing the tar: %s", d->art->name,
                     archive_error_string(d->tar));
            return WEB_STREAM_ERROR;
        }
        d->closed = true;
    }
    return (ssize_t)drain_pending(&d->pending, &d->pending_done, buf, max);
}

/* Whether a (from droverd) can be sent safely; answers 500 when not. */
static bool artifact_ok(web_req_t *r, const Drover__Artifact *a)
{
    if (!a->is_dir && a->n_files != 1) {
        web_error(r, 500, "internal", "artifact '%s' is a file with %zu entries in its listing",
                  a->name, a->n_files);
        return false;
    }
    for (size_t i = 0; i < a->n_files; i++) {
        const Drover__FileEntry *f = a->files[i];
        if (a->is_dir && !path_is_safe_relative(f->path)) {
            web_error(r, 500, "internal",
                      "artifact '%s' has a file at a path that is not a plain relative path "
                      "(absolute, or with an empty, '.' or '..' component): refusing it",
                      a->name);
            return false;
        }
        if (f->digest.len != DIGEST_LEN) {
            web_error(r, 500, "internal", "artifact '%s': a file has no SHA-256 digest", a->name);
            return false;
        }
    }
    /* an empty file is never read (nothing to stream): its digest now */
    uint8_t empty[DIGEST_LEN];
    digest_buffer("", 0, empty);
    if (!a->is_dir && a->files[0]->size == 0 &&
        memcmp(a->files[0]->digest.data, empty, DIGEST_LEN) != 0) {
        web_error(r, 500, "internal",
                  "artifact '%s': an empty file whose digest is not the empty "
                  "file's",
                  a->name);
        return false;
    }
    return true;
}

/* The artifact name of task in run, as r's caller: the listing (droverd
 * checks the caller may read it), or NULL after answering 404 (naming the
 * artifacts it has) or droverd's refusal. *listing: the caller frees it. */
static const Drover__Artifact *find_artifact(web_req_t *r, const char *run, const char *task,
                                             const char *name, Drover__ApiResponse **listing)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ArtifactsRequest ar = DROVER__ARTIFACTS_REQUEST__INIT;
    Drover__ApiResponse *resp;
    ar.run_id = (char *)run;
    ar.task = (char *)task;
    req.op_case = DROVER__API_REQUEST__OP_ARTIFACTS;
    req.artifacts = &ar;
    *listing = NULL;
    if (web_api(r, &req, &resp) < 0)
        return NULL;
    const Drover__Artifact *a = NULL;
    strbuf_t names = {0};
    for (size_t i = 0; i < resp->n_artifacts && !a; i++) {
        const Drover__Artifact *x = resp->artifacts[i]->artifact;
        if (!x || strcmp(resp->artifacts[i]->task, task) != 0)
            continue;
        if (strcmp(x->name, name) == 0)
            a = x;
        else
            sb_printf(&names, "%s%s", names.len ? ", " : "", x->name);
    }
    if (!a) {
        char *msg = names.len ? xasprintf("step %s of run %s has no artifact '%s'; its "
                                          "artifacts: %s",
                                          task, run, name, names.buf)
                              : xasprintf("step %s of run %s has no artifact '%s'; it has none",
                                          task, run, name);
        web_error_with(r, 404, "not_found", NULL, msg);
        free(msg);
        drover__api_response__free_unpacked(resp, NULL);
        resp = NULL;
    }
    sb_free(&names);
    *listing = resp;
    return a;
}

/* Answer r with artifact name of task in run (the bytes; a directory as a
 * tar), as r's caller. */
static void serve_artifact(web_req_t *r, const char *run, const char *task, const char *name)
{
    Drover__ApiResponse *resp;
    const Drover__Artifact *a = find_artifact(r, run, task, name, &resp);
    if (!a)
        return;
    if (!artifact_ok(r, a)) {
        drover__api_response__free_unpacked(resp, NULL);
        return;
    }
    dl_t *d = xcalloc(1, sizeof *d);
    d->bearer = xstrdup(web_bearer(r));
    d->listing = resp;
    d->art = a;
    char hex[DIGEST_HEX_LEN + 1], header[DIGEST_HEX_LEN + 8];
    if (a->digest.len == DIGEST_LEN) {
        digest_hex(a->digest.data, hex);
        snprintf(header, sizeof header, "sha256:%s", hex);
    } else {
        header[0] = '\0';
    }
    char *disposition = NULL;
    if (path_is_component(a->name, 200, NULL))
        disposition = xasprintf("attachment; filename=\"%s%s\"", a->name, a->is_dir ? ".tar" : "");
    if (!a->is_dir) {
        web_stream(r, 200, "application/octet-stream", a->files[0]->size, dl_produce, d, dl_free);
        if (*header)
            web_add_header(r, "X-Drover-Digest", header);
    } else {
        d->tar = archive_write_new();
        if (!d->tar || archive_write_set_format_pax_restricted(d->tar) != ARCHIVE_OK ||
            archive_write_set_bytes_in_last_block(d->tar, 1) != ARCHIVE_OK ||
            archive_write_open(d->tar, d, NULL, tar_write, NULL) != ARCHIVE_OK) {
            web_error(r, 500, "internal", "cannot start a tar stream");
            dl_free(d);
            free(disposition);
            return;
        }
        web_stream(r, 200, "application/x-tar", WEB_SIZE_UNKNOWN, dl_produce, d, dl_free);
        if (*header) /* a directory's digest is its manifest's, not the tar's */
            web_add_header(r, "X-Drover-Manifest-Digest", header);
    }
    if (disposition)
        web_add_header(r, "Content-Disposition", disposition);
    free(disposition);
}

static void get_artifact(web_req_t *r)
{
    serve_artifact(r, web_capture(r, "id"), web_capture(r, "task"), web_capture(r, "name"));
}

/* ---- download tickets (see the top) ---- */

#define TICKETS       256
#define TICKET_TTL_MS 60000
#define TICKET_BYTES  32

typedef struct {
    char id[2 * TICKET_BYTES + 1]; /* hex; "" = a free slot */
    char *bearer, *run, *task, *name;
    int64_t expires_ms; /* util_mono_ms */
} ticket_t;

static ticket_t tickets[TICKETS];
static pthread_mutex_t tickets_lock = PTHREAD_MUTEX_INITIALIZER;

static void ticket_clear(ticket_t *t)
{
    free(t->bearer);
    free(t->run);
    free(t->task);
    free(t->name);
    memset(t, 0, sizeof *t);
}

static void post_ticket(web_req_t *r)
{
    const char *run = web_capture(r, "id"), *task = web_capture(r, "task"),
               *name = web_capture(r, "name");
    Drover__ApiResponse *listing;
    if (!find_artifact(r, run, task, name, &listing)) /* no such artifact, or not the caller's */
        return;
    drover__api_response__free_unpacked(listing, NULL);
    unsigned char raw[TICKET_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        web_error(r, 500, "internal", "no random bytes for a download ticket");
        return;
    }
    int64_t now = util_mono_ms();
    ticket_t *slot = NULL;
    pthread_mutex_lock(&tickets_lock);
    for (size_t i = 0; i < TICKETS; i++) {
        if (tickets[i].id[0] && tickets[i].expires_ms <= now)
            ticket_clear(&tickets[i]);
        if (!tickets[i].id[0] && !slot)
            slot = &tickets[i];
    }
    if (slot) {
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(slot->id + 2 * i, 3, "%02x", raw[i]);
        slot->bearer = xstrdup(web_bearer(r));
        slot->run = xstrdup(run);
        slot->task = xstrdup(task);
        slot->name = xstrdup(name);
        slot->expires_ms = now + TICKET_TTL_MS;
    }
    char *url = slot ? xasprintf("/api/v1/downloads/%s", slot->id) : NULL;
    pthread_mutex_unlock(&tickets_lock);
    if (!url) {
        web_error(r, 503, "unavailable",
                  "%d download tickets are outstanding: try again within %d s", TICKETS,
                  TICKET_TTL_MS / 1000);
        web_add_header(r, "Retry-After", "5");
        return;
    }
    web_json(r, 201,
             json_pack("{s:s,s:I}", "url", url, "expires_ms",
                       (json_int_t)(util_now_ms() + TICKET_TTL_MS)));
    free(url);
}

static void get_download(web_req_t *r)
{
    const char *id = web_capture(r, "ticket");
    ticket_t got = {0};
    bool found = false;
    if (id && strlen(id) == 2 * TICKET_BYTES) {
        int64_t now = util_mono_ms();
        pthread_mutex_lock(&tickets_lock);
        for (size_t i = 0; i < TICKETS; i++) {
            /* every slot compared in full: the time says nothing of the ids */
            bool same = CRYPTO_memcmp(tickets[i].id, id, 2 * TICKET_BYTES) == 0;
            if (same && tickets[i].id[0] && tickets[i].expires_ms > now && !found) {
                got = tickets[i]; /* taken: used once */
                memset(&tickets[i], 0, sizeof tickets[i]);
                found = true;
            }
        }
        pthread_mutex_unlock(&tickets_lock);
    }
    if (!found) {
        web_error(r, 404, "not_found",
                  "no such download ticket: a ticket is used once and expires %d s after it "
                  "is made",
                  TICKET_TTL_MS / 1000);
        return;
    }
    web_act_as(r, got.bearer);
    serve_artifact(r, got.run, got.task, got.name);
    ticket_clear(&got);
}

const web_route_t routes_files[] = {
    {"GET", "/api/v1/runs/{id}/logs/{task}", get_logs, 0},
    {"GET", "/api/v1/runs/{id}/artifacts", get_artifact_list, 0},
    {"GET", "/api/v1/runs/{id}/artifacts/{task}/{name}", get_artifact, 0},
    {"POST", "/api/v1/runs/{id}/artifacts/{task}/{name}/ticket", post_ticket, 0},
    {"GET", "/api/v1/downloads/{ticket}", get_download, WEB_NO_AUTH},
    {0},
};
