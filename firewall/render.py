"""A rule set as text: ``fw list`` (handles, counters, large sets summarised), ``fw save``
(the rules file, handles and comments kept) and ``fw check``'s diff.

Rendering 100,000 set elements takes a good part of a second, so it runs in a thread:
:func:`snapshot` copies, on the reactor thread, what may change meanwhile (set elements
are added and deleted in place), and the text is made from the copy.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import attrs

from firewall.addrset import PrefixSet, network_text
from firewall.natrules import snat_text
from firewall.ruleset import CONNTRACK_STATES, Ruleset, quote

# Sets with more elements are shown as their size unless the full listing is asked for.
SUMMARY_ELEMENTS = 64
_HANDLE = re.compile(r" handle \d+;$", re.MULTILINE)


@attrs.frozen
class Snapshot:
    """A running rule set as one moment saw it: its chains (never changed in place), its
    counters, and its sets (copied when their elements are to be shown)."""

    ruleset: Ruleset
    counters: Mapping[int, Any]
    sets: Mapping[str, PrefixSet | int]


def snapshot(ruleset: Ruleset, counters: Mapping[int, Any], *, full: bool) -> Snapshot:
    """Take on the reactor thread; render from any. Large sets are copied only when
    ``full`` (else their sizes are kept)."""
    sets: dict[str, PrefixSet | int] = {}
    for name, prefixes in ruleset.sets.items():
        if full or len(prefixes) <= SUMMARY_ELEMENTS:
            sets[name] = prefixes.copy()
        else:
            sets[name] = len(prefixes)
    return Snapshot(ruleset, counters, sets)


def listing(snap: Snapshot) -> list[dict[str, Any]]:
    """The rules in order with handles, comments and counters (the admin API's rows)."""
    out = []
    for chain, handle, rule in snap.ruleset.rules():
        c = snap.counters.get(handle)
        row: dict[str, Any] = {
            "chain": chain,
            "handle": handle,
            "rule": rule.text,
            "connections": c.connections if c is not None else 0,
            "messages": c.messages if c is not None else 0,
            "bytes": c.bytes if c is not None else 0,
        }
        if rule.comment is not None:
            row["comment"] = rule.comment
        out.append(row)
    return out


def render(snap: Snapshot, *, counters: bool = False, handles: bool = False) -> str:
    """The rule set as text: with ``counters`` and ``handles`` as ``nft -a list ruleset``
    shows them (``fw list``); without, as a rules file (``fw save`` writes the handles
    into each rule instead, so that they survive a restart)."""
    rs = snap.ruleset
    out: list[str] = []
    for name, prefixes in snap.sets.items():
        if isinstance(prefixes, int):
            shown = f"… {prefixes} elements (fw list --full)"
        else:
            shown = ", ".join(network_text(n) for n in prefixes.networks())
        out.append(f"set {name} {{ type addr; elements = {{ {shown} }} }}")
    for chain in rs.chains.values():
        out.append(f"chain {chain.name} {{")
        out.append(f"    policy {chain.policy};")
        for handle, rule in chain.rules:
            if counters or handles:
                line = f"    {rule.statement()};"
                c = snap.counters.get(handle)
                if counters and c is not None:
                    line += f" # counter {c.describe()}"
                if handles:
                    line += f" # handle {handle}"
            else:
                line = f"    {rule.statement(handle)};"
            out.append(line)
        out.append("}")
    out.extend(_blocks(rs))
    return "\n".join(out) + "\n"


def _blocks(rs: Ruleset) -> list[str]:
    lim = rs.limits
    lines = []
    if lim.concurrent is not None:
        lines.append(f"concurrent {lim.concurrent};")
    if lim.connections is not None:
        lines.append(f"connections rate {lim.connections.text};")
    if lim.messages is not None:
        lines.append(f"messages rate {lim.messages.text};")
    lines.append(f"lag {lim.lag_s:g};")
    lines.append(f"disconnect after {lim.disconnect_after};")
    if lim.ban_after is not None:
        lines.append(f"ban after {lim.ban_after} for {lim.ban_for_s:g};")
    lines.append(f"ipv6 prefix {lim.ipv6_prefix};")
    out = ["limits {", *(f"    {line}" for line in lines), "}", "nat {"]
    for listener, target in rs.dnat.items():
        out.append(f"    dnat listener {listener} to {target.text()};")
    out.extend(f"    {line}" for line in snat_text(rs.snat))
    out.append("}")
    out.append("translate {")
    for t in rs.translations:
        out.append(f"    {t.kind} {quote(t.match)} -> {quote(t.alias)};")
    out.append("}")
    trusted = ", ".join(rs.trusted_text)
    out.append(f"proxy {{ trusted {trusted}; }}" if trusted else "proxy { }")
    timeouts = " ".join(f"timeout {s} {rs.timeouts[s]:g};" for s in CONNTRACK_STATES)
    out.append(f"conntrack {{ {timeouts} }}")
    return out


def text_of(rs: Ruleset) -> str:
    """A rule set (not running: nothing changes it) as a rules file."""
    return render(snapshot(rs, {}, full=True))


def diff(running: Snapshot, new: Ruleset, source: str) -> str:
    """The unified diff from the running rules to ``new``, rules without handles."""
    before = render(running)
    after = render(snapshot(new, {}, full=True))
    return "".join(
        difflib.unified_diff(
            _without_handles(before).splitlines(keepends=True),
            _without_handles(after).splitlines(keepends=True),
            "running",
            source,
        )
    )


def _without_handles(text: str) -> str:
    # Handles are identities, not content: a diff shows what a rule does.
    return _HANDLE.sub(";", text)
