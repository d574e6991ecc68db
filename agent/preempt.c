/* preempt — see preempt.h.
 *
 * One thread owns a curl multi handle and a fixed set of channels, one per
 * metadata endpoint (AWS token, instance-action, rebalance; GCP preempted,
 * maintenance-event; Azure VM name, events, acknowledgement). A channel has
 * at most one transfer in flight and a due time for its next start. The
 * thread starts due channels, sleeps in curl_multi_poll until a socket is
 * ready or the next channel is due, and handles finished transfers;
 * destroy and ack wake it with curl_multi_wakeup, so a hanging request or
 * an open GCP long poll never delays them. Notices travel to the loop in a
 * mutex-protected queue woken by ev_async.
 *
 * Dedupe: AWS by action+time and noticeTime, GCP by value change, Azure by
 * EventId. A channel's error state is logged when it begins and when it
 * clears; repeats go to debug. Each provider's flow:
 *   AWS    per poll: PUT api/token when there is no (valid) token, then GET
 *          instance-action and rebalance together; a 401 drops the token
 *          and starts a new cycle at once (once, unless the token was new).
 *   GCP    a plain GET learns the value and ETag, then long polls with
 *          wait_for_change=true&last_etag=ETAG, so no change is missed.
 *          maintenance-event back to NONE after MIGRATE/TERMINATE is a
 *          PREEMPT_WITHDRAWN notice (the agent drops its at-risk mark).
 *   Azure  the VM name once, then Scheduled Events every poll; the first
 *          events call may take the platform up to two minutes. An event
 *          whose Resources names other VMs as well is reported but never
 *          acknowledged: Azure lets an acknowledged event proceed for
 *          every VM listed, which would cut the others' notice short.
 *          Acknowledgements go one event per POST, each with its own
 *          tries and due time, so a rejected EventId holds up no other.
 */
#include "preempt.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "json.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define DEFAULT_POLL_MS     1000
#define DEFAULT_TIMEOUT_MS  2000
#define MAX_SLEEP_MS        1000
#define NEVER               INT64_MAX
#define AWS_TOKEN_TTL_S     21600
#define AWS_TOKEN_MAX       1024
#define GCP_LONG_POLL_S     60
#define GCP_LONG_POLL_SLACK 15000 /* ms of curl timeout beyond timeout_sec */
#define GCP_NOTICE_MS       30000 /* preempted: the VM stops ~30 s later */
#define GCP_MAINT_MS        60000 /* TERMINATE_ON_HOST_MAINTENANCE: ~60 s notice */
#define AZ_API              "api-version=2020-07-01"
#define AZ_IMDS_API         "api-version=2021-02-01"
#define AZ_FIRST_MS         120000 /* the first Scheduled Events call may take 2 min */
#define AZ_NAME_MAX         128
#define AZ_ID_MAX           128
#define AZ_EVENTS_MAX       256
#define AZ_RESOURCES_MAX    1024
#define AZ_SEEN_MAX         64
#define AZ_ACK_TRIES        3
#define NOTICE_QUEUE_MAX    64
#define ETAG_MAX            128
#define USER_AGENT          "drover-agent/" DROVER_VERSION

typedef enum {
    CH_AWS_TOKEN,
    CH_AWS_ACTION,
    CH_AWS_REBALANCE,
    CH_GCP_PREEMPTED,
    CH_GCP_MAINT,
    CH_AZ_NAME,
    CH_AZ_EVENTS,
    CH_AZ_ACK,
    CH_COUNT
} chan_id_t;

/* One HTTP transfer and what came back. */
typedef struct {
    CURL *easy; /* non-NULL while set up / in flight */
    struct curl_slist *hdrs;
    char *post;          /* request body (owned), or NULL */
    strbuf_t answer;     /* the answer as it arrives */
    char *body;          /* the whole answer once it succeeded (never NULL then) */
    bool too_big;        /* the answer exceeded PREEMPT_MAX_BODY */
    bool google;         /* the answer carried Metadata-Flavor: Google */
    char etag[ETAG_MAX]; /* the answer's ETag ("" when none or unusable) */
    char errbuf[CURL_ERROR_SIZE];
} xfer_t;

typedef struct {
    chan_id_t id;
    bool on;  /* its provider is configured */
    xfer_t x; /* x.easy != NULL while in flight */
    const char *method;
    char *url;           /* of the transfer in flight or last finished (for logs) */
    int64_t due;         /* monotonic ms of the next start; NEVER = not scheduled */
    bool failing;        /* an error was logged and has not cleared */
    char *last;          /* dedupe key: the last value or event seen */
    char etag[ETAG_MAX]; /* GCP: ETag of last, for the next long poll */
} chan_t;

typedef struct {
    char id[AZ_ID_MAX];
    bool reported;    /* a Preempt/Terminate notice went out for it */
    bool shared;      /* its Resources names other VMs too: never acknowledged */
    bool ack_pending; /* acknowledgement asked for and not yet done */
    bool in_ack;      /* its acknowledgement POST is in flight */
    bool acked;
    int ack_tries;
    int64_t ack_due; /* monotonic ms of its next acknowledgement try */
} az_seen_t;

struct preempt_watch {
    struct ev_loop *loop;
    preempt_notice_fn fn;
    void *arg;
    char *aws, *gcp, *azure; /* base URLs without a trailing '/'; NULL = off */
    uint32_t poll_ms, timeout_ms;
    CURLM *multi;
    pthread_t thread;
    ev_async async_w;
    bool *gone; /* while on_async runs callbacks: set when destroyed */

    pthread_mutex_t lock; /* guards the four fields below */
    bool stop, ack_wanted;
    preempt_notice_t queue[NOTICE_QUEUE_MAX];
    size_t n_queue;

    /* watcher thread only */
    chan_t ch[CH_COUNT];
    char *aws_token;
    int64_t aws_token_mono;
    bool aws_token_fresh; /* fetched in this cycle */
    bool aws_retoken;     /* a 401 dropped the token: new cycle at once */
    char *az_vm;
    bool az_answered; /* Scheduled Events answered once */
    az_seen_t seen[AZ_SEEN_MAX];
    size_t n_seen;
};

