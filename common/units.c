/* units — see units.h.
 *
 * Memory may carry a decimal fraction only with a unit suffix ("1.5Gi");
 * the result is rounded up to a whole byte, as Kubernetes does. cpu takes
 * at most millicore precision ("0.0005" is refused). Durations are whole
 * numbers with units h, m, s, ms, each at most once and largest first
 * ("1h30m"); a bare number is seconds. No locale, no strtod: every form is
 * spelled out below, and overflow is an error, never a wrap.
 */
#include "units.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Decimal digits only, at most max. */
int spec_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
            return -EINVAL;
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Leading decimal digits of *p into *v (no overflow); advances *p. */
static int take_digits(const char **p, uint64_t *v, size_t *ndigits)
{
    uint64_t x = 0;
    size_t n = 0;
    while (**p >= '0' && **p <= '9') {
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, **p - '0', &x))
            return -EINVAL;
        (*p)++;
        n++;
    }
    *v = x;
    *ndigits = n;
    return n ? 0 : -EINVAL;
}

/* Bytes from "N", "N[KMGT]" (powers of 1000) or "N[KMGT]i" (powers of
 * 1024); "N.F" only with a suffix, rounded up to a whole byte. No sign,
 * spaces or exponent; overflow of 64 bits is -EINVAL. */
int spec_parse_memory(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},
                 {"K", 1000ull},
                 {"M", 1000000ull},
                 {"G", 1000000000ull},
                 {"T", 1000000000000ull},
                 {"Ki", 1ull << 10},
                 {"Mi", 1ull << 20},
                 {"Gi", 1ull << 30},
                 {"Ti", 1ull << 40}};
    uint64_t whole, frac = 0, mult = 0;
    size_t nd, nf = 0;
    const char *p = s;

    if (!s || !out || take_digits(&p, &whole, &nd) < 0)
        return -EINVAL;
    if (*p == '.') {
        p++;
        if (take_digits(&p, &frac, &nf) < 0 || nf > 18)
            return -EINVAL;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(p, units[i].suffix))
            mult = units[i].mult;
    }
    if (!mult || (nf && mult == 1))
        return -EINVAL;
    unsigned __int128 v = (unsigned __int128)whole * mult;
    if (nf) {
        unsigned __int128 scale = 1;
        for (size_t i = 0; i < nf; i++)
            scale *= 10;
        /* round a fractional byte up */
        v += ((unsigned __int128)frac * mult + scale - 1) / scale;
    }
    if (v > UINT64_MAX)
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

/* Millicores from "N", "N.F" (to millicore precision; further digits must
 * be 0) or "Nm". "0" is allowed (no cpu request). At most UINT32_MAX. */
int spec_parse_cpu(const char *s, uint32_t *out_milli)
{
    uint64_t whole, milli;
    size_t nd;
    const char *p = s;

    if (!s || !out_milli || take_digits(&p, &whole, &nd) < 0)
        return -EINVAL;
    if (!strcmp(p, "m")) {
        milli = whole;
    } else {
        uint64_t frac = 0;
        if (*p == '.') {
            p++;
            /* up to three digits are millicores; any further must be zero */
            size_t nf = 0;
            for (; *p >= '0' && *p <= '9'; p++, nf++) {
                if (nf < 3)
                    frac = frac * 10 + (uint64_t)(*p - '0');
                else if (*p != '0')
                    return -EINVAL;
            }
            if (nf == 0)
                return -EINVAL;
            for (; nf < 3; nf++)
                frac *= 10;
        }
        if (*p || __builtin_mul_overflow(whole, 1000, &milli) ||
            __builtin_add_overflow(milli, frac, &milli))
            return -EINVAL;
    }
    if (milli > UINT32_MAX)
        return -EINVAL;
    *out_milli = (uint32_t)milli;
    return 0;
}

/* Milliseconds from a bare number of seconds, or from whole-number parts
 * with units h, m, s, ms, each once and largest first ("1h30m", "2s500ms").
 * Empty, fractions, other units and 64-bit overflow are -EINVAL. */
int spec_parse_duration(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"h", 3600000ull}, {"m", 60000ull}, {"s", 1000ull}};
    uint64_t total = 0, v, part;
    size_t nd;
    int last_rank = 5; /* h=4, m=3, s=2, ms=1: largest first, each once */
    const char *p = s;

    if (!s || !out_ms || !*s)
        return -EINVAL;
    if (spec_parse_uint(s, UINT64_MAX, &v) == 0) {
        if (__builtin_mul_overflow(v, 1000, &total))
            return -EINVAL;
        *out_ms = total;
        return 0;
    }
    while (*p) {
        if (take_digits(&p, &v, &nd) < 0)
            return -EINVAL;
        size_t u = 0, n = sizeof units / sizeof units[0];
        while (u < n && strncmp(p, units[u].unit, strlen(units[u].unit)))
            u++;
        if (u == n)
            return -EINVAL;
        int rank = units[u].ms == 1 ? 1 : units[u].ms == 1000 ? 2 : units[u].ms == 60000 ? 3 : 4;
        if (rank >= last_rank)
            return -EINVAL;
        last_rank = rank;
        p += strlen(units[u].unit);
        if (__builtin_mul_overflow(v, units[u].ms, &part) ||
            __builtin_add_overflow(total, part, &total))
            return -EINVAL;
    }
    *out_ms = total;
    return 0;
}

void units_format_duration(uint64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t at = 0;
    if (!len)
        return;
    buf[0] = '\0';
    if (!ms) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t i = 0; i < 4 && at < len; i++) {
        uint64_t n = ms / units[i].ms;
        ms %= units[i].ms;
        if (n) {
            int w = snprintf(buf + at, len - at, "%llu%s", (unsigned long long)n, units[i].unit);
            at = w < 0 ? len : at + (size_t)w;
        }
    }
}

int spec_parse_duration_unit(const char *s, uint64_t *out_ms)
{
    uint64_t v;
    if (s && spec_parse_uint(s, UINT64_MAX, &v) == 0 && v != 0)
        return -EDOM;
    return spec_parse_duration(s, out_ms);
}
