"""Containers, limits and GPUs as a user sees them (issue #4).

- steps with `image:` run in a busybox-static image through the oci driver
  (runc) and through podman: an artifact goes from a container on one agent
  to a container on another, logs stream, exit codes come back as they are;
- resources.memory is a hard limit: a step that exceeds it is FAILED with
  reason "OOMKilled..." (in a container, and as a plain process where the
  agent enforces limits for processes);
- cancelling a run, or kill -9 of an agent followed by its restart, leaves
  no container, no process and no bundle behind;
- GPUs detected with a fake nvidia-smi are handed out one per step,
  exclusively (CUDA_VISIBLE_DEVICES), and `--gpus` overrides detection;
- bad input gives clear messages: a missing or corrupt image fails the step
  with a reason naming it (and the agent goes on working), an unknown
  --runtime stops the agent with a message naming it, and an image step is
  never placed on an agent that cannot run images.

The test images come from scripts/make-test-image.sh (built once per run of
this file into a temp dir). Container tests need root and runc (or crun);
podman tests are skipped, with the reason, when `podman info` fails.
"""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import unittest
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task, wait_until  # noqa: E402

IMAGES = None  # dir made by make-test-image.sh: rootfs/ oci/ oci.tar docker.tar
IMAGES_WHY = "setUpModule did not run"  # why there are no test images
TOKEN = uuid.uuid4().hex[:12]
PODMAN_IMAGE = "localhost/drover-it-%s:latest" % TOKEN
_podman = {"checked": False, "why": None, "imported": False}

FAKE_GPU_MODEL = "NVIDIA Fake A100"
FAKE_NVIDIA_SMI = """#!/bin/sh
# fake nvidia-smi (tests): two GPUs for the query drover-agent makes
echo "$*" >> "$(dirname "$0")/calls"
case "$*" in
*--query-gpu=index,name*--format=csv,noheader*)
    printf '0, %s\\n1, %s\\n' "$FAKE_GPU_MODEL" "$FAKE_GPU_MODEL" ;;
*) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 6 ;;
esac
"""

# A busybox/dash memory hog: ~200 MB held in a shell variable.
MEMORY_HOG = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}"


_images_tmp = None


def setUpModule():
    """Build the test images once (tests without images run regardless)."""
    global IMAGES, IMAGES_WHY, _images_tmp
    _images_tmp = tempfile.mkdtemp(prefix="drover-ctimg-", dir="/tmp")
    script = os.path.join(harness.SOURCE_DIR, "scripts", "make-test-image.sh")
    out = os.path.join(_images_tmp, "img")
    p = subprocess.run(["sh", script, out], capture_output=True, timeout=300)
    if p.returncode == 0:
        IMAGES, IMAGES_WHY = out, None
    else:
        IMAGES_WHY = "scripts/make-test-image.sh failed (rc %d): %s" % (
            p.returncode, p.stderr.decode(errors="replace").strip()[-500:])


def tearDownModule():
    if _podman["imported"]:
        subprocess.run(["podman", "rmi", "-f", PODMAN_IMAGE], capture_output=True, timeout=120)
    if _images_tmp:
        shutil.rmtree(_images_tmp, ignore_errors=True)


def image(kind):
    """Path of a test image: rootfs, oci (layout dir), oci.tar, docker.tar."""
    return os.path.join(IMAGES, kind)


def hostile_layout(dst, outside):
    """A copy of the OCI test image with one more layer on top that aims
    outside the layer cache: a symlink to the directory outside, then a
    file written through it, then a file at an absolute path there."""
    shutil.copytree(image("oci"), dst)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        lnk = tarfile.TarInfo("lnk")
        lnk.type, lnk.linkname = tarfile.SYMTYPE, outside
        tf.addfile(lnk)
        for name in ("lnk/escaped", os.path.join(outside, "escaped-abs")):
            f = tarfile.TarInfo(name)
            f.size = 6
            tf.addfile(f, io.BytesIO(b"pwned\n"))
    layer = buf.getvalue()
    blobs = os.path.join(dst, "blobs", "sha256")

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return "sha256:" + d

    with open(os.path.join(dst, "index.json")) as f:
        index = json.load(f)
    with open(os.path.join(blobs, index["manifests"][0]["digest"].split(":")[1])) as f:
        manifest = json.load(f)
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": put(layer), "size": len(layer)})
    index["manifests"][0]["digest"] = put(json.dumps(manifest).encode())
    with open(os.path.join(dst, "index.json"), "w") as f:
        json.dump(index, f)


def oci_unavailable():
    if os.geteuid() != 0:
        return "the oci runtime needs root (running as uid %d)" % os.geteuid()
    if not (shutil.which("runc") or shutil.which("crun")):
        return "neither runc nor crun is installed (scripts/install-deps.sh installs runc)"
    return None


