/* events — droverd's durable event log (README "Events").
 *
 * Events are derived at commit time, not sprinkled through the model:
 * the commit phase (commit.c) already writes every run, task, agent and
 * pool node that changed, and as it writes each one it compares the
 * status it writes with the one it last wrote (committed_status and the
 * like, set here and at load) and puts an EventRecord for the
 * difference, in the same LMDB transaction. So an event exists iff the
 * change it tells of was committed: a failed commit (aborted, droverd
 * stops) leaves neither. Transitions within one loop iteration collapse
 * into one event (ASSIGNED then SUCCEEDED before a commit: one
 * ASSIGNED→SUCCEEDED), as the store only ever saw those.
 *
 * Storage: the events of one commit are queued (s->events.batch, their
 * strings borrowed from the records being written) and put as ONE
 * EventBatch value at the end of the commit's writes (events_commit):
 * one LMDB put a commit, not one an event (bench/README.md: the cost).
 *
 * Invariants: seq counts from 1 without gaps; s->events.next_seq is the
 * next seq to give (meta "next_event", written in the transaction that
 * puts events); s->events.pending counts the events queued in the open
 * transaction, added to next_seq only once it committed. Pruning (at
 * start and hourly: --events-max, --events-max-age) deletes whole batches
 * from the lowest seq (so at least --events-max are kept), at most
 * EVENTS_PRUNE_BATCH batches per commit; it continues in the next commits
 * while more is due. s->events.first_seq follows the oldest kept in memory.
 *
 * Reading (EventsRequest): on the loop thread, from its own LMDB read
 * transaction, looking at most EVENTS_SCAN_MAX events a request (a --run
 * filter over a long log would otherwise scan it all): the answer's
 * next_seq says where to go on. Pushed delivery: a request with wait_ms
 * that finds nothing is HELD (s->events.waiters, at most --api-waiters in
 * all, each a hold on its peer's reply bound: replies_hold) and answered
 * by events_wake right after the commit that puts matching events, from
 * that commit's batch in memory (no re-read), or empty by the timer
 * (wait_w, armed for the earliest deadline) when its wait_ms passes. A
 * held request's peer that went away is answered all the same: the
 * ROUTER drops a reply for an unknown peer, so nothing is left behind.
 * Held requests are droverd's memory only: a restart forgets them, and
 * the client, getting no answer, asks again (cli/api.c's patience).
 */
#include "sched_internal.h"

#include <inttypes.h>

#include "log.h"

#define EVENTS_PRUNE_BATCH 20000
#define EVENTS_MAX_REPLY   10000 /* EventsRequest.max at most */
#define EVENTS_DEFAULT_MAX 1000
#define EVENTS_MAX_WAIT    60000  /* EventsRequest.wait_ms at most */
#define EVENTS_SCAN_MAX    100000 /* events one request looks at, at most (whole batches) */

/* A held EventsRequest. */
struct events_waiter {
    zframe_t *identity; /* the peer's routing id (owned) */
    api_peer_t *peer;   /* its hold on the peer (replies_hold) */
    char *run_id;       /* only this run's events (owned); NULL: all */
    uint64_t since;
    uint32_t max;
    int64_t deadline; /* util_mono_ms */
};

static void on_wait_timeout(struct ev_loop *loop, ev_timer *w, int revents);

void events_init(sched_t *s)
{
    uint64_t next = store_get_counter(s->store, "next_event");
    s->events.next_seq = next ? next : 1;
    s->events.pending = 0;
    /* the oldest kept: a read with nothing after since tells it */
    Drover__EventRecord **none;
    size_t n;
    uint64_t first = 0;
    if (store_read_events(s->store, UINT64_MAX, NULL, 1, &none, &n, &first) == 0)
        store_events_free(none, n);
    s->events.first_seq = first ? first : s->events.next_seq;
    ev_timer_init(&s->events.wait_w, on_wait_timeout, 0, 0);
    s->events.wait_w.data = s;
}

/* Queue ev (a copy; its strings borrowed from the records being written,
 * alive until the commit ends) with its seq and time, for events_commit's
 * one put. */
