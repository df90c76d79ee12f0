"""Transcript stores: SQLite with group commit, and an in-memory one.

:class:`SqliteStore` gives the database to one writer thread. Every operation,
reads included (so that a read sees every write made before it), goes through
one queue; the thread runs whatever has queued up in one transaction with one
commit (one fsync for the whole batch), and only then fires the Deferreds, in
order, in the reactor thread. Consecutive appends share one ``executemany``; only
when an operation fails is the batch rolled back and run again with a savepoint
per operation, so that the failing one fails alone.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.core.interfaces import IStore
from gateway.store import postgres as pgdb
from gateway.store import sqlite as db
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage
from gateway.store.sqlite import (
    ConversationExists,
    MessageExists,
    StoreBusy,
    StoreError,
    UnknownConversation,
)

__all__ = [
    "MemoryStore",
    "PostgresStore",
    "SqliteStore",
    "StoreBusy",
    "StoreClosed",
    "StoreStats",
    "open_store",
]


class StoreClosed(StoreError):
    """The store is not running: not started yet, or closed."""


@attrs.define
class StoreStats:
    """Counters of the store's work, for metrics."""

    #: Transactions committed or attempted.
    batches: int = 0
    #: Operations run.
    items: int = 0
    #: Operations that failed (their Deferred errbacked).
    failed: int = 0


# One queued operation: function(conn, *args, **kwargs), fired into the Deferred.
_Job = tuple[Callable[..., Any], tuple, dict, Deferred]
# Queued by close(): the writer thread finishes the jobs before it, then exits.
_STOP: Any = object()


