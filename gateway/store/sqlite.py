"""The SQLite database: schema, migrations and the queries on it.

Synchronous and connection-based, so that the store's writer thread and the
admin CLI share one definition. Connections are opened in autocommit mode
(``isolation_level=None``): every function here is one statement, atomic on its
own, and callers that want several in one transaction (the store's group
commit) issue ``BEGIN``/``COMMIT`` themselves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage

DB_FILE = "imgateway.sqlite3"
BUSY_TIMEOUT_MS = 5000

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
    }
)

# Migration N (1-based) takes the schema from user_version N-1 to N. Append,
# never edit: a released migration has already run on someone's database.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            capacity INTEGER NOT NULL CHECK (capacity >= 1),
            skills TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL
        )
        """,
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            customer_alias TEXT NOT NULL,
            protocol TEXT NOT NULL,
            client_name TEXT NOT NULL,
            client_version TEXT NOT NULL,
            queue TEXT,
            topic TEXT,
            identity TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL,
            agent TEXT,
            started REAL NOT NULL,
            ended REAL,
            end_reason TEXT
        )
        """,
        "CREATE INDEX conversations_started ON conversations (started)",
        """
        CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            conversation TEXT NOT NULL REFERENCES conversations (id),
            sender TEXT NOT NULL CHECK (sender IN ('customer', 'agent', 'system')),
            agent TEXT,
            text TEXT NOT NULL,
            ts REAL NOT NULL
        )
        """,
        "CREATE INDEX messages_conversation_seq ON messages (conversation, seq)",
    ),
    (
        # Routing attributes, and the IM addresses an agent is known by on servers
        # that authenticate it for us (an XMPP server, an IRC network's services).
        "ALTER TABLE agents ADD COLUMN location TEXT NOT NULL DEFAULT 'lan'",
        "ALTER TABLE agents ADD COLUMN bot INTEGER NOT NULL DEFAULT 0",
        """
        CREATE TABLE agent_addresses (
            address TEXT PRIMARY KEY,
            agent TEXT NOT NULL REFERENCES agents (name) ON DELETE CASCADE
        )
        """,
        "CREATE INDEX agent_addresses_agent ON agent_addresses (agent)",
    ),
    (
        # SCRAM keys (RFC 5802/7677) for agents logging in over XMPP SASL: a JSON
        # object per agent, written with the scrypt hash by `agent add`/`passwd`.
        """
        CREATE TABLE agent_scram (
            agent TEXT PRIMARY KEY REFERENCES agents (name) ON DELETE CASCADE,
            credentials TEXT NOT NULL
        )
        """,
    ),
    (
        # Per-protocol limits within an agent's capacity, e.g. {"irc": 1}.
        "ALTER TABLE agents ADD COLUMN protocol_capacity TEXT NOT NULL DEFAULT '{}'",
    ),
    (
        # Resuming after a drop or a restart (gateway.core.resume): the SHA-256 of the
        # customer's resume token and their address key, per conversation.
        """
        CREATE TABLE resumes (
            conversation TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
            token_hash TEXT,
            customer_key TEXT
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """A store operation was refused or the database cannot be used."""


class StoreBusy(StoreError):
    """Too many operations wait for the database already: a message is refused, not queued."""


class SchemaTooNew(StoreError):
    """The database was written by a newer imgateway than this one."""


class AddressTaken(StoreError):
    """An IM address given for an agent already names another agent."""


class AgentExists(StoreError):
    """An agent account of that name is already provisioned."""

    def __init__(self, name: str) -> None:
        super().__init__(f"agent {name!r} already exists")
        self.name = name


class ConversationExists(StoreError):
    """A conversation of that id is already recorded."""

    def __init__(self, conversation: str) -> None:
        super().__init__(f"conversation {conversation!r} already exists")
        self.conversation = conversation


class UnknownConversation(StoreError):
    """No conversation of that id is recorded."""

    def __init__(self, conversation: str) -> None:
        super().__init__(f"no such conversation: {conversation!r}")
        self.conversation = conversation


class MessageExists(StoreError):
    """A message of that id is already stored."""

    def __init__(self, message: str) -> None:
        super().__init__(f"message {message!r} already exists")
        self.message = message


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database file ``path`` and bring its schema up to date.

    Raises :class:`SchemaTooNew` for a database written by a newer imgateway and
    :class:`StoreError` when the file cannot be opened or used.
    """
    path = Path(path)
    try:
        # Transcripts and password hashes: readable by the service account only.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            # SQLite gives the -wal and -shm files the database file's mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as e:
        raise StoreError(f"{path}: cannot create database: {e.strerror or e}") from None
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot open database: {e}") from None
    try:
        _configure(conn, path)
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # First, so that every later statement waits for a CLI or gateway
        # holding the lock instead of failing at once.
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = _switch_to_wal(conn)
        # An acknowledged message must survive power loss; group commit
        # amortises the fsync this costs.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot use database: {e}") from None
    if str(mode).lower() != "wal":
        raise StoreError(f"{path}: cannot use write-ahead logging (journal mode is {mode})")


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    # Entering WAL needs an exclusive lock, and SQLite reports a conflict there at once
    # instead of waiting: two CLI commands on a new database would otherwise fail.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database (``PRAGMA user_version``)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, path: Path | str = "database") -> None:
    """Apply the migrations the database lacks, each in its own transaction."""
    _check_version(schema_version(conn), path)
    for target, statements in enumerate(MIGRATIONS, start=1):
        if schema_version(conn) >= target:
            continue
        try:
            # IMMEDIATE takes the write lock first, so a gateway and a CLI
            # starting together cannot both apply the same migration.
            conn.execute("BEGIN IMMEDIATE")
            current = schema_version(conn)
            _check_version(current, path)
            if current < target:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"{path}: migration to schema {target} failed: {e}") from e
            raise


def _check_version(version: int, path: Path | str) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path}: database schema version {version} is newer than this imgateway "
            f"supports ({SCHEMA_VERSION}); upgrade imgateway"
        )


# Agents.


def add_agent(conn: sqlite3.Connection, agent: AgentRecord) -> None:
    """Provision an agent account; raises :class:`AgentExists` if the name is taken."""
    try:
        conn.execute(
            "INSERT INTO agents (name, display_name, password_hash, capacity, skills, created,"
            " location, bot, protocol_capacity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                agent.name,
                agent.display_name,
                agent.password_hash,
                agent.capacity,
                _to_json(agent.skills),
                agent.created,
                agent.location,
                int(agent.bot),
                _to_json(agent.protocol_capacity),
            ),
        )
    except sqlite3.IntegrityError as e:
        if e.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
            raise AgentExists(agent.name) from None
        raise
    _set_addresses(conn, agent.name, agent.addresses)


def _set_addresses(conn: sqlite3.Connection, name: str, addresses) -> None:
    conn.execute("DELETE FROM agent_addresses WHERE agent = ?", (name,))
    try:
        conn.executemany(
            "INSERT INTO agent_addresses (address, agent) VALUES (?, ?)",
            [(address, name) for address in addresses],
        )
    except sqlite3.IntegrityError:
        raise AddressTaken(f"an address of {name} belongs to another agent") from None


def find_agent(conn: sqlite3.Connection, address: str) -> AgentRecord | None:
    """The agent known by an IM address (``xmpp:anna@corp.example``), or None."""
    row = conn.execute(
        f"SELECT {_AGENT_COLUMNS} FROM agents WHERE name ="
        " (SELECT agent FROM agent_addresses WHERE address = ?)",
        (address,),
    ).fetchone()
    return None if row is None else _agent(conn, row)


def remove_agent(conn: sqlite3.Connection, name: str) -> bool:
    """Remove an agent account; False if there was none of that name."""
    return conn.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0


def get_agent(conn: sqlite3.Connection, name: str) -> AgentRecord | None:
    """The agent account ``name``, or None."""
    row = conn.execute(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE name = ?", (name,)).fetchone()
    return None if row is None else _agent(conn, row)


def list_agents(conn: sqlite3.Connection) -> list[AgentRecord]:
    """Every agent account, by name."""
    rows = conn.execute(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY name").fetchall()
    return [_agent(conn, row) for row in rows]


def set_password(conn: sqlite3.Connection, name: str, password_hash: str) -> bool:
    """Replace an agent's password hash; False if there is no agent of that name."""
    cursor = conn.execute(
        "UPDATE agents SET password_hash = ? WHERE name = ?", (password_hash, name)
    )
    return cursor.rowcount > 0


def set_scram(conn: sqlite3.Connection, name: str, credentials: str) -> None:
    """Replace an agent's SCRAM keys (see :func:`gateway.passwords.scram_credentials`)."""
    conn.execute(
        "INSERT INTO agent_scram (agent, credentials) VALUES (?, ?)"
        " ON CONFLICT (agent) DO UPDATE SET credentials = excluded.credentials",
        (name, credentials),
    )


def get_scram(conn: sqlite3.Connection, name: str) -> str | None:
    """An agent's SCRAM keys as stored (JSON), or None."""
    row = conn.execute("SELECT credentials FROM agent_scram WHERE agent = ?", (name,)).fetchone()
    return None if row is None else row[0]


_AGENT_COLUMNS = (
    "name, display_name, password_hash, capacity, skills, created, location, bot, protocol_capacity"
)


def _agent(conn: sqlite3.Connection, row: tuple) -> AgentRecord:
    name, display_name, password_hash, capacity, skills, created, location, bot, per_proto = row
    addresses = conn.execute(
        "SELECT address FROM agent_addresses WHERE agent = ? ORDER BY address", (name,)
    ).fetchall()
    return AgentRecord(
        name=name,
        display_name=display_name,
        password_hash=password_hash,
        capacity=capacity,
        skills=json.loads(skills),
        created=created,
        location=location,
        bot=bool(bot),
        protocol_capacity=json.loads(per_proto),
        addresses=tuple(a for (a,) in addresses),
    )


# Conversations.


def insert_conversation(conn: sqlite3.Connection, record: ConversationRecord) -> None:
    """Record a new conversation; raises :class:`ConversationExists` for a known id."""
    try:
        conn.execute(
            f"INSERT INTO conversations ({_CONVERSATION_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.customer_alias,
                record.protocol,
                record.client_name,
                record.client_version,
                record.queue,
                record.topic,
                _to_json(record.identity),
                record.state,
                record.agent,
                record.started,
                record.ended,
                record.end_reason,
            ),
        )
    except sqlite3.IntegrityError as e:
        if e.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
            raise ConversationExists(record.id) from None
        raise


