/* test_expr — the `when:` condition language and {{ }} expansion.
 *
 * A resolver backed by a small map (counting its calls) drives tables of
 * expressions with their expected truth: numeric against string comparison
 * (quoted numbers are numbers), precedence and parentheses, short-circuit,
 * resolved values holding operators staying one operand. A table of bad
 * expressions checks each error's column and reason, and that a syntax
 * error reaches the resolver never. expr_check's visits (order, quotes,
 * rejection), expr_expand's cases, then a seeded fuzz: every prefix of
 * valid expressions and 5,000 random strings over the grammar's characters
 * give 0 or -EINVAL with a one-line "col N:" reason, and check and eval
 * agree on syntax.
 */
#include "helpers.h"

#include <errno.h>

#include "expr.h"

static const struct {
    const char *ref, *value;
} map[] = {
    {"steps.e.outputs.params.better", "true"},
    {"steps.train.outputs.params.accuracy", "0.93"},
    {"params.n", "10"},
    {"params.msg", "a && b) ||"},
    {"params.env", "dev"},
    {"params.skip", "yes"},
    {"params.maybe", "maybe"},
    {"params.empty", ""},
    {"params.zero", "0.0"},
    {"params.spaced", " true"},
    {"params.paren", "true) || (true"},
    {"params.quote", "it's \"x\""},
    {"params.tmpl", "{{params.n}}"},
    {"params.Yes", "YES"},
};

struct rstate {
    int calls;
    char seen[512]; /* refs resolved, ';'-separated */
    const char *big;
};

static int resolve(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    struct rstate *st = arg;
    if (st) {
        st->calls++;
        size_t n = strlen(st->seen);
        snprintf(st->seen + n, sizeof st->seen - n, "%s;", ref);
    }
    if (st && st->big && !strcmp(ref, "params.big")) {
        *value = st->big;
        return 0;
    }
    if (!strcmp(ref, "params.null")) {
        *value = NULL;
        return 0;
    }
    if (!strcmp(ref, "params.silent"))
        return -ENOENT; /* no reason written */
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(ref, map[i].ref)) {
            *value = map[i].value;
            return 0;
        }
    snprintf(err, errlen, "no such reference '%s'", ref);
    return -ENOENT;
}

/* Evaluate; fail the test on error. */
static bool ev(const char *text)
{
    char err[256] = "";
    bool r = false;
    struct rstate st = {0};
    int rc = expr_eval(text, resolve, &st, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "expr_eval(%s) = %d: %s", text, rc, err);
    cr_assert_eq(err[0], '\0', "expr_eval(%s) succeeded but wrote err '%s'", text, err);
    return r;
}

TestSuite(expr, .timeout = 120);

static const struct {
    const char *text;
    bool want;
} truths[] = {
    /* the examples */
    {"{{steps.e.outputs.params.better}} == true", true},
    {"{{steps.train.outputs.params.accuracy}} >= 0.9 && '{{params.env}}' != 'prod'", true},
    {"{{steps.train.outputs.params.accuracy}} >= 0.95 && '{{params.env}}' != 'prod'", false},
    {"!({{params.skip}} == yes) || ({{params.n}} > 3)", true},
    {"!({{params.skip}} == yes) || ({{params.n}} > 30)", false},
    /* numeric: both sides numbers in full */
    {"10 > 9", true},
    {"{{params.n}} > 9", true},
    {"{{params.n}} == 10.0", true},
    {"{{params.n}} == 1e1", true},
    {"2 < 10", true}, /* as strings "2" > "10" */
    {"2 >= 10", false},
    {"-3 < 2", true},
    {"+3 == 3", true},
    {".5 == 0.5", true},
    {"5. == 5", true},
    {"-0 == 0", true},
    {"1E+2 == 100", true},
    {"2.5e-1 == 0.25", true},
    /* quoted numbers are numbers: quoting does not matter */
    {"'10' > '9'", true},
    {"'10' < '9'", false},
    {"\"10\" == 10.00", true},
    {"'{{params.n}}' > '9'", true},
    /* otherwise byte-wise strings */
    {"'10x' < '9x'", true},
    {"10 < 9a", true},
    {"1e999 < 2", true},   /* overflows to inf: not a number, so '1' < '2' */
    {"0x10 == 16", false}, /* no hex */
    {"nan == nan", true},  /* no nan: equal strings */
    {"' 10' == 10", false},
    {"'abc' < 'abd'", true},
    {"\"abc\" < \"abd\"", true},
    {"abc < abd", true},
    {"abc <= abd", true},
    {"abc != abd", true},
    {"abc > abd", false},
    {"abc >= abd", false},
    {"abc == abd", false},
    {"abc == abc", true},
    {"abc <= abc", true},
    {"abc >= abc", true},
    {"abc < abc", false},
    {"B < a", true}, /* bytes, not case-folded */
    {"'' < a", true},
    {"'' == ''", true},
    {"{{params.empty}} == ''", true},
    {"a==a", true},
    {"a==b", false},
    {"prod:eu/1 == 'prod:eu/1'", true},
    /* all six operators numerically */
    {"2 == 2.0", true},
    {"2 != 2.0", false},
    {"2 < 3", true},
    {"3 > 2", true},
    {"2 <= 2", true},
    {"2 >= 3", false},
    /* precedence: ! over &&, && over ||, comparison over ! */
    {"true || false && false", true},
    {"false && false || true", true},
    {"!false && false", false},
    {"!true || true", true},
    {"!a == b", true},
    {"!(true || true)", false},
    {"(true || false) && false", false},
    {"!!true", true},
    {"!!!true", false},
    {"((((true))))", true},
    {"(a == a) && (b != c)", true},
    {"true&&false||true", true},
    /* lone operands */
    {"true", true},
    {"TRUE", true},
    {"Yes", true},
    {"{{params.Yes}}", true},
    {"1", true},
    {"-1", true},
    {"2.5", true},
    {"false", false},
    {"False", false},
    {"NO", false},
    {"0", false},
    {"{{params.zero}}", false},
    {"''", false},
    {"{{params.empty}}", false},
    {"{{steps.e.outputs.params.better}}", true},
    /* strings: escapes and substitution */
    {"'a b' == 'a b'", true},
    {"'it\\'s' == \"it's\"", true},
    {"'a\\\\b' == \"a\\\\b\"", true},
    {"\"say \\\"hi\\\"\" == 'say \"hi\"'", true},
    {"'x{{params.env}}y' == xdevy", true},
    {"'{{params.env}}{{params.n}}' == dev10", true},
    {"{{ params.env }} == dev", true},
    {"{{\tparams.env\n}} == dev", true},
    {"  {{params.env}}   ==   dev  ", true},
    /* a resolved value is one operand, however it reads */
    {"{{params.msg}} == 'a && b) ||'", true},
    {"'{{params.msg}}' == 'a && b) ||'", true},
    {"{{params.msg}} != x", true},
    {"{{params.quote}} == 'it\\'s \"x\"'", true},
    {"{{params.tmpl}} == '{{params.n}}'", false}, /* value not expanded again */
    /* short-circuit: the untaken branch is never resolved */
    {"true || {{params.nope}}", true},
    {"false && {{params.nope}} == 1", false},
    {"true || {{params.maybe}}", true},
};

