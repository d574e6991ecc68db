/* scheduler — droverd's loop: sockets, timers, and the order of the
 * phases. It owns no model state and makes no decision of its own.
 *
 * One libev loop. Incoming messages (agents and API) are handled in
 * bounded batches as they arrive; handlers change the in-memory model,
 * which records what changed in the journal and what to send in the
 * outbound queue. A high-priority ev_prepare (run before the loop would
 * block) then runs the phases, in this order and nowhere else:
 *   1. place: placer_place (at most a bounded batch of READY tasks);
 *   2. commit: commit_journal writes everything the journal holds in ONE
 *      LMDB write transaction and commits it;
 *   3. send: outbound_send (assignments, kills, acks, transfer messages,
 *      peer replies), then replies_flush (API replies).
 * So an acknowledgement or assignment never leaves before the state it
 * reflects is on disk, and a burst of events costs one fsync.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sdnotify.h"
#include "util.h"

#define BATCH_MESSAGES 512
#define TICK_SECONDS   0.1
#define MAX_MESSAGE    (64 << 20)
#define API_PEER_QUEUE (32u << 20)
#define GC_INTERVAL_MS (3600 * 1000)

void sched_config_defaults(sched_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "tcp://127.0.0.1:7070";
    cfg->agent_timeout_ms = 10000;
    cfg->log_limit = 8u << 20;
    cfg->assign_resend_ms = 2000;
    cfg->retention_ms = 30ULL * 24 * 3600 * 1000;
    cfg->max_items = 1000000;
    cfg->max_run_tasks = 10000000;
    cfg->max_schedules = 1000;
    spec_limits_defaults(&cfg->spec_limits);
    cfg->max_message = MAX_MESSAGE;
    cfg->api_peer_queue = API_PEER_QUEUE;
    cfg->max_system_errors = 3;
    cfg->max_depth = 100;
    cfg->events_max = 1000000;
    cfg->events_max_age_ms = 7ULL * 24 * 3600 * 1000;
    cfg->api_waiters = 1024;
}

/* An idle watcher only makes the loop poll without blocking, so that
 * on_flush runs again soon; one turn is enough. */
static void on_more(struct ev_loop *loop, ev_idle *w, int revents)
{
    ev_idle_stop(loop, w);
}

/* Runs before the loop blocks: place, commit, then send. */
static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    sched_t *s = w->data;
    if (placer_place(s))
        ev_idle_start(loop, &s->more_w); /* place the rest next iteration */
    int rc = commit_journal(s);
    if (rc < 0) {
        /* Nothing that depends on the lost transaction may leave. Stop: a
         * restart reloads the last durable state. */
        char why[512];
        log_error("store commit failed (%s): stopping without sending",
                  store_strerror(s->store, rc, why, sizeof why));
        s->fatal = rc;
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    outbound_send(&s->out, s->agents_sock);
    replies_flush(s);
}

/* ------------------------------------------------------------ receiving */

/* A message from an unknown key is refused without being decoded;
 * otherwise agents.c decides what it may do. */
static void receive_agent_message(sched_t *s, zframe_t *conn, zframe_t *body)
{
    const keys_entry_t *key;
    char why[256];
    int rc = auth_agent_key(s, body, &key, why, sizeof why);
    if (rc == 0) {
        agents_handle(s, conn, key, zframe_data(body), zframe_size(body));
        return;
    }
    if (rc == -EAGAIN) { /* an unknown key while join tokens exist */
        tokens_join(s, conn, body);
        return;
    }
    /* Logged for the first hundred and then every thousandth. */
    if (s->counters.refused_agents < 100 || s->counters.refused_agents % 1000 == 0)
        log_warn("agents socket: message refused: %s", why);
    outbound_peer_reply(&s->out, conn, why);
}

static void on_agents_readable(void *arg)
{
    sched_t *s = arg;
    for (int i = 0; i < BATCH_MESSAGES; i++) {
        zmsg_t *m = zmsg_recv(s->agents_sock);
        if (!m)
            break;
        zframe_t *id = zmsg_pop(m);
        zframe_t *body = zmsg_pop(m);
        if (id && body && zmsg_size(m) == 0)
            receive_agent_message(s, id, body);
        else
            log_warn("agents socket: message with unexpected framing dropped");
        zframe_destroy(&id);
        zframe_destroy(&body);
        zmsg_destroy(&m);
    }
}

