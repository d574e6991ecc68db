/* drover-simagent — many simulated drover agents in one process, for the
 * benchmarks in bench/ and their smoke test.
 *
 * On the wire each simulated agent is what drover-agent is: its own DEALER
 * socket whose routing id is its name, a Register with labels, capacity
 * and held attempts, a Heartbeat every --heartbeat listing running
 * attempts, an assign_ack for every assignment, and STARTED / EXITED
 * reports with per-agent sequence numbers that stay in an outbox until
 * droverd acks them (re-sent after 3 s, then after twice as long each time
 * up to 48 s, and all at once after a re-registration). It runs nothing: an assignment exits 0 at
 * once, in the same message as its ack and STARTED report, or after --task-time (like Nomad's mock
 * driver). So droverd's own cost per task can be measured without process spawns, and with
 * thousands of agents.
 *
 * Loop: one thread, one libev loop. zev's per-socket ev_prepare would cost
 * O(agents) per iteration, so instead each socket's ZMQ_FD gets an ev_io
 * that only puts the agent on a ready list. An ev_check services the list
 * (drain a bounded batch of frames, send one batched AgentMessage, then
 * re-check ZMQ_EVENTS, because ZMQ_FD is edge-triggered and a send can
 * swallow an edge) and an ev_idle keeps the loop from blocking while the
 * list is not empty. Heartbeats are staggered across the interval and sent
 * by one timer walking the agents in due order; timed attempts (--task-time,
 * optionally a uniform random duration up to --task-time-max, so that
 * completions do not come in waves) end from a binary heap ordered by due
 * time.
 *
 * Accounting: every attempt id and every (run, task) started is counted. A
 * task started under two attempt ids was run twice (droverd lost track of
 * it), which the recovery benchmark reports as a duplicate. Outages (an
 * agent told to re-register, or droverd silent) are timed: when droverd
 * registered an agent again and when the next new assignment came. SIGUSR1
 * sets a mark (the recovery benchmark sends it right after kill -9
 * droverd): the first registration after the latest mark, the first new
 * assignment after that registration, and the time every agent had
 * registered again are recorded too. --stats FILE receives a JSON summary every
 * 0.5 s, at exit and on SIGUSR1.
 */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zmq.h>

#include "drover.pb-c.h"
#include "idmap.h"
#include "log.h"
#include "units.h"
#include "util.h"

#define RESEND_MS       3000
#define BATCH_FRAMES    64
#define BATCH_REPORTS   1024
#define MAX_MESSAGE     (64 << 20)
#define HB_TICK_S       0.005
#define STATS_S         0.5
#define MAX_AGENTS      100000
#define MAX_OUTAGES     32
#define MAX_DUP_NAMES   20
#define PREFIX_MAX      48
#define SIM_VERSION_TAG "sim"

typedef struct sim sim_t;

/* One report waiting for droverd's ack. */
typedef struct {
    uint64_t seq, attempt_id;
    int64_t time_ms;
    int64_t sent_mono; /* 0: never sent */
    uint8_t sends;     /* the re-send back-off, as drover-agent's outbox */
    int32_t exit_code, term_signal;
    uint8_t kind;
    bool acked;
} pending_t;

typedef struct sim_agent sim_agent_t;
struct sim_agent {
    sim_t *sim;
    char name[64];
    char incarnation[33]; /* Register.incarnation: random, per simagent run */
    void *sock;
    ev_io io;
    sim_agent_t *ready_next;
    bool queued, registered, want_send;
    int64_t last_rx_mono, next_hb_mono;
    uint64_t next_seq;
    pending_t *out; /* in seq order; [out_head, out_n) may hold unacked */
    size_t out_head, out_n, out_cap, out_unacked;
    uint64_t *acks; /* assignment acks for the next message */
    size_t n_acks, cap_acks;
    idmap_t *running; /* attempt id → (void *)1 while a timed attempt runs */
};

typedef struct {
    int64_t due_mono;
    uint64_t attempt_id;
    uint32_t agent;
} timed_t;

typedef struct {
    int64_t down_ms, registered_ms, resumed_ms; /* wall clock; 0 = not yet */
} outage_t;

typedef struct {
    const char *scheduler, *prefix, *stats_path;
    uint32_t n_agents, cpu_milli, gpus, io_threads;
    uint64_t memory_bytes, heartbeat_ms, task_ms, task_max_ms, duration_ms, seed;
    Drover__KeyValue **labels;
    size_t n_labels;
} sim_config_t;

