/* json — see json.h. State is one counter per open container (how many
 * members so far, to place commas and newlines) plus a flag saying a key
 * was just written, so the next value follows ": " on the same line.
 *
 * YAML mode writes the same calls as block YAML: a container's members on
 * their own lines, indented two spaces per level ("key: value", "- item"),
 * except the first member of a container that is an array item, which
 * follows its "- " (compact form); an empty container is "{}" or "[]".
 * Strings are always double-quoted with the JSON escapes, which YAML's
 * double-quoted style shares, so no value can turn into another type;
 * keys are plain when they are identifier-like and not a YAML 1.1 word
 * (yes, no, on, off, ...), else quoted the same way. */
#include "json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fmt.h"
#include "log.h"
#include "util.h"

struct json {
    FILE *out;
    int depth;
    bool yaml;
    bool started;                   /* yaml: something was written */
    bool after_key;                 /* json: ": " written; yaml: "key:" or "-" written */
    bool inline_first;              /* yaml: the open container's first member follows "- " */
    char kind[JSON_MAX_DEPTH];      /* '{' or '[' per open container */
    size_t members[JSON_MAX_DEPTH]; /* values written in it so far */
};

json_t *json_new(FILE *out)
{
    json_t *j = xcalloc(1, sizeof *j);
    j->out = out;
    return j;
}

json_t *json_new_yaml(FILE *out)
{
    json_t *j = json_new(out);
    j->yaml = true;
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

/* The checks both writers make before a value (or key): true when it
 * starts a member of a container (*first: the container's first), false
 * when nothing goes before it (top level, or right after its key: the
 * value's own writer adds what follows "key:"). */
static bool start_member(json_t *j, bool is_key, bool *first)
{
    if (j->after_key) {
        if (is_key)
            misuse("key after key");
        j->after_key = false;
        return false;
    }
    if (j->depth == 0)
        return false;
    char kind = j->kind[j->depth - 1];
    if (kind == '{' && !is_key)
        misuse("value without a key in an object");
    if (kind == '[' && is_key)
        misuse("key inside an array");
    *first = j->members[j->depth - 1]++ == 0;
    return true;
}

/* Everything a value (or key) needs before it. JSON: a comma after an
 * earlier member, a newline and indentation. YAML: a key or an array item
 * starts a member line (or stays inline after "- "), and an item its "-". */
static void before_value(json_t *j, bool is_key)
{
    bool first = false;
    if (!start_member(j, is_key, &first))
        return;
    if (!j->yaml) {
        if (!first)
            fputc(',', j->out);
        indent(j);
        return;
    }
    if (first && j->inline_first)
        fputc(' ', j->out);
    else if (j->started) {
        fputc('\n', j->out);
        for (int i = 1; i < j->depth; i++)
            fputs("  ", j->out);
    }
    j->inline_first = false;
    j->started = true;
    if (j->kind[j->depth - 1] == '[')
        fputc('-', j->out); /* the item's value follows */
}

/* YAML: a scalar's text, after "key:" or "-" (a space first) or alone. */
static void yaml_scalar_prefix(json_t *j)
{
    if (j->depth > 0)
        fputc(' ', j->out);
    j->started = true;
}

/* After a complete value at the outermost level, end the line. */
static void after_value(json_t *j)
{
    if (j->depth == 0)
        fputc('\n', j->out);
}

static void begin(json_t *j, char kind)
{
    bool in_array = j->depth > 0 && j->kind[j->depth - 1] == '[';
    before_value(j, false);
    if (j->depth == JSON_MAX_DEPTH)
        misuse("nesting too deep");
    if (j->yaml)
        j->inline_first = in_array; /* "- key: v" and "- - v" */
    else
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
    if (j->yaml) {
        if (j->members[j->depth] == 0) {
            j->inline_first = false;
            if (j->depth > 0)
                fputc(' ', j->out);
            fputs(kind == '{' ? "{}" : "[]", j->out);
            j->started = true;
        }
        after_value(j);
        return;
    }
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

/* Whether key may be written plain in YAML: identifier-like, not a word
 * a YAML 1.1 reader takes for a bool or null. */
static bool yaml_plain_key(const char *key)
{
    static const char *const words[] = {"y",   "n",    "yes",   "no",   "on",
                                        "off", "true", "false", "null", NULL};
    if (!((*key >= 'a' && *key <= 'z') || (*key >= 'A' && *key <= 'Z') || *key == '_'))
        return false;
    for (const char *p = key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return false;
    for (size_t i = 0; words[i]; i++)
        if (strcasecmp(key, words[i]) == 0)
            return false;
    return true;
}

void json_key(json_t *j, const char *key)
{
    before_value(j, true);
    if (j->yaml && yaml_plain_key(key))
        fputs(key, j->out);
    else
        write_escaped(j->out, key, strlen(key));
    fputs(j->yaml ? ":" : ": ", j->out);
    j->after_key = true;
}

void json_strn(json_t *j, const char *s, size_t n)
{
    before_value(j, false);
    if (j->yaml)
        yaml_scalar_prefix(j);
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
    if (j->yaml)
        yaml_scalar_prefix(j);
    fprintf(j->out, "%" PRId64, v);
    after_value(j);
}

void json_double(json_t *j, double v)
{
    before_value(j, false);
    if (j->yaml)
        yaml_scalar_prefix(j);
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
    if (j->yaml)
        yaml_scalar_prefix(j);
    fprintf(j->out, "%" PRIu64, v);
    after_value(j);
}

void json_bool(json_t *j, bool v)
{
    before_value(j, false);
    if (j->yaml)
        yaml_scalar_prefix(j);
    fputs(v ? "true" : "false", j->out);
    after_value(j);
}

void json_null(json_t *j)
{
    before_value(j, false);
    if (j->yaml)
        yaml_scalar_prefix(j);
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

void json_field_time(json_t *j, const char *name, int64_t ms)
{
    char key[128], buf[FMT_BUF];
    snprintf(key, sizeof key, "%s_ms", name);
    json_field_int(j, key, ms);
    json_key(j, name);
    if (ms > 0)
        json_str(j, fmt_rfc3339(ms, buf));
    else
        json_null(j);
}

void json_finish(json_t **j)
{
    if ((*j)->depth != 0 || (*j)->after_key)
        misuse("unclosed container");
    fflush((*j)->out);
    json_destroy(j);
}
