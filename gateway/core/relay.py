"""The relay: live conversations, from the interview to the end, and every line in them.

A customer's line is stored once and delivered once; its ``ack`` waits for the
commit (JSON-IM: "stored and on its way"). The relay also ends conversations, for
whichever side or timer decides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway import logs
from gateway.core import events as ev
from gateway.core.agents import LiveAgent
from gateway.core.context import Core
from gateway.core.conversation import CONNECTED, ENDED, INTERVIEW, QUEUED, Conversation
from gateway.core.errors import BadRequest, GatewayError, InternalError, NotAllowed, Unavailable
from gateway.core.interfaces import IPartyLimits
from gateway.core.interview import Interview
from gateway.core.ports import IDesk, IDispatch, IHolding, IRelay
from gateway.core.sessions import CustomerSession, Done
from gateway.routing import translate
from gateway.store.errors import StoreBusy
from gateway.store.records import ConversationRecord, StoredMessage

TYPING_STATES = ("active", "paused")
ANSWER_TIMEOUT = "This conversation was closed because we did not hear from you."


def identity_of(verified: Mapping[str, str] | None) -> str | None:
    """The identity a returning customer is known by, from what its connection proved:
    an IM server's account (``xmpp:…``, ``irc:…``), else a site's signed ``id`` or
    ``email``."""
    verified = verified or {}
    if verified.get("account"):
        return verified["account"]
    for field in ("id", "email"):
        if verified.get(field):
            return f"site-{field}:{verified[field]}"
    return None


def _firing(d: Deferred) -> Done:
    """A :data:`Done` that fires ``d`` (the Deferred API over the plain one)."""

    def done(msg: str | None, error: Exception | None) -> None:
        if error is None:
            d.callback(msg)
        else:
            d.errback(error)

    return done


class _Line:
    """One line on its way to the store: what its sender is told when it is committed.

    The store may answer within ``append_then`` (a refusal, or a store that commits at
    once): a refusal is final at once (never delivered); a commit is held until
    :meth:`go`, so that the line is delivered before its sender hears of the commit.
    """

    __slots__ = ("_done", "_early", "_going", "_relay", "answer", "delivered", "entry", "refused")

    def __init__(self, relay: Relay, entry: StoredMessage, done: Done, answer: Any) -> None:
        self._relay = relay
        self.entry = entry
        self._done = done
        # The conversation whose interview this line answers, if it does.
        self.answer = answer
        self.delivered = False
        self.refused = False
        self._going = False
        self._early = False

    def stored(self, failure: Failure | None) -> None:
        """The store's answer."""
        if failure is not None:
            self.refused = not self._going
            self._failed(failure)
        elif self._going:
            self._committed()
        else:
            self._early = True

    def go(self) -> None:
        """The relay has done its part; a commit that came meanwhile is told now."""
        self._going = True
        if self._early:
            self._committed()

    def _committed(self) -> None:
        if self.answer is not None:
            try:
                self._relay._customer_said(None, self.answer, self.entry)
            except Exception:
                # As the Deferred chain did: the sender is told it failed.
                self._failed(Failure())
                return
        self._done(self.entry.id, None)

    def _failed(self, failure: Failure) -> None:
        try:
            self._relay._not_stored(failure, self.entry, self.delivered)
        except GatewayError as e:
            self._done(None, e)


