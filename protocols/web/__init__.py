"""Web chat: the customer widget, the agent console and JSON-IM/1 over WebSocket.

One ``web`` listener serves, on one port (``site``): ``/ws``, JSON-IM/1 frames one per
WebSocket text message, each connection a :class:`protocols.jsonim.session.JsonImSession`
(``socket``); the widget's script and stylesheet; the agent console; the demo page.
``settings`` is ``[web]``; the files are in ``static/``. See docs/web.md.
"""

from __future__ import annotations

from typing import Any

from gateway.plugins import Adapter
from protocols.web import settings
from protocols.web.site import WebSite, web_site
from protocols.web.socket import FEATURES, WebChatFactory


def build(gateway: Any, config: Any, reactor: Any) -> WebSite:
    """The factory of a ``web`` listener (the firewall wraps it)."""
    web = config.sections["web"]
    sockets = WebChatFactory(
        gateway, config.sections["jsonim"], web, server_name=config.name, clock=reactor
    )
    return web_site(sockets, web, server_name=config.name, clock=reactor)


adapter = Adapter(
    name="web",
    sections={"web": settings.parse},
    listeners={"web": build},
    features=FEATURES,
)

__all__ = ["WebChatFactory", "WebSite", "adapter", "build"]
