/* agents — droverd's side of the agents protocol (docs/architecture.md,
 * "Agents protocol").
 *
 * Identity: a connection's routing id is droverd's own (agents set none),
 * so no peer can choose, claim or displace another's. A Register binds its
 * connection to the agent it names — with CURVE only if the sender's key is
 * authorized for that name — and every other message counts only on the
 * connection bound to an agent, from that agent's key. A newer accepted
 * Register (the agent restarted or reconnected) moves the binding; a
 * refused one never touches it. A revoked key loses its agent at once.
 *
 * An agent registers with its labels, capacity and the attempts it holds;
 * droverd reconciles both ways: an attempt droverd thinks is RUNNING or
 * ASSIGNED there but the agent does not hold is LOST (rerun as a new
 * attempt: one that may have started is never sent again under its id),
 * and one the agent runs that is not current is killed (fencing). Every report carries a sequence
 * number and is acknowledged only after the transition it causes is committed; reports are applied
 * idempotently by attempt id, so re-sent ones are harmless. A message from an agent not registered
 * in this droverd session (e.g. after a restart) is answered with "reregister" and otherwise
 * ignored.
 *
 * Spot nodes: registration and every heartbeat carry the node's
 * preemption notice while it has one. A terminating node takes no new
 * work (placer.c); its tasks are requeued when the agent reports them
 * PREEMPTED (with their final checkpoints), or LOST if it vanishes first.
 */
#include "sched_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define AGENT_NAME_MAX 63
#define CONN_HEX_MAX   (2 * 255 + 1)

agent_t *agents_find(sched_t *s, const char *name)
{
    return zhashx_lookup(s->agents, name);
}

static agent_t *agent_new(sched_t *s, const char *name)
{
    agent_t *a = xcalloc(1, sizeof *a);
    a->name = xstrdup(name);
    drover__resources__init(&a->capacity);
    drover__resources__init(&a->used);
    a->last_seen_mono = util_mono_ms();
    zhashx_insert(s->agents, a->name, a);
    return a;
}

static void set_labels(agent_t *a, Drover__KeyValue **labels, size_t n)
{
    util_free_kvs(a->labels, a->n_labels);
    a->labels = xcalloc(n, sizeof *a->labels);
    for (size_t i = 0; i < n; i++)
        a->labels[i] = util_kv_new(labels[i]->key, labels[i]->value);
    a->n_labels = n;
}

void agents_load(sched_t *s, const Drover__AgentRecord *rec)
{
    agent_t *a = agent_new(s, rec->name);
    set_labels(a, rec->labels, rec->n_labels);
    if (rec->capacity) {
        a->capacity.cpu_milli = rec->capacity->cpu_milli;
        a->capacity.memory_bytes = rec->capacity->memory_bytes;
        a->capacity.gpus = rec->capacity->gpus;
    }
    a->drained = rec->drained;
    a->last_seen_ms = rec->last_seen_ms;
    a->runtime = xstrdup(rec->runtime);
    a->images = rec->images;
    a->spot = rec->spot;
    a->price = rec->price;
}

void agents_record(const agent_t *a, Drover__AgentRecord *rec)
{
    drover__agent_record__init(rec);
    rec->name = a->name;
    rec->n_labels = a->n_labels;
    rec->labels = a->labels;
    rec->capacity = (Drover__Resources *)&a->capacity;
    rec->drained = a->drained;
    rec->last_seen_ms = a->last_seen_ms;
    rec->runtime = a->runtime ? a->runtime : (char *)"";
    rec->images = a->images;
    rec->spot = a->spot;
    rec->price = a->price;
}

static void agent_free(agent_t *a)
{
    agent_out_free(&a->out);
    zframe_destroy(&a->conn);
    free(a->conn_hex);
    util_free_kvs(a->labels, a->n_labels);
    free(a->runtime);
    free(a->notice_reason);
    free(a->tasks);
    free(a->name);
    free(a);
}

void agents_free_all(sched_t *s)
{
    for (agent_t *a = zhashx_first(s->agents); a; a = zhashx_next(s->agents))
        agent_free(a);
    zhashx_purge(s->agents);
}

/* Remove a from a singly linked list through the next field at offset. */
static void unlink_agent(agent_t **head, agent_t *a, bool dirty_list)
{
    for (agent_t **p = head; *p; p = dirty_list ? &(*p)->dirty_next : &(*p)->out_next)
        if (*p == a) {
            *p = dirty_list ? a->dirty_next : a->out_next;
            return;
        }
}

