/* test_cron — cron expressions and their next fire time in real time
 * zones (common/cron.c), on an injected "now": no test waits for a clock.
 *
 * Parsing (fields, names, ranges, steps, lists, macros; every error names
 * its field) and next-fire across daylight-saving changes in three zones
 * of both hemispheres: a wall-clock time in a spring-forward gap fires
 * once, at the gap's end; one repeated when clocks fall back fires once,
 * at its first occurrence; an every-15-minutes schedule keeps its real
 * interval through both. Plus the day-of-month / day-of-week rule, leap
 * days, expressions that never fire, zone names and RFC 3339 output.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "cron.h"

/* "2026-03-29T01:00:00Z" → seconds since the epoch. */
static int64_t at(const char *utc)
{
    struct tm tm = {0};
    cr_assert_not_null(strptime(utc, "%Y-%m-%dT%H:%M:%SZ", &tm), "bad time %s", utc);
    return (int64_t)timegm(&tm);
}

static char shown[64];
static const char *show(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(shown, sizeof shown, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return shown;
}

/* The fire times of expr in zone tz after `after`, n of them, must be want[]. */
static void fires(const char *expr, const char *tz, const char *after, size_t n,
                  const char *const *want)
{
    cron_t *c = NULL;
    char err[256] = "";
    cr_assert_eq(cron_parse(expr, &c, err, sizeof err), 0, "%s: %s", expr, err);
    int64_t t = at(after);
    for (size_t i = 0; i < n; i++) {
        int64_t next = 0;
        cr_assert_eq(cron_next(c, tz, t, &next), 0, "%s in %s: no fire after %s", expr, tz,
                     show(t));
        cr_assert_eq(next, at(want[i]), "%s in %s after %s: fire %zu is %s, want %s", expr, tz,
                     after, i, show(next), want[i]);
        t = next;
    }
    cron_destroy(&c);
}

#define FIRES(expr, tz, after, ...)                                                                \
    do {                                                                                           \
        const char *const w_[] = {__VA_ARGS__};                                                    \
        fires(expr, tz, after, sizeof w_ / sizeof *w_, w_);                                        \
    } while (0)

static void bad(const char *expr, const char *want)
{
    cron_t *c = (cron_t *)0x1;
    char err[256] = "";
    cr_assert_eq(cron_parse(expr, &c, err, sizeof err), -EINVAL, "'%s' was accepted", expr);
    cr_assert_null(c);
    cr_assert(strstr(err, want), "'%s': error '%s' lacks '%s'", expr, err, want);
}

Test(cron, plain_schedules_in_utc)
{
    FIRES("0 3 * * *", "", "2026-12-07T10:00:00Z", "2026-12-08T03:00:00Z", "2026-12-09T03:00:00Z");
    FIRES("*/20 * * * *", "UTC", "2026-12-07T10:05:00Z", "2026-12-07T10:20:00Z",
          "2026-12-07T10:40:00Z", "2026-12-07T11:00:00Z");
    FIRES("15,45 9-10 * * MON-FRI", "", "2026-12-11T10:50:00Z", /* a Friday */
          "2026-12-14T09:15:00Z", "2026-12-14T09:45:00Z", "2026-12-14T10:15:00Z");
    FIRES("0 0 1 jan,Jul *", "", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z",
          "2027-01-01T00:00:00Z");
    FIRES("@hourly", "", "2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z");
    FIRES("@weekly", "", "2026-12-07T10:00:00Z", "2026-12-13T00:00:00Z");   /* Sunday */
    FIRES("0 0 * * 7", "", "2026-12-07T10:00:00Z", "2026-12-13T00:00:00Z"); /* 7 is Sunday too */
    FIRES("30 4 10/10 * *", "", "2026-12-07T00:00:00Z", "2026-12-10T04:30:00Z",
          "2026-12-20T04:30:00Z", "2026-12-30T04:30:00Z", "2027-01-10T04:30:00Z");
}

Test(cron, both_day_fields_restricted_match_either)
{
    /* the 13th or a Friday (Vixie cron); 2026-12-07 is a Monday */
    FIRES("0 0 13 * 5", "", "2026-12-07T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z",
          "2026-12-18T00:00:00Z");
    /* one of them '*': both must hold (every Friday) */
    FIRES("0 0 * * 5", "", "2026-12-07T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-18T00:00:00Z");
}

Test(cron, leap_days_and_schedules_that_never_fire)
{
    FIRES("0 0 29 2 *", "", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z");
    cron_t *c = NULL;
    char err[128];
    cr_assert_eq(cron_parse("0 0 30 2 *", &c, err, sizeof err), 0);
    int64_t next = 0;
    cr_assert_eq(cron_next(c, "", at("2026-01-01T00:00:00Z"), &next), -ENOENT);
    cron_destroy(&c);
}

Test(cron, berlin_spring_forward_and_fall_back)
{
    /* 2026-03-29: 02:00 CET → 03:00 CEST (01:00Z); 02:30 does not exist: once, at 03:00 */
    FIRES("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z",
          "2026-03-30T00:30:00Z");
    /* 2026-10-25: 03:00 CEST → 02:00 CET (01:00Z); 02:30 happens twice: once, the first */
    FIRES("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z",
          "2026-10-26T01:30:00Z");
    /* every 15 minutes keeps its real interval through both */
    FIRES("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:40:00Z", "2026-03-29T00:45:00Z",
          "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z");
    FIRES("*/15 * * * *", "Europe/Berlin", "2026-10-25T00:40:00Z", "2026-10-25T00:45:00Z",
          "2026-10-25T01:00:00Z", "2026-10-25T01:15:00Z");
}

Test(cron, new_york_spring_forward_and_fall_back)
{
    /* 2026-03-08: 02:00 EST → 03:00 EDT (07:00Z) */
    FIRES("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z",
          "2026-03-09T06:30:00Z");
    /* 2026-11-01: 02:00 EDT → 01:00 EST (06:00Z); 01:30 EDT is 05:30Z, 01:30 EST 06:30Z */
    FIRES("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z",
          "2026-11-02T06:30:00Z");
}

Test(cron, sydney_in_the_southern_hemisphere)
{
    /* 2026-04-05: 03:00 AEDT → 02:00 AEST (16:00Z on the 4th): 02:30 twice, fired once */
    FIRES("30 2 * * *", "Australia/Sydney", "2026-04-04T00:00:00Z", "2026-04-04T15:30:00Z",
          "2026-04-05T16:30:00Z");
    /* 2026-10-04: 02:00 AEST → 03:00 AEDT (16:00Z on the 3rd): 02:30 missing, fired at 03:00 */
    FIRES("30 2 * * *", "Australia/Sydney", "2026-10-03T00:00:00Z", "2026-10-03T16:00:00Z",
          "2026-10-04T15:30:00Z");
}

Test(cron, errors_name_the_field)
{
    bad("60 * * * *", "field 1 (minute): 60 is out of range 0-59");
    bad("* 24 * * *", "field 2 (hour): 24 is out of range 0-23");
    bad("* * 0 * *", "field 3 (day of month): 0 is out of range 1-31");
    bad("* * * 13 *", "field 4 (month): 13 is out of range 1-12");
    bad("* * * * 8", "field 5 (day of week): 8 is out of range 0-7");
    bad("* * * foo *", "field 4 (month): 'foo' is not a number or a name");
    bad("*/0 * * * *", "field 1 (minute): step '/0' must be 1-59");
    bad("5-1 * * * *", "range 5-1 goes backwards");
    bad("1,,2 * * * *", "field 1 (minute)");
    bad("* * *", "3 fields, want 5");
    bad("* * * * * *", "more than 5 fields");
    bad("", "0 fields, want 5");
    bad("@fortnightly", "unknown macro '@fortnightly'");
    bad("1-5x * * * *", "unexpected 'x'");
}

Test(cron, zones_and_rfc3339)
{
    char err[256], buf[64];
    cr_assert_eq(cron_zone_check("Europe/Berlin", err, sizeof err), 0, "%s", err);
    cr_assert_eq(cron_zone_check("", err, sizeof err), 0);
    cr_assert_eq(cron_zone_check("Mars/Olympus", err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "unknown time zone 'Mars/Olympus'"), "%s", err);
    cr_assert_eq(cron_zone_check("../../etc/passwd", err, sizeof err), -EINVAL);
    cr_assert_eq(cron_zone_check("/etc/localtime", err, sizeof err), -EINVAL);
    cr_assert_eq(cron_format(at("2026-03-29T01:00:00Z"), "Europe/Berlin", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-03-29T03:00:00+02:00");
    cr_assert_eq(cron_format(at("2026-11-01T06:30:00Z"), "America/New_York", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-01T01:30:00-05:00");
    cr_assert_eq(cron_format(at("2026-12-07T00:00:00Z"), "", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-12-07T00:00:00Z");
    cr_assert_eq(cron_format(0, "", buf, 8), -ENOSPC);
}
