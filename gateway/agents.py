"""The agent directory: logged-in agents and their live state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from zope.interface import implementer

from gateway.events import ClientInfo
from gateway.interfaces import IAgentDirectory

AVAILABLE = "available"
AWAY = "away"
OFFLINE = "offline"
STATUSES = (AVAILABLE, AWAY, OFFLINE)


@attrs.define(eq=False)
class AgentState:
    """One logged-in agent as the core and the router see it."""

    name: str
    alias: str
    capacity: int
    session: Any
    protocol: str
    client: ClientInfo
    skills: Mapping[str, int] = attrs.field(factory=dict)
    location: str = "lan"
    bot: bool = False
    # What the agent's IM software supports, as negotiated on its session.
    features: frozenset[str] = frozenset()
    status: str = AWAY
    # Conversation ids this agent is in, and offer ids it has not answered yet.
    conversations: set[str] = attrs.field(factory=set)
    offers: set[str] = attrs.field(factory=set)
    # When the agent last became free; the longest idle is offered first.
    idle_since: float = 0.0

    @property
    def load(self) -> int:
        """Conversations held plus offers outstanding."""
        return len(self.conversations) + len(self.offers)

    @property
    def has_room(self) -> bool:
        """True when the agent is available and below its capacity."""
        return self.status == AVAILABLE and self.load < self.capacity


@implementer(IAgentDirectory)
class AgentDirectory:
    """The in-process agent pool (a shared backend can replace it later)."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentState] = {}

    def get(self, name: str) -> AgentState | None:
        """The agent named ``name`` if logged in."""
        return self._agents.get(name)

    def add(self, state: AgentState) -> None:
        """Register a logged-in agent."""
        self._agents[state.name] = state

    def remove(self, name: str) -> None:
        """Forget an agent that logged out."""
        self._agents.pop(name, None)

    def candidates(self) -> Iterable[AgentState]:
        """Every logged-in agent."""
        return list(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)