struct sim {
    sim_config_t cfg;
    void *ctx;
    struct ev_loop *loop;
    sim_agent_t *agents;
    size_t n_agents;
    sim_agent_t *ready_head, *ready_tail;
    ev_check service_w;
    ev_idle keepalive_w;
    ev_timer hb_w, finish_w, stats_w, stop_w;
    ev_signal sigint_w, sigterm_w, sigusr1_w;
    size_t hb_cursor;
    timed_t *heap; /* timed attempts, min-heap on due_mono */
    size_t heap_n, heap_cap;
    uint64_t rng;
    idmap_t *seen;        /* every attempt id ever started */
    idmap_t *task_starts; /* hash(run, task) → number of attempts started */
    uint8_t *buf;         /* packing scratch */
    size_t buf_cap;
    /* counters for --stats */
    uint64_t registrations, heartbeats, assignments, assign_resends, exits, kills;
    uint64_t reports_sent, reports_resent, reports_acked, msgs_in, msgs_out, send_failures;
    uint64_t tasks, duplicate_tasks, running_now, undecodable;
    size_t n_registered;
    bool all_registered_said;
    int64_t first_assign_ms, last_assign_ms, last_exit_ms;
    char *dup_names[MAX_DUP_NAMES];
    size_t n_dup_names;
    outage_t outages[MAX_OUTAGES];
    size_t n_outages;
    bool down;
    int64_t mark_ms, mark_registered_ms, mark_assign_ms; /* wall clock; 0 = none */
    int64_t mark_all_registered_ms;                      /* every agent registered again */
    uint64_t mark_running, mark_registrations;           /* at the mark; registrations since */
};

/* ------------------------------------------------------------ helpers */

static uint64_t task_key(const char *run_id, const char *task)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = run_id; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
    for (const char *p = task; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return h ? h : 1;
}

static void push_u64(uint64_t **list, size_t *n, size_t *cap, uint64_t v)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *list = xrealloc(*list, *cap * sizeof **list);
    }
    (*list)[(*n)++] = v;
}

static void enqueue(sim_agent_t *a)
{
    sim_t *s = a->sim;
    if (a->queued)
        return;
    a->queued = true;
    a->ready_next = NULL;
    if (s->ready_tail)
        s->ready_tail->ready_next = a;
    else
        s->ready_head = a;
    s->ready_tail = a;
    if (!ev_is_active(&s->keepalive_w))
        ev_idle_start(s->loop, &s->keepalive_w);
}

static bool sock_readable(void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) < 0)
        return false;
    return (events & ZMQ_POLLIN) != 0;
}

/* Note that agent a lost droverd (told to re-register, or silence). */
static void note_down(sim_t *s)
{
    if (s->down)
        return;
    s->down = true;
    if (s->n_outages == MAX_OUTAGES) {
        memmove(s->outages, s->outages + 1, (MAX_OUTAGES - 1) * sizeof *s->outages);
        s->n_outages--;
    }
    outage_t *o = &s->outages[s->n_outages++];
    memset(o, 0, sizeof *o);
    o->down_ms = util_now_ms();
}

static void set_registered(sim_agent_t *a, bool on)
{
    sim_t *s = a->sim;
    if (a->registered == on)
        return;
    a->registered = on;
    if (on)
        s->n_registered++;
    else
        s->n_registered--;
}

/* ------------------------------------------------------------ outbox */

static void outbox_add(sim_agent_t *a, uint64_t attempt_id, Drover__ReportKind kind,
                       int32_t exit_code, int32_t term_signal)
{
    if (a->out_n == a->out_cap) {
        if (a->out_head > 0) {
            /* Everything before out_head is acked: slide down. */
            memmove(a->out, a->out + a->out_head, (a->out_n - a->out_head) * sizeof *a->out);
            a->out_n -= a->out_head;
            a->out_head = 0;
        }
        if (a->out_n == a->out_cap) {
            a->out_cap = a->out_cap ? a->out_cap * 2 : 16;
            a->out = xrealloc(a->out, a->out_cap * sizeof *a->out);
        }
    }
    pending_t *p = &a->out[a->out_n++];
    memset(p, 0, sizeof *p);
    p->seq = ++a->next_seq;
    p->attempt_id = attempt_id;
    p->kind = (uint8_t)kind;
    p->time_ms = util_now_ms();
    p->exit_code = exit_code;
    p->term_signal = term_signal;
    a->out_unacked++;
    a->want_send = true;
}

static void outbox_ack(sim_agent_t *a, uint64_t seq)
{
    size_t lo = a->out_head, hi = a->out_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->out[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == a->out_n || a->out[lo].seq != seq || a->out[lo].acked)
        return;
    a->out[lo].acked = true;
    a->out_unacked--;
    a->sim->reports_acked++;
    while (a->out_head < a->out_n && a->out[a->out_head].acked)
        a->out_head++;
    if (a->out_head == a->out_n)
        a->out_head = a->out_n = 0;
}

/* ------------------------------------------------------------ sending */

static void send_agent_message(sim_agent_t *a, const Drover__AgentMessage *m)
{
    sim_t *s = a->sim;
    size_t n = drover__agent_message__get_packed_size(m);
    if (n > s->buf_cap) {
        s->buf_cap = n * 2;
        s->buf = xrealloc(s->buf, s->buf_cap);
    }
    drover__agent_message__pack(m, s->buf);
    if (zmq_send(a->sock, s->buf, n, ZMQ_DONTWAIT) < 0) {
        /* Not connected (ZMQ_IMMEDIATE) or queue full: the outbox and the
         * next heartbeat cover it, as in drover-agent. */
        s->send_failures++;
    } else {
        s->msgs_out++;
    }
    /* A send may consume the ZMQ_FD edge: look at the socket again. */
    enqueue(a);
}

