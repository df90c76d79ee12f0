"""The admin service: what makes a running gateway operable.

The admin API and supervisor page, the metrics listener, transcript retention and the
JSON log, as one child service of the gateway's service tree.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import IO, Any

from twisted.application.service import MultiService
from twisted.logger import Logger

from gateway import logs
from gateway.admin import api as adminapi
from gateway.admin.interfaces import IAdministered
from gateway.admin.settings import AdminSettings, bound_to_loopback
from gateway.metrics import LiveStateCollector
from gateway.store.retention import RetentionService

JSON_LOG_FILE = "imgateway.log.jsonl"


def loopback_only(port: Any) -> None:
    """Refuse a bound admin or metrics port that takes connections from elsewhere
    (``admin.allow_remote = false``): it is closed at once and startup stops."""
    address = port.getHost()
    if bound_to_loopback(address):
        return
    port.stopListening()
    shown = f"{address.host}:{address.port}" if hasattr(address, "port") else str(address)
    raise ValueError(
        f"it is bound to {shown}, which is not loopback; bind a loopback address"
        " (interface=127.0.0.1) or set admin.allow_remote = true"
    )


class AdminService(MultiService):
    """The admin and metrics listeners, retention and the JSON log of one gateway."""

    _log = Logger(observer=logs.observer)

    def __init__(self, service: IAdministered, reactor: Any) -> None:
        super().__init__()
        self.setName("admin")
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
                service.gateway.agents,
                reactor,
                connections=self.connections,
                reactor=reactor,
            )
        )
        retention_days = getattr(config.sections.get("store"), "retention_days", 0)
        self.retention = RetentionService(service.store, retention_days, reactor)
        self.retention.setServiceParent(self)
        self._json_log: tuple[Any, IO[str]] | None = None
        # Decided from the address each listener bound, whatever its string says.
        check = None if self.settings.allow_remote else loopback_only
        # Both behind the firewall too: bans, rules (listener admin, metrics) and caps.
        if self.settings.listen:
            site = service.firewalled(
                adminapi.admin_site(service, self.token, reactor), "admin", "http"
            )
            for description in self.settings.listen:
                service.listen("admin", description, site, parent=self, check=check)
        if self.settings.metrics:
            site = service.firewalled(
                adminapi.metrics_site(service.metrics.registry), "metrics", "http"
            )
            for description in self.settings.metrics:
                service.listen("metrics", description, site, parent=self, check=check)

    def connections(self) -> dict[str, int]:
        """Open connections per listener kind, as the firewall counts them."""
        return {kind: f.connection_count() for kind, f in self._service.firewalls.items()}

    def prepare(self) -> None:
        """Write a generated token for the local CLI; open the JSON log if configured.

        Called by the gateway as soon as its store is open, before anything else
        starts, so that the JSON log has every line of the start; idempotent.
        """
        config = self._service.config
        if self._write_token and self.settings.listen:
            path = adminapi.write_token(config.data_dir, self.token)
            self._log.info("admin token written to {path}", path=str(path))
        if config.log_format == "json" and self._json_log is None:
            path = Path(config.log_file) if config.log_file else config.data_dir / JSON_LOG_FILE
            self._json_log = logs.open_json_log(path)
            self._log.info("JSON log lines go to {path}", path=str(path))
        self._write_token = False

    def startService(self) -> None:
        """Prepare (if the gateway has not), then start retention."""
        self.prepare()
        super().startService()

    def close_json_log(self) -> None:
        """Close the JSON log (the very last thing the gateway does when it stops)."""
        if self._json_log is not None:
            logs.close_json_log(*self._json_log)
            self._json_log = None
