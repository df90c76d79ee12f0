"""The web listener's HTTP side: the widget's files, the agent console, the demo page and
the WebSocket endpoint ``/ws``, on one port (``twisted.web``).

Every request is one message to the firewall's message rate (:class:`WebChannel`),
as every WebSocket message is once ``/ws`` has taken the connection over. Requests
with a body are refused: nothing here reads one. Pages are sent with a
Content-Security-Policy that allows the gateway's own scripts and styles only, and no
inline script; nothing sets a cookie.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from firewall.common import describe_address
from firewall.interfaces import IFirewalledProtocol
from gateway import logs
from protocols.tcp import firewall_message_hook, no_delay
from protocols.web.settings import WebSettings
from protocols.web.socket import WebChatFactory

# The largest request body accepted (none of the resources reads one).
MAX_BODY = 8192

_COMMON = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}
_PAGE = {
    **_COMMON,
    b"cache-control": b"no-store",
    b"x-frame-options": b"DENY",
    b"content-security-policy": (
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        b" img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}
# The widget's files are loaded by other sites' pages.
_ASSET = {
    **_COMMON,
    b"cache-control": b"no-cache",
    b"access-control-allow-origin": b"*",
    b"cross-origin-resource-policy": b"cross-origin",
}
_TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".html": b"text/html; charset=utf-8",
    ".json": b"application/json; charset=utf-8",
}
_STATIC = "protocols.web"


def _static(name: str) -> bytes:
    return resources.files(_STATIC).joinpath("static", name).read_bytes()


def _headers(request: Request, headers: dict[bytes, bytes]) -> None:
    for name, value in headers.items():
        request.setHeader(name, value)
    if request.isSecure():
        request.setHeader(b"strict-transport-security", b"max-age=31536000")


class Asset(Resource):
    """One static file, read once; answered 304 when the client has it."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, body: bytes, content_type: bytes, headers: dict[bytes, bytes]) -> None:
        super().__init__()
        self.body = body
        self._type = content_type
        self._headers = headers
        self.etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'

    def render_GET(self, request: Request) -> bytes:
        """The file, or 304 Not Modified for a matching If-None-Match."""
        _headers(request, self._headers)
        request.setHeader(b"content-type", self._type)
        request.setHeader(b"etag", self.etag)
        if request.getHeader(b"if-none-match") == self.etag:
            request.setResponseCode(304)
            return b""
        return self.body


class _Missing(Resource):
    isLeaf = True  # noqa: N815 (Twisted's name)

    def render(self, request: Request) -> bytes:
        _headers(request, _COMMON)
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"not found\n"


class SocketResource(WebSocketResource):
    """``/ws``: autobahn takes the connection over from the HTTP channel."""

    def render(self, request: Request) -> Any:
        """Hand the connection to the WebSocket factory; the HTTP timeouts stop."""
        request.channel.setTimeout(None)
        request.channel._disarm()
        return super().render(request)


class WebRoot(Resource):
    """The listener's paths: ``/ws``, the widget, and the console and demo when enabled."""

    def __init__(self, sockets: WebChatFactory, web: WebSettings, server_name: str) -> None:
        super().__init__()
        # The markup renderer's name stays inside the widget's own function scope.
        script = b"(function () {\n" + _static("markup.js") + _static("widget.js") + b"})();\n"
        paths: dict[bytes, Resource] = {
            b"ws": SocketResource(sockets),
            # One script for the widget: the markup renderer and the widget itself.
            b"widget.js": Asset(script, _TYPES[".js"], _ASSET),
            b"widget.css": Asset(_static("widget.css"), _TYPES[".css"], _ASSET),
        }
        if web.console:
            config = {"server": server_name, "away_reasons": list(web.away_reasons)}
            paths[b"console"] = Asset(_static("console.html"), _TYPES[".html"], _PAGE)
            no_store = {**_COMMON, b"cache-control": b"no-store"}
            paths[b"console.json"] = Asset(json.dumps(config).encode(), _TYPES[".json"], no_store)
            for name in ("console.js", "console-desk.js", "console.css", "markup.js"):
                paths[name.encode()] = Asset(_static(name), _TYPES[name[name.rindex(".") :]], _PAGE)
        if web.demo:
            paths[b"demo"] = Asset(_static("demo.html"), _TYPES[".html"], _PAGE)
            paths[b"demo.css"] = Asset(_static("demo.css"), _TYPES[".css"], _PAGE)
        self._paths = paths
        self._missing = _Missing()

    def getChild(self, path: bytes, request: Request) -> Resource:  # noqa: N802 (Twisted's name)
        """One path segment names every resource; anything longer is not found."""
        found = self._paths.get(path)
        if found is None or request.postpath not in ([], [b""]):
            return self._missing
        return found

    def render(self, request: Request) -> bytes:
        """``/``: nothing there."""
        return self._missing.render(request)


