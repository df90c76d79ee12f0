"""The core's neutral events as JSON, for the trip from one node to another."""

from __future__ import annotations

from typing import Any

import attrs

from gateway.core import events as ev
from gateway.core.errors import BadRequest, GatewayError, InternalError, NotAllowed, Unavailable

_EVENTS = {
    cls.__name__: cls
    for cls in (
        ev.Prompt,
        ev.Queued,
        ev.Connected,
        ev.Message,
        ev.Receipt,
        ev.Typing,
        ev.Ended,
        ev.Offer,
        ev.Revoked,
        ev.Notice,
    )
}
_ERRORS = {cls.code: cls for cls in (BadRequest, NotAllowed, Unavailable, InternalError)}


def encode_event(event: Any) -> dict[str, Any]:
    """An event as plain values, its kind under ``kind``."""
    data = attrs.asdict(event)
    data["kind"] = type(event).__name__
    return data


def decode_event(data: dict[str, Any]) -> Any:
    """The event :func:`encode_event` made; KeyError or TypeError if it is not one."""
    values = dict(data)
    cls = _EVENTS[values.pop("kind")]
    if cls is ev.Offer:
        card = dict(values["customer"])
        card["client"] = ev.ClientInfo(**card["client"])
        values["customer"] = ev.CustomerCard(**card)
    elif cls is ev.Connected:
        values["history"] = tuple(ev.HistoryEntry(**h) for h in values.get("history", ()))
    elif cls is ev.Prompt:
        values["choices"] = tuple(ev.Choice(**c) for c in values.get("choices", ()))
    return cls(**values)


def encode_error(error: GatewayError) -> dict[str, str]:
    """A refusal, to send back to the node that asked."""
    return {"code": error.code, "text": error.text}


def decode_error(data: dict[str, str]) -> GatewayError:
    """The refusal :func:`encode_error` made (InternalError for an unknown code)."""
    cls = _ERRORS.get(data.get("code", ""), InternalError)
    return cls(data.get("text", "internal error"))
