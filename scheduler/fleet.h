/* fleet — the agents droverd knows and their records (included by
 * sched_internal.h, after the model's types; include that instead).
 *
 * The table of agents by name (owned) and of connected ones by routing id
 * (not owned), an agent's record as stored, and what the scheduler has
 * bound to each agent: the tasks whose current attempt is there, the
 * resources they hold and how many assignments it has not acknowledged.
 * Nothing here speaks the protocol (agents.c) or writes the store (the
 * caller marks a changed agent in the journal).
 * Invariant: t->agent == a iff a->tasks[t->agent_slot] == t, and a->used
 * is the sum of those tasks' resources.
 */
#ifndef DROVER_FLEET_H
#define DROVER_FLEET_H

#include <czmq.h>

#include "keys.h"

typedef struct {
    zhashx_t *agents; /* name → agent_t (owned) */
    zhashx_t *conns;  /* agent_t.conn_hex → agent_t (not owned) */
} fleet_t;

/* Empty tables. */
void fleet_init(fleet_t *f);
/* Free every agent and the tables. */
void fleet_free(fleet_t *f);
/* The agent called name, or NULL (connected or not). */
agent_t *fleet_find(fleet_t *f, const char *name);
/* A new disconnected agent called name, in the table (owned by f). */
agent_t *fleet_add(fleet_t *f, const char *name);
/* Startup: recreate an agent from its record (disconnected). */
void fleet_load(fleet_t *f, const Drover__AgentRecord *rec);
/* a's record as stored (points into a; valid until a changes). */
void fleet_record(const agent_t *a, Drover__AgentRecord *rec);
/* Replace a's labels with copies of labels. */
void fleet_set_labels(agent_t *a, Drover__KeyValue **labels, size_t n);
/* Take a out of the table and free it. Its connection must be unbound
 * first, and it must be on no list (journal, outbound) any more. */
void fleet_remove(fleet_t *f, agent_t *a);

/* The agent bound to connection conn (its routing id), or NULL. */
agent_t *fleet_by_conn(fleet_t *f, zframe_t *conn);
/* From now on, a speaks on conn (with key, under CURVE); conn is copied. */
void fleet_bind_conn(fleet_t *f, agent_t *a, zframe_t *conn, const keys_entry_t *key);
/* a has no connection any more. */
void fleet_unbind_conn(fleet_t *f, agent_t *a);

/* Bind/unbind t's current attempt to agent a: its task list, the
 * resources held there, unacknowledged assignments. */
void fleet_bind_task(agent_t *a, task_t *t);
void fleet_unbind_task(task_t *t);
/* The agent has t's current assignment (it acknowledged or reported it). */
void fleet_acked(task_t *t);

#endif
