"""The gateway core: sessions, conversations, queues and offers, with no wire format.

Adapters call :class:`Gateway` when a party arrives and then act through the
session object they get back; the core answers through :class:`IParty`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import ceil
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway import __version__ as gateway_version
from gateway import logs
from gateway.config import Config
from gateway.core import events as ev
from gateway.core.conversation import (
    CONNECTED,
    ENDED,
    INTERVIEW,
    Conversation,
    Queue,
)
from gateway.core.dispatch import Dispatcher
from gateway.core.errors import (
    AuthFailed,
    BadRequest,
    GatewayError,
    InternalError,
    NotAllowed,
    Unavailable,
)
from gateway.core.holding import Holding
from gateway.core.ids import IdFactory
from gateway.core.interfaces import IRouter, IStore
from gateway.core.interview import Interview
from gateway.core.resume import Holds
from gateway.core.throttle import LoginThrottle
from gateway.directory import memory as agent_states
from gateway.directory.memory import AgentDirectory, AgentState
from gateway.metrics import GatewayMetrics
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage
from gateway.store.sqlite import StoreBusy

TYPING_STATES = ("active", "paused")

AGENT_DROPPED = "Your agent was disconnected. We are connecting you with another agent."
TRANSFERRED = "You are being transferred to another agent. Please stay with us."
WAIT_TIMEOUT = "We are sorry, no agent could take your conversation in time."
NO_AGENTS = "We are sorry, no agents are available right now. Please try again later."
QUEUE_FULL = "We are sorry, too many customers are waiting. Please try again later."
ANSWER_TIMEOUT = "This conversation was closed because we did not hear from you."
REDIRECTED = "{alias} will continue with you directly at {address}. Please write there."
REDIRECTING = "Customer {alias} ({address}) will write to you directly; the gateway stepped out."
SHUTDOWN = "The service is restarting. Please reconnect in a moment."

VerifyPassword = Callable[[str, str | None], Deferred]


def _refused(d: Deferred) -> bool:
    """The store failed an append at once (closed, refused): it was never accepted."""
    return d.called and isinstance(d.result, Failure)


class CustomerSession:
    """One customer's connection and the conversation it carries."""

    _log = Logger(observer=logs.observer)

    def __init__(self, gateway: Gateway, party: Any, session_id: str) -> None:
        self._gateway = gateway
        self.party = party
        self.id = session_id
        self.conversation: Conversation | None = None
        self.gone = False
        # Given to the customer (JSON-IM welcome.resume) to take the conversation
        # back after a drop or a restart; see gateway.core.resume.
        self.resume_token: str | None = None

    def say(self, text: str, *, markup: str | None = None) -> Deferred[str]:
        """Store a customer line; fires with its message id once it is committed.

        ``markup``: the line as formatted (rich_text), ``text`` its plain rendering.
        """
        return self._gateway._customer_says(self, text, markup)

    def receipt(self, msg: str, state: str) -> None:
        """The customer's client has received or shown the agent's message ``msg``."""
        self._gateway._receipt(self._gateway._live_conversation(self), msg, state, to_agent=True)

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

    def say(self, conversation: str, text: str, *, markup: str | None = None) -> Deferred[str]:
        """Store an agent line; fires with its message id once it is committed."""
        return self._gateway._agent_says(self, conversation, text, markup)

    def receipt(self, conversation: str, msg: str, state: str) -> None:
        """The agent's client has received or shown the customer's message ``msg``."""
        conv = self._gateway._agent_conversation(self, conversation)
        self._gateway._receipt(conv, msg, state, to_agent=False)

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