@implementer(IStore)
class SqliteStore:
    """The durable store: a SQLite database in ``path`` (the data directory).

    ``reactor`` needs ``callFromThread``; with ``callLater`` too, the writer is woken
    once per reactor turn rather than per operation. ``max_batch`` bounds how many
    operations share one transaction.
    """

    _log = Logger()

    def __init__(
        self,
        path: Path,
        reactor: IReactorFromThreads,
        *,
        max_batch: int = 512,
        max_pending: int = 50_000,
    ) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self.path = Path(path)
        self.stats = StoreStats()
        self._reactor = reactor
        self._max_batch = max_batch
        self._max_pending = max_pending
        # The reactor thread appends, the writer thread pops (both atomic on a
        # deque); the event wakes the writer when it waits for work. Cheaper per
        # operation than queue.Queue, whose lock the two threads fought over.
        self._jobs: deque[_Job] = deque()
        self._work = threading.Event()
        self._wake_pending = False
        self._thread: threading.Thread | None = None
        self._closing: list[Deferred] | None = None

    @property
    def database(self) -> Path:
        """The database file."""
        return self.path / db.DB_FILE

    def describe(self) -> str:
        """Where the data is, for logs (never a password)."""
        return str(self.database)

    def _open(self) -> Any:
        """Open the database in the writer thread; a connection shaped like sqlite3's."""
        return db.open_db(self.database)

    def start(self) -> None:
        """Open the database and start the writer thread.

        Blocks until the database is open, and raises what opening it raised
        (:class:`gateway.store.sqlite.StoreError`), so that the service fails to start.
        """
        if self._thread is not None or self._closing is not None:
            raise RuntimeError("the store was already started or closed")
        opened: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
        thread = threading.Thread(
            target=self._run, args=(opened,), name="imgateway-store", daemon=True
        )
        thread.start()
        error = opened.get()
        if error is not None:
            thread.join()
            raise error
        self._thread = thread
        self._log.info("store opened {database}", database=self.describe())

    # IStore.

    def open_conversation(self, record: ConversationRecord) -> Deferred:
        """Record a new conversation; fires with None once committed."""
        return self._submit(db.insert_conversation, record)

    def update_conversation(self, conversation: str, **changes: Any) -> Deferred:
        """Change columns of a conversation; fires with None once committed.

        Fails with ValueError for a column that may not change, and with
        :class:`gateway.store.sqlite.UnknownConversation` for an unknown id.
        """
        try:
            db.check_conversation_changes(changes)
        except ValueError:
            return fail()
        return self._submit(db.update_conversation, conversation, **changes)

    def append(self, message: StoredMessage) -> Deferred:
        """Append a message; fires with None once committed.

        Fails with :class:`gateway.store.sqlite.MessageExists` for a repeated id and
        :class:`gateway.store.sqlite.UnknownConversation` for an unknown conversation.
        """
        if len(self._jobs) >= self._max_pending:
            # The disk is behind (slow, locked, full): refuse rather than hold an
            # unbounded backlog in memory. Only messages: state changes still queue.
            return fail(StoreBusy(f"{self._max_pending} operations wait for the database"))
        return self._submit(db.insert_message, message)

    def get_agent(self, name: str) -> Deferred:
        """Fires with the :class:`AgentRecord` named ``name``, or None."""
        return self._submit(db.get_agent, name)

    def find_agent(self, address: str) -> Deferred:
        """Fires with the :class:`AgentRecord` known by an IM address, or None."""
        return self._submit(db.find_agent, address)

    def scram_credentials(self, name: str) -> Deferred:
        """Fires with an agent's SCRAM keys (JSON, see gateway.passwords), or None."""
        return self._submit(db.get_scram, name)

    def get_conversation(self, conversation: str) -> Deferred:
        """Fires with the :class:`ConversationRecord` of that id, or None."""
        return self._submit(db.get_conversation, conversation)

    def transcript(self, conversation: str) -> Deferred:
        """Fires with the list of :class:`StoredMessage` of a conversation, in order."""
        return self._submit(db.transcript, conversation)

    def recent_conversations(self, limit: int) -> Deferred:
        """Fires with the ``limit`` newest conversations, newest first."""
        return self._submit(db.recent_conversations, limit)

    def set_resume(self, conversation: str, token_hash: str | None, key: str | None) -> Deferred:
        """Record how a conversation's customer may resume it; fires once committed."""
        return self._submit(db.set_resume, conversation, token_hash, key)

    def open_conversations(self) -> Deferred:
        """Fires with (ConversationRecord, token hash, key) of every conversation not ended."""
        return self._submit(db.open_conversations)

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        """Run ``function(connection, *args, **kwargs)`` in the writer thread.

        It runs inside the current batch's transaction, in queue order with the
        other operations; it must not commit or roll back itself. When another
        operation of the batch fails, the batch is rolled back and run again, so
        it must do nothing but database work. Fires with its result once committed.
        """
        return self._submit(function, *args, **kwargs)

    def close(self) -> Deferred:
        """Commit everything queued so far, close the database, stop the thread.

        Fires with None once the thread has exited; later operations fail with
        :class:`StoreClosed`.
        """
        if self._closing is None:
            self._closing = []
            if self._thread is None:
                # Never started: nothing to finish.
                return succeed(None)
            self._push((_STOP, (), {}, Deferred()), now=True)
        elif self._thread is None:
            return succeed(None)
        done: Deferred = Deferred()
        self._closing.append(done)
        return done

    # The reactor thread's side.

    def _submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        if self._thread is None or self._closing is not None:
            return fail(StoreClosed("the store is not running"))
        d: Deferred = Deferred()
        self._push((function, args, kwargs, d))
        return d

    def _push(self, job: _Job, *, now: bool = False) -> None:
        self._jobs.append(job)
        # Set only if clear: the writer clears it before it looks for work last.
        if self._work.is_set():
            return
        call_later = getattr(self._reactor, "callLater", None)
        if now or call_later is None:
            self._work.set()
            return
        if self._wake_pending:
            return
        # Woken once per reactor turn, not per operation: what one read brings in
        # goes in one batch, and the two threads hand the GIL over less often.
        self._wake_pending = True
        call_later(0, self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        if not self._work.is_set():
            self._work.set()

    def _deliver(self, jobs: list[_Job], results: list[tuple[bool, Any]]) -> None:
        self.stats.batches += 1
        self.stats.items += len(jobs)
        for (_, _, _, d), (ok, value) in zip(jobs, results, strict=True):
            if ok:
                d.callback(value)
            else:
                self.stats.failed += 1
                d.errback(value)

    def _commit_failed(self, count: int, error: Failure) -> None:
        self._log.failure(
            "store transaction of {count} operations failed", failure=error, count=count
        )

    def _stopped(self, error: Failure | None) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if error is None:
            self._log.info("store closed {database}", database=self.describe())
        else:
            self._log.failure("store closed with an error", failure=error)
        waiters, self._closing = self._closing or [], []
        for d in waiters:
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

    # The writer thread's side.

    def _run(self, opened: queue.Queue[BaseException | None]) -> None:
        try:
            conn = self._open()
        except BaseException as e:
            opened.put(e)
            return
        opened.put(None)
        stop = False
        try:
            while not stop:
                jobs, stop = self._take()
                if jobs:
                    results = self._execute(conn, jobs)
                    self._reactor.callFromThread(self._deliver, jobs, results)
        finally:
            try:
                conn.close()
                closed = None
            except Exception:
                closed = Failure()
            # The last thing the thread does: the reactor joins it next.
            self._reactor.callFromThread(self._stopped, closed)

    def _take(self) -> tuple[list[_Job], bool]:
        # Wait for one job, then take whatever else is already waiting; the
        # second value says the store is closing after these jobs.
        while not self._jobs:
            self._work.clear()
            # Looked at again after clearing: a job pushed before the clear has
            # been seen here, one pushed after it sets the event.
            if not self._jobs:
                self._work.wait()
        jobs: list[_Job] = []
        while self._jobs and len(jobs) < self._max_batch:
            job = self._jobs.popleft()
            if job[0] is _STOP:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _execute(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                results = _run_batch(conn, jobs)
            except Exception:
                # An operation failed: undo the batch and run it again one by one,
                # so that the failing one fails alone and the rest still commit.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                results = _run_each(conn, jobs)
            conn.execute("COMMIT")
        except Exception:
            # Nothing of this batch is on disk: every operation fails.
            error = Failure()
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except Exception:
                    pass
            self._reactor.callFromThread(self._commit_failed, len(jobs), error)
            return [(False, error)] * len(jobs)
        return results


def _run_batch(conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
    """Run every operation, raising at the first failure; runs of appends in one statement."""
    results: list[tuple[bool, Any]] = []
    i, count = 0, len(jobs)
    while i < count:
        function, args, kwargs, _ = jobs[i]
        end = i + 1
        if function is db.insert_message:
            while end < count and jobs[end][0] is db.insert_message:
                end += 1
        if end - i > 1:
            db.insert_messages(conn, [job[1][0] for job in jobs[i:end]])
            results.extend([(True, None)] * (end - i))
        else:
            results.append((True, function(conn, *args, **kwargs)))
        i = end
    return results


def _run_each(conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
    """Run every operation in a savepoint of its own: a failing one is undone alone."""
    results: list[tuple[bool, Any]] = []
    for function, args, kwargs, _ in jobs:
        conn.execute("SAVEPOINT operation")
        try:
            value = function(conn, *args, **kwargs)
        except Exception:
            results.append((False, Failure()))
            conn.execute("ROLLBACK TO operation")
        else:
            results.append((True, value))
        conn.execute("RELEASE operation")
    return results


@implementer(IStore)
class PostgresStore(SqliteStore):
    """The durable store on a PostgreSQL server: the same writer thread and group commit.

    ``dsn`` is a libpq connection string; one connection, held by the writer thread.
    """

    def __init__(
        self,
        dsn: str,
        reactor: IReactorFromThreads,
        *,
        max_batch: int = 512,
        max_pending: int = 50_000,
    ) -> None:
        super().__init__(Path(), reactor, max_batch=max_batch, max_pending=max_pending)
        self.dsn = dsn

    def describe(self) -> str:
        """The database name, for logs (never the password a DSN may hold)."""
        return pgdb._describe(self.dsn)

    def _open(self) -> Any:
        return pgdb.connect(self.dsn)


def open_store(config: Any, reactor: IReactorFromThreads) -> SqliteStore:
    """The store ``[store]`` configures (see :mod:`gateway.store.settings`), not started."""
    settings = config.sections.get("store")
    if settings is None:
        return SqliteStore(config.data_dir, reactor)
    tuning = {"max_batch": settings.max_batch, "max_pending": settings.max_pending}
    if settings.backend == "postgresql":
        return PostgresStore(settings.effective_dsn(), reactor, **tuning)
    return SqliteStore(config.data_dir, reactor, **tuning)


@implementer(IStore)
class MemoryStore:
    """An in-process store: nothing survives the process.

    For core unit tests and ephemeral runs. Every Deferred it returns has
    already fired; it fails the same ways :class:`SqliteStore` does.
    """

    def __init__(self, agents: Iterable[AgentRecord] = ()) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.scram: dict[str, str] = {}  # agent name -> SCRAM keys (JSON)
        self.conversations: dict[str, ConversationRecord] = {}
        self.messages: dict[str, list[StoredMessage]] = {}
        # conversation id -> (resume token hash, customer key)
        self.resumes: dict[str, tuple[str | None, str | None]] = {}
        self._message_ids: set[str] = set()
        self._closed = False
        for agent in agents:
            self.add_agent(agent)

    def add_agent(self, agent: AgentRecord) -> None:
        """Provision an agent; raises :class:`gateway.store.sqlite.AgentExists` if taken."""
        if agent.name in self.agents:
            raise db.AgentExists(agent.name)
        self.agents[agent.name] = agent

    def open_conversation(self, record: ConversationRecord) -> Deferred:
        """Record a new conversation."""
        return self._do(self._open_conversation, record)

    def update_conversation(self, conversation: str, **changes: Any) -> Deferred:
        """Change columns of a conversation."""
        return self._do(self._update_conversation, conversation, changes)

    def append(self, message: StoredMessage) -> Deferred:
        """Append a message to its conversation."""
        return self._do(self._append, message)

    def get_agent(self, name: str) -> Deferred:
        """Fires with the :class:`AgentRecord` named ``name``, or None."""
        return self._do(self.agents.get, name)

    def scram_credentials(self, name: str) -> Deferred:
        """Fires with an agent's SCRAM keys (JSON), or None."""
        return self._do(self.scram.get, name)

    def find_agent(self, address: str) -> Deferred:
        """Fires with the :class:`AgentRecord` known by an IM address, or None."""

        def find(address: str) -> AgentRecord | None:
            for agent in self.agents.values():
                if address in agent.addresses:
                    return agent
            return None

        return self._do(find, address)

    def get_conversation(self, conversation: str) -> Deferred:
        """Fires with the :class:`ConversationRecord` of that id, or None."""
        return self._do(self.conversations.get, conversation)

    def transcript(self, conversation: str) -> Deferred:
        """Fires with the list of :class:`StoredMessage` of a conversation, in order."""
        return self._do(lambda c: list(self.messages.get(c, ())), conversation)

    def recent_conversations(self, limit: int) -> Deferred:
        """Fires with the ``limit`` newest conversations, newest first."""

        def recent(limit: int) -> list[ConversationRecord]:
            # Reversed insertion order first, so that equal start times put the
            # later-opened conversation first, as SqliteStore does.
            records = list(reversed(self.conversations.values()))
            records.sort(key=lambda r: r.started, reverse=True)
            return records[: max(limit, 0)]

        return self._do(recent, limit)

    def set_resume(self, conversation: str, token_hash: str | None, key: str | None) -> Deferred:
        """Record how a conversation's customer may resume it."""

        def record(conversation: str) -> None:
            if conversation not in self.conversations:
                raise UnknownConversation(conversation)
            self.resumes[conversation] = (token_hash, key)

        return self._do(record, conversation)

    def open_conversations(self) -> Deferred:
        """Fires with (ConversationRecord, token hash, key) of every conversation not ended."""

        def still_open() -> list[tuple[ConversationRecord, str | None, str | None]]:
            records = [r for r in self.conversations.values() if r.state != "ended"]
            records.sort(key=lambda r: (r.started, r.id))
            return [(r, *self.resumes.get(r.id, (None, None))) for r in records]

        return self._do(still_open)

    def close(self) -> Deferred:
        """Refuse further operations."""
        self._closed = True
        return succeed(None)

    def _do(self, function: Callable[..., Any], *args: Any) -> Deferred:
        if self._closed:
            return fail(StoreClosed("the store is not running"))
        try:
            return succeed(function(*args))
        except Exception:
            return fail()

    def _open_conversation(self, record: ConversationRecord) -> None:
        if record.id in self.conversations:
            raise ConversationExists(record.id)
        self.conversations[record.id] = record
        self.messages[record.id] = []

    def _update_conversation(self, conversation: str, changes: dict[str, Any]) -> None:
        db.check_conversation_changes(changes)
        record = self.conversations.get(conversation)
        if record is None:
            raise UnknownConversation(conversation)
        if "identity" in changes:
            changes = {**changes, "identity": dict(changes["identity"])}
        self.conversations[conversation] = attrs.evolve(record, **changes)

    def _append(self, message: StoredMessage) -> None:
        if message.id in self._message_ids:
            raise MessageExists(message.id)
        if message.conversation not in self.conversations:
            raise UnknownConversation(message.conversation)
        self._message_ids.add(message.id)
        self.messages[message.conversation].append(message)
