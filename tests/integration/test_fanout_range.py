"""Fan-out over a range: `for_each: {range: ...}` on real droverd and
agents. Each item is a real process; what is asserted is what the steps
saw ({{item}}, $DROVER_TASK, written to a side file), the task names and
statuses `drover run get` shows, the items' output params and the fan-in
list; and that a range over droverd's --max-items is refused at submit."""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task, wait_final  # noqa: E402


class FanoutRangeTest(harness.DroverTestCase):
    def test_range_items_run_with_their_numbers(self):
        c = self.c
        c.start_droverd(extra=["--max-items", "20"])
        c.start_agent("w1", cpus=2)
        c.start_agent("w2", cpus=2)
        log, fanin = c.path("items.log"), c.path("fanin.json")
        spec = ("name: ranged\n"
                "params: {stop: \"-9\"}\n"
                "steps:\n"
                "  - name: sq\n"
                "    for_each: {range: [9, \"{{params.stop}}\", -3]}\n"
                "    parallelism: 2\n"
                "    when: \"{{item}} != 0\"\n"
                "    script: |\n"
                "      flock %(log)s -c \"echo '{{item}} $DROVER_TASK' >> %(log)s\"\n"
                "      echo $(( {{item}} * {{item}} )) > $DROVER_OUTPUTS/sq\n"
                "    outputs: {params: [sq]}\n"
                "  - name: gather\n"
                "    needs: [sq]\n"
                "    script: echo '{{steps.sq.outputs.params.sq}}' > %(fanin)s\n"
                % {"log": log, "fanin": fanin})
        # -p stop=-10: 9, 6, 3, 0, -3, -6, -9 (the end is exclusive)
        rid = c.submit(spec, params={"stop": "-10"})
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        values = [9, 6, 3, 0, -3, -6, -9]
        names = [t["name"] for t in run["tasks"]]
        for i, v in enumerate(values):
            self.assertIn("sq[%d]" % i, names)
            it = task(run, "sq[%d]" % i)
            if v == 0:
                self.assertEqual(it["status"], "SKIPPED", it)
                continue
            self.assertEqual(it["status"], "SUCCEEDED", it)
            self.assertEqual(it["attempts"], 1, it)
            self.assertEqual(it["outputs"]["params"], {"sq": str(v * v)}, it)
        self.assertNotIn("sq[7]", names)
        self.assertEqual(task(run, "sq")["status"], "SUCCEEDED")
        self.assertEqual(task(run, "gather")["status"], "SUCCEEDED")
        # each item ran once, with its own number and name
        self.assertEqual(sorted(harness.read_lines(log)),
                         sorted("%d sq[%d]" % (v, i) for i, v in enumerate(values) if v != 0))
        # fan-in: the items' params in item order, the skipped one left out
        got = json.loads(harness.read_text(fanin))
        self.assertEqual(got, [str(v * v) for v in values if v != 0])

    def test_range_over_max_items_is_refused_at_submit(self):
        c = self.c
        c.start_droverd(extra=["--max-items", "5"])
        c.start_agent("w1", cpus=2)
        path = c.write_spec("name: big\nsteps:\n"
                            "  - name: s\n"
                            "    for_each: {range: [0, 12, 2]}\n"
                            "    command: [\"true\"]\n")
        r = c.cli("submit", path)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(":4:23: too many for_each items in range (6; at most 5, droverd's "
                      "--max-items)", r.err)
        self.assertEqual(c.cli_json("status")["counters"]["over_limits"], 1)
        # exactly the limit runs
        rid = c.submit("name: five\nsteps:\n"
                       "  - {name: s, for_each: {range: [0, 10, 2]},\n"
                       "     command: [test, \"{{item}}\", -lt, 9]}\n")
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        self.assertEqual(sorted(t["name"] for t in run["tasks"] if t["name"] != "s"),
                         ["s[%d]" % i for i in range(5)])

    def test_spaced_item_condition_is_decided_per_item(self):
        # issue 14: "{{ item }}" with spaces is the item, as "{{item}}" is:
        # the condition is decided per item (it was taken for the group's,
        # which then failed with "unknown reference: {{item}}")
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=2)
        log = c.path("items.log")
        spec = ("name: spaced\n"
                "steps:\n"
                "  - name: sq\n"
                "    for_each: {range: [1, 6]}\n"
                "    when: \"{{ item }} != 4\"\n"
                "    script: |\n"
                "      flock %(log)s -c \"echo '{{ item }} $DROVER_TASK' >> %(log)s\"\n"
                "      echo $(( {{  item\t}} * 2 )) > $DROVER_OUTPUTS/d\n"
                "    outputs: {params: [d]}\n"
                "  - name: kv\n"
                "    for_each: [{k: a}, {k: skip}]\n"
                "    when: \"'{{ item.k }}' != skip\"\n"
                "    command: [test, \"{{ item.k }}\", =, a]\n"
                "  - name: gather\n"
                "    needs: [sq, kv]\n"
                "    command: [test, \"{{ steps.sq.outputs.params.d }}\", =,\n"
                "              '[\"2\",\"4\",\"6\",\"10\"]']\n"
                % {"log": log})
        rid = c.submit(spec)
        run = wait_final(c, rid)
        self.assertEqual(run["status"], "SUCCEEDED", run)
        self.assertEqual(task(run, "sq")["status"], "SUCCEEDED", task(run, "sq"))
        for i, v in enumerate([1, 2, 3, 4, 5]):
            it = task(run, "sq[%d]" % i)
            self.assertEqual(it["status"], "SKIPPED" if v == 4 else "SUCCEEDED", it)
        self.assertEqual(task(run, "kv[0]")["status"], "SUCCEEDED")
        self.assertEqual(task(run, "kv[1]")["status"], "SKIPPED")
        self.assertEqual(task(run, "gather")["status"], "SUCCEEDED", task(run, "gather"))
        self.assertEqual(sorted(harness.read_lines(log)),
                         sorted("%d sq[%d]" % (v, i) for i, v in enumerate([1, 2, 3, 4, 5])
                                if v != 4))


if __name__ == "__main__":
    harness.main()
