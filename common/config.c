/* config — see config.h. Uses libyaml's event parser: a mapping of
 * scalars is all we accept, so anything nested is an error at its line. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "log.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1 << 20)

int config_load(const char *path, int (*apply)(const char *key, const char *value, void *arg),
                void *arg, char *err, size_t errlen)
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
        if (type == YAML_MAPPING_START_EVENT) {
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
                rc = apply(key, v, arg);
                if (rc == -ENOENT)
                    snprintf(err, errlen, "%s:%zu:%zu: unknown setting '%s'", path, key_line,
                             key_col, key);
                else if (rc < 0)
                    snprintf(err, errlen, "%s:%zu:%zu: bad value '%s' for '%s'", path, line, col, v,
                             key);
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
                      void (*usage)(FILE *stream))
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
            if (config_load(optarg, apply, arg, err, sizeof err) < 0) {
                log_error("config: %s", err);
                return 2;
            }
        } else if (apply(name, optarg ? optarg : "true", arg) < 0) {
            log_error("bad value '%s' for --%s", optarg ? optarg : "", name);
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
