"""Node pools (issue 18, README "Autoscaling node pools"): droverd grows its
fleet through a provider when steps wait, and shrinks it when nodes idle.

Real droverd, real agents started by the real `local` provider
(providers/local: drover-agent processes on this machine, the protocol a
cloud provider speaks), CURVE on where join tokens matter. Failures are
real too: a provider that exits 1, an agent killed while it boots, droverd
killed with -9 while a create is in flight, a spot node that a preemption
drill takes away.
"""
import json
import os
import signal
import stat
import subprocess

from harness import (SOURCE_DIR, DroverTestCase, bin_path, holds_for, main, task, wait_until)

LOCAL = os.path.join(SOURCE_DIR, "providers", "local")
TRAIN = os.path.join(SOURCE_DIR, "examples", "spot", "train_sgd.py")


def script(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


class PoolsTest(DroverTestCase):
    def setUp(self):
        super().setUp()
        self.prov_state = self.c.path("provider-state")

    # ---- helpers

    def local_provider(self, agent=None, agent_args=()):
        return {"command": LOCAL,
                "args": ["--state-dir", self.prov_state, "--agent", agent or bin_path("drover-agent"),
                         "--", "--heartbeat", "200ms"] + list(agent_args)}

    def pool(self, name, cpu=4, max=5, min=0, idle="2s", provider=None, **extra):
        p = {"name": name, "node": {"cpu": cpu, "memory": "1Gi", "labels": {"pool": name}},
             "min": min, "max": max, "idle": idle, "boot-timeout": "60s",
             "provider": provider or self.local_provider()}
        p.update(extra)
        return p

    def start(self, pools, curve=False):
        extra = ["--pools", json.dumps(pools)]
        if curve:
            keys = self.c.path("keys")
            auth = self.c.path("authorized-keys")
            os.makedirs(keys)
            os.makedirs(auth)
            r = self.c.cli("keygen", "droverd", "--dir", keys, api=False)
            self.assertEqual(r.rc, 0, r)
            extra += ["--key", os.path.join(keys, "droverd.key_secret"), "--authorized-keys", auth]
        self.c.start_droverd(extra=extra)

    def pools(self):
        return {p["name"]: p for p in self.c.cli_json("pools")}

    def nodes(self, pool, *states):
        return [n for n in self.pools()[pool]["nodes"] if not states or n["state"] in states]

    def wait_nodes(self, pool, n, *states, timeout=60):
        def have():
            got = self.nodes(pool, *states)
            return [got] if len(got) == n else None
        return wait_until(have, timeout,
                          what="pool %s to have %d node(s) %s (at the start: %s)"
                          % (pool, n, "/".join(states), [(x["name"], x["state"])
                                                         for x in self.nodes(pool)]))[0]

    def provider_nodes(self):
        try:
            with open(os.path.join(self.prov_state, "nodes.json")) as f:
                return json.load(f)["nodes"]
        except FileNotFoundError:
            return {}

    def barrier_fanout(self, n, gate):
        """n one-cpu steps that each wait for the file gate."""
        return {"name": "fan", "steps": [{
            "name": "work", "for_each": {"range": n}, "resources": {"cpu": 1},
            "placement": {"labels": {"pool": "cpu"}},
            "command": ["sh", "-c", "while [ ! -e %s ]; do sleep 0.1; done; echo item {{item}}"
                        % gate]}]}

    # ---- tests

    def test_a_fanout_grows_the_pool_to_max_and_idle_nodes_go_with_their_keys(self):
        c = self.c
        self.start([self.pool("cpu", cpu=4, max=5, price=0.25)], curve=True)
        self.assertEqual(self.nodes("cpu"), [], "an empty pool at min 0 starts with no node")
        gate = c.path("go")
        rid = c.submit(self.barrier_fanout(40, gate))
        # 40 one-cpu steps on 4-cpu nodes would need 10: the pool stops at max 5
        self.wait_nodes("cpu", 5, "up", timeout=90)
        wait_until(lambda: sum(t["status"] == "RUNNING" and t["name"].startswith("work[")
                               for t in c.get_run(rid)["tasks"]) == 20,
                   60, what="20 steps running on the 5 nodes")
        p = self.pools()["cpu"]
        self.assertEqual(len(p["nodes"]), 5, "never more than max: %r" % p["nodes"])
        self.assertAlmostEqual(p["cost_per_hour"], 5 * 0.25)
        holds_for(lambda: len(self.provider_nodes()) == 5, 1.5, interval=0.3,
                  what="the provider to hold 5 nodes and no more")
        # every node joined with its own one-use token, bound to its name
        toks = {t["bound_name"]: t for t in c.cli_json("tokens")}
        for n in p["nodes"]:
            self.assertIn(n["name"], toks, "a token minted for %s" % n["name"])
            self.assertEqual(toks[n["name"]]["uses_left"], 0, toks[n["name"]])
            self.assertEqual([a["name"] for a in toks[n["name"]]["admitted"]], [n["name"]])
        # waiting steps say they wait for the pool at its max
        waiting = [t for t in c.get_run(rid)["tasks"] if t["status"] == "READY"]
        self.assertTrue(waiting)
        self.assertIn("pool cpu is at its max (5 nodes)", waiting[0].get("reason") or "")

        open(gate, "w").close()
        run = c.wait_run_final(rid, timeout=120)
        self.assertRunSucceeded(run)
        # idle for 2 s: every node is drained, deleted and its key revoked
        self.wait_nodes("cpu", 5, "removed", timeout=60)
        wait_until(lambda: self.provider_nodes() == {} or None, 30,
                   what="the provider to have deleted every node")
        wait_until(lambda: c.cli_json("agents") == [] or None, 30,
                   what="removed nodes' agents forgotten")
        for t in c.cli_json("tokens"):
            self.assertEqual(t["admitted"], [], "the key %s admitted is revoked" % t["id"])
        self.assertEqual({n["why"] for n in self.nodes("cpu")}, {"idle for 2 s"})
        # each node's life is in droverd's event log, in order
        events = [e for e in c.cli_json("events") if e["kind"] == "pool-node"]
        for n in self.nodes("cpu"):
            path = [e["to"] for e in events if e["node"] == n["name"]]
            self.assertEqual(path[0], "requested", path)
            self.assertEqual(path[-1], "removed", path)
            self.assertLess(path.index("up"), path.index("draining"), path)

    def test_min_scale_and_drain(self):
        c = self.c
        self.start([self.pool("cpu", cpu=2, max=3, min=1, idle="1h")])
        self.wait_nodes("cpu", 1, "up")  # min 1 with no demand
        r = c.cli("pool", "scale", "cpu", "3")
        self.assertEqual(r.rc, 0, r)
        self.wait_nodes("cpu", 3, "up")
        r = c.cli("pool", "scale", "cpu", "4")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("4 is above its max (3)", r.err)
        r = c.cli("pool", "scale", "nope", "1")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("no pool 'nope'", r.err)
        # scaled down: idle nodes above the floor go at once (idle is 1h)
        self.assertEqual(c.cli("pool", "scale", "cpu", "1").rc, 0)
        self.wait_nodes("cpu", 2, "removed")
        self.assertEqual(len(self.nodes("cpu", "up")), 1)
        self.assertIn("scaled to 1", c.cli("pools").out)
        # drained: no node, and demand makes none
        self.assertEqual(c.cli("pool", "drain", "cpu").rc, 0)
        self.wait_nodes("cpu", 0, "up", "booting", "requested", "draining", "deleting")
        rid = c.submit({"name": "one", "steps": [{"name": "s", "command": ["true"],
                                                   "placement": {"labels": {"pool": "cpu"}}}]})
        t = c.wait_task(rid, "s", lambda t: "pool cpu is drained" in (t.get("reason") or ""),
                        timeout=30, what="the step to say the pool is drained")
        self.assertEqual(t["status"], "READY")
        self.assertEqual(self.nodes("cpu", "requested", "booting", "up"), [])
        # scale resumes it
        self.assertEqual(c.cli("pool", "scale", "cpu", "0").rc, 0)
        self.assertRunSucceeded(c.wait_run_final(rid, timeout=90))

    def test_a_node_with_a_running_step_is_never_removed_by_scale_down(self):
        c = self.c
        self.start([self.pool("cpu", cpu=2, max=1, idle="1h")])
        gate = c.path("go")
        rid = c.submit(self.barrier_fanout(1, gate))
        t = c.wait_task_status(rid, "work[0]", "RUNNING", timeout=60)
        node = t["history"][-1]["agent"]
        self.assertEqual(c.cli("pool", "scale", "cpu", "0").rc, 0)
        # drained (nothing new goes there), not deleted: its step runs on
        self.wait_nodes("cpu", 1, "draining")
        holds_for(lambda: [n["state"] for n in self.nodes("cpu")] == ["draining"]
                  and node in self.provider_nodes()
                  and task(c.get_run(rid), "work[0]")["status"] == "RUNNING", 3.0,
                  interval=0.3, what="the busy node to stay, draining, with its step running")
        self.assertTrue(c.agent(node)["drained"], c.agent(node))
        open(gate, "w").close()
        self.assertRunSucceeded(c.wait_run_final(rid, timeout=60))
        self.wait_nodes("cpu", 1, "removed")
        self.assertEqual(self.nodes("cpu")[0]["why"], "pool scaled to 0")
        wait_until(lambda: self.provider_nodes() == {} or None, 30, what="the node deleted")

    def test_a_failing_provider_backs_off_and_its_demand_goes_to_the_fallback(self):
        c = self.c
        broken = script(c.path("broken-provider"), "#!/bin/sh\ncat >/dev/null\n"
                        "echo 'InsufficientInstanceCapacity: no spot capacity in the zone' >&2\n"
                        "exit 1\n")
        spot = self.pool("gpu-spot", max=2, spot=True, price=0.1, fallback="gpu-od",
                         provider={"command": broken})
        od = self.pool("gpu-od", max=2, price=0.9)
        for p in (spot, od):
            p["node"]["labels"] = {"pool": "train"}
        self.start([spot, od])
        rid = c.submit({"name": "t", "steps": [{
            "name": "s", "command": ["echo", "trained"], "resources": {"cpu": 1},
            "placement": {"labels": {"pool": "train"}, "spot": "prefer"}}]})
        self.assertRunSucceeded(c.wait_run_final(rid, timeout=90))
        p = self.pools()
        self.assertIn("InsufficientInstanceCapacity", p["gpu-spot"]["last_error"])
        self.assertTrue(p["gpu-spot"]["backoff_until"], p["gpu-spot"])
        self.assertEqual(p["gpu-spot"]["failures"], 1, "backed off: not called again at once")
        self.assertEqual([n["state"] for n in p["gpu-spot"]["nodes"]], ["deleting"],
                         "the node the failed create may have half made is deleted (idempotent; "
                         "this provider refuses that too, so it stays deleting)")
        run = c.get_run(rid)
        self.assertTrue(task(run, "s")["history"][0]["agent"].startswith("gpu-od-"), run)
        self.assertIn("backing off", c.cli("pools").out)
        self.assertIn("InsufficientInstanceCapacity", c.droverd.log_text())

    def test_a_node_killed_while_it_boots_is_replaced(self):
        c = self.c
        gate = c.path("boot-gate")
        slow = script(c.path("slow-agent"), "#!/bin/sh\nwhile [ ! -e %s ]; do sleep 0.1; done\n"
                      "exec %s \"$@\"\n" % (gate, bin_path("drover-agent")))
        self.start([self.pool("cpu", max=1, provider=self.local_provider(agent=slow))])
        rid = c.submit({"name": "one", "steps": [{"name": "s", "command": ["echo", "hi"],
                                                   "placement": {"labels": {"pool": "cpu"}}}]})
        first = self.wait_nodes("cpu", 1, "booting")[0]["name"]
        t = c.wait_task(rid, "s", lambda t: "pool cpu is growing: 1 node booting"
                        in (t.get("reason") or ""), timeout=30, what="the booting reason")
        os.kill(self.provider_nodes()[first]["pid"], signal.SIGKILL)
        # the provider lists it as gone: deleted, and another made in its place
        wait_until(lambda: any(n["name"] != first for n in self.nodes("cpu", "booting")) or None,
                   60, what="a new node in place of %s" % first)
        gone = [n for n in self.nodes("cpu") if n["name"] == first][0]
        self.assertIn(gone["state"], ("deleting", "removed"))
        self.assertIn("gone", gone["why"])
        open(gate, "w").close()
        run = c.wait_run_final(rid, timeout=90)
        self.assertRunSucceeded(run)
        self.assertNotEqual(task(run, "s")["history"][0]["agent"], first)

    def test_kill_9_of_droverd_during_scale_up_neither_loses_nor_doubles_a_node(self):
        c = self.c
        gate, calls = c.path("create-gate"), c.path("calls")
        wrapper = script(c.path("gated-provider"), "#!/bin/sh\necho \"$1\" >> %s\n"
                         "if [ \"$1\" = create ]; then touch %s.creating\n"
                         "  while [ ! -e %s ]; do sleep 0.1; done; fi\nexec %s \"$@\"\n"
                         % (calls, calls, gate, LOCAL))
        prov = self.local_provider()
        prov["command"] = wrapper
        self.start([self.pool("cpu", max=3, idle="1h", provider=prov)], curve=True)
        rid = c.submit(self.barrier_fanout(12, c.path("go")))
        wait_until(lambda: os.path.exists(calls + ".creating"), 60, what="a create in flight")
        before = {n["name"] for n in self.nodes("cpu")}
        self.assertEqual(len(before), 3, before)
        c.kill_droverd()  # the provider call runs on (its own session)
        c.restart_droverd()
        self.assertEqual({n["name"] for n in self.nodes("cpu")}, before,
                         "the restarted droverd knows the same 3 nodes")
        open(gate, "w").close()
        self.wait_nodes("cpu", 3, "up", timeout=90)
        holds_for(lambda: set(self.provider_nodes()) == before, 2.0, interval=0.3,
                  what="the provider to hold exactly the 3 nodes droverd asked for")
        with open(calls) as f:
            self.assertGreaterEqual(f.read().split().count("create"), 2, "create called again")
        open(c.path("go"), "w").close()
        run = c.wait_run_final(rid, timeout=120)
        self.assertRunSucceeded(run)
        for t in run["tasks"]:
            if t["name"].startswith("work["):
                self.assertEqual(len(t["history"]), 1, "each step ran once: %r" % t)

    def test_a_preempted_spot_node_is_replaced_and_its_step_resumes_there(self):
        c = self.c
        spot = self.pool("spot", cpu=2, max=2, spot=True, price=0.2,
                         provider=self.local_provider(agent_args=["--drill-exit"]))
        self.start([spot])
        step = {"name": "train", "command": ["python3", TRAIN, "--epochs", "14",
                                             "--epoch-seconds", "0.3"],
                "outputs": {"artifacts": ["model"]}, "checkpoint": {"keep": 2},
                "preemption": {"grace": "20s", "max_preemptions": 5},
                "placement": {"spot": "require", "labels": {"pool": "spot"}}}
        rid = c.submit({"name": "train", "steps": [step]})
        t = c.wait_task(rid, "train", lambda t: (t.get("checkpoint") or {}).get("step", 0) >= 3,
                        timeout=90, what="a checkpoint at epoch 3")
        first = t["history"][-1]["agent"]
        r = c.cli("agent", "preempt", first, "--deadline", "2s")
        self.assertEqual(r.rc, 0, r)
        run = c.wait_run_final(rid, timeout=120)
        self.assertRunSucceeded(run)
        t = task(run, "train")
        self.assertEqual(t["preemptions"], 1, t)
        last = t["history"][-1]
        self.assertNotEqual(last["agent"], first, t)
        self.assertTrue(last["agent"].startswith("spot-"), t)
        self.assertGreaterEqual(last["resumed_step"], 3, "resumed from its checkpoint: %r" % t)
        wait_until(lambda: [n for n in self.nodes("spot") if n["name"] == first
                            and n["state"] == "removed"] or None, 60,
                   what="the preempted node removed")

    def test_hostile_providers_are_contained(self):
        """A provider that answers garbage, floods its output, or hangs past
        its timeout: each call ends with the reason in `drover pools`, the
        pool backs off, droverd keeps serving, and a node it never made is
        deleted (idempotent) rather than left booting."""
        c = self.c
        garbage = script(c.path("garbage"), "#!/bin/sh\ncat >/dev/null\necho 'not json {'\n")
        flood = script(c.path("flood"), "#!/bin/sh\ncat >/dev/null\n"
                       "head -c 8000000 /dev/zero | tr '\\0' x\n")
        hang = script(c.path("hang"), "#!/bin/sh\nsleep 600\n")
        stranger = script(c.path("stranger"), "#!/bin/sh\ncat >/dev/null\necho "
                          "'{\"nodes\": [{\"name\": \"someone-else\", \"state\": \"booting\"}]}'\n")
        pools = [self.pool(name, max=1, provider={"command": cmd, "timeout": "2s"})
                 for name, cmd in (("garbage", garbage), ("flood", flood), ("hang", hang),
                                   ("stranger", stranger))]
        self.start(pools)
        steps = [{"name": name, "command": ["true"], "placement": {"labels": {"pool": name}}}
                 for name in ("garbage", "flood", "hang", "stranger")]
        c.submit({"name": "hostile", "steps": steps})
        want = {"garbage": "its answer is not a JSON object",
                "flood": "its answer is not a JSON object",
                "hang": "killed",
                "stranger": "the provider's answer left it out"}

        def all_failed():
            p = self.pools()
            return all(p[n]["last_error"] or (p[n]["nodes"] and p[n]["nodes"][0]["why"])
                       for n in want) and p
        p = wait_until(all_failed, 60, what="every hostile provider's call to end")
        for name, text in want.items():
            seen = p[name]["last_error"] + " ".join(n["why"] for n in p[name]["nodes"])
            self.assertIn(text, seen, p[name])
            self.assertTrue(p[name]["backoff_until"] or name == "stranger", p[name])
            self.assertEqual([n["state"] for n in p[name]["nodes"]], ["deleting"], p[name])
        self.assertEqual(c.cli("status").rc, 0, "droverd serves on")
        self.assertNotIn("someone-else", json.dumps(self.pools()), "a node it never asked for")

    def test_bad_pool_configs_are_refused_with_where_and_what(self):
        c = self.c
        cases = [
            ("  - name: a\n    node: {cpu: 4}\n    max: 2\n    idel: 5m\n"
             "    provider: {command: /bin/true}\n", "pools[0] (a): idel: unknown key "
             "(did you mean 'idle'?)"),
            ("  - name: a\n    node: {cpu: 4}\n    max: -1\n    provider: {command: /bin/true}\n",
             "pools[0] (a): max: expected a whole number"),
            ("  - name: a\n    node: {cpu: 4}\n    max: 2\n    fallback: b\n"
             "    provider: {command: /bin/true}\n", "pools[0] (a): fallback: 'b' is no other pool"),
            ("  - name: a\n    node: {cpu: 4}\n    max: 2\n    provider: {command: true}\n",
             "provider.command: expected the provider program's absolute path"),
            ("  - name: a\n    max: 2\n    provider: {command: /bin/true}\n",
             "pools[0] (a): node: missing"),
        ]
        for i, (text, want) in enumerate(cases):
            conf = c.path("bad%d.yaml" % i)
            with open(conf, "w") as f:
                f.write("state-dir: %s\nlisten: tcp://127.0.0.1:1\npools:\n%s"
                        % (c.path("s%d" % i), text))
            r = subprocess.run([bin_path("droverd"), "--config", conf], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn(want, r.stderr, "case %d" % i)
            self.assertRegex(r.stderr, r"bad%d\.yaml:\d+:\d+: bad value for 'pools'" % i)
            self.assertFalse(os.path.exists(c.path("s%d" % i, "data.mdb")), "no state made")


if __name__ == "__main__":
    main()
