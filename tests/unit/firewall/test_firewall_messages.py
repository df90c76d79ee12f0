"""Message counters and the message rate in protocol messages: each protocol reports the
frames, lines or stanzas it reads (``transport.firewall_messages``), whatever the reads."""

from __future__ import annotations

import json

from core_helpers import make_harness
from irc_helpers import settings as irc_settings
from jsonim_helpers import CUSTOMER_HELLO, FakeGateway
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, formatEvent
from zope.interface import implementer

from firewall.engine import Firewall
from firewall.interfaces import IFirewalledProtocol
from firewall.wrapper import wrap
from protocols.irc.server import IrcFactory
from protocols.jsonim.protocol import JsonImFactory
from protocols.jsonim.settings import JsonImSettings
from protocols.xmpp.c2s import ClientFactory, ClientServer
from protocols.xmpp.settings import XmppSettings

RULES = "chain input { policy drop; ip saddr 192.0.2.0/24 accept; }\n"
PEER = IPv4Address("TCP", "192.0.2.7", 40000)
HOST = IPv4Address("TCP", "127.0.0.1", 7070)


def behind_firewall(factory, clock: Clock, rules: str = RULES, listener: str = "jsonim"):
    """``factory`` behind a firewall running ``rules``; returns (firewall, wrapped factory,
    log events)."""
    fw = Firewall(clock)
    logged: list[dict] = []
    fw._log = Logger(observer=logged.append)
    fw.apply(rules, "test.rules")
    wrapped = wrap(
        factory, listener=listener, max_connections=10, max_connections_per_address=10, firewall=fw
    )
    wrapped._log = fw._log
    return fw, wrapped, logged


def connect(factory):
    protocol = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER, hostAddress=HOST)
    protocol.makeConnection(transport)
    return protocol, transport


def counted(fw: Firewall) -> tuple[int, int, int]:
    """(connections, messages, bytes) of the accept rule."""
    row = next(r for r in fw.listing() if r["rule"].endswith("accept"))
    return row["connections"], row["messages"], row["bytes"]


def frames(*items: dict) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@implementer(IFirewalledProtocol)
class Reporting(Protocol):
    """A protocol whose messages end with ``;``, reported to the firewall one by one."""

    def __init__(self) -> None:
        self.buffer = b""
        self.handled: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b";" in self.buffer:
            message, self.buffer = self.buffer.split(b";", 1)
            if not self.transport.firewall_messages(1):
                return
            self.handled.append(message)

    def firewall_reject(self, reason: str) -> None:
        self.transport.write(f"refused: {reason};".encode())


def test_reported_messages_are_counted_not_lines_or_reads() -> None:
    clock = Clock()
    fw, factory, _ = behind_firewall(Factory.forProtocol(Reporting), clock)
    protocol, _ = connect(factory)
    protocol.dataReceived(b"a;b\n;c")  # two messages (one line break)
    protocol.dataReceived(b";\n\n\n")  # the third ends here; three line breaks
    assert protocol.wrappedProtocol.handled == [b"a", b"b\n", b"c"]
    assert counted(fw) == (1, 3, 10)


def test_over_the_message_rate_later_data_is_held_back_then_dropped() -> None:
    clock = Clock()
    rules = RULES + "limits { messages rate 1/second burst 2; lag 2; disconnect after 2; }\n"
    fw, factory, logged = behind_firewall(Factory.forProtocol(Reporting), clock, rules)
    protocol, transport = connect(factory)
    inner = protocol.wrappedProtocol
    protocol.dataReceived(b"a;b;")
    assert transport.producerState == "producing"
    protocol.dataReceived(b"c;")  # over the rate: handled, but the socket pauses
    assert inner.handled == [b"a", b"b", b"c"] and transport.producerState == "paused"
    protocol.dataReceived(b"d;")  # held back
    assert inner.handled == [b"a", b"b", b"c"]
    clock.advance(2)
    assert inner.handled == [b"a", b"b", b"c", b"d"] and transport.producerState == "producing"
    protocol.dataReceived(b"e;f;g;")  # e fits, f is the second violation: dropped
    assert inner.handled == [b"a", b"b", b"c", b"d", b"e"]
    assert transport.disconnecting and transport.disconnected
    protocol.dataReceived(b"h;")
    assert inner.handled == [b"a", b"b", b"c", b"d", b"e"]
    assert counted(fw)[1] == 6  # a-f; g and h were never handled
    assert [formatEvent(e) for e in logged if "limit" in formatEvent(e)] == [
        "firewall limit address=192.0.2.7 listener=jsonim limit=message-rate violations=1",
        "firewall limit address=192.0.2.7 listener=jsonim limit=message-rate violations=2",
        "firewall drop address=192.0.2.7 listener=jsonim rule=limit-messages",
    ]


