/* server — drover-web's HTTP side: libmicrohttpd with a thread per
 * connection, its bounds, the per-client rate limit, the bearer header and
 * the routing table (web.h is the contract with the handlers).
 *
 * A request's life (MHD's access handler, called several times):
 *   1. first call: a web_req_t is made; the route is looked up (404/405),
 *      the rate limit checked (429 + Retry-After), the bearer taken (401),
 *      a write's Origin checked (403 forbidden_origin: request.c),
 *      Content-Length checked against max-body (413); a refusal is queued
 *      at once and the body, if any, is not read;
 *   2. calls with upload data: the body appended, up to max-body (a chunked
 *      body over it is discarded and refused with 413 at the end);
 *   3. the last call: the handler runs and its answer is queued.
 * MHD's completion callback frees the web_req_t (and an answer never
 * queued). Bounds MHD enforces itself: connections in all and per address
 * (beyond them a connection is closed at accept), the idle timeout, and
 * the memory for a request's head (too large a head: MHD answers 431 or
 * 413 itself, not in JSON). guard.c adds a deadline for each whole request
 * (a slowloris: MHD's timeout is only for idle connections).
 * The route lookup and the bearer header are request.c's (pure functions).
 *
 * Rate limit: a token bucket per client address (rate a second, burst
 * tokens), in a fixed table of RATE_SLOTS entries with a mutex; an address
 * not seen takes the slot least recently used among its probe window, so
 * the table never grows and a flood of addresses only forgets old ones.
 */
#include "guard.h"
#include "web.h"
#include "webd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "route.h"
#include "strbuf.h"
#include "util.h"

#define MAX_CAPTURES 8
#define RATE_SLOTS   4096
#define RATE_PROBE   8

struct web_req {
    struct MHD_Connection *conn;
    const web_route_t *route;
    char *cap_name[MAX_CAPTURES], *cap_val[MAX_CAPTURES];
    size_t n_caps;
    strbuf_t body;
    bool body_over; /* more than max-body came: refused at the end */
    bool dispatched;
    char *bearer;
    char client[INET6_ADDRSTRLEN];
    /* the answer */
    struct MHD_Response *resp;
    unsigned status;
};

static const web_config_t *cfg;
static struct MHD_Daemon *daemon_;
static char *tls_cert, *tls_key; /* PEM texts while serving HTTPS (tls.c) */
static atomic_bool stopping;

bool web_stopping(void)
{
    return atomic_load(&stopping);
}

void web_set_stopping(void)
{
    atomic_store(&stopping, true);
}

/* ---- answers ---- */

static void set_answer(web_req_t *r, unsigned status, struct MHD_Response *resp)
{
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = resp;
    r->status = status;
}

void web_text(web_req_t *r, unsigned status, const char *content_type, const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    set_answer(r, status, resp);
}

void web_json(web_req_t *r, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (!text) {
        web_error(r, 500, "internal", "could not encode the answer as JSON");
        return;
    }
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    set_answer(r, status, resp);
}