typedef struct {
    uint64_t *ids;
    size_t n;
} id_list_t;

static void collect_running(uint64_t id, void *value, void *arg)
{
    id_list_t *l = arg;
    l->ids[l->n++] = id;
}

static void send_register(sim_agent_t *a)
{
    sim_t *s = a->sim;
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    cap.cpu_milli = s->cfg.cpu_milli;
    cap.memory_bytes = s->cfg.memory_bytes;
    cap.gpus = s->cfg.gpus;
    reg.name = a->name;
    reg.labels = s->cfg.labels;
    reg.n_labels = s->cfg.n_labels;
    reg.capacity = &cap;
    reg.version = DROVER_VERSION "-" SIM_VERSION_TAG;
    if (!a->incarnation[0])
        util_random_id(a->incarnation);
    reg.incarnation = a->incarnation;
    /* Held: running attempts, and finished ones whose EXITED is unacked. */
    id_list_t held = {xcalloc(idmap_size(a->running) + a->out_unacked + 1, sizeof(uint64_t)), 0};
    idmap_each(a->running, collect_running, &held);
    for (size_t i = a->out_head; i < a->out_n; i++)
        if (!a->out[i].acked && a->out[i].kind == DROVER__REPORT_KIND__REPORT_EXITED)
            held.ids[held.n++] = a->out[i].attempt_id;
    reg.attempts = held.ids;
    reg.n_attempts = held.n;
    m.register_ = &reg;
    send_agent_message(a, &m);
    free(held.ids);
}

static void send_heartbeat(sim_agent_t *a)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Heartbeat hb = DROVER__HEARTBEAT__INIT;
    id_list_t running = {xcalloc(idmap_size(a->running) + 1, sizeof(uint64_t)), 0};
    idmap_each(a->running, collect_running, &running);
    hb.running = running.ids;
    hb.n_running = running.n;
    m.heartbeat = &hb;
    a->sim->heartbeats++;
    send_agent_message(a, &m);
    free(running.ids);
}

/* Send the agent's assignment acks and due reports in one message. */
static void flush(sim_agent_t *a)
{
    sim_t *s = a->sim;
    if (!a->want_send)
        return;
    Drover__Report reps[BATCH_REPORTS];
    Drover__Report *ptrs[BATCH_REPORTS];
    size_t n = 0;
    bool more = false;
    int64_t now = util_mono_ms();
    /* Unregistered, droverd would drop reports: keep them for later. */
    if (a->registered) {
        for (size_t i = a->out_head; i < a->out_n; i++) {
            pending_t *p = &a->out[i];
            if (p->acked)
                continue;
            int64_t wait = (int64_t)RESEND_MS << (p->sends > 4 ? 4 : p->sends);
            if (p->sent_mono != 0 && now - p->sent_mono < wait)
                continue;
            if (n == BATCH_REPORTS) {
                more = true;
                break;
            }
            Drover__Report *r = &reps[n];
            drover__report__init(r);
            r->seq = p->seq;
            r->attempt_id = p->attempt_id;
            r->kind = (Drover__ReportKind)p->kind;
            r->time_ms = p->time_ms;
            r->exit_code = p->exit_code;
            r->term_signal = p->term_signal;
            if (p->term_signal)
                r->reason = "killed by droverd (simulated)";
            ptrs[n++] = r;
            if (p->sent_mono) {
                s->reports_resent++;
                p->sends++;
            }
            p->sent_mono = now;
        }
    }
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    m.assign_acks = a->acks;
    m.n_assign_acks = a->n_acks;
    m.reports = ptrs;
    m.n_reports = n;
    if (n || a->n_acks)
        send_agent_message(a, &m);
    s->reports_sent += n;
    a->n_acks = 0;
    a->want_send = more;
}

/* ------------------------------------------------------------ attempts */

static void heap_push(sim_t *s, timed_t t)
{
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 1024;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t i = s->heap_n++;
    while (i > 0 && s->heap[(i - 1) / 2].due_mono > t.due_mono) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = t;
}

static timed_t heap_pop(sim_t *s)
{
    timed_t top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_n)
            break;
        if (c + 1 < s->heap_n && s->heap[c + 1].due_mono < s->heap[c].due_mono)
            c++;
        if (s->heap[c].due_mono >= last.due_mono)
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_n)
        s->heap[i] = last;
    return top;
}

/* How long the next attempt runs: task_ms, or uniform up to task_max_ms. */
static int64_t task_duration(sim_t *s)
{
    uint64_t lo = s->cfg.task_ms, hi = s->cfg.task_max_ms;
    if (hi <= lo)
        return (int64_t)lo;
    s->rng ^= s->rng << 13; /* xorshift64 */
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (int64_t)(lo + s->rng % (hi - lo + 1));
}

