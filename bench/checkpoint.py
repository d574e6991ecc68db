#!/usr/bin/env python3
"""Checkpoint commit latency and throughput (issue 21): a step saves a
200 MB checkpoint every second (temp file + rename, the README idiom) and
appends a checkpoint line; droverd + one drover-agent on loopback commit
what they can.

Measured, from outside, as a user sees it: for each save, when its line
was written (the step prints the time) and when `drover run get` first
shows it (or a newer one) as the latest committed checkpoint (polled every
20 ms). Latency is that difference for the saves that were committed;
throughput is the checkpoint bytes committed per second of the run. Saves
superseded while an upload ran are counted, not failures: the agent
uploads the newest pending checkpoint (README "The checkpoint rules").
Refusals ("not committed" in the agent's log) are counted and must be 0.

  python3 bench/checkpoint.py --bin-dir build [--size-mb 200] [--saves 15]

Writes bench/results/checkpoint.json and prints a summary line.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

SAVER = r"""
import json, os, sys, time
ck, prog = os.environ["DROVER_CHECKPOINT_DIR"], os.environ["DROVER_PROGRESS"]
size_mb, saves = int(sys.argv[1]), int(sys.argv[2])
block = os.urandom(1 << 20)
path = os.path.join(ck, "last.pt")
for step in range(1, saves + 1):
    t0 = time.time()
    with open(path + ".tmp", "wb") as f:
        f.write(b"%016d" % step)  # every save differs: sent whole
        for _ in range(size_mb):
            f.write(block)
    os.replace(path + ".tmp", path)
    with open(prog, "a") as f:
        f.write(json.dumps({"checkpoint": True, "step": step}) + "\n")
    print("saved %d at %.3f" % (step, time.time()), flush=True)
    time.sleep(max(0.0, 1.0 - (time.time() - t0)))
time.sleep(600)  # the last checkpoint is committed while the step runs
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--saves", type=int, default=15)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "checkpoint.json"))
    args = ap.parse_args()
    bindir = os.path.abspath(args.bin_dir)
    tmp = tempfile.mkdtemp(prefix="drover-ckbench-")
    api = "ipc://%s/api.sock" % tmp
    port = free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [os.path.join(bindir, "droverd"), "--state-dir", os.path.join(tmp, "state"),
             "--listen", "tcp://127.0.0.1:%d" % port, "--api", api],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "droverd.log"), "w")))
        agent_log = os.path.join(tmp, "agent.log")
        procs.append(subprocess.Popen(
            [os.path.join(bindir, "drover-agent"), "--scheduler", "tcp://127.0.0.1:%d" % port,
             "--work-dir", os.path.join(tmp, "agent"), "--name", "a1", "--cpus", "2",
             "--heartbeat", "200ms"],
            stdout=subprocess.DEVNULL, stderr=open(agent_log, "w")))

        def cli(*a):
            return subprocess.run([os.path.join(bindir, "drover"), "--api", api] + list(a),
                                  capture_output=True, text=True, timeout=60)

        deadline = time.time() + 30
        while cli("agents", "-o", "json").stdout.count('"connected": true') < 1:
            if time.time() > deadline:
                raise SystemExit("checkpoint bench: the agent did not connect")
            time.sleep(0.1)
        spec = {"name": "ckbench", "steps": [{
            "name": "save", "command": ["python3", "-c", SAVER, str(args.size_mb),
                                        str(args.saves)],
            "checkpoint": {"keep": 2, "min_interval": "0s"}}]}
        path = os.path.join(tmp, "spec.yaml")
        with open(path, "w") as f:
            json.dump(spec, f)  # JSON is YAML
        r = cli("submit", path)
        if r.returncode != 0:
            raise SystemExit("checkpoint bench: submit failed: %s" % r.stderr)
        rid = r.stdout.strip()
        seen = {}  # step -> first time droverd showed it (or a newer one) committed
        start = time.time()
        limit = start + args.saves * 1.0 + 120
        while time.time() < limit:
            run = json.loads(cli("run", "get", rid, "-o", "json").stdout)
            ck = run["tasks"][0].get("checkpoint")
            now = time.time()
            if ck and ck["step"] not in seen:
                seen[ck["step"]] = now
            if ck and ck["step"] >= args.saves:
                break
            time.sleep(0.02)
        end = time.time()
        logs = cli("logs", rid, "save").stdout
        written = {}
        for line in logs.splitlines():
            if line.startswith("saved "):
                _, step, _, at = line.split()
                written[int(step)] = float(at)
        cli("run", "cancel", rid)
        with open(agent_log) as f:
            refused = f.read().count("not committed")
        lat = [seen[s] - written[s] for s in sorted(seen) if s in written]
        committed_bytes = len(seen) * args.size_mb * 1048576
        first = min(written.values()) if written else start
        res = {"size_mb": args.size_mb, "saves": len(written), "committed": len(seen),
               "superseded": len(written) - len(seen), "refused": refused,
               "latency_s": {"median": statistics.median(lat) if lat else None,
                             "max": max(lat) if lat else None, "values": lat},
               "throughput_mb_s": committed_bytes / 1048576 / (end - first) if lat else 0.0}
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)
        print("checkpoint bench: %d MB every 1 s: %d saves, %d committed (%d superseded, "
              "%d refused); commit latency median %.2f s, max %.2f s; %.0f MB/s committed"
              % (args.size_mb, res["saves"], res["committed"], res["superseded"], refused,
                 res["latency_s"]["median"] or 0, res["latency_s"]["max"] or 0,
                 res["throughput_mb_s"]), flush=True)
        return 0 if refused == 0 and lat else 1
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
