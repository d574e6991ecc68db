"""Peer examples: examples/peers/*.yaml are drover versions of published
Argo Workflows, Kubeflow Pipelines and Airflow examples (each file names
its source and what the original documents as its result). This test runs
every one on real daemons and checks, against that documented result,
which steps ran, which were SKIPPED, the output params and the run status.

Design: one droverd with two agents for the whole class (setUpClass);
every case is submitted at once (with --no-cache, so that two cases
sharing a step never see a CACHED one) and the class waits until all runs
are final, opening approval gates (`drover run resume`) as they reach
SUSPENDED. Each case is then its own test method reading that outcome, so
one case's failure names that example, what it waits for and what
differed. A spec droverd refuses (a key this build does not know yet) fails
only its own cases, with the refusal in the message.

CASES is the table: name -> file, params, expected status per step, run
status, output params, skip-reason fragments, and `part`: the items of
issue 15 the example exercises (for the failure message).
"""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

PEERS = os.path.join(harness.SOURCE_DIR, "examples", "peers")

S, F, K, X = "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"

PARTS = {
    1: "trigger rules / depends",
    2: "continue_on: failed",
    3: "outcomes as data (status, exit_code, outputs.result, run.failures)",
    4: "retries.when / max_duration / skip_on_exit_code",
    5: "run parallelism / timeout",
    6: "suspend gates and `drover run resume`",
}


def case(file, steps, run, part=(), params=None, outputs=None, reasons=None, resume=None,
         check=None):
    """One row of the table. steps: {task: status or (status, ...)};
    outputs: {task: {param: value}}; reasons: {task: [fragments]};
    resume: (gate, [extra CLI args]) run when the gate is SUSPENDED;
    check: fn(testcase, run) for what a row cannot say."""
    return dict(file=file, steps=steps, run=run, part=tuple(part), params=params or {},
                outputs=outputs or {}, reasons=reasons or {}, resume=resume, check=check)


def overlap_at_most(n, prefix):
    def check(t, run):
        spans = []
        for task in run["tasks"]:
            if task["name"].startswith(prefix + "["):
                p = task["outputs"]["params"]
                spans.append((int(p["start"]), int(p["end"])))
        t.assertEqual(len(spans), 4, "expected 4 items of %s: %s" % (prefix, spans))
        for s0, _ in spans:
            running = sum(1 for s, e in spans if s <= s0 < e)
            t.assertLessEqual(running, n, "more than %d of %s ran at once: %s" % (n, prefix, spans))
    return check


def failures_list(t, run):
    p = harness.task(run, "send-email")["outputs"]["params"]
    try:
        failures = json.loads(p["failures"])
    except ValueError as e:
        t.fail("{{run.failures}} is not JSON: %r (%s)" % (p["failures"], e))
    t.assertIsInstance(failures, list, p["failures"])
    t.assertEqual(len(failures), 1, "one failed step expected: %r" % failures)
    t.assertIn("intentional-fail", json.dumps(failures[0]), failures)
    t.assertIn(1, list(failures[0].values()) if isinstance(failures[0], dict) else [],
               "its exit code 1 expected in %r" % failures)


def attempts(expect):
    def check(t, run):
        for name, (n, code) in expect.items():
            task = harness.task(run, name)
            t.assertEqual(task["attempts"], n, "attempts of %s: %r" % (name, task))
            t.assertEqual(task["exit_code"], code, "exit code of %s: %r" % (name, task))
    return check


def collected_json(name, param, value):
    def check(t, run):
        got = harness.task(run, name)["outputs"]["params"].get(param)
        t.assertEqual(json.loads(got), value, "%s.%s = %r" % (name, param, got))
    return check


def timed_out_quickly(t, run):
    took = run["finished_ms"] - run["created_ms"]
    t.assertLess(took, 30000, "the run took %d ms: its 2s timeout did not stop `sleep 60`" % took)


BRANCHES = {"branch_%s" % x: K for x in "acd"}
BRANCHES.update({"follow_%s" % x: K for x in "acd"})

