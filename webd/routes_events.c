/* routes_events — droverd's event log over HTTP (README "HTTP API"):
 *   GET /api/v1/events?since=N&run=ID    server-sent events: each event
 *       "id: SEQ", "event: task|run|agent|checkpoint|pool_node", "data:
 *       EventRecord JSON"; the Last-Event-ID header (a reconnecting
 *       EventSource's) wins over since; a reader behind the retained log
 *       gets "event: truncated" with data {"first_seq": N} and goes on from
 *       there; ": ping" comments every PING_MS keep a quiet stream open; a
 *       failed read ends the stream with "event: error" {"error", "code"}.
 *   GET /api/v1/events?format=json&since=N&run=ID&max=N    one page:
 *       {"events": [...], "next_seq": N, "truncated": B}; next_seq is the
 *       `since` of the next page.
 *
 * The stream's producer runs on the connection's own thread (web.h) and
 * blocks in fetch() until there is something to send, a ping is due or
 * drover-web stops. fetch() is the one place that waits for droverd: one
 * held request (EventsRequest.wait_ms), which droverd answers right after
 * the commit that writes a matching event, or empty after WAIT_MS. When
 * droverd holds no more requests (--api-waiters reached) it answers an
 * empty one at once: the producer then naps BUSY_MS before asking again,
 * so streams beyond that bound poll instead of spinning on droverd's loop.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pbjson.h"
#include "sse.h"
#include "units.h"
#include "util.h"
#include "web.h"

#define PING_MS  15000
#define WAIT_MS  1000 /* fetch answers at least this often */
#define BATCH    256  /* events a request */
#define PAGE_MAX 1000 /* ?format=json's max */
#define BUSY_MS  250  /* droverd would not hold the request: asked again after this */

typedef struct {
    char *bearer, *run_id;
    int fd;               /* the client's socket: web_peer_gone */
    uint64_t since;       /* the last event sent (or skipped) */
    int64_t last_send_ms; /* for pings */
    strbuf_t out;         /* framed, not yet handed to MHD */
    strbuf_t data;        /* one event's JSON (pbjson_write), reused */
    size_t off;           /* of out, handed already */
    bool done;            /* out's rest is the last */
} stream_t;

/* Events after since (run_id: only that run's; "" for all), droverd
 * holding the request up to WAIT_MS until some commit: 0 and *resp (maybe
 * with none), or -1 and *err. */
static int fetch(const char *bearer, uint64_t since, const char *run_id, uint32_t max,
                 Drover__ApiResponse **resp, web_call_error_t *err)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__EventsRequest er = DROVER__EVENTS_REQUEST__INIT;
    er.since = since;
    er.run_id = (char *)run_id;
    er.max = max;
    er.wait_ms = WAIT_MS;
    req.op_case = DROVER__API_REQUEST__OP_EVENTS;
    req.events = &er;
    return web_call(bearer, &req, resp, err) < 0 ? -1 : 0;
}

static const char *kind_name(Drover__EventKind k, char *buf, size_t len)
{
    return pbjson_enum_name(&drover__event_kind__descriptor, (int)k, buf, len);
}

static void frame_json(strbuf_t *out, const char *id, const char *name, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(data);
    sse_event(out, id, name, text ? text : "{}", text ? strlen(text) : 2);
    free(text);
}

/* Frame what droverd answered into st->out and move st->since on. */
static void frame_events(stream_t *st, const Drover__ApiResponse *resp)
{
    char id[32], kind[32];
    if (resp->truncated) {
        frame_json(&st->out, NULL, "truncated",
                   json_pack("{s:I}", "first_seq", (json_int_t)resp->first_seq));
        if (resp->first_seq > 0 && resp->first_seq - 1 > st->since)
            st->since = resp->first_seq - 1;
    }
    for (size_t i = 0; i < resp->n_events; i++) {
        const Drover__EventRecord *e = resp->events[i];
        snprintf(id, sizeof id, "%llu", (unsigned long long)e->seq);
        pbjson_write(&e->base, &st->data);
        sse_event(&st->out, id, kind_name(e->kind, kind, sizeof kind), st->data.buf, st->data.len);
        st->data.len = 0; /* the buffer is kept for the next event */
        if (e->seq > st->since)
            st->since = e->seq;
    }
    if (resp->next_seq > st->since) /* a run's reader: where droverd stopped looking */
        st->since = resp->next_seq;
}

