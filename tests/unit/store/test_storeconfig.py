"""The [store] section and the store it selects; [gateway] resume_grace_s."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactor

from gateway.config import ConfigError, load
from gateway.store import ENGINES, open_store
from gateway.store import settings as storeconfig
from gateway.store.postgres import PostgresEngine
from gateway.store.sqlite import DB_FILE, SqliteEngine
from gateway.store.writer import GroupCommitStore


def _load(tmp_path: Path, text: str):
    path = tmp_path / "site.toml"
    path.write_text(text)
    return load(path, cwd=tmp_path)


def test_defaults_are_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv(storeconfig.DSN_ENV, raising=False)
    cfg = _load(tmp_path, "")
    settings = cfg.sections["store"]
    assert (settings.backend, settings.dsn, settings.max_batch) == ("sqlite", "", 512)
    assert settings.retention_days == 0
    assert cfg.resume_grace_s == 120
    store = open_store(cfg, MemoryReactor())
    assert isinstance(store, GroupCommitStore)
    assert isinstance(store.engine, SqliteEngine)
    assert store.engine.path == cfg.data_dir / DB_FILE


def test_postgresql_with_a_dsn(tmp_path, monkeypatch):
    monkeypatch.delenv(storeconfig.DSN_ENV, raising=False)
    cfg = _load(tmp_path, '[store]\nbackend = "postgresql"\ndsn = "dbname=gw"\nmax_batch = 64\n')
    store = open_store(cfg, MemoryReactor())
    assert isinstance(store.engine, PostgresEngine)
    assert (store.engine.dsn, store.describe()) == ("dbname=gw", "postgresql database 'gw'")


def test_the_environment_dsn_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(storeconfig.DSN_ENV, "dbname=from_env password=secret")
    cfg = _load(tmp_path, '[store]\nbackend = "postgresql"\ndsn = "dbname=gw"\n')
    store = open_store(cfg, MemoryReactor())
    assert store.engine.dsn == "dbname=from_env password=secret"
    assert "secret" not in store.describe()


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ('[store]\nbackend = "mysql"\n', "store.backend", "must be one of sqlite, postgresql"),
        ('[store]\nbackend = "postgresql"\n', "store.dsn", "needs a dsn"),
        ("[store]\nmax_batch = 0\n", "store.max_batch", "between"),
        ("[store]\npool = 3\n", "store.pool", "unknown key"),
        ("[gateway]\nresume_grace_s = -1\n", "gateway.resume_grace_s", "between"),
    ],
)
def test_errors(tmp_path, monkeypatch, text, key, problem):
    monkeypatch.delenv(storeconfig.DSN_ENV, raising=False)
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    assert key in str(e.value) and problem in str(e.value)


def test_every_backend_names_an_engine():
    assert storeconfig.BACKENDS == tuple(ENGINES) == ("sqlite", "postgresql")
