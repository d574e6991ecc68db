"""The web console's side of drover-web under an attacker's eye (README
"Web console"), with real daemons and raw HTTP:

- CSRF: a write (POST, DELETE) whose Origin header names another origin
  than the request's own (http(s)://Host) is refused, 403 forbidden_origin,
  even with a valid token, and stores nothing; the console's own origin,
  the https origin a TLS proxy in front gives, and clients that send no
  Origin (curl, the CLI's scripts) write as before;
- no answer of the console or the API ever sets a cookie (the token lives
  in the page's sessionStorage and goes as a bearer header: nothing a
  cross-site page could make the browser send);
- the console's files carry the Content-Security-Policy (no inline
  script, frames refused), nosniff, and no CORS grant;
- hostile paths under /assets (encoded '..', dot files, a 10 MB path) and
  other methods on / get a clear 4xx, and drover-web keeps serving."""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import test_web_api as webapi  # noqa: E402  (Http, api_token)

SPEC = "name: csrf-victim\nsteps:\n  - name: s\n    script: sleep 60\n"


class WebConsoleAttackTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        if not os.path.isfile(os.path.join(harness.BIN_DIR, "web", "index.html")):
            self.fail("the console is not built in %s/web (cmake --build: drover-web-assets)"
                      % harness.BIN_DIR)
        self.c.start_droverd()
        self.c.start_web(extra=["--rate-limit", "0"])
        self.port = int(self.c.web_url.rsplit(":", 1)[1])
        self.own = "http://127.0.0.1:%d" % self.port
        self.admin = webapi.api_token(self.c, "boss", "admin")
        self.http = webapi.Http(self.c.web_url, self.admin)

    # ---- helpers

    def raw(self, head, body=b"", timeout=30):
        return harness.raw_http(self.port, head, body, timeout)

    status = staticmethod(harness.http_status)

    @staticmethod
    def headers(raw):
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return [tuple(x.strip() for x in h.split(":", 1)) for h in head if ":" in h]

    def runs(self):
        st, body = self.http.json("GET", "/api/v1/runs")
        self.assertEqual(st, 200, body)
        return body["runs"]

    def post_run(self, origin=None, host=None):
        h = {"Content-Type": "application/yaml"}
        if origin is not None:
            h["Origin"] = origin
        if host is not None:
            h["Host"] = host
        return self.http.json("POST", "/api/v1/runs", body=SPEC, headers=h)

    def assertServing(self):
        def healthy():
            self.assertTrue(self.c.web.alive(), "drover-web died")
            st, body = self.http.json("GET", "/healthz", token=False)
            if st == 429:
                return None  # the connections an attack dropped, not yet counted out
            self.assertEqual((st, body), (200, {"ok": True, "droverd": True}))
            return True
        harness.wait_until(healthy, timeout=30, what="drover-web to serve again")

    # ---- CSRF

    def test_cross_origin_writes_refused(self):
        # A page elsewhere that somehow holds a valid token (or a browser
        # that would attach one) still cannot write through the console's
        # origin: 403 forbidden_origin, and nothing is stored.
        for origin in ("http://evil.example", "https://evil.example", "null",
                       "http://127.0.0.1:%d" % (self.port + 1),  # same host, other port
                       "http://127.0.0.1", "file://", "http://127.0.0.1:%d.evil.example" % self.port,
                       "http://evil.example@127.0.0.1:%d" % self.port):
            st, body = self.post_run(origin=origin)
            self.assertEqual(st, 403, "%s: %s" % (origin, body))
            self.assertEqual(body["code"], "forbidden_origin", body)
            self.assertIn("origin", body["error"])
        self.assertEqual(self.runs(), [], "a refused cross-origin submit stored a run")

        # the same Origin passes when the Host says it is this server's:
        # the check compares with the request's own origin, whatever its name
        st, body = self.post_run(origin="http://drover.example:8443", host="drover.example:8443")
        self.assertEqual(st, 201, body)
        mine = body["run_id"]

        # the console's own origin, in any case; https (a TLS proxy in front)
        for origin in (self.own, self.own.upper().replace("HTTP", "http"),
                       "https://127.0.0.1:%d" % self.port):
            st, body = self.post_run(origin=origin)
            self.assertEqual(st, 201, "%s: %s" % (origin, body))
        # no Origin at all (curl, scripts): as before
        st, body = self.post_run()
        self.assertEqual(st, 201, body)
        self.assertEqual(len(self.runs()), 5)

        # DELETE too: a cross-origin delete leaves the run and the token be
        st, body = self.http.json("POST", "/api/v1/runs/%s/cancel" % mine, body={},
                                  headers={"Origin": "http://evil.example"})
        self.assertEqual((st, body.get("code")), (403, "forbidden_origin"), body)
        st, body = self.http.json("DELETE", "/api/v1/runs/" + mine,
                                  headers={"Origin": "http://evil.example"})
        self.assertEqual((st, body.get("code")), (403, "forbidden_origin"), body)
        st, body = self.http.json("GET", "/api/v1/runs/" + mine)
        self.assertEqual(st, 200, body)
        self.assertNotIn(body["status"], ("cancelled", "canceled"), body)
        victim = webapi.api_token(self.c, "victim", "read")
        st, toks = self.http.json("GET", "/api/v1/tokens")
        recs = [t.get("record", t) for t in toks["tokens"]]
        tid = [t for t in recs if t.get("name") == "victim"][0]["id"]
        st, body = self.http.json("DELETE", "/api/v1/tokens/" + tid,
                                  headers={"Origin": "http://evil.example"})
        self.assertEqual((st, body.get("code")), (403, "forbidden_origin"), body)
        st, body = webapi.Http(self.c.web_url, victim).json("GET", "/api/v1/whoami")
        self.assertEqual((st, body.get("name")), (200, "victim"), body)
        # ... and from the console's origin it goes through
        st, body = self.http.json("DELETE", "/api/v1/tokens/" + tid, headers={"Origin": self.own})
        self.assertIn(st, (200, 204), body)

        # Reads are not writes: a GET with a foreign Origin answers (the
        # browser keeps the answer from the other page: no CORS grant)
        st, hdrs, data = self.http.request("GET", "/api/v1/runs",
                                           headers={"Origin": "http://evil.example"})
        self.assertEqual(st, 200, data[:300])
        self.assertNotIn("access-control-allow-origin", hdrs)
        self.assertServing()

    def test_no_cookie_ever(self):
        # every kind of answer: the console's files, API reads and writes,
        # refusals (401, 403, 404, 405), the OpenAPI document
        answers = [
            self.http.request("GET", "/", token=False),
            self.http.request("GET", "/assets/app.js", token=False),
            self.http.request("GET", "/assets/app-css.css", token=False),
            self.http.request("GET", "/assets/missing.js", token=False),
            self.http.request("GET", "/api/v1/whoami"),
            self.http.request("GET", "/api/v1/whoami", token=False),
            self.http.request("GET", "/api/v1/runs"),
            self.http.request("GET", "/api/v1/openapi.json", token=False),
            self.http.request("POST", "/api/v1/runs", body=SPEC,
                              headers={"Content-Type": "application/yaml", "Origin": self.own}),
            self.http.request("POST", "/api/v1/runs", body=SPEC,
                              headers={"Content-Type": "application/yaml",
                                       "Origin": "http://evil.example"}),
            self.http.request("POST", "/", token=False),
            self.http.request("GET", "/healthz", token=False),
        ]
        self.assertEqual([a[0] for a in answers],
                         [200, 200, 200, 404, 200, 401, 200, 200, 201, 403, 405, 200])
        for st, hdrs, data in answers:
            self.assertNotIn("set-cookie", hdrs, "%s %s" % (st, data[:200]))
        # and with a cookie sent (a browser's stray one): ignored, never echoed
        st, hdrs, _ = self.http.request("GET", "/", token=False,
                                        headers={"Cookie": "session=" + self.admin})
        self.assertEqual(st, 200)
        self.assertNotIn("set-cookie", hdrs)
        st, _, _ = self.http.request("GET", "/api/v1/runs", token=False,
                                     headers={"Cookie": "token=" + self.admin})
        self.assertEqual(st, 401, "a token in a cookie must not authenticate")

    def test_console_headers(self):
        for path, ctype in (("/", "text/html"), ("/assets/app.js", "text/javascript"),
                            ("/assets/app-css.css", "text/css"), ("/assets/nope.js", None)):
            st, hdrs, data = self.http.request("GET", path, token=False)
            self.assertEqual(st, 200 if ctype else 404, path)
            csp = hdrs.get("content-security-policy", "")
            directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";")
                              if d.strip())
            self.assertEqual(directives.get("script-src"), "'self'", "%s: %s" % (path, csp))
            self.assertEqual(directives.get("frame-ancestors"), "'none'", csp)
            self.assertEqual(directives.get("default-src"), "'none'", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertNotIn("unsafe-eval", csp)
            self.assertNotIn("*", csp)
            self.assertEqual(hdrs.get("x-content-type-options"), "nosniff", path)
            self.assertEqual(hdrs.get("x-frame-options"), "DENY", path)
            self.assertEqual(hdrs.get("cross-origin-resource-policy"), "same-origin", path)
            self.assertEqual(hdrs.get("cross-origin-opener-policy"), "same-origin", path)
            self.assertNotIn("access-control-allow-origin", hdrs)
            if ctype:
                self.assertTrue(hdrs.get("content-type", "").startswith(ctype), hdrs)
        # index.html: no inline script or style, nothing from another origin
        _, _, page = self.http.request("GET", "/", token=False)
        page = page.decode()
        self.assertNotIn("<script>", page)
        self.assertNotIn("style=", page)
        self.assertNotIn("//cdn", page)
        self.assertNotIn("https://", page)

    def test_hostile_paths_and_methods(self):
        host = "Host: 127.0.0.1:%d\r\nConnection: close\r\n" % self.port

        def get(path, method="GET"):
            return self.raw("%s %s HTTP/1.1\r\n%s\r\n" % (method, path, host))

        for path in ("/assets/..%2F..%2Fetc%2Fpasswd", "/assets/../../etc/passwd",
                     "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/assets/..", "/assets/.hidden",
                     "/assets/.%2e", "/assets/", "/assets", "/assets/app.js/x", "/assets//etc/passwd", "/index.html/../../etc/passwd",
                     "/%2e%2e/%2e%2e/etc/passwd"):
            out = get(path)
            st = self.status(out)
            self.assertIsNotNone(st, "%s: no answer: %r" % (path, out[:200]))
            self.assertTrue(400 <= st < 500, "%s: %s" % (path, out[:300]))
            self.assertNotIn(b"root:", out, path)
            body = out.split(b"\r\n\r\n", 1)[1]
            self.assertTrue(json.loads(body).get("error"), "%s: no clear error: %r" % (path, body))
        # other methods on /: 405 naming GET
        for method in ("HEAD", "POST", "PUT", "DELETE"):
            out = get("/", method)
            self.assertEqual(self.status(out), 405, "%s /: %r" % (method, out[:300]))
            self.assertIn(("Allow", "GET"), self.headers(out))
        # a 10 MB path: refused (MHD's limit on the request head), not read
        out = self.raw(b"GET /assets/" + b"a" * (10 << 20) + b" HTTP/1.1\r\n"
                       + host.encode() + b"\r\n")
        st = self.status(out)
        self.assertTrue(st is None or 400 <= st < 500, out[:300])
        if st is not None:
            self.assertIn(st, (413, 414, 431), out[:300])
        # a header of a megabyte
        out = self.raw("GET / HTTP/1.1\r\n%sX-Junk: %s\r\n\r\n" % (host, "j" * (1 << 20)))
        st = self.status(out)
        self.assertTrue(st is None or 400 <= st < 500, out[:300])
        self.assertServing()
        # and the console is still served, whole
        st, _, data = self.http.request("GET", "/", token=False)
        self.assertEqual(st, 200)
        self.assertIn(b"assets/app.js", data)


if __name__ == "__main__":
    harness.main()
