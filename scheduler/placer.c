/* placer — matches READY tasks to agents.
 *
 * A task fits an agent that is connected, not drained, not being reclaimed
 * (a preemption notice), not the node it was last preempted on or hit a
 * system error on (unless no other agent in service could ever take it:
 * then that avoidance is dropped rather than keep it waiting), can run
 * images if the step has one, carries every label the step's placement
 * asks for, and has the cpu, memory and GPUs free (capacity minus what the
 * scheduler itself has bound there, so placement never waits on a
 * heartbeat). Fitting agents are ranked by the step's spot policy (spot
 * first, on-demand first, spot only, or no preference; after
 * fallback_after preemptions, on-demand only while the fleet has any), and
 * nodes at risk (a rebalance notice) come last; within a rank the one
 * with the most free cpu wins, which spreads work. The ready queue is
 * walked in FIFO order; a task that fits nowhere stays queued and the walk
 * goes on, up to a bound per pass so a long blocked queue costs little,
 * except a task no agent in service could ever hold: that one is parked
 * off the queue until the fleet changes ("waiting reasons" below), so a
 * backlog of such tasks costs nothing. Agents are found through an index
 * (below), not a scan per task; a pass assigns at most
 * PLACER_MAX_PER_PASS tasks. Why each READY task waits is worked out when
 * it is shown (placer_why), never stored.
 */
#include "sched_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

#define PLACER_MAX_MISSES 1024
/* How a READY task's reason starts (placer_why). */
#define WAIT_PREFIX "waiting: "
/* Assignments per pass: a backlog of a million READY tasks goes out in
 * batches, each its own commit, so no transaction, batch of messages or
 * loop iteration grows with the backlog. */
#define PLACER_MAX_PER_PASS 8192
/* Flow control: an agent gets no new assignment while this many are on
 * the way to it, unacknowledged, so a slow agent (or one flooded by a
 * huge fan-out) is not buried in messages it cannot read yet. */
#define PLACER_MAX_UNACKED 64

static const char *label_of(const agent_t *a, const char *key)
{
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i]->key, key) == 0)
            return a->labels[i]->value;
    return NULL;
}

/* Whether a may take any task now (placer_fits for any task). */
static bool placeable(const agent_t *a)
{
    return a->connected && !a->drained && !a->terminating && a->unacked < PLACER_MAX_UNACKED;
}

bool placer_suits(const agent_t *a, const task_t *t)
{
    if (t->step->spot == DROVER__SPOT_POLICY__SPOT_REQUIRE && !a->spot)
        return false;
    if (t->step->image && *t->step->image && !a->images)
        return false; /* a container step needs an agent with a container runtime */
    for (size_t i = 0; i < t->step->n_labels; i++) {
        const char *have = label_of(a, t->step->labels[i]->key);
        if (!have || strcmp(have, t->step->labels[i]->value) != 0)
            return false;
    }
    return true;
}

bool placer_fits(const agent_t *a, const task_t *t)
{
    const Drover__Resources *want = t->step->resources;
    if (!placeable(a))
        return false;
    if (t->avoid_agent && strcmp(t->avoid_agent, a->name) == 0)
        return false;
    if (want) {
        if ((uint64_t)a->used.cpu_milli + want->cpu_milli > a->capacity.cpu_milli)
            return false;
        if (want->memory_bytes &&
            a->used.memory_bytes + want->memory_bytes > a->capacity.memory_bytes)
            return false;
        if ((uint64_t)a->used.gpus + want->gpus > a->capacity.gpus)
            return false;
    }
    return placer_suits(a, t);
}

/* Whether an agent in service other than the one t avoids could ever take
 * t (it suits, and has the capacity once free). Only for a task that found
 * no agent: the first such agent ends the walk, usually at once. */
static bool another_could_run(sched_t *s, const task_t *t)
{
    const Drover__Resources *want = t->step->resources;
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (!a->connected || a->drained || a->terminating || strcmp(a->name, t->avoid_agent) == 0 ||
            !placer_suits(a, t))
            continue;
        if (want && (want->cpu_milli > a->capacity.cpu_milli ||
                     (want->memory_bytes && want->memory_bytes > a->capacity.memory_bytes) ||
                     want->gpus > a->capacity.gpus))
            continue;
        return true;
    }
    return false;
}

