/* client — drover-web's droverd clients: a pool of cli/api.c clients (one
 * ZeroMQ REQ socket each). A call takes one from the pool (or makes one),
 * so each is used by one connection thread at a time, and gives it back
 * after; the pool keeps at most POOL_KEEP idle ones (the rest are closed),
 * so it follows the peak of concurrent calls. Errors are kept quiet in
 * api.c and mapped here to HTTP (web.h).
 *
 * Each client is a ZeroMQ context and socket (~FDS_PER_CLIENT open files);
 * libzmq aborts the process when it cannot make a descriptor, so the
 * clients alive at once (made or being made) are bounded by max_live,
 * what the open-files limit leaves after the connections: a call finding
 * none idle and max_live alive waits up to TAKE_WAIT_MS for one, then is
 * answered 503. */
#include "keys.h" /* czmq first */

#include "web.h"
#include "webd.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "api.h"
#include "log.h"
#include "util.h"

#define POOL_KEEP      64
#define FDS_PER_CLIENT 12   /* a ZeroMQ context + REQ socket, with room */
#define FDS_RESERVED   64   /* listening socket, logs, libmicrohttpd's own */
#define TAKE_WAIT_MS   5000 /* a call waiting for a client, at most */

static const char *endpoint;
static api_t *idle[POOL_KEEP];
static size_t n_idle;
static api_t **live; /* every client, idle or in use: web_client_interrupt */
static size_t n_live, cap_live;
static bool interrupted;
static size_t n_made, max_live = 1; /* clients alive or being made; the bound */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed = PTHREAD_COND_INITIALIZER; /* n_idle up or n_made down */

void web_client_init(const char *ep, unsigned max_conns)
{
    endpoint = ep;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_cur = rl.rlim_max = 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t used = (rlim_t)max_conns + 64 + FDS_RESERVED; /* MHD's limit is max_conns + 64 */
    max_live =
        rl.rlim_cur > used + FDS_PER_CLIENT ? (size_t)((rl.rlim_cur - used) / FDS_PER_CLIENT) : 1;
    if (max_live < max_conns)
        log_warn("open files limited to %llu: at most %zu droverd calls at once for %u "
                 "connections (raise LimitNOFILE, or lower --max-connections)",
                 (unsigned long long)rl.rlim_cur, max_live, max_conns);
}

static void destroy(api_t *a)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_live; i++)
        if (live[i] == a) {
            live[i] = live[--n_live];
            break;
        }
    pthread_mutex_unlock(&mu);
    api_destroy(&a);
    pthread_mutex_lock(&mu);
    n_made--;
    pthread_cond_signal(&freed);
    pthread_mutex_unlock(&mu);
}

void web_client_shutdown(void)
{
    pthread_mutex_lock(&mu);
    api_t *list[POOL_KEEP];
    size_t n = n_idle;
    memcpy(list, idle, n * sizeof *list);
    n_idle = 0;
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < n; i++)
        destroy(list[i]);
    free(live);
    live = NULL;
    n_live = cap_live = 0;
}

void web_client_interrupt(void)
{
    pthread_mutex_lock(&mu);
    interrupted = true;
    pthread_cond_broadcast(&freed);
    for (size_t i = 0; i < n_live; i++)
        api_interrupt(live[i]);
    pthread_mutex_unlock(&mu);
}

/* An idle client, or a new one within max_live (waiting up to
 * TAKE_WAIT_MS for either); NULL when none came. */