def podman_unavailable():
    """None when podman works (and the test image is imported), else why not."""
    if not _podman["checked"]:
        _podman["checked"] = True
        if not shutil.which("podman"):
            _podman["why"] = "podman is not installed"
        else:
            p = subprocess.run(["podman", "info"], capture_output=True, timeout=120)
            if p.returncode != 0:
                _podman["why"] = "'podman info' failed (rc %d): %s" % (
                    p.returncode, p.stderr.decode(errors="replace").strip()[-500:])
        if _podman["why"] is None:
            rootfs_tar = os.path.join(_images_tmp, "rootfs.tar")
            subprocess.run(["tar", "-C", image("rootfs"), "-cf", rootfs_tar, "."], check=True)
            p = subprocess.run(["podman", "import", "-q", rootfs_tar, PODMAN_IMAGE],
                               capture_output=True, timeout=300)
            if p.returncode != 0:
                raise AssertionError("podman import of the test image failed: %s"
                                     % p.stderr.decode(errors="replace"))
            _podman["imported"] = True
    return _podman["why"]


# ------------------------------------------------------------ what is left


def owner_of(work_dir):
    """The agent's owner tag (runtime.c owner_of): sha256 of its work dir."""
    return hashlib.sha256(os.path.realpath(work_dir).encode()).hexdigest()[:12]


def runc_root(work_dir):
    return os.path.join(work_dir, "runtime", "runc")


