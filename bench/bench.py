#!/usr/bin/env python3
"""bench — drover, Slurm and Dask side by side on one machine (`make bench`).

Installs what is missing (slurm-wlm, munge, python3-distributed, gnuplot),
starts a one-node Slurm (munged, slurmctld, slurmd as root, configured in a
temp dir), a Dask distributed scheduler with two workers and drover (droverd
with two drover-agents, or with drover-simagent's simulated agents), runs the
workloads of bench/README.md, and writes bench/results/latest.{md,json,png,log}
and the results section of bench/README.md. Every figure is the median of
several repetitions, with min and max. Everything it starts runs in its own
process group under one temp dir and is stopped at the end, whatever happened.

A workload drover cannot run yet (a spec it refuses: a key not implemented,
too many steps) is recorded as "n/a (reason)" and the suite goes on; where a
same-sized equivalent exists (independent steps split over several runs) it is
measured instead and the table says so.

Standard library only. The Dask client runs in a separate script
(bench/dask_bench.py) under the python3 that has the distributed package.
"""
import argparse
import http.client
import json
import math
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)

# Sizes. "full" is the issue's workload; "quick" (BENCH_QUICK=1) is for
# development; "smoke" is what tests/integration/test_bench_smoke.py runs.
SIZES = {
    "full": dict(
        reps=3, throughput=2000, distinct=2000, chain=200, chain_long=5000, literal=10000,
        wide=10000,
        slurm_chain=30, slurm_wide_reps=1,
        cap_agents=1000, cap_cpus="16", cap_tasks=100000,
        hb_agents=5000, hb_window=10,
        rec_agents=1000, rec_slots=10, rec_tasks=30000,
        big_agents=1000, big_tasks=1000000,
        subdag_items=100000,
        pools_tasks=10000, pools_agents=100, pools_max=100, pools_window=3,
        ptp_agents=200, ptp_tasks=50000,
        bl_agents=1000, bl_tasks=100000, bl_backlog=1000000, watch_runs=20,
        http_run=1000, http_secs=20,
        rv_tasks=10000, rv_items=1000000, rv_gets=50),
    "quick": dict(
        reps=1, throughput=500, distinct=500, chain=50, chain_long=1000, literal=2000,
        wide=1000,
        slurm_chain=10, slurm_wide_reps=1,
        cap_agents=100, cap_cpus="16", cap_tasks=10000,
        hb_agents=500, hb_window=3,
        rec_agents=100, rec_slots=10, rec_tasks=3000,
        big_agents=100, big_tasks=50000,
        subdag_items=10000,
        pools_tasks=2000, pools_agents=50, pools_max=20, pools_window=2,
        ptp_agents=100, ptp_tasks=10000,
        bl_agents=100, bl_tasks=100000, bl_backlog=1000000, watch_runs=20,
        http_run=1000, http_secs=10,
        rv_tasks=10000, rv_items=1000000, rv_gets=20),
    "smoke": dict(
        reps=1, throughput=40, distinct=40, chain=10, chain_long=20, literal=60, wide=50,
        slurm_chain=5, slurm_wide_reps=1,
        cap_agents=10, cap_cpus="4", cap_tasks=400,
        hb_agents=50, hb_window=1,
        rec_agents=10, rec_slots=4, rec_tasks=120,
        big_agents=10, big_tasks=2000,
        subdag_items=200,
        pools_tasks=200, pools_agents=5, pools_max=3, pools_window=0.5,
        ptp_agents=10, ptp_tasks=0,
        bl_agents=10, bl_tasks=400, bl_backlog=2000, watch_runs=3,
        http_run=100, http_secs=1,
        rv_tasks=300, rv_items=2000, rv_gets=3),
}

WORKLOADS = ("throughput", "distinct", "chain", "chain_long", "literal", "wide", "capacity",
             "heartbeat", "recovery", "big", "subdag", "pools",
             "backlog", "watch_lag", "http", "runview")
# Workloads on droverd + real drover-agents (the rest use drover-simagent).
REAL_WORKLOADS = ("throughput", "distinct", "chain", "chain_long", "literal", "wide")
SYSTEMS = ("drover", "slurm", "dask")
APT_PACKAGES = ("slurm-wlm", "munge", "python3-distributed", "gnuplot-nox")
MAX_STEPS_PER_SPEC = 1000  # what every drover so far accepts in one spec
# The http workload: requests a second to each endpoint (open loop), over
# this many keep-alive connections per endpoint.
HTTP_RATE = 20.0
HTTP_CONNS = 4

# Targets from the issue: (row key, comparison, value).
TARGETS = {
    "throughput": (">=", 2000.0),
    "distinct": (">=", 2000.0),
    "chain": ("<=", 2.0),
    "chain_long": ("<=", 2.0),
    "capacity": (">=", 50000.0),
    "capacity_rss": ("<=", None),
    "heartbeat": ("<=", 25.0),
    "recovery": ("<=", 1.0),
    "recovery_lost": ("<=", 0.0),
    "recovery_dup": ("<=", 0.0),
    "big_submit": ("<=", 10.0),
    "big_makespan": (None, None),
    "big_rss": ("<=", 1024.0),
    # issue #16: a fan-out of sub-DAGs stays within a flat fan-out's memory
    # per task (droverd's peak RSS growth over the run / tasks), 20% slack.
    "subdag_mem_ratio": ("<=", 1.2),
    # issue #18: placement throughput with a backlog no agent can hold
    # READY, within 10% of the same workload without it.
    "backlog_ratio": (">=", 0.9),
    # issue #19: `drover run watch` prints a run's end within 50 ms of the
    # commit of its end event (the p99 over short runs)
    "watch_lag": ("<=", 50.0),
}


class NA(Exception):
    """A workload that cannot be measured on a system; str() is the reason."""


# ------------------------------------------------------------------ logging


class Log:
    def __init__(self):
        self.t0 = time.monotonic()
        self.file = None

    def open(self, path):
        self.file = open(path, "w")

    def __call__(self, fmt, *args):
        line = "[%6.1fs] %s" % (time.monotonic() - self.t0, fmt % args if args else fmt)
        print(line, file=sys.stderr, flush=True)
        if self.file:
            self.file.write(line + "\n")
            self.file.flush()


log = Log()


# ------------------------------------------------------------------ processes


class Procs:
    """Every process the bench starts: each in its own session (process
    group), so stopping one stops what it started too."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log_path, env=None, cwd=None):
        out = open(log_path, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env, cwd=cwd, start_new_session=True)
        out.close()
        p.bench_name = name
        p.log_path = log_path
        self.procs.append(p)
        return p

    @staticmethod
    def signal(p, sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, p, timeout=15):
        if p.poll() is None:
            self.signal(p, signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("%s did not stop within %ds of SIGTERM: SIGKILL", p.bench_name, timeout)
        self.signal(p, signal.SIGKILL)  # whatever is left in its group
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if p in self.procs:
            self.procs.remove(p)

    def kill9(self, p):
        self.signal(p, signal.SIGKILL)
        p.wait(timeout=30)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p, timeout=10)


procs = Procs()


def run(argv, timeout=600, check=True, env=None, cwd=None, quiet=False):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=cwd)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (" ".join(argv[:3]), r.returncode,
                                                      (r.stderr or r.stdout).strip()[-800:]))
    if not quiet and r.returncode != 0:
        log("%s: rc %d: %s", " ".join(argv[:3]), r.returncode, r.stderr.strip()[-300:])
    return r


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_for(pred, timeout, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of pid (and its reaped children: none)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_io(pid):
    """/proc/PID/io as a dict: write_bytes is what the process dirtied in the
    page cache (what the disk is sent: whole page-cache folios, up to 2 MiB
    each on recent kernels), wchar every byte it passed to write calls."""
    out = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k.strip()] = int(v)
    return out


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def short_reason(text):
    """The gist of a CLI error for a table cell."""
    text = (text or "").strip().splitlines()[-1] if (text or "").strip() else "no output"
    text = re.sub(r"^drover: error: ", "", text)
    text = re.sub(r"^\S+\.yaml(:\d+:\d+)?: ", "", text)
    m = re.search(r"'?([\w.]+)'? \(([^)]*)\) is not implemented yet", text)
    if m:
        return "%s (%s) not implemented yet" % (m.group(1), m.group(2))
    return text[:110]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    want = min(want, 1 << 20)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ------------------------------------------------------------------ install


def have(cmd):
    return shutil.which(cmd) is not None


def find_dask_python():
    for py in ("/usr/bin/python3", sys.executable, shutil.which("python3")):
        if py and os.access(py, os.X_OK):
            r = subprocess.run([py, "-c", "import distributed"], capture_output=True)
            if r.returncode == 0:
                return py
    return None


def install(systems):
    need = []
    if "slurm" in systems and not all(have(c) for c in ("slurmctld", "slurmd", "sbatch")):
        need.append("slurm-wlm")
    if "slurm" in systems and not (have("munged") or os.path.exists("/usr/sbin/munged")):
        need.append("munge")
    if "dask" in systems and not find_dask_python():
        need.append("python3-distributed")
    if not have("gnuplot"):
        need.append("gnuplot-nox")
    if not need:
        log("install: everything needed is present")
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: need root to install %s (apt-get)" % " ".join(need))
    log("install: apt-get install %s", " ".join(need))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], timeout=900, env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + need, timeout=1800, env=env)


# ------------------------------------------------------------------ specs


def spec_head(name, cpu):
    """A spec's lines up to its steps: the name and, with cpu, every step's
    request."""
    lines = ["name: %s" % name]
    if cpu:
        lines.append("defaults: {resources: {cpu: %s}}" % cpu)
    return lines + ["steps:"]


def spec_fanout(name, n, cpu=None, join=False):
    """One fan-out step of n items running `true` (+ an optional fan-in).
    The items are a JSON list in one YAML scalar: the most compact form."""
    items = "[" + ",".join(str(i) for i in range(n)) + "]"
    lines = spec_head(name, cpu)
    lines += ["  - name: t", '    command: ["true"]', "    for_each: '%s'" % items]
    if join:
        lines += ["  - name: join", "    needs: [t]", '    command: ["true"]']
    return "\n".join(lines) + "\n"


def spec_range(name, n, cpu=None):
    """One fan-out step of n items given as a range: a million tasks in a
    few bytes of spec."""
    lines = spec_head(name, cpu)
    lines += ["  - name: t", '    command: ["true"]', "    for_each: {range: %d}" % n]
    return "\n".join(lines) + "\n"


def spec_packed(name, n, cpu=None, per_step=100000):
    """n tasks as fan-out steps of at most per_step items each, every item
    "0" (items need not differ: a task is named STEP[i]): the most tasks a
    1 MiB spec can hold (5 x 100,000)."""
    lines = spec_head(name, cpu)
    k = 0
    while n > 0:
        m = min(per_step, n)
        lines += ["  - name: t%d" % k, '    command: ["true"]',
                  "    for_each: '[%s]'" % ",".join("0" * m)]
        n -= m
        k += 1
    return "\n".join(lines) + "\n"


def spec_subdag(name, items, cpu=None):
    """A fan-out of sub-DAGs (issue #16): one step using a DAG template of
    two chained `true` steps (a, then b needing a) for each of range(items),
    so 2 x items tasks, named fan[i].a and fan[i].b. The template's input
    param x gets the item, as a real loop body's would."""
    res = ", resources: {cpu: %s}" % cpu if cpu else ""
    lines = ["name: %s" % name,
             "templates:",
             "  pair:",
             "    inputs: {params: {x: null}}",
             "    steps:",
             '      - {name: a, command: ["true"]%s}' % res,
             '      - {name: b, needs: [a], command: ["true"]%s}' % res,
             "steps:",
             "  - name: fan",
             "    uses: pair",
             "    for_each: {range: %d}" % items,
             '    with: {x: "{{item}}"}']
    return "\n".join(lines) + "\n"


def spec_steps(name, n, cpu=None, chain=False, first=0):
    lines = spec_head(name, cpu)
    for i in range(first, first + n):
        if chain and i > first:
            lines.append('  - {name: s%d, needs: [s%d], command: ["true"]}' % (i, i - 1))
        else:
            lines.append('  - {name: s%d, command: ["true"]}' % i)
    return "\n".join(lines) + "\n"


def fallback_ok(err):
    return bool(re.search(r"not implemented|too many|larger than|at most|for_each", err or ""))


# ------------------------------------------------------------------ drover


class Drover:
    """One droverd (fresh state dir) plus the CLI, under root."""

    def __init__(self, bindir, root):
        self.bindir = bindir
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.state = os.path.join(root, "state")
        self.api = "ipc://%s/api.sock" % root
        self.port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.proc = None
        self.nspec = 0
        self.agents = []
        self.max_api_s = 0.0  # longest `runs` answer seen (a busy loop answers late)
        self.extra = []  # more droverd arguments (the pools workload's --pools)
        # droverd answers nothing while one loop iteration runs: wait, and
        # measure it, rather than fail after the CLI's default 10 s.
        self.env = dict(os.environ, DROVER_API_TIMEOUT_MS="600000")

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def start(self, wait=True):
        argv = [self.bin("droverd"), "--state-dir", self.state, "--listen", self.endpoint,
                "--api", self.api] + list(self.extra)
        self.proc = procs.start("droverd", argv, os.path.join(self.root, "droverd.log"))
        if wait:
            self.wait_api()
        return self.proc

    def wait_api(self, timeout=60):
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("droverd exited (rc %s); see %s" % (self.proc.returncode,
                                                                       self.proc.log_path))
            return self.cli("runs", "-o", "json", "--limit", "1", check=False,
                            api_timeout_ms=2000).returncode == 0
        wait_for(up, timeout, 0.02, "droverd's API")

    def cli(self, *args, check=True, timeout=900, api_timeout_ms=None):
        env = self.env
        if api_timeout_ms:
            env = dict(env, DROVER_API_TIMEOUT_MS=str(api_timeout_ms))
        return run([self.bin("drover"), "--api", self.api] + [str(a) for a in args],
                   check=check, timeout=timeout, quiet=True, env=env)

    def start_agents(self, n=2):
        cpus = str(os.cpu_count() or 2)
        for i in range(1, n + 1):
            work = os.path.join(self.root, "agent-%d" % i)
            os.makedirs(work, exist_ok=True)
            argv = [self.bin("drover-agent"), "--scheduler", self.endpoint, "--work-dir", work,
                    "--name", "agent-%d" % i, "--cpus", cpus]
            self.agents.append(procs.start("agent-%d" % i, argv,
                                           os.path.join(self.root, "agent-%d.log" % i)))

        def connected():
            out = json.loads(self.cli("agents", "-o", "json").stdout)
            if isinstance(out, dict):
                out = out.get("agents", [])
            return sum(1 for a in out if a.get("connected")) >= n
        wait_for(connected, 60, 0.1, "agents to connect")

    def submit(self, text):
        """Submit spec text; returns (run id, None) or (None, error text)."""
        self.nspec += 1
        path = os.path.join(self.root, "spec%d.yaml" % self.nspec)
        with open(path, "w") as f:
            f.write(text)
        r = self.cli("submit", path, check=False)
        if r.returncode != 0:
            return None, (r.stderr or r.stdout).strip()
        return r.stdout.strip(), None

    def submit_tasks(self, name, n, cpu=None):
        """n independent `true` tasks: one fan-out run, or (when drover
        refuses that) runs of at most MAX_STEPS_PER_SPEC steps. Returns
        (run ids, note or None)."""
        rid, err = self.submit(spec_fanout(name, n, cpu))
        if rid:
            return [rid], None
        if not fallback_ok(err):
            raise NA(short_reason(err))
        rids, k = [], 0
        while k < n:
            m = min(MAX_STEPS_PER_SPEC, n - k)
            rid2, err2 = self.submit(spec_steps("%s-%d" % (name, len(rids)), m, cpu, first=k))
            if not rid2:
                raise NA(short_reason(err2))
            rids.append(rid2)
            k += m
        return rids, "as %d run%s of at most %d steps: one fan-out run is refused (%s)" % (
            len(rids), "" if len(rids) == 1 else "s", MAX_STEPS_PER_SPEC, short_reason(err))

    def runs(self):
        t = time.monotonic()
        out = json.loads(self.cli("runs", "-o", "json", "--limit", "10000").stdout)
        self.max_api_s = max(self.max_api_s, time.monotonic() - t)
        if isinstance(out, dict):
            out = out.get("runs", [])
        return {r["id"]: r for r in out}

    def wait_runs(self, ids, timeout, interval=0.1):
        ids = set(ids)

        def done():
            if self.proc.poll() is not None:
                raise RuntimeError("droverd exited (rc %s)" % self.proc.returncode)
            rs = self.runs()
            if all(i in rs and rs[i]["status"] in ("SUCCEEDED", "FAILED", "CANCELLED")
                   for i in ids):
                return {i: rs[i] for i in ids}
            return None
        rs = wait_for(done, timeout, interval, "runs %s to finish" % ",".join(sorted(ids)[:3]))
        bad = [(i, r["status"]) for i, r in rs.items() if r["status"] != "SUCCEEDED"]
        if bad:
            raise RuntimeError("runs did not succeed: %s" % bad[:5])
        return rs

    def run_get(self, rid):
        return json.loads(self.cli("run", "get", rid, "-o", "json").stdout)

    def rss_peak_mb(self):
        return proc_status_kb(self.proc.pid, "VmHWM") / 1024.0

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def io(self):
        """droverd's /proc/PID/io counters so far."""
        return proc_io(self.proc.pid)

    def stop(self):
        for a in self.agents:
            procs.stop(a)
        self.agents = []
        if self.proc:
            procs.stop(self.proc)


class SimAgents:
    """One drover-simagent process with many agents."""

    def __init__(self, drover, n, extra=(), name="sim"):
        self.d = drover
        self.n = n
        self.stats_path = os.path.join(drover.root, "%s-stats.json" % name)
        argv = [drover.bin("drover-simagent"), "--scheduler", drover.endpoint, "--agents", str(n),
                "--prefix", name, "--stats", self.stats_path] + list(extra)
        self.proc = procs.start("simagent", argv, os.path.join(drover.root, "%s.log" % name))

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def wait_registered(self, timeout=120):
        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError("drover-simagent exited (rc %s); see %s"
                                   % (self.proc.returncode, self.proc.log_path))
            return self.stats().get("registered", 0) >= self.n
        wait_for(ok, timeout, 0.1, "%d simulated agents to register" % self.n)

    def mark(self):
        """Set the mark (SIGUSR1): see simagent.c. Does not wait for it."""
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self):
        """SIGTERM (it writes final stats) and return the stats."""
        procs.stop(self.proc)
        return self.stats()