static int put(sched_t *s, Drover__EventRecord *ev)
{
    ev->seq = s->events.next_seq + s->events.pending;
    ev->time_ms = s->events.now_ms ? s->events.now_ms : (s->events.now_ms = util_now_ms());
    if (s->events.pending == s->events.cap_batch) {
        s->events.cap_batch = s->events.cap_batch ? s->events.cap_batch * 2 : 64;
        s->events.batch = xrealloc(s->events.batch, s->events.cap_batch * sizeof *s->events.batch);
    }
    s->events.batch[s->events.pending++] = *ev;
    return 0;
}

static const char *task_status(uint8_t committed)
{
    return committed ? util_task_status_name((Drover__TaskStatus)(committed - 1)) : "";
}

static int events_task(sched_t *s, task_t *t)
{
    int rc = 0;
    const Drover__AttemptRecord *a = t->n_attempts ? t->attempts[t->n_attempts - 1] : NULL;
    uint8_t now = (uint8_t)(t->status + 1);
    if (now != t->committed_status) {
        Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT;
        ev.kind = DROVER__EVENT_KIND__EVENT_TASK;
        ev.run_id = t->run->rec->id;
        ev.task = t->name;
        ev.from = (char *)task_status(t->committed_status);
        ev.to = (char *)task_status(now);
        ev.attempt = a ? a->number : 0;
        ev.agent = a && a->agent ? a->agent : (char *)"";
        ev.reason = t->reason ? t->reason
                    : a && a->reason &&
                            (t->status == DROVER__TASK_STATUS__TASK_FAILED ||
                             t->status == DROVER__TASK_STATUS__TASK_LOST ||
                             t->status == DROVER__TASK_STATUS__TASK_PREEMPTED)
                        ? a->reason
                        : (char *)"";
        if (a && a->finished_ms && !a->term_signal &&
            (t->status == DROVER__TASK_STATUS__TASK_SUCCEEDED ||
             t->status == DROVER__TASK_STATUS__TASK_FAILED)) {
            ev.has_exit = true;
            ev.exit_code = a->exit_code;
        }
        if ((rc = put(s, &ev)) == 0)
            t->committed_status = now;
    }
    const Drover__Checkpoint *ck = dag_latest_checkpoint(t);
    if (rc == 0 && ck && ck->time_ms != t->committed_checkpoint_ms) {
        Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT;
        ev.kind = DROVER__EVENT_KIND__EVENT_CHECKPOINT;
        ev.run_id = t->run->rec->id;
        ev.task = t->name;
        ev.attempt = ck->attempt;
        ev.agent = a && a->agent ? a->agent : (char *)"";
        ev.checkpoint_step = ck->step;
        if ((rc = put(s, &ev)) == 0)
            t->committed_checkpoint_ms = ck->time_ms;
    }
    return rc;
}

static int events_run(sched_t *s, run_t *r)
{
    uint8_t now = (uint8_t)(r->rec->status + 1);
    if (now == r->committed_status)
        return 0;
    Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT;
    ev.kind = DROVER__EVENT_KIND__EVENT_RUN;
    ev.run_id = r->rec->id;
    ev.from = r->committed_status
                  ? (char *)util_run_status_name((Drover__RunStatus)(r->committed_status - 1))
                  : (char *)"";
    ev.to = (char *)util_run_status_name(r->rec->status);
    ev.reason = r->rec->reason ? r->rec->reason : (char *)"";
    int rc = put(s, &ev);
    if (rc == 0)
        r->committed_status = now;
    return rc;
}

/* One agent event: what changed, from and to. */
static int agent_event(sched_t *s, agent_t *a, const char *from, const char *to, const char *reason)
{
    Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT;
    ev.kind = DROVER__EVENT_KIND__EVENT_AGENT;
    ev.agent = a->name;
    ev.from = (char *)from;
    ev.to = (char *)to;
    ev.reason = (char *)(reason ? reason : "");
    return put(s, &ev);
}

