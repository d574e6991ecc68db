"""harness — start real droverd / drover-agent / drover processes for the
integration tests (stdlib only).

Each test gets a Cluster (DroverTestCase.c) living in its own temp dir:
state dir, api socket (ipc://TMP/api.sock), a free TCP port for the agents
socket, one work dir per agent and one log file per daemon. Daemons run in
their own sessions so a whole process group can be killed; step processes
are found by a per-test marker in their environment (DROVER_IT_TOKEN, which
agents pass on to the steps they start) or a cwd under the temp dir, and
killed at the end whatever happened. When a test fails, the tail of every
daemon log is printed. Sanitizer reports (ASan/UBSan/LSan) in any daemon
log or CLI stderr fail the test, and so does a daemon that died on its own.

Waits are conditions polled with wait_until(); nothing sleeps a fixed time
to wait for something to happen. Timeouts are multiplied by SCALE (3 on an
ASan build, or DROVER_TEST_TIMEOUT_SCALE).

Environment: DROVER_BIN_DIR (droverd, drover-agent, drover), DROVER_SOURCE_DIR,
DROVER_TEST_KEEP=1 keeps the temp dir of a failed test,
DROVER_TEST_VERBOSE=1 prints the daemon logs of passing tests too,
DROVER_TEST_SHARD=K/N runs only every Nth test case from the Kth (main()).
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("DROVER_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN_DIR = os.environ.get("DROVER_BIN_DIR") or os.path.join(SOURCE_DIR, "build")
KEEP_TMP = os.environ.get("DROVER_TEST_KEEP") == "1"
VERBOSE = os.environ.get("DROVER_TEST_VERBOSE") == "1"

FINAL_RUN = ("SUCCEEDED", "FAILED", "CANCELLED")
FINAL_TASK = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "CACHED")

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer: detected memory leaks",
    "runtime error:",  # UBSan
    "ERROR: ThreadSanitizer",
    "WARNING: ThreadSanitizer",
)


def check_sanitizer_text(text, what):
    """Fail at once when text (a CLI's stderr) has a sanitizer report."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for m in SANITIZER_MARKERS:
        if m in text:
            raise Abort("sanitizer report from %s:\n%s" % (what, text[-4000:]))


def bin_path(name):
    return os.path.join(BIN_DIR, name)


def _detect_scale():
    env = os.environ.get("DROVER_TEST_TIMEOUT_SCALE")
    if env:
        return float(env)
    try:
        with open(bin_path("droverd"), "rb") as f:
            if b"__asan_init" in f.read():
                return 3.0
    except OSError:
        pass
    return 1.0


SCALE = _detect_scale()


class Abort(AssertionError):
    """Raised inside a wait_until predicate to stop waiting at once."""


class DaemonDied(Abort):
    pass


def wait_until(pred, timeout=60, interval=0.05, what=None):
    """Poll pred() until it returns something truthy and return that.
    Exceptions from pred count as "not yet" (the last one is reported),
    except Abort. Fails the test after timeout*SCALE seconds."""
    limit = timeout * SCALE
    deadline = time.monotonic() + limit
    last, last_exc = None, None
    while True:
        try:
            last = pred()
            if last:
                return last
        except Abort:
            raise
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.0fs waiting for %s; last value: %r" % (
                limit, what or getattr(pred, "__name__", "condition"), last)
            if last_exc is not None:
                msg += "; last error: %s: %s" % (type(last_exc).__name__, last_exc)
            raise AssertionError(msg)
        time.sleep(interval)


def holds_for(pred, seconds, interval=0.1, what=None):
    """Assert pred() stays truthy for `seconds` (an observation window to
    show that something does NOT happen; not a wait for a condition)."""
    end = time.monotonic() + seconds
    while True:
        v = pred()
        if not v:
            raise AssertionError("%s stopped holding: %r" % (what or "condition", v))
        if time.monotonic() >= end:
            return v
        time.sleep(interval)


