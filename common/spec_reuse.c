/* spec_reuse — templates (README "Templates, groups and imports"): the
 * top-level templates: map, steps that use them, and the bodies of DAG
 * templates.
 *
 * A template is a map under templates:. With steps: it is a DAG template
 * (a sub-pipeline: steps, finally, declared outputs); else a step template
 * (a step body). Both declare inputs: params (name: default, null =
 * required, or {default, type}) and artifacts (a list of names). Their
 * header (inputs, outputs' names, refused keys) is read once, when first
 * used (tmpl_prepare); errors in it are reported once.
 *
 * A step with uses: T:
 *   - step template: T's keys are merged into the step (its own keys win,
 *     settings field by field: step > template > defaults > built-ins,
 *     settings_over) and {{inputs.params.X}} in T's own scalars is
 *     replaced by the step's with: value or the default, in one pass, as
 *     params are (a scope_t with subst; "own" tells T's scalars from the
 *     using step's by address). The result is an ordinary step.
 *   - DAG template: the step becomes a group: uses_body = k + 1 (T's body
 *     queued on first use: the queue makes recursion terminate), with =
 *     every declared param (the given text, or the default), out_params /
 *     out_artifacts = T's declared outputs' names. Only scheduling keys
 *     may be set on it.
 * with: values are read in the using step's scope (params substituted,
 * run-time references kept and checked by check_flow through with_src),
 * and a literal one is checked against its param's type.
 *
 * Bodies (reuse_finish): each queued template's steps and finally are
 * compiled like the pipeline's own (parse_step, resolve_needs,
 * check_flow) in arrays of their own, with a step-name table of their own
 * and c->scope the template's, so {{steps.S}} and needs name steps of the
 * same body and {{inputs.params.X}} must be declared (kept verbatim for
 * droverd); then their indexes are shifted and they are appended to the
 * spec's steps, with TemplateBody k describing them. Every template of
 * the spec's own file that no step used is compiled too, for its errors,
 * and then dropped.
 *
 * Template names are [A-Za-z0-9_-] (no '.'): "p.NAME" is NAME in the file
 * imported under prefix p, unambiguously. Bare names are looked up in
 * the file the using step was written in (reuse.cur_file).
 *
 * Limits: 10,000 templates; the steps of all bodies count against the
 * spec's step limit; a step template's nodes times its uses at most
 * MAX_COMPILED (each use compiles it again); with: values within the
 * param size limit.
 *
 * Ownership: struct reuse (ctx_t.reuse, one spec_parse call) owns the
 * templates' headers and the imported files' trees (reuse_free); what
 * goes into a step or a TemplateBody belongs to the spec (spec_destroy).
 */
#include "spec_internal.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "json.h"
#include "util.h"

#define MAX_TEMPLATES 10000u
#define MAX_COMPILED  (10u * SPEC_MAX_NODES) /* step templates' nodes, times their uses */

/* The keys a template may not have: the using step's. */
static const char *const using_keys[] = {"name", "needs",    "depends",     "trigger",
                                         "when", "for_each", "parallelism", NULL};
/* The keys a step using a DAG template may have. */
static const char *const group_keys[] = {"name",     "uses",        "with",        "inputs",
                                         "needs",    "depends",     "trigger",     "when",
                                         "for_each", "parallelism", "continue_on", NULL};
static const char *const dag_keys[] = {"inputs", "steps", "finally", "outputs", NULL};
static const char *const type_names[] = {"string", "integer", "number", "boolean", "json", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++) {
        if (!strcmp(*list, s))
            return true;
    }
    return false;
}

/* A template or prefix name: 1-63 of [A-Za-z0-9_-]. */
static bool tmpl_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SPEC_MAX_NAME)
        return false;
    for (; *s; s++) {
        if (!is_alnum(*s) && *s != '_' && *s != '-')
            return false;
    }
    return true;
}

static char **strv_dup(char *const *v, size_t n)
{
    if (n == 0)
        return NULL;
    char **o = xcalloc(n, sizeof *o);
    for (size_t i = 0; i < n; i++)
        o[i] = xstrdup(v[i]);
    return o;
}

/* "FILE:LINE:COL" of where template t is declared, in b (returned). */
typedef struct {
    char s[160];
} at_t;

static const char *declared_at(ctx_t *c, const tmpl_t *t, at_t *b)
{
    snprintf(b->s, sizeof b->s, "%s:%d:%d", show(c, t->key->file ? t->key->file : c->file),
             t->key->line, t->key->col);
    return b->s;
}

/* ---- types of input params: spec_input_check (spec_input.c) ---- */

/* ---- the templates' table ---- */

static int cmp_tmpl_key(const void *a, const void *b, void *arg);

static struct reuse *R(ctx_t *c)
{
    return c->reuse;
}

