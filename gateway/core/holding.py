"""The core's side of resuming (see :mod:`gateway.core.resume`): hold, resume, restore.

A mixin of :class:`gateway.core.gateway.Gateway`, kept apart so that the core module stays
about live conversations. Every method runs in the reactor thread.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from gateway.core import events as ev
from gateway.core import resume
from gateway.core.conversation import CONNECTED, ENDED, INTERVIEW, OFFERED, QUEUED, Conversation
from gateway.core.interview import Interview
from gateway.core.resume import AbsentCustomer, Hold


class Holding:
    """Held conversations for :class:`gateway.core.gateway.Gateway` (needs its attributes)."""

    # -- a customer goes -------------------------------------------------------

    def _hold(self, conv: Conversation) -> bool:
        """Keep a dropped customer's conversation for the grace period; False: end it."""
        grace = self.config.resume_grace_s
        resumable = conv.resume_hash is not None or conv.resume_key is not None
        if grace <= 0 or self.shutting_down or not resumable:
            return False
        hold = self.holds.get(conv.id) or Hold(conv)
        hold.timer = self._clock.callLater(grace, self._hold_expired, conv.id, "customer")
        self.holds.add(hold)
        if conv.state == CONNECTED and conv.agent is not None:
            self._deliver(conv.agent, ev.Notice(resume.AWAY.format(alias=conv.alias)))
        self._log.info(
            "conversation {conversation} held for {grace}s: its customer dropped",
            conversation=conv.id,
            grace=grace,
        )
        return True

    def _tell_if_away(self, conv: Conversation) -> None:
        """An agent took a conversation whose customer is away: say so."""
        hold = self.holds.get(conv.id)
        if hold is not None and hold.timer is not None and conv.agent is not None:
            self._deliver(conv.agent, ev.Notice(resume.AWAY.format(alias=conv.alias)))

    def _hold_expired(self, conversation: str, reason: str) -> None:
        hold = self.holds.release(conversation)
        if hold is not None and hold.conversation.state != ENDED:
            self._end(hold.conversation, reason)

    def _keep_for_absent(self, session: Any, event: Any) -> bool:
        """An event for a customer who is away: kept for resume. False: not held."""
        conv = getattr(session, "conversation", None)
        hold = self.holds.get(conv.id) if conv is not None else None
        if hold is None or hold.timer is None:
            return False
        hold.keep(event)
        return True

    # -- a customer comes back -------------------------------------------------

    def _resume(
        self, party: Any, *, token: str | None = None, key: str | None = None
    ) -> Any | None:
        """The session of a held conversation taken over by ``party``, or None."""
        if not token and not key:
            return None
        hold = self.holds.find(token=token, key=key)
        if hold is None or hold.timer is None:
            return None
        from gateway.core.gateway import CustomerSession

        conv = hold.conversation
        if hold.timer.active():
            hold.timer.cancel()
        hold.timer = None
        if hold.agent is None:
            self.holds.release(conv.id)
        session = CustomerSession(self, party, self._ids.session())
        session.conversation = conv
        conv.customer = session
        self._customers.add(session)
        self._new_resume_token(conv, session)
        self._log.info(
            "conversation {conversation} resumed by session {session}",
            conversation=conv.id,
            session=session.id,
        )
        self._system_line(conv, resume.RESUMED)
        for event in hold.missed:
            if not isinstance(event, ev.Queued | ev.Connected):
                self._deliver(session, event)
        if conv.state == CONNECTED and conv.agent is not None:
            self._deliver(session, ev.Connected(conv.id, conv.agent.alias))
            self._deliver(conv.agent, ev.Notice(resume.BACK.format(alias=conv.alias)))
        elif conv.state == INTERVIEW and not hold.missed:
            # The question they had not answered yet.
            prompt = conv.interview.current()
            if prompt is not None:
                self._deliver(session, prompt)
        elif conv.waiting:
            queue = self.queues[conv.queue]
            position = queue.position(conv)
            if position:
                conv.last_sent_position = (position, queue.eta(position))
                self._deliver(session, ev.Queued(*conv.last_sent_position))
        return session

    def _new_resume_token(self, conv: Conversation, session: Any) -> None:
        # A token is good for one resume: a new one with every welcome.
        token = resume.new_token()
        conv.resume_hash = resume.token_hash(token)
        session.resume_token = token
        self._write(self._store.set_resume(conv.id, conv.resume_hash, conv.resume_key))

    # -- after a restart ---------------------------------------------------------

    def restore(self) -> Deferred:
        """Take back what the store says was open when the gateway last stopped.

        Waiting and connected conversations whose customer can resume are held for
        ``resume_grace_s`` (queued ones by their original arrival; connected ones wait
        for their agent too); the rest are ended as ``interrupted``. Fires with the
        number held.
        """
        return self._store.open_conversations().addCallback(self._restored)

    def _restored(self, rows: list) -> int:
        now = self._clock.seconds()
        grace = self.config.resume_grace_s
        held = 0
        for record, token_hash, key in rows:
            if record.id in self.conversations:
                continue
            resumable = token_hash is not None or key is not None
            if grace <= 0 or not resumable or record.state not in (QUEUED, OFFERED, CONNECTED):
                self._write(
                    self._store.update_conversation(
                        record.id, state=ENDED, ended=now, end_reason="interrupted"
                    )
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
            interview=Interview(self.config.fields, dict(record.identity)),
        )
        absent.conversation = conv
        conv.key = conv.resume_key = key
        conv.resume_hash = token_hash
        # The original arrival keeps the customer's place against later arrivals.
        conv.mark_arrival(record.started)
        self.conversations[conv.id] = conv
        self._aliases.add(conv.alias)
        hold = Hold(conv)
        hold.timer = self._clock.callLater(grace, self._hold_expired, conv.id, "interrupted")
        self.holds.add(hold)

        def history(messages: list) -> None:
            for m in messages:
                conv.remember(ev.HistoryEntry(m.sender, m.text, m.ts))

        self._write(self._store.transcript(conv.id).addCallback(history))
        if record.state == CONNECTED and record.agent:
            conv.state = CONNECTED
            # A queue since removed from the configuration: the default one.
            known = record.queue in self.queues
            conv.queue = record.queue if known else self.config.default_queue
            hold.agent = record.agent
            hold.agent_timer = self._clock.callLater(grace, self._agent_not_back, conv.id)
            agent = self._directory.get(record.agent)
            if agent is not None:
                self._reattach(agent)
        else:
            conv.state = INTERVIEW
            self.dispatcher.route(conv)
        self._log.info(
            "conversation {conversation} restored ({state}), held for {grace}s",
            conversation=conv.id,
            state=record.state,
            grace=grace,
        )

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
            self.dispatcher.requeue(conv)

    def _reattach(self, agent: Any) -> None:
        """An agent logged in: give it back the restored conversations that were its."""
        for hold in self.holds.waiting_for(agent.name):
            conv = hold.conversation
            if hold.agent_timer is not None and hold.agent_timer.active():
                hold.agent_timer.cancel()
            hold.agent, hold.agent_timer = None, None
            if hold.timer is None:
                self.holds.release(conv.id)
            conv.agent = agent
            agent.conversations.add(conv.id)
            agent.protocol_load[conv.protocol] = agent.protocol_load.get(conv.protocol, 0) + 1
            conv.connected_at = self._clock.seconds()
            if conv.queue in self.queues:
                self.queues[conv.queue].active += 1
            self._log.info(
                "{agent} got back {conversation}", agent=agent.name, conversation=conv.id
            )
            self._deliver(agent, ev.Connected(conv.id, conv.alias, tuple(conv.history)))
            self._deliver(conv.customer, ev.Connected(conv.id, agent.alias))
