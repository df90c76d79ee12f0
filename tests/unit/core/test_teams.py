"""Teams and queue membership: queues own agents (gateway.directory.teams)."""

from __future__ import annotations

import tomllib

import pytest
from core_helpers import RulePlans, make_harness, result_of

from gateway.config import QueueConfig
from gateway.core import events as ev
from gateway.directory.teams import NO_TEAMS, Teams
from gateway.routing.rules import RuleSet
from gateway.store.memory import MemoryStore
from gateway.store.records import AgentRecord, TeamRecord

QUEUES = ("general", "billing", "tech")


def harness(rules: str = "", agents=(), queues=None):
    """A gateway whose routing rules are ``rules`` (TOML), with these agent records."""
    queues = queues or {name: QueueConfig(name=name) for name in QUEUES}
    text = rules + '\n[default]\n[[default.targets]]\nstrategy = "longest_idle"\n'
    ruleset = RuleSet.parse(tomllib.loads(text), source="test", queues=queues)
    h = make_harness(agents=(), plans=RulePlans(ruleset), queues=queues)
    for record in agents:
        h.store.add_agent(record)
    return h


def agent(name, skills=None):
    return AgentRecord(
        name=name,
        display_name=name.capitalize(),
        password_hash="hash:secret",
        capacity=2,
        skills=skills or {},
    )


def offered(party) -> list[str]:
    return [o.conversation for o in party.of(ev.Offer)]


BILLING = TeamRecord(name="billing-desk", members=("anna", "bob"), queues=("billing",))
TECH = TeamRecord(name="tech-desk", members=("bob", "carl"), queues=("tech",))


def test_the_model_answers_membership_both_ways():
    teams = Teams.of([BILLING, TECH])
    assert teams.names == ("billing-desk", "tech-desk")
    assert teams.teams_of("bob") == ("billing-desk", "tech-desk")
    assert teams.teams_of("dora") == ()
    assert teams.members_of("tech-desk") == {"bob", "carl"}
    assert teams.queues_of("billing-desk") == {"billing"}
    assert teams.serving("billing") == {"billing-desk"}
    assert teams.members_serving("tech") == {"bob", "carl"}
    # A queue no team serves is open to everyone.
    assert teams.serving("general") is None and teams.members_serving("general") is None
    assert teams.serves((), "general")
    assert teams.serves(("tech-desk",), "tech") and not teams.serves(("tech-desk",), "billing")
    assert NO_TEAMS.serves((), "billing") and len(NO_TEAMS) == 0
    assert [t.name for t in teams] == ["billing-desk", "tech-desk"]


def _connected(h, name="anna", topic="billing"):
    """A customer connected to ``name``; returns (agent party, session, conversation id)."""
    party, session = h.agent(name)
    _, cust = h.queued_customer(topic=topic)
    session.accept(party.last(ev.Offer).offer)
    return party, session, cust.conversation.id


def _teams_harness(queues=None):
    queues = queues or {name: QueueConfig(name=name) for name in QUEUES}
    records = [
        agent("anna", {"billing": 3}),
        agent("bob", {"billing": 1}),
        agent("carl", {"billing": 5}),
        agent("dora", {"billing": 5}),
    ]
    h = harness("", records, queues=queues)
    h.gateway.set_teams(Teams.of([BILLING, TECH]))
    return h


def test_a_transfer_to_a_queue_goes_only_to_its_teams_members():
    h = _teams_harness()
    _anna, anna_s, conv_id = _connected(h, topic="other")
    carl, _ = h.agent("carl")  # skilled, but not in the billing desk
    bob, bob_s = h.agent("bob")
    anna_s.transfer(conv_id, queue="billing")
    assert offered(carl) == []
    assert offered(bob) == [conv_id]
    bob_s.accept(bob.last(ev.Offer).offer)
    assert h.gateway.conversations[conv_id].agent.name == "bob"


def test_a_transfer_to_a_queue_needs_the_queues_skills_too():
    queues = {name: QueueConfig(name=name) for name in QUEUES}
    queues["billing"] = QueueConfig(name="billing", skills={"billing": 2})
    h = _teams_harness(queues)
    anna, anna_s, conv_id = _connected(h, topic="other")
    bob, _ = h.agent("bob")  # a member, billing level 1 only
    anna_s.transfer(conv_id, queue="billing")
    assert offered(bob) == []
    assert h.gateway.conversations[conv_id].state == "queued"
    # Anna (a member, level 3) handed it on, so she is not offered it again: it waits.
    assert offered(anna) == [conv_id]


def test_every_target_in_a_served_queue_is_narrowed_to_its_members():
    rules = """
[[rules]]
name = "billing"
[rules.match]
topic = "billing"
[[rules.targets]]
queue = "billing"
"""
    h = harness(rules, [agent("anna"), agent("carl")])
    h.gateway.set_teams(Teams.of([BILLING]))
    carl, _ = h.agent("carl")
    _, cust = h.queued_customer(topic="billing")
    assert offered(carl) == []
    anna, _ = h.agent("anna")
    assert offered(anna) == [cust.conversation.id]
    # A queue no team serves stays open to everyone.
    _, other = h.queued_customer(topic="other")
    assert offered(carl) == [other.conversation.id]


def test_teams_reloaded_while_running_change_who_is_offered():
    h = harness("", [agent("anna"), agent("carl")])
    general = TeamRecord(name="front", members=("anna",), queues=("general",))
    h.gateway.set_teams(Teams.of([general]))
    _anna, anna_s = h.agent("anna")
    anna_s.set_presence("away")
    carl, _ = h.agent("carl")
    _, cust = h.queued_customer(topic="other")
    assert offered(carl) == []
    # Carl joins the team: the waiting customer is offered to him at once.
    grown = TeamRecord(name="front", members=("anna", "carl"), queues=("general",))
    h.gateway.set_teams(Teams.of([grown]))
    assert offered(carl) == [cust.conversation.id]
    assert h.gateway.core.local.get("carl").presence.teams == ("front",)


def test_named_transfers_are_not_narrowed_by_membership():
    h = _teams_harness()
    _anna, anna_s, conv_id = _connected(h, topic="billing")
    carl, _ = h.agent("carl")  # not a member of the billing desk
    anna_s.transfer(conv_id, agent="carl")
    assert offered(carl) == [conv_id]


def test_agents_carry_their_teams_in_their_presence():
    h = _teams_harness()
    _, bob_s = h.agent("bob")
    assert bob_s.agent.presence.teams == ("billing-desk", "tech-desk")
    assert bob_s.agent.presence.to_dict()["teams"] == ["billing-desk", "tech-desk"]


def test_the_memory_store_keeps_teams():
    store = MemoryStore()
    store.set_teams([TECH, BILLING])
    assert [t.name for t in result_of(store.teams())] == ["billing-desk", "tech-desk"]


@pytest.mark.parametrize("level, offered_to_bob", [(1, True), (2, False)])
def test_queue_skills_apply_without_teams(level, offered_to_bob):
    queues = {name: QueueConfig(name=name) for name in QUEUES}
    queues["billing"] = QueueConfig(name="billing", skills={"billing": level})
    rules = """
[[rules]]
name = "billing"
[rules.match]
topic = "billing"
[[rules.targets]]
queue = "billing"
"""
    h = harness(rules, [agent("bob", {"billing": 1})], queues=queues)
    bob, _ = h.agent("bob")
    _, cust = h.queued_customer(topic="billing")
    assert offered(bob) == ([cust.conversation.id] if offered_to_bob else [])