/* Re-arm the finish timer for the earliest due attempt. */
static void arm_finish(sim_t *s)
{
    ev_timer_stop(s->loop, &s->finish_w);
    if (s->heap_n == 0)
        return;
    int64_t wait = s->heap[0].due_mono - util_mono_ms();
    ev_timer_set(&s->finish_w, wait > 0 ? (double)wait / 1000.0 : 0., 0.);
    ev_timer_start(s->loop, &s->finish_w);
}

static void finish_attempt(sim_agent_t *a, uint64_t attempt_id, int32_t term_signal)
{
    sim_t *s = a->sim;
    outbox_add(a, attempt_id, DROVER__REPORT_KIND__REPORT_EXITED, 0, term_signal);
    s->exits++;
    s->last_exit_ms = util_now_ms();
}

static void count_task(sim_t *s, const char *run_id, const char *task)
{
    uint64_t key = task_key(run_id, task);
    uintptr_t n = (uintptr_t)idmap_get(s->task_starts, key);
    idmap_put(s->task_starts, key, (void *)(n + 1));
    if (n == 0) {
        s->tasks++;
    } else if (n == 1) {
        s->duplicate_tasks++;
        if (s->n_dup_names < MAX_DUP_NAMES)
            s->dup_names[s->n_dup_names++] = xasprintf("%s/%s", run_id, task);
    }
}

static void start_attempt(sim_agent_t *a, const Drover__Assignment *as)
{
    sim_t *s = a->sim;
    int64_t now_ms = util_now_ms();
    idmap_put(s->seen, as->attempt_id, (void *)1);
    count_task(s, as->run_id ? as->run_id : "", as->task ? as->task : "");
    s->assignments++;
    if (!s->first_assign_ms)
        s->first_assign_ms = now_ms;
    s->last_assign_ms = now_ms;
    if (s->down) {
        s->down = false;
        s->outages[s->n_outages - 1].resumed_ms = now_ms;
    }
    /* Only a droverd that registered an agent after the mark counts: the
     * pipes may still hold assignments a killed one sent before dying. */
    if (s->mark_ms && s->mark_registered_ms && !s->mark_assign_ms)
        s->mark_assign_ms = now_ms;
    outbox_add(a, as->attempt_id, DROVER__REPORT_KIND__REPORT_STARTED, 0, 0);
    if (s->cfg.task_ms == 0 && s->cfg.task_max_ms == 0) {
        finish_attempt(a, as->attempt_id, 0);
        return;
    }
    idmap_put(a->running, as->attempt_id, (void *)1);
    s->running_now++;
    timed_t t = {.due_mono = util_mono_ms() + task_duration(s),
                 .attempt_id = as->attempt_id,
                 .agent = (uint32_t)(a - s->agents)};
    bool earliest = s->heap_n == 0 || t.due_mono < s->heap[0].due_mono;
    heap_push(s, t);
    if (earliest)
        arm_finish(s);
}

static void on_finish_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    sim_t *s = w->data;
    int64_t now = util_mono_ms();
    while (s->heap_n > 0 && s->heap[0].due_mono <= now) {
        timed_t t = heap_pop(s);
        sim_agent_t *a = &s->agents[t.agent];
        if (idmap_del(a->running, t.attempt_id)) { /* not killed meanwhile */
            s->running_now--;
            finish_attempt(a, t.attempt_id, 0);
            enqueue(a);
        }
    }
    arm_finish(s);
}

/* ------------------------------------------------------------ receiving */

static void handle_message(sim_agent_t *a, const Drover__SchedulerMessage *m)
{
    sim_t *s = a->sim;
    a->last_rx_mono = util_mono_ms();
    if (m->refused && *m->refused) {
        log_error("agent %s: droverd refused registration: %s", a->name, m->refused);
        set_registered(a, false);
        return;
    }
    if (m->reregister) {
        if (a->registered) {
            set_registered(a, false);
            note_down(s);
        }
        send_register(a);
    }
    if (m->registered && !a->registered) {
        set_registered(a, true);
        /* Send every unacked report again, as drover-agent does. */
        for (size_t i = a->out_head; i < a->out_n; i++) {
            a->out[i].sent_mono = 0;
            a->out[i].sends = 0;
        }
        a->want_send = true;
        s->registrations++;
        if (s->n_outages && !s->outages[s->n_outages - 1].registered_ms)
            s->outages[s->n_outages - 1].registered_ms = util_now_ms();
        if (s->mark_ms && !s->mark_registered_ms)
            s->mark_registered_ms = util_now_ms();
        if (s->mark_ms && ++s->mark_registrations == s->n_agents)
            s->mark_all_registered_ms = util_now_ms();
        if (!s->all_registered_said && s->n_registered == s->n_agents) {
            s->all_registered_said = true;
            printf("drover-simagent: all %zu agents registered\n", s->n_agents);
            fflush(stdout);
        }
    }
    for (size_t i = 0; i < m->n_acks; i++)
        outbox_ack(a, m->acks[i]);
    for (size_t i = 0; i < m->n_assigns; i++) {
        const Drover__Assignment *as = m->assigns[i];
        push_u64(&a->acks, &a->n_acks, &a->cap_acks, as->attempt_id);
        a->want_send = true;
        if (as->attempt_id == 0 || idmap_get(s->seen, as->attempt_id)) {
            s->assign_resends++; /* a re-send: already running or done */
            continue;
        }
        start_attempt(a, as);
    }
    for (size_t i = 0; i < m->n_kills; i++) {
        if (idmap_del(a->running, m->kills[i])) {
            s->kills++;
            s->running_now--;
            finish_attempt(a, m->kills[i], SIGTERM);
        }
    }
}

