/* routes_runs — runs over HTTP (README "HTTP API"):
 *   POST   /api/v1/runs                    submit: YAML body (?param=K=V, ?file=, ?no_cache=1)
 *                                          or JSON {"spec", "file", "params", "imports",
 *                                          "no_cache"} -> 201 {"run_id"} + Location
 *   GET    /api/v1/runs                    {"runs": [RunView], "next": ID|null}: newest first,
 *                                          ?status= (repeated) &name= &owner= &schedule=
 *                                          &limit= (1..1000, 100) &before=ID (the next page)
 *   GET    /api/v1/runs/{id}               RunView with its tasks; ?view=summary: all but
 *                                          the fan-outs' items (and what is inside them),
 *                                          no history: as small as the spec, whatever the
 *                                          item counts (the console's run page)
 *   GET    /api/v1/runs/{id}/tasks/{task}  TaskView (history: the attempts)
 *   GET    /api/v1/runs/{id}/items/{task}  {"run_id", "task", "total", "offset", "items"}:
 *                                          a page of fan-out {task}'s items in item order,
 *                                          ?offset= (0) &limit= (1..1000, 100) &status=
 *                                          (repeated; total counts the matching ones)
 *   GET    /api/v1/runs/{id}/spec          the submitted spec (text/yaml)
 *   POST   /api/v1/runs/{id}/cancel        {"run_id"}
 *   DELETE /api/v1/runs/{id}               {"run_id"}
 *   POST   /api/v1/runs/{id}/resume        {"step", "reject", "params"}: a gate -> {"run_id"}
 * Every check of what a caller may do is droverd's (the bearer goes along).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pbjson.h"
#include "units.h"
#include "util.h"
#include "web.h"

#define LIST_DEFAULT 100
#define LIST_MAX     1000
#define MAX_FILTERS  16
#define PAGE_DEFAULT 100 /* items of a fan-out a page */
#define PAGE_MAX     1000

/* ---- KeyValue lists (params) ---- */

typedef struct {
    Drover__KeyValue **v;
    size_t n;
} kvs_t;

static void kvs_add(kvs_t *k, const char *key, size_t klen, const char *value)
{
    Drover__KeyValue *e = xmalloc(sizeof *e);
    drover__key_value__init(e);
    e->key = xstrndup(key, klen);
    e->value = xstrdup(value);
    k->v = xrealloc(k->v, (k->n + 1) * sizeof *k->v);
    k->v[k->n++] = e;
}

static void kvs_free(kvs_t *k)
{
    util_free_kvs(k->v, k->n);
    k->v = NULL;
    k->n = 0;
}

/* A JSON object of strings (params) into k; false after answering 400. */
static bool kvs_from_json(web_req_t *r, const char *what, json_t *obj, kvs_t *k)
{
    const char *key;
    json_t *v;
    if (!obj)
        return true;
    if (!json_is_object(obj)) {
        web_error(r, 400, "invalid", "%s: expected an object of strings", what);
        return false;
    }
    json_object_foreach(obj, key, v)
    {
        if (!json_is_string(v)) {
            web_error(r, 400, "invalid", "%s.%s: expected a string", what, key);
            return false;
        }
        kvs_add(k, key, strlen(key), json_string_value(v));
    }
    return true;
}

static bool want_type(web_req_t *r, json_t *v, const char *name, json_type type, const char *what)
{
    if (!v || json_typeof(v) == type || (type == JSON_TRUE && json_typeof(v) == JSON_FALSE))
        return true;
    web_error(r, 400, "invalid", "%s: expected %s", name, what);
    return false;
}

/* ---- submit ---- */

static bool is_json(const char *ctype)
{
    return ctype && strncasecmp(ctype, "application/json", 16) == 0;
}

