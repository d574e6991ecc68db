/* test_spec — spec_parse, spec_destroy and the quantity parsers.
 *
 * Valid specs are checked field by field; every error class is checked for
 * its message and, for several, the exact line:col. A fuzz-style test feeds
 * truncations, byte mutations and random inputs and requires 0 or -EINVAL
 * with a "FILE:" message, never a crash (run it under ASan/UBSan too).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#define ERRLEN 512

static char err[ERRLEN];

static int parse_ov(const char *yaml, const spec_kv_t *ov, size_t nov, spec_t **out)
{
    memset(err, 0, sizeof err);
    return spec_parse("t.yaml", yaml, strlen(yaml), ov, nov, out, err, sizeof err);
}

static spec_t *parse_ok(const char *yaml)
{
    spec_t *s = NULL;
    int rc = parse_ov(yaml, NULL, 0, &s);
    cr_assert_eq(rc, 0, "spec_parse failed: %s", err);
    cr_assert_not_null(s);
    return s;
}

/* Parse must fail with a message containing want; returns the message. */
static const char *parse_bad(const char *yaml, const char *want)
{
    spec_t *s = (spec_t *)0x1;
    int rc = parse_ov(yaml, NULL, 0, &s);
    cr_assert(rc == -EINVAL || rc == -E2BIG,
              "expected -EINVAL (or -E2BIG, a limit) for:\n%s\n(err: %s)", yaml, err);
    cr_assert_null(s, "*out must be NULL on failure");
    cr_assert(strncmp(err, "t.yaml:", 7) == 0, "message lacks file: %s", err);
    cr_assert(strstr(err, want) != NULL, "message '%s' lacks '%s'", err, want);
    return err;
}

/* As parse_bad, and the message starts "t.yaml:LINE:COL: ". */
static void parse_bad_at(const char *yaml, int line, int col, const char *want)
{
    parse_bad(yaml, want);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t.yaml:%d:%d: ", line, col);
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "want position %s got: %s", prefix, err);
}

static const Drover__StepSpec *step(const spec_t *s, const char *name)
{
    for (size_t i = 0; i < s->step_count; i++) {
        if (!strcmp(s->steps[i]->name, name))
            return s->steps[i];
    }
    cr_assert_fail("no step %s", name);
    return NULL;
}

static const char *kv(const spec_kv_t *kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(kvs[i].key, key))
            return kvs[i].value;
    }
    return NULL;
}

/* The same over a step's env or labels (KeyValue messages). */
static const char *kvm(Drover__KeyValue *const *kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(kvs[i]->key, key))
            return kvs[i]->value;
    }
    return NULL;
}

static const char *FULL = "name: train-classifier\n" /* 1 */
                          "params:\n"                /* 2 */
                          "  rows: \"20000\"\n"      /* 3 */
                          "  lr: 0.1\n"              /* 4 */
                          "defaults:\n"              /* 5 */
                          "  retries: {limit: 2, backoff: 5s, factor: 2, max_backoff: 1m}\n"
                          "  timeout: 1h\n"     /* 7 */
                          "steps:\n"            /* 8 */
                          "  - name: prepare\n" /* 9 */
                          "    command: [python3, prepare.py, --rows, \"{{params.rows}}\"]\n"
                          "  - name: train\n"      /* 11 */
                          "    needs: [prepare]\n" /* 12 */
                          "    command: [python3, train.py, --lr, \"{{params.lr}}\"]\n"
                          "    resources: {cpu: 1, memory: 512Mi, gpu: 2}\n"   /* 14 */
                          "    placement: {labels: {pool: train, zone: a}}\n"  /* 15 */
                          "    preemption: {max_preemptions: 5}\n"             /* 16 */
                          "    env: {LR: \"{{ params.lr }}\", MODE: fast}\n"   /* 17 */
                          "  - name: evaluate\n"                               /* 18 */
                          "    needs: [train, prepare]\n"                      /* 19 */
                          "    script: ./evaluate.sh --rows {{params.rows}}\n" /* 20 */
                          "    timeout: 90s\n"                                 /* 21 */
                          "    retries: 0\n"                                   /* 22 */
                          "    resources: {cpu: 500m, memory: 1.5Gi}\n";       /* 23 */

Test(spec, full_valid_spec)
{
    spec_t *s = parse_ok(FULL);
    cr_assert_str_eq(s->name, "train-classifier");
    cr_assert_eq(s->param_count, 2);
    cr_assert_str_eq(kv(s->params, s->param_count, "rows"), "20000");
    cr_assert_str_eq(kv(s->params, s->param_count, "lr"), "0.1");
    cr_assert_eq(s->step_count, 3);

    const Drover__StepSpec *p = s->steps[0];
    cr_assert_str_eq(p->name, "prepare");
    cr_assert_eq(s->pos[0].line, 9);
    cr_assert_eq(s->pos[0].col, 5);
    cr_assert_eq(p->n_argv, 4);
    cr_assert_str_eq(p->argv[0], "python3");
    cr_assert_str_eq(p->argv[1], "prepare.py");
    cr_assert_str_eq(p->argv[2], "--rows");
    cr_assert_str_eq(p->argv[3], "20000");
    cr_assert_eq(p->n_needs, 0);
    cr_assert_eq(p->resources->cpu_milli, SPEC_DEFAULT_CPU_MILLI);
    cr_assert_eq(p->resources->memory_bytes, 0);
    cr_assert_eq(p->resources->gpus, 0);
    cr_assert_eq(p->retries->limit, 2);
    cr_assert_eq(p->retries->backoff_ms, 5000);
    cr_assert_float_eq(p->retries->factor, 2.0, 1e-9);
    cr_assert_eq(p->retries->max_backoff_ms, 60000);
    cr_assert_eq(p->timeout_ms, 3600000);
    cr_assert_eq(p->max_preemptions, SPEC_DEFAULT_MAX_PREEMPTIONS);
    cr_assert_eq(p->n_env, 0);
    cr_assert_eq(p->n_labels, 0);

    const Drover__StepSpec *t = s->steps[1];
    cr_assert_str_eq(t->name, "train");
    cr_assert_eq(s->pos[1].line, 11);
    cr_assert_eq(t->n_argv, 4);
    cr_assert_str_eq(t->argv[3], "0.1");
    cr_assert_eq(t->n_needs, 1);
    cr_assert_eq(t->needs[0], 0);
    cr_assert_eq(t->resources->cpu_milli, 1000);
    cr_assert_eq(t->resources->memory_bytes, 512ull * 1024 * 1024);
    cr_assert_eq(t->resources->gpus, 2);
    cr_assert_eq(t->n_labels, 2);
    cr_assert_str_eq(kvm(t->labels, t->n_labels, "pool"), "train");
    cr_assert_str_eq(kvm(t->labels, t->n_labels, "zone"), "a");
    cr_assert_eq(t->max_preemptions, 5);
    cr_assert_eq(t->n_env, 2);
    cr_assert_str_eq(kvm(t->env, t->n_env, "LR"), "0.1");
    cr_assert_str_eq(kvm(t->env, t->n_env, "MODE"), "fast");

    const Drover__StepSpec *e = s->steps[2];
    cr_assert_str_eq(e->name, "evaluate");
    cr_assert_eq(e->n_argv, 3);
    cr_assert_str_eq(e->argv[0], "/bin/sh");
    cr_assert_str_eq(e->argv[1], "-ec");
    cr_assert_str_eq(e->argv[2], "./evaluate.sh --rows 20000");
    cr_assert_eq(e->n_needs, 2);
    cr_assert_eq(e->needs[0], 1);
    cr_assert_eq(e->needs[1], 0);
    cr_assert_eq(e->timeout_ms, 90000);
    cr_assert_eq(e->retries->limit, 0, "bare 'retries: 0' overrides defaults' limit 2");
    cr_assert_eq(e->retries->backoff_ms, 5000, "other retry fields still inherited");
    cr_assert_eq(e->resources->cpu_milli, 500);
    cr_assert_eq(e->resources->memory_bytes, 1610612736ull);

    spec_destroy(&s);
    cr_assert_null(s);
    spec_destroy(&s); /* NULL is fine */
    spec_destroy(NULL);
}

/* One step schema: what the parser makes is the message droverd stores,
 * and spec_step_dup (droverd's copy) keeps every field of it, whatever
 * the schema holds: the copy packs to the same bytes. */
Test(spec, step_dup_keeps_every_field)
{
    spec_t *s = parse_ok("name: p\n"
                         "params: {n: '3'}\n"
                         "defaults: {env: {A: x}, placement: {labels: {zone: a}}}\n"
                         "steps:\n"
                         "  - name: a\n"
                         "    command: [echo, '{{params.n}}']\n"
                         "    resources: {cpu: 500m, memory: 1Gi, gpu: 1}\n"
                         "    retries: {limit: 2, backoff: 3s, factor: 1.5, max_backoff: 1m}\n"
                         "    timeout: 1h\n"
                         "    checkpoint: {min_interval: 10s, keep: 3}\n"
                         "    preemption: {signal: SIGUSR1, grace: 5s, fallback_after: 2}\n"
                         "    image: busybox\n"
                         "    cache: false\n"
                         "    outputs: {artifacts: [model], params: [score]}\n"
                         "  - name: b\n"
                         "    needs: [a]\n"
                         "    script: echo {{item}}\n"
                         "    inputs: {artifacts: {m: a.model}}\n"
                         "    when: \"{{steps.a.outputs.params.score}} > 1\"\n"
                         "    for_each: {range: [0, 10, 3]}\n"
                         "    parallelism: 2\n"
                         "  - {name: c, command: [x], for_each: [1, {k: v}]}\n"
                         "finally:\n"
                         "  - {name: f, command: [x], placement: {spot: require}}\n");
    for (size_t i = 0; i < s->step_count; i++) {
        const Drover__StepSpec *st = s->steps[i];
        Drover__StepSpec *copy = spec_step_dup(st);
        size_t n = drover__step_spec__get_packed_size(st);
        cr_assert_eq(drover__step_spec__get_packed_size(copy), n, "step %s", st->name);
        uint8_t *x = malloc(n + 1), *y = malloc(n + 1);
        drover__step_spec__pack(st, x);
        drover__step_spec__pack(copy, y);
        cr_assert(memcmp(x, y, n) == 0, "step %s: the copy differs", st->name);
        cr_assert_neq(copy->argv, st->argv, "a deep copy");
        free(x);
        free(y);
        drover__step_spec__free_unpacked(copy, NULL);
    }
    const Drover__StepSpec *a = s->steps[0], *b = s->steps[1];
    cr_assert_eq(a->resources->gpus, 1);
    cr_assert_eq(a->retries->limit, 2);
    cr_assert_eq(a->spot, DROVER__SPOT_POLICY__SPOT_PREFER);
    cr_assert_str_eq(kvm(a->labels, a->n_labels, "zone"), "a");
    cr_assert_eq(b->inputs[0]->step, 0);
    cr_assert_str_eq(b->inputs[0]->artifact, "model");
    cr_assert(b->has_range);
    cr_assert_eq(s->pos[1].line, 15);
    cr_assert_eq(s->pos[3].line, 24);
    cr_assert_eq(s->pos[3].col, 5);
    spec_destroy(&s);
}

Test(spec, builtin_defaults_without_defaults_section)
{
    spec_t *s = parse_ok("name: p\nsteps:\n  - name: a\n    command: [true]\n");
    const Drover__StepSpec *a = s->steps[0];
    cr_assert_eq(a->resources->cpu_milli, SPEC_DEFAULT_CPU_MILLI);
    cr_assert_eq(a->resources->memory_bytes, 0);
    cr_assert_eq(a->resources->gpus, 0);
    cr_assert_eq(a->retries->limit, 0);
    cr_assert_eq(a->retries->backoff_ms, SPEC_DEFAULT_BACKOFF_MS);
    cr_assert_float_eq(a->retries->factor, SPEC_DEFAULT_FACTOR, 1e-9);
    cr_assert_eq(a->retries->max_backoff_ms, SPEC_DEFAULT_MAX_BACKOFF_MS);
    cr_assert_eq(a->timeout_ms, 0);
    cr_assert_eq(a->max_preemptions, SPEC_DEFAULT_MAX_PREEMPTIONS);
    cr_assert_eq(s->param_count, 0);
    cr_assert_str_eq(a->argv[0], "true");
    spec_destroy(&s);
}

Test(spec, defaults_inherit_and_override)
{
    spec_t *s = parse_ok("name: p\n"
                         "defaults:\n"
                         "  resources: {cpu: 2, memory: 1Gi, gpu: 1}\n"
                         "  retries: {limit: 3, backoff: 2s, factor: 1.5, max_backoff: 0}\n"
                         "  timeout: 10m\n"
                         "  env: {A: one, B: two}\n"
                         "  placement: {labels: {pool: cpu, zone: x}}\n"
                         "  preemption: {max_preemptions: 7}\n"
                         "steps:\n"
                         "  - name: inherit\n"
                         "    command: [x]\n"
                         "  - name: override\n"
                         "    command: [y]\n"
                         "    resources: {memory: 100M}\n"
                         "    retries: {backoff: 1m30s}\n"
                         "    timeout: 100ms\n"
                         "    env: {B: TWO, C: three}\n"
                         "    placement: {labels: {pool: gpu}}\n"
                         "    preemption: {max_preemptions: 0}\n");
    const Drover__StepSpec *a = step(s, "inherit"), *b = step(s, "override");
    cr_assert_eq(a->resources->cpu_milli, 2000);
    cr_assert_eq(a->resources->memory_bytes, 1ull << 30);
    cr_assert_eq(a->resources->gpus, 1);
    cr_assert_eq(a->retries->limit, 3);
    cr_assert_eq(a->retries->backoff_ms, 2000);
    cr_assert_float_eq(a->retries->factor, 1.5, 1e-9);
    cr_assert_eq(a->retries->max_backoff_ms, 0);
    cr_assert_eq(a->timeout_ms, 600000);
    cr_assert_eq(a->n_env, 2);
    cr_assert_str_eq(kvm(a->env, a->n_env, "A"), "one");
    cr_assert_str_eq(kvm(a->env, a->n_env, "B"), "two");
    cr_assert_eq(a->n_labels, 2);
    cr_assert_str_eq(kvm(a->labels, a->n_labels, "pool"), "cpu");
    cr_assert_eq(a->max_preemptions, 7);

    /* field by field: memory overridden, cpu and gpu inherited */
    cr_assert_eq(b->resources->cpu_milli, 2000);
    cr_assert_eq(b->resources->memory_bytes, 100000000ull);
    cr_assert_eq(b->resources->gpus, 1);
    cr_assert_eq(b->retries->limit, 3);
    cr_assert_eq(b->retries->backoff_ms, 90000);
    cr_assert_float_eq(b->retries->factor, 1.5, 1e-9);
    cr_assert_eq(b->timeout_ms, 100);
    /* key by key: env and labels merge, the step wins */
    cr_assert_eq(b->n_env, 3);
    cr_assert_str_eq(kvm(b->env, b->n_env, "A"), "one");
    cr_assert_str_eq(kvm(b->env, b->n_env, "B"), "TWO");
    cr_assert_str_eq(kvm(b->env, b->n_env, "C"), "three");
    cr_assert_eq(b->n_labels, 2);
    cr_assert_str_eq(kvm(b->labels, b->n_labels, "pool"), "gpu");
    cr_assert_str_eq(kvm(b->labels, b->n_labels, "zone"), "x");
    cr_assert_eq(b->max_preemptions, 0);
    spec_destroy(&s);
}

Test(spec, bare_retries_integer)
{
    spec_t *s = parse_ok("name: p\nsteps:\n  - name: a\n    command: [x]\n    retries: 4\n");
    cr_assert_eq(s->steps[0]->retries->limit, 4);
    cr_assert_eq(s->steps[0]->retries->backoff_ms, SPEC_DEFAULT_BACKOFF_MS);
    spec_destroy(&s);
}

#define PARAMS_HEAD                                                                                \
    "name: p\n"                                                                                    \
    "params:\n"                                                                                    \
    "  rows: \"10\"\n"                                                                             \
    "  lr: 0.1\n"                                                                                  \
    "  req:\n" /* no value: must come from -p */                                                   \
    "steps:\n"                                                                                     \
    "  - name: a\n"                                                                                \
    "    command: [run, \"--rows={{params.rows}}\", \"{{  params.lr\t}}\","                        \
    " \"{{params.req}}{{params.rows}}x\""
#define PARAMS_TAIL                                                                                \
    "]\n"                                                                                          \
    "    env: {R: \"<{{params.rows}}>\"}\n"                                                        \
    "  - name: b\n"                                                                                \
    "    script: echo {{params.rows}} }} {x} {{params.lr}}\n"

