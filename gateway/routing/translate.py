"""The ``translate`` fallback: what the gateway converts for an agent whose IM software
lacks a feature the customer's side uses.

When a compatibility entry's fallback is ``translate`` and no logged-in agent has
everything the entry requires, routing offers the conversation anyway; the features
the accepting agent lacks are recorded with the decision (``translated``) and every
event the core sends that agent goes through :func:`convert` first:

- ``rich_text``: a message's markup becomes plain text (:func:`markup_to_plain`: bold
  and italic markers go, ``[label](URL)`` reads ``label (URL)``, escapes resolve);
- ``typing``: typing notifications are not sent (the software would show nothing);
- ``receipts``: receipts are not sent.

The markup is the subset the JSON-IM ``rich_text`` feature proposes (docs/jsonim.md):
line by line, ``**bold**``, ``*italic*`` or ``_italic_``, ``[label](URL)`` links, and
``\\`` escaping one of ``\\ * _ [ ] ( ) ```.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

import attrs

_LINK = re.compile(r"\[([^\[\]\n]{1,500})\]\(((?:https?://|mailto:)[^\s()]{1,2000})\)")
_ESCAPE = re.compile(r"\\([\\*_\[\]()`])")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*\\])\*(?![\w*])")
_ITALIC_LINE = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_\\])_(?![\w_])")
# Escaped characters stand aside while markers are removed, then come back.
_HELD = "\x00{}\x00"


def markup_to_plain(markup: str) -> str:
    """The plain text a client without ``rich_text`` is shown for ``markup``."""
    held: list[str] = []

    def hold(match: re.Match[str]) -> str:
        held.append(match.group(1))
        return _HELD.format(len(held) - 1)

    text = _ESCAPE.sub(hold, markup)
    text = _LINK.sub(lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m[1]} ({m[2]})", text)
    for pattern in (_BOLD, _ITALIC_STAR, _ITALIC_LINE):
        text = pattern.sub(r"\1", text)
    return re.sub("\x00(\\d+)\x00", lambda m: held[int(m.group(1))], text)


def _plain_message(event: Any) -> Any:
    markup = getattr(event, "markup", None)
    if markup is None:
        return event
    # A message's text is its plain rendering already where the sender's adapter made one.
    return attrs.evolve(event, text=event.text or markup_to_plain(markup), markup=None)


def _without(kind: str) -> Callable[[Any], Any]:
    return lambda event: None if type(event).__name__ == kind else event


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "rich_text": _plain_message,
    "typing": _without("Typing"),
    "receipts": _without("Receipt"),
}


def convert(event: Any, lacking: Collection[str]) -> Any:
    """``event`` as software without ``lacking`` features is sent it; None: not sent."""
    for feature in lacking:
        converter = CONVERTERS.get(feature)
        if converter is not None:
            event = converter(event)
            if event is None:
                return None
    return event
