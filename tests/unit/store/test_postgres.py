"""What only the PostgreSQL engine has: its own DDL, schema_version table, advisory lock.

Runs in the private cluster of ``conftest.pg_server`` (which fails, not skips, without it).
"""

from __future__ import annotations

import ast
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from store_helpers import agent as _agent
from store_helpers import conversation, message

from gateway.store import postgres
from gateway.store.errors import DatabaseError, SchemaTooNew, StoreError
from gateway.store.postgres import PostgresEngine

# The schema a database has after the migrations of the releases before this engine
# (which translated SQLite's DDL): columns, indexes, constraints (written without
# "public." and "::text"). A database they migrated must keep working, and a new
# one must be the same.
PREVIOUS_SCHEMA = """\
agent_addresses address text NO - NO
agent_addresses agent text NO - NO
agent_scram agent text NO - NO
agent_scram credentials text NO - NO
agents bot integer NO 0 NO
agents capacity integer NO - NO
agents created double precision NO - NO
agents display_name text NO - NO
agents location text NO 'lan'::text NO
agents name text NO - NO
agents password_hash text NO - NO
agents protocol_capacity text NO '{}'::text NO
agents skills text NO '{}'::text NO
conversations agent text YES - NO
conversations client_name text NO - NO
conversations client_version text NO - NO
conversations customer_alias text NO - NO
conversations end_reason text YES - NO
conversations ended double precision YES - NO
conversations id text NO - NO
conversations identity text NO '{}'::text NO
conversations protocol text NO - NO
conversations queue text YES - NO
conversations rowid bigint NO - YES
conversations started double precision NO - NO
conversations state text NO - NO
conversations topic text YES - NO
messages agent text YES - NO
messages conversation text NO - NO
messages id text NO - NO
messages sender text NO - NO
messages seq bigint NO - YES
messages text text NO - NO
messages ts double precision NO - NO
resumes conversation text NO - NO
resumes customer_key text YES - NO
resumes token_hash text YES - NO
schema_version applied timestamp with time zone NO now() NO
schema_version version integer NO - NO
CREATE INDEX agent_addresses_agent ON agent_addresses (agent)
CREATE UNIQUE INDEX agent_addresses_pkey ON agent_addresses (address)
CREATE UNIQUE INDEX agent_scram_pkey ON agent_scram (agent)
CREATE UNIQUE INDEX agents_pkey ON agents (name)
CREATE UNIQUE INDEX conversations_pkey ON conversations (id)
CREATE INDEX conversations_started ON conversations (started)
CREATE INDEX messages_conversation_seq ON messages (conversation, seq)
CREATE UNIQUE INDEX messages_id_key ON messages (id)
CREATE UNIQUE INDEX messages_pkey ON messages (seq)
CREATE UNIQUE INDEX resumes_pkey ON resumes (conversation)
CREATE UNIQUE INDEX schema_version_pkey ON schema_version (version)
agent_addresses_agent_fkey FOREIGN KEY (agent) REFERENCES agents(name) ON DELETE CASCADE
agent_addresses_pkey PRIMARY KEY (address)
agent_scram_agent_fkey FOREIGN KEY (agent) REFERENCES agents(name) ON DELETE CASCADE
agent_scram_pkey PRIMARY KEY (agent)
agents_capacity_check CHECK ((capacity >= 1))
agents_pkey PRIMARY KEY (name)
conversations_pkey PRIMARY KEY (id)
messages_conversation_fkey FOREIGN KEY (conversation) REFERENCES conversations(id)
messages_id_key UNIQUE (id)
messages_pkey PRIMARY KEY (seq)
messages_sender_check CHECK ((sender = ANY (ARRAY['customer', 'agent', 'system'])))
resumes_conversation_fkey FOREIGN KEY (conversation) REFERENCES conversations(id) ON DELETE CASCADE
resumes_pkey PRIMARY KEY (conversation)
schema_version_pkey PRIMARY KEY (version)
versions 1 2 3 4 5
"""


def _schema(dsn: str) -> str:
    lines: list[str] = []
    with psycopg.connect(dsn) as raw:
        for row in raw.execute(
            "SELECT table_name, column_name, data_type, is_nullable,"
            " coalesce(column_default, '-'), is_identity FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, column_name"
        ):
            lines.append(" ".join(row))
        for (definition,) in raw.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"
        ):
            lines.append(definition.replace("public.", "").replace(" USING btree", ""))
        for name, definition in raw.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace ORDER BY conrelid::regclass::text, 1"
        ):
            lines.append(f"{name} {definition.replace('::text', '')}")
        versions = raw.execute("SELECT version FROM schema_version ORDER BY version")
        lines.append("versions " + " ".join(str(v) for (v,) in versions))
    return "\n".join(lines) + "\n"


