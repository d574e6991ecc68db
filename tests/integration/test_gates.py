"""Approval gates (issue 15, item 6): a step with `suspend:` runs nothing and
waits SUSPENDED until `drover run resume` (approve, with output params that
later steps read), `--reject`, or its timeout (fail or continue); the state
and its deadline survive kill -9 of droverd; only admin keys and the run's
owner (role submit) may resume; bad requests are refused with an exit
status by kind and change nothing."""
import datetime
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import free_port, task, wait_until  # noqa: E402

NOT_FOUND, DENIED, REFUSED = 3, 5, 6


def gate_spec(marker, suspend=None, outputs=("approved_by",)):
    """gate (suspend) → deploy, which writes what it read from the gate."""
    gate = {"name": "gate", "suspend": suspend if suspend is not None else {}}
    if outputs:
        gate["outputs"] = {"params": list(outputs)}
    ref = "{{steps.gate.outputs.params.approved_by}}" if outputs else "none"
    return {"name": "gated", "steps": [
        {"name": "build", "command": ["true"]},
        dict(gate, needs=["build"]),
        {"name": "deploy", "needs": ["gate"],
         "script": "printf '%%s' '%s' > %s" % (ref, marker)},
    ]}


class GatesTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("a1")

    def test_approve_with_params_read_downstream(self):
        c = self.c
        marker = c.path("deployed")
        rid = c.submit(gate_spec(marker))
        g = c.wait_task_status(rid, "gate", "SUSPENDED")
        self.assertIsNotNone(g["gate"]["suspended"])
        self.assertIsNone(g["gate"]["timeout_at"])
        self.assertIn("waiting for drover run resume", g["reason"])
        self.assertEqual(task(c.get_run(rid), "deploy")["status"], "WAITING")
        self.assertFalse(os.path.exists(marker))
        # the table shows it too
        r = c.cli("run", "get", rid)
        self.assertRegex(r.out, r"gate\s+SUSPENDED")
        self.assertIn("GATES", r.out)
        # an undeclared param is refused, nothing changes
        r = c.cli("run", "resume", rid, "gate", "-p", "nope=1")
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("does not declare output param 'nope'", r.err)
        self.assertEqual(task(c.get_run(rid), "gate")["status"], "SUSPENDED")
        watch = c.popen_cli("run", "watch", rid)  # piped: one line per change
        try:
            data, ok = harness.read_with_timeout(
                watch, rb"gate SUSPENDED: waiting for drover run resume\n")
            self.assertTrue(ok, data)
            r = c.cli("run", "resume", rid, "gate", "-p", "approved_by=alice")
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(r.out.strip(), "resumed %s gate" % rid)
            data, ok = harness.read_with_timeout(watch, rb"gate SUCCEEDED: approved by local\n")
            self.assertTrue(ok, data)
            self.assertEqual(watch.wait(timeout=60), 0)
        finally:
            if watch.poll() is None:
                watch.kill()
            watch.communicate()
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        self.assertEqual(harness.read_text(marker), "alice")
        g = task(run, "gate")
        self.assertEqual(g["status"], "SUCCEEDED")
        self.assertEqual(g["outputs"]["params"], {"approved_by": "alice"})
        self.assertEqual(g["gate"]["by"], "local")
        self.assertIsNotNone(g["gate"]["at"])
        self.assertFalse(g["gate"]["rejected"])
        self.assertEqual(g["reason"], "approved by local")
        r = c.cli("run", "get", rid)
        self.assertIn("approved by local", r.out)
        # a second resume: the step is not suspended any more
        r = c.cli("run", "resume", rid, "gate")
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("is not suspended: it is SUCCEEDED (approved by local)", r.err)

    def test_watch_on_a_terminal_shows_the_gate_waiting(self):
        c = self.c
        rid = c.submit(gate_spec(c.path("m"), {"timeout": "2h"}))
        c.wait_task_status(rid, "gate", "SUSPENDED")
        master, slave = pty.openpty()
        argv = [harness.bin_path("drover"), "--api", c.api, "run", "watch", rid]
        env = dict(c.env, TERM="xterm", COLUMNS="200", LINES="40", NO_COLOR="1")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             env=env, cwd=c.tmp)
        os.close(slave)
        data = b""
        try:
            deadline = time.monotonic() + 30 * harness.SCALE
            while b"awaiting approval" not in data and time.monotonic() < deadline:
                r, _, _ = select.select([master], [], [], 0.5)
                if r:
                    try:
                        data += os.read(master, 65536)
                    except OSError:
                        break
            self.assertIn(b"1 awaiting approval", data, data)
            self.assertRegex(data, rb"gate +SUSPENDED \(timeout in 1h59m")
        finally:
            p.kill()
            p.wait()
            os.close(master)

    def test_reject_fails_the_gate_and_skips_dependants(self):
        c = self.c
        marker = c.path("deployed")
        rid = c.submit(gate_spec(marker))
        c.wait_task_status(rid, "gate", "SUSPENDED")
        r = c.cli("run", "resume", rid, "gate", "--reject")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out.strip(), "rejected %s gate" % rid)
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "FAILED")
        g = task(run, "gate")
        self.assertEqual((g["status"], g["reason"]), ("FAILED", "rejected by local"))
        self.assertTrue(g["gate"]["rejected"])
        self.assertEqual(task(run, "deploy")["status"], "SKIPPED")
        self.assertFalse(os.path.exists(marker))

    def test_timeout_fail_and_continue(self):
        c = self.c
        m1, m2 = c.path("m1"), c.path("m2")
        failing = c.submit(gate_spec(m1, {"timeout": "1s"}))
        going = c.submit(gate_spec(m2, {"timeout": "1s", "on_timeout": "continue"}))
        run = c.wait_run_final(failing)
        self.assertEqual(run["status"], "FAILED")
        g = task(run, "gate")
        self.assertEqual((g["status"], g["reason"]), ("FAILED", "suspend timeout 1s"))
        self.assertEqual(task(run, "deploy")["status"], "SKIPPED")
        run = c.wait_run_final(going)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        g = task(run, "gate")
        self.assertEqual(g["status"], "SUCCEEDED")
        self.assertIn("suspend timeout 1s: continued as if approved", g["reason"])
        self.assertEqual(harness.read_text(m2), "")  # declared, not given: ""
        self.assertFalse(os.path.exists(m1))

    def test_cancel_ends_a_suspended_gate(self):
        c = self.c
        rid = c.submit(gate_spec(c.path("m")))
        c.wait_task_status(rid, "gate", "SUSPENDED")
        self.assertEqual(c.cli("run", "cancel", rid).rc, 0)
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "CANCELLED")
        self.assertEqual(task(run, "gate")["status"], "CANCELLED")
        r = c.cli("run", "resume", rid, "gate")
        self.assertEqual(r.rc, REFUSED, r)

    def test_suspended_survives_kill_9_and_a_passed_timeout_fires_at_load(self):
        c = self.c
        m1, m2 = c.path("m1"), c.path("m2")
        waiting = c.submit(gate_spec(m1))
        timed = c.submit(gate_spec(m2, {"timeout": "3s", "on_timeout": "continue"}))
        c.wait_task_status(waiting, "gate", "SUSPENDED")
        before = c.wait_task_status(timed, "gate", "SUSPENDED")
        c.kill_droverd()  # SIGKILL
        # stay down past the deadline
        deadline_s = _rfc3339_s(before["gate"]["timeout_at"])
        wait_until(lambda: time.time() > deadline_s + 0.5, timeout=30,
                   what="the gate's deadline to pass while droverd is down")
        c.start_droverd()
        g = task(c.get_run(waiting), "gate")
        self.assertEqual(g["status"], "SUSPENDED")
        run = c.wait_run_final(timed)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        self.assertIn("suspend timeout 3s", task(run, "gate")["reason"])
        self.assertEqual(harness.read_text(m2), "")
        # the one still waiting can be approved after the restart
        r = c.cli("run", "resume", waiting, "gate", "-p", "approved_by=bob")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(c.wait_run_final(waiting)["status"], "SUCCEEDED")
        self.assertEqual(harness.read_text(m1), "bob")

    def test_bad_requests_are_refused_by_kind(self):
        c = self.c
        rid = c.submit(gate_spec(c.path("m")))
        c.wait_task_status(rid, "gate", "SUSPENDED")
        r = c.cli("run", "resume", "r999999", "gate")
        self.assertEqual(r.rc, NOT_FOUND, r)
        self.assertIn("no run 'r999999'", r.err)
        r = c.cli("run", "resume", rid, "nosuch\x1b[2J" + "x" * 5000)
        self.assertEqual(r.rc, NOT_FOUND, r)
        self.assertIn("has no step '(a name with control characters)'", r.err)
        self.assertNotIn("\x1b", r.err)
        self.assertLess(len(r.err), 1000, "the echoed name is bounded")
        # a step that is no gate
        r = c.cli("run", "resume", rid, "build")
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("not an approval gate", r.err)
        # a value over the param limit (64 KiB)
        r = c.cli("run", "resume", rid, "gate", "-p", "approved_by=" + "x" * (65 * 1024))
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("longer than", r.err)
        r = c.cli("run", "resume", rid, "gate", "--reject", "-p", "approved_by=x")
        self.assertEqual(r.rc, 2, r)
        r = c.cli("run", "resume", rid)
        self.assertEqual(r.rc, 2, r)
        g = task(c.get_run(rid), "gate")
        self.assertEqual(g["status"], "SUSPENDED")
        self.assertEqual(g["outputs"]["params"], {})

    def test_spec_errors(self):
        c = self.c
        for spec, want in (
            ({"name": "x", "steps": [{"name": "g", "suspend": True, "command": ["true"]}]},
             "spec1.yaml:5:5: step 'g' has 'suspend' and 'command'"),
            ({"name": "x", "steps": [{"name": "g", "suspend": {"timeout": "1h",
                                                                "on_timeout": "maybe"}}]},
             "'suspend.on_timeout' must be fail or continue, not 'maybe'"),
            ({"name": "x", "steps": [{"name": "g", "suspend": {"tmeout": "1h"}}]},
             "unknown key 'tmeout' in suspend"),
        ):
            r = c.cli("submit", c.write_spec(spec))
            self.assertEqual(r.rc, REFUSED, r)
            self.assertIn(want, r.err)


