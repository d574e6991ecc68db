/* spec_step — one step of a spec: its own keys (command or script, needs,
 * inputs, outputs, when, for_each, parallelism), then the merge of its
 * settings over defaults: over the SPEC_DEFAULT_* built-ins.
 *
 * for_each: a list gives literal items (a scalar as its text; a map or
 * list as compact JSON); a string is one {{steps...}} template (items_from)
 * or JSON text; a map {range: ...} is a range kept as three numbers.
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>

#include "expr.h"
#include "json.h"
#include "strbuf.h"
#include "util.h"

/* ---- steps ---- */

/* suspend: true | {} | {timeout: DUR, on_timeout: fail | continue}: an
 * approval gate (README "Approval gates"). false / null: not a gate. */
static int parse_suspend(ctx_t *c, const node_t *v, Drover__StepSpec *st)
{
    static const char *const what =
        "'suspend' must be true or a map (timeout, on_timeout: fail | continue)";
    bool on = true;
    if (v->type == N_SCALAR && !is_null(v)) {
        if (parse_bool(v->str, &on) < 0)
            return fail(c, v, "%s", what);
        st->suspend = on;
        return 0;
    }
    st->suspend = true;
    if (is_null(v))
        return 0;
    if (v->type != N_MAP)
        return fail(c, v, "%s", what);
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "timeout")) {
            if (want_duration(c, x, "suspend.timeout", &st->suspend_timeout_ms) < 0)
                return -EINVAL;
            if (st->suspend_timeout_ms == 0)
                return fail(c, x,
                            "'suspend.timeout' must be more than 0 (leave it out to wait "
                            "until resumed)");
        } else if (!strcmp(k->str, "on_timeout")) {
            if (x->type != N_SCALAR || (strcmp(x->str, "fail") && strcmp(x->str, "continue")))
                return fail(c, x, "'suspend.on_timeout' must be fail or continue, not '%s'",
                            x->type == N_SCALAR ? show(c, x->str) : "(not a string)");
            st->suspend_continue = !strcmp(x->str, "continue");
        } else {
            return fail(c, k, "unknown key '%s' in suspend (timeout, on_timeout)", show(c, k->str));
        }
    }
    return 0;
}

/* A gate runs nothing: the keys of a step that runs something are refused
 * at the key (m: the step's map). */
static int check_gate(ctx_t *c, const node_t *m, const Drover__StepSpec *st)
{
    static const char *const refused[] = {"command", "script", "image", "for_each", "inputs"};
    for (size_t i = 0; i < map_len(m); i++) {
        const node_t *k = map_key(m, i);
        for (size_t j = 0; j < sizeof refused / sizeof refused[0]; j++) {
            if (!strcmp(k->str, refused[j]))
                return fail(c, k,
                            "step '%s' has 'suspend' and '%s': an approval gate runs nothing "
                            "(it waits for `drover run resume`)",
                            show(c, st->name), refused[j]);
        }
    }
    if (st->n_out_artifacts)
        return fail(c, m,
                    "step '%s' has 'suspend' and output artifacts: a gate's outputs are params "
                    "given with `drover run resume -p`",
                    show(c, st->name));
    return 0;
}

/* Output and input names become file names under $DROVER_OUTPUTS and
 * $DROVER_INPUTS: [A-Za-z0-9_.-], 1-63 bytes, not ".", no "..". */
bool valid_file_name(const char *s)
{
    return valid_name(s) && strcmp(s, ".") && !strstr(s, "..");
}

static const char *const outputs_keys[] = {"artifacts", "params", NULL};
static const char *const inputs_keys[] = {"artifacts", "params", NULL};

#define FILE_NAME_RULE "names are 1-63 characters of [A-Za-z0-9_.-] (not '.', no '..')"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **sorted_copy(char **names, size_t n)
{
    if (n == 0)
        return NULL;
    char **s = xmalloc(n * sizeof *s);
    memcpy(s, names, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_str);
    return s;
}

