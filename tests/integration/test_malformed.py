"""Hostile input: garbage on the agents port and the API socket (raw
sockets and a minimal ZMTP 3.0 NULL client written here, since python3-zmq
may be missing), bad agent registrations, malformed spec files, names that
look like paths. After each, droverd must still serve."""
import os
import random
import socket
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402

SEED = int(os.environ.get("DROVER_FUZZ_SEED") or random.randrange(1 << 30))


# ------------------------------------------------------------ protobuf


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_int(field, n):
    return varint(field << 3) + varint(n)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint((field << 3) | 2) + varint(len(data)) + data


def pb_packed(field, values):
    return pb_bytes(field, b"".join(varint(v) for v in values))


def kv(key, value):
    return pb_bytes(1, key) + pb_bytes(2, value)


def resources(cpu=0, mem=0, gpus=0):
    return pb_int(1, cpu) + pb_int(2, mem) + pb_int(3, gpus)


def register(name, labels=(), cpu=0, mem=0, attempts=()):
    body = pb_bytes(1, name) + b"".join(pb_bytes(2, kv(k, v)) for k, v in labels)
    body += pb_bytes(3, resources(cpu, mem))
    if attempts:
        body += pb_packed(4, attempts)
    body += pb_bytes(5, "fuzz")
    return pb_bytes(1, body)  # AgentMessage.register


def report(seq, attempt, kind, **kw):
    body = pb_int(1, seq) + pb_int(2, attempt) + pb_int(3, kind)
    if "offset" in kw:
        body += pb_int(5, kw["offset"])
    if "data" in kw:
        body += pb_bytes(6, kw["data"])
    if "exit_code" in kw:
        body += pb_int(7, kw["exit_code"])
    if "reason" in kw:
        body += pb_bytes(10, kw["reason"])
    return pb_bytes(3, body)  # AgentMessage.reports


# ------------------------------------------------------------ ZMTP 3.0


class Zmtp:
    """Just enough ZMTP 3.0 (NULL mechanism) to send frames to droverd."""

    def __init__(self, family, addr, timeout=3.0):
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        try:
            self.s.connect(addr)
        except OSError:
            self.s.close()
            raise

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed")
            buf += chunk
        return buf

    def handshake(self, socket_type, identity=None):
        """Return the peer's mechanism (b"NULL" when we got to send frames).
        identity: our routing id (droverd takes an agent's as its name)."""
        self.s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00"
                       + b"NULL".ljust(20, b"\0") + b"\x00" + b"\0" * 31)
        peer = self.recv_exact(64)
        mech = peer[12:32].rstrip(b"\0")
        if mech != b"NULL":
            return mech
        props = [(b"Socket-Type", socket_type)]
        if identity is not None:
            props.append((b"Identity", identity.encode() if isinstance(identity, str) else identity))
        body = b"\x05READY" + b"".join(bytes([len(k)]) + k + struct.pack(">I", len(v)) + v
                                       for k, v in props)
        self.send_frame(body, command=True)
        flags = self.recv_exact(1)[0]
        size = struct.unpack(">Q", self.recv_exact(8))[0] if flags & 2 else self.recv_exact(1)[0]
        self.recv_exact(size)
        return mech

    def send_frame(self, body, more=False, command=False, claimed=None):
        size = len(body) if claimed is None else claimed
        flags = (1 if more else 0) | (4 if command else 0)
        if size > 255:
            hdr = bytes([flags | 2]) + struct.pack(">Q", size)
        else:
            hdr = bytes([flags, size])
        self.s.sendall(hdr + body)

    def send_msg(self, *frames):
        for i, f in enumerate(frames):
            self.send_frame(f, more=i < len(frames) - 1)

    def drain(self):
        try:
            self.s.settimeout(0.05)
            while self.s.recv(65536):
                pass
        except OSError:
            pass

    def close(self, reset=False):
        if reset:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


GREETING = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\x00" + b"\0" * 31


