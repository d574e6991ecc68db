/* spec_import — imports: (README "Templates, groups and imports"): other
 * files' templates under a prefix.
 *
 * An entry is PATH or {path: PATH, as: PREFIX}; the prefix is `as`, else
 * the file name without .yaml/.yml, and must be a template name
 * ([A-Za-z0-9_-]). PATH is relative to the importing file's directory;
 * joined and normalized ('/' separated, no "." or empty components, ".."
 * only leading: import_join) it is the key under which the caller gave the
 * file (spec_import_t). The compiler reads nothing from disk: droverd gets
 * the files with the spec, and `drover submit` finds them with
 * spec_imports().
 *
 * An imported file holds only templates: and imports: (name and
 * description are allowed and ignored). Each file is loaded once, however
 * many import it; its nodes name it (node_t.file), so an error anywhere in
 * it says FILE:LINE:COL with its path. A file being loaded that is met
 * again is an import cycle. Limits: 256 files, and all of them together
 * within the spec's size limit (lim.max_bytes); the YAML node limit counts
 * every file.
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

#define MAX_IMPORT_FILES 256u

char *import_dir(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup("");
}

char *import_join(const char *dir, const char *rel, const char **why)
{
    if (!rel || !*rel) {
        *why = "an empty path";
        return NULL;
    }
    if (rel[0] == '/') {
        *why = "an absolute path (imports are relative to the importing file)";
        return NULL;
    }
    char *all = xasprintf("%s/%s", dir ? dir : "", rel);
    size_t n = 0, cap = 8;
    char **parts = xcalloc(cap, sizeof *parts);
    for (char *save = NULL, *p = strtok_r(all, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (!strcmp(p, "."))
            continue;
        if (!strcmp(p, "..") && n && strcmp(parts[n - 1], "..")) {
            n--;
            continue;
        }
        if (n == cap) {
            cap *= 2;
            parts = xrealloc(parts, cap * sizeof *parts);
        }
        parts[n++] = p;
    }
    strbuf_t b = {0};
    for (size_t i = 0; i < n; i++)
        sb_printf(&b, "%s%s", i ? "/" : "", parts[i]);
    free(parts);
    free(all);
    if (!b.len || !strcmp(b.buf + (b.len >= 2 ? b.len - 2 : 0), "..")) {
        sb_free(&b);
        *why = "not a file";
        return NULL;
    }
    return sb_take(&b);
}

/* One entry e of imports: into *path (new, joined to dir) and *prefix
 * (new); *at is where to report about it. 0 or -EINVAL (recorded). */
static int import_entry(ctx_t *c, const char *dir, const node_t *e, char **path, char **prefix,
                        const node_t **at)
{
    static const char *const keys[] = {"path", "as", NULL};
    const node_t *p = e, *as = NULL;
    const char *why = NULL;
    *path = *prefix = NULL;
    *at = e;
    if (e->type == N_MAP) {
        p = NULL;
        for (size_t i = 0; i < map_len(e); i++) {
            const node_t *k = map_key(e, i);
            if (!strcmp(k->str, "path"))
                p = map_val(e, i);
            else if (!strcmp(k->str, "as"))
                as = map_val(e, i);
            else
                return unknown_key(c, k, "an imports entry", keys, true);
        }
        if (!p)
            return fail(c, e, "imports entry has no 'path' ({path: FILE, as: PREFIX})");
    }
    if (p->type != N_SCALAR || is_null(p))
        return fail(c, p, "an imports entry must be a path or {path: FILE, as: PREFIX}");
    *at = p;
    char *joined = import_join(dir, p->str, &why);
    if (!joined)
        return fail(c, p, "bad import path '%s': %s", show(c, p->str), why);
    if (as) {
        if (as->type != N_SCALAR || is_null(as))
            return free(joined), fail(c, as, "'as' must be a prefix name");
        *prefix = xstrdup(as->str);
        *at = as;
    } else {
        const char *base = strrchr(joined, '/');
        base = base ? base + 1 : joined;
        size_t n = strlen(base);
        if (n > 5 && !strcmp(base + n - 5, ".yaml"))
            n -= 5;
        else if (n > 4 && !strcmp(base + n - 4, ".yml"))
            n -= 4;
        *prefix = xstrndup(base, n);
    }
    bool ok = **prefix && strlen(*prefix) <= SPEC_MAX_NAME;
    for (const char *q = *prefix; *q && ok; q++)
        ok = is_alnum(*q) || *q == '_' || *q == '-';
    if (!ok) {
        int rc = fail(c, *at, "bad import prefix '%s' (letters, digits, '_', '-'; at most %u)%s",
                      show(c, *prefix), SPEC_MAX_NAME,
                      as ? "" : ": give the entry one with {path: FILE, as: PREFIX}");
        free(joined);
        free(*prefix);
        *prefix = NULL;
        return rc;
    }
    *path = joined;
    return 0;
}

