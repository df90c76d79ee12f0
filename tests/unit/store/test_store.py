"""The group-commit writer (GroupCommitStore) over each database engine.

Tests taking ``store`` or ``make_store`` run twice: on the SQLite engine, and on the
PostgreSQL engine in the private cluster of ``conftest.pg_server`` (which fails, not
skips, without it). MemoryStore is in test_memory.py, the engines in test_engine.py.
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

from gateway.store import postgres
from gateway.store import sqlite as db
from gateway.store.errors import (
    ConstraintError,
    DatabaseError,
    MessageExists,
    SchemaTooNew,
    StoreBusy,
    StoreClosed,
    StoreError,
    UnknownConversation,
)
from gateway.store.interfaces import IEngine, IStore
from gateway.store.postgres import PostgresEngine
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage
from gateway.store.sqlite import SqliteEngine
from gateway.store.writer import GroupCommitStore

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


def _engine(backend: str, data_dir: Path) -> IEngine:
    if backend == "sqlite":
        return SqliteEngine(data_dir / db.DB_FILE)
    return PostgresEngine(backend)


def _sqlite_store(data_dir: Path, reactor: Any, **kwargs: Any) -> GroupCommitStore:
    return GroupCommitStore(SqliteEngine(data_dir / db.DB_FILE), reactor, **kwargs)


@pytest.fixture
def make_store(
    data_dir: Path, reactor: _ThreadReactor, backend: str
) -> Iterator[Callable[..., GroupCommitStore]]:
    stores: list[GroupCommitStore] = []

    def make(**kwargs: Any) -> GroupCommitStore:
        store = GroupCommitStore(_engine(backend, data_dir), reactor, **kwargs)
        store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        reactor.run_until(store.close())


@pytest.fixture
def store(make_store: Callable[..., GroupCommitStore]) -> GroupCommitStore:
    return make_store()


@pytest.fixture
def sqlite_store(data_dir: Path, reactor: _ThreadReactor) -> Iterator[GroupCommitStore]:
    """For what only SQLite can be made to do (a deferred foreign key, tracing)."""
    store = _sqlite_store(data_dir, reactor)
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


def _gate(store: GroupCommitStore) -> tuple[threading.Event, Deferred]:
    """Hold the writer thread inside an operation until the returned event is set.

    Operations queued meanwhile all wait, so they form the next batch.
    """
    entered, release = threading.Event(), threading.Event()

    def hold(engine: IEngine) -> None:
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


# GroupCommitStore.


def test_provides_istore(store: GroupCommitStore) -> None:
    assert verifyObject(IStore, store)
    assert verifyObject(IEngine, store.engine)


def test_operations_fire_in_order(store: GroupCommitStore, reactor: _ThreadReactor) -> None:
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


def test_waiting_operations_share_one_commit(
    store: GroupCommitStore, reactor: _ThreadReactor
) -> None:
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
    make_store: Callable[..., GroupCommitStore], reactor: _ThreadReactor
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
    store: GroupCommitStore, reactor: _ThreadReactor
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


def test_reads_see_earlier_writes(store: GroupCommitStore, reactor: _ThreadReactor) -> None:
    store.run(lambda engine: engine.add_agent(_agent()))
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


def test_a_failing_operation_fails_alone(store: GroupCommitStore, reactor: _ThreadReactor) -> None:
    release, _ = _gate(store)
    opened = store.open_conversation(_conversation())
    first = store.append(_message("m1"))
    again = store.append(_message("m1"))
    unknown = store.append(_message("m9", "c-9"))
    second = store.append(_message("m2"))
    release.set()
    assert _value(reactor, opened) is None
    assert _value(reactor, first) is None
    _failure(reactor, again).trap(MessageExists)
    _failure(reactor, unknown).trap(UnknownConversation)
    assert _value(reactor, second) is None
    assert (store.stats.batches, store.stats.failed) == (2, 2)
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == ["m1", "m2"]


def test_a_failing_operation_among_others_fails_alone(
    store: GroupCommitStore, reactor: _ThreadReactor
) -> None:
    release, _ = _gate(store)
    ds = [store.open_conversation(_conversation())]
    ds += [store.append(_message(f"m{i}")) for i in range(3)]
    unknown = store.update_conversation("c-9", state="ended")
    changed = store.update_conversation("c-1", state="chatting")
    ds += [store.append(_message(f"m{i}")) for i in range(3, 5)]
    release.set()
    _failure(reactor, unknown).trap(UnknownConversation)
    for d in [*ds, changed]:
        assert _value(reactor, d) is None
    assert (store.stats.batches, store.stats.items, store.stats.failed) == (2, 9, 1)
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == [f"m{i}" for i in range(5)]
    assert _value(reactor, store.get_conversation("c-1")).state == "chatting"


def _traced(store: GroupCommitStore, reactor: _ThreadReactor) -> list[str]:
    """The statements the writer thread runs from now on (SQLite's trace)."""
    statements: list[str] = []
    _value(reactor, store.run(lambda e: e.connection.set_trace_callback(statements.append)))
    statements.clear()
    return statements


def test_a_batch_that_succeeds_runs_without_savepoints(
    sqlite_store: GroupCommitStore, reactor: _ThreadReactor
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
    sqlite_store: GroupCommitStore, reactor: _ThreadReactor
) -> None:
    store = sqlite_store
    _value(reactor, store.open_conversation(_conversation()))
    statements = _traced(store, reactor)
    release, _ = _gate(store)
    good = store.append(_message("m1"))
    orphan = store.append(_message("m9", "c-9"))
    release.set()
    assert _value(reactor, good) is None
    _failure(reactor, orphan).trap(UnknownConversation)
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
    store = _sqlite_store(data_dir, reactor)
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
    store = _sqlite_store(data_dir, reactor, max_pending=3)
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
    sqlite_store: GroupCommitStore, reactor: _ThreadReactor
) -> None:
    store = sqlite_store
    _value(reactor, store.open_conversation(_conversation()))
    release, _ = _gate(store)
    # A deferred constraint is checked only at COMMIT, which then fails.
    deferring = store.run(lambda e: e.connection.execute("PRAGMA defer_foreign_keys = ON"))
    good = store.append(_message("m1"))
    orphan = store.append(_message("m9", "c-9"))
    release.set()
    for d in (deferring, good, orphan):
        _failure(reactor, d).trap(ConstraintError)
    # Nothing of the batch is on disk, and the store goes on working.
    assert _value(reactor, store.transcript("c-1")) == []
    assert _value(reactor, store.append(_message("m1"))) is None
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == ["m1"]


