/* pbjson — see pbjson.h. One walk over a message's field descriptors;
 * the value of each field read at its offset (protobuf-c's layout: a
 * repeated field is a count at quantifier_offset and an array at offset; a
 * oneof member's case number at quantifier_offset). The schema walk
 * follows the same cases, so the two agree by construction. */
#include "pbjson.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
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

/* ---- the writer: pbjson_message + json_dumps without the tree ----
 *
 * Each rule below is jansson 2.14's (dump.c, strconv.c, utf.c), so that
 * the text is the same byte for byte (tests/unit/test_webd.c compares the
 * two over hostile and random messages): strings checked as UTF-8 the way
 * json_stringn does (a string that fails is "" here, as pbjson_message
 * makes it), escaped as dump_string does with JSON_ENSURE_ASCII; reals as
 * "%.17g" with ".0" added when neither '.' nor 'e' is there and the
 * exponent's '+' and leading zeros dropped; a KeyValue list as an object
 * whose duplicate keys keep the first's place and the last's value (what
 * json_object_set_new does), a key that is not UTF-8 left out. */

/* The length of the UTF-8 sequence at s[0..n), as jansson's utf8_check_*
 * accept it (no overlongs, no surrogates, nothing past U+10FFFF), with its
 * code point in *cp; 0 when it is not one. */
static size_t utf8_one(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c <= 0xC1)
        return 0;
    if (c <= 0xDF)
        len = 2, v = c & 0x1F;
    else if (c <= 0xEF)
        len = 3, v = c & 0x0F;
    else if (c <= 0xF4)
        len = 4, v = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (len == 2 && v < 0x80) ||
        (len == 3 && v < 0x800) || (len == 4 && v < 0x10000))
        return 0;
    *cp = v;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    uint32_t cp = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_one((const unsigned char *)s + i, n - i, &cp);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

/* s[0..n), known to be UTF-8, as a JSON string. */
static void write_valid_string(strbuf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    sb_putc(out, '"');
    size_t run = 0; /* start of the bytes not yet written */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        sb_add(out, s + run, i - run);
        uint32_t cp = 0; /* s is valid UTF-8: utf8_one sets it */
        size_t k = utf8_one((const unsigned char *)s + i, n - i, &cp);
        char esc[12];
        switch (cp) {
        case '\\':
            sb_add(out, "\\\\", 2);
            break;
        case '"':
            sb_add(out, "\\\"", 2);
            break;
        case '\b':
            sb_add(out, "\\b", 2);
            break;
        case '\f':
            sb_add(out, "\\f", 2);
            break;
        case '\n':
            sb_add(out, "\\n", 2);
            break;
        case '\r':
            sb_add(out, "\\r", 2);
            break;
        case '\t':
            sb_add(out, "\\t", 2);
            break;
        default: {
            uint32_t units[2] = {cp, 0};
            int nu = 1;
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                units[0] = 0xD800 | (v >> 10), units[1] = 0xDC00 | (v & 0x3FF), nu = 2;
            }
            for (int u = 0; u < nu; u++) {
                esc[0] = '\\', esc[1] = 'u';
                for (int d = 0; d < 4; d++)
                    esc[2 + d] = hex[(units[u] >> (12 - 4 * d)) & 0xF];
                sb_add(out, esc, 6);
            }
        }
        }
        i += k;
        run = i;
    }
    sb_add(out, s + run, n - run);
    sb_putc(out, '"');
}

void pbjson_write_string(strbuf_t *out, const char *s)
{
    size_t n = 0;
    bool ascii = true;
    if (!s)
        s = "";
    for (; s[n]; n++)
        ascii &= (unsigned char)s[n] < 0x80;
    if (!ascii && !utf8_valid(s, n))
        s = "", n = 0;
    write_valid_string(out, s, n);
}

/* v in decimal at the end of buf[0..24), returning where it starts (what
 * "%lld" gives, without printf's cost: a run has thousands of numbers). */
static char *int_text(long long v, char *end)
{
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *p = end;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return p;
}

static void write_int(strbuf_t *out, long long v)
{
    char buf[24];
    char *p = int_text(v, buf + sizeof buf);
    sb_add(out, p, (size_t)(buf + sizeof buf - p));
}

static void write_real(strbuf_t *out, double v)
{
    if (!isfinite(v)) {
        sb_add(out, "null", 4);
        return;
    }
    char buf[64];
    if (fabs(v) < 1e15 && v == (double)(long long)v) {
        /* a whole number below 1e15: "%.17g" writes its digits (no
         * exponent below 1e17), then ".0"; -0 keeps its sign */
        char *end = buf + 30, *p = int_text((long long)v, end);
        if (v == 0 && signbit(v))
            *--p = '-';
        memcpy(end, ".0", 2);
        sb_add(out, p, (size_t)(end + 2 - p));
        return;
    }
    int n = snprintf(buf, sizeof buf, "%.17g", v);
    size_t len = (size_t)n;
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        buf[len++] = '.';
        buf[len++] = '0';
        buf[len] = '\0';
    }
    char *start = strchr(buf, 'e');
    if (start) {
        start++;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - buf));
            len -= (size_t)(end - start);
        }
    }
    sb_add(out, buf, len);
}

