"""Every JSON-IM error code over a real socket, each beside a healthy conversation.

After each bad case the healthy customer and agent exchange one message each way and
must get their acks: a bad frame never affects another session. ``internal`` (a store
fault) cannot be provoked from outside; the unit tests cover it with a failing store.
"""

from __future__ import annotations

import json
import socket

import attrs
import harness
import pytest
from jsonim_client import (
    JsonImClient,
    answer_interview,
    exchange,
    hello_agent,
    hello_customer,
)

MAX_FRAME = 4096
AGENT, PASSWORD = "hal", "hal-Secret-9"


@attrs.define
class Pair:
    """A customer and an agent in a conversation that must carry on unaffected."""

    customer: JsonImClient
    agent: JsonImClient
    conversation: str
    prompts: list[dict]
    rounds: int = 0

    def check(self) -> None:
        self.rounds += 1
        n = self.rounds
        exchange(self.customer, self.agent, self.conversation, f"still there? {n}", f"yes {n}")
        for client in (self.customer, self.agent):
            troubles = client.frames_of("error") + client.frames_of("ended")
            assert not troubles, f"the healthy {client.name} was affected: {troubles}"

    def close(self) -> None:
        self.customer.close()
        self.agent.close()


def start_site(tmp_path_factory, name: str, **limits):
    root = tmp_path_factory.mktemp(name)
    config = harness.write_config(root, **limits)
    harness.add_agent(config, AGENT, PASSWORD, "Hal")
    gateway = harness.start_gateway(root / "cwd", config, name)
    agent = gateway.connect("healthy agent")
    hello_agent(agent, AGENT, PASSWORD)
    customer = gateway.connect("healthy customer")
    # Answers given in hello are not asked again; answer_interview copes either way.
    hello_customer(customer, identity={"name": "Hana"}, topic="billing")
    prompts, _ = answer_interview(customer, {"name": "Hana", "topic": "billing"})
    offer = agent.expect("offer")
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    customer.expect("connected", conversation=offer["conversation"])
    return gateway, Pair(customer, agent, offer["conversation"], prompts)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    gateway, pair = start_site(tmp_path_factory, "errors", max_frame=MAX_FRAME)
    yield gateway, pair
    pair.close()
    gateway.stop()


@pytest.fixture
def gateway(site):
    return site[0]


@pytest.fixture
def pair(site):
    return site[1]


@pytest.fixture
def customer(gateway):
    """A fresh customer session, past hello."""
    client = gateway.connect("customer")
    hello_customer(client)
    yield client
    client.close()


@pytest.fixture
def raw(gateway):
    """A fresh connection that has sent nothing."""
    client = gateway.connect("connection")
    yield client
    client.close()


def expect_error(client: JsonImClient, code: str, **fields) -> dict:
    error = client.expect("error")
    assert error.get("code") == code, client._describe(f"wanted error {code}, got {error}")
    assert isinstance(error.get("text"), str), error
    for key, value in fields.items():
        assert error.get(key) == value, error
    return error


def test_not_json_is_bad_frame_and_the_third_closes(customer, pair):
    customer.send_raw(b"this is not json\n")
    expect_error(customer, "bad_frame")
    customer.sync()  # one bad frame does not end the session
    customer.send_raw(b'["an", "array"]\n')
    expect_error(customer, "bad_frame")
    customer.send_raw(b'{"id": "no-type"}\n')
    expect_error(customer, "bad_frame")
    assert customer.closed(), customer._describe("not closed after max_bad_frames = 3")
    pair.check()


def test_invalid_utf8_is_bad_frame(customer, pair):
    customer.send_raw(b'{"type": "ping", "id": "\xff\xfe"}\n')
    expect_error(customer, "bad_frame")
    customer.sync()
    pair.check()


def test_line_over_max_frame_is_too_large_and_closes(customer, pair):
    frame = {"type": "message", "text": "x" * (MAX_FRAME + 100), "id": "big"}
    customer.send_raw(json.dumps(frame).encode() + b"\n")
    expect_error(customer, "too_large")
    assert customer.closed(), customer._describe("not closed after too_large")
    pair.check()


def test_endless_line_is_too_large_without_waiting_for_lf(customer, pair):
    customer.send_raw(b'{"type": "message", "text": "' + b"y" * (2 * MAX_FRAME))
    expect_error(customer, "too_large")
    assert customer.closed(), customer._describe("not closed after too_large")
    pair.check()