static bool is_yaml(const char *ctype)
{
    static const char *const ok[] = {"application/yaml", "application/x-yaml", "text/yaml",
                                     "text/x-yaml",      "text/plain",         NULL};
    if (!ctype || !*ctype)
        return true;
    for (size_t i = 0; ok[i]; i++)
        if (strncasecmp(ctype, ok[i], strlen(ok[i])) == 0)
            return true;
    return false;
}

static bool truthy(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* The JSON form of a submit into sr (its strings owned by body, kept by
 * the caller until the request is sent). */
static bool submit_json(web_req_t *r, json_t *body, Drover__SubmitRequest *sr, kvs_t *params,
                        Drover__SpecFile ***imports)
{
    static const char *const known[] = {"spec", "file", "params", "imports", "no_cache", NULL};
    json_t *spec = json_object_get(body, "spec"), *file = json_object_get(body, "file");
    json_t *imp = json_object_get(body, "imports"), *nc = json_object_get(body, "no_cache");
    if (!web_json_members(r, body, known) || !want_type(r, file, "file", JSON_STRING, "a string") ||
        !want_type(r, imp, "imports", JSON_ARRAY, "an array of {path, content}") ||
        !want_type(r, nc, "no_cache", JSON_TRUE, "true or false") ||
        !kvs_from_json(r, "params", json_object_get(body, "params"), params))
        return false;
    if (!json_is_string(spec)) {
        web_error(r, 400, "invalid", "spec: expected the pipeline's YAML text as a string");
        return false;
    }
    sr->spec.data = (uint8_t *)json_string_value(spec);
    sr->spec.len = json_string_length(spec);
    if (file)
        sr->file = (char *)json_string_value(file);
    sr->no_cache = json_is_true(nc);
    size_t n = imp ? json_array_size(imp) : 0;
    *imports = xcalloc(n + 1, sizeof **imports);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(imp, i), *path = json_object_get(e, "path"),
               *content = json_object_get(e, "content");
        if (!json_is_string(path) || !json_is_string(content) || json_object_size(e) != 2) {
            web_error(r, 400, "invalid",
                      "imports[%zu]: expected {\"path\": STRING, \"content\": STRING}", i);
            return false;
        }
        Drover__SpecFile *f = xmalloc(sizeof *f);
        drover__spec_file__init(f);
        f->path = (char *)json_string_value(path);
        f->text.data = (uint8_t *)json_string_value(content);
        f->text.len = json_string_length(content);
        (*imports)[sr->n_imports++] = f;
    }
    sr->imports = *imports;
    return true;
}

static void post_run(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__SubmitRequest sr = DROVER__SUBMIT_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    Drover__SpecFile **imports = NULL;
    kvs_t params = {0};
    json_t *body = NULL;
    const char *ctype = web_header(r, "Content-Type");
    if (is_json(ctype)) {
        if (!(body = web_body_json(r)) || !submit_json(r, body, &sr, &params, &imports))
            goto out;
    } else if (is_yaml(ctype)) {
        const char *ps[256];
        size_t np = web_query_all(r, "param", ps, 256);
        if (np > 256) {
            web_error(r, 400, "invalid", "too many ?param= (at most 256)");
            goto out;
        }
        for (size_t i = 0; i < np; i++) {
            const char *eq = strchr(ps[i], '=');
            if (!eq || eq == ps[i]) {
                web_error(r, 400, "invalid", "param: expected KEY=VALUE, got '%s'", ps[i]);
                goto out;
            }
            kvs_add(&params, ps[i], (size_t)(eq - ps[i]), eq + 1);
        }
        size_t len;
        sr.spec.data = (uint8_t *)web_body(r, &len);
        sr.spec.len = len;
        sr.file = (char *)(web_query(r, "file") ? web_query(r, "file") : "");
        sr.no_cache = truthy(web_query(r, "no_cache"));
    } else {
        web_error(r, 415, "unsupported_media_type",
                  "a run is submitted as application/yaml (the spec) or application/json, "
                  "not %s",
                  ctype);
        goto out;
    }
    if (sr.spec.len == 0) {
        web_error(r, 400, "invalid", "the spec is empty");
        goto out;
    }
    sr.params = params.v;
    sr.n_params = params.n;
    req.op_case = DROVER__API_REQUEST__OP_SUBMIT;
    req.submit = &sr;
    if (web_api(r, &req, &resp) < 0)
        goto out;
    char *loc = xasprintf("/api/v1/runs/%s", resp->run_id);
    web_json(r, 201, json_pack("{s:s}", "run_id", resp->run_id));
    web_add_header(r, "Location", loc);
    free(loc);
out:
    for (size_t i = 0; i < sr.n_imports; i++)
        free(imports[i]);
    free(imports);
    kvs_free(&params);
    json_decref(body);
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
}

