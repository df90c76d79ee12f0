"""Routing requests and decisions, and the first router: longest-idle available agent."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from gateway.events import ClientInfo
from gateway.interfaces import IAgentDirectory, IRouter


@attrs.frozen
class RoutingRequest:
    """Everything the router may weigh for one waiting conversation."""

    conversation: str
    queue: str
    protocol: str
    client: ClientInfo
    topic: str | None = None
    identity: Mapping[str, str] = attrs.field(factory=dict)
    skills: Mapping[str, int] = attrs.field(factory=dict)
    priority: int = 0
    # Agents not to offer it to (they rejected it, or let an offer lapse).
    exclude: frozenset[str] = frozenset()
    # Set when an agent transferred the conversation to a named colleague.
    agent: str | None = None


@attrs.frozen
class Decision:
    """The router's answer; ``agent`` is None when nobody can take it now."""

    agent: str | None
    queue: str
    reason: str
    source: str


@implementer(IRouter)
class FirstAvailableRouter:
    """Offers to the available agent with spare capacity who has been idle longest."""

    source = "first-available"

    def __init__(self, directory: IAgentDirectory) -> None:
        self._directory = directory

    def route(self, request: RoutingRequest) -> Deferred[Decision]:
        """Pick among agents with room, the least loaded and longest idle first."""
        candidates = [
            a
            for a in self._directory.candidates()
            if a.has_room
            and a.name not in request.exclude
            and (request.agent is None or a.name == request.agent)
        ]
        if not candidates:
            return succeed(Decision(None, request.queue, "no agent has room", self.source))
        best = min(candidates, key=lambda a: (a.load, a.idle_since, a.name))
        reason = f"least loaded, longest idle of {len(candidates)}"
        return succeed(Decision(best.name, request.queue, reason, self.source))
