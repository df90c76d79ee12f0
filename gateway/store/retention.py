"""Transcript retention: ended conversations older than ``[store] retention_days`` go.

``retention_days`` is parsed with the rest of ``[store]`` (gateway.store.settings).

A :class:`RetentionService` purges once at startup and then once a day, through the
store (``IStore.purge_ended_before``), so the purge is ordered with every other write.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway import logs
from gateway.store.interfaces import IStore

DAY_S = 86400.0


class RetentionService(Service):
    """Deletes old ended conversations and their messages, daily."""

    _log = Logger(observer=logs.observer)

    def __init__(
        self, store: IStore, retention_days: int, clock: IReactorTime, interval_s: float = DAY_S
    ) -> None:
        self._store = store
        self.retention_days = retention_days
        self._clock = clock
        self._loop = LoopingCall(self.purge)
        self._loop.clock = clock
        self._interval_s = interval_s

    def startService(self) -> None:
        """Purge now, then every interval (nothing when retention is 0)."""
        super().startService()
        if self.retention_days:
            self._loop.start(self._interval_s, now=True).addErrback(
                lambda f: self._log.failure("retention loop stopped", f)
            )

    def stopService(self) -> None:
        """Stop the daily purge."""
        if self._loop.running:
            self._loop.stop()
        return super().stopService()

    def purge(self) -> Deferred:
        """Delete what ended before now minus retention_days; fires with the count."""
        cutoff = self._clock.seconds() - self.retention_days * DAY_S
        d = self._store.purge_ended_before(cutoff)

        def done(count: int) -> int:
            self._log.info(
                "retention: deleted {count} conversations ended over {days} days ago",
                count=count,
                days=self.retention_days,
            )
            return count

        def failed(failure) -> None:
            # One failed purge must not stop the next day's.
            self._log.failure("retention purge failed", failure)

        return d.addCallbacks(done, failed)