def raw_http(port, data, body=b"", timeout=20, read=True):
    """Send data (a request's head, bytes or text) and body on a new
    connection to 127.0.0.1:port; return what came back before the server
    closed or reset it, or timeout passed (nothing, without read). A
    server that refuses before it has all of it is not an error here: its
    answer is what the caller looks at."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data if isinstance(data, bytes) else data.encode())
            if body:
                s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while read:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def http_status(raw):
    """The status code of a raw HTTP answer (raw_http's), or None when it
    is not one (nothing came back, or not HTTP)."""
    line = raw.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") and \
        line[1].isdigit() else None


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def read_lines(path):
    try:
        with open(path) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def read_text(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return default


# --------------------------------------------------------------- YAML


_PLAIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./=-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _PLAIN_RE.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists/scalars (enough for pipeline specs)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s\n" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s\n" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 2)
                out.append(pad + "- " + inner[indent + 2:])
            elif isinstance(v, list) and v:
                out.append(pad + "-\n" + to_yaml(v, indent + 2))
            else:
                out.append("%s- %s\n" % (pad, _scalar(v)))
    else:
        out.append(pad + _scalar(obj) + "\n")
    return "".join(out)


# --------------------------------------------------------------- processes


class CliResult:
    def __init__(self, argv, rc, out, err, timed_out=False):
        self.argv, self.rc, self.out, self.err, self.timed_out = argv, rc, out, err, timed_out

    def __repr__(self):
        return "<drover %s: rc=%s%s stdout=%r stderr=%r>" % (
            " ".join(self.argv[1:]), self.rc, " (timed out)" if self.timed_out else "",
            self.out[-2000:], self.err[-2000:])


class Daemon:
    """One droverd or drover-agent process in its own session."""

    def __init__(self, kind, name, argv, log_path, env, cwd):
        self.kind, self.name, self.argv, self.log_path = kind, name, argv, log_path
        self.expected_exit = False
        with open(log_path, "ab") as log:
            log.write(("==== %s harness: start %s\n" % (
                time.strftime("%H:%M:%S"), " ".join(argv))).encode())
            log.flush()
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                      start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def note(self, text):
        with open(self.log_path, "ab") as log:
            log.write(("==== %s harness: %s\n" % (time.strftime("%H:%M:%S"), text)).encode())

    def signal_group(self, sig):
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self):
        """kill -9 the process group and reap it."""
        self.expected_exit = True
        self.note("kill -9")
        self.signal_group(signal.SIGKILL)
        self.p.wait(timeout=30)

    def terminate(self):
        self.expected_exit = True
        if self.alive():
            self.note("SIGTERM")
            try:
                self.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def log_text(self):
        return read_text(self.log_path, "")


def _find_pids(env_entry, root_dir, exclude):
    """Processes whose environment has env_entry (b"K=V") or whose cwd is
    under root_dir."""
    found = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid == me or pid in exclude:
            continue
        hit = False
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                hit = env_entry in f.read().split(b"\0")
        except OSError:
            pass
        if not hit and root_dir:
            try:
                cwd = os.readlink("/proc/%d/cwd" % pid)
                hit = cwd == root_dir or cwd.startswith(root_dir.rstrip("/") + "/")
            except OSError:
                pass
        if hit:
            found.append(pid)
    return found


def _kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Cluster:
    """droverd + agents + CLI for one test, all under one temp dir."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.token = uuid.uuid4().hex
        self.state_dir = os.path.join(tmp, "state")
        self.api = "ipc://%s/api.sock" % tmp
        self.port = None
        self.droverd = None
        self.droverd_extra = []
        self.agents = {}
        self.daemons = []
        self.spec_count = 0
        self.env = dict(os.environ)
        self.env.pop("DROVER_API", None)
        self.env["DROVER_IT_TOKEN"] = self.token
        os.makedirs(self.state_dir, exist_ok=True)

    # ---- paths

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    @property
    def agents_endpoint(self):
        return "tcp://127.0.0.1:%d" % self.port

    # ---- droverd

    def start_droverd(self, extra=(), wait=True, config=None):
        """Start droverd (or restart it on the same state dir, port and
        api socket) and, with wait, return once its API answers. With
        config, droverd gets only `--config FILE` (+ extra): the file must
        name this cluster's state dir, port and api socket."""
        if self.droverd is not None and self.droverd.alive():
            raise AssertionError("droverd already running")
        if extra:
            self.droverd_extra = list(extra)
        for tries in range(3):
            if self.port is None:
                self.port = free_port()
            if config:
                argv = [bin_path("droverd"), "--config", config] + self.droverd_extra
            else:
                argv = [bin_path("droverd"), "--state-dir", self.state_dir,
                        "--listen", self.agents_endpoint, "--api", self.api,
                        "--agent-timeout", "2s"] + self.droverd_extra
            d = Daemon("droverd", "droverd", argv, self.path("droverd.log"), self.env, self.tmp)
            self.droverd = d
            self.daemons.append(d)
            if not wait:
                return d
            try:
                self.wait_api_ready()
                return d
            except DaemonDied:
                log = d.log_text()
                # another test grabbed the port between free_port() and bind
                if ("in use" in log or "EADDRINUSE" in log) and not self.agents and not config \
                        and tries < 2:
                    d.expected_exit = True
                    self.port = None
                    continue
                raise
        raise AssertionError("droverd did not start")

    # ---- drover-web

    def start_web(self, extra=(), wait=True):
        """Start drover-web on a free local port in front of this cluster's
        droverd (its API socket) and, with wait, return once /healthz
        answers. self.web_url is its base URL ("http://127.0.0.1:PORT")."""
        import urllib.request
        for tries in range(3):
            port = free_port()
            argv = [bin_path("drover-web"), "--listen", "127.0.0.1:%d" % port,
                    "--api", self.api]
            if os.path.isdir(os.path.join(BIN_DIR, "web")):  # the console (CMake builds it)
                argv += ["--assets", os.path.join(BIN_DIR, "web")]
            argv += list(extra)
            d = Daemon("drover-web", "drover-web", argv, self.path("drover-web.log"),
                       self.env, self.tmp)
            self.daemons.append(d)
            self.web = d
            self.web_url = "http://127.0.0.1:%d" % port
            if not wait:
                return d

            def up():
                if not d.alive():
                    raise DaemonDied("drover-web exited during start-up (rc %s); log tail:\n%s"
                                     % (d.p.returncode, tail(d.log_text(), 40)))
                try:
                    with urllib.request.urlopen(self.web_url + "/healthz", timeout=5) as r:
                        return r.status == 200
                except OSError:
                    return False
            try:
                wait_until(up, timeout=30, interval=0.1, what="drover-web to answer")
                return d
            except DaemonDied:
                if "cannot listen" in d.log_text() and tries < 2:
                    d.expected_exit = True
                    continue
                raise
        raise AssertionError("drover-web did not start")

    def wait_api_ready(self, timeout=30):
        d = self.droverd

        def ready():
            if not d.alive():
                raise DaemonDied("droverd exited during start-up (rc %s); log tail:\n%s"
                                 % (d.p.returncode, tail(d.log_text(), 40)))
            return self.cli("runs", "-o", "json", timeout=5, check_sanitizer=True).rc == 0

        wait_until(ready, timeout=timeout, interval=0.1, what="droverd API to answer")

    def kill_droverd(self):
        self.droverd.kill()

    def restart_droverd(self):
        if self.droverd is not None and self.droverd.alive():
            self.droverd.kill()
        return self.start_droverd()

    # ---- agents

    def start_agent(self, name, cpus=4, gpus=0, memory="1Gi", labels=None,
                    heartbeat="200ms", wait=True, extra=()):
        if self.port is None:
            self.port = free_port()
        work = self.path("agents", name)
        os.makedirs(work, exist_ok=True)
        argv = [bin_path("drover-agent"), "--scheduler", self.agents_endpoint,
                "--work-dir", work, "--name", name, "--cpus", str(cpus),
                "--memory", memory, "--gpus", str(gpus), "--heartbeat", heartbeat]
        if labels:
            argv += ["--labels", ",".join("%s=%s" % kv for kv in labels.items())]
        argv += list(extra)
        env = dict(self.env, DROVER_IT_NODE="%s-%s" % (self.token, name))
        d = Daemon("agent", name, argv, self.path("agent-%s.log" % name), env, self.tmp)
        d.work_dir = work
        self.agents[name] = d
        self.daemons.append(d)
        if wait:
            self.wait_agent_connected(name)
        return d

    def agent_work_dir(self, name):
        return self.path("agents", name)

    def kill_agent(self, name, node=True):
        """kill -9 the agent; with node, also every step process it started
        (the machine is gone, not just the daemon)."""
        d = self.agents[name]
        d.kill()
        if node:
            entry = ("DROVER_IT_NODE=%s-%s" % (self.token, name)).encode()
            for _ in range(3):
                _kill_pids(_find_pids(entry, d.work_dir, self._daemon_pids()))

    def wait_agent_connected(self, name, timeout=30):
        d = self.agents.get(name)

        def connected():
            if d is not None and not d.alive():
                raise DaemonDied("agent %s exited (rc %s); log tail:\n%s"
                                 % (name, d.p.returncode, tail(d.log_text(), 40)))
            a = self.agent(name)
            return a if a and a.get("connected") else None

        return wait_until(connected, timeout=timeout, interval=0.1,
                          what="agent %s to be connected" % name)

    # ---- CLI

    def cli(self, *args, timeout=60, env=None, api=True, check_sanitizer=True):
        argv = [bin_path("drover")] + (["--api", self.api] if api else []) + [str(a) for a in args]
        e = dict(self.env)
        if env:
            e.update(env)
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout * SCALE, env=e, cwd=self.tmp)
            r = CliResult(argv, p.returncode, p.stdout.decode(errors="replace"),
                          p.stderr.decode(errors="replace"))
        except subprocess.TimeoutExpired as ex:
            r = CliResult(argv, None, (ex.stdout or b"").decode(errors="replace"),
                          (ex.stderr or b"").decode(errors="replace"), timed_out=True)
        if check_sanitizer:
            check_sanitizer_text(r.err, "the CLI: %r" % r)
        return r

    def popen_cli(self, *args, api=True):
        """Start the CLI in the background (stdout/stderr pipes)."""
        argv = [bin_path("drover")] + (["--api", self.api] if api else []) + [str(a) for a in args]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env, cwd=self.tmp)

    def _check_droverd(self):
        d = self.droverd
        if d is not None and not d.expected_exit and not d.alive():
            raise DaemonDied("droverd died (rc %s); log tail:\n%s"
                             % (d.p.returncode, tail(d.log_text(), 60)))

    def cli_json(self, *args, timeout=60):
        r = self.cli(*(list(args) + ["-o", "json"]), timeout=timeout)
        if r.rc != 0:
            self._check_droverd()
            raise AssertionError("CLI failed: %r" % r)
        try:
            return json.loads(r.out)
        except ValueError as e:
            raise AssertionError("CLI printed invalid JSON (%s): %r" % (e, r)) from None

    # ---- specs and runs

    def write_spec(self, spec, name=None):
        self.spec_count += 1
        name = name or "spec%d.yaml" % self.spec_count
        path = self.path(name)
        if isinstance(spec, dict):
            data = to_yaml(spec).encode()
        elif isinstance(spec, str):
            data = spec.encode()
        else:
            data = bytes(spec)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def submit(self, spec, params=None, name=None, extra=()):
        """Submit a spec (dict → YAML, or text) and return the run id."""
        path = spec if isinstance(spec, str) and os.path.isfile(spec) else self.write_spec(spec, name)
        args = ["submit", path]
        for k, v in (params or {}).items():
            args += ["-p", "%s=%s" % (k, v)]
        r = self.cli(*(args + list(extra)))
        if r.rc != 0:
            self._check_droverd()
            raise AssertionError("submit failed: %r" % r)
        rid = r.out.strip()
        if not rid or any(ch.isspace() for ch in rid):
            raise AssertionError("submit did not print just a run id: %r" % r)
        return rid

    def runs(self):
        v = self.cli_json("runs")
        if isinstance(v, dict) and "runs" in v:
            v = v["runs"]
        return v

    def get_run(self, rid):
        self._check_droverd()
        return self.cli_json("run", "get", rid)

    def wait_run_final(self, rid, timeout=120):
        def final():
            self._check_droverd()
            r = self.get_run(rid)
            return r if r["status"] in FINAL_RUN else None

        return wait_until(final, timeout=timeout, interval=0.1, what="run %s to finish" % rid)

    def wait_run_status(self, rid, status, timeout=60):
        def ok():
            r = self.get_run(rid)
            return r if r["status"] == status else None

        return wait_until(ok, timeout=timeout, interval=0.1, what="run %s to be %s" % (rid, status))

    def wait_task(self, rid, name, pred, timeout=60, what=None):
        def ok():
            t = task(self.get_run(rid), name)
            return t if pred(t) else None

        return wait_until(ok, timeout=timeout, interval=0.1,
                          what=what or "task %s of run %s" % (name, rid))

    def wait_task_status(self, rid, name, *statuses, timeout=60):
        return self.wait_task(rid, name, lambda t: t["status"] in statuses, timeout=timeout,
                              what="task %s of run %s to be %s" % (name, rid, "/".join(statuses)))

    def agents_list(self):
        v = self.cli_json("agents")
        if isinstance(v, dict) and "agents" in v:
            v = v["agents"]
        return v

    def agent(self, name):
        for a in self.agents_list():
            if a.get("name") == name:
                return a
        return None

    # ---- teardown

    def _daemon_pids(self):
        return {d.pid for d in self.daemons}

    def kill_steps(self):
        entry = ("DROVER_IT_TOKEN=%s" % self.token).encode()
        _kill_pids(_find_pids(entry, self.tmp, self._daemon_pids()))

    def stop(self):
        """Stop everything; return a list of problems found (unexpected
        daemon deaths, sanitizer reports)."""
        problems = []
        for d in self.daemons:
            if not d.expected_exit and not d.alive():
                problems.append("%s %s exited on its own during the test (rc %s)"
                                % (d.kind, d.name, d.p.returncode))
        self.kill_steps()
        for d in self.daemons:
            d.terminate()
        deadline = time.monotonic() + 10 * SCALE
        for d in self.daemons:
            try:
                d.p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                d.note("did not exit within %.0fs of SIGTERM; kill -9" % (10 * SCALE))
                sys.stderr.write("note: %s %s did not exit on SIGTERM\n" % (d.kind, d.name))
            d.signal_group(signal.SIGKILL)
            try:
                d.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill_steps()
        seen = set()
        for d in self.daemons:
            if d.log_path in seen:
                continue
            seen.add(d.log_path)
            text = d.log_text()
            for m in SANITIZER_MARKERS:
                if m in text:
                    problems.append("sanitizer report in %s" % os.path.basename(d.log_path))
                    break
        return problems

    def dump_logs(self, out=sys.stderr):
        for name in sorted(os.listdir(self.tmp)):
            if not name.endswith(".log"):
                continue
            out.write("\n----- %s (last 150 lines) -----\n" % name)
            out.write(tail(read_text(os.path.join(self.tmp, name), ""), 150))
            out.write("\n")
        out.write("----- temp dir: %s%s -----\n" % (self.tmp, " (kept)" if KEEP_TMP else ""))
        out.flush()


