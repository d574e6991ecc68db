#!/usr/bin/env python3
"""Write webd/openapi.json, the OpenAPI 3.1 document of drover-web's HTTP
API: the paths below (the routes of webd/routes_*.c) and components.schemas,
those of the API's objects generated from the proto descriptors by
`drover-web --print-schemas` (so they cannot drift from what pbjson.c
writes) plus the few shapes drover-web itself makes (errors, lists).

    webd/gen-openapi.py BUILD/drover-web           rewrite webd/openapi.json
    webd/gen-openapi.py --check BUILD/drover-web   exit 1 if it differs

Every operation also has a `default` response (an Error): any refusal
(401, 403, 404, 413, 429, 503...) is JSON of that shape.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "openapi.json")


def ref(name):
    return {"$ref": "#/components/schemas/" + name}


def obj(props, required=None, additional=False):
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required,
            "additionalProperties": additional}


def arr(items):
    return {"type": "array", "items": items}


STR = {"type": "string"}
OWN_SCHEMAS = {
    "Error": obj({"error": STR, "code": STR, "errors": arr(ref("SpecError"))},
                 required=["error", "code"]),
    "Health": obj({"ok": {"type": "boolean"}, "droverd": {"type": "boolean"}}),
    "RunId": obj({"run_id": STR}),
    "Ticket": obj({"url": STR, "expires_ms": {"type": "integer"}}),
    "RunList": obj({"runs": arr(ref("RunView")), "next": {"type": ["string", "null"]}}),
    "AgentName": obj({"agent": STR}),
    "AgentList": obj({"agents": arr(ref("AgentView"))}),
    "PoolList": obj({"pools": arr(ref("PoolView"))}),
    "ScheduleList": obj({"schedules": arr(ref("ScheduleView"))}),
    "RunIds": obj({"run_ids": arr(STR)}),
    "TokenList": obj({"tokens": arr(ref("TokenView"))}),
    "TokenCreated": obj({"token": STR, "tokens": arr(ref("TokenView"))}),
    "EventPage": obj({"events": arr(ref("EventRecord")), "next_seq": {"type": "integer"},
                      "truncated": {"type": "boolean"}}),
    "ArtifactList": obj({"artifacts": arr(ref("ArtifactView"))}),
    "ItemPage": obj({"run_id": STR, "task": STR, "total": {"type": "integer", "minimum": 0},
                     "offset": {"type": "integer", "minimum": 0},
                     "event_seq": {"type": "integer", "minimum": 0},
                     "items": arr(ref("TaskView"))}),
    "SubmitJson": obj({"spec": STR, "file": STR,
                       "params": {"type": "object", "additionalProperties": STR},
                       "imports": arr(obj({"path": STR, "content": STR})),
                       "no_cache": {"type": "boolean"}}, required=["spec"]),
    "ResumeBody": obj({"step": STR, "reject": {"type": "boolean"},
                       "params": {"type": "object", "additionalProperties": STR}},
                      required=["step"]),
    "PreemptBody": obj({"deadline_ms": {"type": "integer", "minimum": 0}}, required=[]),
    "ScaleBody": obj({"nodes": {"type": "integer", "minimum": 0}}),
    # ttl, then any other TokenRequest field by its name (pool, uses, node;
    # an API token's name and role)
    "TokenCreateBody": obj({"ttl": {"type": ["string", "integer"]}, "pool": STR,
                            "uses": {"type": "integer", "minimum": 0}, "node": STR},
                           required=[], additional=True),
}


def json_body(schema):
    return {"content": {"application/json": {"schema": ref(schema)}}}


def resp(desc, schema=None, ctype="application/json"):
    r = {"description": desc}
    if schema:
        r["content"] = {ctype: {"schema": ref(schema) if isinstance(schema, str) else schema}}
    return r


def q(name, desc, schema=None, many=False):
    s = schema or STR
    return {"name": name, "in": "query", "description": desc,
            "schema": arr(s) if many else s, **({"explode": True} if many else {})}


def p(name, desc):
    return {"name": name, "in": "path", "required": True, "description": desc, "schema": STR}


RUN_ID = p("id", "a run id (r000042)")
INT = {"type": "integer", "minimum": 0}

# (method, path, summary, parameters, request body, {status: response})
OPS = [
    ("get", "/healthz", "Whether drover-web and droverd answer (no token)", [], None,
     {"200": resp("up", "Health")}),
    ("get", "/api/v1/openapi.json", "This document (no token)", [], None,
     {"200": resp("the OpenAPI document", {"type": "object"})}),
    ("get", "/metrics", "Prometheus metrics (text exposition)", [], None,
     {"200": resp("metrics", STR, "text/plain")}),
    ("get", "/api/v1/status", "droverd's settings, counters and waiting tasks", [], None,
     {"200": resp("status", "StatusView")}),
    ("get", "/api/v1/whoami", "Who the token is: its name and role", [], None,
     {"200": resp("the caller", "CallerView")}),
    ("post", "/api/v1/runs", "Submit a pipeline",
     [q("param", "KEY=VALUE (with a YAML body)", many=True),
      q("file", "the spec's file name, for errors (YAML body)"),
      q("no_cache", "1: do not reuse cached results (YAML body)")],
     {"required": True, "content": {"application/yaml": {"schema": STR},
                                    "application/json": {"schema": ref("SubmitJson")}}},
     {"201": resp("submitted (Location: /api/v1/runs/ID)", "RunId"),
      "400": resp("refused: the spec's errors in errors[]", "Error")}),
    ("get", "/api/v1/runs", "Runs, newest first, a page at a time",
     [q("status", "only runs in these states", {"type": "string", "enum": [
         "pending", "running", "succeeded", "failed", "cancelled"]}, many=True),
      q("name", "only runs of this name"), q("owner", "only runs of this owner"),
      q("schedule", "only runs of this schedule"),
      q("limit", "at most this many (1..1000, 100)", INT),
      q("before", "the page after the one whose `next` this is")], None,
     {"200": resp("a page; next: the `before` of the next page, or null", "RunList")}),
    ("get", "/api/v1/runs/{id}", "A run with its tasks",
     [RUN_ID, q("view", "summary: every task but the fan-outs' items and what is inside "
                "them, no history (its size is the spec's, not the item counts'); full (the "
                "default): every task with its attempts",
                {"type": "string", "enum": ["full", "summary"]})], None,
     {"200": resp("the run (event_seq: follow it with /events since=event_seq)", "RunView")}),
    ("delete", "/api/v1/runs/{id}", "Delete an ended run", [RUN_ID], None,
     {"200": resp("deleted", "RunId"), "409": resp("the run has not ended", "Error")}),
    ("get", "/api/v1/runs/{id}/tasks/{task}", "One task, with its attempts (history)",
     [RUN_ID, p("task", "the task's name")], None, {"200": resp("the task", "TaskView")}),
    ("get", "/api/v1/runs/{id}/items/{task}", "A page of a fan-out's items, in item order",
     [RUN_ID, p("task", "the fan-out task's name (a for_each step)"),
      q("offset", "skip this many (of those matching status)", INT),
      q("limit", "at most this many (1..1000, 100)", INT),
      q("status", "only items in these states", {"type": "string", "enum": [
          "waiting", "ready", "assigned", "running", "succeeded", "failed", "preempted",
          "lost", "skipped", "cancelled", "cached", "suspended"]}, many=True)], None,
     {"200": resp("a page; total: the items matching status", "ItemPage"),
      "400": resp("not a fan-out, or a bad offset, limit or status", "Error")}),
    ("get", "/api/v1/runs/{id}/spec", "The YAML the run was submitted from", [RUN_ID], None,
     {"200": resp("the spec (X-Drover-File: its file name)", STR, "text/yaml")}),
    ("post", "/api/v1/runs/{id}/cancel", "Cancel a run", [RUN_ID], None,
     {"200": resp("cancelled", "RunId"), "409": resp("the run has ended", "Error")}),
    ("post", "/api/v1/runs/{id}/resume", "Approve (or reject) a gate", [RUN_ID],
     {"required": True, **json_body("ResumeBody")}, {"200": resp("resumed", "RunId")}),
    ("get", "/api/v1/runs/{id}/logs/{task}", "A task's output",
     [RUN_ID, p("task", "the task's name"), q("attempt", "1.. (latest)", INT),
      q("offset", "from this byte", INT), q("follow", "1: server-sent events")], None,
     {"200": {"description": "the bytes (text/plain), or with follow=1 events `log` and "
              "`end` (text/event-stream)",
              "content": {"text/plain": {"schema": STR}, "text/event-stream": {"schema": STR}}}}),
    ("get", "/api/v1/runs/{id}/artifacts", "A run's artifacts", [RUN_ID], None,
     {"200": resp("the artifacts", "ArtifactList")}),
    ("get", "/api/v1/runs/{id}/artifacts/{task}/{name}", "An artifact's bytes (a directory: tar)",
     [RUN_ID, p("task", "the task's name"), p("name", "the artifact's name")], None,
     {"200": {"description": "the bytes (X-Drover-Digest: sha256:HEX)",
              "content": {"application/octet-stream": {"schema": STR},
                          "application/x-tar": {"schema": STR}}}}),
    ("post", "/api/v1/runs/{id}/artifacts/{task}/{name}/ticket",
     "A download ticket: a URL that downloads the artifact once, without a token, "
     "within 60 s (for a browser's plain download)",
     [RUN_ID, p("task", "the task's name"), p("name", "the artifact's name")], None,
     {"201": resp("the ticket", "Ticket")}),
    ("get", "/api/v1/downloads/{ticket}", "A download ticket's artifact (no token: the "
     "ticket's; used once)", [p("ticket", "the ticket (64 hex digits)")], None,
     {"200": {"description": "the bytes, as GET .../artifacts/{task}/{name} answers",
              "content": {"application/octet-stream": {"schema": STR},
                          "application/x-tar": {"schema": STR}}}}),
    ("get", "/api/v1/agents", "The agents", [], None, {"200": resp("agents", "AgentList")}),
    ("post", "/api/v1/agents/{name}/drain", "Take no new work on an agent",
     [p("name", "the agent")], None, {"200": resp("drained", "AgentName")}),
    ("post", "/api/v1/agents/{name}/undrain", "Put an agent back in service",
     [p("name", "the agent")], None, {"200": resp("in service", "AgentName")}),
    ("post", "/api/v1/agents/{name}/preempt", "A preemption drill",
     [p("name", "the agent")], {"required": False, **json_body("PreemptBody")},
     {"200": resp("noticed", "AgentName")}),
    ("delete", "/api/v1/agents/{name}", "Forget a disconnected agent with no steps",
     [p("name", "the agent")], None,
     {"200": resp("forgotten", "AgentName"), "409": resp("still connected or busy", "Error")}),
    ("get", "/api/v1/pools", "Node pools", [], None, {"200": resp("pools", "PoolList")}),
    ("post", "/api/v1/pools/{name}/scale", "Keep N nodes in a pool", [p("name", "the pool")],
     {"required": True, **json_body("ScaleBody")}, {"200": resp("pools", "PoolList")}),
    ("post", "/api/v1/pools/{name}/drain", "Drain and remove a pool's nodes",
     [p("name", "the pool")], None, {"200": resp("pools", "PoolList")}),
    ("get", "/api/v1/schedules", "Schedules", [], None,
     {"200": resp("schedules", "ScheduleList")}),
    ("post", "/api/v1/schedules/{name}/pause", "Pause a schedule",
     [p("name", "the schedule")], None, {"200": resp("schedules", "ScheduleList")}),
    ("post", "/api/v1/schedules/{name}/resume", "Resume a schedule",
     [p("name", "the schedule")], None, {"200": resp("schedules", "ScheduleList")}),
    ("post", "/api/v1/schedules/{name}/trigger", "Start a schedule's run now",
     [p("name", "the schedule")], None, {"200": resp("the runs started", "RunIds")}),
    ("get", "/api/v1/tokens", "Tokens (never their secrets)", [], None,
     {"200": resp("tokens", "TokenList")}),
    ("post", "/api/v1/tokens", "Make a token (shown once)", [],
     {"required": False, **json_body("TokenCreateBody")},
     {"201": resp("the token", "TokenCreated")}),
    ("delete", "/api/v1/tokens/{id}", "Revoke a token", [p("id", "the token's id")], None,
     {"200": resp("tokens", "TokenList")}),
    ("get", "/api/v1/events", "The event log: server-sent events, or one JSON page",
     [q("since", "events after this seq (Last-Event-ID wins)", INT),
      q("run", "only this run's events"),
      q("format", "json: one page instead of a stream", {"type": "string",
                                                          "enum": ["json", "sse"]}),
      q("max", "format=json: at most this many (1..1000, 256)", INT)], None,
     {"200": {"description": "text/event-stream: `id: SEQ`, `event: task|run|agent|"
              "checkpoint|pool_node`, `data: EventRecord`; `event: truncated` data "
              "{first_seq} when events were pruned; `: ping` every 15 s. format=json: a page",
              "content": {"text/event-stream": {"schema": STR},
                          "application/json": {"schema": ref("EventPage")}}}}),
]


def build(binary):
    schemas = json.loads(subprocess.run([binary, "--print-schemas"], check=True,
                                        capture_output=True, text=True).stdout)
    for k, v in OWN_SCHEMAS.items():
        assert k not in schemas, k
        schemas[k] = v
    paths = {}
    for method, path, summary, params, body, responses in OPS:
        op = {"summary": summary, "operationId": method + path.replace("/api/v1", "")
              .replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")}
        if path not in ("/healthz", "/api/v1/openapi.json", "/api/v1/downloads/{ticket}"):
            op["security"] = [{"bearer": []}]
        else:
            op["security"] = []
        if params:
            op["parameters"] = params
        if body:
            op["requestBody"] = body
        op["responses"] = dict(responses, default=resp("refused or failed", "Error"))
        paths.setdefault(path, {})[method] = op
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "drover HTTP API (drover-web)", "version": "1",
                 "description": "REST and server-sent events in front of droverd. Every "
                 "request but /healthz and /api/v1/openapi.json needs an API token: "
                 "`Authorization: Bearer TOKEN`; droverd decides what its role may do. "
                 "Objects are droverd's protobuf messages as JSON: proto field names, enums "
                 "as lowercased names without their prefix, KeyValue lists as objects, bytes "
                 "as hex; sub-messages absent when unset."},
        "servers": [{"url": "http://127.0.0.1:7080"}],
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": dict(sorted(schemas.items()))},
    }
    return json.dumps(doc, indent=1) + "\n"


def main():
    args = sys.argv[1:]
    check = args[:1] == ["--check"]
    if check:
        args = args[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    text = build(args[0])
    if check:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit("webd/openapi.json is not what webd/gen-openapi.py makes: run "
                         "webd/gen-openapi.py BUILD/drover-web and commit it")
        return
    with open(OUT, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