class SimBed:
    """A fresh droverd in bench.work/NAME and, once agents() is called, a
    drover-simagent for it: a with-block stops both and removes the dir,
    whatever happened."""

    def __init__(self, bench, name, extra=()):
        self.d = Drover(bench.bindir, os.path.join(bench.work, name))
        self.d.extra = list(extra)
        self.sim = None

    def __enter__(self):
        try:
            self.d.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def agents(self, n, extra=(), name="sim"):
        self.sim = SimAgents(self.d, n, extra, name=name)
        return self.sim

    def stop_agents(self):
        """Stop the simulated agents; their final stats."""
        sim, self.sim = self.sim, None
        return sim.stop()

    def __exit__(self, *exc):
        if self.sim:
            self.stop_agents()
        self.d.stop()
        shutil.rmtree(self.d.root, ignore_errors=True)
        return False


def binaries_ok(bindir):
    missing = [b for b in ("droverd", "drover-agent", "drover", "drover-simagent")
               if not os.access(os.path.join(bindir, b), os.X_OK)]
    if missing:
        raise SystemExit("bench: missing in %s: %s (run `make build`)" % (bindir, ", ".join(missing)))


# ---- drover workloads on real agents


def drover_real_once(d, wl, n, rep):
    """One repetition of a real-agents workload: its figure (steps/s, ms per
    step, or seconds) and its n tasks."""
    t0 = time.time()
    if wl == "throughput":  # one fan-out step: the cheapest shape
        rids, note = d.submit_tasks("tp%d" % rep, n, cpu="10m")
        rs = d.wait_runs(rids, 600)
        return n / (max(r["finished_ms"] for r in rs.values()) / 1000.0 - t0), note
    if wl in ("distinct", "literal"):  # n literal steps in one spec
        rid, err = d.submit(spec_steps("%s%d" % (wl, rep), n, "10m"))
        if not rid:
            raise NA(short_reason(err))
        r = d.wait_runs([rid], 900)[rid]
        return n / (r["finished_ms"] / 1000.0 - t0), None
    if wl in ("chain", "chain_long"):
        rid, err = d.submit(spec_steps("%s%d" % (wl, rep), n, "10m", chain=True))
        if not rid:
            raise NA(short_reason(err))
        r = d.wait_runs([rid], 1800)[rid]
        return (r["finished_ms"] / 1000.0 - t0) / n * 1000.0, None
    rid, err = d.submit(spec_fanout("wide%d" % rep, n, "10m", join=True))
    if not rid:
        raise NA(short_reason(err))
    r = d.wait_runs([rid], 900)[rid]
    return r["finished_ms"] / 1000.0 - t0, None


def drover_real(bench, sz):
    """The REAL_WORKLOADS on droverd + 2 drover-agents. Besides each figure,
    the bytes droverd wrote per task (write_bytes and wchar of /proc/PID/io
    from just before the submit until the run is seen finished: its LMDB
    commits, and a few log lines; see bench/README.md)."""
    out = {}
    d = Drover(bench.bindir, os.path.join(bench.work, "drover-real"))
    try:
        d.start()
        d.start_agents(2)
        for wl in REAL_WORKLOADS:
            if wl not in bench.workloads:
                continue
            vals, io, wchar, note = [], [], [], None
            n = sz[wl]
            try:
                for rep in range(sz["reps"]):
                    io0 = d.io()
                    v, note = drover_real_once(d, wl, n, rep)
                    io1 = d.io()
                    vals.append(v)
                    io.append((io1["write_bytes"] - io0["write_bytes"]) / 1024.0 / n)
                    wchar.append((io1["wchar"] - io0["wchar"]) / 1024.0 / n)
                    log("drover %s rep %d: %.4g; per task droverd dirtied %.1f KiB of files "
                        "(write_bytes), wrote %.1f KiB (wchar)", wl, rep + 1, v, io[-1], wchar[-1])
                out[wl] = {"values": vals, "note": note, "io_kib": io, "wchar_kib": wchar}
            except NA as e:
                log("drover %s: n/a (%s)", wl, e)
                out[wl] = {"na": str(e)}
            except Exception as e:  # noqa: BLE001 - recorded, the suite goes on
                log("drover %s: error: %s\n%s", wl, e, traceback.format_exc())
                out[wl] = {"na": "error: %s" % str(e)[:100]}
        if "watch_lag" in bench.workloads:
            try:
                out["watch_lag"] = {"values": watch_lag(d, sz["watch_runs"])}
            except Exception as e:  # noqa: BLE001 - recorded, the suite goes on
                log("drover watch_lag: error: %s\n%s", e, traceback.format_exc())
                out["watch_lag"] = {"na": "error: %s" % str(e)[:100]}
        if "http" in bench.workloads:
            try:
                out["http"] = http_api(d, sz)
            except NA as e:
                log("drover http: n/a (%s)", e)
                out["http"] = {"na": str(e)}
            except Exception as e:  # noqa: BLE001 - recorded, the suite goes on
                log("drover http: error: %s\n%s", e, traceback.format_exc())
                out["http"] = {"na": "error: %s" % str(e)[:100]}
    finally:
        d.stop()
    return out


def read_until(p, needle, timeout):
    """Read p's stdout until needle; returns the time it was read (time.time())."""
    buf, deadline = b"", time.monotonic() + timeout
    fd = p.stdout.fileno()
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError("no %r from `drover run watch` in %ds: %r" % (needle, timeout, buf))
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError("`drover run watch` ended without %r: %r" % (needle, buf))
        buf += chunk
    return time.time()


def watch_lag(d, runs):
    """`drover run watch`'s end-of-run lag (ms) for each of `runs` one-step
    runs: when the watch (piped) printed the end, minus the time_ms of the
    run's end event (set in the commit that wrote it). Each step waits for
    a file, made once the watch shows it running (so the watch is held on
    the run's events when the end commits)."""
    lags = []
    for i in range(runs):
        go = os.path.join(d.root, "watch-go-%d" % i)
        text = "\n".join(spec_head("watch%d" % i, None) + [
            "  - name: a", "    script: 'while [ ! -e %s ]; do sleep 0.01; done'" % go]) + "\n"
        rid, err = d.submit(text)
        if not rid:
            raise NA(short_reason(err))
        p = subprocess.Popen([d.bin("drover"), "--api", d.api, "run", "watch", rid],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=d.env)
        try:
            read_until(p, b" a RUNNING", 120)
            open(go, "w").close()
            printed = read_until(p, ("run %s SUCCEEDED" % rid).encode(), 120)
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
        evs = json.loads(d.cli("events", "--run", rid, "-o", "json").stdout)
        end = [e for e in evs if e["kind"] == "run" and e["to"] == "SUCCEEDED"][-1]
        lags.append(printed * 1000.0 - end["time_ms"])
        log("watch_lag run %d: %.1f ms", i + 1, lags[-1])
    return lags


class HttpLoad:
    """Open-loop GET load on drover-web: each path at `rate` requests a
    second on a fixed schedule (request i due at t0 + i/rate), request i on
    keep-alive connection i % conns of its path (stdlib http.client, one
    thread per connection). A request's latency runs from when it was due,
    not from when its connection got to it (a slow answer delays the next
    ones on its connection, and that wait is counted: no coordinated
    omission), to its whole body read. Every request due before the load
    stops is sent and measured, even when its connection gets to it after
    (a server that falls behind is not let off). Any answer but 200, and
    any request that failed (reset, timeout), is counted by kind in errors,
    never dropped. during(fn) runs fn with the load on; the figures add up
    over every call."""

    def __init__(self, port, token, paths, rate=HTTP_RATE, conns=HTTP_CONNS):
        self.port, self.rate, self.conns, self.paths = port, rate, conns, list(paths)
        self.headers = {"Authorization": "Bearer " + token}
        self.lat = {p: [] for p in self.paths}  # ms, the 200 answers
        self.sent = {p: 0 for p in self.paths}
        self.errors = {p: {} for p in self.paths}  # kind → count
        self.body = {p: 0 for p in self.paths}  # the last 200 answer's size
        self.secs = 0.0  # time with the load on, in all (from the first due to the stop)
        self.stop_at = float("inf")
        self.lock = threading.Lock()

    def _error(self, path, kind):
        with self.lock:
            self.errors[path][kind] = self.errors[path].get(kind, 0) + 1

    def _worker(self, path, k, t0, stop):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        i = k
        try:
            while True:
                due = t0 + i / self.rate
                stop.wait(max(0.0, due - time.monotonic()))
                if stop.is_set() and due >= self.stop_at:
                    return  # due after the end: not sent
                with self.lock:
                    self.sent[path] += 1
                try:
                    conn.request("GET", path, headers=self.headers)
                    r = conn.getresponse()
                    body = r.read()
                    ms = (time.monotonic() - due) * 1000.0
                    if r.status == 200:
                        self.lat[path].append(ms)
                        self.body[path] = len(body)
                    else:
                        self._error(path, "HTTP %d" % r.status)
                except (OSError, http.client.HTTPException) as e:
                    self._error(path, type(e).__name__)
                    conn.close()  # the next request connects again
                i += self.conns
        finally:
            conn.close()

    def during(self, fn):
        stop = threading.Event()
        t0 = time.monotonic() + 0.02  # the threads start first
        threads = [threading.Thread(target=self._worker, args=(p, k, t0, stop), daemon=True)
                   for p in self.paths for k in range(self.conns)]
        for t in threads:
            t.start()
        try:
            return fn()
        finally:
            self.stop_at = time.monotonic()
            stop.set()
            self.secs += self.stop_at - t0
            for t in threads:
                t.join(120)


