"""XEP-0114: the gateway attached to an XMPP server as a component.

:class:`ComponentStream` speaks the ``jabber:component:accept`` stream (header,
``<handshake>`` of SHA-1(stream id + secret), then stanzas to and from the
component's domain) and hands stanzas to the :class:`~protocols.xmpp.hub.Hub`.
:func:`build` makes the reconnecting service the gateway runs (a
:class:`ClientService` with exponential backoff), or None when ``[xmpp] domain`` is
empty. The secret is never logged.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from gateway import logs
from protocols.tcp import no_delay
from protocols.xmpp import ns, stanzas
from protocols.xmpp.hub import Hub
from protocols.xmpp.parser import StreamError, StreamParser
from protocols.xmpp.settings import XmppSettings

# Reconnection delays: the first, then doubled per attempt up to [xmpp] reconnect_max_s,
# each lengthened by up to JITTER of itself so that many gateways do not come back at once.
FIRST_RETRY_S = 0.5
JITTER = 0.1


def handshake_digest(stream_id: str, secret: str) -> str:
    """The XEP-0114 handshake: lower-case hex SHA-1 of the stream id and the secret."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


class ComponentStream(Protocol):
    """One component connection to the server."""

    _log = Logger(observer=logs.observer)

    def __init__(self, hub: Hub, settings: XmppSettings, clock: IReactorTime) -> None:
        self._hub = hub
        self._settings = settings
        self._clock = clock
        self._parser = StreamParser(
            on_header=self._header,
            on_stanza=self._stanza,
            on_end=self._stream_end,
            max_stanza_bytes=settings.max_stanza,
            max_depth=settings.max_depth,
            max_elements=settings.max_elements,
        )
        self._authenticated = False
        self._closing = False
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """Open the stream and start the handshake deadline."""
        no_delay(self.transport)
        self._timer = self._clock.callLater(self._settings.auth_timeout_s, self._timed_out)
        self.transport.write(stanzas.stream_header(self._settings.domain, None, ns.COMPONENT))

    def dataReceived(self, data: bytes) -> None:
        """Parse what the server sent; a broken stream gets its stream error."""
        if self._closing:
            return
        try:
            self._parser.feed(data)
        except StreamError as e:
            self._log.warn(
                "XMPP component: stream error {condition}: {text}",
                condition=e.condition,
                text=e.text,
            )
            self._fail(e.condition, e.text)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Tell the hub, which logs every party out."""
        self._closing = True
        self._parser.stop()
        self._cancel_timer()
        if self._authenticated:
            self._authenticated = False
            self._log.info("XMPP component {domain}: link lost", domain=self._settings.domain)
            self._hub.detached()
        else:
            self._log.warn(
                "XMPP component {domain}: connection ended before the handshake: {why}",
                domain=self._settings.domain,
                why=reason.getErrorMessage() if reason is not None else "closed",
            )

    # -- the stream ------------------------------------------------------------

    def _header(self, attributes: dict[str, str]) -> None:
        if attributes.get("xmlns") != ns.COMPONENT:
            raise StreamError("invalid-namespace", "expected jabber:component:accept")
        stream_id = attributes.get("id")
        if not stream_id:
            raise StreamError("invalid-id", "the server gave no stream id")
        digest = handshake_digest(stream_id, self._settings.secret)
        handshake = domish.Element((ns.COMPONENT, "handshake"))
        handshake.addContent(digest)
        self._write(handshake)

    def _stanza(self, element: domish.Element) -> None:
        if element.uri == ns.STREAMS and element.name == "error":
            conditions = [e.name for e in element.elements() if e.uri == ns.STREAM_ERRORS]
            self._log.warn(
                "XMPP component: the server closed the stream: {conditions}",
                conditions=", ".join(c for c in conditions if c != "text") or "unknown",
            )
            self._close()
            return
        if not self._authenticated:
            if (element.uri, element.name) != (ns.COMPONENT, "handshake"):
                raise StreamError("not-authorized", "handshake expected")
            self._authenticated = True
            self._cancel_timer()
            factory = getattr(self, "factory", None)
            if factory is not None:
                factory.attached()
            peer = self.transport.getPeer()
            self._log.info(
                "XMPP component {domain} attached to {host}:{port}",
                domain=self._settings.domain,
                host=getattr(peer, "host", "?"),
                port=getattr(peer, "port", "?"),
            )
            self._hub.attached(self._write)
            return
        self._hub.stanza_received(element)

    def _stream_end(self) -> None:
        self._close()

    # -- out -------------------------------------------------------------------

    def _write(self, element: domish.Element) -> None:
        if not self._closing:
            self.transport.write(element.toXml(defaultUri=ns.COMPONENT).encode("utf-8"))

    def _fail(self, condition: str, text: str = "") -> None:
        if self._closing:
            return
        self.transport.write(stanzas.stream_error(condition, text))
        self._close(already_closed_stream=True)

    def _close(self, already_closed_stream: bool = False) -> None:
        if self._closing:
            return
        if not already_closed_stream:
            self.transport.write(b"</stream:stream>")
        self._closing = True
        self._parser.stop()
        self._cancel_timer()
        self.transport.loseConnection()

    def _timed_out(self) -> None:
        self._timer = None
        self._log.warn("XMPP component: no handshake within the deadline")
        self._fail("connection-timeout", "no handshake in time")

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class ComponentFactory(Factory):
    """Builds a :class:`ComponentStream` per connection; the hub lives across them.

    It also gives the reconnection delays: ClientService counts only failed TCP
    connects, so a server that accepts and then breaks the stream would be retried
    at the first delay forever. Here every attempt since the link last attached counts.
    """

    noisy = False
    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        hub: Hub,
        settings: XmppSettings,
        clock: IReactorTime,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self._jitter = jitter
        # Attempts since the link last attached.
        self.attempts = 0

    def attached(self) -> None:
        """The stream authenticated: the next drop retries at the first delay again."""
        self.attempts = 0

    def retry_delay(self, attempt: int) -> float:
        """ClientService's retry policy: seconds before the next connection attempt."""
        self.attempts += 1
        base = min(FIRST_RETRY_S * 2 ** min(self.attempts - 1, 32), self.settings.reconnect_max_s)
        delay = base * (1 + JITTER * self._jitter())
        self._log.info(
            "XMPP component {domain}: reconnecting in {delay:.2f}s (attempt {attempt})",
            domain=self.settings.domain,
            delay=delay,
            attempt=self.attempts,
        )
        return delay

    def buildProtocol(self, addr: Any) -> ComponentStream:
        """A stream for one connection to the server."""
        stream = ComponentStream(self.hub, self.settings, self.clock)
        stream.factory = self
        return stream


def build(gateway: Any, config: Any, reactor: Any) -> ClientService | None:
    """The reconnecting component service, or None when ``[xmpp] domain`` is empty."""
    settings: XmppSettings | None = config.sections.get("xmpp")
    if settings is None or not settings.domain:
        return None
    hub = Hub(gateway, settings, reactor, server=True)
    endpoint = HostnameEndpoint(reactor, settings.server_host, settings.server_port)
    factory = ComponentFactory(hub, settings, reactor)
    service = ClientService(endpoint, factory, retryPolicy=factory.retry_delay, clock=reactor)
    service.hub = hub
    return service
