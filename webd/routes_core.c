/* routes_core — drover-web's own routes:
 *   GET /api/v1/status        droverd's StatusView (role read)
 *   GET /api/v1/whoami        the caller's name and role (CallerView)
 *   GET /healthz              {"ok": true, "droverd": true|false}, no token
 *   GET /api/v1/openapi.json  the OpenAPI document (webd/openapi.json,
 *                             compiled in), no token
 *   GET /metrics              droverd's metrics in the Prometheus text
 *                             format (common/metrics_text.c; role read)
 */
#include "metrics_text.h"
#include "pbjson.h"
#include "web.h"

extern const unsigned char web_openapi_json[];
extern const unsigned long web_openapi_json_len;

static void get_status(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty e = DROVER__EMPTY__INIT;
    Drover__ApiResponse *resp;
    req.op_case = DROVER__API_REQUEST__OP_STATUS;
    req.status = &e;
    if (web_api(r, &req, &resp) < 0)
        return;
    web_json(r, 200, pbjson_message(&resp->status->base));
    drover__api_response__free_unpacked(resp, NULL);
}

static void get_whoami(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty e = DROVER__EMPTY__INIT;
    Drover__ApiResponse *resp;
    req.op_case = DROVER__API_REQUEST__OP_WHOAMI;
    req.whoami = &e;
    if (web_api(r, &req, &resp) < 0)
        return;
    if (!resp->caller)
        web_error(r, 500, "internal", "droverd did not say who the caller is");
    else
        web_json(r, 200, pbjson_message(&resp->caller->base));
    drover__api_response__free_unpacked(resp, NULL);
}

/* Whether droverd answers: a status request with no token (droverd's
 * answer, or refusal, both mean it is there). */
static void get_healthz(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty e = DROVER__EMPTY__INIT;
    Drover__ApiResponse *resp;
    web_call_error_t err;
    req.op_case = DROVER__API_REQUEST__OP_STATUS;
    req.status = &e;
    bool up = web_call(NULL, &req, &resp, &err) == 0 || err.status != 503;
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
    else
        web_call_error_free(&err);
    web_json(r, 200, json_pack("{s:b,s:b}", "ok", 1, "droverd", up));
}

static void get_openapi(web_req_t *r)
{
    web_text(r, 200, "application/json", web_openapi_json, web_openapi_json_len);
}

/* The same text as `drover metrics`: droverd measures and counts (its
 * MetricsView), metrics_text renders. */
static void get_metrics(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty e = DROVER__EMPTY__INIT;
    Drover__ApiResponse *resp;
    req.op_case = DROVER__API_REQUEST__OP_METRICS;
    req.metrics = &e;
    if (web_api(r, &req, &resp) < 0)
        return;
    strbuf_t out = {0};
    if (!resp->metrics || metrics_text(resp->metrics, &out) < 0)
        web_error(r, 500, "internal", "droverd's metrics could not be rendered");
    else
        web_text(r, 200, METRICS_TEXT_CONTENT_TYPE, out.buf, out.len);
    sb_free(&out);
    drover__api_response__free_unpacked(resp, NULL);
}

const web_route_t routes_core[] = {
    {"GET", "/api/v1/status", get_status, 0},
    {"GET", "/api/v1/whoami", get_whoami, 0},
    {"GET", "/healthz", get_healthz, WEB_NO_AUTH},
    {"GET", "/api/v1/openapi.json", get_openapi, WEB_NO_AUTH},
    {"GET", "/metrics", get_metrics, 0},
    {0},
};
