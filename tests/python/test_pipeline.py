"""Unit tests of the authoring layer (python/drover/pipeline.py): examples
written in Python give exactly the YAML of the hand-written examples/ files
(comments aside), needs are inferred from the outputs a step reads, and
mistakes are refused at once with the name at fault."""
import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "python"))

import drover  # noqa: E402
from drover import item, range_items  # noqa: E402

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None


def example_text(rel):
    """An example file without its comment lines and end-of-line comments."""
    out = []
    with open(os.path.join(SRC, "examples", rel)) as f:
        for line in f:
            if line.lstrip().startswith("#"):
                continue
            out.append(re.sub(r"\s+# .*$", "", line.rstrip("\n")) + "\n")
    return "".join(out)


def diamond():
    p = drover.Pipeline("argo-dag-diamond")
    a = p.step("A", command=["echo", "A"])
    b = p.step("B", needs=[a], command=["echo", "B"])
    c = p.step("C", needs=a, command=["echo", "C"])
    p.step("D", needs=[b, c], command=["echo", "D"])
    return p


def kfp_retry():
    p = drover.Pipeline("kfp-retry")
    p.step("random-failure-op", retries={"limit": 10, "backoff": "100ms"},
           script='if [ "$DROVER_ATTEMPT" -lt 3 ]; then exit "$DROVER_ATTEMPT"; fi\nexit 0\n')
    p.step("random-failure-op-2", retries={"limit": 5, "backoff": "100ms"},
           script='if [ "$DROVER_ATTEMPT" -lt 2 ]; then exit 1; fi\nexit 0\n')
    return p


def kfp_condition():
    p = drover.Pipeline("kfp-condition",
                        params={"force_flip_result": "heads", "text": "condition test"})
    flip = p.step("flip-coin", env={"FACE": p.params["force_flip_result"]},
                  output_params=["face"], script='printf \'%s\' "$FACE" > "$DROVER_OUTPUTS/face"')
    p.step("print-msg", env={"MSG": flip.outputs["face"]}, script='echo "$MSG"')
    with p.condition(f"'{flip.outputs['face']}' == 'heads'"):
        flip2 = p.step("flip-coin-2", output_params=["face"],
                       script='printf tails > "$DROVER_OUTPUTS/face"')
    p.step("print-msg-2", env={"MSG": flip2.outputs["face"]}, script='echo "$MSG"')
    with p.condition(f"'{flip.outputs['face']}' == 'heads'"):
        p.step("print-msg-3", env={"MSG": p.params.text}, script='echo "$MSG"')
    return p


def dag_nested():
    p = drover.Pipeline("argo-dag-nested")
    echo = p.template("echo", params={"message": None},
                      env={"MESSAGE": p.input("message")}, output_params=["said"],
                      script="printf '%s\\n' \"$MESSAGE\" | tee \"$DROVER_OUTPUTS/said\"")
    t = drover.DagTemplate("nested-diamond", params={"message": None})
    msg = t.input("message")
    t.step("A", uses=echo, with_={"message": msg + "A"})
    t.step("B", depends="A", uses=echo, with_={"message": msg + "B"})
    t.step("C", depends="A", uses=echo, with_={"message": msg + "C"})
    t.step("D", depends="B && C", uses=echo, with_={"message": msg + "D"})
    nd = p.dag_template(t)
    p.step("A", uses=nd, with_={"message": "A"})
    p.step("B", depends="A", uses=nd, with_={"message": "B"})
    p.step("C", depends="A", uses=nd, with_={"message": "C"})
    p.step("D", depends="B && C", uses=nd, with_={"message": "D"})
    return p


def loops_param_result():
    p = drover.Pipeline("argo-loops-param-result")
    gen = p.step("gen-number-list", script="echo '[\"1\", \"2\", \"3\"]'")
    p.step("sleep-n-sec", for_each=gen.result, env={"N": item}, output_params=["said"],
           script='echo "sleeping for $N seconds" | tee "$DROVER_OUTPUTS/said"')
    return p


