"""Outbound connections through the firewall: output chain, SNAT, conntrack.

The gateway hands :class:`FirewalledReactor` instead of its reactor to everything that
connects out (the XMPP component, the IRC bot, the routing server client, the DNAT
proxy and its health checks): every ``connectTCP`` then meets the output chain, leaves
from the SNAT source address its destination network is given (``bindAddress``), and is
tracked in conntrack. A host name is resolved first, so that the chain and SNAT judge the
address the connection really goes to: the first resolved address the chain accepts is
used. Everything else is the real reactor's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import HostnameAddress, IPv4Address, IPv6Address
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
)
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from firewall.addrset import AddressError, parse_ip
from firewall.common import describe_address
from firewall.conntrack import Entry
from firewall.engine import Firewall


def _refused(host: str, port: int) -> Failure:
    return Failure(ConnectionRefusedError(f"{host}:{port} refused by the firewall"))


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
        address = None
        if isinstance(peer, IPv4Address | IPv6Address):
            try:
                address = parse_ip(peer.host)
            except AddressError:
                address = None
        self.entry = f.firewall.conntrack.open(
            protocol="tcp",
            direction="out",
            listener="output",
            original=(f.original_source or describe_address(local), describe_address(peer)),
            translated=(describe_address(local), describe_address(peer)),
            closer=transport.abortConnection,
            address=address,
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
    """Wraps a client factory so its connections are tracked; ``outer`` is the connector
    the wrapped factory knows (a name's, which resolves again when asked to reconnect)."""

    noisy = False
    protocol = _OutTracked

    def __init__(
        self,
        wrapped: IProtocolFactory,
        firewall: Firewall,
        source: str | None,
        outer: IConnector | None = None,
    ):
        super().__init__(wrapped)
        self.firewall = firewall
        self.original_source = None if source is None else "gateway"
        self.outer = outer

    def startedConnecting(self, connector: IConnector) -> None:
        """Told once, by the name's connector, when it has one."""
        if self.outer is None:
            self.wrappedFactory.startedConnecting(connector)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """Pass the failure on, with the connector the wrapped factory knows."""
        self.wrappedFactory.clientConnectionFailed(self.outer or connector, reason)

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        """Pass the loss on, with the connector the wrapped factory knows."""
        self.wrappedFactory.clientConnectionLost(self.outer or connector, reason)


@implementer(IResolutionReceiver)
class _Addresses:
    """Collects what a name resolves to, then hands the addresses to ``done``."""

    def __init__(self, done: Any) -> None:
        self.found: list[IAddress] = []
        self._done = done

    def resolutionBegan(self, resolution: Any) -> None:  # noqa: N802 (Twisted's name)
        """Nothing to do."""

    def addressResolved(self, address: IAddress) -> None:  # noqa: N802 (Twisted's name)
        """Keep each address."""
        self.found.append(address)

    def resolutionComplete(self) -> None:  # noqa: N802 (Twisted's name)
        """Every address is known."""
        self._done(self.found)


@implementer(IConnector)
class _ByName:
    """The connector of a connection to a host name: resolve, judge each address with
    the output chain and SNAT, connect to the first one allowed. ``connect()`` again
    (a reconnecting factory) resolves and judges again."""

    def __init__(self, out: FirewalledReactor, host: str, port: int, factory, timeout, bind):
        self._out, self._host, self._port = out, host, port
        self._factory, self._timeout, self._bind = factory, timeout, bind
        self._real: IConnector | None = None
        self._stopped = False
        self._resolved: IAddress | None = None

    def connect(self) -> None:
        """Resolve and connect."""
        self._stopped = False
        self._real = None
        self._factory.startedConnecting(self)
        self._out.nameResolver.resolveHostName(
            _Addresses(self._resolved_all), self._host, portNumber=self._port
        )

    def _resolved_all(self, found: list[IAddress]) -> None:
        if self._stopped:
            return
        addresses = [a for a in found if isinstance(a, IPv4Address | IPv6Address)]
        if not addresses:
            failure = Failure(DNSLookupError(f"{self._host}: no address"))
            self._factory.clientConnectionFailed(self, failure)
            return
        fw = self._out.firewall
        for address in addresses:
            decision, source = fw.outbound(address.host, self._port)
            if decision.verdict != "accept":
                continue
            self._resolved = address
            bind = self._bind if self._bind is not None else (source, 0) if source else None
            self._real = self._out.real.connectTCP(
                address.host,
                self._port,
                _OutFactory(self._factory, fw, source, outer=self),
                self._timeout,
                bind,
            )
            return
        self._factory.clientConnectionFailed(self, _refused(self._host, self._port))

    def stopConnecting(self) -> None:  # noqa: N802 (Twisted's name)
        """Stop resolving or connecting."""
        self._stopped = True
        if self._real is not None:
            self._real.stopConnecting()

    def disconnect(self) -> None:
        """Disconnect, or stop connecting."""
        self._stopped = True
        if self._real is not None:
            self._real.disconnect()

    def getDestination(self) -> IAddress:  # noqa: N802 (Twisted's name)
        """The resolved address once known, else the name."""
        if self._resolved is not None:
            return self._resolved
        return HostnameAddress(self._host.encode("idna"), self._port)


class FirewalledReactor:
    """The reactor as outbound connections should see it: ``connectTCP`` is filtered."""

    def __init__(self, reactor: Any, firewall: Firewall) -> None:
        self._reactor = reactor
        self._firewall = firewall
        directlyProvides(self, providedBy(reactor))

    @property
    def firewall(self) -> Firewall:
        """The firewall judging these connections."""
        return self._firewall

    @property
    def real(self) -> Any:
        """The reactor underneath."""
        return self._reactor

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
        """Connect out if the output chain allows, from the SNAT source address if any;
        a host name is resolved first."""
        try:
            parse_ip(host)
        except AddressError:
            connector = _ByName(self, host, port, factory, timeout, bindAddress)
            connector.connect()
            return connector  # type: ignore[return-value]
        decision, source = self._firewall.outbound(host, port)
        if decision.verdict != "accept":
            connector = _Blocked(host, port)
            self._reactor.callLater(
                0, factory.clientConnectionFailed, connector, _refused(host, port)
            )
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
