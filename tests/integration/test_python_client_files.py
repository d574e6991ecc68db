"""The Python client's logs and artifacts end to end (real droverd, agent
and drover-web): NOT registered in CMake (its name does not start with
test_) until drover-web's file routes (logs, artifacts) answer; then it
joins test_python_client.py."""
import hashlib
import os
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import DroverTestCase  # noqa: E402

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "python"))
import drover  # noqa: E402


def api_token(c):
    """An admin API token (`drover token create`), or any word while droverd
    has no API tokens (it then ignores the bearer)."""
    r = c.cli("token", "create", "py-client", "--role", "admin")
    for word in (r.out or "").split():
        if word.startswith("drva1."):
            return word
    return "test-token"


def by_name(run):
    return {t["name"]: t for t in run["tasks"]}


class PythonClientFilesTest(DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("a1", cpus=4)
        self.c.start_web()
        self.token = api_token(self.c)
        self.client = drover.Client(self.c.web_url, token=self.token)

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
