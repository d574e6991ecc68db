/* metrics_text — the Prometheus text exposition of a MetricsView (see
 * metrics_text.h). Everything is written into a scratch buffer first and
 * appended to the caller's only when the whole view checked out, so a
 * bad view never leaves half a scrape. Numbers are written as the
 * shortest decimal that reads back as the same double (integers as
 * integers), NaN and infinities as Prometheus spells them.
 */
#include "metrics_text.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* [a-zA-Z_:][a-zA-Z0-9_:]* (colons only in metric names). */
static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (p > s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static void put_double(strbuf_t *b, double v)
{
    if (isnan(v)) {
        sb_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        sb_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char buf[40];
    if (v == floor(v) && fabs(v) < 9007199254740992.0) { /* an integer: all its digits */
        sb_printf(b, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    sb_puts(b, buf);
}

/* s with \ and newline escaped, and " too when quote (label values). */
static void put_escaped(strbuf_t *b, const char *s, bool quote)
{
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\\')
            sb_puts(b, "\\\\");
        else if (*p == '\n')
            sb_puts(b, "\\n");
        else if (*p == '"' && quote)
            sb_puts(b, "\\\"");
        else
            sb_putc(b, *p);
    }
}

/* NAME{labels[,le="B"]} — braces only when there is a label. */
static void put_series(strbuf_t *b, const char *name, const char *suffix,
                       const Drover__MetricSample *s, const char *le)
{
    sb_puts(b, name);
    sb_puts(b, suffix);
    if (s->n_labels == 0 && !le)
        return;
    sb_putc(b, '{');
    for (size_t i = 0; i < s->n_labels; i++) {
        sb_printf(b, "%s%s=\"", i ? "," : "", s->labels[i]->key);
        put_escaped(b, s->labels[i]->value, true);
        sb_putc(b, '"');
    }
    if (le)
        sb_printf(b, "%sle=\"%s\"", s->n_labels ? "," : "", le);
    sb_putc(b, '}');
}

static int check_sample(const Drover__MetricSample *s, bool histogram)
{
    for (size_t i = 0; i < s->n_labels; i++) {
        const char *k = s->labels[i]->key;
        if (!valid_name(k, false) || strncmp(k, "__", 2) == 0 ||
            (histogram && strcmp(k, "le") == 0) || !s->labels[i]->value)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->labels[j]->key, k) == 0)
                return -EINVAL;
    }
    if (!histogram)
        return 0;
    if (s->n_buckets != s->n_bounds + 1)
        return -EINVAL;
    for (size_t i = 0; i < s->n_bounds; i++)
        if (isnan(s->bounds[i]) || isinf(s->bounds[i]) || (i && s->bounds[i] <= s->bounds[i - 1]))
            return -EINVAL;
    return 0;
}

static int family(strbuf_t *b, const Drover__MetricFamily *f)
{
    bool histogram = f->type && strcmp(f->type, "histogram") == 0;
    if (!valid_name(f->name, true) || !f->type ||
        (!histogram && strcmp(f->type, "counter") != 0 && strcmp(f->type, "gauge") != 0))
        return -EINVAL;
    sb_printf(b, "# HELP %s ", f->name);
    put_escaped(b, f->help, false);
    sb_printf(b, "\n# TYPE %s %s\n", f->name, f->type);
    for (size_t i = 0; i < f->n_samples; i++) {
        const Drover__MetricSample *s = f->samples[i];
        if (check_sample(s, histogram) < 0)
            return -EINVAL;
        if (!histogram) {
            put_series(b, f->name, "", s, NULL);
            sb_putc(b, ' ');
            put_double(b, s->value);
            sb_putc(b, '\n');
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k < s->n_buckets; k++) {
            cum += s->buckets[k];
            strbuf_t le = {0};
            if (k < s->n_bounds)
                put_double(&le, s->bounds[k]);
            put_series(b, f->name, "_bucket", s, k < s->n_bounds ? le.buf : "+Inf");
            sb_printf(b, " %llu\n", (unsigned long long)cum);
            sb_free(&le);
        }
        put_series(b, f->name, "_sum", s, NULL);
        sb_putc(b, ' ');
        put_double(b, s->sum);
        sb_putc(b, '\n');
        put_series(b, f->name, "_count", s, NULL);
        sb_printf(b, " %llu\n", (unsigned long long)cum);
    }
    return 0;
}

int metrics_text(const Drover__MetricsView *m, strbuf_t *out)
{
    strbuf_t b = {0};
    int rc = 0;
    for (size_t i = 0; i < m->n_families && rc == 0; i++) {
        for (size_t j = 0; j < i && rc == 0; j++)
            if (m->families[i]->name && m->families[j]->name &&
                strcmp(m->families[i]->name, m->families[j]->name) == 0)
                rc = -EINVAL;
        if (rc == 0)
            rc = family(&b, m->families[i]);
    }
    if (rc == 0 && b.len)
        sb_add(out, b.buf, b.len);
    sb_free(&b);
    return rc;
}
