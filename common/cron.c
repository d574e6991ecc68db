/* cron — see cron.h for the grammar and the daylight-saving rules.
 *
 * A parsed expression is five bit sets. Finding the next fire time walks
 * calendar days in the zone (pure arithmetic on civil dates: no library
 * call per day), and only on a matching day asks the C library, through
 * mktime/localtime_r under TZ, which instants have each matching
 * wall-clock time: none (a gap), one, or two (clocks fell back). The
 * earliest candidate after the given instant on the first day that has
 * one is the answer; days are at most five years' worth, so an expression
 * that never fires (30 February) ends the walk with -ENOENT.
 */
#include "cron.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

struct cron {
    uint64_t minutes;      /* bit m: minute m */
    uint32_t hours;        /* bit h */
    uint32_t days;         /* bit d: day of month d (1-31) */
    uint16_t months;       /* bit m: month m (1-12) */
    uint8_t weekdays;      /* bit w: day of week w (0 = Sunday) */
    bool dom_any, dow_any; /* the day fields started with '*' */
    bool every_hour;       /* the hour field is all 24 hours */
};

typedef struct {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] is value min + i (NULL: numbers only) */
} field_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_t fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day of week", 0, 7, day_names},
};

/* One value of field f at *p (a number or, where allowed, a name). */
static int value(const field_t *f, const char **p, int *out, char *err, size_t errlen, int idx)
{
    const char *s = *p;
    if (*s >= '0' && *s <= '9') {
        long v = 0;
        while (*s >= '0' && *s <= '9' && v < 1000)
            v = v * 10 + (*s++ - '0');
        if (v < f->min || v > f->max) {
            snprintf(err, errlen, "field %d (%s): %ld is out of range %d-%d", idx + 1, f->name, v,
                     f->min, f->max);
            return -EINVAL;
        }
        *out = (int)v;
        *p = s;
        return 0;
    }
    for (int i = 0; f->names && f->names[i]; i++) {
        if (!strncasecmp(s, f->names[i], 3)) {
            *out = f->min + i;
            if (f == &fields[4])
                *out = i; /* SUN = 0 */
            *p = s + 3;
            return 0;
        }
    }
    snprintf(err, errlen, "field %d (%s): '%.16s' is not a %s", idx + 1, f->name, s,
             f->names ? "number or a name" : "number");
    return -EINVAL;
}

