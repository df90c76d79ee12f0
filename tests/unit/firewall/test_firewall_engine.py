"""The firewall behind a listener: filter, limits, bans, conntrack, PROXY, NAT, translation."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, formatEvent
from zope.interface import implementer

from firewall import proxyproto
from firewall.engine import Firewall
from firewall.interfaces import IFirewalledProtocol
from firewall.outbound import FirewalledReactor
from firewall.ruleset import RulesError
from firewall.wrapper import wrap


class Recording(Protocol):
    """The listener's own protocol."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False
        self.rejected: str | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.lost = True


@implementer(IFirewalledProtocol)
class Polite(Recording):
    """A protocol with the firewall's reject hook."""

    def firewall_reject(self, reason: str) -> None:
        self.transport.write(f"ERROR {reason}\n".encode())


class Inner(Factory):
    protocol = Recording

    def __init__(self, protocol=Recording) -> None:
        self.protocol = protocol
        self.built: list = []

    def buildProtocol(self, addr):
        self.built.append(addr)
        return super().buildProtocol(addr)


def make(rules: str = "", protocol=Recording):
    clock = Clock()
    fw = Firewall(clock)
    logged: list[dict] = []
    fw._log = Logger(observer=logged.append)
    if rules:
        fw.apply(rules, "test.rules")
        logged.clear()
    inner = Inner(protocol)
    factory = wrap(
        inner, listener="jsonim", max_connections=100, max_connections_per_address=100, firewall=fw
    )
    factory._log = fw._log
    return fw, factory, inner, clock, logged


def connect(factory, host: str, port: int = 40000):
    addr = (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)
    protocol = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr, hostAddress=IPv4Address("TCP", "127.0.0.1", 7070))
    protocol.makeConnection(transport)
    return protocol, transport


def lines(logged):
    return [formatEvent(e) for e in logged]


RULES = """
set blocked { type addr; elements = { 192.0.2.0/24 } }
chain input {
    policy accept;
    ip saddr @blocked drop;
    ip saddr 198.51.100.7 reject;
    ip saddr 198.51.100.8 accept;
}
"""


def test_drop_closes_silently_and_logs_one_fail2ban_line():
    fw, factory, inner, _, logged = make(RULES)
    _, transport = connect(factory, "192.0.2.9")
    assert transport.disconnecting and transport.value() == b"" and not inner.built
    assert lines(logged) == ["firewall drop address=192.0.2.9 listener=jsonim rule=1"]
    assert fw.counters[1].connections == 1


def test_reject_calls_the_protocols_hook_then_closes():
    _fw, factory, _, _, logged = make(RULES, Polite)
    _, transport = connect(factory, "198.51.100.7")
    assert transport.value() == b"ERROR refused by the firewall\n"
    assert transport.disconnecting
    assert lines(logged) == ["firewall reject address=198.51.100.7 listener=jsonim rule=2"]


def test_reject_without_a_hook_just_closes():
    _, factory, _, _, _ = make(RULES)
    _, transport = connect(factory, "198.51.100.7")
    assert transport.value() == b"" and transport.disconnecting


def test_accept_counts_connections_messages_and_bytes():
    fw, factory, inner, _, _ = make(RULES)
    protocol, _transport = connect(factory, "198.51.100.8")
    protocol.dataReceived(b"one\ntwo\n")
    protocol.write(b"hello")
    assert inner.built and protocol.wrappedProtocol.data == b"one\ntwo\n"
    c = fw.counters[3]
    assert (c.connections, c.messages, c.bytes) == (1, 2, 8)
    assert fw.listing()[2] == {
        "chain": "input",
        "handle": 3,
        "rule": "ip saddr 198.51.100.8 accept",
        "connections": 1,
        "messages": 2,
        "bytes": 8,
    }
    fw.reset_counters()
    assert fw.counters[3].connections == 0


def test_conntrack_tracks_bytes_state_and_expires_idle_connections():
    fw, factory, _, clock, _ = make(RULES + "conntrack { timeout new 5; timeout established 60; }")
    protocol, transport = connect(factory, "198.51.100.8", 5555)
    (entry,) = list(fw.conntrack)
    assert entry.original == ("198.51.100.8:5555", "127.0.0.1:7070")
    assert entry.state == "new"
    protocol.dataReceived(b"hi\n")
    protocol.write(b"hello\n")
    assert (entry.state, entry.bytes_in, entry.bytes_out) == ("established", 3, 6)
    clock.advance(59)
    fw.sweep()
    assert not transport.disconnecting
    clock.advance(1)
    fw.sweep()
    assert transport.disconnected or transport.disconnecting
    protocol.connectionLost(None)
    assert len(fw.conntrack) == 0


