/* suggest — see suggest.h. Used by the CLI (commands, flags) and the spec
 * compiler (keys, step names); one threshold for both. */
#include "suggest.h"

#include <stdint.h>
#include <string.h>

size_t suggest_distance(const char *a, size_t n, const char *b)
{
    enum { MAX = 64 };
    size_t m = strlen(b), d[MAX + 1][MAX + 1];
    if (n > MAX || m > MAX)
        return SIZE_MAX;
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *suggest_closest(const char *word, size_t len, const char *const *candidates)
{
    const char *best = NULL, *prefixed = NULL;
    size_t best_d = len >= 5 ? 2 : 1, n_prefixed = 0;
    for (const char *const *c = candidates; *c; c++) {
        size_t d = suggest_distance(word, len, *c);
        if (d <= best_d && d < len && (!best || d < best_d)) {
            best = *c;
            best_d = d;
        }
        if (len >= 2 && strncmp(*c, word, len) == 0) {
            prefixed = *c;
            n_prefixed++;
        }
    }
    return best ? best : n_prefixed == 1 ? prefixed : NULL;
}
