/* json — see json.h.
 *
 * Design: one recursive-descent reader over (text, len) that never reads
 * past len and never relies on a terminating NUL, so a NUL byte is just
 * another invalid character. Each value is written while it is read into a
 * growing buffer, either "unescaped" (a top-level string becomes its raw
 * UTF-8 value) or "compact" (whitespace dropped, strings re-quoted the way
 * json_text_quote quotes, numbers and literals copied as written). Nothing is
 * built as a tree: the output of one element is at most as long as its
 * input (an escape never decodes to more bytes than it took), so memory is
 * bounded by len plus the item array, and recursion by JSON_READ_MAX_DEPTH.
 * json_text_member reuses the same reader, validating the whole object.
 */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

/* Length (1-4) of the valid UTF-8 sequence at p (avail bytes readable), or
 * 0: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return n;
}

static void put_utf8(strbuf_t *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sb_add(b, u, n);
}

/* One ASCII character as json_text_quote writes it inside a string literal. */
static void put_quoted_ascii(strbuf_t *b, unsigned char c)
{
    if (c == '"' || c == '\\') {
        char e[2] = {'\\', (char)c};
        sb_add(b, e, 2);
    } else if (c < 0x20) {
        char e[8];
        snprintf(e, sizeof e, "\\u%04x", c);
        sb_add(b, e, 6);
    } else {
        sb_putc(b, (char)c);
    }
}

/* ---- reader ---- */

typedef struct {
    const char *s;
    size_t len, pos;
    int depth;
    char *err;
    size_t errlen;
} jp_t;

static int jfail(jp_t *p, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jfail(jp_t *p, size_t off, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "offset %zu: ", off);
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

/* The byte at pos, or -1 at the end of the text. */
static int peek(const jp_t *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

/* "end of text", "'x'" or "byte 0xNN" for what is at pos. */
static const char *found(const jp_t *p, char *buf, size_t cap)
{
    int c = peek(p);
    if (c < 0)
        snprintf(buf, cap, "end of text");
    else if (c < 0x20 || c >= 0x7f)
        snprintf(buf, cap, "byte 0x%02x", (unsigned)c);
    else
        snprintf(buf, cap, "'%c'", c);
    return buf;
}

static int expected(jp_t *p, const char *what)
{
    char f[32];
    return jfail(p, p->pos, "expected %s, found %s", what, found(p, f, sizeof f));
}

static void skip_ws(jp_t *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int hex4(const jp_t *p, size_t at, uint32_t *out)
{
    uint32_t v = 0;
    if (at + 4 > p->len)
        return -1;
    for (size_t i = at; i < at + 4; i++) {
        char c = p->s[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* The string at pos (a '"'): unescaped into out, or re-quoted when quoted.
 * allow_nul: whether \u0000 may appear (only where out stays JSON). */
static int read_string(jp_t *p, strbuf_t *out, bool quoted, bool allow_nul)
{
    size_t start = p->pos++;
    if (quoted)
        sb_putc(out, '"');
    for (;;) {
        int c = peek(p);
        if (c < 0)
            return jfail(p, start, "unterminated string");
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20)
            return jfail(p, p->pos, "control character 0x%02x in a string (escape it)",
                         (unsigned)c);
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
            if (!n)
                return jfail(p, p->pos, "invalid UTF-8 in a string");
            sb_add(out, p->s + p->pos, n);
            p->pos += n;
            continue;
        }
        if (c != '\\') {
            if (quoted)
                put_quoted_ascii(out, (unsigned char)c);
            else
                sb_putc(out, (char)c);
            p->pos++;
            continue;
        }
        size_t esc = p->pos;
        p->pos++;
        int e = peek(p);
        uint32_t cp;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            cp = (uint32_t)e;
            p->pos++;
            break;
        case 'b':
            cp = '\b';
            p->pos++;
            break;
        case 'f':
            cp = '\f';
            p->pos++;
            break;
        case 'n':
            cp = '\n';
            p->pos++;
            break;
        case 'r':
            cp = '\r';
            p->pos++;
            break;
        case 't':
            cp = '\t';
            p->pos++;
            break;
        case 'u':
            if (hex4(p, p->pos + 1, &cp) < 0)
                return jfail(p, esc, "\\u needs four hex digits");
            p->pos += 5;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return jfail(p, esc, "unpaired surrogate \\u%04x", (unsigned)cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (p->pos + 1 < p->len && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u' &&
                    hex4(p, p->pos + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p->pos += 6;
                } else {
                    return jfail(p, esc, "unpaired surrogate \\u%04x", (unsigned)cp);
                }
            }
            if (cp == 0 && !allow_nul)
                return jfail(p, esc, "\\u0000 (NUL) cannot be part of this value");
            break;
        default: {
            char f[32];
            return jfail(p, esc, "bad escape in a string: backslash then %s",
                         found(p, f, sizeof f));
        }
        }
        if (quoted && cp < 0x80)
            put_quoted_ascii(out, (unsigned char)cp);
        else
            put_utf8(out, cp);
    }
    if (quoted)
        sb_putc(out, '"');
    return 0;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? copied as written. */
static int read_number(jp_t *p, strbuf_t *out)
{
    size_t start = p->pos;
    if (peek(p) == '-')
        p->pos++;
    if (peek(p) == '0') {
        p->pos++;
        if (is_digit(peek(p)))
            return jfail(p, start, "numbers may not have leading zeros");
    } else if (is_digit(peek(p))) {
        while (is_digit(peek(p)))
            p->pos++;
    } else {
        return expected(p, "a digit");
    }
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p)))
            return expected(p, "a digit after '.'");
        while (is_digit(peek(p)))
            p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (!is_digit(peek(p)))
            return expected(p, "a digit in the exponent");
        while (is_digit(peek(p)))
            p->pos++;
    }
    sb_add(out, p->s + start, p->pos - start);
    return 0;
}

static int read_value(jp_t *p, strbuf_t *out, bool unescape);

/* An array (at '[') or object (at '{'), written compactly. */
static int read_container(jp_t *p, strbuf_t *out)
{
    char open = p->s[p->pos], close = open == '[' ? ']' : '}';
    int rc;
    if (p->depth >= JSON_READ_MAX_DEPTH)
        return jfail(p, p->pos, "nesting deeper than %d levels", JSON_READ_MAX_DEPTH);
    p->depth++;
    sb_putc(out, open);
    p->pos++;
    skip_ws(p);
    if (peek(p) == close) {
        p->pos++;
        sb_putc(out, close);
        p->depth--;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            if (peek(p) != '"')
                return expected(p, "a string key");
            if ((rc = read_string(p, out, true, true)) < 0)
                return rc;
            skip_ws(p);
            if (peek(p) != ':')
                return expected(p, "':'");
            p->pos++;
            sb_putc(out, ':');
            skip_ws(p);
        }
        if ((rc = read_value(p, out, false)) < 0)
            return rc;
        skip_ws(p);
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            sb_putc(out, ',');
            skip_ws(p);
        } else if (c == close) {
            p->pos++;
            sb_putc(out, close);
            break;
        } else {
            return expected(p, open == '[' ? "',' or ']'" : "',' or '}'");
        }
    }
    p->depth--;
    return 0;
}

