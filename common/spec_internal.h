/* spec_internal — what the parts of the spec compiler share (common/spec*.c;
 * not for other modules: include spec.h).
 *
 * The parts, in the order a spec goes through them (spec.c's comment has
 * the design as a whole):
 *   spec_yaml.c      YAML text -> node_t tree (libyaml events; positions,
 *                    no aliases, bounded depth and size, duplicate keys)
 *   spec.c           the document: name, params, defaults, steps, finally;
 *                    messages (FILE:LINE:COL), the step-name table, scalar
 *                    checks; spec_parse / spec_destroy
 *   spec_settings.c  the keys a step inherits from defaults: (resources,
 *                    retries, timeout, env, placement, checkpoint,
 *                    preemption, cache, image)
 *   spec_step.c      one step: its own keys, outputs, inputs, for_each, and
 *                    the merge step > defaults > built-ins
 *   spec_template.c  {{ ... }} references: classify, substitute params
 *   spec_trigger.c   trigger, depends, continue_on (depends adds needs)
 *   spec_flow.c      needs (indexes, cycles) and the data-flow check
 *   spec_reuse.c     templates: step templates merged into their using
 *                    steps, DAG templates' bodies (compiled once each)
 *   spec_import.c    imports: other files' templates under a prefix
 * The quantity parsers (memory, cpu, durations) are in units.c, apart, so
 * that programs parsing "5s" do not link the spec compiler or libyaml.
 *
 * Ownership: ctx_t and step_aux_t live for one spec_parse_limited call;
 * node_t trees are owned by it (node_free); everything put into a
 * step message belongs to the spec (spec_destroy).
 */
#ifndef DROVER_SPEC_INTERNAL_H
#define DROVER_SPEC_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "expr.h"
#include "spec.h"

#define SPEC_MAX_TEXT       (1024u * 1024u) /* bytes of YAML */
#define SPEC_MAX_STEPS      10000u          /* steps + finally */
#define SPEC_MAX_ITEMS      100000u         /* for_each items of one step */
#define SPEC_MAX_RANGE      1000000u        /* items of a for_each range (droverd's --max-items) */
#define SPEC_MAX_PARAMS     1000u
#define SPEC_MAX_NAME       63u
#define SPEC_MAX_PARAM_VAL  (64u * 1024u)
#define SPEC_MAX_EXPANDED   (1024u * 1024u)       /* one string after templates */
#define SPEC_MAX_EXPAND_ALL (16u * 1024u * 1024u) /* all strings together */
#define SPEC_MAX_DEPTH      32
#define SPEC_MAX_NODES      200000u
#define SPEC_MAX_GPUS       64u
#define SPEC_MAX_RETRIES    100u
#define SPEC_MAX_COUNT      1000u /* keep, max_preemptions, fallback_after */
#define SPEC_MAX_PARALLEL   10000u
#define SPEC_MAX_LABEL_KEY  63u
#define SPEC_MAX_LABEL_VAL  255u
#define SPEC_MAX_ENV        1000u /* entries in one env map */
#define SPEC_MAX_LABELS     64u   /* entries in one labels map */
/* argv, env, labels and items of all steps together, defaults' copies
 * included */
#define SPEC_MAX_RESULT (64u * 1024u * 1024u)

typedef enum { N_SCALAR, N_SEQ, N_MAP } ntype_t;

typedef struct node {
    ntype_t type;
    int line, col;
    bool plain;         /* scalar written without quotes (so "" and ~ mean null) */
    char *str;          /* scalar: NUL-terminated value */
    size_t len;         /* scalar: length of str */
    struct node **kids; /* seq: items; map: key, value, key, value... */
    size_t nkids, cap;
    const char *file; /* the file it was read from (messages; outlives the parse) */
} node_t;

static inline size_t map_len(const node_t *m)
{
    return m->nkids / 2;
}

static inline node_t *map_key(const node_t *m, size_t i)
{
    return m->kids[2 * i];
}

static inline node_t *map_val(const node_t *m, size_t i)
{
    return m->kids[2 * i + 1];
}

