"""API clients that do not read their replies (issue 12, defect 4).

A real socket speaks ZMTP to droverd's API socket (the minimal NULL client
of test_malformed.py: it reads nothing at all once the handshake is done,
so the kernel buffers fill and every further reply stays in droverd). It
asks again and again for a run of 3,000 tasks. droverd must keep what it
holds for that peer under --api-peer-queue (bytes), drop the peer and count
it in `drover status`, keep answering everyone else, and give the memory
back when the peer goes away.
"""
import math
import os
import socket
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import DroverTestCase, check_daemons, main, wait_until  # noqa: E402
from test_malformed import Zmtp, pb_bytes  # noqa: E402

MiB = 1 << 20
BOUND = 8 * MiB
SLACK = 24 * MiB  # allocator slack, ZMQ's own buffers, the other clients' replies


def is_asan():
    with open(harness.bin_path("droverd"), "rb") as f:
        return b"__asan_init" in f.read()


def proc_kib(pid, field):
    """A field of /proc/PID/status in bytes (VmRSS, VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def get_run_request(rid):
    return pb_bytes(3, pb_bytes(1, rid))  # ApiRequest.get_run = RunRequest{id}


def recv_msg(z):
    """One whole message (a list of frames) from a Zmtp client."""
    frames = []
    while True:
        flags = z.recv_exact(1)[0]
        size = struct.unpack(">Q", z.recv_exact(8))[0] if flags & 2 else z.recv_exact(1)[0]
        body = z.recv_exact(size)
        if flags & 4:
            continue  # a command (PING), not a frame
        frames.append(body)
        if not flags & 1:
            return frames


class UnreadRepliesTest(DroverTestCase):
    def api_client(self):
        z = Zmtp(socket.AF_UNIX, os.path.join(self.c.tmp, "api.sock"), timeout=30 * harness.SCALE)
        self.assertEqual(z.handshake(b"DEALER"), b"NULL")
        return z

    def dropped(self):
        return self.c.cli_json("status")["counters"].get("dropped_api_peers", 0)

    def test_a_client_that_never_reads_is_dropped_and_droverd_stays_small(self):
        c = self.c
        c.start_droverd(extra=["--api-peer-queue", "8Mi"])
        self.assertEqual(c.cli_json("status")["limits"]["api-peer-queue"], BOUND)
        rid = c.submit({"name": "wide", "steps": [
            {"name": "fan", "for_each": {"range": 3000}, "command": ["true"]}]})
        self.assertGreaterEqual(len(c.get_run(rid)["tasks"]), 3000)  # no agent: all READY

        # one well-behaved raw client: the size of one answer
        z = self.api_client()
        z.send_msg(b"", get_run_request(rid))
        frames = recv_msg(z)
        z.close()
        self.assertEqual(frames[0], b"", "replies start with the empty delimiter")
        size = len(frames[-1])
        self.assertGreater(size, 64 << 10, "a 3,000-task run view should be large")
        pid = c.droverd.pid
        rss0 = proc_kib(pid, "VmRSS")
        limit = 2 * BOUND + SLACK
        n = min(8000, math.ceil(3 * limit / size))  # 3x the limit if all were kept
        sys.stderr.write("  reply %d KiB; %d unread requests; droverd RSS %.1f MiB\n"
                         % (size >> 10, n, rss0 / MiB))

        # the client that never reads
        bad = self.api_client()
        self.addCleanup(bad.close)
        for _ in range(n):
            bad.send_msg(b"", get_run_request(rid))

        def dropped_or_grown():
            check_daemons(c)
            rss = proc_kib(pid, "VmRSS")
            if rss > rss0 + limit and not is_asan():
                raise harness.Abort("droverd grew from %.1f to %.1f MiB holding replies nobody "
                                    "reads (bound %d MiB)" % (rss0 / MiB, rss / MiB, BOUND // MiB))
            return self.dropped() >= 1

        wait_until(dropped_or_grown, timeout=120, interval=0.2,
                   what="the unread client to be dropped (drover status: dropped_api_peers)")

        # everyone else is still answered while the dropped peer stays connected
        self.assertGreaterEqual(len(c.get_run(rid)["tasks"]), 3000)
        self.assertEqual(self.dropped(), 1)
        hwm = proc_kib(pid, "VmHWM")
        sys.stderr.write("  dropped; droverd peak RSS %.1f MiB\n" % (hwm / MiB))
        if not is_asan():
            self.assertLess(hwm, rss0 + limit, "droverd peaked at %.1f MiB (from %.1f MiB) for "
                            "replies nobody reads" % (hwm / MiB, rss0 / MiB))

        # the client goes away: droverd gives back what it held for it
        bad.close(reset=True)
        if is_asan():
            sys.stderr.write("  (ASan build: the allocator's quarantine keeps freed memory; "
                             "RSS not asserted)\n")
        else:
            rss = [proc_kib(pid, "VmRSS")]

            def rss_back():
                rss.append(proc_kib(pid, "VmRSS"))
                return rss[-1] < rss0 + 16 * MiB

            try:
                wait_until(rss_back, timeout=60, what="droverd's RSS to return near its baseline")
            except AssertionError:
                self.fail("droverd still has %.1f MiB (from %.1f MiB) after the client left"
                          % (rss[-1] / MiB, rss0 / MiB))
        self.assertEqual(self.dropped(), 1, "one peer, counted once")
        self.assertEqual(c.droverd.log_text().count("not reading its replies"), 1,
                         "the drop is logged once")
        # and a new connection is a new peer, answered as usual
        z = self.api_client()
        z.send_msg(b"", get_run_request(rid))
        self.assertEqual(len(recv_msg(z)[-1]), size)
        z.close()


if __name__ == "__main__":
    main()
