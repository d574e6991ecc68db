/* test_spec_reuse — templates, DAG templates' bodies, recursion and
 * imports in the spec compiler (common/spec_reuse.c, spec_import.c).
 *
 * Compiled results are checked field by field (bodies, indexes, names,
 * with defaults, step templates substituted, import prefixes), and every
 * error for its FILE:LINE:COL and its words, errors inside imported files
 * included; then what an attacker would write: import cycles and depth,
 * huge with values, recursion at compile time, duplicate prefixes, ".."
 * paths.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#define ERRLEN 8192

static char err[ERRLEN];

static int parse_files(const char *yaml, const spec_import_t *im, size_t nim, spec_t **out)
{
    memset(err, 0, sizeof err);
    return spec_parse_files("t.yaml", yaml, strlen(yaml), im, nim, NULL, 0, NULL, out, err,
                            sizeof err);
}

static spec_t *ok_files(const char *yaml, const spec_import_t *im, size_t nim)
{
    spec_t *s = NULL;
    int rc = parse_files(yaml, im, nim, &s);
    cr_assert_eq(rc, 0, "spec_parse failed: %s\n%s", err, yaml);
    cr_assert_not_null(s);
    return s;
}

static spec_t *ok(const char *yaml)
{
    return ok_files(yaml, NULL, 0);
}

/* Fails, and some line of err starts with at (e.g. "t.yaml:3:5: ") and
 * holds want. */
static void bad_files(const char *yaml, const spec_import_t *im, size_t nim, const char *at,
                      const char *want)
{
    spec_t *s = (spec_t *)0x1;
    int rc = parse_files(yaml, im, nim, &s);
    cr_assert(rc == -EINVAL || rc == -E2BIG, "expected an error for:\n%s\n(err: %s)", yaml, err);
    cr_assert_null(s);
    for (const char *l = err; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        char *line = strndup(l, len);
        bool hit = !strncmp(line, at, strlen(at)) && strstr(line, want);
        free(line);
        if (hit)
            return;
        l = nl ? nl + 1 : NULL;
    }
    cr_assert_fail("no error at '%s' with '%s' in:\n%s", at, want, err);
}

static void bad(const char *yaml, const char *at, const char *want)
{
    bad_files(yaml, NULL, 0, at, want);
}

static size_t find(const spec_t *s, size_t from, size_t to, const char *name)
{
    for (size_t i = from; i < to; i++) {
        if (!strcmp(s->steps[i]->name, name))
            return i;
    }
    cr_assert_fail("no step '%s' in [%zu, %zu)", name, from, to);
    return 0;
}

static const char *kv(Drover__KeyValue **v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v[i]->key, key))
            return v[i]->value;
    }
    return NULL;
}

/* The design's example (without imports). */
static const char *example =
    "name: sweep\n"
    "params: {lrs: '[\"0.1\",\"0.01\"]'}\n"
    "templates:\n"
    "  fit:\n"
    "    inputs:\n"
    "      params: {lr: \"0.1\", epochs: null}\n"
    "      artifacts: [data]\n"
    "    command: [\"python3\", \"train.py\", \"--lr\", \"{{inputs.params.lr}}\", \"-e\", "
    "\"{{inputs.params.epochs}}\", \"$DROVER_INPUTS/data\"]\n"
    "    outputs: {params: [score], artifacts: [model]}\n"
    "    resources: {cpu: 1}\n"
    "    retries: 2\n"
    "  train_eval:\n"
    "    inputs:\n"
    "      params: {lr: null}\n"
    "      artifacts: [data]\n"
    "    steps:\n"
    "      - name: train\n"
    "        uses: fit\n"
    "        with: {lr: \"{{inputs.params.lr}}\", epochs: \"3\"}\n"
    "        inputs: {artifacts: {data: inputs.artifacts.data}}\n"
    "      - name: eval\n"
    "        needs: [train]\n"
    "        command: [eval, \"{{steps.train.outputs.params.score}}\"]\n"
    "        inputs: {artifacts: {model: train.model}}\n"
    "        outputs: {params: [best]}\n"
    "    finally:\n"
    "      - name: cleanup\n"
    "        command: [\"echo\", \"group ended: {{run.status}}\"]\n"
    "    outputs:\n"
    "      params: {best: \"{{steps.eval.outputs.params.best}}\"}\n"
    "      artifacts: {model: train.model}\n"
    "steps:\n"
    "  - name: prep\n"
    "    command: [prep]\n"
    "    outputs: {artifacts: [dataset]}\n"
    "  - name: one\n"
    "    uses: fit\n"
    "    needs: [prep]\n"
    "    with: {lr: \"0.5\", epochs: 2}\n"
    "    inputs: {artifacts: {data: prep.dataset}}\n"
    "    retries: 5\n"
    "  - name: sweep\n"
    "    uses: train_eval\n"
    "    needs: [prep]\n"
    "    for_each: \"{{params.lrs}}\"\n"
    "    parallelism: 2\n"
    "    with: {lr: \"{{item}}\"}\n"
    "    inputs: {artifacts: {data: prep.dataset}}\n"
    "  - name: report\n"
    "    needs: [sweep]\n"
    "    command: [\"echo\", \"{{steps.sweep.outputs.params.best}}\"]\n"
    "    inputs: {artifacts: {m: sweep.model}}\n";

