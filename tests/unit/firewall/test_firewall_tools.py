"""The admin tools without sockets: DNAT targets in the rules file, rule editing and
stable handles, listings and the rules file written back, explaining a verdict, bans
of networks kept in a file, role-rule limits taken once, and the firewall's tallies."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHostnameResolver
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, formatEvent
from zope.interface import implementer

from firewall import edit, render, trace
from firewall.engine import Firewall
from firewall.natrules import Backend, HealthCheck
from firewall.outbound import FirewalledReactor
from firewall.persist import BanStore
from firewall.ruleset import RulesError, parse
from firewall.wrapper import wrap

NAT = """nat {
    dnat listener desk to { 10.0.0.5:5222, [fd00::5]:5222, 10.0.0.6:5222 backup }
        balance leastconn check interval 1 timeout 0.5 fall 2 rise 3
        timeout connect 2 timeout idle 300 send-proxy-v2;
    dnat listener lan to db.corp.internal:5432;
}"""


def quiet() -> Firewall:
    fw = Firewall(Clock())
    fw._log = Logger(observer=lambda event: None)
    return fw


def test_dnat_targets_with_backends_and_haproxy_options():
    rs = parse(NAT)
    desk = rs.dnat["desk"]
    assert desk.backends == (
        Backend("10.0.0.5", 5222),
        Backend("fd00::5", 5222),
        Backend("10.0.0.6", 5222, backup=True),
    )
    assert desk.balance == "leastconn"
    assert desk.check == HealthCheck(interval_s=1, timeout_s=0.5, fall=2, rise=3)
    assert (desk.connect_timeout_s, desk.idle_timeout_s, desk.send_proxy) == (2, 300, 2)
    assert rs.dnat["lan"].backends == (Backend("db.corp.internal", 5432),)
    again = parse(render.text_of(rs))
    assert again.dnat == rs.dnat


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("dnat listener a to 10.0.0.5:0;", "is not HOST:PORT"),
        ("dnat listener a to { 10.0.0.5:1 backup };", "every backend is a backup"),
        ("dnat listener a to 10.0.0.5:1 balance random;", "balance takes one of"),
        ("dnat listener a to 10.0.0.5:1 send-proxy send-proxy-v2;", "given twice"),
        ("dnat listener a to 10.0.0.5:1 timeout connect 0;", "expected seconds"),
        ("dnat listener a to 10.0.0.5:1 check fall 0;", "fall takes a count"),
        ("dnat listener a to 10.0.0.5:1 weight 3;", "unknown dnat option 'weight'"),
    ],
)
def test_dnat_mistakes_name_the_line(statement, problem):
    with pytest.raises(RulesError, match=problem) as e:
        parse(f"nat {{\n{statement}\n}}", "fw.rules")
    assert str(e.value).startswith("fw.rules:2:")


def test_rules_with_comments_and_handles_in_the_file():
    rs = parse(
        "chain output { ip daddr 10.0.0.9 drop handle 40; }\n"
        'chain input { ip saddr 10.0.0.1 drop comment "a note"; ip saddr 10.0.0.2 accept; }'
    )
    assert [(chain, h) for chain, h, _ in rs.rules()] == [
        ("input", 1),
        ("input", 2),
        ("output", 40),
    ]
    assert rs.next_handle == 41
    assert rs.chains["input"].rules[0][1].comment == "a note"
    text = render.text_of(rs)
    assert 'ip saddr 10.0.0.1 drop comment "a note" handle 1;' in text
    assert parse(text).chains["output"].rules == rs.chains["output"].rules
    with pytest.raises(RulesError, match="handle 3 given twice"):
        parse("chain input { ip saddr 10.0.0.1 drop handle 3; ip saddr 10.0.0.2 drop handle 3; }")
    with pytest.raises(RulesError, match="must end the rule"):
        parse("chain input { drop ip saddr 10.0.0.1; }")


def test_handles_survive_an_apply_and_edits_never_renumber():
    fw = quiet()
    fw.apply(
        "chain input { ip saddr 10.0.0.1 drop; ip saddr 10.0.0.2 drop; ip saddr 10.0.0.3 drop; }"
    )
    fw.apply(
        "chain input { ip saddr 10.0.0.3 drop; ip saddr 10.0.0.9 drop; ip saddr 10.0.0.1 drop; }"
    )
    assert [(h, r.text) for _, h, r in fw.ruleset.rules()] == [
        (3, "ip saddr 10.0.0.3 drop"),
        (5, "ip saddr 10.0.0.9 drop"),
        (1, "ip saddr 10.0.0.1 drop"),
    ]
    first = fw.add_rule("input", "ip saddr 10.1.0.0/16 drop", index=0)
    before = fw.add_rule("input", "ip saddr 10.2.0.0/16 drop", before=1)
    after = fw.add_rule("input", "ip saddr 10.3.0.0/16 drop", after=3, comment="after three")
    assert [h for _, h, _ in fw.ruleset.rules()] == [first, 3, after, 5, before, 1]
    assert fw.replace_rule(5, "ip saddr 10.0.0.10 reject")
    assert [h for _, h, _ in fw.ruleset.rules()] == [first, 3, after, 5, before, 1]
    assert fw.admit("jsonim", "jsonim", "10.0.0.10").verdict == "reject"
    with pytest.raises(RulesError, match="no rule with handle 77"):
        fw.add_rule("input", "drop", after=77)
    assert not fw.replace_rule(77, "drop") and not fw.delete_rule(77)


def test_set_elements_change_the_running_set_at_once():
    fw = quiet()
    fw.apply(
        "set bad { type addr; elements = { 192.0.2.0/24 } }\nchain input { ip saddr @bad drop; }"
    )
    compiled = fw.chain("input")
    answer = edit.set_elements(fw.ruleset, "bad", ["198.51.100.7", "::ffff:203.0.113.9"], [])
    assert answer == {"set": "bad", "added": 2, "deleted": 0, "size": 3}
    assert fw.chain("input") is compiled  # nothing recompiled
    assert fw.admit("jsonim", "jsonim", "203.0.113.9").verdict == "drop"
    edit.set_elements(fw.ruleset, "bad", [], ["192.0.2.0/24", "10.0.0.1"])
    assert fw.admit("jsonim", "jsonim", "192.0.2.7").verdict == "accept"
    with pytest.raises(RulesError, match="no set named 'nope'"):
        edit.set_elements(fw.ruleset, "nope", ["10.0.0.1"], [])
    with pytest.raises(RulesError, match="not an IP address"):
        edit.set_elements(fw.ruleset, "bad", ["10.0.0.300"], [])


def test_listings_summarise_large_sets_from_a_snapshot():
    fw = quiet()
    elements = ", ".join(f"10.{i // 256}.{i % 256}.1" for i in range(500))
    fw.apply(
        f"set big {{ type addr; elements = {{ {elements} }} }}\n"
        "set small { type addr; elements = { 192.0.2.1 } }\n"
        "chain input { ip saddr @big drop; }"
    )
    snap = fw.snapshot()
    edit.set_elements(fw.ruleset, "small", ["192.0.2.2"], [])  # after the snapshot
    text = render.render(snap, counters=True, handles=True)
    assert "set big { type addr; elements = { … 500 elements (fw list --full) } }" in text
    assert "set small { type addr; elements = { 192.0.2.1 } }" in text
    with pytest.raises(RulesError):
        parse(text)  # a summary is not a rules file
    full = render.render(fw.snapshot(full=True))
    assert "10.1.243.1" in full and "192.0.2.2" in full
    assert parse(full).sets["big"].networks() == fw.ruleset.sets["big"].networks()


def test_explain_without_taking_anything():
    fw = quiet()
    fw.apply(
        "set bad { type addr; elements = { 192.0.2.0/24 } }\n"
        "chain input { ip saddr @bad drop; ip saddr 10.0.0.0/8 limit rate 1/hour burst 1 accept;"
        " role agent drop; }\n"
        "chain output { ip daddr 10.9.0.0/16 tcp dport 5432 drop; }\n"
        "nat { snat to 10.0.0.0/8 from 10.0.0.2; }\nlimits { concurrent 1; }"
    )
    assert trace.explain(fw, "192.0.2.9")["rule"] == {"handle": 1, "rule": "ip saddr @bad drop"}
    for _ in range(3):  # asking spends nothing
        assert trace.explain(fw, "10.1.1.1")["verdict"] == "accept"
    assert fw.admit("jsonim", "jsonim", "10.1.1.1").verdict == "accept"
    over = trace.explain(fw, "10.1.1.1", role="customer")
    assert over["verdict"] == "accept" and over["reason"] == "policy"
    assert any("over its limit rate" in step["result"] for step in over["steps"])
    pending = trace.explain(fw, "198.51.100.1")
    assert pending["verdict"] == "pending"
    assert pending["roles"]["agent"]["verdict"] == "drop"
    flow = fw.open_flow(
        "jsonim", "jsonim", "198.51.100.1", fw.admit("jsonim", "jsonim", "198.51.100.1")
    )
    limited = trace.explain(fw, "198.51.100.1", role="customer")
    assert (limited["verdict"], limited["reason"]) == ("drop", "limit concurrent")
    fw.close_flow(flow)
    fw.ban("198.51.100.0/24")
    assert trace.explain(fw, "198.51.100.1")["reason"] == "banned"
    out = trace.explain(fw, "10.9.1.1", port=5432, chain="output")
    assert (out["verdict"], out["rule"]["handle"]) == ("drop", 4)
    assert trace.explain(fw, "10.8.1.1", port=5432, chain="output")["snat"] == "10.0.0.2"
    with pytest.raises(ValueError, match="not an IP address"):
        trace.explain(fw, "db.corp.internal")


def test_network_bans_expire_close_connections_and_outlive_a_restart(tmp_path):
    clock = Clock()
    clock.advance(1_700_000_000)
    fw = Firewall(clock)
    fw._log = Logger(observer=lambda event: None)
    factory = wrap(
        Factory.forProtocol(Protocol),
        listener="jsonim",
        max_connections=10,
        max_connections_per_address=10,
        firewall=fw,
    )
    transport = StringTransport(peerAddress=IPv4Address("TCP", "203.0.113.7", 4000))
    factory.buildProtocol(transport.getPeer()).makeConnection(transport)
    store = BanStore(fw, tmp_path / "bans", clock)
    assert fw.ban("203.0.113.0/24", 60, close=True) == "203.0.113.0/24"
    assert transport.disconnecting or transport.disconnected
    fw.ban("2001:db8::/32")
    fw.ban("2001:db8:1:2::9")  # an IPv6 address bans its /64
    assert [b["address"] for b in fw.ban_list()] == [
        "2001:db8:1:2::/64",
        "203.0.113.0/24",
        "2001:db8::/32",
    ]
    assert fw.admit("jsonim", "jsonim", "203.0.113.200").reason == "banned"
    assert fw.admit("jsonim", "jsonim", "2001:db8:ffff::1").reason == "banned"
    clock.advance(1)  # the write is made a moment after the change
    assert "203.0.113.0/24 1700000060.000\n" in store.path.read_text()
    restarted = Firewall(clock)
    assert BanStore(restarted, tmp_path / "bans", clock).load() == 3
    assert restarted.admit("jsonim", "jsonim", "203.0.113.9").reason == "banned"
    clock.advance(60)
    assert BanStore(Firewall(clock), tmp_path / "bans", clock).load() == 2
    fw.sweep()
    assert fw.admit("jsonim", "jsonim", "203.0.113.9").verdict == "accept"
    assert fw.unban("2001:db8::/32") and not fw.unban("2001:db8::/32")


def test_a_role_rules_limit_counts_each_connection_once_for_its_own_role():
    fw = quiet()
    fw.apply(
        "chain input { role customer limit rate 1/hour burst 2 accept; role customer reject;"
        " role agent limit rate 1/hour burst 1 accept; role agent reject; }"
    )

    def connect(role: str) -> str:
        decision = fw.admit("jsonim", "jsonim", "10.0.0.1")
        flow = fw.open_flow("jsonim", "jsonim", "10.0.0.1", decision)
        return fw.role_known(flow, role).verdict

    assert [connect("customer") for _ in range(3)] == ["accept", "accept", "reject"]
    assert [connect("agent") for _ in range(2)] == ["accept", "reject"]


def test_the_tallies_metrics_read():
    fw = quiet()
    fw.apply("chain input { ip saddr 10.0.0.1 drop; }\nlimits { concurrent 1; }")
    fw.open_flow("irc", "irc", "10.0.0.2", fw.admit("irc", "irc", "10.0.0.2"))
    fw.admit("irc", "irc", "10.0.0.1")
    fw.admit("irc", "irc", "10.0.0.2")
    assert fw.stats.verdicts() == {("irc", "accept"): 1, ("irc", "drop"): 2}
    assert fw.stats.limit_hits == {("irc", "concurrent"): 1}


@implementer(IHostnameResolver)
class _Names:
    """Resolves names from a table, at once."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def resolveHostName(self, receiver, hostName, portNumber=0, **kwargs):  # noqa: N802, N803
        receiver.resolutionBegan(None)
        for host in self.table.get(hostName, []):
            receiver.addressResolved(IPv4Address("TCP", host, portNumber))
        receiver.resolutionComplete()


