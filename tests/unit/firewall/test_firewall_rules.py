"""The rules file: parsing, validation, rendering, prefix sets and the chain index."""

from __future__ import annotations

import ipaddress

import pytest

from firewall.addrset import PrefixSet, group_key, key_text, parse_ip, parse_network
from firewall.classify import CompiledChain
from firewall.render import text_of
from firewall.ruleset import RulesError, parse

EXAMPLE = """
# blocked networks
set blocked { type addr; elements = { 203.0.113.0/24, 2001:db8::/32 } }
chain input {
    policy accept;
    ip saddr @blocked drop;            # a comment after a rule
    ip saddr { 192.0.2.7, 192.0.2.8 } reject;
    listener irc role customer limit rate 10/second burst 20 accept;
    ip saddr 10.0.0.0/8 log accept;
}
chain output { policy accept; ip daddr 198.51.100.0/24 tcp dport 5347 drop; }
limits { concurrent 5; connections rate 2/second burst 3; messages rate 20/second burst 40;
         lag 2; disconnect after 3; ban after 4 for 600; ipv6 prefix 56; }
nat { dnat listener desk to 10.0.0.5:5222; snat to 198.51.100.0/24 from 192.0.2.10;
      snat to 198.51.100.128/25 from 192.0.2.11; }
translate { host db01.corp.internal -> "our systems"; addr 10.0.0.0/8 -> "[internal]"; }
proxy { trusted 127.0.0.2, 10.1.0.0/16; }
conntrack { timeout new 5; timeout established 60; timeout closing 2; }
"""


def ip(text: str):
    return ipaddress.ip_address(text)


def never(*_):
    return False


def always(*_):
    return True


def test_the_example_parses_into_every_table():
    rs = parse(EXAMPLE, "fw.rules")
    assert [h for _, h, _ in rs.rules()] == [1, 2, 3, 4, 5]
    assert [r.text for _, _, r in rs.rules()] == [
        "ip saddr @blocked drop",
        "ip saddr { 192.0.2.7, 192.0.2.8 } reject",
        "listener irc role customer limit rate 10/second burst 20 accept",
        "ip saddr 10.0.0.0/8 log accept",
        "ip daddr 198.51.100.0/24 tcp dport 5347 drop",
    ]
    assert ip("203.0.113.9") in rs.sets["blocked"]
    assert ip("2001:db8:1::1") in rs.sets["blocked"]
    assert rs.limits.concurrent == 5 and rs.limits.ban_after == 4 and rs.limits.ipv6_prefix == 56
    assert rs.limits.connections.per_second == 2 and rs.limits.connections.burst == 3
    assert [b.address for b in rs.dnat["desk"].backends] == [("10.0.0.5", 5222)]
    # the most specific SNAT network first
    assert [str(n) for n, _ in rs.snat] == ["198.51.100.128/25", "198.51.100.0/24"]
    assert ip("127.0.0.2") in rs.trusted and ip("10.1.2.3") in rs.trusted
    assert rs.timeouts == {"new": 5, "established": 60, "closing": 2}


def test_rendering_parses_back_to_the_same_text():
    rs = parse(EXAMPLE, "fw.rules")
    again = parse(text_of(rs), "rendered")
    assert text_of(again) == text_of(rs)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("chain input { ip saddr 10.0.0.1/8 drop; }", "fw:1: '10.0.0.1/8' is not an IP"),
        ("chain input {\n ip saddr @nope drop; }", "fw:2: no set named 'nope'"),
        ("chain forward { }", "chain must be one of input, output"),
        ("chain input { drop listener x; }", "the verdict 'drop' must end the rule"),
        ("chain input { listener x; }", "a rule needs a verdict"),
        ("chain input { frobnicate drop; }", "unknown rule word 'frobnicate'"),
        ("chain input { limit rate 10/fortnight accept; }", "is not a rate"),
        ("chain input { policy maybe; }", "policy must be accept or drop"),
        ("chain input { ip daddr 10.0.0.1 drop; }", "ip daddr only matches in chain output"),
        ("chain input { }\nchain input { }", "fw:2: chain 'input' defined twice"),
        ("limits { concurrent many; }", "expected a whole number"),
        ("nat { dnat listener desk to nowhere; }", "is not HOST:PORT"),
        ("proxy { trusted example.com; }", "is not an IP address"),
        ("set s { elements = { 1.2.3.4 }", "expected '}'"),
        ("wat", "expected set, chain"),
        ('translate { host "" -> "x"; }', "empty match"),
    ],
)
def test_mistakes_name_the_line(text, problem):
    with pytest.raises(RulesError) as e:
        parse(text, "fw")
    assert problem in str(e.value)


