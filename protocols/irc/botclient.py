"""Bot mode: one client connection to an IRC network carrying many conversations.

:class:`BotProtocol` speaks the client side (CAP, SASL PLAIN, NICK/USER, PING, JOIN,
pacing within the network's flood limits); :class:`BotFactory` outlives connections
and holds the :class:`.botparties.BotDirectory` of customers and agents, whose
sessions end when the connection drops. :func:`make_service` wraps it all in a
ClientService that reconnects with exponential backoff.
"""

from __future__ import annotations

import base64
import random
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.application.internet import ClientService
from twisted.internet import ssl
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from firewall.common import TokenBucket
from gateway import logs
from protocols.irc.botparties import BotDirectory
from protocols.irc.framing import TOO_LONG, LineFramer
from protocols.irc.message import Message, ParseError, decode, parse, serialise, split_text
from protocols.irc.settings import IrcSettings
from protocols.tcp import no_delay

if TYPE_CHECKING:
    from gateway.core.interfaces import IGateway as Gateway

# Lines waiting for their turn to be sent; beyond this the oldest are dropped.
MAX_QUEUED_LINES = 2000
REJOIN_DELAY_S = 5.0
RECLAIM_NICK_S = 60.0
# Each reconnection delay is lengthened by up to this share of itself, at random, so
# that several bots do not come back at once (a fixed second would swamp short delays).
RECONNECT_JITTER = 0.1


