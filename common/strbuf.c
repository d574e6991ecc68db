/* strbuf — see strbuf.h. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Room for `more` bytes plus the terminator. */
static void sb_reserve(strbuf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->buf = xrealloc(b->buf, cap);
    b->cap = cap;
}

void sb_add(strbuf_t *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (n)
        memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

void sb_putc(strbuf_t *b, char ch)
{
    sb_add(b, &ch, 1);
}

void sb_puts(strbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

void sb_printf(strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *sb_take(strbuf_t *b)
{
    char *s = b->buf ? b->buf : xstrdup("");
    *b = (strbuf_t){0};
    return s;
}

void sb_free(strbuf_t *b)
{
    free(b->buf);
    *b = (strbuf_t){0};
}
