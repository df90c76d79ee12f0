"""Supervisors: an agent account's role. They monitor a live conversation silently (with
its history), whisper to its agent, or barge in visibly; from any agent client, or from
the supervisor web page (as the admin API's holder).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger

from gateway import logs
from gateway.core.agents import LiveAgent
from gateway.core.conversation import Conversation
from gateway.core.errors import NotAllowed
from gateway.desk.context import DeskContext
from gateway.desk.rooms import BARGE, MONITOR, Rooms

SUPERVISOR = "supervisor"
ROLE_NAMES = (SUPERVISOR,)


class Roles:
    """Agents' desk roles, read from the store when they log in (a change takes effect
    at the next login)."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext) -> None:
        self._ctx = ctx
        self._roles: dict[str, Deferred | str | None] = {}

    def logged_in(self, agent: LiveAgent) -> None:
        """Look up the role of an agent that just logged in."""
        d = self._ctx.store.role(agent.name)
        self._roles[agent.name] = d

        def found(role: str | None) -> str | None:
            if self._roles.get(agent.name) is d:
                self._roles[agent.name] = role
            return role

        def failed(failure: Any) -> None:
            self._log.failure("looking up the role of {agent} failed", failure, agent=agent.name)
            found(None)

        d.addCallbacks(found, failed)

    def refresh(self, name: str) -> None:
        """The role of ``name`` changed: look it up again if it is logged in here."""
        agent = self._ctx.core.local.get(name)
        if agent is not None:
            self.logged_in(agent)

    def logged_out(self, agent: LiveAgent) -> None:
        """Forget the role of an agent that left."""
        self._roles.pop(agent.name, None)

    def role(self, name: str) -> Deferred:
        """A Deferred firing with the role of a logged-in agent (None: none)."""
        known = self._roles.get(name)
        if isinstance(known, Deferred):
            waiting: Deferred = Deferred()
            known.addBoth(lambda r: (waiting.callback(self._roles.get(name)), r)[1])
            return waiting
        return succeed(known)

    def supervisor(self, session: Any) -> Deferred:
        """Fires with the session's agent if it is a supervisor; fails NotAllowed if not."""

        def check(role: str | None) -> LiveAgent:
            if role != SUPERVISOR:
                raise NotAllowed("only a supervisor may do that")
            return session.agent

        return self.role(session.name).addCallback(check)


class Supervision:
    """Monitor, barge in, and the supervisor page's whisper and line."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext, rooms: Rooms, roles: Roles, scope: Any) -> None:
        self._ctx = ctx
        self._rooms = rooms
        self._roles = roles
        # Which conversations a supervisor may act on (their teams'; see gateway.desk.teams).
        self._scope = scope

    def _target(self, supervisor: LiveAgent, ref: str) -> Conversation:
        conv = self._ctx.conversation(ref)
        if not self._scope.may_supervise(supervisor.name, conv):
            raise NotAllowed(f"conversation {conv.id} is not of your teams")
        if conv.agent is supervisor:
            raise NotAllowed("you are this conversation's agent")
        return conv

    def monitor(self, session: Any, ref: str) -> Deferred:
        """Follow a live conversation silently, from what was said so far."""

        def go(supervisor: LiveAgent) -> dict:
            conv = self._target(supervisor, ref)
            self._rooms.join(conv, supervisor, MONITOR)
            return _joined(conv, MONITOR)

        return self._roles.supervisor(session).addCallback(go)

    def barge(self, session: Any, ref: str) -> Deferred:
        """Join a conversation visibly: the customer is told, and sees the supervisor's lines."""

        def go(supervisor: LiveAgent) -> dict:
            conv = self._target(supervisor, ref)
            present = self._rooms.get(conv.id, supervisor.name)
            if present is None:
                self._rooms.join(conv, supervisor, BARGE)
            elif present.role != BARGE:
                self._rooms.change(conv, present, BARGE)
            return _joined(conv, BARGE)

        return self._roles.supervisor(session).addCallback(go)

    def live(self, session: Any) -> Deferred:
        """The live conversations this supervisor may monitor, oldest first."""

        def listing(supervisor: LiveAgent) -> dict:
            now = self._ctx.now()
            conversations = sorted(
                self._ctx.relay.conversations.values(), key=lambda c: (c.started, c.id)
            )
            return {
                "conversations": [
                    live_view(conv, now)
                    for conv in conversations
                    if self._scope.may_supervise(supervisor.name, conv)
                ]
            }

        return self._roles.supervisor(session).addCallback(listing)

    # -- the supervisor page ---------------------------------------------------------

    def page_whisper(self, ref: str, text: str) -> Deferred:
        """The page's supervisor whispers to the agent (and anyone else beside it)."""
        return maybeDeferred(self._page_line, ref, text, private=True)

    def page_say(self, ref: str, text: str) -> Deferred:
        """The page's supervisor writes to the customer, visibly (a barge from the page)."""
        return maybeDeferred(self._page_line, ref, text, private=False)

    def _page_line(self, ref: str, text: str, *, private: bool) -> Deferred:
        conv = self._ctx.conversation(ref)
        alias = self._ctx.settings.supervisor_alias
        self._log.info(
            "the supervisor page {how} in {conversation}",
            how="whispers" if private else "writes",
            conversation=conv.id,
        )
        if private:
            if conv.agent is None and not self._rooms.of(conv.id):
                return fail(NotAllowed(f"no agent in conversation {conv.id} to whisper to"))
            return self._rooms.private_line(conv, None, alias, text)
        return self._rooms.visible_line(conv, _PageSupervisor(alias), text)


class _PageSupervisor:
    """The supervisor page as the author of a line: no agent account behind it."""

    name = None
    protocol = "admin"

    def __init__(self, alias: str) -> None:
        self.alias = alias


def _joined(conv: Conversation, role: str) -> dict:
    return {"conversation": conv.id, "customer": conv.alias, "role": role}


def live_view(conv: Conversation, now: float) -> dict:
    """One live conversation as a supervisor's list shows it."""
    return {
        "id": conv.id,
        "customer": conv.alias,
        "state": conv.state,
        "queue": conv.queue,
        "topic": conv.topic,
        "agent": conv.agent.alias if conv.agent is not None else None,
        "age_s": round(max(0.0, now - conv.started), 1),
    }
