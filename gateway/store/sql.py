"""What both SQL engines run, written once: the statements and the operations.

SQLite's ``sqlite3`` takes ``?`` and psycopg takes ``%s``; otherwise the
queries on agents, conversations, messages and resumes read the same on both,
so :class:`Queries` holds them once and each engine builds its own copy, and
:class:`SqlEngine` runs them once for both. Connecting, migrating, transactions
and the driver's errors stay in each engine's module (gateway.store.sqlite,
gateway.store.postgres). The functions below turn rows (tuples, from either
driver) into records and back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from gateway.store import teams
from gateway.store.errors import (
    AddressTaken,
    AgentExists,
    ConversationExists,
    DatabaseError,
    MessageExists,
    StoreError,
    UnknownConversation,
)
from gateway.store.records import (
    AgentRecord,
    ConversationRecord,
    StoredMessage,
    TeamRecord,
    check_conversation_changes,
)

AGENT_COLUMNS = (
    "name, display_name, password_hash, capacity, skills, created, location, bot, protocol_capacity"
)
CONVERSATION_COLUMNS = (
    "id, customer_alias, protocol, client_name, client_version, queue, topic,"
    " identity, state, agent, started, ended, end_reason, routing"
)
MESSAGE_COLUMNS = "id, conversation, sender, agent, text, ts"

# Rows per INSERT of Queries.message_chunks(): one statement, one step of the
# database, one release of the GIL, rather than one per row as executemany() takes.
ROWS_PER_INSERT = 64


class Queries:
    """Every shared statement, with ``mark`` as the placeholder (``?`` or ``%s``)."""

    def __init__(self, mark: str) -> None:
        def q(text: str) -> str:
            # The statements below hold no literal '?' or '%'.
            return text.replace("?", mark)

        self.mark = mark
        # Agents.
        self.insert_agent = q(
            f"INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.delete_addresses = q("DELETE FROM agent_addresses WHERE agent = ?")
        self.insert_address = q("INSERT INTO agent_addresses (address, agent) VALUES (?, ?)")
        self.get_agent = q(f"SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?")
        self.find_agent = q(
            f"SELECT {AGENT_COLUMNS} FROM agents WHERE name ="
            " (SELECT agent FROM agent_addresses WHERE address = ?)"
        )
        self.list_agents = f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"
        self.agent_addresses = q(
            "SELECT address FROM agent_addresses WHERE agent = ? ORDER BY address"
        )
        self.remove_agent = q("DELETE FROM agents WHERE name = ?")
        self.set_password = q("UPDATE agents SET password_hash = ? WHERE name = ?")
        self.set_scram = q(
            "INSERT INTO agent_scram (agent, credentials) VALUES (?, ?)"
            " ON CONFLICT (agent) DO UPDATE SET credentials = excluded.credentials"
        )
        self.get_scram = q("SELECT credentials FROM agent_scram WHERE agent = ?")
        # Conversations.
        self.insert_conversation = q(
            f"INSERT INTO conversations ({CONVERSATION_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.get_conversation = q(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?")
        # rowid: SQLite's own; a column of that name on PostgreSQL (its migration 1).
        self.recent_conversations = q(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
            " ORDER BY started DESC, rowid DESC LIMIT ?"
        )
        prefixed = ", ".join(f"c.{c.strip()}" for c in CONVERSATION_COLUMNS.split(","))
        self.open_conversations = (
            f"SELECT {prefixed}, r.token_hash, r.customer_key FROM conversations c"
            " LEFT JOIN resumes r ON r.conversation = c.id"
            " WHERE c.ended IS NULL AND c.state != 'ended' ORDER BY c.started, c.id"
        )
        self.set_resume = q(
            "INSERT INTO resumes (conversation, token_hash, customer_key) VALUES (?, ?, ?)"
            " ON CONFLICT (conversation) DO UPDATE SET token_hash = excluded.token_hash,"
            " customer_key = excluded.customer_key"
        )
        ended = "SELECT id FROM conversations WHERE ended IS NOT NULL AND ended < ?"
        self.purge_messages = q(f"DELETE FROM messages WHERE conversation IN ({ended})")
        self.purge_conversations = q(
            "DELETE FROM conversations WHERE ended IS NOT NULL AND ended < ?"
        )
        # Messages.
        row = q("(?, ?, ?, ?, ?, ?)")
        self.insert_message = f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES {row}"
        # By row count, built once: the hot path only picks one.
        self.insert_message_rows = tuple(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES " + ", ".join([row] * count)
            for count in range(ROWS_PER_INSERT + 1)
        )
        self.transcript = q(
            "SELECT id, conversation, sender, text, ts, agent, audience FROM messages"
            " WHERE conversation = ? ORDER BY seq"
        )

    def update_conversation(self, columns: Iterable[str]) -> str:
        """``UPDATE conversations`` of ``columns`` (checked by the caller), then the id."""
        assignments = ", ".join(f"{column} = {self.mark}" for column in columns)
        return f"UPDATE conversations SET {assignments} WHERE id = {self.mark}"

    def message_chunks(self, messages: Sequence[StoredMessage]) -> Iterator[tuple[str, list]]:
        """(statement, parameters) inserting ``messages`` in order, ROWS_PER_INSERT a time."""
        for start in range(0, len(messages), ROWS_PER_INSERT):
            chunk = messages[start : start + ROWS_PER_INSERT]
            values: list[Any] = []
            for m in chunk:
                values += (m.id, m.conversation, m.sender, m.agent, m.text, m.ts)
            yield self.insert_message_rows[len(chunk)], values


def to_json(value: Mapping[str, Any]) -> str:
    """A mapping as the JSON text the skills, limits and identity columns hold."""
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def agent_values(agent: AgentRecord) -> tuple:
    """The parameters of :attr:`Queries.insert_agent`."""
    return (
        agent.name,
        agent.display_name,
        agent.password_hash,
        agent.capacity,
        to_json(agent.skills),
        agent.created,
        agent.location,
        int(agent.bot),
        to_json(agent.protocol_capacity),
    )


def agent_record(row: Sequence[Any], addresses: Iterable[Sequence[Any]]) -> AgentRecord:
    """An AgentRecord from a row of AGENT_COLUMNS and the rows of its addresses."""
    name, display_name, password_hash, capacity, skills, created, location, bot, per_proto = row
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


def conversation_values(record: ConversationRecord) -> tuple:
    """The parameters of :attr:`Queries.insert_conversation`."""
    return (
        record.id,
        record.customer_alias,
        record.protocol,
        record.client_name,
        record.client_version,
        record.queue,
        record.topic,
        to_json(record.identity),
        record.state,
        record.agent,
        record.started,
        record.ended,
        record.end_reason,
        _optional_json(record.routing),
    )


def _optional_json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else to_json(value)


def conversation_record(row: Sequence[Any]) -> ConversationRecord:
    """A ConversationRecord from a row of CONVERSATION_COLUMNS."""
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
        routing,
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
        routing=None if routing is None else json.loads(routing),
    )


def change_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A conversation's changes as column values (identity and routing as JSON text)."""
    return {
        k: (to_json(v) if k == "identity" else _optional_json(v) if k == "routing" else v)
        for k, v in changes.items()
    }


