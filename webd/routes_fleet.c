/* routes_fleet — agents, pools, schedules and tokens over HTTP (README
 * "HTTP API"); droverd decides what the caller's token may do:
 *   GET    /api/v1/agents                     {"agents": [AgentView]}
 *   POST   /api/v1/agents/{name}/drain        {"agent": NAME}
 *   POST   /api/v1/agents/{name}/undrain      {"agent": NAME}
 *   POST   /api/v1/agents/{name}/preempt      {"deadline_ms": N} optional -> {"agent": NAME}
 *   DELETE /api/v1/agents/{name}              forget a disconnected agent -> {"agent": NAME}
 *   GET    /api/v1/pools                      {"pools": [PoolView]}
 *   POST   /api/v1/pools/{name}/scale         {"nodes": N} -> {"pools": [PoolView]}
 *   POST   /api/v1/pools/{name}/drain         {"pools": [PoolView]}
 *   GET    /api/v1/schedules                  {"schedules": [ScheduleView]}
 *   POST   /api/v1/schedules/{name}/pause     {"schedules": [ScheduleView]}
 *   POST   /api/v1/schedules/{name}/resume    {"schedules": [ScheduleView]}
 *   POST   /api/v1/schedules/{name}/trigger   {"run_ids": [ID]}
 *   GET    /api/v1/tokens                     {"tokens": [TokenView]}
 *   POST   /api/v1/tokens                     {"ttl", ...} -> 201 {"token", "tokens"}
 *   DELETE /api/v1/tokens/{id}                {"tokens": [TokenView]}
 */
#include <string.h>

#include "pbjson.h"
#include "units.h"
#include "util.h"
#include "web.h"

/* resp's repeated field `field` (a list of messages) as {"field": [...]}. */
static json_t *list_of(const Drover__ApiResponse *resp, const char *field)
{
    json_t *all = pbjson_message(&resp->base), *v = json_incref(json_object_get(all, field));
    json_decref(all);
    return json_pack("{s:o}", field, v ? v : json_array());
}

/* Send req and answer 200 (or status) with resp's `field` list. */
static void call_list(web_req_t *r, Drover__ApiRequest *req, const char *field, unsigned status)
{
    Drover__ApiResponse *resp;
    if (web_api(r, req, &resp) < 0)
        return;
    web_json(r, status, list_of(resp, field));
    drover__api_response__free_unpacked(resp, NULL);
}

/* ---- agents ---- */

static void get_agents(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    req.op_case = DROVER__API_REQUEST__OP_LIST_AGENTS;
    req.list_agents = &ar;
    call_list(r, &req, "agents", 200);
}

static void agent_op(web_req_t *r, Drover__ApiRequest__OpCase op, bool undrain,
                     uint64_t deadline_ms)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    Drover__ApiResponse *resp;
    ar.name = (char *)web_capture(r, "name");
    ar.undrain = undrain;
    ar.deadline_ms = deadline_ms;
    req.op_case = op;
    if (op == DROVER__API_REQUEST__OP_DRAIN_AGENT)
        req.drain_agent = &ar;
    else if (op == DROVER__API_REQUEST__OP_PREEMPT_AGENT)
        req.preempt_agent = &ar;
    else
        req.forget_agent = &ar;
    if (web_api(r, &req, &resp) < 0)
        return;
    web_json(r, 200, json_pack("{s:s}", "agent", ar.name));
    drover__api_response__free_unpacked(resp, NULL);
}

static void post_drain(web_req_t *r)
{
    agent_op(r, DROVER__API_REQUEST__OP_DRAIN_AGENT, false, 0);
}

static void post_undrain(web_req_t *r)
{
    agent_op(r, DROVER__API_REQUEST__OP_DRAIN_AGENT, true, 0);
}

static void post_preempt(web_req_t *r)
{
    static const char *const known[] = {"deadline_ms", NULL};
    json_t *body = web_body_json(r), *d;
    if (!body)
        return;
    if (web_json_members(r, body, known)) {
        d = json_object_get(body, "deadline_ms");
        if (d && (!json_is_integer(d) || json_integer_value(d) < 0))
            web_error(r, 400, "invalid", "deadline_ms: expected milliseconds (0 or more)");
        else
            agent_op(r, DROVER__API_REQUEST__OP_PREEMPT_AGENT, false,
                     d ? (uint64_t)json_integer_value(d) : 0);
    }
    json_decref(body);
}

static void delete_agent(web_req_t *r)
{
    agent_op(r, DROVER__API_REQUEST__OP_FORGET_AGENT, false, 0);
}

/* ---- pools ---- */

static void pool_op(web_req_t *r, Drover__PoolOp op, uint32_t count)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__PoolRequest pr = DROVER__POOL_REQUEST__INIT;
    const char *name = web_capture(r, "name");
    pr.op = op;
    pr.name = (char *)(name ? name : "");
    pr.count = count;
    req.op_case = DROVER__API_REQUEST__OP_POOL;
    req.pool = &pr;
    call_list(r, &req, "pools", 200);
}

static void get_pools(web_req_t *r)
{
    pool_op(r, DROVER__POOL_OP__POOL_LIST, 0);
}

static void post_scale(web_req_t *r)
{
    static const char *const known[] = {"nodes", NULL};
    json_t *body = web_body_json(r), *n;
    if (!body)
        return;
    if (web_json_members(r, body, known)) {
        n = json_object_get(body, "nodes");
        if (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > UINT32_MAX)
            web_error(r, 400, "invalid", "nodes: expected how many nodes to keep (0 or more)");
        else
            pool_op(r, DROVER__POOL_OP__POOL_SCALE, (uint32_t)json_integer_value(n));
    }
    json_decref(body);
}