@implementer(IFirewalledProtocol)
class WebChannel(HTTPChannel):
    """An HTTP connection that reports each request to the firewall and reads no bodies.

    A request's headers must arrive in full within ``request_timeout_s`` of the
    connection (or of the previous answer): a client sending them a byte at a time
    would otherwise hold the connection, since every byte restarts the idle timeout.
    """

    request_timeout_s = 10.0
    _log = Logger(observer=logs.observer)

    def __init__(self) -> None:
        super().__init__()
        self._count_request = firewall_message_hook(None)
        self._refused = False
        self._deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """Find the firewall's message hook (through a TLS layer too); start the deadline."""
        super().connectionMade()
        no_delay(self.transport)
        self._count_request = firewall_message_hook(self.transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.callLater(self.request_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self._refused = True
        if self.transport is None:  # taken over by the WebSocket
            return
        self._log.info(
            "web {peer}: no whole request in {seconds}s; closed",
            peer=describe_address(self.transport.getPeer()),
            seconds=self.request_timeout_s,
        )
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        )
        self.transport.loseConnection()

    def requestDone(self, request: Request) -> None:  # noqa: N802 (Twisted's name)
        """An answer went out: the next request has its own deadline."""
        super().requestDone(request)
        if self.transport is not None and not self._refused:
            self._arm()

    def connectionLost(self, reason: Any) -> None:
        """Stop the deadline."""
        self._disarm()
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        """Read nothing more once this connection was refused."""
        if not self._refused:
            super().dataReceived(data)

    def allHeadersReceived(self) -> None:  # noqa: N802 (Twisted's name)
        """Count the request; refuse one with a body."""
        self._disarm()
        if not self._count_request(1):
            self._refused = True
            return
        if self.length != 0 and (self.length is None or self.length > MAX_BODY):
            self._refused = True
            self.transport.write(
                b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\n"
                b"content-type: text/plain; charset=utf-8\r\ncontent-length: 25\r\n\r\n"
                b"request bodies not taken\n"
            )
            self.loseConnection()
            return
        super().allHeadersReceived()

    def allContentReceived(self) -> None:  # noqa: N802 (Twisted's name)
        """Handle the request unless it was refused."""
        if not self._refused:
            super().allContentReceived()

    def firewall_reject(self, reason: str) -> None:
        """The firewall refuses this connection: 403 and the reason (it then closes)."""
        body = f"{reason}\n".encode()
        self.transport.write(
            b"HTTP/1.1 403 Forbidden\r\nconnection: close\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )


class WebSite(Site):
    """The web listener's factory (the firewall wraps it): HTTP/1.1 and WebSocket."""

    protocol = WebChannel
    noisy = False
    displayTracebacks = False  # noqa: N815 (Twisted's name)

    def __init__(self, resource: Resource, *, request_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self.request_timeout_s = request_timeout_s

    def buildProtocol(self, addr: Any) -> WebChannel:
        """A channel with this listener's request deadline."""
        channel = super().buildProtocol(addr)
        channel.request_timeout_s = self.request_timeout_s
        return channel

    def log(self, request: Request) -> None:
        """No access log line per request."""


def web_site(
    sockets: WebChatFactory, web: WebSettings, *, server_name: str, clock: IReactorTime
) -> WebSite:
    """The factory of a ``web`` listener."""
    return WebSite(
        WebRoot(sockets, web, server_name),
        request_timeout_s=web.handshake_timeout_s,
        timeout=web.http_timeout_s,
        reactor=clock,
    )