Test(expr, truth_table)
{
    for (size_t i = 0; i < sizeof truths / sizeof truths[0]; i++)
        cr_expect_eq(ev(truths[i].text), truths[i].want, "%s: expected %s", truths[i].text,
                     truths[i].want ? "true" : "false");
}

Test(expr, short_circuit_resolves_only_taken_branches)
{
    struct rstate st = {0};
    char err[256] = "";
    bool r = false;
    cr_assert_eq(expr_eval("{{params.n}} > 3 || {{params.env}} == x && {{params.skip}}", resolve,
                           &st, &r, err, sizeof err),
                 0, "%s", err);
    cr_assert(r);
    cr_assert_str_eq(st.seen, "params.n;");

    st = (struct rstate){0};
    r = true;
    cr_assert_eq(
        expr_eval("{{params.n}} < 3 && '{{params.env}}' || {{params.skip}} && '{{params.empty}}'",
                  resolve, &st, &r, err, sizeof err),
        0, "%s", err);
    cr_assert(!r, "yes && '' is false");
    cr_assert_str_eq(st.seen, "params.n;params.skip;params.empty;");
}

static const struct {
    const char *text;
    const char *msg; /* the whole reason, "col N: ..." */
} errors[] = {
    {"", "col 1: empty expression"},
    {"   \t ", "col 1: empty expression"},
    {"(true", "col 6: missing ')' to close '(' at col 1"},
    {"((a == b) || c", "col 15: missing ')' to close '(' at col 1"},
    {"true)", "col 5: unmatched ')'"},
    {"(a == b))", "col 9: unmatched ')'"},
    {"(a b)", "col 4: expected an operator or ')' before 'b'"},
    {"true &&", "col 8: expected an operand after '&&', found end of expression"},
    {"a == 1 ||  ", "col 12: expected an operand after '||', found end of expression"},
    {"true && || false", "col 9: expected an operand after '&&', found '||'"},
    {"&& true", "col 1: expected an operand, found '&&'"},
    {"a ==", "col 5: expected an operand after '==', found end of expression"},
    {"a == )", "col 6: expected an operand after '==', found ')'"},
    {"!", "col 2: expected an operand after '!', found end of expression"},
    {"()", "col 2: expected an operand after '(', found ')'"},
    {"a == b == c", "col 8: comparisons cannot be chained; use '&&'"},
    {"(a) == b", "col 5: '==' cannot follow ')': only operands are compared"},
    {"a b", "col 3: expected an operator before 'b'"},
    {"a == b c", "col 8: expected an operator before 'c'"},
    {"a ! b", "col 3: expected an operator before '!'"},
    {"'abc", "col 1: unterminated string"},
    {"a == 'abc", "col 6: unterminated string"},
    {"a == \"ab\\\"", "col 6: unterminated string"},
    {"'ab\\", "col 1: unterminated string"},
    {"'a\\n' == a", "col 3: unknown escape '\\n' in string (only \\\\, \\\" and \\')"},
    {"{{params.n", "col 1: unterminated '{{'"},
    {"a == {{params.n} == 1", "col 6: unterminated '{{'"},
    {"'x{{params.n' == 1", "col 3: unterminated '{{'"},
    {"{{ }} == a", "col 1: empty reference '{{}}'"},
    {"'{{}}'", "col 2: empty reference '{{}}'"},
    {"a = b", "col 3: unexpected '=' (use '==')"},
    {"a & b", "col 3: unexpected '&' (use '&&')"},
    {"a | b", "col 3: unexpected '|' (use '||')"},
    {"a # b", "col 3: unexpected '#'"},
    {"{a}", "col 1: unexpected '{'"},
    {"a }} b", "col 3: unexpected '}'"},
    {"a == b\x01", "col 7: unexpected byte 0x01"},
    {"a == \xc3\xa9", "col 6: unexpected byte 0xc3"},
    {"+", "col 1: unexpected '+'"},
    {"1e+5x == 1", "col 1: malformed number '1e+5x'"},
    {"maybe", "col 1: 'maybe' is not a boolean"},
    {"true || maybe", "col 9: 'maybe' is not a boolean"}, /* literals checked wherever */
    {"'x y'", "col 1: 'x y' is not a boolean"},
    {"{{params.maybe}}", "col 1: 'maybe' is not a boolean (value of {{params.maybe}})"},
    {"{{params.spaced}}", "col 1: ' true' is not a boolean (value of {{params.spaced}})"},
    {"{{params.paren}}", "col 1: 'true) || (true' is not a boolean (value of {{params.paren}})"},
    {"{{params.msg}}", "col 1: 'a && b) ||' is not a boolean (value of {{params.msg}})"},
    {"true && {{params.nope}} == 1", "col 9: unknown reference: no such reference 'params.nope'"},
    {"'a{{ params.nope }}' == 1", "col 3: unknown reference: no such reference 'params.nope'"},
    {"{{params.silent}} == 1", "col 1: unknown reference: {{params.silent}}"},
    {"{{params.null}} == 1", "col 1: unknown reference: {{params.null}} resolved to nothing"},
};

