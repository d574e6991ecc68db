/* replies — API replies on their way out, within a byte bound per peer.
 *
 * A client that sends requests and never reads the replies would make
 * droverd hold every reply: the API ROUTER's pipe to it is bounded in
 * messages (ZMQ_SNDHWM), not bytes, and one run view of a big run is
 * megabytes. So each reply body goes to ZMQ without a copy
 * (zmq_msg_init_data) with a free function, and ZMQ itself says when it
 * lets go of it: after the connection's engine has written it to the
 * kernel, or when the connection is gone. Per peer (routing id), `held` is
 * what ZMQ holds of its replies and `queued` what waits for this
 * iteration's commit, in bytes plus REPLY_OVERHEAD per reply for the
 * bookkeeping around it. `queued` is the loop's alone; `held` is added to
 * on the loop and subtracted from by the free function on whichever
 * thread drops the message (usually a ZMQ I/O thread) — hence atomics.
 *
 * Invariants:
 *  - a reply is queued only if its peer has nothing queued or held, or
 *    stays within --api-peer-queue with it: a peer's replies in droverd
 *    never exceed the bound, or one reply when a single one is larger;
 *  - a reply that would go over it, or finds the peer's pipe full (ZMQ_SNDHWM
 *    replies unread), drops the peer: that reply and every later one are
 *    discarded and its requests ignored (never decoded) until ZMQ has let go
 *    of everything it held for it (it read them or left); counted once per
 *    peer (`dropped_api_peers`) and logged;
 *  - an api_peer_t lives while the table or one of its replies (queued, or
 *    in ZMQ) refers to it (refs); only the loop adds references, so refs ==
 *    1 seen on the loop means no reply of the peer is left and its entry
 *    can go. The tick forgets such peers, and gives the freed memory back
 *    to the system (malloc_trim) after one that held a lot.
 *  - a held request (an EventsRequest waiting for events, events.c) counts
 *    REPLY_OVERHEAD in its peer's `queued` and holds a reference until it
 *    is answered; a peer holds at most HOLDS_PER_PEER, and none when that
 *    would take it over the bound (the request is then answered at once).
 * Not counted: the kernel's socket buffers (not droverd's memory) and, on
 * a CURVE socket, the encrypted copy of the one message a connection is
 * writing (ZMQ frees the plain one when it encrypts it).
 */
#include "sched_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "log.h"
#include "util.h"

#define REPLY_OVERHEAD 256        /* our api_reply_t, ZMQ's message content and pipe slot */
#define TRIM_AFTER     (1u << 20) /* give memory back after a peer that held this much */
#define HOLDS_PER_PEER 16         /* held requests of one peer (a REQ client has one) */

struct api_peer {
    atomic_size_t held; /* bytes ZMQ holds for this peer (with REPLY_OVERHEAD each) */
    atomic_uint refs;   /* the table's, plus one per reply queued or in ZMQ */
    size_t queued;      /* bytes of replies waiting for the commit (loop only) */
    size_t peak;        /* the most it had queued and held (loop only) */
    bool dropped;       /* over the bound: replies discarded, requests ignored (loop only) */
    unsigned holds;     /* requests held for it (replies_hold; loop only) */
};

static size_t cost(const api_reply_t *r)
{
    return r->len + REPLY_OVERHEAD;
}

static void peer_unref(api_peer_t *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1)
        free(p);
}

/* The table's destructor: drop the table's reference. */
static void peer_forget(void **item)
{
    if (*item)
        peer_unref(*item);
    *item = NULL;
}

/* ZMQ's free function for a reply body (any thread). */
static void reply_released(void *data, void *hint)
{
    api_reply_t *r = hint;
    atomic_fetch_sub(&r->peer->held, cost(r));
    peer_unref(r->peer);
    free(data);
    free(r);
}

/* Free a reply that was not handed to ZMQ (and its reference, if any). */
static void reply_discard(api_reply_t *r)
{
    if (r->peer) {
        r->peer->queued -= cost(r);
        peer_unref(r->peer);
    }
    zframe_destroy(&r->identity);
    free(r->data);
    free(r);
}

void replies_init(sched_t *s)
{
    s->replies.head = NULL;
    s->replies.tail = &s->replies.head;
    s->replies.peers = zhashx_new();
    zhashx_set_destructor(s->replies.peers, peer_forget);
}

static void drop(sched_t *s, api_peer_t *p, const char *key, size_t bytes)
{
    p->dropped = true;
    uint64_t n = ++s->counters.dropped_api_peers;
    if (n <= 100 || n % 1000 == 0)
        log_warn("api: peer %s dropped, not reading its replies (%zu bytes waiting; "
                 "--api-peer-queue %zu): its requests are ignored until it reads or leaves",
                 key, bytes, s->cfg.api_peer_queue);
}

/* The entry of the peer whose routing id is key, made when there is none. */
static api_peer_t *peer_get(sched_t *s, const char *key)
{
    api_peer_t *p = zhashx_lookup(s->replies.peers, key);
    if (!p) {
        p = xcalloc(1, sizeof *p);
        atomic_init(&p->held, 0);
        atomic_init(&p->refs, 1);
        zhashx_insert(s->replies.peers, key, p);
    }
    return p;
}