void placer_send_assignment(sched_t *s, task_t *t)
{
    Drover__AttemptRecord *at = dag_current_attempt(t);
    dag_prepare(s, t); /* after a restart the expansion is redone */
    Drover__Assignment *m = xmalloc(sizeof *m);
    drover__assignment__init(m);
    /* Strings point into the run and task, which outlive the send. */
    m->attempt_id = at->id;
    m->run_id = t->run->rec->id;
    m->task = t->name;
    m->attempt = at->number;
    m->timeout_ms = t->step->timeout_ms;
    m->resources = t->step->resources;
    m->n_out_artifacts = t->step->n_out_artifacts;
    m->out_artifacts = t->step->out_artifacts;
    m->n_out_params = t->step->n_out_params;
    m->out_params = t->step->out_params;
    m->image = t->step->image;
    m->checkpoint = t->step->checkpoint;
    m->checkpoint_min_interval_ms = t->step->checkpoint_min_interval_ms;
    m->preempt_signal = t->step->preempt_signal;
    m->preempt_grace_ms = t->step->preempt_grace_ms;
    m->capture_result = t->step->capture_result;
    const Drover__Checkpoint *ck = dag_latest_checkpoint(t);
    if (ck) { /* a shallow copy: its artifact stays the task's */
        m->resume_from = xmalloc(sizeof *m->resume_from);
        *m->resume_from = *ck;
    }
    /* argv and env are this task's expansions (copied: the task frees its
     * own when it ends, possibly before a re-send). */
    m->n_argv = t->argc;
    m->argv = xcalloc(t->argc, sizeof *m->argv);
    for (size_t i = 0; i < t->argc; i++)
        m->argv[i] = xstrdup(t->argv[i]);
    m->n_env = t->n_env;
    m->env = xcalloc(t->n_env, sizeof *m->env);
    for (size_t i = 0; i < t->n_env; i++)
        m->env[i] = util_kv_new(t->env[i]->key, t->env[i]->value);
    m->inputs = xcalloc(t->step->n_inputs, sizeof *m->inputs);
    for (size_t i = 0; i < t->step->n_inputs; i++) {
        const Drover__Artifact *art = flow_input_artifact(t, t->step->inputs[i]);
        if (!art)
            continue; /* cannot happen: inputs come from succeeded ancestors */
        Drover__InputArtifact *in = xmalloc(sizeof *in);
        drover__input_artifact__init(in);
        in->local = xstrdup(t->step->inputs[i]->local);
        in->artifact = (Drover__Artifact *)art;
        m->inputs[m->n_inputs++] = in;
    }
    outbound_assign(&s->out, t->agent, m);
    t->assign_sent_mono = util_mono_ms();
}

/* Start a new attempt of t on a. */
static void assign(sched_t *s, agent_t *a, task_t *t)
{
    Drover__AttemptRecord *at = xmalloc(sizeof *at);
    drover__attempt_record__init(at);
    at->id = ++s->dag.next_attempt;
    journal_mark_counters(&s->journal);
    at->number = (uint32_t)t->n_attempts + 1;
    at->agent = journal_intern(&s->journal, a->name);
    at->agent_incarnation = a->incarnation ? a->incarnation : (char *)protobuf_c_empty_string;
    at->status = DROVER__TASK_STATUS__TASK_ASSIGNED;
    at->spot = a->spot;
    at->price = a->price;
    const Drover__Checkpoint *ck = dag_latest_checkpoint(t);
    at->resumed = ck != NULL;
    at->resumed_step = ck ? ck->step : 0;
    t->progress = -1;
    dag_add_attempt(t, at);
    if (t->reason && strncmp(t->reason, WAIT_PREFIX, strlen(WAIT_PREFIX)) == 0) {
        free(t->reason); /* it waits no longer (marked below) */
        t->reason = NULL;
    }
    task_set_status(t, DROVER__TASK_STATUS__TASK_ASSIGNED);
    t->assign_acked = false;
    t->resends = 0;
    dag_ready_remove(s, t);
    idmap_put(s->dag.attempts, at->id, t);
    fleet_bind_task(a, t);
    placer_send_assignment(s, t);
    journal_mark_task(&s->journal, t);
    log_debug("assign %s/%s attempt %u (id %" PRIu64 ") to %s", t->run->rec->id, t->name,
              at->number, at->id, a->name);
}

/* Whether t was preempted often enough (fallback_after) to go to
 * on-demand agents only; never for spot: require, which never runs on
 * on-demand (the fallback does not apply to it). ondemand_fleet: whether
 * any on-demand agent is in service. */
