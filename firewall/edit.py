"""Changes to the running rules short of a whole new file, as ``nft`` makes them.

Rules keep their handles: across ``fw apply`` and SIGHUP (a rule of the same chain and
text keeps the handle it had), ``fw add``/``insert``/``replace``/``delete`` (no other rule
is renumbered) and restarts (``fw save`` writes each rule's handle into the file). So a
handle in a log line or a fail2ban filter keeps naming the same rule.

Each function returns an edited copy of a rule set (chains are copied, never changed in
place, so a listing made in another thread sees one whole version); set elements are
the exception: :func:`set_elements` changes the running set in place, at once, as
``nft add element`` does, without recompiling anything.
"""

from __future__ import annotations

from typing import Any

import attrs

from firewall import ruleset as rules_module
from firewall.addrset import AddressError, parse_network
from firewall.ruleset import Chain, Rule, RulesError, Ruleset


def keep_handles(new: Ruleset, running: Ruleset) -> Ruleset:
    """``new`` (just parsed) with the running handles on its unchanged rules: a rule of
    the same chain and text (the n-th of its kind to the n-th) keeps its handle, unless
    the file names handles itself; the others keep the fresh numbers parsing gave."""
    if not any(chain.rules for chain in running.chains.values()):
        new.next_handle = max(new.next_handle, running.next_handle)
        return new
    given = {rule.handle for _, _, rule in new.rules() if rule.handle is not None}
    old: dict[tuple[str, str], list[int]] = {}
    for chain, handle, rule in running.rules():
        if handle not in given:
            old.setdefault((chain, rule.text), []).append(handle)
    for chain in new.chains.values():
        renumbered = []
        for handle, rule in chain.rules:
            same = old.get((chain.name, rule.text))
            if rule.handle is None and same:
                handle = same.pop(0)
            renumbered.append((handle, rule))
        chain.rules = renumbered
    new.next_handle = max(new.next_handle, running.next_handle)
    return new


def _copy(rs: Ruleset) -> Ruleset:
    chains = {name: Chain(name, c.policy, list(c.rules)) for name, c in rs.chains.items()}
    return attrs.evolve(rs, chains=chains)


def parse_one(rs: Ruleset, chain: str, text: str) -> Rule:
    """One rule statement for ``chain`` of ``rs``, validated (its sets must exist)."""
    if chain not in rules_module.CHAINS:
        raise RulesError(f"rule: no chain {chain!r}")
    tokens = rules_module.tokenize(text, "rule")
    if not tokens:
        raise RulesError("rule: empty")
    parser = rules_module._Parser(tokens, "rule")
    rule = rules_module.parse_rule(tokens, parser, chain)
    name = rule.saddr_set or rule.daddr_set
    if name is not None and name not in rs.sets:
        raise RulesError(f"rule:1: no set named {name!r}")
    if rule.handle is not None:
        raise RulesError("rule:1: a new rule gets its handle; do not give one")
    return rule


def _find(rs: Ruleset, handle: int) -> tuple[str, int] | None:
    for chain in rs.chains.values():
        for i, (h, _) in enumerate(chain.rules):
            if h == handle:
                return chain.name, i
    return None


def add_rule(
    rs: Ruleset,
    chain: str,
    text: str,
    *,
    before: int | None = None,
    after: int | None = None,
    index: int | None = None,
    comment: str | None = None,
) -> tuple[Ruleset, int]:
    """``rs`` with one more rule in ``chain``: at the end (``fw add``), before or after
    the rule ``before``/``after`` (a handle: ``fw insert --before 4``), or at ``index``
    (0: first, ``fw insert``). Returns the new rule set and the rule's handle."""
    rule = parse_one(rs, chain, text)
    if comment is not None:
        rule = attrs.evolve(rule, comment=_comment(comment))
    new = _copy(rs)
    rules = new.chains[chain].rules
    if sum(x is not None for x in (before, after, index)) > 1:
        raise RulesError("rule: give one of before, after or index")
    if before is not None or after is not None:
        at = _find(rs, before if before is not None else after)  # type: ignore[arg-type]
        if at is None or at[0] != chain:
            raise RulesError(
                f"rule: no rule with handle {before if before is not None else after}"
                f" in chain {chain}"
            )
        position = at[1] + (0 if before is not None else 1)
    elif index is not None:
        if not 0 <= index <= len(rules):
            raise RulesError(f"rule: index {index} is outside 0..{len(rules)}")
        position = index
    else:
        position = len(rules)
    handle = rs.next_handle
    rules.insert(position, (handle, rule))
    new.next_handle = handle + 1
    return new, handle


def replace_rule(rs: Ruleset, handle: int, text: str, comment: str | None = None) -> Ruleset | None:
    """``rs`` with the rule ``handle`` replaced in place (same chain, place and handle);
    None if there is no such rule. Without ``comment`` the old comment stays."""
    at = _find(rs, handle)
    if at is None:
        return None
    chain, i = at
    rule = parse_one(rs, chain, text)
    old = rs.chains[chain].rules[i][1]
    note = old.comment if comment is None else _comment(comment)
    new = _copy(rs)
    new.chains[chain].rules[i] = (handle, attrs.evolve(rule, comment=note or None))
    return new


def delete_rule(rs: Ruleset, handle: int) -> Ruleset | None:
    """``rs`` without the rule ``handle``; None if there is none."""
    at = _find(rs, handle)
    if at is None:
        return None
    new = _copy(rs)
    del new.chains[at[0]].rules[at[1]]
    return new


def set_elements(rs: Ruleset, name: str, add: list[str], delete: list[str]) -> dict[str, Any]:
    """Add and delete single elements of the running set ``name``, in place; every
    element is checked before any changes. Returns the counts and the set's size."""
    prefixes = rs.sets.get(name)
    if prefixes is None:
        raise RulesError(f"no set named {name!r}")
    try:
        adding = [parse_network(text) for text in add]
        deleting = [parse_network(text) for text in delete]
    except AddressError as e:
        raise RulesError(str(e)) from None
    before = len(prefixes)
    for net in deleting:
        prefixes.discard(net)
    removed = before - len(prefixes)
    middle = len(prefixes)
    for net in adding:
        prefixes.add(net)
    return {"set": name, "added": len(prefixes) - middle, "deleted": removed, "size": len(prefixes)}


def _comment(text: str) -> str:
    if len(text) > 256 or not text.isprintable():
        raise RulesError("rule: a comment is at most 256 printable characters")
    return text