def raw_payloads(rng):
    """Byte strings that are not a valid ZMTP conversation."""
    yield b""
    yield b"\x00"
    yield GREETING[:5]
    yield GREETING[:10]
    yield GREETING[:11]
    yield GREETING[:40]
    yield b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    yield b"\xff" + b"\0" * 8 + b"\x7f" + b"\x09\x09" + b"\0" * 52           # unknown version
    yield b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"BOGUS".ljust(20, b"\0") + b"\0" * 32
    yield b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\0") + b"\0" * 32
    yield GREETING + b"\x04\xff" + b"\x00" * 10                              # truncated command
    yield GREETING + b"\x04\x05READY\xff\xff"                                # bad property
    yield GREETING + b"\x00\x05hello"                                         # data before READY
    yield b"\x01\x00"                                                        # ZMTP 1.0-ish
    for n in (1, 7, 64, 65, 300, 4096, 100000):
        yield bytes(rng.getrandbits(8) for _ in range(min(n, 4096))) * (n // 4096 + 1)


def garbage_protobufs(rng):
    yield b""
    yield bytes(rng.getrandbits(8) for _ in range(200))
    yield b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"        # runaway varint length
    yield b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 10                 # length beyond the frame
    yield b"\x1a\x80\x80\x80\x80\x10"                            # huge nested length
    yield b"\x0b" * 1000                                          # start-group wire types
    yield pb_bytes(99, b"unknown field") + pb_int(100, 1 << 63)
    yield b"\x0a\x00" * 50000                                    # many empty sub-messages


class MalformedTest(harness.DroverTestCase):
    @classmethod
    def setUpClass(cls):
        sys.stderr.write("fuzz seed %d (rerun with DROVER_FUZZ_SEED=%d)\n" % (SEED, SEED))

    def setUp(self):
        super().setUp()
        self.rng = random.Random(SEED)
        self.c.start_droverd()
        self.c.start_agent("w1", cpus=2)

    def assertStillServes(self):
        c = self.c
        self.assertTrue(c.droverd.alive(), "droverd died")
        a = c.wait_agent_connected("w1", timeout=30)
        self.assertEqual(a["name"], "w1")
        marker = c.path("ran-%d" % self.rng.getrandbits(32))
        rid = c.submit({"name": "after-garbage", "steps": [{"name": "s", "script": "touch %s" % marker}]})
        run = c.wait_run_final(rid, timeout=60)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "s")["agent"], "w1")
        self.assertTrue(os.path.exists(marker))
        self.assertTrue(c.droverd.alive(), "droverd died")

    def tcp(self):
        return Zmtp(socket.AF_INET, ("127.0.0.1", self.c.port))

    def ipc(self):
        return Zmtp(socket.AF_UNIX, os.path.join(self.c.tmp, "api.sock"))

    def spray_raw(self, connect, rounds=3):
        for _ in range(rounds):
            for payload in raw_payloads(self.rng):
                try:
                    z = connect()
                    z.s.sendall(payload)
                    z.close(reset=self.rng.random() < 0.5)
                except OSError:
                    pass

    def agent_session(self, identity, *messages):
        """Connect as a DEALER with this routing id, send each message (a
        bytes frame or a tuple of frames), read what comes back, close.
        Returns False when the socket does not speak NULL."""
        if not self.c.droverd.alive():
            raise harness.DaemonDied("droverd died; log tail:\n%s" % harness.tail(self.c.droverd.log_text(), 20))
        try:
            z = self.tcp()
        except OSError:
            return True
        try:
            if z.handshake(b"DEALER", identity) != b"NULL":
                return False
            for m in messages:
                if isinstance(m, tuple):
                    z.send_msg(*m)
                else:
                    z.send_msg(m)
            z.drain()
        except OSError:
            pass
        finally:
            z.close()
        return True

    def assertNoAgents(self, prefix):
        names = [a["name"] for a in self.c.agents_list()]
        self.assertEqual([n for n in names if n.startswith(prefix)], [],
                         "peers that never registered are listed as agents")

    def test_garbage_on_agents_port(self):
        self.spray_raw(self.tcp)
        nulls = True
        for i, payload in enumerate(garbage_protobufs(self.rng)):
            for ident in (None, "fuzz-g%d" % i):
                nulls = self.agent_session(ident, payload, (payload, payload, b"third frame"))
        if nulls:
            # well-formed protobuf that makes no sense: heartbeats, reports
            # and acks from peers that never registered
            self.agent_session(
                "fuzz-unreg",
                pb_bytes(2, pb_packed(1, [1, 2, (1 << 64) - 1])),
                report(1, 424242, 2, exit_code=0, reason="x" * 100000),
                report(2, (1 << 64) - 1, 1, offset=(1 << 63), data=b"y" * 200000),
                pb_packed(4, [1, 5, 77, (1 << 64) - 1]))
            for i in range(50):
                self.agent_session("fuzz-h%d" % i, pb_bytes(2, b""))
        self.assertStillServes()
        if nulls:
            self.assertNoAgents("fuzz-")

    def test_huge_frame_claim_on_agents_port(self):
        # a peer announces a frame of ~1 TiB (and, below, 4 GiB) and hangs
        # up: droverd must bound what it accepts, not try to allocate it
        for claimed in ((1 << 40) + 1, 1 << 32):
            z = self.tcp()
            try:
                if z.handshake(b"DEALER", "fuzz-huge") != b"NULL":
                    self.skipTest("agents socket does not speak NULL")
                z.send_frame(b"abc", claimed=claimed)
                z.drain()
            except OSError:
                pass
            finally:
                z.close()
        self.assertStillServes()

    def test_routing_ids_with_nul_bytes(self):
        # as C strings these read "" or another agent's name
        c = self.c
        for ident in (b"\x00\x00", b"\x00ab", b"w1\x00x"):
            if not self.agent_session(ident, register("", cpu=4000, mem=1 << 30),
                                      register("w1", cpu=4000, mem=1 << 30)):
                self.skipTest("agents socket does not speak NULL")
        names = [a["name"] for a in c.agents_list()]  # a round trip: the above was handled
        self.assertTrue(c.droverd.alive(), "droverd died on a routing id with a NUL byte")
        self.assertNotIn("", names, "droverd registered an agent with an empty name")
        self.assertStillServes()

    def test_bad_registrations_are_refused(self):
        c = self.c
        bad_names = ["", "n" * 100000, "bad\nname", "ctl\x01name", "../../etc", "x" * 200]
        for name in bad_names:
            ident = name if 0 < len(name) <= 255 else None
            if not self.agent_session(ident, register(name, cpu=4000, mem=1 << 30)):
                self.skipTest("agents socket does not speak NULL")
        # too many labels; huge labels (a routing id chosen by the peer names
        # nothing: "fuzz-a" registering as fuzz-b is fuzz-b, see test_security)
        self.agent_session("fuzz-a", register("fuzz-b", cpu=4000, mem=1 << 30))
        self.agent_session("fuzz-flood", register("fuzz-flood", labels=[("k%d" % i, "v") for i in range(100000)]))
        self.agent_session("biglabel", register("biglabel", labels=[("k" * 5000, "v" * 100000)]))
        self.agent_session("badattempts", register("badattempts", attempts=[0, 1, 99, (1 << 64) - 1]))
        self.assertStillServes()
        agents = c.agents_list()
        names = [a["name"] for a in agents]
        for n in bad_names + ["fuzz-a", "fuzz-flood"]:
            self.assertNotIn(n, names, "droverd accepted an agent named %r" % n[:40])
        for a in agents:
            for k, v in a["labels"].items():
                self.assertLessEqual(len(k) + len(v), 1024,
                                     "agent %s listed with a label of %d bytes" % (a["name"], len(k) + len(v)))

    def test_garbage_on_api_socket(self):
        self.spray_raw(self.ipc)
        for payload in list(garbage_protobufs(self.rng)) + [
                pb_bytes(3, pb_bytes(1, "r" * 1000000)),                       # get_run, 1 MB id
                pb_bytes(5, pb_bytes(1, "x") + pb_bytes(2, "y") + pb_int(5, 0xFFFFFFFF)),  # logs
                pb_bytes(1, pb_bytes(1, "f.yaml") + pb_bytes(2, os.urandom(100000))),      # submit junk
                pb_bytes(1, pb_bytes(1, "f.yaml") + pb_bytes(2, b"a" * (16 << 20))),       # 16 MB spec
                pb_bytes(7, pb_bytes(1, "nobody"))]:
            z = self.ipc()
            try:
                if z.handshake(b"REQ") != b"NULL":
                    break
                z.send_msg(b"", payload)        # a proper REQ envelope
                z.drain()
            except OSError:
                pass
            finally:
                z.close()
            z = self.ipc()
            try:
                z.handshake(b"DEALER")
                z.send_msg(payload)             # no empty delimiter frame
                z.send_msg(b"", payload, payload)
                z.drain()
            except OSError:
                pass
            finally:
                z.close()
        self.assertEqual(self.c.runs(), [], "garbage on the API created runs")
        self.assertStillServes()

    def submit_refused(self, data, name):
        c = self.c
        before = [r["id"] for r in c.runs()]
        path = c.write_spec(data, name)
        r = c.cli("submit", path, timeout=120)
        self.assertFalse(r.timed_out, "submit of %s hung" % name)
        self.assertNotEqual(r.rc, 0, "%s was accepted: %r" % (name, r))
        self.assertIn("drover: error:", r.err, r)
        self.assertTrue(c.droverd.alive(), "droverd died on %s" % name)
        self.assertEqual([r["id"] for r in c.runs()], before)

    def test_malformed_spec_files(self):
        self.submit_refused(os.urandom(1 << 20), "random.yaml")
        self.submit_refused(b"name: x\nsteps:\n  - name: a\n    script: \xff\xfe\xfd\n", "bad-utf8.yaml")
        self.submit_refused(b"name: x\0\nsteps: []\n", "nul.yaml")
        self.submit_refused(b"# " + b"a" * (24 << 20) + b"\nname: x\nbogus_key: 1\nsteps: []\n", "huge.yaml")
        depth = 100000
        self.submit_refused(b"name: deep\nsteps:\n  - name: a\n    script: echo\n    env: "
                            + b"[" * depth + b"]" * depth + b"\n", "deep.yaml")
        self.submit_refused(b"name: deep2\nsteps: " + b"{a: " * 20000 + b"b" + b"}" * 20000 + b"\n",
                            "deep2.yaml")
        # "billion laughs": 10^9 strings if aliases were expanded naively
        lol = ["name: lol", 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for i in range(1, 10):
            lol.append("l%d: &l%d [%s]" % (i, i, ",".join(["*l%d" % (i - 1)] * 10)))
        lol += ["steps:", "  - name: a", "    command: *l9"]
        self.submit_refused("\n".join(lol) + "\n", "lol.yaml")
        many = "name: many\nsteps:\n" + "".join("  - name: s%d\n    script: 'true'\n" % i
                                               for i in range(20000))
        r = self.c.cli("submit", self.c.write_spec(many, "many.yaml"), timeout=120)
        self.assertFalse(r.timed_out, "submit of a 20000-step spec hung")
        self.assertTrue(self.c.droverd.alive(), "droverd died on a 20000-step spec")
        if r.rc == 0:
            self.c.cli("run", "cancel", r.out.strip())
        self.assertStillServes()

    def test_names_are_not_paths(self):
        c = self.c
        rid = c.submit({"name": "paths", "steps": [{"name": "s", "script": "echo fine"}]})
        self.assertRunSucceeded(c.wait_run_final(rid))
        for args in (["logs", rid, "../../../../../../etc/passwd"],
                     ["logs", "../../../../../../etc/passwd", "s"],
                     ["logs", rid, "../s"],
                     ["run", "get", "../../../../../../etc/passwd"]):
            r = c.cli(*args)
            self.assertNotEqual(r.rc, 0, r)
            self.assertNotIn("root:", r.out, "path escape: %r" % r)
        # a step name with a path in it is refused, or stays inside the work dir
        path = c.write_spec("name: esc\nsteps:\n  - name: ../../../escape\n    script: pwd -P > %s\n"
                            % c.path("esc.pwd"), "esc.yaml")
        r = c.cli("submit", path)
        if r.rc == 0:
            run = c.wait_run_final(r.out.strip())
            pwd = (harness.read_text(c.path("esc.pwd")) or "").strip()
            if pwd:
                work = os.path.realpath(c.agent_work_dir("w1"))
                self.assertTrue(pwd.startswith(work + "/"),
                                "step '../../../escape' ran outside the agent work dir: %s (%s)"
                                % (pwd, run["status"]))
        self.assertStillServes()


if __name__ == "__main__":
    harness.main()
