/* fmt — see fmt.h. */
#include "fmt.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static struct tm local_tm(int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    return tm;
}

char *fmt_local_time(int64_t ms, char *buf)
{
    if (ms <= 0) {
        strcpy(buf, "-");
        return buf;
    }
    struct tm tm = local_tm(ms);
    strftime(buf, FMT_BUF, "%Y-%m-%d %H:%M:%S %Z", &tm);
    return buf;
}

char *fmt_rfc3339(int64_t ms, char *buf)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, FMT_BUF, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, FMT_BUF - n, ".%03dZ", (int)(ms % 1000));
    return buf;
}

char *fmt_age(int64_t ms, int64_t now_ms, char *buf)
{
    if (ms <= 0) {
        strcpy(buf, "-");
        return buf;
    }
    return fmt_duration(now_ms - ms, buf);
}

char *fmt_clock(int64_t ms, char *buf)
{
    struct tm tm = local_tm(ms);
    size_t n = strftime(buf, FMT_BUF, "%H:%M:%S", &tm);
    snprintf(buf + n, FMT_BUF - n, ".%03d", (int)(ms % 1000));
    return buf;
}

char *fmt_duration(int64_t ms, char *buf)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, FMT_BUF, "%" PRId64 "ms", ms);
    else if (s < 60)
        snprintf(buf, FMT_BUF, "%" PRId64 ".%" PRId64 "s", s, (ms % 1000) / 100);
    else if (s < 3600)
        snprintf(buf, FMT_BUF, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, FMT_BUF, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
    else
        snprintf(buf, FMT_BUF, "%" PRId64 "d%" PRId64 "h", s / 86400, s / 3600 % 24);
    return buf;
}

/* v/unit with at most one decimal, ".0" dropped. */
static void one_decimal(char *buf, uint64_t v, uint64_t unit, const char *suffix)
{
    uint64_t tenths = (v * 10 + unit / 2) / unit;
    if (v > UINT64_MAX / 10) /* avoid overflow; precision no longer matters */
        tenths = v / unit * 10;
    if (tenths % 10 == 0)
        snprintf(buf, FMT_BUF, "%" PRIu64 "%s", tenths / 10, suffix);
    else
        snprintf(buf, FMT_BUF, "%" PRIu64 ".%" PRIu64 "%s", tenths / 10, tenths % 10, suffix);
}

