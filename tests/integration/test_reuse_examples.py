"""Reuse (issue 16): templates, groups, loops over sub-DAGs, recursion and
imports, on real daemons.

ReuseExamplesTest runs the drover versions of published Argo, Kubeflow and
Airflow examples that need reuse (examples/peers/*.yaml naming a template,
each file naming its source and the documented result) as
test_peer_examples.py does: one droverd and two agents for the class,
every case submitted at once, then one test method per case checking the
task names (`A.echo[0]`, `tails.tails.heads`), which ran and which were
SKIPPED, output params and the run status against what the original
documents.

ReuseRuntimeTest checks, each on a cluster of its own, what a table row
cannot: each item of a for_each over a sub-DAG runs its chain on its own
(a barrier between items that a by-stage expansion would deadlock on) and
`parallelism` counts items; a group's `finally` runs when the group ends,
before what comes after the group; max_depth (the spec's and droverd's
--max-depth) fails the step that nests too deep, with a reason; `logs`,
`artifacts`, `artifact get` and `run resume` take `STEP[2].CHILD` names;
steps inside groups are cached per task; imports are kept with the run;
kill -9 of droverd in the middle of a recursive run loses nothing and
starts no task twice (each step appends its starts and ends to a marker
file outside drover, as in test_exactly_once.py); a recursion whose task
names grow past 128 bytes still runs; a `when` comparing two run-time
values (as Argo's recursive-for-loop does) sees both; and the README's
worked example runs as written.
"""
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import test_peer_examples as peers  # noqa: E402
from harness import DroverTestCase, read_lines, task, wait_final, wait_until  # noqa: E402

S, F, K = "SUCCEEDED", "FAILED", "SKIPPED"
case = peers.case
PEERS = peers.PEERS

PARTS = {
    1: "step templates (templates:, uses:, with:, {{inputs.params.X}})",
    2: "DAG templates: groups STEP.CHILD, declared outputs, a group's finally",
    3: "for_each over a DAG template (STEP[i].CHILD), parallelism counting items",
    4: "recursion (a template using itself under `when`), max_depth",
    5: "imports: (libraries of templates)",
}


# ---------------------------------------------------------------- helpers

def times(run, name):
    t = task(run, name)
    return t.get("started_ms") or 0, t.get("finished_ms") or 0


def leaves(run, prefix):
    """Tasks under prefix ("A." or "A[") that ran a process (attempts > 0)."""
    return [t for t in run["tasks"] if t["name"].startswith(prefix) and t.get("attempts")]


def ran_after(*pairs):
    """Each (later, earlier) pair of name prefixes: every task under
    `later` that ran started no earlier than every task under `earlier`
    finished (droverd dispatches a dependant only once its needs ended)."""
    def check(t, run):
        for later, earlier in pairs:
            a, b = leaves(run, later), leaves(run, earlier)
            t.assertTrue(a and b, "no tasks ran under %r or %r: %s"
                         % (later, earlier, [x["name"] for x in run["tasks"]]))
            first = min(x["started_ms"] for x in a)
            last = max(x["finished_ms"] for x in b)
            t.assertGreaterEqual(first, last, "a task under %r started (%d) before every task "
                                 "under %r had ended (%d)" % (later, first, earlier, last))
    return check


def all_of(*checks):
    def check(t, run):
        for c in checks:
            c(t, run)
    return check


def json_param(name, param, value):
    def check(t, run):
        got = task(run, name)["outputs"]["params"].get(param)
        try:
            v = json.loads(got)
        except (TypeError, ValueError) as e:
            t.fail("%s.%s is not JSON: %r (%s)" % (name, param, got, e))
        t.assertEqual(v, value, "%s.%s = %r" % (name, param, got))
    return check


def logs_are(expect):
    """`drover logs RUN NAME` of member tasks (dotted, indexed names)."""
    def check(t, run):
        for name, text in expect.items():
            r = t.cluster.cli("logs", run["id"], name)
            t.assertEqual(r.rc, 0, "drover logs %s %s: %r" % (run["id"], name, r))
            t.assertEqual(r.out.strip(), text, "logs of %s" % name)
    return check


def artifact_is(step, name, content):
    def check(t, run):
        out = os.path.join(t.cluster.tmp, "art-%s-%s-%s" % (run["id"], step, name))
        r = t.cluster.cli("artifact", "get", run["id"], step, name, "-o", out)
        t.assertEqual(r.rc, 0, "drover artifact get %s %s %s: %r" % (run["id"], step, name, r))
        with open(out) as f:
            t.assertEqual(f.read(), content, "artifact %s of %s" % (name, step))
    return check


