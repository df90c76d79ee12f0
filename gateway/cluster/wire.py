"""The core's neutral events as JSON, for the trip from one node to another."""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs

from gateway.core import events as ev
from gateway.core.errors import BadRequest, GatewayError, InternalError, NotAllowed, Unavailable

# Every event kind the core has (attrs classes of gateway.core.events), by name.
_KINDS = {name: cls for name, cls in vars(ev).items() if isinstance(cls, type) and attrs.has(cls)}
for _cls in _KINDS.values():
    attrs.resolve_types(_cls, vars(ev))
_ERRORS = {cls.code: cls for cls in (BadRequest, NotAllowed, Unavailable, InternalError)}


def encode_event(event: Any) -> dict[str, Any]:
    """An event as plain values, its kind under ``kind``."""
    data = attrs.asdict(event)
    data["kind"] = type(event).__name__
    return data


def decode_event(data: dict[str, Any]) -> Any:
    """The event :func:`encode_event` made; KeyError or TypeError if it is not one."""
    values = dict(data)
    return _build(_KINDS[values.pop("kind")], values)


def _build(cls: type, values: dict[str, Any]) -> Any:
    fields = {f.name: f.type for f in attrs.fields(cls)}
    return cls(**{name: _value(fields[name], value) for name, value in values.items()})


def _value(kind: Any, value: Any) -> Any:
    """``value`` (plain JSON) as the field type ``kind`` wants it."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _value(options[0], value) if len(options) == 1 else value
    if origin in (tuple, frozenset):
        item = typing.get_args(kind)[0]
        return origin(_value(item, v) for v in value)
    if isinstance(kind, type) and attrs.has(kind):
        return _build(kind, value)
    return value


def encode_error(error: GatewayError) -> dict[str, str]:
    """A refusal, to send back to the node that asked."""
    return {"code": error.code, "text": error.text}


def decode_error(data: dict[str, str]) -> GatewayError:
    """The refusal :func:`encode_error` made (InternalError for an unknown code)."""
    cls = _ERRORS.get(data.get("code", ""), InternalError)
    return cls(data.get("text", "internal error"))