def oci_containers(work_dir):
    """drover-* containers in the agent's runc state (runc or crun)."""
    root = runc_root(work_dir)
    if not os.path.isdir(root):
        return []
    names = []
    for tool in ("runc", "crun"):
        if not shutil.which(tool):
            continue
        p = subprocess.run([tool, "--root", root, "list", "-q"], capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("%s --root %s list failed: %s"
                                 % (tool, root, p.stderr.decode(errors="replace")))
        names += [n for n in p.stdout.decode().split() if n.startswith("drover-")]
        break
    return names


def podman_containers(work_dir):
    p = subprocess.run(["podman", "ps", "-a", "--filter",
                        "label=drover.owner=%s" % owner_of(work_dir), "--format",
                        "{{.Names}} {{.State}}"], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("podman ps failed: %s" % p.stderr.decode(errors="replace"))
    return [ln for ln in p.stdout.decode().split("\n") if ln]


def bundles(work_dir):
    try:
        return sorted(os.listdir(os.path.join(work_dir, "runtime", "bundles")))
    except FileNotFoundError:
        return []


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def procs_with(marker):
    """Live processes whose command line has marker, and their descendants."""
    mk = marker.encode()
    hits, parents = set(), {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid == os.getpid():
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if mk in f.read():
                    hits.add(pid)
        except OSError:
            continue
        parents[pid] = _ppid(pid)
    grew = True
    while grew:
        grew = False
        for pid, pp in parents.items():
            if pp in hits and pid not in hits:
                hits.add(pid)
                grew = True
    return sorted(p for p in hits if harness.pid_alive(p))


def force_remove_containers(work_dir):
    """Test clean-up: kill whatever an agent left (only after a failure)."""
    root = runc_root(work_dir)
    if os.path.isdir(root) and shutil.which("runc"):
        p = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True, timeout=60)
        for name in p.stdout.decode().split():
            subprocess.run(["runc", "--root", root, "delete", "--force", name],
                           capture_output=True, timeout=60)
    if _podman["imported"]:
        p = subprocess.run(["podman", "ps", "-aq", "--filter",
                            "label=drover.owner=%s" % owner_of(work_dir)],
                           capture_output=True, timeout=60)
        for cid in p.stdout.decode().split():
            subprocess.run(["podman", "rm", "-f", "-t", "0", cid], capture_output=True, timeout=60)


# ------------------------------------------------------------ base


class ContainerCase(harness.DroverTestCase):
    def setUp(self):
        # Registered first, so it runs last: after the cluster is stopped.
        self.addCleanup(self._remove_leftovers)
        super().setUp()
        self.markers = []
        self.others = []  # more clusters (their own droverd) on this host

    def _remove_leftovers(self):
        c = getattr(self, "c", None)
        if c is None:
            return
        leftovers = []
        for cl in [c] + self.others:
            for name, d in cl.agents.items():
                force_remove_containers(d.work_dir)
        for m in self.markers:
            pids = procs_with(m)
            if pids:
                leftovers.append("processes of %s still alive after the test: %s" % (m, pids))
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if leftovers:
            sys.stderr.write("note: " + "; ".join(leftovers) + "\n")

    def other_cluster(self):
        """A second droverd (and its agents) on this host, under the test's
        temp dir (other/droverd.log); its agents' logs are printed with the
        test's."""
        other = harness.Cluster(self.c.path("other"))
        self.others.append(other)

        def stop():  # before the main cluster's stop, which would kill it
            problems = other.stop()
            if problems:
                self.fail("second cluster: " + "; ".join(problems))

        self.addCleanup(stop)
        return other

    def marker(self, what):
        m = "mark-%s-%s" % (what, uuid.uuid4().hex[:10])
        self.markers.append(m)
        return m

    def start_agent_with(self, name, extra=(), env=None, gpus="0", cpus=4, wait=True,
                         cluster=None):
        """Like Cluster.start_agent, but with extra environment and
        gpus=None for no --gpus flag at all (detection)."""
        c = cluster or self.c
        if c.port is None:
            c.port = harness.free_port()
        work = c.agent_work_dir(name)
        os.makedirs(work, exist_ok=True)
        argv = [harness.bin_path("drover-agent"), "--scheduler", c.agents_endpoint,
                "--work-dir", work, "--name", name, "--cpus", str(cpus), "--memory", "1Gi",
                "--heartbeat", "200ms"]
        if gpus is not None:
            argv += ["--gpus", str(gpus)]
        argv += list(extra)
        e = dict(c.env, DROVER_IT_NODE="%s-%s" % (c.token, name))
        e.update(env or {})
        # logs of a second cluster go to the test's temp dir too (printed on failure)
        log = self.c.path("agent-%s.log" % name) if c is self.c else \
            self.c.path("other-agent-%s.log" % name)
        d = harness.Daemon("agent", name, argv, log, e, c.tmp)
        d.work_dir = work
        c.agents[name] = d
        c.daemons.append(d)
        if wait:
            c.wait_agent_connected(name)
            # after a restart droverd may still show the old connection as
            # connected: wait for this process to have registered (which it
            # does after its orphan clean-up)

            def registered():
                if not d.alive():
                    raise harness.DaemonDied("agent %s exited (rc %s):\n%s" % (
                        name, d.p.returncode, harness.tail(d.log_text(), 30)))
                return "registered with droverd" in d.log_text().rsplit("harness: start", 1)[-1]
            wait_until(registered, timeout=30, what="agent %s to register" % name)
        return d

    def attempt_dir(self, agent, rid, step, attempt=1):
        return os.path.join(self.c.agent_work_dir(agent), "runs", rid, step, str(attempt))

    def logs(self, rid, step):
        r = self.c.cli("logs", rid, step)
        self.assertEqual(r.rc, 0, r)
        return r.out

    def wait_log(self, rid, step, text, timeout=60):
        def seen():
            r = self.c.cli("logs", rid, step)
            return r.rc == 0 and text in r.out
        wait_until(seen, timeout=timeout, what="%r in the logs of %s" % (text, step))

    def assertTaskFailedWith(self, run, name, *needles, code=None):
        t = task(run, name)
        self.assertEqual(t["status"], "FAILED", t)
        for n in needles:
            self.assertIn(n, t["reason"],
                          "reason of %s does not name %r: %r" % (name, n, t["reason"]))
        if code is not None:
            self.assertEqual(t["exit_code"], code, t)
        return t


class RuntimeCases:
    """The same user-visible checks for each container runtime (a mixin:
    OciTest and PodmanTest are the test cases)."""

    RUNTIME = None

    def setUp(self):
        super().setUp()
        why = IMAGES_WHY or (oci_unavailable() if self.RUNTIME == "oci" else podman_unavailable())
        if why:
            print("\nSKIP %s: %s" % (self.id(), why), flush=True)
            self.skipTest(why)

    # images each test uses: subclasses pick
    def img(self, which):
        raise NotImplementedError

    def containers(self, work_dir):
        return oci_containers(work_dir) if self.RUNTIME == "oci" else podman_containers(work_dir)

    def has_container(self, work_dir, name):
        return name in [n.split()[0] for n in self.containers(work_dir)]

    def agent(self, name, **kw):
        return self.start_agent_with(name, extra=["--runtime", self.RUNTIME, "--kill-grace", "2s"]
                                     + list(kw.pop("extra", ())), **kw)

    def assertNothingLeft(self, name, what, cluster=None):
        work = (cluster or self.c).agent_work_dir(name)

        def clean():
            return not self.containers(work) and not bundles(work)

        try:
            wait_until(clean, timeout=30, what="no container and no bundle of agent %s %s"
                       % (name, what))
        except AssertionError:
            self.fail("agent %s %s: containers %s, bundles %s" % (
                name, what, self.containers(work), bundles(work)))

    # ---- 1. a pipeline in containers

    def test_pipeline_in_containers(self):
        c = self.c
        c.start_droverd()
        self.agent("prod", extra=["--labels", "role=produce"])
        self.agent("cons", extra=["--labels", "role=consume"])
        for name in ("prod", "cons"):
            a = c.agent(name)
            self.assertEqual((a["runtime"], a["images"]), (self.RUNTIME, True), a)
        rid = c.submit({"name": "ctr-pipeline", "steps": [
            {"name": "produce", "image": self.img("produce"),
             "placement": {"labels": {"role": "produce"}},
             "outputs": {"artifacts": ["data"]},
             "script": 'echo "producing as $(id -u) in $(pwd)"\n'
                       'echo "payload from a container" > "$DROVER_OUTPUTS/data"\n'
                       'echo "outputs at $DROVER_OUTPUTS" >> "$DROVER_OUTPUTS/data"\n'},
            {"name": "consume", "needs": ["produce"], "image": self.img("consume"),
             "placement": {"labels": {"role": "consume"}},
             "inputs": {"artifacts": {"got": "produce.data"}},
             "outputs": {"params": ["first"]},
             "script": 'echo "consumer reads $DROVER_INPUTS/got"\n'
                       'head -n 1 "$DROVER_INPUTS/got" > "$DROVER_OUTPUTS/first"\n'
                       'grep -qx "outputs at /drover/outputs" "$DROVER_INPUTS/got"\n'
                       # the image's root is read-only; /tmp is a tmpfs
                       'if touch /root-is-writable 2>/dev/null; then exit 9; fi\n'
                       'echo scratch > /tmp/scratch && cat /tmp/scratch\n'},
            {"name": "fails", "image": self.img("fails"),
             "script": "echo about to exit 3\nexit 3\n"},
            {"name": "stream", "image": self.img("produce"),
             "placement": {"labels": {"role": "consume"}},
             "script": "echo stream-begins\n"
                       "while [ ! -e /drover/work/release ]; do sleep 0.05; done\n"
                       "echo stream-ends\n"},
        ]})
        # logs stream while the step runs: `drover logs -f` shows its first
        # line before the step has finished
        c.wait_task_status(rid, "stream", "RUNNING")
        follow = c.popen_cli("logs", rid, "stream", "-f")
        try:
            data, ok = harness.read_with_timeout(follow, rb"stream-begins", timeout=30)
            self.assertTrue(ok, "drover logs -f did not show the running container's output: %r"
                            % data)
            self.assertEqual(task(c.get_run(rid), "stream")["status"], "RUNNING")
            self.assertNotIn(b"stream-ends", data)
            open(os.path.join(self.attempt_dir("cons", rid, "stream"), "work", "release"),
                 "w").close()
            data2, ok = harness.read_with_timeout(follow, rb"stream-ends", timeout=30)
            self.assertTrue(ok, "drover logs -f: %r" % (data + data2))
            try:
                follow.wait(timeout=30 * harness.SCALE)
            except subprocess.TimeoutExpired:
                self.fail("drover logs -f did not exit after the step ended")
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
            follow.stdout.close()
            follow.stderr.close()
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "FAILED", run)  # "fails" failed; the rest ran
        for name, agent in (("produce", "prod"), ("consume", "cons"), ("stream", "cons")):
            t = task(run, name)
            self.assertEqual((t["status"], t["exit_code"], t["agent"]),
                             ("SUCCEEDED", 0, agent), t)
        self.assertEqual(task(run, "consume")["outputs"]["params"],
                         {"first": "payload from a container"})
        self.assertTaskFailedWith(run, "fails", code=3)
        self.assertIn("3", task(run, "fails")["reason"])
        self.assertIn("producing as 0 in /drover/work", self.logs(rid, "produce"))
        self.assertIn("consumer reads /drover/inputs/got", self.logs(rid, "consume"))
        self.assertIn("scratch", self.logs(rid, "consume"))
        self.assertIn("about to exit 3", self.logs(rid, "fails"))
        # the artifact went through the scheduler intact
        out = c.path("data.out")
        r = c.cli("artifact", "get", rid, "produce", "data", "-o", out)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(harness.read_text(out),
                         "payload from a container\noutputs at /drover/outputs\n")
        for name in ("prod", "cons"):
            self.assertNothingLeft(name, "after the run ended")

    # ---- 2. memory limit

    def test_memory_limit_is_oomkilled(self):
        c = self.c
        c.start_droverd()
        self.agent("m1")
        rid = c.submit({"name": "ctr-oom", "steps": [
            {"name": "hog", "image": self.img("produce"), "resources": {"memory": "32Mi"},
             "script": MEMORY_HOG},
            {"name": "small", "image": self.img("produce"), "resources": {"memory": "32Mi"},
             "script": "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo held ${#x}"},
        ]})
        run = c.wait_run_final(rid)
        t = task(run, "hog")
        self.assertEqual(t["status"], "FAILED", t)
        self.assertTrue(t["reason"].startswith("OOMKilled"),
                        "a container over its 32Mi limit: reason %r, want OOMKilled...; %s"
                        % (t["reason"], t))
        self.assertNotIn("survived", self.logs(rid, "hog"))
        s = task(run, "small")
        self.assertEqual((s["status"], s["exit_code"]), ("SUCCEEDED", 0), s)
        self.assertIn("held 1000000", self.logs(rid, "small"))
        self.assertNothingLeft("m1", "after the run ended")

    # ---- 3. cancel and agent restart

    def test_cancel_and_agent_restart_leave_nothing(self):
        c = self.c
        c.start_droverd()
        self.agent("w1")
        work = c.agent_work_dir("w1")
        m1 = self.marker("cancel")
        rid = c.submit({"name": "ctr-cancel", "steps": [
            {"name": "long", "image": self.img("produce"),
             "script": "echo %s started\nsleep 300\necho %s\n" % (m1, m1)}]})
        # RUNNING comes when the agent has started the attempt; its first log
        # line, once the container runs
        self.wait_log(rid, "long", "%s started" % m1)
        pids = wait_until(lambda: procs_with(m1), timeout=30, what="the container's processes")
        aid = task(c.get_run(rid), "long")["history"][-1]["id"]
        self.assertTrue(self.has_container(work, "drover-w1-%s" % aid),
                        "container drover-w1-%s not in %s" % (aid, self.containers(work)))
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "CANCELLED", run)
        self.assertEqual(task(run, "long")["status"], "CANCELLED", run)
        wait_until(lambda: not [p for p in pids if harness.pid_alive(p)], timeout=30,
                   what="the cancelled container's processes %s to be gone" % pids)
        self.assertNothingLeft("w1", "after cancel")

        # kill -9 of the agent (not of the node): its container outlives it;
        # the restarted agent removes it and the step runs again
        m2 = self.marker("restart")
        rid2 = c.submit({"name": "ctr-restart", "steps": [
            {"name": "long", "image": self.img("produce"),
             "script": 'echo "%s attempt $DROVER_ATTEMPT"\n'
                       'if [ "$DROVER_ATTEMPT" = 1 ]; then sleep 300; fi\n' % m2}]})
        self.wait_log(rid2, "long", "%s attempt 1" % m2)
        pids = wait_until(lambda: procs_with(m2), timeout=30, what="the container's processes")
        aid = task(c.get_run(rid2), "long")["history"][-1]["id"]
        old = "drover-w1-%s" % aid
        self.assertTrue(self.has_container(work, old), self.containers(work))
        c.kill_agent("w1", node=False)
        survived = [p for p in pids if harness.pid_alive(p)]
        print("\n  %s: after kill -9 of the agent, %d of %d container processes still ran"
              % (self.RUNTIME, len(survived), len(pids)), flush=True)
        self.agent("w1")
        wait_until(lambda: not [p for p in pids if harness.pid_alive(p)], timeout=30,
                   what="the old container's processes %s to be gone after the restart" % pids)
        wait_until(lambda: not self.has_container(work, old) and old not in bundles(work),
                   timeout=30,
                   what="container and bundle %s to be removed by the restarted agent" % old)
        run = c.wait_run_final(rid2)
        self.assertRunSucceeded(run)
        t = task(run, "long")
        self.assertEqual(t["attempts"], 2, t)
        self.assertEqual(t["history"][0]["status"], "LOST", t)
        self.assertEqual(t["retries_used"], 0, t)
        self.assertIn("%s attempt 2" % m2, self.logs(rid2, "long"))
        self.assertNothingLeft("w1", "after the rerun ended")

        # the agent stopped (systemctl stop: SIGTERM) while a step runs: a
        # preemption notice; the step (whose shell ignores SIGTERM as PID 1)
        # is killed after its grace, handed back, and the agent exits
        # cleanly, taking its container with it
        m3 = self.marker("stop")
        rid3 = c.submit({"name": "ctr-stop", "steps": [
            {"name": "long", "image": self.img("produce"), "preemption": {"grace": "2s"},
             "script": "echo %s started\nsleep 300\necho %s\n" % (m3, m3)}]})
        self.wait_log(rid3, "long", "%s started" % m3)
        pids = wait_until(lambda: procs_with(m3), timeout=30, what="the container's processes")
        d = c.agents["w1"]
        d.terminate()
        wait_until(lambda: not d.alive(), timeout=30, what="the agent to exit on SIGTERM")
        self.assertEqual(d.p.returncode, 0, "agent exit status after SIGTERM")
        self.assertEqual([p for p in pids if harness.pid_alive(p)], [],
                         "container processes outlived the agent's stop")
        self.assertNothingLeft("w1", "after the agent stopped")
        t = task(c.get_run(rid3), "long")
        self.assertEqual(t["history"][-1]["status"], "PREEMPTED", t)
        self.assertEqual((t["preemptions"], t["retries_used"]), (1, 0), t)

    # ---- two agents of two schedulers on one host

    def test_two_agents_on_one_host_keep_apart(self):
        c = self.c
        c.start_droverd()
        self.agent("near")
        other = self.other_cluster()
        other.start_droverd()
        self.agent("far", cluster=other)
        m = self.marker("near")
        rid = c.submit({"name": "near", "steps": [
            {"name": "long", "image": self.img("produce"),
             "script": "echo %s started\nsleep 300\necho %s\n" % (m, m)}]})
        self.wait_log(rid, "long", "%s started" % m)
        pids = wait_until(lambda: procs_with(m), timeout=30, what="the container's processes")
        # both schedulers number attempts from 1: the same attempt id on the
        # other agent
        rid2 = other.submit({"name": "far", "steps": [
            {"name": "quick", "image": self.img("produce"), "script": "echo from far"}]})
        t2 = task(other.wait_run_final(rid2), "quick")
        ids = (task(c.get_run(rid), "long")["history"][-1]["id"], t2["history"][0]["id"])
        far_log = other.cli("logs", rid2, "quick").out
        # the other agent restarting (its orphan clean-up) leaves ours alone
        other.kill_agent("far", node=False)
        self.agent("far", cluster=other)
        self.assertEqual([p for p in pids if not harness.pid_alive(p)], [],
                         "the other agent's restart killed this agent's container")
        self.assertEqual(task(c.get_run(rid), "long")["status"], "RUNNING")
        self.assertTrue(self.containers(c.agent_work_dir("near")))
        self.assertEqual((t2["status"], t2["exit_code"]), ("SUCCEEDED", 0),
                         "a step on a second agent of this host (another scheduler; attempt ids "
                         "%s, %s): %s" % (ids[0], ids[1], t2))
        self.assertIn("from far", far_log)
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        wait_until(lambda: not [p for p in pids if harness.pid_alive(p)], timeout=30,
                   what="the cancelled container's processes to be gone")
        self.assertNothingLeft("near", "after cancel")
        self.assertNothingLeft("far", "after its run", cluster=other)