def floats_close(expect):
    def check(t, run):
        for (name, param), v in expect.items():
            got = task(run, name)["outputs"]["params"].get(param)
            t.assertAlmostEqual(float(got), v, places=6, msg="%s.%s = %r" % (name, param, got))
    return check


# ---------------------------------------------------------------- the table

def diamond_steps():
    steps = {}
    for node in "ABCD":
        steps[node] = steps[node + ".echo"] = S
        for i in range(3):
            steps["%s.echo[%d]" % (node, i)] = S
    return steps


def nested():
    steps = {}
    for outer in "ABCD":
        steps[outer] = S
        for inner in "ABCD":
            steps[outer + "." + inner] = S
    return steps


def exit_handlers(fail=None):
    steps = {}
    for node in "ABCD":
        if node == "D" and fail in ("B", "C"):
            steps[node] = K  # never instantiated: no members
            continue
        bad = node == fail
        steps[node] = F if bad else S
        steps[node + ".echo"] = F if bad else S
        steps[node + ".exit"] = S
    return steps


def coinflip(flips):
    """Task -> status for a recursive coinflip whose flips are `flips`."""
    steps, prefix = {}, ""
    for n, coin in enumerate(flips):
        steps[prefix + "flip-coin"] = S
        steps[prefix + "heads"] = S if coin == "heads" else K
        steps[prefix + "tails"] = S if coin == "tails" else K
        if coin == "heads":
            break
        prefix += "tails."
    return steps, prefix + "heads"


def recursive_loop(limit):
    steps, g = {}, "recurse"
    for k in range(limit):
        steps[g] = S
        steps[g + ".iterate-counter"] = S
        g += ".continue"
    steps[g] = K
    return steps


def train_until_good(levels):
    steps = {n: S for n in ("chicago-taxi-dataset", "pandas-transform-dataframe-in-csv-format",
                            "remove-header", "xgboost-train-on-csv")}
    g, outputs, mse = "train-until-low-error", {}, {}
    for k in range(levels):
        steps[g] = S
        for member in ("xgboost-train-on-csv", "xgboost-predict-on-csv",
                       "calculate-regression-metrics-from-csv"):
            steps[g + "." + member] = S
        outputs[g + ".xgboost-train-on-csv"] = {"iterations": str(150 + 50 * k)}
        mse[(g + ".calculate-regression-metrics-from-csv", "mean_squared_error")] = \
            0.5 ** (2 * ((150 + 50 * k) / 100 + 0.5))
        g += ".train-until-low-error"
    steps[g] = K
    return steps, outputs, mse


def collected():
    steps = {"for-loop-1": S, "add-pipeline": S, "add-pipeline.echo-and-return": S,
             "add-pipeline.add": S, "join-and-print": S}
    outputs = {}
    for i in range(3):
        g = "for-loop-1[%d]" % i
        steps[g] = steps[g + ".double-pipeline"] = S
        for j in range(3):
            steps["%s.double-pipeline[%d]" % (g, j)] = S
            steps["%s.double-pipeline[%d].double" % (g, j)] = S
            outputs["%s.double-pipeline[%d].double" % (g, j)] = {"Output": str(2 * (j + 1))}
    for k in range(4):
        steps["add-pipeline.echo-and-return[%d]" % k] = S
    outputs.update({"add-pipeline.add": {"Output": "36"}, "add-pipeline": {"out1": "36"},
                    "join-and-print": {"Output": "math"}})
    return steps, outputs


COIN_TTH, COIN_TTH_END = coinflip(["tails", "tails", "heads"])
TRAIN_STEPS, TRAIN_OUTPUTS, TRAIN_MSE = train_until_good(4)
COLLECTED_STEPS, COLLECTED_OUTPUTS = collected()

