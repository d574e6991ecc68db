/* spec — see spec.h.
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
 * Errors: the first real error stops the walk and is reported. Keys that
 * later releases implement are shape-checked and their first position is
 * remembered; only when the whole document is otherwise valid is that
 * "not implemented yet" reported, so real mistakes always win.
 *
 * Merging: a step's settings override `defaults:` field by field
 * (resources.cpu, retries.backoff, ...) and key by key (env, labels);
 * what neither says comes from the SPEC_DEFAULT_* macros.
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
 * json_parse_list. Run-time templates cannot appear inside items: nothing
 * would expand them. A map {range: END | [START, END] | [START, END, STEP]}
 * is a range, as Python's range(): int64 numbers (a plain integer, or a
 * string of {{params.NAME}} that makes one), stored as three numbers, not
 * items; droverd makes the decimal strings when the step runs. Its count
 * is bounded by the run-time fan-out limit (lim.max_range_items), not the
 * literal list's, since it costs no spec bytes.
 *
 * Quantities: memory may carry a decimal fraction only with a unit suffix
 * ("1.5Gi"); the result is rounded up to a whole byte, as Kubernetes does.
 * cpu takes at most millicore precision ("0.0005" is refused). Durations
 * are whole numbers with units h, m, s, ms, each at most once and largest
 * first ("1h30m"); a bare number is seconds.
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
#include "spec.h"

#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "expr.h"
#include "json.h"
#include "strbuf.h"
#include "util.h"

#define SPEC_MAX_TEXT       (1024u * 1024u) /* bytes of YAML */
#define SPEC_MAX_STEPS      10000u          /* steps + finally */
#define SPEC_MAX_ITEMS      100000u         /* for_each items of one step */
#define SPEC_MAX_RANGE      1000000u        /* items of a for_each range (droverd's --max-items) */
#define SPEC_MAX_PARAMS     1000u
#define SPEC_MAX_NAME       63u
#define SPEC_MAX_PARAM_VAL  (64u * 1024u)
#define SPEC_MAX_EXPANDED   (1024u * 1024u)       /* one string after templates */
#define SPEC_MAX_EXPAND_ALL (16u * 1024u * 1024u) /* all strings together */
#define SPEC_MAX_DEPTH      32
#define SPEC_MAX_NODES      200000u
#define SPEC_MAX_GPUS       64u
#define SPEC_MAX_RETRIES    100u
#define SPEC_MAX_COUNT      1000u /* keep, max_preemptions, fallback_after */
#define SPEC_MAX_PARALLEL   10000u
#define SPEC_MAX_LABEL_KEY  63u
#define SPEC_MAX_LABEL_VAL  255u
#define SPEC_MAX_ENV        1000u /* entries in one env map */
#define SPEC_MAX_LABELS     64u   /* entries in one labels map */
/* argv, env, labels and items of all steps together, defaults' copies
 * included */
#define SPEC_MAX_RESULT (64u * 1024u * 1024u)

/* ---- the YAML tree ---- */

typedef enum { N_SCALAR, N_SEQ, N_MAP } ntype_t;

typedef struct node {
    ntype_t type;
    int line, col;
    bool plain;         /* scalar written without quotes (so "" and ~ mean null) */
    char *str;          /* scalar: NUL-terminated value */
    size_t len;         /* scalar: length of str */
    struct node **kids; /* seq: items; map: key, value, key, value... */
    size_t nkids, cap;
} node_t;

static void node_free(node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

static size_t map_len(const node_t *m)
{
    return m->nkids / 2;
}

static node_t *map_key(const node_t *m, size_t i)
{
    return m->kids[2 * i];
}

static node_t *map_val(const node_t *m, size_t i)
{
    return m->kids[2 * i + 1];
}

static bool is_null(const node_t *n)
{
    return n->type == N_SCALAR && n->plain &&
           (n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
            !strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

/* ---- parse context and messages ---- */

/* Where an env value of a step came from (for rescanning its templates). */
typedef struct {
    const node_t *node;
    bool inherited; /* from defaults: */
} env_src_t;

/* Per-step parse state kept until the data flow is checked. */
typedef struct {
    node_t *name_node;  /* the step's name value */
    node_t *needs_node; /* the step's needs list, or NULL */
    bool is_finally;
    const node_t *cmd, *script; /* sources of argv */
    env_src_t *env_src;         /* parallel to the step's env */
    const node_t *when;         /* the when value, or NULL */
    const node_t *for_each;     /* the for_each value, or NULL */
    const node_t **input_src;   /* parallel to inputs: each source scalar */
    char **arts_sorted;         /* out_artifacts, sorted (pointers into the step) */
    char **params_sorted;       /* out_params, sorted */
} step_aux_t;

typedef struct {
    const char *file;
    char *err;
    size_t errlen;
    spec_limits_t lim;
    bool failed;
    bool over_limit;   /* the failure is a limit (fail_limit) */
    char show[4][112]; /* display copies of user strings for messages */
    int show_i;
    size_t nodes;
    size_t expanded; /* bytes produced by template expansion so far */
    size_t result;   /* bytes of argv, env and labels in the result so far */
    const spec_kv_t *params;
    size_t param_count;
    /* step names: open addressing, slot = index + 1, 0 = empty */
    const spec_step_t *steps;
    size_t *names;
    size_t names_cap; /* a power of two, at least twice the step count */
    /* the first not-yet-implemented feature seen, reported at the end */
    bool ni_set;
    int ni_line, ni_col;
    char *ni_what;
} ctx_t;

/* A user string made safe for a one-line message: control characters
 * escaped, long strings shortened with "...". Display only. */
static const char *show(ctx_t *c, const char *s)
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

static int vfail_at(ctx_t *c, int line, int col, const char *fmt, va_list ap)
{
    if (c->failed)
        return -EINVAL;
    c->failed = true;
    if (!c->err || c->errlen == 0)
        return -EINVAL;
    int n = snprintf(c->err, c->errlen, "%s:%d:%d: ", c->file, line, col);
    if (n >= 0 && (size_t)n < c->errlen)
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    return -EINVAL;
}

static int fail_at(ctx_t *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(ctx_t *c, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_at(c, line, col, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail(ctx_t *c, const node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx_t *c, const node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_at(c, n ? n->line : 1, n ? n->col : 1, fmt, ap);
    va_end(ap);
    return rc;
}

/* A failure because the spec is beyond one of droverd's limits: the same
 * message, and spec_parse_limited returns -E2BIG. */
static int fail_limit(ctx_t *c, const node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_limit(ctx_t *c, const node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!c->failed)
        c->over_limit = true;
    int rc = vfail_at(c, n ? n->line : 1, n ? n->col : 1, fmt, ap);
    va_end(ap);
    return rc;
}

/* Remember a not-yet-implemented feature; the earliest in the file wins. */
static void not_impl(ctx_t *c, const node_t *n, const char *what, const char *feature)
{
    if (c->ni_set && (c->ni_line < n->line || (c->ni_line == n->line && c->ni_col <= n->col)))
        return;
    free(c->ni_what);
    c->ni_what = xasprintf("'%s' (%s)", show(c, what), feature);
    c->ni_set = true;
    c->ni_line = n->line;
    c->ni_col = n->col;
}

/* Line and column (1-based) of byte offset off in text. */
static void offset_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, cl = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            cl = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            cl++;
        }
    }
    *line = l;
    *col = cl;
}

/* True when text holds only blank lines and comments (libyaml itself
 * rejects some of these, e.g. a tab on an otherwise empty line). */
static bool blank_text(const char *text, size_t len)
{
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        i = 3; /* UTF-8 byte order mark */
    while (i < len) {
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
            i++;
        if (i < len && text[i] == '#') {
            while (i < len && text[i] != '\n')
                i++;
        }
        if (i < len && text[i] != '\n')
            return false;
        i++;
    }
    return true;
}

/* ---- building the tree from libyaml events ---- */

static int cmp_key(const void *a, const void *b)
{
    const node_t *x = *(node_t *const *)a, *y = *(node_t *const *)b;
    int r = strcmp(x->str, y->str);
    if (r)
        return r;
    /* same text: file order, so the later one is reported */
    return (x->line != y->line) ? (x->line < y->line ? -1 : 1)
                                : (x->col < y->col ? -1 : (x->col > y->col));
}

/* Every key of a finished mapping is a scalar and appears once. */
static int check_map_keys(ctx_t *c, node_t *m)
{
    size_t n = map_len(m);
    node_t **keys = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (map_key(m, i)->type != N_SCALAR)
            return fail(c, map_key(m, i), "mapping keys must be plain strings");
    }
    if (n < 2)
        return 0;
    keys = xmalloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++)
        keys[i] = map_key(m, i);
    qsort(keys, n, sizeof *keys, cmp_key);
    const node_t *dup = NULL;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(keys[i - 1]->str, keys[i]->str))
            continue;
        if (!dup || keys[i]->line < dup->line ||
            (keys[i]->line == dup->line && keys[i]->col < dup->col))
            dup = keys[i];
    }
    if (dup)
        rc = fail(c, dup, "duplicate key '%s'", show(c, dup->str));
    free(keys);
    return rc;
}

