/* web — drover-web's framework: what a route handler sees and may do.
 *
 * drover-web is an HTTP front for droverd's API socket (README "HTTP API",
 * docs/architecture.md "drover-web"). server.c runs libmicrohttpd with a
 * thread per connection, so a handler runs on its connection's own thread
 * and may block (on droverd, or a stream waiting for events); it never
 * shares a web_req_t with another thread.
 *
 * A route is a method and a path pattern ("/api/v1/runs/{id}/tasks/{task}"):
 * each "{name}" captures one whole path segment (already percent-decoded by
 * libmicrohttpd; never empty). The tables are the routes_*.c files' (one
 * array each, declared at the end of this header and listed in server.c);
 * a path no pattern matches gets 404, a path some pattern matches with
 * another method gets 405 with Allow, both as JSON errors.
 *
 * Before a handler runs, server.c has: checked the rate limit (429), read
 * the body (bounded: 413), and, unless the route says WEB_NO_AUTH, taken the
 * bearer token from "Authorization: Bearer TOKEN" (401 without one). The
 * handler answers by calling exactly one of web_json, web_error, web_text,
 * web_stream (a later call replaces an earlier one's response); a handler
 * that answers nothing gets a 500. Every refusal is JSON
 * {"error": "...", "code": "..."} with a 4xx/5xx status.
 *
 * Talking to droverd: web_api() sends an ApiRequest with the caller's bearer
 * in ApiRequest.bearer (always: droverd decides what the token may do) and,
 * when droverd refuses or cannot be reached, answers the HTTP request with
 * the mapped error itself (UNAUTHENTICATED 401, PERMISSION_DENIED 403,
 * NOT_FOUND 404, INVALID 400, CONFLICT 409, unreachable 503, else 500), so
 * a handler just returns when it fails. Streams call web_call(), which
 * answers nothing.
 *
 * This header is the contract between server.c and the routes_*.c files:
 * keep it stable.
 */
#ifndef DROVER_WEBD_WEB_H
#define DROVER_WEBD_WEB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "drover.pb-c.h"
#include "strbuf.h"

typedef struct web_req web_req_t;

/* Route flags. */
#define WEB_NO_AUTH 1u /* no bearer needed (openapi.json, healthz) */

typedef struct {
    const char *method;  /* "GET", "POST", "DELETE" */
    const char *pattern; /* "/api/v1/runs/{id}"; see above */
    void (*handler)(web_req_t *r);
    unsigned flags; /* WEB_* */
} web_route_t;

/* ---- the request ---- */

/* The path segment captured by "{name}" in the route's pattern, or NULL
 * when the pattern has no such capture. Owned by r. */
const char *web_capture(const web_req_t *r, const char *name);

/* The first value of query argument key (percent-decoded; "" for "?k"),
 * or NULL when absent. Owned by r's connection. */
const char *web_query(web_req_t *r, const char *key);

/* Every value of query argument key in order (?status=a&status=b): at most
 * max of them into out; returns how many there are in all. */
size_t web_query_all(web_req_t *r, const char *key, const char **out, size_t max);

/* A request header's value (case-insensitive name), or NULL. */
const char *web_header(web_req_t *r, const char *name);

/* The request body (NUL-terminated; may hold NULs: use *len) and its
 * length; "" and 0 when there is none. Owned by r. */
const char *web_body(const web_req_t *r, size_t *len);

/* The caller's bearer token ("" on a WEB_NO_AUTH route without one). */
const char *web_bearer(const web_req_t *r);

/* Run the rest of r as bearer (copied): a download ticket's maker. */
void web_act_as(web_req_t *r, const char *bearer);

/* The client's address as text ("127.0.0.1", "::1"). */
const char *web_client(const web_req_t *r);

/* ---- answers ---- */

/* Answer with status and body as JSON (steals body's reference). */
void web_json(web_req_t *r, unsigned status, json_t *body);

/* Answer with status and text, JSON already written (pbjson_write), with
 * web_json's content type; takes text's buffer (text is left empty). */
void web_json_text(web_req_t *r, unsigned status, strbuf_t *text);

