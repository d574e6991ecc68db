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


def api_token(c, name="web-test", role="admin"):
    """An API token for drover-web's requests (`drover token create NAME
    --role ROLE`, admin by default): droverd checks it on every request."""
    r = c.cli("token", "create", name, "--role", role)
    for word in (r.out or "").split():
        if word.startswith("drva1."):
            return word
    raise AssertionError("no API token made: %s" % r.err)


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
        # whoami: the token's own name and role (the console's buttons)
        self.assertEqual(h.json("GET", "/api/v1/whoami"),
                         (200, {"name": "web-test", "role": "admin", "token": True}))
        reader = Http(self.c.web_url, api_token(self.c, "reader", "read"))
        self.assertEqual(reader.json("GET", "/api/v1/whoami"),
                         (200, {"name": "reader", "role": "read", "token": True}))
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


class WebEventsTest(harness.DroverTestCase):
    def test_truncated_then_resumes(self):
        """A reader behind the pruned log is told (event: truncated with
        first_seq) and goes on from the oldest event kept."""
        c = self.c
        c.start_droverd(extra=["--events-max", "5"])
        c.start_agent("w1")
        rid = c.submit({"name": "p", "steps": [{"name": "s%d" % i, "script": "true"}
                                               for i in range(4)]})
        c.wait_run_final(rid)
        c.restart_droverd()  # prunes at start
        c.start_web()
        h = Http(c.web_url, api_token(c))
        st, page = h.json("GET", "/api/v1/events?format=json&since=0")
        self.assertEqual(st, 200, page)
        self.assertTrue(page["truncated"], page)
        first = page["events"][0]["seq"]
        self.assertGreater(first, 1, page)
        sse = Sse(h, "/api/v1/events?since=0")
        try:
            it = sse.events()
            eid, kind, data = next(it)
            self.assertEqual(kind, "truncated")
            self.assertEqual(json.loads(data), {"first_seq": first})
            eid, kind, data = next(it)
            self.assertEqual(int(eid), first)
        finally:
            sse.close()
        # a bad since or Last-Event-ID, an unknown run: 400 / 404, not a stream
        for path, headers, want in (("/api/v1/events?since=x", None, 400),
                                    ("/api/v1/events", {"Last-Event-ID": "-1"}, 400),
                                    ("/api/v1/events?run=r999999", None, 404),
                                    ("/api/v1/events?format=xml", None, 400)):
            st, b = h.json("GET", path, headers=headers)
            self.assertEqual(st, want, (path, b))


class WebTokensTest(harness.DroverTestCase):
    def test_roles_and_revocation(self):
        """droverd decides what a token may do: drover-web passes each
        caller's token on."""
        c = self.c
        c.start_droverd()
        r = c.cli("token", "create", "reader", "--role", "read")
        reader = [w for w in (r.out or "").split() if w.startswith("drva1.")]
        self.assertEqual((r.rc, len(reader)), (0, 1), r.err)
        c.start_web()
        h = Http(c.web_url, reader[0])
        self.assertEqual(h.json("GET", "/api/v1/runs")[0], 200)
        st, b = h.json("POST", "/api/v1/runs", "name: x\nsteps:\n  - name: a\n    script: 'true'\n",
                       headers={"Content-Type": "application/yaml"})
        self.assertEqual((st, b["code"]), (403, "permission_denied"), b)
        self.assertIn("reader", b["error"])
        bad = Http(c.web_url, "drva1.00000000." + "0" * 64)
        st, b = bad.json("GET", "/api/v1/runs")
        self.assertEqual((st, b["code"]), (401, "unauthenticated"), b)
        self.assertEqual(c.cli("token", "revoke", "reader").rc, 0)
        st, b = h.json("GET", "/api/v1/runs")
        self.assertEqual((st, b["code"]), (401, "unauthenticated"), b)