def check_conversation_changes(changes: Mapping[str, Any]) -> None:
    """Raise ValueError unless every key of ``changes`` is a column that may change."""
    unknown = sorted(set(changes) - CONVERSATION_CHANGES)
    if unknown:
        raise ValueError(f"conversation columns that cannot be changed: {', '.join(unknown)}")


def update_conversation(conn: sqlite3.Connection, conversation: str, **changes: Any) -> None:
    """Change columns of a conversation (see :data:`CONVERSATION_CHANGES`).

    Raises ValueError for any other column and :class:`UnknownConversation`
    when no conversation has that id.
    """
    check_conversation_changes(changes)
    values = {k: _to_json(v) if k == "identity" else v for k, v in changes.items()}
    if values:
        # Column names come from the whitelist above, never from the caller.
        assignments = ", ".join(f"{column} = ?" for column in values)
        cursor = conn.execute(
            f"UPDATE conversations SET {assignments} WHERE id = ?",
            (*values.values(), conversation),
        )
        found = cursor.rowcount > 0
    else:
        found = get_conversation(conn, conversation) is not None
    if not found:
        raise UnknownConversation(conversation)


def get_conversation(conn: sqlite3.Connection, conversation: str) -> ConversationRecord | None:
    """The conversation ``conversation``, or None."""
    row = conn.execute(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation,)
    ).fetchone()
    return None if row is None else _conversation(row)