/* Answer with status and {"error": MESSAGE, "code": code}. */
void web_error(web_req_t *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like web_error, with more members in the error object (steals extra, an
 * object: e.g. {"errors": [...]} of a refused spec). */
void web_error_with(web_req_t *r, unsigned status, const char *code, json_t *extra,
                    const char *message);

/* Answer with len bytes of data (copied) and content_type. */
void web_text(web_req_t *r, unsigned status, const char *content_type, const void *data,
              size_t len);

/* Add a response header to the answer given (call after web_json etc.). */
void web_add_header(web_req_t *r, const char *name, const char *value);

/* A streamed answer's producer: called on the connection's thread, again
 * and again, to fill buf (at most max bytes) with what comes after pos
 * bytes already produced. Returns how many bytes it wrote (> 0; it may
 * block until it has some: the thread is the connection's own, but it must
 * poll web_stopping() at least every second), WEB_STREAM_END when the
 * answer is complete, or WEB_STREAM_ERROR to cut the connection. */
typedef ssize_t (*web_stream_fn)(void *arg, uint64_t pos, char *buf, size_t max);
#define WEB_STREAM_END   ((ssize_t)-1)
#define WEB_STREAM_ERROR ((ssize_t)-2)
#define WEB_SIZE_UNKNOWN UINT64_MAX

/* Answer with a stream: size bytes in all (WEB_SIZE_UNKNOWN: until fn says
 * WEB_STREAM_END; chunked), produced by fn(arg, ...). free_arg(arg) is
 * called once the stream is done or the connection gone (also when the
 * answer is replaced or never sent). Server-sent events: content_type
 * "text/event-stream" (sse.h formats events). */
void web_stream(web_req_t *r, unsigned status, const char *content_type, uint64_t size,
                web_stream_fn fn, void *arg, void (*free_arg)(void *arg));

/* The connection's socket (-1 if unknown), for a stream's producer to
 * check with web_peer_gone between waits. */
int web_peer_fd(web_req_t *r);

/* Whether the client behind fd hung up (poll: POLLRDHUP/POLLHUP/POLLERR,
 * no wait): a producer that would otherwise wait on for a reader that
 * left ends with WEB_STREAM_ERROR. Safe on a socket MHD owns: it only
 * polls. */
bool web_peer_gone(int fd);

/* Sleep ms (in steps of at most 50 ms) unless drover-web stops or the
 * client behind fd goes away: false then, true after the whole sleep. For
 * a stream's producer that has nothing to send yet. */
bool web_nap(int fd, int64_t ms);

/* Whether drover-web is shutting down: long streams end when it says so. */
bool web_stopping(void);

/* ---- droverd ---- */

/* Why a web_call failed: the HTTP status and code it maps to, and the
 * message (droverd's, or what went wrong reaching it). */
typedef struct {
    unsigned status;  /* 401, 403, 404, 400, 409, 503, 500 */
    const char *code; /* "unauthenticated", "permission_denied", "not_found", "invalid",
                         "conflict", "unavailable", "internal" (static) */
    char message[1024];
    Drover__ApiErrorCode api_code; /* droverd's, when it answered with an error */
    Drover__ApiResponse *resp;     /* droverd's error answer (spec_errors), or NULL; owned: freed
                                      by web_call_error_free */
} web_call_error_t;

/* Send req to droverd with bearer (NULL or "": none) set in req->bearer,
 * from a client of the pool (one ZMQ REQ socket each, used by one thread at
 * a time), and wait for the answer (the client's timeout). 0 and *resp
 * (the caller frees it: drover__api_response__free_unpacked) on success;
 * -1 and *err filled otherwise (free it with web_call_error_free). */
int web_call(const char *bearer, Drover__ApiRequest *req, Drover__ApiResponse **resp,
             web_call_error_t *err);
void web_call_error_free(web_call_error_t *err);

/* web_call with r's bearer; on failure answers r with the mapped error
 * (a refused spec: 400 with "errors": [{file, line, col, message}]) and
 * returns -1: the handler just returns. */
int web_api(web_req_t *r, Drover__ApiRequest *req, Drover__ApiResponse **resp);

/* ---- JSON in ---- */

/* The body parsed as a JSON object; NULL after answering 400 when it is
 * not one (an empty body gives an empty object). The caller decrefs it. */
json_t *web_body_json(web_req_t *r);

/* Whether every member of obj is one of known (NULL-terminated); false
 * after answering 400 naming the first unknown one and the known ones. */
bool web_json_members(web_req_t *r, json_t *obj, const char *const *known);

/* ---- the route tables (one per routes_*.c) ---- */
extern const web_route_t routes_core[];    /* routes_core.c: status, healthz, openapi, metrics */
extern const web_route_t routes_runs[];    /* routes_runs.c: runs */
extern const web_route_t routes_files[];   /* routes_files.c: logs, artifacts */
extern const web_route_t routes_fleet[];   /* routes_fleet.c: agents, pools, schedules, tokens */
extern const web_route_t routes_events[];  /* routes_events.c: /events */
extern const web_route_t routes_console[]; /* routes_console.c: the web console's files */
/* Each table ends with an entry whose method is NULL. */

#endif