static void node_add(node_t *parent, node_t *kid)
{
    if (parent->nkids == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 4;
        parent->kids = xrealloc(parent->kids, parent->cap * sizeof *parent->kids);
    }
    parent->kids[parent->nkids++] = kid;
}

/* Parse text into *root (NULL for an empty stream). 0 or -EINVAL. */
static int load_tree(ctx_t *c, const char *text, size_t len, node_t **root)
{
    yaml_parser_t p;
    yaml_event_t ev;
    node_t *stack[SPEC_MAX_DEPTH];
    int depth = 0, docs = 0, rc = 0;
    bool have_event = false, done = false;
    node_t *top = NULL;

    if (!yaml_parser_initialize(&p))
        return fail_at(c, 1, 1, "cannot start the YAML parser (out of memory)");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            int line = (int)p.problem_mark.line + 1, col = (int)p.problem_mark.column + 1;
            if (p.error == YAML_READER_ERROR)
                offset_pos(text, len, p.problem_offset, &line, &col);
            rc = fail_at(c, line, col, "not YAML: %s", p.problem ? p.problem : "parse error");
            goto cleanup;
        }
        have_event = true;
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        node_t *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                rc = fail_at(c, line, col, "only one YAML document is allowed in a spec");
                goto cleanup;
            }
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_at(c, line, col, "aliases are not allowed (*%s)",
                         show(c, (const char *)ev.data.alias.anchor));
            goto cleanup;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++c->nodes > SPEC_MAX_NODES) {
                rc = fail_at(c, line, col, "spec is too large (more than %u YAML nodes)",
                             SPEC_MAX_NODES);
                goto cleanup;
            }
            n = xcalloc(1, sizeof *n);
            n->line = line;
            n->col = col;
            if (ev.type == YAML_SCALAR_EVENT) {
                n->type = N_SCALAR;
                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->len = ev.data.scalar.length;
                n->str = xstrndup((const char *)ev.data.scalar.value, n->len);
                if (memchr(ev.data.scalar.value, '\0', n->len)) {
                    node_free(n);
                    rc = fail_at(c, line, col, "strings may not contain NUL characters");
                    goto cleanup;
                }
            } else {
                n->type = ev.type == YAML_MAPPING_START_EVENT ? N_MAP : N_SEQ;
            }
            if (depth > 0)
                node_add(stack[depth - 1], n);
            else
                top = n; /* one document has one root */
            if (n->type != N_SCALAR) {
                if (depth == SPEC_MAX_DEPTH) {
                    rc = fail_at(c, line, col, "nesting is deeper than %d levels", SPEC_MAX_DEPTH);
                    goto cleanup;
                }
                stack[depth++] = n;
            }
            break;
        case YAML_MAPPING_END_EVENT:
            if (depth > 0 && check_map_keys(c, stack[depth - 1]) < 0) {
                rc = -EINVAL;
                goto cleanup;
            }
            depth--;
            break;
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        have_event = false;
    }
    *root = top;
    top = NULL;
cleanup:
    if (have_event)
        yaml_event_delete(&ev);
    node_free(top);
    yaml_parser_delete(&p);
    return rc;
}

/* ---- scalar helpers ---- */

/* ASCII only, whatever the process locale says. */
static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_alnum(char ch)
{
    return is_alpha(ch) || (ch >= '0' && ch <= '9');
}

static bool valid_name(const char *s)
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

static bool valid_env_name(const char *s)
{
    if (!is_alpha(*s) && *s != '_')
        return false;
    for (const char *p = s; *p; p++) {
        if (!is_alnum(*p) && *p != '_')
            return false;
    }
    return true;
}

static bool valid_label_key(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SPEC_MAX_LABEL_KEY)
        return false;
    for (const char *p = s; *p; p++) {
        if (!is_alnum(*p) && !strchr("_.-/", *p))
            return false;
    }
    return true;
}

/* Decimal digits only, at most max. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
            return -EINVAL;
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* A number >= 1 written in decimal ("2", "1.5", "1e1"). */
static int parse_factor(const char *s, double *out)
{
    if (*s < '0' || *s > '9' || strspn(s, "0123456789.eE+-") != strlen(s))
        return -EINVAL;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || errno || !isfinite(d) || d < 1.0 || d > 1000.0)
        return -EINVAL;
    *out = d;
    return 0;
}

/* A non-null scalar, or an error naming what it should be. */
static int want_str(ctx_t *c, const node_t *v, const char *what)
{
    if (v->type != N_SCALAR || is_null(v))
        return fail(c, v, "'%s' must be a string", what);
    return 0;
}

static int want_map(ctx_t *c, const node_t *v, const char *what, const char *keys)
{
    if (v->type != N_MAP)
        return fail(c, v, "'%s' must be a map (%s)", what, keys);
    return 0;
}

static int want_uint(ctx_t *c, const node_t *v, const char *what, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    if (v->type != N_SCALAR || parse_uint(v->str, max, out) < 0 || *out < min)
        return fail(c, v, "'%s' must be a whole number from %llu to %llu", what,
                    (unsigned long long)min, (unsigned long long)max);
    return 0;
}

static int want_duration(ctx_t *c, const node_t *v, const char *what, uint64_t *out)
{
    if (v->type != N_SCALAR || spec_parse_duration(v->str, out) < 0)
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
static void names_init(ctx_t *c, const spec_step_t *steps, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    c->steps = steps;
    c->names = xcalloc(cap, sizeof *c->names);
    c->names_cap = cap;
}

/* The index of the step named s[0..n), or false. */
static bool names_find(const ctx_t *c, const char *s, size_t n, size_t *idx)
{
    size_t mask = c->names_cap - 1;
    for (size_t i = name_hash(s, n) & mask; c->names[i]; i = (i + 1) & mask) {
        const char *nm = c->steps[c->names[i] - 1].name;
        if (strlen(nm) == n && !memcmp(nm, s, n)) {
            *idx = c->names[i] - 1;
            return true;
        }
    }
    return false;
}

/* Add step idx, whose name is not in the table yet. */
static void names_add(ctx_t *c, size_t idx)
{
    const char *nm = c->steps[idx].name;
    size_t mask = c->names_cap - 1, i = name_hash(nm, strlen(nm)) & mask;
    while (c->names[i])
        i = (i + 1) & mask;
    c->names[i] = idx + 1;
}

/* ---- templates ---- */

static const spec_kv_t *find_param(ctx_t *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->param_count; i++) {
        if (strlen(c->params[i].key) == len && !memcmp(c->params[i].key, name, len))
            return &c->params[i];
    }
    return NULL;
}

