"""Identity translation of message text: internal hosts, addresses, accounts to aliases.

Addresses are found on address boundaries, not word boundaries: ``host_10.0.0.5``,
``10.0.0.5_backup``, ``10.0.0.5.nip.io`` and ``x10.0.0.5y`` all hold the address. Every
form of an address is read: dotted IPv4 (with leading zeros, read both as decimal and,
as inet_aton would, as octal), dashed IPv4 inside host names (``ip-10-0-0-5``), IPv6 in
any case, full or compressed, with a zone, and IPv6 that embeds an IPv4 address
(IPv4-mapped ``::ffff:10.0.0.5`` or ``::ffff:a00:5``, IPv4-compatible, NAT64, 6to4).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from firewall.ruleset import Translation

_OCTETS = r"(\d{1,3})[.](\d{1,3})[.](\d{1,3})[.](\d{1,3})"
# Not part of a longer run of dotted (or dashed) numbers on either side.
_IPV4 = rf"(?<![0-9])(?<![0-9][.]){_OCTETS}(?![0-9])(?![.][0-9])"
_DASHED = r"(?<![0-9])(?<![0-9]-)(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})(?![0-9])(?!-[0-9])"
# Any run of hex digits, colons and dots with two colons or more (each candidate is
# parsed before it is replaced), and its zone.
_IPV6 = r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.-]+)?"
_HOST_CHARS = r"[A-Za-z0-9-]"
_EMBEDDED_V4 = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), 0),  # IPv4-mapped
    (ipaddress.IPv6Network("::/96"), 0),  # IPv4-compatible
    (ipaddress.IPv6Network("64:ff9b::/96"), 0),  # NAT64
    (ipaddress.IPv6Network("2002::/16"), 80),  # 6to4: the IPv4 address after 2002:
)


class Translator:
    """Rewrites text by the ``translate { … }`` entries of the running rules."""

    def __init__(self, translations: Sequence[Translation]) -> None:
        self._networks = [(t.network, t.alias) for t in translations if t.kind == "addr"]
        literal: list[tuple[str, str]] = []
        for t in translations:
            if t.kind == "host":
                if t.match.startswith("*."):
                    # any host name under the domain
                    pattern = rf"(?<!{_HOST_CHARS})(?:{_HOST_CHARS}+\.)+{re.escape(t.match[2:])}"
                else:
                    pattern = rf"(?<![A-Za-z0-9.-]){re.escape(t.match)}"
                # A host name ends where host name characters do (a final dot may follow).
                literal.append((pattern + r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])", t.alias))
            elif t.kind == "text":
                literal.append((re.escape(t.match), t.alias))
        # Longest patterns first, so a full name wins over a part of it.
        literal.sort(key=lambda pair: -len(pair[0]))
        self._aliases = [alias for _, alias in literal]
        self._literal = (
            re.compile("|".join(f"({p})" for p, _ in literal), re.IGNORECASE) if literal else None
        )
        self._address = (
            re.compile(f"(?P<v6>{_IPV6})|(?P<v4>{_IPV4})|(?P<dashed>{_DASHED})")
            if self._networks
            else None
        )
        self._v4_only = re.compile(f"(?P<v4>{_IPV4})") if self._networks else None

    def __bool__(self) -> bool:
        return bool(self._literal or self._address)

    def translate(self, text: str) -> str:
        """``text`` with every configured host, text and address replaced by its alias."""
        if self._literal is not None:
            text = self._literal.sub(self._literal_alias, text)
        if self._address is not None:
            text = self._address.sub(self._address_alias, text)
        return text

    def _literal_alias(self, match: re.Match) -> str:
        assert match.lastindex is not None
        return self._aliases[match.lastindex - 1]

    def _address_alias(self, match: re.Match) -> str:
        found = match.group()
        groups = match.groupdict()
        if groups.get("v6") is not None:
            return self._v6_alias(found)
        kind = "v4" if groups["v4"] is not None else "dashed"
        first = match.re.groupindex[kind] + 1
        octets = match.group(first, first + 1, first + 2, first + 3)
        for value in _readings(octets):
            alias = self._alias_of(ipaddress.IPv4Address(value))
            if alias is not None:
                return alias
        return found

    def _v6_alias(self, found: str) -> str:
        # A run may end in punctuation ("at fd00::5: down", "see fd00::5."), or be no
        # address at all (a time, "10:30:10.0.0.5"): then the IPv4 addresses inside count.
        address = found.partition("%")[0]
        end = len(address)
        while end > 0:
            try:
                addr = ipaddress.IPv6Address(address[:end])
            except ValueError:
                if address[end - 1] not in ".:":
                    break
                end -= 1
                continue
            alias = self._alias_of(addr)
            for network, shift in _EMBEDDED_V4:
                if alias is None and addr in network:
                    alias = self._alias_of(ipaddress.IPv4Address((int(addr) >> shift) & 0xFFFFFFFF))
            if alias is None:
                return found
            # The zone goes with the address; punctuation after it stays.
            return alias + ("" if "%" in found else address[end:])
        assert self._v4_only is not None
        return self._v4_only.sub(self._address_alias, found)

    def _alias_of(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        for network, alias in self._networks:
            if network is not None and addr.version == network.version and addr in network:
                return alias
        return None


def _readings(octets: tuple[str, ...]) -> list[int]:
    """The IPv4 addresses four dotted numbers may name: decimal, and octal where every
    number with a leading zero is a valid octal one (as inet_aton reads them)."""
    values = []
    decimal = [int(o) for o in octets]
    if all(v < 256 for v in decimal):
        values.append(_pack(decimal))
    if any(len(o) > 1 and o.startswith("0") for o in octets):
        try:
            octal = [int(o, 8) if len(o) > 1 and o.startswith("0") else int(o) for o in octets]
        except ValueError:
            octal = []
        if octal and all(v < 256 for v in octal):
            values.append(_pack(octal))
    return values


def _pack(octets: list[int]) -> int:
    return (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
