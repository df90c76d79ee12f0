"""Bot mode's parties: each customer and each agent on the network who writes to the bot.

A stranger's first message decides its role: the core is asked whether the
sender's address (``irc:ACCOUNT`` from the IRCv3 account-tag, or ``irc:NICK`` where
nicks are trusted) is a provisioned agent; if not, the sender is a customer. Both
sides talk to the bot's one nick, so what a peer says is prefixed with its name:
``<Robin> Hello`` for a customer, ``<c-7f3a> Hi`` for an agent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway import logs
from gateway.core import events as ev
from gateway.core.errors import AuthFailed, GatewayError
from gateway.core.interfaces import IParty, IPartyLimits
from protocols.irc import ctcp, render
from protocols.irc.commands import HELP
from protocols.irc.commands import parse as parse_command
from protocols.irc.desk import AgentDesk
from protocols.irc.message import split_text
from protocols.irc.settings import IrcSettings

if TYPE_CHECKING:
    from gateway.core.interfaces import IGateway as Gateway

# Messages kept from a sender while its role is looked up.
MAX_PENDING = 8
# QUIT reasons servers give for a connection that was lost, not left: such a customer
# may come back (its conversation is held); any other QUIT is the customer's own.
_LOST = re.compile(
    r"^(ping timeout|read error|write error|connection (reset|closed|timed out)|remote host"
    r" closed|client closed connection|broken pipe|eof|excess flood|max sendq|client exited"
    r"|registration tim|\S+\.\S+ \S+\.\S+$)",
    re.IGNORECASE,
)
_ADDRESSED = re.compile(r"^(c-[0-9a-fA-F]+)[:,]?\s+(.+)$", re.DOTALL)
_log = Logger(observer=logs.observer, namespace="protocols.irc.botparties")


class BotDirectory:
    """The parties the bot carries, by lower-cased nick."""

    def __init__(self, gateway: Gateway, settings: IrcSettings, *, clock: IReactorTime, link):
        self.gateway = gateway
        self.settings = settings
        self.clock = clock
        self.link = link
        self.customers: dict[str, BotCustomer] = {}
        self.agents: dict[str, BotAgent] = {}
        self._pending: dict[str, list[tuple[str, bool]]] = {}
        # A stranger's services account and user@host, while its role is looked up.
        self._identities: dict[str, tuple[str | None, str]] = {}

    def received(
        self, nick: str, account: str | None, text: str, *, notice: bool, userhost: str = ""
    ) -> None:
        """A private message or notice from ``nick`` (``user@host``) to the bot."""
        key = nick.lower()
        customer = self.customers.get(key)
        if customer is not None and not customer.same_person(account, userhost):
            # Someone else has the nick now (the customer left unseen): the customer is
            # gone, and this is a stranger, who must not get its conversation.
            self.gone(nick)
            customer = None
        if key in self.agents:
            self.agents[key].received(text, notice)
        elif customer is not None:
            customer.account = customer.account or _account(account)
            customer.received(text, notice)
        elif key in self._pending:
            if len(self._pending[key]) < MAX_PENDING:
                self._pending[key].append((text, notice))
        elif not notice:
            self._identities[key] = (_account(account), userhost)
            self._identify(nick, account, text)

    def _identify(self, nick: str, account: str | None, text: str) -> None:
        key = nick.lower()
        if self.settings.bot.agent_identity == "account":
            address = f"irc:{account.lower()}" if account and account != "*" else None
        else:
            address = f"irc:{key}"
        if address is None:
            self._customer(nick).received(text, False)
            return
        self._pending[key] = [(text, False)]
        agent = BotAgent(self, nick)
        try:
            d = self.gateway.agent_attach(
                agent,
                protocol="irc",
                address=address,
                client=ev.ClientInfo("irc", ""),
                features=frozenset(),
            )
        except GatewayError:
            self._as_customer(key, nick)
            return
        d.addCallbacks(self._attached, self._not_agent, (agent,), None, (key, nick))

    def _attached(self, session: Any, agent: BotAgent) -> None:
        key = agent.nick.lower()
        pending = self._pending.pop(key, [])
        agent.attach(session)
        self.agents[key] = agent
        _log.info("IRC bot: {nick} is agent {agent}", nick=agent.nick, agent=session.name)
        for text, notice in pending:
            agent.received(text, notice)

    def _not_agent(self, failure: Failure, key: str, nick: str) -> None:
        if not failure.check(AuthFailed):
            _log.failure("IRC bot: looking up {nick} failed", failure, nick=nick)
        self._as_customer(key, nick)

    def _as_customer(self, key: str, nick: str) -> None:
        pending = self._pending.pop(key, [])
        customer = self._customer(nick)
        for text, notice in pending:
            customer.received(text, notice)

    def _customer(self, nick: str) -> BotCustomer:
        customer = BotCustomer(self, nick)
        customer.account, customer.userhost = self._identities.pop(nick.lower(), (None, ""))
        self.customers[nick.lower()] = customer
        return customer

    def watched_nicks(self) -> list[str]:
        """The nicks of the customers and agents carried now."""
        return [p.nick for p in (*self.customers.values(), *self.agents.values())]

    def renamed(self, old: str, new: str) -> None:
        """``old`` is now known as ``new``."""
        for parties in (self.customers, self.agents):
            party = parties.pop(old.lower(), None)
            if party is not None:
                party.nick = new
                parties[new.lower()] = party

    def gone(self, nick: str, *, quit: bool = False) -> None:
        """``nick`` left the network (``quit``: on purpose) or cannot be reached."""
        key = nick.lower()
        self._pending.pop(key, None)
        self._identities.pop(key, None)
        for parties in (self.customers, self.agents):
            party = parties.pop(key, None)
            if party is not None:
                party.end_session(quit=quit)

    def quit(self, nick: str, reason: str) -> None:
        """``nick`` QUIT (a KILL shows as one too): a lost connection by its reason
        (a ping timeout), else the user's own leaving."""
        self.gone(nick, quit=not _LOST.match(reason.strip()))

    def forget(self, party: BotCustomer | BotAgent) -> None:
        """Stop carrying ``party``."""
        for parties in (self.customers, self.agents):
            if parties.get(party.nick.lower()) is party:
                del parties[party.nick.lower()]

    def link_lost(self) -> None:
        """The connection dropped: every session ends."""
        parties = [*self.customers.values(), *self.agents.values()]
        self.customers.clear()
        self.agents.clear()
        self._pending.clear()
        for party in parties:
            party.end_session()


