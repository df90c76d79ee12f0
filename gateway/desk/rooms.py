"""Conversations with more than one agent: who is in each beside its agent, and who sees what.

A supervisor monitoring or barged in, a colleague consulted or in conference: each is a
:class:`Participant` of the conversation's room. The customer's lines and the agent's
reach every participant; a participant's lines reach the customer only when its role
is visible (``conference``, ``barge``); otherwise they are private, for the agents.
Every line is stored with its ``audience`` and every join and leave with its time
(``conversation_parties``): the transcript says who saw what.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from gateway import logs
from gateway.core import events as ev
from gateway.core.agents import LiveAgent
from gateway.core.conversation import Conversation
from gateway.core.errors import BadRequest, GatewayError, NotAllowed
from gateway.desk.context import DeskContext
from gateway.store.records import StoredMessage

MONITOR, CONSULT, CONFERENCE, BARGE = "monitor", "consult", "conference", "barge"
ROLES = (MONITOR, CONSULT, CONFERENCE, BARGE)
VISIBLE = frozenset({CONFERENCE, BARGE})
AGENTS = "agents"  # the audience of a private line

JOINED_VISIBLY = {
    CONFERENCE: "{alias} joined the conversation.",
    BARGE: "A supervisor, {alias}, joined the conversation.",
}
LEFT_VISIBLY = "{alias} left the conversation."


@attrs.define(eq=False)
class Participant:
    """An agent in a conversation beside its agent."""

    agent: LiveAgent
    role: str
    joined: float
    # For a consultation: who asked (it ends when that agent leaves).
    invited_by: str | None = None

    @property
    def visible(self) -> bool:
        """Whether the customer sees this participant's lines."""
        return self.role in VISIBLE


