/* flow — what moves between steps: run-time templates, conditions,
 * fan-out lists, outputs and the step cache.
 *
 * Templates that depend on the run ({{steps.S.outputs.params.P}},
 * {{item}}, {{item.KEY}}, {{run.id}}, {{run.name}}, {{run.status}}) were
 * validated at submit time and are expanded here, when a step is about to
 * be decided (its `when`, its fan-out list) or dispatched (argv, env). A
 * fan-out step's output param resolves to the JSON list of its items'
 * values, in item order, skipped items left out — that is how a fan-in
 * collects. A for_each range is stored as three numbers and becomes its
 * decimal strings here.
 *
 * The cache key is a SHA-256 over everything that determines a step's
 * result: pipeline and step name, item, expanded argv and env, input
 * artifact digests and the declared outputs. A SUCCEEDED task's key maps to it in LMDB; a later
 * task with the same key is CACHED and reuses its outputs without any agent.
 *
 * Templated settings (timeout, image, resources, retries.limit) are
 * expanded once, when a task is made READY (flow_settings): the placer and
 * the retry logic read the task's own copy of its step, numbers only. A
 * bad value fails that task for good with a reason naming the key and the
 * value. The expansion depends only on the item and upstream outputs,
 * which are durable, so a restarted droverd expands the same values again
 * for tasks that were READY, ASSIGNED, RUNNING or waiting to retry.
 */
#include "sched_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "digest.h"
#include "expr.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define MAX_EXPANDED (1 << 20)

/* What a reference is resolved for: t's item, t's exit-handler leniency,
 * and the steps and inputs of scope (the group instance whose members are
 * t's fellows; NULL: the run's own steps). Usually scope is t->scope; a
 * group's `with` is resolved in the group's own scope, its outputs in the
 * scope of its members. */
typedef struct {
    sched_t *s;
    task_t *t;
    task_t *scope;
    /* values built for the resolver (owned), kept until the whole
     * expansion or evaluation ends: `a < b` holds both at once */
    char **kept;
    size_t n_kept;
} resolve_ctx_t;

/* Keep v (owned) until ctx_done; returns it. */
static const char *keep(resolve_ctx_t *c, char *v)
{
    c->kept = xrealloc(c->kept, (c->n_kept + 1) * sizeof *c->kept);
    c->kept[c->n_kept++] = v;
    return v;
}

static void ctx_done(resolve_ctx_t *c)
{
    for (size_t i = 0; i < c->n_kept; i++)
        free(c->kept[i]);
    free(c->kept);
    c->kept = NULL;
    c->n_kept = 0;
}

#define CTX(S, T) ((resolve_ctx_t){.s = (S), .t = (T), .scope = (T)->scope})

/* {{run.status}} in an exit handler: how the steps it guards went, the
 * run's own or, in a template's finally, its group's members. */
static const char *main_status_word(const run_t *r, const task_t *scope)
{
    if (r->cancelled)
        return "cancelled";
    if (scope && scope->grp)
        return scope->grp->failed ? "failed" : "succeeded";
    return r->failed ? "failed" : "succeeded";
}

static const char *kv_find(Drover__KeyValue **kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvs[i]->key, key) == 0)
            return kvs[i]->value;
    return NULL;
}

/* {{steps.S.status}}'s word for a task's status: succeeded, failed,
 * skipped, cached, cancelled once it is final; the lower-case state name
 * (e.g. "running") before (only an exit handler can see that). */
