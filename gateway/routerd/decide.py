"""Assignment decisions with live state, as TaskRouter makes them.

``POST /v1/decide`` names a gateway, a conversation, why it is routed (new, requeue,
transfer) and the customer. :func:`decide` classifies the customer with the media's
rules (for a transfer: one target in the named queue, people only when a bot handed
over), then looks at the live state its feed gave it: the gateway's agents whom the
plan's first target admits (skills, location, protocols, named agents, bots or people),
who serve the target's queue (teams and queue skills, as the gateway said), who have
room and the IM software the plan requires, and who did not decline the conversation;
ranked by the target's strategy (longest idle, least occupied, round robin, highest
skill, broadcast). Customers already waiting ahead in that queue (higher priority, or
as high and earlier) keep the agents they will be given: one candidate each is passed
over. What remains, if anything, is *assigned*: the gateway offers it to those agents
first, and otherwise follows the plan.
"""

from __future__ import annotations

from typing import Any

import attrs

from gateway.routerd.state import AgentView, LiveState
from gateway.routing.plan import REMOTE, TRANSFER, Customer, Plan, PlanRequest, Target
from gateway.routing.rules import RuleSet


@attrs.frozen
class Decision:
    """A decision: the plan, and the agents assigned (empty: none) with why."""

    plan: Plan
    agents: tuple[str, ...] = ()
    why: str = ""
    candidates: int = 0
    ahead: int = 0


def _admits(target: Target, agent: AgentView, queue: str) -> bool:
    if target.agents and agent.name not in target.agents:
        return False
    if target.location is not None and agent.location != target.location:
        return False
    if target.protocols and agent.protocol not in target.protocols:
        return False
    if target.bots is not None and agent.bot != target.bots:
        return False
    if not target.agents and queue not in agent.serves:
        return False
    return all(agent.skills.get(s, -1) >= level for s, level in target.skills.items())


def _rank(target: Target, agent: AgentView) -> tuple:
    strategy = target.strategy
    if strategy == "least_occupied":
        return (agent.load / max(1, agent.capacity), agent.idle_since, agent.name)
    if strategy == "round_robin":
        return (agent.last_assigned, agent.name)
    if strategy == "highest_skill":
        levels = [agent.skills.get(s, 0) for s in target.skills]
        return (-max(levels, default=0), agent.idle_since, agent.name)
    return (agent.load, agent.idle_since, agent.name)


def plan_for(rules: RuleSet, customer: Customer, request: PlanRequest) -> Plan:
    """The plan: the rules' classification, narrowed to the queue for a transfer."""
    plan = attrs.evolve(rules.classify(customer), source=REMOTE)
    if request.reason == TRANSFER and request.queue is not None:
        target = Target(queue=request.queue, bots=False if request.people_only else None)
        plan = attrs.evolve(
            plan, targets=(target,), reason=f"transfer to {request.queue}; {plan.reason}"
        )
    elif request.reason != "new":
        plan = attrs.evolve(plan, reason=f"{request.reason}; {plan.reason}")
    return plan


def decide(
    state: LiveState,
    rules: RuleSet,
    customer: Customer,
    request: PlanRequest,
    gateway: str,
    now: float,
) -> Decision:
    """Classify, then assign from ``gateway``'s live agents; see the module doc."""
    plan = plan_for(rules, customer, request)
    target = plan.targets[0]
    queue = target.queue or request.queue
    if queue is None:
        return Decision(plan, why="no queue to assign in")
    admitted = [
        a
        for a in state.agents_of(gateway)
        if a.has_room and a.name not in request.exclude and _admits(target, a, queue)
    ]
    requires = set(plan.requires)
    compatible = [a for a in admitted if requires <= set(a.capabilities) | {"plain_text"}]
    if not compatible and plan.fallback == "translate":
        compatible = admitted  # the gateway converts what their software lacks
    compatible.sort(key=lambda a: _rank(target, a))
    rank = (-plan.priority, now)
    ahead = sum(
        1
        for c in state.waiting(gateway, queue)
        if c.id != request.conversation and (-c.priority, c.arrival or 0.0) <= rank
    )
    free = compatible[ahead:]
    if not free:
        why = f"{len(compatible)} free in {queue}, {ahead} waiting ahead"
        return Decision(plan, why=why, candidates=len(compatible), ahead=ahead)
    wanted = target.broadcast if target.strategy == "broadcast" else 1
    chosen = free[:wanted]
    for agent in chosen:
        agent.last_assigned = now
    names = tuple(a.name for a in chosen)
    why = (
        f"{', '.join(names)} by the routing server ({target.strategy} of"
        f" {len(compatible)} free in {queue}, {ahead} waiting ahead)"
    )
    return Decision(plan, names, why, len(compatible), ahead)


def decision_json(decision: Decision, plan_json: dict[str, Any]) -> dict[str, Any]:
    """The answer of ``POST /v1/decide``: the plan and, if any, the assignment."""
    assigned = None
    if decision.agents:
        assigned = {"agents": list(decision.agents), "reason": decision.why}
    return {
        **plan_json,
        "assigned": assigned,
        "live": {"candidates": decision.candidates, "ahead": decision.ahead, "why": decision.why},
    }
