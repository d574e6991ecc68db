/* spec — pipeline YAML → validated, params-substituted step list.
 *
 * spec_parse() reads a pipeline spec (README.md "Pipeline spec") with
 * libyaml, keeping each node's line and column so every error names
 * file:line:col and a reason. It checks the whole document (unknown keys,
 * duplicate step names, unknown or cyclic needs, bad quantities and
 * durations, template references) and substitutes {{params.x}} in
 * command, script, env values, when, for_each and image. Keys that later
 * releases implement ({{inputs...}} templates, inputs.params) are parsed
 * and shape-checked, then refused with "not implemented yet", so a spec is
 * never half-run. The result owns all its memory.
 */
#ifndef DROVER_SPEC_H
#define DROVER_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *key;
    char *value;
} spec_kv_t;

/* placement.spot: where a step would rather run. */
typedef enum {
    SPEC_SPOT_PREFER = 1,  /* spot nodes first, on-demand when none fits */
    SPEC_SPOT_AVOID = 2,   /* on-demand first, spot when none fits */
    SPEC_SPOT_REQUIRE = 3, /* spot nodes only */
    SPEC_SPOT_ANY = 4,     /* no preference */
} spec_spot_t;

typedef struct {
    uint32_t limit;          /* retries after the first attempt */
    uint64_t backoff_ms;     /* delay before the first retry */
    double factor;           /* multiplier per further retry (>= 1) */
    uint64_t max_backoff_ms; /* cap on the delay; 0 = no cap */
} spec_retry_t;

/* inputs.artifacts entry: materialize STEP.ARTIFACT under $DROVER_INPUTS/local */
typedef struct {
    char *local;
    size_t step; /* index into spec_t.steps of the producing step */
    char *artifact;
} spec_input_t;

typedef struct {
    char *name;
    char **argv; /* NULL-terminated; a script becomes /bin/sh -ec SCRIPT */
    size_t argc;
    spec_kv_t *env;
    size_t env_count;
    uint32_t cpu_milli; /* requested cpu, 1000 = one core */
    uint64_t memory_bytes;
    uint32_t gpus;
    spec_kv_t *labels; /* placement.labels: agent must carry all of them */
    size_t label_count;
    spec_retry_t retries;
    uint64_t timeout_ms; /* 0 = none */
    size_t *needs;       /* indexes into spec_t.steps */
    size_t need_count;
    uint32_t max_preemptions; /* cap on LOST/PREEMPTED requeues */
    int line, col;            /* where the step starts in the file */

    /* Spot capacity and checkpoints. */
    bool checkpoint;                     /* checkpoint: commits $DROVER_CHECKPOINT_DIR */
    uint64_t checkpoint_min_interval_ms; /* at most one commit per interval */
    uint32_t checkpoint_keep;            /* committed checkpoints kept (>= 1) */
    int preempt_signal;                  /* sent to the task on a preemption notice */
    uint64_t preempt_grace_ms;           /* then SIGKILL after this (or the deadline) */
    uint32_t fallback_after;             /* preemptions before on-demand only; 0 = never */
    spec_spot_t spot;                    /* placement.spot, or the default for it */

    /* Data flow. Run-time templates ({{steps.S.outputs.params.P}},
     * {{item}}, {{item.KEY}}, {{run.id}}, {{run.name}}, {{run.status}})
     * are validated here and left verbatim in argv, env values, when and
     * items_from for droverd to expand when the step is dispatched;
     * {{params.x}} is already substituted. */
    char **out_artifacts; /* outputs.artifacts names */
    size_t out_artifact_count;
    char **out_params; /* outputs.params names */
    size_t out_param_count;
    spec_input_t *inputs; /* inputs.artifacts */
    size_t input_count;
    char *when;   /* condition, NULL = always */
    bool fan_out; /* for_each present */
    char **items; /* literal for_each items: scalars as text, maps/lists as compact JSON */
    size_t item_count;
    char *items_from;     /* for_each as a run-time template yielding a JSON list, or NULL */
    bool has_range;       /* for_each: {range: ...}; items and items_from are empty */
    int64_t range_start;  /* the items are range_start, + range_step, ... */
    int64_t range_end;    /* ... up to range_end, exclusive (Python's range) */
    int64_t range_step;   /* never 0; negative counts down */
    uint32_t parallelism; /* max items running at once; 0 = unlimited */
    bool is_finally;      /* an exit handler (from finally:) */
    char *image;          /* container image (params substituted), NULL = a process */
    bool cache;           /* may be served from cache (default true) */
} spec_step_t;

typedef struct {
    char *name;
    spec_kv_t *params; /* declared params with overrides applied */
    size_t param_count;
    spec_step_t *steps; /* in file order */
    size_t step_count;
} spec_t;

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
 * and writes one line "FILE:LINE:COL: reason" (LINE/COL 1-based) to err. */
int spec_parse(const char *filename, const char *text, size_t len, const spec_kv_t *overrides,
               size_t override_count, spec_t **out, char *err, size_t errlen);
/* The same within limits (NULL = the built-in ones); -E2BIG (with the
 * message in err) when the spec is beyond one of them. */
int spec_parse_limited(const char *filename, const char *text, size_t len,
                       const spec_kv_t *overrides, size_t override_count,
                       const spec_limits_t *limits, spec_t **out, char *err, size_t errlen);

/* Free a spec and NULL the pointer; accepts NULL. */
void spec_destroy(spec_t **spec);

/* The number of items of a for_each range: how many of start, start +
 * step, ... lie before end (after it when step < 0), as Python's
 * range(start, end, step) gives; 0 when step is 0. Never overflows. */
uint64_t spec_range_count(int64_t start, int64_t end, int64_t step);

/* Quantities. Each returns 0, or -EINVAL on anything but the exact forms
 * listed, with *out untouched.
 *   memory: "512Mi", "2Gi", "1G", "100M", "64Ki", "1000" (bytes)
 *   cpu:    "2", "0.5", "500m"  → millicores
 *   duration: "100ms", "5s", "1m", "2h", "1h30m", "90" (seconds) → ms */
int spec_parse_memory(const char *s, uint64_t *out);
int spec_parse_cpu(const char *s, uint32_t *out_milli);
int spec_parse_duration(const char *s, uint64_t *out_ms);

#endif