void web_json_text(web_req_t *r, unsigned status, strbuf_t *text)
{
    size_t len = text->len;
    char *body = sb_take(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    set_answer(r, status, resp);
}

void web_error_with(web_req_t *r, unsigned status, const char *code, json_t *extra,
                    const char *message)
{
    json_t *o = extra ? extra : json_object();
    json_object_set_new(o, "error", json_string(message));
    json_object_set_new(o, "code", json_string(code));
    if (!json_object_get(o, "error")) /* not UTF-8 (a path echoed) */
        json_object_set_new(o, "error", json_string("(unprintable message)"));
    web_json(r, status, o);
}

void web_error(web_req_t *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    web_error_with(r, status, code, NULL, msg);
}

void web_add_header(web_req_t *r, const char *name, const char *value)
{
    if (r->resp)
        MHD_add_response_header(r->resp, name, value);
}

void web_stream(web_req_t *r, unsigned status, const char *content_type, uint64_t size,
                web_stream_fn fn, void *arg, void (*free_arg)(void *arg))
{
    /* MHD's reader callback has this very signature and these end values */
    _Static_assert(WEB_STREAM_END == MHD_CONTENT_READER_END_OF_STREAM, "end");
    _Static_assert(WEB_STREAM_ERROR == MHD_CONTENT_READER_END_WITH_ERROR, "error");
    struct MHD_Response *resp = MHD_create_response_from_callback(
        size == WEB_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : size, 64 * 1024, fn, arg, free_arg);
    if (!resp) {
        if (free_arg)
            free_arg(arg);
        web_error(r, 500, "internal", "could not start the stream");
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (strcmp(content_type, "text/event-stream") == 0) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    }
    set_answer(r, status, resp);
}

/* ---- the request ---- */

int web_peer_fd(web_req_t *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

bool web_peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (fd < 0)
        return false;
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

bool web_nap(int fd, int64_t ms)
{
    while (ms > 0) {
        if (web_stopping() || web_peer_gone(fd))
            return false;
        int64_t step = ms < 50 ? ms : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !web_stopping() && !web_peer_gone(fd);
}

const char *web_capture(const web_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_caps; i++)
        if (strcmp(r->cap_name[i], name) == 0)
            return r->cap_val[i];
    return NULL;
}

const char *web_query(web_req_t *r, const char *key)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
    if (!v && MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), NULL,
                                            NULL) == MHD_YES)
        return "";
    return v;
}

typedef struct {
    const char *key;
    const char **out;
    size_t max, n;
} query_walk_t;

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    query_walk_t *w = cls;
    if (key && strcmp(key, w->key) == 0) {
        if (w->n < w->max)
            w->out[w->n] = value ? value : "";
        w->n++;
    }
    return MHD_YES;
}

size_t web_query_all(web_req_t *r, const char *key, const char **out, size_t max)
{
    query_walk_t w = {key, out, max, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_one, &w);
    return w.n;
}

const char *web_header(web_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *web_body(const web_req_t *r, size_t *len)
{
    *len = r->body.len;
    return r->body.buf ? r->body.buf : "";
}

const char *web_bearer(const web_req_t *r)
{
    return r->bearer ? r->bearer : "";
}

void web_act_as(web_req_t *r, const char *bearer)
{
    free(r->bearer);
    r->bearer = xstrdup(bearer);
}

const char *web_client(const web_req_t *r)
{
    return r->client;
}

json_t *web_body_json(web_req_t *r)
{
    size_t len;
    const char *body = web_body(r, &len);
    char why[256];
    json_t *j = web_json_object_parse(body, len, why, sizeof why);
    if (!j)
        web_error(r, 400, "invalid", "%s", why);
    return j;
}

bool web_json_members(web_req_t *r, json_t *obj, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (known[i])
            continue;
        strbuf_t list = {0};
        for (i = 0; known[i]; i++)
            sb_printf(&list, "%s%s", i ? ", " : "", known[i]);
        web_error(r, 400, "invalid", "unknown member '%s' (known: %s)", key,
                  list.buf ? list.buf : "none");
        sb_free(&list);
        return false;
    }
    return true;
}

/* ---- droverd, with the request's bearer ---- */

int web_api(web_req_t *r, Drover__ApiRequest *req, Drover__ApiResponse **resp)
{
    web_call_error_t err;
    if (web_call(web_bearer(r), req, resp, &err) == 0)
        return 0;
    json_t *extra = NULL;
    if (err.resp && err.resp->n_spec_errors > 0) {
        json_t *errs = json_array();
        for (size_t i = 0; i < err.resp->n_spec_errors; i++) {
            const Drover__SpecError *e = err.resp->spec_errors[i];
            json_array_append_new(errs,
                                  json_pack("{s:s,s:I,s:I,s:s}", "file", e->file ? e->file : "",
                                            "line", (json_int_t)e->line, "col", (json_int_t)e->col,
                                            "message", e->message ? e->message : ""));
        }
        extra = json_pack("{s:o}", "errors", errs);
    }
    web_error_with(r, err.status, err.code, extra, err.message);
    web_call_error_free(&err);
    return -1;
}

/* ---- routing ---- */

