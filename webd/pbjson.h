/* pbjson — protobuf-c messages as JSON, by their descriptors.
 *
 * The rules (the HTTP API's, README "HTTP API"): field names as in the
 * proto (snake_case); an enum as its value's name lowercased with the
 * enum's common prefix dropped (TASK_SUCCEEDED -> "succeeded",
 * API_ERROR_NOT_FOUND -> "not_found"); repeated KeyValue as a JSON object;
 * bytes as lowercase hex; 64-bit integers as JSON numbers; scalars,
 * strings and enums always present (their defaults included), repeated
 * fields always present (maybe []), sub-messages omitted when unset; of a
 * oneof only the member that is set. pbjson_schema describes exactly that
 * shape as JSON Schema, so webd/openapi.json's components cannot drift
 * (drover-web --print-schemas).
 */
#ifndef DROVER_WEBD_PBJSON_H
#define DROVER_WEBD_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "strbuf.h"

/* m as a new JSON object (the caller owns the reference); NULL m: null. */
json_t *pbjson_message(const ProtobufCMessage *m);

/* Append to out the JSON text of m, byte for byte what
 * json_dumps(pbjson_message(m), JSON_COMPACT | JSON_ENSURE_ASCII) gives,
 * written straight from the descriptors without building a tree (the heavy
 * answers: a run with its tasks, the run list, the event stream). NULL m:
 * "null". Returns 0. Safe from several threads at once. */
int pbjson_write(const ProtobufCMessage *m, strbuf_t *out);

/* Append s as a JSON string, as jansson's JSON_ENSURE_ASCII writes it; s not
 * UTF-8 (or NULL): "" (what pbjson_message gives for such a string). */
void pbjson_write_string(strbuf_t *out, const char *s);

/* The JSON name of enum value v of d ("succeeded"), written into buf; an
 * unknown value gives its number as text. Returns buf. */
const char *pbjson_enum_name(const ProtobufCEnumDescriptor *d, int v, char *buf, size_t len);

/* The value of d whose JSON name is name; -1 when none is. */
int pbjson_enum_value(const ProtobufCEnumDescriptor *d, const char *name);

/* Set m's scalar field `name` (not repeated, not a message, not in a
 * oneof) from JSON v: a string field from a string (the pointer is v's:
 * keep v until m is done with), an enum from its JSON name, numbers from
 * integers in range, bool from true/false. 0, or -1 with why in err (an
 * unknown field, a wrong type). */
int pbjson_set_field(ProtobufCMessage *m, const char *name, json_t *v, char *err, size_t errlen);

/* Add to schemas (an object: name -> JSON Schema) the schema of message
 * type d under its proto name ("RunView") and, recursively, of every
 * message type it contains, referring to them as
 * "#/components/schemas/NAME". */
void pbjson_schema(const ProtobufCMessageDescriptor *d, json_t *schemas);

#endif
