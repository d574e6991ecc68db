/* test_outbox — the agent's unacknowledged reports.
 *
 * Sequence numbers, acks (exactly the acked report goes), what collect
 * returns when (never sent, due for resend, everything after a
 * re-registration), its count and byte limits with *more, EXITED tracking
 * until acked, and the count/bytes totals. Reports are malloc'd the way
 * the agent builds them, so LeakSanitizer checks the ownership contract.
 */
#include "helpers.h"

#include "outbox.h"

#define KIND(x) DROVER__REPORT_KIND__REPORT_##x

static outbox_t *ob;

static void setup(void)
{
    ob = outbox_new();
    cr_assert_not_null(ob);
}

static void teardown(void)
{
    outbox_destroy(&ob); /* frees whatever is still queued */
}

TestSuite(outbox, .init = setup, .fini = teardown, .timeout = 30);

static Drover__Report *mk(Drover__ReportKind kind, uint64_t attempt, size_t data_len)
{
    Drover__Report *r = xmalloc(sizeof *r);
    drover__report__init(r);
    r->kind = kind;
    r->attempt_id = attempt;
    if (data_len) {
        r->data.data = xmalloc(data_len);
        memset(r->data.data, 'x', data_len);
        r->data.len = data_len;
    }
    return r;
}

static uint64_t add(Drover__ReportKind kind, uint64_t attempt, size_t data_len)
{
    return outbox_add(ob, mk(kind, attempt, data_len));
}

/* Collect with generous limits; returns the seqs in out_seqs. */
static size_t collect_seqs(int64_t now, int64_t resend, bool all, uint64_t *out_seqs, size_t max)
{
    Drover__Report *out[64];
    bool more = true;
    cr_assert_leq(max, 64);
    size_t n = outbox_collect(ob, now, resend, all, out, max, SIZE_MAX, &more);
    for (size_t i = 0; i < n; i++)
        out_seqs[i] = out[i]->seq;
    return n;
}

Test(outbox, sequence_numbers_increase)
{
    Drover__Report *a = mk(KIND(STARTED), 1, 0);
    uint64_t s1 = outbox_add(ob, a);
    cr_assert_eq(a->seq, s1, "outbox_add sets rep->seq");
    uint64_t prev = s1;
    cr_assert_gt(s1, 0);
    for (int i = 0; i < 100; i++) {
        uint64_t sn = add(KIND(LOG), 1, 3);
        cr_assert_gt(sn, prev);
        prev = sn;
    }
    /* Acks do not make numbers be reused. */
    outbox_ack(ob, prev);
    cr_assert_gt(add(KIND(LOG), 1, 1), prev);
    cr_assert_eq(outbox_count(ob), 101);
}

