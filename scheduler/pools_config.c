/* pools_config — `pools:` in droverd's config (README "Autoscaling node
 * pools") into pool_config_t.
 *
 * The config file hands the nested YAML over as JSON text whose scalars
 * are all strings (config.h); `--pools` takes JSON written by hand, with
 * numbers and booleans. Both are read here with jansson, so every value
 * may be either. Every error names the pool (index and name) and the key,
 * with a did-you-mean for a misspelt key; the whole list is checked
 * (names unique, fallbacks exist and are not the pool itself, min <= max)
 * before droverd starts, so a bad config never reaches the loop.
 */
#include "scheduler.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suggest.h"
#include "units.h"
#include "util.h"

/* A pool's name becomes part of its nodes' names (NAME-xxxxxx, at most
 * 63 characters, what a cloud's instance names allow). */
#define POOL_NAME_MAX   48
#define POOL_MAX_POOLS  64
#define POOL_MAX_NODES  10000
#define POOL_MAX_LABELS 32
#define POOL_MAX_ARGS   64

typedef struct {
    char *err;
    size_t len;
    size_t index;
    const char *pool; /* its name, once known */
} perr_t;

static int fail(perr_t *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(perr_t *e, const char *key, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (e->pool)
        snprintf(e->err, e->len, "pools[%zu] (%s): %s%s%s", e->index, e->pool, key ? key : "",
                 key ? ": " : "", why);
    else
        snprintf(e->err, e->len, "pools[%zu]: %s%s%s", e->index, key ? key : "", key ? ": " : "",
                 why);
    return -EINVAL;
}

/* v as text: a string as it is, a number or boolean as JSON writes it. */
static const char *text_of(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
    else
        return NULL;
    return buf;
}

static int get_uint(perr_t *e, const char *key, const json_t *v, uint32_t max, uint32_t *out)
{
    char buf[64];
    const char *t = text_of(v, buf, sizeof buf);
    char *end;
    if (!t || !*t || *t == '-')
        return fail(e, key, "expected a whole number from 0 to %u", max);
    unsigned long long n = strtoull(t, &end, 10);
    if (*end || n > max)
        return fail(e, key, "'%s' is not a whole number from 0 to %u", t, max);
    *out = (uint32_t)n;
    return 0;
}

static int get_bool(perr_t *e, const char *key, const json_t *v, bool *out)
{
    char buf[64];
    const char *t = text_of(v, buf, sizeof buf);
    if (t && (!strcmp(t, "true") || !strcmp(t, "false"))) {
        *out = t[0] == 't';
        return 0;
    }
    return fail(e, key, "expected true or false");
}

static int get_duration(perr_t *e, const char *key, const json_t *v, uint64_t *out)
{
    char buf[64];
    const char *t = text_of(v, buf, sizeof buf);
    if (!t || spec_parse_duration(t, out) < 0 || *out == 0)
        return fail(e, key, "expected a duration such as 30s, 10m or 1h");
    return 0;
}

/* Check obj's keys against known ('_' read as '-'): an unknown one fails,
 * with the closest known one suggested. */
static int check_keys(perr_t *e, const char *where, const json_t *obj, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char norm[64];
        snprintf(norm, sizeof norm, "%s", k);
        for (char *p = norm; *p; p++)
            if (*p == '_')
                *p = '-';
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = !strcmp(known[i], norm);
        if (!ok) {
            const char *near = suggest_closest(norm, strlen(norm), known);
            char key[96];
            snprintf(key, sizeof key, "%s%s", where, k);
            return near ? fail(e, key, "unknown key (did you mean '%s'?)", near)
                        : fail(e, key, "unknown key");
        }
    }
    return 0;
}

/* obj's value for key, written with '-' or '_'. */
static json_t *get(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (v || !strchr(key, '-'))
        return v;
    char alt[64];
    snprintf(alt, sizeof alt, "%s", key);
    for (char *p = alt; *p; p++)
        if (*p == '-')
            *p = '_';
    return json_object_get(obj, alt);
}

