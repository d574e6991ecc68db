/* spec_settings — the keys a step inherits from defaults: (resources,
 * retries, timeout, env, placement, checkpoint, preemption, cache, image).
 *
 * Each parse_* fills a settings_t and sets its HAS_* bit, so parse_step
 * can merge step > defaults > built-ins field by field; env and labels are
 * merged key by key. Where a value was written is kept (env_nodes,
 * spot_node, fallback_node) for later checks and messages. timeout,
 * image, resources.* and retries.limit may be templates: tmpl_setting
 * (spec_template.c) keeps one that still holds run-time references as
 * text, and the usual parse then reads a literal's substituted text.
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <signal.h>
#include <strings.h>

#include "units.h"
#include "util.h"

static bool valid_env_name(const char *s)
{
    if (!is_alpha(*s) && *s != '_')
        return false;
    for (const char *p = s; *p; p++) {
        if (!is_alnum(*p) && *p != '_')
            return false;
    }
    return true;
}

static bool valid_label_key(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SPEC_MAX_LABEL_KEY)
        return false;
    for (const char *p = s; *p; p++) {
        if (!is_alnum(*p) && !strchr("_.-/", *p))
            return false;
    }
    return true;
}

int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* A number >= 1 written in decimal ("2", "1.5", "1e1"). */
static int parse_factor(const char *s, double *out)
{
    if (*s < '0' || *s > '9' || strspn(s, "0123456789.eE+-") != strlen(s))
        return -EINVAL;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || errno || !isfinite(d) || d < 1.0 || d > 1000.0)
        return -EINVAL;
    *out = d;
    return 0;
}

