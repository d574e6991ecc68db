/* outbound — what droverd sends to agents after the next commit (included
 * by sched_internal.h, after the model's types; include that instead).
 *
 * Each agent has one batch (agent_t.out: assignments, kills, report acks,
 * transfer messages, a preemption drill, "registered", a heartbeat ack);
 * a batch is queued here the first time something is added to it in a
 * loop iteration, and the send phase packs each queued batch into ONE
 * SchedulerMessage. Replies to connections bound to no agent ("register
 * first", or a refusal) wait here too. Nothing is sent before the commit
 * that made it true: only the loop calls outbound_send, after commit.
 * API replies have their own module (replies.c).
 */
#ifndef DROVER_OUTBOUND_H
#define DROVER_OUTBOUND_H

#include <czmq.h>
#include <stdint.h>

#include "util.h"

/* A reply to a connection no agent is bound to: "register first", or a
 * refusal saying why. */
typedef struct {
    zframe_t *conn;
    char *refused; /* NULL = reregister */
} peer_reply_t;

typedef struct {
    agent_t *queue; /* agents with a batch to send (through agent_t.out_next) */
    peer_reply_t *peer_replies;
    size_t n_peer_replies;
} outbound_t;

/* a's batch, queued for sending after the next commit. */
agent_out_t *outbound_batch(outbound_t *o, agent_t *a);
/* Tell a to kill an attempt. A duplicate is harmless (the agent ignores
 * unknown attempts), so no de-duplication. */
void outbound_kill(outbound_t *o, agent_t *a, uint64_t attempt_id);
/* Acknowledge a report by its sequence number. */
void outbound_ack(outbound_t *o, agent_t *a, uint64_t seq);
/* Deliver a preemption drill (drover agent preempt), or end one (drover
 * agent undrain: it takes work again once its next heartbeat carries no
 * notice; a cloud's notice stays). */
void outbound_drill(outbound_t *o, agent_t *a, uint64_t deadline_ms);
void outbound_end_drill(outbound_t *o, agent_t *a);
/* Answer a connection that is bound to no agent: with "register first"
 * (refused NULL) or a refusal (copied). conn is copied. At most 4,096
 * wait (the peer asks again). */
void outbound_peer_reply(outbound_t *o, zframe_t *conn, const char *refused);
/* a leaves (forgotten): its queued batch is dropped from the queue (the
 * caller frees the agent and its batch). */
void outbound_forget(outbound_t *o, agent_t *a);
/* The send phase: each queued batch as one message on sock to its
 * agent's connection (a batch of an agent with none is dropped: the
 * reliability layer re-sends), then the peer replies. Everything sent is
 * freed. */
void outbound_send(outbound_t *o, zsock_t *sock);
/* Shutdown: drop everything queued (the agents free their own batches). */
void outbound_free(outbound_t *o);
/* Free everything a batch holds and reset it. */
void agent_out_free(agent_out_t *out);

/* Add an assignment to a's batch (takes m; its strings and artifacts
 * point into the run and task, see agent_out_free). Inline: once per
 * placed task. */
static inline void outbound_assign(outbound_t *o, agent_t *a, Drover__Assignment *m)
{
    agent_out_t *out = outbound_batch(o, a);
    out->assigns = xrealloc(out->assigns, (out->n_assigns + 1) * sizeof *out->assigns);
    out->assigns[out->n_assigns++] = m;
}

#endif