/* ---- list ---- */

static void get_runs(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ListRunsRequest lr = DROVER__LIST_RUNS_REQUEST__INIT;
    Drover__ApiResponse *resp;
    Drover__RunStatus statuses[MAX_FILTERS];
    const char *st[MAX_FILTERS], *v;
    uint64_t limit = LIST_DEFAULT;
    size_t n = web_query_all(r, "status", st, MAX_FILTERS);
    if (n > MAX_FILTERS) {
        web_error(r, 400, "invalid", "too many ?status= (at most %d)", MAX_FILTERS);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int e = pbjson_enum_value(&drover__run_status__descriptor, st[i]);
        if (e < 0) {
            web_error(r, 400, "invalid",
                      "status: no run status '%s' (pending, running, succeeded, failed, "
                      "cancelled)",
                      st[i]);
            return;
        }
        statuses[i] = (Drover__RunStatus)e;
    }
    if ((v = web_query(r, "limit")) && (spec_parse_uint(v, LIST_MAX, &limit) < 0 || !limit)) {
        web_error(r, 400, "invalid", "limit: expected a number in 1..%d, got '%s'", LIST_MAX, v);
        return;
    }
    lr.n_status = n;
    lr.status = statuses;
    lr.name = (char *)((v = web_query(r, "name")) ? v : "");
    lr.owner = (char *)((v = web_query(r, "owner")) ? v : "");
    lr.schedule = (char *)((v = web_query(r, "schedule")) ? v : "");
    lr.before = (char *)((v = web_query(r, "before")) ? v : "");
    lr.limit = (uint32_t)limit + 1; /* one more: is there a next page? */
    req.op_case = DROVER__API_REQUEST__OP_LIST_RUNS;
    req.list_runs = &lr;
    if (web_api(r, &req, &resp) < 0)
        return;
    strbuf_t out = {0};
    size_t shown = resp->n_runs > limit ? limit : resp->n_runs;
    sb_puts(&out, "{\"runs\":[");
    for (size_t i = 0; i < shown; i++) {
        if (i)
            sb_putc(&out, ',');
        pbjson_write(&resp->runs[i]->base, &out);
    }
    sb_puts(&out, "],\"next\":");
    if (resp->n_runs > limit)
        pbjson_write_string(&out, resp->runs[limit - 1]->id);
    else
        sb_puts(&out, "null");
    sb_putc(&out, '}');
    web_json_text(r, 200, &out);
    drover__api_response__free_unpacked(resp, NULL);
}

/* ---- one run ---- */

/* get_run for the {id} capture, with rr's other fields (the id is set
 * here); NULL after answering. */
static Drover__ApiResponse *fetch_run(web_req_t *r, Drover__RunRequest *rr)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ApiResponse *resp;
    rr->id = (char *)web_capture(r, "id");
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = rr;
    if (web_api(r, &req, &resp) < 0)
        return NULL;
    if (!resp->run) {
        drover__api_response__free_unpacked(resp, NULL);
        web_error(r, 500, "internal", "droverd answered get_run without a run");
        return NULL;
    }
    return resp;
}

