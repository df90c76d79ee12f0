"""The group-commit writer: one database engine, one thread, one commit per batch.

:class:`GroupCommitStore` gives its engine (gateway.store.interfaces.IEngine) to one
writer thread. Every operation, reads included (so that a read sees every write
made before it), goes through one queue; the thread runs whatever has queued up
in one transaction with one commit (one fsync for the whole batch), and only then
fires the Deferreds, in order, in the reactor thread. Consecutive appends share
one ``insert_messages``; only when an operation fails is the batch rolled back and
run again with a savepoint per operation, so that the failing one fails alone.
The writer knows no database: SQLite, PostgreSQL or another engine behave alike.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.store.errors import StoreBusy, StoreClosed
from gateway.store.interfaces import IEngine, IStore
from gateway.store.records import ConversationRecord, StoredMessage, check_conversation_changes

__all__ = ["GroupCommitStore", "StoreStats"]


@attrs.define
class StoreStats:
    """Counters of the store's work, for metrics."""

    #: Transactions committed or attempted.
    batches: int = 0
    #: Operations run.
    items: int = 0
    #: Operations that failed (their Deferred errbacked).
    failed: int = 0


# One queued operation: function(*args, **kwargs), fired into the Deferred, or for
# append_then a plain callable told done(None) or done(failure).
_Job = tuple[Callable[..., Any], tuple, dict, Any]
# Queued by close(): the writer thread finishes the jobs before it, then exits.
_STOP: Any = object()
# Operations told of their commit per reactor turn (a slice: a fraction of a ms).
TOLD_PER_TURN = 64