Test(outbox, ack_removes_exactly_that_report)
{
    uint64_t s1 = add(KIND(STARTED), 1, 0);
    uint64_t s2 = add(KIND(LOG), 1, 10);
    uint64_t s3 = add(KIND(LOG), 1, 20);
    uint64_t s4 = add(KIND(EXITED), 1, 0);
    cr_assert_eq(outbox_count(ob), 4);
    cr_assert_eq(outbox_bytes(ob), 30);

    outbox_ack(ob, s2);
    cr_assert_eq(outbox_count(ob), 3);
    cr_assert_eq(outbox_bytes(ob), 20);
    uint64_t seqs[8];
    size_t n = collect_seqs(1000, 5000, false, seqs, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(seqs[0], s1);
    cr_assert_eq(seqs[1], s3);
    cr_assert_eq(seqs[2], s4);

    outbox_ack(ob, s2);     /* twice: ignored */
    outbox_ack(ob, 999999); /* unknown: ignored */
    outbox_ack(ob, 0);      /* never a seq: ignored */
    cr_assert_eq(outbox_count(ob), 3);

    outbox_ack(ob, s1); /* head */
    outbox_ack(ob, s4); /* tail */
    cr_assert_eq(outbox_count(ob), 1);
    n = collect_seqs(1000, 5000, true, seqs, 8);
    cr_assert_eq(n, 1);
    cr_assert_eq(seqs[0], s3);
    outbox_ack(ob, s3);
    cr_assert_eq(outbox_count(ob), 0);
    cr_assert_eq(outbox_bytes(ob), 0);
    n = collect_seqs(1000, 5000, true, seqs, 8);
    cr_assert_eq(n, 0);

    /* Still usable after running empty. */
    uint64_t s5 = add(KIND(LOG), 2, 5);
    n = collect_seqs(2000, 5000, false, seqs, 8);
    cr_assert_eq(n, 1);
    cr_assert_eq(seqs[0], s5);
}

Test(outbox, collect_follows_the_resend_interval)
{
    const int64_t resend = 500;
    uint64_t s1 = add(KIND(STARTED), 1, 0);
    uint64_t s2 = add(KIND(LOG), 1, 4);
    uint64_t seqs[8];

    /* Never sent: due at once, in seq order. */
    size_t n = collect_seqs(1000, resend, false, seqs, 8);
    cr_assert_eq(n, 2);
    cr_assert_eq(seqs[0], s1);
    cr_assert_eq(seqs[1], s2);

    /* Just sent: not due. A new report is. */
    uint64_t s3 = add(KIND(LOG), 1, 4);
    n = collect_seqs(1100, resend, false, seqs, 8);
    cr_assert_eq(n, 1);
    cr_assert_eq(seqs[0], s3);
    n = collect_seqs(1499, resend, false, seqs, 8);
    cr_assert_eq(n, 0, "nothing due 499 ms after sending");

    /* Resend interval passed for s1, s2 (sent at 1000), not for s3 (1100). */
    n = collect_seqs(1500, resend, false, seqs, 8);
    cr_assert_eq(n, 2);
    cr_assert_eq(seqs[0], s1);
    cr_assert_eq(seqs[1], s2);
    n = collect_seqs(1600, resend, false, seqs, 8);
    cr_assert_eq(n, 1);
    cr_assert_eq(seqs[0], s3);

    /* After a re-registration everything goes, sent or not. */
    n = collect_seqs(1601, resend, true, seqs, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(seqs[0], s1);
    cr_assert_eq(seqs[2], s3);
    /* ... and counts as sent then. */
    n = collect_seqs(1700, resend, false, seqs, 8);
    cr_assert_eq(n, 0);

    /* Acked reports are never collected again. */
    outbox_ack(ob, s1);
    n = collect_seqs(100000, resend, false, seqs, 8);
    cr_assert_eq(n, 2);
    cr_assert_eq(seqs[0], s2);
}

/* A droverd that is slow, not gone, is not sent every report again every
 * interval: each re-send waits twice as long, up to 16 intervals; a
 * re-registration starts over. */
Test(outbox, resends_back_off)
{
    const int64_t resend = 500;
    uint64_t seqs[4];
    add(KIND(EXITED), 1, 0);
    cr_assert_eq(collect_seqs(1000, resend, false, seqs, 4), 1, "first send");
    cr_assert_eq(collect_seqs(1499, resend, false, seqs, 4), 0);
    cr_assert_eq(collect_seqs(1500, resend, false, seqs, 4), 1, "re-send after 500 ms");
    cr_assert_eq(collect_seqs(2499, resend, false, seqs, 4), 0, "the next waits 1,000 ms");
    cr_assert_eq(collect_seqs(2500, resend, false, seqs, 4), 1);
    cr_assert_eq(collect_seqs(4499, resend, false, seqs, 4), 0, "then 2,000 ms");
    cr_assert_eq(collect_seqs(4500, resend, false, seqs, 4), 1);
    int64_t t = 4500;
    for (int i = 0; i < 4; i++) { /* 4,000, then 8,000 ms thrice: the cap */
        int64_t wait = i == 0 ? 4000 : 8000;
        cr_assert_eq(collect_seqs(t + wait - 1, resend, false, seqs, 4), 0, "round %d", i);
        cr_assert_eq(collect_seqs(t + wait, resend, false, seqs, 4), 1, "round %d", i);
        t += wait;
    }
    outbox_mark_unsent(ob); /* re-registered */
    cr_assert_eq(collect_seqs(t + 1, resend, false, seqs, 4), 1);
    cr_assert_eq(collect_seqs(t + 501, resend, false, seqs, 4), 1, "the back-off starts over");
}

Test(outbox, collect_at_time_zero_still_counts_as_sent)
{
    uint64_t seqs[4];
    add(KIND(LOG), 1, 1);
    cr_assert_eq(collect_seqs(0, 1000, false, seqs, 4), 1);
    cr_assert_eq(collect_seqs(0, 1000, false, seqs, 4), 0, "sent at 0 is not 'never sent'");
}

Test(outbox, max_count_limit_sets_more)
{
    Drover__Report *out[8];
    bool more = false;
    uint64_t seqs[5];
    for (int i = 0; i < 5; i++)
        seqs[i] = add(KIND(LOG), 1, 1);
    size_t n = outbox_collect(ob, 1000, 500, false, out, 2, SIZE_MAX, &more);
    cr_assert_eq(n, 2);
    cr_assert(more, "3 due reports were left");
    cr_assert_eq(out[0]->seq, seqs[0]);
    cr_assert_eq(out[1]->seq, seqs[1]);
    n = outbox_collect(ob, 1000, 500, false, out, 2, SIZE_MAX, &more);
    cr_assert_eq(n, 2);
    cr_assert(more);
    cr_assert_eq(out[0]->seq, seqs[2]);
    n = outbox_collect(ob, 1000, 500, false, out, 2, SIZE_MAX, &more);
    cr_assert_eq(n, 1);
    cr_assert_not(more, "nothing due was left");
    cr_assert_eq(out[0]->seq, seqs[4]);
    /* Exactly max due: no more. */
    n = outbox_collect(ob, 2000, 500, false, out, 5, SIZE_MAX, &more);
    cr_assert_eq(n, 5);
    cr_assert_not(more);
    n = outbox_collect(ob, 2000, 500, false, out, 0, SIZE_MAX, &more);
    cr_assert_eq(n, 0);
    cr_assert_not(more, "nothing is due right after sending");
}

Test(outbox, max_bytes_limit_sets_more)
{
    Drover__Report *out[8];
    bool more = false;
    uint64_t a = add(KIND(LOG), 1, 600);
    uint64_t b = add(KIND(LOG), 1, 600);
    uint64_t c = add(KIND(EXITED), 1, 0);
    size_t n = outbox_collect(ob, 1000, 500, false, out, 8, 1000, &more);
    cr_assert_eq(n, 1, "a second 600-byte chunk would exceed 1000 bytes");
    cr_assert(more);
    cr_assert_eq(out[0]->seq, a);
    n = outbox_collect(ob, 1000, 500, false, out, 8, 1000, &more);
    cr_assert_eq(n, 2, "600 + 0 bytes fit");
    cr_assert_not(more);
    cr_assert_eq(out[0]->seq, b);
    cr_assert_eq(out[1]->seq, c);
    cr_assert_eq(out[0]->data.len, 600);

    /* One report larger than max_bytes still goes alone (never stuck). */
    uint64_t big = add(KIND(LOG), 2, 5000);
    n = outbox_collect(ob, 1100, 500, false, out, 8, 1000, &more);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0]->seq, big);
    cr_assert_not(more);
    cr_assert_eq(outbox_bytes(ob), 6200);
}

