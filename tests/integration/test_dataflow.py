"""Data flow between steps (issue #3): artifacts and output params,
`when` conditions, fan-out / fan-in with parallelism, `finally` exit
handlers, and the refusals for bad data-flow input.

Every step is a real process on a real agent; what a test asserts is
what the steps themselves saw (side files they write into the test's
temp dir) and what `drover run get` / `drover logs` tell a user."""
import hashlib
import json
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402
from harness import check_daemons, wait_final  # noqa: E402,F401


# ------------------------------------------------------------------ step programs
#
# Written into the test's temp dir; python3 with the standard library only.

DF_COMMON = r'''
import hashlib, os

def tree_digest(root):
    """sha256 over (relative path, content sha256) of every file under
    root, sorted by path: equal iff the trees are equal."""
    h = hashlib.sha256()
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, root)
            with open(full, "rb") as fh:
                entries.append((rel, hashlib.sha256(fh.read()).hexdigest()))
    for rel, d in sorted(entries):
        h.update(rel.encode() + b"\0" + d.encode() + b"\n")
    return h.hexdigest(), len(entries)

def file_sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()

def write(path, text):
    with open(path, "w") as fh:
        fh.write(text)
'''

PREPARE = r'''
import os, random, sys
from dfcommon import file_sha, write
rows, side = int(sys.argv[1]), sys.argv[2]
out = os.environ["DROVER_OUTPUTS"]
rng = random.Random(42)
lines = ["x,y"]
for _ in range(rows):
    x = rng.random()
    lines.append("%.6f,%d" % (x, 1 if x > 0.37 else 0))
write(os.path.join(out, "dataset"), "\n".join(lines) + "\n")
write(os.path.join(out, "rows"), "%d\n" % rows)
write(os.path.join(side, "dataset.sha"), file_sha(os.path.join(out, "dataset")))
print("prepared %d rows" % rows)
'''

TRAIN = r'''
import json, os, random, sys
from dfcommon import tree_digest, write
rows_param, side = sys.argv[1], sys.argv[2]
data = os.path.join(os.environ["DROVER_INPUTS"], "data")
with open(data) as fh:
    rows = [tuple(map(float, l.split(","))) for l in fh.read().splitlines()[1:]]
if str(len(rows)) != rows_param:
    sys.exit("train: dataset has %d rows, prepare said %r" % (len(rows), rows_param))
best = max((sum((x > t) == (y == 1) for x, y in rows), t)
           for t in [i / 100 for i in range(101)])
acc, t = best[0] / len(rows), best[1]
model = os.path.join(os.environ["DROVER_OUTPUTS"], "model")
os.makedirs(os.path.join(model, "meta"))
write(os.path.join(model, "weights.json"), json.dumps({"t": t}))
write(os.path.join(model, "meta", "info.txt"), "trained on %d rows\n" % len(rows))
# a binary file larger than one transfer chunk (256 KiB)
with open(os.path.join(model, "embedding.bin"), "wb") as fh:
    fh.write(random.Random(7).randbytes(700 * 1024 + 13))
write(os.path.join(model, "empty.txt"), "")
digest, n = tree_digest(model)
write(os.path.join(side, "train-model.digest"), digest)
write(os.path.join(os.environ["DROVER_OUTPUTS"], "accuracy"), "%.4f" % acc)
print("trained: t=%.2f accuracy %.4f, %d files, digest %s" % (t, acc, n, digest))
'''

EVALUATE = r'''
import json, os, sys
from dfcommon import file_sha, tree_digest, write
threshold, side = float(sys.argv[1]), sys.argv[2]
inp = os.environ["DROVER_INPUTS"]
model, data = os.path.join(inp, "model"), os.path.join(inp, "data")
if not os.path.isdir(model):
    sys.exit("evaluate: %s is not a directory" % model)
if not os.path.isfile(data):
    sys.exit("evaluate: %s is not a file" % data)
digest, n = tree_digest(model)
run = os.environ["DROVER_RUN_ID"]
write(os.path.join(side, "evaluate-%s.model" % run), digest)
write(os.path.join(side, "evaluate-%s.dataset" % run), file_sha(data))
with open(os.path.join(model, "weights.json")) as fh:
    t = json.load(fh)["t"]
with open(data) as fh:
    rows = [tuple(map(float, l.split(","))) for l in fh.read().splitlines()[1:]]
acc = sum((x > t) == (y == 1) for x, y in rows) / len(rows)
better = "true" if acc >= threshold else "false"
out = os.environ["DROVER_OUTPUTS"]
write(os.path.join(out, "better"), better + "\n")
write(os.path.join(out, "accuracy"), "%.4f" % acc)
print("model digest %s (%d files); accuracy %.4f threshold %s -> better=%s"
      % (digest, n, acc, threshold, better))
'''


