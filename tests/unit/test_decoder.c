/* test_decoder — droverd's message handling under hostile input.
 *
 * A real droverd (temp state h_dir, ipc:// endpoints, loop not run) is fed,
 * through agents_handle() and api_handle() exactly as its sockets would,
 * every truncated prefix and thousands of bit-flipped copies of valid
 * AgentMessage and ApiRequest frames, and thousands of seeded random byte
 * strings. Nothing may crash (run the ASan/UBSan build too), every API
 * request must get exactly one reply that decodes, and afterwards droverd
 * must still serve: a valid submit gets a run id, an agent can register
 * and get work. Registrations with absurd values must be refused and
 * leave the agent disconnected.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

TestSuite(decoder, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 240);

static const char *SPEC = "name: fuzzed\n"
                          "steps:\n"
                          "  - {name: a, command: [echo, hi]}\n"
                          "  - {name: b, needs: [a], command: [true], retries: 2}\n"
                          "  - {name: c, command: [true], resources: {cpu: 1, gpu: 1}}\n";

/* ------------------------------------------------------------ replies */

static size_t count_replies(void)
{
    size_t n = 0;
    for (api_reply_t *r = s->replies.head; r; r = r->next)
        n++;
    return n;
}

/* Check each queued reply decodes, then send them (to a peer that is not
 * connected: ZMQ refuses them and they are freed). */
static void drain_replies(void)
{
    for (api_reply_t *r = s->replies.head; r; r = r->next) {
        Drover__ApiResponse *resp = drover__api_response__unpack(NULL, r->len, r->data);
        cr_assert_not_null(resp, "a reply of %zu bytes does not decode", r->len);
        drover__api_response__free_unpacked(resp, NULL);
    }
    replies_flush(s);
}

/* One API request; exactly one reply must be queued for it. */
static void api_call(const uint8_t *data, size_t len)
{
    size_t before = count_replies();
    api_handle(s, zframe_new("cli-1", 5), data, len);
    cr_assert_eq(count_replies(), before + 1, "api_handle queued %zu replies for %zu bytes",
                 count_replies() - before, len);
    if (before + 1 >= 256)
        drain_replies();
}

/* The newest queued reply, decoded (caller frees). */
static Drover__ApiResponse *last_reply(void)
{
    api_reply_t *last = s->replies.head;
    cr_assert_not_null(last, "no reply queued");
    while (last->next)
        last = last->next;
    cr_assert_str_eq((char *)zframe_data(last->identity), "cli-1");
    Drover__ApiResponse *resp = drover__api_response__unpack(NULL, last->len, last->data);
    cr_assert_not_null(resp, "the reply does not decode");
    return resp;
}

static uint8_t *pack_api(const Drover__ApiRequest *req, size_t *len)
{
    *len = drover__api_request__get_packed_size(req);
    uint8_t *b = xmalloc(*len ? *len : 1);
    drover__api_request__pack(req, b);
    return b;
}

static uint8_t *pack_submit(const char *spec, size_t *len)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__SubmitRequest sub = DROVER__SUBMIT_REQUEST__INIT;
    sub.file = "fuzzed.yaml";
    sub.spec.data = (uint8_t *)spec;
    sub.spec.len = strlen(spec);
    req.op_case = DROVER__API_REQUEST__OP_SUBMIT;
    req.submit = &sub;
    return pack_api(&req, len);
}

/* Submit SPEC through the API; returns the new run. */
static run_t *submit_ok(void)
{
    size_t len;
    uint8_t *b = pack_submit(SPEC, &len);
    api_call(b, len);
    free(b);
    Drover__ApiResponse *resp = last_reply();
    cr_assert_str_eq(resp->error, "", "submit failed: %s", resp->error);
    cr_assert_neq(resp->run_id[0], '\0', "no run id in the reply");
    run_t *r = dag_find_run(s, resp->run_id);
    cr_assert_not_null(r, "reply names run %s, which does not exist", resp->run_id);
    drover__api_response__free_unpacked(resp, NULL);
    return r;
}

/* ------------------------------------------------------------ inputs */

typedef struct {
    uint8_t *data;
    size_t len;
} blob_t;

static blob_t pack_agent(const Drover__AgentMessage *m)
{
    blob_t b;
    b.len = drover__agent_message__get_packed_size(m);
    b.data = xmalloc(b.len ? b.len : 1);
    drover__agent_message__pack(m, b.data);
    return b;
}