def start_web(d, token):
    """drover-web in front of d's API socket, as tests/integration/harness.py
    starts it, with no per-client rate limit (every bench request comes from
    one address); returns (process, port) once /healthz answers with
    droverd reachable."""
    if not os.access(d.bin("drover-web"), os.X_OK):
        raise NA("no drover-web in %s" % d.bindir)
    port = free_port()
    web = procs.start("drover-web", [d.bin("drover-web"), "--listen", "127.0.0.1:%d" % port,
                                     "--api", d.api, "--rate-limit", "0"],
                      os.path.join(d.root, "drover-web.log"))

    def up():
        if web.poll() is not None:
            raise RuntimeError("drover-web exited (rc %s); see %s" % (web.returncode,
                                                                     web.log_path))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
                return r.status == 200 and json.load(r).get("droverd")
        except OSError:
            return False
    wait_for(up, 30, 0.05, "drover-web to answer")
    return web, port


def http_api(d, sz):
    """The HTTP API under load (issue #19): with drover-web in front of d
    (a read API token), a fan-out run of sz["http_run"] tasks is run to its
    end; then throughput runs (the throughput workload's, sz["throughput"]
    tasks) alternate without and with HttpLoad driving GET of that run
    (/api/v1/runs/ID) and GET /metrics at HTTP_RATE each, the load on from
    just before each loaded submit until the bench sees its run finished,
    until the load has been on sz["http_secs"] and there are at least
    sz["reps"] pairs. Returns the latencies (every 200 answer), the errors
    and both throughput figures, with droverd's CPU per task each way and
    drover-web's CPU while loaded."""
    token = d.cli("token", "create", "bench-http", "--role", "read").stdout.strip()
    web, port = start_web(d, token)
    try:
        n = sz["http_run"]
        rid, err = d.submit(spec_fanout("http%d" % n, n, "10m"))
        if not rid:
            raise NA(short_reason(err))
        d.wait_runs([rid], 600)
        paths = ["/api/v1/runs/" + rid, "/metrics"]
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, paths[0]),
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=60) as r:
            tasks = len(json.load(r).get("tasks") or [])
        if tasks < n:
            raise RuntimeError("GET %s lists %d tasks, not %d" % (paths[0], tasks, n))
        load = HttpLoad(port, token, paths)
        out = {"run_id": rid, "items": n, "tasks": tasks, "rate": HTTP_RATE, "conns": HTTP_CONNS,
               "plain": [], "loaded": [], "cpu_plain_us": [], "cpu_loaded_us": []}
        web_cpu = 0.0
        while len(out["loaded"]) < max(1, sz["reps"]) or (
                load.secs < sz["http_secs"] and len(out["loaded"]) < 100):
            k = len(out["loaded"])
            c0 = d.cpu()
            out["plain"].append(drover_real_once(d, "throughput", sz["throughput"], 1000 + k)[0])
            c1 = d.cpu()
            w0 = cpu_seconds(web.pid)
            out["loaded"].append(load.during(
                lambda: drover_real_once(d, "throughput", sz["throughput"], 2000 + k)[0]))
            web_cpu += cpu_seconds(web.pid) - w0
            c2 = d.cpu()
            out["cpu_plain_us"].append((c1 - c0) / sz["throughput"] * 1e6)
            out["cpu_loaded_us"].append((c2 - c1) / sz["throughput"] * 1e6)
            log("drover http pair %d: throughput %.0f steps/s plain, %.0f with the HTTP load",
                k + 1, out["plain"][-1], out["loaded"][-1])
        out["load_s"] = load.secs
        out["web_cpu_pct"] = web_cpu / load.secs * 100.0 if load.secs else 0.0
        out["endpoints"] = {p: {"ms": load.lat[p], "sent": load.sent[p],
                                "errors": load.errors[p], "body_bytes": load.body[p]}
                            for p in paths}
        for p in paths:
            e = out["endpoints"][p]
            log("drover http GET %s: %d sent, %d answered 200, p50 %.1f ms, p99 %.1f ms, "
                "errors %s", p, e["sent"], len(e["ms"]), percentile(e["ms"], 0.5),
                percentile(e["ms"], 0.99), e["errors"] or "none")
        return out
    finally:
        procs.stop(web)


def spec_runview(name, tasks):
    """A run of about `tasks` tasks of every kind the run page draws: a
    fan-out of 40% of them, a fan-out of groups (a DAG template of two
    chained steps) making 45% (15% items, 30% members), a group, and a
    chain of plain steps for the rest. Returns (the spec's text, how many
    tasks it makes)."""
    fan, sweep = tasks * 2 // 5, tasks * 3 // 20
    rest = max(1, tasks - fan - 3 * sweep - 6)
    lines = ["name: %s" % name, "templates:", "  pair:", "    steps:",
             '      - {name: a, command: ["true"]}',
             '      - {name: b, needs: [a], command: ["true"]}', "steps:",
             '  - {name: prep, command: ["true"]}',
             '  - {name: grp, uses: pair}',
             '  - {name: fan, command: ["true"], for_each: {range: %d}}' % fan,
             '  - {name: sweep, uses: pair, for_each: {range: %d}}' % sweep]
    for i in range(rest):
        lines.append('  - {name: s%d, needs: [%s], command: ["true"]}' % (
            i, "s%d" % (i - 1) if i else "fan, sweep, grp"))
    return "\n".join(lines) + "\n", 6 + fan + 3 * sweep + rest


def runview(bench, sz):
    """The web console's run page API (issue #20): droverd + drover-web with
    no agent (so every task stays as submitted: READY items, a live run's
    worst case), a run of sz["rv_tasks"] tasks (spec_runview) and one of a
    sz["rv_items"]-item range fan-out. For each: how long droverd took to
    make its tasks (submit until the summary shows them all), then
    sz["rv_gets"] sequential GETs (one keep-alive connection) of
    /api/v1/runs/ID (full; the big run: not) and ?view=summary, and of a
    page of 100 items: p50, p99 and the answer's bytes."""
    d = Drover(bench.bindir, os.path.join(bench.work, "drover-runview"))
    web = None
    try:
        d.start()
        token = d.cli("token", "create", "bench-rv", "--role", "read").stdout.strip()
        web, port = start_web(d, token)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        hdr = {"Authorization": "Bearer " + token}

        def get(path):
            t = time.monotonic()
            conn.request("GET", path, headers=hdr)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError("GET %s: %d %s" % (path, r.status, body[:200]))
            return (time.monotonic() - t) * 1000.0, body

        out = {}
        for key, (text, want) in (
                ("tasks", spec_runview("rv%d" % sz["rv_tasks"], sz["rv_tasks"])),
                ("items", (spec_range("rv%d" % sz["rv_items"], sz["rv_items"]),
                           sz["rv_items"] + 1))):
            t0 = time.monotonic()
            rid, err = d.submit(text)
            if not rid:
                raise NA(short_reason(err))
            base = "/api/v1/runs/" + rid

            def made():
                v = json.loads(get(base + "?view=summary")[1])
                return v if v["task_count"] >= want else None
            v = wait_for(made, 900, 0.2, "run %s's tasks to be made" % rid)
            res = {"run_id": rid, "task_count": v["task_count"],
                   "make_s": time.monotonic() - t0}
            paths = {"summary": base + "?view=summary"}
            if key == "tasks":
                paths["full"] = base
            fan = "fan" if key == "tasks" else "t"
            paths["page"] = base + "/items/%s?offset=%d&limit=100" % (fan, 500)
            for what, path in paths.items():
                ms, size = [], 0
                for _ in range(max(1, sz["rv_gets"])):
                    t, body = get(path)
                    ms.append(t)
                    size = len(body)
                res[what] = {"ms": ms, "bytes": size, "p50": percentile(ms, 0.5),
                             "p99": percentile(ms, 0.99)}
                log("runview %s-task run, GET %s: p50 %.1f ms, p99 %.1f ms, %s bytes",
                    "{:,}".format(res["task_count"]), what, res[what]["p50"], res[what]["p99"],
                    "{:,}".format(size))
            log("runview %s-task run: made in %.1f s", "{:,}".format(res["task_count"]),
                res["make_s"])
            out[key] = res
            d.cli("run", "cancel", rid, check=False)
        conn.close()
        out["rss_mb"] = d.rss_peak_mb()
        return out
    finally:
        if web:
            procs.stop(web)
        d.stop()


def runview_rows(rv, sz):
    """The runview workload's rows (issue #20): the run page's GETs. The
    issue's targets are the browser's (bench has none of its own)."""
    if "na" in rv:
        return [Row("rv_summary_p99", "run page API", "ms", "lower", na=rv["na"])]
    rows = []
    for key, what in (("tasks", "a %s-task run (fan-outs and groups)"),
                      ("items", "a run of a %s-item fan-out")):
        r = rv.get(key)
        if not r:
            continue
        title = what % "{:,}".format(r["task_count"] if key == "tasks" else sz["rv_items"])
        for v in ("full", "summary", "page"):
            if v not in r:
                continue
            label = {"full": "GET /runs/{id}", "summary": "GET /runs/{id}?view=summary",
                     "page": "GET /runs/{id}/items/{task} (100)"}[v]
            for q in ("p50", "p99"):
                rows.append(Row("rv_%s_%s_%s" % (key, v, q), "%s: %s, %s (%s bytes)" % (
                    title, label, q, "{:,}".format(r[v]["bytes"])), "ms", "lower",
                    values=[r[v][q]]))
        rows.append(Row("rv_%s_make" % key, "%s: droverd makes its tasks (submit → summary "
                        "shows them)" % title, "s", "lower", values=[r["make_s"]]))
    return rows


# ---- drover workloads on simulated agents


def sim_capacity(bench, sz, rep):
    n, agents = sz["cap_tasks"], sz["cap_agents"]
    with SimBed(bench, "capacity-%d" % rep) as bed:
        d = bed.d
        simargs = ["--cpus", sz["cap_cpus"]]
        # First try one fan-out run, submitted to connected agents.
        sim = bed.agents(agents, simargs)
        sim.wait_registered()
        cpu0 = d.cpu()
        t0 = time.time()
        rid, err = d.submit(spec_fanout("capacity", n))
        note = None
        if rid:
            submit_s = time.time() - t0
            rids = [rid]
        else:
            if not fallback_ok(err):
                raise NA(short_reason(err))
            # Runs of independent steps, all submitted before the agents
            # connect, so submitting does not pace dispatching.
            bed.stop_agents()
            d.stop()
            shutil.rmtree(d.state, ignore_errors=True)
            d.start()
            t0 = time.time()
            rids, note = d.submit_tasks("capacity", n)
            submit_s = time.time() - t0
            cpu0 = d.cpu()
            sim = bed.agents(agents, simargs, name="sim2")
        rs = d.wait_runs(rids, 900, interval=0.2)
        cpu = d.cpu() - cpu0
        st = bed.stop_agents()  # final stats (the periodic ones may be older than the run)
        first = st.get("first_assign_ms") or 0
        last = max(r["finished_ms"] for r in rs.values())
        if not first:
            raise RuntimeError("drover-simagent saw no assignment")
        secs = max(last - first, 1) / 1000.0
        res = {"rate": n / secs, "rss_mb": d.rss_peak_mb(), "note": note, "submit_s": submit_s,
               "cpu_us_per_task": cpu / n * 1e6, "state_mb": dir_size(d.state) / 2**20,
               "duplicates": st.get("duplicate_tasks", 0)}
        log("capacity rep %d: %.0f tasks/s, peak RSS %.0f MiB, %.1f us CPU/task%s", rep + 1,
            res["rate"], res["rss_mb"], res["cpu_us_per_task"], " (%s)" % note if note else "")
        return res


def spec_backlog(name, n):
    """A fan-out of n `true` items that no agent can hold: they ask for a
    label none has (pool=none), so they stay READY for good."""
    lines = spec_head(name, None)
    lines += ["  - name: t", '    command: ["true"]', "    placement: {labels: {pool: none}}",
              "    for_each: {range: %d}" % n]
    return "\n".join(lines) + "\n"


def sim_backlog_once(bench, sz, rep, backlog):
    """Placement throughput (tasks placed and completed per second, as
    capacity) of a bl_tasks fan-out on bl_agents simulated agents, with
    `backlog` READY tasks that no agent can hold queued before it (0: none).
    Also how long `drover status` (which counts READY tasks by reason)
    takes with the backlog there."""
    n, agents = sz["bl_tasks"], sz["bl_agents"]
    with SimBed(bench, "backlog-%d-%d" % (backlog, rep)) as bed:
        d = bed.d
        res = {"backlog": backlog}
        if backlog:
            t0 = time.time()
            rid, err = d.submit(spec_backlog("backlog", backlog))
            if not rid:
                raise NA(short_reason(err))

            def all_ready():
                st = json.loads(d.cli("status", "-o", "json").stdout)
                return st.get("waiting_total", 0) >= backlog
            wait_for(all_ready, 900, 0.5, "the backlog's %d tasks to be READY" % backlog)
            res["backlog_submit_s"] = time.time() - t0
        sim = bed.agents(agents, ["--cpus", sz["cap_cpus"]])
        sim.wait_registered()
        times = []
        for _ in range(3):
            t = time.monotonic()
            st = json.loads(d.cli("status", "-o", "json").stdout)
            times.append(time.monotonic() - t)
        res["status_ms"] = min(times) * 1000.0
        res["waiting"] = st.get("waiting")
        cpu0 = d.cpu()
        rid, err = d.submit(spec_fanout("placed", n))
        if not rid:
            raise NA(short_reason(err))
        rs = d.wait_runs([rid], 900, interval=0.2)
        cpu = d.cpu() - cpu0
        st = bed.stop_agents()
        first = st.get("first_assign_ms") or 0
        if not first:
            raise RuntimeError("drover-simagent saw no assignment")
        secs = max(rs[rid]["finished_ms"] - first, 1) / 1000.0
        res.update(rate=n / secs, cpu_us_per_task=cpu / n * 1e6, rss_mb=d.rss_peak_mb())
        log("backlog %s rep %d: %.0f tasks/s, droverd %.1f us CPU/task, status %.0f ms, peak "
            "RSS %.0f MiB", "{:,}".format(backlog), rep + 1, res["rate"], res["cpu_us_per_task"],
            res["status_ms"], res["rss_mb"])
        return res