static const char *const chan_names[CH_COUNT] = {
    [CH_AWS_TOKEN] = "aws api/token",
    [CH_AWS_ACTION] = "aws spot/instance-action",
    [CH_AWS_REBALANCE] = "aws events/recommendations/rebalance",
    [CH_GCP_PREEMPTED] = "gcp instance/preempted",
    [CH_GCP_MAINT] = "gcp instance/maintenance-event",
    [CH_AZ_NAME] = "azure instance/compute/name",
    [CH_AZ_EVENTS] = "azure scheduledevents",
    [CH_AZ_ACK] = "azure scheduledevents acknowledgement",
};

/* ------------------------------------------------------------ helpers */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* curl_global_init exactly once per process (it is not thread-safe, and
 * libcurl keeps its global state until exit: still reachable, no leak). */
static int curl_ready(void)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        log_error("preempt: curl_global_init: %s", curl_easy_strerror(curl_init_rc));
        return -EIO;
    }
    return 0;
}

/* Copy src into dst[size] with anything but printable ASCII as '?'. */
static void copy_printable(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < size; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

/* Strip trailing whitespace (metadata text values may end in a newline). */
static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

static char *base_url(const char *url)
{
    if (!url || !*url)
        return NULL;
    char *s = xstrdup(url);
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

static bool same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

int preempt_parse_rfc3339(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!p)
        return -EINVAL;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return -EINVAL;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        if (hh > 23 || mm > 59)
            return -EINVAL;
        offset_s = (*p == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ms = ((int64_t)t - offset_s) * 1000 + frac;
    return 0;
}

/* The C locale's day and month names are assumed (the agent never calls
 * setlocale), which is what RFC 1123 dates use. */
int preempt_parse_rfc1123(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = s ? strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm) : NULL;
    if (!p)
        return -EINVAL;
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return -EINVAL;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ms = (int64_t)t * 1000;
    return 0;
}

/* ------------------------------------------------------------ HTTP */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t n = size * nmemb;
    if (n == 0)
        return 0;
    if (x->answer.len + n > PREEMPT_MAX_BODY) {
        x->too_big = true;
        return 0; /* aborts the transfer */
    }
    sb_add(&x->answer, data, n);
    return n;
}

/* Whether header line h[0..n) is "name: value"; *v, *vlen the trimmed value. */
static bool header_is(const char *h, size_t n, const char *name, const char **v, size_t *vlen)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(h, name, k) != 0 || h[k] != ':')
        return false;
    const char *p = h + k + 1, *end = h + n;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    *v = p;
    *vlen = (size_t)(end - p);
    return true;
}

static size_t on_header(char *h, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t n = size * nmemb;
    const char *v;
    size_t vlen;
    if (n >= 5 && strncmp(h, "HTTP/", 5) == 0) { /* a new response: forget the last one's */
        x->google = false;
        x->etag[0] = '\0';
    } else if (header_is(h, n, "Metadata-Flavor", &v, &vlen)) {
        x->google = vlen == 6 && memcmp(v, "Google", 6) == 0;
    } else if (header_is(h, n, "ETag", &v, &vlen)) {
        /* only plain tokens: it goes back into a URL */
        bool ok = vlen > 0 && vlen < sizeof x->etag;
        for (size_t i = 0; ok && i < vlen; i++)
            ok = isalnum((unsigned char)v[i]) || v[i] == '-' || v[i] == '_';
        if (ok) {
            memcpy(x->etag, v, vlen);
            x->etag[vlen] = '\0';
        } else {
            x->etag[0] = '\0';
        }
    }
    return n;
}

/* Set up x for one request: method "GET", "PUT" (empty body) or "POST"
 * (post, owned by x from now on), header lines hdrs[0..n). */
static int xfer_setup(xfer_t *x, const char *method, const char *url, const char *const *hdrs,
                      size_t n, char *post, long timeout_ms, long connect_ms)
{
    memset(x, 0, sizeof *x);
    x->post = post;
    x->easy = curl_easy_init();
    if (!x->easy) {
        log_error("preempt: curl_easy_init failed");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        x->hdrs = curl_slist_append(x->hdrs, hdrs[i]);
    x->hdrs = curl_slist_append(x->hdrs, "Expect:"); /* never wait for 100-continue */
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* metadata is link-local: never via a proxy */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* stopping must not wait for a slow name resolution to finish */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, post ? post : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(post ? strlen(post) : 0));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    return 0;
}

/* After the transfer ended with rc: 0 and *status, or -EIO with a reason. */
static int xfer_result(xfer_t *x, CURLcode rc, long *status, char *why, size_t whylen)
{
    *status = 0;
    if (x->too_big) {
        snprintf(why, whylen, "answer larger than %d bytes", PREEMPT_MAX_BODY);
        return -EIO;
    }
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        return -EIO;
    }
    if (x->answer.len &&
        strlen(x->answer.buf) != x->answer.len) { /* no metadata answer holds one */
        snprintf(why, whylen, "answer holds a NUL byte");
        return -EIO;
    }
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, status);
    free(x->body);
    x->body = sb_take(&x->answer);
    return 0;
}

static void xfer_free(xfer_t *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->post);
    sb_free(&x->answer);
    free(x->body);
    memset(x, 0, sizeof *x);
}

/* A blocking request (spot detection): 0 with *status and x->body set, or
 * -EIO with a reason. The caller frees x with xfer_free. */
static int http_blocking(xfer_t *x, const char *method, const char *url, const char *hdr,
                         long timeout_ms, long *status, char *why, size_t whylen)
{
    if (xfer_setup(x, method, url, &hdr, 1, NULL, timeout_ms, timeout_ms) != 0) {
        snprintf(why, whylen, "curl_easy_init failed");
        return -EIO;
    }
    CURLcode rc = curl_easy_perform(x->easy);
    char reason[CURL_ERROR_SIZE + 64];
    if (xfer_result(x, rc, status, reason, sizeof reason) != 0) {
        snprintf(why, whylen, "%s %s: %s", method, url, reason);
        return -EIO;
    }
    return 0;
}