static int parse_node(perr_t *e, const json_t *node, pool_config_t *p)
{
    static const char *const keys[] = {"cpu", "memory", "gpu", "gpus", "labels", NULL};
    char buf[64];
    if (!json_is_object(node))
        return fail(e, "node", "expected a mapping (cpu, memory, gpu, labels)");
    int rc = check_keys(e, "node.", node, keys);
    if (rc < 0)
        return rc;
    const json_t *v = get(node, "cpu");
    const char *t = v ? text_of(v, buf, sizeof buf) : NULL;
    if (!t || spec_parse_cpu(t, &p->cpu_milli) < 0 || p->cpu_milli == 0)
        return fail(e, "node.cpu", v ? "expected cpus such as 4, 0.5 or 500m" : "missing");
    if ((v = get(node, "memory"))) {
        t = text_of(v, buf, sizeof buf);
        if (!t || spec_parse_memory(t, &p->memory_bytes) < 0)
            return fail(e, "node.memory", "expected a size such as 60Gi or 512Mi");
    }
    if ((v = get(node, "gpu") ? get(node, "gpu") : get(node, "gpus")) &&
        (rc = get_uint(e, "node.gpu", v, 64, &p->gpus)) < 0)
        return rc;
    const json_t *labels = get(node, "labels");
    if (labels) {
        if (!json_is_object(labels) || json_object_size(labels) > POOL_MAX_LABELS)
            return fail(e, "node.labels", "expected a mapping of at most %d labels",
                        POOL_MAX_LABELS);
        p->label_keys = xcalloc(json_object_size(labels), sizeof *p->label_keys);
        p->label_values = xcalloc(json_object_size(labels), sizeof *p->label_values);
        const char *k;
        json_object_foreach((json_t *)labels, k, v)
        {
            t = text_of(v, buf, sizeof buf);
            if (!util_valid_name(k, strlen(k), 63, "/") || !t ||
                !util_valid_name(t, strlen(t), 63, "/"))
                return fail(e, "node.labels",
                            "'%s' is not a label (names and values: 1-63 of "
                            "A-Z a-z 0-9 . _ - /)",
                            k);
            p->label_keys[p->n_labels] = xstrdup(k);
            p->label_values[p->n_labels++] = xstrdup(t);
        }
    }
    return 0;
}

static int parse_provider(perr_t *e, const json_t *pr, pool_config_t *p)
{
    static const char *const keys[] = {"command", "args", "timeout", NULL};
    if (!json_is_object(pr))
        return fail(e, "provider", "expected a mapping (command, args, timeout)");
    int rc = check_keys(e, "provider.", pr, keys);
    if (rc < 0)
        return rc;
    const json_t *v = get(pr, "command");
    if (!json_is_string(v) || json_string_value(v)[0] != '/')
        return fail(e, "provider.command",
                    "expected the provider program's absolute path "
                    "(e.g. /usr/lib/drover/providers/local)");
    p->command = xstrdup(json_string_value(v));
    const json_t *args = get(pr, "args");
    if (args) {
        if (!json_is_array(args) || json_array_size(args) > POOL_MAX_ARGS)
            return fail(e, "provider.args", "expected a list of at most %d words", POOL_MAX_ARGS);
        p->args = xcalloc(json_array_size(args) + 1, sizeof *p->args);
        size_t i;
        json_array_foreach(args, i, v)
        {
            char buf[64];
            const char *t = text_of(v, buf, sizeof buf);
            if (!t)
                return fail(e, "provider.args", "item %zu is not a plain value", i);
            p->args[p->n_args++] = xstrdup(t);
        }
    }
    p->call_timeout_ms = 5 * 60 * 1000;
    if ((v = get(pr, "timeout")) &&
        (rc = get_duration(e, "provider.timeout", v, &p->call_timeout_ms)) < 0)
        return rc;
    return 0;
}

