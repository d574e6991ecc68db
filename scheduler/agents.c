/* agents — droverd's side of the agents protocol (docs/architecture.md,
 * "Agents protocol"). A handler: it decodes and checks each message and
 * calls the model (dag, placer) and the layers below it (fleet: the
 * agents table; outbound: what goes back; journal: what changed).
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
 * attempt: one that may have started is never sent again under its id)
 * unless it was assigned to the same agent process (Register.incarnation):
 * that one never arrived and is sent again under its id,
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

/* The task whose *current* attempt is attempt_id on agent a, or NULL. */
static task_t *current_task(sched_t *s, agent_t *a, uint64_t attempt_id)
{
    task_t *t = idmap_get(s->dag.attempts, attempt_id);
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
        if (a->noticed) {
            log_info("agent %s: preemption notice withdrawn", a->name);
            journal_mark_agent(&s->journal, a); /* an event (events.c) */
        }
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
    if (!a->noticed)
        journal_mark_agent(&s->journal, a); /* an event (events.c) */
    a->noticed = true;
    a->terminating = terminating;
    a->notice_deadline_ms = n->deadline_ms;
    free(a->notice_reason);
    a->notice_reason = xstrndup(n->reason ? n->reason : "", 255);
}

/* a is no longer in service: its attempts are lost, its transfers end. */
static void disconnect(sched_t *s, agent_t *a, const char *reason)
{
    a->connected = false;
    blobs_agent_gone(s, a);
    lose_all(s, a, reason);
    journal_mark_agent(&s->journal, a);
}

void agents_forget(sched_t *s, agent_t *a)
{
    fleet_unbind_conn(&s->fleet, a);
    blobs_agent_gone(s, a);
    outbound_forget(&s->out, a);
    journal_forget_agent(&s->journal, a);
    fleet_remove(&s->fleet, a);
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
        outbound_peer_reply(&s->out, conn, problem);
        if (bound && bound->connected) /* its own connection re-registered badly */
            disconnect(s, bound, "agent re-registered with an invalid registration");
        return;
    }
    agent_t *a = fleet_find(&s->fleet, reg->name);
    if (!a)
        a = fleet_add(&s->fleet, reg->name);
    fleet_bind_conn(&s->fleet, a, conn, key);
    agent_out_t *out = outbound_batch(&s->out, a);
    bool was_connected = a->connected;
    blobs_agent_gone(s, a); /* transfers restart after a registration */
    fleet_set_labels(a, reg->labels, reg->n_labels);
    a->capacity.cpu_milli = reg->capacity->cpu_milli;
    a->capacity.memory_bytes = reg->capacity->memory_bytes;
    a->capacity.gpus = reg->capacity->gpus;
    free(a->runtime);
    a->runtime = xstrndup(reg->runtime && *reg->runtime ? reg->runtime : "process", 32);
    a->images = reg->images;
    a->spot = reg->spot;
    a->price = reg->price;
    /* bounded: an incarnation is 32 hex digits; anything else is none */
    a->incarnation = journal_intern(
        &s->journal, reg->incarnation && strlen(reg->incarnation) <= 64 ? reg->incarnation : "");
    set_notice(s, a, reg->preempt);
    a->connected = true;
    a->last_seen_mono = util_mono_ms();
    a->last_seen_ms = util_now_ms();
    journal_mark_agent(&s->journal, a);
    out->registered = true;

    /* droverd's view → agent: what the agent no longer has. Walk backwards:
     * losing a task swap-removes it from a->tasks. */
    idmap_t *held_ids = idmap_new();
    for (size_t j = 0; j < reg->n_attempts; j++)
        if (reg->attempts[j])
            idmap_put(held_ids, reg->attempts[j], held_ids);
    for (size_t i = a->n_tasks; i-- > 0;) {
        task_t *t = a->tasks[i];
        Drover__AttemptRecord *at = dag_current_attempt(t);
        if (idmap_get(held_ids, at->id))
            fleet_acked(t);
        else if (t->status == DROVER__TASK_STATUS__TASK_ASSIGNED && *a->incarnation &&
                 at->agent_incarnation == a->incarnation)
            /* Assigned to this very agent process, which neither runs it
             * nor has a report of it: it never arrived (droverd died
             * between its commit and its send, or the connection dropped
             * it). Nothing can have started: send it again, same id. */
            placer_send_assignment(s, t);
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
            outbound_kill(&s->out, a, reg->attempts[j]);
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
        journal_mark_task(&s->journal, t);
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
    journal_log(&s->journal, w);
    if (rep->offset + len > at->log_bytes) {
        at->log_bytes = rep->offset + len;
        journal_mark_task(&s->journal, t);
    }
}

static void handle_report(sched_t *s, agent_t *a, const Drover__Report *rep)
{
    task_t *t = current_task(s, a, rep->attempt_id);
    outbound_ack(&s->out, a, rep->seq);
    if (!t) {
        /* Fencing: an attempt that is no longer current must not run. */
        if (rep->kind != DROVER__REPORT_KIND__REPORT_EXITED)
            outbound_kill(&s->out, a, rep->attempt_id);
        return;
    }
    switch (rep->kind) {
    case DROVER__REPORT_KIND__REPORT_STARTED:
        fleet_acked(t);
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
    agent_t *a = fleet_by_conn(&s->fleet, conn);
    if (msg->register_) {
        handle_register(s, a, conn, key, msg->register_);
        goto cleanup;
    }
    if (!a || !a->connected) {
        /* Unknown in this session (droverd restarted, the agent was
         * declared lost, or this is a stale connection): it must register
         * before anything else counts. */
        outbound_peer_reply(&s->out, conn, NULL);
        goto cleanup;
    }
    a->last_seen_mono = util_mono_ms();
    a->last_seen_ms = util_now_ms();
    if (msg->heartbeat) {
        const Drover__Heartbeat *hb = msg->heartbeat;
        outbound_batch(&s->out, a)->heartbeat_ack = true;
        set_notice(s, a, hb->preempt);
        for (size_t i = 0; i < hb->n_running; i++) {
            task_t *t = current_task(s, a, hb->running[i]);
            if (!t)
                outbound_kill(&s->out, a, hb->running[i]);
            else if (i < hb->n_progress && hb->progress[i] >= 0 && hb->progress[i] <= 1)
                t->progress = hb->progress[i];
        }
    }
    for (size_t i = 0; i < msg->n_reports; i++)
        handle_report(s, a, msg->reports[i]);
    for (size_t i = 0; i < msg->n_assign_acks; i++) {
        task_t *t = current_task(s, a, msg->assign_acks[i]);
        if (t)
            fleet_acked(t);
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
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
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
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (!a->conn || !a->key[0])
            continue;
        const keys_entry_t *k = zhashx_lookup(s->auth.agent_keys, a->key);
        if (k && strcmp(k->name, a->name) == 0)
            continue;
        log_warn("agent %s: its key %s was revoked: lost now, %zu attempts rescheduled", a->name,
                 a->key, a->n_tasks);
        s->counters.revoked_agents++;
        fleet_unbind_conn(&s->fleet, a);
        if (a->connected || a->n_tasks)
            disconnect(s, a, "agent's key was revoked");
    }
}