def test_conntrack_kill_closes_the_connection():
    fw, factory, _, _, _ = make()
    _, transport = connect(factory, "10.0.0.1")
    (entry,) = list(fw.conntrack)
    assert fw.conntrack.kill(entry.id)
    assert transport.disconnected or transport.disconnecting
    assert not fw.conntrack.kill(999)


def test_concurrent_limit_per_address_and_automatic_ban_with_expiry():
    fw, factory, _, clock, logged = make("limits { concurrent 1; ban after 2 for 60; }")
    connect(factory, "10.0.0.1")
    assert connect(factory, "10.0.0.1")[1].disconnecting  # violation 1
    assert not connect(factory, "10.0.0.2")[1].disconnecting
    assert connect(factory, "10.0.0.1")[1].disconnecting  # violation 2: banned
    assert fw.ban_list() == [{"address": "10.0.0.1", "expires_in_s": 60.0}]
    assert "firewall drop address=10.0.0.1 listener=jsonim rule=banned" not in lines(logged)
    assert connect(factory, "10.0.0.1")[1].disconnecting
    assert "firewall drop address=10.0.0.1 listener=jsonim rule=banned" in lines(logged)
    clock.advance(60)
    fw.sweep()
    assert fw.ban_list() == []


def test_connection_rate_is_a_token_bucket():
    _, factory, _, clock, _ = make("limits { connections rate 1/second burst 2; }")
    for _ in range(2):
        protocol, transport = connect(factory, "10.0.0.1")
        assert not transport.disconnecting
        protocol.connectionLost(None)
    assert connect(factory, "10.0.0.1")[1].disconnecting
    clock.advance(1)
    assert not connect(factory, "10.0.0.1")[1].disconnecting


def test_message_rate_lags_then_disconnects():
    _, factory, _, clock, logged = make(
        "limits { messages rate 1/second burst 2; lag 2; disconnect after 2; }"
    )
    protocol, transport = connect(factory, "10.0.0.1")
    inner = protocol.wrappedProtocol
    protocol.dataReceived(b"a\nb\n")
    assert inner.data == b"a\nb\n"
    protocol.dataReceived(b"c\n")  # over the rate: held back
    assert inner.data == b"a\nb\n" and transport.producerState == "paused"
    clock.advance(2)
    assert inner.data == b"a\nb\nc\n" and transport.producerState == "producing"
    protocol.dataReceived(b"d\ne\nf\n")  # second violation: disconnect
    assert transport.disconnecting or transport.disconnected
    assert "firewall drop address=10.0.0.1 listener=jsonim rule=limit-messages" in lines(logged)


def test_ipv6_limits_count_a_64_as_one_address():
    fw, factory, _, _, _ = make("limits { concurrent 1; }")
    connect(factory, "2001:db8:1:2::1")
    assert connect(factory, "2001:db8:1:2::99")[1].disconnecting
    assert not connect(factory, "2001:db8:1:3::1")[1].disconnecting
    assert fw.ban("2001:db8:1:2::5") == "2001:db8:1:2::/64"


def test_admin_bans_and_unbans():
    fw, factory, _, clock, _ = make()
    assert fw.ban("10.0.0.9", 30) == "10.0.0.9"
    fw.ban("2001:db8::1")
    assert connect(factory, "10.0.0.9")[1].disconnecting
    assert connect(factory, "2001:db8::77")[1].disconnecting
    assert [b["address"] for b in fw.ban_list()] == ["10.0.0.9", "2001:db8::/64"]
    assert fw.unban("2001:db8::/64") and not fw.unban("2001:db8::/64")
    clock.advance(30)
    assert not connect(factory, "10.0.0.9")[1].disconnecting


def test_a_bad_rules_text_changes_nothing_and_a_good_one_swaps_at_once():
    fw, factory, _, _, _ = make(RULES)
    established, transport = connect(factory, "198.51.100.8")
    before = fw.ruleset
    with pytest.raises(RulesError):
        fw.apply(RULES + "chain input { }")
    assert fw.ruleset is before
    fw.counters[3].connections = 5
    diff = fw.check(RULES.replace("reject", "drop"))
    assert (
        "-    ip saddr 198.51.100.7 reject;" in diff and "+    ip saddr 198.51.100.7 drop;" in diff
    )
    assert fw.ruleset is before
    fw.apply(RULES + "chain output { policy drop; }")
    # unchanged rules keep their counters under new handles; connections stay up
    assert [r["connections"] for r in fw.listing()] == [0, 0, 5]
    assert not transport.disconnecting
    established.dataReceived(b"still here\n")
    assert established.wrappedProtocol.data == b"still here\n"


