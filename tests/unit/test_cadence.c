/* test_cadence — when a schedule fires and what a fire does
 * (common/cadence.c), on an injected clock: intervals and cron with
 * start and end, the interval a fire stands for, catch-up after downtime
 * (all, bounded by max; latest; none), and the concurrency policies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <time.h>

#include "cadence.h"

static int64_t at(const char *utc)
{
    struct tm tm = {0};
    cr_assert_not_null(strptime(utc, "%Y-%m-%dT%H:%M:%SZ", &tm), "bad time %s", utc);
    return (int64_t)timegm(&tm);
}

Test(cadence, intervals_from_their_start_until_their_end)
{
    cadence_t c = {.every_s = 1800,
                   .start_s = at("2026-12-07T10:00:00Z"),
                   .end_s = at("2026-12-07T11:00:00Z")};
    int64_t t;
    cr_assert_eq(cadence_next(&c, at("2026-12-01T00:00:00Z"), &t), 0);
    cr_assert_eq(t, at("2026-12-07T10:00:00Z"), "the first fire is the start");
    cr_assert_eq(cadence_next(&c, t, &t), 0);
    cr_assert_eq(t, at("2026-12-07T10:30:00Z"));
    cr_assert_eq(cadence_next(&c, at("2026-12-07T10:31:00Z"), &t), 0);
    cr_assert_eq(t, at("2026-12-07T11:00:00Z"));
    cr_assert_eq(cadence_next(&c, t, &t), -ENOENT, "past its end");
    cr_assert_eq(cadence_prev(&c, at("2026-12-07T10:30:00Z")), at("2026-12-07T10:00:00Z"));
}

Test(cadence, cron_fires_and_the_interval_each_stands_for)
{
    cron_t *cr = NULL;
    char err[128];
    cr_assert_eq(cron_parse("0 3 * * *", &cr, err, sizeof err), 0);
    cadence_t c = {.cron = cr, .tz = "Europe/Berlin"};
    int64_t t;
    cr_assert_eq(cadence_next(&c, at("2026-12-07T12:00:00Z"), &t), 0);
    cr_assert_eq(t, at("2026-12-08T02:00:00Z"), "03:00 in Berlin (CET)");
    cr_assert_eq(cadence_prev(&c, t), at("2026-12-07T02:00:00Z"));
    cron_destroy(&cr);
    cr_assert_eq(cron_parse("*/5 * * * *", &cr, err, sizeof err), 0);
    c.cron = cr;
    cr_assert_eq(cadence_prev(&c, at("2026-12-07T12:00:00Z")), at("2026-12-07T11:55:00Z"));
    cron_destroy(&cr);
}

