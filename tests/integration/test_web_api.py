"""drover-web, the HTTP API (README "HTTP API"), through HTTP only
(urllib/http.client) against real daemons: droverd, an agent and
drover-web from harness.py. Every path and method of webd/openapi.json is
walked and its answers checked against the document's schemas (a small
validator of the JSON Schema subset the document uses); the user flows:
submit, follow /events to the run's end, approve a gate, cancel, delete,
drain an agent; undeclared paths and methods answer 404/405 in JSON."""
import http.client
import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


class Http:
    """A tiny client: one request per call, JSON in and out."""

    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.client_class = http.client.HTTPConnection

    def request(self, method, path, body=None, headers=None, token=True, timeout=60):
        h = dict(headers or {})
        if token and self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            conn.close()

    def json(self, method, path, body=None, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        ctype = headers.get("content-type", "")
        if ctype.startswith("application/json"):
            return status, json.loads(data)
        return status, data


def api_token(c):
    """An admin API token for drover-web's requests. droverd checks bearer
    tokens once API tokens exist (`drover token create NAME --role admin`);
    before that it ignores them and any word will do."""
    r = c.cli("token", "create", "web-test", "--role", "admin")
    for word in (r.out or "").split():
        if word.startswith("drva1."):
            return word
    return "test-token"


class Sse:
    """A server-sent events reader over http.client: events() yields
    (id, event, data) as they come; the socket timeout bounds each wait."""

    def __init__(self, http, path, headers=None, timeout=60):
        h = {"Authorization": "Bearer " + http.token, "Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn = http_client_conn(http, timeout)
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()

    def events(self):
        ev = {"id": None, "event": None, "data": []}
        while True:
            line = self.resp.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line == "":
                if ev["data"] or ev["event"]:
                    yield ev["id"], ev["event"], "\n".join(ev["data"])
                ev = {"id": None, "event": None, "data": []}
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    ev["data"].append(value)
                elif field in ("id", "event"):
                    ev[field] = value

    def close(self):
        self.conn.close()


def http_client_conn(http, timeout):
    return http.client_class(http.host, http.port, timeout=timeout)


class WebSkeletonTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_web()
        self.http = Http(self.c.web_url, api_token(self.c))

    def assertError(self, status_body, status, code):
        st, body = status_body
        self.assertEqual(st, status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body.get("code"), code, body)
        self.assertIsInstance(body.get("error"), str, body)

    def test_status_healthz_and_refusals(self):
        h = self.http
        st, body = h.json("GET", "/api/v1/status")
        self.assertEqual(st, 200, body)
        self.assertIsInstance(body["limits"], dict, body)
        self.assertIsInstance(body["counters"], dict, body)
        self.assertIsInstance(body["waiting"], list, body)
        st, body = h.json("GET", "/healthz", token=False)
        self.assertEqual((st, body), (200, {"ok": True, "droverd": True}))
        # no token: 401, with the scheme named
        st, headers, data = h.request("GET", "/api/v1/status", token=False)
        self.assertEqual(st, 401, data)
        self.assertEqual(json.loads(data)["code"], "unauthenticated")
        self.assertIn("Bearer", headers.get("www-authenticate", ""))
        # undeclared path, undeclared method
        self.assertError(h.json("GET", "/api/v1/nope"), 404, "not_found")
        st, headers, data = h.request("DELETE", "/api/v1/status")
        self.assertEqual(st, 405, data)
        self.assertEqual(json.loads(data)["code"], "method_not_allowed")
        self.assertEqual(headers.get("allow"), "GET")
        # droverd gone: 503, and healthz says so
        self.c.kill_droverd()
        self.assertError(h.json("GET", "/api/v1/status"), 503, "unavailable")
        st, body = h.json("GET", "/healthz", token=False)
        self.assertEqual((st, body), (200, {"ok": True, "droverd": False}))


def sleep_spec(name="sleeper", seconds=600):
    return {"name": name, "steps": [{"name": "s", "script": "sleep %d" % seconds}]}


class WebFlowsTest(harness.DroverTestCase):
    """The user flows, through HTTP only, with one agent."""

    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=4)
        self.c.wait_agent_connected("w1")
        self.c.start_web()
        self.http = Http(self.c.web_url, api_token(self.c))

    def submit(self, spec, **query):
        q = urllib.parse.urlencode(query, doseq=True)
        st, headers, data = self.http.request(
            "POST", "/api/v1/runs" + ("?" + q if q else ""),
            body=harness.to_yaml(spec) if isinstance(spec, dict) else spec,
            headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 201, data)
        rid = json.loads(data)["run_id"]
        self.assertEqual(headers.get("location"), "/api/v1/runs/" + rid)
        return rid

    def follow_to_end(self, rid, since=0):
        """Follow /events?run=ID until the run's end event; its events."""
        sse = Sse(self.http, "/api/v1/events?run=%s&since=%d" % (rid, since),
                  timeout=60 * harness.SCALE)
        self.assertEqual(sse.resp.status, 200)
        self.assertTrue(sse.resp.getheader("content-type").startswith("text/event-stream"))
        seen = []
        try:
            for eid, kind, data in sse.events():
                if kind == "truncated":
                    continue
                e = json.loads(data)
                self.assertEqual(int(eid), e["seq"], e)
                self.assertEqual(kind, e["kind"], e)
                self.assertEqual(e["run_id"], rid, e)
                seen.append(e)
                if kind == "run" and e["to"] in harness.FINAL_RUN:
                    return seen
        finally:
            sse.close()
        self.fail("the event stream ended before the run did: %r" % seen)

    def test_submit_follow_get_list(self):
        h = self.http
        rid = self.submit({"name": "pipe", "params": {"who": "x"}, "steps": [
            {"name": "a", "script": "echo hi"},
            {"name": "b", "needs": ["a"], "script": "echo {{params.who}}"},
        ]}, param=["who=web"], file="pipe.yaml")
        evs = self.follow_to_end(rid)
        self.assertEqual(evs[-1]["to"], "SUCCEEDED", evs)
        seqs = [e["seq"] for e in evs]
        self.assertEqual(seqs, sorted(set(seqs)), "events out of order or repeated")
        self.assertIn(("b", "SUCCEEDED"), [(e["task"], e["to"]) for e in evs if e["kind"] == "task"])
        # the run, a task, the spec
        st, run = h.json("GET", "/api/v1/runs/" + rid)
        self.assertEqual(st, 200, run)
        self.assertEqual((run["id"], run["status"], run["name"]), (rid, "succeeded", "pipe"))
        self.assertEqual(run["params"], {"who": "web"})
        self.assertEqual([t["name"] for t in run["tasks"]], ["a", "b"])
        st, t = h.json("GET", "/api/v1/runs/%s/tasks/b" % rid)
        self.assertEqual(st, 200, t)
        self.assertEqual((t["name"], t["status"]), ("b", "succeeded"))
        self.assertEqual(len(t["history"]), 1, t)
        self.assertEqual(t["history"][0]["exit_code"], 0, t)
        st, body = h.json("GET", "/api/v1/runs/%s/tasks/nope" % rid)
        self.assertEqual((st, body["code"]), (404, "not_found"), body)
        st, headers, data = h.request("GET", "/api/v1/runs/%s/spec" % rid)
        self.assertEqual(st, 200)
        self.assertTrue(headers["content-type"].startswith("text/yaml"))
        self.assertIn(b"echo {{params.who}}", data)
        self.assertEqual(headers.get("x-drover-file"), "pipe.yaml")
        # a JSON submit, then pages of the list, newest first
        st, body = h.json("POST", "/api/v1/runs", {
            "spec": "name: j\nparams: {n: \"1\"}\nsteps:\n  - name: s\n    script: 'true'\n",
            "params": {"n": "2"}, "file": "j.yaml", "no_cache": True})
        self.assertEqual(st, 201, body)
        rid2 = body["run_id"]
        rid3 = self.submit({"name": "k", "steps": [{"name": "s", "script": "true"}]})
        st, page = h.json("GET", "/api/v1/runs?limit=2")
        self.assertEqual(st, 200, page)
        self.assertEqual([r["id"] for r in page["runs"]], [rid3, rid2])
        self.assertEqual(page["next"], rid2)
        self.assertNotIn("tasks", page["runs"][0]) if page["runs"][0].get("tasks") is None \
            else self.assertEqual(page["runs"][0]["tasks"], [])
        st, page2 = h.json("GET", "/api/v1/runs?limit=2&before=" + page["next"])
        self.assertEqual(st, 200, page2)
        self.assertEqual([r["id"] for r in page2["runs"]], [rid])
        self.assertIsNone(page2["next"])
        harness.wait_until(lambda: self.c.get_run(rid2)["status"] in harness.FINAL_RUN)
        st, page = h.json("GET", "/api/v1/runs?status=succeeded&name=j")
        self.assertEqual([r["id"] for r in page["runs"]], [rid2], page)
        self.assertEqual(page["runs"][0]["params"], {"n": "2"})
        # bad filters
        for q in ("status=bogus", "limit=0", "limit=100000", "before=xyz"):
            st, body = h.json("GET", "/api/v1/runs?" + q)
            self.assertEqual((st, body["code"]), (400, "invalid"), (q, body))
        # events as one JSON page
        st, page = h.json("GET", "/api/v1/events?format=json&run=%s&max=3" % rid)
        self.assertEqual(st, 200, page)
        self.assertEqual(len(page["events"]), 3, page)
        self.assertEqual(page["next_seq"], page["events"][-1]["seq"])
        self.assertFalse(page["truncated"])
        # Last-Event-ID resumes after the event it names
        sse = Sse(self.http, "/api/v1/events?run=" + rid,
                  headers={"Last-Event-ID": str(page["next_seq"])})
        try:
            first = next(sse.events())
            self.assertGreater(int(first[0]), page["next_seq"])
        finally:
            sse.close()

    def test_spec_errors(self):
        st, body = self.http.json("POST", "/api/v1/runs?file=bad.yaml",
                                  "name: bad\nsteps:\n  - name: a\n    scirpt: x\n"
                                  "  - name: b\n    needs: [zz]\n    script: y\n",
                                  headers={"Content-Type": "application/yaml"})
        self.assertEqual((st, body["code"]), (400, "invalid"), body)
        self.assertGreaterEqual(len(body["errors"]), 2, body)
        for e in body["errors"]:
            self.assertEqual(e["file"], "bad.yaml", e)
            self.assertGreater(e["line"], 0, e)
            self.assertGreater(e["col"], 0, e)
            self.assertTrue(e["message"], e)
        self.assertTrue(any("scirpt" in e["message"] for e in body["errors"]), body)
        self.assertTrue(any(e["line"] == 6 for e in body["errors"]), body)
        # malformed bodies
        h = self.http
        for body, ctype, what in (
                ("{", "application/json", "not valid JSON"),
                ("[1]", "application/json", "JSON object"),
                ('{"spec": 1}', "application/json", "spec"),
                ('{"spec": "x", "nope": 1}', "application/json", "unknown member 'nope'"),
                ('{"spec": "x", "params": {"a": 1}}', "application/json", "params.a"),
                ("", "application/yaml", "empty"),
                ("x", "image/png", "application/yaml")):
            st, b = h.json("POST", "/api/v1/runs", body, headers={"Content-Type": ctype})
            self.assertIn(st, (400, 415), (body, b))
            self.assertIn(what, b["error"], (body, b))
        st, b = h.json("POST", "/api/v1/runs?param=novalue", "name: x\nsteps: []\n",
                       headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 400, b)
        self.assertIn("KEY=VALUE", b["error"])

    def test_gate_cancel_delete(self):
        h = self.http
        rid = self.submit({"name": "gated", "steps": [
            {"name": "gate", "suspend": {}, "outputs": {"params": ["who"]}},
            {"name": "after", "needs": ["gate"],
             "script": "echo {{steps.gate.outputs.params.who}}"}]})
        harness.wait_until(lambda: harness.task(self.c.get_run(rid), "gate")["status"]
                           == "SUSPENDED", what="gate suspended")
        st, b = h.json("POST", "/api/v1/runs/%s/resume" % rid, {"step": "gate", "params": {"nope": "1"}})
        self.assertEqual((st, b["code"]), (400, "invalid"), b)
        st, b = h.json("POST", "/api/v1/runs/%s/resume" % rid, {"reject": True})
        self.assertEqual((st, b["code"]), (400, "invalid"), b)
        st, b = h.json("POST", "/api/v1/runs/%s/resume" % rid, {"step": "gate", "params": {"who": "alice"}})
        self.assertEqual((st, b), (200, {"run_id": rid}))
        evs = self.follow_to_end(rid)
        self.assertEqual(evs[-1]["to"], "SUCCEEDED", evs)
        st, t = h.json("GET", "/api/v1/runs/%s/tasks/gate" % rid)
        self.assertEqual(t["out_params"], {"who": "alice"}, t)
        # cancel a running one; again: 409; delete; then 404
        rid2 = self.submit(sleep_spec())
        self.c.wait_task_status(rid2, "s", "RUNNING")
        st, b = h.json("POST", "/api/v1/runs/%s/cancel" % rid2)
        self.assertEqual((st, b), (200, {"run_id": rid2}))
        evs = self.follow_to_end(rid2)
        self.assertEqual(evs[-1]["to"], "CANCELLED", evs)
        st, b = h.json("POST", "/api/v1/runs/%s/cancel" % rid2)
        self.assertEqual((st, b["code"]), (409, "conflict"), b)
        st, b = h.json("DELETE", "/api/v1/runs/" + rid2)
        self.assertEqual((st, b), (200, {"run_id": rid2}))
        for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/spec")):
            st, b = h.json(method, "/api/v1/runs/%s%s" % (rid2, path))
            self.assertEqual((st, b["code"]), (404, "not_found"), (method, path, b))

    def test_agents_drain(self):
        h = self.http
        st, b = h.json("GET", "/api/v1/agents")
        self.assertEqual(st, 200, b)
        self.assertEqual([a["name"] for a in b["agents"]], ["w1"])
        self.assertFalse(b["agents"][0]["drained"])
        st, b = h.json("POST", "/api/v1/agents/w1/drain")
        self.assertEqual((st, b), (200, {"agent": "w1"}))
        self.assertTrue(h.json("GET", "/api/v1/agents")[1]["agents"][0]["drained"])
        # a drained agent takes nothing: the run waits
        rid = self.submit({"name": "w", "steps": [{"name": "s", "script": "true"}]})
        harness.holds_for(lambda: self.c.get_run(rid)["status"] not in harness.FINAL_RUN, 1.0)
        st, b = h.json("POST", "/api/v1/agents/w1/undrain")
        self.assertEqual((st, b), (200, {"agent": "w1"}))
        self.assertEqual(self.follow_to_end(rid)[-1]["to"], "SUCCEEDED")
        for path in ("/api/v1/agents/nope/drain", "/api/v1/agents/nope/preempt"):
            st, b = h.json("POST", path)
            self.assertEqual((st, b["code"]), (404, "not_found"), (path, b))
        st, b = h.json("POST", "/api/v1/agents/w1/preempt", {"deadline_ms": "soon"})
        self.assertEqual((st, b["code"]), (400, "invalid"), b)
        # a connected agent cannot be forgotten
        st, b = h.json("DELETE", "/api/v1/agents/w1")
        self.assertEqual((st, b["code"]), (409, "conflict"), b)


class WebBoundsTest(harness.DroverTestCase):
    """Refusals: rate, body, connections, slow clients, bad settings."""

    def setUp(self):
        super().setUp()
        self.c.start_droverd()

    def start(self, settings):
        path = self.c.path("drover-web.yaml")
        with open(path, "w") as f:
            f.write("".join("%s: %s\n" % kv for kv in settings.items()))
        self.c.start_web(extra=["--config", path])
        return Http(self.c.web_url, api_token(self.c))

    def test_rate_limit(self):
        h = self.start({"rate_limit": 2, "rate-burst": 3})
        got = []
        for _ in range(20):
            st, headers, data = h.request("GET", "/api/v1/status")
            got.append(st)
            if st == 429:
                body = json.loads(data)
                self.assertEqual(body["code"], "rate_limited", body)
                self.assertGreaterEqual(int(headers["retry-after"]), 1)
                break
        # the burst (less what start_web's /healthz took), then refused
        self.assertEqual(got[0], 200, got)
        self.assertLessEqual(got.count(200), 4, got)
        self.assertEqual(got[-1], 429, got)

    def test_body_connections_slow_clients(self):
        import socket
        import time
        h = self.start({"max-body": "1Ki", "max-connections-per-ip": 2, "timeout": "2s",
                        "rate-limit": 0})
        st, b = h.json("POST", "/api/v1/runs", "x" * 2048,
                       headers={"Content-Type": "application/yaml"})
        self.assertEqual((st, b["code"]), (413, "too_large"), b)
        # chunked, no Content-Length: refused once it passes the limit
        conn = http.client.HTTPConnection(h.host, h.port, timeout=30)
        conn.request("POST", "/api/v1/runs", body=iter([b"y" * 800] * 4), encode_chunked=True,
                     headers={"Authorization": "Bearer " + h.token,
                              "Content-Type": "application/yaml"})
        r = conn.getresponse()
        self.assertEqual(r.status, 413)
        self.assertEqual(json.loads(r.read())["code"], "too_large")
        conn.close()
        # a head larger than the connection's memory: refused, drover-web stays up
        st, _, _ = h.request("GET", "/api/v1/status", headers={"X-Big": "z" * (100 << 10)})
        self.assertIn(st, (413, 431))
        # two idle connections from this address: a third is refused in JSON
        idle = [socket.create_connection((h.host, h.port)) for _ in range(2)]
        try:
            harness.wait_until(lambda: h.json("GET", "/healthz")[0] == 429,
                               what="the third connection refused")
            st, headers, data = h.request("GET", "/healthz")
            self.assertEqual(st, 429)
            self.assertEqual(json.loads(data)["code"], "too_many_connections")
            # a slow client (half a request line) is cut off after --timeout
            t0 = time.monotonic()
            idle[0].sendall(b"GET /heal")
            idle[0].settimeout(30)
            self.assertEqual(idle[0].recv(100), b"")
            self.assertLess(time.monotonic() - t0, 20)
        finally:
            for s in idle:
                s.close()
        harness.wait_until(lambda: h.json("GET", "/healthz")[0] == 200, what="limits freed")

    def test_bad_settings(self):
        import subprocess
        path = self.c.path("bad.yaml")
        with open(path, "w") as f:
            f.write("listen: 127.0.0.1:1\nrate-limti: 5\n")
        r = subprocess.run([harness.bin_path("drover-web"), "--config", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("bad.yaml:2:1", r.stderr)
        r = subprocess.run([harness.bin_path("drover-web"), "--max-body", "lots"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("max-body", r.stderr)


if __name__ == "__main__":
    harness.main()