static api_t *take(void)
{
    api_t *a = NULL;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += TAKE_WAIT_MS / 1000;
    pthread_mutex_lock(&mu);
    while (n_idle == 0 && n_made >= max_live && !interrupted)
        if (pthread_cond_timedwait(&freed, &mu, &until) == ETIMEDOUT)
            break;
    if (n_idle > 0)
        a = idle[--n_idle];
    else if (n_made < max_live)
        n_made++; /* this thread makes one */
    else {
        pthread_mutex_unlock(&mu);
        return NULL;
    }
    pthread_mutex_unlock(&mu);
    if (a)
        return a;
    if (!(a = api_new(endpoint))) {
        pthread_mutex_lock(&mu);
        n_made--;
        pthread_cond_signal(&freed);
        pthread_mutex_unlock(&mu);
        return NULL;
    }
    api_set_quiet_errors(a, true);
    pthread_mutex_lock(&mu);
    if (n_live == cap_live) {
        cap_live = cap_live ? cap_live * 2 : 16;
        live = xrealloc(live, cap_live * sizeof *live);
    }
    live[n_live++] = a;
    if (interrupted)
        api_interrupt(a);
    pthread_mutex_unlock(&mu);
    return a;
}

static void give_back(api_t *a)
{
    pthread_mutex_lock(&mu);
    if (n_idle < POOL_KEEP) {
        idle[n_idle++] = a;
        a = NULL;
        pthread_cond_signal(&freed);
    }
    pthread_mutex_unlock(&mu);
    if (a)
        destroy(a);
}

static void map_code(web_call_error_t *err, Drover__ApiErrorCode code)
{
    err->api_code = code;
    switch (code) {
    case DROVER__API_ERROR_CODE__API_ERROR_UNAUTHENTICATED:
        err->status = 401, err->code = "unauthenticated";
        break;
    case DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED:
        err->status = 403, err->code = "permission_denied";
        break;
    case DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND:
        err->status = 404, err->code = "not_found";
        break;
    case DROVER__API_ERROR_CODE__API_ERROR_INVALID:
        err->status = 400, err->code = "invalid";
        break;
    case DROVER__API_ERROR_CODE__API_ERROR_CONFLICT:
        err->status = 409, err->code = "conflict";
        break;
    default:
        err->status = 500, err->code = "internal";
        break;
    }
}

int web_call(const char *bearer, Drover__ApiRequest *req, Drover__ApiResponse **resp,
             web_call_error_t *err)
{
    memset(err, 0, sizeof *err);
    *resp = NULL;
    api_t *a = take();
    if (!a) {
        err->status = 503, err->code = "unavailable";
        snprintf(err->message, sizeof err->message,
                 "drover-web is busy: no droverd client free in %ds (at most %zu at once, "
                 "within its open-files limit): retry later",
                 TAKE_WAIT_MS / 1000, max_live);
        return -1;
    }
    char *saved = req->bearer;
    req->bearer = (char *)(bearer ? bearer : "");
    int rc = api_call(a, req, resp);
    req->bearer = saved;
    if (rc == 0) {
        give_back(a);
        return 0;
    }
    if (rc == -EREMOTEIO) {
        const char *text;
        map_code(err, api_last_error(a, &text));
        snprintf(err->message, sizeof err->message, "%s", text);
        err->resp = api_take_error_answer(a);
    } else if (rc == -ETERM) {
        err->status = 503, err->code = "unavailable";
        snprintf(err->message, sizeof err->message, "drover-web is stopping");
    } else if (rc == -ETIMEDOUT || rc == -ENOENT || rc == -ECONNREFUSED || rc == -EAGAIN ||
               rc == -EACCES) {
        err->status = 503, err->code = "unavailable";
        snprintf(err->message, sizeof err->message, "droverd at %s cannot be reached: %s", endpoint,
                 rc == -ETIMEDOUT ? "no answer in time" : strerror(-rc));
    } else {
        err->status = 500, err->code = "internal";
        snprintf(err->message, sizeof err->message, "talking to droverd at %s failed: %s", endpoint,
                 strerror(-rc));
    }
    give_back(a);
    return -1;
}

void web_call_error_free(web_call_error_t *err)
{
    if (err->resp)
        drover__api_response__free_unpacked(err->resp, NULL);
    err->resp = NULL;
}
