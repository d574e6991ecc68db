/* journal — what changed since the last commit: see journal.h.
 *
 * Everything here is O(1) per change (amortized for the arrays) and
 * touches no I/O; commit.c walks the lists inside its transaction and
 * calls journal_reset after it.
 */
#include "sched_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void journal_init(journal_t *j)
{
    memset(j, 0, sizeof *j);
    j->log_writes_tail = &j->log_writes;
    j->names = zhashx_new();
    zhashx_set_destructor(j->names, util_free_item);
}

void journal_free(journal_t *j)
{
    journal_reset(j);
    free(j->cache_puts);
    j->cache_puts = NULL;
    free(j->forgotten_agents);
    j->forgotten_agents = NULL;
    free(j->blob_ops);
    j->blob_ops = NULL;
    j->n_blob_ops = j->cap_blob_ops = 0;
    zhashx_destroy(&j->names);
}

void journal_log(journal_t *j, log_write_t *w)
{
    w->next = NULL;
    *j->log_writes_tail = w;
    j->log_writes_tail = &w->next;
}

void journal_cache_put(journal_t *j, task_t *t)
{
    if (j->n_cache_puts == j->cap_cache_puts) {
        j->cap_cache_puts = j->cap_cache_puts ? j->cap_cache_puts * 2 : 64;
        j->cache_puts = xrealloc(j->cache_puts, j->cap_cache_puts * sizeof *j->cache_puts);
    }
    j->cache_puts[j->n_cache_puts++] = t;
}

void journal_blob_op(journal_t *j, int kind, const uint8_t digest[32], int64_t delta, uint64_t size)
{
    if (j->n_blob_ops == j->cap_blob_ops) {
        j->cap_blob_ops = j->cap_blob_ops ? j->cap_blob_ops * 2 : 64;
        j->blob_ops = xrealloc(j->blob_ops, j->cap_blob_ops * sizeof *j->blob_ops);
    }
    blob_op_t *op = &j->blob_ops[j->n_blob_ops++];
    op->kind = kind;
    memcpy(op->digest, digest, sizeof op->digest);
    op->delta = delta;
    op->size = size;
}

void journal_delete_run(journal_t *j, run_t *r)
{
    r->deleting = true;
    r->deleting_next = j->deleting;
    j->deleting = r;
}

void journal_forget_agent(journal_t *j, agent_t *a)
{
    if (a->dirty)
        for (agent_t **p = &j->dirty_agents; *p; p = &(*p)->dirty_next)
            if (*p == a) {
                *p = a->dirty_next;
                break;
            }
    a->dirty = false;
    j->forgotten_agents =
        xrealloc(j->forgotten_agents, (j->n_forgotten_agents + 1) * sizeof *j->forgotten_agents);
    j->forgotten_agents[j->n_forgotten_agents++] = xstrdup(a->name);
    j->must_commit = true;
}

char *journal_intern(journal_t *j, const char *str)
{
    char *copy = zhashx_lookup(j->names, str);
    if (!copy) {
        copy = xstrdup(str);
        zhashx_insert(j->names, copy, copy);
    }
    return copy;
}

bool journal_empty(const journal_t *j)
{
    return !j->must_commit && !j->dirty_runs && !j->dirty_agents && !j->log_writes &&
           !j->counters_dirty && !j->n_cache_puts && !j->clear_cache && !j->prune_cache &&
           !j->prune_events && !j->n_blob_ops && !j->deleting;
}

void journal_reset(journal_t *j)
{
    for (run_t *r = j->dirty_runs, *n; r; r = n) {
        n = r->dirty_next;
        r->dirty = false;
        r->steps_unwritten = false;
        r->dirty_next = NULL;
    }
    for (task_t *t = j->dirty_tasks, *n; t; t = n) {
        n = t->dirty_next;
        t->dirty = false;
        t->dirty_next = NULL;
    }
    for (agent_t *a = j->dirty_agents, *n; a; a = n) {
        n = a->dirty_next;
        a->dirty = false;
        a->dirty_next = NULL;
    }
    for (log_write_t *w = j->log_writes, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    for (size_t i = 0; i < j->n_forgotten_agents; i++)
        free(j->forgotten_agents[i]);
    j->n_forgotten_agents = 0;
    for (size_t i = 0; i < j->n_cache_puts; i++) { /* stored: the keys are done */
        free(j->cache_puts[i]->cache_key);
        j->cache_puts[i]->cache_key = NULL;
    }
    j->n_cache_puts = 0;
    j->clear_cache = false;
    j->prune_cache = false;
    j->prune_events = false;
    j->dirty_runs = NULL;
    j->dirty_tasks = NULL;
    j->dirty_agents = NULL;
    j->log_writes = NULL;
    j->log_writes_tail = &j->log_writes;
    j->counters_dirty = false;
    j->must_commit = false;
}