static bool fallback_on(const task_t *t, bool ondemand_fleet)
{
    return t->step->fallback_after && t->preemptions >= t->step->fallback_after && ondemand_fleet &&
           t->step->spot != DROVER__SPOT_POLICY__SPOT_REQUIRE;
}

/* How much t would rather not run on a (0 best), or -1 if it must not:
 * the spot policy, then nodes at risk last. ondemand_fleet: whether any
 * on-demand agent is in service. */
int placer_rank(const agent_t *a, const task_t *t, bool ondemand_fleet)
{
    int rank = 0;
    Drover__SpotPolicy policy = t->step->spot;
    if (policy == DROVER__SPOT_POLICY__SPOT_UNSET) /* a run stored before spot policies */
        policy = DROVER__SPOT_POLICY__SPOT_ANY;
    if (fallback_on(t, ondemand_fleet)) {
        if (a->spot)
            return -1; /* preempted often enough: on-demand only */
    } else if (policy == DROVER__SPOT_POLICY__SPOT_PREFER) {
        rank = !a->spot;
    } else if (policy == DROVER__SPOT_POLICY__SPOT_AVOID) {
        rank = a->spot;
    }
    return a->noticed ? rank + 2 : rank;
}

/* ------------------------------------------------------------ waiting reasons
 *
 * Every READY task has a reason (placer_why), worked out when it is shown
 * (`drover run get`, `run watch`, `drover status`), never stored: it
 * follows the fleet without a write. It names the missing thing with
 * numbers: the first requirement no agent in service meets, in the order
 * the placer checks them (spot policy, containers, labels: how many
 * agents lack which, then cpu, memory, GPUs: wanted against the largest
 * there is), what a node pool does about it (pools_explain), or, when
 * agents suit but all are full, how many and the most free of what is
 * short; a task held by its run's parallelism says so (limits.c). The
 * verdict depends only on the task's shape (same_shape, and whether its
 * spot fallback is on) and the fleet, so a walk works it out once per
 * shape (placer_why_t keeps the last PLACER_WHY_SHAPES).
 *
 * Parking: a task of a shape no agent in service could ever hold leaves
 * the ready queue for its shape's park (O(1); at most PLACER_MAX_PARKS a
 * pass), so a million such tasks cost later passes nothing and the tasks
 * behind them are placed as if they were not there. A park is checked
 * again, once per shape, whenever the fleet's fingerprint (the agents in
 * service and what they offer: fleet_print) changes; a shape that may fit
 * now goes back to the ready queue. */

#define PLACER_MAX_PARKS       65536
#define PLACER_MAX_PARK_GROUPS 256

static bool in_service(const agent_t *a)
{
    return a->connected && !a->drained && !a->terminating;
}

/* Whether a could hold want once it is free. */
static bool big_enough(const agent_t *a, const Drover__Resources *want)
{
    return !want || (want->cpu_milli <= a->capacity.cpu_milli &&
                     (!want->memory_bytes || want->memory_bytes <= a->capacity.memory_bytes) &&
                     want->gpus <= a->capacity.gpus);
}

static uint64_t free_of(uint64_t cap, uint64_t used)
{
    return used >= cap ? 0 : cap - used;
}

static void put_mem(strbuf_t *b, uint64_t bytes)
{
    if (bytes >= (1ull << 30))
        sb_printf(b, "%.1f GiB", (double)bytes / (1ull << 30));
    else
        sb_printf(b, "%" PRIu64 " MiB", bytes >> 20);
}

/* The resource of want that no agent of the suiting ones holds (which:
 * 0 cpu, 1 memory, 2 gpus) against the most any has (cap), or -1. */
static int short_of(const Drover__Resources *want, const uint64_t most[3])
{
    if (!want)
        return -1;
    if (want->cpu_milli > most[0])
        return 0;
    if (want->memory_bytes && want->memory_bytes > most[1])
        return 1;
    if (want->gpus > most[2])
        return 2;
    return -1;
}

static void put_resource(strbuf_t *b, int which, uint64_t v)
{
    if (which == 0)
        sb_printf(b, "%.6g", v / 1000.0);
    else if (which == 1)
        put_mem(b, v);
    else
        sb_printf(b, "%" PRIu64, v);
}

static const char *const RESOURCE[3] = {"cpu", "memory", "gpus"};

