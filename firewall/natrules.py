"""The ``nat { … }`` block of a rules file: DNAT targets with their backends, and SNAT.

``dnat listener NAME to TARGETS [options];`` where TARGETS is ``HOST:PORT`` or
``{ HOST:PORT [backup], … }`` and the options are HAProxy's, in its words:
``balance roundrobin|first|leastconn``, ``check [interval S] [timeout S] [fall N]
[rise N]``, ``timeout connect S``, ``timeout idle S``, ``send-proxy`` or
``send-proxy-v2``. ``snat to NETWORK from ADDRESS``.

The parser object (``p``) and tokens come from :mod:`firewall.ruleset`, which calls
:func:`parse_nat`; nothing here imports it.
"""

from __future__ import annotations

from typing import Any

import attrs

from firewall.addrset import AddressError, IPNetwork, parse_network

BALANCES = ("roundrobin", "first", "leastconn")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@attrs.frozen
class Backend:
    """One server of a DNAT target; a ``backup`` one serves only when no other is up."""

    host: str
    port: int
    backup: bool = False

    @property
    def address(self) -> tuple[str, int]:
        """(host, port)."""
        return self.host, self.port

    def text(self) -> str:
        """As the rules file writes it."""
        where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return where + (" backup" if self.backup else "")


@attrs.frozen
class HealthCheck:
    """A TCP connect check of each backend every ``interval_s``; ``fall`` failures in a
    row mark it down, ``rise`` successes up again."""

    interval_s: float = 2.0
    timeout_s: float = 2.0
    fall: int = 3
    rise: int = 2


@attrs.frozen
class DnatTarget:
    """Where a DNAT listener forwards to, and how."""

    backends: tuple[Backend, ...]
    balance: str = "roundrobin"
    check: HealthCheck | None = None
    connect_timeout_s: float = 5.0
    idle_timeout_s: float | None = None
    send_proxy: int = 0  # PROXY protocol version written to the backend: 0 (none), 1, 2

    def text(self) -> str:
        """The statement after ``to``, canonical."""
        if len(self.backends) == 1 and not self.backends[0].backup:
            out = [self.backends[0].text()]
        else:
            out = ["{ " + ", ".join(b.text() for b in self.backends) + " }"]
        if self.balance != "roundrobin":
            out.append(f"balance {self.balance}")
        if self.check is not None:
            c = self.check
            out.append(
                f"check interval {c.interval_s:g} timeout {c.timeout_s:g} fall {c.fall}"
                f" rise {c.rise}"
            )
        if self.connect_timeout_s != DnatTarget.connect_timeout_s:
            out.append(f"timeout connect {self.connect_timeout_s:g}")
        if self.idle_timeout_s is not None:
            out.append(f"timeout idle {self.idle_timeout_s:g}")
        if self.send_proxy:
            out.append("send-proxy" if self.send_proxy == 1 else "send-proxy-v2")
        return " ".join(out)


def parse_nat(p: Any, rs: Any, statements: list[list[Any]]) -> None:
    """Fill ``rs.dnat`` and ``rs.snat`` from the statements of a ``nat`` block."""
    for st in statements:
        words = [t.text for t in st]
        if words[:2] == ["dnat", "listener"] and len(st) >= 5 and words[3] == "to":
            name = words[2]
            if not set(name) <= _NAME_CHARS or len(name) > 64:
                raise p.fail(f"bad listener name {name!r}", st[2])
            if name in rs.dnat:
                raise p.fail(f"dnat listener {name!r} given twice", st[2])
            rs.dnat[name] = _target(p, st, 4)
        elif words[:2] == ["snat", "to"] and len(st) == 5 and words[3] == "from":
            try:
                net = parse_network(words[2])
                parse_network(words[4])
            except AddressError as e:
                raise p.fail(str(e), st[2]) from None
            if "/" in words[4]:
                raise p.fail("snat from takes one address", st[4])
            rs.snat.append((net, words[4]))
        else:
            raise p.fail(
                "expected 'dnat listener NAME to HOST:PORT [options]' or"
                " 'snat to NETWORK from ADDRESS'",
                st[0],
            )
    # Longest destination prefix first, so the most specific SNAT rule wins.
    rs.snat.sort(key=lambda pair: -pair[0].prefixlen)