/* Append to a uint64 list whose capacity doubles at each power of two. */
static void push_u64(uint64_t **list, size_t *n, uint64_t v)
{
    if ((*n & (*n - 1)) == 0)
        *list = xrealloc(*list, (*n ? *n * 2 : 8) * sizeof **list);
    (*list)[(*n)++] = v;
}

/* A duplicate kill is harmless (the agent ignores unknown attempts), so
 * no de-duplication: that would be quadratic in a hostile heartbeat. */
void agents_queue_kill(sched_t *s, agent_t *a, uint64_t attempt_id)
{
    agent_out_t *out = sched_agent_out(s, a);
    push_u64(&out->kills, &out->n_kills, attempt_id);
}

static void queue_ack(sched_t *s, agent_t *a, uint64_t seq)
{
    agent_out_t *out = sched_agent_out(s, a);
    push_u64(&out->acks, &out->n_acks, seq);
}

/* The task whose *current* attempt is attempt_id on agent a, or NULL. */
static task_t *current_task(sched_t *s, agent_t *a, uint64_t attempt_id)
{
    task_t *t = idmap_get(s->attempts, attempt_id);
    if (!t || t->agent != a)
        return NULL;
    Drover__AttemptRecord *at = dag_current_attempt(t);
    return at && at->id == attempt_id ? t : NULL;
}

/* Lose every attempt bound to a (it stopped answering or restarted). */
static void lose_all(sched_t *s, agent_t *a, const char *reason)
{
    while (a->n_tasks)
        dag_task_lost(s, a->tasks[a->n_tasks - 1], reason);
}

/* Why a registration is unacceptable, or NULL. */
static const char *register_problem(const sched_t *s, const Drover__Register *reg)
{
    if (!reg->name || !util_valid_name(reg->name, strlen(reg->name), AGENT_NAME_MAX, NULL))
        return "bad agent name: 1-63 characters of [A-Za-z0-9_.-]";
    if (reg->n_labels > s->cfg.spec_limits.max_labels + 2) /* + spot= and gpu.model= */
        return "too many labels (more than droverd's --max-labels)";
    for (size_t i = 0; i < reg->n_labels; i++) {
        const Drover__KeyValue *kv = reg->labels[i];
        if (!util_valid_name(kv->key, strlen(kv->key), 63, "/") || strlen(kv->value) > 255)
            return "bad label: keys are 1-63 characters of [A-Za-z0-9_.-/], values at most 255";
    }
    if (!reg->capacity)
        return "no capacity given";
    if (!(reg->price >= 0 && reg->price < 1e6)) /* NaN fails too */
        return "price per hour out of range (0 to 1e6)";
    return NULL;
}

/* The agent's preemption notice (NULL = none): logged when it changes. */
static void set_notice(sched_t *s, agent_t *a, const Drover__PreemptNotice *n)
{
    bool terminating = n && n->terminate;
    if (!n) {
        if (a->noticed)
            log_info("agent %s: preemption notice withdrawn", a->name);
        a->noticed = a->terminating = false;
        return;
    }
    if (!a->noticed || terminating != a->terminating || n->deadline_ms != a->notice_deadline_ms) {
        char when[48] = "no deadline";
        if (n->deadline_ms)
            snprintf(when, sizeof when, "deadline in %.1fs",
                     (double)(n->deadline_ms - util_now_ms()) / 1000.0);
        log_warn("agent %s: %s (%s): %s", a->name,
                 terminating ? "preempting: no new work; its tasks resume elsewhere"
                             : "at risk: placed last",
                 when, n->reason ? n->reason : "");
    }
    a->noticed = true;
    a->terminating = terminating;
    a->notice_deadline_ms = n->deadline_ms;
    free(a->notice_reason);
    a->notice_reason = xstrndup(n->reason ? n->reason : "", 255);
}

void agents_send_preempt(sched_t *s, agent_t *a, uint64_t deadline_ms)
{
    agent_out_t *out = sched_agent_out(s, a);
    if (!out->preempt) {
        out->preempt = xmalloc(sizeof *out->preempt);
        drover__preempt_notice__init(out->preempt);
        out->preempt->reason = xstrdup("drill (drover agent preempt)");
    }
    out->preempt->terminate = true;
    out->preempt->withdraw = false;
    out->preempt->deadline_ms = util_now_ms() + (int64_t)deadline_ms;
}

