"""A fleet that lets no one in: CURVE keys between daemons, safe defaults,
API roles.

Real droverd and agents with keys made by `drover keygen`; a raw TCP proxy
between an agent and droverd records every byte, to show the traffic is
not plaintext (and, as a control, that it is without keys).
"""
import json
import os
import shutil
import signal
import socket
import stat
import threading
import uuid

import harness
from harness import DroverTestCase, free_port, holds_for, main, task, wait_final, wait_until


class Recorder:
    """A TCP proxy on loopback that keeps every byte it forwards."""

    def __init__(self, target_port):
        self.target = target_port
        self.data = bytearray()
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                with self.lock:
                    self.data += chunk
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def captured(self):
        with self.lock:
            return bytes(self.data)

    def close(self):
        self.closed = True
        self.srv.close()


class SecurityTest(DroverTestCase):
    def keygen(self, name, role=None):
        args = ["keygen", name, "--dir", self.keys]
        if role:
            args += ["--role", role]
        r = self.c.cli(*args, api=False)
        self.assertEqual(r.rc, 0, r)
        return os.path.join(self.keys, name + ".key"), os.path.join(self.keys, name + ".key_secret")

    def setUp(self):
        super().setUp()
        c = self.c
        self.keys = c.path("keys")
        self.auth = c.path("authorized-keys")
        self.api_keys = c.path("api-keys")
        for d in (self.keys, self.auth, self.api_keys):
            os.makedirs(d)
        self.server_pub, self.server_sec = self.keygen("droverd")

    def secure_droverd(self, extra=()):
        return self.c.start_droverd(extra=["--key", self.server_sec, "--authorized-keys",
                                           self.auth] + list(extra))

    def authorize(self, name):
        shutil.copy(os.path.join(self.keys, name + ".key"), self.auth)

    def sighup(self):
        self.c.droverd.note("SIGHUP")
        os.kill(self.c.droverd.pid, signal.SIGHUP)

    def secure_agent(self, name, key=None, wait=True):
        key = key or name
        extra = ["--key", os.path.join(self.keys, key + ".key_secret"),
                 "--scheduler-key", self.server_pub]
        d = self.c.start_agent(name, cpus=2, wait=False, extra=extra)
        if wait:
            self.c.wait_agent_connected(name)
        return d

    # ---------------------------------------------------------------- keys

    def test_keygen_writes_private_files_and_loose_ones_are_refused(self):
        c = self.c
        pub, sec = self.keygen("a1")
        for f in (pub, sec):
            self.assertEqual(stat.S_IMODE(os.stat(f).st_mode), 0o600, f)
        r = c.cli("keygen", "a1", "--dir", self.keys, api=False)
        self.assertNotEqual(r.rc, 0)
        self.assertIn("exists", r.err)
        # Each public key's header says where it goes: droverd's own key to
        # agents and users, never into its authorized-keys.
        with open(self.server_pub) as f:
            head = f.read().split("metadata")[0]
        self.assertIn("scheduler-key", head)
        self.assertNotIn("copy it to droverd's authorized-keys", head)
        with open(pub) as f:
            self.assertIn("copy it to droverd's authorized-keys", f.read())
        os.chmod(self.server_sec, 0o640)
        d = c.start_droverd(extra=["--key", self.server_sec, "--authorized-keys", self.auth],
                            wait=False)
        wait_until(lambda: not d.alive(), 30, what="droverd to refuse its loose key")
        d.expected_exit = True
        self.assertNotEqual(d.p.returncode, 0)
        self.assertIn("key file %s is readable by group or others (mode 0640)" % self.server_sec,
                      d.log_text())
        os.chmod(self.server_sec, 0o600)
        self.secure_droverd()
        os.chmod(sec, 0o644)
        a = self.secure_agent("a1", wait=False)
        wait_until(lambda: not a.alive(), 30, what="the agent to refuse its loose key")
        a.expected_exit = True
        self.assertIn("key file %s is readable by group or others" % sec, a.log_text())

    def test_no_keys_means_loopback_only_unless_insecure(self):
        c = self.c
        c.port = free_port()
        open_ep = "tcp://0.0.0.0:%d" % c.port
        d = c.start_droverd(extra=["--listen", open_ep], wait=False)
        wait_until(lambda: not d.alive(), 30, what="droverd to refuse an open port")
        d.expected_exit = True
        log = d.log_text()
        self.assertIn("refusing to listen on %s without keys" % open_ep, log)
        self.assertIn("drover keygen", log, "it says how to set keys up")
        api = "tcp://127.0.0.1:%d" % free_port()
        d = c.start_droverd(extra=["--api", api], wait=False)
        wait_until(lambda: not d.alive(), 30, what="droverd to refuse a TCP API without keys")
        d.expected_exit = True
        self.assertIn("refusing a TCP API endpoint %s without keys" % api, d.log_text())
        c.start_droverd(extra=["--listen", open_ep, "--insecure"])
        self.assertIn("INSECURE: agents socket %s is open without keys" % open_ep,
                      c.droverd.log_text())

    def test_unknown_key_refused_until_authorized_then_revoked(self):
        c = self.c
        self.keygen("a1")
        self.secure_droverd()
        a = self.secure_agent("a1", wait=False)
        wait_until(lambda: "message refused: unknown key" in c.droverd.log_text(), 30,
                   what="droverd to log the refusal")
        wait_until(lambda: a.log_text().count("droverd refused this agent") >= 2, 30,
                   what="the agent to report the refusal and try again")
        self.assertIn("trying again in", a.log_text())
        self.assertIsNone(c.agent("a1"), "a refused agent is not in the fleet")
        # authorized + SIGHUP: registers without a restart of anything
        self.authorize("a1")
        self.sighup()
        c.wait_agent_connected("a1", timeout=90)
        self.assertTrue(a.alive())
        rid = c.submit({"name": "after-auth", "steps": [{"name": "s", "command": ["true"]}]})
        self.assertRunSucceeded(wait_final(c, rid))
        # revoked + SIGHUP: its next message is refused, it is lost
        os.remove(os.path.join(self.auth, "a1.key"))
        seen = a.log_text().count("droverd refused this agent")
        self.sighup()
        wait_until(lambda: a.log_text().count("droverd refused this agent") > seen, 30,
                   what="the revoked agent's next message to be refused")
        wait_until(lambda: not (c.agent("a1") or {}).get("connected"), 30,
                   what="droverd to drop the revoked agent")
        self.assertIn("agent a1: its key %s was revoked" % self.pubkey("a1"),
                      c.droverd.log_text())
        self.assertEqual(c.cli_json("status")["counters"]["revoked_agents"], 1)

    def test_a_second_key_cannot_take_over_a_name(self):
        c = self.c
        self.keygen("a1")
        self.keygen("b1")
        self.authorize("a1")
        self.authorize("b1")
        self.secure_droverd()
        self.secure_agent("a1")
        c.kill_agent("a1")  # the name is free of connections now, but not of its key
        wait_until(lambda: not c.agent("a1")["connected"], 30, what="a1 to be lost")
        impostor = self.secure_agent("a1", key="b1", wait=False)
        wait_until(lambda: "belongs to agent 'b1', not 'a1'" in impostor.log_text(), 30,
                   what="the impostor to be refused")
        self.assertIn("agent 'a1': registration refused: key", c.droverd.log_text())
        self.assertFalse((c.agent("a1") or {}).get("connected"))
        impostor.kill()
        self.secure_agent("a1")  # the real key still works

    def pubkey(self, name):
        """The Z85 public key in NAME.key (czmq's zcert text format)."""
        with open(os.path.join(self.keys, name + ".key")) as f:
            for line in f:
                line = line.strip()
                if line.startswith("public-key"):
                    return line.split("=", 1)[1].strip().strip('"')
        raise AssertionError("no public key in %s.key" % name)

    def attacker(self, name, key):
        """drover-agent --name NAME with KEY's secret, from its own work dir
        (the attacker's machine)."""
        c = self.c
        work = c.path("attacker-" + key)
        os.makedirs(work, exist_ok=True)
        argv = [harness.bin_path("drover-agent"), "--scheduler", c.agents_endpoint,
                "--work-dir", work, "--name", name, "--cpus", "2", "--heartbeat", "200ms",
                "--key", os.path.join(self.keys, key + ".key_secret"),
                "--scheduler-key", self.server_pub]
        d = harness.Daemon("agent", "attacker", argv, c.path("attacker-%s.log" % key), c.env,
                           c.tmp)
        c.daemons.append(d)
        return d

    def test_no_key_can_take_an_agents_name_away(self):
        """Issue 12, defect 1: a refused peer (an unknown key, or another
        agent's authorized key) that claims a connected agent's name never
        displaces it: the agent stays connected, its step runs to the end
        there, and new work still reaches it."""
        c = self.c
        self.keygen("a1")
        self.keygen("b1")
        self.keygen("mallory")  # never authorized
        self.authorize("a1")
        self.authorize("b1")
        self.secure_droverd()
        self.secure_agent("a1")
        rid = c.submit({"name": "victim", "steps": [
            {"name": "s", "script": "sleep 6; echo survived"}]})
        c.wait_task_status(rid, "s", "RUNNING")
        for key in ("mallory", "b1"):
            seen = c.droverd.log_text().count("refused")
            evil = self.attacker("a1", key)
            wait_until(lambda: c.droverd.log_text().count("refused") >= seen + 3, 60,
                       what="droverd to refuse the %s key's messages three times" % key)
            holds_for(lambda: (c.agent("a1") or {}).get("connected"), 3,
                      what="a1 to stay connected while %s claims its name" % key)
            evil.kill()
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertEqual(len(task(run, "s")["history"]), 1, "the step ran once, undisturbed")
        self.assertIn("survived", c.cli("logs", rid, "s").out)
        self.assertNotIn("agent a1 lost", c.droverd.log_text())
        rid = c.submit({"name": "after", "steps": [{"name": "t", "command": ["true"]}]})
        self.assertRunSucceeded(wait_final(c, rid))

    def test_a_revoked_agent_is_lost_at_once(self):
        """Issue 12, defect 7: revoking a key (SIGHUP) takes its agent out
        of service at once: its steps are rescheduled, with the reason."""
        c = self.c
        for n in ("a1", "a2"):
            self.keygen(n)
            self.authorize(n)
        self.secure_droverd(extra=["--agent-timeout", "1h"])
        self.secure_agent("a1")
        rid = c.submit({"name": "revoke", "steps": [
            {"name": "s", "script": "sleep 2"}]})
        t = c.wait_task_status(rid, "s", "RUNNING")
        self.assertEqual(t["agent"], "a1")
        self.secure_agent("a2")
        os.remove(os.path.join(self.auth, "a1.key"))
        self.sighup()
        run = wait_final(c, rid)  # with a 1 h agent timeout: only the revocation frees it
        self.assertRunSucceeded(run)
        s = task(run, "s")
        self.assertEqual(s["history"][0]["status"], "LOST")
        self.assertIn("revoked", s["history"][0]["reason"])
        self.assertEqual(s["history"][-1]["agent"], "a2")

    def test_key_trouble_is_said_within_seconds(self):
        """Issue 12, defect 7: an agent with no key, or the wrong droverd
        key, says that droverd does not answer and why; droverd counts the
        failed handshakes."""
        c = self.c
        self.keygen("a1")
        self.authorize("a1")
        self.keygen("not-droverd")
        self.secure_droverd()
        bare = c.start_agent("bare", cpus=1, wait=False)
        wait_until(lambda: "probably requires keys (CURVE)" in bare.log_text(), 60,
                   what="the keyless agent to say droverd requires keys")
        wrong = c.start_agent("a1", cpus=1, wait=False, extra=[
            "--key", os.path.join(self.keys, "a1.key_secret"),
            "--scheduler-key", os.path.join(self.keys, "not-droverd.key")])
        wait_until(lambda: "CURVE handshake failure is the likely cause" in wrong.log_text(), 60,
                   what="the agent with the wrong droverd key to say so")
        # Both agents keep trying on new connections: each kind of failure
        # is logged and counted, whatever the order they reached droverd in.
        wait_until(lambda: "security mechanism mismatch" in c.droverd.log_text(), 60,
                   what="droverd to log the keyless agent's handshake")
        wait_until(lambda: "does not have droverd's public key" in c.droverd.log_text(), 60,
                   what="droverd to log the wrong-key agent's handshake")
        counters = c.cli_json("status")["counters"]
        self.assertGreaterEqual(counters["failed_handshakes"], 2, counters)
        wrong.kill()
        self.secure_agent("a1")  # the right keys still work

    # ---------------------------------------------------------------- traffic

    def run_with_secret(self, secure):
        c = self.c
        if secure:
            self.keygen("a1")
            self.authorize("a1")
            self.secure_droverd()
        else:
            c.start_droverd()
        rec = Recorder(c.port)
        self.addCleanup(rec.close)
        extra = ["--scheduler", "tcp://127.0.0.1:%d" % rec.port]
        if secure:
            extra += ["--key", os.path.join(self.keys, "a1.key_secret"),
                      "--scheduler-key", self.server_pub]
        c.start_agent("a1", cpus=2, extra=extra)
        secret = "s3cr3t-" + uuid.uuid4().hex
        rid = c.submit({"name": "secret", "steps": [
            {"name": "s", "env": {"TOKEN": secret}, "script": 'echo "token is $TOKEN"'}]})
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertIn(secret, c.cli("logs", rid, "s").out)
        return secret.encode(), rec.captured()

    def test_agent_traffic_is_not_plaintext(self):
        secret, captured = self.run_with_secret(secure=True)
        self.assertGreater(len(captured), 1000, "the proxy saw the conversation")
        self.assertNotIn(secret, captured)
        self.assertNotIn(b"token is", captured)
        self.assertNotIn(b"TOKEN", captured)

    def test_capture_control_without_keys_shows_plaintext(self):
        secret, captured = self.run_with_secret(secure=False)
        self.assertIn(secret, captured, "without keys the same capture shows the secret")

    # ---------------------------------------------------------------- API roles

    def test_api_roles(self):
        c = self.c
        api_port = free_port()
        api = "tcp://127.0.0.1:%d" % api_port
        for name, role in (("root", "admin"), ("alice", "submit"), ("carol", "submit"),
                           ("rita", "read")):
            self.keygen(name, role)
            shutil.copy(os.path.join(self.keys, name + ".key"), self.api_keys)
        self.keygen("eve", "admin")  # not in api-keys
        self.keygen("a1")
        self.authorize("a1")
        d = c.start_droverd(extra=["--key", self.server_sec, "--authorized-keys", self.auth,
                                   "--api", api, "--api-keys", self.api_keys], wait=False)

        def cli(user, *args):
            return c.cli("--api", api, "--key", os.path.join(self.keys, user + ".key_secret"),
                         "--server-key", self.server_pub, *args, api=False)

        wait_until(lambda: cli("root", "runs").rc == 0 or not d.alive(), 30,
                   what="the TCP API to answer")
        self.assertTrue(d.alive(), d.log_text())
        self.secure_agent("a1", wait=False)
        wait_until(lambda: '"connected": true' in cli("root", "agents", "-o", "json").out, 30,
                   what="a1 to register")
        spec = c.write_spec({"name": "roles", "steps": [
            {"name": "s", "command": ["sleep", "30"]}]})
        # read: look, but not submit or cancel
        r = cli("rita", "submit", spec)
        self.assertEqual(r.rc, 5)
        self.assertIn("permission denied: key 'rita' has role read; this needs submit", r.err)
        self.assertEqual(cli("rita", "agents").rc, 0)
        # submit: run and cancel its own, not others', not the fleet
        r = cli("alice", "submit", spec)
        self.assertEqual(r.rc, 0, r)
        mine = r.out.strip()
        r = cli("carol", "submit", spec)
        self.assertEqual(r.rc, 0, r)
        hers = r.out.strip()
        r = cli("rita", "run", "cancel", mine)
        self.assertIn("role read", r.err)
        r = cli("alice", "agent", "drain", "a1")
        self.assertEqual(r.rc, 5)
        self.assertIn("permission denied: key 'alice' has role submit; this needs admin", r.err)
        r = cli("alice", "agent", "forget", "a1")
        self.assertEqual(r.rc, 5, r)
        self.assertIn("this needs admin", r.err)
        r = cli("root", "agent", "forget", "a1")  # admin may ask; a1 is connected
        self.assertEqual(r.rc, 6, r)
        self.assertIn("a1 is connected", r.err)
        r = cli("alice", "run", "cancel", hers)
        self.assertEqual(r.rc, 5)
        self.assertIn("submitted by 'carol'", r.err)
        self.assertEqual(cli("alice", "run", "cancel", mine).rc, 0)
        self.assertEqual(cli("rita", "run", "get", mine, "-o", "json").rc, 0)
        # an unknown key is refused whatever its metadata claims
        r = cli("eve", "agents")
        self.assertEqual(r.rc, 5)
        self.assertIn("not in droverd's api-keys directory", r.err)
        # a context holds the endpoint and both keys: no flags needed
        xdg = {"XDG_CONFIG_HOME": c.path("cfg")}
        r = c.cli("context", "add", "sec", "--api", api, "--use", "--key",
                  os.path.join(self.keys, "rita.key_secret"), "--server-key", self.server_pub,
                  api=False, env=xdg)
        self.assertEqual(r.rc, 0, r)
        r = c.cli("status", "-o", "json", api=False, env=xdg)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("rita", json.loads(r.out)["caller"])
        r = c.cli("agent", "drain", "a1", api=False, env=xdg)
        self.assertEqual(r.rc, 5, r)
        # admin: everything
        self.assertEqual(cli("root", "agent", "drain", "a1").rc, 0)
        self.assertEqual(cli("root", "run", "cancel", hers).rc, 0)
        self.assertIn("role read", c.droverd.log_text(), "refusals are logged")



