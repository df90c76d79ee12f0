"""The direct IRC listener: one :class:`IrcConnection` per client, made by :class:`IrcFactory`.

The connection frames and parses lines (bounded, see :mod:`.framing`), paces them
with a token bucket (fake lag, then "Excess Flood"), keeps the registration and
PING timers on the injected clock, and hands each command to its handler; the
handlers live in mixins by subject: :mod:`.registration`, :mod:`.queries` and
:mod:`.chat`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ISSLTransport
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from firewall.common import TokenBucket, describe_address
from firewall.interfaces import IFirewalledProtocol
from gateway import __version__, logs
from gateway.core.events import ClientInfo
from gateway.core.interfaces import IParty, IPartyLimits
from protocols.irc import numerics as rpl
from protocols.irc.channels import Channel, make_channels
from protocols.irc.chat import ChatCommands
from protocols.irc.framing import TOO_LONG, LineFramer
from protocols.irc.info import InfoCommands
from protocols.irc.message import Message, ParseError, decode, parse, serialise
from protocols.irc.queries import QueryCommands
from protocols.irc.registration import RegistrationCommands
from protocols.irc.settings import IrcSettings
from protocols.tcp import firewall_message_hook, no_delay

if TYPE_CHECKING:
    from gateway.core.interfaces import IAgentSession as AgentSession
    from gateway.core.interfaces import ICustomerSession as CustomerSession
    from gateway.core.interfaces import IGateway as Gateway

PROTOCOL = "irc"
# Stands in the pacing queue for a line that was too long (the framer never yields b"").
_OVERLONG = b""
# Lines kept while an agent's password is checked (handled in order after it).
MAX_LINES_DURING_LOGIN = 32
# Commands a client may send before it is registered.
_BEFORE_REGISTRATION = frozenset(
    {"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "AUTHENTICATE"}
)


@implementer(IParty, IPartyLimits, IFirewalledProtocol)
class IrcConnection(RegistrationCommands, QueryCommands, InfoCommands, ChatCommands, Protocol):
    """One IRC client: a customer, or an agent once logged in with SASL or PASS."""

    _log = Logger(observer=logs.observer)

    def __init__(self, factory: IrcFactory) -> None:
        self.factory = factory
        self.settings: IrcSettings = factory.settings
        self.gateway: Gateway = factory.gateway
        self.clock: IReactorTime = factory.clock
        self.server = self.settings.server_name
        self.service = self.settings.service_nick
        self.nick: str | None = None
        self.user: str | None = None
        self.realname = ""
        self.registered = False
        self.caps: set[str] = set()
        self.cap_negotiating = False
        self.away: str | None = None
        self.modes: set[str] = set()
        self.channels: set[Channel] = set()
        # Roles: an agent has logged in; everyone else is a customer.
        self.agent: AgentSession | None = None
        self.customer: CustomerSession | None = None
        self.client = ClientInfo()
        self.peer = "unknown"
        self.closing = False
        self._framer = LineFramer(self.settings.max_line, self.settings.max_tags)
        self._bucket = TokenBucket(
            self.settings.lines_per_second, self.settings.line_burst, self.clock
        )
        self._lag: deque[bytes] = deque()
        self._during_login: deque[bytes] = deque()
        self._lag_timer: IDelayedCall | None = None
        self._registration_timer: IDelayedCall | None = None
        self._ping_timer: IDelayedCall | None = None
        self._awaiting_pong = False
        self.init_registration()
        self.init_chat()

    # -- Twisted protocol ---------------------------------------------------

    def connectionMade(self) -> None:
        """Start the registration deadline."""
        no_delay(self.transport)
        self._count_message = firewall_message_hook(self.transport)
        self.peer = describe_address(self.transport.getPeer())
        self._registration_timer = self.clock.callLater(
            self.settings.registration_timeout_s, self._registration_timed_out
        )
        self._log.debug("IRC {peer}: connected", peer=self.peer)

    def dataReceived(self, data: bytes) -> None:
        """Frame, pace and handle what the client sent."""
        if self.closing:
            return
        self._framer.feed(data)
        for raw in self._framer.lines():
            if self.closing:
                return
            # The firewall counts lines against its message rate; False: dropped.
            if not self._count_message(1):
                self.closing = True
                return
            if raw is TOO_LONG:
                # Paced like any line, so a stream of them lags and then floods out.
                self._paced(_OVERLONG)
                continue
            if b"\x00" in raw:
                self._log.info("IRC {peer}: NUL in a line", peer=self.peer)
                self.quit("NUL byte in line")
                return
            self._paced(raw)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Leave channels and registries, end the sessions, once."""
        self.closing = True
        self._cancel_timers()
        self._lag.clear()
        self.factory.forget(self)
        for channel in self.channels:
            channel.members.discard(self)
            for other in channel.audience(self)[1:]:
                other.send_from(self.hostmask(), "QUIT", "Connection closed")
        self.channels.clear()
        self._log.info("IRC {peer}: connection closed ({nick})", peer=self.peer, nick=self.nick)
        self.chat_connection_lost()

    def is_tls(self) -> bool:
        """Whether the connection is encrypted."""
        return ISSLTransport.providedBy(self.transport)

    # -- pacing: fake lag, then Excess Flood ----------------------------------

    def _paced(self, raw: bytes) -> None:
        if not self._lag and self._bucket.consume():
            self._handle(raw)
            return
        if len(self._lag) >= self.settings.max_lagged_lines:
            self._log.info("IRC {peer}: excess flood", peer=self.peer)
            self.quit("Excess Flood")
            return
        self._lag.append(raw)
        if self._lag_timer is None:
            self._lag_timer = self.clock.callLater(
                1.0 / self.settings.lines_per_second, self._drain
            )

    def _drain(self) -> None:
        self._lag_timer = None
        while self._lag and not self.closing and self._bucket.consume():
            self._handle(self._lag.popleft())
        if self._lag and not self.closing:
            self._lag_timer = self.clock.callLater(
                1.0 / self.settings.lines_per_second, self._drain
            )

    # -- dispatch --------------------------------------------------------------

    def _handle(self, raw: bytes) -> None:
        if self.logging_in:
            # One command at a time: what follows a login waits for its answer.
            if len(self._during_login) >= MAX_LINES_DURING_LOGIN:
                self.quit("Excess Flood")
            else:
                self._during_login.append(raw)
            return
        self._seen()
        if raw is _OVERLONG:
            self.reply(rpl.ERR_INPUTTOOLONG, "Input line was too long")
            return
        try:
            message = parse(decode(raw))
        except ParseError:
            return
        command = message.command
        if not self.registered and command not in _BEFORE_REGISTRATION:
            self.reply(rpl.ERR_NOTREGISTERED, "You have not registered")
            return
        handler = _HANDLERS.get(command)
        if handler is None:
            if self.agent is not None and self.agent_raw_command(message):
                return
            self.reply(rpl.ERR_UNKNOWNCOMMAND, command[:32], "Unknown command")
            return
        try:
            handler(self, message)
        except Exception:
            self._log.failure("IRC {peer}: {command} failed", peer=self.peer, command=command)
            self.notice_from_service("Internal error; please try again.")

    def need(self, message: Message, count: int) -> bool:
        """Whether the message has ``count`` parameters; if not, 461 is sent."""
        if len(message.params) >= count and all(message.params[:count]):
            return True
        self.reply(rpl.ERR_NEEDMOREPARAMS, message.command, "Not enough parameters")
        return False

    def login_answered(self) -> None:
        """The login was answered: handle the lines that waited for it."""
        while self._during_login and not self.closing and not self.logging_in:
            self._handle(self._during_login.popleft())

    # -- lines out -------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Write one message, unless the connection is closing."""
        if not self.closing:
            self.transport.write(serialise(message))

    def send_from(self, prefix: str, command: str, *params: str, tags=None) -> None:
        """Write ``:prefix COMMAND params``."""
        self.send(Message(command, params, prefix, tags or {}))

    def reply(self, numeric: str, *params: str) -> None:
        """A numeric reply from the server to this client."""
        self.send(Message(numeric, (self.nick or "*", *params), self.server))

    def hostmask(self) -> str:
        """This client's ``nick!user@host`` as others see it."""
        return f"{self.nick}!{self.user or 'unknown'}@{self.settings.gateway_host}"

    def service_mask(self) -> str:
        """The service nick's hostmask."""
        return f"{self.service}!service@{self.settings.gateway_host}"

    def quit(self, reason: str) -> None:
        """Send ERROR with ``reason`` and close the connection."""
        if self.closing:
            return
        self.send(Message("ERROR", (f"Closing Link: {self.nick or '*'} ({reason})",)))
        self.closing = True
        self._cancel_timers()
        self.transport.loseConnection()

    def firewall_reject(self, reason: str) -> None:
        """The firewall refuses this client: ERROR first (the firewall closes)."""
        self.send(Message("ERROR", (f"Closing Link: {self.nick or '*'} ({reason})",)))

    def close(self, reason: str) -> None:
        """IParty: the core closes this connection."""
        self._log.info("IRC {peer}: closing: {reason}", peer=self.peer, reason=reason)
        self.quit(reason)

    # -- timers ------------------------------------------------------------------

    def registration_done(self) -> None:
        """Stop the registration deadline and start pinging."""
        if self._registration_timer is not None and self._registration_timer.active():
            self._registration_timer.cancel()
        self._registration_timer = None
        self._ping_timer = self.clock.callLater(self.settings.ping_interval_s, self._ping_due)

    def _registration_timed_out(self) -> None:
        self._registration_timer = None
        self._log.info("IRC {peer}: registration timed out", peer=self.peer)
        self.quit("Registration timed out")

    def _seen(self) -> None:
        if self._ping_timer is not None and self._ping_timer.active():
            self._awaiting_pong = False
            self._ping_timer.reset(self.settings.ping_interval_s)

    def _ping_due(self) -> None:
        if self._awaiting_pong:
            self._ping_timer = None
            self.quit(f"Ping timeout: {round(self.settings.ping_timeout_s)} seconds")
            return
        self._awaiting_pong = True
        self.send(Message("PING", (self.server,)))
        self._ping_timer = self.clock.callLater(self.settings.ping_timeout_s, self._ping_due)

    def _cancel_timers(self) -> None:
        for name in ("_registration_timer", "_ping_timer", "_lag_timer"):
            timer = getattr(self, name)
            if timer is not None and timer.active():
                timer.cancel()
            setattr(self, name, None)
        self.chat_cancel_timers()

    # -- commands every client has -----------------------------------------------

    def irc_PING(self, message: Message) -> None:  # noqa: N802
        """PING token -> PONG server :token."""
        if not message.params:
            self.reply("409", "No origin specified")
            return
        self.send_from(self.server, "PONG", self.server, message.params[0])

    def irc_PONG(self, message: Message) -> None:  # noqa: N802
        """A PONG: receiving it was the point."""
        self._awaiting_pong = False

    def irc_QUIT(self, message: Message) -> None:  # noqa: N802
        """QUIT [:reason] -> ERROR, then close; a customer who quits is not held."""
        self.quitting = True
        reason = message.param(0)
        self.quit(f"Quit: {reason}" if reason else "Quit")