class Rooms:
    """Every live conversation's participants, and the lines among them."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext) -> None:
        self._ctx = ctx
        self._rooms: dict[str, dict[str, Participant]] = {}

    # -- who is where ------------------------------------------------------------

    def of(self, conversation: str) -> list[Participant]:
        """The participants of a conversation, by joining order."""
        return list(self._rooms.get(conversation, {}).values())

    def get(self, conversation: str, name: str) -> Participant | None:
        """Agent ``name``'s participation in a conversation, or None."""
        return self._rooms.get(conversation, {}).get(name)

    def rooms_of(self, name: str) -> list[str]:
        """The conversations agent ``name`` is a participant of."""
        return [cid for cid, room in self._rooms.items() if name in room]

    def join(
        self, conv: Conversation, agent: LiveAgent, role: str, *, invited_by: str | None = None
    ) -> Participant:
        """Add ``agent`` to the conversation as ``role``; it gets what was said so far."""
        ctx = self._ctx
        room = self._rooms.setdefault(conv.id, {})
        if agent.name in room or conv.agent is agent:
            raise NotAllowed(f"you are in conversation {conv.id} already")
        now = ctx.now()
        participant = room[agent.name] = Participant(agent, role, now, invited_by)
        ctx.write(ctx.store.party_joined(conv.id, agent.name, role, now))
        ctx.metrics.supervision.labels(role).inc()
        self._log.info(
            "{agent} joins {conversation} as {role}",
            agent=agent.name,
            conversation=conv.id,
            role=role,
        )
        self.record(conv, f"{agent.name} joined as {role}")
        primary = conv.agent.alias if conv.agent is not None else None
        ctx.relay.deliver(
            agent,
            ev.Connected(
                conv.id,
                conv.alias,
                tuple(conv.history),
                role=role,
                agent_alias=primary,
                past=conv.past,
            ),
        )
        if participant.visible:
            ctx.relay.system_line(conv, JOINED_VISIBLY[role].format(alias=agent.alias))
        return participant

    def change(self, conv: Conversation, participant: Participant, role: str) -> None:
        """A participant's role changes (a consultation becomes a conference, a monitor
        barges in); the customer is told when it becomes visible."""
        was_visible = participant.visible
        participant.role = role
        ctx = self._ctx
        now = ctx.now()
        name = participant.agent.name
        ctx.write(ctx.store.party_left(conv.id, name, now))
        ctx.write(ctx.store.party_joined(conv.id, name, role, now))
        ctx.metrics.supervision.labels(role).inc()
        self.record(conv, f"{name} is now in it as {role}")
        if participant.visible and not was_visible:
            ctx.relay.system_line(conv, JOINED_VISIBLY[role].format(alias=participant.agent.alias))
        notice = ev.Notice(f"You are in {conv.alias}'s chat as {role}.")
        ctx.relay.deliver(participant.agent, notice)

    def leave(self, conv: Conversation, name: str, reason: str = "agent") -> Participant:
        """Agent ``name`` leaves the conversation (it is told: ``ended``)."""
        room = self._rooms.get(conv.id, {})
        participant = room.pop(name, None)
        if participant is None:
            raise NotAllowed(f"you are not in conversation {conv.id}")
        if not room:
            self._rooms.pop(conv.id, None)
        ctx = self._ctx
        ctx.write(ctx.store.party_left(conv.id, name, ctx.now()))
        self.record(conv, f"{name} left")
        if participant.visible:
            ctx.relay.system_line(conv, LEFT_VISIBLY.format(alias=participant.agent.alias))
        ctx.relay.deliver(participant.agent, ev.Ended(conv.id, reason))
        return participant

    def drop(self, conv: Conversation, name: str) -> None:
        """Take ``name`` out of the room without telling it (it became the agent)."""
        room = self._rooms.get(conv.id, {})
        if room.pop(name, None) is not None:
            self._ctx.write(self._ctx.store.party_left(conv.id, name, self._ctx.now()))
        if not room:
            self._rooms.pop(conv.id, None)

    def ended(self, conv: Conversation, reason: str) -> None:
        """The conversation ended (or its agent's part did): everyone in it leaves."""
        room = self._rooms.pop(conv.id, {})
        now = self._ctx.now()
        for name, participant in room.items():
            self._ctx.write(self._ctx.store.party_left(conv.id, name, now))
            self._ctx.relay.deliver(participant.agent, ev.Ended(conv.id, reason))

    def agent_left(self, conv: Conversation, agent: LiveAgent) -> None:
        """The agent left a conversation that goes on: the colleagues it consulted leave."""
        for participant in self.of(conv.id):
            if participant.role == CONSULT and participant.invited_by == agent.name:
                self.leave(conv, participant.agent.name)

    def agent_gone(self, agent: LiveAgent, conversations: dict[str, Conversation]) -> None:
        """An agent logged out: it leaves every room it was in."""
        for cid in self.rooms_of(agent.name):
            conv = conversations.get(cid)
            room = self._rooms.get(cid, {})
            if conv is None:
                room.pop(agent.name, None)
                continue
            participant = room.pop(agent.name)
            if not room:
                self._rooms.pop(cid, None)
            self._ctx.write(self._ctx.store.party_left(cid, agent.name, self._ctx.now()))
            self.record(conv, f"{agent.name} left (logged out)")
            if participant.visible:
                self._ctx.relay.system_line(conv, LEFT_VISIBLY.format(alias=agent.alias))

    # -- lines -------------------------------------------------------------------------

    def relayed(self, conv: Conversation, event: ev.Message) -> None:
        """A line between the customer and the agent: every participant sees it."""
        room = self._rooms.get(conv.id)
        if not room:
            return
        if event.sender == ev.AGENT and conv.agent is not None:
            event = attrs.evolve(event, alias=conv.agent.alias)
        for participant in room.values():
            self._ctx.relay.deliver(participant.agent, event)

    def customer_line(self, conv: Conversation, entry: StoredMessage) -> None:
        """A customer's line while no agent has the conversation (queued): monitors see it."""
        self.relayed(conv, ev.Message(conv.id, ev.CUSTOMER, entry.id, entry.text, entry.ts))

    def says(self, session: Any, conversation: str, text: str) -> Deferred | None:
        """A participant writes in the conversation: to everyone, or privately."""
        conv = self._ctx.relay.conversations.get(conversation)
        participant = self.get(conversation, session.name) if conv is not None else None
        if participant is None:
            return None
        if participant.visible:
            return self.visible_line(conv, participant.agent, text)
        return self.private_line(conv, participant.agent, participant.agent.alias, text)

    def visible_line(self, conv: Conversation, author: LiveAgent, text: str) -> Deferred:
        """A participant's line the customer sees, stored as the author's."""
        ctx = self._ctx
        try:
            text = _checked(text)
        except GatewayError:
            return fail()
        if ctx.core.text_filter is not None:
            text = ctx.core.text_filter(text)
        entry = StoredMessage(
            id=ctx.core.ids.message(),
            conversation=conv.id,
            sender=ev.AGENT,
            text=text,
            ts=ctx.now(),
            agent=author.name,
        )
        acked = _append(ctx.core.store, entry)
        conv.remember(ev.HistoryEntry(ev.AGENT, text, entry.ts))
        ctx.core.metrics.count_message(author.protocol, ev.AGENT)
        event = ev.Message(conv.id, ev.AGENT, entry.id, text, entry.ts, alias=author.alias)
        ctx.relay.deliver(conv.customer, event)
        self._to_agents(conv, event, author.name)
        return acked.addCallback(lambda _: entry.id)

    def private_line(
        self, conv: Conversation, author: LiveAgent | None, alias: str, text: str
    ) -> Deferred:
        """A line among the agents only (a whisper, a consultation); never the customer's."""
        ctx = self._ctx
        try:
            text = _checked(text)
        except GatewayError:
            return fail()
        entry = StoredMessage(
            id=ctx.core.ids.message(),
            conversation=conv.id,
            sender=ev.AGENT,
            text=text,
            ts=ctx.now(),
            agent=author.name if author is not None else None,
            audience=AGENTS,
        )
        acked = ctx.store.insert_private(entry)
        event = ev.Message(conv.id, ev.AGENT, entry.id, text, entry.ts, alias=alias, private=True)
        self._to_agents(conv, event, author.name if author is not None else None)
        return acked.addCallback(lambda _: entry.id)

    def _to_agents(self, conv: Conversation, event: ev.Message, author: str | None) -> None:
        relay = self._ctx.relay
        if conv.agent is not None and conv.agent.name != author:
            relay.deliver(conv.agent, event)
        for participant in self.of(conv.id):
            if participant.agent.name != author:
                relay.deliver(participant.agent, event)

    def record(self, conv: Conversation, text: str) -> None:
        """A system line for the agents only, in the transcript."""
        ctx = self._ctx
        entry = StoredMessage(
            id=ctx.core.ids.message(),
            conversation=conv.id,
            sender=ev.SYSTEM,
            text=text,
            ts=ctx.now(),
            audience=AGENTS,
        )
        ctx.write(ctx.store.insert_private(entry))


def _checked(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("text must be a non-empty string")
    return text


def _append(store: Any, entry: StoredMessage) -> Deferred:
    try:
        return store.append(entry)
    except Exception:
        return fail()
