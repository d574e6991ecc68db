"""Large artifacts (issue #3): a 256 MiB artifact moves between steps on
two agents with bounded memory and without starving heartbeats, and a
droverd killed with -9 in the middle of an upload loses nothing and
stores nothing corrupt.

The steps compute the sha256 of what they wrote and of what they
received and leave it in side files in the test's temp dir; the test
also hashes every blob in droverd's store (STATE/blobs/XX/<sha256>)."""
import hashlib
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import task  # noqa: E402
from harness import check_daemons, wait_final  # noqa: E402,F401

MiB = 1 << 20


def is_asan():
    try:
        with open(harness.bin_path("droverd"), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def vm_hwm_bytes(pid):
    """Peak resident set size of a live process (VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def blob_files(state_dir):
    """{name: path} of every stored blob under STATE/blobs/XX/."""
    root = os.path.join(state_dir, "blobs")
    out = {}
    if not os.path.isdir(root):
        return out
    for d in os.listdir(root):
        if len(d) != 2:
            continue
        for name in os.listdir(os.path.join(root, d)):
            out[name] = os.path.join(root, d, name)
    return out


def tmp_files(state_dir):
    """{path: size} of files in droverd's blob temp dir."""
    root = os.path.join(state_dir, "blobs", "tmp")
    out = {}
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return out
    for n in names:
        p = os.path.join(root, n)
        try:
            out[p] = os.stat(p).st_size
        except FileNotFoundError:
            pass
    return out


def transfer_spec(tmp, size, producer_retries=0):
    produce = {
        "name": "produce",
        "placement": {"labels": {"node": "src"}},
        "script": ("head -c %d /dev/urandom > $DROVER_OUTPUTS/big\n"
                   "sha256sum $DROVER_OUTPUTS/big | cut -d' ' -f1 > %s/producer-$DROVER_ATTEMPT.sha\n"
                   % (size, tmp)),
        "outputs": {"artifacts": ["big"]},
    }
    if producer_retries:
        produce["retries"] = {"limit": producer_retries, "backoff": "200ms"}
    return {
        "name": "big-artifact",
        "steps": [
            produce,
            {"name": "consume", "needs": ["produce"],
             "placement": {"labels": {"node": "dst"}},
             "inputs": {"artifacts": {"big": "produce.big"}},
             "script": ("touch %(t)s/consumer.started\n"
                        "stat -c %%s $DROVER_INPUTS/big > %(t)s/consumer.size\n"
                        "sha256sum $DROVER_INPUTS/big | cut -d' ' -f1 > %(t)s/consumer.sha\n"
                        % {"t": tmp})},
        ],
    }


class BigArtifactTest(harness.DroverTestCase):

    def check_blobs(self):
        """Every blob file's content hashes to its name."""
        blobs = blob_files(self.c.state_dir)
        for name, path in blobs.items():
            self.assertEqual(sha256_file(path), name, "blob %s is corrupt" % path)
        return blobs

    def producer_sha(self, run):
        prod = task(run, "produce")
        ok = [h for h in prod["history"] if h["status"] == "SUCCEEDED"]
        self.assertEqual(len(ok), 1, prod)
        sha = harness.read_text(self.c.path("producer-%d.sha" % ok[0]["attempt"]), "").strip()
        self.assertRegex(sha, "^[0-9a-f]{64}$", "producer attempt %d wrote no sha" % ok[0]["attempt"])
        return sha

    def test_256mib_between_agents_bounded_memory_and_heartbeats(self):
        c = self.c
        size = 256 * MiB
        c.start_droverd()  # the harness runs droverd with --agent-timeout 2s
        c.start_agent("src", cpus=2, labels={"node": "src"}, heartbeat="200ms")
        c.start_agent("dst", cpus=2, labels={"node": "dst"}, heartbeat="200ms")
        rid = c.submit(transfer_spec(c.tmp, size))

        # While the artifact is in flight (after the producer's process
        # wrote its sha and before the producer is done; or after that and
        # before the consumer's process starts), droverd keeps hearing from
        # both agents: sample `drover agents` and how stale last_seen is.
        samples = []  # (phase, {agent: staleness ms}, {agent: last_seen_ms})
        started = c.path("consumer.started")

        def poll():
            check_daemons(c)
            run = c.get_run(rid)
            if run["status"] in harness.FINAL_RUN:
                return run
            prod = task(run, "produce")
            phase = None
            if os.path.exists(c.path("producer-1.sha")) and prod["status"] == "RUNNING":
                phase = "upload"
            elif prod["status"] == "SUCCEEDED" and not os.path.exists(started):
                phase = "fetch"
            if phase:
                before_ms = time.time() * 1000
                agents = c.agents_list()
                stale = {a["name"]: before_ms - a["last_seen_ms"] for a in agents}
                seen = {a["name"]: a["last_seen_ms"] for a in agents}
                connected = {a["name"]: a["connected"] for a in agents}
                self.assertEqual(connected, {"src": True, "dst": True}, "during the %s" % phase)
                samples.append((phase, stale, seen))
            return None

        run = harness.wait_until(poll, timeout=180, interval=0.05, what="run %s to finish" % rid)
        self.assertRunSucceeded(run)
        self.assertEqual(task(run, "produce")["agent"], "src")
        self.assertEqual(task(run, "consume")["agent"], "dst")

        # the consumer received exactly what the producer wrote
        self.assertEqual(harness.read_text(c.path("consumer.size"), "").strip(), str(size))
        want = self.producer_sha(run)
        self.assertEqual(harness.read_text(c.path("consumer.sha"), "").strip(), want,
                         "the consumer's copy differs from the producer's")
        blobs = self.check_blobs()
        self.assertIn(want, blobs, "the artifact is not stored under its sha256")
        self.assertEqual(os.path.getsize(blobs[want]), size)

        # heartbeats stayed on time: nothing lost, nobody re-registered
        for t in run["tasks"]:
            self.assertEqual(t["attempts"], 1, t)
            self.assertEqual([h["status"] for h in t["history"]], ["SUCCEEDED"], t)
        self.assertNotIn("lost: no heartbeat", c.droverd.log_text())
        for name, d in c.agents.items():
            text = d.log_text()
            self.assertNotIn("no word from droverd", text, "agent %s lost droverd" % name)
            self.assertNotIn("stalled", text, "agent %s: a transfer stalled" % name)
        phases = {p for p, _, _ in samples}
        sys.stderr.write("\n  %d in-flight samples (%s); worst staleness %s ms\n" % (
            len(samples), ", ".join(sorted(phases)),
            {n: round(max(s[1][n] for s in samples)) for n in ("src", "dst")} if samples else "-"))
        self.assertGreaterEqual(len(samples), 3, "the transfer was not observed in flight")
        for phase, stale, _ in samples:
            for name, ms in stale.items():
                self.assertLess(ms, 2000, "during the %s, droverd had not heard from %s for %d ms "
                                "(agent-timeout is 2s): %s" % (phase, name, ms, samples))
        for name in ("src", "dst"):
            distinct = {s[2][name] for s in samples}
            self.assertGreater(len(distinct), 1, "last_seen_ms of %s did not advance during the "
                               "transfer: %s" % (name, samples))

        # memory stayed bounded: no daemon ever held the artifact
        peaks = {"droverd": vm_hwm_bytes(c.droverd.pid)}
        for name, d in c.agents.items():
            peaks["agent " + name] = vm_hwm_bytes(d.pid)
        sys.stderr.write("  peak RSS: %s\n" % ", ".join(
            "%s %.1f MiB" % (k, v / MiB) for k, v in sorted(peaks.items())))
        if is_asan():
            sys.stderr.write("  (ASan build: shadow memory and the allocator's quarantine "
                             "inflate RSS; peak RSS not asserted)\n")
        else:
            for k, v in peaks.items():
                self.assertLess(v, 128 * MiB, "%s peaked at %.1f MiB for a %d MiB artifact"
                                % (k, v / MiB, size // MiB))

    def test_droverd_killed_during_upload(self):
        c = self.c
        size = 128 * MiB
        c.start_droverd()
        c.start_agent("src", cpus=2, labels={"node": "src"})
        c.start_agent("dst", cpus=2, labels={"node": "dst"})
        rid = c.submit(transfer_spec(c.tmp, size, producer_retries=2))

        # wait until droverd has a good part (but not all) of the blob in its
        # temp dir, then kill it
        def partial_upload():
            check_daemons(c)
            parts = {p: n for p, n in tmp_files(c.state_dir).items() if size // 8 <= n < size}
            if parts:
                return parts
            done = [p for p in blob_files(c.state_dir).values() if os.path.getsize(p) == size]
            if done:
                raise harness.Abort("the upload finished before it was seen in progress")
            return None

        parts = harness.wait_until(partial_upload, timeout=120, interval=0.01,
                                   what="a partly uploaded blob in %s/blobs/tmp" % c.state_dir)
        c.kill_droverd()
        sys.stderr.write("\n  killed droverd with %s\n" % ", ".join(
            "%s at %d of %d bytes" % (os.path.basename(p), n, size) for p, n in parts.items()))
        # what a crash left on disk is never taken for a blob
        self.check_blobs()
        c.start_droverd()

        run = wait_final(c, rid, timeout=180)
        self.assertRunSucceeded(run)
        want = self.producer_sha(run)
        self.assertEqual(harness.read_text(c.path("consumer.size"), "").strip(), str(size))
        self.assertEqual(harness.read_text(c.path("consumer.sha"), "").strip(), want,
                         "the consumer's copy differs from the producer's")
        blobs = self.check_blobs()
        self.assertIn(want, blobs)
        # the interrupted temp file does not stay behind
        harness.wait_until(lambda: not tmp_files(c.state_dir), timeout=30,
                           what="droverd's blob temp dir to be empty")
        self.assertEqual(task(run, "consume")["attempts"], 1, task(run, "consume"))


if __name__ == "__main__":
    harness.main()
