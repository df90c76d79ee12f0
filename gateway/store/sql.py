"""The statements both SQL engines run, written once, with each engine's placeholder.

SQLite's ``sqlite3`` takes ``?`` and psycopg takes ``%s``; otherwise the
queries on agents, conversations, messages and resumes read the same on both,
so :class:`Queries` holds them once and each engine builds its own copy. The
schemas, migrations, transactions and error handling stay in each engine's
module (gateway.store.sqlite, gateway.store.postgres), which runs these with
its own driver. The functions below turn rows (tuples, from either driver)
into records and back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage

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