def test_a_failed_commit_fails_the_whole_batch_on_postgresql(
    pg_server: Any, reactor: _ThreadReactor
) -> None:
    import psycopg

    dsn = pg_server.new_database()
    store = GroupCommitStore(PostgresEngine(dsn), reactor)
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
            failure = _failure(reactor, d)
            failure.trap(DatabaseError)
            assert "postgresql: refused" in failure.getErrorMessage()
        assert _value(reactor, store.transcript("c-1")) == []
        assert _value(reactor, store.append(_message("m1"))) is None
        assert [m.id for m in _value(reactor, store.transcript("c-1"))] == ["m1"]
    finally:
        reactor.run_until(store.close())


def test_update_refuses_other_columns(store: GroupCommitStore, reactor: _ThreadReactor) -> None:
    _failure(reactor, store.update_conversation("c-1", started=0.0)).trap(ValueError)
    _failure(reactor, store.update_conversation("c-9", state="ended")).trap(UnknownConversation)


def test_close_commits_what_was_queued(
    data_dir: Path, reactor: _ThreadReactor, store: GroupCommitStore, backend: str
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


def test_after_close(store: GroupCommitStore, reactor: _ThreadReactor) -> None:
    first, second = store.close(), store.close()
    assert _value(reactor, first) is None
    assert _value(reactor, second) is None
    assert _value(reactor, store.close()) is None
    _failure(reactor, store.append(_message("m1"))).trap(StoreClosed)
    _failure(reactor, store.get_agent("anna")).trap(StoreClosed)


def test_not_started(data_dir: Path, reactor: _ThreadReactor) -> None:
    store = _sqlite_store(data_dir, reactor)
    _failure(reactor, store.get_agent("anna")).trap(StoreClosed)
    assert _value(reactor, store.close()) is None
    assert not (data_dir / db.DB_FILE).exists()


def test_start_twice(store: GroupCommitStore) -> None:
    with pytest.raises(RuntimeError):
        store.start()


def test_open_errors_raise_from_start(tmp_path: Path, reactor: _ThreadReactor) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = _sqlite_store(tmp_path / "file", reactor)
    with pytest.raises(StoreError, match="cannot create database"):
        store.start()
    assert not any(t.name == "imgateway-store" for t in threading.enumerate())


def test_newer_schema_refused_at_start(data_dir: Path, reactor: _ThreadReactor) -> None:
    engine = SqliteEngine(data_dir / db.DB_FILE)
    engine.open()
    engine.close()
    raw = sqlite3.connect(data_dir / db.DB_FILE)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaTooNew):
        _sqlite_store(data_dir, reactor).start()