/* Valid agent frames touching every field, for attempts that exist. */
static size_t valid_agent_frames(blob_t *out, uint64_t id1, uint64_t id2)
{
    size_t n = 0;
    Drover__KeyValue kv1 = DROVER__KEY_VALUE__INIT, kv2 = DROVER__KEY_VALUE__INIT;
    Drover__KeyValue *kvs[2] = {&kv1, &kv2};
    kv1.key = "pool";
    kv1.value = "train";
    kv2.key = "zone";
    kv2.value = "eu-west-1a";
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    cap.cpu_milli = 16000;
    cap.memory_bytes = 64ull << 30;
    cap.gpus = 2;
    uint64_t held[3] = {id1, id2, 999999};

    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    reg.name = "a1";
    reg.labels = kvs;
    reg.n_labels = 2;
    reg.capacity = &cap;
    reg.attempts = held;
    reg.n_attempts = 3;
    reg.version = "0.1.0";
    m.register_ = &reg;
    out[n++] = pack_agent(&m);

    Drover__AgentMessage hb = DROVER__AGENT_MESSAGE__INIT;
    Drover__Heartbeat h = DROVER__HEARTBEAT__INIT;
    h.running = held;
    h.n_running = 3;
    hb.heartbeat = &h;
    out[n++] = pack_agent(&hb);

    uint8_t logdata[200];
    for (size_t i = 0; i < sizeof logdata; i++)
        logdata[i] = (uint8_t)('a' + i % 26);
    Drover__Report st = DROVER__REPORT__INIT, lg = DROVER__REPORT__INIT, ex = DROVER__REPORT__INIT,
                   ex2 = DROVER__REPORT__INIT;
    Drover__Report *reps[4] = {&st, &lg, &ex, &ex2};
    st.seq = 1;
    st.attempt_id = id1;
    st.kind = DROVER__REPORT_KIND__REPORT_STARTED;
    st.time_ms = 1700000000000;
    lg.seq = 2;
    lg.attempt_id = id1;
    lg.kind = DROVER__REPORT_KIND__REPORT_LOG;
    lg.offset = 0;
    lg.data.data = logdata;
    lg.data.len = sizeof logdata;
    ex.seq = 3;
    ex.attempt_id = id1;
    ex.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    ex.exit_code = 1;
    ex.term_signal = 0;
    ex.timed_out = true;
    ex.reason = "timeout after 1s";
    ex2.seq = 4;
    ex2.attempt_id = id2;
    ex2.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    ex2.exit_code = 0;
    Drover__AgentMessage rm = DROVER__AGENT_MESSAGE__INIT;
    rm.reports = reps;
    rm.n_reports = 4;
    rm.assign_acks = held;
    rm.n_assign_acks = 3;
    out[n++] = pack_agent(&rm);

    /* Everything at once. */
    Drover__AgentMessage all = DROVER__AGENT_MESSAGE__INIT;
    all.register_ = &reg;
    all.heartbeat = &h;
    all.reports = reps;
    all.n_reports = 4;
    all.assign_acks = held;
    all.n_assign_acks = 3;
    out[n++] = pack_agent(&all);
    return n;
}

static size_t valid_api_frames(blob_t *out)
{
    size_t n = 0;
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    out[n].data = pack_submit(SPEC, &out[n].len);
    n++;

    Drover__ListRunsRequest lr = DROVER__LIST_RUNS_REQUEST__INIT;
    lr.limit = 5;
    req.op_case = DROVER__API_REQUEST__OP_LIST_RUNS;
    req.list_runs = &lr;
    out[n].data = pack_api(&req, &out[n].len);
    n++;

    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    rr.id = "r000001";
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = &rr;
    out[n].data = pack_api(&req, &out[n].len);
    n++;

    Drover__LogsRequest lq = DROVER__LOGS_REQUEST__INIT;
    lq.run_id = "r000001";
    lq.task = "a";
    lq.attempt = 1;
    lq.offset = 3;
    lq.max_bytes = 100;
    req.op_case = DROVER__API_REQUEST__OP_LOGS;
    req.logs = &lq;
    out[n].data = pack_api(&req, &out[n].len);
    n++;

    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    ar.name = "a1";
    req.op_case = DROVER__API_REQUEST__OP_LIST_AGENTS;
    req.list_agents = &ar;
    out[n].data = pack_api(&req, &out[n].len);
    n++;

    Drover__RunRequest cr = DROVER__RUN_REQUEST__INIT;
    cr.id = "r999999";
    req.op_case = DROVER__API_REQUEST__OP_CANCEL_RUN;
    req.cancel_run = &cr;
    out[n].data = pack_api(&req, &out[n].len);
    n++;
    return n;
}

