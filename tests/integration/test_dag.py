"""DAG execution: dependency order, parallel branches, several agents,
placement by labels."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402


def timed(name, log, seconds):
    """Script: append "NAME start NS" / "NAME end NS" around a sleep."""
    return ('echo "%s start $(date +%%s%%N)" >> %s; sleep %s; echo "%s end $(date +%%s%%N)" >> %s'
            % (name, log, seconds, name, log))


def diamond(log, branch_seconds=1.5):
    return {
        "name": "diamond",
        "steps": [
            {"name": "a", "script": timed("a", log, 0.3)},
            {"name": "b", "needs": ["a"], "script": timed("b", log, branch_seconds)},
            {"name": "c", "needs": ["a"], "script": timed("c", log, branch_seconds)},
            {"name": "d", "needs": ["b", "c"], "script": timed("d", log, 0.1)},
        ],
    }


def parse_events(log):
    """[(step, 'start'|'end', ns)] in file (= real time) order."""
    ev = []
    for line in harness.read_lines(log):
        name, kind, ns = line.split()
        ev.append((name, kind, int(ns)))
    return ev


class DagTest(harness.DroverTestCase):
    def check_diamond_order(self, log):
        ev = parse_events(log)
        pos = {}
        for i, (name, kind, _) in enumerate(ev):
            self.assertNotIn((name, kind), pos, "step %s logged %s twice: %s" % (name, kind, ev))
            pos[(name, kind)] = i
        for name in "abcd":
            self.assertIn((name, "start"), pos, "step %s never started: %s" % (name, ev))
            self.assertIn((name, "end"), pos, "step %s never ended: %s" % (name, ev))
        self.assertLess(pos[("a", "end")], pos[("b", "start")], ev)
        self.assertLess(pos[("a", "end")], pos[("c", "start")], ev)
        self.assertLess(pos[("b", "end")], pos[("d", "start")], ev)
        self.assertLess(pos[("c", "end")], pos[("d", "start")], ev)
        return ev, pos

    def test_diamond_runs_in_dependency_order(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        log = c.path("order.log")
        rid = c.submit(diamond(log))
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(run["id"], rid)
        self.assertEqual(run["name"], "diamond")
        self.assertEqual(sorted(t["name"] for t in run["tasks"]), ["a", "b", "c", "d"])
        self.assertEqual((run["task_count"], run["tasks_done"]), (4, 4))
        for t in run["tasks"]:
            self.assertEqual(t["attempts"], 1, t)
            self.assertEqual(t["exit_code"], 0, t)
            self.assertEqual(t["agent"], "w1", t)
            self.assertEqual(t["retries_used"], 0, t)
        ev, pos = self.check_diamond_order(log)
        # b and c are independent and the agent has room for both: they overlap
        self.assertLess(pos[("b", "start")], pos[("c", "end")], "b and c did not run in parallel: %s" % ev)
        self.assertLess(pos[("c", "start")], pos[("b", "end")], "b and c did not run in parallel: %s" % ev)
        # the scheduler's timestamps agree with the order
        ta, tb, tc, td = (task(run, n) for n in "abcd")
        self.assertGreaterEqual(tb["started_ms"], ta["finished_ms"])
        self.assertGreaterEqual(tc["started_ms"], ta["finished_ms"])
        self.assertGreaterEqual(td["started_ms"], max(tb["finished_ms"], tc["finished_ms"]))
        self.assertGreaterEqual(run["finished_ms"], td["finished_ms"])
        self.assertLessEqual(run["created_ms"], ta["started_ms"])
        # and the run is listed
        runs = c.runs()
        self.assertIn(rid, [r["id"] for r in runs])

    def test_wide_fan_in(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        c.start_agent("w2", cpus=4)
        log = c.path("wide.log")
        n = 40
        names = ["p%02d" % i for i in range(n)]
        steps = [{"name": "root", "script": "echo root >> %s" % log}]
        steps += [{"name": m, "needs": ["root"], "script": "echo %s >> %s" % (m, log),
                   "resources": {"cpu": "500m"}} for m in names]
        steps.append({"name": "join", "needs": names, "script": "echo join >> %s" % log})
        rid = c.submit({"name": "wide", "steps": steps})
        run = c.wait_run_final(rid, timeout=120)
        self.assertRunSucceeded(run)
        lines = harness.read_lines(log)
        self.assertEqual(lines[0], "root")
        self.assertEqual(lines[-1], "join")
        self.assertEqual(sorted(lines[1:-1]), names, "each middle step exactly once")
        self.assertEqual({t["agent"] for t in run["tasks"]}, {"w1", "w2"})

    def test_run_across_two_agents(self):
        c = self.c
        c.start_droverd()
        # one core each: the two parallel branches must use both agents
        c.start_agent("x", cpus=1)
        c.start_agent("y", cpus=1)
        log = c.path("order.log")
        rid = c.submit(diamond(log))
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.check_diamond_order(log)
        self.assertEqual({task(run, "b")["agent"], task(run, "c")["agent"]}, {"x", "y"},
                         "b and c should run on different agents: %s" % run["tasks"])
        for t in run["tasks"]:
            self.assertIn(t["agent"], ("x", "y"))
            self.assertEqual([h["agent"] for h in t["history"]], [t["agent"]], t)

    def test_labels_steer_placement(self):
        c = self.c
        c.start_droverd()
        c.start_agent("x", cpus=2, labels={"pool": "train", "zone": "a"})
        c.start_agent("y", cpus=4, labels={"pool": "batch"})
        ax, ay = c.agent("x"), c.agent("y")
        # every agent also carries spot=true|false
        self.assertEqual(ax["labels"], {"pool": "train", "zone": "a", "spot": "false"})
        self.assertEqual(ay["labels"], {"pool": "batch", "spot": "false"})
        self.assertEqual(ax["cpu_milli"], 2000)
        self.assertEqual(ax["memory_bytes"], 1 << 30)
        self.assertEqual(ax["gpus"], 0)
        self.assertTrue(ax["connected"])
        self.assertFalse(ax["drained"])
        marks = c.path("marks")
        os.makedirs(marks)
        steps = []
        # five train steps, x has room for two at a time while y sits idle
        # each step records its work dir: evidence, from inside the step,
        # of which agent ran it
        for i in range(5):
            steps.append({"name": "train%d" % i, "script": "sleep 0.3; pwd -P > %s/train%d" % (marks, i),
                          "placement": {"labels": {"pool": "train"}}})
        steps.append({"name": "both", "script": "pwd -P > %s/both" % marks,
                      "placement": {"labels": {"pool": "train", "zone": "a"}}})
        for i in range(2):
            steps.append({"name": "batch%d" % i, "script": "pwd -P > %s/batch%d" % (marks, i),
                          "placement": {"labels": {"pool": "batch"}}})
        rid = c.submit({"name": "labels", "steps": steps})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        for t in run["tasks"]:
            want = "y" if t["name"].startswith("batch") else "x"
            self.assertEqual(t["agent"], want, t)
            self.assertEqual({h["agent"] for h in t["history"]}, {want}, t)
        self.assertEqual(len(os.listdir(marks)), 8)
        for name in os.listdir(marks):
            want = "y" if name.startswith("batch") else "x"
            work = os.path.realpath(c.agent_work_dir(want)) + "/"
            pwd = harness.read_text(os.path.join(marks, name)).strip()
            self.assertTrue(pwd.startswith(work), "step %s ran in %s, not under agent %s" % (name, pwd, want))


if __name__ == "__main__":
    harness.main()