/* ------------------------------------------------------------ channels */

static long timeout_of(const preempt_watch_t *w)
{
    return (long)w->timeout_ms;
}

/* Start channel c: the transfer described; url is taken over. */
static void chan_start(preempt_watch_t *w, chan_t *c, const char *method, char *url,
                       const char *const *hdrs, size_t n, char *post, long timeout_ms)
{
    free(c->url);
    c->url = url;
    c->method = method;
    if (xfer_setup(&c->x, method, url, hdrs, n, post, timeout_ms, timeout_of(w)) != 0) {
        xfer_free(&c->x);
        c->due = util_mono_ms() + w->poll_ms;
        return;
    }
    curl_easy_setopt(c->x.easy, CURLOPT_PRIVATE, (void *)c);
    CURLMcode mc = curl_multi_add_handle(w->multi, c->x.easy);
    if (mc != CURLM_OK) {
        log_error("preempt: curl_multi_add_handle: %s", curl_multi_strerror(mc));
        xfer_free(&c->x);
        c->due = util_mono_ms() + w->poll_ms;
    }
}

static void chan_error(chan_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A failed poll: logged as a warning only when the channel was fine. */
static void chan_error(chan_t *c, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (c->failing) {
        log_debug("preempt: %s %s: %s", c->method, c->url, why);
        return;
    }
    c->failing = true;
    log_warn("preempt: %s %s: %s (still polling; logged again when it recovers)", c->method, c->url,
             why);
}

static void chan_ok(chan_t *c)
{
    if (c->failing) {
        c->failing = false;
        log_info("preempt: %s %s: answering again", c->method, c->url);
    }
}

static void notify(preempt_watch_t *w, preempt_kind_t kind, const char *source, int64_t deadline,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Queue a notice for the loop thread. */
static void notify(preempt_watch_t *w, preempt_kind_t kind, const char *source, int64_t deadline,
                   const char *fmt, ...)
{
    preempt_notice_t n;
    char detail[sizeof n.detail];
    va_list ap;
    memset(&n, 0, sizeof n);
    n.kind = kind;
    snprintf(n.source, sizeof n.source, "%s", source);
    n.deadline_ms = deadline;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    copy_printable(n.detail, sizeof n.detail, detail);
    const char *what = kind == PREEMPT_TERMINATE   ? "terminate notice"
                       : kind == PREEMPT_REBALANCE ? "rebalance notice"
                                                   : "notice withdrawn";
    if (deadline > 0)
        log_info("preempt: %s, %.1f s left: %s", what, (double)(deadline - util_now_ms()) / 1000.0,
                 n.detail);
    else
        log_info("preempt: %s: %s", what, n.detail);
    pthread_mutex_lock(&w->lock);
    if (w->n_queue < NOTICE_QUEUE_MAX)
        w->queue[w->n_queue++] = n;
    else
        log_error("preempt: notice queue full, dropped: %s", n.detail);
    pthread_mutex_unlock(&w->lock);
    ev_async_send(w->loop, &w->async_w);
}

/* ------------------------------------------------------------ AWS */

static void aws_query(preempt_watch_t *w)
{
    char *hdr = xasprintf("X-aws-ec2-metadata-token: %s", w->aws_token);
    const char *hdrs[] = {hdr};
    chan_start(w, &w->ch[CH_AWS_ACTION], "GET",
               xasprintf("%s/latest/meta-data/spot/instance-action", w->aws), hdrs, 1, NULL,
               timeout_of(w));
    chan_start(w, &w->ch[CH_AWS_REBALANCE], "GET",
               xasprintf("%s/latest/meta-data/events/recommendations/rebalance", w->aws), hdrs, 1,
               NULL, timeout_of(w));
    free(hdr);
    if (!w->ch[CH_AWS_ACTION].x.easy && !w->ch[CH_AWS_REBALANCE].x.easy)
        w->ch[CH_AWS_TOKEN].due = util_mono_ms() + w->poll_ms; /* could not start either */
}

/* The poll cycle, driven by the token channel's due time. */
static void aws_start(preempt_watch_t *w, chan_t *c)
{
    if (w->aws_token && util_mono_ms() - w->aws_token_mono < (AWS_TOKEN_TTL_S - 60) * 1000LL) {
        aws_query(w);
        return;
    }
    free(w->aws_token);
    w->aws_token = NULL;
    const char *hdrs[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600"};
    chan_start(w, c, "PUT", xasprintf("%s/latest/api/token", w->aws), hdrs, 1, NULL, timeout_of(w));
}

static bool valid_token(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > AWS_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= 0x20 || t[i] >= 0x7f)
            return false;
    return true;
}

static void aws_token_done(preempt_watch_t *w, chan_t *c, int r, long status, const char *why)
{
    if (r == 0 && status == 200)
        rtrim(c->x.body);
    if (r != 0)
        chan_error(c, "%s", why);
    else if (status != 200)
        chan_error(c, "HTTP %ld", status);
    else if (!valid_token(c->x.body))
        chan_error(c, "malformed token");
    if (r != 0 || status != 200 || !valid_token(c->x.body)) {
        c->due = util_mono_ms() + w->poll_ms;
        return;
    }
    chan_ok(c);
    w->aws_token = xstrdup(c->x.body);
    w->aws_token_mono = util_mono_ms();
    w->aws_token_fresh = true;
    aws_query(w);
}

/* 200 from instance-action: 0 (and maybe a notice) or -EINVAL. */
static int aws_action(preempt_watch_t *w, chan_t *c)
{
    char *action = NULL, *when = NULL;
    int rc = -EINVAL;
    if (json_text_member(c->x.body, "action", &action) != 0 ||
        json_text_member(c->x.body, "time", &when) != 0)
        goto cleanup;
    if (strcmp(action, "terminate") != 0 && strcmp(action, "stop") != 0 &&
        strcmp(action, "hibernate") != 0)
        goto cleanup;
    rc = 0;
    char *key = xasprintf("%s %s", action, when);
    if (same(key, c->last)) {
        free(key);
        goto cleanup;
    }
    free(c->last);
    c->last = key;
    int64_t deadline = 0;
    if (preempt_parse_rfc3339(when, &deadline) != 0) {
        char safe[65];
        copy_printable(safe, sizeof safe, when);
        log_warn("preempt: aws spot/instance-action: cannot parse time \"%s\": no deadline", safe);
        deadline = 0;
    }
    notify(w, PREEMPT_TERMINATE, "aws", deadline, "aws spot/instance-action %s at %s", action,
           when);
cleanup:
    free(action);
    free(when);
    return rc;
}

/* 200 from rebalance: 0 (and maybe a notice) or -EINVAL. */
static int aws_rebalance(preempt_watch_t *w, chan_t *c)
{
    char *when = NULL;
    if (json_text_member(c->x.body, "noticeTime", &when) != 0)
        return -EINVAL;
    if (same(when, c->last)) {
        free(when);
        return 0;
    }
    free(c->last);
    c->last = when;
    notify(w, PREEMPT_REBALANCE, "aws", 0, "aws events/recommendations/rebalance noticeTime %s",
           when);
    return 0;
}

static void aws_data_done(preempt_watch_t *w, chan_t *c, int r, long status, const char *why)
{
    if (r != 0) {
        chan_error(c, "%s", why);
    } else if (status == 401) {
        /* the token expired (or the server restarted): get a new one */
        if (w->aws_token_fresh)
            chan_error(c, "HTTP 401 with a new token");
        else
            w->aws_retoken = true;
        free(w->aws_token);
        w->aws_token = NULL;
    } else if (status == 404) {
        chan_ok(c); /* no notice */
    } else if (status == 200) {
        int pr = c->id == CH_AWS_ACTION ? aws_action(w, c) : aws_rebalance(w, c);
        if (pr == 0)
            chan_ok(c);
        else
            chan_error(c, "malformed answer");
    } else {
        chan_error(c, "HTTP %ld", status);
    }
    if (w->ch[CH_AWS_ACTION].x.easy || w->ch[CH_AWS_REBALANCE].x.easy)
        return; /* the other half of the cycle is still out */
    w->ch[CH_AWS_TOKEN].due = util_mono_ms() + (w->aws_retoken ? 0 : w->poll_ms);
    w->aws_retoken = false;
    w->aws_token_fresh = false;
}

/* ------------------------------------------------------------ GCP */

static void gcp_start(preempt_watch_t *w, chan_t *c)
{
    const char *path = c->id == CH_GCP_PREEMPTED ? "preempted" : "maintenance-event";
    const char *hdrs[] = {"Metadata-Flavor: Google"};
    if (c->etag[0])
        chan_start(w, c, "GET",
                   xasprintf("%s/computeMetadata/v1/instance/%s?wait_for_change=true&last_etag=%s"
                             "&timeout_sec=%d",
                             w->gcp, path, c->etag, GCP_LONG_POLL_S),
                   hdrs, 1, NULL, GCP_LONG_POLL_S * 1000L + GCP_LONG_POLL_SLACK);
    else
        chan_start(w, c, "GET", xasprintf("%s/computeMetadata/v1/instance/%s", w->gcp, path), hdrs,
                   1, NULL, timeout_of(w));
}

static void gcp_done(preempt_watch_t *w, chan_t *c, int r, long status, const char *why)
{
    int64_t now = util_mono_ms();
    const char *v = c->x.body;
    if (r == 0)
        rtrim(c->x.body);
    bool preempted = c->id == CH_GCP_PREEMPTED;
    bool known = r == 0 && (preempted ? strcmp(v, "TRUE") == 0 || strcmp(v, "FALSE") == 0
                                      : strcmp(v, "NONE") == 0 ||
                                            strcmp(v, "MIGRATE_ON_HOST_MAINTENANCE") == 0 ||
                                            strcmp(v, "TERMINATE_ON_HOST_MAINTENANCE") == 0);
    if (r != 0)
        chan_error(c, "%s", why);
    else if (status != 200)
        chan_error(c, "HTTP %ld", status);
    else if (!c->x.google)
        chan_error(c, "answer without Metadata-Flavor: Google");
    else if (!known) {
        char safe[41];
        copy_printable(safe, sizeof safe, v);
        chan_error(c, "unexpected value \"%s\"", safe);
    }
    if (r != 0 || status != 200 || !c->x.google || !known) {
        c->due = now + w->poll_ms;
        return;
    }
    chan_ok(c);
    snprintf(c->etag, sizeof c->etag, "%s", c->x.etag);
    if (same(v, c->last)) {
        /* a long poll that timed out: no hurry (a change since makes the
         * next one return at once) */
        c->due = now + w->poll_ms;
        return;
    }
    bool was_event = c->last && strcmp(c->last, "NONE") != 0;
    free(c->last);
    c->last = xstrdup(v);
    c->due = c->etag[0] ? now : now + w->poll_ms; /* without an ETag: plain polling */
    if (preempted && strcmp(v, "TRUE") == 0)
        notify(w, PREEMPT_TERMINATE, "gcp", util_now_ms() + GCP_NOTICE_MS,
               "gcp instance/preempted TRUE");
    else if (!preempted && strcmp(v, "TERMINATE_ON_HOST_MAINTENANCE") == 0)
        notify(w, PREEMPT_TERMINATE, "gcp", util_now_ms() + GCP_MAINT_MS,
               "gcp instance/maintenance-event TERMINATE_ON_HOST_MAINTENANCE");
    else if (!preempted && strcmp(v, "MIGRATE_ON_HOST_MAINTENANCE") == 0)
        notify(w, PREEMPT_REBALANCE, "gcp", 0,
               "gcp instance/maintenance-event MIGRATE_ON_HOST_MAINTENANCE");
    else if (!preempted && was_event) /* NONE again: the maintenance is over */
        notify(w, PREEMPT_WITHDRAWN, "gcp", 0, "gcp instance/maintenance-event NONE");
}

/* ------------------------------------------------------------ Azure */

static void az_name_start(preempt_watch_t *w, chan_t *c)
{
    const char *hdrs[] = {"Metadata: true"};
    chan_start(w, c, "GET",
               xasprintf("%s/metadata/instance/compute/name?" AZ_IMDS_API "&format=text", w->azure),
               hdrs, 1, NULL, timeout_of(w));
}

static void az_name_done(preempt_watch_t *w, chan_t *c, int r, long status, const char *why)
{
    if (r == 0)
        rtrim(c->x.body);
    bool ok =
        r == 0 && status == 200 && util_valid_name(c->x.body, strlen(c->x.body), AZ_NAME_MAX, NULL);
    if (r != 0)
        chan_error(c, "%s", why);
    else if (status != 200)
        chan_error(c, "HTTP %ld", status);
    else if (!ok)
        chan_error(c, "malformed VM name");
    if (!ok) {
        c->due = util_mono_ms() + w->poll_ms;
        return;
    }
    chan_ok(c);
    w->az_vm = xstrdup(c->x.body);
    log_info("preempt: azure: watching Scheduled Events for VM %s", w->az_vm);
    w->ch[CH_AZ_EVENTS].due = util_mono_ms();
}

static void az_events_start(preempt_watch_t *w, chan_t *c)
{
    const char *hdrs[] = {"Metadata: true"};
    long timeout = timeout_of(w);
    if (!w->az_answered && timeout < AZ_FIRST_MS)
        timeout = AZ_FIRST_MS;
    chan_start(w, c, "GET", xasprintf("%s/metadata/scheduledevents?" AZ_API, w->azure), hdrs, 1,
               NULL, timeout);
}

static az_seen_t *az_find(preempt_watch_t *w, const char *id)
{
    for (size_t i = 0; i < w->n_seen; i++)
        if (strcmp(w->seen[i].id, id) == 0)
            return &w->seen[i];
    return NULL;
}

/* Remember id; when full, forget the oldest event that needs no more work. */
static az_seen_t *az_remember(preempt_watch_t *w, const char *id)
{
    if (w->n_seen == AZ_SEEN_MAX) {
        size_t victim = 0;
        for (size_t i = 0; i < w->n_seen; i++)
            if (!w->seen[i].ack_pending && !w->seen[i].in_ack &&
                (!w->seen[i].reported || w->seen[i].acked)) {
                victim = i;
                break;
            }
        memmove(&w->seen[victim], &w->seen[victim + 1],
                (w->n_seen - victim - 1) * sizeof w->seen[0]);
        w->n_seen--;
    }
    az_seen_t *s = &w->seen[w->n_seen++];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    return s;
}

/* Whether the Resources array text res names this VM; *others: how many
 * other VMs it names. */
static bool az_mine(preempt_watch_t *w, const char *res, size_t *others)
{
    char **items = NULL;
    size_t n = 0;
    bool mine = false;
    *others = 0;
    if (res[0] != '[' ||
        json_text_list(res, strlen(res), AZ_RESOURCES_MAX, &items, &n, NULL, 0) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(items[i], w->az_vm) == 0) /* Azure names ignore case */
            mine = true;
        else
            (*others)++;
    }
    json_text_list_free(items, n);
    return mine;
}

/* One element of Events. */
static void az_event(preempt_watch_t *w, const char *ev)
{
    char *id = NULL, *type = NULL, *res = NULL, *nb = NULL;
    size_t others = 0;
    if (json_text_member(ev, "EventId", &id) != 0 ||
        json_text_member(ev, "EventType", &type) != 0 ||
        json_text_member(ev, "Resources", &res) != 0) {
        log_debug("preempt: azure: skipping an event without EventId/EventType/Resources");
        goto cleanup;
    }
    if (!*id || strlen(id) >= AZ_ID_MAX || az_find(w, id) || !az_mine(w, res, &others))
        goto cleanup;
    char safe_id[AZ_ID_MAX], safe_type[32];
    copy_printable(safe_id, sizeof safe_id, id);
    copy_printable(safe_type, sizeof safe_type, type);
    az_seen_t *s = az_remember(w, id);
    if (strcmp(type, "Preempt") != 0 && strcmp(type, "Terminate") != 0) {
        log_info("preempt: azure: %s event %s for this VM ignored", safe_type, safe_id);
        goto cleanup;
    }
    int64_t deadline = 0;
    if (json_text_member(ev, "NotBefore", &nb) == 0 && *nb &&
        preempt_parse_rfc1123(nb, &deadline)) {
        char safe[65];
        copy_printable(safe, sizeof safe, nb);
        log_warn("preempt: azure: event %s: cannot parse NotBefore \"%s\": no deadline", safe_id,
                 safe);
        deadline = 0;
    }
    s->reported = true;
    s->shared = others > 0;
    if (s->shared)
        log_info("preempt: azure: event %s also names %zu other VM%s: it will not be "
                 "acknowledged (that would let it proceed for them too); it starts at its "
                 "NotBefore",
                 safe_id, others, others == 1 ? "" : "s");
    notify(w, PREEMPT_TERMINATE, "azure", deadline, "azure %s event %s for %s not before %s",
           safe_type, safe_id, w->az_vm, nb && *nb ? nb : "(now)");
cleanup:
    free(id);
    free(type);
    free(res);
    free(nb);
}

static void az_events_done(preempt_watch_t *w, chan_t *c, int r, long status, const char *why)
{
    char *events = NULL, **items = NULL;
    size_t n = 0;
    char perr[128] = "";
    c->due = util_mono_ms() + w->poll_ms;
    if (r != 0) {
        chan_error(c, "%s", why);
        goto cleanup;
    }
    if (status != 200) {
        chan_error(c, "HTTP %ld", status);
        goto cleanup;
    }
    if (json_text_member(c->x.body, "Events", &events) != 0 || events[0] != '[' ||
        json_text_list(events, strlen(events), AZ_EVENTS_MAX, &items, &n, perr, sizeof perr)) {
        chan_error(c, "malformed answer%s%s", perr[0] ? ": " : "", perr);
        goto cleanup;
    }
    chan_ok(c);
    w->az_answered = true;
    for (size_t i = 0; i < n; i++)
        az_event(w, items[i]);
cleanup:
    free(events);
    json_text_list_free(items, n);
}

/* The acknowledgement channel's next start: the earliest due event
 * waiting for its acknowledgement (NEVER when none). */
static void az_ack_schedule(preempt_watch_t *w)
{
    int64_t due = NEVER;
    for (size_t i = 0; i < w->n_seen; i++) {
        const az_seen_t *s = &w->seen[i];
        if (s->ack_pending && !s->in_ack && s->ack_due < due)
            due = s->ack_due;
    }
    w->ch[CH_AZ_ACK].due = due;
}

/* preempt_watch_ack arrived: every event reported for this VM alone and
 * not yet acknowledged. */
static void az_ack_wanted(preempt_watch_t *w)
{
    size_t n = 0;
    int64_t now = util_mono_ms();
    for (size_t i = 0; i < w->n_seen; i++) {
        az_seen_t *s = &w->seen[i];
        if (s->reported && !s->shared && !s->acked && !s->in_ack && !s->ack_pending) {
            s->ack_pending = true;
            s->ack_tries = 0;
            s->ack_due = now;
            n++;
        }
    }
    if (n == 0) {
        log_debug("preempt: nothing to acknowledge");
        return;
    }
    if (!w->ch[CH_AZ_ACK].x.easy) /* else: its done function schedules it */
        az_ack_schedule(w);
}

/* One POST per event: {"StartRequests":[{"EventId":"..."}]}. */
static void az_ack_start(preempt_watch_t *w, chan_t *c)
{
    az_seen_t *next = NULL;
    int64_t now = util_mono_ms();
    for (size_t i = 0; i < w->n_seen; i++) {
        az_seen_t *s = &w->seen[i];
        if (s->ack_pending && s->ack_due <= now && (!next || s->ack_due < next->ack_due))
            next = s;
    }
    if (!next) {
        az_ack_schedule(w);
        return;
    }
    char *q = json_text_quote(next->id);
    const char *hdrs[] = {"Metadata: true", "Content-Type: application/json"};
    next->in_ack = true;
    chan_start(w, c, "POST", xasprintf("%s/metadata/scheduledevents?" AZ_API, w->azure), hdrs, 2,
               xasprintf("{\"StartRequests\":[{\"EventId\":%s}]}", q), timeout_of(w));
    free(q);
    if (!c->x.easy) { /* not started: retried when due */
        next->in_ack = false;
        next->ack_due = c->due;
    }
}

static void az_ack_done(preempt_watch_t *w, chan_t *c, int r, long status, const char *why)
{
    bool ok = r == 0 && status >= 200 && status < 300;
    az_seen_t *s = NULL;
    for (size_t i = 0; i < w->n_seen && !s; i++)
        if (w->seen[i].in_ack)
            s = &w->seen[i];
    char safe_id[AZ_ID_MAX] = "";
    if (s)
        copy_printable(safe_id, sizeof safe_id, s->id);
    if (r != 0)
        chan_error(c, "event %s: %s", safe_id, why);
    else if (!ok)
        chan_error(c, "event %s: HTTP %ld", safe_id, status);
    else
        chan_ok(c);
    if (s) {
        s->in_ack = false;
        if (ok) {
            s->acked = true;
            s->ack_pending = false;
            log_info("preempt: azure: acknowledged event %s", safe_id);
        } else if (++s->ack_tries >= AZ_ACK_TRIES) {
            s->ack_pending = false;
            log_warn("preempt: azure: giving up acknowledging event %s", safe_id);
        } else {
            s->ack_due = util_mono_ms() + w->poll_ms; /* the others go first */
        }
    }
    az_ack_schedule(w); /* the next event's, or retries */
}

/* ------------------------------------------------------------ thread */

typedef void (*start_fn)(preempt_watch_t *w, chan_t *c);
typedef void (*done_fn)(preempt_watch_t *w, chan_t *c, int r, long status, const char *why);

static const start_fn starts[CH_COUNT] = {
    [CH_AWS_TOKEN] = aws_start,   [CH_GCP_PREEMPTED] = gcp_start,   [CH_GCP_MAINT] = gcp_start,
    [CH_AZ_NAME] = az_name_start, [CH_AZ_EVENTS] = az_events_start, [CH_AZ_ACK] = az_ack_start,
};

static const done_fn dones[CH_COUNT] = {
    [CH_AWS_TOKEN] = aws_token_done,    [CH_AWS_ACTION] = aws_data_done,
    [CH_AWS_REBALANCE] = aws_data_done, [CH_GCP_PREEMPTED] = gcp_done,
    [CH_GCP_MAINT] = gcp_done,          [CH_AZ_NAME] = az_name_done,
    [CH_AZ_EVENTS] = az_events_done,    [CH_AZ_ACK] = az_ack_done,
};

/* Start what is due; returns the monotonic ms when the next idle channel is. */
static int64_t start_due(preempt_watch_t *w)
{
    int64_t now = util_mono_ms(), next = NEVER;
    for (int i = 0; i < CH_COUNT; i++) {
        chan_t *c = &w->ch[i];
        if (!c->on || c->x.easy || !starts[i])
            continue;
        if (c->due <= now) {
            c->due = NEVER; /* a done function schedules the next start */
            starts[i](w, c);
        }
        if (!c->x.easy && c->due < next)
            next = c->due;
    }
    return next;
}

static void finish_transfers(preempt_watch_t *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result; /* m is invalid after remove_handle */
        chan_t *c = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
        curl_multi_remove_handle(w->multi, e);
        long status = 0;
        char why[CURL_ERROR_SIZE + 64];
        int r = xfer_result(&c->x, rc, &status, why, sizeof why);
        /* c is idle from here (done functions test x.easy), though they
         * still read the answer in c->x; they schedule c, never start it */
        curl_easy_cleanup(c->x.easy);
        c->x.easy = NULL;
        dones[c->id](w, c, r, status, why);
        xfer_free(&c->x);
    }
}