void kvs_free(spec_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void settings_free(settings_t *s)
{
    kvs_free(s->env, s->env_count);
    free(s->env_nodes);
    kvs_free(s->labels, s->label_count);
    free(s->image);
    free(s->retry_when);
    for (int k = 0; k < SPEC_TMPL_N; k++) {
        free(s->tmpl[k]);
        free(s->lit[k]);
    }
    memset(s, 0, sizeof *s);
}

/* The valid keys of each mapping, NULL-terminated (for unknown_key's
 * message and did-you-mean): a new key is one line in its list. */
/* clang-format off */
const char *const setting_keys[] = {
    "retries",
    "timeout",
    "resources",
    "placement",
    "env",
    "checkpoint",
    "preemption",
    "cache",
    "image",
    NULL,
};
static const char *const resources_keys[] = {"cpu", "memory", "gpu", NULL};
static const char *const retries_keys[] = {
    "limit",
    "backoff",
    "factor",
    "max_backoff",
    "when",
    "max_duration",
    NULL,
};
static const char *const placement_keys[] = {"labels", "spot", NULL};
static const char *const checkpoint_keys[] = {"min_interval", "keep", NULL};
static const char *const preemption_keys[] = {
    "signal",
    "grace",
    "max_preemptions",
    "fallback_after",
    NULL,
};
/* clang-format on */

bool is_setting_key(const char *k)
{
    for (size_t i = 0; setting_keys[i]; i++) {
        if (!strcmp(k, setting_keys[i]))
            return true;
    }
    return false;
}

static int parse_resources(ctx_t *c, const node_t *v, settings_t *s)
{
    if (want_map(c, v, "resources", "cpu, memory, gpu") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        uint64_t u;
        /* a template: kept as text (spec_template.c), checked later */
        static const char *const rkeys[] = {"cpu", "memory", "gpu"};
        static const unsigned rbits[] = {HAS_CPU, HAS_MEM, HAS_GPU};
        node_t lit;
        for (int r = 0; r < 3; r++) {
            if (strcmp(k->str, rkeys[r]))
                continue;
            int t = tmpl_setting(c, x, (spec_tmpl_key_t)(SPEC_TMPL_CPU + r), s, &lit);
            if (t < 0)
                return -EINVAL;
            if (t > 0)
                s->has |= rbits[r];
            x = t > 0 ? NULL : &lit;
        }
        if (!x)
            continue;
        const char *txt = x->type == N_SCALAR ? show(c, x->str) : "(not a string)";
        if (!strcmp(k->str, "cpu")) {
            if (x->type != N_SCALAR || spec_parse_cpu(x->str, &s->cpu_milli) < 0)
                return fail(c, x, "bad quantity '%s' for resources.cpu (e.g. 2, 0.5, 500m)", txt);
            s->has |= HAS_CPU;
        } else if (!strcmp(k->str, "memory")) {
            if (x->type != N_SCALAR || spec_parse_memory(x->str, &s->memory_bytes) < 0)
                return fail(c, x, "bad quantity '%s' for resources.memory (e.g. 512Mi, 2Gi, 1G)",
                            txt);
            s->has |= HAS_MEM;
        } else if (!strcmp(k->str, "gpu")) {
            if (x->type != N_SCALAR || spec_parse_uint(x->str, SPEC_MAX_GPUS, &u) < 0)
                return fail(c, x, "bad quantity '%s' for resources.gpu (a whole number 0-%u)", txt,
                            SPEC_MAX_GPUS);
            s->gpus = (uint32_t)u;
            s->has |= HAS_GPU;
        } else {
            return unknown_key(c, k, "resources", resources_keys, true);
        }
    }
    return 0;
}

static int parse_retries(ctx_t *c, const node_t *v, settings_t *s)
{
    uint64_t u;
    node_t lit;
    if (v->type == N_SCALAR && !is_null(v)) {
        int t = tmpl_setting(c, v, SPEC_TMPL_RETRY_LIMIT, s, &lit);
        if (t != 0) {
            s->has |= t > 0 ? HAS_LIMIT : 0;
            return t < 0 ? -EINVAL : 0;
        }
        v = &lit;
        if (want_uint(c, v, "retries", 0, SPEC_MAX_RETRIES, &u) < 0)
            return -EINVAL;
        s->retries.limit = (uint32_t)u;
        s->has |= HAS_LIMIT;
        return 0;
    }
    if (v->type != N_MAP)
        return fail(c, v,
                    "'retries' must be a number or a map (limit, backoff, factor, "
                    "max_backoff, when, max_duration)");
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "limit")) {
            int t = tmpl_setting(c, x, SPEC_TMPL_RETRY_LIMIT, s, &lit);
            if (t < 0)
                return -EINVAL;
            if (t > 0) {
                s->has |= HAS_LIMIT;
                continue;
            }
            if (want_uint(c, &lit, "retries.limit", 0, SPEC_MAX_RETRIES, &u) < 0)
                return -EINVAL;
            s->retries.limit = (uint32_t)u;
            s->has |= HAS_LIMIT;
        } else if (!strcmp(k->str, "backoff")) {
            if (want_duration(c, x, "retries.backoff", &s->retries.backoff_ms) < 0)
                return -EINVAL;
            s->has |= HAS_BACKOFF;
        } else if (!strcmp(k->str, "factor")) {
            if (x->type != N_SCALAR || parse_factor(x->str, &s->retries.factor) < 0)
                return fail(c, x, "'retries.factor' must be a number from 1 to 1000");
            s->has |= HAS_FACTOR;
        } else if (!strcmp(k->str, "max_backoff")) {
            if (want_duration(c, x, "retries.max_backoff", &s->retries.max_backoff_ms) < 0)
                return -EINVAL;
            s->has |= HAS_MAXB;
        } else if (!strcmp(k->str, "when")) {
            free(s->retry_when);
            s->retry_when = NULL;
            if (parse_retry_when(c, x, &s->retry_when) < 0)
                return -EINVAL;
            s->has |= HAS_RWHEN;
        } else if (!strcmp(k->str, "max_duration")) {
            if (want_duration(c, x, "retries.max_duration", &s->retries.max_duration_ms) < 0)
                return -EINVAL;
            if (!s->retries.max_duration_ms)
                return fail(c, x, "'retries.max_duration' must be more than 0");
            s->has |= HAS_RMAXD;
        } else {
            return unknown_key(c, k, "retries", retries_keys, true);
        }
    }
    return 0;
}

/* Append to a kv list whose keys are known to be new. Takes ownership. */
static void kv_append(spec_kv_t **kv, size_t *n, char *key, char *value)
{
    *kv = xrealloc(*kv, (*n + 1) * sizeof **kv);
    (*kv)[*n].key = key;
    (*kv)[*n].value = value;
    (*n)++;
}

/* Replace key among the first *search entries of a kv list, or append it.
 * Takes ownership of key and value. Returns the entry's index. */
size_t kv_set(spec_kv_t **kv, size_t *search, size_t *n, char *key, char *value)
{
    for (size_t i = 0; i < *search; i++) {
        if (!strcmp((*kv)[i].key, key)) {
            free(key);
            free((*kv)[i].value);
            (*kv)[i].value = value;
            return i;
        }
    }
    kv_append(kv, n, key, value);
    return *n - 1;
}

/* Count n more bytes against the size of the whole result. */
int charge(ctx_t *c, const node_t *at, size_t n)
{
    if (n > SPEC_MAX_RESULT - c->result) {
        c->fatal = true; /* each later string would say it again */
        return fail(c, at,
                    "spec is too large: commands, env and labels of all steps exceed %u "
                    "MiB",
                    SPEC_MAX_RESULT / (1024u * 1024u));
    }
    c->result += n;
    return 0;
}

