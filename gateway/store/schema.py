"""The tables both SQL engines hold, written once, in each engine's types.

Migration N (1-based) takes the schema from version N-1 to N on either engine
(gateway.store.sqlite keeps the version in ``PRAGMA user_version``,
gateway.store.postgres in a ``schema_version`` table): the same tables and
version numbers. :func:`migrations` writes them with an engine's floating-point
type and its auto-numbered key, and adds the statements only one engine needs.
Append, never edit: a released migration has already run on someone's database.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.store import teams

# {real} and {serial} stand for the engine's types (str.replace: the DDL holds '{}').
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            capacity INTEGER NOT NULL CHECK (capacity >= 1),
            skills TEXT NOT NULL DEFAULT '{}',
            created {real} NOT NULL
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
            started {real} NOT NULL,
            ended {real},
            end_reason TEXT
        )
        """,
        "CREATE INDEX conversations_started ON conversations (started)",
        """
        CREATE TABLE messages (
            seq {serial},
            id TEXT NOT NULL UNIQUE,
            conversation TEXT NOT NULL REFERENCES conversations (id),
            sender TEXT NOT NULL CHECK (sender IN ('customer', 'agent', 'system')),
            agent TEXT,
            text TEXT NOT NULL,
            ts {real} NOT NULL
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
    teams.migration("{real}"),
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
            joined {real} NOT NULL,
            left_at {real}
        )
        """,
        "CREATE INDEX conversation_parties_conversation ON conversation_parties (conversation)",
        """
        CREATE TABLE customer_ids (
            conversation TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
            customer TEXT NOT NULL,
            started {real} NOT NULL
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
            ts {real} NOT NULL,
            PRIMARY KEY (conversation, agent)
        )
        """,
        "CREATE INDEX wrapups_ts ON wrapups (ts)",
        """
        CREATE TABLE notes (
            id {serial},
            conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            agent TEXT NOT NULL,
            text TEXT NOT NULL,
            ts {real} NOT NULL
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
            received {real} NOT NULL,
            state TEXT NOT NULL,
            agent TEXT,
            reply TEXT,
            replied {real},
            delivered {real}
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
            ts {real} NOT NULL
        )
        """,
        """
        CREATE TABLE canned (
            team TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            text TEXT NOT NULL,
            created {real} NOT NULL,
            PRIMARY KEY (team, name)
        )
        """,
        """
        CREATE TABLE agent_states (
            agent TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            started {real} NOT NULL,
            ended {real}
        )
        """,
        "CREATE INDEX agent_states_started ON agent_states (started)",
        """
        CREATE TABLE closures (
            id {serial},
            queue TEXT NOT NULL,
            spec TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            created {real} NOT NULL
        )
        """,
    ),
)


def migrations(
    real: str, serial: str, extra: Mapping[int, tuple[str, ...]] | None = None
) -> tuple[tuple[str, ...], ...]:
    """Every migration with ``real`` (floating point) and ``serial`` (an auto-numbered
    primary key) put in; ``extra`` adds an engine's own statements to migration N."""
    extra = extra or {}

    def typed(statement: str) -> str:
        return statement.replace("{real}", real).replace("{serial}", serial)

    return tuple(
        tuple(typed(statement) for statement in statements) + extra.get(version, ())
        for version, statements in enumerate(_MIGRATIONS, start=1)
    )
