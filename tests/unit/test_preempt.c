/* test_preempt — cloud preemption watchers (agent/preempt.c).
 *
 * Every test starts tests/integration/fakemeta.py, a fake metadata server
 * that speaks all three providers' protocols and enforces their headers
 * (AWS token, Metadata-Flavor: Google, Metadata: true), steers it through
 * POST /_control and checks what the watcher sent through GET /_requests.
 * A real libev loop runs until a condition holds or a generous deadline
 * passes; "nothing happened" is asserted only after the server has seen
 * several more polls, never after a fixed sleep. Destroying a watcher must
 * take well under a second, also with requests hanging.
 */
#define DROVER_TEST_AGENT
#include "helpers.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "preempt.h"

#define WAIT_MS       10000
#define POLL_MS       50
#define DESTROY_MS    1000
#define MAX_NOTICES   16
#define AWS_TIME      "2026-11-29T17:00:00Z"
#define AWS_TIME_MS   1795971600000LL
#define AZ_NOT_BEFORE "Mon, 19 Sep 2016 18:29:47 GMT"
#define AZ_NB_MS      1474309787000LL
#define AZ_EVENT_ID   "602d9444-d2cd-49c7-8624-8643e7171297"

extern char **environ;

static h_agent_t fx;
static pid_t meta_pid;
static char meta_url[64];
static preempt_watch_t *watch;
static preempt_notice_t notices[MAX_NOTICES];
static size_t n_notices;
static bool destroy_in_callback;

/* ------------------------------------------------------------ fakemeta */

