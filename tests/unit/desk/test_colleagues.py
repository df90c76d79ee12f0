"""Consult a colleague, hand over warm with an introduction, or add them in conference."""

from __future__ import annotations

import pytest
from desk_helpers import make_desk, result_of

from gateway.core import events as ev
from gateway.core.errors import NotAllowed, Unavailable


@pytest.fixture
def h(tmp_path):
    return make_desk(tmp_path)


def test_consult_then_warm_transfer(h):
    cparty, customer, aparty, anna, conv = h.connected("anna")
    result_of(customer.say("I need a refund"))
    bparty, bob = h.agent("bob", available=False)
    before = len(cparty.events)
    result_of(h.desk.consult(anna, conv, "bob", "Can you take a refund case?"))
    joined = bparty.last(ev.Connected)
    assert (joined.role, joined.agent_alias) == ("consult", "Anna A.")
    assert bparty.last(ev.Message).text == "Can you take a refund case?"
    assert bparty.last(ev.Message).private
    result_of(bob.say(conv, "Sure, hand it over"))
    assert aparty.last(ev.Message).text == "Sure, hand it over"
    assert aparty.last(ev.Message).private
    assert len(cparty.events) == before, "the customer saw the consultation"

    result_of(h.desk.handover(anna, conv, "bob", "Bob from refunds will take it from here."))
    intro = cparty.last(ev.Message)
    assert (intro.sender, intro.text) == ("agent", "Bob from refunds will take it from here.")
    assert cparty.last(ev.Connected).peer_alias == "Bob A."
    assert aparty.last(ev.Ended).conversation == conv
    assert bparty.last(ev.Connected).role == "agent"
    live = h.gateway.conversations[conv]
    assert live.agent.name == "bob"
    result_of(customer.say("thanks"))
    assert bparty.last(ev.Message).text == "thanks"
    assert h.store.engine.get_conversation(conv).agent == "bob"
    assert h.gateway.queues["general"].active == 1


def test_conference(h):
    cparty, customer, aparty, anna, conv = h.connected("anna")
    bparty, bob = h.agent("bob", available=False)
    result_of(h.desk.consult(anna, conv, "bob"))
    result_of(h.desk.conference(anna, conv))
    assert cparty.last(ev.Message).text == "Bob A. joined the conversation."
    result_of(bob.say(conv, "Hello, I am Bob"))
    seen = cparty.last(ev.Message)
    assert (seen.text, seen.alias) == ("Hello, I am Bob", "Bob A.")
    assert aparty.last(ev.Message).text == "Hello, I am Bob"
    result_of(customer.say("hi both"))
    assert aparty.last(ev.Message).text == bparty.last(ev.Message).text == "hi both"
    result_of(h.desk.leave(bob, conv))
    assert cparty.last(ev.Message).text == "Bob A. left the conversation."
    assert bparty.last(ev.Ended).conversation == conv


def test_consult_needs_a_logged_in_colleague_and_the_agent(h):
    _, _, _, anna, conv = h.connected("anna")
    with pytest.raises(Unavailable):
        result_of(h.desk.consult(anna, conv, "carl"))
    _, bob = h.agent("bob")
    with pytest.raises(NotAllowed):
        result_of(h.desk.consult(bob, conv, "anna"))
    with pytest.raises(NotAllowed, match="consult them first"):
        result_of(h.desk.handover(anna, conv, "bob"))


def test_a_consultation_ends_when_its_agent_transfers(h):
    _, _, _, anna, conv = h.connected("anna")
    bparty, _ = h.agent("bob", available=False)
    result_of(h.desk.consult(anna, conv, "bob"))
    anna.transfer(conv, queue="general")
    assert bparty.last(ev.Ended).conversation == conv
    assert h.desk.rooms.of(conv) == []