static void *thread_main(void *arg)
{
    preempt_watch_t *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        bool stop = w->stop, ack = w->ack_wanted;
        w->ack_wanted = false;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        if (ack && w->azure)
            az_ack_wanted(w);
        int running = 0;
        CURLMcode mc = curl_multi_perform(w->multi, &running);
        if (mc != CURLM_OK)
            log_error("preempt: curl_multi_perform: %s", curl_multi_strerror(mc));
        finish_transfers(w);
        /* a transfer just added makes curl_multi_poll return at once */
        int64_t next = start_due(w);
        int64_t wait = next == NEVER ? MAX_SLEEP_MS : next - util_mono_ms();
        if (wait < 0)
            wait = 0;
        if (wait > MAX_SLEEP_MS)
            wait = MAX_SLEEP_MS;
        mc = curl_multi_poll(w->multi, NULL, 0, (int)wait, NULL);
        if (mc != CURLM_OK)
            log_error("preempt: curl_multi_poll: %s", curl_multi_strerror(mc));
    }
    for (int i = 0; i < CH_COUNT; i++) {
        chan_t *c = &w->ch[i];
        if (c->x.easy)
            curl_multi_remove_handle(w->multi, c->x.easy);
        xfer_free(&c->x);
    }
    return NULL;
}