def test_jsonim_reports_frames() -> None:
    clock = Clock()
    jsonim = JsonImFactory(FakeGateway(), JsonImSettings(), server_name="imgateway", clock=clock)
    fw, factory, _ = behind_firewall(jsonim, clock)
    protocol, transport = connect(factory)
    first = frames(CUSTOMER_HELLO, {"type": "ping"}, {"type": "ping", "id": "p2"})
    last = frames({"type": "ping", "id": "p3"})
    protocol.dataReceived(first)
    protocol.dataReceived(last[:5])
    protocol.dataReceived(last[5:])
    kinds = [json.loads(line)["type"] for line in transport.value().splitlines()]
    assert kinds == ["welcome", "pong", "pong", "pong"]
    assert counted(fw) == (1, 4, len(first) + len(last))


def test_jsonim_stops_reading_once_dropped() -> None:
    clock = Clock()
    rules = RULES + "limits { messages rate 1/second burst 2; disconnect after 1; }\n"
    jsonim = JsonImFactory(FakeGateway(), JsonImSettings(), server_name="imgateway", clock=clock)
    fw, factory, _ = behind_firewall(jsonim, clock, rules)
    protocol, transport = connect(factory)
    protocol.dataReceived(
        frames(CUSTOMER_HELLO, {"type": "ping"}, {"type": "ping"}, {"type": "ping"})
    )
    kinds = [json.loads(line)["type"] for line in transport.value().splitlines()]
    assert kinds == ["welcome", "pong"] and transport.disconnected
    assert counted(fw)[1] == 3


def test_irc_reports_lines() -> None:
    harness = make_harness()
    irc = IrcFactory(harness.gateway, irc_settings(), clock=harness.clock)
    fw, factory, _ = behind_firewall(irc, harness.clock, listener="irc")
    protocol, transport = connect(factory)
    first = b"NICK dana\r\nUSER dana 0 * :Dana Doe\r\n\r\n"  # the empty line is no message
    second = b"PING :one\r\nPING :two\r\n"
    protocol.dataReceived(first)
    protocol.dataReceived(second)
    protocol.dataReceived(b"PING :th")
    protocol.dataReceived(b"ree\r\n")
    pongs = [line for line in transport.value().split(b"\r\n") if b" PONG " in line]
    assert len(pongs) == 3
    assert counted(fw) == (1, 5, len(first) + len(second) + len(b"PING :three\r\n"))


DOMAIN = "chat.example.com"
HEADER = (
    f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
).encode()


def test_xmpp_reports_stanzas_not_the_stream_header() -> None:
    harness = make_harness()
    server = ClientServer(harness.gateway, XmppSettings(client_domain=DOMAIN), harness.clock)
    fw, factory, _ = behind_firewall(
        ClientFactory(server, direct_tls=False), harness.clock, listener="xmpp"
    )
    protocol, transport = connect(factory)
    sent = [
        HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>",
        HEADER,
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>phone</resource></bind></iq><iq type='get' id='p1'>",
        b"<ping xmlns='urn:xmpp:ping'/></iq>",
    ]
    for data in sent:
        protocol.dataReceived(data)
    out = transport.value().decode()
    assert "<success" in out and "<jid>" in out and "id='p1'" in out.replace('"', "'")
    assert counted(fw) == (1, 3, sum(len(d) for d in sent))