/* Whether s[0..len) is among sorted[0..n). */
bool sorted_has(char *const *sorted, size_t n, const char *s, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *x = sorted[mid];
        int r = strncmp(s, x, len);
        if (r == 0)
            r = x[len] ? -1 : 0; /* s is a prefix of a longer name */
        if (r == 0)
            return true;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* outputs: {artifacts: [names], params: [names]}; one namespace for both. */
static int parse_outputs(ctx_t *c, const node_t *v, Drover__StepSpec *st, step_aux_t *a)
{
    const node_t *lists[2] = {NULL, NULL};
    node_t **names = NULL;
    size_t total = 0;
    int rc = 0;

    if (want_map(c, v, "outputs", "artifacts, params") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        int which = !strcmp(k->str, "artifacts") ? 0 : !strcmp(k->str, "params") ? 1 : -1;
        if (which < 0)
            return unknown_key(c, k, "outputs", outputs_keys, true);
        if (x->type != N_SEQ)
            return fail(c, x, "'outputs.%s' must be a list of names", k->str);
        for (size_t j = 0; j < x->nkids; j++) {
            const node_t *y = x->kids[j];
            if (y->type != N_SCALAR || !valid_file_name(y->str))
                return fail(c, y, "bad output name '%s': " FILE_NAME_RULE,
                            y->type == N_SCALAR ? show(c, y->str) : "(not a string)");
        }
        lists[which] = x;
        total += x->nkids;
    }
    /* unique across both lists: report the second of the earliest pair */
    if (total > 1) {
        names = xmalloc(total * sizeof *names);
        size_t o = 0;
        for (int l = 0; l < 2; l++) {
            for (size_t j = 0; lists[l] && j < lists[l]->nkids; j++)
                names[o++] = lists[l]->kids[j];
        }
        qsort(names, total, sizeof *names, cmp_key);
        const node_t *dup = NULL;
        for (size_t i = 1; i < total; i++) {
            if (strcmp(names[i - 1]->str, names[i]->str))
                continue;
            if (!dup || names[i]->line < dup->line ||
                (names[i]->line == dup->line && names[i]->col < dup->col))
                dup = names[i];
        }
        if (dup) {
            rc = fail(c, dup, "output '%s' declared twice", show(c, dup->str));
            goto cleanup;
        }
    }
    for (int l = 0; l < 2; l++) {
        const node_t *x = lists[l];
        if (!x || x->nkids == 0)
            continue;
        char **dst = xcalloc(x->nkids, sizeof *dst);
        for (size_t j = 0; j < x->nkids; j++)
            dst[j] = xstrdup(x->kids[j]->str);
        if (l == 0) {
            st->out_artifacts = dst;
            st->n_out_artifacts = x->nkids;
            a->arts_sorted = sorted_copy(dst, x->nkids);
        } else {
            st->out_params = dst;
            st->n_out_params = x->nkids;
            a->params_sorted = sorted_copy(dst, x->nkids);
        }
    }
cleanup:
    free(names);
    return rc;
}

/* inputs: {artifacts: {local: STEP.ARTIFACT}}; the sources are resolved
 * in check_flow, once every step is known (inside a DAG template, also
 * inputs.artifacts.NAME: the group's input). inputs.params is refused:
 * input params are a template's, given with `with:`. */
static int parse_inputs(ctx_t *c, const node_t *v, Drover__StepSpec *st, step_aux_t *a)
{
    if (want_map(c, v, "inputs", "artifacts, params") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (strcmp(k->str, "artifacts") && strcmp(k->str, "params"))
            return unknown_key(c, k, "inputs", inputs_keys, true);
        if (!strcmp(k->str, "params"))
            return fail(c, k,
                        "'inputs.params' is not a step key: a template declares its input "
                        "params (templates: NAME: inputs: params:) and a step that uses it "
                        "gives them with 'with:'; a step reads another's output with "
                        "{{steps.STEP.outputs.params.NAME}}");
        if (x->type != N_MAP)
            return fail(c, x, "'inputs.artifacts' must be a map of name: STEP.ARTIFACT");
        size_t n = map_len(x);
        st->inputs = n ? xcalloc(n, sizeof *st->inputs) : NULL;
        a->input_src = n ? xcalloc(n, sizeof *a->input_src) : NULL;
        for (size_t j = 0; j < n; j++) {
            const node_t *lk = map_key(x, j), *src = map_val(x, j);
            if (!valid_file_name(lk->str))
                return fail(c, lk, "bad input name '%s': " FILE_NAME_RULE, show(c, lk->str));
            if (want_str(c, src, "inputs.artifacts source") < 0)
                return -EINVAL;
            const char *dot = strchr(src->str, '.');
            if (!dot || dot == src->str || src->str[src->len - 1] == '.')
                return fail(c, src, "input '%s': '%s' is not STEP.ARTIFACT", show(c, lk->str),
                            show(c, src->str));
            Drover__InputSpec *in = xmalloc(sizeof *in);
            drover__input_spec__init(in);
            in->local = xstrdup(lk->str);
            st->inputs[st->n_inputs] = in;
            a->input_src[st->n_inputs++] = src;
        }
    }
    return 0;
}

static void buf_add_quoted(strbuf_t *b, const char *s)
{
    char *q = json_text_quote(s);
    sb_puts(b, q);
    free(q);
}

/* The whole of s is a JSON number. */
static bool json_number(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        if (*++p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* A for_each item that is a map or list, as compact JSON into b. Plain
 * scalars that YAML reads as null, booleans or numbers keep that type;
 * every other scalar is a string, with {{params.NAME}} substituted. */
static int item_json(ctx_t *c, const node_t *v, strbuf_t *b)
{
    if (v->type == N_MAP || v->type == N_SEQ) {
        sb_add(b, v->type == N_MAP ? "{" : "[", 1);
        size_t step = v->type == N_MAP ? 2 : 1;
        for (size_t i = 0; i < v->nkids; i += step) {
            if (i)
                sb_add(b, ",", 1);
            if (v->type == N_MAP) {
                buf_add_quoted(b, v->kids[i]->str);
                sb_add(b, ":", 1);
            }
            if (item_json(c, v->kids[i + step - 1], b) < 0)
                return -EINVAL;
        }
        sb_add(b, v->type == N_MAP ? "}" : "]", 1);
        return 0;
    }
    static const char *lits[][2] = {{"true", "true"},   {"True", "true"},   {"TRUE", "true"},
                                    {"false", "false"}, {"False", "false"}, {"FALSE", "false"}};
    if (v->plain) {
        if (is_null(v)) {
            sb_add(b, "null", 4);
            return 0;
        }
        for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
            if (!strcmp(v->str, lits[i][0])) {
                sb_add(b, lits[i][1], strlen(lits[i][1]));
                return 0;
            }
        }
        if (json_number(v->str)) {
            sb_add(b, v->str, v->len);
            return 0;
        }
    }
    char *text;
    if (expand_mode(c, v, EXP_PARAMS, &text, NULL) < 0)
        return -EINVAL;
    buf_add_quoted(b, text);
    free(text);
    return 0;
}

#define RANGE_FORMS "{range: END}, {range: [START, END]} or {range: [START, END, STEP]}"

/* One number of a for_each range (what: START, END or STEP): a scalar
 * that is a decimal int64 after {{params.NAME}} substitution. */
static int range_number(ctx_t *c, const node_t *v, const char *what, int64_t *out)
{
    char *text = NULL;
    uint64_t mag = 0;
    int rc = 0;

    if (v->type != N_SCALAR || is_null(v))
        return fail(c, v, "for_each range %s must be an integer (%s)", what, RANGE_FORMS);
    if (expand_mode(c, v, EXP_RANGE, &text, NULL) < 0)
        return -EINVAL;
    const char *p = text;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    bool digits = *p != '\0', over = false;
    for (; *p && digits; p++) {
        if (*p < '0' || *p > '9')
            digits = false;
        else if (__builtin_mul_overflow(mag, 10, &mag) ||
                 __builtin_add_overflow(mag, (uint64_t)(*p - '0'), &mag))
            over = true;
    }
    if (!digits) {
        rc = fail(c, v, "for_each range %s must be a decimal integer, not '%s'", what,
                  show(c, text));
        goto cleanup;
    }
    if (over || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
        rc = fail(c, v, "for_each range %s %s overflows a 64-bit integer (%lld to %lld)", what,
                  show(c, text), (long long)INT64_MIN, (long long)INT64_MAX);
        goto cleanup;
    }
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
cleanup:
    free(text);
    return rc;
}

uint64_t spec_range_count(int64_t start, int64_t end, int64_t step)
{
    uint64_t span, stride;
    if (step > 0 && end > start) {
        span = (uint64_t)end - (uint64_t)start;
        stride = (uint64_t)step;
    } else if (step < 0 && end < start) {
        span = (uint64_t)start - (uint64_t)end;
        stride = 0 - (uint64_t)step;
    } else {
        return 0;
    }
    return span / stride + (span % stride != 0);
}

/* for_each: {range: ...} (map v): END, [START, END] or [START, END, STEP],
 * at most lim.max_range_items items; stored as numbers, the items are
 * made at run time. */
static int parse_range(ctx_t *c, const node_t *v, Drover__StepSpec *st)
{
    static const char *names1[] = {"END"}, *names3[] = {"START", "END", "STEP"};
    const node_t *r = NULL, *nums[3] = {NULL, NULL, NULL};
    int64_t val[3] = {0, 0, 1};
    size_t n = 1;

    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i);
        if (strcmp(k->str, "range"))
            return fail(c, k, "unknown key '%s' in for_each (a map is a range: %s)",
                        show(c, k->str), RANGE_FORMS);
        r = map_val(v, i);
    }
    if (!r)
        return fail(c, v, "'for_each' map must hold the key 'range': %s", RANGE_FORMS);
    if (r->type == N_MAP) {
        return fail(c, r, "for_each range must be %s, not a map", RANGE_FORMS);
    } else if (r->type == N_SEQ) {
        if (r->nkids < 2 || r->nkids > 3)
            return fail(c, r, "for_each range must be %s, not a list of %zu", RANGE_FORMS,
                        r->nkids);
        n = r->nkids;
        for (size_t j = 0; j < n; j++)
            nums[j] = r->kids[j];
    } else {
        nums[0] = r;
    }
    const char **names = n == 1 ? names1 : names3;
    for (size_t j = 0; j < n; j++) {
        if (range_number(c, nums[j], names[j], &val[n == 1 ? 1 : j]) < 0)
            return -EINVAL;
    }
    if (val[2] == 0)
        return fail(c, nums[2], "for_each range STEP must not be 0");
    uint64_t count = spec_range_count(val[0], val[1], val[2]);
    if (count > c->lim.max_range_items)
        return fail_limit(c, r,
                          "too many for_each items in range (%llu; at most %zu, droverd's "
                          "--max-items)",
                          (unsigned long long)count, c->lim.max_range_items);
    st->has_range = true;
    st->range_start = val[0];
    st->range_end = val[1];
    st->range_step = val[2];
    return 0;
}

