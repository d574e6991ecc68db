"""The Python client (python/drover/client.py) end to end: real droverd, a
real agent and drover-web (harness.start_web), the client over HTTP only.

Runs written with the authoring layer are submitted with Client.submit and
followed with Client.wait on drover-web's event stream: an approval gate
resumed with params (read downstream), a cancel, a delete, a refused spec
raising InvalidSpec with the FILE:LINE:COL of each error, a spec file
sent with the files it imports (transitively), 401/404 as
their DroverError subclasses; `python3 train_pipeline.py --submit --wait`
(drover.main) with --url and --token runs the ml example to its end; a
step's log (and followed), a file artifact checked against its digest and
a directory artifact unpacked from drover-web's tar."""
import hashlib
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import DroverTestCase, wait_until  # noqa: E402

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))
import drover  # noqa: E402


def api_token(c):
    """An admin API token (`drover token create`)."""
    r = c.cli("token", "create", "py-client", "--role", "admin")
    for word in (r.out or "").split():
        if word.startswith("drva1."):
            return word
    raise AssertionError("no API token made: %s" % r.err)


def by_name(run):
    return {t["name"]: t for t in run["tasks"]}


class PythonClientTest(DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("a1", cpus=4)
        self.c.start_web()
        self.token = api_token(self.c)
        self.client = drover.Client(self.c.web_url, token=self.token)

    def test_gate_resume_cancel_delete(self):
        cl = self.client
        p = drover.Pipeline("py-gate")
        gate = p.step("approve", suspend=True, output_params=["who"])
        p.step("after", env={"W": gate.outputs["who"]}, output_params=["w"],
               script='printf "approved by %s" "$W" > "$DROVER_OUTPUTS/w"')
        rid = cl.submit(p)
        wait_until(lambda: by_name(cl.run(rid))["approve"]["status"] == "suspended",
                   timeout=60, what="the gate to be suspended")
        cl.resume(rid, "approve", params={"who": "ana"})
        run = cl.wait(rid, timeout=60 * harness.SCALE)
        self.assertEqual(run["status"], "succeeded", run)
        after = by_name(run)["after"]
        self.assertEqual(after["out_params"], {"w": "approved by ana"})
        self.assertEqual(cl.task(rid, "after")["name"], "after")

        q = drover.Pipeline("py-long")
        q.step("sleep", command=["sleep", "600"])
        rid2 = cl.submit(q)
        wait_until(lambda: by_name(cl.run(rid2))["sleep"]["status"] == "running", timeout=60,
                   what="the step to run")
        cl.cancel(rid2)
        self.assertEqual(cl.wait(rid2, timeout=60 * harness.SCALE)["status"], "cancelled")
        cl.delete(rid2)
        with self.assertRaises(drover.NotFound):
            cl.run(rid2)

    def test_refused_spec_and_tokens(self):
        cl = self.client
        p = drover.Pipeline("py-bad")
        p.step("a", timeout="30", script="true")
        p.step("b", needs=["a"], extra={"retries": {"limit": "x"}}, script="true")
        with self.assertRaises(drover.InvalidSpec) as cm:
            cl.submit(p, name="bad.yaml")
        e = cm.exception
        self.assertEqual(e.status, 400)
        lines = p.to_yaml().splitlines()
        line = next(i for i, s in enumerate(lines, 1) if s.strip().startswith("timeout:"))
        self.assertEqual([(x.file, x.line) for x in e.errors][0], ("bad.yaml", line))
        self.assertEqual(e.errors[0].col, lines[line - 1].index('"30"') + 1)
        self.assertGreaterEqual(len(e.errors), 2)
        with self.assertRaises(drover.Unauthenticated):
            drover.Client(self.c.web_url, token="").status()
        with self.assertRaises(drover.NotFound):
            cl.run("r999999")

    def test_submit_path_sends_its_imports(self):
        # the spec imports lib/a.yaml, which imports (as msg) lib/b.yaml:
        # Client.submit reads and sends both, as `drover submit` does
        cl = self.client
        rid = cl.submit(os.path.join(harness.SOURCE_DIR, "examples", "peers",
                                     "argo-workflow-template-dag.yaml"))
        run = cl.wait(rid, timeout=60 * harness.SCALE)
        self.assertEqual(run["status"], "succeeded", run)
        self.assertTrue(any(t["name"].endswith("inner-D") for t in run["tasks"]), run["tasks"])

    def test_main_submit_wait(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(harness.SOURCE_DIR, "python"))
        env.pop("DROVER_TOKEN", None)
        r = subprocess.run(
            [sys.executable, os.path.join(harness.SOURCE_DIR, "examples", "python",
                                          "train_pipeline.py"),
             "--submit", "--wait", "--url", self.c.web_url, "--token", self.token,
             "-p", "src=" + os.path.join(harness.SOURCE_DIR, "examples", "ml"),
             "-p", "rows=300", "-p", "epochs=3"],
            capture_output=True, text=True, env=env, timeout=300 * harness.SCALE)
        self.assertEqual(r.returncode, 0, r)
        rid = r.stdout.split()[0]
        self.assertIn("run %s succeeded" % rid, r.stdout)

    def test_submit_wait_logs_artifacts(self):
        cl = self.client
        p = drover.Pipeline("py-client", params={"n": "3"})
        make = p.step("make", output_artifacts=["file", "tree"], output_params=["sum"],
                      env={"N": p.params["n"]},
                      script='echo "making $N"\n'
                             'head -c 300000 /dev/urandom > "$DROVER_OUTPUTS/file"\n'
                             'mkdir -p "$DROVER_OUTPUTS/tree/sub"\n'
                             'echo a > "$DROVER_OUTPUTS/tree/a.txt"\n'
                             'echo b > "$DROVER_OUTPUTS/tree/sub/b.txt"\n'
                             'echo 6 > "$DROVER_OUTPUTS/sum"\n')
        p.step("use", inputs={"f": make.outputs["file"]}, env={"S": make.outputs["sum"]},
               script='echo "sum $S"; wc -c < "$DROVER_INPUTS/f"')
        rid = cl.submit(p, params={"n": "4"})
        run = cl.wait(rid, timeout=120 * harness.SCALE)
        self.assertEqual(run["status"], "succeeded", run)
        tasks = by_name(run)
        self.assertEqual(tasks["use"]["status"], "succeeded")
        self.assertIn("making 4", cl.logs(rid, "make"))
        self.assertIn("sum 6", "".join(cl.logs(rid, "use", follow=True, timeout=60)))

        d = tempfile.mkdtemp(dir=self.tmp)
        path = cl.artifact(rid, "make", "file", d)
        work = self.c.agent_work_dir("a1")
        self.assertEqual(os.path.getsize(path), 300000)
        arts = {(a.get("task"), a.get("name")): a for a in cl.artifacts(rid)}
        self.assertIn(("make", "file"), arts)
        tree = cl.artifact(rid, "make", "tree", os.path.join(d, "tree"))
        with open(os.path.join(tree, "a.txt")) as f:
            self.assertEqual(f.read(), "a\n")
        with open(os.path.join(tree, "sub", "b.txt")) as f:
            self.assertEqual(f.read(), "b\n")
        self.assertTrue(work)
        # the run is listed, and its spec is the YAML submitted
        self.assertIn(rid, [r["id"] for r in cl.runs(page_size=1)])
        self.assertEqual(cl.spec(rid), p.to_yaml())
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.assertIn(digest, str(arts[("make", "file")]))


if __name__ == "__main__":
    harness.main()