/* Drain a bounded batch of frames, then send what they caused. */
static void service(sim_agent_t *a)
{
    sim_t *s = a->sim;
    for (int i = 0; i < BATCH_FRAMES; i++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, a->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        s->msgs_in++;
        Drover__SchedulerMessage *m =
            zmq_msg_more(&msg)
                ? NULL
                : drover__scheduler_message__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
        if (m) {
            handle_message(a, m);
            drover__scheduler_message__free_unpacked(m, NULL);
        } else {
            s->undecodable++;
            log_warn("agent %s: undecodable message of %zu bytes dropped", a->name,
                     zmq_msg_size(&msg));
        }
        zmq_msg_close(&msg);
    }
    flush(a);
    if (a->want_send || sock_readable(a->sock))
        enqueue(a);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    enqueue(w->data);
}

static void on_service(struct ev_loop *loop, ev_check *w, int revents)
{
    sim_t *s = w->data;
    /* One pass over what is queued now; agents queued again during the
     * pass wait for the next iteration, so sockets are served fairly. */
    sim_agent_t *list = s->ready_head;
    s->ready_head = s->ready_tail = NULL;
    while (list) {
        sim_agent_t *a = list;
        list = a->ready_next;
        a->queued = false;
        a->ready_next = NULL;
        service(a);
    }
    if (!s->ready_head)
        ev_idle_stop(loop, &s->keepalive_w);
}

static void on_keepalive(struct ev_loop *loop, ev_idle *w, int revents)
{
    /* Only here so the loop polls without blocking; on_service works. */
}

/* ------------------------------------------------------------ timers */

static void heartbeat(sim_agent_t *a, int64_t now)
{
    int64_t limit = (int64_t)a->sim->cfg.heartbeat_ms * 5;
    if (limit < 3000)
        limit = 3000;
    if (a->registered && now - a->last_rx_mono > limit) {
        log_warn("agent %s: no word from droverd for %" PRId64 " ms: registering again", a->name,
                 now - a->last_rx_mono);
        set_registered(a, false);
        note_down(a->sim);
    }
    if (a->registered) {
        send_heartbeat(a);
        if (a->out_unacked)
            a->want_send = true; /* re-send due reports */
    } else {
        send_register(a);
    }
}

static void on_heartbeat_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    sim_t *s = w->data;
    int64_t now = util_mono_ms();
    /* All agents share one interval, so due times stay in cursor order. */
    for (size_t i = 0; i < s->n_agents; i++) {
        sim_agent_t *a = &s->agents[s->hb_cursor];
        if (a->next_hb_mono > now)
            break;
        a->next_hb_mono += (int64_t)s->cfg.heartbeat_ms;
        heartbeat(a, now);
        s->hb_cursor = (s->hb_cursor + 1) % s->n_agents;
    }
}