def test_add_and_delete_rules_by_handle():
    fw, factory, _, _, _ = make(RULES)
    handle = fw.add_rule("input", "ip saddr 10.9.0.0/16 drop")
    assert handle == 4
    assert connect(factory, "10.9.1.1")[1].disconnecting
    assert fw.delete_rule(handle) and not fw.delete_rule(handle)
    assert not connect(factory, "10.9.1.1")[1].disconnecting
    with pytest.raises(RulesError):
        fw.add_rule("input", "ip saddr @missing drop")


def test_proxy_v1_and_v2_from_a_trusted_source_give_the_real_address():
    rules = "proxy { trusted 127.0.0.2; } chain input { ip saddr 192.0.2.0/24 drop; }"
    fw, factory, inner, _, logged = make(rules)
    for header, real in (
        (proxyproto.v1_header(("203.0.113.5", 4000), ("127.0.0.1", 7070)), "203.0.113.5"),
        (proxyproto.v2_header(("2001:db8::5", 4000), ("::1", 7070)), "2001:db8::5"),
    ):
        protocol, transport = connect(factory, "127.0.0.2")
        protocol.dataReceived(header[:5])
        assert protocol.wrappedProtocol is None
        protocol.dataReceived(header[5:] + b"hello\n")
        assert protocol.wrappedProtocol.data == b"hello\n"
        assert protocol.getPeer().host == real and inner.built[-1].host == real
        (entry,) = [e for e in fw.conntrack if e.original[0].startswith(("203", "[2001"))][-1:]
        assert entry.translated[0] == "127.0.0.2:40000"
    # the real address meets the filter
    protocol, transport = connect(factory, "127.0.0.2")
    protocol.dataReceived(proxyproto.v1_header(("192.0.2.1", 1), ("127.0.0.1", 7070)))
    assert transport.disconnecting
    assert "firewall drop address=192.0.2.1 listener=jsonim rule=1" in lines(logged)


def test_a_trusted_source_must_send_a_valid_header_in_time():
    fw, factory, _, clock, logged = make("proxy { trusted 127.0.0.2; }")
    protocol, garbage = connect(factory, "127.0.0.2")
    protocol.dataReceived(b"hello\n")
    assert garbage.disconnecting
    _, silent = connect(factory, "127.0.0.2")
    clock.advance(fw.proxy_header_timeout_s)
    assert silent.disconnecting
    assert any("rule=proxy-header-timeout" in line for line in lines(logged))


def test_an_untrusted_source_cannot_claim_an_address():
    _, factory, _, _, _ = make("proxy { trusted 127.0.0.2; }")
    protocol, _ = connect(factory, "127.0.0.3")
    header = proxyproto.v1_header(("203.0.113.5", 4000), ("127.0.0.1", 7070))
    protocol.dataReceived(header)
    assert protocol.getPeer().host == "127.0.0.3"
    assert protocol.wrappedProtocol.data == header  # the protocol sees it as data


def test_proxy_parser_edge_cases():
    assert proxyproto.parse(b"PROXY UNKNOWN\r\n").source is None
    assert proxyproto.parse(b"PRO") is None
    with pytest.raises(proxyproto.ProxyError):
        proxyproto.parse(b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n")
    with pytest.raises(proxyproto.ProxyError):
        proxyproto.parse(b"GET / HTTP/1.1\r\n")
    with pytest.raises(proxyproto.ProxyError):
        proxyproto.parse(b"PROXY " + b"x" * 200)
    local = proxyproto.V2_SIGNATURE + bytes([0x20, 0x00, 0, 0])
    assert proxyproto.parse(local).source is None


def test_role_rules_apply_once_the_protocol_knows_the_role():
    rules = "chain input { policy accept; role agent ip saddr 10.0.0.0/8 accept; role agent drop; }"
    _fw, factory, _, _, _ = make(rules)
    inside, t1 = connect(factory, "10.0.0.1")
    outside, t2 = connect(factory, "192.0.2.1")
    assert not t1.disconnecting and not t2.disconnecting
    assert inside.firewall_role("agent") and not t1.disconnecting
    assert not outside.firewall_role("agent") and t2.disconnecting
    customer, t3 = connect(factory, "192.0.2.2")
    assert customer.firewall_role("customer") and not t3.disconnecting


def test_outbound_snat_binds_the_source_and_the_output_chain_filters():
    reactor = MemoryReactorClock()
    fw = Firewall(reactor)
    fw.apply(
        "nat { snat to 127.0.0.0/8 from 127.0.0.5; }"
        " chain output { ip daddr 10.0.0.0/8 tcp dport 22 drop; }"
    )
    out = FirewalledReactor(reactor, fw)
    out.connectTCP("127.0.0.1", 5347, ClientFactory())
    out.connectTCP("192.0.2.1", 5347, ClientFactory(), bindAddress=("192.0.2.99", 0))
    (_, _, _, _, bind1), (_, _, _, _, bind2) = reactor.tcpClients
    assert bind1 == ("127.0.0.5", 0) and bind2 == ("192.0.2.99", 0)
    failed = []

    class Watching(ClientFactory):
        def clientConnectionFailed(self, connector, reason):
            failed.append(reason)

    out.connectTCP("10.1.1.1", 22, Watching())
    reactor.advance(0)
    assert len(reactor.tcpClients) == 2 and failed[0].check(ConnectionRefusedError)
    assert out.seconds() == reactor.seconds()  # everything else is the reactor's


def test_outbound_connections_are_tracked():
    reactor = MemoryReactorClock()
    fw = Firewall(reactor)
    out = FirewalledReactor(reactor, fw)
    out.connectTCP("127.0.0.1", 5347, ClientFactory.forProtocol(Recording))
    wrapping = reactor.tcpClients[0][2]
    protocol = wrapping.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5347))
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.5", 40001),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 5347),
    )
    protocol.makeConnection(transport)
    protocol.write(b"abc")
    protocol.dataReceived(b"defg")
    (entry,) = list(fw.conntrack)
    assert (entry.direction, entry.bytes_in, entry.bytes_out) == ("out", 3, 4)
    assert entry.translated == ("127.0.0.5:40001", "127.0.0.1:5347")
    protocol.connectionLost(None)
    assert not list(fw.conntrack)


