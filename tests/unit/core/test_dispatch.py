"""Routing through the core: rules, skills, escalation, strategies, queues, offers."""

from __future__ import annotations

import tomllib

import attrs
from core_helpers import FakeParty, RulePlans, make_harness, result_of

from gateway.config import QueueConfig
from gateway.core import events as ev
from gateway.hours import Hours
from gateway.routing.rules import RuleSet
from gateway.store.records import AgentRecord

QUEUES = ("general", "billing", "tech")


def harness(rules: str = "", agents=(), queues=None, **changes):
    """A gateway whose routing rules are ``rules`` (TOML), with these agent records."""
    queues = queues or {name: QueueConfig(name=name) for name in QUEUES}
    text = rules + '\n[default]\n[[default.targets]]\nstrategy = "longest_idle"\n'
    ruleset = RuleSet.parse(tomllib.loads(text), source="test", queues=queues)
    h = make_harness(agents=(), plans=RulePlans(ruleset), queues=queues, **changes)
    for record in agents:
        h.store.add_agent(record)
    return h


def agent(name, skills=None, capacity=2, **more):
    return AgentRecord(
        name=name,
        display_name=name.capitalize(),
        password_hash="hash:secret",
        capacity=capacity,
        skills=skills or {},
        **more,
    )


def offered(party) -> list[str]:
    return [o.conversation for o in party.of(ev.Offer)]


BILLING_BY_SKILL = """
[[rules]]
name = "billing"
[rules.match]
topic = "billing"
[[rules.targets]]
queue = "billing"
skills = { billing = 4 }
timeout_s = 30
[[rules.targets]]
queue = "billing"
skills = { billing = 1 }
"""


def test_skill_level_decides_and_escalation_widens_the_pool():
    h = harness(BILLING_BY_SKILL, [agent("anna", {"billing": 2}), agent("bob", {"billing": 5})])
    anna, _ = h.agent("anna")
    h.clock.advance(5)
    _bob, bob_s = h.agent("bob")
    bob_s.set_presence("away")
    _, cust = h.queued_customer(topic="billing")
    conv = cust.conversation
    assert conv.queue == "billing"
    # Anna is idle longest but below billing 4: nobody is offered it yet.
    assert offered(anna) == []
    h.clock.advance(29)
    assert offered(anna) == []
    h.clock.advance(1)
    assert offered(anna) == [conv.id]


def test_skilled_agent_is_preferred_over_the_longest_idle():
    h = harness(BILLING_BY_SKILL, [agent("anna", {"billing": 2}), agent("bob", {"billing": 5})])
    anna, _ = h.agent("anna")
    h.clock.advance(5)
    bob, _ = h.agent("bob")
    _, cust = h.queued_customer(topic="billing")
    assert offered(bob) == [cust.conversation.id] and offered(anna) == []


def test_broadcast_first_accept_wins_and_the_others_are_revoked():
    rules = """
[[rules]]
name = "all-hands"
[rules.match]
topic = "*"
[[rules.targets]]
strategy = "broadcast"
broadcast = 2
"""
    h = harness(rules, [agent("anna"), agent("bob"), agent("carl")])
    anna, _ = h.agent("anna")
    bob, _bob_s = h.agent("bob")
    carl, _ = h.agent("carl")
    cust_party, cust = h.queued_customer()
    rung = [p for p in (anna, bob, carl) if p.of(ev.Offer)]
    assert len(rung) == 2
    winner, loser = rung
    name = h.gateway.dispatcher.offers[winner.last(ev.Offer).offer].agent
    h.directory.get(name).session.accept(winner.last(ev.Offer).offer)
    assert loser.last(ev.Revoked) == ev.Revoked(loser.last(ev.Offer).offer, "taken")
    assert cust_party.last(ev.Connected).conversation == cust.conversation.id


def test_priority_then_arrival():
    rules = """
[[rules]]
name = "vip"
priority = 10
[rules.match]
"identity.tier" = "vip"
[[rules.targets]]

[trust]
# Here the hello's tier is trusted (gateway.routing.trust); by default it is not.
"identity.tier" = ["claim"]
"""
    h = harness(rules, [agent("anna", capacity=1)])
    _, _first = h.customer({"name": "Norm", "topic": "billing"})
    _, vip = h.customer({"name": "Vera", "topic": "billing", "tier": "VIP"})
    assert vip.conversation.task.priority == 10
    anna, _ = h.agent("anna")
    assert offered(anna) == [vip.conversation.id]


