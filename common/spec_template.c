/* spec_template — {{ ... }} references in a spec's strings.
 *
 * The grammar of a reference is expr.h's (expr_tmpl_next, expr_ref_parse),
 * so droverd reads references exactly as they were checked; expand_mode substitutes {{params.NAME}}
 * in one pass (a value that itself contains "{{" is not expanded again) and keeps run-time
 * references verbatim for droverd, checking their form; what they refer
 * to is checked in spec_flow.c once needs are resolved.
 *
 * Templated settings (timeout, image, resources.*, retries.limit): a value
 * that still holds run-time references once params are substituted is
 * kept as text in the step's *_tmpl field (tmpl_setting, tmpl_merge); one
 * check of an expanded value (spec_tmpl_value) serves the compiler, which
 * runs it over every literal item (check_tmpl_items), and droverd, which
 * runs it when the task is made READY (scheduler/flow.c).
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "json.h"
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
    } else if (mode == EXP_DEFAULT) {
        rc = fail(c, v,
                  "'%s' cannot be used in an input param's default (only {{params.NAME}}: a "
                  "default is fixed text)",
                  show(c, label));
    } else if (r->kind == EXPR_REF_INPUTS) {
        rc = reuse_input_ref(c, v, r, value); /* a step template's value, or kept */
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
            /* a step template's input whose value (the using step's text)
             * holds run-time references: they stay for droverd */
            if (value && kept && p.ref.kind == EXPR_REF_INPUTS && strstr(value, "{{"))
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

/* ---- templated settings ---- */

static const char *const tmpl_names[SPEC_TMPL_N] = {
    "timeout", "image", "resources.cpu", "resources.memory", "resources.gpu", "retries.limit"};

const char *spec_tmpl_key_name(spec_tmpl_key_t k)
{
    return k < SPEC_TMPL_N ? tmpl_names[k] : "?";
}

const char *spec_tmpl_text(const Drover__StepSpec *st, spec_tmpl_key_t k)
{
    const char *t = NULL;
    switch (k) {
    case SPEC_TMPL_TIMEOUT:
        t = st->timeout_tmpl;
        break;
    case SPEC_TMPL_IMAGE:
        t = st->image_tmpl;
        break;
    case SPEC_TMPL_CPU:
        t = st->cpu_tmpl;
        break;
    case SPEC_TMPL_MEMORY:
        t = st->memory_tmpl;
        break;
    case SPEC_TMPL_GPU:
        t = st->gpu_tmpl;
        break;
    case SPEC_TMPL_RETRY_LIMIT:
        t = st->retry_limit_tmpl;
        break;
    case SPEC_TMPL_N:
        break;
    }
    return t && *t ? t : NULL;
}

bool spec_has_tmpl(const Drover__StepSpec *st)
{
    for (int k = 0; k < SPEC_TMPL_N; k++) {
        if (spec_tmpl_text(st, (spec_tmpl_key_t)k))
            return true;
    }
    return false;
}

int spec_tmpl_value(spec_tmpl_key_t k, const char *value, uint64_t *num, char *want, size_t wantlen)
{
    uint32_t milli = 0;
    *num = 0;
    switch (k) {
    case SPEC_TMPL_TIMEOUT:
        if (spec_parse_duration(value, num) == 0)
            return 0;
        snprintf(want, wantlen, "a duration (e.g. 90s, 5m, 1h30m, 100ms)");
        return -EINVAL;
    case SPEC_TMPL_IMAGE:
        for (const char *p = value; *p; p++) {
            if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                snprintf(want, wantlen, "an image reference (no spaces or control characters)");
                return -EINVAL;
            }
        }
        return 0; /* "" runs the step as a plain process, as a literal "" does */
    case SPEC_TMPL_CPU:
        if (spec_parse_cpu(value, &milli) == 0) {
            *num = milli;
            return 0;
        }
        snprintf(want, wantlen, "a cpu quantity (e.g. 2, 0.5, 500m)");
        return -EINVAL;
    case SPEC_TMPL_MEMORY:
        if (spec_parse_memory(value, num) == 0)
            return 0;
        snprintf(want, wantlen, "a memory quantity (e.g. 512Mi, 2Gi, 1G)");
        return -EINVAL;
    case SPEC_TMPL_GPU:
        if (spec_parse_uint(value, SPEC_MAX_GPUS, num) == 0)
            return 0;
        snprintf(want, wantlen, "a whole number of gpus 0-%u", SPEC_MAX_GPUS);
        return -EINVAL;
    case SPEC_TMPL_RETRY_LIMIT:
        if (spec_parse_uint(value, SPEC_MAX_RETRIES, num) == 0)
            return 0;
        snprintf(want, wantlen, "a whole number of retries 0-%u", SPEC_MAX_RETRIES);
        return -EINVAL;
    case SPEC_TMPL_N:
        break;
    }
    snprintf(want, wantlen, "a known setting");
    return -EINVAL;
}

