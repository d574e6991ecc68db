/* cadence — see cadence.h. Pure functions of their arguments: no clock,
 * no storage (the caller passes "now" and keeps last_s durable). */
#include "cadence.h"

#include <errno.h>

int cadence_next(const cadence_t *c, int64_t after_s, int64_t *next_s)
{
    int64_t t;
    if (c->start_s && after_s < c->start_s - 1)
        after_s = c->start_s - 1; /* nothing fires before the start */
    if (!c->cron) {
        if (c->every_s <= 0)
            return -ENOENT;
        int64_t base = c->start_s ? c->start_s : 0;
        int64_t k = after_s < base ? 0 : (after_s - base) / c->every_s + 1;
        t = base + k * c->every_s;
    } else if (cron_next(c->cron, c->tz, after_s, &t) < 0) {
        return -ENOENT;
    }
    if (c->end_s && t > c->end_s)
        return -ENOENT;
    *next_s = t;
    return 0;
}

int64_t cadence_prev(const cadence_t *c, int64_t t)
{
    if (!c->cron)
        return t - c->every_s;
    /* widen a window back from t until a fire is in it, then bisect for
     * the last one before t: the latest lo whose next fire is before t
     * (next fire is monotonic in the time asked from). Walking the fires
     * one by one instead took a day of minutes for "* * * * 4" (the
     * fuzzer's timeout); bisecting costs ~25 cron_next calls whatever the
     * gap or the density. */
    for (int64_t span = 60; span <= 367 * 86400; span *= 2) {
        int64_t f, x;
        int64_t lo = t - span - 1, hi = t - 1; /* next(lo) < t <= next(hi) */
        if (cron_next(c->cron, c->tz, lo, &f) < 0 || f >= t)
            continue;
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (cron_next(c->cron, c->tz, mid, &x) == 0 && x < t) {
                lo = mid;
                f = x;
            } else {
                hi = mid;
            }
        }
        return f;
    }
    return t - 86400;
}

/* The latest fire at or before t (0: none). */
static int64_t last_fire_at_or_before(const cadence_t *c, int64_t t)
{
    if (c->end_s && t > c->end_s)
        t = c->end_s;
    int64_t f, check;
    if (!c->cron) {
        int64_t base = c->start_s;
        if (c->every_s <= 0 || t < base)
            return 0;
        f = base + (t - base) / c->every_s * c->every_s;
    } else {
        f = cadence_prev(c, t + 1); /* a fire, or a stand-in when none in a year */
        if (cron_next(c->cron, c->tz, f - 1, &check) < 0 || check != f)
            return 0;
    }
    return c->start_s && f < c->start_s ? 0 : f;
}

void cadence_due(const cadence_t *c, int64_t last_s, int64_t created_s, int64_t now_s,
                 cadence_catchup_t catchup, size_t max, int64_t *due, size_t *n, int64_t *handled_s)
{
    int64_t after = last_s ? last_s : created_s - 1, t;
    *n = 0;
    *handled_s = last_s;
    if (catchup == CATCHUP_ALL) {
        while (*n < max && cadence_next(c, after, &t) == 0 && t <= now_s) {
            due[(*n)++] = t;
            after = *handled_s = t;
        }
        return;
    }
    /* latest or none: the last fire at or before now, found directly (a
     * walk from the cursor would take a year of minutes after a long
     * downtime), if it is after the cursor */
    int64_t latest = last_fire_at_or_before(c, now_s);
    if (latest <= after || cadence_next(c, after, &t) != 0 || t > now_s)
        return;
    *handled_s = latest;
    /* none: a fire met within a grace after its time (a minute, or half
     * the gap from the fire before when shorter) is on time, not missed */
    int64_t gap = latest - cadence_prev(c, latest);
    int64_t grace = gap / 2 < 60 ? gap / 2 : 60;
    if (max > 0 && (catchup == CATCHUP_LATEST || now_s - latest < grace))
        due[(*n)++] = latest;
}

cadence_admit_t cadence_admit(cadence_policy_t policy, uint32_t active, uint32_t max_active)
{
    switch (policy) {
    case CONCURRENCY_FORBID:
        return active ? ADMIT_SKIP : ADMIT_START;
    case CONCURRENCY_REPLACE:
        return active ? ADMIT_REPLACE : ADMIT_START;
    case CONCURRENCY_ALLOW:
    default:
        return max_active && active >= max_active ? ADMIT_WAIT : ADMIT_START;
    }
}
