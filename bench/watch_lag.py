#!/usr/bin/env python3
"""`drover run watch`'s end-of-run lag (README "Events": the subscription).

For each of N short runs (one `true` step) on droverd + one drover-agent,
`drover run watch RUN` is started before the run ends, piped (line mode);
the lag is the time the watch printed "run RUN SUCCEEDED" minus the time of
the run's end event (its time_ms: set in the commit that wrote it), so it
is the commit + the held request's answer + the client's printing. Prints
the median and p99 in milliseconds (target: <= 50 ms). Binaries from
DROVER_BIN_DIR (default build/).

    python3 bench/watch_lag.py [--runs 20]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="drover-lag-", dir="/tmp")
    c = harness.Cluster(tmp)
    lags = []
    try:
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        go = c.path("go")
        for i in range(args.runs):
            rid = c.submit({"name": "lag", "steps": [
                {"name": "a", "script": "while [ ! -e %s.%d ]; do sleep 0.01; done" % (go, i)}]})
            p = c.popen_cli("run", "watch", rid)
            # the watch has its view and is held on the run's events
            out, ok = harness.read_with_timeout(p, rb" a RUNNING", timeout=60)
            if not ok:
                raise SystemExit("watch never showed the step running: %r" % out)
            open("%s.%d" % (go, i), "w").close()
            out, ok = harness.read_with_timeout(p, ("run %s SUCCEEDED" % rid).encode(), timeout=60)
            printed = time.time()
            p.wait(timeout=60)
            if not ok:
                raise SystemExit("no end line: %r" % out)
            end = [e for e in c.cli_json("events", "--run", rid)
                   if e["kind"] == "run" and e["to"] == "SUCCEEDED"][0]
            lags.append(printed * 1000.0 - end["time_ms"])
    finally:
        c.stop()
    lags.sort()
    p99 = lags[min(len(lags) - 1, int(round(0.99 * (len(lags) - 1))))]
    print("run watch end-of-run lag over %d runs: median %.1f ms, p99 %.1f ms, max %.1f ms"
          % (len(lags), statistics.median(lags), p99, lags[-1]))


if __name__ == "__main__":
    main()
