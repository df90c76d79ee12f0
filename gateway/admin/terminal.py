"""What the admin commands print: tables and JSON, and text made safe for a terminal.

Customers' and agents' words (names, topics, messages) reach an admin's terminal
through these: control characters could start escape sequences or forge a line, and
direction overrides could make a line read differently from what was sent, so they
are shown escaped, never obeyed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

# Zero-width (non-)joiners are part of how some scripts are written: kept as they are.
_JOINERS = frozenset("\u200c\u200d")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clean(text: Any) -> str:
    """``text`` with what a terminal would not show as itself escaped."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in _JOINERS else _escape(c) for c in text)


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell, every cell cleaned."""
    cleaned = [[clean(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cleaned)) for i, h in enumerate(headers)]
    for row in (headers, *cleaned):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def print_json(value: Any) -> None:
    """Indented JSON; non-ASCII escaped, so nothing in it can steer the terminal."""
    print(json.dumps(value, indent=2))


def iso(ts: float | None, *, ms: bool = False) -> str:
    """A POSIX time in UTC as ISO 8601 (``Z``), to the second or the millisecond; ``-``
    for none."""
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts, tz=UTC)
    spec = "milliseconds" if ms else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")
