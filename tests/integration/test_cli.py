"""The drover command line: submit, watch, runs, logs, spec errors, params."""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402

POSITION_RE = r"[\w./-]+\.yaml:\d+:\d+"


class CliTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=4)

    def run_ids(self):
        return [r["id"] for r in self.c.runs()]

    def test_submit_prints_only_the_run_id(self):
        c = self.c
        path = c.write_spec({"name": "hello", "steps": [{"name": "s", "command": ["true"]}]})
        r = c.cli("submit", path)
        self.assertEqual(r.rc, 0, r)
        rid = r.out.strip()
        self.assertEqual(r.out, rid + "\n", "submit should print the run id and nothing else")
        self.assertRegex(rid, r"^\S+$")
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(run["name"], "hello")
        # DROVER_API works as well as --api
        r = c.cli("run", "get", rid, "-o", "json", api=False, env={"DROVER_API": c.api})
        self.assertEqual(r.rc, 0, r)
        # unknown run: exit 2 with an error line
        r = c.cli("run", "get", "no-such-run", "-o", "json")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("drover: error:", r.err)

    def test_submit_watch_exit_codes(self):
        c = self.c
        good = c.write_spec({"name": "good", "steps": [{"name": "s", "script": "true"}]})
        bad = c.write_spec({"name": "bad", "steps": [{"name": "s", "script": "exit 7", "retries": 0}]})
        r = c.cli("submit", good, "--watch", timeout=90)
        self.assertEqual(r.rc, 0, r)
        r = c.cli("submit", bad, "--watch", timeout=90)
        self.assertEqual(r.rc, 1, r)
        runs = {x["id"]: x for x in c.runs()}
        self.assertEqual(sorted(x["status"] for x in runs.values()), ["FAILED", "SUCCEEDED"])

    def test_runs_lists_runs(self):
        c = self.c
        self.assertEqual(c.runs(), [])
        ids = [c.submit({"name": "r%d" % i, "steps": [{"name": "s", "script": "true"}]}) for i in range(3)]
        for rid in ids:
            c.wait_run_final(rid)
        runs = c.runs()
        self.assertEqual(sorted(r["id"] for r in runs), sorted(ids))
        for r in runs:
            self.assertEqual(r["status"], "SUCCEEDED", r)
            self.assertIn(r["name"], ("r0", "r1", "r2"))
        self.assertEqual(len(set(ids)), 3, "run ids must be unique")
        self.assertEqual([r["id"] for r in runs], ids[::-1], "runs are listed newest first")
        r = c.cli("runs", "--limit", "2", "-o", "json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([x["id"] for x in json.loads(r.out)], ids[:0:-1])
        # the human-readable forms work too
        r = c.cli("runs")
        self.assertEqual(r.rc, 0, r)
        for rid in ids:
            self.assertIn(rid, r.out)
        r = c.cli("run", "get", ids[0])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("SUCCEEDED", r.out)
        r = c.cli("agents")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("w1", r.out)
        r = c.cli("no-such-command")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("drover: error:", r.err)

    def test_logs_stdout_and_stderr(self):
        c = self.c
        rid = c.submit({"name": "logs", "steps": [
            {"name": "talk", "script": "echo out; echo err >&2; echo more-out"},
            {"name": "big", "script": "seq 1 30000"},
        ]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        r = c.cli("logs", rid, "talk")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(r.out.splitlines()), ["err", "more-out", "out"], r)
        self.assertLess(r.out.index("out\n"), r.out.index("more-out"), r)
        r = c.cli("logs", rid, "big")
        self.assertEqual(r.rc, 0, r.err)
        expected = "".join("%d\n" % i for i in range(1, 30001))
        self.assertTrue(r.out == expected, "logs of a 169 KB output: got %d bytes, first diff at %s"
                        % (len(r.out), next((i for i, (a, b) in enumerate(zip(r.out, expected)) if a != b),
                                            min(len(r.out), len(expected)))))
        r = c.cli("logs", rid, "no-such-step")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("drover: error:", r.err)

    def test_logs_follow_streams_until_step_ends(self):
        c = self.c
        go = c.path("go")
        rid = c.submit({"name": "follow", "steps": [
            {"name": "slow", "script": "echo tick1; while [ ! -e %s ]; do sleep 0.05; done; echo tick2" % go},
        ]})
        c.wait_task_status(rid, "slow", "RUNNING")
        p = c.popen_cli("logs", rid, "slow", "-f")
        try:
            data, ok = harness.read_with_timeout(p, rb"tick1\n", timeout=30)
            self.assertTrue(ok, "logs -f did not show the first line while the step ran: %r" % data)
            self.assertIsNone(p.poll(), "logs -f exited while the step was still running")
            with open(go, "w"):
                pass
            rest, ok = harness.read_with_timeout(p, rb"tick2\n", timeout=30)
            self.assertTrue(ok, "logs -f did not show the line written later: %r" % (data + rest))
            rc = p.wait(timeout=30 * harness.SCALE)
            rest2 = p.stdout.read()
            err = p.stderr.read()
            harness.check_sanitizer_text(err, "drover logs -f")
            self.assertEqual(rc, 0, err)
            self.assertEqual(data + rest + rest2, b"tick1\ntick2\n")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertRunSucceeded(c.wait_run_final(rid))

    def test_logs_of_each_attempt(self):
        c = self.c
        rid = c.submit({"name": "attempts", "steps": [
            {"name": "flaky", "script": 'echo "attempt-$DROVER_ATTEMPT"; [ "$DROVER_ATTEMPT" -ge 3 ]',
             "retries": {"limit": 3, "backoff": "100ms"}},
        ]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "flaky")["attempts"], 3)
        for n in (1, 2, 3):
            r = c.cli("logs", rid, "flaky", "--attempt", n)
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(r.out, "attempt-%d\n" % n, r)
        r = c.cli("logs", rid, "flaky")
        self.assertEqual(r.out, "attempt-3\n", "logs without --attempt should show the latest: %r" % r)
        r = c.cli("logs", rid, "flaky", "--attempt", 9)
        self.assertNotEqual(r.rc, 0, r)

    def check_refused(self, text, name, *needles, position=None):
        c = self.c
        before = self.run_ids()
        path = c.write_spec(text, name)
        r = c.cli("submit", path)
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(r.out.strip(), "", "a refused submit printed a run id: %r" % r)
        self.assertRegex(r.err, POSITION_RE, "error should name FILE:LINE:COL: %r" % r)
        if position:
            self.assertIn("%s:%s" % (name, position), r.err, r)
        for n in needles:
            self.assertIn(n, r.err.lower(), r)
        self.assertEqual(self.run_ids(), before, "a refused spec was stored")
        return r

    def test_invalid_specs_are_refused_with_position(self):
        self.check_refused(
            "name: bad\n"
            "steps:\n"
            "  - name: a\n"
            "    script: echo hi\n"
            "    bogus: 1\n",
            "unknown-key.yaml", "bogus", position="5:5")
        self.check_refused(
            "name: cyc\n"
            "steps:\n"
            "  - name: a\n"
            "    needs: [b]\n"
            "    script: echo a\n"
            "  - name: b\n"
            "    needs: [a]\n"
            "    script: echo b\n",
            "cycle.yaml", "cycle")
        self.check_refused(
            "name: dep\n"
            "steps:\n"
            "  - name: a\n"
            "    needs: [nope]\n"
            "    script: echo a\n",
            "unknown-dep.yaml", "nope")
        self.check_refused(
            "name: dup\n"
            "steps:\n"
            "  - name: a\n"
            "    script: echo a\n"
            "  - name: a\n"
            "    script: echo b\n",
            "dup.yaml", "dup", position="5:")
        self.check_refused(
            "name: qty\n"
            "steps:\n"
            "  - name: a\n"
            "    script: echo a\n"
            "    resources: {memory: 12Qi}\n",
            "qty.yaml", "12qi")
        self.check_refused(
            "name: ref\n"
            "params: {msg: hi}\n"
            "steps:\n"
            "  - name: a\n"
            "    script: echo {{params.nope}}\n",
            "bad-ref.yaml", "nope", position="5:")
        # spot: require never runs on on-demand nodes, so a fallback to
        # them cannot apply (it used to leave the step READY forever)
        self.check_refused(
            "name: spot\n"
            "steps:\n"
            "  - name: a\n"
            "    script: echo a\n"
            "    placement: {spot: require}\n"
            "    preemption: {fallback_after: 1}\n",
            "spot-fallback.yaml", "preemption.fallback_after", "placement.spot: require",
            position="6:34")
        r = self.c.cli("submit", self.c.path("does-not-exist.yaml"))
        self.assertEqual(r.rc, 7, r)
        self.assertIn("drover: error:", r.err)

    def test_params_substitution(self):
        c = self.c
        spec = {"name": "params", "params": {"msg": "default-msg", "n": "1"},
                "steps": [{"name": "say", "script": "echo msg={{params.msg}} n={{params.n}}"},
                          {"name": "argv", "command": ["echo", "{{params.msg}}"]}]}
        rid = c.submit(spec, params={"msg": "hello-from-cli"})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(run["params"], {"msg": "hello-from-cli", "n": "1"})
        self.assertEqual(c.cli("logs", rid, "say").out, "msg=hello-from-cli n=1\n")
        self.assertEqual(c.cli("logs", rid, "argv").out, "hello-from-cli\n")
        rid2 = c.submit(spec)
        run2 = c.wait_run_final(rid2)
        self.assertRunSucceeded(run2)
        self.assertEqual(c.cli("logs", rid2, "say").out, "msg=default-msg n=1\n")
        # values reach an argv untouched by any shell, '=' included
        argv_only = {"name": "argv", "params": {"msg": "x"},
                     "steps": [{"name": "argv", "command": ["echo", "{{params.msg}}"]}]}
        rid3 = c.submit(argv_only, params={"msg": "a b;c=d $HOME"})
        self.assertRunSucceeded(c.wait_run_final(rid3))
        self.assertEqual(c.cli("logs", rid3, "argv").out, "a b;c=d $HOME\n")
        # an undeclared parameter is refused and nothing is stored
        before = self.run_ids()
        path = c.write_spec(spec)
        r = c.cli("submit", path, "-p", "undeclared=1")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("undeclared", r.err)
        self.assertEqual(self.run_ids(), before)

    def test_inputs_params_on_a_step_is_refused(self):
        c = self.c
        before = self.run_ids()
        path = c.write_spec(
            "name: ckpt\n"
            "steps:\n"
            "  - name: a\n"
            "    inputs: {params: {n: \"1\"}}\n"
            "    command: [tool]\n", "ckpt.yaml")
        r = c.cli("submit", path)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("'inputs.params' is not a step key", r.err, r)
        self.assertRegex(r.err, POSITION_RE, r)
        self.assertEqual(self.run_ids(), before)


if __name__ == "__main__":
    harness.main()
