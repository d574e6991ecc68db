/* config — see config.h. Uses libyaml's event parser: a mapping whose
 * values are scalars, except that a value may be a nested sequence or
 * mapping, which is handed to the setting as JSON text (every scalar a
 * JSON string): the one setting that takes a structure (droverd's
 * `pools:`) reads it with jansson, and its flag takes the same JSON. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <yaml.h>

#include "log.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1 << 20)

/* Why the last apply refused its value (config_explain), or "". */
static char config_why[256];

void config_explain(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(config_why, sizeof config_why, fmt, ap);
    va_end(ap);
}

/* apply(key, value, arg) with config_why cleared first. */
static int apply_one(int (*apply)(const char *, const char *, void *), const char *key,
                     const char *value, void *arg)
{
    config_why[0] = '\0';
    return apply(key, value, arg);
}

/* Nested values are bounded: deeper than this is an error at its line. */
#define CONFIG_MAX_DEPTH 16

/* The nested value that starts with event first (a sequence or mapping
 * start), read up to its end, as a JSON tree; NULL with err set. */
static json_t *read_nested(yaml_parser_t *p, const yaml_event_t *first, const char *path, int depth,
                           char *err, size_t errlen)
{
    bool map = first->type == YAML_MAPPING_START_EVENT;
    json_t *out = map ? json_object() : json_array();
    char *key = NULL;
    if (depth > CONFIG_MAX_DEPTH) {
        snprintf(err, errlen, "%s:%zu:%zu: nested more than %d deep", path,
                 first->start_mark.line + 1, first->start_mark.column + 1, CONFIG_MAX_DEPTH);
        json_decref(out);
        return NULL;
    }
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev)) {
            snprintf(err, errlen, "%s:%zu:%zu: not YAML: %s", path, p->problem_mark.line + 1,
                     p->problem_mark.column + 1, p->problem ? p->problem : "?");
            break;
        }
        json_t *v = NULL;
        size_t line = ev.start_mark.line + 1, col = ev.start_mark.column + 1;
        if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            free(key);
            return out;
        } else if (ev.type == YAML_SCALAR_EVENT) {
            const char *text = (const char *)ev.data.scalar.value;
            if (map && !key) {
                key = xstrdup(text);
                yaml_event_delete(&ev);
                continue;
            }
            v = json_string(text);
            if (!v)
                snprintf(err, errlen, "%s:%zu:%zu: not UTF-8", path, line, col);
        } else if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (map && !key)
                snprintf(err, errlen, "%s:%zu:%zu: a key must be a plain value", path, line, col);
            else
                v = read_nested(p, &ev, path, depth + 1, err, errlen);
        } else {
            snprintf(err, errlen, "%s:%zu:%zu: aliases are not allowed here", path, line, col);
        }
        yaml_event_delete(&ev);
        if (!v)
            break;
        if (map) {
            if (json_object_get(out, key)) {
                snprintf(err, errlen, "%s:%zu:%zu: '%s' given twice", path, line, col, key);
                json_decref(v);
                break;
            }
            json_object_set_new(out, key, v);
            free(key);
            key = NULL;
        } else {
            json_array_append_new(out, v);
        }
    }
    free(key);
    json_decref(out);
    return NULL;
}

/* Whether key is one of nested (NULL-terminated; NULL: none). */
static bool takes_nested(const char *key, const char *const *nested)
{
    for (size_t i = 0; nested && nested[i]; i++)
        if (!strcmp(nested[i], key))
            return true;
    return false;
}

int config_load(const char *path, int (*apply)(const char *key, const char *value, void *arg),
                void *arg, char *err, size_t errlen)
{
    return config_load_nested(path, apply, arg, NULL, err, errlen);
}

