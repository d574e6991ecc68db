/* path — the path check: whether a name taken from the network, a spec or
 * an artifact listing may be joined under a directory without leaving it.
 *
 * Two shapes: a relative path of several components (a file inside an
 * artifact directory: "a/b/c.txt"), and a single component (a run id, a
 * task name, an input or output name). Neither resolves symlinks: callers
 * create what they join under directories they own. Pure functions, no
 * allocation.
 */
#ifndef DROVER_PATH_H
#define DROVER_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Whether p is a relative path whose components are all non-empty and
 * none is "." or "..": not absolute, no "//", no trailing '/', no empty
 * string. Any other byte is allowed in a component (the caller bounds the
 * length). NULL is not safe. */
bool path_is_safe_relative(const char *p);

/* Whether s is one path component: 1..max characters that
 * util_valid_name accepts ([A-Za-z0-9_.-] plus any in extra, which must not
 * hold '/'), and neither "." nor "..". NULL is not. */
bool path_is_component(const char *s, size_t max, const char *extra);

#endif
