/* test_webd — drover-web's parts without a server: the JSON of protobuf
 * messages (pbjson.c), the server-sent events framing (sse.c) and the path
 * patterns of routes (route.c); the rules README "HTTP API" states, each
 * checked on real drover messages. */
#include "helpers.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drover.pb-c.h"
#include "pbjson.h"
#include "route.h"
#include "sse.h"
#include "strbuf.h"

static const char *ename(const ProtobufCEnumDescriptor *d, int v)
{
    static char buf[128];
    return pbjson_enum_name(d, v, buf, sizeof buf);
}

Test(pbjson, enum_names_drop_the_common_prefix_lowercased)
{
    cr_assert_str_eq(ename(&drover__task_status__descriptor, DROVER__TASK_STATUS__TASK_SUCCEEDED),
                     "succeeded");
    cr_assert_str_eq(
        ename(&drover__api_error_code__descriptor, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND),
        "not_found");
    cr_assert_str_eq(ename(&drover__event_kind__descriptor, DROVER__EVENT_KIND__EVENT_POOL_NODE),
                     "pool_node");
    cr_assert_str_eq(ename(&drover__run_status__descriptor, DROVER__RUN_STATUS__RUN_CANCELLED),
                     "cancelled");
    /* no common prefix: the whole name */
    cr_assert_str_eq(
        ename(&drover__schedule_request__op__descriptor, DROVER__SCHEDULE_REQUEST__OP__BACKFILL),
        "backfill");
    /* an unknown value: its number */
    cr_assert_str_eq(ename(&drover__run_status__descriptor, 99), "99");
    /* and back */
    cr_assert_eq(pbjson_enum_value(&drover__run_status__descriptor, "running"),
                 DROVER__RUN_STATUS__RUN_RUNNING);
    cr_assert_eq(pbjson_enum_value(&drover__run_status__descriptor, "RUN_RUNNING"), -1);
    cr_assert_eq(pbjson_enum_value(&drover__run_status__descriptor, ""), -1);
}

Test(pbjson, message_shape)
{
    Drover__RunView v = DROVER__RUN_VIEW__INIT;
    Drover__KeyValue kv1 = DROVER__KEY_VALUE__INIT, kv2 = DROVER__KEY_VALUE__INIT;
    Drover__KeyValue *kvs[] = {&kv1, &kv2};
    kv1.key = "epochs", kv1.value = "3";
    kv2.key = "lr", kv2.value = "0.1";
    v.id = "r000001";
    v.status = DROVER__RUN_STATUS__RUN_FAILED;
    v.created_ms = 1700000000123LL;
    v.params = kvs;
    v.n_params = 2;
    json_t *j = pbjson_message(&v.base);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "r000001");
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "failed");
    cr_assert_eq(json_integer_value(json_object_get(j, "created_ms")), 1700000000123LL);
    /* scalars present at their defaults, lists present and empty */
    cr_assert_eq(json_integer_value(json_object_get(j, "finished_ms")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "");
    cr_assert(json_is_array(json_object_get(j, "tasks")));
    cr_assert_eq(json_array_size(json_object_get(j, "tasks")), 0);
    /* KeyValue lists: an object */
    json_t *p = json_object_get(j, "params");
    cr_assert(json_is_object(p));
    cr_assert_str_eq(json_string_value(json_object_get(p, "lr")), "0.1");
    cr_assert_eq(json_object_size(p), 2);
    json_decref(j);

    /* bytes: hex; unset sub-messages: absent; a oneof: only its member */
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__SubmitRequest sr = DROVER__SUBMIT_REQUEST__INIT;
    sr.spec.data = (uint8_t *)"\x01\xab";
    sr.spec.len = 2;
    req.op_case = DROVER__API_REQUEST__OP_SUBMIT;
    req.submit = &sr;
    j = pbjson_message(&req.base);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "submit"), "spec")),
                     "01ab");
    cr_assert_null(json_object_get(j, "get_run"));
    cr_assert_null(json_object_get(j, "status"));
    cr_assert_str_eq(json_string_value(json_object_get(j, "bearer")), "");
    cr_assert_eq(json_object_size(j), 2, "%s", json_dumps(j, JSON_COMPACT));
    json_decref(j);
}

Test(pbjson, schema_matches_the_shape)
{
    json_t *s = json_object();
    pbjson_schema(&drover__run_view__descriptor, s);
    json_t *rv = json_object_get(s, "RunView");
    cr_assert_not_null(rv);
    /* the messages it holds come along */
    cr_assert_not_null(json_object_get(s, "TaskView"));
    cr_assert_not_null(json_object_get(s, "AttemptRecord"));
    json_t *props = json_object_get(rv, "properties");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(props, "params"), "type")),
                     "object");
    json_t *st = json_object_get(props, "status");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(st, "enum"), 0)), "pending");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(props, "tasks"), "items"), "$ref")),
                     "#/components/schemas/TaskView");
    json_decref(s);
}

