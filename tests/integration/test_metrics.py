"""droverd's metrics (README "Metrics") through `drover metrics`, on real
daemons: pipelines that succeed, fail and wait, a checkpointing training
step taken off a spot agent by a preemption drill and resumed elsewhere, a
spec refused over a limit, then droverd killed with -9 and restarted. At
each point the text passes `promtool check metrics` (the format and
Prometheus' naming rules) and its values are what happened: tasks and runs
by status as `drover run get` shows them, the preemption counted once,
checkpoints and their bytes, the dispatch histogram counting every start,
agents by state and class during the drill, READY tasks by reason as
`drover status` words them, the event log's extent as `drover events`
shows it. The alert rules shipped in docs/prometheus/ pass `promtool check
rules` and their unit tests (`promtool test rules`).
"""
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import (SOURCE_DIR, DroverTestCase, bin_path, main, task, wait_final,
                     wait_until)

TRAIN = os.path.join(SOURCE_DIR, "examples", "spot", "train_sgd.py")
LOCAL = os.path.join(SOURCE_DIR, "providers", "local")
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULES = os.path.join(SOURCE_DIR, "docs", "prometheus", "drover-alerts.yml")
RULES_TEST = os.path.join(SOURCE_DIR, "docs", "prometheus", "drover-alerts.test.yml")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """{(name, frozenset(labels)): value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, "unparsable line %r" % line
        labels = frozenset((k, unescape(v)) for k, v in LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def get(metrics, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in metrics, "no %s%r in the metrics" % (name, labels)
    return metrics[key]


def family(metrics, name):
    """{frozenset(labels): value} of every sample of one metric."""
    return {labels: v for (n, labels), v in metrics.items() if n == name}


@unittest.skipUnless(os.access(PROMTOOL, os.X_OK), "promtool not installed")
class MetricsTest(DroverTestCase):
    def scrape(self):
        r = self.c.cli("metrics")
        self.assertEqual(r.rc, 0, r)
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=r.out, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0,
                         "promtool check metrics: %s%s\n%s" % (p.stdout, p.stderr, r.out))
        return parse(r.out)

    def assert_tasks_match_runs(self, m):
        """drover_tasks and drover_runs by status are what `run get` shows."""
        tasks, runs = {}, {}
        for r in self.c.runs():
            run = self.c.get_run(r["id"])
            runs[run["status"].lower()] = runs.get(run["status"].lower(), 0) + 1
            for t in run["tasks"]:
                tasks[t["status"].lower()] = tasks.get(t["status"].lower(), 0) + 1
        got = {dict(k)["status"]: int(v) for k, v in family(m, "drover_tasks").items() if v}
        self.assertEqual(got, tasks)
        got = {dict(k)["status"]: int(v) for k, v in family(m, "drover_runs").items() if v}
        self.assertEqual(got, runs)
        return tasks

    def test_metrics_tell_what_happened(self):
        c = self.c
        c.start_droverd(extra=["--max-steps", "20"])
        c.start_agent("spot1", cpus=2, extra=["--spot", "true", "--price", "0.3"])
        c.start_agent("od1", cpus=2, extra=["--spot", "false", "--price", "1.2"])
        c.wait_agent_connected("spot1")
        c.wait_agent_connected("od1")

        m = self.scrape()
        self.assertEqual(get(m, "drover_agents", state="connected", **{"class": "spot"}), 1)
        self.assertEqual(get(m, "drover_agents", state="connected", **{"class": "on_demand"}), 1)
        self.assertEqual(sum(family(m, "drover_tasks").values()), 0)
        self.assertEqual(get(m, "drover_dispatch_latency_seconds_count"), 0)

        # a pipeline: a fan-out, a failure, a step skipped after it
        pipe = c.submit({"name": "pipe", "steps": [
            {"name": "a", "script": "true"},
            {"name": "each", "needs": ["a"], "for_each": ["x", "y", "z"],
             "script": "echo {{item}}"},
            {"name": "bad", "needs": ["a"], "script": "exit 3"},
            {"name": "after", "needs": ["bad"], "script": "true"},
        ]})
        self.assertEqual(wait_final(c, pipe)["status"], "FAILED")
        # a checkpointing step on the spot agent, taken away by a drill
        train = c.submit({"name": "train", "steps": [{
            "name": "train",
            "command": ["python3", TRAIN, "--epochs", "20", "--epoch-seconds", "0.3"],
            "outputs": {"artifacts": ["model"]}, "checkpoint": {"keep": 2},
            "preemption": {"grace": "20s", "max_preemptions": 5},
            "placement": {"spot": "prefer"}}]})
        c.wait_task(train, "train", lambda t: t.get("checkpoint") and t["checkpoint"]["step"] >= 3
                    and t.get("agent") == "spot1", timeout=60,
                    what="a checkpoint on spot1")
        r = c.cli("agent", "preempt", "spot1", "--deadline", "20s")
        self.assertEqual(r.rc, 0, r)
        wait_until(lambda: get(self.scrape(), "drover_agents", state="preempting",
                               **{"class": "spot"}) == 1,
                   timeout=30, what="the metrics to show spot1 preempting")
        run = wait_final(c, train, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual(t["preemptions"], 1, t)
        # a step no agent can take: READY, waiting, with the placer's words
        gpu = c.submit({"name": "gpu", "steps": [
            {"name": "g", "script": "true", "resources": {"gpu": 1}}]})
        c.wait_task_status(gpu, "g", "READY")
        # a spec over --max-steps: refused, counted
        r = c.cli("submit", c.write_spec({"name": "big", "steps": [
            {"name": "s%d" % i, "script": "true"} for i in range(21)]}))
        self.assertNotEqual(r.rc, 0, r)

        m = self.scrape()
        tasks = self.assert_tasks_match_runs(m)
        self.assertEqual(tasks.get("ready"), 1, tasks)
        self.assertEqual(get(m, "drover_preemptions_total"), 1)
        self.assertEqual(get(m, "drover_attempts_lost_total"), 0)
        self.assertGreaterEqual(get(m, "drover_checkpoints_total"), 1)
        self.assertGreater(get(m, "drover_checkpoint_bytes_total"), 0)
        self.assertEqual(get(m, "drover_refusals_total", kind="over_limits"), 1)
        # every attempt that started was observed once: pipe's 6 ran (a,
        # 3 items, bad; `after` was skipped), train's two attempts
        started = sum(1 for r in c.runs() for t in c.get_run(r["id"])["tasks"]
                      for h in t.get("history") or [] if h.get("started_ms"))
        self.assertGreaterEqual(started, 7)
        self.assertEqual(get(m, "drover_dispatch_latency_seconds_count"), started)
        self.assertEqual(get(m, "drover_dispatch_latency_seconds_bucket", le="+Inf"), started)
        self.assertGreater(get(m, "drover_dispatch_latency_seconds_sum"), 0)
        self.assertGreater(get(m, "drover_commit_duration_seconds_count"), 0)
        waiting = family(m, "drover_tasks_waiting")
        self.assertEqual(sum(waiting.values()), 1, waiting)
        reason = dict(next(iter(waiting)))["reason"]
        self.assertIn("gpus", reason)
        status = c.cli_json("status")
        self.assertEqual([(w["reason"], w["count"]) for w in status["waiting"]], [(reason, 1)])
        self.assertGreaterEqual(get(m, "drover_blobs"), 1)
        self.assertGreater(get(m, "drover_blob_bytes"), 0)
        evs = c.cli_json("events", "--since", "0")
        self.assertEqual(get(m, "drover_events_first_seq"), 1)
        self.assertGreaterEqual(get(m, "drover_events_next_seq"), evs[-1]["seq"] + 1)
        self.assertEqual(get(m, "drover_events"), get(m, "drover_events_next_seq") - 1)
        wait_until(lambda: get(self.scrape(), "drover_agents", state="connected",
                               **{"class": "spot"}) == 1,
                   timeout=40, what="spot1 back in service after its drill")

        # kill -9: counters start again; what is counted is the same
        c.cli("run", "cancel", gpu)
        wait_final(c, gpu)
        before = self.scrape()
        c.restart_droverd()
        c.wait_agent_connected("od1")
        m = self.scrape()
        self.assert_tasks_match_runs(m)
        self.assertEqual(family(m, "drover_tasks"), family(before, "drover_tasks"))
        self.assertEqual(family(m, "drover_runs"), family(before, "drover_runs"))
        self.assertEqual(get(m, "drover_preemptions_total"), 0)
        self.assertEqual(get(m, "drover_blob_bytes"), get(before, "drover_blob_bytes"))
        self.assertEqual(get(m, "drover_blobs"), get(before, "drover_blobs"))

    def test_pool_nodes_and_demand(self):
        """A pool grown by waiting steps (the real `local` provider starts
        real agents): its nodes by state, demand and waiting tasks in the
        metrics are what `drover pools` shows, and go when the nodes do."""
        c = self.c
        pool = {"name": "cpu", "node": {"cpu": 1, "memory": "1Gi", "labels": {"pool": "cpu"}},
                "min": 0, "max": 2, "idle": "1s", "boot-timeout": "60s", "price": 0.5,
                "provider": {"command": LOCAL,
                             "args": ["--state-dir", c.path("provider-state"), "--agent",
                                      bin_path("drover-agent"), "--", "--heartbeat", "200ms"]}}
        c.start_droverd(extra=["--pools", json.dumps([pool])])
        gate = c.path("go")
        rid = c.submit({"name": "fan", "steps": [{
            "name": "work", "for_each": {"range": 4}, "resources": {"cpu": 1},
            "placement": {"labels": {"pool": "cpu"}},
            "command": ["sh", "-c", "while [ ! -e %s ]; do sleep 0.1; done" % gate]}]})

        last = []

        def same():
            m = self.scrape()
            p = c.cli_json("pools")[0]
            states = {}
            for n in p["nodes"]:
                states[n["state"]] = states.get(n["state"], 0) + 1
            got = {dict(k)["state"]: int(v) for k, v in family(m, "drover_pool_nodes").items()
                   if v and dict(k)["pool"] == "cpu"}
            if (got != states or get(m, "drover_pool_demand_nodes", pool="cpu") != p["demand"]
                    or get(m, "drover_pool_waiting_tasks", pool="cpu") != p["waiting"]):
                return None
            last[:] = [states, got, p["demand"], p["waiting"],
                       get(m, "drover_tasks", status="ready")]
            # 2 nodes up running 2 steps, 2 READY (the pool at its max: no
            # demand, and its nodes would take none of them)
            return m if (states.get("up") == 2 and get(m, "drover_tasks", status="ready") == 2
                         ) else None
        try:
            m = wait_until(same, timeout=90, what="2 nodes up, the metrics as drover pools")
        except AssertionError as e:
            raise AssertionError("%s (last: nodes, their metrics, demand, waiting, READY: %r)"
                                 % (e, last)) from None
        self.assertEqual(get(m, "drover_pool_cost_per_hour", pool="cpu"), 1.0)
        self.assertEqual(get(m, "drover_agents", state="connected", **{"class": "on_demand"}), 2)
        open(gate, "w").close()
        self.assertRunSucceeded(wait_final(c, rid, timeout=120))
        wait_until(lambda: get(self.scrape(), "drover_pool_nodes", pool="cpu", state="up") == 0
                   or None, timeout=60, what="the idle nodes to go")

    def test_usage_and_an_empty_droverd(self):
        """A droverd with nothing yet: every family there, zeros, valid."""
        c = self.c
        c.start_droverd()
        r = c.cli("metrics", "extra")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("unexpected argument 'extra'", r.err)
        m = self.scrape()
        for name in ("drover_tasks", "drover_runs", "drover_agents", "drover_refusals_total"):
            self.assertTrue(family(m, name), name)
            self.assertEqual(sum(family(m, name).values()), 0, name)
        self.assertEqual(get(m, "drover_build_info", version=c.cli_json("status")["version"]), 1)

    def test_alert_rules(self):
        p = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS", p.stdout)
        p = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST], capture_output=True,
                           text=True, timeout=120, cwd=os.path.dirname(RULES_TEST))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    main()