Test(spec, param_overrides_substitute)
{
    spec_kv_t ov[] = {{"rows", "20000"}, {"req", "R"}};
    spec_t *s = NULL;
    int rc = parse_ov(PARAMS_HEAD PARAMS_TAIL, ov, 2, &s);
    cr_assert_eq(rc, 0, "%s", err);
    const Drover__StepSpec *a = s->steps[0];
    cr_assert_eq(a->n_argv, 4);
    cr_assert_str_eq(a->argv[0], "run");
    cr_assert_str_eq(a->argv[1], "--rows=20000");
    cr_assert_str_eq(a->argv[2], "0.1");
    cr_assert_str_eq(a->argv[3], "R20000x");
    cr_assert_str_eq(kvm(a->env, a->n_env, "R"), "<20000>");
    cr_assert_str_eq(s->steps[1]->argv[2], "echo 20000 }} {x} 0.1");
    cr_assert_str_eq(kv(s->params, s->param_count, "rows"), "20000");
    cr_assert_str_eq(kv(s->params, s->param_count, "lr"), "0.1");
    cr_assert_str_eq(kv(s->params, s->param_count, "req"), "R");
    spec_destroy(&s);

    /* without overrides: declared values, and the required one is missing */
    rc = parse_ov(PARAMS_HEAD PARAMS_TAIL, NULL, 0, &s);
    cr_assert_eq(rc, -EINVAL);
    cr_assert(strstr(err, "t.yaml:5:3: param 'req' has no value"), "%s", err);

    /* an unterminated template is refused where it is */
    rc = parse_ov(PARAMS_HEAD ", \"{{params.rows\"" PARAMS_TAIL, ov, 2, &s);
    cr_assert_eq(rc, -EINVAL);
    cr_assert(strstr(err, "t.yaml:8:") == err, "%s", err);
    cr_assert(strstr(err, "unterminated '{{'"), "%s", err);
}

Test(spec, param_value_not_reexpanded)
{
    spec_kv_t ov[] = {{"a", "{{params.b}}"}};
    spec_t *s = NULL;
    int rc = parse_ov("name: p\nparams: {a: x, b: y}\nsteps:\n - name: s\n   command: "
                      "[\"{{params.a}}\"]\n",
                      ov, 1, &s);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(s->steps[0]->argv[0], "{{params.b}}");
    spec_destroy(&s);
}

Test(spec, required_param_missing)
{
    parse_bad_at("name: p\nparams:\n  req:\nsteps:\n  - name: a\n    command: [x]\n", 3, 3,
                 "param 'req' has no value");
}

Test(spec, unknown_override)
{
    spec_kv_t ov[] = {{"rows", "1"}, {"nope", "2"}};
    spec_t *s = (spec_t *)0x1;
    int rc =
        parse_ov("name: p\nparams:\n  rows: 5\nsteps:\n  - name: a\n    command: [x]\n", ov, 2, &s);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_null(s);
    cr_assert_str_eq(err, "t.yaml:3:3: unknown param 'nope' (-p nope=...): declare it under "
                          "params:");
    /* no params at all: position 1:1 */
    rc = parse_ov("name: p\nsteps:\n  - name: a\n    command: [x]\n", ov, 1, &s);
    cr_assert_eq(rc, -EINVAL);
    cr_assert(strncmp(err, "t.yaml:1:1: unknown param 'rows'", 32) == 0, "%s", err);
}

Test(spec, script_becomes_sh_ec)
{
    spec_t *s =
        parse_ok("name: p\nsteps:\n  - name: a\n    script: |\n      set -x\n      echo hi\n");
    const Drover__StepSpec *a = s->steps[0];
    cr_assert_eq(a->n_argv, 3);
    cr_assert_str_eq(a->argv[0], "/bin/sh");
    cr_assert_str_eq(a->argv[1], "-ec");
    cr_assert_str_eq(a->argv[2], "set -x\necho hi\n");
    spec_destroy(&s);
}

/* ---- errors ---- */

Test(spec, cycle_two)
{
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - name: a\n"
                 "    needs: [b]\n"
                 "    command: [x]\n"
                 "  - name: b\n"
                 "    needs: [a]\n"
                 "    command: [x]\n",
                 7, 13, "cycle: a -> b -> a");
}

Test(spec, cycle_three_with_tail)
{
    parse_bad("name: p\n"
              "steps:\n"
              "  - {name: s, command: [x]}\n"
              "  - {name: a, command: [x], needs: [s, c]}\n"
              "  - {name: b, command: [x], needs: [a]}\n"
              "  - {name: c, command: [x], needs: [b]}\n",
              "cycle: a -> c -> b -> a");
}

Test(spec, self_need_is_cycle)
{
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    needs: [a]\n", 5, 13,
                 "cycle: a -> a");
}

Test(spec, unknown_need)
{
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - name: a\n"
                 "    command: [x]\n"
                 "  - name: b\n"
                 "    command: [x]\n"
                 "    needs: [a, zz]\n",
                 7, 16, "step 'b' needs unknown step 'zz'");
}

Test(spec, need_listed_twice)
{
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\n  - {name: b, command: [x], needs: "
              "[a, a]}\n",
              "lists 'a' twice");
}

Test(spec, duplicate_step_name)
{
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - name: a\n"
                 "    command: [x]\n"
                 "  - name: a\n"
                 "    command: [y]\n",
                 5, 11, "duplicate step name 'a' (first defined at 3:11)");
}

Test(spec, duplicate_name_across_finally)
{
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally:\n  - {name: a, script: "
              "x}\n",
              "duplicate step name 'a'");
}

Test(spec, unknown_top_key)
{
    parse_bad_at("name: p\nstpes: []\nsteps:\n  - {name: a, command: [x]}\n", 2, 1,
                 "unknown key 'stpes'");
}

Test(spec, unknown_step_key)
{
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    comand: [y]\n", 5, 5,
                 "unknown key 'comand' in step 'a'");
}

Test(spec, unknown_nested_keys)
{
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: {cpus: 1}}\n",
              "unknown key 'cpus' in resources");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], retries: {limt: 1}}\n",
              "unknown key 'limt' in retries");
    parse_bad("name: p\ndefaults: {command: [x]}\nsteps:\n  - {name: a, command: [x]}\n",
              "'command' cannot be set under defaults");
    parse_bad("name: p\ndefaults: {bogus: 1}\nsteps:\n  - {name: a, command: [x]}\n",
              "unknown key 'bogus' in defaults");
}

Test(spec, duplicate_key)
{
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    env: {A: 1, B: 2, A: 3}\n", 5,
                 23, "duplicate key 'A'");
    parse_bad_at("name: p\nname: q\nsteps: []\n", 2, 1, "duplicate key 'name'");
}

Test(spec, bad_memory_position)
{
    /* line 7, col 22 */
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - name: a\n"
                 "    command: [x]\n"
                 "    resources:\n"
                 "      cpu: 1\n"
                 "      memory:       12Qi\n",
                 7, 21, "bad quantity '12Qi' for resources.memory");
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - name: a\n"
                 "    command: [x]\n"
                 "    resources:\n"
                 "      cpu: 1\n"
                 "      memory:        -5Mi\n",
                 7, 22, "bad quantity '-5Mi' for resources.memory");
}

Test(spec, bad_quantities)
{
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: {cpu: lots}}\n",
              "bad quantity 'lots' for resources.cpu");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: {cpu: -1}}\n",
              "bad quantity '-1' for resources.cpu");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: {gpu: 65}}\n",
              "bad quantity '65' for resources.gpu");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: {gpu: 1.5}}\n",
              "bad quantity '1.5' for resources.gpu");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: {memory: [1]}}\n",
              "for resources.memory");
    parse_bad("name: p\ndefaults: {resources: {memory: 1.5}}\nsteps:\n  - {name: a, command: "
              "[x]}\n",
              "bad quantity '1.5' for resources.memory");
}

Test(spec, bad_durations)
{
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    timeout: 5 minutes\n", 5, 14,
                 "bad duration '5 minutes' for timeout");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], retries: {backoff: 1d}}\n",
              "bad duration '1d' for retries.backoff");
    parse_bad("name: p\ndefaults: {retries: {max_backoff: -1s}}\nsteps:\n  - {name: a, command: "
              "[x]}\n",
              "bad duration '-1s' for retries.max_backoff");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], retries: {factor: 0.5}}\n",
              "'retries.factor' must be a number");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], retries: 101}\n",
              "'retries' must be a whole number from 0 to 100");
}

Test(spec, empty_specs)
{
    static const char *empties[] = {
        "", "   \n\n\t\n", "# just a comment\n  # another\n", "\t# tabbed\r\n", "---\n", "~\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        spec_t *s = NULL;
        int rc = parse_ov(empties[i], NULL, 0, &s);
        cr_assert_eq(rc, -EINVAL, "case %zu", i);
        cr_assert_str_eq(err, "t.yaml:1:1: empty spec", "case %zu: %s", i, err);
        cr_assert_null(s);
    }
    /* NULL text with len 0 is an empty spec too */
    spec_t *s = NULL;
    cr_assert_eq(spec_parse("t.yaml", NULL, 0, NULL, 0, &s, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "t.yaml:1:1: empty spec");
}

Test(spec, not_yaml)
{
    parse_bad_at("name: p\nsteps: [a, b\n", 3, 1, "not YAML: ");
    parse_bad("name: p\n  bad: indent\n: x\n", "not YAML: ");
    parse_bad_at("name: \"p\nsteps: x", 2, 9, "not YAML: found unexpected end of stream");
    /* invalid UTF-8 is reported where it is */
    parse_bad_at("name: p\nsteps: \xff\n", 2, 8, "not YAML: ");
}

Test(spec, top_level_not_a_map)
{
    parse_bad_at("- name: a\n  command: [x]\n", 1, 1, "top level must be a map");
    parse_bad_at("just a string\n", 1, 1, "top level must be a map");
}

Test(spec, missing_required)
{
    parse_bad("steps:\n  - {name: a, command: [x]}\n", "missing 'name'");
    parse_bad("name: p\n", "missing 'steps'");
    parse_bad("name: p\nsteps: []\n", "'steps' must be a non-empty list");
    parse_bad("name: p\nsteps: {a: 1}\n", "'steps' must be a non-empty list");
    parse_bad("name: bad/name\nsteps:\n  - {name: a, command: [x]}\n", "bad pipeline name");
    parse_bad("name: p\nsteps:\n  - {command: [x]}\n", "step has no 'name'");
    parse_bad("name: p\nsteps:\n  - {name: \"a b\", command: [x]}\n", "bad step name 'a b'");
    parse_bad("name: p\nsteps:\n  - just-a-string\n", "each step must be a map");
}

Test(spec, command_and_script)
{
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    script: echo\n", 5, 5,
                 "has both 'command' and 'script'");
    parse_bad_at("name: p\nsteps:\n  - name: a\n    env: {A: b}\n", 3, 5,
                 "step 'a' needs a 'command' (an argv list) or a 'script'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: []}\n", "'command' must be a non-empty");
    parse_bad("name: p\nsteps:\n  - {name: a, command: echo hi}\n",
              "'command' must be a non-empty list");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [echo, [x]]}\n",
              "'command' items must be strings");
    parse_bad("name: p\nsteps:\n  - {name: a, script: [x]}\n", "'script' must be a string");
}

Test(spec, wrong_types)
{
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], needs: a}\n",
              "'needs' must be a list of step names");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], env: [A]}\n",
              "'env' must be a map of NAME: value");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], env: {1A: x}}\n", "bad env name '1A'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], env: {A: }}\n",
              "env 'A' must be a string");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: 2}\n",
              "'resources' must be a map");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], placement: {labels: [a]}}\n",
              "'placement.labels' must be a map");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], placement: {spot: maybe}}\n",
              "'placement.spot' must be one of");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], preemption: {signal: SIGKILL}}\n",
              "'preemption.signal' must be one of");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], cache: maybe}\n",
              "'cache' must be true or false");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], parallelism: 0}\n",
              "'parallelism' must be a whole number from 1");
    parse_bad("name: p\nparams: {a: [1]}\nsteps:\n  - {name: a, command: [x]}\n",
              "param 'a' must be a single value");
    parse_bad("name: p\nparams: [a]\nsteps:\n  - {name: a, command: [x]}\n",
              "'params' must be a map");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally: {a: 1}\n",
              "'finally' must be a list");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\n  - {name: b, command: [x], needs: "
              "[a], preemption: {max_preemptions: x}}\n",
              "'preemption.max_preemptions' must be a whole number");
    parse_bad("name: p\n{a: 1}: x\nsteps: []\n", "mapping keys must be plain strings");
}

Test(spec, template_errors)
{
    parse_bad_at("name: p\nparams: {rows: 1}\nsteps:\n  - name: a\n    command: [echo, "
                 "\"{{params.unknown}}\"]\n",
                 5, 21, "unknown param 'unknown' in template");
    parse_bad("name: p\nsteps:\n  - {name: a, script: \"echo {{ nope }}\"}\n",
              "bad template '{{ nope }}'");
    parse_bad("name: p\nsteps:\n  - {name: a, script: \"echo {{}}\"}\n", "bad template '{{}}'");
    parse_bad("name: p\nparams: {a: 1}\nsteps:\n  - {name: a, script: \"echo {{params.a\"}\n",
              "unterminated '{{'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], env: {A: \"{{params.q}}\"}}\n",
              "unknown param 'q' in template");
    parse_bad("name: p\nparams: {a: 1}\ndefaults: {env: {A: \"{{params}}\"}}\nsteps:\n  - {name: "
              "a, command: [x]}\n",
              "bad template '{{params}}'");
}

Test(spec, alias_refused)
{
    parse_bad_at("name: p\n"
                 "defaults: &d\n"
                 "  timeout: 5s\n"
                 "steps:\n"
                 "  - name: a\n"
                 "    command: [x]\n"
                 "    env: *d\n",
                 7, 10, "aliases are not allowed");
    /* the billion-laughs shape fails fast on the first alias */
    parse_bad("name: p\n"
              "a: &a [x, x, x, x, x, x, x, x, x]\n"
              "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
              "aliases are not allowed");
}

Test(spec, anchors_tags_bom_directive_ok)
{
    /* an anchor with no alias is harmless; tags are ignored */
    spec_t *s = parse_ok("\xef\xbb\xbf%YAML 1.1\n---\nname: &n p\nsteps:\n  - &s {name: a, "
                         "command: !!seq [!!str x, 1]}\n");
    cr_assert_str_eq(s->name, "p");
    cr_assert_str_eq(s->steps[0]->argv[1], "1");
    spec_destroy(&s);
}