Test(spec_reuse, example_compiles_into_a_body)
{
    spec_t *s = ok(example);
    cr_assert_eq(s->root_count, 4);
    cr_assert_eq(s->body_count, 1);
    cr_assert_eq(s->step_count, 7);
    const Drover__TemplateBody *b = s->bodies[0];
    cr_assert_str_eq(b->name, "train_eval");
    cr_assert_eq(b->first_step, 4);
    cr_assert_eq(b->n_steps, 3);
    cr_assert_eq(b->n_in_params, 1);
    cr_assert_str_eq(b->in_params[0]->name, "lr");
    cr_assert(b->in_params[0]->required);
    cr_assert_eq(b->n_in_artifacts, 1);
    cr_assert_str_eq(b->in_artifacts[0], "data");

    /* the pipeline's own steps: a step template compiled into `one` */
    const Drover__StepSpec *one = s->steps[find(s, 0, 4, "one")];
    cr_assert_str_eq(one->template_, "fit");
    cr_assert_eq(one->uses_body, 0);
    cr_assert_eq(one->in_body, 0);
    cr_assert_eq(one->n_argv, 7);
    cr_assert_str_eq(one->argv[3], "0.5");
    cr_assert_str_eq(one->argv[5], "2", "a YAML number is taken as its text");
    cr_assert_eq(one->resources->cpu_milli, 1000);
    cr_assert_eq(one->retries->limit, 5, "the using step's key wins over the template's");
    cr_assert_eq(one->n_out_params, 1);
    cr_assert_str_eq(one->out_params[0], "score");
    cr_assert_eq(one->n_inputs, 1);
    cr_assert_str_eq(one->inputs[0]->local, "data");
    cr_assert_eq(one->inputs[0]->step, 0);
    cr_assert_str_eq(one->inputs[0]->artifact, "dataset");

    /* the group step */
    size_t gi = find(s, 0, 4, "sweep");
    const Drover__StepSpec *g = s->steps[gi];
    cr_assert_eq(g->uses_body, 1);
    cr_assert_str_eq(g->template_, "train_eval");
    cr_assert_eq(g->n_argv, 0);
    cr_assert(g->fan_out);
    cr_assert_eq(g->n_items, 2);
    cr_assert_eq(g->parallelism, 2);
    cr_assert_eq(g->n_with, 1);
    cr_assert_str_eq(kv(g->with, g->n_with, "lr"), "{{item}}");
    cr_assert_eq(g->n_out_params, 1);
    cr_assert_str_eq(g->out_params[0], "best");
    cr_assert_eq(g->n_out_artifacts, 1);
    cr_assert_str_eq(g->out_artifacts[0], "model");
    cr_assert_eq(g->n_inputs, 1);
    cr_assert_str_eq(g->inputs[0]->local, "data");
    const Drover__StepSpec *rep = s->steps[find(s, 0, 4, "report")];
    cr_assert_eq(rep->n_needs, 1);
    cr_assert_eq(rep->needs[0], gi);
    cr_assert_eq(rep->inputs[0]->step, gi);
    cr_assert_str_eq(rep->inputs[0]->artifact, "model");

    /* the body: main steps, then finally; indexes into s->steps */
    size_t ti = find(s, 4, 7, "train"), ei = find(s, 4, 7, "eval"), ci = find(s, 4, 7, "cleanup");
    cr_assert_eq(ti, 4);
    cr_assert_eq(ci, 6);
    const Drover__StepSpec *train = s->steps[ti], *ev = s->steps[ei], *cl = s->steps[ci];
    for (size_t i = 4; i < 7; i++)
        cr_assert_eq(s->steps[i]->in_body, 1);
    cr_assert(cl->is_finally);
    cr_assert_str_eq(train->template_, "fit");
    cr_assert_str_eq(train->argv[3], "{{inputs.params.lr}}",
                     "the group's input, kept for droverd (one pass)");
    cr_assert_str_eq(train->argv[5], "3");
    cr_assert(train->inputs[0]->from_group_input);
    cr_assert_str_eq(train->inputs[0]->artifact, "data");
    cr_assert_eq(ev->n_needs, 1);
    cr_assert_eq(ev->needs[0], ti);
    cr_assert_eq(ev->inputs[0]->step, ti);
    cr_assert_str_eq(ev->inputs[0]->artifact, "model");
    cr_assert_str_eq(cl->argv[1], "group ended: {{run.status}}");

    /* declared outputs */
    cr_assert_eq(b->n_out_params, 1);
    cr_assert_str_eq(b->out_params[0]->key, "best");
    cr_assert_str_eq(b->out_params[0]->value, "{{steps.eval.outputs.params.best}}");
    cr_assert_eq(b->n_out_artifacts, 1);
    cr_assert_str_eq(b->out_artifacts[0]->local, "model");
    cr_assert_eq(b->out_artifacts[0]->step, ti);
    cr_assert_str_eq(b->out_artifacts[0]->artifact, "model");
    spec_destroy(&s);
    cr_assert_null(s);
}

/* Two uses of one template, and one from inside another body: each body
 * is compiled once; a template using itself terminates. */