static void write_stats(sim_t *s)
{
    if (!s->cfg.stats_path)
        return;
    char *tmp = xasprintf("%s.tmp", s->cfg.stats_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_error("fopen(%s): %s", tmp, strerror(errno));
        free(tmp);
        return;
    }
    uint64_t unacked = 0;
    for (size_t i = 0; i < s->n_agents; i++)
        unacked += s->agents[i].out_unacked;
    fprintf(f,
            "{\"time_ms\":%" PRId64 ",\"agents\":%zu,\"registered\":%zu,"
            "\"registrations\":%" PRIu64 ",\"heartbeats\":%" PRIu64 ",\"assignments\":%" PRIu64
            ",\"assign_resends\":%" PRIu64 ",\"exits\":%" PRIu64 ",\"kills\":%" PRIu64
            ",\"running\":%" PRIu64 ",\"reports_sent\":%" PRIu64 ",\"reports_resent\":%" PRIu64
            ",\"reports_acked\":%" PRIu64 ",\"unacked\":%" PRIu64 ",\"messages_in\":%" PRIu64
            ",\"messages_out\":%" PRIu64 ",\"send_failures\":%" PRIu64 ",\"undecodable\":%" PRIu64
            ",\"tasks\":%" PRIu64 ",\"duplicate_tasks\":%" PRIu64 ",\"first_assign_ms\":%" PRId64
            ",\"last_assign_ms\":%" PRId64 ",\"last_exit_ms\":%" PRId64 ",\"mark_ms\":%" PRId64
            ",\"mark_registered_ms\":%" PRId64 ",\"mark_assign_ms\":%" PRId64
            ",\"mark_running\":%" PRIu64 ",\"mark_all_registered_ms\":%" PRId64 ",\"duplicates\":[",
            util_now_ms(), s->n_agents, s->n_registered, s->registrations, s->heartbeats,
            s->assignments, s->assign_resends, s->exits, s->kills, s->running_now, s->reports_sent,
            s->reports_resent, s->reports_acked, unacked, s->msgs_in, s->msgs_out, s->send_failures,
            s->undecodable, s->tasks, s->duplicate_tasks, s->first_assign_ms, s->last_assign_ms,
            s->last_exit_ms, s->mark_ms, s->mark_registered_ms, s->mark_assign_ms, s->mark_running,
            s->mark_all_registered_ms);
    /* Run ids and step names are [A-Za-z0-9_.-]: no JSON escaping needed. */
    for (size_t i = 0; i < s->n_dup_names; i++)
        fprintf(f, "%s\"%s\"", i ? "," : "", s->dup_names[i]);
    fprintf(f, "],\"outages\":[");
    for (size_t i = 0; i < s->n_outages; i++)
        fprintf(f,
                "%s{\"down_ms\":%" PRId64 ",\"registered_ms\":%" PRId64 ",\"resumed_ms\":%" PRId64
                "}",
                i ? "," : "", s->outages[i].down_ms, s->outages[i].registered_ms,
                s->outages[i].resumed_ms);
    fprintf(f, "]}\n");
    if (fclose(f) != 0 || rename(tmp, s->cfg.stats_path) < 0)
        log_error("writing %s: %s", s->cfg.stats_path, strerror(errno));
    free(tmp);
}

static void on_stats(struct ev_loop *loop, ev_timer *w, int revents)
{
    write_stats(w->data);
}

static void on_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void on_mark(struct ev_loop *loop, ev_signal *w, int revents)
{
    sim_t *s = w->data;
    s->mark_ms = util_now_ms();
    s->mark_registered_ms = s->mark_assign_ms = s->mark_all_registered_ms = 0;
    s->mark_running = s->running_now;
    s->mark_registrations = 0;
    write_stats(s);
}

/* ------------------------------------------------------------ setup */

static int raise_fd_limit(size_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_error("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return -errno;
    }
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        log_error("need %zu file descriptors, the hard limit is %llu (ulimit -Hn)", need,
                  (unsigned long long)rl.rlim_max);
        return -EMFILE;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_error("setrlimit(RLIMIT_NOFILE, %zu): %s", need, strerror(errno));
        return -errno;
    }
    return 0;
}

static int agent_open(sim_t *s, sim_agent_t *a, size_t index)
{
    int one = 1, zero = 0, hwm = 10000, ivl = 100, ivl_max = 1000;
    int64_t maxmsg = MAX_MESSAGE;
    int fd;
    size_t fdlen = sizeof fd;
    a->sim = s;
    snprintf(a->name, sizeof a->name, "%s-%05zu", s->cfg.prefix, index + 1);
    a->running = idmap_new();
    a->sock = zmq_socket(s->ctx, ZMQ_DEALER);
    if (!a->running || !a->sock) {
        log_error("zmq_socket(ZMQ_DEALER) for agent %zu: %s", index + 1, zmq_strerror(zmq_errno()));
        return -ENOMEM;
    }
    if (zmq_setsockopt(a->sock, ZMQ_IMMEDIATE, &one, sizeof one) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) < 0) {
        log_error("zmq_setsockopt: %s", zmq_strerror(zmq_errno()));
        return -EINVAL;
    }
    if (zmq_connect(a->sock, s->cfg.scheduler) < 0) {
        log_error("zmq_connect(%s): %s", s->cfg.scheduler, zmq_strerror(zmq_errno()));
        return -EINVAL;
    }
    if (zmq_getsockopt(a->sock, ZMQ_FD, &fd, &fdlen) < 0) {
        log_error("zmq_getsockopt(ZMQ_FD): %s", zmq_strerror(zmq_errno()));
        return -EINVAL;
    }
    ev_io_init(&a->io, on_io, fd, EV_READ);
    a->io.data = a;
    ev_io_start(s->loop, &a->io);
    int64_t now = util_mono_ms();
    a->last_rx_mono = now;
    /* Stagger first heartbeats (registrations) across one interval. */
    a->next_hb_mono = now + (int64_t)(s->cfg.heartbeat_ms * index / s->n_agents);
    return 0;
}

