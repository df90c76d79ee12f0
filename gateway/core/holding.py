"""The holder: conversations kept for a customer (or agent) who may come back.

A dropped customer's conversation is held for ``resume_grace_s`` (see
:mod:`gateway.core.resume`); after a restart, the store's open conversations are held
for their customers and agents. Every method runs in the reactor thread.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from gateway import logs
from gateway.core import events as ev
from gateway.core import resume
from gateway.core.context import Core
from gateway.core.conversation import CONNECTED, ENDED, INTERVIEW, OFFERED, QUEUED, Conversation
from gateway.core.interview import Interview
from gateway.core.ports import IDesk, IDispatch, IHolding, IRelay
from gateway.core.resume import AbsentCustomer, Hold, Holds


@implementer(IHolding)
class Holder:
    """Held conversations, their resume and the restore after a restart."""

    _log = Logger(observer=logs.observer)

    def __init__(self, core: Core) -> None:
        self._core = core
        self._config = core.config
        self._clock = core.clock
        self.holds = Holds()
        self.relay: IRelay = None
        self.dispatcher: IDispatch = None
        self.desk: IDesk = None

    # -- a customer goes -------------------------------------------------------

    def hold(self, conv: Conversation) -> bool:
        """Keep a dropped customer's conversation for the grace period; False: end it."""
        grace = self._config.resume_grace_s
        resumable = conv.resume_hash is not None or conv.resume_key is not None
        if grace <= 0 or self._core.shutting_down or not resumable:
            return False
        hold = self.holds.get(conv.id) or Hold(conv)
        hold.timer = self._clock.callLater(grace, self._hold_expired, conv.id, "customer")
        self.holds.add(hold)
        if conv.state == CONNECTED and conv.agent is not None:
            self.relay.deliver(conv.agent, ev.Notice(resume.AWAY.format(alias=conv.alias)))
        elif conv.waiting:
            # No agent is offered a customer who is not there.
            self.dispatcher.set_aside(conv)
        self._log.info(
            "conversation {conversation} held for {grace}s: its customer dropped",
            conversation=conv.id,
            grace=grace,
        )
        return True

    def release(self, conversation: str) -> None:
        """Stop holding a conversation (it ended)."""
        self.holds.release(conversation)
        cluster = self._core.cluster
        conv = self.relay.conversations.get(conversation)
        if cluster is not None and conv is not None:
            cluster.members.unindexed(conv)

    def tell_if_away(self, conv: Conversation) -> None:
        """An agent took a conversation whose customer is away: say so."""
        hold = self.holds.get(conv.id)
        if hold is not None and hold.timer is not None and conv.agent is not None:
            self.relay.deliver(conv.agent, ev.Notice(resume.AWAY.format(alias=conv.alias)))

    def _hold_expired(self, conversation: str, reason: str) -> None:
        hold = self.holds.release(conversation)
        if hold is not None and hold.conversation.state != ENDED:
            self.relay.end(hold.conversation, reason)

    def keep_for_absent(self, session: Any, event: Any) -> bool:
        """An event for a customer who is away: kept for resume. False: not held."""
        conv = getattr(session, "conversation", None)
        hold = self.holds.get(conv.id) if conv is not None else None
        if hold is None or hold.timer is None:
            return False
        hold.keep(event)
        return True

    # -- a customer comes back -------------------------------------------------

    def resume(self, party: Any, *, token: str | None = None, key: str | None = None) -> Any | None:
        """The session of a held conversation taken over by ``party``, or None."""
        if not token and not key:
            return None
        hold = self.holds.find(token=token, key=key)
        if hold is None or hold.timer is None:
            return None
        conv = hold.conversation
        if hold.timer.active():
            hold.timer.cancel()
        hold.timer = None
        if hold.agent is None:
            self.holds.release(conv.id)
        relay = self.relay
        session = relay.open_session(party, conv)
        self.new_resume_token(conv, session)
        self._log.info(
            "conversation {conversation} resumed by session {session}",
            conversation=conv.id,
            session=session.id,
        )
        relay.system_line(conv, resume.RESUMED)
        connected = conv.state == CONNECTED and conv.agent is not None
        if connected:
            # Who they talk with first, so that what the agent wrote meanwhile comes
            # from the agent's alias, after the reconnection notice.
            relay.deliver(session, ev.Connected(conv.id, conv.agent.alias))
        for event in hold.missed:
            if not isinstance(event, ev.Queued | ev.Connected):
                relay.deliver(session, event)
        if connected:
            relay.deliver(conv.agent, ev.Notice(resume.BACK.format(alias=conv.alias)))
        elif conv.state == INTERVIEW and not hold.missed:
            # The question they had not answered yet.
            prompt = conv.interview.current()
            if prompt is not None:
                relay.deliver(session, prompt)
        elif conv.waiting:
            queued = self.dispatcher.queued(conv)
            if queued is not None:
                relay.deliver(session, queued)
            if conv.task is not None:
                # Offered again now that the customer is there.
                self.dispatcher.requeue(conv)
        return session

    def new_resume_token(self, conv: Conversation, session: Any) -> None:
        """A token is good for one resume: a new one with every welcome."""
        token = resume.new_token()
        conv.resume_hash = resume.token_hash(token)
        session.resume_token = token
        self._core.write(self._core.store.set_resume(conv.id, conv.resume_hash, conv.resume_key))
        if self._core.cluster is not None:
            # Where the customer finds it again, from any node.
            self._core.cluster.members.indexed(conv)

    # -- after a restart ---------------------------------------------------------

    def restore(self) -> Deferred:
        """Take back what the store says was open when the gateway last stopped.

        Waiting and connected conversations whose customer can resume are held for
        ``resume_grace_s`` (queued ones by their original arrival; connected ones wait
        for their agent too); the rest are ended as ``interrupted``. Fires with the
        number held.
        """
        return self._core.store.open_conversations().addCallback(self._restored)

    def adopt(self, rows: list) -> int:
        """Take conversations from the store (a lost or departing node's), held for their
        customers and agents as after a restart; the number held."""
        return self._restored(rows)

    def _restored(self, rows: list) -> int:
        now = self._clock.seconds()
        grace = self._config.resume_grace_s
        held = 0
        for record, token_hash, key in rows:
            if record.id in self.relay.conversations:
                continue
            resumable = token_hash is not None or key is not None
            if grace <= 0 or not resumable or record.state not in (QUEUED, OFFERED, CONNECTED):
                self._core.write(
                    self._core.store.update_conversation(
                        record.id, state=ENDED, ended=now, end_reason="interrupted"
                    )
                )
                self._core.events.emit(
                    "ended",
                    record.id,
                    {"reason": "interrupted", "state": record.state, "agent": record.agent},
                )
                self._log.info(
                    "conversation {conversation} interrupted by the restart",
                    conversation=record.id,
                )
                continue
            self._restore_one(record, token_hash, key, grace)
            held += 1
        return held

    def _restore_one(self, record: Any, token_hash: str | None, key: str | None, grace: float):
        absent = AbsentCustomer()
        conv = Conversation(
            id=record.id,
            customer=absent,
            alias=record.customer_alias,
            protocol=record.protocol,
            client=ev.ClientInfo(record.client_name, record.client_version),
            started=record.started,
            interview=Interview(self._config.fields, dict(record.identity)),
        )
        absent.conversation = conv
        self._core.events.emit(
            "restored",
            conv.id,
            {"state": record.state, "queue": record.queue, "agent": record.agent},
        )
        conv.key = conv.resume_key = key
        conv.resume_hash = token_hash
        # The original arrival keeps the customer's place against later arrivals.
        conv.mark_arrival(record.started)
        self.relay.adopt(conv)
        hold = Hold(conv)
        hold.timer = self._clock.callLater(grace, self._hold_expired, conv.id, "interrupted")
        self.holds.add(hold)

        def history(messages: list) -> None:
            for m in messages:
                conv.remember(ev.HistoryEntry(m.sender, m.text, m.ts))

        self._core.write(self._core.store.transcript(conv.id).addCallback(history))
        if record.state == CONNECTED and record.agent:
            conv.state = CONNECTED
            # A queue since removed from the configuration: the default one.
            known = record.queue in self._core.queues
            conv.queue = record.queue if known else self._config.default_queue
            hold.agent = record.agent
            hold.agent_timer = self._clock.callLater(grace, self._agent_not_back, conv.id)
            agent = self._core.local.get(record.agent)
            if agent is None and self._core.cluster is not None:
                agent = self._core.cluster.proxy_named(record.agent)
            if agent is not None:
                self.desk.reattach(agent)
        else:
            conv.state = INTERVIEW
            self.dispatcher.route(conv)
        self._log.info(
            "conversation {conversation} restored ({state}), held for {grace}s",
            conversation=conv.id,
            state=record.state,
            grace=grace,
        )

    def wait_for_agent(self, conv: Conversation, agent: str) -> None:
        """A connected conversation's agent was cut off with its node: held for
        ``resume_grace_s`` for that agent to log in again (anywhere), then requeued."""
        grace = self._config.resume_grace_s
        hold = self.holds.get(conv.id) or Hold(conv)
        hold.agent = agent
        hold.agent_timer = self._clock.callLater(grace, self._agent_not_back, conv.id)
        self.holds.add(hold)

    def _agent_not_back(self, conversation: str) -> None:
        hold = self.holds.get(conversation)
        if hold is None or hold.agent is None:
            return
        hold.agent = None
        hold.agent_timer = None
        if hold.timer is None:
            self.holds.release(conversation)
        conv = hold.conversation
        if conv.state == CONNECTED and conv.agent is None:
            self._log.info(
                "conversation {conversation}: its agent did not come back; requeued",
                conversation=conv.id,
            )
            conv.state = QUEUED
            self.dispatcher.requeue(conv, reason="agent_not_back")

    def reclaim(self, agent: str) -> list[Conversation]:
        """The restored conversations that waited for ``agent``, who is back."""
        conversations = []
        for hold in self.holds.waiting_for(agent):
            if hold.agent_timer is not None and hold.agent_timer.active():
                hold.agent_timer.cancel()
            hold.agent, hold.agent_timer = None, None
            if hold.timer is None:
                self.holds.release(hold.conversation.id)
            conversations.append(hold.conversation)
        return conversations
