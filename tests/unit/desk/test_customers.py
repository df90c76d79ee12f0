"""Returning customers: their history; messages left when nobody serves; the survey."""

from __future__ import annotations

import pytest
from desk_helpers import make_desk, result_of

from gateway.core import events as ev
from gateway.core.errors import NotAllowed
from gateway.desk import sql
from gateway.desk.settings import CsatSettings, OfflineSettings

DANA = "xmpp:dana@example.org"


def test_a_returning_customer_comes_with_a_summary_and_transcripts(tmp_path):
    h = make_desk(tmp_path)
    _, customer, aparty, anna, first = h.connected("anna", verified=DANA)
    assert aparty.last(ev.Offer).customer.history == ()
    result_of(customer.say("where is my parcel?"))
    anna.end(first)
    result_of(h.desk.wrap_up(anna, None, "resolved"))
    h.clock.advance(0)

    _, stranger = h.customer_as("xmpp:eve@example.org")
    offer = aparty.last(ev.Offer)
    assert offer.customer.history == ()
    anna.reject(offer.offer)
    stranger.end()

    h.customer_as(DANA, {"name": "Dana", "topic": "tech"})
    offer = aparty.last(ev.Offer)
    [past] = offer.customer.history
    assert (past.conversation, past.topic, past.disposition, past.agent_alias) == (
        first,
        "billing",
        "resolved",
        "Anna A.",
    )
    anna.accept(offer.offer)
    connected = aparty.last(ev.Connected)
    assert connected.past == offer.customer.history
    now = connected.conversation
    assert result_of(h.desk.past(anna, now))["past"][0]["conversation"] == first
    old = result_of(h.desk.transcript(anna, now, first))
    assert "where is my parcel?" in [m["text"] for m in old["messages"]]
    assert old["wrap_ups"][0]["disposition"] == "resolved"
    # Only that customer's earlier conversations, only to the agents who serve them.
    _, bob = h.agent("bob")
    with pytest.raises(NotAllowed):
        result_of(h.desk.transcript(bob, now, first))
    with pytest.raises(NotAllowed):
        result_of(h.desk.transcript(anna, now, stranger.conversation.id))


def test_closed_queue_takes_a_message_and_an_agent_answers_it(tmp_path):
    h = make_desk(tmp_path, desk={"offline": OfflineSettings(enabled=True)})
    h.clock.advance(3 * 86400 + 3600)  # Sunday 1970-01-04, 01:00
    closure = result_of(h.desk.calendar.add("general", "1970-01-04", "Test day"))
    cparty, customer = h.customer_as(DANA)
    prompt = cparty.last(ev.Prompt)
    assert prompt.field == "offline_message"
    texts = [e.text for e in cparty.of(ev.Message)]
    assert texts[-1].startswith("We are closed right now")
    result_of(customer.say("Please call me back about invoice 42"))
    assert cparty.last(ev.Message).text == "Thank you. We have your message and will answer it."
    assert cparty.last(ev.Ended).reason == "closed"
    [task] = h.desk.offline.tasks.values()
    assert task.text == "Please call me back about invoice 42"

    aparty, anna = h.agent("anna")
    given = aparty.last(ev.Task)
    assert (given.task, given.text, given.customer.identity) == (
        task.id,
        task.text,
        {"name": "Dana"},
    )
    result_of(h.desk.reply(anna, task.id, "Your invoice is corrected."))
    assert h.sql("SELECT state, reply FROM offline_messages") == [
        ("answered", "Your invoice is corrected.")
    ]
    assert result_of(h.desk.calendar.remove(closure)) is True
    back, _ = h.customer_as(DANA)
    assert any(
        e.text == "While you were away, Anna A. answered the message you left:"
        " Your invoice is corrected."
        for e in back.of(ev.Message)
    )
    assert h.sql("SELECT state FROM offline_messages") == [("delivered",)]


def test_a_task_goes_to_another_agent_when_released_or_lapsed(tmp_path):
    h = make_desk(tmp_path, desk={"offline": OfflineSettings(enabled=True, task_timeout_s=30)})
    h.gateway.queues["general"].config = type(h.gateway.queues["general"].config)(
        name="general", max_wait_s=10
    )
    cparty, customer = h.customer_as(None)
    h.clock.advance(10)
    assert cparty.last(ev.Prompt).field == "offline_message"
    result_of(customer.say("nobody came"))
    aparty, anna = h.agent("anna")
    bparty, _ = h.agent("bob")
    task = aparty.last(ev.Task).task
    assert not bparty.of(ev.Task)
    result_of(h.desk.release(anna, task))
    assert bparty.last(ev.Task).task == task
    h.clock.advance(30)
    assert bparty.last(ev.Revoked).offer == task
    assert h.desk.offline.tasks[task].state == "open"


def test_the_survey_after_the_end(tmp_path):
    h = make_desk(tmp_path, desk={"csat": CsatSettings(enabled=True)})
    cparty, customer, aparty, anna, conv = h.connected("anna")
    anna.end(conv)
    assert aparty.last(ev.Ended).conversation == conv
    assert not cparty.of(ev.Ended)
    prompt = cparty.last(ev.Prompt)
    assert prompt.field == "csat_score"
    assert [c.value for c in prompt.choices] == ["1", "2", "3", "4", "5"]
    assert h.directory.get("anna").load == 0  # free for the next customer already
    result_of(customer.say("great"))
    assert cparty.last(ev.Prompt).text.startswith("Please answer with a number")
    result_of(customer.say("4"))
    assert cparty.last(ev.Prompt).field == "csat_comment"
    result_of(customer.say("quick and friendly"))
    assert cparty.last(ev.Message).text == "Thank you for your feedback."
    assert cparty.last(ev.Ended).reason == "agent"
    assert h.sql("SELECT queue, agent, score, comment FROM surveys") == [
        ("general", "anna", 4, "quick and friendly")
    ]
    [row] = sql.csat_report(h.store.engine, 0, 1e12)
    assert (row["agent"], row["count"], row["mean"]) == ("anna", 1, 4.0)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in h.gateway.metrics.registry.collect()
        for s in m.samples
    }
    assert samples[("imgateway_csat_score_sum", (("agent", "anna"), ("queue", "general")))] == 4