/* Free everything; accepts NULL and NULLs the pointer. */
static void sim_destroy(sim_t **sp)
{
    if (!sp || !*sp)
        return;
    sim_t *s = *sp;
    for (size_t i = 0; s->agents && i < s->n_agents; i++) {
        sim_agent_t *a = &s->agents[i];
        if (s->loop && a->sim)
            ev_io_stop(s->loop, &a->io);
        if (a->sock)
            zmq_close(a->sock);
        idmap_destroy(&a->running);
        free(a->out);
        free(a->acks);
    }
    if (s->loop) {
        ev_check_stop(s->loop, &s->service_w);
        ev_idle_stop(s->loop, &s->keepalive_w);
        ev_timer_stop(s->loop, &s->hb_w);
        ev_timer_stop(s->loop, &s->finish_w);
        ev_timer_stop(s->loop, &s->stats_w);
        ev_timer_stop(s->loop, &s->stop_w);
        ev_signal_stop(s->loop, &s->sigint_w);
        ev_signal_stop(s->loop, &s->sigterm_w);
        ev_signal_stop(s->loop, &s->sigusr1_w);
    }
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    free(s->agents);
    idmap_destroy(&s->seen);
    idmap_destroy(&s->task_starts);
    for (size_t i = 0; i < s->n_dup_names; i++)
        free(s->dup_names[i]);
    free(s->heap);
    free(s->buf);
    free(s);
    *sp = NULL;
}

/* A simulator for cfg (not copied: cfg's strings must outlive it), its
 * agents connecting to cfg->scheduler; NULL on failure (logged). */
