"""Records for the store tests (tests/unit/store)."""

from __future__ import annotations

from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage


def agent(name: str = "anna", **kw) -> AgentRecord:
    """An agent account; keywords replace the defaults."""
    values = dict(
        display_name="Anna",
        password_hash="scrypt$x",
        capacity=2,
        skills={"billing": 4, "tech": 2},
        created=1764400000.5,
    )
    values.update(kw)
    return AgentRecord(name=name, **values)


def conversation(id_: str = "c-1", started: float = 1764400000.0, **kw) -> ConversationRecord:
    """A conversation record; keywords replace the defaults."""
    values = dict(
        customer_alias="c-7f3a",
        protocol="jsonim",
        client_name="Gajim",
        client_version="1.8.4",
    )
    values.update(kw)
    return ConversationRecord(id=id_, started=started, **values)


def message(id_: str, conversation: str = "c-1", **kw) -> StoredMessage:
    """A customer's message; keywords replace the defaults."""
    values = dict(sender="customer", text=f"text {id_}", ts=1764400001.0)
    values.update(kw)
    return StoredMessage(id=id_, conversation=conversation, **values)
