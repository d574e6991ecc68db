"""Unit tests of the Server-Sent Events parser (python/drover/sse.py)
against the WHATWG event-stream rules, fed whole and split at every byte."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from drover.sse import SSEParser  # noqa: E402

STREAM = (
    b"\xef\xbb\xbf: ping\r\n"          # BOM, then a comment
    b"retry: 1500\n"
    b"id: 41\n"
    b"event: task\n"
    b"data: {\"seq\": 41,\n"
    b"data:  \"to\": \"running\"}\n"   # one space after the colon is dropped, not two
    b"\n"
    b": ping\n"
    b"\r"                              # a blank line with nothing: no event
    b"event: run\r"                    # CR line ends
    b"id: 42\r"
    b"data\r"                          # a field without colon: empty value
    b"\r"
    b"id: 4\x003\n"                    # NUL in id: ignored
    b"retry: 2s\n"                     # not digits: ignored
    b"unknown: x\n"
    b"data: caf\xc3\xa9\n"
    b"\n"
    b"event: truncated\n"
    b"data: {\"first_seq\": 100}\n"
    b"\n"
    b"data: incomplete, never dispatched\n"
)


def parse_all(chunks):
    p = SSEParser()
    out = []
    for c in chunks:
        out.extend(p.feed(c))
    return p, [(e.event, e.data, e.id) for e in out]


WANT = [
    ("task", '{"seq": 41,\n "to": "running"}', "41"),
    ("run", "", "42"),
    ("message", "café", "42"),
    ("truncated", '{"first_seq": 100}', "42"),
]


class Parser(unittest.TestCase):
    def test_whole_stream(self):
        p, events = parse_all([STREAM])
        self.assertEqual(events, WANT)
        self.assertEqual(p.last_id, "42")
        self.assertEqual(p.retry_ms, 1500)

    def test_split_at_every_byte(self):
        for i in range(len(STREAM) + 1):
            _, events = parse_all([STREAM[:i], STREAM[i:]])
            self.assertEqual(events, WANT, "split at %d" % i)
        _, events = parse_all([STREAM[i:i + 1] for i in range(len(STREAM))])
        self.assertEqual(events, WANT)

    def test_crlf_split_between_cr_and_lf(self):
        p = SSEParser()
        self.assertEqual(p.feed(b"data: a\r"), [])
        self.assertEqual([e.data for e in p.feed(b"\n\r\n")], ["a"])

    def test_json_payload(self):
        p = SSEParser()
        ev = p.feed(b'id: 7\nevent: run\ndata: {"run_id": "r1", "to": "SUCCEEDED"}\n\n')[0]
        self.assertEqual(ev.json()["to"], "SUCCEEDED")

    def test_reset_drops_the_partial_event_and_its_id(self):
        # a reconnect must resume after the last event received whole: the
        # id of one cut off is not "seen" (else event 10 would be lost)
        p = SSEParser()
        p.feed(b"id: 9\ndata: x\n\nid: 10\ndata: part")
        self.assertEqual(p.last_id, "9")
        p.reset_event()
        self.assertEqual(p.last_id, "9")
        self.assertEqual([e.data for e in p.feed(b"data: y\n\n")], ["y"])


if __name__ == "__main__":
    unittest.main()