def test_closed_hours_end_with_reason_closed():
    queues = {name: QueueConfig(name=name) for name in QUEUES}
    # The Clock starts on Thursday 1970-01-01.
    queues["general"] = QueueConfig(name="general", hours=Hours.parse(["mon 09:00-17:00"]))
    h = harness("", [agent("anna")], queues=queues)
    party, _ = h.queued_customer(topic="other")
    assert party.last(ev.Ended).reason == "closed"
    assert "closed" in party.of(ev.Message)[-1].text


def test_full_queue_overflows_to_another():
    queues = {name: QueueConfig(name=name) for name in QUEUES}
    queues["billing"] = QueueConfig(name="billing", topics=("billing",), max_waiting=1,
                                    overflow="general")  # fmt: skip
    h = harness("", [agent("anna")], queues=queues)
    _, one = h.queued_customer(topic="billing")
    _, two = h.queued_customer(topic="billing")
    assert one.conversation.queue == "billing"
    assert two.conversation.queue == "general"
    assert two.conversation.state == "queued"


def test_wait_limit_overflows_then_ends_politely():
    queues = {name: QueueConfig(name=name) for name in QUEUES}
    queues["billing"] = QueueConfig(name="billing", topics=("billing",), max_wait_s=60,
                                    overflow="general")  # fmt: skip
    h = harness("", [], queues=queues)
    party, cust = h.queued_customer(topic="billing")
    h.clock.advance(60)
    assert cust.conversation.queue == "general"
    h.clock.advance(900)
    assert party.last(ev.Ended).reason == "no_agents"


def test_sticky_routing_prefers_the_previous_agent():
    h = harness("", [agent("anna"), agent("bob")], sticky_s=300)
    anna, anna_s = h.agent("anna")
    h.clock.advance(1)
    bob, _bob_s = h.agent("bob")
    _, first = h.customer({"name": "Dana", "topic": "billing", "email": "dana@example.org"})
    anna_s.accept(anna.last(ev.Offer).offer)
    first.end()
    h.clock.advance(10)  # Anna is now idle for less time than Bob
    _, again = h.customer({"name": "Dana", "topic": "tech", "email": "Dana@Example.org"})
    assert offered(anna)[-1] == again.conversation.id
    assert offered(bob) == []


def test_wrap_up_holds_offers():
    h = harness("", [agent("anna", capacity=1)], wrap_up_s=10)
    anna, anna_s = h.agent("anna")
    _, one = h.queued_customer()
    anna_s.accept(anna.last(ev.Offer).offer)
    anna_s.end(one.conversation.id)
    assert anna_s.agent.state == "wrap_up"
    _, two = h.queued_customer()
    assert offered(anna) == [one.conversation.id]
    h.clock.advance(10)
    assert offered(anna) == [one.conversation.id, two.conversation.id]


def test_lapsed_offers_set_the_agent_away():
    h = harness("", [agent("anna"), agent("bob")], max_lapsed_offers=2)
    anna, anna_s = h.agent("anna")
    h.clock.advance(1)
    bob, bob_s = h.agent("bob")
    bob_s.set_presence("away")
    _, cust = h.queued_customer()
    h.clock.advance(20)
    assert anna_s.agent.status == "available" and anna_s.agent.lapses == 1
    h.clock.advance(20)  # rung again (nobody else), lapses again
    assert anna_s.agent.status == "away"
    assert "set away" in anna.last(ev.Notice).text
    bob_s.set_presence("available")
    assert offered(bob) == [cust.conversation.id]


def test_rejecting_agent_never_gets_it_again():
    h = harness("", [agent("anna"), agent("bob")])
    anna, anna_s = h.agent("anna")
    _, cust = h.queued_customer()
    anna_s.reject(anna.last(ev.Offer).offer)
    h.clock.advance(100)
    assert offered(anna) == [cust.conversation.id]
    bob, _ = h.agent("bob")
    assert offered(bob) == [cust.conversation.id]


COMPAT = """
[compatibility]
fallback = "{fallback}"
[[compatibility.entries]]
name = "widget"
client = "acme"
service = "relay"
requires = ["typing"]
"""


def typing_agent(h, name):
    party = FakeParty()
    session = result_of(
        h.gateway.agent_login(
            party,
            protocol="jsonim",
            name=name,
            password="secret",
            client=ev.ClientInfo("desk", "1"),
            features=frozenset({"typing"}),
        )
    )
    session.set_presence("available")
    return party, session