class Gateway(Holding):
    """Carries customers from the interview through a queue to an agent and back."""

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        config: Config,
        *,
        store: IStore,
        plans: IRouter,
        directory: AgentDirectory,
        clock: IReactorTime,
        verify_password: VerifyPassword,
        ids: IdFactory | None = None,
        metrics: GatewayMetrics | None = None,
        text_filter: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        # Rewrites agents' text before it is stored and sent (the firewall's identity
        # translation of internal hosts and addresses).
        self._text_filter = text_filter
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._store = store
        self._directory = directory
        self._clock = clock
        self._verify = verify_password
        self._ids = ids or IdFactory()
        self.queues = {name: Queue(q) for name, q in config.queues.items()}
        self.conversations: dict[str, Conversation] = {}
        self._aliases: set[str] = set()
        self._customers: set[CustomerSession] = set()
        self.shutting_down = False
        # Conversations whose customer (or, after a restart, agent) may come back.
        self.holds = Holds()
        self._throttle = LoginThrottle(
            clock, free=config.login_failures_free, max_lockout_s=config.login_lockout_max_s
        )
        self._account_throttle = LoginThrottle(
            clock, free=4 * config.login_failures_free, max_lockout_s=config.login_lockout_max_s
        )
        self.dispatcher = Dispatcher(self, plans)

    # -- arrivals ---------------------------------------------------------

    def customer_arrived(
        self,
        party: Any,
        *,
        protocol: str,
        client: ev.ClientInfo,
        answers: Mapping[str, str],
        features: frozenset[str] = frozenset(),
        key: str | None = None,
        resume: str | None = None,
        resume_key: str | None = None,
    ) -> CustomerSession:
        """A customer connected: open a conversation and start the interview.

        ``key`` identifies a returning customer (their IM address) for sticky
        routing; without it, an e-mail answer serves. A customer whose conversation
        is held (see gateway.core.resume) takes it back instead, found by the ``resume``
        token it was given or else by ``resume_key`` (default: ``key``), an address
        that names the same person (IRC: nick and ident, not just the ident).
        """
        if self.shutting_down:
            raise Unavailable("the service is shutting down")
        resumed = self._resume(party, token=resume, key=resume_key or key)
        if resumed is not None:
            return resumed
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
        conv.key = key or (f"email:{answers['email'].casefold()}" if answers.get("email") else None)
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
        conv.resume_key = resume_key or key
        self._new_resume_token(conv, session)
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
        address: str | None = None,
    ) -> Deferred[AgentSession]:
        """Authenticate an agent; fires with its session or fails with AuthFailed.

        ``address`` (the peer's host) goes in the one log line of a failure.
        """
        if self.shutting_down:
            return fail(Unavailable("the service is shutting down"))
        # An account tolerates more failures than an address, so that one attacker
        # cannot easily lock an agent out by guessing from one place.
        keys = [(self._account_throttle, name)]
        if address:
            keys.append((self._throttle, address))
        wait = max(throttle.blocked_for(key) for throttle, key in keys)
        if wait > 0:
            # Locked out: refused without spending a password check on it.
            self.auth_failed(protocol, name, address)
            return fail(AuthFailed(f"too many failed logins; try again in {ceil(wait)} s"))
        d = self._store.get_agent(name)

        def verify(record):
            stored = record.password_hash if record is not None else None
            return self._verify(password, stored).addCallback(lambda ok: (ok, record))

        def login(result):
            ok, record = result
            if not ok or record is None:
                for throttle, key in keys:
                    throttle.failed(key)
                self.auth_failed(protocol, name, address)
                raise AuthFailed("authentication failed")
            for throttle, key in keys:
                throttle.succeeded(key)
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

    def agent_credentials(self, name: str) -> Deferred:
        """An agent's stored SCRAM keys (JSON text, see gateway.passwords), or None.

        For adapters whose authentication proves the password without sending it.
        """
        return self._store.scram_credentials(name)

    def agent_authenticated(
        self,
        party: Any,
        *,
        protocol: str,
        name: str,
        client: ev.ClientInfo,
        features: frozenset[str] = frozenset(),
    ) -> Deferred[AgentSession]:
        """Log in an agent whose adapter verified it against agent_credentials()."""
        if self.shutting_down:
            return fail(Unavailable("the service is shutting down"))

        def found(record):
            if record is None:
                raise AuthFailed("authentication failed")
            return self._agent_logged_in(party, record, protocol, client, features)

        return self._store.get_agent(name).addCallback(found)

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
            protocol_capacity=dict(record.protocol_capacity),
            addresses=tuple(record.addresses),
            features=frozenset(features),
        )
        session = AgentSession(self, party, self._ids.session(), state)
        state.session = session
        self._directory.add(state)
        self._reattach(state)
        self.dispatcher.agent_changed(state)
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

    def _customer_says(
        self, session: CustomerSession, text: str, markup: str | None = None
    ) -> Deferred[str]:
        try:
            conv = self._live_conversation(session)
        except GatewayError as e:
            return fail(e)
        msg_id = self._ids.message()
        ts = self._clock.seconds()
        entry = StoredMessage(id=msg_id, conversation=conv.id, sender=ev.CUSTOMER, text=text, ts=ts)
        acked = self._append(entry)
        if _refused(acked):
            return self._acked(acked, entry, delivered=False)
        if conv.state == INTERVIEW:
            # An answer moves the interview on once it is stored, as before: a
            # customer told to send it again is still answering the same question.
            acked.addCallback(self._customer_said, conv, entry)
            return self._acked(acked, entry, delivered=False)
        # Delivered now, acknowledged after the commit: the ack is the durability
        # promise, the other side need not wait for the disk. The store keeps the
        # order of appends, so the transcript's order is the order delivered.
        self._customer_said(None, conv, entry, markup)
        return self._acked(acked, entry, delivered=conv.state == CONNECTED)

    def _customer_said(
        self, _: object, conv: Conversation, entry: StoredMessage, markup: str | None = None
    ) -> None:
        conv.remember(ev.HistoryEntry(ev.CUSTOMER, entry.text, entry.ts))
        self.metrics.count_message(conv.protocol, ev.CUSTOMER)
        if conv.state == INTERVIEW:
            self._interview_answer(conv, entry.text)
        elif conv.state == CONNECTED:
            self._deliver(
                conv.agent,
                ev.Message(conv.id, ev.CUSTOMER, entry.id, entry.text, entry.ts, markup),
            )

    def _receipt(self, conv: Conversation, msg: str, state: str, *, to_agent: bool) -> None:
        """Tell the other side of a connected conversation what became of its message."""
        if state not in ev.RECEIPT_STATES:
            raise BadRequest(f"state must be one of {', '.join(ev.RECEIPT_STATES)}")
        if conv.state == CONNECTED:
            target = conv.agent if to_agent else conv.customer
            self._deliver(target, ev.Receipt(conv.id, msg, state))

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
        if conv is not None and conv.state != ENDED and not self._hold(conv):
            self._end(conv, "customer")

    # -- the interview ----------------------------------------------------

    def _next_question(self, conv: Conversation, prompt: ev.Prompt | None) -> None:
        if prompt is None:
            self._cancel_timer(conv)
            self.dispatcher.route(conv)
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

    # -- queues and offers (see gateway.core.dispatch) -------------------------

    def _agent_accepts(self, session: AgentSession, offer_id: str) -> None:
        conv = self.dispatcher.accept(session, offer_id)
        agent = session.state
        conv.state = CONNECTED
        conv.agent = agent
        conv.target_agent = None
        agent.conversations.add(conv.id)
        agent.protocol_load[conv.protocol] = agent.protocol_load.get(conv.protocol, 0) + 1
        self._cancel_timer(conv)
        self._write(self._store.update_conversation(conv.id, state=CONNECTED, agent=agent.name))
        self._log.info("{agent} accepted {conversation}", agent=agent.name, conversation=conv.id)
        if self._redirect(conv, agent):
            return
        self._deliver(conv.customer, ev.Connected(conv.id, agent.alias))
        self._deliver(agent, ev.Connected(conv.id, conv.alias, tuple(conv.history)))
        self._tell_if_away(conv)
        self.dispatcher.agent_changed(agent)

    def _redirect(self, conv: Conversation, agent: AgentState) -> bool:
        """Redirect hosting: hand each side the other's public address and step out.

        Only where the queue asks for it and both sides are on the same IM network
        (the customer's key is its address there, and the agent has one there too).
        """
        if self.queues[conv.queue].config.hosting != "redirect":
            return False
        prefix = f"{conv.protocol}:"
        theirs = [a for a in agent.addresses if a.startswith(prefix)]
        if not theirs or not (conv.key or "").startswith(prefix):
            return False
        self._log.info(
            "conversation {conversation} redirected to {agent}'s own address",
            conversation=conv.id,
            agent=agent.name,
        )
        self._system_line(conv, REDIRECTED.format(alias=agent.alias, address=theirs[0]))
        self._deliver(agent, ev.Notice(REDIRECTING.format(alias=conv.alias, address=conv.key)))
        self._end(conv, "agent")
        self._write(self._store.update_conversation(conv.id, end_reason="redirected"))
        return True

    def _agent_rejects(self, session: AgentSession, offer_id: str) -> None:
        self.dispatcher.reject(session, offer_id)

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
        if status == agent_states.AVAILABLE:
            agent.lapses = 0
        self._log.info("agent {agent} is {status}", agent=agent.name, status=status)
        self.dispatcher.agent_changed(agent)

    def _agent_says(
        self, session: AgentSession, conversation: str, text: str, markup: str | None = None
    ) -> Deferred[str]:
        try:
            conv = self._agent_conversation(session, conversation)
        except GatewayError as e:
            return fail(e)
        if self._text_filter is not None:
            text = self._text_filter(text)
            markup = self._text_filter(markup) if markup is not None else None
        msg_id = self._ids.message()
        ts = self._clock.seconds()
        entry = StoredMessage(
            id=msg_id, conversation=conv.id, sender=ev.AGENT, text=text, ts=ts, agent=session.name
        )
        acked = self._append(entry)
        if _refused(acked):
            return self._acked(acked, entry, delivered=False)
        # As the customer's: delivered now, acknowledged after the commit.
        conv.remember(ev.HistoryEntry(ev.AGENT, text, ts))
        self.metrics.count_message(session.state.protocol, ev.AGENT)
        self._deliver(conv.customer, ev.Message(conv.id, ev.AGENT, msg_id, text, ts, markup))
        return self._acked(acked, entry, delivered=True)

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
        conv.task.exclude.add(session.name)
        if agent is not None:
            # Named on purpose: an earlier hand-on by that agent no longer bars it.
            conv.declined.discard(agent)
            conv.task.exclude.discard(agent)
        conv.target_agent = agent
        self._system_line(conv, TRANSFERRED)
        # A bot handing over means "a person, please": no bot takes it back.
        self.dispatcher.requeue(conv, queue, people_only=session.state.bot)

    def _agent_gone(self, session: AgentSession) -> None:
        if session.gone:
            return
        session.gone = True
        agent = session.state
        if self._directory.get(agent.name) is agent:
            self._directory.remove(agent.name)
        agent.status = agent_states.OFFLINE
        self._log.info("agent {agent} left", agent=agent.name)
        self.dispatcher.agent_left(agent)
        for conv_id in list(agent.conversations):
            conv = self.conversations.get(conv_id)
            if conv is None or conv.state != CONNECTED:
                continue
            self._leave(conv, agent)
            self._system_line(conv, AGENT_DROPPED)
            self.dispatcher.requeue(conv)
        self.dispatcher.match()

    def _leave(self, conv: Conversation, agent: AgentState) -> None:
        """The agent is no longer in the conversation; wrap-up time may follow."""
        agent.conversations.discard(conv.id)
        load = agent.protocol_load.get(conv.protocol, 0)
        if load > 1:
            agent.protocol_load[conv.protocol] = load - 1
        else:
            agent.protocol_load.pop(conv.protocol, None)
        if not agent.conversations:
            agent.idle_since = self._clock.seconds()
        conv.agent = None
        if conv.connected_at is not None:
            queue = self.queues[conv.queue]
            queue.active -= 1
            queue.observe_handle(self._clock.seconds() - conv.connected_at)
            self.metrics.handle_seconds.labels(conv.queue).observe(
                self._clock.seconds() - conv.connected_at
            )
            conv.connected_at = None
        self.dispatcher.remember_agent(conv, agent.name)
        if self.config.wrap_up_s and not agent.wrapping_up and agent.session is not None:
            agent.wrapping_up = True
            self._clock.callLater(self.config.wrap_up_s, self._wrapped_up, agent)
        if agent.session is not None and not agent.session.gone:
            self.dispatcher.agent_changed(agent)

    def _wrapped_up(self, agent: AgentState) -> None:
        agent.wrapping_up = False
        if not agent.session.gone:
            self.dispatcher.agent_changed(agent)

    # -- the end ----------------------------------------------------------

    def _end(self, conv: Conversation, reason: str) -> None:
        """End a conversation in any state, telling whoever is still there."""
        if conv.state == ENDED:
            return
        previous = conv.state
        conv.state = ENDED
        self.holds.release(conv.id)
        self._cancel_timer(conv)
        self.dispatcher.withdraw(conv)
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
        self.dispatcher.match()

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

    # -- supervisor actions (the admin API, gateway.admin.api) ---------------

    def auth_failed(self, protocol: str, user: str, address: str | None) -> None:
        """Log one fail2ban-friendly line for a failed agent login, and count it."""
        self.metrics.auth_failures.labels(protocol).inc()
        self._log.warn(
            "auth failure protocol={protocol} user={user} address={address}",
            protocol=protocol,
            user=repr(user)[1:-1].replace(" ", "\\x20") or "-",
            address=address or "-",
        )

    def admin_end(self, conversation: str) -> None:
        """A supervisor ends a live conversation (reason ``admin``)."""
        conv = self.conversations.get(conversation)
        if conv is None:
            raise NotAllowed(f"no live conversation {conversation}")
        self._log.info("supervisor ends {conversation}", conversation=conv.id)
        # The contact centre's side ended it: JSON-IM/1 has "agent" for that.
        self._end(conv, "agent")

    def admin_transfer(
        self, conversation: str, *, queue: str | None = None, agent: str | None = None
    ) -> None:
        """A supervisor moves a conversation to a queue or a named agent."""
        conv = self.conversations.get(conversation)
        if conv is None:
            raise NotAllowed(f"no live conversation {conversation}")
        if (queue is None) == (agent is None):
            raise BadRequest("transfer needs exactly one of a queue or an agent")
        if conv.state == CONNECTED:
            self._agent_transfers(conv.agent.session, conv.id, queue=queue, agent=agent)
            return
        if not conv.waiting or conv.task is None:
            raise NotAllowed(f"conversation {conv.id} is {conv.state}, not waiting or connected")
        if queue is not None and queue not in self.queues:
            raise Unavailable(f"no such queue: {queue}")
        if agent is not None:
            target = self._directory.get(agent)
            if target is None or not target.has_room:
                raise Unavailable(f"agent {agent} is not available")
            conv.declined.discard(agent)
            conv.task.exclude.discard(agent)
        self._log.info(
            "supervisor moves {conversation} to {target}",
            conversation=conv.id,
            target=queue or agent,
        )
        self.dispatcher.withdraw(conv, "transferred")
        conv.target_agent = agent
        self.dispatcher.requeue(conv, queue)

    def set_agent_status(self, name: str, status: str) -> None:
        """A supervisor sets a logged-in agent available, away or offline."""
        agent = self._directory.get(name)
        if agent is None or agent.session is None:
            raise NotAllowed(f"agent {name} is not logged in")
        self._agent_presence(agent.session, status)
        self._deliver(agent, ev.Notice(f"A supervisor set you {status}."))

    def logout_agent(self, name: str) -> None:
        """A supervisor logs an agent out; its conversations are requeued."""
        agent = self._directory.get(name)
        if agent is None or agent.session is None:
            raise NotAllowed(f"agent {name} is not logged in")
        session = agent.session
        self._log.info("supervisor logs {agent} out", agent=name)
        session.party.close("logged out by a supervisor")
        self._agent_gone(session)

    # -- plumbing ---------------------------------------------------------

    def _deliver(self, target: Any, event: Any) -> None:
        """Hand an event to a customer session or agent state, if still connected."""
        session = target.session if isinstance(target, AgentState) else target
        if session is None or session.gone:
            if session is not None and not isinstance(target, AgentState):
                self._keep_for_absent(session, event)
            return
        try:
            session.party.deliver(event)
        except Exception:
            # One broken adapter must not stop the core serving everyone else.
            self._log.failure("delivering {event!r} failed", event=event)

    def _append(self, entry: StoredMessage) -> Deferred[None]:
        try:
            return self._store.append(entry)
        except Exception:
            return fail()

    def _acked(
        self, acked: Deferred[None], entry: StoredMessage, *, delivered: bool
    ) -> Deferred[str]:
        """The sender's answer: the message id once committed, else why not."""
        return acked.addCallbacks(
            lambda _: entry.id, self._not_stored, errbackArgs=(entry, delivered)
        )

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
