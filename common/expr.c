/* expr — see expr.h for the language.
 *
 * The text is lexed whole into a token array (at most one token per byte
 * plus the end), then parsed by recursive descent twice. The first pass
 * checks syntax and, after it, that every lone literal is a boolean; it
 * never calls back, so every error in the text comes before any resolver
 * error and a malformed expression never reaches the resolver. The second
 * pass evaluates, resolving only the operands of branches actually taken.
 * Tokens keep only their source span; an operand's value is rebuilt from
 * it when needed. Recursion is bounded by EXPR_MAX_DEPTH.
 *
 * Templates: ref_span() is the only code that finds the end of a "{{" and
 * trims its inside, and expr_ref_parse() the only one that tells the
 * reference forms apart; the expression lexer, expr_expand() and the
 * template iterator all go through them, as do (through this API) the
 * spec compiler and droverd, so no two readers can disagree on spacing.
 */
#include "expr.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

#define SHOW_MAX 40 /* bytes of source or value quoted in an error */
#define CB_ERR   256

enum tok_type { T_END, T_OR, T_AND, T_NOT, T_LP, T_RP, T_CMP, T_WORD, T_STRING, T_REF };
enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE };

struct tok {
    enum tok_type type;
    enum cmp_op op; /* T_CMP */
    size_t off;     /* in the text */
    size_t len;
    bool has_ref; /* T_REF, or a T_STRING with a {{ }} inside */
};

struct ctx {
    const char *text;
    size_t len;
    struct tok *toks;
    size_t ntoks, pos;
    int depth;
    expr_resolve_fn resolve;
    void *arg;
    char *refbuf; /* the trimmed reference handed to a callback */
    char *err;
    size_t errlen;
};

/* An operand's value: s points into owned or at the resolver's string. */
struct val {
    const char *s;
    char *owned;
};

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_word(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '_' ||
           ch == '.' || ch == ':' || ch == '/' || ch == '-';
}

static bool ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a + 32) : *a;
        if (x != *b) /* b is lower case */
            return false;
    }
    return *a == *b;
}

