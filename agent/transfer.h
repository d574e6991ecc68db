/* transfer — the agent's side of artifact movement for one attempt.
 *
 * Before a step starts, xfer_in fetches the blobs of its inputs that the
 * agent's cache lacks (droverd streams them in chunks; the agent acks each
 * chunk once written, which is droverd's credit to send more), verifies
 * each digest, and materializes the inputs under $DROVER_INPUTS by
 * copying them from the cache (a copy, not a link: a step that writes to
 * an input cannot change the cached blob). After a step exits 0, xfer_out scans the
 * declared outputs (files, or directories as manifests of files), reads
 * the output params, offers the digests to droverd, uploads only the blobs
 * droverd lacks (at most WINDOW chunks unacknowledged), and hands back the
 * artifacts for the EXITED report. All file I/O and hashing run on the
 * worker thread. A session restarts its current blob after droverd
 * restarts (xfer_*_restart) or when it stalls. An upload droverd could not
 * store for its own reasons (BlobDone.retry: its disk is full) is not a
 * failure: it is offered again after a growing delay (xfer_out_tick).
 */
#ifndef DROVER_TRANSFER_H
#define DROVER_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drover.pb-c.h"
#include "worker.h"

/* How a session sends messages (each call takes ownership of the message,
 * freed with its protobuf-c free_unpacked after sending). */
typedef struct xfer_cache xfer_cache_t;
typedef struct {
    worker_t *worker;
    const char *cache_dir; /* content-addressed blob cache of this agent */
    xfer_cache_t *cache;   /* its bound and counters; NULL = unbounded */
    void (*send_offer)(void *host, Drover__UploadOffer *m);
    void (*send_chunk)(void *host, Drover__BlobChunk *m);
    void (*send_chunk_ack)(void *host, Drover__ChunkAck *m);
    void (*send_fetch)(void *host, Drover__FetchRequest *m);
    void *host;
} xfer_host_t;

/* The bound of the blob cache at dir (<dir>/<2 hex>/<64 hex>). A blob's
 * mtime is its last use: set when it is fetched, and again on every hit.
 * Once an attempt's inputs are materialized (copied out of the cache), the
 * least recently used blobs are removed until the cache holds at most
 * limit bytes, except blobs in use: those an input session still needs
 * (pinned from xfer_in_start until it is freed). Counters: hits (blobs
 * found in the cache), misses (fetched), evictions. Thread-safe (a mutex):
 * pins are taken on the loop thread, pruning runs on the worker. limit 0:
 * unbounded (still counted). */
xfer_cache_t *xfer_cache_new(const char *dir, uint64_t limit);
void xfer_cache_destroy(xfer_cache_t **c);
typedef struct {
    uint64_t limit, hits, misses, evictions, evicted_bytes, bytes; /* bytes: at the last prune */
} xfer_cache_stats_t;
void xfer_cache_stats(xfer_cache_t *c, xfer_cache_stats_t *out);
/* Worker (or a test): remove LRU blobs not in use until at most limit
 * bytes remain. */
void xfer_cache_prune(xfer_cache_t *c);

typedef struct xfer_in xfer_in_t;
typedef struct xfer_out xfer_out_t;

/* Fetch and materialize inputs into inputs_dir/LOCAL. done(arg, NULL) on
 * success or done(arg, reason) on failure, once, from the loop thread. */
xfer_in_t *xfer_in_start(const xfer_host_t *h, uint64_t attempt_id,
                         Drover__InputArtifact *const *inputs, size_t n, const char *inputs_dir,
                         void (*done)(void *arg, const char *error), void *arg);
void xfer_in_chunk(xfer_in_t *x, const Drover__BlobChunk *c);
void xfer_in_blob_done(xfer_in_t *x, const Drover__BlobDone *d);
void xfer_in_restart(xfer_in_t *x);
/* Cancel (no callback); frees once pending worker jobs are back. NULLs *x. */
void xfer_in_cancel(xfer_in_t **x);

/* Collect and upload outputs from outputs_dir. done(arg, arts, n_arts,
 * params, n_params, NULL) on success (the callee copies what it keeps), or
 * done(arg, NULL, 0, NULL, 0, reason). */
typedef void (*xfer_out_done_fn)(void *arg, Drover__Artifact **arts, size_t n_arts,
                                 Drover__KeyValue **params, size_t n_params, const char *error);
xfer_out_t *xfer_out_start(const xfer_host_t *h, uint64_t attempt_id, const char *outputs_dir,
                           char *const *artifacts, size_t n_artifacts, char *const *params,
                           size_t n_params, xfer_out_done_fn done, void *arg);
/* Digests of files already hashed, for the checkpoints of one attempt: a
 * file whose device, inode, size and mtime are unchanged since it was
 * hashed is not read again. ctime is not compared: each snapshot's hard
 * link changes it (xfer_snapshot); the checkpoint rule (replace files by
 * rename, README) makes a changed file a new inode. A file changed within the last racy_s
 * seconds is not remembered (a write in the same timestamp tick would not
 * show; the agent uses 2). Used only on the worker thread; release it
 * through the worker. */
typedef struct xfer_memo xfer_memo_t;
xfer_memo_t *xfer_memo_new(int racy_s);
/* Free m after every job already queued on h's worker (NULL is fine). */
void xfer_memo_release(const xfer_host_t *h, xfer_memo_t *m);
/* Upload dir/checkpoint as the artifact "checkpoint", like xfer_out_start,
 * hashing only what changed since the memo's last scans. */
xfer_out_t *xfer_checkpoint_start(const xfer_host_t *h, uint64_t attempt_id, const char *dir,
                                  xfer_memo_t *memo, xfer_out_done_fn done, void *arg);
/* Capture the directory src as it is now into dest (made here; dest's
 * parent must exist, on src's filesystem for links): each regular file is
 * a reflink clone where the filesystem can (FICLONE: immune to any later
 * write), else a hard link (immune to a replacement by rename, not to a
 * rewrite in place), else a copy. Dot-files and "*.tmp" (a temp file being
 * written) are left out, also in subdirectories; a file gone since the
 * directory was read is left out. Blocking, but a link or clone per file
 * is cheap (a copy is not: only where links fail); loop thread. 0, or -errno with err set and dest
 * removed. */
int xfer_snapshot(const char *src, const char *dest, char *err, size_t errlen);
void xfer_out_want(xfer_out_t *x, const Drover__UploadWant *w);
void xfer_out_chunk_ack(xfer_out_t *x, const Drover__ChunkAck *a);
void xfer_out_blob_done(xfer_out_t *x, const Drover__BlobDone *d);
void xfer_out_restart(xfer_out_t *x);
void xfer_out_cancel(xfer_out_t **x);

/* Periodic: restart sessions with no progress for a while. */
void xfer_in_tick(xfer_in_t *x, int64_t now_ms);
void xfer_out_tick(xfer_out_t *x, int64_t now_ms);

#endif