def sim_backlog(bench, sz):
    """sim_backlog_once without, then with the backlog, reps times,
    alternating so that a change in the machine's load hits both alike."""
    out = {"none": [], "backlog": []}
    for rep in range(sz["reps"]):
        out["none"].append(sim_backlog_once(bench, sz, rep, 0))
        out["backlog"].append(sim_backlog_once(bench, sz, rep, sz["bl_backlog"]))
    return out


def sim_heartbeat(bench, sz):
    agents, window = sz["hb_agents"], sz["hb_window"]
    with SimBed(bench, "heartbeat") as bed:
        d = bed.d
        sim = bed.agents(agents, ["--cpus", "4"])
        sim.wait_registered(timeout=180)
        time.sleep(min(2.0, window))  # registrations done and committed
        vals, simcpu = [], []
        for rep in range(sz["reps"]):
            c0, s0, t0 = d.cpu(), cpu_seconds(sim.proc.pid), time.monotonic()
            time.sleep(window)
            dt = time.monotonic() - t0
            vals.append((d.cpu() - c0) / dt * 100.0)
            simcpu.append((cpu_seconds(sim.proc.pid) - s0) / dt * 100.0)
            log("heartbeat rep %d: droverd %.1f%% of a core (simagent %.1f%%), %d agents",
                rep + 1, vals[-1], simcpu[-1], agents)
        st = sim.stats()
        if st.get("registered", 0) < agents:
            raise RuntimeError("only %s of %d agents registered at the end"
                               % (st.get("registered"), agents))
        return {"values": vals, "sim_cpu": simcpu, "rss_mb": d.rss_peak_mb()}


def count_lost(run):
    """Tasks of a finished run that were not SUCCEEDED in exactly one
    attempt, or whose history shows an attempt LOST."""
    lost = 0
    for t in run.get("tasks") or []:
        hist = t.get("history") or []
        if (t.get("status") != "SUCCEEDED" or (t.get("attempts") or 0) > 1
                or any(h.get("status") == "LOST" for h in hist)):
            lost += 1
    return lost


def sim_recovery(bench, sz, rep):
    agents, slots, total = sz["rec_agents"], sz["rec_slots"], sz["rec_tasks"]
    inflight = agents * slots
    with SimBed(bench, "recovery-%d" % rep) as bed:
        d = bed.d
        # All the work is queued before the agents come, so they fill up at
        # once. Each task needs 1 cpu (the default): `slots` at once per
        # agent. Durations vary (2-4 s) so completions are spread out.
        rids, note = d.submit_tasks("recovery", total)
        sim = bed.agents(agents, ["--cpus", str(slots), "--task-time", "2s",
                                  "--task-time-max", "4s", "--seed", str(rep + 1)])

        def steady():
            st = sim.stats()
            if st.get("exits", 0) >= total:
                raise RuntimeError("every task finished before %d were in flight" % inflight)
            return (st.get("running", 0) >= inflight * 0.95 and st.get("exits", 0) >= inflight // 4
                    and st)
        wait_for(steady, 120, 0.05, "%d tasks in flight, a quarter of them done" % inflight)
        t_kill = time.time()
        procs.kill9(d.proc)
        sim.mark()
        d.start(wait=False)
        d.wait_api()
        api_s = time.time() - t_kill
        d.wait_runs(rids, 300, interval=0.2)
        st = wait_for(lambda: (sim.stats().get("mark_assign_ms") or 0) > 0 and sim.stats(), 30,
                      0.05, "a dispatch after the restart")
        final = bed.stop_agents()
        lost = sum(count_lost(d.run_get(r)) for r in rids)
        res = {"seconds": (st["mark_assign_ms"] / 1000.0) - t_kill, "api_s": api_s,
               "registered_s": (st["mark_registered_ms"] or 0) / 1000.0 - t_kill,
               "all_registered_s": ((final.get("mark_all_registered_ms") or 0) / 1000.0 - t_kill
                                    if final.get("mark_all_registered_ms") else None),
               "inflight": final.get("mark_running", 0), "lost": lost,
               "dup": final.get("duplicate_tasks", 0), "dup_names": final.get("duplicates", []),
               "tasks_seen": final.get("tasks", 0), "total": total, "note": note}
        if res["tasks_seen"] != total:
            res["lost"] = max(res["lost"], total - res["tasks_seen"])
        log("recovery rep %d: %d in flight; dispatching again %.3fs after kill -9 (API %.3fs, "
            "first re-registration %.3fs); lost %d, duplicated %d", rep + 1, res["inflight"],
            res["seconds"], api_s, res["registered_s"], res["lost"], res["dup"])
        return res


def sim_big(bench, sz):
    n, agents = sz["big_tasks"], sz["big_agents"]
    with SimBed(bench, "big") as bed:
        d = bed.d
        sim = bed.agents(agents, ["--cpus", "64"])
        sim.wait_registered()
        # One fan-out step of n items (a range, else a list); else the same
        # n packed into steps of 100,000 "0" items; else the most tasks that
        # fit (halving).
        note, first_err, want = None, None, n
        while True:
            for form in (spec_range, spec_fanout, spec_packed):
                t0 = time.time()
                rid, err = d.submit(form("big", want, cpu="10m"))
                submit_s = time.time() - t0
                if rid:
                    break
                first_err = first_err or err
                if not fallback_ok(err):
                    raise NA(short_reason(err))
            if rid or want <= 100000:
                break
            want //= 2
        if not rid:
            raise NA(short_reason(first_err))
        if want != n:
            note = "%s tasks (%d fan-out steps of 100,000): %s of them is refused (%s)" % (
                "{:,}".format(want), math.ceil(want / 100000), "{:,}".format(n),
                short_reason(first_err))
        n = want
        d.max_api_s = 0.0
        r = d.wait_runs([rid], 1200, interval=0.5)[rid]
        final = bed.stop_agents()
        res = {"submit_s": submit_s, "makespan_s": r["finished_ms"] / 1000.0 - t0,
               "state_mb": dir_size(d.state) / 2**20, "rss_mb": d.rss_peak_mb(),
               "rss_anon_mb": proc_status_kb(d.proc.pid, "RssAnon") / 1024.0,
               "rss_file_mb": proc_status_kb(d.proc.pid, "RssFile") / 1024.0,
               "dup": final.get("duplicate_tasks", 0), "tasks": n, "note": note,
               "api_stall_s": d.max_api_s,
               "seen": final.get("tasks", 0)}
        if res["seen"] != n:
            raise RuntimeError("the simulated agents saw %d of %d tasks" % (res["seen"], n))
        log("big run: %d tasks, submit %.2fs, makespan %.1fs, state %.0f MiB, RSS %.0f MiB", n,
            submit_s, res["makespan_s"], res["state_mb"], res["rss_mb"])
        return res


def sim_fanout_memory(bench, sz, shape):
    """One run of 2 x subdag_items tasks on big_agents simulated agents of
    64 cpus (each task asks 10m: every task has a slot at once, as in the
    big run), in a fresh droverd: shape "flat" is one fan-out step of that
    many items (today's cheapest shape), "subdag" a fan-out of subdag_items
    sub-DAGs of two chained steps (spec_subdag). Measures droverd's memory
    per task: its peak RSS (VmHWM) at the end minus its RSS (VmRSS) just
    before the submit, over the tasks; and the same for its heap alone
    (RssAnon at the end minus before: without the LMDB pages it mapped).
    Throughput: tasks / (the run's finished_ms - just before the submit)."""
    items = sz["subdag_items"]
    n = 2 * items
    with SimBed(bench, "fanout-%s" % shape) as bed:
        d = bed.d
        sim = bed.agents(sz["big_agents"], ["--cpus", "64"])
        sim.wait_registered()
        rss0 = proc_status_kb(d.proc.pid, "VmRSS")
        anon0 = proc_status_kb(d.proc.pid, "RssAnon")
        spec = spec_range("flat", n, cpu="10m") if shape == "flat" else \
            spec_subdag("subdag", items, cpu="10m")
        t0 = time.time()
        rid, err = d.submit(spec)
        submit_s = time.time() - t0
        if not rid:
            raise NA(short_reason(err))
        d.max_api_s = 0.0
        r = d.wait_runs([rid], 1200, interval=0.5)[rid]
        hwm = proc_status_kb(d.proc.pid, "VmHWM")
        anon1 = proc_status_kb(d.proc.pid, "RssAnon")
        file1 = proc_status_kb(d.proc.pid, "RssFile")
        final = bed.stop_agents()
        secs = r["finished_ms"] / 1000.0 - t0
        res = {"tasks": n, "items": items if shape == "subdag" else n, "submit_s": submit_s,
               "makespan_s": secs, "rate": n / secs,
               "rss0_mb": rss0 / 1024.0, "rss_mb": hwm / 1024.0,
               "rss_anon_mb": anon1 / 1024.0, "rss_file_mb": file1 / 1024.0,
               "bytes_per_task": (hwm - rss0) * 1024.0 / n,
               "heap_bytes_per_task": (anon1 - anon0) * 1024.0 / n,
               "state_mb": dir_size(d.state) / 2**20, "api_stall_s": d.max_api_s,
               "dup": final.get("duplicate_tasks", 0), "seen": final.get("tasks", 0)}
        if res["seen"] != n:
            raise RuntimeError("the simulated agents saw %d of %d tasks" % (res["seen"], n))
        log("fan-out %s: %d tasks, submit %.2fs, makespan %.1fs (%.0f tasks/s); droverd RSS "
            "%.0f -> peak %.0f MiB: %.0f bytes per task (heap %.0f bytes per task), state %.0f "
            "MiB", shape, n, submit_s, secs, res["rate"], res["rss0_mb"], res["rss_mb"],
            res["bytes_per_task"], res["heap_bytes_per_task"], res["state_mb"])
        return res


def sim_subdag(bench, sz):
    """The sub-DAG fan-out against the flat fan-out of the same number of
    tasks, each run in its own droverd, the two shapes alternating for
    sz["reps"] repetitions (so a load that comes and goes hits both):
    {"flat": {"runs": [...]}, "subdag": {"runs": [...]}}; a shape drover
    refuses (a drover without templates) is {"na": reason}."""
    out = {"flat": {"runs": []}, "subdag": {"runs": []}}
    for _ in range(sz["reps"]):
        for shape in ("subdag", "flat"):
            if "na" in out[shape]:
                continue
            try:
                out[shape]["runs"].append(sim_fanout_memory(bench, sz, shape))
            except NA as e:
                if shape == "subdag":  # say what was refused, not only the spec's complaint
                    e = NA("this drover refuses a fan-out of sub-DAGs: %s" % e)
                log("fan-out %s: n/a (%s)", shape, e)
                out[shape] = {"na": str(e)}
    return out


# ------------------------------------------------------------------ node pools

# The pools workload's 10 pools (issue #18): (name, node, spot, price, the
# resources and spot policy of the step that should grow it). Pools come in
# families (a `family` label); within a family the step's spot policy picks
# the pool: the default (avoid) takes the on-demand one, prefer/require the
# spot one. So each step has exactly one best pool, and every pool grows.
POOL_SHAPES = (
    ("cpu4", {"cpu": 4, "memory": "16Gi", "labels": {"family": "cpu4"}}, False, 0.17,
     {"cpu": 2, "memory": "4Gi"}, None),
    ("cpu4-spot", {"cpu": 4, "memory": "16Gi", "labels": {"family": "cpu4"}}, True, 0.05,
     {"cpu": 2, "memory": "4Gi"}, "require"),
    ("cpu16", {"cpu": 16, "memory": "64Gi", "labels": {"family": "cpu16"}}, False, 0.68,
     {"cpu": 8, "memory": "16Gi"}, None),
    ("cpu16-spot", {"cpu": 16, "memory": "64Gi", "labels": {"family": "cpu16"}}, True, 0.20,
     {"cpu": 8, "memory": "16Gi"}, "prefer"),
    ("highmem", {"cpu": 8, "memory": "256Gi", "labels": {"family": "highmem"}}, False, 1.0,
     {"cpu": 4, "memory": "120Gi"}, None),
    ("gpu1", {"cpu": 8, "memory": "60Gi", "gpu": 1, "labels": {"family": "gpu"}}, False, 0.9,
     {"cpu": 4, "memory": "30Gi", "gpu": 1}, None),
    ("gpu1-spot", {"cpu": 8, "memory": "60Gi", "gpu": 1, "labels": {"family": "gpu"}}, True, 0.35,
     {"cpu": 4, "memory": "30Gi", "gpu": 1}, "require"),
    ("gpu8", {"cpu": 96, "memory": "1100Gi", "gpu": 8, "labels": {"family": "gpu8"}}, False, 24.0,
     {"cpu": 24, "memory": "200Gi", "gpu": 4}, None),
    ("arm", {"cpu": 16, "memory": "32Gi", "labels": {"family": "arm", "arch": "arm64"}}, False,
     0.5, {"cpu": 1}, None),
    ("nvme", {"cpu": 8, "memory": "32Gi", "labels": {"family": "nvme", "disk": "nvme"}}, False,
     0.6, {"cpu": 2}, None),
)


