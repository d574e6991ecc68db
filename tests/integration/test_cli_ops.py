"""What operators expect of the command line (issue 13): --version on every
program, the server's version in `drover status`, distinct exit statuses,
"did you mean" for a mistyped command or flag, and a permission error on
the API socket that says what to do."""
import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import bin_path, wait_until  # noqa: E402

import yaml  # noqa: E402  (python3-yaml)

RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"

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


class DaemonLogTest(harness.DroverTestCase):
    STAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z %s: "

    def test_lines_are_stamped_unless_under_journald(self):
        for prog in ("droverd", "drover-agent"):
            env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
            # a bad flag: one error line, then exit 2
            p = subprocess.run([bin_path(prog), "--heartbeat" if prog != "droverd"
                                else "--agent-timeout", "soon"],
                               capture_output=True, timeout=30, env=env)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 2, err)
            self.assertRegex(err, self.STAMP % prog + "error: bad value 'soon'")
            env["JOURNAL_STREAM"] = "8:12345"  # journald stamps lines itself
            p = subprocess.run([bin_path(prog), "--heartbeat" if prog != "droverd"
                                else "--agent-timeout", "soon"],
                               capture_output=True, timeout=30, env=env)
            self.assertTrue(p.stderr.decode().startswith(prog + ": error: bad value"),
                            p.stderr)
        # a running droverd's lines too; the CLI's never
        c = self.c
        c.env.pop("JOURNAL_STREAM", None)
        c.start_droverd()
        first = c.droverd.log_text().splitlines()
        served = [ln for ln in first if "droverd serving" in ln]
        self.assertTrue(served and re.match(self.STAMP % "droverd", served[0]), first)
        r = c.cli("run", "get", "r999999")
        self.assertTrue(r.err.startswith("drover: error: no run"), r)


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


class FollowTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=4)

    def test_logs_follow_waits_for_a_fan_out_item(self):
        c = self.c
        go = c.path("go")
        rid = c.submit({"name": "fan", "steps": [
            {"name": "prep", "outputs": {"params": ["items"]},
             "script": "while [ ! -e %s ]; do sleep 0.05; done; echo '[\"x\", \"y\"]' "
                       "> $DROVER_OUTPUTS/items" % go},
            {"name": "shard", "needs": ["prep"], "for_each": "{{steps.prep.outputs.params.items}}",
             "script": "echo item {{item}}"}]})
        c.wait_task_status(rid, "prep", "RUNNING")
        self.assertNotIn("shard[1]", [t["name"] for t in c.cli_json("run", "get", rid)["tasks"]])
        p = c.popen_cli("logs", rid, "shard[1]", "-f")
        try:
            # it says it waits, and does
            line = p.stderr.readline().decode()
            self.assertIn("run %s has no step 'shard[1]' yet; waiting for it" % rid, line)
            self.assertIsNone(p.poll())
            with open(go, "w"):
                pass
            out, err = p.communicate(timeout=60 * harness.SCALE)
        finally:
            p.kill()
            p.communicate()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out.decode(), "item y\n")
        # a step that never comes: the wait ends with the run
        rid = c.submit({"name": "short", "steps": [
            {"name": "s", "script": "while [ ! -e %s ]; do sleep 0.05; done" % c.path("go2")}]})
        c.wait_task_status(rid, "s", "RUNNING")
        p = c.popen_cli("logs", rid, "nope", "-f")
        try:
            self.assertIn("waiting for it", p.stderr.readline().decode())
            with open(c.path("go2"), "w"):
                pass
            out, err = p.communicate(timeout=60 * harness.SCALE)
        finally:
            p.kill()
            p.communicate()
        self.assertEqual(p.returncode, NOT_FOUND, err)
        self.assertIn("has no step 'nope' (the run has ended SUCCEEDED)", err.decode())
        # without -f: not found at once
        r = c.cli("logs", rid, "nope")
        self.assertEqual(r.rc, NOT_FOUND, r)

    def test_watch_to_a_file_is_in_order_with_milliseconds(self):
        c = self.c
        # "slow" is listed first but ends last; "fast" ends first
        go = c.path("go")
        rid = c.submit({"name": "order", "steps": [
            {"name": "slow", "script": "while [ ! -e %s ]; do sleep 0.05; done" % go},
            {"name": "fast", "script": "true"},
            {"name": "after", "needs": ["fast"], "script": "touch %s" % go}]})
        self.assertRunSucceeded(c.wait_run_final(rid))
        # watched after the fact: every change arrives in one poll
        out = c.path("watch.txt")
        with open(out, "w") as f:
            p = subprocess.run([bin_path("drover"), "--api", c.api, "run", "watch", rid],
                               stdout=f, stderr=subprocess.PIPE, timeout=60, env=c.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            lines = f.read().splitlines()
        events = [ln for ln in lines if not ln.startswith("run ")]
        times = []
        for ln in events:
            m = re.match(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) (\S+) (\S+)", ln)
            self.assertTrue(m, "a millisecond time first: %r" % ln)
            h, mi, sec, ms = (int(x) for x in m.groups()[:4])
            times.append(((h * 60 + mi) * 60 + sec) * 1000 + ms)
        self.assertEqual(times, sorted(times), lines)
        order = [" ".join(ln.split()[1:3]) for ln in events]
        for a, b in (("fast RUNNING", "fast SUCCEEDED"), ("fast SUCCEEDED", "after RUNNING"),
                     ("after SUCCEEDED", "slow SUCCEEDED"), ("slow RUNNING", "slow SUCCEEDED")):
            self.assertLess(order.index(a), order.index(b), lines)
        self.assertTrue(lines[-1].startswith("run %s SUCCEEDED in " % rid), lines)


class ForgetAgentTest(harness.DroverTestCase):
    def test_forget_only_a_gone_agent(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=1)
        c.start_agent("w2", cpus=1)
        # connected: refused, and nothing changes
        r = c.cli("agent", "forget", "w1")
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("agent w1 is connected", r.err)
        self.assertTrue(c.agent("w1")["connected"])
        r = c.cli("agent", "forget", "nobody")
        self.assertEqual(r.rc, NOT_FOUND, r)
        self.assertIn("no agent 'nobody'", r.err)
        # gone: forgotten, and it stays forgotten across a restart
        c.kill_agent("w1")
        wait_until(lambda: not c.agent("w1")["connected"], 30, what="w1 to be disconnected")
        r = c.cli("agent", "forget", "w1")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "forgot w1\n")
        self.assertEqual(c.cli("agents", "-o", "name").out, "w2\n")
        c.restart_droverd()
        c.wait_agent_connected("w2")
        self.assertEqual(c.cli("agents", "-o", "name").out, "w2\n")
        r = c.cli("agent", "forget", "w1")
        self.assertEqual(r.rc, NOT_FOUND, r)
        # the same name registering again is a new agent
        c.start_agent("w1", cpus=1)
        self.assertEqual(sorted(c.cli("agents", "-o", "name").out.split()), ["w1", "w2"])
        self.assertIn("agent w1 forgotten", c.droverd.log_text())


class KeygenDirTest(harness.DroverTestCase):
    def test_keygen_makes_a_missing_directory_private(self):
        """`drover keygen droverd --dir keys` where keys/ does not exist yet
        (relative to the working directory, nested too): it is made, mode
        0700, and holds both files; a --dir that is a file says so."""
        c = self.c
        for d in ("keys", os.path.join("deep", "er", "keys")):
            r = c.cli("keygen", "droverd", "--dir", d, api=False)
            self.assertEqual(r.rc, 0, r)
            full = c.path(d)
            self.assertEqual(os.stat(full).st_mode & 0o777, 0o700, d)
            self.assertEqual(sorted(os.listdir(full)), ["droverd.key", "droverd.key_secret"])
            self.assertEqual(r.out, "%s/droverd.key\n%s/droverd.key_secret\n" % (d, d))
        with open(c.path("afile"), "w") as f:
            f.write("x")
        r = c.cli("keygen", "a1", "--dir", os.path.join("afile", "keys"), api=False)
        self.assertEqual(r.rc, ERROR, r)
        self.assertIn("afile/keys", r.err)


