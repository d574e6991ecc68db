"""The Python authoring layer (python/drover/pipeline.py) on real daemons:
pipelines written in Python are emitted as YAML and submitted with the
drover CLI to a real droverd with a real agent, and they run as the
hand-written ones do.

- examples/python/train_pipeline.py (examples/ml/pipeline.yaml in Python)
  runs to SUCCEEDED with its fan-out, fan-in and condition;
- values a YAML emitter could get wrong (strings that look like numbers,
  bools or null, ':' and '#', quotes, leading dashes, unicode, a
  multi-line script) reach the step byte for byte, through params, env
  and argv, and come back as output params;
- templates, for_each over a range, a fan-in reading the fan-out's output
  list, `when` and retries, with needs inferred from outputs, give the
  expected values;
- the README's "Python client" example runs as written;
- a mistake droverd refuses is reported at the FILE:LINE:COL of the
  emitted YAML where the key is.
"""
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import DroverTestCase, task, wait_final  # noqa: E402

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))
import drover  # noqa: E402
from drover import item, range_items  # noqa: E402

HOSTILE = ["1", "0.5", "1e3", "0x1F", "yes", "No", "null", "~", "", "- a", "a: b", "x #y",
           "#z", "[1, 2]", "{k: v}", "'q'", '"dq"', "back\\slash", "tab\there", "*ref",
           "&anchor", "!tag", "%p", "@at", "`bt", "|", ">", "---", "caf\u00e9 \u2713", " pad "]


def hostile_pipeline():
    p = drover.Pipeline("py-hostile", params={"p%d" % i: v for i, v in enumerate(HOSTILE)})
    env = {"E%d" % i: p.params["p%d" % i] for i in range(len(HOSTILE))}
    lines = ['printf \'%%s\' "$E%d" > "$DROVER_OUTPUTS/o%d"' % (i, i) for i in range(len(HOSTILE))]
    lines.append('# a comment line: kept in the script, a no-op for sh')
    lines.append('printf \'%s|\' "$@" > /dev/null')
    p.step("echo", env=env, output_params=["o%d" % i for i in range(len(HOSTILE))],
           script="\n".join(lines) + "\n")
    # argv: each value one argument, byte for byte
    p.step("argv", command=["sh", "-c", 'printf "%s" "$1" > "$DROVER_OUTPUTS/a"', "sh",
                            "{} {} {}".format(*HOSTILE[9:12])], output_params=["a"])
    return p


def fanout_pipeline():
    p = drover.Pipeline("py-fanout", params={"base": "10"},
                        defaults={"retries": {"limit": 2, "backoff": "100ms"}})
    square = p.template("square", params={"n": None, "base": "0"}, output_params=["sq"],
                        env={"N": p.input("n"), "B": p.input("base")},
                        script='echo $(( N * N + B )) > "$DROVER_OUTPUTS/sq"')
    flaky = p.step("flaky", output_params=["tries"],
                   script='[ "$DROVER_ATTEMPT" -ge 2 ] || exit 3\n'
                          'echo "$DROVER_ATTEMPT" > "$DROVER_OUTPUTS/tries"\n')
    sq = p.step("sq", for_each=range_items(1, 4), uses=square,
                with_={"n": item, "base": p.params["base"]})
    total = p.step("total", env={"L": sq.outputs["sq"], "T": flaky.outputs["tries"]},
                   output_params=["sum", "tries"],
                   script='python3 -c \'import json, os; '
                          'print(sum(int(x) for x in json.loads(os.environ["L"])))\''
                          ' > "$DROVER_OUTPUTS/sum"\n'
                          'printf %s "$T" > "$DROVER_OUTPUTS/tries"\n')
    p.step("big", when=f"{total.outputs['sum']} > 40", command=["true"])
    p.step("small", when=f"{total.outputs['sum']} <= 40", command=["true"])
    return p


