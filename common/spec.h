/* spec — pipeline YAML → validated, params-substituted steps, as the
 * StepSpec messages droverd stores (one step schema: proto/drover.proto).
 *
 * spec_parse() reads a pipeline spec (README.md "Pipeline spec") with
 * libyaml, keeping each node's line and column so every error names
 * file:line:col and a reason. It checks the whole document (unknown keys,
 * duplicate step names, unknown or cyclic needs, bad quantities and
 * durations, template references) and substitutes {{params.x}} in
 * command, script, env values, when, for_each, image and the other
 * templated settings (timeout, resources, retries.limit). Templates
 * (templates:, uses:, with:) and imports: are compiled too: a step
 * template into each step that uses it, a DAG template once into a body
 * (spec_t.bodies). The result owns all its memory. The parts of the
 * compiler are listed in spec_internal.h; the quantity parsers are in
 * units.h (included here for the callers that used to find them here).
 */
#ifndef DROVER_SPEC_H
#define DROVER_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drover.pb-c.h"
#include "units.h" /* the quantity parsers, once spec.c's; kept for their callers */

typedef struct {
    char *key;
    char *value;
} spec_kv_t;

/* Where a step was written (1-based): a parse-time fact, kept beside the
 * step's message rather than in it. */
typedef struct {
    int line, col;
} spec_pos_t;

typedef struct {
    char *name;
    spec_kv_t *params; /* declared params with overrides applied */
    size_t param_count;
    /* The steps in file order (finally steps after the main ones), parsed
     * straight into the messages droverd stores (proto/drover.proto
     * StepSpec: one schema; a new step key is a field there and its
     * parser here). Each message and every field is its own malloc'd
     * block, as drover__step_spec__unpack makes them: spec_destroy frees
     * them with drover__step_spec__free_unpacked. Strings not given are
     * "" (when, items_from, image), never NULL; needs and
     * inputs[].step are indexes into steps. Run-time templates
     * ({{steps.S.outputs.params.P}}, {{item}}, {{item.KEY}},
     * {{run.id}}, {{run.name}}, {{run.status}}) are validated and left
     * verbatim in argv, env values, when and items_from for droverd to
     * expand when the step is dispatched; {{params.x}} is already
     * substituted. */
    Drover__StepSpec **steps;
    spec_pos_t *pos; /* parallel to steps: where each starts in the file */
    size_t step_count;
    /* Run limits (top-level parallelism, timeout): 0 = none. */
    uint32_t parallelism;
    uint64_t timeout_ms;
    /* Reuse (README "Templates"). steps[0, root_count) are the pipeline's
     * own steps (main, then finally); the rest are the bodies of the DAG
     * templates the run uses, each contiguous and compiled once
     * (bodies[k] describes them; StepSpec.uses_body = k + 1 on a step
     * that instantiates it, StepSpec.in_body = k + 1 on each of its
     * steps). Step templates leave no trace but StepSpec.template: their
     * body is compiled into each using step. */
    size_t root_count;
    Drover__TemplateBody **bodies; /* owned, like steps */
    size_t body_count;
    uint32_t max_depth; /* top-level max_depth: 0 = droverd's --max-depth */
} spec_t;

/* A file a spec imports (imports:), as `drover submit` sends it: path is
 * relative to the main spec's directory, normalized ('/' separated, no
 * "." or empty components, ".." only leading). */
typedef struct {
    const char *path;
    const char *text;
    size_t len;
} spec_import_t;

/* Files one spec may import, transitively (drover submit and droverd). */
#define SPEC_MAX_IMPORTS 100u

/* Defaults applied when neither the step nor `defaults:` says otherwise. */
#define SPEC_DEFAULT_CPU_MILLI       1000u
#define SPEC_DEFAULT_BACKOFF_MS      1000u
#define SPEC_DEFAULT_FACTOR          2.0
#define SPEC_DEFAULT_MAX_BACKOFF_MS  300000u
#define SPEC_DEFAULT_MAX_PREEMPTIONS 20u
#define SPEC_DEFAULT_CHECKPOINT_KEEP 2u
#define SPEC_DEFAULT_GRACE_MS        90000u
#define SPEC_DEFAULT_FALLBACK_AFTER  3u

/* Limits a spec must stay within (droverd's --max-* settings). */
typedef struct {
    size_t max_bytes;       /* YAML text [1 MiB] */
    size_t max_steps;       /* steps + finally [10000] */
    size_t max_items;       /* literal for_each items of one step [100000] */
    size_t max_range_items; /* items of a for_each range: run-time --max-items [1000000] */
    size_t max_param_bytes; /* one param value [64 KiB] */
    size_t max_labels;      /* placement labels of one step [64] */
} spec_limits_t;

/* The built-in limits. */
void spec_limits_defaults(spec_limits_t *lim);

