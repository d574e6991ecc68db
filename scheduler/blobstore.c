/* blobstore — blob files and their references: see blobstore.h.
 *
 * A blob file is written under blobs/tmp/ and renamed into place only
 * after its digest checked out and the data was fsync'd (blobs.c), so a
 * blob that exists is always whole. References change only inside the
 * group commit; files are unlinked only after the commit that deleted
 * their record, on the worker thread.
 */
#include "sched_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "util.h"

#define SWEEP_AGE_MS (3600 * 1000)

char *blobstore_path(const sched_t *s, const uint8_t digest[DIGEST_LEN])
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(digest, hex);
    return xasprintf("%s/blobs/%.2s/%s", s->cfg.state_dir, hex, hex);
}

int blobstore_init(sched_t *s)
{
    char *tmp = xasprintf("%s/blobs/tmp", s->cfg.state_dir);
    util_rm_rf(tmp); /* half-received blobs of a previous run */
    int rc = util_mkdir_p(tmp, 0750);
    if (rc < 0)
        log_error("mkdir(%s): %s", tmp, strerror(-rc));
    free(tmp);
    return rc;
}

void blobstore_queue_op(sched_t *s, blob_op_kind_t kind, const uint8_t digest[DIGEST_LEN],
                        int64_t delta, uint64_t size)
{
    journal_blob_op(&s->journal, kind, digest, delta, size);
}

void blobstore_ref_artifact(sched_t *s, const Drover__Artifact *art, int delta)
{
    for (size_t i = 0; i < art->n_files; i++)
        if (art->files[i]->digest.len == DIGEST_LEN)
            blobstore_queue_op(s, BLOB_OP_REF, art->files[i]->digest.data, delta,
                               art->files[i]->size);
}

bool blobstore_exists(sched_t *s, const uint8_t digest[DIGEST_LEN])
{
    uint64_t size, refs;
    return store_blob_get(s->store, digest, &size, &refs) == 0;
}

/* Apply the queued ops of one kind class: references first, then the
 * sweep's drops, so a blob referenced in the same commit is never dropped. */
static int apply_ops(sched_t *s, bool drops)
{
    journal_t *j = &s->journal;
    for (size_t i = 0; i < j->n_blob_ops; i++) {
        blob_op_t *op = &j->blob_ops[i];
        if ((op->kind == BLOB_OP_DROP) != drops)
            continue;
        uint64_t refs = 0, size, cur;
        int rc;
        switch (op->kind) {
        case BLOB_OP_NEW:
            rc = store_blob_adjust(s->store, op->digest, 0, op->size, &refs);
            break;
        case BLOB_OP_REF:
            rc = store_blob_adjust(s->store, op->digest, op->delta, op->size, &refs);
            if (rc == 0 && op->delta < 0 && refs == 0)
                op->kind = BLOB_OP_UNLINK; /* record deleted: remove the file after commit */
            else
                op->kind = BLOB_OP_NEW; /* nothing to do after commit */
            break;
        case BLOB_OP_DROP: /* sweep: only if still unreferenced */
            rc = store_blob_get(s->store, op->digest, &size, &cur);
            if (rc == 0 && cur == 0) {
                rc = store_blob_adjust(s->store, op->digest, -1, 0, &refs);
            } else {
                op->kind = BLOB_OP_NEW;
                rc = 0;
                continue;
            }
            break;
        case BLOB_OP_UNLINK:
            rc = 0;
            break;
        default:
            rc = -EINVAL;
        }
        if (rc < 0)
            return rc;
        if (op->kind == BLOB_OP_DROP && drops)
            op->kind = BLOB_OP_UNLINK;
    }
    return 0;
}

int blobstore_commit(sched_t *s)
{
    int rc = apply_ops(s, false);
    return rc < 0 ? rc : apply_ops(s, true);
}

static void unlink_blob(void *arg)
{
    unlink((char *)arg);
}

void blobstore_after_commit(sched_t *s)
{
    journal_t *j = &s->journal;
    for (size_t i = 0; i < j->n_blob_ops; i++) {
        if (j->blob_ops[i].kind != BLOB_OP_UNLINK)
            continue;
        char *path = blobstore_path(s, j->blob_ops[i].digest);
        if (s->worker) {
            worker_submit(s->worker, unlink_blob, free, path);
        } else { /* shutting down */
            unlink_blob(path);
            free(path);
        }
    }
    j->n_blob_ops = 0;
}

static void sweep_one(const uint8_t digest[DIGEST_LEN], void *arg)
{
    blobstore_queue_op(arg, BLOB_OP_DROP, digest, 0, 0);
}

void blobstore_sweep(sched_t *s)
{
    store_blob_unreferenced(s->store, util_now_ms() - SWEEP_AGE_MS, sweep_one, s);
}