def _rfc3339_s(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class GateRolesTest(harness.DroverTestCase):
    def keygen(self, name, role=None):
        args = ["keygen", name, "--dir", self.keys] + (["--role", role] if role else [])
        r = self.c.cli(*args, api=False)
        self.assertEqual(r.rc, 0, r)

    def test_only_admin_or_the_owner_may_resume(self):
        c = self.c
        self.keys = c.path("keys")
        api_keys, auth = c.path("api-keys"), c.path("authorized-keys")
        for d in (self.keys, api_keys, auth):
            os.makedirs(d)
        self.keygen("droverd")
        for name, role in (("root", "admin"), ("alice", "submit"), ("carol", "submit"),
                           ("rita", "read")):
            self.keygen(name, role)
            shutil.copy(os.path.join(self.keys, name + ".key"), api_keys)
        api = "tcp://127.0.0.1:%d" % free_port()
        d = c.start_droverd(extra=["--key", os.path.join(self.keys, "droverd.key_secret"),
                                   "--authorized-keys", auth, "--api", api, "--api-keys", api_keys], wait=False)

        def cli(user, *args):
            return c.cli("--api", api, "--key", os.path.join(self.keys, user + ".key_secret"),
                         "--server-key", os.path.join(self.keys, "droverd.key"), *args,
                         api=False)

        wait_until(lambda: cli("root", "runs").rc == 0 or not d.alive(), 30,
                   what="the TCP API to answer")
        spec = c.write_spec({"name": "g", "steps": [
            {"name": "gate", "suspend": True},
            {"name": "after", "needs": ["gate"], "command": ["true"]}]})
        mine = cli("alice", "submit", spec).out.strip()
        other = cli("alice", "submit", spec).out.strip()

        def status(rid):
            return task(json.loads(cli("rita", "run", "get", rid, "-o", "json").out),
                        "gate")["status"]

        wait_until(lambda: status(mine) == "SUSPENDED" and status(other) == "SUSPENDED", 30)
        r = cli("rita", "run", "resume", mine, "gate")
        self.assertEqual(r.rc, DENIED, r)
        self.assertIn("key 'rita' has role read; this needs submit", r.err)
        r = cli("carol", "run", "resume", mine, "gate")
        self.assertEqual(r.rc, DENIED, r)
        self.assertIn("run %s was submitted by 'alice'; role submit may resume gates of only "
                      "its own runs" % mine, r.err)
        self.assertEqual(status(mine), "SUSPENDED")
        r = cli("alice", "run", "resume", mine, "gate")
        self.assertEqual(r.rc, 0, r)
        r = cli("root", "run", "resume", other, "gate", "--reject")
        self.assertEqual(r.rc, 0, r)
        g = task(json.loads(cli("rita", "run", "get", mine, "-o", "json").out), "gate")
        self.assertEqual((g["status"], g["gate"]["by"]), ("SUCCEEDED", "alice"))
        g = task(json.loads(cli("rita", "run", "get", other, "-o", "json").out), "gate")
        self.assertEqual((g["status"], g["reason"]), ("FAILED", "rejected by root"))


if __name__ == "__main__":
    harness.main()