def recent_conversations(conn: sqlite3.Connection, limit: int) -> list[ConversationRecord]:
    """The ``limit`` most recently started conversations, newest first."""
    rows = conn.execute(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations"
        " ORDER BY started DESC, rowid DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [_conversation(row) for row in rows]


_CONVERSATION_COLUMNS = (
    "id, customer_alias, protocol, client_name, client_version, queue, topic,"
    " identity, state, agent, started, ended, end_reason"
)


def _conversation(row: tuple) -> ConversationRecord:
    (
        id_,
        customer_alias,
        protocol,
        client_name,
        client_version,
        queue,
        topic,
        identity,
        state,
        agent,
        started,
        ended,
        end_reason,
    ) = row
    return ConversationRecord(
        id=id_,
        customer_alias=customer_alias,
        protocol=protocol,
        client_name=client_name,
        client_version=client_version,
        started=started,
        queue=queue,
        topic=topic,
        identity=json.loads(identity),
        state=state,
        agent=agent,
        ended=ended,
        end_reason=end_reason,
    )


# Messages.


def insert_message(conn: sqlite3.Connection, message: StoredMessage) -> None:
    """Append a message to its conversation's transcript.

    Raises :class:`MessageExists` for a known message id and
    :class:`UnknownConversation` when its conversation is not recorded.
    """
    try:
        conn.execute(
            "INSERT INTO messages (id, conversation, sender, agent, text, ts)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                message.id,
                message.conversation,
                message.sender,
                message.agent,
                message.text,
                message.ts,
            ),
        )
    except sqlite3.IntegrityError as e:
        if e.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE":
            raise MessageExists(message.id) from None
        if e.sqlite_errorname == "SQLITE_CONSTRAINT_FOREIGNKEY":
            raise UnknownConversation(message.conversation) from None
        raise


