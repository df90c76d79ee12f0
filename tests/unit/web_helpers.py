"""The web listener over a StringTransport: HTTP requests, the WebSocket handshake that
hands the connection to autobahn, and JSON-IM frames as WebSocket messages."""

from __future__ import annotations

import json
from typing import Any

from jsonim_helpers import FakeGateway
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from ws_frames import BINARY, CLOSE, TEXT, client_frame, close_code, handshake_request, read_frames
from zope.interface import implementer

from firewall.interfaces import IFirewallTransport
from protocols.jsonim.settings import JsonImSettings
from protocols.web.settings import WebSettings
from protocols.web.site import web_site
from protocols.web.socket import WebChatFactory, WebChatProtocol

HOST = "gw.example:8080"
SHOP = "https://shop.example"


@implementer(IFirewallTransport)
class FirewalledTransport(StringTransport):
    """A transport as the firewall hands it over: counts messages, answers role claims."""

    def __init__(self, peer: IPv4Address) -> None:
        super().__init__(peerAddress=peer)
        self.messages = 0
        self.message_limit: int | None = None
        self.roles: list[str] = []
        self.role_ok = True

    def firewall_messages(self, count: int = 1) -> bool:
        self.messages += count
        return self.message_limit is None or self.messages <= self.message_limit

    def firewall_role(self, role: str) -> bool:
        self.roles.append(role)
        return self.role_ok


class Site:
    """One web listener (factory and site) on a Clock, with a FakeGateway behind it."""

    def __init__(
        self,
        web: WebSettings | None = None,
        jsonim: JsonImSettings | None = None,
        gateway: FakeGateway | None = None,
    ) -> None:
        self.clock = Clock()
        self.gateway = gateway or FakeGateway()
        self.web = web or WebSettings(allowed_origins=(SHOP,), demo=True)
        self.jsonim = jsonim or JsonImSettings()
        self.sockets = WebChatFactory(
            self.gateway, self.jsonim, self.web, server_name="gw-test", clock=self.clock
        )
        self.site = web_site(self.sockets, self.web, server_name="gw-test", clock=self.clock)

    def connect(self, peer: str = "127.0.0.1") -> Wire:
        """A new connection to the listener."""
        return Wire(self, peer)


class Wire:
    """One connection: HTTP first, then (after ``open``) WebSocket frames."""

    def __init__(self, site: Site, peer: str) -> None:
        self.site = site
        self.transport = FirewalledTransport(IPv4Address("TCP", peer, 40000))
        self.channel = site.site.buildProtocol(self.transport.getPeer())
        self.transport.protocol = self.channel
        self.channel.makeConnection(self.transport)
        self.ws: WebChatProtocol | None = None
        self._rest = b""

    def http(self, request: bytes) -> bytes:
        """Send raw HTTP; what the server wrote since the last look."""
        self.channel.dataReceived(request)
        return self.take()

    def take(self) -> bytes:
        """What the server wrote since the last look."""
        data = self.transport.value()
        self.transport.clear()
        return data

    def open(self, origin: str | None = SHOP, host: str = HOST) -> WebChatProtocol:
        """The opening handshake; the WebSocket protocol that took the connection over."""
        request, accept = handshake_request(host=host, origin=origin)
        response = self.http(request)
        head = response.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 101 "), response
        assert f"Sec-WebSocket-Accept: {accept}" in head, head
        self._rest = response.split(b"\r\n\r\n", 1)[1]
        self.ws = self.transport.protocol
        assert isinstance(self.ws, WebChatProtocol), self.ws
        return self.ws

    def send(self, *frames: dict[str, Any] | bytes, opcode: int = TEXT) -> None:
        """Client frames: dicts as JSON text messages, bytes as they are (already framed)."""
        for f in frames:
            data = f if isinstance(f, bytes) else client_frame(json.dumps(f).encode(), opcode)
            self.ws.dataReceived(data)

    def frames(self) -> list[tuple[int, bytes]]:
        """The server's frames since the last look."""
        frames, self._rest = read_frames(self._rest + self.take())
        return frames

    def received(self) -> list[dict[str, Any]]:
        """The JSON-IM frames (text messages) since the last look; fails on a close."""
        out = []
        for opcode, payload in self.frames():
            assert opcode == TEXT, (opcode, payload)
            out.append(json.loads(payload))
        return out

    def closed_with(self) -> tuple[list[dict[str, Any]], int | None, str]:
        """(JSON-IM frames before it, close code, reason) of the server's close frame."""
        texts = []
        for opcode, payload in self.frames():
            if opcode == CLOSE:
                return (texts, *close_code(payload))
            assert opcode == TEXT, (opcode, payload)
            texts.append(json.loads(payload))
        raise AssertionError(f"no close frame; frames: {texts}")


def hello_customer(**extra: Any) -> dict[str, Any]:
    """A customer's hello as the widget sends it."""
    return {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "customer",
        "client": {"name": "webchat", "version": "1.0"},
        "features": ["typing", "rich_text", "receipts"],
        **extra,
    }


def hello_agent(**extra: Any) -> dict[str, Any]:
    """An agent's hello as the console sends it."""
    return {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "agent",
        "client": {"name": "imgateway-console", "version": "1.0"},
        "features": ["typing", "rich_text", "receipts"],
        "auth": {"user": "anna", "password": "pw"},
        **extra,
    }


__all__ = ["BINARY", "HOST", "SHOP", "Site", "Wire", "client_frame", "hello_agent"]
