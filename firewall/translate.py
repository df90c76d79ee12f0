"""Identity translation of message text: internal hosts, addresses, accounts to aliases."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from firewall.ruleset import Translation

# Candidates only; each is parsed before it is replaced.
_IPV4 = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\w)"
_IPV6 = r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])"
_HOST_CHARS = r"[A-Za-z0-9-]"


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
                    pattern = rf"(?<![\w.-]){re.escape(t.match)}"
                literal.append((pattern + r"(?![\w-]|\.\w)", t.alias))
            elif t.kind == "text":
                literal.append((re.escape(t.match), t.alias))
        # Longest patterns first, so a full name wins over a part of it.
        literal.sort(key=lambda pair: -len(pair[0]))
        self._aliases = [alias for _, alias in literal]
        self._literal = (
            re.compile("|".join(f"({p})" for p, _ in literal), re.IGNORECASE) if literal else None
        )
        self._address = re.compile(f"{_IPV4}|{_IPV6}") if self._networks else None

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
        try:
            addr = ipaddress.ip_address(found.split("%")[0])
        except ValueError:
            return found
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        for network, alias in self._networks:
            if network is not None and addr.version == network.version and addr in network:
                return alias
        return found