static char *frame(const char *id, const char *name, const char *data)
{
    strbuf_t b = {0};
    sse_event(&b, id, name, data, strlen(data));
    return sb_take(&b);
}

Test(sse, framing)
{
    char *f = frame("7", "task", "{\"a\":1}");
    cr_assert_str_eq(f, "id: 7\nevent: task\ndata: {\"a\":1}\n\n");
    free(f);
    /* every kind of line break splits data lines; a last break gives a
     * last empty line, so the client's data ends with it too */
    f = frame(NULL, "log", "one\r\ntwo\rthree\nfour\n");
    cr_assert_str_eq(f, "event: log\ndata: one\ndata: two\ndata: three\ndata: four\ndata: \n\n");
    free(f);
    f = frame(NULL, NULL, "");
    cr_assert_str_eq(f, "data: \n\n");
    free(f);
    strbuf_t b = {0};
    sse_comment(&b, "ping");
    cr_assert_str_eq(b.buf, ": ping\n\n");
    sb_free(&b);
}

Test(pbjson, set_field_by_name)
{
    Drover__TokenRequest tr = DROVER__TOKEN_REQUEST__INIT;
    char err[256];
    json_t *pool = json_string("gpu"), *uses = json_integer(3), *neg = json_integer(-1);
    json_t *op = json_string("revoke"), *bad = json_string("nope"), *t = json_true();
    cr_assert_eq(pbjson_set_field(&tr.base, "pool", pool, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(tr.pool, "gpu");
    cr_assert_eq(pbjson_set_field(&tr.base, "uses", uses, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tr.uses, 3);
    cr_assert_eq(pbjson_set_field(&tr.base, "uses", neg, err, sizeof err), -1);
    cr_assert_str_eq(err, "uses: expected a number in range");
    cr_assert_eq(pbjson_set_field(&tr.base, "pool", uses, err, sizeof err), -1);
    cr_assert_str_eq(err, "pool: expected a string");
    cr_assert_eq(pbjson_set_field(&tr.base, "op", op, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tr.op, DROVER__TOKEN_OP__TOKEN_REVOKE);
    cr_assert_eq(pbjson_set_field(&tr.base, "op", bad, err, sizeof err), -1);
    cr_assert_str_eq(err, "op: expected one of list, create, revoke");
    cr_assert_eq(pbjson_set_field(&tr.base, "bogus", t, err, sizeof err), -1);
    cr_assert_str_eq(err, "unknown member 'bogus'");
    json_decref(pool), json_decref(uses), json_decref(neg), json_decref(op), json_decref(bad);
    json_decref(t);
}

Test(route, pattern_match)
{
    web_span_t c[4];
    cr_assert_eq(web_pattern_match("/api/v1/runs", "/api/v1/runs", c, 4), 0);
    cr_assert_eq(
        web_pattern_match("/api/v1/runs/{id}/tasks/{task}", "/api/v1/runs/r1/tasks/a[0]", c, 4), 2);
    cr_assert_eq(c[0].name_len, 2);
    cr_assert(strncmp(c[0].name, "id", 2) == 0);
    cr_assert_eq(c[0].value_len, 2);
    cr_assert(strncmp(c[0].value, "r1", 2) == 0);
    cr_assert(strncmp(c[1].value, "a[0]", c[1].value_len) == 0 && c[1].value_len == 4);
    /* no match: a missing or empty segment, one more, a trailing slash,
     * a prefix, too many captures */
    cr_assert_eq(web_pattern_match("/api/v1/runs/{id}", "/api/v1/runs/", c, 4), -1);
    cr_assert_eq(web_pattern_match("/api/v1/runs/{id}", "/api/v1/runs", c, 4), -1);
    cr_assert_eq(web_pattern_match("/api/v1/runs/{id}", "/api/v1/runs/a/b", c, 4), -1);
    cr_assert_eq(web_pattern_match("/api/v1/runs/{id}/spec", "/api/v1/runs//spec", c, 4), -1);
    cr_assert_eq(web_pattern_match("/api/v1/runs", "/api/v1/runs/", c, 4), -1);
    cr_assert_eq(web_pattern_match("/api/v1/runs", "/api/v1/run", c, 4), -1);
    cr_assert_eq(web_pattern_match("/{a}/{b}", "/x/y", c, 1), -1);
    cr_assert_eq(web_pattern_match("/{a", "/x", c, 4), -1);
}

/* ---- pbjson_write: the same text as json_dumps(pbjson_message()) ---- */

static void assert_same_json(const ProtobufCMessage *m)
{
    json_t *j = pbjson_message(m);
    char *want = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    strbuf_t got = {0};
    cr_assert_eq(pbjson_write(m, &got), 0);
    cr_assert_not_null(want);
    cr_assert_not_null(got.buf);
    if (strcmp(want, got.buf) != 0) {
        size_t i = 0;
        while (want[i] && want[i] == got.buf[i])
            i++;
        cr_assert_fail("differ at byte %zu:\njansson: ...%.80s\nwriter:  ...%.80s", i,
                       want + (i > 20 ? i - 20 : 0), got.buf + (i > 20 ? i - 20 : 0));
    }
    free(want);
    sb_free(&got);
}

/* Strings jansson has a rule for: escapes, control characters, '/', DEL,
 * 2-, 3- and 4-byte UTF-8 (a surrogate pair), and strings that are not
 * UTF-8 at all (overlong, a lone surrogate, past U+10FFFF, cut short). */
static char *const hostile[] = {
    "",
    "plain",
    "q\"uo\\te/slash",
    "\x01\x02\b\f\n\r\t\x1f\x7f end",
    "caf\xc3\xa9 \xe2\x82\xac \xe4\xb8\xad \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
    "\xef\xbf\xbf\xee\x80\x80",
    "bad \xff byte",
    "overlong \xc0\xaf",
    "overlong3 \xe0\x80\xaf",
    "surrogate \xed\xa0\x80",
    "too big \xf4\x90\x80\x80",
    "cut \xe2\x82",
    "lone continuation \x80",
    "</script><!--",
};
#define N_HOSTILE (sizeof hostile / sizeof hostile[0])

Test(pbjson, write_matches_jansson_on_hostile_messages)
{
    Drover__RunView v = DROVER__RUN_VIEW__INIT;
    Drover__TaskView t[N_HOSTILE];
    Drover__TaskView *tp[N_HOSTILE];
    Drover__AttemptRecord a[N_HOSTILE];
    Drover__AttemptRecord *ap[N_HOSTILE];
    Drover__KeyValue kv[N_HOSTILE * 2];
    Drover__KeyValue *kvp[N_HOSTILE * 2];
    static const double reals[] = {0.1,
                                   1e300,
                                   -0.0,
                                   0.0,
                                   1.0,
                                   -1.5,
                                   1e-5,
                                   1e21,
                                   1e-300,
                                   4.9e-324,
                                   1e17,
                                   123456.0,
                                   1e16,
                                   2.5e-7,
                                   DBL_MAX,
                                   -DBL_MIN,
                                   NAN,
                                   INFINITY,
                                   -INFINITY,
                                   999999999999999.0,
                                   -999999999999999.0,
                                   1e15,
                                   -1e15,
                                   1e16 + 2,
                                   12345678901234567.0,
                                   -42.0,
                                   0.5,
                                   1e-320,
                                   1e100};
    static const float freals[] = {-1.0f, 0.1f, 0.0f, -0.0f, 3.4e38f, 1e-45f, NAN, INFINITY};
    for (size_t i = 0; i < N_HOSTILE * 2; i++) {
        drover__key_value__init(&kv[i]);
        /* duplicate keys: json_object_set_new keeps the first's place */
        kv[i].key = hostile[i % 5 == 4 ? 1 : i % N_HOSTILE];
        kv[i].value = hostile[(i * 7) % N_HOSTILE];
        kvp[i] = &kv[i];
    }
    for (size_t i = 0; i < N_HOSTILE; i++) {
        drover__task_view__init(&t[i]);
        drover__attempt_record__init(&a[i]);
        t[i].name = hostile[i];
        t[i].reason = hostile[(i + 3) % N_HOSTILE];
        t[i].agent = NULL; /* unset string: "" */
        t[i].status = (Drover__TaskStatus)(i % 12);
        t[i].exit_code = i % 2 ? INT32_MIN : INT32_MAX;
        t[i].started_ms = i % 2 ? INT64_MIN : INT64_MAX;
        t[i].checkpoint_step = i % 2 ? UINT64_MAX : (uint64_t)INT64_MAX + 1;
        t[i].attempts = UINT32_MAX;
        t[i].has_exit = i % 2;
        t[i].progress = freals[i % (sizeof freals / sizeof freals[0])];
        t[i].cost = reals[i % (sizeof reals / sizeof reals[0])];
        t[i].out_params = kvp + i;
        t[i].n_out_params = N_HOSTILE;
        a[i].agent = hostile[(i + 5) % N_HOSTILE];
        a[i].price = reals[(i + 7) % (sizeof reals / sizeof reals[0])];
        a[i].log_bytes = UINT64_MAX - i;
        a[i].status = (Drover__TaskStatus)(i % 12);
        ap[i] = &a[i];
        t[i].history = ap;
        t[i].n_history = i; /* the first: [] */
        tp[i] = &t[i];
    }
    v.id = "r000001";
    v.name = hostile[4];
    v.status = DROVER__RUN_STATUS__RUN_CANCELLED;
    v.tasks = tp;
    v.n_tasks = N_HOSTILE;
    v.params = kvp;
    v.n_params = N_HOSTILE * 2;
    assert_same_json(&v.base);
    for (size_t i = 0; i < N_HOSTILE; i++)
        assert_same_json(&t[i].base);
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        t[0].cost = reals[i];
        t[0].progress = (float)reals[i];
        assert_same_json(&t[0].base);
    }

    /* every value of every enum in a view, an unknown one, and empty things */
    for (int s = -1; s < 40; s++) {
        Drover__TaskView e = DROVER__TASK_VIEW__INIT;
        Drover__RunView r = DROVER__RUN_VIEW__INIT;
        e.status = (Drover__TaskStatus)s;
        r.status = (Drover__RunStatus)s;
        assert_same_json(&e.base);
        assert_same_json(&r.base);
    }
    /* a oneof with a member set, unset sub-messages, bytes */
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__SubmitRequest sr = DROVER__SUBMIT_REQUEST__INIT;
    sr.spec.data = (uint8_t *)"\x00\x01\xab\xff";
    sr.spec.len = 4;
    req.op_case = DROVER__API_REQUEST__OP_SUBMIT;
    req.submit = &sr;
    assert_same_json(&req.base);
    req.op_case = DROVER__API_REQUEST__OP__NOT_SET;
    assert_same_json(&req.base);
    strbuf_t n = {0};
    pbjson_write(NULL, &n);
    cr_assert_str_eq(n.buf, "null");
    sb_free(&n);
}

/* The run page's fields (README "HTTP API"): repeated strings (needs, with
 * hostile names), repeated messages (item_counts, every status and an
 * unknown one), on a task and in a run view, empty and filled. */
Test(pbjson, write_matches_jansson_on_run_page_fields)
{
    Drover__StatusCount sc[14];
    Drover__StatusCount *scp[14];
    for (int i = 0; i < 14; i++) {
        drover__status_count__init(&sc[i]);
        sc[i].status = (Drover__TaskStatus)(i - 1); /* -1 and 12: not statuses */
        sc[i].count = i % 2 ? UINT32_MAX : (uint32_t)i;
        scp[i] = &sc[i];
    }
    Drover__TaskView t[N_HOSTILE];
    Drover__TaskView *tp[N_HOSTILE];
    for (size_t i = 0; i < N_HOSTILE; i++) {
        drover__task_view__init(&t[i]);
        t[i].name = hostile[i];
        t[i].needs = (char **)(hostile + i); /* the last: none */
        t[i].n_needs = N_HOSTILE - i - 1;
        t[i].fan_out = i % 2;
        t[i].item_total = i % 3 ? UINT32_MAX : (uint32_t)i;
        t[i].item_counts = scp;
        t[i].n_item_counts = i % 15;
        t[i].fan_out_of = hostile[(i + 2) % N_HOSTILE];
        t[i].item = (uint32_t)i * 1000003u;
        tp[i] = &t[i];
        assert_same_json(&t[i].base);
    }
    Drover__RunView v = DROVER__RUN_VIEW__INIT;
    v.id = "r000002";
    v.tasks = tp;
    v.n_tasks = N_HOSTILE;
    v.summary = true;
    v.event_seq = UINT64_MAX;
    v.page_total = (uint64_t)INT64_MAX + 7;
    assert_same_json(&v.base);
    /* the names appear as written: needs in order, counts with status names */
    strbuf_t out = {0};
    char *needs[] = {"prep", "grp.a"};
    Drover__TaskView one = DROVER__TASK_VIEW__INIT;
    one.needs = needs;
    one.n_needs = 2;
    one.item_counts = scp + 5; /* status 4: succeeded */
    one.n_item_counts = 1;
    pbjson_write(&one.base, &out);
    cr_assert(strstr(out.buf, "\"needs\":[\"prep\",\"grp.a\"]"), "%s", out.buf);
    cr_assert(strstr(out.buf, "\"item_counts\":[{\"status\":\"succeeded\",\"count\":4294967295}]"),
              "%s", out.buf);
    sb_free(&out);
}

/* ---- random messages, made from the descriptors ---- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static char *rnd_string(void)
{
    if (rnd() % 3 == 0)
        return strdup(hostile[rnd() % N_HOSTILE]);
    size_t n = rnd() % 12;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        s[i] = (char)(rnd() % 255 + 1);
        if (rnd() % 2)
            s[i] = (char)(s[i] & 0x7f ? s[i] & 0x7f : 'x'); /* mostly ASCII */
    }
    s[n] = '\0';
    return s;
}

static void rnd_value(const ProtobufCFieldDescriptor *f, void *p, int depth);

static ProtobufCMessage *rnd_message(const ProtobufCMessageDescriptor *d, int depth)
{
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    protobuf_c_message_init(d, m);
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth > 2)
                continue;
            size_t n = rnd() % 5, sz;
            switch (f->type) {
            case PROTOBUF_C_TYPE_INT64:
            case PROTOBUF_C_TYPE_SINT64:
            case PROTOBUF_C_TYPE_SFIXED64:
            case PROTOBUF_C_TYPE_UINT64:
            case PROTOBUF_C_TYPE_FIXED64:
            case PROTOBUF_C_TYPE_DOUBLE:
                sz = 8;
                break;
            case PROTOBUF_C_TYPE_STRING:
            case PROTOBUF_C_TYPE_MESSAGE:
                sz = sizeof(void *);
                break;
            case PROTOBUF_C_TYPE_BYTES:
                sz = sizeof(ProtobufCBinaryData);
                break;
            default:
                sz = 4;
            }
            char *arr = n ? calloc(n, sz) : NULL;
            for (size_t k = 0; k < n; k++)
                rnd_value(f, arr + k * sz, depth);
            *(size_t *)(base + f->quantifier_offset) = n;
            *(char **)(base + f->offset) = arr;
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(uint32_t *)(base + f->quantifier_offset) || rnd() % 3)
                continue;
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && (depth > 2 || rnd() % 3 == 0))
            continue;
        if (f->type == PROTOBUF_C_TYPE_STRING)
            *(char **)(base + f->offset) = NULL; /* not the shared default */
        rnd_value(f, base + f->offset, depth);
    }
    return m;
}

