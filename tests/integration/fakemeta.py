#!/usr/bin/env python3
"""fakemeta — a fake cloud metadata server for tests (Python 3 stdlib only).

One ThreadingHTTPServer on 127.0.0.1 plays all three providers at once:
AWS IMDSv2 under /latest/, GCP under /computeMetadata/v1/, Azure under
/metadata/. It enforces the parts of the real protocols a client can get
wrong: AWS data requests need a token from PUT /latest/api/token (else
401), GCP requests need "Metadata-Flavor: Google" (else 403), Azure
requests need "Metadata: true" (else 400). GCP ?wait_for_change=true
blocks until the value changes (or 20 s, or timeout_sec), honouring
last_etag like the real server.

As the vendors document them: GCP instance/maintenance-event is NONE,
MIGRATE_ON_HOST_MAINTENANCE or TERMINATE_ON_HOST_MAINTENANCE (back to NONE
once the maintenance is over) and instance/preempted is TRUE or FALSE.
Azure Scheduled Events list Events with EventId, EventType (Freeze, Reboot,
Redeploy, Preempt, Terminate), ResourceType, Resources (every VM the event
affects: one document goes to all VMs of an availability set or scale
set), EventStatus (Scheduled, Started) and NotBefore (RFC 1123, "" once
started). POST {"StartRequests": [{"EventId": ...}, ...]} starts each
event named for every VM in its Resources (EventStatus "Started"); a POST
naming an EventId that is not in the current document is rejected whole
(400, nothing started), so a client acknowledging several events in one
request loses them all to one stale id.

Control (JSON over HTTP, or the FakeMeta object's methods):
  POST /_control {"aws_action": {"action": "terminate", "time": "..."} | null,
                  "aws_rebalance": {"noticeTime": "..."} | null,
                  "aws_spot": bool, "aws_expire_tokens": true,
                  "gcp_preempted": bool, "gcp_maintenance": "NONE" | ...,
                  "gcp_preemptible": bool, "gcp_flavor": bool (answer with
                  the Metadata-Flavor header; default true),
                  "azure_vm": "vm1", "azure_events": [...],
                  "azure_priority": "Spot" | "Regular",
                  "mode": "ok" | "garbage" | "500" | "hang" | "huge"}
  GET /_requests   -> JSON list of {"method", "path", "headers", "body",
                      "status"} for every provider request seen, oldest
                      first ("status": the HTTP status answered, null while
                      the answer is pending).
A mode other than "ok" applies to every provider endpoint: garbage = 200
with non-JSON junk, 500 = server error, hang = no answer until the mode
changes or the server closes, huge = 200 with a 1 MiB body.

Command line: fakemeta.py --port-file PATH binds an ephemeral port, writes
its number to PATH atomically and serves until SIGTERM/SIGINT or until its
parent process exits. As a module: m = FakeMeta(); m.url; m.set(...);
m.requests(); m.close().
"""

import argparse
import hashlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LONG_POLL_S = 20.0
RECORDED_HEADERS = (
    "x-aws-ec2-metadata-token",
    "x-aws-ec2-metadata-token-ttl-seconds",
    "metadata-flavor",
    "metadata",
    "content-type",
)
KEYS = {
    "aws_action", "aws_rebalance", "aws_spot", "aws_expire_tokens", "gcp_preempted",
    "gcp_maintenance", "gcp_preemptible", "gcp_flavor", "azure_vm", "azure_events",
    "azure_priority", "mode",
}
MODES = {"ok", "garbage", "500", "hang", "huge"}
GCP_MAINTENANCE = {"NONE", "MIGRATE_ON_HOST_MAINTENANCE", "TERMINATE_ON_HOST_MAINTENANCE"}
AZURE_TYPES = {"Freeze", "Reboot", "Redeploy", "Preempt", "Terminate"}
AZURE_STATUSES = {"Scheduled", "Started"}


