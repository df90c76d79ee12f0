"""The translate fallback converts: markup to plain text, no typing or receipts to
software without them (gateway.routing.translate), recorded with the decision."""

from __future__ import annotations

import tomllib

import attrs
import pytest
from core_helpers import FakeParty, RulePlans, make_harness

from gateway.config import QueueConfig
from gateway.core import events as ev
from gateway.routing.rules import RuleSet
from gateway.routing.translate import convert, markup_to_plain
from gateway.store.records import AgentRecord


@pytest.mark.parametrize(
    "markup, plain",
    [
        ("**Hello** there", "Hello there"),
        ("see *this* and _that_", "see this and that"),
        ("the [form](https://example.com/f) please", "the form (https://example.com/f) please"),
        ("[https://x.example](https://x.example)", "https://x.example"),
        (r"2\*3\*4 and \[not a link\]", "2*3*4 and [not a link]"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
        ("**bold _and italic_**\nnext line", "bold and italic\nnext line"),
        ("<b>html</b> stays", "<b>html</b> stays"),
    ],
)
def test_markup_becomes_plain_text(markup, plain):
    assert markup_to_plain(markup) == plain


@attrs.frozen
class RichMessage:
    """A message as a rich_text party sends it (the web channel's Message has markup)."""

    text: str
    markup: str | None = None


@attrs.frozen
class Receipt:
    state: str


def test_convert_by_lacking_feature():
    rich = RichMessage(text="", markup="**Hi** [form](https://example.com/f)")
    assert convert(rich, {"rich_text"}) == RichMessage(text="Hi form (https://example.com/f)")
    assert convert(rich, set()) is rich
    assert convert(ev.Typing("c-1", "active"), {"typing"}) is None
    assert convert(Receipt("read"), {"receipts"}) is None
    plain = ev.Message("c-1", ev.CUSTOMER, "g-1", "hi", 1.0)
    assert convert(plain, {"rich_text", "typing", "receipts"}) is plain


RULES = """
[compatibility]
fallback = "translate"

[[compatibility.entries]]
name = "chatty"
client = "chatty"
requires = ["typing"]

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def test_an_agent_without_typing_takes_it_and_the_gateway_translates():
    queues = {"general": QueueConfig(name="general")}
    ruleset = RuleSet.parse(tomllib.loads(RULES), source="r", queues=queues)
    h = make_harness(agents=(), plans=RulePlans(ruleset), queues=queues)
    h.store.add_agent(
        AgentRecord(name="anna", display_name="Anna", password_hash="hash:secret", capacity=2)
    )
    anna = FakeParty()
    results = []
    h.gateway.agent_login(
        anna, protocol="irc", name="anna", password="secret", client=ev.ClientInfo("irssi", "1")
    ).addCallback(results.append)  # no features: plain text only
    results[0].set_presence("available")
    _party, customer = h.customer({"name": "Dana", "topic": "billing"}, client=("chatty", "1"))
    offer = anna.last(ev.Offer)
    assert offer.routing.translated == ("typing",)
    assert offer.routing.text().endswith("; translated: typing")
    results[0].accept(offer.offer)
    anna.take()
    customer.typing("active")
    assert anna.take() == []  # not sent: her software shows no typing
    customer.say("hello")
    assert [e.text for e in anna.of(ev.Message)] == ["hello"]