typedef enum {
    EXP_ALL,    /* run-time templates are kept as written */
    EXP_PARAMS, /* only {{params.NAME}} may appear (for_each items) */
    EXP_RANGE,  /* the same, in the numbers of a for_each range */
} exp_mode_t;

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
static int expand_mode(ctx_t *c, const node_t *v, exp_mode_t mode, char **out, size_t *kept)
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

static int expand(ctx_t *c, const node_t *v, char **out)
{
    return expand_mode(c, v, EXP_ALL, out, NULL);
}

/* ---- inheritable settings (defaults: and the same keys on a step) ---- */

enum {
    HAS_CPU = 1 << 0,
    HAS_MEM = 1 << 1,
    HAS_GPU = 1 << 2,
    HAS_LIMIT = 1 << 3,
    HAS_BACKOFF = 1 << 4,
    HAS_FACTOR = 1 << 5,
    HAS_MAXB = 1 << 6,
    HAS_TIMEOUT = 1 << 7,
    HAS_MAXP = 1 << 8,
    HAS_CACHE = 1 << 9,
    HAS_SPOT = 1 << 10,
    HAS_CKPT = 1 << 11,
    HAS_SIGNAL = 1 << 12,
    HAS_GRACE = 1 << 13,
    HAS_FALLBACK = 1 << 14,
};

typedef struct {
    unsigned has;
    uint32_t cpu_milli;
    uint64_t memory_bytes;
    uint32_t gpus;
    spec_retry_t retries;
    uint64_t timeout_ms;
    uint32_t max_preemptions;
    bool cache;
    spec_spot_t spot;
    bool checkpoint; /* checkpoint: given and not false */
    uint64_t checkpoint_min_interval_ms;
    uint32_t checkpoint_keep;
    int preempt_signal;
    uint64_t preempt_grace_ms;
    uint32_t fallback_after;
    spec_kv_t *env;
    const node_t **env_nodes; /* parallel to env: each value's scalar */
    size_t env_count;
    spec_kv_t *labels;
    size_t label_count;
    char *image; /* NULL = not set here */
} settings_t;

static void kvs_free(spec_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void settings_free(settings_t *s)
{
    kvs_free(s->env, s->env_count);
    free(s->env_nodes);
    kvs_free(s->labels, s->label_count);
    free(s->image);
    memset(s, 0, sizeof *s);
}

static bool is_setting_key(const char *k)
{
    static const char *keys[] = {"retries",    "timeout",    "resources", "placement", "env",
                                 "checkpoint", "preemption", "cache",     "image"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!strcmp(k, keys[i]))
            return true;
    }
    return false;
}

static int parse_resources(ctx_t *c, const node_t *v, settings_t *s)
{
    if (want_map(c, v, "resources", "cpu, memory, gpu") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        const char *txt = x->type == N_SCALAR ? show(c, x->str) : "(not a string)";
        uint64_t u;
        if (!strcmp(k->str, "cpu")) {
            if (x->type != N_SCALAR || spec_parse_cpu(x->str, &s->cpu_milli) < 0)
                return fail(c, x, "bad quantity '%s' for resources.cpu (e.g. 2, 0.5, 500m)", txt);
            s->has |= HAS_CPU;
        } else if (!strcmp(k->str, "memory")) {
            if (x->type != N_SCALAR || spec_parse_memory(x->str, &s->memory_bytes) < 0)
                return fail(c, x, "bad quantity '%s' for resources.memory (e.g. 512Mi, 2Gi, 1G)",
                            txt);
            s->has |= HAS_MEM;
        } else if (!strcmp(k->str, "gpu")) {
            if (x->type != N_SCALAR || parse_uint(x->str, SPEC_MAX_GPUS, &u) < 0)
                return fail(c, x, "bad quantity '%s' for resources.gpu (a whole number 0-%u)", txt,
                            SPEC_MAX_GPUS);
            s->gpus = (uint32_t)u;
            s->has |= HAS_GPU;
        } else {
            return fail(c, k, "unknown key '%s' in resources (cpu, memory, gpu)", show(c, k->str));
        }
    }
    return 0;
}

static int parse_retries(ctx_t *c, const node_t *v, settings_t *s)
{
    uint64_t u;
    if (v->type == N_SCALAR && !is_null(v)) {
        if (want_uint(c, v, "retries", 0, SPEC_MAX_RETRIES, &u) < 0)
            return -EINVAL;
        s->retries.limit = (uint32_t)u;
        s->has |= HAS_LIMIT;
        return 0;
    }
    if (v->type != N_MAP)
        return fail(c, v,
                    "'retries' must be a number or a map (limit, backoff, factor, "
                    "max_backoff)");
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "limit")) {
            if (want_uint(c, x, "retries.limit", 0, SPEC_MAX_RETRIES, &u) < 0)
                return -EINVAL;
            s->retries.limit = (uint32_t)u;
            s->has |= HAS_LIMIT;
        } else if (!strcmp(k->str, "backoff")) {
            if (want_duration(c, x, "retries.backoff", &s->retries.backoff_ms) < 0)
                return -EINVAL;
            s->has |= HAS_BACKOFF;
        } else if (!strcmp(k->str, "factor")) {
            if (x->type != N_SCALAR || parse_factor(x->str, &s->retries.factor) < 0)
                return fail(c, x, "'retries.factor' must be a number from 1 to 1000");
            s->has |= HAS_FACTOR;
        } else if (!strcmp(k->str, "max_backoff")) {
            if (want_duration(c, x, "retries.max_backoff", &s->retries.max_backoff_ms) < 0)
                return -EINVAL;
            s->has |= HAS_MAXB;
        } else {
            return fail(c, k, "unknown key '%s' in retries (limit, backoff, factor, max_backoff)",
                        show(c, k->str));
        }
    }
    return 0;
}

/* Append to a kv list whose keys are known to be new. Takes ownership. */
static void kv_append(spec_kv_t **kv, size_t *n, char *key, char *value)
{
    *kv = xrealloc(*kv, (*n + 1) * sizeof **kv);
    (*kv)[*n].key = key;
    (*kv)[*n].value = value;
    (*n)++;
}

/* Replace key among the first *search entries of a kv list, or append it.
 * Takes ownership of key and value. Returns the entry's index. */
static size_t kv_set(spec_kv_t **kv, size_t *search, size_t *n, char *key, char *value)
{
    for (size_t i = 0; i < *search; i++) {
        if (!strcmp((*kv)[i].key, key)) {
            free(key);
            free((*kv)[i].value);
            (*kv)[i].value = value;
            return i;
        }
    }
    kv_append(kv, n, key, value);
    return *n - 1;
}

/* Count n more bytes against the size of the whole result. */
static int charge(ctx_t *c, const node_t *at, size_t n)
{
    if (n > SPEC_MAX_RESULT - c->result)
        return fail(c, at,
                    "spec is too large: commands, env and labels of all steps exceed %u "
                    "MiB",
                    SPEC_MAX_RESULT / (1024u * 1024u));
    c->result += n;
    return 0;
}

static int parse_env(ctx_t *c, const node_t *v, settings_t *s)
{
    if (v->type != N_MAP)
        return fail(c, v, "'env' must be a map of NAME: value");
    if (map_len(v) > SPEC_MAX_ENV)
        return fail(c, v, "too many env entries (%zu; at most %u)", map_len(v), SPEC_MAX_ENV);
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        char *val = NULL;
        if (!valid_env_name(k->str))
            return fail(c, k,
                        "bad env name '%s' (letters, digits and '_', not starting with a "
                        "digit)",
                        show(c, k->str));
        if (x->type != N_SCALAR || is_null(x))
            return fail(c, x, "env '%s' must be a string (use \"\" for empty)", show(c, k->str));
        if (expand(c, x, &val) < 0)
            return -EINVAL;
        /* keys of one map are unique (checked when it was read) */
        s->env_nodes = xrealloc(s->env_nodes, (s->env_count + 1) * sizeof *s->env_nodes);
        s->env_nodes[s->env_count] = x;
        kv_append(&s->env, &s->env_count, xstrdup(k->str), val);
    }
    return 0;
}