def test_identity_translation_of_text():
    fw = Firewall(Clock())
    fw.apply(
        'translate { host db01.corp.internal -> "our systems"; host *.lan.example -> "[host]";'
        ' addr 10.0.0.0/8 -> "[internal]"; addr fd00::/8 -> "[internal6]";'
        ' text "anna@corp.example" -> "Anna"; }'
    )
    said = (
        "Ask DB01.corp.internal or pc7.lan.example at 10.1.2.3 / fd00::1 (anna@corp.example);"
        " not 8.8.8.8, db01.corp.internal.com or 10.1.2.3.4"
    )
    assert fw.translate_text(said) == (
        "Ask our systems or [host] at [internal] / [internal6] (Anna);"
        " not 8.8.8.8, db01.corp.internal.com or 10.1.2.3.4"
    )


def test_reload_keeps_the_running_rules_when_the_file_is_bad(tmp_path):
    fw = Firewall(Clock())
    path = tmp_path / "fw.rules"
    path.write_text(RULES)
    fw.load_file(path)
    running = fw.ruleset
    path.write_text("chain nowhere { }")
    assert not fw.reload() and fw.ruleset is running
    path.write_text("chain input { policy drop; }")
    assert fw.reload() and fw.ruleset.chains["input"].policy == "drop"


def test_sweeping_runs_on_the_injected_clock():
    clock = Clock()
    fw = Firewall(clock)
    fw.ban("10.0.0.1", 1.5)
    fw.start(1)
    clock.advance(1)
    assert fw.bans
    clock.advance(1)
    assert not fw.bans
    fw.stop()
    assert not clock.getDelayedCalls()


def test_a_connection_every_role_would_refuse_is_refused_at_once():
    rules = "chain input { role agent reject; ip saddr 10.0.0.13 drop; role customer drop; }"
    fw, factory, _, _, logged = make(rules)
    assert connect(factory, "10.0.0.13")[1].disconnecting  # agent: reject, customer: drop
    assert lines(logged) == ["firewall drop address=10.0.0.13 listener=jsonim rule=2"]
    fw.apply("chain input { role agent accept; role customer accept; policy drop; }")
    protocol, transport = connect(factory, "10.0.0.14")  # every role accepted
    assert not transport.disconnecting and not protocol.flow.pending_role


@pytest.mark.parametrize("protocol", ["http", "tcp"])
def test_a_connection_without_a_login_has_no_role_so_no_role_rule_matches_it(protocol):
    fw, _, _, _, _ = make("chain input { role agent drop; role customer drop; }")
    roleless = fw.admit("admin", protocol, "10.0.0.15")
    assert (roleless.verdict, roleless.handle, roleless.pending_role) == ("accept", None, False)
    assert fw.admit("jsonim", "jsonim", "10.0.0.15").verdict == "drop"
    fw.apply("chain input { policy drop; role agent accept; }")
    assert fw.admit("metrics", protocol, "10.0.0.16").verdict == "drop"
    assert fw.admit("jsonim", "jsonim", "10.0.0.16").pending_role