class BotProtocol(Protocol):
    """The bot's connection to the network."""

    _log = Logger(observer=logs.observer)

    def __init__(self, factory: BotFactory) -> None:
        self.factory = factory
        self.settings = factory.settings.bot
        self.clock = factory.clock
        self.nick = self.settings.nick
        self.registered = False
        self.caps: set[str] = set()
        self._framer = LineFramer(512, 8191)
        self._bucket = TokenBucket(
            self.settings.lines_per_second, self.settings.line_burst, self.clock
        )
        self._queue: deque[bytes] = deque()
        self._send_timer: IDelayedCall | None = None
        self._timers: dict[str, IDelayedCall] = {}
        self._awaiting_pong = False
        self._nick_tries = 0
        self._ison_asked: deque[set[str]] = deque()

    # -- Twisted protocol -------------------------------------------------------

    def connectionMade(self) -> None:
        """Register: CAP LS 302, NICK, USER."""
        no_delay(self.transport)
        self.factory.connected(self)
        self._later("register", self.settings.connect_timeout_s, self._registration_timeout)
        self.send_now("CAP", "LS", "302")
        self.send_now("NICK", self.nick)
        self.send_now("USER", self.settings.username, "0", "*", self.settings.realname)

    def dataReceived(self, data: bytes) -> None:
        """Frame and handle the server's lines."""
        self._framer.feed(data)
        for raw in self._framer.lines():
            if raw is TOO_LONG or b"\x00" in raw:
                continue
            try:
                message = parse(decode(raw))
            except ParseError:
                continue
            self._seen()
            handler = getattr(self, f"_on_{message.command}", None)
            if handler is None:
                continue
            try:
                handler(message)
            except Exception:
                self._log.failure("IRC bot: handling {command} failed", command=message.command)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Every conversation carried on this connection ends."""
        self._log.info(
            "IRC bot: connection lost: {why}",
            why=reason.getErrorMessage() if reason is not None else "closed",
        )
        for timer in [*self._timers.values(), self._send_timer]:
            if timer is not None and timer.active():
                timer.cancel()
        self._timers.clear()
        self._queue.clear()
        self.factory.disconnected(self)

    # -- sending, paced ----------------------------------------------------------

    def send_now(self, command: str, *params: str, tags=None) -> None:
        """Send a line at once (registration, PONG)."""
        self.transport.write(serialise(Message(command, params, None, tags or {})))

    def send(self, command: str, *params: str) -> None:
        """Queue a line; lines go out no faster than the configured rate."""
        if len(self._queue) >= MAX_QUEUED_LINES:
            self._queue.popleft()
            self._log.warn("IRC bot: send queue full, dropping the oldest line")
        self._queue.append(serialise(Message(command, params)))
        self._pump()

    def _pump(self) -> None:
        self._send_timer = None
        while self._queue and self._bucket.consume():
            self.transport.write(self._queue.popleft())
        if self._queue and self._send_timer is None:
            self._send_timer = self.clock.callLater(
                1.0 / self.settings.lines_per_second, self._pump
            )

    def say(self, nick: str, text: str, *, notice: bool = False) -> None:
        """PRIVMSG (or NOTICE) text to ``nick``, cut to fit a line."""
        command = "NOTICE" if notice else "PRIVMSG"
        # The server prefixes our full mask when relaying: leave room for it.
        budget = 512 - len(
            f":{self.nick}!{self.settings.username}@x{' ' * 63} {command} {nick} :\r\n"
        )
        for piece in split_text(text, budget):
            self.send(command, nick, piece)

    # -- timers ------------------------------------------------------------------------

    def _later(self, name: str, delay: float, action, *args) -> None:
        old = self._timers.get(name)
        if old is not None and old.active():
            old.cancel()
        self._timers[name] = self.clock.callLater(delay, action, *args)

    def _registration_timeout(self) -> None:
        self._log.warn("IRC bot: registration took too long; reconnecting")
        self.transport.loseConnection()

    def _seen(self) -> None:
        self._awaiting_pong = False
        if self.registered:
            self._later("ping", self.settings.ping_interval_s, self._ping_due)

    def _ping_due(self) -> None:
        if self._awaiting_pong:
            self._log.warn("IRC bot: the server stopped answering; reconnecting")
            self.transport.loseConnection()
            return
        self._awaiting_pong = True
        self.send_now("PING", "imgateway")
        self._later("ping", self.settings.ping_interval_s, self._ping_due)

    # -- registration --------------------------------------------------------------

    def _on_CAP(self, message: Message) -> None:  # noqa: N802
        sub = message.param(1).upper()
        if sub == "LS":
            if message.param(2) == "*" and len(message.params) > 3:
                offered = message.params[3].split()  # more LS lines follow
                self.caps.update(c.split("=")[0] for c in offered)
                return
            self.caps.update(c.split("=")[0] for c in message.params[-1].split())
            wanted = [c for c in ("message-tags", "account-tag") if c in self.caps]
            if self.settings.auth == "sasl" and "sasl" in self.caps:
                wanted.append("sasl")
            if wanted:
                self.send_now("CAP", "REQ", " ".join(wanted))
            else:
                self.send_now("CAP", "END")
        elif sub == "ACK":
            acked = set(message.params[-1].split())
            self.caps = acked
            if "sasl" in acked:
                self.send_now("AUTHENTICATE", "PLAIN")
            else:
                self.send_now("CAP", "END")
        elif sub == "NAK":
            self.caps = set()
            self.send_now("CAP", "END")

    def _on_AUTHENTICATE(self, message: Message) -> None:  # noqa: N802
        if message.param(0) != "+":
            return
        account = self.settings.account or self.settings.nick
        token = f"{account}\0{account}\0{self.settings.password}".encode()
        encoded = base64.b64encode(token).decode()
        for i in range(0, len(encoded), 400):
            self.send_now("AUTHENTICATE", encoded[i : i + 400])
        if len(encoded) % 400 == 0:
            self.send_now("AUTHENTICATE", "+")

    def _on_903(self, message: Message) -> None:
        self._log.info("IRC bot: SASL login succeeded")
        self.send_now("CAP", "END")

    def _on_904(self, message: Message) -> None:
        self._log.error("IRC bot: SASL login failed; going on without an account")
        self.send_now("CAP", "END")

    _on_905 = _on_906 = _on_904

    def _on_433(self, message: Message) -> None:
        if self.registered:
            return  # a reclaim attempt failed; we keep the nick we have
        self._nick_tries += 1
        self.nick = f"{self.settings.nick[:25]}{'_' * min(self._nick_tries, 5)}"
        if self._nick_tries > 5:
            self.nick = f"{self.settings.nick[:20]}{self._nick_tries}"
        self._log.info("IRC bot: nick in use, trying {nick}", nick=self.nick)
        self.send_now("NICK", self.nick)

    _on_436 = _on_437 = _on_433

    def _on_001(self, message: Message) -> None:
        self.registered = True
        self.nick = message.param(0, self.nick)
        timer = self._timers.pop("register", None)
        if timer is not None and timer.active():
            timer.cancel()
        self._log.info("IRC bot: registered as {nick}", nick=self.nick)
        if self.settings.auth == "nickserv":
            account = self.settings.account or self.settings.nick
            self.send("PRIVMSG", "NickServ", f"IDENTIFY {account} {self.settings.password}")
        self.send("JOIN", self.settings.channel)
        if self.settings.agent_identity == "account" and "account-tag" not in self.caps:
            self._log.warn(
                "IRC bot: the network offers no account-tag, so no agent can be recognised "
                "(irc.bot.agent_identity = account)"
            )
        if self.nick != self.settings.nick:
            self._later("reclaim", RECLAIM_NICK_S, self._reclaim)
        self._later("presence", self.settings.presence_poll_s, self._poll_presence)
        self._seen()
        self.factory.registered(self)

    def _reclaim(self) -> None:
        if self.nick != self.settings.nick:
            self.send("NICK", self.settings.nick)
            self._later("reclaim", RECLAIM_NICK_S, self._reclaim)

    def _poll_presence(self) -> None:
        """ISON the parties' nicks: a customer or agent who left the network is gone.

        The bot shares no channel with most of them, so it sees no QUIT of theirs.
        """
        batch: list[str] = []
        for nick in sorted(self.factory.directory.watched_nicks()):
            batch.append(nick)
            if sum(len(n) + 1 for n in batch) > 400:
                self._ison(batch)
                batch = []
        if batch:
            self._ison(batch)
        self._later("presence", self.settings.presence_poll_s, self._poll_presence)

    def _ison(self, nicks: list[str]) -> None:
        if len(self._ison_asked) < 64:
            self._ison_asked.append({n.lower() for n in nicks})
            self.send("ISON", *nicks)

    def _on_303(self, message: Message) -> None:
        if not self._ison_asked:
            return
        asked = self._ison_asked.popleft()  # replies come in the order asked
        online = {n.lower() for n in message.param(1).split()}
        for nick in asked - online:
            self.factory.directory.gone(nick)

    # -- the network -----------------------------------------------------------------

    def _on_PING(self, message: Message) -> None:  # noqa: N802
        self.send_now("PONG", message.param(0, "imgateway"))

    def _on_PONG(self, message: Message) -> None:  # noqa: N802
        self._awaiting_pong = False

    def _on_ERROR(self, message: Message) -> None:  # noqa: N802
        self._log.warn("IRC bot: server closes the link: {text}", text=message.param(0)[:200])

    def _on_KICK(self, message: Message) -> None:  # noqa: N802
        if message.param(1).lower() == self.nick.lower():
            self._log.warn("IRC bot: kicked from {channel}; rejoining", channel=message.param(0))
            self._later("rejoin", REJOIN_DELAY_S, self.send, "JOIN", self.settings.channel)

    def _on_474(self, message: Message) -> None:
        self._log.warn("IRC bot: cannot join {channel}", channel=message.param(1))
        self._later("rejoin", REJOIN_DELAY_S * 12, self.send, "JOIN", self.settings.channel)

    _on_471 = _on_473 = _on_475 = _on_474

    def _on_NICK(self, message: Message) -> None:  # noqa: N802
        old = _nick_of(message.prefix)
        new = message.param(0)
        if old.lower() == self.nick.lower():
            self.nick = new
            return
        self.factory.directory.renamed(old, new)

    def _on_QUIT(self, message: Message) -> None:  # noqa: N802
        # A KILL reaches the channels' members as a QUIT ("Killed (...)") too.
        self.factory.directory.quit(_nick_of(message.prefix), message.param(0))

    def _on_KILL(self, message: Message) -> None:  # noqa: N802
        # Where the server tells the bot of a KILL itself: the user did not choose it,
        # but it is gone for good.
        victim = message.param(0)
        if victim.lower() != self.nick.lower():
            self.factory.directory.gone(victim, quit=True)

    def _on_401(self, message: Message) -> None:
        self.factory.directory.gone(message.param(1))

    def _on_PRIVMSG(self, message: Message) -> None:  # noqa: N802
        self._message(message, notice=False)

    def _on_NOTICE(self, message: Message) -> None:  # noqa: N802
        self._message(message, notice=True)

    def _message(self, message: Message, *, notice: bool) -> None:
        sender = _nick_of(message.prefix)
        if not sender or "." in sender or sender.lower() == self.nick.lower():
            return  # the server, or ourselves
        target = message.param(0)
        if target.lower() != self.nick.lower():
            return  # channel talk is not for us
        account = message.tags.get("account") if "account-tag" in self.caps else None
        userhost = (message.prefix or "").partition("!")[2]
        self.factory.directory.received(
            sender, account, message.param(1), notice=notice, userhost=userhost
        )


def _nick_of(prefix: str | None) -> str:
    return (prefix or "").split("!", 1)[0]


class BotFactory(Factory):
    """Builds the bot's connections; holds what outlives them."""

    noisy = False
    _log = Logger(observer=logs.observer)

    def __init__(self, gateway: Gateway, settings: IrcSettings, *, clock: IReactorTime) -> None:
        self.gateway = gateway
        self.settings = settings
        self.clock = clock
        self.protocol_instance: BotProtocol | None = None
        # Connections lost before registration, in a row (for the reconnection backoff).
        self.failures = 0
        self.directory = BotDirectory(gateway, settings, clock=clock, link=self)
        metrics = getattr(gateway, "metrics", None)
        # imgateway_upstream_up{upstream="irc-bot"}: 1 while registered on the network.
        self.up_gauge = metrics.upstream_up.labels("irc-bot") if metrics is not None else None
        if self.up_gauge is not None:
            self.up_gauge.set(0)

    def buildProtocol(self, addr: Any) -> BotProtocol:
        """The connection to the network."""
        return BotProtocol(self)

    def connected(self, protocol: BotProtocol) -> None:
        """A connection was made (not yet registered)."""
        self.protocol_instance = protocol

    def registered(self, protocol: BotProtocol) -> None:
        """The bot is on the network."""
        self.failures = 0
        if self.up_gauge is not None:
            self.up_gauge.set(1)
        self._log.info(
            "IRC bot: on {host} as {nick}, joining {channel}",
            host=self.settings.bot.host,
            nick=protocol.nick,
            channel=self.settings.bot.channel,
        )

    def disconnected(self, protocol: BotProtocol) -> None:
        """The connection dropped: end what it carried."""
        if self.protocol_instance is protocol:
            self.protocol_instance = None
        if not protocol.registered:
            self.failures += 1
        if self.up_gauge is not None:
            self.up_gauge.set(0)
        self._log.info("IRC bot: disconnected from {host}", host=self.settings.bot.host)
        self.directory.link_lost()

    # -- the link the parties talk through -----------------------------------------

    def say(self, nick: str, text: str, *, notice: bool = False) -> None:
        """Send text to a nick, if connected (else it is lost with the connection)."""
        if self.protocol_instance is not None and self.protocol_instance.registered:
            self.protocol_instance.say(nick, text, notice=notice)

    def ctcp(self, nick: str, text: str) -> None:
        """Send a CTCP request."""
        if self.protocol_instance is not None and self.protocol_instance.registered:
            self.protocol_instance.send("PRIVMSG", nick, text)


