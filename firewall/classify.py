"""A chain compiled for first-match lookup without scanning every rule.

Rules that name literal source (or destination) networks are indexed by prefix length
and network number, as :class:`firewall.addrset.PrefixSet` does; the others (sets,
listeners, no address) stay in a short list of candidates tried for every connection.
A lookup merges the two in rule order and returns the first rule whose conditions hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from firewall.addrset import IP, PrefixSet
from firewall.ruleset import Chain, Rule


class Verdict(NamedTuple):
    """The outcome of a chain: a verdict (None while pending) and the rule that gave it."""

    verdict: str | None
    handle: int | None
    logs: list[int]
    log: bool = False
    pending: bool = False


# A rule's limit: (handle, rule, address key) -> True while under its rate.
LimitCheck = Callable[[int, Rule, "int | None"], bool]
_NO_LOGS: list[int] = []


class CompiledChain:
    """One chain's rules, indexed for :meth:`evaluate`."""

    def __init__(self, chain: Chain, sets: dict[str, PrefixSet], *, output: bool = False) -> None:
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
        # Their outcome, made once (Verdict is immutable).
        self._decided = [
            Verdict(r.verdict, h, _NO_LOGS, r.log) if simple else None
            for (h, r), simple in zip(chain.rules, self._simple, strict=True)
        ]
        self._policy = Verdict(chain.policy, None, _NO_LOGS)
        for i, (_, rule) in enumerate(chain.rules):
            nets = rule.daddr if output else rule.saddr
            if not nets:
                self._generic.append(i)
                continue
            for net in nets:
                bits = net.max_prefixlen
                number = int(net.network_address) >> (bits - net.prefixlen)
                index[bits].setdefault(net.prefixlen, {}).setdefault(number, []).append(i)
        # bits -> [(shift, table)], longest prefix first
        self._probes = {
            bits: [(bits - length, table) for length, table in sorted(by_len.items(), reverse=True)]
            for bits, by_len in index.items()
        }

    def candidates(self, ip: IP | None) -> list[int]:
        """Indexes of the rules that may match ``ip``, in rule order."""
        if ip is None:
            return self._generic
        bits, value = ip
        hits: list[int] | None = None
        for shift, table in self._probes[bits]:
            found = table.get(value >> shift)
            if found:
                hits = found if hits is None else hits + found
        if hits is None:
            return self._generic
        if len(hits) > 1:
            hits = sorted(hits)
        if not self._generic or (hits[0] < self._generic[0] and self._simple[hits[0]]):
            return hits  # the first hit decides before any generic rule (see evaluate)
        # Disjoint: rules with networks are never generic. (A rule hit twice through
        # two of its networks is tried twice, harmlessly.)
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
        logs = _NO_LOGS
        rules = self._rules
        candidates = self.candidates(ip)
        if candidates:
            # The common case first: an address rule ahead of every generic rule.
            first = candidates[0]
            decided = self._decided[first]
            if decided is not None and (not self._generic or first <= self._generic[0]):
                return decided
        else:
            return self._policy
        for i in candidates:
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
            return Verdict(rule.verdict, handle, logs, rule.log)
        return Verdict(self.policy, None, logs) if logs else self._policy
