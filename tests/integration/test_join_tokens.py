"""Join tokens (issue 18, README "Join tokens"): a new node joins with a
token instead of a key someone copied.

Real droverd with CURVE on (keys from `drover keygen`, as in
test_security.py) and real agents started with --join-token: each agent
makes its own key pair, presents the token over CURVE, and droverd
authorizes that key for that node name only. The attacks: a reused
single-use token, an expired one, a forged secret, a name the token does
not admit, a name that already has a key; and revocation.
"""
import json
import os
import re
import secrets
import shutil
import signal

from harness import DroverTestCase, free_port, holds_for, main, task, wait_until


class JoinTokenTest(DroverTestCase):
    def setUp(self):
        super().setUp()
        c = self.c
        self.keys = c.path("keys")
        self.auth = c.path("authorized-keys")
        for d in (self.keys, self.auth):
            os.makedirs(d)
        r = c.cli("keygen", "droverd", "--dir", self.keys, api=False)
        self.assertEqual(r.rc, 0, r)
        self.server_pub = os.path.join(self.keys, "droverd.key")
        self.server_sec = os.path.join(self.keys, "droverd.key_secret")
        c.start_droverd(extra=["--key", self.server_sec, "--authorized-keys", self.auth])

    def create(self, *args):
        r = self.c.cli("token", "create", *args)
        self.assertEqual(r.rc, 0, r)
        tok = r.out.strip()
        self.assertRegex(tok, r"^drv1\.[0-9a-f]{8}\.[0-9a-f]{64}$")
        return tok

    def key_file(self, name):
        return self.c.path("node-keys", name, name + ".key_secret")

    def join_agent(self, name, token, wait=True):
        extra = ["--key", self.key_file(name), "--scheduler-key", self.server_pub,
                 "--join-token", token]
        return self.c.start_agent(name, cpus=2, wait=wait, extra=extra)

    def tokens(self):
        return {t["id"]: t for t in self.c.cli_json("tokens")}

    def refused_joins(self):
        return self.c.cli_json("status")["counters"]["refused_joins"]

    def wait_refused(self, name, reason):
        d = self.c.agents[name]
        wait_until(lambda: "droverd refused this agent: " + reason in d.log_text(), 30,
                   what="agent %s to be refused: %s" % (name, reason))

    def test_join_run_reuse_restart_revoke(self):
        c = self.c
        tok = self.create("--pool", "gpu-spot", "--ttl", "1h")
        tid = tok.split(".")[1]
        t = self.tokens()[tid]
        self.assertEqual(t["state"], "valid")
        self.assertEqual((t["pool"], t["uses_left"], t["admitted"]), ("gpu-spot", 1, []))
        # The secret is shown once and never again; not stored either.
        listing = c.cli("tokens", "-o", "json").out + c.cli("tokens", "-o", "wide").out
        self.assertNotIn(tok.split(".")[2], listing)

        self.assertFalse(os.path.exists(self.key_file("n1")))
        self.join_agent("n1", tok)
        # Its key was made on the node, 0600, and is the one admitted.
        self.assertEqual(os.stat(self.key_file("n1")).st_mode & 0o777, 0o600)
        with open(self.key_file("n1")[:-len("_secret")]) as f:
            pub = re.search(r'public-key = "([^"]+)"', f.read()).group(1)
        t = self.tokens()[tid]
        self.assertEqual(t["state"], "used")
        self.assertEqual([(a["name"], a["key"]) for a in t["admitted"]], [("n1", pub)])
        rid = c.submit({"name": "p", "steps": [{"name": "s", "command": ["echo", "joined"]}]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "s")["agent"], "n1")

        # Single use: another node with the same token is refused, counted.
        self.join_agent("n2", tok, wait=False)
        self.wait_refused("n2", "join token used up")
        self.assertGreaterEqual(self.refused_joins(), 1)
        self.assertFalse((c.agent("n2") or {}).get("connected"))

        # kill -9 of droverd: the joined key stays authorized.
        c.agents["n2"].kill()
        c.kill_droverd()
        c.start_droverd(extra=["--key", self.server_sec, "--authorized-keys", self.auth])
        c.wait_agent_connected("n1")
        # The agent restarted with the same token: its key is known, the
        # token is not checked again (it is used up) and nothing is refused.
        refused = self.refused_joins()
        c.kill_agent("n1")
        wait_until(lambda: not c.agent("n1")["connected"], 30, what="n1 lost")
        self.join_agent("n1", tok)
        self.assertEqual(self.refused_joins(), refused)
        # A SIGHUP reloads authorized-keys: the joined key is kept.
        c.droverd.note("SIGHUP")
        os.kill(c.droverd.pid, signal.SIGHUP)
        wait_until(lambda: "SIGHUP: reloaded 1 agent keys" in c.droverd.log_text(), 30,
                   what="the reload")
        self.assertTrue(holds_for(lambda: c.agent("n1")["connected"], 1.5))
        rid = c.submit({"name": "p2", "steps": [{"name": "s", "command": ["true"]}]})
        self.assertRunSucceeded(c.wait_run_final(rid))

        # Revoking the token takes back the key it admitted: n1 is lost at
        # once and its messages are refused.
        r = c.cli("token", "revoke", tid)
        self.assertEqual(r.rc, 0, r)
        wait_until(lambda: not c.agent("n1")["connected"], 30, what="n1 dropped")
        self.wait_refused("n1", "unknown key")
        self.assertEqual(self.tokens()[tid]["state"], "revoked")
        self.assertEqual(self.tokens()[tid]["admitted"], [])
        self.assertTrue(holds_for(lambda: not c.agent("n1")["connected"], 2))

    def test_expired_forged_and_wrong_name_are_refused(self):
        c = self.c
        valid = self.create("--pool", "a", "--ttl", "1h", "--uses", "5", "--name-prefix", "gpu-")
        short = self.create("--pool", "a", "--ttl", "1s")
        bound = self.create("--pool", "a", "--ttl", "1h", "--node", "gpu-7")
        wait_until(lambda: self.tokens()[short.split(".")[1]]["state"] == "expired", 30,
                   what="the short token to expire")
        forged = ".".join(valid.split(".")[:2] + [secrets.token_hex(32)])
        unknown = "drv1.%s.%s" % (secrets.token_hex(4), secrets.token_hex(32))
        cases = [("gpu-1", short, "join token expired"),
                 ("gpu-2", forged, "join token unknown"),
                 ("gpu-3", unknown, "join token unknown"),
                 ("gpu-4", "not-a-token", "join token unknown"),
                 ("cpu-1", valid, "join token admits only names starting with 'gpu-'"),
                 ("gpu-5", bound, "join token bound to node gpu-7")]
        for name, tok, _ in cases:
            self.join_agent(name, tok, wait=False)
        for name, _, reason in cases:
            self.wait_refused(name, reason)
        self.assertGreaterEqual(self.refused_joins(), len(cases))
        for name, _, _ in cases:
            self.assertFalse((c.agent(name) or {}).get("connected"), name)
        # Nothing was spent by the refusals.
        t = self.tokens()
        self.assertEqual(t[valid.split(".")[1]]["uses_left"], 5)
        self.assertEqual(t[bound.split(".")[1]]["uses_left"], 1)
        # The right names do join.
        self.join_agent("gpu-7", bound)
        self.join_agent("gpu-8", valid)
        self.assertEqual(self.tokens()[valid.split(".")[1]]["uses_left"], 4)

    def test_a_name_with_a_key_cannot_be_taken_and_forget_revokes(self):
        c = self.c
        tok = self.create("--pool", "a", "--ttl", "1h", "--uses", "3")
        self.join_agent("n1", tok)
        # A second node claiming n1's name with its own key is refused.
        imp_key = self.c.path("node-keys", "impostor", "n1.key_secret")
        imp = c.start_agent("impostor", cpus=1, wait=False,
                            extra=["--key", imp_key, "--scheduler-key", self.server_pub,
                                   "--join-token", tok, "--name", "n1"])
        wait_until(lambda: "droverd refused this agent: node name n1 already has a key"
                   in imp.log_text(), 30, what="the impostor refused")
        self.assertEqual(self.tokens()[tok.split(".")[1]]["uses_left"], 2)
        self.assertGreaterEqual(self.refused_joins(), 1)
        imp.kill()
        # `drover agent forget` takes back the key the token admitted.
        c.agents["n1"].kill()
        wait_until(lambda: not c.agent("n1")["connected"], 60, what="n1 gone")
        r = c.cli("agent", "forget", "n1")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.tokens()[tok.split(".")[1]]["admitted"], [])
        # Restarted with its old key (and the token, which it no longer
        # needs while its key is known), n1 is now an unknown key that must
        # join again: it does, spending a second use.
        self.join_agent("n1", tok)
        self.assertEqual(self.tokens()[tok.split(".")[1]]["uses_left"], 1)

    def test_token_commands_check_their_input(self):
        c = self.c
        r = c.cli("token", "create", "--pool", "a")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("missing --ttl", r.err)
        r = c.cli("token", "create", "--pool", "bad pool", "--ttl", "1h")
        self.assertEqual(r.rc, 6, r)
        self.assertIn("bad pool name", r.err)
        r = c.cli("token", "revoke", "deadbeef")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no join token 'deadbeef'", r.err)

    def test_token_commands_need_role_admin(self):
        c = self.c
        api = "tcp://127.0.0.1:%d" % free_port()
        api_keys = c.path("api-keys")
        os.makedirs(api_keys)
        for name, role in (("root", "admin"), ("sam", "submit"), ("rita", "read")):
            r = c.cli("keygen", name, "--role", role, "--dir", self.keys, api=False)
            self.assertEqual(r.rc, 0, r)
            shutil.copy(os.path.join(self.keys, name + ".key"), api_keys)
        c.kill_droverd()
        d = c.start_droverd(extra=["--key", self.server_sec, "--authorized-keys", self.auth,
                                   "--api", api, "--api-keys", api_keys], wait=False)

        def cli(user, *args):
            return c.cli("--api", api, "--key", os.path.join(self.keys, user + ".key_secret"),
                         "--server-key", self.server_pub, *args, api=False)

        wait_until(lambda: cli("root", "tokens").rc == 0 or not d.alive(), 30,
                   what="the TCP API to answer")
        for user in ("sam", "rita"):
            for args in (("token", "create", "--pool", "a", "--ttl", "1h"), ("tokens",),
                         ("token", "revoke", "00000000")):
                r = cli(user, *args)
                self.assertEqual(r.rc, 5, r)
                self.assertIn("this needs admin", r.err)
        r = cli("root", "token", "create", "--pool", "a", "--ttl", "1h")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(json.loads(cli("root", "tokens", "-o", "json").out)), 1)


if __name__ == "__main__":
    main()