def pools_config(state_dir, max_nodes):
    """`droverd --pools` JSON: the 10 pools of POOL_SHAPES, each with at
    most max_nodes nodes and bench/simprovider as its provider (which
    answers without making anything: no node ever registers)."""
    prov = {"command": os.path.join(HERE, "simprovider"), "args": ["--state-dir", state_dir],
            "timeout": "60s"}
    return json.dumps([{"name": name, "node": node, "spot": spot, "price": price, "min": 0,
                        "max": max_nodes, "idle": "10m", "boot-timeout": "10m",
                        "provider": prov}
                       for name, node, spot, price, _, _ in POOL_SHAPES])


def spec_pools(name, n):
    """n `true` tasks over one fan-out step per pool of POOL_SHAPES, each
    with that pool's shape: resources, its family label, its spot policy."""
    lines = ["name: %s" % name, "steps:"]
    k = len(POOL_SHAPES)
    for i, (pool, node, _, _, res, spot) in enumerate(POOL_SHAPES):
        m = n // k + (1 if i < n % k else 0)
        place = "labels: {family: %s}" % node["labels"]["family"]
        if spot:
            place += ", spot: %s" % spot
        lines += ["  - name: %s" % pool, '    command: ["true"]',
                  "    for_each: {range: %d}" % m,
                  "    resources: {%s}" % ", ".join("%s: %s" % kv for kv in res.items()),
                  "    placement: {%s}" % place]
    return "\n".join(lines) + "\n"


def provider_calls(state_dir):
    """bench/simprovider's call log: [(wall clock s, verb, pool, names)]."""
    out = []
    try:
        with open(os.path.join(state_dir, "calls.log")) as f:
            for line in f:
                w = line.split()
                if len(w) == 4:
                    out.append((float(w[0]), w[1], w[2], int(w[3])))
    except OSError:
        pass
    return out


def sim_pools_decision(bench, sz, rep):
    """One repetition: a fresh droverd with the 10 pools and pools_agents
    simulated agents of 2 cpus and no labels (busy with nothing, but no
    task of the run fits them), then one run of pools_tasks tasks over the
    10 shapes. Measured from just before the submit command starts: each
    pool's scale-up decision (the created_ms droverd stamps on the nodes it
    decided, from `drover pools -o json`) and each pool's first create call
    (the provider's own call log, stamped as the call starts); and when
    `drover pools`, polled every 10 ms, first listed each pool's nodes."""
    n, names = sz["pools_tasks"], [p[0] for p in POOL_SHAPES]
    prov = os.path.join(bench.work, "pools-provider-%d" % rep)
    with SimBed(bench, "pools-%d" % rep,
                extra=["--pools", pools_config(prov, sz["pools_max"])]) as bed:
        d = bed.d
        sim = bed.agents(sz["pools_agents"], ["--cpus", "2", "--memory", "4Gi"])
        sim.wait_registered()
        t0 = time.time()
        rid, err = d.submit(spec_pools("pools", n))
        submit_s = time.time() - t0
        if not rid:
            raise NA(short_reason(err))

        seen = {}  # pool → when a `drover pools` answer first listed its nodes

        def decided():
            if d.proc.poll() is not None:
                raise RuntimeError("droverd exited (rc %s)" % d.proc.returncode)
            pools = {p["name"]: p for p in json.loads(d.cli("pools", "-o", "json").stdout)}
            now = time.time() - t0
            for x in names:
                if x not in seen and pools.get(x, {}).get("nodes"):
                    seen[x] = now
            creates = {c[2]: c for c in provider_calls(prov) if c[1] == "create"}
            if all(pools.get(x, {}).get("nodes") for x in names) and \
                    all(x in creates for x in names):
                return pools
            return None
        pools = wait_for(decided, 120, 0.01, "every pool to decide and call create")
        first_create = {}
        for t, verb, pool, _ in provider_calls(prov):
            if verb == "create" and pool not in first_create:
                first_create[pool] = t
        decide = {x: min(nd["created_ms"] for nd in pools[x]["nodes"]) / 1000.0 - t0
                  for x in names}
        create = {x: first_create[x] - t0 for x in names}
        nodes = {x: len(pools[x]["nodes"]) for x in names}
        # then droverd's CPU while the run waits for the nodes it asked
        # for (they never come): a demand pass every 500 ms over the
        # waiting tasks and the nodes coming, and a list call every 5 s
        c0, w0 = d.cpu(), time.monotonic()
        time.sleep(sz["pools_window"])
        wait_cpu = (d.cpu() - c0) / (time.monotonic() - w0) * 100.0
        res = {"tasks": n, "submit_s": submit_s, "decide": decide, "create": create,
               "nodes": nodes, "decide_first_s": min(decide.values()),
               "decide_last_s": max(decide.values()), "create_first_s": min(create.values()),
               "create_last_s": max(create.values()), "agents": sz["pools_agents"],
               "seen": seen, "seen_last_s": max(seen.values()), "wait_cpu": wait_cpu,
               "sim_tasks": sim.stats().get("tasks", 0)}
        if res["sim_tasks"]:
            raise RuntimeError("the simulated agents ran %d tasks: they should fit none"
                               % res["sim_tasks"])
        log("pools rep %d: %d tasks submitted in %.2fs; scale-up decided after %.3f s (first "
            "pool) .. %.3f s (last), first create call %.3f .. %.3f s; %d nodes asked; then "
            "droverd used %.1f%% of a core while the tasks waited", rep + 1, n, submit_s,
            res["decide_first_s"], res["decide_last_s"], res["create_first_s"],
            res["create_last_s"], sum(nodes.values()), wait_cpu)
        return res


def sim_pools_placement(bench, sz, rep, with_pools):
    """Placement throughput of ptp_tasks one-cpu `true` tasks (one fan-out)
    on ptp_agents simulated agents of 16 cpus, as the capacity workload
    measures it, in a droverd with or without the 10 pools. With them the
    backlog is more than the agents hold, so the pools grow to their max
    while the agents work (8 of the 10: a task is offered at most 8 pools,
    cheapest first): the demand pass and the provider calls run beside the
    placer."""
    n = sz["ptp_tasks"]
    prov = os.path.join(bench.work, "pools-tp-provider-%d-%s" % (rep, with_pools))
    extra = ["--pools", pools_config(prov, sz["pools_max"])] if with_pools else []
    with SimBed(bench, "pools-tp-%d-%s" % (rep, "with" if with_pools else "without"),
                extra=extra) as bed:
        d = bed.d
        sim = bed.agents(sz["ptp_agents"], ["--cpus", "16"])
        sim.wait_registered()
        cpu0 = d.cpu()
        rid, err = d.submit(spec_fanout("placement", n))
        if not rid:
            raise NA(short_reason(err))
        r = d.wait_runs([rid], 900, interval=0.2)[rid]
        cpu = d.cpu() - cpu0
        st = bed.stop_agents()
        first = st.get("first_assign_ms") or 0
        if not first:
            raise RuntimeError("drover-simagent saw no assignment")
        rate = n / (max(r["finished_ms"] - first, 1) / 1000.0)
        asked = sum(c[3] for c in provider_calls(prov) if c[1] == "create")
        log("pools placement rep %d %s pools: %.0f tasks/s, droverd %.1f us CPU per task (%d "
            "nodes asked of the provider)", rep + 1, "with" if with_pools else "without", rate,
            cpu / n * 1e6, asked)
        return {"rate": rate, "cpu_us_per_task": cpu / n * 1e6, "nodes_asked": asked,
                "dup": st.get("duplicate_tasks", 0)}


def sim_pools(bench, sz):
    """The node pools workload: {"decision": [per rep], "placement": {"with":
    [...], "without": [...]}}; placement with and without pools alternate
    (so a load that comes and goes hits both). ptp_tasks 0 (the smoke
    size): no placement runs."""
    out = {"decision": [], "placement": {"with": [], "without": []}}
    for rep in range(sz["reps"]):
        out["decision"].append(sim_pools_decision(bench, sz, rep))
    for rep in range(sz["reps"] if sz["ptp_tasks"] else 0):
        for with_pools in (True, False):
            out["placement"]["with" if with_pools else "without"].append(
                sim_pools_placement(bench, sz, rep, with_pools))
    return out


def drover_sim(bench, sz):
    out = {}

    def guarded(key, fn):
        try:
            out[key] = fn()
        except NA as e:
            log("%s: n/a (%s)", key, e)
            out[key] = {"na": str(e)}
        except Exception as e:  # noqa: BLE001 - recorded, the suite goes on
            log("%s: error: %s\n%s", key, e, traceback.format_exc())
            out[key] = {"na": "error: %s" % str(e)[:100]}

    if "capacity" in bench.workloads:
        guarded("capacity", lambda: [sim_capacity(bench, sz, i) for i in range(sz["reps"])])
    if "heartbeat" in bench.workloads:
        guarded("heartbeat", lambda: sim_heartbeat(bench, sz))
    if "recovery" in bench.workloads:
        guarded("recovery", lambda: [sim_recovery(bench, sz, i) for i in range(sz["reps"])])
    if "big" in bench.workloads:
        guarded("big", lambda: sim_big(bench, sz))
    if "subdag" in bench.workloads:
        guarded("subdag", lambda: sim_subdag(bench, sz))
    if "pools" in bench.workloads:
        guarded("pools", lambda: sim_pools(bench, sz))
    if "backlog" in bench.workloads:
        guarded("backlog", lambda: sim_backlog(bench, sz))
    return out


# ------------------------------------------------------------------ Slurm


class Slurm:
    """A one-node Slurm (munged, slurmctld, slurmd as root) in a temp dir."""

    def __init__(self, root):
        self.root = root
        self.procs = []
        self.env = None
        self.version = "?"

    def path(self, *p):
        return os.path.join(self.root, *p)

    def start(self):
        for d in ("state", "spool", "log", "munge"):
            os.makedirs(self.path(d), mode=0o700, exist_ok=True)
        # munged refuses a socket whose ancestors are not searchable by all.
        for d in (os.path.dirname(self.root), self.root, self.path("munge")):
            os.chmod(d, 0o755)
        key = self.path("munge", "munge.key")
        if have("mungekey") or os.path.exists("/usr/sbin/mungekey"):
            run([shutil.which("mungekey") or "/usr/sbin/mungekey", "-c", "-f", "-k", key])
        else:
            with open(key, "wb") as f:
                f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        sock = self.path("munge", "munge.sock")
        munged = shutil.which("munged") or "/usr/sbin/munged"
        self.procs.append(procs.start("munged", [
            munged, "-F", "--socket=" + sock, "--key-file=" + key,
            "--log-file=" + self.path("munge", "munged.log"),
            "--pid-file=" + self.path("munge", "munged.pid"),
            "--seed-file=" + self.path("munge", "munged.seed")], self.path("log", "munged.out")))
        wait_for(lambda: os.path.exists(sock), 20, 0.05, "munged's socket")
        host = socket.gethostname().split(".")[0]
        cpus = 64  # slots: short jobs need many at once (config_overrides)
        conf = self.path("slurm.conf")
        with open(conf, "w") as f:
            f.write("""# generated by drover's bench/bench.py
ClusterName=drover-bench
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={cport}
SlurmdPort={dport}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=error
SlurmdDebug=error
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0,kill_invalid_depend
MpiDefault=none
ReturnToService=2
MaxJobCount=200000
MaxArraySize=100001
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=bench Nodes={host} Default=YES MaxTime=INFINITE State=UP
""".format(host=host, cport=free_port(), dport=free_port(), sock=sock, root=self.root,
           cpus=cpus))
        self.env = dict(os.environ, SLURM_CONF=conf)
        reap = [sys.executable, os.path.abspath(__file__), "--reap"]
        self.procs.append(procs.start("slurmctld", reap + ["slurmctld", "-D", "-f", conf],
                                      self.path("log", "slurmctld.out"), env=self.env))
        wait_for(lambda: "is UP" in run(["scontrol", "ping"], check=False, env=self.env,
                                         quiet=True).stdout,
                 60, 0.1, "slurmctld to answer")
        self.procs.append(procs.start("slurmd", reap + ["slurmd", "-D", "-f", conf, "-N", host],
                                      self.path("log", "slurmd.out"), env=self.env))

        def idle():
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s exited (rc %s); see %s"
                                       % (p.bench_name, p.returncode, p.log_path))
            r = run(["sinfo", "-h", "-o", "%T"], check=False, env=self.env, quiet=True)
            return r.returncode == 0 and r.stdout.strip() == "idle"
        wait_for(idle, 90, 0.25, "the Slurm node to be idle")
        self.version = run(["sinfo", "--version"], env=self.env).stdout.strip()
        log("Slurm up: %s, node %s with %d CPUs", self.version, host, cpus)

    def sbatch(self, *args):
        r = run(["sbatch", "--parsable", "-o", "/dev/null", "-e", "/dev/null"] + list(args)
                + ["--wrap", "true"], env=self.env)
        return r.stdout.strip().split(";")[0]

    def active(self, jobid):
        r = run(["squeue", "-h", "-r", "-j", jobid, "-t", "PD,R,CG,CF,S", "-o", "%i"],
                check=False, env=self.env, quiet=True)
        return r.returncode == 0 and r.stdout.strip() != ""

    def states(self, jobid):
        r = run(["squeue", "-h", "-r", "-j", jobid, "-t", "all", "-o", "%T"], env=self.env)
        counts = {}
        for s in r.stdout.split():
            counts[s] = counts.get(s, 0) + 1
        return counts

    def wait_done(self, jobid, timeout, interval=0.2):
        wait_for(lambda: not self.active(jobid), timeout, interval, "Slurm job %s" % jobid)
        return time.time()

    def stop(self):
        if self.env:
            run(["scontrol", "shutdown"], check=False, env=self.env, quiet=True, timeout=30)
            for p in self.procs:  # a clean exit first; procs.stop signals what is left
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        for p in reversed(self.procs):
            procs.stop(p)
        self.procs = []