class State:
    """Everything the server answers from, guarded by one condition."""

    def __init__(self):
        self.cv = threading.Condition()
        self.closing = False
        self.mode = "ok"
        self.aws_action = None
        self.aws_rebalance = None
        self.aws_spot = False
        self.aws_tokens = set()
        self.gcp_preempted = False
        self.gcp_maintenance = "NONE"
        self.gcp_preemptible = False
        self.gcp_flavor = True
        self.azure_vm = "vm1"
        self.azure_events = []
        self.azure_incarnation = 1
        self.azure_priority = "Regular"
        self.log = []

    def update(self, changes):
        unknown = set(changes) - KEYS
        if unknown:
            raise ValueError("unknown control keys: %s" % ", ".join(sorted(unknown)))
        if "mode" in changes and changes["mode"] not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(sorted(MODES)))
        if "gcp_maintenance" in changes and changes["gcp_maintenance"] not in GCP_MAINTENANCE:
            raise ValueError("gcp_maintenance must be one of %s"
                             % ", ".join(sorted(GCP_MAINTENANCE)))
        for e in changes.get("azure_events") or []:
            if not isinstance(e, dict) or not isinstance(e.get("Resources", []), list):
                raise ValueError("an Azure event is an object whose Resources is a list")
            if e.get("EventType") not in AZURE_TYPES:
                raise ValueError("EventType must be one of %s" % ", ".join(sorted(AZURE_TYPES)))
            if e.get("EventStatus", "Scheduled") not in AZURE_STATUSES:
                raise ValueError("EventStatus must be one of %s"
                                 % ", ".join(sorted(AZURE_STATUSES)))
        with self.cv:
            for key, value in changes.items():
                if key == "aws_expire_tokens":
                    if value:
                        self.aws_tokens.clear()
                elif key == "azure_events":
                    self.azure_events = [dict(e) for e in value]
                    self.azure_incarnation += 1
                else:
                    setattr(self, key, value)
            self.cv.notify_all()