def tail(text, n):
    return "\n".join(text.splitlines()[-n:])


def task(run, name):
    for t in run.get("tasks") or []:
        if t.get("name") == name:
            return t
    raise AssertionError("run %s has no task %r (tasks: %s)"
                         % (run.get("id"), name, [t.get("name") for t in run.get("tasks") or []]))


class DroverTestCase(unittest.TestCase):
    """Base class: self.c is a fresh Cluster; everything is stopped at the
    end; logs are printed when the test failed."""

    maxDiff = None

    def setUp(self):
        missing = [b for b in ("droverd", "drover-agent", "drover")
                   if not os.access(bin_path(b), os.X_OK)]
        if missing:
            self.fail("missing binaries in DROVER_BIN_DIR=%s: %s" % (BIN_DIR, ", ".join(missing)))
        base = tempfile.gettempdir()
        if len(base) > 40:  # ipc:// paths must fit in sun_path
            base = "/tmp"
        self.tmp = tempfile.mkdtemp(prefix="drover-it-", dir=base)
        self.c = Cluster(self.tmp)
        self.addCleanup(self._stop_cluster)

    def _stop_cluster(self):
        problems = self.c.stop()
        if problems:
            self.fail("; ".join(problems))

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            c = getattr(self, "c", None)
            if c is not None:
                failed = len(result.failures) + len(result.errors) > before
                if failed or VERBOSE:
                    sys.stderr.write("\n===== logs of %s =====\n" % self.id())
                    c.dump_logs()
                if not (failed and KEEP_TMP):
                    shutil.rmtree(c.tmp, ignore_errors=True)

    # ---- common assertions

    def assertRunSucceeded(self, run):
        bad = [(t["name"], t["status"], t.get("reason")) for t in run["tasks"]
               if t["status"] != "SUCCEEDED"]
        self.assertEqual(run["status"], "SUCCEEDED",
                         "run %s is %s; tasks not SUCCEEDED: %s" % (run["id"], run["status"], bad))
        self.assertEqual(bad, [])


