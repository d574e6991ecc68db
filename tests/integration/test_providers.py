"""Providers (providers/, README "Providers"): the programs droverd's node
pools will call to create, delete and list nodes, driven here by hand
through their protocol (JSON on stdin, JSON on stdout, a one-line message
on stderr and a non-zero exit on failure).

- `local`, against a real droverd: the agents it starts register with
  their sizes and labels and run a step; `list` works from a later
  invocation (the state file, not the process, knows the nodes); a second
  `create` of the same names starts nothing; a node whose agent died lists
  as gone and a create restarts it; `delete` stops the agent and removes
  its directory; bad requests are refused with a message and change
  nothing. CURVE is off and no join token is given (tokens are another
  part of the fleets work).
- `aws`, `gcp`, `azure`: NO CLOUD IS REACHABLE HERE. Each is run with fake
  `aws` / `gcloud` / `az` programs first on PATH (tests/integration/fakes/
  fakecloud.py) that record every call (argv, and the user-data file's
  text) and answer with the JSON shapes the real CLIs document; the tests
  assert the calls (spot options, tags or labels, user-data carrying the
  join token, endpoint and droverd's key) and that the answers were parsed.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import (SCALE, SOURCE_DIR, DroverTestCase, bin_path, check_sanitizer_text,
                     free_port, main, pid_alive, wait_until)

PROVIDERS = os.path.join(SOURCE_DIR, "providers")
FAKES = os.path.join(SOURCE_DIR, "tests", "integration", "fakes")
SERVER_KEY = "M2VCD&7rNeNDv2Y-.-03GxXojM2W#Cb^HB?rX8{t"


def run_provider(name, verb, req, args=(), env=None, raw=None, timeout=60):
    """Run providers/NAME VERB ARGS with req (a dict, or raw text) on stdin;
    return (rc, parsed stdout or None, stderr)."""
    data = raw if raw is not None else json.dumps(req)
    p = subprocess.run([os.path.join(PROVIDERS, name)] + ([verb] if verb else []) + list(args),
                       input=data.encode(), capture_output=True, env=env,
                       timeout=timeout * SCALE)
    out = p.stdout.decode()
    parsed = json.loads(out) if p.returncode == 0 else None
    if p.returncode != 0:
        assert out == "", "a failing provider printed on stdout: %r" % out
    return p.returncode, parsed, p.stderr.decode()


def create_req(pool, names, tokens=None, spot=False, endpoint="tcp://10.0.0.1:7070",
               public_key=SERVER_KEY, **node):
    r = {"pool": pool, "names": names,
         "node": dict({"cpu": 2, "memory": "512Mi", "gpu": 0, "labels": {"pool": pool}}, **node),
         "spot": spot, "price": 0.45, "scheduler": {"endpoint": endpoint,
                                                     "public_key": public_key},
         "user_data": ""}
    if tokens:
        r["join_tokens"] = tokens
    return r


class LocalProvider(DroverTestCase):
    def setUp(self):
        super().setUp()
        self.state = self.c.path("provider-local")

    def local(self, verb, req, extra=(), raw=None, agent_args=("--heartbeat", "200ms")):
        args = ["--state-dir", self.state, "--agent", bin_path("drover-agent"),
                "--kill-grace", "5"] + list(extra) + ["--"] + list(agent_args)
        # the agents inherit DROVER_IT_TOKEN: the harness kills any left over
        return run_provider("local", verb, req, args, env=self.c.env, raw=raw)

    def check_agent_logs(self):
        """Sanitizer reports in the logs of the agents the provider started
        fail the test (read before a delete removes them)."""
        if os.path.isdir(self.state):
            for name in os.listdir(self.state):
                log = os.path.join(self.state, name, "agent.log")
                if os.path.exists(log):
                    with open(log, errors="replace") as f:
                        check_sanitizer_text(f.read(), "agent %s" % name)

    def ok(self, verb, req, **kw):
        if verb == "delete":
            self.check_agent_logs()
        rc, out, err = self.local(verb, req, **kw)
        self.assertEqual(rc, 0, "local %s failed: %s" % (verb, err))
        return out

    def req(self, names, **kw):
        return create_req("cpu", names, endpoint=self.c.agents_endpoint, public_key="", **kw)

    def pids(self, out):
        return {n["name"]: int(n["id"].split(":", 1)[1]) for n in out["nodes"]}

    def test_nodes_register_run_a_step_and_go_on_delete(self):
        c = self.c
        c.start_droverd()
        out = self.ok("create", self.req(["cpu-a1", "cpu-a2"]))
        self.assertEqual([(n["name"], n["state"]) for n in out["nodes"]],
                         [("cpu-a1", "booting"), ("cpu-a2", "booting")])
        pids = self.pids(out)
        for name in pids:
            a = c.wait_agent_connected(name)  # with the node's sizes and labels
            self.assertEqual((a["labels"].get("pool"), a["cpu_milli"], a["memory_bytes"],
                              a["gpus"], a["price"]), ("cpu", 2000, 512 << 20, 0, 0.45), a)
        # a step placed by the pool's label runs on one of them
        rid = c.submit({"name": "on-pool", "steps": [
            {"name": "hello", "command": ["sh", "-c", "echo hello from $(pwd)"],
             "placement": {"labels": {"pool": "cpu"}}}]})
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertIn(run["tasks"][0]["agent"], pids)
        # list from a new invocation: both running; create again: same
        # processes, nothing started
        listed = self.ok("list", {"pool": "cpu"})
        self.assertEqual({n["name"]: n["state"] for n in listed["nodes"]},
                         {"cpu-a1": "running", "cpu-a2": "running"})
        self.assertEqual(self.pids(listed), pids)
        again = self.ok("create", self.req(["cpu-a1", "cpu-a2"]))
        self.assertEqual(self.pids(again), pids)
        self.assertEqual({n["state"] for n in again["nodes"]}, {"running"})
        self.assertEqual(sorted(a["name"] for a in c.agents_list()), ["cpu-a1", "cpu-a2"])
        # another pool sees none of them
        self.assertEqual(self.ok("list", {"pool": "other"}), {"nodes": []})
        # delete one: its agent stops, droverd loses it, its dir goes
        out = self.ok("delete", {"pool": "cpu", "names": ["cpu-a1"]})
        self.assertEqual(out, {"deleted": ["cpu-a1"]})
        self.assertFalse(pid_alive(pids["cpu-a1"]))
        self.assertFalse(os.path.exists(os.path.join(self.state, "cpu-a1")))
        wait_until(lambda: not (c.agent("cpu-a1") or {}).get("connected"), timeout=30,
                   what="droverd to see cpu-a1 gone")
        self.assertEqual(self.ok("list", {"pool": "cpu"})["nodes"],
                         [{"name": "cpu-a2", "id": "pid:%d" % pids["cpu-a2"], "state": "running"}])
        # deleting what is gone is a success; a name of another pool is not ours
        self.assertEqual(self.ok("delete", {"pool": "cpu", "names": ["cpu-a1", "never"]}),
                         {"deleted": ["cpu-a1", "never"]})
        rc, _, err = self.local("delete", {"pool": "other", "names": ["cpu-a2"]})
        self.assertNotEqual(rc, 0)
        self.assertIn("belongs to pool cpu", err)
        self.assertTrue(pid_alive(pids["cpu-a2"]))
        self.ok("delete", {"pool": "cpu", "names": ["cpu-a2"]})
        self.assertFalse(pid_alive(pids["cpu-a2"]))
        self.assertEqual(self.ok("list", {"pool": "cpu"}), {"nodes": []})

    def test_a_dead_agent_lists_gone_and_create_restarts_it(self):
        c = self.c
        c.start_droverd()
        pid = self.pids(self.ok("create", self.req(["cpu-b1"])))["cpu-b1"]
        c.wait_agent_connected("cpu-b1")
        os.kill(pid, signal.SIGKILL)  # the node's machine died
        wait_until(lambda: not pid_alive(pid), timeout=10, what="agent to die")
        self.assertEqual(self.ok("list", {"pool": "cpu"})["nodes"],
                         [{"name": "cpu-b1", "id": "pid:%d" % pid, "state": "gone"}])
        out = self.ok("create", self.req(["cpu-b1"]))
        self.assertEqual(out["nodes"][0]["state"], "booting")
        new = self.pids(out)["cpu-b1"]
        self.assertNotEqual(new, pid)
        wait_until(lambda: (c.agent("cpu-b1") or {}).get("connected"), timeout=30,
                   what="the restarted cpu-b1 to register")
        self.ok("delete", {"pool": "cpu", "names": ["cpu-b1"]})
        self.assertFalse(pid_alive(new))

    def test_with_curve_on_a_node_connects_with_its_own_key(self):
        c = self.c
        keys, auth = c.path("keys"), c.path("authorized-keys")
        os.makedirs(auth)
        for name in ("droverd", "cpu-k1"):
            r = c.cli("keygen", name, "--dir", keys, api=False)
            self.assertEqual(r.rc, 0, r)
        shutil.copy(os.path.join(keys, "cpu-k1.key"), auth)
        c.start_droverd(extra=["--key", os.path.join(keys, "droverd.key_secret"),
                               "--authorized-keys", auth])
        with open(os.path.join(keys, "droverd.key")) as f:
            pub = re.search(r'public-key = "(.{40})"', f.read()).group(1)
        req = create_req("cpu", ["cpu-k1"], endpoint=c.agents_endpoint, public_key=pub)
        pid = self.pids(self.ok("create", req, extra=["--key-dir", keys]))["cpu-k1"]
        c.wait_agent_connected("cpu-k1")  # the key file written from public_key loads
        rid = c.submit({"name": "curve", "steps": [
            {"name": "s", "command": ["true"], "placement": {"labels": {"pool": "cpu"}}}]})
        self.assertRunSucceeded(c.wait_run_final(rid))
        # no token and no key for the node: refused before anything starts
        rc, _, err = self.local("create", dict(req, names=["cpu-k2"]), extra=["--key-dir", keys])
        self.assertEqual(rc, 2, err)
        self.assertIn("cpu-k2.key_secret", err)
        self.assertNotIn("cpu-k2", json.dumps(self.ok("list", {"pool": "cpu"})))
        self.ok("delete", {"pool": "cpu", "names": ["cpu-k1"]})
        self.assertFalse(pid_alive(pid))

    def test_an_agent_that_refuses_its_settings_is_a_create_error(self):
        self.c.port = free_port()  # no droverd: this agent exits before connecting
        rc, out, err = self.local("create", self.req(["cpu-c1"]), extra=["--check-start", "5"],
                                  agent_args=["--runtime", "bogus"])
        self.assertEqual(rc, 1, err)
        self.assertIn("cpu-c1", err)
        self.assertIn("exited at start", err)
        self.assertIn("unknown runtime 'bogus'", err)  # the agent's own reason
        self.assertEqual(self.ok("list", {"pool": "cpu"}), {"nodes": []})

    def test_bad_requests_are_refused_with_a_message_and_change_nothing(self):
        self.c.port = free_port()  # requests name an endpoint; nothing connects
        good = self.req(["cpu-d1"])
        cases = [
            ("create", None, "{not json", "not JSON"),
            ("frobnicate", {"pool": "cpu"}, None, '"frobnicate" unknown'),
            (None, {"pool": "cpu"}, None, "usage: local create|delete|list"),
            ("create", [1, 2], None, "must be a JSON object"),
            ("list", {}, None, "pool"),
            ("create", dict(good, names=[]), None, '"names"'),
            ("create", dict(good, names=["../etc"]), None, '"../etc"'),
            ("create", dict(good, names=["a", "a"]), None, "appears twice"),
            ("create", dict(good, join_tokens={"zz": "drv1.x.y"}), None, '"zz" is not one of'),
            ("create", dict(good, scheduler={}), None, "scheduler"),
            ("create", dict(good, node={"cpu": -1}), None, "node.cpu"),
            ("create", dict(good, node={"memory": "lots"}), None, "node.memory"),
            ("create", dict(good, spot="yes"), None, '"spot"'),
            ("delete", {"pool": "cpu", "names": "cpu-d1"}, None, '"names"'),
        ]
        for verb, req, raw, needle in cases:
            with self.subTest(verb=verb, req=req, raw=raw):
                rc, out, err = self.local(verb, req, raw=raw)
                self.assertEqual(rc, 2, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertTrue(err.startswith("local: "), err)
                self.assertIn(needle, err)
        rc, _, err = run_provider("local", "list", {"pool": "cpu"}, ["--nope"], env=self.c.env)
        self.assertEqual(rc, 2)
        self.assertIn("--nope", err)
        self.assertFalse(os.path.exists(os.path.join(self.state, "nodes.json")))


class CloudProviders(unittest.TestCase):
    """aws, gcp, azure against the fake CLIs in tests/integration/fakes (no
    cloud is reachable here: the fakes follow the CLIs' documented shapes)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="drover-fakecloud-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.env = dict(os.environ, FAKE_CLOUD_DIR=self.dir,
                        PATH=FAKES + os.pathsep + os.environ.get("PATH", ""))
        self.env.pop("DROVER_PROVIDER_TIMEOUT", None)

    def run_ok(self, name, verb, req, args):
        rc, out, err = run_provider(name, verb, req, args, env=self.env)
        self.assertEqual(rc, 0, "%s %s failed: %s" % (name, verb, err))
        self.assertEqual(err, "")
        return out

    def calls(self, *words):
        """Recorded calls whose argv has every word (all calls without)."""
        try:
            with open(os.path.join(self.dir, "calls.jsonl")) as f:
                calls = [json.loads(line) for line in f]
        except FileNotFoundError:
            return []
        return [c for c in calls if all(w in c["argv"] for w in words)]

    def state(self, cli):
        with open(os.path.join(self.dir, "state.json")) as f:
            return json.load(f)[cli]

    def fail_next(self, key, rc, stderr):
        with open(os.path.join(self.dir, "fail.json"), "w") as f:
            json.dump({key: {"rc": rc, "stderr": stderr}}, f)

    def no_failures(self):
        os.unlink(os.path.join(self.dir, "fail.json"))

    def check_user_data(self, text, name, token, metadata):
        self.assertTrue(text.startswith("#cloud-config\n"), text)
        self.assertIn('join-token: "%s"' % token, text)
        self.assertIn('name: "%s"' % name, text)
        self.assertIn('scheduler: "tcp://10.0.0.1:7070"', text)
        self.assertIn('public-key = "%s"' % SERVER_KEY, text)
        self.assertIn('scheduler-key: "/etc/drover/keys/droverd.key"', text)
        self.assertIn('spot: "true"', text)
        self.assertIn('labels: "gpu.model=A10G,pool=train"', text)
        self.assertIn('%s: "on"' % metadata, text)
        self.assertIn("  - drover-agent\n", text)
        self.assertNotRegex(text, r"@[A-Z_]+@")  # every placeholder filled

    def spot_req(self, pool="gpu-spot", names=("gpu-spot-7f3a", "gpu-spot-9b21")):
        return create_req(pool, list(names), spot=True,
                          tokens={n: "drv1.%08x.secret-%s" % (i + 10, n)
                                  for i, n in enumerate(names)},
                          cpu=8, memory="60Gi", gpu=1,
                          labels={"gpu.model": "A10G", "pool": "train"})

    def test_aws(self):
        args = ["--launch-template", "lt-0123456789abcdef0", "--region", "us-east-1"]
        out = self.run_ok("aws", "create", self.spot_req(), args)
        runs = self.calls("run-instances")
        self.assertEqual(len(runs), 2)
        ids = {i["Tags"][1]["Value"]: i["InstanceId"] for i in self.state("aws")}
        self.assertEqual(out["nodes"], [{"name": "gpu-spot-7f3a", "id": ids["gpu-spot-7f3a"],
                                         "state": "booting"},
                                        {"name": "gpu-spot-9b21", "id": ids["gpu-spot-9b21"],
                                         "state": "booting"}])
        for call, name in zip(runs, ["gpu-spot-7f3a", "gpu-spot-9b21"]):
            a = call["argv"]
            self.assertEqual(a[:4], ["--region", "us-east-1", "ec2", "run-instances"])
            self.assertEqual(a[a.index("--launch-template") + 1],
                             "LaunchTemplateId=lt-0123456789abcdef0")
            self.assertEqual(a[a.index("--count") + 1], "1")
            market = json.loads(a[a.index("--instance-market-options") + 1])
            self.assertEqual(market, {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}})
            tags = json.loads(a[a.index("--tag-specifications") + 1])
            self.assertEqual(tags[0], {"ResourceType": "instance", "Tags": [
                {"Key": "drover:pool", "Value": "gpu-spot"},
                {"Key": "drover:node", "Value": name}]})
            self.assertTrue(a[a.index("--client-token") + 1])
            ud = a[a.index("--user-data") + 1]
            self.assertTrue(ud.startswith("file://"), ud)
            self.check_user_data(call["files"][ud[len("file://"):]], name,
                                 "drv1.%08x.secret-%s" % (10 + runs.index(call), name),
                                 "aws-metadata")
            self.assertFalse(os.path.exists(ud[len("file://"):]), "user-data file left behind")
        # a retry creates nothing and returns the same instances
        again = self.run_ok("aws", "create", self.spot_req(), args)
        self.assertEqual(len(self.calls("run-instances")), 2)
        self.assertEqual([n["id"] for n in again["nodes"]], [n["id"] for n in out["nodes"]])
        self.assertEqual(self.calls("describe-instances")[0]["argv"][-4:],
                         ["--filters", "Name=tag:drover:pool,Values=gpu-spot", "--output", "json"])
        # on demand: no market options
        self.run_ok("aws", "create", create_req("cpu", ["cpu-1"]), args)
        self.assertNotIn("--instance-market-options", self.calls("run-instances")[-1]["argv"])
        # delete terminates by the instance found by tag; gone ones count
        out = self.run_ok("aws", "delete", {"pool": "gpu-spot",
                                            "names": ["gpu-spot-7f3a", "never-made"]}, args)
        self.assertEqual(out, {"deleted": ["gpu-spot-7f3a", "never-made"]})
        term = self.calls("terminate-instances")
        self.assertEqual(len(term), 1)
        self.assertEqual(term[0]["argv"][term[0]["argv"].index("--instance-ids") + 1:][:2],
                         [ids["gpu-spot-7f3a"], "--output"])
        listed = self.run_ok("aws", "list", {"pool": "gpu-spot"}, args)
        self.assertEqual({n["name"]: n["state"] for n in listed["nodes"]},
                         {"gpu-spot-7f3a": "gone", "gpu-spot-9b21": "running"})
        self.run_ok("aws", "delete", {"pool": "gpu-spot", "names": ["gpu-spot-7f3a"]}, args)
        self.assertEqual(len(self.calls("terminate-instances")), 1)
        # EC2's refusal reaches stderr in one line, with a non-zero exit
        self.fail_next("aws run-instances", 254,
                       "\nAn error occurred (InsufficientInstanceCapacity) when calling the "
                       "RunInstances operation (reached max retries: 2): We currently do not "
                       "have sufficient g5.2xlarge capacity in the Availability Zone you "
                       "requested (us-east-1a).")
        rc, _, err = run_provider("aws", "create", self.spot_req(names=["gpu-spot-new1"]), args,
                                  env=self.env)
        self.assertEqual(rc, 1)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("aws ec2 run-instances failed (exit 254)", err)
        self.assertIn("InsufficientInstanceCapacity", err)
        self.no_failures()
        rc, _, err = run_provider("aws", "create", self.spot_req(), [], env=self.env)
        self.assertEqual(rc, 2)
        self.assertIn("--launch-template", err)

    def test_gcp(self):
        args = ["--zone", "us-central1-a", "--project", "ml-prod",
                "--source-instance-template", "drover-gpu"]
        out = self.run_ok("gcp", "create", self.spot_req(), args)
        creates = self.calls("create")
        self.assertEqual(len(creates), 2)
        ids = {i["name"]: i["id"] for i in self.state("gcloud")}
        self.assertEqual([(n["name"], n["id"], n["state"]) for n in out["nodes"]],
                         [("gpu-spot-7f3a", ids["gpu-spot-7f3a"], "booting"),
                          ("gpu-spot-9b21", ids["gpu-spot-9b21"], "booting")])
        for i, (call, name) in enumerate(zip(creates, ["gpu-spot-7f3a", "gpu-spot-9b21"])):
            a = call["argv"]
            self.assertEqual(a[:6], ["--project", "ml-prod", "compute", "instances", "create",
                                     name])
            for flag in ("--provisioning-model=SPOT", "--instance-termination-action=DELETE",
                         "--labels=drover-pool=gpu-spot,drover-node=%s" % name, "--format=json"):
                self.assertIn(flag, a)
            self.assertEqual(a[a.index("--zone") + 1], "us-central1-a")
            self.assertEqual(a[a.index("--source-instance-template") + 1], "drover-gpu")
            md = [x for x in a if x.startswith("--metadata-from-file=user-data=")]
            self.assertEqual(len(md), 1, a)
            path = md[0].split("=", 2)[2]
            self.check_user_data(call["files"][path], name, "drv1.%08x.secret-%s" % (10 + i, name),
                                 "gcp-metadata")
        again = self.run_ok("gcp", "create", self.spot_req(), args)
        self.assertEqual(len(self.calls("create")), 2)
        self.assertEqual([n["id"] for n in again["nodes"]], [n["id"] for n in out["nodes"]])
        self.assertIn("--filter=labels.drover-pool=gpu-spot", self.calls("list")[0]["argv"])
        self.run_ok("gcp", "create", create_req("cpu", ["cpu-1"]), args)
        self.assertNotIn("--provisioning-model=SPOT", self.calls("create")[-1]["argv"])
        out = self.run_ok("gcp", "delete", {"pool": "gpu-spot",
                                            "names": ["gpu-spot-7f3a", "never-made"]}, args)
        self.assertEqual(out["deleted"], ["gpu-spot-7f3a", "never-made"])
        d = self.calls("delete")
        self.assertEqual(len(d), 1)
        self.assertEqual(d[0]["argv"][2:6], ["compute", "instances", "delete", "gpu-spot-7f3a"])
        self.assertIn("--quiet", d[0]["argv"])
        listed = self.run_ok("gcp", "list", {"pool": "gpu-spot"}, args)
        self.assertEqual([(n["name"], n["state"]) for n in listed["nodes"]],
                         [("gpu-spot-9b21", "running")])
        # GCE names are lowercase: refused before any call
        n = len(self.calls())
        rc, _, err = run_provider("gcp", "create", create_req("GPU", ["GPU-1"]), args,
                                  env=self.env)
        self.assertEqual(rc, 2)
        self.assertIn("lowercase", err)
        self.assertEqual(len(self.calls()), n)
        self.fail_next("gcloud create", 1, "ERROR: (gcloud.compute.instances.create) Could not "
                       "fetch resource:\n - The zone 'projects/ml-prod/zones/us-central1-a' does "
                       "not have enough resources available to fulfill the request.")
        rc, _, err = run_provider("gcp", "create", self.spot_req(names=["gpu-spot-new1"]), args,
                                  env=self.env)
        self.assertEqual(rc, 1)
        self.assertIn("does not have enough resources", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_azure(self):
        args = ["--resource-group", "drover-rg", "--size", "Standard_NV36ads_A10_v5",
                "--", "--ssh-key-values", "/root/.ssh/id_ed25519.pub"]
        out = self.run_ok("azure", "create", self.spot_req(), args)
        creates = self.calls("vm", "create")
        self.assertEqual(len(creates), 2)
        rg = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/drover-rg"
        vmid = rg + "/providers/Microsoft.Compute/virtualMachines/%s"
        self.assertEqual(out["nodes"], [{"name": n, "id": vmid % n, "state": "running"}
                                        for n in ("gpu-spot-7f3a", "gpu-spot-9b21")])
        for i, (call, name) in enumerate(zip(creates, ["gpu-spot-7f3a", "gpu-spot-9b21"])):
            a = call["argv"]
            self.assertEqual(a[:2], ["vm", "create"])
            self.assertEqual(a[a.index("--name") + 1], name)
            self.assertEqual(a[a.index("--resource-group") + 1], "drover-rg")
            self.assertEqual(a[a.index("--priority") + 1], "Spot")
            self.assertEqual(a[a.index("--eviction-policy") + 1], "Delete")
            self.assertEqual(a[a.index("--max-price") + 1], "-1")
            self.assertEqual(a[a.index("--tags") + 1:a.index("--tags") + 3],
                             ["drover-pool=gpu-spot", "drover-node=%s" % name])
            self.assertEqual(a[a.index("--ssh-key-values") + 1], "/root/.ssh/id_ed25519.pub")
            self.check_user_data(call["files"][a[a.index("--custom-data") + 1]], name,
                                 "drv1.%08x.secret-%s" % (10 + i, name), "azure-metadata")
        self.assertEqual([v["priority"] for v in self.state("az")], ["Spot", "Spot"])
        self.run_ok("azure", "create", self.spot_req(), args)
        self.assertEqual(len(self.calls("vm", "create")), 2)
        self.run_ok("azure", "create", create_req("cpu", ["cpu-1"]), args)
        self.assertNotIn("--priority", self.calls("vm", "create")[-1]["argv"])
        out = self.run_ok("azure", "delete", {"pool": "gpu-spot",
                                              "names": ["gpu-spot-7f3a", "never-made"]}, args)
        self.assertEqual(out["deleted"], ["gpu-spot-7f3a", "never-made"])
        d = self.calls("vm", "delete")
        self.assertEqual(len(d), 1)
        self.assertEqual(d[0]["argv"][:5], ["vm", "delete", "--ids", vmid % "gpu-spot-7f3a",
                                            "--yes"])
        listed = self.run_ok("azure", "list", {"pool": "gpu-spot"}, args)
        self.assertEqual({n["name"]: n["state"] for n in listed["nodes"]},
                         {"gpu-spot-7f3a": "gone", "gpu-spot-9b21": "running"})
        self.run_ok("azure", "list", {"pool": "gpu-spot"}, args)  # the delete completes
        self.assertEqual([n["name"] for n in self.run_ok("azure", "list", {"pool": "gpu-spot"},
                                                        args)["nodes"]], ["gpu-spot-9b21"])

    def test_user_data_from_the_request_or_a_template_file(self):
        req = self.spot_req(names=["gpu-spot-1"])
        req["user_data"] = "#cloud-config\n# node @NODE_NAME@ of @POOL@\nruncmd: [[true]]\n"
        self.run_ok("aws", "create", req, ["--launch-template", "my-template"])
        a = self.calls("run-instances")[-1]
        self.assertIn("LaunchTemplateName=my-template", a["argv"])
        self.assertEqual(list(a["files"].values()),
                         ["#cloud-config\n# node gpu-spot-1 of gpu-spot\nruncmd: [[true]]\n"])
        tmpl = os.path.join(self.dir, "mine.yaml.in")
        with open(tmpl, "w") as f:
            f.write("#cloud-config\n# @PROVIDER@\nwrite_files:\n  - path: /x\n    content: |\n"
                    "@AGENT_YAML@\n")
        self.run_ok("gcp", "create", self.spot_req(names=["gpu-spot-2"]),
                    ["--zone", "z1", "--user-data-template", tmpl])
        text = list(self.calls("create")[-1]["files"].values())[0]
        self.assertIn("# gcp\n", text)
        self.assertIn('      join-token: "drv1.0000000a.secret-gpu-spot-2"\n', text)

    def test_timeout_and_a_missing_cli(self):
        env = dict(self.env, PATH="/nonexistent")
        rc, _, err = run_provider("aws", "list", {"pool": "p"}, ["--launch-template", "lt-1"],
                                  env=env)
        self.assertEqual(rc, 1)
        self.assertIn("aws: command not found", err)
        slow = os.path.join(self.dir, "slow-aws")
        with open(slow, "w") as f:
            f.write("#!/bin/sh\nexec sleep 30\n")
        os.chmod(slow, 0o755)
        rc, _, err = run_provider("aws", "list", {"pool": "p"},
                                  ["--launch-template", "lt-1", "--aws", slow],
                                  env=dict(self.env, DROVER_PROVIDER_TIMEOUT="1"))
        self.assertEqual(rc, 1)
        self.assertIn("timed out", err)


if __name__ == "__main__":
    main()
