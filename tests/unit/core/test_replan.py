"""Requeues and transfers are planned again by the plan source (a routing server
re-plans with its live state), with the gateway's own plan as the fallback."""

from __future__ import annotations

import attrs
from core_helpers import make_harness
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from gateway.core import events as ev
from gateway.routing.interfaces import IRouter
from gateway.routing.plan import REMOTE, Plan, Target, with_assignment


@implementer(IRouter)
class AskedPlans:
    """Answers new conversations at once; keeps requeue and transfer requests pending."""

    def __init__(self) -> None:
        self.asked: list = []

    def plan(self, customer, request=None):
        if request is None or request.reason == "new":
            return succeed(Plan(rule="default", targets=(Target(),)))
        d: Deferred = Deferred()
        self.asked.append((request, d))
        return d


def test_a_transfer_waits_for_the_new_plan_and_offers_the_assigned_agent_first():
    plans = AskedPlans()
    h = make_harness(plans=plans)
    anna, anna_s = h.agent("anna")
    _, cust = h.queued_customer()
    conv = cust.conversation
    anna_s.accept(anna.last(ev.Offer).offer)
    bob, _ = h.agent("bob")
    carl, _ = h.agent("carl")
    anna_s.transfer(conv.id, queue="general")
    [(request, d)] = plans.asked
    assert (request.reason, request.queue, request.conversation) == ("transfer", "general", conv.id)
    assert request.exclude == {"anna"}
    assert request.fallback.targets == (Target(queue="general"),)
    # While the routing server thinks, the conversation waits, offered to nobody.
    assert conv.state == "queued" and bob.of(ev.Offer) == [] and carl.of(ev.Offer) == []
    remote = attrs.evolve(request.fallback, source=REMOTE, reason="transfer to general")
    d.callback(with_assignment(remote, ("carl",), "carl by the routing server", hold_s=20))
    offer = carl.last(ev.Offer)
    assert bob.of(ev.Offer) == []
    assert offer.routing.source == "remote"
    assert offer.routing.reason.endswith("assigned carl by the routing server")


def test_an_assigned_agent_without_room_here_is_skipped_and_a_later_request_wins():
    plans = AskedPlans()
    h = make_harness(plans=plans)
    anna, anna_s = h.agent("anna")
    _, cust = h.queued_customer()
    conv = cust.conversation
    anna_s.accept(anna.last(ev.Offer).offer)
    bob, _ = h.agent("bob")
    anna_s.transfer(conv.id, queue="general")
    [(first, stale)] = plans.asked
    # A supervisor moves it again before the answer: the later request is the one used.
    h.gateway.admin_transfer(conv.id, queue="general")
    [_, (second, d)] = plans.asked
    stale.callback(with_assignment(first.fallback, ("anna",), "anna", hold_s=20))
    assert bob.of(ev.Offer) == []
    # The router assigned Carl, who is not logged in here: the plan goes on at once.
    d.callback(with_assignment(second.fallback, ("carl",), "carl", hold_s=20))
    offer = bob.last(ev.Offer)
    assert offer.conversation == conv.id
    assert "not free here now" in offer.routing.reason
