/* workdirs — attempt directories, recycled instead of deleted.
 *
 * An attempt runs in <work>/runs/<run>/<task>/<n>/ with four subdirs
 * (work, inputs, outputs, checkpoint). Making and deleting these half a
 * dozen directory inodes per attempt is what ext4 does worst: it skips
 * inodes freed in the last minutes when it allocates one, so with steady
 * create+delete churn every mkdir scans past thousands of them. Instead a
 * finished attempt's task dir is emptied and parked as a spare
 * <work>/spare/<seq> holding 1/{work,inputs,outputs,checkpoint} (and an
 * empty progress file); the next first attempt of any task takes it with
 * one rename.
 *
 * A spare is indistinguishable, for the task, from new directories: four
 * empty subdirs, nothing else from earlier attempts (different runs may
 * belong to different users). workdirs.c says what is checked; anything
 * out of the ordinary and the attempt dir is removed as before.
 *
 * Threads: everything here is called on the loop thread. Emptying and
 * removing run on the worker (worker.h), queued behind every job the
 * attempt's transfers queued, so nothing writes into a dir once it is
 * clean. The pool, and the renames in and out of it, stay on the loop
 * thread, which is the one that makes attempt dirs: a task dir is parked
 * only when no other attempt of the task holds it.
 */
#ifndef DROVER_WORKDIRS_H
#define DROVER_WORKDIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/* In the attempt dir: $DROVER_PROGRESS, made by the agent (spot.c) and
 * kept, emptied, when the dir is recycled. */
#define WORKDIRS_PROGRESS "progress.jsonl"

typedef struct workdirs workdirs_t;

/* Attempt dirs under work_dir (which must exist), with up to cap spares.
 * Removes <work_dir>/spare and makes it anew (after a crash its contents
 * are unknown; blocking, for the agent's start); if that fails, it says so
 * and only makes and removes dirs. keep: never recycle nor remove anything
 * (--keep-work-dirs). worker must outlive the workdirs' jobs: destroy it
 * before workdirs_destroy. NULL on failure (logged). */
workdirs_t *workdirs_new(const char *work_dir, worker_t *worker, size_t cap, bool keep);

/* Make the attempt dir `dir` (<work_dir>/runs/<run>/<task>/<number>) and its
 * four empty subdirs, from a spare when number is 1 and one is free. The
 * task dir is held (never parked) until workdirs_release, which must
 * follow, also when this fails. 0 or a negative errno (nothing logged). */
int workdirs_make(workdirs_t *w, const char *dir, uint32_t number);

/* The attempt made with workdirs_make(dir, ...) is over (its transfers
 * cancelled): recycle or remove its dir in the background. contained: none
 * of its processes can still run (rt_task_contained); otherwise the dir is
 * only removed, never handed to another attempt, since a detached leftover
 * could still write into it (a process's cwd follows a rename). Takes dir
 * (freed once done). */
void workdirs_release(workdirs_t *w, char *dir, bool contained);

/* Spares ready to be taken. */
size_t workdirs_spares(const workdirs_t *w);

/* Attempt dirs being emptied or removed (worker jobs not done yet). */
size_t workdirs_busy(const workdirs_t *w);

/* Shutting down: from now on releases only remove, and nothing is queued
 * from a job's completion (the worker is about to stop). */
void workdirs_close(workdirs_t *w);

/* Free the pool (spares stay on disk until the next start); NULLs the
 * pointer. Accepts NULL. */
void workdirs_destroy(workdirs_t **w);

#endif