@implementer(IRelay)
class Relay:
    """Live conversations and what is said in them."""

    _log = Logger(observer=logs.observer)

    def __init__(self, core: Core) -> None:
        self._core = core
        self._config = core.config
        self._clock = core.clock
        self._store = core.store
        self.conversations: dict[str, Conversation] = {}
        self.customers: set[CustomerSession] = set()
        self._aliases: set[str] = set()
        # The other collaborators, set by the gateway once all are made.
        self.dispatcher: IDispatch = None
        self.desk: IDesk = None
        self.holding: IHolding = None

    # -- a customer arrives -------------------------------------------------

    def open(
        self,
        party: Any,
        *,
        protocol: str,
        client: ev.ClientInfo,
        answers: Mapping[str, str],
        key: str | None,
        resume_key: str | None,
        opening: str | None = None,
        verified: Mapping[str, str] | None = None,
        address: str | None = None,
        customer_id: str | None = None,
    ) -> CustomerSession:
        """A new customer: a conversation opened, the interview started.

        ``verified``: details the connection proved (gateway.core.interview);
        ``address``: where the customer can be written to directly, for redirect hosting.
        """
        core = self._core
        session = CustomerSession(self, party, core.ids.session())
        self.customers.add(session)
        now = self._clock.seconds()
        alias = core.ids.alias(self._aliases)
        self._aliases.add(alias)
        conv = Conversation(
            id=core.ids.conversation(),
            customer=session,
            alias=alias,
            protocol=protocol,
            client=client,
            started=now,
            interview=Interview(self._config.fields, answers, verified),
            address=address,
        )
        conv.key = key or (f"email:{answers['email'].casefold()}" if answers.get("email") else None)
        session.conversation = conv
        self.conversations[conv.id] = conv
        core.write(
            self._store.open_conversation(
                ConversationRecord(
                    id=conv.id,
                    customer_alias=alias,
                    protocol=protocol,
                    client_name=client.name,
                    client_version=client.version,
                    started=now,
                    topic=conv.topic,
                    identity=dict(conv.answers),
                )
            )
        )
        self._log.info(
            "conversation {conversation} opened for {alias} ({protocol}, {client} {version})",
            conversation=conv.id,
            alias=alias,
            protocol=protocol,
            client=client.name,
            version=client.version,
        )
        conv.resume_key = resume_key or key
        events = core.events
        events.emit(
            "opened",
            conv.id,
            {"protocol": protocol, "client": client.name, "version": client.version},
        )
        for field, source in conv.interview.sources.items():
            events.emit("answered", conv.id, {"field": field, "source": source})
        conv.customer_id = identity_of(verified) or customer_id
        self.holding.new_resume_token(conv, session)
        core.hooks.opened(conv)
        if opening:
            self.opening_line(session, opening)
        # The greeting announces questions; skip it when hello answered them all.
        if self._config.greeting and not conv.interview.done:
            self.system_line(conv, self._config.greeting)
        self._next_question(conv, conv.interview.current())
        return session

    def open_session(self, party: Any, conv: Conversation) -> CustomerSession:
        """A returning customer's new session, carrying its held conversation."""
        session = CustomerSession(self, party, self._core.ids.session())
        session.conversation = conv
        conv.customer = session
        self.customers.add(session)
        return session

    def adopt(self, conv: Conversation) -> None:
        """A conversation restored from the store joins the live ones."""
        self.conversations[conv.id] = conv
        self._aliases.add(conv.alias)

    def forget(self, conv: Conversation) -> None:
        """A conversation moves to another node: it leaves this one, not ended."""
        self.cancel_timer(conv)
        self.conversations.pop(conv.id, None)
        self._aliases.discard(conv.alias)

    # -- the customer's side ----------------------------------------------------

    def _live_conversation(self, session: CustomerSession) -> Conversation:
        conv = session.conversation
        if conv is None or conv.state == ENDED:
            raise NotAllowed("the conversation has ended")
        return conv

    def customer_says(
        self, session: CustomerSession, text: str, markup: str | None = None
    ) -> Deferred[str]:
        """Store a customer line, then deliver it or take it as an interview answer.

        ``markup`` (rich_text) goes to the agent beside ``text``, its plain rendering,
        which alone is stored and answers the interview.
        """
        d: Deferred[str] = Deferred()
        self.customer_says_then(session, text, _firing(d), markup)
        return d

    def customer_says_then(
        self, session: CustomerSession, text: str, done: Done, markup: str | None = None
    ) -> None:
        """As :meth:`customer_says`, telling ``done(msg_id, None)`` after the commit, or
        ``done(None, error)``; no Deferred on the way."""
        try:
            conv = self._live_conversation(session)
        except GatewayError as e:
            done(None, e)
            return
        msg_id = self._core.ids.message()
        ts = self._clock.seconds()
        event = None
        if conv.state == CONNECTED:
            # Made once: asked of the agent's limits, then delivered.
            event = ev.Message(conv.id, ev.CUSTOMER, msg_id, text, ts, markup)
            refused = self._refused_by(conv.agent, event)
            if refused:
                done(None, BadRequest(f"not sent: {refused}"))
                return
        entry = StoredMessage(id=msg_id, conversation=conv.id, sender=ev.CUSTOMER, text=text, ts=ts)
        # An answer moves the interview on once it is stored, as before: a customer
        # told to send it again is still answering the same question.
        line = _Line(self, entry, done, conv if conv.state == INTERVIEW else None)
        self._append(entry, line)
        if line.refused:
            line.go()
            return
        self._core.events.message(conv.id, msg_id, ev.CUSTOMER, len(text), ts, text)
        if line.answer is not None:
            line.go()
            return
        # Delivered now, acknowledged after the commit: the ack is the durability
        # promise, the other side need not wait for the disk. The store keeps the
        # order of appends, so the transcript's order is the order delivered.
        self._customer_said(None, conv, entry, markup, event)
        line.delivered = conv.state == CONNECTED
        line.go()

    def opening_line(self, session: CustomerSession, text: str) -> None:
        """The line that brought the customer (XMPP, IRC): kept for the agent.

        During the interview it is stored and remembered without answering a
        question; otherwise it is said as any line.
        """
        conv = session.conversation
        if conv is None or conv.state == ENDED:
            return
        if conv.state != INTERVIEW:
            self._core.write(self.customer_says(session, text).addErrback(self._opening_lost, conv))
            return
        entry = StoredMessage(
            id=self._core.ids.message(),
            conversation=conv.id,
            sender=ev.CUSTOMER,
            text=text,
            ts=self._clock.seconds(),
        )
        conv.remember(ev.HistoryEntry(ev.CUSTOMER, text, entry.ts))
        self._core.metrics.count_message(conv.protocol, ev.CUSTOMER)
        self._core.write(self._store.append(entry))
        self._core.events.message(conv.id, entry.id, ev.CUSTOMER, len(text), entry.ts, text)

    def _opening_lost(self, failure: Failure, conv: Conversation) -> None:
        self._log.warn(
            "the opening line of {conversation} was not kept: {why}",
            conversation=conv.id,
            why=failure.getErrorMessage(),
        )

    def _customer_said(
        self,
        _: object,
        conv: Conversation,
        entry: StoredMessage,
        markup: str | None = None,
        event: ev.Message | None = None,
    ) -> None:
        conv.remember(ev.HistoryEntry(ev.CUSTOMER, entry.text, entry.ts))
        self._core.metrics.count_message(conv.protocol, ev.CUSTOMER)
        if conv.state == INTERVIEW:
            field = conv.interview.asking
            prompt = conv.interview.answer(entry.text)
            if field is not None and field in conv.answers:
                self._core.events.emit(
                    "answered", conv.id, {"field": field, "source": conv.interview.sources[field]}
                )
            self._next_question(conv, prompt)
        elif conv.state == CONNECTED:
            if event is None:
                event = ev.Message(conv.id, ev.CUSTOMER, entry.id, entry.text, entry.ts, markup)
            self.to_agent(conv, event)
            self._core.hooks.relayed(conv, event)
        elif not conv.waiting:
            self._core.hooks.customer_line(conv, entry)

    def customer_receipt(self, session: CustomerSession, msg: str, state: str) -> None:
        """The customer's client has received or shown the agent's message ``msg``."""
        self._receipt(self._live_conversation(session), msg, state, to_agent=True)

    def agent_receipt(self, session: Any, conversation: str, msg: str, state: str) -> None:
        """The agent's client has received or shown the customer's message ``msg``."""
        conv = self.agent_conversation(session.agent, conversation)
        self._receipt(conv, msg, state, to_agent=False)

    def _receipt(self, conv: Conversation, msg: str, state: str, *, to_agent: bool) -> None:
        """Tell the other side of a connected conversation what became of its message."""
        if state not in ev.RECEIPT_STATES:
            raise BadRequest(f"state must be one of {', '.join(ev.RECEIPT_STATES)}")
        if conv.state == CONNECTED:
            if to_agent:
                self.to_agent(conv, ev.Receipt(conv.id, msg, state))
            else:
                self.deliver(conv.customer, ev.Receipt(conv.id, msg, state))

    def customer_typing(self, session: CustomerSession, state: str) -> None:
        """Relay the customer's typing to the agent."""
        conv = self._live_conversation(session)
        if state not in TYPING_STATES:
            raise BadRequest(f"typing state must be one of {', '.join(TYPING_STATES)}")
        if conv.state == CONNECTED:
            self.to_agent(conv, ev.Typing(conv.id, state))

    def customer_identified(self, session: CustomerSession, client: ev.ClientInfo) -> None:
        """The customer's IM software became known after arrival: taken until an offer
        goes out (the agent's card then shows what the router knew)."""
        conv = session.conversation
        if conv is None or conv.state not in (INTERVIEW, QUEUED) or conv.client == client:
            return
        conv.client = client
        self._core.write(
            self._store.update_conversation(
                conv.id, client_name=client.name, client_version=client.version
            )
        )

    def customer_ends(self, session: CustomerSession) -> None:
        """The customer ends the conversation."""
        self.end(self._live_conversation(session), "customer")

    def customer_gone(
        self, session: CustomerSession, *, quit: bool = False, undelivered: tuple = ()
    ) -> None:
        """The customer's connection is gone: held for resuming, or ended (at once when
        the customer quit). ``undelivered`` events are kept for the resume first."""
        if session.gone:
            return
        session.gone = True
        self.customers.discard(session)
        conv = session.conversation
        if conv is None or conv.state == ENDED or conv.customer is not session:
            return
        if quit or not self.holding.hold(conv):
            self.end(conv, "customer")
            return
        for event in undelivered:
            self.holding.keep_for_absent(session, event)

    # -- the interview -----------------------------------------------------------

    def _next_question(self, conv: Conversation, prompt: ev.Prompt | None) -> None:
        if prompt is None:
            self.cancel_timer(conv)
            self.dispatcher.route(conv)
            return
        self.start_timer(conv, self._config.answer_timeout_s, self._answer_timed_out)
        self.store_system(conv, prompt.text)
        self.deliver(conv.customer, prompt)

    def _answer_timed_out(self, conv: Conversation) -> None:
        if conv.state == INTERVIEW:
            self.system_line(conv, ANSWER_TIMEOUT)
            self.end(conv, "timeout")

    # -- the agent's lines ----------------------------------------------------------

    def agent_conversation(self, agent: LiveAgent, conversation: str) -> Conversation:
        """The connected conversation ``agent`` is in, or NotAllowed."""
        conv = self.conversations.get(conversation)
        if conv is None or conv.agent is not agent or conv.state != CONNECTED:
            raise NotAllowed(f"not in conversation {conversation}")
        return conv

    def agent_says(
        self, session: Any, conversation: str, text: str, markup: str | None = None
    ) -> Deferred[str]:
        """Store an agent line and deliver it to the customer."""
        d: Deferred[str] = Deferred()
        self.agent_says_then(session, conversation, text, _firing(d), markup)
        return d

    def agent_says_then(
        self,
        session: Any,
        conversation: str,
        text: str,
        done: Done,
        markup: str | None = None,
    ) -> None:
        """As :meth:`agent_says`, telling ``done(msg_id, None)`` after the commit, or
        ``done(None, error)``; no Deferred on the way."""
        try:
            conv = self.agent_conversation(session.agent, conversation)
        except GatewayError as e:
            # A supervisor or colleague beside the agent: the desk's business.
            taken = self._core.hooks.says(session, conversation, text)
            if taken is None:
                done(None, e)
            else:
                taken.addCallbacks(lambda msg: done(msg, None), lambda f: done(None, f.value))
            return
        text_filter = self._core.text_filter
        if text_filter is not None:
            text = text_filter(text)
            markup = text_filter(markup) if markup is not None else None
        msg_id = self._core.ids.message()
        ts = self._clock.seconds()
        # Made once: asked of the customer's limits, then delivered.
        event = ev.Message(conv.id, ev.AGENT, msg_id, text, ts, markup)
        refused = self._refused_by(conv.customer, event)
        if refused:
            done(None, BadRequest(f"not sent: {refused}"))
            return
        entry = StoredMessage(
            id=msg_id, conversation=conv.id, sender=ev.AGENT, text=text, ts=ts, agent=session.name
        )
        line = _Line(self, entry, done, None)
        self._append(entry, line)
        if line.refused:
            line.go()
            return
        # As the customer's: delivered now, acknowledged after the commit.
        self._core.events.message(conv.id, msg_id, ev.AGENT, len(text), ts, text)
        conv.remember(ev.HistoryEntry(ev.AGENT, text, ts))
        self._core.metrics.count_message(session.agent.protocol, ev.AGENT)
        self.deliver(conv.customer, event)
        self._core.hooks.relayed(conv, event)
        line.delivered = True
        line.go()

    def agent_typing(self, session: Any, conversation: str, state: str) -> None:
        """Relay the agent's typing to the customer."""
        conv = self.agent_conversation(session.agent, conversation)
        if state not in TYPING_STATES:
            raise BadRequest(f"typing state must be one of {', '.join(TYPING_STATES)}")
        self.deliver(conv.customer, ev.Typing(conv.id, state))

    # -- the end -------------------------------------------------------------------

    def end(self, conv: Conversation, reason: str) -> None:
        """End a conversation in any state, telling whoever is still there."""
        if conv.state == ENDED or self._core.hooks.ending(conv, reason):
            return
        previous = conv.state
        conv.state = ENDED
        self.holding.release(conv.id)
        self.cancel_timer(conv)
        self.dispatcher.withdraw(conv)
        agent = conv.agent
        if agent is not None:
            # Told before its seat is free: a new offer never reaches it ahead of the end.
            self.deliver(agent, ev.Ended(conv.id, reason))
            self.desk.leave(conv, agent)
        self.deliver(conv.customer, ev.Ended(conv.id, reason))
        self._aliases.discard(conv.alias)
        del self.conversations[conv.id]
        self._core.events.emit(
            "ended",
            conv.id,
            {"reason": reason, "state": previous, "agent": None if agent is None else agent.name},
        )
        self._core.write(
            self._store.update_conversation(
                conv.id, state=ENDED, ended=self._clock.seconds(), end_reason=reason
            )
        )
        self._log.info(
            "conversation {conversation} ended ({reason}) while {state}",
            conversation=conv.id,
            reason=reason,
            state=previous,
        )
        self._core.hooks.ended(conv, reason)
        self.dispatcher.match()

    # -- plumbing -------------------------------------------------------------------

    def _refused_by(self, target: Any, event: ev.Message) -> str | None:
        """Why the recipient's wire cannot carry ``event`` (its limits), or None."""
        session = target.session if isinstance(target, LiveAgent) else target
        party = getattr(session, "party", None)
        if session is None or session.gone or not IPartyLimits.providedBy(party):
            return None
        return party.refuses(event)

    def to_agent(self, conv: Conversation, event: Any) -> None:
        """Deliver a conversation's event to its agent, converted for what the agent's
        software lacks (the translate fallback, gateway.routing.translate)."""
        if conv.translated:
            event = translate.convert(event, conv.translated)
            if event is None:
                return
        self.deliver(conv.agent, event)

    def deliver(self, target: Any, event: Any) -> None:
        """Hand an event to a customer session or a live agent, if still connected."""
        session = target.session if isinstance(target, LiveAgent) else target
        if session is None or session.gone:
            if session is not None and not isinstance(target, LiveAgent):
                self.holding.keep_for_absent(session, event)
            return
        self._core.delivery.deliver(session, event)

    def _append(self, entry: StoredMessage, line: _Line) -> None:
        try:
            self._store.append_then(entry, line.stored)
        except Exception:
            line.stored(Failure())

    def _not_stored(self, failure: Failure, entry: StoredMessage, delivered: bool) -> None:
        if failure.check(StoreBusy):
            self._log.warn(
                "message {msg} of {conversation} refused: {why}",
                msg=entry.id,
                conversation=entry.conversation,
                why=failure.getErrorMessage(),
            )
            raise Unavailable("the service is busy; please send it again")
        self._log.failure(
            "storing message {msg} of {conversation} failed",
            failure,
            msg=entry.id,
            conversation=entry.conversation,
        )
        if delivered:
            # Sending it again would show it twice: it is only missing from the record.
            raise InternalError("the message was delivered but could not be stored")
        raise InternalError("the message could not be stored; please send it again")

    def store_system(self, conv: Conversation, text: str) -> StoredMessage:
        """A system line in the transcript and the history (not sent)."""
        ts = self._clock.seconds()
        entry = StoredMessage(
            id=self._core.ids.message(), conversation=conv.id, sender=ev.SYSTEM, text=text, ts=ts
        )
        conv.remember(ev.HistoryEntry(ev.SYSTEM, text, ts))
        self._core.write(self._store.append(entry))
        self._core.events.message(conv.id, entry.id, ev.SYSTEM, len(text), ts, text)
        return entry

    def system_line(self, conv: Conversation, text: str) -> None:
        """Tell the customer something; it goes in the transcript too."""
        entry = self.store_system(conv, text)
        self.deliver(conv.customer, ev.Message(conv.id, ev.SYSTEM, entry.id, text, entry.ts))

    def start_timer(self, conv: Conversation, delay: float, action) -> None:
        """(Re)start the conversation's one timer."""
        self.cancel_timer(conv)
        conv.timer = self._clock.callLater(delay, action, conv)

    def cancel_timer(self, conv: Conversation) -> None:
        """Stop the conversation's timer."""
        if conv.timer is not None and conv.timer.active():
            conv.timer.cancel()
        conv.timer = None