# Rows per INSERT of insert_messages(): one statement, one step of the engine, one
# release of the GIL, rather than one per row as executemany() takes.
_ROWS_PER_INSERT = 64
_MESSAGE_ROW = "(?, ?, ?, ?, ?, ?)"


def insert_messages(conn: sqlite3.Connection, messages: Sequence[StoredMessage]) -> None:
    """Append several messages, in order, in a few multi-row statements.

    Raises ``sqlite3.IntegrityError`` if any of them is refused, without saying
    which: :func:`insert_message` them one by one to find it.
    """
    for start in range(0, len(messages), _ROWS_PER_INSERT):
        chunk = messages[start : start + _ROWS_PER_INSERT]
        values: list[Any] = []
        for m in chunk:
            values += (m.id, m.conversation, m.sender, m.agent, m.text, m.ts)
        conn.execute(
            "INSERT INTO messages (id, conversation, sender, agent, text, ts) VALUES "
            + ", ".join([_MESSAGE_ROW] * len(chunk)),
            values,
        )


def transcript(conn: sqlite3.Connection, conversation: str) -> list[StoredMessage]:
    """The messages of a conversation, in the order they were stored."""
    rows = conn.execute(
        "SELECT id, conversation, sender, text, ts, agent FROM messages"
        " WHERE conversation = ? ORDER BY seq",
        (conversation,),
    ).fetchall()
    return [
        StoredMessage(id=id_, conversation=conv, sender=sender, text=text, ts=ts, agent=agent)
        for id_, conv, sender, text, ts, agent in rows
    ]


def _to_json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def purge_ended_before(conn: sqlite3.Connection, ts: float) -> int:
    """Delete conversations that ended before ``ts`` and their messages; the count deleted.

    Runs inside the caller's transaction (the store's writer), so it neither commits
    nor rolls back. For transcript retention (``[store] retention_days``).
    """
    old = "SELECT id FROM conversations WHERE ended IS NOT NULL AND ended < ?"
    conn.execute(f"DELETE FROM messages WHERE conversation IN ({old})", (ts,))
    return conn.execute(
        "DELETE FROM conversations WHERE ended IS NOT NULL AND ended < ?", (ts,)
    ).rowcount


# Resuming (gateway.core.resume).


def set_resume(
    conn: sqlite3.Connection, conversation: str, token_hash: str | None, key: str | None
) -> None:
    """Record how a conversation's customer may resume it (token hash, address key)."""
    conn.execute(
        "INSERT INTO resumes (conversation, token_hash, customer_key) VALUES (?, ?, ?)"
        " ON CONFLICT (conversation) DO UPDATE SET token_hash = excluded.token_hash,"
        " customer_key = excluded.customer_key",
        (conversation, token_hash, key),
    )


def open_conversations(
    conn: sqlite3.Connection,
) -> list[tuple[ConversationRecord, str | None, str | None]]:
    """Conversations not ended, oldest first, each with its token hash and key."""
    columns = ", ".join(f"c.{c.strip()}" for c in _CONVERSATION_COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT {columns}, r.token_hash, r.customer_key FROM conversations c"
        " LEFT JOIN resumes r ON r.conversation = c.id"
        " WHERE c.ended IS NULL AND c.state != 'ended' ORDER BY c.started, c.id"
    ).fetchall()
    return [(_conversation(row[:-2]), row[-2], row[-1]) for row in rows]
