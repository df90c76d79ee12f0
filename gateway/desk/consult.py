"""Warm transfer, consultation and conference: an agent brings a colleague in.

The agent consults a colleague privately (the colleague sees the conversation and the
agents' private lines, the customer nothing of it); then either hands the conversation
over with an introduction the customer and the colleague read (a warm transfer), or
adds the colleague to the conversation (a conference, which the customer is told of).
A cold transfer (to a queue or a named colleague, through its queue) stays the core's.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from gateway import logs
from gateway.core import events as ev
from gateway.core.agents import LiveAgent
from gateway.core.conversation import Conversation
from gateway.core.errors import BadRequest, NotAllowed, Unavailable
from gateway.desk.context import DeskContext
from gateway.desk.rooms import CONFERENCE, CONSULT, Rooms


class Consults:
    """The agent's side of bringing a colleague in."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext, rooms: Rooms) -> None:
        self._ctx = ctx
        self._rooms = rooms

    def _colleague(self, session: Any, name: str) -> LiveAgent:
        if not isinstance(name, str) or not name:
            raise BadRequest("name the colleague")
        name = name.removeprefix("@")
        if name == session.name:
            raise BadRequest("you cannot consult yourself")
        colleague = self._ctx.core.local.get(name)
        if colleague is None or colleague.session is None or colleague.status == "offline":
            raise Unavailable(f"agent {name[:64]} is not logged in")
        if colleague.bot:
            raise Unavailable(f"agent {name[:64]} is a bot")
        return colleague

    def consult(self, session: Any, ref: str, name: str, text: str | None = None) -> Deferred:
        """Bring a colleague into the conversation privately; ``text`` is a first line to it."""
        return maybeDeferred(self._consult, session, ref, name, text)

    def _consult(self, session: Any, ref: str, name: str, text: str | None) -> Any:
        conv = self._ctx.own(session, ref)
        colleague = self._colleague(session, name)
        self._rooms.join(conv, colleague, CONSULT, invited_by=session.name)
        result = {"conversation": conv.id, "agent": colleague.name, "role": CONSULT}
        if not text:
            return result
        d = self._rooms.private_line(conv, session.agent, session.agent.alias, text)
        return d.addCallback(lambda msg: {**result, "msg": msg})

    def conference(self, session: Any, ref: str, name: str | None = None) -> Deferred:
        """Add a colleague (the one consulted, or ``name``) to the conversation visibly."""
        return maybeDeferred(self._conference, session, ref, name)

    def _conference(self, session: Any, ref: str, name: str | None) -> dict:
        conv = self._ctx.own(session, ref)
        present = self._consulted(conv, session, name)
        if present is not None:
            self._rooms.change(conv, present, CONFERENCE)
            colleague = present.agent
        else:
            colleague = self._colleague(session, name or "")
            self._rooms.join(conv, colleague, CONFERENCE, invited_by=session.name)
        return {"conversation": conv.id, "agent": colleague.name, "role": CONFERENCE}

    def _consulted(self, conv: Conversation, session: Any, name: str | None) -> Any:
        participants = [p for p in self._rooms.of(conv.id) if p.role in (CONSULT, CONFERENCE)]
        if name:
            name = name.removeprefix("@")
            return next((p for p in participants if p.agent.name == name), None)
        consulted = [p for p in participants if p.role == CONSULT]
        if len(consulted) == 1:
            return consulted[0]
        raise BadRequest("name the colleague")

    def handover(
        self, session: Any, ref: str, name: str | None, introduction: str | None = None
    ) -> Deferred:
        """A warm transfer: the consulted colleague takes the conversation over at once,
        after the agent's ``introduction`` (which the customer and the colleague read)."""
        return maybeDeferred(self._handover, session, ref, name, introduction)

    def _handover(self, session: Any, ref: str, name: str | None, introduction: str | None):
        conv = self._ctx.own(session, ref)
        present = self._consulted(conv, session, name)
        if present is None:
            raise NotAllowed(f"{name} is not in conversation {conv.id}; consult them first")
        colleague = present.agent
        if colleague.session is None or colleague.session.gone:
            raise Unavailable(f"agent {colleague.name} is not logged in")
        said = session.say(conv.id, introduction) if introduction else None
        if said is not None:
            # The introduction goes out before the hand-over; a refusal stops it.
            return said.addCallback(lambda msg: self._hand(conv, session.agent, colleague, msg))
        return self._hand(conv, session.agent, colleague, None)

    def _hand(self, conv: Conversation, agent: LiveAgent, colleague: LiveAgent, msg: Any) -> dict:
        ctx = self._ctx
        if conv.agent is not agent or self._rooms.get(conv.id, colleague.name) is None:
            raise NotAllowed(f"conversation {conv.id} changed hands meanwhile")
        self._log.info(
            "{agent} hands {conversation} over to {colleague}",
            agent=agent.name,
            conversation=conv.id,
            colleague=colleague.name,
        )
        self._rooms.drop(conv, colleague.name)
        self._rooms.record(conv, f"{agent.name} handed the conversation over to {colleague.name}")
        ctx.desk.leave(conv, agent)
        ctx.relay.deliver(agent, ev.Ended(conv.id, "agent"))
        now = ctx.now()
        conv.agent = colleague
        conv.connected_at = now
        colleague.joined(conv.id, conv.protocol)
        queue = ctx.core.queues.get(conv.queue)
        if queue is not None:
            queue.active += 1
        ctx.write(ctx.core.store.update_conversation(conv.id, agent=colleague.name))
        ctx.relay.deliver(
            colleague, ev.Connected(conv.id, conv.alias, tuple(conv.history), past=conv.past)
        )
        ctx.relay.deliver(conv.customer, ev.Connected(conv.id, colleague.alias))
        result = {"conversation": conv.id, "agent": colleague.name, "role": "agent"}
        return result if msg is None else {**result, "msg": msg}
