/* test_events — droverd's event log (scheduler/events.c, store.c
 * "events"): the commit phase derives exactly the events of what it
 * writes, in order, with seq contiguous; an aborted transaction leaves
 * none; a restart keeps seq counting up; pruning by count and by age, in
 * bounded batches from the lowest seq; the API's bad requests. The real
 * daemons (a run's events, kill -9) are tests/integration/test_events.py.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

TestSuite(events, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

/* Every event in the store with seq > since. */
static Drover__EventRecord **read_all(uint64_t since, size_t *n, uint64_t *first)
{
    Drover__EventRecord **evs;
    cr_assert_eq(store_read_events(s->store, since, NULL, 100000, &evs, n, first), 0);
    return evs;
}

static void expect_event(const Drover__EventRecord *e, Drover__EventKind kind, const char *task,
                         const char *from, const char *to)
{
    cr_assert_eq(e->kind, kind, "event %" PRIu64 ": kind %d, want %d", e->seq, e->kind, kind);
    if (task)
        cr_assert_str_eq(e->task, task, "event %" PRIu64, e->seq);
    cr_assert_str_eq(e->from, from, "event %" PRIu64 " (%s)", e->seq, e->task);
    cr_assert_str_eq(e->to, to, "event %" PRIu64 " (%s)", e->seq, e->task);
}

