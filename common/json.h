/* json — a small, strict, bounded JSON reader and writer for lists of
 * values (for_each fan-out lists, items of a fan-out).
 *
 * Why it is kept beside jansson (which builds the tree-shaped documents:
 * the OCI config in agent/rt_oci.c, the CLI's -o json/yaml in cli/doc.c):
 * its users want a list or one member as text, from input they do not
 * trust, on paths that run per task: the spec compiler (for_each lists,
 * common/spec.c), droverd's fan-out and item references (scheduler/flow.c
 * and dag.c, once per item), progress lines ($DROVER_PROGRESS, common/
 * progress.c, per line a step writes) and the cloud metadata answers
 * (agent/preempt.c). It builds no tree (memory bounded by the input),
 * bounds nesting, never reads past len, gives byte offsets in its errors,
 * and is fuzzed through fuzz_spec and fuzz_progress; jansson would parse
 * the whole text into a tree and print it back for each value.
 *
 * Reading follows RFC 8259 strictly: one value, whitespace only as space,
 * tab, LF and CR, no comments, no trailing commas, no leading zeros, no
 * NaN or Infinity, strings of valid UTF-8 without raw control characters,
 * \u escapes with surrogate pairs properly paired. Nesting is at most
 * JSON_READ_MAX_DEPTH containers, so recursion is bounded. Errors name the
 * 0-based byte offset of the problem: "offset 17: expected ',' or ']'".
 *
 * Values come back as text: a string as its unescaped UTF-8 value, a
 * number, true, false or null as its literal text, an object or array as
 * its compact re-serialization (no whitespace, strings re-quoted as
 * json_text_quote does, numbers as written). A value that comes back unescaped
 * (a list element or a member read by json_text_member) may not contain
 * \u0000, since the result is a C string; inside a nested container it may.
 *
 * Writing: json_text_quote makes a string literal, json_text_list_of an array.
 * Nothing here keeps state: every function is reentrant. Allocation
 * failure aborts the process (util.h x* functions).
 *
 * Names are json_text_*: jansson owns json_* (json_object_get and
 * json_t among them), and both link into the agent.
 */
#ifndef DROVER_COMMON_JSON_H
#define DROVER_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_READ_MAX_DEPTH 64 /* nested arrays/objects, the outer list included */

/* Parse text[0..len) (need not be NUL-terminated), which must be a JSON
 * array with optional whitespace around it. On success returns 0, *items
 * is a new array of *count new NUL-terminated strings (see the file comment
 * for how each element is written; *items is NULL when *count is 0), to be
 * freed with json_text_list_free. On failure *items is NULL, *count 0, and err
 * (errlen bytes, may be NULL/0) holds one line: -EINVAL "offset N: reason"
 * for anything that is not such a list (a NUL byte in text included),
 * -E2BIG "more than N items" as soon as element max_items + 1 begins
 * (elements are read in order, so an earlier syntax error wins). */
int json_text_list(const char *text, size_t len, size_t max_items, char ***items, size_t *count,
                   char *err, size_t errlen);

/* Whether text[0..len) is exactly one JSON value (any type) with optional
 * whitespace around it, nested at most JSON_READ_MAX_DEPTH deep: 0, or
 * -EINVAL with "offset N: reason" in err. */
int json_text_valid(const char *text, size_t len, char *err, size_t errlen);

/* Free what json_text_list returned. Accepts NULL. */
void json_text_list_free(char **items, size_t count);

/* obj: NUL-terminated JSON text of an object (compact or not). On success
 * returns 0 and *out is a new string (caller frees): the value of member
 * key, written as json_text_list writes an element. -ENOENT when there is
 * no such member; -EINVAL when obj is not exactly one valid JSON object,
 * when key appears more than once (ambiguous), when the value is a string
 * holding \u0000, or on NULL arguments. *out is NULL on every failure. */
int json_text_member(const char *obj, const char *key, char **out);

/* A new JSON string literal for s, quotes included (caller frees): '"' and
 * '\' are backslash-escaped, bytes below 0x20 become \u00XX, everything
 * else is copied. Invalid UTF-8 in s is replaced by U+FFFD, so the result
 * is always valid JSON and json_text_list gives back s when s is valid
 * UTF-8. NULL s gives "null". Never NULL. */
char *json_text_quote(const char *s);

/* A new JSON array text "[v1,v2,...]" of values[0..n) (caller frees):
 * with raw false each value is quoted with json_text_quote; with raw true each
 * value is inserted as it is and must already be JSON text (e.g. elements
 * json_text_list returned for objects and arrays). A NULL value is written
 * as null. values may be NULL when n is 0. Never NULL. */
char *json_text_list_of(char **values, size_t n, bool raw);

#endif
