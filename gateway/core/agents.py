"""Agents logged in on this node: each one's live session beside its shared presence.

The directory (:mod:`gateway.directory`) holds every agent's
:class:`AgentPresence`, a value; a :class:`LiveAgent` is this node's link from that
record to the agent's session. Every change of presence goes through
:meth:`LiveAgent.change`, which publishes the new record, so the matching engine and
every node's view learn of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gateway.directory.records import AgentPresence

Publish = Callable[[AgentPresence], Any]


def _unpublished(presence: AgentPresence) -> None:
    """What a logged-out agent's changes go to: nowhere."""


class LiveAgent:
    """An agent logged in on this node: its session and its current presence record."""

    __slots__ = ("_publish", "presence", "session")

    def __init__(self, presence: AgentPresence, session: Any, publish: Publish) -> None:
        self.presence = presence
        self.session = session
        self._publish = publish

    def change(self, **fields: Any) -> AgentPresence:
        """Change ``fields`` of the presence record, and publish it."""
        presence = self.presence
        for name, value in fields.items():
            setattr(presence, name, value)
        if "features" in fields:
            presence.capabilities = presence.features | {"plain_text"}
        self._publish(presence)
        return presence

    def retire(self, **fields: Any) -> None:
        """The agent logged out: a last change, kept here; nothing is published any more."""
        self._publish = _unpublished
        self.change(**fields)

    # What the core reads of the record, by name.

    @property
    def name(self) -> str:
        """The account name (never shown to customers)."""
        return self.presence.name

    @property
    def alias(self) -> str:
        """The name customers see."""
        return self.presence.alias

    @property
    def status(self) -> str:
        """available, away or offline."""
        return self.presence.status

    @property
    def bot(self) -> bool:
        """An automated agent."""
        return self.presence.bot

    @property
    def protocol(self) -> str:
        """The protocol the agent is logged in with."""
        return self.presence.protocol

    @property
    def conversations(self) -> set[str]:
        """Conversation ids the agent is in."""
        return self.presence.conversations

    @property
    def offers(self) -> set[str]:
        """Offer ids the agent has not answered yet."""
        return self.presence.offers

    @property
    def addresses(self) -> tuple[str, ...]:
        """Public IM addresses, for redirect hosting."""
        return self.presence.addresses

    @property
    def has_room(self) -> bool:
        """Available, not wrapping up, below capacity."""
        return self.presence.has_room

    @property
    def wrapping_up(self) -> bool:
        """In wrap-up time after a conversation."""
        return self.presence.wrapping_up

    @property
    def lapses(self) -> int:
        """Offers let lapse in a row."""
        return self.presence.lapses

    def __getattr__(self, name: str) -> Any:
        # Anything else of the record (skills, load, state, capacity...), read through.
        if name == "presence":
            raise AttributeError(name)
        return getattr(self.presence, name)

    # Changes the core makes.

    def joined(self, conversation: str, protocol: str) -> None:
        """The agent took (or got back) a conversation with a customer on ``protocol``."""
        self.presence.took(conversation, protocol)
        self._publish(self.presence)

    def left(self, conversation: str, protocol: str, now: float) -> None:
        """The agent is no longer in a conversation; idle from ``now`` if it was the last."""
        self.presence.gave_up(conversation, protocol, now)
        self._publish(self.presence)

    def offered(self, offer: str) -> None:
        """An offer rings this agent."""
        self.presence.offers.add(offer)
        self._publish(self.presence)

    def unoffered(self, offer: str) -> bool:
        """An offer stopped ringing; False when it was not this agent's."""
        if offer not in self.presence.offers:
            return False
        self.presence.offers.discard(offer)
        self._publish(self.presence)
        return True


class LocalAgents:
    """The agents logged in on this node, by name."""

    def __init__(self) -> None:
        self._agents: dict[str, LiveAgent] = {}

    def get(self, name: str) -> LiveAgent | None:
        """The live agent named ``name`` on this node, or None."""
        return self._agents.get(name)

    def add(self, agent: LiveAgent) -> None:
        """An agent logged in here."""
        self._agents[agent.name] = agent

    def remove(self, agent: LiveAgent) -> None:
        """An agent logged out (only if it is still this login)."""
        if self._agents.get(agent.name) is agent:
            del self._agents[agent.name]

    def __iter__(self) -> Iterator[LiveAgent]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)