/* for_each: a list of literal items; a string: one
 * {{steps.S.outputs.params.P}} (items_from, checked in check_flow) or
 * JSON text of a list, after params substitution; or a {range: ...} map. */
static int parse_for_each(ctx_t *c, const node_t *v, Drover__StepSpec *st, step_aux_t *a)
{
    char *text = NULL;
    char jerr[160];
    size_t kept = 0;
    int rc = 0;

    st->fan_out = true;
    a->for_each = v;
    if (v->type == N_SEQ) {
        if (v->nkids > c->lim.max_items)
            return fail_limit(c, v, "too many for_each items (%zu; at most %zu)", v->nkids,
                              c->lim.max_items);
        st->items = v->nkids ? xcalloc(v->nkids, sizeof *st->items) : NULL;
        for (size_t j = 0; j < v->nkids; j++) {
            const node_t *x = v->kids[j];
            char *item = NULL;
            if (x->type == N_SCALAR) {
                if (expand_mode(c, x, EXP_PARAMS, &item, NULL) < 0)
                    return -EINVAL;
            } else {
                strbuf_t b = {0};
                if (item_json(c, x, &b) < 0) {
                    sb_free(&b);
                    return -EINVAL;
                }
                item = sb_take(&b);
            }
            st->items[st->n_items++] = item;
            if (charge(c, x, strlen(item) + 1) < 0)
                return -EINVAL;
        }
        return 0;
    }
    if (v->type == N_MAP)
        return parse_range(c, v, st);
    if (v->type != N_SCALAR || is_null(v))
        return fail(c, v,
                    "'for_each' must be a list of items, a string (a JSON list, or "
                    "{{steps.STEP.outputs.params.NAME}}) or a range (%s)",
                    RANGE_FORMS);
    if (expand_mode(c, v, EXP_ALL, &text, &kept) < 0)
        return -EINVAL;
    const char *t = text, *end = text + strlen(text);
    while (t < end && strchr(" \t\r\n", *t))
        t++;
    while (end > t && strchr(" \t\r\n", end[-1]))
        end--;
    size_t tlen = (size_t)(end - t);
    char *tmpl = xstrndup(t, tlen);
    expr_tmpl_t it;
    expr_piece_t p;
    expr_tmpl_init(&it, tmpl);
    if (expr_tmpl_next(&it, &p) > 0 && p.is_ref && p.len == tlen) { /* one reference */
        if (p.ref.kind != EXPR_REF_STEP && p.ref.kind != EXPR_REF_STEP_RESULT) {
            rc = fail(c, v,
                      "'for_each' template must be {{steps.STEP.outputs.params.NAME}} or "
                      "{{steps.STEP.outputs.result}}, not '%s'",
                      show(c, tmpl));
            free(tmpl);
            goto cleanup;
        }
        st->items_from = tmpl;
        goto cleanup;
    }
    free(tmpl);
    if (kept) {
        rc = fail(c, v,
                  "'for_each' may hold a run-time template only as the whole string "
                  "{{steps.STEP.outputs.params.NAME}}");
        goto cleanup;
    }
    rc = json_text_list(text, strlen(text), c->lim.max_items, &st->items, &st->n_items, jerr,
                        sizeof jerr);
    if (rc == -E2BIG) {
        rc = fail_limit(c, v, "too many for_each items (more than %zu)", c->lim.max_items);
        goto cleanup;
    }
    if (rc < 0) {
        rc = fail(c, v,
                  "'for_each' string must be a JSON list or {{steps.STEP.outputs.params.NAME}}: "
                  "%s",
                  jerr);
        goto cleanup;
    }
    for (size_t j = 0; j < st->n_items; j++) {
        if ((rc = charge(c, v, strlen(st->items[j]) + 1)) < 0)
            goto cleanup;
    }
cleanup:
    free(text);
    return rc;
}

