"""JSON-IM/1 protocol: session start, both roles' frames, errors, heartbeat, events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonim_helpers import (
    AGENT_HELLO,
    CUSTOMER_HELLO,
    Connection,
    FakeGateway,
    FakeSession,
    agent,
    connect,
    customer,
    welcome,
)
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from zope.interface.verify import verifyObject

from gateway import __version__
from gateway.core import events
from gateway.core.errors import AuthFailed, BadRequest, NotAllowed, Unavailable
from gateway.core.interfaces import IParty
from protocols.jsonim import JsonImFactory, JsonImProtocol
from protocols.jsonim.settings import JsonImSettings


def error(code: str, text: str, frame_id: str | None = None) -> dict[str, Any]:
    frame = {"type": "error", "code": code, "text": text}
    if frame_id is not None:
        frame["id"] = frame_id
    return frame


def codes(frames: list[dict[str, Any]]) -> list[str]:
    return [f.get("code", f["type"]) for f in frames]


def capture_log(conn: Connection) -> list[dict[str, Any]]:
    logged: list[dict[str, Any]] = []
    conn.protocol.session._log = Logger(observer=logged.append)
    return logged


# -- the party interface and the factory --------------------------------------


def test_protocol_provides_iparty() -> None:
    assert verifyObject(IParty, connect().protocol.session)


def test_factory_builds_protocols() -> None:
    factory = JsonImFactory(FakeGateway(), JsonImSettings(), server_name="x", clock=Clock())
    protocol = factory.buildProtocol(None)
    assert isinstance(protocol, JsonImProtocol)
    assert protocol.factory is factory


# -- customer session start ----------------------------------------------------


def test_customer_hello_and_welcome() -> None:
    conn = connect()
    conn.send({**CUSTOMER_HELLO, "features": ["typing", "video"]})
    assert conn.raw() == (
        b'{"type":"welcome","session":"s-c1","server":{"name":"imgateway","version":"'
        + __version__.encode()
        + b'"},"max_frame":65536,"heartbeat_s":30,"features":["typing"]}\n'
    )
    [arrival] = conn.gateway.arrivals
    assert arrival == {
        "party": conn.protocol.session,
        "protocol": "jsonim",
        "client": events.ClientInfo("acme-widget", "2.3.1"),
        "answers": {},
        "features": frozenset({"typing"}),
    }
    assert not conn.closed


def test_customer_hello_minimal() -> None:
    conn = connect()
    conn.send({"type": "hello", "protocol": "jsonim/1", "role": "customer"})
    assert conn.received() == [welcome("s-c1", [])]
    [arrival] = conn.gateway.arrivals
    assert arrival["client"] == events.ClientInfo("unknown", "")
    assert arrival["features"] == frozenset()


def test_customer_hello_partial_client_and_nulls() -> None:
    conn = connect()
    conn.send({**CUSTOMER_HELLO, "client": {"name": "nc"}, "features": None, "topic": None})
    assert conn.received() == [welcome("s-c1", [])]
    assert conn.gateway.arrivals[0]["client"] == events.ClientInfo("nc", "")
    assert conn.gateway.arrivals[0]["answers"] == {}


def test_customer_answers_from_identity_and_topic() -> None:
    conn = connect()
    conn.send(
        {
            **CUSTOMER_HELLO,
            "identity": {"name": "Dana", "email": "dana@example.org", "topic": "old"},
            "topic": "billing",
        }
    )
    assert conn.received() == [welcome("s-c1")]
    assert conn.gateway.arrivals[0]["answers"] == {
        "name": "Dana",
        "email": "dana@example.org",
        "topic": "billing",
    }


def test_events_delivered_during_arrival_follow_welcome() -> None:
    gateway = FakeGateway(
        on_arrival=lambda party: (
            party.deliver(events.Message("c-1", "system", "g-0", "Welcome!", 1.0)),
            party.deliver(events.Prompt("name", "Your name?")),
        )
    )
    conn = connect(gateway)
    conn.send(CUSTOMER_HELLO)
    assert conn.received() == [
        welcome("s-c1"),
        {
            "type": "message",
            "conversation": "c-1",
            "from": "system",
            "msg": "g-0",
            "text": "Welcome!",
            "ts": 1.0,
        },
        {"type": "prompt", "field": "name", "text": "Your name?"},
    ]


def test_close_during_arrival_comes_after_welcome() -> None:
    gateway = FakeGateway(
        on_arrival=lambda party: (
            party.deliver(events.Ended("c-1", "closed")),
            party.close("outside service hours"),
        )
    )
    conn = connect(gateway)
    conn.send(CUSTOMER_HELLO, {"type": "ping", "id": "p"})
    assert conn.received() == [
        welcome("s-c1"),
        {"type": "ended", "conversation": "c-1", "reason": "closed"},
    ]
    assert conn.closed
    assert conn.clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    ("hello", "expected"),
    [
        ({"type": "ping", "id": "p1"}, error("not_allowed", "hello expected", "p1")),
        ({"type": "message", "text": "hi"}, error("not_allowed", "hello expected")),
        (
            {**CUSTOMER_HELLO, "protocol": "jsonim/2", "id": "h"},
            error("unavailable", "this server speaks jsonim/1 only", "h"),
        ),
        (
            {"type": "hello", "role": "customer"},
            error("bad_request", "protocol must be a string"),
        ),
        (
            {**CUSTOMER_HELLO, "role": "admin"},
            error("bad_request", "role must be customer or agent"),
        ),
        (
            {**CUSTOMER_HELLO, "role": ["customer"]},
            error("bad_request", "role must be customer or agent"),
        ),
        ({**CUSTOMER_HELLO, "client": "gajim"}, error("bad_request", "client must be an object")),
        (
            {**CUSTOMER_HELLO, "client": {"name": 5}},
            error("bad_request", "name must be a string"),
        ),
        (
            {**CUSTOMER_HELLO, "client": {"version": 1.0}},
            error("bad_request", "version must be a string"),
        ),
        (
            {**CUSTOMER_HELLO, "features": "typing"},
            error("bad_request", "features must be a list of strings"),
        ),
        (
            {**CUSTOMER_HELLO, "features": ["typing", 1]},
            error("bad_request", "features must be a list of strings"),
        ),
        (
            {**CUSTOMER_HELLO, "identity": {"age": 40}},
            error("bad_request", "identity must be an object of strings"),
        ),
        (
            {**CUSTOMER_HELLO, "identity": ["Dana"]},
            error("bad_request", "identity must be an object of strings"),
        ),
        ({**CUSTOMER_HELLO, "topic": 3}, error("bad_request", "topic must be a string")),
        (
            {**CUSTOMER_HELLO, "id": 3},
            error("bad_request", "id must be a string of at most 64 characters"),
        ),
    ],
)
def test_bad_hello_closes(hello: dict[str, Any], expected: dict[str, Any]) -> None:
    conn = connect()
    conn.send(hello, CUSTOMER_HELLO)
    # The second hello in the same read is not looked at once closing.
    assert conn.received() == [expected]
    assert conn.closed
    assert conn.gateway.arrivals == []
    assert conn.clock.getDelayedCalls() == []


def test_customer_arrival_refused_by_core() -> None:
    conn = connect(FakeGateway(arrival_error=Unavailable("the service is shutting down")))
    conn.send({**CUSTOMER_HELLO, "id": "h1"})
    assert conn.received() == [error("unavailable", "the service is shutting down", "h1")]
    assert conn.closed


def test_customer_arrival_failing_in_core_is_internal() -> None:
    conn = connect(FakeGateway(arrival_error=RuntimeError("boom")))
    logged = capture_log(conn)
    conn.send(CUSTOMER_HELLO)
    assert conn.received() == [error("internal", "internal error")]
    assert conn.closed
    assert any(e.get("log_failure") is not None for e in logged)


def test_garbage_before_hello_is_a_bad_frame() -> None:
    conn = connect()
    conn.send(b"hello?\n", CUSTOMER_HELLO)
    assert conn.received() == [error("bad_frame", "not valid JSON"), welcome("s-c1")]


def test_second_hello_not_allowed() -> None:
    conn = customer()
    conn.send({**CUSTOMER_HELLO, "id": "h2"}, {"type": "ping", "id": "p"})
    assert conn.received() == [
        error("not_allowed", "hello is not allowed here", "h2"),
        {"type": "pong", "id": "p"},
    ]
    assert len(conn.gateway.arrivals) == 1
    assert not conn.closed


def test_hello_timeout() -> None:
    conn = connect(config=JsonImSettings(hello_timeout_s=10))
    conn.clock.advance(9.9)
    assert conn.received() == []
    assert not conn.closed
    conn.clock.advance(0.1)
    assert conn.received() == [error("not_allowed", "hello expected")]
    assert conn.closed


def test_hello_in_time_stops_the_timeout() -> None:
    conn = connect(config=JsonImSettings(hello_timeout_s=10, heartbeat_s=100))
    conn.clock.advance(5)
    conn.send(CUSTOMER_HELLO)
    conn.clock.advance(50)
    assert codes(conn.received()) == ["welcome"]
    assert not conn.closed


# -- agent session start ---------------------------------------------------------


def test_agent_login_and_welcome() -> None:
    conn = connect()
    conn.send(AGENT_HELLO)
    assert conn.received() == [welcome("s-a1")]
    [login] = conn.gateway.logins
    assert login == {
        "party": conn.protocol.session,
        "protocol": "jsonim",
        "name": "anna",
        "password": "secret",
        "client": events.ClientInfo("agent-desk", "1.0"),
        "features": frozenset({"typing"}),
        # The peer's host, for the one auth-failure log line.
        "address": "192.168.1.1",
    }


@pytest.mark.parametrize(
    "auth",
    [None, "anna:secret", {"user": "anna"}, {"password": "x"}, {"user": 1, "password": "x"}],
)
def test_agent_without_good_credentials(auth: Any) -> None:
    conn = connect()
    conn.send({**AGENT_HELLO, "auth": auth, "id": "h"})
    assert conn.received() == [
        error("auth_failed", "auth with a string user and password is required", "h")
    ]
    assert conn.closed
    assert conn.gateway.logins == []


def test_agent_wrong_password() -> None:
    conn = connect(FakeGateway(login=fail(AuthFailed("authentication failed"))))
    logged = capture_log(conn)
    conn.send({**AGENT_HELLO, "id": "h"}, {"type": "ping", "id": "p"})
    assert conn.received() == [error("auth_failed", "authentication failed", "h")]
    assert conn.closed
    # No password in any log line or its fields.
    assert logged
    assert not any("secret" in formatEvent(e) or "secret" in repr(e) for e in logged)


def test_agent_login_refused_synchronously() -> None:
    conn = connect(FakeGateway(login_error=Unavailable("the service is shutting down")))
    conn.send(AGENT_HELLO)
    assert conn.received() == [error("unavailable", "the service is shutting down")]
    assert conn.closed


def test_agent_login_failing_in_core_is_internal() -> None:
    login: Deferred[FakeSession] = Deferred()
    conn = connect(FakeGateway(login=login))
    logged = capture_log(conn)
    conn.send(AGENT_HELLO)
    login.errback(RuntimeError("database gone"))
    assert conn.received() == [error("internal", "internal error")]
    assert conn.closed
    assert any(e.get("log_failure") is not None for e in logged)


def test_agent_frames_wait_for_login_in_order() -> None:
    login: Deferred[FakeSession] = Deferred()
    gateway = FakeGateway(login=login)
    conn = connect(gateway)
    conn.send(
        AGENT_HELLO,
        {"type": "presence", "status": "available"},
        b"junk\n",
        {"type": "ping", "id": "p1"},
    )
    conn.protocol.session.deliver(events.Revoked("o-0", "timeout"))
    assert conn.received() == []
    assert gateway.agent.calls == []
    login.callback(gateway.agent)
    assert conn.received() == [
        welcome("s-a1"),
        {"type": "revoked", "offer": "o-0", "reason": "timeout"},
        error("bad_frame", "not valid JSON"),
        {"type": "pong", "id": "p1"},
    ]
    assert gateway.agent.calls == [("set_presence", "available")]


def test_agent_frames_beyond_the_login_queue_are_refused() -> None:
    login: Deferred[FakeSession] = Deferred()
    conn = connect(FakeGateway(login=login))
    pings = [{"type": "ping", "id": f"p{i}"} for i in range(18)]
    conn.send(AGENT_HELLO, *pings)
    assert conn.received() == [
        error("not_allowed", "login in progress", "p16"),
        error("not_allowed", "login in progress", "p17"),
    ]
    login.callback(conn.gateway.agent)
    assert conn.received() == [welcome("s-a1")] + [
        {"type": "pong", "id": f"p{i}"} for i in range(16)
    ]


def test_agent_gone_before_login_completes() -> None:
    login: Deferred[FakeSession] = Deferred()
    conn = connect(FakeGateway(login=login))
    conn.send(AGENT_HELLO, {"type": "ping"})
    conn.lose()
    assert conn.gateway.agent.calls == []
    login.callback(conn.gateway.agent)
    assert conn.gateway.agent.calls == [("disconnected",)]
    assert conn.received() == []


def test_newest_agent_login_closes_the_old_connection() -> None:
    conn = agent()
    conn.protocol.session.close("logged in from another connection")
    conn.protocol.session.deliver(events.Revoked("o-1", "taken"))
    assert conn.closed
    assert conn.received() == []


# -- customer frames ---------------------------------------------------------------


def test_customer_message_is_acknowledged_when_stored() -> None:
    conn = customer()
    session = conn.gateway.customer
    conn.send({"type": "message", "text": "hi", "id": "m2"}, {"type": "message", "text": "again"})
    assert session.calls == [("say", "hi"), ("say", "again")]
    assert conn.received() == []
    session.says[0].callback("g-1")
    session.says[1].callback("g-2")
    assert conn.raw() == b'{"type":"ack","id":"m2","msg":"g-1"}\n{"type":"ack","msg":"g-2"}\n'


def test_acks_follow_the_order_messages_are_stored() -> None:
    conn = customer()
    conn.send(
        {"type": "message", "text": "a", "id": "1"}, {"type": "message", "text": "b", "id": "2"}
    )
    first, second = conn.gateway.customer.says
    second.callback("g-2")
    first.callback("g-1")
    assert conn.received() == [
        {"type": "ack", "id": "2", "msg": "g-2"},
        {"type": "ack", "id": "1", "msg": "g-1"},
    ]


def test_customer_message_refused_by_core() -> None:
    conn = customer()
    conn.send({"type": "message", "text": "hi", "id": "m"})
    conn.gateway.customer.says[0].errback(NotAllowed("the conversation has ended"))
    assert conn.received() == [error("not_allowed", "the conversation has ended", "m")]
    assert not conn.closed


def test_customer_message_store_failure_is_internal() -> None:
    conn = customer()
    logged = capture_log(conn)
    conn.send({"type": "message", "text": "hi", "id": "m"}, {"type": "message", "text": "x"})
    conn.gateway.customer.says[0].errback(OSError("disk full"))
    conn.gateway.customer.says[1].callback("g-9")
    assert conn.received() == [
        error("internal", "internal error", "m"),
        {"type": "ack", "msg": "g-9"},
    ]
    assert any(e.get("log_failure") is not None for e in logged)
    assert not conn.closed


@pytest.mark.parametrize("text", [None, "", 5, ["hi"]])
def test_customer_message_needs_text(text: Any) -> None:
    conn = customer()
    frame = (
        {"type": "message", "id": "m"}
        if text is None
        else {"type": "message", "text": text, "id": "m"}
    )
    conn.send(frame)
    assert conn.received() == [error("bad_request", "text must be a non-empty string", "m")]
    assert conn.gateway.customer.calls == []


def test_customer_typing() -> None:
    conn = customer()
    conn.send({"type": "typing", "state": "active"}, {"type": "typing", "state": "paused"})
    conn.send({"type": "typing", "state": "asleep", "id": "t"})
    assert conn.gateway.customer.calls == [("typing", "active"), ("typing", "paused")]
    assert conn.received() == [error("bad_request", "state must be active or paused", "t")]


def test_customer_end() -> None:
    conn = customer()
    conn.gateway.customer.raises["end"] = NotAllowed("the conversation has ended")
    conn.send({"type": "end", "id": "e"})
    assert conn.gateway.customer.calls == [("end",)]
    assert conn.received() == [error("not_allowed", "the conversation has ended", "e")]


def test_ping_pong() -> None:
    conn = customer()
    conn.send({"type": "ping", "id": "p1"}, {"type": "ping"})
    assert conn.raw() == b'{"type":"pong","id":"p1"}\n{"type":"pong"}\n'


@pytest.mark.parametrize("kind", ["accept", "reject", "presence", "transfer"])
def test_customer_may_not_send_agent_frames(kind: str) -> None:
    conn = customer()
    conn.send({"type": kind, "offer": "o-1", "status": "away", "id": "x"})
    assert conn.received() == [error("not_allowed", f"{kind} is not allowed here", "x")]
    assert conn.gateway.customer.calls == []
    assert not conn.closed


def test_unknown_type_goes_on() -> None:
    conn = customer()
    conn.send({"type": "dance", "id": "d"}, {"type": "ping", "id": "p"})
    assert conn.received() == [
        error("unknown_type", "unknown type: dance", "d"),
        {"type": "pong", "id": "p"},
    ]
    assert not conn.closed


def test_unknown_fields_are_ignored() -> None:
    conn = customer()
    conn.send({"type": "ping", "id": "p", "future": {"x": [1, 2]}})
    assert conn.received() == [{"type": "pong", "id": "p"}]


def test_repeated_bad_frames_close() -> None:
    conn = customer()
    conn.send(b"nope\n", b"[]\n", {"type": "ping", "id": "p"})
    assert conn.received() == [
        error("bad_frame", "not valid JSON"),
        error("bad_frame", "a frame must be a JSON object"),
        {"type": "pong", "id": "p"},
    ]
    assert not conn.closed
    conn.send(b'{"type":1}\n', {"type": "ping", "id": "late"})
    assert conn.received() == [error("bad_frame", "a frame needs a string type")]
    assert conn.closed
    assert conn.clock.getDelayedCalls() == []


def test_bad_frame_limit_is_configurable() -> None:
    conn = customer(max_bad_frames=1)
    conn.send(b"\xff\n")
    assert conn.received() == [error("bad_frame", "not valid UTF-8")]
    assert conn.closed


def test_bad_id_is_a_bad_request_without_echo() -> None:
    conn = customer()
    conn.send({"type": "ping", "id": "x" * 65}, {"type": "ping", "id": 7})
    assert conn.received() == [
        error("bad_request", "id must be a string of at most 64 characters"),
        error("bad_request", "id must be a string of at most 64 characters"),
    ]
    assert not conn.closed


def test_too_large_closes_after_earlier_frames() -> None:
    conn = customer(max_frame=256)
    conn.send({"type": "ping", "id": "p"}, b"x" * 257, {"type": "ping", "id": "late"})
    assert conn.received() == [
        {"type": "pong", "id": "p"},
        error("too_large", "frame longer than 256 bytes"),
    ]
    assert conn.closed


def test_too_large_detected_before_the_line_ends() -> None:
    conn = customer(max_frame=256)
    conn.send(b'{"type":"message","text":"' + b"x" * 200)
    assert conn.received() == []
    conn.send(b"x" * 100)
    assert conn.received() == [error("too_large", "frame longer than 256 bytes")]
    assert conn.closed
    conn.send(b'"}\n{"type":"ping"}\n')
    assert conn.received() == []


def test_frame_split_byte_by_byte() -> None:
    conn = customer()
    data = json.dumps({"type": "message", "text": "héllo", "id": "m"}).encode() + b"\r\n\n"
    for i in range(len(data)):
        conn.send(data[i : i + 1])
    assert conn.gateway.customer.calls == [("say", "héllo")]


def test_hello_and_frames_split_at_every_point() -> None:
    stream = (
        json.dumps(CUSTOMER_HELLO).encode()
        + b'\r\n\n{"type":"message","text":"h\xc3\xa9"}\n{"type":"ping","id":"p"}\r\n'
    )
    for cut in range(len(stream) + 1):
        conn = connect()
        conn.send(stream[:cut])
        conn.send(stream[cut:])
        assert conn.received() == [welcome("s-c1"), {"type": "pong", "id": "p"}], cut
        assert conn.gateway.customer.calls == [("say", "hé")], cut


def test_rate_limit_on_messages_and_typing() -> None:
    conn = customer(messages_per_second=1, message_burst=2)
    conn.send(
        {"type": "message", "text": "1"},
        {"type": "typing", "state": "active"},
        {"type": "message", "text": "3", "id": "m3"},
        {"type": "ping", "id": "p"},
    )
    assert conn.received() == [
        error("rate_limited", "too many messages, slow down", "m3"),
        {"type": "pong", "id": "p"},
    ]
    assert conn.gateway.customer.calls == [("say", "1"), ("typing", "active")]
    conn.clock.advance(1)
    conn.send({"type": "message", "text": "4"}, {"type": "typing", "state": "paused", "id": "t"})
    assert conn.received() == [error("rate_limited", "too many messages, slow down", "t")]
    assert conn.gateway.customer.calls[-1] == ("say", "4")
    assert not conn.closed


def test_core_bug_is_internal_and_session_goes_on() -> None:
    conn = customer()
    conn.gateway.customer.raises["typing"] = KeyError("bug")
    logged = capture_log(conn)
    conn.send({"type": "typing", "state": "active", "id": "t"}, {"type": "ping", "id": "p"})
    assert conn.received() == [
        error("internal", "internal error", "t"),
        {"type": "pong", "id": "p"},
    ]
    assert any(e.get("log_failure") is not None for e in logged)
    assert not conn.closed


# -- agent frames -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "call"),
    [
        ({"type": "presence", "status": "available"}, ("set_presence", "available")),
        ({"type": "accept", "offer": "o-1"}, ("accept", "o-1")),
        ({"type": "reject", "offer": "o-1"}, ("reject", "o-1")),
        ({"type": "typing", "conversation": "c-1", "state": "active"}, ("typing", "c-1", "active")),
        (
            {"type": "transfer", "conversation": "c-1", "to": {"queue": "tech"}},
            ("transfer", "c-1", ("queue", "tech")),
        ),
        (
            {"type": "transfer", "conversation": "c-1", "to": {"agent": "bob"}},
            ("transfer", "c-1", ("agent", "bob")),
        ),
        ({"type": "end", "conversation": "c-1"}, ("end", "c-1")),
    ],
)
def test_agent_requests(frame: dict[str, Any], call: tuple[Any, ...]) -> None:
    conn = agent()
    conn.send(frame)
    assert conn.gateway.agent.calls == [call]
    assert conn.received() == []


def test_agent_message_is_acknowledged() -> None:
    conn = agent()
    conn.send({"type": "message", "conversation": "c-1", "text": "Hello!", "id": "a1"})
    assert conn.gateway.agent.calls == [("say", "c-1", "Hello!")]
    conn.gateway.agent.says[0].callback("g-5")
    assert conn.raw() == b'{"type":"ack","id":"a1","msg":"g-5"}\n'


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        ({"type": "presence"}, "status must be a string"),
        ({"type": "accept", "offer": 1}, "offer must be a string"),
        ({"type": "reject"}, "offer must be a string"),
        ({"type": "message", "text": "hi"}, "conversation must be a string"),
        ({"type": "message", "conversation": "c-1", "text": ""}, "text must be a non-empty string"),
        ({"type": "typing", "conversation": "c-1"}, "state must be active or paused"),
        ({"type": "typing", "state": "active"}, "conversation must be a string"),
        ({"type": "transfer", "conversation": "c-1"}, "to must name either a queue or an agent"),
        (
            {"type": "transfer", "conversation": "c-1", "to": "tech"},
            "to must name either a queue or an agent",
        ),
        (
            {"type": "transfer", "conversation": "c-1", "to": {}},
            "to must name either a queue or an agent",
        ),
        (
            {"type": "transfer", "conversation": "c-1", "to": {"queue": "q", "agent": "bob"}},
            "to must name either a queue or an agent",
        ),
        ({"type": "transfer", "conversation": "c-1", "to": {"queue": 1}}, "queue must be a string"),
        ({"type": "transfer", "to": {"queue": "tech"}}, "conversation must be a string"),
        ({"type": "end"}, "conversation must be a string"),
    ],
)
def test_agent_bad_requests(frame: dict[str, Any], text: str) -> None:
    conn = agent()
    conn.send({**frame, "id": "x"})
    assert conn.received() == [error("bad_request", text, "x")]
    assert conn.gateway.agent.calls == []
    assert not conn.closed


@pytest.mark.parametrize(
    ("method", "exc", "frame"),
    [
        ("accept", NotAllowed("no such offer"), {"type": "accept", "offer": "o-9"}),
        ("set_presence", BadRequest("bad status"), {"type": "presence", "status": "busy"}),
        ("end", NotAllowed("not your conversation"), {"type": "end", "conversation": "c-2"}),
    ],
)
def test_agent_request_refused_by_core(method: str, exc: Exception, frame: dict) -> None:
    conn = agent()
    conn.gateway.agent.raises[method] = exc
    conn.send({**frame, "id": "r"}, {"type": "ping", "id": "p"})
    assert conn.received() == [error(exc.code, exc.text, "r"), {"type": "pong", "id": "p"}]


def test_agent_hello_again_not_allowed() -> None:
    conn = agent()
    conn.send(AGENT_HELLO)
    assert conn.received() == [error("not_allowed", "hello is not allowed here")]
    assert len(conn.gateway.logins) == 1


# -- events to the party ------------------------------------------------------------


def test_customer_events() -> None:
    conn = customer()
    conn.protocol.session.deliver(events.Queued(3, 40))
    conn.protocol.session.deliver(events.Connected("c-1", "Anna"))
    conn.protocol.session.deliver(events.Typing("c-1", "active"))
    conn.protocol.session.deliver(events.Ended("c-1", "agent"))
    assert conn.raw() == (
        b'{"type":"queued","position":3,"eta_s":40}\n'
        b'{"type":"connected","conversation":"c-1","agent":{"alias":"Anna"}}\n'
        b'{"type":"typing","conversation":"c-1","state":"active"}\n'
        b'{"type":"ended","conversation":"c-1","reason":"agent"}\n'
    )


def test_agent_events() -> None:
    conn = agent()
    card = events.CustomerCard("c-7f3a", "xmpp", events.ClientInfo("Gajim", "1.8.4"), None, {})
    conn.protocol.session.deliver(events.Offer("o-1", "c-1", 20, card))
    conn.protocol.session.deliver(
        events.Connected("c-1", "c-7f3a", (events.HistoryEntry("customer", "hi", 2.5),))
    )
    assert conn.received() == [
        {
            "type": "offer",
            "offer": "o-1",
            "conversation": "c-1",
            "expires_in_s": 20,
            "customer": {
                "alias": "c-7f3a",
                "protocol": "xmpp",
                "client": {"name": "Gajim", "version": "1.8.4"},
                "topic": None,
                "identity": {},
            },
        },
        {
            "type": "connected",
            "conversation": "c-1",
            "customer": {"alias": "c-7f3a"},
            "history": [{"from": "customer", "text": "hi", "ts": 2.5}],
        },
    ]


def test_typing_only_when_negotiated() -> None:
    conn = connect()
    conn.send({**CUSTOMER_HELLO, "features": []})
    assert conn.received() == [welcome("s-c1", [])]
    conn.protocol.session.deliver(events.Typing("c-1", "active"))
    conn.protocol.session.deliver(events.Queued(1, 10))
    assert codes(conn.received()) == ["queued"]


def test_unrenderable_event_is_dropped() -> None:
    conn = customer()
    capture_log(conn)
    conn.protocol.session.deliver(object())
    assert conn.received() == []
    assert not conn.closed


def test_close_from_core() -> None:
    conn = customer()
    conn.protocol.session.close("shutdown")
    assert conn.closed
    conn.protocol.session.deliver(events.Queued(1, 1))
    conn.send({"type": "ping", "id": "p"})
    assert conn.received() == []
    assert conn.clock.getDelayedCalls() == []


# -- heartbeat and the end of a connection ------------------------------------------


def test_heartbeat_ping_then_close() -> None:
    conn = customer(heartbeat_s=30)
    conn.clock.advance(29.9)
    assert conn.received() == []
    conn.clock.advance(0.1)
    assert conn.received() == [{"type": "ping", "id": "hb-1"}]
    conn.clock.advance(29.9)
    assert not conn.closed
    conn.clock.advance(0.1)
    assert conn.closed
    assert conn.received() == []
    assert conn.clock.getDelayedCalls() == []


def test_any_frame_resets_the_heartbeat() -> None:
    conn = customer(heartbeat_s=30)
    conn.clock.advance(20)
    conn.send({"type": "typing", "state": "active"})
    conn.clock.advance(20)
    assert conn.received() == []
    conn.clock.advance(10)
    assert conn.received() == [{"type": "ping", "id": "hb-1"}]
    conn.clock.advance(15)
    conn.send({"type": "pong", "id": "hb-1"})
    conn.clock.advance(29)
    assert conn.received() == []
    assert not conn.closed
    conn.clock.advance(1)
    assert conn.received() == [{"type": "ping", "id": "hb-2"}]
    conn.send(b"not json\n")
    conn.clock.advance(30)
    assert codes(conn.received()) == ["bad_frame", "ping"]
    assert not conn.closed


def test_heartbeat_is_stated_as_configured() -> None:
    conn = connect(config=JsonImSettings(heartbeat_s=2.5))
    conn.send(CUSTOMER_HELLO)
    assert conn.received()[0]["heartbeat_s"] == 2.5
    conn.clock.advance(2.5)
    assert conn.received() == [{"type": "ping", "id": "hb-1"}]


def test_agent_heartbeat_starts_at_welcome() -> None:
    login: Deferred[FakeSession] = Deferred()
    conn = connect(FakeGateway(login=login), JsonImSettings(heartbeat_s=30, hello_timeout_s=5))
    conn.send(AGENT_HELLO)
    conn.clock.advance(100)
    assert conn.received() == []
    login.callback(conn.gateway.agent)
    conn.clock.advance(30)
    assert conn.received() == [welcome("s-a1"), {"type": "ping", "id": "hb-1"}]


def test_connection_lost_ends_the_session_once() -> None:
    conn = customer()
    conn.send({"type": "message", "text": "hi", "id": "m"})
    conn.lose()
    conn.lose()
    assert conn.gateway.customer.calls == [("say", "hi"), ("disconnected",)]
    assert conn.clock.getDelayedCalls() == []
    # A late store answer and late events write nothing.
    conn.gateway.customer.says[0].callback("g-1")
    conn.protocol.session.deliver(events.Queued(1, 1))
    assert conn.received() == []


def test_connection_lost_before_hello() -> None:
    conn = connect()
    conn.lose()
    assert conn.clock.getDelayedCalls() == []
    assert conn.gateway.arrivals == []


def test_sessions_do_not_affect_each_other() -> None:
    gateway = FakeGateway()
    bad, good = connect(gateway), connect(gateway)
    bad.send(CUSTOMER_HELLO)
    good.send(CUSTOMER_HELLO)
    bad.send(b"x\n" * 3)
    good.send({"type": "ping", "id": "p"})
    assert bad.closed
    assert not good.closed
    assert good.received() == [welcome("s-c1"), {"type": "pong", "id": "p"}]