class WebMetricsTest(harness.DroverTestCase):
    def test_metrics_over_http(self):
        """/metrics is droverd's metrics in the text format Prometheus
        scrapes (promtool agrees), for a token with role read; none: 401."""
        import subprocess
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        c.wait_agent_connected("w1")
        rid = c.submit({"name": "m", "steps": [{"name": "a", "script": "true"}]})
        self.assertEqual(c.wait_run_final(rid)["status"], "SUCCEEDED")
        r = c.cli("token", "create", "prom", "--role", "read")
        self.assertEqual(r.rc, 0, r.err)
        c.start_web()
        h = Http(c.web_url, r.out.strip())
        st, headers, data = h.request("GET", "/metrics")
        self.assertEqual(st, 200, data)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"), headers)
        text = data.decode()
        self.assertRegex(text, r'(?m)^drover_tasks\{[^}]*status="succeeded"[^}]*\} 1$')
        check = subprocess.run(["promtool", "check", "metrics"], input=data,
                               capture_output=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stderr.decode() + check.stdout.decode())
        st, _, data = h.request("GET", "/metrics", token=False)
        self.assertEqual(st, 401, data)


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
        # the packaged example settings are valid
        r = subprocess.run([harness.bin_path("drover-web"), "--config",
                            os.path.join(harness.SOURCE_DIR, "systemd", "drover-web.yaml.example"),
                            "--print-schemas"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r)
        r = subprocess.run([harness.bin_path("drover-web"), "--max-body", "lots"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("max-body", r.stderr)


def validate(schema, value, root, where="$"):
    """Check value against schema (the JSON Schema subset openapi.json
    uses: $ref, type (one or a list), properties, required,
    additionalProperties, items, enum, minimum, pattern); raise
    AssertionError naming the place that does not fit."""
    import re
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return validate(root["components"]["schemas"][name], value, root, where)
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        ok = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool), "null": lambda v: v is None}
        if not any(ok[t](value) for t in types):
            raise AssertionError("%s: %r is not of type %s" % (where, value, types))
    if "enum" in schema and value not in schema["enum"]:
        raise AssertionError("%s: %r not one of %s" % (where, value, schema["enum"]))
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        raise AssertionError("%s: %r below %s" % (where, value, schema["minimum"]))
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        raise AssertionError("%s: %r does not match %s" % (where, value, schema["pattern"]))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                raise AssertionError("%s: required member %r missing: %r" % (where, k, value))
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                validate(props[k], v, root, "%s.%s" % (where, k))
            elif extra is False:
                raise AssertionError("%s: member %r not in the schema" % (where, k))
            elif isinstance(extra, dict):
                validate(extra, v, root, "%s.%s" % (where, k))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            validate(schema["items"], v, root, "%s[%d]" % (where, i))


class WebOpenApiTest(harness.DroverTestCase):
    """Every path and method of webd/openapi.json, walked against real
    daemons: the status each gives here, and its JSON against the
    document's schema for that status."""

    # (method, path, expected status): the walk's order (mutations last)
    EXPECT = [
        ("get", "/healthz", 200),
        ("get", "/api/v1/openapi.json", 200),
        ("get", "/metrics", 200),
        ("get", "/api/v1/status", 200),
        ("get", "/api/v1/whoami", 200),
        ("get", "/api/v1/runs", 200),
        ("get", "/api/v1/runs/{id}", 200),
        ("get", "/api/v1/runs/{id}/tasks/{task}", 200),
        ("get", "/api/v1/runs/{id}/items/{task}", 400),  # step a is not a fan-out
        ("get", "/api/v1/runs/{id}/spec", 200),
        ("get", "/api/v1/runs/{id}/logs/{task}", 200),
        ("get", "/api/v1/runs/{id}/artifacts", 200),
        ("get", "/api/v1/runs/{id}/artifacts/{task}/{name}", 404),  # step a has no artifact w1
        ("post", "/api/v1/runs/{id}/artifacts/{task}/{name}/ticket", 404),  # likewise
        ("get", "/api/v1/downloads/{ticket}", 404),  # no such ticket
        ("get", "/api/v1/events", 200),
        ("get", "/api/v1/agents", 200),
        ("get", "/api/v1/pools", 200),
        ("get", "/api/v1/schedules", 200),
        ("get", "/api/v1/tokens", 200),
        ("post", "/api/v1/runs", 201),
        ("post", "/api/v1/runs/{id}/resume", 200),
        ("post", "/api/v1/runs/{id}/cancel", 200),
        ("delete", "/api/v1/runs/{id}", 200),
        ("post", "/api/v1/agents/{name}/drain", 200),
        ("post", "/api/v1/agents/{name}/undrain", 200),
        ("post", "/api/v1/agents/{name}/preempt", 200),
        ("delete", "/api/v1/agents/{name}", 409),
        ("post", "/api/v1/pools/{name}/scale", 404),  # no pools: droverd's config has none
        ("post", "/api/v1/pools/{name}/drain", 404),
        ("post", "/api/v1/schedules/{name}/pause", 404),  # no such schedule
        ("post", "/api/v1/schedules/{name}/resume", 404),
        ("post", "/api/v1/schedules/{name}/trigger", 404),
        ("post", "/api/v1/tokens", 201),
        ("delete", "/api/v1/tokens/{id}", 200),
    ]

    def test_walk_every_operation(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        c.wait_agent_connected("w1")
        c.start_web(extra=["--rate-limit", "0"])  # the walk is quick
        h = Http(c.web_url, api_token(c))
        with open(os.path.join(harness.SOURCE_DIR, "webd", "openapi.json")) as f:
            doc = json.load(f)
        st, served = h.json("GET", "/api/v1/openapi.json", token=False)
        self.assertEqual((st, served), (200, doc), "drover-web serves another document")
        declared = [(m, p) for p, ops in doc["paths"].items() for m in ops]
        self.assertEqual(sorted(declared), sorted((m, p) for m, p, _ in self.EXPECT),
                         "the walk and the document list different operations")
        done = c.submit({"name": "done", "steps": [{"name": "a", "script": "echo hi"}]})
        c.wait_run_final(done)
        gated = c.submit({"name": "g", "steps": [{"name": "gate", "suspend": {}}]})
        c.wait_task_status(gated, "gate", "SUSPENDED")
        sleeper = c.submit(sleep_spec())
        c.wait_task_status(sleeper, "s", "RUNNING")
        bodies = {
            ("post", "/api/v1/runs"): ("name: w\nsteps:\n  - name: s\n    script: 'true'\n",
                                       "application/yaml"),
            ("post", "/api/v1/runs/{id}/resume"): ({"step": "gate"}, None),
            ("post", "/api/v1/agents/{name}/preempt"): ({"deadline_ms": 60000}, None),
            ("post", "/api/v1/pools/{name}/scale"): ({"nodes": 1}, None),
            ("post", "/api/v1/tokens"): ({"ttl": "1h", "pool": "p1"}, None),
        }
        run_for = {"/api/v1/runs/{id}/resume": gated, "/api/v1/runs/{id}/cancel": sleeper}
        token_id = [None]
        for method, path, want in self.EXPECT:
            def fill(name):
                if name == "id" and path.startswith("/api/v1/tokens"):
                    return token_id[0]
                if name == "id" and method == "delete":
                    return done
                return {"id": run_for.get(path, done), "task": "a", "name": "w1"}[name] \
                    if not path.startswith(("/api/v1/pools", "/api/v1/schedules")) else "nope"
            url = path
            for part in ("id", "task", "name"):
                if "{%s}" % part in url:
                    url = url.replace("{%s}" % part, urllib.parse.quote(fill(part)))
            if path == "/api/v1/events":
                url += "?format=json&run=" + done
            body, ctype = bodies.get((method, path), (None, None))
            st, headers, data = h.request(method.upper(), url, body=body,
                                          headers={"Content-Type": ctype} if ctype else None)
            what = "%s %s -> %s %r" % (method.upper(), url, st, data[:300])
            self.assertEqual(st, want, what)
            op = doc["paths"][path][method]
            declared_resp = op["responses"].get(str(st), op["responses"]["default"])
            ctype_got = headers.get("content-type", "").split(";")[0]
            content = declared_resp.get("content", {})
            self.assertIn(ctype_got, content, what)
            if ctype_got == "application/json":
                value = json.loads(data)
                validate(content[ctype_got]["schema"], value, doc, "%s %s" % (method, path))
                if path == "/api/v1/tokens" and method == "post":
                    token_id[0] = value["tokens"][-1]["record"]["id"]
        # undeclared methods on every declared path: 405 with Allow; others 404
        for path, ops in doc["paths"].items():
            url = path.replace("{id}", done).replace("{task}", "a").replace("{name}", "x")
            for method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
                if method.lower() in ops:
                    continue
                st, headers, data = h.request(method, url)
                self.assertEqual(st, 405, (method, url, data))
                validate({"$ref": "#/components/schemas/Error"}, json.loads(data), doc)
                self.assertEqual(sorted(headers["allow"].split(", ")),
                                 sorted(m.upper() for m in ops), (method, url))
        # (/ is the web console's page: tests/browser/)
        for url in ("/index.html", "/api", "/api/v1", "/api/v1/runs/", "/api/v1/runs/%s/x" % done,
                    "/api/v2/status", "/api/v1/runs/%s/tasks" % done):
            st, headers, data = h.request("GET", url)
            self.assertEqual(st, 404, (url, data))
            self.assertEqual(json.loads(data)["code"], "not_found")


if __name__ == "__main__":
    harness.main()