/* Template index of bare name s[0..n) in file fi, or -1. */
static long find_bare(ctx_t *c, size_t fi, const char *s, size_t n)
{
    const rfile_t *f = &R(c)->f[fi];
    size_t lo = 0, hi = f->ntmpl;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *x = R(c)->t[f->by_name[mid]].key->str;
        int r = strncmp(s, x, n);
        if (r == 0)
            r = x[n] ? -1 : 0;
        if (r == 0)
            return (long)f->by_name[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* The template named s (as written in file fi: NAME or PREFIX.NAME), or -1. */
static long find_tmpl(ctx_t *c, size_t fi, const char *s)
{
    const char *dot = strchr(s, '.');
    if (!dot)
        return find_bare(c, fi, s, strlen(s));
    const rfile_t *f = &R(c)->f[fi];
    for (size_t i = 0; i < f->nimp; i++) {
        if (strlen(f->imp[i].prefix) == (size_t)(dot - s) &&
            !memcmp(f->imp[i].prefix, s, (size_t)(dot - s))) {
            if (strchr(dot + 1, '.'))
                return -1;
            return find_bare(c, f->imp[i].file, dot + 1, strlen(dot + 1));
        }
    }
    return -1;
}

/* "; did you mean 'X'?" over the names a step of file fi may use. */
static const char *tmpl_hint(ctx_t *c, size_t fi, const char *s)
{
    const rfile_t *f = &R(c)->f[fi];
    size_t n = 0, cap = 1;
    for (size_t i = 0; i < f->nimp; i++)
        cap += R(c)->f[f->imp[i].file].ntmpl;
    cap += f->ntmpl;
    c->hint[0] = '\0';
    if (cap > 2000 || c->nerrs_all >= SPEC_MAX_ERRS_SHOWN)
        return c->hint;
    char **names = xcalloc(cap, sizeof *names);
    for (size_t i = 0; i < f->ntmpl; i++)
        names[n++] = xstrdup(R(c)->t[f->by_name[i]].key->str);
    for (size_t i = 0; i < f->nimp; i++) {
        const rfile_t *g = &R(c)->f[f->imp[i].file];
        for (size_t j = 0; j < g->ntmpl; j++)
            names[n++] = xasprintf("%s.%s", f->imp[i].prefix, R(c)->t[g->by_name[j]].key->str);
    }
    hint(c, s, strlen(s), (const char *const *)names);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return c->hint;
}

static int cmp_tmpl_key(const void *a, const void *b, void *arg)
{
    const struct reuse *r = arg;
    return strcmp(r->t[*(const size_t *)a].key->str, r->t[*(const size_t *)b].key->str);
}

int reuse_templates(ctx_t *c, size_t fi, const node_t *v)
{
    struct reuse *r = R(c);
    int rc = 0;
    if (!v || is_null(v))
        return 0;
    if (v->type != N_MAP)
        return fail(c, v, "'templates' must be a map of NAME: template (a step, or steps:)");
    if (r->nt + map_len(v) > MAX_TEMPLATES)
        return fail_limit(c, v, "too many templates (at most %u)", MAX_TEMPLATES);
    r->t = xrealloc(r->t, (r->nt + map_len(v)) * sizeof *r->t);
    rfile_t *f = &r->f[fi];
    f->by_name = xrealloc(f->by_name, (f->ntmpl + map_len(v)) * sizeof *f->by_name);
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!tmpl_name_ok(k->str)) {
            rc = fail(c, k,
                      "bad template name '%s' (letters, digits, '_', '-'; at most %u; no '.': "
                      "PREFIX.NAME names an imported one)",
                      show(c, k->str), SPEC_MAX_NAME);
            continue;
        }
        if (x->type != N_MAP) {
            rc = fail(c, x,
                      "template '%s' must be a map (a step's keys, or steps: for a DAG "
                      "template)",
                      show(c, k->str));
            continue;
        }
        tmpl_t *t = &r->t[r->nt];
        memset(t, 0, sizeof *t);
        t->name = xasprintf("%s%s", f->label, k->str);
        t->key = k;
        t->def = x;
        t->file = fi;
        t->is_dag = map_get(x, "steps") != NULL;
        f->by_name[f->ntmpl++] = r->nt++;
    }
    /* keys of one map are unique (spec_yaml.c): no duplicate names */
    qsort_r(f->by_name, f->ntmpl, sizeof *f->by_name, cmp_tmpl_key, r);
    return rc;
}

/* ---- a template's header: inputs and outputs ---- */

/* One input param declaration (k: v) into t. */
static int tmpl_param(ctx_t *c, tmpl_t *t, const node_t *k, const node_t *v)
{
    Drover__TemplateInput *in = xmalloc(sizeof *in);
    drover__template_input__init(in);
    in->name = xstrdup(k->str);
    t->params[t->nparams] = in;
    t->param_at[t->nparams++] = k;
    const node_t *dflt = v, *type = NULL;
    int rc = 0;
    if (!valid_name(k->str))
        rc = fail(c, k, "bad input param name '%s' (letters, digits, '_', '.', '-'; at most %u)",
                  show(c, k->str), SPEC_MAX_NAME);
    if (v->type == N_MAP) {
        dflt = NULL;
        for (size_t i = 0; i < map_len(v); i++) {
            const node_t *kk = map_key(v, i);
            if (!strcmp(kk->str, "default"))
                dflt = map_val(v, i);
            else if (!strcmp(kk->str, "type"))
                type = map_val(v, i);
            else {
                static const char *const keys[] = {"default", "type", NULL};
                rc = unknown_key(c, kk, "an input param", keys, true);
            }
        }
    } else if (v->type == N_SEQ) {
        return fail(c, v,
                    "input param '%s' must be a default value, null (required) or {default, "
                    "type}",
                    show(c, k->str));
    }
    if (type) {
        if (type->type != N_SCALAR || !in_list(type_names, type->str))
            rc = fail(c, type,
                      "input param '%s': type must be string, integer, number, boolean or json",
                      show(c, k->str));
        else
            in->type = xstrdup(type->str);
    }
    if (!dflt || is_null(dflt)) {
        in->required = true;
        return rc;
    }
    if (dflt->type != N_SCALAR)
        return fail(c, dflt, "input param '%s': the default must be a string", show(c, k->str));
    char *text = NULL;
    if (expand_mode(c, dflt, EXP_DEFAULT, &text, NULL) < 0)
        return -EINVAL;
    in->default_ = text;
    char want[64];
    if (spec_input_check(in->type, text, want, sizeof want) < 0)
        rc = fail(c, dflt, "input param '%s': default '%s' is not %s", show(c, k->str),
                  show(c, text), want);
    return rc;
}

static int tmpl_inputs(ctx_t *c, tmpl_t *t, const node_t *v)
{
    static const char *const keys[] = {"params", "artifacts", NULL};
    int rc = 0;
    if (is_null(v))
        return 0;
    if (v->type != N_MAP)
        return fail(c, v, "a template's 'inputs' must be a map (params, artifacts)");
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "params")) {
            if (is_null(x))
                continue;
            if (x->type != N_MAP) {
                rc = fail(c, x,
                          "'inputs.params' of a template must be a map of NAME: default (null: "
                          "required)");
                continue;
            }
            t->params = xcalloc(map_len(x), sizeof *t->params);
            t->param_at = xcalloc(map_len(x), sizeof *t->param_at);
            for (size_t j = 0; j < map_len(x); j++) {
                if (tmpl_param(c, t, map_key(x, j), map_val(x, j)) < 0)
                    rc = -EINVAL;
            }
        } else if (!strcmp(k->str, "artifacts")) {
            if (is_null(x))
                continue;
            if (x->type != N_SEQ) {
                rc = fail(c, x, "'inputs.artifacts' of a template must be a list of names");
                continue;
            }
            t->arts = xcalloc(x->nkids ? x->nkids : 1, sizeof *t->arts);
            for (size_t j = 0; j < x->nkids; j++) {
                const node_t *y = x->kids[j];
                if (y->type != N_SCALAR || !valid_file_name(y->str)) {
                    rc = fail(c, y,
                              "bad input artifact name '%s': names are 1-63 characters of "
                              "[A-Za-z0-9_.-] (not '.', no '..')",
                              y->type == N_SCALAR ? show(c, y->str) : "(not a string)");
                    continue;
                }
                bool dup = false;
                for (size_t q = 0; q < t->narts && !dup; q++)
                    dup = !strcmp(t->arts[q], y->str);
                if (dup) {
                    rc = fail(c, y, "input artifact '%s' declared twice", show(c, y->str));
                    continue;
                }
                t->arts[t->narts++] = xstrdup(y->str);
            }
        } else {
            rc = unknown_key(c, k, "a template's inputs", keys, true);
        }
    }
    return rc;
}

/* A DAG template's outputs: {params: {NAME: TEXT}, artifacts: {NAME:
 * SOURCE}}: the names now (the references when the body is compiled). */
