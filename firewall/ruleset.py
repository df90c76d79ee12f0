"""The rules file: an nftables-like text, parsed and validated whole into a Ruleset.

See docs/firewall.md, "The rules file", for the format. ``parse`` either returns a complete
:class:`Ruleset` or raises :class:`RulesError` naming the line; nothing is half-built,
so a caller swaps rule sets atomically by assigning the result.
"""

from __future__ import annotations

import gc
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from firewall.addrset import AddressError, IPNetwork, PrefixSet, network_text, parse_network
from firewall.natrules import DnatTarget, parse_nat

VERDICTS = ("accept", "drop", "reject")
CHAINS = ("input", "output")
ROLES = ("customer", "agent")
# Wire protocols without a login: their connections never have a role.
ROLELESS = frozenset({"tcp", "http"})
_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|->|[{};,]|[^\s{};,"#]+|#[^\n]*|\n|[ \t\r]+')
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CONNTRACK_STATES = ("new", "established", "closing")
# As Linux conntrack's TCP defaults, roughly: IM links may sit idle for long.
DEFAULT_TIMEOUTS = {"new": 60.0, "established": 432000.0, "closing": 120.0}


class RulesError(Exception):
    """A mistake in a rules text: ``SOURCE:LINE: problem``."""


@attrs.frozen
class Token:
    """One word, string or punctuation mark of a rules text, with its line."""

    text: str
    line: int
    quoted: bool = False


def tokenize(text: str, source: str) -> list[Token]:
    """The tokens of ``text``; comments (``#`` to the end of the line) are dropped."""
    tokens: list[Token] = []
    line = 1
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise RulesError(f"{source}:{line}: unexpected character {text[pos]!r}")
        piece = m.group()
        pos = m.end()
        if piece == "\n":
            line += 1
        elif piece.startswith("#") or piece.isspace():
            continue
        elif piece.startswith('"'):
            tokens.append(Token(piece[1:-1].replace('\\"', '"').replace("\\\\", "\\"), line, True))
        else:
            tokens.append(Token(piece, line))
    return tokens


@attrs.frozen
class Rate:
    """A token-bucket rate: ``per_second`` on average, bursts of ``burst``."""

    per_second: float
    burst: int
    text: str


@attrs.frozen
class Rule:
    """One filter rule: conditions (all must hold), then optional log and a verdict."""

    text: str
    saddr: tuple[IPNetwork, ...] = ()
    saddr_set: str | None = None
    daddr: tuple[IPNetwork, ...] = ()
    daddr_set: str | None = None
    dport: frozenset[int] = frozenset()
    listener: frozenset[str] = frozenset()
    protocol: frozenset[str] = frozenset()
    role: str | None = None
    limit: Rate | None = None
    log: bool = False
    verdict: str | None = None
    # Not conditions: a note shown with the rule, and a handle the file gives it.
    comment: str | None = None
    handle: int | None = None

    def statement(self, handle: int | None = None) -> str:
        """The rule as a rules file writes it: its text, comment and (given) handle."""
        out = self.text
        if self.comment is not None:
            out += f" comment {quote(self.comment)}"
        if handle is not None:
            out += f" handle {handle}"
        return out


@attrs.frozen
class Limits:
    """Per-address limits (``limits { … }``); None: no such limit."""

    concurrent: int | None = None
    connections: Rate | None = None
    messages: Rate | None = None
    lag_s: float = 1.0
    disconnect_after: int = 3
    ban_after: int | None = None
    ban_for_s: float = 600.0
    ipv6_prefix: int = 64


@attrs.frozen
class Translation:
    """One identity translation: a host name, literal text or network to an alias."""

    kind: str  # host | text | addr
    match: str
    alias: str
    network: IPNetwork | None = None


@attrs.define
class Chain:
    """An ordered chain with its default policy; rules are (handle, Rule)."""

    name: str
    policy: str = "accept"
    rules: list[tuple[int, Rule]] = attrs.field(factory=list)


@attrs.define
class Ruleset:
    """A complete, validated rule set; treat as immutable once built."""

    source: str = "empty"
    sets: dict[str, PrefixSet] = attrs.field(factory=dict)
    chains: dict[str, Chain] = attrs.field(factory=dict)
    limits: Limits = attrs.field(factory=Limits)
    dnat: dict[str, DnatTarget] = attrs.field(factory=dict)
    snat: list[tuple[IPNetwork, str]] = attrs.field(factory=list)
    translations: list[Translation] = attrs.field(factory=list)
    trusted: PrefixSet = attrs.field(factory=PrefixSet)
    trusted_text: list[str] = attrs.field(factory=list)
    timeouts: dict[str, float] = attrs.field(factory=lambda: dict(DEFAULT_TIMEOUTS))
    next_handle: int = 1

    def __attrs_post_init__(self) -> None:
        for name in CHAINS:
            self.chains.setdefault(name, Chain(name))

    def rules(self) -> Iterator[tuple[str, int, Rule]]:
        """Every rule as (chain, handle, rule), in chain then file order."""
        for chain in self.chains.values():
            for handle, rule in chain.rules:
                yield chain.name, handle, rule


def quote(text: str) -> str:
    """A string as the rules file quotes it."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, tokens: list[Token], source: str) -> None:
        self.tokens, self.source, self.pos = tokens, source, 0

    def fail(self, problem: str, token: Token | None = None) -> RulesError:
        token = token or self.peek()
        line = token.line if token else (self.tokens[-1].line if self.tokens else 1)
        return RulesError(f"{self.source}:{line}: {problem}")

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, what: str = "more") -> Token:
        token = self.peek()
        if token is None:
            raise self.fail(f"expected {what}, found the end of the file")
        self.pos += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.next(repr(text))
        if token.text != text or token.quoted:
            raise self.fail(f"expected {text!r}, found {token.text!r}", token)
        return token

    def at(self, text: str) -> bool:
        token = self.peek()
        return token is not None and not token.quoted and token.text == text

    def statements(self) -> Iterator[list[Token]]:
        """The statements of a ``{ … }`` block (after its ``{``), each as its tokens."""
        statement: list[Token] = []
        while True:
            token = self.next("'}'")
            if token.text == "}" and not token.quoted:
                if statement:
                    yield statement
                return
            if token.text == ";" and not token.quoted:
                if statement:
                    yield statement
                statement = []
                continue
            if token.text == "{" and not token.quoted:
                # an inline list: kept as one token group
                group = [token]
                while True:
                    inner = self.next("'}'")
                    group.append(inner)
                    if inner.text == "}" and not inner.quoted:
                        break
                statement.extend(group)
                continue
            statement.append(token)


_collector_lock = threading.Lock()
_collector_held = 0
_collector_was_on = False


@contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Parsing and compiling rules make no reference cycles but, for a large file,
    millions of objects, which the cyclic collector would walk again and again (most of
    the time a 100,000-rule file took): it waits until they are done. Uses in threads
    may overlap: the last one out turns it back on."""
    global _collector_held, _collector_was_on
    with _collector_lock:
        if _collector_held == 0:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _collector_held += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_held -= 1
            if _collector_held == 0 and _collector_was_on:
                gc.enable()


def parse(text: str, source: str = "rules", first_handle: int = 1) -> Ruleset:
    """Parse and validate a whole rules text; handles are numbered from ``first_handle``."""
    with without_cycle_collection():
        return _parse(text, source, first_handle)


def _parse(text: str, source: str, first_handle: int) -> Ruleset:
    p = _Parser(tokenize(text, source), source)
    rs = Ruleset(source=source, next_handle=first_handle)
    seen: set[str] = set()
    pending_sets: list[tuple[Token, str]] = []
    # Chains with their rules in the order the file has them, and rules that name
    # their handle.
    met: list[tuple[Chain, list[Rule]]] = []
    named: list[tuple[Rule, Token]] = []
    while p.peek() is not None:
        head = p.next()
        kind = head.text
        if kind == "set":
            name = p.next("a set name")
            if not _NAME.match(name.text) or name.quoted:
                raise p.fail(f"{name.text!r} is not a valid set name", name)
            if name.text in rs.sets:
                raise p.fail(f"set {name.text!r} defined twice", name)
            p.expect("{")
            rs.sets[name.text] = _set_body(p, list(p.statements()))
        elif kind == "chain":
            name = p.next("a chain name")
            if name.text not in CHAINS:
                raise p.fail(f"chain must be one of {', '.join(CHAINS)}, not {name.text!r}", name)
            if f"chain {name.text}" in seen:
                raise p.fail(f"chain {name.text!r} defined twice", name)
            seen.add(f"chain {name.text}")
            p.expect("{")
            chain = rs.chains[name.text]
            rules: list[Rule] = []
            met.append((chain, rules))
            for statement in p.statements():
                if statement[0].text == "policy":
                    if len(statement) != 2 or statement[1].text not in ("accept", "drop"):
                        raise p.fail("policy must be accept or drop", statement[0])
                    chain.policy = statement[1].text
                    continue
                rule = parse_rule(statement, p, name.text)
                for tok_set in (rule.saddr_set, rule.daddr_set):
                    if tok_set is not None:
                        pending_sets.append((statement[0], tok_set))
                if rule.handle is not None:
                    named.append((rule, statement[0]))
                rules.append(rule)  # numbered by _number below
        elif kind in ("limits", "nat", "translate", "proxy", "conntrack"):
            if kind in seen:
                raise p.fail(f"{kind!r} defined twice", head)
            seen.add(kind)
            p.expect("{")
            block = {
                "limits": _limits,
                "nat": parse_nat,
                "translate": _translate,
                "proxy": _proxy,
                "conntrack": _conntrack,
            }[kind]
            block(p, rs, list(p.statements()))
        else:
            raise p.fail(
                f"expected set, chain, limits, nat, translate, proxy or conntrack, not {kind!r}",
                head,
            )
    for token, name in pending_sets:
        if name not in rs.sets:
            raise p.fail(f"no set named {name!r}", token)
    _number(p, rs, met, named, first_handle)
    return rs


def _number(
    p: _Parser,
    rs: Ruleset,
    met: list[tuple[Chain, list[Rule]]],
    named: list[tuple[Rule, Token]],
    first: int,
) -> None:
    """Give every rule its handle, in file order (the chains ``met``, as parsing met
    them): the one the file names (``handle N``, the rules ``named``), else the next
    free number from ``first``."""
    given: dict[int, Token] = {}
    for rule, token in named:
        if rule.handle in given:
            raise p.fail(f"handle {rule.handle} given twice", token)
        given[rule.handle] = token  # type: ignore[index]
    number = first
    for chain, rules in met:
        if not given:  # the common file: one number after another
            chain.rules = [(number + i, rule) for i, rule in enumerate(rules)]
            number += len(rules)
            continue
        numbered = []
        for rule in rules:
            handle = rule.handle
            if handle is None:
                while number in given:
                    number += 1
                handle = number
                number += 1
            numbered.append((handle, rule))
        chain.rules = numbered
    rs.next_handle = max([number, *(h + 1 for h in given)])


def _set_body(p: _Parser, statements: list[list[Token]]) -> PrefixSet:
    prefixes = PrefixSet()
    for st in statements:
        if st[0].text == "type":
            if len(st) != 2 or st[1].text != "addr":
                raise p.fail("set type must be addr", st[0])
        elif st[0].text == "elements":
            if len(st) < 2 or st[1].text != "=":
                raise p.fail("expected 'elements = { … }'", st[0])
            for net in _networks(p, st[2:]):
                prefixes.add(net)
        else:
            raise p.fail(f"expected type or elements, not {st[0].text!r}", st[0])
    return prefixes


def _list(p: _Parser, tokens: list[Token], start: int) -> tuple[list[Token], int]:
    """One value, or a ``{ a, b }`` list, at ``tokens[start]``; returns items and next index."""
    if start >= len(tokens):
        raise p.fail("expected a value", tokens[-1])
    if tokens[start].text == "{" and not tokens[start].quoted:
        items: list[Token] = []
        i = start + 1
        while i < len(tokens) and not (tokens[i].text == "}" and not tokens[i].quoted):
            if tokens[i].text != ",":
                items.append(tokens[i])
            i += 1
        if not items:
            raise p.fail("empty list", tokens[start])
        return items, i + 1
    return [tokens[start]], start + 1


def _networks(p: _Parser, tokens: list[Token]) -> list[IPNetwork]:
    items, end = _list(p, tokens, 0) if tokens else ([], 0)
    if end != len(tokens):
        raise p.fail(f"unexpected {tokens[end].text!r}", tokens[end])
    try:
        return [parse_network(t.text) for t in items]
    except AddressError as e:
        raise p.fail(str(e), items[0]) from None


def _rate(p: _Parser, tokens: list[Token], i: int) -> tuple[Rate, int]:
    """``N/unit [burst M]`` at ``tokens[i]``."""
    if i >= len(tokens):
        raise p.fail("expected a rate such as 10/second", tokens[-1])
    token = tokens[i]
    number, _, unit = token.text.partition("/")
    try:
        count = float(number)
    except ValueError:
        count = -1.0
    if unit not in _UNITS or not 0 < count <= 1e9:
        raise p.fail(f"{token.text!r} is not a rate such as 10/second", token)
    per_second = count / _UNITS[unit]
    burst = max(1, int(count))
    i += 1
    text = token.text
    if i < len(tokens) and tokens[i].text == "burst":
        burst = _int(p, tokens, i + 1, 1, 10**9)
        text += f" burst {burst}"
        i += 2
    else:
        text += f" burst {burst}"
    return Rate(per_second, burst, text), i


def _int(p: _Parser, tokens: list[Token], i: int, low: int, high: int) -> int:
    if i >= len(tokens):
        raise p.fail("expected a number", tokens[-1])
    token = tokens[i]
    if not token.text.isdigit() or not low <= int(token.text) <= high:
        raise p.fail(f"expected a whole number from {low} to {high}, not {token.text!r}", token)
    return int(token.text)


def _seconds(p: _Parser, tokens: list[Token], i: int) -> float:
    if i >= len(tokens):
        raise p.fail("expected seconds", tokens[-1])
    token = tokens[i]
    try:
        value = float(token.text.removesuffix("s"))
    except ValueError:
        value = -1.0
    if not 0 <= value <= 30 * 86400:
        raise p.fail(f"expected seconds (0 to 2592000), not {token.text!r}", token)
    return value


def parse_rule(tokens: list[Token], p: _Parser | None = None, chain: str = "input") -> Rule:
    """One rule statement (its tokens, without the ``;``)."""
    p = p or _Parser(tokens, "rule")
    fields: dict[str, Any] = {}
    words: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        word = token.text
        if "verdict" in fields and word not in ("comment", "handle"):
            raise p.fail(f"the verdict {fields['verdict']!r} must end the rule", token)
        if word == "comment" and not token.quoted:
            if "comment" in fields or i + 1 >= len(tokens) or not tokens[i + 1].quoted:
                raise p.fail('expected comment "TEXT" (once)', token)
            note = tokens[i + 1].text
            if len(note) > 256 or not note.isprintable():
                raise p.fail("a comment is at most 256 printable characters", token)
            fields["comment"] = note
            i += 2
        elif word == "handle" and not token.quoted:
            number = tokens[i + 1].text if i + 1 < len(tokens) else ""
            if "handle" in fields or not number.isdigit() or not 0 < int(number) < 10**9:
                raise p.fail("expected handle N (a whole number from 1, once)", token)
            fields["handle"] = int(number)
            i += 2
        elif word in ("ip", "ip6"):
            if i + 1 >= len(tokens) or tokens[i + 1].text not in ("saddr", "daddr"):
                raise p.fail("expected 'ip saddr' or 'ip daddr'", token)
            which = tokens[i + 1].text
            if which in fields:
                raise p.fail(f"{which!r} given twice", token)
            if which == "daddr" and chain != "output":
                raise p.fail("ip daddr only matches in chain output", token)
            if which == "saddr" and chain != "input":
                raise p.fail("ip saddr only matches in chain input", token)
            if i + 2 < len(tokens) and tokens[i + 2].text.startswith("@"):
                name = tokens[i + 2].text[1:]
                fields[f"{which}_set"] = name
                fields[which] = ()
                words.append(f"ip {which} @{name}")
                i += 3
            else:
                items, end = _list(p, tokens, i + 2)
                try:
                    nets = tuple(parse_network(t.text) for t in items)
                except AddressError as e:
                    raise p.fail(str(e), items[0]) from None
                fields[which] = nets
                words.append(f"ip {which} {_show(nets)}")
                i = end
        elif word in ("listener", "protocol", "tcp"):
            key = "dport" if word == "tcp" else word
            if key in fields:
                raise p.fail(f"{word!r} given twice", token)
            start = i + 1
            if word == "tcp":
                if start >= len(tokens) or tokens[start].text != "dport":
                    raise p.fail("expected 'tcp dport PORT'", token)
                if chain != "output":
                    raise p.fail("tcp dport only matches in chain output", token)
                start += 1
            items, end = _list(p, tokens, start)
            names = [t.text for t in items]
            if key == "dport":
                if not all(n.isdigit() and 0 < int(n) < 65536 for n in names):
                    raise p.fail("tcp dport takes port numbers", items[0])
                fields[key] = frozenset(int(n) for n in names)
                words.append(f"tcp dport {_show(names)}")
            else:
                if not all(_NAME.match(n) for n in names):
                    raise p.fail(f"bad {word} name", items[0])
                fields[key] = frozenset(names)
                words.append(f"{word} {_show(names)}")
            i = end
        elif word == "role":
            if "role" in fields or i + 1 >= len(tokens) or tokens[i + 1].text not in ROLES:
                raise p.fail("expected 'role customer' or 'role agent'", token)
            if chain != "input":
                raise p.fail("role only matches in chain input", token)
            fields["role"] = tokens[i + 1].text
            words.append(f"role {fields['role']}")
            i += 2
        elif word == "limit":
            if "limit" in fields or i + 1 >= len(tokens) or tokens[i + 1].text != "rate":
                raise p.fail("expected 'limit rate N/unit [burst M]'", token)
            rate, i = _rate(p, tokens, i + 2)
            fields["limit"] = rate
            words.append(f"limit rate {rate.text}")
        elif word == "counter":
            i += 1  # every rule counts; accepted for nft habits
        elif word == "log":
            fields["log"] = True
            words.append("log")
            i += 1
        elif word in VERDICTS:
            fields["verdict"] = word
            words.append(word)
            i += 1
        else:
            raise p.fail(f"unknown rule word {word!r}", token)
    if "verdict" not in fields and not fields.get("log"):
        raise p.fail("a rule needs a verdict (accept, drop, reject) or log", tokens[0])
    return Rule(text=" ".join(words), **fields)


def _show(items: Any) -> str:
    items = [network_text(x) if hasattr(x, "prefixlen") else str(x) for x in items]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _limits(p: _Parser, rs: Ruleset, statements: list[list[Token]]) -> None:
    values: dict[str, Any] = {}
    for st in statements:
        words = [t.text for t in st]
        if words[0] == "concurrent" and len(st) == 2:
            values["concurrent"] = _int(p, st, 1, 1, 10**7)
        elif words[:2] in (["connections", "rate"], ["messages", "rate"]):
            rate, end = _rate(p, st, 2)
            if end != len(st):
                raise p.fail(f"unexpected {st[end].text!r}", st[end])
            values[words[0]] = rate
        elif words[0] == "lag" and len(st) == 2:
            values["lag_s"] = _seconds(p, st, 1)
        elif words[:2] == ["disconnect", "after"] and len(st) == 3:
            values["disconnect_after"] = _int(p, st, 2, 1, 10**6)
        elif words[:2] == ["ban", "after"] and len(st) == 5 and words[3] == "for":
            values["ban_after"] = _int(p, st, 2, 1, 10**6)
            values["ban_for_s"] = _seconds(p, st, 4)
        elif words[:2] == ["ipv6", "prefix"] and len(st) == 3:
            values["ipv6_prefix"] = _int(p, st, 2, 1, 128)
        else:
            raise p.fail(f"unknown limits statement {' '.join(words)!r}", st[0])
    rs.limits = Limits(**values)


def _translate(p: _Parser, rs: Ruleset, statements: list[list[Token]]) -> None:
    for st in statements:
        words = [t.text for t in st]
        if len(st) != 4 or words[0] not in ("host", "text", "addr") or words[2] != "->":
            raise p.fail("expected 'host|text|addr MATCH -> \"ALIAS\"'", st[0])
        network = None
        if words[0] == "addr":
            (network,) = _networks(p, [st[1]])
        elif not words[1]:
            raise p.fail("empty match", st[1])
        rs.translations.append(Translation(words[0], words[1], words[3], network))


def _proxy(p: _Parser, rs: Ruleset, statements: list[list[Token]]) -> None:
    for st in statements:
        if st[0].text != "trusted":
            raise p.fail(f"expected 'trusted ADDRESS, …', not {st[0].text!r}", st[0])
        for token in st[1:]:
            if token.text == ",":
                continue
            try:
                rs.trusted.add(parse_network(token.text))
            except AddressError as e:
                raise p.fail(str(e), token) from None
            rs.trusted_text.append(token.text)


def _conntrack(p: _Parser, rs: Ruleset, statements: list[list[Token]]) -> None:
    for st in statements:
        words = [t.text for t in st]
        if len(st) != 3 or words[0] != "timeout" or words[1] not in CONNTRACK_STATES:
            raise p.fail(f"expected 'timeout {'|'.join(CONNTRACK_STATES)} SECONDS'", st[0])
        rs.timeouts[words[1]] = max(1.0, _seconds(p, st, 2))
