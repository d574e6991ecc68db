"""Recurring runs through the real droverd and CLI (README "Schedules"):
`drover schedule create` with --every seconds (no test waits for a cron
minute: cron and time zones are unit-tested on an injected clock in
test_cron/test_cadence/test_schedules), the logical time a run reads,
`runs --schedule`, pause/resume/trigger/delete, a kill -9 of droverd
across two fire times (catch-up all: none lost, none doubled), forbid
recording its skips, runs that trigger runs with the upstream's outputs,
backfill, and what is refused at creation with a reason."""
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import wait_until  # noqa: E402

REFUSED, NOT_FOUND, USAGE = 6, 3, 2

NIGHTLY = """\
name: nightly
params: {out: ""}
steps:
  - name: train
    script: |
      echo "{{run.scheduled_at}} {{schedule.name}}" >> {{params.out}}
      echo 0.9 > $DROVER_OUTPUTS/score
    outputs: {params: [score]}
"""

SLOW = """\
name: slow
params: {gate: ""}
steps:
  - name: wait
    script: while [ ! -e {{params.gate}} ]; do sleep 0.05; done
"""

EVAL = """\
name: evaluate
params: {out: ""}
steps:
  - name: check
    script: echo "{{trigger.run_id}} {{trigger.outputs.train.score}}" >> {{params.out}}
"""


class SchedulesTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_agent("a1")

    def schedules(self):
        r = self.c.cli("schedules", "-o", "json")
        self.assertEqual(r.rc, 0, r)
        return {s["name"]: s for s in json.loads(r.out)}

    def runs_of(self, name):
        r = self.c.cli("runs", "--schedule", name, "-o", "json", "--limit", "1000")
        self.assertEqual(r.rc, 0, r)
        return sorted(json.loads(r.out), key=lambda x: x["scheduled_ms"])

    def test_every_fires_runs_that_read_their_logical_time(self):
        c = self.c
        out = c.path("out.txt")
        spec = c.write_spec(NIGHTLY, "nightly.yaml")
        r = c.cli("schedule", "create", "n1", spec, "-p", "out=" + out, "--every", "2s",
                  "--max-active", "2")
        self.assertEqual(r.rc, 0, r)
        wait_until(lambda: len([x for x in self.runs_of("n1") if x["status"] == "SUCCEEDED"]) >= 2,
                   timeout=60, what="two scheduled runs")
        runs = self.runs_of("n1")
        self.assertEqual(runs[1]["scheduled_ms"] - runs[0]["scheduled_ms"], 2000)
        self.assertEqual(runs[0]["scheduled_ms"] % 2000, 0)
        lines = harness.read_lines(out)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(runs[0]["scheduled_ms"] // 1000))
        self.assertIn("%s n1" % at, lines)  # {{run.scheduled_at}}: RFC 3339, UTC here
        s = self.schedules()["n1"]
        self.assertEqual(s["pipeline"], "nightly")
        self.assertGreater(s["next_fire_ms"], runs[-1]["scheduled_ms"])
        got = c.cli("run", "get", runs[0]["id"])
        self.assertRegex(got.out, r"schedule:\s+n1 for ")
        # pause: no more runs; resume: again; trigger: one now
        self.assertEqual(c.cli("schedule", "pause", "n1").rc, 0)
        n = len(self.runs_of("n1"))
        harness.holds_for(lambda: len(self.runs_of("n1")) <= n + 1, 4.5,
                          what="no fire while paused")
        self.assertTrue(self.schedules()["n1"]["paused"])
        r = c.cli("schedule", "trigger", "n1")
        self.assertEqual(r.rc, 0, r)
        rid = r.out.strip()
        self.assertEqual(c.wait_run_final(rid)["status"], "SUCCEEDED")
        self.assertEqual(c.cli("schedule", "delete", "n1").rc, 0)
        self.assertNotIn("n1", self.schedules())
        self.assertEqual(c.cli("schedule", "pause", "n1").rc, NOT_FOUND)
        self.assertTrue(self.runs_of("n1"), "the runs stay")

    def test_kill_9_across_two_fire_times_loses_none_and_doubles_none(self):
        c = self.c
        out = c.path("out.txt")
        spec = c.write_spec(NIGHTLY, "nightly.yaml")
        self.assertEqual(c.cli("schedule", "create", "n2", spec, "-p", "out=" + out, "--every",
                               "2s", "--max-active", "10").rc, 0)
        wait_until(lambda: len(self.runs_of("n2")) >= 1, timeout=30, what="a first run")
        c.kill_droverd()
        down = time.time()
        wait_until(lambda: time.time() > down + 5, timeout=30, what="two fire times to pass")
        c.start_droverd()
        wait_until(lambda: self.runs_of("n2") and
                   self.runs_of("n2")[-1]["scheduled_ms"] >= (down + 5) * 1000 - 2000,
                   timeout=60, what="the missed fires to be caught up")
        runs = self.runs_of("n2")
        times = [x["scheduled_ms"] for x in runs]
        self.assertEqual(len(times), len(set(times)), "a fire started twice: %s" % times)
        for a, b in zip(times, times[1:]):
            self.assertEqual(b - a, 2000, "a fire was lost: %s" % times)

    def test_forbid_records_skips_and_after_triggers_with_outputs(self):
        c = self.c
        gate = c.path("gate")
        out = c.path("eval.txt")
        self.assertEqual(c.cli("schedule", "create", "slow", c.write_spec(SLOW, "slow.yaml"),
                               "-p", "gate=" + gate, "--every", "1s", "--concurrency",
                               "forbid").rc, 0)
        wait_until(lambda: self.schedules()["slow"]["skipped"] >= 2, timeout=30,
                   what="fires skipped while the first run goes")
        s = self.schedules()["slow"]
        self.assertIn("concurrency forbid", s["last_skip"])
        self.assertEqual(len(self.runs_of("slow")), 1)
        self.assertEqual(c.cli("schedule", "delete", "slow").rc, 0)
        open(gate, "w").close()
        # eval after the nightly pipeline succeeds
        self.assertEqual(c.cli("schedule", "create", "eval", c.write_spec(EVAL, "eval.yaml"),
                               "-p", "out=" + out, "--after", "nightly", "--on",
                               "succeeded").rc, 0)
        rid = c.submit(NIGHTLY, params={"out": c.path("n.txt")})
        self.assertEqual(c.wait_run_final(rid)["status"], "SUCCEEDED")
        wait_until(lambda: self.runs_of("eval") and
                   self.runs_of("eval")[0]["status"] == "SUCCEEDED", timeout=30,
                   what="the triggered run")
        self.assertEqual(harness.read_lines(out), ["%s 0.9" % rid])
        self.assertEqual(self.runs_of("eval")[0]["trigger_run"], rid)

    def test_backfill_runs_past_intervals_once(self):
        c = self.c
        out = c.path("out.txt")
        spec = c.write_spec(NIGHTLY, "nightly.yaml")
        self.assertEqual(c.cli("schedule", "create", "daily", spec, "-p", "out=" + out,
                               "--cron", "0 3 * * *", "--timezone", "Europe/Berlin",
                               "--max-active", "2").rc, 0)
        r = c.cli("schedule", "backfill", "daily", "--from", "2026-11-01", "--to",
                  "2026-11-04T00:00:00Z")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("3 runs queued", r.out)
        wait_until(lambda: len([x for x in self.runs_of("daily")
                                if x["status"] == "SUCCEEDED"]) == 3, timeout=60,
                   what="three backfilled runs")
        lines = sorted(harness.read_lines(out))
        self.assertEqual(lines, ["2026-11-01T03:00:00+01:00 daily",
                                 "2026-11-02T03:00:00+01:00 daily",
                                 "2026-11-03T03:00:00+01:00 daily"])
        r = c.cli("schedule", "backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-04")
        self.assertIn("0 runs queued, 3 intervals already succeeded", r.out)

    def test_what_is_refused_at_creation(self):
        c = self.c
        spec = c.write_spec(NIGHTLY, "nightly.yaml")
        r = c.cli("schedule", "create", "x", spec, "--cron", "0 25 * * *")
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("field 2 (hour): 25 is out of range 0-23", r.err)
        r = c.cli("schedule", "create", "x", spec, "--cron", "0 3 * * *", "--timezone", "Mars/X")
        self.assertIn("unknown time zone 'Mars/X'", r.err)
        bad = c.write_spec("name: b\nsteps:\n  - {name: a, comand: [x]}\n", "bad.yaml")
        r = c.cli("schedule", "create", "x", bad, "--every", "1h")
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("bad.yaml:3:", r.err)
        r = c.cli("schedule", "create", "x", spec)
        self.assertIn("needs --cron, --every or --after", r.err)
        r = c.cli("schedule", "create", "x", spec, "--every", "500ms")
        self.assertEqual(r.rc, USAGE, r)
        r = c.cli("schedule", "create", "../x", spec, "--every", "1h")
        self.assertIn("a schedule name is", r.err)
        self.assertEqual(c.cli("schedule", "create", "a", spec, "--every", "1h").rc, 0)
        r = c.cli("schedule", "create", "a", spec, "--every", "1h")
        self.assertIn("exists", r.err)
        r = c.cli("schedule", "create", "b", c.write_spec(EVAL, "eval.yaml"), "--after", "b2")
        self.assertEqual(r.rc, 0, r)
        r = c.cli("schedule", "create", "b2", spec, "--after", "evaluate")
        self.assertEqual(r.rc, REFUSED, r)
        self.assertIn("triggers would loop", r.err)
        self.assertEqual(set(self.schedules()), {"a", "b"})


if __name__ == "__main__":
    harness.main()