Test(spec, bad_arguments)
{
    const char *y = "name: p\nsteps:\n  - {name: a, command: [x]}\n";
    cr_assert_eq(spec_parse("t.yaml", y, strlen(y), NULL, 0, NULL, err, sizeof err), -EINVAL);
    spec_t *s = NULL;
    cr_assert_eq(spec_parse("t.yaml", y, strlen(y), NULL, 2, &s, err, sizeof err), -EINVAL);
    cr_assert_null(s);
    /* a NULL filename still gives a located message */
    cr_assert_eq(spec_parse(NULL, "x: 1", 4, NULL, 0, &s, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "<spec>:1:1: unknown key 'x'");
}

Test(spec, multiple_documents)
{
    parse_bad_at("name: p\nsteps:\n  - {name: a, command: [x]}\n---\nname: q\n", 4, 1,
                 "only one YAML document");
}

Test(spec, nul_bytes)
{
    static const char text[] = "name: p\nsteps:\n  - {name: a, com\0mand: [x]}\n";
    spec_t *s = NULL;
    int rc = spec_parse("t.yaml", text, sizeof text - 1, NULL, 0, &s, err, sizeof err);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_str_eq(err, "t.yaml:3:18: NUL byte in spec");
    /* a NUL produced by an escape is refused too */
    parse_bad("name: p\nsteps:\n  - {name: a, command: [\"a\\0b\"]}\n", "NUL");
}

Test(spec, limits)
{
    /* more than 1 MiB */
    size_t big = 1024 * 1024 + 1;
    char *t = malloc(big + 1);
    memset(t, '#', big);
    t[big] = '\0';
    spec_t *s = NULL;
    cr_assert_eq(spec_parse("t.yaml", t, big, NULL, 0, &s, err, sizeof err), -E2BIG);
    cr_assert(strstr(err, "t.yaml:1:1: spec is larger than the limit of 1048576 bytes"), "%s", err);
    free(t);

    /* 10,001 steps */
    size_t cap = 512 * 1024, o = 0;
    t = malloc(cap);
    o += (size_t)snprintf(t + o, cap - o, "name: p\nsteps:\n");
    for (int i = 0; i < 10001; i++)
        o += (size_t)snprintf(t + o, cap - o, "- {name: s%d, command: [x]}\n", i);
    parse_bad_at(t, 3, 1, "too many steps (10001; at most 10000)");
    /* exactly 10,000 is fine */
    char *last = strstr(t, "- {name: s10000,");
    *last = '\0';
    s = parse_ok(t);
    cr_assert_eq(s->step_count, 10000);
    spec_destroy(&s);
    /* main and finally steps count together */
    last = strstr(t, "- {name: s9999,");
    strcpy(last, "finally:\n- {name: f1, script: x}\n- {name: f2, script: x}\n");
    parse_bad(t, "too many steps (10001; at most 10000)");
    free(t);

    /* a 64-char name */
    parse_bad("name: p\nsteps:\n  - {name: "
              "a123456789012345678901234567890123456789012345678901234567890123, command: [x]}\n",
              "bad step name");
    s = parse_ok("name: p\nsteps:\n  - {name: "
                 "a12345678901234567890123456789012345678901234567890123456789012, command: "
                 "[x]}\n");
    spec_destroy(&s);

    /* deep nesting */
    char deep[400];
    o = (size_t)snprintf(deep, sizeof deep, "name: p\nsteps: ");
    for (int i = 0; i < 100; i++)
        deep[o++] = '[';
    deep[o] = '\0';
    parse_bad(deep, "nesting is deeper than");

    /* param value over 64 KiB, in the file and from -p */
    size_t pv = 64 * 1024 + 1;
    t = malloc(pv + 200);
    o = (size_t)snprintf(t, 200, "name: p\nparams:\n  v: ");
    memset(t + o, 'v', pv);
    strcpy(t + o + pv, "\nsteps:\n  - {name: a, command: [x]}\n");
    parse_bad(t, "param 'v' is longer than 65536 bytes");
    free(t);
    char *val = malloc(pv + 1);
    memset(val, 'v', pv);
    val[pv] = '\0';
    spec_kv_t ov[] = {{"v", val}};
    cr_assert_eq(
        parse_ov("name: p\nparams: {v: 1}\nsteps:\n  - {name: a, command: [x]}\n", ov, 1, &s),
        -E2BIG);
    cr_assert(strstr(err, "is longer than 65536 bytes"), "%s", err);
    free(val);
}

Test(spec, expansion_is_bounded)
{
    /* 64 KiB param used 40 times in one string: over 1 MiB after expansion */
    size_t pv = 64 * 1024;
    char *val = malloc(pv + 1);
    memset(val, 'v', pv);
    val[pv] = '\0';
    spec_kv_t ov[] = {{"v", val}};
    char yaml[2048];
    size_t o = (size_t)snprintf(yaml, sizeof yaml,
                                "name: p\nparams: {v: x}\nsteps:\n  - {name: a, script: \"");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "{{params.v}}");
    snprintf(yaml + o, sizeof yaml - o, "\"}\n");
    spec_t *s = NULL;
    cr_assert_eq(parse_ov(yaml, ov, 1, &s), -EINVAL);
    cr_assert(strstr(err, "after template substitution"), "%s", err);
    free(val);
}

Test(spec, map_size_limits)
{
    size_t cap = 32 * 1024, o = 0;
    char *t = malloc(cap);
    o += (size_t)snprintf(t + o, cap - o,
                          "name: p\nsteps:\n  - name: a\n    command: [x]\n    env:\n");
    for (int i = 0; i < 1001; i++)
        o += (size_t)snprintf(t + o, cap - o, "      E%d: v\n", i);
    parse_bad_at(t, 6, 7, "too many env entries (1001; at most 1000)");

    o = (size_t)snprintf(t, cap,
                         "name: p\nsteps:\n  - name: a\n    command: [x]\n    placement:\n"
                         "      labels:\n");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(t + o, cap - o, "        l%d: v\n", i);
    parse_bad(t, "too many labels (65; at most 64)");
    free(t);
}

Test(spec, result_size_is_bounded)
{
    /* a 100 KB env value in defaults is copied into each of 1000 steps */
    size_t vlen = 100 * 1000, cap = vlen + 64 * 1024, o = 0;
    char *t = malloc(cap);
    o += (size_t)snprintf(t + o, cap - o, "name: p\ndefaults:\n  env:\n    BIG: ");
    memset(t + o, 'b', vlen);
    o += vlen;
    o += (size_t)snprintf(t + o, cap - o, "\nsteps:\n");
    for (int i = 0; i < 1000; i++)
        o += (size_t)snprintf(t + o, cap - o, "- {name: s%d, command: [x]}\n", i);
    parse_bad(t, "spec is too large: commands, env and labels of all steps exceed 64 MiB");
    free(t);
}

Test(spec, small_error_buffer)
{
    char small[12];
    memset(small, 'Z', sizeof small);
    spec_t *s = NULL;
    const char *y = "name: p\nbogus_key_with_a_long_name: 1\n";
    cr_assert_eq(spec_parse("file.yaml", y, strlen(y), NULL, 0, &s, small, 8), -EINVAL);
    cr_assert_eq(strlen(small), 7);
    cr_assert_eq(small[8], 'Z', "wrote past errlen");
    cr_assert_eq(spec_parse("file.yaml", y, strlen(y), NULL, 0, &s, NULL, 0), -EINVAL);
}

Test(spec, control_chars_escaped_in_messages)
{
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], \"bad\\nkey\": 1}\n",
              "unknown key 'bad\\x0akey' in step 'a'");
    cr_assert_null(strchr(err, '\n'));
}

/* ---- spot and checkpoints ---- */

Test(spec, checkpoint_preemption_and_spot_settings)
{
    spec_t *s = NULL;
    cr_assert_eq(
        parse_ov("name: p\n"
                 "defaults:\n"
                 "  checkpoint: {min_interval: 10s}\n"
                 "  preemption: {signal: SIGUSR1, grace: 20s}\n"
                 "steps:\n"
                 "  - {name: a, command: [x]}\n"
                 "  - name: b\n"
                 "    command: [x]\n"
                 "    checkpoint: {keep: 5}\n"
                 "    preemption: {fallback_after: 0, max_preemptions: 4}\n"
                 "    placement: {spot: require}\n"
                 "  - {name: c, command: [x], checkpoint: false}\n"
                 "  - {name: d, command: [x], checkpoint: false, placement: {spot: any}}\n",
                 NULL, 0, &s),
        0, "%s", err);
    const Drover__StepSpec *a = s->steps[0], *b = s->steps[1], *c = s->steps[2], *d = s->steps[3];
    cr_assert(a->checkpoint);
    cr_assert_eq(a->checkpoint_min_interval_ms, 10000);
    cr_assert_eq(a->checkpoint_keep, SPEC_DEFAULT_CHECKPOINT_KEEP);
    cr_assert_eq(a->preempt_signal, SIGUSR1);
    cr_assert_eq(a->preempt_grace_ms, 20000);
    cr_assert_eq(a->fallback_after, SPEC_DEFAULT_FALLBACK_AFTER);
    cr_assert_eq(a->spot, DROVER__SPOT_POLICY__SPOT_PREFER,
                 "a checkpointing step prefers spot nodes");
    cr_assert(b->checkpoint);
    cr_assert_eq(b->checkpoint_keep, 5);
    cr_assert_eq(b->checkpoint_min_interval_ms, 0, "the step's block replaces the default's");
    cr_assert_eq(b->fallback_after, 0);
    cr_assert_eq(b->max_preemptions, 4);
    cr_assert_eq(b->spot, DROVER__SPOT_POLICY__SPOT_REQUIRE);
    cr_assert_not(c->checkpoint);
    cr_assert_eq(c->spot, DROVER__SPOT_POLICY__SPOT_AVOID,
                 "a step without checkpoints prefers on-demand");
    cr_assert_eq(c->preempt_signal, SIGUSR1);
    cr_assert_eq(d->spot, DROVER__SPOT_POLICY__SPOT_ANY);
    spec_destroy(&s);
    cr_assert_eq(parse_ov("name: p\nsteps:\n  - {name: a, command: [x]}\n", NULL, 0, &s), 0);
    cr_assert_not(s->steps[0]->checkpoint);
    cr_assert_eq(s->steps[0]->preempt_signal, SIGTERM);
    cr_assert_eq(s->steps[0]->preempt_grace_ms, SPEC_DEFAULT_GRACE_MS);
    spec_destroy(&s);
}

/* placement.spot: require never runs a step on an on-demand node, so
 * preemption.fallback_after (on-demand only after N preemptions) cannot
 * apply to it: written together they are refused, naming both keys; the
 * default fallback (3) does not apply to a step that requires spot nodes
 * (it used to leave the step READY forever after its third preemption). */
Test(spec, spot_require_refuses_fallback_after)
{
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - name: a\n"
                 "    command: [x]\n"
                 "    placement: {spot: require}\n"
                 "    preemption: {fallback_after: 1}\n",
                 6, 34,
                 "'preemption.fallback_after: 1' cannot be used with 'placement.spot: "
                 "require' (at 5:23)");
    cr_assert(strstr(err, "never runs on on-demand nodes") != NULL, "%s", err);
    /* either one from defaults: still both named, at the fallback_after */
    parse_bad_at("name: p\n"
                 "defaults:\n"
                 "  placement: {spot: require}\n"
                 "steps:\n"
                 "  - {name: a, command: [x], preemption: {fallback_after: 2}}\n",
                 5, 58, "'placement.spot: require' (at 3:21, in defaults)");
    parse_bad_at("name: p\n"
                 "defaults:\n"
                 "  preemption: {fallback_after: 4}\n"
                 "steps:\n"
                 "  - {name: a, command: [x], placement: {spot: require}}\n",
                 3, 32, "(in defaults, inherited by step 'a')");

    spec_t *s = parse_ok("name: p\n"
                         "defaults:\n"
                         "  preemption: {fallback_after: 4}\n"
                         "steps:\n"
                         "  - {name: a, command: [x], placement: {spot: require}, preemption: "
                         "{fallback_after: 0}}\n"
                         "  - {name: c, command: [x], checkpoint: true}\n");
    cr_assert_eq(step(s, "a")->fallback_after, 0);
    cr_assert_eq(step(s, "c")->fallback_after, 4);
    spec_destroy(&s);
    s = parse_ok("name: p\nsteps:\n  - {name: a, command: [x], placement: {spot: require}}\n");
    cr_assert_eq(s->steps[0]->fallback_after, 0,
                 "the built-in fallback (3) does not apply to spot: require");
    spec_destroy(&s);
}

Test(spec, bad_checkpoint_settings)
{
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], checkpoint: sometimes}\n",
              "'checkpoint' must be true, false or a map");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], checkpoint: {keep: 0}}\n",
              "'checkpoint.keep'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], checkpoint: {every: 1s}}\n",
              "unknown key 'every' in checkpoint (min_interval, keep)");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], preemption: {grace: soon}}\n",
              "bad duration 'soon' for preemption.grace");
}

/* ---- {{inputs...}} and inputs.params outside templates ---- */

/* Input params are a template's (test_spec_reuse.c): a plain step that
 * writes them is refused at the reference, naming what to write. */
Test(spec, inputs_outside_templates)
{
    parse_bad_at("name: p\nsteps:\n  - name: s\n    command: [x]\n    env: {X: "
                 "\"{{inputs.params.data}}\"}\n",
                 5, 14, "{{inputs.params.data}} is only known inside a template");
    parse_bad_at("name: p\nsteps:\n  - name: s\n    script: echo {{ inputs.x }}\n", 4, 13,
                 "bad template '{{ inputs.x }}' (use {{inputs.params.NAME}}");
    parse_bad_at("name: p\nsteps:\n  - name: s\n    command: [x]\n    inputs: {params: {n: "
                 "\"1\"}}\n",
                 5, 14, "'inputs.params' is not a step key");
    parse_bad_at("name: p\ndefaults:\n  env: {X: \"{{inputs.params.y}}\"}\nsteps:\n  - {name: a, "
                 "command: [x]}\n",
                 3, 12, "only known inside a template");
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    inputs: {artifacts: {d: "
                 "inputs.artifacts.d}}\n",
                 5, 29, "only known inside a DAG template");
}

Test(spec, image_with_params)
{
    spec_t *s = NULL;
    cr_assert_eq(
        parse_ov("name: p\nparams: {tag: \"3\"}\nsteps:\n  - name: s\n    command: [x]\n"
                 "    image: /images/busybox:{{params.tag}}\n  - {name: t, command: [y]}\n",
                 NULL, 0, &s),
        0, "%s", err);
    cr_assert_str_eq(s->steps[0]->image, "/images/busybox:3");
    cr_assert_str_empty(s->steps[1]->image, "a step without image runs as a process");
    spec_destroy(&s);
    parse_bad(
        "name: p\nsteps:\n  - {name: a, command: [x], image: \"{{steps.b.outputs.params.i}}\"}"
        "\n  - {name: b, command: [x], outputs: {params: [i]}}\n",
        "{{steps.b.outputs.params.i}}");
}

Test(spec, every_error_reported)
{
    /* image comes first, but the unknown key later is the real error */
    parse_bad("name: p\nsteps:\n  - name: a\n    image: x\n    command: [x]\n  - name: b\n    "
              "command: [x]\n    colour: red\n",
              "unknown key 'colour' in step 'b'");
    /* ... and a cycle, found after all steps are read */
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], image: i, needs: [b]}\n  - {name: "
              "b, command: [x], needs: [a]}\n",
              "cycle: a -> b -> a");
    /* both errors of one step, each at its scalar */
    parse_bad("name: p\nsteps:\n  - {name: a, script: \"{{inputs.params.x}}\", env: {A: "
              "\"{{params.zz}}\"}}\n",
              "t.yaml:3:23: {{inputs.params.x}} is only known inside a template");
    cr_assert(strstr(err, "\nt.yaml:3:55: unknown param 'zz'"), "%s", err);
}

Test(spec, design_doc_example)
{
    /* README.md's example without image, checkpoint, preemption.signal,
     * preemption.grace and placement.spot (later releases) */
    const char *doc = "name: train-classifier\n"
                      "params:\n"
                      "  rows: \"20000\"\n"
                      "  lr: \"0.1\"\n"
                      "defaults:\n"
                      "  retries: {limit: 2, backoff: 5s, factor: 2, max_backoff: 1m}\n"
                      "  timeout: 1h\n"
                      "steps:\n"
                      "  - name: prepare\n"
                      "    command: [python3, prepare.py, --rows, \"{{params.rows}}\"]\n"
                      "    outputs: {artifacts: [dataset], params: [n_features]}\n"
                      "  - name: train\n"
                      "    needs: [prepare]\n"
                      "    inputs: {artifacts: {data: prepare.dataset}}\n"
                      "    command: [python3, train.py, --lr, \"{{params.lr}}\"]\n"
                      "    resources: {cpu: 1, memory: 512Mi, gpu: 0}\n"
                      "    placement: {labels: {pool: train}}\n"
                      "    preemption: {max_preemptions: 20}\n"
                      "  - name: shard\n"
                      "    needs: [prepare]\n"
                      "    for_each: [\"a\", \"b\", \"c\"]\n"
                      "    script: echo shard {{item}}\n"
                      "  - name: evaluate\n"
                      "    needs: [train]\n"
                      "    outputs: {params: [better]}\n"
                      "    script: ./evaluate.sh\n"
                      "  - name: deploy\n"
                      "    needs: [evaluate]\n"
                      "    when: \"{{steps.evaluate.outputs.params.better}} == true\"\n"
                      "    command: [deploy, --model, /in/model]\n"
                      "finally:\n"
                      "  - name: notify\n"
                      "    script: echo run {{run.id}} ended {{run.status}}\n";
    spec_t *s = parse_ok(doc);
    cr_assert_eq(s->step_count, 6);
    const Drover__StepSpec *p = step(s, "prepare"), *t = step(s, "train"), *sh = step(s, "shard");
    const Drover__StepSpec *ev = step(s, "evaluate"), *d = step(s, "deploy"),
                           *n = step(s, "notify");
    cr_assert_eq(p->n_out_artifacts, 1);
    cr_assert_str_eq(p->out_artifacts[0], "dataset");
    cr_assert_eq(p->n_out_params, 1);
    cr_assert_str_eq(p->out_params[0], "n_features");
    cr_assert_eq(t->n_inputs, 1);
    cr_assert_str_eq(t->inputs[0]->local, "data");
    cr_assert_eq(t->inputs[0]->step, 0);
    cr_assert_str_eq(t->inputs[0]->artifact, "dataset");
    cr_assert_eq(t->max_preemptions, 20);
    cr_assert(sh->fan_out);
    cr_assert_eq(sh->n_items, 3);
    cr_assert_str_eq(sh->items[2], "c");
    cr_assert_str_eq(sh->argv[2], "echo shard {{item}}");
    cr_assert_eq(ev->n_out_params, 1);
    cr_assert_str_eq(d->when, "{{steps.evaluate.outputs.params.better}} == true");
    cr_assert_not(d->is_finally);
    cr_assert(n->is_finally);
    cr_assert_eq(n, s->steps[5]);
    cr_assert_str_eq(n->argv[2], "echo run {{run.id}} ended {{run.status}}");
    cr_assert_eq(n->retries->limit, 2, "defaults apply to finally steps too");
    spec_destroy(&s);
}

/* ---- data flow ---- */