/* ------------------------------------------------------------ loop side */

static void on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    preempt_watch_t *w = a->data;
    preempt_notice_t batch[NOTICE_QUEUE_MAX];
    pthread_mutex_lock(&w->lock);
    size_t n = w->n_queue;
    memcpy(batch, w->queue, n * sizeof batch[0]);
    w->n_queue = 0;
    pthread_mutex_unlock(&w->lock);
    bool gone = false;
    w->gone = &gone; /* fn may destroy w */
    for (size_t i = 0; i < n && !gone; i++)
        w->fn(w->arg, &batch[i]);
    if (!gone)
        w->gone = NULL;
}

static void watch_free(preempt_watch_t *w)
{
    for (int i = 0; i < CH_COUNT; i++) {
        xfer_free(&w->ch[i].x);
        free(w->ch[i].url);
        free(w->ch[i].last);
    }
    if (w->multi)
        curl_multi_cleanup(w->multi);
    pthread_mutex_destroy(&w->lock);
    free(w->aws);
    free(w->gcp);
    free(w->azure);
    free(w->aws_token);
    free(w->az_vm);
    free(w);
}

preempt_watch_t *preempt_watch_new(struct ev_loop *loop, const preempt_config_t *cfg,
                                   preempt_notice_fn fn, void *arg)
{
    if (!cfg || ((!cfg->aws_url || !*cfg->aws_url) && (!cfg->gcp_url || !*cfg->gcp_url) &&
                 (!cfg->azure_url || !*cfg->azure_url))) {
        log_error("preempt: no cloud metadata service configured");
        return NULL;
    }
    if (!loop || !fn) {
        log_error("preempt: preempt_watch_new needs a loop and a callback");
        return NULL;
    }
    if (curl_ready() != 0)
        return NULL;
    preempt_watch_t *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    w->fn = fn;
    w->arg = arg;
    w->aws = base_url(cfg->aws_url);
    w->gcp = base_url(cfg->gcp_url);
    w->azure = base_url(cfg->azure_url);
    w->poll_ms = cfg->poll_ms ? cfg->poll_ms : DEFAULT_POLL_MS;
    w->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    pthread_mutex_init(&w->lock, NULL);
    for (int i = 0; i < CH_COUNT; i++) {
        w->ch[i].id = (chan_id_t)i;
        w->ch[i].due = NEVER;
        w->ch[i].method = "GET";
        w->ch[i].url = xstrdup(chan_names[i]);
    }
    for (int i = CH_AWS_TOKEN; i <= CH_AWS_REBALANCE; i++)
        w->ch[i].on = w->aws != NULL;
    for (int i = CH_GCP_PREEMPTED; i <= CH_GCP_MAINT; i++)
        w->ch[i].on = w->gcp != NULL;
    for (int i = CH_AZ_NAME; i <= CH_AZ_ACK; i++)
        w->ch[i].on = w->azure != NULL;
    w->ch[CH_AWS_TOKEN].due = 0;
    w->ch[CH_GCP_PREEMPTED].due = 0;
    w->ch[CH_GCP_MAINT].due = 0;
    w->ch[CH_AZ_NAME].due = 0;
    w->multi = curl_multi_init();
    if (!w->multi) {
        log_error("preempt: curl_multi_init failed");
        watch_free(w);
        return NULL;
    }
    ev_async_init(&w->async_w, on_async);
    w->async_w.data = w;
    ev_async_start(loop, &w->async_w);
    int rc = pthread_create(&w->thread, NULL, thread_main, w);
    if (rc != 0) {
        log_error("preempt: pthread_create: %s", strerror(rc));
        ev_async_stop(loop, &w->async_w);
        watch_free(w);
        return NULL;
    }
    pthread_setname_np(w->thread, "preempt");
    log_info("preempt: watching%s%s%s%s%s%s every %u ms", w->aws ? " aws " : "",
             w->aws ? w->aws : "", w->gcp ? " gcp " : "", w->gcp ? w->gcp : "",
             w->azure ? " azure " : "", w->azure ? w->azure : "", w->poll_ms);
    return w;
}

