"""The agent directory: logged-in agents and their live state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from zope.interface import implementer

from gateway.core.events import ClientInfo
from gateway.core.interfaces import IAgentDirectory

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
    # Public IM addresses ("xmpp:anna@corp.example"), for redirect hosting.
    addresses: tuple[str, ...] = ()
    # What the agent's IM software supports, as negotiated on its session.
    features: frozenset[str] = frozenset()
    status: str = AWAY
    # Conversation ids this agent is in, and offer ids it has not answered yet.
    conversations: set[str] = attrs.field(factory=set)
    offers: set[str] = attrs.field(factory=set)
    # When the agent last became free; the longest idle is offered first.
    idle_since: float = 0.0
    # Concurrent conversations per customer protocol, where limited separately.
    protocol_capacity: Mapping[str, int] = attrs.field(factory=dict)
    protocol_load: dict[str, int] = attrs.field(factory=dict)
    # Set for agents.wrap_up_s after each conversation: no offers meanwhile.
    wrapping_up: bool = False
    # Offers let lapse in a row; at agents.max_lapsed_offers the agent is set away.
    lapses: int = 0
    # Bookkeeping of the matching engine.
    version: int = 0
    last_offer_seq: int = 0

    @property
    def load(self) -> int:
        """Conversations held plus offers outstanding."""
        return len(self.conversations) + len(self.offers)

    @property
    def has_room(self) -> bool:
        """True when the agent is available, not wrapping up, and below its capacity."""
        return self.status == AVAILABLE and not self.wrapping_up and self.load < self.capacity

    def room_for(self, protocol: str) -> bool:
        """Whether a conversation from a customer on ``protocol`` fits its limits."""
        limit = self.protocol_capacity.get(protocol)
        return limit is None or self.protocol_load.get(protocol, 0) < limit

    @property
    def capabilities(self) -> frozenset[str]:
        """What the agent's IM software can show: plain text always, plus its features."""
        return self.features | {"plain_text"}

    @property
    def state(self) -> str:
        """available, away, offline, full or wrap_up, as supervisors see it."""
        if self.status != AVAILABLE:
            return self.status
        if self.wrapping_up:
            return "wrap_up"
        return "full" if self.load >= self.capacity else AVAILABLE


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
