"""Wrap-up: after a conversation, its agent gives a disposition, tags and a private note.

Each queue has its disposition codes (``[desk] dispositions``, ``[desk.queues.NAME]``),
required or optional. When required, the agent gets no new offers until it has given
one (at most ``[desk] wrap_up_timeout_s``), on top of ``agents.wrap_up_s``. Notes may be
written during the conversation too. Everything is stored, reported per queue
(gateway.desk.sql.dispositions_report) and counted in ``imgateway_dispositions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from gateway import logs
from gateway.core import events as ev
from gateway.core.agents import LiveAgent
from gateway.core.conversation import CONNECTED, Conversation
from gateway.core.errors import BadRequest, NotAllowed
from gateway.desk.context import DeskContext


@attrs.define(eq=False)
class Pending:
    """A wrap-up an agent owes for one conversation."""

    agent: LiveAgent
    conversation: str
    alias: str
    queue: str | None
    since: float
    codes: tuple[str, ...]
    required: bool
    told: bool = False
    timer: Any = None


class WrapUps:
    """Wrap-ups owed and given."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext) -> None:
        self._ctx = ctx
        self._pending: dict[tuple[str, str], Pending] = {}  # (agent, conversation) ->
        self._release_timers: dict[str, Any] = {}
        self._last_left: dict[str, float] = {}

    def owed(self, agent: str) -> list[Pending]:
        """What ``agent`` owes, oldest first."""
        return sorted(
            (p for (name, _), p in self._pending.items() if name == agent), key=lambda p: p.since
        )

    # -- the core's moments ---------------------------------------------------------------

    def left(self, conv: Conversation, agent: LiveAgent, finished: bool) -> None:
        """The agent left a conversation; ``finished``: it ended (not a transfer)."""
        self._last_left[agent.name] = self._ctx.now()
        if not finished or agent.bot or agent.session is None or agent.session.gone:
            return
        ctx = self._ctx
        settings = ctx.settings
        now = ctx.now()
        pending = Pending(
            agent=agent,
            conversation=conv.id,
            alias=conv.alias,
            queue=conv.queue,
            since=now,
            codes=settings.codes(conv.queue),
            required=settings.required(conv.queue),
        )
        pending.timer = ctx.core.clock.callLater(settings.wrap_up_timeout_s, self._expired, pending)
        self._pending[(agent.name, conv.id)] = pending
        if pending.required and not agent.wrapping_up:
            # Held here: the core does not start its own wrap-up timer then.
            agent.change(wrapping_up=True)

    def tell(self, conversation: str) -> None:
        """The agents of an ended conversation are asked for their wrap-up."""
        for pending in list(self._pending.values()):
            if pending.conversation == conversation and not pending.told:
                pending.told = True
                self._ctx.relay.deliver(
                    pending.agent,
                    ev.WrapUp(
                        pending.conversation,
                        pending.alias,
                        pending.codes,
                        pending.required,
                        round(self._ctx.settings.wrap_up_timeout_s),
                    ),
                )

    def over(self, agent: LiveAgent) -> bool:
        """May the core end the agent's wrap-up time? Not while a disposition is due."""
        return not any(p.required for p in self.owed(agent.name))

    def agent_gone(self, agent: LiveAgent) -> None:
        """An agent logged out: what it owed is forgotten."""
        for pending in self.owed(agent.name):
            self._forget(pending)
        timer = self._release_timers.pop(agent.name, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._last_left.pop(agent.name, None)

    # -- the agent's -----------------------------------------------------------------------

    def submit(
        self,
        session: Any,
        ref: str | None,
        disposition: str | None,
        tags: Sequence[str] = (),
        note: str | None = None,
    ) -> Deferred:
        """Give the wrap-up of a conversation (``ref``: its id or customer alias; None:
        the only one owed, else the oldest)."""
        return maybeDeferred(self._submit, session, ref, disposition, tags, note)

    def _submit(self, session: Any, ref, disposition, tags, note) -> Deferred:
        pending = self._find(session.name, ref)
        settings = self._ctx.settings
        if disposition is not None:
            if not isinstance(disposition, str):
                raise BadRequest("disposition must be a string")
            disposition = disposition.strip().lower() or None
        if disposition is not None and disposition not in pending.codes:
            codes = ", ".join(pending.codes) or "none are configured"
            raise BadRequest(f"unknown disposition {disposition[:32]!r}; codes: {codes}")
        if disposition is None and pending.required:
            raise BadRequest(f"a disposition is required: {', '.join(pending.codes)}")
        tags = self._tags(tags)
        if note is not None and (not isinstance(note, str) or len(note) > settings.max_note):
            raise BadRequest(f"note must be a string of at most {settings.max_note} characters")
        ctx = self._ctx
        now = ctx.now()
        name = session.name
        d = ctx.store.wrap_up(pending.conversation, name, pending.queue, disposition, tags, now)
        if note and note.strip():
            ctx.write(ctx.store.add_note(pending.conversation, name, note.strip(), now))
        ctx.metrics.dispositions.labels(pending.queue or "-", disposition or "none").inc()
        self._log.info(
            "{agent} wrapped up {conversation}: {disposition}",
            agent=name,
            conversation=pending.conversation,
            disposition=disposition or "-",
        )
        self._forget(pending)
        result = {
            "conversation": pending.conversation,
            "disposition": disposition,
            "tags": list(tags),
            "note": bool(note and note.strip()),
        }
        return d.addCallback(lambda _: result)

    def _tags(self, tags: Any) -> list[str]:
        settings = self._ctx.settings
        if tags is None:
            return []
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            raise BadRequest("tags must be a list of strings")
        cleaned = list(dict.fromkeys(t.strip().lstrip("#").lower() for t in tags if t.strip()))
        if len(cleaned) > settings.max_tags:
            raise BadRequest(f"at most {settings.max_tags} tags")
        for tag in cleaned:
            if len(tag) > settings.max_tag_length or not tag.isprintable():
                raise BadRequest(f"a tag is at most {settings.max_tag_length} printable characters")
        return cleaned

    def note(self, session: Any, ref: str, text: str) -> Deferred:
        """A private note on a conversation the agent is in, or owes a wrap-up for."""
        return maybeDeferred(self._note, session, ref, text)

    def _note(self, session: Any, ref: str, text: str) -> Deferred:
        settings = self._ctx.settings
        if not isinstance(text, str) or not text.strip() or len(text) > settings.max_note:
            raise BadRequest(f"a note is 1 to {settings.max_note} characters")
        conversation = self._noted(session, ref)
        ctx = self._ctx
        d = ctx.store.add_note(conversation, session.name, text.strip(), ctx.now())
        return d.addCallback(lambda _: {"conversation": conversation, "note": True})

    def _noted(self, session: Any, ref: str) -> str:
        for pending in self.owed(session.name):
            if ref in (pending.conversation, pending.alias):
                return pending.conversation
        conv = self._ctx.conversation(ref)
        if conv.agent is session.agent and conv.state == CONNECTED:
            return conv.id
        if self.in_room is not None and self.in_room(conv.id, session.name):
            return conv.id
        raise NotAllowed(f"not in conversation {ref[:64]}")

    # Whether an agent is a participant of a conversation (set by the desk).
    in_room: Any = None

    # -- bookkeeping -----------------------------------------------------------------------

    def _find(self, agent: str, ref: str | None) -> Pending:
        owed = self.owed(agent)
        if not owed:
            raise NotAllowed("no wrap-up is due")
        if ref is None:
            return owed[0]
        folded = ref.partition("@")[0].lower()
        for pending in owed:
            if folded in (pending.conversation, pending.alias.lower()):
                return pending
        raise NotAllowed(f"no wrap-up is due for {ref[:64]}")

    def _expired(self, pending: Pending) -> None:
        pending.timer = None
        if self._pending.get((pending.agent.name, pending.conversation)) is pending:
            self._log.info(
                "wrap-up of {conversation} by {agent} not given in time",
                conversation=pending.conversation,
                agent=pending.agent.name,
            )
            self._forget(pending)

    def _forget(self, pending: Pending) -> None:
        self._pending.pop((pending.agent.name, pending.conversation), None)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        if pending.required:
            self._maybe_release(pending.agent)

    def _maybe_release(self, agent: LiveAgent) -> None:
        """No disposition due any more: wrap-up ends, but not before agents.wrap_up_s
        after the agent's last conversation."""
        if not self.over(agent) or agent.session is None or agent.session.gone:
            return
        ctx = self._ctx
        last = self._last_left.get(agent.name, 0.0)
        delay = max(0.0, last + ctx.core.config.wrap_up_s - ctx.now())
        old = self._release_timers.pop(agent.name, None)
        if old is not None and old.active():
            old.cancel()
        self._release_timers[agent.name] = ctx.core.clock.callLater(delay, self._release, agent)

    def _release(self, agent: LiveAgent) -> None:
        self._release_timers.pop(agent.name, None)
        if agent.session is None or agent.session.gone or not self.over(agent):
            return
        if agent.wrapping_up:
            agent.change(wrapping_up=False)
            self._ctx.dispatcher.match()
