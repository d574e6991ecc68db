/* cadence — when a schedule fires and what a fire does (README
 * "Schedules"): the pure decisions, on times given by the caller (so unit
 * tests inject the clock), apart from storage and the loop.
 *
 * A cadence is a cron expression in a time zone (cron.h) or a fixed
 * interval (every N seconds from its start), bounded by an optional start
 * and end. A fire at time T stands for the interval [previous fire, T):
 * {{run.scheduled_at}} is T, {{run.interval_start}} the fire before it
 * (T - every for an interval; for cron, the previous fire time),
 * {{run.interval_end}} T.
 *
 * Catch-up, after droverd was down or the schedule paused across fire
 * times (cadence_due): `all` runs every missed fire in order, `latest`
 * only the last one, `none` none (the schedule waits for its next fire; a
 * fire met within a minute of its time, or half the gap to the fire
 * before when that is shorter, is on time, not missed).
 * Overlap (cadence_admit): `allow` starts a run while fewer than
 * max_active of the schedule's runs are going (else the fire waits),
 * `forbid` skips a fire while one is going (recorded as skipped),
 * `replace` cancels the going ones and starts.
 */
#ifndef DROVER_CADENCE_H
#define DROVER_CADENCE_H

#include <stddef.h>
#include <stdint.h>

#include "cron.h"

typedef struct {
    const cron_t *cron; /* NULL: an interval of every_s */
    const char *tz;     /* cron's zone ("" = UTC) */
    int64_t every_s;    /* > 0 when cron is NULL */
    int64_t start_s;    /* first possible fire (interval: the first fire); 0 = none */
    int64_t end_s;      /* last possible fire; 0 = none */
} cadence_t;

typedef enum { CATCHUP_ALL, CATCHUP_LATEST, CATCHUP_NONE } cadence_catchup_t;
typedef enum { CONCURRENCY_ALLOW, CONCURRENCY_FORBID, CONCURRENCY_REPLACE } cadence_policy_t;
typedef enum {
    ADMIT_START,   /* start a run */
    ADMIT_WAIT,    /* allow at max_active: the fire stays due */
    ADMIT_SKIP,    /* forbid with a run going: the fire is skipped (recorded) */
    ADMIT_REPLACE, /* replace: cancel the going runs, then start */
} cadence_admit_t;

/* The first fire strictly after after_s: 0 with *next_s, or -ENOENT
 * (past its end, or a cron expression that never fires). */
int cadence_next(const cadence_t *c, int64_t after_s, int64_t *next_s);

/* The fire before t (the start of the interval t stands for): for an
 * interval t - every; for cron the latest fire before t (searched back at
 * most a year and a day; t - 1 day when none). */
int64_t cadence_prev(const cadence_t *c, int64_t t);

/* The fires due at now_s after the last one handled (last_s; 0 = none
 * yet: only fires from max(start, created_s) on count), under catchup, at
 * most max of them, oldest first, into due[] (*n set). *handled_s is set
 * to the latest fire this call decided on (started or skipped by the
 * catch-up rule), so the caller stores it as its next last_s; fires beyond
 * max stay due for a later call. */
void cadence_due(const cadence_t *c, int64_t last_s, int64_t created_s, int64_t now_s,
                 cadence_catchup_t catchup, size_t max, int64_t *due, size_t *n,
                 int64_t *handled_s);

/* What a fire does with `active` of the schedule's runs still going. */
cadence_admit_t cadence_admit(cadence_policy_t policy, uint32_t active, uint32_t max_active);

#endif
