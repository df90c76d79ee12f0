"""The parts ``twistd imgateway`` is built from, found the Twisted way (``getPlugins``).

Every protocol adapter, and each of the gateway's own services that owns a section of
the configuration, is one :class:`IGatewayPart` object listed in
``twisted/plugins/imgateway_parts.py``. The configuration loader learns its sections
from them, and the composition root (:mod:`gateway.app.service`) its listeners and
upstream services, so that nothing in ``gateway/`` imports ``protocols/``.

A new protocol is a folder under ``protocols/`` whose package exposes an
:class:`Adapter`, plus one line in that plugin module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.plugin import IPlugin, getPlugins
from zope.interface import Attribute, Interface, implementer

# parse(Reader) -> the section's settings, found in Config.sections[name].
SectionParser = Callable[[Any], Any]
# build(gateway, config, reactor) -> a protocol factory for one listener kind.
ListenerBuilder = Callable[[Any, Any, Any], Any]
# build(gateway, config, reactor) -> an IService, or None when not configured.
UpstreamBuilder = Callable[[Any, Any, Any], Any]


class IGatewayPart(Interface):
    """One part of the gateway that the composition root assembles."""

    name = Attribute("A short name, e.g. 'xmpp' or 'store'.")
    sections = Attribute(
        "Mapping of configuration section -> parse(Reader) returning its settings "
        "(Config.sections[section])."
    )
    upstreams = Attribute(
        "Builders of services started with the gateway (an XMPP component, an IRC bot, "
        "an in-process bot): build(gateway, config, reactor) -> IService or None."
    )


class IAdapter(IGatewayPart):
    """A protocol adapter: how customers and agents on one IM protocol reach the gateway."""

    listeners = Attribute(
        "Mapping of [listeners] key -> build(gateway, config, reactor) returning the "
        "protocol factory the firewall wraps for that listener kind."
    )
    address_scheme = Attribute(
        "The scheme of IM addresses agents are provisioned by on this protocol "
        "('xmpp' for xmpp:anna@corp.example), or None."
    )
    features = Attribute(
        "The features this protocol can grant an agent's IM software ('typing', "
        "'rich_text', 'receipts', ...; plain text goes without saying). Routing rules "
        "that require a feature no adapter grants are refused when loaded."
    )

    def normalise_address(address):
        """An agent IM address (without scheme) as it is stored and compared."""


@implementer(IPlugin, IGatewayPart)
@attrs.frozen
class Part:
    """A part of the gateway that owns configuration sections or upstream services."""

    name: str
    sections: Mapping[str, SectionParser] = attrs.field(factory=dict)
    upstreams: tuple[UpstreamBuilder, ...] = ()


def _same(address: str) -> str:
    return address


@implementer(IPlugin, IAdapter)
@attrs.frozen
class Adapter:
    """A protocol adapter's registration: one per folder of ``protocols/``."""

    name: str
    sections: Mapping[str, SectionParser] = attrs.field(factory=dict)
    listeners: Mapping[str, ListenerBuilder] = attrs.field(factory=dict)
    upstreams: tuple[UpstreamBuilder, ...] = ()
    address_scheme: str | None = None
    normalise: Callable[[str], str] = _same
    features: frozenset[str] = frozenset()

    def normalise_address(self, address: str) -> str:
        """An agent IM address (without scheme) as stored and compared."""
        return self.normalise(address)


def parts() -> tuple[IGatewayPart, ...]:
    """Every registered part, adapters included, by name."""
    import twisted.plugins

    found = {part.name: part for part in getPlugins(IGatewayPart, twisted.plugins)}
    return tuple(found[name] for name in sorted(found))


def adapters() -> tuple[IAdapter, ...]:
    """The registered protocol adapters, by name."""
    return tuple(part for part in parts() if IAdapter.providedBy(part))
