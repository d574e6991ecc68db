"""Templated settings and fan-out semantics (issue 15, items 5 and 7), on
real droverd and agents.

`timeout`, `image`, `resources` and `retries.limit` take templates
({{item}}, {{item.KEY}}, upstream outputs): what is asserted is what a user
sees in `drover run get` — an item killed by its own timeout, an item
waiting for a bigger agent or one that runs containers, the number of
attempts an upstream-driven retry limit allows (also across kill -9 of
droverd), a bad value failing only its step with a reason naming the key
and the value while the daemon goes on, and a fan-out whose per-item
`when` skips items: the skipped ones are left out of the collected list (a
second for_each over it runs no task on "") and a fan-out whose every
item is skipped is SKIPPED.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task, wait_final  # noqa: E402


class TemplatedSettingsTest(harness.DroverTestCase):
    def test_per_item_image_timeout_and_cpu(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)  # a process agent: no container runtime
        spec = ("name: per-item\n"
                "steps:\n"
                "  - name: fan\n"
                "    for_each:\n"
                "      - {cpu: \"1\", t: 60s, img: \"\", nap: \"0\"}\n"
                "      - {cpu: 500m, t: 1s, img: \"\", nap: \"60\"}\n"
                "      - {cpu: \"3\", t: 60s, img: \"\", nap: \"0\"}\n"
                "      - {cpu: \"1\", t: 60s, img: \"registry/app:1\", nap: \"0\"}\n"
                "    image: \"{{item.img}}\"\n"
                "    timeout: \"{{item.t}}\"\n"
                "    resources: {cpu: \"{{item.cpu}}\"}\n"
                "    command: [sleep, \"{{item.nap}}\"]\n")
        rid = c.submit(spec)
        t0 = c.wait_task_status(rid, "fan[0]", "SUCCEEDED")
        self.assertEqual(t0["attempts"], 1, t0)
        # its own timeout, 1s, killed the 60 s sleep
        t1 = c.wait_task_status(rid, "fan[1]", "FAILED", timeout=60)
        self.assertIn("timeout", t1["reason"], t1)
        # the placer saw the expanded values: 3 cpus is more than any agent
        # has
        t2 = c.wait_task(rid, "fan[2]", lambda t: "no agent in service offers cpu: 3 "
                         in (t.get("reason") or ""), what="fan[2] to wait for a bigger agent")
        self.assertIn("(the largest has 2; 1 agent)", t2["reason"], t2)
        self.assertEqual(t2["status"], "READY", t2)
        # the agent got the item's own image (one that is not there), while
        # "" ran fan[0] as a plain process
        t3 = c.wait_task_status(rid, "fan[3]", "FAILED")
        self.assertIn("image registry/app:1", t3["reason"], t3)
        # kill -9 droverd: the waiting item is expanded again, to the same
        # values (it still waits for 3 cpus, and the others keep theirs)
        c.kill_droverd()
        c.start_droverd()
        t2 = c.wait_task(rid, "fan[2]", lambda t: "offers cpu: 3 " in (t.get("reason") or ""),
                         what="fan[2] to wait for a bigger agent after the restart")
        self.assertEqual(t2["status"], "READY", t2)
        run = c.get_run(rid)
        self.assertEqual(task(run, "fan[0]")["status"], "SUCCEEDED")
        self.assertIn("timeout", task(run, "fan[1]")["reason"])
        self.assertEqual(c.cli("run", "cancel", rid).rc, 0)
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "CANCELLED", run)

    def test_literal_items_are_checked_at_submit(self):
        c = self.c
        c.start_droverd()
        path = c.write_spec("name: bad\nsteps:\n"
                            "  - name: fan\n"
                            "    for_each: [{cpu: \"1\"}, {cpu: lots}]\n"
                            "    resources: {cpu: \"{{item.cpu}}\"}\n"
                            "    command: [\"true\"]\n")
        r = c.cli("submit", path)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(":5:22: resources.cpu: item 1 ({\"cpu\":\"lots\"}) gives 'lots', not a "
                      "cpu quantity", r.err, r)
        # the error names the key it is in, and what is allowed there
        path = c.write_spec("name: bad\nsteps:\n"
                            "  - name: s\n"
                            "    image: \"{{item.image}}\"\n"
                            "    command: [\"true\"]\n")
        r = c.cli("submit", path)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(":4:12: image: {{item.image}} used outside a for_each step (allowed "
                      "there:", r.err, r)
        self.assertEqual(c.runs(), [])

    def test_upstream_retry_limit_and_a_bad_value_at_dispatch(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        attempts, gate = c.path("attempts"), c.path("gate")
        spec = ("name: upstream\n"
                "steps:\n"
                "  - name: up\n"
                "    script: |\n"
                "      echo 2 > $DROVER_OUTPUTS/n\n"
                "      echo lots > $DROVER_OUTPUTS/cpu\n"
                "    outputs: {params: [n, cpu]}\n"
                "  - name: flaky\n"
                "    needs: [up]\n"
                "    retries: {limit: \"{{steps.up.outputs.params.n}}\", backoff: 1s}\n"
                "    script: |\n"
                "      echo $DROVER_ATTEMPT >> %(attempts)s\n"
                "      while [ ! -e %(gate)s ]; do sleep 0.1; done\n"
                "      exit 1\n"
                "  - name: bad\n"
                "    needs: [up]\n"
                "    retries: 3\n"
                "    resources: {cpu: \"{{steps.up.outputs.params.cpu}}\"}\n"
                "    command: [\"true\"]\n"
                "  - {name: fine, needs: [up], command: [\"true\"]}\n"
                % {"attempts": attempts, "gate": gate})
        rid = c.submit(spec)
        bad = c.wait_task_status(rid, "bad", "FAILED")
        self.assertIn("resources.cpu: {{steps.up.outputs.params.cpu}} gave 'lots', not a cpu "
                      "quantity", bad["reason"], bad)
        self.assertEqual(bad["attempts"], 0, "a bad value never runs, nor retries: %r" % bad)
        c.wait_task_status(rid, "fine", "SUCCEEDED")
        c.wait_task_status(rid, "flaky", "RUNNING")
        # kill -9 droverd mid-run: the limit read again after the restart
        # is the same (2 retries: 3 attempts in all)
        c.kill_droverd()
        c.start_droverd()
        with open(gate, "w"):
            pass
        run = wait_final(c, rid, timeout=120)
        self.assertEqual(run["status"], "FAILED", run)
        fl = task(run, "flaky")
        self.assertEqual(fl["status"], "FAILED", fl)
        self.assertEqual(fl["attempts"], 3, fl)
        self.assertEqual(fl["retries_used"], 2, fl)
        self.assertEqual(len(harness.read_lines(attempts)), 3)
        # droverd kept going: it still answers and takes a new run
        rid2 = c.submit("name: after\nsteps:\n  - {name: a, command: [\"true\"]}\n")
        self.assertEqual(wait_final(c, rid2)["status"], "SUCCEEDED")

    def test_skipped_items_are_left_out_and_an_all_skipped_fan_out_is_skipped(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        log = c.path("again.log")
        spec = ("name: skips\n"
                "steps:\n"
                "  - name: shard\n"
                "    for_each: [\"1\", \"2\", \"3\", \"4\"]\n"
                "    when: \"{{item}} != 2\"\n"
                "    script: echo r{{item}} > $DROVER_OUTPUTS/r\n"
                "    outputs: {params: [r]}\n"
                "  - name: again\n"
                "    needs: [shard]\n"
                "    for_each: \"{{steps.shard.outputs.params.r}}\"\n"
                "    script: flock %(log)s -c \"echo '[{{item}}]' >> %(log)s\"\n"
                "  - name: none\n"
                "    for_each: [\"1\", \"2\"]\n"
                "    when: \"{{item}} > 5\"\n"
                "    command: [\"true\"]\n"
                "  - {name: after-none, needs: [none], command: [\"true\"]}\n"
                % {"log": log})
        rid = c.submit(spec)
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        self.assertEqual(task(run, "shard[1]")["status"], "SKIPPED")
        self.assertEqual(task(run, "shard")["outputs"]["params"], {"r": "[\"r1\",\"r3\",\"r4\"]"},
                         task(run, "shard"))
        names = [t["name"] for t in run["tasks"]]
        self.assertIn("again[2]", names)
        self.assertNotIn("again[3]", names, "no task for the skipped item")
        self.assertEqual(sorted(harness.read_lines(log)), ["[r1]", "[r3]", "[r4]"])
        none = task(run, "none")
        self.assertEqual(none["status"], "SKIPPED", none)
        self.assertIn("all 2 items were skipped", none["reason"], none)
        self.assertEqual(task(run, "after-none")["status"], "SKIPPED")


if __name__ == "__main__":
    harness.main()
