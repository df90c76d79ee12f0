"""Supervisors monitor, whisper and barge; the customer sees only what is addressed to it."""

from __future__ import annotations

import pytest
from desk_helpers import make_desk, result_of

from gateway.core import events as ev
from gateway.core.errors import NotAllowed
from gateway.desk import sql


@pytest.fixture
def h(tmp_path):
    h = make_desk(tmp_path)
    assert sql.set_role(h.store.engine, "sue", "supervisor")
    return h


def test_monitor_whisper_barge(h):
    cparty, customer, aparty, anna, conv = h.connected("anna")
    result_of(customer.say("my invoice is wrong"))
    sparty, sue = h.agent("sue", available=False)
    assert result_of(h.desk.monitor(sue, conv)) == {
        "conversation": conv,
        "customer": "c-0004",
        "role": "monitor",
    }
    joined = sparty.last(ev.Connected)
    assert (joined.role, joined.agent_alias) == ("monitor", "Anna A.")
    assert [e.text for e in joined.history][-1] == "my invoice is wrong"

    result_of(customer.say("hello?"))
    assert sparty.last(ev.Message).text == "hello?"
    result_of(anna.say(conv, "Looking at it"))
    seen = sparty.last(ev.Message)
    assert (seen.text, seen.alias, seen.private) == ("Looking at it", "Anna A.", False)

    before = len(cparty.events)
    result_of(h.desk.whisper(sue, conv, "offer a refund"))
    whisper = aparty.last(ev.Message)
    assert (whisper.text, whisper.alias, whisper.private) == ("offer a refund", "Sue A.", True)
    # Writing in the chat while monitoring is a whisper too.
    result_of(sue.say(conv, "and apologise"))
    assert aparty.last(ev.Message).private
    assert len(cparty.events) == before, cparty.events[before:]

    result_of(h.desk.barge(sue, conv))
    assert cparty.last(ev.Message).text == "A supervisor, Sue A., joined the conversation."
    result_of(sue.say(conv, "I am sorry for the trouble"))
    said = cparty.last(ev.Message)
    assert (said.text, said.alias, said.private) == ("I am sorry for the trouble", "Sue A.", False)
    assert aparty.last(ev.Message).text == "I am sorry for the trouble"

    rows = h.sql(
        "SELECT sender, agent, text, audience FROM messages WHERE conversation = ? ORDER BY seq",
        conv,
    )
    private = [(a, t) for s, a, t, audience in rows if audience == "agents" and s == "agent"]
    assert private == [("sue", "offer a refund"), ("sue", "and apologise")]
    assert ("agent", "sue", "I am sorry for the trouble", "all") in rows
    parties = h.sql("SELECT agent, role, left_at FROM conversation_parties ORDER BY rowid")
    assert [(a, r) for a, r, _ in parties] == [("sue", "monitor"), ("sue", "barge")]

    anna.end(conv)
    assert sparty.last(ev.Ended).conversation == conv
    lefts = h.sql("SELECT left_at FROM conversation_parties WHERE conversation = ?", conv)
    assert lefts and all(left is not None for (left,) in lefts)


def test_only_supervisors_monitor(h):
    _, _, _, _, conv = h.connected("anna")
    _, bob = h.agent("bob")
    with pytest.raises(NotAllowed, match="only a supervisor"):
        result_of(h.desk.monitor(bob, conv))


def test_the_page_whispers_and_writes(h):
    cparty, _, aparty, _, conv = h.connected("anna")
    before = len(cparty.events)
    result_of(h.desk.supervision.page_whisper(conv, "check the contract"))
    assert aparty.last(ev.Message).private
    assert len(cparty.events) == before
    result_of(h.desk.supervision.page_say(conv, "We are on it"))
    assert cparty.last(ev.Message).alias == "Supervisor"


def test_a_team_supervisor_supervises_its_teams_only(h):
    from gateway.directory.teams import Team, Teams

    h.gateway.set_teams(
        Teams(
            {
                "billing": Team("billing", members=frozenset({"anna", "sue"}), queues=frozenset()),
                "tech": Team("tech", members=frozenset({"bob"}), queues=frozenset()),
            }
        )
    )
    _, _, _, _, anna_conv = h.connected("anna")
    _, _, _, bob, bob_conv = h.connected("bob")
    _, sue = h.agent("sue", available=False)
    live = [c["id"] for c in result_of(h.desk.live(sue))["conversations"]]
    assert live == [anna_conv]
    with pytest.raises(NotAllowed, match="not of your teams"):
        result_of(h.desk.monitor(sue, bob_conv))
    result_of(h.desk.monitor(sue, anna_conv))
    view = result_of(h.desk.team(sue))
    assert view["teams"] == ["billing"]
    assert [a["name"] for a in view["agents"]] == ["anna", "sue"]
    result_of(h.desk.set_state(sue, "anna", "away"))
    assert h.directory.get("anna").status == "away"
    with pytest.raises(NotAllowed, match="not an agent of your teams"):
        result_of(h.desk.set_state(sue, "bob", "away"))
    assert bob.agent.status == "available"


def test_a_failing_desk_does_not_stop_the_core(h, monkeypatch):
    cparty, customer, aparty, anna, conv = h.connected("anna")

    def broken(*args):
        raise RuntimeError("desk bug")

    monkeypatch.setattr(h.desk.rooms, "relayed", broken)
    monkeypatch.setattr(h.desk.surveys, "applies", broken)
    result_of(customer.say("still there?"))
    assert aparty.last(ev.Message).text == "still there?"
    anna.end(conv)
    assert cparty.last(ev.Ended).reason == "agent"
