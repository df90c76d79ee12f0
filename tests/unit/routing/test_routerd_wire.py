"""The routing server's JSON, shared by server and client: round trips and defences."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.routing.plan import FALLBACK, FALLBACKS, REMOTE, STRATEGIES, Customer, Plan, Target
from gateway.routing.wire import (
    WireError,
    customer_from_json,
    customer_to_json,
    plan_from_json,
    plan_to_json,
)

names = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
targets = st.builds(
    Target,
    queue=st.none() | names,
    skills=st.dictionaries(names, st.integers(0, 5), max_size=4),
    location=st.none() | st.sampled_from(["lan", "remote"]),
    protocols=st.frozensets(names, max_size=3),
    agents=st.frozensets(names, max_size=3),
    bots=st.none() | st.booleans(),
    strategy=st.sampled_from(STRATEGIES),
    timeout_s=st.none() | st.floats(0.5, 3600),
    broadcast=st.integers(1, 100),
)
plans = st.builds(
    Plan,
    rule=names,
    targets=st.lists(targets, min_size=1, max_size=4).map(tuple),
    priority=st.integers(-1000, 1000),
    service=names,
    requires=st.frozensets(names, max_size=3),
    compatibility=names,
    fallback=st.sampled_from(FALLBACKS),
    source=st.just(REMOTE),
    reason=st.text(max_size=80),
)


@given(plans)
def test_plans_survive_the_wire(plan):
    assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))) == plan


@given(st.dictionaries(names, st.text(max_size=40), max_size=8), names)
def test_customers_survive_the_wire(attributes, media):
    customer = Customer(attributes=attributes, media=media)
    assert customer_from_json(json.loads(json.dumps(customer_to_json(customer)))) == customer


def test_the_source_is_the_readers():
    data = plan_to_json(Plan(rule="r", targets=(Target(),), source="local"))
    assert plan_from_json(data).source == REMOTE
    assert plan_from_json(data, source=FALLBACK).source == FALLBACK


def good() -> dict:
    return plan_to_json(Plan(rule="r", targets=(Target(queue="q", skills={"s": 2}),)))


def with_plan(**changes) -> dict:
    data = good()
    data.update(changes)
    return data


def with_target(**changes) -> dict:
    data = good()
    data["targets"][0].update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "plan: must be an object"),
        ({}, "plan.targets: missing"),
        (with_plan(targets=[]), "plan.targets: must hold 1 to 64 targets"),
        (with_plan(targets=[{}] * 65), "plan.targets: must hold 1 to 64 targets"),
        (with_plan(targets=[3]), "plan.targets[0]: must be an object"),
        (with_plan(rule=""), "plan.rule: must be 1 to 1024 characters"),
        (with_plan(rule="x" * 1025), "plan.rule: must be 1 to 1024 characters"),
        (with_plan(priority=True), "plan.priority: must not be a boolean"),
        (with_plan(priority=1.5), "plan.priority: has the wrong type float"),
        (with_plan(priority=10**9), "plan.priority: out of range"),
        (with_plan(fallback="explode"), "plan.fallback: must be one of"),
        (with_plan(requires="typing"), "plan.requires: has the wrong type str"),
        (with_plan(requires=[1]), "plan.requires: must be a list of names"),
        (with_plan(reason=None), "plan.reason: has the wrong type NoneType"),
        (with_target(strategy="random"), "plan.targets[0].strategy: must be one of"),
        (with_target(skills={"s": 6}), "plan.targets[0].skills: 's' must map to a level"),
        (with_target(skills={"s": True}), "plan.targets[0].skills: 's' must map to a level"),
        (with_target(skills=[]), "plan.targets[0].skills: has the wrong type list"),
        (with_target(timeout_s=0), "plan.targets[0].timeout_s: must be a positive number"),
        (with_target(timeout_s=float("inf")), "plan.targets[0].timeout_s: must be a positive"),
        (with_target(timeout_s="5"), "plan.targets[0].timeout_s: has the wrong type str"),
        (with_target(bots="yes"), "plan.targets[0].bots: has the wrong type str"),
        (with_target(broadcast=0), "plan.targets[0].broadcast: must be at least 1"),
        (with_target(queue=5), "plan.targets[0].queue: has the wrong type int"),
    ],
)
def test_bad_plans_are_refused_with_the_place(data, problem):
    with pytest.raises(WireError) as caught:
        plan_from_json(data)
    assert str(caught.value).startswith(problem), str(caught.value)


def test_extra_fields_in_a_plan_are_ignored():
    assert plan_from_json(with_plan(later="x")).rule == "r"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("chat", "body: must be an object"),
        ({"media": "chat", "attributes": {"": "x"}}, "attributes: bad attribute name ''"),
        ({"media": "chat", "attributes": {"a": "x" * 1025}}, "attributes.a: must be a string"),
        (
            {"media": "chat", "attributes": {f"k{i}": "v" for i in range(257)}},
            "attributes: more than 256 attributes",
        ),
    ],
)
def test_bad_customers_are_refused(data, problem):
    with pytest.raises(WireError) as caught:
        customer_from_json(data)
    assert str(caught.value).startswith(problem), str(caught.value)