static void get_run(web_req_t *r)
{
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    const char *view = web_query(r, "view");
    if (view && strcmp(view, "summary") != 0 && strcmp(view, "full") != 0) {
        web_error(r, 400, "invalid", "view: expected summary or full, got '%s'", view);
        return;
    }
    rr.summary = view && strcmp(view, "summary") == 0;
    Drover__ApiResponse *resp = fetch_run(r, &rr);
    if (!resp)
        return;
    strbuf_t out = {0};
    pbjson_write(&resp->run->base, &out);
    web_json_text(r, 200, &out);
    drover__api_response__free_unpacked(resp, NULL);
}

/* One task of the run (droverd sends only it, whatever the run's size). */
static void get_task(web_req_t *r)
{
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    const char *name = web_capture(r, "task");
    rr.task = (char *)name;
    Drover__ApiResponse *resp = fetch_run(r, &rr);
    if (!resp)
        return;
    for (size_t i = 0; i < resp->run->n_tasks; i++) /* one; all from an older droverd */
        if (strcmp(resp->run->tasks[i]->name, name) == 0) {
            strbuf_t out = {0};
            pbjson_write(&resp->run->tasks[i]->base, &out);
            web_json_text(r, 200, &out);
            drover__api_response__free_unpacked(resp, NULL);
            return;
        }
    web_error(r, 404, "not_found", "run %s has no step '%s'", resp->run->id, name);
    drover__api_response__free_unpacked(resp, NULL);
}

/* A page of a fan-out's items: the query checked here (each refusal names
 * its parameter), the task by droverd (404 unknown, 400 not a fan-out). */
static void get_items(web_req_t *r)
{
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    Drover__TaskStatus statuses[MAX_FILTERS];
    const char *st[MAX_FILTERS], *v;
    uint64_t limit = PAGE_DEFAULT, offset = 0;
    size_t n = web_query_all(r, "status", st, MAX_FILTERS);
    if (n > MAX_FILTERS) {
        web_error(r, 400, "invalid", "too many ?status= (at most %d)", MAX_FILTERS);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int e = pbjson_enum_value(&drover__task_status__descriptor, st[i]);
        if (e < 0) {
            web_error(r, 400, "invalid",
                      "status: no task status '%s' (waiting, ready, assigned, running, "
                      "succeeded, failed, preempted, lost, skipped, cancelled, cached, "
                      "suspended)",
                      st[i]);
            return;
        }
        statuses[i] = (Drover__TaskStatus)e;
    }
    if ((v = web_query(r, "limit")) && (spec_parse_uint(v, PAGE_MAX, &limit) < 0 || !limit)) {
        web_error(r, 400, "invalid", "limit: expected a number in 1..%d, got '%s'", PAGE_MAX, v);
        return;
    }
    if ((v = web_query(r, "offset")) && spec_parse_uint(v, UINT32_MAX, &offset) < 0) {
        web_error(r, 400, "invalid", "offset: expected a number in 0..%u, got '%s'", UINT32_MAX, v);
        return;
    }
    rr.fanout = (char *)web_capture(r, "task");
    rr.offset = offset;
    rr.limit = (uint32_t)limit;
    rr.n_status = n;
    rr.status = statuses;
    Drover__ApiResponse *resp = fetch_run(r, &rr);
    if (!resp)
        return;
    strbuf_t out = {0};
    sb_puts(&out, "{\"run_id\":");
    pbjson_write_string(&out, resp->run->id);
    sb_puts(&out, ",\"task\":");
    pbjson_write_string(&out, rr.fanout);
    sb_printf(&out, ",\"total\":%llu,\"offset\":%llu,\"event_seq\":%llu,\"items\":[",
              (unsigned long long)resp->run->page_total, (unsigned long long)offset,
              (unsigned long long)resp->run->event_seq);
    for (size_t i = 0; i < resp->run->n_tasks; i++) {
        if (i)
            sb_putc(&out, ',');
        pbjson_write(&resp->run->tasks[i]->base, &out);
    }
    sb_puts(&out, "]}");
    web_json_text(r, 200, &out);
    drover__api_response__free_unpacked(resp, NULL);
}

