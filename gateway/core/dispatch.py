"""Queues, routing plans, offers: from a finished interview to an accepted offer.

The dispatcher asks the plan source (local rules or the routing server) how to
route a conversation, keeps it in its queue and in the matching engine while it
waits, escalates it along the plan's targets, rings agents, and hands an
accepted conversation back to the gateway core.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway import logs
from gateway.core import events as ev
from gateway.core import positions
from gateway.core.agents import LiveAgent
from gateway.core.context import Core
from gateway.core.conversation import CONNECTED, ENDED, OFFERED, QUEUED, Conversation, PendingOffer
from gateway.core.errors import NotAllowed
from gateway.core.planning import (
    Sticky,
    agent_facts,
    checked_assignment,
    customer_of,
    decision_of,
    routed_fields,
)
from gateway.core.ports import IDispatch, IRelay
from gateway.directory.records import AVAILABLE, AWAY, AgentPresence
from gateway.routing.engine import Engine, Task
from gateway.routing.plan import (
    FALLBACK,
    NEW,
    REQUEUE,
    TRANSFER,
    Plan,
    PlanRequest,
    Target,
)

WAIT_TIMEOUT = "We are sorry, no agent could take your conversation in time."
NO_AGENTS = "We are sorry, no agents are available right now. Please try again later."
QUEUE_FULL = "We are sorry, too many customers are waiting. Please try again later."
CLOSED = "We are closed right now. Please come back during our opening hours."
NOT_COMPATIBLE = "We are sorry, no agent can take a conversation from your IM software now."
SET_AWAY = "You missed {n} offers in a row, so you were set away. Set yourself available again."


@implementer(IDispatch)
class Dispatcher:
    """Runs routing plans against the gateway's live agents."""

    _log = Logger(observer=logs.observer)

    def __init__(self, core: Core, plans: Any) -> None:
        self._core = core
        self._config = core.config
        self._clock = core.clock
        self._queues = core.queues
        self.plans = plans
        self.engine = Engine(self._config.queue_for_topic, self._serves)
        self.offers: dict[str, PendingOffer] = {}
        self._sticky = Sticky(self._config.sticky_s)
        self._matching = False
        self._changed_queues: set[str] = set()
        # Conversations whose offer could not be reserved (Redis away), to retry.
        self._parked: list[Conversation] = []
        # Each agent's status as last seen: a change may change the waits promised.
        self._statuses: dict[str, str | None] = {}
        self.relay: IRelay = None
        # The engine is fed from the directory: this node's agents and, in a
        # cluster, everyone's.
        core.directory.watch(self._presence_changed)

    def _serves(self, queue: str, agent: AgentPresence) -> bool:
        """Queues own agents: the teams serving ``queue`` and its skills admit ``agent``."""
        if not self._core.teams.serves(agent.teams, queue):
            return False
        config = self._queues[queue].config if queue in self._queues else None
        skills = config.skills if config is not None else {}
        return all(agent.skills.get(s, -1) >= level for s, level in skills.items())

    def _free(self, name: str) -> bool:
        presence = self._core.view.get(name)
        return presence is not None and presence.has_room

    def teams_changed(self) -> None:
        """Teams or their queues changed: who may serve which queue is worked out again."""
        self.engine.membership_changed()
        self.match()

    def _presence_changed(self, name: str, presence: AgentPresence | None) -> None:
        status = presence.status if presence is not None else None
        if self._statuses.get(name) != status:
            # Who can serve changed: waits promised (or not) are told again.
            self._statuses[name] = status
            self._changed_queues.update(self._queues)
        if presence is None:
            self._statuses.pop(name, None)
            known = self.engine.agent(name)
            if known is not None:
                self.engine.agent_left(known)
            return
        self.engine.agent_changed(presence)
        if presence.node != self._core.node:
            # Another node's agent changed: it may take what waits here.
            self.match()

    # -- entering the queue -----------------------------------------------

    def agent_facts(self, presence: AgentPresence) -> dict[str, Any]:
        """What the event feed says of an agent at login (skills, teams, queues served)."""
        return agent_facts(presence, sorted(q for q in self._queues if self._serves(q, presence)))

    def route(self, conv: Conversation) -> None:
        """The interview is done: classify the conversation, then queue it."""
        conv.routing = True
        started = self._clock.seconds()
        request = PlanRequest(
            conversation=conv.id, reason=NEW, queue=self._config.queue_for_topic(conv.topic)
        )
        # The desk may first look the customer up (their history, for the offer).
        d = self._core.hooks.before_route(conv) or succeed(None)
        d.addCallback(lambda _: self.plans.plan(customer_of(conv), request))
        d.addCallback(self._planned, conv, started)
        d.addErrback(self._plan_failed, conv, started)

    def _plan_failed(self, failure: Failure, conv: Conversation, started: float) -> None:
        self._log.failure("no plan for {conversation}", failure, conversation=conv.id)
        self._planned(
            Plan(rule="default", targets=(Target(),), source=FALLBACK, reason="planning failed"),
            conv,
            started,
        )

    def _planned(self, plan: Plan, conv: Conversation, started: float | None = None) -> None:
        if started is not None:
            metrics = self._core.metrics
            metrics.decision_seconds.observe(max(0.0, self._clock.seconds() - started))
            metrics.decisions.labels(plan.source).inc()
        conv.routing = False
        if conv.state == ENDED:
            return
        self._log.info(
            "conversation {conversation} planned by {source} rules: rule {rule} ({reason})",
            conversation=conv.id,
            source=plan.source,
            rule=plan.rule,
            reason=plan.reason,
        )
        plan = checked_assignment(plan, self._free)
        self._core.events.emit("routed", conv.id, routed_fields(plan))
        plan = self._sticky.first(conv, plan, self._clock.seconds())
        task = Task(
            id=conv.id,
            plan=plan,
            protocol=conv.protocol,
            arrival=(0.0, 0),
            owner=conv,
            topic=conv.topic,
            requires=plan.requires,
        )
        conv.task = task
        if plan.requires and not self.engine.any_compatible(plan.requires):
            if plan.fallback == "close":
                self.relay.system_line(conv, NOT_COMPATIBLE)
                self.relay.end(conv, "no_agents")
                return
            if plan.fallback == "translate":
                # The gateway renders what the agent's software lacks as plain text.
                task.requires = frozenset()
        self._place(conv, self.engine.queue_of(task))

    def remember_agent(self, conv: Conversation, agent: str) -> None:
        """Note who served this customer, for sticky routing."""
        self._sticky.remember(conv, agent, self._clock.seconds())

    def requeue(
        self,
        conv: Conversation,
        queue: str | None = None,
        *,
        people_only: bool = False,
        reason: str = "requeue",
    ) -> None:
        """Back in line after an agent dropped or transferred it (keeping its place).

        A transfer to a named colleague is decided here; otherwise the plan source is
        asked again (a routing server re-plans with its live state), with the plan the
        gateway would follow as the fallback: the same plan at the same target after a
        drop, one target in the named queue after a transfer there.
        """
        if conv.task is None:
            self.route(conv)
            return
        task = conv.task
        plan = task.plan
        if queue is not None:
            # A transfer to a queue: one target there, the queue's members.
            target = Target(queue=queue, bots=False if people_only else None)
            plan = attrs.evolve(plan, targets=(target,), reason="transfer")
        named = conv.target_agent
        self._core.events.emit(
            "requeued", conv.id, {"reason": reason, "queue": queue, "to_agent": named}
        )
        if named is not None:
            # Should the colleague go away unanswering, the plan goes on after a while.
            first = Target(
                queue=conv.queue,
                agents=frozenset({named}),
                timeout_s=2 * self._config.offer_timeout_s,
            )
            plan = attrs.evolve(plan, targets=(first, *plan.targets), reason="transfer")
            self._replan(conv, plan, keep_step=False)
            return
        token = conv.routing = object()
        conv.state = QUEUED
        request = PlanRequest(
            conversation=conv.id,
            reason=TRANSFER if queue is not None else REQUEUE,
            queue=queue or conv.queue,
            people_only=people_only,
            exclude=frozenset(task.exclude),
            fallback=plan,
        )
        started = self._clock.seconds()
        d = maybeDeferred(self.plans.plan, customer_of(conv), request)
        d.addErrback(self._replan_failed, conv, plan)
        why = request.reason
        d.addCallback(self._replanned, conv, token, plan, queue is None, started, why)

    def _replan_failed(self, failure: Failure, conv: Conversation, plan: Plan) -> Plan:
        self._log.failure("no new plan for {conversation}", failure, conversation=conv.id)
        return plan

    def _replanned(
        self,
        plan: Plan,
        conv: Conversation,
        token: object,
        own: Plan,
        keep_step: bool,
        started: float,
        why: str,
    ) -> None:
        if conv.routing is not token:
            return  # a later requeue (or the end) took over
        conv.routing = False
        metrics = self._core.metrics
        metrics.decision_seconds.observe(max(0.0, self._clock.seconds() - started))
        metrics.decisions.labels(plan.source).inc()
        if conv.state == ENDED:
            return
        plan = checked_assignment(plan, self._free)
        self._core.events.emit("routed", conv.id, routed_fields(plan, why))
        if plan is not own:
            self._log.info(
                "conversation {conversation} re-planned by {source} rules: rule {rule} ({reason})",
                conversation=conv.id,
                source=plan.source,
                rule=plan.rule,
                reason=plan.reason,
            )
        self._replan(conv, plan, keep_step=keep_step and plan.targets == own.targets)

    def _replan(self, conv: Conversation, plan: Plan, *, keep_step: bool) -> None:
        task = conv.task
        task.plan = plan
        if not keep_step:
            task.step = 0
        self._place(conv, self.engine.queue_of(task))

    def _place(self, conv: Conversation, queue_name: str) -> None:
        """Put the conversation in a queue, honouring its hours and limits."""
        queue = self._queues[queue_name]
        now = self._clock.seconds()
        if not queue.config.hours.is_open(now):
            self.relay.system_line(conv, CLOSED)
            self.relay.end(conv, "closed")
            return
        if len(queue) >= queue.config.max_waiting and conv not in queue:
            overflow = queue.config.overflow
            if overflow is not None and overflow != queue_name:
                self._log.info(
                    "{queue} is full: {conversation} overflows to {overflow}",
                    queue=queue_name,
                    conversation=conv.id,
                    overflow=overflow,
                )
                self._move_to_queue(conv, overflow)
                return
            self.relay.system_line(conv, QUEUE_FULL)
            self.relay.end(conv, "no_agents")
            return
        if self._config.when_no_agents == "end" and not len(self._core.view):
            self.relay.system_line(conv, NO_AGENTS)
            self.relay.end(conv, "no_agents")
            return
        conv.decision = decision_of(conv, queue_name)
        self._core.write(
            self._core.store.update_conversation(
                conv.id,
                state=QUEUED,
                queue=queue_name,
                topic=conv.topic,
                identity=dict(conv.answers),
                agent=None,
                routing=conv.decision.to_dict(),
            )
        )
        if conv.queue is not None and conv.queue != queue_name:
            self._queues[conv.queue].remove(conv)
            self._changed_queues.add(conv.queue)
        conv.queue = queue_name
        conv.state = QUEUED
        conv.agent = None
        conv.mark_arrival(now)
        conv.task.arrival = conv.arrival
        queue.add(conv)
        self._changed_queues.add(queue_name)
        self.relay.start_timer(conv, queue.config.max_wait_s, self._wait_timed_out)
        self._core.events.emit(
            "queued",
            conv.id,
            {
                "queue": queue_name,
                "priority": conv.task.priority,
                "rule": conv.task.plan.rule,
                "target": conv.task.step + 1,
                "arrival": conv.arrival[0],
            },
        )
        self._log.info(
            "conversation {conversation} queued in {queue} (rule {rule}, priority {priority})",
            conversation=conv.id,
            queue=queue_name,
            rule=conv.task.plan.rule,
            priority=conv.task.priority,
        )
        self._enter_step(conv)
        self.match()

    def _move_to_queue(self, conv: Conversation, queue_name: str) -> None:
        plan = conv.task.plan
        conv.task.plan = attrs.evolve(plan, targets=(Target(queue=queue_name),), reason="overflow")
        conv.task.step = 0
        self._place(conv, queue_name)

    def _enter_step(self, conv: Conversation) -> None:
        task = conv.task
        self._cancel_step(conv)
        if conv.customer.gone:
            # Nobody to talk to: it keeps its place in line, unoffered, until the
            # customer is back (the holder requeues it then).
            self.engine.remove(task)
            return
        self.engine.add(task)
        timeout = task.target.timeout_s
        if timeout is not None and task.step + 1 < len(task.plan.targets):
            conv.step_timer = self._clock.callLater(timeout, self._escalate, conv)

    def _cancel_step(self, conv: Conversation) -> None:
        if conv.step_timer is not None and conv.step_timer.active():
            conv.step_timer.cancel()
        conv.step_timer = None

    def _escalate(self, conv: Conversation) -> None:
        """The target's timeout passed (or its named agents all declined): widen."""
        # Called early by _ring_over, the step's timer is still pending: cancel it,
        # or it would widen a second time, past the plan's last target.
        self._cancel_step(conv)
        if not conv.waiting or conv.task.step + 1 >= len(conv.task.plan.targets):
            return
        task = conv.task
        task.step += 1
        queue = self.engine.queue_of(task)
        self._log.info(
            "conversation {conversation} escalates to target {step} of rule {rule}",
            conversation=conv.id,
            step=task.step + 1,
            rule=task.plan.rule,
        )
        self._core.events.emit("escalated", conv.id, {"target": task.step + 1, "queue": queue})
        if queue != conv.queue:
            self.engine.remove(task)
            self._place(conv, queue)
            return
        self._enter_step(conv)
        self.match()

    def _wait_timed_out(self, conv: Conversation) -> None:
        if not conv.waiting:
            return
        overflow = self._queues[conv.queue].config.overflow
        if overflow is not None and overflow != conv.queue:
            self._move_to_queue(conv, overflow)
            return
        self.relay.system_line(conv, WAIT_TIMEOUT)
        self.relay.end(conv, "no_agents")

    # -- matching and offers ----------------------------------------------

    def match(self) -> None:
        """Turn every possible match into offers, then update queue positions."""
        if self._matching:
            return
        cluster = self._core.cluster
        if cluster is not None and not cluster.available:
            # No seat can be reserved while Redis is away: matched when it is back.
            self._send_positions()
            return
        self._matching = True
        try:
            parked, self._parked = self._parked, []
            for conv in parked:
                if conv.state == QUEUED and conv.task is not None:
                    self.engine.retry(conv.task)
            local = self._core.local
            for task, agents in self.engine.matches():
                for presence in agents:
                    agent = local.get(presence.name)
                    if agent is None and cluster is not None:
                        # Another node's agent: offered through the cluster.
                        agent = cluster.proxy(presence)
                    if agent is not None:
                        self._offer(task.owner, agent)
        finally:
            self._matching = False
        self._send_positions()

    def _offer(self, conv: Conversation, agent: LiveAgent) -> None:
        timeout = self._config.offer_timeout_s
        decision = decision_of(conv, conv.queue)
        lacking = conv.task.plan.requires - agent.presence.capabilities
        if lacking:
            decision = attrs.evolve(decision, translated=tuple(sorted(lacking)))
        offer = PendingOffer(
            id=self._core.ids.offer(), conversation=conv, agent=agent.name, decision=decision
        )
        offer.timer = self._clock.callLater(timeout, self._offer_lapsed, offer)
        self.offers[offer.id] = offer
        agent.offered(offer.id)
        conv.offers[offer.id] = offer
        conv.task.ringing.add(agent.name)
        conv.state = OFFERED
        self._core.metrics.offers.inc()
        self._core.events.emit(
            "offered",
            conv.id,
            {
                "agent": agent.name,
                "offer": offer.id,
                "target": decision.target,
                "strategy": decision.strategy,
            },
        )
        plan = conv.task.plan
        self._log.info(
            "offered {conversation} to {agent} (rule {rule}, target {step}, {strategy},"
            " service {service}; {source}: {reason})",
            conversation=conv.id,
            agent=agent.name,
            rule=plan.rule,
            step=conv.task.step + 1,
            strategy=conv.task.target.strategy,
            service=plan.service,
            source=plan.source,
            reason=plan.reason,
        )
        card = ev.CustomerCard(
            alias=conv.alias,
            protocol=conv.protocol,
            client=conv.client,
            topic=conv.topic,
            identity={k: v for k, v in conv.answers.items() if k != "topic"},
            history=conv.past,
        )
        event = ev.Offer(offer.id, conv.id, round(timeout), card, decision)
        cluster = self._core.cluster
        if cluster is None:
            self.relay.deliver(agent, event)
            return
        # Rung only once its seat is reserved in Redis, atomically against every node.
        d = cluster.reserve(agent, offer.id, conv.protocol)
        d.addCallback(self._reserved, offer, agent, event)

    def _reserved(self, ok: bool | None, offer: PendingOffer, agent: LiveAgent, event: Any) -> None:
        if self.offers.get(offer.id) is not offer:
            # Taken back meanwhile (the customer left, another agent accepted).
            return
        if ok:
            self.relay.deliver(agent, event)
            return
        conv = offer.conversation
        self._take_offer(offer)
        if ok is None:
            # Redis is away: matched again when it is back (not now: it would loop).
            if conv.state == OFFERED and not conv.offers:
                conv.state = QUEUED
                self._parked.append(conv)
            return
        # The agent had no room after all (another node reserved it first): next one.
        latest = self._core.view.get(agent.name)
        if latest is not None and latest.has_room:
            # Redis and this node disagree until the next change: leave it out meanwhile.
            conv.task.exclude.add(agent.name)
        self._ring_over(conv)
        self.match()

    def _agent(self, name: str) -> LiveAgent | None:
        """The agent named ``name``: logged in here, or (in a cluster) elsewhere."""
        agent = self._core.local.get(name)
        if agent is None and self._core.cluster is not None:
            agent = self._core.cluster.proxy_named(name)
        return agent

    def _take_offer(self, offer: PendingOffer) -> None:
        """Forget an offer: the agent's room and the conversation's ring are freed."""
        self.offers.pop(offer.id, None)
        if offer.timer is not None and offer.timer.active():
            offer.timer.cancel()
        offer.timer = None
        conv = offer.conversation
        conv.offers.pop(offer.id, None)
        if conv.task is not None:
            conv.task.ringing.discard(offer.agent)
        agent = self._agent(offer.agent)
        if agent is not None:
            agent.unoffered(offer.id)

    def _ring_over(self, conv: Conversation) -> None:
        """No offer rings any more: match the conversation again."""
        if conv.state == OFFERED and not conv.offers:
            conv.state = QUEUED
            task = conv.task
            named = task.target.agents
            if named and named <= task.exclude and task.step + 1 < len(task.plan.targets):
                # Every agent this target names has declined: widen at once.
                self._escalate(conv)
                return
            self.engine.retry(task)

    def pending(self, session: Any, offer_id: str) -> PendingOffer:
        """The agent's own live offer, or NotAllowed."""
        offer = self.offers.get(offer_id)
        if offer is None or offer.agent != session.name:
            raise NotAllowed(f"no such offer: {offer_id}")
        return offer

    def _revoke(self, offer: PendingOffer, reason: str) -> None:
        self._core.events.emit(
            "revoked",
            offer.conversation.id,
            {"agent": offer.agent, "offer": offer.id, "reason": reason},
        )
        agent = self._agent(offer.agent)
        if agent is not None:
            self.relay.deliver(agent, ev.Revoked(offer.id, reason))

    def _offer_lapsed(self, offer: PendingOffer) -> None:
        offer.timer = None
        conv = offer.conversation
        self._core.metrics.timeouts.inc()
        self._core.events.emit("lapsed", conv.id, {"agent": offer.agent, "offer": offer.id})
        self._take_offer(offer)
        self._revoke(offer, "timeout")
        conv.task.exclude.add(offer.agent)
        self._log.info(
            "offer of {conversation} to {agent} timed out", conversation=conv.id, agent=offer.agent
        )
        agent = self._agent(offer.agent)
        if agent is not None:
            lapses = agent.lapses + 1
            if lapses >= self._config.max_lapsed_offers and agent.status == AVAILABLE:
                agent.change(lapses=lapses, status=AWAY)
                self._log.info("agent {agent} set away after lapsed offers", agent=agent.name)
                self.relay.deliver(agent, ev.Notice(SET_AWAY.format(n=lapses)))
            else:
                agent.change(lapses=lapses)
        conv.lapsed.add(offer.agent)
        if not conv.offers and not self._others_could_take(conv):
            # Nobody else can: ring the agents who did not answer again.
            conv.task.exclude = set(conv.declined)
        self._ring_over(conv)
        self.match()

    def _others_could_take(self, conv: Conversation) -> bool:
        # Only on a lapse (every offer_timeout_s at most), and only the target's members.
        task = conv.task
        if task.pool is None:
            return False
        view = self._core.view
        return any(
            name not in task.exclude and (a := view.get(name)) is not None and a.has_room
            for name in task.pool.members
        )

    def accept(self, session: Any, offer_id: str) -> Conversation:
        """The agent takes the conversation; other rings are revoked (taken)."""
        offer = self.pending(session, offer_id)
        conv = offer.conversation
        self._take_offer(offer)
        for other in list(conv.offers.values()):
            self._take_offer(other)
            self._revoke(other, "taken")
        agent = session.agent
        if agent.lapses:
            agent.change(lapses=0)
        self.withdraw(conv)
        conv.decision = offer.decision
        conv.translated = frozenset(offer.decision.translated) if offer.decision else frozenset()
        self._queues[conv.queue].active += 1
        conv.connected_at = self._clock.seconds()
        self._core.metrics.accepts.inc()
        waited = None
        if conv.arrival is not None:
            waited = max(0.0, conv.connected_at - conv.arrival[0])
            self._core.metrics.wait_seconds.labels(conv.queue).observe(waited)
        self._core.events.emit(
            "accepted",
            conv.id,
            {"agent": agent.name, "offer": offer.id, "queue": conv.queue, "waited_s": waited},
        )
        return conv

    def reject(self, session: Any, offer_id: str) -> None:
        """The agent declines: never offered this conversation again."""
        offer = self.pending(session, offer_id)
        conv = offer.conversation
        self._take_offer(offer)
        self._core.metrics.rejects.inc()
        self._core.events.emit("rejected", conv.id, {"agent": session.name, "offer": offer.id})
        if session.agent.lapses:
            session.agent.change(lapses=0)
        conv.task.exclude.add(session.name)
        conv.declined.add(session.name)
        if conv.target_agent == session.name:
            conv.target_agent = None
        self._log.info("{agent} rejected {conversation}", agent=session.name, conversation=conv.id)
        self._ring_over(conv)
        self.match()

    def withdraw(self, conv: Conversation, reason: str = "customer_left") -> None:
        """The conversation stops waiting (connected or ended): out of queue and engine."""
        for offer in list(conv.offers.values()):
            self._take_offer(offer)
            self._revoke(offer, reason)
        self._cancel_step(conv)
        if conv.task is not None:
            self.engine.remove(conv.task)
        if conv.queue is not None and conv in self._queues[conv.queue]:
            self._queues[conv.queue].remove(conv)
            self._changed_queues.add(conv.queue)
        conv.last_sent_position = None

    def set_aside(self, conv: Conversation) -> None:
        """Its customer is away: offers revoked, matched no more until requeued; it keeps
        its place in line."""
        for offer in list(conv.offers.values()):
            self._take_offer(offer)
            self._revoke(offer, "customer_left")
        self._cancel_step(conv)
        if conv.task is not None:
            self.engine.remove(conv.task)
        if conv.state == OFFERED:
            conv.state = QUEUED

    def agent_left(self, agent: LiveAgent) -> None:
        """A logged-out agent's rings end; its conversations are the core's to requeue."""
        self.engine.agent_left(agent.presence)
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._take_offer(offer)
                self._ring_over(offer.conversation)

    def _send_positions(self) -> None:
        changed, self._changed_queues = self._changed_queues, set()
        servable: dict[Any, bool] = {}
        view = self._core.view
        for name in changed:
            queue = self._queues[name]
            for position, conv in enumerate(queue.in_order(), 1):
                current = (position, positions.eta(view, queue, conv, position, servable))
                if conv.last_sent_position != current and conv.state != CONNECTED:
                    conv.last_sent_position = current
                    self.relay.deliver(conv.customer, ev.Queued(*current))

    def queued(self, conv: Conversation) -> ev.Queued | None:
        """Where a waiting conversation stands now (None when it is not in line)."""
        queue = self._queues.get(conv.queue) if conv.queue is not None else None
        return positions.standing(self._core.view, queue, conv)
