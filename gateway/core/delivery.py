"""Delivery of events to parties: the seam a cluster routes across nodes."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from gateway import logs
from gateway.core.interfaces import IDelivery


@implementer(IDelivery)
class LocalDelivery:
    """Every party is in this process: an event goes straight to its adapter."""

    _log = Logger(observer=logs.observer)

    def deliver(self, session: Any, event: Any) -> None:
        """Render ``event`` to the session's party."""
        try:
            session.party.deliver(event)
        except Exception:
            # One broken adapter must not stop the core serving everyone else.
            self._log.failure("delivering {event!r} failed", event=event)
