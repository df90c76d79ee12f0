"""The service desk's statements: plain functions of an open engine.

Each takes an engine (gateway.store.interfaces.IEngine) and runs through its
``execute`` and ``fetch`` with the engine's own parameter mark, so the same text
serves SQLite and PostgreSQL. The running gateway calls them in the store's writer
thread (:class:`gateway.desk.store.DeskStore`), the admin CLI directly. The tables are
the engines' migration 6 (gateway.store.sqlite, gateway.store.postgres).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.desk.records import (
    ANSWERED,
    ASSIGNED,
    OPEN,
    Canned,
    OfflineMessage,
    StoredClosure,
)
from gateway.store.records import StoredMessage
from gateway.store.sql import message_values

_CACHE: dict[tuple[str, str], str] = {}


def _q(engine: Any, text: str) -> str:
    # Written with '?'; PostgreSQL's driver takes '%s'. No statement has a literal '?'.
    key = (text, engine.placeholder)
    statement = _CACHE.get(key)
    if statement is None:
        statement = _CACHE[key] = text.replace("?", engine.placeholder)
    return statement


def _run(engine: Any, text: str, *params: Any) -> int:
    return engine.execute(_q(engine, text), params)


def _rows(engine: Any, text: str, *params: Any) -> list[tuple]:
    return engine.fetch(_q(engine, text), params)


# -- roles -------------------------------------------------------------------------


def role(engine: Any, agent: str) -> str | None:
    """The desk role of an agent account ('supervisor'), or None."""
    rows = _rows(engine, "SELECT role FROM agent_roles WHERE agent = ?", agent)
    return rows[0][0] if rows else None


def set_role(engine: Any, agent: str, value: str | None) -> bool:
    """Give an agent a role (None: none); False when there is no such agent."""
    if not _rows(engine, "SELECT 1 FROM agents WHERE name = ?", agent):
        return False
    _run(engine, "DELETE FROM agent_roles WHERE agent = ?", agent)
    if value is not None:
        _run(engine, "INSERT INTO agent_roles (agent, role) VALUES (?, ?)", agent, value)
    return True


def roles(engine: Any) -> list[tuple[str, str]]:
    """(agent, role) of every agent with one."""
    return [tuple(r) for r in _rows(engine, "SELECT agent, role FROM agent_roles ORDER BY agent")]


# -- who saw what ----------------------------------------------------------------------


def party_joined(engine: Any, conversation: str, agent: str, role_: str, ts: float) -> None:
    """A supervisor or colleague joined a conversation beside its agent."""
    _run(
        engine,
        "INSERT INTO conversation_parties (conversation, agent, role, joined) VALUES (?, ?, ?, ?)",
        conversation,
        agent,
        role_,
        ts,
    )


def party_left(engine: Any, conversation: str, agent: str, ts: float) -> None:
    """They left it."""
    _run(
        engine,
        "UPDATE conversation_parties SET left_at = ?"
        " WHERE conversation = ? AND agent = ? AND left_at IS NULL",
        ts,
        conversation,
        agent,
    )


def parties(engine: Any, conversation: str) -> list[dict[str, Any]]:
    """Everyone who was in a conversation beside its agent: role, joined, left."""
    rows = _rows(
        engine,
        "SELECT agent, role, joined, left_at FROM conversation_parties"
        " WHERE conversation = ? ORDER BY joined",
        conversation,
    )
    return [{"agent": a, "role": r, "joined": j, "left": left} for a, r, j, left in rows]


def insert_private(engine: Any, message: StoredMessage) -> None:
    """A line of the transcript only some saw (``audience`` agents)."""
    _run(
        engine,
        "INSERT INTO messages (id, conversation, sender, agent, text, ts, audience)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        *message_values(message),
        message.audience,
    )


# -- customers -------------------------------------------------------------------------


def customer_seen(engine: Any, conversation: str, customer: str, started: float) -> None:
    """Note whose conversation this is (a verified identity)."""
    _run(
        engine,
        "INSERT INTO customer_ids (conversation, customer, started) VALUES (?, ?, ?)",
        conversation,
        customer,
        started,
    )


def past(engine: Any, customer: str, exclude: str, limit: int) -> list[tuple]:
    """(id, started, topic, disposition, agent alias) of a customer's other conversations."""
    return _rows(
        engine,
        "SELECT c.id, c.started, c.topic,"
        " (SELECT w.disposition FROM wrapups w WHERE w.conversation = c.id"
        "  ORDER BY w.ts DESC LIMIT 1),"
        " a.display_name"
        " FROM customer_ids k JOIN conversations c ON c.id = k.conversation"
        " LEFT JOIN agents a ON a.name = c.agent"
        " WHERE k.customer = ? AND c.id != ? ORDER BY k.started DESC, c.id LIMIT ?",
        customer,
        exclude,
        limit,
    )


