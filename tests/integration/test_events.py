"""droverd's event log (README "Events") through `drover events`: a real
run's transitions in order, the --since and --run filters, no event lost or
duplicated across kill -9 of droverd mid-run, a reader behind the pruned
log told so, bad requests refused with a clear error."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def events(c, *args):
    return c.cli_json("events", *args)


def task_events(evs, rid, name):
    return [(e["from"], e["to"]) for e in evs
            if e["kind"] == "task" and e["run"] == rid and e["task"] == name]


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