def read_with_timeout(proc, pattern, timeout=30):
    """Read proc.stdout until the accumulated bytes match regex `pattern`
    (bytes) or EOF; return (data, matched)."""
    data = b""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout * SCALE
    while not re.search(pattern, data):
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        r, _, _ = select.select([fd], [], [], min(left, 0.5))
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data, bool(re.search(pattern, data))
            data += chunk
    return data, True


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


def shard_suite(suite, shard):
    """The test cases of shard "K/N" (1 <= K <= N): every Nth case of the
    file in unittest's order (by class, then method name), starting with
    the Kth, so that the N shards together run each case exactly once."""
    m = re.match(r"^(\d+)/(\d+)$", shard)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise SystemExit("DROVER_TEST_SHARD=%r: expected K/N with 1 <= K <= N" % shard)
    k, n = int(m.group(1)), int(m.group(2))
    cases = list(_flatten(suite))
    return unittest.TestSuite(t for i, t in enumerate(cases) if i % n == k - 1)


def main():
    """Run the calling file's test cases (or those named on the command
    line). DROVER_TEST_SHARD=K/N runs only shard K of N (shard_suite): CMake
    splits a long file into N ctest entries this way so that ctest -j can
    spread it over its slots (CMakeLists.txt, INTEGRATION_SHARDS)."""
    shard = os.environ.get("DROVER_TEST_SHARD")
    name = os.path.basename(sys.argv[0])
    if shard:
        loader = unittest.TestLoader()
        module = sys.modules["__main__"]
        suite = (loader.loadTestsFromNames(sys.argv[1:], module) if sys.argv[1:]
                 else loader.loadTestsFromModule(module))
        r = unittest.TextTestRunner(verbosity=2).run(shard_suite(suite, shard))
        name += " shard " + shard
    else:
        r = unittest.main(module="__main__", exit=False, verbosity=2).result
    ok = r.wasSuccessful()
    print("SUMMARY %s: %d run, %d failed, %d errors, %d skipped -> %s"
          % (name, r.testsRun, len(r.failures), len(r.errors),
             len(r.skipped), "OK" if ok else "FAIL"), flush=True)
    sys.exit(0 if ok else 1)


def check_daemons(c):
    """Fail at once when droverd or an agent died on its own."""
    for d in c.daemons:
        if not d.expected_exit and not d.alive():
            raise DaemonDied("%s %s died (rc %s); log tail:\n%s" % (
                d.kind, d.name, d.p.returncode, tail(d.log_text(), 40)))


def wait_final(c, rid, timeout=90):
    """c.wait_run_final, but give up at once when a daemon died (a crashed
    agent would otherwise leave its step hanging until the timeout)."""
    def final():
        check_daemons(c)
        r = c.get_run(rid)
        return r if r["status"] in FINAL_RUN else None

    return wait_until(final, timeout=timeout, interval=0.1, what="run %s to finish" % rid)
