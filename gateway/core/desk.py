"""The desk: the agents' side of the core (logins, presence, offers taken, transfers).

Agents' shared state lives in the directory as presence records; the desk changes
it only through each :class:`LiveAgent` (which publishes every change) and asks the
dispatcher to match once a change may let an offer through.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from gateway import logs
from gateway.core import events as ev
from gateway.core.agents import LiveAgent
from gateway.core.context import Core
from gateway.core.conversation import CONNECTED, Conversation
from gateway.core.errors import BadRequest, NotAllowed, Unavailable
from gateway.core.ports import IDesk, IDispatch, IHolding, IRelay
from gateway.core.sessions import AgentSession
from gateway.directory.records import AVAILABLE, OFFLINE, STATUSES, AgentPresence

AGENT_DROPPED = "Your agent was disconnected. We are connecting you with another agent."
TRANSFERRED = "You are being transferred to another agent. Please stay with us."
REDIRECTED = "{alias} will continue with you directly at {address}. Please write there."
REDIRECTING = "Customer {alias} will write to you directly at {address}; the gateway stepped out."


@implementer(IDesk)
class Desk:
    """Agents: logged in, available or not, taking, handing on and leaving conversations."""

    _log = Logger(observer=logs.observer)

    def __init__(self, core: Core) -> None:
        self._core = core
        self._config = core.config
        self._clock = core.clock
        self.relay: IRelay = None
        self.dispatcher: IDispatch = None
        self.holding: IHolding = None

    # -- logging in and out ----------------------------------------------------

    def logged_in(
        self, party: Any, record: Any, protocol: str, client: ev.ClientInfo, features=frozenset()
    ) -> AgentSession:
        """An authenticated agent: its session, its presence published (away)."""
        core = self._core
        old = core.local.get(record.name)
        if old is not None:
            # The newest login wins, as with an XMPP resource conflict; the older
            # connection is told why before it closes.
            why = f"logged in from another connection ({protocol})"
            self.relay.deliver(old, ev.Notice(f"You are logged out: {why}."))
            old.session.party.close(why)
            self.gone(old.session)
        cluster = core.cluster
        # In a cluster, what the agent does in conversations homed elsewhere goes there.
        desk, relay = cluster.fronts(self, self.relay) if cluster else (self, self.relay)
        session = AgentSession(desk, relay, party, core.ids.session())
        presence = AgentPresence(
            name=record.name,
            alias=record.display_name,
            capacity=record.capacity,
            protocol=protocol,
            session=session.id,
            client_name=client.name,
            client_version=client.version,
            skills=dict(record.skills),
            idle_since=self._clock.seconds(),
            location=record.location,
            bot=record.bot,
            protocol_capacity=dict(record.protocol_capacity),
            addresses=tuple(record.addresses),
            features=frozenset(features),
            node=core.node,
            teams=core.teams.teams_of(record.name),
        )
        if cluster is not None:
            agent = cluster.local_agent(presence, session, core.publish)
        else:
            agent = LiveAgent(presence, session, core.publish)
        session.agent = agent
        core.local.add(agent)
        core.events.emit("agent_login", record.name, self.dispatcher.agent_facts(presence))
        core.publish(presence)
        core.hooks.presence(agent, agent.status)
        self.reattach(agent)
        self.dispatcher.match()
        self._log.info(
            "agent {agent} logged in ({protocol}, {client} {version})",
            agent=record.name,
            protocol=protocol,
            client=client.name,
            version=client.version,
        )
        return session

    def gone(self, session: AgentSession) -> None:
        """The agent's connection is gone: its conversations are requeued."""
        if session.gone:
            return
        session.gone = True
        agent = session.agent
        core = self._core
        core.local.remove(agent)
        agent.retire(status=OFFLINE)
        core.events.emit("agent_logout", agent.name, {"conversations": len(agent.conversations)})
        core.hooks.logged_out(agent)
        self._log.info("agent {agent} left", agent=agent.name)
        core.write(core.directory.withdraw(agent.name, session.id))
        self.dispatcher.agent_left(agent)
        if core.shutting_down:
            # Its conversations stay as they are, to be resumed after the restart.
            return
        for conv_id in list(agent.conversations):
            conv = self.relay.conversations.get(conv_id)
            if conv is None or conv.state != CONNECTED:
                continue
            self.leave(conv, agent)
            self.relay.system_line(conv, AGENT_DROPPED)
            self.dispatcher.requeue(conv, reason="agent_dropped")
        self.dispatcher.match()

    # -- presence ----------------------------------------------------------------

    def presence(self, session: AgentSession, status: str) -> None:
        """available, away or offline."""
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        agent = session.agent
        if agent.status == status:
            return
        if status == AVAILABLE:
            agent.change(status=status, lapses=0)
        else:
            agent.change(status=status)
        self._log.info("agent {agent} is {status}", agent=agent.name, status=status)
        self._core.hooks.presence(agent, status)
        self.dispatcher.match()

    # -- offers ----------------------------------------------------------------------

    def accept(self, session: AgentSession, offer_id: str) -> None:
        """The agent takes an offered conversation."""
        conv = self.dispatcher.accept(session, offer_id)
        agent = session.agent
        conv.state = CONNECTED
        conv.agent = agent
        conv.target_agent = None
        agent.joined(conv.id, conv.protocol)
        relay = self.relay
        relay.cancel_timer(conv)
        routing = conv.decision.to_dict() if conv.decision is not None else None
        self._core.write(
            self._core.store.update_conversation(
                conv.id, state=CONNECTED, agent=agent.name, routing=routing
            )
        )
        self._log.info("{agent} accepted {conversation}", agent=agent.name, conversation=conv.id)
        if self._redirect(conv, agent):
            return
        relay.deliver(conv.customer, ev.Connected(conv.id, agent.alias))
        relay.deliver(agent, ev.Connected(conv.id, conv.alias, tuple(conv.history), past=conv.past))
        self.holding.tell_if_away(conv)
        self.dispatcher.match()

    def _redirect(self, conv: Conversation, agent: LiveAgent) -> bool:
        """Redirect hosting: give the customer the agent's public address and step out.

        Only where the queue asks for it and an IM server can carry the conversation:
        the customer came through one (component or bot mode: ``conv.address``) on
        which the agent has an address too. The gateway's own listeners cannot: there
        the customer would be sent to an address that does not exist. The agent is
        told the customer's alias, never its address: the customer writes first.
        """
        if self._core.queues[conv.queue].config.hosting != "redirect":
            return False
        scheme = (conv.address or "").partition(":")[0]
        theirs = [a for a in agent.addresses if scheme and a.startswith(f"{scheme}:")]
        if not theirs:
            return False
        self._log.info(
            "conversation {conversation} redirected to {agent}'s own address",
            conversation=conv.id,
            agent=agent.name,
        )
        self._core.events.emit("redirected", conv.id, {"agent": agent.name})
        relay = self.relay
        relay.system_line(conv, REDIRECTED.format(alias=agent.alias, address=theirs[0]))
        relay.deliver(agent, ev.Notice(REDIRECTING.format(alias=conv.alias, address=theirs[0])))
        relay.end(conv, "agent")
        self._core.write(self._core.store.update_conversation(conv.id, end_reason="redirected"))
        return True

    def reject(self, session: AgentSession, offer_id: str) -> None:
        """The agent declines an offer."""
        self.dispatcher.reject(session, offer_id)

    # -- conversations -----------------------------------------------------------------

    def end(self, session: AgentSession, conversation: str) -> None:
        """The agent ends a conversation."""
        self.relay.end(self.relay.agent_conversation(session.agent, conversation), "agent")

    def transfer(
        self, session: AgentSession, conversation: str, *, queue: str | None, agent: str | None
    ) -> None:
        """Hand the conversation to a queue or a named colleague."""
        conv = self.relay.agent_conversation(session.agent, conversation)
        if (queue is None) == (agent is None):
            raise BadRequest("transfer needs exactly one of a queue or an agent")
        if queue is not None and queue not in self._core.queues:
            raise Unavailable(f"no such queue: {queue}")
        if agent is not None:
            if agent == session.name:
                raise BadRequest("cannot transfer a conversation to yourself")
            target = self._core.view.get(agent)
            if target is None or not target.has_room:
                raise Unavailable(f"agent {agent} is not available")
        self._log.info(
            "{agent} transfers {conversation} to {target}",
            agent=session.name,
            conversation=conv.id,
            target=queue or agent,
        )
        self._core.events.emit(
            "transferred",
            conv.id,
            {"agent": session.name, "to_queue": queue, "to_agent": agent, "by": "agent"},
        )
        self.leave(conv, session.agent)
        self.relay.deliver(session.agent, ev.Ended(conv.id, "agent"))
        conv.declined.add(session.name)
        conv.task.exclude.add(session.name)
        if agent is not None:
            # Named on purpose: an earlier hand-on by that agent no longer bars it.
            conv.declined.discard(agent)
            conv.task.exclude.discard(agent)
        conv.target_agent = agent
        self.relay.system_line(conv, TRANSFERRED)
        # A bot handing over means "a person, please": no bot takes it back.
        self.dispatcher.requeue(conv, queue, people_only=session.agent.bot, reason="transfer")

    def leave(self, conv: Conversation, agent: LiveAgent) -> None:
        """The agent is no longer in the conversation; wrap-up time may follow."""
        now = self._clock.seconds()
        agent.left(conv.id, conv.protocol, now)
        conv.agent = None
        if conv.connected_at is not None:
            queue = self._core.queues[conv.queue]
            queue.active -= 1
            queue.observe_handle(now - conv.connected_at)
            self._core.metrics.handle_seconds.labels(conv.queue).observe(now - conv.connected_at)
            conv.connected_at = None
        self.dispatcher.remember_agent(conv, agent.name)
        self._core.hooks.left(conv, agent)
        live = agent.session is not None and not agent.session.gone
        if self._config.wrap_up_s and not agent.wrapping_up and live:
            agent.change(wrapping_up=True)
            self._clock.callLater(self._config.wrap_up_s, self._wrapped_up, agent)
        if live:
            self.dispatcher.match()

    def _wrapped_up(self, agent: LiveAgent) -> None:
        if agent.session.gone or not self._core.hooks.wrap_up_over(agent):
            return
        agent.change(wrapping_up=False)
        self.dispatcher.match()

    def reattach(self, agent: LiveAgent) -> None:
        """An agent logged in: give it back the restored conversations that were its."""
        relay = self.relay
        for conv in self.holding.reclaim(agent.name):
            agent.joined(conv.id, conv.protocol)
            conv.agent = agent
            conv.connected_at = self._clock.seconds()
            if conv.queue in self._core.queues:
                self._core.queues[conv.queue].active += 1
            self._log.info(
                "{agent} got back {conversation}", agent=agent.name, conversation=conv.id
            )
            relay.deliver(agent, ev.Connected(conv.id, conv.alias, tuple(conv.history)))
            relay.deliver(conv.customer, ev.Connected(conv.id, agent.alias))

    # -- supervisors ---------------------------------------------------------------------

    def live(self, name: str) -> LiveAgent:
        """The agent logged in on this node as ``name``, or NotAllowed."""
        agent = self._core.local.get(name)
        if agent is None or agent.session is None:
            raise NotAllowed(f"agent {name} is not logged in")
        return agent

    def set_status(self, name: str, status: str) -> None:
        """A supervisor sets a logged-in agent available, away or offline."""
        agent = self.live(name)
        self.presence(agent.session, status)
        self.relay.deliver(agent, ev.Notice(f"A supervisor set you {status}."))

    def logout(self, name: str) -> None:
        """A supervisor logs an agent out; its conversations are requeued."""
        session = self.live(name).session
        self._log.info("supervisor logs {agent} out", agent=name)
        session.party.close("logged out by a supervisor")
        self.gone(session)
