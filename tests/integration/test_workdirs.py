"""Attempt directories are recycled (agent/workdirs.c) and a step never
sees what an earlier step left in them: its work, inputs, outputs and
checkpoint dirs are empty and writable, its progress file is empty, and
after the runs the agent's work dir holds no attempt dirs, only spares."""
import glob
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

# Leaves something everywhere a step can write, and notes which inode its
# work dir had (to show that later steps got the same dirs back).
DIRTY = r"""
set -e
top=$(dirname "$DROVER_OUTPUTS")
echo secret > "$DROVER_OUTPUTS/out.txt"
mkdir -p "$DROVER_OUTPUTS/a/b" && echo secret > "$DROVER_OUTPUTS/a/b/deep.txt"
echo secret > "$DROVER_CHECKPOINT_DIR/ck.txt"
echo secret > "$DROVER_INPUTS/in.txt"
echo secret > work.txt
ln -s {outside} "$DROVER_WORK_DIR/link" && ln -s "$(dirname {outside})" "$DROVER_OUTPUTS/dirlink"
mkdir "$DROVER_WORK_DIR/ro" && echo secret > "$DROVER_WORK_DIR/ro/f" && chmod 555 "$DROVER_WORK_DIR/ro"
echo '{"progress":0.5}' >> "$DROVER_PROGRESS"
echo secret > "$top/stray.txt"
echo "$(stat -c %i "$DROVER_WORK_DIR")" >> {log}
"""

# Fails (and says why in the log) unless the dirs are as new.
CHECK = r"""
top=$(dirname "$DROVER_OUTPUTS")
bad() { echo "BAD {{item}}: $*" >> {log}; exit 1; }
[ "$(pwd -P)" = "$(cd "$DROVER_WORK_DIR" && pwd -P)" ] || bad "cwd $(pwd)"
for d in "$DROVER_WORK_DIR" "$DROVER_INPUTS" "$DROVER_OUTPUTS" "$DROVER_CHECKPOINT_DIR"; do
  [ -d "$d" ] && [ ! -L "$d" ] || bad "$d is not a directory"
  [ -z "$(ls -A "$d")" ] || bad "$d holds: $(ls -A "$d" | tr '\n' ' ')"
  [ "$(stat -c %a "$d")" = "$(stat -c %a "$top")" ] || bad "$d mode $(stat -c %a "$d")"
  echo new > "$d/probe" || bad "$d is not writable"
done
[ -f "$DROVER_PROGRESS" ] && [ ! -s "$DROVER_PROGRESS" ] || bad "progress file: $(cat "$DROVER_PROGRESS")"
want="checkpoint inputs outputs progress.jsonl work "
got=$(ls -A "$top" | sort | tr '\n' ' ')
[ "$got" = "$want" ] || bad "attempt dir holds: $got"
[ "$(ls -A "$(dirname "$top")")" = 1 ] || bad "task dir holds: $(ls -A "$(dirname "$top")")"
echo "$(stat -c %i "$DROVER_WORK_DIR")" >> {log}
"""


def fan(name, script, n):
    return {"name": name,
            "steps": [{"name": "s", "for_each": list(range(n)), "script": script,
                       "resources": {"cpu": "100m"}}]}


class WorkdirsTest(harness.DroverTestCase):
    def test_recycled_dirs_are_clean(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        work = c.agent_work_dir("w1")
        spare = os.path.join(work, "spare")
        dirty_log, check_log = c.path("dirty.log"), c.path("check.log")
        outside = c.path("outside", "keep.txt")  # a link's target: never touched
        os.makedirs(os.path.dirname(outside))
        with open(outside, "w") as f:
            f.write("untouched")

        n1, n2 = 20, 60
        rid = c.submit(fan("dirty", DIRTY.replace("{log}", dirty_log).replace("{outside}", outside), n1))
        self.assertRunSucceeded(harness.wait_final(c, rid))
        # Each finished attempt's dir goes back to the pool once emptied: as
        # many spares as distinct dirs were made (a step that started after
        # another one ended may have had its dir already).
        def released():
            left = glob.glob(os.path.join(work, "runs", "*", "*", "*"))
            made = len(set(harness.read_lines(dirty_log)))
            return not left and len(os.listdir(spare)) == made
        harness.wait_until(released, timeout=30, what="the dirs of run 1 to be spares")

        rid = c.submit(fan("check", CHECK.replace("{log}", check_log), n2))
        run = harness.wait_final(c, rid, timeout=120)
        bad = [line for line in harness.read_lines(check_log) if line.startswith("BAD")]
        self.assertEqual(bad, [], "steps saw leftovers")
        self.assertRunSucceeded(run)

        # The later steps did run in the earlier steps' dirs (same inodes).
        first = set(harness.read_lines(dirty_log))
        later = set(harness.read_lines(check_log))
        self.assertEqual(len(harness.read_lines(dirty_log)), n1)
        self.assertTrue(first & later, "no dir was reused: %s vs %s" % (first, later))

        # Afterwards: no attempt dir left under runs/, and at most as many
        # spares as dirs were ever made.
        def settled():
            left = glob.glob(os.path.join(work, "runs", "*", "*", "*"))
            return not left and 0 < len(os.listdir(spare)) <= n1 + n2
        harness.wait_until(settled, timeout=30, what="attempt dirs to be recycled")
        for s in os.listdir(spare):
            top = os.path.join(spare, s, "1")
            self.assertEqual(sorted(os.listdir(os.path.join(spare, s))), ["1"])
            for sub in ("work", "inputs", "outputs", "checkpoint"):
                self.assertEqual(os.listdir(os.path.join(top, sub)), [], "spare %s/%s" % (s, sub))
        self.assertEqual(harness.read_text(outside), "untouched")
        self.assertEqual(os.listdir(os.path.dirname(outside)), ["keep.txt"])

    def test_keep_work_dirs(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2, extra=["--keep-work-dirs"])
        work = c.agent_work_dir("w1")
        rid = c.submit(fan("kept", "echo kept > result.txt", 3))
        self.assertRunSucceeded(harness.wait_final(c, rid))
        kept = glob.glob(os.path.join(work, "runs", "*", "*", "1", "work", "result.txt"))
        self.assertEqual(len(kept), 3, kept)
        self.assertEqual(os.listdir(os.path.join(work, "spare")), [])


class RelativePathsTest(harness.DroverTestCase):
    def test_relative_work_and_state_dirs(self):
        """`drover-agent --work-dir w1` and `droverd --state-dir st` (relative
        to where they were started): steps run under the resolved dirs
        (before, every step failed with exit 127, "the attempt dir must be
        an absolute path"), and droverd keeps its state where it says."""
        c = self.c
        c.start_droverd(extra=["--state-dir", "st"])
        c.start_agent("a1", extra=["--work-dir", "w1"])
        rid = c.submit({"name": "rel", "steps": [{"name": "s", "script": "pwd -P",
                                                  "resources": {"cpu": "100m"}}]})
        self.assertRunSucceeded(harness.wait_final(c, rid))
        w1 = os.path.realpath(c.path("w1"))
        self.assertIn("spare", os.listdir(w1))
        self.assertTrue(os.path.isfile(c.path("st", "data.mdb")))
        log = c.agents["a1"].log_text()
        self.assertIn("work dir %s" % c.path("w1"), log)


if __name__ == "__main__":
    harness.main()