/* c->imports' entry for path, or -1. */
static long given(const ctx_t *c, const char *path)
{
    for (size_t i = 0; i < c->import_count; i++) {
        if (c->imports[i].path && !strcmp(c->imports[i].path, path))
            return (long)i;
    }
    return -1;
}

/* The top-level keys an imported file may have. */
static const char *const file_keys[] = {"templates", "imports", "name", "description", NULL};

/* Load import j (c->imports[j]) as file fi's import: a new rfile. Its own
 * imports and templates are registered. The new file's index, or -1. */
static long load_file(ctx_t *c, size_t j, const char *label)
{
    struct reuse *r = c->reuse;
    const spec_import_t *im = &c->imports[j];
    const char *saved = c->file;
    node_t *root = NULL;
    int rc = 0;

    if (!im->text && im->len)
        return -1;
    if (im->len > c->lim.max_bytes - (r->bytes < c->lim.max_bytes ? r->bytes : c->lim.max_bytes)) {
        c->over_limit = true;
        c->fatal = true;
        fail_at(c, 1, 1, "imported files are larger than the limit of %zu bytes in all",
                c->lim.max_bytes);
        return -1;
    }
    r->bytes += im->len;
    c->file = im->path; /* its nodes, and its syntax errors, name it */
    const char *nul = im->len ? memchr(im->text, '\0', im->len) : NULL;
    if (nul) {
        int line, col;
        offset_pos(im->text, im->len, (size_t)(nul - im->text), &line, &col);
        rc = fail_at(c, line, col, "NUL byte in imported file");
    } else if (!blank_text(im->text, im->len)) {
        rc = load_tree(c, im->text, im->len, &root);
    }
    if (rc == 0 && root && root->type != N_MAP && !is_null(root))
        rc = fail(c, root, "an imported file must be a map (templates, imports)");
    c->file = saved;
    if (rc < 0) {
        node_free(root);
        return -1;
    }
    r->f = xrealloc(r->f, (r->nf + 1) * sizeof *r->f);
    size_t fi = r->nf++;
    rfile_t *f = &r->f[fi];
    memset(f, 0, sizeof *f);
    f->path = im->path;
    f->dir = import_dir(im->path);
    f->root = root;
    f->label = xstrdup(label);
    f->state = 1;
    const node_t *templates = NULL, *imports = NULL;
    for (size_t i = 0; root && root->type == N_MAP && i < map_len(root); i++) {
        const node_t *k = map_key(root, i);
        if (!strcmp(k->str, "templates"))
            templates = map_val(root, i);
        else if (!strcmp(k->str, "imports"))
            imports = map_val(root, i);
        else if (!strcmp(k->str, "name") || !strcmp(k->str, "description"))
            ;
        else if (!strcmp(k->str, "steps") || !strcmp(k->str, "finally") ||
                 !strcmp(k->str, "params") || !strcmp(k->str, "defaults"))
            fail(c, k,
                 "'%s' cannot be in an imported file: it holds only templates: (and "
                 "imports:)",
                 k->str);
        else
            unknown_key(c, k, "an imported file", file_keys, true);
    }
    if (imports && !c->fatal)
        import_files(c, fi, imports);
    r->f[fi].state = 2;
    if (templates && !c->fatal)
        reuse_templates(c, fi, templates);
    return (long)fi;
}