static int tmpl_outputs(ctx_t *c, tmpl_t *t, const node_t *v)
{
    static const char *const keys[] = {"params", "artifacts", NULL};
    int rc = 0;
    if (is_null(v))
        return 0;
    if (v->type != N_MAP)
        return fail(c, v, "a DAG template's 'outputs' must be a map (params, artifacts)");
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        bool arts = !strcmp(k->str, "artifacts");
        if (!arts && strcmp(k->str, "params")) {
            rc = unknown_key(c, k, "a DAG template's outputs", keys, true);
            continue;
        }
        if (is_null(x))
            continue;
        if (x->type != N_MAP) {
            rc = fail(c, x,
                      arts ? "a DAG template's 'outputs.artifacts' must be a map of NAME: "
                             "STEP.ARTIFACT"
                           : "a DAG template's 'outputs.params' must be a map of NAME: "
                             "template text ({{steps.STEP.outputs.params.NAME}})");
            continue;
        }
        char ***dst = arts ? &t->out_arts : &t->out_params;
        size_t *n = arts ? &t->n_out_arts : &t->n_out_params;
        *dst = xcalloc(map_len(x) ? map_len(x) : 1, sizeof **dst);
        for (size_t j = 0; j < map_len(x); j++) {
            const node_t *nk = map_key(x, j), *nv = map_val(x, j);
            if (!valid_file_name(nk->str)) {
                rc = fail(c, nk,
                          "bad output name '%s': names are 1-63 characters of [A-Za-z0-9_.-] "
                          "(not '.', no '..')",
                          show(c, nk->str));
                continue;
            }
            if (want_str(c, nv, arts ? "outputs.artifacts value" : "outputs.params value") < 0) {
                rc = -EINVAL;
                continue;
            }
            bool dup = false;
            for (size_t q = 0; q < t->n_out_params && !dup; q++)
                dup = !strcmp(t->out_params[q], nk->str);
            for (size_t q = 0; q < t->n_out_arts && !dup; q++)
                dup = !strcmp(t->out_arts[q], nk->str);
            if (dup) {
                rc = fail(c, nk, "output '%s' declared twice", show(c, nk->str));
                continue;
            }
            (*dst)[(*n)++] = xstrdup(nk->str);
        }
    }
    return rc;
}

/* Read t's header once: refused keys, inputs, (DAG) keys and outputs. 0,
 * or -EINVAL when it is in error (reported the first time). */
static int tmpl_prepare(ctx_t *c, tmpl_t *t)
{
    if (t->prepared)
        return t->bad ? -EINVAL : 0;
    t->prepared = true;
    size_t fails = c->fail_calls;
    for (size_t i = 0; i < map_len(t->def); i++) {
        const node_t *k = map_key(t->def, i), *v = map_val(t->def, i);
        if (in_list(using_keys, k->str))
            fail(c, k,
                 "template '%s' cannot have '%s': it belongs to the step that uses the "
                 "template",
                 show(c, t->name), k->str);
        else if (!strcmp(k->str, "inputs"))
            tmpl_inputs(c, t, v);
        else if (!strcmp(k->str, "uses") || !strcmp(k->str, "with"))
            fail(c, k,
                 "template '%s' cannot have '%s' (a template is not a use of another; a DAG "
                 "template's steps may use templates)",
                 show(c, t->name), k->str);
        else if (t->is_dag && !strcmp(k->str, "outputs"))
            tmpl_outputs(c, t, v);
        else if (t->is_dag && !in_list(dag_keys, k->str)) {
            if (is_step_only_key(k->str) || is_setting_key(k->str))
                fail(c, k,
                     "DAG template '%s' (it has steps:) cannot have '%s': set it on its "
                     "steps",
                     show(c, t->name), k->str);
            else
                unknown_key(c, k, "a DAG template", dag_keys, true);
        }
    }
    t->bad = c->fail_calls != fails;
    return t->bad ? -EINVAL : 0;
}

/* ---- {{inputs.params.X}} and inputs.artifacts.X ---- */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (const node_t *const *)a,
              y = (uintptr_t) * (const node_t *const *)b;
    return x < y ? -1 : x > y;
}

static void collect(const node_t *n, const node_t ***v, size_t *len, size_t *cap)
{
    if (*len == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *v = xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*len)++] = n;
    for (size_t i = 0; i < n->nkids; i++)
        collect(n->kids[i], v, len, cap);
}

/* Whether node v is one of step template t's own (its sorted set). */
static bool owns(const tmpl_t *t, const node_t *v)
{
    return bsearch(&v, t->own, t->nown, sizeof *t->own, cmp_ptr) != NULL;
}

static long param_index(const tmpl_t *t, const char *s, size_t n)
{
    for (size_t i = 0; i < t->nparams; i++) {
        if (strlen(t->params[i]->name) == n && !memcmp(t->params[i]->name, s, n))
            return (long)i;
    }
    return -1;
}

static const char *param_hint(ctx_t *c, const tmpl_t *t, const char *s, size_t n)
{
    const char **names = xcalloc(t->nparams + 1, sizeof *names);
    for (size_t i = 0; i < t->nparams; i++)
        names[i] = t->params[i]->name;
    hint(c, s, n, names);
    free(names);
    return c->hint;
}

int reuse_input_ref(ctx_t *c, const node_t *v, const expr_ref_t *r, const char **value)
{
    const scope_t *sc = c->scope;
    *value = NULL;
    if (sc && sc->subst) {
        if (owns(sc->t, v)) {
            long i = param_index(sc->t, r->a, r->alen);
            if (i >= 0) {
                *value = sc->values[i]; /* NULL (the unused check): kept */
                return 0;
            }
            char *nm = xstrndup(r->a, r->alen);
            int rc = fail(c, v, "template '%s' declares no input param '%s'%s",
                          show(c, sc->t->name), show(c, nm), param_hint(c, sc->t, r->a, r->alen));
            free(nm);
            return rc;
        }
        sc = sc->up;
    }
    if (!sc)
        return fail(c, v,
                    "{{inputs.params.%.*s}} is only known inside a template (templates:): a "
                    "pipeline's own steps read params with {{params.NAME}}",
                    (int)(r->alen > 64 ? 64 : r->alen), r->a);
    if (param_index(sc->t, r->a, r->alen) < 0) {
        char *nm = xstrndup(r->a, r->alen);
        int rc = fail(c, v, "template '%s' declares no input param '%s'%s", show(c, sc->t->name),
                      show(c, nm), param_hint(c, sc->t, r->a, r->alen));
        free(nm);
        return rc;
    }
    return 0; /* kept: droverd gives it the group's value */
}

static const char *art_hint(ctx_t *c, const tmpl_t *t, const char *s)
{
    const char **names = xcalloc(t->narts + 1, sizeof *names);
    for (size_t i = 0; i < t->narts; i++)
        names[i] = t->arts[i];
    hint(c, s, strlen(s), names);
    free(names);
    return c->hint;
}

