/* bundle — see bundle.h.
 *
 * bundle_collect walks the import graph breadth first: a queue of the
 * files read so far (the main spec first, not in the result), each asked
 * for its entries with spec_imports(); a path already read is not read
 * again, so cycles end. Positions for errors: spec_imports gives paths,
 * not where they stand, so an entry is found again in its file's text:
 * after the top-level `imports:` key, entries in order, each at the first
 * occurrence of its path's last component (which joining never changes)
 * after the previous one's; one written in a way that cannot be found
 * (escapes in a quoted string) is reported at the `imports:` key.
 */
#include "bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "path.h"
#include "spec.h"
#include "util.h"

/* 1-based line and column of byte off in text. */
static void pos_of(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

/* Offset of the top-level "imports:" key in text, or 0. */
static size_t imports_key(const char *text, size_t len)
{
    for (size_t off = 0; off + 8 <= len;) {
        if (memcmp(text + off, "imports:", 8) == 0)
            return off;
        const char *nl = memchr(text + off, '\n', len - off);
        if (!nl)
            break;
        off = (size_t)(nl - text) + 1;
    }
    return 0;
}

/* Where the entry k of text's imports (paths[0..k] as spec_imports gave
 * them) is written: see the top of the file. */
static void entry_pos(const char *text, size_t len, char *const *paths, size_t k, int *line,
                      int *col)
{
    size_t key = imports_key(text, len), from = key;
    size_t at = key;
    for (size_t i = 0; i <= k; i++) {
        const char *slash = strrchr(paths[i], '/');
        const char *base = slash ? slash + 1 : paths[i];
        size_t blen = strlen(base);
        const char *hit = blen && from < len ? memmem(text + from, len - from, base, blen) : NULL;
        if (!hit) {
            at = key;
            break;
        }
        at = (size_t)(hit - text);
        from = at + blen;
    }
    /* the entry starts at the start of its path, not its last component */
    while (at > key && text[at - 1] != ' ' && text[at - 1] != '\t' && text[at - 1] != '\n' &&
           text[at - 1] != '[' && text[at - 1] != ',' && text[at - 1] != ':' &&
           text[at - 1] != '"' && text[at - 1] != '\'')
        at--;
    pos_of(text, at, line, col);
}

void bundle_free(Drover__SpecFile **files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i]->path);
        free(files[i]->text.data);
        free(files[i]);
    }
    free(files);
}

/* A file of the walk: its path among the imports (the main spec: its base
 * name), where it is on disk, its text. */
typedef struct {
    char *rel, *disk;
    const char *text;
    size_t len;
} walk_file_t;

static Drover__SpecFile *new_file(char *rel, char *text, size_t len)
{
    Drover__SpecFile *f = xmalloc(sizeof *f);
    drover__spec_file__init(f);
    f->path = rel;
    f->text.data = (uint8_t *)text;
    f->text.len = len;
    return f;
}

/* Read the file entry k of w (paths[k], as spec_imports joined it) into
 * a new SpecFile. 0 or -errno with err set. */
static int read_entry(const walk_file_t *w, const char *dir, char *const *paths, size_t k,
                      Drover__SpecFile **out, char *err, size_t errlen)
{
    char *disk = strcmp(dir, ".") == 0 ? xstrdup(paths[k]) : xasprintf("%s/%s", dir, paths[k]);
    char *text = NULL;
    size_t len = 0;
    int rc = util_read_file(disk, BUNDLE_MAX_FILE, &text, &len);
    if (rc < 0) {
        int line, col;
        entry_pos(w->text, w->len, paths, k, &line, &col);
        if (rc == -EFBIG)
            snprintf(err, errlen,
                     "%s:%d:%d: imported file '%s' (%s) is larger than %u MiB, the limit for a "
                     "spec file",
                     w->disk, line, col, paths[k], disk, BUNDLE_MAX_FILE >> 20);
        else
            snprintf(err, errlen, "%s:%d:%d: cannot read imported file '%s' (%s): %s", w->disk,
                     line, col, paths[k], disk, strerror(-rc));
        free(disk);
        return rc;
    }
    free(disk);
    *out = new_file(xstrdup(paths[k]), text, len);
    return 0;
}

