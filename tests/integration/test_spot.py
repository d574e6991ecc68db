"""Spot nodes: checkpoints, preemption notices, the drain, resuming elsewhere.

Real daemons, a real training step (examples/spot/train_sgd.py: SGD on
generated data, a checkpoint every epoch) and a fake cloud metadata server
(fakemeta.py) on loopback that starts announcing a reclaim mid-training.
The resumed run must end with exactly the model of an uninterrupted one
(same seed), with the preemption counted as such and no retry spent.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from harness import (SOURCE_DIR, DroverTestCase, bin_path, check_daemons, main, task,
                     wait_final, wait_until)
from fakemeta import FakeMeta

TRAIN = os.path.join(SOURCE_DIR, "examples", "spot", "train_sgd.py")
TRAIN_TORCH = os.path.join(SOURCE_DIR, "examples", "spot", "train_torch.py")
try:
    import torch  # noqa: F401 (only the PyTorch example's test needs it)
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def train_step(name="train", epochs=12, secs=0.3, args=(), **extra):
    step = {"name": name,
            "command": ["python3", TRAIN, "--epochs", str(epochs), "--epoch-seconds", str(secs)]
            + list(args),
            "outputs": {"artifacts": ["model"]},
            "checkpoint": {"keep": 2},
            "preemption": {"grace": "20s", "max_preemptions": 5},
            "placement": {"spot": "prefer"}}
    step.update(extra)
    return step


def reference_model(epochs, args=()):
    """The model of an uninterrupted run (same seed), computed locally."""
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "ck"))
        env = dict(os.environ, DROVER_OUTPUTS=d, DROVER_CHECKPOINT_DIR=os.path.join(d, "ck"))
        env.pop("DROVER_PROGRESS", None)
        env.pop("DROVER_RESUMED", None)
        subprocess.run(["python3", TRAIN, "--epochs", str(epochs)] + list(args), env=env,
                       check=True, stdout=subprocess.DEVNULL, timeout=120)
        with open(os.path.join(d, "model")) as f:
            return json.load(f)


def iso_in(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def rfc1123_in(seconds):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + seconds))


def azure_event(event_id, event_type, resources, not_before):
    return {"EventId": event_id, "EventType": event_type, "ResourceType": "VirtualMachine",
            "Resources": list(resources), "EventStatus": "Scheduled", "NotBefore": not_before,
            "Description": "", "EventSource": "Platform", "DurationInSeconds": -1}


def stubborn_step():
    """Ignores SIGTERM and checkpoints every 0.3 s until killed; resumed, it
    ends at once (so only the first attempt's end matters)."""
    return {"name": "train", "command": ["python3", "-c", STUBBORN],
            "checkpoint": {"keep": 2},
            "preemption": {"grace": "600s", "max_preemptions": 5},
            "placement": {"spot": "prefer"}}


class SpotTest(DroverTestCase):
    def setUp(self):
        super().setUp()
        self.meta = None

    def tearDown(self):
        if self.meta:
            self.meta.close()

    def start(self, spot_extra=(), ondemand=True):
        c = self.c
        c.start_droverd()
        c.start_agent("spot1", cpus=2, extra=["--spot", "true", "--price", "0.3"]
                      + list(spot_extra))
        if ondemand:
            c.start_agent("od1", cpus=2, extra=["--spot", "false", "--price", "1.2"])
        return c

    def with_meta(self, provider, **state):
        self.meta = FakeMeta()
        self.meta.set(**state)
        return ["--%s-metadata" % provider, self.meta.url, "--metadata-poll", "200ms"]

    def wait_checkpoint(self, rid, name="train", step=3, timeout=60):
        def ok(t):
            ck = t.get("checkpoint")
            return ck is not None and ck["step"] >= step
        return self.c.wait_task(rid, name, ok, timeout=timeout,
                                what="a checkpoint at step >= %d" % step)

    def model_of(self, rid, name="train"):
        out = self.c.path("model-%s-%s.json" % (rid, name))
        r = self.c.cli("artifact", "get", rid, name, "model", "-o", out, "--force")
        self.assertEqual(r.rc, 0, r)
        with open(out) as f:
            return json.load(f)

    def assert_resumed_once(self, rid, epochs, preempted_on="spot1"):
        run = wait_final(self.c, rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual(t["preemptions"], 1, t)
        self.assertEqual(t["retries_used"], 0, t)
        first, last = t["history"][0], t["history"][-1]
        self.assertEqual(first["agent"], preempted_on, t)
        self.assertEqual(first["status"], "PREEMPTED", t)
        self.assertEqual(last["agent"], "od1", t)
        self.assertIsNotNone(last["resumed_step"], "the second attempt resumed: %r" % t)
        self.assertGreaterEqual(last["resumed_step"], 3, t)
        self.assertEqual(self.model_of(rid), reference_model(epochs),
                         "the resumed run ends with the uninterrupted run's model")
        logs = self.c.cli("logs", rid, "train")
        self.assertIn("resumed from the checkpoint of epoch %d" % last["resumed_step"], logs.out)
        self.assertGreater(t["spot_ms"], 0, t)
        self.assertGreater(t["ondemand_ms"], 0, t)
        self.assertGreater(t["cost"], 0, t)
        return t

    # ---------------------------------------------------------------- clouds

    def test_aws_spot_interruption(self):
        c = self.start(self.with_meta("aws"))
        self.meta.set(aws_spot=True)
        rid = c.submit({"name": "aws", "steps": [train_step()]})
        self.wait_checkpoint(rid)
        self.meta.set(aws_action={"action": "terminate", "time": iso_in(60)})
        wait_until(lambda: (c.agent("spot1") or {}).get("preemption") is not None, 30,
                   what="droverd to see spot1 preempting")
        self.assert_resumed_once(rid, 12)
        reqs = self.meta.requests()
        self.assertTrue(any(r["method"] == "PUT" and r["path"] == "/latest/api/token"
                            for r in reqs), "IMDSv2: a token was asked for")
        self.assertIn("aws spot/instance-action", c.agents["spot1"].log_text())
        check_daemons(c)

    def test_gcp_preemption(self):
        c = self.start(self.with_meta("gcp"))
        rid = c.submit({"name": "gcp", "steps": [train_step()]})
        self.wait_checkpoint(rid)
        self.meta.set(gcp_preempted=True)
        self.assert_resumed_once(rid, 12)
        self.assertTrue(all(r["headers"].get("metadata-flavor") == "Google"
                            for r in self.meta.requests() if r["path"].startswith("/compute")))
        check_daemons(c)

    def test_azure_preempt_event_acknowledged(self):
        c = self.start(self.with_meta("azure", azure_vm="vm-spot1"))
        rid = c.submit({"name": "azure", "steps": [train_step(epochs=20)]})
        self.wait_checkpoint(rid)
        not_before = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
        self.meta.set(azure_events=[
            {"EventId": "E-other", "EventType": "Preempt", "ResourceType": "VirtualMachine",
             "Resources": ["some-other-vm"], "EventStatus": "Scheduled",
             "NotBefore": not_before},
            {"EventId": "E-ours", "EventType": "Preempt", "ResourceType": "VirtualMachine",
             "Resources": ["vm-spot1"], "EventStatus": "Scheduled", "NotBefore": not_before}])
        self.assert_resumed_once(rid, 20)

        def acked():
            for r in self.meta.requests():
                if r["method"] == "POST" and "scheduledevents" in r["path"]:
                    body = json.loads(r["body"] or "{}")
                    ids = [e.get("EventId") for e in body.get("StartRequests", [])]
                    if ids:
                        return ids
            return None
        ids = wait_until(acked, 30, what="the StartRequests acknowledgement")
        self.assertEqual(ids, ["E-ours"], "only this VM's event is acknowledged")
        check_daemons(c)

    def test_rebalance_commits_checkpoint_and_kills_nothing(self):
        c = self.start(self.with_meta("aws"))
        step = train_step(epochs=20, secs=0.3, checkpoint={"min_interval": "1h"})
        rid = c.submit({"name": "rebalance", "steps": [step]})
        # min_interval 1h: only the first checkpoint line is committed ...
        self.wait_checkpoint(rid, step=1)
        c.wait_task(rid, "train", lambda t: (t.get("progress") or 0) >= 0.25, timeout=60,
                    what="more epochs")
        self.assertEqual(task(c.get_run(rid), "train")["checkpoint"]["step"], 1)
        # ... until the rebalance recommendation commits the latest one now
        notice_time = iso_in(0)
        self.meta.set(aws_rebalance={"noticeTime": notice_time})
        t = self.wait_checkpoint(rid, step=4)
        self.assertEqual(t["status"], "RUNNING")
        self.assertEqual(t["attempts"], 1, "nothing was killed: %r" % t)
        self.assertEqual((c.agent("spot1") or {}).get("preemption", {}).get("terminate"), False)
        # a notice without a deadline says so, in the agent's log and droverd's
        self.assertIn("rebalance notice: aws events/recommendations/rebalance noticeTime %s "
                      "(no deadline)\n" % notice_time, c.agents["spot1"].log_text())
        self.assertRegex(c.droverd.log_text(), r"agent spot1: at risk: placed last "
                         r"\(no deadline\): aws events/recommendations/rebalance")
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual((t["attempts"], t["preemptions"]), (1, 0), t)
        check_daemons(c)

    # ---------------------------------------------------------------- several notices

    def kill_plans(self, name):
        """The SIGKILL delays (s) the agent planned, in its log's order."""
        return [float(m) for m in re.findall(r"SIGKILL in ([0-9.]+)s",
                                             self.c.agents[name].log_text())]

    def assert_handed_back_before(self, rid, deadline_s):
        """The first attempt was killed and reported, with its last
        checkpoint, before the node goes away at deadline_s (Unix s)."""
        c = self.c
        t = c.wait_task(rid, "train", lambda t: t["history"] and t["history"][0]["finished_ms"],
                        timeout=120, what="the first attempt handed back")
        first = t["history"][0]
        self.assertEqual(first["status"], "PREEMPTED", t)
        self.assertEqual(first["signal"], signal.SIGKILL, t)
        self.assertLess(first["finished_ms"] / 1000.0, deadline_s,
                        "the step was handed back %.1f s after the node went away"
                        % (first["finished_ms"] / 1000.0 - deadline_s))
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual((t["preemptions"], t["retries_used"]), (1, 0), t)
        self.assertGreaterEqual(t["history"][-1]["resumed_step"] or 0, 3, t)
        self.assertIn("deadline moved earlier", c.agents["spot1"].log_text())
        return t

    def test_gcp_sigterm_then_preempted_keeps_the_earlier_deadline(self):
        """On GCP, systemd's SIGTERM (stop timeout 90 s) and preempted=TRUE
        (power-off about 30 s later) arrive together: the 30 s decide."""
        c = self.start(self.with_meta("gcp") + ["--stop-timeout", "90s",
                                                 "--upload-margin", "25s"])
        rid = c.submit({"name": "gcp-two-notices", "steps": [stubborn_step()]})
        self.wait_checkpoint(rid)
        c.agents["spot1"].terminate()  # systemd stops the unit
        wait_until(lambda: self.kill_plans("spot1"), 30, what="the SIGKILL planned on SIGTERM")
        self.assertGreater(self.kill_plans("spot1")[0], 50)  # 90 s - 25 s margin
        power_off = time.time() + 30
        self.meta.set(gcp_preempted=True)
        self.assert_handed_back_before(rid, power_off)
        check_daemons(c)

    def test_azure_terminate_then_preempt_keeps_the_earlier_deadline(self):
        c = self.start(self.with_meta("azure", azure_vm="vm-spot1") + ["--upload-margin", "25s"])
        rid = c.submit({"name": "azure-two-notices", "steps": [stubborn_step()]})
        self.wait_checkpoint(rid)
        terminate = azure_event("E-terminate", "Terminate", ["vm-spot1"], rfc1123_in(300))
        self.meta.set(azure_events=[terminate])
        wait_until(lambda: self.kill_plans("spot1"), 30, what="the SIGKILL planned on Terminate")
        self.assertGreater(self.kill_plans("spot1")[0], 200)  # 300 s - 25 s margin
        not_before = int(time.time()) + 30
        self.meta.set(azure_events=[terminate, azure_event(
            "E-preempt", "Preempt", ["vm-spot1"],
            time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(not_before)))])
        self.assert_handed_back_before(rid, not_before)
        # drained: both events acknowledged, each in its own request
        wait_until(lambda: all(e["EventStatus"] == "Started" for e in self.meta.azure_events()),
                   30, what="both events acknowledged")
        for r in self.meta.requests():
            if r["method"] == "POST":
                self.assertEqual(len(json.loads(r["body"])["StartRequests"]), 1, r)
        check_daemons(c)

    def test_gcp_migration_at_risk_until_maintenance_ends(self):
        c = self.start(self.with_meta("gcp"))

        def placed_on(name):
            rid = c.submit({"name": name, "steps": [
                {"name": "s", "command": ["true"], "placement": {"spot": "prefer"}}]})
            run = wait_final(c, rid, timeout=60)
            self.assertRunSucceeded(run)
            return task(run, "s")["agent"]

        def preemption():
            return (c.agent("spot1") or {}).get("preemption")

        self.assertEqual(placed_on("before"), "spot1")
        self.meta.set(gcp_maintenance="MIGRATE_ON_HOST_MAINTENANCE")
        wait_until(lambda: (preemption() or {}).get("terminate") is False, 30,
                   what="spot1 at risk")
        self.assertEqual(placed_on("during"), "od1", "a node at risk is placed last")
        self.meta.set(gcp_maintenance="NONE")  # migrated: the risk is over
        wait_until(lambda: preemption() is None, 30, what="the at-risk mark withdrawn")
        self.assertIn("agent spot1: preemption notice withdrawn", c.droverd.log_text())
        self.assertEqual(placed_on("after"), "spot1", "spot1 is placed first again")
        check_daemons(c)

    # ---------------------------------------------------------------- failures

    def test_agent_kill9_resumes_from_last_checkpoint(self):
        c = self.start()
        rid = c.submit({"name": "kill9", "steps": [train_step(epochs=14, secs=0.4)]})
        self.wait_checkpoint(rid, step=4)
        killed_ms = int(time.time() * 1000)
        c.kill_agent("spot1")  # the node is gone: no notice at all
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual((t["preemptions"], t["retries_used"]), (1, 0), t)
        first, last = t["history"][0], t["history"][-1]
        self.assertEqual(first["status"], "LOST", t)
        # charged up to its last heartbeat, not the detection window after
        # it (droverd's --agent-timeout here is 2 s)
        self.assertLessEqual(first["finished_ms"], killed_ms + 500, (killed_ms, t))
        # work lost is at most one checkpoint interval (one epoch): the
        # resumed attempt starts at most one epoch behind the last epoch
        # the killed attempt logged
        log1 = c.cli("logs", rid, "train", "--attempt", "1").out
        done = max(int(m) for m in re.findall(r"epoch (\d+)/", log1))
        self.assertGreaterEqual(last["resumed_step"], done - 1, (done, t))
        self.assertEqual(self.model_of(rid), reference_model(14))
        check_daemons(c)

    def test_task_ignoring_sigterm_is_killed_at_the_deadline(self):
        c = self.start()
        step = train_step(epochs=20, secs=0.3, args=["--ignore-sigterm"],
                          preemption={"grace": "1s", "max_preemptions": 5})
        rid = c.submit({"name": "stubborn", "steps": [step]})
        self.wait_checkpoint(rid, step=3)
        r = c.cli("agent", "preempt", "spot1", "--deadline", "30s")
        self.assertEqual(r.rc, 0, r)
        t = self.assert_resumed_once(rid, 20, preempted_on="spot1")
        self.assertEqual(t["history"][0]["signal"], signal.SIGKILL, t)
        self.assertIn("still running at its preemption deadline", c.agents["spot1"].log_text())
        check_daemons(c)

    def test_droverd_kill9_during_checkpoint_upload(self):
        """The previous checkpoint stays the latest until a new one is whole."""
        c = self.start(ondemand=False)
        # a 24 MiB checkpoint per epoch: its upload takes a while
        step = {"name": "big", "command": ["python3", "-c", BIG_CHECKPOINTER],
                "checkpoint": {"keep": 2}}
        rid = c.submit({"name": "bigck", "steps": [step]})
        t = self.wait_checkpoint(rid, name="big", step=1)
        # kill droverd while the next checkpoint is on its way
        wait_until(lambda: "step 2 written" in c.cli("logs", rid, "big").out, 60,
                   what="the second checkpoint to be written")
        c.kill_droverd()
        c.start_droverd()
        t = task(c.get_run(rid), "big")
        self.assertGreaterEqual(t["checkpoint"]["step"], 1, t)
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "big")
        self.assertIsNone(t["checkpoint"], "a finished step keeps no checkpoint")
        check_daemons(c)

    def test_preemption_storm(self):
        c = self.c
        c.start_droverd()
        for k in range(1, 6):
            c.start_agent("spot%d" % k, cpus=4, extra=["--spot", "true", "--price", "0.3"])
        c.start_agent("od1", cpus=4, extra=["--spot", "false", "--price", "1.2"])
        steps = [train_step(name="s%02d" % i, epochs=16, secs=0.25, args=["--seed", str(i)])
                 for i in range(20)]
        rid = c.submit({"name": "storm", "steps": steps})
        for k in range(1, 6):
            victim = "spot%d" % k

            def running_with_checkpoint():
                run = c.get_run(rid)
                mine = [t for t in run["tasks"] if t["agent"] == victim
                        and t["status"] == "RUNNING"]
                return mine and all(t.get("checkpoint") for t in mine)
            try:
                wait_until(running_with_checkpoint, 30, what="checkpointed steps on " + victim)
            except AssertionError:
                pass  # nothing left there to preempt: preempt it anyway
            r = c.cli("agent", "preempt", victim, "--deadline", "20s")
            self.assertEqual(r.rc, 0, r)
        run = wait_final(c, rid, timeout=300)
        self.assertRunSucceeded(run)
        preempted = 0
        for t in run["tasks"]:
            self.assertEqual(t["retries_used"], 0, t)
            preempted += t["preemptions"]
            committed = 0
            for a in t["history"]:
                if committed:
                    self.assertIsNotNone(a["resumed_step"],
                                         "%s ran from scratch after a checkpoint: %r"
                                         % (t["name"], t))
                committed += a["checkpoints"]
        self.assertGreaterEqual(preempted, 5, "the storm hit running steps")
        check_daemons(c)

    # ---------------------------------------------------------------- bad input

    def test_bad_metadata_servers_do_not_drain(self):
        c = self.c
        c.start_droverd()
        self.meta = FakeMeta()
        names = []
        for provider in ("aws", "gcp", "azure"):
            name = "bad-" + provider
            names.append(name)
            c.start_agent(name, cpus=1, extra=["--%s-metadata" % provider, self.meta.url,
                                               "--metadata-poll", "200ms", "--spot", "true"])
        for mode in ("garbage", "500", "hang", "huge"):
            self.meta.set(mode=mode)
            rid = c.submit({"name": "still-" + mode,
                            "steps": [{"name": "s%d" % i, "command": ["true"]}
                                      for i in range(6)]})
            self.assertRunSucceeded(wait_final(c, rid, timeout=60))
        for name in names:
            a = c.agent(name)
            self.assertTrue(a["connected"], a)
            self.assertIsNone(a["preemption"], "a bad answer is no notice: %r" % a)
            log = c.agents[name].log_text()
            self.assertRegex(log, r"(?i)metadata|watch", name)
            self.assertNotIn("preemption notice", log)
        check_daemons(c)

    def test_drill_shows_in_run_get(self):
        c = self.start()
        rid = c.submit({"name": "drill", "steps": [train_step(epochs=10)]})
        self.wait_checkpoint(rid)
        r = c.cli("agent", "preempt", "spot1", "--deadline", "20s")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("preempting", c.cli("agents").out)
        self.assert_resumed_once(rid, 10)
        out = c.cli("run", "get", rid).out
        for col in ("SPOT", "PREEMPTED", "CHECKPOINT", "WORK LOST", "estimated cost"):
            self.assertIn(col, out)
        r = c.cli("agent", "preempt", "nobody")
        self.assertNotEqual(r.rc, 0)
        self.assertIn("no connected agent 'nobody'", r.err)
        check_daemons(c)


    # ---------------------------------------------------------------- big checkpoints

    def test_saves_faster_than_uploads_always_commit(self):
        """A trainer replacing a 40 MB last.pt (temp file and rename) every
        0.2 s, faster than one upload: no checkpoint is refused, the temp
        file is never part of one, the newest line is the one committed
        last, and a drill resumes from exactly that checkpoint."""
        c = self.start()
        step = {"name": "train", "command": ["python3", "-c", RAPID_SAVER, "40"],
                "checkpoint": {"keep": 2, "min_interval": "0s"},
                "preemption": {"grace": "20s", "max_preemptions": 5},
                "placement": {"spot": "prefer"}}
        rid = c.submit({"name": "rapid", "steps": [step]})
        wait_until(lambda: "all saved" in c.cli("logs", rid, "train").out, 120,
                   what="the ten checkpoints to be written")
        self.wait_checkpoint(rid, step=10, timeout=60)
        log = c.agents["spot1"].log_text()
        self.assertNotIn("not committed", log)
        self.assertNotIn("not captured", log)
        r = c.cli("agent", "preempt", "spot1", "--deadline", "30s")
        self.assertEqual(r.rc, 0, r)
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual(t["history"][-1]["resumed_step"], 10, t)
        out = c.cli("logs", rid, "train").out
        self.assertIn("resumed: step 10, file of step 10, files ['last.pt']", out)
        check_daemons(c)

    def test_cancel_during_checkpoint_upload_ends_the_attempt(self):
        """Cancelled, the trainer writes a last big checkpoint line: the
        attempt still ends at once and its directory is removed."""
        c = self.start(ondemand=False)
        marker = c.path("final-checkpoint-written")
        step = {"name": "train", "command": ["python3", "-c", SAVE_ON_SIGTERM, marker],
                "checkpoint": {"keep": 2, "min_interval": "0s"}}
        rid = c.submit({"name": "cancelck", "steps": [step]})
        self.wait_checkpoint(rid, step=2)
        attempt_dir = os.path.join(c.agent_work_dir("spot1"), "runs", rid, "train", "1")
        self.assertTrue(os.path.isdir(attempt_dir), attempt_dir)
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        wait_until(lambda: os.path.exists(marker), 30, what="the trainer's last checkpoint line")
        wait_until(lambda: not os.path.exists(attempt_dir), 20,
                   what="the cancelled attempt's directory to be removed")
        self.assertNotIn("stalled", c.agents["spot1"].log_text())
        # the agent stops at once: nothing of the attempt holds it
        c.agents["spot1"].terminate()
        wait_until(lambda: not c.agents["spot1"].alive(), 10, what="the agent to stop")
        check_daemons(c)

    # ---------------------------------------------------------------- drills

    def placed_on_spot(self, name):
        """A spot: prefer run: the agent its step ran on."""
        rid = self.c.submit({"name": name, "steps": [
            {"name": "s", "command": ["true"], "placement": {"spot": "prefer"}}]})
        run = wait_final(self.c, rid, timeout=60)
        self.assertRunSucceeded(run)
        return task(run, "s")["history"][-1]["agent"]

    def test_drill_ends_at_its_deadline_or_with_undrain(self):
        c = self.start()
        # at its deadline a drill ends: spot1 (no --drill-exit) takes work again
        r = c.cli("agent", "preempt", "spot1", "--deadline", "2s")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("preempting (drill; then back)", c.cli("agents").out)
        wait_until(lambda: c.agent("spot1")["preemption"] is None, 30,
                   what="spot1's drill to end at its deadline")
        self.assertEqual(self.placed_on_spot("after-deadline"), "spot1")
        # undrain ends a drill at once
        r = c.cli("agent", "preempt", "spot1", "--deadline", "600s")
        self.assertEqual(r.rc, 0, r)
        wait_until(lambda: (c.agent("spot1")["preemption"] or {}).get("terminate"), 30,
                   what="spot1 preempting")
        self.assertEqual(self.placed_on_spot("during-drill"), "od1")
        r = c.cli("agent", "undrain", "spot1")
        self.assertEqual(r.rc, 0, r)
        wait_until(lambda: c.agent("spot1")["preemption"] is None, 30,
                   what="undrain to end spot1's drill")
        self.assertEqual(self.placed_on_spot("after-undrain"), "spot1")
        check_daemons(c)

    def test_drill_exit_agent_leaves_at_the_deadline(self):
        c = self.start(spot_extra=["--drill-exit"], ondemand=False)
        r = c.cli("agent", "preempt", "spot1", "--deadline", "2s")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("preempting (drill; then exits)", c.cli("agents").out)
        c.agents["spot1"].expected_exit = True
        wait_until(lambda: not c.agents["spot1"].alive(), 30,
                   what="the agent to exit at its drill's deadline")
        self.assertIn("drill deadline: the agent exits", c.agents["spot1"].log_text())

    # ---------------------------------------------------------------- the blob cache

    def test_agent_blob_cache_stays_bounded(self):
        """Inputs and restored checkpoints go through WORK_DIR/cache: with
        --cache-size 30Mi it stays under 30 MiB across 12 steps of 8 MiB
        inputs each (96 MiB unbounded), evicting the least recently used."""
        c = self.c
        c.start_droverd()
        c.start_agent("prod", cpus=4, labels={"role": "prod"})
        c.start_agent("cons", cpus=1, labels={"role": "cons"}, extra=["--cache-size", "30Mi"])
        steps = []
        for i in range(12):
            steps.append({"name": "p%d" % i, "outputs": {"artifacts": ["blob"]},
                          "placement": {"labels": {"role": "prod"}},
                          "command": ["python3", "-c",
                                      "import os; open(os.environ['DROVER_OUTPUTS'] + '/blob', "
                                      "'wb').write(os.urandom(8 << 20))"]})
            steps.append({"name": "c%d" % i, "needs": ["p%d" % i],
                          "inputs": {"artifacts": {"b": "p%d.blob" % i}},
                          "placement": {"labels": {"role": "cons"}},
                          "command": ["python3", "-c",
                                      "import os, sys; sys.exit(os.path.getsize("
                                      "os.environ['DROVER_INPUTS'] + '/b') != 8 << 20)"]})
        rid = c.submit({"name": "cachebound", "steps": steps})
        run = wait_final(c, rid, timeout=300)
        self.assertRunSucceeded(run)
        cache = os.path.join(c.agent_work_dir("cons"), "cache")
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache)
                    for f in fs)
        self.assertLessEqual(total, 30 << 20, "the cache holds %d bytes" % total)
        self.assertIn("least recently used blobs (", c.agents["cons"].log_text())
        check_daemons(c)

    # ---------------------------------------------------------------- PyTorch

    @unittest.skipUnless(HAVE_TORCH, "python3-torch is not installed: the PyTorch example is "
                         "not run (make demo uses the standard-library trainer)")
    def test_pytorch_example_resumes_to_the_same_weights(self):
        args = ["--epochs", "12", "--width", "512", "--epoch-seconds", "0.3"]
        c = self.start()
        step = {"name": "train", "command": ["python3", TRAIN_TORCH] + args,
                "outputs": {"artifacts": ["model.pt"]},
                "checkpoint": {"keep": 2, "min_interval": "0s"},
                "preemption": {"grace": "20s", "max_preemptions": 5},
                "placement": {"spot": "prefer"}}
        rid = c.submit({"name": "torch", "steps": [step]})
        self.wait_checkpoint(rid, step=3, timeout=120)
        r = c.cli("agent", "preempt", "spot1", "--deadline", "30s")
        self.assertEqual(r.rc, 0, r)
        run = wait_final(c, rid, timeout=300)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual((t["preemptions"], t["retries_used"]), (1, 0), t)
        self.assertGreaterEqual(t["history"][-1]["resumed_step"], 3, t)
        got = c.path("model.pt")
        r = c.cli("artifact", "get", rid, "train", "model.pt", "-o", got, "--force")
        self.assertEqual(r.rc, 0, r)
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "ck"))
            env = dict(os.environ, DROVER_OUTPUTS=d, DROVER_CHECKPOINT_DIR=os.path.join(d, "ck"))
            for k in ("DROVER_PROGRESS", "DROVER_RESUMED"):
                env.pop(k, None)
            subprocess.run(["python3", TRAIN_TORCH] + args[:4], env=env, check=True,
                           stdout=subprocess.DEVNULL, timeout=600)
            want = torch.load(os.path.join(d, "model.pt"))
        have = torch.load(got)
        self.assertEqual(sorted(have), sorted(want))
        for k in want:
            self.assertTrue(torch.equal(have[k], want[k]), "weights %s differ" % k)
        self.assertNotIn("not committed", c.agents["spot1"].log_text())
        check_daemons(c)

    def test_agent_cache_bounded_across_resumes(self):
        """20 resumes of a 10 MiB checkpoint, each a new one restored
        through the cache (200 MiB unbounded): it stays under 30 MiB.
        Each attempt fails once droverd shows its checkpoint committed, so
        each resumes from the one before: 21 attempts in all."""
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=1, extra=["--cache-size", "30Mi"])
        step = {"name": "train",
                "command": ["python3", "-c", RESUMER, "20", bin_path("drover"), c.api],
                "checkpoint": {"keep": 1, "min_interval": "0s"},
                "retries": {"limit": 60, "backoff": "100ms", "factor": 1}}
        rid = c.submit({"name": "resumes", "steps": [step]})
        run = wait_final(c, rid, timeout=400)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual(t["history"][-1]["resumed_step"], 20, t)
        self.assertEqual((t["attempts"], t["retries_used"]), (21, 20), t)
        cache = os.path.join(c.agent_work_dir("a1"), "cache")
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache)
                    for f in fs)
        self.assertLessEqual(total, 30 << 20, "the cache holds %d bytes" % total)
        self.assertIn("least recently used blobs (", c.agents["a1"].log_text())
        check_daemons(c)