@implementer(IStore)
class GroupCommitStore:
    """The durable store: ``engine``'s database, written by one thread with group commit.

    ``reactor`` needs ``callFromThread``; with ``callLater`` too, the writer is woken
    once per reactor turn rather than per operation. ``max_batch`` bounds how many
    operations share one transaction; ``max_pending`` how many may wait before
    :meth:`append` refuses a message with :class:`StoreBusy`.
    """

    _log = Logger()

    def __init__(
        self,
        engine: IEngine,
        reactor: IReactorFromThreads,
        *,
        max_batch: int = 512,
        max_pending: int = 50_000,
    ) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self.engine = engine
        self.stats = StoreStats()
        self._reactor = reactor
        self._max_batch = max_batch
        self._max_pending = max_pending
        # Bound once: the batch runner knows appends by identity.
        self._insert_message = engine.insert_message
        # The reactor thread appends, the writer thread pops (both atomic on a
        # deque); the event wakes the writer when it waits for work. Cheaper per
        # operation than queue.Queue, whose lock the two threads fought over.
        self._jobs: deque[_Job] = deque()
        self._work = threading.Event()
        self._wake_pending = False
        self._thread: threading.Thread | None = None
        self._closing: list[Deferred] | None = None
        # Committed operations not yet told, and whether a turn is to tell more.
        self._outcomes: deque[tuple[_Job, tuple[bool, Any]]] = deque()
        self._telling = False

    def describe(self) -> str:
        """Where the data is, for logs (never a password)."""
        return self.engine.describe()

    def start(self) -> None:
        """Open the database and start the writer thread.

        Blocks until the database is open, and raises what opening it raised
        (:class:`gateway.store.errors.StoreError`), so that the service fails to start.
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
        return self._submit(self.engine.insert_conversation, record)

    def update_conversation(self, conversation: str, **changes: Any) -> Deferred:
        """Change columns of a conversation; fires with None once committed.

        Fails with ValueError for a column that may not change, and with
        :class:`gateway.store.errors.UnknownConversation` for an unknown id.
        """
        try:
            check_conversation_changes(changes)
        except ValueError:
            return fail()
        return self._submit(self.engine.update_conversation, conversation, **changes)

    def append(self, message: StoredMessage) -> Deferred:
        """Append a message; fires with None once committed.

        Fails with :class:`gateway.store.errors.MessageExists` for a repeated id and
        :class:`gateway.store.errors.UnknownConversation` for an unknown conversation.
        """
        if len(self._jobs) >= self._max_pending:
            # The disk is behind (slow, locked, full): refuse rather than hold an
            # unbounded backlog in memory. Only messages: state changes still queue.
            return fail(StoreBusy(f"{self._max_pending} operations wait for the database"))
        return self._submit(self._insert_message, message)

    def append_then(self, message: StoredMessage, done: Callable[[Failure | None], Any]) -> None:
        """As :meth:`append`, with no Deferred: ``done(None)`` once committed, or
        ``done(failure)`` (at once when refused). The relay's path for every line."""
        if len(self._jobs) >= self._max_pending:
            done(Failure(StoreBusy(f"{self._max_pending} operations wait for the database")))
            return
        if self._thread is None or self._closing is not None:
            done(Failure(StoreClosed("the store is not running")))
            return
        self._push((self._insert_message, (message,), {}, done))

    def get_agent(self, name: str) -> Deferred:
        """Fires with the :class:`AgentRecord` named ``name``, or None."""
        return self._submit(self.engine.get_agent, name)

    def find_agent(self, address: str) -> Deferred:
        """Fires with the :class:`AgentRecord` known by an IM address, or None."""
        return self._submit(self.engine.find_agent, address)

    def scram_credentials(self, name: str) -> Deferred:
        """Fires with an agent's SCRAM keys (JSON, see gateway.passwords), or None."""
        return self._submit(self.engine.get_scram, name)

    def get_conversation(self, conversation: str) -> Deferred:
        """Fires with the :class:`ConversationRecord` of that id, or None."""
        return self._submit(self.engine.get_conversation, conversation)

    def transcript(self, conversation: str) -> Deferred:
        """Fires with the list of :class:`StoredMessage` of a conversation, in order."""
        return self._submit(self.engine.transcript, conversation)

    def recent_conversations(self, limit: int) -> Deferred:
        """Fires with the ``limit`` newest conversations, newest first."""
        return self._submit(self.engine.recent_conversations, limit)

    def set_resume(self, conversation: str, token_hash: str | None, key: str | None) -> Deferred:
        """Record how a conversation's customer may resume it; fires once committed."""
        return self._submit(self.engine.set_resume, conversation, token_hash, key)

    def open_conversations(self) -> Deferred:
        """Fires with (ConversationRecord, token hash, key) of every conversation not ended."""
        return self._submit(self.engine.open_conversations)

    def purge_ended_before(self, ts: float) -> Deferred:
        """Delete conversations ended before ``ts``; fires with the count once committed."""
        return self._submit(self.engine.purge_ended_before, ts)

    def teams(self) -> Deferred:
        """Fires with every :class:`TeamRecord`, by name."""
        return self._submit(self.engine.list_teams)

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        """Run ``function(engine, *args, **kwargs)`` in the writer thread.

        It runs inside the current batch's transaction, in queue order with the
        other operations; it must not commit or roll back itself. When another
        operation of the batch fails, the batch is rolled back and run again, so
        it must do nothing but database work. Fires with its result once committed.
        """
        return self._submit(function, self.engine, *args, **kwargs)

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
        self._outcomes.extend(zip(jobs, results, strict=True))
        if not self._telling:
            self._tell()

    def _tell(self, everything: bool = False) -> None:
        # A commit of hundreds of operations is told in slices, one per reactor turn,
        # so that reading and relaying go on between them; in order, always.
        self._telling = False
        outcomes = self._outcomes
        call_later = None if everything else getattr(self._reactor, "callLater", None)
        count = len(outcomes) if call_later is None else min(len(outcomes), TOLD_PER_TURN)
        for _ in range(count):
            (_, _, _, d), (ok, value) = outcomes.popleft()
            if not ok:
                self.stats.failed += 1
            if type(d) is not Deferred:
                try:
                    d(None if ok else value)
                except Exception:
                    # As a Deferred would: one failing completion does not stop the rest.
                    self._log.failure("completing a store operation failed")
            elif ok:
                d.callback(value)
            else:
                d.errback(value)
        if outcomes and call_later is not None:
            self._telling = True
            call_later(0, self._tell)

    def _commit_failed(self, count: int, error: Failure) -> None:
        self._log.failure(
            "store transaction of {count} operations failed", failure=error, count=count
        )

    def _stopped(self, error: Failure | None) -> None:
        self._tell(everything=True)  # every operation is told before the store closes
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
        engine = self.engine
        try:
            engine.open()
        except BaseException as e:
            opened.put(e)
            return
        opened.put(None)
        stop = False
        try:
            while not stop:
                jobs, stop = self._take()
                if jobs:
                    results = self._execute(jobs)
                    self._reactor.callFromThread(self._deliver, jobs, results)
        finally:
            try:
                engine.close()
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

    def _execute(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        engine = self.engine
        try:
            engine.begin()
            try:
                results = self._run_batch(jobs)
            except Exception:
                # An operation failed: undo the batch and run it again one by one,
                # so that the failing one fails alone and the rest still commit.
                engine.rollback()
                engine.begin()
                results = _run_each(engine, jobs)
            engine.commit()
        except Exception:
            # Nothing of this batch is on disk: every operation fails.
            error = Failure()
            try:
                engine.rollback()
            except Exception:
                pass
            self._reactor.callFromThread(self._commit_failed, len(jobs), error)
            return [(False, error)] * len(jobs)
        return results

    def _run_batch(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        """Run every operation, raising at the first failure; runs of appends in one go."""
        insert_message = self._insert_message
        results: list[tuple[bool, Any]] = []
        i, count = 0, len(jobs)
        while i < count:
            function, args, kwargs, _ = jobs[i]
            end = i + 1
            if function is insert_message:
                while end < count and jobs[end][0] is insert_message:
                    end += 1
            if end - i > 1:
                self.engine.insert_messages([job[1][0] for job in jobs[i:end]])
                results.extend([(True, None)] * (end - i))
            else:
                results.append((True, function(*args, **kwargs)))
            i = end
        return results


def _run_each(engine: IEngine, jobs: list[_Job]) -> list[tuple[bool, Any]]:
    """Run every operation in a savepoint of its own: a failing one is undone alone."""
    results: list[tuple[bool, Any]] = []
    for function, args, kwargs, _ in jobs:
        engine.savepoint()
        try:
            value = function(*args, **kwargs)
        except Exception:
            results.append((False, Failure()))
            engine.rollback_to_savepoint()
        else:
            results.append((True, value))
        engine.release_savepoint()
    return results
