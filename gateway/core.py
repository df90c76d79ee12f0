"""The gateway core: sessions, conversations, queues and offers, with no wire format.

Adapters call :class:`Gateway` when a party arrives and then act through the
session object they get back; the core answers through :class:`IParty`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway import __version__ as gateway_version
from gateway import agents as agent_states
from gateway import events as ev
from gateway import logs
from gateway.agents import AgentDirectory, AgentState
from gateway.config import Config
from gateway.conversation import (
    CONNECTED,
    ENDED,
    INTERVIEW,
    OFFERED,
    QUEUED,
    Conversation,
    PendingOffer,
    Queue,
)
from gateway.errors import (
    AuthFailed,
    BadRequest,
    GatewayError,
    InternalError,
    NotAllowed,
    Unavailable,
)
from gateway.ids import IdFactory
from gateway.interfaces import IRouter, IStore
from gateway.interview import Interview
from gateway.records import AgentRecord, ConversationRecord, StoredMessage
from gateway.routing import Decision, RoutingRequest

TYPING_STATES = ("active", "paused")

AGENT_DROPPED = "Your agent was disconnected. We are connecting you with another agent."
TRANSFERRED = "You are being transferred to another agent. Please stay with us."
WAIT_TIMEOUT = "We are sorry, no agent could take your conversation in time."
NO_AGENTS = "We are sorry, no agents are available right now. Please try again later."
QUEUE_FULL = "We are sorry, too many customers are waiting. Please try again later."
ANSWER_TIMEOUT = "This conversation was closed because we did not hear from you."
SHUTDOWN = "The service is restarting. Please reconnect in a moment."

VerifyPassword = Callable[[str, str | None], Deferred]


class CustomerSession:
    """One customer's connection and the conversation it carries."""

    _log = Logger(observer=logs.observer)

    def __init__(self, gateway: Gateway, party: Any, session_id: str) -> None:
        self._gateway = gateway
        self.party = party
        self.id = session_id
        self.conversation: Conversation | None = None
        self.gone = False

    def say(self, text: str) -> Deferred[str]:
        """Store a customer line; fires with its message id once it is committed."""
        return self._gateway._customer_says(self, text)

    def typing(self, state: str) -> None:
        """Relay a typing notification to the agent, if one is connected."""
        self._gateway._customer_typing(self, state)

    def identify(self, client: ev.ClientInfo) -> None:
        """The customer's IM software became known (XEP-0092, CTCP VERSION) after arrival."""
        self._gateway._customer_identified(self, client)

    def end(self) -> None:
        """The customer ends the conversation."""
        self._gateway._customer_ends(self)

    def disconnected(self) -> None:
        """The customer's connection is gone."""
        self._gateway._customer_gone(self)


class AgentSession:
    """One logged-in agent's connection."""

    def __init__(self, gateway: Gateway, party: Any, session_id: str, state: AgentState):
        self._gateway = gateway
        self.party = party
        self.id = session_id
        self.state = state
        self.gone = False

    @property
    def name(self) -> str:
        """The agent's account name (never shown to customers)."""
        return self.state.name

    def set_presence(self, status: str) -> None:
        """available, away or offline; only available agents get offers."""
        self._gateway._agent_presence(self, status)

    def accept(self, offer: str) -> None:
        """Take an offered conversation."""
        self._gateway._agent_accepts(self, offer)

    def reject(self, offer: str) -> None:
        """Decline an offered conversation; it is not offered to this agent again."""
        self._gateway._agent_rejects(self, offer)

    def say(self, conversation: str, text: str) -> Deferred[str]:
        """Store an agent line; fires with its message id once it is committed."""
        return self._gateway._agent_says(self, conversation, text)

    def typing(self, conversation: str, state: str) -> None:
        """Relay a typing notification to the customer."""
        self._gateway._agent_typing(self, conversation, state)

    def transfer(self, conversation: str, *, queue: str | None = None, agent: str | None = None):
        """Hand the conversation to a queue or a named colleague."""
        self._gateway._agent_transfers(self, conversation, queue=queue, agent=agent)

    def end(self, conversation: str) -> None:
        """The agent ends a conversation."""
        self._gateway._agent_ends(self, conversation)

    def disconnected(self) -> None:
        """The agent's connection is gone: its conversations are requeued."""
        self._gateway._agent_gone(self)


