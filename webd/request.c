/* request — drover-web's request handling below libmicrohttpd, as pure
 * functions (no connection, no I/O), so that server.c and fuzz/fuzz_web.c
 * run the same code: a path looked up in the route tables (each pattern
 * matched by route.c's web_pattern_match) with its {captures}, the
 * Authorization header's bearer token, and a body read as a JSON object.
 * See webd.h for the contracts.
 */
#include "route.h"
#include "web.h"
#include "webd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const web_route_t *const tables[] = {routes_core,  routes_runs,   routes_files,
                                            routes_fleet, routes_events, routes_console};

const web_route_t *web_route_lookup(const char *method, const char *path, char **names, char **vals,
                                    size_t max, size_t *n, strbuf_t *allow)
{
    web_span_t caps[16];
    if (max > sizeof caps / sizeof *caps)
        max = sizeof caps / sizeof *caps;
    allow->len = 0;
    if (allow->buf)
        allow->buf[0] = '\0';
    *n = 0;
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        for (const web_route_t *rt = tables[t]; rt->method; rt++) {
            int got = web_pattern_match(rt->pattern, path, caps, max);
            if (got < 0)
                continue;
            if (strcmp(rt->method, method) == 0) {
                allow->len = 0;
                if (allow->buf)
                    allow->buf[0] = '\0';
                for (int i = 0; i < got; i++) {
                    names[i] = xstrndup(caps[i].name, caps[i].name_len);
                    vals[i] = xstrndup(caps[i].value, caps[i].value_len);
                }
                *n = (size_t)got;
                return rt;
            }
            if (!allow->len || !strstr(allow->buf, rt->method)) {
                if (allow->len)
                    sb_puts(allow, ", ");
                sb_puts(allow, rt->method);
            }
        }
    return NULL;
}

const char *web_bearer_parse(const char *authorization, size_t *len)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    *len = n;
    return t;
}

json_t *web_json_object_parse(const char *body, size_t len, char *why, size_t why_len)
{
    json_error_t e;
    if (len == 0)
        return json_object();
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        snprintf(why, why_len, "the body is not valid JSON: %s (line %d, column %d)", e.text,
                 e.line, e.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(why, why_len, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* The authority of an origin or Host (n bytes at a) without the scheme's
 * default port: its length. */
static size_t authority_len(const char *a, size_t n, bool https)
{
    const char *port = https ? ":443" : ":80";
    size_t pn = strlen(port);
    if (n > pn && strncmp(a + n - pn, port, pn) == 0)
        return n - pn;
    return n;
}

bool web_origin_allowed(const char *method, const char *origin, const char *host)
{
    if (!origin || strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
        strcmp(method, "OPTIONS") == 0)
        return true;
    if (!host || !*host)
        return false;
    bool https;
    if (strncasecmp(origin, "http://", 7) == 0) {
        https = false;
        origin += 7;
    } else if (strncasecmp(origin, "https://", 8) == 0) {
        https = true;
        origin += 8;
    } else {
        return false; /* "null" (a sandboxed frame, a file: page), another scheme */
    }
    size_t on = authority_len(origin, strlen(origin), https);
    size_t hn = authority_len(host, strlen(host), https);
    return on > 0 && on == hn && strncasecmp(origin, host, on) == 0 && !memchr(origin, '/', on) &&
           !memchr(origin, '@', on);
}