static void post_pool_drain(web_req_t *r)
{
    pool_op(r, DROVER__POOL_OP__POOL_DRAIN, 0);
}

/* ---- schedules ---- */

static void schedule_op(web_req_t *r, Drover__ScheduleRequest__Op op, const char *field)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ScheduleRequest sr = DROVER__SCHEDULE_REQUEST__INIT;
    const char *name = web_capture(r, "name");
    sr.op = op;
    sr.name = (char *)(name ? name : "");
    req.op_case = DROVER__API_REQUEST__OP_SCHEDULE;
    req.schedule = &sr;
    call_list(r, &req, field, 200);
}

static void get_schedules(web_req_t *r)
{
    schedule_op(r, DROVER__SCHEDULE_REQUEST__OP__LIST, "schedules");
}

static void post_pause(web_req_t *r)
{
    schedule_op(r, DROVER__SCHEDULE_REQUEST__OP__PAUSE, "schedules");
}

static void post_sched_resume(web_req_t *r)
{
    schedule_op(r, DROVER__SCHEDULE_REQUEST__OP__RESUME, "schedules");
}

static void post_trigger(web_req_t *r)
{
    schedule_op(r, DROVER__SCHEDULE_REQUEST__OP__TRIGGER, "run_ids");
}

/* ---- tokens ---- */

static void get_tokens(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__TokenRequest tr = DROVER__TOKEN_REQUEST__INIT;
    tr.op = DROVER__TOKEN_OP__TOKEN_LIST;
    req.op_case = DROVER__API_REQUEST__OP_TOKEN;
    req.token = &tr;
    call_list(r, &req, "tokens", 200);
}

/* {"ttl": "30d" or milliseconds, ...}: ttl, then any other member is the
 * TokenRequest field of that name (pbjson_set_field: "pool", "uses",
 * "node" for join tokens; an API token's "name" and "role" once droverd's
 * TokenRequest has them), except op and id. */
static void post_token(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__TokenRequest tr = DROVER__TOKEN_REQUEST__INIT;
    Drover__ApiResponse *resp;
    json_t *body = web_body_json(r), *v;
    const char *key;
    char err[512];
    if (!body)
        return;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "ttl") == 0) {
            if (json_is_string(v) ? spec_parse_duration(json_string_value(v), &tr.ttl_ms) < 0
                                  : !(json_is_integer(v) && json_integer_value(v) >= 0)) {
                web_error(r, 400, "invalid", "ttl: expected a duration (\"30d\") or milliseconds");
                goto out;
            }
            if (json_is_integer(v))
                tr.ttl_ms = (uint64_t)json_integer_value(v);
        } else if (strcmp(key, "op") == 0 || strcmp(key, "id") == 0 || strcmp(key, "ttl_ms") == 0 ||
                   pbjson_set_field(&tr.base, key, v, err, sizeof err) < 0) {
            if (strcmp(key, "op") == 0 || strcmp(key, "id") == 0 || strcmp(key, "ttl_ms") == 0)
                snprintf(err, sizeof err, "unknown member '%s'", key);
            web_error(r, 400, "invalid", "%s", err);
            goto out;
        }
    }
    tr.op = DROVER__TOKEN_OP__TOKEN_CREATE;
    req.op_case = DROVER__API_REQUEST__OP_TOKEN;
    req.token = &tr;
    if (web_api(r, &req, &resp) < 0)
        goto out;
    json_t *o = list_of(resp, "tokens");
    json_object_set_new(o, "token", json_string(resp->token ? resp->token : ""));
    web_json(r, 201, o);
    drover__api_response__free_unpacked(resp, NULL);
out:
    json_decref(body);
}

static void delete_token(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__TokenRequest tr = DROVER__TOKEN_REQUEST__INIT;
    tr.op = DROVER__TOKEN_OP__TOKEN_REVOKE;
    tr.id = (char *)web_capture(r, "id");
    req.op_case = DROVER__API_REQUEST__OP_TOKEN;
    req.token = &tr;
    call_list(r, &req, "tokens", 200);
}

const web_route_t routes_fleet[] = {
    {"GET", "/api/v1/agents", get_agents, 0},
    {"POST", "/api/v1/agents/{name}/drain", post_drain, 0},
    {"POST", "/api/v1/agents/{name}/undrain", post_undrain, 0},
    {"POST", "/api/v1/agents/{name}/preempt", post_preempt, 0},
    {"DELETE", "/api/v1/agents/{name}", delete_agent, 0},
    {"GET", "/api/v1/pools", get_pools, 0},
    {"POST", "/api/v1/pools/{name}/scale", post_scale, 0},
    {"POST", "/api/v1/pools/{name}/drain", post_pool_drain, 0},
    {"GET", "/api/v1/schedules", get_schedules, 0},
    {"POST", "/api/v1/schedules/{name}/pause", post_pause, 0},
    {"POST", "/api/v1/schedules/{name}/resume", post_sched_resume, 0},
    {"POST", "/api/v1/schedules/{name}/trigger", post_trigger, 0},
    {"GET", "/api/v1/tokens", get_tokens, 0},
    {"POST", "/api/v1/tokens", post_token, 0},
    {"DELETE", "/api/v1/tokens/{id}", delete_token, 0},
    {0},
};