void agents_end_drill(sched_t *s, agent_t *a)
{
    agent_out_t *out = sched_agent_out(s, a);
    if (!out->preempt) {
        out->preempt = xmalloc(sizeof *out->preempt);
        drover__preempt_notice__init(out->preempt);
        out->preempt->reason = xstrdup("drover agent undrain");
    }
    out->preempt->withdraw = true;
}

/* Hex of a routing id (at most 255 bytes): the key of s->conns (ids are
 * binary). Returns hex. */
static char *conn_hex(zframe_t *conn, char hex[CONN_HEX_MAX])
{
    static const char digits[] = "0123456789abcdef";
    size_t n = zframe_size(conn) < 255 ? zframe_size(conn) : 255;
    const uint8_t *d = zframe_data(conn);
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
    return hex;
}

static void unbind_conn(sched_t *s, agent_t *a)
{
    if (a->conn_hex)
        zhashx_delete(s->conns, a->conn_hex);
    zframe_destroy(&a->conn);
    free(a->conn_hex);
    a->conn_hex = NULL;
}

/* a is no longer in service: its attempts are lost, its transfers end. */
static void disconnect(sched_t *s, agent_t *a, const char *reason)
{
    a->connected = false;
    blobs_agent_gone(s, a);
    lose_all(s, a, reason);
    sched_mark_agent(s, a);
}

/* From now on, a speaks on conn (with key, under CURVE). */
static void bind_conn(sched_t *s, agent_t *a, zframe_t *conn, const keys_entry_t *key)
{
    char hex[CONN_HEX_MAX];
    if (a->conn_hex && strcmp(a->conn_hex, conn_hex(conn, hex)) == 0)
        return;
    if (a->conn)
        log_info("agent %s: a new connection registered (the agent restarted or reconnected)",
                 a->name);
    unbind_conn(s, a);
    a->conn = zframe_dup(conn);
    a->conn_hex = xstrdup(conn_hex(conn, hex));
    zhashx_insert(s->conns, a->conn_hex, a);
    snprintf(a->key, sizeof a->key, "%s", key ? key->key : "");
}

void agents_forget(sched_t *s, agent_t *a)
{
    unbind_conn(s, a);
    blobs_agent_gone(s, a);
    if (a->dirty)
        unlink_agent(&s->dirty_agents, a, true);
    if (a->out.queued)
        unlink_agent(&s->outbound, a, false);
    zhashx_delete(s->agents, a->name);
    s->forgotten_agents =
        xrealloc(s->forgotten_agents, (s->n_forgotten_agents + 1) * sizeof *s->forgotten_agents);
    s->forgotten_agents[s->n_forgotten_agents++] = a->name;
    a->name = NULL;
    s->must_commit = true;
    agent_free(a);
}

