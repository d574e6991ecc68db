/* scheduler — droverd's loop: sockets, group commit, outbound batches.
 *
 * One libev loop. Incoming messages (agents and API) are handled in
 * bounded batches as they arrive; handlers change the in-memory model and
 * mark what changed. A high-priority ev_prepare (run before the loop would
 * block) then: places ready tasks, writes every dirty run, task, agent,
 * counter and log chunk in ONE LMDB write transaction and commits it, and
 * only then sends the queued assignments, kills, acks and API replies.
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
    spec_limits_defaults(&cfg->spec_limits);
    cfg->max_message = MAX_MESSAGE;
    cfg->api_peer_queue = API_PEER_QUEUE;
    cfg->max_system_errors = 3;
}

/* ------------------------------------------------------------ marking */

void sched_mark_run(sched_t *s, run_t *r)
{
    if (r->dirty)
        return;
    r->dirty = true;
    r->dirty_next = s->dirty_runs;
    s->dirty_runs = r;
}

void sched_mark_task(sched_t *s, task_t *t)
{
    s->must_commit = true;
    sched_mark_task_lazy(s, t);
}

void sched_mark_task_lazy(sched_t *s, task_t *t)
{
    if (t->dirty)
        return;
    t->dirty = true;
    t->dirty_next = s->dirty_tasks;
    s->dirty_tasks = t;
}

void sched_mark_agent(sched_t *s, agent_t *a)
{
    if (a->dirty)
        return;
    a->dirty = true;
    a->dirty_next = s->dirty_agents;
    s->dirty_agents = a;
}

agent_out_t *sched_agent_out(sched_t *s, agent_t *a)
{
    if (!a->out.queued) {
        a->out.queued = true;
        a->out_next = s->outbound;
        s->outbound = a;
    }
    return &a->out;
}

char *sched_intern(sched_t *s, const char *str)
{
    char *copy = zhashx_lookup(s->names, str);
    if (!copy) {
        copy = xstrdup(str);
        zhashx_insert(s->names, copy, copy);
    }
    return copy;
}

void sched_cache_put(sched_t *s, task_t *t)
{
    if (s->n_cache_puts == s->cap_cache_puts) {
        s->cap_cache_puts = s->cap_cache_puts ? s->cap_cache_puts * 2 : 64;
        s->cache_puts = xrealloc(s->cache_puts, s->cap_cache_puts * sizeof *s->cache_puts);
    }
    s->cache_puts[s->n_cache_puts++] = t;
}

void sched_queue_peer_reply(sched_t *s, zframe_t *conn, const char *refused)
{
    if (s->n_peer_replies >= 4096)
        return; /* the peer asks again with its next message */
    s->peer_replies = xrealloc(s->peer_replies, (s->n_peer_replies + 1) * sizeof *s->peer_replies);
    s->peer_replies[s->n_peer_replies++] =
        (peer_reply_t){zframe_dup(conn), refused ? xstrdup(refused) : NULL};
}

/* ------------------------------------------------------------ commit */

/* store_cache_prune: whether an entry's run is still there. */
static bool run_alive(const char *run_id, void *arg)
{
    return dag_find_run(arg, run_id) != NULL;
}

static int write_dirty(sched_t *s)
{
    int rc = 0;
    for (run_t *r = s->dirty_runs; r && rc == 0; r = r->dirty_next) {
        if (r->deleting)
            continue;
        rc = store_put_run(s->store, r->rec);
        if (rc == 0 && r->steps_unwritten) /* once, at submit */
            rc = store_put_steps(s->store, r->rec->id, r->steps);
    }
    for (task_t *t = s->dirty_tasks; t && rc == 0; t = t->dirty_next) {
        Drover__TaskRecord rec;
        if (t->run->deleting)
            continue;
        dag_task_record(t, &rec);
        rc = store_put_task(s->store, t->run->rec->id, &rec);
    }
    if (rc == 0 && s->prune_cache && !s->clear_cache) {
        uint64_t n;
        rc = store_cache_prune(s->store, run_alive, s, &n);
        if (rc == 0 && n)
            log_info("step cache: %" PRIu64 " entries of deleted runs removed", n);
    }
    if (rc == 0 && s->clear_cache) {
        uint64_t n;
        rc = store_cache_clear(s->store, &n);
    }
    for (size_t i = 0; i < s->n_cache_puts && rc == 0; i++) {
        task_t *t = s->cache_puts[i];
        if (!t->run->deleting)
            rc = store_cache_put(s->store, t->cache_key, t->run->rec->id, t->index);
    }
    if (rc == 0)
        rc = blobs_commit(s);
    if (rc == 0)
        rc = dag_commit_deletions(s);
    for (size_t i = 0; i < s->n_forgotten_agents && rc == 0; i++)
        rc = store_delete_agent(s->store, s->forgotten_agents[i]); /* before any re-register */
    for (agent_t *a = s->dirty_agents; a && rc == 0; a = a->dirty_next) {
        Drover__AgentRecord rec;
        agents_record(a, &rec);
        rc = store_put_agent(s->store, &rec);
    }
    for (log_write_t *w = s->log_writes; w && rc == 0; w = w->next)
        rc = store_put_log(s->store, w->run_id, w->task, w->attempt, w->offset, w->data, w->len);
    if (rc == 0 && s->counters_dirty) {
        rc = store_put_counter(s->store, "next_run", s->next_run);
        if (rc == 0)
            rc = store_put_counter(s->store, "next_attempt", s->next_attempt);
    }
    return rc;
}