Test(spec, outputs_fields)
{
    spec_t *s = parse_ok("name: p\nsteps:\n  - name: a\n    command: [x]\n    outputs:\n"
                         "      artifacts: [model, metrics.json, a-b_c.1]\n"
                         "      params: [acc, n.rows]\n"
                         "  - {name: b, command: [x], outputs: {params: [only]}}\n"
                         "  - {name: c, command: [x], outputs: {artifacts: []}}\n");
    const Drover__StepSpec *a = s->steps[0], *b = s->steps[1], *c = s->steps[2];
    cr_assert_eq(a->n_out_artifacts, 3);
    cr_assert_str_eq(a->out_artifacts[0], "model");
    cr_assert_str_eq(a->out_artifacts[1], "metrics.json");
    cr_assert_str_eq(a->out_artifacts[2], "a-b_c.1");
    cr_assert_eq(a->n_out_params, 2);
    cr_assert_str_eq(a->out_params[0], "acc");
    cr_assert_str_eq(a->out_params[1], "n.rows");
    cr_assert_eq(b->n_out_artifacts, 0);
    cr_assert_null(b->out_artifacts);
    cr_assert_eq(b->n_out_params, 1);
    cr_assert_eq(c->n_out_artifacts, 0);
    cr_assert_eq(c->n_inputs, 0);
    cr_assert_str_empty(c->when);
    cr_assert_not(c->fan_out);
    cr_assert_str_empty(c->items_from);
    cr_assert_eq(c->parallelism, 0);
    spec_destroy(&s);
}

Test(spec, outputs_errors)
{
    static const struct {
        const char *name;
        int col;
    } bad[] = {{"../x", 27},
               {"a/b", 27},
               {"..", 27},
               {".", 27},
               {"a..b", 27},
               {"a b", 27},
               {"\"\"", 27},
               {"x\\ny", 27},
               {"a123456789012345678901234567890123456789012345678901234567890123", 27}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[512], want[256];
        snprintf(yaml, sizeof yaml,
                 "name: p\nsteps:\n  - name: a\n    command: [x]\n    outputs: {artifacts: "
                 "[%s%s%s]}\n",
                 bad[i].name[0] == '"' || strchr(bad[i].name, '\\') ? "" : "\"", bad[i].name,
                 bad[i].name[0] == '"' || strchr(bad[i].name, '\\') ? "" : "\"");
        if (strchr(bad[i].name, '\\')) /* a quoted escape: write it double-quoted */
            snprintf(yaml, sizeof yaml,
                     "name: p\nsteps:\n  - name: a\n    command: [x]\n    outputs: {artifacts: "
                     "[\"%s\"]}\n",
                     bad[i].name);
        snprintf(want, sizeof want,
                 "names are 1-63 characters of [A-Za-z0-9_.-] (not '.', no "
                 "'..')");
        parse_bad_at(yaml, 5, bad[i].col, want);
        cr_assert(strstr(err, "bad output name '"), "%s", err);
        cr_assert_null(strchr(err, '\n'));
    }
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: {artifacts: [\"../x\"]}}\n",
              "bad output name '../x': names are 1-63 characters of [A-Za-z0-9_.-]");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: {params: [\"a/b\"]}}\n",
              "bad output name 'a/b'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: {params: [[x]]}}\n",
              "bad output name '(not a string)'");
    /* unique across both lists; the second is reported */
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    outputs:\n"
                 "      artifacts: [model, data]\n      params: [n, model]\n",
                 7, 19, "output 'model' declared twice");
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    outputs:\n"
                 "      params: [n, m, n]\n",
                 6, 22, "output 'n' declared twice");
    /* two steps may declare the same names */
    spec_t *s = parse_ok("name: p\nsteps:\n  - {name: a, command: [x], outputs: {params: [n]}}\n"
                         "  - {name: b, command: [x], outputs: {params: [n]}}\n");
    spec_destroy(&s);
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: [model]}\n",
              "'outputs' must be a map (artifacts, params)");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: {artifacts: model}}\n",
              "'outputs.artifacts' must be a list of names");
    parse_bad_at("name: p\nsteps:\n  - {name: a, command: [x], outputs: {files: [model]}}\n", 3, 39,
                 "unknown key 'files' in outputs (artifacts, params)");
    parse_bad("name: p\ndefaults: {outputs: {params: [x]}}\nsteps:\n  - {name: a, command: [x]}\n",
              "'outputs' cannot be set under defaults");
}

Test(spec, inputs_fields)
{
    spec_t *s = parse_ok("name: p\nsteps:\n"
                         "  - {name: z, command: [x], needs: [b], inputs: {artifacts: {m: b.model, "
                         "d: a.data.tar}}}\n"
                         "  - {name: a, command: [x], outputs: {artifacts: [data.tar]}}\n"
                         "  - {name: b, command: [x], needs: [a], outputs: {artifacts: [model]}}\n"
                         "  - {name: pre.p, command: [x], outputs: {artifacts: [x]}}\n"
                         "  - {name: q, command: [x], needs: [pre.p], inputs: {artifacts: {in: "
                         "pre.p.x}}}\n");
    const Drover__StepSpec *z = step(s, "z"), *q = step(s, "q");
    cr_assert_eq(z->n_inputs, 2);
    cr_assert_str_eq(z->inputs[0]->local, "m");
    cr_assert_eq(z->inputs[0]->step, 2);
    cr_assert_str_eq(z->inputs[0]->artifact, "model");
    /* transitively needed: z needs b needs a */
    cr_assert_str_eq(z->inputs[1]->local, "d");
    cr_assert_eq(z->inputs[1]->step, 1);
    cr_assert_str_eq(z->inputs[1]->artifact, "data.tar");
    /* a step name with a dot */
    cr_assert_eq(q->inputs[0]->step, 3);
    cr_assert_str_eq(q->inputs[0]->artifact, "x");
    spec_destroy(&s);
}

#define IN_HEAD                                                                                    \
    "name: p\nsteps:\n"                                                                            \
    "  - {name: prepare, command: [x], outputs: {artifacts: [dataset]}}\n"                         \
    "  - {name: other, command: [x]}\n"

Test(spec, inputs_errors)
{
    parse_bad_at(IN_HEAD "  - name: train\n    command: [x]\n    inputs: {artifacts: {data: "
                         "prepare.dataset}}\n",
                 7, 32, "input 'data': step 'train' does not need 'prepare' (add it to needs)");
    parse_bad_at(IN_HEAD "  - name: train\n    needs: [prepare]\n    command: [x]\n    inputs: "
                         "{artifacts: {data: prepare.datasets}}\n",
                 8, 32, "input 'data': step 'prepare' declares no output artifact 'datasets'");
    parse_bad(IN_HEAD "  - {name: t, command: [x], needs: [other], inputs: {artifacts: {d: "
                      "other.dataset}}}\n",
              "input 'd': step 'other' declares no output artifact 'dataset'");
    parse_bad(IN_HEAD "  - {name: t, command: [x], inputs: {artifacts: {d: nope.dataset}}}\n",
              "input 'd': no step named 'nope' (write STEP.ARTIFACT)");
    parse_bad(IN_HEAD "  - {name: t, command: [x], inputs: {artifacts: {d: prepare}}}\n",
              "input 'd': 'prepare' is not STEP.ARTIFACT");
    parse_bad(IN_HEAD "  - {name: t, command: [x], inputs: {artifacts: {d: prepare.}}}\n",
              "is not STEP.ARTIFACT");
    parse_bad(IN_HEAD "  - {name: t, command: [x], inputs: {artifacts: {d: .x}}}\n",
              "is not STEP.ARTIFACT");
    parse_bad(IN_HEAD "  - {name: t, command: [x], inputs: {artifacts: {d: [prepare.dataset]}}}\n",
              "'inputs.artifacts source' must be a string");
    parse_bad_at(IN_HEAD "  - {name: t, command: [x], needs: [prepare], inputs: {artifacts: "
                         "{../d: prepare.dataset}}}\n",
                 5, 68, "bad input name '../d': names are 1-63 characters");
    parse_bad(IN_HEAD "  - {name: t, command: [x], inputs: {artifacts: [prepare.dataset]}}\n",
              "'inputs.artifacts' must be a map of name: STEP.ARTIFACT");
    parse_bad(IN_HEAD "  - {name: t, command: [x], inputs: {files: {}}}\n",
              "unknown key 'files' in inputs");
    /* its own outputs */
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: {artifacts: [m]}, inputs: "
              "{artifacts: {m: a.m}}}\n",
              "input 'm': step 'a' cannot use its own outputs");
    /* a step that depends on the consumer, not the other way round */
    parse_bad(IN_HEAD "  - {name: t, command: [x], needs: [prepare], outputs: {artifacts: [o]}}\n"
                      "  - {name: u, command: [x], needs: [t]}\n"
                      "  - {name: v, command: [x], needs: [u], inputs: {artifacts: {i: "
                      "t.o}}}\n"
                      "  - {name: w, command: [x], needs: [prepare], inputs: {artifacts: {i: "
                      "u.o}}}\n",
              "input 'i': step 'w' does not need 'u'");
    /* both splits of a.b.c name a step that declares the rest: ambiguous */
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: {artifacts: [b.c]}}\n"
              "  - {name: a.b, command: [x], outputs: {artifacts: [c]}}\n"
              "  - {name: t, command: [x], needs: [a, a.b], inputs: {artifacts: {i: a.b.c}}}\n",
              "input 'i': 'a.b.c' is ambiguous");
}

Test(spec, runtime_refs_kept_verbatim)
{
    spec_kv_t ov[] = {{"tag", "v2"}};
    spec_t *s = NULL;
    int rc = parse_ov(
        "name: p\nparams: {tag: v1}\n"
        "defaults: {env: {RUN: \"{{run.id}}/{{ run.name }}\"}}\n"
        "steps:\n"
        "  - {name: a, command: [x], outputs: {params: [acc, n.rows]}}\n"
        "  - name: b\n"
        "    needs: [a]\n"
        "    command: [eval, \"--acc={{steps.a.outputs.params.acc}}\", \"{{ "
        "steps.a.outputs.params.n.rows }}\", \"{{params.tag}}\"]\n"
        "    env: {ACC: \"{{steps.a.outputs.params.acc}}-{{params.tag}}\"}\n"
        "  - {name: c, needs: [b], script: \"echo {{steps.a.outputs.params.acc}} {{run.name}}\"}\n",
        ov, 1, &s);
    cr_assert_eq(rc, 0, "%s", err);
    const Drover__StepSpec *b = step(s, "b"), *c = step(s, "c");
    cr_assert_str_eq(b->argv[1], "--acc={{steps.a.outputs.params.acc}}");
    cr_assert_str_eq(b->argv[2], "{{ steps.a.outputs.params.n.rows }}");
    cr_assert_str_eq(b->argv[3], "v2");
    cr_assert_str_eq(kvm(b->env, b->n_env, "ACC"), "{{steps.a.outputs.params.acc}}-v2");
    cr_assert_str_eq(kvm(b->env, b->n_env, "RUN"), "{{run.id}}/{{ run.name }}");
    cr_assert_str_eq(c->argv[2], "echo {{steps.a.outputs.params.acc}} {{run.name}}");
    spec_destroy(&s);
}

#define REF_HEAD                                                                                   \
    "name: p\nsteps:\n"                                                                            \
    "  - {name: a, command: [x], outputs: {params: [acc]}}\n"                                      \
    "  - {name: other, command: [x]}\n"

Test(spec, runtime_ref_errors)
{
    parse_bad_at(REF_HEAD "  - name: b\n    command: [x, \"{{steps.a.outputs.params.acc}}\"]\n", 6,
                 18,
                 "{{steps.a.outputs.params.acc}}: step 'b' does not need 'a' (add it to needs)");
    parse_bad_at(REF_HEAD "  - name: b\n    needs: [a]\n    command: [x]\n    env:\n      X: "
                          "\"{{steps.a.outputs.params.ac}}\"\n",
                 9, 10, "{{steps.a.outputs.params.ac}}: step 'a' declares no output param 'ac'");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{steps.zz.outputs.params.acc}}\"}\n",
              "{{steps.zz.outputs.params.acc}}: no step named 'zz'");
    parse_bad(REF_HEAD
              "  - {name: b, needs: [other], script: \"{{steps.other.outputs.params.acc}}\"}\n",
              "step 'other' declares no output param 'acc'");
    parse_bad("name: p\nsteps:\n  - {name: a, outputs: {params: [n]}, script: "
              "\"{{steps.a.outputs.params.n}}\"}\n",
              "step 'a' cannot use its own outputs");
    /* malformed forms are refused where they are written */
    parse_bad_at(
        REF_HEAD "  - {name: b, script: \"echo {{steps.a.acc}}\"}\n", 5, 23,
        "bad template '{{steps.a.acc}}' (use {{steps.STEP.outputs.params.NAME}}, "
        "{{steps.STEP.outputs.result}}, {{steps.STEP.status}} or {{steps.STEP.exit_code}})");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{steps}}\"}\n", "bad template '{{steps}}'");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{steps.a.outputs.params.}}\"}\n", "bad template");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{run.date}}\"}\n",
              "bad template '{{run.date}}' (use {{run.id}}, {{run.name}}, {{run.status}}, "
              "{{run.failures}}, {{run.duration}}, {{run.scheduled_at}}, {{run.interval_start}} "
              "or {{run.interval_end}})");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{schedule.id}}\"}\n",
              "bad template '{{schedule.id}}' (use {{schedule.name}})");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{trigger.outputs.x}}\"}\n",
              "use {{trigger.run_id}} or {{trigger.outputs.STEP.PARAM}}");
    spec_t *facts = parse_ok(REF_HEAD "  - {name: b, script: \"{{run.scheduled_at}} "
                                      "{{schedule.name}} {{trigger.run_id}} "
                                      "{{trigger.outputs.a.x}}\"}\n");
    spec_destroy(&facts);
    parse_bad(REF_HEAD "  - {name: b, script: \"{{item[0]}}\"}\n",
              "bad template '{{item[0]}}' (use {{item}} or {{item.KEY}})");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{item.a b}}\"}\n", "bad template '{{item.a b}}'");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{items}}\"}\n", "bad template '{{items}}'");
    /* item only in for_each steps */
    parse_bad_at(REF_HEAD "  - name: b\n    script: echo {{item}}\n", 6, 13,
                 "{{item}} used outside a for_each step");
    parse_bad(REF_HEAD "  - {name: b, command: [x, \"{{ item.shard }}\"]}\n",
              "{{item.shard}} used outside a for_each step");
    /* run.status only in finally steps */
    parse_bad_at(REF_HEAD "  - name: b\n    script: echo {{run.status}}\n", 6, 13,
                 "{{run.status}} is only known in finally steps (exit handlers)");
    /* main steps cannot read finally steps */
    parse_bad("name: p\nsteps:\n  - {name: a, script: \"{{steps.f.outputs.params.x}}\"}\nfinally:\n"
              "  - {name: f, command: [x], outputs: {params: [x]}}\n",
              "{{steps.f.outputs.params.x}}: 'f' is a finally step, which runs after every main "
              "step");
}

/* issue 14: a reference may be written with whitespace inside its braces
 * ("{{ item }}", tabs, a newline in a quoted YAML string): the spec reads
 * it exactly as droverd's evaluator does, in every place. */
Test(spec, spaced_references)
{
    spec_kv_t ov[] = {{"n", "7"}};
    spec_t *s = NULL;
    int rc = parse_ov("name: p\nparams: {n: \"1\"}\nsteps:\n"
                      "  - {name: list, command: [x], outputs: {params: [xs]}}\n"
                      "  - name: w\n"
                      "    needs: [list]\n"
                      "    for_each: \"  {{\\tsteps.list.outputs.params.xs\\n}}  \"\n"
                      "    when: \"{{ item }} != 4 && '{{\\nitem.k }}' != {{ params.n }}\"\n"
                      "    env: {N: \"{{\\n params.n \\n}}\", R: \"{{ run.name }}\"}\n"
                      "    command: [x, \"{{\\n item \\n}}\", \"{{ item.k }}\", \"{{  "
                      "steps.list.outputs.params.xs\\t}}\"]\n",
                      ov, 1, &s);
    cr_assert_eq(rc, 0, "%s", err);
    const Drover__StepSpec *w = s->steps[1];
    cr_assert(w->fan_out);
    cr_assert_str_eq(w->items_from, "{{\tsteps.list.outputs.params.xs\n}}");
    cr_assert_str_eq(w->when, "{{ item }} != 4 && '{{\nitem.k }}' != 7");
    cr_assert_str_eq(kvm(w->env, w->n_env, "N"), "7");
    cr_assert_str_eq(kvm(w->env, w->n_env, "R"), "{{ run.name }}");
    cr_assert_str_eq(w->argv[1], "{{\n item \n}}");
    cr_assert_str_eq(w->argv[3], "{{  steps.list.outputs.params.xs\t}}");
    spec_destroy(&s);

    /* the same checks as without the spaces, naming the reference */
    parse_bad(REF_HEAD "  - {name: b, command: [x], when: \"{{ item }} != 4\"}\n",
              "bad when expression: col 1: {{item}} used outside a for_each step");
    parse_bad_at(REF_HEAD "  - name: b\n    command: [x, \"{{\\titem\\n}}\"]\n", 6, 18,
                 "{{item}} used outside a for_each step");
    parse_bad_at(REF_HEAD "  - name: b\n    script: \"{{ steps.a.outputs.params.acc }}\"\n", 6, 13,
                 "{{steps.a.outputs.params.acc}}: step 'b' does not need 'a'");
    parse_bad_at(REF_HEAD "  - name: b\n    script: \"echo {{\\n nope }}\"\n", 6, 13,
                 "bad template '{{\\x0a nope }}' (use {{params.NAME}}");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{ }}\"}\n", "bad template '{{ }}'");
    parse_bad(REF_HEAD "  - {name: b, script: \"{{ params.nope }}\"}\n",
              "unknown param 'nope' in template");
    parse_bad_at("name: p\nsteps:\n  - {name: a, command: [x], for_each: \"{{ item }}\"}\n", 3, 39,
                 "'for_each' template must be {{steps.STEP.outputs.params.NAME}} or "
                 "{{steps.STEP.outputs.result}}, not '{{ item }}'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: [\"{{ item }}\"]}\n",
              "'{{ item }}' cannot be used in a for_each item");
}

