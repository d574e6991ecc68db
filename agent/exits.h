/* exits — finished attempts' EXITED reports, kept on disk until droverd
 * acknowledges them.
 *
 * The outbox lives in memory: an agent killed between a step's exit and
 * droverd's acknowledgement of its EXITED report would forget that the
 * step ran to its end, and droverd would run it again. So each EXITED
 * report is also appended to a journal, <work_dir>/exits.journal, and a
 * second record drops it once acknowledged. A restarted agent loads what
 * is left before it registers, holds those attempts in its registration
 * and re-sends the reports, so the step counts as finished once, with its
 * exit status and outputs (their blobs are in droverd's store before an
 * EXITED report is ever sent).
 *
 * Writes run on the worker thread in submission order, so a drop never
 * overtakes its report. No fsync: this guards against the agent process
 * dying, not the machine (whose steps die with it).
 */
#ifndef DROVER_EXITS_H
#define DROVER_EXITS_H

#include <stdint.h>

#include "drover.pb-c.h"
#include "worker.h"

typedef struct exits exits_t;

/* The journal under work_dir (made if missing). worker must outlive it.
 * Never NULL; when the journal cannot be opened that is logged and reports
 * are kept in memory only. */
exits_t *exits_open(const char *work_dir, worker_t *worker);

/* Keep a copy of an EXITED report (rep stays the caller's). */
void exits_save(exits_t *e, const Drover__Report *rep);

/* droverd has acknowledged the EXITED report of attempt_id. */
void exits_drop(exits_t *e, uint64_t attempt_id);

/* At start, before registering (blocking read): call fn with every report
 * a previous agent process left (fn takes ownership); records that are not
 * an EXITED report of their own attempt, and a record cut short at the end,
 * are logged and forgotten; the journal is then rewritten with the loaded
 * reports alone. Returns how many were loaded. */
size_t exits_load(exits_t *e, void (*fn)(Drover__Report *rep, void *arg), void *arg);

/* Free; files stay. Accepts NULL; NULLs the pointer. */
void exits_close(exits_t **e);

#endif
