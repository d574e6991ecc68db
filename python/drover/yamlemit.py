"""A small YAML emitter for pipeline specs: block style a person would write.

Design: the output is meant to be read and diffed by people, so it looks
like the hand-written specs in examples/: the document, `params:`,
`defaults:`, `templates:` and the `steps:` lists are block style; inside
a step (or any record below the second level) small mappings and lists are
written in flow style (`{cpu: 1, memory: 256Mi}`, `[prepare]`) when they
fit on the line; multi-line strings are literal block scalars (`|`).

Invariants (what makes the output correct YAML for any input):
- a string is written plain only when every YAML 1.1 and 1.2 reader reads
  it back as that same string: not a number, bool or null look-alike
  (`"1"`, `"0.5"`, `"1e3"`, `"yes"`, `"null"`, `"~"`), no indicator at the
  start, no `: ` or ` #`, no leading/trailing space, and in flow context
  none of `,[]{}:`; a `{{ ... }}` template is always quoted;
- otherwise it is single-quoted (when it holds `"` or `\\` but no `'`) or
  double-quoted with escapes for `\\`, `"` and every non-printable char;
- a literal block is used only for printable multi-line text whose lines
  have no leading/trailing surprises the header cannot express; the chomping
  indicator (`|`, `|-`, `|+`) keeps the trailing newlines exactly.
Mapping keys keep the dict's order (Python dicts are ordered).
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["dump", "scalar", "Block", "FLOW_WIDTH"]

#: Lines longer than this are written in block style instead of flow.
FLOW_WIDTH = 100

_BOOL_NULL = {
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "",
}
_NUMBER_RE = re.compile(
    r"""^[-+]?(
        0x[0-9a-fA-F_]+ | 0o[0-7_]+ | 0b[01_]+ |
        [0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)? |
        ([0-9][0-9_]*)?\.?[0-9_]*([eE][-+]?[0-9]+)? |
        \.(inf|Inf|INF|nan|NaN|NAN)
    )$""",
    re.X,
)
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_FLOW_CHARS = set(",[]{}:?")  # PyYAML ends a flow plain scalar at "?" too
# line breaks for a YAML 1.1 reader (1.2 has only CR and LF): never plain,
# never inside single quotes or a literal block
_BREAKS = "\n\r\x85\u2028\u2029"


class Block(dict):
    """A mapping always written in block style (a record: a step, the
    document, `params:`), whatever its size."""


class BlockList(list):
    """A list always written in block style (`steps:`, `finally:`)."""


def _printable(ch: str) -> bool:
    o = ord(ch)
    return (
        ch in "\t\n"
        or 0x20 <= o <= 0x7E
        or o == 0x85
        or 0xA0 <= o <= 0xD7FF
        or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)
        or 0x10000 <= o <= 0x10FFFF
    )


def _looks_typed(s: str) -> bool:
    """True when a YAML reader could resolve s (plain) to a non-string."""
    if s.lower() in _BOOL_NULL or s in ("=", "<<"):
        return True
    if not any(c.isdigit() for c in s) and not s.lower().lstrip("+-") in (".inf", ".nan"):
        return False
    return bool(_NUMBER_RE.match(s))


def _plain_ok(s: str, flow: bool) -> bool:
    if not s or _looks_typed(s):
        return False
    if "{{" in s or "}}" in s:
        return False
    if s[0].isspace() or s[-1].isspace() or s.endswith(":"):
        return False
    if s.startswith(("---", "...")):
        return False
    if s[0] in _INDICATORS:
        # "-x" / "--rows" are plain in block and flow context alike
        if not (s[0] == "-" and len(s) > 1 and s[1] not in " \t"
                and not (flow and s[1] in _FLOW_CHARS)):
            return False
    if ": " in s or " #" in s or "\t" in s:
        return False
    if any(not _printable(c) or c in _BREAKS for c in s):
        return False
    if flow and any(c in _FLOW_CHARS for c in s):
        return False
    return True


def _double(s: str) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c == "\0":
            out.append("\\0")
        elif _printable(c) and c not in _BREAKS:
            out.append(c)
        elif o <= 0xFF:
            out.append("\\x%02x" % o)
        elif o <= 0xFFFF:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


def _quoted(s: str) -> str:
    simple = all(_printable(c) and c not in _BREAKS and c != "\t" for c in s)
    if simple and "'" not in s and ('"' in s or "\\" in s):
        return "'" + s + "'"
    return _double(s)


def scalar(v: Any, flow: bool = False) -> str:
    """One scalar as YAML text on one line (never a block scalar)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return ".nan"
        if v in (float("inf"), float("-inf")):
            return ".inf" if v > 0 else "-.inf"
        return repr(v)
    s = str(v)
    return s if _plain_ok(s, flow) else _quoted(s)