STUBBORN = r"""
import json, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
ck, prog = os.environ["DROVER_CHECKPOINT_DIR"], os.environ["DROVER_PROGRESS"]
if os.environ.get("DROVER_RESUMED") == "1":
    print("resumed at step", open(os.path.join(ck, "step")).read(), flush=True)
    sys.exit(0)
step = 0
while True:
    step += 1
    tmp = os.path.join(ck, "step.tmp")
    with open(tmp, "w") as f:
        f.write(str(step))
    os.replace(tmp, os.path.join(ck, "step"))
    with open(prog, "a") as f:
        f.write(json.dumps({"checkpoint": True, "step": step}) + "\n")
    time.sleep(0.3)
"""

BIG_CHECKPOINTER = r"""
import json, os
ck, prog = os.environ["DROVER_CHECKPOINT_DIR"], os.environ["DROVER_PROGRESS"]
start = int(os.environ.get("DROVER_CHECKPOINT_STEP", "0"))
for step in range(start + 1, 5):
    tmp = os.path.join(ck, "blob.tmp")
    with open(tmp, "wb") as f:
        f.write(os.urandom(24 << 20))
    os.replace(tmp, os.path.join(ck, "blob"))
    print("step %d written" % step, flush=True)
    with open(prog, "a") as f:
        f.write(json.dumps({"checkpoint": True, "step": step}) + "\n")
    import time; time.sleep(1.5)
"""