int bundle_collect(const char *main_path, const char *text, size_t len, Drover__SpecFile ***files,
                   size_t *n, char *err, size_t errlen)
{
    const char *slash = main_path ? strrchr(main_path, '/') : NULL;
    char *dir = !main_path || !slash ? xstrdup(".")
                : slash == main_path ? xstrdup("/")
                                     : xstrndup(main_path, (size_t)(slash - main_path));
    walk_file_t main = {
        .rel = xstrdup(main_path ? (slash ? slash + 1 : main_path) : "<stdin>"),
        .disk = xstrdup(main_path ? main_path : "<stdin>"),
        .text = text,
        .len = len,
    };
    Drover__SpecFile **out = NULL;
    size_t count = 0;
    bool main_sent = false;
    int rc = 0;
    *files = NULL;
    *n = 0;
    /* index -1 is the main spec; then out[0..count) in the order read */
    for (size_t q = 0; q <= count && rc == 0; q++) {
        walk_file_t w = main;
        if (q > 0) {
            const Drover__SpecFile *f = out[q - 1];
            w.rel = f->path;
            w.disk = strcmp(dir, ".") == 0 ? xstrdup(f->path) : xasprintf("%s/%s", dir, f->path);
            w.text = (const char *)f->text.data;
            w.len = f->text.len;
        }
        char **paths = NULL, scan_err[512];
        size_t np = 0;
        if (spec_imports(w.rel, w.text, w.len, &paths, &np, scan_err, sizeof scan_err) < 0)
            np = 0; /* the compiler says what is wrong with it */
        for (size_t k = 0; k < np && rc == 0; k++) {
            bool seen = false;
            for (size_t i = 0; i < count && !seen; i++)
                seen = strcmp(out[i]->path, paths[k]) == 0;
            if (seen)
                continue;
            if (count == SPEC_MAX_IMPORTS) {
                int line, col;
                entry_pos(w.text, w.len, paths, k, &line, &col);
                snprintf(err, errlen,
                         "%s:%d:%d: too many imports: the spec imports more than %u files "
                         "(counting the files they import)",
                         w.disk, line, col, SPEC_MAX_IMPORTS);
                rc = -E2BIG;
                break;
            }
            Drover__SpecFile *f = NULL;
            if (main_path && !main_sent && strcmp(paths[k], main.rel) == 0) {
                /* the main spec imported back: its own text (a cycle) */
                char *copy = xmalloc(len + 1);
                memcpy(copy, text, len);
                copy[len] = '\0';
                f = new_file(xstrdup(paths[k]), copy, len);
                main_sent = true;
            } else {
                rc = read_entry(&w, dir, paths, k, &f, err, errlen);
            }
            if (rc == 0) {
                out = xrealloc(out, (count + 1) * sizeof *out);
                out[count++] = f;
            }
        }
        for (size_t k = 0; k < np; k++)
            free(paths[k]);
        free(paths);
        if (q > 0)
            free(w.disk);
    }
    free(main.rel);
    free(main.disk);
    free(dir);
    if (rc < 0) {
        bundle_free(out, count);
        return rc;
    }
    *files = out;
    *n = count;
    return 0;
}

bool bundle_path_ok(const char *p)
{
    if (!p)
        return false;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    while (strncmp(p, "../", 3) == 0)
        p += 3;
    return path_is_safe_relative(p);
}

/* Write len bytes of data to path (replaced; not through a symlink). */
static int write_one(const char *path, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
            close(fd);
            return -e;
        }
        data += w;
        len -= (size_t)w;
    }
    if (close(fd) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

int bundle_write(const char *dir, const char *main_name, const uint8_t *text, size_t len,
                 Drover__SpecFile *const *files, size_t n, char *err, size_t errlen)
{
    if (!path_is_safe_relative(main_name) || strchr(main_name, '/')) {
        snprintf(err, errlen, "the spec's file name '%s' is not a plain file name: refusing it",
                 main_name);
        return -EPERM;
    }
    for (size_t i = 0; i < n; i++)
        if (!path_is_safe_relative(files[i]->path)) {
            snprintf(err, errlen,
                     "imported file '%s' would be written outside %s (an absolute path, or "
                     "'..'): refusing to write anything (`drover run spec ID` prints it)",
                     files[i]->path, dir);
            return -EPERM;
        }
    int rc = util_mkdir_p(dir, 0755);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
        return rc;
    }
    char *path = xasprintf("%s/%s", dir, main_name);
    rc = write_one(path, text, len, err, errlen);
    free(path);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (strcmp(files[i]->path, main_name) == 0)
            continue; /* the main spec imported back: written already */
        path = xasprintf("%s/%s", dir, files[i]->path);
        char *slash = strrchr(path, '/');
        *slash = '\0';
        rc = util_mkdir_p(path, 0755);
        if (rc < 0)
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(-rc));
        *slash = '/';
        if (rc == 0)
            rc = write_one(path, files[i]->text.data, files[i]->text.len, err, errlen);
        free(path);
    }
    return rc;
}