/* Answer a request from an unknown key with why (it is never decoded). */
static void refuse_api(sched_t *s, zframe_t *id, char *why)
{
    if (s->counters.refused_api < 100 || s->counters.refused_api % 1000 == 0)
        log_warn("api: %s", why);
    Drover__ApiResponse r = DROVER__API_RESPONSE__INIT;
    r.error = why;
    r.error_code = DROVER__API_ERROR_CODE__API_ERROR_PERMISSION_DENIED;
    size_t n = drover__api_response__get_packed_size(&r);
    uint8_t *buf = xmalloc(n);
    drover__api_response__pack(&r, buf);
    sched_queue_reply(s, id, buf, n);
}

static void on_api_readable(void *arg)
{
    sched_t *s = arg;
    for (int i = 0; i < BATCH_MESSAGES; i++) {
        zmsg_t *m = zmsg_recv(s->api_sock);
        if (!m)
            break;
        zframe_t *id = zmsg_pop(m);
        zframe_t *delim = zmsg_pop(m);
        zframe_t *body = zmsg_pop(m);
        api_caller_t caller;
        char why[256];
        if (id && replies_peer_dropped(s, id)) {
            zframe_destroy(&id); /* dropped: not reading; ignored, never decoded */
        } else if (id && delim && body && zframe_size(delim) == 0 && zmsg_size(m) == 0 &&
                   auth_api_caller(s, body, &caller, why, sizeof why) < 0) {
            refuse_api(s, id, why); /* takes id */
        } else if (id && delim && body && zframe_size(delim) == 0 && zmsg_size(m) == 0)
            api_handle_as(s, &caller, id, zframe_data(body), zframe_size(body)); /* takes id */
        else {
            log_warn("api socket: request with unexpected framing dropped");
            zframe_destroy(&id);
        }
        zframe_destroy(&delim);
        zframe_destroy(&body);
        zmsg_destroy(&m);
    }
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    sched_t *s = w->data;
    int64_t now = util_now_ms();
    dag_retry_due(s, now);
    limits_tick(s, now);
    gates_due(s, now);
    schedules_tick(s, now);
    agents_tick(s);
    pools_tick(s, now);
    replies_sweep(s);
    if (now - s->last_gc_ms > GC_INTERVAL_MS) {
        s->last_gc_ms = now;
        dag_retention(s, now);
        blobstore_sweep(s);
        journal_prune_cache(&s->journal); /* entries whose run was deleted, by now or before */
        s->journal.prune_events = true;   /* --events-max, --events-max-age (events.c) */
    }
}

static void on_reload_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    auth_reload(w->data);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

/* ------------------------------------------------------------ setup */

static zsock_t *bind_router(sched_t *s, const char *endpoint, bool api)
{
    char err[512];
    if (auth_prepare_ipc(endpoint, err, sizeof err) < 0) {
        log_error("%s", err);
        return NULL;
    }
    zsock_t *sock = zsock_new(ZMQ_ROUTER);
    if (!sock)
        return NULL;
    auth_secure(s, sock, api);
    /* No handover: routing ids are droverd's own (peers set none), so a
     * new connection never takes an existing one's place. */
    zsock_set_router_mandatory(sock, 1);
    zsock_set_rcvtimeo(sock, 0);
    zsock_set_sndtimeo(sock, 0);
    zsock_set_sndhwm(sock, 100000);
    zsock_set_rcvhwm(sock, 100000);
    zsock_set_maxmsgsize(sock, (int64_t)s->cfg.max_message);
    zsock_set_linger(sock, 0);
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        log_error("zmq_bind(%s): %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
        return NULL;
    }
    auth_after_bind(endpoint);
    return sock;
}

