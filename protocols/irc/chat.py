"""Conversations on the listener: PRIVMSG, NOTICE and TAGMSG; IParty.deliver; agent commands.

A customer writes to the service nick (or the lobby, or the agent's alias) and
gets the interview and the agent from the service and the alias. An agent writes
commands to the service and talks to each customer as its own nick (``c-7f3a``).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from gateway.core import events as ev
from gateway.core.errors import GatewayError
from protocols.irc import ctcp, render
from protocols.irc import numerics as rpl
from protocols.irc.channels import Channel
from protocols.irc.commands import HELP, Command
from protocols.irc.commands import parse as parse_command
from protocols.irc.desk import AgentDesk
from protocols.irc.interfaces import Connection
from protocols.irc.message import Message, split_text

TYPING = {"active": "active", "paused": "paused", "done": "paused"}
LOBBY_GREETING = "Hello {nick}! I have opened a private conversation with you."
MAX_HELD = 256


def _one_line(text: str) -> bool:
    return "\r" not in text and "\n" not in text and "\x00" not in text


class ChatCommands:
    """Message handling and event rendering for :class:`protocols.irc.server.IrcConnection`."""

    def init_chat(self: Connection) -> None:
        """The conversation state of a new connection."""
        self.customer_over = True  # no live conversation (none yet, or it ended)
        self.agent_alias: str | None = None  # the customer's view of its agent
        self._asked_version = False
        self._version_answered = False
        self._version_timer: IDelayedCall | None = None
        self.quitting = False  # the client sent QUIT: it leaves, it did not drop
        self.desk: AgentDesk | None = None  # an agent's offers and conversations
        self._held: list[Any] | None = []  # events before registration

    def chat_features(self: Connection) -> frozenset[str]:
        """Features the core may use with this client."""
        return frozenset({"typing"}) if "message-tags" in self.caps else frozenset()

    def chat_registered(self: Connection) -> None:
        """Registration completed: agents become available; held events go out."""
        held, self._held = self._held or [], None
        if self.agent is not None:
            desk = getattr(self.gateway, "service_desk", None)
            self.desk = AgentDesk(self.agent, self.notice_from_service, desk)
            self.agent.set_presence("available")
            self.notice_from_service(HELP)
        for event in held:
            self.deliver(event)

    def chat_peer(self: Connection, nick: str) -> str | None:
        """The peer nick ``nick`` names for this client (its alias or a customer), if any."""
        lower = nick.lower()
        if self.agent is not None:
            return self.desk.peer(nick) if self.desk is not None else None
        if self.agent_alias is not None and self.agent_alias.lower() == lower:
            return self.agent_alias
        return None

    def chat_peer_user(self: Connection) -> str:
        """The user part of the peers' hostmasks."""
        return "customer" if self.agent is not None else "agent"

    def chat_connection_lost(self: Connection) -> None:
        """Tell the core the party is gone (a customer's QUIT ends its conversation)."""
        self._held = None
        for session in (self.customer, self.agent):
            if session is not None:
                try:
                    if session is self.customer:
                        session.disconnected(quit=self.quitting)
                    else:
                        session.disconnected()
                except Exception:
                    self._log.failure("IRC {peer}: ending the session failed", peer=self.peer)
        self.customer = self.agent = None

    def chat_cancel_timers(self: Connection) -> None:
        """Stop waiting for a CTCP VERSION reply."""
        if self._version_timer is not None and self._version_timer.active():
            self._version_timer.cancel()
        self._version_timer = None

    def chat_away_changed(self: Connection) -> None:
        """AWAY sets an agent away; its end makes the agent available."""
        if self.agent is not None:
            self._agent_do(lambda: self.agent.set_presence("away" if self.away else "available"))

    def chat_lobby_joined(self: Connection, channel: Channel) -> None:
        """A customer joined the lobby: greet it there, then open the query."""
        if self.agent is not None:
            return
        text = LOBBY_GREETING.format(nick=self.nick)
        self.send_from(self.service_mask(), "PRIVMSG", channel.name, text)
        if self.customer_over:
            self._start_conversation()

    # -- lines out ----------------------------------------------------------

    def refuses(self: Connection, event: object) -> str | None:
        """IPartyLimits: a message needing more than ``irc.max_message_lines`` lines."""
        lines = split_text(getattr(event, "text", ""), self.settings.max_line - 100)
        limit = self.settings.max_message_lines
        if len(lines) > limit:
            return f"too long for the recipient (more than {limit} IRC lines)"
        return None

    def say_from(self: Connection, prefix: str, text: str, *, notice: bool = False) -> None:
        """PRIVMSG (or NOTICE) ``text`` from ``prefix`` to this client, cut to fit."""
        command = "NOTICE" if notice else "PRIVMSG"
        head = f":{prefix} {command} {self.nick} :"
        if text and self.nick and head.count(" ") == 3 and _one_line(head) and _one_line(text):
            # A line of chat that fits as it is: the bytes serialise() would write.
            data = f"{head}{text}\r\n".encode()
            if len(data) <= self.settings.max_line:
                if not self.closing:
                    self.transport.write(data)
                return
        overhead = len(f":{prefix} {command} {self.nick} :\r\n".encode())
        for piece in split_text(text, self.settings.max_line - overhead):
            self.send_from(prefix, command, self.nick or "*", piece)

    def notice_from_service(self: Connection, text: str) -> None:
        """A NOTICE from the service nick."""
        self.say_from(self.service_mask(), text, notice=True)

    def peer_mask(self: Connection, nick: str) -> str:
        """A peer's hostmask: the gateway's host, never the real one."""
        return f"{nick}!{self.chat_peer_user()}@{self.settings.gateway_host}"

    # -- IParty --------------------------------------------------------------

    def deliver(self: Connection, event: object) -> None:
        """Render one neutral event to this client."""
        if self._held is not None:
            if len(self._held) < MAX_HELD:
                self._held.append(event)
            return
        if self.closing:
            return
        if type(event) is ev.Message and self._chat_line(event):
            return
        if self.agent is not None:
            self._deliver_to_agent(event)
        else:
            self._deliver_to_customer(event)

    def _chat_line(self: Connection, event: ev.Message) -> bool:
        # The other side's line, written as render would have it said, without the
        # rendering on the way; False: not such a line, render it. A line naming a
        # second agent (alias) or for agents only (private) is rendered.
        if event.alias is not None or event.private:
            return False
        if self.agent is None:
            if event.sender != ev.AGENT or self.agent_alias is None:
                return False
            self.say_from(self.peer_mask(self.agent_alias), event.text)
            return True
        if event.sender != ev.CUSTOMER:
            return False
        alias = self.desk.alias_of.get(event.conversation)
        if alias is not None:
            self.say_from(self.peer_mask(alias), event.text)
        return True

    def _deliver_to_customer(self: Connection, event: object) -> None:
        if isinstance(event, ev.Connected):
            avoid = {(self.nick or "").lower(), self.service.lower()}
            self.agent_alias = render.alias_nick(event.peer_alias, avoid)
        if isinstance(event, ev.Typing):
            if self.agent_alias and "message-tags" in self.caps:
                tags = {"+typing": event.state}
                self.send_from(self.peer_mask(self.agent_alias), "TAGMSG", self.nick, tags=tags)
            return
        for said in render.for_customer(event, self.agent_alias):
            self._say(said)
        if isinstance(event, ev.Ended):
            self.customer_over = True
            self.agent_alias = None

    def _deliver_to_agent(self: Connection, event: object) -> None:
        desk = self.desk
        desk.track(event)
        if isinstance(event, ev.Typing):
            alias = desk.alias_of.get(event.conversation)
            if alias and "message-tags" in self.caps:
                tags = {"+typing": event.state}
                self.send_from(self.peer_mask(alias), "TAGMSG", self.nick, tags=tags)
            return
        for said in render.for_agent(event, desk.alias_of):
            self._say(said)
        desk.forget(event)

    def _say(self: Connection, said: render.Said) -> None:
        if said.source == render.SERVICE or said.peer is None:
            prefix = self.service_mask()
        else:
            prefix = self.peer_mask(said.peer)
        self.say_from(prefix, said.text, notice=said.notice)

    # -- lines in -------------------------------------------------------------

    def irc_PRIVMSG(self: Connection, message: Message) -> None:  # noqa: N802
        """PRIVMSG target :text."""
        self._message(message, notice=False)

    def irc_NOTICE(self: Connection, message: Message) -> None:  # noqa: N802
        """NOTICE target :text: only CTCP replies and agents' channel talk are used."""
        self._message(message, notice=True)

    def _message(self: Connection, message: Message, *, notice: bool) -> None:
        if not message.params:
            if not notice:
                self.reply(rpl.ERR_NORECIPIENT, f"No recipient given ({message.command})")
            return
        if len(message.params) < 2 or not message.params[1]:
            if not notice:
                self.reply(rpl.ERR_NOTEXTTOSEND, "No text to send")
            return
        target, text = message.params[0].split(",")[0], message.params[1]
        channel = self.factory.channels.get(target.lower())
        if channel is not None:
            self._channel_message(channel, message.command, text, notice)
            return
        request = ctcp.unwrap(text)
        if request is not None:
            self._ctcp(target, request, notice)
            return
        if notice:
            return
        if self.agent is not None:
            self._agent_message(target, text)
        elif target.lower() == self.service.lower() or self.chat_peer(target):
            self._customer_says(text)
        else:
            self.reply(rpl.ERR_NOSUCHNICK, target[:30], "No such nick/channel")

    def _channel_message(self, channel: Channel, command: str, text: str, notice: bool) -> None:
        if channel not in self.channels:
            if not notice:
                self.reply(rpl.ERR_CANNOTSENDTOCHAN, channel.name, "Cannot send to channel")
            return
        if channel.agents_only:
            for member in channel.audience(self)[1:]:
                member.send_from(self.hostmask(), command, channel.name, text)
        elif not notice and self.agent is None:
            # The lobby is a doorway: what a customer says there goes to the query.
            self._customer_says(text)

    def irc_TAGMSG(self: Connection, message: Message) -> None:  # noqa: N802
        """TAGMSG target, carrying +typing (IRCv3 typing notifications)."""
        state = TYPING.get(message.tags.get("+typing", ""))
        if state is None or not message.params:
            return
        target = message.params[0]
        try:
            if self.agent is not None:
                peer = self.chat_peer(target)
                if peer is not None:
                    self.desk.typing(peer, state)
            elif self.customer is not None and not self.customer_over:
                self.customer.typing(state)
        except GatewayError:
            pass

    # -- CTCP ---------------------------------------------------------------------

    def _ctcp(self: Connection, target: str, request: tuple[str, str], reply: bool) -> None:
        command, argument = request
        if reply:
            if command == "VERSION" and target.lower() == self.service.lower():
                self._version_reply(argument)
            return
        if command == "ACTION":
            self._message(Message("PRIVMSG", (target, f"* {self.nick} {argument}")), notice=False)
            return
        if target.lower() != self.service.lower() and not self.chat_peer(target):
            self.reply(rpl.ERR_NOSUCHNICK, target[:30], "No such nick/channel")
            return
        answer = {"VERSION": self.factory.version, "PING": argument[:64]}.get(command)
        if command == "TIME":
            answer = "gateway time"
        if answer is not None:
            self.send_from(self.service_mask(), "NOTICE", self.nick, ctcp.wrap(command, answer))

    def _ask_version(self: Connection) -> None:
        if self._asked_version:
            return
        self._asked_version = True
        self.send_from(self.service_mask(), "PRIVMSG", self.nick, ctcp.wrap("VERSION"))
        self._version_timer = self.clock.callLater(
            self.settings.ctcp_version_timeout_s, self._version_late
        )

    def _version_late(self: Connection) -> None:
        self._version_timer = None
        self._log.info("IRC {peer}: no CTCP VERSION reply in time", peer=self.peer)

    def _version_reply(self: Connection, argument: str) -> None:
        # irssi queues CTCP replies behind its own commands (seconds, more on a busy
        # network): a late reply still counts until the offer goes out (the core's call).
        if not self._asked_version or self._version_answered:
            return
        self._version_answered = True
        self.chat_cancel_timers()
        self.client = ctcp.client_info(argument)
        self._log.info(
            "IRC {peer}: client {client} {version}",
            peer=self.peer,
            client=self.client.name,
            version=self.client.version,
        )
        if self.customer is not None and not self.customer_over:
            self.customer.identify(self.client)

    # -- the customer's side ----------------------------------------------------

    def _customer_says(self: Connection, text: str) -> None:
        if self.customer_over:
            self._start_conversation(opening=text)
            return
        self.customer.say_then(text, self._said)

    def _start_conversation(self: Connection, opening: str | None = None) -> None:
        """The first message opens a conversation: kept for the agent, it answers no
        question; the interview follows."""
        old, self.customer = self.customer, None
        if old is not None:
            old.disconnected()  # ended already; the core forgets it
        self._ask_version()
        self.customer_over = False
        try:
            self.customer = self.gateway.customer_arrived(
                self,
                protocol="irc",
                client=self.client,
                answers={},
                features=self.chat_features(),
                # Ident and address stay when the nick changes: a returning customer (for
                # sticky routing; unverified, so not an identity for the service desk).
                key=f"irc:{self.user}@{self.peer.rsplit(':', 1)[0]}",
                # Resuming after a drop takes the same nick as well (gateway.core.resume).
                resume_key=f"irc:{self.nick.lower()}!{self.user}@{self.peer.rsplit(':', 1)[0]}",
                opening=opening,
            )
        except GatewayError as e:
            self.customer_over = True
            self.notice_from_service(f"Sorry: {e.text}")

    def _said(self: Connection, msg: str | None, error: Exception | None) -> None:
        # A line's outcome from the core: nothing to say once committed.
        if error is not None:
            self._request_failed(Failure(error))

    def _request_failed(self: Connection, failure: Failure) -> None:
        if failure.check(GatewayError):
            self.notice_from_service(f"Not sent: {failure.value.text}")
            return
        self._log.failure("IRC {peer}: request failed", failure, peer=self.peer)
        self.notice_from_service("Not sent: internal error")

    # -- the agent's side ---------------------------------------------------------

    def _agent_message(self: Connection, target: str, text: str) -> None:
        if target.lower() == self.service.lower():
            command = parse_command(text)
            if command is None:
                self.notice_from_service(HELP)
            else:
                self._agent_command(command)
            return
        peer = self.chat_peer(target)
        if peer is None:
            self.reply(rpl.ERR_NOSUCHNICK, target[:30], "No such nick/channel")
            return
        self.desk.say_then(peer, text, self._said)

    def agent_raw_command(self: Connection, message: Message) -> bool:
        """``ACCEPT o-1`` and friends, as clients send unknown /commands; True if handled."""
        command = parse_command(" ".join((message.command, *message.params)))
        if command is None:
            return False
        self._agent_command(command)
        return True

    def _agent_command(self: Connection, command: Command) -> None:
        self._agent_do(lambda: self.desk.run(command))

    def _agent_do(self: Connection, action) -> None:
        try:
            action()
        except GatewayError as e:
            self.notice_from_service(f"{e.code}: {e.text}")
