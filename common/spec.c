/* spec — see spec.h; the parts of the compiler are listed in
 * spec_internal.h. This file: the document walk, messages, scalar checks,
 * the step-name table and the public entry points.
 *
 * Design: libyaml's event API feeds a small tree of our own (node_t: map,
 * sequence or scalar, each with its 1-based line and column). Building
 * the tree ourselves, rather than using yaml_parser_load(), lets us refuse
 * aliases as they arrive (no billion laughs), bound nesting depth and node
 * count, and catch duplicate keys in every mapping in one place. A second
 * pass walks the tree top-down: name, params (+ -p overrides), defaults,
 * steps, finally (appended after the steps, flagged is_finally); then
 * needs are resolved and checked for cycles, and last the data flow
 * (inputs and run-time references) is checked against the resolved graph.
 *
 * Errors: each is recorded (fail() adds it to a list on the context) and
 * the walk goes on with what does not depend on the failed value: the
 * rest of the mapping, the next step; the data flow of a step that had an
 * error, or whose needs did, is not checked, references to a step that
 * had an error are not refused, and "no step named X" is not said when a
 * step has no usable name, so one mistake never reports a second. YAML
 * syntax errors and limits stop the walk (c->fatal). They are reported
 * in file order, at most 20, then "and N more errors", one a line; an
 * unknown key or step name comes with the closest valid one (suggest.h).
 * Each node remembers its file (node_t.file): an error in an imported
 * file names that file, and those come after the spec's own.
 * Keys that later releases implement are shape-checked and their first
 * position is remembered; only when the whole document is otherwise valid
 * is that "not implemented yet" reported, so real mistakes always win.
 *
 * Merging: a step's settings override `defaults:` field by field
 * (resources.cpu, retries.backoff, ...) and key by key (env, labels);
 * what neither says comes from the SPEC_DEFAULT_* macros.
 *
 * Steps: each is parsed straight into the Drover__StepSpec message that
 * droverd stores (spec.h), so proto/drover.proto is the one step schema;
 * only parse-time facts stay outside it (spec_t.pos, step_aux_t).
 *
 * Params: values are kept as text; a param declared with no value (`x:`)
 * must be given with -p. Templates are substituted in one pass (a value
 * that itself contains "{{" is not expanded again), in command, script,
 * env values, when, a string for_each and the scalars of for_each items.
 *
 * Run-time templates ({{steps.S.outputs.params.P}}, {{item}},
 * {{item.KEY}}, {{run.id|name|status}}) are kept verbatim where they are
 * written (command, script, env values, when, a string for_each). Their
 * grammar (spacing, forms) is expr.h's, through its template iterator and
 * expr_ref_parse, so droverd reads them exactly as they were checked. Their
 * form is checked as they are met; what they refer to is checked after
 * needs are resolved, by rescanning the source scalars (for `when`, by
 * expr_check over the params-substituted text): S must be an ancestor of
 * the step through needs (for a finally step, any main step also counts)
 * and declare P; {{item...}} needs for_each; {{run.status}} a finally
 * step. In a steps reference, S is what lies between "steps." and the
 * first ".outputs.params."; in an input source "A.B.C" every split at a
 * '.' whose left part names a step is tried (names may hold dots), and
 * the split whose step declares the artifact wins. Ancestor sets are bit
 * sets filled once in dependency order, only when some step needs them.
 *
 * for_each: a list gives literal items (a scalar as its text; a map or
 * list as compact JSON, where plain YAML numbers, booleans and nulls keep
 * their JSON type and every other scalar is a string); a string is either
 * one {{steps...}} template (items_from) or JSON text read with
 * json_text_list. Run-time templates cannot appear inside items: nothing
 * would expand them. A map {range: END | [START, END] | [START, END, STEP]}
 * is a range, as Python's range(): int64 numbers (a plain integer, or a
 * string of {{params.NAME}} that makes one), stored as three numbers, not
 * items; droverd makes the decimal strings when the step runs. Its count
 * is bounded by the run-time fan-out limit (lim.max_range_items), not the
 * literal list's, since it costs no spec bytes.
 *
 * Quantities (memory, cpu, durations) are parsed by units.c.
 *
 * Limits (all errors, never truncation): 1 MiB of YAML, 32 levels of
 * nesting, 200k YAML nodes, 10,000 steps (main and finally together),
 * 1000 params, 63-byte names, 64 KiB param values, 1000 env entries and
 * 64 labels per map, 100,000 for_each items per step (a range: 1,000,000,
 * or droverd's --max-items), 1 MiB per string after substitution, 64 MiB
 * of argv/env/labels/items in the result.
 * Step names are found through a hash table, output names by binary
 * search, so no check is quadratic in the size of the spec.
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"
#include "util.h"

#include "strbuf.h"
#include "suggest.h"

/* A user string made safe for a one-line message: control characters
 * escaped, long strings shortened with "...". Display only. */
