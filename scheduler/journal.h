/* journal — what changed since the last commit (included by
 * sched_internal.h, after the model's types; include that instead).
 *
 * The model (dag, flow, placer) and the handlers never write the store
 * themselves: they record here what changed, and the loop's commit phase
 * (commit.c) writes it all in one LMDB transaction, then empties the
 * journal. The journal knows nothing of the store, the loop or the
 * sockets; it is lists and flags:
 *   - dirty runs, tasks and agents (intrusive lists through each record's
 *     dirty/dirty_next fields: marking is O(1) and allocates nothing);
 *   - log chunks to append, cache entries to put, whether to clear or
 *     prune the cache, agents forgotten, runs being deleted, blob
 *     reference changes, whether the id counters moved;
 *   - interned strings (agent names in attempt records), alive as long as
 *     the journal.
 * Invariant: a record is on a dirty list iff its dirty flag is set, and a
 * list is walked (and reset) only by the commit phase. journal_empty() is
 * the commit phase's one question: is there anything to write?
 */
#ifndef DROVER_JOURNAL_H
#define DROVER_JOURNAL_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A blob reference change, applied by blobstore_commit. kind is a
 * blobstore op kind (blobstore.h). */
typedef struct {
    int kind;
    uint8_t digest[32];
    int64_t delta;
    uint64_t size;
} blob_op_t;

typedef struct {
    bool must_commit;    /* a non-lazy change is waiting for the next commit */
    bool counters_dirty; /* next_run / next_attempt moved */
    bool clear_cache;    /* drop every cache entry at the next commit */
    bool prune_cache;    /* drop the entries of deleted runs at the next commit */
    bool prune_events;   /* prune the event log at the next commit (events.c) */
    run_t *dirty_runs;
    task_t *dirty_tasks;
    agent_t *dirty_agents;
    run_t *deleting; /* runs to delete at the next commit (dag.c frees them after it) */
    log_write_t *log_writes, **log_writes_tail;
    task_t **cache_puts; /* cache entries for the next commit */
    size_t n_cache_puts, cap_cache_puts;
    char **forgotten_agents; /* names whose records the next commit deletes (owned) */
    size_t n_forgotten_agents;
    blob_op_t *blob_ops; /* reference changes for the next commit (blobstore.c) */
    size_t n_blob_ops, cap_blob_ops;
    zhashx_t *names; /* interned strings (journal_intern) */
} journal_t;

/* An empty journal. */
void journal_init(journal_t *j);
/* Free what the journal holds (after a last commit, or when it failed):
 * pending changes are dropped, interned strings freed. */
void journal_free(journal_t *j);

/* r's record changed (status, end, cancel): written at the next commit. */
static inline void journal_mark_run(journal_t *j, run_t *r)
{
    if (r->dirty)
        return;
    r->dirty = true;
    r->dirty_next = j->dirty_runs;
    j->dirty_runs = r;
}

/* Mark t changed without forcing a commit this iteration: for changes
 * nothing outgoing depends on (a task seen RUNNING, a waiting reason). */
static inline void journal_mark_task_lazy(journal_t *j, task_t *t)
{
    if (t->dirty)
        return;
    t->dirty = true;
    t->dirty_next = j->dirty_tasks;
    j->dirty_tasks = t;
}

/* t changed: written at the next commit, which this iteration makes. */
static inline void journal_mark_task(journal_t *j, task_t *t)
{
    j->must_commit = true;
    journal_mark_task_lazy(j, t);
}

/* a's record changed (labels, capacity, drained, last seen). */
static inline void journal_mark_agent(journal_t *j, agent_t *a)
{
    if (a->dirty)
        return;
    a->dirty = true;
    a->dirty_next = j->dirty_agents;
    j->dirty_agents = a;
}

/* The id counters (next_run, next_attempt) moved. */
static inline void journal_mark_counters(journal_t *j)
{
    j->counters_dirty = true;
}

/* Drop every step cache entry at the next commit (drover cache clear),
 * with the puts queued before it (their tasks keep their keys until they
 * are freed). */
static inline void journal_clear_cache(journal_t *j)
{
    j->clear_cache = true;
    j->n_cache_puts = 0;
}

/* Drop the cache entries of deleted runs at the next commit. */
static inline void journal_prune_cache(journal_t *j)
{
    j->prune_cache = true;
}

/* Append a log chunk (takes ownership of w; freed after the commit). */
void journal_log(journal_t *j, log_write_t *w);
/* Record t's cache key → t at the next commit (t->cache_key is freed
 * after it). */
void journal_cache_put(journal_t *j, task_t *t);
/* Queue a blob reference change (blobstore_queue_op's storage). */
void journal_blob_op(journal_t *j, int kind, const uint8_t digest[32], int64_t delta,
                     uint64_t size);
/* Put r on the list of runs the next commit deletes. */
void journal_delete_run(journal_t *j, run_t *r);
/* Agent a is being forgotten: it leaves the dirty list, and its record is
 * deleted at the next commit (the name is copied). */
void journal_forget_agent(journal_t *j, agent_t *a);
/* One shared copy of str, alive as long as the journal: attempt records
 * name their agent with it (a million attempts, a few agents), so they
 * must be freed with dag_attempt_free. */
char *journal_intern(journal_t *j, const char *str);

/* Whether the next commit has nothing to write. Lazily marked tasks alone
 * do not count: they wait for a commit something else needs. */
bool journal_empty(const journal_t *j);
/* After a commit: unmark every record, free the log chunks, forgotten
 * names and stored cache keys, reset the flags. Runs being deleted and
 * blob ops stay: dag_free_deleted and blobstore_after_commit take them. */
void journal_reset(journal_t *j);

#endif