CASES = {
    # ---- Argo Workflows
    "argo_dag_diamond_steps": case(
        "argo-dag-diamond-steps.yaml", diamond_steps(), S, part=[1, 2],
        outputs={"%s.echo[%d]" % (n, i): {"said": "%s%d" % (n, i + 1)}
                 for n in "ABCD" for i in range(3)},
        check=all_of(json_param("A.echo", "said", ["A1", "A2", "A3"]),
                     ran_after(("B.", "A."), ("C.", "A."), ("D.", "B."), ("D.", "C.")))),
    "argo_workflow_template_dag": case(
        "argo-workflow-template-dag.yaml",
        dict({"A": S, "B": S, "C": S, "D": S},
             **{"C.inner-" + x: S for x in "ABCD"}), S, part=[1, 2, 5],
        outputs=dict({x: {"said": x} for x in "ABD"},
                     **{"C.inner-" + x: {"said": "inner-" + x} for x in "ABCD"}),
        check=ran_after(("D", "C."), ("C.inner-D", "C.inner-B"))),
    "argo_coinflip_recursive": case(
        "argo-coinflip-recursive.yaml", COIN_TTH, S, part=[2, 4],
        params={"coins": "tails tails heads"},
        outputs={COIN_TTH_END: {"said": "it was heads"}},
        reasons={"heads": ["tails"], "tails.tails.tails": ["heads"]}),
    "argo_coinflip_recursive_heads_first": case(
        "argo-coinflip-recursive.yaml", coinflip(["heads"])[0], S, part=[4],
        params={"coins": "heads"}, outputs={"heads": {"said": "it was heads"}}),
    "argo_recursive_for_loop": case(
        "argo-recursive-for-loop.yaml", recursive_loop(10), S, part=[1, 2, 4],
        reasons={"recurse" + ".continue" * 10: ["10 > 10"]},
        check=logs_are({"recurse.iterate-counter": "1",
                        "recurse" + ".continue" * 4 + ".iterate-counter": "5",
                        "recurse" + ".continue" * 9 + ".iterate-counter": "10"})),
    "argo_parameter_aggregation": case(
        "argo-parameter-aggregation.yaml",
        dict({"odd-or-even": S, "divide-by-2": S, "print": S, "print[0]": S, "print[1]": S,
              "divide-by-2[0]": K, "divide-by-2[1]": S, "divide-by-2[2]": K, "divide-by-2[3]": S},
             **{"odd-or-even[%d]" % i: S for i in range(4)}), S, part=[1],
        outputs={"odd-or-even[0]": {"num": "1", "evenness": "odd"},
                 "odd-or-even[3]": {"num": "4", "evenness": "even"},
                 "divide-by-2[1]": {"half": "1"}, "divide-by-2[3]": {"half": "2"},
                 "print[0]": {"said": "1"}, "print[1]": {"said": "2"}},
        reasons={"divide-by-2[0]": ["odd"]},
        check=json_param("odd-or-even", "evenness", ["odd", "even", "odd", "even"])),
    "argo_dag_nested": case(
        "argo-dag-nested.yaml", nested(), S, part=[1, 2],
        outputs={o + "." + i: {"said": o + i} for o in "ABCD" for i in "ABCD"},
        check=ran_after(("B.", "A."), ("C.", "A."), ("D.", "B."), ("D.", "C."),
                        ("A.D", "A.B"), ("A.D", "A.C"))),
    "argo_exit_handler_dag_level": case(
        "argo-exit-handler-dag-level.yaml", exit_handlers(), S, part=[2],
        outputs={n + ".exit": {"status": "succeeded"} for n in "ABCD"},
        check=ran_after(("B.", "A.exit"), ("C.", "A.exit"), ("A.exit", "A.echo"))),
    "argo_exit_handler_dag_level_failing": case(
        "argo-exit-handler-dag-level.yaml", exit_handlers(fail="C"), F, part=[2],
        params={"fail": "C"},
        outputs={"A.exit": {"status": "succeeded"}, "C.exit": {"status": "failed"}},
        reasons={"C": ["C.echo"], "D": ["C"]},
        check=ran_after(("C.exit", "C.echo"))),
    # ---- Kubeflow Pipelines
    "kfp_pipeline_in_pipeline": case(
        "kfp-pipeline-in-pipeline.yaml",
        {"print-op1": S, "inner-pipeline": S, "inner-pipeline.print-op1": S,
         "inner-pipeline.print-op2": S}, S, part=[1, 2],
        outputs={"print-op1": {"Output": "Hello"}, "inner-pipeline.print-op1": {"Output": "world"},
                 "inner-pipeline": {"msg": "world"}},
        check=all_of(artifact_is("inner-pipeline.print-op2", "data", "world\n"),
                     artifact_is("inner-pipeline", "data", "world\n"))),
    "kfp_pipeline_in_pipeline_complex": case(
        "kfp-pipeline-in-pipeline-complex.yaml",
        {"print-op1": S, "graph-component": S,
         "graph-component[0]": S, "graph-component[0].print-op1": S,
         "graph-component[0].print-op2": S, "graph-component[0].print-op3": K,
         "graph-component[1]": S, "graph-component[1].print-op1": S,
         "graph-component[1].print-op2": K, "graph-component[1].print-op3": S}, S,
        part=[1, 2, 3],
        outputs={"graph-component[0].print-op1": {"Output": "Hello"},
                 "graph-component[1].print-op1": {"Output": "world!"}},
        check=logs_are({"graph-component[0].print-op2": "world",
                        "graph-component[1].print-op3": "Bye!"})),
    "kfp_loop_parameter": case(
        "kfp-loop-parameter.yaml",
        dict({"print-op": S, "generate-op": S, "for-loop-1": S},
             **{"for-loop-1[%d]%s" % (i, m): S for i in range(4)
                for m in ("", ".concat-op", ".print-op-2")}), S, part=[1, 2, 3],
        outputs=dict({"print-op": {"Output": "this is a test for looping through parameters"}},
                     **{"for-loop-1[%d].print-op-2" % i: {"Output": "%d%d" % (i + 1, 10 * (i + 1))}
                        for i in range(4)}),
        check=json_param("for-loop-1", "Output", ["110", "220", "330", "440"])),
    "kfp_collected_pipeline_producer_consumer": case(
        "kfp-collected-pipeline-producer-consumer.yaml", COLLECTED_STEPS, S, part=[1, 2, 3],
        outputs=COLLECTED_OUTPUTS,
        check=json_param("add-pipeline", "out2", ["m", "a", "t", "h"])),
    "kfp_train_until_good": case(
        "kfp-train-until-good.yaml", TRAIN_STEPS, S, part=[1, 2, 4],
        outputs=TRAIN_OUTPUTS, check=floats_close(TRAIN_MSE)),
    "kfp_multiple_exit_handlers": case(
        "kfp-multiple-exit-handlers.yaml",
        {"exit-handler-1": F, "exit-handler-1.print-op": S, "exit-handler-1.fail-op": F,
         "exit-handler-1.exit-task": S, "exit-handler-2": S, "exit-handler-2.print-op": S,
         "exit-handler-2.exit-task": S, "exit-handler-3": S, "exit-handler-3.print-op": S,
         "exit-handler-3.exit-task": S}, F, part=[1, 2],
        outputs={"exit-handler-1.print-op": {"said": "Hello World!"},
                 "exit-handler-1.exit-task": {"said": "First exit handler has worked!"},
                 "exit-handler-2.exit-task": {"said": "Second exit handler has worked!"},
                 "exit-handler-3.exit-task": {"said": "Third exit handler has worked!"}},
        check=ran_after(("exit-handler-1.exit-task", "exit-handler-1.fail-op"))),
    # ---- Airflow
    "airflow_task_group": case(
        "airflow-task-group.yaml",
        {"start": S, "section_1": S, "section_1.task_1": S, "section_1.task_2": S,
         "section_1.task_3": S, "section_2": S, "section_2.task_1": S,
         "section_2.inner_section_2": S, "section_2.inner_section_2.task_2": S,
         "section_2.inner_section_2.task_3": S, "section_2.inner_section_2.task_4": S,
         "end": S}, S, part=[2],
        check=ran_after(("section_1.", "start"), ("section_2.", "section_1."),
                        ("end", "section_2."), ("section_1.task_2", "section_1.task_1"),
                        ("section_2.inner_section_2.task_4", "section_2.inner_section_2.task_2"))),
    "airflow_setup_teardown_task_group": case(
        "airflow-setup-teardown-task-group.yaml",
        {"root_setup": S, "normal": S, "root_teardown": S, "section_1": S,
         "section_1.taskgroup_setup": S, "section_1.normal": S,
         "section_1.taskgroup_teardown": S}, S, part=[2],
        outputs={"section_1.taskgroup_teardown": {"status": "succeeded"}},
        check=ran_after(("section_1.", "normal"),
                        ("section_1.taskgroup_teardown", "section_1.normal"))),
    "airflow_setup_teardown_task_group_failing": case(
        "airflow-setup-teardown-task-group.yaml",
        {"root_setup": S, "normal": S, "root_teardown": S, "section_1": F,
         "section_1.taskgroup_setup": S, "section_1.normal": F,
         "section_1.taskgroup_teardown": S}, F, part=[2],
        params={"fail_section": "true"},
        outputs={"section_1.taskgroup_teardown": {"status": "failed"}}),
}


