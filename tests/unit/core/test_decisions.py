"""The routing decision's reason: on the offer, stored with the conversation, in views."""

from __future__ import annotations

import tomllib

from core_helpers import RulePlans, make_harness, result_of

from gateway.admin import views
from gateway.config import QueueConfig
from gateway.core import events as ev
from gateway.routing.rules import RuleSet
from gateway.store.records import AgentRecord

RULES = """
[[compatibility.entries]]
name = "acme"
client = "acme"

[[rules]]
name = "billing"
[rules.match]
topic = "billing"
[[rules.targets]]
queue = "billing"
skills = { billing = 4 }
strategy = "highest_skill"
timeout_s = 30
[[rules.targets]]
queue = "billing"
strategy = "least_occupied"

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def _harness():
    queues = {name: QueueConfig(name=name) for name in ("general", "billing")}
    ruleset = RuleSet.parse(tomllib.loads(RULES), source="test", queues=queues)
    h = make_harness(agents=(), plans=RulePlans(ruleset), queues=queues)
    h.store.add_agent(
        AgentRecord(name="anna", display_name="Anna", password_hash="hash:secret", capacity=2)
    )
    return h


def test_the_offer_carries_the_decision_and_the_store_keeps_it():
    h = _harness()
    anna, anna_s = h.agent("anna")
    _, cust = h.queued_customer()
    conv_id = cust.conversation.id
    # Queued at target 1 (nobody has billing 4): stored with the plan so far.
    stored = result_of(h.store.get_conversation(conv_id)).routing
    assert stored == {
        "rule": "billing",
        "target": 1,
        "strategy": "highest_skill",
        "compatibility": "acme",
        "source": "local",
        "reason": "rule billing; compatibility acme",
        "queue": "billing",
        "translated": [],
    }
    assert anna.of(ev.Offer) == []
    h.clock.advance(30)  # the workflow widens to target 2
    offer = anna.last(ev.Offer)
    assert offer.routing == ev.Decision(
        rule="billing",
        target=2,
        strategy="least_occupied",
        compatibility="acme",
        source="local",
        reason="rule billing; compatibility acme",
        queue="billing",
    )
    assert offer.routing.text() == (
        "rule billing, target 2 (least_occupied) in billing; compatibility acme;"
        " local: rule billing; compatibility acme"
    )
    anna_s.accept(offer.offer)
    record = result_of(h.store.get_conversation(conv_id))
    assert record.routing["target"] == 2 and record.agent == "anna"
    live = views.conversation_view(h.gateway.conversations[conv_id], h.clock.seconds())
    assert live["routing"] == offer.routing.to_dict()
    text = views.transcript_text(record, [])
    assert text.splitlines()[1] == f"routing: {offer.routing.text()}"
    assert views.transcript_json(record, [])["conversation"]["routing"]["strategy"] == (
        "least_occupied"
    )
    assert ev.Decision.from_dict({**offer.routing.to_dict(), "later": 1}) == offer.routing
