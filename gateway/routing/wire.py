"""The routing server's JSON: plans and classification requests, both directions.

The server (``twistd imrouter``) renders with these functions and the gateway's
client (:mod:`gateway.routing.remote`) parses with them, so the two cannot drift.
Parsing is defensive: anything that is not exactly the expected shape raises
:class:`WireError` with a short description, never another exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.routing.plan import (
    CONNECTION,
    FALLBACKS,
    REASONS,
    REMOTE,
    SOURCES,
    STRATEGIES,
    Customer,
    Plan,
    PlanRequest,
    Target,
)

# Bounds on what a peer may send; a classification is small.
MAX_TEXT = 1024
MAX_ITEMS = 256
MAX_TARGETS = 64


class WireError(ValueError):
    """The JSON does not have the expected shape; the message says where."""


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """A plan as a JSON-ready dict (sets become sorted lists)."""
    return {
        "rule": plan.rule,
        "priority": plan.priority,
        "targets": [_target_to_json(t) for t in plan.targets],
        "service": plan.service,
        "requires": sorted(plan.requires),
        "compatibility": plan.compatibility,
        "fallback": plan.fallback,
        "source": plan.source,
        "reason": plan.reason,
    }


def _target_to_json(target: Target) -> dict[str, Any]:
    return {
        "queue": target.queue,
        "skills": dict(target.skills),
        "location": target.location,
        "protocols": sorted(target.protocols),
        "agents": sorted(target.agents),
        "bots": target.bots,
        "strategy": target.strategy,
        "timeout_s": target.timeout_s,
        "broadcast": target.broadcast,
    }


def plan_from_json(data: Any, *, source: str = REMOTE) -> Plan:
    """The plan in a server's reply; ``source`` replaces whatever the reply says.

    Raises :class:`WireError` for any missing, mistyped or out-of-range field.
    """
    plan = _Fields(data, "plan")
    raw_targets = plan.get("targets", list)
    if not raw_targets or len(raw_targets) > MAX_TARGETS:
        raise WireError(f"plan.targets: must hold 1 to {MAX_TARGETS} targets")
    return Plan(
        rule=plan.text("rule"),
        priority=plan.integer("priority"),
        targets=tuple(
            _target_from_json(t, f"plan.targets[{i}]") for i, t in enumerate(raw_targets)
        ),
        service=plan.text("service"),
        requires=plan.names("requires"),
        compatibility=plan.text("compatibility"),
        fallback=plan.choice("fallback", FALLBACKS),
        source=source,
        reason=plan.text("reason", empty=True),
    )


def _target_from_json(data: Any, where: str) -> Target:
    target = _Fields(data, where)
    skills = target.get("skills", dict)
    if len(skills) > MAX_ITEMS:
        raise WireError(f"{where}.skills: more than {MAX_ITEMS} skills")
    for skill, level in skills.items():
        if not _is_text(skill) or not _is_int(level) or not 0 <= level <= 5:
            raise WireError(f"{where}.skills: {skill!r} must map to a level from 0 to 5")
    timeout_s = target.get("timeout_s", (int, float, type(None)))
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not math.isfinite(timeout_s) or timeout_s <= 0
    ):
        raise WireError(f"{where}.timeout_s: must be a positive number or null")
    bots = target.get("bots", (bool, type(None)))
    broadcast = target.integer("broadcast")
    if broadcast < 1:
        raise WireError(f"{where}.broadcast: must be at least 1")
    return Target(
        queue=target.text("queue", optional=True),
        skills=dict(skills),
        location=target.text("location", optional=True),
        protocols=target.names("protocols"),
        agents=target.names("agents"),
        bots=bots,
        strategy=target.choice("strategy", STRATEGIES),
        timeout_s=None if timeout_s is None else float(timeout_s),
        broadcast=broadcast,
    )


def customer_to_json(customer: Customer) -> dict[str, Any]:
    """The body of ``POST /v1/classify`` for a customer (``sources`` when known)."""
    body: dict[str, Any] = {"media": customer.media, "attributes": dict(customer.attributes)}
    if customer.sources:
        body["sources"] = dict(customer.sources)
    return body


def customer_from_json(data: Any) -> Customer:
    """The customer in a ``POST /v1/classify`` body; unknown top-level keys are ignored.

    Raises :class:`WireError` unless ``media`` is a string, ``attributes`` an object
    of strings and ``sources``, when given, an object of attribute -> source
    (``connection``, ``interview``, ``account`` or ``claim``).
    """
    body = _Fields(data, "body")
    media = body.text("media")
    attributes = body.get("attributes", dict)
    if len(attributes) > MAX_ITEMS:
        raise WireError(f"attributes: more than {MAX_ITEMS} attributes")
    for key, value in attributes.items():
        if not _is_text(key) or not key:
            raise WireError(f"attributes: bad attribute name {key!r}")
        if not _is_text(value):
            raise WireError(f"attributes.{key}: must be a string of at most {MAX_TEXT} characters")
    sources = data.get("sources") or {}
    if not isinstance(sources, Mapping) or len(sources) > MAX_ITEMS:
        raise WireError("sources: must be an object of attribute -> source")
    for key, source in sources.items():
        if source not in (CONNECTION, *SOURCES):
            raise WireError(f"sources.{key}: must be one of {', '.join((CONNECTION, *SOURCES))}")
    return Customer(attributes=dict(attributes), media=media, sources=dict(sources))


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Fields:
    """Typed access to one JSON object, naming the path in every error."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise WireError(f"{where}: must be an object")
        self.data, self.where = data, where

    def get(self, name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in self.data:
            raise WireError(f"{self.where}.{name}: missing")
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise WireError(f"{self.where}.{name}: must not be a boolean")
        if not isinstance(value, kinds):
            raise WireError(f"{self.where}.{name}: has the wrong type {type(value).__name__}")
        return value

    def text(self, name: str, *, optional: bool = False, empty: bool = False) -> Any:
        value = self.get(name, (str, type(None)) if optional else str)
        if value is None:
            return None
        if len(value) > MAX_TEXT or (not value and not empty):
            raise WireError(f"{self.where}.{name}: must be 1 to {MAX_TEXT} characters")
        return value

    def integer(self, name: str) -> int:
        value = self.get(name, int)
        if abs(value) > 1_000_000:
            raise WireError(f"{self.where}.{name}: out of range")
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        value = self.get(name, str)
        if value not in options:
            raise WireError(f"{self.where}.{name}: must be one of {', '.join(options)}")
        return value

    def names(self, name: str) -> frozenset[str]:
        value = self.get(name, list)
        if len(value) > MAX_ITEMS or not all(_is_text(v) and v for v in value):
            raise WireError(f"{self.where}.{name}: must be a list of names")
        return frozenset(value)


def request_to_json(
    customer: Customer, request: PlanRequest, *, gateway: str, node: str
) -> dict[str, Any]:
    """The body of ``POST /v1/decide``: the customer, and the request beside it."""
    return {
        **customer_to_json(customer),
        "gateway": gateway,
        "node": node,
        "conversation": request.conversation,
        "reason": request.reason,
        "queue": request.queue,
        "people_only": request.people_only,
        "exclude": sorted(request.exclude),
    }


def request_from_json(data: Any) -> tuple[Customer, PlanRequest, str, str]:
    """(customer, request, gateway, node) of a ``POST /v1/decide`` body; WireError."""
    customer = customer_from_json(data)
    body = _Fields(data, "body")
    reason = body.choice("reason", REASONS)
    people_only = body.get("people_only", bool)
    request = PlanRequest(
        conversation=body.text("conversation"),
        reason=reason,
        queue=body.text("queue", optional=True),
        people_only=people_only,
        exclude=body.names("exclude"),
    )
    return customer, request, body.text("gateway", empty=True), body.text("node", empty=True)


def assignment_from_json(data: Any) -> tuple[tuple[str, ...], str] | None:
    """The agents a decision assigns and why (``assigned`` of a reply), or None."""
    assigned = data.get("assigned") if isinstance(data, Mapping) else None
    if assigned is None:
        return None
    fields = _Fields(assigned, "assigned")
    agents = fields.get("agents", list)
    if not agents or len(agents) > MAX_ITEMS or not all(_is_text(a) and a for a in agents):
        raise WireError("assigned.agents: must be a non-empty list of names")
    return tuple(agents), fields.text("reason")