static bool has_art(const tmpl_t *t, const char *s)
{
    for (size_t i = 0; i < t->narts; i++) {
        if (!strcmp(t->arts[i], s))
            return true;
    }
    return false;
}

#define GROUP_INPUT "inputs.artifacts."

int reuse_group_input(ctx_t *c, const node_t *src, Drover__InputSpec *in)
{
    size_t pl = strlen(GROUP_INPUT);
    if (strncmp(src->str, GROUP_INPUT, pl))
        return 0;
    const char *name = src->str + pl;
    const scope_t *sc = c->scope;
    while (sc && sc->subst)
        sc = sc->up;
    if (!sc) {
        fail(c, src,
             "input '%s': '%s' is only known inside a DAG template (its group's input "
             "artifact); write STEP.ARTIFACT",
             show(c, in->local), show(c, src->str));
        return -1;
    }
    if (!has_art(sc->t, name)) {
        fail(c, src, "input '%s': template '%s' declares no input artifact '%s'%s",
             show(c, in->local), show(c, sc->t->name), show(c, name), art_hint(c, sc->t, name));
        return -1;
    }
    in->artifact = xstrdup(name); /* was "" (not owned) */
    in->from_group_input = true;
    in->step = 0;
    return 1;
}

/* ---- settings: template over defaults ---- */

/* o = hi over lo, field by field (as a step's own settings over
 * defaults:); o owns copies of what it holds. */
static void settings_over(settings_t *o, const settings_t *hi, const settings_t *lo)
{
    memset(o, 0, sizeof *o);
    o->has = hi->has | lo->has;
#define TAKE(bit, f) o->f = (hi->has & (bit)) ? hi->f : lo->f
    TAKE(HAS_CPU, cpu_milli);
    TAKE(HAS_MEM, memory_bytes);
    TAKE(HAS_GPU, gpus);
    TAKE(HAS_LIMIT, retries.limit);
    TAKE(HAS_BACKOFF, retries.backoff_ms);
    TAKE(HAS_FACTOR, retries.factor);
    TAKE(HAS_MAXB, retries.max_backoff_ms);
    TAKE(HAS_RMAXD, retries.max_duration_ms);
    TAKE(HAS_TIMEOUT, timeout_ms);
    TAKE(HAS_MAXP, max_preemptions);
    TAKE(HAS_CACHE, cache);
    TAKE(HAS_SPOT, spot);
    TAKE(HAS_SPOT, spot_node);
    TAKE(HAS_CKPT, checkpoint);
    TAKE(HAS_CKPT, checkpoint_min_interval_ms);
    TAKE(HAS_CKPT, checkpoint_keep);
    TAKE(HAS_SIGNAL, preempt_signal);
    TAKE(HAS_GRACE, preempt_grace_ms);
    TAKE(HAS_FALLBACK, fallback_after);
    TAKE(HAS_FALLBACK, fallback_node);
#undef TAKE
    const char *rw = (hi->has & HAS_RWHEN) ? hi->retry_when : lo->retry_when;
    o->retry_when = rw ? xstrdup(rw) : NULL;
    const char *img = hi->image ? hi->image : lo->image;
    o->image = img ? xstrdup(img) : NULL;
    static const unsigned tbits[SPEC_TMPL_N] = {HAS_TIMEOUT, 0,       HAS_CPU,
                                                HAS_MEM,     HAS_GPU, HAS_LIMIT};
    for (int k = 0; k < SPEC_TMPL_N; k++) {
        bool mine = k == SPEC_TMPL_IMAGE ? hi->image != NULL : (hi->has & tbits[k]) != 0;
        const settings_t *src = mine ? hi : lo;
        o->tmpl[k] = src->tmpl[k] ? xstrdup(src->tmpl[k]) : NULL;
        o->tmpl_node[k] = src->tmpl_node[k];
    }
    /* env and labels: lo's, hi's keys replacing theirs */
    size_t n = lo->env_count + hi->env_count;
    if (n)
        o->env_nodes = xcalloc(n, sizeof *o->env_nodes);
    for (int l = 0; l < 2; l++) {
        const settings_t *s = l ? hi : lo;
        size_t search = o->env_count;
        for (size_t j = 0; j < s->env_count; j++) {
            size_t at = kv_set(&o->env, &search, &o->env_count, xstrdup(s->env[j].key),
                               xstrdup(s->env[j].value));
            o->env_nodes[at] = s->env_nodes[j];
        }
    }
    for (int l = 0; l < 2; l++) {
        const settings_t *s = l ? hi : lo;
        size_t search = o->label_count;
        for (size_t j = 0; j < s->label_count; j++)
            kv_set(&o->labels, &search, &o->label_count, xstrdup(s->labels[j].key),
                   xstrdup(s->labels[j].value));
    }
}

/* ---- steps that use templates ---- */

/* A map node holding m's pairs whose key passes keep (shallow: the pairs
 * stay m's); free with free_shallow. */
static node_t *filter_map(const node_t *m, bool (*keep)(const char *, const void *),
                          const void *arg)
{
    node_t *o = xcalloc(1, sizeof *o);
    o->type = N_MAP;
    o->line = m->line;
    o->col = m->col;
    o->file = m->file;
    o->kids = xcalloc(m->nkids ? m->nkids : 1, sizeof *o->kids);
    for (size_t i = 0; i < map_len(m); i++) {
        if (keep(map_key(m, i)->str, arg)) {
            o->kids[o->nkids++] = map_key(m, i);
            o->kids[o->nkids++] = map_val(m, i);
        }
    }
    o->cap = o->nkids;
    return o;
}

static void free_shallow(node_t *n)
{
    if (n) {
        free(n->kids);
        free(n);
    }
}

static bool keep_group(const char *k, const void *arg)
{
    (void)arg;
    return in_list(group_keys, k) && strcmp(k, "uses") && strcmp(k, "with");
}

/* The step's own keys and the template's non-setting keys it does not
 * have (arg: the using step's map). */
static bool keep_step(const char *k, const void *arg)
{
    (void)arg;
    return strcmp(k, "uses") && strcmp(k, "with");
}

/* The body index + 1 of DAG template ti, queued on first use. */
static uint32_t body_of(ctx_t *c, size_t ti)
{
    struct reuse *r = R(c);
    if (!r->t[ti].body) {
        r->queue = xrealloc(r->queue, (r->nqueue + 1) * sizeof *r->queue);
        r->queue[r->nqueue++] = ti;
        r->t[ti].body = (uint32_t)r->nqueue;
    }
    return r->t[ti].body;
}

/* The using step's input artifacts against t's declared ones: each
 * declared one given, none other. m: the using step's map. */