/* A new step message with its resources and retries, every field its own
 * block (spec.h), so a half-parsed step frees like a whole one. */
static Drover__StepSpec *step_new(void)
{
    Drover__StepSpec *st = xmalloc(sizeof *st);
    drover__step_spec__init(st);
    st->resources = xmalloc(sizeof *st->resources);
    drover__resources__init(st->resources);
    st->retries = xmalloc(sizeof *st->retries);
    drover__retry_policy__init(st->retries);
    return st;
}

/* The pairs kv[0..n) as KeyValue messages, taking their strings and
 * freeing kv (NULL when n is 0). */
static Drover__KeyValue **kv_msgs(spec_kv_t *kv, size_t n)
{
    Drover__KeyValue **out = n ? xcalloc(n, sizeof *out) : NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = xmalloc(sizeof *out[i]);
        drover__key_value__init(out[i]);
        out[i]->key = kv[i].key;
        out[i]->value = kv[i].value;
    }
    free(kv);
    return out;
}

/* The valid keys of each mapping, NULL-terminated (for unknown_key's
 * message and did-you-mean): a new key is one line in its list. */
/* clang-format off */
const char *const step_only_keys[] = {
    "name",
    "command",
    "script",
    "needs",
    "inputs",
    "outputs",
    "when",
    "for_each",
    "parallelism",
    "skip_on_exit_code",
    "suspend",
    "trigger",
    "depends",
    "continue_on",
    "uses",
    "with",
    NULL,
};
/* clang-format on */

