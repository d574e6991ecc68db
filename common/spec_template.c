/* spec_template — {{ ... }} references in a spec's strings.
 *
 * The grammar of a reference is expr.h's (expr_tmpl_next, expr_ref_parse),
 * so droverd reads references exactly as they were checked; expand_mode substitutes {{params.NAME}}
 * in one pass (a value that itself contains "{{" is not expanded again) and keeps run-time
 * references verbatim for droverd, checking their form; what they refer
 * to is checked in spec_flow.c once needs are resolved.
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

/* ---- templates ---- */

static const spec_kv_t *find_param(ctx_t *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->param_count; i++) {
        if (strlen(c->params[i].key) == len && !memcmp(c->params[i].key, name, len))
            return &c->params[i];
    }
    return NULL;
}

/* The reference p found in scalar v: *value is the param's value, or NULL
 * to keep the text as written (a run-time template, whose form is checked
 * here and its target later; or a form that a later release implements,
 * noted). 0 or -EINVAL. */
static int resolve_template(ctx_t *c, const node_t *v, const expr_piece_t *p, exp_mode_t mode,
                            const char **value)
{
    char *label = xstrndup(v->str + p->off, p->len), *name = NULL;
    const expr_ref_t *r = &p->ref;
    int rc = 0;

    *value = NULL;
    if (r->kind == EXPR_REF_PARAM) {
        const spec_kv_t *kv = find_param(c, r->a, r->alen);
        if (!kv && c->params_partial) {
            *value = ""; /* it may be the param whose name was in error */
            goto cleanup;
        }
        if (!kv) {
            name = xstrndup(r->a, r->alen);
            rc = fail(c, v, "unknown param '%s' in template", show(c, name));
            goto cleanup;
        }
        *value = kv->value;
    } else if (r->kind == EXPR_REF_BAD) {
        rc = fail(c, v, "bad template '%s' (%s)", show(c, label), r->why);
    } else if (mode == EXP_PARAMS) {
        rc = fail(c, v,
                  "'%s' cannot be used in a for_each item (only {{params.NAME}}: nothing expands "
                  "items)",
                  show(c, label));
    } else if (mode == EXP_RANGE) {
        rc = fail(c, v,
                  "'%s' cannot be used in a for_each range (only {{params.NAME}}: a range is "
                  "fixed when the run is submitted)",
                  show(c, label));
    } else if (r->kind == EXPR_REF_INPUTS) {
        not_impl(c, v, label, "inputs in templates");
    }
cleanup:
    free(label);
    free(name);
    return rc;
}

/* Substitute {{params.NAME}} in the scalar v; *out is new (caller frees).
 * One pass: a substituted value is not scanned again. *kept (may be NULL)
 * counts templates left as written. */
int expand_mode(ctx_t *c, const node_t *v, exp_mode_t mode, char **out, size_t *kept)
{
    strbuf_t b = {0};
    expr_tmpl_t it;
    expr_piece_t p;
    int rc = 0, more;

    if (kept)
        *kept = 0;
    expr_tmpl_init(&it, v->str);
    while ((more = expr_tmpl_next(&it, &p)) > 0) {
        const char *value = NULL;
        size_t plen = p.len; /* of the text kept as written */
        if (p.is_ref) {
            if ((rc = resolve_template(c, v, &p, mode, &value)) < 0)
                goto cleanup;
            if (value)
                plen = 0;
            else if (kept)
                (*kept)++;
        }
        size_t vlen = value ? strlen(value) : 0;
        if (b.len + plen + vlen > SPEC_MAX_EXPANDED) {
            rc = fail(c, v, "string is longer than %u bytes after template substitution",
                      SPEC_MAX_EXPANDED);
            goto cleanup;
        }
        if (c->expanded + plen + vlen > SPEC_MAX_EXPAND_ALL) {
            c->fatal = true; /* each later string would say it again */
            rc = fail(c, v, "templates expand to more than %u bytes in all", SPEC_MAX_EXPAND_ALL);
            goto cleanup;
        }
        c->expanded += plen + vlen;
        sb_add(&b, v->str + p.off, plen);
        sb_add(&b, value ? value : "", vlen);
    }
    if (more < 0) {
        rc = fail(c, v, "unterminated '{{' in template (missing '}}')");
        goto cleanup;
    }
    *out = sb_take(&b);
cleanup:
    sb_free(&b);
    return rc;
}

int expand(ctx_t *c, const node_t *v, char **out)
{
    return expand_mode(c, v, EXP_ALL, out, NULL);
}