static const char *status_word(Drover__TaskStatus st, char *buf, size_t len)
{
    const char *name = util_task_status_name(st);
    size_t i = 0;
    for (; name[i] && i + 1 < len; i++)
        buf[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
    buf[i] = '\0';
    return buf;
}

/* {{steps.S.exit_code}}: the last attempt's exit code; 128+N when signal
 * N ended it; "0" for a CACHED task (an earlier run's success); "" when
 * the step ran no process (skipped, cancelled before it started, or a
 * for_each step, whose items ran). Owned by the caller. */
static char *exit_code_text(const task_t *t)
{
    if (t->status == DROVER__TASK_STATUS__TASK_CACHED)
        return xstrdup("0");
    if (t->n_items || !t->n_attempts)
        return xstrdup("");
    const Drover__AttemptRecord *a = t->attempts[t->n_attempts - 1];
    if (a->status != DROVER__TASK_STATUS__TASK_FAILED &&
        a->status != DROVER__TASK_STATUS__TASK_SUCCEEDED)
        return xstrdup(""); /* still running, or ended without an exit (lost, cancelled) */
    if (a->term_signal)
        return xasprintf("%d", 128 + a->term_signal);
    return xasprintf("%d", a->exit_code);
}

/* Step outcomes: {{steps.S.status}}, {{steps.S.exit_code}},
 * {{steps.S.outputs.result}}. The spec compiler checked S is upstream;
 * they resolve whatever S's outcome (a step run after a failed or skipped
 * one by its trigger rule reads it too). A result is "" when S captured
 * none (it did not run, or was killed before it ended). */
static int resolve_outcome(resolve_ctx_t *c, const expr_ref_t *rf, const char *ref,
                           const char **value, char *err, size_t errlen)
{
    char word[32];
    task_t *src = dag_scope_find(c->t->run, c->scope, rf->a, rf->alen);
    if (!src || src->is_item) {
        snprintf(err, errlen, "{{%s}}: no such step", ref);
        return -EINVAL;
    }
    if (rf->kind == EXPR_REF_STEP_STATUS)
        *value = keep(c, xstrdup(status_word(src->status, word, sizeof word)));
    else if (rf->kind == EXPR_REF_STEP_EXIT)
        *value = keep(c, exit_code_text(src));
    else
        *value = keep(c, xstrdup(src->result ? src->result : ""));
    return 0;
}

/* An instant of a scheduled run as RFC 3339 in its schedule's zone; ""
 * when it has none (a run submitted by hand). */
static const char *run_instant(resolve_ctx_t *c, const run_t *r, int64_t ms)
{
    char buf[64];
    if (!ms)
        return "";
    if (cron_format(ms / 1000, r->rec->timezone, buf, sizeof buf) < 0)
        buf[0] = '\0';
    return keep(c, xstrdup(buf));
}

/* A fact of the run itself (EXPR_REF_RUN; word: after "run." for run.*,
 * else the whole reference): its id and name, and what a schedule or a
 * triggering run gave it (README "Schedules"). */
static int run_fact(resolve_ctx_t *c, const run_t *r, const char *word, const char *ref,
                    const char **value, char *err, size_t errlen)
{
    const Drover__RunRecord *rec = r->rec;
    if (!strcmp(word, "id"))
        *value = rec->id;
    else if (!strcmp(word, "name"))
        *value = rec->name;
    else if (!strcmp(word, "scheduled_at") || !strcmp(word, "interval_end"))
        *value = run_instant(c, r, rec->scheduled_ms);
    else if (!strcmp(word, "interval_start"))
        *value = run_instant(c, r, rec->interval_start_ms);
    else if (!strcmp(word, "schedule.name"))
        *value = rec->schedule ? rec->schedule : "";
    else if (!strcmp(word, "trigger.run_id"))
        *value = rec->trigger_run_id ? rec->trigger_run_id : "";
    else if (!strncmp(word, "trigger.outputs.", 16)) {
        const char *v = kv_find(rec->trigger_outputs, rec->n_trigger_outputs, word + 16);
        if (!v && rec->trigger_run_id && *rec->trigger_run_id) {
            snprintf(err, errlen, "{{%s}}: run %s has no such output", ref, rec->trigger_run_id);
            return -EINVAL;
        }
        *value = v ? v : ""; /* not started by a trigger */
    } else {
        snprintf(err, errlen, "{{%s}}: unknown reference", ref);
        return -EINVAL;
    }
    return 0;
}

/* {{run.duration}}: seconds since the run was submitted, e.g. "12.345". */
static char *run_duration(const run_t *r)
{
    int64_t ms = util_now_ms() - r->rec->created_ms;
    if (ms < 0)
        ms = 0;
    return xasprintf("%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

char *flow_run_failures(const run_t *r)
{
    char **objs = xcalloc(r->n_tasks + 1, sizeof *objs);
    size_t n = 0;
    for (size_t i = 0; i < r->n_tasks; i++) {
        const task_t *t = r->tasks[i];
        if (t->status != DROVER__TASK_STATUS__TASK_FAILED || t->is_item || t->step->is_finally)
            continue;
        char *code = exit_code_text(t);
        char *name = json_text_quote(t->name);
        char *reason = json_text_quote(t->reason ? t->reason : "");
        objs[n++] = xasprintf("{\"name\":%s,\"exit_code\":%s,\"reason\":%s}", name,
                              *code ? code : "null", reason);
        free(code);
        free(name);
        free(reason);
    }
    char *out = json_text_list_of(objs, n, true);
    for (size_t i = 0; i < n; i++)
        free(objs[i]);
    free(objs);
    return out;
}

static int resolve(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    resolve_ctx_t *c = arg;
    task_t *t = c->t;
    run_t *r = t->run;
    expr_ref_t rf = expr_ref_parse(ref, strlen(ref));
    switch (rf.kind) {
    case EXPR_REF_RUN:
        return run_fact(c, r, rf.a, ref, value, err, errlen);
    case EXPR_REF_STATUS:
        *value = main_status_word(r, c->scope);
        return 0;
    case EXPR_REF_INPUTS: {
        const group_t *grp = c->scope ? c->scope->grp : NULL;
        for (uint32_t i = 0; grp && i < grp->n_in_params; i++) {
            const char *k = grp->in_params[i]->key;
            if (strlen(k) == rf.alen && !memcmp(k, rf.a, rf.alen)) {
                *value = grp->in_params[i]->value;
                return 0;
            }
        }
        snprintf(err, errlen, "{{%s}}: %s", ref,
                 grp ? "no such input of the template" : "not inside a template");
        return -EINVAL;
    }
    case EXPR_REF_ITEM:
        if (!t->item_value)
            break;
        if (!rf.alen) {
            *value = t->item_value;
            return 0;
        }
        char *member = NULL;
        if (json_text_member(t->item_value, rf.a, &member) < 0) {
            snprintf(err, errlen, "{{%s}}: item %s has no key '%s'", ref, t->item_value, rf.a);
            return -EINVAL;
        }
        *value = keep(c, member);
        return 0;
    case EXPR_REF_STEP: {
        char *step = xstrndup(rf.a, rf.alen);
        const char *param = rf.b; /* the rest of ref */
        task_t *src = dag_scope_find(r, c->scope, rf.a, rf.alen);
        int rc = 0;
        const char *v = NULL;
        if (!src || src->is_item)
            rc = -ENOENT;
        else if (src->status != DROVER__TASK_STATUS__TASK_SUCCEEDED &&
                 src->status != DROVER__TASK_STATUS__TASK_CACHED) {
            if (t->step->is_finally) {
                *value = ""; /* an exit handler sees empty outputs of steps that did not run */
                free(step);
                return 0;
            }
            snprintf(err, errlen, "{{%s}}: step '%s' is %s", ref, step,
                     util_task_status_name(src->status));
            rc = -EINVAL;
        } else if (!(v = kv_find(src->out_params, src->n_out_params, param))) {
            rc = -ENOENT;
        }
        if (rc == -ENOENT)
            snprintf(err, errlen, "{{%s}}: no such output", ref);
        free(step);
        if (rc < 0)
            return -EINVAL;
        *value = v;
        return 0;
    }
    case EXPR_REF_STEP_STATUS:
    case EXPR_REF_STEP_EXIT:
    case EXPR_REF_STEP_RESULT:
        return resolve_outcome(c, &rf, ref, value, err, errlen);
    case EXPR_REF_FINAL:
        *value = keep(c, rf.a[0] == 'f' ? flow_run_failures(r) : run_duration(r));
        return 0;
    case EXPR_REF_BAD:
    case EXPR_REF_PARAM:
    case EXPR_REF_RETRY: /* retries.when only: limits.c resolves those */
        break;
    }
    snprintf(err, errlen, "{{%s}}: unknown reference", ref);
    return -EINVAL;
}

static int expand_in(resolve_ctx_t *c, const char *text, char **out, char *err, size_t errlen)
{
    int rc = expr_expand(text, resolve, c, MAX_EXPANDED, out, err, errlen);
    ctx_done(c);
    return rc;
}

static int expand(sched_t *s, task_t *t, const char *text, char **out, char *err, size_t errlen)
{
    resolve_ctx_t c = CTX(s, t);
    return expand_in(&c, text, out, err, errlen);
}

int flow_when(sched_t *s, task_t *t, bool *result, char *err, size_t errlen)
{
    resolve_ctx_t c = CTX(s, t);
    int rc = expr_eval(t->step->when, resolve, &c, result, err, errlen);
    ctx_done(&c);
    return rc;
}

#define SHOWN_VALUE 80 /* bytes of one value shown in a skip reason */

/* resolve(), with long values cut for display. */
static int resolve_shown(const char *ref, const char **value, void *arg, char *err, size_t errlen)
{
    resolve_ctx_t *c = arg;
    int rc = resolve(ref, value, c, err, errlen);
    if (rc == 0 && strlen(*value) > SHOWN_VALUE)
        *value = keep(c, xasprintf("%.*s...", SHOWN_VALUE, *value));
    return rc;
}

char *flow_when_shown(sched_t *s, task_t *t)
{
    resolve_ctx_t c = CTX(s, t);
    char err[256], *out = NULL;
    if (expr_expand(t->step->when, resolve_shown, &c, MAX_EXPANDED, &out, err, sizeof err) < 0)
        out = xstrdup(t->step->when); /* a branch not taken may not resolve: the template */
    ctx_done(&c);
    return out;
}

/* A range's items: the decimal strings of range_start, + range_step, ...
 * before range_end. The count was bounded at submit; it is checked again
 * against today's --max-items (droverd may have restarted with less). */
static int range_items(sched_t *s, const Drover__StepSpec *st, char ***items, size_t *n, char *err,
                       size_t errlen)
{
    if (st->range_step == 0) {
        snprintf(err, errlen, "for_each range has a step of 0");
        return -EINVAL;
    }
    uint64_t count = spec_range_count(st->range_start, st->range_end, st->range_step);
    if (count > s->cfg.max_items) {
        s->counters.over_limits++;
        snprintf(err, errlen,
                 "for_each range has %llu items, more than %zu (droverd's --max-items)",
                 (unsigned long long)count, s->cfg.max_items);
        return -E2BIG;
    }
    *items = xcalloc((size_t)count, sizeof **items);
    /* in uint64_t, where wrapping is defined; every value lies in [start, end) */
    uint64_t v = (uint64_t)st->range_start;
    for (size_t i = 0; i < count; i++, v += (uint64_t)st->range_step)
        (*items)[i] = xasprintf("%lld", (long long)(int64_t)v);
    *n = (size_t)count;
    return 0;
}

int flow_items(sched_t *s, task_t *t, char ***items, size_t *n, char *err, size_t errlen)
{
    const Drover__StepSpec *st = t->step;
    if (st->has_range)
        return range_items(s, st, items, n, err, errlen);
    if (!st->items_from || !*st->items_from) {
        *items = xcalloc(st->n_items, sizeof **items);
        for (size_t i = 0; i < st->n_items; i++)
            (*items)[i] = xstrdup(st->items[i]);
        *n = st->n_items;
        return 0;
    }
    char *text = NULL;
    int rc = expand(s, t, st->items_from, &text, err, errlen);
    if (rc == 0) {
        char jerr[256];
        rc = json_text_list(text, strlen(text), s->cfg.max_items, items, n, jerr, sizeof jerr);
        if (rc == -E2BIG) {
            s->counters.over_limits++;
            snprintf(err, errlen, "for_each %s has more than %zu items (droverd's --max-items)",
                     st->items_from, s->cfg.max_items);
        } else if (rc < 0) {
            snprintf(err, errlen, "for_each %s is not a JSON list: %s", st->items_from, jerr);
        }
    }
    free(text);
    return rc;
}

int dag_prepare(sched_t *s, task_t *t)
{
    char err[512];
    if (t->argv)
        return 0;
    char **argv = xcalloc(t->step->n_argv + 1, sizeof *argv);
    Drover__KeyValue **env = xcalloc(t->step->n_env + 1, sizeof *env);
    size_t n_env = 0;
    int rc = 0;
    for (size_t i = 0; i < t->step->n_argv && rc == 0; i++)
        rc = expand(s, t, t->step->argv[i], &argv[i], err, sizeof err);
    for (size_t i = 0; i < t->step->n_env && rc == 0; i++) {
        char *v = NULL;
        rc = expand(s, t, t->step->env[i]->value, &v, err, sizeof err);
        if (rc == 0) {
            env[n_env++] = util_kv_new(t->step->env[i]->key, v);
            free(v);
        }
    }
    if (rc < 0) {
        for (size_t i = 0; i < t->step->n_argv; i++)
            free(argv[i]);
        free(argv);
        util_free_kvs(env, n_env);
        free(t->reason);
        t->reason = xstrdup(err);
        return rc;
    }
    t->argv = argv;
    t->argc = t->step->n_argv;
    t->env = env;
    t->n_env = n_env;
    return 0;
}

void flow_unprepare(task_t *t)
{
    if (!t->argv)
        return;
    for (size_t i = 0; i < t->argc; i++)
        free(t->argv[i]);
    free(t->argv);
    util_free_kvs(t->env, t->n_env);
    t->argv = NULL;
    t->env = NULL;
    t->argc = t->n_env = 0;
}

/* ------------------------------------------------------------ artifacts */

/* The artifact in names among the steps and inputs of scope (NULL: the
 * run's own steps): a step's output, or (from_group_input) the group's
 * input of that name, which its using step took from its own scope. */
static const Drover__Artifact *scope_artifact(const run_t *r, const task_t *scope,
                                              const Drover__InputSpec *in)
{
    if (in->from_group_input) {
        for (size_t k = 0; scope && k < scope->step->n_inputs; k++)
            if (!strcmp(scope->step->inputs[k]->local, in->artifact))
                return scope_artifact(r, scope->scope, scope->step->inputs[k]);
        return NULL;
    }
    const task_t *src = dag_member(r, scope, in->step);
    for (size_t i = 0; src && i < src->n_outputs; i++)
        if (strcmp(src->outputs[i]->name, in->artifact) == 0)
            return src->outputs[i];
    return NULL;
}

/* The upstream artifact an input names, or NULL. */
const Drover__Artifact *flow_input_artifact(const task_t *t, const Drover__InputSpec *in)
{
    return scope_artifact(t->run, t->scope, in);
}

static void hash_str(digest_ctx_t *c, const char *s)
{
    uint64_t n = strlen(s);
    digest_update(c, &n, sizeof n);
    digest_update(c, s, n);
}

void flow_cache_key(const task_t *t, uint8_t key[DIGEST_LEN])
{
    digest_ctx_t *c = digest_begin();
    /* The pipeline and step names are part of the key: identical commands
     * in two different steps are not interchangeable to a user. */
    hash_str(c, "drover-cache-v1");
    hash_str(c, t->run->rec->name);
    hash_str(c, t->step->name);
    hash_str(c, t->item_value ? t->item_value : "");
    /* inside groups: which group (and item) it ran in, outermost last */
    for (const task_t *sc = t->scope; sc; sc = sc->scope) {
        hash_str(c, "group");
        hash_str(c, sc->step->name);
        hash_str(c, sc->item_value ? sc->item_value : "");
    }
    hash_str(c, t->step->image ? t->step->image : "");
    for (size_t i = 0; i < t->argc; i++)
        hash_str(c, t->argv[i]);
    hash_str(c, "env");
    for (size_t i = 0; i < t->n_env; i++) {
        hash_str(c, t->env[i]->key);
        hash_str(c, t->env[i]->value);
    }
    hash_str(c, "inputs");
    for (size_t i = 0; i < t->step->n_inputs; i++) {
        const Drover__Artifact *a = flow_input_artifact(t, t->step->inputs[i]);
        hash_str(c, t->step->inputs[i]->local);
        if (a)
            digest_update(c, a->digest.data, a->digest.len);
    }
    hash_str(c, "outputs");
    for (size_t i = 0; i < t->step->n_out_artifacts; i++)
        hash_str(c, t->step->out_artifacts[i]);
    hash_str(c, "params");
    for (size_t i = 0; i < t->step->n_out_params; i++)
        hash_str(c, t->step->out_params[i]);
    digest_final(c, key);
}

void flow_set_outputs(sched_t *s, task_t *t, Drover__Artifact **arts, size_t n_arts,
                      Drover__KeyValue **params, size_t n_params)
{
    for (size_t i = 0; i < t->n_outputs; i++) { /* an earlier attempt's, if any */
        blobstore_ref_artifact(s, t->outputs[i], -1);
        drover__artifact__free_unpacked(t->outputs[i], NULL);
    }
    free(t->outputs);
    util_free_kvs(t->out_params, t->n_out_params);
    t->outputs = n_arts ? xcalloc(n_arts, sizeof *t->outputs) : NULL; /* most have none */
    for (size_t i = 0; i < n_arts; i++) {
        t->outputs[i] = util_pb_copy(arts[i]);
        blobstore_ref_artifact(s, t->outputs[i], +1);
    }
    t->n_outputs = n_arts;
    t->out_params = n_params ? xcalloc(n_params, sizeof *t->out_params) : NULL;
    for (size_t i = 0; i < n_params; i++)
        t->out_params[i] = util_kv_new(params[i]->key, params[i]->value);
    t->n_out_params = n_params;
}

int flow_check_artifact(sched_t *s, const Drover__Artifact *art, char *err, size_t errlen)
{
    /* A single file is exactly one entry, whose digest is the artifact's. */
    if (!art->is_dir &&
        (art->n_files != 1 || art->digest.len != 32 || art->files[0]->digest.len != 32 ||
         memcmp(art->digest.data, art->files[0]->digest.data, 32) != 0)) {
        snprintf(err, errlen, "artifact '%s': a file artifact must list exactly its one file",
                 art->name);
        return -EINVAL;
    }
    for (size_t k = 0; k < art->n_files; k++) {
        if (art->files[k]->digest.len != 32 || !blobstore_exists(s, art->files[k]->digest.data)) {
            snprintf(err, errlen, "artifact '%s': a file was not uploaded", art->name);
            return -EINVAL;
        }
    }
    return 0;
}

int flow_check_outputs(sched_t *s, const task_t *t, const Drover__Report *rep, char *err,
                       size_t errlen)
{
    const Drover__StepSpec *st = t->step;
    for (size_t i = 0; i < st->n_out_artifacts; i++) {
        const Drover__Artifact *found = NULL;
        for (size_t j = 0; j < rep->n_outputs && !found; j++)
            if (strcmp(rep->outputs[j]->name, st->out_artifacts[i]) == 0)
                found = rep->outputs[j];
        if (!found) {
            snprintf(err, errlen, "declared output artifact '%s' was not produced",
                     st->out_artifacts[i]);
            return -EINVAL;
        }
        if (flow_check_artifact(s, found, err, errlen) < 0)
            return -EINVAL;
    }
    for (size_t i = 0; i < st->n_out_params; i++)
        if (!kv_find(rep->out_params, rep->n_out_params, st->out_params[i])) {
            snprintf(err, errlen, "declared output param '%s' was not written", st->out_params[i]);
            return -EINVAL;
        }
    return 0;
}

/* ------------------------------------------------------------ fan-in */

/* A fan-out step's outputs: each param is the JSON list of its items'
 * values; each artifact a directory with item i's files under "i/". */
void flow_collect_items(sched_t *s, task_t *g)
{
    run_t *r = g->run;
    const Drover__StepSpec *st = g->step;
    Drover__KeyValue **params = xcalloc(st->n_out_params, sizeof *params);
    char **values = xcalloc(g->n_items + 1, sizeof *values);
    for (size_t p = 0; p < st->n_out_params; p++) {
        size_t n = 0;
        for (size_t i = 0; i < g->n_items; i++) {
            const task_t *it = r->tasks[g->items[i]];
            if (it->status == DROVER__TASK_STATUS__TASK_SKIPPED)
                continue; /* a skipped item adds nothing to the list */
            const char *v = kv_find(it->out_params, it->n_out_params, st->out_params[p]);
            values[n++] = (char *)(v ? v : "");
        }
        char *list = json_text_list_of(values, n, false);
        params[p] = util_kv_new(st->out_params[p], list);
        free(list);
    }
    free(values);
    Drover__Artifact **arts = xcalloc(st->n_out_artifacts, sizeof *arts);
    for (size_t a = 0; a < st->n_out_artifacts; a++) {
        Drover__Artifact *m = xmalloc(sizeof *m);
        drover__artifact__init(m);
        m->name = xstrdup(st->out_artifacts[a]);
        m->is_dir = true;
        for (size_t i = 0; i < g->n_items; i++) {
            const task_t *it = r->tasks[g->items[i]];
            for (size_t k = 0; k < it->n_outputs; k++) {
                const Drover__Artifact *ia = it->outputs[k];
                if (strcmp(ia->name, m->name) != 0)
                    continue;
                m->files = xrealloc(m->files, (m->n_files + ia->n_files) * sizeof *m->files);
                for (size_t f = 0; f < ia->n_files; f++) {
                    Drover__FileEntry *e = xmalloc(sizeof *e);
                    drover__file_entry__init(e);
                    e->path = ia->files[f]->path[0] ? xasprintf("%zu/%s", i, ia->files[f]->path)
                                                    : xasprintf("%zu/%s", i, ia->name);
                    e->mode = ia->files[f]->mode;
                    e->size = ia->files[f]->size;
                    e->digest.len = ia->files[f]->digest.len;
                    e->digest.data = xmalloc(e->digest.len);
                    memcpy(e->digest.data, ia->files[f]->digest.data, e->digest.len);
                    m->size += e->size;
                    m->files[m->n_files++] = e;
                }
            }
        }
        size_t n = drover__artifact__get_packed_size(m);
        uint8_t *buf = xmalloc(n);
        drover__artifact__pack(m, buf);
        m->digest.data = xmalloc(32);
        m->digest.len = 32;
        digest_buffer(buf, n, m->digest.data);
        free(buf);
        arts[a] = m;
    }
    flow_set_outputs(s, g, arts, st->n_out_artifacts, params, st->n_out_params);
    for (size_t a = 0; a < st->n_out_artifacts; a++)
        drover__artifact__free_unpacked(arts[a], NULL);
    free(arts);
    util_free_kvs(params, st->n_out_params);
}

/* ------------------------------------------------------------ templated settings */

int flow_settings(sched_t *s, task_t *t, char *err, size_t errlen)
{
    const Drover__StepSpec *st = t->step;
    if (t->own_step || !spec_has_tmpl(st) || (st->fan_out && !t->is_item))
        return 0;
    Drover__StepSpec *o = xmalloc(sizeof *o);
    *o = *st; /* shallow: only the fields below are o's own */
    o->resources = xmalloc(sizeof *o->resources);
    if (st->resources) {
        *o->resources = *st->resources;
    } else {
        drover__resources__init(o->resources);
    }
    o->retries = xmalloc(sizeof *o->retries);
    if (st->retries) {
        *o->retries = *st->retries;
    } else {
        drover__retry_policy__init(o->retries);
    }
    o->image = NULL;
    char *image = NULL;
    int rc = 0;
    for (int k = 0; k < SPEC_TMPL_N && rc == 0; k++) {
        const char *text = spec_tmpl_text(st, (spec_tmpl_key_t)k);
        char *value = NULL, want[128];
        uint64_t num = 0;
        if (!text)
            continue;
        if ((rc = expand(s, t, text, &value, err, errlen)) < 0) {
            char *why = xasprintf("%s: %s", spec_tmpl_key_name((spec_tmpl_key_t)k), err);
            snprintf(err, errlen, "%s", why);
            free(why);
            break;
        }
        if ((rc = spec_tmpl_value((spec_tmpl_key_t)k, value, &num, want, sizeof want)) < 0) {
            snprintf(err, errlen, "%s: %s gave '%.128s', not %s",
                     spec_tmpl_key_name((spec_tmpl_key_t)k), text, value, want);
            free(value);
            break;
        }
        switch ((spec_tmpl_key_t)k) {
        case SPEC_TMPL_TIMEOUT:
            o->timeout_ms = num;
            break;
        case SPEC_TMPL_IMAGE:
            image = value;
            value = NULL;
            break;
        case SPEC_TMPL_CPU:
            o->resources->cpu_milli = (uint32_t)num;
            break;
        case SPEC_TMPL_MEMORY:
            o->resources->memory_bytes = num;
            break;
        case SPEC_TMPL_GPU:
            o->resources->gpus = (uint32_t)num;
            break;
        case SPEC_TMPL_RETRY_LIMIT:
            o->retries->limit = (uint32_t)num;
            break;
        case SPEC_TMPL_N:
            break;
        }
        free(value);
    }
    if (rc < 0) {
        free(image);
        free(o->resources);
        free(o->retries);
        free(o);
        return -EINVAL;
    }
    o->image = image ? image : xstrdup(st->image ? st->image : ""); /* o's own */
    t->own_step = o;
    t->step = o;
    return 0;
}

void flow_settings_free(task_t *t)
{
    Drover__StepSpec *o = t->own_step;
    if (!o)
        return;
    t->step = t->run->steps->steps[t->step_index];
    free(o->image);
    free(o->resources);
    free(o->retries);
    free(o);
    t->own_step = NULL;
}

/* ------------------------------------------------------------ groups */

static const Drover__TemplateBody *group_body(const task_t *g)
{
    const Drover__RunSteps *st = g->run->steps;
    uint32_t k = g->step->uses_body;
    return k && k <= st->n_bodies ? st->bodies[k - 1] : NULL;
}

int flow_group_inputs(sched_t *s, task_t *g, Drover__KeyValue ***out, size_t *n, char *err,
                      size_t errlen)
{
    const Drover__TemplateBody *b = group_body(g);
    const Drover__StepSpec *st = g->step;
    resolve_ctx_t c = CTX(s, g); /* {{item}} is g's, steps and inputs its scope's */
    Drover__KeyValue **kvs = xcalloc(st->n_with + 1, sizeof *kvs);
    size_t k = 0;
    int rc = 0;
    *out = NULL;
    *n = 0;
    for (; k < st->n_with && rc == 0; k++) {
        const Drover__KeyValue *w = st->with[k];
        char *value = NULL, e[384], want[96];
        if (expand_in(&c, w->value, &value, e, sizeof e) < 0) {
            snprintf(err, errlen, "input '%s': %s", w->key, e);
            rc = -EINVAL;
            break;
        }
        const char *type = "";
        for (size_t i = 0; b && i < b->n_in_params; i++)
            if (!strcmp(b->in_params[i]->name, w->key))
                type = b->in_params[i]->type;
        if (spec_input_check(type, value, want, sizeof want) < 0) {
            snprintf(err, errlen, "input '%s' of template '%s': %s gave '%.80s', not %s", w->key,
                     b ? b->name : "?", w->value, value, want);
            free(value);
            rc = -EINVAL;
            break;
        }
        kvs[k] = util_kv_new(w->key, value);
        free(value);
    }
    if (rc < 0) {
        util_free_kvs(kvs, k);
        return rc;
    }
    *out = kvs;
    *n = k;
    return 0;
}

void flow_group_outputs(sched_t *s, task_t *g)
{
    const Drover__TemplateBody *b = group_body(g);
    if (!b)
        return;
    resolve_ctx_t c = {.s = s, .t = g, .scope = g}; /* the members' scope */
    Drover__KeyValue **params = xcalloc(b->n_out_params + 1, sizeof *params);
    Drover__Artifact **arts = xcalloc(b->n_out_artifacts + 1, sizeof *arts);
    size_t np = 0, na = 0;
    for (size_t i = 0; i < b->n_out_params; i++) {
        char *value = NULL, e[256];
        if (expand_in(&c, b->out_params[i]->value, &value, e, sizeof e) < 0) {
            log_debug("%s/%s: output param '%s' left out: %s", g->run->rec->id, g->name,
                      b->out_params[i]->key, e);
            continue; /* its source did not succeed: a reader gets "no such output" */
        }
        params[np++] = util_kv_new(b->out_params[i]->key, value);
        free(value);
    }
    for (size_t i = 0; i < b->n_out_artifacts; i++) {
        const Drover__Artifact *a = scope_artifact(g->run, g, b->out_artifacts[i]);
        if (!a)
            continue;
        Drover__Artifact *copy = util_pb_copy(a);
        free(copy->name);
        copy->name = xstrdup(b->out_artifacts[i]->local);
        arts[na++] = copy;
    }
    flow_set_outputs(s, g, arts, na, params, np);
    for (size_t i = 0; i < na; i++)
        drover__artifact__free_unpacked(arts[i], NULL);
    free(arts);
    util_free_kvs(params, np);
}
