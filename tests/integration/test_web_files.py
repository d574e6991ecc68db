"""drover-web's logs and artifacts (README "HTTP API"), through HTTP only
against real daemons (droverd, an agent, drover-web from harness.py):
a log as text/plain and followed as server-sent events (Last-Event-ID
resumes, `event: end` with the exit code, a step not started yet waited
for, a client that goes away releases its thread), a file artifact with
its digest header, a directory artifact as a tar whose files match the
listing's digests and modes, a corrupted blob cutting the download, and
HTTPS with a self-signed certificate (clear errors for bad cert/key)."""
import hashlib
import http.client
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import test_web_api as webapi  # noqa: E402  (Http, api_token; its tests are not imported)

DATASET = "".join("%d\n" % i for i in range(1, 20001)).encode()  # ~108 KiB: several pages
MODEL = {"weights.txt": b"w\n", "sub/cfg": b"c\n", "empty": b""}

ART_SPEC = """\
name: art
steps:
  - name: prepare
    outputs: {artifacts: [dataset, model]}
    script: |
      mkdir -p $DROVER_OUTPUTS/model/sub
      seq 1 20000 > $DROVER_OUTPUTS/dataset
      echo w > $DROVER_OUTPUTS/model/weights.txt; echo c > $DROVER_OUTPUTS/model/sub/cfg
      : > $DROVER_OUTPUTS/model/empty
      chmod 0750 $DROVER_OUTPUTS/model/sub/cfg
"""

# The step prints, waits for the test's go file, prints more and exits 3.
LOG_SPEC = """\
name: talk
steps:
  - name: first
    script: echo warm-up
  - name: talk
    needs: [first]
    retries: 0
    script: |
      while [ ! -f %(gate)s ]; do sleep 0.05; done
      echo "hello"
      printf 'caf\\303\\251 line\\r\\nno newline at the end'
      while [ ! -f %(go)s ]; do sleep 0.05; done
      echo
      seq 1 3
      exit 3
"""


# A fan-out whose items exist only once "first" has finished.
FAN_SPEC = """\
name: fan
steps:
  - name: first
    script: while [ ! -f %(go)s ]; do sleep 0.05; done
  - name: shard
    needs: [first]
    for_each: ["a", "b"]
    script: echo item {{item}}
"""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Sse:
    """A server-sent events reader over an open HTTPResponse."""

    def __init__(self, resp):
        self.resp = resp

    def next(self):
        """The next event as (id, event, data), or None at the end of the
        stream; comment lines are skipped."""
        ev = {"id": None, "event": "message", "data": []}
        seen = False
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode("utf-8").rstrip("\n")
            if line == "":
                if seen:
                    return ev["id"], ev["event"], "\n".join(ev["data"])
                continue
            if line.startswith(":"):
                continue
            seen = True
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                ev["data"].append(value)
            elif field in ("id", "event"):
                ev[field] = value


class WebFilesTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=4)
        self.c.start_web()
        self.token = webapi.api_token(self.c)
        self.http = webapi.Http(self.c.web_url, self.token)

    def open(self, path, headers=None, timeout=60):
        """An open response (the caller reads and closes it)."""
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", int(self.c.web_url.rsplit(":", 1)[1]),
                                          timeout=timeout)
        conn.request("GET", path, headers=h)
        return conn, conn.getresponse()

    def web_threads(self):
        with open("/proc/%d/status" % self.c.web.p.pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        return 0

    # ---- logs

    def test_logs_text_and_follow(self):
        c, h = self.c, self.http
        gate, go = c.path("gate"), c.path("go")
        rid = c.submit(LOG_SPEC % {"gate": gate, "go": go})
        base = "/api/v1/runs/%s/logs/talk" % rid
        # followed before the step has started: the stream waits for it
        conn, r = self.open(base + "?follow=1")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        sse = Sse(r)
        c.wait_task_status(rid, "talk", "RUNNING")
        with open(gate, "w"):
            pass
        got, last_id = "", None
        while "no newline at the end" not in got:
            ev = sse.next()
            self.assertIsNotNone(ev, "the stream ended early: %r" % got)
            self.assertEqual(ev[1], "log", ev)
            got += ev[2]
            last_id = ev[0]
        first = "hello\ncafé line\nno newline at the end"
        self.assertEqual(got, first)  # SSE data: CRLF is a line break like LF
        self.assertEqual(int(last_id), len("hello\ncafé line\r\nno newline at the end".encode()))
        # the client goes away while the step runs: its thread ends
        threads = self.web_threads()
        conn.close()
        harness.wait_until(lambda: self.web_threads() < threads, timeout=20,
                           what="drover-web's stream thread to end after the client left")
        # resumed at the last id, it gets the rest and the end
        conn, r = self.open(base + "?follow=1", headers={"Last-Event-ID": last_id})
        sse = Sse(r)
        with open(go, "w"):
            pass
        rest, end = "", None
        while True:
            ev = sse.next()
            self.assertIsNotNone(ev, "the stream ended without an end event: %r" % rest)
            if ev[1] == "end":
                end = json.loads(ev[2])
                break
            self.assertEqual(ev[1], "log", ev)
            rest += ev[2]
        self.assertEqual(rest, "\n1\n2\n3\n")
        self.assertEqual(end, {"attempt": 1, "exit_code": 3, "truncated": False})
        self.assertIsNone(sse.next())  # and the stream ends there
        conn.close()
        # the whole log as text, from an offset, of an attempt
        whole = "hello\ncafé line\r\nno newline at the end\n1\n2\n3\n".encode()
        st, headers, data = h.request("GET", base)
        self.assertEqual((st, data), (200, whole))
        self.assertTrue(headers["content-type"].startswith("text/plain"), headers)
        self.assertEqual(headers.get("x-drover-attempt"), "1")
        st, _, data = h.request("GET", base + "?offset=6")
        self.assertEqual((st, data), (200, whole[6:]))
        st, _, data = h.request("GET", base + "?attempt=1&follow=0")
        self.assertEqual((st, data), (200, whole))
        # a finished attempt followed: everything, then the end
        conn, r = self.open(base + "?follow=1&offset=%d" % (len(whole) - 2))
        sse = Sse(r)
        self.assertEqual(sse.next()[1:], ("log", "3\n"))
        self.assertEqual(sse.next()[1], "end")
        conn.close()
        # refusals: JSON with the right status
        for path, status in ((base + "?attempt=2", 404), ("/api/v1/runs/%s/logs/nope" % rid, 404),
                             ("/api/v1/runs/r-none/logs/talk", 404), (base + "?offset=x", 400),
                             (base + "?attempt=-1", 400), (base + "?follow=2", 400)):
            st, body = h.json("GET", path)
            self.assertEqual(st, status, (path, body))
            self.assertIsInstance(body, dict, (path, body))
            self.assertIn("error", body)
        st, headers, data = h.request("GET", base + "?follow=1",
                                      headers={"Last-Event-ID": "nope"})
        self.assertEqual(st, 400, data)
        # no token: 401 before anything is read
        st, _, _ = h.request("GET", base, token=False)
        self.assertEqual(st, 401)

    def test_follow_waits_for_a_fan_out_item(self):
        c = self.c
        go = c.path("go")
        rid = c.submit(FAN_SPEC % {"go": go})
        c.wait_task_status(rid, "first", "RUNNING")
        # shard[1] does not exist yet: plain reads say so, a follower waits
        st, body = self.http.json("GET", "/api/v1/runs/%s/logs/shard[1]" % rid)
        self.assertEqual(st, 404, body)
        self.assertIn("has no step", body["error"])
        conn, r = self.open("/api/v1/runs/%s/logs/shard[1]?follow=1" % rid)
        self.assertEqual(r.status, 200)
        # so does a follower of a step the run will never have, until it ends
        conn2, r2 = self.open("/api/v1/runs/%s/logs/nope?follow=1" % rid)
        self.assertEqual(r2.status, 200)
        with open(go, "w"):
            pass
        sse = Sse(r)
        self.assertEqual(sse.next()[1:], ("log", "item b\n"))
        ev = sse.next()
        self.assertEqual((ev[1], json.loads(ev[2])),
                         ("end", {"attempt": 1, "exit_code": 0, "truncated": False}))
        conn.close()
        ev = Sse(r2).next()
        self.assertEqual(ev[1], "error", ev)
        self.assertEqual(json.loads(ev[2])["code"], "not_found")
        conn2.close()

    # ---- artifacts

    def art_run(self):
        rid = self.c.submit(ART_SPEC)
        run = self.c.wait_run_final(rid)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        return rid

    def test_artifacts_list_file_and_tar(self):
        h = self.http
        rid = self.art_run()
        st, body = h.json("GET", "/api/v1/runs/%s/artifacts" % rid)
        self.assertEqual(st, 200, body)
        arts = {(a["task"], a["artifact"]["name"]): a["artifact"] for a in body["artifacts"]}
        self.assertEqual(sorted(arts), [("prepare", "dataset"), ("prepare", "model")])
        ds, model = arts[("prepare", "dataset")], arts[("prepare", "model")]
        self.assertEqual((ds["is_dir"], ds["size"], ds["digest"]),
                         (False, len(DATASET), sha256(DATASET)))
        self.assertTrue(model["is_dir"])
        files = {f["path"]: f for f in model["files"]}
        self.assertEqual({p: (f["size"], f["digest"]) for p, f in files.items()},
                         {p: (len(v), sha256(v)) for p, v in MODEL.items()})

        # a file: its bytes, Content-Length, the digest header
        st, headers, data = h.request("GET", "/api/v1/runs/%s/artifacts/prepare/dataset" % rid)
        self.assertEqual(st, 200, data[:200])
        self.assertEqual(data, DATASET)
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertEqual(int(headers["content-length"]), len(DATASET))
        self.assertEqual(headers["x-drover-digest"], "sha256:" + sha256(DATASET))

        # a directory: a tar with the files at their paths, permission bits only
        st, headers, data = h.request("GET", "/api/v1/runs/%s/artifacts/prepare/model" % rid)
        self.assertEqual(st, 200, data[:200])
        self.assertEqual(headers["content-type"], "application/x-tar")
        self.assertEqual(headers["x-drover-manifest-digest"], "sha256:" + model["digest"])
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = {m.name: m for m in tar.getmembers()}
            self.assertEqual(sorted(members), sorted(MODEL))
            for name, m in members.items():
                self.assertTrue(m.isfile(), name)
                content = tar.extractfile(m).read()
                self.assertEqual(sha256(content), files[name]["digest"], name)
                self.assertEqual(m.mode, files[name]["mode"] & 0o777, name)
        self.assertEqual(members["sub/cfg"].mode, 0o750)

        # unknown artifact, step, run; traversal attempts find nothing
        for path in ("/api/v1/runs/%s/artifacts/prepare/nope" % rid,
                     "/api/v1/runs/%s/artifacts/nope/dataset" % rid,
                     "/api/v1/runs/r-none/artifacts/prepare/dataset",
                     "/api/v1/runs/%s/artifacts/prepare/..%%2f..%%2fetc%%2fpasswd" % rid,
                     "/api/v1/runs/%s/artifacts/prepare/%%2e%%2e" % rid,
                     "/api/v1/runs/%s/artifacts/prepare/model%%2fsub%%2fcfg" % rid):
            st, body = h.json("GET", path)
            self.assertEqual(st, 404, (path, body))
            self.assertIsInstance(body, dict, (path, body))
        st, body = h.json("GET", "/api/v1/runs/%s/artifacts/prepare/nope" % rid)
        self.assertIn("dataset, model", body["error"])

    def test_download_tickets(self):
        """A ticket (for a browser's plain download) fetches the artifact once,
        with no token, as its maker; it names nothing it may not read."""
        h = self.http
        rid = self.art_run()
        base = "/api/v1/runs/%s/artifacts/prepare" % rid
        st, t = h.json("POST", base + "/dataset/ticket")
        self.assertEqual(st, 201, t)
        self.assertRegex(t["url"], r"^/api/v1/downloads/[0-9a-f]{64}$")
        self.assertGreater(t["expires_ms"], time.time() * 1000)
        st, headers, data = h.request("GET", t["url"], token=False)
        self.assertEqual((st, data), (200, DATASET))
        self.assertEqual(headers["x-drover-digest"], "sha256:" + sha256(DATASET))
        self.assertEqual(headers["content-disposition"], 'attachment; filename="dataset"')
        # used once
        st, body = h.json("GET", t["url"], token=False)
        self.assertEqual(st, 404, body)
        self.assertIn("used once", body["error"])
        # a directory: the tar
        st, t = h.json("POST", base + "/model/ticket")
        st, headers, data = h.request("GET", t["url"], token=False)
        self.assertEqual((st, headers["content-type"]), (200, "application/x-tar"))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            self.assertEqual(sorted(m.name for m in tar.getmembers()), sorted(MODEL))
        # no ticket for what is not there, nor without a token; a read token may
        st, body = h.json("POST", base + "/nope/ticket")
        self.assertEqual(st, 404, body)
        st, body = h.json("POST", base + "/dataset/ticket", token=False)
        self.assertEqual(st, 401, body)
        reader = webapi.Http(self.c.web_url, webapi.api_token(self.c, "reader", "read"))
        st, t = reader.json("POST", base + "/dataset/ticket")
        self.assertEqual(st, 201, t)
        # guessed, malformed or stolen-after-revocation tickets get nothing
        for bad in ("0" * 64, "g" * 64, "0" * 63, t["url"].rsplit("/", 1)[1] + "0"):
            st, body = h.json("GET", "/api/v1/downloads/" + bad, token=False)
            self.assertEqual(st, 404, (bad, body))
        self.c.cli("token", "revoke", "reader")
        st, body = h.json("GET", t["url"], token=False)
        self.assertEqual(st, 401, body)  # the download runs as its maker: revoked
        # a cross-site page cannot make one with the user's browser
        st, body = h.json("POST", base + "/dataset/ticket",
                          headers={"Origin": "http://evil.example"})
        self.assertEqual((st, body["code"]), (403, "forbidden_origin"))

    def test_corrupt_blob_cuts_the_download(self):
        rid = self.art_run()
        blob = os.path.join(self.c.state_dir, "blobs", sha256(DATASET)[:2], sha256(DATASET))
        with open(blob, "r+b") as f:  # same size, one byte changed near the end
            f.seek(len(DATASET) - 3)
            f.write(b"X")
        conn, r = self.open("/api/v1/runs/%s/artifacts/prepare/dataset" % rid)
        self.assertEqual(r.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        conn.close()
        # a directory whose file is corrupt: the tar is cut, not completed
        cfg = sha256(b"c\n")
        blob = os.path.join(self.c.state_dir, "blobs", cfg[:2], cfg)
        with open(blob, "r+b") as f:
            f.write(b"d")
        conn, r = self.open("/api/v1/runs/%s/artifacts/prepare/model" % rid)
        self.assertEqual(r.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            r.read()
        conn.close()
        st, body = self.http.json("GET", "/healthz", token=False)
        self.assertEqual((st, body["ok"]), (200, True))

    # ---- HTTPS

    def make_cert(self, name, cn="127.0.0.1"):
        cert, key = self.c.path(name + ".crt"), self.c.path(name + ".key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=" + cn, "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        return cert, key

    def start_bad_web(self, *extra):
        d = self.c.start_web(extra=list(extra), wait=False)
        d.expected_exit = True
        harness.wait_until(lambda: not d.alive(), timeout=30, what="drover-web to refuse")
        return d.log_text()

    def test_https(self):
        cert, key = self.make_cert("a")
        other_cert, other_key = self.make_cert("b")
        # refusals at start, each naming what is wrong
        log = self.start_bad_web("--tls-cert", cert)
        self.assertIn("needs both tls-cert and tls-key", log)
        log = self.start_bad_web("--tls-cert", self.c.path("missing.crt"), "--tls-key", key)
        self.assertIn("missing.crt: cannot read it", log)
        log = self.start_bad_web("--tls-cert", key, "--tls-key", key)
        self.assertIn("not a PEM certificate", log)
        log = self.start_bad_web("--tls-cert", cert, "--tls-key", other_key)
        self.assertIn("is not the private key of tls-cert", log)
        # serving HTTPS: the CLI's token over TLS, checked against the cert
        self.c.start_web(extra=["--tls-cert", cert, "--tls-key", key], wait=False)
        port = int(self.c.web_url.rsplit(":", 1)[1])
        ctx = ssl.create_default_context(cafile=cert)

        def up():
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
                conn.request("GET", "/healthz")
                return conn.getresponse().status == 200
            except (OSError, ssl.SSLError):
                return False

        harness.wait_until(up, timeout=30, what="drover-web to answer over HTTPS")
        self.assertIn("listening on https://", self.c.web.log_text())
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        conn.request("GET", "/api/v1/status", headers={"Authorization": "Bearer " + self.token})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertIn("counters", json.loads(r.read()))
        conn.close()
        # a client that does not trust the cert is refused by TLS itself
        with self.assertRaises(ssl.SSLError):
            conn = http.client.HTTPSConnection("127.0.0.1", port,
                                               context=ssl.create_default_context(
                                                   cafile=other_cert), timeout=10)
            conn.request("GET", "/healthz")
        # plain HTTP on the HTTPS port gets no answer, and the server goes on
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        self.assertNotIn(b"200", data)
        s.close()
        self.assertTrue(up())


if __name__ == "__main__":
    harness.main()
