/* result — see result.h. The buffer keeps RESULT_MAX + 2 bytes: a result
 * of exactly RESULT_MAX bytes followed by its trailing newline still
 * fits, and anything longer is over. */
#include "result.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define KEEP (RESULT_MAX + 2)

void result_add(result_t *r, const uint8_t *data, size_t len)
{
    r->seen += len;
    if (r->buf.len >= KEEP)
        return;
    size_t room = KEEP - r->buf.len;
    sb_add(&r->buf, (const char *)data, len < room ? len : room);
}

int result_take(result_t *r, char **out, char *err, size_t errlen)
{
    size_t n = r->buf.len;
    *out = NULL;
    if (n && r->buf.buf[n - 1] == '\n')
        n--;
    if (r->seen > r->buf.len || n > RESULT_MAX) { /* bytes were dropped, or too many kept */
        snprintf(err, errlen,
                 "standard output is %zu bytes, over the %d bytes (64 KiB) kept for outputs.result",
                 r->seen, RESULT_MAX);
        result_free(r);
        return -E2BIG;
    }
    if (n && memchr(r->buf.buf, 0, n)) {
        snprintf(err, errlen, "standard output holds a NUL byte: outputs.result must be text");
        result_free(r);
        return -EINVAL;
    }
    if (!r->buf.buf) {
        *out = xstrdup("");
        return 0;
    }
    *out = sb_take(&r->buf);
    (*out)[n] = '\0';
    result_free(r);
    return 0;
}

void result_free(result_t *r)
{
    sb_free(&r->buf);
    r->seen = 0;
}