_ns = {}
exec(DF_COMMON, _ns)
tree_digest = _ns["tree_digest"]


def write_programs(c):
    for name, text in (("dfcommon.py", DF_COMMON), ("prepare.py", PREPARE),
                       ("train.py", TRAIN), ("evaluate.py", EVALUATE)):
        with open(c.path(name), "w") as f:
            f.write(text)


def ml_pipeline(c, side):
    src = c.tmp
    return {
        "name": "ml-dataflow",
        "params": {"rows": "3000", "threshold": "0.9"},
        "steps": [
            {"name": "prepare",
             "command": ["python3", src + "/prepare.py", "{{params.rows}}", side],
             "placement": {"labels": {"pool": "prep"}},
             "outputs": {"artifacts": ["dataset"], "params": ["rows"]}},
            {"name": "train", "needs": ["prepare"],
             "inputs": {"artifacts": {"data": "prepare.dataset"}},
             "command": ["python3", src + "/train.py",
                         "{{steps.prepare.outputs.params.rows}}", side],
             "placement": {"labels": {"pool": "train"}},
             "outputs": {"artifacts": ["model"], "params": ["accuracy"]}},
            {"name": "evaluate", "needs": ["train"],
             "inputs": {"artifacts": {"model": "train.model", "data": "prepare.dataset"}},
             "command": ["python3", src + "/evaluate.py", "{{params.threshold}}", side],
             "placement": {"labels": {"pool": "prep"}},
             "outputs": {"params": ["better", "accuracy"]}},
            {"name": "deploy", "needs": ["evaluate"],
             "when": "{{steps.evaluate.outputs.params.better}} == true",
             "script": 'echo "$DROVER_RUN_ID accuracy={{steps.evaluate.outputs.params.accuracy}}"'
                       ' > %s/deployed-$DROVER_RUN_ID' % side},
        ],
    }


def blob_files(state_dir):
    """Every stored blob file: {name: path} under STATE/blobs/XX/."""
    root = os.path.join(state_dir, "blobs")
    out = {}
    if not os.path.isdir(root):
        return out
    for d in os.listdir(root):
        if len(d) != 2:
            continue
        sub = os.path.join(root, d)
        for name in os.listdir(sub):
            out[name] = os.path.join(sub, name)
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def max_concurrency(lines):
    """Max number of items between their "start" and "end" lines, in file
    (= real time) order."""
    cur = peak = 0
    for line in lines:
        kind = line.split()[0]
        if kind == "start":
            cur += 1
            peak = max(peak, cur)
        elif kind == "end":
            cur -= 1
    return peak