RAPID_SAVER = r"""
import json, os, sys, time
ck, prog = os.environ["DROVER_CHECKPOINT_DIR"], os.environ["DROVER_PROGRESS"]
path = os.path.join(ck, "last.pt")
if os.environ.get("DROVER_RESUMED") == "1":
    step = int(os.environ["DROVER_CHECKPOINT_STEP"])
    with open(path, "rb") as f:
        head = int(f.read(16))
    names = sorted(os.listdir(ck))
    print("resumed: step %d, file of step %d, files %s" % (step, head, names), flush=True)
    sys.exit(0 if head == step and names == ["last.pt"] else 1)
block = os.urandom(1 << 20)
for step in range(1, 11):
    time.sleep(0.2)
    with open(path + ".tmp", "wb") as f:
        f.write(b"%016d" % step)
        for _ in range(int(sys.argv[1])):
            f.write(block)
    os.replace(path + ".tmp", path)
    with open(prog, "a") as f:
        f.write(json.dumps({"checkpoint": True, "step": step}) + "\n")
print("all saved", flush=True)
time.sleep(600)
"""

SAVE_ON_SIGTERM = r"""
import json, os, signal, sys, time
ck, prog = os.environ["DROVER_CHECKPOINT_DIR"], os.environ["DROVER_PROGRESS"]
def save(step, size):
    with open(os.path.join(ck, "last.pt.tmp"), "wb") as f:
        f.write(os.urandom(size))
    os.replace(os.path.join(ck, "last.pt.tmp"), os.path.join(ck, "last.pt"))
    with open(prog, "a") as f:
        f.write(json.dumps({"checkpoint": True, "step": step}) + "\n")
def on_term(*_):
    save(1000, 40 << 20)
    open(sys.argv[1], "w").close()
    time.sleep(1.5)  # the agent reads the line while the process runs
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
for step in range(1, 1000):
    save(step, 1024)
    time.sleep(0.3)
"""