def slurm_workloads(bench, sz):
    out = {}
    s = Slurm(os.path.join(bench.work, "slurm"))
    try:
        s.start()
        bench.versions["slurm"] = s.version
        for wl in SLURM_WORKLOADS:
            if wl not in bench.workloads:
                continue
            vals = []
            reps = sz["slurm_wide_reps"] if wl == "wide" else sz["reps"]
            for rep in range(reps):
                if wl == "throughput":
                    n = sz["throughput"]
                    t0 = time.time()
                    jid = s.sbatch("--array=0-%d" % (n - 1))
                    t1 = s.wait_done(jid, 1800)
                    st = s.states(jid)
                    if st.get("COMPLETED", 0) != n:
                        raise RuntimeError("Slurm array %s: %s" % (jid, st))
                    vals.append(n / (t1 - t0))
                elif wl == "chain":
                    n = sz["slurm_chain"]
                    t0 = time.time()
                    jid = s.sbatch()
                    for _ in range(n - 1):
                        jid = s.sbatch("--dependency=afterok:%s" % jid)
                    t1 = s.wait_done(jid, 1800, interval=0.1)
                    if s.states(jid).get("COMPLETED", 0) != 1:
                        raise RuntimeError("Slurm chain end %s: %s" % (jid, s.states(jid)))
                    vals.append((t1 - t0) / n * 1000.0)
                else:
                    n = sz["wide"]
                    t0 = time.time()
                    arr = s.sbatch("--array=0-%d" % (n - 1))
                    jid = s.sbatch("--dependency=afterok:%s" % arr)
                    t1 = s.wait_done(jid, 3600, interval=0.25)
                    if s.states(jid).get("COMPLETED", 0) != 1:
                        raise RuntimeError("Slurm fan-in %s: %s" % (jid, s.states(jid)))
                    vals.append(t1 - t0)
                log("slurm %s rep %d: %.4g", wl, rep + 1, vals[-1])
            note = {"throughput": "one job array (sbatch --array), Slurm's fast path",
                    "chain": "%d-step chain (sbatch --dependency=afterok)" % sz["slurm_chain"],
                    "wide": "job array + one afterok job; %d run(s)" % reps}[wl]
            out[wl] = {"values": vals, "note": note}
    finally:
        s.stop()
    return out


# ------------------------------------------------------------------ Dask


# What the peers run: Dask has no fan-out of its own, so its "throughput" and
# "distinct" are both n distinct tasks (client.map); Slurm's throughput is a
# job array, and n separate jobs would only measure sbatch.
DASK_WORKLOADS = ("throughput", "distinct", "chain", "wide")
SLURM_WORKLOADS = ("throughput", "chain", "wide")


def dask_workloads(bench, sz):
    out = {}
    py = find_dask_python()
    if not py:
        raise NA("python3-distributed not installed")
    root = os.path.join(bench.work, "dask")
    os.makedirs(root, exist_ok=True)
    port = free_port()
    addr = "tcp://127.0.0.1:%d" % port
    started = []
    try:
        started.append(procs.start("dask-scheduler", [
            py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
            "--no-dashboard"], os.path.join(root, "scheduler.log"), cwd=root))
        for i in (1, 2):
            started.append(procs.start("dask-worker-%d" % i, [
                py, "-m", "distributed.cli.dask_worker", addr, "--nthreads",
                str(os.cpu_count() or 2), "--no-dashboard", "--local-directory", root],
                os.path.join(root, "worker-%d.log" % i), cwd=root))
        bench.versions["dask"] = run([py, "-c", "import distributed; print(distributed.__version__)"]
                                     ).stdout.strip()
        for wl in DASK_WORKLOADS:
            if wl not in bench.workloads:
                continue
            n = sz[wl]
            r = run([py, os.path.join(HERE, "dask_bench.py"), "--scheduler", addr, "--workload", wl,
                     "-n", str(n), "--reps", str(sz["reps"])], timeout=1800, cwd=root)
            secs = json.loads(r.stdout.strip().splitlines()[-1])["seconds"]
            if wl in ("throughput", "distinct"):
                vals = [n / x for x in secs]
            elif wl == "chain":
                vals = [x / n * 1000.0 for x in secs]
            else:
                vals = secs
            log("dask %s: %s", wl, ", ".join("%.4g" % v for v in vals))
            out[wl] = {"values": vals, "note": None}
    finally:
        for p in reversed(started):
            procs.stop(p)
    return out


# ------------------------------------------------------------------ report


def percentile(vals, q):
    """The q-quantile (0..1) of vals by nearest rank; NaN when empty."""
    vals = sorted(vals)
    if not vals:
        return float("nan")
    return vals[min(len(vals) - 1, int(round(q * (len(vals) - 1))))]


def stat3(vals):
    return statistics.median(vals), min(vals), max(vals)


def fmt_num(v, unit):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "?"
    if unit in ("steps/s", "tasks/s"):
        return "{:,.0f}".format(v)
    if unit in ("MiB",):
        return "{:,.0f}".format(v)
    if unit == "% of a core":
        return "%.1f" % v
    if unit in ("tasks", "requests"):
        return "%d" % v
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "%.1f" % v
    if abs(v) >= 1:
        return "%.2f" % v
    return "%.3f" % v


def fmt_cell(vals, unit):
    if not vals:
        return "?"
    med, lo, hi = stat3(vals)
    if len(vals) == 1 or lo == hi:
        return fmt_num(med, unit)
    return "%s (%s–%s)" % (fmt_num(med, unit), fmt_num(lo, unit), fmt_num(hi, unit))


class Row:
    def __init__(self, key, title, unit, better, values=None, na=None, peers=None, note=None,
                 target=None):
        self.key, self.title, self.unit, self.better = key, title, unit, better
        self.values, self.na, self.note = values, na, note
        self.peers = peers or {}  # system → {"values"} or {"na"}
        self.target = target

    def median(self):
        return stat3(self.values)[0] if self.values else None

    def met(self):
        if not self.target or self.target[1] is None or not self.values:
            return None
        op, v = self.target
        m = self.median()
        return m >= v if op == ">=" else m <= v


def ratio_text(row, peer):
    p = row.peers.get(peer)
    if not p or not p.get("values") or not row.values:
        return "—"
    d, o = row.median(), statistics.median(p["values"])
    if d <= 0 or o <= 0:
        return "—"
    x = d / o if row.better == "higher" else o / d
    return ("%.1f× better" % x) if x >= 1 else ("%.2f× (worse)" % x)


def build_rows(res, sz):
    rows = []
    real = res.get("drover", {})

    def peer(system, wl):
        r = res.get(system)
        if r is None:
            return {"na": "not run"}
        if isinstance(r, dict) and "na" in r and wl not in r:
            return {"na": r["na"]}
        return r.get(wl, {"na": "not run"})

    spec = [("throughput", "throughput: %s independent `true` steps (one fan-out step)" % (
                "{:,}".format(sz["throughput"])), "steps/s", "higher"),
            ("distinct", "throughput: %s distinct `true` steps" % "{:,}".format(sz["distinct"]),
             "steps/s", "higher"),
            ("chain", "chain latency: %d-step chain of `true`" % sz["chain"], "ms/step", "lower"),
            ("chain_long", "chain latency: %s-step chain of `true`" % "{:,}".format(
                sz["chain_long"]), "ms/step", "lower"),
            ("literal", "throughput: %s distinct `true` steps" % "{:,}".format(sz["literal"]),
             "steps/s", "higher"),
            ("wide", "wide DAG: fan-out of %s → fan-in of 1" % "{:,}".format(sz["wide"]),
             "s makespan", "lower")]
    for key, title, unit, better in spec:
        d = real.get(key)
        if d is None:
            continue
        peers = {}
        if key in SLURM_WORKLOADS:
            peers["slurm"] = peer("slurm", key)
        if key in DASK_WORKLOADS:
            peers["dask"] = peer("dask", key)
        rows.append(Row(key, title, unit, better, values=d.get("values"), na=d.get("na"),
                        note=d.get("note"), peers=peers, target=TARGETS.get(key)))
    wlag = real.get("watch_lag")
    if wlag is not None:
        vals = sorted(wlag.get("values") or [])
        title = "`drover run watch` end-of-run lag (end printed − end event's commit), %d runs" % (
            sz["watch_runs"])
        if vals:
            p99 = percentile(vals, 0.99)
            rows.append(Row("watch_lag_median", title + ": median", "ms", "lower",
                            values=[statistics.median(vals)]))
            rows.append(Row("watch_lag", title + ": p99", "ms", "lower", values=[p99],
                            target=TARGETS["watch_lag"]))
        else:
            rows.append(Row("watch_lag", title, "ms", "lower", na=wlag.get("na"),
                            target=TARGETS["watch_lag"]))
    if real.get("http") is not None:
        rows += http_rows(real["http"], sz)
    if res.get("runview") is not None:
        rows += runview_rows(res["runview"], sz)
    for key, title, _, _ in spec:  # what each task cost droverd in disk writes
        d = real.get(key)
        if d and d.get("io_kib"):
            rows.append(Row(key + "_io", "%s: droverd bytes written per task" % title.split(
                ":", 1)[1].strip(), "KiB", "lower", values=d["io_kib"]))
    sim = res.get("drover_sim", {})
    cap = sim.get("capacity")
    if cap is not None:
        title = "scheduler capacity: %s agents, %s tasks" % ("{:,}".format(sz["cap_agents"]),
                                                              "{:,}".format(sz["cap_tasks"]))
        if isinstance(cap, dict):
            rows.append(Row("capacity", title, "tasks/s", "higher", na=cap["na"],
                            target=TARGETS["capacity"]))
        else:
            note = cap[0].get("note")
            rows.append(Row("capacity", title + " (assignments + completions, durable)", "tasks/s",
                            "higher", values=[c["rate"] for c in cap], note=note,
                            target=TARGETS["capacity"]))
            rows.append(Row("capacity_rss", "scheduler capacity: droverd peak RSS", "MiB", "lower",
                            values=[c["rss_mb"] for c in cap]))
            rows.append(Row("capacity_cpu", "scheduler capacity: droverd CPU per task", "µs",
                            "lower", values=[c["cpu_us_per_task"] for c in cap]))
    hb = sim.get("heartbeat")
    if hb is not None:
        title = "heartbeat load: %s agents at 1 Hz, droverd CPU" % "{:,}".format(sz["hb_agents"])
        rows.append(Row("heartbeat", title, "% of a core", "lower", values=hb.get("values"),
                        na=hb.get("na"), target=TARGETS["heartbeat"]))
    rec = sim.get("recovery")
    if rec is not None:
        title = "recovery: kill -9 droverd with %s tasks in flight; time to dispatch again" % (
            "{:,}".format(sz["rec_agents"] * sz["rec_slots"]))
        if isinstance(rec, dict):
            rows.append(Row("recovery", title, "s", "lower", na=rec["na"],
                            target=TARGETS["recovery"]))
        else:
            rows.append(Row("recovery", title, "s", "lower", values=[r["seconds"] for r in rec],
                            note=rec[0].get("note"), target=TARGETS["recovery"]))
            rows.append(Row("recovery_lost", "recovery: tasks lost", "tasks", "lower",
                            values=[r["lost"] for r in rec], target=TARGETS["recovery_lost"]))
            rows.append(Row("recovery_dup", "recovery: tasks run twice", "tasks", "lower",
                            values=[r["dup"] for r in rec], target=TARGETS["recovery_dup"]))
    big = sim.get("big")
    if big is not None:
        n = "{:,}".format(sz["big_tasks"])
        if "na" in big:
            rows.append(Row("big_submit", "big run: one run of %s tasks (fan-out)" % n, "s", "lower",
                            na=big["na"], target=TARGETS["big_submit"]))
        else:
            n = "{:,}".format(big.get("tasks", sz["big_tasks"]))
            # The targets are for the full size: not judged on a smaller run.
            full = big.get("tasks", 0) >= SIZES["full"]["big_tasks"]
            rows.append(Row("big_submit", "big run (%s tasks): submit time" % n, "s", "lower",
                            values=[big["submit_s"]],
                            target=TARGETS["big_submit"] if full else None,
                            note=big.get("note")))
            rows.append(Row("big_makespan", "big run: makespan", "s", "lower",
                            values=[big["makespan_s"]]))
            rows.append(Row("big_state", "big run: state dir size", "MiB", "lower",
                            values=[big["state_mb"]]))
            rows.append(Row("big_rss", "big run: droverd peak RSS", "MiB", "lower",
                            values=[big["rss_mb"]], target=TARGETS["big_rss"] if full else None))
    sub = sim.get("subdag")
    if sub is not None:
        rows += subdag_rows(sub, sz)
    bl = sim.get("backlog")
    if bl is not None:
        rows += backlog_rows(bl, sz)
    pools = sim.get("pools")
    if pools is not None:
        rows += pools_rows(pools, sz)
    return rows


def http_rows(h, sz):
    """The http workload's rows (issue #19): p50 and p99 of each endpoint at
    the stated rate while throughput runs, the failed requests, and the
    throughput figure with that load against without it (and their ratio,
    per pair). The issue gives no target: the table shows what was
    measured."""
    n = "{:,}".format(sz["throughput"])
    title = "HTTP API at %g req/s each, during %s-step throughput runs" % (HTTP_RATE, n)
    if "na" in h:
        return [Row("http_run_p99", title, "ms", "lower", na=h["na"])]
    rows = []
    names = {"/metrics": ("http_metrics", "GET /metrics")}
    for path, e in h["endpoints"].items():
        key, what = names.get(path, ("http_run", "GET /api/v1/runs/{id} of a %s-task run" % (
            "{:,}".format(h["items"]))))
        for q, qn in ((0.5, "p50"), (0.99, "p99")):
            rows.append(Row("%s_%s" % (key, qn), "%s: %s, %s" % (title, what, qn), "ms", "lower",
                            values=[percentile(e["ms"], q)] if e["ms"] else None,
                            na=None if e["ms"] else "no request answered 200"))
    sent = sum(e["sent"] for e in h["endpoints"].values())
    rows.append(Row("http_errors", "%s: requests failed (not 200, or no answer) of %d sent" % (
        title, sent), "requests", "lower",
        values=[sum(sum(e["errors"].values()) for e in h["endpoints"].values())]))
    rows.append(Row("http_tp_loaded", "throughput: %s `true` steps with that HTTP load" % n,
                    "steps/s", "higher", values=h["loaded"]))
    rows.append(Row("http_tp_plain", "throughput: %s `true` steps without it (alternating)" % n,
                    "steps/s", "higher", values=h["plain"]))
    rows.append(Row("http_tp_ratio", "throughput with the HTTP load / without", "×", "higher",
                    values=[y / x for x, y in zip(h["plain"], h["loaded"]) if x > 0]))
    return rows


