"""Cancelling runs: running processes die, nothing downstream starts,
resources are given back."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402


class CancelTest(harness.DroverTestCase):
    def test_cancel_running_step(self):
        c = self.c
        c.start_droverd()
        # one core: if the cancelled step's core is not given back, the
        # next run never starts
        c.start_agent("w1", cpus=1)
        pidfile = c.path("pid")
        marker = c.path("downstream")
        rid = c.submit({"name": "long", "steps": [
            {"name": "long", "script": "echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 300"
                                       % (pidfile, pidfile, pidfile)},
            {"name": "after", "needs": ["long"], "script": "touch %s" % marker},
            {"name": "after2", "needs": ["after"], "script": "touch %s" % marker},
        ]})
        harness.wait_until(lambda: os.path.exists(pidfile), timeout=60, what="the step to start")
        pid = int(harness.read_text(pidfile).strip())
        c.wait_task_status(rid, "long", "RUNNING")
        self.assertTrue(harness.pid_alive(pid))
        a = harness.wait_until(lambda: (lambda a: a if a["running"] == 1 else None)(c.agent("w1")),
                               timeout=10, what="w1 to show one running step")
        self.assertEqual(a["used_cpu_milli"], 1000, a)
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        run = c.wait_run_final(rid, timeout=60)
        self.assertEqual(run["status"], "CANCELLED", run)
        self.assertEqual(task(run, "long")["status"], "CANCELLED", run)
        harness.wait_until(lambda: not harness.pid_alive(pid), timeout=30,
                           what="the cancelled step's process %d to be gone" % pid)
        for name in ("after", "after2"):
            t = task(run, name)
            self.assertIn(t["status"], ("CANCELLED", "SKIPPED"), t)
            self.assertEqual(t["attempts"], 0, t)
        self.assertFalse(os.path.exists(marker), "a step downstream of a cancelled one ran")
        harness.wait_until(lambda: (lambda a: a["running"] == 0 and a["used_cpu_milli"] == 0)(c.agent("w1")),
                           timeout=30, what="w1 to show nothing running after the cancel")
        r = c.cli("run", "watch", rid, timeout=30)
        self.assertEqual(r.rc, 1, "watch of a cancelled run: %r" % r)
        # the run stays cancelled, and its downstream never starts later
        harness.holds_for(lambda: c.get_run(rid)["status"] == "CANCELLED", 1.0)
        self.assertFalse(os.path.exists(marker))
        # the agent's core is free again
        rid2 = c.submit({"name": "next", "steps": [{"name": "quick", "script": "true"}]})
        run2 = c.wait_run_final(rid2, timeout=60)
        self.assertRunSucceeded(run2)

    def test_cancel_run_waiting_for_placement(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=1, gpus=0)
        marker = c.path("ran")
        rid = c.submit({"name": "stuck", "steps": [
            {"name": "gpu", "script": "touch %s" % marker, "resources": {"gpu": 1}},
        ]})
        c.wait_task_status(rid, "gpu", "READY")
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        run = c.wait_run_final(rid, timeout=30)
        self.assertEqual(run["status"], "CANCELLED", run)
        t = task(run, "gpu")
        self.assertEqual(t["status"], "CANCELLED", t)
        self.assertEqual(t["attempts"], 0, t)
        # a GPU agent arriving later does not run it
        c.start_agent("g1", cpus=1, gpus=1)
        harness.holds_for(lambda: not os.path.exists(marker)
                          and task(c.get_run(rid), "gpu")["status"] == "CANCELLED", 1.5,
                          what="cancelled step staying unstarted")

    def test_cancel_during_retry_backoff(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=1)
        tries = c.path("tries")
        marker = c.path("downstream")
        rid = c.submit({"name": "backoff", "steps": [
            {"name": "flaky", "script": "echo x >> %s; exit 1" % tries,
             "retries": {"limit": 5, "backoff": "3s"}},
            {"name": "after", "needs": ["flaky"], "script": "touch %s" % marker},
        ]})
        c.wait_task(rid, "flaky", lambda t: t["retry_at_ms"] > 0 and t["status"] != "RUNNING",
                    what="flaky to fail once and wait for its retry")
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        run = c.wait_run_final(rid, timeout=30)
        self.assertEqual(run["status"], "CANCELLED", run)
        self.assertEqual(task(run, "flaky")["status"], "CANCELLED", run)
        # the pending retry never fires, not even after a droverd restart
        c.kill_droverd()
        c.start_droverd()
        harness.holds_for(lambda: c.get_run(rid)["status"] == "CANCELLED"
                          and len(harness.read_lines(tries)) == 1, 4.0,
                          what="the cancelled run staying cancelled with no further attempt")
        t = task(c.get_run(rid), "flaky")
        self.assertEqual(t["attempts"], 1, t)
        self.assertFalse(os.path.exists(marker))

    def test_cancel_survives_droverd_restart(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=1)
        pidfile = c.path("pid")
        marker = c.path("downstream")
        rid = c.submit({"name": "long", "steps": [
            {"name": "long", "script": "echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 300"
                                       % (pidfile, pidfile, pidfile)},
            {"name": "after", "needs": ["long"], "script": "touch %s" % marker},
        ]})
        harness.wait_until(lambda: os.path.exists(pidfile), timeout=60, what="the step to start")
        pid = int(harness.read_text(pidfile).strip())
        c.wait_task_status(rid, "long", "RUNNING")
        self.assertEqual(c.cli("run", "cancel", rid).rc, 0)
        c.wait_run_status(rid, "CANCELLED", timeout=30)
        c.kill_droverd()
        c.start_droverd()
        harness.wait_until(lambda: not harness.pid_alive(pid), timeout=30,
                           what="the cancelled step's process %d to be gone" % pid)
        run = c.get_run(rid)
        self.assertEqual(run["status"], "CANCELLED", run)
        self.assertEqual(task(run, "long")["status"], "CANCELLED", run)
        self.assertFalse(os.path.exists(marker))
        rid2 = c.submit({"name": "next", "steps": [{"name": "quick", "script": "true"}]})
        self.assertRunSucceeded(c.wait_run_final(rid2, timeout=60))

    def test_cancel_unknown_run_is_an_error(self):
        c = self.c
        c.start_droverd()
        r = c.cli("run", "cancel", "no-such-run")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("drover: error:", r.err)


if __name__ == "__main__":
    harness.main()