/* Keys only a step may have, besides the inheritable ones. */
bool is_step_only_key(const char *k)
{
    for (size_t i = 0; step_only_keys[i]; i++) {
        if (!strcmp(k, step_only_keys[i]))
            return true;
    }
    return false;
}

/* An unknown key k in the step named name: did-you-mean over both lists. */
static int unknown_step_key(ctx_t *c, const node_t *k, const char *name)
{
    const char *all[128];
    size_t n = 0;
    for (size_t i = 0; step_only_keys[i] && n < 127; i++)
        all[n++] = step_only_keys[i];
    for (size_t i = 0; setting_keys[i] && n < 127; i++)
        all[n++] = setting_keys[i];
    all[n] = NULL;
    char *where = xasprintf("step '%s'", show(c, name));
    int rc = unknown_key(c, k, where, all, false);
    free(where);
    return rc;
}

/* A step with spot: require (written at spot, inherited from defaults when
 * spot_dflt) never runs on an on-demand node, so falling back to one after
 * preemptions cannot apply: a fallback_after other than 0 written anywhere
 * (at fb; fb_dflt: in defaults) is refused, naming both keys, and the
 * built-in default (SPEC_DEFAULT_FALLBACK_AFTER) becomes 0. Without this
 * the step waited in READY forever after that many preemptions. */
static int spot_fallback(ctx_t *c, Drover__StepSpec *st, const node_t *spot, const node_t *fb,
                         bool spot_dflt, bool fb_dflt)
{
    if (!fb) {
        st->fallback_after = 0;
        return 0;
    }
    if (st->fallback_after == 0)
        return 0;
    char whose[128] = "";
    if (fb_dflt)
        snprintf(whose, sizeof whose, " (in defaults, inherited by step '%s')", show(c, st->name));
    return fail(c, fb,
                "'preemption.fallback_after: %u'%s cannot be used with 'placement.spot: require' "
                "(at %d:%d%s): a step that requires spot nodes never runs on on-demand nodes; "
                "use spot: prefer to fall back, or fallback_after: 0",
                st->fallback_after, whose, spot->line, spot->col, spot_dflt ? ", in defaults" : "");
}

/* Whether step map m has a command or script key (maybe in error). */
static bool has_argv_key(const node_t *m)
{
    for (size_t i = 0; i < map_len(m); i++) {
        if (!strcmp(map_key(m, i)->str, "command") || !strcmp(map_key(m, i)->str, "script"))
            return true;
    }
    return false;
}

