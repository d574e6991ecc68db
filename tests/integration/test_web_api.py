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


if __name__ == "__main__":
    harness.main()
