/* fleet — the agents table, connections, records and bound tasks: see
 * fleet.h.
 *
 * Binding and unbinding a task is O(1): a swap-remove by the task's slot,
 * so an agent with thousands of tasks costs the same per transition.
 */
#include "sched_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define CONN_HEX_MAX (2 * 255 + 1)

void fleet_init(fleet_t *f)
{
    f->agents = zhashx_new();
    f->conns = zhashx_new();
}

agent_t *fleet_find(fleet_t *f, const char *name)
{
    return zhashx_lookup(f->agents, name);
}

agent_t *fleet_add(fleet_t *f, const char *name)
{
    agent_t *a = xcalloc(1, sizeof *a);
    a->name = xstrdup(name);
    drover__resources__init(&a->capacity);
    drover__resources__init(&a->used);
    a->last_seen_mono = util_mono_ms();
    zhashx_insert(f->agents, a->name, a);
    return a;
}

void fleet_set_labels(agent_t *a, Drover__KeyValue **labels, size_t n)
{
    util_free_kvs(a->labels, a->n_labels);
    a->labels = xcalloc(n, sizeof *a->labels);
    for (size_t i = 0; i < n; i++)
        a->labels[i] = util_kv_new(labels[i]->key, labels[i]->value);
    a->n_labels = n;
}

void fleet_load(fleet_t *f, const Drover__AgentRecord *rec)
{
    agent_t *a = fleet_add(f, rec->name);
    fleet_set_labels(a, rec->labels, rec->n_labels);
    if (rec->capacity) {
        a->capacity.cpu_milli = rec->capacity->cpu_milli;
        a->capacity.memory_bytes = rec->capacity->memory_bytes;
        a->capacity.gpus = rec->capacity->gpus;
    }
    a->drained = rec->drained;
    a->committed_state = AGENT_EV_WRITTEN | (rec->drained ? AGENT_EV_DRAINED : 0); /* events */
    a->last_seen_ms = rec->last_seen_ms;
    a->runtime = xstrdup(rec->runtime);
    a->images = rec->images;
    a->spot = rec->spot;
    a->price = rec->price;
}

void fleet_record(const agent_t *a, Drover__AgentRecord *rec)
{
    drover__agent_record__init(rec);
    rec->name = a->name;
    rec->n_labels = a->n_labels;
    rec->labels = a->labels;
    rec->capacity = (Drover__Resources *)&a->capacity;
    rec->drained = a->drained;
    rec->last_seen_ms = a->last_seen_ms;
    rec->runtime = a->runtime ? a->runtime : (char *)"";
    rec->images = a->images;
    rec->spot = a->spot;
    rec->price = a->price;
}

static void agent_free(agent_t *a)
{
    agent_out_free(&a->out);
    zframe_destroy(&a->conn);
    free(a->conn_hex);
    util_free_kvs(a->labels, a->n_labels);
    free(a->runtime);
    free(a->notice_reason);
    free(a->tasks);
    free(a->name);
    free(a);
}

void fleet_remove(fleet_t *f, agent_t *a)
{
    zhashx_delete(f->agents, a->name);
    agent_free(a);
}

void fleet_free(fleet_t *f)
{
    if (f->agents)
        for (agent_t *a = zhashx_first(f->agents); a; a = zhashx_next(f->agents))
            agent_free(a);
    zhashx_destroy(&f->agents);
    zhashx_destroy(&f->conns);
}

/* Hex of a routing id (at most 255 bytes): the key of f->conns (ids are
 * binary). Returns hex. */
static char *conn_hex(zframe_t *conn, char hex[CONN_HEX_MAX])
{
    size_t n = zframe_size(conn) < 255 ? zframe_size(conn) : 255;
    return util_hex(zframe_data(conn), n, hex);
}

agent_t *fleet_by_conn(fleet_t *f, zframe_t *conn)
{
    char hex[CONN_HEX_MAX];
    return zhashx_lookup(f->conns, conn_hex(conn, hex));
}

void fleet_unbind_conn(fleet_t *f, agent_t *a)
{
    if (a->conn_hex)
        zhashx_delete(f->conns, a->conn_hex);
    zframe_destroy(&a->conn);
    free(a->conn_hex);
    a->conn_hex = NULL;
}

void fleet_bind_conn(fleet_t *f, agent_t *a, zframe_t *conn, const keys_entry_t *key)
{
    char hex[CONN_HEX_MAX];
    if (a->conn_hex && strcmp(a->conn_hex, conn_hex(conn, hex)) == 0)
        return;
    if (a->conn)
        log_info("agent %s: a new connection registered (the agent restarted or reconnected)",
                 a->name);
    fleet_unbind_conn(f, a);
    a->conn = zframe_dup(conn);
    a->conn_hex = xstrdup(conn_hex(conn, hex));
    zhashx_insert(f->conns, a->conn_hex, a);
    snprintf(a->key, sizeof a->key, "%s", key ? key->key : "");
}

void fleet_acked(task_t *t)
{
    if (!t->assign_acked && t->agent)
        t->agent->unacked--;
    t->assign_acked = true;
}

void fleet_bind_task(agent_t *a, task_t *t)
{
    const Drover__Resources *want = t->step->resources;
    if (a->n_tasks == a->cap_tasks) {
        a->cap_tasks = a->cap_tasks ? a->cap_tasks * 2 : 8;
        a->tasks = xrealloc(a->tasks, a->cap_tasks * sizeof *a->tasks);
    }
    t->agent = a;
    t->agent_slot = a->n_tasks;
    a->tasks[a->n_tasks++] = t;
    a->unacked += !t->assign_acked;
    t->run->active++; /* run parallelism (limits.c) */
    if (want) {
        a->used.cpu_milli += want->cpu_milli;
        a->used.memory_bytes += want->memory_bytes;
        a->used.gpus += want->gpus;
    }
}

void fleet_unbind_task(task_t *t)
{
    agent_t *a = t->agent;
    const Drover__Resources *want = t->step->resources;
    if (!a)
        return;
    /* swap-remove from the agent's task list */
    a->unacked -= !t->assign_acked;
    t->run->active--;
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