Test(spec_reuse, bodies_compiled_once_and_recursion)
{
    spec_t *s = ok("name: p\n"
                   "max_depth: 7\n"
                   "templates:\n"
                   "  flip:\n"
                   "    steps:\n"
                   "      - name: toss\n"
                   "        command: [toss]\n"
                   "        outputs: {params: [side]}\n"
                   "      - name: again\n"
                   "        needs: [toss]\n"
                   "        when: \"'{{steps.toss.outputs.params.side}}' == 'tails'\"\n"
                   "        uses: flip\n"
                   "  two:\n"
                   "    steps:\n"
                   "      - {name: a, uses: flip}\n"
                   "      - {name: b, uses: flip, needs: [a]}\n"
                   "steps:\n"
                   "  - {name: x, uses: flip}\n"
                   "  - {name: y, uses: two}\n"
                   "  - {name: z, uses: flip, needs: [x, y]}\n");
    cr_assert_eq(s->max_depth, 7);
    cr_assert_eq(s->root_count, 3);
    cr_assert_eq(s->body_count, 2);
    cr_assert_str_eq(s->bodies[0]->name, "flip");
    cr_assert_str_eq(s->bodies[1]->name, "two");
    cr_assert_eq(s->step_count, 3 + 2 + 2);
    cr_assert_eq(s->steps[0]->uses_body, 1);
    cr_assert_eq(s->steps[1]->uses_body, 2);
    cr_assert_eq(s->steps[2]->uses_body, 1);
    size_t again = find(s, 3, 5, "again");
    cr_assert_eq(s->steps[again]->uses_body, 1, "recursion: its own body");
    cr_assert_eq(s->steps[again]->in_body, 1);
    cr_assert_str_eq(s->steps[again]->when, "'{{steps.toss.outputs.params.side}}' == 'tails'");
    cr_assert_eq(s->steps[again]->needs[0], find(s, 3, 5, "toss"));
    size_t b = find(s, 5, 7, "b");
    cr_assert_eq(s->steps[b]->uses_body, 1);
    cr_assert_eq(s->steps[b]->in_body, 2);
    cr_assert_eq(s->steps[b]->needs[0], find(s, 5, 7, "a"));
    spec_destroy(&s);
}

/* A cycle of templates (a uses b uses a) and a body step of the same
 * name as a pipeline step: names are per body. */
Test(spec_reuse, cycle_of_templates_and_names_per_body)
{
    spec_t *s = ok("name: p\n"
                   "templates:\n"
                   "  a:\n"
                   "    inputs: {params: {n: \"1\"}}\n"
                   "    steps:\n"
                   "      - {name: x, command: [\"{{inputs.params.n}}\"]}\n"
                   "      - {name: next, uses: b, needs: [x], with: {m: \"{{inputs.params.n}}\"}}\n"
                   "  b:\n"
                   "    inputs: {params: {m: null}}\n"
                   "    steps:\n"
                   "      - {name: x, uses: a, with: {n: \"{{inputs.params.m}}\"}}\n"
                   "steps:\n"
                   "  - {name: x, uses: a}\n");
    cr_assert_eq(s->body_count, 2);
    cr_assert_str_eq(kv(s->steps[0]->with, s->steps[0]->n_with, "n"), "1", "the default");
    size_t next = find(s, 1, 3, "next");
    cr_assert_eq(s->steps[next]->uses_body, 2);
    cr_assert_str_eq(kv(s->steps[next]->with, 1, "m"), "{{inputs.params.n}}");
    cr_assert_eq(s->steps[3]->uses_body, 1);
    cr_assert_str_eq(s->steps[1]->argv[0], "{{inputs.params.n}}");
    spec_destroy(&s);
}

Test(spec_reuse, typed_inputs_and_long_form)
{
    spec_t *s = ok("name: p\n"
                   "templates:\n"
                   "  t:\n"
                   "    inputs:\n"
                   "      params:\n"
                   "        n: {default: \"3\", type: integer}\n"
                   "        r: {type: number}\n"
                   "        f: {default: \"true\", type: boolean}\n"
                   "        j: {default: '{\"a\": [1, 2]}', type: json}\n"
                   "    steps:\n"
                   "      - {name: s, command: [\"{{inputs.params.n}}\"]}\n"
                   "steps:\n"
                   "  - {name: u, uses: t, with: {r: 1.5e3}}\n");
    const Drover__TemplateBody *b = s->bodies[0];
    cr_assert_eq(b->n_in_params, 4);
    cr_assert_str_eq(b->in_params[0]->type, "integer");
    cr_assert_str_eq(b->in_params[0]->default_, "3");
    cr_assert(!b->in_params[0]->required);
    cr_assert(b->in_params[1]->required);
    cr_assert_str_eq(kv(s->steps[0]->with, 4, "r"), "1.5e3");
    cr_assert_str_eq(kv(s->steps[0]->with, 4, "j"), "{\"a\": [1, 2]}");
    spec_destroy(&s);

    char want[64];
    cr_assert_eq(spec_input_check("integer", "-12", want, sizeof want), 0);
    cr_assert_eq(spec_input_check("integer", "1.5", want, sizeof want), -EINVAL);
    cr_assert(strstr(want, "an integer"), "%s", want);
    cr_assert_eq(spec_input_check("number", "nan", want, sizeof want), -EINVAL);
    cr_assert_eq(spec_input_check("number", "0.25", want, sizeof want), 0);
    cr_assert_eq(spec_input_check("boolean", "yes", want, sizeof want), -EINVAL);
    cr_assert_eq(spec_input_check("json", "[1,", want, sizeof want), -EINVAL);
    cr_assert_eq(spec_input_check("json", "1, 2", want, sizeof want), -EINVAL);
    cr_assert_eq(spec_input_check("json", "\"x\"", want, sizeof want), 0);
    cr_assert_eq(spec_input_check("", "anything", want, sizeof want), 0);
}