static int parse_env(ctx_t *c, const node_t *v, settings_t *s)
{
    if (v->type != N_MAP)
        return fail(c, v, "'env' must be a map of NAME: value");
    if (map_len(v) > SPEC_MAX_ENV)
        return fail(c, v, "too many env entries (%zu; at most %u)", map_len(v), SPEC_MAX_ENV);
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        char *val = NULL;
        if (!valid_env_name(k->str))
            return fail(c, k,
                        "bad env name '%s' (letters, digits and '_', not starting with a "
                        "digit)",
                        show(c, k->str));
        if (x->type != N_SCALAR || is_null(x))
            return fail(c, x, "env '%s' must be a string (use \"\" for empty)", show(c, k->str));
        if (expand(c, x, &val) < 0)
            return -EINVAL;
        /* keys of one map are unique (checked when it was read) */
        s->env_nodes = xrealloc(s->env_nodes, (s->env_count + 1) * sizeof *s->env_nodes);
        s->env_nodes[s->env_count] = x;
        kv_append(&s->env, &s->env_count, xstrdup(k->str), val);
    }
    return 0;
}

static int parse_placement(ctx_t *c, const node_t *v, settings_t *s)
{
    static const char *spots[] = {"prefer", "avoid", "require", "any"};
    if (want_map(c, v, "placement", "labels, spot") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "labels")) {
            if (x->type != N_MAP)
                return fail(c, x, "'placement.labels' must be a map of key: value");
            if (map_len(x) > c->lim.max_labels)
                return fail_limit(c, x, "too many labels (%zu; at most %zu)", map_len(x),
                                  c->lim.max_labels);
            for (size_t j = 0; j < map_len(x); j++) {
                const node_t *lk = map_key(x, j), *lv = map_val(x, j);
                if (!valid_label_key(lk->str))
                    return fail(c, lk,
                                "bad label key '%s' (letters, digits, '_', '.', '-', "
                                "'/'; at most %u)",
                                show(c, lk->str), SPEC_MAX_LABEL_KEY);
                if (lv->type != N_SCALAR || is_null(lv) || lv->len > SPEC_MAX_LABEL_VAL)
                    return fail(c, lv, "label '%s' must be a string of at most %u bytes",
                                show(c, lk->str), SPEC_MAX_LABEL_VAL);
                kv_append(&s->labels, &s->label_count, xstrdup(lk->str), xstrdup(lv->str));
            }
        } else if (!strcmp(k->str, "spot")) {
            bool ok = false;
            for (size_t j = 0; x->type == N_SCALAR && j < 4; j++)
                ok = ok || !strcmp(x->str, spots[j]);
            if (!ok)
                return fail(c, x, "'placement.spot' must be one of prefer, avoid, require, any");
            for (size_t j = 0; j < 4; j++) {
                if (!strcmp(x->str, spots[j]))
                    s->spot = (Drover__SpotPolicy)(DROVER__SPOT_POLICY__SPOT_PREFER + j);
            }
            s->spot_node = x;
            s->has |= HAS_SPOT;
        } else {
            return unknown_key(c, k, "placement", placement_keys, true);
        }
    }
    return 0;
}

/* checkpoint: true | false | {min_interval, keep}. The whole block
 * replaces the one in defaults. */
static int parse_checkpoint(ctx_t *c, const node_t *v, settings_t *s)
{
    uint64_t u;
    s->has |= HAS_CKPT;
    s->checkpoint = true;
    s->checkpoint_min_interval_ms = 0;
    s->checkpoint_keep = SPEC_DEFAULT_CHECKPOINT_KEEP;
    if (v->type == N_SCALAR && !is_null(v)) {
        if (parse_bool(v->str, &s->checkpoint) < 0)
            return fail(c, v, "'checkpoint' must be true, false or a map (min_interval, keep)");
        return 0;
    }
    if (is_null(v))
        return 0;
    if (want_map(c, v, "checkpoint", "min_interval, keep") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *ck = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(ck->str, "min_interval")) {
            if (want_duration(c, x, "checkpoint.min_interval", &s->checkpoint_min_interval_ms) < 0)
                return -EINVAL;
        } else if (!strcmp(ck->str, "keep")) {
            if (want_uint(c, x, "checkpoint.keep", 1, SPEC_MAX_COUNT, &u) < 0)
                return -EINVAL;
            s->checkpoint_keep = (uint32_t)u;
        } else {
            return unknown_key(c, ck, "checkpoint", checkpoint_keys, true);
        }
    }
    return 0;
}

