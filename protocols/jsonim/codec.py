"""JSON-IM codec: client frames from bytes, server frames and neutral events to bytes."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any

import orjson

from gateway.core import events

MAX_ID_LENGTH = 64

# Integers beyond this are outside the IEEE-754 double range the contract allows.
_MAX_INT = int(sys.float_info.max)
_MAX_INT_DIGITS = len(str(_MAX_INT))
_SURROGATE = re.compile("[\ud800-\udfff]")


class DecodeError(Exception):
    """A client frame that cannot be used; ``code`` is the JSON-IM error code.

    ``frame_id`` is the frame's ``id`` when it could be read and was valid.
    """

    def __init__(self, code: str, text: str, frame_id: str | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.frame_id = frame_id


def _bad(text: str) -> DecodeError:
    return DecodeError("bad_frame", text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _bad("duplicate key in an object")
    return obj


def _parse_int(literal: str) -> int:
    # Checked before int() so that thousands of digits cost nothing.
    if len(literal.lstrip("-")) > _MAX_INT_DIGITS:
        raise _bad("number out of range")
    value = int(literal)
    if abs(value) > _MAX_INT:
        raise _bad("number out of range")
    return value


def _parse_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise _bad("number out of range")
    return value


def _parse_constant(literal: str) -> Any:
    raise _bad(f"{literal} is not a JSON number")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_parse_constant,
)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _check(value: Any, depth: int, max_depth: int, strings: bool) -> None:
    # ``depth`` counts the containers enclosing ``value``, itself included.
    if depth > max_depth:
        raise _bad(f"nested deeper than {max_depth} levels")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if strings and isinstance(key, str) and _SURROGATE.search(key):
            raise _bad("lone surrogate in a string")
        if isinstance(item, dict | list):
            _check(item, depth + 1, max_depth, strings)
        elif strings and isinstance(item, str) and _SURROGATE.search(item):
            raise _bad("lone surrogate in a string")


def decode(data: bytes, max_depth: int = 32) -> dict[str, Any]:
    """One client frame (without its line end) as a dict.

    Raises :class:`DecodeError` with code ``bad_frame`` for anything that is not a
    valid JSON-IM frame, or ``bad_request`` for an ``id`` that is not a string of at
    most 64 characters.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("not valid UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise _bad(f"nested deeper than {max_depth} levels") from None
    except ValueError:
        raise _bad("not valid JSON") from None
    if not isinstance(value, dict):
        raise _bad("a frame must be a JSON object")
    # Cheap byte scans decide whether the walk is needed at all: nesting needs
    # brackets, and a lone surrogate can only come from a \u escape (strict
    # UTF-8 decoding has already refused encoded ones).
    deep = data.count(b"{") + data.count(b"[") > max_depth
    escaped = b"\\ud" in data or b"\\uD" in data
    if deep or escaped:
        _check(value, 1, max_depth, escaped)
    frame_id = value.get("id")
    id_ok = "id" not in value or (isinstance(frame_id, str) and len(frame_id) <= MAX_ID_LENGTH)
    if not isinstance(value.get("type"), str):
        raise DecodeError("bad_frame", "a frame needs a string type", frame_id if id_ok else None)
    if not id_ok:
        raise DecodeError(
            "bad_request", f"id must be a string of at most {MAX_ID_LENGTH} characters"
        )
    return value


def encode(frame: dict[str, Any]) -> bytes:
    """One server frame as a compact UTF-8 line."""
    try:
        # orjson: a twentieth of the standard encoder's time on a message frame.
        return orjson.dumps(frame, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # What orjson refuses (a stray surrogate from another protocol, an integer
        # beyond 64 bits): the standard encoder, "replace" keeping the line whole.
        return (_ENCODER.encode(frame) + "\n").encode("utf-8", "replace")


def error_frame(code: str, text: str, frame_id: str | None = None) -> dict[str, Any]:
    """An ``error`` frame, repeating the client frame's ``id`` when it had one."""
    frame = {"type": "error", "code": code, "text": text}
    if frame_id is not None:
        frame["id"] = frame_id
    return frame


def _prompt(event: events.Prompt, agent: bool) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "prompt", "field": event.field, "text": event.text}
    if event.choices:
        frame["choices"] = [{"value": c.value, "label": c.label} for c in event.choices]
    return frame


def _queued(event: events.Queued, agent: bool) -> dict[str, Any]:
    # eta_s is null while no agent can serve the customer (docs/jsonim.md, "Queue positions").
    return {"type": "queued", "position": event.position, "eta_s": event.eta_s}


def _connected(event: events.Connected, agent: bool) -> dict[str, Any]:
    if not agent:
        return {
            "type": "connected",
            "conversation": event.conversation,
            "agent": {"alias": event.peer_alias},
        }
    frame = {
        "type": "connected",
        "conversation": event.conversation,
        "customer": {"alias": event.peer_alias},
        "history": [{"from": h.sender, "text": h.text, "ts": h.ts} for h in event.history],
    }
    # Proposed additions (docs/desk.md): who else is there, and the customer's past.
    if event.role != "agent":
        frame["role"] = event.role
    if event.agent_alias is not None:
        frame["agent"] = {"alias": event.agent_alias}
    if event.past:
        frame["past"] = [_past(p) for p in event.past]
    return frame


def _past(p: events.PastConversation) -> dict[str, Any]:
    return {
        "conversation": p.conversation,
        "started": p.started,
        "topic": p.topic,
        "disposition": p.disposition,
        "agent": p.agent_alias,
    }


def _message(event: events.Message, agent: bool) -> dict[str, Any]:
    frame = {
        "type": "message",
        "conversation": event.conversation,
        "from": event.sender,
        "msg": event.msg,
        "text": event.text,
        "ts": event.ts,
    }
    # Proposed additions (docs/desk.md): a second agent's line, and agents-only lines.
    if event.alias is not None:
        frame["alias"] = event.alias
    if event.private:
        frame["private"] = True
    return frame


def _typing(event: events.Typing, agent: bool) -> dict[str, Any]:
    return {"type": "typing", "conversation": event.conversation, "state": event.state}


def _ended(event: events.Ended, agent: bool) -> dict[str, Any]:
    return {"type": "ended", "conversation": event.conversation, "reason": event.reason}


def _card(card: events.CustomerCard) -> dict[str, Any]:
    customer = {
        "alias": card.alias,
        "protocol": card.protocol,
        "client": {"name": card.client.name, "version": card.client.version},
        "topic": card.topic,
        "identity": dict(card.identity),
    }
    if card.history:
        customer["history"] = [_past(p) for p in card.history]
    return customer


def _offer(event: events.Offer, agent: bool) -> dict[str, Any]:
    return {
        "type": "offer",
        "offer": event.offer,
        "conversation": event.conversation,
        "expires_in_s": event.expires_in_s,
        "customer": _card(event.customer),
        # Proposed addition (docs/jsonim.md, "Routing in offers"): why this agent.
        **({"routing": event.routing.to_dict()} if event.routing is not None else {}),
    }


def _wrap_up(event: events.WrapUp, agent: bool) -> dict[str, Any]:
    return {
        "type": "wrap_up",
        "conversation": event.conversation,
        "customer": {"alias": event.customer_alias},
        "dispositions": list(event.dispositions),
        "required": event.required,
        "timeout_s": event.timeout_s,
    }


def _task(event: events.Task, agent: bool) -> dict[str, Any]:
    return {
        "type": "task",
        "task": event.task,
        "kind": event.kind,
        "customer": _card(event.customer),
        "queue": event.queue,
        "text": event.text,
        "received": event.received,
    }


def _receipt(event: events.Receipt, agent: bool) -> dict[str, Any]:
    return {
        "type": "receipt",
        "conversation": event.conversation,
        "msg": event.msg,
        "state": event.state,
    }


def _revoked(event: events.Revoked, agent: bool) -> dict[str, Any]:
    return {"type": "revoked", "offer": event.offer, "reason": event.reason}


def _notice(event: events.Notice, agent: bool) -> dict[str, Any]:
    # JSON-IM/1 has no frame for this; a system message without a conversation
    # is the closest (a `notice` frame is proposed for the spec).
    return {"type": "message", "from": "system", "text": event.text}


_RENDERERS: dict[type, Callable[[Any, bool], dict[str, Any]]] = {
    events.Prompt: _prompt,
    events.Queued: _queued,
    events.Connected: _connected,
    events.Message: _message,
    events.Typing: _typing,
    events.Ended: _ended,
    events.Offer: _offer,
    events.Revoked: _revoked,
    events.Notice: _notice,
    events.Receipt: _receipt,
    events.WrapUp: _wrap_up,
    events.Task: _task,
}


def event_frame(event: object, *, agent: bool, rich: bool = False) -> dict[str, Any]:
    """The server frame for a neutral event, as an agent or a customer is shown it.

    ``rich``: the party negotiated rich_text, and a message's markup goes with its text.
    Raises :class:`TypeError` for an object that is not a neutral event.
    """
    render = _RENDERERS.get(type(event))
    if render is None:
        raise TypeError(f"not a neutral event: {event!r}")
    frame = render(event, agent)
    if rich and type(event) is events.Message and event.markup is not None:
        frame["markup"] = event.markup
    return frame