/* Any value at pos. unescape: a string is written as its raw value (and
 * may not hold NUL); otherwise everything is written as compact JSON. */
static int read_value(jp_t *p, strbuf_t *out, bool unescape)
{
    static const char *words[] = {"true", "false", "null"};
    int c = peek(p);
    if (c == '"')
        return read_string(p, out, !unescape, !unescape);
    if (c == '[' || c == '{')
        return read_container(p, out);
    if (c == '-' || is_digit(c))
        return read_number(p, out);
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if (p->len - p->pos >= n && !memcmp(p->s + p->pos, words[i], n)) {
            sb_add(out, words[i], n);
            p->pos += n;
            return 0;
        }
    }
    return expected(p, "a value");
}

int json_text_valid(const char *text, size_t len, char *err, size_t errlen)
{
    jp_t p = {.s = text, .len = text ? len : 0, .err = err, .errlen = errlen};
    strbuf_t b = {0};
    if (err && errlen)
        err[0] = '\0';
    skip_ws(&p);
    int rc = read_value(&p, &b, false);
    sb_free(&b);
    if (rc < 0)
        return rc;
    skip_ws(&p);
    return p.pos == p.len ? 0 : expected(&p, "end of text after the value");
}

/* Parse a JSON list into strings (contract in json.h). */
int json_text_list(const char *text, size_t len, size_t max_items, char ***items, size_t *count,
                   char *err, size_t errlen)
{
    jp_t p = {.s = text, .len = text ? len : 0, .err = err, .errlen = errlen};
    char **v = NULL;
    size_t n = 0, cap = 0;
    strbuf_t b = {0};
    int rc = 0;

    if (err && errlen)
        err[0] = '\0';
    if (items)
        *items = NULL;
    if (count)
        *count = 0;
    if (!items || !count) {
        rc = jfail(&p, 0, "no place for the result");
        goto cleanup;
    }
    skip_ws(&p);
    if (peek(&p) != '[') {
        rc = expected(&p, "'[' (a JSON list)");
        goto cleanup;
    }
    p.depth = 1;
    p.pos++;
    skip_ws(&p);
    if (peek(&p) == ']') {
        p.pos++;
    } else {
        for (;;) {
            if (n == max_items) {
                if (err && errlen)
                    snprintf(err, errlen, "more than %zu items", max_items);
                rc = -E2BIG;
                goto cleanup;
            }
            if ((rc = read_value(&p, &b, true)) < 0)
                goto cleanup;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[n++] = sb_take(&b);
            skip_ws(&p);
            if (peek(&p) == ',') {
                p.pos++;
                skip_ws(&p);
            } else if (peek(&p) == ']') {
                p.pos++;
                break;
            } else {
                rc = expected(&p, "',' or ']'");
                goto cleanup;
            }
        }
    }
    skip_ws(&p);
    if (p.pos != p.len) {
        rc = expected(&p, "end of text after the list");
        goto cleanup;
    }
    *items = v;
    *count = n;
    v = NULL;
    n = 0;
cleanup:
    json_text_list_free(v, n);
    sb_free(&b);
    return rc;
}