class OciTest(RuntimeCases, ContainerCase):
    RUNTIME = "oci"

    def img(self, which):
        # every form the oci driver takes
        return {"produce": image("oci"), "consume": image("docker.tar"),
                "fails": image("rootfs")}[which]

    # ---- 5. bad input

    def test_bad_images_fail_the_step_clearly(self):
        c = self.c
        c.start_droverd()
        self.agent("b1")
        missing = c.path("no-such-image.tar")
        corrupt = c.path("corrupt-image.tar")
        with open(corrupt, "wb") as f:
            f.write(os.urandom(64 * 1024))
        # an OCI layout whose layer blob is garbage (found only while unpacking)
        badlayer = c.path("bad-layer-oci")
        shutil.copytree(image("oci"), badlayer)
        with open(os.path.join(badlayer, "index.json")) as f:
            mdig = json.load(f)["manifests"][0]["digest"].split(":")[1]
        with open(os.path.join(badlayer, "blobs", "sha256", mdig)) as f:
            ldig = json.load(f)["layers"][0]["digest"].split(":")[1]
        lpath = os.path.join(badlayer, "blobs", "sha256", ldig)
        size = os.path.getsize(lpath)
        with open(lpath, "wb") as f:
            f.write(os.urandom(size))
        # a layer that writes through a symlink and to an absolute path
        outside = c.path("outside")
        os.makedirs(outside)
        hostile = c.path("hostile-oci")
        hostile_layout(hostile, outside)
        rid = c.submit({"name": "bad-images", "steps": [
            {"name": "missing", "image": missing, "script": "echo should not run"},
            {"name": "corrupt", "image": corrupt, "script": "echo should not run"},
            {"name": "badlayer", "image": badlayer, "script": "echo should not run"},
            {"name": "noexec", "image": image("oci"), "command": ["no-such-program", "x"]},
            {"name": "hostile", "image": hostile, "script": "echo should not run"},
        ]})
        run = c.wait_run_final(rid)
        self.assertEqual(run["status"], "FAILED", run)
        self.assertTaskFailedWith(run, "missing", "no-such-image.tar", "No such file")
        self.assertTaskFailedWith(run, "corrupt", "corrupt-image.tar")
        self.assertTaskFailedWith(run, "badlayer")
        self.assertTaskFailedWith(run, "noexec", "no-such-program")
        # refused, naming the entry; nothing written outside the cache
        self.assertTaskFailedWith(run, "hostile", "hostile-oci", "unsafe", "'lnk/escaped'")
        self.assertEqual(os.listdir(outside), [])
        for name in ("missing", "corrupt", "badlayer", "noexec", "hostile"):
            t = task(run, name)
            self.assertEqual(t["exit_code"], 127, t)
            self.assertNotIn("should not run", self.logs(rid, name))
        reasons = {n: task(run, n)["reason"]
                   for n in ("missing", "corrupt", "badlayer", "noexec", "hostile")}
        print("\n  reasons: %s" % json.dumps(reasons, indent=1), flush=True)
        bl = reasons["badlayer"].lower()
        self.assertTrue(any(w in bl for w in ("layer", "digest", "gzip", "corrupt", "bad-layer")),
                        "the reason for a corrupt layer does not say so: %r" % reasons["badlayer"])
        # the agent carries on
        self.assertTrue(c.agents["b1"].alive())
        rid2 = c.submit({"name": "after-bad", "steps": [
            {"name": "ok", "image": image("oci"), "script": "echo still working"}]})
        run2 = c.wait_run_final(rid2)
        self.assertRunSucceeded(run2)
        self.assertIn("still working", self.logs(rid2, "ok"))
        self.assertNothingLeft("b1", "after the bad images")

    def test_image_step_waits_for_an_agent_that_runs_images(self):
        c = self.c
        c.start_droverd()
        self.start_agent_with("plain", extra=["--runtime", "process"])
        a = c.agent("plain")
        self.assertEqual((a["runtime"], a["images"]), ("process", False), a)
        rid = c.submit({"name": "needs-images", "steps": [
            {"name": "ctr", "image": image("oci"), "script": "echo in a container"},
            {"name": "proc", "script": "echo as a process"}]})
        c.wait_task_status(rid, "proc", "SUCCEEDED")
        harness.holds_for(lambda: task(c.get_run(rid), "ctr")["status"] == "READY", 1.5,
                          what="the image step to stay READY with only a process agent")
        t = task(c.get_run(rid), "ctr")
        self.assertEqual((t["attempts"], t["agent"] or None), (0, None), t)
        # an agent that can run it comes: it runs there
        self.agent("ctr-agent")
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "ctr")["agent"], "ctr-agent")
        self.assertEqual(task(run, "proc")["agent"], "plain")


