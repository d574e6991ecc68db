"""Smoke test of the benchmark tools (bench/), so they cannot rot while the
benchmark itself stays out of `make test`.

- drover-simagent against a real droverd: 20 simulated agents run a
  200-step run; every step is assigned, started and finished exactly once
  and every report is acknowledged;
- recovery: kill -9 droverd while simulated attempts are in flight, restart
  it; the run finishes with no task lost and none run twice, and droverd
  dispatches again after the restart;
- bench/bench.py --smoke on drover alone (tiny sizes): it runs end to end and
  writes its table, with the bytes droverd wrote per task, the HTTP API's
  latencies under load (drover-web, every request answered 200), the memory
  per task of a fan-out of sub-DAGs against a flat fan-out, and the node
  pools workload's decision part (10 pools with bench/simprovider: every
  pool decides and is asked to create nodes).

drover-simagent is looked for next to droverd in DROVER_BIN_DIR (where
bench/CMakeLists.txt puts it), then in DROVER_BIN_DIR/bench.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SCALE, SOURCE_DIR, DroverTestCase, wait_until  # noqa: E402


def simagent_path():
    for p in (harness.bin_path("drover-simagent"),
              os.path.join(harness.BIN_DIR, "bench", "drover-simagent")):
        if os.access(p, os.X_OK):
            return p
    return None


def steps_spec(name, n, cpu=None):
    spec = {"name": name, "steps": [{"name": "s%d" % i, "command": ["true"]} for i in range(n)]}
    if cpu:
        spec["defaults"] = {"resources": {"cpu": cpu}}
    return spec


class SimagentTest(DroverTestCase):
    def setUp(self):
        super().setUp()
        self.sim_bin = simagent_path()
        if not self.sim_bin:
            self.fail("drover-simagent not built in %s (bench/CMakeLists.txt)" % harness.BIN_DIR)
        self.stats_path = self.c.path("sim-stats.json")

    def start_sim(self, agents, *extra):
        argv = [self.sim_bin, "--scheduler", self.c.agents_endpoint, "--agents", str(agents),
                "--prefix", "sim", "--heartbeat", "200ms", "--stats", self.stats_path] + list(extra)
        d = harness.Daemon("simagent", "simagent", argv, self.c.path("simagent.log"), self.c.env,
                           self.c.tmp)
        self.c.daemons.append(d)
        self.sim = d
        return d

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def wait_stats(self, pred, what, timeout=30):
        def ok():
            if not self.sim.alive():
                raise harness.DaemonDied("drover-simagent exited (rc %s):\n%s" % (
                    self.sim.p.returncode, harness.tail(self.sim.log_text(), 30)))
            st = self.stats()
            return st if st and pred(st) else None
        return wait_until(ok, timeout=timeout, interval=0.05, what=what)

    def stop_sim(self):
        """SIGTERM drover-simagent; it writes its final stats and exits 0."""
        self.sim.terminate()
        rc = self.sim.p.wait(timeout=30 * SCALE)
        self.assertEqual(rc, 0, "drover-simagent exit status; log:\n%s" % self.sim.log_text())
        return self.stats()

    def assert_each_task_once(self, run):
        self.assertRunSucceeded(run)
        twice = [(t["name"], t["attempts"]) for t in run["tasks"] if t["attempts"] != 1]
        self.assertEqual(twice, [], "tasks that took more than one attempt")
        lost = [t["name"] for t in run["tasks"]
                if any(h.get("status") == "LOST" for h in t.get("history") or [])]
        self.assertEqual(lost, [], "tasks with a LOST attempt")

    def test_simulated_agents_run_a_run(self):
        self.c.start_droverd()
        self.start_sim(20, "--cpus", "1")
        self.wait_stats(lambda s: s.get("registered") == 20, "20 simulated agents to register")
        agents = [a for a in self.c.agents_list() if a["name"].startswith("sim-")]
        self.assertEqual(len(agents), 20)
        self.assertTrue(all(a["connected"] for a in agents), agents)

        rid = self.c.submit(steps_spec("smoke", 200, cpu="10m"))
        run = self.c.wait_run_final(rid, timeout=60)
        self.assert_each_task_once(run)
        used = {t["agent"] for t in run["tasks"]}
        self.assertGreater(len(used), 1, "all steps went to one agent: %s" % used)

        st = self.wait_stats(lambda s: s.get("unacked") == 0, "every report acknowledged")
        st = self.stop_sim()
        self.assertEqual(st["assignments"], 200, st)
        self.assertEqual(st["exits"], 200, st)
        self.assertEqual(st["tasks"], 200, st)
        self.assertEqual(st["duplicate_tasks"], 0, st)
        self.assertEqual(st["unacked"], 0, st)
        self.assertEqual(st["undecodable"], 0, st)
        self.assertEqual(st["reports_acked"], 400, st)  # STARTED + EXITED each

    def test_recovery_after_kill9_loses_and_repeats_nothing(self):
        self.c.start_droverd()
        # 10 agents x 2 cpus, each task 1 cpu: 20 attempts in flight of 40.
        self.start_sim(10, "--cpus", "2", "--task-time", "1s", "--task-time-max", "2s")
        self.wait_stats(lambda s: s.get("registered") == 10, "10 simulated agents to register")
        rid = self.c.submit(steps_spec("recovery", 40))
        self.wait_stats(lambda s: s.get("running", 0) >= 15, "attempts in flight")

        self.c.kill_droverd()
        self.sim.p.send_signal(signal.SIGUSR1)  # mark: time the dispatch after the restart
        self.wait_stats(lambda s: s.get("mark_ms", 0) > 0, "the mark")
        self.c.start_droverd()

        run = self.c.wait_run_final(rid, timeout=90)
        self.assert_each_task_once(run)
        st = self.wait_stats(lambda s: s.get("mark_assign_ms", 0) > 0 and s.get("unacked") == 0,
                             "a dispatch after the restart and every report acknowledged")
        self.assertGreaterEqual(st["mark_running"], 15, st)
        self.assertGreaterEqual(st["mark_assign_ms"], st["mark_registered_ms"], st)
        self.assertGreater(st["mark_assign_ms"], 0, st)
        self.assertGreaterEqual(st["mark_registered_ms"], st["mark_ms"], st)
        st = self.stop_sim()
        self.assertEqual(st["tasks"], 40, st)
        self.assertEqual(st["duplicate_tasks"], 0, st)
        self.assertEqual(st["duplicates"], [], st)
        self.assertEqual(st["assignments"], 40, st)


class BenchDriverTest(DroverTestCase):
    """bench.py --smoke on drover alone: tiny sizes, no installs, no Slurm/Dask."""

    def test_bench_smoke_run(self):
        if not simagent_path():
            self.fail("drover-simagent not built in %s" % harness.BIN_DIR)
        out = self.c.path("results")
        bindir = os.path.dirname(simagent_path())
        if bindir != harness.BIN_DIR:  # bench.py wants every program in one dir
            bindir = self.c.path("bin")
            os.makedirs(bindir)
            for b in ("droverd", "drover-agent", "drover", "drover-web"):
                os.symlink(harness.bin_path(b), os.path.join(bindir, b))
            os.symlink(simagent_path(), os.path.join(bindir, "drover-simagent"))
        argv = [sys.executable, os.path.join(SOURCE_DIR, "bench", "bench.py"), "--smoke",
                "--systems", "drover", "--no-install", "--keep", "--bin-dir", bindir, "--out", out,
                "--workloads",
                "throughput,distinct,chain,capacity,heartbeat,recovery,subdag,pools,watch_lag,"
                "http,runview"]
        env = dict(self.c.env)
        env.pop("BENCH_QUICK", None)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=240 * SCALE, env=env, cwd=self.c.tmp)
        work = re.search(r"work dir (\S+);", p.stderr)
        if work:
            self.addCleanup(shutil.rmtree, work.group(1), True)
        self.assertEqual(p.returncode, 0, "bench.py failed:\n%s\n%s" % (p.stdout[-3000:],
                                                                       p.stderr[-5000:]))
        if work:
            for root, _, files in os.walk(work.group(1)):
                for name in files:
                    if name.endswith(".log"):
                        harness.check_sanitizer_text(
                            harness.read_text(os.path.join(root, name), ""), name)
        with open(os.path.join(out, "latest.json")) as f:
            res = json.load(f)["results"]
        md = harness.read_text(os.path.join(out, "latest.md"), "")
        self.assertIn("| workload |", md)

        real = res["drover"]
        self.assertEqual(len(real["chain"]["values"]), 1, real)
        self.assertGreater(real["chain"]["values"][0], 0)
        self.assertGreater(real["throughput"]["values"][0], 0, real)
        self.assertGreater(real["distinct"]["values"][0], 0, real)
        # bytes droverd wrote per task (/proc/PID/io): it commits every run
        for wl in ("throughput", "distinct", "chain"):
            self.assertGreater(real[wl]["wchar_kib"][0], 0, real[wl])
            self.assertGreaterEqual(real[wl]["io_kib"][0], 0, real[wl])
        self.assertIn("droverd bytes written per task", md)
        # run watch's end-of-run lag: measured for each run (3 in smoke)
        self.assertEqual(len(real["watch_lag"]["values"]), 3, real["watch_lag"])
        self.assertIn("end-of-run lag", md)
        # the HTTP API under load: GET of the 100-task run and /metrics
        # through drover-web while throughput runs; every request answered
        # 200, latencies and both throughput figures in the table
        h = real["http"]
        self.assertNotIn("na", h, h)
        self.assertEqual(h["items"], 100, h)
        self.assertGreaterEqual(h["tasks"], 100, h)  # and the fan-out step's own
        for path, e in h["endpoints"].items():
            self.assertEqual(e["errors"], {}, (path, e))
            self.assertGreater(e["sent"], 0, (path, e))
            self.assertEqual(len(e["ms"]), e["sent"], (path, e))
            self.assertGreater(min(e["ms"]), 0, (path, e))
        self.assertEqual(len(h["plain"]), len(h["loaded"]), h)
        self.assertGreater(min(h["plain"] + h["loaded"]), 0, h)
        self.assertIn("GET /api/v1/runs/{id} of a 100-task run, p99", md)
        self.assertIn("GET /metrics, p50", md)
        self.assertIn("throughput with the HTTP load / without", md)
        # the run page's GETs (a 300-task run, a 2,000-item fan-out): timed, and the
        # summary of the fan-out stays three tasks' worth
        rv = res["runview"]
        self.assertNotIn("na", rv, rv)
        self.assertEqual(rv["items"]["task_count"], 2001, rv)
        self.assertLess(rv["items"]["summary"]["bytes"], 4096, rv)
        self.assertGreater(rv["tasks"]["full"]["bytes"], rv["tasks"]["summary"]["bytes"], rv)
        self.assertIn("GET /runs/{id}?view=summary, p99", md)
        sim = res["drover_sim"]
        self.assertIsInstance(sim["capacity"], list, sim["capacity"])
        self.assertGreater(sim["capacity"][0]["rate"], 0)
        self.assertEqual(sim["capacity"][0]["duplicates"], 0)
        # 50 agents for a second cost droverd less than one clock tick: the
        # smoke run checks the measurement works, the suite gives the figure
        self.assertGreaterEqual(sim["heartbeat"]["values"][0], 0, sim["heartbeat"])
        self.assertLess(sim["heartbeat"]["values"][0], 100, sim["heartbeat"])
        rec = sim["recovery"]
        self.assertIsInstance(rec, list, rec)
        self.assertEqual((rec[0]["lost"], rec[0]["dup"]), (0, 0), rec)
        self.assertGreater(rec[0]["seconds"], 0, rec)
        # the fan-out of sub-DAGs (200 items x a 2-step body) and the flat
        # fan-out of as many tasks: every task run once, memory per task
        # and the ratio in the table
        sub = sim["subdag"]
        for shape in ("flat", "subdag"):
            self.assertNotIn("na", sub[shape], sub)
            d = sub[shape]["runs"][0]
            self.assertEqual((d["tasks"], d["seen"], d["dup"]), (400, 400, 0), d)
            self.assertGreater(d["rate"], 0, d)
            self.assertGreaterEqual(d["bytes_per_task"], 0, d)
        self.assertIn("sub-DAG vs flat fan-out: memory per task", md)
        # node pools: 200 tasks over 10 shapes that fit none of the simulated
        # agents; each of the 10 pools decides nodes (at most 3 each; arm's
        # 20 one-cpu tasks fit 2 nodes of 16 cpus) and its provider is asked
        # to create them, after the submit started
        pools = sim["pools"]
        self.assertNotIn("na", pools, pools)
        dec = pools["decision"][0]
        self.assertEqual(dec["sim_tasks"], 0, dec)
        self.assertEqual(len(dec["nodes"]), 10, dec)
        self.assertEqual(dec["nodes"], dict({p: 3 for p in dec["nodes"]}, arm=2), dec)
        self.assertEqual(set(dec["create"]), set(dec["nodes"]), dec)
        self.assertGreater(dec["decide_first_s"], 0, dec)
        self.assertGreaterEqual(dec["create_first_s"], dec["decide_first_s"], dec)
        self.assertIn("node pools: submit → first provider create call: last pool", md)


if __name__ == "__main__":
    harness.main()
