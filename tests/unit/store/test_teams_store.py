"""Teams in the database, through IEngine, on each engine (gateway.store.teams)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import agent as _agent

from gateway.store import postgres, sqlite
from gateway.store.errors import TeamExists, UnknownAgent, UnknownTeam
from gateway.store.interfaces import IEngine
from gateway.store.postgres import PostgresEngine
from gateway.store.records import TeamRecord
from gateway.store.sqlite import SqliteEngine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IEngine]:
    if request.param == "sqlite":
        made: IEngine = SqliteEngine(tmp_path / "data" / sqlite.DB_FILE)
    else:
        made = PostgresEngine(request.getfixturevalue("pg_server").new_database())
    made.open()
    for name in ("anna", "bob", "carl"):
        made.add_agent(_agent(name))
    yield made
    made.close()


def test_the_teams_migration_is_the_sixth(engine: IEngine) -> None:
    module = sqlite if isinstance(engine, SqliteEngine) else postgres
    assert len(module.MIGRATIONS) >= 6
    assert engine.schema_version() == module.SCHEMA_VERSION


def test_add_list_get_and_remove(engine: IEngine) -> None:
    engine.add_team(
        TeamRecord(
            name="billing-desk",
            description="Invoices",
            created=1.5,
            members=("bob", "anna"),
            queues=("billing",),
        )
    )
    engine.add_team(TeamRecord(name="tech-desk", members=("carl",), queues=("tech", "general")))
    teams = engine.list_teams()
    assert teams == [
        TeamRecord(
            name="billing-desk",
            description="Invoices",
            created=1.5,
            members=("anna", "bob"),
            queues=("billing",),
        ),
        TeamRecord(name="tech-desk", members=("carl",), queues=("general", "tech")),
    ]
    assert engine.get_team("tech-desk") == teams[1]
    assert engine.get_team("nobody") is None
    with pytest.raises(TeamExists):
        engine.add_team(TeamRecord(name="tech-desk"))
    assert engine.remove_team("tech-desk") is True
    assert engine.remove_team("tech-desk") is False
    assert [t.name for t in engine.list_teams()] == ["billing-desk"]


def test_members_and_queues_change(engine: IEngine) -> None:
    engine.add_team(TeamRecord(name="front"))
    engine.add_team_members("front", ["anna", "bob"])
    engine.add_team_members("front", ["anna"])  # already there: nothing
    engine.add_team_queues("front", ["general", "billing"])
    engine.describe_team("front", "First line")
    assert engine.get_team("front") == TeamRecord(
        name="front",
        description="First line",
        members=("anna", "bob"),
        queues=("billing", "general"),
    )
    assert engine.remove_team_members("front", ["bob", "carl"]) == 1
    assert engine.remove_team_queues("front", ["billing"]) == 1
    assert engine.get_team("front").members == ("anna",)
    assert engine.get_team("front").queues == ("general",)


def test_unknown_team_and_agent(engine: IEngine) -> None:
    with pytest.raises(UnknownTeam):
        engine.add_team_members("ghosts", ["anna"])
    with pytest.raises(UnknownTeam):
        engine.add_team_queues("ghosts", ["general"])
    with pytest.raises(UnknownTeam):
        engine.describe_team("ghosts", "x")
    engine.add_team(TeamRecord(name="front"))
    with pytest.raises(UnknownAgent):
        engine.add_team_members("front", ["zoe"])


def test_an_agent_removed_leaves_its_teams(engine: IEngine) -> None:
    engine.add_team(TeamRecord(name="front", members=("anna", "bob")))
    engine.remove_agent("anna")
    assert engine.get_team("front").members == ("bob",)


def test_a_rolled_back_team_is_not_there(engine: IEngine) -> None:
    engine.begin()
    engine.add_team(TeamRecord(name="front", members=("anna",)))
    engine.rollback()
    assert engine.list_teams() == []
