"""The markup subset of the ``rich_text`` feature, and its plain-text rendering.

A client that negotiated ``rich_text`` may write a message as ``markup``; the server
keeps its plain rendering as the message's ``text`` (what transcripts hold and plain
clients are shown: the ``translate`` fallback) and passes the markup on to parties
that negotiated ``rich_text`` too. The grammar, line by line (LF is a line break):

- ``\\`` before one of ``\\ * _ [ ] ( ) ` `` is that character, literally;
- ``**text**`` is bold; ``*text*`` and ``_text_`` are italic. An opening marker is
  followed by a non-space other than ``*``, a closing one preceded by a non-space
  other than ``*`` and ``\\``; a single ``*`` or ``_`` touches no letter or digit on
  its outer side and no other marker character, so ``snake_case`` and ``2*3*4`` stay
  text. The closer is the first valid one on the line; without one the marker is
  text. Bold and italic nest once inside each other;
- ``[label](URL)`` is a link, the URL ``http://``, ``https://`` or ``mailto:``, with
  no spaces or parentheses, the label without brackets;
- a bare ``http://`` or ``https://`` URL is a link (``.,;:!?`` at its end are not);
- everything else, HTML included, is text.

The widget and the agent console (``protocols/web/static``) parse the same grammar
into DOM nodes, never into HTML.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any

ESCAPABLE = frozenset("\\*_[]()`")
_LINK = re.compile(r"\[([^\[\]\n]{1,500})\]\(((?:https?://|mailto:)[^\s()]{1,2000})\)")
_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+")
_URL_TRAILING = ".,;:!?"

# Nodes: ("text", str), ("br",), ("b", [nodes]), ("i", [nodes]), ("a", url, label).
Node = tuple[Any, ...]


def parse(markup: str) -> list[Node]:
    """The markup's nodes, line by line."""
    nodes: list[Node] = []
    for i, line in enumerate(markup.split("\n")):
        if i:
            nodes.append(("br",))
        nodes.extend(_inline(line, frozenset()))
    return nodes


def to_plain(markup: str) -> str:
    """The plain text a client without ``rich_text`` is shown for ``markup``."""
    return "".join(_plain(node) for node in parse(markup))


def _plain(node: Node) -> str:
    kind = node[0]
    if kind == "text":
        return node[1]
    if kind == "br":
        return "\n"
    if kind == "a":
        url, label = node[1], node[2]
        return url if label == url else f"{label} ({url})"
    return "".join(_plain(child) for child in node[1])


def _word(char: str) -> bool:
    return char.isalnum()


def _opens(s: str, pos: int, marker: str) -> bool:
    after = pos + len(marker)
    if after >= len(s) or s[after].isspace() or s[after] == "*":
        return False
    if marker == "**":
        return True
    before = s[pos - 1] if pos else " "
    return not (_word(before) or before in "*_" or s[after] == "_")


def _closers(s: str, marker: str) -> list[int]:
    """Positions where ``marker`` may close, in order (independent of the opener)."""
    found = []
    start = 0
    while True:
        q = s.find(marker, start)
        if q < 0:
            return found
        start = q + 1
        before = s[q - 1] if q else " "
        if before.isspace() or before in "\\*":
            continue
        if marker == "**":
            found.append(q)
            start = q + 2
            continue
        after = s[q + 1] if q + 1 < len(s) else " "
        if not (_word(after) or after in "*_" or before == "_"):
            found.append(q)


def _inline(s: str, open_markers: frozenset[str]) -> list[Node]:
    out: list[Node] = []
    buf: list[str] = []
    closers: dict[str, list[int]] = {}
    pos, n = 0, len(s)

    def flush() -> None:
        if buf:
            out.append(("text", "".join(buf)))
            buf.clear()

    while pos < n:
        c = s[pos]
        if c == "\\" and pos + 1 < n and s[pos + 1] in ESCAPABLE:
            buf.append(s[pos + 1])
            pos += 2
            continue
        if c == "[":
            m = _LINK.match(s, pos)
            if m:
                flush()
                out.append(("a", m.group(2), m.group(1)))
                pos = m.end()
                continue
        elif c in "*_":
            marker = "**" if s.startswith("**", pos) else c
            if marker not in open_markers and _opens(s, pos, marker):
                if marker not in closers:
                    closers[marker] = _closers(s, marker)
                found = closers[marker]
                at = bisect_left(found, pos + len(marker) + 1)
                if at < len(found):
                    end = found[at]
                    flush()
                    inner = _inline(s[pos + len(marker) : end], open_markers | {marker})
                    out.append(("b" if marker == "**" else "i", inner))
                    pos = end + len(marker)
                    continue
            buf.append(marker)
            pos += len(marker)
            continue
        elif c == "h" and (pos == 0 or not _word(s[pos - 1])):
            m = _URL.match(s, pos)
            if m:
                url = m.group(0).rstrip(_URL_TRAILING)
                if not url.endswith("://"):
                    flush()
                    out.append(("a", url, url))
                    pos += len(url)
                    continue
        buf.append(c)
        pos += 1
    flush()
    return out
