#!/usr/bin/env python3
"""metrics_scrape — what a Prometheus scrape costs droverd with a large run
loaded (README "Metrics", bench/README.md "Metrics scrape").

Starts droverd on a temp state dir and one agent of 1 cpu, holds the agent
with a long step, then submits one fan-out step of --tasks items (a range)
each asking 1 cpu: every item is READY and waits in the ready queue ("all
agents that fit are busy"), the worst case for the READY-by-reason count
that `drover status` and the metrics share (the placer parks what no agent
could hold; these it cannot). With --parked the items also ask for a GPU,
which no agent has: parked by shape, they cost that count nothing each. Then scrapes --scrapes times and prints, per
scrape, droverd's own time to count the metrics
(drover_metrics_duration_seconds: its loop waits that long) and the whole
`drover metrics` call (a CLI process, the reply, the text), and the same for
`drover status`; the medians last, and as JSON with --json.

  python3 bench/metrics_scrape.py --bin-dir build --tasks 1000000
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--tasks", type=int, default=1000000)
    ap.add_argument("--scrapes", type=int, default=5)
    ap.add_argument("--parked", action="store_true",
                    help="items ask for a GPU no agent has: the placer parks them (by shape)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    b = lambda n: os.path.join(os.path.abspath(a.bin_dir), n)  # noqa: E731
    tmp = tempfile.mkdtemp(prefix="drover-ms-", dir="/tmp")
    api = "ipc://%s/api.sock" % tmp
    port = free_port()
    procs = []
    out = {"tasks": a.tasks, "parked": a.parked}
    try:
        log = open(os.path.join(tmp, "droverd.log"), "w")
        procs.append(subprocess.Popen([b("droverd"), "--state-dir", os.path.join(tmp, "state"),
                                       "--listen", "tcp://127.0.0.1:%d" % port, "--api", api,
                                       "--max-items", str(max(a.tasks, 1000000))],
                                      stdout=log, stderr=log, start_new_session=True))
        cli = lambda *args: subprocess.run([b("drover"), "--api", api] + list(args),  # noqa
                                           capture_output=True, text=True, timeout=600)
        deadline = time.time() + 30
        while cli("runs").returncode != 0:
            if time.time() > deadline:
                sys.exit("droverd did not start: see %s/droverd.log" % tmp)
            time.sleep(0.1)
        alog = open(os.path.join(tmp, "agent.log"), "w")
        procs.append(subprocess.Popen([b("drover-agent"), "--scheduler", "tcp://127.0.0.1:%d" % port,
                                       "--work-dir", os.path.join(tmp, "work"), "--name", "a1",
                                       "--cpus", "1", "--runtime", "process"],
                                      stdout=alog, stderr=alog, start_new_session=True))

        def write(name, text):
            p = os.path.join(tmp, name)
            with open(p, "w") as f:
                f.write(text)
            return p
        hold = write("hold.yaml", "name: hold\nsteps:\n  - name: h\n    command: [sleep, '3600']\n"
                     "    resources: {cpu: 1}\n")
        big = write("big.yaml", "name: big\nsteps:\n  - name: t\n    command: ['true']\n"
                    "    resources: {cpu: 1%s}\n    for_each: {range: %d}\n"
                    % (", gpu: 1" if a.parked else "", a.tasks))
        deadline = time.time() + 30
        while "RUNNING" not in cli("run", "get", cli("submit", hold).stdout.strip()).stdout:
            if time.time() > deadline:
                sys.exit("the hold step did not start: see %s" % tmp)
            time.sleep(0.2)
        t0 = time.time()
        r = cli("submit", big)
        if r.returncode != 0:
            sys.exit("submit: %s" % r.stderr)
        out["submit_s"] = time.time() - t0

        def ready():
            for line in cli("metrics").stdout.splitlines():
                if line.startswith('drover_tasks{status="ready"}'):
                    return float(line.split()[-1])
            return 0
        while ready() < a.tasks:
            time.sleep(0.5)
        for what in ("metrics", "status"):
            walls, inner = [], []
            for _ in range(a.scrapes):
                t0 = time.time()
                r = cli(what)
                walls.append(time.time() - t0)
                for line in r.stdout.splitlines():
                    if line.startswith("drover_metrics_duration_seconds "):
                        inner.append(float(line.split()[-1]))
                print("%s: %.1f ms%s" % (what, walls[-1] * 1000,
                                          " (droverd counting: %.1f ms)" % (inner[-1] * 1000)
                                          if inner else ""), flush=True)
            out[what + "_call_ms"] = statistics.median(walls) * 1000
            if inner:
                out["metrics_droverd_ms"] = statistics.median(inner) * 1000
        with open("/proc/%d/status" % procs[0].pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["droverd_rss_mb"] = int(line.split()[1]) / 1024
        print("%d READY tasks%s: drover metrics %.1f ms (droverd counting %.1f ms), drover status "
              "%.1f ms (medians of %d); droverd RSS %.0f MiB"
              % (a.tasks, " (parked)" if a.parked else "", out["metrics_call_ms"], out.get("metrics_droverd_ms", 0),
                 out["status_call_ms"], a.scrapes, out.get("droverd_rss_mb", 0)))
        if a.json:
            print(json.dumps(out))
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