/* The value of key in map m, or NULL. */
static inline node_t *map_get(const node_t *m, const char *key)
{
    for (size_t i = 0; m && m->type == N_MAP && i < map_len(m); i++) {
        if (!strcmp(map_key(m, i)->str, key))
            return map_val(m, i);
    }
    return NULL;
}

/* Where an env value of a step came from (for rescanning its templates). */
typedef struct {
    const node_t *node;
    bool inherited; /* from defaults: */
} env_src_t;

/* Per-step parse state kept until the data flow is checked. */
typedef struct {
    node_t *name_node;  /* the step's name value */
    node_t *needs_node; /* the step's needs list, or NULL */
    bool is_finally;
    const node_t *cmd, *script; /* sources of argv */
    env_src_t *env_src;         /* parallel to the step's env */
    const node_t *when;         /* the when value, or NULL */
    const node_t *for_each;     /* the for_each value, or NULL */
    const node_t **input_src;   /* parallel to inputs: each source scalar */
    bool failed;                /* some key of the step had an error: its data flow is
                                   not checked, and references to its outputs are not
                                   refused (no cascades) */
    bool needs_failed;          /* some entry of needs was refused: the step's
                                   ancestors are unknown, its data flow is not checked */
    char **arts_sorted;         /* out_artifacts, sorted (pointers into the step) */
    char **params_sorted;       /* out_params, sorted */
    const node_t *trigger_node; /* the trigger value, or NULL */
    const node_t *depends_node; /* the depends value, or NULL */

    /* templated settings: each one's scalar, and whether from defaults: */
    const node_t *tmpl_node[SPEC_TMPL_N];
    bool tmpl_inherited[SPEC_TMPL_N];

    /* reuse (spec_reuse.c) */
    bool group;              /* uses a DAG template: no argv of its own */
    const node_t **with_src; /* with: values, their run-time references checked
                                in the step's scope by check_flow */
    size_t n_with;
} step_aux_t;

/* One error found in a spec (its message without the FILE:LINE:COL). */
typedef struct {
    const char *file; /* the spec, or an imported file */
    int line, col;
    char *msg;
    int rank; /* write_errors' order: 0 the spec's own file, 1 imported */
} spec_err_t;

#define SPEC_MAX_ERRS_SHOWN 20u   /* errors written to err; then "and N more" */
#define SPEC_MAX_ERRS_KEPT  1000u /* errors kept (and deduplicated); more are counted */

typedef struct {
    const char *file;
    char *err;
    size_t errlen;
    spec_limits_t lim;
    bool failed;         /* some error was recorded */
    bool over_limit;     /* some error is a limit (fail_limit) */
    bool fatal;          /* stop the walk: a limit, or nothing after can be trusted */
    spec_err_t *errs;    /* the errors found, in the order found */
    size_t nerrs;        /* kept in errs (at most SPEC_MAX_ERRS_KEPT) */
    size_t nerrs_all;    /* found in all, duplicates by position left out */
    size_t fail_calls;   /* fail*() calls, duplicates included */
    bool names_partial;  /* a step has no usable name: "no step named" is not said */
    bool params_partial; /* a param has no usable name: "unknown param" is not said */
    char hint[160];      /* "; did you mean 'X'?" (hint(), step_hint()) */
    char show[4][112];   /* display copies of user strings for messages */
    int show_i;
    size_t nodes;
    size_t expanded; /* bytes produced by template expansion so far */
    size_t result;   /* bytes of argv, env and labels in the result so far */
    const spec_kv_t *params;
    size_t param_count;
    /* step names: open addressing, slot = index + 1, 0 = empty */
    Drover__StepSpec *const *steps;
    size_t nsteps; /* of steps (names_init's n) */
    size_t *names;
    size_t names_cap; /* a power of two, at least twice the step count */
    /* the first not-yet-implemented feature seen, reported at the end */
    bool ni_set;
    int ni_line, ni_col;
    char *ni_what;
    /* reuse (spec_reuse.c, spec_import.c) */
    const spec_import_t *imports; /* the files the caller gave (spec_parse_files) */
    size_t import_count;
    struct reuse *reuse;       /* templates, files, the bodies' queue; NULL: none */
    const struct scope *scope; /* where {{inputs.params.X}} is read: NULL = the
                                  pipeline's own steps (spec_reuse.c) */
} ctx_t;

