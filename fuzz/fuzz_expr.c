/* fuzz_expr — the `when:` language and {{ }} expansion (common/expr.h).
 *
 * The input is the expression text (cut at its first NUL, as a C string
 * is). Each input goes through expr_check, expr_eval (with a resolver
 * backed by a small map, plus references that echo a value, resolve to a
 * value over EXPR_MAX_VALUE, or evaluate a nested expression) and
 * expr_expand, and the documented contract is checked: 0 or -EINVAL
 * (-E2BIG too for expand), a one-line "col N:" reason, a syntax error found
 * by check is found by eval before any resolve call, and eval fails after a
 * successful check only on resolving or on a non-boolean lone operand.
 * The template iterator (expr_tmpl_next) must cut the text into contiguous
 * pieces, references trimmed and parsed as expr_ref_parse does, stop at
 * an unterminated "{{" exactly when expr_expand does, and
 * expr_when_per_item must say what expr_check's visits saw.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "fuzz_common.h"

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
    {"params.nan", "nan"},
    {"params.huge", "1e999"},
    {"run.status", "Succeeded"},
};

static char *big; /* EXPR_MAX_VALUE + 1 bytes */

struct rstate {
    int calls;
    int depth;
};

static int resolve(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    struct rstate *st = arg;
    st->calls++;
    /* "echo:TEXT" resolves to TEXT: lets the fuzzer choose values. */
    if (!strncmp(ref, "echo:", 5)) {
        *value = ref + 5;
        return 0;
    }
    /* "?EXPR" evaluates EXPR (reentrancy), a few levels deep at most. */
    if (ref[0] == '?' && st->depth < 3) {
        struct rstate inner = {0, st->depth + 1};
        bool r = false;
        int rc = expr_eval(ref + 1, resolve, &inner, &r, err, errlen);
        if (rc)
            return rc;
        *value = r ? "true" : "false";
        return 0;
    }
    if (!strcmp(ref, "params.big")) {
        *value = big;
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

static int visit_count(const char *ref, void *arg, char *err, size_t errlen)
{
    (*(int *)arg)++;
    return 0;
}

static int visit_item(const char *ref, void *arg, char *err, size_t errlen)
{
    if (expr_ref_parse(ref, strlen(ref)).kind == EXPR_REF_ITEM)
        *(bool *)arg = true;
    return 0;
}

static bool ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* An outcome reference (issue 15) is "steps." S "." FIELD: S is not
 * empty and FIELD is the word its kind names, right after S. */
static void check_outcome(const expr_ref_t *r, size_t off)
{
    const char *want = r->kind == EXPR_REF_STEP_STATUS   ? "status"
                       : r->kind == EXPR_REF_STEP_EXIT   ? "exit_code"
                       : r->kind == EXPR_REF_STEP_RESULT ? "outputs.result"
                                                         : NULL;
    if (!want)
        return;
    if (!r->alen || r->b != r->a + r->alen + 1 || r->b[-1] != '.' || r->blen != strlen(want) ||
        memcmp(r->b, want, r->blen) != 0)
        fz_fail("outcome reference at %zu split wrong", off);
}

/* The template's pieces: contiguous from 0, each reference "{{ in }}"
 * with in trimmed and parsed; 0 at the end of the text, or -EINVAL at a
 * "{{" with no "}}" after it. */
static int check_pieces(const char *text)
{
    expr_tmpl_t it;
    expr_piece_t p;
    size_t at = 0, len = strlen(text);
    int rc;
    expr_tmpl_init(&it, text);
    while ((rc = expr_tmpl_next(&it, &p)) > 0) {
        if (p.off != at || !p.len || p.off + p.len > len)
            fz_fail("piece [%zu, +%zu) after %zu in %zu bytes", p.off, p.len, at, len);
        const char *s = text + p.off;
        if (p.is_ref) {
            if (memcmp(s, "{{", 2) || memcmp(s + p.len - 2, "}}", 2))
                fz_fail("reference piece at %zu is not {{...}}", p.off);
            if (p.in < s + 2 || p.in + p.inlen > s + p.len - 2)
                fz_fail("reference inside out of its piece at %zu", p.off);
            if (p.inlen && (ws(p.in[0]) || ws(p.in[p.inlen - 1])))
                fz_fail("reference at %zu not trimmed", p.off);
            expr_ref_t r = expr_ref_parse(p.in, p.inlen);
            if (r.kind != p.ref.kind || r.alen != p.ref.alen || r.blen != p.ref.blen)
                fz_fail("reference at %zu parsed differently", p.off);
            if (r.kind == EXPR_REF_BAD && !r.why)
                fz_fail("bad reference at %zu without why", p.off);
            check_outcome(&r, p.off);
        } else {
            for (size_t j = 0; j + 1 < p.len; j++)
                if (s[j] == '{' && s[j + 1] == '{')
                    fz_fail("literal piece at %zu holds '{{'", p.off);
        }
        at += p.len;
    }
    if (rc == 0 && at != len)
        fz_fail("pieces end at %zu of %zu", at, len);
    if (rc < 0 && (p.off != at || memcmp(text + at, "{{", 2) || strstr(text + at + 2, "}}")))
        fz_fail("iterator error at %zu is not an unterminated '{{'", p.off);
    return rc;
}

static int visit_reject(const char *ref, void *arg, char *err, size_t errlen)
{
    if (!strncmp(ref, "steps.x", 7)) {
        snprintf(err, errlen, "no step x");
        return -ENOENT;
    }
    return 0;
}

static void check_err(const char *fn, int rc, const char *err, size_t errlen)
{
    if (!fz_one_line(err, errlen))
        fz_fail("%s = %d: reason not one NUL-terminated line", fn, rc);
    if (errlen > 4 && strncmp(err, "col ", 4) != 0)
        fz_fail("%s = %d: reason '%s' lacks 'col N:'", fn, rc, err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    big = malloc(EXPR_MAX_VALUE + 2);
    memset(big, '7', EXPR_MAX_VALUE + 1);
    big[EXPR_MAX_VALUE + 1] = '\0';
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_strndup(data, size);
    /* Exact-size error buffers, so an overrun is an ASan report; a short
     * one now and then exercises truncation. */
    size_t errlen = size % 13 == 5 ? 6 : 200;
    char *err = malloc(errlen), *cerr = malloc(errlen);

    int visits = 0;
    int crc = expr_check(text, visit_count, &visits, cerr, errlen);
    if (crc != 0 && crc != -EINVAL)
        fz_fail("expr_check = %d", crc);
    if (crc)
        check_err("expr_check", crc, cerr, errlen);

    struct rstate st = {0, 0};
    bool r = false;
    int rc = expr_eval(text, resolve, &st, &r, err, errlen);
    if (rc != 0 && rc != -EINVAL)
        fz_fail("expr_eval = %d", rc);
    if (rc) {
        check_err("expr_eval", rc, err, errlen);
    } else if (err[0]) {
        fz_fail("expr_eval succeeded but wrote '%s'", err);
    }
    if (crc) {
        if (visits)
            fz_fail("expr_check visited %d references before a syntax error", visits);
        if (!rc)
            fz_fail("expr_check refused (%s) what expr_eval accepted", cerr);
        if (st.calls)
            fz_fail("expr_eval resolved %d references before a syntax error", st.calls);
        if (strcmp(err, cerr) != 0)
            fz_fail("expr_eval and expr_check differ: '%s' vs '%s'", err, cerr);
    } else if (rc && errlen > 100 && !strstr(err, "unknown reference") &&
               !strstr(err, "is not a boolean") && !strstr(err, "longer than")) {
        fz_fail("expr_eval failed on what expr_check accepted: %s", err);
    }

    int vrc = expr_check(text, visit_reject, NULL, cerr, errlen);
    if (vrc != 0 && vrc != -EINVAL)
        fz_fail("expr_check(visit_reject) = %d", vrc);
    if (crc && !vrc)
        fz_fail("expr_check accepted with a rejecting visitor what it refused without one");

    int prc = check_pieces(text);
    bool item = false;
    if (expr_check(text, visit_item, &item, NULL, 0) != crc)
        fz_fail("expr_check with no err buffer differs");
    bool per_item = expr_when_per_item(text);
    if (per_item != (crc == 0 && item))
        fz_fail("expr_when_per_item = %d, but check %d and item %d", per_item, crc, item);

    for (int k = 0; k < 2; k++) {
        size_t max_out = k ? 1 << 16 : size / 2;
        char *out = (char *)1;
        struct rstate est = {0, 0};
        int erc = expr_expand(text, resolve, &est, max_out, &out, err, errlen);
        if (erc != 0 && erc != -EINVAL && erc != -E2BIG)
            fz_fail("expr_expand = %d", erc);
        const char *why = erc == -EINVAL && errlen > 100 ? strstr(err, ": ") : NULL;
        if (why && !strcmp(why, ": unterminated '{{'") && prc >= 0)
            fz_fail("expr_expand found an unterminated '{{' the iterator did not: %s", err);
        if (prc < 0 && !erc)
            fz_fail("expr_expand accepted an unterminated '{{'");
        if (erc) {
            if (out)
                fz_fail("expr_expand = %d left *out set", erc);
            check_err("expr_expand", erc, err, errlen);
        } else if (!out || strlen(out) > max_out) {
            fz_fail("expr_expand: result missing or longer than %zu", max_out);
        }
        free(out);
    }

    free(err);
    free(cerr);
    free(text);
    return 0;
}