CASES = {
    # ---- Argo Workflows
    "argo_coinflip": case(
        "argo-coinflip.yaml", {"flip-coin": S, "heads": S, "tails": K}, S, part=[3],
        outputs={"heads": {"said": "it was heads"}}, reasons={"tails": ["heads"]}),
    "argo_coinflip_tails": case(
        "argo-coinflip.yaml", {"flip-coin": S, "heads": K, "tails": S}, S, part=[3],
        params={"coin": "tails"}, outputs={"tails": {"said": "it was tails"}}),
    "argo_dag_conditional_parameters": case(
        "argo-dag-conditional-parameters.yaml",
        {"flip-coin": S, "heads": K, "tails": S, "stepresult": S}, S, part=[1, 3],
        outputs={"stepresult": {"stepresult": "tails"}}),
    "argo_dag_continue_on_fail": case(
        "argo-dag-continue-on-fail.yaml",
        {"A": S, "B": F, "C": S, "D": S, "E": F, "F": S, "G": K}, F, part=[1, 2],
        reasons={"G": ["E"]}),
    "argo_dag_enhanced_depends": case(
        "argo-dag-enhanced-depends.yaml",
        {"A": S, "B": S, "C": F, "should_execute_1": S, "should_execute_2": S,
         "should_not_execute": K, "should_execute_3": S}, S, part=[1, 2],
        reasons={"should_not_execute": ["C"]}),
    "argo_exit_code_output_variable": case(
        "argo-exit-code-output-variable.yaml", {"failing-container": F, "echo-container": S}, S,
        part=[1, 2, 3], outputs={"echo-container": {"message": "Exit code was: 123"}}),
    "argo_status_reference": case(
        "argo-status-reference.yaml", {"flakey-container": F, "failed": S, "succeeded": K}, S,
        part=[1, 2, 3], reasons={"succeeded": ["failed"]}),
    "argo_status_reference_succeeding": case(
        "argo-status-reference.yaml", {"flakey-container": S, "failed": K, "succeeded": S}, S,
        part=[1, 2, 3], params={"exit_code": "0"}),
    "argo_retry_conditional": case(
        "argo-retry-conditional.yaml", {"retry-script": F}, F, part=[4],
        check=attempts({"retry-script": (3, 2)})),
    "argo_retry_backoff": case(
        "argo-retry-backoff.yaml", {"retry-backoff": S}, S, part=[4],
        check=attempts({"retry-backoff": (3, 0)})),
    "argo_exit_handlers": case(
        "argo-exit-handlers.yaml",
        {"intentional-fail": F, "send-email": S, "celebrate": K, "cry": S}, F, part=[3],
        outputs={"send-email": {"status": "failed"}}, check=failures_list),
    "argo_suspend_template": case(
        "argo-suspend-template.yaml", {"approve": S, "delay": S, "release": S}, S, part=[6],
        resume=("approve", [])),
    "argo_suspend_template_outputs": case(
        "argo-suspend-template-outputs.yaml", {"approve": S, "release": S}, S, part=[6],
        resume=("approve", ["-p", "message=approved by alice"]),
        outputs={"approve": {"message": "approved by alice"},
                 "release": {"said": "approved by alice"}}),
    "argo_suspend_template_outputs_rejected": case(
        "argo-suspend-template-outputs.yaml", {"approve": F, "release": K}, F, part=[6],
        resume=("approve", ["--reject"])),
    "argo_dag_diamond": case(
        "argo-dag-diamond.yaml", {"A": S, "B": S, "C": S, "D": S}, S),
    "argo_conditionals": case(
        "argo-conditionals.yaml", {"print-hello": K}, S),
    "argo_conditionals_should_print": case(
        "argo-conditionals.yaml", {"print-hello": S}, S, params={"should_print": "true"}),
    "argo_loops_param_result": case(
        "argo-loops-param-result.yaml",
        {"gen-number-list": S, "sleep-n-sec": S, "sleep-n-sec[0]": S, "sleep-n-sec[1]": S, "sleep-n-sec[2]": S}, S,
        part=[3], outputs={"sleep-n-sec[%d]" % i: {"said": "sleeping for %d seconds" % (i + 1)}
                           for i in range(3)}),
    "argo_parallelism_limit": case(
        "argo-parallelism-limit.yaml", dict({"sleep[%d]" % i: S for i in range(4)}, sleep=S), S, part=[5],
        check=overlap_at_most(2, "sleep")),
    "argo_timeouts_workflow": case(
        "argo-timeouts-workflow.yaml",
        dict({"sleep-one-day[%d]" % i: (F, X) for i in range(3)},
             **{"unschedulable[%d]" % i: X for i in range(3)},
             **{"sleep-one-day": (F, X), "unschedulable": (X, F), "notify": S}), F, part=[5],
        outputs={"notify": {"status": "failed"}}, check=timed_out_quickly),
    # ---- Kubeflow Pipelines
    "kfp_condition_heads": case(
        "kfp-condition.yaml",
        {"flip-coin": S, "print-msg": S, "flip-coin-2": S, "print-msg-2": S, "print-msg-3": S}, S,
        outputs={"flip-coin": {"face": "heads"}}),
    "kfp_condition_tails": case(
        "kfp-condition.yaml",
        {"flip-coin": S, "print-msg": S, "flip-coin-2": K, "print-msg-2": K, "print-msg-3": K}, S,
        params={"force_flip_result": "tails"}, outputs={"flip-coin": {"face": "tails"}}),
    "kfp_if_elif_else_oneof": case(
        "kfp-if-elif-else-oneof.yaml",
        {"flip-three-sided-coin": S, "print-heads": K, "print-tails": K, "print-draw": S,
         "announce-result": S}, S, part=[1, 3], outputs={"announce-result": {"oneof": "Draw!"}}),
    "kfp_if_elif_else_oneof_tails": case(
        "kfp-if-elif-else-oneof.yaml",
        {"flip-three-sided-coin": S, "print-heads": K, "print-tails": S, "print-draw": K,
         "announce-result": S}, S, part=[1, 3], params={"flip": "tails"},
        outputs={"announce-result": {"oneof": "Got tails!"}}),
    "kfp_exit_handler": case(
        "kfp-exit-handler.yaml", {"print-op": S, "fail-op": F, "exit-task": S}, F,
        outputs={"exit-task": {"said": "Exit handler has worked!"}}),
    "kfp_retry": case(
        "kfp-retry.yaml", {"random-failure-op": S, "random-failure-op-2": S}, S,
        check=attempts({"random-failure-op": (3, 0), "random-failure-op-2": (2, 0)})),
    "kfp_parallel_for": case(
        "kfp-parallel-for.yaml",
        {"print-op": S, "concat-op": S, "concat-op[0]": S, "concat-op[1]": S, "print-op-2": S,
         "print-op-2[0]": S, "print-op-2[1]": S}, S,
        outputs={"concat-op[0]": {"out": "12"}, "concat-op[1]": {"out": "1020"},
                 "print-op-2[0]": {"text": "12"}, "print-op-2[1]": {"text": "1020"}},
        check=collected_json("print-op-2", "text", ["12", "1020"])),
    # ---- Airflow
    "airflow_branch_operator": case(
        "airflow-branch-operator.yaml",
        dict(BRANCHES, run_this_first=S, branching=S, branch_b=S, follow_b=S, join=S), S,
        part=[1, 3]),
    "airflow_short_circuit_operator": case(
        "airflow-short-circuit-operator.yaml",
        {"condition_is_True": S, "true_1": S, "true_2": S, "condition_is_False": S,
         "false_1": K, "false_2": K, "task_1": S, "task_2": S, "short_circuit": S, "task_3": S,
         "task_4": K, "task_5": S, "task_6": K, "task_7": S}, S, part=[1, 3],
        reasons={"false_1": ["False"]}),
    "airflow_skip_dag": case(
        "airflow-skip-dag.yaml",
        {"skip_operator_1": K, "always_true_1": S, "all_success": K, "final_1": K,
         "skip_operator_2": K, "always_true_2": S, "one_success": S, "final_2": S}, S,
        part=[1, 4], reasons={"skip_operator_1": ["99"], "all_success": ["all_success"]}),
    "airflow_trigger_rules": case(
        "airflow-trigger-rules.yaml",
        {"ok": S, "bad": F, "skip": K, "r_all_success": K, "r_all_done": S, "r_all_failed": K,
         "r_one_success": S, "r_one_failed": S, "r_none_failed": K,
         "r_none_failed_min_one_success": K, "r_none_skipped": K, "s_all_success": K,
         "s_none_failed": S, "s_none_failed_min_one_success": S, "f_all_failed": S}, S,
        part=[1, 2, 4],
        reasons={"r_all_success": ["all_success"], "r_all_failed": ["all_failed"],
                 "r_none_failed": ["none_failed"], "r_none_skipped": ["none_skipped"]}),
    "airflow_bash_operator": case(
        "airflow-bash-operator.yaml",
        {"runme": S, "runme[0]": S, "runme[1]": S, "runme[2]": S, "run_after_loop": S, "also_run_this": S,
         "this_will_skip": K, "run_this_last": K}, S, part=[4],
        reasons={"this_will_skip": ["99"], "run_this_last": ["this_will_skip"]}),
    "airflow_latest_only_with_trigger": case(
        "airflow-latest-only-with-trigger.yaml",
        {"latest_only": K, "task1": K, "task2": S, "task3": K, "task4": S}, S, part=[1, 4]),
    "airflow_latest_only_latest_run": case(
        "airflow-latest-only-with-trigger.yaml",
        {"latest_only": S, "task1": S, "task2": S, "task3": S, "task4": S}, S, part=[1, 4],
        params={"is_latest": "true"}),
    "airflow_setup_teardown": case(
        "airflow-setup-teardown.yaml",
        {"root_setup": S, "normal": S, "root_teardown": S, "section_1_taskgroup_setup": S,
         "section_1_normal": S, "section_1_taskgroup_teardown": S}, S, part=[1, 2]),
    "airflow_setup_teardown_failing_work": case(
        "airflow-setup-teardown.yaml",
        {"root_setup": S, "normal": F, "root_teardown": S, "section_1_taskgroup_setup": K,
         "section_1_normal": K, "section_1_taskgroup_teardown": K}, F, part=[1, 2],
        params={"fail_normal": "true"}),
}