typedef enum {
    EXP_ALL,     /* run-time templates are kept as written */
    EXP_PARAMS,  /* only {{params.NAME}} may appear (for_each items) */
    EXP_RANGE,   /* the same, in the numbers of a for_each range */
    EXP_DEFAULT, /* the same, in a template input param's default */
} exp_mode_t;

enum {
    HAS_CPU = 1 << 0,
    HAS_MEM = 1 << 1,
    HAS_GPU = 1 << 2,
    HAS_LIMIT = 1 << 3,
    HAS_BACKOFF = 1 << 4,
    HAS_FACTOR = 1 << 5,
    HAS_MAXB = 1 << 6,
    HAS_TIMEOUT = 1 << 7,
    HAS_MAXP = 1 << 8,
    HAS_CACHE = 1 << 9,
    HAS_SPOT = 1 << 10,
    HAS_CKPT = 1 << 11,
    HAS_SIGNAL = 1 << 12,
    HAS_GRACE = 1 << 13,
    HAS_FALLBACK = 1 << 14,
    HAS_RWHEN = 1 << 28, /* retries.when (settings_t.retry_when) */
    HAS_RMAXD = 1 << 29, /* retries.max_duration */
};

typedef struct {
    unsigned has;
    uint32_t cpu_milli;
    uint64_t memory_bytes;
    uint32_t gpus;
    Drover__RetryPolicy retries; /* fields only: no message header use */
    uint64_t timeout_ms;
    uint32_t max_preemptions;
    bool cache;
    Drover__SpotPolicy spot;
    bool checkpoint; /* checkpoint: given and not false */
    uint64_t checkpoint_min_interval_ms;
    uint32_t checkpoint_keep;
    int preempt_signal;
    uint64_t preempt_grace_ms;
    uint32_t fallback_after;
    spec_kv_t *env;
    const node_t **env_nodes; /* parallel to env: each value's scalar */
    size_t env_count;
    spec_kv_t *labels;
    size_t label_count;
    char *image;                 /* NULL = not set here */
    const node_t *spot_node;     /* placement.spot's value, when HAS_SPOT */
    const node_t *fallback_node; /* preemption.fallback_after's value, when HAS_FALLBACK */
    char *retry_when;            /* retries.when, params substituted (owned), when HAS_RWHEN */
    /* templated settings (spec_template.c): the text with params
     * substituted when run-time references remain (then the typed field is
     * unset), the scalar it came from; lit: a literal's substituted text */
    char *tmpl[SPEC_TMPL_N];
    const node_t *tmpl_node[SPEC_TMPL_N];
    char *lit[SPEC_TMPL_N];
} settings_t;

/* ---- the YAML tree (spec_yaml.c) ---- */

/* Free a tree; NULL-safe. */
void node_free(node_t *n);
/* A plain scalar YAML reads as null ("", ~, null). */
bool is_null(const node_t *n);
/* Line and column (1-based) of byte offset off in text. */
void offset_pos(const char *text, size_t len, size_t off, int *line, int *col);
/* True when text holds only blank lines and comments. */
bool blank_text(const char *text, size_t len);
/* qsort order of scalar nodes: by text, then file position. */
int cmp_key(const void *a, const void *b);
/* Parse text into *root (NULL for an empty stream; caller frees with
 * node_free). 0 or -EINVAL with the message in c. */
int load_tree(ctx_t *c, const char *text, size_t len, node_t **root);

/* ---- messages, scalars, step names (spec.c) ---- */

/* A user string made safe for a one-line message (one of four rotating
 * buffers in c: valid until four more calls). */
const char *show(ctx_t *c, const char *s);
/* Record an error "FILE:LINE:COL: reason" (at n, or 1:1 when n is NULL)
 * in c's list and return -EINVAL; the caller goes on with what does not
 * depend on the failed value. A second error at the same position is
 * dropped (it is a consequence of the first). fail_limit: the same, and
 * the walk stops (c->fatal) and spec_parse_limited returns -E2BIG (a
 * droverd limit). */