static void collect_ids(uint64_t id, void *arg)
{
    uint64_t *seen = arg;
    cr_assert_lt(seen[0], 15);
    seen[1 + seen[0]++] = id;
}

static bool seen_has(const uint64_t *seen, uint64_t id)
{
    for (uint64_t i = 0; i < seen[0]; i++)
        if (seen[1 + i] == id)
            return true;
    return false;
}

Test(outbox, exits_are_tracked_until_acked)
{
    uint64_t seen[16] = {0};
    outbox_each_exit(ob, collect_ids, seen);
    cr_assert_eq(seen[0], 0);
    cr_assert_not(outbox_has_exit(ob, 7));

    add(KIND(STARTED), 7, 0);
    add(KIND(LOG), 7, 10);
    cr_assert_not(outbox_has_exit(ob, 7), "STARTED and LOG are not exits");
    uint64_t e7 = add(KIND(EXITED), 7, 0);
    uint64_t e8 = add(KIND(EXITED), 8, 0);
    add(KIND(STARTED), 9, 0);
    cr_assert(outbox_has_exit(ob, 7));
    cr_assert(outbox_has_exit(ob, 8));
    cr_assert_not(outbox_has_exit(ob, 9));

    outbox_each_exit(ob, collect_ids, seen);
    cr_assert_eq(seen[0], 2);
    cr_assert(seen_has(seen, 7));
    cr_assert(seen_has(seen, 8));

    /* Sending does not clear it; acking does. */
    bool more;
    Drover__Report *out[8];
    outbox_collect(ob, 1000, 500, true, out, 8, SIZE_MAX, &more);
    cr_assert(outbox_has_exit(ob, 7));
    outbox_ack(ob, e7);
    cr_assert_not(outbox_has_exit(ob, 7));
    cr_assert(outbox_has_exit(ob, 8));
    memset(seen, 0, sizeof seen);
    outbox_each_exit(ob, collect_ids, seen);
    cr_assert_eq(seen[0], 1);
    cr_assert_eq(seen[1], 8);
    outbox_ack(ob, e8);
    cr_assert_not(outbox_has_exit(ob, 8));
    memset(seen, 0, sizeof seen);
    outbox_each_exit(ob, collect_ids, seen);
    cr_assert_eq(seen[0], 0);
}

