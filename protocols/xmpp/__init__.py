"""XMPP: the gateway's own client listener (c2s) and an XEP-0114 component of a server.

Listener: ``c2s`` (STARTTLS or direct TLS, SASL in ``sasl``/``auth``), sharing the
``hub`` of parties with the component (``component``); ``parser`` is the bounded
stream parser, ``stanzas``/``render`` build what is sent, ``commands`` are the agents'
commands, ``settings`` the ``[xmpp]`` section.
"""

from __future__ import annotations

from typing import Any

from gateway.plugins import Adapter
from protocols.xmpp import settings


def _starttls(gateway: Any, config: Any, reactor: Any) -> Any:
    from protocols.xmpp.c2s import starttls_factory

    return starttls_factory(gateway, config, reactor)


def _direct_tls(gateway: Any, config: Any, reactor: Any) -> Any:
    from protocols.xmpp.c2s import direct_tls_factory

    return direct_tls_factory(gateway, config, reactor)


def _component(gateway: Any, config: Any, reactor: Any) -> Any:
    from protocols.xmpp.component import build

    return build(gateway, config, reactor)


adapter = Adapter(
    name="xmpp",
    sections={"xmpp": settings.parse},
    listeners={"xmpp": _starttls, "xmpps": _direct_tls},
    upstreams=(_component,),
    address_scheme="xmpp",
    # Bare JIDs compare case-insensitively in their local and domain parts.
    normalise=str.lower,
    # XEP-0085 chat states.
    features=frozenset({"typing"}),
)
