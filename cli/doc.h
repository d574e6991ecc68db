/* doc — the CLI's document writer for `-o json` and `-o yaml`: calls that
 * build a document (jansson underneath, see doc.c) so callers never place
 * commas or indentation themselves: open an object or array, write keys
 * and values, close it. Each outermost value is written when it is
 * complete: JSON indented two spaces per level, keys in the order written,
 * a newline after it. Strings are escaped per RFC 8259 (quote, backslash,
 * control characters: short escapes where JSON has them, else \u00XX);
 * other UTF-8 passes through readable, and bytes that are not UTF-8 become
 * U+FFFD. A key written twice in one object keeps its first place and its
 * last value. Misuse (a value where a key is due, nesting deeper than
 * DOC_MAX_DEPTH) is a programming error and aborts.
 */
#ifndef DROVER_CLI_DOC_H
#define DROVER_CLI_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "drover.pb-c.h"

#define DOC_MAX_DEPTH 32

typedef struct doc doc_t;

/* A writer on out (not owned, not closed). Never NULL (aborts on OOM). */
doc_t *doc_new(FILE *out);

/* The same writer producing block YAML instead (see doc.c): one set of
 * calls gives both `-o json` and `-o yaml`. Never NULL. */
doc_t *doc_new_yaml(FILE *out);

/* Free the writer and NULL the pointer; accepts NULL. Does not flush. */
void doc_destroy(doc_t **j);

/* Containers. Each begin must be matched by the same kind of end. */
void doc_object_begin(doc_t *j);
void doc_object_end(doc_t *j);
void doc_array_begin(doc_t *j);
void doc_array_end(doc_t *j);

/* Inside an object: the key of the next value. */
void doc_key(doc_t *j, const char *key);

/* Values. doc_str(NULL) writes null; doc_strn writes n bytes (NULs
 * included, as \u0000). */
void doc_str(doc_t *j, const char *s);
void doc_strn(doc_t *j, const char *s, size_t n);
void doc_int(doc_t *j, int64_t v);
void doc_uint(doc_t *j, uint64_t v);
void doc_double(doc_t *j, double v); /* finite values only */
void doc_bool(doc_t *j, bool v);
void doc_null(doc_t *j);

/* key + value in one call, for the common case inside an object. */
void doc_field_str(doc_t *j, const char *key, const char *s);
/* An object of string members from key/value pairs (params, labels). */
void doc_kv_object(doc_t *j, Drover__KeyValue *const *kvs, size_t n);
void doc_field_int(doc_t *j, const char *key, int64_t v);
void doc_field_uint(doc_t *j, const char *key, uint64_t v);
void doc_field_bool(doc_t *j, const char *key, bool v);
void doc_field_double(doc_t *j, const char *key, double v);

/* A point in time ms (epoch milliseconds) as two fields: "NAME_ms": ms and
 * "NAME": its RFC 3339 UTC text, or null when ms is 0 (not yet). */
void doc_field_time(doc_t *j, const char *name, int64_t ms);

/* End the document (every container must be closed), flush the stream,
 * free the writer and NULL the pointer. Write errors stay on the stream
 * for the caller's ferror(). */
void doc_finish(doc_t **j);

#endif
