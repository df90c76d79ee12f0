"""MemoryStore: the in-memory IStore the core's unit tests run on."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from gateway.store.errors import (
    AgentExists,
    ConversationExists,
    MessageExists,
    StoreClosed,
    UnknownConversation,
)
from gateway.store.interfaces import IStore
from gateway.store.memory import MemoryStore
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage


def _conversation(id_: str = "c-1", started: float = 1764400000.0) -> ConversationRecord:
    return ConversationRecord(
        id=id_,
        customer_alias="c-7f3a",
        protocol="jsonim",
        client_name="Gajim",
        client_version="1.8.4",
        started=started,
    )


def _message(id_: str, conversation: str = "c-1") -> StoredMessage:
    return StoredMessage(
        id=id_, conversation=conversation, sender="customer", text=f"text {id_}", ts=1.0
    )


def _agent(name: str = "anna") -> AgentRecord:
    return AgentRecord(name=name, display_name="Anna", password_hash="scrypt$x", capacity=2)


def _fired(d: Deferred) -> Any:
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    assert outcome, "the Deferred has not fired"
    return outcome[0]


def test_memory_provides_istore() -> None:
    assert verifyObject(IStore, MemoryStore())


def test_memory_store() -> None:
    store = MemoryStore(agents=[_agent()])
    store.start()
    assert _fired(store.get_agent("anna")) == _agent()
    assert _fired(store.get_agent("bob")) is None
    assert _fired(store.open_conversation(_conversation("c-1", 100.0))) is None
    assert _fired(store.open_conversation(_conversation("c-2", 200.0))) is None
    assert _fired(store.open_conversation(_conversation("c-3", 100.0))) is None
    _fired(store.open_conversation(_conversation("c-1"))).trap(ConversationExists)
    assert _fired(store.append(_message("m1"))) is None
    assert _fired(store.append(_message("m2"))) is None
    _fired(store.append(_message("m1"))).trap(MessageExists)
    _fired(store.append(_message("m3", "c-9"))).trap(UnknownConversation)
    assert [m.id for m in _fired(store.transcript("c-1"))] == ["m1", "m2"]
    assert _fired(store.transcript("c-9")) == []
    assert [r.id for r in _fired(store.recent_conversations(10))] == ["c-2", "c-3", "c-1"]
    assert [r.id for r in _fired(store.recent_conversations(1))] == ["c-2"]


def test_memory_update_conversation() -> None:
    store = MemoryStore()
    store.open_conversation(_conversation())
    assert _fired(store.update_conversation("c-1", state="ended", identity={"a": "b"})) is None
    record = _fired(store.get_conversation("c-1"))
    assert (record.state, record.identity) == ("ended", {"a": "b"})
    _fired(store.update_conversation("c-1", started=0.0)).trap(ValueError)
    _fired(store.update_conversation("c-9", state="ended")).trap(UnknownConversation)


def test_memory_resumes_and_purge() -> None:
    store = MemoryStore()
    store.open_conversation(_conversation("c-1", 100.0))
    store.open_conversation(_conversation("c-2", 200.0))
    store.append(_message("m1", "c-1"))
    assert _fired(store.set_resume("c-1", "hash-1", "xmpp:dana@example.org")) is None
    _fired(store.set_resume("c-9", "hash-9", None)).trap(UnknownConversation)
    rows = _fired(store.open_conversations())
    assert [(r.id, h, k) for r, h, k in rows] == [
        ("c-1", "hash-1", "xmpp:dana@example.org"),
        ("c-2", None, None),
    ]
    store.update_conversation("c-1", state="ended", ended=150.0)
    store.update_conversation("c-2", state="ended", ended=250.0)
    assert _fired(store.purge_ended_before(200.0)) == 1
    assert _fired(store.get_conversation("c-1")) is None
    assert _fired(store.transcript("c-1")) == []
    assert _fired(store.open_conversations()) == []
    # The purged message id is free again, as on the database engines.
    store.open_conversation(_conversation("c-1", 300.0))
    assert _fired(store.append(_message("m1", "c-1"))) is None


def test_memory_add_existing_agent() -> None:
    store = MemoryStore(agents=[_agent()])
    with pytest.raises(AgentExists):
        store.add_agent(_agent())


def test_memory_close() -> None:
    store = MemoryStore()
    assert _fired(store.close()) is None
    _fired(store.append(_message("m1"))).trap(StoreClosed)
    _fired(store.purge_ended_before(0.0)).trap(StoreClosed)
