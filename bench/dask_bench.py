"""dask_bench — the Dask side of the drover benchmarks (run by bench.py).

Connects to a running Dask distributed scheduler and times one workload,
each task running the `true` process as drover's and Slurm's do:

  throughput N   N independent tasks; seconds from the first submit to the
                 last result
  distinct N     the same (Dask's tasks are always distinct: drover's
                 throughput is one fan-out step, its distinct is N steps)
  chain N        N tasks, each depending on the previous one; seconds
  wide N         N independent tasks and one that depends on all of them;
                 seconds (makespan)

Prints one JSON object: {"workload", "n", "seconds": [one per rep]}.
Needs python3-distributed (Debian's /usr/bin/python3), so it is a separate
script from bench.py, which is standard library only.
"""
import argparse
import json
import subprocess
import time

from distributed import Client, wait


def run_true(*_deps):
    subprocess.run(["true"], check=True)
    return 0


def join(results):
    subprocess.run(["true"], check=True)
    return len(results)


def once(client, workload, n):
    t0 = time.perf_counter()
    if workload in ("throughput", "distinct"):
        futures = client.map(run_true, range(n), pure=False)
        wait(futures)
        bad = [f for f in futures if f.status != "finished"]
        last = None
    elif workload == "chain":
        f = client.submit(run_true, pure=False)
        for _ in range(n - 1):
            f = client.submit(run_true, f, pure=False)
        f.result()
        futures, bad, last = [f], [], f
    elif workload == "wide":
        fan = client.map(run_true, range(n), pure=False)
        last = client.submit(join, fan, pure=False)
        got = last.result()
        futures, bad = fan + [last], [] if got == n else ["join saw %s of %d" % (got, n)]
    else:
        raise SystemExit("unknown workload %r" % workload)
    seconds = time.perf_counter() - t0
    if bad:
        raise SystemExit("%d tasks did not finish: %r" % (len(bad), bad[:3]))
    del futures, last
    return seconds


def forgotten(client, timeout=60):
    """Wait until the scheduler has forgotten the last run's tasks, so the
    next repetition starts from the same empty state."""
    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
        if time.monotonic() > deadline:
            raise SystemExit("the Dask scheduler still holds tasks after %ds" % timeout)
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheduler", required=True, help="tcp://HOST:PORT")
    ap.add_argument("--workload", required=True, choices=("throughput", "distinct", "chain", "wide"))
    ap.add_argument("-n", type=int, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="wait for this many workers")
    args = ap.parse_args()
    with Client(args.scheduler, timeout=60) as client:
        client.wait_for_workers(args.workers, timeout=60)
        once(client, "throughput", 20)  # warm up: imports, connections
        seconds = []
        for _ in range(args.reps):
            seconds.append(once(client, args.workload, args.n))
            forgotten(client)
    print(json.dumps({"workload": args.workload, "n": args.n, "seconds": seconds}))


if __name__ == "__main__":
    main()