def test_compatibility_only_capable_agents_are_offered():
    h = harness(COMPAT.format(fallback="wait"), [agent("anna"), agent("bob")])
    anna, _ = h.agent("anna")  # no typing
    _party, cust = h.queued_customer()
    assert cust.conversation.task.plan.compatibility == "widget"
    assert offered(anna) == []
    bob, _ = typing_agent(h, "bob")
    assert offered(bob) == [cust.conversation.id]


def test_compatibility_fallbacks():
    h = harness(COMPAT.format(fallback="close"), [agent("anna")])
    h.agent("anna")
    party, _ = h.queued_customer()
    assert party.last(ev.Ended).reason == "no_agents"
    h = harness(COMPAT.format(fallback="translate"), [agent("anna")])
    anna, _ = h.agent("anna")
    _, cust = h.queued_customer()
    assert offered(anna) == [cust.conversation.id]


def test_bot_first_then_people():
    rules = """
[[rules]]
name = "bot-first"
[rules.match]
topic = "*"
[[rules.targets]]
bots = true
timeout_s = 30
[[rules.targets]]
bots = false
"""
    h = harness(rules, [agent("helpbot", bot=True), agent("anna")])
    bot, bot_s = h.agent("helpbot")
    anna, _ = h.agent("anna")
    _, cust = h.queued_customer()
    assert offered(bot) == [cust.conversation.id] and offered(anna) == []
    bot_s.accept(bot.last(ev.Offer).offer)
    bot_s.transfer(cust.conversation.id, queue="general")
    assert offered(anna) == [cust.conversation.id]


def test_strategies_order_agents():
    def first_offered(strategy, setup):
        rules = f'[[rules]]\nname = "s"\n[rules.match]\ntopic = "*"\n[[rules.targets]]\n' \
                f'strategy = "{strategy}"\nskills = {{ tech = 0 }}\n'  # fmt: skip
        h = harness(rules, [agent("anna", {"tech": 1}, capacity=4),
                            agent("bob", {"tech": 5}, capacity=2)])  # fmt: skip
        parties = {n: h.agent(n) for n in ("anna", "bob")}
        setup(h, parties)
        _, cust = h.queued_customer()
        return next(n for n, (p, _) in parties.items() if cust.conversation.id in offered(p))

    def busy_anna(h, parties):
        # Anna holds one of four; Bob one of two: Anna is less occupied.
        for name in ("anna", "bob"):
            p, s = parties[name]
            s.set_presence("away")
        for name in ("anna", "bob"):
            p, s = parties[name]
            s.set_presence("available")
            _, _c = h.queued_customer()
            s.accept(p.last(ev.Offer).offer)
            s.set_presence("away")
        for _, s in parties.values():
            s.set_presence("available")

    assert first_offered("highest_skill", lambda h, p: None) == "bob"
    assert first_offered("longest_idle", lambda h, p: None) == "anna"
    assert first_offered("least_occupied", busy_anna) == "anna"


def test_every_decision_names_its_rule_in_the_plan():
    h = harness(BILLING_BY_SKILL, [agent("bob", {"billing": 5})])
    h.agent("bob")
    _, cust = h.queued_customer(topic="billing")
    plan = cust.conversation.task.plan
    assert (plan.rule, plan.source) == ("billing", "local")
    assert "billing" in plan.reason
    assert attrs.evolve(plan).targets[0].skills == {"billing": 4}


def test_transfer_to_a_named_agent_who_declines_goes_back_to_the_queue():
    h = harness("", [agent("anna"), agent("bob"), agent("carl")])
    anna, anna_s = h.agent("anna")
    _, cust = h.queued_customer()
    conv_id = cust.conversation.id
    anna_s.accept(anna.last(ev.Offer).offer)
    bob, bob_s = h.agent("bob")
    carl, carl_s = h.agent("carl")
    carl_s.set_presence("away")
    anna_s.transfer(conv_id, agent="bob")
    bob_s.reject(bob.last(ev.Offer).offer)
    carl_s.set_presence("available")
    assert offered(carl) == [conv_id]
    carl_s.accept(carl.last(ev.Offer).offer)
    assert cust.conversation.agent.name == "carl"


def test_named_transfer_back_to_an_earlier_agent():
    h = harness("", [agent("anna"), agent("bob")])
    anna, anna_s = h.agent("anna")
    _, cust = h.queued_customer()
    conv_id = cust.conversation.id
    anna_s.accept(anna.last(ev.Offer).offer)
    bob, bob_s = h.agent("bob")
    anna_s.transfer(conv_id, queue="general")
    bob_s.accept(bob.last(ev.Offer).offer)
    bob_s.transfer(conv_id, agent="anna")
    assert offered(anna) == [conv_id, conv_id]


