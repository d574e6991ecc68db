/* trigger — trigger rules and `depends` expressions (trigger.h has the
 * semantics and the grammar). The rules follow Airflow's
 * trigger_rule_dep: each is decided from counts alone, so a dependant
 * costs O(1) per ending need whatever the rule. The expression parser is
 * a recursive descent that evaluates as it parses (no tree), bounded in
 * depth; in check mode it only visits names.
 */
#include "trigger.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const struct {
    const char *name;
    Drover__TriggerRule rule;
} rules[] = {
    {"all_success", DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_SUCCESS},
    {"all_done", DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_DONE},
    {"all_failed", DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_FAILED},
    {"one_success", DROVER__TRIGGER_RULE__TRIGGER_RULE_ONE_SUCCESS},
    {"one_failed", DROVER__TRIGGER_RULE__TRIGGER_RULE_ONE_FAILED},
    {"none_failed", DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED},
    {"none_failed_min_one_success", DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED_MIN_ONE_SUCCESS},
    {"none_skipped", DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_SKIPPED},
};

bool trigger_rule_parse(const char *name, size_t len, Drover__TriggerRule *out)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (strlen(rules[i].name) == len && !memcmp(rules[i].name, name, len)) {
            *out = rules[i].rule;
            return true;
        }
    }
    return false;
}

const char *trigger_rule_name(Drover__TriggerRule rule)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (rules[i].rule == rule)
            return rules[i].name;
    return rule == DROVER__TRIGGER_RULE__TRIGGER_RULE_DEPENDS ? "depends" : "?";
}

const char *trigger_rule_names(void)
{
    return "all_success | all_done | all_failed | one_success | one_failed | none_failed | "
           "none_failed_min_one_success | none_skipped";
}

trigger_verdict_t trigger_rule_decide(Drover__TriggerRule rule, const trigger_counts_t *c,
                                      bool *by_failure)
{
    bool done = c->ended >= c->total, fail = false;
    uint32_t cancelled = c->ended - c->ok - c->failed - c->skipped;
    trigger_verdict_t v = TRIGGER_UNDECIDED;
    if (c->total == 0)
        return TRIGGER_HOLDS;
    switch (rule) {
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_SUCCESS:
        if (c->failed || c->skipped || cancelled) {
            v = TRIGGER_BROKEN;
            fail = c->failed > 0;
        } else if (c->ok == c->total) {
            v = TRIGGER_HOLDS;
        }
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_DONE:
        v = done ? TRIGGER_HOLDS : TRIGGER_UNDECIDED;
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_ALL_FAILED:
        if (c->ok || c->skipped || cancelled)
            v = TRIGGER_BROKEN;
        else if (c->failed == c->total)
            v = TRIGGER_HOLDS;
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_ONE_SUCCESS:
        if (c->ok) {
            v = TRIGGER_HOLDS;
        } else if (done) {
            v = TRIGGER_BROKEN;
            fail = c->skipped != c->total; /* all skipped: skipped, else upstream_failed */
        }
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_ONE_FAILED:
        if (c->failed)
            v = TRIGGER_HOLDS;
        else if (done)
            v = TRIGGER_BROKEN;
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED:
        if (c->failed || cancelled) {
            v = TRIGGER_BROKEN;
            fail = c->failed > 0;
        } else if (done) {
            v = TRIGGER_HOLDS;
        }
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED_MIN_ONE_SUCCESS:
        if (c->failed || cancelled) {
            v = TRIGGER_BROKEN;
            fail = c->failed > 0;
        } else if (c->skipped == c->total) {
            v = TRIGGER_BROKEN;
        } else if (done) {
            v = TRIGGER_HOLDS;
        }
        break;
    case DROVER__TRIGGER_RULE__TRIGGER_RULE_NONE_SKIPPED:
        if (c->skipped)
            v = TRIGGER_BROKEN;
        else if (done)
            v = TRIGGER_HOLDS;
        break;
    default: /* DEPENDS: dag.c decides it with trigger_depends_eval */
        v = done ? TRIGGER_HOLDS : TRIGGER_UNDECIDED;
        break;
    }
    if (by_failure)
        *by_failure = v == TRIGGER_BROKEN && fail;
    return v;
}

/* ---- depends expressions ---- */

#define MAX_DEPTH 64

typedef struct {
    const char *text, *p;
    trigger_visit_fn visit;
    trigger_lookup_fn lookup; /* NULL: check only */
    void *arg;
    char *err;
    size_t errlen;
    int depth;
    bool failed;
} dp_t;

static int dp_fail(dp_t *d, const char *at, const char *fmt, const char *what)
{
    if (!d->failed) {
        int n = snprintf(d->err, d->errlen, "col %d: ", (int)(at - d->text) + 1);
        if (n >= 0 && (size_t)n < d->errlen)
            snprintf(d->err + n, d->errlen - (size_t)n, fmt, what);
    }
    d->failed = true;
    return -EINVAL;
}

/* ch as it may appear in a one-line message: itself, or \xNN. */
static void show_char(char ch, char out[8])
{
    unsigned char u = (unsigned char)ch;
    if (u >= 0x20 && u < 0x7f)
        snprintf(out, 8, "%c", ch);
    else
        snprintf(out, 8, "\\x%02x", u);
}