class ReuseExamplesTest(peers.SharedClusterCases):
    CASES, PARTS, ISSUE = CASES, PARTS, "16"


peers.add_case_tests(ReuseExamplesTest)


# ---------------------------------------------------------------- runtime

CHAIN = """
name: chains
params: {dir: "", wait: "yes"}
templates:
  chain:
    inputs:
      params: {i: null}
    steps:
      - name: first
        env: {I: "{{inputs.params.i}}", D: "{{params.dir}}", WAIT: "{{params.wait}}"}
        script: |
          # item 1's first step waits (60 s at most) for item 0's second
          # one: a by-stage expansion (every first before any second)
          # would never let it finish
          if [ "$I" = 1 ] && [ "$WAIT" = yes ]; then
            n=0
            while [ ! -e "$D/second-0" ]; do
              n=$((n + 1)); [ $n -lt 1200 ] || { echo "item 0's second never ran"; exit 1; }
              sleep 0.05
            done
          fi
          touch "$D/first-$I"
      - name: second
        needs: [first]
        env: {I: "{{inputs.params.i}}", D: "{{params.dir}}"}
        script: touch "$D/second-$I"
steps:
  - name: sweep
    uses: chain
    for_each: ["0", "1"]
    parallelism: PARALLELISM
    with: {i: "{{item}}"}
"""

