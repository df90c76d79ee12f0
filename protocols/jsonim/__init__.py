"""JSON-IM/1: the gateway's own line protocol of JSON frames (see the JSON-IM spec).

``session`` is the protocol's state machine (hello, the customer's and the agent's
frames, acks, heartbeats), apart from any transport; ``protocol`` carries it over
TCP lines (``framing``); ``codec`` reads and writes frames; ``settings`` is ``[jsonim]``.
"""

from __future__ import annotations

from typing import Any

from gateway.plugins import Adapter
from protocols.jsonim import settings
from protocols.jsonim.protocol import JsonImFactory, JsonImProtocol
from protocols.jsonim.session import SERVER_FEATURES


def build(gateway: Any, config: Any, reactor: Any) -> JsonImFactory:
    """The factory of a ``jsonim`` listener."""
    return JsonImFactory(gateway, config.sections["jsonim"], server_name=config.name, clock=reactor)


adapter = Adapter(
    name="jsonim",
    sections={"jsonim": settings.parse},
    listeners={"jsonim": build},
    features=frozenset(SERVER_FEATURES),
)

__all__ = ["JsonImFactory", "JsonImProtocol", "adapter", "build"]
