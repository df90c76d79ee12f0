"""Durable records: what the store keeps and the admin CLI shows."""

from __future__ import annotations

from collections.abc import Mapping

import attrs


@attrs.frozen
class AgentRecord:
    """A provisioned agent account."""

    name: str
    display_name: str
    password_hash: str
    capacity: int
    skills: Mapping[str, int] = attrs.field(factory=dict)
    created: float = 0.0
    # "lan" or "remote": where the agent works, for routing rules.
    location: str = "lan"
    # An automated agent (a bot) rather than a person.
    bot: bool = False
    # IM addresses a trusted upstream authenticates for us ("xmpp:anna@corp.example").
    addresses: tuple[str, ...] = ()
    # Limits per customer protocol within ``capacity``, e.g. {"irc": 1}.
    protocol_capacity: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen
class TeamRecord:
    """A team of agents and the queues it serves (see gateway.directory.teams)."""

    name: str
    description: str = ""
    created: float = 0.0
    # Agent names, and queue names, each sorted.
    members: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()


@attrs.frozen
class ConversationRecord:
    """One customer's case as stored."""

    id: str
    customer_alias: str
    protocol: str
    client_name: str
    client_version: str
    started: float
    queue: str | None = None
    topic: str | None = None
    identity: Mapping[str, str] = attrs.field(factory=dict)
    state: str = "interview"
    agent: str | None = None
    ended: float | None = None
    end_reason: str | None = None
    # The routing decision behind its current or last agent (gateway.core.events.Decision
    # as a dict): rule, target, strategy, compatibility, source, reason, queue.
    routing: Mapping[str, object] | None = None


@attrs.frozen
class StoredMessage:
    """One line of a transcript.

    ``sender`` is customer, agent or system; ``agent`` names the agent account
    for agent lines (never shown to customers). ``audience`` is who saw it:
    ``all``, or ``agents`` for a line the customer never saw (a supervisor's
    whisper, a consultation between agents).
    """

    id: str
    conversation: str
    sender: str
    text: str
    ts: float
    agent: str | None = None
    audience: str = "all"


# Columns of a conversation that may change after it is opened.
CONVERSATION_CHANGES = frozenset(
    {
        "state",
        "agent",
        "queue",
        "topic",
        "identity",
        "ended",
        "end_reason",
        "client_name",
        "client_version",
        "routing",
    }
)


def check_conversation_changes(changes: Mapping[str, object]) -> None:
    """Raise ValueError unless every key of ``changes`` is a column that may change."""
    unknown = sorted(set(changes) - CONVERSATION_CHANGES)
    if unknown:
        raise ValueError(f"conversation columns that cannot be changed: {', '.join(unknown)}")