/* Copy b into buf (len > 4), cut at a character boundary with "..." when
 * it does not fit; frees b. */
static void fit(strbuf_t *b, char *buf, size_t len)
{
    size_t n = b->len;
    if (n >= len) {
        n = len - 4;
        while (n && ((unsigned char)b->buf[n] & 0xC0) == 0x80)
            n--; /* not inside a UTF-8 sequence */
        memcpy(buf, b->buf, n);
        memcpy(buf + n, "...", 4);
    } else {
        memcpy(buf, b->buf ? b->buf : "", n);
        buf[n] = 0;
    }
    sb_free(b);
}

/* Work out what a task of this shape waits for (t's step, sh->fallback)
 * into sh: sh->busy if some agent in service suits it and is big enough
 * (it waits for room), the words (with "waiting: ") only when text. */
static void why_waiting(sched_t *s, const task_t *t, placer_shape_t *sh, bool text)
{
    const Drover__StepSpec *st = t->step;
    const Drover__Resources *want = st->resources;
    size_t n = 0, spot = 0, image = 0, labels = 0, fits = 0, room = 0;
    uint64_t most[3] = {0, 0, 0}, most_free[3] = {0, 0, 0};
    size_t lack[64] = {0}; /* agents lacking label i (the first 64 labels) */
    sh->busy = false;
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (!in_service(a))
            continue;
        n++;
        if (sh->fallback ? a->spot : st->spot == DROVER__SPOT_POLICY__SPOT_REQUIRE && !a->spot)
            continue;
        spot++;
        if (st->image && *st->image && !a->images)
            continue;
        image++;
        bool all = true;
        for (size_t i = 0; i < st->n_labels; i++) {
            const char *have = label_of(a, st->labels[i]->key);
            if (!have || strcmp(have, st->labels[i]->value) != 0) {
                all = false;
                if (i < 64)
                    lack[i]++;
                else
                    break;
            }
        }
        if (!all)
            continue;
        labels++;
        uint64_t cap[3] = {a->capacity.cpu_milli, a->capacity.memory_bytes, a->capacity.gpus};
        uint64_t fr[3] = {free_of(cap[0], a->used.cpu_milli), free_of(cap[1], a->used.memory_bytes),
                          free_of(cap[2], a->used.gpus)};
        for (int k = 0; k < 3; k++)
            most[k] = cap[k] > most[k] ? cap[k] : most[k];
        if (big_enough(a, want)) {
            for (int k = 0; k < 3; k++) /* of those that could hold it */
                most_free[k] = fr[k] > most_free[k] ? fr[k] : most_free[k];
            sh->busy = true;
            fits++;
            room += placeable(a) &&
                    (!want ||
                     (want->cpu_milli <= fr[0] &&
                      (!want->memory_bytes || want->memory_bytes <= fr[1]) && want->gpus <= fr[2]));
            if (!text)
                return;
        }
    }
    if (!text)
        return;
    strbuf_t b = {0};
    sb_puts(&b, WAIT_PREFIX);
    char pool[PLACER_WHY_LEN];
    if (sh->busy && room) {
        sb_printf(&b, "the next placement pass (%zu agent%s room)", room,
                  room == 1 ? " has" : "s have");
    } else if (sh->busy) {
        if (fits == 1)
            sb_puts(&b, "the one agent that fits is busy");
        else
            sb_printf(&b, "all %zu agents that fit are busy", fits);
        int k = short_of(want, most_free);
        if (k >= 0) {
            sb_printf(&b, " (the most free %s is ", RESOURCE[k]);
            put_resource(&b, k, most_free[k]);
            sb_puts(&b, ", ");
            put_resource(&b, k,
                         k == 0   ? want->cpu_milli
                         : k == 1 ? want->memory_bytes
                                  : want->gpus);
            sb_puts(&b, " wanted)");
        }
        if (pools_explain(s, t, sh->fallback, pool, sizeof pool))
            sb_printf(&b, "; %s", pool);
    }
    if (sh->busy) {
        fit(&b, sh->why, sizeof sh->why);
        return;
    }
    if (pools_explain(s, t, sh->fallback, pool, sizeof pool)) {
        sb_puts(&b, pool);
    } else if (!n) {
        sb_puts(&b, "no agent in service");
    } else if (!spot && sh->fallback) {
        sb_printf(&b,
                  "preempted %u times (fallback_after): on-demand only, and no on-demand "
                  "agent in service (%zu spot)",
                  t->preemptions, n);
    } else if (!spot) {
        sb_printf(&b, "spot: require and no spot agent in service (%zu on-demand agent%s)", n,
                  n == 1 ? "" : "s");
    } else if (!image) {
        sb_printf(&b,
                  "the step has an image and no agent in service can run containers (%zu "
                  "agent%s without)",
                  spot, spot == 1 ? "" : "s");
    } else if (!labels) {
        sb_puts(&b, "no agent in service has the labels the step asks for:");
        const char *sep = " ";
        for (size_t i = 0; i < st->n_labels && i < 64 && b.len < PLACER_WHY_LEN; i++) {
            if (!lack[i])
                continue;
            sb_printf(&b, "%s%zu of %zu agent%s %s %s=%s", sep, lack[i], image,
                      image == 1 ? "" : "s", lack[i] == 1 ? "lacks" : "lack", st->labels[i]->key,
                      st->labels[i]->value);
            sep = ", ";
        }
    } else {
        int k = short_of(want, most);
        if (k >= 0) {
            sb_printf(&b, "no agent in service offers %s: ", RESOURCE[k]);
            put_resource(&b, k,
                         k == 0   ? want->cpu_milli
                         : k == 1 ? want->memory_bytes
                                  : want->gpus);
            sb_puts(&b, " (the largest has ");
            put_resource(&b, k, most[k]);
            sb_printf(&b, "; %zu agent%s)", labels, labels == 1 ? "" : "s");
        } else { /* each is there, never all on one agent */
            sb_puts(&b, "no agent in service offers cpu ");
            put_resource(&b, 0, want->cpu_milli);
            sb_puts(&b, ", memory ");
            put_resource(&b, 1, want->memory_bytes);
            sb_printf(&b, ", gpus %u together (%zu agent%s)", want->gpus, labels,
                      labels == 1 ? "" : "s");
        }
    }
    fit(&b, sh->why, sizeof sh->why);
}

