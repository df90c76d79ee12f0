"""rich_text and receipts as features a JSON-IM client negotiates, and the presence reason."""

from __future__ import annotations

from jsonim_helpers import AGENT_HELLO, CUSTOMER_HELLO, FakeGateway, connect, welcome

from gateway.core import events as ev

ALL = ["typing", "rich_text", "receipts"]


def customer(features, gateway=None):
    conn = connect(gateway)
    conn.send({**CUSTOMER_HELLO, "features": features})
    [hello] = conn.received()
    assert hello == welcome("s-c1", [f for f in ALL if f in features])
    return conn


def agent(features, gateway=None):
    conn = connect(gateway)
    conn.send({**AGENT_HELLO, "features": features})
    [hello] = conn.received()
    assert hello == welcome("s-a1", [f for f in ALL if f in features])
    return conn


def test_features_are_offered_as_asked():
    customer(["rich_text"])
    customer(["receipts", "typing", "video"])
    customer(ALL)


def test_a_rich_client_writes_markup_and_the_core_gets_its_plain_text_too():
    conn = customer(ALL)
    conn.send({"type": "message", "markup": "**hi** [docs](https://e.example/d)", "id": "m1"})
    assert conn.gateway.customer.calls == [
        ("say", "hi docs (https://e.example/d)", ("markup", "**hi** [docs](https://e.example/d)"))
    ]
    # Markup without formatting is just text.
    conn.send({"type": "message", "markup": "just words", "text": "ignored", "id": "m2"})
    assert conn.gateway.customer.calls[-1] == ("say", "just words")
    conn.send({"type": "message", "markup": "", "id": "m3"})
    [error] = conn.received()
    assert error == {
        "type": "error",
        "code": "bad_request",
        "text": "markup must be a non-empty string",
        "id": "m3",
    }


def test_a_plain_client_sends_text_and_its_markup_field_is_unknown():
    conn = customer(["typing"])
    conn.send({"type": "message", "markup": "**x**", "text": "**x**", "id": "m1"})
    assert conn.gateway.customer.calls == [("say", "**x**")]


def test_an_agent_writes_markup():
    conn = agent(ALL)
    conn.send(
        {"type": "message", "conversation": "c-1", "markup": "_thanks_", "text": "x", "id": "a1"}
    )
    assert conn.gateway.agent.calls[-1] == ("say", "c-1", "thanks", ("markup", "_thanks_"))


def test_markup_reaches_rich_parties_only():
    message = ev.Message("c-1", ev.AGENT, "g-1", "hi docs (https://e.example)", 1.5, "**hi**")
    rich, plain = customer(ALL), customer(["typing"])
    for conn in (rich, plain):
        conn.protocol.session.deliver(message)
    [got] = rich.received()
    assert got["markup"] == "**hi**" and got["text"] == "hi docs (https://e.example)"
    [got] = plain.received()
    assert "markup" not in got and got["text"] == "hi docs (https://e.example)"


def test_customer_receipts_for_messages_delivered_to_it():
    conn = customer(ALL)
    session = conn.protocol.session
    session.deliver(ev.Message("c-1", ev.AGENT, "g-1", "hello", 1.0))
    session.deliver(ev.Message("c-1", ev.SYSTEM, "g-2", "a notice", 1.0))
    conn.received()
    conn.send(
        {"type": "receipt", "msg": "g-1", "state": "delivered"},
        {"type": "receipt", "msg": "g-1", "state": "delivered"},  # said already
        {"type": "receipt", "msg": "g-1", "state": "read"},
        {"type": "receipt", "msg": "g-1", "state": "delivered"},  # read says more
    )
    assert conn.gateway.customer.calls == [
        ("receipt", "g-1", "delivered"),
        ("receipt", "g-1", "read"),
    ]
    assert conn.received() == []
    conn.send(
        {"type": "receipt", "msg": "g-2", "state": "read", "id": "r1"},  # not the agent's
        {"type": "receipt", "msg": "g-9", "state": "read", "id": "r2"},
        {"type": "receipt", "msg": "g-1", "state": "seen", "id": "r3"},
        {"type": "receipt", "msg": 7, "state": "read", "id": "r4"},
    )
    assert [(e["id"], e["code"]) for e in conn.received()] == [
        ("r1", "bad_request"),
        ("r2", "bad_request"),
        ("r3", "bad_request"),
        ("r4", "bad_request"),
    ]
    assert len(conn.gateway.customer.calls) == 2


def test_receipts_need_the_feature():
    conn = customer(["typing"])
    conn.protocol.session.deliver(ev.Message("c-1", ev.AGENT, "g-1", "hello", 1.0))
    conn.protocol.session.deliver(ev.Receipt("c-1", "g-5", "read"))
    assert [f["type"] for f in conn.received()] == ["message"]
    conn.send({"type": "receipt", "msg": "g-1", "state": "read", "id": "r"})
    [error] = conn.received()
    assert error["code"] == "not_allowed" and error["id"] == "r"
    assert conn.gateway.customer.calls == []


def test_receipts_reach_a_party_that_negotiated_them():
    conn = customer(ALL)
    conn.protocol.session.deliver(ev.Receipt("c-1", "g-5", "read"))
    assert conn.received() == [
        {"type": "receipt", "conversation": "c-1", "msg": "g-5", "state": "read"}
    ]


def test_agent_receipts_name_the_conversation():
    conn = agent(ALL)
    conn.protocol.session.deliver(ev.Message("c-1", ev.CUSTOMER, "g-1", "hello", 1.0))
    conn.received()
    conn.send({"type": "receipt", "conversation": "c-2", "msg": "g-1", "state": "read", "id": "x"})
    assert conn.received()[0]["code"] == "bad_request"
    conn.send({"type": "receipt", "conversation": "c-1", "msg": "g-1", "state": "read"})
    assert conn.gateway.agent.calls[-1] == ("receipt", "c-1", "g-1", "read")


def test_only_so_many_messages_are_remembered_for_receipts():
    conn = customer(ALL)
    for i in range(600):
        conn.protocol.session.deliver(ev.Message("c-1", ev.AGENT, f"g-{i}", "x", 1.0))
    conn.received()
    conn.send(
        {"type": "receipt", "msg": "g-0", "state": "read", "id": "old"},
        {"type": "receipt", "msg": "g-599", "state": "read"},
    )
    assert conn.received()[0]["id"] == "old"
    assert conn.gateway.customer.calls == [("receipt", "g-599", "read")]


def test_presence_with_a_reason():
    gateway = FakeGateway()
    conn = agent(["typing"], gateway)
    conn.send({"type": "presence", "status": "away", "reason": "Lunch"})
    assert gateway.agent.calls[-1] == ("set_presence", "away")
    conn.send({"type": "presence", "status": "away", "reason": "x" * 65, "id": "p"})
    [error] = conn.received()
    assert error["code"] == "bad_request" and error["id"] == "p"
    conn.send({"type": "presence", "status": "away", "reason": 5, "id": "q"})
    assert conn.received()[0]["code"] == "bad_request"
