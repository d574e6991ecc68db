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
 * while more is due.
 */
#include "sched_internal.h"

#include <inttypes.h>

#include "log.h"

#define EVENTS_PRUNE_BATCH 20000
#define EVENTS_MAX_REPLY   10000 /* EventsRequest.max at most */
#define EVENTS_DEFAULT_MAX 1000

void events_init(sched_t *s)
{
    uint64_t next = store_get_counter(s->store, "next_event");
    s->events.next_seq = next ? next : 1;
    s->events.pending = 0;
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

void events_free(sched_t *s)
{
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
    if (committed)
        s->events.next_seq += s->events.pending;
    s->events.pending = 0;
    if (committed && s->events.prune_more) {
        s->events.prune_more = false;
        s->journal.prune_events = true; /* journal_reset cleared it */
    }
}

void events_api(sched_t *s, const Drover__EventsRequest *req, Drover__ApiResponse *resp, char **err)
{
    if (req->max > EVENTS_MAX_REPLY) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                      "events: max %u is over the limit of %d events a request", req->max,
                      EVENTS_MAX_REPLY);
        return;
    }
    if (req->run_id && *req->run_id && !dag_find_run(s, req->run_id)) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "events: no run %s",
                      req->run_id);
        return;
    }
    uint64_t first;
    size_t n;
    int rc = store_read_events(s->store, req->since, req->run_id,
                               req->max ? req->max : EVENTS_DEFAULT_MAX, &resp->events, &n, &first);
    if (rc < 0) {
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_OTHER,
                      "events: reading the log: %s", strerror(-rc));
        return;
    }
    resp->n_events = n;
    resp->first_seq = first ? first : s->events.next_seq;
    /* events after since were pruned: the reader missed some */
    resp->truncated = req->since + 1 < resp->first_seq;
}

void events_api_done(Drover__ApiResponse *resp)
{
    store_events_free(resp->events, resp->n_events);
    resp->events = NULL;
    resp->n_events = 0;
}