/* Fill st from step map m: its own keys over defaults d over SPEC_DEFAULT_*.
 * all[idx] is made first, so callers can free it whatever happens. Every
 * key is checked whatever failed before it (the errors are in c); -EINVAL
 * when any did. A step without a usable name is not read further. */
int parse_step(ctx_t *c, const node_t *m, const settings_t *d, Drover__StepSpec **all, size_t idx,
               step_aux_t *aux)
{
    if (m->type == N_MAP && map_get(m, "uses"))
        return parse_uses(c, m, d, all, idx, aux); /* spec_reuse.c */
    Drover__StepSpec *st = all[idx] = step_new();
    step_aux_t *a = &aux[idx];
    settings_t own = {0};
    spec_kv_t *kvs[2] = {NULL, NULL}; /* env and labels, merged */
    size_t nkv[2] = {0, 0};
    const node_t *cmd = NULL, *script = NULL, *name = NULL, *par_key = NULL;
    size_t fails = c->fail_calls; /* errors of this step: c->fail_calls - fails */
    int rc = 0;

    if (m->type != N_MAP) {
        rc = fail(c, m, "each step must be a map (name, command or script, needs, ...)");
        c->names_partial = true;
        goto cleanup;
    }
    st->is_finally = a->is_finally;
    for (size_t i = 0; i < map_len(m); i++) {
        if (!strcmp(map_key(m, i)->str, "name"))
            name = map_val(m, i);
    }
    if (!name || name->type != N_SCALAR || is_null(name)) {
        rc = name ? fail(c, name, "bad step name '%s' (letters, digits, '_', '.', '-'; at most %u)",
                         name->type == N_SCALAR ? show(c, name->str) : "(not a string)",
                         SPEC_MAX_NAME)
                  : fail(c, m, "step has no 'name'");
        c->names_partial = true; /* steps may need it by the name meant */
        goto cleanup;
    }
    /* a bad or duplicate name is reported and the step read on under it:
     * what refers to it finds it (no "unknown step" after the error) */
    if (!valid_name(name->str))
        rc = fail(c, name, "bad step name '%s' (letters, digits, '_', '.', '-'; at most %u)",
                  show(c, name->str), SPEC_MAX_NAME);
    size_t first;
    bool dup = names_find(c, name->str, name->len, &first);
    if (dup)
        rc = fail(c, name, "duplicate step name '%s' (first defined at %d:%d)", show(c, name->str),
                  aux[first].name_node->line, aux[first].name_node->col);
    st->name = xstrdup(name->str);
    if (!dup)
        names_add(c, idx);
    a->name_node = (node_t *)name;

    for (size_t i = 0; i < map_len(m); i++) {
        const node_t *k = map_key(m, i), *v = map_val(m, i);
        const char *key = k->str;
        uint64_t u;
        if (!strcmp(key, "name")) {
            continue;
        } else if (!strcmp(key, "command")) {
            if (v->type != N_SEQ || v->nkids == 0) {
                rc = fail(c, v, "'command' must be a non-empty list of strings (an argv)");
                continue;
            }
            bool strs = true;
            for (size_t j = 0; j < v->nkids && strs; j++) {
                if (v->kids[j]->type != N_SCALAR || is_null(v->kids[j]))
                    strs = !(rc = fail(c, v->kids[j], "'command' items must be strings"));
            }
            if (!strs)
                continue;
            if (script) {
                rc = fail(c, k, "step '%s' has both 'command' and 'script'; use one",
                          show(c, st->name));
                continue;
            }
            cmd = v;
        } else if (!strcmp(key, "script")) {
            if (want_str(c, v, "script") < 0) {
                rc = -EINVAL;
                continue;
            }
            if (cmd) {
                rc = fail(c, k, "step '%s' has both 'command' and 'script'; use one",
                          show(c, st->name));
                continue;
            }
            script = v;
        } else if (!strcmp(key, "needs")) {
            bool ok = v->type == N_SEQ;
            for (size_t j = 0; ok && j < v->nkids; j++)
                ok = v->kids[j]->type == N_SCALAR && !is_null(v->kids[j]);
            if (!ok) {
                rc = fail(c, v, "'needs' must be a list of step names");
                a->needs_failed = true; /* its ancestors are unknown */
                continue;
            }
            a->needs_node = (node_t *)v;
        } else if (is_setting_key(key)) {
            if (parse_setting(c, k, v, &own) < 0)
                rc = -EINVAL;
        } else if (!strcmp(key, "inputs")) {
            if (parse_inputs(c, v, st, a) < 0)
                rc = -EINVAL;
        } else if (!strcmp(key, "outputs")) {
            if (parse_outputs(c, v, st, a) < 0)
                rc = -EINVAL;
        } else if (!strcmp(key, "when")) {
            char e[256];
            if (want_str(c, v, "when") < 0 || expand(c, v, &st->when) < 0) {
                rc = -EINVAL;
                continue;
            }
            /* syntax now, in file order; references once all steps are known */
            if (expr_check(st->when, NULL, NULL, e, sizeof e) < 0) {
                rc = fail(c, v, "bad when expression: %s", e);
                continue;
            }
            a->when = v;
        } else if (!strcmp(key, "for_each")) {
            if (parse_for_each(c, v, st, a) < 0)
                rc = -EINVAL;
        } else if (is_trigger_key(key)) {
            if (parse_trigger_key(c, k, v, st, a) < 0)
                rc = -EINVAL;
        } else if (!strcmp(key, "parallelism")) {
            if (want_uint(c, v, "parallelism", 1, SPEC_MAX_PARALLEL, &u) < 0) {
                rc = -EINVAL;
                continue;
            }
            st->parallelism = (uint32_t)u;
            par_key = k;
        } else if (!strcmp(key, "skip_on_exit_code")) {
            if (parse_skip_codes(c, v, st) < 0)
                rc = -EINVAL;
        } else if (!strcmp(key, "suspend")) {
            if (parse_suspend(c, v, st) < 0)
                rc = -EINVAL;
        } else if (!strcmp(key, "with")) {
            rc = fail(c, k,
                      "step '%s' has 'with' but no 'uses' ('with' gives a template's "
                      "input params)",
                      show(c, st->name));
        } else {
            rc = unknown_step_key(c, k, st->name);
        }
    }
    if (st->suspend && check_gate(c, m, st) < 0)
        rc = -EINVAL;
    if (!cmd && !script && !st->suspend && !has_argv_key(m) && !a->group) {
        rc = fail(c, m, "step '%s' needs a 'command' (an argv list) or a 'script'",
                  show(c, st->name));
        goto cleanup;
    }
    if (par_key && !st->fan_out && !a->for_each)
        rc = fail(c, par_key,
                  "parallelism without for_each (it bounds how many items of a fan-out run at "
                  "once)");
    if (!cmd && !script && !st->suspend && !a->group)
        goto cleanup; /* its command or script was in error */
    a->cmd = cmd;
    a->script = script;

    /* argv */
    if (cmd) {
        st->n_argv = cmd->nkids;
        st->argv = xcalloc(st->n_argv, sizeof *st->argv);
        for (size_t j = 0; j < cmd->nkids; j++) {
            if ((rc = expand(c, cmd->kids[j], &st->argv[j])) < 0 ||
                (rc = charge(c, cmd->kids[j], strlen(st->argv[j]) + 1)) < 0)
                goto cleanup;
        }
    } else if (script) {
        st->n_argv = 3;
        st->argv = xcalloc(3, sizeof *st->argv);
        st->argv[0] = xstrdup("/bin/sh");
        st->argv[1] = xstrdup("-ec");
        if ((rc = expand(c, script, &st->argv[2])) < 0 ||
            (rc = charge(c, script, strlen(st->argv[2]) + 1)) < 0)
            goto cleanup;
    }

    /* merge: step over defaults over built-ins */
#define PICK(bit, field, builtin)                                                                  \
    ((own.has & (bit)) ? own.field : (d->has & (bit)) ? d->field : (builtin))
    st->resources->cpu_milli = PICK(HAS_CPU, cpu_milli, SPEC_DEFAULT_CPU_MILLI);
    st->resources->memory_bytes = PICK(HAS_MEM, memory_bytes, 0);
    st->resources->gpus = PICK(HAS_GPU, gpus, 0);
    st->retries->limit = PICK(HAS_LIMIT, retries.limit, 0);
    st->retries->backoff_ms = PICK(HAS_BACKOFF, retries.backoff_ms, SPEC_DEFAULT_BACKOFF_MS);
    st->retries->factor = PICK(HAS_FACTOR, retries.factor, SPEC_DEFAULT_FACTOR);
    st->retries->max_backoff_ms =
        PICK(HAS_MAXB, retries.max_backoff_ms, SPEC_DEFAULT_MAX_BACKOFF_MS);
    st->retries->max_duration_ms = PICK(HAS_RMAXD, retries.max_duration_ms, 0);
    if (PICK(HAS_RWHEN, retry_when, NULL))
        st->retries->when = xstrdup(PICK(HAS_RWHEN, retry_when, NULL));
    st->timeout_ms = PICK(HAS_TIMEOUT, timeout_ms, 0);
    st->max_preemptions = PICK(HAS_MAXP, max_preemptions, SPEC_DEFAULT_MAX_PREEMPTIONS);
    st->cache = PICK(HAS_CACHE, cache, true);
    st->checkpoint = PICK(HAS_CKPT, checkpoint, false);
    st->checkpoint_min_interval_ms = PICK(HAS_CKPT, checkpoint_min_interval_ms, 0);
    st->checkpoint_keep = PICK(HAS_CKPT, checkpoint_keep, SPEC_DEFAULT_CHECKPOINT_KEEP);
    st->preempt_signal = PICK(HAS_SIGNAL, preempt_signal, SIGTERM);
    st->preempt_grace_ms = PICK(HAS_GRACE, preempt_grace_ms, SPEC_DEFAULT_GRACE_MS);
    st->fallback_after = PICK(HAS_FALLBACK, fallback_after, SPEC_DEFAULT_FALLBACK_AFTER);
    /* A step that checkpoints loses little on a spot node: it prefers
     * them; one that does not prefers on-demand nodes. */
    st->spot =
        PICK(HAS_SPOT, spot,
             st->checkpoint ? DROVER__SPOT_POLICY__SPOT_PREFER : DROVER__SPOT_POLICY__SPOT_AVOID);
    if (st->spot == DROVER__SPOT_POLICY__SPOT_REQUIRE &&
        (rc = spot_fallback(c, st, PICK(HAS_SPOT, spot_node, NULL),
                            PICK(HAS_FALLBACK, fallback_node, NULL), !(own.has & HAS_SPOT),
                            !(own.has & HAS_FALLBACK))) < 0)
        goto cleanup;
#undef PICK
    if (st->suspend)
        st->cache = false; /* a decision, never a result to reuse */
    const char *image = own.image ? own.image : d->image;
    if (image && *image && !st->suspend) /* "" (e.g. an empty param) means: run as a process */
        st->image = xstrdup(image);
    /* templated settings: the text goes with the value PICK chose */
    static const unsigned tbits[SPEC_TMPL_N] = {HAS_TIMEOUT, 0,       HAS_CPU,
                                                HAS_MEM,     HAS_GPU, HAS_LIMIT};
    for (int k = 0; k < SPEC_TMPL_N; k++) {
        bool mine = k == SPEC_TMPL_IMAGE ? own.image != NULL : (own.has & tbits[k]) != 0;
        bool dflt = k == SPEC_TMPL_IMAGE ? d->image != NULL : (d->has & tbits[k]) != 0;
        tmpl_merge(mine ? &own : dflt ? d : NULL, (spec_tmpl_key_t)k, !mine, st, a);
    }
    /* env and labels: defaults first, the step's own keys replace theirs;
     * each env value remembers its source scalar for check_flow */
    const spec_kv_t *lists[4] = {d->env, own.env, d->labels, own.labels};
    const node_t *const *srcs[2] = {d->env_nodes, own.env_nodes};
    size_t counts[4] = {d->env_count, own.env_count, d->label_count, own.label_count};
    if (d->env_count + own.env_count)
        a->env_src = xcalloc(d->env_count + own.env_count, sizeof *a->env_src);
    for (int l = 0; l < 4; l++) {
        spec_kv_t **dst = &kvs[l / 2];
        size_t *n = &nkv[l / 2];
        size_t inherited = *n; /* own keys are unique: only these can clash */
        for (size_t j = 0; j < counts[l]; j++) {
            const spec_kv_t *e = &lists[l][j];
            if ((rc = charge(c, m, strlen(e->key) + strlen(e->value) + 2)) < 0)
                goto cleanup;
            size_t at = kv_set(dst, &inherited, n, xstrdup(e->key), xstrdup(e->value));
            if (l < 2)
                a->env_src[at] = (env_src_t){srcs[l][j], l == 0};
        }
    }
    st->env = kv_msgs(kvs[0], nkv[0]);
    st->n_env = nkv[0];
    st->labels = kv_msgs(kvs[1], nkv[1]);
    st->n_labels = nkv[1];
    kvs[0] = kvs[1] = NULL;
    nkv[0] = nkv[1] = 0;
cleanup:
    kvs_free(kvs[0], nkv[0]);
    kvs_free(kvs[1], nkv[1]);
    settings_free(&own);
    return rc < 0 || c->fail_calls != fails ? -EINVAL : 0;
}
