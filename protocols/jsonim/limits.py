"""A JSON-IM session's frame limit, honoured for what others send it.

The session states ``max_frame`` in its welcome; a message whose frame would be over
it is refused to its sender (whatever protocol the sender speaks), and ``connected``'s
history is cut to fit.
"""

from __future__ import annotations

from typing import Any

import attrs

from gateway.core.events import Connected
from protocols.jsonim.codec import encode, event_frame

# A message frame's fields besides its text, at most, in bytes (ids, timestamps).
FRAME_OVERHEAD = 400
# What one character of text may become in a frame: a \uXXXX escape.
WORST_CHAR = 6


def refusal(event: Any, max_frame: int, agent: bool, rich: bool) -> str | None:
    """Why ``event`` (a Message) cannot be sent in a frame of at most ``max_frame``."""
    size = len(getattr(event, "text", "")) + len(getattr(event, "markup", None) or "")
    if size * WORST_CHAR + FRAME_OVERHEAD <= max_frame:
        return None  # fits however it is escaped: no need to encode it twice
    if len(encode(event_frame(event, agent=agent, rich=rich))) - 1 <= max_frame:
        return None
    return f"too long for the recipient (a JSON-IM frame is at most {max_frame} bytes)"


def fitted(event: Connected, frame: dict, max_frame: int, *, rich: bool) -> dict:
    """``connected`` within ``max_frame``: the oldest history lines left out (they are
    in the transcript) until it fits."""
    history = list(event.history)
    while history and len(encode(frame)) - 1 > max_frame:
        history.pop(0)
        frame = event_frame(attrs.evolve(event, history=tuple(history)), agent=True, rich=rich)
    return frame