def pools_rows(pools, sz):
    """The node pools workload's rows (issue #18): submit → scale-up decision
    of the first and of the last of the 10 pools, and → their first provider
    create call; placement throughput with and without the pools. The issue
    gives no target for these: the table shows what was measured."""
    title = "node pools: %s-task submit (10 shapes) → scale-up decision, 10 pools" % (
        "{:,}".format(sz["pools_tasks"]))
    if "na" in pools:
        return [Row("pools_decide_last", title, "s", "lower", na=pools["na"])]
    rows = []
    dec = pools.get("decision") or []
    if dec:
        rows += [Row("pools_decide_first", title + ": first pool", "s", "lower",
                     values=[r["decide_first_s"] for r in dec]),
                 Row("pools_decide_last", title + ": last pool", "s", "lower",
                     values=[r["decide_last_s"] for r in dec]),
                 Row("pools_seen_last", "node pools: submit → every pool's new nodes listed by "
                     "`drover pools` (polled every 10 ms)", "s", "lower",
                     values=[r["seen_last_s"] for r in dec]),
                 Row("pools_create_first", "node pools: submit → first provider create call: "
                     "first pool", "s", "lower", values=[r["create_first_s"] for r in dec]),
                 Row("pools_create_last", "node pools: submit → first provider create call: "
                     "last pool", "s", "lower", values=[r["create_last_s"] for r in dec]),
                 Row("pools_wait_cpu", "node pools: droverd CPU while the %s tasks wait for the "
                     "%s nodes asked" % ("{:,}".format(sz["pools_tasks"]),
                                         "{:,}".format(sum(dec[0]["nodes"].values()))),
                     "% of a core", "lower", values=[r["wait_cpu"] for r in dec])]
    pl = pools.get("placement") or {}
    w, wo = pl.get("with") or [], pl.get("without") or []
    what = "placement: %s tasks on %s simulated agents" % ("{:,}".format(sz["ptp_tasks"]),
                                                           "{:,}".format(sz["ptp_agents"]))
    if w:
        rows.append(Row("pools_tp_with", what + ", 10 pools growing", "tasks/s", "higher",
                        values=[r["rate"] for r in w]))
    if wo:
        rows.append(Row("pools_tp_without", what + ", no pools", "tasks/s", "higher",
                        values=[r["rate"] for r in wo]))
    if w and wo:
        rows.append(Row("pools_tp_ratio", "placement with pools / without", "×", "higher",
                        values=[x["rate"] / y["rate"] for x, y in zip(w, wo) if y["rate"] > 0]))
    for key, runs, how in (("with", w, "10 pools growing"), ("without", wo, "no pools")):
        if runs:
            rows.append(Row("pools_cpu_" + key, "placement, %s: droverd CPU per task" % how, "µs",
                            "lower", values=[r["cpu_us_per_task"] for r in runs]))
    return rows


def backlog_rows(bl, sz):
    """Rows of the backlog workload: placement throughput without and with
    the backlog, their ratio (the target), `drover status` with it."""
    title = "placement: %s tasks on %s agents" % ("{:,}".format(sz["bl_tasks"]),
                                                  "{:,}".format(sz["bl_agents"]))
    with_title = title + ", %s unplaceable READY tasks queued before" % "{:,}".format(
        sz["bl_backlog"])
    if "na" in bl:
        return [Row("backlog_ratio", with_title, "×", "higher", na=bl["na"],
                    target=TARGETS["backlog_ratio"])]
    none, back = bl["none"], bl["backlog"]
    return [Row("backlog_none", title + ", no backlog", "tasks/s", "higher",
                values=[r["rate"] for r in none]),
            Row("backlog", with_title, "tasks/s", "higher", values=[r["rate"] for r in back]),
            # the medians' ratio: one pair's ratio is mostly the machine's
            # load while each ran (seconds each, alternating)
            Row("backlog_ratio", "placement with / without the backlog (medians)", "×", "higher",
                values=[statistics.median(r["rate"] for r in back) /
                        statistics.median(r["rate"] for r in none)],
                target=TARGETS["backlog_ratio"]),
            Row("backlog_cpu_none", "placement, no backlog: droverd CPU per task", "µs", "lower",
                values=[r["cpu_us_per_task"] for r in none]),
            Row("backlog_cpu", "placement with the backlog: droverd CPU per task", "µs", "lower",
                values=[r["cpu_us_per_task"] for r in back]),
            Row("backlog_status", "`drover status` (READY tasks by reason) with the backlog",
                "ms", "lower", values=[r["status_ms"] for r in back])]


def subdag_rows(sub, sz):
    """The sub-DAG fan-out workload's rows: memory per task and throughput of
    the flat and the sub-DAG fan-out, and the ratio of their memory (per
    repetition: each sub-DAG run against the flat run that followed it)."""
    items = sz["subdag_items"]
    shapes = (("flat", "subdag_flat", "flat fan-out (%s tasks)" % "{:,}".format(2 * items)),
              ("subdag", "subdag", "sub-DAG fan-out (%s items × 2 chained steps = %s tasks)" % (
                  "{:,}".format(items), "{:,}".format(2 * items))))
    if "na" in sub:
        return [Row("subdag_mem", shapes[1][2] + ": droverd memory per task", "bytes", "lower",
                    na=sub["na"])]
    rows = []
    for shape, key, title in shapes:
        d = sub.get(shape) or {"na": "not run"}
        if "na" in d or not d.get("runs"):
            rows.append(Row(key + "_mem", title + ": droverd memory per task", "bytes", "lower",
                            na=d.get("na", "not run")))
            continue
        rows.append(Row(key + "_mem", title + ": droverd memory per task (peak RSS growth / "
                        "tasks)", "bytes", "lower",
                        values=[r["bytes_per_task"] for r in d["runs"]]))
        rows.append(Row(key + "_rate", title + ": throughput", "tasks/s", "higher",
                        values=[r["rate"] for r in d["runs"]]))
    f = (sub.get("flat") or {}).get("runs") or []
    g = (sub.get("subdag") or {}).get("runs") or []
    ratios = [y["bytes_per_task"] / x["bytes_per_task"] for x, y in zip(f, g)
              if x["bytes_per_task"] > 0]
    if ratios:
        rows.append(Row("subdag_mem_ratio", "sub-DAG vs flat fan-out: memory per task", "×",
                        "lower", values=ratios, target=TARGETS["subdag_mem_ratio"]))
        # the same memory over every task the run lists: each item's group
        # is a task too (fan[i], with its status and outputs), 3 per item
        rows.append(Row("subdag_mem_ratio_all", "sub-DAG vs flat fan-out: memory per task, "
                        "each item's group counted as a task", "×", "lower",
                        values=[r * 2 / 3 for r in ratios]))
    return rows


def target_text(row):
    if not row.target or row.target[1] is None:
        return ""
    op, v = row.target
    sym = "≥" if op == ">=" else "≤"
    unit = {"% of a core": "%", "tasks/s": "/s", "steps/s": "/s", "ms/step": " ms", "s": " s",
            "MiB": " MiB", "tasks": "", "×": "×"}.get(row.unit, "")
    met = row.met()
    mark = "" if met is None else (" ✅" if met else " ❌")
    return "%s %s%s%s" % (sym, fmt_num(v, row.unit) if row.unit != "tasks" else "%d" % v, unit, mark)


def table_md(rows):
    out = ["| workload | unit | drover | Slurm | Dask | drover vs Slurm | drover vs Dask | target |",
           "|---|---|---|---|---|---|---|---|"]
    notes = []

    def cell(d):
        if d is None:
            return "—"
        if d.get("na"):
            return "n/a (%s)" % d["na"]
        return fmt_cell(d.get("values"), unit)

    for r in rows:
        unit = r.unit
        drover = "n/a (%s)" % r.na if r.na else fmt_cell(r.values, unit)
        if r.note:
            notes.append(r.note)
            drover += " [%d]" % len(notes)
        peer_cells = []
        for system in ("slurm", "dask"):
            p = r.peers.get(system)
            c = cell(p) if p is not None else "—"
            if p and p.get("note"):
                notes.append("%s: %s" % ("Slurm" if system == "slurm" else "Dask", p["note"]))
                c += " [%d]" % len(notes)
            peer_cells.append(c)
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r.title, unit, drover, peer_cells[0], peer_cells[1], ratio_text(r, "slurm"),
            ratio_text(r, "dask"), target_text(r)))
    if notes:
        out.append("")
        for i, n in enumerate(notes, 1):
            out.append("[%d] %s  " % (i, n))
    return "\n".join(out)


def machine_text():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%d cores (%s), %.0f GiB memory, Linux %s" % (os.cpu_count() or 0, model, mem,
                                                       os.uname().release)


