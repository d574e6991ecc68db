"""Placement: resources (gpu, cpu, memory), no oversubscription, drain."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402

# How long we watch that something does NOT happen.
OBSERVE_S = 2.0


class PlacementTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()

    def assertStaysReady(self, rid, name, marker=None):
        c = self.c
        c.wait_task_status(rid, name, "READY")

        def still_waiting():
            t = task(c.get_run(rid), name)
            if marker and os.path.exists(marker):
                return False
            return t["status"] == "READY" and t["attempts"] == 0 and t

        harness.holds_for(still_waiting, OBSERVE_S, interval=0.2,
                          what="step %s staying READY and unstarted" % name)

    def test_gpu_step_waits_for_gpu_agent(self):
        c = self.c
        c.start_agent("cpu-only", cpus=4, gpus=0)
        marker = c.path("trained")
        rid = c.submit({"name": "gpu", "steps": [
            {"name": "train", "script": "touch %s" % marker, "resources": {"gpu": 1}},
        ]})
        self.assertStaysReady(rid, "train", marker)
        self.assertFalse(os.path.exists(marker))
        self.assertNotIn(c.get_run(rid)["status"], harness.FINAL_RUN)
        c.start_agent("gpu1", cpus=4, gpus=1)
        self.assertEqual(c.agent("gpu1")["gpus"], 1)
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual(t["agent"], "gpu1", t)
        self.assertEqual([h["agent"] for h in t["history"]], ["gpu1"], t)
        self.assertTrue(os.path.exists(marker))

    def test_step_larger_than_any_agent_waits(self):
        c = self.c
        c.start_agent("w1", cpus=4, memory="1Gi")
        small = c.path("small")
        big = c.path("big")
        rid = c.submit({"name": "too-big", "steps": [
            {"name": "huge-cpu", "script": "touch %s" % big, "resources": {"cpu": 64}},
            {"name": "huge-mem", "script": "touch %s" % big, "resources": {"memory": "4Gi"}},
            {"name": "small", "script": "touch %s" % small, "resources": {"cpu": 1, "memory": "64Mi"}},
        ]})
        # the rest of the run is not held up by the step that cannot be placed
        c.wait_task_status(rid, "small", "SUCCEEDED")
        self.assertStaysReady(rid, "huge-cpu", big)
        self.assertStaysReady(rid, "huge-mem", big)
        self.assertEqual(c.get_run(rid)["status"], "RUNNING")
        self.assertFalse(os.path.exists(big))
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "CANCELLED", run)

    def test_no_oversubscription(self):
        c = self.c
        c.start_agent("w1", cpus=2)
        log = c.path("spans")
        steps = [{"name": "s%d" % i,
                  "script": 'echo "+ $(date +%%s%%N)" >> %s; sleep 0.4; echo "- $(date +%%s%%N)" >> %s'
                            % (log, log)}
                 for i in range(6)]
        rid = c.submit({"name": "six", "steps": steps})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        running, peak = 0, 0
        for line in harness.read_lines(log):
            running += 1 if line.startswith("+") else -1
            peak = max(peak, running)
        self.assertLessEqual(peak, 2, "more steps ran at once than the agent has cores")
        self.assertEqual(peak, 2, "independent steps did not use both cores")

    def test_memory_is_reserved(self):
        c = self.c
        c.start_agent("w1", cpus=4, memory="1Gi")
        log = c.path("spans")
        steps = [{"name": "m%d" % i, "resources": {"cpu": "100m", "memory": "600Mi"},
                  "script": 'echo "+" >> %s; sleep 0.3; echo "-" >> %s' % (log, log)}
                 for i in range(3)]
        rid = c.submit({"name": "mem", "steps": steps})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        running, peak = 0, 0
        for line in harness.read_lines(log):
            running += 1 if line == "+" else -1
            peak = max(peak, running)
        self.assertEqual(peak, 1, "two 600Mi steps ran at once on a 1Gi agent")

    def test_drained_agent_gets_no_new_steps(self):
        c = self.c
        c.start_agent("d1", cpus=4)
        c.start_agent("d2", cpus=4)
        r = c.cli("agent", "drain", "d1")
        self.assertEqual(r.rc, 0, r)
        harness.wait_until(lambda: c.agent("d1")["drained"], timeout=10, what="d1 drained")
        self.assertFalse(c.agent("d2")["drained"])
        self.assertTrue(c.agent("d1")["connected"])
        steps = [{"name": "s%d" % i, "script": "sleep 0.2"} for i in range(6)]
        rid = c.submit({"name": "drained", "steps": steps})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        for t in run["tasks"]:
            self.assertEqual(t["agent"], "d2", t)
            self.assertEqual({h["agent"] for h in t["history"]}, {"d2"}, t)
        # a drain is not forgotten when droverd restarts
        c.kill_droverd()
        c.start_droverd()
        c.wait_agent_connected("d1")
        c.wait_agent_connected("d2")
        self.assertTrue(c.agent("d1")["drained"], "d1 forgot its drain over a droverd restart")
        rid = c.submit({"name": "drained-again", "steps": steps})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual({t["agent"] for t in run["tasks"]}, {"d2"}, run["tasks"])
        # draining an unknown agent is an error
        r = c.cli("agent", "drain", "no-such-agent")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("drover: error:", r.err)

    def test_drain_lets_running_steps_finish(self):
        c = self.c
        c.start_agent("d1", cpus=2)
        go = c.path("go")
        rid = c.submit({"name": "running", "steps": [
            {"name": "long", "script": "while [ ! -e %s ]; do sleep 0.05; done" % go},
            {"name": "next", "needs": ["long"], "script": "true"},
        ]})
        c.wait_task_status(rid, "long", "RUNNING")
        r = c.cli("agent", "drain", "d1")
        self.assertEqual(r.rc, 0, r)
        harness.wait_until(lambda: c.agent("d1")["drained"], timeout=10, what="d1 drained")
        with open(go, "w"):
            pass
        # long finishes where it runs; next waits for an agent that is not drained
        t = c.wait_task_status(rid, "long", "SUCCEEDED")
        self.assertEqual(t["agent"], "d1")
        self.assertEqual(len(t["history"]), 1, t)
        self.assertStaysReady(rid, "next")
        c.start_agent("d2", cpus=2)
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "next")["agent"], "d2")


if __name__ == "__main__":
    harness.main()
