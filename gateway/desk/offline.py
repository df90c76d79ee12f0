"""Offline messages: when nobody can serve a customer, they may leave a message.

Out of hours (``closed``), with no agent able to serve (``no_agents``: the queue is
full, or nobody is logged in with ``routing.when_no_agents = "end"``) or after
``queues.NAME.max_wait_s`` (``timeout``), a queue with ``[desk.offline]`` on asks the
customer for a message instead of only ending the conversation. The message is stored
and becomes a task, offered to one available agent at a time as agents come. The
agent's answer goes back over the customer's protocol when they return (recognised by
their verified identity, see gateway.desk.history); the admin API lists them all.
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from gateway import logs
from gateway.core import events as ev
from gateway.core.agents import LiveAgent
from gateway.core.conversation import CONNECTED, INTERVIEW, Conversation
from gateway.core.errors import BadRequest, NotAllowed
from gateway.desk.context import LEAVING_MESSAGE, DeskContext
from gateway.desk.records import ANSWERED, ASSIGNED, DELIVERED, OPEN, OfflineMessage
from gateway.store.records import StoredMessage

FIELD = "offline_message"
WAITING_STATES = ("queued", "offered")


class Offline:
    """Messages left, and the tasks they become."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext) -> None:
        self._ctx = ctx
        self._settings = ctx.settings.offline
        # The end each conversation leaving a message had coming (closed, no_agents...).
        self._reasons: dict[str, str] = {}
        # Unanswered messages (tasks), oldest first.
        self.tasks: dict[str, OfflineMessage] = {}
        self._dispatching = False

    def load(self) -> Deferred:
        """Take back the unanswered messages a stop left (their agents are gone)."""

        def loaded(messages: list[OfflineMessage]) -> int:
            for m in messages:
                if m.state == ASSIGNED:
                    m.state, m.agent = OPEN, None
                    self._ctx.write(self._ctx.store.update_offline(m.id, state=OPEN, agent=None))
                self.tasks.setdefault(m.id, m)
            self.dispatch()
            return len(messages)

        return self._ctx.store.offline_waiting().addCallback(loaded)

    # -- a customer leaves a message ----------------------------------------------------

    def applies(self, conv: Conversation, reason: str) -> bool:
        """Whether this end should ask for a message instead."""
        ctx = self._ctx
        if reason not in self._settings.when or conv.customer is None or conv.customer.gone:
            return False
        waiting = conv.state in WAITING_STATES or (conv.state == INTERVIEW and conv.interview.done)
        queue = conv.queue or ctx.core.config.queue_for_topic(conv.topic)
        return waiting and ctx.settings.offline_for(queue)

    def start(self, conv: Conversation, reason: str) -> None:
        """Ask the customer for a message; the conversation ends once it is given."""
        ctx = self._ctx
        ctx.dispatcher.withdraw(conv)
        if conv.queue is None:
            conv.queue = ctx.core.config.queue_for_topic(conv.topic)
        conv.state = LEAVING_MESSAGE
        conv.agent = None
        self._reasons[conv.id] = reason
        ctx.write(ctx.core.store.update_conversation(conv.id, state=LEAVING_MESSAGE))
        self._log.info(
            "conversation {conversation}: the customer may leave a message ({reason})",
            conversation=conv.id,
            reason=reason,
        )
        ctx.relay.start_timer(conv, self._settings.answer_timeout_s, self._silent)
        ctx.relay.store_system(conv, self._settings.prompt)
        ctx.relay.deliver(conv.customer, ev.Prompt(FIELD, self._settings.prompt))

    def _silent(self, conv: Conversation) -> None:
        if conv.state == LEAVING_MESSAGE:
            ctx = self._ctx
            ctx.relay.end(conv, self._reasons.pop(conv.id, "timeout"))

    def line(self, conv: Conversation, entry: StoredMessage) -> None:
        """The customer's message."""
        ctx = self._ctx
        text = entry.text.strip()
        if not text:
            ctx.relay.deliver(conv.customer, ev.Prompt(FIELD, self._settings.prompt))
            return
        if len(text) > self._settings.max_length:
            ctx.relay.system_line(
                conv, f"Please keep it under {self._settings.max_length} characters."
            )
            ctx.relay.deliver(conv.customer, ev.Prompt(FIELD, self._settings.prompt))
            return
        message = OfflineMessage(
            id="t-" + secrets.token_hex(8),
            conversation=conv.id,
            customer=conv.customer_id,
            alias=conv.alias,
            protocol=conv.protocol,
            name=conv.answers.get("name"),
            queue=conv.queue,
            text=text,
            received=entry.ts,
        )
        ctx.write(ctx.store.insert_offline(message))
        ctx.metrics.offline_messages.labels(conv.queue or "-").inc()
        self.tasks[message.id] = message
        self._log.info(
            "conversation {conversation}: message {task} left",
            conversation=conv.id,
            task=message.id,
        )
        ctx.relay.system_line(conv, self._settings.thanks)
        ctx.relay.end(conv, self._reasons.pop(conv.id, "closed"))
        self.dispatch()

    def forget(self, conversation: str) -> None:
        """The conversation ended."""
        self._reasons.pop(conversation, None)

    # -- tasks for agents ---------------------------------------------------------------

    def dispatch(self) -> None:
        """Offer each unassigned message to one available agent, longest idle first."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            busy = {m.agent for m in self.tasks.values() if m.state == ASSIGNED}
            for message in sorted(self.tasks.values(), key=lambda m: (m.received, m.id)):
                if message.state != OPEN:
                    continue
                agent = self._free_agent(busy, message)
                if agent is None:
                    continue
                busy.add(agent.name)
                self._assign(message, agent)
        finally:
            self._dispatching = False

    def _free_agent(self, busy: set, message: OfflineMessage) -> LiveAgent | None:
        free = [
            a
            for a in self._ctx.core.local
            if a.has_room
            and not a.bot
            and a.name not in busy
            and a.name not in message.released_by
            and a.session is not None
            and not a.session.gone
        ]
        return min(free, key=lambda a: (a.idle_since, a.name), default=None)

    def _assign(self, message: OfflineMessage, agent: LiveAgent) -> None:
        ctx = self._ctx
        message.state, message.agent = ASSIGNED, agent.name
        ctx.write(ctx.store.update_offline(message.id, state=ASSIGNED, agent=agent.name))
        message.timer = ctx.core.clock.callLater(
            self._settings.task_timeout_s, self._lapsed, message, agent.name
        )
        card = ev.CustomerCard(
            alias=message.alias,
            protocol=message.protocol,
            client=ev.ClientInfo(),
            topic=None,
            identity={"name": message.name} if message.name else {},
        )
        ctx.relay.deliver(
            agent, ev.Task(message.id, card, message.queue, message.text, message.received)
        )

    def _lapsed(self, message: OfflineMessage, agent: str) -> None:
        message.timer = None
        if message.state == ASSIGNED and message.agent == agent:
            live = self._ctx.core.local.get(agent)
            if live is not None:
                self._ctx.relay.deliver(live, ev.Revoked(message.id, "timeout"))
            self._unassign(message, agent)

    def _unassign(self, message: OfflineMessage, agent: str) -> None:
        if message.timer is not None and message.timer.active():
            message.timer.cancel()
        message.timer = None
        message.released_by.add(agent)
        message.state, message.agent = OPEN, None
        self._ctx.write(self._ctx.store.update_offline(message.id, state=OPEN, agent=None))
        self.dispatch()

    def agent_gone(self, agent: LiveAgent) -> None:
        """A logged-out agent's task goes back to the others."""
        for message in list(self.tasks.values()):
            if message.state == ASSIGNED and message.agent == agent.name:
                self._unassign(message, agent.name)
                message.released_by.discard(agent.name)

    def _task(self, session: Any, task: str) -> OfflineMessage:
        message = self.tasks.get(task) if isinstance(task, str) else None
        if message is None or message.state != ASSIGNED or message.agent != session.name:
            raise NotAllowed(f"no such task: {str(task)[:64]}")
        return message

    def mine(self, session: Any) -> Deferred:
        """The task the agent has (the message left), if any."""
        return maybeDeferred(
            lambda: {"tasks": [m.to_json() for m in self.tasks.values() if m.agent == session.name]}
        )

    def release(self, session: Any, task: str) -> Deferred:
        """The agent lets the task go; it goes to another agent."""
        return maybeDeferred(self._release, session, task)

    def _release(self, session: Any, task: str) -> dict:
        message = self._task(session, task)
        self._unassign(message, session.name)
        return {"task": message.id, "state": message.state}

    def reply(self, session: Any, task: str, text: str) -> Deferred:
        """The agent answers the message: it reaches the customer when they return."""
        return maybeDeferred(self._reply, session, task, text)

    def _reply(self, session: Any, task: str, text: str) -> Deferred:
        message = self._task(session, task)
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("text must be a non-empty string")
        ctx = self._ctx
        if ctx.core.text_filter is not None:
            text = ctx.core.text_filter(text)
        now = ctx.now()
        if message.timer is not None and message.timer.active():
            message.timer.cancel()
        message.timer = None
        message.state, message.reply, message.replied = ANSWERED, text.strip(), now
        del self.tasks[message.id]
        ctx.metrics.offline_answers.inc()
        d = ctx.store.update_offline(
            message.id, state=ANSWERED, reply=message.reply, replied=now, agent=session.name
        )
        self._log.info("{agent} answered message {task}", agent=session.name, task=message.id)
        self.dispatch()
        if message.customer is not None:
            for conv in list(ctx.relay.conversations.values()):
                if conv.customer_id == message.customer and conv.state != LEAVING_MESSAGE:
                    self._deliver(conv, message, session.agent.alias)
                    break
        result = {"task": message.id, "state": message.state, "reply_path": bool(message.customer)}
        return d.addCallback(lambda _: result)

    # -- the customer returns ------------------------------------------------------------

    def opened(self, conv: Conversation, answers: list) -> None:
        """A recognised customer arrived: the answers waiting for them are delivered
        (``answers``: gateway.desk.sql.answers_for's)."""
        for message, alias in answers:
            if conv.state != "ended":
                self._deliver(conv, message, alias or "An agent")

    def _deliver(self, conv: Conversation, message: OfflineMessage, alias: str) -> None:
        ctx = self._ctx
        text = self._settings.reply.format(agent=alias, reply=message.reply)
        ctx.relay.system_line(conv, text)
        message.state, message.delivered = DELIVERED, ctx.now()
        ctx.write(
            ctx.store.update_offline(message.id, state=DELIVERED, delivered=message.delivered)
        )
        self._log.info(
            "the answer to message {task} reached its customer in {conversation}",
            task=message.id,
            conversation=conv.id,
        )
        if conv.state == CONNECTED and conv.agent is not None:
            ctx.relay.deliver(conv.agent, ev.Notice(f"The customer was shown an answer: {text}"))
