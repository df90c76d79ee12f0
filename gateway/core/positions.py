"""Where a waiting customer stands: its place in line and the wait to promise."""

from __future__ import annotations

from typing import Any

from gateway.core import events as ev
from gateway.core.conversation import Conversation
from gateway.directory.records import AVAILABLE


def eta(view: Any, queue: Any, conv: Conversation, position: int, servable: dict) -> int | None:
    """The wait to promise at ``position``; None while no logged-in agent can serve
    the conversation's current target (``servable`` caches the answer per pool)."""
    pool = conv.task.pool if conv.task is not None else None
    if pool is None:
        return None
    can = servable.get(pool)
    if can is None:
        can = servable[pool] = any(
            (a := view.get(name)) is not None and a.status == AVAILABLE for name in pool.members
        )
    return queue.eta(position) if can else None


def standing(view: Any, queue: Any, conv: Conversation) -> ev.Queued | None:
    """Where ``conv`` stands in ``queue`` now (None when it is not in line); remembered
    as the position last told."""
    position = queue.position(conv) if queue is not None else 0
    if not position:
        return None
    conv.last_sent_position = (position, eta(view, queue, conv, position, {}))
    return ev.Queued(*conv.last_sent_position)