RESUMER = r"""
import json, os, subprocess, sys, time
ck, prog = os.environ["DROVER_CHECKPOINT_DIR"], os.environ["DROVER_PROGRESS"]
drover, api = sys.argv[2], sys.argv[3]
path = os.path.join(ck, "last.pt")
start = int(os.environ.get("DROVER_CHECKPOINT_STEP", "0"))
if start:
    with open(path, "rb") as f:
        assert int(f.read(16)) == start, "restored the checkpoint of its step"
if start >= int(sys.argv[1]):
    sys.exit(0)
with open(path + ".tmp", "wb") as f:
    f.write(b"%016d" % (start + 1))
    f.write(os.urandom(10 << 20))
os.replace(path + ".tmp", path)
with open(prog, "a") as f:
    f.write(json.dumps({"checkpoint": True, "step": start + 1}) + "\n")
def committed():
    p = subprocess.run([drover, "--api", api, "run", "get", os.environ["DROVER_RUN_ID"],
                        "-o", "json"], capture_output=True, text=True)
    if p.returncode != 0:
        return False
    for t in json.loads(p.stdout)["tasks"]:
        if t["name"] == os.environ["DROVER_TASK"]:
            return (t.get("checkpoint") or {}).get("step") == start + 1
end = time.monotonic() + 120
while not committed():  # then fail, to be retried from it
    if time.monotonic() > end:
        print("checkpoint of step %d not committed in 120 s" % (start + 1), flush=True)
        break
    time.sleep(0.05)
sys.exit(1)
"""

if __name__ == "__main__":
    main()
