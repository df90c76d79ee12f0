"""The core tells its event sink every communication event, where it happens."""

from __future__ import annotations

from core_helpers import make_harness, result_of
from zope.interface import implementer

from gateway.core import events as ev
from gateway.routing.interfaces import IEventSink


@implementer(IEventSink)
class Recorder:
    """Keeps (kind, subject, fields) of every event; messages as ("message", conv, sender)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.states: list[tuple] = []

    def emit(self, kind, subject, fields=None):
        self.events.append((kind, subject, fields or {}))

    def message(self, conversation, msg, sender, size, ts, text):
        self.events.append(("message", conversation, {"sender": sender, "size": size}))

    def agent(self, presence):
        self.states.append((presence.name, presence.status, presence.load))

    def of(self, subject):
        return [(k, f) for k, s, f in self.events if s == subject]


def test_a_conversation_from_its_interview_to_its_end():
    h = make_harness()
    sink = h.gateway.core.events = Recorder()
    anna, anna_s = h.agent("anna")
    _party, session = h.customer()
    conv = session.conversation.id
    result_of(session.say("Dana"))
    result_of(session.say("billing"))
    offer = anna.last(ev.Offer)
    anna_s.accept(offer.offer)
    result_of(session.say("hi"))
    bob, bob_s = h.agent("bob")
    anna_s.transfer(conv, queue="general")
    bob_s.reject(bob.last(ev.Offer).offer)
    carl, carl_s = h.agent("carl")
    h.clock.advance(h.gateway.config.offer_timeout_s)  # Carl lets it lapse; rung again
    carl_s.accept(carl.last(ev.Offer).offer)
    carl_s.disconnected()  # his connection drops: requeued
    session.end()
    kinds = [k for k, _ in sink.of(conv)]
    assert kinds == [
        # The greeting and a prompt, the answer; a prompt, the answer.
        "opened", "message", "message", "message", "answered", "message", "message", "answered",
        "routed", "queued", "offered", "accepted", "message",
        "transferred", "message", "requeued", "routed", "queued", "offered", "rejected",
        "offered", "lapsed", "revoked", "offered", "accepted",
        "message", "requeued", "routed", "queued", "ended",
    ]  # fmt: skip
    fields = dict(sink.of(conv))
    assert fields["opened"] == {"protocol": "jsonim", "client": "acme", "version": "2.3.1"}
    assert fields["ended"] == {"reason": "customer", "state": "queued", "agent": None}
    answered = [f for k, f in sink.of(conv) if k == "answered"]
    assert answered == [
        {"field": "name", "source": "interview"},
        {"field": "topic", "source": "interview"},
    ]
    requeued = [f["reason"] for k, f in sink.of(conv) if k == "requeued"]
    assert requeued == ["transfer", "agent_dropped"]
    logins = [(k, s) for k, s, _ in sink.events if k.startswith("agent_")]
    assert logins == [
        ("agent_login", "anna"),
        ("agent_login", "bob"),
        ("agent_login", "carl"),
        ("agent_logout", "carl"),
    ]
    # Every published change of an agent's record reached the sink.
    assert ("anna", "available", 1) in sink.states