static int check_input_arts(ctx_t *c, const node_t *m, const node_t *uses, const tmpl_t *t,
                            const Drover__StepSpec *st)
{
    int rc = 0;
    const node_t *arts = map_get(map_get(m, "inputs"), "artifacts");
    for (size_t i = 0; arts && arts->type == N_MAP && i < map_len(arts); i++) {
        const node_t *k = map_key(arts, i);
        if (!has_art(t, k->str))
            rc = fail(c, k, "template '%s' (declared at %s) has no input artifact '%s'%s",
                      show(c, t->name), declared_at(c, t, &(at_t){0}), show(c, k->str),
                      art_hint(c, t, k->str));
    }
    for (size_t j = 0; j < t->narts; j++) {
        bool given = false;
        for (size_t i = 0; i < st->n_inputs && !given; i++)
            given = !strcmp(st->inputs[i]->local, t->arts[j]);
        for (size_t i = 0; arts && arts->type == N_MAP && i < map_len(arts) && !given; i++)
            given = !strcmp(map_key(arts, i)->str, t->arts[j]); /* given, in error */
        if (!given)
            rc = fail(c, uses,
                      "step '%s' does not give input artifact '%s' of template '%s' (declared "
                      "at %s): add inputs: {artifacts: {%s: STEP.ARTIFACT}}",
                      show(c, st->name), t->arts[j], show(c, t->name),
                      declared_at(c, t, &(at_t){0}), t->arts[j]); /* valid names */
    }
    return rc;
}

/* The values of t's params for a use: with (maybe NULL) read in the
 * current scope, defaults for the rest; *values parallel to t->params
 * (caller frees: strv of t->nparams). The with value nodes go to a. */
