"""A bad-input corpus for the JSON-IM listener, over real sockets (issue 9, item 1).

One gateway serves the whole module. Each named case opens its own connection, says
hello as a customer or an agent first if the case asks for it, sends its bytes, and
must get exactly the listed error codes (in order) and then be closed, or carry on
(proved with a ping). After every case a healthy customer and agent, in one
conversation since the start, exchange a message each way within a bound: a bad
connection never affects another session.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import attrs
import harness
import pytest
from jsonim_client import (
    JsonImClient,
    connected_pair,
    exchange,
    hello_agent,
    hello_customer,
)

MAX_FRAME = 4096
AGENT, PASSWORD = "hal", "hal-Secret-9"
PROBE, PROBE_PASSWORD = "probe", "probe-Secret-7"
# Both sides of the healthy exchange, acks included, within this many seconds.
HEALTHY_BOUND_S = 2.0
CASE_TIMEOUT = 5.0


def line(obj) -> bytes:
    """One frame, as the client library would send it."""
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def ping(pid: str = "p", **extra) -> bytes:
    return line({"type": "ping", "id": pid, **extra})


def hello(**fields) -> bytes:
    frame = {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "customer",
        "client": {"name": "corpus", "version": "1"},
    }
    frame.update(fields)
    return line({k: v for k, v in frame.items() if v is not None})


def padded_ping(size: int) -> bytes:
    """A ping frame of exactly ``size`` bytes before its LF."""
    head, tail = b'{"type":"ping","id":"pad","x":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail + b"\n"


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    """A ping whose field ``x`` holds ``depth`` nested containers (the frame is one more)."""
    return b'{"type":"ping","id":"deep","x":' + (open_ * depth + close * depth).encode() + b"}\n"


def nested_objects(depth: int) -> bytes:
    inner = "1"
    for _ in range(depth):
        inner = '{"a":' + inner + "}"
    return b'{"type":"ping","id":"deep","x":' + inner.encode() + b"}\n"


@attrs.frozen
class Case:
    """One hostile input and exactly what it must get back.

    ``role``: what the connection says first (``None``: nothing, ``customer``, or
    ``agent`` logged in as PROBE without going available). ``data``: bytes, or a
    function of the site giving bytes. ``errors``: codes expected in order, with the
    ``id`` each must repeat where one is given. ``closes``: the connection must be
    closed after them; otherwise it must still answer a ping (or, with no hello said,
    a hello). ``replies``: other frame types that must arrive (e.g. ``pong``).
    """

    name: str
    data: bytes | Callable[[Site], bytes]
    errors: tuple[str | tuple[str, str], ...] = ()
    closes: bool = False
    role: str | None = "customer"
    replies: tuple[tuple[str, str | None], ...] = ()
    per_byte: bool = False


@attrs.define
class Site:
    """The module's gateway and the conversation that must carry on."""

    gateway: harness.Gateway
    customer: JsonImClient
    agent: JsonImClient
    conversation: str
    rounds: int = 0

    def check(self) -> None:
        """One message each way, acked and delivered within HEALTHY_BOUND_S."""
        self.rounds += 1
        n = self.rounds
        start = time.perf_counter()
        exchange(self.customer, self.agent, self.conversation, f"still there? {n}", f"yes {n}")
        took = time.perf_counter() - start
        assert took < HEALTHY_BOUND_S, f"healthy exchange took {took:.3f}s"
        for client in (self.customer, self.agent):
            troubles = client.frames_of("error") + client.frames_of("ended")
            assert not troubles, f"the healthy {client.name} was affected: {troubles}"


