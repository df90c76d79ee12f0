"""What the directory knows of one logged-in agent: a serialisable presence record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

AVAILABLE = "available"
AWAY = "away"
OFFLINE = "offline"
STATUSES = (AVAILABLE, AWAY, OFFLINE)
_PLAIN = frozenset({"plain_text"})


@attrs.define(eq=False)
class AgentPresence:
    """One logged-in agent's shared state: what routing and supervisors see.

    Values only (no live objects), so that a directory may keep it anywhere
    (:meth:`to_dict`). The node that holds the agent changes its record in place,
    as offers and conversations come and go (several times per decision, so no
    copy is made), and publishes it after each change. ``session`` names the login
    it belongs to (a re-login is a new session), ``node`` the gateway process.
    """

    name: str
    alias: str
    capacity: int
    protocol: str
    session: str
    client_name: str = "unknown"
    client_version: str = ""
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
    # Why the agent is away (a code of [desk] away_reasons), "" otherwise.
    reason: str = ""
    node: str = ""
    # The teams the agent belongs to (gateway.directory.teams), sorted.
    teams: tuple[str, ...] = ()
    # What the agent's IM software can show: plain text always, plus its features.
    capabilities: frozenset[str] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.capabilities = self.features | _PLAIN

    @property
    def load(self) -> int:
        """Conversations held plus offers outstanding."""
        return len(self.conversations) + len(self.offers)

    @property
    def has_room(self) -> bool:
        """True when the agent is available, not wrapping up, and below its capacity."""
        return self.status == AVAILABLE and not self.wrapping_up and self.load < self.capacity

    def took(self, conversation: str, protocol: str) -> None:
        """The agent is now in ``conversation`` with a customer on ``protocol``."""
        self.conversations.add(conversation)
        self.protocol_load[protocol] = self.protocol_load.get(protocol, 0) + 1

    def gave_up(self, conversation: str, protocol: str, now: float) -> None:
        """The agent is out of ``conversation``; idle from ``now`` if it was the last."""
        self.conversations.discard(conversation)
        count = self.protocol_load.get(protocol, 0)
        if count > 1:
            self.protocol_load[protocol] = count - 1
        else:
            self.protocol_load.pop(protocol, None)
        if not self.conversations:
            self.idle_since = now

    def room_for(self, protocol: str) -> bool:
        """Whether a conversation from a customer on ``protocol`` fits its limits."""
        limit = self.protocol_capacity.get(protocol)
        return limit is None or self.protocol_load.get(protocol, 0) < limit

    @property
    def state(self) -> str:
        """available, away, offline, full or wrap_up, as supervisors see it."""
        if self.status != AVAILABLE:
            return self.status
        if self.wrapping_up:
            return "wrap_up"
        return "full" if self.load >= self.capacity else AVAILABLE

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready values."""
        data = {name: getattr(self, name) for name in _FIELD_ORDER}
        for key in ("addresses", "features", "conversations", "offers", "teams"):
            data[key] = sorted(data[key])
        data["skills"] = dict(self.skills)
        data["protocol_capacity"] = dict(self.protocol_capacity)
        data["protocol_load"] = dict(self.protocol_load)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentPresence:
        """A record from :meth:`to_dict`'s values."""
        values = dict(data)
        values["addresses"] = tuple(values.get("addresses", ()))
        values["teams"] = tuple(values.get("teams", ()))
        values["features"] = frozenset(values.get("features", ()))
        for key in ("conversations", "offers"):
            values[key] = set(values.get(key, ()))
        return cls(**values)


_FIELD_ORDER = tuple(f.name for f in attrs.fields(AgentPresence) if f.init)
