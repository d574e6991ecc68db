/* test_webd — drover-web's parts without a server: the JSON of protobuf
 * messages (pbjson.c), the server-sent events framing (sse.c) and the path
 * patterns of routes (route.c); the rules README "HTTP API" states, each
 * checked on real drover messages. */
#include "helpers.h"

#include <jansson.h>
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
