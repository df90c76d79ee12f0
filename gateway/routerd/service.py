"""The routing server's twistd service: rules loaded, API served, SIGHUP reloads."""

from __future__ import annotations

import signal
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.application.service import MultiService
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

import gateway
from firewall.common import no_delay
from gateway import logs
from gateway.config import ConfigError
from gateway.daemon import Listener, StartupError, release, where
from gateway.plugins import adapters
from gateway.routerd.api import RouterApi, request_factory
from gateway.routerd.config import RouterConfig
from gateway.routerd.ingest import FeedIngest
from gateway.routerd.live import LiveApi
from gateway.routerd.rulebook import RuleBook
from gateway.routerd.state import LiveState
from gateway.routerd.stats import RouterCollector
from gateway.routing.features import grantable_features

# Seconds a connection may sit idle before the server closes it.
IDLE_TIMEOUT_S = 60


class _Channel(HTTPChannel):
    """HTTP/1.1 with Nagle off: a decision's reply is not held for the last ACK."""

    def connectionMade(self) -> None:
        super().connectionMade()
        no_delay(self.transport)


class RouterService(MultiService):
    """Runs one routing server: loads every media type's rules, serves the API.

    ``handle_signals`` installs the SIGHUP handler (reload) while running; unit tests
    pass False.
    """

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        config: RouterConfig,
        reactor: Any,
        *,
        book: RuleBook | None = None,
        handle_signals: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self._reactor = reactor
        self._handle_signals = handle_signals
        self._previous_hup: Any = None
        self._hup_installed = False
        if book is None:
            book = RuleBook(
                media=config.media,
                queues=config.queues,
                grantable=grantable_features(adapters()),
            )
        self.book = book
        try:
            self.book.load()
        except ConfigError as e:
            raise StartupError(str(e), "imrouter") from None
        # The live state its gateways' feeds build, journaled under data_dir.
        self.ingest = FeedIngest(
            LiveState(service_level_s=config.service_level_s),
            config.data_dir,
            fsync=config.fsync,
            compact_after=config.compact_after,
        )
        live = LiveApi(
            ingest=lambda: self.ingest, book=self.book, clock=reactor, texts=config.feed_texts
        )
        self.api = RouterApi(
            self.book, token=config.token, max_body=config.max_body, reload=self.reload, live=live
        )
        self.registry = CollectorRegistry()
        self.registry.register(RouterCollector(lambda: self.ingest, reactor))
        self.site = Site(
            self.api,
            requestFactory=request_factory(config.max_body),
            timeout=IDLE_TIMEOUT_S,
            reactor=reactor,
        )
        self.site.displayTracebacks = False
        self.site.protocol = _Channel
        self.listeners = MultiService()
        self.listeners.setServiceParent(self)
        for description in config.listen:
            try:
                endpoint = serverFromString(reactor, description)
            except (ValueError, KeyError, TypeError) as e:
                raise StartupError(
                    f"router.listen: bad endpoint {description!r}: {e}", "imrouter"
                ) from None
            Listener(
                "router.listen",
                description,
                endpoint,
                self.site,
                program="imrouter",
                announce=self._bound,
            ).setServiceParent(self.listeners)
        metrics = Site(MetricsResource(registry=self.registry))
        metrics.noisy = False
        for description in config.metrics:
            try:
                endpoint = serverFromString(reactor, description)
            except (ValueError, KeyError, TypeError) as e:
                raise StartupError(
                    f"router.metrics: bad endpoint {description!r}: {e}", "imrouter"
                ) from None
            Listener(
                "router.metrics",
                description,
                endpoint,
                metrics,
                program="imrouter",
                announce=self._bound_metrics,
            ).setServiceParent(self.listeners)

    @property
    def ports(self) -> list:
        """The bound listening ports."""
        return [listener.port for listener in self.listeners if listener.port is not None]

    def _bound(self, listener: Listener) -> None:
        self._log.info(
            "imrouter listening on {where}",
            where=where(listener.port),
            endpoint=listener.description,
        )

    def _bound_metrics(self, listener: Listener) -> None:
        self._log.info("imrouter metrics listening on {where}", where=where(listener.port))

    def reload(self) -> int:
        """Read every rules file again; all or nothing. Returns the new generation.

        Raises :class:`gateway.config.ConfigError` for a bad file, after logging it;
        the rules in use then stay.
        """
        try:
            self.book.load()
        except ConfigError as e:
            self._log.error("imrouter reload failed, rules unchanged: {problem}", problem=str(e))
            raise
        return self.book.generation

    def _reload_on_signal(self) -> None:
        try:
            self.reload()
        except ConfigError:
            pass  # logged by reload

    def privilegedStartService(self) -> None:
        """Bind every endpoint before anything else starts; any failure stops startup."""
        self._log.info(
            "imrouter {version} configuration: {sources}",
            version=gateway.__version__,
            sources=" + ".join(self.config.sources),
        )
        try:
            self.ingest.open()
        except (OSError, ValueError) as e:
            where_ = self.config.data_dir
            raise StartupError(
                f"router.data_dir: cannot read the feed state in {where_}: {e}", "imrouter"
            ) from None
        try:
            super().privilegedStartService()
        except StartupError:
            release(self.listeners)
            raise

    def startService(self) -> None:
        """Apply the log level; SIGHUP reloads the rules from now on."""
        logs.set_level(self.config.log_level)
        if self._handle_signals:
            self._previous_hup = signal.signal(
                signal.SIGHUP,
                lambda _sig, _frame: self._reactor.callFromThread(self._reload_on_signal),
            )
            self._hup_installed = True
        super().startService()

    @inlineCallbacks
    def stopService(self):
        """Stop accepting; restore SIGHUP."""
        if self._hup_installed:
            signal.signal(signal.SIGHUP, self._previous_hup or signal.SIG_DFL)
            self._hup_installed = False
        yield super().stopService()
        self.ingest.compact()
        self.ingest.close()
        self._log.info("imrouter stopped")