static int parse_placement(ctx_t *c, const node_t *v, settings_t *s)
{
    static const char *spots[] = {"prefer", "avoid", "require", "any"};
    if (want_map(c, v, "placement", "labels, spot") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "labels")) {
            if (x->type != N_MAP)
                return fail(c, x, "'placement.labels' must be a map of key: value");
            if (map_len(x) > c->lim.max_labels)
                return fail_limit(c, x, "too many labels (%zu; at most %zu)", map_len(x),
                                  c->lim.max_labels);
            for (size_t j = 0; j < map_len(x); j++) {
                const node_t *lk = map_key(x, j), *lv = map_val(x, j);
                if (!valid_label_key(lk->str))
                    return fail(c, lk,
                                "bad label key '%s' (letters, digits, '_', '.', '-', "
                                "'/'; at most %u)",
                                show(c, lk->str), SPEC_MAX_LABEL_KEY);
                if (lv->type != N_SCALAR || is_null(lv) || lv->len > SPEC_MAX_LABEL_VAL)
                    return fail(c, lv, "label '%s' must be a string of at most %u bytes",
                                show(c, lk->str), SPEC_MAX_LABEL_VAL);
                kv_append(&s->labels, &s->label_count, xstrdup(lk->str), xstrdup(lv->str));
            }
        } else if (!strcmp(k->str, "spot")) {
            bool ok = false;
            for (size_t j = 0; x->type == N_SCALAR && j < 4; j++)
                ok = ok || !strcmp(x->str, spots[j]);
            if (!ok)
                return fail(c, x, "'placement.spot' must be one of prefer, avoid, require, any");
            for (size_t j = 0; j < 4; j++) {
                if (!strcmp(x->str, spots[j]))
                    s->spot = (spec_spot_t)(SPEC_SPOT_PREFER + j);
            }
            s->has |= HAS_SPOT;
        } else {
            return fail(c, k, "unknown key '%s' in placement (labels, spot)", show(c, k->str));
        }
    }
    return 0;
}

/* checkpoint: true | false | {min_interval, keep}. The whole block
 * replaces the one in defaults. */
static int parse_checkpoint(ctx_t *c, const node_t *v, settings_t *s)
{
    uint64_t u;
    s->has |= HAS_CKPT;
    s->checkpoint = true;
    s->checkpoint_min_interval_ms = 0;
    s->checkpoint_keep = SPEC_DEFAULT_CHECKPOINT_KEEP;
    if (v->type == N_SCALAR && !is_null(v)) {
        if (parse_bool(v->str, &s->checkpoint) < 0)
            return fail(c, v, "'checkpoint' must be true, false or a map (min_interval, keep)");
        return 0;
    }
    if (is_null(v))
        return 0;
    if (want_map(c, v, "checkpoint", "min_interval, keep") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *ck = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(ck->str, "min_interval")) {
            if (want_duration(c, x, "checkpoint.min_interval", &s->checkpoint_min_interval_ms) < 0)
                return -EINVAL;
        } else if (!strcmp(ck->str, "keep")) {
            if (want_uint(c, x, "checkpoint.keep", 1, SPEC_MAX_COUNT, &u) < 0)
                return -EINVAL;
            s->checkpoint_keep = (uint32_t)u;
        } else {
            return fail(c, ck, "unknown key '%s' in checkpoint (min_interval, keep)",
                        show(c, ck->str));
        }
    }
    return 0;
}

static int parse_preemption(ctx_t *c, const node_t *v, settings_t *s)
{
    static const char *sigs[] = {"SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGQUIT"};
    static const int signums[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT};
    uint64_t u;
    if (want_map(c, v, "preemption", "signal, grace, max_preemptions, fallback_after") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "signal")) {
            s->preempt_signal = 0;
            for (size_t j = 0; x->type == N_SCALAR && j < sizeof sigs / sizeof sigs[0]; j++) {
                if (!strcmp(x->str, sigs[j]))
                    s->preempt_signal = signums[j];
            }
            if (!s->preempt_signal)
                return fail(c, x,
                            "'preemption.signal' must be one of SIGTERM, SIGINT, SIGUSR1, "
                            "SIGUSR2, SIGHUP, SIGQUIT");
            s->has |= HAS_SIGNAL;
        } else if (!strcmp(k->str, "grace")) {
            if (want_duration(c, x, "preemption.grace", &s->preempt_grace_ms) < 0)
                return -EINVAL;
            s->has |= HAS_GRACE;
        } else if (!strcmp(k->str, "max_preemptions")) {
            if (want_uint(c, x, "preemption.max_preemptions", 0, SPEC_MAX_COUNT, &u) < 0)
                return -EINVAL;
            s->max_preemptions = (uint32_t)u;
            s->has |= HAS_MAXP;
        } else if (!strcmp(k->str, "fallback_after")) {
            if (want_uint(c, x, "preemption.fallback_after", 0, SPEC_MAX_COUNT, &u) < 0)
                return -EINVAL;
            s->fallback_after = (uint32_t)u;
            s->has |= HAS_FALLBACK;
        } else {
            return fail(c, k,
                        "unknown key '%s' in preemption (signal, grace, max_preemptions, "
                        "fallback_after)",
                        show(c, k->str));
        }
    }
    return 0;
}

/* One inheritable key k: v into s. The caller has checked is_setting_key. */
static int parse_setting(ctx_t *c, const node_t *k, const node_t *v, settings_t *s)
{
    const char *key = k->str;
    if (!strcmp(key, "resources"))
        return parse_resources(c, v, s);
    if (!strcmp(key, "retries"))
        return parse_retries(c, v, s);
    if (!strcmp(key, "timeout")) {
        if (want_duration(c, v, "timeout", &s->timeout_ms) < 0)
            return -EINVAL;
        s->has |= HAS_TIMEOUT;
        return 0;
    }
    if (!strcmp(key, "env"))
        return parse_env(c, v, s);
    if (!strcmp(key, "placement"))
        return parse_placement(c, v, s);
    if (!strcmp(key, "checkpoint"))
        return parse_checkpoint(c, v, s);
    if (!strcmp(key, "preemption"))
        return parse_preemption(c, v, s);
    if (!strcmp(key, "image")) {
        free(s->image);
        s->image = NULL;
        if (want_str(c, v, "image") < 0 || expand_mode(c, v, EXP_PARAMS, &s->image, NULL) < 0)
            return -EINVAL;
        return 0;
    }
    /* cache */
    if (v->type != N_SCALAR || parse_bool(v->str, &s->cache) < 0)
        return fail(c, v, "'cache' must be true or false");
    s->has |= HAS_CACHE;
    return 0;
}

/* ---- steps ---- */

/* Output and input names become file names under $DROVER_OUTPUTS and
 * $DROVER_INPUTS: [A-Za-z0-9_.-], 1-63 bytes, not ".", no "..". */
static bool valid_file_name(const char *s)
{
    return valid_name(s) && strcmp(s, ".") && !strstr(s, "..");
}

#define FILE_NAME_RULE "names are 1-63 characters of [A-Za-z0-9_.-] (not '.', no '..')"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sorted array of the pointers names[0..n) (NULL when n is 0). */
static char **sorted_copy(char **names, size_t n)
{
    if (n == 0)
        return NULL;
    char **s = xmalloc(n * sizeof *s);
    memcpy(s, names, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_str);
    return s;
}

