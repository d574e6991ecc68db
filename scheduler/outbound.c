/* outbound — agent batches and peer replies, sent after the commit: see
 * outbound.h.
 *
 * Adding to a batch is O(1) amortized (arrays that double); queuing a
 * batch is one pointer push, once per agent per iteration. The send phase
 * packs each batch once and frees it.
 */
#include "sched_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

agent_out_t *outbound_batch(outbound_t *o, agent_t *a)
{
    if (!a->out.queued) {
        a->out.queued = true;
        a->out_next = o->queue;
        o->queue = a;
    }
    return &a->out;
}

/* Append to a uint64 list whose capacity doubles at each power of two. */
static void push_u64(uint64_t **list, size_t *n, uint64_t v)
{
    if ((*n & (*n - 1)) == 0)
        *list = xrealloc(*list, (*n ? *n * 2 : 8) * sizeof **list);
    (*list)[(*n)++] = v;
}

/* No de-duplication: that would be quadratic in a hostile heartbeat. */
void outbound_kill(outbound_t *o, agent_t *a, uint64_t attempt_id)
{
    agent_out_t *out = outbound_batch(o, a);
    push_u64(&out->kills, &out->n_kills, attempt_id);
}

void outbound_ack(outbound_t *o, agent_t *a, uint64_t seq)
{
    agent_out_t *out = outbound_batch(o, a);
    push_u64(&out->acks, &out->n_acks, seq);
}

/* The batch's preemption notice, made with reason if it has none. */
static Drover__PreemptNotice *notice(outbound_t *o, agent_t *a, const char *reason)
{
    agent_out_t *out = outbound_batch(o, a);
    if (!out->preempt) {
        out->preempt = xmalloc(sizeof *out->preempt);
        drover__preempt_notice__init(out->preempt);
        out->preempt->reason = xstrdup(reason);
    }
    return out->preempt;
}

void outbound_drill(outbound_t *o, agent_t *a, uint64_t deadline_ms)
{
    Drover__PreemptNotice *n = notice(o, a, "drill (drover agent preempt)");
    n->terminate = true;
    n->withdraw = false;
    n->deadline_ms = util_now_ms() + (int64_t)deadline_ms;
}

void outbound_end_drill(outbound_t *o, agent_t *a)
{
    notice(o, a, "drover agent undrain")->withdraw = true;
}

void outbound_peer_reply(outbound_t *o, zframe_t *conn, const char *refused)
{
    if (o->n_peer_replies >= 4096)
        return; /* the peer asks again with its next message */
    o->peer_replies = xrealloc(o->peer_replies, (o->n_peer_replies + 1) * sizeof *o->peer_replies);
    o->peer_replies[o->n_peer_replies++] =
        (peer_reply_t){zframe_dup(conn), refused ? xstrdup(refused) : NULL};
}

void outbound_forget(outbound_t *o, agent_t *a)
{
    if (!a->out.queued)
        return;
    for (agent_t **p = &o->queue; *p; p = &(*p)->out_next)
        if (*p == a) {
            *p = a->out_next;
            break;
        }
    a->out.queued = false;
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

/* One message to a peer. */
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

static void send_agent_batch(zsock_t *sock, agent_t *a)
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
        send_frames(sock, zframe_data(a->conn), zframe_size(a->conn), buf, n);
    free(buf);
    agent_out_free(o);
}

static void free_peer_replies(outbound_t *o)
{
    for (size_t i = 0; i < o->n_peer_replies; i++) {
        zframe_destroy(&o->peer_replies[i].conn);
        free(o->peer_replies[i].refused);
    }
    o->n_peer_replies = 0;
}

void outbound_send(outbound_t *o, zsock_t *sock)
{
    for (agent_t *a = o->queue, *n; a; a = n) {
        n = a->out_next;
        a->out_next = NULL;
        send_agent_batch(sock, a);
    }
    o->queue = NULL;
    for (size_t i = 0; i < o->n_peer_replies; i++) {
        peer_reply_t *p = &o->peer_replies[i];
        Drover__SchedulerMessage m = DROVER__SCHEDULER_MESSAGE__INIT;
        m.reregister = p->refused == NULL;
        m.refused = p->refused ? p->refused : (char *)"";
        uint8_t buf[512];
        if (drover__scheduler_message__get_packed_size(&m) <= sizeof buf)
            send_frames(sock, zframe_data(p->conn), zframe_size(p->conn), buf,
                        drover__scheduler_message__pack(&m, buf));
    }
    free_peer_replies(o);
}

void outbound_free(outbound_t *o)
{
    for (agent_t *a = o->queue; a; a = a->out_next)
        a->out.queued = false;
    o->queue = NULL;
    free_peer_replies(o);
    free(o->peer_replies);
    o->peer_replies = NULL;
}
