"""drover-web against hostile clients, over raw sockets and HTTP only, with
real daemons (droverd, an agent, drover-web from harness.py): bad JSON,
huge heads, bodies over the limit, a slowloris, too many connections
from one address, a request flood, wrong methods, bad percent-encoding and
NUL bytes, path traversal on artifact names, clients that never read a
stream or a big artifact, a non-HTTP byte stream. Each gets a clear
refusal (JSON where drover-web answers) or is cut off, and afterwards
drover-web still answers /healthz and a normal request."""
import json
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import test_web_api as webapi  # noqa: E402  (Http, api_token; its tests are not imported)

BIG_SPEC = """\
name: big
steps:
  - name: make
    outputs: {artifacts: [blob]}
    script: head -c 33554432 /dev/urandom > $DROVER_OUTPUTS/blob
"""

LOUD_SPEC = """\
name: loud
steps:
  - name: talk
    script: |
      head -c 4000000 /dev/zero | tr '\\0' 'x' | fold -w 100
      sleep 600
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class WebHostileTest(harness.DroverTestCase):
    EXTRA = ("--timeout", "2s", "--max-connections-per-ip", "6", "--max-body", "64Ki",
             "--rate-limit", "0")

    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_web(extra=list(self.EXTRA))
        self.port = int(self.c.web_url.rsplit(":", 1)[1])
        self.token = webapi.api_token(self.c)
        self.http = webapi.Http(self.c.web_url, self.token)

    def raw(self, data, timeout=10, read=True):
        return harness.raw_http(self.port, data, timeout=timeout, read=read)

    status_of = staticmethod(harness.http_status)

    def json_of(self, raw):
        return json.loads(raw.split(b"\r\n\r\n", 1)[1])

    def assertServing(self):
        self.assertTrue(self.c.web.alive(), "drover-web died")
        st, body = self.http.json("GET", "/healthz", token=False)
        self.assertEqual((st, body), (200, {"ok": True, "droverd": True}))
        st, body = self.http.json("GET", "/api/v1/status")
        self.assertEqual(st, 200, body)

    def auth(self):
        return "Authorization: Bearer %s\r\n" % self.token

    def test_malformed_requests(self):
        # a body that is not a JSON object: 400 JSON naming why; never a crash
        for body in (b"{", b"\xff\xfe", b"[1,2]", b'{"a": 1, "a": 2}', b"\0" * 100,
                     b'{"spec": ' * 5000):
            st, headers, data = self.http.request("POST", "/api/v1/runs", body=body,
                                                  headers={"Content-Type": "application/json"})
            self.assertEqual(st, 400, (body[:20], data))
            self.assertEqual(json.loads(data)["code"], "invalid", data)
        # a huge head: refused by MHD (431/413) or the connection closed
        out = self.raw(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n" + self.auth().encode() +
                       b"X-Big: " + b"a" * 200000 + b"\r\n\r\n")
        self.assertIn(self.status_of(out), (None, 413, 431), out[:200])
        # a body over --max-body: by Content-Length, and chunked
        out = self.raw(("GET /api/v1/status HTTP/1.1\r\nHost: x\r\n%sContent-Length: 5000000\r\n"
                        "\r\n" % self.auth()).encode())
        self.assertEqual(self.status_of(out), 413, out[:300])
        self.assertEqual(self.json_of(out)["code"], "too_large")
        chunk = b"%x\r\n%s\r\n" % (32768, b"a" * 32768)
        out = self.raw(("GET /api/v1/status HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked"
                        "\r\n\r\n" % self.auth()).encode() + chunk * 3 + b"0\r\n\r\n")
        self.assertEqual(self.status_of(out), 413, out[:300])
        # wrong methods: 405 JSON with Allow
        for method in ("DELETE", "PUT", "PATCH"):
            st, headers, data = self.http.request(method, "/api/v1/status")
            self.assertEqual(st, 405, data)
            self.assertEqual(json.loads(data)["code"], "method_not_allowed")
            self.assertEqual(headers.get("allow"), "GET")
        # bad percent-encoding, NUL bytes, traversal: 4xx, never a file
        for path in (b"/api/v1/runs/%zz/artifacts", b"/api/v1/runs/%00/logs/a",
                     b"/api/v1/runs/r1/artifacts/..%2f..%2fetc/passwd",
                     b"/api/v1/runs/r1/artifacts/a/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                     b"/../../etc/passwd", b"/api/v1/%", b"/api/v1/runs/a\x00b/logs/x",
                     b"/api/v1/runs/" + b"x" * 3000 + b"/logs/y"):
            out = self.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + self.auth().encode() +
                           b"Connection: close\r\n\r\n")
            st = self.status_of(out)
            self.assertTrue(st is None or 400 <= st < 500, (path, out[:300]))
            self.assertNotIn(b"root:", out)
        # a stream of bytes that is not HTTP
        out = self.raw(bytes(range(256)) * 64 + b"\r\n\r\n")
        self.assertIn(self.status_of(out), (None, 400), out[:200])
        self.assertServing()

    def test_slowloris_is_cut_off_others_served(self):
        s = socket.create_connection(("127.0.0.1", self.port))  # blocking: MSG_DONTWAIT works
        started = time.monotonic()
        cut = threading.Event()

        def trickle_loop():
            try:
                for ch in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
                    s.sendall(bytes([ch]))
                    time.sleep(0.5)
                    try:
                        if s.recv(1, socket.MSG_DONTWAIT) == b"":
                            break
                    except BlockingIOError:
                        pass
            except OSError:
                pass
            cut.set()

        t = threading.Thread(target=trickle_loop, daemon=True)
        t.start()
        # others are served meanwhile
        for _ in range(5):
            st, _ = self.http.json("GET", "/healthz", token=False)
            self.assertEqual(st, 200)
        self.assertTrue(cut.wait(20), "the slowloris was never cut off")
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 15, "cut off only after %.1fs (timeout 2s)" % elapsed)
        s.close()
        harness.wait_until(lambda: "no whole request in 2000ms" in self.c.web.log_text(),
                           timeout=10, what="drover-web to log the cut")
        self.assertServing()

    def test_too_many_connections_from_one_address(self):
        held = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(6)]
        for s in held:  # each has begun a request: it stays open
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        out = self.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(self.status_of(out), 429, out[:300])
        body = self.json_of(out)
        self.assertEqual(body["code"], "too_many_connections")
        self.assertIn("127.0.0.1", body["error"])
        for s in held:
            s.close()
        harness.wait_until(lambda: self.status_of(self.raw(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200,
            timeout=20, what="connections to be allowed again")
        self.assertServing()

    def test_rate_limit(self):
        self.c.web.terminate()
        self.c.start_web(extra=["--rate-limit", "2", "--rate-burst", "5"])
        self.port = int(self.c.web_url.rsplit(":", 1)[1])
        self.http = webapi.Http(self.c.web_url, self.token)
        statuses, retry = [], None
        for _ in range(20):
            st, headers, data = self.http.request("GET", "/api/v1/status")
            statuses.append(st)
            if st == 429:
                retry = headers.get("retry-after")
                self.assertEqual(json.loads(data)["code"], "rate_limited")
        self.assertIn(200, statuses)
        self.assertIn(429, statuses)
        self.assertRegex(retry or "", r"^[1-9][0-9]*$")

        def served():
            return self.http.request("GET", "/healthz", token=False)[0] == 200

        harness.wait_until(served, timeout=20, what="the bucket to refill")

    def test_clients_that_never_read(self):
        c = self.c
        c.start_agent("w1", cpus=4)
        rid = c.submit(BIG_SPEC)
        self.assertEqual(c.wait_run_final(rid)["status"], "SUCCEEDED")
        loud = c.submit(LOUD_SPEC)

        def log_long():
            st, _, data = self.http.request("GET", "/api/v1/runs/%s/logs/talk" % loud)
            return st == 200 and len(data) >= 4000000

        harness.wait_until(log_long, timeout=60, what="the loud step's log")
        base = rss_kib(c.web.p.pid)
        socks = []
        # 5 clients ask for the 32 MiB artifact, 5 follow the 4 MB log, and read nothing
        for path in ["/api/v1/runs/%s/artifacts/make/blob" % rid] * 5 + \
                    ["/api/v1/runs/%s/logs/talk?follow=1" % loud] * 5:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", self.port))
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, self.auth())).encode())
            socks.append(s)
        # drover-web has produced all it will until they read: its memory
        # stays within a page or two per connection, nowhere near the bytes
        grown = []

        def settled():
            grown.append(rss_kib(c.web.p.pid) - base)
            return len(grown) >= 10 and max(grown[-5:]) - min(grown[-5:]) < 1024

        harness.wait_until(settled, timeout=30, interval=0.3,
                           what="drover-web's memory to settle")
        self.assertLess(grown[-1], 40 * 1024,
                        "drover-web grew by %d KiB for 10 clients reading nothing" % grown[-1])
        self.assertServing()
        for s in socks:
            s.close()
        c.cli("run", "cancel", loud)
        self.assertServing()


if __name__ == "__main__":
    harness.main()
