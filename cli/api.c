/* api — see api.h. Plain libzmq: a REQ socket with ZMQ_LINGER 0 so an
 * unanswered request never holds the process at exit, and receive/send
 * timeouts so a missing droverd is reported instead of waited on forever.
 * For ipc:// endpoints a socket nobody listens on is reported at once
 * rather than after the timeout. With patience, those "no answer" cases
 * are kept quiet and retried; every other failure is final at once. */
#include "keys.h" /* czmq first */

#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "log.h"
#include "util.h"

/* Bound on an answer's size; the largest legitimate ones are run views of
 * big fan-outs and 1 MiB log pages. */
#define API_MAX_ANSWER (256LL << 20)

struct api {
    void *ctx;
    void *sock; /* NULL until the first call, and after a timeout */
    char *endpoint;
    int timeout_ms;
    int64_t patience_ms;            /* 0: the first missed answer is an error */
    bool quiet;                     /* retrying: do not report missed answers */
    bool outage_noted;              /* a note went to stderr (api_take_outage) */
    bool quiet_errors;              /* api_set_quiet_errors */
    char *last_error;               /* the last error answer's text (owned) */
    Drover__ApiResponse *last_resp; /* the last error answer (owned; api_take_error_answer) */
    Drover__ApiErrorCode last_code;
};

static const char *key_flag, *server_key_flag;

void api_set_key_flag(bool server, const char *path)
{
    *(server ? &server_key_flag : &key_flag) = path;
}

/* CURVE for a tcp:// endpoint when keys are given. 0 or -errno (logged). */
static int apply_keys(api_t *api)
{
    const char *key = key_flag ? key_flag : getenv("DROVER_KEY");
    const char *server = server_key_flag ? server_key_flag : getenv("DROVER_SERVER_KEY");
    const char *ctx_api;
    char err[512];
    if (strncmp(api->endpoint, "tcp://", 6) != 0)
        return 0;
    /* a context's keys are for its own endpoint only */
    if ((ctx_api = context_setting("api")) && strcmp(ctx_api, api->endpoint) == 0) {
        if (!(key && *key))
            key = context_setting("key");
        if (!(server && *server))
            server = context_setting("server-key");
    }
    if (!(key && *key) && !(server && *server))
        return 0;
    if (!(key && *key) || !(server && *server)) {
        log_error("a CURVE API connection needs both --key (yours, secret) and --server-key "
                  "(droverd's public key), or $DROVER_KEY and $DROVER_SERVER_KEY");
        return -EINVAL;
    }
    zcert_t *mine = NULL, *theirs = NULL;
    int rc = keys_load_secret(key, &mine, err, sizeof err);
    if (rc == 0)
        rc = keys_load_public(server, &theirs, err, sizeof err);
    if (rc < 0) {
        log_error("%s", err);
    } else {
        zmq_setsockopt(api->sock, ZMQ_CURVE_SERVERKEY, zcert_public_txt(theirs), 40);
        zmq_setsockopt(api->sock, ZMQ_CURVE_PUBLICKEY, zcert_public_txt(mine), 40);
        zmq_setsockopt(api->sock, ZMQ_CURVE_SECRETKEY, zcert_secret_txt(mine), 40);
    }
    zcert_destroy(&mine);
    zcert_destroy(&theirs);
    return rc;
}

const char *api_endpoint(const char *flag)
{
    const char *env = getenv("DROVER_API");
    if (flag)
        return flag;
    if (env && *env)
        return env;
    if (context_setting("api"))
        return context_setting("api");
    return API_DEFAULT_ENDPOINT;
}

