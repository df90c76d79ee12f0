"""JSON-IM codec: what a client frame may be, and how server frames are written."""

from __future__ import annotations

import time

import pytest

from gateway.core import events
from protocols.jsonim.codec import DecodeError, decode, encode, error_frame, event_frame


def decode_error(data: bytes, max_depth: int = 32) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(data, max_depth)
    return info.value


def test_decodes_an_object() -> None:
    frame = decode(b'{"type":"message","text":"h\\u00e9 \xe2\x82\xac \\ud83d\\ude00","id":"m1"}')
    assert frame == {"type": "message", "text": "hé € 😀", "id": "m1"}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"type":"ping","x":"\xff"}', id="bad-utf8"),
        pytest.param(b'{"type":"ping","x":"\xed\xa0\x80"}', id="encoded-surrogate"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"type":"ping"', id="truncated"),
        pytest.param(b'{"type":"ping"} {}', id="trailing-data"),
        pytest.param(b'["type","ping"]', id="array"),
        pytest.param(b'"ping"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"text":"x"}', id="no-type"),
        pytest.param(b'{"type":7}', id="numeric-type"),
        pytest.param(b'{"type":null}', id="null-type"),
        pytest.param(b'{"type":"ping","x":"\\ud800"}', id="lone-high-surrogate"),
        pytest.param(b'{"type":"ping","x":["a\\uDC00b"]}', id="lone-low-surrogate"),
        pytest.param(b'{"type":"ping","\\ud800":1}', id="surrogate-key"),
        pytest.param(b'{"type":"ping","x":NaN}', id="nan"),
        pytest.param(b'{"type":"ping","x":-Infinity}', id="infinity"),
        pytest.param(b'{"type":"ping","x":1e400}', id="float-overflow"),
        pytest.param(b'{"type":"ping","x":-1E309}', id="negative-float-overflow"),
        pytest.param(b'{"type":"ping","x":2' + b"0" * 308 + b"}", id="int-overflow"),
        pytest.param(b'{"type":"ping","type":"pong"}', id="duplicate-key"),
        pytest.param(b'{"type":"ping","x":{"a":1,"a":2}}', id="nested-duplicate"),
        pytest.param(b'{"type":"ping","x":"a\nb"}', id="raw-control-char"),
        pytest.param(b"\xef\xbb\xbf{}", id="bom"),
    ],
)
def test_bad_frames(data: bytes) -> None:
    error = decode_error(data)
    assert error.code == "bad_frame"
    assert error.frame_id is None


def test_large_numbers_within_double_range() -> None:
    big = b"1" + b"0" * 308
    frame = decode(b'{"type":"x","a":' + big + b',"b":1e308,"c":-1.5e-400}')
    assert frame == {"type": "x", "a": 10**308, "b": 1e308, "c": -0.0}


def test_absurd_integer_is_rejected_quickly() -> None:
    data = b'{"type":"ping","x":' + b"9" * 60_000 + b"}"
    started = time.perf_counter()
    assert decode_error(data).code == "bad_frame"
    assert time.perf_counter() - started < 0.5


def nested(depth: int) -> bytes:
    # ``depth`` containers in all, the frame object included.
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"type":"ping","x":' + (inner or b"1") + b"}"


def test_nesting_up_to_the_limit() -> None:
    assert decode(nested(32))["type"] == "ping"
    assert decode(nested(4), max_depth=4)["type"] == "ping"


def test_nesting_beyond_the_limit() -> None:
    assert decode_error(nested(33)).code == "bad_frame"
    assert decode_error(nested(5), max_depth=4).code == "bad_frame"
    deep_objects = b'{"type":"ping","x":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}"
    assert decode_error(deep_objects).code == "bad_frame"


def test_nesting_deeper_than_the_interpreter_allows() -> None:
    assert decode_error(b"[" * 60_000 + b"]" * 60_000).code == "bad_frame"
    assert decode_error(b'{"a":' * 30_000 + b"1" + b"}" * 30_000).code == "bad_frame"


def test_many_brackets_in_strings_are_not_nesting() -> None:
    data = b'{"type":"message","text":"' + b"[{" * 100 + b'"}'
    assert decode(data)["text"] == "[{" * 100


def test_escaped_backslash_u_is_not_a_surrogate() -> None:
    assert decode(b'{"type":"x","t":"\\\\ud800"}')["t"] == "\\ud800"