Test(spec, runtime_refs_from_defaults)
{
    /* inherited env values are checked for each step that inherits them */
    parse_bad_at("name: p\ndefaults:\n  env: {I: \"{{item}}\"}\nsteps:\n  - {name: a, command: "
                 "[x], for_each: [1]}\n  - {name: b, command: [x]}\n",
                 3, 12,
                 "{{item}} used outside a for_each step (in defaults, inherited by step 'b')");
    /* ... but not where the step overrides the key */
    spec_t *s = parse_ok("name: p\ndefaults:\n  env: {I: \"{{item}}\"}\nsteps:\n  - {name: a, "
                         "command: [x], for_each: [1]}\n  - {name: b, command: [x], env: {I: "
                         "none}}\n");
    cr_assert_str_eq(kvm(s->steps[0]->env, s->steps[0]->n_env, "I"), "{{item}}");
    cr_assert_str_eq(kvm(s->steps[1]->env, s->steps[1]->n_env, "I"), "none");
    spec_destroy(&s);
    parse_bad("name: p\ndefaults:\n  env: {S: \"{{run.status}}\"}\nsteps:\n  - {name: a, "
              "command: [x]}\nfinally:\n  - {name: f, command: [x]}\n",
              "{{run.status}} is only known in finally steps (exit handlers) (in defaults, "
              "inherited by step 'a')");
}

Test(spec, when_fields_and_errors)
{
    spec_kv_t ov[] = {{"min", "0.9"}};
    spec_t *s = NULL;
    int rc = parse_ov("name: p\nparams: {min: \"0.5\", env: prod}\nsteps:\n"
                      "  - {name: a, command: [x], outputs: {params: [acc]}}\n"
                      "  - name: b\n    needs: [a]\n    command: [x]\n"
                      "    when: \"{{steps.a.outputs.params.acc}} >= {{params.min}} && "
                      "'{{params.env}}' == 'prod' && '{{run.name}}' != ''\"\n"
                      "  - {name: c, command: [x], when: \"true\"}\n",
                      ov, 1, &s);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(step(s, "b")->when, "{{steps.a.outputs.params.acc}} >= 0.9 && 'prod' == "
                                         "'prod' && '{{run.name}}' != ''");
    cr_assert_str_eq(step(s, "c")->when, "true");
    cr_assert_str_empty(step(s, "a")->when);
    spec_destroy(&s);

    /* syntax: at the when value, with the expression's own column */
    parse_bad("name: p\nsteps:\n  - name: a\n    command: [x]\n    when: \"{{run.id}} &&\"\n",
              "bad when expression");
    cr_assert_str_eq(err, "t.yaml:5:11: bad when expression: col 14: expected an operand after "
                          "'&&', found end of expression");
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    when: \"(1 == 1\"\n", 5, 11,
                 "bad when expression: col ");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], when: \"maybe\"}\n",
              "bad when expression: col 1: 'maybe' is not a boolean");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], when: \"\"}\n",
              "bad when expression: col 1: empty expression");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], when: [x]}\n",
              "'when' must be a string");
    /* references: an unknown step, a step not needed, a param not declared */
    parse_bad_at(REF_HEAD "  - name: b\n    command: [x]\n    when: \"1 == {{steps.nope.outputs."
                          "params.x}}\"\n",
                 7, 11,
                 "bad when expression: col 6: {{steps.nope.outputs.params.x}}: no step named "
                 "'nope'");
    parse_bad(REF_HEAD "  - {name: b, command: [x], when: \"{{steps.a.outputs.params.acc}}\"}\n",
              "bad when expression: col 1: {{steps.a.outputs.params.acc}}: step 'b' does not "
              "need 'a' (add it to needs)");
    parse_bad(REF_HEAD "  - {name: b, needs: [a], command: [x], when: \"'{{steps.a.outputs.params."
                       "x}}' == y\"}\n",
              "bad when expression: col 2: {{steps.a.outputs.params.x}}: step 'a' declares no "
              "output param 'x'");
    parse_bad(REF_HEAD "  - {name: b, command: [x], when: \"{{item}}\"}\n",
              "bad when expression: col 1: {{item}} used outside a for_each step");
    parse_bad(REF_HEAD "  - {name: b, command: [x], when: \"{{run.status}} == Failed\"}\n",
              "{{run.status}} is only known in finally steps");
    parse_bad(REF_HEAD "  - {name: b, command: [x], when: \"{{params.q}}\"}\n",
              "unknown param 'q' in template");
    /* a template arriving in a param's value cannot be resolved at run time */
    parse_bad("name: p\nparams: {c: \"{{params.d}}\", d: x}\nsteps:\n  - {name: a, command: [x], "
              "when: \"{{params.c}} == x\"}\n",
              "bad when expression: col 1: {{params.d}} comes from a param's value");
    parse_bad("name: p\nparams: {c: \"{{bogus}}\"}\nsteps:\n  - {name: a, command: [x], "
              "when: \"{{params.c}} == x\"}\n",
              "bad when expression: col 1: bad template '{{bogus}}'");
    /* the params-substituted text is what is checked */
    parse_bad("name: p\nparams: {op: \"&&\"}\nsteps:\n  - {name: a, command: [x], when: \"1 "
              "{{params.op}}\"}\n",
              "bad when expression: col 5: expected an operand after '&&'");
}

Test(spec, for_each_literal_items)
{
    spec_t *s = parse_ok(
        "name: p\nparams: {region: eu}\nsteps:\n"
        "  - name: a\n"
        "    for_each:\n"
        "      - plain\n"
        "      - \"{{params.region}}-1\"\n"
        "      - 42\n"
        "      - {shard: s1, rows: 100, ok: true, none: ~, q: \"1\", r: \"{{params.region}}\", "
        "nested: [1, x, {k: \"a\\\"b\"}], e: 1e3, h: 0x10}\n"
        "      - [x, 2.5, false]\n"
        "      - {}\n"
        "    parallelism: 2\n"
        "    command: [run, \"{{item}}\", \"{{item.shard}}\"]\n"
        "    env: {ROWS: \"{{ item.rows }}\"}\n"
        "    when: \"'{{item.ok}}' == true\"\n"
        "  - {name: e, command: [x], for_each: []}\n");
    const Drover__StepSpec *a = s->steps[0], *e = s->steps[1];
    cr_assert(a->fan_out);
    cr_assert_eq(a->n_items, 6);
    cr_assert_str_eq(a->items[0], "plain");
    cr_assert_str_eq(a->items[1], "eu-1");
    cr_assert_str_eq(a->items[2], "42");
    cr_assert_str_eq(a->items[3],
                     "{\"shard\":\"s1\",\"rows\":100,\"ok\":true,\"none\":null,"
                     "\"q\":\"1\",\"r\":\"eu\",\"nested\":[1,\"x\",{\"k\":\"a\\\"b\"}],"
                     "\"e\":1e3,\"h\":\"0x10\"}");
    cr_assert_str_eq(a->items[4], "[\"x\",2.5,false]");
    cr_assert_str_eq(a->items[5], "{}");
    cr_assert_str_empty(a->items_from);
    cr_assert_eq(a->parallelism, 2);
    cr_assert_str_eq(a->argv[1], "{{item}}");
    cr_assert_str_eq(a->argv[2], "{{item.shard}}");
    cr_assert_str_eq(kvm(a->env, a->n_env, "ROWS"), "{{ item.rows }}");
    cr_assert_str_eq(a->when, "'{{item.ok}}' == true");
    cr_assert(e->fan_out, "an empty list is a fan-out of nothing");
    cr_assert_eq(e->n_items, 0);
    cr_assert_eq(e->parallelism, 0);
    spec_destroy(&s);
}

Test(spec, for_each_strings)
{
    /* a param holding JSON */
    spec_kv_t ov[] = {{"shards", "[\"a\", \"b\", {\"n\": 1}]"}};
    spec_t *s = NULL;
    int rc = parse_ov("name: p\nparams: {shards: \"[]\"}\nsteps:\n"
                      "  - {name: a, command: [x], for_each: \"{{params.shards}}\"}\n"
                      "  - {name: b, command: [x], for_each: \"  [1, 2]  \"}\n",
                      ov, 1, &s);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(s->steps[0]->fan_out);
    cr_assert_eq(s->steps[0]->n_items, 3);
    cr_assert_str_eq(s->steps[0]->items[0], "a");
    cr_assert_str_eq(s->steps[0]->items[1], "b");
    cr_assert_str_eq(s->steps[0]->items[2], "{\"n\":1}");
    cr_assert_str_empty(s->steps[0]->items_from);
    cr_assert_eq(s->steps[1]->n_items, 2);
    spec_destroy(&s);
    /* the declared default: an empty list */
    s = parse_ok("name: p\nparams: {shards: \"[]\"}\nsteps:\n"
                 "  - {name: a, command: [x], for_each: \"{{params.shards}}\"}\n");
    cr_assert(s->steps[0]->fan_out);
    cr_assert_eq(s->steps[0]->n_items, 0);
    spec_destroy(&s);

    /* items from a step's output param, at run time */
    s = parse_ok("name: p\nsteps:\n"
                 "  - {name: list, command: [x], outputs: {params: [shards]}}\n"
                 "  - name: work\n    needs: [list]\n    parallelism: 4\n"
                 "    for_each: \"{{ steps.list.outputs.params.shards }}\"\n"
                 "    script: echo {{item}}\n");
    const Drover__StepSpec *w = s->steps[1];
    cr_assert(w->fan_out);
    cr_assert_str_eq(w->items_from, "{{ steps.list.outputs.params.shards }}");
    cr_assert_eq(w->n_items, 0);
    cr_assert_null(w->items);
    cr_assert_eq(w->parallelism, 4);
    spec_destroy(&s);
    /* ... which is checked like any reference */
    parse_bad_at("name: p\nsteps:\n  - {name: list, command: [x], outputs: {params: [shards]}}\n"
                 "  - name: work\n    for_each: \"{{steps.list.outputs.params.shards}}\"\n"
                 "    script: x\n",
                 5, 15,
                 "for_each {{steps.list.outputs.params.shards}}: step 'work' does not need 'list'");
    parse_bad("name: p\nsteps:\n  - {name: list, command: [x]}\n  - {name: w, needs: [list], "
              "script: x, for_each: \"{{steps.list.outputs.params.s}}\"}\n",
              "step 'list' declares no output param 's'");
}

Test(spec, for_each_errors)
{
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    for_each: \"a, b\"\n", 5, 15,
                 "'for_each' string must be a JSON list or {{steps.STEP.outputs.params.NAME}}: "
                 "offset 0: expected '[' (a JSON list), found 'a'");
    parse_bad("name: p\nparams: {s: \"[1,]\"}\nsteps:\n  - {name: a, command: [x], for_each: "
              "\"{{params.s}}\"}\n",
              "offset 3: expected a value, found ']'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: \"{{item}}\"}\n",
              "'for_each' template must be {{steps.STEP.outputs.params.NAME}} or "
              "{{steps.STEP.outputs.result}}, not '{{item}}'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: \"{{run.id}}\"}\n",
              "'for_each' template must be");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], outputs: {params: [l]}}\n  - {name: "
              "b, command: [x], needs: [a], for_each: \"[{{steps.a.outputs.params.l}}]\"}\n",
              "'for_each' may hold a run-time template only as the whole string");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: \"{{steps.a}}\"}\n",
              "bad template '{{steps.a}}'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: {a: 1}}\n",
              "unknown key 'a' in for_each (a map is a range: {range: END}, {range: [START, "
              "END]} or {range: [START, END, STEP]})");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: }\n",
              "'for_each' must be a list of items, a string (a JSON list, or "
              "{{steps.STEP.outputs.params.NAME}}) or a range ({range: END}, {range: [START, "
              "END]} or {range: [START, END, STEP]})");
    /* run-time templates inside items would never be expanded */
    parse_bad_at(
        "name: p\nsteps:\n  - name: a\n    command: [x]\n    for_each: [a, \"{{run.id}}\"]\n", 5,
        19, "'{{run.id}}' cannot be used in a for_each item");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: [{k: \"{{item}}\"}]}\n",
              "'{{item}}' cannot be used in a for_each item");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: [\"{{params.nope}}\"]}\n",
              "unknown param 'nope' in template");
    /* parallelism belongs to a fan-out */
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    parallelism: 3\n", 5, 5,
                 "parallelism without for_each");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: [1], parallelism: 10001}\n",
              "'parallelism' must be a whole number from 1 to 10000");
    parse_bad("name: p\ndefaults: {for_each: [1]}\nsteps:\n  - {name: a, command: [x]}\n",
              "'for_each' cannot be set under defaults");
}

Test(spec, for_each_item_limit)
{
    /* 100,000 literal items are fine, 100,001 are not */
    size_t cap = 100002 * 2 + 256, o = 0;
    char *t = malloc(cap);
    o += (size_t)snprintf(t, cap, "name: p\nsteps:\n  - {name: a, command: [x], for_each: [");
    for (int i = 0; i < 100000; i++)
        o += (size_t)snprintf(t + o, cap - o, "%s%d", i ? "," : "", i % 10);
    strcpy(t + o, "]}\n");
    spec_t *s = parse_ok(t);
    cr_assert_eq(s->steps[0]->n_items, 100000);
    cr_assert_str_eq(s->steps[0]->items[99999], "9");
    spec_destroy(&s);
    strcpy(t + o, ",1]}\n");
    parse_bad_at(t, 3, 39, "too many for_each items (100001; at most 100000)");

    /* the same through a param holding JSON */
    char *val = malloc(cap);
    o = 0;
    val[o++] = '[';
    for (int i = 0; i <= 100000; i++)
        o += (size_t)snprintf(val + o, cap - o, "%s%d", i ? "," : "", i % 10);
    strcpy(val + o, "]");
    spec_kv_t ov[] = {{"l", val}};
    cr_assert_eq(parse_ov("name: p\nparams: {l: x}\nsteps:\n  - {name: a, command: [x], "
                          "for_each: \"{{params.l}}\"}\n",
                          ov, 1, &s),
                 -E2BIG);
    cr_assert(strstr(err, "param 'l' (-p l=...) is longer than 65536 bytes"), "%s", err);
    free(val);
    free(t);
}

/* for_each: {range: ...}: three numbers, no items (droverd makes them) */
static void expect_range(const Drover__StepSpec *st, int64_t start, int64_t end, int64_t step,
                         uint64_t count)
{
    cr_assert(st->fan_out, "step %s: a range is a fan-out", st->name);
    cr_assert(st->has_range, "step %s has no range", st->name);
    cr_assert_eq(st->range_start, start, "step %s: start %lld", st->name,
                 (long long)st->range_start);
    cr_assert_eq(st->range_end, end, "step %s: end %lld", st->name, (long long)st->range_end);
    cr_assert_eq(st->range_step, step, "step %s: step %lld", st->name, (long long)st->range_step);
    cr_assert_eq(st->n_items, 0);
    cr_assert_null(st->items);
    cr_assert_str_empty(st->items_from);
    uint64_t n = spec_range_count(start, end, step);
    cr_assert_eq(n, count, "step %s: %llu items, want %llu", st->name, (unsigned long long)n,
                 (unsigned long long)count);
}