def test_prefix_set_matches_the_longest_prefix_for_both_families():
    s = PrefixSet([parse_network(n) for n in ("10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32")])
    assert s.match(ip("10.1.2.3")) == 16
    assert s.match(ip("10.2.2.3")) == 8
    assert s.match(ip("11.0.0.1")) is None
    assert ip("2001:db8:ffff::1") in s and ip("2001:db9::1") not in s
    s.discard(parse_network("10.1.0.0/16"))
    assert s.match(ip("10.1.2.3")) == 8 and len(s) == 2
    assert [str(n) for n in s.networks()] == ["10.0.0.0/8", "2001:db8::/32"]


def test_a_hundred_thousand_entries_take_one_probe_per_length():
    s = PrefixSet(ipaddress.IPv4Network((0x0A000000 + i, 32)) for i in range(100_000))
    assert len(s) == 100_000
    assert ip("10.1.134.159") in s and ip("10.1.134.160") not in s


def test_ipv6_addresses_group_by_the_prefix():
    def key(text, prefix):
        return key_text(group_key(parse_ip(text), prefix), prefix)

    assert key("2001:db8:1:2:3::4", 64) == "2001:db8:1:2::/64"
    assert key("2001:db8:1:2:3::4", 48) == "2001:db8:1::/48"
    assert key("192.0.2.1", 64) == "192.0.2.1"
    assert key("::ffff:192.0.2.1", 64) == "192.0.2.1"
    assert parse_ip("10.0.0.1") == (32, 0x0A000001)
    with pytest.raises(ValueError):
        parse_ip("10.0.0")


def test_the_chain_index_keeps_first_match_order():
    rules = "chain input { policy drop; ip saddr 10.0.0.0/8 reject; listener irc accept; "
    rules += "ip saddr 10.1.0.0/16 accept; ip saddr 10.1.2.3 drop; }"
    rs = parse(rules)
    chain = CompiledChain(rs.chains["input"], rs.sets)
    assert chain.evaluate(parse_ip("10.1.2.3"), always, listener="jsonim").verdict == "reject"
    assert chain.evaluate(parse_ip("192.0.2.1"), always, listener="irc").handle == 2
    assert chain.evaluate(parse_ip("192.0.2.1"), always, listener="jsonim").verdict == "drop"
    assert chain.evaluate(None, always, listener="jsonim").verdict == "drop"


def test_a_rule_with_a_limit_does_not_match_over_its_rate():
    rs = parse("chain input { limit rate 1/second accept; policy drop; }")
    chain = CompiledChain(rs.chains["input"], rs.sets)
    assert chain.evaluate(parse_ip("10.0.0.1"), always).verdict == "accept"
    assert chain.evaluate(parse_ip("10.0.0.1"), never).verdict == "drop"


def test_a_role_rule_is_pending_until_the_role_is_known():
    rs = parse("chain input { policy drop; role agent ip saddr 10.0.0.0/8 accept; }")
    chain = CompiledChain(rs.chains["input"], rs.sets)
    pending = chain.evaluate(parse_ip("10.0.0.1"), always)
    assert pending.pending and pending.verdict is None
    assert chain.evaluate(parse_ip("10.0.0.1"), always, role="agent").verdict == "accept"
    assert chain.evaluate(parse_ip("10.0.0.1"), always, role="customer").verdict == "drop"
    assert chain.evaluate(parse_ip("192.0.2.1"), always).verdict == "drop"


def test_log_rules_are_collected_on_the_way():
    rs = parse("chain input { log; ip saddr 10.0.0.1 log drop; }")
    chain = CompiledChain(rs.chains["input"], rs.sets)
    verdict = chain.evaluate(parse_ip("10.0.0.1"), always)
    assert (verdict.logs, verdict.verdict, verdict.log) == ([1], "drop", True)


def test_output_rules_match_destination_and_port():
    rs = parse("chain output { ip daddr 10.0.0.0/8 tcp dport { 22, 23 } drop; }")
    chain = CompiledChain(rs.chains["output"], rs.sets, output=True)
    assert chain.evaluate(parse_ip("10.0.0.1"), always, port=22).verdict == "drop"
    assert chain.evaluate(parse_ip("10.0.0.1"), always, port=80).verdict == "accept"


def test_the_cycle_collector_waits_for_a_parse_and_comes_back_as_it_was():
    import gc

    from firewall.ruleset import without_cycle_collection

    assert gc.isenabled()
    with without_cycle_collection():
        assert not gc.isenabled()
        with without_cycle_collection():  # overlapping parses (threads)
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RulesError):
        parse("chain input { ip saddr nowhere drop; }")
    assert gc.isenabled()
    gc.disable()
    try:
        with without_cycle_collection():
            pass
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()
