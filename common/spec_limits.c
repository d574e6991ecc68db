/* spec_limits — the spec keys of retry rules and run limits:
 * retries.when (a `when` expression over the failed attempt:
 * {{exit_code}} {{reason}} {{signal}} {{attempt}}), a step's
 * skip_on_exit_code, and the top-level parallelism and timeout.
 *
 * The retry-context references are expr_ref_parse's EXPR_REF_RETRY: valid
 * only inside retries.when (checked here); anywhere else spec_flow.c's
 * check_ref refuses them with FILE:LINE:COL. droverd evaluates the
 * expression when an attempt fails (scheduler/limits.c).
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "units.h"
#include "util.h"

#define SPEC_MAX_SKIP_CODES   32
#define SPEC_MAX_RUN_PARALLEL 1000000u

static int retry_visit(const char *ref, void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (expr_ref_parse(ref, strlen(ref)).kind == EXPR_REF_RETRY)
        return 0;
    snprintf(err, errlen,
             "{{%.60s}} cannot be used in retries.when (use {{exit_code}}, {{reason}}, "
             "{{signal}} or {{attempt}})",
             ref);
    return -EINVAL;
}

int parse_retry_when(ctx_t *c, const node_t *x, char **out)
{
    char e[256];
    *out = NULL;
    if (want_str(c, x, "retries.when") < 0 || expand(c, x, out) < 0)
        return -EINVAL;
    if (expr_check(*out, retry_visit, NULL, e, sizeof e) < 0) {
        free(*out);
        *out = NULL;
        return fail(c, x, "bad retries.when expression: %s", e);
    }
    return 0;
}

int parse_skip_codes(ctx_t *c, const node_t *v, Drover__StepSpec *st)
{
    const node_t *one[1] = {v};
    const node_t *const *kids = v->type == N_SEQ ? (const node_t *const *)v->kids : one;
    size_t n = v->type == N_SEQ ? v->nkids : 1;
    if ((v->type != N_SEQ && (v->type != N_SCALAR || is_null(v))) || n == 0)
        return fail(c, v, "'skip_on_exit_code' must be an exit code (1-255) or a list of them");
    if (n > SPEC_MAX_SKIP_CODES)
        return fail(c, v, "'skip_on_exit_code' lists more than %d codes", SPEC_MAX_SKIP_CODES);
    free(st->skip_on_exit_code);
    st->skip_on_exit_code = xcalloc(n, sizeof *st->skip_on_exit_code);
    st->n_skip_on_exit_code = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        if (want_uint(c, kids[i], "skip_on_exit_code", 1, 255, &u) < 0)
            return -EINVAL;
        st->skip_on_exit_code[st->n_skip_on_exit_code++] = (int32_t)u;
    }
    return 0;
}

bool parse_run_limit(ctx_t *c, const node_t *k, const node_t *v, spec_t *s, int *rc)
{
    uint64_t u;
    *rc = 0;
    if (!strcmp(k->str, "parallelism")) {
        *rc = want_uint(c, v, "parallelism", 1, SPEC_MAX_RUN_PARALLEL, &u);
        s->parallelism = (uint32_t)u;
        return true;
    }
    if (!strcmp(k->str, "timeout")) {
        if ((*rc = want_duration(c, v, "timeout", &s->timeout_ms)) == 0 && !s->timeout_ms)
            *rc = fail(c, v, "'timeout' must be more than 0 (leave it out for no run timeout)");
        return true;
    }
    return false;
}
