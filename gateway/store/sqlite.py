"""The SQLite engine: the store in one database file, through the ``sqlite3`` driver.

:class:`SqliteEngine` opens the file in write-ahead-log mode with a busy timeout, so
that a gateway and ``imgateway-admin`` share it, and in autocommit mode
(``isolation_level=None``): every operation is one statement or atomic on its own
unless the caller brackets several with :meth:`SqliteEngine.begin` and
:meth:`SqliteEngine.commit` (the store's group commit, the CLI). The schema is
:data:`MIGRATIONS` (gateway.store.schema's tables in SQLite's types), its version
``PRAGMA user_version``. The shared statements and operations are
gateway.store.sql's; ``sqlite3`` errors leave as gateway.store.errors.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zope.interface import implementer

from gateway.store import schema, sql, teams
from gateway.store.errors import (
    ConstraintError,
    DatabaseError,
    SchemaTooNew,
    StoreError,
)
from gateway.store.interfaces import IEngine

DB_FILE = "imgateway.sqlite3"
BUSY_TIMEOUT_MS = 5000

# Migration N takes the schema from user_version N-1 to N (gateway.store.schema).
MIGRATIONS: tuple[tuple[str, ...], ...] = schema.migrations(
    real="REAL", serial="INTEGER PRIMARY KEY AUTOINCREMENT"
)

SCHEMA_VERSION = len(MIGRATIONS)

# The constraints whose refusals the store names (sql.SqlEngine's writes).
_CONFLICTS = {
    "SQLITE_CONSTRAINT_PRIMARYKEY": sql.DUPLICATE,
    "SQLITE_CONSTRAINT_UNIQUE": sql.DUPLICATE,
    "SQLITE_CONSTRAINT_FOREIGNKEY": sql.MISSING,
}


def _error(e: Exception) -> DatabaseError:
    """A ``sqlite3`` error as the store's own."""
    if isinstance(e, sqlite3.IntegrityError):
        return ConstraintError(str(e))
    return DatabaseError(str(e))


def _conflict(e: Exception) -> str | None:
    """The constraint behind a refused write (sql.DUPLICATE, sql.MISSING), or None."""
    if not isinstance(e, sqlite3.IntegrityError):
        return None
    return _CONFLICTS.get(e.sqlite_errorname)


@implementer(IEngine)
class SqliteEngine(sql.SqlEngine):
    """The database file ``path`` (created with its directory, private to the service).

    :attr:`connection` is the ``sqlite3`` connection once open, for what only
    SQLite does (tracing statements, pragmas); everything else goes through
    the methods, most of them gateway.store.sql.SqlEngine's.
    """

    placeholder = "?"
    _sql = sql.Queries(placeholder)
    _teams = teams.TeamQueries(placeholder)
    driver_error = sqlite3.Error

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.connection: sqlite3.Connection | None = None

    @classmethod
    def from_config(cls, config: Any) -> SqliteEngine:
        """The engine ``[store] backend = "sqlite"`` selects: a file in ``gateway.data_dir``."""
        return cls(Path(config.data_dir) / DB_FILE)

    def describe(self) -> str:
        """The database file."""
        return str(self.path)

    def open(self) -> None:
        """Open (creating if needed) the database file and bring its schema up to date.

        Raises :class:`SchemaTooNew` for a database written by a newer imgateway and
        :class:`StoreError` when the file cannot be opened or used.
        """
        path = self.path
        try:
            # Transcripts and password hashes: readable by the service account only.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                # SQLite gives the -wal and -shm files the database file's mode.
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as e:
            raise StoreError(f"{path}: cannot create database: {e.strerror or e}") from None
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"{path}: cannot open database: {e}") from None
        self.connection = conn
        try:
            self._configure()
            self.migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (nothing if it is not open)."""
        conn, self.connection = self.connection, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as e:
                raise _error(e) from e

    def _configure(self) -> None:
        conn = self.connection
        try:
            # First, so that every later statement waits for a CLI or gateway
            # holding the lock instead of failing at once.
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._switch_to_wal()
            # An acknowledged message must survive power loss; group commit
            # amortises the fsync this costs.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot use database: {e}") from None
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.path}: cannot use write-ahead logging (journal mode is {mode})"
            )

    def _switch_to_wal(self) -> str:
        # Entering WAL needs an exclusive lock, and SQLite reports a conflict there at
        # once instead of waiting: two CLI commands on a new database would otherwise fail.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return self.connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def schema_version(self) -> int:
        """The schema version recorded in the database (``PRAGMA user_version``)."""
        return self._execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        """Apply the migrations the database lacks, each in its own transaction."""
        conn, where = self.connection, self.path
        SchemaTooNew.check(self.schema_version(), SCHEMA_VERSION, str(where))
        for target, statements in enumerate(MIGRATIONS, start=1):
            if self.schema_version() >= target:
                continue
            try:
                # IMMEDIATE takes the write lock first, so a gateway and a CLI
                # starting together cannot both apply the same migration.
                conn.execute("BEGIN IMMEDIATE")
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                SchemaTooNew.check(current, SCHEMA_VERSION, str(where))
                if current < target:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"{where}: migration to schema {target} failed: {e}") from e
                raise

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.connection.execute(statement, params)
        except sqlite3.Error as e:
            raise _error(e) from e

    # Transactions.

    def begin(self) -> None:
        """BEGIN IMMEDIATE: the write lock now, not at the first write (no upgrade deadlock)."""
        self._execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """COMMIT; a refused commit (a deferred constraint) is rolled back."""
        try:
            self.connection.execute("COMMIT")
        except sqlite3.Error as e:
            self.rollback()
            raise _error(e) from e

    def rollback(self) -> None:
        """ROLLBACK, if a transaction is open (SQLite ends some on an error by itself)."""
        if self.connection.in_transaction:
            self._execute("ROLLBACK")

    # The hooks of sql.SqlEngine.

    def _execute_many(self, statement: str, rows: list[tuple]) -> None:
        self.connection.executemany(statement, rows)

    _error = staticmethod(_error)
    _conflict = staticmethod(_conflict)