/* Step templates: settings merged field by field (step > template >
 * defaults > built-ins), env key by key, substitution in every field. */
Test(spec_reuse, step_template_merge)
{
    spec_t *s = ok("name: p\n"
                   "defaults:\n"
                   "  resources: {memory: 1Gi}\n"
                   "  env: {A: d, B: d}\n"
                   "templates:\n"
                   "  t:\n"
                   "    inputs: {params: {x: \"9\", to: 5m}}\n"
                   "    script: echo {{inputs.params.x}}\n"
                   "    env: {B: \"t{{inputs.params.x}}\", C: t}\n"
                   "    resources: {cpu: 2}\n"
                   "    timeout: \"{{inputs.params.to}}\"\n"
                   "steps:\n"
                   "  - name: s\n"
                   "    uses: t\n"
                   "    env: {C: s}\n"
                   "    resources: {gpu: 1}\n"
                   "    for_each: [\"1m\", \"2m\"]\n"
                   "  - name: u\n"
                   "    uses: t\n"
                   "    with: {x: \"{{item}}\", to: \"{{item}}\"}\n"
                   "    for_each: [\"1m\", \"2m\"]\n");
    const Drover__StepSpec *st = s->steps[0];
    cr_assert_str_eq(st->argv[2], "echo 9");
    cr_assert_eq(st->resources->cpu_milli, 2000);
    cr_assert_eq(st->resources->gpus, 1);
    cr_assert_eq(st->resources->memory_bytes, 1024ull * 1024 * 1024);
    cr_assert_eq(st->timeout_ms, 300000);
    cr_assert_str_eq(kv(st->env, st->n_env, "A"), "d");
    cr_assert_str_eq(kv(st->env, st->n_env, "B"), "t9");
    cr_assert_str_eq(kv(st->env, st->n_env, "C"), "s");
    const Drover__StepSpec *u = s->steps[1];
    cr_assert_str_eq(u->argv[2], "echo {{item}}");
    cr_assert_str_eq(u->timeout_tmpl, "{{item}}", "a value that became a run-time template");
    spec_destroy(&s);
}

/* ---- errors, each at its position ---- */

static const char *tmpl_head = "name: p\n"
                               "templates:\n"
                               "  fit:\n"
                               "    inputs:\n"
                               "      params: {lr: null, epochs: {default: \"1\", type: integer}}\n"
                               "      artifacts: [data]\n"
                               "    command: [\"{{inputs.params.lr}}\"]\n"
                               "  group:\n"
                               "    inputs: {params: {lr: null}, artifacts: [data]}\n"
                               "    steps:\n"
                               "      - {name: a, command: [a], outputs: {params: [p]}}\n"
                               "    outputs: {params: {best: \"{{steps.a.outputs.params.p}}\"}}\n"
                               "steps:\n"
                               "  - {name: prep, command: [x], outputs: {artifacts: [d]}}\n";

static void bad_use(const char *step, const char *at, const char *want)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", tmpl_head, step);
    bad(yaml, at, want);
}

Test(spec_reuse, errors_at_the_using_step)
{
    /* line 15 is the using step */
    bad_use("  - {name: s, uses: fitt}\n",
            "t.yaml:15:21: ", "unknown template 'fitt'; did you mean 'fit'?");
    bad_use("  - {name: s, uses: fit, inputs: {artifacts: {data: prep.d}}}\n", "t.yaml:15:21: ",
            "step 's' does not give input param 'lr', required by template 'fit' (declared at "
            "t.yaml:3:3)");
    bad_use(
        "  - {name: s, uses: fit, with: {lr: x, lrr: y}, inputs: {artifacts: {data: prep.d}}}\n",
        "t.yaml:15:40: ",
        "template 'fit' (declared at t.yaml:3:3) has no input param 'lrr'; "
        "did you mean 'lr'?");
    bad_use("  - {name: s, uses: fit, with: {lr: x, epochs: two}, inputs: {artifacts: {data: "
            "prep.d}}}\n",
            "t.yaml:15:48: ", "'with.epochs': 'two' is not an integer");
    bad_use("  - {name: s, uses: fit, with: {lr: x}}\n",
            "t.yaml:15:21: ", "does not give input artifact 'data' of template 'fit'");
    bad_use("  - {name: s, uses: fit, with: {lr: x}, inputs: {artifacts: {data: prep.d, dta: "
            "prep.d}}}\n",
            "t.yaml:15:76: ", "has no input artifact 'dta'; did you mean 'data'?");
    bad_use("  - {name: s, uses: group, with: {lr: x}, inputs: {artifacts: {data: prep.d}}, "
            "command: [x]}\n",
            "t.yaml:15:80: ", "step 's' uses DAG template 'group': 'command' cannot be set on it");
    bad_use("  - {name: s, uses: fit, with: {lr: {a: 1}}, inputs: {artifacts: {data: prep.d}}}\n",
            "t.yaml:15:37: ", "'with.lr' must be a string");
    bad_use("  - {name: s, with: {lr: x}, command: [x]}\n",
            "t.yaml:15:15: ", "has 'with' but no 'uses'");
    /* downstream references to a group's outputs are checked */
    bad_use("  - {name: s, uses: group, with: {lr: x}, inputs: {artifacts: {data: prep.d}}}\n"
            "  - {name: r, needs: [s], command: [\"{{steps.s.outputs.params.worst}}\"]}\n",
            "t.yaml:16:37: ", "step 's' declares no output param 'worst'");
    /* a group has no standard output of its own */
    bad_use("  - {name: s, uses: group, with: {lr: x}, inputs: {artifacts: {data: prep.d}}}\n"
            "  - {name: r, needs: [s], command: [\"{{steps.s.outputs.result}}\"]}\n",
            "t.yaml:16:37: ", "step 's' is a group (it uses DAG template 'group')");
    /* with values are read in the using step's scope */
    bad_use("  - {name: s, uses: group, with: {lr: \"{{item}}\"}, inputs: {artifacts: {data: "
            "prep.d}}}\n",
            "t.yaml:15:39: ", "{{item}} used outside a for_each step");
}

