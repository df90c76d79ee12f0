"""The stores: the writer thread and group commit, and MemoryStore.

Tests taking ``store`` or ``make_store`` run twice: on SQLite, and on PostgreSQL in
the private cluster of ``conftest.pg_server`` (which fails, not skips, without it).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from gateway.core.interfaces import IStore
from gateway.store import sqlite as db
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage
from gateway.store.writer import MemoryStore, PostgresStore, SqliteStore, StoreBusy, StoreClosed

_WAIT = 5.0


class _ThreadReactor:
    """Just enough reactor: calls from the writer thread wait on a queue
    until the test runs them, as the reactor thread would."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Callable[..., Any], tuple, dict]] = queue.Queue()

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.put((f, args, kwargs))

    def run_until(self, d: Deferred) -> Any:
        """Run calls from the thread until ``d`` fires; its result (a Failure if it failed)."""
        outcome: list[Any] = []
        d.addBoth(outcome.append)
        while not outcome:
            f, args, kwargs = self.calls.get(timeout=_WAIT)
            f(*args, **kwargs)
        return outcome[0]


def _conversation(id_: str = "c-1", started: float = 1764400000.0) -> ConversationRecord:
    return ConversationRecord(
        id=id_,
        customer_alias="c-7f3a",
        protocol="jsonim",
        client_name="Gajim",
        client_version="1.8.4",
        started=started,
    )


def _message(id_: str, conversation: str = "c-1") -> StoredMessage:
    return StoredMessage(
        id=id_, conversation=conversation, sender="customer", text=f"text {id_}", ts=1.0
    )


def _agent(name: str = "anna") -> AgentRecord:
    return AgentRecord(name=name, display_name="Anna", password_hash="scrypt$x", capacity=2)


@pytest.fixture
def reactor() -> _ThreadReactor:
    return _ThreadReactor()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database the store runs on; for postgresql, a fresh database's DSN too."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_server").new_database()
    return "sqlite"


@pytest.fixture
def make_store(
    data_dir: Path, reactor: _ThreadReactor, backend: str
) -> Iterator[Callable[..., SqliteStore]]:
    stores: list[SqliteStore] = []

    def make(**kwargs: Any) -> SqliteStore:
        if backend == "sqlite":
            store = SqliteStore(data_dir, reactor, **kwargs)
        else:
            store = PostgresStore(backend, reactor, **kwargs)
        store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        reactor.run_until(store.close())


@pytest.fixture
def store(make_store: Callable[..., SqliteStore]) -> SqliteStore:
    return make_store()


@pytest.fixture
def sqlite_store(data_dir: Path, reactor: _ThreadReactor) -> Iterator[SqliteStore]:
    """For what only SQLite can be made to do (a deferred foreign key)."""
    store = SqliteStore(data_dir, reactor)
    store.start()
    yield store
    reactor.run_until(store.close())


def _committed_ids(backend: str, data_dir: Path) -> list[tuple[str]]:
    """Message ids on disk, read through a connection of another client."""
    if backend == "sqlite":
        raw = sqlite3.connect(data_dir / db.DB_FILE)
        rows = raw.execute("SELECT id FROM messages ORDER BY seq").fetchall()
        raw.close()
        return rows
    import psycopg

    with psycopg.connect(backend) as raw:
        return raw.execute("SELECT id FROM messages ORDER BY seq").fetchall()


def _gate(store: SqliteStore) -> tuple[threading.Event, Deferred]:
    """Hold the writer thread inside an operation until the returned event is set.

    Operations queued meanwhile all wait, so they form the next batch.
    """
    entered, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        assert release.wait(_WAIT)

    d = store.run(hold)
    assert entered.wait(_WAIT)
    return release, d


def _value(reactor: _ThreadReactor, d: Deferred) -> Any:
    result = reactor.run_until(d)
    if isinstance(result, Failure):
        result.raiseException()
    return result


def _failure(reactor: _ThreadReactor, d: Deferred) -> Failure:
    result = reactor.run_until(d)
    assert isinstance(result, Failure), result
    return result


# SqliteStore.


def test_provides_istore(store: SqliteStore) -> None:
    assert verifyObject(IStore, store)