class PythonAuthoringTest(DroverTestCase):
    def submit_py(self, p, *params):
        path = self.c.write_spec(p.to_yaml(), name=p.name + ".yaml")
        args = ["submit", path]
        for kv in params:
            args += ["-p", kv]
        r = self.c.cli(*args)
        self.assertEqual(r.rc, 0, r)
        return r.out.strip()

    def test_pipelines_written_in_python_run(self):
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=4)
        # the ml example, through its own script's -o (drover.main)
        ml = c.path("train.yaml")
        subprocess.run([sys.executable, os.path.join(harness.SOURCE_DIR, "examples", "python",
                                                     "train_pipeline.py"), "-o", ml], check=True)
        rid_ml = c.submit(ml, params={"src": os.path.join(harness.SOURCE_DIR, "examples", "ml"),
                                      "rows": "400", "epochs": "3"})
        rid_h = self.submit_py(hostile_pipeline())
        rid_f = self.submit_py(fanout_pipeline(), "base=20")

        run = wait_final(c, rid_ml, timeout=180)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        names = {t["name"]: t["status"] for t in run["tasks"]}
        for n in ("generate", "train[0]", "train[1]", "train[2]", "baseline", "evaluate",
                  "notify"):
            self.assertEqual(names.get(n), "SUCCEEDED", (n, names))
        better = task(run, "evaluate")["outputs"]["params"]["better"]
        self.assertEqual(names["deploy"], "SUCCEEDED" if better == "true" else "SKIPPED")

        run = wait_final(c, rid_h)
        self.assertRunSucceeded(run)
        got = task(run, "echo")["outputs"]["params"]
        self.assertEqual([got["o%d" % i] for i in range(len(HOSTILE))], HOSTILE)
        self.assertEqual(task(run, "argv")["outputs"]["params"]["a"],
                         "{} {} {}".format(*HOSTILE[9:12]))

        run = wait_final(c, rid_f)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        # (1+20) + (4+20) + (9+20) = 74 with -p base=20
        self.assertEqual(json.loads(task(run, "sq")["outputs"]["params"]["sq"]), ["21", "24", "29"])
        self.assertEqual(task(run, "total")["outputs"]["params"],
                         {"sum": "74", "tries": "2"})
        self.assertEqual(task(run, "big")["status"], "SUCCEEDED")
        self.assertEqual(task(run, "small")["status"], "SKIPPED")

    def test_readme_example_runs(self):
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=4)
        with open(os.path.join(harness.SOURCE_DIR, "README.md")) as f:
            readme = f.read()
        section = readme[readme.index("## Python client"):]
        code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        self.assertIn("drover.main(p)", code)
        script = c.path("readme_pipeline.py")
        with open(script, "w") as f:
            f.write(code)
        spec = c.path("readme.yaml")
        env = dict(os.environ, PYTHONPATH=os.path.join(harness.SOURCE_DIR, "python"))
        subprocess.run([sys.executable, script, "-o", spec], check=True, env=env)
        rid = c.submit(spec, params={"src": os.path.join(harness.SOURCE_DIR, "examples", "ml"),
                                     "rows": "300"})
        run = wait_final(c, rid, timeout=180)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        self.assertEqual(task(run, "evaluate")["status"], "SUCCEEDED")
        self.assertEqual(task(run, "notify")["status"], "SUCCEEDED")

    def test_refused_spec_points_at_the_emitted_line(self):
        c = self.c
        c.start_droverd()
        p = drover.Pipeline("py-bad", params={"n": "1"})
        a = p.step("a", output_params=["v"], script="echo 1 > \"$DROVER_OUTPUTS/v\"")
        p.step("b", env={"V": a.outputs["v"]}, timeout="30", script="true")
        text = p.to_yaml()
        path = c.write_spec(text, name="bad.yaml")
        r = c.cli("submit", path)
        self.assertEqual(r.rc, 6, r)
        line = next(i for i, s in enumerate(text.splitlines(), 1) if s.strip().startswith("timeout:"))
        col = text.splitlines()[line - 1].index('"30"') + 1
        m = re.search(r"bad\.yaml:(\d+):(\d+): (.*)", r.err)
        self.assertIsNotNone(m, r)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (line, col), r.err)
        self.assertIn("no unit", m.group(3))


if __name__ == "__main__":
    harness.main()