static int parse_pool(perr_t *e, const json_t *o, pool_config_t *p)
{
    static const char *const keys[] = {"name", "node",         "spot",     "price",    "min", "max",
                                       "idle", "boot-timeout", "fallback", "provider", NULL};
    if (!json_is_object(o))
        return fail(e, NULL, "expected a mapping (name, node, max, provider, ...)");
    const json_t *v = get(o, "name");
    const char *name = json_is_string(v) ? json_string_value(v) : NULL;
    if (!name || !util_valid_name(name, strlen(name), POOL_NAME_MAX, NULL))
        return fail(e, "name", "%s", name ? "expected 1-48 of A-Z a-z 0-9 . _ -" : "missing");
    p->name = xstrdup(name);
    e->pool = p->name;
    int rc = check_keys(e, "", o, keys);
    if (rc < 0)
        return rc;
    if (!(v = get(o, "node")))
        return fail(e, "node", "missing (the size of each node: cpu, memory, gpu, labels)");
    if ((rc = parse_node(e, v, p)) < 0)
        return rc;
    if ((v = get(o, "spot")) && (rc = get_bool(e, "spot", v, &p->spot)) < 0)
        return rc;
    if ((v = get(o, "price"))) {
        char buf[64], *end;
        const char *t = text_of(v, buf, sizeof buf);
        p->price = t ? strtod(t, &end) : -1;
        if (!t || !*t || *end || !isfinite(p->price) || p->price < 0)
            return fail(e, "price", "expected a cost per node-hour such as 0.45");
    }
    if ((v = get(o, "min")) && (rc = get_uint(e, "min", v, POOL_MAX_NODES, &p->min)) < 0)
        return rc;
    if (!(v = get(o, "max")))
        return fail(e, "max", "missing (the most nodes the pool may have)");
    if ((rc = get_uint(e, "max", v, POOL_MAX_NODES, &p->max)) < 0)
        return rc;
    if (p->max == 0 || p->min > p->max)
        return fail(e, "max", "%u: must be at least 1 and at least min (%u)", p->max, p->min);
    p->idle_ms = p->boot_timeout_ms = 10 * 60 * 1000;
    if ((v = get(o, "idle")) && (rc = get_duration(e, "idle", v, &p->idle_ms)) < 0)
        return rc;
    if ((v = get(o, "boot-timeout")) &&
        (rc = get_duration(e, "boot-timeout", v, &p->boot_timeout_ms)) < 0)
        return rc;
    if ((v = get(o, "fallback"))) {
        if (!json_is_string(v))
            return fail(e, "fallback", "expected the name of another pool");
        p->fallback = xstrdup(json_string_value(v));
    }
    if (!(v = get(o, "provider")))
        return fail(e, "provider",
                    "missing ({command: /usr/lib/drover/providers/..., args: "
                    "[...]})");
    return parse_provider(e, v, p);
}

int pools_config_parse(const char *json, pool_config_t **out, size_t *n, char *err, size_t errlen)
{
    json_error_t jerr;
    perr_t e = {err, errlen, 0, NULL};
    *out = NULL;
    *n = 0;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "pools: not JSON: %s (at character %d)", jerr.text, jerr.position);
        return -EINVAL;
    }
    if (!json_is_array(root) || json_array_size(root) > POOL_MAX_POOLS) {
        snprintf(err, errlen, "pools: expected a list of at most %d pools", POOL_MAX_POOLS);
        json_decref(root);
        return -EINVAL;
    }
    size_t count = json_array_size(root);
    pool_config_t *pools = xcalloc(count ? count : 1, sizeof *pools);
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        e.index = i;
        e.pool = NULL;
        rc = parse_pool(&e, json_array_get(root, i), &pools[i]);
        for (size_t j = 0; j < i && rc == 0; j++)
            if (!strcmp(pools[j].name, pools[i].name))
                rc = fail(&e, "name", "a pool of that name is pools[%zu]", j);
    }
    for (size_t i = 0; i < count && rc == 0; i++) {
        e.index = i;
        e.pool = pools[i].name;
        if (!pools[i].fallback)
            continue;
        bool found = false;
        for (size_t j = 0; j < count; j++)
            found = found || (j != i && !strcmp(pools[j].name, pools[i].fallback));
        if (!found)
            rc = fail(&e, "fallback", "'%s' is %s", pools[i].fallback,
                      strcmp(pools[i].fallback, pools[i].name) ? "no other pool" : "this pool");
    }
    json_decref(root);
    if (rc < 0) {
        pools_config_free(pools, count);
        return rc;
    }
    *out = pools;
    *n = count;
    return 0;
}

void pools_config_free(pool_config_t *pools, size_t n)
{
    for (size_t i = 0; pools && i < n; i++) {
        pool_config_t *p = &pools[i];
        for (size_t j = 0; j < p->n_labels; j++) {
            free(p->label_keys[j]);
            free(p->label_values[j]);
        }
        for (size_t j = 0; j < p->n_args; j++)
            free(p->args[j]);
        free(p->label_keys);
        free(p->label_values);
        free(p->args);
        free(p->name);
        free(p->fallback);
        free(p->command);
    }
    free(pools);
}