void sched_queue_reply(sched_t *s, zframe_t *identity, uint8_t *data, size_t len)
{
    api_reply_t *r = xcalloc(1, sizeof *r);
    r->identity = identity;
    r->data = data;
    r->len = len;
    char *key = zframe_strhex(identity);
    api_peer_t *p = peer_get(s, key);
    size_t before = atomic_load(&p->held) + p->queued;
    if (!p->dropped && before > 0 && before + cost(r) > s->cfg.api_peer_queue)
        drop(s, p, key, before + cost(r));
    free(key);
    if (p->dropped) {
        reply_discard(r);
        return;
    }
    r->peer = p;
    atomic_fetch_add(&p->refs, 1);
    p->queued += cost(r);
    if (before + cost(r) > p->peak)
        p->peak = before + cost(r);
    *s->replies.tail = r;
    s->replies.tail = &r->next;
}

/* Hand r to ZMQ: from here its body is ZMQ's, or released through
 * reply_released. */
static void send_reply(sched_t *s, api_reply_t *r)
{
    void *sock = zsock_resolve(s->api_sock);
    api_peer_t *p = r->peer;
    zmq_msg_t body;
    p->queued -= cost(r);
    atomic_fetch_add(&p->held, cost(r)); /* the reference goes with it */
    if (zmq_msg_init_data(&body, r->data, r->len, reply_released, r) < 0) {
        zframe_destroy(&r->identity);
        reply_released(r->data, r);
        return;
    }
    if (zmq_send(sock, zframe_data(r->identity), zframe_size(r->identity), ZMQ_SNDMORE) < 0) {
        int err = zmq_errno();
        char *key = zframe_strhex(r->identity);
        if (err == EAGAIN && !p->dropped) /* ZMQ_SNDHWM replies unread */
            drop(s, p, key, atomic_load(&p->held));
        else if (err != EAGAIN)
            log_debug("api reply to %s: %s", key, zmq_strerror(err)); /* gone */
        free(key);
        zframe_destroy(&r->identity);
        zmq_msg_close(&body);
        return;
    }
    zframe_destroy(&r->identity); /* before the body: r may be freed once it is sent */
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0 || zmq_msg_send(&body, sock, 0) < 0) {
        log_debug("api reply: %s", zmq_strerror(zmq_errno()));
        zmq_msg_close(&body);
    }
}

void replies_flush(sched_t *s)
{
    /* Replies queued before their peer was dropped go too: they were within
     * the bound, and ZMQ holding them keeps the peer known as dropped. */
    for (api_reply_t *r = s->replies.head, *n; r; r = n) {
        n = r->next;
        send_reply(s, r);
    }
    s->replies.head = NULL;
    s->replies.tail = &s->replies.head;
}

api_peer_t *replies_hold(sched_t *s, zframe_t *identity)
{
    char *key = zframe_strhex(identity);
    api_peer_t *p = peer_get(s, key);
    free(key);
    size_t before = atomic_load(&p->held) + p->queued;
    if (p->dropped || p->holds >= HOLDS_PER_PEER || before + REPLY_OVERHEAD > s->cfg.api_peer_queue)
        return NULL; /* the sweep forgets an entry made for nothing */
    p->holds++;
    p->queued += REPLY_OVERHEAD;
    atomic_fetch_add(&p->refs, 1);
    return p;
}

void replies_unhold(api_peer_t *p)
{
    p->holds--;
    p->queued -= REPLY_OVERHEAD;
    peer_unref(p);
}

bool replies_peer_dropped(sched_t *s, zframe_t *identity)
{
    if (zhashx_size(s->replies.peers) == 0)
        return false;
    char *key = zframe_strhex(identity);
    api_peer_t *p = zhashx_lookup(s->replies.peers, key);
    free(key);
    return p && p->dropped;
}

void replies_sweep(sched_t *s)
{
    char **gone = NULL;
    size_t n = 0;
    bool trim = false;
    for (api_peer_t *p = zhashx_first(s->replies.peers); p; p = zhashx_next(s->replies.peers)) {
        if (atomic_load(&p->refs) != 1)
            continue; /* replies of it are queued, or ZMQ holds them */
        trim |= p->dropped || p->peak >= TRIM_AFTER;
        gone = xrealloc(gone, (n + 1) * sizeof *gone);
        gone[n++] = xstrdup(zhashx_cursor(s->replies.peers));
    }
    for (size_t i = 0; i < n; i++) {
        zhashx_delete(s->replies.peers, gone[i]);
        free(gone[i]);
    }
    free(gone);
#ifdef __GLIBC__
    if (trim)
        malloc_trim(0); /* the replies it held were scattered over the heap */
#endif
}

void replies_shutdown(sched_t *s)
{
    for (api_reply_t *r = s->replies.head, *n; r; r = n) {
        n = r->next;
        reply_discard(r);
    }
    s->replies.head = NULL;
    s->replies.tail = &s->replies.head;
    zhashx_destroy(&s->replies.peers); /* peers ZMQ still holds replies for live on */
}
