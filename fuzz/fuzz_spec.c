/* fuzz_spec — the pipeline spec parser and validator (common/spec.h).
 *
 * Input: the YAML text, optionally followed by a NUL byte and `-p` style
 * overrides, one "key=value" per line. spec_parse must return 0 with a
 * spec whose indexes all point inside it (needs, inputs), whose argv are
 * NULL-terminated, whose needs have no cycle and whose `when` is valid
 * syntax; or fail with *out NULL and its errors, one
 * "fuzz.yaml:LINE:COL: reason" a line (at most 20, each with a position),
 * maybe then "and N more errors". The quantity parsers get the first line of the input too.
 *
 * Imports: the YAML part may be a bundle, cut at lines "---8<--- PATH":
 * the text before the first such line is the spec, each later part the
 * file PATH it imports (spec_parse_files); error lines may then name any
 * of those paths. An accepted spec's bodies (DAG templates) must lie
 * after its own steps, contiguous, their needs and inputs inside
 * themselves.
 *
 * An accepted spec is then submitted, as `drover run submit` would, to a
 * fresh scheduler with three agents (agents_harness.h), and those agents
 * run whatever is placed on them for a few rounds (fz_drive): so what the
 * parser accepts must also be what droverd can build, expand (templates,
 * `when`, fan-outs, inputs) and run. DROVER_FUZZ_SUBMIT=0 skips this
 * (parser only, about three times faster).
 */
#include "agents_harness.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "fuzz_common.h"
#include "spec.h"

#define MAX_OVERRIDES 16
#define MAX_FILES     16
#define CUT           "---8<--- "

static spec_import_t files[MAX_FILES];
static size_t n_files;

static void check_kvs(const spec_kv_t *kv, size_t n, const char *what)
{
    if (n && !kv)
        fz_fail("%zu %s but no array", n, what);
    for (size_t i = 0; i < n; i++)
        if (!kv[i].key || !kv[i].value)
            fz_fail("%s %zu has a NULL key or value", what, i);
}

static void check_kv_msgs(Drover__KeyValue *const *kv, size_t n, const char *what)
{
    if (n && !kv)
        fz_fail("%zu %s but no array", n, what);
    for (size_t i = 0; i < n; i++)
        if (!kv[i] || !kv[i]->key || !kv[i]->value)
            fz_fail("%s %zu has a NULL key or value", what, i);
}

static void check_strv(char *const *v, size_t n, const char *what)
{
    if (n && !v)
        fz_fail("%zu %s but no array", n, what);
    for (size_t i = 0; i < n; i++)
        if (!v[i])
            fz_fail("%s %zu is NULL", what, i);
}

/* Depth-first search for a cycle through needs; 1 = on the stack. */
static bool has_cycle(const spec_t *s, size_t i, uint8_t *mark)
{
    if (mark[i] == 1)
        return true;
    if (mark[i] == 2)
        return false;
    mark[i] = 1;
    for (size_t j = 0; j < s->steps[i]->n_needs; j++)
        if (has_cycle(s, s->steps[i]->needs[j], mark))
            return true;
    mark[i] = 2;
    return false;
}

/* The errors of a refused spec: NUL-terminated in err, one a line, each
 * "fuzz.yaml:LINE:COL: reason" (the first may be cut short by a small
 * buffer), at most 20, then maybe "and N more error(s)". */
static void check_errors(int rc, const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen), lines = 0;
    if (n == errlen || n == 0)
        fz_fail("spec_parse = %d: reason empty or not NUL-terminated", rc);
    for (const char *l = err; l; lines++) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        int line = 0, col = 0, used = 0;
        if (lines > 0 && !nl && !strncmp(l, "and ", 4) && strstr(l, " more error"))
            break;
        /* the file it names: the spec, or one of the imported */
        const char *file = "fuzz.yaml";
        size_t best = 0;
        for (size_t i = 0; i < n_files; i++) {
            size_t fl = strlen(files[i].path);
            if (len > fl && !strncmp(l, files[i].path, fl) && l[fl] == ':' && fl > best) {
                file = files[i].path;
                best = fl;
            }
        }
        size_t flen = strlen(file);
        if (lines == 0 && n == errlen - 1 && !nl) { /* cut short: the start of a name */
            bool named = !strncmp(l, "fuzz.yaml", len < 9 ? len : 9);
            for (size_t i = 0; i < n_files && !named; i++)
                named = !strncmp(l, files[i].path,
                                 len < strlen(files[i].path) ? len : strlen(files[i].path));
            if (!named)
                fz_fail("spec_parse = %d: reason '%s' does not name the file", rc, l);
        } else if (strncmp(l, file, flen) || l[flen] != ':' ||
                   sscanf(l + flen, ":%d:%d: %n", &line, &col, &used) != 2 || used == 0 ||
                   line < 1 || col < 1 || flen + (size_t)used >= len) {
            fz_fail("spec_parse = %d: error %zu '%.*s' has no position or reason", rc, lines,
                    (int)len, l);
        }
        l = nl ? nl + 1 : NULL;
    }
    if (lines > 20)
        fz_fail("spec_parse = %d: %zu lines of errors (at most 20 and 'and N more')", rc, lines);
}

