"""The routing decision stored with a conversation (migration 7), on each engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import conversation as _conversation

from gateway.store import sqlite
from gateway.store.interfaces import IEngine
from gateway.store.postgres import PostgresEngine
from gateway.store.sqlite import SqliteEngine

DECISION = {
    "rule": "vip-billing",
    "target": 2,
    "strategy": "least_occupied",
    "compatibility": "xmpp-modern",
    "source": "fallback",
    "reason": "routing server refused the connection (2 attempts); local rule vip-billing",
    "queue": "billing",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IEngine]:
    if request.param == "sqlite":
        made: IEngine = SqliteEngine(tmp_path / "data" / sqlite.DB_FILE)
    else:
        made = PostgresEngine(request.getfixturevalue("pg_server").new_database())
    made.open()
    yield made
    made.close()


def test_the_decision_round_trips_and_changes(engine: IEngine) -> None:
    engine.insert_conversation(_conversation())
    assert engine.get_conversation("c-1").routing is None
    engine.update_conversation("c-1", routing=DECISION)
    assert engine.get_conversation("c-1").routing == DECISION
    engine.insert_conversation(_conversation("c-2", routing={"rule": "default"}))
    assert [r.routing for r in engine.recent_conversations(5)] == [{"rule": "default"}, DECISION]
    assert [r.routing for r, _, _ in engine.open_conversations()] == [DECISION, {"rule": "default"}]
    engine.update_conversation("c-1", routing=None)
    assert engine.get_conversation("c-1").routing is None