Test(spec, for_each_range)
{
    spec_t *s =
        parse_ok("name: p\nparams: {n: \"5\", lo: \"-3\"}\nsteps:\n"
                 "  - {name: a, command: [x, \"{{item}}\"], for_each: {range: 1000000}}\n"
                 "  - {name: b, command: [x], for_each: {range: [1, 101]}}\n"
                 "  - name: c\n"
                 "    for_each: {range: [0, 100, 10]}\n"
                 "    parallelism: 3\n"
                 "    when: \"{{item}} != 40\"\n"
                 "    command: [x, \"{{ item }}\", \"{{item.k}}\"]\n"
                 "  - {name: d, command: [x], for_each: {range: [10, 0, -2]}}\n"
                 "  - {name: e, command: [x], for_each: {range: \"{{params.n}}\"}}\n"
                 "  - {name: f, command: [x], for_each: {range: [\"{{params.lo}}\", +7, \"2\"]}}\n"
                 "  - {name: g, command: [x], for_each: {range: 0}}\n"
                 "  - {name: h, command: [x], for_each: {range: [5, 1]}}\n"
                 "  - name: i\n"
                 "    command: [x]\n"
                 "    for_each:\n"
                 "      range: [-9223372036854775808, 9223372036854775807, 9223372036854775807]\n");
    expect_range(step(s, "a"), 0, 1000000, 1, 1000000);
    cr_assert_str_eq(step(s, "a")->argv[1], "{{item}}");
    expect_range(step(s, "b"), 1, 101, 1, 100);
    expect_range(step(s, "c"), 0, 100, 10, 10);
    cr_assert_eq(step(s, "c")->parallelism, 3);
    cr_assert_str_eq(step(s, "c")->when, "{{item}} != 40");
    expect_range(step(s, "d"), 10, 0, -2, 5);
    expect_range(step(s, "e"), 0, 5, 1, 5);
    expect_range(step(s, "f"), -3, 7, 2, 5);
    expect_range(step(s, "g"), 0, 0, 1, 0); /* empty, as range(0) and for_each: [] */
    expect_range(step(s, "h"), 5, 1, 1, 0);
    expect_range(step(s, "i"), INT64_MIN, INT64_MAX, INT64_MAX, 3);
    spec_destroy(&s);

    /* a -p override sets the size */
    spec_kv_t ov[] = {{"n", "250000"}};
    cr_assert_eq(parse_ov("name: p\nparams: {n: \"1\"}\nsteps:\n"
                          "  - {name: a, command: [x], for_each: {range: [0, \"{{params.n}}\"]}}\n",
                          ov, 1, &s),
                 0, "%s", err);
    expect_range(s->steps[0], 0, 250000, 1, 250000);
    spec_destroy(&s);
}

Test(spec, range_count)
{
    cr_assert_eq(spec_range_count(0, 10, 3), 4);
    cr_assert_eq(spec_range_count(10, 0, -3), 4);
    cr_assert_eq(spec_range_count(0, 10, 10), 1);
    cr_assert_eq(spec_range_count(0, 10, 11), 1);
    cr_assert_eq(spec_range_count(5, 5, 1), 0);
    cr_assert_eq(spec_range_count(5, 5, -1), 0);
    cr_assert_eq(spec_range_count(0, 10, -1), 0);
    cr_assert_eq(spec_range_count(10, 0, 1), 0);
    cr_assert_eq(spec_range_count(0, 10, 0), 0);
    cr_assert_eq(spec_range_count(-5, 5, 1), 10);
    cr_assert_eq(spec_range_count(INT64_MIN, INT64_MAX, 1), UINT64_MAX);
    cr_assert_eq(spec_range_count(INT64_MAX, INT64_MIN, -1), UINT64_MAX);
    cr_assert_eq(spec_range_count(INT64_MAX, INT64_MIN, INT64_MIN), 2);
    cr_assert_eq(spec_range_count(INT64_MIN, INT64_MAX, INT64_MAX), 3);
}

/* A one-step spec whose for_each (on line 5, from column 15) is fe. */
static const char *range_spec(const char *fe)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "name: p\nparams: {n: ten, k: \"7\"}\nsteps:\n  - name: a\n    for_each: %s\n"
             "    command: [x, \"{{item}}\"]\n",
             fe);
    return buf;
}

Test(spec, for_each_range_errors)
{
    /* step 0 */
    parse_bad_at(range_spec("{range: [0, 10, 0]}"), 5, 31, "for_each range STEP must not be 0");
    parse_bad_at(range_spec("{range: [0, 10, \"{{params.n}}\"]}"), 5, 31,
                 "for_each range STEP must be a decimal integer, not 'ten'");
    /* not integers */
    parse_bad_at(range_spec("{range: [0, 1.5]}"), 5, 27,
                 "for_each range END must be a decimal integer, not '1.5'");
    parse_bad_at(range_spec("{range: 1e6}"), 5, 23,
                 "for_each range END must be a decimal integer, not '1e6'");
    parse_bad_at(range_spec("{range: [0x10, 20]}"), 5, 24,
                 "for_each range START must be a decimal integer, not '0x10'");
    parse_bad_at(range_spec("{range: [1, \"\"]}"), 5, 27,
                 "for_each range END must be a decimal integer, not ''");
    parse_bad_at(range_spec("{range: [\"-\", 2]}"), 5, 24,
                 "for_each range START must be a decimal integer, not '-'");
    parse_bad_at(range_spec("{range: \" 5\"}"), 5, 23,
                 "for_each range END must be a decimal integer, not ' 5'");
    parse_bad_at(range_spec("{range: [1, ~]}"), 5, 27,
                 "for_each range END must be an integer ({range: END}, {range: [START, END]} or "
                 "{range: [START, END, STEP]})");
    parse_bad_at(range_spec("{range: [1, [2]]}"), 5, 27, "for_each range END must be an integer");
    parse_bad_at(range_spec("{range: }"), 5, 23, "for_each range END must be an integer");
    /* arity */
    parse_bad_at(range_spec("{range: [1]}"), 5, 23,
                 "for_each range must be {range: END}, {range: [START, END]} or {range: [START, "
                 "END, STEP]}, not a list of 1");
    parse_bad_at(range_spec("{range: []}"), 5, 23, "not a list of 0");
    parse_bad_at(range_spec("{range: [1, 2, 3, 4]}"), 5, 23, "not a list of 4");
    parse_bad_at(range_spec("{range: {end: 3}}"), 5, 23,
                 "for_each range must be {range: END}, {range: [START, END]} or {range: [START, "
                 "END, STEP]}, not a map");
    /* keys of the map */
    parse_bad_at(range_spec("{range: 5, step: 2}"), 5, 26,
                 "unknown key 'step' in for_each (a map is a range: {range: END}, {range: "
                 "[START, END]} or {range: [START, END, STEP]})");
    parse_bad_at(range_spec("{}"), 5, 15,
                 "'for_each' map must hold the key 'range': {range: END}, {range: [START, END]} "
                 "or {range: [START, END, STEP]}");
    parse_bad_at(range_spec("{range: 1, range: 2}"), 5, 26, "duplicate key 'range'");
    /* overflow */
    parse_bad_at(range_spec("{range: 9223372036854775808}"), 5, 23,
                 "for_each range END 9223372036854775808 overflows a 64-bit integer "
                 "(-9223372036854775808 to 9223372036854775807)");
    parse_bad_at(range_spec("{range: [-9223372036854775809, 0]}"), 5, 24,
                 "for_each range START -9223372036854775809 overflows a 64-bit integer");
    parse_bad_at(range_spec("{range: [0, 1, 123456789012345678901234567890]}"), 5, 30,
                 "for_each range STEP 123456789012345678901234567890 overflows a 64-bit integer");
    /* templates: {{params.NAME}} only, fixed at submit */
    parse_bad_at(range_spec("{range: \"{{params.n}}\"}"), 5, 23,
                 "for_each range END must be a decimal integer, not 'ten'");
    parse_bad_at(range_spec("{range: [\"{{params.k}}0\", \"{{params.nope}}\"]}"), 5, 41,
                 "unknown param 'nope' in template");
    parse_bad_at(range_spec("{range: \"{{item}}\"}"), 5, 23,
                 "'{{item}}' cannot be used in a for_each range (only {{params.NAME}}: a range "
                 "is fixed when the run is submitted)");
    parse_bad(range_spec("{range: \"{{steps.b.outputs.params.n}}\"}"),
              "'{{steps.b.outputs.params.n}}' cannot be used in a for_each range");
    parse_bad(range_spec("{range: \"{{run.id}}\"}"),
              "'{{run.id}}' cannot be used in a for_each range");
    /* ranges are for_each: not under defaults; parallelism needs them */
    parse_bad("name: p\ndefaults: {for_each: {range: 3}}\nsteps:\n  - {name: a, command: [x]}\n",
              "'for_each' cannot be set under defaults");
}

Test(spec, for_each_range_limit)
{
    /* droverd's run-time fan-out limit (1,000,000), not the literal list's */
    spec_t *s = parse_ok(range_spec("{range: [1, 1000001]}"));
    cr_assert_eq(
        spec_range_count(s->steps[0]->range_start, s->steps[0]->range_end, s->steps[0]->range_step),
        1000000);
    spec_destroy(&s);
    s = NULL;
    cr_assert_eq(parse_ov(range_spec("{range: 1000001}"), NULL, 0, &s), -E2BIG);
    cr_assert_null(s);
    cr_assert_str_eq(err, "t.yaml:5:23: too many for_each items in range (1000001; at most "
                          "1000000, droverd's --max-items)");
    parse_bad_at(range_spec("{range: [-9223372036854775808, 9223372036854775807]}"), 5, 23,
                 "too many for_each items in range (18446744073709551615; at most 1000000, "
                 "droverd's --max-items)");
    parse_bad_at(range_spec("{range: [0, 20000000, 10]}"), 5, 23,
                 "too many for_each items in range (2000000; at most 1000000");
    s = parse_ok(range_spec("{range: [0, 20000000, 20]}"));
    spec_destroy(&s);

    /* what droverd passes: --max-items 10 */
    spec_limits_t lim;
    spec_limits_defaults(&lim);
    cr_assert_eq(lim.max_range_items, 1000000);
    cr_assert_eq(lim.max_items, 100000);
    lim.max_range_items = 10;
    lim.max_items = 5;
    const char *y = range_spec("{range: [0, 100, 10]}");
    cr_assert_eq(spec_parse_limited("t.yaml", y, strlen(y), NULL, 0, &lim, &s, err, sizeof err), 0,
                 "%s", err);
    expect_range(s->steps[0], 0, 100, 10, 10);
    spec_destroy(&s);
    y = range_spec("{range: [0, 101, 10]}");
    cr_assert_eq(spec_parse_limited("t.yaml", y, strlen(y), NULL, 0, &lim, &s, err, sizeof err),
                 -E2BIG);
    cr_assert_str_eq(err, "t.yaml:5:23: too many for_each items in range (11; at most 10, "
                          "droverd's --max-items)");
}

Test(spec, finally_steps)
{
    spec_t *s = parse_ok("name: p\n"
                         "finally:\n"
                         "  - name: notify\n"
                         "    script: echo {{run.id}} {{run.status}} {{steps.a.outputs.params.n}}\n"
                         "    when: \"'{{run.status}}' != Succeeded\"\n"
                         "    inputs: {artifacts: {log: b.log}}\n"
                         "  - name: cleanup\n"
                         "    needs: [notify]\n"
                         "    command: [rm, -rf, /tmp/x]\n"
                         "steps:\n"
                         "  - {name: a, command: [x], outputs: {params: [n]}}\n"
                         "  - {name: b, command: [x], outputs: {artifacts: [log]}}\n");
    cr_assert_eq(s->step_count, 4);
    /* main steps first in file order, then finally steps */
    cr_assert_str_eq(s->steps[0]->name, "a");
    cr_assert_str_eq(s->steps[1]->name, "b");
    cr_assert_str_eq(s->steps[2]->name, "notify");
    cr_assert_str_eq(s->steps[3]->name, "cleanup");
    cr_assert_not(s->steps[0]->is_finally);
    cr_assert_not(s->steps[1]->is_finally);
    cr_assert(s->steps[2]->is_finally);
    cr_assert(s->steps[3]->is_finally);
    cr_assert_eq(s->steps[3]->n_needs, 1);
    cr_assert_eq(s->steps[3]->needs[0], 2);
    cr_assert_eq(s->pos[2].line, 3);
    /* a finally step may read any main step without needing it */
    cr_assert_eq(s->steps[2]->inputs[0]->step, 1);
    cr_assert_str_eq(s->steps[2]->when, "'{{run.status}}' != Succeeded");
    spec_destroy(&s);

    /* an empty finally is fine */
    s = parse_ok("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally: []\n");
    cr_assert_eq(s->step_count, 1);
    spec_destroy(&s);
    s = parse_ok("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally:\n");
    cr_assert_eq(s->step_count, 1);
    spec_destroy(&s);

    parse_bad_at("name: p\nsteps:\n  - {name: train, command: [x]}\nfinally:\n  - name: notify\n"
                 "    needs: [train]\n    script: x\n",
                 6, 13,
                 "finally step 'notify' cannot need main step 'train': exit handlers run after "
                 "every main step anyway");
    parse_bad_at("name: p\nsteps:\n  - name: a\n    needs: [n]\n    command: [x]\nfinally:\n"
                 "  - {name: n, script: x}\n",
                 4, 13, "step 'a' cannot need 'n', a finally step");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally:\n  - {name: f, script: x, "
              "needs: [g]}\n  - {name: g, script: x, needs: [f]}\n",
              "cycle: f -> g -> f");
    /* finally steps read other finally steps only through needs */
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally:\n  - {name: f, command: [x], "
              "outputs: {params: [r]}}\n  - {name: g, script: \"{{steps.f.outputs.params.r}}\"}\n",
              "{{steps.f.outputs.params.r}}: step 'g' does not need 'f' (add it to needs)");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally:\n  - name: f\n",
              "step 'f' needs a 'command'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x]}\nfinally:\n  - just-a-string\n",
              "each step must be a map");
}

Test(spec, cache_flag)
{
    spec_t *s = parse_ok("name: p\nsteps:\n  - {name: a, command: [x]}\n  - {name: b, command: "
                         "[x], cache: false}\n  - {name: c, command: [x], cache: true}\n");
    cr_assert(s->steps[0]->cache, "default true");
    cr_assert_not(s->steps[1]->cache);
    cr_assert(s->steps[2]->cache);
    spec_destroy(&s);
    s = parse_ok("name: p\ndefaults: {cache: false}\nsteps:\n  - {name: a, command: [x]}\n  - "
                 "{name: b, command: [x], cache: yes}\nfinally:\n  - {name: f, command: [x]}\n");
    cr_assert_not(s->steps[0]->cache, "from defaults");
    cr_assert(s->steps[1]->cache, "the step wins");
    cr_assert_not(s->steps[2]->cache, "finally steps inherit defaults too");
    spec_destroy(&s);
    parse_bad_at("name: p\ndefaults: {cache: sometimes}\nsteps:\n  - {name: a, command: [x]}\n", 2,
                 19, "'cache' must be true or false");
}

Test(spec, long_chain_of_references, .timeout = 60)
{
    /* 10,000 steps in a chain; the last reads the first: ancestors are
     * found transitively, and nothing is quadratic */
    size_t cap = 1024 * 1024, o = 0;
    char *t = malloc(cap);
    o += (size_t)snprintf(t + o, cap - o,
                          "name: p\nsteps:\n- {name: s0, command: [x], outputs: {params: [v], "
                          "artifacts: [m]}}\n");
    for (int i = 1; i < 9999; i++)
        o += (size_t)snprintf(t + o, cap - o, "- {name: s%d, needs: [s%d], command: [x]}\n", i,
                              i - 1);
    o += (size_t)snprintf(t + o, cap - o,
                          "- {name: last, needs: [s9998], inputs: {artifacts: {m: s0.m}}, when: "
                          "\"{{steps.s0.outputs.params.v}}\", script: x}\n");
    cr_assert_lt(o, cap);
    spec_t *s = parse_ok(t);
    cr_assert_eq(s->step_count, 10000);
    cr_assert_eq(s->steps[9999]->inputs[0]->step, 0);
    spec_destroy(&s);
    free(t);
}

/* ---- quantities ---- */