class ContextTest(harness.DroverTestCase):
    def test_contexts_choose_the_cluster(self):
        c = self.c
        c.start_droverd()
        cfg = c.path("cfg")
        env = {"XDG_CONFIG_HOME": cfg}

        def cli(*args, **kw):
            e = dict(env)
            e.update(kw.pop("env", {}))
            return c.cli(*args, api=False, env=e, **kw)

        # nothing saved: the default socket, which is not there
        r = cli("runs", env={"DROVER_API_TIMEOUT_MS": "2000"})
        self.assertEqual(r.rc, UNREACHABLE, r)
        self.assertIn("ipc:///run/drover/api.sock", r.err)
        r = cli("context", "add", "here", "--api", c.api, "--use")
        self.assertEqual((r.rc, r.out), (0, "saved context here (current)\n"), r)
        gone = "ipc://%s" % c.path("nobody-here.sock")
        self.assertEqual(cli("context", "add", "there", "--api", gone).rc, 0)
        # the files: private, one per context, and a current
        self.assertEqual(os.stat(os.path.join(cfg, "drover")).st_mode & 0o777, 0o700)
        self.assertEqual(
            os.stat(os.path.join(cfg, "drover", "contexts", "here.yaml")).st_mode & 0o777, 0o600)
        with open(os.path.join(cfg, "drover", "current")) as f:
            self.assertEqual(f.read(), "here\n")
        # the current context is used
        r = cli("runs", "-o", "json")
        self.assertEqual((r.rc, r.out), (0, "[]\n"), r)
        lst = json.loads(cli("context", "list", "-o", "json").out)
        self.assertEqual([(x["name"], x["current"], x["api"]) for x in lst],
                         [("here", True, c.api), ("there", False, gone)])
        self.assertEqual(yaml.safe_load(cli("context", "list", "-o", "yaml").out), lst)
        self.assertRegex(cli("context", "list").out, r"\*\s+here\s")
        # precedence: --context and $DROVER_CONTEXT over current; the
        # environment over a context; flags over everything
        self.assertEqual(cli("--context", "there", "runs").rc, UNREACHABLE)
        self.assertEqual(cli("runs", env={"DROVER_CONTEXT": "there"}).rc, UNREACHABLE)
        self.assertEqual(cli("--context", "there", "runs", env={"DROVER_API": c.api}).rc, 0)
        self.assertEqual(cli("--context", "there", "--api", c.api, "runs").rc, 0)
        r = cli("--context", "nope", "runs")
        self.assertEqual(r.rc, NOT_FOUND, r)
        self.assertIn("no context 'nope'", r.err)
        # use and remove
        self.assertEqual(cli("context", "use", "there").out, "using context there\n")
        self.assertEqual(cli("runs").rc, UNREACHABLE)
        self.assertEqual(cli("context", "use", "nope").rc, NOT_FOUND)
        self.assertEqual(cli("context", "remove", "there").out, "removed context there\n")
        self.assertFalse(os.path.exists(os.path.join(cfg, "drover", "current")))
        self.assertEqual(cli("context", "list", "-o", "name").out, "here\n")
        self.assertEqual(cli("context", "remove", "there").rc, NOT_FOUND)
        # bad input is refused, nothing written
        for args in (["context", "add", "x"], ["context", "add", "x", "--api", "http://h"],
                     ["context", "add", "../x", "--api", c.api],
                     ["context", "add", "x", "--api", c.api, "--key", c.path("no-key")]):
            r = cli(*args)
            self.assertEqual(r.rc, USAGE, r)
        self.assertEqual(cli("context", "list", "-o", "name").out, "here\n")
        # without XDG_CONFIG_HOME: ~/.config/drover
        home = c.path("home")
        os.makedirs(home)
        r = cli("context", "add", "h", "--api", c.api, "--use",
                env={"XDG_CONFIG_HOME": "", "HOME": home})
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(os.path.exists(os.path.join(home, ".config", "drover", "contexts",
                                                    "h.yaml")))
        self.assertEqual(cli("runs", env={"XDG_CONFIG_HOME": "", "HOME": home}).rc, 0)


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CompletionTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("gpu-1", cpus=1)
        self.c.start_agent("cpu-1", cpus=1)
        self.rid = self.c.submit({"name": "comp", "steps": [
            {"name": "prepare", "script": "echo x > $DROVER_OUTPUTS/data",
             "outputs": {"artifacts": ["data"]}},
            {"name": "train", "needs": ["prepare"], "script": "true"}]})
        self.assertRunSucceeded(self.c.wait_run_final(self.rid))

    def complete(self, *words):
        r = self.c.cli("__complete", *words)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.err, "")
        return r.out.split("\n")[:-1]

    def test_complete_engine(self):
        c, rid = self.c, self.rid
        self.assertIn("runs", self.complete(""))
        self.assertIn("context", self.complete(""))
        self.assertEqual(self.complete("ru"), ["runs", "run"])
        self.assertEqual(self.complete("run", "w"), ["watch"])
        self.assertEqual(self.complete("agent", ""), ["drain", "undrain", "forget", "preempt"])
        self.assertEqual(self.complete("run", "get", ""), [rid])
        self.assertEqual(self.complete("logs", rid, ""), ["prepare", "train"])
        self.assertEqual(self.complete("logs", rid, "tr"), ["train"])
        self.assertEqual(self.complete("artifact", "get", rid, "prepare", ""), ["data"])
        self.assertEqual(self.complete("agent", "drain", "gp"), ["gpu-1"])
        self.assertEqual(sorted(self.complete("agent", "forget", "")), ["cpu-1", "gpu-1"])
        self.assertEqual(self.complete("runs", "-o", ""), ["table", "wide", "json", "yaml", "name"])
        self.assertEqual(self.complete("runs", "--status", "f"), ["failed"])
        self.assertIn("--since", self.complete("runs", "--s"))
        self.assertEqual(self.complete("runs", "--wa"), ["--watch"])
        self.assertIn("--api", self.complete("--"))
        self.assertEqual(self.complete("submit", ""), [":files"])
        self.assertEqual(self.complete("artifact", "get", rid, "prepare", "data", "-o", ""),
                         [":files"])
        self.assertEqual(self.complete("help", "ag"), ["agents", "agent"])
        # global flags are skipped, and --api is used for droverd's names
        self.assertEqual(c.cli("__complete", "--api", c.api, "run", "get", "", api=False).out,
                         rid + "\n")
        self.assertEqual(self.complete("nonsense", ""), [])
        # droverd away: nothing, quietly
        r = c.cli("__complete", "--api", "ipc://" + c.path("none.sock"), "run", "get", "",
                  api=False)
        self.assertEqual((r.rc, r.out, r.err), (0, "", ""))

    def test_flags_offered_are_the_commands_own(self):
        # every flag completion offers is in the command's --help (the tables agree)
        c = self.c
        cmds = [w for w in self.complete("") if w != "help"]
        groups = ("run", "agent", "artifact", "cache", "context")
        checked = 0
        for w in cmds:
            for words in ([[w, sub] for sub in self.complete(w, "")] if w in groups else [[w]]):
                flags = [f for f in self.complete(*words, "-")
                         if f not in ("--api", "--key", "--server-key", "--context", "--token",
                                      "--help", "-h", "--version", "-V")]
                helptext = c.cli(*words, "--help").out
                checked += len(flags)
                for f in flags:
                    self.assertRegex(helptext,
                                     r"(^|[\s\[,])%s\b" % re.escape(f),
                                     "%s: %s offered, not in --help" % (" ".join(words), f))
        self.assertGreater(checked, 30)

    def test_bash_script(self):
        if not shutil.which("bash"):
            self.skipTest("no bash")
        c = self.c
        script = os.path.join(REPO, "completions", "drover.bash")
        drv = bin_path("drover")

        def bash_complete(line):
            words = line.split(" ")
            prog = ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _drover; "
                    "printf '%%s\\n' \"${COMPREPLY[@]}\"" % (
                        script, " ".join("'%s'" % w for w in [drv] + words[1:]),
                        len(words) - 1))
            p = subprocess.run(["bash", "-c", prog], capture_output=True, timeout=30,
                               env=dict(c.env, DROVER_API=c.api), cwd=c.tmp)
            self.assertEqual(p.returncode, 0, p.stderr)
            return [x for x in p.stdout.decode().split("\n") if x]

        self.assertEqual(bash_complete("drover run ca"), ["cancel"])
        self.assertEqual(bash_complete("drover logs %s pre" % self.rid), ["prepare"])
        self.assertEqual(sorted(bash_complete("drover agent drain ")), ["cpu-1", "gpu-1"])
        with open(c.path("pipeline.yaml"), "w") as f:
            f.write("name: x\n")
        self.assertIn("pipeline.yaml", bash_complete("drover submit pipe"))

    def test_zsh_script(self):
        if not shutil.which("zsh"):
            self.skipTest("no zsh")
        c = self.c
        # load the function the way compinit would, with compadd and _files
        # standing in for the completion system: they print what is offered
        prog = ("compadd() { [[ $1 == -- ]] && shift; print -l -- \"$@\"; }; "
                "_files() { print -- FILES; }; "
                "source %s; words=(%s); CURRENT=${#words}; _drover")
        script = os.path.join(REPO, "completions", "_drover")

        def zsh_complete(*words):
            quoted = " ".join("'%s'" % w for w in (bin_path("drover"),) + words)
            p = subprocess.run(["zsh", "-f", "-c", prog % (script, quoted)], capture_output=True,
                               timeout=30, env=dict(c.env, DROVER_API=c.api), cwd=c.tmp)
            self.assertEqual(p.returncode, 0, p.stderr)
            return [x for x in p.stdout.decode().split("\n") if x]

        self.assertEqual(zsh_complete("run", "ca"), ["cancel"])
        self.assertEqual(zsh_complete("logs", self.rid, ""), ["prepare", "train"])
        self.assertEqual(zsh_complete("submit", ""), ["FILES"])


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


