"""chaos — a run of many steps while droverd and the agents are killed with
SIGKILL at random moments, alone or together, and restarted (issue 12).

Used by tests/integration/test_chaos.py (short, in `make test`) and
bench/chaos.py (long, in `make bench`). Each step appends to its own marker
file outside drover: "S <attempt> <agent>" when it starts and "E <attempt>
<agent> <time>" when it ends. check() then holds the run to drover's
promises:

- the run succeeds and every step ended (at least one E);
- no attempt number started twice (a re-sent attempt never runs again);
- every start is in the run's history;
- a step ended once, except where the agent that ran it was killed within
  WINDOW seconds after that end: the one case the agent cannot close
  without a supervisor that outlives it (the step ended, the agent died
  before recording it; README "What a step must do itself"). Such doubles
  are counted and reported, never silently accepted otherwise.

The kills are of the daemons' processes (kill -9 of drover-agent, not of
the machine): the steps die with their agent, and a restarted agent must
clean up what they left.
"""
import os
import random
import time

from harness import read_lines, task, wait_until

WINDOW = 1.0  # seconds between a step's end and a kill of its agent that may repeat it
SLACK = 0.05  # seconds between taking a kill's time and the agent's death

STEP = ('echo "S $DROVER_ATTEMPT $DROVER_AGENT" >> "$M/$DROVER_TASK"; sleep %s; '
        'echo "E $DROVER_ATTEMPT $DROVER_AGENT $(date +%%s.%%N)" >> "$M/$DROVER_TASK"')


def spec(n, markers, seed):
    """n distinct steps: chains of up to 10 whose heads fan out from the
    previous chain's head, so the DAG is both deep and wide."""
    rng = random.Random(seed)
    steps = []
    for i in range(n):
        s = {"name": "s%d" % i, "env": {"M": markers},
             "script": STEP % rng.choice(["0", "0.05", "0.1", "0.3"])}
        if i % 10:
            s["needs"] = ["s%d" % (i - 1)]
        elif i:
            s["needs"] = ["s%d" % (i - 10)]
        steps.append(s)
    return {"name": "chaos", "defaults": {"preemption": {"max_preemptions": 1000}},
            "steps": steps}


class Chaos:
    """Kill and restart droverd and agents of cluster c until stop()."""

    def __init__(self, c, agents, seed, pause=(0.3, 1.2), down=(0.1, 0.8)):
        self.c, self.agents, self.rng = c, agents, random.Random(seed)
        self.pause, self.down = pause, down
        self.kills = {"droverd": 0, "agent": 0, "both": 0}
        self.agent_kills = {a: [] for a in agents}  # times an agent's daemon died

    def one(self):
        c, rng = self.c, self.rng
        what = rng.choice(["droverd", "agent", "agent", "both"])
        victim = rng.choice(self.agents)
        self.kills[what] += 1
        if what in ("droverd", "both"):
            c.kill_droverd()
        if what in ("agent", "both"):
            self.agent_kills[victim].append(time.time())
            c.kill_agent(victim, node=False)
        time.sleep(rng.uniform(*self.down))
        if what in ("droverd", "both"):
            c.start_droverd()
        if what in ("agent", "both"):
            c.start_agent(victim, cpus=2, wait=False)

    def run_until(self, done, max_kills):
        n = 0
        while not done() and n < max_kills:
            time.sleep(self.rng.uniform(*self.pause))
            if done():
                break
            self.one()
            n += 1
        return n


def check(c, rid, markers, chaos, test):
    """Assert the promises above on the final run; return the counts."""
    run = c.get_run(rid)
    test.assertEqual(run["status"], "SUCCEEDED", "run ended %s" % run["status"])
    counts = {"steps": 0, "starts": 0, "reruns": 0, "doubles": 0}
    for t in run["tasks"]:
        name = t["name"]
        lines = read_lines(os.path.join(markers, name))
        s = [line.split() for line in lines if line.startswith("S ")]
        e = [line.split() for line in lines if line.startswith("E ")]
        history = {h["attempt"] for h in t["history"]}
        counts["steps"] += 1
        counts["starts"] += len(s)
        counts["reruns"] += max(0, len(s) - 1)
        test.assertGreaterEqual(len(e), 1, "%s never ended: %s" % (name, lines))
        numbers = [x[1] for x in s]
        test.assertEqual(len(numbers), len(set(numbers)),
                         "%s: an attempt started twice: %s" % (name, lines))
        for x in numbers:
            test.assertIn(int(x), history, "%s: attempt %s started but is not in the history %s"
                          % (name, x, t["history"]))
        for end in e[:-1]:  # every end but the last was followed by a rerun
            agent, at = end[2], float(end[3])
            # a kill's time is taken just before the signal: an end up to
            # SLACK after it still came before the agent died
            killed = [k for k in chaos.agent_kills.get(agent, []) if -SLACK <= k - at <= WINDOW]
            test.assertTrue(killed, "%s ended on %s at %.3f and ran again, with no kill of %s "
                            "within %.1fs after: %s (kills of %s at %s)"
                            % (name, agent, at, agent, WINDOW, lines, agent,
                               ["%.3f" % k for k in chaos.agent_kills.get(agent, [])]))
            counts["doubles"] += 1
    return counts


def run_chaos(c, test, steps, seed, max_kills, timeout):
    """droverd and two agents on cluster c, a run of `steps` steps, at most
    max_kills kills; returns the counts of check() and of the kills."""
    # the production agent timeout: an agent restarted within it keeps its place
    c.start_droverd(extra=["--agent-timeout", "10s"])
    agents = ["c1", "c2"]
    for a in agents:
        c.start_agent(a, cpus=2)
    markers = c.path("markers")
    os.makedirs(markers, exist_ok=True)
    rid = c.submit(spec(steps, markers, seed))
    chaos = Chaos(c, agents, seed)

    def final():
        try:
            return c.get_run(rid)["status"] in ("SUCCEEDED", "FAILED", "CANCELLED")
        except Exception:  # noqa: BLE001 - droverd may be down this instant
            return False

    started = time.time()
    chaos.run_until(final, max_kills)
    for a in agents:  # whatever the last kill left down comes back
        if not c.agents[a].alive():
            c.start_agent(a, cpus=2, wait=False)
    wait_until(final, timeout, interval=0.2, what="the chaos run to end")
    counts = check(c, rid, markers, chaos, test)
    counts.update(chaos.kills)
    counts["seconds"] = round(time.time() - started, 1)
    return counts
