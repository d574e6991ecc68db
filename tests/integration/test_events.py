"""droverd's event log (README "Events") through `drover events`: a real
run's transitions in order, the --since and --run filters, no event lost or
duplicated across kill -9 of droverd mid-run, a reader behind the pruned
log told so, bad requests refused with a clear error."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from test_malformed import Zmtp, pb_bytes, pb_int  # noqa: E402


def events(c, *args):
    return c.cli_json("events", *args)


def task_events(evs, rid, name):
    return [(e["from"], e["to"]) for e in evs
            if e["kind"] == "task" and e["run"] == rid and e["task"] == name]


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def parse_response(buf):
    """The fields of an ApiResponse that an events answer has."""
    out = {"events": 0, "first_seq": 0, "truncated": False, "next_seq": 0, "error": "",
           "runs": []}
    i = 0
    while i < len(buf):
        tag, i = read_varint(buf, i)
        field, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        else:
            v, i = buf[i:i + 4], i + 4
        if field == 220:
            out["events"] += 1
            ev, j = {}, 0
            while j < len(v):  # EventRecord: seq (1), run_id (4)
                t, j = read_varint(v, j)
                if t & 7 == 0:
                    x, j = read_varint(v, j)
                    if t >> 3 == 1:
                        ev["seq"] = x
                elif t & 7 == 2:
                    n, j = read_varint(v, j)
                    if t >> 3 == 4:
                        ev["run"] = v[j:j + n].decode()
                    j += n
                else:
                    j += 8 if t & 7 == 1 else 4
            out["runs"].append(ev.get("run", ""))
        elif field == 221:
            out["first_seq"] = v
        elif field == 222:
            out["truncated"] = bool(v)
        elif field == 240:
            out["next_seq"] = v
        elif field == 1:
            out["error"] = v.decode()
    return out


class RawEvents:
    """A DEALER speaking ZMTP to droverd's API socket: sends EventsRequests
    (with wait_ms) and reads the answers when it chooses to."""

    def __init__(self, c):
        self.z = Zmtp(socket.AF_UNIX, os.path.join(c.tmp, "api.sock"), timeout=60 * harness.SCALE)
        self.z.handshake(b"DEALER")

    def ask(self, since, wait_ms, run=None, max_=0):
        body = pb_int(1, since) + (pb_bytes(2, run) if run else b"") + \
            (pb_int(3, max_) if max_ else b"") + pb_int(240, wait_ms)
        self.z.send_msg(b"", pb_bytes(220, body))  # ApiRequest.events

    def answer(self, timeout):
        """The next answer, or None when none came within timeout seconds."""
        self.z.s.settimeout(timeout)
        frames = []
        try:
            while True:
                flags = self.z.recv_exact(1)[0]
                size = struct.unpack(">Q", self.z.recv_exact(8))[0] if flags & 2 \
                    else self.z.recv_exact(1)[0]
                frames.append(self.z.recv_exact(size))
                if not flags & 1:
                    break
        except socket.timeout:
            if frames:
                raise
            return None
        return parse_response(frames[-1])

    def close(self, reset=False):
        self.z.close(reset=reset)


class EventsTest(harness.DroverTestCase):
    def assertContiguous(self, evs, first=1):
        seqs = [e["seq"] for e in evs]
        self.assertEqual(seqs, list(range(first, first + len(seqs))),
                         "event seqs not unique and contiguous")

    def test_run_events_in_order_and_filters(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        rid = c.submit({"name": "pipe", "steps": [
            {"name": "a", "script": "true"},
            {"name": "b", "needs": ["a"], "script": "exit 3"},
        ]})
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "FAILED", run)
        evs = events(c)
        self.assertContiguous(evs)
        # the agent connected before anything ran on it
        agent = [e for e in evs if e["kind"] == "agent" and e["agent"] == "w1"]
        self.assertEqual((agent[0]["from"], agent[0]["to"]), ("disconnected", "connected"), agent)
        # each task: from its first record to its end, in commit order; the
        # RUNNING may ride along with the end in one commit
        for name, end in (("a", "SUCCEEDED"), ("b", "FAILED")):
            tr = task_events(evs, rid, name)
            self.assertGreaterEqual(len(tr), 2, tr)
            self.assertEqual(tr[-1][1], end, tr)
            for (f1, t1), (f2, t2) in zip(tr, tr[1:]):
                self.assertEqual(t1, f2, "task %s: transitions do not chain: %r" % (name, tr))
            self.assertIn("ASSIGNED", [t for _, t in tr], tr)
        b_end = [e for e in evs if e["run"] == rid and e["task"] == "b" and e["to"] == "FAILED"][0]
        self.assertEqual(b_end["exit_code"], 3, b_end)
        self.assertEqual(b_end["agent"], "w1", b_end)
        self.assertEqual(b_end["attempt"], 1, b_end)
        a_end = [e for e in evs if e["run"] == rid and e["task"] == "a" and e["to"] == "SUCCEEDED"][0]
        b_start = [e for e in evs if e["task"] == "b" and e["to"] != "WAITING"][0]
        self.assertLess(a_end["seq"], b_start["seq"], "b started before a ended: %r" % evs)
        runs = [(e["from"], e["to"]) for e in evs if e["kind"] == "run" and e["run"] == rid]
        self.assertEqual(runs[0][0], "", runs)
        self.assertEqual(runs[-1][1], "FAILED", runs)

        # --run: only that run's events; --since: only later ones
        rid2 = c.submit({"name": "other", "steps": [{"name": "x", "script": "true"}]})
        c.wait_run_final(rid2)
        only = events(c, "--run", rid2)
        self.assertTrue(only)
        self.assertTrue(all(e["run"] == rid2 for e in only), only)
        last = evs[-1]["seq"]
        later = events(c, "--since", str(last))
        self.assertTrue(later)
        self.assertTrue(all(e["seq"] > last for e in later), later)
        self.assertEqual(later[0]["seq"], last + 1)
        # the table
        r = c.cli("events", "--run", rid)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("SEQ", r.out)
        self.assertIn("ASSIGNED", r.out)
        self.assertIn("exit 3", r.out)

    def test_kill9_loses_and_repeats_no_event(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        steps = [{"name": "s%d" % i, "script": "sleep 0.%d" % (i % 5)} for i in range(12)]
        for i in range(4, 12):
            steps[i]["needs"] = ["s%d" % (i - 4)]
        rid = c.submit({"name": "chain", "steps": steps})
        harness.wait_until(lambda: len(events(c, "--run", rid)) >= 8, timeout=60,
                           what="some events of the run")
        before = events(c)
        c.kill_droverd()
        c.start_droverd()
        run = c.wait_run_final(rid, timeout=120)
        self.assertRunSucceeded(run)
        evs = events(c)
        self.assertContiguous(evs)
        # what was read before the kill is still there, the same
        self.assertEqual(evs[:len(before)], before)
        for i in range(12):
            tr = task_events(evs, rid, "s%d" % i)
            self.assertTrue(tr, "no events for s%d" % i)
            self.assertEqual(tr[-1][1], "SUCCEEDED", tr)
            for (f1, t1), (f2, t2) in zip(tr, tr[1:]):
                self.assertEqual(t1, f2, "s%d: a transition lost or repeated: %r" % (i, tr))
        # the restart: the agent's reconnection is logged after its loss
        w1 = [e["to"] for e in evs if e["kind"] == "agent" and e["agent"] == "w1"]
        self.assertEqual(w1[0], "connected", w1)

    def test_pruned_reader_told_it_fell_behind(self):
        c = self.c
        c.start_droverd(extra=["--events-max", "5"])
        c.start_agent("w1", cpus=2)
        rid = c.submit({"name": "many", "steps": [
            {"name": "s%d" % i, "script": "true"} for i in range(4)]})
        c.wait_run_final(rid)
        n = len(events(c))
        self.assertGreater(n, 5)
        c.kill_agent("w1")  # nothing new after the restart's prune
        harness.wait_until(lambda: events(c)[-1]["to"] == "disconnected", timeout=30,
                           what="w1's loss logged")
        n = len(events(c))
        c.kill_droverd()
        c.start_droverd()  # pruned at start (and hourly)
        # whole commits go: at least 5 stay, fewer than a commit's more
        evs = harness.wait_until(lambda: (lambda e: e if e[0]["seq"] > 1 else None)(events(c)),
                                 timeout=30, what="the log pruned")
        self.assertGreaterEqual(len(evs), 5)
        self.assertLess(len(evs), n)
        self.assertEqual(evs[-1]["seq"], n, "the newest events were pruned")
        self.assertContiguous(evs, evs[0]["seq"])
        r = c.cli("events", "--since", "0")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("were pruned", r.err)
        self.assertIn("this starts at %d" % evs[0]["seq"], r.err)
        r = c.cli("events", "--since", str(evs[0]["seq"] - 1))
        self.assertNotIn("pruned", r.err)

    def test_follow_prints_events_as_they_commit(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        rid = c.submit({"name": "one", "steps": [{"name": "a", "script": "true"}]})
        c.wait_run_final(rid)
        last = events(c)[-1]["seq"]
        p = c.popen_cli("events", "-f", "--since", str(last))
        try:
            # nothing new yet: -f waits instead of exiting
            out, matched = harness.read_with_timeout(p, rb"run +r000002", timeout=1)
            self.assertFalse(matched, out)
            self.assertIsNone(p.poll(), "drover events -f exited")
            rid2 = c.submit({"name": "two", "steps": [{"name": "b", "script": "true"}]})
            self.assertEqual(rid2, "r000002")
            out2, matched = harness.read_with_timeout(
                p, rb"run +r000002 +- +RUNNING\xe2\x86\x92SUCCEEDED", timeout=60)
            out += out2
            self.assertTrue(matched, out)
            self.assertNotIn(b"r000001", out, "-f --since printed older events")
            self.assertIn(b"%d " % (last + 1), out)
        finally:
            p.kill()
            p.communicate()

    def test_held_requests_answered_when_events_commit(self):
        c = self.c
        c.start_droverd(extra=["--api-waiters", "4"])
        c.start_agent("w1", cpus=2)
        rid = c.submit({"name": "one", "steps": [{"name": "a", "script": "true"}]})
        c.wait_run_final(rid)
        end = events(c)[-1]["seq"]
        # the log's end: nothing after it, answered at once with next_seq
        probe = RawEvents(c)
        probe.ask(2**64 - 1, 0)
        a = probe.answer(30)
        self.assertEqual((a["next_seq"], a["events"], a["truncated"]), (end, 0, False), a)
        # held: nothing after `end` yet, so no answer (not even empty)
        held, only2 = RawEvents(c), RawEvents(c)
        held.ask(end, 60000)
        only2.ask(end, 60000, run=rid)  # r000001's: a later run's events are not its
        self.assertIsNone(held.answer(1.0), "answered with nothing to say")
        # a timeout: answered empty, with where to go on
        probe.ask(end, 300)
        t0 = time.monotonic()
        a = probe.answer(30)
        self.assertGreaterEqual(time.monotonic() - t0, 0.25, a)
        self.assertEqual((a["events"], a["next_seq"], a["truncated"]), (0, end, False), a)
        # the next commit answers it at once, from its batch: long before
        # its 60 s (a poller would only see it at its next poll)
        rid2 = c.submit({"name": "two", "steps": [{"name": "b", "script": "true"}]})
        t0 = time.monotonic()
        a = held.answer(30)
        self.assertIsNotNone(a, "a held request not answered by the commit")
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertGreater(a["events"], 0, a)
        self.assertEqual(set(a["runs"]), {rid2}, a)
        self.assertEqual(a["next_seq"], end + a["events"], a)
        self.assertIsNone(only2.answer(0.5), "a --run filtered request got another run's events")
        # beyond --api-waiters (4): answered at once, empty
        c.wait_run_final(rid2)
        end = events(c)[-1]["seq"]
        many = [RawEvents(c) for _ in range(5)]
        for m in many:
            m.ask(end, 60000)
        answered = [a for a in (m.answer(0.5) for m in many) if a is not None]
        # only2 holds one of the 4: two of the 5 get an empty answer at once
        self.assertEqual(len(answered), 2, answered)
        self.assertTrue(all(a["events"] == 0 and a["next_seq"] == end for a in answered), answered)
        # peers that hold a request and go away: nothing leaks, droverd serves on
        for m in many:
            m.close(reset=True)
        held.close(reset=True)
        rid3 = c.submit({"name": "three", "steps": [{"name": "x", "script": "true"}]})
        self.assertRunSucceeded(c.wait_run_final(rid3))
        self.assertEqual(c.cli("status").rc, 0)
        harness.check_daemons(c)
        only2.close()
        probe.close()

    def test_held_reader_behind_is_truncated_and_follow_survives_kill9(self):
        c = self.c
        c.start_droverd(extra=["--events-max", "5"])
        c.start_agent("w1", cpus=2)
        rid = c.submit({"name": "many", "steps": [
            {"name": "s%d" % i, "script": "true"} for i in range(4)]})
        c.wait_run_final(rid)
        c.kill_droverd()
        c.start_droverd(extra=["--events-max", "5"])  # pruned at start
        first = harness.wait_until(lambda: (lambda e: e[0]["seq"] if e[0]["seq"] > 1 else None)(
            events(c)), timeout=30, what="the log pruned")
        raw = RawEvents(c)
        raw.ask(0, 60000)  # behind the log: answered at once, truncated
        a = raw.answer(30)
        self.assertIsNotNone(a)
        self.assertTrue(a["truncated"], a)
        self.assertEqual(a["first_seq"], first, a)
        raw.close()
        # events -f holds its request; droverd is killed under it and comes
        # back: the client sees its connection go, asks again at once (not
        # after its API timeout, made long here) and prints what commits next
        end = events(c)[-1]["seq"]
        p = subprocess.Popen([harness.bin_path("drover"), "--api", c.api, "events", "-f",
                              "--since", str(end)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(c.env, DROVER_API_TIMEOUT_MS="300000"), cwd=c.tmp)
        try:
            out, matched = harness.read_with_timeout(p, rb"\d+ +\S+ +run", timeout=1)
            self.assertFalse(matched, out)
            c.kill_droverd()
            c.start_droverd(extra=["--events-max", "5"])
            rid2 = c.submit({"name": "after", "steps": [{"name": "b", "script": "true"}]})
            out2, matched = harness.read_with_timeout(
                p, rb"run +" + rid2.encode() + rb" +- +RUNNING\xe2\x86\x92SUCCEEDED", timeout=60)
            self.assertTrue(matched, out + out2)
            self.assertIsNone(p.poll(), "events -f gave up")
        finally:
            p.kill()
            p.communicate()

    def test_watch_on_events_across_kill9_and_a_pruned_log(self):
        c = self.c
        c.start_droverd(extra=["--events-max", "3"])
        c.start_agent("w1", cpus=2)
        go = c.path("go")
        rid = c.submit({"name": "watched", "steps": [
            {"name": "a", "script": "true"},
            {"name": "b", "needs": ["a"],
             "script": "while [ ! -e %s ]; do sleep 0.05; done" % go}]})
        # piped: a line per change; a long API timeout, so only noticing the
        # lost connection brings it back in time
        p = subprocess.Popen([harness.bin_path("drover"), "--api", c.api, "run", "watch", rid],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=c.tmp,
                             env=dict(c.env, DROVER_API_TIMEOUT_MS="300000"))
        try:
            out, ok = harness.read_with_timeout(p, rb" b RUNNING", timeout=60)
            self.assertTrue(ok, out)
            self.assertIn(b" a SUCCEEDED", out)
            # the watch stops reading; the log moves on and droverd restarts,
            # pruning all but the newest commits: the watch is behind the log
            p.send_signal(signal.SIGSTOP)
            for i in range(3):
                c.wait_run_final(c.submit({"name": "other%d" % i,
                                           "steps": [{"name": "x", "script": "true"}]}))
            c.kill_droverd()
            c.start_droverd(extra=["--events-max", "3"])
            p.send_signal(signal.SIGCONT)
            open(go, "w").close()
            out2, ok = harness.read_with_timeout(
                p, ("run %s SUCCEEDED in " % rid).encode(), timeout=60)
            self.assertTrue(ok, out + out2)
            self.assertIn(b" b SUCCEEDED", out2)
            self.assertEqual(p.wait(timeout=60), 0)
        finally:
            if p.poll() is None:
                p.kill()
            _, err = p.communicate()
        harness.check_sanitizer_text(err.decode(errors="replace"), "drover run watch")

    def test_bad_requests(self):
        c = self.c
        c.start_droverd()
        r = c.cli("events", "--run", "r999999")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("no run r999999", r.err)
        r = c.cli("events", "--since", "-3")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--since expects a sequence number", r.err)
        r = c.cli("events", "-f", "-o", "json")
        self.assertEqual(r.rc, 2, r)


if __name__ == "__main__":
    harness.main()