static void agent_frame(const char *name, const uint8_t *data, size_t len)
{
    zframe_t *id = zframe_new(name, strlen(name));
    agents_handle(s, id, NULL, data, len);
    zframe_destroy(&id);
}

/* A world with something in it: a run with attempts on a1, logs, an agent
 * known but not registered. */
static run_t *populate(uint64_t *id1, uint64_t *id2)
{
    run_t *r = submit_ok();
    drain_replies();
    h_register(s, "a1", 16000, 64ull << 30, 2, "pool=train");
    placer_place(s);
    task_t *a = h_task(r, "a"), *c = h_task(r, "c");
    cr_assert_eq(a->status, DROVER__TASK_STATUS__TASK_ASSIGNED);
    cr_assert_eq(c->status, DROVER__TASK_STATUS__TASK_ASSIGNED);
    *id1 = dag_current_attempt(a)->id;
    *id2 = dag_current_attempt(c)->id;
    return r;
}

/* After the storm: droverd still takes a submit and a new agent. */
static void expect_still_serving(void)
{
    drain_replies();
    run_t *r = submit_ok();
    drain_replies();
    h_register(s, "fresh-agent", 64000, 256ull << 30, 8, NULL);
    placer_place(s);
    task_t *a = h_task(r, "a");
    cr_assert(a->status == DROVER__TASK_STATUS__TASK_ASSIGNED ||
                  a->status == DROVER__TASK_STATUS__TASK_READY,
              "task a is %s", util_task_status_name(a->status));
    /* The model is consistent: every agent's bound tasks point back at it
     * and its used resources add up. */
    for (agent_t *ag = zhashx_first(s->fleet.agents); ag; ag = zhashx_next(s->fleet.agents)) {
        uint64_t cpu = 0;
        for (size_t i = 0; i < ag->n_tasks; i++) {
            cr_assert_eq(ag->tasks[i]->agent, ag);
            cr_assert_eq(ag->tasks[i]->agent_slot, i);
            cpu += ag->tasks[i]->step->resources->cpu_milli;
        }
        cr_assert_eq(ag->used.cpu_milli, cpu, "agent %s: used %u, bound tasks need %lu", ag->name,
                     ag->used.cpu_milli, (unsigned long)cpu);
    }
    size_t n = 0;
    for (task_t *t = s->dag.ready_head; t; t = t->ready_next) {
        cr_assert_eq(t->status, DROVER__TASK_STATUS__TASK_READY);
        n++;
    }
    cr_assert_eq(n, s->dag.n_ready);
}

/* ------------------------------------------------------------ tests */

Test(decoder, truncated_agent_messages)
{
    uint64_t id1, id2;
    populate(&id1, &id2);
    blob_t frames[8];
    size_t nf = valid_agent_frames(frames, id1, id2);
    for (size_t f = 0; f < nf; f++) {
        for (size_t k = 0; k <= frames[f].len; k++) {
            /* A copy of exactly k bytes, so ASan sees any over-read. */
            uint8_t *copy = xmalloc(k ? k : 1);
            memcpy(copy, frames[f].data, k);
            agent_frame("a1", copy, k);
            agent_frame("stranger", copy, k);
            free(copy);
        }
        free(frames[f].data);
    }
    expect_still_serving();
}

Test(decoder, mutated_agent_messages)
{
    uint64_t id1, id2;
    populate(&id1, &id2);
    blob_t frames[8];
    size_t nf = valid_agent_frames(frames, id1, id2);
    uint64_t state = 0xD15EA5E;
    for (int iter = 0; iter < 4000; iter++) {
        blob_t *src = &frames[h_rand(&state) % nf];
        size_t len = src->len;
        uint8_t *copy = xmalloc(len);
        memcpy(copy, src->data, len);
        int flips = 1 + (int)(h_rand(&state) % 4);
        for (int i = 0; i < flips; i++) {
            size_t pos = (size_t)(h_rand(&state) % len);
            if (h_rand(&state) % 2)
                copy[pos] ^= (uint8_t)(1u << (h_rand(&state) % 8));
            else
                copy[pos] = (uint8_t)h_rand(&state);
        }
        agent_frame(iter % 3 ? "a1" : "fresh-agent-0", copy, len);
        free(copy);
        if (iter % 500 == 0)
            placer_place(s); /* keep attempts coming */
    }
    for (size_t f = 0; f < nf; f++)
        free(frames[f].data);
    expect_still_serving();
}

