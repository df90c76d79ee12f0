"""The gateway core's front: what protocol adapters and bots call (:class:`IGateway`).

:class:`Gateway` makes the core's collaborators and wires them together: the relay
(conversations and their lines), the desk (agents), the dispatcher (queues and
offers) and the holder (resume and restore), which share one
:class:`gateway.core.context.Core` and talk through :mod:`gateway.core.ports`.
Adapters call the Gateway when a party arrives and then act through the session it
returns; the core answers through :class:`IParty`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import ceil
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from gateway import __version__ as gateway_version
from gateway import logs
from gateway.config import Config
from gateway.core import events as ev
from gateway.core.context import Core
from gateway.core.conversation import CONNECTED, Conversation
from gateway.core.delivery import LocalDelivery
from gateway.core.desk import Desk
from gateway.core.dispatch import Dispatcher
from gateway.core.errors import AuthFailed, BadRequest, NotAllowed, Unavailable
from gateway.core.holding import Holder
from gateway.core.ids import IdFactory
from gateway.core.interfaces import IDelivery, IGateway
from gateway.core.relay import Relay
from gateway.core.sessions import AgentSession, CustomerSession
from gateway.core.throttle import LoginGuard
from gateway.directory.interfaces import IAgentDirectory
from gateway.directory.teams import Teams
from gateway.metrics import GatewayMetrics
from gateway.routing.feed import agent_state
from gateway.routing.interfaces import IEventSink, IRouter
from gateway.store.interfaces import IStore
from gateway.store.records import AgentRecord

SHUTDOWN = "The service is restarting. Please reconnect in a moment."
RESTORING = "the service is starting; please reconnect in a moment"

VerifyPassword = Callable[[str, str | None], Deferred]


@implementer(IGateway)
class Gateway:
    """Carries customers from the interview through a queue to an agent and back."""

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        config: Config,
        *,
        store: IStore,
        plans: IRouter,
        directory: IAgentDirectory,
        clock: IReactorTime,
        verify_password: VerifyPassword,
        ids: IdFactory | None = None,
        metrics: GatewayMetrics | None = None,
        text_filter: Callable[[str], str] | None = None,
        delivery: IDelivery | None = None,
        node: str = "",
        events: IEventSink | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._store = store
        self._clock = clock
        self._verify = verify_password
        core = self.core = Core(
            config=config,
            clock=clock,
            store=store,
            directory=directory,
            delivery=delivery or LocalDelivery(),
            ids=ids or IdFactory(),
            metrics=self.metrics,
            text_filter=text_filter,
            node=node,
            **({"events": events} if events is not None else {}),
        )
        self.relay = Relay(core)
        self.desk = Desk(core)
        self.dispatcher = Dispatcher(core, plans)
        self.holder = Holder(core)
        # The service desk's agent actions (gateway.desk), once one is attached.
        self.service_desk: Any = None
        for part in (self.relay, self.desk, self.dispatcher, self.holder):
            part.relay, part.desk = self.relay, self.desk
            part.dispatcher, part.holding = self.dispatcher, self.holder
        # Failed logins per address (an IPv6 /64), account and known place.
        self._logins = LoginGuard(
            clock, free=config.login_failures_free, max_lockout_s=config.login_lockout_max_s
        )
        # True while restore() reads back what the last run left open.
        self.restoring = False

    # -- what the rest of the gateway reads ---------------------------------

    @property
    def queues(self) -> dict:
        """Queues by name."""
        return self.core.queues

    @property
    def conversations(self) -> dict[str, Conversation]:
        """Live conversations by id."""
        return self.relay.conversations

    @property
    def agents(self) -> Any:
        """Every logged-in agent's presence record, as this node knows them."""
        return self.core.view

    @property
    def holds(self) -> Any:
        """Held conversations (gateway.core.resume.Holds)."""
        return self.holder.holds

    @property
    def shutting_down(self) -> bool:
        """True once shutdown() began: newcomers are refused."""
        return self.core.shutting_down

    @property
    def teams(self) -> Teams:
        """Who serves which queue (gateway.directory.teams)."""
        return self.core.teams

    def set_teams(self, teams: Teams) -> None:
        """Teams were (re)loaded: agents' memberships and the queues they serve change."""
        self.core.teams = teams
        for agent in self.core.local:
            mine = teams.teams_of(agent.name)
            if agent.presence.teams != mine:
                agent.change(teams=mine)
                facts = self.dispatcher.agent_facts(agent.presence)
                self.core.events.emit("agent_teams", agent.name, facts)
        self._log.info(
            "teams: {count} ({names})", count=len(teams), names=", ".join(teams.names) or "none"
        )
        self.dispatcher.teams_changed()

    def feed_snapshot(self) -> dict[str, Any]:
        """This gateway's live state for the routing server's feed (when it asks)."""
        dispatcher = self.dispatcher
        agents = [
            {"agent": a.name, **dispatcher.agent_facts(a.presence), **agent_state(a.presence)}
            for a in self.core.local
        ]
        conversations = []
        for conv in self.relay.conversations.values():
            task = conv.task
            conversations.append(
                {
                    "conversation": conv.id,
                    "state": conv.state,
                    "queue": conv.queue,
                    "agent": conv.agent.name if conv.agent is not None else None,
                    "priority": task.priority if task is not None else 0,
                    "arrival": conv.arrival[0] if conv.arrival is not None else None,
                    "started": conv.started,
                }
            )
        return {"agents": agents, "conversations": conversations}

    def restore(self) -> Deferred:
        """Take back what the store says was open when the gateway last stopped.

        Meanwhile a returning customer (a resume token or key) is refused with
        ``unavailable`` rather than given a new conversation.
        """
        self.restoring = True

        def done(result: Any) -> Any:
            self.restoring = False
            return result

        return self.holder.restore().addBoth(done)

    def _refusing(self) -> str | None:
        """Why newcomers are refused now (shutting down, cluster unavailable), or None."""
        if self.core.shutting_down:
            return "the service is shutting down"
        cluster = self.core.cluster
        return cluster.refusing() if cluster is not None else None

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
        opening: str | None = None,
        verified: Mapping[str, str] | None = None,
        address: str | None = None,
        customer_id: str | None = None,
    ) -> CustomerSession:
        """A customer connected: open a conversation and start the interview.

        ``key`` identifies a returning customer (their IM address) for sticky
        routing; without it, an e-mail answer serves. A customer whose conversation
        is held (see gateway.core.resume) takes it back instead, found by the ``resume``
        token it was given or else by ``resume_key`` (default: ``key``), an address
        that names the same person (IRC: nick and ident, not just the ident).
        ``opening``, the line that brought the customer, is kept (stored, and given
        to the agent) without answering an interview question.
        ``verified`` are identity details the connection proved (an attached IM
        server's account, a site-signed identity): routing rules trust them as
        ``account`` where customer claims are not. ``address`` is where the customer
        can be written to on an IM server that carries conversations itself
        (component and bot modes); redirect hosting hands only such customers over.
        ``customer_id`` is an identity the adapter issued and the customer presented
        (a JSON-IM customer token); the service desk recognises a returning customer by
        it, or else by a verified ``account``, ``id`` or ``email``.
        """
        refused = self._refusing()
        if refused:
            raise Unavailable(refused)
        returning = bool(resume or resume_key or key)
        if self.restoring and returning:
            raise Unavailable(RESTORING)
        resumed = self.holder.resume(party, token=resume, key=resume_key or key)
        if resumed is not None:
            if opening:
                self.relay.opening_line(resumed, opening)
            return resumed
        if self.core.cluster is not None and returning:
            # Their conversation may be on another node: moved here, then resumed.
            self.core.cluster.members.resume_elsewhere(resume, resume_key or key)
        return self.relay.open(
            party,
            protocol=protocol,
            client=client,
            answers=answers,
            key=key,
            resume_key=resume_key,
            opening=opening,
            verified=verified,
            address=address,
            customer_id=customer_id,
        )

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
        refused = self._refusing()
        if refused:
            return fail(Unavailable(refused))
        locked = self._locked_out(protocol, name, address)
        if locked is not None:
            return locked
        d = self._store.get_agent(name)

        def verify(record):
            stored = record.password_hash if record is not None else None
            return self._verify(password, stored).addCallback(lambda ok: (ok, record))

        def login(result):
            ok, record = result
            if not ok or record is None:
                self._logins.failed(name, address)
                self.auth_failed(protocol, name, address)
                raise AuthFailed("authentication failed")
            self._logins.succeeded(name, address)
            return self.desk.logged_in(party, record, protocol, client, features)

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
        refused = self._refusing()
        if refused:
            return fail(Unavailable(refused))

        def found(record):
            if record is None:
                self._log.info("{address} is not an agent", address=address)
                raise AuthFailed(f"{address} is not an agent")
            return self.desk.logged_in(party, record, protocol, client, features)

        return self._store.find_agent(address).addCallback(found)

    def _locked_out(self, protocol: str, name: str, address: str | None) -> Deferred | None:
        # Per address (an IPv6 /64), account and known place: see gateway.core.throttle.
        # Every way of logging in asks this first.
        wait = self._logins.blocked_for(name, address)
        if wait <= 0:
            return None
        # Locked out: refused without spending a password check on it.
        self.auth_failed(protocol, name, address)
        return fail(AuthFailed(f"too many failed logins; try again in {ceil(wait)} s"))

    def agent_credentials(
        self, name: str, *, protocol: str = "", address: str | None = None
    ) -> Deferred:
        """An agent's stored SCRAM keys (JSON text, see gateway.passwords), or None.

        For adapters whose authentication proves the password without sending it: the
        lockouts hold for them as for a password (AuthFailed while locked out), and they
        report a proof that failed with :meth:`agent_login_failed`.
        """
        locked = self._locked_out(protocol, name, address)
        if locked is not None:
            return locked
        return self._store.scram_credentials(name)

    def agent_login_failed(self, protocol: str, name: str, address: str | None) -> None:
        """A login the adapter checked itself failed: counted against the lockouts, and
        logged as every failed login is."""
        self._logins.failed(name, address)
        self.auth_failed(protocol, name, address)

    def agent_authenticated(
        self,
        party: Any,
        *,
        protocol: str,
        name: str,
        client: ev.ClientInfo,
        features: frozenset[str] = frozenset(),
        address: str | None = None,
    ) -> Deferred[AgentSession]:
        """Log in an agent whose adapter verified it against agent_credentials()
        (from ``address``, which becomes one of its known places)."""
        refused = self._refusing()
        if refused:
            return fail(Unavailable(refused))

        def found(record):
            if record is None:
                raise AuthFailed("authentication failed")
            self._logins.succeeded(name, address)
            return self.desk.logged_in(party, record, protocol, client, features)

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
        if self.core.shutting_down:
            raise Unavailable("the service is shutting down")
        return self.desk.logged_in(
            party, record, protocol, client or ev.ClientInfo("imgateway", gateway_version)
        )

    def shutdown(self) -> None:
        """Refuse newcomers and close every connection.

        A conversation its customer can resume (a resume token or key, and
        ``resume_grace_s`` above 0) stays open in the store, as after a crash: the next
        start (or, in a cluster, another node) holds it for its customer and agent.
        The others end with reason ``shutdown``.
        """
        self.core.shutting_down = True
        relay = self.relay
        keep = self.config.resume_grace_s > 0
        for conv in list(relay.conversations.values()):
            resumable = conv.resume_hash is not None or conv.resume_key is not None
            if keep and resumable and (conv.waiting or conv.state == CONNECTED):
                relay.system_line(conv, SHUTDOWN)
                self.holder.holds.release(conv.id)
                self.dispatcher.withdraw(conv)
                relay.forget(conv)
                if getattr(conv.customer, "conversation", None) is conv:
                    conv.customer.conversation = None
                continue
            relay.system_line(conv, SHUTDOWN)
            relay.end(conv, "shutdown")
        parties = [c.party for c in relay.customers]
        parties += [a.session.party for a in self.core.local]
        for party in parties:
            party.close("shutdown")

    # -- supervisor actions (the admin API, gateway.admin.api) ---------------

    def auth_failed(self, protocol: str, user: str, address: str | None) -> None:
        """Log one fail2ban-friendly line for a failed agent login, and count it."""
        self.metrics.auth_failures.labels(protocol).inc()
        self._log.warn(
            "auth failure protocol={protocol} user={user} address={address}",
            protocol=protocol,
            user=user or "-",  # escaped by the log observer, as every value
            address=address or "-",
        )

    def admin_end(self, conversation: str) -> None:
        """A supervisor ends a live conversation (reason ``admin``)."""
        conv = self.conversations.get(conversation)
        if conv is None:
            raise NotAllowed(f"no live conversation {conversation}")
        self._log.info("supervisor ends {conversation}", conversation=conv.id)
        # The contact centre's side ended it: JSON-IM/1 has "agent" for that.
        self.relay.end(conv, "agent")

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
            self.desk.transfer(conv.agent.session, conv.id, queue=queue, agent=agent)
            return
        if not conv.waiting or conv.task is None:
            raise NotAllowed(f"conversation {conv.id} is {conv.state}, not waiting or connected")
        if queue is not None and queue not in self.queues:
            raise Unavailable(f"no such queue: {queue}")
        if agent is not None:
            target = self.core.view.get(agent)
            if target is None or not target.has_room:
                raise Unavailable(f"agent {agent} is not available")
            conv.declined.discard(agent)
            conv.task.exclude.discard(agent)
        self._log.info(
            "supervisor moves {conversation} to {target}",
            conversation=conv.id,
            target=queue or agent,
        )
        self.core.events.emit(
            "transferred",
            conv.id,
            {"agent": None, "to_queue": queue, "to_agent": agent, "by": "supervisor"},
        )
        self.dispatcher.withdraw(conv, "transferred")
        conv.target_agent = agent
        self.dispatcher.requeue(conv, queue, reason="transfer")

    def set_agent_status(self, name: str, status: str) -> None:
        """A supervisor sets a logged-in agent available, away or offline."""
        self.desk.set_status(name, status)

    def logout_agent(self, name: str) -> None:
        """A supervisor logs an agent out; its conversations are requeued."""
        self.desk.logout(name)
