"""Exactly once under kill -9 (issue 12, defects 2, 3 and 5).

Real droverd and agents, killed with SIGKILL (the daemon only: the steps it
started are left to fend for themselves, as after an OOM kill or a crash of
the agent alone). Each step appends to a marker file outside drover: "S
<attempt> <pid>" when it starts, "E <attempt>" when it ends. A step must
never run twice at once, every start must be in the run's history, and a
step that ran to its end must not run again.
"""
import os
import signal
import subprocess
import time

from harness import (DroverTestCase, holds_for, main, pid_alive, read_lines, task, wait_final,
                     wait_until)


def marker_step(name, marker, seconds):
    return {"name": name, "env": {"M": marker},
            "script": 'echo "S $DROVER_ATTEMPT $$" >> "$M"; sleep %s; echo "E $DROVER_ATTEMPT" >> "$M"'
                      % seconds}


def starts(marker):
    return [line.split() for line in read_lines(marker) if line.startswith("S ")]


def ends(marker):
    return [line.split() for line in read_lines(marker) if line.startswith("E ")]


class ExactlyOnceTest(DroverTestCase):
    def wait_started(self, marker, n=1):
        return wait_until(lambda: len(starts(marker)) >= n and starts(marker), 60,
                          what="the step to start (%d)" % n)

    def test_killed_agent_leaves_no_step_running(self):
        """Defect 3: kill -9 of an agent (the daemon only). Its step dies
        with it at once; what the step detached (setsid) is killed by the
        restarted agent before it registers; droverd reruns the step as a
        new attempt, which never runs beside the old one."""
        c = self.c
        c.start_droverd(extra=["--agent-timeout", "60s"])
        c.start_agent("a1", cpus=2)
        m = c.path("marker")
        step = marker_step("s", m, 4)
        step["script"] = ('setsid sh -c \'echo $$ > "$M.bg"; exec sleep 60\' </dev/null >/dev/null 2>&1 &\n'
                          + step["script"])
        rid = c.submit({"name": "orphan", "steps": [step]})
        first_pid = int(self.wait_started(m)[0][2])
        bg = int(wait_until(lambda: read_lines(m + ".bg"), 30, what="the detached child")[0])
        c.kill_agent("a1", node=False)  # the daemon only
        wait_until(lambda: not pid_alive(first_pid), 30, what="the step to die with its agent")
        self.assertTrue(pid_alive(bg), "what the step detached lives on until the agent is back")
        c.start_agent("a1", cpus=2)
        wait_until(lambda: not pid_alive(bg), 30,
                   what="the restarted agent to kill what its previous life left")
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertEqual(len(ends(m)), 1, read_lines(m))
        t = task(run, "s")
        self.assertEqual(len(t["history"]), len(starts(m)), "every start is in the history")
        self.assertEqual(t["history"][0]["status"], "LOST")

    def test_droverd_and_agent_killed_together(self):
        """Defect 2: droverd and the agent die at the step's first line;
        both restart. The attempt must not be run again under the same id
        (in the same directory) while the first copy may still run."""
        c = self.c
        c.start_droverd(extra=["--agent-timeout", "60s"])
        c.start_agent("a1", cpus=2)
        m = c.path("marker")
        rid = c.submit({"name": "both", "steps": [marker_step("s", m, 3)]})
        first = self.wait_started(m)[0]
        c.kill_droverd()
        c.kill_agent("a1", node=False)
        time.sleep(0.5)  # the reproduction: both come back half a second later
        c.start_droverd()
        c.start_agent("a1", cpus=2)
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        s = starts(m)
        self.assertEqual(len(ends(m)), 1, read_lines(m))
        self.assertEqual(len({x[1] for x in s}), len(s), "one attempt number started twice: %s" % s)
        self.assertFalse(pid_alive(int(first[2])))
        t = task(run, "s")
        self.assertEqual(len(t["history"]), len(s), "every start is in the history")

    def test_finished_step_is_not_rerun_after_the_agent_dies(self):
        """The agent dies after its step ended but before droverd
        acknowledged the exit (droverd is down meanwhile): the restarted
        agent still reports it, so the step counts once and is not run
        again."""
        c = self.c
        c.start_droverd(extra=["--agent-timeout", "60s"])
        c.start_agent("a1", cpus=2)
        m = c.path("marker")
        rid = c.submit({"name": "done-once", "steps": [marker_step("s", m, 0.5)]})
        self.wait_started(m)
        c.kill_droverd()  # no acknowledgement from now on
        journal = os.path.join(c.agent_work_dir("a1"), "exits.journal")
        kept = lambda: os.path.exists(journal) and os.path.getsize(journal) > 0
        wait_until(lambda: ends(m) and kept(), 60,
                   what="the step to end and its exit report to be kept")
        c.kill_agent("a1", node=False)
        c.start_droverd()
        c.start_agent("a1", cpus=2)
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertEqual(len(starts(m)), 1, read_lines(m))
        self.assertEqual(len(task(run, "s")["history"]), 1)
        self.assertIn("exit reports go to droverd now", c.agents["a1"].log_text())

    def test_assignment_that_never_arrived_is_sent_again_under_its_id(self):
        """droverd commits an assignment and dies before the agent gets it
        (here the loopback drops droverd's packets meanwhile). The agent
        process never changed (Register.incarnation), holds nothing and has
        no report: the attempt cannot have started, so the restarted
        droverd sends it again under its id: one attempt, nothing LOST."""
        c = self.c
        c.start_droverd(extra=["--agent-timeout", "60s"])
        c.start_agent("a1", cpus=2)
        c.wait_agent_connected("a1")
        m = c.path("marker")
        rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", str(c.port), "-j", "DROP"]
        subprocess.run(["iptables", "-I"] + rule, check=True)
        try:
            rid = c.submit({"name": "unsent", "steps": [marker_step("s", m, 0.2)]})
            wait_until(lambda: task(c.get_run(rid), "s")["status"] == "ASSIGNED", 30,
                       what="the assignment committed")
            c.kill_droverd()
        finally:
            subprocess.run(["iptables", "-D"] + rule, check=True)
        self.assertEqual(starts(m), [], "the agent never got the assignment")
        c.start_droverd()
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        t = task(run, "s")
        self.assertEqual([h["status"] for h in t["history"]], ["SUCCEEDED"],
                         "one attempt, sent again under its id: %s" % t["history"])
        self.assertEqual([x[1] for x in starts(m)], ["1"])

    def test_agent_reconnects_on_a_new_connection_after_silence(self):
        """Defect 1's other half: an agent that hears nothing makes a new
        connection (a dead one is not revived by re-sending on it), and its
        running step is not disturbed by droverd's pause."""
        c = self.c
        c.start_droverd(extra=["--agent-timeout", "60s"])
        c.start_agent("a1", cpus=2)
        m = c.path("marker")
        rid = c.submit({"name": "pause", "steps": [marker_step("s", m, 6)]})
        self.wait_started(m)
        os.kill(c.droverd.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: "reconnecting and registering again" in c.agents["a1"].log_text(),
                       60, what="the agent to give up on its silent connection")
        finally:
            os.kill(c.droverd.pid, signal.SIGCONT)
        wait_until(lambda: "agent a1: a new connection registered" in c.droverd.log_text(), 60,
                   what="droverd to see a1 on its new connection")
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        self.assertEqual(len(starts(m)), 1, "the step ran once, through the pause")
        self.assertEqual(len(task(run, "s")["history"]), 1)

    def test_detached_leftovers_die_with_their_step(self):
        """Defect 5: a step that leaves a detached (setsid) writer behind;
        the writer is killed when the step ends, and later attempts never
        find anything in their outputs."""
        c = self.c
        c.start_droverd()
        c.start_agent("a1", cpus=1)
        pids = c.path("pids")
        steps = []
        for i in range(6):
            steps.append({"name": "s%d" % i, "needs": ["s%d" % (i - 1)] if i else [],
                          "env": {"P": pids}, "script":
                          'test -z "$(ls -A "$DROVER_OUTPUTS")" || { echo "outputs not empty:"; '
                          'ls -la "$DROVER_OUTPUTS"; exit 3; }\n'
                          'setsid sh -c \'echo $$ >> "$P"; while :; do date >> "$DROVER_OUTPUTS/leak"; '
                          'sleep 0.02; done\' </dev/null >/dev/null 2>&1 &\n'
                          'sleep 0.3'})
        rid = c.submit({"name": "leftovers", "steps": steps})
        run = wait_final(c, rid)
        self.assertRunSucceeded(run)
        leaked = [int(p) for p in read_lines(pids)]
        self.assertEqual(len(leaked), 6)
        wait_until(lambda: not any(pid_alive(p) for p in leaked), 30,
                   what="every detached writer to be killed")
        holds_for(lambda: not any(pid_alive(p) for p in leaked), 1,
                  what="no writer to come back")


if __name__ == "__main__":
    main()