void preempt_watch_ack(preempt_watch_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->ack_wanted = true;
    pthread_mutex_unlock(&w->lock);
    curl_multi_wakeup(w->multi);
}

void preempt_watch_destroy(preempt_watch_t **wp)
{
    if (!wp || !*wp)
        return;
    preempt_watch_t *w = *wp;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_mutex_unlock(&w->lock);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    ev_async_stop(w->loop, &w->async_w);
    if (w->gone)
        *w->gone = true;
    watch_free(w);
    *wp = NULL;
}

/* ------------------------------------------------------------ spot detection */

static int spot_aws(const char *base, long timeout, bool *spot, char *why, size_t whylen)
{
    xfer_t x;
    long status = 0;
    char *url = xasprintf("%s/latest/api/token", base), *hdr = NULL;
    int rc = http_blocking(&x, "PUT", url, "X-aws-ec2-metadata-token-ttl-seconds: 21600", timeout,
                           &status, why, whylen);
    free(url);
    url = NULL;
    if (rc != 0)
        goto cleanup;
    rtrim(x.body);
    rc = -EIO;
    if (status != 200) {
        snprintf(why, whylen, "PUT api/token: HTTP %ld", status);
        goto cleanup;
    }
    if (!valid_token(x.body)) {
        snprintf(why, whylen, "PUT api/token: malformed token");
        goto cleanup;
    }
    hdr = xasprintf("X-aws-ec2-metadata-token: %s", x.body);
    xfer_free(&x);
    url = xasprintf("%s/latest/meta-data/instance-life-cycle", base);
    rc = http_blocking(&x, "GET", url, hdr, timeout, &status, why, whylen);
    if (rc != 0)
        goto cleanup;
    rtrim(x.body);
    rc = -EIO;
    if (status != 200) {
        snprintf(why, whylen, "GET instance-life-cycle: HTTP %ld", status);
    } else if (strcmp(x.body, "spot") == 0) {
        *spot = true;
        rc = 0;
    } else if (strcmp(x.body, "on-demand") == 0 || strcmp(x.body, "scheduled") == 0 ||
               strcmp(x.body, "capacity-block") == 0) {
        *spot = false;
        rc = 0;
    } else {
        char v[41];
        copy_printable(v, sizeof v, x.body);
        snprintf(why, whylen, "GET instance-life-cycle: unexpected answer \"%s\"", v);
    }
cleanup:
    xfer_free(&x);
    free(url);
    free(hdr);
    return rc;
}