def test_reopen_keeps_data(
    data_dir: Path, reactor: _ThreadReactor, make_store: Callable[..., GroupCommitStore]
) -> None:
    store = make_store()
    store.open_conversation(_conversation())
    _value(reactor, store.append(_message("m1")))
    _value(reactor, store.close())
    again = make_store()
    assert _value(reactor, again.transcript("c-1")) == [_message("m1")]


def test_max_batch_must_be_positive(data_dir: Path, reactor: _ThreadReactor) -> None:
    with pytest.raises(ValueError):
        _sqlite_store(data_dir, reactor, max_batch=0)
    with pytest.raises(ValueError):
        GroupCommitStore(PostgresEngine("dbname=x"), reactor, max_pending=0)


# On PostgreSQL only.


def test_postgresql_newer_schema_refused_at_start(pg_server: Any, reactor: _ThreadReactor) -> None:
    import psycopg

    dsn = pg_server.new_database()
    store = GroupCommitStore(PostgresEngine(dsn), reactor)
    store.start()
    reactor.run_until(store.close())
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute(
            "INSERT INTO schema_version (version) VALUES (%s)", (postgres.SCHEMA_VERSION + 1,)
        )
    with pytest.raises(SchemaTooNew):
        GroupCommitStore(PostgresEngine(dsn), reactor).start()
    assert not any(t.name == "imgateway-store" for t in threading.enumerate())


def test_postgresql_connect_errors_raise_from_start(
    pg_server: Any, reactor: _ThreadReactor
) -> None:
    dsn = pg_server.dsn("no_such_database")
    with pytest.raises(StoreError, match="cannot connect"):
        GroupCommitStore(PostgresEngine(dsn), reactor).start()


# Whatever the engine.


class _Recording:
    """An engine that records which of its methods the writer calls, in order."""

    def __init__(self, engine: IEngine) -> None:
        self._engine = engine
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._engine, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)

        return call


@pytest.fixture
def recording(
    data_dir: Path, reactor: _ThreadReactor, backend: str
) -> Iterator[tuple[GroupCommitStore, _Recording]]:
    engine = _Recording(_engine(backend, data_dir))
    store = GroupCommitStore(engine, reactor)
    store.start()
    yield store, engine
    reactor.run_until(store.close())