static int events_agent(sched_t *s, agent_t *a)
{
    uint8_t now =
        (uint8_t)(AGENT_EV_WRITTEN | (a->connected ? AGENT_EV_CONNECTED : 0) |
                  (a->drained ? AGENT_EV_DRAINED : 0) | (a->noticed ? AGENT_EV_NOTICED : 0));
    uint8_t was = a->committed_state, diff = (uint8_t)(now ^ was);
    int rc = 0;
    if (diff & AGENT_EV_CONNECTED)
        rc = agent_event(s, a, a->connected ? "disconnected" : "connected",
                         a->connected ? "connected" : "disconnected", NULL);
    if (rc == 0 && (diff & AGENT_EV_DRAINED))
        rc = agent_event(s, a, a->drained ? "in service" : "drained",
                         a->drained ? "drained" : "in service", NULL);
    if (rc == 0 && (diff & AGENT_EV_NOTICED))
        rc = agent_event(s, a, a->noticed ? "no notice" : "preempt notice",
                         a->noticed ? "preempt notice" : "notice withdrawn",
                         a->noticed ? a->notice_reason : NULL);
    if (rc == 0)
        a->committed_state = now;
    return rc;
}

/* The dirty list from head through next, in reverse (the order the
 * records were marked in: causes before effects), into the reused
 * s->events.order (n items). */
#define GATHER(s, head, type, next, n)                                                             \
    do {                                                                                           \
        n = 0;                                                                                     \
        for (type *x = (head); x; x = x->next) {                                                   \
            if (n == (s)->events.cap) {                                                            \
                (s)->events.cap = (s)->events.cap ? (s)->events.cap * 2 : 256;                     \
                (s)->events.order =                                                                \
                    xrealloc((s)->events.order, (s)->events.cap * sizeof *(s)->events.order);      \
            }                                                                                      \
            (s)->events.order[n++] = x;                                                            \
        }                                                                                          \
    } while (0)

int events_derive(sched_t *s)
{
    journal_t *j = &s->journal;
    size_t n;
    int rc = 0;
    GATHER(s, j->dirty_agents, agent_t, dirty_next, n);
    while (n && rc == 0)
        rc = events_agent(s, s->events.order[--n]);
    GATHER(s, j->dirty_tasks, task_t, dirty_next, n);
    while (n && rc == 0) {
        task_t *t = s->events.order[--n];
        if (!t->run->deleting) /* not written: its run goes in this commit */
            rc = events_task(s, t);
    }
    GATHER(s, j->dirty_runs, run_t, dirty_next, n);
    while (n && rc == 0) {
        run_t *r = s->events.order[--n];
        if (!r->deleting)
            rc = events_run(s, r);
    }
    return rc;
}

static void waiter_free(struct events_waiter *w)
{
    replies_unhold(w->peer);
    zframe_destroy(&w->identity);
    free(w->run_id);
}

void events_free(sched_t *s)
{
    if (s->loop)
        ev_timer_stop(s->loop, &s->events.wait_w);
    for (size_t i = 0; i < s->events.n_waiters; i++)
        waiter_free(&s->events.waiters[i]); /* droverd stops: the clients ask again */
    free(s->events.waiters);
    s->events.waiters = NULL;
    s->events.n_waiters = s->events.cap_waiters = 0;
    free(s->events.batch);
    s->events.batch = NULL;
    s->events.cap_batch = 0;
    free(s->events.order);
    s->events.order = NULL;
    s->events.cap = 0;
}

int events_pool_node(sched_t *s, const char *pool, const char *node, const char *from,
                     const char *to, const char *why)
{
    Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT;
    ev.kind = DROVER__EVENT_KIND__EVENT_POOL_NODE;
    ev.pool = (char *)pool;
    ev.node = (char *)node;
    ev.from = (char *)from;
    ev.to = (char *)to;
    ev.reason = (char *)(why ? why : "");
    return put(s, &ev);
}