static void check_spec(const spec_t *s)
{
    if (!s->name)
        fz_fail("spec without a name");
    check_kvs(s->params, s->param_count, "params");
    if (s->step_count && !s->steps)
        fz_fail("steps missing");
    for (size_t i = 0; i < s->step_count; i++) {
        const Drover__StepSpec *st = s->steps[i];
        if (!st || !*st->name || (!st->n_argv && !st->suspend && !st->uses_body) || !st->when ||
            !st->items_from || !st->image || !st->resources || !st->retries)
            fz_fail("step %zu: no name, no argv, a NULL string or no resources/retries", i);
        /* a group runs nothing itself; its body exists */
        if (st->uses_body && (st->n_argv || st->uses_body > s->body_count))
            fz_fail("step %s: a group with argv, or of body %u of %zu", st->name, st->uses_body,
                    s->body_count);
        /* steps stay in their body: needs and inputs index the same one */
        size_t lo = 0, hi = s->root_count;
        if (st->in_body) {
            if (st->in_body > s->body_count)
                fz_fail("step %s: in body %u of %zu", st->name, st->in_body, s->body_count);
            lo = s->bodies[st->in_body - 1]->first_step;
            hi = lo + s->bodies[st->in_body - 1]->n_steps;
        }
        if (i < lo || i >= hi)
            fz_fail("step %s (%zu) outside its body [%zu, %zu)", st->name, i, lo, hi);
        for (size_t j = 0; j < st->n_needs; j++)
            if (st->needs[j] < lo || st->needs[j] >= hi)
                fz_fail("step %s: need %u outside its body", st->name, st->needs[j]);
        for (size_t j = 0; j < st->n_inputs; j++)
            if (!st->inputs[j]->from_group_input &&
                (st->inputs[j]->step < lo || st->inputs[j]->step >= hi))
                fz_fail("step %s: input %zu from outside its body", st->name, j);
        if (st->n_with && !st->uses_body)
            fz_fail("step %s: with: without a DAG template", st->name);
        /* an approval gate runs nothing and is never cached */
        if (st->suspend && (st->n_argv || *st->image || st->fan_out || st->n_inputs ||
                            st->n_out_artifacts || st->cache))
            fz_fail("step %s: a gate with argv, image, for_each, inputs, artifacts or cache",
                    st->name);
        if (!st->suspend && (st->suspend_timeout_ms || st->suspend_continue))
            fz_fail("step %s: suspend settings without suspend", st->name);
        check_strv(st->argv, st->n_argv, "argv");
        check_kv_msgs(st->env, st->n_env, "env");
        check_kv_msgs(st->labels, st->n_labels, "labels");
        check_strv(st->out_artifacts, st->n_out_artifacts, "out_artifacts");
        check_strv(st->out_params, st->n_out_params, "out_params");
        check_strv(st->items, st->n_items, "items");
        for (size_t j = 0; j < st->n_needs; j++)
            if (st->needs[j] >= s->step_count || st->needs[j] == i)
                fz_fail("step %s: need %u out of range", st->name, st->needs[j]);
        for (size_t j = 0; j < st->n_inputs; j++)
            if (st->inputs[j]->step >= s->step_count || !*st->inputs[j]->local ||
                !*st->inputs[j]->artifact)
                fz_fail("step %s: input %zu malformed", st->name, j);
        if (st->retries->factor < 1)
            fz_fail("step %s: retry factor %g below 1", st->name, st->retries->factor);
        if ((st->items || st->n_items || *st->items_from) && !st->fan_out)
            fz_fail("step %s: items without for_each", st->name);
        if (st->has_range &&
            (!st->fan_out || st->items || st->n_items || *st->items_from || st->range_step == 0 ||
             spec_range_count(st->range_start, st->range_end, st->range_step) > 1000000))
            fz_fail("step %s: a range with items, a step of 0 or over the limit", st->name);
        if (st->spot == DROVER__SPOT_POLICY__SPOT_REQUIRE && st->fallback_after)
            fz_fail("step %s: spot: require with a fallback to on-demand nodes", st->name);
        if (*st->when && expr_check(st->when, NULL, NULL, NULL, 0) != 0)
            fz_fail("step %s: accepted a `when` whose syntax is bad: %s", st->name, st->when);
    }
    if (s->root_count > s->step_count || (!s->body_count && s->root_count != s->step_count))
        fz_fail("root_count %zu of %zu steps", s->root_count, s->step_count);
    size_t next = s->root_count;
    for (size_t k = 0; k < s->body_count; k++) {
        const Drover__TemplateBody *b = s->bodies[k];
        if (!b || !*b->name || b->first_step != next || b->n_steps == 0)
            fz_fail("body %zu: no name, or not right after the previous one", k);
        next += b->n_steps;
        for (size_t i = b->first_step; i < next && i < s->step_count; i++)
            if (s->steps[i]->in_body != k + 1)
                fz_fail("step %zu of body %zu says body %u", i, k, s->steps[i]->in_body);
        for (size_t j = 0; j < b->n_out_artifacts; j++)
            if (!b->out_artifacts[j]->from_group_input &&
                (b->out_artifacts[j]->step < b->first_step || b->out_artifacts[j]->step >= next))
                fz_fail("body %zu: output artifact %zu from outside it", k, j);
        check_kv_msgs(b->out_params, b->n_out_params, "body out_params");
    }
    if (next != s->step_count)
        fz_fail("bodies end at %zu of %zu steps", next, s->step_count);
    uint8_t *mark = calloc(s->step_count + 1, 1);
    for (size_t i = 0; i < s->step_count; i++)
        if (has_cycle(s, i, mark))
            fz_fail("accepted a cycle through step %s", s->steps[i]->name);
    free(mark);
}

