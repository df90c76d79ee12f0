"""The connection as the IRC command handlers see it.

:class:`protocols.irc.server.IrcConnection` is built from the handler classes of
``registration``, ``queries`` and ``chat``; they type ``self`` against
:class:`Connection` here, so that none of them imports the server module.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime

from gateway.core.events import ClientInfo
from protocols.irc.message import Message
from protocols.irc.settings import IrcSettings


class Connection(Protocol):
    """One client connection of the IRC listener."""

    factory: Any
    settings: IrcSettings
    gateway: Any
    clock: IReactorTime
    transport: Any
    server: str
    service: str
    nick: str | None
    user: str | None
    realname: str
    registered: bool
    caps: set[str]
    cap_negotiating: bool
    away: str | None
    modes: set[str]
    channels: set[Any]
    agent: Any
    customer: Any
    client: ClientInfo
    peer: str
    closing: bool

    # The server's own (protocols.irc.server).

    def is_tls(self) -> bool:
        """Whether the connection is TLS."""

    def need(self, message: Message, count: int) -> bool:
        """Whether ``message`` has ``count`` parameters (461 if not)."""

    def send(self, message: Message) -> None:
        """Write one message."""

    def send_from(self, prefix: str, command: str, *params: str, tags: Any = None) -> None:
        """Write one message from ``prefix``."""

    def reply(self, numeric: str, *params: str) -> None:
        """Write a numeric reply."""

    def hostmask(self) -> str:
        """nick!user@host of this client."""

    def service_mask(self) -> str:
        """nick!user@host of the service."""

    def quit(self, reason: str) -> None:
        """ERROR and close."""

    def registration_done(self) -> None:
        """Registration completed: the ping timer starts."""

    def deliver(self, event: object) -> None:
        """Render a neutral event (IParty)."""

    def __getattr__(self, name: str) -> Any:
        # The handlers' own methods and state (try_register, chat_*, say_from...).
        ...