static void free_captures(web_req_t *r)
{
    for (size_t i = 0; i < r->n_caps; i++) {
        free(r->cap_name[i]);
        free(r->cap_val[i]);
    }
    r->n_caps = 0;
}

/* The route for method and url into r->route (0), or an answer already
 * set: 404 (no pattern matches) or 405 (one does, for other methods). */
static int route(web_req_t *r, const char *method, const char *url)
{
    strbuf_t allow = {0};
    r->route =
        web_route_lookup(method, url, r->cap_name, r->cap_val, MAX_CAPTURES, &r->n_caps, &allow);
    if (r->route) {
        sb_free(&allow);
        return 0;
    }
    if (allow.len) {
        web_error(r, 405, "method_not_allowed", "%s is not allowed on this path (allowed: %s)",
                  method, allow.buf);
        web_add_header(r, MHD_HTTP_HEADER_ALLOW, allow.buf);
    } else {
        web_error(r, 404, "not_found", "no such path: %s", url);
    }
    sb_free(&allow);
    return -1;
}

/* ---- rate limit ---- */

typedef struct {
    char addr[INET6_ADDRSTRLEN];
    double tokens;
    int64_t last_ms;
} bucket_t;

static bucket_t *buckets;
static pthread_mutex_t rate_mu = PTHREAD_MUTEX_INITIALIZER; /* also conn_slots */

static size_t addr_hash(const char *addr)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)(h % RATE_SLOTS);
}

/* Take one token for addr: 0, or the seconds to wait for one (> 0). */
static unsigned rate_take(const char *addr)
{
    if (cfg->rate == 0)
        return 0;
    size_t h = addr_hash(addr);
    int64_t now = util_mono_ms();
    unsigned wait = 0;
    pthread_mutex_lock(&rate_mu);
    bucket_t *b = NULL, *oldest = NULL;
    for (size_t i = 0; i < RATE_PROBE; i++) {
        bucket_t *c = &buckets[(h + i) % RATE_SLOTS];
        if (strcmp(c->addr, addr) == 0) {
            b = c;
            break;
        }
        if (!oldest || c->last_ms < oldest->last_ms)
            oldest = c;
    }
    if (!b) {
        b = oldest;
        snprintf(b->addr, sizeof b->addr, "%s", addr);
        b->tokens = cfg->burst;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) * cfg->rate / 1000.0;
    if (b->tokens > cfg->burst)
        b->tokens = cfg->burst;
    b->last_ms = now;
    if (b->tokens >= 1.0)
        b->tokens -= 1.0;
    else
        wait = (unsigned)((1.0 - b->tokens) / cfg->rate) + 1;
    pthread_mutex_unlock(&rate_mu);
    return wait;
}

/* ---- connections by address ----
 * Counted here so that a client over --max-connections-per-ip (or all of
 * them over --max-connections) gets a JSON refusal (429 / 503, then the
 * connection closed) rather than a closed socket; MHD's own limits sit a
 * little above ours, as the hard stop. A slot with connections is never
 * reused, so a connection keeps a pointer to its slot (its socket
 * context); an address that finds no slot in its probe window is not
 * counted (MHD's limit still holds). */

typedef struct {
    char addr[INET6_ADDRSTRLEN];
    uint32_t n;
} conn_slot_t;

static conn_slot_t *conn_slots;
static uint32_t conns_total;

static void client_address(struct MHD_Connection *conn, char *out, size_t len);

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    conn_slot_t *slot = *socket_context;
    web_guard_connection(conn, toe == MHD_CONNECTION_NOTIFY_STARTED);
    pthread_mutex_lock(&rate_mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        char addr[INET6_ADDRSTRLEN];
        client_address(conn, addr, sizeof addr);
        size_t h = addr_hash(addr);
        conns_total++;
        for (size_t i = 0; i < RATE_PROBE && !slot; i++) {
            conn_slot_t *c = &conn_slots[(h + i) % RATE_SLOTS];
            if (c->n == 0 || strcmp(c->addr, addr) == 0)
                slot = c;
        }
        if (slot) {
            if (slot->n++ == 0)
                snprintf(slot->addr, sizeof slot->addr, "%s", addr);
        }
        *socket_context = slot;
    } else {
        conns_total--;
        if (slot)
            slot->n--;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&rate_mu);
}