GROUP_FINALLY = """
name: group-finally
params: {dir: "", code: "0"}
templates:
  work:
    steps:
      - name: run
        env: {CODE: "{{params.code}}"}
        script: exit "$CODE"
    finally:
      - name: cleanup
        env: {D: "{{params.dir}}", STATUS: "{{run.status}}"}
        outputs: {params: [status]}
        script: |
          printf '%s' "$STATUS" > "$DROVER_OUTPUTS/status"
          touch "$D/cleaned"
steps:
  - {name: g, uses: work}
  - name: after
    needs: [g]
    trigger: all_done
    env: {D: "{{params.dir}}"}
    script: test -e "$D/cleaned"
finally:
  - name: notify
    env: {STATUS: "{{run.status}}"}
    outputs: {params: [status]}
    script: printf '%s' "$STATUS" > "$DROVER_OUTPUTS/status"
"""

NAMES = """
name: names
templates:
  body:
    inputs:
      params: {i: null}
    steps:
      - name: make
        env: {I: "{{inputs.params.i}}"}
        outputs: {artifacts: [out]}
        script: |
          echo "log line from item $I"
          echo "artifact of item $I" > "$DROVER_OUTPUTS/out"
      - name: approve
        needs: [make]
        suspend: true
        outputs: {params: [by]}
      - name: after
        needs: [approve]
        env: {BY: "{{steps.approve.outputs.params.by}}"}
        inputs: {artifacts: {data: make.out}}
        outputs: {params: [by]}
        script: |
          cat "$DROVER_INPUTS/data"
          printf '%s' "$BY" > "$DROVER_OUTPUTS/by"
steps:
  - name: sweep
    uses: body
    for_each: ["0", "1", "2"]
    with: {i: "{{item}}"}
"""

DEEP = """
name: deep
params: {m: "", levels: "6"}
templates:
  level:
    inputs:
      params: {n: null}
    steps:
      - name: work
        env: {M: "{{params.m}}", N: "{{inputs.params.n}}"}
        outputs: {params: [next]}
        script: |
          echo "S $DROVER_TASK $DROVER_ATTEMPT $$" >> "$M"
          sleep 0.4
          echo $((N + 1)) > "$DROVER_OUTPUTS/next"
          echo "E $DROVER_TASK $DROVER_ATTEMPT" >> "$M"
      - name: next
        needs: [work]
        when: "{{steps.work.outputs.params.next}} <= {{params.levels}}"
        uses: level
        with: {n: "{{steps.work.outputs.params.next}}"}
steps:
  - name: deep
    uses: level
    with: {n: "1"}
"""


def statuses(run):
    return {t["name"]: t["status"] for t in run["tasks"]}


def with_max_depth(path, n, dest):
    """A copy of the example at path with a top-level `max_depth: n`."""
    with open(path) as f:
        text = f.read()
    with open(dest, "w") as f:
        f.write(text.replace("\nparams:", "\nmax_depth: %d\nparams:" % n, 1))
    return dest


