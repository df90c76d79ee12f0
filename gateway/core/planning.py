"""What the dispatcher works out about plans: the customer a plan is asked for, the
decision an offer carries, sticky routing's memory, and what the event feed is told.

Plain functions and one small class, apart from the dispatcher's queues and offers.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import attrs

from gateway.core import events as ev
from gateway.core.conversation import Conversation
from gateway.routing.plan import Customer, Plan, Target

# Returning customers remembered for sticky routing, at most.
STICKY_MEMORY = 100_000


def customer_of(conv: Conversation) -> Customer:
    """The customer a plan is asked for: its attributes and where each came from."""
    return Customer.of(
        protocol=conv.protocol,
        client=conv.client.name,
        version=conv.client.version,
        answers=conv.answers,
        sources=conv.interview.sources,
    )


def decision_of(conv: Conversation, queue: str | None) -> ev.Decision:
    """Why the conversation waits where it does (its plan, at its current target)."""
    task = conv.task
    plan = task.plan
    return ev.Decision(
        rule=plan.rule,
        target=task.step + 1,
        strategy=task.target.strategy,
        compatibility=plan.compatibility,
        source=plan.source,
        reason=plan.reason,
        queue=queue,
    )


def checked_assignment(plan: Plan, has_room: Any) -> Plan:
    """``plan`` without its routing server's assignment when none of the agents it
    names has room here now (its view of them is a feed's latency behind ours)."""
    if not plan.assigned or any(has_room(name) for name in plan.assigned):
        return plan
    return attrs.evolve(
        plan,
        targets=plan.targets[1:],
        assigned=(),
        reason=f"{plan.reason} (not free here now: offered by the plan)",
    )


def routed_fields(plan: Plan, why: str = "new") -> dict[str, Any]:
    """The event feed's ``routed`` event: the plan a conversation was given, and why
    it was asked for (new, requeue, transfer)."""
    return {
        "for": why,
        "assigned": list(plan.assigned),
        "rule": plan.rule,
        "priority": plan.priority,
        "compatibility": plan.compatibility,
        "requires": sorted(plan.requires),
        "source": plan.source,
        "reason": plan.reason,
    }


def agent_facts(presence: Any, serves: list[str]) -> dict[str, Any]:
    """The event feed's ``agent_login``: who the agent is, and the queues it serves."""
    return {
        "protocol": presence.protocol,
        "client": presence.client_name,
        "capacity": presence.capacity,
        "skills": dict(presence.skills),
        "location": presence.location,
        "bot": presence.bot,
        "capabilities": sorted(presence.capabilities),
        "teams": list(presence.teams),
        "serves": serves,
    }


class Sticky:
    """Sticky routing: who served a returning customer (its key) last, and when."""

    def __init__(self, sticky_s: float) -> None:
        self.sticky_s = sticky_s
        self._recent: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def first(self, conv: Conversation, plan: Plan, now: float) -> Plan:
        """``plan`` with the customer's previous agent first, for ``sticky_s``."""
        if not self.sticky_s or not conv.key:
            return plan
        last = self._recent.get(conv.key)
        if last is None or now - last[1] > self.sticky_s:
            return plan
        first = Target(
            queue=plan.targets[0].queue, agents=frozenset({last[0]}), timeout_s=self.sticky_s
        )
        return attrs.evolve(plan, targets=(first, *plan.targets))

    def remember(self, conv: Conversation, agent: str, now: float) -> None:
        """Note who served this customer."""
        if not self.sticky_s or not conv.key:
            return
        self._recent[conv.key] = (agent, now)
        self._recent.move_to_end(conv.key)
        while len(self._recent) > STICKY_MEMORY:
            self._recent.popitem(last=False)