/* Length of the decimal number at the start of s, 0 if none. */
static size_t scan_number(const char *s)
{
    size_t i = 0, digits = 0;
    if (s[i] == '+' || s[i] == '-')
        i++;
    for (; is_digit(s[i]); i++)
        digits++;
    if (s[i] == '.')
        for (i++; is_digit(s[i]); i++)
            digits++;
    if (!digits)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (is_digit(s[j])) {
            while (is_digit(s[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* Whether s is, in full, a finite decimal number; its value in *d. */
static bool is_number(const char *s, double *d)
{
    size_t n = scan_number(s);
    if (!n || s[n])
        return false;
    char *end = NULL;
    *d = strtod(s, &end);
    /* end != s + n only under a locale whose decimal point is not '.' */
    return end == s + n && isfinite(*d);
}

/* Copy at most SHOW_MAX bytes of s[0..n) into dst (at least SHOW_MAX + 4
 * bytes), control bytes as '?', "..." when cut: keeps errors one line. */
static void show(char *dst, const char *s, size_t n)
{
    size_t k = n < SHOW_MAX ? n : SHOW_MAX;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    strcpy(dst + k, n > k ? "..." : "");
}

/* A callback's reason, made one terminated line in place. */
static void one_line(char *s, size_t cap)
{
    s[cap - 1] = '\0';
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
            *s = ' ';
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "col N: ..." for the byte at offset off; always -EINVAL. */
static int fail(struct ctx *c, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, size_t off, const char *fmt, ...)
{
    if (!c->err || !c->errlen)
        return -EINVAL;
    int n = snprintf(c->err, c->errlen, "col %zu: ", off + 1);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Describe a token for an error: 'src' or "end of expression". */
static void desc(const struct ctx *c, const struct tok *k, char *dst)
{
    if (k->type == T_END) {
        strcpy(dst, "end of expression");
        return;
    }
    dst[0] = '\'';
    show(dst + 1, c->text + k->off, k->len);
    strcat(dst, "'");
}

/* ---- the template grammar (see expr.h): every "{{" goes through here */

/* The {{ at text[at]: its closing "}}" (NULL if none) and its trimmed
 * inner span [*ref, *ref + *n). */
static const char *ref_span(const char *text, size_t at, const char **ref, size_t *n)
{
    const char *open = text + at + 2;
    const char *close = strstr(open, "}}");
    if (!close)
        return NULL;
    const char *a = open, *b = close;
    while (a < b && is_ws(*a))
        a++;
    while (b > a && is_ws(b[-1]))
        b--;
    *ref = a;
    *n = (size_t)(b - a);
    return close;
}

/* in[0..n) is word, alone or followed by '.' or '[' (the start of a
 * form of word, right or wrong). */
static bool has_prefix_word(const char *in, size_t n, const char *word)
{
    size_t w = strlen(word);
    return n >= w && !memcmp(in, word, w) && (n == w || in[w] == '.' || in[w] == '[');
}

/* One or more of [A-Za-z0-9_.-]: a step, param or item key name. */
static bool name_chars(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !is_digit(ch) && ch != '_' &&
            ch != '.' && ch != '-')
            return false;
    }
    return true;
}

static bool span_is(const char *in, size_t n, const char *word)
{
    return n == strlen(word) && !memcmp(in, word, n);
}

/* steps.S.FIELD without ".outputs.params.": s..end is "S.FIELD". FIELD is
 * the longest matching suffix of status, exit_code, outputs.result; S is
 * what precedes it (name characters). Sets r's kind, a (S) and b (FIELD). */
static void step_outcome(expr_ref_t *r, const char *s, const char *end)
{
    static const struct {
        const char *suffix;
        expr_ref_kind_t kind;
    } forms[] = {{".outputs.result", EXPR_REF_STEP_RESULT},
                 {".status", EXPR_REF_STEP_STATUS},
                 {".exit_code", EXPR_REF_STEP_EXIT}};
    size_t n = (size_t)(end - s);
    for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++) {
        size_t sl = strlen(forms[k].suffix);
        if (n > sl && !memcmp(end - sl, forms[k].suffix, sl) && name_chars(s, n - sl)) {
            r->kind = forms[k].kind;
            r->a = s;
            r->alen = n - sl;
            r->b = end - sl + 1;
            r->blen = sl - 1;
            return;
        }
    }
}

expr_ref_t expr_ref_parse(const char *in, size_t n)
{
    static const char mid[] = ".outputs.params.";
    const size_t mlen = sizeof mid - 1;
    expr_ref_t r = {.kind = EXPR_REF_BAD,
                    .why = "use {{params.NAME}}, {{steps.STEP.outputs.params.NAME}}, "
                           "{{steps.STEP.outputs.result}}, {{steps.STEP.status}}, "
                           "{{steps.STEP.exit_code}}, {{item}}, {{item.KEY}}, {{run.id}}, "
                           "{{run.name}}, {{run.status}}, {{run.failures}} or {{run.duration}}"};
    if (!in)
        return r;
    if (n > 7 && !memcmp(in, "params.", 7)) {
        r.kind = EXPR_REF_PARAM;
        r.a = in + 7;
        r.alen = n - 7;
    } else if (has_prefix_word(in, n, "steps")) {
        r.why = "use {{steps.STEP.outputs.params.NAME}}, {{steps.STEP.outputs.result}}, "
                "{{steps.STEP.status}} or {{steps.STEP.exit_code}}";
        const char *s = in + (n > 6 ? 6 : n), *end = in + n, *m = NULL;
        for (const char *p = s; p + mlen <= end; p++) {
            if (!memcmp(p, mid, mlen)) {
                m = p;
                break;
            }
        }
        if (m && name_chars(s, (size_t)(m - s)) && name_chars(m + mlen, (size_t)(end - m - mlen))) {
            r.kind = EXPR_REF_STEP;
            r.a = s;
            r.alen = (size_t)(m - s);
            r.b = m + mlen;
            r.blen = (size_t)(end - r.b);
        } else if (!m) {
            step_outcome(&r, s, end);
        }
    } else if (has_prefix_word(in, n, "item")) {
        r.why = "use {{item}} or {{item.KEY}}";
        if (n == 4 || (in[4] == '.' && name_chars(in + 5, n - 5))) {
            r.kind = EXPR_REF_ITEM;
            r.a = in + (n > 4 ? 5 : 4);
            r.alen = n > 4 ? n - 5 : 0;
        }
    } else if (has_prefix_word(in, n, "run")) {
        r.why = "use {{run.id}}, {{run.name}}, {{run.status}}, {{run.failures}}, "
                "{{run.duration}}, {{run.scheduled_at}}, {{run.interval_start}} or "
                "{{run.interval_end}}";
        if (span_is(in, n, "run.id") || span_is(in, n, "run.name") ||
            span_is(in, n, "run.scheduled_at") || span_is(in, n, "run.interval_start") ||
            span_is(in, n, "run.interval_end"))
            r.kind = EXPR_REF_RUN;
        else if (span_is(in, n, "run.status"))
            r.kind = EXPR_REF_STATUS;
        else if (span_is(in, n, "run.failures") || span_is(in, n, "run.duration"))
            r.kind = EXPR_REF_FINAL;
        if (r.kind != EXPR_REF_BAD) {
            r.a = in + 4;
            r.alen = n - 4;
        }
    } else if (has_prefix_word(in, n, "schedule")) {
        r.why = "use {{schedule.name}}";
        if (span_is(in, n, "schedule.name")) {
            r.kind = EXPR_REF_RUN; /* a fact of the run, known when it is made */
            r.a = in;
            r.alen = n;
        }
    } else if (has_prefix_word(in, n, "trigger")) {
        r.why = "use {{trigger.run_id}} or {{trigger.outputs.STEP.PARAM}}";
        if (span_is(in, n, "trigger.run_id") ||
            (n > 16 && !memcmp(in, "trigger.outputs.", 16) && name_chars(in + 16, n - 16) &&
             memchr(in + 16, '.', n - 16))) {
            r.kind = EXPR_REF_RUN;
            r.a = in;
            r.alen = n;
        }
    } else if (has_prefix_word(in, n, "inputs")) {
        r.why = "use {{inputs.params.NAME}} (input artifacts are files under $DROVER_INPUTS)";
        if (n > 14 && !memcmp(in, "inputs.params.", 14) && name_chars(in + 14, n - 14)) {
            r.kind = EXPR_REF_INPUTS;
            r.a = in + 14;
            r.alen = n - 14;
        }
    } else if (span_is(in, n, "exit_code") || span_is(in, n, "reason") ||
               span_is(in, n, "signal") || span_is(in, n, "attempt")) {
        r.kind = EXPR_REF_RETRY; /* where it may stand is the reader's to say */
        r.a = in;
        r.alen = n;
    }
    return r;
}

void expr_tmpl_init(expr_tmpl_t *it, const char *text)
{
    *it = (expr_tmpl_t){.text = text ? text : ""};
}

int expr_tmpl_next(expr_tmpl_t *it, expr_piece_t *p)
{
    const char *here = it->text + it->pos;
    *p = (expr_piece_t){.off = it->pos};
    if (!*here)
        return 0;
    const char *open = strstr(here, "{{");
    if (open != here) { /* a literal up to the next "{{" or the end */
        p->len = open ? (size_t)(open - here) : strlen(here);
        it->pos += p->len;
        return 1;
    }
    const char *close = ref_span(it->text, it->pos, &p->in, &p->inlen);
    if (!close)
        return -EINVAL;
    p->is_ref = true;
    p->len = (size_t)(close + 2 - here);
    p->ref = expr_ref_parse(p->in, p->inlen);
    it->pos += p->len;
    return 1;
}

/* Lex the {{ at text[at]; *n its length including the braces. */
static int lex_ref(struct ctx *c, size_t at, size_t *n)
{
    const char *ref;
    size_t rn;
    const char *close = ref_span(c->text, at, &ref, &rn);
    if (!close)
        return fail(c, at, "unterminated '{{'");
    if (!rn)
        return fail(c, at, "empty reference '{{}}'");
    *n = (size_t)(close + 2 - (c->text + at));
    return 0;
}

static int lex_string(struct ctx *c, size_t at, size_t *n, bool *has_ref)
{
    const char *t = c->text;
    char q = t[at];
    size_t j = at + 1;
    for (;;) {
        char ch = t[j];
        if (!ch)
            return fail(c, at, "unterminated string");
        if (ch == q) {
            *n = j + 1 - at;
            return 0;
        }
        if (ch == '\\') {
            char e = t[j + 1];
            if (!e)
                return fail(c, at, "unterminated string");
            if (e != '\\' && e != '"' && e != '\'') {
                char s[SHOW_MAX + 4];
                show(s, &e, 1);
                return fail(c, j, "unknown escape '\\%s' in string (only \\\\, \\\" and \\')", s);
            }
            j += 2;
        } else if (ch == '{' && t[j + 1] == '{') {
            size_t m = 0;
            int rc = lex_ref(c, j, &m);
            if (rc)
                return rc;
            *has_ref = true;
            j += m;
        } else {
            j++;
        }
    }
}

static int unexpected_char(struct ctx *c, size_t at)
{
    unsigned char ch = (unsigned char)c->text[at];
    if (ch < 0x20 || ch >= 0x7f)
        return fail(c, at, "unexpected byte 0x%02x", ch);
    return fail(c, at, "unexpected '%c'", ch);
}

/* A number or bare word at text[at]. */
static int lex_bare(struct ctx *c, size_t at, size_t *n)
{
    const char *t = c->text + at;
    size_t num = scan_number(t), w = 0;
    while (is_word(t[w]))
        w++;
    if (num > w) { /* a '+' in the number, which words may not hold */
        if (is_word(t[num])) {
            char s[SHOW_MAX + 4];
            size_t e = num;
            while (is_word(t[e]))
                e++;
            show(s, t, e);
            return fail(c, at, "malformed number '%s'", s);
        }
        *n = num;
        return 0;
    }
    if (!w)
        return unexpected_char(c, at);
    *n = w;
    return 0;
}

static int lex(struct ctx *c)
{
    const char *t = c->text;
    size_t i = 0;
    for (;;) {
        while (is_ws(t[i]))
            i++;
        struct tok *k = &c->toks[c->ntoks++];
        *k = (struct tok){.type = T_END, .off = i};
        char ch = t[i], nx = ch ? t[i + 1] : '\0';
        size_t n = 1;
        int rc = 0;
        switch (ch) {
        case '\0':
            return 0;
        case '(':
            k->type = T_LP;
            break;
        case ')':
            k->type = T_RP;
            break;
        case '|':
        case '&':
            if (nx != ch)
                return fail(c, i, "unexpected '%c' (use '%c%c')", ch, ch, ch);
            k->type = ch == '|' ? T_OR : T_AND;
            n = 2;
            break;
        case '=':
            if (nx != '=')
                return fail(c, i, "unexpected '=' (use '==')");
            *k = (struct tok){.type = T_CMP, .op = OP_EQ, .off = i};
            n = 2;
            break;
        case '!':
            if (nx == '=') {
                *k = (struct tok){.type = T_CMP, .op = OP_NE, .off = i};
                n = 2;
            } else {
                k->type = T_NOT;
            }
            break;
        case '<':
        case '>':
            k->type = T_CMP;
            if (nx == '=') {
                k->op = ch == '<' ? OP_LE : OP_GE;
                n = 2;
            } else {
                k->op = ch == '<' ? OP_LT : OP_GT;
            }
            break;
        case '\'':
        case '"':
            k->type = T_STRING;
            rc = lex_string(c, i, &n, &k->has_ref);
            break;
        case '{':
            if (nx != '{')
                return unexpected_char(c, i);
            k->type = T_REF;
            k->has_ref = true;
            rc = lex_ref(c, i, &n);
            break;
        default:
            k->type = T_WORD;
            rc = lex_bare(c, i, &n);
            break;
        }
        if (rc)
            return rc;
        k->len = n;
        i += n;
    }
}

static bool is_operand(const struct tok *k)
{
    return k->type == T_WORD || k->type == T_STRING || k->type == T_REF;
}

/* Resolve the {{ at text[at]: *value and its length, *after = offset just
 * past the "}}". */
static int resolve_ref(struct ctx *c, size_t at, const char **value, size_t *vlen, size_t *after)
{
    const char *ref;
    size_t rn;
    const char *close = ref_span(c->text, at, &ref, &rn);
    memcpy(c->refbuf, ref, rn);
    c->refbuf[rn] = '\0';
    *after = (size_t)(close + 2 - c->text);
    char s[SHOW_MAX + 4];
    show(s, ref, rn);
    char why[CB_ERR] = "";
    const char *v = NULL;
    int rc = c->resolve ? c->resolve(c->refbuf, &v, c->arg, why, sizeof why) : -ENOENT;
    if (rc || !v) {
        one_line(why, sizeof why);
        if (!c->resolve)
            return fail(c, at, "unknown reference: {{%s}} (no resolver)", s);
        if (!rc)
            return fail(c, at, "unknown reference: {{%s}} resolved to nothing", s);
        if (why[0])
            return fail(c, at, "unknown reference: %s", why);
        return fail(c, at, "unknown reference: {{%s}}", s);
    }
    *vlen = strnlen(v, EXPR_MAX_VALUE + 1);
    if (*vlen > EXPR_MAX_VALUE)
        return fail(c, at, "value of {{%s}} is longer than %d bytes", s, EXPR_MAX_VALUE);
    *value = v;
    return 0;
}

/* The value of an operand token; resolves only in the evaluating pass. */
static int operand_value(struct ctx *c, const struct tok *k, struct val *v)
{
    const char *t = c->text + k->off;
    size_t vlen = 0, after = 0;
    *v = (struct val){0};
    if (k->type == T_WORD) {
        v->owned = xstrndup(t, k->len);
        v->s = v->owned;
        return 0;
    }
    if (k->type == T_REF)
        return resolve_ref(c, k->off, &v->s, &vlen, &after);
    strbuf_t b = {0};
    size_t i = 1, end = k->len - 1;
    int rc = 0;
    while (i < end) {
        if (t[i] == '\\') {
            sb_add(&b, t + i + 1, 1);
            i += 2;
        } else if (t[i] == '{' && t[i + 1] == '{') {
            const char *s = NULL;
            rc = resolve_ref(c, k->off + i, &s, &vlen, &after);
            if (rc)
                break;
            if (b.len + vlen > EXPR_MAX_OPERAND) {
                rc = fail(c, k->off, "string longer than %d bytes after substitution",
                          EXPR_MAX_OPERAND);
                break;
            }
            sb_add(&b, s, vlen);
            i = after - k->off;
        } else {
            sb_add(&b, t + i, 1);
            i++;
        }
    }
    v->owned = sb_take(&b);
    v->s = v->owned;
    return rc;
}

static void val_free(struct val *v)
{
    free(v->owned);
    *v = (struct val){0};
}

static bool compare_values(const char *a, enum cmp_op op, const char *b)
{
    double x, y;
    int d;
    if (is_number(a, &x) && is_number(b, &y))
        d = (x > y) - (x < y);
    else
        d = strcmp(a, b); /* compares as unsigned char: byte-wise */
    switch (op) {
    case OP_EQ:
        return d == 0;
    case OP_NE:
        return d != 0;
    case OP_LT:
        return d < 0;
    case OP_GT:
        return d > 0;
    case OP_LE:
        return d <= 0;
    case OP_GE:
        return d >= 0;
    }
    return false;
}

static int truth(const char *s, bool *out)
{
    double d;
    if (!*s || ieq(s, "false") || ieq(s, "no")) {
        *out = false;
        return 0;
    }
    if (ieq(s, "true") || ieq(s, "yes")) {
        *out = true;
        return 0;
    }
    if (is_number(s, &d)) {
        *out = d != 0;
        return 0;
    }
    return -EINVAL;
}

/* The truth of operand k (value v), or its "not a boolean" error. */
static int truth_of(struct ctx *c, const struct tok *k, const char *v, bool *out)
{
    if (!truth(v, out))
        return 0;
    char s[SHOW_MAX + 4], src[SHOW_MAX + 4];
    show(s, v, strlen(v));
    show(src, c->text + k->off, k->len);
    if (k->has_ref)
        return fail(c, k->off, "'%s' is not a boolean (value of %s)", s, src);
    return fail(c, k->off, "'%s' is not a boolean", s);
}

/* A lone operand in a branch being evaluated. */
static int lone(struct ctx *c, const struct tok *k, bool live, bool *out)
{
    if (!live)
        return 0;
    struct val v;
    int rc = operand_value(c, k, &v);
    if (!rc)
        rc = truth_of(c, k, v.s, out);
    val_free(&v);
    return rc;
}

/* After the syntax pass: every lone literal must be a boolean, taken
 * branch or not, since its value never changes. */
static int check_literals(struct ctx *c)
{
    for (size_t i = 0; i + 1 < c->ntoks; i++) {
        const struct tok *k = &c->toks[i];
        if (!is_operand(k) || k->has_ref || c->toks[i + 1].type == T_CMP ||
            (i > 0 && c->toks[i - 1].type == T_CMP))
            continue;
        struct val v;
        bool ignored = false;
        int rc = operand_value(c, k, &v);
        if (!rc)
            rc = truth_of(c, k, v.s, &ignored);
        val_free(&v);
        if (rc)
            return rc;
    }
    return 0;
}

static int expect_operand(struct ctx *c, const struct tok *k)
{
    char d[SHOW_MAX + 8], p[SHOW_MAX + 8];
    desc(c, k, d);
    if (c->pos == 0)
        return fail(c, k->off, "expected an operand, found %s", d);
    desc(c, &c->toks[c->pos - 1], p);
    return fail(c, k->off, "expected an operand after %s, found %s", p, d);
}

/* k follows a complete (sub)expression where only an operator, ')' (when
 * lp is an open '(') or the end may stand. */
static int junk(struct ctx *c, const struct tok *k, const struct tok *lp)
{
    char d[SHOW_MAX + 8];
    desc(c, k, d);
    if (k->type == T_END)
        return fail(c, k->off, "missing ')' to close '(' at col %zu", lp->off + 1);
    if (k->type == T_RP)
        return fail(c, k->off, "unmatched ')'");
    if (k->type == T_CMP)
        return fail(c, k->off, "%s cannot follow ')': only operands are compared", d);
    if (lp)
        return fail(c, k->off, "expected an operator or ')' before %s", d);
    return fail(c, k->off, "expected an operator before %s", d);
}

static int parse_or(struct ctx *c, bool live, bool *out);

static int parse_cmp(struct ctx *c, bool live, bool *out)
{
    const struct tok *l = &c->toks[c->pos];
    if (!is_operand(l))
        return expect_operand(c, l);
    c->pos++;
    const struct tok *op = &c->toks[c->pos];
    if (op->type != T_CMP)
        return lone(c, l, live, out);
    c->pos++;
    const struct tok *r = &c->toks[c->pos];
    if (!is_operand(r))
        return expect_operand(c, r);
    c->pos++;
    if (c->toks[c->pos].type == T_CMP)
        return fail(c, c->toks[c->pos].off, "comparisons cannot be chained; use '&&'");
    if (!live)
        return 0;
    struct val a, b = {0};
    int rc = operand_value(c, l, &a);
    if (!rc)
        rc = operand_value(c, r, &b);
    if (!rc)
        *out = compare_values(a.s, op->op, b.s);
    val_free(&a);
    val_free(&b);
    return rc;
}

/* Enter a '(' or '!' at tok k. */
static int nest(struct ctx *c, const struct tok *k)
{
    if (++c->depth > EXPR_MAX_DEPTH)
        return fail(c, k->off, "nesting deeper than %d levels", EXPR_MAX_DEPTH);
    c->pos++;
    return 0;
}

static int parse_unary(struct ctx *c, bool live, bool *out)
{
    const struct tok *k = &c->toks[c->pos];
    *out = false;
    if (k->type == T_NOT) {
        bool v = false;
        int rc = nest(c, k);
        if (!rc)
            rc = parse_unary(c, live, &v);
        c->depth--;
        *out = !v;
        return rc;
    }
    if (k->type == T_LP) {
        int rc = nest(c, k);
        if (!rc)
            rc = parse_or(c, live, out);
        c->depth--;
        if (rc)
            return rc;
        if (c->toks[c->pos].type != T_RP)
            return junk(c, &c->toks[c->pos], k);
        c->pos++;
        return 0;
    }
    return parse_cmp(c, live, out);
}

static int parse_and(struct ctx *c, bool live, bool *out)
{
    int rc = parse_unary(c, live, out);
    while (!rc && c->toks[c->pos].type == T_AND) {
        bool take = live && *out, r = false;
        c->pos++;
        rc = parse_unary(c, take, &r);
        if (take)
            *out = r;
    }
    return rc;
}

static int parse_or(struct ctx *c, bool live, bool *out)
{
    int rc = parse_and(c, live, out);
    while (!rc && c->toks[c->pos].type == T_OR) {
        bool take = live && !*out, r = false;
        c->pos++;
        rc = parse_and(c, take, &r);
        if (take)
            *out = r;
    }
    return rc;
}

static int parse_all(struct ctx *c, bool live, bool *out)
{
    c->pos = 0;
    c->depth = 0;
    int rc = parse_or(c, live, out);
    if (!rc && c->toks[c->pos].type != T_END)
        rc = junk(c, &c->toks[c->pos], NULL);
    return rc;
}

/* Bounds, lexing and the syntax pass; c->toks and c->refbuf are the
 * caller's to free whatever the result. */
static int prepare(struct ctx *c, const char *text, char *err, size_t errlen)
{
    *c = (struct ctx){.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (!text)
        return fail(c, 0, "empty expression");
    c->len = strnlen(text, EXPR_MAX_TEXT + 1);
    if (c->len > EXPR_MAX_TEXT)
        return fail(c, EXPR_MAX_TEXT, "expression longer than %d bytes", EXPR_MAX_TEXT);
    c->text = text;
    c->toks = xmalloc((c->len + 1) * sizeof *c->toks);
    c->refbuf = xmalloc(c->len + 1);
    int rc = lex(c);
    if (rc)
        return rc;
    if (c->toks[0].type == T_END)
        return fail(c, 0, "empty expression");
    bool ignored = false;
    rc = parse_all(c, false, &ignored);
    return rc ? rc : check_literals(c);
}

int expr_eval(const char *text, expr_resolve_fn resolve, void *arg, bool *result, char *err,
              size_t errlen)
{
    struct ctx c;
    bool v = false;
    int rc = prepare(&c, text, err, errlen);
    if (rc)
        goto cleanup;
    c.resolve = resolve;
    c.arg = arg;
    rc = parse_all(&c, true, &v);
    if (!rc && result)
        *result = v;
cleanup:
    free(c.toks);
    free(c.refbuf);
    return rc;
}

/* Call visit for each {{ in operand token k, in order. */
static int visit_refs(struct ctx *c, const struct tok *k,
                      int (*visit)(const char *ref, void *arg, char *err, size_t errlen), void *arg)
{
    const char *t = c->text;
    size_t i = k->off, end = k->off + k->len;
    while (i < end) {
        if (k->type == T_STRING && t[i] == '\\') {
            i += 2;
            continue;
        }
        if (t[i] != '{' || t[i + 1] != '{') {
            i++;
            continue;
        }
        const char *ref;
        size_t rn;
        const char *close = ref_span(t, i, &ref, &rn);
        memcpy(c->refbuf, ref, rn);
        c->refbuf[rn] = '\0';
        char why[CB_ERR] = "";
        if (visit(c->refbuf, arg, why, sizeof why)) {
            char s[SHOW_MAX + 4];
            one_line(why, sizeof why);
            show(s, ref, rn);
            if (why[0])
                return fail(c, i, "%s", why);
            return fail(c, i, "rejected reference {{%s}}", s);
        }
        i = (size_t)(close + 2 - t);
    }
    return 0;
}

int expr_check(const char *text, int (*visit)(const char *ref, void *arg, char *err, size_t errlen),
               void *arg, char *err, size_t errlen)
{
    struct ctx c;
    int rc = prepare(&c, text, err, errlen);
    for (size_t i = 0; !rc && visit && i < c.ntoks; i++)
        if (c.toks[i].has_ref)
            rc = visit_refs(&c, &c.toks[i], visit, arg);
    free(c.toks);
    free(c.refbuf);
    return rc;
}

int expr_expand(const char *text, expr_resolve_fn resolve, void *arg, size_t max_out, char **out,
                char *err, size_t errlen)
{
    strbuf_t b = {0};
    char *ref = NULL;
    expr_tmpl_t it;
    expr_piece_t p;
    int rc = 0, more;
    if (err && errlen)
        err[0] = '\0';
    if (!out || !text) {
        errf(err, errlen, "no text or no output");
        return -EINVAL;
    }
    *out = NULL;
    expr_tmpl_init(&it, text);
    while ((more = expr_tmpl_next(&it, &p)) > 0) {
        size_t col = p.off + 1, room = max_out - b.len;
        if (!p.is_ref) {
            if (p.len > room) {
                errf(err, errlen, "col %zu: expanded text longer than %zu bytes", col + room,
                     max_out);
                rc = -E2BIG;
                goto cleanup;
            }
            sb_add(&b, text + p.off, p.len);
            continue;
        }
        if (!p.inlen) {
            errf(err, errlen, "col %zu: empty reference '{{}}'", col);
            rc = -EINVAL;
            goto cleanup;
        }
        ref = xstrndup(p.in, p.inlen);
        char why[CB_ERR] = "", s[SHOW_MAX + 4];
        const char *v = NULL;
        show(s, p.in, p.inlen);
        if (!resolve || resolve(ref, &v, arg, why, sizeof why) || !v) {
            one_line(why, sizeof why);
            if (why[0])
                errf(err, errlen, "col %zu: unknown reference: %s", col, why);
            else
                errf(err, errlen, "col %zu: unknown reference: {{%s}}", col, s);
            rc = -EINVAL;
            goto cleanup;
        }
        size_t vlen = strnlen(v, room < PTRDIFF_MAX ? room + 1 : PTRDIFF_MAX);
        if (vlen > room) {
            errf(err, errlen, "col %zu: expanded text longer than %zu bytes ({{%s}})", col, max_out,
                 s);
            rc = -E2BIG;
            goto cleanup;
        }
        sb_add(&b, v, vlen);
        free(ref);
        ref = NULL;
    }
    if (more < 0) {
        errf(err, errlen, "col %zu: unterminated '{{'", p.off + 1);
        rc = -EINVAL;
        goto cleanup;
    }
    *out = sb_take(&b);
cleanup:
    free(ref);
    sb_free(&b);
    return rc;
}

static int item_visit(const char *ref, void *arg, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    if (expr_ref_parse(ref, strlen(ref)).kind == EXPR_REF_ITEM)
        *(bool *)arg = true;
    return 0;
}

bool expr_when_per_item(const char *when)
{
    bool item = false;
    if (!when || !*when || expr_check(when, item_visit, &item, NULL, 0) < 0)
        return false;
    return item;
}
