"""An agent's desk: its offers and conversations by customer nick, and its commands.

Shared by the listener (an agent connected to the gateway) and bot mode (an agent
on the network writing to the bot); each renders the desk's replies its own way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from gateway.core import events as ev
from gateway.core.errors import BadRequest, GatewayError
from gateway.desk import chat
from protocols.irc.commands import DESK, DESK_HELP, HELP, Command


class AgentDesk:
    """What an agent has open; ``notify`` tells the agent a short text."""

    def __init__(
        self, session: Any, notify: Callable[[str], None], service_desk: Any = None
    ) -> None:
        self.session = session
        self.notify = notify
        # The gateway's service desk (gateway.desk), for its commands.
        self.service_desk = service_desk
        self.offers: list[str] = []
        self.alias_of: dict[str, str] = {}  # conversation id -> customer nick
        self.conversation_of: dict[str, str] = {}  # customer nick -> conversation id

    def track(self, event: object) -> None:
        """Note an event before it is rendered (offers, new conversations)."""
        if isinstance(event, ev.Offer):
            self.offers.append(event.offer)
        elif isinstance(event, ev.Revoked) and event.offer in self.offers:
            self.offers.remove(event.offer)
        elif isinstance(event, ev.Connected):
            self.alias_of[event.conversation] = event.peer_alias
            self.conversation_of[event.peer_alias] = event.conversation

    def forget(self, event: object) -> None:
        """Note an event after it is rendered (ended conversations)."""
        if isinstance(event, ev.Ended):
            alias = self.alias_of.pop(event.conversation, None)
            self.conversation_of.pop(alias, None)

    def peer(self, nick: str) -> str | None:
        """The customer nick ``nick`` names (case-insensitively), if it is one of ours."""
        lower = nick.lower()
        for alias in self.conversation_of:
            if alias.lower() == lower:
                return alias
        return None

    def say(self, alias: str, text: str) -> Deferred[str]:
        """Say ``text`` in the conversation with customer ``alias``."""
        return self.session.say(self.conversation_of[alias], text)

    def say_then(self, alias: str, text: str, done: Callable[..., object]) -> None:
        """As :meth:`say`: ``done(msg_id, None)`` once committed, ``done(None, error)``."""
        self.session.say_then(self.conversation_of[alias], text, done)

    def typing(self, alias: str, state: str) -> None:
        """Relay typing to customer ``alias``."""
        self.session.typing(self.conversation_of[alias], state)

    def run(self, command: Command) -> None:
        """Carry out one command; a GatewayError says why it could not be."""
        if command.name in DESK or (command.name == "away" and command.args):
            self._desk(command)
            return
        getattr(self, "_" + command.name)(command.args)

    def _desk(self, command: Command) -> None:
        """A service desk command: its answer comes as a notice once it is done."""
        if command.name == "away":
            if self.service_desk is None:
                raise BadRequest("away takes no reason here")
            d = self.service_desk.away(self.session, command.args[0])
            d.addCallback(lambda r: f"You are away ({r['reason']}): no new offers.")
        else:
            d = chat.run(self.service_desk, self.session, command.name, command.args, None)

        def answered(text: str | None) -> None:
            if text:
                self.notify(text)

        def refused(failure: Failure) -> None:
            if failure.check(GatewayError):
                self.notify(f"{failure.value.code}: {failure.value.text}")
            else:
                self.notify("internal: internal error")

        d.addCallbacks(answered, refused)

    def _conversation(self, args: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        if args:
            peer = self.peer(args[0])
            if peer is not None:
                return self.conversation_of[peer], args[1:]
        if len(self.conversation_of) == 1:
            return next(iter(self.conversation_of.values())), args
        raise BadRequest("name the customer (its nick) first")

    def _offer(self, args: tuple[str, ...], verb: str) -> str:
        offer = args[0] if args else (self.offers[-1] if self.offers else None)
        if offer is None:
            raise BadRequest(f"no offer to {verb}")
        return offer

    def _accept(self, args: tuple[str, ...]) -> None:
        offer = self._offer(args, "accept")
        self.session.accept(offer)
        if offer in self.offers:
            self.offers.remove(offer)

    def _reject(self, args: tuple[str, ...]) -> None:
        offer = self._offer(args, "reject")
        self.session.reject(offer)
        if offer in self.offers:
            self.offers.remove(offer)
        self.notify(f"Offer {offer} rejected.")

    def _transfer(self, args: tuple[str, ...]) -> None:
        conversation, rest = self._conversation(args)
        if len(rest) != 1:
            raise BadRequest("transfer [CUSTOMER] QUEUE, or transfer [CUSTOMER] @AGENT")
        if rest[0].startswith("@"):
            self.session.transfer(conversation, agent=rest[0][1:])
        else:
            self.session.transfer(conversation, queue=rest[0])

    def _end(self, args: tuple[str, ...]) -> None:
        conversation, _ = self._conversation(args)
        self.session.end(conversation)

    def _status(self, args: tuple[str, ...]) -> None:
        chats = ", ".join(sorted(self.conversation_of)) or "none"
        offers = ", ".join(self.offers) or "none"
        status = self.session.agent.status
        self.notify(f"You are {status}; conversations: {chats}; offers: {offers}.")

    def _away(self, args: tuple[str, ...]) -> None:
        self.session.set_presence("away")
        self.notify("You are away: no new offers.")

    def _back(self, args: tuple[str, ...]) -> None:
        self.session.set_presence("available")
        self.notify("You are available.")

    def _help(self, args: tuple[str, ...]) -> None:
        self.notify(DESK_HELP if args[:1] == ("desk",) else HELP)
