"""Neutral events: what the core tells a party, whatever protocol it speaks.

Adapters render these to their wire format; the core never sees bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

# Who wrote a message, as a party sees it.
CUSTOMER = "customer"
AGENT = "agent"
SYSTEM = "system"

# Why a conversation ended (JSON-IM `ended.reason`).
END_REASONS = frozenset({"customer", "agent", "timeout", "no_agents", "closed", "shutdown"})

# Why an offer was withdrawn (JSON-IM `revoked.reason`).
REVOKE_REASONS = frozenset({"timeout", "taken", "customer_left"})

# What a receipt says of a message: its recipient's client has it, or has shown it.
RECEIPT_STATES = ("delivered", "read")


@attrs.frozen
class ClientInfo:
    """The IM software a party runs, as the router sees it."""

    name: str = "unknown"
    version: str = ""


@attrs.frozen
class Choice:
    """One answer offered by an interview prompt."""

    value: str
    label: str


@attrs.frozen
class CustomerCard:
    """What an agent is told about a customer in an offer."""

    alias: str
    protocol: str
    client: ClientInfo
    topic: str | None
    identity: Mapping[str, str]


@attrs.frozen
class HistoryEntry:
    """One earlier line of a conversation, replayed to a joining agent."""

    sender: str
    text: str
    ts: float


@attrs.frozen
class Prompt:
    """The interview asks the customer a question."""

    field: str
    text: str
    choices: tuple[Choice, ...] = ()


@attrs.frozen
class Queued:
    """The customer's place in the queue; sent on entry and on every change."""

    position: int
    eta_s: int


@attrs.frozen
class Connected:
    """A conversation now joins this party with the other side.

    For a customer ``peer_alias`` is the agent's alias and ``history`` is empty;
    for an agent it is the customer's alias and ``history`` what was said before.
    """

    conversation: str
    peer_alias: str
    history: tuple[HistoryEntry, ...] = ()


@attrs.frozen
class Message:
    """A stored message, delivered to the other side of a conversation."""

    conversation: str
    sender: str
    msg: str
    text: str
    ts: float
    # The sender's formatting (the markup subset of the rich_text feature), for
    # parties that show it; ``text`` is always its plain rendering.
    markup: str | None = None


@attrs.frozen
class Receipt:
    """The other side's client has received (``delivered``) or shown (``read``) a message."""

    conversation: str
    msg: str
    state: str


@attrs.frozen
class Typing:
    """The other side started or stopped typing."""

    conversation: str
    state: str


@attrs.frozen
class Ended:
    """The conversation is over for this party."""

    conversation: str
    reason: str


@attrs.frozen
class Offer:
    """An agent is offered a conversation."""

    offer: str
    conversation: str
    expires_in_s: int
    customer: CustomerCard


@attrs.frozen
class Revoked:
    """An offer was withdrawn before the agent accepted it."""

    offer: str
    reason: str


@attrs.frozen
class Notice:
    """Something the gateway tells an agent outside any conversation."""

    text: str