def test_operations_fire_in_order(store: SqliteStore, reactor: _ThreadReactor) -> None:
    fired: list[str] = []
    store.open_conversation(_conversation()).addCallback(lambda _: fired.append("open"))
    ds = []
    for i in range(50):
        d = store.append(_message(f"m{i}"))
        d.addCallback(lambda _, i=i: fired.append(f"m{i}"))
        ds.append(d)
    _value(reactor, ds[-1])
    assert fired == ["open"] + [f"m{i}" for i in range(50)]
    messages = _value(reactor, store.transcript("c-1"))
    assert [m.id for m in messages] == [f"m{i}" for i in range(50)]


def test_waiting_operations_share_one_commit(store: SqliteStore, reactor: _ThreadReactor) -> None:
    release, held = _gate(store)
    ds = [store.open_conversation(_conversation())]
    ds += [store.append(_message(f"m{i}")) for i in range(100)]
    release.set()
    for d in ds:
        assert _value(reactor, d) is None
    _value(reactor, held)
    # The held operation alone, then everything that queued behind it.
    assert (store.stats.batches, store.stats.items, store.stats.failed) == (2, 102, 0)


def test_max_batch_bounds_a_transaction(
    make_store: Callable[..., SqliteStore], reactor: _ThreadReactor
) -> None:
    store = make_store(max_batch=10)
    release, _ = _gate(store)
    ds = [store.open_conversation(_conversation())]
    ds += [store.append(_message(f"m{i}")) for i in range(29)]
    release.set()
    for d in ds:
        _value(reactor, d)
    assert (store.stats.batches, store.stats.items) == (1 + 3, 31)


def test_many_appends_in_one_batch_keep_their_order(
    store: SqliteStore, reactor: _ThreadReactor
) -> None:
    release, _ = _gate(store)
    ds = [store.open_conversation(_conversation())]
    ds += [store.append(_message(f"m{i}")) for i in range(150)]
    release.set()
    for d in ds:
        assert _value(reactor, d) is None
    assert (store.stats.batches, store.stats.items, store.stats.failed) == (2, 152, 0)
    messages = _value(reactor, store.transcript("c-1"))
    assert [m.id for m in messages] == [f"m{i}" for i in range(150)]


def test_reads_see_earlier_writes(store: SqliteStore, reactor: _ThreadReactor) -> None:
    store.run(db.add_agent, _agent())
    store.open_conversation(_conversation())
    store.append(_message("m1"))
    store.update_conversation("c-1", state="chatting", agent="anna")
    agent = store.get_agent("anna")
    messages = store.transcript("c-1")
    conversation = store.get_conversation("c-1")
    recent = store.recent_conversations(5)
    assert _value(reactor, agent) == _agent()
    assert _value(reactor, messages) == [_message("m1")]
    assert _value(reactor, conversation).state == "chatting"
    assert [r.id for r in _value(reactor, recent)] == ["c-1"]
    assert _value(reactor, store.get_agent("nobody")) is None


def test_a_failing_operation_fails_alone(store: SqliteStore, reactor: _ThreadReactor) -> None:
    release, _ = _gate(store)
    opened = store.open_conversation(_conversation())
    first = store.append(_message("m1"))
    again = store.append(_message("m1"))
    unknown = store.append(_message("m9", "c-9"))
    second = store.append(_message("m2"))
    release.set()
    assert _value(reactor, opened) is None
    assert _value(reactor, first) is None
    _failure(reactor, again).trap(db.MessageExists)
    _failure(reactor, unknown).trap(db.UnknownConversation)
    assert _value(reactor, second) is None
    assert (store.stats.batches, store.stats.failed) == (2, 2)
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == ["m1", "m2"]


def test_a_failing_operation_among_others_fails_alone(
    store: SqliteStore, reactor: _ThreadReactor
) -> None:
    release, _ = _gate(store)
    ds = [store.open_conversation(_conversation())]
    ds += [store.append(_message(f"m{i}")) for i in range(3)]
    unknown = store.update_conversation("c-9", state="ended")
    changed = store.update_conversation("c-1", state="chatting")
    ds += [store.append(_message(f"m{i}")) for i in range(3, 5)]
    release.set()
    _failure(reactor, unknown).trap(db.UnknownConversation)
    for d in [*ds, changed]:
        assert _value(reactor, d) is None
    assert (store.stats.batches, store.stats.items, store.stats.failed) == (2, 9, 1)
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == [f"m{i}" for i in range(5)]
    assert _value(reactor, store.get_conversation("c-1")).state == "chatting"