/* Whether r's connection is over a limit: answered (429/503) if so. */
static bool over_connections(web_req_t *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const conn_slot_t *slot = ci ? ci->socket_context : NULL;
    uint32_t mine, total;
    pthread_mutex_lock(&rate_mu);
    mine = slot ? slot->n : 0;
    total = conns_total;
    pthread_mutex_unlock(&rate_mu);
    if (mine > cfg->max_conns_ip)
        web_error(r, 429, "too_many_connections",
                  "too many connections from %s (at most %u at once)", r->client,
                  cfg->max_conns_ip);
    else if (total > cfg->max_conns)
        web_error(r, 503, "too_many_connections",
                  "drover-web has too many connections (at most %u): retry later", cfg->max_conns);
    else
        return false;
    web_add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    web_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return true;
}

/* ---- MHD callbacks ---- */

void web_format_address(const struct sockaddr *sa, char *out, size_t len)
{
    snprintf(out, len, "?");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

static void client_address(struct MHD_Connection *conn, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    web_format_address(ci ? ci->client_addr : NULL, out, len);
}

static enum MHD_Result count_authorization(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    (void)kind, (void)value;
    if (key && strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0)
        (*(unsigned *)cls)++;
    return MHD_YES;
}

/* The checks of a request's first call; false when an answer is set. */
static bool admit(web_req_t *r, const char *method, const char *url)
{
    if (over_connections(r))
        return false;
    unsigned wait = rate_take(r->client);
    if (wait > 0) {
        char s[16];
        snprintf(s, sizeof s, "%u", wait);
        web_error(r, 429, "rate_limited",
                  "too many requests from %s (at most %u a second, bursts of %u): retry in %us",
                  r->client, cfg->rate, cfg->burst, wait);
        web_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, s);
        return false;
    }
    if (route(r, method, url) < 0)
        return false;
    /* two credentials: which one a proxy in front checked is unknown */
    unsigned n_auth = 0;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_authorization, &n_auth);
    if (n_auth > 1) {
        web_error(r, 400, "invalid", "more than one Authorization header (%u): send one", n_auth);
        return false;
    }
    size_t blen;
    const char *bearer = web_bearer_parse(web_header(r, MHD_HTTP_HEADER_AUTHORIZATION), &blen);
    if (bearer)
        r->bearer = xstrndup(bearer, blen);
    if (!r->bearer && !(r->route->flags & WEB_NO_AUTH)) {
        web_error(r, 401, "unauthenticated",
                  "this request needs an API token: 'Authorization: Bearer TOKEN' (drover "
                  "token create NAME --role read|submit|admin)");
        web_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"drover\"");
        return false;
    }
    /* a write from a page of another origin (CSRF; README "Web console") */
    const char *origin = web_header(r, MHD_HTTP_HEADER_ORIGIN);
    const char *host = web_header(r, MHD_HTTP_HEADER_HOST);
    if (!web_origin_allowed(method, origin, host)) {
        web_error(r, 403, "forbidden_origin",
                  "%s from origin '%.200s' refused: only pages of drover-web's own origin "
                  "(http(s)://%.200s) may write",
                  method, origin, host ? host : "(no Host header)");
        return false;
    }
    const char *cl = web_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || end == cl || n > cfg->max_body) {
            web_error(r, 413, "too_large", "the body is larger than the limit of %llu bytes",
                      (unsigned long long)cfg->max_body);
            return false;
        }
    }
    return true;
}