const char *show(ctx_t *c, const char *s)
{
    char *b = c->show[c->show_i];
    c->show_i = (c->show_i + 1) % 4;
    size_t o = 0, cap = sizeof c->show[0];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (o + 8 >= cap) {
            memcpy(b + o, "...", 4);
            return b;
        }
        if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(b + o, cap - o, "\\x%02x", *p);
        else
            b[o++] = (char)*p;
    }
    b[o] = '\0';
    return b;
}

static int vfail_at(ctx_t *c, const char *file, int line, int col, const char *fmt, va_list ap)
{
    c->failed = true;
    c->fail_calls++;
    for (size_t i = 0; i < c->nerrs; i++) {
        if (c->errs[i].line == line && c->errs[i].col == col && c->errs[i].file == file)
            return -EINVAL; /* a consequence of the error already there */
    }
    c->nerrs_all++;
    if (c->nerrs == SPEC_MAX_ERRS_KEPT)
        return -EINVAL;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort(); /* only out of memory, as xmalloc */
    if (c->nerrs % 16 == 0)
        c->errs = xrealloc(c->errs, (c->nerrs + 16) * sizeof *c->errs);
    c->errs[c->nerrs++] = (spec_err_t){file, line, col, msg, 0};
    return -EINVAL;
}

int fail_at(ctx_t *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int fail_at(ctx_t *c, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_at(c, c->file, line, col, fmt, ap);
    va_end(ap);
    return rc;
}

int fail(ctx_t *c, const node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int fail(ctx_t *c, const node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc =
        vfail_at(c, n && n->file ? n->file : c->file, n ? n->line : 1, n ? n->col : 1, fmt, ap);
    va_end(ap);
    return rc;
}

/* A failure because the spec is beyond one of droverd's limits: the same
 * message, and spec_parse_limited returns -E2BIG. */
int fail_limit(ctx_t *c, const node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int fail_limit(ctx_t *c, const node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->over_limit = true;
    c->fatal = true;
    int rc =
        vfail_at(c, n && n->file ? n->file : c->file, n ? n->line : 1, n ? n->col : 1, fmt, ap);
    va_end(ap);
    return rc;
}

const char *hint(ctx_t *c, const char *word, size_t len, const char *const *candidates)
{
    const char *best = suggest_closest(word, len, candidates);
    c->hint[0] = '\0';
    if (best)
        snprintf(c->hint, sizeof c->hint, "; did you mean '%s'?", show(c, best));
    return c->hint;
}

/* Over the names of the steps parsed so far. Each name is compared, so
 * only the first few errors get a hint and only in specs of at most 1000
 * steps: a spec of errors cannot make this quadratic. */
const char *step_hint(ctx_t *c, const char *word, size_t len)
{
    c->hint[0] = '\0';
    if (c->nerrs_all >= SPEC_MAX_ERRS_SHOWN || c->nsteps > 1000)
        return c->hint;
    const char **names = xcalloc(c->nsteps + 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; i < c->nsteps; i++) {
        if (c->steps[i] && c->steps[i]->name && *c->steps[i]->name)
            names[n++] = c->steps[i]->name;
    }
    hint(c, word, len, names);
    free(names);
    return c->hint;
}

/* The valid keys are named when list is set and they fit in a message. */
int unknown_key(ctx_t *c, const node_t *k, const char *where, const char *const *keys, bool list)
{
    strbuf_t b = {0};
    if (list) {
        for (const char *const *p = keys; *p; p++)
            sb_printf(&b, "%s%s", p == keys ? " (" : ", ", *p);
        if (b.len)
            sb_puts(&b, ")");
    }
    char *w = where ? xasprintf(" in %s", where) : xstrdup("");
    int rc = fail(c, k, "unknown key '%s'%s%s%s", show(c, k->str), w, b.len ? b.buf : "",
                  hint(c, k->str, k->len, keys));
    free(w);
    sb_free(&b);
    return rc;
}

/* Remember a not-yet-implemented feature; the earliest in the file wins. */
void not_impl(ctx_t *c, const node_t *n, const char *what, const char *feature)
{
    if (c->ni_set && (c->ni_line < n->line || (c->ni_line == n->line && c->ni_col <= n->col)))
        return;
    free(c->ni_what);
    c->ni_what = xasprintf("'%s' (%s)", show(c, what), feature);
    c->ni_set = true;
    c->ni_line = n->line;
    c->ni_col = n->col;
}

/* ---- scalar helpers ---- */

/* ASCII only, whatever the process locale says. */
bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

bool is_alnum(char ch)
{
    return is_alpha(ch) || (ch >= '0' && ch <= '9');
}

bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SPEC_MAX_NAME)
        return false;
    for (const char *p = s; *p; p++) {
        if (!is_alnum(*p) && *p != '_' && *p != '.' && *p != '-')
            return false;
    }
    return true;
}

/* A non-null scalar, or an error naming what it should be. */
int want_str(ctx_t *c, const node_t *v, const char *what)
{
    if (v->type != N_SCALAR || is_null(v))
        return fail(c, v, "'%s' must be a string", what);
    return 0;
}

int want_map(ctx_t *c, const node_t *v, const char *what, const char *keys)
{
    if (v->type != N_MAP)
        return fail(c, v, "'%s' must be a map (%s)", what, keys);
    return 0;
}

int want_uint(ctx_t *c, const node_t *v, const char *what, uint64_t min, uint64_t max,
              uint64_t *out)
{
    *out = 0; /* written on every path: callers read it only on success, but
                 gcc -O3 cannot see that through fail() */
    if (v->type != N_SCALAR || spec_parse_uint(v->str, max, out) < 0 || *out < min)
        return fail(c, v, "'%s' must be a whole number from %llu to %llu", what,
                    (unsigned long long)min, (unsigned long long)max);
    return 0;
}

/* Every duration key of a spec comes here: a bare number is refused. */
int want_duration(ctx_t *c, const node_t *v, const char *what, uint64_t *out)
{
    int rc = v->type == N_SCALAR ? spec_parse_duration_unit(v->str, out) : -EINVAL;
    if (rc == -EDOM) {
        const char *t = show(c, v->str);
        return fail(c, v,
                    "duration '%s' for %s has no unit: write %ss (or %sm, %sh, %sms); a bare "
                    "number is not taken as seconds",
                    t, what, t, t, t, t);
    }
    if (rc < 0)
        return fail(c, v, "bad duration '%s' for %s (e.g. 90s, 5m, 1h30m, 100ms)",
                    v->type == N_SCALAR ? show(c, v->str) : "(not a string)", what);
    return 0;
}

/* ---- step names ---- */

static size_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

/* A table for n steps, which live in steps (filled as they are parsed). */
void names_init(ctx_t *c, Drover__StepSpec *const *steps, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    c->steps = steps;
    c->nsteps = n;
    c->names = xcalloc(cap, sizeof *c->names);
    c->names_cap = cap;
}

/* The index of the step named s[0..n), or false. */
bool names_find(const ctx_t *c, const char *s, size_t n, size_t *idx)
{
    size_t mask = c->names_cap - 1;
    for (size_t i = name_hash(s, n) & mask; c->names[i]; i = (i + 1) & mask) {
        const char *nm = c->steps[c->names[i] - 1]->name;
        if (strlen(nm) == n && !memcmp(nm, s, n)) {
            *idx = c->names[i] - 1;
            return true;
        }
    }
    return false;
}

/* Add step idx, whose name is not in the table yet. */
void names_add(ctx_t *c, size_t idx)
{
    const char *nm = c->steps[idx]->name;
    size_t mask = c->names_cap - 1, i = name_hash(nm, strlen(nm)) & mask;
    while (c->names[i])
        i = (i + 1) & mask;
    c->names[i] = idx + 1;
}

/* params: declared values, then -p overrides; all go to s->params (owned
 * by s, so nothing to undo here on failure). Every entry is checked; one
 * in error is kept with the value "" (so templates naming it add nothing
 * more), or, when it has no usable name, makes "unknown param" unsaid. */
static int parse_params(ctx_t *c, const node_t *v, const spec_kv_t *ov, size_t nov, spec_t *s)
{
    if (v && !is_null(v)) {
        if (v->type != N_MAP)
            return fail(c, v, "'params' must be a map of name: value");
        if (map_len(v) > SPEC_MAX_PARAMS)
            return fail(c, v, "too many params (at most %u)", SPEC_MAX_PARAMS);
        s->params = xcalloc(map_len(v), sizeof *s->params);
        for (size_t i = 0; i < map_len(v); i++) {
            const node_t *k = map_key(v, i), *x = map_val(v, i);
            if (!valid_name(k->str)) {
                fail(c, k, "bad param name '%s' (letters, digits, '_', '.', '-'; at most %u)",
                     show(c, k->str), SPEC_MAX_NAME);
                c->params_partial = true;
            }
            if (x->type != N_SCALAR)
                fail(c, x, "param '%s' must be a single value (a string or number)",
                     show(c, k->str));
            if (x->type == N_SCALAR && x->len > c->lim.max_param_bytes)
                return fail_limit(c, x, "param '%s' is longer than %zu bytes", show(c, k->str),
                                  c->lim.max_param_bytes);
            s->params[i].key = xstrdup(k->str);
            /* a null value declares a param that -p must provide */
            s->params[i].value = x->type != N_SCALAR ? xstrdup("")
                                 : is_null(x)        ? NULL
                                                     : xstrdup(x->str);
            s->param_count++;
        }
    }
    for (size_t j = 0; j < nov; j++) {
        const char *key = ov[j].key ? ov[j].key : "";
        size_t i = 0;
        while (i < s->param_count && strcmp(s->params[i].key, key))
            i++;
        if (i == s->param_count) {
            const char **names = xcalloc(s->param_count + 1, sizeof *names);
            for (size_t p = 0; p < s->param_count; p++)
                names[p] = s->params[p].key;
            fail(c, v, "unknown param '%s' (-p %s=...): declare it under params:%s", show(c, key),
                 show(c, key), hint(c, key, strlen(key), names));
            free(names);
            continue;
        }
        const char *val = ov[j].value ? ov[j].value : "";
        if (strlen(val) > c->lim.max_param_bytes)
            return fail_limit(c, v, "param '%s' (-p %s=...) is longer than %zu bytes", show(c, key),
                              show(c, key), c->lim.max_param_bytes);
        free(s->params[i].value);
        s->params[i].value = xstrdup(val);
    }
    for (size_t i = 0; i < s->param_count; i++) {
        if (!s->params[i].value) {
            fail(c, map_key(v, i),
                 "param '%s' has no value: give one under params: or "
                 "with -p %s=...",
                 show(c, s->params[i].key), show(c, s->params[i].key));
            s->params[i].value = xstrdup("");
        }
    }
    c->params = s->params;
    c->param_count = s->param_count;
    return c->failed ? -EINVAL : 0;
}

void aux_free(step_aux_t *a)
{
    free(a->env_src);
    free(a->input_src);
    free(a->arts_sorted);
    free(a->params_sorted);
    free(a->with_src);
}

/* The top-level keys, NULL-terminated: a new one is a line here and its
 * branch in parse_doc. */
static const char *const doc_keys[] = {"name",        "params",    "defaults", "steps",
                                       "finally",     "templates", "imports",  "max_depth",
                                       "parallelism", "timeout",   NULL};

/* The whole document; root is a map. Every key, every step and every key
 * of a step is checked, whatever failed before it (errors are listed in
 * c); only what depends on a failed value is skipped. */
static int parse_doc(ctx_t *c, const node_t *root, const spec_kv_t *ov, size_t nov, spec_t *s)
{
    const node_t *name = NULL, *params = NULL, *defaults = NULL, *steps = NULL, *fin = NULL;
    const node_t *templates = NULL, *imports = NULL;
    settings_t d = {0};
    step_aux_t *aux = NULL;
    size_t nsteps = 0, nfin = 0, made = 0;
    int rc = 0, lim_rc;

    for (size_t i = 0; i < map_len(root); i++) {
        const node_t *k = map_key(root, i), *v = map_val(root, i);
        if (!strcmp(k->str, "name"))
            name = v;
        else if (!strcmp(k->str, "params"))
            params = v;
        else if (!strcmp(k->str, "defaults"))
            defaults = v;
        else if (!strcmp(k->str, "steps"))
            steps = v;
        else if (!strcmp(k->str, "finally"))
            fin = v;
        else if (!strcmp(k->str, "templates"))
            templates = v;
        else if (!strcmp(k->str, "imports"))
            imports = v;
        else if (!strcmp(k->str, "max_depth")) {
            uint64_t u;
            if (want_uint(c, v, "max_depth", 1, 1000, &u) == 0)
                s->max_depth = (uint32_t)u;
        } else if (parse_run_limit(c, k, v, s, &lim_rc))
            ; /* parallelism, timeout: an error is in c's list */
        else
            unknown_key(c, k, NULL, doc_keys, false);
    }
    if (!name)
        fail(c, root, "missing 'name' (the pipeline's name)");
    else if (name->type != N_SCALAR || !valid_name(name->str))
        fail(c, name, "bad pipeline name '%s' (letters, digits, '_', '.', '-'; at most %u)",
             name->type == N_SCALAR ? show(c, name->str) : "(not a string)", SPEC_MAX_NAME);
    else
        s->name = xstrdup(name->str);
    parse_params(c, params, ov, nov, s);
    if (defaults && !c->fatal)
        parse_defaults(c, defaults, &d);
    if ((templates || imports) && !c->fatal)
        reuse_begin(c, templates, imports, s);
    if (c->fatal) {
        rc = -EINVAL;
        goto cleanup;
    }
    if (!steps) {
        rc = fail(c, root, "missing 'steps' (the list of steps)");
        goto cleanup;
    }
    if (steps->type != N_SEQ || steps->nkids == 0) {
        rc = fail(c, steps, "'steps' must be a non-empty list of steps");
        goto cleanup;
    }
    if (fin && is_null(fin))
        fin = NULL;
    if (fin && fin->type != N_SEQ) {
        fail(c, fin, "'finally' must be a list of steps");
        fin = NULL;
        c->names_partial = true; /* a step may need one of them */
    }
    nsteps = steps->nkids;
    nfin = fin ? fin->nkids : 0;
    if (nsteps + nfin > c->lim.max_steps) {
        rc = fail_limit(c, steps, "too many steps (%zu; at most %zu)", nsteps + nfin,
                        c->lim.max_steps);
        goto cleanup;
    }
    s->steps = xcalloc(nsteps + nfin, sizeof *s->steps);
    s->pos = xcalloc(nsteps + nfin, sizeof *s->pos);
    aux = xcalloc(nsteps + nfin, sizeof *aux);
    names_init(c, s->steps, nsteps + nfin);
    for (size_t i = 0; i < nsteps + nfin; i++) {
        const node_t *m = i < nsteps ? steps->kids[i] : fin->kids[i - nsteps];
        aux[i].is_finally = i >= nsteps;
        s->pos[i] = (spec_pos_t){m->line, m->col};
        s->step_count = made = i + 1; /* so spec_destroy frees what parse_step made */
        if (parse_step(c, m, &d, s->steps, i, aux) < 0)
            aux[i].failed = true;
        if (c->fatal) {
            rc = -EINVAL;
            goto cleanup;
        }
    }
    /* a cycle leaves no order to check the data flow in */
    if (resolve_needs(c, s->steps, aux, nsteps + nfin) == 0 && !c->fatal)
        check_flow(c, s->steps, aux, nsteps + nfin);
    s->root_count = s->step_count;
    if (c->reuse && !c->fatal)
        reuse_finish(c, s, &d); /* the bodies of the DAG templates used */
    rc = c->failed ? -EINVAL : 0;
cleanup:
    settings_free(&d);
    for (size_t i = 0; aux && i < made; i++)
        aux_free(&aux[i]);
    free(aux);
    return rc;
}

void spec_limits_defaults(spec_limits_t *lim)
{
    lim->max_bytes = SPEC_MAX_TEXT;
    lim->max_steps = SPEC_MAX_STEPS;
    lim->max_items = SPEC_MAX_ITEMS;
    lim->max_range_items = SPEC_MAX_RANGE;
    lim->max_param_bytes = SPEC_MAX_PARAM_VAL;
    lim->max_labels = SPEC_MAX_LABELS;
}

int spec_parse(const char *filename, const char *text, size_t len, const spec_kv_t *overrides,
               size_t override_count, spec_t **out, char *err, size_t errlen)
{
    return spec_parse_limited(filename, text, len, overrides, override_count, NULL, out, err,
                              errlen);
}

/* The spec's own file first (rank 0), then the imported ones by path. */
static int cmp_err(const void *a, const void *b)
{
    const spec_err_t *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    if (x->file != y->file) {
        int r = strcmp(x->file, y->file);
        if (r)
            return r;
    }
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0; /* positions are unique (vfail_at) */
}

/* The errors found, in file order, one "FILE:LINE:COL: reason" a line, at
 * most SPEC_MAX_ERRS_SHOWN, then "and N more errors"; whole lines only
 * (the first excepted), as many as fit in c->err. */
void write_errors(ctx_t *c)
{
    if (!c->err || c->errlen == 0)
        return;
    c->err[0] = '\0';
    for (size_t i = 0; i < c->nerrs; i++)
        c->errs[i].rank = c->errs[i].file != c->file;
    qsort(c->errs, c->nerrs, sizeof *c->errs, cmp_err);
    size_t o = 0, shown = 0;
    for (size_t i = 0; i < c->nerrs && shown < SPEC_MAX_ERRS_SHOWN; i++) {
        const spec_err_t *e = &c->errs[i];
        char *line = xasprintf("%s%s:%d:%d: %s", i ? "\n" : "", e->file, e->line, e->col, e->msg);
        size_t n = strlen(line), room = c->errlen - o;
        /* leave room for the "and N more" line after the first */
        if (i && n + 40 >= room) {
            free(line);
            break;
        }
        snprintf(c->err + o, room, "%s", line);
        o += n < room ? n : room - 1;
        shown++;
        free(line);
    }
    if (c->nerrs_all > shown) {
        char more[48];
        int n = snprintf(more, sizeof more, "\nand %zu more error%s", c->nerrs_all - shown,
                         c->nerrs_all - shown == 1 ? "" : "s");
        if (n > 0 && (size_t)n < c->errlen - o)
            memcpy(c->err + o, more, (size_t)n + 1);
    }
}

/* Parse and validate a whole spec (contract in spec.h). Order: size and
 * NUL checks, YAML → tree (syntax, aliases, depth, duplicate keys), then
 * the document; "not implemented yet" only when nothing else is wrong.
 * Every path frees what it built; *out is set only on success. */
int spec_parse_limited(const char *filename, const char *text, size_t len,
                       const spec_kv_t *overrides, size_t override_count,
                       const spec_limits_t *limits, spec_t **out, char *err, size_t errlen)
{
    return spec_parse_files(filename, text, len, NULL, 0, overrides, override_count, limits, out,
                            err, errlen);
}

/* spec_parse_limited with the imported files at hand (contract in
 * spec.h): the one entry point all the others come to. */
int spec_parse_files(const char *filename, const char *text, size_t len,
                     const spec_import_t *imports, size_t import_count, const spec_kv_t *overrides,
                     size_t override_count, const spec_limits_t *limits, spec_t **out, char *err,
                     size_t errlen)
{
    ctx_t c = {.file = filename ? filename : "<spec>",
               .err = err,
               .errlen = errlen,
               .imports = imports,
               .import_count = imports ? import_count : 0};
    if (limits)
        c.lim = *limits;
    else
        spec_limits_defaults(&c.lim);
    node_t *root = NULL;
    spec_t *s = NULL;
    int rc = 0;

    if (out)
        *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!out || (!text && len) || (!overrides && override_count)) {
        rc = fail_at(&c, 1, 1, "bad arguments to spec_parse");
        goto cleanup;
    }
    if (len > c.lim.max_bytes) {
        rc = fail_at(&c, 1, 1, "spec is larger than the limit of %zu bytes (%zu bytes)",
                     c.lim.max_bytes, len);
        c.over_limit = true;
        goto cleanup;
    }
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        int line, col;
        offset_pos(text, len, (size_t)(nul - text), &line, &col);
        rc = fail_at(&c, line, col, "NUL byte in spec");
        goto cleanup;
    }
    if (blank_text(text, len)) {
        rc = fail_at(&c, 1, 1, "empty spec");
        goto cleanup;
    }
    if ((rc = load_tree(&c, text ? text : "", len, &root)) < 0)
        goto cleanup;
    if (!root || is_null(root)) {
        rc = fail_at(&c, 1, 1, "empty spec");
        goto cleanup;
    }
    if (root->type != N_MAP) {
        rc = fail(&c, root, "the top level must be a map (name, params, defaults, steps, finally)");
        goto cleanup;
    }
    s = xcalloc(1, sizeof *s);
    if ((rc = parse_doc(&c, root, overrides, override_count, s)) < 0)
        goto cleanup;
    if (c.ni_set) {
        rc = fail_at(&c, c.ni_line, c.ni_col,
                     "%s is not implemented yet in this version of drover; remove it to run "
                     "this pipeline",
                     c.ni_what);
        goto cleanup;
    }
    *out = s;
    s = NULL;