def test_a_batch_is_one_transaction_with_its_appends_in_one_call(
    recording: tuple[GroupCommitStore, _Recording], reactor: _ThreadReactor
) -> None:
    store, engine = recording
    release, _ = _gate(store)
    ds = [store.open_conversation(_conversation())]
    ds += [store.append(_message(f"m{i}")) for i in range(100)]
    ds.append(store.update_conversation("c-1", state="chatting"))
    ds += [store.append(_message(f"m{i}")) for i in range(100, 103)]
    engine.calls.clear()
    release.set()
    for d in ds:
        assert _value(reactor, d) is None
    assert engine.calls == [
        *("commit", "begin"),  # the gate's transaction ends, the batch's begins
        *("insert_conversation", "insert_messages", "update_conversation", "insert_messages"),
        "commit",
    ]
    assert [m.id for m in _value(reactor, store.transcript("c-1"))] == [f"m{i}" for i in range(103)]


def test_a_failing_batch_is_run_again_one_savepoint_per_operation(
    recording: tuple[GroupCommitStore, _Recording], reactor: _ThreadReactor
) -> None:
    store, engine = recording
    _value(reactor, store.open_conversation(_conversation()))
    release, _ = _gate(store)
    good = store.append(_message("m1"))
    orphan = store.append(_message("m9", "c-9"))
    engine.calls.clear()
    release.set()
    assert _value(reactor, good) is None
    _failure(reactor, orphan).trap(UnknownConversation)
    one = ("savepoint", "insert_message")
    assert engine.calls == [
        *("commit", "begin", "insert_messages", "rollback", "begin"),
        *one,
        "release_savepoint",
        *one,
        *("rollback_to_savepoint", "release_savepoint", "commit"),
    ]


def test_run_gets_the_engine(store: GroupCommitStore, reactor: _ThreadReactor) -> None:
    assert _value(reactor, store.run(lambda engine, n: (engine, n), 7)) == (store.engine, 7)


def test_purge_ended_before(store: GroupCommitStore, reactor: _ThreadReactor) -> None:
    store.open_conversation(_conversation("c-1"))
    store.open_conversation(_conversation("c-2"))
    store.append(_message("m1", "c-1"))
    store.update_conversation("c-1", state="ended", ended=100.0)
    store.update_conversation("c-2", state="ended", ended=300.0)
    assert _value(reactor, store.purge_ended_before(200.0)) == 1
    assert _value(reactor, store.get_conversation("c-1")) is None
    assert _value(reactor, store.transcript("c-1")) == []
    assert _value(reactor, store.get_conversation("c-2")).ended == 300.0


# append_then: the relay's path for every line, without a Deferred.


def _then(outcomes: list[Any], name: str) -> Callable[[Failure | None], None]:
    return lambda failure: outcomes.append((name, failure))


def test_append_then_tells_done_after_the_commit_in_order_with_the_other_operations(
    store: GroupCommitStore, reactor: _ThreadReactor, backend: str, data_dir: Path
) -> None:
    outcomes: list[Any] = []
    opened = store.open_conversation(_conversation())
    opened.addCallback(lambda _: outcomes.append(("opened", None)))
    release, gate = _gate(store)
    store.append_then(_message("m1"), _then(outcomes, "m1"))
    read = store.transcript("c-1")
    store.append_then(_message("m2"), _then(outcomes, "m2"))
    # Nothing is told before the writer has committed.
    assert outcomes == []
    release.set()
    transcript = _value(reactor, read)
    assert [m.id for m in transcript] == ["m1"]
    last = store.transcript("c-1")
    assert [m.id for m in _value(reactor, last)] == ["m1", "m2"]
    assert outcomes == [("opened", None), ("m1", None), ("m2", None)]
    assert _committed_ids(backend, data_dir) == [("m1",), ("m2",)]
    assert _value(reactor, gate) is None


def test_append_then_fails_alone_with_the_error_append_would_give(
    store: GroupCommitStore, reactor: _ThreadReactor
) -> None:
    outcomes: list[Any] = []
    _value(reactor, store.open_conversation(_conversation()))
    store.append_then(_message("m1"), _then(outcomes, "m1"))
    store.append_then(_message("m1"), _then(outcomes, "again"))
    store.append_then(_message("m9", "c-9"), _then(outcomes, "orphan"))
    store.append_then(_message("m2"), _then(outcomes, "m2"))
    _value(reactor, store.transcript("c-1"))
    assert [name for name, _ in outcomes] == ["m1", "again", "orphan", "m2"]
    assert outcomes[0][1] is None and outcomes[3][1] is None
    outcomes[1][1].trap(MessageExists)
    outcomes[2][1].trap(UnknownConversation)
    assert store.stats.failed == 2


