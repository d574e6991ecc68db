"""A Server-Sent Events parser (the WHATWG "event stream" format).

Design: SSEParser is fed bytes as they arrive (any split, even inside a
UTF-8 character or between CR and LF) and returns the complete events.
It follows the spec's rules: lines end with CRLF, LF or CR; a line
starting with ':' is a comment (drover-web's `: ping` keep-alives);
`field: value` with one optional space after the colon removed; a line
without a colon is a field with an empty value; `data` lines are joined
with "\\n"; `id` sets the last event id buffer (kept across events, ignored
when it contains NUL), which becomes last_id, the id to resume from, only
at the blank line ending the event; `retry` with digits only sets the reconnection delay; a
blank line dispatches the event (none when no data line was seen, as the
spec says, but the id still counts); unknown fields are ignored; a BOM at
the very start is dropped. An incomplete event at the end of a stream is
dropped (the spec's rule), so a reader that reconnects with Last-Event-ID
gets it again whole.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Iterable, Iterator

__all__ = ["Event", "SSEParser", "iter_events"]


@dataclass
class Event:
    """One dispatched event: type ("message" when none was named), data,
    and the last event id in effect when it was dispatched."""

    event: str
    data: str
    id: str

    def json(self):  # noqa: ANN201 - any JSON value
        """data decoded as JSON."""
        import json

        return json.loads(self.data)


class SSEParser:
    """Incremental parser; feed() bytes, get events. State: last_id (for
    Last-Event-ID on reconnect: set it to start from an id) and retry_ms (None until the server set it)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf = ""
        self._started = False
        self._skip_lf = False
        self._data: list[str] = []
        self._has_data = False
        self._event = ""
        self._id_buf = ""
        self.last_id = ""
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse chunk; return the events it completed, in order."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = False
        self._buf += text
        out: list[Event] = []
        while True:
            i_cr = self._buf.find("\r")
            i_lf = self._buf.find("\n")
            ends = [i for i in (i_cr, i_lf) if i >= 0]
            if not ends:
                break
            i = min(ends)
            line = self._buf[:i]
            if self._buf[i] == "\r":
                if i + 1 < len(self._buf):
                    rest = self._buf[i + 2:] if self._buf[i + 1] == "\n" else self._buf[i + 1:]
                else:
                    rest = ""
                    self._skip_lf = True  # a LF may follow in the next chunk
            else:
                rest = self._buf[i + 1:]
            self._buf = rest
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        return out

    def _line(self, line: str) -> Event | None:
        if line == "":
            self.last_id = self._id_buf  # the spec: committed at each blank line
            if not self._has_data:
                self._event = ""
                return None
            ev = Event(self._event or "message", "\n".join(self._data), self.last_id)
            self._data, self._has_data, self._event = [], False, ""
            return ev
        if line.startswith(":"):
            return None
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id_buf = value
        elif field == "retry":
            if value.isdigit() and value.isascii():
                self.retry_ms = int(value)
        return None

    def resume_from(self, event_id: str) -> None:
        """Start as if event_id was the last event received (a reader that
        wants the events after a known seq)."""
        self.last_id = self._id_buf = event_id

    def reset_event(self) -> None:
        """Forget a partly received event (the connection dropped): the
        spec drops it; last_id and retry_ms are kept for the reconnect."""
        self._decoder.reset()
        self._id_buf = self.last_id
        self._buf = ""
        self._skip_lf = False
        self._data, self._has_data, self._event = [], False, ""


def iter_events(chunks: Iterable[bytes], parser: SSEParser | None = None) -> Iterator[Event]:
    """The events of a stream given as an iterable of byte chunks."""
    p = parser or SSEParser()
    for chunk in chunks:
        yield from p.feed(chunk)