Test(decoder, random_agent_bytes)
{
    uint64_t id1, id2;
    populate(&id1, &id2);
    uint64_t state = 0xC0FFEE;
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = (size_t)(h_rand(&state) % 512);
        uint8_t *b = xmalloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)h_rand(&state);
        agent_frame("a1", b, len);
        free(b);
    }
    expect_still_serving();
}

/* A Register frame from the agent called name (capacity only). */
static blob_t register_frame(const char *name)
{
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    cap.cpu_milli = 1000;
    Drover__Register reg = DROVER__REGISTER__INIT;
    reg.name = (char *)name;
    reg.capacity = &cap;
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    m.register_ = &reg;
    return pack_agent(&m);
}

Test(decoder, invalid_agent_names_are_refused)
{
    const char *bad[] = {"", "has space", "dot/slash", "../up",
                         "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        blob_t f = register_frame(bad[i]);
        agent_frame("conn", f.data, f.len);
        free(f.data);
        cr_assert_null(fleet_find(&s->fleet, bad[i]), "an agent was made for the name '%s'",
                       bad[i]);
    }
    cr_assert_eq(zhashx_size(s->fleet.agents), 0);
    cr_assert_eq(s->out.n_peer_replies, sizeof bad / sizeof *bad, "each refusal is answered");
}

Test(decoder, a_connection_speaks_only_for_the_agent_it_registered)
{
    /* Routing ids are droverd's: a connection is bound to the agent it
     * registered as, and nothing else it says can act for another. */
    uint64_t id1, id2;
    populate(&id1, &id2); /* a1 registered on connection "a1" */
    agent_t *a1 = fleet_find(&s->fleet, "a1");
    size_t held = a1->n_tasks;
    cr_assert_gt(held, 0);
    blob_t f = register_frame("a2");
    agent_frame("a1", f.data, f.len); /* a1's connection claims to be a2 */
    free(f.data);
    cr_assert_null(fleet_find(&s->fleet, "a2"), "a connection registered as a second agent");
    /* A heartbeat on a connection no agent registered: "register first". */
    size_t before = s->out.n_peer_replies;
    blob_t frames[8];
    size_t nf = valid_agent_frames(frames, id1, id2);
    agent_frame("stranger", frames[1].data, frames[1].len);
    cr_assert_eq(s->out.n_peer_replies, before + 1);
    cr_assert_null(s->out.peer_replies[before].refused, "the stranger is asked to register");
    for (size_t i = 0; i < nf; i++)
        free(frames[i].data);
    /* a1 was refused for its bad registration: no longer in service. */
    cr_assert(!a1->connected);
    /* A new connection registering as a1 takes over (the agent restarted). */
    f = register_frame("a1");
    agent_frame("a1-again", f.data, f.len);
    free(f.data);
    cr_assert(a1->connected);
    cr_assert_eq(zframe_size(a1->conn), strlen("a1-again"));
}

Test(decoder, truncated_api_requests)
{
    uint64_t id1, id2;
    populate(&id1, &id2);
    blob_t frames[8];
    size_t nf = valid_api_frames(frames);
    for (size_t f = 0; f < nf; f++) {
        for (size_t k = 0; k < frames[f].len; k++) {
            uint8_t *copy = xmalloc(k ? k : 1);
            memcpy(copy, frames[f].data, k);
            api_call(copy, k);
            free(copy);
        }
        free(frames[f].data);
    }
    expect_still_serving();
}

Test(decoder, mutated_and_random_api_requests)
{
    uint64_t id1, id2;
    populate(&id1, &id2);
    blob_t frames[8];
    size_t nf = valid_api_frames(frames);
    uint64_t state = 0xBADC0DE;
    for (int iter = 0; iter < 3000; iter++) {
        blob_t *src = &frames[h_rand(&state) % nf];
        uint8_t *copy = xmalloc(src->len);
        memcpy(copy, src->data, src->len);
        for (int i = 0; i < 3; i++)
            copy[h_rand(&state) % src->len] ^= (uint8_t)(1u << (h_rand(&state) % 8));
        api_call(copy, src->len);
        free(copy);
    }
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = (size_t)(h_rand(&state) % 400);
        uint8_t *b = xmalloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)h_rand(&state);
        api_call(b, len);
        free(b);
    }
    for (size_t f = 0; f < nf; f++)
        free(frames[f].data);
    expect_still_serving();
}