char *fmt_bytes(uint64_t bytes, char *buf)
{
    static const char *const units[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    if (bytes < 1024) {
        snprintf(buf, FMT_BUF, "%" PRIu64, bytes);
        return buf;
    }
    size_t u = 0;
    uint64_t unit = 1024;
    while (u + 1 < sizeof units / sizeof *units && bytes / unit >= 1024) {
        unit *= 1024;
        u++;
    }
    one_decimal(buf, bytes, unit, units[u]);
    return buf;
}

char *fmt_size(uint64_t bytes, char *buf)
{
    if (bytes < 1024)
        snprintf(buf, FMT_BUF, "%" PRIu64 "B", bytes);
    else
        strcat(fmt_bytes(bytes, buf), "B");
    return buf;
}

char *fmt_count(uint64_t n, char *buf)
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

char *fmt_cpu(uint32_t milli, char *buf)
{
    uint32_t tenths = (milli + 50) / 100;
    snprintf(buf, FMT_BUF, "%" PRIu32 ".%" PRIu32, tenths / 10, tenths % 10);
    return buf;
}

char *fmt_task_exit(const Drover__TaskView *t, char *buf)
{
    if (t->term_signal != 0)
        snprintf(buf, FMT_BUF, "sig %" PRId32, t->term_signal);
    else if (t->has_exit)
        snprintf(buf, FMT_BUF, "%" PRId32, t->exit_code);
    else
        strcpy(buf, "-");
    return buf;
}

char *fmt_progress(float progress, char *buf)
{
    char bar[11];
    if (progress < 0)
        progress = 0;
    if (progress > 1)
        progress = 1;
    int filled = (int)(progress * 10.0f + 0.5f);
    for (int i = 0; i < 10; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[10] = '\0';
    snprintf(buf, FMT_BUF, "[%s] %d%%", bar, (int)(progress * 100.0f + 0.5f));
    return buf;
}

char *fmt_task_status(const Drover__TaskView *t, int64_t now_ms, char *buf)
{
    const char *name = util_task_status_name(t->status);
    if (t->status == DROVER__TASK_STATUS__TASK_FAILED && t->retry_at_ms > now_ms) {
        int64_t secs = (t->retry_at_ms - now_ms + 999) / 1000;
        snprintf(buf, FMT_BUF, "%s (retry in %" PRId64 "s)", name, secs);
    } else if (t->status == DROVER__TASK_STATUS__TASK_SUSPENDED && t->suspend_deadline_ms) {
        char left[FMT_BUF];
        int64_t ms = t->suspend_deadline_ms > now_ms ? t->suspend_deadline_ms - now_ms : 0;
        snprintf(buf, FMT_BUF, "%s (timeout in %.24s)", name, fmt_duration(ms, left));
    } else if (t->status == DROVER__TASK_STATUS__TASK_RUNNING && t->progress >= 0) {
        char bar[FMT_BUF];
        /* the bar is "[##########] 100%": a bound gcc -O3 can see */
        snprintf(buf, FMT_BUF, "%s %.24s", name, fmt_progress(t->progress, bar));
    } else {
        snprintf(buf, FMT_BUF, "%s", name);
    }
    return buf;
}

const char *fmt_task_color(Drover__TaskStatus s)
{
    switch (s) {
    case DROVER__TASK_STATUS__TASK_SUCCEEDED:
    case DROVER__TASK_STATUS__TASK_CACHED:
        return "32";
    case DROVER__TASK_STATUS__TASK_FAILED:
    case DROVER__TASK_STATUS__TASK_LOST:
        return "31";
    case DROVER__TASK_STATUS__TASK_RUNNING:
        return "33";
    case DROVER__TASK_STATUS__TASK_SUSPENDED:
        return "35";
    case DROVER__TASK_STATUS__TASK_SKIPPED:
    case DROVER__TASK_STATUS__TASK_CANCELLED:
        return "2";
    default:
        return NULL;
    }
}

const char *fmt_run_color(Drover__RunStatus s)
{
    switch (s) {
    case DROVER__RUN_STATUS__RUN_SUCCEEDED:
        return "32";
    case DROVER__RUN_STATUS__RUN_FAILED:
        return "31";
    case DROVER__RUN_STATUS__RUN_RUNNING:
        return "33";
    case DROVER__RUN_STATUS__RUN_CANCELLED:
        return "2";
    default:
        return NULL;
    }
}

bool fmt_is_terminal(FILE *f)
{
    const char *term = getenv("TERM");
    return isatty(fileno(f)) && !(term && strcmp(term, "dumb") == 0);
}

bool fmt_color_ok(FILE *f)
{
    const char *no_color = getenv("NO_COLOR");
    return fmt_is_terminal(f) && !(no_color && *no_color);
}

char *fmt_kvs(Drover__KeyValue *const *kvs, size_t n, const char *sep)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(kvs[i]->key) + strlen(kvs[i]->value) + 1 + strlen(sep);
    char *out = xmalloc(len), *p = out;
    *p = '\0';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s=%s", i ? sep : "", kvs[i]->key, kvs[i]->value);
    return out;
}

void fmt_put_clean(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            fputc(' ', out);
        else if (*p < 0x20 || *p == 0x7f)
            fputc('?', out);
        else
            fputc(*p, out);
    }
}

char *fmt_clean(const char *s, size_t max)
{
    size_t chars = 0, len = strlen(s), cut = len;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) == 0x80)
            continue;
        if (max && chars == max - 1 && cut == len)
            cut = i; /* where "…" goes if s turns out too long */
        chars++;
    }
    bool shorten = max && chars > max;
    char *out = xmalloc((shorten ? cut : len) + sizeof "…");
    for (size_t i = 0; i < (shorten ? cut : len); i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        else if (c < 0x20 || c == 0x7f)
            c = '?';
        out[i] = (char)c;
    }
    strcpy(out + (shorten ? cut : len), shorten ? "…" : "");
    return out;
}