static void handle_register(sched_t *s, agent_t *bound, zframe_t *conn, const keys_entry_t *key,
                            const Drover__Register *reg)
{
    char why[256];
    const char *problem = register_problem(s, reg);
    if (!problem && key && strcmp(key->name, reg->name) != 0) {
        snprintf(why, sizeof why, "key %s belongs to agent '%s', not '%s'", key->key, key->name,
                 reg->name);
        problem = why;
    }
    if (!problem && bound && strcmp(bound->name, reg->name) != 0) {
        snprintf(why, sizeof why, "this connection is agent '%s'; it cannot register as '%s'",
                 bound->name, reg->name);
        problem = why;
    }
    if (problem) {
        s->counters.refused_agents++;
        if (s->counters.refused_agents < 100 || s->counters.refused_agents % 1000 == 0)
            log_warn("agent '%.63s': registration refused: %s", reg->name ? reg->name : "",
                     problem);
        sched_queue_peer_reply(s, conn, problem);
        if (bound && bound->connected) /* its own connection re-registered badly */
            disconnect(s, bound, "agent re-registered with an invalid registration");
        return;
    }
    agent_t *a = agents_find(s, reg->name);
    if (!a)
        a = agent_new(s, reg->name);
    bind_conn(s, a, conn, key);
    agent_out_t *out = sched_agent_out(s, a);
    bool was_connected = a->connected;
    blobs_agent_gone(s, a); /* transfers restart after a registration */
    set_labels(a, reg->labels, reg->n_labels);
    a->capacity.cpu_milli = reg->capacity->cpu_milli;
    a->capacity.memory_bytes = reg->capacity->memory_bytes;
    a->capacity.gpus = reg->capacity->gpus;
    free(a->runtime);
    a->runtime = xstrndup(reg->runtime && *reg->runtime ? reg->runtime : "process", 32);
    a->images = reg->images;
    a->spot = reg->spot;
    a->price = reg->price;
    set_notice(s, a, reg->preempt);
    a->connected = true;
    a->last_seen_mono = util_mono_ms();
    a->last_seen_ms = util_now_ms();
    sched_mark_agent(s, a);
    out->registered = true;

    /* droverd's view → agent: what the agent no longer has. Walk backwards:
     * losing a task swap-removes it from a->tasks. */
    idmap_t *held_ids = idmap_new();
    for (size_t j = 0; j < reg->n_attempts; j++)
        if (reg->attempts[j])
            idmap_put(held_ids, reg->attempts[j], held_ids);
    for (size_t i = a->n_tasks; i-- > 0;) {
        task_t *t = a->tasks[i];
        if (idmap_get(held_ids, dag_current_attempt(t)->id))
            placer_acked(t);
        else if (t->status == DROVER__TASK_STATUS__TASK_ASSIGNED)
            /* Fencing: it may have started there before the agent (or
             * droverd, whose RUNNING write is lazy) restarted, in that
             * attempt's directory. Never re-send that id: rerun it as a
             * new attempt, so each start is in the history. */
            dag_task_lost(s, t,
                          "agent registered without the assigned attempt (it may have "
                          "started there before a restart)");
        else
            dag_task_lost(s, t, "agent restarted and no longer has the attempt");
    }
    idmap_destroy(&held_ids);
    /* agent → droverd's view: what the agent holds that is not current. */
    for (size_t j = 0; j < reg->n_attempts; j++)
        if (!current_task(s, a, reg->attempts[j]))
            agents_queue_kill(s, a, reg->attempts[j]);
    log_info("agent %s %sregistered: cpu %.1f, memory %" PRIu64 " MiB, gpus %u, %zu labels, "
             "%zu attempts held",
             a->name, was_connected ? "re" : "", a->capacity.cpu_milli / 1000.0,
             a->capacity.memory_bytes >> 20, a->capacity.gpus, a->n_labels, reg->n_attempts);
}

static void store_log(sched_t *s, task_t *t, Drover__AttemptRecord *at, const Drover__Report *rep)
{
    uint64_t limit = s->cfg.log_limit;
    size_t len = rep->data.len;
    if (rep->offset >= limit) {
        len = 0;
    } else if (rep->offset + len > limit) {
        len = (size_t)(limit - rep->offset);
    }
    if (len < rep->data.len && !at->log_truncated) {
        at->log_truncated = true;
        s->counters.truncated_logs++;
        sched_mark_task(s, t);
    }
    if (len == 0)
        return;
    log_write_t *w = xmalloc(sizeof *w + len);
    w->run_id = t->run->rec->id;
    w->task = t->index;
    w->attempt = at->number;
    w->offset = rep->offset;
    w->len = len;
    w->next = NULL;
    memcpy(w->data, rep->data.data, len);
    *s->log_writes_tail = w;
    s->log_writes_tail = &w->next;
    if (rep->offset + len > at->log_bytes) {
        at->log_bytes = rep->offset + len;
        sched_mark_task(s, t);
    }
}

static void handle_report(sched_t *s, agent_t *a, const Drover__Report *rep)
{
    task_t *t = current_task(s, a, rep->attempt_id);
    queue_ack(s, a, rep->seq);
    if (!t) {
        /* Fencing: an attempt that is no longer current must not run. */
        if (rep->kind != DROVER__REPORT_KIND__REPORT_EXITED)
            agents_queue_kill(s, a, rep->attempt_id);
        return;
    }
    switch (rep->kind) {
    case DROVER__REPORT_KIND__REPORT_STARTED:
        placer_acked(t);
        dag_task_started(s, t, rep->time_ms);
        break;
    case DROVER__REPORT_KIND__REPORT_LOG:
        store_log(s, t, dag_current_attempt(t), rep);
        break;
    case DROVER__REPORT_KIND__REPORT_EXITED:
        dag_task_exited(s, t, rep);
        break;
    case DROVER__REPORT_KIND__REPORT_CHECKPOINT:
        dag_task_checkpoint(s, t, rep->checkpoint);
        break;
    default:
        log_warn("agent %s: report of unknown kind %d ignored", a->name, rep->kind);
    }
}

