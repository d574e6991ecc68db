/* pbjson — see pbjson.h. One walk over a message's field descriptors;
 * the value of each field read at its offset (protobuf-c's layout: a
 * repeated field is a count at quantifier_offset and an array at offset; a
 * oneof member's case number at quantifier_offset). The schema walk
 * follows the same cases, so the two agree by construction. */
#include "pbjson.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

/* How many leading characters all of d's value names share, cut back to
 * just after an underscore (TASK_ of TASK_PENDING..), so that no value's
 * name becomes empty. */
static size_t enum_prefix(const ProtobufCEnumDescriptor *d)
{
    if (d->n_values < 2)
        return 0;
    const char *first = d->values[0].name;
    size_t n = strlen(first);
    for (unsigned i = 1; i < d->n_values; i++) {
        const char *s = d->values[i].name;
        size_t k = 0;
        while (k < n && s[k] == first[k])
            k++;
        n = k;
    }
    while (n > 0 && first[n - 1] != '_')
        n--;
    for (unsigned i = 0; i < d->n_values; i++)
        if (strlen(d->values[i].name) <= n)
            return 0;
    return n;
}

static void enum_json_name(const ProtobufCEnumDescriptor *d, const char *name, char *buf,
                           size_t len)
{
    size_t k = 0;
    for (const char *p = name + enum_prefix(d); *p && k + 1 < len; p++)
        buf[k++] = (char)tolower((unsigned char)*p);
    buf[k] = '\0';
}

const char *pbjson_enum_name(const ProtobufCEnumDescriptor *d, int v, char *buf, size_t len)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (!ev)
        snprintf(buf, len, "%d", v);
    else
        enum_json_name(d, ev->name, buf, len);
    return buf;
}

int pbjson_enum_value(const ProtobufCEnumDescriptor *d, const char *name)
{
    char buf[128];
    for (unsigned i = 0; i < d->n_values; i++) {
        enum_json_name(d, d->values[i].name, buf, sizeof buf);
        if (strcmp(buf, name) == 0)
            return d->values[i].value;
    }
    return -1;
}

static bool is_keyvalue(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE &&
           strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->short_name, "KeyValue") == 0;
}

static json_t *number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* One value of field f at p. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    char name[128];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *)p;
        return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
    }
    case PROTOBUF_C_TYPE_FLOAT:
        return number_or_null(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return number_or_null(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return json_string(pbjson_enum_name(f->descriptor, *(const int *)p, name, sizeof name));
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        json_t *j = json_stringn(s ? s : "", s ? strlen(s) : 0);
        return j ? j : json_string(""); /* not UTF-8: droverd checks names; never expected */
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *hex = xmalloc(b->len * 2 + 1);
        util_hex(b->data, b->len, hex);
        json_t *j = json_stringn(hex, b->len * 2);
        free(hex);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return pbjson_message(*(const ProtobufCMessage *const *)p);
    }
    return json_null();
}

static size_t type_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

json_t *pbjson_message(const ProtobufCMessage *m)
{
    if (!m)
        return json_null();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    json_t *o = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)p;
            if (is_keyvalue(f)) {
                json_t *kv = json_object();
                for (size_t k = 0; k < n; k++) {
                    const Drover__KeyValue *e = ((Drover__KeyValue *const *)arr)[k];
                    json_t *v = json_string(e->value ? e->value : "");
                    json_object_set_new(kv, e->key ? e->key : "", v ? v : json_string(""));
                }
                json_object_set_new(o, f->name, kv);
                continue;
            }
            json_t *a = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(a, value_json(f, arr + k * type_size(f)));
            json_object_set_new(o, f->name, a);
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && !*(const void *const *)p)
            continue;
        json_object_set_new(o, f->name, value_json(f, p));
    }
    return o;
}

/* ---- schemas ---- */

static json_t *ref_to(const char *name)
{
    char *s = xasprintf("#/components/schemas/%s", name);
    json_t *j = json_pack("{s:s}", "$ref", s);
    free(s);
    return j;
}