class DataflowTest(harness.DroverTestCase):

    def assert_no_stalled_transfers(self):
        """A transfer that had to be restarted after 10 s without progress
        is a user-visible delay: on an idle loopback nothing may stall."""
        for name, d in self.c.agents.items():
            stalls = [l for l in d.log_text().splitlines() if "stalled" in l]
            self.assertEqual(stalls, [], "agent %s had stalled transfers" % name)

    # ------------------------------------------------------------ ML pipeline

    def test_ml_pipeline_artifacts_params_and_when(self):
        c = self.c
        c.start_droverd()
        c.start_agent("prep-node", cpus=2, labels={"pool": "prep"})
        c.start_agent("train-node", cpus=2, labels={"pool": "train"})
        write_programs(c)
        side = c.path("side")
        os.makedirs(side)
        spec = ml_pipeline(c, side)

        # run 1: accuracy (1.0 on this separable data) >= 0.9 -> deploy runs
        r1 = c.submit(spec, params={"threshold": "0.9"})
        run1 = wait_final(c, r1, timeout=90)
        self.assertRunSucceeded(run1)
        self.assertEqual(task(run1, "prepare")["agent"], "prep-node")
        self.assertEqual(task(run1, "train")["agent"], "train-node")
        self.assertEqual(task(run1, "evaluate")["agent"], "prep-node")

        # the model directory went train-node -> droverd -> prep-node intact
        train_digest = harness.read_text(os.path.join(side, "train-model.digest"))
        self.assertTrue(train_digest, "train did not record its model digest")
        self.assertEqual(harness.read_text(os.path.join(side, "evaluate-%s.model" % r1)),
                         train_digest, "evaluate received a different model than train wrote")
        self.assertEqual(harness.read_text(os.path.join(side, "evaluate-%s.dataset" % r1)),
                         harness.read_text(os.path.join(side, "dataset.sha")),
                         "evaluate received a different dataset than prepare wrote")
        logs = c.cli("logs", r1, "evaluate")
        self.assertEqual(logs.rc, 0, logs)
        self.assertIn("model digest %s (4 files)" % train_digest, logs.out)
        self.assertIn("better=true", logs.out)
        # output params as droverd recorded them (one trailing newline stripped)
        self.assertEqual(task(run1, "prepare")["outputs"]["params"], {"rows": "3000"})
        self.assertEqual(task(run1, "evaluate")["outputs"]["params"],
                         {"better": "true", "accuracy": "1.0000"})
        # what drover says it stored, and a download of it, match what train wrote
        arts = {(a["step"], a["name"]): a for a in c.cli_json("artifacts", r1)}
        self.assertEqual(set(arts), {("prepare", "dataset"), ("train", "model")})
        self.assertEqual(arts[("prepare", "dataset")]["kind"], "file")
        self.assertEqual(arts[("prepare", "dataset")]["digest"],
                         harness.read_text(os.path.join(side, "dataset.sha")))
        self.assertEqual(arts[("train", "model")]["kind"], "dir")
        self.assertEqual(sorted(f["path"] for f in arts[("train", "model")]["files"]),
                         ["embedding.bin", "empty.txt", "meta/info.txt", "weights.json"])
        dl = c.path("model-download")
        r = c.cli("artifact", "get", r1, "train", "model", "-o", dl)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(tree_digest(dl), (train_digest, 4))
        # deploy ran, and saw evaluate's output param in its script
        deployed = harness.read_text(os.path.join(side, "deployed-%s" % r1))
        self.assertEqual(deployed, "%s accuracy=1.0000\n" % r1)
        self.assertEqual(task(run1, "deploy")["status"], "SUCCEEDED")

        # run 2: the threshold cannot be met -> deploy SKIPPED by its condition
        r2 = c.submit(spec, params={"threshold": "1.01"})
        run2 = wait_final(c, r2, timeout=90)
        self.assertEqual(run2["status"], "SUCCEEDED",
                         "a step skipped by its condition does not fail the run: %s" % run2["tasks"])
        for name in ("prepare", "train"):  # same command and inputs as in run 1
            self.assertIn(task(run2, name)["status"], ("SUCCEEDED", "CACHED"), task(run2, name))
        self.assertEqual(task(run2, "evaluate")["status"], "SUCCEEDED", task(run2, "evaluate"))
        dep = task(run2, "deploy")
        self.assertEqual(dep["status"], "SKIPPED", dep)
        self.assertIn("when", dep["reason"], dep)
        self.assertEqual(dep["attempts"], 0, "a skipped step never runs: %s" % dep)
        self.assertFalse(os.path.exists(os.path.join(side, "deployed-%s" % r2)),
                         "deploy ran although its condition was false")
        logs = c.cli("logs", r2, "evaluate")
        self.assertIn("better=false", logs.out)
        # evaluate in run 2 still got the very same model (from run 1's train
        # when it was served from cache)
        self.assertEqual(harness.read_text(os.path.join(side, "evaluate-%s.model" % r2)),
                         train_digest)

        # train has both inputs and outputs: its upload must not stall
        self.assert_no_stalled_transfers()

        # every stored blob is whole: its name is its content's sha256
        blobs = blob_files(c.state_dir)
        self.assertTrue(blobs, "no blob stored under %s/blobs" % c.state_dir)
        for name, path in blobs.items():
            self.assertEqual(sha256_file(path), name, "blob %s is corrupt" % path)
        # and the dataset is one of them (content-addressed by its sha256)
        self.assertIn(harness.read_text(os.path.join(side, "dataset.sha")), blobs)

    # ------------------------------------------------------------ artifact shapes

    def test_artifact_shapes_cross_agents(self):
        """Empty files, an empty directory, nested directories, odd file
        names and an executable bit arrive as written on another agent."""
        c = self.c
        c.start_droverd()
        c.start_agent("src", cpus=2, labels={"node": "src"})
        c.start_agent("dst", cpus=2, labels={"node": "dst"})
        report = c.path("report.json")
        produce = (
            "cd $DROVER_OUTPUTS\n"
            ": > empty\n"
            "mkdir emptydir\n"
            "mkdir -p tree/a/b/c tree/d\n"
            "printf 'deep\\n' > tree/a/b/c/leaf.txt\n"
            ": > tree/d/zero\n"
            "printf 'spaced\\n' > 'tree/with space.txt'\n"
            "printf '#!/bin/sh\\necho tool-ran\\n' > tree/tool.sh\n"
            "chmod 755 tree/tool.sh\n"
            "head -c 600000 /dev/urandom > tree/d/random.bin\n"
            "sha256sum tree/d/random.bin | cut -d' ' -f1 > %s/random.sha\n" % c.tmp)
        check = r'''
import json, os, hashlib, subprocess, sys
inp = os.environ["DROVER_INPUTS"]
def kind(p):
    return "dir" if os.path.isdir(p) else "file" if os.path.isfile(p) else "missing"
r = {}
r["empty"] = [kind(inp + "/empty"), os.path.getsize(inp + "/empty") if os.path.isfile(inp + "/empty") else None]
r["emptydir"] = [kind(inp + "/emptydir"), sorted(os.listdir(inp + "/emptydir")) if os.path.isdir(inp + "/emptydir") else None]
files = {}
for d, _, fs in os.walk(inp + "/tree"):
    for f in fs:
        p = os.path.join(d, f)
        files[os.path.relpath(p, inp + "/tree")] = hashlib.sha256(open(p, "rb").read()).hexdigest()
r["tree"] = files
r["tool"] = subprocess.run([inp + "/tree/tool.sh"], capture_output=True, text=True).stdout
json.dump(r, open(sys.argv[1], "w"))
'''
        with open(c.path("check.py"), "w") as f:
            f.write(check)
        spec = {
            "name": "shapes",
            "steps": [
                {"name": "produce", "script": produce,
                 "placement": {"labels": {"node": "src"}},
                 "outputs": {"artifacts": ["empty", "emptydir", "tree"]}},
                {"name": "consume", "needs": ["produce"],
                 "placement": {"labels": {"node": "dst"}},
                 "inputs": {"artifacts": {"empty": "produce.empty", "emptydir": "produce.emptydir",
                                          "tree": "produce.tree"}},
                 "command": ["python3", c.path("check.py"), report]},
            ],
        }
        rid = c.submit(spec)
        run = wait_final(c, rid, timeout=60)
        self.assertRunSucceeded(run)
        got = json.loads(harness.read_text(report))
        sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
        self.assertEqual(got["empty"], ["file", 0])
        self.assertEqual(got["emptydir"], ["dir", []])
        self.assertEqual(got["tree"], {
            "a/b/c/leaf.txt": sha(b"deep\n"),
            "d/zero": sha(b""),
            "d/random.bin": harness.read_text(c.path("random.sha")).strip(),
            "with space.txt": sha(b"spaced\n"),
            "tool.sh": sha(b"#!/bin/sh\necho tool-ran\n"),
        })
        self.assertEqual(got["tool"], "tool-ran\n", "the executable bit was lost")
        self.assert_no_stalled_transfers()

    # ------------------------------------------------------------ fan-out / fan-in

    def test_fan_out_parallelism_and_fan_in(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        c.start_agent("w2", cpus=4)
        log = c.path("items.log")
        shard_log = c.path("shard.log")
        fanin = c.path("fanin.json")
        n = 6
        gen = ("python3 -c 'import json; print(json.dumps([{\"n\": i, \"name\": \"s%%d\" %% i}"
               " for i in range(%d)]))' > $DROVER_OUTPUTS/items" % n)
        # each item logs its start and end around a sleep, under an flock so
        # lines never interleave; file order is real-time order
        work = ('flock %(log)s -c "echo start $(date +%%s%%N) {{item.name}} $DROVER_AGENT >> %(log)s"\n'
                'sleep 1\n'
                'n={{item.n}}\n'
                'echo "sq-{{item.name}}-$((n*n))" > $DROVER_OUTPUTS/sq\n'
                'flock %(log)s -c "echo end $(date +%%s%%N) {{item.name}} >> %(log)s"\n'
                % {"log": log})
        spec = {
            "name": "fan",
            "steps": [
                {"name": "gen", "script": gen, "outputs": {"params": ["items"]}},
                {"name": "work", "needs": ["gen"],
                 "for_each": "{{steps.gen.outputs.params.items}}",
                 "parallelism": 2,
                 "script": work,
                 "outputs": {"params": ["sq"]}},
                {"name": "shard", "for_each": ["x", "y", "z"],
                 "script": "echo {{item}} >> %s; echo v-{{item}} > $DROVER_OUTPUTS/v" % shard_log,
                 "outputs": {"params": ["v"]}},
                {"name": "collect", "needs": ["work", "shard"],
                 "script": "printf '%%s\\n' '{{steps.work.outputs.params.sq}}' "
                           "'{{steps.shard.outputs.params.v}}' > %s" % fanin},
            ],
        }
        rid = c.submit(spec)
        run = wait_final(c, rid, timeout=90)
        self.assertRunSucceeded(run)
        names = [t["name"] for t in run["tasks"]]
        for i in range(n):
            self.assertIn("work[%d]" % i, names)
            self.assertEqual(task(run, "work[%d]" % i)["attempts"], 1)
        for i in range(3):
            self.assertIn("shard[%d]" % i, names)

        # fan-in: the items' params as a JSON list, in item order
        lines = harness.read_lines(fanin)
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(json.loads(lines[0]), ["sq-s%d-%d" % (i, i * i) for i in range(n)])
        self.assertEqual(json.loads(lines[1]), ["v-x", "v-y", "v-z"])
        self.assertEqual(json.loads(task(run, "work")["outputs"]["params"]["sq"]),
                         json.loads(lines[0]))
        for i in range(n):
            it = task(run, "work[%d]" % i)
            self.assertEqual(it["outputs"]["params"], {"sq": "sq-s%d-%d" % (i, i * i)}, it)
        self.assertEqual(sorted(harness.read_lines(shard_log)), ["x", "y", "z"])

        # parallelism: at most 2 items at once, and they did run in parallel
        ev = harness.read_lines(log)
        self.assertEqual(sorted(l.split()[2] for l in ev if l.startswith("start")),
                         ["s%d" % i for i in range(n)], "each item exactly once: %s" % ev)
        self.assertEqual(len([l for l in ev if l.startswith("end")]), n, ev)
        peak = max_concurrency(ev)
        self.assertLessEqual(peak, 2, "parallelism: 2 exceeded:\n%s" % "\n".join(ev))
        self.assertEqual(peak, 2, "items never overlapped (2 agents x 4 cpus):\n%s" % "\n".join(ev))

    # ------------------------------------------------------------ finally

    def test_finally_sees_run_status(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        order = c.path("order.log")

        def spec(name, fail):
            return {
                "name": name,
                "steps": [
                    {"name": "slow", "script": "sleep 1; echo %s-slow >> %s" % (name, order)},
                    {"name": "bad", "script": "echo %s-bad >> %s; exit %d" % (name, order, 3 if fail else 0)},
                    {"name": "after", "needs": ["bad"], "script": "echo %s-after >> %s" % (name, order)},
                ],
                "finally": [
                    {"name": "notify",
                     "script": "echo %s-notify >> %s; echo run {{run.id}} ended {{run.status}}"
                               % (name, order)},
                ],
            }

        rf = c.submit(spec("failing", True))
        rs = c.submit(spec("passing", False))
        runf = wait_final(c, rf, timeout=60)
        runs = wait_final(c, rs, timeout=60)

        self.assertEqual(runf["status"], "FAILED", runf["tasks"])
        self.assertEqual(task(runf, "bad")["status"], "FAILED")
        self.assertEqual(task(runf, "after")["status"], "SKIPPED")
        self.assertEqual(task(runf, "slow")["status"], "SUCCEEDED")
        self.assertEqual(task(runf, "notify")["status"], "SUCCEEDED", task(runf, "notify"))
        logs = c.cli("logs", rf, "notify")
        self.assertEqual(logs.rc, 0, logs)
        self.assertIn("run %s ended failed" % rf, logs.out)

        self.assertRunSucceeded(runs)
        logs = c.cli("logs", rs, "notify")
        self.assertEqual(logs.rc, 0, logs)
        self.assertIn("run %s ended succeeded" % rs, logs.out)

        # notify ran last in each run, after every other step had ended
        lines = harness.read_lines(order)
        for name, steps in (("failing", ["slow", "bad"]), ("passing", ["slow", "bad", "after"])):
            mine = [l.split("-", 1)[1] for l in lines if l.startswith(name + "-")]
            self.assertEqual(sorted(mine), sorted(steps + ["notify"]), lines)
            self.assertEqual(mine[-1], "notify", "notify did not run last in %s: %s" % (name, lines))
        fin = task(runf, "notify")
        for other in ("slow", "bad"):
            self.assertGreaterEqual(fin["started_ms"], task(runf, other)["finished_ms"])

    # ------------------------------------------------------------ bad input at submit

    def assert_refused(self, text, line, *needles):
        c = self.c
        before = [r["id"] for r in c.runs()]
        path = c.write_spec(text)
        r = c.cli("submit", path)
        self.assertEqual(r.rc, 6, "submit should fail: %r" % r)
        self.assertEqual(r.out.strip(), "", r)
        err = r.err.strip()
        self.assertRegex(err, r"%s:%d:\d+: " % (re.escape(os.path.basename(path)), line), r)
        for n in needles:
            self.assertIn(n, err, r)
        self.assertEqual(len(err.splitlines()), 1, "one error line: %r" % r)
        self.assertEqual([r["id"] for r in c.runs()], before, "a refused spec stored a run")

    def test_bad_specs_refused_at_submit(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        ok = c.submit("name: ok\nsteps:\n  - name: a\n    script: 'true'\n")
        self.assertEqual(wait_final(c, ok)["status"], "SUCCEEDED")

        # artifact names that would escape $DROVER_OUTPUTS / $DROVER_INPUTS
        self.assert_refused(
            "name: bad\n"
            "steps:\n"
            "  - name: a\n"
            "    script: 'true'\n"
            "    outputs: {artifacts: ['../evil']}\n", 5, "../evil")
        self.assert_refused(
            "name: bad\n"
            "steps:\n"
            "  - name: a\n"
            "    script: 'true'\n"
            "    outputs:\n"
            "      artifacts: [model, sub/dir]\n", 6, "sub/dir")
        self.assert_refused(
            "name: bad\n"
            "steps:\n"
            "  - name: a\n"
            "    script: 'true'\n"
            "    outputs: {params: ['../p']}\n", 5, "../p")
        self.assert_refused(
            "name: bad\n"
            "steps:\n"
            "  - name: a\n"
            "    script: 'true'\n"
            "    outputs: {artifacts: [data]}\n"
            "  - name: b\n"
            "    needs: [a]\n"
            "    script: 'true'\n"
            "    inputs:\n"
            "      artifacts: {'../../etc/x': a.data}\n", 10, "../../etc/x")
        # a condition on a step that does not exist
        self.assert_refused(
            "name: bad\n"
            "steps:\n"
            "  - name: a\n"
            "    script: 'true'\n"
            "    outputs: {params: [x]}\n"
            "  - name: b\n"
            "    needs: [a]\n"
            "    when: '{{steps.nosuch.outputs.params.x}} == 1'\n"
            "    script: 'true'\n", 8, "nosuch")
        # an input from a step that is not upstream
        self.assert_refused(
            "name: bad\n"
            "steps:\n"
            "  - name: a\n"
            "    script: 'true'\n"
            "    outputs: {artifacts: [data]}\n"
            "  - name: b\n"
            "    script: 'true'\n"
            "    inputs: {artifacts: {d: a.data}}\n", 8, "'a'", "needs")

    # ------------------------------------------------------------ bad outputs at run time

    def test_bad_outputs_fail_the_step(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        ran = c.path("ran")
        os.makedirs(ran)

        def consumer(name, src):
            return {"name": name, "needs": [src.split(".")[0]],
                    "inputs": {"artifacts": {"x": src}},
                    "script": "touch %s/%s" % (ran, name)}

        spec = {
            "name": "bad-outputs",
            "steps": [
                {"name": "bigparam",
                 "script": "head -c 70000 /dev/zero | tr '\\0' a > $DROVER_OUTPUTS/p",
                 "outputs": {"params": ["p"]}},
                {"name": "after-bigparam", "needs": ["bigparam"],
                 "script": "echo '{{steps.bigparam.outputs.params.p}}' > /dev/null; touch %s/after-bigparam" % ran},
                {"name": "missing", "script": "echo forgot to write the model",
                 "outputs": {"artifacts": ["model"]}},
                consumer("after-missing", "missing.model"),
                {"name": "linkdir",
                 "script": "mkdir $DROVER_OUTPUTS/model; echo w > $DROVER_OUTPUTS/model/weights;"
                           " ln -s /etc/passwd $DROVER_OUTPUTS/model/passwd",
                 "outputs": {"artifacts": ["model"]}},
                consumer("after-linkdir", "linkdir.model"),
                {"name": "linktop", "script": "ln -s /etc/passwd $DROVER_OUTPUTS/secret",
                 "outputs": {"artifacts": ["secret"]}},
                consumer("after-linktop", "linktop.secret"),
                {"name": "good", "script": "echo fine > $DROVER_OUTPUTS/a",
                 "outputs": {"artifacts": ["a"]}},
                consumer("after-good", "good.a"),
            ],
        }
        rid = c.submit(spec)
        run = wait_final(c, rid, timeout=60)
        self.assertEqual(run["status"], "FAILED", run["tasks"])

        def failed(name, *needles):
            t = task(run, name)
            self.assertEqual(t["status"], "FAILED", t)
            for n in needles:
                self.assertIn(n, t["reason"], t)
            return t

        failed("bigparam", "'p'", "larger than 65536 bytes")
        failed("missing", "declared output artifact 'model' was not written to $DROVER_OUTPUTS/model")
        failed("linkdir", "symbolic link", "passwd")
        failed("linktop", "secret")
        for name in ("after-bigparam", "after-missing", "after-linkdir", "after-linktop"):
            self.assertEqual(task(run, name)["status"], "SKIPPED", task(run, name))
            self.assertEqual(task(run, name)["attempts"], 0)
        self.assertEqual(task(run, "good")["status"], "SUCCEEDED")
        self.assertEqual(task(run, "after-good")["status"], "SUCCEEDED")
        self.assertEqual(sorted(os.listdir(ran)), ["after-good"])
        self.assert_no_stalled_transfers()

        # nothing outside the task dir was stored
        with open("/etc/passwd", "rb") as f:
            passwd = hashlib.sha256(f.read()).hexdigest()
        blobs = blob_files(c.state_dir)
        self.assertNotIn(passwd, blobs, "/etc/passwd was stored as a blob")
        for name, path in blobs.items():
            self.assertEqual(sha256_file(path), name, "blob %s is corrupt" % path)


if __name__ == "__main__":
    harness.main()