class ListingTest(harness.DroverTestCase):
    """-o table|wide|json|yaml|name on every listing, filters, --watch."""

    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=2, labels={"zone": "a", "gpu": "no"})
        self.c.start_agent("w2", cpus=2, labels={"zone": "b"})

    def outputs(self, *args):
        """The listing in every format: {format: CliResult}, each rc 0."""
        res = {}
        for o in ("table", "wide", "json", "yaml", "name"):
            r = self.c.cli(*args, "-o", o)
            self.assertEqual(r.rc, 0, r)
            res[o] = r
        # yaml is the same document as json (but for heartbeat times, which
        # move between the two calls)
        def steady(doc):
            return [{k: v for k, v in x.items() if not k.startswith("last_seen")}
                    for x in doc]
        self.assertEqual(steady(yaml.safe_load(res["yaml"].out)),
                         steady(json.loads(res["json"].out)), args)
        return res

    def test_every_listing_has_every_format(self):
        c = self.c
        good = c.submit({"name": "alpha", "steps": [
            {"name": "s", "script": "echo x > $DROVER_OUTPUTS/f", "outputs": {"artifacts": ["f"]}}]})
        self.assertRunSucceeded(c.wait_run_final(good))
        # runs
        res = self.outputs("runs")
        self.assertEqual(res["name"].out, good + "\n")
        head = res["table"].out.splitlines()[0].split()
        self.assertEqual(head, ["ID", "NAME", "STATUS", "TASKS", "AGE", "DURATION"])
        self.assertEqual(res["wide"].out.splitlines()[0].split(),
                         head + ["OWNER", "CREATED", "SCHEDULE"])
        row = res["wide"].out.splitlines()[1]
        self.assertTrue(row.rstrip().endswith(" -"), "a run by hand has no schedule: %r" % row)
        self.assertIn("local", row)
        self.assertRegex(row, r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z]+",
                         "the created time carries its zone")
        doc = json.loads(res["json"].out)[0]
        self.assertRegex(doc["created"], RFC3339)
        self.assertRegex(doc["finished"], RFC3339)
        self.assertGreater(doc["created_ms"], 0)
        self.assertEqual(doc["owner"], "local")
        # run get
        for o in ("json", "yaml"):
            r = c.cli("run", "get", good, "-o", o)
            self.assertEqual(r.rc, 0, r)
        self.assertEqual(yaml.safe_load(c.cli("run", "get", good, "-o", "yaml").out),
                         json.loads(c.cli("run", "get", good, "-o", "json").out))
        self.assertEqual(c.cli("run", "get", good, "-o", "name").out, good + "\n")
        # agents
        res = self.outputs("agents")
        self.assertEqual(sorted(res["name"].out.split()), ["w1", "w2"])
        self.assertIn("LAST SEEN", res["table"].out)
        self.assertIn("SEEN AT", res["wide"].out)
        self.assertNotIn("SEEN AT", res["table"].out)
        for a in json.loads(res["json"].out):
            self.assertRegex(a["last_seen"], RFC3339)
        # artifacts
        res = self.outputs("artifacts", good)
        self.assertEqual(res["name"].out, "s f\n")
        digest = json.loads(res["json"].out)[0]["digest"]
        self.assertIn(digest, res["wide"].out)
        self.assertNotIn(digest, res["table"].out)
        # status: a document too
        r = c.cli("status", "-o", "yaml")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(yaml.safe_load(r.out)["version"], c.cli_json("status")["version"])
        # a wrong format is a usage error naming the choices
        r = c.cli("agents", "-o", "xml")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("table, wide, json, yaml or name", r.err)

    def test_yaml_quotes_what_yaml_would_misread(self):
        c = self.c
        # params whose text a YAML reader would take for other types
        rid = c.submit({"name": "tricky", "params": {
            "yes": "no", "n": "1e3", "null": "~", "q": "a: b # c", "nl": "x\ny\t\"z\""},
            "steps": [{"name": "s", "script": "true"}]})
        c.wait_run_final(rid)
        j = json.loads(c.cli("run", "get", rid, "-o", "json").out)
        y = yaml.safe_load(c.cli("run", "get", rid, "-o", "yaml").out)
        self.assertEqual(y, j)

    def test_filters(self):
        c = self.c
        ok = c.submit({"name": "alpha", "steps": [{"name": "s", "script": "true"}]})
        bad = c.submit({"name": "beta", "steps": [{"name": "s", "script": "exit 3",
                                                    "retries": 0}]})
        c.wait_run_final(ok)
        c.wait_run_final(bad)
        names = lambda *a: c.cli("runs", "-o", "name", *a).out.split()  # noqa: E731
        self.assertEqual(names("--status", "failed"), [bad])
        self.assertEqual(names("--status", "SUCCEEDED,failed"), [bad, ok])
        self.assertEqual(names("--name", "alpha"), [ok])
        self.assertEqual(names("--owner", "local"), [bad, ok])
        self.assertEqual(names("--owner", "someone"), [])
        self.assertEqual(names("--since", "1h"), [bad, ok])
        self.assertEqual(names("--status", "failed", "--limit", "1"), [bad])
        r = c.cli("runs", "--status", "done")
        self.assertEqual(r.rc, USAGE, r)
        self.assertIn("'done'", r.err)
        r = c.cli("runs", "--since", "soon")
        self.assertEqual(r.rc, USAGE, r)
        # agents by label
        self.assertEqual(c.cli("agents", "-o", "name", "-l", "zone=a").out, "w1\n")
        self.assertEqual(c.cli("agents", "-o", "name", "-l", "zone=b").out, "w2\n")
        self.assertEqual(c.cli("agents", "-o", "name", "-l", "zone=a", "-l", "gpu=yes").out, "")
        self.assertEqual(len(c.cli_json("agents", "-l", "zone=a")), 1)
        r = c.cli("agents", "-l", "zone")
        self.assertEqual(r.rc, USAGE, r)

    def read_until(self, p, needle, lines):
        def more():
            line = p.stdout.readline().decode()
            lines.append(line)
            return needle in line
        wait_until(more, timeout=60, what="%r in the watch output" % needle)

    def watch(self, *args):
        p = self.c.popen_cli(*args)

        def stop():
            p.kill()
            p.communicate()
        self.addCleanup(stop)
        return p

    def test_watch_prints_changes(self):
        c = self.c
        go = c.path("go")
        p = self.watch("runs", "-w")
        lines = []
        self.read_until(p, "ID", lines)  # the header of an empty table
        rid = c.submit({"name": "watched", "steps": [
            {"name": "s", "script": "while [ ! -e %s ]; do sleep 0.05; done" % go}]})
        self.read_until(p, rid, lines)
        with open(go, "w"):
            pass
        self.read_until(p, "SUCCEEDED", lines)
        self.assertEqual(sum(1 for x in lines if x.split()[:1] == ["ID"]), 1,
                         "one header: %r" % lines)
        # agents -w: a drained agent's row comes again
        p = self.watch("agents", "-w", "-l", "zone=a")
        lines = []
        self.read_until(p, "w1", lines)
        self.assertEqual(c.cli("agent", "drain", "w1").rc, 0)
        self.read_until(p, "drained", lines)
        self.assertFalse(any("w2" in x for x in lines), lines)
        r = c.cli("runs", "-w", "-o", "json")
        self.assertEqual(r.rc, USAGE, r)


if __name__ == "__main__":
    harness.main()
