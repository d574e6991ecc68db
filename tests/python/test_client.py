"""Unit tests of the client's protocol handling (python/drover/client.py)
where the real drover-web cannot be made to misbehave on cue: a local HTTP
server speaking the documented routes (design: /api/v1/events SSE with
ids, `truncated`; logs ?follow=1; artifacts with X-Drover-Digest or a tar)
drops connections mid-event, lies about a digest, sends hostile tars.
The end-to-end tests against real daemons are in
tests/integration/test_python_client.py."""
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import drover  # noqa: E402
from drover.client import safe_extract_tar  # noqa: E402
from drover.errors import error_from_response  # noqa: E402


def tar_bytes(members):
    """members: (TarInfo fields dict, data or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for fields, data in members:
            ti = tarfile.TarInfo(fields.pop("name"))
            for k, v in fields.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


class FakeWeb(BaseHTTPRequestHandler):
    """Answers the routes the tests use; state on the server object."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def stream(self, payload):
        """An SSE answer without length, cut after payload (the connection closes)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self):  # noqa: N802
        s = self.server
        u = urlparse(self.path)
        q = parse_qs(u.query)
        s.requests.append((u.path, q, dict(self.headers)))
        if self.headers.get("Authorization") != "Bearer tok":
            return self.send(401, {"error": "no token", "code": "unauthenticated"})
        if u.path == "/api/v1/status":
            s.status_reads += 1
            if s.status_reads == 1:
                return self.send(429, {"error": "slow down", "code": "rate_limited"},
                                 headers=[("Retry-After", "0")])
            return self.send(200, {"version": "x"})
        if u.path == "/api/v1/runs/r1":
            s.run_reads += 1
            status = "succeeded" if s.events_served >= 2 else "running"
            return self.send(200, {"id": "r1", "status": status, "tasks": []})
        if u.path == "/api/v1/events" and q.get("run") == ["revoked"]:
            return self.stream(b'event: error\ndata: {"error": "token revoked", '
                               b'"code": "unauthenticated"}\n\n')
        if u.path == "/api/v1/events":
            s.events_served += 1
            if s.events_served == 1:
                # one whole event, then one cut in the middle of its data
                return self.stream(b": ping\n\nid: 5\nevent: task\ndata: {\"seq\": 5}\n\n"
                                   b"id: 6\nevent: task\ndata: {\"se")
            # reconnected: must resume after 5, not 6
            s.resumed_from = (self.headers.get("Last-Event-ID"), q.get("since"))
            return self.stream(b"event: truncated\ndata: {\"first_seq\": 9}\n\n"
                               b"id: 9\nevent: run\ndata: {\"seq\": 9, \"to\": \"SUCCEEDED\"}\n\n")
        if u.path == "/api/v1/runs/r1/logs/t":
            off = int(q.get("offset", ["0"])[0])
            s.log_offsets.append(off)
            if off == 0:
                return self.stream(b"event: log\ndata: hello \n\nevent: log\ndata: wor")
            return self.stream(b"event: log\ndata: world\n\nevent: end\ndata: \n\n")
        if u.path.startswith("/api/v1/runs/r1/artifacts/t/"):
            name = u.path.rsplit("/", 1)[1]
            if name == "file":
                data = b"x" * 100000
                return self.send(200, data, "application/octet-stream",
                                 [("X-Drover-Digest", "sha256:" + hashlib.sha256(data).hexdigest())])
            if name == "liar":
                return self.send(200, b"abc", "application/octet-stream",
                                 [("X-Drover-Digest", "sha256:" + "0" * 64)])
            if name == "dir":
                return self.send(200, tar_bytes([({"name": "sub", "type": tarfile.DIRTYPE,
                                                   "mode": 0o755}, None),
                                                 ({"name": "sub/a.txt", "mode": 0o644}, b"A"),
                                                 ({"name": "b.sh", "mode": 0o4777}, b"B")]),
                                 "application/x-tar")
            if name == "evil":
                return self.send(200, tar_bytes([({"name": "ok.txt"}, b"ok"),
                                                 ({"name": "../escape.txt"}, b"E")]),
                                 "application/x-tar")
        if u.path == "/api/v1/runs":
            before = q.get("before", [None])[0]
            if before is None:
                return self.send(200, {"runs": [{"id": "r3"}, {"id": "r2"}], "next": "r2"})
            return self.send(200, {"runs": [{"id": "r1"}], "next": None})
        return self.send(404, {"error": "no route", "code": "not_found"})

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        self.server.posts.append((self.path, body))
        if self.path == "/api/v1/runs":
            if "bad" in body["spec"]:
                return self.send(400, {"error": "x.yaml:3:5: unknown key 'bad'", "code": "invalid",
                                       "errors": [{"file": "x.yaml", "line": 3, "col": 5,
                                                   "message": "unknown key 'bad'"}]})
            return self.send(201, {"run_id": "r7"}, headers=[("Location", "/api/v1/runs/r7")])
        return self.send(404, {"error": "no route", "code": "not_found"})


class ClientProtocol(unittest.TestCase):
    def setUp(self):
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeWeb)
        self.srv.daemon_threads = True
        self.srv.requests, self.srv.posts, self.srv.log_offsets = [], [], []
        self.srv.run_reads, self.srv.events_served, self.srv.resumed_from = 0, 0, None
        self.srv.status_reads = 0
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.addCleanup(self.srv.server_close)
        self.addCleanup(self.srv.shutdown)
        self.c = drover.Client("http://127.0.0.1:%d" % self.srv.server_address[1], token="tok")
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, self.tmp, True)

    def test_wait_resumes_after_the_last_whole_event_and_rereads_on_truncated(self):
        run = self.c.wait("r1", timeout=20)
        self.assertEqual(run["status"], "succeeded")
        self.assertEqual(self.srv.resumed_from, ("5", ["5"]))

    def test_stream_error_raised_when_a_reconnect_cannot_help(self):
        with self.assertRaisesRegex(drover.Unauthenticated, "token revoked"):
            list(self.c.events(run_id="revoked", timeout=20))

    def test_logs_follow_reconnects_at_the_byte_offset(self):
        text = "".join(self.c.logs("r1", "t", follow=True, timeout=20))
        self.assertEqual(text, "hello world")
        self.assertEqual(self.srv.log_offsets, [0, len("hello ")])

    def test_file_artifact_checked_and_renamed_into_place(self):
        path = self.c.artifact("r1", "t", "file", self.tmp)
        self.assertEqual(path, os.path.join(self.tmp, "file"))
        self.assertEqual(os.path.getsize(path), 100000)
        with self.assertRaisesRegex(drover.DroverError, "sha256"):
            self.c.artifact("r1", "t", "liar", os.path.join(self.tmp, "liar"))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["file"])  # nothing half-written

    def test_directory_artifact_unpacked_safely(self):
        dest = os.path.join(self.tmp, "out")
        self.c.artifact("r1", "t", "dir", dest)
        with open(os.path.join(dest, "sub", "a.txt")) as f:
            self.assertEqual(f.read(), "A")
        self.assertEqual(os.stat(os.path.join(dest, "b.sh")).st_mode & 0o7777, 0o755)
        with self.assertRaisesRegex(drover.DroverError, r"'\.\.'"):
            self.c.artifact("r1", "t", "evil", os.path.join(self.tmp, "evil"))
        self.assertEqual(sorted(os.listdir(self.tmp)), ["out"])
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.tmp), "escape.txt")))

    def test_submit_errors_and_pages(self):
        p = drover.Pipeline("x")
        p.step("a", command=["true"])
        self.assertEqual(self.c.submit(p, params={"n": 1}), "r7")
        path, body = self.srv.posts[-1]
        self.assertEqual(body["spec"], p.to_yaml())
        self.assertEqual((body["file"], body["params"]), ("x.yaml", {"n": "1"}))
        with self.assertRaises(drover.InvalidSpec) as cm:
            self.c.submit("name: x\nbad: 1\n")
        e = cm.exception
        self.assertEqual((e.status, e.code), (400, "invalid"))
        self.assertEqual([str(x) for x in e.errors], ["x.yaml:3:5: unknown key 'bad'"])
        self.assertEqual([r["id"] for r in self.c.runs(status="running")], ["r3", "r2", "r1"])
        with self.assertRaises(drover.NotFound):
            self.c.run("nope")
        with self.assertRaises(drover.Unauthenticated):
            drover.Client(self.c.url, token="").status()

    def test_main_submit(self):
        import contextlib
        p = drover.Pipeline("x")
        p.step("a", command=["true"])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = drover.main(p, ["--submit", "--url", self.c.url, "--token", "tok", "-p", "k=v=w"])
        self.assertEqual((rc, out.getvalue()), (0, "r7\n"))
        self.assertEqual(self.srv.posts[-1][1]["params"], {"k": "v=w"})
        p.step("b", extra={"bad": 1}, command=["true"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = drover.main(p, ["--submit", "--url", self.c.url, "--token", "tok"])
        self.assertEqual(rc, 6)
        self.assertIn("drover: error: x.yaml:3:5: unknown key 'bad'", err.getvalue())

    def test_get_refused_429_tried_again(self):
        self.assertEqual(self.c.status(), {"version": "x"})
        self.assertEqual(self.srv.status_reads, 2)
        self.srv.status_reads = 0
        with self.assertRaises(drover.RateLimited) as cm:
            drover.Client(self.c.url, token="tok", retries_429=0).status()
        self.assertEqual(cm.exception.retry_after, 0.0)

    def test_unreachable(self):
        with self.assertRaises(drover.Unavailable):
            drover.Client("http://127.0.0.1:1", token="tok").status()


class Tar(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, self.tmp, True)

    def refused(self, members, why):
        dest = tempfile.mkdtemp(dir=self.tmp)
        with self.assertRaisesRegex(drover.DroverError, why):
            safe_extract_tar(io.BytesIO(tar_bytes(members)), dest)

    def test_hostile_members_refused(self):
        self.refused([({"name": "/etc/x"}, b"x")], "absolute")
        self.refused([({"name": "a/../../x"}, b"x")], r"'\.\.'")
        self.refused([({"name": "l", "type": tarfile.SYMTYPE, "linkname": "/etc"}, None)],
                     "not a regular file")
        self.refused([({"name": "h", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)],
                     "not a regular file")
        self.refused([({"name": "f", "type": tarfile.FIFOTYPE}, None)], "not a regular file")
        self.refused([({"name": "d", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3},
                       None)], "not a regular file")

    def test_link_already_in_dest_not_followed(self):
        dest = tempfile.mkdtemp(dir=self.tmp)
        outside = tempfile.mkdtemp(dir=self.tmp)
        os.symlink(outside, os.path.join(dest, "d"))
        with self.assertRaisesRegex(drover.DroverError, "outside"):
            safe_extract_tar(io.BytesIO(tar_bytes([({"name": "d/x"}, b"x")])), dest)
        self.assertEqual(os.listdir(outside), [])


class Errors(unittest.TestCase):
    def test_mapping(self):
        cases = {401: drover.Unauthenticated, 403: drover.PermissionDenied, 404: drover.NotFound,
                 409: drover.Conflict, 400: drover.BadRequest, 503: drover.Unavailable,
                 500: drover.DroverError}
        for status, cls in cases.items():
            e = error_from_response(status, b'{"error": "m", "code": "c"}')
            self.assertIs(type(e), cls)
            self.assertEqual((e.status, e.code, e.message), (status, "c", "m"))
        e = error_from_response(502, b"<html>bad gateway</html>")
        self.assertIsInstance(e, drover.Unavailable)
        self.assertIn("bad gateway", e.message)


if __name__ == "__main__":
    unittest.main()
