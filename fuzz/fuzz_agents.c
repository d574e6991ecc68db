/* fuzz_agents — droverd's agents-socket decoder and handlers
 * (scheduler/agents.c agents_handle, and through it the DAG, placer, blob
 * transfers and group commit; the API handler too).
 *
 * Each input is a conversation (agents_harness.h gives its format) played
 * against a real scheduler with three registered agents and a run whose
 * first tasks are assigned. By default every input gets a fresh scheduler
 * (fresh LMDB state dir), so a crash replays from its input alone;
 * DROVER_FUZZ_RESET=N keeps one scheduler for N inputs (faster, and state
 * piles up the way it does in a long-lived droverd, but a crash may then
 * depend on the inputs before it).
 *
 * After the conversation, the three agents behave for a few rounds
 * (fz_drive: start, upload, exit with outputs), so the run goes on from
 * whatever state the conversation left.
 *
 * A custom mutator keeps the record framing intact most of the time: it
 * mutates one record's body (so a protobuf message changes and the rest
 * of the conversation still parses), a record's sel byte, or duplicates,
 * moves or drops whole records; a quarter of the mutations are libFuzzer's
 * own on the whole input.
 */
#include "agents_harness.h"

#include <stdlib.h>
#include <string.h>

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static fz_t *fz;
static unsigned long reset_every = 1, inputs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *e = getenv("DROVER_FUZZ_RESET");
    if (e && strtoul(e, NULL, 10) > 0)
        reset_every = strtoul(e, NULL, 10);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz)
        fz = fz_open();
    fz_converse(fz, data, size);
    /* Then well-behaved agents carry on from whatever state that left:
     * an inconsistency it caused shows when the run goes on. */
    fz_drive(fz, 3);
    if (++inputs % reset_every == 0)
        fz_close(&fz);
    return 0;
}

#define MAX_RECORDS 512

typedef struct {
    size_t off, len; /* header at off, body at off + 3 */
} rec_t;

static size_t split(const uint8_t *data, size_t size, rec_t *recs)
{
    size_t n = 0, off = 0;
    while (size - off >= 3 && n < MAX_RECORDS) {
        size_t len = data[off + 1] | (size_t)data[off + 2] << 8;
        if (len > size - off - 3)
            len = size - off - 3;
        recs[n].off = off;
        recs[n].len = len;
        n++;
        off += 3 + len;
    }
    return n;
}

static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    static rec_t recs[MAX_RECORDS];
    uint32_t r = seed | 1;
    size_t n = split(data, size, recs);
    if (n == 0 || next_rand(&r) % 4 == 0)
        return LLVMFuzzerMutate(data, size, max_size);
    rec_t *x = &recs[next_rand(&r) % n];
    size_t end = x->off + 3 + x->len; /* what follows x */
    switch (next_rand(&r) % 8) {
    case 0: /* the speaker and flags */
        data[x->off] ^= (uint8_t)(1u << (next_rand(&r) % 8));
        return size;
    case 1: /* drop x */
        if (n < 2)
            break;
        memmove(data + x->off, data + end, size - end);
        return size - (end - x->off);
    case 2: { /* copy x in front of another record */
        size_t rl = end - x->off;
        if (size + rl > max_size)
            break;
        rec_t *at = &recs[next_rand(&r) % n];
        uint8_t *copy = malloc(rl);
        memcpy(copy, data + x->off, rl);
        memmove(data + at->off + rl, data + at->off, size - at->off);
        memcpy(data + at->off, copy, rl);
        free(copy);
        return size + rl;
    }
    default: { /* x's body: a protobuf message, mutated in place */
        size_t room = max_size - (size - x->len);
        size_t cap = room < 0xffff ? room : 0xffff;
        if (cap == 0)
            break;
        uint8_t *body = malloc(cap);
        memcpy(body, data + x->off + 3, x->len);
        size_t len = LLVMFuzzerMutate(body, x->len, cap);
        memmove(data + x->off + 3 + len, data + end, size - end);
        memcpy(data + x->off + 3, body, len);
        data[x->off + 1] = (uint8_t)(len & 0xff);
        data[x->off + 2] = (uint8_t)(len >> 8);
        free(body);
        return size - x->len + len;
    }
    }
    return LLVMFuzzerMutate(data, size, max_size);
}