def test_named_transfer_falls_through_when_the_colleague_goes_away():
    h = harness("", [agent("anna"), agent("bob"), agent("carl")])
    anna, anna_s = h.agent("anna")
    _, cust = h.queued_customer()
    conv_id = cust.conversation.id
    anna_s.accept(anna.last(ev.Offer).offer)
    _bob, bob_s = h.agent("bob")
    carl, carl_s = h.agent("carl")
    carl_s.set_presence("away")
    anna_s.transfer(conv_id, agent="bob")
    bob_s.set_presence("away")  # the ring goes on until it lapses
    carl_s.set_presence("available")
    h.clock.advance(20)  # Bob's offer lapses; the named target still waits for him
    assert offered(carl) == []
    h.clock.advance(20)  # twice the offer timeout: the plan goes on without him
    assert offered(carl) == [conv_id]


def test_capacity_per_protocol():
    h = harness("", [agent("anna", capacity=3, protocol_capacity={"irc": 1})])
    anna, anna_s = h.agent("anna")
    _, one = h.customer({"name": "One", "topic": "billing"}, protocol="irc")
    anna_s.accept(anna.last(ev.Offer).offer)
    _, two = h.customer({"name": "Two", "topic": "billing"}, protocol="irc")
    _, three = h.customer({"name": "Three", "topic": "billing"}, protocol="jsonim")
    # A second IRC customer waits; a JSON-IM one still fits.
    assert offered(anna) == [one.conversation.id, three.conversation.id]
    anna_s.end(one.conversation.id)
    assert offered(anna)[-1] == two.conversation.id


def test_redirect_hosting_hands_over_addresses_and_steps_out():
    queues = {name: QueueConfig(name=name) for name in QUEUES}
    queues["general"] = QueueConfig(name="general", hosting="redirect")
    anna_record = agent("anna", addresses=("xmpp:anna@corp.example",))
    h = harness("", [anna_record], queues=queues)
    anna, anna_s = h.agent("anna")
    party = FakeParty()
    h.gateway.customer_arrived(
        party,
        protocol="xmpp",
        client=ev.ClientInfo("Gajim", "1.8"),
        answers={"name": "Dana", "topic": "other"},
        key="xmpp:dana@example.org",
        address="xmpp:dana@example.org",  # component mode: the server can carry it
    )
    conv = h.gateway.dispatcher.offers[anna.last(ev.Offer).offer].conversation
    anna_s.accept(anna.last(ev.Offer).offer)
    told = [e.text for e in party.of(ev.Message)]
    assert told[-1] == (
        "Anna will continue with you directly at xmpp:anna@corp.example. Please write there."
    )
    assert party.last(ev.Ended).reason == "agent"
    # The agent is told the customer's alias, never its address.
    notice = anna.last(ev.Notice).text
    assert "dana@example.org" not in notice and conv.alias in notice
    assert result_of(h.store.get_conversation(conv.id)).end_reason == "redirected"
    assert anna_s.agent.load == 0
    # A JSON-IM customer has no address on that network: relayed as usual.
    json_party, _ = h.customer({"name": "Eve", "topic": "other"})
    anna_s.accept(anna.last(ev.Offer).offer)
    assert json_party.last(ev.Connected).peer_alias == "Anna"


def test_redirect_hosting_only_where_an_im_server_carries_the_conversation():
    """A customer on the gateway's own IRC listener has a key but no address on a
    server: redirecting would send it to a nick that does not exist. Relayed instead."""
    queues = {name: QueueConfig(name=name) for name in QUEUES}
    queues["general"] = QueueConfig(name="general", hosting="redirect")
    h = harness("", [agent("anna", addresses=("irc:anna",))], queues=queues)
    anna, anna_s = h.agent("anna")
    party = FakeParty()
    h.gateway.customer_arrived(
        party,
        protocol="irc",
        client=ev.ClientInfo("irssi", "1.4"),
        answers={"name": "Dana", "topic": "other"},
        key="irc:dana@10.0.0.5",
    )
    anna_s.accept(anna.last(ev.Offer).offer)
    assert party.last(ev.Connected).peer_alias == "Anna"
    assert anna.of(ev.Notice) == []
    assert not [e for e in party.of(ev.Message) if "directly" in e.text]