static void clear_dirty(sched_t *s)
{
    for (run_t *r = s->dirty_runs, *n; r; r = n) {
        n = r->dirty_next;
        r->dirty = false;
        r->steps_unwritten = false;
        r->dirty_next = NULL;
    }
    for (task_t *t = s->dirty_tasks, *n; t; t = n) {
        n = t->dirty_next;
        t->dirty = false;
        t->dirty_next = NULL;
    }
    for (agent_t *a = s->dirty_agents, *n; a; a = n) {
        n = a->dirty_next;
        a->dirty = false;
        a->dirty_next = NULL;
    }
    for (log_write_t *w = s->log_writes, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    for (size_t i = 0; i < s->n_forgotten_agents; i++)
        free(s->forgotten_agents[i]);
    s->n_forgotten_agents = 0;
    for (size_t i = 0; i < s->n_cache_puts; i++) { /* stored: the keys are done */
        free(s->cache_puts[i]->cache_key);
        s->cache_puts[i]->cache_key = NULL;
    }
    s->n_cache_puts = 0;
    s->clear_cache = false;
    s->prune_cache = false;
    s->dirty_runs = NULL;
    s->dirty_tasks = NULL;
    s->dirty_agents = NULL;
    s->log_writes = NULL;
    s->log_writes_tail = &s->log_writes;
    s->counters_dirty = false;
}

static int commit(sched_t *s)
{
    /* Lazily marked tasks alone (sched_mark_task_lazy) wait for the next
     * commit that something else needs. */
    if (!s->must_commit && !s->dirty_runs && !s->dirty_agents && !s->log_writes &&
        !s->counters_dirty && !s->n_cache_puts && !s->clear_cache && !s->prune_cache &&
        !s->n_blob_ops && !s->deleting)
        return 0;
    int rc = store_begin(s->store);
    if (rc == 0)
        rc = write_dirty(s);
    if (rc == 0)
        rc = store_commit(s->store);
    else
        store_abort(s->store);
    if (rc < 0)
        return rc;
    clear_dirty(s);
    s->must_commit = false;
    blobs_after_commit(s);
    dag_free_deleted(s);
    return 0;
}

/* ------------------------------------------------------------ sending */

/* One message to an agent (API replies: replies.c). */
static void send_frames(zsock_t *sock, const void *id, size_t id_len, const uint8_t *data,
                        size_t len)
{
    zmsg_t *m = zmsg_new();
    zmsg_addmem(m, id, id_len);
    zmsg_addmem(m, data, len);
    if (zmsg_send(&m, sock) < 0) {
        /* Unreachable peer or full queue: the reliability layer re-sends. */
        log_debug("zmsg_send: %s", zmq_strerror(zmq_errno()));
        zmsg_destroy(&m);
    }
}

void agent_out_free(agent_out_t *o)
{
    /* Assignments point into runs; only their own arrays are ours. */
    for (size_t i = 0; i < o->n_assigns; i++) {
        Drover__Assignment *m = o->assigns[i];
        for (size_t j = 0; j < m->n_inputs; j++) {
            free(m->inputs[j]->local);
            free(m->inputs[j]); /* the artifact belongs to the upstream task */
        }
        free(m->inputs);
        for (size_t j = 0; j < m->n_argv; j++)
            free(m->argv[j]);
        free(m->argv);
        util_free_kvs(m->env, m->n_env);
        free(m->resume_from); /* its artifact belongs to the task */
        free(m);
    }
    free(o->assigns);
    free(o->kills);
    free(o->acks);
    for (size_t i = 0; i < o->n_wants; i++)
        drover__upload_want__free_unpacked(o->wants[i], NULL);
    free(o->wants);
    for (size_t i = 0; i < o->n_chunks; i++)
        drover__blob_chunk__free_unpacked(o->chunks[i], NULL);
    free(o->chunks);
    for (size_t i = 0; i < o->n_chunk_acks; i++)
        drover__chunk_ack__free_unpacked(o->chunk_acks[i], NULL);
    free(o->chunk_acks);
    for (size_t i = 0; i < o->n_done; i++)
        drover__blob_done__free_unpacked(o->done[i], NULL);
    free(o->done);
    if (o->preempt)
        drover__preempt_notice__free_unpacked(o->preempt, NULL);
    memset(o, 0, sizeof *o);
}

static void send_agent_batch(sched_t *s, agent_t *a)
{
    agent_out_t *o = &a->out;
    Drover__SchedulerMessage m = DROVER__SCHEDULER_MESSAGE__INIT;
    m.registered = o->registered;
    m.n_acks = o->n_acks;
    m.acks = o->acks;
    m.n_assigns = o->n_assigns;
    m.assigns = o->assigns;
    m.n_kills = o->n_kills;
    m.kills = o->kills;
    m.heartbeat_ack = o->heartbeat_ack;
    m.n_wants = o->n_wants;
    m.wants = o->wants;
    m.n_chunks = o->n_chunks;
    m.chunks = o->chunks;
    m.n_chunk_acks = o->n_chunk_acks;
    m.chunk_acks = o->chunk_acks;
    m.n_blob_done = o->n_done;
    m.blob_done = o->done;
    m.preempt = o->preempt;
    size_t n = drover__scheduler_message__get_packed_size(&m);
    uint8_t *buf = xmalloc(n);
    drover__scheduler_message__pack(&m, buf);
    if (a->conn) /* else it went away since: the reliability layer re-sends */
        send_frames(s->agents_sock, zframe_data(a->conn), zframe_size(a->conn), buf, n);
    free(buf);
    agent_out_free(o);
}

static void send_all(sched_t *s)
{
    for (agent_t *a = s->outbound, *n; a; a = n) {
        n = a->out_next;
        a->out_next = NULL;
        send_agent_batch(s, a);
    }
    s->outbound = NULL;
    for (size_t i = 0; i < s->n_peer_replies; i++) {
        peer_reply_t *p = &s->peer_replies[i];
        Drover__SchedulerMessage m = DROVER__SCHEDULER_MESSAGE__INIT;
        m.reregister = p->refused == NULL;
        m.refused = p->refused ? p->refused : (char *)"";
        uint8_t buf[512];
        if (drover__scheduler_message__get_packed_size(&m) <= sizeof buf)
            send_frames(s->agents_sock, zframe_data(p->conn), zframe_size(p->conn), buf,
                        drover__scheduler_message__pack(&m, buf));
        zframe_destroy(&p->conn);
        free(p->refused);
    }
    s->n_peer_replies = 0;
    replies_flush(s);
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
    int rc = commit(s);
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
    send_all(s);
}

/* ------------------------------------------------------------ receiving */

/* A message from an unknown key is refused without being decoded;
 * otherwise agents.c decides what it may do. */
static void receive_agent_message(sched_t *s, zframe_t *conn, zframe_t *body)
{
    const keys_entry_t *key;
    char why[256];
    if (auth_agent_key(s, body, &key, why, sizeof why) == 0) {
        agents_handle(s, conn, key, zframe_data(body), zframe_size(body));
        return;
    }
    /* Logged for the first hundred and then every thousandth. */
    if (s->counters.refused_agents < 100 || s->counters.refused_agents % 1000 == 0)
        log_warn("agents socket: message refused: %s", why);
    sched_queue_peer_reply(s, conn, why);
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
    agents_tick(s);
    replies_sweep(s);
    if (now - s->last_gc_ms > GC_INTERVAL_MS) {
        s->last_gc_ms = now;
        dag_retention(s, now);
        blobs_sweep(s);
        s->prune_cache = true; /* entries whose run was deleted, by now or before */
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
    s->log_writes_tail = &s->log_writes;
    replies_init(s);
    s->api_endpoint = cfg->api ? xstrdup(cfg->api) : xasprintf("ipc://%s/api.sock", cfg->state_dir);
    s->runs_by_id = zhashx_new();
    s->agents = zhashx_new();
    s->conns = zhashx_new();
    s->names = zhashx_new();
    zhashx_set_destructor(s->names, util_free_item);
    s->attempts = idmap_new();
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
    int rc = dag_load(s);
    if (rc < 0) {
        log_error("loading state from %s: %s", cfg->state_dir, strerror(-rc));
        goto fail;
    }
    if (auth_init(s, err, sizeof err) < 0) {
        log_error("%s", err);
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
        commit(s); /* nothing should be pending, but never drop a change */
    blobs_shutdown(s);
    zev_destroy(&s->agents_zev);
    zev_destroy(&s->api_zev);
    zsock_destroy(&s->agents_sock);
    zsock_destroy(&s->api_sock);
    auth_shutdown(s);
    for (agent_t *a = s->outbound; a; a = a->out_next)
        a->out.queued = false;
    replies_shutdown(s);
    for (size_t i = 0; i < s->n_peer_replies; i++) {
        zframe_destroy(&s->peer_replies[i].conn);
        free(s->peer_replies[i].refused);
    }
    free(s->peer_replies);
    clear_dirty(s);
    free(s->cache_puts);
    for (size_t i = 0; i < s->n_forgotten_agents; i++)
        free(s->forgotten_agents[i]);
    free(s->forgotten_agents);
    dag_free_deleted(s);
    dag_free_all(s);
    if (s->agents)
        agents_free_all(s);
    zhashx_destroy(&s->agents);
    zhashx_destroy(&s->conns);
    zhashx_destroy(&s->names);
    zhashx_destroy(&s->runs_by_id);
    idmap_destroy(&s->attempts);
    store_destroy(&s->store);
    free(s->api_endpoint);
    free(s);
    *sp = NULL;
}