def _too_many_lines(settings: IrcSettings, text: str) -> str | None:
    lines = split_text(text, 350)
    if len(lines) > settings.max_message_lines:
        return f"too long for the recipient (more than {settings.max_message_lines} IRC lines)"
    return None


@implementer(IParty, IPartyLimits)
class BotCustomer:
    """A customer on the network, talking to the bot in private."""

    def __init__(self, directory: BotDirectory, nick: str) -> None:
        self.directory = directory
        self.nick = nick
        self.session: Any = None
        self.over = True
        self.agent_alias: str | None = None
        self.client = ev.ClientInfo()
        # Who this is beyond the nick: a services account, and user@host.
        self.account: str | None = None
        self.userhost = ""
        self._asked_version = False
        self._version_answered = False
        self._version_timer: IDelayedCall | None = None

    def same_person(self, account: str | None, userhost: str) -> bool:
        """Whether a line from this nick comes from the same person."""
        if self.account:
            return account is not None and account.lower() == self.account.lower()
        return not userhost or not self.userhost or userhost.lower() == self.userhost.lower()

    def resume_key(self) -> str:
        """What a returning customer must show to take its conversation back: its
        services account, else nick, user and host together (never the nick alone)."""
        if self.account:
            return f"irc:account:{self.account.lower()}"
        return f"irc:{self.nick.lower()}!{self.userhost.lower()}"

    def received(self, text: str, notice: bool) -> None:
        """A line from the customer."""
        request = ctcp.unwrap(text)
        if request is not None:
            self._ctcp(*request, reply=notice)
            return
        if notice:
            return
        if self.over:
            self._start(opening=text)
            return
        self.session.say_then(text, self._said)

    def _start(self, opening: str | None = None) -> None:
        old, self.session = self.session, None
        if old is not None:
            old.disconnected()
        if not self._asked_version:
            self._asked_version = True
            self.directory.link.ctcp(self.nick, ctcp.wrap("VERSION"))
            self._version_timer = self.directory.clock.callLater(
                self.directory.settings.ctcp_version_timeout_s, self._version_late
            )
        self.over = False
        try:
            self.session = self.directory.gateway.customer_arrived(
                self,
                protocol="irc",
                client=self.client,
                answers={},
                features=frozenset(),
                key=f"irc:{self.nick}",  # for sticky routing only
                resume_key=self.resume_key(),
                opening=opening,
                # The network carries a conversation without us (redirect hosting).
                address=f"irc:{self.nick}",
                # Their services account: trusted, and how the service desk knows them.
                **({"verified": {"account": f"irc:{self.account}"}} if self.account else {}),
            )
        except GatewayError as e:
            self.over = True
            self.directory.link.say(self.nick, f"Sorry: {e.text}", notice=True)

    def _ctcp(self, command: str, argument: str, *, reply: bool) -> None:
        if reply:
            # A late reply still counts until the offer goes out (the core's call).
            if command == "VERSION" and self._asked_version and not self._version_answered:
                self._version_answered = True
                if self._version_timer is not None and self._version_timer.active():
                    self._version_timer.cancel()
                self._version_timer = None
                self.client = ctcp.client_info(argument)
                if self.session is not None and not self.over:
                    self.session.identify(self.client)
            return
        if command == "ACTION":
            self.received(f"* {self.nick} {argument}", False)
        elif command == "VERSION":
            self.directory.link.say(self.nick, ctcp.wrap("VERSION", "imgateway"), notice=True)

    def _version_late(self) -> None:
        self._version_timer = None

    def _said(self, msg: str | None, error: Exception | None) -> None:
        # A line's outcome from the core: nothing to say once committed.
        if error is not None:
            self._failed(Failure(error))

    def _failed(self, failure: Failure) -> None:
        if failure.check(GatewayError):
            self.directory.link.say(self.nick, f"Not sent: {failure.value.text}", notice=True)
        else:
            _log.failure("IRC bot: a customer's message failed", failure)

    def deliver(self, event: object) -> None:
        """Render a neutral event as lines from the bot."""
        if isinstance(event, ev.Connected):
            self.agent_alias = event.peer_alias
        for said in render.for_customer(event, self.agent_alias):
            text = said.text if said.source == render.SERVICE else f"<{said.peer}> {said.text}"
            self.directory.link.say(self.nick, text, notice=said.notice)
        if isinstance(event, ev.Ended):
            self.over = True
            self.agent_alias = None

    def refuses(self, event: object) -> str | None:
        """IPartyLimits: a message needing more lines than the bot may send it."""
        return _too_many_lines(self.directory.settings, getattr(event, "text", ""))

    def close(self, reason: str) -> None:
        """The core lets go of this customer (shutdown)."""
        self.directory.forget(self)
        self.end_session()

    def end_session(self, quit: bool = False) -> None:
        """The customer is gone (``quit``: it left on purpose)."""
        if self._version_timer is not None and self._version_timer.active():
            self._version_timer.cancel()
        self._version_timer = None
        session, self.session = self.session, None
        if session is not None:
            session.disconnected(quit=quit)