def customer_arrived(
    engine: Any, conversation: str, customer: str, started: float, limit: int
) -> tuple[list[tuple], list[tuple[OfflineMessage, str | None]]]:
    """A recognised customer's new conversation, in one trip to the database: noted, and
    their earlier conversations (at most ``limit``) and waiting answers read."""
    customer_seen(engine, conversation, customer, started)
    earlier = past(engine, customer, conversation, limit) if limit else []
    return earlier, answers_for(engine, customer)


def customer_of(engine: Any, conversation: str) -> str | None:
    """The verified identity of a conversation's customer, or None."""
    rows = _rows(engine, "SELECT customer FROM customer_ids WHERE conversation = ?", conversation)
    return rows[0][0] if rows else None


# -- wrap-up -----------------------------------------------------------------------


def wrap_up(
    engine: Any,
    conversation: str,
    agent: str,
    queue: str | None,
    disposition: str | None,
    tags: Sequence[str],
    ts: float,
) -> None:
    """An agent's wrap-up of a conversation (its latest replaces an earlier one)."""
    _run(
        engine,
        "INSERT INTO wrapups (conversation, agent, queue, disposition, tags, ts)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conversation, agent) DO UPDATE SET"
        " queue = excluded.queue, disposition = excluded.disposition,"
        " tags = excluded.tags, ts = excluded.ts",
        conversation,
        agent,
        queue,
        disposition,
        json.dumps(list(tags)),
        ts,
    )


def add_note(engine: Any, conversation: str, agent: str, text: str, ts: float) -> None:
    """A private note of an agent on a conversation."""
    _run(
        engine,
        "INSERT INTO notes (conversation, agent, text, ts) VALUES (?, ?, ?, ?)",
        conversation,
        agent,
        text,
        ts,
    )


def case_file(engine: Any, conversation: str) -> dict[str, Any]:
    """A conversation's wrap-ups, notes, survey and parties, for agents and supervisors."""
    wrapups = [
        {"agent": a, "queue": q, "disposition": d, "tags": json.loads(t), "ts": ts}
        for a, q, d, t, ts in _rows(
            engine,
            "SELECT agent, queue, disposition, tags, ts FROM wrapups"
            " WHERE conversation = ? ORDER BY ts",
            conversation,
        )
    ]
    notes = [
        {"agent": a, "text": text, "ts": ts}
        for a, text, ts in _rows(
            engine,
            "SELECT agent, text, ts FROM notes WHERE conversation = ? ORDER BY id",
            conversation,
        )
    ]
    survey = _rows(
        engine, "SELECT score, comment FROM surveys WHERE conversation = ?", conversation
    )
    return {
        "wrap_ups": wrapups,
        "notes": notes,
        "survey": {"score": survey[0][0], "comment": survey[0][1]} if survey else None,
        "parties": parties(engine, conversation),
    }


# -- offline messages ------------------------------------------------------------------

_OFFLINE_COLUMNS = (
    "id, conversation, customer, alias, protocol, name, queue, text, received,"
    " state, agent, reply, replied, delivered"
)
OFFLINE_CHANGES = frozenset({"state", "agent", "reply", "replied", "delivered"})


def _offline(row: Sequence[Any]) -> OfflineMessage:
    return OfflineMessage(*row)


def insert_offline(engine: Any, m: OfflineMessage) -> None:
    """Keep a message a customer left."""
    _run(
        engine,
        f"INSERT INTO offline_messages ({_OFFLINE_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        m.id,
        m.conversation,
        m.customer,
        m.alias,
        m.protocol,
        m.name,
        m.queue,
        m.text,
        m.received,
        m.state,
        m.agent,
        m.reply,
        m.replied,
        m.delivered,
    )