cleanup:
    if (rc < 0)
        write_errors(&c);
    for (size_t i = 0; i < c.nerrs; i++)
        free(c.errs[i].msg);
    free(c.errs);
    spec_destroy(&s);
    node_free(root);
    free(c.ni_what);
    free(c.names);
    reuse_free(&c);
    return rc < 0 && c.over_limit ? -E2BIG : rc;
}

/* Free a spec and everything it owns, then NULL *spec. NULL-safe; also
 * frees a partly built spec (unset pointers are NULL). */
void spec_destroy(spec_t **spec)
{
    if (!spec || !*spec)
        return;
    spec_t *s = *spec;
    free(s->name);
    kvs_free(s->params, s->param_count);
    for (size_t i = 0; i < s->step_count; i++) {
        if (s->steps[i])
            drover__step_spec__free_unpacked(s->steps[i], NULL);
    }
    free(s->steps);
    free(s->pos);
    for (size_t i = 0; i < s->body_count; i++) {
        if (s->bodies[i])
            drover__template_body__free_unpacked(s->bodies[i], NULL);
    }
    free(s->bodies);
    free(s);
    *spec = NULL;
}

/* Through the wire format: every field the schema has, whatever it is,
 * without a copy to keep in step with it. */
Drover__StepSpec *spec_step_dup(const Drover__StepSpec *st)
{
    size_t len = drover__step_spec__get_packed_size(st);
    uint8_t *buf = xmalloc(len ? len : 1);
    drover__step_spec__pack(st, buf);
    Drover__StepSpec *copy = drover__step_spec__unpack(NULL, len, buf);
    free(buf);
    if (!copy)
        abort(); /* only out of memory: we packed it ourselves */
    return copy;
}