def test_unknown_type_and_the_session_goes_on(customer, pair):
    customer.send({"type": "frobnicate", "id": "u1"})
    expect_error(customer, "unknown_type", id="u1")
    customer.sync()
    pair.check()


def test_message_without_text_is_bad_request(customer, pair):
    customer.send({"type": "message", "id": "b1"})
    expect_error(customer, "bad_request", id="b1")
    customer.send({"type": "message", "text": 42, "id": "b2"})
    expect_error(customer, "bad_request", id="b2")
    customer.sync()
    pair.check()


def test_frame_before_hello_is_not_allowed_and_closes(raw, pair):
    raw.send({"type": "ping", "id": "early"})
    expect_error(raw, "not_allowed")
    assert raw.closed(), raw._describe("not closed after a frame before hello")
    assert not raw.frames_of("pong"), raw.received
    pair.check()


def test_customer_may_not_accept_or_say_hello_twice(customer, pair):
    customer.send({"type": "accept", "offer": "o-0000", "id": "n1"})
    expect_error(customer, "not_allowed", id="n1")
    again = {"type": "hello", "protocol": "jsonim/1", "role": "customer", "id": "n2"}
    again["client"] = {"name": "itest-widget", "version": "2.3.1"}
    customer.send(again)
    expect_error(customer, "not_allowed", id="n2")
    customer.sync()
    pair.check()


@pytest.mark.parametrize(
    "auth",
    [
        {"user": AGENT, "password": "wrong"},
        {"user": "nobody", "password": PASSWORD},
        None,
    ],
    ids=["wrong-password", "unknown-user", "no-credentials"],
)
def test_agent_without_valid_credentials_is_auth_failed_and_closed(raw, pair, auth):
    hello = {"type": "hello", "protocol": "jsonim/1", "role": "agent"}
    hello["client"] = {"name": "itest-desk", "version": "1.0"}
    if auth is not None:
        hello["auth"] = auth
    raw.send(hello)
    expect_error(raw, "auth_failed")
    assert raw.closed(), raw._describe("not closed after auth_failed")
    assert not raw.frames_of("welcome"), raw.received
    pair.check()


def test_unknown_protocol_version_is_unavailable_and_closes(raw, pair):
    raw.send(
        {
            "type": "hello",
            "protocol": "jsonim/9",
            "role": "customer",
            "client": {"name": "future", "version": "9.0"},
        }
    )
    expect_error(raw, "unavailable")
    assert raw.closed(), raw._describe("not closed after unavailable")
    pair.check()


def test_framing_does_not_depend_on_segments(customer, pair):
    # Not errors: empty lines, CRLF, a frame split byte by byte, two frames in one write.
    customer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    customer.send_raw(b"\n\r\n")
    for byte in b'{"type": "ping", "id": "split"}\r\n':
        customer.send_raw(bytes([byte]))
    customer.expect("pong", id="split")
    customer.send_raw(b'{"type": "ping", "id": "one"}\n{"type": "ping", "id": "two"}\n')
    customer.expect("pong", id="one")
    customer.expect("pong", id="two")
    customer.sync()
    assert not customer.frames_of("error"), customer.frames_of("error")
    pair.check()


def test_flooding_session_alone_is_rate_limited(tmp_path_factory):
    # Its own gateway: 1 message a second, bursts of 2. The limit is per session, so
    # the healthy pair (one message each, answers given in hello) stays under it.
    gateway, pair = start_site(
        tmp_path_factory, "rate-limit", messages_per_second=1.0, message_burst=2
    )
    try:
        assert not pair.prompts, f"hello's identity and topic were asked again: {pair.prompts}"
        flooder = gateway.connect("flooder")
        hello_customer(flooder)
        frames = [{"type": "message", "text": "Flo", "id": "r0"}]
        frames += [{"type": "message", "text": f"nope {i}", "id": f"r{i}"} for i in range(1, 8)]
        flooder.send_raw(b"".join(json.dumps(f).encode() + b"\n" for f in frames))
        error = expect_error(flooder, "rate_limited")
        assert error.get("id") in {f["id"] for f in frames}, error
        pair.check()
        flooder.close()
    finally:
        pair.close()
        gateway.stop()
