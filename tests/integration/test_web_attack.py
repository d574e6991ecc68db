"""drover-web under an attacker's eye (the red-team review of the HTTP API),
with real daemons (droverd, drover-web from harness.py) and HTTP only:
the Authorization header's tricks, a read token trying every mutating
route, token secrets kept out of answers, logs and streams, and event
streams beyond droverd's --api-waiters that must not spin on droverd."""
import os
import resource
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import test_web_api as webapi  # noqa: E402  (Http, api_token, Sse)


def make_token(c, name, role):
    r = c.cli("token", "create", name, "--role", role)
    for word in (r.out or "").split():
        if word.startswith("drva1."):
            return word
    raise AssertionError("no API token made: %s" % r.err)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def connection_threads(pid):
    """drover-web's threads serving a connection (libmicrohttpd names them)."""
    n = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                n += f.read().startswith("MHD-connection")
        except OSError:
            pass
    return n


def wait_streams_gone(c):
    """Closed streams end their threads (a producer notices the client
    left within a second or two)."""
    harness.wait_until(lambda: connection_threads(c.web.pid) == 0, timeout=30,
                       what="drover-web's connection threads to end")


class WebAttackTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_web(extra=["--rate-limit", "0"])
        self.port = int(self.c.web_url.rsplit(":", 1)[1])
        self.admin = make_token(self.c, "boss", "admin")
        self.read = make_token(self.c, "peeker", "read")
        self.submit = make_token(self.c, "builder", "submit")
        self.http = webapi.Http(self.c.web_url, self.admin)

    def raw(self, head, body=b""):
        return harness.raw_http(self.port, head, body)

    status = staticmethod(harness.http_status)

    def test_authorization_header_tricks(self):
        def get(auth_lines):
            return self.raw("GET /api/v1/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            + "".join("Authorization: %s\r\n" % a for a in auth_lines) + "\r\n")
        self.assertEqual(self.status(get([])), 401)
        self.assertEqual(self.status(get(["Basic " + self.admin])), 401)
        self.assertEqual(self.status(get(["Bearer"])), 401)
        self.assertEqual(self.status(get(["Bearer    "])), 401)
        self.assertEqual(self.status(get(["Bearer x" * 1])), 401)
        self.assertEqual(self.status(get(["Bearer\t" + self.admin])), 401)
        self.assertEqual(self.status(get(["Bearer " + "a" * 6000])), 401)
        # the scheme is case-insensitive (RFC 7235): a real token works
        self.assertEqual(self.status(get(["bearer " + self.admin])), 200)
        # a read token's secret with an admin id: unknown, not admin
        rid, rsec = self.read.split(".")[1:]
        aid = self.admin.split(".")[1]
        self.assertEqual(self.status(get(["Bearer drva1.%s.%s" % (aid, rsec)])), 401)
        # two Authorization headers: refused, whichever comes first
        # (a proxy in front may have checked the other one): 400, either order
        for pair in ((self.read, self.admin), (self.admin, self.read)):
            out = get(["Bearer " + pair[0], "Bearer " + pair[1]])
            self.assertEqual(self.status(out), 400, out[:300])
            self.assertIn(b"more than one Authorization header", out)
        out = self.raw("GET /api/v1/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Authorization: Bearer %s\r\nauthorization: Bearer %s\r\n\r\n"
                       % (self.read, self.admin))
        self.assertEqual(self.status(out), 400, out[:300])
        # the token in the query string is no token
        st, _, _ = self.http.request("GET", "/api/v1/tokens?access_token=" + self.admin,
                                     token=False)
        self.assertEqual(st, 401)
        # a cross-site form POST (no bearer, a cookie, form encoding): 401
        st, _, _ = self.http.request(
            "POST", "/api/v1/tokens", body="name=evil&role=admin", token=False,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Cookie": "session=" + self.admin, "Origin": "http://evil.example"})
        self.assertEqual(st, 401)
        self.assertServing()

    def assertServing(self):
        """drover-web is up and answers /healthz: at once, or once the
        connections an attack dropped have been counted out (a 429
        too_many_connections until then)."""
        def healthy():
            self.assertTrue(self.c.web.alive(), "drover-web died")
            st, body = self.http.json("GET", "/healthz", token=False)
            if st == 429 and body.get("code") == "too_many_connections":
                return None
            self.assertEqual((st, body), (200, {"ok": True, "droverd": True}))
            return True
        harness.wait_until(healthy, timeout=30, what="drover-web to serve again")

    def test_read_token_mutates_nothing(self):
        st, body = self.http.json("POST", "/api/v1/runs",
                                  body={"spec": harness.to_yaml(webapi.sleep_spec("victim"))})
        self.assertEqual(st, 201, body)
        rid = body["run_id"]
        reader = webapi.Http(self.c.web_url, self.read)
        builder = webapi.Http(self.c.web_url, self.submit)
        tid = self.admin.split(".")[1]
        attempts = [
            (reader, "POST", "/api/v1/runs", {"spec": harness.to_yaml(webapi.sleep_spec("r"))}),
            (reader, "POST", "/api/v1/runs/%s/cancel" % rid, None),
            (reader, "DELETE", "/api/v1/runs/%s" % rid, None),
            (reader, "POST", "/api/v1/runs/%s/resume" % rid, {"step": "s"}),
            (reader, "POST", "/api/v1/tokens", {"name": "mine", "role": "admin"}),
            (reader, "DELETE", "/api/v1/tokens/%s" % tid, None),
            (reader, "POST", "/api/v1/agents/a1/drain", None),
            (reader, "DELETE", "/api/v1/agents/a1", None),
            (reader, "POST", "/api/v1/pools/p/scale", {"nodes": 3}),
            (reader, "POST", "/api/v1/schedules/s/pause", None),
            (reader, "POST", "/api/v1/schedules/s/trigger", None),
            (builder, "POST", "/api/v1/runs/%s/cancel" % rid, None),
            (builder, "DELETE", "/api/v1/runs/%s" % rid, None),
            (builder, "POST", "/api/v1/tokens", {"name": "mine2", "role": "admin"}),
            (builder, "DELETE", "/api/v1/tokens/%s" % tid, None),
            (builder, "GET", "/api/v1/tokens", None),
        ]
        for who, method, path, body in attempts:
            st, out = who.json(method, path, body=body)
            self.assertEqual(st, 403, (method, path, who.token[:14], out))
        st, run = self.http.json("GET", "/api/v1/runs/" + rid)
        self.assertEqual(st, 200, run)
        self.assertNotIn(run["status"], ("cancelled",))
        st, toks = self.http.json("GET", "/api/v1/tokens")
        self.assertEqual(st, 200)
        names = [t["record"]["name"] for t in toks["tokens"]]
        self.assertNotIn("mine", names)
        self.assertNotIn("mine2", names)
        self.assertServing()

    def test_secrets_stay_secret(self):
        st, body = self.http.json("POST", "/api/v1/tokens",
                                  body={"name": "minted", "role": "read"})
        self.assertEqual(st, 201, body)
        minted = body["token"]
        secrets = [t.split(".")[2] for t in (self.admin, self.read, self.submit, minted)]
        # use them all, and a wrong one
        for t in (self.admin, self.read, self.submit, minted):
            st, _ = webapi.Http(self.c.web_url, t).json("GET", "/api/v1/status")
            self.assertEqual(st, 200)
        bad = "drva1.%s.%s" % (self.read.split(".")[1], "0" * 64)
        st, out = webapi.Http(self.c.web_url, bad).json("GET", "/api/v1/status")
        self.assertEqual(st, 401)
        texts = {"bad-answer": repr(out).encode()}
        for path in ("/api/v1/tokens", "/api/v1/status", "/metrics",
                     "/api/v1/events?format=json&max=1000"):
            st, _, data = self.http.request("GET", path)
            self.assertEqual(st, 200, (path, data[:200]))
            texts[path] = data
        for name in ("drover-web.log", "droverd.log"):
            p = self.c.path(name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    texts[name] = f.read()
        for where, text in texts.items():
            for sec in secrets:
                self.assertNotIn(sec.encode(), text, where)
        # no stored hash in the listing either
        st, toks = self.http.json("GET", "/api/v1/tokens")
        for t in toks["tokens"]:
            self.assertIn(t["record"].get("secret_sha256", ""), ("",), t)

    def test_dropped_connections_do_not_flood_the_log(self):
        # libmicrohttpd says one line per connection closed mid-request:
        # 400 of them must not become 400 log lines
        before = self.c.web.log_text().count("drover-web: warn: http:")
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")
            s.close()
        self.assertServing()
        lines = self.c.web.log_text().count("drover-web: warn: http:") - before
        self.assertLess(lines, 100, "%d log lines for 400 dropped connections" % lines)

    def test_token_named_local_cannot_take_over_local_runs(self):
        # runs submitted on droverd's local socket (the CLI, schedules) are
        # owned by "local"; a submit token named "local" would own them too
        # and so cancel them: such a name is refused at creation
        st, out = self.http.json("POST", "/api/v1/tokens",
                                 body={"name": "local", "role": "submit"})
        self.assertEqual(st, 400, out)
        self.assertIn("local", out["error"])
        r = self.c.cli("token", "create", "local", "--role", "submit")
        self.assertNotEqual(r.rc, 0, r.out)
        self.assertNotIn("drva1.", r.out or "")

    def test_event_seq_beyond_json_numbers_refused(self):
        # a since JSON cannot carry back (next_seq came out as -1, which
        # the next request then refused): refused with a clear 400
        for q in ("since=18446744073709551615&format=json",
                  "since=9223372036854775808&format=json"):
            st, out = self.http.json("GET", "/api/v1/events?" + q)
            self.assertEqual(st, 400, out)
            self.assertIn("since", out["error"])
        st, out = self.http.json("GET", "/api/v1/events?since=9223372036854775807&format=json")
        self.assertEqual(st, 200, out)
        self.assertGreaterEqual(out["next_seq"], 0, out)
        st, _, _ = self.http.request("GET", "/api/v1/events",
                                     headers={"Last-Event-ID": "18446744073709551615"})
        self.assertEqual(st, 400)


class WebWaitersTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd(extra=["--api-waiters", "2"])
        self.c.start_web(extra=["--rate-limit", "0"])
        self.admin = make_token(self.c, "boss", "admin")
        self.http = webapi.Http(self.c.web_url, self.admin)

    def test_event_streams_beyond_waiters_do_not_spin(self):
        # droverd holds at most 2 event requests; 6 idle streams: the rest
        # are answered at once with nothing, and drover-web must not ask
        # again at once, for ever (a busy loop on droverd's loop thread)
        streams = [webapi.Sse(self.http, "/api/v1/events?since=1000000") for _ in range(6)]
        try:
            pid = self.c.droverd.pid
            time.sleep(1)  # let the streams settle into their loop
            t0, c0 = time.monotonic(), cpu_ticks(pid)
            time.sleep(3)  # a measured interval, not a wait for a condition
            used = (cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
            self.assertLess(used, 0.25, "droverd busy %.0f%% with 6 idle event streams" %
                            (used * 100))
        finally:
            for s in streams:
                s.close()
        wait_streams_gone(self.c)
        st, out = self.http.json("GET", "/api/v1/status")
        self.assertEqual(st, 200, out)



class WebOpenFilesTest(harness.DroverTestCase):
    def test_many_streams_within_the_open_files_limit(self):
        # started with a soft open-files limit of 1024 (a shell's default):
        # 150 event streams each held a droverd client (a ZeroMQ context,
        # ~10 descriptors), libzmq ran out of descriptors and aborted the
        # process ("Too many open files (src/epoll.cpp:65)")
        self.c.start_droverd()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        try:
            self.c.start_web(extra=["--rate-limit", "0", "--max-connections-per-ip", "200"])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        admin = make_token(self.c, "boss", "admin")
        port = int(self.c.web_url.rsplit(":", 1)[1])
        req = ("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               % admin).encode()
        socks = []
        try:
            for _ in range(150):
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                s.sendall(req)
                socks.append(s)
            heads = [s.recv(200) for s in socks]
            self.assertTrue(self.c.web.alive(), "drover-web died")
            ok = sum(h.startswith(b"HTTP/1.1 200") for h in heads)
            self.assertEqual(ok, len(socks), [h for h in heads if not h.startswith(
                b"HTTP/1.1 200")][:3])
        finally:
            for s in socks:
                s.close()
        wait_streams_gone(self.c)
        st, out = webapi.Http(self.c.web_url, admin).json("GET", "/api/v1/status")
        self.assertEqual(st, 200, out)
        self.assertTrue(self.c.web.alive(), "drover-web died")


if __name__ == "__main__":
    harness.main()
