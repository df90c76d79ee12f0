"""The store: agents, conversations and transcripts, on one database engine.

- ``interfaces.py``: ``IStore`` (what the core uses) and ``IEngine`` (one database);
  ``errors.py``: the store's errors; ``records.py``: what it keeps.
- ``writer.py``: ``GroupCommitStore``, the group-commit writer thread over any engine.
- ``sqlite.py``, ``postgres.py``: the engines, each with its own driver, schema and
  migrations; ``sql.py``: the statements they share.
- ``memory.py``: ``MemoryStore``, for tests. ``settings.py``: ``[store]``.
  ``retention.py``: the daily purge.

To add a store engine, write ``gateway/store/<name>.py`` with a class providing
``IEngine`` (and a ``from_config(config)`` class method), name it in :data:`ENGINES`
below (``[store] backend`` accepts the names listed there), and run the engine
suite against it (the ``make_engine`` fixture of ``tests/unit/store/test_engine.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorFromThreads

if TYPE_CHECKING:
    from gateway.store.interfaces import IEngine
    from gateway.store.writer import GroupCommitStore

# [store] backend -> "module:class" of its engine; imported only when selected, so
# that neither the core nor a SQLite site loads a driver it does not use.
ENGINES: dict[str, str] = {
    "sqlite": "gateway.store.sqlite:SqliteEngine",
    "postgresql": "gateway.store.postgres:PostgresEngine",
}


def engine_for(config: Any) -> IEngine:
    """The engine (not yet open) that ``config``'s ``[store]`` selects; SQLite by default."""
    settings = config.sections.get("store")
    backend = "sqlite" if settings is None else settings.backend
    module, _, name = ENGINES[backend].partition(":")
    return getattr(importlib.import_module(module), name).from_config(config)


def open_store(config: Any, reactor: IReactorFromThreads) -> GroupCommitStore:
    """The store ``[store]`` configures (see :mod:`gateway.store.settings`), not started."""
    # Here, not above: the core imports gateway.store's interfaces, and neither
    # the writer nor an engine comes with them.
    from gateway.store.writer import GroupCommitStore

    settings = config.sections.get("store")
    tuning = {}
    if settings is not None:
        tuning = {"max_batch": settings.max_batch, "max_pending": settings.max_pending}
    return GroupCommitStore(engine_for(config), reactor, **tuning)