def test_a_host_name_is_resolved_before_the_output_chain_and_snat_judge_it():
    reactor = MemoryReactorClock()
    reactor.nameResolver = _Names({"db.lan": ["10.9.0.1", "10.8.0.1"], "none.lan": []})
    fw = quiet()
    fw.apply(
        "chain output { ip daddr 10.9.0.0/16 drop; }\nnat { snat to 10.0.0.0/8 from 10.0.0.2; }"
    )
    out = FirewalledReactor(reactor, fw)
    failed: list = []

    class Client(ClientFactory):
        def clientConnectionFailed(self, connector, reason):
            failed.append((connector, reason.getErrorMessage()))

    connector = out.connectTCP("db.lan", 5432, Client())
    # The first address is refused by the output chain; the second is taken, from SNAT.
    ((host, port, _, _, bind),) = reactor.tcpClients
    assert (host, port, bind) == ("10.8.0.1", 5432, ("10.0.0.2", 0))
    assert connector.getDestination() == IPv4Address("TCP", "10.8.0.1", 5432)
    fw.apply("chain output { policy drop; }")
    refused = out.connectTCP("db.lan", 5432, Client())
    out.connectTCP("none.lan", 5432, Client())
    assert [(c is refused, why) for c, why in failed] == [
        (True, "Connection was refused by other side: db.lan:5432 refused by the firewall."),
        (False, "DNS lookup failed: none.lan: no address."),
    ]


def test_summary_lines_are_written_after_the_turn_a_hundred_a_turn():
    clock = Clock()
    fw = Firewall(clock)
    lines: list[dict] = []
    fw._log = Logger(observer=lines.append)
    fw.log_connections = True
    for i in range(250):
        host = f"10.0.{i // 256}.{i % 256}"
        flow = fw.open_flow("irc", "irc", host, fw.admit("irc", "irc", host))
        fw.close_flow(flow)
        fw.ended(flow, None, "client")
    assert lines == []

    def next_turn() -> None:
        # A real reactor runs what a call schedules for "now" in its next turn.
        (call,) = clock.getDelayedCalls()
        func, args, kw = call.func, call.args, call.kw
        call.cancel()
        func(*args, **kw)

    next_turn()
    assert len(lines) == 100
    assert formatEvent(lines[0]) == (
        "firewall close address=10.0.0.0 listener=irc duration=0.000s bytes_in=0 bytes_out=0"
        " verdict=accept rule=- role=- end=client"
    )
    next_turn()
    assert len(lines) == 200
    fw.stop()  # the gateway stops: the rest at once
    assert len(lines) == 250
    clock.advance(0)
    assert len(lines) == 250