/* Whether tasks of steps a and b wait alike: the same step, or copies of
 * one step with templated settings (flow_settings: they share its labels)
 * whose expanded values match, so the items of a templated fan-out share
 * a verdict too. */
static bool same_shape(const Drover__StepSpec *a, const Drover__StepSpec *b)
{
    if (a == b)
        return true;
    const Drover__Resources *ra = a->resources, *rb = b->resources;
    return a->labels == b->labels && a->n_labels == b->n_labels && a->spot == b->spot && ra && rb &&
           ra->cpu_milli == rb->cpu_milli && ra->memory_bytes == rb->memory_bytes &&
           ra->gpus == rb->gpus && !strcmp(a->image ? a->image : "", b->image ? b->image : "");
}

static bool any_ondemand(sched_t *s)
{
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents))
        if (in_service(a) && !a->spot)
            return true;
    return false;
}

void placer_why_init(sched_t *s, placer_why_t *c)
{
    c->n = c->next = c->last = 0;
    c->ondemand_fleet = any_ondemand(s);
}

/* The shape entry of t in c, worked out (with its words when text) if c
 * does not have it yet. */
static placer_shape_t *shape_of(sched_t *s, const task_t *t, placer_why_t *c, bool text)
{
    bool fallback = fallback_on(t, c->ondemand_fleet);
    placer_shape_t *sh = &c->shapes[c->last];
    if (c->n && same_shape(sh->step, t->step) && sh->fallback == fallback)
        return sh;
    for (size_t i = 0; i < c->n; i++) {
        sh = &c->shapes[i];
        if (same_shape(sh->step, t->step) && sh->fallback == fallback) {
            c->last = i;
            return sh;
        }
    }
    c->last = c->n < PLACER_WHY_SHAPES ? c->n++ : c->next++ % PLACER_WHY_SHAPES;
    sh = &c->shapes[c->last];
    sh->step = t->step;
    sh->fallback = fallback;
    why_waiting(s, t, sh, text);
    return sh;
}

const char *placer_why(sched_t *s, const task_t *t, placer_why_t *c)
{
    if (t->held) {
        limits_why_held(t->run, c->held, sizeof c->held);
        return c->held;
    }
    return shape_of(s, t, c, true)->why;
}

/* ------------------------------------------------------------ parking */