def endpoint(reactor: Any, settings: IrcSettings):
    """The endpoint to the network: TLS verified for the host name where configured."""
    bot = settings.bot
    tcp = HostnameEndpoint(reactor, bot.host, bot.port, timeout=bot.connect_timeout_s)
    if not bot.tls:
        return tcp
    trust = None
    if bot.ca_file:
        with open(bot.ca_file, "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
    return wrapClientTLS(ssl.optionsForClientTLS(bot.host, trustRoot=trust), tcp)


def make_service(gateway: Gateway, settings: IrcSettings, reactor: Any) -> ClientService:
    """A ClientService keeping the bot connected, reconnecting with backoff.

    ClientService counts only failed connection attempts; a connection the server
    (or a failed TLS verification) drops before registration counts as a failure
    too, so a misconfigured link backs off instead of reconnecting every second.
    """
    bot = settings.bot
    factory = BotFactory(gateway, settings, clock=reactor)

    def policy(attempt: int) -> float:
        failures = max(attempt, factory.failures, 1)
        delay = min(bot.reconnect_initial_s * 2 ** min(failures - 1, 32), bot.reconnect_max_s)
        return delay * (1 + RECONNECT_JITTER * random.random())

    service = ClientService(endpoint(reactor, settings), factory, retryPolicy=policy, clock=reactor)
    service.setName("irc-bot")
    service.bot_factory = factory
    service.bot_retry_policy = policy
    return service
