"""What routing decides for a conversation: a plan of targets, tried in order.

A rule (local ``etc/routing.toml`` or the enterprise routing server) classifies the
customer into a :class:`Plan`; the gateway's matching engine then works through the
plan's targets against its live agents, widening the pool at each target's timeout.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

STRATEGIES = ("longest_idle", "least_occupied", "round_robin", "highest_skill", "broadcast")
FALLBACKS = ("translate", "wait", "close")

# Where a plan came from, logged with every decision.
LOCAL = "local"
REMOTE = "remote"
FALLBACK = "fallback"


@attrs.frozen
class Target:
    """One step of a workflow: which agents, from which queue, chosen how.

    ``queue`` None means the queue the customer's topic leads to (see
    ``Config.queue_for_topic``). Agent expression: every agent skill in ``skills``
    at least that level; ``location`` (lan/remote), ``protocols`` (the agent's IM
    protocol), ``agents`` (named accounts) and ``bots`` (True: bots only, False:
    people only) narrow it when set.
    """

    queue: str | None = None
    skills: Mapping[str, int] = attrs.field(factory=dict)
    location: str | None = None
    protocols: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    bots: bool | None = None
    strategy: str = "longest_idle"
    # Seconds at this target before the next one applies; None: stay here.
    timeout_s: float | None = None
    # Agents rung at once with the broadcast strategy; the first accept wins.
    broadcast: int = 1


@attrs.frozen
class Plan:
    """A classified conversation: its rule, priority and workflow, and why."""

    rule: str
    targets: tuple[Target, ...]
    priority: int = 0
    # The compatibility table's verdict: the routing service and what the agent's
    # IM software must support ("typing", "rich_text", ...).
    service: str = "relay"
    requires: frozenset[str] = frozenset()
    compatibility: str = "default"
    # What to do when no logged-in agent is compatible: translate, wait or close.
    fallback: str = "translate"
    source: str = LOCAL
    reason: str = ""
    # Agents the routing server assigned from its live state: the first target names them.
    assigned: tuple[str, ...] = ()


# Where an attribute came from (SOURCES), so that rules trust only some: the
# connection itself (protocol, media), a configured interview question, a verified
# account (the customer's IM server, a site-signed identity), or a customer's claim.
CONNECTION = "connection"
SOURCES = ("interview", "account", "claim")


@attrs.frozen
class Customer:
    """The attributes rules match on, flattened: ``topic``, ``protocol``, ``client``,
    ``version``, ``language``, ``priority`` and ``identity.<field>`` for every
    identity answer. ``media`` is ``chat`` for IM (the routing server also
    classifies email, voice and tasks). ``sources`` says where each attribute came
    from (``connection`` or one of :data:`SOURCES`); an attribute without a source is
    taken as given (its sender vouches for it)."""

    attributes: Mapping[str, str]
    media: str = "chat"
    sources: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def of(
        cls,
        *,
        protocol: str,
        client: str,
        version: str,
        answers: Mapping[str, str],
        sources: Mapping[str, str] | None = None,
    ) -> Customer:
        """Flatten a conversation's known facts into rule attributes.

        ``sources`` maps each answer's field to where it came from; without it, no
        attribute has a source.
        """
        attributes = {"protocol": protocol, "client": client, "version": version}
        where: dict[str, str] = {}
        if sources is not None:
            where = {"protocol": CONNECTION, "client": "claim", "version": "claim"}
        for key, value in answers.items():
            name = key if key in ("topic", "language", "priority") else f"identity.{key}"
            attributes[name] = value
            if sources is not None:
                where[name] = sources.get(key, "claim")
        return cls(attributes=attributes, sources=where)


# Why a conversation is being routed (PlanRequest.reason).
NEW = "new"
REQUEUE = "requeue"
TRANSFER = "transfer"
REASONS = (NEW, REQUEUE, TRANSFER)


@attrs.frozen
class PlanRequest:
    """What the gateway says beside the customer when it asks for a plan, so that the
    routing server can decide with live state and re-plan a requeue or a transfer.

    ``queue``: the queue the customer's topic leads to (new, requeue), or the queue a
    transfer names. ``exclude``: agents who declined or handed it on. ``fallback``:
    the gateway's own plan for a requeue or transfer, used when the server cannot say.
    """

    conversation: str
    reason: str = NEW
    queue: str | None = None
    people_only: bool = False
    exclude: frozenset[str] = frozenset()
    fallback: Plan | None = None


def with_assignment(plan: Plan, agents: tuple[str, ...], why: str, hold_s: float) -> Plan:
    """``plan`` with the agents the routing server chose from live state offered first,
    for ``hold_s`` seconds; then the plan's own targets, as sticky routing does."""
    first = plan.targets[0]
    named = Target(
        queue=first.queue,
        agents=frozenset(agents),
        strategy="broadcast" if len(agents) > 1 else "longest_idle",
        broadcast=max(1, len(agents)),
        timeout_s=hold_s,
    )
    return attrs.evolve(
        plan,
        targets=(named, *plan.targets),
        reason=f"{plan.reason}; assigned {why}",
        assigned=tuple(agents),
    )