int fail_at(ctx_t *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int fail(ctx_t *c, const node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int fail_limit(ctx_t *c, const node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "; did you mean 'X'?" for word[0..len) among candidates
 * (NULL-terminated; suggest.h's rule), or "": c->hint, valid until the
 * next call. step_hint: the same over the step names. */
const char *hint(ctx_t *c, const char *word, size_t len, const char *const *candidates);
const char *step_hint(ctx_t *c, const char *word, size_t len);
/* "unknown key 'K' in WHERE (a, b, c); did you mean 'b'?" at key k, over
 * the valid keys (NULL-terminated); always -EINVAL. list: whether to
 * name the valid keys. */
int unknown_key(ctx_t *c, const node_t *k, const char *where, const char *const *keys, bool list);
/* Remember a not-yet-implemented feature at n; the earliest in the file
 * is reported once the spec is otherwise valid. */
void not_impl(ctx_t *c, const node_t *n, const char *what, const char *feature);
/* ASCII classes, whatever the locale. */
bool is_alpha(char ch);
bool is_alnum(char ch);
/* 1-63 of [A-Za-z0-9_.-]: step, pipeline and param names. */
bool valid_name(const char *s);
/* true/yes/on, false/no/off (any case); -EINVAL otherwise. */
int parse_bool(const char *s, bool *out);
/* v is the kind named, or an error naming what (and, for maps, keys). */
int want_str(ctx_t *c, const node_t *v, const char *what);
int want_map(ctx_t *c, const node_t *v, const char *what, const char *keys);
/* A whole number in [min, max] into *out (always written; 0 on error). */
int want_uint(ctx_t *c, const node_t *v, const char *what, uint64_t min, uint64_t max,
              uint64_t *out);
/* A duration (units.h) into *out. */
int want_duration(ctx_t *c, const node_t *v, const char *what, uint64_t *out);
/* The step-name table: for n steps living in steps (filled as parsed);
 * find the step named s[0..n); add step idx (not in the table yet). */
void names_init(ctx_t *c, Drover__StepSpec *const *steps, size_t n);
bool names_find(const ctx_t *c, const char *s, size_t n, size_t *idx);
void names_add(ctx_t *c, size_t idx);

/* Write c's errors into c->err (spec_parse's format). */
void write_errors(ctx_t *c);
/* Free what a step's aux owns (not the aux itself). */
void aux_free(step_aux_t *a);

/* ---- templates (spec_template.c) ---- */

/* Substitute {{params.NAME}} in scalar v into *out (caller frees); other
 * references are checked for form (mode says which may appear) and kept.
 * *kept (may be NULL) counts those kept. expand: EXP_ALL. */
int expand_mode(ctx_t *c, const node_t *v, exp_mode_t mode, char **out, size_t *kept);
int expand(ctx_t *c, const node_t *v, char **out);
/* Setting k written as scalar v into s: 1 when v still holds run-time
 * references after params are substituted (s->tmpl[k] keeps the text; the
 * caller sets only its HAS_* bit), 0 when it is a literal: *lit is v with
 * the substituted text (owned by s), for the caller's usual parse. */
int tmpl_setting(ctx_t *c, const node_t *v, spec_tmpl_key_t k, settings_t *s, node_t *lit);
/* Copy the templated settings of src (the settings a step's value of k
 * came from) into st and a; NULL src: none. */
void tmpl_merge(const settings_t *src, spec_tmpl_key_t k, bool inherited, Drover__StepSpec *st,
                step_aux_t *a);

/* ---- retry rules and run limits (spec_limits.c) ---- */

/* retries.when in scalar x: params substituted into *out (caller frees),
 * a valid `when` expression whose references are all retry-context ones
 * ({{exit_code}} {{reason}} {{signal}} {{attempt}}). 0 or -EINVAL. */
int parse_retry_when(ctx_t *c, const node_t *x, char **out);
/* A step's skip_on_exit_code (one code or a list, each 1-255) into st.
 * 0 or -EINVAL. */
int parse_skip_codes(ctx_t *c, const node_t *v, Drover__StepSpec *st);
/* Whether k is a top-level run limit (parallelism, timeout); if so it is
 * parsed into s and *rc says how (0 or -EINVAL). */
bool parse_run_limit(ctx_t *c, const node_t *k, const node_t *v, spec_t *s, int *rc);

/* ---- inheritable settings (spec_settings.c) ---- */

/* Free n key/value pairs and the array. */
void kvs_free(spec_kv_t *kv, size_t n);
/* Free what s owns and zero it. */
void settings_free(settings_t *s);
/* The keys defaults: may set (and a step may override), NULL-terminated:
 * a new inheritable key is one line here and its parser in parse_setting. */
extern const char *const setting_keys[];
/* k is a key defaults: may set (and a step may override). */
bool is_setting_key(const char *k);
/* One inheritable key k: v into s (the caller checked is_setting_key). */
int parse_setting(ctx_t *c, const node_t *k, const node_t *v, settings_t *s);
/* defaults: v into d. */
int parse_defaults(ctx_t *c, const node_t *v, settings_t *d);
/* Replace key among the first *search entries of a kv list, or append it;
 * takes key and value. Returns the entry's index. */
size_t kv_set(spec_kv_t **kv, size_t *search, size_t *n, char *key, char *value);
/* Count n more bytes against the size of the whole result. */
int charge(ctx_t *c, const node_t *at, size_t n);

/* ---- steps (spec_step.c) ---- */

/* An output or input name (a file name under $DROVER_OUTPUTS or
 * $DROVER_INPUTS): valid_name, not ".", no "..". */
bool valid_file_name(const char *s);
/* A sorted array of the pointers names[0..n) (the caller frees the array,
 * not the names; NULL when n is 0). */
char **sorted_copy(char **names, size_t n);
/* Whether s[0..len) is among the sorted names sorted[0..n). */
bool sorted_has(char *const *sorted, size_t n, const char *s, size_t len);
/* Keys only a step may have, besides the inheritable ones, NULL-terminated:
 * a new step key is one line here and its branch in parse_step. */
extern const char *const step_only_keys[];
/* Keys only a step may have, besides the inheritable ones. */
bool is_step_only_key(const char *k);
/* Fill all[idx] (and aux[idx]) from step map m over defaults d. */
int parse_step(ctx_t *c, const node_t *m, const settings_t *d, Drover__StepSpec **all, size_t idx,
               step_aux_t *aux);

/* ---- trigger, depends, continue_on (spec_trigger.c) ---- */

/* k is one of the step keys spec_trigger.c reads. */
bool is_trigger_key(const char *k);
/* One of those keys (k: v) into step st. */
int parse_trigger_key(ctx_t *c, const node_t *k, const node_t *v, Drover__StepSpec *st,
                      step_aux_t *a);
/* Called by resolve_needs for step i once every needs list is resolved,
 * before the cycle check: add the steps its depends names that its needs
 * do not list, checked as needs are; refuse a trigger without needs. */
int depends_needs(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t i);

/* ---- needs and data flow (spec_flow.c) ---- */

/* Resolve every needs list to indexes and refuse cycles. */
int resolve_needs(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t n);
/* Every input and run-time reference names a step it may read from and
 * an output that step declares. */
int check_flow(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t n);
/* Step i's templated settings with literal items (a list or a range of
 * at most SPEC_MAX_ITEMS), each item expanded and its value checked
 * (spec_template.c; called by check_flow once references are checked). */
int check_tmpl_items(ctx_t *c, Drover__StepSpec **all, step_aux_t *aux, size_t i);

/* ---- reuse: templates, bodies, imports (spec_reuse.c, spec_import.c) ---- */

/* A template (templates: NAME: ...) of the spec or of an imported file. */
typedef struct {
    char *name;         /* as shown and stored: "fit", or "t.fit" when imported */
    const node_t *key;  /* its name under templates: (where it is declared) */
    const node_t *def;  /* its map */
    size_t file;        /* in reuse.f */
    bool is_dag;        /* has steps: */
    bool prepared, bad; /* its header (inputs, outputs) read; bad: in error */
    bool checked;       /* compiled at least once (a use, or the unused check) */
    Drover__TemplateInput **params;
    const node_t **param_at; /* parallel to params: each one's key */
    size_t nparams;
    char **arts; /* declared input artifacts */
    size_t narts;
    char **out_params, **out_arts; /* a DAG template's declared outputs' names */
    size_t n_out_params, n_out_arts;
    const node_t **own; /* a step template's nodes, sorted by address (scope_t) */
    size_t nown;
    uint32_t body; /* k + 1 once its body is queued (bodies[k]) */
} tmpl_t;

/* An imports: entry of a file: templates of file `file` under prefix. */
typedef struct {
    char *prefix;
    size_t file;
    const node_t *at;
} rimport_t;

/* A file templates come from: [0] the spec itself, then the imported. */
typedef struct {
    const char *path; /* c->file, or the path in c->imports */
    char *dir;        /* its directory: imports: paths are relative to it */
    node_t *root;     /* an imported file's tree (owned); NULL for the spec's */
    char *label;      /* prefix of its templates' names: "" or "t." */
    rimport_t *imp;
    size_t nimp;
    size_t *by_name; /* its templates (reuse.t indexes), sorted by bare name */
    size_t ntmpl;
    int state; /* 1 while its imports are being loaded (cycles), 2 loaded */
} rfile_t;

struct reuse {
    tmpl_t *t;
    size_t nt;
    rfile_t *f;
    size_t nf;
    size_t *queue; /* body k is template queue[k]'s */
    size_t nqueue;
    size_t bytes;    /* of imported text, all files */
    size_t compiled; /* step templates' nodes compiled, all uses together */
    size_t cur_file; /* the file whose steps are being read: bare names are its */
};

/* Where {{inputs.params.X}} is being read: a DAG template's body (kept
 * for droverd) or a step template compiled into a using step (subst: the
 * template's own nodes get the using step's values; others are read in
 * the scope up, the using step's). */
typedef struct scope {
    const tmpl_t *t;
    bool subst;
    char **values; /* subst: parallel to t->params */
    const struct scope *up;
} scope_t;

/* The top-level templates: (and imports:, through spec_import.c) of the
 * spec: registered before any step is parsed. 0 or -EINVAL (recorded). */
int reuse_begin(ctx_t *c, const node_t *templates, const node_t *imports, spec_t *s);
/* Step map m has `uses:`: compile it into all[idx] (a step template's body
 * merged in, or a group of a DAG template, its body queued). */
int parse_uses(ctx_t *c, const node_t *m, const settings_t *d, Drover__StepSpec **all, size_t idx,
               step_aux_t *aux);
/* After the pipeline's own steps: compile the queued bodies into s (and
 * check the unused templates of the spec's own file). */
int reuse_finish(ctx_t *c, spec_t *s, const settings_t *d);
/* Free what reuse_begin made; NULL-safe. */
void reuse_free(ctx_t *c);
/* {{inputs.params.NAME}} (r) in scalar v: *value is the value to put in
 * its place (a step template's), or NULL to keep it (a DAG template's,
 * declared). 0 or -EINVAL (recorded). */
int reuse_input_ref(ctx_t *c, const node_t *v, const expr_ref_t *r, const char **value);
/* An input artifact's source "inputs.artifacts.NAME" (src) of in: 1 when
 * it is one (resolved into in, or an error recorded), 0 when not. */
int reuse_group_input(ctx_t *c, const node_t *src, Drover__InputSpec *in);
/* The imports: (node v, maybe NULL) of file fi: each file loaded from
 * c->imports (once), its own imports and templates registered. 0 or
 * -EINVAL (recorded). */
int import_files(ctx_t *c, size_t fi, const node_t *v);
/* Register the templates: map v of file fi. */
int reuse_templates(ctx_t *c, size_t fi, const node_t *v);
/* The path an imports: entry names: dir (of the importing file; "" for
 * none) joined with rel, normalized (spec_import_t). NULL with *why set
 * when it cannot be (absolute, empty). */
char *import_join(const char *dir, const char *rel, const char **why);
/* The directory part of path ("" for none), new. */
char *import_dir(const char *path);

#endif
