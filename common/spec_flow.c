/* spec_flow — the graph of a spec: needs resolved to indexes (no cycles,
 * main and finally steps apart), then the data-flow check: every input and
 * run-time reference of every step names a step it may read from (an
 * ancestor through needs; for a finally step any main step) and an output
 * that step declares. Ancestor sets are bit sets filled once in dependency
 * order, only when some step needs them.
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "strbuf.h"
#include "util.h"

/* Depth-first search from u; on a back edge report the cycle path. */
static int dfs(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t u, unsigned char *color,
               size_t *path, size_t depth)
{
    color[u] = 1;
    path[depth] = u;
    for (size_t j = 0; j < all[u]->n_needs; j++) {
        size_t w = all[u]->needs[j];
        if (color[w] == 2)
            continue;
        if (color[w] == 1) {
            size_t from = depth;
            while (path[from] != w)
                from--;
            strbuf_t msg = {0};
            for (size_t i = from; i <= depth + 1; i++)
                sb_printf(&msg, "%s%s", i > from ? " -> " : "",
                          all[i <= depth ? path[i] : w]->name);
            const node_t *at = aux[u].needs_node && j < aux[u].needs_node->nkids
                                   ? aux[u].needs_node->kids[j]
                                   : aux[u].depends_node; /* a need its depends added */
            int rc = fail(c, at, "cycle: %s", msg.buf);
            sb_free(&msg);
            return rc;
        }
        if (dfs(c, all, aux, w, color, path, depth + 1) < 0)
            return -EINVAL;
    }
    color[u] = 2;
    return 0;
}

/* Resolve every needs list to indexes and refuse cycles. Main steps may
 * not need finally steps (those run after them), nor finally steps main
 * steps (pointless: they run after every main step anyway). An entry in
 * error is reported and left out, and its step marked needs_failed; the
 * return is -EINVAL only for a cycle (then there is no order to check the
 * data flow in), 0 otherwise, errors or not. */
