/* store — droverd's durable state in one LMDB environment.
 *
 * Named databases: meta (schema version, id counters), runs (run id →
 * RunRecord: the run's own small state), steps (run id → RunSteps: its
 * compiled steps, written once at submit), tasks (run id + index →
 * TaskRecord), agents (name → AgentRecord), logs (run id + task + attempt
 * + byte offset → chunk), blobs (digest → BlobRecord: size, references),
 * cache (step cache key → CacheRecord), specs (run id → RunSpecRecord:
 * what the run was submitted from, the spec and its imports' texts,
 * written once with the run; a state dir from before it gets the
 * database, empty, when opened: not a schema change), tokens (join token
 * id → TokenRecord: the secret's SHA-256, never the secret), pools
 * (pool name → PoolRecord: an operator's scale or drain) and pool_nodes
 * (node name → PoolNodeRecord: each node a pool has, by state) and
 * events (first seq → EventBatch: the event log, one batch a commit,
 * written by the commit phase in the transaction of the changes); each created empty in an
 * older state dir.
 * Values are protobuf-encoded (proto/drover.proto). A run's record and
 * its steps are apart so that what changes often (the run's status) does
 * not rewrite what never changes (its steps): a task's transition costs
 * the task's record, not the run's.
 *
 * Writes are grouped: the scheduler opens one write transaction per loop
 * iteration (store_begin), puts every record that changed, and commits
 * (store_commit) before sending any message that depends on them. A failed
 * commit leaves the previous durable state untouched.
 */
#ifndef DROVER_STORE_H
#define DROVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drover.pb-c.h"

/* 2: compiled steps in their own database (1 kept them in RunRecord; a
 * version-1 state dir is migrated when opened). */
#define STORE_SCHEMA_VERSION 2

typedef struct store store_t;

/* Open (creating if needed) the environment in dir. A state dir of
 * schema version 1 is migrated to the current one in one transaction
 * (all or nothing); any other version is refused. NULL on failure, with a
 * reason in err. */
store_t *store_new(const char *dir, char *err, size_t errlen);

/* Close and NULL the pointer; accepts NULL. Aborts an open transaction. */
void store_destroy(store_t **store);

/* Start the write transaction the put functions use. 0 or -errno. */
int store_begin(store_t *s);

/* Make everything put since store_begin durable. 0 or -errno; on failure
 * nothing of the transaction is stored. */
int store_commit(store_t *s);

/* Drop the open write transaction, if any. */
void store_abort(store_t *s);

/* What a failed store call's -errno err means, for the log, in buf
 * (returned): when the state dir's disk is full, "no space left on device
 * (state dir DIR: N bytes free)" whatever LMDB said (a short write is
 * EIO to it); otherwise strerror, with the free space added for an I/O
 * or space error ("Input/output error (state dir DIR: N bytes free)"). */
const char *store_strerror(const store_t *s, int err, char *buf, size_t len);

/* Puts (inside store_begin/store_commit). 0 or -errno. */
/* The run's own record; -EINVAL if it carries legacy_steps (the steps go
 * to store_put_steps). */
int store_put_run(store_t *s, const Drover__RunRecord *run);
/* A run's compiled steps: once, when it is created. */
int store_put_steps(store_t *s, const char *run_id, const Drover__RunSteps *steps);
/* What a run was submitted from: once, in the transaction creating it. */
int store_put_spec(store_t *s, const char *run_id, const Drover__RunSpecRecord *spec);
int store_put_task(store_t *s, const char *run_id, const Drover__TaskRecord *task);
int store_put_agent(store_t *s, const Drover__AgentRecord *agent);
/* A schedule's record (database "schedules", key = its name), and its
 * deletion (absent: fine); inside the write transaction. 0 or -errno. */
int store_put_schedule(store_t *s, const Drover__ScheduleRecord *sc);
int store_delete_schedule(store_t *s, const char *name);
/* A join token's record (database "tokens", key = its id; the secret's
 * hash, never the secret), inside the write transaction. 0 or -errno. */
int store_put_token(store_t *s, const Drover__TokenRecord *tok);
/* Node pools: an operator's hold on a pool (database "pools", key = pool
 * name) and each node a pool has (database "pool_nodes", key = node name;
 * deleted when the node is forgotten), inside the write transaction. */
int store_put_pool(store_t *s, const Drover__PoolRecord *p);
int store_put_pool_node(store_t *s, const Drover__PoolNodeRecord *n);
int store_delete_pool_node(store_t *s, const char *name);
int store_put_counter(store_t *s, const char *name, uint64_t value);
int store_put_log(store_t *s, const char *run_id, uint32_t task, uint32_t attempt, uint64_t offset,
                  const uint8_t *data, size_t len);

/* Bytes of values (records, counters, log chunks) put by the transactions
 * committed since the store was opened: what commits wrote, before LMDB
 * rounds it up to pages. For tests and accounting. */
uint64_t store_bytes_put(const store_t *s);

/* A counter's value (0 if never set), read in its own read transaction. */
uint64_t store_get_counter(store_t *s, const char *name);

/* Startup load: calls each callback once per record in key order; records
 * are unpacked and freed by the store after the callback returns (copy what
 * you keep). A run comes with its steps (never NULL: empty, with an error
 * logged, if its steps record is missing or undecodable). Tasks come
 * grouped by run, after all runs. 0 or -errno. */
typedef struct {
    void (*run)(const Drover__RunRecord *run, const Drover__RunSteps *steps, void *arg);
    void (*task)(const char *run_id, const Drover__TaskRecord *task, void *arg);
    void (*agent)(const Drover__AgentRecord *agent, void *arg);
    void (*schedule)(const Drover__ScheduleRecord *sc, void *arg); /* may be NULL; after agents */
    void *arg;
} store_loader_t;
int store_load(store_t *s, const store_loader_t *loader);
/* Every join token record, in id order (unpacked and freed by the store
 * after fn returns). 0 or -errno. */