/* GCP and Azure: one text GET; *spot from yes/no. */
static int spot_text(const char *url, const char *hdr, long timeout, bool google, const char *yes,
                     const char *yes2, const char *no, bool *spot, char *why, size_t whylen)
{
    xfer_t x;
    long status = 0;
    int rc = http_blocking(&x, "GET", url, hdr, timeout, &status, why, whylen);
    if (rc != 0)
        goto cleanup;
    rtrim(x.body);
    rc = -EIO;
    if (status != 200) {
        snprintf(why, whylen, "HTTP %ld", status);
    } else if (google && !x.google) {
        snprintf(why, whylen, "answer without Metadata-Flavor: Google");
    } else if (strcmp(x.body, yes) == 0 || (yes2 && strcmp(x.body, yes2) == 0)) {
        *spot = true;
        rc = 0;
    } else if (strcmp(x.body, no) == 0) {
        *spot = false;
        rc = 0;
    } else {
        char v[41];
        copy_printable(v, sizeof v, x.body);
        snprintf(why, whylen, "unexpected answer \"%s\"", v);
    }
cleanup:
    xfer_free(&x);
    return rc;
}

int preempt_detect_spot(const preempt_config_t *cfg, bool *spot, char *err, size_t errlen)
{
    char reasons[1024] = "", why[CURL_ERROR_SIZE + 128];
    int rc = -EIO;
    if (err && errlen)
        err[0] = '\0';
    char *aws = cfg ? base_url(cfg->aws_url) : NULL, *gcp = cfg ? base_url(cfg->gcp_url) : NULL,
         *azure = cfg ? base_url(cfg->azure_url) : NULL;
    if (!aws && !gcp && !azure) {
        if (err && errlen)
            snprintf(err, errlen, "no cloud metadata service configured");
        rc = -ENOENT;
        goto cleanup;
    }
    if (curl_ready() != 0) {
        if (err && errlen)
            snprintf(err, errlen, "curl_global_init failed");
        goto cleanup;
    }
    long timeout = cfg->timeout_ms ? (long)cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    for (int p = 0; p < 3 && rc != 0; p++) {
        char *url = NULL;
        why[0] = '\0';
        if (p == 0 && aws) {
            rc = spot_aws(aws, timeout, spot, why, sizeof why);
        } else if (p == 1 && gcp) {
            url = xasprintf("%s/computeMetadata/v1/instance/scheduling/preemptible", gcp);
            rc = spot_text(url, "Metadata-Flavor: Google", timeout, true, "TRUE", NULL, "FALSE",
                           spot, why, sizeof why);
        } else if (p == 2 && azure) {
            url = xasprintf("%s/metadata/instance/compute/priority?" AZ_IMDS_API "&format=text",
                            azure);
            rc = spot_text(url, "Metadata: true", timeout, false, "Spot", "Low", "Regular", spot,
                           why, sizeof why);
        } else {
            continue;
        }
        if (rc != 0) {
            size_t used = strlen(reasons);
            snprintf(reasons + used, sizeof reasons - used, "%s%s: %s", used ? "; " : "",
                     p == 0   ? "aws"
                     : p == 1 ? "gcp"
                              : "azure",
                     why);
        }
        free(url);
    }
    if (rc != 0) {
        rc = -EIO;
        if (err && errlen)
            snprintf(err, errlen, "%s", reasons);
    }
cleanup:
    free(aws);
    free(gcp);
    free(azure);
    return rc;
}
