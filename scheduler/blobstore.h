/* blobstore — the content-addressed blob store: files and references
 * (included by sched_internal.h; include that instead).
 *
 * A blob is a file's content, named by its SHA-256: STATE_DIR/blobs/AB/
 * ABCD...; its record (size, references) is in LMDB. Reference changes
 * are queued in the journal and applied inside the loop's group commit
 * (blobstore_commit); a blob whose count drops to zero is unlinked after
 * the commit (blobstore_after_commit, on the worker thread). Blobs that
 * were uploaded but never referenced (an attempt lost after its upload)
 * are swept an hour later. Moving blobs to and from agents is blobs.c's.
 */
#ifndef DROVER_BLOBSTORE_H
#define DROVER_BLOBSTORE_H

#include <stdbool.h>
#include <stdint.h>

/* Reference change kinds (blob_op_t.kind). OP_UNLINK is internal: a
 * record this commit deleted, whose file goes after it. */
typedef enum { BLOB_OP_NEW, BLOB_OP_REF, BLOB_OP_DROP, BLOB_OP_UNLINK } blob_op_kind_t;

/* Make STATE_DIR/blobs/tmp, emptied of a previous run's half-received
 * blobs. 0 or -errno (logged). */
int blobstore_init(sched_t *s);
/* Path of a blob's file (caller frees). */
char *blobstore_path(const sched_t *s, const uint8_t digest[32]);
/* Whether a blob with this digest is stored (has a record). */
bool blobstore_exists(sched_t *s, const uint8_t digest[32]);
/* Queue a reference change for the next commit: BLOB_OP_NEW (a blob
 * stored or touched: the sweep spares it), BLOB_OP_REF (delta to its
 * count), BLOB_OP_DROP (the sweep: drop it if still unreferenced). */
void blobstore_queue_op(sched_t *s, blob_op_kind_t kind, const uint8_t digest[32], int64_t delta,
                        uint64_t size);
/* delta to the count of every file of art. */
void blobstore_ref_artifact(sched_t *s, const Drover__Artifact *art, int delta);
/* Inside the commit's transaction: apply the queued changes
 * (references first, then the sweep's drops). 0 or -errno. */
int blobstore_commit(sched_t *s);
/* After the commit: unlink the files of deleted records; the queue is
 * emptied. */
void blobstore_after_commit(sched_t *s);
/* Queue removal of blobs unreferenced for an hour. */
void blobstore_sweep(sched_t *s);

#endif