WAIT_S = 120  # for every run together (times harness.SCALE)


class SharedClusterCases(unittest.TestCase):
    """Runs the table cls.CASES on one cluster (setUpClass) and checks one
    case per test method (add_case_tests). Subclasses set CASES, PARTS (the
    issue's items, by number) and ISSUE; test_reuse_examples.py is another."""
    maxDiff = None
    cluster = None
    CASES, PARTS, ISSUE = {}, {}, ""
    outcome = {}  # case name -> {"rid", "submit_error", "run", "resume"}

    @classmethod
    def setUpClass(cls):
        missing = [b for b in ("droverd", "drover-agent", "drover")
                   if not os.access(harness.bin_path(b), os.X_OK)]
        if missing:
            raise unittest.SkipTest("missing binaries in %s: %s" % (harness.BIN_DIR, missing))
        base = tempfile.gettempdir()
        if len(base) > 40:  # ipc:// paths must fit in sun_path
            base = "/tmp"
        cls.tmp = tempfile.mkdtemp(prefix="drover-it-", dir=base)
        cls.cluster = c = harness.Cluster(cls.tmp)
        cls.failed_any = False
        cls.outcome = {}
        try:
            c.start_droverd()
            c.start_agent("w1", cpus=4)
            c.start_agent("w2", cpus=4)
            cls._run_all()
        except BaseException:
            cls._teardown(dump=True)
            raise

    @classmethod
    def _run_all(cls):
        c = cls.cluster
        for name, cs in cls.CASES.items():
            args = ["submit", os.path.join(PEERS, cs["file"]), "--no-cache"]
            for k, v in cs["params"].items():
                args += ["-p", "%s=%s" % (k, v)]
            r = c.cli(*args)
            o = cls.outcome[name] = {"rid": None, "submit_error": None, "run": None, "resume": None}
            if r.rc == 0 and r.out.strip():
                o["rid"] = r.out.strip()
            else:
                o["submit_error"] = (r.err or r.out).strip()
        deadline = time.monotonic() + WAIT_S * harness.SCALE
        pending = [n for n, o in cls.outcome.items() if o["rid"]]
        while pending and time.monotonic() < deadline:
            harness.check_daemons(c)
            # one `runs` call for every status; `run get` only for a run
            # that finished or has a gate to open
            status = {r["id"]: r["status"] for r in c.runs()}
            for name in list(pending):
                o, cs = cls.outcome[name], cls.CASES[name]
                gate = cs["resume"] and o["resume"] is None
                if status.get(o["rid"]) not in harness.FINAL_RUN and not gate:
                    continue
                run = c.get_run(o["rid"])
                o["run"] = run
                if cs["resume"] and o["resume"] is None:
                    gate, extra = cs["resume"]
                    if any(t["name"] == gate and t["status"] == "SUSPENDED" for t in run["tasks"]):
                        o["resume"] = c.cli("run", "resume", o["rid"], gate, *extra)
                if run["status"] in harness.FINAL_RUN:
                    pending.remove(name)
            time.sleep(0.2)
        for name in pending:  # still running: stop it, the test reports it
            o = cls.outcome[name]
            o["run"] = c.get_run(o["rid"])
            c.cli("run", "cancel", o["rid"])

    @classmethod
    def _teardown(cls, dump=False):
        c = cls.cluster
        if c is None:
            return
        problems = c.stop()
        if dump or problems or harness.VERBOSE:
            sys.stderr.write("\n===== logs of %s =====\n" % cls.__name__)
            c.dump_logs()
        if not (dump and harness.KEEP_TMP):
            shutil.rmtree(c.tmp, ignore_errors=True)
        cls.cluster = None
        if problems:
            raise AssertionError("; ".join(problems))

    @classmethod
    def tearDownClass(cls):
        cls._teardown(dump=cls.failed_any)

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result is not None else 0
        r = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            type(self).failed_any = True
        return r

    # ---- the check of one case

    def check_case(self, name):
        cs, o = self.CASES[name], self.outcome[name]
        waits = "; ".join(self.PARTS[p] for p in cs["part"]) or "nothing (works today)"
        head = "%s (examples/peers/%s; uses issue %s: %s)" % (name, cs["file"], self.ISSUE, waits)
        if o["submit_error"] is not None:
            self.fail("%s: droverd refused the spec: %s" % (head, o["submit_error"]))
        run = o["run"]
        got = {t["name"]: t["status"] for t in run["tasks"]}
        detail = {t["name"]: (t["status"], t.get("exit_code"), t.get("reason"))
                  for t in run["tasks"]}
        if cs["resume"]:
            r = o["resume"]
            self.assertIsNotNone(r, "%s: gate %r never reached SUSPENDED: %s"
                                 % (head, cs["resume"][0], detail))
            self.assertEqual(r.rc, 0, "%s: `drover run resume` failed: %r" % (head, r))
        self.assertIn(run["status"], harness.FINAL_RUN,
                      "%s: run did not finish within %ds: %s" % (head, WAIT_S, detail))
        self.assertEqual(sorted(got), sorted(cs["steps"]),
                         "%s: the run's tasks differ from the table" % head)
        for step, want in cs["steps"].items():
            want = want if isinstance(want, tuple) else (want,)
            self.assertIn(got[step], want, "%s: step %s is %s, the original says %s; all: %s"
                          % (head, step, got[step], "/".join(want), detail))
        self.assertEqual(run["status"], cs["run"], "%s: run status; steps: %s" % (head, detail))
        for step, params in cs["outputs"].items():
            out = harness.task(run, step)["outputs"]["params"]
            for k, v in params.items():
                self.assertEqual(out.get(k), v, "%s: output %s.%s (all: %r)" % (head, step, k, out))
        for step, frags in cs["reasons"].items():
            why = harness.task(run, step).get("reason") or ""
            for f in frags:
                self.assertIn(f, why, "%s: the reason of %s should name %r" % (head, step, f))
        if cs["check"]:
            cs["check"](self, run)


def add_case_tests(cls):
    """One test method per case of cls.CASES."""
    for name in cls.CASES:
        def test(self, name=name):
            self.check_case(name)
        test.__name__ = "test_" + name
        test.__doc__ = "%s: %s" % (name, cls.CASES[name]["file"])
        setattr(cls, test.__name__, test)


class PeerExamplesTest(SharedClusterCases):
    CASES, PARTS, ISSUE = CASES, PARTS, "15"


add_case_tests(PeerExamplesTest)


if __name__ == "__main__":
    harness.main()
