"""A READY task the placer cannot place says what it waits for.

issue 14: a `spot: require` step preempted (a drill) while an on-demand
agent idled stayed READY for good with the stale reason "preempted: drill"
(`drover run get`), a silent hang. Now a task that no agent in service can
take carries a reason naming what it waits for ("waiting: spot: require and
no spot agent in service"), the reason goes once it can run again, and an
explicit `spot: require` never runs on the on-demand agent. Real droverd,
real agents, a real drill.

issue 18: every READY task says why it waits, with numbers (GPUs wanted
against the largest agent, how many agents lack which label, the run's
parallelism, all agents that fit busy); `drover status` counts them by
reason and `drover run watch` prints a line per reason.
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

    def test_every_waiting_step_says_why_and_status_counts_them(self):
        """issue 18: a gpu step on a cpu fleet, a label no agent has, a run
        at its parallelism and a step waiting for room each say why (run
        get, JSON and table); `drover status` counts the READY tasks by
        reason; `run watch` prints a line per reason with its count; after
        kill -9 of droverd the reasons and counts are the same."""
        c = self.c
        c.start_droverd()
        c.start_agent("cpu1", cpus=2, gpus=0, memory="1Gi")
        gpu = c.submit({"name": "gpu", "steps": [
            {"name": "train", "command": ["true"], "resources": {"cpu": 1, "gpu": 1}}]})
        lab = c.submit({"name": "lab", "steps": [
            {"name": "t", "command": ["true"], "placement": {"labels": {"pool": "train"}}}]})
        par = c.submit({"name": "par", "parallelism": 1, "steps": [
            {"name": "s", "command": ["sleep", "600"], "resources": {"cpu": 1},
             "for_each": "[1, 2, 3]"}]})
        c.wait_task_status(par, "s[0]", "RUNNING")
        big = c.submit({"name": "big", "steps": [
            {"name": "b", "command": ["true"], "resources": {"cpu": 2}}]})
        want = {
            (gpu, "train"): "waiting: no agent in service offers gpus: 1 (the largest has 0; "
                            "1 agent)",
            (lab, "t"): "waiting: no agent in service has the labels the step asks for: "
                        "1 of 1 agent lacks pool=train",
            (par, "s[1]"): "waiting: run parallelism 1 reached (1 running)",
            (par, "s[2]"): "waiting: run parallelism 1 reached (1 running)",
            (big, "b"): "waiting: the one agent that fits is busy (the most free cpu is 1, "
                        "2 wanted)",
        }

        def reasons_right():
            for (rid, name), reason in want.items():
                t = task(c.get_run(rid), name)
                if t["status"] != "READY" or t.get("reason") != reason:
                    return None
            return True

        def counts_right():
            st = c.cli_json("status")
            got = {w["reason"]: w["count"] for w in st["waiting"]}
            return st if st["waiting_total"] == 5 and got == {
                want[(gpu, "train")][9:]: 1, want[(lab, "t")][9:]: 1,
                want[(par, "s[1]")][9:]: 2, want[(big, "b")][9:]: 1} else None

        for attempt in ("before", "after kill -9 of droverd"):
            wait_until(reasons_right, 30, what="every waiting step to say why (%s): %r" % (
                attempt, [(n, task(c.get_run(r), n).get("reason")) for r, n in want]))
            wait_until(counts_right, 30, what="status to count them (%s): %r" % (
                attempt, c.cli_json("status").get("waiting")))
            table = c.cli("status").out
            self.assertIn("WAITING: 5 READY tasks", table)
            self.assertRegex(table, r"\n +2  run parallelism 1 reached \(1 running\)\n")
            out = c.cli("run", "get", gpu).out
            self.assertIn("no agent in service offers gpus: 1", out)
            if attempt == "before":
                c.restart_droverd()
                c.wait_agent_connected("cpu1")

        # run watch (piped: line mode): a line per reason with its count.
        p = c.popen_cli("run", "watch", par)
        try:
            data, ok = harness.read_with_timeout(
                p, rb"\d\d:\d\d:\d\d\.\d{3} 2 waiting: run parallelism 1 reached "
                   rb"\(1 running\)\n", timeout=30)
            self.assertTrue(ok, data)
        finally:
            p.kill()
            p.communicate()
        for rid in (big, gpu, lab, par):  # big first: it would run once par's room is free
            self.assertEqual(c.cli("run", "cancel", rid).rc, 0)
        for rid in (gpu, lab, par, big):
            c.wait_run_final(rid, timeout=60)
        wait_until(lambda: c.cli_json("status")["waiting_total"] == 0, 30,
                   what="no READY task left to count")
        check_daemons(c)


if __name__ == "__main__":
    harness.main()
