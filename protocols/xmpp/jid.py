"""Just enough JID handling: split, bare, and a simplified case fold."""

from __future__ import annotations

from functools import lru_cache

import attrs

MAX_PART = 1023


class InvalidJid(ValueError):
    """Not a usable JID."""


@attrs.frozen
class Jid:
    """An XMPP address; ``local`` and ``domain`` are lower-cased."""

    local: str
    domain: str
    resource: str = ""

    @property
    def bare(self) -> str:
        """``local@domain`` (or the domain alone)."""
        return f"{self.local}@{self.domain}" if self.local else self.domain

    @property
    def full(self) -> str:
        """The whole address, with its resource if any."""
        return f"{self.bare}/{self.resource}" if self.resource else self.bare

    def __str__(self) -> str:
        return self.full


# Addresses up to this long are remembered (a few MiB at most for the whole cache).
_CACHED_LENGTH = 256


def _parse(text: str) -> Jid:
    bare, slash, resource = text.partition("/")
    local, at, domain = bare.rpartition("@")
    if slash and not resource:
        raise InvalidJid("empty resource")
    if at and not local:
        raise InvalidJid("empty local part")
    if not domain or any(len(p) > MAX_PART for p in (local, domain, resource)):
        raise InvalidJid("bad length")
    if any(c.isspace() or c in "\"&'/:<>@" for c in local) or any(
        c.isspace() or c in "/@" for c in domain
    ):
        raise InvalidJid("bad character")
    return Jid(local.lower(), domain.lower().rstrip("."), resource)


# Jid is frozen, so one parse serves every stanza an address comes in.
_parse_cached = lru_cache(maxsize=8192)(_parse)


def parse_jid(text: str | None) -> Jid:
    """Parse ``local@domain/resource``; raises :class:`InvalidJid`.

    Addresses are parsed once: the last 8,192 short ones are remembered.
    """
    if not text:
        raise InvalidJid("empty address")
    return _parse_cached(text) if len(text) <= _CACHED_LENGTH else _parse(text)
