"""The database engines, through IEngine: every test runs on each engine.

``engine`` is an open engine on a fresh database: SQLite in a temporary directory,
and PostgreSQL in the private cluster of ``conftest.pg_server`` (which fails, not
skips, without it). What only one database has is in test_sqlite.py and
test_postgres.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import agent as _agent
from store_helpers import conversation as _conversation
from store_helpers import message as _message
from zope.interface.verify import verifyObject

from gateway.store import postgres, sqlite
from gateway.store.errors import (
    AddressTaken,
    AgentExists,
    ConstraintError,
    ConversationExists,
    MessageExists,
    UnknownConversation,
)
from gateway.store.interfaces import IEngine
from gateway.store.postgres import PostgresEngine
from gateway.store.sql import ROWS_PER_INSERT
from gateway.store.sqlite import SqliteEngine


@pytest.fixture(params=["sqlite", "postgresql"])
def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """Opens engines on one fresh database (several may share it)."""
    if request.param == "sqlite":
        path = tmp_path / "data" / sqlite.DB_FILE

        def new() -> IEngine:
            return SqliteEngine(path)
    else:
        dsn = request.getfixturevalue("pg_server").new_database()

        def new() -> IEngine:
            return PostgresEngine(dsn)

    opened: list[IEngine] = []

    def make() -> IEngine:
        engine = new()
        engine.open()
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()


@pytest.fixture
def engine(make_engine) -> IEngine:
    return make_engine()


# Opening.


def test_provides_iengine(engine: IEngine) -> None:
    assert verifyObject(IEngine, engine)


def test_not_open_engines_provide_iengine(tmp_path: Path) -> None:
    assert verifyObject(IEngine, SqliteEngine(tmp_path / sqlite.DB_FILE))
    assert verifyObject(IEngine, PostgresEngine("dbname=x"))


def test_open_applies_every_migration(engine: IEngine) -> None:
    module = sqlite if isinstance(engine, SqliteEngine) else postgres
    assert engine.schema_version() == module.SCHEMA_VERSION == len(module.MIGRATIONS)
    # The two engines keep the same version numbers for the same schema.
    assert len(sqlite.MIGRATIONS) == len(postgres.MIGRATIONS)


def test_reopen_keeps_data_and_migrates_nothing(make_engine) -> None:
    first = make_engine()
    first.add_agent(_agent(addresses=("irc:anna",)))
    first.close()
    again = make_engine()
    assert again.get_agent("anna") == _agent(addresses=("irc:anna",))
    assert again.schema_version() == len(sqlite.MIGRATIONS)


# Agents.


def test_agents(engine: IEngine) -> None:
    assert engine.get_agent("anna") is None
    engine.add_agent(_agent("anna"))
    engine.add_agent(_agent("bob", display_name="Bob", skills={}))
    assert engine.get_agent("anna") == _agent("anna")
    assert [a.name for a in engine.list_agents()] == ["anna", "bob"]
    assert engine.get_agent("bob").skills == {}


def test_agent_fields_round_trip(engine: IEngine) -> None:
    agent = _agent(
        location="remote",
        bot=True,
        protocol_capacity={"irc": 1, "xmpp": 2},
        addresses=("irc:anna", "xmpp:anna@corp.example"),
    )
    engine.add_agent(agent)
    assert engine.get_agent("anna") == agent
    assert engine.list_agents() == [agent]
    assert isinstance(engine.get_agent("anna").created, float)


def test_add_existing_agent(engine: IEngine) -> None:
    engine.add_agent(_agent())
    with pytest.raises(AgentExists, match="agent 'anna' already exists"):
        engine.add_agent(_agent(display_name="Other"))
    assert engine.get_agent("anna").display_name == "Anna"


def test_agent_capacity_must_be_positive(engine: IEngine) -> None:
    with pytest.raises(ConstraintError):
        engine.add_agent(_agent(capacity=0))
    assert engine.list_agents() == []


def test_addresses(engine: IEngine) -> None:
    engine.add_agent(_agent("anna", addresses=("xmpp:anna@corp.example", "irc:anna")))
    assert engine.find_agent("irc:anna") == engine.get_agent("anna")
    assert engine.get_agent("anna").addresses == ("irc:anna", "xmpp:anna@corp.example")
    assert engine.find_agent("irc:nobody") is None
    with pytest.raises(AddressTaken, match="an address of bob belongs to another agent"):
        engine.add_agent(_agent("bob", addresses=("irc:bob", "irc:anna")))
    assert engine.find_agent("irc:anna").name == "anna"
    # Removing an agent frees its addresses.
    assert engine.remove_agent("anna")
    assert engine.find_agent("irc:anna") is None


def test_set_password_and_remove(engine: IEngine) -> None:
    engine.add_agent(_agent())
    assert engine.set_password("anna", "scrypt$new")
    assert engine.get_agent("anna").password_hash == "scrypt$new"
    assert not engine.set_password("nobody", "scrypt$new")
    assert engine.remove_agent("anna")
    assert not engine.remove_agent("anna")
    assert engine.list_agents() == []


def test_scram(engine: IEngine) -> None:
    engine.add_agent(_agent())
    assert engine.get_scram("anna") is None
    engine.set_scram("anna", '{"a":1}')
    engine.set_scram("anna", '{"b":2}')  # replaces
    assert engine.get_scram("anna") == '{"b":2}'
    with pytest.raises(ConstraintError):
        engine.set_scram("nobody", "{}")
    engine.remove_agent("anna")
    assert engine.get_scram("anna") is None


# Conversations.


def test_conversation_round_trip(engine: IEngine) -> None:
    record = _conversation(queue="billing", topic="billing", identity={"name": "Dana"})
    engine.insert_conversation(record)
    assert engine.get_conversation("c-1") == record
    assert engine.get_conversation("c-2") is None


def test_duplicate_conversation(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    with pytest.raises(ConversationExists):
        engine.insert_conversation(_conversation())


def test_a_conversation_refused_for_another_reason_is_no_duplicate(engine: IEngine) -> None:
    # Only a key already there names the conversation; NOT NULL stays a ConstraintError.
    with pytest.raises(ConstraintError, match="protocol"):
        engine.insert_conversation(_conversation(protocol=None))
    assert engine.get_conversation("c-1") is None


def test_resume_keys_of_an_unknown_conversation(engine: IEngine) -> None:
    with pytest.raises(UnknownConversation, match="c-9"):
        engine.set_resume("c-9", "hash", "key")


def test_update_conversation(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    engine.update_conversation(
        "c-1", state="chatting", agent="anna", queue="tech", identity={"name": "Dana"}
    )
    engine.update_conversation("c-1", state="ended", ended=1764400100.0, end_reason="agent")
    record = engine.get_conversation("c-1")
    assert (record.state, record.agent, record.queue) == ("ended", "anna", "tech")
    assert record.identity == {"name": "Dana"}
    assert (record.ended, record.end_reason) == (1764400100.0, "agent")


def test_update_conversation_refuses_other_columns(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    with pytest.raises(ValueError, match="cannot be changed: customer_alias, started"):
        engine.update_conversation("c-1", started=0.0, customer_alias="x", state="x")
    assert engine.get_conversation("c-1") == _conversation()


def test_update_unknown_conversation(engine: IEngine) -> None:
    with pytest.raises(UnknownConversation):
        engine.update_conversation("c-9", state="ended")
    with pytest.raises(UnknownConversation):
        engine.update_conversation("c-9")
    engine.insert_conversation(_conversation())
    engine.update_conversation("c-1")


def test_recent_conversations_newest_first(engine: IEngine) -> None:
    engine.insert_conversation(_conversation("c-1", started=100.0))
    engine.insert_conversation(_conversation("c-3", started=300.0))
    engine.insert_conversation(_conversation("c-2", started=200.0))
    engine.insert_conversation(_conversation("c-4", started=300.0))
    assert [r.id for r in engine.recent_conversations(10)] == ["c-4", "c-3", "c-2", "c-1"]
    assert [r.id for r in engine.recent_conversations(2)] == ["c-4", "c-3"]


def test_timestamps_keep_their_precision(engine: IEngine) -> None:
    started = 1764400000.123456
    engine.insert_conversation(_conversation(started=started))
    engine.insert_message(_message("m1", ts=started + 0.000001))
    assert engine.get_conversation("c-1").started == started
    assert engine.transcript("c-1")[0].ts == started + 0.000001


# Messages.


def test_transcript_in_stored_order(engine: IEngine) -> None:
    engine.insert_conversation(_conversation("c-1"))
    engine.insert_conversation(_conversation("c-2"))
    # Stored order wins over timestamps: clocks can step back.
    engine.insert_message(_message("m1", ts=5.0))
    engine.insert_message(_message("m2", "c-2"))
    engine.insert_message(_message("m3", sender="agent", agent="anna", ts=4.0))
    engine.insert_message(_message("m4", sender="system", ts=6.0))
    assert engine.transcript("c-1") == [
        _message("m1", ts=5.0),
        _message("m3", sender="agent", agent="anna", ts=4.0),
        _message("m4", sender="system", ts=6.0),
    ]
    assert engine.transcript("c-9") == []


def test_duplicate_message(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    engine.insert_message(_message("m1"))
    with pytest.raises(MessageExists, match="message 'm1' already exists"):
        engine.insert_message(_message("m1", text="again"))
    assert [m.text for m in engine.transcript("c-1")] == ["text m1"]


def test_message_needs_its_conversation(engine: IEngine) -> None:
    with pytest.raises(UnknownConversation):
        engine.insert_message(_message("m1", "c-9"))


def test_message_sender_is_checked(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    with pytest.raises(ConstraintError):
        engine.insert_message(_message("m1", sender="root"))


@pytest.mark.parametrize("count", [1, 2, ROWS_PER_INSERT, ROWS_PER_INSERT * 2 + 3])
def test_insert_messages_keeps_their_order(engine: IEngine, count: int) -> None:
    engine.insert_conversation(_conversation("c-1"))
    engine.insert_conversation(_conversation("c-2"))
    batch = [_message(f"m{i}", f"c-{1 + i % 2}", ts=float(i)) for i in range(count)]
    engine.insert_messages(batch)
    assert engine.transcript("c-1") == batch[0::2]
    assert engine.transcript("c-2") == batch[1::2]


def test_insert_messages_refused_as_a_whole(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    engine.insert_message(_message("m1"))
    for batch in (
        [_message("m2"), _message("m1")],  # a known id
        [_message("m2"), _message("m3", "c-9")],  # an unknown conversation
    ):
        engine.begin()
        with pytest.raises(ConstraintError):
            engine.insert_messages(batch)
        engine.rollback()
    assert [m.id for m in engine.transcript("c-1")] == ["m1"]


# Resuming (gateway.core.resume) and retention.


def test_open_conversations_with_their_resume_keys(engine: IEngine) -> None:
    engine.insert_conversation(_conversation("c-2", started=200.0, state="connected"))
    engine.insert_conversation(_conversation("c-1", started=100.0, state="queued"))
    engine.insert_conversation(_conversation("c-3", started=50.0, state="ended", ended=60.0))
    engine.set_resume("c-1", "hash-1", None)
    engine.set_resume("c-1", "hash-1b", "xmpp:dana@example.org")  # replaces
    engine.set_resume("c-3", "hash-3", None)
    rows = engine.open_conversations()
    assert [(r.id, h, k) for r, h, k in rows] == [
        ("c-1", "hash-1b", "xmpp:dana@example.org"),
        ("c-2", None, None),
    ]
    assert rows[1][0] == _conversation("c-2", started=200.0, state="connected")
    # Retention deletes a conversation with its resume record.
    assert engine.purge_ended_before(100.0) == 1
    with pytest.raises(UnknownConversation):
        engine.set_resume("c-3", "hash-3", None)


def test_purge_ended_before(engine: IEngine) -> None:
    for cid, ended in (("old", 200.0), ("recent", 900.0), ("open", None)):
        state = "connected" if ended is None else "ended"
        engine.insert_conversation(_conversation(cid, started=100.0, ended=ended, state=state))
        engine.insert_message(_message(f"m-{cid}", cid))
    assert engine.purge_ended_before(500.0) == 1
    assert engine.get_conversation("old") is None
    assert engine.transcript("old") == []
    assert [m.id for m in engine.transcript("recent")] == ["m-recent"]
    assert engine.get_conversation("open") is not None
    assert engine.purge_ended_before(500.0) == 0


# Transactions.


def test_rollback_undoes_the_transaction(make_engine) -> None:
    engine, other = make_engine(), make_engine()
    engine.begin()
    engine.insert_conversation(_conversation())
    engine.insert_message(_message("m1"))
    engine.rollback()
    engine.rollback()  # none open: nothing
    assert engine.get_conversation("c-1") is None
    engine.begin()
    engine.insert_conversation(_conversation())
    engine.commit()
    # Committed: another connection sees it.
    assert other.get_conversation("c-1") == _conversation()


def test_a_savepoint_undoes_one_operation(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    engine.begin()
    engine.savepoint()
    engine.insert_message(_message("m1"))
    engine.release_savepoint()
    engine.savepoint()
    with pytest.raises(MessageExists):
        engine.insert_message(_message("m1"))
    # After the failure the transaction goes on (PostgreSQL's is aborted until here).
    engine.rollback_to_savepoint()
    engine.release_savepoint()
    engine.savepoint()
    engine.insert_message(_message("m2"))
    engine.rollback_to_savepoint()
    engine.release_savepoint()
    engine.insert_message(_message("m3"))
    engine.commit()
    assert [m.id for m in engine.transcript("c-1")] == ["m1", "m3"]


def test_describe_never_shows_a_password(tmp_path: Path) -> None:
    assert SqliteEngine(tmp_path / "x.sqlite3").describe() == str(tmp_path / "x.sqlite3")
    engine = PostgresEngine("host=db.example dbname=gw user=gw password=secret")
    assert engine.describe() == "postgresql database 'gw'"
    assert PostgresEngine("password=secret").describe() == "postgresql database"
    assert PostgresEngine("not a dsn ===").describe() == "postgresql"
