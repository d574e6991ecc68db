/* json — a streaming JSON (or YAML) writer for the CLI's `-o json` and
 * `-o yaml` output.
 *
 * The writer keeps a small stack of open containers so callers never place
 * commas themselves: open an object or array, write keys and values, close
 * it. Output is indented two spaces per level and ends with a newline after
 * the outermost value. Strings are escaped per RFC 8259: quote, backslash
 * and every control character (short escapes where JSON has them, else
 * \u00XX); bytes >= 0x80 pass through untouched, so UTF-8 stays readable.
 * Misuse (a value where a key is due, nesting deeper than JSON_MAX_DEPTH)
 * is a programming error and aborts.
 */
#ifndef DROVER_CLI_JSON_H
#define DROVER_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

typedef struct json json_t;

/* A writer on out (not owned, not closed). Never NULL (aborts on OOM). */
json_t *json_new(FILE *out);

/* The same writer producing block YAML instead (see json.c): one set of
 * calls gives both `-o json` and `-o yaml`. Never NULL. */
json_t *json_new_yaml(FILE *out);

/* Free the writer and NULL the pointer; accepts NULL. Does not flush. */
void json_destroy(json_t **j);

/* Containers. Each begin must be matched by the same kind of end. */
void json_object_begin(json_t *j);
void json_object_end(json_t *j);
void json_array_begin(json_t *j);
void json_array_end(json_t *j);

/* Inside an object: the key of the next value. */
void json_key(json_t *j, const char *key);

/* Values. json_str(NULL) writes null; json_strn writes n bytes (NULs
 * included, as \u0000). */
void json_str(json_t *j, const char *s);
void json_strn(json_t *j, const char *s, size_t n);
void json_int(json_t *j, int64_t v);
void json_uint(json_t *j, uint64_t v);
void json_double(json_t *j, double v); /* finite values only */
void json_bool(json_t *j, bool v);
void json_null(json_t *j);

/* key + value in one call, for the common case inside an object. */
void json_field_str(json_t *j, const char *key, const char *s);
void json_field_int(json_t *j, const char *key, int64_t v);
void json_field_uint(json_t *j, const char *key, uint64_t v);
void json_field_bool(json_t *j, const char *key, bool v);
void json_field_double(json_t *j, const char *key, double v);

/* A point in time ms (epoch milliseconds) as two fields: "NAME_ms": ms and
 * "NAME": its RFC 3339 UTC text, or null when ms is 0 (not yet). */
void json_field_time(json_t *j, const char *name, int64_t ms);

/* End the document (every container must be closed), flush the stream,
 * free the writer and NULL the pointer. Write errors stay on the stream
 * for the caller's ferror(). */
void json_finish(json_t **j);

#endif
