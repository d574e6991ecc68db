/* json — see json.h. State is one counter per open container (how many
 * members so far, to place commas and newlines) plus a flag saying a key
 * was just written, so the next value follows ": " on the same line. */
#include "json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct json {
    FILE *out;
    int depth;
    bool after_key;
    char kind[JSON_MAX_DEPTH];      /* '{' or '[' per open container */
    size_t members[JSON_MAX_DEPTH]; /* values written in it so far */
};

json_t *json_new(FILE *out)
{
    json_t *j = xcalloc(1, sizeof *j);
    j->out = out;
    return j;
}

void json_destroy(json_t **j)
{
    if (!j || !*j)
        return;
    free(*j);
    *j = NULL;
}

static void misuse(const char *what)
{
    log_error("json writer misuse: %s", what);
    abort();
}

static void indent(json_t *j)
{
    fputc('\n', j->out);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->out);
}

/* Everything a value (or key) needs before it: a comma after an earlier
 * member, a newline and indentation inside a container. */
static void before_value(json_t *j, bool is_key)
{
    if (j->after_key) {
        if (is_key)
            misuse("key after key");
        j->after_key = false;
        return;
    }
    if (j->depth == 0)
        return;
    char kind = j->kind[j->depth - 1];
    if (kind == '{' && !is_key)
        misuse("value without a key in an object");
    if (kind == '[' && is_key)
        misuse("key inside an array");
    if (j->members[j->depth - 1]++ > 0)
        fputc(',', j->out);
    indent(j);
}

/* After a complete value at the outermost level, end the line. */
static void after_value(json_t *j)
{
    if (j->depth == 0)
        fputc('\n', j->out);
}

static void begin(json_t *j, char kind)
{
    before_value(j, false);
    if (j->depth == JSON_MAX_DEPTH)
        misuse("nesting too deep");
    fputc(kind, j->out);
    j->kind[j->depth] = kind;
    j->members[j->depth] = 0;
    j->depth++;
}

static void end(json_t *j, char kind)
{
    if (j->depth == 0 || j->kind[j->depth - 1] != kind || j->after_key)
        misuse("unbalanced end");
    j->depth--;
    if (j->members[j->depth] > 0)
        indent(j);
    fputc(kind == '{' ? '}' : ']', j->out);
    after_value(j);
}

void json_object_begin(json_t *j)
{
    begin(j, '{');
}

void json_object_end(json_t *j)
{
    end(j, '{');
}

void json_array_begin(json_t *j)
{
    begin(j, '[');
}

void json_array_end(json_t *j)
{
    end(j, '[');
}

static void write_escaped(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\b':
            fputs("\\b", out);
            break;
        case '\f':
            fputs("\\f", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(out, "\\u%04x", c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

void json_key(json_t *j, const char *key)
{
    before_value(j, true);
    write_escaped(j->out, key, strlen(key));
    fputs(": ", j->out);
    j->after_key = true;
}

void json_strn(json_t *j, const char *s, size_t n)
{
    before_value(j, false);
    write_escaped(j->out, s, n);
    after_value(j);
}

void json_str(json_t *j, const char *s)
{
    if (!s) {
        json_null(j);
        return;
    }
    json_strn(j, s, strlen(s));
}

void json_int(json_t *j, int64_t v)
{
    before_value(j, false);
    fprintf(j->out, "%" PRId64, v);
    after_value(j);
}

void json_double(json_t *j, double v)
{
    before_value(j, false);
    fprintf(j->out, "%.6g", v);
    after_value(j);
}

void json_field_double(json_t *j, const char *key, double v)
{
    json_key(j, key);
    json_double(j, v);
}

void json_uint(json_t *j, uint64_t v)
{
    before_value(j, false);
    fprintf(j->out, "%" PRIu64, v);
    after_value(j);
}

void json_bool(json_t *j, bool v)
{
    before_value(j, false);
    fputs(v ? "true" : "false", j->out);
    after_value(j);
}

void json_null(json_t *j)
{
    before_value(j, false);
    fputs("null", j->out);
    after_value(j);
}

void json_field_str(json_t *j, const char *key, const char *s)
{
    json_key(j, key);
    json_str(j, s);
}

void json_field_int(json_t *j, const char *key, int64_t v)
{
    json_key(j, key);
    json_int(j, v);
}

void json_field_uint(json_t *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_uint(j, v);
}

void json_field_bool(json_t *j, const char *key, bool v)
{
    json_key(j, key);
    json_bool(j, v);
}

void json_finish(json_t **j)
{
    if ((*j)->depth != 0 || (*j)->after_key)
        misuse("unclosed container");
    fflush((*j)->out);
    json_destroy(j);
}