/* Parse and validate a spec.
 * filename: used only in messages. text/len: the YAML (need not be
 * NUL-terminated). overrides: `-p k=v` values; each key must be declared
 * under params. On success returns 0 and stores a new spec in *out (caller
 * frees with spec_destroy). On failure returns -EINVAL, leaves *out NULL
 * and writes to err every error found, in file order, one line
 * "FILE:LINE:COL: reason" each (LINE/COL 1-based, no newline after the
 * last): at most 20, then a line "and N more errors" when there are more;
 * whole lines only, as many as fit in errlen (8 KiB holds 20). An unknown
 * key or step name ends "; did you mean 'X'?" when one is close. */
int spec_parse(const char *filename, const char *text, size_t len, const spec_kv_t *overrides,
               size_t override_count, spec_t **out, char *err, size_t errlen);
/* The same within limits (NULL = the built-in ones); -E2BIG (with the
 * message in err) when the spec is beyond one of them. */
int spec_parse_limited(const char *filename, const char *text, size_t len,
                       const spec_kv_t *overrides, size_t override_count,
                       const spec_limits_t *limits, spec_t **out, char *err, size_t errlen);

/* spec_parse_limited over a spec and the files it imports (all of them,
 * transitively: the compiler reads nothing from disk). An `imports:`
 * entry of file F names F's directory joined with its path, normalized as
 * spec_import_t says; one missing from imports is an error at the entry.
 * Errors in an imported file name that file (its path as given here). */
int spec_parse_files(const char *filename, const char *text, size_t len,
                     const spec_import_t *imports, size_t import_count, const spec_kv_t *overrides,
                     size_t override_count, const spec_limits_t *limits, spec_t **out, char *err,
                     size_t errlen);

/* The files text (the spec or an imported file, named filename) imports,
 * in order: each entry's path joined to filename's directory and
 * normalized as spec_import_t says, into *paths (caller frees each and
 * the array; *n of them). For `drover submit`, which reads them (and
 * theirs) and sends them along. 0, or -EINVAL with "FILE:LINE:COL:
 * reason" in err (not YAML, a bad imports entry). */
int spec_imports(const char *filename, const char *text, size_t len, char ***paths, size_t *n,
                 char *err, size_t errlen);

/* Check value against a template input's declared type ("" or "string":
 * any text; "integer": a whole decimal number; "number": a finite decimal
 * number; "boolean": true or false in any case; "json": one
 * JSON value). 0, or -EINVAL with what it should be in want ("an integer
 * (e.g. 3, -1)"). The one check the compiler runs on literal `with`
 * values and droverd on templated ones when a group is instantiated. */
int spec_input_check(const char *type, const char *value, char *want, size_t wantlen);

/* Free a spec and NULL the pointer; accepts NULL. */
void spec_destroy(spec_t **spec);

/* A deep copy of step st (the caller frees it with
 * drover__step_spec__free_unpacked), field for field whatever the schema
 * holds: droverd's copy of a parsed spec's step. */
Drover__StepSpec *spec_step_dup(const Drover__StepSpec *st);

/* The number of items of a for_each range: how many of start, start +
 * step, ... lie before end (after it when step < 0), as Python's
 * range(start, end, step) gives; 0 when step is 0. Never overflows. */
uint64_t spec_range_count(int64_t start, int64_t end, int64_t step);

/* Templated settings (README "Templated settings"): timeout, image,
 * resources.cpu/memory/gpu and retries.limit may hold run-time templates
 * ({{item}}, {{item.KEY}}, {{steps.S.outputs.params.P}}); the step then
 * keeps the text in its *_tmpl field and droverd expands it when the task
 * is made READY. */
typedef enum {
    SPEC_TMPL_TIMEOUT,
    SPEC_TMPL_IMAGE,
    SPEC_TMPL_CPU,
    SPEC_TMPL_MEMORY,
    SPEC_TMPL_GPU,
    SPEC_TMPL_RETRY_LIMIT,
    SPEC_TMPL_N
} spec_tmpl_key_t;

/* The key as a user writes it ("resources.cpu"). */
const char *spec_tmpl_key_name(spec_tmpl_key_t k);
/* Step st's template text for k, or NULL when the typed field holds the
 * value (the text is st's). */
const char *spec_tmpl_text(const Drover__StepSpec *st, spec_tmpl_key_t k);
/* Whether st has any templated setting. */
bool spec_has_tmpl(const Drover__StepSpec *st);
/* Check the expanded value of setting k: 0 with *num set (milli-cpus,
 * bytes, gpus, ms or a retry count; 0 for image), or -EINVAL with what it
 * should be in want ("a cpu quantity (e.g. 2, 0.5, 500m)"). The one
 * check both the spec compiler (literal items) and droverd (dispatch) use. */
int spec_tmpl_value(spec_tmpl_key_t k, const char *value, uint64_t *num, char *want,
                    size_t wantlen);

#endif