static sim_t *sim_new(const sim_config_t *cfg)
{
    sim_t *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->n_agents = cfg->n_agents;
    s->seen = idmap_new();
    s->task_starts = idmap_new();
    if (!s->seen || !s->task_starts)
        goto fail;
    if (raise_fd_limit(s->n_agents * 2 + 256) < 0)
        goto fail;
    s->ctx = zmq_ctx_new();
    if (!s->ctx) {
        log_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_ctx_set(s->ctx, ZMQ_IO_THREADS, (int)cfg->io_threads) < 0 ||
        zmq_ctx_set(s->ctx, ZMQ_MAX_SOCKETS, (int)s->n_agents + 16) < 0) {
        log_error("zmq_ctx_set: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    s->loop = EV_DEFAULT;
    s->agents = xcalloc(s->n_agents, sizeof *s->agents);
    for (size_t i = 0; i < s->n_agents; i++)
        if (agent_open(s, &s->agents[i], i) < 0)
            goto fail;
    ev_check_init(&s->service_w, on_service);
    s->service_w.data = s;
    ev_check_start(s->loop, &s->service_w);
    ev_idle_init(&s->keepalive_w, on_keepalive);
    s->keepalive_w.data = s;
    ev_timer_init(&s->hb_w, on_heartbeat_tick, 0., HB_TICK_S);
    s->hb_w.data = s;
    ev_timer_start(s->loop, &s->hb_w);
    ev_timer_init(&s->finish_w, on_finish_timer, 0., 0.);
    s->finish_w.data = s;
    ev_timer_init(&s->stats_w, on_stats, STATS_S, STATS_S);
    s->stats_w.data = s;
    if (cfg->stats_path)
        ev_timer_start(s->loop, &s->stats_w);
    ev_timer_init(&s->stop_w, on_stop, (double)cfg->duration_ms / 1000.0, 0.);
    s->stop_w.data = s;
    if (cfg->duration_ms)
        ev_timer_start(s->loop, &s->stop_w);
    ev_signal_init(&s->sigint_w, on_signal, SIGINT);
    ev_signal_init(&s->sigterm_w, on_signal, SIGTERM);
    s->sigint_w.data = s->sigterm_w.data = s;
    ev_signal_start(s->loop, &s->sigint_w);
    ev_signal_start(s->loop, &s->sigterm_w);
    ev_signal_init(&s->sigusr1_w, on_mark, SIGUSR1);
    s->sigusr1_w.data = s;
    ev_signal_start(s->loop, &s->sigusr1_w);
    s->rng = cfg->seed ? cfg->seed : 1;
    signal(SIGPIPE, SIG_IGN);
    return s;
fail:
    sim_destroy(&s);
    return NULL;
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f, "usage: drover-simagent [options]\n"
               "Simulated drover agents: each speaks the agents protocol over its own socket\n"
               "and completes every assignment with exit 0 (at once, or after --task-time).\n"
               "  --scheduler ENDPOINT   droverd's agents endpoint [tcp://127.0.0.1:7070]\n"
               "  --agents N             number of simulated agents [1]\n"
               "  --prefix NAME          agent names are NAME-00001, NAME-00002, ... [sim]\n"
               "  --cpus N               cpus each agent offers (e.g. 64, 0.5) [64]\n"
               "  --memory QTY           memory each agent offers [64Gi]\n"
               "  --gpus N               GPUs each agent offers [0]\n"
               "  --labels k=v,...       labels of every agent\n"
               "  --heartbeat DUR        heartbeat interval [1s]\n"
               "  --task-time DUR        how long each attempt \"runs\" [0: exits at once]\n"
               "  --task-time-max DUR    run a uniform random time from --task-time to this\n"
               "  --seed N               random seed for --task-time-max [1]\n"
               "  --stats FILE           JSON counters, rewritten every 0.5 s, at exit and on\n"
               "                         SIGUSR1 (which also sets the mark: see simagent.c)\n"
               "  --duration DUR         exit after this long [run until SIGINT/SIGTERM]\n"
               "  --io-threads N         ZeroMQ I/O threads [1]\n"
               "  --debug                verbose logging\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"scheduler", required_argument, 0, 0},
                                             {"agents", required_argument, 0, 0},
                                             {"prefix", required_argument, 0, 0},
                                             {"cpus", required_argument, 0, 0},
                                             {"memory", required_argument, 0, 0},
                                             {"gpus", required_argument, 0, 0},
                                             {"labels", required_argument, 0, 0},
                                             {"heartbeat", required_argument, 0, 0},
                                             {"task-time", required_argument, 0, 0},
                                             {"task-time-max", required_argument, 0, 0},
                                             {"seed", required_argument, 0, 0},
                                             {"stats", required_argument, 0, 0},
                                             {"duration", required_argument, 0, 0},
                                             {"io-threads", required_argument, 0, 0},
                                             {"debug", no_argument, 0, 0},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    sim_config_t cfg = {.scheduler = "tcp://127.0.0.1:7070",
                        .prefix = "sim",
                        .n_agents = 1,
                        .cpu_milli = 64000,
                        .memory_bytes = 64ull << 30,
                        .io_threads = 1,
                        .heartbeat_ms = 1000};
    int idx, c, rc = 2;
    log_init("drover-simagent");
    while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            rc = 0;
            goto cleanup;
        }
        if (c != 0) {
            usage(stderr);
            goto cleanup;
        }
        const char *name = longopts[idx].name, *v = optarg;
        char *end = NULL;
        int bad = 0;
        if (!strcmp(name, "scheduler")) {
            cfg.scheduler = v;
        } else if (!strcmp(name, "agents")) {
            unsigned long n = strtoul(v, &end, 10);
            bad = *v == '\0' || *end || n == 0 || n > MAX_AGENTS;
            cfg.n_agents = (uint32_t)n;
        } else if (!strcmp(name, "prefix")) {
            bad = !util_valid_name(v, strlen(v), PREFIX_MAX, NULL);
            cfg.prefix = v;
        } else if (!strcmp(name, "cpus")) {
            bad = spec_parse_cpu(v, &cfg.cpu_milli) < 0;
        } else if (!strcmp(name, "memory")) {
            bad = spec_parse_memory(v, &cfg.memory_bytes) < 0;
        } else if (!strcmp(name, "gpus")) {
            unsigned long n = strtoul(v, &end, 10);
            bad = *v == '\0' || *end || n > 64;
            cfg.gpus = (uint32_t)n;
        } else if (!strcmp(name, "labels")) {
            util_free_kvs(cfg.labels, cfg.n_labels);
            bad = util_parse_kv_list(v, &cfg.labels, &cfg.n_labels) < 0;
        } else if (!strcmp(name, "heartbeat")) {
            bad = spec_parse_duration(v, &cfg.heartbeat_ms) < 0 || cfg.heartbeat_ms == 0;
        } else if (!strcmp(name, "task-time")) {
            bad = spec_parse_duration(v, &cfg.task_ms) < 0;
        } else if (!strcmp(name, "task-time-max")) {
            bad = spec_parse_duration(v, &cfg.task_max_ms) < 0;
        } else if (!strcmp(name, "seed")) {
            cfg.seed = strtoull(v, &end, 10);
            bad = *v == '\0' || *end;
        } else if (!strcmp(name, "stats")) {
            cfg.stats_path = v;
        } else if (!strcmp(name, "duration")) {
            bad = spec_parse_duration(v, &cfg.duration_ms) < 0;
        } else if (!strcmp(name, "io-threads")) {
            unsigned long n = strtoul(v, &end, 10);
            bad = *v == '\0' || *end || n == 0 || n > 16;
            cfg.io_threads = (uint32_t)n;
        } else if (!strcmp(name, "debug")) {
            log_set_debug(1);
        }
        if (bad) {
            log_error("bad value '%s' for --%s", v, name);
            goto cleanup;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument '%s'", argv[optind]);
        usage(stderr);
        goto cleanup;
    }
    sim_t *s = sim_new(&cfg);
    rc = 1;
    if (s) {
        log_info("%zu simulated agents (%s-00001...) → %s: cpu %.1f, task time %" PRIu64 " ms",
                 s->n_agents, cfg.prefix, cfg.scheduler, cfg.cpu_milli / 1000.0, cfg.task_ms);
        ev_run(s->loop, 0);
        write_stats(s);
        log_info("stopping: %" PRIu64 " attempts started, %" PRIu64 " exits, %" PRIu64
                 " duplicate tasks",
                 s->assignments, s->exits, s->duplicate_tasks);
        sim_destroy(&s);
        rc = 0;
    }
cleanup:
    util_free_kvs(cfg.labels, cfg.n_labels);
    return rc;
}