Test(spec_reuse, errors_in_templates)
{
    bad("name: p\ntemplates:\n  t:\n    needs: [x]\n    command: [x]\nsteps:\n  - {name: s, uses: "
        "t}\n",
        "t.yaml:4:5: ", "template 't' cannot have 'needs': it belongs to the step that uses the");
    bad("name: p\ntemplates:\n  t:\n    command: [\"{{inputs.params.lrr}}\"]\n    inputs: {params: "
        "{lr: \"1\"}}\nsteps:\n  - {name: s, uses: t}\n",
        "t.yaml:4:15: ", "template 't' declares no input param 'lrr'; did you mean 'lr'?");
    bad("name: p\ntemplates:\n  t:\n    steps:\n      - {name: a, command: [x]}\n    command: "
        "[x]\nsteps:\n  - {name: s, uses: t}\n",
        "t.yaml:6:5: ", "DAG template 't' (it has steps:) cannot have 'command'");
    bad("name: p\ntemplates:\n  t.x:\n    command: [x]\nsteps:\n  - {name: s, command: [x]}\n",
        "t.yaml:3:3: ", "bad template name 't.x'");
    bad("name: p\ntemplates:\n  t:\n    inputs: {params: {n: {default: x, type: integer}}}\n    "
        "command: [x]\nsteps:\n  - {name: s, uses: t}\n",
        "t.yaml:4:36: ", "default 'x' is not an integer");
    bad("name: p\ntemplates:\n  t:\n    inputs: {params: {n: {type: float}}}\n    command: "
        "[x]\nsteps:\n  - {name: s, uses: t}\n",
        "t.yaml:4:33: ", "type must be string, integer, number, boolean or json");
    bad("name: p\ntemplates:\n  t:\n    inputs: {params: {n: \"{{item}}\"}}\n    command: "
        "[x]\nsteps:\n  - {name: s, uses: t}\n",
        "t.yaml:4:26: ", "cannot be used in an input param's default");
}