Test(outbox, count_and_bytes_track_adds_and_acks)
{
    uint64_t seqs[1000];
    size_t want_bytes = 0;
    uint64_t state = 42;
    for (int i = 0; i < 1000; i++) {
        size_t len = (size_t)(h_rand(&state) % 300);
        seqs[i] = add(len ? KIND(LOG) : KIND(STARTED), (uint64_t)i + 1, len);
        want_bytes += len;
    }
    cr_assert_eq(outbox_count(ob), 1000);
    cr_assert_eq(outbox_bytes(ob), want_bytes);
    /* Ack every other report, out of order. */
    size_t left = 1000;
    for (int i = 999; i >= 0; i -= 2) {
        outbox_ack(ob, seqs[i]);
        left--;
    }
    cr_assert_eq(outbox_count(ob), left);
    Drover__Report *all[1000];
    bool more;
    size_t n = outbox_collect(ob, 5, 1, true, all, 1000, SIZE_MAX, &more);
    cr_assert_eq(n, 500);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(all[i]->seq, seqs[2 * i], "survivors stay in seq order");
        bytes += all[i]->data.len;
    }
    cr_assert_eq(outbox_bytes(ob), bytes);
}

Test(outbox, report_free_handles_unadded_reports)
{
    Drover__Report *r = mk(KIND(EXITED), 3, 100);
    r->reason = xstrdup("timeout after 1s");
    outbox_report_free(r);
    outbox_report_free(NULL);
    outbox_t *none = NULL;
    outbox_destroy(&none);
    outbox_destroy(NULL);
    /* Queued reports with data and reasons are freed by destroy. */
    Drover__Report *q = mk(KIND(EXITED), 4, 10);
    q->reason = xstrdup("killed");
    outbox_add(ob, q);
}

/* After a re-registration everything must go again — in successive
 * batches, never the same first batch over and over. */
Test(outbox, mark_unsent_resends_everything_in_batches)
{
    uint64_t seqs[8];
    for (int i = 0; i < 10; i++)
        add(DROVER__REPORT_KIND__REPORT_LOG, 1, 10);
    cr_assert_eq(collect_seqs(1000, 3000, false, seqs, 8), 8);
    cr_assert_eq(collect_seqs(1000, 3000, false, seqs, 8), 2, "the rest of the first send");
    outbox_mark_unsent(ob);
    size_t n1 = collect_seqs(1001, 3000, false, seqs, 8);
    cr_assert_eq(n1, 8);
    uint64_t first = seqs[0];
    size_t n2 = collect_seqs(1001, 3000, false, seqs, 8);
    cr_assert_eq(n2, 2, "the second batch holds the other two, not the first eight again");
    cr_assert_neq(seqs[0], first);
    cr_assert_eq(collect_seqs(1002, 3000, false, seqs, 8), 0, "nothing due until the interval");
}