def update_offline(engine: Any, message: str, **changes: Any) -> None:
    """Change the state, agent, reply or times of an offline message."""
    unknown = set(changes) - OFFLINE_CHANGES
    if unknown:
        raise ValueError(f"offline message columns that cannot change: {sorted(unknown)}")
    assignments = ", ".join(f"{column} = ?" for column in changes)
    _run(
        engine,
        f"UPDATE offline_messages SET {assignments} WHERE id = ?",
        *changes.values(),
        message,
    )


def offline_waiting(engine: Any) -> list[OfflineMessage]:
    """Messages no agent has answered yet, oldest first."""
    rows = _rows(
        engine,
        f"SELECT {_OFFLINE_COLUMNS} FROM offline_messages WHERE state IN (?, ?)"
        " ORDER BY received, id",
        OPEN,
        ASSIGNED,
    )
    return [_offline(r) for r in rows]


def offline_list(engine: Any, state: str | None, limit: int) -> list[OfflineMessage]:
    """The newest offline messages (of one state)."""
    if state is None:
        rows = _rows(
            engine,
            f"SELECT {_OFFLINE_COLUMNS} FROM offline_messages ORDER BY received DESC, id LIMIT ?",
            limit,
        )
    else:
        rows = _rows(
            engine,
            f"SELECT {_OFFLINE_COLUMNS} FROM offline_messages WHERE state = ?"
            " ORDER BY received DESC, id LIMIT ?",
            state,
            limit,
        )
    return [_offline(r) for r in rows]


def answers_for(engine: Any, customer: str) -> list[tuple[OfflineMessage, str | None]]:
    """Answered messages of a customer not yet delivered, with the answering agent's alias."""
    prefixed = ", ".join(f"m.{c.strip()}" for c in _OFFLINE_COLUMNS.split(","))
    rows = _rows(
        engine,
        f"SELECT {prefixed}, a.display_name FROM offline_messages m"
        " LEFT JOIN agents a ON a.name = m.agent"
        " WHERE m.customer = ? AND m.state = ? ORDER BY m.replied, m.id",
        customer,
        ANSWERED,
    )
    return [(_offline(r[:-1]), r[-1]) for r in rows]


# -- surveys ---------------------------------------------------------------------------


def survey(
    engine: Any,
    conversation: str,
    queue: str | None,
    agent: str | None,
    score: int,
    comment: str | None,
    ts: float,
) -> None:
    """A customer's answer to the survey."""
    _run(
        engine,
        "INSERT INTO surveys (conversation, queue, agent, score, comment, ts)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conversation) DO UPDATE SET"
        " score = excluded.score, comment = excluded.comment, ts = excluded.ts",
        conversation,
        queue,
        agent,
        score,
        comment,
        ts,
    )


# -- canned responses ------------------------------------------------------------------


def canned_put(engine: Any, canned: Canned, ts: float) -> None:
    """Add or replace a canned response."""
    _run(
        engine,
        "INSERT INTO canned (team, name, text, created) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (team, name) DO UPDATE SET text = excluded.text",
        canned.team,
        canned.name,
        canned.text,
        ts,
    )


def canned_remove(engine: Any, name: str, team: str) -> bool:
    """Remove a canned response; False when there was none."""
    return _run(engine, "DELETE FROM canned WHERE team = ? AND name = ?", team, name) > 0


def canned_list(engine: Any) -> list[Canned]:
    """Every canned response, global ones first, by name."""
    rows = _rows(engine, "SELECT name, text, team FROM canned ORDER BY team, name")
    return [Canned(name=n, text=t, team=team) for n, t, team in rows]


# -- agents' states --------------------------------------------------------------------


def state_open(engine: Any, agent: str, status: str, reason: str, ts: float) -> None:
    """An agent's status from ``ts`` on (the previous span closed first)."""
    state_close(engine, agent, ts)
    _run(
        engine,
        "INSERT INTO agent_states (agent, status, reason, started) VALUES (?, ?, ?, ?)",
        agent,
        status,
        reason,
        ts,
    )