class PodmanTest(RuntimeCases, ContainerCase):
    RUNTIME = "podman"

    def img(self, which):
        # an imported image name, and an OCI archive path
        return {"produce": PODMAN_IMAGE, "consume": image("oci.tar"),
                "fails": PODMAN_IMAGE}[which]

    def test_bad_images_fail_the_step_clearly(self):
        c = self.c
        c.start_droverd()
        self.agent("b1")
        corrupt = c.path("corrupt-image.tar")
        with open(corrupt, "wb") as f:
            f.write(os.urandom(64 * 1024))
        missing_name = "localhost/drover-it-missing-%s:latest" % TOKEN
        rid = c.submit({"name": "bad-images", "steps": [
            {"name": "missing", "image": c.path("no-such-image.tar"), "script": "echo no"},
            {"name": "corrupt", "image": corrupt, "script": "echo no"},
            {"name": "unknown", "image": missing_name, "script": "echo no"},
        ]})
        run = c.wait_run_final(rid)
        self.assertTaskFailedWith(run, "missing", "no-such-image.tar")
        self.assertTaskFailedWith(run, "corrupt", "corrupt-image.tar")
        self.assertTaskFailedWith(run, "unknown", "drover-it-missing-%s" % TOKEN)
        print("\n  reasons: %s" % json.dumps(
            {n: task(run, n)["reason"] for n in ("missing", "corrupt", "unknown")}, indent=1),
            flush=True)
        self.assertTrue(c.agents["b1"].alive())
        rid2 = c.submit({"name": "after-bad", "steps": [
            {"name": "ok", "image": PODMAN_IMAGE, "script": "echo still working"}]})
        run2 = c.wait_run_final(rid2)
        self.assertRunSucceeded(run2)
        self.assertIn("still working", self.logs(rid2, "ok"))
        self.assertNothingLeft("b1", "after the bad images")