int events_commit(sched_t *s)
{
    int rc = 0;
    if (s->journal.prune_events) {
        uint64_t n = 0;
        int64_t age = (int64_t)s->cfg.events_max_age_ms;
        int64_t before = age ? util_now_ms() - age : INT64_MIN;
        /* keep the newest events_max of those committed and these */
        uint64_t next = s->events.next_seq + s->events.pending, max = s->cfg.events_max;
        uint64_t keep_from = max && next > max ? next - max : 0;
        rc = store_prune_events(s->store, keep_from, s->events.next_seq, before, EVENTS_PRUNE_BATCH,
                                &n, &s->events.prune_more);
        if (rc == 0)
            s->events.pruned = n;
        if (rc == 0 && n)
            log_info("event log: %" PRIu64 " events pruned%s", n,
                     s->events.prune_more ? " (more next commit)" : "");
    }
    if (rc == 0 && s->events.pending) {
        size_t n = s->events.pending;
        Drover__EventRecord **ptrs = xmalloc(n * sizeof *ptrs);
        for (size_t i = 0; i < n; i++)
            ptrs[i] = &s->events.batch[i];
        rc = store_put_events(s->store, ptrs, n);
        free(ptrs);
        if (rc == 0)
            rc = store_put_counter(s->store, "next_event", s->events.next_seq + n);
    }
    return rc;
}

void events_after_commit(sched_t *s, bool committed)
{
    s->events.now_ms = 0;
    if (committed) {
        s->events.first_seq += s->events.pruned; /* whole batches from the lowest */
        s->events.next_seq += s->events.pending;
        if (s->events.first_seq > s->events.next_seq)
            s->events.first_seq = s->events.next_seq;
    }
    s->events.pending = 0;
    s->events.pruned = 0;
    if (committed && s->events.prune_more) {
        s->events.prune_more = false;
        s->journal.prune_events = true; /* journal_reset cleared it */
    }
}

/* The seq a reader that looked at everything up to end should pass next:
 * end, or its own since when that is beyond (UINT64_MAX: "from now"). */
static uint64_t next_after(uint64_t since, uint64_t end)
{
    return since != UINT64_MAX && since > end ? since : end;
}

/* Whether events after since were pruned (the oldest kept is first): the
 * reader missed some. */
static bool behind(uint64_t since, uint64_t first)
{
    return since != UINT64_MAX && since + 1 < first;
}

/* Pack resp and queue it for the waiter's peer (taking its identity). */
static void waiter_answer(sched_t *s, struct events_waiter *w, Drover__ApiResponse *resp)
{
    size_t n = drover__api_response__get_packed_size(resp);
    uint8_t *buf = xmalloc(n);
    drover__api_response__pack(resp, buf);
    replies_unhold(w->peer); /* before the reply counts instead */
    w->peer = NULL;
    sched_queue_reply(s, w->identity, buf, n);
    w->identity = NULL;
    free(w->run_id);
    w->run_id = NULL;
}

/* The timer for the earliest deadline among the waiters (none: stopped). */
static void arm(sched_t *s)
{
    ev_timer_stop(s->loop, &s->events.wait_w);
    if (!s->events.n_waiters)
        return;
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < s->events.n_waiters; i++)
        if (s->events.waiters[i].deadline < first)
            first = s->events.waiters[i].deadline;
    int64_t left = first - util_mono_ms();
    ev_timer_set(&s->events.wait_w, left > 0 ? (double)left / 1000.0 : 0.0, 0.0);
    ev_timer_start(s->loop, &s->events.wait_w);
}

/* Waiters whose wait_ms passed: answered empty, with where to go on. */
static void on_wait_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    sched_t *s = t->data;
    int64_t now = util_mono_ms();
    size_t kept = 0;
    for (size_t i = 0; i < s->events.n_waiters; i++) {
        struct events_waiter *w = &s->events.waiters[i];
        if (w->deadline > now) {
            s->events.waiters[kept++] = *w;
            continue;
        }
        Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
        resp.first_seq = s->events.first_seq;
        resp.truncated = behind(w->since, resp.first_seq);
        resp.next_seq = next_after(w->since, s->events.next_seq - 1);
        waiter_answer(s, w, &resp);
    }
    s->events.n_waiters = kept;
    arm(s);
}

