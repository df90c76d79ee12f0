"""What the service desk keeps: offline messages, canned responses, closures."""

from __future__ import annotations

import attrs

# Offline message states: waiting for an agent, with one, answered, answer delivered.
OPEN, ASSIGNED, ANSWERED, DELIVERED = "open", "assigned", "answered", "delivered"
OFFLINE_STATES = (OPEN, ASSIGNED, ANSWERED, DELIVERED)


@attrs.define(eq=False)
class OfflineMessage:
    """A message a customer left when nobody could serve them; a task for agents."""

    id: str
    conversation: str | None
    customer: str | None  # the verified identity the answer goes back to
    alias: str
    protocol: str
    name: str | None
    queue: str | None
    text: str
    received: float
    state: str = OPEN
    agent: str | None = None
    reply: str | None = None
    replied: float | None = None
    delivered: float | None = None
    # Live bookkeeping only: the agents who let it go, and the assignment's timer.
    released_by: set[str] = attrs.field(factory=set)
    timer: object = None

    def to_json(self) -> dict:
        """The message as the admin API and CLI show it."""
        return {
            "id": self.id,
            "state": self.state,
            "conversation": self.conversation,
            "customer": self.alias,
            "name": self.name,
            "protocol": self.protocol,
            "queue": self.queue,
            "text": self.text,
            "received": self.received,
            "agent": self.agent,
            "reply": self.reply,
            "replied": self.replied,
            "delivered": self.delivered,
            "reply_path": self.customer is not None,
        }


@attrs.frozen
class Canned:
    """A canned response: global (team "") or a team's."""

    name: str
    text: str
    team: str = ""

    def to_json(self) -> dict:
        """As the API and the agents' clients show it."""
        return {"name": self.name, "team": self.team or None, "text": self.text}


@attrs.frozen
class StoredClosure:
    """A dated closure kept in the database: a queue's, or every queue's (``*``)."""

    id: int
    queue: str
    spec: str
    name: str
    created: float

    def to_json(self) -> dict:
        """As the API and the CLI show it."""
        return {
            "id": self.id,
            "queue": self.queue,
            "spec": self.spec,
            "name": self.name,
            "created": self.created,
        }
