"""The routing server's twistd service: rules loaded, API served, SIGHUP reloads."""

from __future__ import annotations

import signal
import sys
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import DeferredList, inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site

import gateway
from gateway import logs
from gateway.config import ConfigError
from gateway.routerd.api import RouterApi, request_factory
from gateway.routerd.config import RouterConfig
from gateway.routerd.rulebook import RuleBook

# Seconds a connection may sit idle before the server closes it.
IDLE_TIMEOUT_S = 60


class StartupError(SystemExit):
    """Startup cannot go on; the one line has been written to stderr."""

    def __init__(self, line: str) -> None:
        sys.stderr.write(f"imrouter: {line}\n")
        sys.stderr.flush()
        super().__init__(1)


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
            book = RuleBook(media=config.media, queues=config.queues)
        self.book = book
        try:
            self.book.load()
        except ConfigError as e:
            raise StartupError(str(e)) from None
        self.api = RouterApi(
            self.book, token=config.token, max_body=config.max_body, reload=self.reload
        )
        self.site = Site(
            self.api,
            requestFactory=request_factory(config.max_body),
            timeout=IDLE_TIMEOUT_S,
            reactor=reactor,
        )
        self.site.displayTracebacks = False
        self.ports: list[IListeningPort] = []

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
        for description in self.config.listen:
            self._listen(description)
        super().privilegedStartService()

    def _listen(self, description: str) -> None:
        results: list = []
        try:
            endpoint = serverFromString(self._reactor, description)
        except (ValueError, KeyError, TypeError) as e:
            self._abort(f"router.listen: bad endpoint {description!r}: {e}")
        endpoint.listen(self.site).addBoth(results.append)
        if not results:
            self._abort(f"router.listen: {description!r} did not bind at startup")
        result = results[0]
        if not IListeningPort.providedBy(result):
            self._abort(f"router.listen: cannot listen on {description!r}: {result.value}")
        self.ports.append(result)
        address = result.getHost()
        where = f"{address.host}:{address.port}" if hasattr(address, "port") else str(address)
        self._log.info("imrouter listening on {where}", where=where, endpoint=description)

    def _abort(self, line: str) -> None:
        for port in self.ports:
            port.stopListening()
        self.ports.clear()
        raise StartupError(line)

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
        yield DeferredList([maybeDeferred(port.stopListening) for port in self.ports])
        self.ports.clear()
        yield super().stopService()
        self._log.info("imrouter stopped")
