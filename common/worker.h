/* worker — blocking work (file I/O, hashing) off the event loop.
 *
 * One background thread runs jobs in submission order; each job's done
 * callback then runs on the loop thread (woken with ev_async), so callers
 * never need locks: work() touches only its own job data, done() may touch
 * anything the loop owns. FIFO order is a guarantee callers rely on (e.g.
 * chunk writes of one blob are applied in order).
 */
#ifndef DROVER_WORKER_H
#define DROVER_WORKER_H

#include <ev.h>

typedef struct worker worker_t;

/* Start the thread. NULL on failure (logged). */
worker_t *worker_new(struct ev_loop *loop);

/* Queue a job: work(arg) on the worker thread, then done(arg) on the loop
 * thread. done may be NULL. */
void worker_submit(worker_t *w, void (*work)(void *arg), void (*done)(void *arg), void *arg);

/* Jobs queued or running (not yet done). */
unsigned worker_pending(const worker_t *w);

/* Finish queued jobs (running their done callbacks), stop the thread and
 * free; NULLs the pointer. Accepts NULL. */
void worker_destroy(worker_t **w);

#endif