class LimitsTest(DroverTestCase):
    LIMITS = ["--max-spec", "4Ki", "--max-steps", "3", "--max-items", "5", "--max-param", "100",
              "--max-labels", "2", "--log-limit", "1Ki", "--max-message", "512Ki"]

    def counters(self):
        return self.c.cli_json("status")["counters"]

    def refused(self, spec, why, params=None):
        path = self.c.write_spec(spec)
        args = ["submit", path]
        for k, v in (params or {}).items():
            args += ["-p", "%s=%s" % (k, v)]
        r = self.c.cli(*args)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(why, r.err)
        # ... and droverd goes on serving everyone else
        rid = self.c.submit({"name": "fine", "steps": [{"name": "s", "command": ["true"], "cache": False}]})
        self.assertRunSucceeded(wait_final(self.c, rid))

    def test_every_limit_is_a_clear_error_and_a_counter(self):
        c = self.c
        c.start_droverd(extra=self.LIMITS)
        c.start_agent("a1", cpus=2, labels={"pool": "x"})
        status = c.cli_json("status")
        self.assertEqual(status["limits"]["max-steps"], 3)
        self.assertEqual(status["limits"]["max-message"], 512 << 10)
        one = lambda **kw: dict({"name": "s", "command": ["true"]}, **kw)
        self.refused("# " + "x" * 5000 + "\nname: big\nsteps:\n  - {name: s, command: [true]}\n",
                     "spec is larger than the limit of 4096 bytes")
        self.refused({"name": "steps", "steps": [one(name="s%d" % i) for i in range(4)]},
                     "too many steps (4; at most 3)")
        self.refused({"name": "items", "steps": [one(for_each=list("abcdef"))]},
                     "too many for_each items (6; at most 5)")
        self.refused({"name": "param", "params": {"p": "x"}, "steps": [one()]},
                     "param 'p' (-p p=...) is longer than 100 bytes", params={"p": "y" * 200})
        self.refused({"name": "labels", "steps": [one(placement={"labels": {
            "a": "1", "b": "2", "c": "3"}})]}, "too many labels (3; at most 2)")
        self.assertEqual(self.counters()["over_limits"], 5)
        # a fan-out list made at run time
        rid = c.submit({"name": "runtime-items", "steps": [
            {"name": "gen", "outputs": {"params": ["l"]},
             "script": "echo '[1,2,3,4,5,6]' > $DROVER_OUTPUTS/l"},
            {"name": "fan", "needs": ["gen"], "for_each": "{{steps.gen.outputs.params.l}}",
             "command": ["true"]}]})
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "FAILED")
        self.assertIn("more than 5 items (droverd's --max-items)", task(run, "fan")["reason"])
        self.assertEqual(self.counters()["over_limits"], 6)
        # log bytes per task
        rid = c.submit({"name": "chatty", "steps": [
            {"name": "s", "script": "head -c 5000 /dev/zero | tr '\\\\0' x"}]})
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertTrue(task(run, "s")["history"][0]["log_truncated"])
        self.assertLessEqual(len(c.cli("logs", rid, "s").out.replace("\n", "")), 1200)
        self.assertEqual(self.counters()["truncated_logs"], 1)
        # an agent with more labels than allowed is refused at registration
        extra_labels = {"l%d" % i: "v" for i in range(5)}
        d = c.start_agent("a2", cpus=1, labels=extra_labels, wait=False)
        wait_until(lambda: "too many labels" in d.log_text(), 30, what="a2 to be refused")
        self.assertGreaterEqual(self.counters()["refused_agents"], 1)
        # a message over max-message: the connection is dropped, not read
        big = c.write_spec("name: huge\nsteps:\n  - {name: s, command: [true]}\n# "
                           + "x" * (800 << 10) + "\n")
        r = c.cli("submit", big, env={"DROVER_API_TIMEOUT_MS": "2000"})
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("no answer from droverd", r.err)
        self.assertEqual(c.cli("runs").rc, 0, "droverd still serves")
        self.assertTrue(c.droverd.alive())


if __name__ == "__main__":
    main()