def _literal_ok(s: str) -> bool:
    if "\n" not in s.rstrip("\n") and not s.endswith("\n"):
        return False
    if not s.strip() or any(not _printable(c) or (c in _BREAKS and c != "\n") for c in s):
        return False
    # trailing spaces on a line are kept by a literal block, but a line of
    # only spaces before the end is confusing: use quotes then
    body = s.rstrip("\n")
    return not any(line and not line.strip() for line in body.split("\n"))


def _literal(s: str, indent: int) -> str:
    """s as a literal block scalar: the header then its lines at indent."""
    body = s.rstrip("\n")
    trailing = len(s) - len(body)
    header = "|"
    first = next((line for line in body.split("\n") if line), "")
    if first.startswith(" ") or body.startswith("\n"):
        header += "2"
    header += {0: "-", 1: ""}.get(trailing, "+")
    pad = " " * indent
    lines = [(pad + line) if line else "" for line in body.split("\n")]
    extra = [""] * (trailing - 1) if trailing > 1 else []
    return header + "\n" + "\n".join(lines + extra) + "\n"


def _flow(v: Any) -> str | None:
    """v in flow style, or None when it cannot be (a multi-line string)."""
    if isinstance(v, dict):
        parts = []
        for k, x in v.items():
            fx = _flow(x)
            if fx is None:
                return None
            parts.append("%s: %s" % (scalar(k, flow=True), fx))
        return "{" + ", ".join(parts) + "}"
    if isinstance(v, (list, tuple)):
        parts = []
        for x in v:
            fx = _flow(x)
            if fx is None:
                return None
            parts.append(fx)
        return "[" + ", ".join(parts) + "]"
    if isinstance(v, str) and ("\n" in v or "\r" in v):
        return None
    return scalar(v, flow=True)


def _is_container(v: Any) -> bool:
    return isinstance(v, (dict, list, tuple))


def _value(v: Any, indent: int, depth: int, col: int) -> str:
    """The text after 'key:' or '-' (starting with ' ' or '\\n'), ending
    with a newline. col = the column the key or dash started at."""
    if _is_container(v):
        if not v:
            return " {}\n" if isinstance(v, dict) else " []\n"
        if depth >= 2 and not isinstance(v, (Block, BlockList)):
            f = _flow(v)
            if f is not None and col + 1 + len(f) <= FLOW_WIDTH:
                return " " + f + "\n"
        return "\n" + _block(v, indent, depth)
    if isinstance(v, str) and _literal_ok(v):
        return " " + _literal(v, indent)
    return " " + scalar(v) + "\n"


def _block(v: Any, indent: int, depth: int) -> str:
    pad = " " * indent
    out = []
    if isinstance(v, dict):
        for k, x in v.items():
            key = scalar(k)
            out.append(pad + key + ":" + _value(x, indent + 2, depth + 1, indent + len(key) + 1))
        return "".join(out)
    for x in v:
        if isinstance(x, dict) and x:
            f = None if depth < 2 or isinstance(x, Block) else _flow(x)
            if f is not None and indent + 2 + len(f) <= FLOW_WIDTH:
                out.append(pad + "- " + f + "\n")
            else:
                inner = _block(x, indent + 2, depth + 1)
                out.append(pad + "- " + inner[indent + 2:])
        else:
            out.append(pad + "-" + _value(x, indent + 2, depth + 1, indent + 1))
    return "".join(out)


def dump(doc: Any) -> str:
    """doc (dicts, lists, str, int, float, bool, None) as a YAML document.

    The document and the containers directly under it are block style;
    deeper containers are flow style when they fit in FLOW_WIDTH columns
    and hold no multi-line string (Block / BlockList force block style)."""
    if _is_container(doc):
        if not doc:
            return "{}\n" if isinstance(doc, dict) else "[]\n"
        return _block(doc, 0, 0)
    if isinstance(doc, str) and _literal_ok(doc):
        return _literal(doc, 2)
    return scalar(doc) + "\n"
