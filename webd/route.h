/* route — matching a request path against a route's pattern (web.h): the
 * routing table's one rule, kept apart from the server so that tests and
 * fuzz targets can call it without libmicrohttpd. */
#ifndef DROVER_WEBD_ROUTE_H
#define DROVER_WEBD_ROUTE_H

#include <stddef.h>

/* One "{name}" of a pattern and the path segment it took: pointers into
 * the pattern and the path (not NUL-terminated at their lengths). */
typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} web_span_t;

/* Whether path matches pattern: literal characters match themselves and
 * each "{name}" one whole, non-empty path segment (no '/'). Returns how
 * many captures it made (into caps, at most max; more: no match), or -1
 * when path does not match. */
int web_pattern_match(const char *pattern, const char *path, web_span_t *caps, size_t max);

#endif
