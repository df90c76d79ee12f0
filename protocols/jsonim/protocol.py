"""JSON-IM/1 over TCP: one frame per line (see the JSON-IM spec, "Transport and framing").

:class:`JsonImProtocol` cuts the byte stream into frames (:class:`LineFramer`),
reports each to the firewall, and hands it to the connection's
:class:`JsonImSession`, which holds every rule of the protocol.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from firewall.common import describe_address
from firewall.interfaces import IFirewalledProtocol
from protocols.jsonim.codec import encode, error_frame
from protocols.jsonim.framing import FrameTooLarge, LineFramer
from protocols.jsonim.interfaces import IFrameLink
from protocols.jsonim.session import JsonImSession
from protocols.jsonim.settings import JsonImSettings
from protocols.tcp import firewall_message_hook, firewall_role, no_delay


@implementer(IFirewalledProtocol, IFrameLink)
class JsonImProtocol(Protocol):
    """One JSON-IM/1 connection over TCP (or TLS): frames as lines, for one session."""

    def __init__(self, factory: JsonImFactory) -> None:
        self.factory = factory
        self._framer = LineFramer(factory.config.max_frame)
        self.session: JsonImSession | None = None
        self.peer = "unknown"
        self.peer_host: str | None = None

    # -- Twisted protocol ---------------------------------------------------

    def connectionMade(self) -> None:
        """Start the session, which waits for hello."""
        no_delay(self.transport)
        self._count_message = firewall_message_hook(self.transport)
        address = self.transport.getPeer()
        self.peer = describe_address(address)
        self.peer_host = getattr(address, "host", None)
        factory = self.factory
        self.session = JsonImSession(
            self,
            factory.gateway,
            factory.config,
            server_name=factory.server_name,
            clock=factory.clock,
        )

    def dataReceived(self, data: bytes) -> None:
        """Cut received bytes into frames and hand each to the session while it reads."""
        session = self.session
        if session.closing:
            return
        self._framer.feed(data)
        try:
            for raw in self._framer:
                # The firewall counts frames against its message rate; False: dropped.
                if not self._count_message(1):
                    session.stop_reading()
                    return
                session.frame_received(raw)
                if session.closing:
                    break
        except FrameTooLarge as e:
            session.frame_too_large(str(e))

    def connectionLost(self, reason: Failure | None = None) -> None:
        """The session ends with the connection."""
        if self.session is not None:
            self.session.connection_lost()

    # -- IFrameLink -------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """One frame, one line."""
        self.transport.write(encode(frame))

    def close(self) -> None:
        """Close once what was written has gone out."""
        self.transport.loseConnection()

    def claim_role(self, role: str) -> bool:
        """The firewall's role rules; False: refused."""
        return firewall_role(self.transport, role)

    # -- IFirewalledProtocol ------------------------------------------------------

    def firewall_reject(self, reason: str) -> None:
        """The firewall rejects this connection: an error frame (the firewall then closes)."""
        self.transport.write(encode(error_frame("not_allowed", reason)))


class JsonImFactory(ServerFactory):
    """Builds a :class:`JsonImProtocol` for each connection of a JSON-IM listener."""

    noisy = False

    def __init__(
        self,
        gateway: Any,
        config: JsonImSettings,
        *,
        server_name: str,
        clock: IReactorTime,
    ) -> None:
        self.gateway = gateway
        self.config = config
        self.server_name = server_name
        self.clock = clock

    def buildProtocol(self, addr: IAddress) -> JsonImProtocol:
        """A protocol for one new connection."""
        return JsonImProtocol(self)
