/* commit — the loop's commit phase: the journal into the store.
 *
 * Called by the loop (scheduler.c) once per iteration, after placement
 * and before anything is sent, and once at shutdown. Everything the
 * journal holds goes into ONE LMDB write transaction: dirty runs (and a
 * new run's steps and what it was submitted from, once), dirty tasks,
 * cache changes, blob references, run deletions, forgotten agents, dirty
 * agents, log chunks, join tokens, pool nodes and the id counters, and
 * with each run, task, agent and pool node written the events its change
 * makes (events.c: the event log). Only after the commit succeeded
 * is the journal emptied, the files of dropped blobs unlinked and
 * deleted runs freed; on failure the transaction is aborted and the loop
 * stops without sending anything. Either way a new run's spec texts
 * (run_t.source) are freed. Records of runs being deleted are skipped
 * (their deletion is in the same transaction).
 */
#include "sched_internal.h"

#include <inttypes.h>

#include "log.h"

/* store_cache_prune: whether an entry's run is still there. */
static bool run_alive(const char *run_id, void *arg)
{
    return dag_find_run(arg, run_id) != NULL;
}

static int write_journal(sched_t *s)
{
    journal_t *j = &s->journal;
    int rc = 0;
    for (run_t *r = j->dirty_runs; r && rc == 0; r = r->dirty_next) {
        if (r->deleting)
            continue;
        rc = store_put_run(s->store, r->rec);
        if (rc == 0 && r->steps_unwritten) /* once, at submit */
            rc = store_put_steps(s->store, r->rec->id, r->steps);
        if (rc == 0 && r->steps_unwritten && r->source) /* likewise */
            rc = store_put_spec(s->store, r->rec->id, r->source);
    }
    for (task_t *t = j->dirty_tasks; t && rc == 0; t = t->dirty_next) {
        Drover__TaskRecord rec;
        if (t->run->deleting)
            continue;
        dag_task_record(t, &rec);
        rc = store_put_task(s->store, t->run->rec->id, &rec);
    }
    if (rc == 0 && j->prune_cache && !j->clear_cache) {
        uint64_t n;
        rc = store_cache_prune(s->store, run_alive, s, &n);
        if (rc == 0 && n)
            log_info("step cache: %" PRIu64 " entries of deleted runs removed", n);
    }
    if (rc == 0 && j->clear_cache) {
        uint64_t n;
        rc = store_cache_clear(s->store, &n);
    }
    for (size_t i = 0; i < j->n_cache_puts && rc == 0; i++) {
        task_t *t = j->cache_puts[i];
        if (!t->run->deleting)
            rc = store_cache_put(s->store, t->cache_key, t->run->rec->id, t->index);
    }
    if (rc == 0)
        rc = blobstore_commit(s);
    if (rc == 0)
        rc = dag_commit_deletions(s);
    for (size_t i = 0; i < j->n_forgotten_agents && rc == 0; i++)
        rc = store_delete_agent(s->store, j->forgotten_agents[i]); /* before any re-register */
    for (agent_t *a = j->dirty_agents; a && rc == 0; a = a->dirty_next) {
        Drover__AgentRecord rec;
        fleet_record(a, &rec);
        rc = store_put_agent(s->store, &rec);
    }
    for (log_write_t *w = j->log_writes; w && rc == 0; w = w->next)
        rc = store_put_log(s->store, w->run_id, w->task, w->attempt, w->offset, w->data, w->len);
    if (rc == 0)
        rc = schedules_commit(s);
    if (rc == 0)
        rc = tokens_commit(s);
    if (rc == 0)
        rc = pools_commit(s);
    if (rc == 0 && j->counters_dirty) {
        rc = store_put_counter(s->store, "next_run", s->dag.next_run);
        if (rc == 0)
            rc = store_put_counter(s->store, "next_attempt", s->dag.next_attempt);
    }
    if (rc == 0)
        rc = events_derive(s); /* the events of what was written above */
    if (rc == 0)
        rc = events_commit(s); /* pruning, the event counter */
    return rc;
}

int commit_journal(sched_t *s)
{
    if (journal_empty(&s->journal))
        return 0;
    int64_t began_us = metrics_now_us();
    int rc = store_begin(s->store);
    if (rc == 0)
        rc = write_journal(s);
    if (rc == 0)
        rc = store_commit(s->store);
    else
        store_abort(s->store);
    if (rc == 0) { /* the metrics' commit latency: writes and sync */
        metrics_observe_commit(&s->metrics, (double)(metrics_now_us() - began_us) / 1e6);
        events_wake(s); /* held requests, from the batch: its strings are alive yet */
    }
    /* New runs' specs: stored (`drover run spec` reads them from there),
     * or never to be (the loop stops on a failed commit) */
    for (run_t *r = s->journal.dirty_runs; r; r = r->dirty_next)
        if (r->source) {
            drover__run_spec_record__free_unpacked(r->source, NULL);
            r->source = NULL;
        }
    if (rc < 0) {
        events_after_commit(s, false);
        return rc;
    }
    journal_reset(&s->journal); /* touches tasks: before deleted runs are freed */
    schedules_after_commit(s);
    pools_after_commit(s);
    events_after_commit(s, true); /* after journal_reset: a prune may go on */
    blobstore_after_commit(s);
    dag_free_deleted(s);
    return 0;
}