static ssize_t produce(void *arg, uint64_t pos, char *buf, size_t max)
{
    stream_t *st = arg;
    while (st->off == st->out.len) {
        st->out.len = st->off = 0;
        if (st->done || web_stopping())
            return WEB_STREAM_END;
        if (web_peer_gone(st->fd))
            return WEB_STREAM_ERROR;
        Drover__ApiResponse *resp;
        web_call_error_t err;
        int64_t asked_ms = util_mono_ms();
        uint64_t since = st->since;
        if (fetch(st->bearer, st->since, st->run_id, BATCH, &resp, &err) < 0) {
            frame_json(&st->out, NULL, "error",
                       json_pack("{s:s,s:s}", "error", err.message, "code", err.code));
            web_call_error_free(&err);
            st->done = true;
            continue;
        }
        frame_events(st, resp);
        drover__api_response__free_unpacked(resp, NULL);
        if (st->out.len == 0 && util_mono_ms() - st->last_send_ms >= PING_MS)
            sse_comment(&st->out, "ping");
        /* nothing, at once, and no progress: droverd did not hold it */
        if (st->out.len == 0 && st->since == since && util_mono_ms() - asked_ms < WAIT_MS / 2 &&
            !web_nap(st->fd, BUSY_MS))
            return web_stopping() ? WEB_STREAM_END : WEB_STREAM_ERROR;
    }
    size_t n = st->out.len - st->off;
    if (n > max)
        n = max;
    memcpy(buf, st->out.buf + st->off, n);
    st->off += n;
    st->last_send_ms = util_mono_ms();
    return (ssize_t)n;
}

static void stream_free(void *arg)
{
    stream_t *st = arg;
    free(st->bearer);
    free(st->run_id);
    sb_free(&st->out);
    sb_free(&st->data);
    free(st);
}

/* A sequence number from text (?since=, Last-Event-ID); false after 400. */
static bool parse_seq(web_req_t *r, const char *what, const char *v, uint64_t *out)
{
    if (spec_parse_uint(v, INT64_MAX, out) == 0) /* JSON numbers: int64 */
        return true;
    web_error(r, 400, "invalid", "%s: expected an event sequence number, got '%s'", what, v);
    return false;
}

static void get_page(web_req_t *r, uint64_t since, const char *run_id)
{
    uint64_t max = BATCH;
    const char *v = web_query(r, "max");
    if (v && (spec_parse_uint(v, PAGE_MAX, &max) < 0 || max == 0)) {
        web_error(r, 400, "invalid", "max: expected a number in 1..%d, got '%s'", PAGE_MAX, v);
        return;
    }
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__EventsRequest er = DROVER__EVENTS_REQUEST__INIT;
    Drover__ApiResponse *resp;
    er.since = since;
    er.run_id = (char *)run_id;
    er.max = (uint32_t)max;
    req.op_case = DROVER__API_REQUEST__OP_EVENTS;
    req.events = &er;
    if (web_api(r, &req, &resp) < 0)
        return;
    uint64_t next = since;
    if (resp->truncated && resp->first_seq > 0 && resp->first_seq - 1 > next)
        next = resp->first_seq - 1;
    strbuf_t out = {0};
    sb_puts(&out, "{\"events\":[");
    for (size_t i = 0; i < resp->n_events; i++) {
        if (i)
            sb_putc(&out, ',');
        pbjson_write(&resp->events[i]->base, &out);
        if (resp->events[i]->seq > next)
            next = resp->events[i]->seq;
    }
    if (resp->next_seq > next)
        next = resp->next_seq;
    sb_printf(&out, "],\"next_seq\":%lld,\"truncated\":%s}", (long long)next,
              resp->truncated ? "true" : "false");
    web_json_text(r, 200, &out);
    drover__api_response__free_unpacked(resp, NULL);
}

static void get_events(web_req_t *r)
{
    uint64_t since = 0;
    const char *v, *run = web_query(r, "run"), *format = web_query(r, "format");
    if ((v = web_query(r, "since")) && !parse_seq(r, "since", v, &since))
        return;
    if ((v = web_header(r, "Last-Event-ID")) && *v && !parse_seq(r, "Last-Event-ID", v, &since))
        return;
    if (format && strcmp(format, "json") == 0) {
        get_page(r, since, run ? run : "");
        return;
    }
    if (format && strcmp(format, "sse") != 0) {
        web_error(r, 400, "invalid", "format: expected json or sse, got '%s'", format);
        return;
    }
    /* a first read now: a bad token or an unknown run is an HTTP error,
     * not a stream that ends at once */
    Drover__ApiResponse *resp;
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__EventsRequest er = DROVER__EVENTS_REQUEST__INIT;
    er.since = since;
    er.run_id = (char *)(run ? run : "");
    er.max = BATCH;
    req.op_case = DROVER__API_REQUEST__OP_EVENTS;
    req.events = &er;
    if (web_api(r, &req, &resp) < 0)
        return;
    stream_t *st = xcalloc(1, sizeof *st);
    st->bearer = xstrdup(web_bearer(r));
    st->run_id = xstrdup(run ? run : "");
    st->fd = web_peer_fd(r);
    st->since = since;
    st->last_send_ms = util_mono_ms();
    sb_puts(&st->out, "retry: 2000\n\n");
    frame_events(st, resp);
    drover__api_response__free_unpacked(resp, NULL);
    web_stream(r, 200, "text/event-stream", WEB_SIZE_UNKNOWN, produce, st, stream_free);
}

const web_route_t routes_events[] = {
    {"GET", "/api/v1/events", get_events, 0},
    {0},
};