class ProcessLimitsTest(ContainerCase):
    def test_process_memory_limit_is_oomkilled(self):
        c = self.c
        c.start_droverd()
        d = self.start_agent_with("p1", extra=["--runtime", "process"])
        line = [ln for ln in d.log_text().splitlines() if "limits for processes:" in ln]
        self.assertTrue(line, "the agent's start line does not say whether process limits are "
                        "enforced:\n%s" % d.log_text())
        limits = line[-1].split("limits for processes:", 1)[1].strip()
        if limits.startswith("none"):
            print("\nSKIP %s: the agent enforces no limits for processes here (%s)"
                  % (self.id(), limits), flush=True)
            self.skipTest("no limits for processes: %s" % limits)
        rid = c.submit({"name": "proc-oom", "steps": [
            {"name": "hog", "resources": {"memory": "32Mi"}, "script": MEMORY_HOG},
            {"name": "small", "resources": {"memory": "32Mi"},
             "script": "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo held ${#x}"},
        ]})
        run = c.wait_run_final(rid)
        t = task(run, "hog")
        self.assertEqual(t["status"], "FAILED", t)
        self.assertTrue(t["reason"].startswith("OOMKilled"),
                        "a process over its 32Mi limit (%s): reason %r, want OOMKilled...; %s"
                        % (limits, t["reason"], t))
        s = task(run, "small")
        self.assertEqual((s["status"], s["exit_code"]), ("SUCCEEDED", 0), s)
        self.assertIn("held 1000000", self.logs(rid, "small"))