static void dp_space(dp_t *d)
{
    while (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')
        d->p++;
}

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

enum { SUF_NONE, SUF_SUCCEEDED, SUF_FAILED, SUF_SKIPPED, SUF_DONE, SUF_CACHED, SUF_CANCELLED };

static int suffix_of(const char *s, size_t n)
{
    static const char *names[] = {NULL,   "succeeded", "failed",   "skipped",
                                  "done", "cached",    "cancelled"};
    for (int i = 1; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strlen(names[i]) == n && !strncasecmp(names[i], s, n))
            return i;
    return SUF_NONE;
}

static bool atom_value(int outcome, int suf)
{
    int o = outcome & ~(TRIG_TOLERATED | TRIG_UPSTREAM_FAILED);
    bool ok = o == TRIG_SUCCEEDED || o == TRIG_CACHED;
    switch (suf) {
    case SUF_SUCCEEDED:
        return ok;
    case SUF_FAILED:
        return o == TRIG_FAILED;
    case SUF_SKIPPED:
        return o == TRIG_SKIPPED;
    case SUF_DONE:
        return o != TRIG_PENDING;
    case SUF_CACHED:
        return o == TRIG_CACHED;
    case SUF_CANCELLED:
        return o == TRIG_CANCELLED;
    default: /* Argo's bare name */
        return ok || (o == TRIG_SKIPPED && !(outcome & TRIG_UPSTREAM_FAILED)) ||
               (o == TRIG_FAILED && (outcome & TRIG_TOLERATED));
    }
}

static int dp_or(dp_t *d, bool *v);

static int dp_unary(dp_t *d, bool *v)
{
    dp_space(d);
    const char *at = d->p;
    if (++d->depth > MAX_DEPTH)
        return dp_fail(d, at, "%s", "nested too deeply");
    int rc = 0;
    if (*d->p == '!') {
        d->p++;
        if ((rc = dp_unary(d, v)) == 0)
            *v = !*v;
    } else if (*d->p == '(') {
        d->p++;
        if ((rc = dp_or(d, v)) == 0) {
            dp_space(d);
            if (*d->p != ')')
                rc = dp_fail(d, d->p, "%s", "expected ')'");
            else
                d->p++;
        }
    } else if (name_char(*d->p)) {
        const char *s = d->p;
        while (name_char(*d->p))
            d->p++;
        size_t n = (size_t)(d->p - s), name_len = n;
        int suf = SUF_NONE;
        const char *dot = NULL;
        for (const char *q = s; q < d->p; q++)
            if (*q == '.')
                dot = q;
        if (dot && (suf = suffix_of(dot + 1, (size_t)(d->p - dot - 1))) != SUF_NONE)
            name_len = (size_t)(dot - s);
        if (name_len == 0)
            rc = dp_fail(d, s, "%s", "a step name is missing before the '.'");
        else if (d->visit &&
                 d->visit(s, name_len, (int)(s - d->text) + 1, d->arg, d->err, d->errlen) < 0) {
            d->failed = true; /* the visitor wrote its reason */
            rc = -EINVAL;
        } else {
            *v = d->lookup ? atom_value(d->lookup(s, name_len, d->arg), suf) : false;
        }
    } else if (*d->p == '\0') {
        rc = dp_fail(d, at, "%s", "expression ends where a step was expected");
    } else {
        char ch[8];
        show_char(*d->p, ch);
        rc = dp_fail(d, at, "unexpected '%s' (write STEP.succeeded, &&, ||, !, parentheses)", ch);
    }
    d->depth--;
    return rc;
}

static int dp_and(dp_t *d, bool *v)
{
    if (dp_unary(d, v) < 0)
        return -EINVAL;
    for (;;) {
        dp_space(d);
        if (d->p[0] != '&' || d->p[1] != '&')
            return 0;
        d->p += 2;
        bool w;
        if (dp_unary(d, &w) < 0)
            return -EINVAL;
        *v = *v && w; /* no short cut: every name is checked */
    }
}

static int dp_or(dp_t *d, bool *v)
{
    if (dp_and(d, v) < 0)
        return -EINVAL;
    for (;;) {
        dp_space(d);
        if (d->p[0] != '|' || d->p[1] != '|')
            return 0;
        d->p += 2;
        bool w;
        if (dp_and(d, &w) < 0)
            return -EINVAL;
        *v = *v || w;
    }
}

static int dp_run(dp_t *d, bool *v)
{
    if (d->errlen)
        d->err[0] = '\0';
    *v = false;
    if (dp_or(d, v) < 0)
        return -EINVAL;
    dp_space(d);
    if (*d->p) {
        char ch[8];
        show_char(*d->p, ch);
        return dp_fail(d, d->p, "unexpected '%s' (join terms with && or ||)", ch);
    }
    return 0;
}

int trigger_depends_check(const char *text, trigger_visit_fn visit, void *arg, char *err,
                          size_t errlen)
{
    dp_t d = {.text = text, .p = text, .visit = visit, .arg = arg, .err = err, .errlen = errlen};
    bool v;
    return dp_run(&d, &v);
}

int trigger_depends_eval(const char *text, trigger_lookup_fn lookup, void *arg, bool *result,
                         char *err, size_t errlen)
{
    dp_t d = {.text = text, .p = text, .lookup = lookup, .arg = arg, .err = err, .errlen = errlen};
    return dp_run(&d, result);
}
