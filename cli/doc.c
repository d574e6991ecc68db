/* doc — see doc.h. The calls build a jansson tree (keys in the order
 * written); each top-level value, once complete, is written out and
 * freed: JSON by jansson (indent 2, insertion order, doubles as %.6g), YAML
 * by a walk of the same tree. The stack holds the open containers and the
 * key waiting for its value, so misuse is caught where it happens.
 *
 * YAML: a container's members on their own lines, indented two spaces per
 * level ("key: value", "- item"), except the first member of a container
 * that is an array item, which follows its "- " (compact form); an empty
 * container is "{}" or "[]". Scalars are written as jansson writes them in
 * JSON: strings double-quoted with the JSON escapes, which YAML's
 * double-quoted style shares (DEL as \u007f: YAML does not take it raw),
 * so no value can turn into another type; keys are plain when they are
 * identifier-like and not a YAML 1.1 word (yes, no, on, off, ...), else
 * quoted the same way. */
#include "doc.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fmt.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

/* Doubles as "%.6g" (jansson adds ".0" to an integral one: those are
 * written as integers, which prints them the same). */
#define JSON_DUMP_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))
#define SCALAR_FLAGS    (JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(6))

struct doc {
    FILE *out;
    bool yaml;
    int depth;
    json_t *open[DOC_MAX_DEPTH]; /* the open containers, outermost first */
    char *key;                   /* the key waiting for its value, or NULL */
};

doc_t *doc_new(FILE *out)
{
    doc_t *j = xcalloc(1, sizeof *j);
    j->out = out;
    return j;
}

doc_t *doc_new_yaml(FILE *out)
{
    doc_t *j = doc_new(out);
    j->yaml = true;
    return j;
}

void doc_destroy(doc_t **j)
{
    if (!j || !*j)
        return;
    for (int i = 0; i < (*j)->depth; i++)
        json_decref((*j)->open[i]); /* each open container's own reference */
    free((*j)->key);
    free(*j);
    *j = NULL;
}

static void misuse(const char *what)
{
    log_error("document writer misuse: %s", what);
    abort();
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

/* JSON text as jansson wrote it, with two changes that keep the output
 * as this writer has always written it: \u escapes in lowercase hex, and
 * DEL as \u007f (YAML does not take it raw). */
static void put_text(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == 0x7f) {
            fputs("\\u007f", out);
        } else if (*p == '\\' && p[1] == 'u' && strlen(p) >= 6) {
            fputs("\\u", out);
            for (int i = 2; i < 6; i++)
                fputc(tolower((unsigned char)p[i]), out);
            p += 5;
        } else {
            fputc(*p, out);
            if (*p == '\\' && p[1]) /* an escape's second character */
                fputc(*++p, out);
        }
    }
}

/* One scalar as JSON text (a string quoted and escaped). */
static void yaml_scalar(FILE *out, const json_t *v)
{
    char *text = json_dumps(v, SCALAR_FLAGS);
    if (!text)
        abort(); /* out of memory (strings are valid UTF-8: see jstring) */
    put_text(out, text);
    free(text);
}

static void yaml_key(FILE *out, const char *key)
{
    if (yaml_plain_key(key)) {
        fputs(key, out);
    } else {
        json_t *k = json_string(key);
        yaml_scalar(out, k);
        json_decref(k);
    }
}

/* Write v, whose "key:" or "-" (depth > 0) is already written. Members of
 * a container at depth d are indented d - 1 levels; inline: v is an array
 * item, so its first member follows the "- ". */
static void yaml_node(FILE *out, const json_t *v, int depth, bool inline_first)
{
    bool obj = json_is_object(v), arr = json_is_array(v);
    size_t n = obj ? json_object_size(v) : arr ? json_array_size(v) : 0;
    if (!obj && !arr) {
        if (depth > 0)
            fputc(' ', out);
        yaml_scalar(out, v);
        return;
    }
    if (n == 0) {
        fputs(depth > 0 ? (obj ? " {}" : " []") : (obj ? "{}" : "[]"), out);
        return;
    }
    const char *key;
    const json_t *member;
    void *it = obj ? json_object_iter((json_t *)v) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && inline_first)
            fputc(' ', out);
        else if (i > 0 || depth > 0) {
            fputc('\n', out);
            for (int k = 0; k < depth; k++)
                fputs("  ", out);
        }
        if (obj) {
            key = json_object_iter_key(it);
            member = json_object_iter_value(it);
            it = json_object_iter_next((json_t *)v, it);
            yaml_key(out, key);
            fputc(':', out);
            yaml_node(out, member, depth + 1, false);
        } else {
            member = json_array_get(v, i);
            fputc('-', out);
            yaml_node(out, member, depth + 1, true);
        }
    }
}

/* A complete top-level value: write it, then free it. */
static void emit(doc_t *j, json_t *v)
{
    if (j->yaml) {
        yaml_node(j->out, v, 0, false);
    } else {
        char *text = json_dumps(v, JSON_DUMP_FLAGS | JSON_ENCODE_ANY);
        if (!text)
            abort(); /* out of memory */
        put_text(j->out, text);
        free(text);
    }
    fputc('\n', j->out);
    json_decref(v);
}

