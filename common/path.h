/* path — the path check: whether a name taken from the network, a spec or
 * an artifact listing may be joined under a directory without leaving it.
 *
 * Two shapes: a relative path of several components (a file inside an
 * artifact directory: "a/b/c.txt"), and a single component (a run id, a
 * task name, an input or output name). Neither resolves symlinks: callers
 * create what they join under directories they own. Both are pure and
 * allocate nothing. Also here: path_absolute, for the path options the
 * daemons resolve at start.
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

/* path made absolute against the current directory, for path options
 * read at start (a later chdir, the daemon's or a child's, must not change
 * what they name): a new string (caller frees); path itself (copied) when
 * it is absolute already. The path need not exist and is not
 * canonicalized ("a/../b" stays), but a leading "./" is dropped and "."
 * is the current directory itself. NULL with errno set when the current
 * directory cannot be read. */
char *path_absolute(const char *path);

/* A daemon's path option *field made absolute at start (path_absolute)
 * when it is relative: *field then points at the new string, which is
 * also stored at owned[(*n)++] for the caller to free. One that cannot be
 * resolved is reported on stderr, naming prog. 0 or -1. */
int path_option_absolute(const char *prog, const char **field, char **owned, int *n);

#endif