/* Whether s[0..len) is among sorted[0..n). */
static bool sorted_has(char *const *sorted, size_t n, const char *s, size_t len)
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
static int parse_outputs(ctx_t *c, const node_t *v, spec_step_t *st, step_aux_t *a)
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
            return fail(c, k, "unknown key '%s' in outputs (artifacts, params)", show(c, k->str));
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
            st->out_artifact_count = x->nkids;
            a->arts_sorted = sorted_copy(dst, x->nkids);
        } else {
            st->out_params = dst;
            st->out_param_count = x->nkids;
            a->params_sorted = sorted_copy(dst, x->nkids);
        }
    }
cleanup:
    free(names);
    return rc;
}

/* inputs: {artifacts: {local: STEP.ARTIFACT}}; the sources are resolved
 * in check_flow, once every step is known. inputs.params is a later
 * release's (shape-checked, noted). */
static int parse_inputs(ctx_t *c, const node_t *v, spec_step_t *st, step_aux_t *a)
{
    if (want_map(c, v, "inputs", "artifacts, params") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (strcmp(k->str, "artifacts") && strcmp(k->str, "params"))
            return fail(c, k, "unknown key '%s' in inputs (artifacts, params)", show(c, k->str));
        if (!strcmp(k->str, "params")) {
            if (x->type != N_MAP)
                return fail(c, x, "'inputs.params' must be a map of name: value");
            for (size_t j = 0; j < map_len(x); j++) {
                if (!valid_name(map_key(x, j)->str))
                    return fail(c, map_key(x, j), "bad name '%s' in 'inputs.params'",
                                show(c, map_key(x, j)->str));
                if (want_str(c, map_val(x, j), "inputs.params value") < 0)
                    return -EINVAL;
            }
            not_impl(c, k, "inputs.params", "input params; use {{steps.STEP.outputs.params.NAME}}");
            continue;
        }
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
            st->inputs[st->input_count].local = xstrdup(lk->str);
            a->input_src[st->input_count++] = src;
        }
    }
    return 0;
}

/* A growing string. */
typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_add_quoted(buf_t *b, const char *s)
{
    char *q = json_quote(s);
    buf_add(b, q, strlen(q));
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
static int item_json(ctx_t *c, const node_t *v, buf_t *b)
{
    if (v->type == N_MAP || v->type == N_SEQ) {
        buf_add(b, v->type == N_MAP ? "{" : "[", 1);
        size_t step = v->type == N_MAP ? 2 : 1;
        for (size_t i = 0; i < v->nkids; i += step) {
            if (i)
                buf_add(b, ",", 1);
            if (v->type == N_MAP) {
                buf_add_quoted(b, v->kids[i]->str);
                buf_add(b, ":", 1);
            }
            if (item_json(c, v->kids[i + step - 1], b) < 0)
                return -EINVAL;
        }
        buf_add(b, v->type == N_MAP ? "}" : "]", 1);
        return 0;
    }
    static const char *lits[][2] = {{"true", "true"},   {"True", "true"},   {"TRUE", "true"},
                                    {"false", "false"}, {"False", "false"}, {"FALSE", "false"}};
    if (v->plain) {
        if (is_null(v)) {
            buf_add(b, "null", 4);
            return 0;
        }
        for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
            if (!strcmp(v->str, lits[i][0])) {
                buf_add(b, lits[i][1], strlen(lits[i][1]));
                return 0;
            }
        }
        if (json_number(v->str)) {
            buf_add(b, v->str, v->len);
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
static int parse_range(ctx_t *c, const node_t *v, spec_step_t *st)
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
static int parse_for_each(ctx_t *c, const node_t *v, spec_step_t *st, step_aux_t *a)
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
                buf_t b = {0};
                if (item_json(c, x, &b) < 0) {
                    free(b.p);
                    return -EINVAL;
                }
                item = b.p;
            }
            st->items[st->item_count++] = item;
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
        if (p.ref.kind != EXPR_REF_STEP) {
            rc = fail(c, v,
                      "'for_each' template must be {{steps.STEP.outputs.params.NAME}}, not '%s'",
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
    rc = json_parse_list(text, strlen(text), c->lim.max_items, &st->items, &st->item_count, jerr,
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
    for (size_t j = 0; j < st->item_count; j++) {
        if ((rc = charge(c, v, strlen(st->items[j]) + 1)) < 0)
            goto cleanup;
    }
cleanup:
    free(text);
    return rc;
}

/* Keys only a step may have, besides the inheritable ones. */
static bool is_step_only_key(const char *k)
{
    static const char *keys[] = {"name",    "command", "script",   "needs",      "inputs",
                                 "outputs", "when",    "for_each", "parallelism"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!strcmp(k, keys[i]))
            return true;
    }
    return false;
}

/* Fill st from step map m: its own keys over defaults d over SPEC_DEFAULT_*.
 * st->name is set first, so callers can free st whatever happens. */
static int parse_step(ctx_t *c, const node_t *m, const settings_t *d, spec_step_t *all, size_t idx,
                      step_aux_t *aux)
{
    spec_step_t *st = &all[idx];
    step_aux_t *a = &aux[idx];
    settings_t own = {0};
    const node_t *cmd = NULL, *script = NULL, *name = NULL, *par_key = NULL;
    int rc = 0;

    if (m->type != N_MAP) {
        rc = fail(c, m, "each step must be a map (name, command or script, needs, ...)");
        goto cleanup;
    }
    st->line = m->line;
    st->col = m->col;
    st->is_finally = a->is_finally;
    for (size_t i = 0; i < map_len(m); i++) {
        if (!strcmp(map_key(m, i)->str, "name"))
            name = map_val(m, i);
    }
    if (!name) {
        rc = fail(c, m, "step has no 'name'");
        goto cleanup;
    }
    if (name->type != N_SCALAR || !valid_name(name->str)) {
        rc = fail(c, name, "bad step name '%s' (letters, digits, '_', '.', '-'; at most %u)",
                  name->type == N_SCALAR ? show(c, name->str) : "(not a string)", SPEC_MAX_NAME);
        goto cleanup;
    }
    size_t first;
    if (names_find(c, name->str, name->len, &first)) {
        rc = fail(c, name, "duplicate step name '%s' (first defined at %d:%d)", show(c, name->str),
                  aux[first].name_node->line, aux[first].name_node->col);
        goto cleanup;
    }
    st->name = xstrdup(name->str);
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
                goto cleanup;
            }
            for (size_t j = 0; j < v->nkids; j++) {
                if (v->kids[j]->type != N_SCALAR || is_null(v->kids[j])) {
                    rc = fail(c, v->kids[j], "'command' items must be strings");
                    goto cleanup;
                }
            }
            if (script) {
                rc = fail(c, k, "step '%s' has both 'command' and 'script'; use one",
                          show(c, st->name));
                goto cleanup;
            }
            cmd = v;
        } else if (!strcmp(key, "script")) {
            if (want_str(c, v, "script") < 0) {
                rc = -EINVAL;
                goto cleanup;
            }
            if (cmd) {
                rc = fail(c, k, "step '%s' has both 'command' and 'script'; use one",
                          show(c, st->name));
                goto cleanup;
            }
            script = v;
        } else if (!strcmp(key, "needs")) {
            bool ok = v->type == N_SEQ;
            for (size_t j = 0; ok && j < v->nkids; j++)
                ok = v->kids[j]->type == N_SCALAR && !is_null(v->kids[j]);
            if (!ok) {
                rc = fail(c, v, "'needs' must be a list of step names");
                goto cleanup;
            }
            a->needs_node = (node_t *)v;
        } else if (is_setting_key(key)) {
            if ((rc = parse_setting(c, k, v, &own)) < 0)
                goto cleanup;
        } else if (!strcmp(key, "inputs")) {
            if ((rc = parse_inputs(c, v, st, a)) < 0)
                goto cleanup;
        } else if (!strcmp(key, "outputs")) {
            if ((rc = parse_outputs(c, v, st, a)) < 0)
                goto cleanup;
        } else if (!strcmp(key, "when")) {
            char e[256];
            if ((rc = want_str(c, v, "when")) < 0 || (rc = expand(c, v, &st->when)) < 0)
                goto cleanup;
            /* syntax now, in file order; references once all steps are known */
            if (expr_check(st->when, NULL, NULL, e, sizeof e) < 0) {
                rc = fail(c, v, "bad when expression: %s", e);
                goto cleanup;
            }
            a->when = v;
        } else if (!strcmp(key, "for_each")) {
            if ((rc = parse_for_each(c, v, st, a)) < 0)
                goto cleanup;
        } else if (!strcmp(key, "parallelism")) {
            if ((rc = want_uint(c, v, "parallelism", 1, SPEC_MAX_PARALLEL, &u)) < 0)
                goto cleanup;
            st->parallelism = (uint32_t)u;
            par_key = k;
        } else {
            rc = fail(c, k, "unknown key '%s' in step '%s'", show(c, key), show(c, st->name));
            goto cleanup;
        }
    }
    if (!cmd && !script) {
        rc = fail(c, m, "step '%s' needs a 'command' (an argv list) or a 'script'",
                  show(c, st->name));
        goto cleanup;
    }
    if (par_key && !st->fan_out) {
        rc = fail(c, par_key,
                  "parallelism without for_each (it bounds how many items of a fan-out run at "
                  "once)");
        goto cleanup;
    }
    a->cmd = cmd;
    a->script = script;

    /* argv */
    if (cmd) {
        st->argc = cmd->nkids;
        st->argv = xcalloc(st->argc + 1, sizeof *st->argv);
        for (size_t j = 0; j < cmd->nkids; j++) {
            if ((rc = expand(c, cmd->kids[j], &st->argv[j])) < 0 ||
                (rc = charge(c, cmd->kids[j], strlen(st->argv[j]) + 1)) < 0)
                goto cleanup;
        }
    } else {
        st->argc = 3;
        st->argv = xcalloc(4, sizeof *st->argv);
        st->argv[0] = xstrdup("/bin/sh");
        st->argv[1] = xstrdup("-ec");
        if ((rc = expand(c, script, &st->argv[2])) < 0 ||
            (rc = charge(c, script, strlen(st->argv[2]) + 1)) < 0)
            goto cleanup;
    }

    /* merge: step over defaults over built-ins */
#define PICK(bit, field, builtin)                                                                  \
    ((own.has & (bit)) ? own.field : (d->has & (bit)) ? d->field : (builtin))
    st->cpu_milli = PICK(HAS_CPU, cpu_milli, SPEC_DEFAULT_CPU_MILLI);
    st->memory_bytes = PICK(HAS_MEM, memory_bytes, 0);
    st->gpus = PICK(HAS_GPU, gpus, 0);
    st->retries.limit = PICK(HAS_LIMIT, retries.limit, 0);
    st->retries.backoff_ms = PICK(HAS_BACKOFF, retries.backoff_ms, SPEC_DEFAULT_BACKOFF_MS);
    st->retries.factor = PICK(HAS_FACTOR, retries.factor, SPEC_DEFAULT_FACTOR);
    st->retries.max_backoff_ms =
        PICK(HAS_MAXB, retries.max_backoff_ms, SPEC_DEFAULT_MAX_BACKOFF_MS);
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
    st->spot = PICK(HAS_SPOT, spot, st->checkpoint ? SPEC_SPOT_PREFER : SPEC_SPOT_AVOID);
#undef PICK
    const char *image = own.image ? own.image : d->image;
    if (image && *image) /* "" (e.g. an empty param) means: run as a process */
        st->image = xstrdup(image);
    /* env and labels: defaults first, the step's own keys replace theirs;
     * each env value remembers its source scalar for check_flow */
    const spec_kv_t *lists[4] = {d->env, own.env, d->labels, own.labels};
    const node_t *const *srcs[2] = {d->env_nodes, own.env_nodes};
    size_t counts[4] = {d->env_count, own.env_count, d->label_count, own.label_count};
    if (d->env_count + own.env_count)
        a->env_src = xcalloc(d->env_count + own.env_count, sizeof *a->env_src);
    for (int l = 0; l < 4; l++) {
        spec_kv_t **dst = l < 2 ? &st->env : &st->labels;
        size_t *n = l < 2 ? &st->env_count : &st->label_count;
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
cleanup:
    settings_free(&own);
    return rc;
}

static int parse_defaults(ctx_t *c, const node_t *v, settings_t *d)
{
    if (is_null(v))
        return 0;
    if (v->type != N_MAP)
        return fail(c, v,
                    "'defaults' must be a map of step settings (retries, timeout, "
                    "resources, placement, env, checkpoint, preemption, cache)");
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i);
        if (is_setting_key(k->str)) {
            if (parse_setting(c, k, map_val(v, i), d) < 0)
                return -EINVAL;
        } else if (is_step_only_key(k->str)) {
            return fail(c, k, "'%s' cannot be set under defaults", k->str);
        } else {
            return fail(c, k, "unknown key '%s' in defaults", show(c, k->str));
        }
    }
    return 0;
}

