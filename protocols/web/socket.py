"""JSON-IM/1 over WebSocket: one frame per text message, on autobahn's Twisted protocol.

:class:`WebChatProtocol` is the :class:`IFrameLink` of a :class:`JsonImSession`, which
holds every rule of JSON-IM (the same session as on TCP lines). This module adds what
the web brings: the page's origin (allowed origins, agents only from the console's
own origin, connections per origin), and a WebSocket close code and reason for every
refusal, since a browser's script sees those and nothing of a refused handshake.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionRequest
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from firewall.common import describe_address
from firewall.interfaces import IFirewalledProtocol
from gateway import logs
from protocols.jsonim.codec import encode, error_frame
from protocols.jsonim.interfaces import IFrameLink
from protocols.jsonim.session import SERVER_FEATURES, JsonImSession
from protocols.jsonim.settings import JsonImSettings
from protocols.tcp import firewall_message_hook, firewall_role
from protocols.web.settings import ANY_ORIGIN, WebSettings

# What the agent console is granted: what a JSON-IM session is.
FEATURES = frozenset(SERVER_FEATURES)

PROTOCOL = "web"
SERVER = "imgateway"

# WebSocket close codes (RFC 6455 section 7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013

# The close code that goes with the JSON-IM error a session closes after.
_CLOSE_FOR_ERROR = {
    "too_large": TOO_BIG,
    "bad_frame": INVALID_PAYLOAD,
    "auth_failed": POLICY_VIOLATION,
    "not_allowed": POLICY_VIOLATION,
    "bad_request": POLICY_VIOLATION,
    "unavailable": TRY_AGAIN_LATER,
    "internal": INTERNAL_ERROR,
}
# A close frame's reason is at most 123 bytes of UTF-8.
_MAX_REASON = 123


def _reason(text: str) -> str:
    data = text.encode("utf-8")[:_MAX_REASON]
    return data.decode("utf-8", "ignore")


def _netloc(origin: str) -> str:
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return ""


@implementer(IFrameLink, IFirewalledProtocol)
class WebChatProtocol(WebSocketServerProtocol):
    """One WebSocket connection carrying one JSON-IM session."""

    _log = Logger(observer=logs.observer)
    factory: WebChatFactory

    def __init__(self) -> None:
        super().__init__()
        self.session: JsonImSession | None = None
        self.peer = "unknown"
        self.peer_host: str | None = None
        self.origin: str | None = None
        self._agent_origin_ok = True
        self._counted_origin: str | None = None
        # (close code, reason) when the handshake's origin is refused.
        self._refusal: tuple[int, str] | None = None
        # The JSON-IM error the session sent last: the close code follows from it.
        self._last_error: dict[str, Any] | None = None
        self._last_type: str | None = None
        self._ended_for_shutdown = False
        self._count_message = firewall_message_hook(None)

    # -- Twisted and autobahn --------------------------------------------------

    def connectionMade(self) -> None:
        """Learn the peer (through the firewall's PROXY header) and its message hook."""
        super().connectionMade()
        address = self.transport.getPeer()
        self.peer = f"web {describe_address(address)}"
        self.peer_host = getattr(address, "host", None)
        self._count_message = firewall_message_hook(self.transport)

    def onConnect(self, request: ConnectionRequest) -> None:  # noqa: N802 (autobahn's name)
        """Check the page's origin; a refusal is told with a close frame once open."""
        origin = request.headers.get("origin")
        self.origin = origin.lower() if origin is not None else None
        host = request.headers.get("host", "")
        self._refusal, self._agent_origin_ok = self.factory.admit(self.origin, host)
        if self._refusal is None and self.origin is not None:
            self._counted_origin = self.origin
            self.factory.opened(self.origin)

    def onOpen(self) -> None:  # noqa: N802 (autobahn's name)
        """Start the session (it waits for hello), or refuse with a close code."""
        if self._refusal is not None:
            code, reason = self._refusal
            self._log.info(
                "{peer}: refused origin {origin}: {code} {reason}",
                peer=self.peer,
                origin=self.origin or "-",
                code=code,
                reason=reason,
            )
            self._close_with(code, reason)
            return
        factory = self.factory
        self.session = JsonImSession(
            self,
            factory.gateway,
            factory.config,
            server_name=factory.server_name,
            clock=factory.clock,
            protocol=PROTOCOL,
        )

    def onMessageFrameBegin(self, length: int) -> None:  # noqa: N802 (autobahn's name)
        """Refuse a message over max_frame as JSON-IM does (too_large), before reading it."""
        session = self.session
        limit = self.factory.config.max_frame
        if (
            session is not None
            and not session.closing
            and self.message_data_total_length + length > limit
        ):
            session.frame_too_large(f"frame exceeds {limit} bytes")
        super().onMessageFrameBegin(length)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803
        """One WebSocket message, one JSON-IM frame."""
        session = self.session
        if session is None or session.closing:
            return
        # The firewall counts messages against its message rate; False: dropped.
        if not self._count_message(1):
            session.stop_reading()
            return
        if isBinary:
            session.stop_reading()
            self._close_with(UNSUPPORTED_DATA, "JSON-IM frames travel as text messages")
            return
        session.frame_received(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N802, N803
        """The session ends with the connection."""
        if self._counted_origin is not None:
            self.factory.closed(self._counted_origin)
            self._counted_origin = None
        session, self.session = self.session, None
        if session is not None:
            session.connection_lost()

    # -- IFrameLink -------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """One frame, one text message; nothing once the WebSocket is closing."""
        if self.state != self.STATE_OPEN:
            return
        kind = frame.get("type")
        self._last_type = kind
        if kind == "error":
            self._last_error = frame
        elif kind == "ended" and frame.get("reason") == "shutdown":
            self._ended_for_shutdown = True
        # The encoder's line end is not part of a WebSocket message.
        self.sendMessage(encode(frame)[:-1], isBinary=False)

    def close(self) -> None:
        """Close with the code that says why: the JSON-IM error just sent, shutdown, or 1000."""
        error = self._last_error if self._last_type == "error" else None
        if error is not None:
            code = _CLOSE_FOR_ERROR.get(error["code"], POLICY_VIOLATION)
            reason = f"{error['code']}: {error['text']}"
        elif self._ended_for_shutdown:
            code, reason = GOING_AWAY, "the service is restarting"
        else:
            code, reason = NORMAL, "closed"
        self._close_with(code, reason)

    def claim_role(self, role: str) -> bool:
        """Agents only from the console's own origin; then the firewall's role rules."""
        if role == "agent" and not self._agent_origin_ok:
            self._log.info(
                "{peer}: agent login from origin {origin} refused",
                peer=self.peer,
                origin=self.origin,
            )
            self.send(error_frame("not_allowed", "agents log in from the console's own origin"))
            self.close()
            return False
        return firewall_role(self.transport, role)

    # -- IFirewalledProtocol ------------------------------------------------------

    def firewall_reject(self, reason: str) -> None:
        """The firewall refuses this connection: an error frame and a close frame."""
        if self.state == self.STATE_OPEN:
            self.send(error_frame("not_allowed", reason))
            self._close_with(POLICY_VIOLATION, reason)

    def _close_with(self, code: int, reason: str) -> None:
        # RFC 6455's own codes (1008 policy, 1009 too big, 1013 try later...) say why;
        # autobahn's sendClose takes application codes only, its close frame call all.
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=_reason(reason).encode(), isReply=False)


class WebChatFactory(WebSocketServerFactory):
    """Builds a :class:`WebChatProtocol` per WebSocket; keeps the origin policy and counts."""

    protocol = WebChatProtocol
    noisy = False

    def __init__(
        self,
        gateway: Any,
        config: JsonImSettings,
        web: WebSettings,
        *,
        server_name: str,
        clock: IReactorTime,
    ) -> None:
        super().__init__(server=SERVER, reactor=clock)
        self.gateway = gateway
        self.config = config
        self.web = web
        self.server_name = server_name
        self.clock = clock
        self._allowed = frozenset(web.allowed_origins)
        self._console = frozenset(web.console_origins)
        self._per_origin: Counter[str] = Counter()
        self.setProtocolOptions(
            maxFramePayloadSize=config.max_frame,
            maxMessagePayloadSize=config.max_frame,
            # Refusals are told with a close frame (code and reason), not a dropped socket.
            failByDrop=False,
            openHandshakeTimeout=web.handshake_timeout_s,
            closeHandshakeTimeout=2,
            webStatus=False,
            utf8validateIncoming=True,
            requireMaskedClientFrames=True,
            tcpNoDelay=True,
            # No compression: a small frame must not inflate into a large one.
            perMessageCompressionAccept=lambda offers: None,
            # Origins are this factory's own business (admit).
            allowedOrigins=["*"],
            allowNullOrigin=True,
        )

    def admit(self, origin: str | None, host: str) -> tuple[tuple[int, str] | None, bool]:
        """(refusal or None, whether agents may log in) for a page of ``origin``."""
        if origin is None:
            if self.web.allow_missing_origin:
                return None, True
            return (POLICY_VIOLATION, "an Origin header is required"), False
        own = _netloc(origin) == host.lower() or origin in self._console
        if not (own or ANY_ORIGIN in self._allowed or origin in self._allowed):
            return (POLICY_VIOLATION, f"origin not allowed: {origin[:80]}"), False
        if self._per_origin[origin] >= self.web.max_connections_per_origin:
            reason = "too many connections from this origin; try again later"
            return (TRY_AGAIN_LATER, reason), own
        return None, own

    def opened(self, origin: str) -> None:
        """Count a connection from a page of ``origin``."""
        self._per_origin[origin] += 1

    def closed(self, origin: str) -> None:
        """Stop counting a connection from ``origin``."""
        self._per_origin[origin] -= 1
        if self._per_origin[origin] <= 0:
            del self._per_origin[origin]

    def connections_from(self, origin: str) -> int:
        """WebSocket connections open now from pages of ``origin``."""
        return self._per_origin[origin]