static void rnd_value(const ProtobufCFieldDescriptor *f, void *p, int depth)
{
    static const double special[] = {0.1, -0.0, 1e300, NAN, INFINITY, 1e-7, 100.0, 5e-324};
    uint64_t r = rnd();
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)p = (uint32_t)(rnd() % 2 ? r : r % 100);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)p = rnd() % 2 ? r : r % 1000;
        break;
    case PROTOBUF_C_TYPE_FLOAT: {
        uint32_t bits = (uint32_t)r;
        float v;
        memcpy(&v, &bits, sizeof v);
        *(float *)p = rnd() % 2 ? v : (float)special[r % 8];
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        memcpy(&v, &r, sizeof v);
        *(double *)p = rnd() % 2 ? v : rnd() % 2 ? special[r % 8] : (double)(r % 100000) / 1000;
        break;
    }
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)p = r % 2;
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        *(int *)p = r % 8 == 0 ? (int)(r % 1000) - 500 : e->values[r % e->n_values].value;
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        *(char **)p = rnd_string();
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        b->len = r % 9;
        b->data = b->len ? malloc(b->len) : NULL;
        for (size_t i = 0; i < b->len; i++)
            b->data[i] = (uint8_t)rnd();
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *md = f->descriptor;
        ProtobufCMessage *sub = rnd_message(md, depth + 1);
        if (strcmp(md->short_name, "KeyValue") == 0) {
            Drover__KeyValue *kv = (Drover__KeyValue *)sub;
            free(kv->key);
            kv->key = strdup(hostile[r % 4]); /* a few keys: duplicates */
        }
        *(ProtobufCMessage **)p = sub;
        break;
    }
    }
}

Test(pbjson, write_matches_jansson_on_random_messages)
{
    const ProtobufCMessageDescriptor *roots[] = {
        &drover__run_view__descriptor, &drover__task_view__descriptor,
        &drover__event_record__descriptor, &drover__api_request__descriptor,
        &drover__api_response__descriptor};
    for (int round = 0; round < 300; round++) {
        const ProtobufCMessageDescriptor *d = roots[round % 5];
        ProtobufCMessage *m = rnd_message(d, 0);
        assert_same_json(m);
        protobuf_c_message_free_unpacked(m, NULL);
    }
}
