"""A READY task the placer cannot place says what it waits for.

issue 14: a `spot: require` step preempted (a drill) while an on-demand
agent idled stayed READY for good with the stale reason "preempted: drill"
(`drover run get`), a silent hang. Now a task that no agent in service can
take carries a reason naming what it waits for ("waiting: spot: require and
no spot agent in service"), the reason goes once it can run again, and an
explicit `spot: require` never runs on the on-demand agent. Real droverd,
real agents, a real drill.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import check_daemons, task, wait_until  # noqa: E402

WAITING_SPOT = "waiting: spot: require and no spot agent in service"


class WaitingReasonTest(harness.DroverTestCase):
    def test_preempted_spot_require_step_says_why_it_waits(self):
        c = self.c
        c.start_droverd()
        c.start_agent("spot1", cpus=2, extra=["--spot", "true", "--drill-exit"])
        c.start_agent("od1", cpus=2, extra=["--spot", "false"])
        step = {"name": "s", "command": ["sleep", "600"],
                "placement": {"spot": "require"},
                "preemption": {"grace": "1s", "max_preemptions": 5}}
        rid = c.submit({"name": "req", "steps": [step]})
        t = c.wait_task_status(rid, "s", "RUNNING")
        self.assertEqual(t["history"][-1]["agent"], "spot1", t)

        r = c.cli("agent", "preempt", "spot1", "--deadline", "2s")
        self.assertEqual(r.rc, 0, r)
        c.agents["spot1"].expected_exit = True
        # Handed back, it waits; the reason says for what (not the stale
        # "preempted: drill"), in JSON and in the table.
        t = c.wait_task(rid, "s", lambda t: t["status"] == "READY"
                        and (t.get("reason") or "").startswith(WAITING_SPOT), timeout=30,
                        what="the preempted task to show why it waits (reason now: %r)"
                        % (task(c.get_run(rid), "s").get("reason"),))
        self.assertEqual(t["preemptions"], 1, t)
        self.assertIn(WAITING_SPOT, c.cli("run", "get", rid).out)
        # The idle on-demand agent never gets it.
        wait_until(lambda: not c.agents["spot1"].alive(), 30, what="spot1 to leave (drill exit)")
        harness.holds_for(lambda: task(c.get_run(rid), "s")["status"] == "READY", 2.0,
                          interval=0.2, what="the spot: require task to stay off od1")
        t = task(c.get_run(rid), "s")
        self.assertTrue(t["reason"].startswith(WAITING_SPOT), t)
        self.assertEqual([a["agent"] for a in t["history"]], ["spot1"], t)

        # A spot agent comes: the task runs there and waits no longer.
        c.start_agent("spot2", cpus=2, extra=["--spot", "true"])
        t = c.wait_task_status(rid, "s", "RUNNING", timeout=30)
        self.assertEqual(t["history"][-1]["agent"], "spot2", t)
        self.assertFalse((t.get("reason") or "").startswith("waiting:"), t)
        self.assertEqual(c.cli("run", "cancel", rid).rc, 0)
        c.wait_run_final(rid, timeout=60)
        check_daemons(c)

    def test_no_agent_with_the_labels_says_so(self):
        """Waiting on labels no agent in service has: the reason says so and
        goes when such an agent connects."""
        c = self.c
        c.start_droverd()
        c.start_agent("plain", cpus=2)
        rid = c.submit({"name": "lab", "steps": [
            {"name": "s", "command": ["true"], "placement": {"labels": {"zone": "b"}}}]})
        c.wait_task(rid, "s", lambda t: t["status"] == "READY" and (t.get("reason") or "")
                    .startswith("waiting: no agent in service has the labels"), timeout=30,
                    what="the task to say it waits for labels")
        c.start_agent("zoned", cpus=2, labels={"zone": "b"})
        run = c.wait_run_final(rid, timeout=60)
        self.assertRunSucceeded(run)
        self.assertFalse(task(run, "s").get("reason"), task(run, "s"))
        check_daemons(c)


if __name__ == "__main__":
    harness.main()