def test_append_then_refuses_at_once_when_too_much_waits_or_the_store_is_closed(
    data_dir: Path,
) -> None:
    reactor = _TurnReactor()
    store = _sqlite_store(data_dir, reactor, max_pending=2)
    outcomes: list[Any] = []
    store.append_then(_message("m0"), _then(outcomes, "not started"))
    outcomes.pop()[1].trap(StoreClosed)
    store.start()
    try:
        store.open_conversation(_conversation())
        store.append_then(_message("m1"), _then(outcomes, "m1"))
        store.append_then(_message("m2"), _then(outcomes, "busy"))
        assert [name for name, _ in outcomes] == ["busy"]
        outcomes.pop()[1].trap(StoreBusy)
        _, wake, args = reactor.later.pop()
        wake(*args)
        _value(reactor, store.transcript("c-1"))
        assert outcomes == [("m1", None)]
    finally:
        reactor.run_until(store.close())
    store.append_then(_message("m3"), _then(outcomes, "closed"))
    outcomes.pop()[1].trap(StoreClosed)


def test_a_done_that_raises_does_not_stop_the_others(
    store: GroupCommitStore, reactor: _ThreadReactor
) -> None:
    outcomes: list[Any] = []
    _value(reactor, store.open_conversation(_conversation()))

    def broken(failure: Failure | None) -> None:
        raise RuntimeError("an adapter's bug")

    store.append_then(_message("m1"), broken)
    store.append_then(_message("m2"), _then(outcomes, "m2"))
    _value(reactor, store.transcript("c-1"))
    assert outcomes == [("m2", None)]


def test_a_large_commit_is_told_in_slices_one_per_turn_in_order(data_dir: Path) -> None:
    from gateway.store.writer import TOLD_PER_TURN

    reactor = _TurnReactor()
    store = _sqlite_store(data_dir, reactor)
    store.start()
    try:
        told: list[str] = []
        store.open_conversation(_conversation())
        count = TOLD_PER_TURN + 10
        for i in range(count):
            store.append_then(_message(f"m{i}"), lambda f, i=i: told.append(f"m{i}"))
        _, wake, args = reactor.later.pop()
        wake(*args)
        # The writer commits them in one batch; the reactor thread runs its answer.
        f, args, kwargs = reactor.calls.get(timeout=_WAIT)
        f(*args, **kwargs)
        # The opening and the first slice of appends are told in this turn...
        assert told == [f"m{i}" for i in range(TOLD_PER_TURN - 1)]
        # ...the rest in the next one.
        _, tell, args = reactor.later.pop()
        tell(*args)
        assert told == [f"m{i}" for i in range(count)]
        assert reactor.later == []
    finally:
        reactor.run_until(store.close())


def test_closing_tells_every_operation_not_yet_told(data_dir: Path) -> None:
    from gateway.store.writer import TOLD_PER_TURN

    reactor = _TurnReactor()
    store = _sqlite_store(data_dir, reactor)
    store.start()
    told: list[str] = []
    store.open_conversation(_conversation())
    for i in range(TOLD_PER_TURN * 2):
        store.append_then(_message(f"m{i}"), lambda f, i=i: told.append(f"m{i}"))
    reactor.later.pop()[1]()
    f, args, kwargs = reactor.calls.get(timeout=_WAIT)
    f(*args, **kwargs)
    assert len(told) == TOLD_PER_TURN - 1
    closed = store.close()
    assert _value(reactor, closed) is None
    assert told == [f"m{i}" for i in range(TOLD_PER_TURN * 2)]
