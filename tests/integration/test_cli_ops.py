"""What operators expect of the command line (issue 13): --version on every
program, the server's version in `drover status`, distinct exit statuses,
"did you mean" for a mistyped command or flag, and a permission error on
the API socket that says what to do."""
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import bin_path  # noqa: E402

# The exit statuses `drover --help` and README document.
USAGE, NOT_FOUND, UNREACHABLE, DENIED, REFUSED, ERROR = 2, 3, 4, 5, 6, 7


class VersionTest(harness.DroverTestCase):
    def run_bin(self, name, *args):
        p = subprocess.run([bin_path(name)] + list(args), capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_every_program_has_version(self):
        versions = set()
        for prog in ("drover", "droverd", "drover-agent"):
            for flag in ("--version", "-V"):
                rc, out, err = self.run_bin(prog, flag)
                self.assertEqual(rc, 0, (prog, flag, out, err))
                m = re.fullmatch(r"(\S+) (\d+\.\d+\.\d+\S*)\n", out)
                self.assertTrue(m, (prog, flag, out))
                self.assertEqual(m.group(1), prog)
                versions.add(m.group(2))
            rc, out, _ = self.run_bin(prog, "--help")
            self.assertEqual(rc, 0)
            self.assertIn("--version", out, "%s --help should list --version" % prog)
        self.assertEqual(len(versions), 1, versions)
        # a global flag: after a command too, and nothing else is done
        rc, out, err = self.run_bin("drover", "runs", "--version")
        self.assertEqual((rc, out, err), (0, "drover %s\n" % versions.pop(), ""))

    def test_status_shows_both_versions(self):
        c = self.c
        c.start_droverd()
        rc, out, _ = self.run_bin("drover", "--version")
        mine = out.split()[1]
        st = c.cli_json("status")
        self.assertEqual(st["version"], mine)
        self.assertEqual(st["cli_version"], mine)
        r = c.cli("status")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("droverd %s, drover (this CLI) %s" % (mine, mine), r.out)


class ExitStatusTest(harness.DroverTestCase):
    def test_each_kind_of_failure_has_its_status(self):
        c = self.c
        # cannot connect: no droverd there
        r = c.cli("runs")
        self.assertEqual(r.rc, UNREACHABLE, r)
        self.assertIn("no answer from droverd", r.err)
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        # usage errors
        for args in (["no-such-command"], ["runs", "--no-such-flag"], ["runs", "-o", "xml"],
                     ["run", "get"], ["logs"]):
            r = c.cli(*args)
            self.assertEqual(r.rc, USAGE, r)
            self.assertIn("usage:", r.err)
        # not found: a run, a step, an agent
        r = c.cli("run", "get", "r999999")
        self.assertEqual(r.rc, NOT_FOUND, r)
        self.assertIn("no run 'r999999'", r.err)
        r = c.cli("agent", "drain", "nobody-here")
        self.assertEqual(r.rc, NOT_FOUND, r)
        go = c.path("go")
        rid = c.submit({"name": "slow", "steps": [
            {"name": "s", "script": "while [ ! -e %s ]; do sleep 0.05; done" % go}]})
        c.wait_task_status(rid, "s", "RUNNING")
        r = c.cli("logs", rid, "nope")
        self.assertEqual(r.rc, NOT_FOUND, r)
        # refused by droverd: the state is wrong, the spec invalid
        r = c.cli("run", "delete", rid)
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("still running", r.err)
        bad = c.write_spec("name: bad\nsteps:\n  - name: a\n    bogus: 1\n")
        r = c.cli("submit", bad)
        self.assertEqual(r.rc, REFUSED, r)
        # a local error
        r = c.cli("submit", c.path("missing.yaml"))
        self.assertEqual(r.rc, ERROR, r)
        with open(go, "w"):
            pass
        self.assertRunSucceeded(c.wait_run_final(rid))
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("already ended", r.err)
        # all of them are documented
        r = c.cli("--help")
        for code in range(8):
            self.assertRegex(r.out, r"\n  %d  \w" % code)


class DidYouMeanTest(harness.DroverTestCase):
    def test_mistyped_commands_and_flags(self):
        c = self.c
        for args, hint in ((["rnus"], "did you mean 'runs'?"),
                           (["agnets"], "did you mean 'agents'?"),
                           (["run", "gte", "x"], "did you mean 'run get'?"),
                           (["agent", "dran", "x"], "did you mean 'agent drain'?"),
                           (["runs", "--limt", "3"], "did you mean '--limit'?"),
                           (["runs", "--outptu", "json"], "did you mean '--output'?"),
                           (["logs", "--folow"], "did you mean '--follow'?"),
                           (["run", "watch", "--verison"], "did you mean '--version'?"),
                           (["stat"], "did you mean 'status'?")):
            r = c.cli(*args)
            self.assertEqual(r.rc, USAGE, r)
            self.assertIn(hint, r.err, r)
        # nothing close: no guess
        r = c.cli("xyzzy")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("unknown command 'xyzzy'", r.err)
        self.assertNotIn("did you mean", r.err)


class SocketPermissionTest(harness.DroverTestCase):
    def test_permission_error_names_the_group(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv to run the CLI as another user")
        c = self.c
        c.start_droverd()
        os.chmod(c.tmp, 0o711)  # the CLI binary's user may pass, not list
        sock = c.api[len("ipc://"):]
        os.chmod(sock, 0o660)  # root and its group only, as the unit's socket
        p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            bin_path("drover"), "--api", c.api, "runs"],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
                           env=c.env)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, UNREACHABLE, err)
        self.assertIn("Permission denied", err)
        self.assertIn("group drover", err)
        self.assertIn("adduser", err)


if __name__ == "__main__":
    harness.main()