/* params: declared values, then -p overrides; all go to s->params (owned
 * by s, so nothing to undo here on failure). */
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
            if (!valid_name(k->str))
                return fail(c, k,
                            "bad param name '%s' (letters, digits, '_', '.', '-'; at most %u)",
                            show(c, k->str), SPEC_MAX_NAME);
            if (x->type != N_SCALAR)
                return fail(c, x, "param '%s' must be a single value (a string or number)",
                            show(c, k->str));
            if (x->len > c->lim.max_param_bytes)
                return fail_limit(c, x, "param '%s' is longer than %zu bytes", show(c, k->str),
                                  c->lim.max_param_bytes);
            s->params[i].key = xstrdup(k->str);
            /* a null value declares a param that -p must provide */
            s->params[i].value = is_null(x) ? NULL : xstrdup(x->str);
            s->param_count++;
        }
    }
    for (size_t j = 0; j < nov; j++) {
        const char *key = ov[j].key ? ov[j].key : "";
        size_t i = 0;
        while (i < s->param_count && strcmp(s->params[i].key, key))
            i++;
        if (i == s->param_count)
            return fail(c, v,
                        "unknown param '%s' (-p %s=...): declare it under params:", show(c, key),
                        show(c, key));
        const char *val = ov[j].value ? ov[j].value : "";
        if (strlen(val) > c->lim.max_param_bytes)
            return fail_limit(c, v, "param '%s' (-p %s=...) is longer than %zu bytes", show(c, key),
                              show(c, key), c->lim.max_param_bytes);
        free(s->params[i].value);
        s->params[i].value = xstrdup(val);
    }
    for (size_t i = 0; i < s->param_count; i++) {
        if (!s->params[i].value)
            return fail(c, map_key(v, i),
                        "param '%s' has no value: give one under params: or "
                        "with -p %s=...",
                        show(c, s->params[i].key), show(c, s->params[i].key));
    }
    c->params = s->params;
    c->param_count = s->param_count;
    return 0;
}

