"""Step cache (issue #3): a step whose pipeline, step name, expanded
command and env, input artifact digests and declared outputs match an
earlier SUCCEEDED step is CACHED — no agent runs it, its outputs are
reused. `cache: false`, `drover submit --no-cache` and `drover cache
clear` turn it off.

Every step appends "STEP RUN" to a shared file when it really runs, so
the test sees from the agents' side exactly which steps ran in which run."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402
from harness import check_daemons, wait_final  # noqa: E402,F401

STEPS = ("a", "b", "c", "d")


def pipeline(c, ran, side):
    """a -> b -> c, and d on its own; param x is used by b only, and b's
    output (which depends on x) feeds c."""
    def mark(name):
        return 'echo "%s $DROVER_RUN_ID" >> %s\n' % (name, ran)

    return {
        "name": "cache-demo",
        "params": {"x": "1"},
        "steps": [
            {"name": "a",
             "script": mark("a") + "printf 'from-a\\n' > $DROVER_OUTPUTS/data\n"
                                   "echo 7 > $DROVER_OUTPUTS/seed\n",
             "outputs": {"artifacts": ["data"], "params": ["seed"]}},
            {"name": "b", "needs": ["a"],
             "inputs": {"artifacts": {"d": "a.data"}},
             "script": mark("b") + "cp $DROVER_INPUTS/d %s/b-$DROVER_RUN_ID.in\n"
                                   "{ cat $DROVER_INPUTS/d; echo 'x={{params.x}}'; } > $DROVER_OUTPUTS/model\n"
                                   "echo 'seed={{steps.a.outputs.params.seed}}' >> $DROVER_OUTPUTS/model\n"
                       % side,
             "outputs": {"artifacts": ["model"]}},
            {"name": "c", "needs": ["b"],
             "inputs": {"artifacts": {"m": "b.model"}},
             "script": mark("c") + "cp $DROVER_INPUTS/m %s/c-$DROVER_RUN_ID.in\n"
                                   "wc -l < $DROVER_INPUTS/m | tr -d ' ' > $DROVER_OUTPUTS/lines\n"
                                   "sha256sum $DROVER_INPUTS/m | cut -c1-12 > $DROVER_OUTPUTS/score\n"
                       % side,
             "outputs": {"params": ["lines", "score"]}},
            {"name": "d", "script": mark("d") + "echo independent\n"},
        ],
    }


class CacheTest(harness.DroverTestCase):

    def setup_cluster(self):
        c = self.c
        c.start_droverd()
        c.start_agent("w1", cpus=4)
        self.ran = c.path("ran.log")
        self.side = c.path("side")
        os.makedirs(self.side)

    def ran_in(self, rid):
        """The steps that really ran (on an agent) in run rid."""
        return sorted(l.split()[0] for l in harness.read_lines(self.ran) if l.split()[1] == rid)

    def run_to_end(self, spec, params=None, extra=()):
        rid = self.c.submit(spec, params=params, extra=extra)
        run = wait_final(self.c, rid, timeout=60)
        self.assertEqual(run["status"], "SUCCEEDED", run["tasks"])
        return rid, run

    def assert_statuses(self, run, want):
        got = {t["name"]: t["status"] for t in run["tasks"]}
        self.assertEqual(got, want, "run %s" % run["id"])

    def assert_cached_from(self, run, name, *src_rids):
        """name is CACHED in run, reusing the same step of one of src_rids."""
        t = task(run, name)
        self.assertEqual(t["status"], "CACHED", t)
        self.assertEqual(t["attempts"], 0, "a cached step has no attempt: %s" % t)
        self.assertEqual(t["history"], [], t)
        self.assertIn(t.get("cached_from"), ["%s/%s" % (r, name) for r in src_rids], t)

    def test_resubmit_is_cached_and_a_param_reruns_only_downstream(self):
        c = self.c
        self.setup_cluster()
        spec = pipeline(c, self.ran, self.side)

        r1, run1 = self.run_to_end(spec)
        self.assert_statuses(run1, dict.fromkeys(STEPS, "SUCCEEDED"))
        self.assertEqual(self.ran_in(r1), list(STEPS))
        c1 = task(run1, "c")
        self.assertEqual(c1["outputs"]["params"]["lines"], "3", c1)
        self.assertEqual(harness.read_text(os.path.join(self.side, "c-%s.in" % r1)),
                         "from-a\nx=1\nseed=7\n")

        # the same pipeline and params again: served from cache, nothing runs
        r2, run2 = self.run_to_end(spec)
        self.assert_statuses(run2, dict.fromkeys(STEPS, "CACHED"))
        self.assertEqual(self.ran_in(r2), [], "steps ran although their results were cached")
        for name in STEPS:
            self.assert_cached_from(run2, name, r1)
        # ... and their outputs are those of run 1
        self.assertEqual(task(run2, "c")["outputs"]["params"], c1["outputs"]["params"])
        self.assertEqual(task(run2, "a")["outputs"]["params"], {"seed": "7"})
        arts1 = {(a["step"], a["name"]): a["digest"] for a in c.cli_json("artifacts", r1)}
        arts2 = {(a["step"], a["name"]): a["digest"] for a in c.cli_json("artifacts", r2)}
        self.assertEqual(set(arts1), {("a", "data"), ("b", "model")})
        self.assertEqual(arts2, arts1)
        got = c.path("model-r2")
        r = c.cli("artifact", "get", r2, "b", "model", "-o", got)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(harness.read_text(got), "from-a\nx=1\nseed=7\n")

        # x changes: b (which uses it) and c (whose input b produces) rerun;
        # a and d are untouched by x and stay cached
        r3, run3 = self.run_to_end(spec, params={"x": "2"})
        self.assert_statuses(run3, {"a": "CACHED", "b": "SUCCEEDED", "c": "SUCCEEDED",
                                    "d": "CACHED"})
        self.assertEqual(self.ran_in(r3), ["b", "c"])
        self.assert_cached_from(run3, "a", r1, r2)
        self.assert_cached_from(run3, "d", r1, r2)
        # b read the artifact of run 1's a (reused through the cache)
        self.assertEqual(harness.read_text(os.path.join(self.side, "b-%s.in" % r3)), "from-a\n")
        self.assertEqual(harness.read_text(os.path.join(self.side, "c-%s.in" % r3)),
                         "from-a\nx=2\nseed=7\n")
        self.assertNotEqual(task(run3, "c")["outputs"]["params"]["score"],
                            c1["outputs"]["params"]["score"])

        # back to x=1: everything is cached again, b and c from run 1
        r4, run4 = self.run_to_end(spec, params={"x": "1"})
        self.assert_statuses(run4, dict.fromkeys(STEPS, "CACHED"))
        self.assertEqual(self.ran_in(r4), [])
        self.assert_cached_from(run4, "b", r1, r2)
        self.assert_cached_from(run4, "c", r1, r2)
        # and x=2 again: served from run 3
        r5, run5 = self.run_to_end(spec, params={"x": "2"})
        self.assert_statuses(run5, dict.fromkeys(STEPS, "CACHED"))
        self.assertEqual(self.ran_in(r5), [])
        self.assert_cached_from(run5, "b", r3)
        self.assert_cached_from(run5, "c", r3)

    def test_cached_from_names_the_run_that_ran_the_step(self):
        """A CACHED step reuses an earlier SUCCEEDED step: cached_from names
        the run whose step really ran, never a run that itself only reused
        it; so deleting a run that merely reused a result does not lose
        the cache entry while the run that produced it still exists."""
        c = self.c
        self.setup_cluster()
        spec = pipeline(c, self.ran, self.side)
        r1, _ = self.run_to_end(spec)
        r2, run2 = self.run_to_end(spec)
        for name in STEPS:
            self.assert_cached_from(run2, name, r1)
        r3, run3 = self.run_to_end(spec)
        for name in STEPS:
            self.assert_cached_from(run3, name, r1)
        # r2 ran nothing; deleting it must not make the next run recompute
        r = c.cli("run", "delete", r2)
        self.assertEqual(r.rc, 0, r)
        r4, run4 = self.run_to_end(spec)
        self.assertEqual(self.ran_in(r4), [], "deleting %s (which only reused %s's results) "
                         "made steps run again" % (r2, r1))
        for name in STEPS:
            self.assert_cached_from(run4, name, r1)

    def test_cache_false_step_always_reruns(self):
        c = self.c
        self.setup_cluster()
        spec = pipeline(c, self.ran, self.side)
        spec["steps"][0]["cache"] = False  # a
        spec["steps"][3]["cache"] = False  # d

        r1, run1 = self.run_to_end(spec)
        self.assertEqual(self.ran_in(r1), list(STEPS))
        r2, run2 = self.run_to_end(spec)
        # a and d run again; a's output is the same bytes as before, so b and
        # c (same command, same input digest) are still served from cache
        self.assert_statuses(run2, {"a": "SUCCEEDED", "b": "CACHED", "c": "CACHED",
                                    "d": "SUCCEEDED"})
        self.assertEqual(self.ran_in(r2), ["a", "d"])
        self.assertEqual(task(run2, "a")["attempts"], 1)
        self.assertIsNone(task(run2, "a").get("cached_from"), task(run2, "a"))
        r3, run3 = self.run_to_end(spec)
        self.assertEqual(self.ran_in(r3), ["a", "d"])

    def test_failed_step_is_not_cached(self):
        c = self.c
        self.setup_cluster()
        flag = c.path("flag")
        spec = {
            "name": "flaky",
            "steps": [
                {"name": "ok", "script": 'echo "ok $DROVER_RUN_ID" >> %s' % self.ran},
                {"name": "flaky",
                 "script": 'echo "flaky $DROVER_RUN_ID" >> %s; test -e %s' % (self.ran, flag)},
            ],
        }
        r1 = c.submit(spec)
        run1 = wait_final(c, r1)
        self.assertEqual(run1["status"], "FAILED")
        self.assertEqual(task(run1, "flaky")["status"], "FAILED")
        with open(flag, "w"):
            pass
        r2, run2 = self.run_to_end(spec)
        self.assert_statuses(run2, {"ok": "CACHED", "flaky": "SUCCEEDED"})
        self.assertEqual(self.ran_in(r2), ["flaky"])

    def test_no_cache_flag_and_cache_clear(self):
        c = self.c
        self.setup_cluster()
        spec = pipeline(c, self.ran, self.side)

        r1, _ = self.run_to_end(spec)
        self.assertEqual(self.ran_in(r1), list(STEPS))

        # --no-cache: every step runs although all are cached
        r2, run2 = self.run_to_end(spec, extra=["--no-cache"])
        self.assert_statuses(run2, dict.fromkeys(STEPS, "SUCCEEDED"))
        self.assertEqual(self.ran_in(r2), list(STEPS))
        for t in run2["tasks"]:
            self.assertIsNone(t.get("cached_from"), t)

        # without the flag the cache serves again
        r3, run3 = self.run_to_end(spec)
        self.assert_statuses(run3, dict.fromkeys(STEPS, "CACHED"))
        self.assertEqual(self.ran_in(r3), [])

        # cache clear: the next run reruns everything ...
        r = c.cli("cache", "clear")
        self.assertEqual(r.rc, 0, r)
        r4, run4 = self.run_to_end(spec)
        self.assert_statuses(run4, dict.fromkeys(STEPS, "SUCCEEDED"))
        self.assertEqual(self.ran_in(r4), list(STEPS))
        # ... while earlier runs keep their outputs
        got = c.path("model-r1")
        r = c.cli("artifact", "get", r1, "b", "model", "-o", got)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(harness.read_text(got), "from-a\nx=1\nseed=7\n")
        # and the run after that is served from the refilled cache
        r5, run5 = self.run_to_end(spec)
        self.assert_statuses(run5, dict.fromkeys(STEPS, "CACHED"))
        self.assertEqual(self.ran_in(r5), [])
        for name in STEPS:
            self.assert_cached_from(run5, name, r4)


if __name__ == "__main__":
    harness.main()
