"""Address sets: IPv4 and IPv6 prefixes matched without a linear scan.

Each set keeps, per address family and prefix length, a Python ``set`` of the network
numbers of that length. A lookup shifts the address once per distinct length present
(at most 33 for IPv4, 129 for IPv6, a handful in practice) and probes a hash set: the
cost does not grow with the number of entries.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressError(ValueError):
    """Text that is not an IP address or network."""


def parse_network(text: str) -> IPNetwork:
    """An address or ``address/length`` as a network; host bits must be zero.

    An IPv4-mapped IPv6 network (``::ffff:192.0.2.0/120``) is the IPv4 network it maps
    (``192.0.2.0/24``): connections from IPv4 clients are matched in IPv4 form, however a
    dual-stack socket or a proxy wrote their address.
    """
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise AddressError(f"{text!r} is not an IP address or network: {e}") from None
    if net.version == 6 and net.prefixlen >= 96:
        number = int(net.network_address)
        if number >> 32 == _V4_MAPPED:  # in ::ffff:0:0/96
            return ipaddress.IPv4Network((number & 0xFFFFFFFF, net.prefixlen - 96))
    return net


def parse_address(text: str) -> IPAddress:
    """One IP address; an IPv4-mapped IPv6 address is read as the IPv4 address."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise AddressError(f"{text!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def network_text(net: IPNetwork) -> str:
    """A network as rules show it: a single address without its ``/32`` or ``/128``."""
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


_MAPPED_PREFIX = bytes(10) + b"\xff\xff"

# An address as the firewall matches it: (family bits, 32 or 128; the address as an int).
IP = tuple[int, int]
_V4_MAPPED = 0xFFFF


def parse_ip(text: str) -> IP:
    """A textual address as (bits, int), fast (``inet_pton``); IPv4-mapped IPv6 is IPv4."""
    try:
        if ":" in text:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%")[0]), "big")
            if value >> 32 == _V4_MAPPED:
                return 32, value & 0xFFFFFFFF
            return 128, value
        return 32, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        raise AddressError(f"{text!r} is not an IP address") from None


def canonical(text: str) -> str:
    """A peer's address text in the one form the firewall shows and counts: IPv4-mapped
    IPv6 (``::ffff:192.0.2.7``) as IPv4, other IPv6 compressed in lower case without a
    zone; IPv4 text and anything that is not an address are returned as they are."""
    if ":" not in text:
        return text
    try:
        packed = socket.inet_pton(socket.AF_INET6, text.split("%")[0])
    except (OSError, ValueError):
        return text
    if packed[:12] == _MAPPED_PREFIX:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


def group_key(ip: IP, ipv6_prefix: int) -> int:
    """The key limits and bans count an address under: IPv6 grouped by ``ipv6_prefix``.

    IPv4 keys are the address; IPv6 keys carry bit 128 so that the families stay apart.
    """
    bits, value = ip
    if bits == 32:
        return value
    shift = 128 - ipv6_prefix
    return (1 << 128) | (value >> shift << shift)


def key_text(key: int, ipv6_prefix: int) -> str:
    """A :func:`group_key` as text: ``192.0.2.1`` or ``2001:db8:1:2::/64``."""
    if key >> 128:
        net = ipaddress.IPv6Network((key & ((1 << 128) - 1), ipv6_prefix))
        return str(net) if ipv6_prefix < 128 else str(net.network_address)
    return str(ipaddress.IPv4Address(key))


class PrefixSet:
    """A set of IPv4 and IPv6 networks; ``address in s`` is a longest-prefix probe."""

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        # family bits (32 or 128) -> {prefix length: {network number >> (bits - length)}}
        self._tables: dict[int, dict[int, set[int]]] = {32: {}, 128: {}}
        # family bits -> [(shift, numbers)], longest prefix first; rebuilt on change.
        self._probes: dict[int, list[tuple[int, set[int]]]] = {32: [], 128: []}
        self._size = 0
        for net in networks:
            self.add(net)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def add(self, net: IPNetwork) -> None:
        """Add one network (an address is a /32 or /128 network)."""
        bits = net.max_prefixlen
        table = self._tables[bits].setdefault(net.prefixlen, set())
        number = int(net.network_address) >> (bits - net.prefixlen)
        if number not in table:
            table.add(number)
            self._size += 1
        self._reindex(bits)

    def discard(self, net: IPNetwork) -> None:
        """Remove one network if present."""
        bits = net.max_prefixlen
        table = self._tables[bits].get(net.prefixlen)
        number = int(net.network_address) >> (bits - net.prefixlen)
        if table is not None and number in table:
            table.discard(number)
            self._size -= 1
            if not table:
                del self._tables[bits][net.prefixlen]
            self._reindex(bits)

    def _reindex(self, bits: int) -> None:
        self._probes[bits] = [
            (bits - length, numbers)
            for length, numbers in sorted(self._tables[bits].items(), reverse=True)
        ]

    def match(self, addr: IPAddress) -> int | None:
        """The longest prefix length containing ``addr``, or None."""
        value = int(addr)
        bits = addr.max_prefixlen
        for shift, numbers in self._probes[bits]:
            if (value >> shift) in numbers:
                return bits - shift
        return None

    def __contains__(self, addr: IPAddress) -> bool:
        return self.has((addr.max_prefixlen, int(addr)))

    def has(self, ip: IP) -> bool:
        """Whether a parsed address (:func:`parse_ip`) is in a network of the set."""
        bits, value = ip
        for shift, numbers in self._probes[bits]:
            if (value >> shift) in numbers:
                return True
        return False

    def copy(self) -> PrefixSet:
        """A copy that later changes to this set do not touch (for a listing built in
        another thread)."""
        other = PrefixSet()
        for bits, table in self._tables.items():
            other._tables[bits] = {length: set(numbers) for length, numbers in table.items()}
            other._reindex(bits)
        other._size = self._size
        return other

    def networks(self) -> list[IPNetwork]:
        """Every network, IPv4 first, shortest prefix first, then by address."""
        out: list[IPNetwork] = []
        for bits, make in ((32, ipaddress.IPv4Network), (128, ipaddress.IPv6Network)):
            for length in sorted(self._tables[bits]):
                for number in sorted(self._tables[bits][length]):
                    out.append(make((number << (bits - length), length)))
        return out