Test(decoder, undecodable_request_gets_an_error_reply)
{
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff};
    api_call(junk, sizeof junk);
    Drover__ApiResponse *resp = last_reply();
    cr_assert_neq(resp->error[0], '\0', "an undecodable request gets an error");
    cr_assert_str_eq(resp->run_id, "");
    drover__api_response__free_unpacked(resp, NULL);

    Drover__ApiRequest empty = DROVER__API_REQUEST__INIT; /* no op set */
    size_t len;
    uint8_t *b = pack_api(&empty, &len);
    api_call(b, len);
    free(b);
    resp = last_reply();
    cr_assert_neq(resp->error[0], '\0', "a request without an op gets an error");
    drover__api_response__free_unpacked(resp, NULL);

    b = pack_submit("name: x\nsteps: [\n", &len);
    api_call(b, len);
    free(b);
    resp = last_reply();
    cr_assert(strstr(resp->error, "fuzzed.yaml:") != NULL, "spec errors name the file: %s",
              resp->error);
    cr_assert_eq(s->dag.n_runs, 0, "nothing is stored for a bad spec");
    drover__api_response__free_unpacked(resp, NULL);
    drain_replies();
}

/* ------------------------------------------------------------ register */

static void send_register(const char *identity, const char *name, size_t n_labels, size_t key_len,
                          size_t value_len)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    Drover__KeyValue **kvs = xcalloc(n_labels ? n_labels : 1, sizeof *kvs);
    for (size_t i = 0; i < n_labels; i++) {
        char *k = xmalloc(key_len + 1), *v = xmalloc(value_len + 1);
        snprintf(k, key_len + 1, "k%0*zu", (int)(key_len > 1 ? key_len - 1 : 0), i);
        memset(v, 'v', value_len);
        v[value_len] = '\0';
        kvs[i] = xmalloc(sizeof **kvs);
        drover__key_value__init(kvs[i]);
        kvs[i]->key = k;
        kvs[i]->value = v;
    }
    cap.cpu_milli = 4000;
    reg.name = (char *)name;
    reg.capacity = &cap;
    reg.labels = kvs;
    reg.n_labels = n_labels;
    m.register_ = &reg;
    h_agent_send(s, identity, &m);
    util_free_kvs(kvs, n_labels);
}

/* The last reply went to connection identity and refused it, and no
 * agent of that name is in service. */
static void expect_refused(const char *identity)
{
    cr_assert_gt(s->out.n_peer_replies, 0, "registration of %s was not answered", identity);
    const peer_reply_t *p = &s->out.peer_replies[s->out.n_peer_replies - 1];
    cr_assert(zframe_streq(p->conn, identity), "the refusal went to another connection");
    cr_assert_not_null(p->refused, "registration of %s was not refused", identity);
    cr_assert_neq(p->refused[0], '\0');
    agent_t *a = fleet_find(&s->fleet, identity);
    cr_assert(!a || !a->connected, "refused agent %s is connected", identity);
    cr_assert(!a || !a->out.registered);
}

/* A task that any connected agent could take must not go to a refused one. */
static void expect_no_work_for(const char *identity)
{
    run_t *r = h_submit(s, "name: w\nsteps:\n  - {name: t, command: [true]}\n");
    placer_place(s);
    task_t *t = h_task(r, "t");
    cr_assert_eq(t->status, DROVER__TASK_STATUS__TASK_READY, "work went to %s after %s was refused",
                 t->agent ? t->agent->name : "?", identity);
}

Test(decoder, register_without_a_name_is_refused)
{
    send_register("node-3", "", 0, 0, 0);
    expect_refused("node-3");
    cr_assert_eq(zhashx_size(s->fleet.agents), 0);
}

Test(decoder, register_with_too_many_labels_is_refused)
{
    /* --max-labels (64) plus the two the agent adds itself (spot, gpu.model) */
    send_register("node-1", "node-1", 67, 4, 4);
    expect_refused("node-1");
    cr_assert_null(fleet_find(&s->fleet, "node-1"), "a refused agent was recorded");
    expect_no_work_for("node-1");
    send_register("node-2", "node-2", 66, 4, 4);
    agent_t *ok = fleet_find(&s->fleet, "node-2");
    cr_assert(ok && ok->connected, "66 labels refused");
    cr_assert_eq(ok->n_labels, 66);
}