def message_values(message: StoredMessage) -> tuple:
    """The parameters of :attr:`Queries.insert_message`."""
    return (
        message.id,
        message.conversation,
        message.sender,
        message.agent,
        message.text,
        message.ts,
    )


def messages(rows: Iterable[Sequence[Any]]) -> list[StoredMessage]:
    """StoredMessages from rows of :attr:`Queries.transcript`."""
    return [
        StoredMessage(
            id=id_, conversation=conv, sender=sender, text=text, ts=ts, agent=agent, audience=seen
        )
        for id_, conv, sender, text, ts, agent, seen in rows
    ]


def open_conversation_rows(
    rows: Iterable[Sequence[Any]],
) -> list[tuple[ConversationRecord, str | None, str | None]]:
    """(ConversationRecord, token hash, key) from rows of :attr:`Queries.open_conversations`."""
    return [(conversation_record(row[:-2]), row[-2], row[-1]) for row in rows]


# What an engine's _conflict() finds behind a refused write: a key already
# there (primary or unique), or a row it references missing (a foreign key).
DUPLICATE = "duplicate"
MISSING = "missing"


class SqlEngine:
    """The IEngine operations both SQL engines run the same way, over their hooks.

    An engine (gateway.store.sqlite.SqliteEngine, gateway.store.postgres.PostgresEngine)
    adds connecting, migrating and begin/commit/rollback, and sets:

    - :attr:`placeholder` and :attr:`_sql`, :attr:`_teams` (the statements with it);
    - :attr:`connection`, its driver's connection once open (``execute(statement,
      params)``), which the writes that tell their conflicts apart run on directly;
    - :attr:`driver_error`, what its driver raises;
    - ``_execute(statement[, params])``, a statement's cursor, with the driver's
      errors as the store's; ``_execute_many(statement, rows)``, raising the driver's;
      ``_error(e)``, a driver's error as the store's; ``_conflict(e)``,
      :data:`DUPLICATE`, :data:`MISSING` or None for a driver's error.
    """

    placeholder: str
    _sql: Queries
    _teams: teams.TeamQueries
    connection: Any
    driver_error: type[Exception] | tuple[type[Exception], ...]

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _execute_many(self, statement: str, rows: list[tuple]) -> None:
        raise NotImplementedError

    def _error(self, e: Exception) -> DatabaseError:
        raise NotImplementedError

    def _conflict(self, e: Exception) -> str | None:
        raise NotImplementedError

    def _refused(
        self,
        e: Exception,
        duplicate: Callable[[], StoreError] | None = None,
        missing: Callable[[], StoreError] | None = None,
    ) -> NoReturn:
        """Raise the store's error for a refused write: the caller's name for the conflict."""
        conflict = self._conflict(e)
        if conflict == DUPLICATE and duplicate is not None:
            raise duplicate() from None
        if conflict == MISSING and missing is not None:
            raise missing() from None
        raise self._error(e) from e

    # Savepoints, in the standard words both take (SQLite's SAVEPOINT keyword is optional).

    def savepoint(self) -> None:
        """SAVEPOINT operation."""
        self._execute("SAVEPOINT operation")

    def rollback_to_savepoint(self) -> None:
        """ROLLBACK TO SAVEPOINT operation (on PostgreSQL, also clears a failed statement)."""
        self._execute("ROLLBACK TO SAVEPOINT operation")

    def release_savepoint(self) -> None:
        """RELEASE SAVEPOINT operation."""
        self._execute("RELEASE SAVEPOINT operation")

    # Agents.

    def add_agent(self, agent: AgentRecord) -> None:
        """Provision an agent account; :class:`AgentExists` if the name is taken."""
        try:
            self.connection.execute(self._sql.insert_agent, agent_values(agent))
        except self.driver_error as e:
            self._refused(e, duplicate=lambda: AgentExists(agent.name))
        self._execute(self._sql.delete_addresses, (agent.name,))
        if not agent.addresses:
            return
        try:
            self._execute_many(
                self._sql.insert_address, [(address, agent.name) for address in agent.addresses]
            )
        except self.driver_error as e:
            taken = f"an address of {agent.name} belongs to another agent"
            self._refused(e, duplicate=lambda: AddressTaken(taken))

    def find_agent(self, address: str) -> AgentRecord | None:
        """The agent known by an IM address (``xmpp:anna@corp.example``), or None."""
        row = self._execute(self._sql.find_agent, (address,)).fetchone()
        return None if row is None else self._agent(row)

    def remove_agent(self, name: str) -> bool:
        """Remove an agent account; False if there was none of that name."""
        return self._execute(self._sql.remove_agent, (name,)).rowcount > 0

    def get_agent(self, name: str) -> AgentRecord | None:
        """The agent account ``name``, or None."""
        row = self._execute(self._sql.get_agent, (name,)).fetchone()
        return None if row is None else self._agent(row)

    def list_agents(self) -> list[AgentRecord]:
        """Every agent account, by name."""
        return [self._agent(row) for row in self._execute(self._sql.list_agents).fetchall()]

    def set_password(self, name: str, password_hash: str) -> bool:
        """Replace an agent's password hash; False if there is no agent of that name."""
        return self._execute(self._sql.set_password, (password_hash, name)).rowcount > 0

    def set_scram(self, name: str, credentials: str) -> None:
        """Replace an agent's SCRAM keys (see :func:`gateway.passwords.scram_credentials`)."""
        self._execute(self._sql.set_scram, (name, credentials))

    def get_scram(self, name: str) -> str | None:
        """An agent's SCRAM keys as stored (JSON), or None."""
        row = self._execute(self._sql.get_scram, (name,)).fetchone()
        return None if row is None else row[0]

    def _agent(self, row: Sequence[Any]) -> AgentRecord:
        addresses = self._execute(self._sql.agent_addresses, (row[0],)).fetchall()
        return agent_record(row, addresses)

    # Conversations.

    def insert_conversation(self, record: ConversationRecord) -> None:
        """Record a new conversation; :class:`ConversationExists` for a known id."""
        try:
            self.connection.execute(self._sql.insert_conversation, conversation_values(record))
        except self.driver_error as e:
            self._refused(e, duplicate=lambda: ConversationExists(record.id))

    def update_conversation(self, conversation: str, **changes: Any) -> None:
        """Change columns of a conversation (see gateway.store.records.CONVERSATION_CHANGES).

        Raises ValueError for any other column and :class:`UnknownConversation`
        when no conversation has that id.
        """
        check_conversation_changes(changes)
        if changes:
            # Column names come from the whitelist, never from the caller.
            values = change_values(changes)
            cursor = self._execute(
                self._sql.update_conversation(values), (*values.values(), conversation)
            )
            found = cursor.rowcount > 0
        else:
            found = self.get_conversation(conversation) is not None
        if not found:
            raise UnknownConversation(conversation)

    def get_conversation(self, conversation: str) -> ConversationRecord | None:
        """The conversation ``conversation``, or None."""
        row = self._execute(self._sql.get_conversation, (conversation,)).fetchone()
        return None if row is None else conversation_record(row)

    def recent_conversations(self, limit: int) -> list[ConversationRecord]:
        """The ``limit`` most recently started conversations, newest first."""
        rows = self._execute(self._sql.recent_conversations, (limit,)).fetchall()
        return [conversation_record(row) for row in rows]

    def open_conversations(self) -> list[tuple[ConversationRecord, str | None, str | None]]:
        """Conversations not ended, oldest first, each with its token hash and key."""
        return open_conversation_rows(self._execute(self._sql.open_conversations).fetchall())

    def set_resume(self, conversation: str, token_hash: str | None, key: str | None) -> None:
        """Record how a conversation's customer may resume it (token hash, address key).

        Raises :class:`UnknownConversation` when the conversation is not recorded.
        """
        try:
            self.connection.execute(self._sql.set_resume, (conversation, token_hash, key))
        except self.driver_error as e:
            self._refused(e, missing=lambda: UnknownConversation(conversation))

    def purge_ended_before(self, ts: float) -> int:
        """Delete conversations that ended before ``ts`` and their messages; the count."""
        self._execute(self._sql.purge_messages, (ts,))
        return self._execute(self._sql.purge_conversations, (ts,)).rowcount

    # Messages: the hot path, one statement each without a helper call between.

    def insert_message(self, message: StoredMessage) -> None:
        """Append a message to its conversation's transcript.

        Raises :class:`MessageExists` for a known message id and
        :class:`UnknownConversation` when its conversation is not recorded.
        """
        try:
            self.connection.execute(self._sql.insert_message, message_values(message))
        except self.driver_error as e:
            self._refused(
                e,
                duplicate=lambda: MessageExists(message.id),
                missing=lambda: UnknownConversation(message.conversation),
            )

    def insert_messages(self, messages: Sequence[StoredMessage]) -> None:
        """Append several messages, in order, in a few multi-row statements.

        Raises :class:`ConstraintError` if any of them is refused, without saying
        which: :meth:`insert_message` them one by one to find it.
        """
        execute = self.connection.execute
        try:
            for statement, values in self._sql.message_chunks(messages):
                execute(statement, values)
        except self.driver_error as e:
            raise self._error(e) from e

    def transcript(self, conversation: str) -> list[StoredMessage]:
        """The messages of a conversation, in the order they were stored."""
        return messages(self._execute(self._sql.transcript, (conversation,)).fetchall())

    # Teams (the statements are gateway.store.teams').

    def add_team(self, team: TeamRecord) -> None:
        """Create a team with its members and queues; TeamExists, UnknownAgent."""
        teams.add_team(self._execute, self._teams, team)

    def remove_team(self, name: str) -> bool:
        """Remove a team and its memberships; False if there was none of that name."""
        return teams.remove_team(self._execute, self._teams, name)

    def describe_team(self, name: str, description: str) -> None:
        """Change a team's description; UnknownTeam."""
        teams.describe_team(self._execute, self._teams, name, description)

    def get_team(self, name: str) -> TeamRecord | None:
        """The team ``name`` with its members and queues, or None."""
        return teams.get_team(self._execute, self._teams, name)

    def list_teams(self) -> list[TeamRecord]:
        """Every team, by name, with its members and queues."""
        return teams.list_teams(self._execute, self._teams)

    def add_team_members(self, team: str, agents: Sequence[str]) -> None:
        """Put agents in a team; UnknownTeam, UnknownAgent."""
        teams.add_members(self._execute, self._teams, team, agents)

    def remove_team_members(self, team: str, agents: Sequence[str]) -> int:
        """Take agents out of a team; how many were in it. UnknownTeam."""
        return teams.remove_members(self._execute, self._teams, team, agents)

    def add_team_queues(self, team: str, queues: Sequence[str]) -> None:
        """The team serves these queues too; UnknownTeam."""
        teams.add_queues(self._execute, self._teams, team, queues)

    def remove_team_queues(self, team: str, queues: Sequence[str]) -> int:
        """The team no longer serves these queues; how many it served. UnknownTeam."""
        return teams.remove_queues(self._execute, self._teams, team, queues)

    # Any other statement (the service desk's, gateway.desk.sql), with placeholder marks.

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        return self._execute(statement, params).rowcount

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a query; its rows."""
        return self._execute(statement, params).fetchall()
