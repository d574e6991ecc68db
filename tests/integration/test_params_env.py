"""Params reach a step's shell safely the way the README says (issue 12,
defect 10): through `env:` (quoted "$VAR" in the script) or `command:` (an
argv), never pasted into `script:` text, where a value with a quote in it
ends the quoting and runs as shell. Real daemons run the README's form and
the shipped examples (examples/ml, examples/spot) with hostile values.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SOURCE_DIR, DroverTestCase, main, task, wait_final  # noqa: E402

EXAMPLES = os.path.join(SOURCE_DIR, "examples")


class ParamsThroughEnvTest(DroverTestCase):
    INJ = ["INJ1", "INJ2", "INJ3", "INJ4", "INJ5"]

    def hostile(self):
        """A value that breaks out of "...", '...', $(...), `...` and a line,
        and would create one of the INJ files for each part that ran."""
        return ('1"; touch %s; echo "$(touch %s)`touch %s`\'; touch %s; \'\ntouch %s'
                % tuple(self.c.path(n) for n in self.INJ))

    def assertNothingRan(self, *names):
        made = [n for n in names if os.path.exists(self.c.path(n))]
        self.assertEqual(made, [], "a param value ran as shell and made %s" % made)

    def test_readme_forms_deliver_a_hostile_value_verbatim(self):
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=2)
        value = self.hostile()
        rid = c.submit({"name": "env-params", "params": {"rows": "1"}, "steps": [
            {"name": "by-env", "env": {"ROWS": "{{params.rows}}"},
             "outputs": {"params": ["got"]},
             "script": 'printf "%s" "$ROWS" > "$DROVER_OUTPUTS/got"'},
            {"name": "by-command", "outputs": {"params": ["got"]},
             "command": ["sh", "-c", 'printf "%s" "$1" > "$DROVER_OUTPUTS/got"', "sh",
                         "{{params.rows}}"]}]},
            params={"rows": value})
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        for step in ("by-env", "by-command"):
            self.assertEqual(task(run, step)["outputs"]["params"]["got"], value, step)
        self.assertNothingRan(*self.INJ)

    def test_ml_example_passes_params_through_env(self):
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=2)
        spec = os.path.join(EXAMPLES, "ml", "pipeline.yaml")
        src = os.path.join(EXAMPLES, "ml")
        # as the demo runs it (small), with a margin that lets deploy run
        rid = c.submit(spec, params={"src": src, "rows": "300", "epochs": "3", "margin": "-1"})
        run = wait_final(c, rid, timeout=180)
        self.assertRunSucceeded(run)
        best = task(run, "evaluate")["outputs"]["params"]["best_lr"]
        self.assertIn(best, ("0.05", "0.2", "0.8"))
        self.assertIn("deploying the model trained with lr %s" % best,
                      c.cli("logs", rid, "deploy").out)
        self.assertIn("ended succeeded", c.cli("logs", rid, "notify").out)
        self.assertIn("wrote 300 rows", c.cli("logs", rid, "generate").out)
        # a hostile value reaches generate.py as one argument, and only there
        value = '1" --out x; touch %s; echo "' % c.path("INJ")
        rid = c.submit(spec, params={"src": src, "rows": value})
        run = wait_final(c, rid, timeout=120)
        self.assertEqual(task(run, "generate")["status"], "FAILED")
        self.assertNothingRan("INJ")
        self.assertIn("invalid int value: %r" % value, c.cli("logs", rid, "generate").out)

    def test_spot_example_reports_through_env(self):
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=2)
        spec = os.path.join(EXAMPLES, "spot", "pipeline.yaml")
        rid = c.submit(spec, params={"dir": os.path.join(EXAMPLES, "spot"), "epochs": "2",
                                     "epoch_seconds": "0.05"})
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        self.assertIn("trained for 2 epochs", c.cli("logs", rid, "report").out)


if __name__ == "__main__":
    main()