static enum MHD_Result queue(web_req_t *r)
{
    if (!r->resp)
        web_error(r, 500, "internal", "the handler gave no answer");
    enum MHD_Result rc = MHD_queue_response(r->conn, r->status, r->resp);
    MHD_destroy_response(r->resp); /* MHD holds its own reference */
    r->resp = NULL;
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    web_req_t *r = *con_cls;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->conn = conn;
        client_address(conn, r->client, sizeof r->client);
        *con_cls = r;
        if (!admit(r, method, url)) {
            web_guard_request_read(conn);
            r->dispatched = true;
            return queue(r);
        }
        return MHD_YES;
    }
    if (r->dispatched) { /* a refused request's body: dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!r->body_over && r->body.len + *upload_data_size <= cfg->max_body)
            sb_add(&r->body, upload_data, *upload_data_size);
        else
            r->body_over = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    r->dispatched = true;
    web_guard_request_read(conn);
    if (r->body_over)
        web_error(r, 413, "too_large", "the body is larger than the limit of %llu bytes",
                  (unsigned long long)cfg->max_body);
    else
        r->route->handler(r);
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    web_req_t *r = *con_cls;
    web_guard_request_done(conn);
    if (!r)
        return;
    if (r->resp)
        MHD_destroy_response(r->resp);
    free_captures(r);
    sb_free(&r->body);
    free(r->bearer);
    free(r);
    *con_cls = NULL;
}

/* libmicrohttpd's messages, at most MHD_LOG_BURST in each MHD_LOG_WINDOW_MS
 * (it says one per connection closed early: a client opening and dropping
 * connections would otherwise fill the log), then how many were dropped. */
#define MHD_LOG_BURST     20
#define MHD_LOG_WINDOW_MS 10000

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t window_ms;
    static unsigned in_window, dropped;
    char line[512];
    int64_t now = util_mono_ms();
    unsigned was_dropped = 0;
    bool say;
    pthread_mutex_lock(&log_mu);
    if (now - window_ms >= MHD_LOG_WINDOW_MS) {
        window_ms = now;
        in_window = 0;
        was_dropped = dropped;
        dropped = 0;
    }
    say = in_window < MHD_LOG_BURST;
    if (say)
        in_window++;
    else
        dropped++;
    pthread_mutex_unlock(&log_mu);
    if (was_dropped)
        log_warn("http: %u more messages not logged in the last %ds", was_dropped,
                 MHD_LOG_WINDOW_MS / 1000);
    if (!say)
        return;
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_warn("http: %s", line);
}

/* ---- start, stop ---- */

/* HOST:PORT or [V6]:PORT into ss. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, bool *v6)
{
    char host[256];
    const char *port;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return -1;
        snprintf(host, sizeof host, "%.*s", (int)(close - s - 1), s + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
            return -1;
        snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM},
                    *ai;
    if (!*port || getaddrinfo(*host ? host : NULL, port, &hints, &ai) != 0)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return 0;
}

int web_server_start(const web_config_t *c)
{
    struct sockaddr_storage ss = {0};
    bool v6 = false;
    cfg = c;
    if (parse_listen(c->listen, &ss, &v6) < 0) {
        log_error("--listen %s: expected HOST:PORT or [IPV6]:PORT", c->listen);
        return -1;
    }
    if (web_tls_load(c, &tls_cert, &tls_key) < 0)
        return -1;
    if (tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        log_error("tls-cert: this libmicrohttpd was built without TLS; serve HTTP behind a "
                  "TLS proxy instead (README \"HTTP API\")");
        return -1;
    }
    if (!buckets)
        buckets = xcalloc(RATE_SLOTS, sizeof *buckets);
    if (!conn_slots)
        conn_slots = xcalloc(RATE_SLOTS, sizeof *conn_slots);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    if (v6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    if (tls_cert) {
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key};
    }
    unsigned timeout_s = (unsigned)((c->timeout_ms + 999) / 1000);
    daemon_ = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)c->max_conns + 64, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)c->max_conns_ip + 8, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)c->header_limit,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!daemon_) {
        log_error("cannot listen on %s (in use? a bad address?)", c->listen);
        return -1;
    }
    if (web_guard_start(c) < 0) {
        MHD_stop_daemon(daemon_);
        daemon_ = NULL;
        return -1;
    }
    log_info("listening on %s://%s", tls_cert ? "https" : "http", c->listen);
    return 0;
}

void web_server_stop(void)
{
    web_set_stopping();
    web_client_interrupt();
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
    web_guard_stop();
    free(buckets);
    buckets = NULL;
    free(tls_cert);
    free(tls_key);
    tls_cert = tls_key = NULL;
    free(conn_slots);
    conn_slots = NULL;
}