class AgentStartTest(ContainerCase):
    def wait_exit(self, d):
        wait_until(lambda: not d.alive(), timeout=30, what="agent %s to exit" % d.name)
        d.expected_exit = True
        return d.p.returncode

    def test_unknown_runtime_stops_the_agent_with_a_message(self):
        c = self.c
        c.start_droverd()
        d = self.start_agent_with("bogus", extra=["--runtime", "bogus"], wait=False)
        rc = self.wait_exit(d)
        log = d.log_text()
        self.assertNotEqual(rc, 0, log)
        self.assertGreater(rc, 0, "the agent died of a signal: rc %s\n%s" % (rc, log))
        self.assertIn("bogus", log)
        self.assertIn("unknown runtime", log)
        # a path to a runtime binary that is not there: named as well
        d = self.start_agent_with("badpath", extra=["--runtime", "oci:/nonexistent/runc"],
                                  wait=False)
        rc = self.wait_exit(d)
        log = d.log_text()
        self.assertGreater(rc, 0, log)
        self.assertIn("/nonexistent/runc", log)
        self.assertEqual(c.agent("bogus"), None)
        self.assertEqual(c.agent("badpath"), None)


class GpuTest(ContainerCase):
    def fake_path(self):
        fakebin = self.c.path("fakebin")
        os.makedirs(fakebin, exist_ok=True)
        p = os.path.join(fakebin, "nvidia-smi")
        with open(p, "w") as f:
            f.write(FAKE_NVIDIA_SMI)
        os.chmod(p, 0o755)
        return {"PATH": fakebin + ":" + self.c.env.get("PATH", "/usr/bin:/bin"),
                "FAKE_GPU_MODEL": FAKE_GPU_MODEL}

    def test_gpus_are_allocated_exclusively(self):
        c = self.c
        c.start_droverd()
        self.start_agent_with("g1", extra=["--runtime", "process"], env=self.fake_path(),
                              gpus=None)
        a = c.agent("g1")
        self.assertEqual(a["gpus"], 2, a)
        self.assertEqual(a["labels"].get("gpu.model"), FAKE_GPU_MODEL, a)
        self.assertIn("--query-gpu=index,name", harness.read_text(c.path("fakebin", "calls")))
        marks = c.path("marks")
        os.makedirs(marks)
        script = ('echo "${CUDA_VISIBLE_DEVICES-unset}" > %s/$DROVER_TASK.tmp\n'
                  'mv %s/$DROVER_TASK.tmp %s/$DROVER_TASK\n'
                  'while [ ! -e %s/release-$DROVER_TASK ]; do sleep 0.05; done\n'
                  % (marks, marks, marks, marks))
        steps = [{"name": "g%d" % i, "resources": {"gpu": 1}, "script": script}
                 for i in range(3)]
        # a step that asked for no GPU sees none on a GPU node
        steps.append({"name": "nogpu", "script": 'echo "[${CUDA_VISIBLE_DEVICES-unset}]" > %s/nogpu'
                      % marks})
        rid = c.submit({"name": "gpus", "steps": steps})
        names = ["g0", "g1", "g2"]

        def started():
            return sorted(n for n in names if os.path.exists(os.path.join(marks, n)))

        first = wait_until(lambda: len(started()) >= 2 and started(), timeout=30,
                           what="two GPU steps to start")
        self.assertEqual(len(first), 2, "three steps started with two GPUs: %s" % first)
        waiting = [n for n in names if n not in first][0]
        seen = {n: harness.read_text(os.path.join(marks, n)).strip() for n in first}
        self.assertEqual(sorted(seen.values()), ["0", "1"],
                         "two steps with a GPU each: CUDA_VISIBLE_DEVICES %s" % seen)
        self.assertEqual(c.agent("g1")["used_gpus"], 2)
        harness.holds_for(lambda: task(c.get_run(rid), waiting)["status"] == "READY"
                          and not os.path.exists(os.path.join(marks, waiting)), 1.0,
                          what="the third GPU step to wait (READY, not started)")
        # one finishes: the third gets the index it freed
        done = first[0]
        open(os.path.join(marks, "release-" + done), "w").close()
        wait_until(lambda: os.path.exists(os.path.join(marks, waiting)), timeout=30,
                   what="the third GPU step to start once a GPU is free")
        self.assertEqual(harness.read_text(os.path.join(marks, waiting)).strip(), seen[done],
                         "the third step should get the freed GPU %s" % seen[done])
        for n in names:
            open(os.path.join(marks, "release-" + n), "w").close()
        run = c.wait_run_final(rid)
        self.assertRunSucceeded(run)
        self.assertEqual(harness.read_text(os.path.join(marks, "nogpu")).strip(), "[]")
        wait_until(lambda: c.agent("g1")["used_gpus"] == 0, timeout=10,
                   what="the agent to show its GPUs free")

    def test_gpus_flag_overrides_detection(self):
        c = self.c
        c.start_droverd()
        self.start_agent_with("one", extra=["--runtime", "process"], env=self.fake_path(),
                              gpus="1")
        one = c.agent("one")
        self.assertEqual(one["gpus"], 1, one)
        marks = c.path("marks")
        os.makedirs(marks)
        rid = c.submit({"name": "gpu-override", "steps": [
            {"name": "two", "resources": {"gpu": 2}, "script": "echo two > %s/two" % marks},
            {"name": "one", "resources": {"gpu": 1},
             "script": 'echo "$CUDA_VISIBLE_DEVICES" > %s/one' % marks}]})
        c.wait_task_status(rid, "one", "SUCCEEDED")
        self.assertEqual(harness.read_text(os.path.join(marks, "one")).strip(), "0")
        # more GPUs than the agent offers: never placed there
        harness.holds_for(lambda: task(c.get_run(rid), "two")["status"] == "READY", 1.0,
                          what="a 2-GPU step to stay READY on a 1-GPU agent")
        self.assertFalse(os.path.exists(os.path.join(marks, "two")))
        r = c.cli("run", "cancel", rid)
        self.assertEqual(r.rc, 0, r)
        # and none: no GPUs, no model label
        self.start_agent_with("none", extra=["--runtime", "process"], env=self.fake_path(),
                              gpus="none")
        a = c.agent("none")
        self.assertEqual(a["gpus"], 0, a)
        self.assertNotIn("gpu.model", a["labels"], a)
        # gpu.h: "N" is the first N detected GPUs, so their model is known
        self.assertEqual(one["labels"].get("gpu.model"), FAKE_GPU_MODEL,
                         "--gpus 1 on a node whose nvidia-smi reports two %s: %s"
                         % (FAKE_GPU_MODEL, one))


if __name__ == "__main__":
    harness.main()
