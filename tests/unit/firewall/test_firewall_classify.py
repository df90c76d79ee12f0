"""The compiled chain decides as a walk of every rule in order would, on random chains,
and counts into the rules' counters."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import Logger

from firewall.addrset import parse_ip
from firewall.classify import CompiledChain
from firewall.engine import Firewall
from firewall.ruleset import parse

# A small address space, so that random rules and addresses overlap often.
NETWORKS = ["10.0.0.0/8", "10.0.0.0/30", "10.0.0.4/30", "10.0.0.1", "10.0.0.5", "fd00::/8"]
ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.5", "10.9.9.9", "192.0.2.1", "fd00::1", "::1"]
CONDITIONS = ["", "listener irc ", "set ", "protocol jsonim "]
ACTIONS = ["accept", "drop", "reject", "log", "log drop"]

rule = st.tuples(
    st.lists(st.sampled_from(NETWORKS), max_size=2, unique=True),
    st.sampled_from(CONDITIONS),
    st.sampled_from(ACTIONS),
)


def rules_text(policy: str, rules: list) -> str:
    lines = []
    for nets, condition, action in rules:
        address = ""
        if condition == "set ":
            condition, address = "", "ip saddr @near "
        elif nets:
            address = f"ip saddr {{ {', '.join(nets)} }} "
        lines.append(f"{condition}{address}{action};")
    return (
        "set near { type addr; elements = { 10.0.0.0/29, fd00::/16 } }\n"
        f"chain input {{ policy {policy}; {' '.join(lines)} }}\n"
    )


def reference(rs, text: str, listener: str, protocol: str) -> tuple[str, int | None, list[int]]:
    """Every rule in order, each condition tested as written."""
    addr = ipaddress.ip_address(text)
    logs: list[int] = []
    for handle, r in rs.chains["input"].rules:
        if r.saddr and not any(addr.version == n.version and addr in n for n in r.saddr):
            continue
        if r.saddr_set is not None and addr not in rs.sets[r.saddr_set]:
            continue
        if r.listener and listener not in r.listener:
            continue
        if r.protocol and protocol not in r.protocol:
            continue
        if r.verdict is None:
            logs.append(handle)
            continue
        return r.verdict, handle, logs
    return rs.chains["input"].policy, None, logs


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["accept", "drop"]),
    st.lists(rule, max_size=8),
    st.sampled_from(["irc", "jsonim"]),
)
# Two networks of one log rule hold the address: it logs once.
@example("accept", [(["10.0.0.0/8", "10.0.0.0/30"], "", "log")], "irc")
def test_first_match_as_a_linear_walk(policy, rules, listener):
    rs = parse(rules_text(policy, rules))
    chain = CompiledChain(rs.chains["input"], rs.sets)
    for text in ADDRESSES:
        got = chain.evaluate(parse_ip(text), lambda *_: True, listener=listener, protocol="jsonim")
        assert (got.verdict, got.handle, list(got.logs)) == reference(
            rs, text, listener, "jsonim"
        ), text


def test_counters_follow_their_rules_across_apply_add_and_delete():
    fw = Firewall(Clock())
    fw._log = Logger(observer=lambda event: None)
    fw.apply("chain input { ip saddr 10.0.0.1 drop; ip saddr 10.0.0.2 accept; }")
    fw.admit("jsonim", "jsonim", "10.0.0.1")
    fw.admit("jsonim", "jsonim", "10.0.0.2")
    fw.apply("chain input { ip saddr 10.0.0.3 drop; ip saddr 10.0.0.1 drop; }")
    handle = fw.add_rule("input", "ip saddr 10.0.0.1 drop")  # same text, new counter
    fw.admit("jsonim", "jsonim", "10.0.0.1")
    fw.admit("jsonim", "jsonim", "10.0.0.3")
    # The unchanged rule keeps its handle (1) and counter across the apply.
    # Handles are never reused: the new rule's is after every one handed out before.
    assert [(r["handle"], r["connections"]) for r in fw.listing()] == [(3, 1), (1, 2), (5, 0)]
    assert handle == 5
    fw.delete_rule(3)
    fw.admit("jsonim", "jsonim", "10.0.0.1")
    assert [(r["handle"], r["connections"]) for r in fw.listing()] == [(1, 3), (5, 0)]
