/* preempt — cloud preemption watchers for the agent.
 *
 * Watches the metadata services of AWS (IMDSv2 spot/instance-action and
 * events/recommendations/rebalance), GCP (instance/preempted and
 * instance/maintenance-event, long polls) and Azure (Scheduled Events) on
 * one background thread that drives every request through a curl multi
 * handle, so nothing here ever blocks the event loop and destroy can cut an
 * open request short at once. Each distinct notice reaches the caller once,
 * on the loop thread; so does the withdrawal of an at-risk notice (GCP's
 * maintenance-event back to NONE). Metadata base URLs are configurable so
 * tests can use a fake server on loopback (tests/integration/fakemeta.py).
 *
 * Bad answers (HTTP errors, garbage, hangs, oversized bodies, refused
 * connections) never produce a notice: they are logged once when they start
 * and once when they clear, and polling goes on.
 */
#ifndef DROVER_AGENT_PREEMPT_H
#define DROVER_AGENT_PREEMPT_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PREEMPT_MAX_BODY (64 * 1024) /* bytes of a metadata answer kept; more is an error */

typedef enum {
    PREEMPT_TERMINATE = 0, /* the node will be reclaimed */
    PREEMPT_REBALANCE = 1, /* at risk: checkpoint now, kill nothing */
    PREEMPT_WITHDRAWN = 2, /* this source's earlier notice no longer holds
                              (deadline_ms 0): GCP maintenance-event back to NONE */
} preempt_kind_t;

typedef struct {
    preempt_kind_t kind;
    char source[16]; /* "aws", "gcp", "azure" */
    int64_t
        deadline_ms;  /* wall-clock Unix ms when the node goes away; 0 = the provider gave none */
    char detail[256]; /* one printable-ASCII line, e.g.
                         "aws spot/instance-action terminate at 2026-11-29T17:00:00Z" */
} preempt_notice_t;

typedef struct {
    const char *aws_url;   /* base URL, e.g. "http://169.254.169.254"; NULL or "" = off */
    const char *gcp_url;   /* e.g. "http://metadata.google.internal"; NULL or "" = off */
    const char *azure_url; /* e.g. "http://169.254.169.254"; NULL or "" = off */
    uint32_t poll_ms;      /* between polls; 0 = 1000 */
    uint32_t timeout_ms;   /* per ordinary HTTP request; 0 = 2000 */
} preempt_config_t;

typedef struct preempt_watch preempt_watch_t;

/* Called on the loop thread; n is valid only during the call. */
typedef void (*preempt_notice_fn)(void *arg, const preempt_notice_t *n);

/* Start the configured watchers on a background thread. fn(arg, notice) is
 * called on the loop thread (woken with ev_async) once per distinct notice.
 * The URLs are copied. Returns NULL (with a logged error) when nothing is
 * configured or the thread cannot start. Call from the loop thread. */
preempt_watch_t *preempt_watch_new(struct ev_loop *loop, const preempt_config_t *cfg,
                                   preempt_notice_fn fn, void *arg);

/* The agent has finished draining. Azure: acknowledge (POST StartRequests)
 * every Preempt/Terminate event reported so far and not yet acknowledged
 * whose Resources names this VM alone (an acknowledgement lets the event
 * proceed for every VM it lists, so one naming others too is left to its
 * NotBefore); one POST per event, so a rejected EventId delays no other,
 * and a failed POST is retried on later polls (a few times). AWS and GCP:
 * nothing. Never blocks: the HTTP happens on the watcher thread. Call from
 * the loop thread; accepts NULL. */
void preempt_watch_ack(preempt_watch_t *w);

/* Stop the thread (promptly, also with a request hanging or a GCP long
 * poll open), drop notices not yet delivered, free, NULL *w. fn is not
 * called any more. Call from the loop thread; accepts NULL and *w NULL. */
void preempt_watch_destroy(preempt_watch_t **w);

/* Blocking, for agent start-up: ask the configured providers, in the order
 * AWS, GCP, Azure, whether this node is spot/preemptible (each request
 * bounded by timeout_ms). Returns 0 with *spot set from the first provider
 * that answered; -ENOENT when none is configured; -EIO when none gave a
 * usable answer, with the reasons in err (errlen bytes; may be NULL/0). */
int preempt_detect_spot(const preempt_config_t *cfg, bool *spot, char *err, size_t errlen);

/* Parse an RFC 3339 time ("2017-09-18T08:22:00Z", fractions and numeric
 * offsets allowed) or an RFC 1123 one ("Mon, 19 Sep 2016 18:29:47 GMT")
 * into Unix milliseconds. 0 or -EINVAL. (Exposed for tests.) */
int preempt_parse_rfc3339(const char *s, int64_t *ms);
int preempt_parse_rfc1123(const char *s, int64_t *ms);

#endif
