"""Not-ready reasons: an agent goes away with a reason code (break, training, after-call
work...), and every agent's states are logged, so reports say how long each agent was
available, away (and why) or offline.

The reason is part of the agent's presence (supervisors see it beside the state). The
log follows every status change of this node's agents, however it came about: the
agent's own, a supervisor's, or lapsed offers (reason ``missed_offers``).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from gateway import logs
from gateway.core.errors import BadRequest
from gateway.desk.context import DeskContext
from gateway.directory.records import AWAY, OFFLINE, AgentPresence

MISSED_OFFERS = "missed_offers"


class States:
    """Agents' statuses with their reasons, as spans in the store."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext) -> None:
        self._ctx = ctx
        # (session, status, reason) each local agent was last logged in.
        self._current: dict[str, tuple[str, str, str]] = {}
        ctx.core.directory.watch(self._changed)

    def start(self) -> Deferred:
        """Spans a stop left open are closed (their length is unknown)."""
        return self._ctx.store.states_interrupted()

    def away(self, session: Any, reason: str | None) -> Deferred:
        """The agent goes away, giving a reason from ``[desk] away_reasons``."""
        return maybeDeferred(self._away, session, reason)

    def _away(self, session: Any, reason: str | None) -> dict:
        reasons = self._ctx.settings.away_reasons
        if reason is not None and (not isinstance(reason, str) or reason.lower() not in reasons):
            raise BadRequest(f"reason must be one of {', '.join(reasons)}")
        reason = reason.lower() if reason else ""
        agent = session.agent
        if agent.status == AWAY:
            agent.change(reason=reason)
        else:
            # The reason goes with the change of status: one span, one publish.
            agent.presence.reason = reason
            session.set_presence(AWAY)
        return {"status": AWAY, "reason": reason or None}

    def _changed(self, name: str, presence: AgentPresence | None) -> None:
        ctx = self._ctx
        if presence is None or presence.status == OFFLINE:
            if self._current.pop(name, None) is not None:
                ctx.write(ctx.store.state_close(name, ctx.now()))
            return
        if presence.node != ctx.core.node:
            return  # another node's agent: that node logs it
        # The reason belongs to "away" only; lapsed offers are a reason of their own.
        if presence.status != AWAY:
            presence.reason = ""
        elif not presence.reason and presence.lapses >= ctx.core.config.max_lapsed_offers:
            presence.reason = MISSED_OFFERS
        current = (presence.session, presence.status, presence.reason)
        if self._current.get(name) == current:
            return
        self._current[name] = current
        ctx.write(ctx.store.state_open(name, presence.status, presence.reason, ctx.now()))
