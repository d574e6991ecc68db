"""Bearer API tokens (issue 19, README "API tokens"): `drover token create
NAME --role R` makes `drva1.<id>.<secret>`; a request carrying it (the
CLI's --token / $DROVER_TOKEN, ApiRequest.bearer) runs as the token, its
role and name, on whatever socket it came: here droverd's ipc socket,
whose callers are otherwise admins, so every refusal below is the token's.

Real droverd (and one agent where runs must run), the real CLI, kill -9
for durability, and a raw ZMTP client (test_malformed.Zmtp) for a flood of
bad tokens faster than the CLI could send them.
"""
import json
import os
import secrets
import socket
import struct

from harness import DroverTestCase, main, wait_until
from test_malformed import Zmtp, pb_bytes

SPEC = {"name": "tok", "steps": [{"name": "s", "command": ["sleep", "60"]}]}
TOKEN_RE = r"^drva1\.[0-9a-f]{8}\.[0-9a-f]{64}$"


class ApiTokenTest(DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()

    # ---- helpers

    def create(self, name, role, *extra):
        r = self.c.cli("token", "create", name, "--role", role, *extra)
        self.assertEqual(r.rc, 0, r)
        tok = r.out.strip()
        self.assertRegex(tok, TOKEN_RE, "stdout holds the token alone")
        self.assertIn("shown only now", r.err)
        return tok

    def as_token(self, tok, *args):
        return self.c.cli("--token", tok, *args)

    def tokens(self):
        return {t["id"]: t for t in self.c.cli_json("tokens")}

    def owner(self, rid):
        return {r["id"]: r["owner"] for r in self.c.runs()}[rid]

    def refused_tokens(self):
        return self.c.cli_json("status")["counters"]["refused_tokens"]

    def assertRefused(self, r, text, secret=None):
        self.assertEqual(r.rc, 5, r)
        self.assertIn(text, r.err)
        if secret:
            self.assertNotIn(secret, r.err + r.out, "the secret is never echoed")

    # ---- tests

    def test_roles_and_ownership(self):
        c = self.c
        reader = self.create("viewer", "read")
        submitter = self.create("ci", "submit", "--ttl", "1h")
        admin = self.create("ops", "admin")
        spec = c.write_spec(SPEC)
        theirs = c.submit(spec)  # by the ipc socket's caller, "local"

        # read: look, never change
        self.assertRefused(self.as_token(reader, "submit", spec),
                           "permission denied: API token 'viewer' has role read; this needs submit")
        self.assertEqual(self.as_token(reader, "runs").rc, 0)
        r = self.as_token(reader, "run", "get", theirs, "-o", "json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(json.loads(r.out)["id"], theirs)
        r = self.as_token(reader, "status", "-o", "json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(json.loads(r.out)["caller"], "API token viewer (read)")
        self.assertRefused(self.as_token(reader, "run", "cancel", theirs), "has role read")
        self.assertRefused(self.as_token(reader, "tokens"), "this needs admin")

        # submit: its own runs (owned by the token's name), not another's
        r = self.as_token(submitter, "submit", spec)
        self.assertEqual(r.rc, 0, r)
        mine = r.out.strip()
        self.assertEqual(self.owner(mine), "ci")
        self.assertRefused(self.as_token(submitter, "run", "cancel", theirs),
                           "run %s was submitted by 'local'" % theirs)
        self.assertRefused(self.as_token(submitter, "token", "create", "x", "--role", "admin"),
                           "API token 'ci' has role submit; this needs admin")
        # $DROVER_TOKEN works as the flag does
        r = c.cli("run", "cancel", mine, env={"DROVER_TOKEN": submitter})
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(c.get_run(mine)["status"], "CANCELLED")
        ids = [x["id"] for x in json.loads(self.as_token(submitter, "runs", "-o", "json",
                                                         "--owner", "ci").out)]
        self.assertEqual(ids, [mine])

        # admin: everything, including tokens
        self.assertEqual(self.as_token(admin, "run", "cancel", theirs).rc, 0)
        r = self.as_token(admin, "token", "create", "made-by-ops", "--role", "read")
        self.assertEqual(r.rc, 0, r)
        listing = self.tokens()
        self.assertEqual(listing[r.out.strip().split(".")[1]]["created_by"], "ops")
        # the listing: both kinds, a kind each, never a secret
        join = c.cli("token", "create", "--pool", "gpu", "--ttl", "1h").out.strip()
        listing = self.tokens()
        kinds = {t["id"]: (t["kind"], t["name"], t["role"]) for t in listing.values()}
        self.assertEqual(kinds[reader.split(".")[1]], ("api", "viewer", "read"))
        self.assertEqual(kinds[submitter.split(".")[1]], ("api", "ci", "submit"))
        self.assertEqual(kinds[join.split(".")[1]], ("join", "", ""))
        self.assertIsNone(listing[reader.split(".")[1]]["expires"], "no --ttl: no expiry")
        self.assertIsNotNone(listing[submitter.split(".")[1]]["expires"])
        self.assertIsNotNone(listing[reader.split(".")[1]]["last_used"], "it was used")
        text = "".join(c.cli("tokens", "-o", fmt).out for fmt in ("json", "yaml", "wide", "table"))
        self.assertIn("viewer", text)
        for tok in (reader, submitter, admin, join):
            self.assertNotIn(tok.split(".")[2], text)
        table = c.cli("tokens").out.splitlines()
        self.assertIn("KIND", table[0])
        row = [l for l in table if l.startswith(reader.split(".")[1])][0].split()
        self.assertEqual(row[1:4], ["api", "viewer", "read"])
        # a join token is no API token, nor the other way round
        self.assertRefused(self.as_token(join, "runs"), "a join token is no API token")

    def test_revoked_and_expired_are_refused(self):
        c = self.c
        tok = self.create("ci", "submit")
        self.assertEqual(self.as_token(tok, "runs").rc, 0)
        before = self.refused_tokens()
        r = c.cli("token", "revoke", "ci")  # by name
        self.assertEqual(r.rc, 0, r)
        self.assertIn("revoked API token %s 'ci'" % tok.split(".")[1], r.out)
        # its very next request
        self.assertRefused(self.as_token(tok, "runs"),
                           "API token 'ci' (%s) was revoked" % tok.split(".")[1],
                           tok.split(".")[2])
        self.assertEqual(self.refused_tokens(), before + 1)
        self.assertEqual(self.tokens()[tok.split(".")[1]]["state"], "revoked")
        # the name is free again once its token is revoked; a duplicate is not
        again = self.create("ci", "read")
        r = c.cli("token", "create", "ci", "--role", "admin")
        self.assertEqual(r.rc, 6, r)
        self.assertIn("an API token named 'ci' already exists (%s)" % again.split(".")[1], r.err)
        self.assertEqual(r.out, "")
        r = c.cli("token", "revoke", again.split(".")[1])  # by id
        self.assertEqual(r.rc, 0, r)
        self.assertRefused(self.as_token(again, "runs"), "was revoked")
        r = c.cli("token", "revoke", "nobody")
        self.assertEqual(r.rc, 3, r)

        short = self.create("brief", "read", "--ttl", "1s")
        tid = short.split(".")[1]
        wait_until(lambda: self.tokens()[tid]["state"] == "expired", 30,
                   what="the 1s token to expire")
        self.assertRefused(self.as_token(short, "runs"), "API token 'brief' (%s) expired at"
                           % tid, short.split(".")[2])
        # bad requests for a token
        for args, text in ((("x y", "--role", "read"), "bad API token name"),
                           (("n", "--role", "read", "--pool", "p"), "for join tokens"),
                           (("n",), "missing --role")):
            r = c.cli("token", "create", *args)
            self.assertEqual(r.rc, 2 if "missing" in text or "join" in text else 6, r)
            self.assertIn(text, r.err)

    def test_bad_tokens_and_a_flood_leave_droverd_serving(self):
        c = self.c
        good = self.create("ci", "read")
        gid = good.split(".")[1]
        forged = "drva1.%s.%s" % (gid, secrets.token_hex(32))
        unknown = "drva1.%s.%s" % (secrets.token_hex(4), secrets.token_hex(32))
        cases = [("garbage", "API token malformed"),
                 (good[:-1], "truncated?"),
                 (good + "0", "API token malformed"),
                 (good.upper(), "API token malformed"),
                 ("drva1." + "0" * 80, "API token malformed"),
                 ("drva1.%s." % gid, "truncated?"),
                 (forged, "API token %s unknown" % gid),
                 (unknown, "API token %s unknown" % unknown.split(".")[1])]
        before = self.refused_tokens()
        for tok, text in cases:
            self.assertRefused(self.as_token(tok, "runs"), text, tok.split(".")[-1])
        self.assertEqual(self.refused_tokens(), before + len(cases))
        # an empty --token sends none: the connection's own identity
        self.assertEqual(c.cli("--token", "", "tokens").rc, 0)

        # a flood: many connections' worth of bad bearers, pipelined
        n = 2000
        z = Zmtp(socket.AF_UNIX, os.path.join(c.tmp, "api.sock"), timeout=30)
        self.assertEqual(z.handshake(b"DEALER"), b"NULL")
        sent = got = 0
        errors = set()
        while got < n:
            while sent < n and sent - got < 50:
                bearer = (unknown, forged, "x" * (sent % 300), good[:1 + sent % 78])[sent % 4]
                z.send_msg(b"", pb_bytes(2, b"") + pb_bytes(250, bearer))
                sent += 1
            frames = recv_msg(z)
            self.assertEqual(frames[0], b"")
            errors.add(error_code(frames[1]))
            got += 1
        z.close()
        self.assertEqual(errors, {5}, "every one UNAUTHENTICATED")
        self.assertTrue(c.droverd.alive())
        self.assertEqual(self.refused_tokens(), before + len(cases) + n)
        self.assertEqual(self.as_token(good, "runs").rc, 0, "the good token still works")
        c.start_agent("w1", cpus=2)
        rid = c.submit({"name": "after", "steps": [{"name": "s", "command": ["true"]}]})
        self.assertEqual(c.wait_run_final(rid)["status"], "SUCCEEDED")
        log = c.droverd.log_text()
        for tok, _ in cases:
            if len(tok) > 20:
                self.assertNotIn(tok.split(".")[-1], log, "no secret in droverd's log")

    def test_tokens_survive_kill_9(self):
        c = self.c
        keep = self.create("keep", "submit")
        gone = self.create("gone", "admin", "--ttl", "10h")
        self.assertEqual(c.cli("token", "revoke", "gone").rc, 0)
        self.assertEqual(self.as_token(keep, "runs").rc, 0)
        listing = self.tokens()
        c.kill_droverd()
        c.start_droverd()
        after = self.tokens()
        for tid in listing:
            for k in ("kind", "name", "role", "state", "created_ms", "expires_ms", "created_by"):
                self.assertEqual(after[tid][k], listing[tid][k], (tid, k))
        self.assertEqual(after[gone.split(".")[1]]["state"], "revoked")
        self.assertRefused(self.as_token(gone, "runs"), "was revoked")
        r = self.as_token(keep, "submit", c.write_spec(SPEC))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.owner(r.out.strip()), "keep")
        # only hashes are stored: no secret in the state dir's bytes
        for root, _, files in os.walk(c.state_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                for tok in (keep, gone):
                    self.assertNotIn(tok.split(".")[2].encode(), data, f)
        # the name stays taken across the restart
        r = c.cli("token", "create", "keep", "--role", "read")
        self.assertEqual(r.rc, 6, r)


def recv_frame(z):
    flags = z.recv_exact(1)[0]
    size = struct.unpack(">Q", z.recv_exact(8))[0] if flags & 2 else z.recv_exact(1)[0]
    return flags, z.recv_exact(size)


def recv_msg(z):
    frames = []
    while True:
        flags, body = recv_frame(z)
        if flags & 4:
            continue  # a command (PING)
        frames.append(body)
        if not flags & 1:
            return frames


def error_code(resp):
    """ApiResponse.error_code (field 11) of a packed response."""
    i = 0
    while i < len(resp):
        key, i = varint_at(resp, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint_at(resp, i)
            if field == 11:
                return v
        elif wire == 2:
            n, i = varint_at(resp, i)
            i += n
        else:
            raise AssertionError("unexpected wire type %d" % wire)
    return 0


def varint_at(b, i):
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


if __name__ == "__main__":
    main()
