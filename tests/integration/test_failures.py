"""Crashes: a lost agent, kill -9 of droverd mid-run (repeatedly), agents
that start first, and exit reports that arrive after a scheduler restart."""
import os
import random
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402


class FailuresTest(harness.DroverTestCase):
    def test_lost_agent_step_reruns_elsewhere(self):
        c = self.c
        c.start_droverd()
        c.start_agent("n1", cpus=2)
        c.start_agent("n2", cpus=2)
        starts = c.path("starts")
        rid = c.submit({"name": "lost", "steps": [
            {"name": "long", "script": 'echo "$DROVER_ATTEMPT $(date +%%s%%N)" >> %s; sleep 5' % starts,
             "retries": 0},
            {"name": "after", "needs": ["long"], "script": "true"},
        ]})
        harness.wait_until(lambda: len(harness.read_lines(starts)) >= 1, timeout=60,
                           what="the step to start")
        t = c.wait_task(rid, "long", lambda t: t["status"] == "RUNNING" and t["agent"],
                        what="long to be RUNNING on an agent")
        victim = t["agent"]
        other = "n2" if victim == "n1" else "n1"
        killed_at = time.monotonic()
        c.kill_agent(victim)
        # the agent stops heartbeating: after --agent-timeout 2s it is lost
        t = c.wait_task(rid, "long", lambda t: t["history"] and t["history"][0]["status"] == "LOST",
                        timeout=30, what="the first attempt to be LOST")
        lost_after = time.monotonic() - killed_at
        self.assertLess(lost_after, 15 * harness.SCALE,
                        "agent loss took %.1fs to notice with --agent-timeout 2s" % lost_after)
        a = c.agent(victim)
        self.assertFalse(a["connected"], a)
        run = c.wait_run_final(rid, timeout=90)
        self.assertRunSucceeded(run)
        t = task(run, "long")
        h = t["history"]
        self.assertEqual([x["status"] for x in h], ["LOST", "SUCCEEDED"], h)
        self.assertEqual(h[0]["agent"], victim, h)
        self.assertEqual(h[1]["agent"], other, h)
        self.assertEqual(t["agent"], other, t)
        self.assertEqual(t["retries_used"], 0, "a lost agent must not burn a retry: %s" % t)
        self.assertEqual(t["preemptions"], 1, t)
        self.assertEqual(t["attempts"], 2, t)
        self.assertEqual([line.split()[0] for line in harness.read_lines(starts)], ["1", "2"])

    def test_droverd_killed_again_and_again(self):
        # kill -9 at arbitrary moments, many times, through a run with a
        # fan-out: every step still runs exactly once
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        effects = c.path("effects")
        mids = ["m%d" % i for i in range(6)]
        steps = [{"name": "first", "script": "echo first >> %s; sleep 0.4" % effects}]
        steps += [{"name": m, "needs": ["first"], "script": "echo %s >> %s; sleep 0.8" % (m, effects)}
                  for m in mids]
        steps.append({"name": "last", "needs": mids, "script": "echo last >> %s" % effects})
        rid = c.submit({"name": "hammer", "steps": steps})
        rng = random.Random(7)
        for _ in range(6):
            if c.get_run(rid)["status"] in harness.FINAL_RUN:
                break
            c.kill_droverd()
            c.start_droverd()
            time.sleep(rng.uniform(0.05, 0.4))  # a random moment of the run, not a wait
        run = c.wait_run_final(rid, timeout=120)
        self.assertRunSucceeded(run)
        lines = harness.read_lines(effects)
        self.assertEqual(sorted(lines), sorted(["first", "last"] + mids),
                         "every step must run exactly once: %s" % lines)
        self.assertEqual((lines[0], lines[-1]), ("first", "last"), lines)

    def test_agent_restarted_with_same_name(self):
        c = self.c
        c.start_droverd()
        c.start_agent("n1", cpus=2)
        starts = c.path("starts")
        rid = c.submit({"name": "restarted", "steps": [
            {"name": "long", "script": 'echo "$DROVER_ATTEMPT" >> %s; sleep 2' % starts,
             "retries": 0},
        ]})
        harness.wait_until(lambda: len(harness.read_lines(starts)) >= 1, timeout=60,
                           what="the step to start")
        c.wait_task_status(rid, "long", "RUNNING")
        c.kill_agent("n1")
        # the node comes back at once (systemd restart), long before the
        # agent timeout: its registration says it holds nothing
        c.start_agent("n1", cpus=2)
        run = c.wait_run_final(rid, timeout=90)
        self.assertRunSucceeded(run)
        t = task(run, "long")
        self.assertEqual([(a["agent"], a["status"]) for a in t["history"]],
                         [("n1", "LOST"), ("n1", "SUCCEEDED")], t)
        self.assertEqual(t["retries_used"], 0, t)
        self.assertEqual(harness.read_lines(starts), ["1", "2"])

    def test_droverd_kill9_mid_run_loses_nothing(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        effects = c.path("effects")
        names = ["s%d" % i for i in range(1, 7)]
        steps = []
        for i, n in enumerate(names):
            s = {"name": n, "script": "echo %s >> %s; echo out-%s; sleep 0.5" % (n, effects, n)}
            if i:
                s["needs"] = [names[i - 1]]
            steps.append(s)
        rid = c.submit({"name": "chain", "steps": steps})
        created = None
        # kill right after the submit returned, then with steps 2 and 4 running
        for seen in (0, 2, 4):
            harness.wait_until(lambda: len(harness.read_lines(effects)) >= seen, timeout=90,
                               what="%d steps to have started" % seen)
            c.kill_droverd()
            c.start_droverd()
            run = c.get_run(rid)
            if created is None:
                created = run["created_ms"]
            self.assertEqual(run["created_ms"], created)
            self.assertEqual([t["name"] for t in run["tasks"]], names)
        run = c.wait_run_final(rid, timeout=120)
        self.assertRunSucceeded(run)
        for t in run["tasks"]:
            self.assertEqual(t["retries_used"], 0, t)
            self.assertEqual(t["history"][-1]["status"], "SUCCEEDED", t)
        lines = harness.read_lines(effects)
        self.assertEqual(sorted(lines), names, "every step must run exactly once: %s" % lines)
        self.assertEqual(lines, names, "chain order broken: %s" % lines)
        self.assertEqual([r["id"] for r in c.runs()].count(rid), 1)
        # logs survived the restarts, each byte once (re-sent log reports
        # must not be appended twice)
        for n in names:
            r = c.cli("logs", rid, n)
            self.assertEqual((r.rc, r.out), (0, "out-%s\n" % n), r)

    def test_cli_follows_across_droverd_restart(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        go = c.path("go")
        rid = c.submit({"name": "follow", "steps": [
            {"name": "s", "script": "echo before; while [ ! -e %s ]; do sleep 0.05; done; echo after" % go}]})
        c.wait_task_status(rid, "s", "RUNNING")
        watch = c.popen_cli("run", "watch", rid)
        follow = c.popen_cli("logs", rid, "s", "-f")
        try:
            data, ok = harness.read_with_timeout(follow, rb"before\n", timeout=30)
            self.assertTrue(ok, data)
            c.kill_droverd()
            c.start_droverd()
            with open(go, "w"):
                pass
            wout, werr = watch.communicate(timeout=60 * harness.SCALE)
            fout, ferr = follow.communicate(timeout=60 * harness.SCALE)
            harness.check_sanitizer_text(werr + ferr, "drover run watch / logs -f")
            self.assertEqual(watch.returncode, 0, "run watch across a droverd restart: %r" % werr)
            self.assertEqual(follow.returncode, 0, "logs -f across a droverd restart: %r" % ferr)
            self.assertEqual(data + fout, b"before\nafter\n")
        finally:
            for p in (watch, follow):
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        self.assertRunSucceeded(c.get_run(rid))

    def test_retry_backoff_survives_droverd_restart(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        counter = c.path("count")
        rid = c.submit({"name": "backoff", "steps": [
            {"name": "flaky",
             "script": "n=$(cat {f} 2>/dev/null || echo 0); echo $((n+1)) > {f}; [ $n -ge 1 ]".format(f=counter),
             "retries": {"limit": 2, "backoff": "3s"}},
        ]})
        c.wait_task(rid, "flaky", lambda t: t["retry_at_ms"] > 0 and t["status"] != "RUNNING",
                    what="flaky to fail once and wait for its retry")
        c.kill_droverd()
        c.start_droverd()
        run = c.wait_run_final(rid, timeout=90)
        self.assertRunSucceeded(run)
        t = task(run, "flaky")
        h = t["history"]
        self.assertEqual([a["status"] for a in h], ["FAILED", "SUCCEEDED"], h)
        self.assertEqual(t["retries_used"], 1, t)
        gap = h[1]["started_ms"] - h[0]["finished_ms"]
        self.assertGreaterEqual(gap, 2700, "the 3s backoff was cut short by the restart: %s" % h)
        self.assertLess(gap, 3000 + 15000 * harness.SCALE, "the retry came far too late: %s" % h)

    def test_agent_lost_while_droverd_down(self):
        c = self.c
        c.start_droverd()
        c.start_agent("n1", cpus=2)
        starts = c.path("starts")
        rid = c.submit({"name": "lost-offline", "steps": [
            {"name": "long", "script": 'echo "$DROVER_ATTEMPT" >> %s; sleep 3' % starts},
        ]})
        c.wait_task_status(rid, "long", "RUNNING")
        c.kill_droverd()
        c.kill_agent("n1")
        c.start_agent("n2", cpus=2, wait=False)
        c.start_droverd()
        c.wait_agent_connected("n2")
        run = c.wait_run_final(rid, timeout=90)
        self.assertRunSucceeded(run)
        t = task(run, "long")
        self.assertEqual([(a["agent"], a["status"]) for a in t["history"]],
                         [("n1", "LOST"), ("n2", "SUCCEEDED")], t)
        self.assertEqual(t["retries_used"], 0, t)
        self.assertEqual(harness.read_lines(starts), ["1", "2"])
        self.assertFalse(c.agent("n1")["connected"])

    def test_second_droverd_on_same_state_dir_is_refused(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        effects = c.path("effects")
        rid = c.submit({"name": "one", "steps": [
            {"name": "s", "script": "sleep 1; echo s >> %s" % effects}]})
        # an operator starts droverd again on the same state (other ports):
        # two schedulers would both run every step
        argv = [harness.bin_path("droverd"), "--state-dir", c.state_dir,
                "--listen", "tcp://127.0.0.1:%d" % harness.free_port(),
                "--api", "ipc://%s/api2.sock" % c.tmp, "--agent-timeout", "2s"]
        second = harness.Daemon("droverd", "droverd-2", argv, c.path("droverd-2.log"), c.env, c.tmp)
        second.expected_exit = True
        c.daemons.append(second)
        harness.wait_until(lambda: not second.alive(), timeout=15,
                           what="a second droverd on the same state dir to give up")
        self.assertNotEqual(second.p.returncode, 0)
        self.assertTrue(c.droverd.alive())
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(harness.read_lines(effects), ["s"])

    def test_droverd_reads_config_file(self):
        c = self.c
        c.port = harness.free_port()
        cfg = c.path("droverd.yaml")
        with open(cfg, "w") as f:
            f.write("state-dir: %s\nlisten: %s\napi: %s\nagent-timeout: 2s\n"
                    % (c.state_dir, c.agents_endpoint, c.api))
        c.start_droverd(config=cfg)
        c.start_agent("w1", cpus=2)
        rid = c.submit({"name": "cfg", "steps": [{"name": "s", "script": "true"}]})
        self.assertRunSucceeded(c.wait_run_final(rid))
        # the agent timeout from the file applies: a killed agent is lost fast
        c.kill_agent("w1")
        harness.wait_until(lambda: not c.agent("w1")["connected"], timeout=20,
                           what="w1 to be declared lost (agent-timeout 2s from the config file)")

    def test_agent_started_before_droverd(self):
        c = self.c
        agent = c.start_agent("early", cpus=2, wait=False)
        # let the agent try to connect to nothing for a while (this creates
        # the situation under test; it waits for no condition)
        time.sleep(1.0)
        self.assertTrue(agent.alive(), "agent exited while droverd was not up yet")
        c.start_droverd()
        c.wait_agent_connected("early")
        marker = c.path("ran")
        rid = c.submit({"name": "early", "steps": [{"name": "s", "script": "touch %s" % marker}]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "s")["agent"], "early")
        self.assertTrue(os.path.exists(marker))

    def test_step_finishing_while_droverd_down_is_reported_once(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        effects = c.path("effects")
        pidfile = c.path("pid")
        go = c.path("go")
        rid = c.submit({"name": "offline", "steps": [
            {"name": "work",
             "script": ("echo work >> {e}; echo before-restart; echo $$ > {p}.tmp; mv {p}.tmp {p}; "
                        "while [ ! -e {g} ]; do sleep 0.05; done; echo while-down; echo work-done >> {e}")
                       .format(e=effects, p=pidfile, g=go)},
            {"name": "next", "needs": ["work"], "script": "echo next >> %s" % effects},
        ]})
        harness.wait_until(lambda: os.path.exists(pidfile), timeout=60, what="work to start")
        pid = int(harness.read_text(pidfile).strip())
        c.wait_task_status(rid, "work", "RUNNING")
        c.kill_droverd()
        # the step finishes while the scheduler is down
        with open(go, "w"):
            pass
        harness.wait_until(lambda: not harness.pid_alive(pid), timeout=30,
                           what="the step to exit while droverd is down")
        self.assertEqual(harness.read_lines(effects), ["work", "work-done"])
        c.start_droverd()
        run = c.wait_run_final(rid, timeout=90)
        self.assertRunSucceeded(run)
        t = task(run, "work")
        self.assertEqual(t["attempts"], 1, t)
        self.assertEqual([h["status"] for h in t["history"]], ["SUCCEEDED"], t)
        self.assertEqual(t["exit_code"], 0, t)
        self.assertEqual(harness.read_lines(effects), ["work", "work-done", "next"])
        r = c.cli("logs", rid, "work")
        self.assertEqual((r.rc, r.out), (0, "before-restart\nwhile-down\n"), r)


if __name__ == "__main__":
    harness.main()