static int with_values(ctx_t *c, const node_t *with, const node_t *uses, const tmpl_t *t,
                       const char *step, step_aux_t *a, char ***values)
{
    int rc = 0;
    char **vals = xcalloc(t->nparams ? t->nparams : 1, sizeof *vals);
    *values = vals;
    if (with && !is_null(with) && with->type != N_MAP) {
        rc = fail(c, with, "'with' must be a map of input param: value");
        with = NULL;
    }
    if (with && is_null(with))
        with = NULL;
    if (with) {
        a->with_src = xcalloc(map_len(with) ? map_len(with) : 1, sizeof *a->with_src);
        for (size_t i = 0; i < map_len(with); i++) {
            const node_t *k = map_key(with, i), *v = map_val(with, i);
            long p = param_index(t, k->str, k->len);
            if (p < 0) {
                rc = fail(c, k, "template '%s' (declared at %s) has no input param '%s'%s",
                          show(c, t->name), declared_at(c, t, &(at_t){0}), show(c, k->str),
                          param_hint(c, t, k->str, k->len));
                continue;
            }
            if (v->type != N_SCALAR || is_null(v)) {
                rc = fail(c, v,
                          "'with.%s' must be a string (a number or true/false is taken "
                          "as its text)",
                          show(c, k->str));
                vals[p] = xstrdup("");
                continue;
            }
            char *text = NULL;
            size_t kept = 0;
            if (expand_mode(c, v, EXP_ALL, &text, &kept) < 0) {
                vals[p] = xstrdup("");
                rc = -EINVAL;
                continue;
            }
            if (v->len > c->lim.max_param_bytes || strlen(text) > c->lim.max_param_bytes) {
                free(text);
                vals[p] = xstrdup("");
                rc = fail_limit(c, v, "'with.%s' is longer than %zu bytes", show(c, k->str),
                                c->lim.max_param_bytes);
                continue;
            }
            char want[64];
            if (!kept && spec_input_check(t->params[p]->type, text, want, sizeof want) < 0)
                rc = fail(c, v,
                          "'with.%s': '%s' is not %s (template '%s', declared at %s, "
                          "gives it type %s)",
                          show(c, k->str), show(c, text), want, show(c, t->name),
                          declared_at(c, t, &(at_t){0}), t->params[p]->type);
            vals[p] = text;
            a->with_src[a->n_with++] = v;
        }
    }
    for (size_t p = 0; p < t->nparams; p++) {
        if (vals[p])
            continue;
        if (t->params[p]->required) {
            char *pn = xstrdup(show(c, t->params[p]->name));
            rc = fail(c, with ? with : uses,
                      "step '%s' does not give input param '%s', required by template '%s' "
                      "(declared at %s): add with: {%s: VALUE}",
                      show(c, step), pn, show(c, t->name), declared_at(c, t, &(at_t){0}), pn);
            free(pn);
            vals[p] = xstrdup("");
        } else {
            vals[p] = xstrdup(t->params[p]->default_ ? t->params[p]->default_ : "");
        }
    }
    return rc;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* A step of name only (its template is unusable): made as a group is,
 * marked failed so that nothing refers to it in error. */
static int use_failed(ctx_t *c, const node_t *m, const settings_t *d, Drover__StepSpec **all,
                      size_t idx, step_aux_t *aux)
{
    node_t *f = filter_map(m, keep_group, NULL);
    aux[idx].group = true;
    parse_step(c, f, d, all, idx, aux);
    free_shallow(f);
    aux[idx].failed = true;
    return -EINVAL;
}

static int use_dag(ctx_t *c, const node_t *m, const settings_t *d, Drover__StepSpec **all,
                   size_t idx, step_aux_t *aux, size_t ti)
{
    struct reuse *r = R(c);
    const node_t *uses = map_get(m, "uses"), *with = map_get(m, "with");
    const node_t *nm = map_get(m, "name");
    const char *sname = nm && nm->type == N_SCALAR ? nm->str : "?";
    int rc = 0;
    for (size_t i = 0; i < map_len(m); i++) {
        const node_t *k = map_key(m, i);
        if (!in_list(group_keys, k->str))
            rc = fail(c, k,
                      "step '%s' uses DAG template '%s': '%s' cannot be set on it (a group "
                      "takes needs, depends, trigger, when, for_each, parallelism, "
                      "continue_on, with and inputs; its steps take the rest)",
                      show(c, sname), show(c, r->t[ti].name), show(c, k->str));
    }
    node_t *f = filter_map(m, keep_group, NULL);
    aux[idx].group = true;
    if (parse_step(c, f, d, all, idx, aux) < 0)
        rc = -EINVAL;
    free_shallow(f);
    Drover__StepSpec *st = all[idx];
    step_aux_t *a = &aux[idx];
    tmpl_t *t = &r->t[ti];
    char **vals = NULL;
    if (with_values(c, with, uses, t, st->name, a, &vals) < 0)
        rc = -EINVAL;
    if (check_input_arts(c, m, uses, t, st) < 0)
        rc = -EINVAL;
    st->template_ = xstrdup(t->name);
    st->uses_body = body_of(c, ti);
    st->n_with = t->nparams;
    st->with = t->nparams ? xcalloc(t->nparams, sizeof *st->with) : NULL;
    for (size_t p = 0; p < t->nparams; p++) {
        st->with[p] = xmalloc(sizeof *st->with[p]);
        drover__key_value__init(st->with[p]);
        st->with[p]->key = xstrdup(t->params[p]->name);
        st->with[p]->value = vals[p];
        vals[p] = NULL;
        if (charge(c, m, strlen(st->with[p]->value) + 1) < 0)
            rc = -EINVAL;
    }
    strv_free(vals, t->nparams);
    /* its outputs are the template's declared ones */
    st->out_params = strv_dup(t->out_params, t->n_out_params);
    st->n_out_params = t->n_out_params;
    st->out_artifacts = strv_dup(t->out_arts, t->n_out_arts);
    st->n_out_artifacts = t->n_out_arts;
    a->params_sorted = sorted_copy(st->out_params, st->n_out_params);
    a->arts_sorted = sorted_copy(st->out_artifacts, st->n_out_artifacts);
    return rc;
}

/* check_only: the unused-template check (reuse_finish): no with:, every
 * param its default or "", no input artifacts. */
static int use_step(ctx_t *c, const node_t *m, const settings_t *d, Drover__StepSpec **all,
                    size_t idx, step_aux_t *aux, size_t ti, bool check_only)
{
    struct reuse *r = R(c);
    tmpl_t *t = &r->t[ti];
    const node_t *uses = map_get(m, "uses"), *with = map_get(m, "with");
    const node_t *nm = map_get(m, "name");
    const char *sname = nm && nm->type == N_SCALAR ? nm->str : "?";
    settings_t ts = {0}, merged = {0};
    char **vals = NULL;
    int rc = 0;

    if (!t->own) {
        size_t cap = 0;
        collect(t->def, &t->own, &t->nown, &cap);
        qsort(t->own, t->nown, sizeof *t->own, cmp_ptr);
    }
    /* each use compiles the template again: bound the sum, as the YAML's
     * own nodes are bounded (a big template used by every step) */
    r->compiled += t->nown;
    if (r->compiled > MAX_COMPILED) {
        fail_limit(c, uses,
                   "step templates compiled into their steps come to more than %u YAML nodes in "
                   "all (template '%s' is used too often for its size)",
                   MAX_COMPILED, show(c, t->name));
        return use_failed(c, m, d, all, idx, aux);
    }
    step_aux_t *a = &aux[idx];
    if (check_only) {
        vals = xcalloc(t->nparams ? t->nparams : 1, sizeof *vals);
        for (size_t p = 0; p < t->nparams; p++) /* required: kept as written */
            vals[p] = t->params[p]->required ? NULL : xstrdup(t->params[p]->default_);
    } else if (with_values(c, with, uses, t, sname, a, &vals) < 0) {
        rc = -EINVAL;
    }
    scope_t sc = {.t = t, .subst = true, .values = vals, .up = c->scope};
    const scope_t *saved = c->scope;
    c->scope = &sc;
    /* the template's settings over defaults, the step's own over those */
    for (size_t i = 0; i < map_len(t->def); i++) {
        const node_t *k = map_key(t->def, i);
        if (is_setting_key(k->str) && parse_setting(c, k, map_val(t->def, i), &ts) < 0)
            rc = -EINVAL;
    }
    settings_over(&merged, &ts, d);
    /* the step: its own keys, then the template's others it lacks */
    node_t *f = filter_map(m, keep_step, NULL);
    f->kids = xrealloc(f->kids, (f->nkids + t->def->nkids + 1) * sizeof *f->kids);
    for (size_t i = 0; i < map_len(t->def); i++) {
        const node_t *k = map_key(t->def, i);
        if (is_setting_key(k->str) || in_list(using_keys, k->str) || !strcmp(k->str, "inputs") ||
            !strcmp(k->str, "uses") || !strcmp(k->str, "with") || map_get(m, k->str))
            continue;
        f->kids[f->nkids++] = map_key(t->def, i);
        f->kids[f->nkids++] = map_val(t->def, i);
    }
    if (parse_step(c, f, &merged, all, idx, aux) < 0)
        rc = -EINVAL;
    c->scope = saved;
    free_shallow(f);
    Drover__StepSpec *st = all[idx];
    if (!check_only && check_input_arts(c, m, uses, t, st) < 0)
        rc = -EINVAL;
    st->template_ = xstrdup(t->name); /* parse_step leaves it "" (not owned) */
    settings_free(&ts);
    settings_free(&merged);
    strv_free(vals, t->nparams);
    return rc;
}

int parse_uses(ctx_t *c, const node_t *m, const settings_t *d, Drover__StepSpec **all, size_t idx,
               step_aux_t *aux)
{
    const node_t *uses = map_get(m, "uses");
    if (uses->type != N_SCALAR || is_null(uses)) {
        fail(c, uses, "'uses' must be a template's name");
        return use_failed(c, m, d, all, idx, aux);
    }
    if (!R(c)) {
        fail(c, uses,
             "step uses template '%s', but the spec has no templates:", show(c, uses->str));
        return use_failed(c, m, d, all, idx, aux);
    }
    long ti = find_tmpl(c, R(c)->cur_file, uses->str);
    if (ti < 0) {
        fail(c, uses, "unknown template '%s'%s", show(c, uses->str),
             tmpl_hint(c, R(c)->cur_file, uses->str));
        return use_failed(c, m, d, all, idx, aux);
    }
    tmpl_t *t = &R(c)->t[ti];
    if (tmpl_prepare(c, t) < 0)
        return use_failed(c, m, d, all, idx, aux);
    return t->is_dag ? use_dag(c, m, d, all, idx, aux, (size_t)ti)
                     : use_step(c, m, d, all, idx, aux, (size_t)ti, false);
}

/* ---- bodies ---- */

/* Check a DAG template's declared outputs over its compiled body
 * (loc[0..n), names table current) into b. */
static int body_outputs(ctx_t *c, const tmpl_t *t, Drover__StepSpec **loc, step_aux_t *aux,
                        size_t n, Drover__TemplateBody *b)
{
    const node_t *outs = map_get(t->def, "outputs");
    const node_t *ps = map_get(outs, "params"), *as = map_get(outs, "artifacts");
    int rc = 0;
    (void)n;
    if (ps && ps->type == N_MAP) {
        b->out_params = xcalloc(map_len(ps) ? map_len(ps) : 1, sizeof *b->out_params);
        for (size_t i = 0; i < map_len(ps); i++) {
            const node_t *k = map_key(ps, i), *v = map_val(ps, i);
            char *text = NULL;
            if (v->type != N_SCALAR || is_null(v) || expand(c, v, &text) < 0) {
                rc = -EINVAL;
                continue;
            }
            expr_tmpl_t it;
            expr_piece_t p;
            int more;
            expr_tmpl_init(&it, v->str);
            while ((more = expr_tmpl_next(&it, &p)) > 0) {
                if (!p.is_ref || p.ref.kind == EXPR_REF_PARAM || p.ref.kind == EXPR_REF_INPUTS)
                    continue;
                char *label = xstrndup(v->str + p.off, p.len);
                size_t s;
                if (p.ref.kind != EXPR_REF_STEP && p.ref.kind != EXPR_REF_STEP_RESULT) {
                    rc = fail(c, v,
                              "'%s' cannot be used in a template's outputs (allowed: "
                              "{{steps.STEP.outputs.params.NAME}}, "
                              "{{steps.STEP.outputs.result}}, {{inputs.params.NAME}}, "
                              "{{params.NAME}})",
                              show(c, label));
                } else if (!names_find(c, p.ref.a, p.ref.alen, &s)) {
                    char *a = xstrndup(p.ref.a, p.ref.alen);
                    if (!c->names_partial)
                        rc = fail(c, v, "output '%s': %s: no step named '%s' in the template%s",
                                  show(c, k->str), show(c, label), show(c, a),
                                  step_hint(c, p.ref.a, p.ref.alen));
                    free(a);
                } else if (aux[s].is_finally) {
                    rc = fail(c, v, "output '%s': %s: '%s' is a finally step", show(c, k->str),
                              show(c, label), show(c, loc[s]->name));
                } else if (aux[s].failed) {
                    ; /* its outputs may be what was in error */
                } else if (p.ref.kind == EXPR_REF_STEP_RESULT) {
                    if (loc[s]->fan_out || loc[s]->uses_body)
                        rc = fail(c, v,
                                  "output '%s': %s: step '%s' is a %s, whose standard output is "
                                  "not collected (declare an output param)",
                                  show(c, k->str), show(c, label), show(c, loc[s]->name),
                                  loc[s]->uses_body ? "group" : "for_each step");
                    else
                        loc[s]->capture_result = true;
                } else if (!sorted_has(aux[s].params_sorted, loc[s]->n_out_params, p.ref.b,
                                       p.ref.blen)) {
                    char *bb = xstrndup(p.ref.b, p.ref.blen);
                    rc = fail(c, v, "output '%s': %s: step '%s' declares no output param '%s'",
                              show(c, k->str), show(c, label), show(c, loc[s]->name), show(c, bb));
                    free(bb);
                }
                free(label);
            }
            Drover__KeyValue *kv = xmalloc(sizeof *kv);
            drover__key_value__init(kv);
            kv->key = xstrdup(k->str);
            kv->value = text;
            b->out_params[b->n_out_params++] = kv;
        }
    }
    if (as && as->type == N_MAP) {
        b->out_artifacts = xcalloc(map_len(as) ? map_len(as) : 1, sizeof *b->out_artifacts);
        for (size_t i = 0; i < map_len(as); i++) {
            const node_t *k = map_key(as, i), *v = map_val(as, i);
            if (v->type != N_SCALAR || is_null(v))
                continue;
            Drover__InputSpec *in = xmalloc(sizeof *in);
            drover__input_spec__init(in);
            in->local = xstrdup(k->str);
            b->out_artifacts[b->n_out_artifacts++] = in;
            int g = reuse_group_input(c, v, in);
            if (g) {
                if (g < 0)
                    rc = -EINVAL;
                continue;
            }
            /* STEP.ARTIFACT: the split whose step declares the artifact */
            size_t s, found = SIZE_MAX, named = SIZE_MAX;
            const char *art = NULL;
            for (size_t q = 1; q + 1 < v->len; q++) {
                if (v->str[q] != '.' || !names_find(c, v->str, q, &s))
                    continue;
                if (named == SIZE_MAX)
                    named = s;
                if (found == SIZE_MAX && sorted_has(aux[s].arts_sorted, loc[s]->n_out_artifacts,
                                                    v->str + q + 1, v->len - q - 1)) {
                    found = s;
                    art = v->str + q + 1;
                }
            }
            if (found == SIZE_MAX) {
                if (named != SIZE_MAX && aux[named].failed)
                    continue;
                if (named == SIZE_MAX && c->names_partial)
                    continue;
                rc = fail(c, v,
                          "output artifact '%s': '%s' is not STEP.ARTIFACT of a step of "
                          "template '%s' that declares it, nor inputs.artifacts.NAME",
                          show(c, k->str), show(c, v->str), show(c, t->name));
                continue;
            }
            if (aux[found].is_finally) {
                rc = fail(c, v, "output artifact '%s': '%s' is a finally step", show(c, k->str),
                          show(c, loc[found]->name));
                continue;
            }
            in->step = (uint32_t)found; /* shifted with the body */
            in->artifact = xstrdup(art);
        }
    }
    return rc;
}

/* Compile body k (template queue[k]) and append it to s. */
static int compile_body(ctx_t *c, spec_t *s, const settings_t *d, size_t k)
{
    struct reuse *r = R(c);
    tmpl_t *t = &r->t[r->queue[k]];
    const node_t *steps = map_get(t->def, "steps"), *fin = map_get(t->def, "finally");
    int rc = 0;
    t->checked = true;
    /* bodies[k] exists whatever happens below (an empty one on an error) */
    Drover__TemplateBody *b = xmalloc(sizeof *b);
    drover__template_body__init(b);
    b->name = xstrdup(t->name);
    b->first_step = (uint32_t)s->step_count;
    s->bodies = xrealloc(s->bodies, (k + 1) * sizeof *s->bodies);
    s->bodies[k] = b;
    s->body_count = k + 1;
    if (steps->type != N_SEQ || steps->nkids == 0)
        return fail(c, steps, "DAG template '%s': 'steps' must be a non-empty list of steps",
                    show(c, t->name));
    if (fin && is_null(fin))
        fin = NULL;
    if (fin && fin->type != N_SEQ) {
        fail(c, fin, "DAG template '%s': 'finally' must be a list of steps", show(c, t->name));
        fin = NULL;
    }
    size_t nmain = steps->nkids, n = nmain + (fin ? fin->nkids : 0);
    if (s->step_count + n > c->lim.max_steps)
        return fail_limit(c, steps,
                          "too many steps with the bodies of the templates used (%zu; at most "
                          "%zu)",
                          s->step_count + n, c->lim.max_steps);
    Drover__StepSpec **loc = xcalloc(n, sizeof *loc);
    step_aux_t *aux = xcalloc(n, sizeof *aux);
    spec_pos_t *pos = xcalloc(n, sizeof *pos);
    bool partial = c->names_partial;
    scope_t sc = {.t = t};
    size_t made = 0;
    free(c->names);
    names_init(c, loc, n);
    c->names_partial = false;
    c->scope = &sc;
    r->cur_file = t->file;
    for (size_t i = 0; i < n && !c->fatal; i++) {
        const node_t *m = i < nmain ? steps->kids[i] : fin->kids[i - nmain];
        aux[i].is_finally = i >= nmain;
        pos[i] = (spec_pos_t){m->line, m->col};
        made = i + 1;
        if (parse_step(c, m, d, loc, i, aux) < 0)
            aux[i].failed = true;
    }
    if (!c->fatal && made == n) {
        if (resolve_needs(c, loc, aux, n) == 0 && !c->fatal)
            check_flow(c, loc, aux, n);
        if (!c->fatal && body_outputs(c, t, loc, aux, n, b) < 0)
            rc = -EINVAL;
    }
    /* append, indexes shifted into s->steps */
    size_t off = s->step_count;
    s->steps = xrealloc(s->steps, (off + made) * sizeof *s->steps);
    s->pos = xrealloc(s->pos, (off + made) * sizeof *s->pos);
    for (size_t i = 0; i < made; i++) {
        Drover__StepSpec *st = loc[i];
        for (size_t j = 0; st && j < st->n_needs; j++)
            st->needs[j] += (uint32_t)off;
        for (size_t j = 0; st && j < st->n_inputs; j++) {
            if (!st->inputs[j]->from_group_input)
                st->inputs[j]->step += (uint32_t)off;
        }
        if (st)
            st->in_body = (uint32_t)k + 1;
        s->steps[off + i] = st;
        s->pos[off + i] = pos[i];
    }
    s->step_count = off + made;
    for (size_t i = 0; i < b->n_out_artifacts; i++) {
        if (!b->out_artifacts[i]->from_group_input)
            b->out_artifacts[i]->step += (uint32_t)off;
    }
    b->n_steps = (uint32_t)made;
    b->n_in_params = t->nparams;
    b->in_params = t->nparams ? xcalloc(t->nparams, sizeof *b->in_params) : NULL;
    for (size_t p = 0; p < t->nparams; p++) {
        Drover__TemplateInput *in = xmalloc(sizeof *in);
        drover__template_input__init(in);
        in->name = xstrdup(t->params[p]->name);
        if (t->params[p]->default_ != (char *)protobuf_c_empty_string)
            in->default_ = xstrdup(t->params[p]->default_);
        if (t->params[p]->type != (char *)protobuf_c_empty_string)
            in->type = xstrdup(t->params[p]->type);
        in->required = t->params[p]->required;
        b->in_params[p] = in;
    }
    b->in_artifacts = strv_dup(t->arts, t->narts);
    b->n_in_artifacts = t->narts;
    for (size_t i = 0; i < made; i++)
        aux_free(&aux[i]);
    free(aux);
    free(loc);
    free(pos);
    c->scope = NULL;
    r->cur_file = 0;
    c->names_partial = partial;
    return rc;
}

/* Compile step template ti alone (no using step: each param its
 * default), for its errors; the step made is dropped. */
static void check_step_tmpl(ctx_t *c, const settings_t *d, size_t ti)
{
    struct reuse *r = R(c);
    tmpl_t *t = &r->t[ti];
    node_t key = {.type = N_SCALAR,
                  .line = t->key->line,
                  .col = t->key->col,
                  .file = t->key->file,
                  .str = (char *)"name",
                  .len = 4};
    node_t val = key;
    val.str = t->key->str;
    val.len = t->key->len;
    node_t *kids[2] = {&key, &val};
    node_t m = key;
    m.type = N_MAP;
    m.kids = kids;
    m.nkids = m.cap = 2;
    Drover__StepSpec *one[1] = {NULL};
    step_aux_t aux[1];
    memset(aux, 0, sizeof aux);
    free(c->names);
    names_init(c, one, 1);
    r->cur_file = t->file;
    use_step(c, &m, d, one, 0, aux, ti, true);
    r->cur_file = 0;
    aux_free(&aux[0]);
    if (one[0])
        drover__step_spec__free_unpacked(one[0], NULL);
}

int reuse_finish(ctx_t *c, spec_t *s, const settings_t *d)
{
    struct reuse *r = R(c);
    size_t k = 0;
    for (; k < r->nqueue && !c->fatal; k++)
        compile_body(c, s, d, k);
    /* the templates of the spec's own file that no step uses: compiled
     * for their errors, then dropped (with what they queued) */
    size_t keep_q = r->nqueue, keep_steps = s->step_count, keep_b = s->body_count;
    for (size_t ti = 0; ti < r->nt && !c->fatal; ti++) {
        tmpl_t *t = &r->t[ti];
        if (t->file != 0 || t->checked || t->body)
            continue;
        t->checked = true;
        if (tmpl_prepare(c, t) < 0)
            continue;
        if (!t->is_dag) {
            check_step_tmpl(c, d, ti);
            continue;
        }
        body_of(c, ti);
        for (; k < r->nqueue && !c->fatal; k++)
            compile_body(c, s, d, k);
    }
    for (size_t q = keep_q; q < r->nqueue; q++)
        r->t[r->queue[q]].body = 0;
    r->nqueue = keep_q;
    for (size_t i = keep_steps; i < s->step_count; i++) {
        if (s->steps[i])
            drover__step_spec__free_unpacked(s->steps[i], NULL);
    }
    s->step_count = keep_steps;
    for (size_t i = keep_b; i < s->body_count; i++)
        drover__template_body__free_unpacked(s->bodies[i], NULL);
    s->body_count = keep_b;
    return c->failed ? -EINVAL : 0;
}

int reuse_begin(ctx_t *c, const node_t *templates, const node_t *imports, spec_t *s)
{
    (void)s;
    struct reuse *r = xcalloc(1, sizeof *r);
    c->reuse = r;
    r->f = xcalloc(1, sizeof *r->f);
    r->nf = 1;
    r->f[0].path = c->file;
    r->f[0].dir = import_dir(c->file);
    r->f[0].label = xstrdup("");
    r->f[0].state = 1;
    int rc = 0;
    if (imports && import_files(c, 0, imports) < 0)
        rc = -EINVAL;
    r->f[0].state = 2;
    if (!c->fatal && reuse_templates(c, 0, templates) < 0)
        rc = -EINVAL;
    return rc;
}

void reuse_free(ctx_t *c)
{
    struct reuse *r = c->reuse;
    if (!r)
        return;
    for (size_t i = 0; i < r->nt; i++) {
        tmpl_t *t = &r->t[i];
        free(t->name);
        for (size_t p = 0; p < t->nparams; p++)
            drover__template_input__free_unpacked(t->params[p], NULL);
        free(t->params);
        free(t->param_at);
        strv_free(t->arts, t->narts);
        strv_free(t->out_params, t->n_out_params);
        strv_free(t->out_arts, t->n_out_arts);
        free(t->own);
    }
    free(r->t);
    for (size_t i = 0; i < r->nf; i++) {
        rfile_t *f = &r->f[i];
        free(f->dir);
        node_free(f->root);
        free(f->label);
        for (size_t j = 0; j < f->nimp; j++)
            free(f->imp[j].prefix);
        free(f->imp);
        free(f->by_name);
    }
    free(r->f);
    free(r->queue);
    free(r);
    c->reuse = NULL;
}
