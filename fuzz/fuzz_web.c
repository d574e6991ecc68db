/* fuzz_web — drover-web's request handling below libmicrohttpd (webd/request.c,
 * webd/sse.c, README "HTTP API"), with the real route tables:
 *
 *   byte 0          the method (GET, POST, DELETE, PUT, PATCH by its value)
 *   up to '\n'      the path, as MHD hands it over (percent-decoded)
 *   up to '\n'      the Authorization header's value
 *   the rest        the request body
 *
 * Contracts checked: web_route_lookup returns a route of that method whose
 * pattern, with the captures put back, is the path exactly (each capture
 * one non-empty segment without '/'); when it finds none, each method it
 * lists in allow does find one for the path. web_bearer_parse returns a
 * non-empty token inside the header, after "Bearer " in any case, with no
 * space at either end. web_json_object_parse gives an object that dumps
 * and parses back equal, or NULL with a reason. sse_event of the body reads
 * back (by the WHATWG rules) as the body with its line breaks as "\n".
 * web_origin_allowed (the header line as an Origin, the path as the Host)
 * admits a write only from an http(s) origin, and always from the Host's
 * own http:// and https:// origins.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "sse.h"
#include "util.h"
#include "web.h"
#include "webd.h"

/* routes_core.c serves the OpenAPI document that drover-web compiles in */
const unsigned char web_openapi_json[] = "{}";
const unsigned long web_openapi_json_len = 2;

#define MAX_CAPS 8

static void check_route(const char *method, const char *path)
{
    char *names[MAX_CAPS], *vals[MAX_CAPS];
    size_t n = 0;
    strbuf_t allow = {0};
    const web_route_t *rt = web_route_lookup(method, path, names, vals, MAX_CAPS, &n, &allow);
    if (rt) {
        if (strcmp(rt->method, method) != 0)
            fz_fail("%s %s: matched a %s route", method, path, rt->method);
        if (allow.len)
            fz_fail("%s %s: found, yet allow is '%s'", method, path, allow.buf);
        strbuf_t back = {0};
        size_t k = 0;
        for (const char *p = rt->pattern; *p;) {
            if (*p == '{') {
                const char *close = strchr(p, '}');
                if (k >= n || strncmp(names[k], p + 1, (size_t)(close - p - 1)) != 0 ||
                    names[k][close - p - 1])
                    fz_fail("%s: capture %zu is not {%.*s}", path, k, (int)(close - p - 1), p + 1);
                if (!*vals[k] || strchr(vals[k], '/'))
                    fz_fail("%s: capture '%s' is empty or holds '/'", path, vals[k]);
                sb_puts(&back, vals[k++]);
                p = close + 1;
            } else {
                sb_putc(&back, *p++);
            }
        }
        if (k != n || strcmp(back.buf ? back.buf : "", path) != 0)
            fz_fail("%s matched %s but reads back as '%s'", path, rt->pattern,
                    back.buf ? back.buf : "");
        sb_free(&back);
        for (size_t i = 0; i < n; i++) {
            free(names[i]);
            free(vals[i]);
        }
    } else if (allow.len) {
        char *list = xstrdup(allow.buf);
        for (char *save = NULL, *m = strtok_r(list, ", ", &save); m;
             m = strtok_r(NULL, ", ", &save)) {
            strbuf_t again = {0};
            size_t n2 = 0;
            char *names2[MAX_CAPS], *vals2[MAX_CAPS];
            const web_route_t *r2 = web_route_lookup(m, path, names2, vals2, MAX_CAPS, &n2, &again);
            if (!r2)
                fz_fail("%s: allow lists %s, which finds no route", path, m);
            for (size_t i = 0; i < n2; i++) {
                free(names2[i]);
                free(vals2[i]);
            }
            sb_free(&again);
        }
        free(list);
    }
    sb_free(&allow);
}

static void check_bearer(const char *header)
{
    size_t len = 0;
    const char *t = web_bearer_parse(header, &len);
    if (!t)
        return;
    if (strncasecmp(header, "Bearer ", 7) != 0)
        fz_fail("a token from '%s', which is not of the Bearer scheme", header);
    if (t < header + 7 || t + len > header + strlen(header) || len == 0)
        fz_fail("the token is not inside '%s'", header);
    if (t[0] == ' ' || t[len - 1] == ' ' || t[len - 1] == '\t')
        fz_fail("the token of '%s' keeps a space", header);
}