Test(cadence, catch_up_after_downtime)
{
    cadence_t c = {.every_s = 60, .start_s = at("2026-12-07T10:00:00Z")};
    int64_t due[16], handled;
    size_t n;
    /* last handled 10:02, droverd back at 10:07:30: 10:03 .. 10:07 were missed */
    int64_t last = at("2026-12-07T10:02:00Z"), now = at("2026-12-07T10:07:30Z");
    cadence_due(&c, last, 0, now, CATCHUP_ALL, 16, due, &n, &handled);
    cr_assert_eq(n, 5, "all: every missed fire, got %zu", n);
    cr_assert_eq(due[0], at("2026-12-07T10:03:00Z"));
    cr_assert_eq(due[4], at("2026-12-07T10:07:00Z"));
    cr_assert_eq(handled, due[4]);
    /* bounded: two now, the rest on the next call, none lost or doubled */
    cadence_due(&c, last, 0, now, CATCHUP_ALL, 2, due, &n, &handled);
    cr_assert_eq(n, 2);
    cr_assert_eq(handled, at("2026-12-07T10:04:00Z"));
    cadence_due(&c, handled, 0, now, CATCHUP_ALL, 16, due, &n, &handled);
    cr_assert_eq(n, 3);
    cr_assert_eq(due[0], at("2026-12-07T10:05:00Z"));
    cadence_due(&c, handled, 0, now, CATCHUP_ALL, 16, due, &n, &handled);
    cr_assert_eq(n, 0, "nothing due twice");
    /* latest: only 10:07 */
    cadence_due(&c, last, 0, now, CATCHUP_LATEST, 16, due, &n, &handled);
    cr_assert_eq(n, 1);
    cr_assert_eq(due[0], at("2026-12-07T10:07:00Z"));
    cr_assert_eq(handled, due[0]);
    /* none: the missed ones are passed over (10:07 is 30 s late: more than
     * half its 60 s gap); the next on-time fire runs */
    cadence_due(&c, last, 0, now, CATCHUP_NONE, 16, due, &n, &handled);
    cr_assert_eq(n, 0);
    cr_assert_eq(handled, at("2026-12-07T10:07:00Z"));
    cadence_due(&c, handled, 0, at("2026-12-07T10:08:01Z"), CATCHUP_NONE, 16, due, &n, &handled);
    cr_assert_eq(n, 1, "an on-time fire is not a missed one");
    cr_assert_eq(due[0], at("2026-12-07T10:08:00Z"));
    /* a new schedule: nothing before its creation is due */
    cadence_due(&c, 0, at("2026-12-07T10:05:30Z"), now, CATCHUP_ALL, 16, due, &n, &handled);
    cr_assert_eq(n, 2);
    cr_assert_eq(due[0], at("2026-12-07T10:06:00Z"));
}

Test(cadence, concurrency_policies)
{
    cr_assert_eq(cadence_admit(CONCURRENCY_ALLOW, 0, 1), ADMIT_START);
    cr_assert_eq(cadence_admit(CONCURRENCY_ALLOW, 1, 2), ADMIT_START);
    cr_assert_eq(cadence_admit(CONCURRENCY_ALLOW, 2, 2), ADMIT_WAIT);
    cr_assert_eq(cadence_admit(CONCURRENCY_ALLOW, 50, 0), ADMIT_START, "0 = no bound");
    cr_assert_eq(cadence_admit(CONCURRENCY_FORBID, 0, 1), ADMIT_START);
    cr_assert_eq(cadence_admit(CONCURRENCY_FORBID, 1, 5), ADMIT_SKIP);
    cr_assert_eq(cadence_admit(CONCURRENCY_REPLACE, 0, 1), ADMIT_START);
    cr_assert_eq(cadence_admit(CONCURRENCY_REPLACE, 1, 1), ADMIT_REPLACE);
}

Test(cadence, latest_after_a_year_down_is_found_without_walking_the_year)
{
    cron_t *cr = NULL;
    char err[128];
    cr_assert_eq(cron_parse("* * * * *", &cr, err, sizeof err), 0);
    cadence_t c = {.cron = cr, .tz = "Europe/Berlin"};
    int64_t due[4], handled, now = at("2026-12-07T10:05:30Z");
    size_t n;
    /* 525,600 missed minutes: one cron_next each would take minutes */
    cadence_due(&c, now - 365 * 86400, 0, now, CATCHUP_LATEST, 4, due, &n, &handled);
    cr_assert_eq(n, 1);
    cr_assert_eq(due[0], at("2026-12-07T10:05:00Z"));
    cadence_due(&c, now - 365 * 86400, 0, now, CATCHUP_NONE, 4, due, &n, &handled);
    cr_assert_eq(n, 0, "30 s late on a 60 s gap: missed");
    cr_assert_eq(handled, at("2026-12-07T10:05:00Z"));
    cron_destroy(&cr);
    cadence_t every = {.every_s = 7, .start_s = at("2026-12-07T10:00:00Z")};
    cadence_due(&every, at("2025-01-01T00:00:00Z"), 0, now, CATCHUP_LATEST, 4, due, &n, &handled);
    cr_assert_eq(n, 1);
    cr_assert_eq(due[0], at("2026-12-07T10:00:00Z") + (330 / 7) * 7, "on the interval's grid");
}