/* Depth-first search from u; on a back edge report the cycle path. */
static int dfs(ctx_t *c, spec_step_t *all, step_aux_t *aux, size_t u, unsigned char *color,
               size_t *path, size_t depth)
{
    color[u] = 1;
    path[depth] = u;
    for (size_t j = 0; j < all[u].need_count; j++) {
        size_t w = all[u].needs[j];
        if (color[w] == 2)
            continue;
        if (color[w] == 1) {
            size_t from = depth;
            while (path[from] != w)
                from--;
            size_t cap = 64, o = 0;
            char *msg = xmalloc(cap);
            msg[0] = '\0';
            for (size_t i = from; i <= depth + 1; i++) {
                const char *nm = all[i <= depth ? path[i] : w].name;
                size_t need = o + strlen(nm) + 5;
                if (need > cap) {
                    while (cap < need)
                        cap *= 2;
                    msg = xrealloc(msg, cap);
                }
                o += (size_t)snprintf(msg + o, cap - o, "%s%s", i > from ? " -> " : "", nm);
            }
            int rc = fail(c, aux[u].needs_node->kids[j], "cycle: %s", msg);
            free(msg);
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
 * steps (pointless: they run after every main step anyway). */
static int resolve_needs(ctx_t *c, spec_step_t *all, step_aux_t *aux, size_t n)
{
    size_t *seen = xcalloc(n, sizeof *seen); /* i + 1 once step i listed it */
    unsigned char *color = xcalloc(n, 1);
    size_t *path = xcalloc(n + 1, sizeof *path);
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        const node_t *nl = aux[i].needs_node;
        if (!nl)
            continue;
        all[i].needs = xcalloc(nl->nkids, sizeof *all[i].needs);
        for (size_t j = 0; j < nl->nkids; j++) {
            const node_t *x = nl->kids[j];
            size_t w;
            if (!names_find(c, x->str, x->len, &w)) {
                rc = fail(c, x, "step '%s' needs unknown step '%s'", show(c, all[i].name),
                          show(c, x->str));
                goto cleanup;
            }
            if (aux[w].is_finally && !aux[i].is_finally) {
                rc = fail(c, x, "step '%s' cannot need '%s', a finally step", show(c, all[i].name),
                          show(c, x->str));
                goto cleanup;
            }
            if (aux[i].is_finally && !aux[w].is_finally) {
                rc = fail(c, x,
                          "finally step '%s' cannot need main step '%s': exit handlers run after "
                          "every main step anyway",
                          show(c, all[i].name), show(c, x->str));
                goto cleanup;
            }
            if (seen[w] == i + 1) {
                rc = fail(c, x, "step '%s' lists '%s' twice in needs", show(c, all[i].name),
                          show(c, x->str));
                goto cleanup;
            }
            seen[w] = i + 1;
            all[i].needs[all[i].need_count++] = w;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (color[i] == 0 && (rc = dfs(c, all, aux, i, color, path, 0)) < 0)
            goto cleanup;
    }
cleanup:
    free(seen);
    free(color);
    free(path);
    return rc;
}

/* ---- data flow: inputs and run-time references ---- */

typedef struct {
    ctx_t *c;
    spec_step_t *all;
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
    for (size_t j = 0; j < f->all[i].need_count; j++) {
        size_t w = f->all[i].needs[j];
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
    const char *me = f->all[i].name, *it = f->all[s].name;
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
        if (in_when)
            not_impl(c, f->aux[i].when, label, "inputs in templates");
        rc = 0;
        break;
    case EXPR_REF_STEP:
        a = xstrndup(r.a, r.alen);
        b = xstrndup(r.b, r.blen);
        if (!names_find(c, r.a, r.alen, &s))
            snprintf(why, whylen, "%s: no step named '%s'", lb, show(c, a));
        else if (!may_use(f, i, s, lb, why, whylen))
            ;
        else if (!sorted_has(f->aux[s].params_sorted, f->all[s].out_param_count, r.b, r.blen))
            snprintf(why, whylen,
                     "%s: step '%s' declares no output param '%s' (add it to its "
                     "outputs.params)",
                     lb, show(c, a), show(c, b));
        else
            rc = 0;
        break;
    case EXPR_REF_ITEM:
        if (!f->all[i].fan_out)
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
    }
    free(label);
    free(a);
    free(b);
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
            continue; /* substituted, or noted as not implemented */
        if (check_ref(f, i, p.in, p.inlen, false, why, sizeof why) < 0) {
            if (inherited)
                return fail(f->c, v, "%s (in defaults, inherited by step '%s')", why,
                            show(f->c, f->all[i].name));
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
    spec_input_t *in = &f->all[i].inputs[k];
    const node_t *src = f->aux[i].input_src[k];
    const char *t = src->str, *art = NULL, *art_first = NULL;
    size_t best = SIZE_MAX, first = SIZE_MAX, matches = 0, s;
    char what[160], why[512];

    for (size_t p = 1; p + 1 < src->len; p++) {
        if (t[p] != '.' || !names_find(c, t, p, &s))
            continue;
        if (first == SIZE_MAX) {
            first = s;
            art_first = t + p + 1;
        }
        if (sorted_has(f->aux[s].arts_sorted, f->all[s].out_artifact_count, t + p + 1,
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
    if (matches == 0)
        return fail(c, src, "%s: step '%s' declares no output artifact '%s'", what,
                    show(c, f->all[best].name), show(c, art));
    in->step = best;
    in->artifact = xstrdup(art);
    return 0;
}

/* Once needs are resolved: every input and run-time reference of every
 * step names a step it may read from, and an output that step declares. */
static int check_flow(ctx_t *c, spec_step_t *all, step_aux_t *aux, size_t n)
{
    flow_t f = {.c = c, .all = all, .aux = aux, .n = n};
    char e[512];
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        const step_aux_t *a = &aux[i];
        for (size_t k = 0; k < all[i].input_count && rc == 0; k++)
            rc = resolve_input(&f, i, k);
        for (size_t k = 0; a->cmd && k < a->cmd->nkids && rc == 0; k++)
            rc = check_scalar(&f, i, a->cmd->kids[k], false);
        if (a->script && rc == 0)
            rc = check_scalar(&f, i, a->script, false);
        for (size_t k = 0; k < all[i].env_count && rc == 0; k++)
            rc = check_scalar(&f, i, a->env_src[k].node, a->env_src[k].inherited);
        if (a->when && rc == 0) {
            f.cur = i;
            if (expr_check(all[i].when, when_visit, &f, e, sizeof e) < 0)
                rc = fail(c, a->when, "bad when expression: %s", e);
        }
        if (all[i].items_from && rc == 0) {
            expr_tmpl_t it;
            expr_piece_t p;
            expr_tmpl_init(&it, all[i].items_from); /* one reference, parse_for_each saw */
            if (expr_tmpl_next(&it, &p) > 0 &&
                check_ref(&f, i, p.in, p.inlen, false, e, sizeof e) < 0)
                rc = fail(c, a->for_each, "for_each %s", e);
        }
    }
    free(f.anc);
    free(f.anc_done);
    return rc;
}

/* The whole document; root is a map. */
static int parse_doc(ctx_t *c, const node_t *root, const spec_kv_t *ov, size_t nov, spec_t *s)
{
    const node_t *name = NULL, *params = NULL, *defaults = NULL, *steps = NULL, *fin = NULL;
    settings_t d = {0};
    step_aux_t *aux = NULL;
    int rc = 0;

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
        else {
            rc = fail(c, k, "unknown key '%s'", show(c, k->str));
            goto cleanup;
        }
    }
    if (!name) {
        rc = fail(c, root, "missing 'name' (the pipeline's name)");
        goto cleanup;
    }
    if (name->type != N_SCALAR || !valid_name(name->str)) {
        rc = fail(c, name, "bad pipeline name '%s' (letters, digits, '_', '.', '-'; at most %u)",
                  name->type == N_SCALAR ? show(c, name->str) : "(not a string)", SPEC_MAX_NAME);
        goto cleanup;
    }
    s->name = xstrdup(name->str);
    if ((rc = parse_params(c, params, ov, nov, s)) < 0)
        goto cleanup;
    if (defaults && (rc = parse_defaults(c, defaults, &d)) < 0)
        goto cleanup;
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
        rc = fail(c, fin, "'finally' must be a list of steps");
        goto cleanup;
    }
    size_t nsteps = steps->nkids, nfin = fin ? fin->nkids : 0;
    if (nsteps + nfin > c->lim.max_steps) {
        rc = fail_limit(c, steps, "too many steps (%zu; at most %zu)", nsteps + nfin,
                        c->lim.max_steps);
        goto cleanup;
    }
    s->steps = xcalloc(nsteps + nfin, sizeof *s->steps);
    aux = xcalloc(nsteps + nfin, sizeof *aux);
    names_init(c, s->steps, nsteps + nfin);
    for (size_t i = 0; i < nsteps + nfin; i++) {
        const node_t *m = i < nsteps ? steps->kids[i] : fin->kids[i - nsteps];
        aux[i].is_finally = i >= nsteps;
        s->step_count = i + 1; /* so spec_destroy frees what parse_step made */
        if ((rc = parse_step(c, m, &d, s->steps, i, aux)) < 0)
            goto cleanup;
    }
    if ((rc = resolve_needs(c, s->steps, aux, nsteps + nfin)) < 0)
        goto cleanup;
    rc = check_flow(c, s->steps, aux, nsteps + nfin);
cleanup:
    settings_free(&d);
    for (size_t i = 0; aux && i < s->step_count; i++) {
        free(aux[i].env_src);
        free(aux[i].input_src);
        free(aux[i].arts_sorted);
        free(aux[i].params_sorted);
    }
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

/* Parse and validate a whole spec (contract in spec.h). Order: size and
 * NUL checks, YAML → tree (syntax, aliases, depth, duplicate keys), then
 * the document; "not implemented yet" only when nothing else is wrong.
 * Every path frees what it built; *out is set only on success. */
int spec_parse_limited(const char *filename, const char *text, size_t len,
                       const spec_kv_t *overrides, size_t override_count,
                       const spec_limits_t *limits, spec_t **out, char *err, size_t errlen)
{
    ctx_t c = {.file = filename ? filename : "<spec>", .err = err, .errlen = errlen};
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
    spec_destroy(&s);
    node_free(root);
    free(c.ni_what);
    free(c.names);
    return rc < 0 && c.over_limit ? -E2BIG : rc;
}

/* Free a spec and everything it owns, then NULL *spec. NULL-safe; also
 * frees a partly built spec (unset fields are NULL). */
void spec_destroy(spec_t **spec)
{
    if (!spec || !*spec)
        return;
    spec_t *s = *spec;
    free(s->name);
    kvs_free(s->params, s->param_count);
    for (size_t i = 0; i < s->step_count; i++) {
        spec_step_t *st = &s->steps[i];
        free(st->name);
        free(st->image);
        for (size_t j = 0; st->argv && j < st->argc; j++)
            free(st->argv[j]);
        free(st->argv);
        kvs_free(st->env, st->env_count);
        kvs_free(st->labels, st->label_count);
        free(st->needs);
        for (size_t j = 0; j < st->out_artifact_count; j++)
            free(st->out_artifacts[j]);
        free(st->out_artifacts);
        for (size_t j = 0; j < st->out_param_count; j++)
            free(st->out_params[j]);
        free(st->out_params);
        for (size_t j = 0; j < st->input_count; j++) {
            free(st->inputs[j].local);
            free(st->inputs[j].artifact);
        }
        free(st->inputs);
        free(st->when);
        for (size_t j = 0; j < st->item_count; j++)
            free(st->items[j]);
        free(st->items);
        free(st->items_from);
    }
    free(s->steps);
    free(s);
    *spec = NULL;
}

/* ---- quantities ---- */

/* Leading decimal digits of *p into *v (no overflow); advances *p. */
static int take_digits(const char **p, uint64_t *v, size_t *ndigits)
{
    uint64_t x = 0;
    size_t n = 0;
    while (**p >= '0' && **p <= '9') {
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, **p - '0', &x))
            return -EINVAL;
        (*p)++;
        n++;
    }
    *v = x;
    *ndigits = n;
    return n ? 0 : -EINVAL;
}

/* Bytes from "N", "N[KMGT]" (powers of 1000) or "N[KMGT]i" (powers of
 * 1024); "N.F" only with a suffix, rounded up to a whole byte. No sign,
 * spaces or exponent; overflow of 64 bits is -EINVAL. */
int spec_parse_memory(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},
                 {"K", 1000ull},
                 {"M", 1000000ull},
                 {"G", 1000000000ull},
                 {"T", 1000000000000ull},
                 {"Ki", 1ull << 10},
                 {"Mi", 1ull << 20},
                 {"Gi", 1ull << 30},
                 {"Ti", 1ull << 40}};
    uint64_t whole, frac = 0, mult = 0;
    size_t nd, nf = 0;
    const char *p = s;

    if (!s || !out || take_digits(&p, &whole, &nd) < 0)
        return -EINVAL;
    if (*p == '.') {
        p++;
        if (take_digits(&p, &frac, &nf) < 0 || nf > 18)
            return -EINVAL;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(p, units[i].suffix))
            mult = units[i].mult;
    }
    if (!mult || (nf && mult == 1))
        return -EINVAL;
    unsigned __int128 v = (unsigned __int128)whole * mult;
    if (nf) {
        unsigned __int128 scale = 1;
        for (size_t i = 0; i < nf; i++)
            scale *= 10;
        /* round a fractional byte up */
        v += ((unsigned __int128)frac * mult + scale - 1) / scale;
    }
    if (v > UINT64_MAX)
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

/* Millicores from "N", "N.F" (to millicore precision; further digits must
 * be 0) or "Nm". "0" is allowed (no cpu request). At most UINT32_MAX. */
int spec_parse_cpu(const char *s, uint32_t *out_milli)
{
    uint64_t whole, milli;
    size_t nd;
    const char *p = s;

    if (!s || !out_milli || take_digits(&p, &whole, &nd) < 0)
        return -EINVAL;
    if (!strcmp(p, "m")) {
        milli = whole;
    } else {
        uint64_t frac = 0;
        if (*p == '.') {
            p++;
            /* up to three digits are millicores; any further must be zero */
            size_t nf = 0;
            for (; *p >= '0' && *p <= '9'; p++, nf++) {
                if (nf < 3)
                    frac = frac * 10 + (uint64_t)(*p - '0');
                else if (*p != '0')
                    return -EINVAL;
            }
            if (nf == 0)
                return -EINVAL;
            for (; nf < 3; nf++)
                frac *= 10;
        }
        if (*p || __builtin_mul_overflow(whole, 1000, &milli) ||
            __builtin_add_overflow(milli, frac, &milli))
            return -EINVAL;
    }
    if (milli > UINT32_MAX)
        return -EINVAL;
    *out_milli = (uint32_t)milli;
    return 0;
}

/* Milliseconds from a bare number of seconds, or from whole-number parts
 * with units h, m, s, ms, each once and largest first ("1h30m", "2s500ms").
 * Empty, fractions, other units and 64-bit overflow are -EINVAL. */
int spec_parse_duration(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"h", 3600000ull}, {"m", 60000ull}, {"s", 1000ull}};
    uint64_t total = 0, v, part;
    size_t nd;
    int last_rank = 5; /* h=4, m=3, s=2, ms=1: largest first, each once */
    const char *p = s;

    if (!s || !out_ms || !*s)
        return -EINVAL;
    if (parse_uint(s, UINT64_MAX, &v) == 0) {
        if (__builtin_mul_overflow(v, 1000, &total))
            return -EINVAL;
        *out_ms = total;
        return 0;
    }
    while (*p) {
        if (take_digits(&p, &v, &nd) < 0)
            return -EINVAL;
        size_t u = 0, n = sizeof units / sizeof units[0];
        while (u < n && strncmp(p, units[u].unit, strlen(units[u].unit)))
            u++;
        if (u == n)
            return -EINVAL;
        int rank = units[u].ms == 1 ? 1 : units[u].ms == 1000 ? 2 : units[u].ms == 60000 ? 3 : 4;
        if (rank >= last_rank)
            return -EINVAL;
        last_rank = rank;
        p += strlen(units[u].unit);
        if (__builtin_mul_overflow(v, units[u].ms, &part) ||
            __builtin_add_overflow(total, part, &total))
            return -EINVAL;
    }
    *out_ms = total;
    return 0;
}
