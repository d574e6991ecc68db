/* fuzz_cron — cron expressions (common/cron.h) and a schedule's decisions
 * (common/cadence.h), as `drover schedule create --cron` hands them to
 * droverd.
 *
 * The input's first line is the expression; the next bytes pick a zone
 * and a start time. cron_parse must return 0 or -EINVAL with a one-line
 * reason; an accepted expression's next fire must be strictly after the
 * start, and the fire after it strictly after that, and a fire must be
 * found again from one second before it (next is a function of time, not
 * of the walk); cadence_prev of a fire must be before it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cadence.h"
#include "cron.h"
#include "fuzz_common.h"

static const char *const zones[] = {
    "", "UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t elen = nl ? (size_t)(nl - data) : size;
    if (elen > 300)
        return 0;
    char *expr = fz_strndup(data, elen);
    const uint8_t *rest = nl ? nl + 1 : data + size;
    size_t rlen = (size_t)(data + size - rest);
    const char *tz = zones[rlen ? rest[0] % (sizeof zones / sizeof *zones) : 0];
    int64_t start = 1700000000; /* 2023-11 */
    for (size_t i = 1; i < rlen && i < 5; i++)
        start += (int64_t)rest[i] << (8 * (i - 1));
    cron_t *c = NULL;
    char err[256] = "";
    int rc = cron_parse(expr, &c, err, sizeof err);
    if (rc != 0 && rc != -EINVAL)
        fz_fail("cron_parse returned %d", rc);
    if (rc < 0) {
        if (c)
            fz_fail("a refused expression left a result");
        if (!fz_one_line(err, sizeof err))
            fz_fail("error is not one line: %s", err);
        free(expr);
        return 0;
    }
    int64_t next, again, after;
    if (cron_next(c, tz, start, &next) == 0) {
        if (next <= start)
            fz_fail("'%s' in '%s': next %lld not after %lld", expr, tz, (long long)next,
                    (long long)start);
        if (cron_next(c, tz, next - 1, &again) != 0 || again != next)
            fz_fail("'%s' in '%s': next from %lld is %lld, from a second before %lld", expr, tz,
                    (long long)start, (long long)next, (long long)again);
        if (cron_next(c, tz, next, &after) == 0 && after <= next)
            fz_fail("'%s': the fire after %lld is %lld", expr, (long long)next, (long long)after);
        cadence_t cad = {.cron = c, .tz = tz};
        if (cadence_prev(&cad, next) >= next)
            fz_fail("'%s': prev of %lld is not before it", expr, (long long)next);
    }
    char buf[64];
    if (cron_format(start, tz, buf, sizeof buf) != 0)
        fz_fail("cron_format failed");
    cron_destroy(&c);
    free(expr);
    return 0;
}