/* Place the new value v (a reference taken) where the writer is: under
 * the waiting key, at the end of the open array, or as a document. */
static void put(doc_t *j, json_t *v)
{
    if (!v)
        abort(); /* out of memory */
    if (j->depth == 0) {
        emit(j, v);
        return;
    }
    json_t *c = j->open[j->depth - 1];
    if (json_is_object(c)) {
        if (!j->key)
            misuse("value without a key in an object");
        json_object_set_new(c, j->key, v);
        free(j->key);
        j->key = NULL;
    } else {
        json_array_append_new(c, v);
    }
}

static void begin(doc_t *j, json_t *c)
{
    if (j->depth == DOC_MAX_DEPTH)
        misuse("nesting too deep");
    if (j->depth > 0)
        put(j, json_incref(c)); /* the parent's reference; open[] keeps this one */
    j->open[j->depth++] = c;
}

static void end(doc_t *j, bool object)
{
    if (j->depth == 0 || json_is_object(j->open[j->depth - 1]) != object || j->key)
        misuse("unbalanced end");
    json_t *c = j->open[--j->depth];
    if (j->depth == 0)
        emit(j, c);
    else
        json_decref(c); /* the parent's reference remains */
}

void doc_object_begin(doc_t *j)
{
    begin(j, json_object());
}

void doc_object_end(doc_t *j)
{
    end(j, true);
}

void doc_array_begin(doc_t *j)
{
    begin(j, json_array());
}

void doc_array_end(doc_t *j)
{
    end(j, false);
}

/* A string value for s[0..n): bytes that are not valid UTF-8 become
 * U+FFFD (JSON text is UTF-8; jansson takes nothing else). */
static json_t *jstring(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    strbuf_t b = {0};
    for (size_t i = 0; i < n;) {
        size_t len = 0;
        for (size_t k = 1; k <= 4 && i + k <= n && !len; k++) {
            json_t *t = json_stringn(s + i, k); /* the shortest valid piece */
            if (t)
                len = k;
            json_decref(t);
        }
        if (len)
            sb_add(&b, s + i, len);
        else
            sb_puts(&b, "\xef\xbf\xbd");
        i += len ? len : 1;
    }
    v = json_stringn(b.buf ? b.buf : "", b.len);
    sb_free(&b);
    return v;
}

void doc_key(doc_t *j, const char *key)
{
    if (j->depth == 0 || !json_is_object(j->open[j->depth - 1]))
        misuse("key outside an object");
    if (j->key)
        misuse("key after key");
    json_t *k = jstring(key, strlen(key)); /* valid UTF-8, as jansson wants keys */
    j->key = xstrdup(json_string_value(k));
    json_decref(k);
}

void doc_strn(doc_t *j, const char *s, size_t n)
{
    put(j, jstring(s, n));
}

void doc_str(doc_t *j, const char *s)
{
    if (!s) {
        doc_null(j);
        return;
    }
    doc_strn(j, s, strlen(s));
}

void doc_int(doc_t *j, int64_t v)
{
    put(j, json_integer((json_int_t)v));
}

void doc_double(doc_t *j, double v)
{
    if (v == floor(v) && fabs(v) < 1e6 && !(v == 0 && signbit(v)))
        put(j, json_integer((json_int_t)v)); /* "%.6g" of it has no '.' either */
    else
        put(j, json_real(v));
}

void doc_field_double(doc_t *j, const char *key, double v)
{
    doc_key(j, key);
    doc_double(j, v);
}

void doc_uint(doc_t *j, uint64_t v)
{
    /* JSON integers here are int64: larger values (none the CLI prints) as
     * the largest. */
    put(j, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

void doc_bool(doc_t *j, bool v)
{
    put(j, json_boolean(v));
}

void doc_null(doc_t *j)
{
    put(j, json_null());
}

void doc_field_str(doc_t *j, const char *key, const char *s)
{
    doc_key(j, key);
    doc_str(j, s);
}

void doc_kv_object(doc_t *j, Drover__KeyValue *const *kvs, size_t n)
{
    doc_object_begin(j);
    for (size_t i = 0; i < n; i++)
        doc_field_str(j, kvs[i]->key, kvs[i]->value);
    doc_object_end(j);
}

void doc_field_int(doc_t *j, const char *key, int64_t v)
{
    doc_key(j, key);
    doc_int(j, v);
}

void doc_field_uint(doc_t *j, const char *key, uint64_t v)
{
    doc_key(j, key);
    doc_uint(j, v);
}

void doc_field_bool(doc_t *j, const char *key, bool v)
{
    doc_key(j, key);
    doc_bool(j, v);
}

void doc_field_time(doc_t *j, const char *name, int64_t ms)
{
    char key[128], buf[FMT_BUF];
    snprintf(key, sizeof key, "%s_ms", name);
    doc_field_int(j, key, ms);
    doc_key(j, name);
    if (ms > 0)
        doc_str(j, fmt_rfc3339(ms, buf));
    else
        doc_null(j);
}

void doc_finish(doc_t **j)
{
    if ((*j)->depth != 0 || (*j)->key)
        misuse("unclosed container");
    fflush((*j)->out);
    doc_destroy(j);
}