sched_t *sched_new(const sched_config_t *cfg)
{
    char err[512];
    sched_t *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->metrics.started_ms = util_now_ms();
    journal_init(&s->journal);
    fleet_init(&s->fleet);
    replies_init(s);
    schedules_init(s);
    s->api_endpoint = cfg->api ? xstrdup(cfg->api) : xasprintf("ipc://%s/api.sock", cfg->state_dir);
    s->dag.runs_by_id = zhashx_new();
    s->dag.attempts = idmap_new();
    zsys_init();
    zsys_handler_set(NULL); /* signals are ours (ev_signal) */

    s->store = store_new(cfg->state_dir, err, sizeof err);
    if (!s->store) {
        log_error("state dir %s: %s", cfg->state_dir, err);
        goto fail;
    }
    s->loop = EV_DEFAULT;
    s->worker = worker_new(s->loop);
    if (!s->worker || blobs_init(s) < 0)
        goto fail;
    s->last_gc_ms = util_now_ms() - GC_INTERVAL_MS + 60 * 1000; /* first pass a minute in */
    events_init(s);
    uint64_t blobs, blob_bytes; /* the metrics' blob store size: summed once, now */
    store_blob_totals(s->store, &blobs, &blob_bytes);
    s->journal.prune_events = true; /* the event log: pruned at start, then hourly */
    int rc = dag_load(s);
    if (rc < 0) {
        log_error("loading state from %s: %s", cfg->state_dir, strerror(-rc));
        goto fail;
    }
    if ((rc = tokens_init(s)) < 0) {
        log_error("loading join tokens from %s: %s", cfg->state_dir, strerror(-rc));
        goto fail;
    }
    if (auth_init(s, err, sizeof err) < 0) {
        log_error("%s", err);
        goto fail;
    }
    if ((rc = pools_init(s)) < 0) {
        log_error("loading node pools from %s: %s", cfg->state_dir, strerror(-rc));
        goto fail;
    }
    s->agents_sock = bind_router(s, cfg->listen, false);
    s->api_sock = bind_router(s, s->api_endpoint, true);
    if (!s->agents_sock || !s->api_sock)
        goto fail;

    s->agents_zev = zev_new(s->loop, zsock_resolve(s->agents_sock), on_agents_readable, s);
    s->api_zev = zev_new(s->loop, zsock_resolve(s->api_sock), on_api_readable, s);
    if (!s->agents_zev || !s->api_zev)
        goto fail;
    ev_prepare_init(&s->flush_w, on_flush);
    ev_set_priority(&s->flush_w, EV_MAXPRI);
    s->flush_w.data = s;
    ev_prepare_start(s->loop, &s->flush_w);
    ev_idle_init(&s->more_w, on_more);
    ev_timer_init(&s->tick_w, on_tick, TICK_SECONDS, TICK_SECONDS);
    s->tick_w.data = s;
    ev_timer_start(s->loop, &s->tick_w);
    ev_signal_init(&s->sigint_w, on_stop_signal, SIGINT);
    ev_signal_init(&s->sigterm_w, on_stop_signal, SIGTERM);
    ev_signal_start(s->loop, &s->sigint_w);
    ev_signal_start(s->loop, &s->sigterm_w);
    ev_signal_init(&s->sighup_w, on_reload_signal, SIGHUP);
    s->sighup_w.data = s;
    ev_signal_start(s->loop, &s->sighup_w);
    signal(SIGPIPE, SIG_IGN);
    return s;
fail:
    sched_destroy(&s);
    return NULL;
}

int sched_run(sched_t *s)
{
    char status[256];
    snprintf(status, sizeof status, "agents on %s, api on %s", s->cfg.listen, s->api_endpoint);
    log_info("droverd serving: %s, state in %s", status, s->cfg.state_dir);
    sdnotify_ready(s->loop, &s->watchdog_w, status);
    ev_run(s->loop, 0);
    sdnotify_stopping();
    return s->fatal;
}

void sched_destroy(sched_t **sp)
{
    if (!sp || !*sp)
        return;
    sched_t *s = *sp;
    if (s->loop) {
        ev_prepare_stop(s->loop, &s->flush_w);
        ev_idle_stop(s->loop, &s->more_w);
        ev_timer_stop(s->loop, &s->tick_w);
        ev_timer_stop(s->loop, &s->watchdog_w);
        ev_signal_stop(s->loop, &s->sigint_w);
        ev_signal_stop(s->loop, &s->sigterm_w);
        ev_signal_stop(s->loop, &s->sighup_w);
    }
    worker_destroy(&s->worker); /* finishes queued I/O first */
    if (!s->fatal && s->store)
        commit_journal(s); /* nothing should be pending, but never drop a change */
    blobs_shutdown(s);
    zev_destroy(&s->agents_zev);
    zev_destroy(&s->api_zev);
    zsock_destroy(&s->agents_sock);
    zsock_destroy(&s->api_sock);
    auth_shutdown(s);
    pools_free(s); /* before tokens: kills provider calls still running */
    tokens_free(s);
    events_free(s);
    outbound_free(&s->out);
    replies_shutdown(s);
    journal_reset(&s->journal); /* what a failed commit left (touches tasks: before they go) */
    dag_free_deleted(s);
    dag_free_all(s);
    schedules_free(s);
    fleet_free(&s->fleet);
    journal_free(&s->journal); /* after the attempt records that name interned agents */
    zhashx_destroy(&s->dag.runs_by_id);
    idmap_destroy(&s->dag.attempts);
    store_destroy(&s->store);
    free(s->api_endpoint);
    free(s);
    *sp = NULL;
}