def git_rev():
    if os.environ.get("BENCH_DROVER_REV"):  # binaries built from elsewhere
        return os.environ["BENCH_DROVER_REV"]
    try:
        rev = subprocess.run(["git", "-C", SOURCE_DIR, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", SOURCE_DIR, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True).stdout
        return rev + ("+changes" if dirty.strip() else "")
    except OSError:
        return "?"


def write_chart(rows, res, png, data_dir):
    """A 2×2 PNG: the three peer workloads (log scale, median with min–max
    bars) and drover's simulated workloads against their targets."""
    if not have("gnuplot"):
        log("chart: gnuplot not installed; skipped")
        return False
    panels = []
    for key in ("throughput", "chain", "wide"):
        r = next((x for x in rows if x.key == key), None)
        if r is None:
            continue
        vals = [("drover", r.values), ("Slurm", (r.peers.get("slurm") or {}).get("values")),
                ("Dask", (r.peers.get("dask") or {}).get("values"))]
        path = os.path.join(data_dir, "chart-%s.dat" % key)
        with open(path, "w") as f:
            for i, (name, v) in enumerate(vals):
                if v:
                    med, lo, hi = stat3(v)
                    f.write('%d "%s" %g %g %g\n' % (i, name, med, lo, hi))
                else:
                    f.write('%d "%s (n/a)" NaN NaN NaN\n' % (i, name))
        ylabel = {"throughput": "steps/s (higher is better)",
                  "chain": "ms per step (lower is better)",
                  "wide": "makespan, s (lower is better)"}[key]
        panels.append((path, r.title.replace("`", ""), ylabel, any(v for _, v in vals)))
    # drover vs target: (target/measured or measured/target) ≥ 1 = met
    tpath = os.path.join(data_dir, "chart-targets.dat")
    tn = 0
    with open(tpath, "w") as f:
        for r in rows:
            if r.key in ("throughput", "chain", "recovery_lost", "recovery_dup") or not r.target \
                    or r.target[1] is None:
                continue
            label = {"capacity": "capacity", "heartbeat": "heartbeat CPU", "recovery": "recovery",
                     "big_submit": "1M submit", "big_rss": "1M RSS", "distinct": "distinct steps",
                     "chain_long": "long chain",
                     "subdag_mem_ratio": "sub-DAG mem/task",
                     "backlog_ratio": "placement with 1M backlog",
                     "subdag_mem_ratio_all": "sub-DAG mem/task (groups counted)"}.get(r.key, r.key)
            if r.values:
                m = r.median()
                x = (m / r.target[1]) if r.target[0] == ">=" else (r.target[1] / max(m, 1e-9))
                f.write('%d "%s" %g\n' % (tn, label, x))
            else:
                f.write('%d "%s (n/a)" NaN\n' % (tn, label))
            tn += 1
        for key, label in (("throughput", "throughput"), ("chain", "chain")):
            r = next((x for x in rows if x.key == key), None)
            if r and r.target:
                if r.values:
                    m = r.median()
                    x = (m / r.target[1]) if r.target[0] == ">=" else (r.target[1] / max(m, 1e-9))
                    f.write('%d "%s" %g\n' % (tn, label, x))
                else:
                    f.write('%d "%s (n/a)" NaN\n' % (tn, label))
                tn += 1
    gp = os.path.join(data_dir, "chart.gp")
    colors = ["#1f77b4", "#d62728", "#2ca02c"]
    lines = ["set terminal pngcairo size 1400,1000 font 'sans,10'",
             "set output '%s'" % png,
             "set multiplot layout 2,2 title 'drover vs Slurm vs Dask on %d cores (median of runs; "
             "bars: min-max)'" % (os.cpu_count() or 0),
             "set style fill solid 0.8 border -1", "set boxwidth 0.6", "set grid ytics",
             "set logscale y", "set key off", "set xrange [-0.7:2.7]",
             "set offsets 0, 0, graph 0.12, 0",
             "set datafile missing 'NaN'"]
    for path, title, ylabel, some in panels:
        lines += ["set title '%s'" % title.replace("'", ""), "set ylabel '%s'" % ylabel]
        if not some:  # gnuplot refuses a plot with no points: an empty panel
            lines += ["set label 1 'n/a on every system' at graph 0.5,0.5 center",
                      "set yrange [1:10]", "unset xtics", "plot 100 notitle", "unset label 1",
                      "set autoscale y", "set xtics"]
            continue
        lines += ["plot '%s' using 1:3:($0==0?0x%s:$0==1?0x%s:0x%s):xtic(2) with boxes "
                  "lc rgb variable, '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0, "
                  "'' using 1:3:(sprintf('%%.3g', $3)) with labels offset 0,1"
                  % (path, colors[0][1:], colors[1][1:], colors[2][1:])]
    if tn:
        lines += ["set title 'drover against the issue targets (>= 1 means met)'",
                  "set ylabel 'measured / target, oriented so that higher is better'",
                  "set xrange [-0.7:%g]" % (tn - 0.3), "set xtics rotate by -20",
                  "set arrow 1 from -0.7,1 to %g,1 nohead lc rgb 'black' dt 2" % (tn - 0.3),
                  "plot '%s' using 1:3:xtic(2) with boxes lc rgb '%s', "
                  "'' using 1:3:(sprintf('%%.2g', $3)) with labels offset 0,1" % (tpath, colors[0])]
    lines.append("unset multiplot")
    with open(gp, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        log("chart: gnuplot failed: %s", r.stderr.strip()[-500:])
        return False
    return True


def details_md(res, sz):
    out = []
    sim = res.get("drover_sim", {})
    cap = sim.get("capacity")
    if isinstance(cap, list):
        out.append("- capacity: submit %s s; droverd CPU %s µs per task; state dir %s MiB; "
                   "duplicates %s" % (
                       ", ".join("%.2f" % c["submit_s"] for c in cap),
                       ", ".join("%.1f" % c["cpu_us_per_task"] for c in cap),
                       ", ".join("%.0f" % c["state_mb"] for c in cap),
                       ", ".join(str(c["duplicates"]) for c in cap)))
    hb = sim.get("heartbeat")
    if isinstance(hb, dict) and hb.get("values"):
        out.append("- heartbeat load: drover-simagent itself used %s%% of a core; droverd peak "
                   "RSS %.0f MiB" % (", ".join("%.1f" % v for v in hb["sim_cpu"]), hb["rss_mb"]))
    rec = sim.get("recovery")
    if isinstance(rec, list):
        for i, r in enumerate(rec, 1):
            out.append("- recovery run %d: %d attempts in flight at the kill; droverd's API "
                       "answered %.3f s after kill -9, the first agent was registered again at "
                       "%.3f s, the first new assignment came at %.3f s, all agents were "
                       "registered again at %s s; %d/%d tasks seen by the agents; lost %d, run "
                       "twice %d%s" % (
                           i, r["inflight"], r["api_s"], r["registered_s"], r["seconds"],
                           "%.3f" % r["all_registered_s"] if r.get("all_registered_s") else "?",
                           r["tasks_seen"], r["total"], r["lost"], r["dup"],
                           (" (%s)" % ", ".join(r["dup_names"][:5])) if r["dup_names"] else ""))
    big = sim.get("big")
    if isinstance(big, dict) and "na" not in big:
        out.append("- big run: tasks run twice: %s; the longest wait for droverd to answer "
                   "`drover runs` while the run ran (one busy loop iteration blocks the API): "
                   "%.1f s (the submit itself waited %.1f s); droverd's memory at the end: "
                   "%.0f MiB heap and %.0f MiB of mapped state (LMDB pages it touched)" % (
                       big.get("dup"), big.get("api_stall_s", 0), big["submit_s"],
                       big.get("rss_anon_mb", 0), big.get("rss_file_mb", 0)))
    sub = sim.get("subdag")
    if isinstance(sub, dict) and "na" not in sub:
        for shape in ("flat", "subdag"):
            runs = (sub.get(shape) or {}).get("runs")
            if not runs:
                continue

            def each(fmt, key):
                return ", ".join(fmt % r[key] for r in runs)
            out.append("- %s fan-out, %s tasks: droverd's RSS %s MiB before the submit, peak %s "
                       "MiB; heap growth %s bytes per task; at the end %s MiB heap and %s MiB of "
                       "mapped state; state dir %s MiB; submit %s s, makespan %s s; tasks run "
                       "twice: %s; longest `drover runs` wait %s s" % (
                           "sub-DAG" if shape == "subdag" else "flat",
                           "{:,}".format(runs[0]["tasks"]), each("%.0f", "rss0_mb"),
                           each("%.0f", "rss_mb"), each("%.0f", "heap_bytes_per_task"),
                           each("%.0f", "rss_anon_mb"), each("%.0f", "rss_file_mb"),
                           each("%.0f", "state_mb"), each("%.2f", "submit_s"),
                           each("%.1f", "makespan_s"), each("%d", "dup"),
                           each("%.1f", "api_stall_s")))
    h = res.get("drover", {}).get("http")
    if isinstance(h, dict) and "na" not in h:
        out.append("- HTTP API: %d pairs of throughput runs, the load on %.1f s in all, %d "
                   "keep-alive connections per endpoint; %s; droverd's CPU per task %s µs "
                   "without the load, %s µs with it; drover-web used %.1f%% of a core while "
                   "loaded" % (
                       len(h["loaded"]), h["load_s"], h["conns"], "; ".join(
                           "GET %s: %d sent, %d answered 200 (%s bytes), %.1f req/s, errors: %s"
                           % (p, e["sent"], len(e["ms"]), "{:,}".format(e["body_bytes"]),
                              e["sent"] / h["load_s"] if h["load_s"] else 0,
                              ", ".join("%s %d" % kv for kv in sorted(e["errors"].items()))
                              or "none")
                           for p, e in h["endpoints"].items()),
                       "%.1f" % statistics.median(h["cpu_plain_us"]),
                       "%.1f" % statistics.median(h["cpu_loaded_us"]), h["web_cpu_pct"]))
    pools = sim.get("pools")
    if isinstance(pools, dict) and pools.get("decision"):
        dec = pools["decision"]
        out.append("- node pools: %s tasks submitted in %s s (the times above count from just "
                   "before the submit); %s simulated agents of 2 cpus that fit none of them; "
                   "nodes asked per run: %s (max %d per pool); each pool's decision, median over "
                   "runs: %s" % (
                       "{:,}".format(dec[0]["tasks"]),
                       ", ".join("%.2f" % r["submit_s"] for r in dec),
                       dec[0]["agents"], ", ".join(str(sum(r["nodes"].values())) for r in dec),
                       sz["pools_max"], ", ".join(
                           "%s %.3f s" % (p, statistics.median(r["decide"][p] for r in dec))
                           for p in sorted(dec[0]["decide"], key=lambda p: dec[0]["decide"][p]))))
        w = (pools.get("placement") or {}).get("with") or []
        if w:
            out.append("- node pools, placement with pools: nodes asked of the provider while "
                       "the agents worked: %s; tasks run twice: %s" % (
                           ", ".join(str(r["nodes_asked"]) for r in w),
                           ", ".join(str(r["dup"]) for r in w)))
    return "\n".join(out)


def write_report(bench, res, sz, elapsed):
    rows = build_rows(res, sz)
    os.makedirs(bench.out, exist_ok=True)
    png = os.path.join(bench.out, "latest.png")
    chart = write_chart(rows, res, png, bench.work)
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    phases = ", ".join("%s %.0f s" % (k, v) for k, v in bench.phase_times.items())
    md = ["# drover benchmark results (%s)" % bench.mode, "",
          "%s; `make bench%s`; total %.1f min (%s)." % (
              when, " BENCH_QUICK=1" if bench.mode == "quick" else "", elapsed / 60.0, phases), "",
          "- machine: %s" % machine_text(),
          "- drover %s; %s; Dask distributed %s" % (git_rev(), bench.versions.get("slurm", "Slurm ?"),
                                                   bench.versions.get("dask", "?")),
          "- load average (1 min) at the start and end of each phase, a sign of other work on "
          "the machine (the suite itself keeps about 1-2 busy): %s" % ", ".join(
              "%s %.1f→%.1f" % (k, a, z) for k, (a, z) in bench.loads.items() if k != "install"),
          "- figures: median (min–max) of %d run(s) each; \"vs\" columns: how many times better "
          "drover's median is (higher rate, or lower time)" % sz["reps"], "",
          table_md(rows), ""]
    det = details_md(res, sz)
    if det:
        md += ["Details:", "", det, ""]
    if chart:
        md += ["![drover vs Slurm vs Dask](latest.png)", ""]
    text = "\n".join(md)
    with open(os.path.join(bench.out, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(bench.out, "latest.json"), "w") as f:
        json.dump({"mode": bench.mode, "sizes": sz, "results": res, "elapsed_s": elapsed,
                   "phases": bench.phase_times, "loads": bench.loads, "versions": bench.versions,
                   "when": when},
                  f, indent=1, default=str)
    log("wrote %s", os.path.join(bench.out, "latest.md"))
    if bench.update_readme:
        update_readme(text)
    return text


def update_readme(text):
    path = os.path.join(HERE, "README.md")
    try:
        with open(path) as f:
            readme = f.read()
    except OSError:
        return
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin not in readme or end not in readme:
        return
    body = text.replace("](latest.png)", "](results/latest.png)")
    body = re.sub(r"^# drover benchmark results", "### Latest results", body, flags=re.M)
    head, rest = readme.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(head + begin + "\n" + body.strip() + "\n" + end + tail)
    log("updated the results section of %s", path)


# ------------------------------------------------------------------ main


def reaper_main(argv):
    """`bench.py --reap CMD...`: run CMD as a child subreaper that reaps
    every orphan below it (slurmd's slurmstepd processes), so a machine
    whose PID 1 reaps slowly or never does not fill up with zombies.
    Forwards SIGTERM/SIGINT to CMD; exits with CMD's status once every
    descendant is gone."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    child = subprocess.Popen(argv)

    def forward(signum, frame):
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child.pid:
            rc = os.waitstatus_to_exitcode(status)
            child.returncode = rc
    return rc if rc >= 0 else 128 - rc


class Bench:
    pass


def main():
    if sys.argv[1:2] == ["--reap"]:
        return reaper_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description="drover vs Slurm vs Dask benchmarks (bench/README.md)")
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                    help="fewer repetitions, smaller sizes (also BENCH_QUICK=1)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, for the smoke test")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="subset of drover,slurm,dask")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="subset of " + ",".join(WORKLOADS))
    ap.add_argument("--reps", type=int, help="repetitions (default: 3, quick: 1)")
    ap.add_argument("--bin-dir", default=os.path.join(SOURCE_DIR, "build"),
                    help="where droverd, drover-agent, drover and drover-simagent are")
    ap.add_argument("--build", action="store_true", help="run `make build` first")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="results directory")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = ap.parse_args()

    b = Bench()
    b.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sz = dict(SIZES[b.mode])
    if args.reps:
        sz["reps"] = args.reps
    b.systems = [s for s in args.systems.split(",") if s]
    b.workloads = [w for w in args.workloads.split(",") if w]
    for s in b.systems:
        if s not in SYSTEMS:
            ap.error("unknown system %r" % s)
    for w in b.workloads:
        if w not in WORKLOADS:
            ap.error("unknown workload %r" % w)
    b.bindir = os.path.abspath(args.bin_dir)
    b.out = os.path.abspath(args.out)
    b.update_readme = b.mode == "full" and b.out == os.path.join(HERE, "results") and \
        set(b.systems) == set(SYSTEMS) and set(b.workloads) == set(WORKLOADS)
    b.versions = {}
    b.phase_times = {}
    b.loads = {}
    os.makedirs(b.out, exist_ok=True)
    log.open(os.path.join(b.out, "latest.log"))
    base = "/tmp" if len(tempfile.gettempdir()) > 40 else tempfile.gettempdir()
    b.work = tempfile.mkdtemp(prefix="drover-bench-", dir=base)
    nofile = raise_fd_limit()
    log("bench (%s): systems %s; workloads %s; work dir %s; fd limit %d", b.mode,
        ",".join(b.systems), ",".join(b.workloads), b.work, nofile)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)

    t_start = time.monotonic()
    res = {}
    ok = True

    def phase(name, fn, key=None):
        t = time.monotonic()
        load0 = os.getloadavg()[0]
        try:
            res[key or name] = fn()
        except NA as e:
            log("%s: n/a (%s)", name, e)
            res[key or name] = {"na": str(e)}
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one system failing must not stop the rest
            log("%s failed: %s\n%s", name, e, traceback.format_exc())
            res[key or name] = {"na": "error: %s" % str(e)[:120]}
        b.phase_times[name] = time.monotonic() - t
        b.loads[name] = (load0, os.getloadavg()[0])

    try:
        if not args.no_install:
            phase("install", lambda: install(b.systems))
        if args.build:
            phase("build", lambda: run(["make", "-C", SOURCE_DIR, "build"], timeout=1800))
        binaries_ok(b.bindir)
        real = [w for w in REAL_WORKLOADS if w in b.workloads]
        simw = [w for w in ("capacity", "heartbeat", "recovery", "big", "subdag", "pools", "backlog")
                if w in b.workloads]
        if "drover" in b.systems and (real or "watch_lag" in b.workloads or
                                      "http" in b.workloads):
            phase("drover", lambda: drover_real(b, sz))
        if "drover" in b.systems and "runview" in b.workloads:
            phase("runview", lambda: runview(b, sz))
        if "drover" in b.systems and simw:
            phase("drover-sim", lambda: drover_sim(b, sz), key="drover_sim")
        if "dask" in b.systems and real:
            phase("dask", lambda: dask_workloads(b, sz))
        if "slurm" in b.systems and real:
            phase("slurm", lambda: slurm_workloads(b, sz))
        res.pop("install", None)
        res.pop("build", None)
        elapsed = time.monotonic() - t_start
        text = write_report(b, res, sz, elapsed)
        print(text)
        log("bench done in %.1f min", elapsed / 60.0)
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        ok = False
    finally:
        procs.stop_all()
        if args.keep:
            log("kept %s", b.work)
        else:
            shutil.rmtree(b.work, ignore_errors=True)
    return 0 if ok else 130


if __name__ == "__main__":
    sys.exit(main())