Test(events, transitions_make_exactly_their_events_in_order)
{
    h_register(s, "a1", 4000, 1 << 30, 0, NULL);
    cr_assert_eq(commit_journal(s), 0);
    run_t *r = h_submit(s, "name: p\nsteps:\n  - name: a\n    script: 'true'\n"
                           "  - name: b\n    needs: [a]\n    script: 'true'\n");
    task_t *a = h_task(r, "a"), *b = h_task(r, "b");
    placer_place(s);
    cr_assert_eq(commit_journal(s), 0);
    h_exit(s, a, 0);
    placer_place(s);
    cr_assert_eq(commit_journal(s), 0);
    h_exit(s, b, 1);
    cr_assert_eq(commit_journal(s), 0);
    cr_assert_eq(commit_journal(s), 0); /* nothing changed: nothing more */

    size_t n;
    uint64_t first;
    Drover__EventRecord **e = read_all(0, &n, &first);
    for (size_t i = 0; i < n; i++)
        cr_log_info("%" PRIu64 " %d %s %s->%s", e[i]->seq, e[i]->kind, e[i]->task, e[i]->from,
                    e[i]->to);
    cr_assert_eq(first, 1);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(e[i]->seq, i + 1, "seq not contiguous at %zu", i);
    Drover__EventKind T = DROVER__EVENT_KIND__EVENT_TASK;
    size_t k = 0;
    cr_assert_eq(n, 8, "%zu events", n);
    expect_event(e[k++], DROVER__EVENT_KIND__EVENT_AGENT, NULL, "disconnected", "connected");
    /* the submit's commit: the records written, then the run */
    expect_event(e[k++], T, "a", "", "ASSIGNED");
    expect_event(e[k++], T, "b", "", "WAITING");
    expect_event(e[k++], DROVER__EVENT_KIND__EVENT_RUN, NULL, "", "RUNNING");
    /* a's end before b's start: the order they happened in */
    expect_event(e[k++], T, "a", "ASSIGNED", "SUCCEEDED");
    cr_assert(e[k - 1]->has_exit);
    cr_assert_eq(e[k - 1]->exit_code, 0);
    cr_assert_str_eq(e[k - 1]->agent, "a1");
    cr_assert_eq(e[k - 1]->attempt, 1);
    expect_event(e[k++], T, "b", "WAITING", "ASSIGNED");
    expect_event(e[k++], T, "b", "ASSIGNED", "FAILED");
    cr_assert_eq(e[k - 1]->exit_code, 1);
    cr_assert_str_eq(e[k - 1]->run_id, r->rec->id);
    expect_event(e[k++], DROVER__EVENT_KIND__EVENT_RUN, NULL, "RUNNING", "FAILED");
    (void)k;
    store_events_free(e, n);

    /* since and run filters */
    Drover__EventRecord **later;
    cr_assert_eq(store_read_events(s->store, 5, r->rec->id, 100, &later, &n, &first), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(later[0]->seq, 6);
    store_events_free(later, n);
}

Test(events, agent_drain_notice_and_loss)
{
    agent_t *a = h_register(s, "a1", 4000, 1 << 30, 0, NULL);
    cr_assert_eq(commit_journal(s), 0);
    a->drained = true; /* as drover agent drain does */
    journal_mark_agent(&s->journal, a);
    cr_assert_eq(commit_journal(s), 0);
    /* a preemption notice in a heartbeat */
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Heartbeat hb = DROVER__HEARTBEAT__INIT;
    Drover__PreemptNotice pn = DROVER__PREEMPT_NOTICE__INIT;
    pn.terminate = true;
    pn.reason = "spot reclaim";
    hb.preempt = &pn;
    m.heartbeat = &hb;
    h_agent_send(s, "a1", &m);
    cr_assert(a->noticed);
    cr_assert_eq(commit_journal(s), 0);
    size_t n;
    uint64_t first;
    Drover__EventRecord **e = read_all(0, &n, &first);
    cr_assert_eq(n, 3, "%zu events", n);
    expect_event(e[0], DROVER__EVENT_KIND__EVENT_AGENT, NULL, "disconnected", "connected");
    expect_event(e[1], DROVER__EVENT_KIND__EVENT_AGENT, NULL, "in service", "drained");
    expect_event(e[2], DROVER__EVENT_KIND__EVENT_AGENT, NULL, "no notice", "preempt notice");
    cr_assert_str_eq(e[2]->reason, "spot reclaim");
    cr_assert_str_eq(e[2]->agent, "a1");
    store_events_free(e, n);
    /* a restart: the agent comes back drained, disconnected; no event
     * until it changes */
    h_sched_restart();
    cr_assert_eq(commit_journal(s), 0);
    e = read_all(0, &n, &first);
    store_events_free(e, n);
    cr_assert_eq(n, 3, "a restart made events");
}

Test(events, an_aborted_transaction_leaves_none_and_a_restart_counts_on)
{
    h_register(s, "a1", 4000, 1 << 30, 0, NULL);
    cr_assert_eq(commit_journal(s), 0);
    uint64_t next = s->events.next_seq;
    cr_assert_eq(next, 2);
    /* put in a transaction that is then aborted: nothing stays */
    Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT, *evp = &ev;
    ev.seq = next;
    ev.to = "x";
    cr_assert_eq(store_begin(s->store), 0);
    cr_assert_eq(store_put_events(s->store, &evp, 1), 0);
    store_abort(s->store);
    size_t n;
    uint64_t first;
    Drover__EventRecord **e = read_all(0, &n, &first);
    cr_assert_eq(n, 1);
    store_events_free(e, n);

    h_sched_restart();
    cr_assert_eq(s->events.next_seq, 2, "the counter did not survive the restart");
    h_submit(s, "name: p\nsteps:\n  - name: a\n    script: 'true'\n");
    cr_assert_eq(commit_journal(s), 0);
    e = read_all(0, &n, &first);
    cr_assert_geq(n, 3);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(e[i]->seq, i + 1, "seq not contiguous across a restart at %zu", i);
    store_events_free(e, n);
}

/* n task runs of one step each (2 events or more each), committed. */
static void make_events(int runs)
{
    for (int i = 0; i < runs; i++) {
        h_submit(s, "name: p\nsteps:\n  - name: a\n    script: 'true'\n");
        cr_assert_eq(commit_journal(s), 0);
    }
}

Test(events, pruned_by_count_then_by_age_from_the_lowest)
{
    make_events(30); /* 2 events each: the task (WAITING... READY), the run */
    size_t n;
    uint64_t first;
    Drover__EventRecord **e = read_all(0, &n, &first);
    store_events_free(e, n);
    cr_assert_eq(n, 60, "%zu events", n);

    s->cfg.events_max = 25;
    s->cfg.events_max_age_ms = 0;
    s->journal.prune_events = true;
    cr_assert_eq(commit_journal(s), 0);
    /* whole commits go: [35, 36] holds the 25th newest, so it stays */
    e = read_all(0, &n, &first);
    cr_assert_eq(n, 26);
    cr_assert_eq(first, 35);
    cr_assert_eq(e[0]->seq, 35);
    cr_assert_eq(e[25]->seq, 60);
    store_events_free(e, n);

    /* by age: every event is older than now + 1 h ago... none is older
     * than an hour, so nothing goes; then those before a cut do */
    s->cfg.events_max = 0;
    s->cfg.events_max_age_ms = 3600 * 1000;
    s->journal.prune_events = true;
    cr_assert_eq(commit_journal(s), 0);
    e = read_all(0, &n, &first);
    cr_assert_eq(n, 26);
    store_events_free(e, n);
    uint64_t before_ms;
    e = read_all(0, &n, &first);
    before_ms = (uint64_t)e[n - 1]->time_ms;
    store_events_free(e, n);
    while (util_now_ms() <= (int64_t)before_ms + 5)
        ;
    make_events(1);
    s->cfg.events_max_age_ms = (uint64_t)(util_now_ms() - (int64_t)before_ms) - 1;
    s->journal.prune_events = true;
    cr_assert_eq(commit_journal(s), 0);
    e = read_all(0, &n, &first);
    cr_assert_eq(n, 2, "%zu events left", n);
    cr_assert_eq(first, 61);
    store_events_free(e, n);

    /* a reader from before the pruned part is told it fell behind */
    Drover__EventsRequest req = DROVER__EVENTS_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    req.since = 10;
    events_api(s, NULL, &req, &resp, &err);
    cr_assert_null(err);
    cr_assert(resp.truncated);
    cr_assert_eq(resp.first_seq, 61);
    cr_assert_eq(resp.n_events, 2);
    events_api_done(&resp);
    req.since = 60;
    events_api(s, NULL, &req, &resp, &err);
    cr_assert_not(resp.truncated);
    events_api_done(&resp);
}

Test(events, pruning_is_bounded_per_commit_and_goes_on)
{
    /* a bound of 1: 20,000 batches a commit, so two commits */
    /* 25,000 batches of one event (commits of one change each) */
    cr_assert_eq(store_begin(s->store), 0);
    for (uint64_t i = 1; i <= 25000; i++) {
        Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT, *evp = &ev;
        ev.seq = i;
        ev.time_ms = util_now_ms();
        cr_assert_eq(store_put_events(s->store, &evp, 1), 0);
    }
    cr_assert_eq(store_commit(s->store), 0);
    s->events.next_seq = 25001; /* as droverd would have it */
    s->cfg.events_max = 1;
    s->journal.prune_events = true;
    cr_assert_eq(commit_journal(s), 0);
    size_t n;
    uint64_t first;
    Drover__EventRecord **e = read_all(0, &n, &first);
    store_events_free(e, n);
    cr_assert_gt(n, 1, "all pruned in one commit");
    cr_assert(s->journal.prune_events, "the rest not asked of the next commit");
    cr_assert_eq(commit_journal(s), 0);
    e = read_all(0, &n, &first);
    store_events_free(e, n);
    cr_assert_eq(n, 1);
    cr_assert_eq(first, 25000);
}

Test(events, bad_requests_are_refused)
{
    Drover__EventsRequest req = DROVER__EVENTS_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    req.max = 1000000;
    events_api(s, NULL, &req, &resp, &err);
    cr_assert_not_null(err);
    cr_assert(strstr(resp.error, "max 1000000 is over the limit"), "%s", resp.error);
    cr_assert_eq(resp.error_code, DROVER__API_ERROR_CODE__API_ERROR_INVALID);
    free(err);
    err = NULL;
    Drover__ApiResponse r2 = DROVER__API_RESPONSE__INIT;
    req.max = 0;
    req.run_id = "r424242";
    events_api(s, NULL, &req, &r2, &err);
    cr_assert_not_null(err);
    cr_assert(strstr(r2.error, "no run r424242"), "%s", r2.error);
    cr_assert_eq(r2.error_code, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND);
    free(err);
}

/* The replies queued for sending (unpacked, oldest first), then sent. */
static size_t take_replies(Drover__ApiResponse **out, size_t max)
{
    size_t n = 0;
    for (api_reply_t *r = s->replies.head; r && n < max; r = r->next) {
        out[n] = drover__api_response__unpack(NULL, r->len, r->data);
        cr_assert_not_null(out[n]);
        n++;
    }
    replies_flush(s); /* to no one: the ROUTER drops them */
    return n;
}

Test(events, held_requests_are_answered_from_the_commit_or_at_their_wait)
{
    h_register(s, "a1", 4000, 1 << 30, 0, NULL);
    cr_assert_eq(commit_journal(s), 0);
    run_t *r1 = h_submit(s, "name: p\nsteps:\n  - name: a\n    script: 'true'\n");
    cr_assert_eq(commit_journal(s), 0);
    uint64_t end = s->events.next_seq - 1;
    Drover__ApiResponse *got[8];
    take_replies(got, 0);

    /* nothing after `since`: held, not answered */
    Drover__EventsRequest req = DROVER__EVENTS_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    req.since = end;
    req.wait_ms = 30000;
    cr_assert(events_api(s, zframe_new("peer-all", 8), &req, &resp, &err));
    req.run_id = r1->rec->id; /* only r1's */
    cr_assert(events_api(s, zframe_new("peer-r1", 7), &req, &resp, &err));
    cr_assert_eq(s->events.n_waiters, 2);
    cr_assert_null(s->replies.head);

    /* a commit of another run's events: the unfiltered one is answered
     * from the batch, r1's stays held */
    h_submit(s, "name: q\nsteps:\n  - name: b\n    script: 'true'\n");
    cr_assert_eq(commit_journal(s), 0);
    cr_assert_eq(take_replies(got, 8), 1);
    cr_assert_gt(got[0]->n_events, 0);
    cr_assert_eq(got[0]->events[0]->seq, end + 1);
    cr_assert_eq(got[0]->next_seq, s->events.next_seq - 1);
    for (size_t i = 0; i < got[0]->n_events; i++)
        cr_assert_str_neq(got[0]->events[i]->run_id, r1->rec->id);
    drover__api_response__free_unpacked(got[0], NULL);
    cr_assert_eq(s->events.n_waiters, 1);

    /* r1's next event answers the other */
    placer_place(s);
    cr_assert_eq(commit_journal(s), 0);
    cr_assert_eq(take_replies(got, 8), 1);
    cr_assert_gt(got[0]->n_events, 0);
    for (size_t i = 0; i < got[0]->n_events; i++)
        cr_assert_str_eq(got[0]->events[i]->run_id, r1->rec->id);
    drover__api_response__free_unpacked(got[0], NULL);
    cr_assert_eq(s->events.n_waiters, 0);

    /* beyond --api-waiters: answered at once, empty, with where to go on */
    s->cfg.api_waiters = 1;
    req.run_id = "";
    req.since = s->events.next_seq - 1;
    req.wait_ms = 50;
    cr_assert(events_api(s, zframe_new("peer-1", 6), &req, &resp, &err));
    Drover__ApiResponse r2 = DROVER__API_RESPONSE__INIT;
    zframe_t *id2 = zframe_new("peer-2", 6); /* not held: still the caller's */
    cr_assert_not(events_api(s, id2, &req, &r2, &err));
    zframe_destroy(&id2);
    cr_assert_eq(r2.n_events, 0);
    cr_assert_eq(r2.next_seq, s->events.next_seq - 1);
    events_api_done(&r2);

    /* the wait passes: answered empty with next_seq */
    for (int i = 0; i < 100 && s->events.n_waiters; i++)
        ev_run(s->loop, EVRUN_ONCE);
    cr_assert_eq(take_replies(got, 8), 1);
    cr_assert_eq(got[0]->n_events, 0);
    cr_assert_eq(got[0]->next_seq, s->events.next_seq - 1);
    cr_assert_not(got[0]->truncated);
    drover__api_response__free_unpacked(got[0], NULL);
    cr_assert_eq(s->events.n_waiters, 0);
}

Test(events, a_filtered_scan_is_bounded_and_says_where_it_stopped)
{
    /* 150,000 events of no run, then one of r000001 */
    cr_assert_eq(store_begin(s->store), 0);
    Drover__EventRecord *evs = calloc(150001, sizeof *evs);
    Drover__EventRecord **ptrs = calloc(150001, sizeof *ptrs);
    for (uint64_t i = 0; i < 150001; i++) {
        Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT;
        evs[i] = ev;
        evs[i].seq = i + 1;
        evs[i].time_ms = util_now_ms(); /* not pruned by age */
        evs[i].run_id = i == 150000 ? "r000001" : "";
        ptrs[i] = &evs[i];
    }
    for (uint64_t i = 0; i < 150001; i += 1000) /* batches of 1000 */
        cr_assert_eq(store_put_events(s->store, ptrs + i, i + 1000 <= 150001 ? 1000 : 150001 - i),
                     0);
    cr_assert_eq(store_commit(s->store), 0);
    free(evs);
    free(ptrs);
    s->events.next_seq = 150002;
    h_submit(s, "name: p\nsteps:\n  - name: a\n    script: 'true'\n");
    cr_assert_eq(commit_journal(s), 0);

    Drover__EventsRequest req = DROVER__EVENTS_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    req.run_id = "r000001";
    req.wait_ms = 1000; /* stopped at the bound: answered at once, not held */
    zframe_t *id = zframe_new("p", 1);
    cr_assert_not(events_api(s, id, &req, &resp, &err));
    cr_assert_null(err);
    cr_assert_eq(resp.n_events, 0);
    cr_assert_eq(resp.next_seq, 100000, "stopped at %" PRIu64, resp.next_seq);
    events_api_done(&resp);
    req.since = 100000;
    cr_assert_not(events_api(s, id, &req, &resp, &err));
    zframe_destroy(&id);
    cr_assert_eq(resp.n_events, 1 + 2 /* the submit's: its task and run */, "%zu", resp.n_events);
    cr_assert_eq(resp.events[0]->seq, 150001);
    cr_assert_eq(resp.next_seq, s->events.next_seq - 1);
    events_api_done(&resp);

    req.wait_ms = 60001;
    cr_assert_not(events_api(s, NULL, &req, &resp, &err));
    cr_assert(strstr(resp.error, "wait_ms 60001 is over the limit"), "%s", resp.error);
    free(err);
}

Test(events, the_batch_encoding_is_protobuf_cs_byte_for_byte)
{
    static const char *strs[] = {"",         "r000001",   "train",
                                 "RUNNING",  "a1",        "exit 1: out of memory",
                                 "gpu-pool", "node-0042", "é→ü"};
    const size_t nstr = sizeof strs / sizeof *strs;
    srand(19);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + (size_t)(rand() % 40);
        Drover__EventRecord *evs = calloc(n, sizeof *evs);
        Drover__EventRecord **ptrs = calloc(n, sizeof *ptrs);
        char *big = NULL;
        for (size_t i = 0; i < n; i++) {
            Drover__EventRecord ev = DROVER__EVENT_RECORD__INIT;
            evs[i] = ev;
            Drover__EventRecord *e = &evs[i];
            e->seq = rand() % 3 ? (uint64_t)rand() * 977 : 0;
            e->time_ms = rand() % 4 == 0 ? -(int64_t)rand() : (int64_t)rand() * 1000;
            e->kind = (Drover__EventKind)(rand() % 5);
            char **fields[] = {&e->run_id, &e->task,   &e->from, &e->to,
                               &e->agent,  &e->reason, &e->pool, &e->node};
            for (size_t f = 0; f < 8; f++)
                *fields[f] = (char *)strs[(size_t)rand() % nstr];
            if (i == 0 && round % 10 == 0) { /* a reason over 127 bytes: a 2-byte length */
                big = calloc(1, 300);
                memset(big, 'x', 299);
                e->reason = big;
            }
            e->attempt = (uint32_t)(rand() % 3 ? rand() % 300 : 0);
            e->has_exit = rand() % 2;
            e->exit_code = rand() % 3 == 0 ? -(rand() % 200) : rand() % 300;
            e->checkpoint_step = rand() % 2 ? (uint64_t)rand() << 20 : 0;
            ptrs[i] = e;
        }
        Drover__EventBatch b = DROVER__EVENT_BATCH__INIT;
        b.n_events = n;
        b.events = ptrs;
        size_t want = drover__event_batch__get_packed_size(&b);
        uint8_t *ref = malloc(want), *got = malloc(want + 16);
        drover__event_batch__pack(&b, ref);
        size_t *lens = calloc(n, sizeof *lens);
        cr_assert_eq(store_events_encode(ptrs, n, NULL, lens), want, "round %d", round);
        cr_assert_eq(store_events_encode(ptrs, n, got, lens), want, "round %d", round);
        cr_assert_eq(memcmp(ref, got, want), 0, "round %d: the bytes differ", round);
        free(lens);
        free(ref);
        free(got);
        free(big);
        free(ptrs);
        free(evs);
    }
}
