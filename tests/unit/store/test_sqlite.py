"""What only the SQLite engine has: the file, its pragmas, PRAGMA user_version migrations."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import agent as _agent
from store_helpers import conversation as _conversation
from store_helpers import message as _message

from gateway.store import sqlite as db
from gateway.store.errors import DatabaseError, SchemaTooNew, StoreError
from gateway.store.sqlite import SqliteEngine


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / db.DB_FILE


def _open(path: Path) -> SqliteEngine:
    engine = SqliteEngine(path)
    engine.open()
    return engine


@pytest.fixture
def engine(path: Path) -> Iterator[SqliteEngine]:
    engine = _open(path)
    yield engine
    engine.close()


def _schema(path: Path) -> list[tuple]:
    raw = sqlite3.connect(path)
    try:
        return raw.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        raw.close()


def test_from_config_is_the_file_in_the_data_dir(tmp_path: Path) -> None:
    class Config:
        data_dir = tmp_path / "data"
        sections: dict = {}

    assert SqliteEngine.from_config(Config()).path == tmp_path / "data" / db.DB_FILE


def test_open_creates_private_directory_and_file(path: Path) -> None:
    _open(path).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_open_sets_pragmas(engine: SqliteEngine) -> None:
    conn = engine.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.isolation_level is None


def test_open_applies_every_migration(engine: SqliteEngine, path: Path) -> None:
    assert engine.schema_version() == db.SCHEMA_VERSION == len(db.MIGRATIONS)
    names = {name for _, name, _ in _schema(path)}
    assert {"agents", "conversations", "messages", "agent_scram", "resumes"} <= names
    assert {"conversations_started", "messages_conversation_seq"} <= names


def test_migrations_are_idempotent(path: Path) -> None:
    engine = _open(path)
    engine.add_agent(_agent())
    engine.close()
    schema = _schema(path)
    engine = _open(path)
    engine.migrate()
    assert _schema(path) == schema
    assert engine.schema_version() == db.SCHEMA_VERSION
    assert engine.get_agent("anna") == _agent()
    engine.close()


def test_newer_schema_is_refused(path: Path) -> None:
    _open(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    engine = SqliteEngine(path)
    with pytest.raises(SchemaTooNew) as caught:
        engine.open()
    assert str(caught.value) == (
        f"{path}: database schema version {db.SCHEMA_VERSION + 1} is newer than this"
        f" imgateway supports ({db.SCHEMA_VERSION}); upgrade imgateway"
    )
    assert engine.connection is None


def test_failed_migration_leaves_the_previous_schema(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _open(path).close()
    broken = (*db.MIGRATIONS, ("CREATE TABLE extra (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(db, "MIGRATIONS", broken)
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StoreError, match=f"migration to schema {len(broken)} failed"):
        _open(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == len(broken) - 1
    assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall() == []
    raw.close()


def test_open_error_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create database"):
        _open(tmp_path / "file" / db.DB_FILE)


def test_not_a_database_is_a_store_error(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    with pytest.raises(StoreError, match="cannot use database"):
        _open(path)


def test_a_locked_database_is_a_database_error(
    engine: SqliteEngine, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        # No five-second wait in a unit test.
        engine.connection.execute("PRAGMA busy_timeout = 0")
        with pytest.raises(DatabaseError, match="database is locked") as caught:
            engine.begin()
        assert not isinstance(caught.value, sqlite3.Error)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    engine.begin()
    engine.commit()


def test_a_refused_commit_leaves_no_transaction(engine: SqliteEngine) -> None:
    engine.insert_conversation(_conversation())
    engine.begin()
    engine.connection.execute("PRAGMA defer_foreign_keys = ON")
    engine.insert_message(_message("m9", "c-9"))
    with pytest.raises(DatabaseError, match="FOREIGN KEY"):
        engine.commit()
    assert not engine.connection.in_transaction
    assert engine.transcript("c-9") == []
