"""The ``[store]`` configuration section: which database holds the transcripts.

Registered as the ``store`` part (gateway/app/parts.py);
``Config.sections["store"]`` is then a :class:`StoreSettings`.
"""

from __future__ import annotations

import os

import attrs

from gateway.config import Reader
from gateway.store import ENGINES

# One per engine (gateway.store.ENGINES).
BACKENDS = tuple(ENGINES)
# Wins over [store] dsn, so that a password need not be written in a config file.
DSN_ENV = "IMGATEWAY_DB_DSN"


@attrs.frozen
class StoreSettings:
    """Where the store keeps its data. Defaults here are the defaults of ``[store]``."""

    #: sqlite (a file in gateway.data_dir) or postgresql (a server, at ``dsn``).
    backend: str = "sqlite"
    #: libpq connection string for postgresql; IMGATEWAY_DB_DSN overrides it.
    dsn: str = ""
    #: Operations committed together at most (group commit).
    max_batch: int = 512
    #: Messages refused (JSON-IM ``unavailable``) while this many operations wait.
    max_pending: int = 50_000
    #: Ended conversations older than this many days are deleted (0: kept forever);
    #: see gateway.store.retention, which reads it from here.
    retention_days: int = 0

    def effective_dsn(self, environ: os._Environ | dict | None = None) -> str:
        """The DSN to connect with: the environment's, else the configured one."""
        environ = os.environ if environ is None else environ
        return environ.get(DSN_ENV) or self.dsn


def parse(reader: Reader) -> StoreSettings:
    """Read ``[store]``."""
    backend = reader.text("backend", "sqlite", check=_one_of)
    settings = StoreSettings(
        backend=backend,
        dsn=reader.text("dsn", ""),
        max_batch=reader.number("max_batch", 512, low=1, high=100_000, integer=True),
        max_pending=reader.number("max_pending", 50_000, low=1, high=10_000_000, integer=True),
        retention_days=reader.number("retention_days", 0, low=0, high=100_000, integer=True),
    )
    reader.done()
    if backend == "postgresql" and not settings.effective_dsn():
        raise reader.fail("dsn", f"the postgresql backend needs a dsn (or {DSN_ENV})")
    return settings


def _one_of(value: str) -> str | None:
    return None if value in BACKENDS else f"must be one of {', '.join(BACKENDS)}, not {value!r}"