/* Field idx's text [s, e) into the bit set *bits. */
static int parse_field(int idx, const char *s, const char *e, uint64_t *bits, bool *starts_any,
                       char *err, size_t errlen)
{
    const field_t *f = &fields[idx];
    char *text = xstrndup(s, (size_t)(e - s));
    int rc = 0;
    *bits = 0;
    *starts_any = text[0] == '*';
    size_t len = strlen(text);
    if (!len || text[0] == ',' || text[len - 1] == ',' || strstr(text, ",,")) {
        snprintf(err, errlen, "field %d (%s): an empty item in '%s'", idx + 1, f->name, text);
        free(text);
        return -EINVAL;
    }
    for (char *save = NULL, *item = strtok_r(text, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        const char *p = item;
        int lo = f->min, hi = f->max, step = 1;
        bool single = false;
        if (*p == '*') {
            p++;
        } else {
            if ((rc = value(f, &p, &lo, err, errlen, idx)) < 0)
                break;
            hi = lo;
            single = true;
            if (*p == '-') {
                p++;
                if ((rc = value(f, &p, &hi, err, errlen, idx)) < 0)
                    break;
                single = false;
                if (hi < lo) {
                    snprintf(err, errlen, "field %d (%s): range %d-%d goes backwards", idx + 1,
                             f->name, lo, hi);
                    rc = -EINVAL;
                    break;
                }
            }
        }
        if (*p == '/') {
            p++;
            long v = 0;
            const char *d = p;
            while (*p >= '0' && *p <= '9' && v < 1000)
                v = v * 10 + (*p++ - '0');
            if (p == d || v < 1 || v > f->max) {
                snprintf(err, errlen, "field %d (%s): step '/%.8s' must be 1-%d", idx + 1, f->name,
                         d, f->max);
                rc = -EINVAL;
                break;
            }
            step = (int)v;
            if (single)
                hi = f->max; /* N/STEP: from N to the end */
        }
        if (*p) {
            snprintf(err, errlen, "field %d (%s): unexpected '%.16s' in '%.32s'", idx + 1, f->name,
                     p, item);
            rc = -EINVAL;
            break;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << (idx == 4 && v == 7 ? 0 : v);
    }
    if (rc == 0 && *bits == 0) {
        snprintf(err, errlen, "field %d (%s) is empty", idx + 1, f->name);
        rc = -EINVAL;
    }
    free(text);
    return rc;
}

int cron_parse(const char *expr, cron_t **out, char *err, size_t errlen)
{
    static const struct {
        const char *macro, *expr;
    } macros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                  {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                  {"@hourly", "0 * * * *"}};
    *out = NULL;
    if (!expr || strlen(expr) > 256) {
        snprintf(err, errlen, "a cron expression is at most 256 bytes");
        return -EINVAL;
    }
    while (*expr == ' ' || *expr == '\t')
        expr++;
    if (*expr == '@') {
        size_t n = strcspn(expr, " \t");
        for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
            if (strlen(macros[i].macro) == n && !strncasecmp(expr, macros[i].macro, n) &&
                !expr[n + strspn(expr + n, " \t")])
                return cron_parse(macros[i].expr, out, err, errlen);
        snprintf(err, errlen,
                 "unknown macro '%.*s' (use @yearly, @monthly, @weekly, @daily or @hourly)",
                 (int)(n > 32 ? 32 : n), expr);
        return -EINVAL;
    }
    cron_t c = {0};
    uint64_t bits[5];
    bool any[5];
    const char *p = expr;
    int n = 0;
    while (*p) {
        const char *e = p + strcspn(p, " \t");
        if (n == 5) {
            snprintf(err, errlen,
                     "more than 5 fields (minute hour day-of-month month day-of-week)");
            return -EINVAL;
        }
        if (parse_field(n, p, e, &bits[n], &any[n], err, errlen) < 0)
            return -EINVAL;
        n++;
        p = e + strspn(e, " \t");
    }
    if (n != 5) {
        snprintf(err, errlen,
                 "%d field%s, want 5 (minute hour day-of-month month day-of-week), e.g. "
                 "\"0 3 * * *\"",
                 n, n == 1 ? "" : "s");
        return -EINVAL;
    }
    c.minutes = bits[0];
    c.hours = (uint32_t)bits[1];
    c.days = (uint32_t)bits[2];
    c.months = (uint16_t)bits[3];
    c.weekdays = (uint8_t)bits[4];
    c.dom_any = any[2];
    c.dow_any = any[4];
    c.every_hour = c.hours == 0xffffffu;
    *out = xmalloc(sizeof **out);
    **out = c;
    return 0;
}

void cron_destroy(cron_t **c)
{
    if (!c || !*c)
        return;
    free(*c);
    *c = NULL;
}

int cron_zone_check(const char *tz, char *err, size_t errlen)
{
    if (!tz || !*tz)
        return 0;
    bool ok = strlen(tz) < 64 && tz[0] != '/' && !strstr(tz, "..");
    for (const char *p = tz; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
             strchr("/_+-", *p);
    if (!ok) {
        snprintf(err, errlen, "bad time zone name '%.64s' (an IANA name, e.g. Europe/Berlin)", tz);
        return -EINVAL;
    }
    const char *dir = getenv("TZDIR");
    char *path = xasprintf("%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    struct stat st;
    int rc = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? 0 : -EINVAL;
    if (rc < 0)
        snprintf(err, errlen, "unknown time zone '%s' (no %s; an IANA name, e.g. Europe/Berlin)",
                 tz, path);
    free(path);
    return rc;
}

/* ---- the zone, as process-wide TZ for the C library ---- */

typedef struct {
    char *saved;
    bool had;
} tz_saved_t;

static tz_saved_t tz_push(const char *tz)
{
    const char *old = getenv("TZ");
    tz_saved_t sv = {.saved = old ? xstrdup(old) : NULL, .had = old != NULL};
    setenv("TZ", tz && *tz ? tz : "UTC", 1);
    tzset();
    return sv;
}

static void tz_pop(tz_saved_t *sv)
{
    if (sv->had)
        setenv("TZ", sv->saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(sv->saved);
}

/* ---- civil dates (Howard Hinnant's days_from_civil) ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : n[m - 1];
}

static bool day_matches(const cron_t *c, int64_t days, int m, int d)
{
    if (!(c->months >> m & 1))
        return false;
    int wd = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    bool dom = c->days >> d & 1, dow = c->weekdays >> wd & 1;
    if (c->dom_any || c->dow_any)
        return dom && dow;
    return dom || dow;
}

/* ---- wall clock → instants, in the zone TZ holds ---- */

static bool wall_is(const struct tm *t, int64_t y, int mo, int d, int h, int mi)
{
    return t->tm_year == y - 1900 && t->tm_mon == mo - 1 && t->tm_mday == d && t->tm_hour == h &&
           t->tm_min == mi;
}

/* a's wall clock compared with y-mo-d h:mi:00: <0, 0, >0. */
static int wall_cmp(time_t a, int64_t y, int mo, int d, int h, int mi)
{
    struct tm t;
    localtime_r(&a, &t);
    int64_t x[6] = {t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec};
    int64_t w[6] = {y, mo, d, h, mi, 0};
    for (int i = 0; i < 6; i++)
        if (x[i] != w[i])
            return x[i] < w[i] ? -1 : 1;
    return 0;
}

/* The instants whose wall clock is y-mo-d h:mi:00, ascending, into out:
 * 1 or 2 of them; for a time in a gap, the gap's end (the first instant
 * whose wall clock is later). */
static int instants(int64_t y, int mo, int d, int h, int mi, time_t out[2])
{
    int n = 0;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm tm = {.tm_year = (int)(y - 1900),
                        .tm_mon = mo - 1,
                        .tm_mday = d,
                        .tm_hour = h,
                        .tm_min = mi,
                        .tm_isdst = dst};
        time_t t = mktime(&tm);
        struct tm back;
        if (t == (time_t)-1 || !localtime_r(&t, &back) || !wall_is(&back, y, mo, d, h, mi))
            continue;
        if (n == 0 || out[0] != t)
            out[n++] = t;
    }
    if (n == 2 && out[1] < out[0]) {
        time_t x = out[0];
        out[0] = out[1];
        out[1] = x;
    }
    if (n)
        return n;
    /* a gap: the first instant whose wall clock is not before it */
    struct tm tm = {.tm_year = (int)(y - 1900),
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_isdst = -1};
    time_t hi = mktime(&tm), lo = hi - 6 * 3600;
    if (hi == (time_t)-1)
        return 0;
    while (hi - lo > 1) {
        time_t mid = lo + (hi - lo) / 2;
        if (wall_cmp(mid, y, mo, d, h, mi) >= 0)
            hi = mid;
        else
            lo = mid;
    }
    out[0] = hi;
    return 1;
}

int cron_next(const cron_t *c, const char *tz, int64_t after_s, int64_t *next_s)
{
    tz_saved_t sv = tz_push(tz);
    time_t after = (time_t)after_s;
    struct tm lt;
    localtime_r(&after, &lt);
    int64_t after_day = days_from_civil(lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
    int64_t day = after_day - 1; /* a gap's end may fall on the next day */
    int64_t best = INT64_MAX;
    int rc = -ENOENT;
    for (int k = 0; k < 5 * 366 + 2 && rc < 0; k++, day++) {
        int64_t y;
        int m, d;
        civil_from_days(day, &y, &m, &d);
        if (d > days_in_month(y, m) || !day_matches(c, day, m, d))
            continue;
        int best_wall = -1; /* minute of the day of the best so far, in this day */
        for (int h = 0; h < 24; h++) {
            if (!(c->hours >> h & 1))
                continue;
            if (day == after_day && h + 3 < lt.tm_hour)
                continue; /* long before after: a clock shift is at most a few hours */
            for (int mi = 0; mi < 60; mi++) {
                time_t t[2];
                if (!(c->minutes >> mi & 1))
                    continue;
                /* a wall clock over an hour past the best is later than it
                 * (clocks fall back by an hour at most): the day is done,
                 * which spares a dense cron (every minute) ~1,400 mktime */
                if (best_wall >= 0 && h * 60 + mi > best_wall + 60)
                    break;
                int n = instants(y, m, d, h, mi, t);
                if (n == 2 && !c->every_hour)
                    n = 1; /* clocks fell back: a fixed hour fires at its first occurrence */
                for (int i = 0; i < n; i++)
                    if ((int64_t)t[i] > after_s && (int64_t)t[i] < best) {
                        best = t[i];
                        best_wall = best_wall < 0 ? h * 60 + mi : best_wall;
                    }
            }
            if (best_wall >= 0 && h * 60 > best_wall + 60)
                break;
        }
        if (best != INT64_MAX)
            rc = 0;
    }
    tz_pop(&sv);
    if (rc == 0)
        *next_s = best;
    return rc;
}

int cron_format(int64_t t, const char *tz, char *buf, size_t len)
{
    tz_saved_t sv = tz_push(tz);
    time_t tt = (time_t)t;
    struct tm lt;
    localtime_r(&tt, &lt);
    tz_pop(&sv);
    char date[32], off[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &lt);
    long o = lt.tm_gmtoff;
    if (o == 0)
        snprintf(off, sizeof off, "Z");
    else
        snprintf(off, sizeof off, "%c%02ld:%02ld", o < 0 ? '-' : '+', labs(o) / 3600,
                 labs(o) % 3600 / 60);
    int n = snprintf(buf, len, "%s%s", date, off);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
