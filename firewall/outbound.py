"""Outbound connections through the firewall: output chain, SNAT, conntrack.

The gateway hands :class:`FirewalledReactor` instead of its reactor to everything that
connects out (the XMPP component, the IRC bot, the routing server client, the DNAT
proxy): every ``connectTCP`` then meets the output chain, leaves from the SNAT source
address its destination network is given (``bindAddress``), and is tracked in conntrack.
Everything else is the real reactor's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IAddress, IConnector, IProtocol, IProtocolFactory
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from firewall.common import describe_address
from firewall.conntrack import Entry
from firewall.engine import Firewall


@implementer(IConnector)
class _Blocked:
    """The connector of a connection the output chain refused: it fails at once."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port

    def stopConnecting(self) -> None:  # noqa: N802 (Twisted's name)
        """Nothing is connecting."""

    def disconnect(self) -> None:
        """Nothing is connected."""

    def connect(self) -> None:
        """Refused again."""

    def getDestination(self) -> Any:  # noqa: N802 (Twisted's name)
        """Where the connection would have gone."""
        from twisted.internet.address import IPv4Address

        return IPv4Address("TCP", self._host, self._port)


class _OutTracked(ProtocolWrapper):
    """An outbound connection, counted in conntrack."""

    def __init__(self, factory: _OutFactory, wrapped: IProtocol) -> None:
        super().__init__(factory, wrapped)
        self.entry: Entry | None = None

    def makeConnection(self, transport) -> None:
        """Track the connection, then connect the wrapped protocol."""
        f = self.factory
        local, peer = transport.getHost(), transport.getPeer()
        self.entry = f.firewall.conntrack.open(
            protocol="tcp",
            direction="out",
            listener="output",
            original=(f.original_source or describe_address(local), describe_address(peer)),
            translated=(describe_address(local), describe_address(peer)),
            closer=transport.abortConnection,
        )
        super().makeConnection(transport)

    def write(self, data: bytes) -> None:
        """Send, counting the bytes."""
        if self.entry is not None:
            self.factory.firewall.conntrack.received(self.entry, len(data))
        self.transport.write(data)

    def writeSequence(self, data) -> None:  # noqa: N802 (Twisted's name)
        """Send several chunks."""
        self.write(b"".join(data))

    def dataReceived(self, data: bytes) -> None:
        """Receive, counting the bytes."""
        if self.entry is not None:
            self.factory.firewall.conntrack.sent(self.entry, len(data))
        self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        """Forget the connection."""
        if self.entry is not None:
            self.factory.firewall.conntrack.close(self.entry)
            self.entry = None
        super().connectionLost(reason)


class _OutFactory(WrappingFactory):
    """Wraps a client factory so its connections are tracked."""

    noisy = False
    protocol = _OutTracked

    def __init__(self, wrapped: IProtocolFactory, firewall: Firewall, source: str | None):
        super().__init__(wrapped)
        self.firewall = firewall
        self.original_source = None if source is None else "gateway"


class FirewalledReactor:
    """The reactor as outbound connections should see it: ``connectTCP`` is filtered."""

    def __init__(self, reactor: Any, firewall: Firewall) -> None:
        self._reactor = reactor
        self._firewall = firewall
        directlyProvides(self, providedBy(reactor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def connectTCP(  # noqa: N802 (Twisted's name)
        self,
        host: str,
        port: int,
        factory: IProtocolFactory,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,  # noqa: N803 (Twisted's name)
    ) -> IConnector:
        """Connect out if the output chain allows, from the SNAT source address if any."""
        decision, source = self._firewall.outbound(host, port)
        if decision.verdict != "accept":
            connector = _Blocked(host, port)
            failure = Failure(ConnectionRefusedError(f"{host}:{port} refused by the firewall"))
            self._reactor.callLater(0, factory.clientConnectionFailed, connector, failure)
            return connector  # type: ignore[return-value]
        bind = bindAddress
        if source is not None and bind is None:
            bind = (source, 0)
        return self._reactor.connectTCP(
            host, port, _OutFactory(factory, self._firewall, source), timeout, bind
        )


def peer_of(address: IAddress) -> str:
    """An address as conntrack shows it."""
    return describe_address(address)
