"""The database layer: schema, migrations, queries.

The query tests (from "Agents" on) take ``conn`` and run twice: on SQLite, and on
PostgreSQL through :mod:`gateway.store.postgres` in the cluster of ``conftest.pg_server``.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from gateway.store import sqlite as db
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / db.DB_FILE


@pytest.fixture
def sqlite_conn(path: Path):
    connection = db.open_db(path)
    yield connection
    connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def conn(request: pytest.FixtureRequest, path: Path):
    if request.param == "sqlite":
        connection = db.open_db(path)
    else:
        from gateway.store import postgres as pgdb

        connection = pgdb.connect(request.getfixturevalue("pg_server").new_database())
    yield connection
    connection.close()


def _agent(name: str = "anna", **kw) -> AgentRecord:
    values = dict(
        display_name="Anna",
        password_hash="scrypt$x",
        capacity=2,
        skills={"billing": 4, "tech": 2},
        created=1764400000.5,
    )
    values.update(kw)
    return AgentRecord(name=name, **values)


def _conversation(id_: str = "c-1", started: float = 1764400000.0, **kw) -> ConversationRecord:
    values = dict(
        customer_alias="c-7f3a",
        protocol="jsonim",
        client_name="Gajim",
        client_version="1.8.4",
    )
    values.update(kw)
    return ConversationRecord(id=id_, started=started, **values)


def _message(id_: str, conversation: str = "c-1", **kw) -> StoredMessage:
    values = dict(sender="customer", text=f"text {id_}", ts=1764400001.0)
    values.update(kw)
    return StoredMessage(id=id_, conversation=conversation, **values)


# Opening and migrations.


def test_open_creates_private_directory_and_file(path: Path) -> None:
    conn = db.open_db(path)
    conn.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_open_sets_pragmas(sqlite_conn: sqlite3.Connection) -> None:
    conn = sqlite_conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.isolation_level is None


def test_open_applies_every_migration(sqlite_conn: sqlite3.Connection) -> None:
    conn = sqlite_conn
    assert db.schema_version(conn) == db.SCHEMA_VERSION == len(db.MIGRATIONS)
    names = {
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
    }
    assert {"agents", "conversations", "messages"} <= names
    assert {"conversations_started", "messages_conversation_seq"} <= names


def test_migrations_are_idempotent(path: Path) -> None:
    conn = db.open_db(path)
    db.add_agent(conn, _agent())
    schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    conn.close()
    conn = db.open_db(path)
    db.migrate(conn, path)
    assert conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == (
        schema
    )
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    assert db.get_agent(conn, "anna") == _agent()
    conn.close()


def test_newer_schema_is_refused(path: Path) -> None:
    db.open_db(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(db.SchemaTooNew) as caught:
        db.open_db(path)
    assert str(caught.value) == (
        f"{path}: database schema version {db.SCHEMA_VERSION + 1} is newer than this"
        f" imgateway supports ({db.SCHEMA_VERSION}); upgrade imgateway"
    )


def test_failed_migration_leaves_the_previous_schema(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.open_db(path).close()
    broken = (*db.MIGRATIONS, ("CREATE TABLE extra (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(db, "MIGRATIONS", broken)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(broken))
    with pytest.raises(db.StoreError, match=f"migration to schema {len(broken)} failed"):
        db.open_db(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == len(broken) - 1
    assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall() == []
    raw.close()


def test_open_error_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(db.StoreError, match="cannot create database"):
        db.open_db(tmp_path / "file" / db.DB_FILE)


def test_not_a_database_is_a_store_error(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    with pytest.raises(db.StoreError, match="cannot use database"):
        db.open_db(path)


# Agents.


def test_agents(conn: sqlite3.Connection) -> None:
    assert db.get_agent(conn, "anna") is None
    db.add_agent(conn, _agent("anna"))
    db.add_agent(conn, _agent("bob", display_name="Bob", skills={}))
    assert db.get_agent(conn, "anna") == _agent("anna")
    assert [a.name for a in db.list_agents(conn)] == ["anna", "bob"]
    assert db.get_agent(conn, "bob").skills == {}


def test_add_existing_agent(conn: sqlite3.Connection) -> None:
    db.add_agent(conn, _agent())
    with pytest.raises(db.AgentExists, match="agent 'anna' already exists"):
        db.add_agent(conn, _agent(display_name="Other"))
    assert db.get_agent(conn, "anna").display_name == "Anna"


def test_agent_capacity_must_be_positive(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        db.add_agent(conn, _agent(capacity=0))


def test_set_password_and_remove(conn: sqlite3.Connection) -> None:
    db.add_agent(conn, _agent())
    assert db.set_password(conn, "anna", "scrypt$new")
    assert db.get_agent(conn, "anna").password_hash == "scrypt$new"
    assert not db.set_password(conn, "nobody", "scrypt$new")
    assert db.remove_agent(conn, "anna")
    assert not db.remove_agent(conn, "anna")
    assert db.list_agents(conn) == []


# Conversations.


def test_conversation_round_trip(conn: sqlite3.Connection) -> None:
    record = _conversation(queue="billing", topic="billing", identity={"name": "Dana"})
    db.insert_conversation(conn, record)
    assert db.get_conversation(conn, "c-1") == record
    assert db.get_conversation(conn, "c-2") is None


def test_duplicate_conversation(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation())
    with pytest.raises(db.ConversationExists):
        db.insert_conversation(conn, _conversation())


def test_update_conversation(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation())
    db.update_conversation(
        conn, "c-1", state="chatting", agent="anna", queue="tech", identity={"name": "Dana"}
    )
    db.update_conversation(conn, "c-1", state="ended", ended=1764400100.0, end_reason="agent")
    record = db.get_conversation(conn, "c-1")
    assert (record.state, record.agent, record.queue) == ("ended", "anna", "tech")
    assert record.identity == {"name": "Dana"}
    assert (record.ended, record.end_reason) == (1764400100.0, "agent")


def test_update_conversation_refuses_other_columns(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation())
    with pytest.raises(ValueError, match="cannot be changed: customer_alias, started"):
        db.update_conversation(conn, "c-1", started=0.0, customer_alias="x", state="x")
    assert db.get_conversation(conn, "c-1") == _conversation()


def test_update_unknown_conversation(conn: sqlite3.Connection) -> None:
    with pytest.raises(db.UnknownConversation):
        db.update_conversation(conn, "c-9", state="ended")
    with pytest.raises(db.UnknownConversation):
        db.update_conversation(conn, "c-9")
    db.insert_conversation(conn, _conversation())
    db.update_conversation(conn, "c-1")


def test_recent_conversations_newest_first(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation("c-1", started=100.0))
    db.insert_conversation(conn, _conversation("c-3", started=300.0))
    db.insert_conversation(conn, _conversation("c-2", started=200.0))
    db.insert_conversation(conn, _conversation("c-4", started=300.0))
    assert [r.id for r in db.recent_conversations(conn, 10)] == ["c-4", "c-3", "c-2", "c-1"]
    assert [r.id for r in db.recent_conversations(conn, 2)] == ["c-4", "c-3"]


# Messages.


def test_transcript_in_stored_order(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation("c-1"))
    db.insert_conversation(conn, _conversation("c-2"))
    # Stored order wins over timestamps: clocks can step back.
    db.insert_message(conn, _message("m1", ts=5.0))
    db.insert_message(conn, _message("m2", "c-2"))
    db.insert_message(conn, _message("m3", sender="agent", agent="anna", ts=4.0))
    db.insert_message(conn, _message("m4", sender="system", ts=6.0))
    assert db.transcript(conn, "c-1") == [
        _message("m1", ts=5.0),
        _message("m3", sender="agent", agent="anna", ts=4.0),
        _message("m4", sender="system", ts=6.0),
    ]
    assert db.transcript(conn, "c-9") == []


def test_duplicate_message(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation())
    db.insert_message(conn, _message("m1"))
    with pytest.raises(db.MessageExists, match="message 'm1' already exists"):
        db.insert_message(conn, _message("m1", text="again"))
    assert [m.text for m in db.transcript(conn, "c-1")] == ["text m1"]


def test_message_needs_its_conversation(conn: sqlite3.Connection) -> None:
    with pytest.raises(db.UnknownConversation):
        db.insert_message(conn, _message("m1", "c-9"))


def test_message_sender_is_checked(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation())
    with pytest.raises(sqlite3.IntegrityError):
        db.insert_message(conn, _message("m1", sender="root"))


# Resuming (gateway.core.resume).


def test_open_conversations_with_their_resume_keys(conn: sqlite3.Connection) -> None:
    db.insert_conversation(conn, _conversation("c-2", started=200.0, state="connected"))
    db.insert_conversation(conn, _conversation("c-1", started=100.0, state="queued"))
    db.insert_conversation(conn, _conversation("c-3", started=50.0, state="ended", ended=60.0))
    db.set_resume(conn, "c-1", "hash-1", None)
    db.set_resume(conn, "c-1", "hash-1b", "xmpp:dana@example.org")  # replaces
    db.set_resume(conn, "c-3", "hash-3", None)
    rows = db.open_conversations(conn)
    assert [(r.id, h, k) for r, h, k in rows] == [
        ("c-1", "hash-1b", "xmpp:dana@example.org"),
        ("c-2", None, None),
    ]
    assert rows[1][0] == _conversation("c-2", started=200.0, state="connected")
    # Retention deletes a conversation with its resume record.
    assert db.purge_ended_before(conn, 100.0) == 1
    with pytest.raises(sqlite3.IntegrityError):
        db.set_resume(conn, "c-3", "hash-3", None)
