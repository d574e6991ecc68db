"""Retries with backoff, exhausted retries, timeouts, and what a step sees
in its environment."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402


class RetryTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=4)

    def test_fails_twice_then_succeeds_with_backoff(self):
        c = self.c
        counter = c.path("count")
        attempts_log = c.path("attempts")
        script = ('n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; '
                  'echo "$DROVER_ATTEMPT" >> %s; echo "try $n"; [ "$n" -ge 3 ]'
                  % (counter, counter, attempts_log))
        rid = c.submit({"name": "flaky", "steps": [
            {"name": "flaky", "script": script,
             "retries": {"limit": 3, "backoff": "1s", "factor": 2}},
            {"name": "after", "needs": ["flaky"], "script": "true"},
        ]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        t = task(run, "flaky")
        self.assertEqual(t["attempts"], 3, t)
        self.assertEqual(t["retries_used"], 2, t)
        self.assertEqual(t["exit_code"], 0, t)
        self.assertEqual(harness.read_text(counter).strip(), "3")
        self.assertEqual(harness.read_lines(attempts_log), ["1", "2", "3"],
                         "DROVER_ATTEMPT should count the starts of the task")
        h = t["history"]
        self.assertEqual([a["attempt"] for a in h], [1, 2, 3], h)
        self.assertEqual([a["status"] for a in h], ["FAILED", "FAILED", "SUCCEEDED"], h)
        self.assertEqual([a["exit_code"] for a in h], [1, 1, 0], h)
        for a in h:
            self.assertEqual(a["agent"], "w1", a)
            self.assertLessEqual(a["started_ms"], a["finished_ms"], a)
        gap1 = h[1]["started_ms"] - h[0]["finished_ms"]
        gap2 = h[2]["started_ms"] - h[1]["finished_ms"]
        slack_up = 10000 * harness.SCALE
        # backoff 1s, then 1s * factor 2 = 2s; 10% slack below, generous above
        self.assertGreaterEqual(gap1, 900, "first retry came too early: %s" % h)
        self.assertLessEqual(gap1, 1000 + slack_up, "first retry came too late: %s" % h)
        self.assertGreaterEqual(gap2, 1800, "second retry came too early (factor 2 ignored?): %s" % h)
        self.assertLessEqual(gap2, 2000 + slack_up, "second retry came too late: %s" % h)
        self.assertEqual(task(run, "after")["status"], "SUCCEEDED")

    def test_max_backoff_caps_the_delay(self):
        c = self.c
        counter = c.path("count")
        script = ('n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; [ "$n" -ge 3 ]'
                  % (counter, counter))
        rid = c.submit({"name": "capped", "steps": [
            {"name": "flaky", "script": script,
             "retries": {"limit": 3, "backoff": "1s", "factor": 10, "max_backoff": "1500ms"}},
        ]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        h = task(run, "flaky")["history"]
        self.assertEqual(len(h), 3, h)
        gap2 = h[2]["started_ms"] - h[1]["finished_ms"]
        self.assertGreaterEqual(gap2, 1350, h)
        self.assertLess(gap2, 9000, "max_backoff 1500ms ignored (10s delay?): %s" % h)

    def test_defaults_apply_unless_overridden(self):
        c = self.c
        d = c.path("d")
        os.makedirs(d)
        # fails on its first attempt only
        once = 'if [ ! -e %s/$DROVER_TASK ]; then touch %s/$DROVER_TASK; exit 1; fi' % (d, d)
        defaults = {"retries": {"limit": 2, "backoff": "100ms"}, "timeout": "1s"}
        ok = c.submit({"name": "defaults-ok", "defaults": defaults, "steps": [
            {"name": "inherits", "script": once},
            {"name": "longer", "script": "sleep 1.5", "timeout": "30s"},
        ]})
        no_retry = c.submit({"name": "defaults-no-retry", "defaults": defaults, "steps": [
            {"name": "no-retry", "script": once, "retries": 0},
        ]})
        slow = c.submit({"name": "defaults-timeout", "defaults": defaults, "steps": [
            {"name": "slow", "script": "sleep 5", "retries": 0},
        ]})
        run = c.wait_run_final(ok, timeout=60)
        self.assertRunSucceeded(run)
        t = task(run, "inherits")
        self.assertEqual((t["status"], t["attempts"]), ("SUCCEEDED", 2), t)
        t = task(run, "longer")
        self.assertEqual((t["status"], t["attempts"]), ("SUCCEEDED", 1), t)
        run = c.wait_run_final(no_retry, timeout=60)
        t = task(run, "no-retry")
        self.assertEqual((run["status"], t["status"], t["attempts"]), ("FAILED", "FAILED", 1), t)
        run = c.wait_run_final(slow, timeout=60)
        t = task(run, "slow")
        self.assertEqual((run["status"], t["status"]), ("FAILED", "FAILED"), t)
        self.assertLess(t["finished_ms"] - t["started_ms"], 4500, "defaults.timeout 1s not applied: %s" % t)

    def test_failed_run_is_final_only_when_nothing_runs(self):
        # a step fails for good while others still run or wait: whether the
        # run lets them finish or cancels them, once it reports a final
        # status nothing of it may still run or start later
        c = self.c
        marks = c.path("marks")
        os.makedirs(marks)
        rid = c.submit({"name": "partial", "steps": [
            {"name": "bad", "script": "exit 1", "retries": 0},
            {"name": "slow", "script": "sleep 2; touch %s/slow" % marks},
            {"name": "after-slow", "needs": ["slow"], "script": "touch %s/after-slow" % marks},
            {"name": "flaky", "script": "exit 1", "retries": {"limit": 1, "backoff": "2s"}},
        ]})
        watch = c.popen_cli("run", "watch", rid)
        run = c.wait_run_final(rid, timeout=60)
        seen_final_at = time.time()
        pending = [(t["name"], t["status"], t["retry_at_ms"]) for t in run["tasks"]
                   if t["status"] not in harness.FINAL_TASK or t["retry_at_ms"]]
        self.assertEqual(run["status"], "FAILED", run)
        self.assertEqual(pending, [], "run %s is %s while steps still run or wait: %s"
                         % (rid, run["status"], pending))
        try:
            watch.communicate(timeout=60 * harness.SCALE)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.communicate()
        self.assertEqual(watch.returncode, 1)
        # nothing starts after the run ended
        harness.holds_for(lambda: all(t["attempts"] == len(t["history"]) and
                                      all(h["started_ms"] <= run["finished_ms"] for h in t["history"])
                                      for t in c.get_run(rid)["tasks"]), 3.0,
                          what="no step of the finished run starting later")
        later = [f for f in os.listdir(marks)
                 if os.stat(os.path.join(marks, f)).st_mtime > seen_final_at]
        self.assertEqual(later, [], "steps ran after the run had ended: %s" % later)

    def test_retries_exhausted_fails_run_and_skips_dependents(self):
        c = self.c
        marker = c.path("dependent-ran")
        ok_marker = c.path("independent-ran")
        rid = c.submit({"name": "doomed", "steps": [
            {"name": "bad", "script": "echo failing; exit 3", "retries": 1},
            {"name": "after", "needs": ["bad"], "script": "touch %s" % marker},
            {"name": "after2", "needs": ["after"], "script": "touch %s" % marker},
            {"name": "ok", "script": "touch %s" % ok_marker},
        ]})
        watch = c.popen_cli("run", "watch", rid)
        try:
            _, err = watch.communicate(timeout=90 * harness.SCALE)
            rc = watch.returncode
            harness.check_sanitizer_text(err, "drover run watch")
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
            watch.stdout.close()
            watch.stderr.close()
        self.assertEqual(rc, 1, "`drover run watch` of a failed run should exit 1")
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "FAILED", run)
        bad = task(run, "bad")
        self.assertEqual(bad["status"], "FAILED", bad)
        self.assertEqual(bad["attempts"], 2, bad)
        self.assertEqual(bad["retries_used"], 1, bad)
        self.assertEqual(bad["exit_code"], 3, bad)
        self.assertEqual([a["status"] for a in bad["history"]], ["FAILED", "FAILED"], bad)
        self.assertEqual([a["exit_code"] for a in bad["history"]], [3, 3], bad)
        for name in ("after", "after2"):
            t = task(run, name)
            self.assertEqual(t["status"], "SKIPPED", t)
            self.assertEqual(t["attempts"], 0, t)
            self.assertEqual(t["history"] or [], [], t)
        self.assertFalse(os.path.exists(marker), "a dependent of a failed step ran")
        self.assertEqual(task(run, "ok")["status"], "SUCCEEDED")
        self.assertTrue(os.path.exists(ok_marker))
        # watching a finished run answers at once, with the same exit code
        r = c.cli("run", "watch", rid, timeout=30)
        self.assertEqual(r.rc, 1, r)

    def test_timeout_kills_step(self):
        c = self.c
        pidfile = c.path("pid")
        rid = c.submit({"name": "slow", "steps": [
            {"name": "slow", "script": "echo $$ > %s; exec sleep 30" % pidfile,
             "timeout": "1s", "retries": 0},
            {"name": "after", "needs": ["slow"], "script": "true"},
        ]})
        run = c.wait_run_final(rid, timeout=60)
        self.assertEqual(run["status"], "FAILED", run)
        t = task(run, "slow")
        self.assertEqual(t["status"], "FAILED", t)
        self.assertEqual(t["attempts"], 1, t)
        reasons = " ".join([t.get("reason") or ""] + [a.get("reason") or "" for a in t["history"]])
        self.assertRegex(reasons.lower(), r"time(d)?[ _-]?out", "reason should mention the timeout: %s" % t)
        self.assertLess(t["finished_ms"] - t["started_ms"], 10000 * harness.SCALE,
                        "the 1s timeout was not enforced promptly: %s" % t)
        self.assertGreaterEqual(t["finished_ms"] - t["started_ms"], 900, t)
        self.assertEqual(task(run, "after")["status"], "SKIPPED")
        pid = int(harness.read_text(pidfile).strip())
        harness.wait_until(lambda: not harness.pid_alive(pid), timeout=30,
                           what="the timed-out process %d to be gone" % pid)

    def test_timeout_kills_step_that_ignores_sigterm(self):
        c = self.c
        pidfile = c.path("pid")
        rid = c.submit({"name": "stubborn", "steps": [
            {"name": "stubborn",
             "script": "trap '' TERM; echo $$ > %s.tmp; mv %s.tmp %s; while :; do sleep 0.1; done"
                       % (pidfile, pidfile, pidfile),
             "timeout": "1s", "retries": 0},
        ]})
        run = c.wait_run_final(rid, timeout=90)
        self.assertEqual(run["status"], "FAILED", run)
        t = task(run, "stubborn")
        self.assertEqual(t["status"], "FAILED", t)
        pid = int(harness.read_text(pidfile).strip())
        harness.wait_until(lambda: not harness.pid_alive(pid), timeout=30,
                           what="the step ignoring SIGTERM (%d) to be killed" % pid)

    def test_missing_command_fails(self):
        c = self.c
        rid = c.submit({"name": "missing", "steps": [
            {"name": "nope", "command": ["/nonexistent/drover-test-binary", "x"], "retries": 0},
            {"name": "after", "needs": ["nope"], "script": "true"},
        ]})
        run = c.wait_run_final(rid, timeout=60)
        self.assertEqual(run["status"], "FAILED", run)
        t = task(run, "nope")
        self.assertEqual(t["status"], "FAILED", t)
        self.assertEqual(t["attempts"], 1, t)
        self.assertTrue(t["exit_code"] not in (None, 0) or t["reason"],
                        "a step that could not start should say why: %s" % t)
        self.assertEqual(task(run, "after")["status"], "SKIPPED")

    def test_step_environment(self):
        c = self.c
        out = c.path("env")
        os.makedirs(out)
        probe = (
            'f=%s/probe.$DROVER_ATTEMPT\n'
            'echo "RUN_ID=$DROVER_RUN_ID" > $f\n'
            'echo "TASK=$DROVER_TASK" >> $f\n'
            'echo "ATTEMPT=$DROVER_ATTEMPT" >> $f\n'
            'echo "PWD=$(pwd -P)" >> $f\n'
            'echo "MY_VAR=$MY_VAR" >> $f\n'
            'echo "GREETING=$GREETING" >> $f\n'
            'echo "INPUTS=$(test -d "$DROVER_INPUTS" && echo dir || echo missing:$DROVER_INPUTS)" >> $f\n'
            'echo "OUTPUTS=$(test -d "$DROVER_OUTPUTS" && echo dir || echo missing:$DROVER_OUTPUTS)" >> $f\n'
            'echo "CKPT=$(test -d "$DROVER_CHECKPOINT_DIR" && echo dir || echo missing:$DROVER_CHECKPOINT_DIR)" >> $f\n'
            'echo "PROGRESS_SET=${DROVER_PROGRESS:+yes}" >> $f\n'
            "echo '{\"progress\":0.5}' >> \"$DROVER_PROGRESS\"\n"
            'echo "PROGRESS_WRITABLE=yes" >> $f\n'
            'test "$DROVER_ATTEMPT" -ge 2\n' % out)
        rid = c.submit({
            "name": "env",
            "params": {"greeting": "hi there"},
            "steps": [
                {"name": "probe", "script": probe,
                 "env": {"MY_VAR": "hello world", "GREETING": "{{params.greeting}}"},
                 "retries": {"limit": 1, "backoff": "100ms"}},
                {"name": "other", "script": "pwd -P > %s/other.pwd" % out},
            ]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "probe")["attempts"], 2)
        seen = {}
        for n in (1, 2):
            text = harness.read_text(os.path.join(out, "probe.%d" % n))
            self.assertIsNotNone(text, "attempt %d left no probe file (DROVER_ATTEMPT not %d?)" % (n, n))
            kv = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            seen[n] = kv
            self.assertEqual(kv["RUN_ID"], rid)
            self.assertEqual(kv["TASK"], "probe")
            self.assertEqual(kv["ATTEMPT"], str(n))
            self.assertEqual(kv["MY_VAR"], "hello world")
            self.assertEqual(kv["GREETING"], "hi there")
            self.assertEqual(kv["INPUTS"], "dir")
            self.assertEqual(kv["OUTPUTS"], "dir")
            self.assertEqual(kv["CKPT"], "dir")
            self.assertEqual(kv["PROGRESS_SET"], "yes")
            self.assertEqual(kv.get("PROGRESS_WRITABLE"), "yes")
            work = os.path.realpath(c.agent_work_dir("w1"))
            self.assertTrue(kv["PWD"].startswith(work + "/"),
                            "step should run in a dir under the agent's work dir %s, ran in %s"
                            % (work, kv["PWD"]))
        other_pwd = harness.read_text(os.path.join(out, "other.pwd")).strip()
        self.assertNotEqual(other_pwd, seen[2]["PWD"], "two steps shared one work dir")


if __name__ == "__main__":
    harness.main()
