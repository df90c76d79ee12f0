"""What makes a running gateway operable: admin API, metrics, JSON logs, retention, deadline.

:class:`Operations` is built by the GatewayService and called at its three moments
(bind, start, stop), so the service itself only gains a few lines.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway import logs
from gateway.admin import api as adminapi
from gateway.admin.settings import AdminSettings
from gateway.metrics import LiveStateCollector
from gateway.store.retention import RetentionService

if TYPE_CHECKING:
    from gateway.app.service import GatewayService

JSON_LOG_FILE = "imgateway.log.jsonl"


class Operations:
    """The admin and metrics listeners, the JSON log, retention and the shutdown deadline."""

    _log = Logger(observer=logs.observer)

    def __init__(self, service: GatewayService, reactor: Any) -> None:
        self._service = service
        self._reactor = reactor
        config = service.config
        self.settings: AdminSettings = config.sections.get("admin") or AdminSettings()
        # The configured token, or one made now and written at start for the CLI.
        self.token = self.settings.token or secrets.token_urlsafe(32)
        self._write_token = not self.settings.token
        service.metrics.watch(
            LiveStateCollector(
                service.gateway,
                service.directory,
                reactor,
                connections=self.connections,
                reactor=reactor,
            )
        )
        retention_days = getattr(config.sections.get("store"), "retention_days", 0)
        self.retention = RetentionService(service.store, retention_days, reactor)
        self.retention.setServiceParent(service)
        self._json_log: tuple[Any, IO[str]] | None = None

    def connections(self) -> dict[str, int]:
        """Open connections per listener kind, as the firewall counts them."""
        return {kind: f.connection_count() for kind, f in self._service.firewalls.items()}

    def bind(self, listen: Callable[[str, str, Any], None]) -> None:
        """Bind the admin and metrics listeners with the service's ``_listen``."""
        if self.settings.listen:
            site = adminapi.admin_site(self._service, self.token, self._reactor)
            for description in self.settings.listen:
                listen("admin", description, site)
        if self.settings.metrics:
            site = adminapi.metrics_site(self._service.metrics.registry)
            for description in self.settings.metrics:
                listen("metrics", description, site)

    def start(self) -> None:
        """Write a generated token for the local CLI; open the JSON log if configured."""
        config = self._service.config
        if self._write_token and self.settings.listen:
            path = adminapi.write_token(config.data_dir, self.token)
            self._log.info("admin token written to {path}", path=str(path))
        if config.log_format == "json" and self._json_log is None:
            path = Path(config.log_file) if config.log_file else config.data_dir / JSON_LOG_FILE
            self._json_log = logs.open_json_log(path)
            self._log.info("JSON log lines go to {path}", path=str(path))

    def stop(self) -> None:
        """Close the JSON log."""
        if self._json_log is not None:
            logs.close_json_log(*self._json_log)
            self._json_log = None

    def within_deadline(self, stopping: Deferred) -> Deferred:
        """Fire when ``stopping`` does, or after gateway.shutdown_deadline_s at the latest."""
        return within_deadline(stopping, self._service.config.shutdown_deadline_s, self._reactor)


_log = Logger(observer=logs.observer, namespace="gateway.admin.service")


def within_deadline(stopping: Deferred, deadline_s: float, clock: Any) -> Deferred:
    """A Deferred that fires when ``stopping`` does, or ``deadline_s`` later at the latest.

    Past the deadline the process goes on exiting: a hung peer, a slow upstream or a
    blocked write must not keep the gateway (and its port) from a restart.
    """
    done: Deferred = Deferred()

    def late() -> None:
        if not done.called:
            _log.warn(
                "shutdown took over {deadline}s: exiting without waiting further",
                deadline=deadline_s,
            )
            done.callback(None)

    timer = clock.callLater(deadline_s, late)

    def finished(result: Any) -> None:
        if isinstance(result, Failure):
            _log.failure("stopping the gateway failed", result)
        if timer.active():
            timer.cancel()
        if not done.called:
            done.callback(None)

    stopping.addBoth(finished)
    return done