def state_close(engine: Any, agent: str, ts: float) -> None:
    """An agent's current span ends at ``ts``."""
    _run(
        engine,
        "UPDATE agent_states SET ended = ? WHERE agent = ? AND ended IS NULL",
        ts,
        agent,
    )


def states_interrupted(engine: Any) -> int:
    """Spans a stop left open end where they began: their length is unknown."""
    return _run(engine, "UPDATE agent_states SET ended = started WHERE ended IS NULL")


# -- closures --------------------------------------------------------------------------


def closure_add(engine: Any, queue: str, spec: str, name: str, ts: float) -> int:
    """Keep a dated closure of ``queue`` (``*``: every queue); its id."""
    _run(
        engine,
        "INSERT INTO closures (queue, spec, name, created) VALUES (?, ?, ?, ?)",
        queue,
        spec,
        name,
        ts,
    )
    rows = _rows(
        engine,
        "SELECT max(id) FROM closures WHERE queue = ? AND spec = ? AND created = ?",
        queue,
        spec,
        ts,
    )
    return int(rows[0][0])


def closure_remove(engine: Any, closure: int) -> bool:
    """Remove a stored closure; False when there was none."""
    return _run(engine, "DELETE FROM closures WHERE id = ?", closure) > 0


def closures(engine: Any) -> list[StoredClosure]:
    """Every stored closure, by id."""
    rows = _rows(engine, "SELECT id, queue, spec, name, created FROM closures ORDER BY id")
    return [StoredClosure(int(i), q, s, n, c) for i, q, s, n, c in rows]


# -- reports ---------------------------------------------------------------------------


def dispositions_report(engine: Any, since: float, until: float) -> list[dict[str, Any]]:
    """Wrap-ups per queue and disposition in [since, until), and the tags given."""
    out: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    rows = _rows(
        engine,
        "SELECT queue, disposition, tags FROM wrapups WHERE ts >= ? AND ts < ?",
        since,
        until,
    )
    for queue, disposition, tags in rows:
        entry = out.setdefault(
            (queue, disposition),
            {"queue": queue, "disposition": disposition, "count": 0, "tags": {}},
        )
        entry["count"] += 1
        for tag in json.loads(tags):
            entry["tags"][tag] = entry["tags"].get(tag, 0) + 1
    return sorted(out.values(), key=lambda e: (e["queue"] or "", e["disposition"] or ""))


def csat_report(engine: Any, since: float, until: float) -> list[dict[str, Any]]:
    """Survey answers per queue and agent in [since, until): count, mean, each score."""
    out: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    rows = _rows(
        engine,
        "SELECT queue, agent, score FROM surveys WHERE ts >= ? AND ts < ?",
        since,
        until,
    )
    for queue, agent, score in rows:
        scores = {str(s): 0 for s in range(1, 6)}
        entry = out.setdefault(
            (queue, agent), {"queue": queue, "agent": agent, "count": 0, "scores": scores}
        )
        entry["count"] += 1
        entry["scores"][str(score)] += 1
    for entry in out.values():
        total = sum(int(s) * n for s, n in entry["scores"].items())
        entry["mean"] = round(total / entry["count"], 2)
    return sorted(out.values(), key=lambda e: (e["queue"] or "", e["agent"] or ""))


def states_report(engine: Any, since: float, until: float, now: float) -> list[dict[str, Any]]:
    """Seconds each agent spent in each status and reason within [since, until)."""
    rows = _rows(
        engine,
        "SELECT agent, status, reason, started, ended FROM agent_states"
        " WHERE started < ? AND (ended IS NULL OR ended > ?)",
        until,
        since,
    )
    totals: dict[tuple[str, str, str], float] = {}
    for agent, status, reason, started, ended in rows:
        end = min(until, now if ended is None else ended)
        seconds = max(0.0, end - max(since, started))
        key = (agent, status, reason)
        totals[key] = totals.get(key, 0.0) + seconds
    return [
        {"agent": a, "status": s, "reason": r or None, "seconds": round(t, 1)}
        for (a, s, r), t in sorted(totals.items())
    ]


def tally(values: Iterable[str]) -> dict[str, int]:
    """How many times each value occurs."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
