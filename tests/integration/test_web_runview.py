"""The run page's API (README "HTTP API": the summary view, needs, fan-out
counts, item pages, event_seq), through HTTP only against real daemons
(droverd, an agent, drover-web from harness.py): the graph's edges for a
DAG with a template group and fan-outs, a fan-out's counts by status as
its items finish, the summary against the full view, pages of items and
their refusals, and following the run from a view's event_seq without a
gap or a repeat. A 20,000-item range fan-out's summary stays a few KB
(bench/bench.py's `runview` workload times the 1,000,000-item one)."""
import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from test_web_api import Http, api_token  # noqa: E402

TEMPLATE = {"pair": {"steps": [
    {"name": "a", "command": ["true"]},
    {"name": "b", "needs": ["a"], "command": ["true"]},
]}}


def by_name(view):
    return {t["name"]: t for t in view["tasks"]}


def counts(task):
    return {c["status"]: c["count"] for c in task["item_counts"]}


class WebRunViewTest(harness.DroverTestCase):
    def setUp(self):
        super().setUp()
        self.c.start_droverd()
        self.c.start_web(extra=["--rate-limit", "0"])
        self.http = Http(self.c.web_url, api_token(self.c))

    def get(self, path, **kw):
        return self.http.json("GET", path, **kw)

    def ok(self, path):
        st, body = self.get(path)
        self.assertEqual(st, 200, (path, body))
        return body

    def refused(self, path, status, code, words, **kw):
        st, body = self.get(path, **kw)
        self.assertEqual(st, status, (path, body))
        self.assertEqual(body.get("code"), code, (path, body))
        for w in words:
            self.assertIn(w, body["error"], (path, body))

    def test_graph_counts_summary_pages_and_events(self):
        c = self.c
        go = c.path("go")
        spec = {
            "name": "runview",
            "templates": TEMPLATE,
            "steps": [
                {"name": "prep", "command": ["true"]},
                {"name": "grp", "needs": ["prep"], "uses": "pair"},
                # items 0..2 end at once; 3..5 wait for the file go
                {"name": "fan", "needs": ["prep"], "for_each": {"range": 6},
                 "script": "[ {{item}} -lt 3 ] || while [ ! -e %s ]; do sleep 0.05; done" % go},
                {"name": "sweep", "needs": ["prep"], "uses": "pair",
                 "for_each": {"range": 2}},
                {"name": "end", "needs": ["grp", "fan", "sweep"], "command": ["true"]},
            ],
        }
        rid = c.submit(spec)
        base = "/api/v1/runs/" + rid
        # before any agent: nothing ran, the fan-out not expanded yet
        v = self.ok(base + "?view=summary")
        t = by_name(v)
        self.assertTrue(v["summary"])
        self.assertEqual(t["fan"]["fan_out"], True)
        self.assertEqual(t["fan"]["item_total"], 0)
        self.assertEqual(t["fan"]["item_counts"], [])
        self.assertEqual(t["prep"]["fan_out"], False)
        seq0 = v["event_seq"]
        self.assertGreater(seq0, 0)  # the run's creation was an event

        # a spot node at $3.60 an hour: a millionth of a dollar a millisecond
        c.start_agent("a1", cpus=8, extra=("--spot", "true", "--price", "3.6"))
        c.wait_agent_connected("a1")

        def three_done():
            f = by_name(self.ok(base + "?view=summary"))["fan"]
            return f if counts(f).get("succeeded") == 3 else None
        fan = harness.wait_until(three_done, timeout=60, what="fan's items 0..2 to succeed")
        self.assertEqual(fan["item_total"], 6)
        left = counts(fan)
        self.assertEqual(sum(left.values()), 6, fan)
        self.assertEqual(set(left) - {"succeeded", "ready", "assigned", "running"}, set(), fan)

        # the edges: needs in each task's own scope; items have none
        v = self.ok(base + "?view=summary")
        t = by_name(v)
        self.assertEqual(t["prep"]["needs"], [])
        self.assertEqual(t["grp"]["needs"], ["prep"])
        self.assertEqual(t["fan"]["needs"], ["prep"])
        self.assertEqual(t["sweep"]["needs"], ["prep"])
        self.assertEqual(t["end"]["needs"], ["grp", "fan", "sweep"])
        self.assertEqual(t["grp.a"]["needs"], [])
        self.assertEqual(t["grp.b"]["needs"], ["grp.a"])
        self.assertEqual(t["grp.b"]["group"], "grp")
        self.assertTrue(t["grp"]["is_group"])
        self.assertTrue(t["sweep"]["fan_out"])
        # summary: no items, nothing inside an item's group, no history
        self.assertEqual(sorted(t), ["end", "fan", "grp", "grp.a", "grp.b", "prep", "sweep"])
        self.assertTrue(all(x["history"] == [] for x in v["tasks"]), v)
        self.assertEqual(v["task_count"], 7 + 6 + 2 + 4)  # + items, sweep's items and members

        # the full view: every task, the items' fan_out_of and index, history
        full = self.ok(base)
        self.assertFalse(full["summary"])
        ft = by_name(full)
        self.assertEqual(len(ft), full["task_count"])
        for i in range(6):
            item = ft["fan[%d]" % i]
            self.assertEqual((item["fan_out_of"], item["item"], item["needs"]), ("fan", i, []))
        self.assertEqual(ft["sweep[1]"]["fan_out_of"], "sweep")
        self.assertEqual(ft["sweep[1].b"]["needs"], ["sweep[1].a"])
        self.assertEqual(ft["sweep[1].b"]["group"], "sweep[1]")
        self.assertEqual(len(ft["prep"]["history"]), 1)
        self.assertEqual(counts(ft["fan"]).get("succeeded"), 3)
        # the panel's one task: with its attempts
        one = self.ok(base + "/tasks/fan%5B1%5D")
        self.assertEqual((one["name"], one["fan_out_of"], len(one["history"])), ("fan[1]", "fan", 1))

        # pages of items, in item order
        p = self.ok(base + "/items/fan?offset=1&limit=2")
        self.assertEqual((p["run_id"], p["task"], p["total"], p["offset"]), (rid, "fan", 6, 1))
        self.assertEqual([x["name"] for x in p["items"]], ["fan[1]", "fan[2]"])
        self.assertTrue(all(x["history"] == [] for x in p["items"]))
        p = self.ok(base + "/items/fan?status=succeeded")
        self.assertEqual(p["total"], 3)
        self.assertEqual([x["name"] for x in p["items"]], ["fan[0]", "fan[1]", "fan[2]"])
        p = self.ok(base + "/items/fan?status=succeeded&offset=2")
        self.assertEqual((p["total"], [x["name"] for x in p["items"]]), (3, ["fan[2]"]))
        p = self.ok(base + "/items/fan?status=running&status=ready&status=assigned")
        self.assertEqual([x["name"] for x in p["items"]], ["fan[3]", "fan[4]", "fan[5]"])
        p = self.ok(base + "/items/fan?offset=6")
        self.assertEqual((p["total"], p["items"]), (6, []))
        p = self.ok(base + "/items/sweep")
        self.assertEqual([(x["name"], x["is_group"]) for x in p["items"]],
                         [("sweep[0]", True), ("sweep[1]", True)])
        # a read token may look
        reader = Http(c.web_url, api_token(c, "reader", "read"))
        st, p = reader.json("GET", base + "/items/fan?limit=1")
        self.assertEqual((st, [x["name"] for x in p["items"]]), (200, ["fan[0]"]))

        # droverd restarted: the counts are made again from what it reloads
        c.restart_droverd()
        again = harness.wait_until(
            lambda: by_name(self.ok(base + "?view=summary"))["fan"], timeout=60,
            what="the summary after the restart")
        self.assertEqual(counts(again).get("succeeded"), 3, again)
        self.assertEqual(sum(counts(again).values()), 6, again)

        # follow from a view's event_seq: only later events, the run's end among them
        v = self.ok(base + "?view=summary")
        seq = v["event_seq"]
        self.assertGreaterEqual(seq, seq0)
        open(go, "w").close()
        final = harness.wait_until(
            lambda: (lambda r: r if r["status"] in ("succeeded", "failed") else None)(
                self.ok(base + "?view=summary")), timeout=60, what="the run to end")
        self.assertEqual(final["status"], "succeeded", final)
        self.assertEqual(counts(by_name(final)["fan"]), {"succeeded": 6})
        # the run's spot totals are its every task's, items and members included
        every = self.ok(base)["tasks"]
        spot = sum(x["spot_ms"] for x in every)
        self.assertEqual((final["spot_ms"], final["ondemand_ms"], final["preemptions"]),
                         (spot, 0, 0), final)
        self.assertGreater(spot, sum(x["spot_ms"] for x in final["tasks"]))  # items ran too
        self.assertAlmostEqual(final["cost"], sum(x["cost"] for x in every), places=9)
        self.assertAlmostEqual(final["cost"], spot * 1e-6, places=9)
        listed = [r for r in self.ok("/api/v1/runs")["runs"] if r["id"] == rid]
        self.assertEqual([(r["spot_ms"], round(r["cost"], 9)) for r in listed],
                         [(spot, round(final["cost"], 9))])
        st, page = self.get("/api/v1/events?format=json&max=1000&run=%s&since=%d" % (rid, seq))
        self.assertEqual(st, 200, page)
        seqs = [e["seq"] for e in page["events"]]
        self.assertTrue(seqs and min(seqs) > seq, (seq, seqs))
        ends = [e for e in page["events"] if e["kind"] == "run" and e["run_id"] == rid]
        self.assertEqual([e["to"] for e in ends], ["SUCCEEDED"], page["events"])
        tasks_seen = {e["task"] for e in page["events"] if e["kind"] == "task"}
        self.assertIn("fan[5]", tasks_seen)
        self.assertNotIn("prep", tasks_seen)  # it ended before the view
        # at rest: the view's event_seq is the last event
        last = self.ok(base + "?view=summary")["event_seq"]
        st, page = self.get("/api/v1/events?format=json&since=%d" % last)
        self.assertEqual(page["events"], [])
        st, page = self.get("/api/v1/events?format=json&since=%d" % (last - 1))
        self.assertEqual([e["seq"] for e in page["events"]], [last])
        # the runs list carries it too
        runs = self.ok("/api/v1/runs")["runs"]
        self.assertEqual([r["event_seq"] for r in runs if r["id"] == rid], [last])

    def test_item_page_refusals(self):
        c = self.c
        rid = c.submit({"name": "r", "steps": [
            {"name": "solo", "command": ["true"]},
            {"name": "fan", "for_each": {"range": 3}, "command": ["true"]}]})
        base = "/api/v1/runs/%s/items/" % rid
        harness.wait_until(lambda: self.ok(base + "fan")["total"] == 3, timeout=30,
                           what="the fan-out to expand")
        for q, word in (("limit=0", "limit"), ("limit=1001", "limit"),
                        ("limit=1000000000", "limit"), ("limit=-1", "limit"),
                        ("limit=x", "limit"), ("offset=-1", "offset"),
                        ("offset=99999999999999999999", "offset"), ("offset=1e3", "offset"),
                        ("status=bogus", "status"), ("status=SUCCEEDED", "status"),
                        ("status=", "status")):
            self.refused(base + "fan?" + q, 400, "invalid", [word])
        self.refused(base + "solo", 400, "invalid", ["'solo'", "not a fan-out"])
        self.refused(base + urllib.parse.quote("fan[0]"), 400, "invalid",
                     ["'fan[0]'", "not a fan-out", "one of its items"])
        self.refused(base + "nope", 404, "not_found", ["no step 'nope'"])
        self.refused("/api/v1/runs/r999999/items/fan", 404, "not_found", ["r999999"])
        self.refused(base + "fan", 401, "unauthenticated", [], token=False)
        self.refused("/api/v1/runs/%s?view=tiny" % rid, 400, "invalid", ["view"])
        # the largest limit is a page
        p = self.ok(base + "fan?limit=1000&offset=4294967295")
        self.assertEqual((p["total"], p["items"]), (3, []))

    def test_summary_of_a_big_fanout_is_small(self):
        c = self.c
        n = 20000
        rid = c.submit({"name": "big", "steps": [
            {"name": "first", "command": ["true"]},
            {"name": "many", "for_each": {"range": n}, "command": ["true"]},
            {"name": "after", "needs": ["many"], "command": ["true"]}]})
        base = "/api/v1/runs/" + rid
        # no agent: the items wait, READY, for ever
        v = harness.wait_until(
            lambda: (lambda v: v if by_name(v)["many"]["item_total"] == n else None)(
                self.ok(base + "?view=summary")), timeout=60, what="the fan-out to expand")
        st, headers, raw = self.http.request("GET", base + "?view=summary")
        self.assertEqual(st, 200)
        self.assertLess(len(raw), 8192, "the summary of %d items is %d bytes" % (n, len(raw)))
        v = json.loads(raw)
        self.assertEqual([t["name"] for t in v["tasks"]], ["first", "many", "after"])
        self.assertEqual(v["task_count"], 3 + n)
        self.assertEqual(sum(counts(by_name(v)["many"]).values()), n)
        self.assertEqual(set(counts(by_name(v)["many"])), {"ready"})
        p = self.ok(base + "/items/many?offset=%d&limit=1000" % (n - 10))
        self.assertEqual([x["item"] for x in p["items"]], list(range(n - 10, n)))
        self.assertEqual([x["item_value"] for x in p["items"]], [str(i) for i in range(n - 10, n)])


if __name__ == "__main__":
    harness.main()