/* A fingerprint of what decides whether a shape could ever be placed: the
 * agents in service and what they offer (order-free: a sum). */
static uint64_t fleet_print(sched_t *s)
{
    uint64_t sum = 0;
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (!in_service(a))
            continue;
        uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
        MIX((uintptr_t)a); /* an agent keeps its struct while droverd runs */
        MIX(a->spot);
        MIX(a->images);
        MIX(a->capacity.cpu_milli);
        MIX(a->capacity.memory_bytes);
        MIX(a->capacity.gpus);
        for (size_t i = 0; i < a->n_labels; i++) {
            for (const char *p = a->labels[i]->key; *p; p++)
                MIX((unsigned char)*p);
            MIX('=');
            for (const char *p = a->labels[i]->value; *p; p++)
                MIX((unsigned char)*p);
            MIX(0);
        }
#undef MIX
        sum += h;
    }
    return sum + 1; /* never 0, the value before any check */
}

void placer_unpark(sched_t *s, task_t *t)
{
    park_t *g = t->park;
    if (t->ready_prev)
        t->ready_prev->ready_next = t->ready_next;
    else
        g->head = t->ready_next;
    if (t->ready_next)
        t->ready_next->ready_prev = t->ready_prev;
    else
        g->tail = t->ready_prev;
    t->ready_prev = t->ready_next = NULL;
    t->park = NULL;
    t->run->queued--;
    if (--g->n == 0) {
        park_t **p = &s->dag.parks;
        while (*p != g)
            p = &(*p)->next;
        *p = g->next;
        s->dag.n_parks--;
        free(g);
    }
}

void placer_parks_free(sched_t *s)
{
    for (park_t *g = s->dag.parks, *next; g; g = next) {
        next = g->next;
        for (task_t *t = g->head; t; t = t->ready_next)
            t->park = NULL;
        free(g);
    }
    s->dag.parks = NULL;
    s->dag.n_parks = 0;
    s->dag.park_fleet = 0;
}

/* Park READY t (in the ready queue, of a shape no agent could ever hold),
 * or leave it queued when there are parks for too many shapes already. */
static bool park(sched_t *s, task_t *t, bool fallback)
{
    park_t *g = s->dag.parks;
    while (g && !(g->fallback == fallback && same_shape(g->head->step, t->step)))
        g = g->next;
    if (!g) {
        if (s->dag.n_parks >= PLACER_MAX_PARK_GROUPS)
            return false;
        g = xcalloc(1, sizeof *g);
        g->fallback = fallback;
        g->next = s->dag.parks;
        s->dag.parks = g;
        s->dag.n_parks++;
    }
    dag_ready_remove(s, t);
    t->run->queued++; /* still waiting to be placed, for its run's parallelism */
    t->park = g;
    t->ready_next = NULL;
    t->ready_prev = g->tail;
    if (g->tail)
        g->tail->ready_next = t;
    else
        g->head = t;
    g->tail = t;
    g->n++;
    return true;
}

/* The fleet changed: a park whose shape may be placed now goes back to the
 * ready queue (its tasks behind those queued: they waited, not queued). */
static void check_parks(sched_t *s, placer_why_t *c)
{
    for (park_t *g = s->dag.parks, *next; g; g = next) {
        next = g->next;
        placer_shape_t *sh = shape_of(s, g->head, c, false);
        if (sh->fallback == g->fallback && !sh->busy)
            continue;
        for (size_t left = g->n; left > 0; left--) { /* the last one frees g */
            task_t *t = g->head;
            placer_unpark(s, t);
            dag_ready_push(s, t);
        }
    }
}

/* ------------------------------------------------------------ counts */

typedef struct {
    char **reasons;
    uint64_t *counts;
    size_t n, cap;
} tally_t;

static void tally(tally_t *y, const char *why, uint64_t n)
{
    if (!strncmp(why, WAIT_PREFIX, strlen(WAIT_PREFIX)))
        why += strlen(WAIT_PREFIX);
    for (size_t i = 0; i < y->n; i++) {
        if (!strcmp(y->reasons[i], why)) {
            y->counts[i] += n;
            return;
        }
    }
    if (y->n == y->cap) {
        y->cap = y->cap ? 2 * y->cap : 16;
        y->reasons = xrealloc(y->reasons, y->cap * sizeof *y->reasons);
        y->counts = xrealloc(y->counts, y->cap * sizeof *y->counts);
    }
    y->reasons[y->n] = xstrdup(why);
    y->counts[y->n++] = n;
}

