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
 * goes on, up to a bound per pass so a long blocked queue costs little.
 * Agents are found through an index (below), not a scan per task; a pass
 * assigns at most PLACER_MAX_PER_PASS tasks.
 */
#include "sched_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define PLACER_MAX_MISSES 1024
/* The reason of a READY task the placer cannot place (see note_waiting). */
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
    t->status = DROVER__TASK_STATUS__TASK_ASSIGNED;
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
 * A READY task a pass could not place either waits for room (an agent in
 * service suits it and could hold it once free: nothing to say) or for an
 * agent that is not there: then its reason says what it waits for, so no
 * task waits with no reason shown (`drover run get`). The verdict depends
 * only on the task's shape (its step, and whether its spot fallback is
 * on) and the fleet, so a pass works it out once per shape (the last
 * WAIT_SHAPES are kept, on the stack) and only copies it onto a task whose
 * reason differs: a blocked queue costs a pointer compare per task. */

#define WAIT_SHAPES 8

typedef struct {
    const Drover__StepSpec *step;
    bool fallback;
    bool busy; /* waiting for room: no reason of its own */
    char why[192];
} wait_shape_t;

typedef struct {
    wait_shape_t shapes[WAIT_SHAPES];
    size_t n, next;
} wait_cache_t;

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

/* Work out what a task of this shape waits for (sh->step, sh->fallback):
 * the first requirement no agent in service meets, in the order the
 * placer checks them; sh->busy if some agent meets them all. */
static void why_waiting(sched_t *s, const task_t *t, wait_shape_t *sh)
{
    const Drover__StepSpec *st = t->step;
    size_t n = 0, spot = 0, image = 0, labels = 0;
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
        for (size_t i = 0; i < st->n_labels && all; i++) {
            const char *have = label_of(a, st->labels[i]->key);
            all = have && strcmp(have, st->labels[i]->value) == 0;
        }
        if (!all)
            continue;
        labels++;
        if (big_enough(a, st->resources)) {
            sh->busy = true;
            return;
        }
    }
    if (!n)
        snprintf(sh->why, sizeof sh->why, WAIT_PREFIX "no agent in service");
    else if (!spot && sh->fallback)
        snprintf(sh->why, sizeof sh->why,
                 WAIT_PREFIX "preempted %u times (fallback_after): on-demand only, and no "
                             "on-demand agent in service",
                 t->preemptions);
    else if (!spot)
        snprintf(sh->why, sizeof sh->why,
                 WAIT_PREFIX "spot: require and no spot agent in service (%zu on-demand "
                             "agent%s in service)",
                 n, n == 1 ? "" : "s");
    else if (!image)
        snprintf(sh->why, sizeof sh->why,
                 WAIT_PREFIX "the step has an image and no agent in service can run "
                             "containers");
    else if (!labels)
        snprintf(sh->why, sizeof sh->why,
                 WAIT_PREFIX "no agent in service has the labels the step asks for");
    else
        snprintf(sh->why, sizeof sh->why,
                 WAIT_PREFIX "no agent in service is big enough (cpu %.1f, memory %" PRIu64
                             " MiB, gpus %u wanted)",
                 st->resources->cpu_milli / 1000.0, st->resources->memory_bytes >> 20,
                 st->resources->gpus);
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

/* t was not placed in this pass: show what it waits for, or drop a
 * waiting reason that no longer holds (it waits for room now). */
static void note_waiting(sched_t *s, task_t *t, bool ondemand_fleet, wait_cache_t *c)
{
    bool fallback = fallback_on(t, ondemand_fleet);
    wait_shape_t *sh = NULL;
    for (size_t i = 0; i < c->n && !sh; i++)
        if (same_shape(c->shapes[i].step, t->step) && c->shapes[i].fallback == fallback)
            sh = &c->shapes[i];
    if (!sh) {
        sh = &c->shapes[c->n < WAIT_SHAPES ? c->n++ : c->next++ % WAIT_SHAPES];
        sh->step = t->step;
        sh->fallback = fallback;
        why_waiting(s, t, sh);
    }
    if (sh->busy) {
        if (t->reason && strncmp(t->reason, WAIT_PREFIX, strlen(WAIT_PREFIX)) == 0) {
            free(t->reason);
            t->reason = NULL;
            journal_mark_task_lazy(&s->journal, t);
        }
    } else if (!t->reason || strcmp(t->reason, sh->why) != 0) {
        free(t->reason);
        t->reason = xstrdup(sh->why);
        journal_mark_task_lazy(&s->journal, t);
    }
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
    size_t misses = 0, placed = 0;
    wait_cache_t waiting;
    waiting.n = waiting.next = 0;
    for (task_t *t = s->dag.ready_head, *next; t && misses < PLACER_MAX_MISSES; t = next) {
        if (placed == PLACER_MAX_PER_PASS) {
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
            note_waiting(s, t, ondemand_fleet, &waiting);
            misses++;
        }
        for (int c = N_CLASSES - 1; c >= 0; c--) /* put back what this task skipped */
            while (n_aside > aside_from[c])
                heap_push(&heaps[c], set_aside[--n_aside]);
    }
    free(space);
    return false;
}
