"""TCP_NODELAY on every connection the product opens or accepts that has the option.

The adapters' listeners set it in their protocols (their own tests); here the rest:
the Redis link's two connections, the routing server's HTTP channel, the gateway's
HTTP client of the routing server, and both sides of a DNAT relay.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport

from firewall import dnat
from gateway.cluster import link
from gateway.routerd import service as routerd_service
from gateway.routing import http
from protocols.tcp import no_delay


class _TcpLike(StringTransport):
    def __init__(self) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 7000),
            peerAddress=IPv4Address("TCP", "127.0.0.9", 40000),
        )
        self.no_delay: bool | None = None
        self.written_before_no_delay = False

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
        self.no_delay = enabled

    def write(self, data: bytes) -> None:
        if self.no_delay is None:
            self.written_before_no_delay = True
        super().write(data)


class _Closed(StringTransport):
    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
        raise OSError("socket closed")


def test_no_delay_turns_nagle_off():
    transport = _TcpLike()
    no_delay(transport)
    assert transport.no_delay is True


def test_no_delay_leaves_other_transports_alone():
    no_delay(StringTransport())  # no setTcpNoDelay: nothing happens
    no_delay(_Closed())  # the socket is already gone: ignored


@pytest.mark.parametrize("kind", [link._Commands, link._Subscriber])
def test_both_redis_connections_turn_nagle_off_before_their_first_command(kind):
    proto = kind(password="redis-Secret", dbid=3, replyTimeout=5)
    proto.factory = SimpleNamespace(link=SimpleNamespace(_up=lambda _: None, _down=lambda _: None))
    transport = _TcpLike()
    proto.makeConnection(transport)
    assert transport.no_delay is True
    assert transport.value().startswith(b"*2\r\n$4\r\nAUTH\r\n")  # it spoke, after
    assert not transport.written_before_no_delay


def test_the_routing_servers_http_channel_turns_nagle_off():
    channel = routerd_service._Channel()
    transport = _TcpLike()
    channel.makeConnection(transport)
    assert transport.no_delay is True
    channel.connectionLost(None)


def test_the_routing_client_turns_nagle_off_before_its_first_request():
    transport = _TcpLike()

    class _Endpoint:
        def connect(self, factory):
            proto = factory.buildProtocol(None)
            proto.makeConnection(transport)
            return succeed(proto)

    endpoints = http.RouterEndpoints(MemoryReactorClock(), tls_policy=None)
    uri = SimpleNamespace(host=b"127.0.0.1", port=7171, scheme=b"http")
    endpoint = endpoints.endpointForURI(uri)
    assert isinstance(endpoint, http._NoDelay)
    endpoint._inner = _Endpoint()
    connected = []
    endpoint.connect(Factory.forProtocol(Protocol)).addCallback(connected.append)
    assert connected and connected[0].transport is transport
    assert transport.no_delay is True


def test_both_sides_of_a_dnat_relay_turn_nagle_off():
    reactor = MemoryReactorClock()
    target = SimpleNamespace(connect_timeout_s=3.0, send_proxy=None, idle_timeout_s=None)
    server = SimpleNamespace(backend=SimpleNamespace(address=("127.0.0.2", 5222)), active=0)
    pool = SimpleNamespace(target=target, candidates=lambda: [server])
    factory = SimpleNamespace(
        name="desk", firewall=None, reactor=reactor, backends=SimpleNamespace(pool=lambda _: pool)
    )
    front = dnat.DnatProxy(factory)
    client_side = _TcpLike()
    front.makeConnection(client_side)
    assert client_side.no_delay is True
    host, port, backend_factory, timeout, _ = reactor.tcpClients[0]
    assert (host, port, timeout) == ("127.0.0.2", 5222, 3.0)
    backend = backend_factory.buildProtocol(None)
    backend_side = _TcpLike()
    backend.makeConnection(backend_side)
    assert backend_side.no_delay is True
    front.dataReceived(b"hello")
    assert backend_side.value() == b"hello"