void agents_handle(sched_t *s, zframe_t *conn, const keys_entry_t *key, const uint8_t *data,
                   size_t len)
{
    if (zframe_size(conn) == 0) {
        log_warn("agents socket: message without a routing id dropped");
        return;
    }
    Drover__AgentMessage *msg = drover__agent_message__unpack(NULL, len, data);
    if (!msg) {
        s->counters.bad_messages++;
        log_warn("agents socket: undecodable message of %zu bytes dropped", len);
        return;
    }
    char hex[CONN_HEX_MAX];
    agent_t *a = zhashx_lookup(s->conns, conn_hex(conn, hex));
    if (msg->register_) {
        handle_register(s, a, conn, key, msg->register_);
        goto cleanup;
    }
    if (!a || !a->connected) {
        /* Unknown in this session (droverd restarted, the agent was
         * declared lost, or this is a stale connection): it must register
         * before anything else counts. */
        sched_queue_peer_reply(s, conn, NULL);
        goto cleanup;
    }
    a->last_seen_mono = util_mono_ms();
    a->last_seen_ms = util_now_ms();
    if (msg->heartbeat) {
        const Drover__Heartbeat *hb = msg->heartbeat;
        sched_agent_out(s, a)->heartbeat_ack = true;
        set_notice(s, a, hb->preempt);
        for (size_t i = 0; i < hb->n_running; i++) {
            task_t *t = current_task(s, a, hb->running[i]);
            if (!t)
                agents_queue_kill(s, a, hb->running[i]);
            else if (i < hb->n_progress && hb->progress[i] >= 0 && hb->progress[i] <= 1)
                t->progress = hb->progress[i];
        }
    }
    for (size_t i = 0; i < msg->n_reports; i++)
        handle_report(s, a, msg->reports[i]);
    for (size_t i = 0; i < msg->n_assign_acks; i++) {
        task_t *t = current_task(s, a, msg->assign_acks[i]);
        if (t)
            placer_acked(t);
    }
    for (size_t i = 0; i < msg->n_offers; i++)
        blobs_offer(s, a, msg->offers[i]);
    for (size_t i = 0; i < msg->n_chunks; i++)
        blobs_chunk_in(s, a, msg->chunks[i]);
    for (size_t i = 0; i < msg->n_chunk_acks; i++)
        blobs_chunk_ack(s, a, msg->chunk_acks[i]);
    for (size_t i = 0; i < msg->n_fetches; i++)
        blobs_fetch(s, a, msg->fetches[i]);
cleanup:
    drover__agent_message__free_unpacked(msg, NULL);
}

void agents_tick(sched_t *s)
{
    int64_t now = util_mono_ms();
    for (agent_t *a = zhashx_first(s->agents); a; a = zhashx_next(s->agents)) {
        if ((a->connected || a->n_tasks) &&
            now - a->last_seen_mono > (int64_t)s->cfg.agent_timeout_ms) {
            log_warn("agent %s lost: no heartbeat for %" PRId64 " ms; %zu attempts lost", a->name,
                     now - a->last_seen_mono, a->n_tasks);
            disconnect(s, a, "agent stopped answering");
            continue;
        }
        if (!a->connected || a->unacked == 0)
            continue; /* nothing on the way to it */
        for (size_t i = 0; i < a->n_tasks; i++) {
            task_t *t = a->tasks[i];
            /* Lost on the way (a reconnect, a full queue): sent again, each
             * time after twice as long, so a slow agent is not flooded. */
            int64_t wait = (int64_t)s->cfg.assign_resend_ms << (t->resends < 5 ? t->resends : 5);
            if (t->status == DROVER__TASK_STATUS__TASK_ASSIGNED && !t->assign_acked &&
                now - t->assign_sent_mono > wait) {
                t->resends += t->resends < 255;
                placer_send_assignment(s, t);
            }
        }
    }
}

void agents_keys_changed(sched_t *s)
{
    for (agent_t *a = zhashx_first(s->agents); a; a = zhashx_next(s->agents)) {
        if (!a->conn || !a->key[0])
            continue;
        const keys_entry_t *k = zhashx_lookup(s->agent_keys, a->key);
        if (k && strcmp(k->name, a->name) == 0)
            continue;
        log_warn("agent %s: its key %s was revoked: lost now, %zu attempts rescheduled", a->name,
                 a->key, a->n_tasks);
        s->counters.revoked_agents++;
        unbind_conn(s, a);
        if (a->connected || a->n_tasks)
            disconnect(s, a, "agent's key was revoked");
    }
}
