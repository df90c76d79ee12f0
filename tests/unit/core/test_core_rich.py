"""The core's side of rich_text and receipts: markup travels beside the plain text (the
firewall's text translation applies to both); receipts go to the other party only."""

from __future__ import annotations

import pytest
from core_helpers import make_harness, result_of

from gateway.core import events as ev
from gateway.core.errors import BadRequest, NotAllowed


def connected_pair(h):
    anna, anna_s = h.agent("anna")
    cust, cust_s = h.queued_customer()
    offer = anna.last(ev.Offer)
    anna_s.accept(offer.offer)
    cust.take()
    anna.take()
    return cust, cust_s, anna, anna_s, offer.conversation


def test_markup_travels_beside_the_plain_text_and_only_the_text_is_stored():
    h = make_harness()
    cust, cust_s, anna, anna_s, conv = connected_pair(h)
    msg = result_of(cust_s.say("hi there", markup="**hi** there"))
    assert anna.take() == [ev.Message(conv, ev.CUSTOMER, msg, "hi there", 0.0, "**hi** there")]
    reply = result_of(
        anna_s.say(conv, "see docs (https://e.example)", markup="see [docs](https://e.example)")
    )
    [got] = cust.take()
    assert (got.msg, got.text, got.markup) == (
        reply,
        "see docs (https://e.example)",
        "see [docs](https://e.example)",
    )
    stored = [m.text for m in result_of(h.store.transcript(conv))][-2:]
    assert stored == ["hi there", "see docs (https://e.example)"]


def test_the_text_translation_applies_to_markup_too():
    h = make_harness(text_filter=lambda text: text.replace("db01.corp", "our systems"))
    cust, _, _, anna_s, conv = connected_pair(h)
    result_of(anna_s.say(conv, "on db01.corp now", markup="on **db01.corp** now"))
    [got] = cust.take()
    assert (got.text, got.markup) == ("on our systems now", "on **our systems** now")


def test_receipts_go_to_the_other_side_of_a_connected_conversation():
    h = make_harness()
    cust, cust_s, anna, anna_s, conv = connected_pair(h)
    cust_s.receipt("g-1", "delivered")
    assert anna.take() == [ev.Receipt(conv, "g-1", "delivered")]
    assert cust.take() == []
    anna_s.receipt(conv, "g-2", "read")
    assert cust.take() == [ev.Receipt(conv, "g-2", "read")]
    with pytest.raises(BadRequest):
        cust_s.receipt("g-1", "seen")
    with pytest.raises(NotAllowed):
        anna_s.receipt("c-elsewhere", "g-2", "read")


def test_no_receipts_outside_a_connected_conversation():
    h = make_harness()
    cust, cust_s = h.queued_customer()
    cust_s.receipt("g-1", "read")
    assert not cust.of(ev.Receipt)
    cust_s.end()
    with pytest.raises(NotAllowed):
        cust_s.receipt("g-1", "read")
