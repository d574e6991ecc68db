/* route — see route.h. One walk over pattern and path together. */
#include "route.h"

#include <string.h>

int web_pattern_match(const char *pattern, const char *path, web_span_t *caps, size_t max)
{
    const char *p = pattern, *u = path;
    size_t n = 0;
    while (*p && *u) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t seg = strcspn(u, "/");
            if (!close || seg == 0 || n == max)
                return -1;
            caps[n++] = (web_span_t){p + 1, u, (size_t)(close - p - 1), seg};
            p = close + 1;
            u += seg;
            continue;
        }
        if (*p != *u)
            return -1;
        p++, u++;
    }
    return *p || *u ? -1 : (int)n;
}
