"""PostgreSQL for the store: a connection that speaks to :mod:`gateway.store.sqlite`'s queries.

The queries in :mod:`gateway.store.sqlite` are written once, for SQLite. :class:`PgConnection`
wraps a psycopg 3 connection in the few ``sqlite3.Connection`` habits they rely on
(``?`` placeholders, ``execute`` returning a cursor, ``executemany``,
``in_transaction``) and reports constraint violations as ``sqlite3.IntegrityError``
with the SQLite error name, so the same functions raise the same
:class:`gateway.store.sqlite.StoreError` subclasses on both databases; other server errors
become ``sqlite3.OperationalError``, which the admin CLI reports as database errors.

The schema comes from :data:`gateway.store.sqlite.MIGRATIONS` too, rewritten for PostgreSQL
by :func:`translate`; the version applied is kept in a ``schema_version`` table
(SQLite keeps it in ``PRAGMA user_version``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.store import sqlite as db

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # the "postgresql" extra is not installed
    psycopg = None
    pg_errors = None

# Held while migrating, so two gateways (or a gateway and the CLI) starting
# together do not both apply the same migration. Any constant will do.
_MIGRATION_LOCK = 0x696D6777  # "imgw"

# SQLite spellings -> PostgreSQL ones, for the schema statements only.
_TYPES = (
    # SQLite's REAL is 8 bytes; PostgreSQL's is 4 and would round timestamps.
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (
        re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"),
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    ),
)

# Statements PostgreSQL needs after a migration's own, by migration number.
EXTRA: dict[int, tuple[str, ...]] = {
    # SQLite's implicit insertion order, which recent_conversations() sorts by.
    1: ("ALTER TABLE conversations ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY",),
}

# SQLSTATE class 23 -> the SQLite extended error name db.py looks for.
_CONSTRAINTS = {
    "23503": "SQLITE_CONSTRAINT_FOREIGNKEY",
    "23514": "SQLITE_CONSTRAINT_CHECK",
    "23502": "SQLITE_CONSTRAINT_NOTNULL",
}


def translate(statement: str) -> str:
    """A SQLite schema statement from :data:`gateway.store.sqlite.MIGRATIONS`, as PostgreSQL's."""
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


def migrations() -> tuple[tuple[str, ...], ...]:
    """The PostgreSQL migrations, one per entry of :data:`gateway.store.sqlite.MIGRATIONS`."""
    return tuple(
        tuple(translate(s) for s in statements) + EXTRA.get(number, ())
        for number, statements in enumerate(db.MIGRATIONS, start=1)
    )


class _Cursor:
    """The result of :meth:`PgConnection.execute`: rows and a row count."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall() if self._cursor.description else []


class PgConnection:
    """A psycopg connection in autocommit mode, shaped like ``sqlite3.Connection``.

    As with :func:`gateway.store.sqlite.open_db`, every statement commits on its own unless
    the caller issues ``BEGIN``/``COMMIT``.
    """

    def __init__(self, conn: Any, dsn: str) -> None:
        self.raw = conn
        self.dsn = dsn

    @property
    def in_transaction(self) -> bool:
        """True inside a BEGIN ... COMMIT."""
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        """Run one statement with ``?`` placeholders."""
        try:
            return _Cursor(self.raw.execute(_statement(sql), tuple(params) or None))
        except psycopg.errors.IntegrityError as e:
            raise _integrity(e) from e
        except psycopg.Error as e:
            raise _operational(e) from e

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(_statement(sql), rows)
        except psycopg.errors.IntegrityError as e:
            raise _integrity(e) from e
        except psycopg.Error as e:
            raise _operational(e) from e

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()


def _statement(sql: str) -> str:
    # db.py's SQL has no literal '?' or '%'; SQLite's "BEGIN IMMEDIATE" is plain
    # BEGIN here (PostgreSQL locks rows as it writes them).
    if sql.startswith("BEGIN IMMEDIATE"):
        return "BEGIN"
    return sql.replace("?", "%s")


def _integrity(e: Exception) -> sqlite3.IntegrityError:
    state = e.sqlite_errorname if isinstance(e, sqlite3.Error) else e.sqlstate
    name = _CONSTRAINTS.get(state, "SQLITE_CONSTRAINT")
    if state == "23505":
        # Primary keys are named <table>_pkey; other unique columns <table>_<col>_key.
        constraint = e.diag.constraint_name or ""
        name = "SQLITE_CONSTRAINT_" + ("PRIMARYKEY" if constraint.endswith("_pkey") else "UNIQUE")
    error = sqlite3.IntegrityError(str(e).strip())
    error.sqlite_errorname = name
    return error


def _operational(e: Exception) -> sqlite3.OperationalError:
    # Any other server error: what the admin CLI and the store already report.
    error = sqlite3.OperationalError(f"postgresql: {str(e).strip()}")
    error.sqlite_errorname = f"PG_{getattr(e, 'sqlstate', None) or 'ERROR'}"
    return error


def connect(dsn: str) -> PgConnection:
    """Connect to ``dsn`` and bring its schema up to date.

    Raises :class:`gateway.store.sqlite.StoreError` when psycopg is missing or the
    server cannot be used, :class:`gateway.store.sqlite.SchemaTooNew` for a newer schema.
    """
    if psycopg is None:
        raise db.StoreError(
            "the postgresql store needs psycopg: pip install 'imgateway[postgresql]'"
        )
    where = _describe(dsn)
    try:
        raw = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        raise db.StoreError(f"{where}: cannot connect: {str(e).strip()}") from None
    conn = PgConnection(raw, dsn)
    try:
        migrate(conn, where)
    except BaseException:
        conn.close()
        raise
    return conn


def _describe(dsn: str) -> str:
    # Never log a password that may be in the DSN.
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception:
        return "postgresql"
    return f"postgresql database {info.get('dbname', '')!r}".replace(" ''", "")


def schema_version(conn: PgConnection) -> int:
    """The schema version recorded in the database, 0 when there is none yet."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(conn: PgConnection, where: str = "postgresql") -> None:
    """Apply the migrations the database lacks, all under an advisory lock."""
    steps = migrations()
    try:
        conn.execute("SELECT pg_advisory_lock(?)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = schema_version(conn)
            db._check_version(current, where)
            for target, statements in enumerate(steps, start=1):
                if current >= target:
                    continue
                # Each migration in its own transaction: DDL is transactional here.
                conn.execute("BEGIN")
                try:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (_MIGRATION_LOCK,))
    except (psycopg.Error, sqlite3.Error) as e:
        raise db.StoreError(f"{where}: migration failed: {str(e).strip()}") from e