def _traced(store: SqliteStore, reactor: _ThreadReactor) -> list[str]:
    """The statements the writer thread runs from now on (SQLite's trace)."""
    statements: list[str] = []
    _value(reactor, store.run(lambda conn: conn.set_trace_callback(statements.append)))
    statements.clear()
    return statements


def test_a_batch_that_succeeds_runs_without_savepoints(
    sqlite_store: SqliteStore, reactor: _ThreadReactor
) -> None:
    store = sqlite_store
    statements = _traced(store, reactor)
    release, _ = _gate(store)
    ds = [store.open_conversation(_conversation())]
    ds += [store.append(_message(f"m{i}")) for i in range(3)]
    ds.append(store.update_conversation("c-1", state="chatting"))
    release.set()
    for d in ds:
        assert _value(reactor, d) is None
    kinds = [s.split()[0] for s in statements]
    assert kinds == [
        *("BEGIN", "COMMIT"),  # the gate
        *("BEGIN", "INSERT", "INSERT", "UPDATE", "COMMIT"),
    ]
    # The three appends in one statement.
    assert statements[4].count("'customer'") == 3


def test_a_batch_with_a_failure_is_run_again_with_a_savepoint_per_operation(
    sqlite_store: SqliteStore, reactor: _ThreadReactor
) -> None:
    store = sqlite_store
    _value(reactor, store.open_conversation(_conversation()))
    statements = _traced(store, reactor)
    release, _ = _gate(store)
    good = store.append(_message("m1"))
    orphan = store.append(_message("m9", "c-9"))
    release.set()
    assert _value(reactor, good) is None
    _failure(reactor, orphan).trap(db.UnknownConversation)
    kinds = [s.split()[0] for s in statements]
    assert kinds == [
        *("BEGIN", "COMMIT"),  # the gate
        *("BEGIN", "INSERT", "ROLLBACK"),  # both appends in one statement
        *("BEGIN", "SAVEPOINT", "INSERT", "RELEASE"),
        *("SAVEPOINT", "INSERT", "ROLLBACK", "RELEASE", "COMMIT"),
    ]
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == ["m1"]


