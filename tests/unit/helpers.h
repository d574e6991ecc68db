/* helpers — shared by the unit tests (header-only; every helper is static
 * inline so a test that does not use one gets no warning).
 *
 * Always: temporary directories and a seeded PRNG. With DROVER_TEST_SCHED
 * defined before inclusion: a real droverd (sched_new on a temp state dir
 * with ipc:// endpoints, no loop run) and shortcuts that drive it the way
 * agents and the CLI do: submit a spec, register an agent, report an exit.
 * Include this header first: sched_internal.h brings czmq, whose prelude
 * must come before system headers.
 */
#ifndef DROVER_TEST_HELPERS_H
#define DROVER_TEST_HELPERS_H

#ifdef DROVER_TEST_SCHED
#include "sched_internal.h"
#endif

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A new empty directory under /tmp (caller frees the string). */
static inline char *h_tmpdir(void)
{
    char *d = xstrdup("/tmp/drover-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(d), "mkdtemp failed");
    return d;
}

/* xorshift64*: reproducible pseudo-random numbers from a seed. */
static inline uint64_t h_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#ifdef DROVER_TEST_SCHED

/* A scheduler on a fresh (or the given) state dir; sockets are ipc:// in
 * that dir so tests never collide. The loop is never run: tests call the
 * modules directly and inspect the model. */
static inline sched_t *h_sched_open(const char *dir)
{
    sched_config_t cfg;
    sched_config_defaults(&cfg);
    char *listen = xasprintf("ipc://%s/agents.sock", dir);
    char *api = xasprintf("ipc://%s/api.sock", dir);
    cfg.state_dir = dir;
    cfg.listen = listen;
    cfg.api = api;
    sched_t *s = sched_new(&cfg);
    cr_assert_not_null(s, "sched_new(%s) failed", dir);
    /* sched keeps cfg by value; keep the strings alive as long as s: they
     * are leaked into the config on purpose and freed by h_sched_close. */
    return s;
}

/* sched_destroy (which commits what is pending) and free the endpoint
 * strings h_sched_open allocated. */
static inline void h_sched_close(sched_t **s)
{
    if (!*s)
        return;
    char *listen = (char *)(*s)->cfg.listen;
    char *api = (char *)(*s)->cfg.api;
    sched_destroy(s);
    free(listen);
    free(api);
}

/* Parse yaml and create a run from it (the API's submit, minus the reply). */
static inline run_t *h_submit(sched_t *s, const char *yaml)
{
    char err[512] = "";
    spec_t *spec = NULL;
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &spec, err, sizeof err);
    cr_assert_eq(rc, 0, "spec_parse: %s", err);
    run_t *r = dag_create_run(s, spec, "t.yaml", false);
    spec_destroy(&spec);
    cr_assert_not_null(r);
    return r;
}

static inline task_t *h_task(run_t *r, const char *name)
{
    task_t *t = dag_find_task(r, name);
    cr_assert_not_null(t, "run %s has no task %s", r->rec->id, name);
    return t;
}

/* Deliver one packed AgentMessage from the agent called name, as the
 * agents socket would. */
static inline void h_agent_send(sched_t *s, const char *name, const Drover__AgentMessage *m)
{
    size_t n = drover__agent_message__get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__agent_message__pack(m, buf);
    zframe_t *id = zframe_new(name, strlen(name));
    agents_handle(s, id, NULL, buf, n);
    zframe_destroy(&id);
    free(buf);
}

/* Register an agent: capacity and labels ("k=v,k=v" or NULL), holding no
 * attempts. Returns the agent as droverd sees it. */
static inline agent_t *h_register(sched_t *s, const char *name, uint32_t cpu_milli, uint64_t memory,
                                  uint32_t gpus, const char *labels)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    Drover__KeyValue **kvs = NULL;
    size_t n_kvs = 0;
    if (labels)
        cr_assert_eq(util_parse_kv_list(labels, &kvs, &n_kvs), 0, "bad labels %s", labels);
    cap.cpu_milli = cpu_milli;
    cap.memory_bytes = memory;
    cap.gpus = gpus;
    reg.name = (char *)name;
    reg.capacity = &cap;
    reg.labels = kvs;
    reg.n_labels = n_kvs;
    m.register_ = &reg;
    h_agent_send(s, name, &m);
    util_free_kvs(kvs, n_kvs);
    agent_t *a = agents_find(s, name);
    const char *refused = s->n_peer_replies ? s->peer_replies[s->n_peer_replies - 1].refused : NULL;
    cr_assert_not_null(a, "agent %s not made (refused: %s)", name, refused ? refused : "-");
    cr_assert(a->connected, "agent %s not connected after registering (refused: %s)", name,
              refused ? refused : "-");
    return a;
}

/* The agent running t reports its current attempt EXITED with code. */
static inline void h_exit(sched_t *s, task_t *t, int code)
{
    Drover__Report rep = DROVER__REPORT__INIT;
    Drover__AttemptRecord *a = dag_current_attempt(t);
    cr_assert_not_null(a, "task %s has no attempt", t->step->name);
    rep.attempt_id = a->id;
    rep.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    rep.exit_code = code;
    dag_task_exited(s, t, &rep);
}

/* Whether t sits in the scheduler's ready queue (walking the queue, not
 * trusting the task's own flag). */
static inline bool h_in_ready_queue(const sched_t *s, const task_t *t)
{
    for (const task_t *q = s->ready_head; q; q = q->ready_next)
        if (q == t)
            return true;
    return false;
}

#endif /* DROVER_TEST_SCHED */

#endif
