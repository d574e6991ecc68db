"""System errors: an agent's or droverd's full disk is not the step's
failure. Real full file systems: a small tmpfs under an agent's --work-dir
or droverd's --state-dir, filled by the test (root is needed to mount; the
tests are skipped without it). The mounts are removed after the daemons
have stopped."""
import errno
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402

NO_SPACE = "no space left on device"


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_data(path, leave=0):
    """Write a file under path until its file system has at most `leave`
    bytes free (leave=0: until writes fail with ENOSPC)."""
    fd = os.open(os.path.join(path, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if leave:
            left = free_bytes(path) - leave
            block = b"\0" * (1 << 16)
            while left > 0:
                left -= os.write(fd, block[:min(len(block), left)])
            return
        for size in (1 << 16, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    if os.write(fd, block) < size:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def fill_inodes(path):
    """Create empty files under path until no inode is left."""
    d = os.path.join(path, "inodes")
    os.makedirs(d, exist_ok=True)
    for i in range(1000000):
        try:
            os.close(os.open(os.path.join(d, str(i)), os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            return
    raise AssertionError("%s: inodes never ran out" % path)


class SystemErrorsTest(harness.DroverTestCase):
    def setUp(self):
        self.mounts = []
        # Registered before the cluster's own clean-up, so it runs after it:
        # the daemons are gone before their file systems are.
        self.addCleanup(self.unmount_all)
        super().setUp()

    def unmount_all(self):
        for path in reversed(self.mounts):
            r = subprocess.run(["umount", path], capture_output=True)
            if r.returncode != 0:  # something still holds it: detach it anyway
                subprocess.run(["umount", "-l", path], capture_output=True)
        self.mounts = []

    def mount_tmpfs(self, path, size, inodes=None):
        os.makedirs(path, exist_ok=True)
        opts = "size=%s" % size + (",nr_inodes=%d" % inodes if inodes else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs (root needed): %s" % r.stderr.strip())
        self.mounts.append(path)

    def full_and_spare_agents(self):
        """Agent 'full' (preferred: more free cpu) on a work dir that is
        full, and agent 'ok' with room."""
        c = self.c
        full = c.agent_work_dir("full")
        self.mount_tmpfs(full, "4m", inodes=400)
        c.start_agent("full", cpus=8)
        c.start_agent("ok", cpus=2)
        return full

    def assert_ran_elsewhere(self, run, name):
        self.assertRunSucceeded(run)
        t = task(run, name)
        h = t["history"]
        self.assertEqual(t["retries_used"], 0, "a full disk spent the step's retries: %s" % t)
        self.assertEqual(t["system_errors"], 1, t)
        self.assertEqual([a["agent"] for a in h], ["full", "ok"], h)
        self.assertEqual([a["status"] for a in h], ["FAILED", "SUCCEEDED"], h)
        self.assertTrue(h[0]["system_error"], h[0])
        self.assertFalse(h[1]["system_error"], h[1])
        self.assertIn(NO_SPACE, h[0]["reason"], h[0])
        self.assertIn("agent full", h[0]["reason"], h[0])
        self.assertIn("not the step's failure", h[0]["reason"], h[0])
        return t

    def test_agent_disk_full_step_runs_on_another_agent(self):
        # produce: the step's own write fails (exit 1) because its agent's
        # disk is full; use: its input cannot be fetched there
        c = self.c
        c.start_droverd()
        full = self.full_and_spare_agents()
        fill_data(full)
        rid = c.submit({"name": "disk-full", "steps": [
            {"name": "produce", "script": "echo model > $DROVER_OUTPUTS/model",
             "outputs": {"artifacts": ["model"]}, "retries": 0},
            {"name": "use", "needs": ["produce"], "retries": 0,
             "inputs": {"artifacts": {"m": "produce.model"}},
             "script": "grep -q model $DROVER_INPUTS/m"},
        ]})
        run = harness.wait_final(c, rid)
        t = self.assert_ran_elsewhere(run, "produce")
        self.assertIn("exit code 1", t["history"][0]["reason"])
        t = self.assert_ran_elsewhere(run, "use")
        self.assertIn("inputs", t["history"][0]["reason"])
        self.assertIn(NO_SPACE, c.agents["full"].log_text())
        self.assertIn("system error", c.droverd.log_text())

    def test_agent_cannot_make_work_dir_step_runs_on_another_agent(self):
        # no inode left: the attempt's directories cannot be made (it used
        # to end FAILED with exit code 127)
        c = self.c
        c.start_droverd()
        full = self.full_and_spare_agents()
        fill_inodes(full)
        rid = c.submit({"name": "no-inodes", "steps": [
            {"name": "step", "script": "true", "retries": 0}]})
        run = harness.wait_final(c, rid)
        t = self.assert_ran_elsewhere(run, "step")
        self.assertIn("work dir", t["history"][0]["reason"])

    def test_system_errors_have_their_own_bound(self):
        # the only agent's disk stays full: the step is tried again there
        # (no other agent could take it) until --max-system-errors, then
        # fails with the cause, its retries untouched
        c = self.c
        c.start_droverd(extra=["--max-system-errors", "2"])
        self.assertEqual(c.cli_json("status")["limits"]["max-system-errors"], 2)
        work = c.agent_work_dir("full")
        self.mount_tmpfs(work, "4m")
        c.start_agent("full", cpus=4)
        fill_data(work)
        rid = c.submit({"name": "bounded", "steps": [
            {"name": "write", "script": "echo x > $DROVER_OUTPUTS/x",
             "outputs": {"artifacts": ["x"]}, "retries": 3},
        ]})
        run = harness.wait_final(c, rid)
        t = task(run, "write")
        self.assertEqual((run["status"], t["status"]), ("FAILED", "FAILED"), t)
        self.assertEqual(t["retries_used"], 0, t)
        self.assertEqual(t["system_errors"], 2, t)
        self.assertEqual(t["attempts"], 2, t)
        self.assertIn(NO_SPACE, t["reason"], t)
        self.assertIn("gave up after 2 system errors", t["reason"], t)
        self.assertTrue(all(a["system_error"] for a in t["history"]), t["history"])

    def test_droverd_disk_full_never_fails_the_step(self):
        # droverd's state dir fills up while a step uploads its output: the
        # upload waits and is tried again; the step neither fails nor runs
        # again, and droverd says what is wrong
        c = self.c
        self.mount_tmpfs(c.state_dir, "24m")
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        go = c.path("go")
        rid = c.submit({"name": "state-full", "steps": [
            {"name": "big", "retries": 2, "outputs": {"artifacts": ["blob"]},
             "script": "echo start >> %s; while [ ! -e %s ]; do sleep 0.05; done; "
                       "head -c 3000000 /dev/urandom > $DROVER_OUTPUTS/blob" % (c.path("starts"), go)},
        ]})
        c.wait_task_status(rid, "big", "RUNNING")
        # room for droverd's small commits, not for the 3 MB blob
        fill_data(c.state_dir, leave=1 << 20)
        with open(go, "w"):
            pass
        harness.wait_until(lambda: "%s (state dir %s" % (NO_SPACE, c.state_dir)
                           in c.droverd.log_text(), timeout=60,
                           what="droverd to log that its disk is full")
        harness.holds_for(lambda: c.droverd.alive() and
                          task(c.get_run(rid), "big")["status"] == "RUNNING",
                          3, what="the step to stay RUNNING while droverd's disk is full")
        os.unlink(os.path.join(c.state_dir, "filler"))
        run = harness.wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "big")
        self.assertEqual((t["attempts"], t["retries_used"], t["system_errors"]), (1, 0, 0), t)
        self.assertEqual(harness.read_lines(c.path("starts")), ["start"],
                         "the step must not run again")
        arts = c.cli_json("artifacts", rid)
        self.assertIn("blob", str(arts))


    def test_droverd_commit_on_full_disk_names_it(self):
        # droverd's own store cannot commit: droverd stops without acting on
        # the lost transaction, and its log says that the disk is full (LMDB
        # itself says "Input/output error" for a write cut short)
        c = self.c
        self.mount_tmpfs(c.state_dir, "8m")
        c.start_droverd()
        fill_data(c.state_dir)
        pad = "x" * 60000  # 12 steps of this: far more than LMDB's free pages
        spec = {"name": "big", "steps": [{"name": "s%d" % i, "script": "true", "env": {"PAD": pad}}
                                         for i in range(12)]}
        path = c.write_spec(spec)
        r = c.cli("submit", path, timeout=30, env={"DROVER_API_TIMEOUT_MS": "5000"})
        self.assertNotEqual(r.rc, 0, "a submit droverd could not store was answered: %r" % r)
        harness.wait_until(lambda: not c.droverd.alive(), timeout=30,
                           what="droverd to stop after the failed commit")
        c.droverd.expected_exit = True
        self.assertIn("store commit failed (%s (state dir %s: " % (NO_SPACE, c.state_dir),
                      c.droverd.log_text())
        # with space back droverd starts, with nothing of the lost submit
        os.unlink(os.path.join(c.state_dir, "filler"))
        c.start_droverd()
        self.assertEqual(c.runs(), [])
        c.start_agent("w1", cpus=2)
        self.assertRunSucceeded(harness.wait_final(c, c.submit(path)))

if __name__ == "__main__":
    harness.main()