/* enum_prefix of d, computed once per descriptor: a small table keyed by
 * the descriptor's address, filled with compare-and-swap so that handler
 * threads may share it (a slot's prefix is stored plus one, 0 meaning not
 * yet: whoever finds 0 computes it, which gives the same number). */
#define PREFIX_SLOTS 64
static struct {
    _Atomic(const ProtobufCEnumDescriptor *) d;
    _Atomic size_t n1;
} prefix_cache[PREFIX_SLOTS];

static size_t enum_prefix_cached(const ProtobufCEnumDescriptor *d)
{
    size_t h = ((uintptr_t)d >> 4) % PREFIX_SLOTS;
    for (size_t probe = 0; probe < PREFIX_SLOTS; probe++) {
        size_t i = (h + probe) % PREFIX_SLOTS;
        const ProtobufCEnumDescriptor *cur = atomic_load(&prefix_cache[i].d);
        if (!cur && atomic_compare_exchange_strong(&prefix_cache[i].d, &cur, d))
            cur = d;
        if (cur != d)
            continue;
        size_t n1 = atomic_load(&prefix_cache[i].n1);
        if (!n1) {
            n1 = enum_prefix(d) + 1;
            atomic_store(&prefix_cache[i].n1, n1);
        }
        return n1 - 1;
    }
    return enum_prefix(d); /* more enum types than slots */
}

static void write_enum(strbuf_t *out, const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    char buf[128];
    size_t k = 0;
    if (!ev) {
        k = (size_t)snprintf(buf, sizeof buf, "%d", v);
    } else {
        for (const char *p = ev->name + enum_prefix_cached(d); *p && k + 1 < sizeof buf; p++)
            buf[k++] = (char)tolower((unsigned char)*p);
    }
    write_valid_string(out, buf, k); /* enum names are ASCII */
}

static void write_value(strbuf_t *out, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        write_int(out, *(const int32_t *)p);
        return;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        write_int(out, *(const uint32_t *)p);
        return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        write_int(out, *(const int64_t *)p);
        return;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *)p;
        write_int(out, v > INT64_MAX ? INT64_MAX : (long long)v);
        return;
    }
    case PROTOBUF_C_TYPE_FLOAT:
        write_real(out, *(const float *)p);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        write_real(out, *(const double *)p);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        if (*(const protobuf_c_boolean *)p)
            sb_add(out, "true", 4);
        else
            sb_add(out, "false", 5);
        return;
    case PROTOBUF_C_TYPE_ENUM:
        write_enum(out, f->descriptor, *(const int *)p);
        return;
    case PROTOBUF_C_TYPE_STRING:
        pbjson_write_string(out, *(char *const *)p);
        return;
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        static const char hex[] = "0123456789abcdef";
        sb_putc(out, '"');
        for (size_t i = 0; i < b->len; i++) {
            char two[2] = {hex[b->data[i] >> 4], hex[b->data[i] & 0xF]};
            sb_add(out, two, 2);
        }
        sb_putc(out, '"');
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        pbjson_write(*(const ProtobufCMessage *const *)p, out);
        return;
    }
    sb_add(out, "null", 4);
}

/* A repeated KeyValue as an object, as json_object_set_new builds it. */
static void write_keyvalues(strbuf_t *out, Drover__KeyValue *const *e, size_t n)
{
    bool first = true;
    sb_putc(out, '{');
    for (size_t k = 0; k < n; k++) {
        const char *key = e[k]->key ? e[k]->key : "";
        if (!utf8_valid(key, strlen(key)))
            continue; /* json_object_set_new refuses it */
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(e[j]->key ? e[j]->key : "", key) == 0;
        if (seen)
            continue;
        size_t last = k;
        for (size_t j = k + 1; j < n; j++)
            if (strcmp(e[j]->key ? e[j]->key : "", key) == 0)
                last = j;
        if (!first)
            sb_putc(out, ',');
        first = false;
        write_valid_string(out, key, strlen(key));
        sb_putc(out, ':');
        pbjson_write_string(out, e[last]->value);
    }
    sb_putc(out, '}');
}

int pbjson_write(const ProtobufCMessage *m, strbuf_t *out)
{
    if (!m) {
        sb_add(out, "null", 4);
        return 0;
    }
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    bool first = true;
    sb_putc(out, '{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && !*(const void *const *)p)
                continue;
        }
        /* ,"name": in one piece (proto names need no escaping) */
        char key[128];
        size_t nl = strlen(f->name), kl = 0;
        if (nl > sizeof key - 4)
            nl = sizeof key - 4;
        if (!first)
            key[kl++] = ',';
        first = false;
        key[kl++] = '"';
        memcpy(key + kl, f->name, nl);
        kl += nl;
        key[kl++] = '"';
        key[kl++] = ':';
        sb_add(out, key, kl);
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            write_value(out, f, p);
            continue;
        }
        size_t n = *(const size_t *)(base + f->quantifier_offset);
        const char *arr = *(char *const *)p;
        if (is_keyvalue(f)) {
            write_keyvalues(out, (Drover__KeyValue *const *)arr, n);
            continue;
        }
        sb_putc(out, '[');
        for (size_t k = 0; k < n; k++) {
            if (k)
                sb_putc(out, ',');
            write_value(out, f, arr + k * type_size(f));
        }
        sb_putc(out, ']');
    }
    sb_putc(out, '}');
    return 0;
}
