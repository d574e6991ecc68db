/* outbox — see outbox.h. A doubly linked list in seq order plus an idmap
 * from seq to node; EXITED reports are also indexed by attempt id. */
#include "outbox.h"

#include <stdlib.h>

#include "idmap.h"
#include "util.h"

typedef struct node node_t;
struct node {
    Drover__Report *rep;
    int64_t sent_at; /* 0 = never sent */
    unsigned sends;  /* since it was queued or marked unsent: the back-off */
    node_t *prev, *next;
};

struct outbox {
    node_t *head, *tail;
    idmap_t *by_seq;
    idmap_t *exits; /* attempt id → node of its EXITED report */
    uint64_t next_seq;
    size_t count, bytes;
};

outbox_t *outbox_new(void)
{
    outbox_t *ob = calloc(1, sizeof *ob);
    if (!ob)
        return NULL;
    ob->by_seq = idmap_new();
    ob->exits = idmap_new();
    if (!ob->by_seq || !ob->exits) {
        outbox_destroy(&ob);
        return NULL;
    }
    return ob;
}

void outbox_report_free(Drover__Report *rep)
{
    if (rep)
        drover__report__free_unpacked(rep, NULL);
}

void outbox_destroy(outbox_t **obp)
{
    if (!obp || !*obp)
        return;
    outbox_t *ob = *obp;
    for (node_t *n = ob->head, *next; n; n = next) {
        next = n->next;
        outbox_report_free(n->rep);
        free(n);
    }
    idmap_destroy(&ob->by_seq);
    idmap_destroy(&ob->exits);
    free(ob);
    *obp = NULL;
}

uint64_t outbox_add(outbox_t *ob, Drover__Report *rep)
{
    node_t *n = xcalloc(1, sizeof *n);
    rep->seq = ++ob->next_seq;
    n->rep = rep;
    n->prev = ob->tail;
    if (ob->tail)
        ob->tail->next = n;
    else
        ob->head = n;
    ob->tail = n;
    idmap_put(ob->by_seq, rep->seq, n);
    if (rep->kind == DROVER__REPORT_KIND__REPORT_EXITED)
        idmap_put(ob->exits, rep->attempt_id, n);
    ob->count++;
    ob->bytes += rep->data.len;
    return rep->seq;
}

uint64_t outbox_ack(outbox_t *ob, uint64_t seq)
{
    node_t *n = idmap_del(ob->by_seq, seq);
    if (!n)
        return 0;
    if (n->prev)
        n->prev->next = n->next;
    else
        ob->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        ob->tail = n->prev;
    uint64_t exited = n->rep->kind == DROVER__REPORT_KIND__REPORT_EXITED ? n->rep->attempt_id : 0;
    if (exited && idmap_get(ob->exits, exited) == n)
        idmap_del(ob->exits, exited);
    ob->count--;
    ob->bytes -= n->rep->data.len;
    outbox_report_free(n->rep);
    free(n);
    return exited;
}

size_t outbox_collect(outbox_t *ob, int64_t now, int64_t resend_ms, bool all, Drover__Report **out,
                      size_t max, size_t max_bytes, bool *more)
{
    size_t k = 0, bytes = 0;
    *more = false;
    for (node_t *n = ob->head; n; n = n->next) {
        /* Each re-send waits twice as long as the one before (up to 16x):
         * a droverd that is only slow is not sent every report again. */
        int64_t wait = n->sends ? resend_ms << (n->sends - 1 < 4 ? n->sends - 1 : 4) : 0;
        if (!all && n->sent_at && now - n->sent_at < wait)
            continue;
        if (k == max || (k > 0 && bytes + n->rep->data.len > max_bytes)) {
            *more = true;
            break;
        }
        bytes += n->rep->data.len;
        n->sent_at = now ? now : 1;
        n->sends = all ? 1 : n->sends + 1;
        out[k++] = n->rep;
    }
    return k;
}

void outbox_mark_unsent(outbox_t *ob)
{
    for (node_t *n = ob->head; n; n = n->next) {
        n->sent_at = 0;
        n->sends = 0;
    }
}

bool outbox_has_exit(const outbox_t *ob, uint64_t attempt_id)
{
    return idmap_get(ob->exits, attempt_id) != NULL;
}

struct each_ctx {
    void (*fn)(uint64_t, void *);
    void *arg;
};

static void each_exit(uint64_t id, void *value, void *arg)
{
    struct each_ctx *c = arg;
    c->fn(id, c->arg);
}

void outbox_each_exit(const outbox_t *ob, void (*fn)(uint64_t attempt_id, void *arg), void *arg)
{
    struct each_ctx c = {fn, arg};
    idmap_each(ob->exits, each_exit, &c);
}

size_t outbox_count(const outbox_t *ob)
{
    return ob->count;
}

size_t outbox_bytes(const outbox_t *ob)
{
    return ob->bytes;
}