Test(decoder, register_with_oversized_label_is_refused)
{
    /* docs/architecture.md ("Bounds"): every input from the network is bounded and validated.
     * Label keys are at most 63 bytes and values 255 elsewhere (util.h). */
    send_register("node-k", "node-k", 1, 100000, 4);
    expect_refused("node-k");
    send_register("node-v", "node-v", 1, 4, 1 << 20);
    expect_refused("node-v");
    expect_no_work_for("node-k");
}

Test(decoder, refused_reregistration_disconnects_the_agent)
{
    agent_t *a = h_register(s, "node-1", 4000, 0, 0, NULL);
    cr_assert(a->connected);
    outbound_batch(&s->out, a)->registered = false; /* the first reply was sent */
    send_register("node-1", "node-1", 67, 4, 4);
    expect_refused("node-1");
    expect_no_work_for("node-1");
}

Test(decoder, messages_before_registration_ask_to_register)
{
    uint64_t running[1] = {5};
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Heartbeat h = DROVER__HEARTBEAT__INIT;
    h.running = running;
    h.n_running = 1;
    m.heartbeat = &h;
    h_agent_send(s, "early", &m);
    cr_assert_null(fleet_find(&s->fleet, "early"),
                   "no agent record for a peer that never registered");
    cr_assert_eq(s->out.n_peer_replies, 1);
    cr_assert(zframe_streq(s->out.peer_replies[0].conn, "early"));
    cr_assert_null(s->out.peer_replies[0].refused, "the peer is told to register first");
    expect_no_work_for("early");
}

Test(decoder, huge_heartbeat_is_handled_promptly)
{
    /* One frame well under the 64 MiB frame limit listing 100k attempts
     * droverd does not know. Each must be killed once; handling the frame
     * must not stall the loop (the systemd watchdog, every other agent and
     * the API all wait on it). */
    enum { N = 100000 };
    h_register(s, "a1", 4000, 0, 0, NULL);
    uint64_t *ids = xcalloc(N, sizeof *ids);
    for (size_t i = 0; i < N; i++)
        ids[i] = 1000 + i;
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Heartbeat h = DROVER__HEARTBEAT__INIT;
    h.running = ids;
    h.n_running = N;
    m.heartbeat = &h;
    int64_t t0 = util_mono_ms();
    h_agent_send(s, "a1", &m);
    int64_t took = util_mono_ms() - t0;
    free(ids);
    agent_t *a = fleet_find(&s->fleet, "a1");
    cr_assert_eq(a->out.n_kills, N, "each unknown attempt is killed once");
    cr_assert(a->out.heartbeat_ack);
    cr_assert_lt(took, 1000, "a %d-attempt heartbeat blocked droverd for %ld ms", N, (long)took);
}

/* Issue 15, item 8: a refused submit carries every spec error, as lines
 * in error and as spec_errors {file, line, col, message}. */
Test(decoder, refused_submit_lists_every_spec_error)
{
    size_t len;
    uint8_t *b = pack_submit("name: p\n"
                             "steps:\n"
                             "  - name: a\n"
                             "    command: [x]\n"
                             "    timeout: 30\n"
                             "  - name: b\n"
                             "    command: [x]\n"
                             "    need: [a]\n",
                             &len);
    api_call(b, len);
    free(b);
    Drover__ApiResponse *resp = last_reply();
    cr_assert_eq(resp->error_code, DROVER__API_ERROR_CODE__API_ERROR_INVALID);
    cr_assert_str_eq(resp->error,
                     "fuzzed.yaml:5:14: duration '30' for timeout has no unit: write 30s (or 30m, "
                     "30h, 30ms); a bare number is not taken as seconds\n"
                     "fuzzed.yaml:8:5: unknown key 'need' in step 'b'; did you mean 'needs'?");
    cr_assert_eq(resp->n_spec_errors, 2);
    cr_assert_str_eq(resp->spec_errors[0]->file, "fuzzed.yaml");
    cr_assert_eq(resp->spec_errors[0]->line, 5);
    cr_assert_eq(resp->spec_errors[0]->col, 14);
    cr_assert(!strncmp(resp->spec_errors[0]->message, "duration '30' for timeout", 25));
    cr_assert_eq(resp->spec_errors[1]->line, 8);
    cr_assert_eq(resp->spec_errors[1]->col, 5);
    cr_assert_str_eq(resp->spec_errors[1]->message,
                     "unknown key 'need' in step 'b'; did you mean 'needs'?");
    cr_assert_eq(s->dag.n_runs, 0, "a refused spec was stored");
    drover__api_response__free_unpacked(resp, NULL);
}