Test(expr, errors)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        char err[256] = "";
        bool r = false;
        int rc = expr_eval(errors[i].text, resolve, NULL, &r, err, sizeof err);
        cr_expect_eq(rc, -EINVAL, "%s: rc %d", errors[i].text, rc);
        cr_expect_str_eq(err, errors[i].msg, "for %s", errors[i].text);
    }
}

Test(expr, syntax_errors_come_before_resolving)
{
    struct rstate st = {0};
    char err[256] = "";
    bool r = false;
    /* the unknown reference comes first in the text, the syntax error wins */
    int rc = expr_eval("{{params.nope}} == 1 &&", resolve, &st, &r, err, sizeof err);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_str_eq(err, "col 24: expected an operand after '&&', found end of expression");
    cr_assert_eq(st.calls, 0);

    rc = expr_eval("{{params.n}} > 3 || maybe", resolve, &st, &r, err, sizeof err);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_str_eq(err, "col 21: 'maybe' is not a boolean");
    cr_assert_eq(st.calls, 0);
}

Test(expr, null_arguments)
{
    char err[64] = "x";
    bool r = true;
    cr_assert_eq(expr_eval(NULL, resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 1: empty expression");
    /* no resolver: fine without references, an error with one */
    cr_assert_eq(expr_eval("1 < 2", NULL, NULL, &r, err, sizeof err), 0);
    cr_assert(r);
    cr_assert_eq(expr_eval("{{params.n}}", NULL, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 1: unknown reference: {{params.n}} (no resolver)");
    /* no err buffer */
    cr_assert_eq(expr_eval("(", resolve, NULL, &r, NULL, 0), -EINVAL);
    cr_assert_eq(expr_eval("a == a", resolve, NULL, &r, NULL, 0), 0);
    cr_assert(r);
}

Test(expr, tiny_err_buffer_is_truncated)
{
    char err[9];
    memset(err, 'z', sizeof err);
    bool r = false;
    cr_assert_eq(expr_eval("a == b == c", resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 8: c");
    char one[1] = {'z'};
    cr_assert_eq(expr_eval("'x", resolve, NULL, &r, one, sizeof one), -EINVAL);
    cr_assert_eq(one[0], '\0');
}

Test(expr, length_bound)
{
    char *t = xmalloc(EXPR_MAX_TEXT + 2);
    memset(t, ' ', EXPR_MAX_TEXT);
    memcpy(t, "true", 4);
    t[EXPR_MAX_TEXT] = '\0';
    char err[256] = "";
    bool r = false;
    cr_assert_eq(expr_eval(t, resolve, NULL, &r, err, sizeof err), 0, "%s", err);
    cr_assert(r);
    t[EXPR_MAX_TEXT] = ' ';
    t[EXPR_MAX_TEXT + 1] = '\0';
    cr_assert_eq(expr_eval(t, resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 4097: expression longer than 4096 bytes");
    cr_assert_eq(expr_check(t, NULL, NULL, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 4097: expression longer than 4096 bytes");
    free(t);
}

/* n '(' + "true" + n ')' */
static char *parens(int n)
{
    char *t = xmalloc((size_t)n * 2 + 5);
    memset(t, '(', (size_t)n);
    memcpy(t + n, "true", 4);
    memset(t + n + 4, ')', (size_t)n);
    t[2 * n + 4] = '\0';
    return t;
}

Test(expr, depth_bound)
{
    char err[256] = "";
    bool r = false;
    char *t = parens(EXPR_MAX_DEPTH);
    cr_assert_eq(expr_eval(t, resolve, NULL, &r, err, sizeof err), 0, "%s", err);
    cr_assert(r);
    free(t);
    t = parens(EXPR_MAX_DEPTH + 1);
    cr_assert_eq(expr_eval(t, resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 65: nesting deeper than 64 levels");
    free(t);
    t = parens(2000); /* deep enough to hurt an unbounded recursion */
    cr_assert_eq(expr_eval(t, resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 65: nesting deeper than 64 levels");
    free(t);

    /* '!' counts too: 64 of them is an even number of negations */
    char bang[EXPR_MAX_TEXT];
    memset(bang, '!', EXPR_MAX_DEPTH);
    strcpy(bang + EXPR_MAX_DEPTH, "false");
    cr_assert_eq(expr_eval(bang, resolve, NULL, &r, err, sizeof err), 0, "%s", err);
    cr_assert(!r);
    memset(bang, '!', 3000);
    strcpy(bang + 3000, "false");
    cr_assert_eq(expr_eval(bang, resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 65: nesting deeper than 64 levels");
    /* mixed: 32 "!(" pairs is 64 levels */
    char mix[256] = "";
    for (int i = 0; i < 32; i++)
        strcat(mix, "!(");
    strcat(mix, "true");
    for (int i = 0; i < 32; i++)
        strcat(mix, ")");
    cr_assert_eq(expr_eval(mix, resolve, NULL, &r, err, sizeof err), 0, "%s", err);
    cr_assert(r);
    memmove(mix + 1, mix, strlen(mix) + 1);
    mix[0] = '!';
    cr_assert_eq(expr_eval(mix, resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 65: nesting deeper than 64 levels");
}

Test(expr, large_values)
{
    char *big = xmalloc(EXPR_MAX_VALUE + 2);
    memset(big, 'v', EXPR_MAX_VALUE);
    big[EXPR_MAX_VALUE] = '\0';
    struct rstate st = {.big = big};
    char err[256] = "";
    bool r = false;
    cr_assert_eq(
        expr_eval("{{params.big}} == '{{params.big}}' && '{{params.big}}x' > {{params.big}}",
                  resolve, &st, &r, err, sizeof err),
        0, "%s", err);
    cr_assert(r);
    big[EXPR_MAX_VALUE] = 'v';
    big[EXPR_MAX_VALUE + 1] = '\0';
    cr_assert_eq(expr_eval("a == {{params.big}}", resolve, &st, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 6: value of {{params.big}} is longer than 65536 bytes");
    free(big);

    /* a quoted string is bounded after substitution too */
    big = xmalloc(EXPR_MAX_VALUE + 1);
    memset(big, 'w', EXPR_MAX_VALUE);
    big[EXPR_MAX_VALUE] = '\0';
    st.big = big;
    char text[EXPR_MAX_TEXT + 1] = "'";
    int k = EXPR_MAX_OPERAND / EXPR_MAX_VALUE + 1;
    for (int i = 0; i < k; i++)
        strcat(text, "{{params.big}}");
    strcat(text, "' == x");
    cr_assert_eq(expr_eval(text, resolve, &st, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 1: string longer than 1048576 bytes after substitution");
    free(big);
}

/* A resolver that evaluates an expression itself: no shared state. */
static int nested_resolve(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    (void)arg;
    bool r = false;
    int rc = expr_eval(ref, resolve, NULL, &r, err, errlen);
    if (rc)
        return rc;
    *value = r ? "yes" : "no";
    return 0;
}

Test(expr, reentrant)
{
    char err[256] = "";
    bool r = false;
    cr_assert_eq(expr_eval("{{ {{params.n}} > 3 }} && !{{'{{params.env}}' == prod}}",
                           nested_resolve, NULL, &r, err, sizeof err),
                 -EINVAL, "the first '}}' closes the outer reference");
    cr_assert_eq(expr_eval("{{ 2 > 1 && (a < b) }} && !{{ 1 > 2 }}", nested_resolve, NULL, &r, err,
                           sizeof err),
                 0, "%s", err);
    cr_assert(r);
    cr_assert_eq(expr_eval("{{ 2 > }}", nested_resolve, NULL, &r, err, sizeof err), -EINVAL);
    cr_assert_str_eq(
        err,
        "col 1: unknown reference: col 4: expected an operand after '>', found end of expression");
}

/* visit: record refs; reject those starting with "steps.x." */
struct vstate {
    char seen[512];
    int calls;
};

static int visit(const char *ref, void *arg, char *err, size_t errlen)
{
    struct vstate *v = arg;
    v->calls++;
    size_t n = strlen(v->seen);
    snprintf(v->seen + n, sizeof v->seen - n, "%s;", ref);
    if (!strncmp(ref, "steps.x.", 8)) {
        snprintf(err, errlen, "unknown step 'x' in {{%s}}", ref);
        return -ENOENT;
    }
    if (!strcmp(ref, "quiet"))
        return -EPERM;
    return 0;
}

Test(expr, check_visits_in_order)
{
    struct vstate v = {0};
    char err[256] = "";
    int rc = expr_check("{{a}} == '{{ b }}x\\'{{c}}' || !({{d.e}} && \"y{{f}}{{g}}\") || h != "
                        "{{ i\t}}",
                        visit, &v, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(v.seen, "a;b;c;d.e;f;g;i;");
    cr_assert_eq(err[0], '\0');

    /* references are not resolved at check time: any value is fine */
    v = (struct vstate){0};
    cr_assert_eq(expr_check("{{params.anything}}", visit, &v, err, sizeof err), 0, "%s", err);
    cr_assert_eq(v.calls, 1);

    /* syntax only */
    cr_assert_eq(expr_check("{{a}} > 3 && ({{b}} || c == d)", NULL, NULL, err, sizeof err), 0, "%s",
                 err);
}

Test(expr, check_rejects)
{
    struct vstate v = {0};
    char err[256] = "";
    int rc = expr_check("{{a}} == 1 && '-{{steps.x.outputs.params.p}}' == 2 && {{b}}", visit, &v,
                        err, sizeof err);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_str_eq(err, "col 17: unknown step 'x' in {{steps.x.outputs.params.p}}");
    cr_assert_str_eq(v.seen, "a;steps.x.outputs.params.p;", "the walk stops at the rejection");

    v = (struct vstate){0};
    cr_assert_eq(expr_check("a == {{ quiet }}", visit, &v, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 6: rejected reference {{quiet}}");

    /* a syntax error is reported before any visit */
    v = (struct vstate){0};
    cr_assert_eq(expr_check("{{a}} == {{b}} (", visit, &v, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 16: expected an operator before '('");
    cr_assert_eq(v.calls, 0);
    cr_assert_eq(expr_check("{{a}} || nope", visit, &v, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 10: 'nope' is not a boolean");
    cr_assert_eq(v.calls, 0);
    cr_assert_eq(expr_check("", visit, &v, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "col 1: empty expression");
}

static void expand_ok(const char *text, size_t max, const char *want)
{
    char err[256] = "";
    char *out = NULL;
    int rc = expr_expand(text, resolve, NULL, max, &out, err, sizeof err);
    cr_assert_eq(rc, 0, "expr_expand(%s): %d %s", text, rc, err);
    cr_assert_str_eq(out, want, "expr_expand(%s)", text);
    free(out);
}

static void expand_fails(const char *text, size_t max, int want_rc, const char *want_err)
{
    char err[256] = "";
    char *out = (char *)"junk";
    int rc = expr_expand(text, resolve, NULL, max, &out, err, sizeof err);
    cr_assert_eq(rc, want_rc, "expr_expand(%s) = %d: %s", text, rc, err);
    cr_assert_null(out);
    cr_assert_str_eq(err, want_err, "expr_expand(%s)", text);
}

Test(expr, expand)
{
    expand_ok("plain text, no templates } {", 100, "plain text, no templates } {");
    expand_ok("", 0, "");
    expand_ok("run {{params.env}} n={{params.n}}!", 100, "run dev n=10!");
    expand_ok("{{  params.env\t}}", 100, "dev");
    expand_ok("{{params.n}}{{params.n}}", 4, "1010");
    expand_ok("a{{params.empty}}b", 2, "ab");
    expand_ok("{{params.tmpl}}", 100, "{{params.n}}"); /* values are not expanded again */
    expand_ok("{{params.msg}}", 100, "a && b) ||");
    expand_ok("abcdef", 6, "abcdef");
    expand_ok("x{{params.env}}", SIZE_MAX, "xdev");

    expand_fails("a {{params.env", 100, -EINVAL, "col 3: unterminated '{{'");
    expand_fails("{{params.env}} {{", 100, -EINVAL, "col 16: unterminated '{{'");
    expand_fails("x {{ }} y", 100, -EINVAL, "col 3: empty reference '{{}}'");
    expand_fails("x {{params.nope}}", 100, -EINVAL,
                 "col 3: unknown reference: no such reference 'params.nope'");
    expand_fails("{{params.silent}}", 100, -EINVAL, "col 1: unknown reference: {{params.silent}}");
    expand_fails("{{params.n}}{{params.n}}", 3, -E2BIG,
                 "col 13: expanded text longer than 3 bytes ({{params.n}})");
    expand_fails("abcdef", 5, -E2BIG, "col 6: expanded text longer than 5 bytes");
    expand_fails("ab{{params.env}}cdef", 6, -E2BIG, "col 18: expanded text longer than 6 bytes");

    char err[64];
    char *out = NULL;
    cr_assert_eq(expr_expand("{{params.n}}", NULL, NULL, 10, &out, err, sizeof err), -EINVAL);
    cr_assert_null(out);
    cr_assert_eq(expr_expand(NULL, resolve, NULL, 10, &out, err, sizeof err), -EINVAL);
    cr_assert_eq(expr_expand("x", resolve, NULL, 10, NULL, err, sizeof err), -EINVAL);
}

/* --- the template grammar (issue 14): one parser for spec.c, flow.c, dag.c */

static void ref_is(const char *in, expr_ref_kind_t kind, const char *a, const char *b)
{
    expr_ref_t r = expr_ref_parse(in, strlen(in));
    cr_assert_eq(r.kind, kind, "expr_ref_parse(%s): kind %d, want %d", in, r.kind, kind);
    if (kind == EXPR_REF_BAD) {
        cr_assert_not_null(r.why, "expr_ref_parse(%s): no why", in);
        return;
    }
    if (a) {
        cr_assert_eq(r.alen, strlen(a), "expr_ref_parse(%s): a is '%.*s', want '%s'", in,
                     (int)r.alen, r.a, a);
        cr_assert(!memcmp(r.a, a, r.alen));
    }
    if (b) {
        cr_assert_eq(r.blen, strlen(b), "expr_ref_parse(%s): b is '%.*s', want '%s'", in,
                     (int)r.blen, r.b, b);
        cr_assert(!memcmp(r.b, b, r.blen));
    }
}

Test(expr, ref_forms)
{
    ref_is("params.n", EXPR_REF_PARAM, "n", NULL);
    ref_is("params.a b", EXPR_REF_PARAM, "a b", NULL); /* the spec says which params exist */
    ref_is("steps.train.outputs.params.acc", EXPR_REF_STEP, "train", "acc");
    ref_is("steps.a.b.outputs.params.c.d", EXPR_REF_STEP, "a.b", "c.d");
    ref_is("steps.a.outputs.params.outputs.params.x", EXPR_REF_STEP, "a",
           "outputs.params.x"); /* S ends at the first ".outputs.params." */
    ref_is("item", EXPR_REF_ITEM, "", NULL);
    ref_is("item.shard", EXPR_REF_ITEM, "shard", NULL);
    ref_is("item.a-b_c.d", EXPR_REF_ITEM, "a-b_c.d", NULL);
    ref_is("run.id", EXPR_REF_RUN, "id", NULL);
    ref_is("run.name", EXPR_REF_RUN, "name", NULL);
    ref_is("run.status", EXPR_REF_STATUS, "status", NULL);
    ref_is("inputs.params.lr", EXPR_REF_INPUTS, "lr", NULL);
    ref_is("inputs.params.a.b-c", EXPR_REF_INPUTS, "a.b-c", NULL);
    ref_is("inputs.x", EXPR_REF_BAD, NULL, NULL); /* artifacts are files, not references */
    ref_is("inputs.params.", EXPR_REF_BAD, NULL, NULL);
    ref_is("inputs.params.a b", EXPR_REF_BAD, NULL, NULL);
    ref_is("inputs", EXPR_REF_BAD, NULL, NULL);
    const char *bad[] = {"",
                         "params.",
                         "params",
                         "steps",
                         "steps.a",
                         "steps.a.acc",
                         "steps.a.outputs.params.",
                         "steps..outputs.params.x",
                         "steps.a b.outputs.params.x",
                         "item.",
                         "item[0]",
                         "item.a b",
                         "items",
                         " item", /* not trimmed: the caller trims */
                         "item ",
                         "run",
                         "run.date",
                         "run.idx",
                         "nope",
                         "echo:x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ref_is(bad[i], EXPR_REF_BAD, NULL, NULL);
    cr_assert_str_eq(expr_ref_parse("item[0]", 7).why, "use {{item}} or {{item.KEY}}");
    cr_assert_eq(expr_ref_parse(NULL, 0).kind, EXPR_REF_BAD);
    /* the length bounds the parse, not a NUL */
    cr_assert_eq(expr_ref_parse("item.kXYZ", 4).kind, EXPR_REF_ITEM);
    cr_assert_eq(expr_ref_parse("run.idXYZ", 6).kind, EXPR_REF_RUN);
}

/* The pieces of text as "T:literal" and "R:inside" joined by '|'; the
 * iterator's result at the end in *rc, each piece's offset checked. */
static char *pieces(const char *text, int *rc)
{
    static char out[512];
    expr_tmpl_t it;
    expr_piece_t p;
    size_t o = 0, expect_off = 0;
    out[0] = '\0';
    expr_tmpl_init(&it, text);
    while ((*rc = expr_tmpl_next(&it, &p)) > 0) {
        cr_assert_eq(p.off, expect_off, "%s: piece at %zu, want %zu", text, p.off, expect_off);
        cr_assert_gt(p.len, 0);
        if (p.is_ref) {
            cr_assert(!memcmp(text + p.off, "{{", 2) && !memcmp(text + p.off + p.len - 2, "}}", 2));
            cr_assert_eq(p.ref.kind, expr_ref_parse(p.in, p.inlen).kind);
            o += (size_t)snprintf(out + o, sizeof out - o, "%sR:%.*s", o ? "|" : "", (int)p.inlen,
                                  p.in);
        } else {
            for (size_t j = p.off; j + 1 < p.off + p.len; j++)
                cr_assert(text[j] != '{' || text[j + 1] != '{', "%s: a literal holds '{{'", text);
            o += (size_t)snprintf(out + o, sizeof out - o, "%sT:%.*s", o ? "|" : "", (int)p.len,
                                  text + p.off);
        }
        expect_off = p.off + p.len;
    }
    if (*rc < 0)
        cr_assert_eq(p.off, expect_off, "%s: error at %zu, want %zu", text, p.off, expect_off);
    else
        cr_assert_eq(expect_off, strlen(text), "%s: pieces do not cover the text", text);
    return out;
}

Test(expr, template_pieces)
{
    int rc;
    cr_assert_str_eq(pieces("", &rc), "");
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(pieces("plain } { text", &rc), "T:plain } { text");
    cr_assert_str_eq(pieces("{{item}}", &rc), "R:item");
    cr_assert_str_eq(pieces("{{ item }}", &rc), "R:item");
    cr_assert_str_eq(pieces("{{\t\n item\r\n\v\f}}", &rc), "R:item");
    cr_assert_str_eq(pieces("a {{ item.k }}-{{run.id}}b", &rc), "T:a |R:item.k|T:-|R:run.id|T:b");
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(pieces("{{a}}{{ b }}", &rc), "R:a|R:b");
    cr_assert_str_eq(pieces("{{ }}", &rc), "R:");
    cr_assert_str_eq(pieces("{{{item}}}", &rc), "R:{item|T:}"); /* ends at the first }} */
    cr_assert_str_eq(pieces("{{ a {{ b }} }}", &rc), "R:a {{ b|T: }}");
    cr_assert_str_eq(pieces("x }} {", &rc), "T:x }} {");
    /* unterminated: an error at the "{{", after the pieces before it */
    cr_assert_str_eq(pieces("ab {{item", &rc), "T:ab ");
    cr_assert_eq(rc, -EINVAL);
    cr_assert_str_eq(pieces("{{a}} {{", &rc), "R:a|T: ");
    cr_assert_eq(rc, -EINVAL);

    expr_tmpl_t it;
    expr_piece_t p;
    expr_tmpl_init(&it, "x{{ steps.s.outputs.params.p }}");
    cr_assert_eq(expr_tmpl_next(&it, &p), 1);
    cr_assert_eq(expr_tmpl_next(&it, &p), 1);
    cr_assert(p.is_ref);
    cr_assert_eq(p.off, 1);
    cr_assert_eq(p.len, 30);
    cr_assert_eq(p.ref.kind, EXPR_REF_STEP);
    cr_assert_eq(p.ref.alen, 1);
    cr_assert_eq(p.ref.a[0], 's');
    cr_assert_eq(expr_tmpl_next(&it, &p), 0);
    cr_assert_eq(expr_tmpl_next(&it, &p), 0, "the end stays the end");
    expr_tmpl_init(&it, NULL);
    cr_assert_eq(expr_tmpl_next(&it, &p), 0);
}

Test(expr, when_per_item)
{
    const char *yes[] = {"{{item}} != 4",
                         "{{ item }} != 4",
                         "{{\titem\n}} != 4",
                         "{{ item.k }} == a",
                         "'{{item}}' != b && '{{ item }}' != c",
                         "\"x{{ item.shard }}\" == xa",
                         "true || {{ item }}",
                         "{{steps.a.outputs.params.x}} == {{ item }}",
                         "!({{ item }})"};
    const char *no[] = {NULL,
                        "",
                        "true",
                        "{{steps.a.outputs.params.item}} == 1",
                        "{{ steps.item.outputs.params.x }} == 1",
                        "{{run.name}} == item",
                        "'item' == item",
                        "{{ items }} == 1", /* a bad reference, not the item */
                        "{{ params.item }} == 1",
                        "{{ item }} ==", /* not an expression */
                        "'{{ item }} == 1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_assert(expr_when_per_item(yes[i]), "'%s' should be per item", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_assert(!expr_when_per_item(no[i]), "'%s' should be for the whole step", no[i]);
}

/* The evaluator, expansion and check read spaced references as the
 * unspaced ones: the resolver gets the same trimmed text. */
Test(expr, spaced_references_resolve_alike)
{
    const char *forms[] = {"{{params.n}}", "{{ params.n }}", "{{\tparams.n\n}}",
                           "{{ \r\n params.n \v\f}}"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char text[64], err[128] = "";
        struct rstate st = {0};
        bool r = false;
        snprintf(text, sizeof text, "%s == 10 && '%s' > 9", forms[i], forms[i]);
        cr_assert_eq(expr_eval(text, resolve, &st, &r, err, sizeof err), 0, "%s: %s", text, err);
        cr_assert(r, "%s", text);
        cr_assert_str_eq(st.seen, "params.n;params.n;", "%s", text);
        char *out = NULL;
        snprintf(text, sizeof text, "n=%s.", forms[i]);
        cr_assert_eq(expr_expand(text, resolve, NULL, 100, &out, err, sizeof err), 0, "%s", err);
        cr_assert_str_eq(out, "n=10.");
        free(out);
    }
}

/* --- fuzz */

static int accept_all(const char *ref, void *arg, char *err, size_t errlen)
{
    (void)ref, (void)err, (void)errlen;
    (*(int *)arg)++;
    return 0;
}

/* One call of each function on text: no crash, 0 or -EINVAL with a one-line
 * "col N:" reason; check and eval agree on everything but resolving. */
static void probe(const char *text)
{
    char err[256], cerr[256];
    bool r = false;
    memset(err, 'z', sizeof err);
    int rc = expr_eval(text, resolve, NULL, &r, err, sizeof err);
    cr_assert(rc == 0 || rc == -EINVAL, "expr_eval(%s) = %d", text, rc);
    if (rc) {
        cr_assert(!strncmp(err, "col ", 4) && strlen(err) > 7, "expr_eval(%s): '%s'", text, err);
        cr_assert_null(strchr(err, '\n'), "expr_eval(%s): '%s'", text, err);
    } else {
        cr_assert_eq(err[0], '\0');
    }

    int visits = 0;
    int crc = expr_check(text, accept_all, &visits, cerr, sizeof cerr);
    cr_assert(crc == 0 || crc == -EINVAL, "expr_check(%s) = %d", text, crc);
    if (crc) {
        cr_assert_eq(visits, 0);
        cr_assert_eq(rc, -EINVAL, "check refused (%s) what eval accepted: %s", cerr, text);
        cr_assert_str_eq(err, cerr, "eval and check differ on %s", text);
    } else if (rc) {
        cr_assert(strstr(err, "unknown reference") || strstr(err, "is not a boolean"),
                  "eval failed on a syntax check accepted: %s: %s", text, err);
    }

    char *out = NULL;
    int erc = expr_expand(text, resolve, NULL, 64, &out, err, sizeof err);
    cr_assert(erc == 0 || erc == -EINVAL || erc == -E2BIG, "expr_expand(%s) = %d", text, erc);
    if (erc) {
        cr_assert_null(out);
        cr_assert(!strncmp(err, "col ", 4), "expr_expand(%s): '%s'", text, err);
    } else {
        cr_assert(strlen(out) <= 64);
    }
    free(out);
}

Test(expr, fuzz_prefixes)
{
    static const char *valid[] = {
        "{{steps.e.outputs.params.better}} == true",
        "{{steps.train.outputs.params.accuracy}} >= 0.9 && '{{params.env}}' != 'prod'",
        "!({{params.skip}} == yes) || ({{params.n}} > 3)",
        "\"x\\\"{{ params.msg }}\\\\\" <= 1.5e-3 || !(!a != 'b\\'c')",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t n = strlen(valid[i]);
        char *p = xmalloc(n + 1);
        int ok = 0;
        for (size_t k = 0; k <= n; k++) {
            memcpy(p, valid[i], k);
            p[k] = '\0';
            probe(p);
            bool r;
            ok += expr_eval(p, resolve, NULL, &r, NULL, 0) == 0;
        }
        free(p);
        cr_assert(ok >= 1 && ok < (int)n, "%s: %d of %zu prefixes valid", valid[i], ok, n + 1);
    }
}

Test(expr, fuzz_random)
{
    static const char *pieces[] = {
        "{{params.n}}",
        "{{params.msg}}",
        "{{ params.env }}",
        "{{params.nope}}",
        "{{",
        "}}",
        "&&",
        "||",
        "==",
        "!=",
        "<=",
        ">=",
        "true",
        "false",
        "yes",
        "0",
        "1.5e3",
    };
    static const char alphabet[] = "{}()!=<>&|'\"\\ \tabetru01.-+e:/_#";
    uint64_t seed = 0x5eedf00dULL;
    int valid = 0, trues = 0;
    for (int n = 0; n < 5000; n++) {
        char s[128];
        size_t len = 0, want = h_rand(&seed) % 48;
        while (len < want) {
            uint64_t x = h_rand(&seed);
            const char *add;
            char one[2] = {0};
            if (x % 3 == 0) {
                add = pieces[(x >> 8) % (sizeof pieces / sizeof pieces[0])];
            } else {
                one[0] = alphabet[(x >> 8) % (sizeof alphabet - 1)];
                add = one;
            }
            size_t k = strlen(add);
            if (len + k >= sizeof s)
                break;
            memcpy(s + len, add, k);
            len += k;
        }
        s[len] = '\0';
        probe(s);
        bool r = false;
        if (expr_eval(s, resolve, NULL, &r, NULL, 0) == 0) {
            valid++;
            trues += r;
        }
    }
    /* the generator reaches valid expressions of both outcomes */
    cr_assert(valid > 0 && trues > 0 && trues < valid, "%d valid, %d true", valid, trues);
}

/* --- issue 15: outcomes as data */

Test(expr, ref_outcome_forms)
{
    ref_is("steps.flip.status", EXPR_REF_STEP_STATUS, "flip", "status");
    ref_is("steps.flip.exit_code", EXPR_REF_STEP_EXIT, "flip", "exit_code");
    ref_is("steps.flip.outputs.result", EXPR_REF_STEP_RESULT, "flip", "outputs.result");
    ref_is("steps.a.b.status", EXPR_REF_STEP_STATUS, "a.b", "status"); /* S holds dots */
    ref_is("steps.a.outputs.status", EXPR_REF_STEP_STATUS, "a.outputs", "status");
    /* ".outputs.params." comes first: a param named "status" is a param */
    ref_is("steps.a.outputs.params.status", EXPR_REF_STEP, "a", "status");
    ref_is("steps.a.outputs.params.outputs.result", EXPR_REF_STEP, "a", "outputs.result");
    ref_is("run.failures", EXPR_REF_FINAL, "failures", NULL);
    ref_is("run.duration", EXPR_REF_FINAL, "duration", NULL);
    const char *bad[] = {"steps.status",
                         "steps..status",
                         "steps.a b.status",
                         "steps.a.result",
                         "steps.a.outputs.result.",
                         "steps.a.exit_code.x",
                         "steps.a.Status",
                         "run.failure",
                         "run.failures.x",
                         "steps.a.outputs",
                         "steps..outputs.result"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ref_is(bad[i], EXPR_REF_BAD, NULL, NULL);
    /* the forms to use name the new ones */
    cr_assert(strstr(expr_ref_parse("steps.a.result", 14).why, "{{steps.STEP.outputs.result}}"));
    cr_assert(strstr(expr_ref_parse("run.x", 5).why, "{{run.failures}}"));
    /* the length bounds the parse */
    cr_assert_eq(expr_ref_parse("steps.a.statusXYZ", 14).kind, EXPR_REF_STEP_STATUS);
}

static int outcome_resolve(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    (void)arg;
    (void)err;
    (void)errlen;
    expr_ref_t r = expr_ref_parse(ref, strlen(ref));
    if (r.kind == EXPR_REF_STEP_RESULT)
        *value = "tails";
    else if (r.kind == EXPR_REF_STEP_STATUS)
        *value = "failed";
    else if (r.kind == EXPR_REF_STEP_EXIT)
        *value = "3";
    else
        return -EINVAL;
    return 0;
}

Test(expr, outcomes_in_conditions)
{
    char err[256];
    bool res = true;
    cr_assert_eq(expr_eval("{{steps.flip.outputs.result}} == heads", outcome_resolve, NULL, &res,
                           err, sizeof err),
                 0, "%s", err);
    cr_assert(!res);
    cr_assert_eq(expr_eval("{{ steps.t.status }} == failed && {{steps.t.exit_code}} > 2",
                           outcome_resolve, NULL, &res, err, sizeof err),
                 0, "%s", err);
    cr_assert(res);
    cr_assert_eq(expr_check("{{steps.t.exit_code}} != 2 || '{{steps.t.status}}' == ok", NULL, NULL,
                            err, sizeof err),
                 0, "%s", err);
}
