/* cron — standard 5-field cron expressions, evaluated in an IANA time zone
 * with correct daylight-saving behaviour (README "Schedules").
 *
 * Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or
 * JAN-DEC), day of week (0-7 or SUN-SAT; 0 and 7 are Sunday). Each is a
 * comma list of `*`, `N`, `A-B`, with an optional `/STEP` (`*` / STEP,
 * A-B/STEP, N/STEP = N through the field's end). Names in any case. As in
 * Vixie cron, when both day fields are restricted (neither starts with
 * `*`) a day matches when either does; otherwise both must. The macros
 * @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly
 * stand for their usual expressions.
 *
 * Time zones: the next fire time is found by walking the zone's wall
 * clock (days, then the matching hours and minutes) and mapping each
 * matching wall-clock time to the instants that have it. A wall-clock time
 * in a spring-forward gap (02:30 when clocks jump from 02:00 to 03:00)
 * fires once, at the end of the gap (03:00 local); one that happens twice
 * when clocks fall back fires once, at its first occurrence — unless the
 * hour field is `*` (every hour), where it fires at both, as every-N-
 * minutes schedules keep their real interval. The zone is applied through
 * TZ and the C library's tz database (tzdata), which is process-wide
 * state: callers are single-threaded (droverd's loop thread; no other
 * thread of droverd reads the local time).
 */
#ifndef DROVER_CRON_H
#define DROVER_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cron cron_t;

/* Parse expr (5 fields or a macro) into *out (caller frees with
 * cron_destroy). 0, or -EINVAL with a reason naming the field in err:
 * "field 2 (hour): 24 is out of range 0-23". */
int cron_parse(const char *expr, cron_t **out, char *err, size_t errlen);

/* Free c and NULL the pointer; accepts NULL. */
void cron_destroy(cron_t **c);

/* Whether tz names a time zone of the tz database ("UTC",
 * "Europe/Berlin"); "" is UTC. 0, or -EINVAL with the reason in err (a
 * malformed name, or none such in /usr/share/zoneinfo). */
int cron_zone_check(const char *tz, char *err, size_t errlen);

/* The first instant (seconds since the epoch) strictly after after_s at
 * which c fires in zone tz ("" = UTC; checked by cron_zone_check). 0, or
 * -ENOENT when it never fires within five years (30 February). */
int cron_next(const cron_t *c, const char *tz, int64_t after_s, int64_t *next_s);

/* t as RFC 3339 in zone tz, with its offset ("2026-03-29T03:00:00+02:00";
 * "Z" in UTC), into buf. 0, or -ENOSPC when buf is too small. */
int cron_format(int64_t t, const char *tz, char *buf, size_t len);

#endif