static void get_spec(web_req_t *r)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    Drover__ApiResponse *resp;
    rr.id = (char *)web_capture(r, "id");
    req.op_case = DROVER__API_REQUEST__OP_GET_SPEC;
    req.get_spec = &rr;
    if (web_api(r, &req, &resp) < 0)
        return;
    if (!resp->spec)
        web_error(r, 404, "not_found", "run %s has no stored spec", rr.id);
    else {
        web_text(r, 200, "text/yaml; charset=utf-8", resp->spec->text.data, resp->spec->text.len);
        if (resp->spec->file && *resp->spec->file && !strpbrk(resp->spec->file, "\r\n"))
            web_add_header(r, "X-Drover-File", resp->spec->file);
    }
    drover__api_response__free_unpacked(resp, NULL);
}

/* cancel and delete: a RunRequest for {id}; answers {"run_id"}. */
static void run_op(web_req_t *r, Drover__ApiRequest__OpCase op)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    Drover__ApiResponse *resp;
    rr.id = (char *)web_capture(r, "id");
    req.op_case = op;
    if (op == DROVER__API_REQUEST__OP_CANCEL_RUN)
        req.cancel_run = &rr;
    else
        req.delete_run = &rr;
    if (web_api(r, &req, &resp) < 0)
        return;
    web_json(r, 200, json_pack("{s:s}", "run_id", rr.id));
    drover__api_response__free_unpacked(resp, NULL);
}

static void post_cancel(web_req_t *r)
{
    run_op(r, DROVER__API_REQUEST__OP_CANCEL_RUN);
}

static void delete_run(web_req_t *r)
{
    run_op(r, DROVER__API_REQUEST__OP_DELETE_RUN);
}

static void post_resume(web_req_t *r)
{
    static const char *const known[] = {"step", "reject", "params", NULL};
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ResumeRequest rr = DROVER__RESUME_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    kvs_t params = {0};
    json_t *body = web_body_json(r);
    if (!body)
        return;
    json_t *step = json_object_get(body, "step"), *reject = json_object_get(body, "reject");
    if (!web_json_members(r, body, known) ||
        !want_type(r, reject, "reject", JSON_TRUE, "true or false") ||
        !kvs_from_json(r, "params", json_object_get(body, "params"), &params))
        goto out;
    if (!json_is_string(step) || !*json_string_value(step)) {
        web_error(r, 400, "invalid", "step: expected the name of the gate's step");
        goto out;
    }
    rr.run_id = (char *)web_capture(r, "id");
    rr.step = (char *)json_string_value(step);
    rr.reject = json_is_true(reject);
    rr.params = params.v;
    rr.n_params = params.n;
    req.op_case = DROVER__API_REQUEST__OP_RESUME;
    req.resume = &rr;
    if (web_api(r, &req, &resp) < 0)
        goto out;
    web_json(r, 200, json_pack("{s:s}", "run_id", rr.run_id));
out:
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
    kvs_free(&params);
    json_decref(body);
}

const web_route_t routes_runs[] = {
    {"POST", "/api/v1/runs", post_run, 0},
    {"GET", "/api/v1/runs", get_runs, 0},
    {"GET", "/api/v1/runs/{id}", get_run, 0},
    {"DELETE", "/api/v1/runs/{id}", delete_run, 0},
    {"GET", "/api/v1/runs/{id}/tasks/{task}", get_task, 0},
    {"GET", "/api/v1/runs/{id}/items/{task}", get_items, 0},
    {"GET", "/api/v1/runs/{id}/spec", get_spec, 0},
    {"POST", "/api/v1/runs/{id}/cancel", post_cancel, 0},
    {"POST", "/api/v1/runs/{id}/resume", post_resume, 0},
    {0},
};