int import_files(ctx_t *c, size_t fi, const node_t *v)
{
    struct reuse *r = c->reuse;
    int rc = 0;
    if (is_null(v))
        return 0;
    if (v->type != N_SEQ)
        return fail(c, v, "'imports' must be a list of paths (or {path: FILE, as: PREFIX})");
    for (size_t i = 0; i < v->nkids && !c->fatal; i++) {
        char *path = NULL, *prefix = NULL;
        const node_t *at;
        if (import_entry(c, r->f[fi].dir, v->kids[i], &path, &prefix, &at) < 0) {
            rc = -EINVAL;
            continue;
        }
        const rfile_t *f = &r->f[fi];
        const node_t *first = NULL;
        for (size_t j = 0; j < f->nimp && !first; j++) {
            if (!strcmp(f->imp[j].prefix, prefix))
                first = f->imp[j].at;
        }
        if (first) {
            rc = fail(c, at,
                      "duplicate import prefix '%s' (first at %d:%d): give one of them "
                      "another with {path: FILE, as: PREFIX}",
                      show(c, prefix), first->line, first->col);
            free(path);
            free(prefix);
            continue;
        }
        long to = -1;
        for (size_t j = 0; j < r->nf && to < 0; j++) {
            if (!strcmp(r->f[j].path, path))
                to = (long)j;
        }
        if (to >= 0 && r->f[to].state == 1) {
            rc = fail(c, at, "import cycle: '%s' imports '%s', which is being imported",
                      show(c, r->f[fi].path), show(c, path));
            free(path);
            free(prefix);
            continue;
        }
        if (to < 0) {
            long j = given(c, path);
            if (j < 0 && fi == 0 && *r->f[0].dir) {
                /* the main spec's paths may also be given relative to its own
                 * directory (spec_import_t) */
                const char *why;
                char *rel = import_join("",
                                        v->kids[i]->type == N_MAP ? map_get(v->kids[i], "path")->str
                                                                  : v->kids[i]->str,
                                        &why);
                if (rel)
                    j = given(c, rel);
                free(rel);
            }
            if (j < 0) {
                rc = fail(c, at, "imported file '%s' not found (not among the files sent)",
                          show(c, path));
                free(path);
                free(prefix);
                continue;
            }
            for (size_t q = 0; q < r->nf && to < 0; q++) {
                if (r->f[q].path == c->imports[j].path)
                    to = (long)q; /* loaded under the other spelling */
            }
            if (to < 0 && r->nf > MAX_IMPORT_FILES) { /* [0] is the spec */
                rc = fail_limit(c, at, "too many imported files (at most %u)", MAX_IMPORT_FILES);
                free(path);
                free(prefix);
                break;
            }
            if (to < 0) {
                char *label = xasprintf("%s%s.", r->f[fi].label, prefix);
                to = load_file(c, (size_t)j, label);
                free(label);
                if (to < 0) {
                    rc = -EINVAL;
                    free(path);
                    free(prefix);
                    continue;
                }
            }
        }
        rfile_t *g = &r->f[fi];
        g->imp = xrealloc(g->imp, (g->nimp + 1) * sizeof *g->imp);
        g->imp[g->nimp++] = (rimport_t){prefix, (size_t)to, at};
        free(path);
    }
    return rc;
}

int spec_imports(const char *filename, const char *text, size_t len, char ***paths, size_t *n,
                 char *err, size_t errlen)
{
    ctx_t c = {.file = filename ? filename : "<spec>", .err = err, .errlen = errlen};
    spec_limits_defaults(&c.lim);
    node_t *root = NULL;
    char **out = NULL;
    size_t count = 0;
    int rc = 0;
    if (paths)
        *paths = NULL;
    if (n)
        *n = 0;
    if (err && errlen)
        err[0] = '\0';
    if (!paths || !n || (!text && len)) {
        rc = fail_at(&c, 1, 1, "bad arguments to spec_imports");
        goto cleanup;
    }
    if (len > c.lim.max_bytes) {
        rc = fail_at(&c, 1, 1, "spec is larger than the limit of %zu bytes (%zu bytes)",
                     c.lim.max_bytes, len);
        goto cleanup;
    }
    if (len && memchr(text, '\0', len)) {
        rc = fail_at(&c, 1, 1, "NUL byte in spec");
        goto cleanup;
    }
    if (blank_text(text ? text : "", len))
        goto cleanup;
    if ((rc = load_tree(&c, text, len, &root)) < 0)
        goto cleanup;
    const node_t *v = root && root->type == N_MAP ? map_get(root, "imports") : NULL;
    if (!v || is_null(v))
        goto cleanup;
    if (v->type != N_SEQ) {
        rc = fail(&c, v, "'imports' must be a list of paths (or {path: FILE, as: PREFIX})");
        goto cleanup;
    }
    char *dir = import_dir(c.file);
    out = xcalloc(v->nkids ? v->nkids : 1, sizeof *out);
    for (size_t i = 0; i < v->nkids; i++) {
        char *path = NULL, *prefix = NULL;
        const node_t *at;
        if (import_entry(&c, dir, v->kids[i], &path, &prefix, &at) < 0) {
            rc = -EINVAL;
            continue;
        }
        free(prefix);
        out[count++] = path;
    }
    free(dir);
cleanup:
    if (c.failed) {
        rc = -EINVAL;
        write_errors(&c);
        for (size_t i = 0; i < count; i++)
            free(out[i]);
        free(out);
    } else if (paths && n) {
        *paths = out;
        *n = count;
        out = NULL;
    }
    for (size_t i = 0; i < c.nerrs; i++)
        free(c.errs[i].msg);
    free(c.errs);
    node_free(root);
    return rc;
}