def _open(dsn: str) -> PostgresEngine:
    engine = PostgresEngine(dsn)
    engine.open()
    return engine


@pytest.fixture
def dsn(pg_server: Any) -> str:
    return pg_server.new_database()


def test_the_schema_is_the_previous_releases(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Their migrations (1 to 5) only: later ones add to the schema, and are tested apart.
    monkeypatch.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:5])
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", 5)
    _open(dsn).close()
    assert _schema(dsn) == PREVIOUS_SCHEMA


def test_a_database_of_an_older_schema_is_brought_up_to_date(
    dsn: str, monkeypatch: pytest.MonkeyPatch, pg_server: Any
) -> None:
    migrations = postgres.MIGRATIONS
    monkeypatch.setattr(postgres, "MIGRATIONS", migrations[:1])
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", 1)
    _open(dsn).close()
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute(
            "INSERT INTO agents (name, display_name, password_hash, capacity, skills, created)"
            " VALUES ('anna', 'Anna', 'scrypt$x', 2, '{\"billing\": 4, \"tech\": 2}', 1764400000.5)"
        )
    monkeypatch.setattr(postgres, "MIGRATIONS", migrations)
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", len(migrations))
    engine = _open(dsn)
    assert engine.schema_version() == len(migrations)
    assert engine.get_agent("anna") == _agent()
    engine.close()
    # The same schema as a database made new.
    fresh = pg_server.new_database()
    _open(fresh).close()
    assert _schema(dsn) == _schema(fresh)


def test_a_second_open_finds_nothing_to_do(dsn: str) -> None:
    first = _open(dsn)
    second = _open(dsn)
    assert first.schema_version() == second.schema_version() == postgres.SCHEMA_VERSION
    first.close()
    second.close()
    with psycopg.connect(dsn) as raw:
        count = raw.execute("SELECT count(*) FROM schema_version").fetchone()[0]
        assert count == len(postgres.MIGRATIONS)


def test_concurrent_opens_migrate_once(dsn: str, pg_server: Any) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            _open(dsn).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert errors == []
    fresh = pg_server.new_database()
    _open(fresh).close()
    assert _schema(dsn) == _schema(fresh)


def test_newer_schema_is_refused(dsn: str) -> None:
    _open(dsn).close()
    newer = postgres.SCHEMA_VERSION + 1
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute("INSERT INTO schema_version (version) VALUES (%s)", (newer,))
    with pytest.raises(SchemaTooNew, match=f"database schema version {newer} is newer"):
        _open(dsn)


def test_failed_migration_leaves_the_previous_schema(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _open(dsn).close()
    before = _schema(dsn)
    broken = (*postgres.MIGRATIONS, ("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL"))
    monkeypatch.setattr(postgres, "MIGRATIONS", broken)
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StoreError, match="migration failed: syntax error"):
        _open(dsn)
    monkeypatch.undo()
    assert _schema(dsn) == before


def test_connect_errors(pg_server: Any) -> None:
    with pytest.raises(StoreError, match="postgresql database 'no_such_database': cannot connect"):
        _open(pg_server.dsn("no_such_database"))


def test_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "psycopg", None)
    with pytest.raises(StoreError, match=r"pip install 'imgateway\[postgresql\]'"):
        PostgresEngine("dbname=x").open()


def test_a_server_error_is_a_database_error(dsn: str) -> None:
    engine = _open(dsn)
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute("DROP TABLE resumes")
    with pytest.raises(DatabaseError, match='postgresql: relation "resumes" does not exist') as e:
        engine.open_conversations()
    assert not isinstance(e.value, psycopg.Error)
    engine.close()


def _drop_connection(dsn: str, engine: PostgresEngine) -> None:
    """The server ends the engine's connection (as a restart or a failover would)."""
    with psycopg.connect(dsn, autocommit=True) as raw:
        pid = engine.connection.info.backend_pid
        raw.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("noticed", ["at begin", "by a read before"])
def test_begin_connects_again_after_the_server_dropped_the_connection(
    dsn: str, noticed: str
) -> None:
    engine = _open(dsn)
    engine.insert_conversation(conversation())
    dropped = engine.connection
    _drop_connection(dsn, engine)
    if noticed == "by a read before":
        with pytest.raises(DatabaseError, match="postgresql: "):
            engine.get_conversation("c-1")
    engine.begin()
    engine.insert_message(message("m1"))
    engine.commit()
    assert engine.connection is not dropped
    assert [m.id for m in engine.transcript("c-1")] == ["m1"]
    engine.close()


def test_the_engine_speaks_psycopg_only() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(Path(postgres.__file__).read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert "sqlite3" not in imported
    assert "psycopg" in imported
    assert postgres.PostgresEngine._sql.insert_message.count("%s") == 6
    assert "?" not in postgres.PostgresEngine._sql.insert_message