static void quantities(const uint8_t *data, size_t size)
{
    size_t n = 0;
    while (n < size && n < 40 && data[n] != '\n' && data[n] != '\0')
        n++;
    char *q = fz_strndup(data, n);
    uint64_t u = 0xdead;
    uint32_t c = 0xbeef;
    if (spec_parse_memory(q, &u) != 0 && u != 0xdead)
        fz_fail("spec_parse_memory failed but wrote *out");
    if (spec_parse_cpu(q, &c) != 0 && c != 0xbeef)
        fz_fail("spec_parse_cpu failed but wrote *out");
    u = 0xdead;
    if (spec_parse_duration(q, &u) != 0 && u != 0xdead)
        fz_fail("spec_parse_duration failed but wrote *out");
    free(q);
}

static bool submit = true;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *e = getenv("DROVER_FUZZ_SUBMIT");
    submit = !e || strcmp(e, "0") != 0;
    return 0;
}

/* Submit the spec and let the fleet run it for a few rounds. */
static void run_spec(const spec_t *spec)
{
    fz_t *fz = fz_open_fleet(false);
    if (!dag_create_run(fz_sched(fz), spec, "fuzz.yaml", false))
        fz_fail("dag_create_run refused a spec spec_parse accepted");
    fz_flush(fz);
    fz_drive(fz, 6);
    fz_close(&fz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t ylen = nul ? (size_t)(nul - data) : size;
    /* The YAML in a buffer of its exact size (it need not be terminated). */
    char *yaml = malloc(ylen ? ylen : 1);
    memcpy(yaml, data, ylen);

    spec_kv_t ov[MAX_OVERRIDES];
    size_t n_ov = 0;
    char *rest = nul ? fz_strndup(nul + 1, size - ylen - 1) : NULL;
    for (char *line = rest, *next; line && *line && n_ov < MAX_OVERRIDES; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        ov[n_ov].key = line;
        ov[n_ov].value = eq + 1;
        n_ov++;
    }

    /* a bundle: the spec, then "---8<--- PATH" lines, each file's text */
    size_t main_len = ylen;
    n_files = 0;
    for (size_t o = 0; o + sizeof CUT - 1 <= ylen && n_files < MAX_FILES;) {
        const char *line = yaml + o, *nl = memchr(line, '\n', ylen - o);
        size_t llen = nl ? (size_t)(nl - line) : ylen - o;
        /* no ':' in a path: the messages' FILE:LINE:COL would be ambiguous */
        if (llen > sizeof CUT - 1 && !memcmp(line, CUT, sizeof CUT - 1) &&
            !memchr(line, ':', llen)) {
            if (!n_files)
                main_len = o;
            else
                files[n_files - 1].len = (size_t)(line - files[n_files - 1].text);
            char *path =
                fz_strndup((const uint8_t *)line + sizeof CUT - 1, llen - (sizeof CUT - 1));
            files[n_files].path = path;
            files[n_files].text = nl ? nl + 1 : yaml + ylen;
            files[n_files].len = yaml + ylen - files[n_files].text;
            n_files++;
        }
        if (!nl)
            break;
        o = (size_t)(nl - yaml) + 1;
    }

    size_t errlen = size % 17 == 4 ? 9 : 512;
    char *err = malloc(errlen);
    err[0] = '\0';
    spec_t *spec = (spec_t *)1;
    int rc = spec_parse_files("fuzz.yaml", yaml, main_len, files, n_files, ov, n_ov, NULL, &spec,
                              err, errlen);
    if (rc == 0) {
        if (!spec)
            fz_fail("spec_parse = 0 without a spec");
        check_spec(spec);
        /* groups run once droverd instantiates them (dag.c, issue 16's
         * runtime); until then a spec with bodies is checked, not run */
        if (submit && !spec->body_count)
            run_spec(spec);
        spec_destroy(&spec);
        if (spec)
            fz_fail("spec_destroy left the pointer set");
    } else {
        if (rc > 0)
            fz_fail("spec_parse = %d", rc);
        if (spec)
            fz_fail("spec_parse = %d left *out set", rc);
        check_errors(rc, err, errlen);
    }
    quantities(data, size);
    for (size_t i = 0; i < n_files; i++)
        free((char *)files[i].path);
    n_files = 0;
    free(err);
    free(rest);
    free(yaml);
    return 0;
}
