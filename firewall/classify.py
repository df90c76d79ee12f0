"""A chain compiled for first-match lookup without scanning every rule.

Rules that name literal source (or destination) networks are indexed by prefix length
and network number, as :class:`firewall.addrset.PrefixSet` does; the others (sets,
listeners, no address) stay in a short list of candidates tried for every connection.
A lookup merges the two in rule order and returns the first rule whose conditions hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from firewall.addrset import IP, PrefixSet
from firewall.ruleset import Chain, Rule


class Verdict(NamedTuple):
    """The outcome of a chain: a verdict (None while pending) and the rule that gave it.

    ``counter`` is that rule's counter from the engine's ``counters``, on outcomes made
    when the chain was compiled (the engine then counts without a lookup); else None.
    """

    verdict: str | None
    handle: int | None
    logs: list[int]
    log: bool = False
    pending: bool = False
    counter: Any = None


# A rule's limit: (handle, rule, address key) -> True while under its rate.
LimitCheck = Callable[[int, Rule, "int | None"], bool]
_NO_LOGS: list[int] = []


class CompiledChain:
    """One chain's rules, indexed for :meth:`evaluate`."""

    def __init__(
        self,
        chain: Chain,
        sets: dict[str, PrefixSet],
        *,
        output: bool = False,
        counters: Mapping[int, Any] | None = None,
    ) -> None:
        self.policy = chain.policy
        self._rules = chain.rules
        self._sets = sets
        self._output = output
        # bits -> {prefix length: {network number: [rule index, …]}}
        index: dict[int, dict[int, dict[int, list[int]]]] = {32: {}, 128: {}}
        self._generic: list[int] = []
        # Rules that decide on their networks alone: no other condition, a verdict.
        self._simple = [
            r.verdict is not None
            and not (r.listener or r.protocol or r.dport or r.role or r.limit)
            and (r.daddr_set if output else r.saddr_set) is None
            for _, r in chain.rules
        ]
        self._policy = Verdict(chain.policy, None, _NO_LOGS)
        # Whether a walk may stop at a role rule (then limits need care: see the engine).
        self.has_roles = any(r.role is not None for _, r in chain.rules)
        # Each rule's outcome when it holds (no log rule before it), made once (Verdict
        # is immutable).
        counters = counters or {}
        self._outcome = [
            Verdict(r.verdict, h, _NO_LOGS, r.log, counter=counters.get(h))
            if r.verdict is not None
            else None
            for h, r in chain.rules
        ]
        # The simple rules' alone; one past the last rule, the policy's, for an address
        # no rule can match.
        self._decided: list[Verdict | None] = [
            outcome if simple else None
            for outcome, simple in zip(self._outcome, self._simple, strict=True)
        ]
        self._decided.append(self._policy)
        for i, (_, rule) in enumerate(chain.rules):
            nets = rule.daddr if output else rule.saddr
            if not nets:
                self._generic.append(i)
                continue
            for net in nets:
                bits = net.max_prefixlen
                number = int(net.network_address) >> (bits - net.prefixlen)
                index[bits].setdefault(net.prefixlen, {}).setdefault(number, []).append(i)
        # bits -> [(shift, {network number: its first rule}, {network number: all its
        # rules, where there are several})], longest prefix first. Plain ints for the
        # common single rule: a lookup touches less memory.
        self._probes = {
            bits: [
                (
                    bits - length,
                    {number: found[0] for number, found in table.items()},
                    {number: found for number, found in table.items() if len(found) > 1},
                )
                for length, table in sorted(by_len.items(), reverse=True)
            ]
            for bits, by_len in index.items()
        }
        self._first_generic = self._generic[0] if self._generic else len(chain.rules)

    @property
    def output(self) -> bool:
        """Whether this is the output chain (rules match destinations)."""
        return self._output

    @property
    def rules(self) -> list[tuple[int, Rule]]:
        """The chain's rules as (handle, rule), in order."""
        return self._rules

    def set_has(self, name: str, ip: IP) -> bool:
        """Whether the named set holds ``ip``."""
        return self._sets[name].has(ip)

    def quick(self, ip: IP | None) -> Verdict | None:
        """The outcome when the first rule that may match ``ip`` decides on its networks
        alone (the common case), found without building the candidate list; the policy
        when no rule can match; None when :meth:`evaluate` must walk the candidates."""
        first = self._first_generic
        if ip is not None:
            bits, value = ip
            for shift, firsts, _ in self._probes[bits]:
                found = firsts.get(value >> shift)
                if found is not None and found < first:
                    first = found
        return self._decided[first]

    def candidates(self, ip: IP | None) -> list[int]:
        """Indexes of the rules that may match ``ip``, in rule order."""
        if ip is None:
            return self._generic
        bits, value = ip
        hits: list[int] = []
        for shift, firsts, several in self._probes[bits]:
            number = value >> shift
            found = firsts.get(number)
            if found is not None:
                if several and number in several:
                    hits += several[number]
                else:
                    hits.append(found)
        if not hits:
            return self._generic
        if len(hits) > 1:
            # Once each, though two of a rule's networks hold the address (a log rule
            # logs and counts once).
            hits = sorted(set(hits))
        if not self._generic or (hits[0] < self._generic[0] and self._simple[hits[0]]):
            return hits  # the first hit decides before any generic rule (see evaluate)
        # Disjoint: rules with networks are never generic.
        merged = hits + self._generic
        merged.sort()
        return merged

    def evaluate(
        self,
        ip: IP | None,
        limit: LimitCheck,
        *,
        key: int | None = None,
        listener: str = "",
        protocol: str = "",
        role: str | None = None,
        port: int = 0,
    ) -> Verdict:
        """Run the chain for one connection: the first rule with a verdict that holds.

        ``log`` rules without a verdict that hold are collected on the way. A rule that
        names a role, met before the role is known (``role`` None), stops the walk as
        *pending*: the connection goes on until the role is known, and the chain is
        then run again with it.
        """
        decided = self.quick(ip)
        if decided is not None:
            return decided
        return self.walk(
            ip, limit, key=key, listener=listener, protocol=protocol, role=role, port=port
        )

    def walk(
        self,
        ip: IP | None,
        limit: LimitCheck,
        *,
        key: int | None = None,
        listener: str = "",
        protocol: str = "",
        role: str | None = None,
        port: int = 0,
    ) -> Verdict:
        """:meth:`evaluate` past :meth:`quick`, for a caller that tried that first."""
        logs = _NO_LOGS
        rules = self._rules
        for i in self.candidates(ip):
            handle, rule = rules[i]
            if rule.listener and listener not in rule.listener:
                continue
            if rule.protocol and protocol not in rule.protocol:
                continue
            if rule.dport and port not in rule.dport:
                continue
            name = rule.daddr_set if self._output else rule.saddr_set
            if name is not None and (ip is None or not self._sets[name].has(ip)):
                continue
            if rule.role is not None:
                if role is None:
                    return Verdict(None, handle, logs, pending=True)
                if rule.role != role:
                    continue
            if rule.limit is not None and not limit(handle, rule, key):
                continue
            if rule.verdict is None:
                logs = [*logs, handle]
                continue
            if logs is _NO_LOGS:
                return self._outcome[i]  # type: ignore[return-value]
            return Verdict(rule.verdict, handle, logs, rule.log)
        return Verdict(self.policy, None, logs) if logs else self._policy
