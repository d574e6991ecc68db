"""Client over drover-web's REST API (/api/v1, the routes of docs: README
"HTTP API" and webd/openapi.json).

Design: one urllib request per call (no connection state to go stale); the
token goes in `Authorization: Bearer` on every request; answers are the
JSON of the proto messages (snake_case fields, enums lowercase:
run["status"] == "succeeded"). Errors become DroverError subclasses
(errors.py). Streams (events, log follow) are Server-Sent Events read with
sse.SSEParser; a dropped connection is reopened with Last-Event-ID (events)
or the byte offset reached (logs), after a short back-off, until the
caller's timeout. Downloads go to a temporary name next to the target and
are renamed into place only when complete and verified (the file's SHA-256
against X-Drover-Digest); a directory artifact arrives as a tar stream and
is unpacked member by member with every path checked: no absolute path,
no `..`, no links or special files, nothing outside dest.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Any, BinaryIO, Iterator, Mapping

from .errors import DroverError, RateLimited, Unavailable, error_from_response
from .sse import Event, SSEParser

__all__ = ["Client", "FINAL_RUN", "safe_extract_tar"]

#: Run statuses after which nothing changes any more.
FINAL_RUN = ("succeeded", "failed", "cancelled")

DEFAULT_URL = "http://127.0.0.1:7080"


def _quote(s: str) -> str:
    return urllib.parse.quote(str(s), safe="")


class Client:
    """A connection to drover-web.

    url: drover-web's base URL (default $DROVER_URL, else
    http://127.0.0.1:7080); token: the API token (default $DROVER_TOKEN);
    timeout: seconds for each plain request; cafile: the CA bundle that
    signed drover-web's certificate (https, when not the system's);
    retries_429: how often a GET refused with 429 is tried again after its
    Retry-After (at most 10 s each)."""

    def __init__(self, url: str | None = None, token: str | None = None,
                 timeout: float = 60.0, cafile: str | None = None,
                 retries_429: int = 3) -> None:
        self.url = (url or os.environ.get("DROVER_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("DROVER_TOKEN")
        self.timeout = timeout
        self.retries_429 = retries_429
        self._ssl = ssl.create_default_context(cafile=cafile) if cafile else None

    # ------------------------------------------------------------ plumbing

    def _open(self, method: str, path: str, query: Any = None, body: bytes | None = None,
              content_type: str | None = None, headers: Mapping[str, str] | None = None,
              timeout: float | None = None):  # noqa: ANN202 - an http.client response
        """Send one request; return the open response (status < 400) or
        raise the DroverError for the answer."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        req = urllib.request.Request(url, data=body, method=method)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        if content_type:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        for attempt in range(self.retries_429 + 1):
            try:
                return urllib.request.urlopen(req, timeout=timeout or self.timeout,
                                              context=self._ssl)
            except urllib.error.HTTPError as e:
                data = e.read() if e.fp is not None else b""
                err = error_from_response(e.code, data, e.headers)
                if isinstance(err, RateLimited) and method == "GET" \
                        and attempt < self.retries_429:
                    time.sleep(min(10.0, err.retry_after or 1.0))
                    continue
                raise err from None
            except (urllib.error.URLError, OSError, HTTPException) as e:
                reason = getattr(e, "reason", e)
                raise Unavailable("cannot reach drover-web at %s: %s"
                                  % (self.url, reason)) from None
        raise AssertionError("not reached")

    def _json(self, method: str, path: str, query: Any = None, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        with self._open(method, path, query, data,
                        "application/json" if data is not None else None) as r:
            raw = r.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise DroverError("drover-web answered %s %s with invalid JSON: %r"
                              % (method, path, raw[:200])) from None

    # ------------------------------------------------------------ runs

    def submit(self, spec: Any, params: Mapping[str, Any] | None = None,
               name: str | None = None, no_cache: bool = False,
               imports: Mapping[str, str] | None = None) -> str:
        """Submit a pipeline; return the run id.

        spec: a file path (its imports are read and sent too), a Pipeline,
        a dict (written as YAML) or YAML text (a str with a newline).
        params: -p overrides; name: the file name errors are reported
        against (default the path's, or "<pipeline name>.yaml");
        imports: extra {path: content} files the spec imports. A refused
        spec raises InvalidSpec with .errors (file, line, col, message)."""
        files: dict[str, str] = {}
        if hasattr(spec, "to_yaml"):
            text = spec.to_yaml()
            name = name or "%s.yaml" % getattr(spec, "name", "pipeline")
        elif isinstance(spec, dict):
            from .yamlemit import dump
            text = dump(spec)
            name = name or "%s.yaml" % spec.get("name", "pipeline")
        elif isinstance(spec, (str, os.PathLike)) and "\n" not in str(spec):
            path = os.fspath(spec)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            name = name or os.path.basename(path)
            files = read_imports(path, text)
        elif isinstance(spec, str):
            text = spec
            name = name or "spec.yaml"
        else:
            raise TypeError("spec must be a path, a Pipeline, a dict or YAML text, not %s"
                            % type(spec).__name__)
        files.update(imports or {})
        body = {
            "spec": text, "file": name,
            "params": {str(k): str(v) for k, v in (params or {}).items()},
            "imports": [{"path": p, "content": c} for p, c in files.items()],
            "no_cache": bool(no_cache),
        }
        return str(self._json("POST", "/api/v1/runs", body=body)["run_id"])

    def run(self, run_id: str) -> dict:
        """The run view with its tasks (status, tasks[...], params, ...)."""
        return self._json("GET", "/api/v1/runs/" + _quote(run_id))

    def task(self, run_id: str, task: str) -> dict:
        """One task's view, with its attempts (history)."""
        return self._json("GET", "/api/v1/runs/%s/tasks/%s" % (_quote(run_id), _quote(task)))

    def spec(self, run_id: str) -> str:
        """The YAML the run was submitted with."""
        with self._open("GET", "/api/v1/runs/%s/spec" % _quote(run_id)) as r:
            return r.read().decode("utf-8", "replace")

    def runs(self, status: str | list[str] | None = None, name: str | None = None,
             owner: str | None = None, schedule: str | None = None,
             page_size: int = 100) -> Iterator[dict]:
        """Every run matching the filters, newest first, page by page."""
        before = None
        while True:
            q: list[tuple[str, str]] = []
            for s in ([status] if isinstance(status, str) else status or []):
                q.append(("status", s))
            for k, v in (("name", name), ("owner", owner), ("schedule", schedule)):
                if v:
                    q.append((k, v))
            q.append(("limit", str(page_size)))
            if before:
                q.append(("before", before))
            page = self._json("GET", "/api/v1/runs", q)
            yield from page.get("runs") or []
            before = page.get("next")
            if not before or not page.get("runs"):
                return

    def cancel(self, run_id: str) -> Any:
        """Cancel the run (its running steps are stopped)."""
        return self._json("POST", "/api/v1/runs/%s/cancel" % _quote(run_id))

    def delete(self, run_id: str) -> Any:
        """Delete a finished run and what it stored."""
        return self._json("DELETE", "/api/v1/runs/" + _quote(run_id))

    def resume(self, run_id: str, step: str, reject: bool = False,
               params: Mapping[str, Any] | None = None) -> Any:
        """Approve (or with reject, reject) the suspended gate `step`;
        params set the gate's declared output params."""
        body = {"step": step, "reject": bool(reject),
                "params": {str(k): str(v) for k, v in (params or {}).items()}}
        return self._json("POST", "/api/v1/runs/%s/resume" % _quote(run_id), body=body)

    # ------------------------------------------------------------ events

    def events(self, run_id: str | None = None, since: int | None = None,
               timeout: float | None = None) -> Iterator[Event]:
        """Follow the event stream (SSE), reconnecting with Last-Event-ID
        when the connection drops. Yields sse.Event (event = task, run,
        agent, checkpoint, pool_node or truncated; .json() the record).
        A stream's `event: error` raises the DroverError of its code when a
        reconnect cannot help (unauthenticated, permission_denied,
        not_found, invalid), else the stream is reopened. Ends when timeout
        seconds have passed (None: never)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        parser = SSEParser()
        if since is not None:
            parser.resume_from(str(since))
        delay = 0.2
        while True:
            q = [("run", run_id)] if run_id else []
            headers = {"Accept": "text/event-stream"}
            if parser.last_id:
                headers["Last-Event-ID"] = parser.last_id
                q.append(("since", parser.last_id))
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                read_timeout = 60.0 if left is None else max(0.1, min(60.0, left))
                with self._open("GET", "/api/v1/events", q, headers=headers,
                                timeout=read_timeout) as r:
                    delay = 0.2
                    while True:
                        if deadline is not None and time.monotonic() >= deadline:
                            return
                        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
                        if not chunk:
                            break
                        for ev in parser.feed(chunk):
                            if ev.event == "error":
                                _raise_stream_error(ev)
                                break  # droverd unreachable: reconnect
                            yield ev
            except Unavailable:
                pass
            except (OSError, HTTPException, socket.timeout):
                pass
            parser.reset_event()
            if parser.retry_ms is not None:
                delay = parser.retry_ms / 1000.0
            if deadline is not None and time.monotonic() + delay >= deadline:
                return
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def wait(self, run_id: str, timeout: float | None = None,
             reread_every: float = 30.0) -> dict:
        """Block until the run ends; return its final view.

        Follows the run's events (SSE) and re-reads the run when a run
        event arrives, when the stream starts, after `truncated` (the
        reader fell behind the retained log), and at least every
        reread_every seconds (should an event never come). Raises
        TimeoutError when timeout seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        since = 0
        while True:
            run = self.run(run_id)
            if run.get("status") in FINAL_RUN:
                return run
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("run %s still %s after %ss"
                                   % (run_id, run.get("status"), timeout))
            slice_s = reread_every if left is None else min(reread_every, left)
            for ev in self.events(run_id=run_id, since=since, timeout=slice_s):
                if ev.id.isdigit():
                    since = int(ev.id)
                if ev.event == "truncated":
                    try:  # continue from the oldest event kept
                        since = max(since, int(ev.json().get("first_seq", 1)) - 1)
                    except (ValueError, AttributeError, TypeError):
                        pass
                    break
                if ev.event == "run":
                    break

    # ------------------------------------------------------------ logs

    def logs(self, run_id: str, step: str, follow: bool = False,
             attempt: int | None = None, offset: int = 0,
             timeout: float | None = None) -> Any:
        """A task's output: the text so far (follow=False), or an iterator
        of text chunks as they come until the attempt ends (follow=True;
        reconnects from the byte offset reached if the stream drops)."""
        path = "/api/v1/runs/%s/logs/%s" % (_quote(run_id), _quote(step))
        q: list[tuple[str, str]] = []
        if attempt is not None:
            q.append(("attempt", str(attempt)))
        if not follow:
            if offset:
                q.append(("offset", str(offset)))
            with self._open("GET", path, q) as r:
                return r.read().decode("utf-8", "replace")
        return self._follow_logs(path, q, offset, timeout)

    def _follow_logs(self, path: str, q: list, offset: int,
                     timeout: float | None) -> Iterator[str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.2
        while True:
            parser = SSEParser()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("log of %s not ended after %ss" % (path, timeout))
            try:
                query = q + [("follow", "1"), ("offset", str(offset))]
                with self._open("GET", path, query, headers={"Accept": "text/event-stream"},
                                timeout=60.0 if left is None else max(0.1, min(60.0, left))) as r:
                    while True:
                        chunk = r.read1(65536)
                        if not chunk:
                            break
                        for ev in parser.feed(chunk):
                            if ev.event == "end":
                                return
                            if ev.event in ("log", "message"):
                                text = _log_text(ev.data)
                                offset += len(text.encode("utf-8"))
                                if text:
                                    yield text
            except Unavailable:
                pass
            except (OSError, HTTPException, socket.timeout):
                pass
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------ artifacts

    def artifacts(self, run_id: str) -> list[dict]:
        """Every output artifact of the run, one flat dict each: task, name,
        is_dir, size, digest (hex) and, for a directory, files (path, mode,
        size, digest)."""
        views = self._json("GET", "/api/v1/runs/%s/artifacts" % _quote(run_id)).get("artifacts")
        return [dict(v.get("artifact") or {}, task=v.get("task")) for v in views or []]

    def artifact(self, run_id: str, step: str, name: str, dest: str) -> str:
        """Download an artifact to dest; return the path written.

        A file artifact is written to dest (or dest/NAME when dest is a
        directory) and checked against its SHA-256; a directory artifact is
        unpacked into dest (made; it must not exist, or be empty) from the
        tar stream, refusing absolute paths, `..`, links and special files.
        Nothing is left at dest when the download fails."""
        path = "/api/v1/runs/%s/artifacts/%s/%s" % (_quote(run_id), _quote(step), _quote(name))
        with self._open("GET", path, timeout=max(self.timeout, 600.0)) as r:
            ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/x-tar":
                return _download_dir(r, dest)
            return _download_file(r, dest, name, r.headers.get("X-Drover-Digest"))

    # ------------------------------------------------------------ fleet

    def status(self) -> dict:
        """droverd's status view."""
        return self._json("GET", "/api/v1/status")

    def agents(self) -> list[dict]:
        """Every agent droverd knows."""
        return self._json("GET", "/api/v1/agents").get("agents") or []

    def pools(self) -> list[dict]:
        """Every node pool."""
        return self._json("GET", "/api/v1/pools").get("pools") or []

    def healthz(self) -> dict:
        """drover-web's health answer (no token needed)."""
        return self._json("GET", "/healthz")


_FATAL_CODES = {"unauthenticated": 401, "permission_denied": 403, "not_found": 404,
                "invalid": 400}


def _raise_stream_error(ev: Event) -> None:
    """A stream's `event: error` ({"error", "code"}): raise the DroverError
    for a code that a reconnect cannot cure (a revoked token, a run that
    is gone); return for the others (droverd unreachable: reconnect)."""
    try:
        body = ev.json()
    except ValueError:
        return
    code = str(body.get("code") or "") if isinstance(body, dict) else ""
    if code in _FATAL_CODES:
        raise error_from_response(_FATAL_CODES[code], ev.data.encode())


def _log_text(data: str) -> str:
    """A log event's text: the data itself, or its "data"/"text" member
    when drover-web sends JSON objects."""
    if data.startswith("{"):
        try:
            v = json.loads(data)
            if isinstance(v, dict):
                return str(v.get("data", v.get("text", "")))
        except ValueError:
            pass
    return data


def read_imports(path: str, text: str) -> dict[str, str]:
    """The files a spec imports, transitively: {path relative to the spec's
    directory: content}. A light scan of the top-level `imports:` list (the
    forms `- lib/x.yaml`, `- {path: P, as: A}`, `imports: [a.yaml]`);
    droverd checks the imports and reports any file missing."""
    import re

    base = os.path.dirname(os.path.abspath(path))
    out: dict[str, str] = {}

    def scan(rel_dir: str, content: str) -> list[str]:
        found: list[str] = []
        lines = content.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^imports:\s*(.*)$", line)
            if not m:
                continue
            rest = m.group(1).split(" #")[0].strip()
            if rest.startswith("["):
                found += [x.strip().strip("'\"") for x in rest.strip("[]").split(",") if x.strip()]
                continue
            for item in lines[i + 1:]:
                if item.strip() == "" or item.lstrip().startswith("#"):
                    continue
                if not item.startswith((" ", "-")):
                    break
                im = re.match(r"^\s*-\s*(.*)$", item)
                if not im:
                    continue
                v = im.group(1).split(" #")[0].strip()
                pm = re.search(r"path:\s*([^,}]+)", v)
                if v.startswith("{") and pm:
                    v = pm.group(1)
                found.append(v.strip().strip("'\""))
        return [os.path.normpath(os.path.join(rel_dir, f)) for f in found if f]

    todo = scan("", text)
    while todo:
        rel = todo.pop(0)
        if rel in out:
            continue
        try:
            with open(os.path.join(base, rel), encoding="utf-8") as f:
                content = f.read()
        except OSError:
            continue  # droverd names the missing file at its entry
        out[rel] = content
        todo += scan(os.path.dirname(rel), content)
    return out


def _download_file(r: BinaryIO, dest: str, name: str, digest: str | None) -> str:
    if os.path.isdir(dest):
        dest = os.path.join(dest, name)
    d = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(prefix=".drover-", dir=d)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                f.write(chunk)
        if digest and digest.startswith("sha256:") and digest[7:].lower() != h.hexdigest():
            raise DroverError("artifact %s: downloaded content has sha256:%s, drover-web said %s"
                              % (name, h.hexdigest(), digest))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return dest


def _download_dir(r: BinaryIO, dest: str) -> str:
    dest = os.path.abspath(dest)
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise DroverError("artifact destination %s exists and is not an empty directory" % dest)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".drover-", dir=parent)
    try:
        safe_extract_tar(r, tmp)
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.rename(tmp, dest)
        os.chmod(dest, 0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def safe_extract_tar(stream: BinaryIO, dest: str) -> list[str]:
    """Unpack a tar stream into the existing directory dest; return the
    member paths written. Only regular files and directories are allowed;
    an absolute path, a `..` component, a link, a device or a path that
    would land outside dest (through anything already there) raises
    DroverError before that member is written. Modes keep only the
    permission bits 0o755 of the member (no setuid, nothing world-writable)."""
    root = os.path.realpath(dest)
    written: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|*") as tf:
        for m in tf:
            name = m.name
            parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                raise DroverError("refused tar member %r: absolute path" % name)
            if ".." in parts:
                raise DroverError("refused tar member %r: '..' in its path" % name)
            if not (m.isfile() or m.isdir()):
                raise DroverError("refused tar member %r: not a regular file or directory" % name)
            if not parts:
                continue
            target = os.path.join(root, *parts)
            parent = os.path.realpath(os.path.dirname(target))
            if parent != root and not parent.startswith(root + os.sep):
                raise DroverError("refused tar member %r: it would be written outside %s"
                                  % (name, dest))
            if os.path.islink(target):
                raise DroverError("refused tar member %r: %s is a link" % (name, target))
            if m.isdir():
                os.makedirs(target, exist_ok=True)
                os.chmod(target, 0o755)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = tf.extractfile(m)
                with open(target, "wb") as f:
                    shutil.copyfileobj(src, f, 1 << 20)
                os.chmod(target, (m.mode & 0o755) | 0o600)
            written.append("/".join(parts))
    return written