static json_t *value_schema(const ProtobufCFieldDescriptor *f, json_t *schemas)
{
    char name[128];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_pack("{s:s}", "type", "integer");
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_pack("{s:s,s:i}", "type", "integer", "minimum", 0);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_pack("{s:[s,s]}", "type", "number", "null");
    case PROTOBUF_C_TYPE_BOOL:
        return json_pack("{s:s}", "type", "boolean");
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        json_t *vals = json_array();
        for (unsigned i = 0; i < e->n_values; i++)
            json_array_append_new(
                vals, json_string(pbjson_enum_name(e, e->values[i].value, name, sizeof name)));
        return json_pack("{s:s,s:o}", "type", "string", "enum", vals);
    }
    case PROTOBUF_C_TYPE_STRING:
        return json_pack("{s:s}", "type", "string");
    case PROTOBUF_C_TYPE_BYTES:
        return json_pack("{s:s,s:s}", "type", "string", "pattern", "^([0-9a-f]{2})*$");
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *md = f->descriptor;
        pbjson_schema(md, schemas);
        return ref_to(md->short_name);
    }
    }
    return json_object();
}

void pbjson_schema(const ProtobufCMessageDescriptor *d, json_t *schemas)
{
    if (json_object_get(schemas, d->short_name))
        return;
    json_t *props = json_object(), *required = json_array();
    json_t *s =
        json_pack("{s:s,s:o,s:o}", "type", "object", "properties", props, "required", required);
    json_object_set_new(schemas, d->short_name, s); /* first: recursion stops here */
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED && is_keyvalue(f))
            v = json_pack("{s:s,s:{s:s}}", "type", "object", "additionalProperties", "type",
                          "string");
        else if (f->label == PROTOBUF_C_LABEL_REPEATED)
            v = json_pack("{s:s,s:o}", "type", "array", "items", value_schema(f, schemas));
        else
            v = value_schema(f, schemas);
        json_object_set_new(props, f->name, v);
        if (f->type != PROTOBUF_C_TYPE_MESSAGE && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            json_array_append_new(required, json_string(f->name));
        else if (f->label == PROTOBUF_C_LABEL_REPEATED)
            json_array_append_new(required, json_string(f->name));
    }
}

int pbjson_set_field(ProtobufCMessage *m, const char *name, json_t *v, char *err, size_t errlen)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    char *p;
    if (!f || f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE ||
        f->type == PROTOBUF_C_TYPE_BYTES || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
        snprintf(err, errlen, "unknown member '%s'", name);
        return -1;
    }
    p = (char *)m + f->offset;
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            break;
        *(const char **)p = json_string_value(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        int e = json_is_string(v) ? pbjson_enum_value(f->descriptor, json_string_value(v)) : -1;
        if (e < 0) {
            const ProtobufCEnumDescriptor *d = f->descriptor;
            char one[128];
            strbuf_t list = {0};
            for (unsigned i = 0; i < d->n_values; i++)
                sb_printf(&list, "%s%s", i ? ", " : "",
                          pbjson_enum_name(d, d->values[i].value, one, sizeof one));
            snprintf(err, errlen, "%s: expected one of %s", name, list.buf ? list.buf : "");
            sb_free(&list);
            return -1;
        }
        *(int *)p = e;
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            break;
        *(protobuf_c_boolean *)p = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (n < 0 || n > UINT32_MAX)
            break;
        *(uint32_t *)p = (uint32_t)n;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (n < 0)
            break;
        *(uint64_t *)p = (uint64_t)n;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (!json_is_integer(v))
            break;
        *(int64_t *)p = json_integer_value(v);
        return 0;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (!json_is_integer(v) || n < INT32_MIN || n > INT32_MAX)
            break;
        *(int32_t *)p = (int32_t)n;
        return 0;
    default:
        break;
    }
    snprintf(err, errlen, "%s: expected %s", name,
             f->type == PROTOBUF_C_TYPE_STRING ? "a string"
             : f->type == PROTOBUF_C_TYPE_BOOL ? "true or false"
                                               : "a number in range");
    return -1;
}