Test(spec_reuse, errors_in_bodies)
{
    const char *head = "name: p\n"
                       "templates:\n"
                       "  g:\n"
                       "    inputs: {params: {lr: \"1\"}, artifacts: [data]}\n"
                       "    steps:\n";
    const char *tail = "steps:\n"
                       "  - {name: top, command: [x], outputs: {params: [o], artifacts: [d]}}\n"
                       "  - {name: s, uses: g, needs: [top], inputs: {artifacts: {data: top.d}}}\n";
    struct {
        const char *body, *at, *want;
    } cases[] = {
        /* a body step cannot see the pipeline's steps */
        {"      - {name: a, command: [\"{{steps.top.outputs.params.o}}\"]}\n",
         "t.yaml:6:29: ", "no step named 'top'"},
        {"      - {name: a, command: [\"{{inputs.params.lx}}\"]}\n",
         "t.yaml:6:29: ", "template 'g' declares no input param 'lx'; did you mean 'lr'?"},
        {"      - {name: a, command: [x], inputs: {artifacts: {d: inputs.artifacts.dat}}}\n",
         "t.yaml:6:57: ", "template 'g' declares no input artifact 'dat'; did you mean 'data'?"},
        {"      - {name: a, command: [\"{{run.status}}\"]}\n",
         "t.yaml:6:29: ", "only known in finally steps"},
        {"      - {name: a, command: [x], needs: [b]}\n",
         "t.yaml:6:41: ", "step 'a' needs unknown step 'b'"},
        {"      - {name: a, command: [x]}\n    outputs: {params: {o: "
         "\"{{steps.a.outputs.params.q}}\"}}\n",
         "t.yaml:7:27: ", "step 'a' declares no output param 'q'"},
        {"      - {name: a, command: [x]}\n    outputs: {artifacts: {o: a.m}}\n",
         "t.yaml:7:30: ", "'a.m' is not STEP.ARTIFACT of a step of template 'g'"},
        {"      - {name: a, command: [x]}\n    outputs: {params: {o: \"{{item}}\"}}\n",
         "t.yaml:7:27: ", "cannot be used in a template's outputs"},
        {"      - {name: a, command: [x]}\n    finally: 3\n",
         "t.yaml:7:14: ", "'finally' must be a list of steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[2048];
        snprintf(yaml, sizeof yaml, "%s%s%s", head, cases[i].body, tail);
        bad(yaml, cases[i].at, cases[i].want);
    }
}

/* An unused template of the spec's own file is still checked. */
Test(spec_reuse, unused_templates_checked)
{
    bad("name: p\ntemplates:\n  g:\n    steps:\n      - {name: a, command: [x], needs: [zz]}\n  "
        "t:\n    command: [\"{{inputs.params.q}}\"]\nsteps:\n  - {name: s, command: [x]}\n",
        "t.yaml:5:41: ", "needs unknown step 'zz'");
    bad("name: p\ntemplates:\n  t:\n    command: [\"{{inputs.params.q}}\"]\nsteps:\n  - {name: s, "
        "command: [x]}\n",
        "t.yaml:4:15: ", "template 't' declares no input param 'q'");
    spec_t *s = ok("name: p\ntemplates:\n  g:\n    steps:\n      - {name: a, command: [x]}\n"
                   "  t:\n    inputs: {params: {q: null}}\n    command: [\"{{inputs.params.q}}\"]\n"
                   "steps:\n  - {name: s, command: [x]}\n");
    cr_assert_eq(s->body_count, 0, "an unused template leaves no body");
    spec_destroy(&s);
    /* a required param is not "" there: a setting holding it stays a
     * template (no "bad duration ''") */
    s = ok("name: p\ntemplates:\n  t:\n    inputs: {params: {to: null}}\n    command: [x]\n"
           "    timeout: \"{{inputs.params.to}}\"\nsteps:\n  - {name: s, command: [x]}\n");
    cr_assert_eq(s->step_count, 1);
    cr_assert_eq(s->root_count, 1);
    spec_destroy(&s);
}

Test(spec_reuse, max_depth_bounds)
{
    bad("name: p\nmax_depth: 0\nsteps:\n  - {name: s, command: [x]}\n",
        "t.yaml:2:12: ", "'max_depth' must be a whole number from 1 to 1000");
    bad("name: p\nmax_depth: 1001\nsteps:\n  - {name: s, command: [x]}\n",
        "t.yaml:2:12: ", "from 1 to 1000");
}

/* A spec of only template uses with huge with values stays within the
 * limits; a body of a template used from itself is compiled once. */
Test(spec_reuse, attacker_huge_with_and_recursion)
{
    size_t n = 70 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    char *yaml = NULL;
    cr_assert(asprintf(&yaml,
                       "name: p\ntemplates:\n  t:\n    inputs: {params: {v: null}}\n    steps:\n"
                       "      - {name: a, command: [\"{{inputs.params.v}}\"]}\n"
                       "steps:\n  - {name: s, uses: t, with: {v: \"%s\"}}\n",
                       big) > 0);
    bad(yaml, "t.yaml:8:34: ", "'with.v' is longer than 65536 bytes");
    free(yaml);
    free(big);

    /* 200 templates each using the next twice, and the last the first:
     * one body each */
    char *y = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&y, &len);
    fprintf(f, "name: p\ntemplates:\n");
    for (int i = 0; i < 200; i++)
        fprintf(f,
                "  t%d:\n    steps:\n      - {name: a, uses: t%d}\n      - {name: b, uses: t%d}\n",
                i, (i + 1) % 200, (i + 1) % 200);
    fprintf(f, "steps:\n  - {name: s, uses: t0}\n");
    fclose(f);
    spec_t *s = ok(y);
    cr_assert_eq(s->body_count, 200);
    cr_assert_eq(s->step_count, 1 + 400);
    spec_destroy(&s);
    free(y);
}

/* ---- imports ---- */

static const char *math_yaml =
    "name: math\n"
    "description: a library\n"
    "imports: [../base/core.yml]\n"
    "templates:\n"
    "  add:\n"
    "    inputs: {params: {a: null, b: \"1\"}}\n"
    "    command: [add, \"{{inputs.params.a}}\", \"{{inputs.params.b}}\"]\n"
    "    outputs: {params: [sum]}\n"
    "  twice:\n"
    "    inputs: {params: {a: null}}\n"
    "    steps:\n"
    "      - {name: one, uses: add, with: {a: \"{{inputs.params.a}}\"}}\n"
    "      - {name: two, uses: core.inc, needs: [one]}\n"
    "    outputs: {params: {sum: \"{{steps.one.outputs.params.sum}}\"}}\n";
static const char *core_yaml = "templates:\n"
                               "  inc:\n"
                               "    command: [inc]\n";