static int parse_preemption(ctx_t *c, const node_t *v, settings_t *s)
{
    static const char *sigs[] = {"SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGQUIT"};
    static const int signums[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT};
    uint64_t u;
    if (want_map(c, v, "preemption", "signal, grace, max_preemptions, fallback_after") < 0)
        return -EINVAL;
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i), *x = map_val(v, i);
        if (!strcmp(k->str, "signal")) {
            s->preempt_signal = 0;
            for (size_t j = 0; x->type == N_SCALAR && j < sizeof sigs / sizeof sigs[0]; j++) {
                if (!strcmp(x->str, sigs[j]))
                    s->preempt_signal = signums[j];
            }
            if (!s->preempt_signal)
                return fail(c, x,
                            "'preemption.signal' must be one of SIGTERM, SIGINT, SIGUSR1, "
                            "SIGUSR2, SIGHUP, SIGQUIT");
            s->has |= HAS_SIGNAL;
        } else if (!strcmp(k->str, "grace")) {
            if (want_duration(c, x, "preemption.grace", &s->preempt_grace_ms) < 0)
                return -EINVAL;
            s->has |= HAS_GRACE;
        } else if (!strcmp(k->str, "max_preemptions")) {
            if (want_uint(c, x, "preemption.max_preemptions", 0, SPEC_MAX_COUNT, &u) < 0)
                return -EINVAL;
            s->max_preemptions = (uint32_t)u;
            s->has |= HAS_MAXP;
        } else if (!strcmp(k->str, "fallback_after")) {
            if (want_uint(c, x, "preemption.fallback_after", 0, SPEC_MAX_COUNT, &u) < 0)
                return -EINVAL;
            s->fallback_after = (uint32_t)u;
            s->fallback_node = x;
            s->has |= HAS_FALLBACK;
        } else {
            return unknown_key(c, k, "preemption", preemption_keys, true);
        }
    }
    return 0;
}

/* One inheritable key k: v into s. The caller has checked is_setting_key. */
int parse_setting(ctx_t *c, const node_t *k, const node_t *v, settings_t *s)
{
    const char *key = k->str;
    if (!strcmp(key, "resources"))
        return parse_resources(c, v, s);
    if (!strcmp(key, "retries"))
        return parse_retries(c, v, s);
    if (!strcmp(key, "timeout")) {
        node_t lit;
        int t = tmpl_setting(c, v, SPEC_TMPL_TIMEOUT, s, &lit);
        if (t < 0 || (t == 0 && want_duration(c, &lit, "timeout", &s->timeout_ms) < 0))
            return -EINVAL;
        s->has |= HAS_TIMEOUT;
        return 0;
    }
    if (!strcmp(key, "env"))
        return parse_env(c, v, s);
    if (!strcmp(key, "placement"))
        return parse_placement(c, v, s);
    if (!strcmp(key, "checkpoint"))
        return parse_checkpoint(c, v, s);
    if (!strcmp(key, "preemption"))
        return parse_preemption(c, v, s);
    if (!strcmp(key, "image")) {
        free(s->image);
        s->image = NULL;
        node_t lit;
        int t;
        if (want_str(c, v, "image") < 0 || (t = tmpl_setting(c, v, SPEC_TMPL_IMAGE, s, &lit)) < 0)
            return -EINVAL;
        /* a literal: params substituted; a template: "" until droverd expands it */
        s->image = xstrdup(t > 0 ? "" : lit.str);
        return 0;
    }
    /* cache */
    if (v->type != N_SCALAR || parse_bool(v->str, &s->cache) < 0)
        return fail(c, v, "'cache' must be true or false");
    s->has |= HAS_CACHE;
    return 0;
}

/* Every key is checked, whatever failed before it. */
int parse_defaults(ctx_t *c, const node_t *v, settings_t *d)
{
    int rc = 0;
    if (is_null(v))
        return 0;
    if (v->type != N_MAP)
        return fail(c, v,
                    "'defaults' must be a map of step settings (retries, timeout, "
                    "resources, placement, env, checkpoint, preemption, cache)");
    for (size_t i = 0; i < map_len(v); i++) {
        const node_t *k = map_key(v, i);
        if (is_setting_key(k->str)) {
            if (parse_setting(c, k, map_val(v, i), d) < 0)
                rc = -EINVAL;
        } else if (is_step_only_key(k->str)) {
            rc = fail(c, k, "'%s' cannot be set under defaults", k->str);
        } else {
            rc = unknown_key(c, k, "defaults", setting_keys, false);
        }
    }
    return rc;
}