_HANDLERS: dict[str, Callable[[IrcConnection, Message], None]] = {
    name[4:]: getattr(IrcConnection, name) for name in dir(IrcConnection) if name.startswith("irc_")
}


class IrcFactory(ServerFactory):
    """Builds connections and holds what they share: nicks, channels, the gateway."""

    noisy = False

    def __init__(self, gateway: Gateway, settings: IrcSettings, *, clock: IReactorTime) -> None:
        self.gateway = gateway
        self.settings = settings
        self.clock = clock
        self.created = clock.seconds()
        self.version = f"imgateway-{__version__}"
        # Registered clients by lower-cased nick. Customers and agents never see each
        # other, so each role has its own nick space: a customer cannot learn an
        # agent's nick from a collision.
        self.customers: dict[str, IrcConnection] = {}
        self.agents: dict[str, IrcConnection] = {}
        self.channels = make_channels(settings, self.created)

    def buildProtocol(self, addr: IAddress) -> IrcConnection:
        """A connection for one client."""
        return IrcConnection(self)

    def nick_space(self, connection: IrcConnection) -> dict[str, IrcConnection]:
        """The registry a connection's nick belongs to."""
        return self.agents if connection.agent is not None else self.customers

    def forget(self, connection: IrcConnection) -> None:
        """Drop a closed connection from the registries."""
        for space in (self.customers, self.agents):
            if connection.nick and space.get(connection.nick.lower()) is connection:
                del space[connection.nick.lower()]

    def user_count(self) -> int:
        """Registered clients, the service included."""
        return len(self.customers) + len(self.agents) + 1


def build(gateway: Gateway, config: Any, reactor: Any) -> IrcFactory:
    """The listener factory, as gateway/service.py's LISTENERS wants it."""
    return IrcFactory(gateway, config.sections["irc"], clock=reactor)
