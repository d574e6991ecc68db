/* placer — matches READY tasks to agents.
 *
 * A task fits an agent that is connected, not drained, not being reclaimed
 * (a preemption notice), not the node it was last preempted on, can run
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
 */
#include "sched_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define PLACER_MAX_MISSES 1024

static const char *label_of(const agent_t *a, const char *key)
{
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i]->key, key) == 0)
            return a->labels[i]->value;
    return NULL;
}

bool placer_fits(const agent_t *a, const task_t *t)
{
    const Drover__Resources *want = t->step->resources;
    if (!a->connected || a->drained || a->terminating)
        return false;
    if (t->avoid_agent && strcmp(t->avoid_agent, a->name) == 0)
        return false;
    if (t->step->spot == DROVER__SPOT_POLICY__SPOT_REQUIRE && !a->spot)
        return false;
    if (t->step->image && *t->step->image && !a->images)
        return false; /* a container step needs an agent with a container runtime */
    if (want) {
        if ((uint64_t)a->used.cpu_milli + want->cpu_milli > a->capacity.cpu_milli)
            return false;
        if (want->memory_bytes &&
            a->used.memory_bytes + want->memory_bytes > a->capacity.memory_bytes)
            return false;
        if ((uint64_t)a->used.gpus + want->gpus > a->capacity.gpus)
            return false;
    }
    for (size_t i = 0; i < t->step->n_labels; i++) {
        const char *have = label_of(a, t->step->labels[i]->key);
        if (!have || strcmp(have, t->step->labels[i]->value) != 0)
            return false;
    }
    return true;
}

void placer_bind(sched_t *s, agent_t *a, task_t *t)
{
    const Drover__Resources *want = t->step->resources;
    if (a->n_tasks == a->cap_tasks) {
        a->cap_tasks = a->cap_tasks ? a->cap_tasks * 2 : 8;
        a->tasks = xrealloc(a->tasks, a->cap_tasks * sizeof *a->tasks);
    }
    t->agent = a;
    t->agent_slot = a->n_tasks;
    a->tasks[a->n_tasks++] = t;
    if (want) {
        a->used.cpu_milli += want->cpu_milli;
        a->used.memory_bytes += want->memory_bytes;
        a->used.gpus += want->gpus;
    }
}

void placer_unbind(sched_t *s, task_t *t)
{
    agent_t *a = t->agent;
    const Drover__Resources *want = t->step->resources;
    if (!a)
        return;
    /* swap-remove from the agent's task list */
    task_t *last = a->tasks[--a->n_tasks];
    a->tasks[t->agent_slot] = last;
    last->agent_slot = t->agent_slot;
    if (want) {
        a->used.cpu_milli -= want->cpu_milli;
        a->used.memory_bytes -= want->memory_bytes;
        a->used.gpus -= want->gpus;
    }
    t->agent = NULL;
}

void placer_send_assignment(sched_t *s, task_t *t)
{
    Drover__AttemptRecord *at = dag_current_attempt(t);
    agent_out_t *out = sched_agent_out(s, t->agent);
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
    out->assigns = xrealloc(out->assigns, (out->n_assigns + 1) * sizeof *out->assigns);
    out->assigns[out->n_assigns++] = m;
    t->assign_sent_mono = util_mono_ms();
}

/* Start a new attempt of t on a. */
static void assign(sched_t *s, agent_t *a, task_t *t)
{
    Drover__AttemptRecord *at = xmalloc(sizeof *at);
    drover__attempt_record__init(at);
    at->id = ++s->next_attempt;
    s->counters_dirty = true;
    at->number = (uint32_t)t->n_attempts + 1;
    at->agent = xstrdup(a->name);
    at->reason = xstrdup("");
    at->status = DROVER__TASK_STATUS__TASK_ASSIGNED;
    at->spot = a->spot;
    at->price = a->price;
    const Drover__Checkpoint *ck = dag_latest_checkpoint(t);
    at->resumed = ck != NULL;
    at->resumed_step = ck ? ck->step : 0;
    t->progress = -1;
    t->attempts = xrealloc(t->attempts, (t->n_attempts + 1) * sizeof *t->attempts);
    t->attempts[t->n_attempts++] = at;
    t->status = DROVER__TASK_STATUS__TASK_ASSIGNED;
    t->assign_acked = false;
    dag_ready_remove(s, t);
    idmap_put(s->attempts, at->id, t);
    placer_bind(s, a, t);
    placer_send_assignment(s, t);
    sched_mark_task(s, t);
    log_debug("assign %s/%s attempt %u (id %" PRIu64 ") to %s", t->run->rec->id, t->name,
              at->number, at->id, a->name);
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
    if (t->step->fallback_after && t->preemptions >= t->step->fallback_after && ondemand_fleet) {
        if (a->spot)
            return -1; /* preempted often enough: on-demand only */
    } else if (policy == DROVER__SPOT_POLICY__SPOT_PREFER) {
        rank = !a->spot;
    } else if (policy == DROVER__SPOT_POLICY__SPOT_AVOID) {
        rank = a->spot;
    }
    return a->noticed ? rank + 2 : rank;
}

void placer_place(sched_t *s)
{
    if (!s->ready_head)
        return;
    size_t n = zhashx_size(s->agents), n_cand = 0;
    agent_t **cand = xcalloc(n, sizeof *cand);
    bool ondemand_fleet = false;
    for (agent_t *a = zhashx_first(s->agents); a; a = zhashx_next(s->agents)) {
        if (a->connected && !a->drained && !a->terminating) {
            cand[n_cand++] = a;
            ondemand_fleet = ondemand_fleet || !a->spot;
        }
    }
    size_t misses = 0;
    for (task_t *t = s->ready_head, *next; t && n_cand && misses < PLACER_MAX_MISSES; t = next) {
        next = t->ready_next;
        agent_t *best = NULL;
        int best_rank = 0;
        for (size_t i = 0; i < n_cand; i++) {
            agent_t *a = cand[i];
            if (!placer_fits(a, t))
                continue;
            int rank = placer_rank(a, t, ondemand_fleet);
            if (rank < 0)
                continue;
            if (!best || rank < best_rank ||
                (rank == best_rank && a->capacity.cpu_milli - a->used.cpu_milli >
                                          best->capacity.cpu_milli - best->used.cpu_milli)) {
                best = a;
                best_rank = rank;
            }
        }
        if (best)
            assign(s, best, t);
        else
            misses++;
    }
    free(cand);
}