static void check_json(const char *body, size_t len)
{
    char why[256] = "";
    json_t *j = web_json_object_parse(body, len, why, sizeof why);
    if (!j) {
        if (!why[0])
            fz_fail("a body refused without a reason");
        return;
    }
    if (!json_is_object(j))
        fz_fail("web_json_object_parse gave a non-object");
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_error_t e;
    json_t *again = text ? json_loads(text, 0, &e) : NULL;
    if (!again || !json_equal(j, again))
        fz_fail("the object does not read back: %s", text ? text : "(no text)");
    json_decref(again);
    free(text);
    json_decref(j);
}

static void check_sse(const char *data, size_t len)
{
    strbuf_t out = {0}, want = {0}, got = {0};
    sse_event(&out, "7", "log", data, len);
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            continue; /* CRLF: one break */
        sb_putc(&want, data[i] == '\r' ? '\n' : data[i]);
    }
    /* read it back: lines end at "\n" (sse_event writes no other break) */
    bool first = true, ended = false;
    size_t pos = 0;
    while (pos < out.len) {
        const char *nl = memchr(out.buf + pos, '\n', out.len - pos);
        if (!nl)
            fz_fail("an event line without its end");
        size_t n = (size_t)(nl - (out.buf + pos));
        const char *line = out.buf + pos;
        if (n == 0) {
            ended = true;
            if (nl + 1 != out.buf + out.len)
                fz_fail("bytes after the event's blank line");
        } else if (n >= 6 && memcmp(line, "data: ", 6) == 0) {
            if (memchr(line, '\r', n))
                fz_fail("a CR inside a data line");
            if (!first)
                sb_putc(&got, '\n');
            sb_add(&got, line + 6, n - 6);
            first = false;
        } else if (!(n == 5 && memcmp(line, "id: 7", 5) == 0) &&
                   !(n == 10 && memcmp(line, "event: log", 10) == 0)) {
            fz_fail("an unexpected line '%.*s'", (int)n, line);
        }
        pos += n + 1;
    }
    if (!ended)
        fz_fail("the event has no blank line at its end");
    if (got.len != want.len ||
        memcmp(got.buf ? got.buf : "", want.buf ? want.buf : "", got.len) != 0)
        fz_fail("the data reads back as %zu bytes, not the %zu sent", got.len, want.len);
    sb_free(&out);
    sb_free(&want);
    sb_free(&got);
}

static void check_origin(const char *method, const char *origin, const char *host)
{
    if (web_origin_allowed(method, origin, host) && strcmp(method, "GET") != 0 &&
        strncasecmp(origin, "http://", 7) != 0 && strncasecmp(origin, "https://", 8) != 0)
        fz_fail("%s from origin '%s' admitted", method, origin);
    if (!host[0] || !((host[0] >= 'a' && host[0] <= 'z') || (host[0] >= '0' && host[0] <= '9')) ||
        strpbrk(host, "/@"))
        return;
    for (int https = 0; https < 2; https++) {
        char *own = xasprintf("%s://%s", https ? "https" : "http", host);
        if (!web_origin_allowed("POST", own, host))
            fz_fail("a POST from its own origin '%s' refused", own);
        free(own);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "PATCH"};
    if (size < 1 || size > 16384)
        return 0;
    const char *method = methods[data[0] % 5];
    char *text = fz_strndup(data + 1, size - 1);
    size_t len = size - 1;
    char *nl1 = memchr(text, '\n', len);
    char *nl2 = nl1 ? memchr(nl1 + 1, '\n', len - (size_t)(nl1 + 1 - text)) : NULL;
    if (nl1)
        *nl1 = '\0';
    if (nl2)
        *nl2 = '\0';
    check_route(method, text); /* the path ends at the first NUL, as MHD's does */
    if (nl1) {
        check_bearer(nl1 + 1);
        check_origin(method, nl1 + 1, text);
    }
    if (nl2) {
        const char *body = nl2 + 1;
        size_t blen = len - (size_t)(body - text);
        check_json(body, blen);
        check_sse(body, blen);
    }
    free(text);
    return 0;
}