class SameYamlAsTheExamples(unittest.TestCase):
    maxDiff = None

    def test_ml_pipeline_text(self):
        out = subprocess.run([sys.executable, os.path.join(SRC, "examples/python/train_pipeline.py")],
                             capture_output=True, text=True, check=True).stdout
        self.assertEqual(out, example_text("ml/pipeline.yaml"))

    def test_diamond_and_retry_text(self):
        self.assertEqual(diamond().to_yaml(), example_text("peers/argo-dag-diamond.yaml"))
        self.assertEqual(kfp_retry().to_yaml(), example_text("peers/kfp-retry.yaml"))

    @unittest.skipIf(yaml is None, "python3-yaml not installed")
    def test_same_documents(self):
        # key order or flow/block style aside, the very same documents
        for make, rel in ((kfp_condition, "peers/kfp-condition.yaml"),
                          (dag_nested, "peers/argo-dag-nested.yaml"),
                          (loops_param_result, "peers/argo-loops-param-result.yaml")):
            with open(os.path.join(SRC, "examples", rel)) as f:
                want = yaml.safe_load(f)
            self.assertEqual(yaml.safe_load(make().to_yaml()), want, rel)


class Needs(unittest.TestCase):
    def test_inferred_from_outputs_minimal(self):
        p = drover.Pipeline("n")
        a = p.step("a", output_artifacts=["d"], script="x")
        b = p.step("b", inputs={"d": a.outputs["d"]}, output_params=["v"], script="x")
        c = p.step("c", env={"V": b.outputs["v"]}, inputs={"d": a.outputs["d"]}, script="x")
        self.assertEqual(b.spec["needs"], ["a"])
        self.assertEqual(c.spec["needs"], ["b"])  # a is reached through b
        d = p.step("d", when=f"{c.status} == succeeded && {a.exit_code} == 0",
                   command=["echo", b.result])
        self.assertEqual(d.spec["needs"], ["c"])
        self.assertEqual(d.spec["when"],
                         "{{steps.c.status}} == succeeded && {{steps.a.exit_code}} == 0")

    def test_explicit_needs_kept_and_exit_handlers_get_none(self):
        p = drover.Pipeline("n")
        a = p.step("a", output_params=["v"], script="x")
        b = p.step("b", needs=[a], script="x")
        c = p.step("c", needs=[b], env={"V": a.outputs["v"]}, script="x")
        self.assertEqual(c.spec["needs"], ["b"])
        f = p.on_exit("f", env={"V": a.outputs["v"]}, script="x")
        self.assertNotIn("needs", f.spec)
        self.assertIn("finally:\n  - name: f\n", p.to_yaml())

    def test_for_each_range_and_items(self):
        p = drover.Pipeline("n")
        s = p.step("s", for_each=range_items(0, 10, 2), env={"I": item, "K": item.k},
                   command=["echo", item["j"]])
        self.assertEqual(s.spec["for_each"], {"range": [0, 10, 2]})
        self.assertIn('env: {I: "{{item}}", K: "{{item.k}}"}', p.to_yaml())
        self.assertIn('command: [echo, "{{item.j}}"]', p.to_yaml())


class Mistakes(unittest.TestCase):
    def test_refused_at_once(self):
        p = drover.Pipeline("m", params={"rows": 10})
        a = p.step("a", output_params=["v"], script="x")
        with self.assertRaisesRegex(ValueError, "already has a step named 'a'"):
            p.step("a", script="x")
        with self.assertRaisesRegex(KeyError, "declares no param 'row'"):
            p.params["row"]
        with self.assertRaisesRegex(KeyError, "declares no output 'w'"):
            a.outputs["w"]
        with self.assertRaisesRegex(KeyError, "needs 'zz'"):
            p.step("b", needs=["zz"], script="x")
        self.assertIn('rows: "10"', p.to_yaml())  # params are strings


if __name__ == "__main__":
    unittest.main()