@pytest.mark.parametrize(
    ("data", "frame_id"),
    [
        (b'{"type":"ping","id":5}', None),
        (b'{"type":"ping","id":null}', None),
        (b'{"type":"ping","id":"' + b"x" * 65 + b'"}', None),
    ],
)
def test_bad_id_is_a_bad_request(data: bytes, frame_id: None) -> None:
    error = decode_error(data)
    assert (error.code, error.frame_id) == ("bad_request", frame_id)


def test_id_of_64_characters_passes() -> None:
    assert decode(b'{"type":"ping","id":"' + "é".encode() * 64 + b'"}')["id"] == "é" * 64


def test_frame_without_type_keeps_its_valid_id() -> None:
    error = decode_error(b'{"id":"m7"}')
    assert (error.code, error.frame_id) == ("bad_frame", "m7")


def test_encode_is_one_compact_utf8_line() -> None:
    data = encode({"type": "message", "text": "é\n\u2028", "ts": 1.5, "n": None})
    assert data == '{"type":"message","text":"é\\n\u2028","ts":1.5,"n":null}\n'.encode()


def test_error_frame() -> None:
    assert error_frame("bad_request", "no") == {
        "type": "error",
        "code": "bad_request",
        "text": "no",
    }
    assert list(error_frame("internal", "oops", "m1")) == ["type", "code", "text", "id"]


CARD = events.CustomerCard(
    alias="c-7f3a",
    protocol="xmpp",
    client=events.ClientInfo("Gajim", "1.8.4"),
    topic="billing",
    identity={"name": "Dana"},
)


@pytest.mark.parametrize(
    ("event", "agent", "frame"),
    [
        (
            events.Prompt("topic", "What?", (events.Choice("billing", "Billing"),)),
            False,
            {
                "type": "prompt",
                "field": "topic",
                "text": "What?",
                "choices": [{"value": "billing", "label": "Billing"}],
            },
        ),
        (
            events.Prompt("name", "Your name?"),
            False,
            {"type": "prompt", "field": "name", "text": "Your name?"},
        ),
        (events.Queued(3, 40), False, {"type": "queued", "position": 3, "eta_s": 40}),
        (
            events.Connected("c-1", "Anna", (events.HistoryEntry("customer", "x", 1.0),)),
            False,
            {"type": "connected", "conversation": "c-1", "agent": {"alias": "Anna"}},
        ),
        (
            events.Connected("c-1", "c-7f3a", (events.HistoryEntry("customer", "hi", 1.5),)),
            True,
            {
                "type": "connected",
                "conversation": "c-1",
                "customer": {"alias": "c-7f3a"},
                "history": [{"from": "customer", "text": "hi", "ts": 1.5}],
            },
        ),
        (
            events.Message("c-1", "agent", "g-1", "Hello!", 1764400000.123),
            False,
            {
                "type": "message",
                "conversation": "c-1",
                "from": "agent",
                "msg": "g-1",
                "text": "Hello!",
                "ts": 1764400000.123,
            },
        ),
        (
            events.Typing("c-1", "active"),
            True,
            {"type": "typing", "conversation": "c-1", "state": "active"},
        ),
        (
            events.Ended("c-1", "customer"),
            False,
            {"type": "ended", "conversation": "c-1", "reason": "customer"},
        ),
        (
            events.Offer("o-1", "c-1", 20, CARD),
            True,
            {
                "type": "offer",
                "offer": "o-1",
                "conversation": "c-1",
                "expires_in_s": 20,
                "customer": {
                    "alias": "c-7f3a",
                    "protocol": "xmpp",
                    "client": {"name": "Gajim", "version": "1.8.4"},
                    "topic": "billing",
                    "identity": {"name": "Dana"},
                },
            },
        ),
        (
            events.Revoked("o-1", "taken"),
            True,
            {"type": "revoked", "offer": "o-1", "reason": "taken"},
        ),
    ],
)
def test_event_frames(event: object, agent: bool, frame: dict) -> None:
    rendered = event_frame(event, agent=agent)
    assert rendered == frame
    assert list(rendered) == list(frame)


def test_offer_without_topic() -> None:
    card = events.CustomerCard("c-1", "irc", events.ClientInfo(), None, {})
    customer = event_frame(events.Offer("o-1", "c-1", 20, card), agent=True)["customer"]
    assert customer == {
        "alias": "c-1",
        "protocol": "irc",
        "client": {"name": "unknown", "version": ""},
        "topic": None,
        "identity": {},
    }


def test_not_an_event() -> None:
    with pytest.raises(TypeError):
        event_frame(object(), agent=False)