int store_load_tokens(store_t *s, void (*fn)(const Drover__TokenRecord *tok, void *arg), void *arg);
/* Every pool hold, then every pool node, in name order (records freed by
 * the store after the callback returns). 0 or -errno. */
int store_load_pools(store_t *s, void (*pool)(const Drover__PoolRecord *p, void *arg),
                     void (*node)(const Drover__PoolNodeRecord *n, void *arg), void *arg);

/* Blobs (content-addressed artifact files; the files themselves live in
 * STATE_DIR/blobs, see blobs.c). */
/* Read a blob's record (read transaction). 0, -ENOENT, or -errno. */
int store_blob_get(store_t *s, const uint8_t digest[32], uint64_t *size, uint64_t *refs);
/* Inside the write transaction: add delta to a blob's reference count,
 * creating the record (with size) when absent and delta >= 0. *refs gets
 * the new count. A count reaching 0 with delta < 0 deletes the record
 * (the caller then removes the file, after the commit). 0 or -errno. */
int store_blob_adjust(store_t *s, const uint8_t digest[32], int64_t delta, uint64_t size,
                      uint64_t *refs);
/* How many blob records there are (LMDB's count) and their sizes summed:
 * the sum is walked once (the first call: droverd makes it at start,
 * outside any write transaction), then kept as commits create and delete
 * records. 0 or -errno. */
int store_blob_totals(store_t *s, uint64_t *count, uint64_t *bytes);
/* The bytes of the LMDB file in use (its pages up to the last used). */
uint64_t store_used_bytes(store_t *s);
/* Call fn for every blob with no references created before before_ms
 * (read transaction). */
int store_blob_unreferenced(store_t *s, int64_t before_ms,
                            void (*fn)(const uint8_t digest[32], void *arg), void *arg);

/* Step cache: cache key → the task whose outputs can be reused. */
int store_cache_get(store_t *s, const uint8_t key[32], char *run_id, size_t run_id_len,
                    uint32_t *task);
int store_cache_put(store_t *s, const uint8_t key[32], const char *run_id, uint32_t task);
/* Drop every cache entry (inside the write transaction); *count gets how many. */
int store_cache_clear(store_t *s, uint64_t *count);
/* Drop the entries whose run keep() says is gone (inside the write
 * transaction); *count gets how many. One pass over the cache. */
int store_cache_prune(store_t *s, bool (*keep)(const char *run_id, void *arg), void *arg,
                      uint64_t *count);

/* What run_id was submitted from, read in its own read transaction: a new
 * record in *out (caller frees with drover__run_spec_record__free_unpacked).
 * 0, -ENOENT (none: the run is unknown, or from before droverd kept
 * them), or -errno. */
int store_get_spec(store_t *s, const char *run_id, Drover__RunSpecRecord **out);

/* Delete a run: its record, its steps, its spec, every task record and
 * every log chunk (inside the write transaction). 0 or -errno. */
int store_delete_run(store_t *s, const char *run_id);

/* The event log (database "events"; README "Events"): one EventBatch a
 * commit, key = its first event's seq as 8 bytes big-endian.
 * store_put_events: the n events evs (seqs contiguous, above every one
 * stored) as one batch, inside the write transaction. 0 or -errno. */
int store_put_events(store_t *s, Drover__EventRecord **evs, size_t n);
/* The EventBatch of the n events evs as protobuf-c would pack it, into out
 * (NULL: only the size); lens: room for n sizes (scratch). Returns the
 * size. (store_put_events' encoder, open for its test.) */
size_t store_events_encode(Drover__EventRecord **evs, size_t n, uint8_t *out, size_t *lens);
/* In its own read transaction: the events with seq > since (of run_id
 * only, when non-empty), oldest first, at most max, into *out (an array
 * of *n; free with store_events_free); *first_seq = the lowest seq kept
 * (0: none is). 0 or -errno. */
int store_read_events(store_t *s, uint64_t since, const char *run_id, size_t max,
                      Drover__EventRecord ***out, size_t *n, uint64_t *first_seq);
/* store_read_events that looks at no more than about scan_max events
 * after since (whole batches: it stops after the batch where it reached
 * scan_max) and says in *last_seen the highest seq it looked at (0: none;
 * events after it were not looked at when it stopped at max or scan_max),
 * so a run-filtered read of a long log costs the loop a bounded time. */
int store_scan_events(store_t *s, uint64_t since, const char *run_id, size_t max, size_t scan_max,
                      Drover__EventRecord ***out, size_t *n, uint64_t *first_seq,
                      uint64_t *last_seen);
void store_events_free(Drover__EventRecord **evs, size_t n);
/* Inside the write transaction: delete whole batches from the lowest up
 * while every event of the batch is below seq keep_from, or the batch's
 * newest event is older than before_ms; at most limit batches (*more: it
 * stopped at limit with more to delete). end_seq: the seq after the last
 * stored. *pruned = how many events went. 0 or -errno. */
int store_prune_events(store_t *s, uint64_t keep_from, uint64_t end_seq, int64_t before_ms,
                       size_t limit, uint64_t *pruned, bool *more);

/* Delete agent name's record in the open transaction (absent: fine). 0 or
 * -errno. */
int store_delete_agent(store_t *s, const char *name);

/* Copy up to max bytes of one attempt's log starting at offset into a new
 * buffer (*out, caller frees, may be NULL when *len is 0). 0 or -errno. */
int store_get_log(store_t *s, const char *run_id, uint32_t task, uint32_t attempt, uint64_t offset,
                  size_t max, uint8_t **out, size_t *len);

#endif
