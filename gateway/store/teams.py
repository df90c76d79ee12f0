"""Teams and the queues they serve, on either SQL engine: the statements, written once.

Both engines (gateway.store.sqlite, gateway.store.postgres) keep teams in three
tables (``teams``, ``team_members``, ``team_queues``, their migration 6) and run
these functions with their own ``execute(statement, params)``, which raises the
store's errors. Membership rows go with their team, and with their agent, when
either is removed (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gateway.store.errors import TeamExists, UnknownAgent, UnknownTeam
from gateway.store.records import TeamRecord

Execute = Callable[[str, Sequence[Any]], Any]

# The DDL both engines share (TEXT and REAL/DOUBLE PRECISION: see each engine).
TEAMS_DDL = (
    """
    CREATE TABLE teams (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created {real} NOT NULL
    )
    """,
    """
    CREATE TABLE team_members (
        team TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
        agent TEXT NOT NULL REFERENCES agents (name) ON DELETE CASCADE,
        PRIMARY KEY (team, agent)
    )
    """,
    "CREATE INDEX team_members_agent ON team_members (agent)",
    """
    CREATE TABLE team_queues (
        team TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
        queue TEXT NOT NULL,
        PRIMARY KEY (team, queue)
    )
    """,
)


def migration(real: str) -> tuple[str, ...]:
    """The statements of the teams migration, with the engine's floating-point type."""
    return tuple(statement.format(real=real) for statement in TEAMS_DDL)


class TeamQueries:
    """The team statements with ``mark`` as the placeholder (``?`` or ``%s``)."""

    def __init__(self, mark: str) -> None:
        def q(text: str) -> str:
            return text.replace("?", mark)

        self.exists = q("SELECT 1 FROM teams WHERE name = ?")
        self.agent_exists = q("SELECT 1 FROM agents WHERE name = ?")
        self.insert = q("INSERT INTO teams (name, description, created) VALUES (?, ?, ?)")
        self.remove = q("DELETE FROM teams WHERE name = ?")
        self.describe = q("UPDATE teams SET description = ? WHERE name = ?")
        self.list = "SELECT name, description, created FROM teams ORDER BY name"
        self.get = q("SELECT name, description, created FROM teams WHERE name = ?")
        self.members = "SELECT team, agent FROM team_members ORDER BY team, agent"
        self.queues = "SELECT team, queue FROM team_queues ORDER BY team, queue"
        self.members_of = q("SELECT agent FROM team_members WHERE team = ? ORDER BY agent")
        self.queues_of = q("SELECT queue FROM team_queues WHERE team = ? ORDER BY queue")
        self.add_member = q(
            "INSERT INTO team_members (team, agent) VALUES (?, ?) ON CONFLICT DO NOTHING"
        )
        self.remove_member = q("DELETE FROM team_members WHERE team = ? AND agent = ?")
        self.add_queue = q(
            "INSERT INTO team_queues (team, queue) VALUES (?, ?) ON CONFLICT DO NOTHING"
        )
        self.remove_queue = q("DELETE FROM team_queues WHERE team = ? AND queue = ?")


def add_team(execute: Execute, q: TeamQueries, team: TeamRecord) -> None:
    """Create ``team`` with its members and queues; TeamExists, UnknownAgent."""
    if execute(q.exists, (team.name,)).fetchone() is not None:
        raise TeamExists(team.name)
    execute(q.insert, (team.name, team.description, team.created))
    add_members(execute, q, team.name, team.members)
    add_queues(execute, q, team.name, team.queues)


def remove_team(execute: Execute, q: TeamQueries, name: str) -> bool:
    """Remove a team (its memberships go with it); False if there was none."""
    return execute(q.remove, (name,)).rowcount > 0


def describe_team(execute: Execute, q: TeamQueries, name: str, description: str) -> None:
    """Change a team's description; UnknownTeam."""
    if execute(q.describe, (description, name)).rowcount == 0:
        raise UnknownTeam(name)


def get_team(execute: Execute, q: TeamQueries, name: str) -> TeamRecord | None:
    """The team ``name`` with its members and queues, or None."""
    row = execute(q.get, (name,)).fetchone()
    if row is None:
        return None
    members = tuple(agent for (agent,) in execute(q.members_of, (name,)).fetchall())
    queues = tuple(queue for (queue,) in execute(q.queues_of, (name,)).fetchall())
    return TeamRecord(
        name=row[0], description=row[1], created=row[2], members=members, queues=queues
    )


def list_teams(execute: Execute, q: TeamQueries) -> list[TeamRecord]:
    """Every team, by name, with its members and queues (three queries in all)."""
    members: dict[str, list[str]] = {}
    for team, agent in execute(q.members, ()).fetchall():
        members.setdefault(team, []).append(agent)
    queues: dict[str, list[str]] = {}
    for team, queue in execute(q.queues, ()).fetchall():
        queues.setdefault(team, []).append(queue)
    return [
        TeamRecord(
            name=name,
            description=description,
            created=created,
            members=tuple(members.get(name, ())),
            queues=tuple(queues.get(name, ())),
        )
        for name, description, created in execute(q.list, ()).fetchall()
    ]


def _team(execute: Execute, q: TeamQueries, name: str) -> None:
    if execute(q.exists, (name,)).fetchone() is None:
        raise UnknownTeam(name)


def add_members(execute: Execute, q: TeamQueries, team: str, agents: Iterable[str]) -> None:
    """Put provisioned agents in a team (already there: nothing); UnknownTeam, UnknownAgent."""
    _team(execute, q, team)
    for agent in agents:
        if execute(q.agent_exists, (agent,)).fetchone() is None:
            raise UnknownAgent(agent)
        execute(q.add_member, (team, agent))


def remove_members(execute: Execute, q: TeamQueries, team: str, agents: Iterable[str]) -> int:
    """Take agents out of a team; how many were in it. UnknownTeam."""
    _team(execute, q, team)
    return sum(execute(q.remove_member, (team, agent)).rowcount for agent in agents)


def add_queues(execute: Execute, q: TeamQueries, team: str, queues: Iterable[str]) -> None:
    """The team serves these queues too (names the caller checked); UnknownTeam."""
    _team(execute, q, team)
    for queue in queues:
        execute(q.add_queue, (team, queue))


def remove_queues(execute: Execute, q: TeamQueries, team: str, queues: Iterable[str]) -> int:
    """The team no longer serves these queues; how many it served. UnknownTeam."""
    _team(execute, q, team)
    return sum(execute(q.remove_queue, (team, queue)).rowcount for queue in queues)