void json_text_list_free(char **items, size_t count)
{
    if (!items)
        return;
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

/* One member of an object, validating the whole object (contract in
 * json.h). */
int json_text_member(const char *obj, const char *key, char **out)
{
    jp_t p = {.s = obj};
    strbuf_t k = {0}, val = {0}, scratch = {0};
    bool hit = false;
    int rc = 0;

    if (out)
        *out = NULL;
    if (!obj || !key || !out)
        return -EINVAL;
    p.len = strlen(obj);
    size_t klen = strlen(key);
    skip_ws(&p);
    if (peek(&p) != '{') {
        rc = -EINVAL;
        goto cleanup;
    }
    p.depth = 1;
    p.pos++;
    skip_ws(&p);
    if (peek(&p) == '}') {
        p.pos++;
    } else {
        for (;;) {
            k.len = 0;
            if (peek(&p) != '"' || read_string(&p, &k, false, true) < 0) {
                rc = -EINVAL;
                goto cleanup;
            }
            skip_ws(&p);
            if (peek(&p) != ':') {
                rc = -EINVAL;
                goto cleanup;
            }
            p.pos++;
            skip_ws(&p);
            bool match = k.len == klen && (klen == 0 || !memcmp(k.buf, key, klen));
            if (match && hit) { /* the same key twice: ambiguous */
                rc = -EINVAL;
                goto cleanup;
            }
            scratch.len = 0;
            /* other members are only validated: compact, so NUL is fine */
            if (read_value(&p, match ? &val : &scratch, match) < 0) {
                rc = -EINVAL;
                goto cleanup;
            }
            hit = hit || match;
            skip_ws(&p);
            if (peek(&p) == ',') {
                p.pos++;
                skip_ws(&p);
            } else if (peek(&p) == '}') {
                p.pos++;
                break;
            } else {
                rc = -EINVAL;
                goto cleanup;
            }
        }
    }
    skip_ws(&p);
    if (p.pos != p.len) {
        rc = -EINVAL;
        goto cleanup;
    }
    if (!hit) {
        rc = -ENOENT;
        goto cleanup;
    }
    *out = sb_take(&val);
cleanup:
    sb_free(&k);
    sb_free(&val);
    sb_free(&scratch);
    return rc;
}

/* Quote s as a JSON string literal (contract in json.h). */
char *json_text_quote(const char *s)
{
    strbuf_t b = {0};
    if (!s)
        return xstrdup("null");
    size_t len = strlen(s);
    sb_putc(&b, '"');
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        if (*u < 0x80) {
            put_quoted_ascii(&b, *u);
            i++;
            continue;
        }
        size_t n = utf8_len(u, len - i);
        if (n) {
            sb_add(&b, s + i, n);
            i += n;
        } else {
            sb_add(&b, "\xef\xbf\xbd", 3); /* U+FFFD for an invalid byte */
            i++;
        }
    }
    sb_putc(&b, '"');
    return sb_take(&b);
}

/* Build "[...]" from values (contract in json.h). */
char *json_text_list_of(char **values, size_t n, bool raw)
{
    strbuf_t b = {0};
    sb_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_putc(&b, ',');
        const char *v = values[i];
        if (!v) {
            sb_add(&b, "null", 4);
        } else if (raw) {
            sb_add(&b, v, strlen(v));
        } else {
            char *q = json_text_quote(v);
            sb_add(&b, q, strlen(q));
            free(q);
        }
    }
    sb_putc(&b, ']');
    return sb_take(&b);
}
