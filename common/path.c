/* path — see path.h. Both checks walk the string once; nothing here keeps
 * state, so they are safe on any thread. */
#include "path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

bool path_is_safe_relative(const char *p)
{
    if (!p || !*p || *p == '/')
        return false;
    for (const char *seg = p; seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        seg = end ? end + 1 : NULL;
    }
    return true;
}

bool path_is_component(const char *s, size_t max, const char *extra)
{
    return s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           util_valid_name(s, strlen(s), max, extra) && (!extra || !strchr(extra, '/'));
}

char *path_absolute(const char *path)
{
    if (path[0] == '/')
        return xstrdup(path);
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        return NULL;
    while (path[0] == '.' && path[1] == '/') /* "./w1" is "w1" */
        path += 2;
    char *abs = strcmp(path, ".") == 0 || !path[0]
                    ? xstrdup(cwd)
                    : xasprintf("%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path);
    free(cwd);
    return abs;
}

int path_option_absolute(const char *prog, const char **field, char **owned, int *n)
{
    if (!*field || (*field)[0] == '/')
        return 0;
    char *abs = path_absolute(*field);
    if (!abs) {
        fprintf(stderr, "%s: cannot resolve the relative path '%s': %s\n", prog, *field,
                strerror(errno));
        return -1;
    }
    *field = owned[(*n)++] = abs;
    return 0;
}
