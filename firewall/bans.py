"""Bans: of addresses (an IPv6 address's prefix, as limits group it) and of networks.

An address ban is one dictionary probe; network bans (``fw bans add 203.0.113.0/24``)
are kept in a :class:`firewall.addrset.PrefixSet` as well, probed only while there are
any. Each ban expires at a time, or lasts until lifted (None). The table is written to a
file and read back at start (see :mod:`firewall.persist`), so bans outlive a restart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from twisted.internet.interfaces import IReactorTime

from firewall.addrset import IP, IPNetwork, PrefixSet, key_text, network_text

# A network ban's key: (family bits, prefix length, network number).
NetKey = tuple[int, int, int]


def net_key(net: IPNetwork) -> NetKey:
    """The key of a network ban."""
    bits = net.max_prefixlen
    return bits, net.prefixlen, int(net.network_address) >> (bits - net.prefixlen)


def _network(key: NetKey) -> IPNetwork:
    bits, length, number = key
    make = ipaddress.IPv4Network if bits == 32 else ipaddress.IPv6Network
    return make((number << (bits - length), length))


class BanTable:
    """Current bans with their expiry; expired ones are lifted when looked at."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        # group_key() -> expiry (None: until lifted)
        self.keys: dict[int, float | None] = {}
        # net_key() -> expiry; empty unless a network is banned (read per connection)
        self.networks: dict[NetKey, float | None] = {}
        self._prefixes = PrefixSet()

    def __len__(self) -> int:
        return len(self.keys) + len(self.networks)

    def __bool__(self) -> bool:
        return bool(self.keys or self.networks)

    def ban_key(self, key: int, until: float | None) -> None:
        """Ban an address key until ``until`` (None: until lifted)."""
        self.keys[key] = until

    def ban_network(self, net: IPNetwork, until: float | None) -> None:
        """Ban every address of a network."""
        self.networks[net_key(net)] = until
        self._prefixes.add(net)

    def lift_key(self, key: int) -> bool:
        """Lift an address ban; False if there was none."""
        return self.keys.pop(key, "none") != "none"

    def lift_network(self, net: IPNetwork) -> bool:
        """Lift a network ban (exactly this network); False if there was none."""
        if self.networks.pop(net_key(net), "none") == "none":
            return False
        self._prefixes.discard(net)
        return True

    def banned(self, ip: IP | None, key: int | None) -> bool:
        """Whether this address (and its key) is banned now."""
        if key is not None and key in self.keys and self._live_key(key):
            return True
        if self.networks and ip is not None and self._prefixes.has(ip):
            return self._live_network(ip)
        return False

    def _live_key(self, key: int) -> bool:
        until = self.keys[key]
        if until is not None and self._clock.seconds() >= until:
            del self.keys[key]
            return False
        return True

    def _live_network(self, ip: IP) -> bool:
        bits, value = ip
        now = self._clock.seconds()
        live = False
        for length in range(bits, -1, -1):
            key = (bits, length, value >> (bits - length))
            if key in self.networks:
                until = self.networks[key]
                if until is not None and now >= until:
                    self.lift_network(_network(key))
                else:
                    live = True
        return live

    def expire(self) -> None:
        """Lift every expired ban."""
        now = self._clock.seconds()
        for key in [k for k, until in self.keys.items() if until is not None and now >= until]:
            del self.keys[key]
        for nk in [k for k, until in self.networks.items() if until is not None and now >= until]:
            self.lift_network(_network(nk))

    def entries(self, ipv6_prefix: int) -> Iterator[tuple[str, float | None]]:
        """Every ban as (address or network text, expiry), addresses first."""
        for key, until in sorted(self.keys.items()):
            yield key_text(key, ipv6_prefix), until
        for nk, until in sorted(self.networks.items()):
            yield network_text(_network(nk)), until

    def as_json(self, ipv6_prefix: int) -> list[dict[str, Any]]:
        """Current bans with the seconds left (None: until lifted)."""
        self.expire()
        now = self._clock.seconds()
        return [
            {"address": text, "expires_in_s": None if until is None else round(until - now, 3)}
            for text, until in self.entries(ipv6_prefix)
        ]
