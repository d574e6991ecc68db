/* agents_harness — a real droverd for the agents-socket fuzz target and
 * its seed generator.
 *
 * fz_open() starts a scheduler (sched_new) on a fresh LMDB state dir under
 * /dev/shm (or /tmp) with ipc:// endpoints, registers three agents through
 * agents_handle() with packed Register messages, submits one run that uses
 * every step feature (artifacts, output params, a literal and a run-time
 * fan-out, `when`, GPU and label placement, an image, retries, finally)
 * and runs one loop iteration, so the run's first tasks are assigned.
 *
 * An input is a conversation: a sequence of records
 *     sel:u8  len:u16 (little-endian)  body[len]
 * (a last record shorter than len takes what is left). sel & 7 picks who
 * speaks:
 *     0 gpu-1, 1 cpu-1, 2 cpu-2   the registered agents
 *     3 ghost                     a peer not registered (yet)
 *     4, 5, 6                     invalid routing ids: empty, 64 bytes,
 *                                 one with a space
 *     7                           an API client: body is an ApiRequest
 * and the other bits what happens around the message:
 *     0x10  age the speaker by an hour first (it misses heartbeats, so the
 *           next tick declares it lost), then tick
 *     0x20  tick first: retry backoffs have passed, agents_tick() runs
 *           (both 0x10 and 0x20: droverd's hourly clean-up too, as if the
 *           retention time had passed: finished runs are deleted)
 *     0x40  no loop iteration after it: batched with the next record
 *     0x80  droverd restarts first (sched_destroy, sched_new on the same
 *           state dir: everything is reloaded from LMDB, and the agents
 *           must register again)
 * After a record (unless 0x40) the harness waits for the scheduler's
 * worker thread and runs the loop without blocking (ev_run EVRUN_NOWAIT),
 * which places ready tasks, commits one LMDB transaction and sends what
 * is queued, as droverd does. The scheduler's own 100 ms tick timer is
 * stopped: time moves only when a record says so, so a conversation
 * replays the same way every time.
 */
#ifndef DROVER_FUZZ_AGENTS_HARNESS_H
#define DROVER_FUZZ_AGENTS_HARNESS_H

#include "sched_internal.h"

#define FZ_AGENTS   3
#define FZ_GHOST    3
#define FZ_API      7
#define FZ_AGE      0x10
#define FZ_TICK     0x20
#define FZ_NO_FLUSH 0x40
#define FZ_RESTART  0x80

typedef struct fz fz_t;

extern const char *const fz_agent_names[FZ_AGENTS];

/* A new scheduler in the state described above; aborts on failure. */
fz_t *fz_open(void);

/* The same with the three agents registered but no run submitted when
 * with_run is false (fz_run then returns NULL). */
fz_t *fz_open_fleet(bool with_run);

/* Destroy the scheduler and remove its state dir; NULLs the pointer. */
void fz_close(fz_t **f);

sched_t *fz_sched(fz_t *f);

/* The run fz_open submitted. */
run_t *fz_run(fz_t *f);

/* droverd restarts on the same state dir. */
void fz_restart(fz_t *f);

/* Deliver one record (sel as above). */
void fz_deliver(fz_t *f, uint8_t sel, const uint8_t *body, size_t len);

/* Wait for the worker and run the loop until nothing is pending. */
void fz_flush(fz_t *f);

/* Play well-behaved agents for up to rounds rounds (one droverd lost or
 * forgot in a restart registers again first, holding the attempts droverd
 * gave it): each task placed on them starts, uploads a blob and exits 0 with every declared output
 * (params "[\"1\",\"b\"]"), so whatever follows (when, fan-outs from
 * params, inputs, finally) runs too. */
void fz_drive(fz_t *f, int rounds);

/* Deliver every record of a conversation. */
void fz_converse(fz_t *f, const uint8_t *data, size_t size);

#endif
