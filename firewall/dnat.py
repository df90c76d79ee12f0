"""DNAT listeners: a public endpoint forwarding TCP to an internal one.

A DNAT listener's factory is a TCP proxy: each accepted connection (already through the
listener's firewall wrapper: PROXY header, filter, limits, conntrack) opens a connection
to the target the running rules give (``nat { dnat listener NAME to HOST:PORT; }``),
through the firewall's outbound path (output chain, SNAT), and relays bytes both ways.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from firewall.common import log_observer
from firewall.engine import Firewall


class _Backend(Protocol):
    """The proxy's connection to the internal endpoint."""

    def __init__(self, front: DnatProxy) -> None:
        self.front = front

    def connectionMade(self) -> None:
        self.front.backend_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.front.transport.write(data)

    def connectionLost(self, reason: Failure) -> None:
        self.front.transport.loseConnection()


class _BackendFactory(ClientFactory):
    noisy = False

    def __init__(self, front: DnatProxy) -> None:
        self.front = front

    def buildProtocol(self, addr: Any) -> _Backend:
        return _Backend(self.front)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.front.backend_failed(reason)


class DnatProxy(Protocol):
    """The public side: buffers until the backend is connected, then relays."""

    _log = Logger(observer=log_observer)

    def __init__(self, factory: DnatFactory) -> None:
        self.factory = factory
        self.backend: _Backend | None = None
        self._pending: list[bytes] = []

    def connectionMade(self) -> None:
        target = self.factory.firewall.dnat_target(self.factory.name)
        if target is None:
            self._log.info(
                "firewall drop address={address} listener=dnat.{name} rule=no-dnat-target",
                address=self.transport.getPeer().host,
                name=self.factory.name,
            )
            self.transport.abortConnection()
            return
        self.transport.pauseProducing()
        host, port = target
        self.factory.reactor.connectTCP(host, port, _BackendFactory(self), 30)

    def backend_ready(self, backend: _Backend) -> None:
        """The internal endpoint answered: flush what the client sent and relay."""
        self.backend = backend
        if self._pending:
            backend.transport.write(b"".join(self._pending))
            self._pending.clear()
        self.transport.resumeProducing()

    def backend_failed(self, reason: Failure) -> None:
        """The internal endpoint cannot be reached: close the client's connection."""
        self._log.info(
            "dnat.{name}: backend unreachable: {why}",
            name=self.factory.name,
            why=reason.getErrorMessage(),
        )
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.backend is None:
            self._pending.append(data)
        else:
            self.backend.transport.write(data)

    def connectionLost(self, reason: Failure) -> None:
        if self.backend is not None:
            self.backend.transport.loseConnection()


class DnatFactory(Factory):
    """The factory of DNAT listener ``name``; ``reactor`` is the firewalled reactor."""

    noisy = False

    def __init__(self, name: str, firewall: Firewall, reactor: Any) -> None:
        self.name, self.firewall, self.reactor = name, firewall, reactor

    def buildProtocol(self, addr: Any) -> DnatProxy:
        return DnatProxy(self)