Test(quantity, memory)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"1000", 1000},
        {"512Mi", 512ull << 20},
        {"2Gi", 2ull << 30},
        {"1G", 1000000000ull},
        {"100M", 100000000ull},
        {"64Ki", 65536},
        {"3K", 3000},
        {"2T", 2000000000000ull},
        {"1Ti", 1ull << 40},
        {"1.5Gi", 1610612736ull},
        {"0.5Ki", 512},
        {"1.0001K", 1001}, /* 1000.1 bytes rounds up */
        {"18446744073709551615", UINT64_MAX},
        {"007", 7},
    };
    static const char *bad[] = {"",
                                "-1",
                                "1.5",
                                "1.5B",
                                "Mi",
                                "1 Mi",
                                " 1",
                                "1Mi ",
                                "1mi",
                                "1k",
                                "1KB",
                                "1.Gi",
                                ".5Gi",
                                "1e3",
                                "+1",
                                "0x10",
                                "1Pi",
                                "1..5Gi",
                                "18446744073709551616",
                                "16777216Ti",
                                "1.5.5Gi",
                                "1.5Gii",
                                "99999999999999999999Gi"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 12345;
        cr_assert_eq(spec_parse_memory(good[i].s, &v), 0, "%s", good[i].s);
        cr_assert_eq(v, good[i].v, "%s → %llu", good[i].s, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 12345;
        cr_assert_eq(spec_parse_memory(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(v, 12345, "out touched for '%s'", bad[i]);
    }
    uint64_t v;
    cr_assert_eq(spec_parse_memory(NULL, &v), -EINVAL);
}

Test(quantity, cpu)
{
    static const struct {
        const char *s;
        uint32_t v;
    } good[] = {
        {"0", 0},
        {"2", 2000},
        {"0.5", 500},
        {"500m", 500},
        {"1.25", 1250},
        {"0.001", 1},
        {"1.5000", 1500},
        {"0m", 0},
        {"64", 64000},
        {"4294967", 4294967000u},
        {"4294967295m", UINT32_MAX},
    };
    static const char *bad[] = {
        "",       "-1",      "-0.5",        "abc", "1.",    ".5",
        "1.0005", "1.5m",    "m",           "2 ",  " 2",    "2c",
        "1e3",    "4294968", "4294967296m", "+1",  "0.5.5", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint32_t v = 777;
        cr_assert_eq(spec_parse_cpu(good[i].s, &v), 0, "%s", good[i].s);
        cr_assert_eq(v, good[i].v, "%s → %u", good[i].s, v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t v = 777;
        cr_assert_eq(spec_parse_cpu(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(v, 777, "out touched for '%s'", bad[i]);
    }
}

Test(quantity, duration)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"100ms", 100},         {"5s", 5000},     {"2m", 120000},     {"1h", 3600000},
        {"1h30m", 5400000},     {"90", 90000},    {"0", 0},           {"0s", 0},
        {"1h2m3s4ms", 3723004}, {"1m30s", 90000}, {"36h", 129600000}, {"1500ms", 1500},
    };
    static const char *bad[] = {"",
                                "s",
                                "-5s",
                                "5x",
                                "1d",
                                "1.5h",
                                "5 s",
                                "30m1h",
                                "1s1s",
                                "1ms1s",
                                "5sec",
                                "h1",
                                "1h 30m",
                                "18446744073709551616",
                                "18446744073709552s",
                                "99999999999999999999h",
                                "5S",
                                "1hm"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 4242;
        cr_assert_eq(spec_parse_duration(good[i].s, &v), 0, "%s", good[i].s);
        cr_assert_eq(v, good[i].v, "%s → %llu", good[i].s, (unsigned long long)v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 4242;
        cr_assert_eq(spec_parse_duration(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(v, 4242, "out touched for '%s'", bad[i]);
    }
}

/* ---- fuzz-style robustness ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic across runs */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static int fuzz_one(const char *buf, size_t len, const spec_kv_t *ov, size_t nov)
{
    char e[256];
    spec_t *s = (spec_t *)0x1;
    memset(e, 0, sizeof e);
    int rc = spec_parse("fuzz.yaml", buf, len, ov, nov, &s, e, sizeof e);
    cr_assert(rc == 0 || rc == -EINVAL, "rc %d", rc);
    if (rc == 0) {
        cr_assert_not_null(s);
        cr_assert_gt(s->step_count, 0);
        for (size_t i = 0; i < s->step_count; i++) {
            const Drover__StepSpec *st = s->steps[i];
            cr_assert_gt(st->n_argv, 0);
            for (size_t j = 0; j < st->n_argv; j++)
                cr_assert_not_null(st->argv[j]);
            for (size_t j = 0; j < st->n_needs; j++)
                cr_assert_lt(st->needs[j], s->step_count);
            for (size_t j = 0; j < st->n_inputs; j++) {
                cr_assert_lt(st->inputs[j]->step, s->step_count);
                cr_assert_neq(st->inputs[j]->step, i);
                cr_assert(*st->inputs[j]->artifact, "an input is resolved to its artifact");
            }
            for (size_t j = 0; j < st->n_items; j++)
                cr_assert_not_null(st->items[j]);
            cr_assert(st->fan_out || (!st->n_items && !*st->items_from && !st->parallelism));
            if (i > 0)
                cr_assert(st->is_finally || !s->steps[i - 1]->is_finally, "finally steps last");
        }
        spec_destroy(&s);
    } else {
        cr_assert_null(s);
        cr_assert(strncmp(e, "fuzz.yaml:", 10) == 0, "bad message '%s'", e);
        cr_assert_gt(strlen(e), 14);
        /* one error a line, each with its position; maybe "and N more" last */
        for (const char *l = e; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
            int line = 0, col = 0;
            if (l != e && !strchr(l, '\n') && !strncmp(l, "and ", 4))
                break;
            cr_assert(sscanf(l, "fuzz.yaml:%d:%d: ", &line, &col) == 2 && line > 0 && col > 0,
                      "error without a position: '%s'", l);
        }
    }
    return rc;
}

static const char *FUZZ_BASE =
    "name: fz\n"
    "params: {rows: \"10\", lr: 0.1}\n"
    "defaults:\n"
    "  retries: {limit: 2, backoff: 5s, factor: 2, max_backoff: 1m}\n"
    "  timeout: 1h\n"
    "  env: {A: \"{{params.rows}}\"}\n"
    "steps:\n"
    "  - name: a\n"
    "    command: [run, \"{{params.rows}}\", '{{ params.lr }}']\n"
    "    resources: {cpu: 500m, memory: 1.5Gi, gpu: 1}\n"
    "    placement: {labels: {pool: x}}\n"
    "    outputs: {artifacts: [data], params: [n]}\n"
    "  - name: b\n"
    "    needs: [a]\n"
    "    script: |\n"
    "      echo {{params.lr}}\n"
    "    env:\n"
    "      B: two\n"
    "    retries: 3\n"
    "    preemption: {max_preemptions: 4}\n"
    "  - {name: c, needs: [a, b], command: [x], timeout: 1h30m}\n"
    "  - name: d\n"
    "    needs: [c]\n"
    "    outputs: {artifacts: [m], params: [p, l]}\n"
    "    inputs: {artifacts: {in: a.data}}\n"
    "    when: \"'{{run.id}}' != x && {{params.rows}} > 1\"\n"
    "    for_each: [a, {k: 1, v: [x]}]\n"
    "    parallelism: 2\n"
    "    command: [\"{{item.k}}\", \"{{steps.a.outputs.params.n}}\"]\n"
    "  - {name: e, needs: [d], for_each: \"{{steps.d.outputs.params.l}}\","
    " script: \"{{item}}\", cache: false}\n"
    "finally:\n"
    "  - {name: f, script: \"{{run.status}} {{steps.d.outputs.params.p}}\"}\n";

Test(spec, fuzz, .timeout = 240)
{
    size_t len = strlen(FUZZ_BASE);
    spec_kv_t ov[] = {{"rows", "99"}};
    cr_assert_eq(fuzz_one(FUZZ_BASE, len, ov, 1), 0, "base spec must be valid");

    spec_t *s = NULL;
    cr_assert_eq(parse_ov(FUZZ_BASE, ov, 1, &s), 0, "%s", err);
    cr_assert_eq(s->step_count, 6);
    spec_destroy(&s);

    /* every truncation */
    int ok = 0;
    for (size_t n = 0; n <= len; n++)
        ok += fuzz_one(FUZZ_BASE, n, ov, 1) == 0;
    cr_assert_gt(ok, 0);
    cr_assert_lt(ok, (int)len);

    static const char interesting[] = "{}[]:-,#&*!|>'\"\n \t%@`?~\\0.";
    char *buf = malloc(len + 64);
    rng_state = 0x5eed5eed12345ull;
    int rejected = 0;
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = len;
        memcpy(buf, FUZZ_BASE, len);
        int edits = 1 + (int)(rng() % 4);
        for (int k = 0; k < edits; k++) {
            size_t pos = (size_t)(rng() % n);
            switch (rng() % 4) {
            case 0: /* random byte, NUL included */
                buf[pos] = (char)(rng() & 0xff);
                break;
            case 1: /* a YAML-significant byte */
                buf[pos] = interesting[rng() % (sizeof interesting - 1)];
                break;
            case 2: /* delete */
                memmove(buf + pos, buf + pos + 1, n - pos - 1);
                n--;
                break;
            default: /* insert */
                memmove(buf + pos + 1, buf + pos, n - pos);
                buf[pos] = interesting[rng() % (sizeof interesting - 1)];
                n++;
                break;
            }
        }
        rejected += fuzz_one(buf, n, ov, 1) != 0;
    }
    cr_assert_gt(rejected, 100, "mutations should mostly be caught");
    free(buf);

    /* random byte strings and random token soups */
    static const char *tokens[] = {"name: ",
                                   "steps:",
                                   "\n",
                                   "  ",
                                   "- ",
                                   "{",
                                   "}",
                                   "[",
                                   "]",
                                   ", ",
                                   "command: ",
                                   "script: ",
                                   "needs: ",
                                   "a",
                                   "b",
                                   "x",
                                   "{{params.rows}}",
                                   "{{",
                                   "}}",
                                   "&a ",
                                   "*a",
                                   "!!str ",
                                   "---\n",
                                   "resources: ",
                                   "memory: ",
                                   "1Gi",
                                   "env: ",
                                   "retries: ",
                                   "\"",
                                   "'",
                                   "#",
                                   "? ",
                                   ": ",
                                   "|\n",
                                   "finally: ",
                                   "params: ",
                                   "outputs: ",
                                   "inputs: ",
                                   "artifacts: ",
                                   "when: ",
                                   "for_each: ",
                                   "parallelism: ",
                                   "cache: ",
                                   "{{item}}",
                                   "{{steps.a.outputs.params.n}}",
                                   "{{run.status}}",
                                   "a.data",
                                   " && ",
                                   " == "};
    char rnd[512];
    for (int iter = 0; iter < 1000; iter++) {
        size_t n = 0;
        if (iter % 2) {
            n = (size_t)(rng() % sizeof rnd);
            for (size_t i = 0; i < n; i++)
                rnd[i] = (char)(rng() & 0xff);
        } else {
            size_t count = (size_t)(rng() % 60);
            for (size_t t = 0; t < count; t++) {
                const char *tok = tokens[rng() % (sizeof tokens / sizeof tokens[0])];
                size_t tl = strlen(tok);
                if (n + tl >= sizeof rnd)
                    break;
                memcpy(rnd + n, tok, tl);
                n += tl;
            }
        }
        fuzz_one(rnd, n, ov, 1);
    }
}

/* ---- issue 15: outcomes as data */

Test(spec, outcome_references_mark_capture_and_pass)
{
    spec_t *s =
        parse_ok("name: p\n"
                 "steps:\n"
                 "  - {name: flip, command: [x]}\n"
                 "  - {name: list, script: \"echo '[1]'\"}\n"
                 "  - name: heads\n"
                 "    needs: [flip]\n"
                 "    when: \"{{steps.flip.outputs.result}} == heads && "
                 "{{steps.flip.status}} == succeeded\"\n"
                 "    env: {CODE: \"{{steps.flip.exit_code}}\"}\n"
                 "    script: echo {{ steps.flip.outputs.result }}\n"
                 "  - {name: each, needs: [list], for_each: \"{{steps.list.outputs.result}}\", "
                 "command: [x, \"{{item}}\"]}\n"
                 "finally:\n"
                 "  - {name: f, command: [n, \"{{run.failures}}\", \"{{run.duration}}\", "
                 "\"{{steps.heads.status}}\"]}\n");
    cr_assert(step(s, "flip")->capture_result);
    cr_assert(step(s, "list")->capture_result);
    cr_assert_not(step(s, "heads")->capture_result, "status and exit_code need no capture");
    cr_assert_not(step(s, "each")->capture_result);
    cr_assert_str_eq(step(s, "each")->items_from, "{{steps.list.outputs.result}}");
    spec_destroy(&s);
}

Test(spec, outcome_of_a_step_not_upstream)
{
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - {name: a, command: [x]}\n"
                 "  - name: b\n"
                 "    command: [x, \"{{steps.a.status}}\"]\n",
                 5, 18, "step 'b' does not need 'a' (add it to needs)");
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - {name: a, command: [x]}\n"
                 "  - name: b\n"
                 "    when: \"{{steps.zz.exit_code}} == 0\"\n"
                 "    command: [x]\n",
                 5, 11, "no step named 'zz'");
    parse_bad("name: p\n"
              "steps:\n"
              "  - {name: a, command: [x, \"{{steps.a.outputs.result}}\"]}\n",
              "cannot use its own outputs");
}

Test(spec, outcome_forms_refused_where_they_cannot_be)
{
    parse_bad_at("name: p\n"
                 "steps:\n"
                 "  - {name: a, command: [x, \"{{run.failures}}\"]}\n",
                 3, 28, "{{run.failures}} is only known in finally steps");
    parse_bad("name: p\n"
              "steps:\n"
              "  - {name: a, command: [x]}\n"
              "  - {name: b, needs: [a], command: [x, \"{{steps.a.result}}\"]}\n",
              "{{steps.STEP.outputs.result}}");
    parse_bad("name: p\n"
              "steps:\n"
              "  - {name: a, for_each: '[1, 2]', command: [x]}\n"
              "  - {name: b, needs: [a], command: [x, \"{{steps.a.outputs.result}}\"]}\n",
              "step 'a' is a for_each step");
    parse_bad("name: p\n"
              "steps:\n"
              "  - {name: a, command: [x]}\n"
              "  - {name: b, needs: [a], for_each: \"{{steps.a.status}}\", command: [x]}\n",
              "{{steps.STEP.outputs.result}}, not");
}

/* ---- templated settings (issue 15 item 5) ---- */

Test(spec, templated_settings_kept_as_text)
{
    spec_t *s = parse_ok("name: p\nparams: {t: 5m}\nsteps:\n"
                         "  - {name: up, command: [x], outputs: {params: [n]}}\n"
                         "  - name: fan\n    needs: [up]\n    command: [x]\n"
                         "    for_each: [{image: a, cpu: \"2\", t: 10s}, {image: b, cpu: 500m, t: "
                         "1m}]\n"
                         "    image: \"/img/{{item.image}}\"\n    timeout: \"{{ item.t }}\"\n"
                         "    resources: {cpu: \"{{item.cpu}}\", memory: 1Gi, gpu: "
                         "\"{{steps.up.outputs.params.n}}\"}\n"
                         "    retries: {limit: \"{{steps.up.outputs.params.n}}\", backoff: 1s}\n"
                         "  - {name: lit, command: [x], timeout: \"{{params.t}}\"}\n");
    const Drover__StepSpec *f = step(s, "fan"), *l = step(s, "lit");
    cr_assert_str_eq(f->image_tmpl, "/img/{{item.image}}");
    cr_assert_str_empty(f->image, "the typed field is unused while templated");
    cr_assert_str_eq(f->timeout_tmpl, "{{ item.t }}");
    cr_assert_str_eq(f->cpu_tmpl, "{{item.cpu}}");
    cr_assert_str_empty(f->memory_tmpl);
    cr_assert_eq(f->resources->memory_bytes, 1ull << 30, "a literal beside a template");
    cr_assert_str_eq(f->gpu_tmpl, "{{steps.up.outputs.params.n}}");
    cr_assert_str_eq(f->retry_limit_tmpl, "{{steps.up.outputs.params.n}}");
    cr_assert_eq(f->retries->backoff_ms, 1000);
    cr_assert(spec_has_tmpl(f));
    /* params are substituted at submit: a literal, no template kept */
    cr_assert_eq(l->timeout_ms, 300000);
    cr_assert_str_empty(l->timeout_tmpl);
    cr_assert(!spec_has_tmpl(l));
    Drover__StepSpec *dup = spec_step_dup(f);
    cr_assert_str_eq(dup->cpu_tmpl, "{{item.cpu}}", "stored with the step");
    drover__step_spec__free_unpacked(dup, NULL);
    spec_destroy(&s);
}

Test(spec, templated_settings_from_defaults)
{
    spec_t *s = parse_ok("name: p\ndefaults:\n  image: \"{{item}}\"\n  retries: \"{{item}}\"\n"
                         "steps:\n  - {name: a, command: [x], for_each: [\"1\", \"2\"]}\n"
                         "  - {name: b, command: [x], for_each: [\"3\"], image: busybox, retries: "
                         "2}\n");
    cr_assert_str_eq(step(s, "a")->image_tmpl, "{{item}}");
    cr_assert_str_eq(step(s, "a")->retry_limit_tmpl, "{{item}}");
    cr_assert_str_empty(step(s, "b")->image_tmpl, "a step's literal replaces the template");
    cr_assert_str_eq(step(s, "b")->image, "busybox");
    cr_assert_eq(step(s, "b")->retries->limit, 2);
    spec_destroy(&s);
    /* inherited by a step without for_each: named as inherited */
    parse_bad_at("name: p\ndefaults:\n  image: \"{{item}}\"\nsteps:\n  - {name: a, command: [x]}\n",
                 3, 10, "image: {{item}} used outside a for_each step");
    cr_assert(strstr(err, "inherited by step 'a'"), "%s", err);
    /* and each inheriting step's literal items are checked */
    parse_bad_at("name: p\ndefaults:\n  resources: {gpu: \"{{item}}\"}\nsteps:\n"
                 "  - {name: a, command: [x], for_each: [\"1\"]}\n"
                 "  - {name: b, command: [x], for_each: [\"1\", \"x\"]}\n",
                 3, 20,
                 "resources.gpu: item 1 (x) gives 'x', not a whole number of gpus 0-64 (in "
                 "defaults, inherited by step 'b')");
}

Test(spec, templated_settings_literal_items_checked)
{
    /* every literal item is expanded at submit; a bad one is named */
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n"
                 "    for_each: [{cpu: \"2\"}, {cpu: lots}]\n"
                 "    resources: {cpu: \"{{item.cpu}}\"}\n",
                 6, 22,
                 "resources.cpu: item 1 ({\"cpu\":\"lots\"}) gives 'lots', not a cpu quantity "
                 "(e.g. 2, 0.5, 500m)");
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n"
                 "    for_each: [{t: 1s}, {x: 1}]\n    timeout: \"{{item.t}}\"\n",
                 6, 14, "timeout: item 1 ({\"x\":1}): ");
    cr_assert(strstr(err, "{{item.t}}: the item has no key 't'"), "%s", err);
    parse_bad("name: p\nsteps:\n  - name: a\n    command: [x]\n    for_each: [\"1\", \"200\"]\n"
              "    retries: {limit: \"{{item}}\"}\n",
              "retries.limit: item 1 (200) gives '200', not a whole number of retries 0-100");
    parse_bad("name: p\nsteps:\n  - name: a\n    command: [x]\n    for_each: [\"a b\"]\n"
              "    image: \"{{item}}\"\n",
              "image: item 0 (a b) gives 'a b', not an image reference");
    /* a range is literal too */
    parse_bad("name: p\nsteps:\n  - name: a\n    command: [x]\n    for_each: {range: [60, 70]}\n"
              "    resources: {gpu: \"{{item}}\"}\n",
              "resources.gpu: item 5 (65) gives '65', not a whole number of gpus 0-64");
    /* a value from params is checked as a literal */
    parse_bad_at("name: p\nparams: {t: abc}\nsteps:\n  - name: a\n    command: [x]\n"
                 "    timeout: \"{{params.t}}\"\n",
                 6, 14, "bad duration 'abc' for timeout");
    /* items from an upstream list are checked when the run gets there */
    spec_t *s = parse_ok("name: p\nsteps:\n  - {name: up, command: [x], outputs: {params: [l]}}\n"
                         "  - name: a\n    needs: [up]\n    command: [x]\n"
                         "    for_each: \"{{steps.up.outputs.params.l}}\"\n"
                         "    resources: {cpu: \"{{item.cpu}}\"}\n");
    spec_destroy(&s);
}

