"""Outcomes as data (issue 15, item 3): {{steps.S.outputs.result}} (a
step's captured standard output), {{steps.S.status}},
{{steps.S.exit_code}}, and in exit handlers {{run.failures}} and
{{run.duration}}; a skip by `when` shows the values it compared.

Every step is a real process on a real agent; droverd and the agent are
killed with SIGKILL where durability is asserted. What a test checks is
what a user sees: `drover run get` and `drover logs`."""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task, wait_final, wait_until  # noqa: E402


def logs(c, rid, step):
    r = c.cli("logs", rid, step)
    assert r.rc == 0, r
    return r.out


class TestOutcomes(harness.DroverTestCase):

    def test_coinflip_result_drives_when_templates_env_and_for_each(self):
        """Argo's coinflip and exit-code-output-variable: the next steps'
        `when` read the flip's standard output; its text reaches argv and
        env; a JSON list printed by a step feeds a for_each."""
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        rid = c.submit({
            "name": "coinflip",
            "steps": [
                {"name": "flip", "script": "echo noise >&2; echo tails"},
                {"name": "heads", "needs": ["flip"],
                 "when": "{{steps.flip.outputs.result}} == heads",
                 "script": "echo it was heads"},
                {"name": "tails", "needs": ["flip"],
                 "when": "'{{steps.flip.outputs.result}}' == 'tails'",
                 "env": {"FLIP": "{{steps.flip.outputs.result}}"},
                 "script": "echo \"it was {{steps.flip.outputs.result}}, env $FLIP, "
                           "status {{steps.flip.status}} code {{steps.flip.exit_code}}\""},
                {"name": "list", "script": "printf '[\"a\", \"b\"]\\n\\n'"},
                {"name": "each", "needs": ["list"],
                 "for_each": "{{steps.list.outputs.result}}",
                 "script": "echo item={{item}}"},
            ],
        })
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "SUCCEEDED", run["tasks"])
        heads = task(run, "heads")
        self.assertEqual(heads["status"], "SKIPPED")
        self.assertEqual(heads["reason"], "when: tails == heads was false")
        self.assertEqual(task(run, "tails")["status"], "SUCCEEDED")
        self.assertIn("it was tails, env tails, status succeeded code 0", logs(c, rid, "tails"))
        # only stdout is the result: the log still has both streams
        self.assertIn("noise", logs(c, rid, "flip"))
        # one trailing newline dropped, the second kept: "[...]\n" is a JSON list
        items = sorted(t["item"] for t in run["tasks"] if t.get("item"))
        self.assertEqual(items, ["a", "b"])
        self.assertIn("item=b", logs(c, rid, "each[1]"))

    def test_exit_handler_reads_failures_status_and_exit_code(self):
        """KFP's exit handler / Argo's exit-handler: a finally step prints
        {{run.failures}} (JSON), a failed step's status and exit code."""
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        out = c.path("failures.json")
        rid = c.submit({
            "name": "failures",
            "steps": [
                {"name": "ok", "script": "echo fine"},
                {"name": "bad", "script": "echo broken; exit 3"},
                {"name": "after", "needs": ["bad"], "script": "echo never"},
            ],
            "finally": [
                {"name": "report",
                 "script": "cat > %s <<'EOF'\n{{run.failures}}\nEOF\n"
                           "echo 'bad={{steps.bad.status}}/{{steps.bad.exit_code}} "
                           "after={{steps.after.status}}/{{steps.after.exit_code}}/"
                           "{{steps.after.outputs.result}}/ run={{run.status}} "
                           "took={{run.duration}}'" % out},
            ],
        })
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "FAILED")
        self.assertEqual(task(run, "report")["status"], "SUCCEEDED", task(run, "report"))
        with open(out) as fh:
            failures = json.load(fh)
        self.assertEqual(failures, [{"name": "bad", "exit_code": 3, "reason": "exit code 3"}])
        text = logs(c, rid, "report")
        self.assertIn("bad=failed/3 after=skipped//", text)
        self.assertRegex(text, r"run=failed took=\d+\.\d{3}")

    def test_result_over_64k_fails_the_step_with_a_clear_reason(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        rid = c.submit({
            "name": "big",
            "steps": [
                {"name": "big", "script": "head -c 70000 /dev/zero | tr '\\0' x"},
                {"name": "exact", "script": "head -c 65536 /dev/zero | tr '\\0' y; echo"},
                {"name": "use", "needs": ["big"], "script": "echo {{steps.big.outputs.result}}"},
                {"name": "use2", "needs": ["exact"],
                 "when": "{{steps.exact.outputs.result}} != ''",
                 "script": "echo {{steps.exact.outputs.result}} | wc -c"},
            ],
        })
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "FAILED")
        big = task(run, "big")
        self.assertEqual(big["status"], "FAILED")
        self.assertIn("standard output is 70000 bytes, over the 65536 bytes (64 KiB) kept for "
                      "outputs.result", big["reason"])
        self.assertEqual(task(run, "use")["status"], "SKIPPED")
        self.assertEqual(task(run, "exact")["status"], "SUCCEEDED")
        self.assertIn("65537", logs(c, rid, "use2"))

    def test_result_survives_kill_9_of_droverd_and_agent(self):
        """The flip ends while droverd is down: the agent journals its exit
        report (with the result) and is killed too; both restart, and the
        result reaches the steps that read it, after one more droverd kill
        between the capture and its use."""
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=2)
        go, gate = c.path("go"), c.path("gate")
        rid = c.submit({
            "name": "durable",
            "steps": [
                {"name": "flip",
                 "script": "while [ ! -e %s ]; do sleep 0.05; done; echo heads" % go},
                {"name": "wait", "needs": ["flip"],
                 "script": "while [ ! -e %s ]; do sleep 0.05; done" % gate},
                {"name": "use", "needs": ["wait", "flip"],
                 "when": "{{steps.flip.outputs.result}} == heads",
                 "script": "echo got {{steps.flip.outputs.result}}"},
            ],
        })
        c.wait_task_status(rid, "flip", "RUNNING")
        c.kill_droverd()
        with open(go, "w"):
            pass
        journal = os.path.join(c.agent_work_dir("a1"), "exits.journal")

        def kept():
            try:
                with open(journal, "rb") as fh:
                    return b"heads" in fh.read()
            except FileNotFoundError:
                return False

        wait_until(kept, 60, what="the flip's exit report, with its result, in the journal")
        c.kill_agent("a1", node=False)
        c.start_droverd()
        c.start_agent("a1", cpus=2)
        c.wait_task_status(rid, "wait", "RUNNING")
        c.kill_droverd()
        c.start_droverd()
        with open(gate, "w"):
            pass
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertEqual(len(task(run, "flip")["history"]), 1)
        self.assertIn("got heads", logs(c, rid, "use"))

    def test_spec_errors_name_the_place(self):
        c = self.c
        c.start_droverd()
        cases = [
            ("steps:\n  - name: a\n    command: [echo, '{{steps.b.status}}']\n"
             "  - name: b\n    command: [echo]\n",
             3, "step 'a' does not need 'b'"),
            ("steps:\n  - name: a\n    command: [echo]\n  - name: b\n    needs: [a]\n"
             "    command: [echo, '{{steps.a.result}}']\n",
             6, "bad template"),
            ("steps:\n  - name: a\n    command: [echo, '{{run.failures}}']\n",
             3, "only known in finally steps"),
            ("steps:\n  - name: a\n    for_each: '[1]'\n    command: [echo]\n"
             "  - name: b\n    needs: [a]\n    when: '{{steps.a.outputs.result}} == x'\n"
             "    command: [echo]\n",
             7, "for_each step"),
        ]
        for text, line, needle in cases:
            path = c.write_spec("name: bad\n" + text)
            r = c.cli("submit", path)
            self.assertEqual(r.rc, 6, r)
            self.assertRegex(r.err, r"%s:%d:\d+: " % (os.path.basename(path), line + 1))
            self.assertIn(needle, r.err)


if __name__ == "__main__":
    harness.main()