CASES = [
    # -- not JSON, not an object, no type -------------------------------------------------
    Case("not-json", b"this is not json\n", ("bad_frame",)),
    Case("truncated-object", b'{"type": "ping", "id": \n', ("bad_frame",)),
    Case("trailing-garbage", b'{"type": "ping", "id": "t"} x\n', ("bad_frame",)),
    Case("two-objects-one-line", b'{"type":"ping"}{"type":"ping"}\n', ("bad_frame",)),
    Case("array-frame", b'["type", "ping"]\n', ("bad_frame",)),
    Case("string-frame", b'"ping"\n', ("bad_frame",)),
    Case("number-frame", b"42\n", ("bad_frame",)),
    Case("null-frame", b"null\n", ("bad_frame",)),
    Case("boolean-frame", b"true\n", ("bad_frame",)),
    Case("no-type-repeats-id", b'{"id": "nt"}\n', (("bad_frame", "nt"),)),
    Case("type-is-number", b'{"type": 5, "id": "tn"}\n', (("bad_frame", "tn"),)),
    Case("type-is-null", b'{"type": null}\n', ("bad_frame",)),
    Case("type-is-object", b'{"type": {"type": "ping"}}\n', ("bad_frame",)),
    Case("single-quotes", b"{'type': 'ping'}\n", ("bad_frame",)),
    Case("comment-in-json", b'{"type": "ping" /* hi */}\n', ("bad_frame",)),
    # -- encodings --------------------------------------------------------------------------
    Case("invalid-utf8", b'{"type": "ping", "id": "\xff\xfe"}\n', ("bad_frame",)),
    Case("overlong-utf8-slash", b'{"type": "ping", "id": "\xc0\xaf"}\n', ("bad_frame",)),
    Case("utf8-encoded-surrogate", b'{"type": "ping", "id": "\xed\xa0\x80"}\n', ("bad_frame",)),
    Case("truncated-utf8-sequence", b'{"type": "ping", "id": "\xe2\x82"}\n', ("bad_frame",)),
    Case("utf16-frame", '{"type":"ping"}\n'.encode("utf-16-be"), ("bad_frame",)),
    Case("lone-high-surrogate", b'{"type": "ping", "id": "\\ud800"}\n', ("bad_frame",)),
    Case("lone-low-surrogate-key", b'{"\\udc00": 1, "type": "ping"}\n', ("bad_frame",)),
    Case(
        "lone-surrogate-deep",
        b'{"type": "ping", "x": [{"y": ["\\uDBFF"]}]}\n',
        ("bad_frame",),
    ),
    Case(
        "surrogate-pair-is-fine",
        b'{"type": "ping", "id": "sp", "x": "\\ud83d\\ude00"}\n',
        replies=(("pong", "sp"),),
    ),
    Case("raw-nul-in-string", b'{"type": "ping", "id": "a\x00b"}\n', ("bad_frame",)),
    Case("raw-nul-outside-string", b'{"type": "ping",\x00 "id": "n"}\n', ("bad_frame",)),
    Case("raw-control-char", b'{"type": "ping", "id": "a\x07b"}\n', ("bad_frame",)),
    Case(
        "escaped-nul-is-fine",
        b'{"type": "ping", "id": "en", "x": "a\\u0000b"}\n',
        replies=(("pong", "en"),),
    ),
    # -- numbers ------------------------------------------------------------------------------
    Case("nan", b'{"type": "ping", "x": NaN}\n', ("bad_frame",)),
    Case("infinity", b'{"type": "ping", "x": Infinity}\n', ("bad_frame",)),
    Case("minus-infinity", b'{"type": "ping", "x": -Infinity}\n', ("bad_frame",)),
    Case("float-overflow", b'{"type": "ping", "x": 1e400}\n', ("bad_frame",)),
    Case("negative-float-overflow", b'{"type": "ping", "x": -1.5e309}\n', ("bad_frame",)),
    Case("int-400-digits", b'{"type": "ping", "x": 1' + b"0" * 400 + b"}\n", ("bad_frame",)),
    Case("int-4000-digits", b'{"type": "ping", "x": 9' + b"9" * 4000 + b"}\n", ("bad_frame",)),
    Case(
        "float-underflow-is-fine",
        b'{"type": "ping", "id": "uf", "x": 1e-400}\n',
        replies=(("pong", "uf"),),
    ),
    Case(
        "largest-double-is-fine",
        b'{"type": "ping", "id": "ld", "x": 1.7976931348623157e308}\n',
        replies=(("pong", "ld"),),
    ),
    # -- nesting ------------------------------------------------------------------------------
    Case("nesting-at-limit", nested(31), replies=(("pong", "deep"),)),
    Case("nesting-over-limit", nested(32), ("bad_frame",)),
    Case("objects-over-limit", nested_objects(40), ("bad_frame",)),
    Case("nesting-2000", nested(2000), ("bad_frame",)),
    Case("unclosed-nesting", b'{"type":"ping","x":' + b"[" * 3000 + b"\n", ("bad_frame",)),
    # -- duplicate keys -----------------------------------------------------------------------
    Case("duplicate-type", b'{"type": "ping", "type": "end"}\n', ("bad_frame",)),
    Case("duplicate-id", b'{"type": "ping", "id": "a", "id": "b"}\n', ("bad_frame",)),
    Case("duplicate-nested", b'{"type": "ping", "x": {"k": 1, "k": 2}}\n', ("bad_frame",)),
    # -- sizes and framing -------------------------------------------------------------------
    Case("frame-at-max", padded_ping(MAX_FRAME), replies=(("pong", "pad"),)),
    Case("frame-one-over-max", padded_ping(MAX_FRAME + 1), ("too_large",), closes=True),
    Case(
        "huge-string",
        line({"type": "message", "id": "h", "text": "x" * 100_000}),
        ("too_large",),
        closes=True,
    ),
    Case("endless-line", b'{"type": "ping", "id": "' + b"y" * 50_000, ("too_large",), True),
    Case(
        "crlf-and-empty-lines",
        b"\n\r\n\n" * 500 + b'{"type":"ping","id":"cr"}\r\n',
        replies=(("pong", "cr"),),
    ),
    Case("split-at-every-byte", ping("sb"), replies=(("pong", "sb"),), per_byte=True),
    Case(
        "hundred-frames-one-write",
        b"".join(ping(f"m{i}") for i in range(100)),
        replies=tuple(("pong", f"m{i}") for i in range(100)),
    ),
    Case(
        "third-bad-frame-closes",
        b"nope\n[]\n{}\n",
        ("bad_frame", "bad_frame", "bad_frame"),
        closes=True,
    ),
    Case("bad-utf8-storm-closes", b"\xff\n" * 50, ("bad_frame",) * 3, closes=True),
    # -- fields ------------------------------------------------------------------------------
    Case("id-65-characters", ping("i" * 65), ("bad_request",)),
    Case("id-is-number", b'{"type": "ping", "id": 7}\n', ("bad_request",)),
    Case("id-is-object", b'{"type": "ping", "id": {"a": 1}}\n', ("bad_request",)),
    Case("unknown-type", line({"type": "frobnicate", "id": "u"}), (("unknown_type", "u"),)),
    Case(
        "unknown-type-1000-chars", line({"type": "z" * 1000, "id": "uz"}), (("unknown_type", "uz"),)
    ),
    Case("empty-type", line({"type": "", "id": "et"}), (("unknown_type", "et"),)),
    Case("message-without-text", line({"type": "message", "id": "mt"}), (("bad_request", "mt"),)),
    Case(
        "message-text-number",
        line({"type": "message", "text": 4, "id": "m4"}),
        (("bad_request", "m4"),),
    ),
    Case(
        "message-text-empty",
        line({"type": "message", "text": "", "id": "me"}),
        (("bad_request", "me"),),
    ),
    Case(
        "typing-bad-state",
        line({"type": "typing", "state": "asleep", "id": "ty"}),
        (("bad_request", "ty"),),
    ),
    # -- before hello ---------------------------------------------------------------------------
    Case("ping-before-hello", ping("early"), (("not_allowed", "early"),), True, role=None),
    Case(
        "message-before-hello",
        line({"type": "message", "text": "hi"}),
        ("not_allowed",),
        True,
        None,
    ),
    Case(
        "accept-before-hello",
        line({"type": "accept", "offer": "o-1"}),
        ("not_allowed",),
        True,
        None,
    ),
    Case("bad-json-before-hello", b"{\n", ("bad_frame",), role=None),
    Case("unknown-protocol", hello(protocol="jsonim/9"), ("unavailable",), True, None),
    Case("protocol-not-string", hello(protocol=1), ("bad_request",), True, None),
    Case("no-protocol", hello(protocol=None), ("bad_request",), True, None),
    Case("role-admin", hello(role="admin"), ("bad_request",), True, None),
    Case("no-role", hello(role=None), ("bad_request",), True, None),
    Case("client-not-object", hello(client="corpus"), ("bad_request",), True, None),
    Case("features-not-list", hello(features="typing"), ("bad_request",), True, None),
    Case("features-of-numbers", hello(features=[1, 2]), ("bad_request",), True, None),
    Case("identity-not-strings", hello(identity={"name": 5}), ("bad_request",), True, None),
    Case("hello-id-too-long", hello(id="h" * 65), ("bad_request",), True, None),
    Case(
        "agent-wrong-password",
        hello(role="agent", auth={"user": PROBE, "password": "x"}),
        ("auth_failed",),
        True,
        None,
    ),
    Case(
        "agent-unknown-user",
        hello(role="agent", auth={"user": "nobody", "password": "x"}),
        ("auth_failed",),
        True,
        None,
    ),
    Case(
        "agent-auth-not-object", hello(role="agent", auth="probe:x"), ("auth_failed",), True, None
    ),
    Case(
        "agent-password-number",
        hello(role="agent", auth={"user": PROBE, "password": 1}),
        ("auth_failed",),
        True,
        None,
    ),
    Case("agent-no-auth", hello(role="agent"), ("auth_failed",), True, None),
    # -- wrong role ----------------------------------------------------------------------------
    Case("hello-twice", hello(id="h2"), (("not_allowed", "h2"),)),
    Case(
        "customer-accept",
        line({"type": "accept", "offer": "o-1", "id": "ca"}),
        (("not_allowed", "ca"),),
    ),
    Case(
        "customer-reject",
        line({"type": "reject", "offer": "o-1", "id": "cr"}),
        (("not_allowed", "cr"),),
    ),
    Case(
        "customer-presence",
        line({"type": "presence", "status": "available", "id": "cp"}),
        (("not_allowed", "cp"),),
    ),
    Case(
        "customer-transfer",
        line({"type": "transfer", "conversation": "c-1", "to": {"queue": "general"}, "id": "ct"}),
        (("not_allowed", "ct"),),
    ),
    Case(
        "agent-says-hello-again",
        hello(role="agent", id="ah"),
        (("not_allowed", "ah"),),
        role="agent",
    ),
    # -- unknown offers and conversations (an agent) ------------------------------------------
    Case(
        "accept-unknown-offer",
        line({"type": "accept", "offer": "o-nope", "id": "au"}),
        (("not_allowed", "au"),),
        role="agent",
    ),
    Case(
        "reject-unknown-offer",
        line({"type": "reject", "offer": "o-nope", "id": "ru"}),
        (("not_allowed", "ru"),),
        role="agent",
    ),
    Case(
        "accept-offer-not-string",
        line({"type": "accept", "offer": 5, "id": "an"}),
        (("bad_request", "an"),),
        role="agent",
    ),
    Case(
        "message-unknown-conversation",
        line({"type": "message", "conversation": "c-nope", "text": "x", "id": "mu"}),
        (("not_allowed", "mu"),),
        role="agent",
    ),
    Case(
        "message-into-another-agents-conversation",
        lambda site: line(
            {"type": "message", "conversation": site.conversation, "text": "hijack", "id": "hj"}
        ),
        (("not_allowed", "hj"),),
        role="agent",
    ),
    Case(
        "end-another-agents-conversation",
        lambda site: line({"type": "end", "conversation": site.conversation, "id": "he"}),
        (("not_allowed", "he"),),
        role="agent",
    ),
    Case(
        "typing-unknown-conversation",
        line({"type": "typing", "conversation": "c-nope", "state": "active", "id": "tu"}),
        (("not_allowed", "tu"),),
        role="agent",
    ),
    Case(
        "transfer-unknown-conversation",
        line(
            {"type": "transfer", "conversation": "c-nope", "to": {"queue": "general"}, "id": "xu"}
        ),
        (("not_allowed", "xu"),),
        role="agent",
    ),
    Case(
        "transfer-both-targets",
        line(
            {
                "type": "transfer",
                "conversation": "c-nope",
                "to": {"queue": "general", "agent": "hal"},
                "id": "xb",
            }
        ),
        (("bad_request", "xb"),),
        role="agent",
    ),
    Case(
        "agent-message-without-conversation",
        line({"type": "message", "text": "x", "id": "mc"}),
        (("bad_request", "mc"),),
        role="agent",
    ),
    Case(
        "presence-bogus-status",
        line({"type": "presence", "status": "sleeping", "id": "pb"}),
        (("bad_request", "pb"),),
        role="agent",
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus-jsonim")
    config = harness.write_config(root, max_frame=MAX_FRAME)
    harness.add_agent(config, AGENT, PASSWORD, "Hal")
    harness.add_agent(config, PROBE, PROBE_PASSWORD, "Probe")
    gateway = harness.start_gateway(root / "cwd", config, "corpus-jsonim")
    customer, agent, conversation = connected_pair(gateway, AGENT, PASSWORD)
    yield Site(gateway, customer, agent, conversation)
    customer.close()
    agent.close()
    gateway.stop()


def test_corpus_has_enough_distinct_cases():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    assert len(CASES) >= 50, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_its_own_error_and_harms_no_one(site, case):
    client = site.gateway.connect(case.name)
    try:
        if case.role == "customer":
            hello_customer(client)
        elif case.role == "agent":
            hello_agent(client, PROBE, PROBE_PASSWORD, status=None)
        data = case.data(site) if callable(case.data) else case.data
        if case.per_byte:
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in data:
                client.send_raw(bytes([byte]))
        else:
            client.send_raw(data)
        for want in case.errors:
            code, fid = want if isinstance(want, tuple) else (want, None)
            error = client.expect("error", CASE_TIMEOUT)
            assert error.get("code") == code, client._describe(f"wanted {code}, got {error}")
            assert isinstance(error.get("text"), str) and error["text"], error
            if fid is not None:
                assert error.get("id") == fid, error
        for type_, fid in case.replies:
            client.expect(type_, CASE_TIMEOUT, **({"id": fid} if fid else {}))
        if case.closes:
            assert client.closed(CASE_TIMEOUT), client._describe("not closed")
        elif case.role is None:
            hello_customer(client)  # still open and still waiting for hello
        else:
            client.sync(CASE_TIMEOUT)
        extra = client.frames_of("error")[len(case.errors) :]
        assert not extra, client._describe(f"unexpected errors {extra}")
        if case.role is None and case.closes:
            assert not client.frames_of("welcome"), client.received
    finally:
        client.close()
    site.check()