def _target(p: Any, st: list[Any], i: int) -> DnatTarget:
    backends: list[Backend] = []
    if st[i].text == "{" and not st[i].quoted:
        i += 1
        current: list[Any] = []
        while i < len(st) and not (st[i].text == "}" and not st[i].quoted):
            if st[i].text == ",":
                backends.append(_backend(p, current, st[i]))
                current = []
            else:
                current.append(st[i])
            i += 1
        if i >= len(st):
            raise p.fail("expected '}' after the backends", st[-1])
        if current:
            backends.append(_backend(p, current, st[i]))
        i += 1
        if not backends:
            raise p.fail("no backends", st[i - 1])
    else:
        backends.append(_backend(p, [st[i]], st[i]))
        i += 1
    if all(b.backup for b in backends):
        raise p.fail("every backend is a backup", st[0])
    options: dict[str, Any] = {}
    while i < len(st):
        word = st[i].text
        if word in options or (word.startswith("send-proxy") and "send_proxy" in options):
            raise p.fail(f"{word!r} given twice", st[i])
        if word == "balance":
            if i + 1 >= len(st) or st[i + 1].text not in BALANCES:
                raise p.fail(f"balance takes one of {', '.join(BALANCES)}", st[i])
            options["balance"] = st[i + 1].text
            i += 2
        elif word == "check":
            i, options["check"] = _check(p, st, i + 1)
        elif word == "timeout":
            which = st[i + 1].text if i + 1 < len(st) else ""
            if which not in ("connect", "idle"):
                raise p.fail("expected 'timeout connect S' or 'timeout idle S'", st[i])
            key = f"{which}_timeout_s"
            if key in options:
                raise p.fail(f"'timeout {which}' given twice", st[i])
            options[key] = _seconds(p, st, i + 2, low=0.1)
            i += 3
        elif word in ("send-proxy", "send-proxy-v2"):
            options["send_proxy"] = 1 if word == "send-proxy" else 2
            i += 1
        else:
            raise p.fail(f"unknown dnat option {word!r}", st[i])
    return DnatTarget(backends=tuple(backends), **options)


def _backend(p: Any, tokens: list[Any], at: Any) -> Backend:
    if not tokens or len(tokens) > 2 or (len(tokens) == 2 and tokens[1].text != "backup"):
        raise p.fail("expected 'HOST:PORT' or 'HOST:PORT backup'", tokens[0] if tokens else at)
    host, port = endpoint(p, tokens[0])
    return Backend(host, port, backup=len(tokens) == 2)


def endpoint(p: Any, token: Any) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    text = token.text
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise p.fail(f"{text!r} is not HOST:PORT", token)
    return host, int(port)


def _check(p: Any, st: list[Any], i: int) -> tuple[int, HealthCheck]:
    values: dict[str, Any] = {}
    names = {"interval": "interval_s", "timeout": "timeout_s", "fall": "fall", "rise": "rise"}
    while i < len(st) and st[i].text in names and names[st[i].text] not in values:
        # "timeout connect|idle" is the target's, not the check's.
        if st[i].text == "timeout" and i + 1 < len(st) and st[i + 1].text in ("connect", "idle"):
            break
        key = names[st[i].text]
        if key in ("fall", "rise"):
            token = st[i + 1] if i + 1 < len(st) else st[i]
            if not token.text.isdigit() or not 1 <= int(token.text) <= 100:
                raise p.fail(f"{st[i].text} takes a count from 1 to 100", token)
            values[key] = int(token.text)
        else:
            values[key] = _seconds(p, st, i + 1, low=0.01)
        i += 2
    return i, HealthCheck(**values)


def _seconds(p: Any, st: list[Any], i: int, *, low: float) -> float:
    if i >= len(st):
        raise p.fail("expected seconds", st[-1])
    token = st[i]
    try:
        value = float(token.text.removesuffix("s"))
    except ValueError:
        value = -1.0
    if not low <= value <= 86400:
        raise p.fail(f"expected seconds ({low:g} to 86400), not {token.text!r}", token)
    return value


def snat_text(snat: list[tuple[IPNetwork, str]]) -> list[str]:
    """The SNAT statements, as the rules file writes them."""
    return [f"snat to {net} from {source};" for net, source in snat]
