"""Conditional retries (retries.when, retries.max_duration), skip_on_exit_code
and the run limits (top-level parallelism and timeout), with real daemons,
including a kill -9 of droverd while a run with a timeout runs."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402

# Counts this task's attempts in file F and exits with the code the list
# gives for this attempt (the last one again after the end).
COUNTED = ('n=$(cat {f} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {f}; '
           'set -- {codes}; i=1; code=0; for c in "$@"; do code=$c; '
           '[ $i -ge $n ] && break; i=$((i+1)); done; exit $code')


def counted(f, codes):
    return COUNTED.format(f=f, codes=" ".join(str(c) for c in codes))


class RetryRulesTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=16)

    def test_retry_conditional_argo(self):
        """Argo examples/retry-conditional.yaml: retry only while the last exit
        code is greater than 1 (limit 10). Here attempts exit 2, 2, then 1: the
        third is not retried although the limit allows it."""
        c = self.c
        f = c.path("count")
        rid = c.submit({"name": "retry-conditional", "steps": [
            {"name": "retry", "script": counted(f, [2, 2, 1, 0]),
             "retries": {"limit": 10, "backoff": "100ms",
                         "when": "{{exit_code}} > 1 && {{reason}} != 'OOMKilled'"}},
        ]})
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "FAILED", run)
        t = task(run, "retry")
        self.assertEqual(t["attempts"], 3, t)
        self.assertEqual([a["exit_code"] for a in t["history"]], [2, 2, 1], t)
        self.assertIn("not retried: retries.when was false (exit_code=1, reason=Error", t["reason"])
        self.assertEqual(harness.read_text(f).strip(), "3")

    def test_retry_when_attempt_and_signal(self):
        """{{attempt}} bounds the retries by itself; a step killed by a signal
        has {{signal}} set and {{reason}} Signaled."""
        c = self.c
        f = c.path("count")
        rid = c.submit({"name": "by-attempt", "steps": [
            {"name": "a", "script": counted(f, [1]),
             "retries": {"limit": 10, "backoff": "100ms", "when": "{{attempt}} < 2"}},
            {"name": "sig", "script": "kill -9 $$",
             "retries": {"limit": 5, "backoff": "100ms",
                         "when": "{{signal}} == 0 || {{reason}} != Signaled"}},
        ]})
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "FAILED", run)
        self.assertEqual(task(run, "a")["attempts"], 2, task(run, "a"))
        s = task(run, "sig")
        self.assertEqual(s["attempts"], 1, s)
        self.assertIn("reason=Signaled, signal=9, attempt=1", s["reason"])

    def test_max_duration_stops_retries(self):
        c = self.c
        f = c.path("count")
        rid = c.submit({"name": "max-duration", "steps": [
            {"name": "slow", "script": "sleep 1; " + counted(f, [1]),
             "retries": {"limit": 100, "backoff": "200ms", "factor": 1,
                         "max_duration": "3s"}},
        ]})
        run = c.wait_run_final(rid, timeout=120)
        self.assertEqual(run["status"], "FAILED", run)
        t = task(run, "slow")
        h = t["history"]
        self.assertGreaterEqual(len(h), 2, t)
        self.assertLess(len(h), 10, "max_duration 3s ignored: %s" % t)
        first = h[0]["started_ms"]
        for a in h:
            self.assertLessEqual(a["started_ms"] - first, 3000 + 500,
                                 "a retry started after max_duration: %s" % h)
        self.assertIn("not retried: retries.max_duration 3s passed", t["reason"])

    def test_skip_on_exit_code_with_dependant(self):
        """Airflow's BashOperator skip_on_exit_code (99 by default there)."""
        c = self.c
        rid = c.submit({"name": "skip-code", "steps": [
            {"name": "check", "script": "exit 99", "skip_on_exit_code": [99],
             "retries": 3},
            {"name": "after", "needs": ["check"], "script": "true"},
            {"name": "other", "script": "exit 3", "skip_on_exit_code": 99},
        ]})
        run = c.wait_run_final(rid)
        chk = task(run, "check")
        self.assertEqual(chk["status"], "SKIPPED", chk)
        self.assertEqual(chk["attempts"], 1, "a skip code is not retried: %s" % chk)
        self.assertEqual(chk["reason"], "exit code 99 (skip_on_exit_code)")
        after = task(run, "after")
        self.assertEqual(after["status"], "SKIPPED", after)
        self.assertIn("check", after["reason"])
        self.assertEqual(task(run, "other")["status"], "FAILED", run)
        self.assertEqual(run["status"], "FAILED", run)

    def test_run_parallelism_over_fan_out(self):
        c = self.c
        marks = c.path("marks")
        rid = c.submit({"name": "par", "parallelism": 2, "steps": [
            {"name": "fan", "for_each": [str(i) for i in range(10)],
             "script": 'echo "start {{item}} $(date +%%s%%N)" >> %s; sleep 0.4; '
                       'echo "end {{item}} $(date +%%s%%N)" >> %s' % (marks, marks)},
        ]})
        run = c.wait_run_final(rid, timeout=180)
        self.assertRunSucceeded(run)
        events = []
        for line in harness.read_lines(marks):
            kind, item, ns = line.split()
            events.append((int(ns), 0 if kind == "end" else 1, item))
        self.assertEqual(len(events), 20, events)
        running, most = 0, 0
        for _, start, _ in sorted(events):
            running += 1 if start else -1
            most = max(most, running)
        self.assertLessEqual(most, 2, "more than 2 tasks ran at once: %s" % sorted(events))
        self.assertEqual(most, 2, "parallelism 2 never reached: %s" % sorted(events))

    def test_run_timeout_runs_finally(self):
        c = self.c
        pidf, fin = c.path("pid"), c.path("finally")
        rid = c.submit({"name": "timed", "timeout": "3s", "steps": [
            {"name": "long", "script": "echo $$ > %s; sleep 120" % pidf},
            {"name": "next", "needs": ["long"], "script": "true"},
        ], "finally": [
            {"name": "cleanup", "script": "echo '{{run.status}}' > %s" % fin},
        ]})
        run = c.wait_run_final(rid, timeout=60)
        self.assertEqual(run["status"], "FAILED", run)
        self.assertEqual(run["reason"], "run timeout 3s", run)
        for name in ("long", "next"):
            t = task(run, name)
            self.assertEqual(t["status"], "CANCELLED", t)
            self.assertEqual(t["reason"], "run timeout 3s", t)
        self.assertEqual(task(run, "cleanup")["status"], "SUCCEEDED", run)
        self.assertEqual(harness.read_text(fin).strip(), "failed")
        shown = c.cli("run", "get", rid)
        self.assertEqual(shown.rc, 0, shown)
        self.assertIn("reason:    run timeout 3s", shown.out)
        pid = int(harness.read_text(pidf))

        def gone():
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                return True
        harness.wait_until(gone, timeout=30, what="the timed-out step's process to be killed")

    def test_run_timeout_across_droverd_kill(self):
        """kill -9 of droverd while a run with a timeout runs; its deadline
        passes while droverd is down: the restarted droverd stops it at once."""
        c = self.c
        rid = c.submit({"name": "timed-kill", "timeout": "4s", "steps": [
            {"name": "long", "script": "sleep 120"},
        ], "finally": [{"name": "cleanup", "script": "true"}]})
        c.wait_task_status(rid, "long", "RUNNING")
        created = c.get_run(rid)["created"]
        c.kill_droverd()
        deadline = time.time() + 5.0
        harness.wait_until(lambda: time.time() > deadline, timeout=30,
                           what="the run's deadline to pass while droverd is down")
        c.start_droverd()
        run = c.wait_run_final(rid, timeout=30)
        self.assertEqual(run["status"], "FAILED", run)
        self.assertEqual(run["reason"], "run timeout 4s", run)
        self.assertEqual(task(run, "long")["status"], "CANCELLED", run)
        self.assertEqual(task(run, "cleanup")["status"], "SUCCEEDED", run)
        self.assertTrue(created, run)

    def test_parallelism_durable_across_droverd_kill(self):
        """The per-run counter is rebuilt at load: after a kill -9 with two
        tasks running, a third does not start beside them."""
        c = self.c
        marks = c.path("marks")
        rid = c.submit({"name": "par-kill", "parallelism": 2, "steps": [
            {"name": "fan", "for_each": [str(i) for i in range(5)],
             "script": 'echo "start {{item}} $(date +%%s%%N)" >> %s; sleep 2; '
                       'echo "end {{item}} $(date +%%s%%N)" >> %s' % (marks, marks)},
        ]})
        harness.wait_until(lambda: os.path.exists(marks) and
                           len(harness.read_lines(marks)) >= 2, timeout=60,
                           what="two items to start")
        c.restart_droverd()
        run = c.wait_run_final(rid, timeout=180)
        self.assertRunSucceeded(run)
        running, most = 0, 0
        events = []
        for line in harness.read_lines(marks):
            kind, item, ns = line.split()
            events.append((int(ns), 0 if kind == "end" else 1))
        for _, start in sorted(events):
            running += 1 if start else -1
            most = max(most, running)
        self.assertLessEqual(most, 2, sorted(events))


if __name__ == "__main__":
    harness.main()