void events_wake(sched_t *s)
{
    size_t n = s->events.pending, kept = 0;
    if (!n || !s->events.n_waiters)
        return;
    const Drover__EventRecord *batch = s->events.batch;
    Drover__EventRecord **match = xmalloc(n * sizeof *match);
    for (size_t i = 0; i < s->events.n_waiters; i++) {
        struct events_waiter *w = &s->events.waiters[i];
        size_t k = 0;
        for (size_t e = 0; e < n && k < w->max; e++)
            if (batch[e].seq > w->since && (!w->run_id || !strcmp(batch[e].run_id, w->run_id)))
                match[k++] = (Drover__EventRecord *)&batch[e];
        if (!k) {
            s->events.waiters[kept++] = *w;
            continue;
        }
        Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
        resp.events = match;
        resp.n_events = k;
        resp.first_seq = s->events.first_seq + s->events.pruned;
        resp.truncated = behind(w->since, resp.first_seq);
        resp.next_seq = k == w->max ? match[k - 1]->seq : batch[n - 1].seq;
        waiter_answer(s, w, &resp);
    }
    free(match);
    if (kept != s->events.n_waiters) {
        s->events.n_waiters = kept;
        arm(s);
    }
}

/* Hold the request (true), or false when it may not be held: the waiter
 * list is full, or its peer may hold no more. */
static bool hold(sched_t *s, zframe_t *identity, const Drover__EventsRequest *req, size_t max)
{
    if (s->events.n_waiters >= s->cfg.api_waiters)
        return false;
    api_peer_t *p = replies_hold(s, identity);
    if (!p)
        return false;
    if (s->events.n_waiters == s->events.cap_waiters) {
        s->events.cap_waiters = s->events.cap_waiters ? s->events.cap_waiters * 2 : 16;
        s->events.waiters =
            xrealloc(s->events.waiters, s->events.cap_waiters * sizeof *s->events.waiters);
    }
    s->events.waiters[s->events.n_waiters++] = (struct events_waiter){
        .identity = identity,
        .peer = p,
        .run_id = req->run_id && *req->run_id ? xstrdup(req->run_id) : NULL,
        .since = req->since,
        .max = (uint32_t)max,
        .deadline = util_mono_ms() + req->wait_ms,
    };
    arm(s);
    return true;
}

bool events_api(sched_t *s, zframe_t *identity, const Drover__EventsRequest *req,
                Drover__ApiResponse *resp, char **err)
{
    if (req->max > EVENTS_MAX_REPLY) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                      "events: max %u is over the limit of %d events a request", req->max,
                      EVENTS_MAX_REPLY);
        return false;
    }
    if (req->wait_ms > EVENTS_MAX_WAIT) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                      "events: wait_ms %u is over the limit of %d ms", req->wait_ms,
                      EVENTS_MAX_WAIT);
        return false;
    }
    if (req->run_id && *req->run_id && !dag_find_run(s, req->run_id)) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "events: no run %s",
                      req->run_id);
        return false;
    }
    uint64_t first, last;
    size_t n, max = req->max ? req->max : EVENTS_DEFAULT_MAX;
    int rc = store_scan_events(s->store, req->since, req->run_id, max, EVENTS_SCAN_MAX,
                               &resp->events, &n, &first, &last);
    if (rc < 0) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_OTHER,
                      "events: reading the log: %s", strerror(-rc));
        return false;
    }
    resp->n_events = n;
    resp->first_seq = first ? first : s->events.next_seq;
    /* events after since were pruned: the reader missed some */
    resp->truncated = behind(req->since, resp->first_seq);
    uint64_t end = s->events.next_seq - 1;
    bool stopped = last && last < end; /* at max, or at the scan bound */
    resp->next_seq = stopped ? last : next_after(req->since, end);
    if (n || stopped || resp->truncated || !req->wait_ms || !hold(s, identity, req, max))
        return false;
    store_events_free(resp->events, 0);
    resp->events = NULL;
    return true;
}

void events_api_done(Drover__ApiResponse *resp)
{
    store_events_free(resp->events, resp->n_events);
    resp->events = NULL;
    resp->n_events = 0;
}

uint64_t events_last_seq(const sched_t *s)
{
    return s->events.next_seq - 1; /* pending ones are not committed yet */
}
