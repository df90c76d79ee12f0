"""FirewallFactory: total and per-address connection limits around a listener's factory."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, formatEvent
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

from firewall.wrapper import FirewallFactory, wrap


class Recording(Protocol):
    """The listener's own protocol, keeping what it receives."""

    def __init__(self) -> None:
        self.data = b""
        self.made = False

    def connectionMade(self) -> None:
        self.made = True

    def dataReceived(self, data: bytes) -> None:
        self.data += data


class Inner(Factory):
    """The listener's own factory, recording the addresses it builds for."""

    protocol = Recording

    def __init__(self) -> None:
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Protocol:
        self.built.append(addr)
        return super().buildProtocol(addr)


def ip(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


def make(total: int = 10, per_address: int = 2) -> tuple[FirewallFactory, Inner, list[dict]]:
    inner = Inner()
    firewall = wrap(
        inner, listener="tcp:7070", max_connections=total, max_connections_per_address=per_address
    )
    logged: list[dict] = []
    firewall._log = Logger(observer=logged.append)
    return firewall, inner, logged


def open_connection(firewall: FirewallFactory, addr: Any) -> tuple[Protocol, StringTransport]:
    protocol = firewall.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    protocol.makeConnection(transport)
    return protocol, transport


def test_wrap_builds_a_wrapping_factory() -> None:
    firewall, inner, _ = make(total=7, per_address=3)
    assert isinstance(firewall, WrappingFactory)
    assert firewall.wrappedFactory is inner
    assert (firewall.listener, firewall.max_connections, firewall.max_connections_per_address) == (
        "tcp:7070",
        7,
        3,
    )


def test_accepted_connection_reaches_the_wrapped_protocol() -> None:
    firewall, inner, logged = make()
    protocol, transport = open_connection(firewall, ip("10.0.0.5"))
    protocol.dataReceived(b"hello")
    wrapped = protocol.wrappedProtocol
    assert wrapped.data == b"hello"
    assert wrapped.made
    assert inner.built == [ip("10.0.0.5")]
    assert not transport.disconnecting
    assert logged == []


def test_per_address_limit() -> None:
    firewall, inner, logged = make(per_address=2)
    open_connection(firewall, ip("10.0.0.5", 1))
    open_connection(firewall, ip("10.0.0.5", 2))
    _, refused = open_connection(firewall, ip("10.0.0.5", 3))
    _, other = open_connection(firewall, ip("10.0.0.6", 1))
    # Rejected, not reset: the listener's protocol was built only to say why.
    assert refused.disconnecting and not refused.disconnected
    assert not other.disconnecting
    assert inner.built == [
        ip("10.0.0.5", 1),
        ip("10.0.0.5", 2),
        ip("10.0.0.5", 3),
        ip("10.0.0.6", 1),
    ]
    assert [formatEvent(e) for e in logged] == [
        "tcp:7070: refused connection from 10.0.0.5:3: 2 connections open from this address"
    ]
    assert firewall.connection_count() == 3
    assert firewall.connection_count("10.0.0.5") == 2


def test_total_limit() -> None:
    firewall, inner, logged = make(total=2, per_address=5)
    open_connection(firewall, ip("10.0.0.1"))
    open_connection(firewall, IPv6Address("TCP", "2001:db8::1", 5000))
    _, refused = open_connection(firewall, IPv6Address("TCP", "2001:db8::2", 5001))
    assert refused.disconnecting
    assert len(inner.built) == 3  # the third only to say why it is refused
    assert [formatEvent(e) for e in logged] == [
        "tcp:7070: refused connection from [2001:db8::2]:5001: 2 connections open on this listener"
    ]


def test_closed_connections_free_their_places() -> None:
    firewall, _, _ = make(total=2, per_address=1)
    first, _ = open_connection(firewall, ip("10.0.0.5", 1))
    second, _ = open_connection(firewall, ip("10.0.0.6", 1))
    assert open_connection(firewall, ip("10.0.0.5", 2))[1].disconnecting
    first.connectionLost(None)
    assert firewall.connection_count() == 1
    assert firewall.connection_count("10.0.0.5") == 0
    assert firewall._per_address == {"10.0.0.6": 1}
    assert not open_connection(firewall, ip("10.0.0.5", 3))[1].disconnecting
    second.connectionLost(None)
    assert firewall.connection_count() == 1


def test_refused_connections_are_not_counted() -> None:
    firewall, _, _ = make(total=5, per_address=1)
    open_connection(firewall, ip("10.0.0.5", 1))
    for port in range(2, 6):
        refused, _ = open_connection(firewall, ip("10.0.0.5", port))
        refused.connectionLost(None)
    assert firewall.connection_count() == 1
    assert firewall.connection_count("10.0.0.5") == 1


def test_ipv6_addresses_are_counted_apart() -> None:
    firewall, _inner, _ = make(per_address=1)
    open_connection(firewall, IPv6Address("TCP", "::1", 1))
    assert open_connection(firewall, IPv6Address("TCP", "::1", 2))[1].disconnecting
    assert not open_connection(firewall, IPv6Address("TCP", "::2", 1))[1].disconnecting
    assert firewall.connection_count("::1") == firewall.connection_count("::2") == 1


def test_unix_peers_have_only_the_total_limit() -> None:
    firewall, _inner, logged = make(total=3, per_address=1)
    for _ in range(3):
        assert not open_connection(firewall, UNIXAddress(None))[1].disconnecting
    _, refused = open_connection(firewall, UNIXAddress(None))
    assert refused.disconnecting
    assert firewall.connection_count() == 3
    assert [formatEvent(e) for e in logged] == [
        "tcp:7070: refused connection from UNIXAddress(None): 3 connections open on this listener"
    ]


def test_wrapped_factory_may_refuse() -> None:
    class Refusing(Factory):
        def buildProtocol(self, addr: Any) -> None:
            return None

    firewall = wrap(Refusing(), listener="unix:x", max_connections=1, max_connections_per_address=1)
    assert firewall.buildProtocol(ip("10.0.0.1")) is None
    assert firewall.connection_count() == 0


def test_over_tls_puts_the_firewall_in_front_and_shares_the_caps() -> None:
    firewall, inner, logged = make(per_address=2)
    tls = firewall.over_tls(CertificateOptions())
    assert isinstance(tls.wrappedFactory, TLSMemoryBIOFactory)
    assert tls.wrappedFactory.wrappedFactory is inner
    open_connection(firewall, ip("10.0.0.5", 1))
    protocol, _ = open_connection(tls, ip("10.0.0.5", 2))
    assert isinstance(protocol.wrappedProtocol, TLSMemoryBIOProtocol)
    _, refused = open_connection(tls, ip("10.0.0.5", 3))
    assert refused.disconnecting
    assert firewall.connection_count("10.0.0.5") == tls.connection_count("10.0.0.5") == 2
    assert [formatEvent(e) for e in logged] == [
        "tcp:7070: refused connection from 10.0.0.5:3: 2 connections open from this address"
    ]


def test_a_client_refused_for_the_per_address_cap_is_told_why() -> None:
    from zope.interface import implementer

    from firewall.interfaces import IFirewalledProtocol

    @implementer(IFirewalledProtocol)
    class Polite(Recording):
        def firewall_reject(self, reason: str) -> None:
            self.transport.write(f"ERROR :Closing Link: * ({reason})\r\n".encode())

    inner = Inner()
    inner.protocol = Polite
    firewall = wrap(inner, listener="tcp:6667", max_connections=10, max_connections_per_address=1)
    open_connection(firewall, ip("10.0.0.5", 1))
    _, refused = open_connection(firewall, ip("10.0.0.5", 2))
    assert refused.value() == (b"ERROR :Closing Link: * (1 connections open from this address)\r\n")
    assert refused.disconnecting
