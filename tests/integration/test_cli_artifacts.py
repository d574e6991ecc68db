"""The command line's data-flow commands: artifacts, artifact get, run
delete, cache clear, submit --no-cache, the OUTPUTS of run get, and run
watch / logs -f riding out a droverd restart."""
import hashlib
import json
import os
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402

# What the "prepare" step writes, byte for byte.
DATASET = "".join("%d\n" % i for i in range(1, 1001)).encode()
MODEL = {"weights.txt": b"w\n", "sub/cfg": b"c\n"}
LONG_NOTE = "tab\there " + "x" * 80

ART_SPEC = """\
name: art
steps:
  - name: prepare
    outputs: {artifacts: [dataset, model], params: [rows, note]}
    script: |
      mkdir -p $DROVER_OUTPUTS/model/sub
      seq 1 1000 > $DROVER_OUTPUTS/dataset
      echo w > $DROVER_OUTPUTS/model/weights.txt; echo c > $DROVER_OUTPUTS/model/sub/cfg
      chmod 0750 $DROVER_OUTPUTS/model/sub/cfg
      echo 1000 > $DROVER_OUTPUTS/rows
      printf 'tab\\there %s' > $DROVER_OUTPUTS/note
  - name: shard
    needs: [prepare]
    for_each: ["a", "b"]
    script: echo {{item}}
""" % ("x" * 80)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tree(root):
    """{relative path: bytes} of every regular file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            full = os.path.join(d, f)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, root)] = fh.read()
    return out


def tree_digest(files):
    """One digest over a {path: bytes} tree (paths sorted)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + sha256(files[path]).encode() + b"\n")
    return h.hexdigest()


class CliArtifactsTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=4)
        self.c.start_agent("w2", cpus=4)

    def art_run(self, extra=()):
        rid = self.c.submit(self.c.write_spec(ART_SPEC, "art.yaml"), extra=extra)
        run = self.c.wait_run_final(rid)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        return rid

    def out_dir(self):
        d = self.c.path("out")
        os.makedirs(d, exist_ok=True)
        return d

    def assertNoTemporaries(self, d, expected):
        self.assertEqual(sorted(os.listdir(d)), sorted(expected),
                         "only the downloads should be left in %s" % d)

    # ---- listing

    def test_artifacts_listing(self):
        c = self.c
        rid = self.art_run()
        arts = c.cli_json("artifacts", rid)
        self.assertEqual([(a["step"], a["name"], a["kind"]) for a in arts],
                         [("prepare", "dataset", "file"), ("prepare", "model", "dir")], arts)
        ds, model = arts
        self.assertEqual(ds["size"], len(DATASET))
        self.assertEqual(ds["digest"], sha256(DATASET))
        self.assertEqual(len(ds["files"]), 1, ds)
        f = ds["files"][0]
        self.assertEqual((f["size"], f["digest"]), (len(DATASET), sha256(DATASET)), f)
        self.assertRegex(f["mode"], r"^0[0-7]{3}$")
        self.assertEqual(model["size"], sum(len(v) for v in MODEL.values()))
        self.assertRegex(model["digest"], r"^[0-9a-f]{64}$")
        self.assertEqual({x["path"]: (x["size"], x["digest"]) for x in model["files"]},
                         {p: (len(v), sha256(v)) for p, v in MODEL.items()})
        self.assertEqual({x["path"]: x["mode"] for x in model["files"]}["sub/cfg"], "0750")
        # the table: one row per artifact, short digests
        r = c.cli("artifacts", rid)
        self.assertEqual(r.rc, 0, r)
        lines = r.out.splitlines()
        self.assertEqual(lines[0].split(), ["STEP", "ARTIFACT", "KIND", "FILES", "SIZE", "DIGEST"])
        rows = [ln.split() for ln in lines[1:]]
        self.assertEqual(rows, [["prepare", "dataset", "file", "1", "3.8KiB", sha256(DATASET)[:12]],
                                ["prepare", "model", "dir", "2", "4B", model["digest"][:12]]])
        # one step; a step without artifacts; unknown step and run
        self.assertEqual(len(c.cli_json("artifacts", rid, "prepare")), 2)
        self.assertEqual(c.cli_json("artifacts", rid, "shard[1]"), [])
        r = c.cli("artifacts", rid, "nope")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("drover: error:", r.err)
        self.assertIn("nope", r.err)
        r = c.cli("artifacts", "r999999")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no run", r.err)

    # ---- download

    def test_artifact_get_file_and_directory(self):
        c = self.c
        rid = self.art_run()
        modes = {x["path"]: int(x["mode"], 8)
                 for x in c.cli_json("artifacts", rid, "prepare")[1]["files"]}
        out = self.out_dir()
        ds = os.path.join(out, "dataset.txt")
        r = c.cli("artifact", "get", rid, "prepare", "dataset", "-o", ds)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "wrote %s (1 file, 3.8KiB)\n" % ds)
        with open(ds, "rb") as f:
            got = f.read()
        self.assertEqual(sha256(got), sha256(DATASET))
        self.assertEqual(got, DATASET)

        model = os.path.join(out, "model")
        r = c.cli("artifact", "get", rid, "prepare", "model", "-o", model)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "wrote %s (2 files, 4B)\n" % model)
        got = tree(model)
        self.assertEqual(tree_digest(got), tree_digest(MODEL))
        self.assertEqual(got, MODEL)
        for path, mode in modes.items():
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(model, path)).st_mode), mode, path)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(model, "sub/cfg")).st_mode), 0o750)
        self.assertNoTemporaries(out, ["dataset.txt", "model"])

        # a fan-out item's artifacts are reached by its name too
        r = c.cli("artifact", "get", rid, "shard[0]", "x", "-o", os.path.join(out, "x"))
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no artifact 'x'", r.err)

    def test_artifact_get_refuses_existing_path_unless_forced(self):
        c = self.c
        rid = self.art_run()
        out = self.out_dir()
        ds = os.path.join(out, "ds")
        with open(ds, "wb") as f:
            f.write(b"mine")
        r = c.cli("artifact", "get", rid, "prepare", "dataset", "-o", ds)
        self.assertEqual(r.rc, 7, r)
        self.assertIn("drover: error:", r.err)
        self.assertIn("exists", r.err)
        self.assertIn("--force", r.err)
        with open(ds, "rb") as f:
            self.assertEqual(f.read(), b"mine", "a refused download must not touch PATH")
        r = c.cli("artifact", "get", rid, "prepare", "dataset", "-o", ds, "--force")
        self.assertEqual(r.rc, 0, r)
        with open(ds, "rb") as f:
            self.assertEqual(f.read(), DATASET)
        # a directory replaces a directory, and a file, with --force
        model = os.path.join(out, "model")
        os.makedirs(os.path.join(model, "old"))
        r = c.cli("artifact", "get", rid, "prepare", "model", "-o", model)
        self.assertEqual(r.rc, 7, r)
        self.assertTrue(os.path.isdir(os.path.join(model, "old")))
        r = c.cli("artifact", "get", rid, "prepare", "model", "-o", model, "--force")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(tree(model), MODEL)
        r = c.cli("artifact", "get", rid, "prepare", "model", "-o", ds, "--force")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(tree(ds), MODEL)
        r = c.cli("artifact", "get", rid, "prepare", "dataset", "-o", model, "--force")
        self.assertEqual(r.rc, 0, r)
        with open(model, "rb") as f:
            self.assertEqual(f.read(), DATASET)
        self.assertNoTemporaries(out, ["ds", "model"])

    def test_artifact_get_errors(self):
        c = self.c
        rid = self.art_run()
        out = self.out_dir()
        dest = os.path.join(out, "x")
        r = c.cli("artifact", "get", rid, "prepare", "nope", "-o", dest)
        self.assertEqual(r.rc, 3, r)
        self.assertIn("drover: error:", r.err)
        self.assertIn("no artifact 'nope'", r.err)
        self.assertIn("dataset, model", r.err, "the error should list the step's artifacts")
        r = c.cli("artifact", "get", rid, "nostep", "dataset", "-o", dest)
        self.assertEqual(r.rc, 3, r)
        self.assertIn("nostep", r.err)
        r = c.cli("artifact", "get", "r999999", "prepare", "dataset", "-o", dest)
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no run", r.err)
        r = c.cli("artifact", "get", rid, "prepare", "dataset")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("-o PATH", r.err)
        r = c.cli("artifact", "get", rid, "prepare", "dataset", "-o", c.path("no-dir", "x"))
        self.assertEqual(r.rc, 7, r)
        self.assertIn("no-dir", r.err)
        self.assertNoTemporaries(out, [])

        # a blob damaged in droverd's store: the digest check catches it and
        # nothing is left at PATH
        digest = sha256(MODEL["sub/cfg"])
        blob = os.path.join(c.state_dir, "blobs", digest[:2], digest)
        self.assertTrue(os.path.isfile(blob), "blob store layout changed? no %s" % blob)
        os.chmod(blob, 0o600)
        with open(blob, "wb") as f:
            f.write(b"C\n")
        r = c.cli("artifact", "get", rid, "prepare", "model", "-o", dest)
        self.assertEqual(r.rc, 7, r)
        self.assertIn("digest mismatch", r.err)
        self.assertIn("sub/cfg", r.err)
        self.assertNoTemporaries(out, [])
        with open(blob, "wb") as f:
            f.write(b"c\n")
        r = c.cli("artifact", "get", rid, "prepare", "model", "-o", dest)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(tree(dest), MODEL)

    # ---- run get: outputs, items

    def test_run_get_outputs_and_items(self):
        c = self.c
        rid = self.art_run()
        run = c.get_run(rid)
        prep = task(run, "prepare")
        self.assertEqual(prep["outputs"], {"params": {"rows": "1000", "note": LONG_NOTE}})
        self.assertIsNone(prep["cached_from"])
        self.assertIsNone(prep["item"])
        self.assertEqual(task(run, "shard[0]")["item"], "a")
        self.assertEqual(task(run, "shard[1]")["item"], "b")
        self.assertIsNone(task(run, "shard")["item"])
        r = c.cli("run", "get", rid)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("shard[1]", r.out)
        lines = r.out.splitlines()
        self.assertIn("OUTPUTS", lines)
        outputs = lines[lines.index("OUTPUTS") + 1:]
        self.assertEqual(outputs[0], "prepare.rows = 1000")
        shown = ("tab here " + "x" * 80)[:59] + "\u2026"
        self.assertEqual(outputs[1], "prepare.note = " + shown)

    # ---- run delete

    def test_run_delete(self):
        c = self.c
        rid = self.art_run()
        go = c.path("go")
        slow = c.submit({"name": "slow", "steps": [
            {"name": "s", "script": "while [ ! -e %s ]; do sleep 0.05; done" % go}]})
        c.wait_task_status(slow, "s", "RUNNING")
        r = c.cli("run", "delete", slow)
        self.assertEqual(r.rc, 6, r)
        self.assertIn("still running", r.err)
        self.assertEqual(c.get_run(slow)["status"], "RUNNING")
        with open(go, "w"):
            pass
        c.wait_run_final(slow)

        r = c.cli("run", "delete", rid)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "deleted %s\n" % rid)
        r = c.cli("run", "get", rid)
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no run", r.err)
        self.assertNotIn(rid, [x["id"] for x in c.runs()])
        r = c.cli("artifacts", rid)
        self.assertEqual(r.rc, 3, r)
        r = c.cli("run", "delete", rid)
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no run", r.err)

    # ---- the step cache

    def test_cache_clear_and_no_cache(self):
        c = self.c
        side = c.path("side")
        spec = c.write_spec(
            "name: cached\n"
            "steps:\n"
            "  - name: count\n"
            "    outputs: {params: [n]}\n"
            "    script: |\n"
            "      echo ran >> %s\n"
            "      echo 7 > $DROVER_OUTPUTS/n\n" % side, "cached.yaml")

        def runs_of_step():
            return len(harness.read_lines(side))

        def submit(*extra):
            rid = c.submit(spec, extra=extra)
            run = c.wait_run_final(rid)
            self.assertEqual(run["status"], "SUCCEEDED", run)
            return rid, task(run, "count")

        first, t = submit()
        self.assertEqual((t["status"], runs_of_step()), ("SUCCEEDED", 1))
        # an identical run reuses the step
        second, t = submit()
        self.assertEqual((t["status"], runs_of_step()), ("CACHED", 1), t)
        self.assertEqual(t["cached_from"], "%s/count" % first)
        self.assertEqual(t["outputs"], {"params": {"n": "7"}})
        r = c.cli("run", "get", second)
        self.assertEqual(r.rc, 0, r)
        row = [ln for ln in r.out.splitlines() if ln.startswith("count ")]
        self.assertEqual(len(row), 1, r.out)
        self.assertIn("CACHED", row[0])
        self.assertTrue(row[0].rstrip().endswith("reused %s/count" % first), row)
        self.assertIn("count.n = 7", r.out.splitlines())
        # --no-cache runs it anyway
        r = c.cli("submit", spec, "--no-cache", "--watch", timeout=90)
        self.assertEqual(r.rc, 0, r)
        third = r.out.splitlines()[0]
        t = task(c.get_run(third), "count")
        self.assertEqual((t["status"], t["cached_from"], runs_of_step()), ("SUCCEEDED", None, 2))
        # still cached without the flag; after cache clear, it runs again
        _, t = submit()
        self.assertEqual((t["status"], runs_of_step()), ("CACHED", 2), t)
        r = c.cli("cache", "clear")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "cache cleared\n")
        _, t = submit()
        self.assertEqual((t["status"], runs_of_step()), ("SUCCEEDED", 3), t)

    # ---- riding out a droverd restart

    def popen(self, *args, stderr_path):
        argv = [harness.bin_path("drover"), "--api", self.c.api] + [str(a) for a in args]
        env = dict(self.c.env, DROVER_API_TIMEOUT_MS="1000")
        err = open(stderr_path, "wb")
        self.addCleanup(err.close)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                             env=env, cwd=self.c.tmp)

        def stop():
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
        self.addCleanup(stop)
        return p

    def test_watch_and_follow_survive_droverd_restart(self):
        c = self.c
        go = c.path("go")
        rid = c.submit({"name": "restart", "steps": [
            {"name": "s", "script": "echo before; while [ ! -e %s ]; do sleep 0.05; done; "
                                    "echo after" % go}]})
        c.wait_task_status(rid, "s", "RUNNING")
        watch_err, logs_err = c.path("watch.err"), c.path("logs.err")
        watch = self.popen("run", "watch", rid, stderr_path=watch_err)
        logs = self.popen("logs", rid, "s", "-f", stderr_path=logs_err)
        data, ok = harness.read_with_timeout(logs, rb"before\n", timeout=30)
        self.assertTrue(ok, data)

        c.kill_droverd()
        for path in (watch_err, logs_err):
            harness.wait_until(lambda p=path: "no answer" in harness.read_text(p, ""), timeout=30,
                               what="%s to note the lost droverd" % os.path.basename(path))
        self.assertIsNone(watch.poll(), "run watch gave up at once")
        self.assertIsNone(logs.poll(), "logs -f gave up at once")
        c.start_droverd()
        c.wait_agent_connected("w1")
        with open(go, "w"):
            pass
        deadline = 60 * harness.SCALE
        self.assertEqual(watch.wait(timeout=deadline), 0, harness.read_text(watch_err))
        self.assertEqual(logs.wait(timeout=deadline), 0, harness.read_text(logs_err))
        out = watch.stdout.read().decode()
        self.assertRegex(out, r"run %s SUCCEEDED in " % rid)
        rest = logs.stdout.read()
        self.assertEqual(data + rest, b"before\nafter\n")
        for path in (watch_err, logs_err):
            text = harness.read_text(path, "")
            harness.check_sanitizer_text(text, path)
            self.assertIn("answers again", text)
            self.assertNotIn("error", text)

    def test_help_mentions_new_commands(self):
        r = self.c.cli("--help")
        self.assertEqual(r.rc, 0, r)
        for words in ("artifacts RUN", "artifact get", "run delete", "cache clear", "--no-cache"):
            self.assertIn(words, r.out)
        for args in (("artifact", "get", "--help"), ("artifacts", "--help"),
                     ("run", "delete", "--help"), ("cache", "clear", "--help"),
                     ("submit", "--help")):
            r = self.c.cli(*args)
            self.assertEqual(r.rc, 0, r)
            self.assertTrue(r.out.startswith("usage: drover"), r)


if __name__ == "__main__":
    harness.main()