def etag(value):
    return hashlib.sha1(value.encode()).hexdigest()[:16]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakemeta"

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    def do_GET(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def reply(self, code, body=b"", ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        if self.entry is not None:
            with self.st.cv:
                self.entry["status"] = code
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client went away

    def dispatch(self):
        self.entry = None  # this request's line in the log (a connection serves several)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/_control" and self.command == "POST":
            try:
                self.st.update(json.loads(body or b"{}"))
            except (ValueError, TypeError, AttributeError) as e:
                return self.reply(400, str(e))
            return self.reply(200, '{"ok":true}', "application/json")
        if url.path == "/_requests" and self.command == "GET":
            with self.st.cv:
                data = json.dumps(self.st.log)
            return self.reply(200, data, "application/json")
        hdrs = {h: self.headers[h] for h in RECORDED_HEADERS if self.headers[h] is not None}
        with self.st.cv:
            self.entry = {"method": self.command, "path": self.path, "headers": hdrs,
                          "body": body.decode("utf-8", "replace"), "status": None}
            self.st.log.append(self.entry)
            while self.st.mode == "hang" and not self.st.closing:
                self.st.cv.wait()
            if self.st.closing:
                self.close_connection = True
                return None
            mode = self.st.mode
        if mode == "500":
            return self.reply(500, "internal error")
        if mode == "garbage":
            return self.reply(200, b"<html>\x00\xff{\"garbage\": [1,, TRUE", "application/json")
        if mode == "huge":
            return self.reply(200, b"x" * (1 << 20))
        if url.path.startswith("/latest/"):
            return self.aws(url.path, body)
        if url.path.startswith("/computeMetadata/v1/"):
            return self.gcp(url.path, query)
        if url.path.startswith("/metadata/"):
            return self.azure(url.path, query, body)
        return self.reply(404, "not found")

    # ---------------------------------------------------------------- AWS

    def aws(self, path, body):
        st = self.st
        if path == "/latest/api/token":
            if self.command != "PUT":
                return self.reply(405, "")
            try:
                ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= 21600:
                return self.reply(400, "")
            token = "AQAE" + secrets.token_hex(24)
            with st.cv:
                st.aws_tokens.add(token)
            return self.reply(200, token)
        with st.cv:
            ok = self.headers.get("X-aws-ec2-metadata-token") in st.aws_tokens
            action, rebalance, spot = st.aws_action, st.aws_rebalance, st.aws_spot
        if not ok:
            return self.reply(401, "")
        if self.command != "GET":
            return self.reply(405, "")
        if path == "/latest/meta-data/spot/instance-action":
            if action is None:
                return self.reply(404, "")
            return self.reply(200, json.dumps(action), "application/json")
        if path == "/latest/meta-data/events/recommendations/rebalance":
            if rebalance is None:
                return self.reply(404, "")
            return self.reply(200, json.dumps(rebalance), "application/json")
        if path == "/latest/meta-data/instance-life-cycle":
            return self.reply(200, "spot" if spot else "on-demand")
        return self.reply(404, "")

    # ---------------------------------------------------------------- GCP

    def gcp_value(self, path):
        st = self.st
        if path == "/computeMetadata/v1/instance/preempted":
            return "TRUE" if st.gcp_preempted else "FALSE"
        if path == "/computeMetadata/v1/instance/maintenance-event":
            return str(st.gcp_maintenance)
        if path == "/computeMetadata/v1/instance/scheduling/preemptible":
            return "TRUE" if st.gcp_preemptible else "FALSE"
        return None

    def gcp(self, path, query):
        st = self.st
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.reply(403, "Missing Metadata-Flavor:Google header.")
        with st.cv:
            value = self.gcp_value(path)
            if value is not None and query.get("wait_for_change") == "true":
                start = query.get("last_etag") or etag(value)
                limit = LONG_POLL_S
                if query.get("timeout_sec", "").isdigit():
                    limit = min(limit, float(query["timeout_sec"]))
                deadline = time.monotonic() + limit
                while (etag(value) == start and not st.closing
                       and time.monotonic() < deadline):
                    st.cv.wait(deadline - time.monotonic())
                    value = self.gcp_value(path)
                if st.closing:
                    self.close_connection = True
                    return None
            flavor = st.gcp_flavor
        if value is None:
            return self.reply(404, "not found", headers=[("Metadata-Flavor", "Google")])
        headers = [("ETag", etag(value))]
        if flavor:
            headers.append(("Metadata-Flavor", "Google"))
        return self.reply(200, value, "application/text", headers)

    # -------------------------------------------------------------- Azure

    def azure(self, path, query, body):
        st = self.st
        if self.headers.get("Metadata") != "true":
            return self.reply(400, '{"error":"Bad request. Required metadata header not specified"}',
                              "application/json")
        if "api-version" not in query:
            return self.reply(400, '{"error":"Bad request. api-version was not specified"}',
                              "application/json")
        with st.cv:
            answer = self.azure_answer(path, query, body)
        return self.reply(*answer)

    def azure_answer(self, path, query, body):
        """(code, body, content type) for an Azure request; called locked."""
        st = self.st
        if path == "/metadata/scheduledevents" and self.command == "GET":
            doc = {"DocumentIncarnation": st.azure_incarnation, "Events": st.azure_events}
            return 200, json.dumps(doc), "application/json"
        if path == "/metadata/scheduledevents" and self.command == "POST":
            try:
                ids = [r["EventId"] for r in json.loads(body)["StartRequests"]]
            except (ValueError, KeyError, TypeError):
                return 400, '{"error":"Bad request"}', "application/json"
            known = {e.get("EventId") for e in st.azure_events}
            stale = [i for i in ids if i not in known]
            if stale or not ids:
                return (400, json.dumps({"error": "Bad request. Unknown EventId: %s"
                                         % ", ".join(map(str, stale))}), "application/json")
            for e in st.azure_events:
                if e.get("EventId") in ids:  # for every VM in its Resources
                    e["EventStatus"] = "Started"
                    e["NotBefore"] = ""
            st.azure_incarnation += 1
            return 200, "", "text/plain"
        if self.command == "GET" and query.get("format") == "text":
            if path == "/metadata/instance/compute/name":
                return 200, st.azure_vm, "text/plain"
            if path == "/metadata/instance/compute/priority":
                return 200, st.azure_priority, "text/plain"
        return 404, '{"error":"Not found"}', "application/json"


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # clients that give up (timeouts, a destroyed watcher) are expected
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeMeta:
    """The server on a background thread: url, set(**state), requests(), close()."""

    def __init__(self, port=0):
        self.server = Server(("127.0.0.1", port), Handler)
        self.server.state = State()
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def set(self, **changes):
        self.server.state.update(changes)

    def requests(self):
        with self.server.state.cv:
            return json.loads(json.dumps(self.server.state.log))

    def azure_events(self):
        """The Scheduled Events as the server now has them (EventStatus included)."""
        with self.server.state.cv:
            return json.loads(json.dumps(self.server.state.azure_events))

    def close(self):
        st = self.server.state
        with st.cv:
            st.closing = True
            st.cv.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    ap = argparse.ArgumentParser(description="fake cloud metadata server for tests")
    ap.add_argument("--port-file", required=True, help="write the bound port here (atomically)")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    meta = FakeMeta(args.port)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % meta.port)
    os.replace(tmp, args.port_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.wait(0.2):
        if os.getppid() != parent:  # the test that started us is gone
            break
    meta.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
