/* spec_trigger — a step's trigger, depends and continue_on keys
 * (README.md, "Pipeline spec"; the rules' meaning is common/trigger.h's).
 *
 * parse_trigger_key reads the keys in file order (syntax of a depends
 * expression included); depends_needs, called by resolve_needs once every
 * step name is known, adds each step a depends expression names to the
 * step's needs (a depends implies the needs), with the same checks needs
 * get; a depends that would make a cycle is then reported by the cycle
 * check at the depends value.
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trigger.h"
#include "util.h"

bool is_trigger_key(const char *k)
{
    return !strcmp(k, "trigger") || !strcmp(k, "depends") || !strcmp(k, "continue_on");
}

int parse_trigger_key(ctx_t *c, const node_t *k, const node_t *v, Drover__StepSpec *st,
                      step_aux_t *a)
{
    char e[256];
    if (!strcmp(k->str, "continue_on")) {
        if (v->type != N_SCALAR || strcmp(v->str, "failed") != 0)
            return fail(c, v,
                        "continue_on must be 'failed' (the run does not fail because of "
                        "this step; its dependants see .failed)");
        st->continue_on_failed = true;
        return 0;
    }
    if ((!strcmp(k->str, "trigger") && a->depends_node) ||
        (!strcmp(k->str, "depends") && a->trigger_node))
        return fail(c, k, "step '%s' has both 'trigger' and 'depends'; use one", show(c, st->name));
    if (want_str(c, v, k->str) < 0)
        return -EINVAL;
    if (!strcmp(k->str, "trigger")) {
        if (!trigger_rule_parse(v->str, v->len, &st->trigger))
            return fail(c, v, "unknown trigger '%s' in step '%s' (one of: %s)", show(c, v->str),
                        show(c, st->name), trigger_rule_names());
        a->trigger_node = v;
        return 0;
    }
    if (trigger_depends_check(v->str, NULL, NULL, e, sizeof e) < 0)
        return fail(c, v, "bad depends expression: %s", e);
    st->trigger = DROVER__TRIGGER_RULE__TRIGGER_RULE_DEPENDS;
    st->depends = xstrdup(v->str);
    a->depends_node = v;
    return 0;
}

typedef struct {
    ctx_t *c;
    Drover__StepSpec **all;
    step_aux_t *aux;
    size_t i;
    int line, col; /* of the name being visited */
} dn_t;

/* Where the name at 1-based offset col of the depends value starts in the
 * file: exact for a one-line scalar (plain, or quoted without escapes
 * before it), else the value's own position. */
static void name_pos(const node_t *v, int col, int *line, int *pcol)
{
    *line = v->line;
    *pcol = v->col;
    if (!strchr(v->str, '\n') && !strchr(v->str, '\\'))
        *pcol = v->col + col - 1 + (v->plain ? 0 : 1);
}

static int dn_visit(const char *name, size_t len, int col, void *arg, char *err, size_t errlen)
{
    dn_t *d = arg;
    ctx_t *c = d->c;
    Drover__StepSpec *st = d->all[d->i];
    size_t w;
    char *nm = xstrndup(name, len);
    const char *me = show(c, st->name), *it = show(c, nm);
    int rc = -1;
    name_pos(d->aux[d->i].depends_node, col, &d->line, &d->col);
    if (!names_find(c, name, len, &w))
        snprintf(err, errlen, "step '%s' depends on unknown step '%s'", me, it);
    else if (w == d->i)
        snprintf(err, errlen, "step '%s' cannot depend on itself", me);
    else if (d->aux[w].is_finally && !d->aux[d->i].is_finally)
        snprintf(err, errlen, "step '%s' cannot depend on '%s', a finally step", me, it);
    else if (d->aux[d->i].is_finally && !d->aux[w].is_finally)
        snprintf(err, errlen,
                 "finally step '%s' cannot depend on main step '%s': exit handlers run after "
                 "every main step anyway",
                 me, it);
    else
        rc = 0;
    free(nm);
    if (rc < 0)
        return rc;
    for (size_t j = 0; j < st->n_needs; j++)
        if (st->needs[j] == w)
            return 0; /* listed in needs, or named twice */
    st->needs = xrealloc(st->needs, (st->n_needs + 1) * sizeof *st->needs);
    st->needs[st->n_needs++] = (uint32_t)w;
    return 0;
}

int depends_needs(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t i)
{
    const node_t *v = aux[i].depends_node;
    char e[512];
    if (!v) {
        if (aux[i].trigger_node && all[i]->n_needs == 0)
            return fail(c, aux[i].trigger_node,
                        "step '%s' has a trigger but no needs (a trigger says when its needs "
                        "count as met)",
                        show(c, all[i]->name));
        return 0;
    }
    dn_t d = {.c = c, .all = all, .aux = aux, .i = i};
    if (trigger_depends_check(all[i]->depends, dn_visit, &d, e, sizeof e) < 0)
        return fail_at(c, d.line ? d.line : v->line, d.line ? d.col : v->col, "%s", e);
    return 0;
}