class _TurnReactor(_ThreadReactor):
    """A reactor whose turns the test ends by hand: callLater is only recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.later: list[tuple[float, Callable[..., Any], tuple]] = []

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> None:
        self.later.append((delay, f, args))


def test_the_writer_is_woken_once_per_reactor_turn(data_dir: Path) -> None:
    reactor = _TurnReactor()
    store = SqliteStore(data_dir, reactor)
    store.start()
    try:
        ds = [store.open_conversation(_conversation())]
        ds += [store.append(_message(f"m{i}")) for i in range(3)]
        ((delay, wake, args),) = reactor.later
        assert delay == 0
        reactor.later.clear()
        # The turn ends: the writer takes all four in one batch.
        wake(*args)
        for d in ds:
            assert _value(reactor, d) is None
        assert (store.stats.batches, store.stats.items) == (1, 4)
        assert reactor.later == []
    finally:
        reactor.run_until(store.close())


def test_messages_are_refused_while_too_many_operations_wait(data_dir: Path) -> None:
    reactor = _TurnReactor()
    store = SqliteStore(data_dir, reactor, max_pending=3)
    store.start()
    try:
        # The writer is not woken before the turn ends: the jobs wait in memory.
        ds = [store.open_conversation(_conversation())]
        ds += [store.append(_message(f"m{i}")) for i in range(2)]
        refused = store.append(_message("m2"))
        assert refused.called
        _failure(reactor, refused).trap(StoreBusy)
        # State changes still queue past the bound; messages wait for room.
        ds.append(store.update_conversation("c-1", queue="tech"))
        _, wake, args = reactor.later.pop()
        wake(*args)
        for d in ds:
            assert _value(reactor, d) is None

        def settle(d: Deferred) -> Any:
            _, wake, args = reactor.later.pop()
            wake(*args)
            return _value(reactor, d)

        assert settle(store.append(_message("m2"))) is None
        assert [m.id for m in settle(store.transcript("c-1"))] == ["m0", "m1", "m2"]
    finally:
        reactor.run_until(store.close())


def test_a_failed_commit_fails_the_whole_batch(
    sqlite_store: SqliteStore, reactor: _ThreadReactor
) -> None:
    store = sqlite_store
    _value(reactor, store.open_conversation(_conversation()))
    release, _ = _gate(store)
    # A deferred constraint is checked only at COMMIT, which then fails.
    deferring = store.run(lambda conn: conn.execute("PRAGMA defer_foreign_keys = ON"))
    good = store.append(_message("m1"))
    orphan = store.append(_message("m9", "c-9"))
    release.set()
    for d in (deferring, good, orphan):
        _failure(reactor, d).trap(sqlite3.IntegrityError)
    # Nothing of the batch is on disk, and the store goes on working.
    assert _value(reactor, store.transcript("c-1")) == []
    assert _value(reactor, store.append(_message("m1"))) is None
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == ["m1"]


def test_a_failed_commit_fails_the_whole_batch_on_postgresql(
    pg_server: Any, reactor: _ThreadReactor
) -> None:
    import psycopg

    dsn = pg_server.new_database()
    store = PostgresStore(dsn, reactor)
    store.start()
    try:
        _value(reactor, store.open_conversation(_conversation()))
        with psycopg.connect(dsn, autocommit=True) as raw:
            # A deferred trigger runs only at COMMIT, which then fails.
            raw.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF NEW.id = 'm9' THEN RAISE EXCEPTION 'refused'; END IF;"
                " RETURN NEW; END $$"
            )
            raw.execute(
                "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON messages"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        release, _ = _gate(store)
        good = store.append(_message("m1"))
        refused = store.append(_message("m9"))
        release.set()
        for d in (good, refused):
            _failure(reactor, d).trap(sqlite3.OperationalError)
        assert _value(reactor, store.transcript("c-1")) == []
        assert _value(reactor, store.append(_message("m1"))) is None
        assert [m.id for m in _value(reactor, store.transcript("c-1"))] == ["m1"]
    finally:
        reactor.run_until(store.close())


def test_update_refuses_other_columns(store: SqliteStore, reactor: _ThreadReactor) -> None:
    _failure(reactor, store.update_conversation("c-1", started=0.0)).trap(ValueError)
    _failure(reactor, store.update_conversation("c-9", state="ended")).trap(db.UnknownConversation)


def test_close_commits_what_was_queued(
    data_dir: Path, reactor: _ThreadReactor, store: SqliteStore, backend: str
) -> None:
    fired: list[str] = []
    store.open_conversation(_conversation()).addCallback(lambda _: fired.append("open"))
    for i in range(20):
        store.append(_message(f"m{i}")).addCallback(lambda _, i=i: fired.append(f"m{i}"))
    closed = store.close()
    closed.addCallback(lambda _: fired.append("closed"))
    assert _value(reactor, closed) is None
    assert fired == ["open", *(f"m{i}" for i in range(20)), "closed"]
    assert not any(t.name == "imgateway-store" for t in threading.enumerate())
    # On disk, as another process would see it.
    assert _committed_ids(backend, data_dir) == [(f"m{i}",) for i in range(20)]


def test_after_close(store: SqliteStore, reactor: _ThreadReactor) -> None:
    first, second = store.close(), store.close()
    assert _value(reactor, first) is None
    assert _value(reactor, second) is None
    assert _value(reactor, store.close()) is None
    _failure(reactor, store.append(_message("m1"))).trap(StoreClosed)
    _failure(reactor, store.get_agent("anna")).trap(StoreClosed)


def test_not_started(data_dir: Path, reactor: _ThreadReactor) -> None:
    store = SqliteStore(data_dir, reactor)
    _failure(reactor, store.get_agent("anna")).trap(StoreClosed)
    assert _value(reactor, store.close()) is None
    assert not (data_dir / db.DB_FILE).exists()


def test_start_twice(store: SqliteStore) -> None:
    with pytest.raises(RuntimeError):
        store.start()


def test_open_errors_raise_from_start(tmp_path: Path, reactor: _ThreadReactor) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = SqliteStore(tmp_path / "file", reactor)
    with pytest.raises(db.StoreError, match="cannot create database"):
        store.start()
    assert not any(t.name == "imgateway-store" for t in threading.enumerate())


def test_newer_schema_refused_at_start(data_dir: Path, reactor: _ThreadReactor) -> None:
    db.open_db(data_dir / db.DB_FILE).close()
    raw = sqlite3.connect(data_dir / db.DB_FILE)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(db.SchemaTooNew):
        SqliteStore(data_dir, reactor).start()


def test_reopen_keeps_data(
    data_dir: Path, reactor: _ThreadReactor, make_store: Callable[..., SqliteStore]
) -> None:
    store = make_store()
    store.open_conversation(_conversation())
    _value(reactor, store.append(_message("m1")))
    _value(reactor, store.close())
    again = make_store()
    assert _value(reactor, again.transcript("c-1")) == [_message("m1")]


def test_max_batch_must_be_positive(data_dir: Path, reactor: _ThreadReactor) -> None:
    with pytest.raises(ValueError):
        SqliteStore(data_dir, reactor, max_batch=0)
    with pytest.raises(ValueError):
        PostgresStore("dbname=x", reactor, max_batch=0)


# PostgresStore only.


def test_postgresql_newer_schema_refused_at_start(pg_server: Any, reactor: _ThreadReactor) -> None:
    import psycopg

    dsn = pg_server.new_database()
    store = PostgresStore(dsn, reactor)
    store.start()
    reactor.run_until(store.close())
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute("INSERT INTO schema_version (version) VALUES (%s)", (db.SCHEMA_VERSION + 1,))
    with pytest.raises(db.SchemaTooNew):
        PostgresStore(dsn, reactor).start()
    assert not any(t.name == "imgateway-store" for t in threading.enumerate())


def test_postgresql_connect_errors_raise_from_start(
    pg_server: Any, reactor: _ThreadReactor
) -> None:
    dsn = pg_server.dsn("no_such_database")
    with pytest.raises(db.StoreError, match="cannot connect"):
        PostgresStore(dsn, reactor).start()


def test_postgresql_schema_matches_sqlite(pg_server: Any, reactor: _ThreadReactor) -> None:
    import psycopg

    from gateway.store import postgres as pgdb

    dsn = pg_server.new_database()
    conn = pgdb.connect(dsn)
    # A second connect (another gateway, the CLI) finds nothing left to do.
    pgdb.connect(dsn).close()
    assert pgdb.schema_version(conn) == db.SCHEMA_VERSION
    conn.close()
    with psycopg.connect(dsn) as raw:
        tables = {
            name
            for (name,) in raw.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert {"agents", "conversations", "messages", "agent_scram", "schema_version"} <= tables


# MemoryStore.


def _fired(d: Deferred) -> Any:
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    assert outcome, "the Deferred has not fired"
    return outcome[0]


def test_memory_provides_istore() -> None:
    assert verifyObject(IStore, MemoryStore())


def test_memory_store() -> None:
    store = MemoryStore(agents=[_agent()])
    assert _fired(store.get_agent("anna")) == _agent()
    assert _fired(store.get_agent("bob")) is None
    assert _fired(store.open_conversation(_conversation("c-1", 100.0))) is None
    assert _fired(store.open_conversation(_conversation("c-2", 200.0))) is None
    assert _fired(store.open_conversation(_conversation("c-3", 100.0))) is None
    _fired(store.open_conversation(_conversation("c-1"))).trap(db.ConversationExists)
    assert _fired(store.append(_message("m1"))) is None
    assert _fired(store.append(_message("m2"))) is None
    _fired(store.append(_message("m1"))).trap(db.MessageExists)
    _fired(store.append(_message("m3", "c-9"))).trap(db.UnknownConversation)
    assert [m.id for m in _fired(store.transcript("c-1"))] == ["m1", "m2"]
    assert _fired(store.transcript("c-9")) == []
    assert [r.id for r in _fired(store.recent_conversations(10))] == ["c-2", "c-3", "c-1"]
    assert [r.id for r in _fired(store.recent_conversations(1))] == ["c-2"]


def test_memory_update_conversation() -> None:
    store = MemoryStore()
    store.open_conversation(_conversation())
    assert _fired(store.update_conversation("c-1", state="ended", identity={"a": "b"})) is None
    record = _fired(store.get_conversation("c-1"))
    assert (record.state, record.identity) == ("ended", {"a": "b"})
    _fired(store.update_conversation("c-1", started=0.0)).trap(ValueError)
    _fired(store.update_conversation("c-9", state="ended")).trap(db.UnknownConversation)


def test_memory_add_existing_agent() -> None:
    store = MemoryStore(agents=[_agent()])
    with pytest.raises(db.AgentExists):
        store.add_agent(_agent())


def test_memory_close() -> None:
    store = MemoryStore()
    assert _fired(store.close()) is None
    _fired(store.append(_message("m1"))).trap(StoreClosed)