size_t placer_waiting_counts(sched_t *s, size_t max, char ***reasons, uint64_t **counts,
                             uint64_t *total)
{
    tally_t y = {0};
    placer_why_t c;
    placer_why_init(s, &c);
    *total = 0;
    for (park_t *g = s->dag.parks; g; g = g->next) {
        tally(&y, placer_why(s, g->head, &c), g->n);
        *total += g->n;
    }
    for (size_t i = 0; i < s->dag.n_holding; i++) {
        run_t *r = s->dag.holding[i];
        tally(&y, placer_why(s, r->held_head, &c), r->n_held);
        *total += r->n_held;
    }
    /* The queue: consecutive tasks of one shape share a reason (a fan-out),
     * so most cost a compare. */
    const task_t *prev = NULL;
    size_t at = 0;
    for (const task_t *t = s->dag.ready_head; t; t = t->ready_next) {
        (*total)++;
        if (prev && same_shape(prev->step, t->step) &&
            fallback_on(prev, c.ondemand_fleet) == fallback_on(t, c.ondemand_fleet) &&
            !prev->avoid_agent && !t->avoid_agent) {
            y.counts[at]++;
            continue;
        }
        tally(&y, placer_why(s, t, &c), 1);
        const char *why = placer_why(s, t, &c) + strlen(WAIT_PREFIX);
        for (at = 0; strcmp(y.reasons[at], why); at++)
            ;
        prev = t;
    }
    /* Most first; beyond max, one line for the rest. */
    for (size_t i = 1; i < y.n; i++)
        for (size_t j = i; j > 0 && y.counts[j] > y.counts[j - 1]; j--) {
            char *r = y.reasons[j];
            uint64_t n = y.counts[j];
            y.reasons[j] = y.reasons[j - 1], y.counts[j] = y.counts[j - 1];
            y.reasons[j - 1] = r, y.counts[j - 1] = n;
        }
    if (max && y.n > max) {
        uint64_t rest = 0;
        for (size_t i = max - 1; i < y.n; i++) {
            rest += y.counts[i];
            free(y.reasons[i]);
        }
        y.reasons[max - 1] = xstrdup("other reasons");
        y.counts[max - 1] = rest;
        y.n = max;
    }
    *reasons = y.reasons;
    *counts = y.counts;
    return y.n;
}

/* ------------------------------------------------------------ the index
 *
 * Candidates are split into four classes by what ranks them (spot or not,
 * at risk or not), each a max-heap by free cpu. A task looks at the
 * classes in its rank order and takes the first agent of a class's heap
 * that fits: when the top of a heap lacks the cpu, nothing below has it,
 * so the common case is O(log agents) per task instead of a scan of every
 * agent. Tops that fit for other reasons (labels, memory, GPUs, images,
 * the avoided node) are set aside for this task only. */

#define N_CLASSES 4

typedef struct {
    agent_t **a;
    size_t n;
} heap_t;

static uint64_t free_cpu(const agent_t *a)
{
    return a->used.cpu_milli >= a->capacity.cpu_milli
               ? 0
               : (uint64_t)a->capacity.cpu_milli - a->used.cpu_milli;
}

static void heap_down(heap_t *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < h->n && free_cpu(h->a[l]) > free_cpu(h->a[top]))
            top = l;
        if (r < h->n && free_cpu(h->a[r]) > free_cpu(h->a[top]))
            top = r;
        if (top == i)
            return;
        agent_t *x = h->a[i];
        h->a[i] = h->a[top];
        h->a[top] = x;
        i = top;
    }
}

static void heap_up(heap_t *h, size_t i)
{
    while (i > 0 && free_cpu(h->a[(i - 1) / 2]) < free_cpu(h->a[i])) {
        agent_t *x = h->a[i];
        h->a[i] = h->a[(i - 1) / 2];
        h->a[(i - 1) / 2] = x;
        i = (i - 1) / 2;
    }
}

static void heap_push(heap_t *h, agent_t *a)
{
    h->a[h->n++] = a;
    heap_up(h, h->n - 1);
}

static agent_t *heap_pop(heap_t *h)
{
    agent_t *top = h->a[0];
    h->a[0] = h->a[--h->n];
    heap_down(h, 0);
    return top;
}

static int class_of(const agent_t *a)
{
    return (a->spot ? 1 : 0) | (a->noticed ? 2 : 0);
}