Test(spec, template_error_names_its_key)
{
    /* issue 15 item 7: was "cannot be used in a for_each item" */
    parse_bad_at("name: p\nsteps:\n  - name: a\n    command: [x]\n    image: \"{{item.image}}\"\n",
                 5, 12, "image: {{item.image}} used outside a for_each step (allowed there:");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], for_each: [\"1\"], image: "
              "\"{{run.status}}\"}\n",
              "'{{run.status}}' cannot be used in image (allowed there: {{params.NAME}}, {{item}} "
              "and {{item.KEY}} in a for_each step, {{steps.STEP.outputs.params.NAME}} of a step "
              "it needs)");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], timeout: "
              "\"{{steps.b.outputs.params.t}}\"}\n  - {name: b, command: [x], outputs: {params: "
              "[t]}}\n",
              "timeout: {{steps.b.outputs.params.t}}: step 'a' does not need 'b'");
    parse_bad("name: p\nsteps:\n  - {name: a, command: [x], resources: {memory: \"{{ nope }}\"}}\n",
              "bad template '{{ nope }}'");
}

/* ---- issue 15 item 8: every error at once, did-you-mean, durations ---- */

#include "suggest.h"

/* Parse must fail; err (a big buffer) holds its errors, one a line. */
static char errs_buf[16384];

static int parse_errs(const char *yaml)
{
    spec_t *s = (spec_t *)0x1;
    memset(errs_buf, 0, sizeof errs_buf);
    int rc = spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &s, errs_buf, sizeof errs_buf);
    cr_assert_eq(rc, -EINVAL, "expected -EINVAL for:\n%s\n(err: %s)", yaml, errs_buf);
    cr_assert_null(s);
    return rc;
}

/* The number of lines of errs_buf, and line i (0-based) into out. */
static size_t err_lines(void)
{
    size_t n = 1;
    for (const char *p = errs_buf; *p; p++)
        n += *p == '\n';
    return n;
}

static const char *err_line(size_t i, char *out, size_t outlen)
{
    const char *l = errs_buf;
    for (size_t k = 0; k < i && l; k++)
        l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL;
    cr_assert_not_null(l, "no error line %zu in:\n%s", i, errs_buf);
    size_t n = strcspn(l, "\n");
    snprintf(out, outlen, "%.*s", (int)n, l);
    return out;
}

static void want_line(size_t i, const char *prefix, const char *needle)
{
    char l[1024];
    err_line(i, l, sizeof l);
    cr_assert(strncmp(l, prefix, strlen(prefix)) == 0, "line %zu: want '%s...', got '%s'\nall:\n%s",
              i, prefix, l, errs_buf);
    cr_assert(strstr(l, needle), "line %zu: '%s' lacks '%s'", i, l, needle);
}

Test(spec_errors, three_independent_errors_all_reported_in_file_order)
{
    parse_errs("name: p\n"
               "steps:\n"
               "  - name: a\n"
               "    command: [x]\n"
               "    timeout: soon\n" /* 5:14 */
               "  - name: b\n"
               "    command: [x]\n"
               "    needs: [a, nope]\n" /* 8:16 */
               "  - name: c\n"
               "    command: [x]\n"
               "    resources: {gpus: 1}\n"); /* 11:17 */
    cr_assert_eq(err_lines(), 3, "want 3 errors, got:\n%s", errs_buf);
    want_line(0, "t.yaml:5:14: ", "bad duration 'soon' for timeout");
    want_line(1, "t.yaml:8:16: ", "step 'b' needs unknown step 'nope'");
    want_line(2, "t.yaml:11:17: ",
              "unknown key 'gpus' in resources (cpu, memory, gpu); did you "
              "mean 'gpu'?");
}

Test(spec_errors, flow_errors_sorted_into_file_order)
{
    /* the data-flow error of step a is found after step b's key error,
     * and reported before it */
    parse_errs("name: p\n"
               "steps:\n"
               "  - name: a\n"
               "    command: [echo, '{{steps.zz.outputs.params.x}}']\n" /* 4:21 */
               "  - name: b\n"
               "    command: [x]\n"
               "    cach: true\n"); /* 7:5 */
    cr_assert_eq(err_lines(), 2, "%s", errs_buf);
    want_line(0, "t.yaml:4:21: ", "no step named 'zz'");
    want_line(1, "t.yaml:7:5: ", "unknown key 'cach' in step 'b'; did you mean 'cache'?");
}

Test(spec_errors, more_than_twenty_reports_twenty_and_the_count)
{
    char yaml[8192];
    size_t o = (size_t)snprintf(yaml, sizeof yaml, "name: p\nsteps:\n");
    for (int i = 0; i < 25; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o,
                              "  - name: s%d\n    command: [x]\n    bogus%d: 1\n", i, i);
    parse_errs(yaml);
    cr_assert_eq(err_lines(), 21, "want 20 errors and a count, got:\n%s", errs_buf);
    for (int i = 0; i < 20; i++) {
        char prefix[32], needle[64];
        snprintf(prefix, sizeof prefix, "t.yaml:%d:5: ", 5 + 3 * i);
        snprintf(needle, sizeof needle, "unknown key 'bogus%d' in step 's%d'", i, i);
        want_line((size_t)i, prefix, needle);
    }
    char l[128];
    cr_assert_str_eq(err_line(20, l, sizeof l), "and 5 more errors");
}

Test(spec_errors, small_buffer_gets_whole_lines)
{
    const char *yaml = "name: p\nsteps:\n  - name: a\n    command: [x]\n    b1: 1\n    b2: 2\n"
                       "    b3: 3\n";
    char small[120];
    spec_t *s = NULL;
    cr_assert_eq(spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &s, small, sizeof small),
                 -EINVAL);
    /* the first line whole, then whatever whole lines fit, then the count */
    cr_assert(strncmp(small, "t.yaml:5:5: unknown key 'b1' in step 'a'", 40) == 0, "%s", small);
    cr_assert(strstr(small, "more error"), "%s", small);
    cr_assert_lt(strlen(small), sizeof small);
}

Test(spec_errors, no_cascades)
{
    /* an unknown step in needs: not also "b does not need nope" */
    parse_errs("name: p\n"
               "steps:\n"
               "  - name: b\n"
               "    command: [echo, '{{steps.nope.outputs.params.x}}']\n"
               "    needs: [nope]\n");
    cr_assert_eq(err_lines(), 1, "%s", errs_buf);
    want_line(0, "t.yaml:5:13: ", "needs unknown step 'nope'");

    /* a step whose outputs are in error: a reference to them is not refused */
    parse_errs("name: p\n"
               "steps:\n"
               "  - name: a\n"
               "    command: [x]\n"
               "    outputs: {params: [n], extra: [m]}\n"
               "  - name: b\n"
               "    needs: [a]\n"
               "    command: [echo, '{{steps.a.outputs.params.m}}']\n");
    cr_assert_eq(err_lines(), 1, "%s", errs_buf);
    want_line(0, "t.yaml:5:28: ", "unknown key 'extra' in outputs");

    /* a step with a bad name: needing it by that name adds nothing */
    parse_errs("name: p\n"
               "steps:\n"
               "  - name: 'a b'\n"
               "    command: [x]\n"
               "  - name: c\n"
               "    needs: ['a b']\n"
               "    command: [x]\n");
    cr_assert_eq(err_lines(), 1, "%s", errs_buf);
    want_line(0, "t.yaml:3:11: ", "bad step name 'a b'");

    /* a step without a name: an unknown step in needs may be it */
    parse_errs("name: p\n"
               "steps:\n"
               "  - command: [x]\n"
               "  - name: c\n"
               "    needs: [a]\n"
               "    command: [x]\n");
    cr_assert_eq(err_lines(), 1, "%s", errs_buf);
    want_line(0, "t.yaml:3:5: ", "step has no 'name'");

    /* the ancestors of a step are unknown when a need failed: its data flow
     * and its dependants' are not checked */
    parse_errs("name: p\n"
               "steps:\n"
               "  - name: a\n"
               "    command: [x]\n"
               "    outputs: {params: [n]}\n"
               "  - name: b\n"
               "    needs: a\n"
               "    command: [x]\n"
               "  - name: c\n"
               "    needs: [b]\n"
               "    command: [echo, '{{steps.a.outputs.params.n}}']\n");
    cr_assert_eq(err_lines(), 1, "%s", errs_buf);
    want_line(0, "t.yaml:7:12: ", "'needs' must be a list");

    /* a bad param name: templates naming params add nothing */
    parse_errs("name: p\n"
               "params: {'a b': 1}\n"
               "steps:\n"
               "  - name: a\n"
               "    command: [echo, '{{params.ab}}']\n");
    cr_assert_eq(err_lines(), 1, "%s", errs_buf);

    /* a bad value in defaults, inherited by every step: said once */
    parse_errs("name: p\n"
               "defaults:\n"
               "  env: {X: '{{steps.q.outputs.params.n}}'}\n"
               "steps:\n"
               "  - name: a\n"
               "    command: [x]\n"
               "  - name: b\n"
               "    command: [x]\n");
    cr_assert_eq(err_lines(), 1, "%s", errs_buf);
    want_line(0, "t.yaml:3:12: ", "no step named 'q' (in defaults");
}

Test(spec_errors, did_you_mean_keys_and_step_names)
{
    parse_errs("name: p\n"
               "steps:\n"
               "  - name: A\n"
               "    command: [x]\n"
               "  - name: B\n"
               "    command: [x]\n"
               "    need: [A]\n");
    cr_assert_str_eq(errs_buf, "t.yaml:7:5: unknown key 'need' in step 'B'; did you mean 'needs'?");

    parse_errs("name: p\n"
               "steps:\n"
               "  - name: train\n"
               "    command: [x]\n"
               "  - name: eval\n"
               "    command: [x]\n"
               "    needs: [trian]\n");
    cr_assert_str_eq(errs_buf, "t.yaml:7:13: step 'eval' needs unknown step 'trian'; did you "
                               "mean 'train'?");

    parse_errs("name: p\nstep:\n  - name: a\n    command: [x]\n");
    cr_assert(strstr(errs_buf, "t.yaml:2:1: unknown key 'step'; did you mean 'steps'?"), "%s",
              errs_buf);

    parse_errs("name: p\ndefaults: {retires: 2}\nsteps:\n  - name: a\n    command: [x]\n");
    cr_assert_str_eq(errs_buf,
                     "t.yaml:2:12: unknown key 'retires' in defaults; did you mean 'retries'?");

    parse_errs("name: p\nsteps:\n  - name: a\n    command: [x]\n"
               "    retries: {limit: 2, backof: 5s}\n");
    cr_assert_str_eq(errs_buf, "t.yaml:5:25: unknown key 'backof' in retries (limit, backoff, "
                               "factor, max_backoff, when, max_duration); did you mean 'backoff'?");

    /* nothing close: no suggestion */
    parse_errs("name: p\nsteps:\n  - name: a\n    command: [x]\n    zzzzzz: 1\n");
    cr_assert_str_eq(errs_buf, "t.yaml:5:5: unknown key 'zzzzzz' in step 'a'");
}

Test(spec_errors, suggest_is_the_cli_rule)
{
    /* the CLI's commands and flags use the same function (cli/args.c,
     * cli/drover.c): its threshold, transpositions and prefixes */
    const char *cmds[] = {"runs", "run", "agents", "status", "logs", "submit", NULL};
    cr_assert_str_eq(suggest_closest("rnus", 4, cmds), "runs");
    cr_assert_str_eq(suggest_closest("agnets", 6, cmds), "agents");
    cr_assert_str_eq(suggest_closest("stat", 4, cmds), "status");
    cr_assert_null(suggest_closest("xyz", 3, cmds));
    const char *one[] = {"a", NULL};
    cr_assert_null(suggest_closest("q", 1, one), "a one-letter word is no typo of another");
    cr_assert_eq(suggest_distance("ab", 2, "ba"), 1);
    cr_assert_eq(suggest_distance("need", 4, "needs"), 1);
    char big[100];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(suggest_distance(big, strlen(big), "a"), SIZE_MAX);
}

Test(spec_errors, bare_number_durations_are_refused)
{
    static const struct {
        const char *yaml;
        int line, col;
        const char *what;
    } cases[] = {
        {"    timeout: 30\n", 5, 14, "duration '30' for timeout has no unit: write 30s"},
        {"    retries: {limit: 1, backoff: 5}\n", 5, 34, "for retries.backoff has no unit"},
        {"    retries: {max_backoff: 60}\n", 5, 28, "for retries.max_backoff has no unit"},
        {"    checkpoint: {min_interval: 10}\n", 5, 32, "for checkpoint.min_interval has no unit"},
        {"    preemption: {grace: 90}\n", 5, 25, "for preemption.grace has no unit: write 90s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "name: p\nsteps:\n  - name: a\n    command: [x]\n%s",
                 cases[i].yaml);
        parse_bad_at(yaml, cases[i].line, cases[i].col, cases[i].what);
    }
    /* in defaults too */
    parse_bad_at("name: p\ndefaults: {timeout: 5}\nsteps:\n  - name: a\n    command: [x]\n", 2, 21,
                 "write 5s");
    /* with a unit, and 0 (the same in every unit), they are fine */
    spec_t *s = parse_ok("name: p\nsteps:\n  - name: a\n    command: [x]\n    timeout: 30s\n"
                         "    retries: {backoff: 0}\n");
    cr_assert_eq(s->steps[0]->timeout_ms, 30000);
    cr_assert_eq(s->steps[0]->retries->backoff_ms, 0);
    spec_destroy(&s);
    /* flags and config files keep "90" = 90 s (units.h) */
    uint64_t ms = 0;
    cr_assert_eq(spec_parse_duration("90", &ms), 0);
    cr_assert_eq(ms, 90000);
    cr_assert_eq(spec_parse_duration_unit("90", &ms), -EDOM);
}
