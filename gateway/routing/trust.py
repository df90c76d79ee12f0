"""Which customer attributes routing rules may match on, by where they came from.

A customer's attributes come from the connection itself (``protocol``, ``media``), a
configured interview question (``interview``), a verified account (``account``: the
customer's own IM server, or a site-signed identity), or the customer's software
sending whatever it likes (``claim``: hello fields no question asked for, the client's
name and version). The ``[trust]`` table of a rules file says, per attribute, the
sources rules may match it from; an attribute from another source is not seen by the
rules (as if absent), and the decision's reason names it. By default:

- ``topic``, ``language``: any source (the customer chooses them anyway);
- ``client``, ``version``: any source (the software reports them);
- ``priority`` and every ``identity.FIELD``: ``interview`` and ``account`` only, so that
  no customer promotes itself with ``"identity": {"tier": "vip"}`` in its hello;
- ``protocol``, ``media``: always (the connection's own).

``[trust] "identity.*"`` sets the default of the identity fields; an empty list trusts
an attribute from nowhere, and then no rule may match on it (the file is refused).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from gateway.config import ConfigError
from gateway.routing.plan import CONNECTION, SOURCES

ALL = frozenset(SOURCES)
ASKED_OR_VERIFIED = frozenset({"interview", "account"})
DEFAULTS: Mapping[str, frozenset[str]] = {
    "topic": ALL,
    "language": ALL,
    "client": ALL,
    "version": ALL,
    "priority": ASKED_OR_VERIFIED,
}
IDENTITY_PREFIX = "identity."
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
IDENTITY_ANY = "identity.*"
CONNECTION_KEYS = frozenset({"protocol", "media"})
KEYS = (*DEFAULTS, IDENTITY_ANY, "identity.FIELD")


@attrs.frozen
class Trust:
    """The sources each attribute is trusted from (a rules file's ``[trust]``)."""

    attributes: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    identity: frozenset[str] = ASKED_OR_VERIFIED

    def sources_of(self, attribute: str) -> frozenset[str]:
        """The sources rules trust ``attribute`` from."""
        trusted = self.attributes.get(attribute)
        if trusted is not None:
            return trusted
        if attribute.startswith(IDENTITY_PREFIX):
            return self.identity
        return DEFAULTS.get(attribute, ALL)

    def trusts(self, attribute: str, source: str) -> bool:
        """Whether rules may match ``attribute`` when it came from ``source``."""
        if attribute in CONNECTION_KEYS or source == CONNECTION:
            return True
        return source in self.sources_of(attribute)

    def check_rule(self, source: str, where: str, keys: Iterable[str]) -> None:
        """A rule may match only attributes trusted from some source."""
        for key in keys:
            if key not in CONNECTION_KEYS and not self.sources_of(key):
                raise ConfigError(
                    source,
                    f'{where}."{key}"' if "." in key else f"{where}.{key}",
                    f"the site trusts {key} from no source ([trust]), so no rule may match on it",
                )

    @classmethod
    def parse(cls, t: Any) -> Trust:
        """The ``[trust]`` table of a rules file (a :class:`gateway.config.Reader`)."""
        attributes: dict[str, frozenset[str]] = {}
        identity = ASKED_OR_VERIFIED
        for key, values in t.table.items():
            path = f'{t.prefix}."{key}"' if "." in key else f"{t.prefix}.{key}"
            if key in CONNECTION_KEYS:
                raise ConfigError(t.source, path, "comes from the connection: always trusted")
            name = key.removeprefix(IDENTITY_PREFIX)
            known = key in DEFAULTS or key == IDENTITY_ANY
            if not known and not (key.startswith(IDENTITY_PREFIX) and _field_name(name)):
                raise ConfigError(t.source, path, f"unknown attribute (one of {', '.join(KEYS)})")
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ConfigError(
                    t.source, path, f"must be a list of sources ({', '.join(SOURCES)})"
                )
            for i, value in enumerate(values):
                if value not in SOURCES:
                    raise ConfigError(
                        t.source,
                        f"{path}[{i}]",
                        f"must be one of {', '.join(SOURCES)}, not {value!r}",
                    )
            if key == IDENTITY_ANY:
                identity = frozenset(values)
            else:
                attributes[key] = frozenset(values)
        return cls(attributes=attributes, identity=identity)


def _field_name(name: str) -> bool:
    return _NAME.match(name) is not None
