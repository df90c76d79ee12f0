"""``fw check ADDR`` and ``fw trace ADDR``: the verdict a connection would meet, and the
rule that decides it, without a connection (as ``nft monitor trace`` shows a packet).

The walk is the engine's, step by step, taking nothing: a rule's ``limit rate`` and
the connection rate are read, not spent; the concurrent limit is compared with the
connections open now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from firewall.addrset import AddressError, parse_ip
from firewall.ruleset import ROLELESS, ROLES, Rule

if TYPE_CHECKING:
    from firewall.engine import Firewall


def explain(
    fw: Firewall,
    address: str,
    *,
    port: int | None = None,
    listener: str = "",
    protocol: str = "",
    role: str | None = None,
    chain: str = "input",
) -> dict[str, Any]:
    """What becomes of a connection from ``address`` (``input``: to ``listener``) or to
    ``address``:``port`` (``output``): ``verdict`` (accept, drop, reject, or pending
    while a role rule waits for the role), the deciding ``rule`` (None: the policy or a
    limit), ``reason`` and every ``step`` of the walk. ``role`` None: as a connection
    whose role is not known yet, with the outcome for each role."""
    try:
        ip = parse_ip(address)
    except AddressError as e:
        raise ValueError(str(e)) from None
    key = fw.address_key(address)
    steps: list[dict[str, Any]] = []
    if chain == "input" and fw.bans and fw.bans.banned(ip, key):
        steps.append({"step": "bans", "result": "banned"})
        return _answer("drop", None, "banned", steps)
    if chain == "input":
        steps.append({"step": "bans", "result": "not banned"})
    compiled = fw.chain(chain)
    port = port or 0
    if role is None and protocol in ROLELESS:
        role = ""  # a connection without a login: no role rule matches it
    outcome = _walk(fw, compiled, ip, key, listener, protocol, role, port, steps)
    if outcome == "pending":
        per_role = {r: _walk(fw, compiled, ip, key, listener, protocol, r, port, []) for r in ROLES}
        answer = _answer("pending", steps[-1].get("handle"), "waits for the role", steps)
        answer["roles"] = {
            r: {"verdict": v[0], "rule": v[1] and _rule(compiled, v[1])}
            for r, v in per_role.items()
        }
        return answer
    verdict, handle = outcome
    if verdict != "accept" or chain != "input":
        reason = "rule" if handle is not None else "policy"
        answer = _answer(verdict, handle and _rule(compiled, handle), reason, steps)
        if chain == "output" and verdict == "accept":
            answer["snat"] = fw.snat_source(ip)
        return answer
    limit = _limits(fw, key)
    steps.append({"step": "limits", "result": limit or "under every limit"})
    if limit is not None:
        return _answer("drop", None, f"limit {limit}", steps)
    return _answer(
        "accept", handle and _rule(compiled, handle), "rule" if handle else "policy", steps
    )


def _walk(fw, compiled, ip, key, listener, protocol, role, port, steps) -> Any:
    rules = compiled.rules
    candidates = compiled.candidates(ip)
    if len(candidates) < len(rules):
        skipped = len(rules) - len(candidates)
        steps.append({"step": "index", "result": f"{skipped} rules cannot match the address"})
    for i in candidates:
        handle, rule = rules[i]
        why = _mismatch(compiled, rule, ip, listener, protocol, port)
        step: dict[str, Any] = {"step": "rule", "handle": handle, "rule": rule.text}
        if why is None and rule.role is not None:
            if role is None:
                step["result"] = "waits for the role"
                steps.append(step)
                return "pending"
            if rule.role != role:
                why = f"role is {role}" if role else f"{protocol} has no role"
        if why is None and rule.limit is not None and not fw.would_be_under(handle, rule, key):
            why = "over its limit rate"
        if why is not None:
            step["result"] = f"no match ({why})"
            steps.append(step)
            continue
        if rule.verdict is None:
            step["result"] = "match: log"
            steps.append(step)
            continue
        step["result"] = f"match: {rule.verdict}"
        steps.append(step)
        return rule.verdict, handle
    steps.append({"step": "policy", "result": compiled.policy})
    return compiled.policy, None


def _mismatch(compiled, rule: Rule, ip, listener, protocol, port) -> str | None:
    output = compiled.output
    nets = rule.daddr if output else rule.saddr
    if nets and not any(_contains(net, ip) for net in nets):
        return "address"
    name = rule.daddr_set if output else rule.saddr_set
    if name is not None and not compiled.set_has(name, ip):
        return f"not in @{name}"
    if rule.listener and listener not in rule.listener:
        return f"listener is {listener or 'not given'}"
    if rule.protocol and protocol not in rule.protocol:
        return f"protocol is {protocol or 'not given'}"
    if rule.dport and port not in rule.dport:
        return f"port is {port or 'not given'}"
    return None


def _contains(net, ip) -> bool:
    bits, value = ip
    shift = bits - net.prefixlen
    return net.max_prefixlen == bits and value >> shift == int(net.network_address) >> shift


def _limits(fw: Firewall, key: int | None) -> str | None:
    if key is None:
        return None
    limits = fw.ruleset.limits
    if limits.concurrent is not None and fw.concurrent(key) >= limits.concurrent:
        return "concurrent"
    if limits.connections is not None and not fw.connection_rate_allows(key):
        return "connections"
    return None


def _rule(compiled, handle: int) -> dict[str, Any]:
    for h, rule in compiled.rules:
        if h == handle:
            out: dict[str, Any] = {"handle": h, "rule": rule.text}
            if rule.comment is not None:
                out["comment"] = rule.comment
            return out
    return {"handle": handle}


def _answer(verdict: str, rule: Any, reason: str, steps: list) -> dict[str, Any]:
    return {"verdict": verdict, "rule": rule or None, "reason": reason, "steps": steps}
