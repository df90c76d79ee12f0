"""Wrap-up: dispositions (required per queue), tags and notes; the agent waits for it."""

from __future__ import annotations

import json

import pytest
from desk_helpers import make_desk, result_of

from gateway.core import events as ev
from gateway.core.errors import BadRequest, NotAllowed
from gateway.desk import sql
from gateway.desk.settings import QueueDesk


def test_a_required_disposition_holds_the_agent_until_given(tmp_path):
    h = make_desk(tmp_path, desk={"queues": {"general": QueueDesk(disposition_required=True)}})
    _, _, aparty, anna, conv = h.connected("anna")
    result_of(anna.say(conv, "Done"))
    anna.end(conv)
    events = [type(e).__name__ for e in aparty.events[-2:]]
    assert events == ["Ended", "WrapUp"]
    wrap = aparty.last(ev.WrapUp)
    assert (wrap.conversation, wrap.required) == (conv, True)
    assert wrap.dispositions == ("resolved", "follow_up", "escalated", "no_response")
    agent = h.directory.get("anna")
    assert agent.wrapping_up and agent.state == "wrap_up"

    # No offers meanwhile.
    h.customer_as(None)
    assert not aparty.of(ev.Offer)[1:]
    with pytest.raises(BadRequest, match="a disposition is required"):
        result_of(h.desk.wrap_up(anna, None, None))
    with pytest.raises(BadRequest, match="unknown disposition"):
        result_of(h.desk.wrap_up(anna, None, "fixed"))
    result = result_of(
        h.desk.wrap_up(anna, "c-0004", "resolved", ["Refund", "#vip"], "asked for a refund")
    )
    assert result == {
        "conversation": conv,
        "disposition": "resolved",
        "tags": ["refund", "vip"],
        "note": True,
    }
    h.clock.advance(0)
    assert not agent.wrapping_up
    assert len(aparty.of(ev.Offer)) == 2  # the waiting customer is offered at once
    [(queue, disposition, tags)] = h.sql("SELECT queue, disposition, tags FROM wrapups")
    assert (queue, disposition, json.loads(tags)) == ("general", "resolved", ["refund", "vip"])
    assert h.sql("SELECT agent, text FROM notes") == [("anna", "asked for a refund")]
    report = sql.dispositions_report(h.store.engine, 0, 1e12)
    assert report == [
        {"queue": "general", "disposition": "resolved", "count": 1, "tags": {"refund": 1, "vip": 1}}
    ]
    with pytest.raises(NotAllowed, match="no wrap-up is due"):
        result_of(h.desk.wrap_up(anna, None, "resolved"))


def test_an_unanswered_required_wrap_up_lapses(tmp_path):
    h = make_desk(tmp_path, desk={"disposition_required": True, "wrap_up_timeout_s": 60})
    _, _, _, anna, conv = h.connected("anna")
    anna.end(conv)
    agent = h.directory.get("anna")
    assert agent.wrapping_up
    h.clock.advance(60)
    assert not agent.wrapping_up


def test_optional_wrap_up_and_notes_during_the_conversation(tmp_path):
    h = make_desk(tmp_path)
    _, _, aparty, anna, conv = h.connected("anna")
    result_of(h.desk.note(anna, conv, "customer sounded upset"))
    anna.end(conv)
    assert not h.directory.get("anna").wrapping_up
    assert aparty.last(ev.WrapUp).required is False
    result_of(h.desk.wrap_up(anna, None, None, ["billing"]))
    assert h.sql("SELECT disposition, tags FROM wrapups") == [(None, '["billing"]')]
    assert h.sql("SELECT text FROM notes") == [("customer sounded upset",)]


def test_wrap_up_is_asked_only_of_an_ended_conversation(tmp_path):
    h = make_desk(tmp_path)
    _, _, aparty, anna, conv = h.connected("anna")
    anna.transfer(conv, queue="general")
    assert not aparty.of(ev.WrapUp)