int resolve_needs(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t n)
{
    size_t *seen = xcalloc(n, sizeof *seen); /* i + 1 once step i listed it */
    unsigned char *color = xcalloc(n, 1);
    size_t *path = xcalloc(n + 1, sizeof *path);
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        const node_t *nl = aux[i].needs_node;
        if (!nl)
            continue;
        all[i]->needs = xcalloc(nl->nkids, sizeof *all[i]->needs);
        for (size_t j = 0; j < nl->nkids; j++) {
            const node_t *x = nl->kids[j];
            size_t w;
            if (!names_find(c, x->str, x->len, &w)) {
                /* when a step has no usable name, this may be the one meant */
                if (!c->names_partial)
                    fail(c, x, "step '%s' needs unknown step '%s'%s", show(c, all[i]->name),
                         show(c, x->str), step_hint(c, x->str, x->len));
                aux[i].needs_failed = true;
                continue;
            }
            if (aux[w].is_finally && !aux[i].is_finally) {
                fail(c, x, "step '%s' cannot need '%s', a finally step", show(c, all[i]->name),
                     show(c, x->str));
                aux[i].needs_failed = true;
                continue;
            }
            if (aux[i].is_finally && !aux[w].is_finally) {
                fail(c, x,
                     "finally step '%s' cannot need main step '%s': exit handlers run after "
                     "every main step anyway",
                     show(c, all[i]->name), show(c, x->str));
                aux[i].needs_failed = true;
                continue;
            }
            if (seen[w] == i + 1) {
                fail(c, x, "step '%s' lists '%s' twice in needs", show(c, all[i]->name),
                     show(c, x->str));
                continue; /* the first is kept: the ancestors are right */
            }
            seen[w] = i + 1;
            all[i]->needs[all[i]->n_needs++] = (uint32_t)w;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (depends_needs(c, all, aux, i) < 0) { /* recorded; the rest is still checked */
            aux[i].needs_failed = true;
            rc = -EINVAL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int cyc;
        if (color[i] == 0 && (cyc = dfs(c, all, aux, i, color, path, 0)) < 0) {
            rc = cyc;
            break;
        }
    }
    free(seen);
    free(color);
    free(path);
    return rc;
}

/* ---- data flow: inputs and run-time references ---- */

typedef struct {
    ctx_t *c;
    Drover__StepSpec **all;
    step_aux_t *aux;
    size_t n;
    uint64_t *anc; /* row i, bit j: step i needs step j, directly or not */
    unsigned char *anc_done;
    size_t words; /* per row */
    size_t cur;   /* the step whose `when` is being visited */
} flow_t;

/* Fill row i from its needs' rows (the graph has no cycles by now). */
static void anc_fill(flow_t *f, size_t i)
{
    uint64_t *row = f->anc + i * f->words;
    f->anc_done[i] = 1;
    for (size_t j = 0; j < f->all[i]->n_needs; j++) {
        size_t w = f->all[i]->needs[j];
        if (!f->anc_done[w])
            anc_fill(f, w);
        const uint64_t *wrow = f->anc + w * f->words;
        for (size_t k = 0; k < f->words; k++)
            row[k] |= wrow[k];
        row[w / 64] |= 1ull << (w % 64);
    }
}

static bool is_ancestor(flow_t *f, size_t i, size_t s)
{
    if (!f->anc) {
        f->words = (f->n + 63) / 64;
        f->anc = xcalloc(f->n * f->words, sizeof *f->anc);
        f->anc_done = xcalloc(f->n, 1);
    }
    if (!f->anc_done[i])
        anc_fill(f, i);
    return (f->anc[i * f->words + s / 64] >> (s % 64)) & 1;
}

/* Whether step i may use the outputs of step s; if not, 0 is returned
 * with why = "WHAT: reason". */
static bool may_use(flow_t *f, size_t i, size_t s, const char *what, char *why, size_t whylen)
{
    ctx_t *c = f->c;
    const char *me = f->all[i]->name, *it = f->all[s]->name;
    if (s == i) {
        snprintf(why, whylen, "%s: step '%s' cannot use its own outputs", what, show(c, me));
        return false;
    }
    if (f->aux[i].is_finally && !f->aux[s].is_finally)
        return true; /* exit handlers run after every main step */
    if (!f->aux[i].is_finally && f->aux[s].is_finally) {
        snprintf(why, whylen, "%s: '%s' is a finally step, which runs after every main step", what,
                 show(c, it));
        return false;
    }
    if (!is_ancestor(f, i, s)) {
        snprintf(why, whylen, "%s: step '%s' does not need '%s' (add it to needs)", what,
                 show(c, me), show(c, it));
        return false;
    }
    return true;
}

/* An outcome reference r ({{steps.S.status}}, .exit_code, .outputs.result)
 * used by step i, labelled lb: S must exist and be upstream of i (needs,
 * or any main step for an exit handler). .outputs.result marks S to
 * capture its standard output (StepSpec.capture_result); a for_each step
 * has no single output, so it is refused there. 0, or -EINVAL with why. */
static int check_outcome_ref(flow_t *f, size_t i, const expr_ref_t *r, const char *lb, char *why,
                             size_t whylen)
{
    size_t s;
    char *a = xstrndup(r->a, r->alen);
    int rc = -EINVAL;
    if (!names_find(f->c, r->a, r->alen, &s))
        snprintf(why, whylen, "%s: no step named '%s'", lb, show(f->c, a));
    else if (!may_use(f, i, s, lb, why, whylen))
        ;
    else if (r->kind == EXPR_REF_STEP_RESULT && f->all[s]->uses_body)
        snprintf(why, whylen,
                 "%s: step '%s' is a group (it uses DAG template '%s'), which has no standard "
                 "output of its own (read its declared outputs)",
                 lb, show(f->c, a), show(f->c, f->all[s]->template_));
    else if (r->kind == EXPR_REF_STEP_RESULT && f->all[s]->fan_out)
        snprintf(why, whylen,
                 "%s: step '%s' is a for_each step, whose items' standard outputs are not "
                 "collected (declare an output param instead)",
                 lb, show(f->c, a));
    else
        rc = 0;
    if (rc == 0 && r->kind == EXPR_REF_STEP_RESULT)
        f->all[s]->capture_result = true;
    free(a);
    return rc;
}

/* Check the reference in[0..n) (trimmed text inside {{ }}) used by step i.
 * in_when: it comes from a params-substituted `when`, so params and bad
 * forms can only come from a param's value. 0, or -EINVAL with why. */
static int check_ref(flow_t *f, size_t i, const char *in, size_t n, bool in_when, char *why,
                     size_t whylen)
{
    ctx_t *c = f->c;
    expr_ref_t r = expr_ref_parse(in, n);
    char *label = xasprintf("{{%.*s}}", (int)n, in), *a = NULL, *b = NULL;
    const char *lb = show(c, label);
    size_t s;
    int rc = -EINVAL;

    switch (r.kind) {
    case EXPR_REF_PARAM:
        snprintf(why, whylen, "%s comes from a param's value; param values are not expanded", lb);
        break;
    case EXPR_REF_BAD:
        snprintf(why, whylen, "bad template '%s' (%s)", lb, r.why);
        break;
    case EXPR_REF_INPUTS:
        rc = 0; /* checked where it was read (reuse_input_ref) */
        break;
    case EXPR_REF_STEP:
        a = xstrndup(r.a, r.alen);
        b = xstrndup(r.b, r.blen);
        if (!names_find(c, r.a, r.alen, &s)) {
            if (c->names_partial)
                rc = 0; /* it may be the step whose name was in error */
            else
                snprintf(why, whylen, "%s: no step named '%s'%s", lb, show(c, a),
                         step_hint(c, r.a, r.alen));
        } else if (!may_use(f, i, s, lb, why, whylen))
            ;
        else if (f->aux[s].failed)
            rc = 0; /* its outputs may be what was in error */
        else if (!sorted_has(f->aux[s].params_sorted, f->all[s]->n_out_params, r.b, r.blen))
            snprintf(why, whylen,
                     "%s: step '%s' declares no output param '%s' (add it to its "
                     "outputs.params)",
                     lb, show(c, a), show(c, b));
        else
            rc = 0;
        break;
    case EXPR_REF_ITEM:
        if (!f->all[i]->fan_out)
            snprintf(why, whylen, "%s used outside a for_each step", lb);
        else
            rc = 0;
        break;
    case EXPR_REF_STATUS:
        if (!f->aux[i].is_finally)
            snprintf(why, whylen, "%s is only known in finally steps (exit handlers)", lb);
        else
            rc = 0;
        break;
    case EXPR_REF_RUN:
        rc = 0;
        break;
    case EXPR_REF_RETRY:
        snprintf(why, whylen,
                 "%s is only known in retries.when (the failed attempt's exit code, reason, "
                 "signal, attempt)",
                 lb);
        break;
    case EXPR_REF_STEP_STATUS:
    case EXPR_REF_STEP_EXIT:
    case EXPR_REF_STEP_RESULT:
        rc = check_outcome_ref(f, i, &r, lb, why, whylen);
        break;
    case EXPR_REF_FINAL:
        if (!f->aux[i].is_finally)
            snprintf(why, whylen, "%s is only known in finally steps (exit handlers)", lb);
        else
            rc = 0;
        break;
    }
    free(label);
    free(a);
    free(b);
    return rc;
}

/* Check the references of templated setting k (scalar v) of step i: only
 * the item and upstream output params may appear there; a message names
 * the key and what it allows. */
static int check_setting(flow_t *f, size_t i, spec_tmpl_key_t k, const node_t *v, bool inherited)
{
    static const char allowed[] = "allowed there: {{params.NAME}}, {{item}} and {{item.KEY}} in a "
                                  "for_each step, {{steps.STEP.outputs.params.NAME}} of a step it "
                                  "needs";
    const char *key = spec_tmpl_key_name(k);
    char why[512];
    expr_tmpl_t it;
    expr_piece_t p;
    int more, rc = 0;
    expr_tmpl_init(&it, v->str);
    while (rc == 0 && (more = expr_tmpl_next(&it, &p)) > 0) {
        if (!p.is_ref || p.ref.kind == EXPR_REF_PARAM || p.ref.kind == EXPR_REF_INPUTS)
            continue; /* substituted, or a template's input (checked when read) */
        if (p.ref.kind != EXPR_REF_ITEM && p.ref.kind != EXPR_REF_STEP) {
            char *label = xstrndup(v->str + p.off, p.len);
            rc = fail(f->c, v, "'%s' cannot be used in %s (%s)", show(f->c, label), key, allowed);
            free(label);
        } else if (check_ref(f, i, p.in, p.inlen, false, why, sizeof why) < 0) {
            rc = fail(f->c, v, "%s: %s (%s)%s%s%s", key, why, allowed,
                      inherited ? " (in defaults, inherited by step '" : "",
                      inherited ? show(f->c, f->all[i]->name) : "", inherited ? "')" : "");
        }
    }
    return rc;
}

/* Check the run-time references written in scalar v, used by step i. */
static int check_scalar(flow_t *f, size_t i, const node_t *v, bool inherited)
{
    char why[512];
    expr_tmpl_t it;
    expr_piece_t p;
    int more;
    expr_tmpl_init(&it, v->str);
    while ((more = expr_tmpl_next(&it, &p)) > 0) {
        if (!p.is_ref || p.ref.kind == EXPR_REF_PARAM || p.ref.kind == EXPR_REF_INPUTS)
            continue; /* substituted, or a template's input (checked when read) */
        if (check_ref(f, i, p.in, p.inlen, false, why, sizeof why) < 0) {
            if (inherited)
                return fail(f->c, v, "%s (in defaults, inherited by step '%s')", why,
                            show(f->c, f->all[i]->name));
            return fail(f->c, v, "%s", why);
        }
    }
    if (more < 0) /* expand() refused this already */
        return fail(f->c, v, "unterminated '{{' in template (missing '}}')");
    return 0;
}

static int when_visit(const char *ref, void *arg, char *err, size_t errlen)
{
    flow_t *f = arg;
    return check_ref(f, f->cur, ref, strlen(ref), true, err, errlen);
}

/* Resolve input k of step i: its source "A.B.C" is tried at every '.'
 * whose left part names a step; the split whose step declares the
 * artifact wins (more than one is ambiguous). */
static int resolve_input(flow_t *f, size_t i, size_t k)
{
    ctx_t *c = f->c;
    Drover__InputSpec *in = f->all[i]->inputs[k];
    const node_t *src = f->aux[i].input_src[k];
    const char *t = src->str, *art = NULL, *art_first = NULL;
    size_t best = SIZE_MAX, first = SIZE_MAX, matches = 0, s;
    char what[160], why[512];

    int grp = reuse_group_input(c, src, in); /* inputs.artifacts.NAME */
    if (grp)
        return grp < 0 ? -EINVAL : 0;
    for (size_t p = 1; p + 1 < src->len; p++) {
        if (t[p] != '.' || !names_find(c, t, p, &s))
            continue;
        if (first == SIZE_MAX) {
            first = s;
            art_first = t + p + 1;
        }
        if (sorted_has(f->aux[s].arts_sorted, f->all[s]->n_out_artifacts, t + p + 1,
                       src->len - p - 1)) {
            if (matches++ == 0) {
                best = s;
                art = t + p + 1;
            }
        }
    }
    snprintf(what, sizeof what, "input '%s'", show(c, in->local));
    if (matches > 1)
        return fail(c, src, "%s: '%s' is ambiguous: more than one STEP.ARTIFACT split matches",
                    what, show(c, t));
    if (first == SIZE_MAX && c->names_partial)
        return 0; /* it may be the step whose name was in error */
    if (first == SIZE_MAX) {
        char *nm = xstrndup(t, (size_t)(strchr(t, '.') - t));
        int rc = fail(c, src, "%s: no step named '%s' (write STEP.ARTIFACT)", what, show(c, nm));
        free(nm);
        return rc;
    }
    if (best == SIZE_MAX) {
        best = first;
        art = art_first;
    }
    if (!may_use(f, i, best, what, why, sizeof why))
        return fail(c, src, "%s", why);
    if (matches == 0 && f->aux[best].failed)
        return 0; /* its outputs may be what was in error */
    if (matches == 0)
        return fail(c, src, "%s: step '%s' declares no output artifact '%s'", what,
                    show(c, f->all[best]->name), show(c, art));
    in->step = (uint32_t)best;
    in->artifact = xstrdup(art);
    return 0;
}

/* Whether the ancestors of step i are unknown: its needs, or those of a
 * step it needs (directly or not), had an error. bad[i]: 0 not known
 * yet, 1 no, 2 yes. */
static bool anc_unknown(const Drover__StepSpec *const *all, const step_aux_t *aux, size_t i,
                        unsigned char *bad)
{
    if (!bad[i]) {
        bad[i] = aux[i].needs_failed ? 2 : 1;
        for (size_t j = 0; j < all[i]->n_needs && bad[i] == 1; j++) {
            if (anc_unknown(all, aux, all[i]->needs[j], bad))
                bad[i] = 2;
        }
    }
    return bad[i] == 2;
}

/* Once needs are resolved: every input and run-time reference of every
 * step names a step it may read from, and an output that step declares.
 * Each step's every reference is checked, except in a step that had an
 * error or whose ancestors are unknown (what it may read is not known). */
int check_flow(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t n)
{
    flow_t f = {.c = c, .all = all, .aux = aux, .n = n};
    unsigned char *bad = xcalloc(n ? n : 1, 1);
    char e[512];
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        const step_aux_t *a = &aux[i];
        if (a->failed || anc_unknown((const Drover__StepSpec *const *)all, aux, i, bad))
            continue;
        for (size_t k = 0; k < all[i]->n_inputs; k++)
            rc |= resolve_input(&f, i, k);
        for (size_t k = 0; a->cmd && k < a->cmd->nkids; k++)
            rc |= check_scalar(&f, i, a->cmd->kids[k], false);
        if (a->script)
            rc |= check_scalar(&f, i, a->script, false);
        for (size_t k = 0; k < a->n_with; k++)
            rc |= check_scalar(&f, i, a->with_src[k], false);
        for (size_t k = 0; k < all[i]->n_env; k++)
            rc |= check_scalar(&f, i, a->env_src[k].node, a->env_src[k].inherited);
        if (a->when) {
            f.cur = i;
            if (expr_check(all[i]->when, when_visit, &f, e, sizeof e) < 0)
                rc |= fail(c, a->when, "bad when expression: %s", e);
        }
        if (*all[i]->items_from) {
            expr_tmpl_t it;
            expr_piece_t p;
            expr_tmpl_init(&it, all[i]->items_from); /* one reference, parse_for_each saw */
            if (expr_tmpl_next(&it, &p) > 0 &&
                check_ref(&f, i, p.in, p.inlen, false, e, sizeof e) < 0)
                rc |= fail(c, a->for_each, "for_each %s", e);
        }
        for (int k = 0; k < SPEC_TMPL_N && rc == 0; k++) {
            if (a->tmpl_node[k])
                rc =
                    check_setting(&f, i, (spec_tmpl_key_t)k, a->tmpl_node[k], a->tmpl_inherited[k]);
        }
        if (rc == 0)
            rc = check_tmpl_items(c, all, aux, i);
    }
    free(bad);
    free(f.anc);
    free(f.anc_done);
    return rc < 0 ? -EINVAL : 0;
}