/* The fitting agent with the most free cpu in class h, or NULL; it stays
 * at the top of the heap. set_aside (room for h->n) collects the tops
 * that do not fit t, to be pushed back by the caller. */
static agent_t *heap_find(heap_t *h, const task_t *t, agent_t **set_aside, size_t *n_aside)
{
    uint64_t want = t->step->resources ? t->step->resources->cpu_milli : 0;
    while (h->n) {
        agent_t *a = h->a[0];
        if (free_cpu(a) < want)
            return NULL; /* nothing below has more */
        if (placer_fits(a, t))
            return a;
        set_aside[(*n_aside)++] = heap_pop(h);
    }
    return NULL;
}

bool placer_place(sched_t *s)
{
    limits_release(s);
    if (s->dag.parks) {
        uint64_t print = fleet_print(s);
        if (print != s->dag.park_fleet) {
            placer_why_t c;
            placer_why_init(s, &c);
            check_parks(s, &c);
            s->dag.park_fleet = print;
        }
    }
    if (!s->dag.ready_head)
        return false;
    size_t n = zhashx_size(s->fleet.agents), counts[N_CLASSES] = {0};
    heap_t heaps[N_CLASSES];
    agent_t **space = xcalloc(2 * n + 1, sizeof *space), **set_aside = space + n;
    bool ondemand_fleet = false;
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (a->connected && !a->drained && !a->terminating)
            ondemand_fleet = ondemand_fleet || !a->spot; /* in service, if busy */
        if (placeable(a))
            counts[class_of(a)]++;
    }
    for (int c = 0, at = 0; c < N_CLASSES; at += (int)counts[c], c++)
        heaps[c] = (heap_t){.a = space + at, .n = 0};
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (placeable(a))
            heap_push(&heaps[class_of(a)], a);
    }
    size_t misses = 0, placed = 0, parked = 0;
    placer_why_t waiting; /* verdicts only: no words in a pass */
    waiting.n = waiting.next = waiting.last = 0;
    waiting.ondemand_fleet = ondemand_fleet;
    for (task_t *t = s->dag.ready_head, *next; t && misses < PLACER_MAX_MISSES; t = next) {
        if (placed == PLACER_MAX_PER_PASS || parked == PLACER_MAX_PARKS) {
            free(space);
            return true;
        }
        next = t->ready_next;
        if (limits_run_full(t->run)) { /* its run's parallelism: held until room */
            limits_hold(s, t);
            continue;
        }
        agent_t *best = NULL;
        int best_rank = 0, best_class = 0;
        size_t aside_from[N_CLASSES], n_aside = 0;
        for (int c = 0; c < N_CLASSES; c++) {
            aside_from[c] = n_aside;
            if (!heaps[c].n)
                continue;
            int rank = placer_rank(heaps[c].a[0], t, ondemand_fleet); /* the same for the class */
            if (rank < 0 || (best && rank > best_rank))
                continue;
            agent_t *a = heap_find(&heaps[c], t, set_aside, &n_aside);
            if (a && (!best || rank < best_rank || free_cpu(a) > free_cpu(best))) {
                best = a;
                best_rank = rank;
                best_class = c;
            }
        }
        if (best) {
            assign(s, best, t);
            if (best->unacked >= PLACER_MAX_UNACKED) /* best is its heap's top */
                heap_pop(&heaps[best_class]);
            else
                heap_down(&heaps[best_class], 0);
            placed++;
        } else if (t->avoid_agent && !another_could_run(s, t)) {
            /* Avoiding its last agent would keep it waiting for good: try
             * it again at once without that. */
            free(t->avoid_agent);
            t->avoid_agent = NULL;
            journal_mark_task_lazy(&s->journal, t);
            next = t;
        } else {
            placer_shape_t *sh = shape_of(s, t, &waiting, false);
            if (!sh->busy && !s->dag.parks) /* the fleet these verdicts are for */
                s->dag.park_fleet = fleet_print(s);
            if (!sh->busy && park(s, t, sh->fallback))
                parked++; /* no agent could ever hold it: out of the way */
            else
                misses++;
        }
        for (int c = N_CLASSES - 1; c >= 0; c--) /* put back what this task skipped */
            while (n_aside > aside_from[c])
                heap_push(&heaps[c], set_aside[--n_aside]);
    }
    free(space);
    return false;
}