class ReuseRuntimeTest(DroverTestCase):
    def start(self, extra=(), cpus=4):
        self.c.start_droverd(extra=list(extra))
        self.c.start_agent("a1", cpus=cpus)

    def test_for_each_items_run_their_chains_independently(self):
        """for_each over a DAG template: item 1's first step can only end
        after item 0's second one ran, which a by-stage expansion would never
        allow; with parallelism 1 the items (whole sub-DAGs) run one after
        the other."""
        c = self.c
        self.start()
        d = c.path("barrier")
        os.makedirs(d)
        rid = c.submit(CHAIN.replace("PARALLELISM", "2"), params={"dir": d})
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        for i in (0, 1):
            for m in ("", ".first", ".second"):
                self.assertEqual(task(run, "sweep[%d]%s" % (i, m))["status"], S)
        self.assertEqual(sorted(os.listdir(d)), ["first-0", "first-1", "second-0", "second-1"])

        d2 = c.path("sequential")
        os.makedirs(d2)
        rid = c.submit(CHAIN.replace("PARALLELISM", "1"), params={"dir": d2, "wait": "no"})
        run = wait_final(c, rid, timeout=120)
        self.assertRunSucceeded(run)
        s1, _ = times(run, "sweep[1].first")
        _, e0 = times(run, "sweep[0].second")
        self.assertGreaterEqual(s1, e0, "parallelism: 1 counts items: item 1 started before "
                                "item 0's whole chain had ended")

    def test_group_finally_runs_when_the_group_ends(self):
        """A group's finally runs once its own steps have ended (succeeded or
        failed), before the steps after the group, with {{run.status}} the
        group's status; the run's finally still runs at the end."""
        c = self.c
        self.start()
        for code, want in (("0", S), ("3", F)):
            d = c.path("fin-" + code)
            os.makedirs(d)
            rid = c.submit(GROUP_FINALLY, params={"dir": d, "code": code})
            run = wait_final(c, rid)
            st = statuses(run)
            self.assertEqual(st, {"g": want, "g.run": want, "g.cleanup": S, "after": S,
                                  "notify": S}, run)
            self.assertEqual(run["status"], want)
            self.assertEqual(task(run, "g.cleanup")["outputs"]["params"]["status"], want.lower())
            self.assertEqual(task(run, "notify")["outputs"]["params"]["status"], want.lower())
            self.assertGreaterEqual(times(run, "after")[0], times(run, "g.cleanup")[1])
            self.assertGreaterEqual(times(run, "notify")[0], times(run, "after")[1])

    def test_max_depth_in_the_spec_fails_the_step_too_deep(self):
        c = self.c
        self.start()
        spec = with_max_depth(os.path.join(PEERS, "argo-coinflip-recursive.yaml"), 2,
                              c.path("coinflip-max-depth.yaml"))
        rid = c.submit(spec, params={"coins": "tails tails tails tails heads"})
        run = wait_final(c, rid)
        st = statuses(run)
        self.assertEqual(run["status"], F, st)
        for name in ("flip-coin", "tails.flip-coin", "tails.tails.flip-coin"):
            self.assertEqual(st.get(name), S, st)
        for name in ("tails", "tails.tails"):  # a member failed
            self.assertEqual(st.get(name), F, st)
        deep = task(run, "tails.tails.tails")
        self.assertEqual(deep["status"], F, st)
        for frag in ("coinflip", "max_depth 2"):
            self.assertIn(frag, deep["reason"] or "", deep)
        self.assertFalse([n for n in st if n.startswith("tails.tails.tails.")],
                         "nothing of the group too deep may run: %s" % st)

    def test_droverd_max_depth_caps_recursion(self):
        c = self.c
        self.start(extra=["--max-depth", "3"])
        rid = c.submit(os.path.join(PEERS, "argo-coinflip-recursive.yaml"),
                       params={"coins": "tails tails tails tails tails heads"})
        run = wait_final(c, rid)
        st = statuses(run)
        self.assertEqual(run["status"], F, st)
        ok = "tails.tails.tails"
        self.assertEqual(st.get(ok + ".flip-coin"), S, st)
        for name in ("tails", "tails.tails", ok):  # a member failed
            self.assertEqual(st.get(name), F, st)
        deep = task(run, ok + ".tails")
        self.assertEqual(deep["status"], F, st)
        self.assertIn("max_depth 3", deep["reason"] or "", deep)
        self.assertNotIn(ok + ".tails.flip-coin", st)

    def test_recursion_deeper_than_long_names(self):
        """A recursion well within max_depth runs however long its task
        names grow: 25 tails then heads makes names of 160 bytes
        (tails.tails....flip-coin), which the agent once refused as a path
        component ("invalid assignment: bad run id, task name ...")."""
        c = self.c
        self.start()
        flips = ["tails"] * 25 + ["heads"]
        rid = c.submit(os.path.join(PEERS, "argo-coinflip-recursive.yaml"),
                       params={"coins": " ".join(flips)})
        run = wait_final(c, rid, timeout=180)
        want, end = coinflip(flips)
        bad = ["%s: %s, %s" % (t["name"], t["status"], t.get("reason")) for t in run["tasks"]
               if t.get("attempts") and want.get(t["name"]) != t["status"]]
        self.assertEqual(bad, [], "steps that ran not as the coin says")
        self.assertEqual(statuses(run), want)
        self.assertEqual(run["status"], S)
        self.assertEqual(task(run, end)["outputs"]["params"]["said"], "it was heads")

    def test_member_names_in_logs_artifacts_and_resume(self):
        """logs, artifacts, artifact get and run resume take the names of
        tasks inside for_each groups (sweep[2].make)."""
        c = self.c
        self.start()
        rid = c.submit(NAMES)
        for i in range(3):
            c.wait_task_status(rid, "sweep[%d].approve" % i, "SUSPENDED")
        r = c.cli("logs", rid, "sweep[2].make")
        self.assertEqual((r.rc, r.out.strip()), (0, "log line from item 2"), r)
        r = c.cli("artifacts", rid, "sweep[2].make", "-o", "json")
        self.assertEqual(r.rc, 0, r)
        self.assertIn('"out"', r.out)
        out = c.path("out-2")
        r = c.cli("artifact", "get", rid, "sweep[2].make", "out", "-o", out)
        self.assertEqual(r.rc, 0, r)
        with open(out) as f:
            self.assertEqual(f.read(), "artifact of item 2\n")
        r = c.cli("run", "resume", rid, "sweep[7].approve")
        self.assertEqual(r.rc, 3, "no such task: %r" % r)
        r = c.cli("logs", rid, "sweep[2].nope")
        self.assertEqual(r.rc, 3, "no such task: %r" % r)
        for i, args in ((2, ["-p", "by=alice"]), (0, ["-p", "by=bob"]), (1, ["--reject"])):
            r = c.cli("run", "resume", rid, "sweep[%d].approve" % i, *args)
            self.assertEqual(r.rc, 0, r)
        run = wait_final(c, rid)
        st = statuses(run)
        self.assertEqual(run["status"], F, st)
        self.assertEqual((st["sweep"], st["sweep[0]"], st["sweep[1]"], st["sweep[2]"]),
                         (F, S, F, S), st)
        self.assertEqual(st["sweep[1].after"], K, st)
        self.assertEqual(task(run, "sweep[2].after")["outputs"]["params"]["by"], "alice")
        self.assertEqual(task(run, "sweep[0].after")["outputs"]["params"]["by"], "bob")
        r = c.cli("logs", rid, "sweep[0].after")
        self.assertEqual((r.rc, r.out.strip()), (0, "artifact of item 0"), r)

    def test_steps_inside_groups_are_cached_per_task(self):
        c = self.c
        self.start()
        spec = os.path.join(PEERS, "argo-dag-nested.yaml")
        first = wait_final(c, c.submit(spec))
        self.assertRunSucceeded(first)
        run = wait_final(c, c.submit(spec))
        st = statuses(run)
        self.assertEqual(run["status"], S, st)
        for o in "ABCD":
            self.assertIn(st[o], (S, "CACHED"), st)
            for i in "ABCD":
                self.assertEqual(st[o + "." + i], "CACHED", st)
                self.assertEqual(task(run, o + "." + i)["outputs"]["params"]["said"], o + i)

    def test_imports_are_kept_with_the_run(self):
        """drover submit sends the imported files; droverd keeps them with
        the run (drover run spec -o DIR gives them back after the files are
        gone); a missing import and an error inside an imported file name
        that file."""
        c = self.c
        self.start()
        src = c.path("src")
        os.makedirs(os.path.join(src, "lib"))
        main_spec = os.path.join(src, "argo-workflow-template-dag.yaml")
        shutil.copy(os.path.join(PEERS, "argo-workflow-template-dag.yaml"), main_spec)
        libs = ("workflow-template-print-message.yaml", "workflow-template-inner-dag.yaml")
        texts = {}
        for name in libs:
            shutil.copy(os.path.join(PEERS, "lib", name), os.path.join(src, "lib", name))
            with open(os.path.join(src, "lib", name)) as f:
                texts["lib/" + name] = f.read()
        rid = c.submit(main_spec)
        shutil.rmtree(os.path.join(src, "lib"))
        self.assertRunSucceeded(wait_final(c, rid))
        back = c.path("back")
        r = c.cli("run", "spec", rid, "-o", back)
        self.assertEqual(r.rc, 0, r)
        for rel, text in texts.items():
            with open(os.path.join(back, rel)) as f:
                self.assertEqual(f.read(), text, rel)

        r = c.cli("submit", main_spec)  # lib/ is gone now
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("lib/workflow-template-print-message.yaml", r.err, r)

        os.makedirs(os.path.join(src, "lib"))
        for rel, text in texts.items():
            if rel.endswith("print-message.yaml"):
                text = text.replace("    outputs:", "    outptus:")
            with open(os.path.join(src, rel), "w") as f:
                f.write(text)
        r = c.cli("submit", main_spec)
        self.assertEqual(r.rc, 6, r)
        self.assertRegex(r.err, r"workflow-template-print-message\.yaml:\d+:\d+: .*outptus", r)

    def test_when_with_two_run_time_references(self):
        """Argo's recursive-for-loop compares two run-time values
        ({{steps.iterate-counter.outputs.result}} < {{inputs.params.limit}}):
        the first value must still be there when the second is read
        (droverd used to free it first: 1 < 10 was false, and a
        heap-use-after-free under ASan)."""
        c = self.c
        self.start()
        rid = c.submit(
            "name: when-two\n"
            "steps:\n"
            "  - {name: a, command: [echo, '1']}\n"
            "  - {name: b, command: [echo, '10']}\n"
            "  - name: lt\n"
            "    needs: [a, b]\n"
            "    when: \"{{steps.a.outputs.result}} < {{steps.b.outputs.result}}\"\n"
            "    command: ['true']\n"
            "  - name: gt\n"
            "    needs: [a, b]\n"
            "    when: \"{{steps.a.outputs.result}} > {{steps.b.outputs.result}}\"\n"
            "    command: ['true']\n")
        run = wait_final(c, rid)
        self.assertEqual(statuses(run), {"a": S, "b": S, "lt": S, "gt": K}, run)

    def test_the_readme_worked_example_runs(self):
        """README "Templates, groups and imports": its library and sweep
        run as written, with the task names and outputs it says."""
        c = self.c
        self.start()
        with open(os.path.join(harness.SOURCE_DIR, "README.md")) as f:
            readme = f.read()
        at = readme.index("## Templates, groups and imports")
        blocks, pos = [], at
        for _ in range(2):
            start = readme.index("```yaml\n", pos) + len("```yaml\n")
            pos = readme.index("```", start)
            blocks.append(readme[start:pos])
        self.assertTrue(blocks[0].startswith("# lib/train.yaml"), blocks[0][:40])
        self.assertTrue(blocks[1].startswith("# sweep.yaml"), blocks[1][:40])
        os.makedirs(c.path("readme", "lib"))
        with open(c.path("readme", "lib", "train.yaml"), "w") as f:
            f.write(blocks[0])
        spec = c.path("readme", "sweep.yaml")
        with open(spec, "w") as f:
            f.write(blocks[1])
        run = wait_final(c, c.submit(spec))
        self.assertRunSucceeded(run)
        names = {t["name"] for t in run["tasks"]}
        for i in (0, 1):
            for m in ("", ".train", ".eval", ".cleanup"):
                self.assertIn("sweep[%d]%s" % (i, m), names)
        self.assertEqual(json.loads(task(run, "sweep")["outputs"]["params"]["best"]),
                         ["0.9", "0.99"])
        r = c.cli("logs", run["id"], "report")
        self.assertEqual(r.out.strip(), 'best per lr ["0.9","0.99"]', r)
        r = c.cli("logs", run["id"], "sweep[1].cleanup")
        self.assertEqual(r.out.strip(), "group ended succeeded", r)

    def test_kill_droverd_in_the_middle_of_a_recursive_run(self):
        """kill -9 of droverd twice while a recursion six groups deep
        runs: the run ends as written, every level exactly once, and no
        step started twice (the marker file and each task's history)."""
        c = self.c
        self.start(extra=["--agent-timeout", "60s"])
        m = c.path("marker")
        rid = c.submit(DEEP, params={"m": m})
        names = ["deep" + ".next" * k + ".work" for k in range(6)]

        def started(name):
            return [x for x in read_lines(m) if x.startswith("S %s " % name)]

        def ended(name):
            return [x for x in read_lines(m) if x.startswith("E %s " % name)]

        wait_until(lambda: started(names[2]), 60, what="level 3 to start")
        c.kill_droverd()
        wait_until(lambda: ended(names[2]), 60, what="level 3 to end while droverd is down")
        c.start_droverd()
        wait_until(lambda: started(names[4]), 60, what="level 5 to start")
        c.kill_droverd()
        c.start_droverd()
        run = wait_final(c, rid, timeout=120)
        st = statuses(run)
        self.assertEqual(run["status"], S, st)
        want = {}
        for k in range(6):
            g = "deep" + ".next" * k
            want[g] = want[g + ".work"] = S
        want["deep" + ".next" * 6] = K
        self.assertEqual(st, want)
        lines = read_lines(m)
        for name in names:
            self.assertEqual(len(started(name)), 1, "%s started %d times: %s"
                             % (name, len(started(name)), lines))
            self.assertEqual(len(ended(name)), 1, lines)
            t = task(run, name)
            self.assertEqual((t["attempts"], len(t["history"])), (1, 1), t)


if __name__ == "__main__":
    harness.main()
