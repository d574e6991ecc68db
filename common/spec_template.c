/* spec_template — {{ ... }} references in a spec's strings.
 *
 * classify_ref names what a reference is (params, steps, item, run, inputs
 * or bad); expand_mode substitutes {{params.NAME}} in one pass (a value
 * that itself contains "{{" is not expanded again) and keeps run-time
 * references verbatim for droverd, checking their form; what they refer
 * to is checked in spec_flow.c once needs are resolved.
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static bool has_prefix_word(const char *s, size_t len, const char *word)
{
    size_t w = strlen(word);
    return len >= w && !memcmp(s, word, w) && (len == w || s[w] == '.' || s[w] == '[');
}

/* 1 or more of [A-Za-z0-9_.-] */
static bool name_chars(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    }
    return true;
}

/* Classify the trimmed text inside {{ }}. */
ref_t classify_ref(const char *in, size_t n)
{
    static const char mid[] = ".outputs.params.";
    ref_t r = {.kind = REF_BAD,
               .why = "use {{params.NAME}}, {{steps.STEP.outputs.params.NAME}}, {{item}}, "
                      "{{item.KEY}}, {{run.id}}, {{run.name}} or {{run.status}}"};
    if (n > 7 && !memcmp(in, "params.", 7)) {
        r.kind = REF_PARAM;
        r.a = in + 7;
        r.alen = n - 7;
    } else if (has_prefix_word(in, n, "steps")) {
        r.why = "use {{steps.STEP.outputs.params.NAME}}";
        const char *s = in + (n > 6 ? 6 : n), *end = in + n, *m = NULL;
        for (const char *p = s; p + sizeof mid - 1 <= end; p++) {
            if (!memcmp(p, mid, sizeof mid - 1)) {
                m = p;
                break;
            }
        }
        if (m && name_chars(s, (size_t)(m - s)) &&
            name_chars(m + sizeof mid - 1, (size_t)(end - m - (sizeof mid - 1)))) {
            r.kind = REF_STEP;
            r.a = s;
            r.alen = (size_t)(m - s);
            r.b = m + sizeof mid - 1;
            r.blen = (size_t)(end - r.b);
        }
    } else if (has_prefix_word(in, n, "item")) {
        r.why = "use {{item}} or {{item.KEY}}";
        if (n == 4 || (in[4] == '.' && name_chars(in + 5, n - 5))) {
            r.kind = REF_ITEM;
            r.a = in + 5;
            r.alen = n > 4 ? n - 5 : 0;
        }
    } else if (has_prefix_word(in, n, "run")) {
        r.why = "use {{run.id}}, {{run.name}} or {{run.status}}";
        if ((n == 6 && !memcmp(in, "run.id", 6)) || (n == 8 && !memcmp(in, "run.name", 8)))
            r.kind = REF_RUN;
        else if (n == 10 && !memcmp(in, "run.status", 10))
            r.kind = REF_STATUS;
    } else if (has_prefix_word(in, n, "inputs")) {
        r.kind = REF_INPUTS;
    }
    return r;
}

/* Trim the inside of the template open[0..whole) ("{{ ... }}"). */
void template_inner(const char *open, size_t whole, const char **in, size_t *n)
{
    const char *a = open + 2, *b = open + whole - 2;
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    *in = a;
    *n = (size_t)(b - a);
}

/* The template open[0..whole) ("{{ ... }}") found in scalar v: *value is
 * the param's value, or NULL to keep the text as written (a run-time
 * template, whose form is checked here and its target later; or a form
 * that a later release implements, noted). 0 or -EINVAL. */
static int resolve_template(ctx_t *c, const node_t *v, const char *open, size_t whole,
                            exp_mode_t mode, const char **value)
{
    char *label = xstrndup(open, whole), *name = NULL;
    const char *in;
    size_t ilen;
    int rc = 0;

    template_inner(open, whole, &in, &ilen);
    ref_t r = classify_ref(in, ilen);
    *value = NULL;
    if (r.kind == REF_PARAM) {
        const spec_kv_t *kv = find_param(c, r.a, r.alen);
        if (!kv) {
            name = xstrndup(r.a, r.alen);
            rc = fail(c, v, "unknown param '%s' in template", show(c, name));
            goto cleanup;
        }
        *value = kv->value;
    } else if (r.kind == REF_BAD) {
        rc = fail(c, v, "bad template '%s' (%s)", show(c, label), r.why);
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
    } else if (r.kind == REF_INPUTS) {
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
    const char *s = v->str;
    size_t cap = v->len + 1, o = 0;
    char *b = xmalloc(cap);
    int rc = 0;

    if (kept)
        *kept = 0;
    while (*s) {
        const char *open = strstr(s, "{{"), *piece = s, *value = NULL;
        size_t plen = open ? (size_t)(open - s) : strlen(s);
        s += plen;
        if (open) {
            const char *close = strstr(open + 2, "}}");
            if (!close) {
                rc = fail(c, v, "unterminated '{{' in template (missing '}}')");
                goto cleanup;
            }
            size_t whole = (size_t)(close + 2 - open);
            if ((rc = resolve_template(c, v, open, whole, mode, &value)) < 0)
                goto cleanup;
            if (!value) {
                plen += whole; /* keep a run-time template as written */
                if (kept)
                    (*kept)++;
            }
            s = close + 2;
        }
        size_t vlen = value ? strlen(value) : 0;
        if (o + plen + vlen > SPEC_MAX_EXPANDED) {
            rc = fail(c, v, "string is longer than %u bytes after template substitution",
                      SPEC_MAX_EXPANDED);
            goto cleanup;
        }
        if (c->expanded + plen + vlen > SPEC_MAX_EXPAND_ALL) {
            rc = fail(c, v, "templates expand to more than %u bytes in all", SPEC_MAX_EXPAND_ALL);
            goto cleanup;
        }
        c->expanded += plen + vlen;
        if (o + plen + vlen + 1 > cap) {
            while (cap < o + plen + vlen + 1)
                cap *= 2;
            b = xrealloc(b, cap);
        }
        memcpy(b + o, piece, plen);
        o += plen;
        memcpy(b + o, value ? value : "", vlen);
        o += vlen;
    }
    b[o] = '\0';
    *out = b;
    b = NULL;
cleanup:
    free(b);
    return rc;
}

int expand(ctx_t *c, const node_t *v, char **out)
{
    return expand_mode(c, v, EXP_ALL, out, NULL);
}