Test(spec_reuse, imports_prefixes_and_nested)
{
    spec_import_t im[] = {
        {"lib/math.yaml", math_yaml, strlen(math_yaml)},
        {"base/core.yml", core_yaml, strlen(core_yaml)},
        {"lib/train.yaml", core_yaml, strlen(core_yaml)},
    };
    spec_t *s = ok_files("name: p\n"
                         "imports:\n"
                         "  - lib/math.yaml\n"
                         "  - {path: ./lib/../lib/train.yaml, as: t}\n"
                         "steps:\n"
                         "  - {name: a, uses: math.add, with: {a: \"2\"}}\n"
                         "  - {name: b, uses: math.twice, with: {a: \"3\"}}\n"
                         "  - {name: c, uses: t.inc}\n",
                         im, 3);
    cr_assert_eq(s->root_count, 3);
    cr_assert_str_eq(s->steps[0]->template_, "math.add");
    cr_assert_str_eq(s->steps[0]->argv[1], "2");
    cr_assert_str_eq(s->steps[0]->argv[2], "1");
    cr_assert_str_eq(s->steps[1]->template_, "math.twice");
    cr_assert_eq(s->steps[1]->uses_body, 1);
    cr_assert_str_eq(s->steps[2]->template_, "t.inc");
    cr_assert_eq(s->body_count, 1);
    cr_assert_str_eq(s->bodies[0]->name, "math.twice");
    cr_assert_str_eq(s->steps[3]->template_, "math.add", "a sibling by its bare name");
    cr_assert_str_eq(s->steps[3]->argv[1], "{{inputs.params.a}}");
    cr_assert_str_eq(s->steps[4]->template_, "math.core.inc");
    spec_destroy(&s);

    /* spec_imports gives the paths to send, joined to the file's directory */
    char **paths = NULL;
    size_t n = 0;
    const char *main_yaml = "name: p\nimports: [lib/math.yaml, {path: ../x.yaml, as: x}]\n"
                            "steps: [{name: a, command: [x]}]\n";
    cr_assert_eq(
        spec_imports("dir/p.yaml", main_yaml, strlen(main_yaml), &paths, &n, err, sizeof err), 0,
        "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(paths[0], "dir/lib/math.yaml");
    cr_assert_str_eq(paths[1], "x.yaml");
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    cr_assert_eq(
        spec_imports("lib/math.yaml", math_yaml, strlen(math_yaml), &paths, &n, err, sizeof err), 0,
        "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(paths[0], "base/core.yml");
    free(paths[0]);
    free(paths);
    cr_assert_eq(spec_imports("p.yaml", "imports: 3\n", 11, &paths, &n, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "p.yaml:1:10: 'imports' must be a list of paths (or {path: FILE, as: "
                          "PREFIX})");
    cr_assert_null(paths);
}

/* Errors inside an imported file name that file, with its positions;
 * the spec's own errors come first. */
Test(spec_reuse, errors_in_imported_files)
{
    const char *lib = "templates:\n"
                      "  add:\n"
                      "    command: [\"{{inputs.params.x}}\"]\n"
                      "    colour: red\n"
                      "  unused:\n"
                      "    needs: [zz]\n";
    spec_import_t im[] = {{"lib/m.yaml", lib, strlen(lib)}};
    spec_t *s = (spec_t *)0x1;
    cr_assert_eq(parse_files("name: p\nimports: [lib/m.yaml]\nsteps:\n  - {name: a, uses: m.add}\n"
                             "  - {name: b, uses: m.ad}\n",
                             im, 1, &s),
                 -EINVAL);
    cr_assert_null(s);
    cr_assert_str_eq(err, "t.yaml:5:21: unknown template 'm.ad'; did you mean 'm.add'?\n"
                          "lib/m.yaml:3:15: template 'm.add' declares no input param 'x'\n"
                          "lib/m.yaml:4:5: unknown key 'colour' in step 'a'");
    /* a syntax error in an imported file */
    const char *broken = "templates:\n  add: [\n";
    spec_import_t im2[] = {{"lib/m.yaml", broken, strlen(broken)}};
    bad_files("name: p\nimports: [lib/m.yaml]\nsteps:\n  - {name: a, command: [x]}\n", im2, 1,
              "lib/m.yaml:3:1: ", "not YAML");
    /* an imported file holds only templates */
    const char *steps = "steps:\n  - {name: a, command: [x]}\n";
    spec_import_t im3[] = {{"lib/m.yaml", steps, strlen(steps)}};
    bad_files("name: p\nimports: [lib/m.yaml]\nsteps:\n  - {name: a, command: [x]}\n", im3, 1,
              "lib/m.yaml:1:1: ", "'steps' cannot be in an imported file");
}

Test(spec_reuse, import_entry_errors)
{
    spec_import_t im[] = {{"lib/m.yaml", core_yaml, strlen(core_yaml)},
                          {"other/m.yaml", core_yaml, strlen(core_yaml)}};
    const char *tail = "steps:\n  - {name: a, command: [x]}\n";
    char yaml[512];
    snprintf(yaml, sizeof yaml, "name: p\nimports:\n  - lib/m.yaml\n  - other/m.yaml\n%s", tail);
    bad_files(yaml, im, 2, "t.yaml:4:5: ", "duplicate import prefix 'm' (first at 3:5)");
    snprintf(yaml, sizeof yaml, "name: p\nimports: [lib/nope.yaml]\n%s", tail);
    bad_files(yaml, im, 2, "t.yaml:2:11: ", "imported file 'lib/nope.yaml' not found");
    snprintf(yaml, sizeof yaml, "name: p\nimports: [/etc/passwd]\n%s", tail);
    bad_files(yaml, im, 2, "t.yaml:2:11: ", "bad import path '/etc/passwd': an absolute path");
    snprintf(yaml, sizeof yaml, "name: p\nimports: [{path: lib/m.yaml, as: a.b}]\n%s", tail);
    bad_files(yaml, im, 2, "t.yaml:2:34: ", "bad import prefix 'a.b'");
    snprintf(yaml, sizeof yaml, "name: p\nimports: [{path: lib/m.yaml, colour: x}]\n%s", tail);
    bad_files(yaml, im, 2, "t.yaml:2:30: ", "unknown key 'colour' in an imports entry");
    snprintf(yaml, sizeof yaml, "name: p\nimports: [lib/..]\n%s", tail);
    bad_files(yaml, im, 2, "t.yaml:2:11: ", "bad import path 'lib/..': not a file");
    /* ".." may climb above the spec's directory: the client sends the
     * file under that name, and droverd reads nothing from disk */
    spec_import_t up[] = {{"../shared/m.yaml", core_yaml, strlen(core_yaml)}};
    spec_t *s = ok_files(
        "name: p\nimports: [../shared/m.yaml]\nsteps:\n  - {name: a, uses: m.inc}\n", up, 1);
    cr_assert_str_eq(s->steps[0]->argv[0], "inc");
    spec_destroy(&s);
}

/* The main spec's imports may be given joined to its file name's
 * directory (as spec_imports makes them) or relative to it. */
Test(spec_reuse, import_paths_relative_to_the_spec)
{
    const char *yaml = "name: p\nimports: [lib/m.yaml]\nsteps:\n  - {name: a, uses: m.inc}\n";
    for (int i = 0; i < 2; i++) {
        spec_import_t im[] = {{i ? "dir/lib/m.yaml" : "lib/m.yaml", core_yaml, strlen(core_yaml)}};
        spec_t *s = NULL;
        cr_assert_eq(spec_parse_files("dir/p.yaml", yaml, strlen(yaml), im, 1, NULL, 0, NULL, &s,
                                      err, sizeof err),
                     0, "%d: %s", i, err);
        cr_assert_str_eq(s->steps[0]->argv[0], "inc");
        spec_destroy(&s);
    }
}

Test(spec_reuse, import_cycles_and_depth)
{
    const char *a = "imports: [b.yaml]\ntemplates: {x: {command: [x]}}\n";
    const char *b = "imports: [a.yaml]\ntemplates: {y: {command: [y]}}\n";
    spec_import_t im[] = {{"a.yaml", a, strlen(a)}, {"b.yaml", b, strlen(b)}};
    bad_files("name: p\nimports: [a.yaml]\nsteps:\n  - {name: s, uses: a.x}\n", im, 2,
              "b.yaml:1:11: ", "import cycle: 'b.yaml' imports 'a.yaml', which is being imported");
    const char *self = "imports: [self.yaml]\n";
    spec_import_t im2[] = {{"self.yaml", self, strlen(self)}};
    bad_files("name: p\nimports: [self.yaml]\nsteps:\n  - {name: s, command: [x]}\n", im2, 1,
              "self.yaml:1:11: ", "import cycle");
    /* a chain of 300 files: at most 256 */
    spec_import_t chain[300];
    char *texts[300], *paths[300];
    for (int i = 0; i < 300; i++) {
        cr_assert(asprintf(&paths[i], "f%d.yaml", i) > 0);
        cr_assert(asprintf(&texts[i], "imports: [f%d.yaml]\n", i + 1) > 0);
        chain[i] = (spec_import_t){paths[i], texts[i], strlen(texts[i])};
    }
    spec_t *s = (spec_t *)0x1;
    int rc = parse_files("name: p\nimports: [f0.yaml]\nsteps:\n  - {name: s, command: [x]}\n",
                         chain, 300, &s);
    cr_assert_eq(rc, -E2BIG, "%s", err);
    cr_assert(strstr(err, "too many imported files (at most 256)"), "%s", err);
    for (int i = 0; i < 300; i++) {
        free(paths[i]);
        free(texts[i]);
    }
    /* a diamond is no cycle: the shared file is loaded once */
    const char *l = "imports: [c.yaml]\ntemplates: {x: {uses: c.z}}\n";
    const char *r = "imports: [c.yaml]\n";
    const char *cc = "templates: {z: {command: [z]}}\n";
    spec_import_t dia[] = {
        {"l.yaml", l, strlen(l)}, {"r.yaml", r, strlen(r)}, {"c.yaml", cc, strlen(cc)}};
    bad_files("name: p\nimports: [l.yaml, r.yaml]\nsteps:\n  - {name: s, uses: l.x}\n", dia, 3,
              "l.yaml:2:17: ", "template 'l.x' cannot have 'uses'");
}

/* A body in error before any of its steps (steps: not a list) still
 * takes its place: the next body is compiled after it and all are freed
 * (found by fuzz_spec: the next body left a hole in spec_t.bodies). */
Test(spec_reuse, body_in_error_keeps_its_place)
{
    bad("name: p\ntemplates:\n  a: {steps: 3}\n  b:\n    steps: [{name: x, command: [x]}]\n"
        "steps:\n  - {name: p, uses: a}\n  - {name: q, uses: b}\n",
        "t.yaml:3:14: ", "DAG template 'a': 'steps' must be a non-empty list of steps");
}

/* A big step template used by every step would multiply the spec's
 * nodes: the sum over uses is bounded (a droverd limit: -E2BIG). */
Test(spec_reuse, attacker_big_template_used_often)
{
    char *y = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&y, &len);
    fprintf(f, "name: p\ntemplates:\n  t:\n    inputs: {params: {x: a}}\n    command: [");
    for (int i = 0; i < 1000; i++)
        fprintf(f, "%s\"{{inputs.params.x}}\"", i ? ", " : "");
    fprintf(f, "]\nsteps:\n");
    for (int i = 0; i < 2100; i++)
        fprintf(f, "  - {name: s%d, uses: t}\n", i);
    fclose(f);
    spec_t *s = (spec_t *)0x1;
    cr_assert_eq(parse_files(y, NULL, 0, &s), -E2BIG, "%s", err);
    cr_assert_null(s);
    cr_assert(strstr(err, "step templates compiled into their steps come to more than 2000000 "
                          "YAML nodes in all (template 't' is used too often for its size)"),
              "%s", err);
    free(y);
}