@implementer(IParty, IPartyLimits)
class BotAgent:
    """An agent on the network, recognised by its account or nick."""

    def __init__(self, directory: BotDirectory, nick: str) -> None:
        self.directory = directory
        self.nick = nick
        self.session: Any = None
        self.desk: AgentDesk | None = None

    def attach(self, session: Any) -> None:
        """The core logged the agent in."""
        self.session = session
        desk = getattr(self.directory.gateway, "service_desk", None)
        self.desk = AgentDesk(session, self.notify, desk)
        session.set_presence("available")
        self.notify(HELP)

    def notify(self, text: str) -> None:
        """A notice from the bot to the agent."""
        self.directory.link.say(self.nick, text, notice=True)

    def received(self, text: str, notice: bool) -> None:
        """A line from the agent: a command, or words for a customer."""
        if notice or ctcp.unwrap(text) is not None or self.desk is None:
            return
        try:
            command = parse_command(text)
            if command is not None:
                self.desk.run(command)
                return
            match = _ADDRESSED.match(text)
            peer = self.desk.peer(match.group(1)) if match else None
            if peer is not None:
                self.desk.say_then(peer, match.group(2), self._said)
            elif len(self.desk.conversation_of) == 1:
                self.desk.say_then(next(iter(self.desk.conversation_of)), text, self._said)
            else:
                self.notify("Start with the customer's nick, e.g. 'c-7f3a: hello'. " + HELP)
        except GatewayError as e:
            self.notify(f"{e.code}: {e.text}")

    def _said(self, msg: str | None, error: Exception | None) -> None:
        if error is not None:
            self._failed(Failure(error))

    def _failed(self, failure: Failure) -> None:
        if failure.check(GatewayError):
            self.notify(f"Not sent: {failure.value.text}")
        else:
            _log.failure("IRC bot: an agent's message failed", failure)

    def deliver(self, event: object) -> None:
        """Render a neutral event as lines from the bot."""
        if self.desk is None:
            return
        self.desk.track(event)
        saids = render.for_agent(event, self.desk.alias_of)
        if isinstance(event, ev.Connected) and len(saids) > 1:
            # Networks allow a bot few lines a second: the history goes as one text.
            history = " | ".join(s.text.replace("\n", " / ") for s in saids[1:])
            saids = [saids[0], render.Said(render.PEER, history, True, saids[1].peer)]
        for said in saids:
            text = said.text if said.source == render.SERVICE else f"<{said.peer}> {said.text}"
            self.directory.link.say(self.nick, text, notice=said.notice)
        self.desk.forget(event)

    def refuses(self, event: object) -> str | None:
        """IPartyLimits: a message needing more lines than the bot may send it."""
        return _too_many_lines(self.directory.settings, getattr(event, "text", ""))

    def close(self, reason: str) -> None:
        """The core lets go of this agent (a newer login, shutdown)."""
        self.notify(f"Logged out: {reason}")
        self.directory.forget(self)
        self.end_session()

    def end_session(self, quit: bool = False) -> None:
        """The agent is gone."""
        session, self.session = self.session, None
        if session is not None:
            session.disconnected()


def _account(account: str | None) -> str | None:
    """A services account from an account-tag (``*``: none), folded."""
    return account.lower() if account and account != "*" else None
