"""The SQLite engine: the store in one database file, through the ``sqlite3`` driver.

:class:`SqliteEngine` opens the file in write-ahead-log mode with a busy timeout, so
that a gateway and ``imgateway-admin`` share it, and in autocommit mode
(``isolation_level=None``): every operation is one statement or atomic on its own
unless the caller brackets several with :meth:`SqliteEngine.begin` and
:meth:`SqliteEngine.commit` (the store's group commit, the CLI). The schema is
:data:`MIGRATIONS`, its version ``PRAGMA user_version``. The shared statements
are in gateway.store.sql; ``sqlite3`` errors leave as gateway.store.errors.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zope.interface import implementer

from gateway.store import sql, teams
from gateway.store.errors import (
    AddressTaken,
    AgentExists,
    ConstraintError,
    ConversationExists,
    DatabaseError,
    MessageExists,
    SchemaTooNew,
    StoreError,
    UnknownConversation,
)
from gateway.store.interfaces import IEngine
from gateway.store.records import (
    AgentRecord,
    ConversationRecord,
    StoredMessage,
    TeamRecord,
    check_conversation_changes,
)

DB_FILE = "imgateway.sqlite3"
BUSY_TIMEOUT_MS = 5000

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
    # Teams and the queues they serve (gateway.store.teams, gateway.directory.teams).
    teams.migration("REAL"),
    (
        # The routing decision behind a conversation's agent (rule, target, strategy,
        # compatibility entry, source, reason, queue), as JSON; NULL before any offer.
        "ALTER TABLE conversations ADD COLUMN routing TEXT",
    ),
    (
        # The service desk (gateway.desk): who saw each line, supervisors, the agents
        # and supervisors in a conversation beside its agent, customers' verified
        # identities, wrap-ups and notes, offline messages, surveys, canned responses,
        # agents' states with their reasons, and dated closures of queues.
        "ALTER TABLE messages ADD COLUMN audience TEXT NOT NULL DEFAULT 'all'",
        """
        CREATE TABLE agent_roles (
            agent TEXT PRIMARY KEY REFERENCES agents (name) ON DELETE CASCADE,
            role TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE conversation_parties (
            conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            agent TEXT NOT NULL,
            role TEXT NOT NULL,
            joined REAL NOT NULL,
            left_at REAL
        )
        """,
        "CREATE INDEX conversation_parties_conversation ON conversation_parties (conversation)",
        """
        CREATE TABLE customer_ids (
            conversation TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
            customer TEXT NOT NULL,
            started REAL NOT NULL
        )
        """,
        "CREATE INDEX customer_ids_customer ON customer_ids (customer, started)",
        """
        CREATE TABLE wrapups (
            conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            agent TEXT NOT NULL,
            queue TEXT,
            disposition TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            ts REAL NOT NULL,
            PRIMARY KEY (conversation, agent)
        )
        """,
        "CREATE INDEX wrapups_ts ON wrapups (ts)",
        """
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            agent TEXT NOT NULL,
            text TEXT NOT NULL,
            ts REAL NOT NULL
        )
        """,
        "CREATE INDEX notes_conversation ON notes (conversation)",
        """
        CREATE TABLE offline_messages (
            id TEXT PRIMARY KEY,
            conversation TEXT REFERENCES conversations (id) ON DELETE SET NULL,
            customer TEXT,
            alias TEXT NOT NULL,
            protocol TEXT NOT NULL,
            name TEXT,
            queue TEXT,
            text TEXT NOT NULL,
            received REAL NOT NULL,
            state TEXT NOT NULL,
            agent TEXT,
            reply TEXT,
            replied REAL,
            delivered REAL
        )
        """,
        "CREATE INDEX offline_messages_customer ON offline_messages (customer, state)",
        """
        CREATE TABLE surveys (
            conversation TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
            queue TEXT,
            agent TEXT,
            score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
            comment TEXT,
            ts REAL NOT NULL
        )
        """,
        """
        CREATE TABLE canned (
            team TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            text TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (team, name)
        )
        """,
        """
        CREATE TABLE agent_states (
            agent TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            started REAL NOT NULL,
            ended REAL
        )
        """,
        "CREATE INDEX agent_states_started ON agent_states (started)",
        """
        CREATE TABLE closures (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue TEXT NOT NULL,
            spec TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

_SQL = sql.Queries("?")
_TEAMS = teams.TeamQueries("?")


def _error(e: sqlite3.Error) -> DatabaseError:
    """A ``sqlite3`` error as the store's own."""
    if isinstance(e, sqlite3.IntegrityError):
        return ConstraintError(str(e))
    return DatabaseError(str(e))


@implementer(IEngine)
class SqliteEngine:
    """The database file ``path`` (created with its directory, private to the service).

    :attr:`connection` is the ``sqlite3`` connection once open, for what only
    SQLite does (tracing statements, pragmas); everything else goes through
    the methods.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.connection: sqlite3.Connection | None = None

    @classmethod
    def from_config(cls, config: Any) -> SqliteEngine:
        """The engine ``[store] backend = "sqlite"`` selects: a file in ``gateway.data_dir``."""
        return cls(Path(config.data_dir) / DB_FILE)

    def describe(self) -> str:
        """The database file."""
        return str(self.path)

    def open(self) -> None:
        """Open (creating if needed) the database file and bring its schema up to date.

        Raises :class:`SchemaTooNew` for a database written by a newer imgateway and
        :class:`StoreError` when the file cannot be opened or used.
        """
        path = self.path
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
        self.connection = conn
        try:
            self._configure()
            self.migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (nothing if it is not open)."""
        conn, self.connection = self.connection, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as e:
                raise _error(e) from e

    def _configure(self) -> None:
        conn = self.connection
        try:
            # First, so that every later statement waits for a CLI or gateway
            # holding the lock instead of failing at once.
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._switch_to_wal()
            # An acknowledged message must survive power loss; group commit
            # amortises the fsync this costs.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot use database: {e}") from None
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.path}: cannot use write-ahead logging (journal mode is {mode})"
            )

    def _switch_to_wal(self) -> str:
        # Entering WAL needs an exclusive lock, and SQLite reports a conflict there at
        # once instead of waiting: two CLI commands on a new database would otherwise fail.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return self.connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def schema_version(self) -> int:
        """The schema version recorded in the database (``PRAGMA user_version``)."""
        return self._execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        """Apply the migrations the database lacks, each in its own transaction."""
        conn, where = self.connection, self.path
        SchemaTooNew.check(self.schema_version(), SCHEMA_VERSION, str(where))
        for target, statements in enumerate(MIGRATIONS, start=1):
            if self.schema_version() >= target:
                continue
            try:
                # IMMEDIATE takes the write lock first, so a gateway and a CLI
                # starting together cannot both apply the same migration.
                conn.execute("BEGIN IMMEDIATE")
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                SchemaTooNew.check(current, SCHEMA_VERSION, str(where))
                if current < target:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"{where}: migration to schema {target} failed: {e}") from e
                raise

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.connection.execute(statement, params)
        except sqlite3.Error as e:
            raise _error(e) from e

    # Transactions.

    def begin(self) -> None:
        """BEGIN IMMEDIATE: the write lock now, not at the first write (no upgrade deadlock)."""
        self._execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """COMMIT; a refused commit (a deferred constraint) is rolled back."""
        try:
            self.connection.execute("COMMIT")
        except sqlite3.Error as e:
            self.rollback()
            raise _error(e) from e

    def rollback(self) -> None:
        """ROLLBACK, if a transaction is open (SQLite ends some on an error by itself)."""
        if self.connection.in_transaction:
            self._execute("ROLLBACK")

    def savepoint(self) -> None:
        """SAVEPOINT operation."""
        self._execute("SAVEPOINT operation")

    def rollback_to_savepoint(self) -> None:
        """ROLLBACK TO operation."""
        self._execute("ROLLBACK TO operation")

    def release_savepoint(self) -> None:
        """RELEASE operation."""
        self._execute("RELEASE operation")

    # Agents.

    def add_agent(self, agent: AgentRecord) -> None:
        """Provision an agent account; :class:`AgentExists` if the name is taken."""
        try:
            self.connection.execute(_SQL.insert_agent, sql.agent_values(agent))
        except sqlite3.IntegrityError as e:
            if e.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
                raise AgentExists(agent.name) from None
            raise _error(e) from e
        except sqlite3.Error as e:
            raise _error(e) from e
        self._execute(_SQL.delete_addresses, (agent.name,))
        try:
            self.connection.executemany(
                _SQL.insert_address, [(address, agent.name) for address in agent.addresses]
            )
        except sqlite3.IntegrityError:
            raise AddressTaken(f"an address of {agent.name} belongs to another agent") from None
        except sqlite3.Error as e:
            raise _error(e) from e

    def find_agent(self, address: str) -> AgentRecord | None:
        """The agent known by an IM address (``xmpp:anna@corp.example``), or None."""
        row = self._execute(_SQL.find_agent, (address,)).fetchone()
        return None if row is None else self._agent(row)

    def remove_agent(self, name: str) -> bool:
        """Remove an agent account; False if there was none of that name."""
        return self._execute(_SQL.remove_agent, (name,)).rowcount > 0

    def get_agent(self, name: str) -> AgentRecord | None:
        """The agent account ``name``, or None."""
        row = self._execute(_SQL.get_agent, (name,)).fetchone()
        return None if row is None else self._agent(row)

    def list_agents(self) -> list[AgentRecord]:
        """Every agent account, by name."""
        return [self._agent(row) for row in self._execute(_SQL.list_agents).fetchall()]

    def set_password(self, name: str, password_hash: str) -> bool:
        """Replace an agent's password hash; False if there is no agent of that name."""
        return self._execute(_SQL.set_password, (password_hash, name)).rowcount > 0

    def set_scram(self, name: str, credentials: str) -> None:
        """Replace an agent's SCRAM keys (see :func:`gateway.passwords.scram_credentials`)."""
        self._execute(_SQL.set_scram, (name, credentials))

    def get_scram(self, name: str) -> str | None:
        """An agent's SCRAM keys as stored (JSON), or None."""
        row = self._execute(_SQL.get_scram, (name,)).fetchone()
        return None if row is None else row[0]

    def _agent(self, row: Sequence[Any]) -> AgentRecord:
        addresses = self._execute(_SQL.agent_addresses, (row[0],)).fetchall()
        return sql.agent_record(row, addresses)

    # Conversations.

    def insert_conversation(self, record: ConversationRecord) -> None:
        """Record a new conversation; :class:`ConversationExists` for a known id."""
        try:
            self.connection.execute(_SQL.insert_conversation, sql.conversation_values(record))
        except sqlite3.IntegrityError as e:
            if e.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
                raise ConversationExists(record.id) from None
            raise _error(e) from e
        except sqlite3.Error as e:
            raise _error(e) from e

    def update_conversation(self, conversation: str, **changes: Any) -> None:
        """Change columns of a conversation (see gateway.store.records.CONVERSATION_CHANGES).

        Raises ValueError for any other column and :class:`UnknownConversation`
        when no conversation has that id.
        """
        check_conversation_changes(changes)
        if changes:
            # Column names come from the whitelist, never from the caller.
            values = sql.change_values(changes)
            cursor = self._execute(
                _SQL.update_conversation(values), (*values.values(), conversation)
            )
            found = cursor.rowcount > 0
        else:
            found = self.get_conversation(conversation) is not None
        if not found:
            raise UnknownConversation(conversation)

    def get_conversation(self, conversation: str) -> ConversationRecord | None:
        """The conversation ``conversation``, or None."""
        row = self._execute(_SQL.get_conversation, (conversation,)).fetchone()
        return None if row is None else sql.conversation_record(row)

    def recent_conversations(self, limit: int) -> list[ConversationRecord]:
        """The ``limit`` most recently started conversations, newest first."""
        rows = self._execute(_SQL.recent_conversations, (limit,)).fetchall()
        return [sql.conversation_record(row) for row in rows]

    def open_conversations(self) -> list[tuple[ConversationRecord, str | None, str | None]]:
        """Conversations not ended, oldest first, each with its token hash and key."""
        return sql.open_conversation_rows(self._execute(_SQL.open_conversations).fetchall())

    def set_resume(self, conversation: str, token_hash: str | None, key: str | None) -> None:
        """Record how a conversation's customer may resume it (token hash, address key).

        Raises :class:`UnknownConversation` when the conversation is not recorded.
        """
        try:
            self.connection.execute(_SQL.set_resume, (conversation, token_hash, key))
        except sqlite3.IntegrityError as e:
            if e.sqlite_errorname == "SQLITE_CONSTRAINT_FOREIGNKEY":
                raise UnknownConversation(conversation) from None
            raise _error(e) from e
        except sqlite3.Error as e:
            raise _error(e) from e

    def purge_ended_before(self, ts: float) -> int:
        """Delete conversations that ended before ``ts`` and their messages; the count."""
        self._execute(_SQL.purge_messages, (ts,))
        return self._execute(_SQL.purge_conversations, (ts,)).rowcount

    # Messages.

    def insert_message(self, message: StoredMessage) -> None:
        """Append a message to its conversation's transcript.

        Raises :class:`MessageExists` for a known message id and
        :class:`UnknownConversation` when its conversation is not recorded.
        """
        try:
            self.connection.execute(
                _SQL.insert_message,
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
            raise _error(e) from e
        except sqlite3.Error as e:
            raise _error(e) from e

    def insert_messages(self, messages: Sequence[StoredMessage]) -> None:
        """Append several messages, in order, in a few multi-row statements.

        Raises :class:`ConstraintError` if any of them is refused, without saying
        which: :meth:`insert_message` them one by one to find it.
        """
        execute = self.connection.execute
        try:
            for statement, values in _SQL.message_chunks(messages):
                execute(statement, values)
        except sqlite3.Error as e:
            raise _error(e) from e

    def transcript(self, conversation: str) -> list[StoredMessage]:
        """The messages of a conversation, in the order they were stored."""
        return sql.messages(self._execute(_SQL.transcript, (conversation,)).fetchall())

    # Teams (the statements are gateway.store.teams').

    def add_team(self, team: TeamRecord) -> None:
        """Create a team with its members and queues; TeamExists, UnknownAgent."""
        teams.add_team(self._execute, _TEAMS, team)

    def remove_team(self, name: str) -> bool:
        """Remove a team and its memberships; False if there was none of that name."""
        return teams.remove_team(self._execute, _TEAMS, name)

    def describe_team(self, name: str, description: str) -> None:
        """Change a team's description; UnknownTeam."""
        teams.describe_team(self._execute, _TEAMS, name, description)

    def get_team(self, name: str) -> TeamRecord | None:
        """The team ``name`` with its members and queues, or None."""
        return teams.get_team(self._execute, _TEAMS, name)

    def list_teams(self) -> list[TeamRecord]:
        """Every team, by name, with its members and queues."""
        return teams.list_teams(self._execute, _TEAMS)

    def add_team_members(self, team: str, agents: Sequence[str]) -> None:
        """Put agents in a team; UnknownTeam, UnknownAgent."""
        teams.add_members(self._execute, _TEAMS, team, agents)

    def remove_team_members(self, team: str, agents: Sequence[str]) -> int:
        """Take agents out of a team; how many were in it. UnknownTeam."""
        return teams.remove_members(self._execute, _TEAMS, team, agents)

    def add_team_queues(self, team: str, queues: Sequence[str]) -> None:
        """The team serves these queues too; UnknownTeam."""
        teams.add_queues(self._execute, _TEAMS, team, queues)

    def remove_team_queues(self, team: str, queues: Sequence[str]) -> int:
        """The team no longer serves these queues; how many it served. UnknownTeam."""
        return teams.remove_queues(self._execute, _TEAMS, team, queues)

    # Any other statement (the service desk's, gateway.desk.sql), with ``?`` marks.

    placeholder = "?"

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        return self._execute(statement, params).rowcount

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a query; its rows."""
        return self._execute(statement, params).fetchall()