class Gateway:
    """Carries customers from the interview through a queue to an agent and back."""

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        config: Config,
        *,
        store: IStore,
        router: IRouter,
        directory: AgentDirectory,
        clock: IReactorTime,
        verify_password: VerifyPassword,
        ids: IdFactory | None = None,
    ) -> None:
        self.config = config
        self._store = store
        self._router = router
        self._directory = directory
        self._clock = clock
        self._verify = verify_password
        self._ids = ids or IdFactory()
        self.queues = {name: Queue(q) for name, q in config.queues.items()}
        self.conversations: dict[str, Conversation] = {}
        self._aliases: set[str] = set()
        self._offers: dict[str, PendingOffer] = {}
        self._customers: set[CustomerSession] = set()
        self._dispatching = False
        self._dispatch_again = False
        self.shutting_down = False

    # -- arrivals ---------------------------------------------------------

    def customer_arrived(
        self,
        party: Any,
        *,
        protocol: str,
        client: ev.ClientInfo,
        answers: Mapping[str, str],
        features: frozenset[str] = frozenset(),
    ) -> CustomerSession:
        """A customer connected: open a conversation and start the interview."""
        if self.shutting_down:
            raise Unavailable("the service is shutting down")
        session = CustomerSession(self, party, self._ids.session())
        self._customers.add(session)
        now = self._clock.seconds()
        alias = self._ids.alias(self._aliases)
        self._aliases.add(alias)
        conv = Conversation(
            id=self._ids.conversation(),
            customer=session,
            alias=alias,
            protocol=protocol,
            client=client,
            started=now,
            interview=Interview(self.config.fields, answers),
        )
        session.conversation = conv
        self.conversations[conv.id] = conv
        self._write(
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
        # The greeting announces questions; skip it when hello answered them all.
        if self.config.greeting and not conv.interview.done:
            self._system_line(conv, self.config.greeting)
        self._next_question(conv, conv.interview.current())
        return session

    def agent_login(
        self,
        party: Any,
        *,
        protocol: str,
        name: str,
        password: str,
        client: ev.ClientInfo,
        features: frozenset[str] = frozenset(),
    ) -> Deferred[AgentSession]:
        """Authenticate an agent; fires with its session or fails with AuthFailed."""
        if self.shutting_down:
            return fail(Unavailable("the service is shutting down"))
        d = self._store.get_agent(name)

        def verify(record):
            stored = record.password_hash if record is not None else None
            return self._verify(password, stored).addCallback(lambda ok: (ok, record))

        def login(result):
            ok, record = result
            if not ok or record is None:
                self._log.info("agent authentication failed for {agent}", agent=name)
                raise AuthFailed("authentication failed")
            return self._agent_logged_in(party, record, protocol, client, features)

        return d.addCallback(verify).addCallback(login)

    def agent_attach(
        self,
        party: Any,
        *,
        protocol: str,
        address: str,
        client: ev.ClientInfo,
        features: frozenset[str] = frozenset(),
    ) -> Deferred[AgentSession]:
        """Log in an agent that an attached IM server has authenticated already.

        ``address`` is how the agent is provisioned (``xmpp:anna@corp.example``);
        fails with AuthFailed when it names no agent.
        """
        if self.shutting_down:
            return fail(Unavailable("the service is shutting down"))

        def found(record):
            if record is None:
                self._log.info("{address} is not an agent", address=address)
                raise AuthFailed(f"{address} is not an agent")
            return self._agent_logged_in(party, record, protocol, client, features)

        return self._store.find_agent(address).addCallback(found)

    def agent_join(
        self,
        party: Any,
        record: AgentRecord,
        *,
        protocol: str = "internal",
        client: ev.ClientInfo | None = None,
    ) -> AgentSession:
        """Log in an agent that runs inside the gateway (a bot), trusted as it is."""
        if self.shutting_down:
            raise Unavailable("the service is shutting down")
        return self._agent_logged_in(
            party, record, protocol, client or ev.ClientInfo("imgateway", gateway_version)
        )

    def _agent_logged_in(
        self, party, record, protocol, client, features=frozenset()
    ) -> AgentSession:
        old = self._directory.get(record.name)
        if old is not None:
            # The newest login wins, as with an XMPP resource conflict.
            old.session.party.close("logged in from another connection")
            self._agent_gone(old.session)
        state = AgentState(
            name=record.name,
            alias=record.display_name,
            capacity=record.capacity,
            session=None,
            protocol=protocol,
            client=client,
            skills=dict(record.skills),
            idle_since=self._clock.seconds(),
            location=record.location,
            bot=record.bot,
            features=frozenset(features),
        )
        session = AgentSession(self, party, self._ids.session(), state)
        state.session = session
        self._directory.add(state)
        self._log.info(
            "agent {agent} logged in ({protocol}, {client} {version})",
            agent=record.name,
            protocol=protocol,
            client=client.name,
            version=client.version,
        )
        return session

    # -- the customer's side ----------------------------------------------

    def _live_conversation(self, session: CustomerSession) -> Conversation:
        conv = session.conversation
        if conv is None or conv.state == ENDED:
            raise NotAllowed("the conversation has ended")
        return conv

    def _customer_says(self, session: CustomerSession, text: str) -> Deferred[str]:
        try:
            conv = self._live_conversation(session)
        except GatewayError as e:
            return fail(e)
        msg_id = self._ids.message()
        entry = StoredMessage(
            id=msg_id, conversation=conv.id, sender=ev.CUSTOMER, text=text, ts=self._clock.seconds()
        )

        def stored(_):
            conv.remember(ev.HistoryEntry(ev.CUSTOMER, text, entry.ts))
            if conv.state == INTERVIEW:
                self._interview_answer(conv, text)
            elif conv.state == CONNECTED:
                self._deliver(conv.agent, ev.Message(conv.id, ev.CUSTOMER, msg_id, text, entry.ts))
            return msg_id

        return self._append(entry).addCallback(stored)

    def _customer_typing(self, session: CustomerSession, state: str) -> None:
        conv = self._live_conversation(session)
        if state not in TYPING_STATES:
            raise BadRequest(f"typing state must be one of {', '.join(TYPING_STATES)}")
        if conv.state == CONNECTED:
            self._deliver(conv.agent, ev.Typing(conv.id, state))

    def _customer_identified(self, session: CustomerSession, client: ev.ClientInfo) -> None:
        conv = session.conversation
        if conv is None or conv.state == ENDED or conv.client == client:
            return
        conv.client = client
        self._write(
            self._store.update_conversation(
                conv.id, client_name=client.name, client_version=client.version
            )
        )

    def _customer_ends(self, session: CustomerSession) -> None:
        conv = self._live_conversation(session)
        self._end(conv, "customer")

    def _customer_gone(self, session: CustomerSession) -> None:
        session.gone = True
        self._customers.discard(session)
        conv = session.conversation
        if conv is not None and conv.state != ENDED:
            self._end(conv, "customer")

    # -- the interview ----------------------------------------------------

    def _next_question(self, conv: Conversation, prompt: ev.Prompt | None) -> None:
        if prompt is None:
            self._enqueue(conv, self.config.queue_for_topic(conv.topic))
            return
        self._restart_timer(conv, self.config.answer_timeout_s, self._answer_timed_out)
        self._store_system(conv, prompt.text)
        self._deliver(conv.customer, prompt)

    def _interview_answer(self, conv: Conversation, text: str) -> None:
        self._next_question(conv, conv.interview.answer(text))

    def _answer_timed_out(self, conv: Conversation) -> None:
        if conv.state == INTERVIEW:
            self._system_line(conv, ANSWER_TIMEOUT)
            self._end(conv, "timeout")

    # -- queues and offers ------------------------------------------------

    def _enqueue(self, conv: Conversation, queue_name: str) -> None:
        queue = self.queues[queue_name]
        if conv.queue is None or conv.queue != queue_name:
            self._write(
                self._store.update_conversation(
                    conv.id,
                    state=QUEUED,
                    queue=queue_name,
                    topic=conv.topic,
                    identity=dict(conv.answers),
                    agent=None,
                )
            )
        else:
            self._write(self._store.update_conversation(conv.id, state=QUEUED, agent=None))
        conv.queue = queue_name
        if len(queue) >= queue.config.max_waiting:
            self._system_line(conv, QUEUE_FULL)
            self._end(conv, "no_agents")
            return
        if self.config.when_no_agents == "end" and not len(self._directory):
            self._system_line(conv, NO_AGENTS)
            self._end(conv, "no_agents")
            return
        conv.state = QUEUED
        conv.agent = None
        conv.mark_arrival(self._clock.seconds())
        queue.add(conv)
        conv.position_at_entry = self._position(queue, conv)
        self._restart_timer(conv, queue.config.max_wait_s, self._wait_timed_out)
        self._log.info(
            "conversation {conversation} queued in {queue}", conversation=conv.id, queue=queue_name
        )
        self._dispatch()

    def _wait_timed_out(self, conv: Conversation) -> None:
        if conv.waiting:
            self._system_line(conv, WAIT_TIMEOUT)
            self._end(conv, "timeout")

    def _dispatch(self) -> None:
        """Offer waiting conversations to agents with room, first in line first."""
        if self._dispatching:
            self._dispatch_again = True
            return
        self._dispatching = True
        try:
            self._dispatch_again = True
            while self._dispatch_again:
                self._dispatch_again = False
                if any(a.has_room for a in self._directory.candidates()):
                    for queue in self.queues.values():
                        for conv in queue.in_order():
                            if conv.state == QUEUED and not conv.routing:
                                self._route(conv)
                self._send_positions()
        finally:
            self._dispatching = False

    def _route(self, conv: Conversation, lapsed_too: bool = True) -> None:
        exclude = conv.declined | conv.lapsed if lapsed_too else set(conv.declined)
        request = RoutingRequest(
            conversation=conv.id,
            queue=conv.queue,
            protocol=conv.protocol,
            client=conv.client,
            topic=conv.topic,
            identity=dict(conv.answers),
            exclude=frozenset(exclude),
            agent=conv.target_agent,
        )
        conv.routing = True
        d = maybeDeferred(self._router.route, request)
        d.addCallback(self._routed, conv, lapsed_too)
        d.addErrback(self._route_failed, conv)

    def _routed(self, decision: Decision, conv: Conversation, lapsed_too: bool) -> None:
        conv.routing = False
        if conv.state != QUEUED:
            return
        if decision.agent is None:
            if lapsed_too and conv.lapsed:
                # Nobody else is free: ring the agents who did not answer again.
                self._route(conv, lapsed_too=False)
            return
        agent = self._directory.get(decision.agent)
        if agent is None or not agent.has_room:
            self._log.debug(
                "router chose {agent} for {conversation}, who has no room now",
                agent=decision.agent,
                conversation=conv.id,
            )
            return
        self._offer(conv, agent, decision)

    def _route_failed(self, failure: Failure, conv: Conversation) -> None:
        conv.routing = False
        self._log.failure("routing {conversation} failed", failure, conversation=conv.id)

    def _offer(self, conv: Conversation, agent: AgentState, decision: Decision) -> None:
        timeout = self.config.offer_timeout_s
        offer = PendingOffer(id=self._ids.offer(), conversation=conv, agent=agent.name)
        offer.timer = self._clock.callLater(timeout, self._offer_lapsed, offer)
        self._offers[offer.id] = offer
        agent.offers.add(offer.id)
        conv.offer = offer
        conv.state = OFFERED
        self._log.info(
            "offered {conversation} to {agent} ({source}: {reason})",
            conversation=conv.id,
            agent=agent.name,
            source=decision.source,
            reason=decision.reason,
        )
        card = ev.CustomerCard(
            alias=conv.alias,
            protocol=conv.protocol,
            client=conv.client,
            topic=conv.topic,
            identity={k: v for k, v in conv.answers.items() if k != "topic"},
        )
        self._deliver(agent, ev.Offer(offer.id, conv.id, round(timeout), card))

    def _take_offer(self, offer: PendingOffer) -> None:
        """Forget an offer: the agent's room and the conversation's slot are freed."""
        self._offers.pop(offer.id, None)
        if offer.timer is not None and offer.timer.active():
            offer.timer.cancel()
        agent = self._directory.get(offer.agent)
        if agent is not None:
            agent.offers.discard(offer.id)
        if offer.conversation.offer is offer:
            offer.conversation.offer = None

    def _pending_offer(self, session: AgentSession, offer_id: str) -> PendingOffer:
        offer = self._offers.get(offer_id)
        if offer is None or offer.agent != session.name:
            raise NotAllowed(f"no such offer: {offer_id}")
        return offer

    def _offer_lapsed(self, offer: PendingOffer) -> None:
        offer.timer = None
        conv = offer.conversation
        self._take_offer(offer)
        conv.lapsed.add(offer.agent)
        self._revoke(offer, "timeout")
        if conv.target_agent == offer.agent:
            conv.target_agent = None
        conv.state = QUEUED
        self._log.info(
            "offer of {conversation} to {agent} timed out", conversation=conv.id, agent=offer.agent
        )
        self._dispatch()

    def _revoke(self, offer: PendingOffer, reason: str) -> None:
        agent = self._directory.get(offer.agent)
        if agent is not None:
            self._deliver(agent, ev.Revoked(offer.id, reason))

    def _agent_accepts(self, session: AgentSession, offer_id: str) -> None:
        offer = self._pending_offer(session, offer_id)
        conv = offer.conversation
        self._take_offer(offer)
        agent = session.state
        queue = self.queues[conv.queue]
        waited = self._clock.seconds() - conv.arrival[0]
        queue.observe_wait(waited, conv.position_at_entry)
        queue.remove(conv)
        self._cancel_timer(conv)
        conv.state = CONNECTED
        conv.agent = agent
        conv.target_agent = None
        conv.last_sent_position = None
        agent.conversations.add(conv.id)
        self._write(self._store.update_conversation(conv.id, state=CONNECTED, agent=agent.name))
        self._log.info(
            "{agent} accepted {conversation} after {waited:.1f}s",
            agent=agent.name,
            conversation=conv.id,
            waited=waited,
        )
        self._deliver(conv.customer, ev.Connected(conv.id, agent.alias))
        self._deliver(agent, ev.Connected(conv.id, conv.alias, tuple(conv.history)))
        self._dispatch()

    def _agent_rejects(self, session: AgentSession, offer_id: str) -> None:
        offer = self._pending_offer(session, offer_id)
        conv = offer.conversation
        self._take_offer(offer)
        conv.declined.add(session.name)
        if conv.target_agent == session.name:
            conv.target_agent = None
        conv.state = QUEUED
        self._log.info("{agent} rejected {conversation}", agent=session.name, conversation=conv.id)
        self._dispatch()

    def _position(self, queue: Queue, conv: Conversation) -> int:
        for i, waiting in enumerate(queue.in_order(), 1):
            if waiting is conv:
                return i
        return 0

    def _send_positions(self) -> None:
        for queue in self.queues.values():
            for position, conv in enumerate(queue.in_order(), 1):
                current = (position, queue.eta(position))
                if conv.last_sent_position != current:
                    conv.last_sent_position = current
                    self._deliver(conv.customer, ev.Queued(*current))

    # -- the agent's side -------------------------------------------------

    def _agent_conversation(self, session: AgentSession, conversation: str) -> Conversation:
        conv = self.conversations.get(conversation)
        if conv is None or conv.agent is not session.state or conv.state != CONNECTED:
            raise NotAllowed(f"not in conversation {conversation}")
        return conv

    def _agent_presence(self, session: AgentSession, status: str) -> None:
        if status not in agent_states.STATUSES:
            raise BadRequest(f"status must be one of {', '.join(agent_states.STATUSES)}")
        agent = session.state
        if agent.status == status:
            return
        agent.status = status
        self._log.info("agent {agent} is {status}", agent=agent.name, status=status)
        if status == agent_states.AVAILABLE:
            self._dispatch()

    def _agent_says(self, session: AgentSession, conversation: str, text: str) -> Deferred[str]:
        try:
            conv = self._agent_conversation(session, conversation)
        except GatewayError as e:
            return fail(e)
        msg_id = self._ids.message()
        entry = StoredMessage(
            id=msg_id,
            conversation=conv.id,
            sender=ev.AGENT,
            text=text,
            ts=self._clock.seconds(),
            agent=session.name,
        )

        def stored(_):
            conv.remember(ev.HistoryEntry(ev.AGENT, text, entry.ts))
            if conv.state != ENDED:
                self._deliver(conv.customer, ev.Message(conv.id, ev.AGENT, msg_id, text, entry.ts))
            return msg_id

        return self._append(entry).addCallback(stored)

    def _agent_typing(self, session: AgentSession, conversation: str, state: str) -> None:
        conv = self._agent_conversation(session, conversation)
        if state not in TYPING_STATES:
            raise BadRequest(f"typing state must be one of {', '.join(TYPING_STATES)}")
        self._deliver(conv.customer, ev.Typing(conv.id, state))

    def _agent_ends(self, session: AgentSession, conversation: str) -> None:
        conv = self._agent_conversation(session, conversation)
        self._end(conv, "agent")

    def _agent_transfers(
        self, session: AgentSession, conversation: str, *, queue: str | None, agent: str | None
    ) -> None:
        conv = self._agent_conversation(session, conversation)
        if (queue is None) == (agent is None):
            raise BadRequest("transfer needs exactly one of a queue or an agent")
        if queue is not None and queue not in self.queues:
            raise Unavailable(f"no such queue: {queue}")
        if agent is not None:
            if agent == session.name:
                raise BadRequest("cannot transfer a conversation to yourself")
            target = self._directory.get(agent)
            if target is None or not target.has_room:
                raise Unavailable(f"agent {agent} is not available")
        self._log.info(
            "{agent} transfers {conversation} to {target}",
            agent=session.name,
            conversation=conv.id,
            target=queue or agent,
        )
        self._leave(conv, session.state)
        self._deliver(session.state, ev.Ended(conv.id, "agent"))
        conv.declined.add(session.name)
        conv.target_agent = agent
        self._system_line(conv, TRANSFERRED)
        self._enqueue(conv, queue or conv.queue)

    def _agent_gone(self, session: AgentSession) -> None:
        if session.gone:
            return
        session.gone = True
        agent = session.state
        if self._directory.get(agent.name) is agent:
            self._directory.remove(agent.name)
        agent.status = agent_states.OFFLINE
        self._log.info("agent {agent} left", agent=agent.name)
        for offer_id in list(agent.offers):
            offer = self._offers.get(offer_id)
            if offer is not None:
                self._take_offer(offer)
                if offer.conversation.state == OFFERED:
                    offer.conversation.state = QUEUED
        for conv_id in list(agent.conversations):
            conv = self.conversations.get(conv_id)
            if conv is None or conv.state != CONNECTED:
                continue
            self._leave(conv, agent)
            self._system_line(conv, AGENT_DROPPED)
            self._enqueue(conv, conv.queue)
        self._dispatch()

    def _leave(self, conv: Conversation, agent: AgentState) -> None:
        """The agent is no longer in the conversation."""
        agent.conversations.discard(conv.id)
        if not agent.conversations:
            agent.idle_since = self._clock.seconds()
        conv.agent = None

    # -- the end ----------------------------------------------------------

    def _end(self, conv: Conversation, reason: str) -> None:
        """End a conversation in any state, telling whoever is still there."""
        if conv.state == ENDED:
            return
        previous = conv.state
        conv.state = ENDED
        self._cancel_timer(conv)
        if conv.offer is not None:
            offer = conv.offer
            self._take_offer(offer)
            self._revoke(offer, "customer_left")
        if conv.queue is not None:
            self.queues[conv.queue].remove(conv)
        agent = conv.agent
        if agent is not None:
            self._leave(conv, agent)
            self._deliver(agent, ev.Ended(conv.id, reason))
        self._deliver(conv.customer, ev.Ended(conv.id, reason))
        self._aliases.discard(conv.alias)
        del self.conversations[conv.id]
        self._write(
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
        self._dispatch()

    def shutdown(self) -> None:
        """End every conversation with reason ``shutdown`` and refuse newcomers."""
        self.shutting_down = True
        for conv in list(self.conversations.values()):
            self._system_line(conv, SHUTDOWN)
            self._end(conv, "shutdown")
        parties = [c.party for c in self._customers]
        parties += [a.session.party for a in self._directory.candidates()]
        for party in parties:
            party.close("shutdown")

    # -- plumbing ---------------------------------------------------------

    def _deliver(self, target: Any, event: Any) -> None:
        """Hand an event to a customer session or agent state, if still connected."""
        session = target.session if isinstance(target, AgentState) else target
        if session is None or session.gone:
            return
        try:
            session.party.deliver(event)
        except Exception:
            # One broken adapter must not stop the core serving everyone else.
            self._log.failure("delivering {event!r} failed", event=event)

    def _append(self, entry: StoredMessage) -> Deferred[str]:
        def failed(failure: Failure):
            self._log.failure(
                "storing message {msg} of {conversation} failed",
                failure,
                msg=entry.id,
                conversation=entry.conversation,
            )
            raise InternalError("the message could not be stored; please send it again")

        return maybeDeferred(self._store.append, entry).addErrback(failed)

    def _store_system(self, conv: Conversation, text: str) -> None:
        ts = self._clock.seconds()
        entry = StoredMessage(
            id=self._ids.message(), conversation=conv.id, sender=ev.SYSTEM, text=text, ts=ts
        )
        conv.remember(ev.HistoryEntry(ev.SYSTEM, text, ts))
        self._write(self._store.append(entry))
        return entry

    def _system_line(self, conv: Conversation, text: str) -> None:
        """Tell the customer something; it goes in the transcript too."""
        entry = self._store_system(conv, text)
        self._deliver(conv.customer, ev.Message(conv.id, ev.SYSTEM, entry.id, text, entry.ts))

    def _write(self, d: Deferred | None) -> None:
        """A write nobody waits on: its failure is logged, not lost."""
        if d is not None:
            d.addErrback(lambda f: self._log.failure("store write failed", f))

    def _restart_timer(self, conv: Conversation, delay: float, action) -> None:
        self._cancel_timer(conv)
        conv.timer = self._clock.callLater(delay, action, conv)

    def _cancel_timer(self, conv: Conversation) -> None:
        if conv.timer is not None and conv.timer.active():
            conv.timer.cancel()
        conv.timer = None
