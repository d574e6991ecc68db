/* outbox — the agent's reports waiting for droverd's acknowledgement.
 *
 * ZeroMQ does not redeliver across reconnects, so every report (STARTED,
 * LOG, EXITED) gets a sequence number and stays here until droverd acks
 * that number. Reports never sent, or sent longer ago than the resend
 * interval, are collected again for sending, each re-send after twice the
 * wait of the one before (up to 16 times the interval); after a
 * re-registration all of them are, and the back-off starts over. Acks
 * remove in O(1) (seq → node map).
 */
#ifndef DROVER_OUTBOX_H
#define DROVER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drover.pb-c.h"

typedef struct outbox outbox_t;

/* New empty outbox; NULL on allocation failure. */
outbox_t *outbox_new(void);

/* Free every queued report and the outbox; NULLs the pointer. */
void outbox_destroy(outbox_t **ob);

/* Queue rep (the outbox takes ownership: rep and rep->data.data must be
 * malloc'd, rep->reason malloc'd or the empty-string default). Sets and
 * returns rep->seq. */
uint64_t outbox_add(outbox_t *ob, Drover__Report *rep);

/* droverd acknowledged seq: drop that report. Unknown seqs are ignored.
 * Returns the attempt id when the report was an EXITED one, else 0. */
uint64_t outbox_ack(outbox_t *ob, uint64_t seq);

/* Collect up to max reports (and about max_bytes of log data) that are due:
 * never sent, or sent at least resend_ms before now (doubling with each
 * re-send, up to 16 x resend_ms), or every one if all.
 * Pointers stay owned by the outbox and valid until acked. Marks them sent
 * at now. Returns how many were stored in out; *more is set when due
 * reports were left for a further call. */
size_t outbox_collect(outbox_t *ob, int64_t now, int64_t resend_ms, bool all, Drover__Report **out,
                      size_t max, size_t max_bytes, bool *more);

/* Treat every queued report as never sent, so the next collects send them
 * all, batch after batch (after a re-registration). */
void outbox_mark_unsent(outbox_t *ob);

/* Whether an EXITED report for attempt_id is still unacknowledged. */
bool outbox_has_exit(const outbox_t *ob, uint64_t attempt_id);

/* Call fn for each attempt with an unacknowledged EXITED report. */
void outbox_each_exit(const outbox_t *ob, void (*fn)(uint64_t attempt_id, void *arg), void *arg);

/* Number of queued reports and their log bytes. */
size_t outbox_count(const outbox_t *ob);
size_t outbox_bytes(const outbox_t *ob);

/* Free a report built for outbox_add that was never added. */
void outbox_report_free(Drover__Report *rep);

#endif