static void setup(void)
{
    n_notices = 0;
    destroy_in_callback = false;
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    h_agent_init(&fx, false);
    /* ctest sets DROVER_SOURCE_DIR; run by hand, this file's path tells */
    const char *src = getenv("DROVER_SOURCE_DIR");
    char *script = src && *src ? xasprintf("%s/tests/integration/fakemeta.py", src)
                               : xasprintf("%.*s/../integration/fakemeta.py",
                                           (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
    cr_assert_eq(access(script, R_OK), 0, "%s: %s (set DROVER_SOURCE_DIR)", script,
                 strerror(errno));
    char *port_file = xasprintf("%s/port", fx.dir);
    char *argv[] = {"python3", script, "--port-file", port_file, NULL};
    int rc = posix_spawnp(&meta_pid, "python3", NULL, NULL, argv, environ);
    cr_assert_eq(rc, 0, "posix_spawnp python3: %s", strerror(rc));
    /* wait for the port file (written atomically) */
    int64_t deadline = util_mono_ms() + 15000;
    char *text = NULL;
    size_t len = 0;
    while (util_read_file(port_file, 64, &text, &len) != 0) {
        int st;
        cr_assert_eq(waitpid(meta_pid, &st, WNOHANG), 0, "fakemeta.py exited early");
        cr_assert_lt(util_mono_ms(), deadline, "fakemeta.py wrote no port file");
        usleep(10000);
    }
    snprintf(meta_url, sizeof meta_url, "http://127.0.0.1:%d", atoi(text));
    free(text);
    free(script);
    free(port_file);
}

static void teardown(void)
{
    preempt_watch_destroy(&watch);
    if (meta_pid > 0) {
        kill(meta_pid, SIGTERM);
        waitpid(meta_pid, NULL, 0);
        meta_pid = 0;
    }
    h_agent_fini(&fx);
    curl_global_cleanup();
}

TestSuite(preempt, .init = setup, .fini = teardown, .timeout = 60);

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0;
    *buf = xrealloc(*buf, old + size * n + 1);
    memcpy(*buf + old, data, size * n);
    (*buf)[old + size * n] = '\0';
    return size * n;
}

/* A request to the fake server's control API; returns the body (caller frees). */
static char *meta_http(const char *path, const char *post)
{
    CURL *e = curl_easy_init();
    cr_assert_not_null(e);
    char *url = xasprintf("%s%s", meta_url, path), *body = NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    if (post)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    free(url);
    cr_assert_eq(rc, CURLE_OK, "fakemeta %s: %s", path, curl_easy_strerror(rc));
    cr_assert_eq(status, 200, "fakemeta %s: HTTP %ld: %s", path, status, body ? body : "");
    return body ? body : xstrdup("");
}

static void meta_set(const char *json)
{
    free(meta_http("/_control", json));
}

/* The requests the server saw (JSON object texts; free with json_text_list_free). */
static char **meta_requests(size_t *n)
{
    char *body = meta_http("/_requests", NULL);
    char **items = NULL;
    char err[128];
    cr_assert_eq(json_text_list(body, strlen(body), 100000, &items, n, err, sizeof err), 0,
                 "/_requests: %s", err);
    free(body);
    return items;
}

/* Member key of JSON object obj, or of its "headers" object with hdr true;
 * NULL when absent (caller frees). */
static char *field(const char *obj, const char *key, bool hdr)
{
    char *out = NULL, *hdrs = NULL;
    if (hdr) {
        if (json_text_member(obj, "headers", &hdrs) != 0)
            return NULL;
        obj = hdrs;
    }
    json_text_member(obj, key, &out);
    free(hdrs);
    return out;
}

static bool req_is(const char *req, const char *method, const char *path_prefix)
{
    char *m = field(req, "method", false), *p = field(req, "path", false);
    bool yes =
        m && p && strcmp(m, method) == 0 && strncmp(p, path_prefix, strlen(path_prefix)) == 0;
    free(m);
    free(p);
    return yes;
}

static size_t count_requests(const char *method, const char *path_prefix)
{
    size_t n = 0, hits = 0;
    char **reqs = meta_requests(&n);
    for (size_t i = 0; i < n; i++)
        hits += req_is(reqs[i], method, path_prefix);
    json_text_list_free(reqs, n);
    return hits;
}

/* ------------------------------------------------------------ loop */

static void on_notice(void *arg, const preempt_notice_t *n)
{
    cr_assert_lt(n_notices, MAX_NOTICES);
    notices[n_notices++] = *n;
    if (destroy_in_callback)
        preempt_watch_destroy(&watch);
}

/* Deliver what the watcher has queued already. */
static void drain(void)
{
    ev_run(fx.loop, EVRUN_NOWAIT);
}

static bool have_notices(void *arg)
{
    return n_notices >= (size_t)(uintptr_t)arg;
}

static void wait_notices(size_t n)
{
    cr_assert(h_pump_until(fx.loop, have_notices, (void *)(uintptr_t)n, WAIT_MS),
              "expected %zu notice(s), got %zu", n, n_notices);
}

typedef struct {
    const char *method, *path;
    size_t n;
} reqs_t;

static bool have_requests(void *arg)
{
    reqs_t *r = arg;
    return count_requests(r->method, r->path) >= r->n;
}

/* Run the loop until the server has seen n requests like that in all. */
static void wait_total(const char *method, const char *path, size_t n)
{
    reqs_t r = {method, path, n};
    cr_assert(h_pump_until(fx.loop, have_requests, &r, WAIT_MS),
              "expected %zu %s %s requests, saw %zu", n, method, path,
              count_requests(method, path));
}

/* Run the loop until the server has seen `more` further requests like that. */
static void wait_more(const char *method, const char *path, size_t more)
{
    wait_total(method, path, count_requests(method, path) + more);
}

static void start(const char *aws, const char *gcp, const char *azure, uint32_t timeout_ms)
{
    preempt_config_t cfg = {.aws_url = aws,
                            .gcp_url = gcp,
                            .azure_url = azure,
                            .poll_ms = POLL_MS,
                            .timeout_ms = timeout_ms};
    watch = preempt_watch_new(fx.loop, &cfg, on_notice, NULL);
    cr_assert_not_null(watch);
}

static void destroy_quickly(void)
{
    int64_t t0 = util_mono_ms();
    preempt_watch_destroy(&watch);
    int64_t took = util_mono_ms() - t0;
    cr_assert_null(watch);
    cr_assert_lt(took, DESTROY_MS, "preempt_watch_destroy took %lld ms", (long long)took);
}

#define AWS_PATH_ACTION    "/latest/meta-data/spot/instance-action"
#define AWS_PATH_REBALANCE "/latest/meta-data/events/recommendations/rebalance"
#define GCP_PATH_PREEMPTED "/computeMetadata/v1/instance/preempted"
#define GCP_PATH_MAINT     "/computeMetadata/v1/instance/maintenance-event"
#define AZ_PATH_EVENTS     "/metadata/scheduledevents"

/* ------------------------------------------------------------ AWS */

Test(preempt, aws_instance_action_once_with_deadline_and_token)
{
    meta_set("{\"aws_action\":{\"action\":\"terminate\",\"time\":\"" AWS_TIME "\"}}");
    start(meta_url, NULL, NULL, 0);
    wait_notices(1);
    cr_assert_eq(notices[0].kind, PREEMPT_TERMINATE);
    cr_assert_str_eq(notices[0].source, "aws");
    cr_assert_eq(notices[0].deadline_ms, AWS_TIME_MS, "deadline %lld",
                 (long long)notices[0].deadline_ms);
    cr_assert_not_null(strstr(notices[0].detail, "terminate"), "%s", notices[0].detail);
    cr_assert_not_null(strstr(notices[0].detail, AWS_TIME), "%s", notices[0].detail);

    /* the notice stays up: still one after several more polls */
    wait_more("GET", AWS_PATH_ACTION, 5);
    drain();
    cr_assert_eq(n_notices, 1, "a standing notice was delivered %zu times", n_notices);

    /* IMDSv2: a PUT for the token, with the TTL header; data GETs carry it */
    size_t n = 0, puts = 0, gets = 0;
    char **reqs = meta_requests(&n);
    for (size_t i = 0; i < n; i++) {
        if (req_is(reqs[i], "PUT", "/latest/api/token")) {
            char *ttl = field(reqs[i], "x-aws-ec2-metadata-token-ttl-seconds", true);
            cr_assert_str_eq(ttl ? ttl : "(none)", "21600");
            free(ttl);
            puts++;
        } else if (req_is(reqs[i], "GET", AWS_PATH_ACTION)) {
            char *tok = field(reqs[i], "x-aws-ec2-metadata-token", true);
            cr_assert(tok && *tok, "instance-action GET without a token");
            free(tok);
            gets++;
        }
    }
    json_text_list_free(reqs, n);
    cr_assert_eq(puts, 1, "one token serves every poll, saw %zu PUTs", puts);
    cr_assert_geq(gets, 6);

    /* a new action (another time) is a distinct notice */
    meta_set("{\"aws_action\":{\"action\":\"stop\",\"time\":\"2026-11-29T17:02:00.500Z\"}}");
    wait_notices(2);
    cr_assert_eq(notices[1].kind, PREEMPT_TERMINATE);
    cr_assert_eq(notices[1].deadline_ms, AWS_TIME_MS + 120500);
    destroy_quickly();
}

Test(preempt, aws_expired_token_is_renewed)
{
    start(meta_url, NULL, NULL, 0);
    wait_more("GET", AWS_PATH_ACTION, 2);
    cr_assert_eq(count_requests("PUT", "/latest/api/token"), 1);
    meta_set("{\"aws_expire_tokens\":true,"
             "\"aws_action\":{\"action\":\"terminate\",\"time\":\"" AWS_TIME "\"}}");
    wait_notices(1);
    cr_assert_eq(notices[0].deadline_ms, AWS_TIME_MS);
    cr_assert_eq(count_requests("PUT", "/latest/api/token"), 2);
    destroy_quickly();
}

Test(preempt, aws_rebalance_recommendation)
{
    meta_set("{\"aws_rebalance\":{\"noticeTime\":\"2026-11-29T16:58:00Z\"}}");
    start(meta_url, NULL, NULL, 0);
    wait_notices(1);
    cr_assert_eq(notices[0].kind, PREEMPT_REBALANCE);
    cr_assert_str_eq(notices[0].source, "aws");
    cr_assert_eq(notices[0].deadline_ms, 0);
    cr_assert_not_null(strstr(notices[0].detail, "rebalance"), "%s", notices[0].detail);
    wait_more("GET", AWS_PATH_REBALANCE, 4);
    drain();
    cr_assert_eq(n_notices, 1);
    /* then the spot is reclaimed after all */
    meta_set("{\"aws_action\":{\"action\":\"terminate\",\"time\":\"" AWS_TIME "\"}}");
    wait_notices(2);
    cr_assert_eq(notices[1].kind, PREEMPT_TERMINATE);
    destroy_quickly();
}

Test(preempt, destroy_from_the_callback)
{
    meta_set("{\"aws_rebalance\":{\"noticeTime\":\"2026-11-29T16:58:00Z\"},"
             "\"aws_action\":{\"action\":\"terminate\",\"time\":\"" AWS_TIME "\"}}");
    destroy_in_callback = true;
    start(meta_url, NULL, NULL, 0);
    wait_notices(1);
    cr_assert_null(watch);
    /* nothing is delivered after destroy, even if both were queued together */
    ev_run(fx.loop, EVRUN_NOWAIT);
    cr_assert_eq(n_notices, 1);
}

/* ------------------------------------------------------------ GCP */

Test(preempt, gcp_preempted_through_the_long_poll)
{
    start(NULL, meta_url, NULL, 0);
    /* the watcher is now waiting in a long poll */
    wait_total("GET", GCP_PATH_PREEMPTED "?wait_for_change=true", 1);
    int64_t t0 = util_now_ms(), m0 = util_mono_ms();
    meta_set("{\"gcp_preempted\":true}");
    wait_notices(1);
    int64_t t1 = util_now_ms();
    cr_assert_lt(util_mono_ms() - m0, 5000, "the long poll did not return on the change");
    cr_assert_eq(notices[0].kind, PREEMPT_TERMINATE);
    cr_assert_str_eq(notices[0].source, "gcp");
    cr_assert(notices[0].deadline_ms >= t0 + 30000 && notices[0].deadline_ms <= t1 + 30000,
              "deadline %lld not 30 s after [%lld, %lld]", (long long)notices[0].deadline_ms,
              (long long)t0, (long long)t1);
    /* every GCP request had the flavor header (else the server answers 403
     * and no notice could come), and the next long poll is open again */
    wait_total("GET", GCP_PATH_PREEMPTED "?wait_for_change=true", 2);
    cr_assert_eq(n_notices, 1);
    destroy_quickly(); /* long polls open on both endpoints */
}

Test(preempt, gcp_maintenance_event)
{
    meta_set("{\"gcp_maintenance\":\"NONE\"}");
    start(NULL, meta_url, NULL, 0);
    wait_total("GET", GCP_PATH_MAINT "?wait_for_change=true", 1);
    meta_set("{\"gcp_maintenance\":\"MIGRATE_ON_HOST_MAINTENANCE\"}");
    wait_notices(1);
    cr_assert_eq(notices[0].kind, PREEMPT_REBALANCE);
    cr_assert_eq(notices[0].deadline_ms, 0);
    cr_assert_not_null(strstr(notices[0].detail, "MIGRATE_ON_HOST_MAINTENANCE"));

    int64_t t0 = util_now_ms();
    meta_set("{\"gcp_maintenance\":\"TERMINATE_ON_HOST_MAINTENANCE\"}");
    wait_notices(2);
    cr_assert_eq(notices[1].kind, PREEMPT_TERMINATE);
    cr_assert(notices[1].deadline_ms >= t0 + 60000 &&
                  notices[1].deadline_ms <= util_now_ms() + 60000,
              "deadline %lld", (long long)notices[1].deadline_ms);

    /* back to NONE: the maintenance is over, the notice withdrawn */
    meta_set("{\"gcp_maintenance\":\"NONE\"}");
    wait_notices(3);
    cr_assert_eq(notices[2].kind, PREEMPT_WITHDRAWN);
    cr_assert_str_eq(notices[2].source, "gcp");
    cr_assert_eq(notices[2].deadline_ms, 0);
    cr_assert_not_null(strstr(notices[2].detail, "NONE"), "%s", notices[2].detail);
    destroy_quickly();
}

Test(preempt, gcp_migration_notice_withdrawn_when_maintenance_ends)
{
    /* NONE at the start is no withdrawal (there was nothing to withdraw) */
    start(NULL, meta_url, NULL, 0);
    wait_total("GET", GCP_PATH_MAINT "?wait_for_change=true", 1);
    for (size_t round = 0; round < 2; round++) {
        meta_set("{\"gcp_maintenance\":\"MIGRATE_ON_HOST_MAINTENANCE\"}");
        wait_notices(2 * round + 1);
        cr_assert_eq(notices[2 * round].kind, PREEMPT_REBALANCE, "round %zu", round);
        meta_set("{\"gcp_maintenance\":\"NONE\"}");
        wait_notices(2 * round + 2);
        cr_assert_eq(notices[2 * round + 1].kind, PREEMPT_WITHDRAWN, "round %zu", round);
        cr_assert_str_eq(notices[2 * round + 1].source, "gcp");
    }
    destroy_quickly();
}

Test(preempt, gcp_answer_without_flavor_header_is_ignored)
{
    meta_set("{\"gcp_flavor\":false,\"gcp_preempted\":true}");
    start(NULL, meta_url, NULL, 0);
    wait_more("GET", GCP_PATH_PREEMPTED, 4);
    cr_assert_eq(n_notices, 0, "a notice from a server that is not GCP's metadata server");
    meta_set("{\"gcp_flavor\":true}");
    wait_notices(1);
    cr_assert_eq(notices[0].kind, PREEMPT_TERMINATE);
    destroy_quickly();
}

/* ------------------------------------------------------------ Azure */

#define AZ_EVENTS                                                                                  \
    "{\"azure_vm\":\"vm1\",\"azure_events\":["                                                     \
    "{\"EventId\":\"other-vm-event\",\"EventType\":\"Preempt\",\"ResourceType\":"                  \
    "\"VirtualMachine\",\"Resources\":[\"vm2\"],\"EventStatus\":\"Scheduled\",\"NotBefore\":"      \
    "\"" AZ_NOT_BEFORE                                                                             \
    "\",\"Description\":\"\",\"EventSource\":\"Platform\",\"DurationInSeconds\":-1},"              \
    "{\"EventId\":\"reboot-event\",\"EventType\":\"Reboot\",\"ResourceType\":\"VirtualMachine\","  \
    "\"Resources\":[\"vm1\"],\"EventStatus\":\"Scheduled\",\"NotBefore\":\"\"},"                   \
    "{\"EventId\":\"" AZ_EVENT_ID "\",\"EventType\":\"Preempt\",\"ResourceType\":"                 \
    "\"VirtualMachine\",\"Resources\":[\"vm1\"],\"EventStatus\":\"Scheduled\","                    \
    "\"NotBefore\":\"" AZ_NOT_BEFORE "\",\"Description\":\"\",\"EventSource\":\"Platform\","       \
    "\"DurationInSeconds\":-1}]}"

Test(preempt, azure_preempt_for_this_vm_and_acknowledgement)
{
    start(NULL, NULL, meta_url, 0);
    wait_total("GET", AZ_PATH_EVENTS, 1);
    preempt_watch_ack(watch); /* nothing reported yet: nothing to acknowledge */
    meta_set(AZ_EVENTS);
    wait_notices(1);
    cr_assert_eq(notices[0].kind, PREEMPT_TERMINATE);
    cr_assert_str_eq(notices[0].source, "azure");
    cr_assert_eq(notices[0].deadline_ms, AZ_NB_MS, "deadline %lld",
                 (long long)notices[0].deadline_ms);
    cr_assert_not_null(strstr(notices[0].detail, AZ_EVENT_ID), "%s", notices[0].detail);

    /* the other VM's Preempt and this VM's Reboot stay ignored; nothing is
     * acknowledged before the agent says it has drained */
    wait_more("GET", AZ_PATH_EVENTS, 4);
    drain();
    cr_assert_eq(n_notices, 1);
    cr_assert_eq(count_requests("POST", AZ_PATH_EVENTS), 0);

    preempt_watch_ack(watch);
    wait_total("POST", AZ_PATH_EVENTS, 1);
    size_t n = 0;
    char **reqs = meta_requests(&n);
    char *post = NULL;
    for (size_t i = 0; i < n && !post; i++)
        if (req_is(reqs[i], "POST", AZ_PATH_EVENTS)) {
            post = xstrdup(reqs[i]);
        }
    json_text_list_free(reqs, n);
    char *body = field(post, "body", false), *md = field(post, "metadata", true),
         *ct = field(post, "content-type", true), *path = field(post, "path", false);
    cr_assert_str_eq(md ? md : "(none)", "true");
    cr_assert_str_eq(ct ? ct : "(none)", "application/json");
    cr_assert_not_null(strstr(path, "api-version="), "%s", path);
    /* exactly {"StartRequests":[{"EventId":"<ours>"}]} */
    char *list = NULL, **items = NULL, *id = NULL;
    size_t n_items = 0;
    cr_assert_eq(json_text_member(body, "StartRequests", &list), 0, "%s", body);
    cr_assert_eq(json_text_list(list, strlen(list), 16, &items, &n_items, NULL, 0), 0);
    cr_assert_eq(n_items, 1, "%s", body);
    cr_assert_eq(json_text_member(items[0], "EventId", &id), 0);
    cr_assert_str_eq(id, AZ_EVENT_ID);
    free(id);
    json_text_list_free(items, n_items);
    free(list);
    free(body);
    free(md);
    free(ct);
    free(path);
    free(post);

    /* acknowledged once; the event (now Started) is not delivered again */
    wait_more("GET", AZ_PATH_EVENTS, 3);
    cr_assert_eq(count_requests("POST", AZ_PATH_EVENTS), 1);
    cr_assert_eq(n_notices, 1);
    destroy_quickly();
}

/* The POSTs to Scheduled Events so far: how many; how many named more
 * than one event; how many named exactly id and were answered status (0:
 * any). */
static size_t az_posts(const char *id, long status, size_t *several)
{
    size_t n = 0, total = 0, hits = 0;
    char **reqs = meta_requests(&n);
    if (several)
        *several = 0;
    for (size_t i = 0; i < n; i++) {
        if (!req_is(reqs[i], "POST", AZ_PATH_EVENTS))
            continue;
        total++;
        char *body = field(reqs[i], "body", false), *st = field(reqs[i], "status", false);
        char *list = NULL, **items = NULL, *eid = NULL;
        size_t n_items = 0;
        cr_assert_eq(json_text_member(body, "StartRequests", &list), 0, "%s", body);
        cr_assert_eq(json_text_list(list, strlen(list), 64, &items, &n_items, NULL, 0), 0);
        if (n_items > 1 && several)
            (*several)++;
        if (n_items == 1 && json_text_member(items[0], "EventId", &eid) == 0 && id &&
            strcmp(eid, id) == 0 && (!status || (st && atol(st) == status)))
            hits++;
        free(eid);
        json_text_list_free(items, n_items);
        free(list);
        free(body);
        free(st);
    }
    json_text_list_free(reqs, n);
    return id ? hits : total;
}

static bool have_ack(void *arg)
{
    return az_posts(arg, 200, NULL) >= 1;
}

#define AZ_EVENT(id, type, resources)                                                              \
    "{\"EventId\":\"" id "\",\"EventType\":\"" type "\",\"ResourceType\":\"VirtualMachine\","      \
    "\"Resources\":" resources ",\"EventStatus\":\"Scheduled\",\"NotBefore\":\"" AZ_NOT_BEFORE     \
    "\",\"Description\":\"\",\"EventSource\":\"Platform\",\"DurationInSeconds\":-1}"

/* Azure documents that acknowledging an event lets it proceed for every
 * VM in its Resources: an event naming other VMs too is a notice here,
 * but its acknowledgement is left to the others' agents (or NotBefore). */
Test(preempt, azure_event_naming_other_vms_too_is_not_acknowledged)
{
    meta_set("{\"azure_vm\":\"vm1\",\"azure_events\":[" AZ_EVENT(
        "shared", "Preempt", "[\"vm1\",\"vm2\",\"vm3\"]") "," AZ_EVENT("ours", "Terminate",
                                                                       "[\"VM1\"]") "]}");
    start(NULL, NULL, meta_url, 0);
    wait_notices(2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(notices[i].kind, PREEMPT_TERMINATE);
        cr_assert_eq(notices[i].deadline_ms, AZ_NB_MS);
    }
    preempt_watch_ack(watch);
    cr_assert(h_pump_until(fx.loop, have_ack, "ours", WAIT_MS),
              "this VM's own event was not acknowledged");
    /* several polls later: the shared event was never acknowledged */
    wait_more("GET", AZ_PATH_EVENTS, 3);
    size_t several = 0;
    cr_assert_eq(az_posts("shared", 0, &several), 0,
                 "an event naming vm2 and vm3 was acknowledged");
    cr_assert_eq(several, 0);
    cr_assert_eq(az_posts(NULL, 0, NULL), 1);
    destroy_quickly();
}

/* One event the server no longer knows (it rejects a StartRequests that
 * names it) must not keep the others from being acknowledged. */
Test(preempt, azure_acknowledgements_go_one_event_per_request)
{
    meta_set("{\"azure_vm\":\"vm1\",\"azure_events\":[" AZ_EVENT(
        "e1", "Preempt", "[\"vm1\"]") "," AZ_EVENT("e2", "Preempt",
                                                   "[\"vm1\"]") "," AZ_EVENT("e3", "Terminate",
                                                                             "[\"vm1\"]") "]}");
    start(NULL, NULL, meta_url, 0);
    wait_notices(3);
    /* e2 goes away (cancelled) before the agent has drained */
    meta_set("{\"azure_events\":[" AZ_EVENT("e1", "Preempt", "[\"vm1\"]") "," AZ_EVENT(
        "e3", "Terminate", "[\"vm1\"]") "]}");
    wait_more("GET", AZ_PATH_EVENTS, 1);
    preempt_watch_ack(watch);
    cr_assert(h_pump_until(fx.loop, have_ack, "e1", WAIT_MS), "e1 was not acknowledged");
    cr_assert(h_pump_until(fx.loop, have_ack, "e3", WAIT_MS), "e3 was not acknowledged");
    /* e2 is tried (and rejected) a few times, never with the others */
    size_t several = 0;
    az_posts(NULL, 0, &several);
    cr_assert_eq(several, 0, "a StartRequests named several events");
    cr_assert_geq(az_posts("e2", 400, NULL), 1);
    cr_assert_eq(az_posts("e2", 200, NULL), 0);
    cr_assert_eq(az_posts("e1", 0, NULL), 1, "acknowledged once");
    cr_assert_eq(az_posts("e3", 0, NULL), 1, "acknowledged once");
    destroy_quickly();
}

Test(preempt, azure_events_for_other_vms_only)
{
    meta_set("{\"azure_vm\":\"vm7\",\"azure_events\":[{\"EventId\":\"e1\",\"EventType\":"
             "\"Preempt\",\"Resources\":[\"vm1\"],\"EventStatus\":\"Scheduled\","
             "\"NotBefore\":\"\"}]}");
    start(NULL, NULL, meta_url, 0);
    wait_more("GET", AZ_PATH_EVENTS, 4);
    cr_assert_eq(n_notices, 0);
    /* an empty NotBefore: the notice has no deadline */
    meta_set("{\"azure_events\":[{\"EventId\":\"e2\",\"EventType\":\"Terminate\",\"Resources\":"
             "[\"VM7\"],\"EventStatus\":\"Started\",\"NotBefore\":\"\"}]}");
    wait_notices(1);
    cr_assert_eq(notices[0].kind, PREEMPT_TERMINATE);
    cr_assert_eq(notices[0].deadline_ms, 0);
    destroy_quickly();
}

/* ------------------------------------------------------------ bad input */

#define ALL_NOTICES                                                                                \
    "\"aws_action\":{\"action\":\"terminate\",\"time\":\"" AWS_TIME "\"},"                         \
    "\"gcp_preempted\":true,\"azure_vm\":\"vm1\",\"azure_events\":[{\"EventId\":\"e1\","           \
    "\"EventType\":\"Preempt\",\"Resources\":[\"vm1\"],\"EventStatus\":\"Scheduled\","             \
    "\"NotBefore\":\"" AZ_NOT_BEFORE "\"}]"

/* stderr goes to a file while a test looks at what was logged */
static int saved_stderr = -1;
static char *log_path;

static void capture_stderr(void)
{
    fflush(stderr);
    log_path = xasprintf("%s/stderr", fx.dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restore stderr; the captured text (caller frees). */
static char *release_stderr(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(util_read_file(log_path, 1 << 20, &text, &len), 0);
    fputs(text, stderr); /* still visible in the test's output */
    free(log_path);
    return text;
}

static size_t count_lines(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The "METHOD URL" of every "preempt: METHOD URL: why" warning line; asserts
 * that no endpoint was warned about twice (one line when an error starts).
 * Returns how many lines mention path. */
static size_t check_warnings(const char *text, const char *path)
{
    char seen[32][256];
    size_t n = 0, hits = 0;
    for (const char *p = strstr(text, "warn: preempt: "); p; p = strstr(p, "warn: preempt: ")) {
        p += strlen("warn: preempt: ");
        const char *end = strstr(p, ": ");
        const char *eol = strchr(p, '\n');
        if (!end || (eol && end > eol))
            continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(end - p), p);
        for (size_t i = 0; i < n; i++)
            cr_assert_str_neq(seen[i], key, "warned twice about %s", key);
        if (n < 32)
            snprintf(seen[n++], sizeof seen[0], "%s", key);
        hits += strstr(key, path) != NULL;
    }
    return hits;
}

/* The server misbehaves (mode) while every provider has a notice up: no
 * notice, one warning per failing endpoint however many polls fail, polling
 * goes on; once the server is fine, each provider's notice comes once. */
static void misbehaving_server(const char *mode, uint32_t timeout_ms)
{
    char *ctl = xasprintf("{" ALL_NOTICES ",\"mode\":\"%s\"}", mode);
    meta_set(ctl);
    free(ctl);
    capture_stderr();
    start(meta_url, meta_url, meta_url, timeout_ms);
    /* (all counted from the start, so the waits overlap) */
    wait_total("PUT", "/latest/api/token", 3);
    wait_total("GET", GCP_PATH_PREEMPTED, 3);
    wait_total("GET", GCP_PATH_MAINT, 3);
    wait_total("GET", "/metadata/instance/compute/name", 3);
    drain();
    cr_assert_eq(n_notices, 0, "a notice from a %s answer: %s", mode, notices[0].detail);
    meta_set("{\"mode\":\"ok\"}");
    wait_notices(3);
    /* and no more after that */
    size_t aws_polls = count_requests("GET", AWS_PATH_ACTION),
           az_polls = count_requests("GET", AZ_PATH_EVENTS);
    wait_total("GET", AWS_PATH_ACTION, aws_polls + 3);
    wait_total("GET", AZ_PATH_EVENTS, az_polls + 3);
    drain();
    destroy_quickly();
    char *text = release_stderr();
    cr_assert_eq(n_notices, 3);
    bool aws = false, gcp = false, azure = false;
    for (size_t i = 0; i < n_notices; i++) {
        cr_assert_eq(notices[i].kind, PREEMPT_TERMINATE);
        aws |= strcmp(notices[i].source, "aws") == 0;
        gcp |= strcmp(notices[i].source, "gcp") == 0;
        azure |= strcmp(notices[i].source, "azure") == 0;
    }
    cr_assert(aws && gcp && azure);
    cr_assert_geq(check_warnings(text, "/latest/api/token"), 1, "%s", text);
    cr_assert_geq(check_warnings(text, GCP_PATH_PREEMPTED), 1, "%s", text);
    cr_assert_geq(check_warnings(text, "/metadata/instance/compute/name"), 1, "%s", text);
    cr_assert_not_null(strstr(text, "answering again"), "no recovery logged: %s", text);
    free(text);
}

Test(preempt, garbage_answers)
{
    misbehaving_server("garbage", 0);
}

Test(preempt, server_errors)
{
    misbehaving_server("500", 0);
}

Test(preempt, huge_answers)
{
    misbehaving_server("huge", 0);
}

Test(preempt, hanging_requests_time_out)
{
    misbehaving_server("hang", 200);
}

Test(preempt, destroy_while_requests_hang)
{
    meta_set("{" ALL_NOTICES ",\"mode\":\"hang\"}");
    start(meta_url, meta_url, meta_url, 30000);
    wait_total("PUT", "/latest/api/token", 1);
    wait_total("GET", GCP_PATH_PREEMPTED, 1);
    wait_total("GET", GCP_PATH_MAINT, 1);
    wait_total("GET", "/metadata/instance/compute/name", 1);
    cr_assert_eq(n_notices, 0);
    destroy_quickly();
}

Test(preempt, connection_refused)
{
    /* a port nothing listens on: the fake server's, after it is gone */
    kill(meta_pid, SIGTERM);
    waitpid(meta_pid, NULL, 0);
    meta_pid = 0;
    capture_stderr();
    log_set_debug(1); /* repeated errors are logged at debug: count them */
    start(meta_url, meta_url, meta_url, 0);
    /* wait until every endpoint has failed several times */
    char *put = xasprintf("debug: preempt: PUT %s/latest/api/token", meta_url),
         *gcp = xasprintf("debug: preempt: GET %s" GCP_PATH_PREEMPTED, meta_url),
         *az = xasprintf("debug: preempt: GET %s/metadata/instance/compute/name", meta_url);
    int64_t deadline = util_mono_ms() + WAIT_MS;
    char *text = NULL;
    for (;;) {
        ev_run(fx.loop, EVRUN_NOWAIT);
        size_t len = 0;
        free(text);
        text = NULL;
        fflush(stderr);
        cr_assert_eq(util_read_file(log_path, 1 << 20, &text, &len), 0);
        if ((count_lines(text, put) >= 3 && count_lines(text, gcp) >= 3 &&
             count_lines(text, az) >= 3) ||
            util_mono_ms() > deadline)
            break;
        usleep(10000);
    }
    log_set_debug(0);
    free(put);
    free(gcp);
    free(az);
    free(text);
    destroy_quickly();
    text = release_stderr();
    cr_assert_eq(n_notices, 0);
    cr_assert_eq(check_warnings(text, "/latest/api/token"), 1, "%s", text);
    cr_assert_eq(check_warnings(text, GCP_PATH_PREEMPTED), 1, "%s", text);
    cr_assert_eq(check_warnings(text, "/compute/name"), 1, "%s", text);
    free(text);

    bool spot = true;
    char err[1024];
    preempt_config_t cfg = {.aws_url = meta_url, .gcp_url = meta_url, .azure_url = meta_url};
    cr_assert_eq(preempt_detect_spot(&cfg, &spot, err, sizeof err), -EIO);
    cr_assert(strstr(err, "aws: ") && strstr(err, "gcp: ") && strstr(err, "azure: "), "%s", err);
}

/* ------------------------------------------------------------ spot detection */

static int detect(const char *aws, const char *gcp, const char *azure, bool *spot, char *err)
{
    preempt_config_t cfg = {.aws_url = aws, .gcp_url = gcp, .azure_url = azure};
    return preempt_detect_spot(&cfg, spot, err, 512);
}

Test(preempt, detect_spot_each_provider)
{
    bool spot;
    char err[512];
    meta_set("{\"aws_spot\":true,\"gcp_preemptible\":false,\"azure_priority\":\"Spot\"}");
    spot = false;
    cr_assert_eq(detect(meta_url, NULL, NULL, &spot, err), 0, "%s", err);
    cr_assert(spot);
    spot = true;
    cr_assert_eq(detect(NULL, meta_url, NULL, &spot, err), 0, "%s", err);
    cr_assert(!spot);
    spot = false;
    cr_assert_eq(detect(NULL, NULL, meta_url, &spot, err), 0, "%s", err);
    cr_assert(spot);

    meta_set("{\"aws_spot\":false,\"gcp_preemptible\":true,\"azure_priority\":\"Regular\"}");
    spot = true;
    cr_assert_eq(detect(meta_url, NULL, NULL, &spot, err), 0, "%s", err);
    cr_assert(!spot);
    spot = false;
    cr_assert_eq(detect(NULL, meta_url, NULL, &spot, err), 0, "%s", err);
    cr_assert(spot);
    spot = true;
    cr_assert_eq(detect(NULL, NULL, meta_url, &spot, err), 0, "%s", err);
    cr_assert(!spot);

    /* the AWS answer used a token */
    cr_assert_eq(count_requests("PUT", "/latest/api/token"), 2);
    cr_assert_eq(count_requests("GET", "/latest/meta-data/instance-life-cycle"), 2);
}

Test(preempt, detect_spot_errors)
{
    bool spot = false;
    char err[512];
    /* first provider fails, the next one answers */
    meta_set("{\"gcp_flavor\":false,\"azure_priority\":\"Spot\"}");
    cr_assert_eq(detect(NULL, meta_url, meta_url, &spot, err), 0, "%s", err);
    cr_assert(spot);
    /* every provider fails: -EIO and each reason */
    meta_set("{\"mode\":\"500\"}");
    cr_assert_eq(detect(meta_url, meta_url, meta_url, &spot, err), -EIO);
    cr_assert(strstr(err, "aws: ") && strstr(err, "gcp: ") && strstr(err, "azure: "), "%s", err);
    cr_assert_not_null(strstr(err, "500"), "%s", err);
    meta_set("{\"mode\":\"garbage\"}");
    cr_assert_eq(detect(NULL, NULL, meta_url, &spot, err), -EIO);
    cr_assert_not_null(strstr(err, "azure: "), "%s", err);
    /* a hanging server costs one timeout per provider, no more */
    meta_set("{\"mode\":\"hang\"}");
    preempt_config_t cfg = {.gcp_url = meta_url, .timeout_ms = 300};
    int64_t t0 = util_mono_ms();
    cr_assert_eq(preempt_detect_spot(&cfg, &spot, err, sizeof err), -EIO);
    cr_assert_lt(util_mono_ms() - t0, 2000);
}

Test(preempt, nothing_configured)
{
    bool spot = true;
    char err[128];
    preempt_config_t none = {.aws_url = NULL, .gcp_url = "", .azure_url = NULL};
    cr_assert_null(preempt_watch_new(fx.loop, &none, on_notice, NULL));
    cr_assert_null(preempt_watch_new(fx.loop, NULL, on_notice, NULL));
    cr_assert_eq(preempt_detect_spot(&none, &spot, err, sizeof err), -ENOENT);
    cr_assert(err[0]);
    cr_assert_eq(preempt_detect_spot(NULL, &spot, NULL, 0), -ENOENT);
    preempt_watch_ack(NULL);
    preempt_watch_destroy(&watch); /* NULL */
    preempt_watch_destroy(NULL);
}

/* ------------------------------------------------------------ times */

Test(preempt, time_formats)
{
    int64_t ms = 0;
    cr_assert_eq(preempt_parse_rfc3339("2017-09-18T08:22:00Z", &ms), 0);
    cr_assert_eq(ms, 1505722920000LL);
    cr_assert_eq(preempt_parse_rfc3339(AWS_TIME, &ms), 0);
    cr_assert_eq(ms, AWS_TIME_MS);
    cr_assert_eq(preempt_parse_rfc3339("2026-11-29T17:00:00.25Z", &ms), 0);
    cr_assert_eq(ms, AWS_TIME_MS + 250);
    cr_assert_eq(preempt_parse_rfc3339("2026-11-29T18:30:00+01:30", &ms), 0);
    cr_assert_eq(ms, AWS_TIME_MS);
    cr_assert_eq(preempt_parse_rfc3339("2026-11-29T15:00:00-02:00", &ms), 0);
    cr_assert_eq(ms, AWS_TIME_MS);
    const char *bad3339[] = {"",
                             "2026-11-29",
                             "2026-11-29T17:00:00",
                             "2026-11-29T17:00:00Zjunk",
                             "2026-11-29T17:00:00.Z",
                             "2026-11-29T17:00:00+1:00",
                             "Mon, 19 Sep 2016 18:29:47 GMT"};
    for (size_t i = 0; i < sizeof bad3339 / sizeof bad3339[0]; i++)
        cr_assert_eq(preempt_parse_rfc3339(bad3339[i], &ms), -EINVAL, "%s", bad3339[i]);
    cr_assert_eq(preempt_parse_rfc1123(AZ_NOT_BEFORE, &ms), 0);
    cr_assert_eq(ms, AZ_NB_MS);
    const char *bad1123[] = {"", "19 Sep 2016 18:29:47 GMT", "Mon, 19 Sep 2016 18:29:47",
                             "Mon, 19 Sep 2016 18:29:47 GMT x", AWS_TIME};
    for (size_t i = 0; i < sizeof bad1123 / sizeof bad1123[0]; i++)
        cr_assert_eq(preempt_parse_rfc1123(bad1123[i], &ms), -EINVAL, "%s", bad1123[i]);
}