int tmpl_setting(ctx_t *c, const node_t *v, spec_tmpl_key_t k, settings_t *s, node_t *lit)
{
    char *text = NULL;
    size_t kept = 0;
    *lit = *v;
    free(s->tmpl[k]);
    s->tmpl[k] = NULL;
    s->tmpl_node[k] = NULL;
    if (v->type != N_SCALAR || !strstr(v->str, "{{"))
        return 0;
    if (expand_mode(c, v, EXP_ALL, &text, &kept) < 0)
        return -EINVAL;
    if (kept) {
        s->tmpl[k] = text;
        s->tmpl_node[k] = v;
        return 1;
    }
    free(s->lit[k]);
    s->lit[k] = text;
    lit->str = text;
    lit->len = strlen(text);
    return 0;
}

void tmpl_merge(const settings_t *src, spec_tmpl_key_t k, bool inherited, Drover__StepSpec *st,
                step_aux_t *a)
{
    if (!src || !src->tmpl[k])
        return;
    char *t = xstrdup(src->tmpl[k]);
    switch (k) {
    case SPEC_TMPL_TIMEOUT:
        st->timeout_tmpl = t;
        break;
    case SPEC_TMPL_IMAGE:
        st->image_tmpl = t;
        break;
    case SPEC_TMPL_CPU:
        st->cpu_tmpl = t;
        break;
    case SPEC_TMPL_MEMORY:
        st->memory_tmpl = t;
        break;
    case SPEC_TMPL_GPU:
        st->gpu_tmpl = t;
        break;
    case SPEC_TMPL_RETRY_LIMIT:
        st->retry_limit_tmpl = t;
        break;
    case SPEC_TMPL_N:
        free(t);
        return;
    }
    a->tmpl_node[k] = src->tmpl_node[k];
    a->tmpl_inherited[k] = inherited;
}

/* Resolves {{item}} and {{item.KEY}} against one literal item. */
typedef struct {
    const char *item;
    char *scratch;
} item_ctx_t;

static int item_resolve(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    item_ctx_t *x = arg;
    expr_ref_t r = expr_ref_parse(ref, strlen(ref));
    free(x->scratch);
    x->scratch = NULL;
    if (r.kind != EXPR_REF_ITEM) {
        snprintf(err, errlen, "{{%s}} is known only when the run gets there", ref);
        return -EAGAIN;
    }
    if (!r.alen) {
        *value = x->item;
        return 0;
    }
    char *key = xstrndup(r.a, r.alen);
    int rc = json_text_member(x->item, key, &x->scratch);
    free(key);
    if (rc < 0) {
        snprintf(err, errlen, "{{%s}}: the item has no key '%.*s'", ref, (int)r.alen, r.a);
        return -EINVAL;
    }
    *value = x->scratch;
    return 0;
}

/* Whether text refers to nothing but the item (and params, substituted). */
static bool only_items(const char *text)
{
    expr_tmpl_t it;
    expr_piece_t p;
    int more;
    expr_tmpl_init(&it, text);
    while ((more = expr_tmpl_next(&it, &p)) > 0) {
        if (p.is_ref && p.ref.kind != EXPR_REF_ITEM)
            return false;
    }
    return more == 0;
}

int check_tmpl_items(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t i)
{
    const Drover__StepSpec *st = all[i];
    char **range = NULL;
    size_t n = st->n_items;
    int rc = 0;
    if (!st->fan_out || (st->items_from && *st->items_from) || !spec_has_tmpl(st))
        return 0;
    if (st->has_range) {
        uint64_t count = spec_range_count(st->range_start, st->range_end, st->range_step);
        if (count > SPEC_MAX_ITEMS)
            return 0; /* checked item by item when the run gets there */
        n = (size_t)count;
        range = xcalloc(n ? n : 1, sizeof *range);
        uint64_t v = (uint64_t)st->range_start;
        for (size_t j = 0; j < n; j++, v += (uint64_t)st->range_step)
            range[j] = xasprintf("%lld", (long long)(int64_t)v);
    }
    for (int k = 0; k < SPEC_TMPL_N && rc == 0; k++) {
        const char *text = spec_tmpl_text(st, (spec_tmpl_key_t)k);
        const node_t *at = aux[i].tmpl_node[k];
        if (!text || !at || !only_items(text))
            continue;
        for (size_t j = 0; j < n && rc == 0; j++) {
            item_ctx_t x = {.item = range ? range[j] : st->items[j]};
            char err[256], want[128], *out = NULL;
            uint64_t num;
            const char *by = aux[i].tmpl_inherited[k] ? show(c, st->name) : NULL;
            if (expr_expand(text, item_resolve, &x, SPEC_MAX_EXPANDED, &out, err, sizeof err) < 0)
                rc = fail(c, at, "%s: item %zu (%s): %s%s%s%s", tmpl_names[k], j, show(c, x.item),
                          err, by ? " (in defaults, inherited by step '" : "", by ? by : "",
                          by ? "')" : "");
            else if (spec_tmpl_value((spec_tmpl_key_t)k, out, &num, want, sizeof want) < 0)
                rc = fail(c, at, "%s: item %zu (%s) gives '%s', not %s%s%s%s", tmpl_names[k], j,
                          show(c, x.item), show(c, out), want,
                          by ? " (in defaults, inherited by step '" : "", by ? by : "",
                          by ? "')" : "");
            free(out);
            free(x.scratch);
        }
    }
    for (size_t j = 0; range && j < n; j++)
        free(range[j]);
    free(range);
    return rc;
}
