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
class PastConversation:
    """One earlier conversation of a recognised customer, as an agent is shown it."""

    conversation: str
    started: float
    topic: str | None = None
    disposition: str | None = None
    agent_alias: str | None = None


@attrs.frozen
class CustomerCard:
    """What an agent is told about a customer in an offer.

    ``history`` summarises a recognised customer's earlier conversations, newest first.
    """

    alias: str
    protocol: str
    client: ClientInfo
    topic: str | None
    identity: Mapping[str, str]
    history: tuple[PastConversation, ...] = ()


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
    """The customer's place in the queue; sent on entry and on every change.

    ``position`` counts in the order customers are served (priority first); ``eta_s``
    is None when no logged-in agent can serve the customer: no time is promised.
    """

    position: int
    eta_s: int | None


@attrs.frozen
class Connected:
    """A conversation now joins this party with the other side.

    For a customer ``peer_alias`` is the agent's alias and ``history`` is empty;
    for an agent it is the customer's alias and ``history`` what was said before.
    ``role`` is ``agent`` for the conversation's agent; a supervisor or colleague
    beside it joins as ``monitor``, ``consult``, ``conference`` or ``barge``, with
    ``agent_alias`` the agent's. ``past`` summarises a recognised customer's earlier
    conversations.
    """

    conversation: str
    peer_alias: str
    history: tuple[HistoryEntry, ...] = ()
    role: str = "agent"
    agent_alias: str | None = None
    past: tuple[PastConversation, ...] = ()


@attrs.frozen
class Message:
    """A stored message, delivered to the other side of a conversation.

    ``alias`` names the writer when the conversation has more than one agent (a
    colleague, a supervisor); ``private`` lines reach agents only, never the customer.
    """

    conversation: str
    sender: str
    msg: str
    text: str
    ts: float
    # The sender's formatting (the markup subset of the rich_text feature), for
    # parties that show it; ``text`` is always its plain rendering.
    markup: str | None = None
    alias: str | None = None
    private: bool = False


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
class Decision:
    """Why routing offered a conversation to an agent: the rule and which target of its
    workflow (1-based) with what strategy, the compatibility entry, where the plan came
    from (``local``, ``remote`` or ``fallback``) and its reason, and the queue."""

    rule: str
    target: int
    strategy: str
    compatibility: str
    source: str
    reason: str
    queue: str | None = None
    # Features the customer's side uses that this agent's software lacks: the gateway
    # converts them (the compatibility table's translate fallback).
    translated: tuple[str, ...] = ()

    def text(self) -> str:
        """One line, as transcripts and plain-text offers show it."""
        where = f" in {self.queue}" if self.queue else ""
        translated = f"; translated: {', '.join(self.translated)}" if self.translated else ""
        return (
            f"rule {self.rule}, target {self.target} ({self.strategy}){where};"
            f" compatibility {self.compatibility}; {self.source}: {self.reason}{translated}"
        )

    def to_dict(self) -> dict[str, object]:
        """The decision as JSON-ready values (stored with the conversation)."""
        return {**attrs.asdict(self), "translated": list(self.translated)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Decision:
        """A decision from :meth:`to_dict`'s values (unknown keys ignored)."""
        names = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["translated"] = tuple(values.get("translated", ()))
        return cls(**values)


@attrs.frozen
class Offer:
    """An agent is offered a conversation; ``routing`` says why it is this agent."""

    offer: str
    conversation: str
    expires_in_s: int
    customer: CustomerCard
    routing: Decision | None = None


@attrs.frozen
class Revoked:
    """An offer was withdrawn before the agent accepted it."""

    offer: str
    reason: str


@attrs.frozen
class Notice:
    """Something the gateway tells an agent outside any conversation."""

    text: str


@attrs.frozen
class WrapUp:
    """The agent's part in a conversation is over: its wrap-up is asked for.

    ``dispositions`` are the codes the queue allows; ``required``: one must be given
    before the agent gets new offers (at most ``timeout_s``).
    """

    conversation: str
    customer_alias: str
    dispositions: tuple[str, ...]
    required: bool
    timeout_s: int


@attrs.frozen
class Task:
    """Work offered to an agent outside a live conversation: a message a customer left."""

    task: str
    customer: CustomerCard
    queue: str | None
    text: str
    received: float
    kind: str = "offline_message"
