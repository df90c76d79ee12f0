"""Queue positions and waits follow the order customers are served in (priority first),
and no wait is promised while no agent can serve the queue."""

from __future__ import annotations

import tomllib

from core_helpers import RulePlans, make_harness

from gateway.config import QueueConfig
from gateway.core import events as ev
from gateway.routing.rules import RuleSet
from gateway.store.records import AgentRecord

RULES = """
[[rules]]
name = "vip"
priority = 10
[rules.match]
"identity.vip" = "yes"
[[rules.targets]]
strategy = "longest_idle"

[trust]
"identity.vip" = ["claim"]

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def _harness():
    queues = {"general": QueueConfig(name="general")}
    ruleset = RuleSet.parse(tomllib.loads(RULES), source="test", queues=queues)
    h = make_harness(agents=(), plans=RulePlans(ruleset), queues=queues)
    h.store.add_agent(
        AgentRecord(name="anna", display_name="Anna", password_hash="hash:secret", capacity=1)
    )
    return h


def test_a_priority_customer_is_told_the_place_it_is_served_in():
    h = _harness()
    anna, anna_s = h.agent("anna")
    _, busy = h.customer({"name": "Ann", "topic": "billing"})
    anna_s.accept(anna.last(ev.Offer).offer)  # Anna is full: the next ones wait
    normal, _ = h.customer({"name": "Ned", "topic": "billing"})
    vip, _ = h.customer({"name": "Vi", "topic": "billing", "vip": "yes"})
    assert normal.of(ev.Queued)[-1].position == 2
    assert vip.of(ev.Queued)[-1].position == 1
    assert [e.position for e in vip.of(ev.Queued)] == [1]
    # And the engine serves her first, as she was told.
    anna_s.end(busy.conversation.id)
    offer = anna.last(ev.Offer)
    assert offer.customer.identity["name"] == "Vi"
    anna_s.accept(offer.offer)
    assert normal.of(ev.Queued)[-1].position == 1


def test_no_wait_is_promised_until_an_agent_can_serve():
    h = _harness()
    party, _ = h.queued_customer()
    assert party.last(ev.Queued) == ev.Queued(position=1, eta_s=None)
    anna, anna_s = h.agent("anna", available=False)
    assert party.last(ev.Queued).eta_s is None  # away agents promise nothing
    anna_s.set_presence("available")
    assert anna.last(ev.Offer)
    assert party.last(ev.Queued) == ev.Queued(position=1, eta_s=60)
