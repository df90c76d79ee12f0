"""Holiday calendars: dated closures kept in the database, beside the weekly hours.

A queue's hours are ``queues.NAME.hours`` and ``queues.NAME.holidays`` from the site
file; closures added with the admin API or ``imgateway-admin holiday add`` (for one
queue, or ``*`` for every queue) join them. Every node reads them again every
``[desk] reload_s``, and at once after a change through its own API.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway import logs
from gateway.core.errors import BadRequest
from gateway.desk.context import DeskContext
from gateway.desk.records import StoredClosure
from gateway.hours import Closure, HoursError

EVERY_QUEUE = "*"
MAX_NAME = 100


def check(queue: str, spec: str, queues: Any) -> str | None:
    """Why this closure cannot be kept, or None."""
    if queue != EVERY_QUEUE and queue not in queues:
        return f"no such queue: {queue[:64]} (or * for every queue)"
    try:
        Closure.parse(spec)
    except HoursError as e:
        return str(e)
    return None


class Calendar:
    """The stored closures, applied to the live queues' hours."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext) -> None:
        self._ctx = ctx
        queues = ctx.core.queues
        # The hours the site file gives, which stored closures are added to.
        self._base = {name: queue.config.hours for name, queue in queues.items()}
        self.stored: list[StoredClosure] = []
        self._loop: LoopingCall | None = None

    def start(self) -> Deferred:
        """Read the closures now and every reload_s."""
        self._loop = LoopingCall(self.reload)
        self._loop.clock = self._ctx.core.clock
        self._loop.start(self._ctx.settings.reload_s, now=False)
        return self.reload()

    def stop(self) -> None:
        """Stop reading them."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def reload(self) -> Deferred:
        """Read the stored closures and apply them."""
        d = self._ctx.store.closures().addCallback(self.apply)
        d.addErrback(lambda f: self._log.failure("reading the holiday calendar failed", f))
        return d

    def apply(self, stored: list[StoredClosure]) -> int:
        """Every queue's hours become its own plus the stored closures that name it."""
        self.stored = list(stored)
        for name, queue in self._ctx.core.queues.items():
            extra = []
            for closure in stored:
                if closure.queue in (name, EVERY_QUEUE):
                    try:
                        extra.append(Closure.parse(closure.spec))
                    except HoursError:
                        self._log.warn(
                            "stored closure {id} does not parse: {spec!r}",
                            id=closure.id,
                            spec=closure.spec,
                        )
            hours = self._base[name].with_closures(extra)
            if queue.config.hours != hours:
                queue.config = attrs.evolve(queue.config, hours=hours)
        return len(stored)

    def add(self, queue: str, spec: str, name: str = "") -> Deferred:
        """Keep a closure, and apply it at once."""
        return maybeDeferred(self._add, queue, spec, name)

    def _add(self, queue: str, spec: str, name: str) -> Deferred:
        if not isinstance(queue, str) or not isinstance(spec, str) or not isinstance(name, str):
            raise BadRequest("queue, spec and name must be strings")
        problem = check(queue, spec.strip(), self._ctx.core.queues)
        if problem is None and len(name) > MAX_NAME:
            problem = f"the name is at most {MAX_NAME} characters"
        if problem:
            raise BadRequest(problem)
        d = self._ctx.store.closure_add(queue, spec.strip(), name.strip(), self._ctx.now())
        return d.addCallback(lambda closure: self.reload().addCallback(lambda _: closure))

    def remove(self, closure: int) -> Deferred:
        """Forget a stored closure; fires with whether there was one."""
        d = self._ctx.store.closure_remove(closure)
        return d.addCallback(lambda found: self.reload().addCallback(lambda _: found))

    def view(self, now: float) -> dict:
        """Every queue's closures and whether it is open now."""
        return {
            "queues": [
                {
                    "name": name,
                    "open": queue.config.hours.is_open(now),
                    "zone": queue.config.hours.zone,
                }
                for name, queue in sorted(self._ctx.core.queues.items())
            ],
            "closures": [c.to_json() for c in self.stored],
        }