int config_load_nested(const char *path,
                       int (*apply)(const char *key, const char *value, void *arg), void *arg,
                       const char *const *nested, char *err, size_t errlen)
{
    char *text = NULL, *key = NULL;
    size_t key_line = 0, key_col = 0;
    size_t len = 0;
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = util_read_file(path, CONFIG_MAX_BYTES, &text, &len);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0;
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(err, errlen, "%s:%zu:%zu: not YAML: %s", path, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1, parser.problem ? parser.problem : "?");
            rc = -EINVAL;
            break;
        }
        yaml_event_type_t type = ev.type;
        size_t line = ev.start_mark.line + 1, col = ev.start_mark.column + 1;
        if (type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if ((type == YAML_MAPPING_START_EVENT || type == YAML_SEQUENCE_START_EVENT) && depth == 1 &&
            key && takes_nested(key, nested)) {
            json_t *tree = read_nested(&parser, &ev, path, 1, err, errlen);
            char *json = tree ? json_dumps(tree, JSON_COMPACT) : NULL;
            json_decref(tree);
            rc = json ? apply_one(apply, key, json, arg) : -EINVAL;
            if (rc == -ENOENT)
                snprintf(err, errlen, "%s:%zu:%zu: unknown setting '%s'", path, key_line, key_col,
                         key);
            else if (rc < 0 && json)
                snprintf(err, errlen, "%s:%zu:%zu: bad value for '%s'%s%s", path, line, col, key,
                         config_why[0] ? ": " : "", config_why);
            free(json);
            free(key);
            key = NULL;
        } else if (type == YAML_MAPPING_START_EVENT) {
            if (++depth > 1) {
                snprintf(err, errlen, "%s:%zu:%zu: nested values are not allowed here", path, line,
                         col);
                rc = -EINVAL;
            }
        } else if (type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (type == YAML_SEQUENCE_START_EVENT || type == YAML_ALIAS_EVENT) {
            snprintf(err, errlen, "%s:%zu:%zu: expected a plain value", path, line, col);
            rc = -EINVAL;
        } else if (type == YAML_SCALAR_EVENT) {
            const char *v = (const char *)ev.data.scalar.value;
            if (depth != 1) {
                snprintf(err, errlen, "%s:%zu:%zu: expected 'key: value' lines", path, line, col);
                rc = -EINVAL;
            } else if (!key) {
                key = xstrdup(v);
                key_line = line;
                key_col = col;
                for (char *p = key; *p; p++)
                    if (*p == '_')
                        *p = '-';
            } else {
                rc = apply_one(apply, key, v, arg);
                if (rc == -ENOENT)
                    snprintf(err, errlen, "%s:%zu:%zu: unknown setting '%s'", path, key_line,
                             key_col, key);
                else if (rc < 0)
                    snprintf(err, errlen, "%s:%zu:%zu: bad value '%s' for '%s'%s%s", path, line,
                             col, v, key, config_why[0] ? ": " : "", config_why);
                free(key);
                key = NULL;
            }
        }
        yaml_event_delete(&ev);
        if (rc < 0)
            break;
    }
    free(key);
    yaml_parser_delete(&parser);
    free(text);
    return rc;
}

int config_parse_args(int argc, char **argv, const struct option *longopts,
                      int (*apply)(const char *key, const char *value, void *arg), void *arg,
                      const char *const *nested, void (*usage)(FILE *stream))
{
    char err[512];
    int idx, c;
    while ((c = getopt_long(argc, argv, "hV", longopts, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'V') {
            printf("%s %s\n", log_program_name(), DROVER_VERSION);
            return 0;
        }
        if (c != 0) {
            usage(stderr);
            return 2;
        }
        const char *name = longopts[idx].name;
        if (strcmp(name, "config") == 0) {
            if (config_load_nested(optarg, apply, arg, nested, err, sizeof err) < 0) {
                log_error("config: %s", err);
                return 2;
            }
        } else if (apply_one(apply, name, optarg ? optarg : "true", arg) < 0) {
            log_error("bad value '%s' for --%s%s%s", optarg ? optarg : "", name,
                      config_why[0] ? ": " : "", config_why);
            return 2;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}
