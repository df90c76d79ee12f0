"""The PostgreSQL engine: the store on a server, through psycopg 3.

:class:`PostgresEngine` holds one psycopg connection in autocommit mode: every
operation commits on its own unless the caller brackets several with
:meth:`PostgresEngine.begin` and :meth:`PostgresEngine.commit` (the store's group
commit, the CLI). The schema is :data:`MIGRATIONS`, gateway.store.schema's tables
in PostgreSQL's types (``DOUBLE PRECISION`` timestamps, identity columns); the
versions applied are rows of a ``schema_version`` table, and migrating holds an
advisory lock so that two gateways, or a gateway and the CLI, never apply one
twice. The shared statements and operations are gateway.store.sql's, with
psycopg's ``%s``; psycopg's errors leave as gateway.store.errors
(``UniqueViolation`` as ``MessageExists``, ...).

Needs the ``postgresql`` extra (``pip install 'imgateway[postgresql]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
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

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # the "postgresql" extra is not installed
    psycopg = None
    pg_errors = None

CONNECT_TIMEOUT_S = 10
# Held while migrating. Any constant will do; this one is "imgw".
_MIGRATION_LOCK = 0x696D6777

# Migration N takes the schema from version N-1 to N (gateway.store.schema), in
# PostgreSQL's types (DOUBLE PRECISION timestamps, identity columns).
MIGRATIONS: tuple[tuple[str, ...], ...] = schema.migrations(
    real="DOUBLE PRECISION",
    serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    # Insertion order, which recent_conversations() sorts ties by (SQLite's rowid).
    extra={1: ("ALTER TABLE conversations ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY",)},
)

SCHEMA_VERSION = len(MIGRATIONS)


def describe_dsn(dsn: str) -> str:
    """The database a libpq connection string names, for logs (never its password)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception:
        return "postgresql"
    return f"postgresql database {info.get('dbname', '')!r}".replace(" ''", "")


def _error(e: Exception) -> DatabaseError:
    """A psycopg error as the store's own; the text says which database spoke."""
    text = f"postgresql: {str(e).strip()}"
    if isinstance(e, pg_errors.IntegrityError):
        return ConstraintError(text)
    return DatabaseError(text)


def _conflict(e: Exception) -> str | None:
    """The constraint behind a refused write (sql.DUPLICATE, sql.MISSING), or None."""
    if isinstance(e, pg_errors.UniqueViolation):
        return sql.DUPLICATE
    if isinstance(e, pg_errors.ForeignKeyViolation):
        return sql.MISSING
    return None


@implementer(IEngine)
class PostgresEngine(sql.SqlEngine):
    """The database a libpq connection string ``dsn`` names; one connection.

    :attr:`connection` is the psycopg connection once open (made again by
    :meth:`begin` after the server dropped it); most methods are
    gateway.store.sql.SqlEngine's.
    """

    placeholder = "%s"
    _sql = sql.Queries(placeholder)
    _teams = teams.TeamQueries(placeholder)
    # Nothing to catch without psycopg: open() refuses first.
    driver_error = psycopg.Error if psycopg is not None else ()

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connection: Any = None

    @classmethod
    def from_config(cls, config: Any) -> PostgresEngine:
        """The engine ``[store] backend = "postgresql"`` selects (``dsn`` or IMGATEWAY_DB_DSN)."""
        return cls(config.sections["store"].effective_dsn())

    def describe(self) -> str:
        """The database name (never the password a DSN may hold)."""
        return describe_dsn(self.dsn)

    def open(self) -> None:
        """Connect and bring the schema up to date.

        Raises :class:`StoreError` when psycopg is missing or the server cannot be
        used, :class:`SchemaTooNew` for a newer schema.
        """
        if psycopg is None:
            raise StoreError(
                "the postgresql store needs psycopg: pip install 'imgateway[postgresql]'"
            )
        where = self.describe()
        try:
            self.connection = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as e:
            raise StoreError(f"{where}: cannot connect: {str(e).strip()}") from None
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (nothing if it is not open)."""
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.close()

    def schema_version(self) -> int:
        """The highest version in ``schema_version``, 0 when there is no such table yet."""
        if not self._execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]:
            return 0
        return self._execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0

    def migrate(self) -> None:
        """Apply the migrations the database lacks, all under an advisory lock."""
        where = self.describe()
        conn = self.connection
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version"
                    " (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                current = self.schema_version()
                SchemaTooNew.check(current, SCHEMA_VERSION, where)
                for target, statements in enumerate(MIGRATIONS, start=1):
                    if current >= target:
                        continue
                    # Each migration in its own transaction: DDL is transactional here.
                    with conn.transaction():
                        for statement in statements:
                            conn.execute(statement)
                        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (target,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
        except (psycopg.Error, DatabaseError) as e:
            raise StoreError(f"{where}: migration failed: {str(e).strip()}") from e

    def _execute(self, statement: str, params: Sequence[Any] | None = None) -> Any:
        try:
            return self.connection.execute(statement, params)
        except psycopg.Error as e:
            raise _error(e) from e

    # Transactions: plain statements, so that one transaction spans whatever runs
    # between begin() and commit() (psycopg's transaction() blocks nest instead).

    def begin(self) -> None:
        """BEGIN (PostgreSQL locks rows as it writes them).

        A connection the server dropped (a restart, a failover) is made again first;
        while the server cannot be reached this raises DatabaseError, and the batch's
        operations fail (their messages are not acknowledged).
        """
        if self.connection is None or self.connection.closed or self.connection.broken:
            self._reconnect()
        try:
            self._execute("BEGIN")
        except DatabaseError:
            if not (self.connection.closed or self.connection.broken):
                raise
            # The server went away since the last batch (a restart): nothing of this
            # transaction was sent yet, so connect again and begin it there.
            self._reconnect()
            self._execute("BEGIN")

    def _reconnect(self) -> None:
        old, self.connection = self.connection, None
        if old is not None:
            try:
                old.close()
            except psycopg.Error:
                pass
        try:
            self.connection = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as e:
            raise DatabaseError(f"postgresql: cannot reconnect: {str(e).strip()}") from e

    def commit(self) -> None:
        """COMMIT; a refused commit (a deferred constraint) leaves no transaction open."""
        self._execute("COMMIT")

    def rollback(self) -> None:
        """ROLLBACK, if a transaction is open (or failed)."""
        if self.connection is None or self.connection.closed:
            return
        if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._execute("ROLLBACK")

    # The hooks of sql.SqlEngine.

    def _execute_many(self, statement: str, rows: list[tuple]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(statement, rows)

    _error = staticmethod(_error)
    _conflict = staticmethod(_conflict)