static int timeout_from_env(int *out)
{
    const char *s = getenv("DROVER_API_TIMEOUT_MS");
    uint32_t v;
    *out = API_DEFAULT_TIMEOUT_MS;
    if (!s || !*s)
        return 0;
    if (cli_parse_u32(s, &v) < 0 || v == 0 || v > 3600000) {
        log_error("DROVER_API_TIMEOUT_MS: expected milliseconds in 1..3600000, got '%s'", s);
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

api_t *api_new(const char *endpoint)
{
    int timeout_ms;
    if (timeout_from_env(&timeout_ms) < 0)
        return NULL;
    void *ctx = zmq_ctx_new();
    if (!ctx) {
        log_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    api_t *api = xcalloc(1, sizeof *api);
    api->ctx = ctx;
    api->endpoint = xstrdup(endpoint);
    api->timeout_ms = timeout_ms;
    return api;
}

static void close_socket(api_t *api)
{
    if (api->sock)
        zmq_close(api->sock);
    api->sock = NULL;
}

void api_destroy(api_t **api)
{
    if (!api || !*api)
        return;
    close_socket(*api);
    zmq_ctx_term((*api)->ctx);
    free((*api)->endpoint);
    free((*api)->last_error);
    if ((*api)->last_resp)
        drover__api_response__free_unpacked((*api)->last_resp, NULL);
    free(*api);
    *api = NULL;
}

static void report_no_answer(const api_t *api)
{
    if (api->quiet)
        return;
    log_error("no answer from droverd at %s (is droverd running? set --api or DROVER_API)",
              api->endpoint);
}

/* For ipc://PATH, fail fast when nothing listens there: a missing file,
 * a stale one (connection refused) or one we may not open. ZeroMQ would
 * otherwise retry quietly until the timeout. */
static int check_ipc_path(const api_t *api)
{
    const char *path = api->endpoint + strlen("ipc://");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc = 0;
    if (strncmp(api->endpoint, "ipc://", 6) != 0 || path[0] == '@' ||
        strlen(path) >= sizeof sa.sun_path)
        return 0; /* not a file (tcp, an abstract socket), or ZeroMQ will say */
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* let ZeroMQ try and report */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        rc = -errno;
        if (rc == -ENOENT || rc == -ECONNREFUSED)
            report_no_answer(api);
        else if (rc == -EACCES)
            log_error("cannot connect to droverd at %s: %s (the API socket is for root and "
                      "group drover: `sudo adduser $USER drover`, then log in again)",
                      api->endpoint, strerror(EACCES));
        else
            rc = 0; /* anything else: let ZeroMQ try */
    }
    close(fd);
    return rc;
}

static int open_socket(api_t *api)
{
    int linger = 0;
    int64_t max = API_MAX_ANSWER;
    int rc = check_ipc_path(api);
    if (rc < 0)
        return rc;
    api->sock = zmq_socket(api->ctx, ZMQ_REQ);
    if (!api->sock) {
        rc = -zmq_errno();
        log_error("zmq_socket(REQ): %s", zmq_strerror(-rc));
        return rc;
    }
    zmq_setsockopt(api->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(api->sock, ZMQ_RCVTIMEO, &api->timeout_ms, sizeof api->timeout_ms);
    zmq_setsockopt(api->sock, ZMQ_SNDTIMEO, &api->timeout_ms, sizeof api->timeout_ms);
    zmq_setsockopt(api->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if ((rc = apply_keys(api)) < 0) {
        close_socket(api);
        return rc;
    }
    if (zmq_connect(api->sock, api->endpoint) < 0) {
        rc = -zmq_errno();
        log_error("zmq_connect(%s): %s", api->endpoint, zmq_strerror(-rc));
        cli_set_failure(CLI_EXIT_UNREACHABLE);
        close_socket(api);
        return rc;
    }
    return 0;
}

static int send_request(api_t *api, const Drover__ApiRequest *req)
{
    size_t len = drover__api_request__get_packed_size(req);
    uint8_t *buf = xmalloc(len);
    drover__api_request__pack(req, buf);
    int rc = 0;
    while (zmq_send(api->sock, buf, len, 0) < 0) {
        if (zmq_errno() == EINTR)
            continue;
        rc = -zmq_errno();
        if (rc == -EAGAIN)
            report_no_answer(api);
        else
            log_error("zmq_send(%s): %s", api->endpoint, zmq_strerror(-rc));
        break;
    }
    free(buf);
    return rc;
}

/* Receive one frame into msg; the error is reported here. */
static int recv_answer(api_t *api, zmq_msg_t *msg)
{
    int64_t deadline = util_mono_ms() + api->timeout_ms;
    while (zmq_msg_recv(msg, api->sock, 0) < 0) {
        int err = zmq_errno();
        int64_t left = deadline - util_mono_ms();
        if (err == EINTR && left > 0) {
            int t = (int)left;
            zmq_setsockopt(api->sock, ZMQ_RCVTIMEO, &t, sizeof t);
            continue;
        }
        if (err == EAGAIN || err == EINTR) {
            report_no_answer(api);
            return -ETIMEDOUT;
        }
        log_error("zmq_msg_recv(%s): %s", api->endpoint, zmq_strerror(err));
        return -err;
    }
    zmq_setsockopt(api->sock, ZMQ_RCVTIMEO, &api->timeout_ms, sizeof api->timeout_ms);
    return 0;
}

/* The exit status for droverd's kind of error. */
static int exit_status_of(Drover__ApiErrorCode code)
{
    switch (code) {
    case DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND:
        return CLI_EXIT_NOT_FOUND;
    case DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED:
        return CLI_EXIT_DENIED;
    case DROVER__API_ERROR_CODE__API_ERROR_INVALID:
    case DROVER__API_ERROR_CODE__API_ERROR_CONFLICT:
        return CLI_EXIT_REFUSED;
    default:
        return CLI_EXIT_ERROR;
    }
}

static int decode(api_t *api, zmq_msg_t *msg, Drover__ApiResponse **resp)
{
    Drover__ApiResponse *r =
        drover__api_response__unpack(NULL, zmq_msg_size(msg), zmq_msg_data(msg));
    if (!r) {
        log_error("malformed answer from droverd at %s", api->endpoint);
        return -EPROTO;
    }
    if (r->error && *r->error) {
        free(api->last_error);
        api->last_error = xstrdup(r->error);
        api->last_code = r->error_code;
        if (!api->quiet_errors) {
            /* one error a line (a spec's errors come all at once) */
            for (const char *l = r->error; *l;) {
                size_t n = strcspn(l, "\n");
                log_error("%.*s", (int)n, l);
                l += n + (l[n] == '\n');
            }
            cli_set_failure(exit_status_of(r->error_code));
        }
        if (api->last_resp)
            drover__api_response__free_unpacked(api->last_resp, NULL);
        api->last_resp = r;
        return -EREMOTEIO;
    }
    *resp = r;
    return 0;
}

void api_set_quiet_errors(api_t *api, bool quiet)
{
    api->quiet_errors = quiet;
}

Drover__ApiErrorCode api_last_error(const api_t *api, const char **text)
{
    *text = api->last_error ? api->last_error : "";
    return api->last_error ? api->last_code : DROVER__API_ERROR_CODE__API_ERROR_OTHER;
}

void api_interrupt(api_t *api)
{
    zmq_ctx_shutdown(api->ctx);
}

Drover__ApiResponse *api_take_error_answer(api_t *api)
{
    Drover__ApiResponse *r = api->last_resp;
    api->last_resp = NULL;
    return r;
}

void api_report_last_error(const api_t *api)
{
    const char *text;
    Drover__ApiErrorCode code = api_last_error(api, &text);
    log_error("%s", *text ? text : "droverd answered with an error");
    cli_set_failure(exit_status_of(code));
}

void api_set_patience(api_t *api, int64_t ms)
{
    api->patience_ms = ms > 0 ? ms : 0;
}

bool api_take_outage(api_t *api)
{
    bool noted = api->outage_noted;
    api->outage_noted = false;
    return noted;
}

/* Whether rc from call_once means droverd did not answer (and a retry on a
 * new socket may well succeed). */
static bool no_answer(int rc)
{
    return rc == -ETIMEDOUT || rc == -ENOENT || rc == -ECONNREFUSED || rc == -EAGAIN;
}

/* One exchange: send req, wait for the answer, decode it. */
static int call_once(api_t *api, const Drover__ApiRequest *req, Drover__ApiResponse **resp)
{
    zmq_msg_t msg;
    int rc;
    *resp = NULL;
    free(api->last_error);
    api->last_error = NULL;
    if (api->last_resp)
        drover__api_response__free_unpacked(api->last_resp, NULL);
    api->last_resp = NULL;
    if (!api->sock && (rc = open_socket(api)) < 0)
        return rc;
    zmq_msg_init(&msg);
    rc = send_request(api, req);
    if (rc == 0)
        rc = recv_answer(api, &msg);
    if (rc == 0)
        rc = decode(api, &msg, resp);
    else
        close_socket(api); /* a REQ socket stuck mid-exchange is useless */
    zmq_msg_close(&msg);
    return rc;
}

/* Record the exit status for a failed call's rc (droverd's own errors are
 * recorded by decode). Returns rc. */
static int note_failure(int rc)
{
    if (rc < 0 && (no_answer(rc) || rc == -EACCES))
        cli_set_failure(CLI_EXIT_UNREACHABLE);
    return rc;
}

int api_call(api_t *api, const Drover__ApiRequest *req, Drover__ApiResponse **resp)
{
    int64_t first_miss = 0;
    bool lost = false;
    if (api->patience_ms == 0)
        return note_failure(call_once(api, req, resp));
    for (;;) {
        api->quiet = true;
        int rc = call_once(api, req, resp);
        api->quiet = false;
        if (!no_answer(rc)) {
            if (lost) {
                fprintf(stderr, "drover: note: droverd at %s answers again\n", api->endpoint);
                api->outage_noted = true;
            }
            return rc;
        }
        int64_t now = util_mono_ms();
        if (!lost) {
            lost = true;
            first_miss = now;
            fprintf(stderr,
                    "drover: note: no answer from droverd at %s; retrying for up to %llds\n",
                    api->endpoint, (long long)(api->patience_ms + 999) / 1000);
            api->outage_noted = true;
        }
        if (now - first_miss >= api->patience_ms) {
            log_error("no answer from droverd at %s for %llds; giving up", api->endpoint,
                      (long long)(now - first_miss) / 1000);
            return note_failure(rc);
        }
        cli_sleep_ms(API_RETRY_INTERVAL_MS);
    }
}

int api_get_run(api_t *api, const char *run_id, Drover__ApiResponse **resp)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    rr.id = (char *)run_id;
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = &rr;
    int rc = api_call(api, &req, resp);
    if (rc == 0 && !(*resp)->run) {
        log_error("droverd answered get_run without a run");
        drover__api_response__free_unpacked(*resp, NULL);
        *resp = NULL;
        rc = -EPROTO;
    }
    return rc;
}

int api_call_once(const char *endpoint_flag, const Drover__ApiRequest *req,
                  Drover__ApiResponse **resp)
{
    api_t *api = api_new(api_endpoint(endpoint_flag));
    *resp = NULL;
    if (!api)
        return -EINVAL;
    int rc = api_call(api, req, resp);
    api_destroy(&api);
    return rc;
}
