/* progress — see progress.h.
 *
 * Members are read with json_text_member, which validates the whole object
 * each time; lines are short (bounded) and few, so simplicity wins.
 */
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Read member key: 0 and *val (caller frees), 1 when absent, -1 bad. */
static int member(const char *obj, const char *key, char **val)
{
    int rc = json_text_member(obj, key, val);
    if (rc == -ENOENT)
        return 1;
    return rc < 0 ? -1 : 0;
}

static bool parse_number(const char *s, double *out)
{
    char *end;
    if (!*s || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return false; /* a string, bool, null, object or array */
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* val as a reason may quote it: at most SHOW_MAX bytes, cut before a
 * partial UTF-8 character, control characters as '?', so the reason stays
 * one line whatever a string value held ({"step":"\n"}). */
#define SHOW_MAX 40
static const char *show(const char *val, char out[SHOW_MAX + 1])
{
    size_t n = strnlen(val, SHOW_MAX);
    if (val[n]) /* cut: back up to the start of a character */
        while (n > 0 && ((unsigned char)val[n] & 0xC0) == 0x80)
            n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)val[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
    return out;
}

int progress_parse_line(const char *text, size_t len, progress_line_t *out, char *err,
                        size_t errlen)
{
    char shown[SHOW_MAX + 1];
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
        i++;
    if (i == len)
        return -ENODATA;
    if (memchr(text, '\0', len)) {
        snprintf(err, errlen, "a NUL byte in the line");
        return -EINVAL;
    }
    char *obj = malloc(len + 1);
    if (!obj) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(obj, text, len);
    obj[len] = '\0';
    int rc = -EINVAL;
    char *val = NULL;
    int m = member(obj, "progress", &val);
    if (m < 0) {
        snprintf(err, errlen, "not a JSON object (expected e.g. {\"progress\":0.5})");
        goto out;
    }
    if (m == 0) {
        double v;
        if (!parse_number(val, &v) || v < 0 || v > 1) {
            snprintf(err, errlen, "\"progress\" must be a number from 0 to 1, not %s",
                     show(val, shown));
            goto out;
        }
        out->has_progress = true;
        out->progress = v;
    }
    free(val);
    val = NULL;
    if (member(obj, "checkpoint", &val) == 0) {
        if (strcmp(val, "true") != 0 && strcmp(val, "false") != 0) {
            snprintf(err, errlen, "\"checkpoint\" must be true or false, not %s", show(val, shown));
            goto out;
        }
        out->checkpoint = strcmp(val, "true") == 0;
    }
    free(val);
    val = NULL;
    if (member(obj, "step", &val) == 0) {
        double v;
        if (!parse_number(val, &v) || v < 0 || v >= 9007199254740992.0 || v != floor(v)) {
            snprintf(err, errlen, "\"step\" must be a non-negative integer, not %s",
                     show(val, shown));
            goto out;
        }
        out->has_step = true;
        out->step = (uint64_t)v;
    }
    rc = 0;
out:
    free(val);
    free(obj);
    return rc;
}

static void emit(const char *text, size_t len, progress_line_fn fn, void *arg)
{
    progress_line_t line;
    char err[160];
    int rc = progress_parse_line(text, len, &line, err, sizeof err);
    if (rc == 0)
        fn(arg, &line, NULL);
    else if (rc != -ENODATA)
        fn(arg, NULL, err);
}

void progress_feed(progress_reader_t *r, const char *data, size_t len, progress_line_fn fn,
                   void *arg)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (!r->overflow) {
            if (r->len + take > sizeof r->buf) {
                r->overflow = true;
                r->len = 0;
                fn(arg, NULL, "line longer than 4096 bytes dropped");
            } else {
                memcpy(r->buf + r->len, data, take);
                r->len += take;
            }
        }
        if (!nl)
            return;
        if (!r->overflow)
            emit(r->buf, r->len, fn, arg);
        r->len = 0;
        r->overflow = false;
        data = nl + 1;
        len -= take + 1;
    }
}
