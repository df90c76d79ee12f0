"""The service desk's proposed JSON-IM additions: how its events are rendered, and that a
gateway without a desk answers its frames with a clear error."""

from __future__ import annotations

import attrs
import pytest

from gateway.core import events as ev
from gateway.core.errors import Unavailable
from protocols.jsonim.codec import event_frame
from protocols.jsonim.deskframes import customer_token, handle


def test_desk_events_as_frames():
    card = ev.CustomerCard("c-7f3a", "xmpp", ev.ClientInfo("Gajim", "1.8"), None, {"name": "Jo"})
    assert event_frame(ev.WrapUp("c-1", "c-7f3a", ("resolved",), True, 300), agent=True) == {
        "type": "wrap_up",
        "conversation": "c-1",
        "customer": {"alias": "c-7f3a"},
        "dispositions": ["resolved"],
        "required": True,
        "timeout_s": 300,
    }
    task = event_frame(ev.Task("t-1", card, "night", "call me", 5.0), agent=True)
    assert (task["type"], task["task"], task["kind"], task["text"]) == (
        "task",
        "t-1",
        "offline_message",
        "call me",
    )
    assert task["customer"]["identity"] == {"name": "Jo"}
    whisper = ev.Message("c-1", ev.AGENT, "g-1", "psst", 1.0, alias="Sue", private=True)
    assert event_frame(whisper, agent=True) == {
        "type": "message",
        "conversation": "c-1",
        "from": "agent",
        "msg": "g-1",
        "text": "psst",
        "ts": 1.0,
        "alias": "Sue",
        "private": True,
    }
    # A plain line has neither field: JSON-IM/1 receivers see what they always saw.
    plain = event_frame(ev.Message("c-1", ev.AGENT, "g-2", "hi", 1.0), agent=False)
    assert "alias" not in plain and "private" not in plain
    past = ev.PastConversation("c-0", 1.0, "billing", "resolved", "Anna")
    joined = event_frame(
        ev.Connected("c-1", "c-7f3a", (), role="monitor", agent_alias="Anna", past=(past,)),
        agent=True,
    )
    assert (joined["role"], joined["agent"]) == ("monitor", {"alias": "Anna"})
    assert joined["past"] == [
        {
            "conversation": "c-0",
            "started": 1.0,
            "topic": "billing",
            "disposition": "resolved",
            "agent": "Anna",
        }
    ]
    offer = event_frame(
        ev.Offer("o-1", "c-1", 20, attrs.evolve(card, history=(past,))),
        agent=True,
    )
    assert offer["customer"]["history"][0]["conversation"] == "c-0"


class _Gateway:
    service_desk = None


class _Link:
    def __init__(self):
        self.desk = None

    def service_desk(self):
        return self.desk

    def agent_session(self):
        return object()


def test_without_a_desk_no_token_and_a_clear_error():
    assert customer_token(_Gateway(), {"customer_token": "x" * 32}) == (None, None)
    with pytest.raises(Unavailable, match="this gateway has no service desk"):
        handle(_Link(), {"type": "monitor", "conversation": "c-1"}, "d1")
