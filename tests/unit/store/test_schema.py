"""The migrations both SQL engines share (gateway.store.schema), in each engine's types."""

from __future__ import annotations

from gateway.store import postgres, schema, sqlite


def _text(migrations: tuple[tuple[str, ...], ...]) -> str:
    return "\n".join(statement for statements in migrations for statement in statements)


def test_both_engines_migrate_through_the_same_versions() -> None:
    shared = schema.migrations(real="R", serial="S")
    assert len(sqlite.MIGRATIONS) == len(postgres.MIGRATIONS) == len(shared)
    assert sqlite.SCHEMA_VERSION == postgres.SCHEMA_VERSION == len(shared)


def test_each_engine_has_its_own_types_put_in() -> None:
    lite, pg = _text(sqlite.MIGRATIONS), _text(postgres.MIGRATIONS)
    for text in (lite, pg):
        assert "{real}" not in text and "{serial}" not in text
        # The JSON columns' defaults stay as written.
        assert "skills TEXT NOT NULL DEFAULT '{}'" in text
    assert "seq INTEGER PRIMARY KEY AUTOINCREMENT," in lite
    assert "started REAL NOT NULL" in lite
    assert "DOUBLE PRECISION" not in lite and "IDENTITY" not in lite
    assert "seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY," in pg
    assert "started DOUBLE PRECISION NOT NULL" in pg
    assert " REAL" not in pg and "AUTOINCREMENT" not in pg


def test_an_engines_own_statements_end_their_migration() -> None:
    shared = schema.migrations(real="R", serial="S")
    own = schema.migrations(real="R", serial="S", extra={1: ("SELECT 1",)})
    assert own[0] == (*shared[0], "SELECT 1")
    assert own[1:] == shared[1:]
    assert postgres.MIGRATIONS[0][-1].startswith("ALTER TABLE conversations ADD COLUMN rowid")
    assert len(postgres.MIGRATIONS[0]) == len(sqlite.MIGRATIONS[0]) + 1
