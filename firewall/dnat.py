"""DNAT listeners: a public endpoint forwarding TCP to internal servers, as HAProxy's
``mode tcp`` does.

A DNAT listener's factory is a TCP proxy: each accepted connection (already through the
listener's firewall wrapper: PROXY header, filter, limits, conntrack) is relayed to a
backend of the target the running rules give (``nat { dnat listener NAME to …; }``;
:mod:`firewall.backends` picks it), connected through the firewall's outbound path
(output chain, SNAT; a host name is resolved first). If the backend cannot be reached
within ``timeout connect``, the next one is tried. With ``send-proxy`` or
``send-proxy-v2`` the backend first receives a PROXY header naming the client.

Flow control both ways: each side's transport is the other's producer, so a side that
does not read pauses the reading of the other (Twisted's producer/consumer), and what the
gateway holds for a connection stays within its sockets' buffers. ``timeout idle``
closes a connection silent both ways that long.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from firewall import proxyproto
from firewall.backends import DnatBackends, Server
from firewall.common import log_observer, no_delay
from firewall.engine import Firewall

# What a client may send before its backend is connected (its reading is paused then,
# so this holds at most what one read brought).
MAX_PENDING = 256 * 1024


class _Backend(Protocol):
    """The proxy's connection to one backend."""

    def __init__(self, front: DnatProxy, server: Server) -> None:
        self.front, self.server = front, server
        self.counted = False  # in its server's active connections

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.front.backend_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.front.from_backend(data)

    def connectionLost(self, reason: Failure) -> None:
        self.front.backend_lost(self)


class _BackendFactory(ClientFactory):
    noisy = False

    def __init__(self, front: DnatProxy, server: Server) -> None:
        self.front, self.server = front, server

    def buildProtocol(self, addr: Any) -> _Backend:
        return _Backend(self.front, self.server)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.front.backend_failed(self.server, reason)


class DnatProxy(Protocol):
    """The public side: waits (not reading) until a backend is connected, then relays."""

    _log = Logger(observer=log_observer)

    def __init__(self, factory: DnatFactory) -> None:
        self.factory = factory
        self.backend: _Backend | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._tried: list[Server] = []
        self._candidates: list[Server] = []
        self._idle: IDelayedCall | None = None
        self._closed = False

    def connectionMade(self) -> None:
        pool = self.factory.backends.pool(self.factory.name)
        candidates = pool.candidates() if pool is not None else []
        if pool is None or not candidates:
            self.factory.firewall.refused(
                "drop",
                f"dnat.{self.factory.name}",
                self.transport.getPeer().host,
                "no-dnat-target" if pool is None else "no-backend-up",
            )
            self.transport.abortConnection()
            return
        self._pool = pool
        self._candidates = candidates
        no_delay(self.transport)
        self.transport.pauseProducing()
        self._connect_next()

    def _connect_next(self) -> None:
        if self._closed:
            return
        if not self._candidates:
            self._log.info(
                "dnat.{name}: no backend reachable for {address}",
                name=self.factory.name,
                address=self.transport.getPeer().host,
            )
            self.transport.loseConnection()
            return
        server = self._candidates.pop(0)
        self._tried.append(server)
        host, port = server.backend.address
        self.factory.reactor.connectTCP(
            host, port, _BackendFactory(self, server), self._pool.target.connect_timeout_s
        )

    def backend_failed(self, server: Server, reason: Failure) -> None:
        """A backend cannot be reached: count it against the server, try the next."""
        self._log.info(
            "dnat.{name}: backend {backend} unreachable: {why}",
            name=self.factory.name,
            backend=server.backend.text(),
            why=reason.getErrorMessage(),
        )
        self._pool.check_done(server, reason.getErrorMessage())
        self._connect_next()

    def backend_ready(self, backend: _Backend) -> None:
        """A backend answered: send the PROXY header, flush what the client sent, relay."""
        if self._closed:
            backend.transport.loseConnection()
            return
        self.backend = backend
        backend.server.active += 1
        backend.counted = True
        target = self._pool.target
        if target.send_proxy:
            backend.transport.write(
                _proxy_header(target.send_proxy, self.transport.getPeer(), self.transport.getHost())
            )
        if self._pending:
            backend.transport.write(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0
        # Each side holds the other back when its own sending buffer is full.
        backend.transport.registerProducer(self.transport, True)
        self.transport.registerProducer(backend.transport, True)
        self._touch()
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.backend is None:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > MAX_PENDING:
                self.transport.abortConnection()
            return
        self._touch()
        self.backend.transport.write(data)

    def from_backend(self, data: bytes) -> None:
        """What the backend sent, for the client."""
        self._touch()
        self.transport.write(data)

    def _touch(self) -> None:
        idle = self._pool.target.idle_timeout_s
        if idle is None:
            return
        if self._idle is not None and self._idle.active():
            self._idle.reset(idle)
        else:
            self._idle = self.factory.reactor.callLater(idle, self._idle_out)

    def _idle_out(self) -> None:
        self._idle = None
        self._log.info(
            "dnat.{name}: {address} idle for {idle:g}s, closing",
            name=self.factory.name,
            address=self.transport.getPeer().host,
            idle=self._pool.target.idle_timeout_s,
        )
        self.transport.loseConnection()

    def backend_lost(self, backend: _Backend) -> None:
        """The backend closed: close the client's side once what is buffered is sent."""
        if backend.counted:
            backend.server.active -= 1
            backend.counted = False
        if self.backend is backend:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        self._closed = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        if self.backend is not None:
            self.backend.transport.unregisterProducer()
            self.backend.transport.loseConnection()


def _proxy_header(version: int, peer: Any, host: Any) -> bytes:
    """The PROXY header naming the client (``peer``) and the address it reached."""
    ip_kinds = IPv4Address | IPv6Address
    same_family = (
        isinstance(peer, ip_kinds)
        and isinstance(host, ip_kinds)
        and (":" in peer.host) == (":" in host.host)
    )
    if not same_family:
        return proxyproto.UNKNOWN_V1 if version == 1 else proxyproto.LOCAL_V2
    pair = ((peer.host, peer.port), (host.host, host.port))
    return proxyproto.v1_header(*pair) if version == 1 else proxyproto.v2_header(*pair)


class DnatFactory(Factory):
    """The factory of DNAT listener ``name``; ``reactor`` is the firewalled reactor and
    ``backends`` the pools of the running rules."""

    noisy = False

    def __init__(
        self, name: str, firewall: Firewall, reactor: Any, backends: DnatBackends | None = None
    ) -> None:
        self.name, self.firewall, self.reactor = name, firewall, reactor
        self.backends = backends if backends is not None else DnatBackends(firewall, reactor)

    def buildProtocol(self, addr: Any) -> DnatProxy:
        return DnatProxy(self)
