"""The ``[web]`` section: the web listener's origins, limits, console and demo page."""

from __future__ import annotations

import re
from typing import Any

import attrs

# scheme://host[:port], as a browser sends it in Origin (lowercase, no path).
_ORIGIN = re.compile(
    r"^https?://[a-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$"
)
ANY_ORIGIN = "*"
AWAY_REASONS = ("Break", "Lunch", "Meeting", "Training")


@attrs.frozen
class WebSettings:
    """Settings of the web listeners; defaults here are those of ``[web]``."""

    # Origins whose pages may open customer chats (the widget); "*" for any.
    allowed_origins: tuple[str, ...] = ()
    # Clients that send no Origin header (programs, not browsers) may connect.
    allow_missing_origin: bool = True
    # WebSocket connections open at once from pages of one origin.
    max_connections_per_origin: int = 1000
    # Serve the agent console at /console; extra origins it may be served from.
    console: bool = True
    console_origins: tuple[str, ...] = ()
    # Serve the demo page at /demo.
    demo: bool = False
    # Time allowed for a request's headers (the WebSocket opening handshake too), and
    # for an idle HTTP connection.
    handshake_timeout_s: float = 10.0
    http_timeout_s: float = 30.0
    # The reasons the console offers for being away.
    away_reasons: tuple[str, ...] = AWAY_REASONS


def _origins(reader: Any, name: str, allow_any: bool) -> tuple[str, ...]:
    values = reader.get(name, list, [])
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise reader.fail(f"{name}[{i}]", "must be a string")
        if value == ANY_ORIGIN and allow_any:
            out.append(value)
            continue
        if not _ORIGIN.match(value):
            raise reader.fail(
                f"{name}[{i}]",
                f"{value!r} is not an origin: scheme://host[:port] in lowercase, no path"
                + (', or "*"' if allow_any else ""),
            )
        out.append(value)
    return tuple(out)


def parse(reader: Any) -> WebSettings:
    """Read ``[web]`` from its :class:`gateway.config.Reader`."""
    reasons = reader.get("away_reasons", list, list(AWAY_REASONS))
    for i, reason in enumerate(reasons):
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 64:
            raise reader.fail(f"away_reasons[{i}]", "must be a non-empty string of 64 at most")
    settings = WebSettings(
        allowed_origins=_origins(reader, "allowed_origins", allow_any=True),
        allow_missing_origin=reader.get("allow_missing_origin", bool, True),
        max_connections_per_origin=reader.number(
            "max_connections_per_origin", 1000, low=1, high=10_000_000, integer=True
        ),
        console=reader.get("console", bool, True),
        console_origins=_origins(reader, "console_origins", allow_any=False),
        demo=reader.get("demo", bool, False),
        handshake_timeout_s=reader.number("handshake_timeout_s", 10, low=0.1, high=3600),
        http_timeout_s=reader.number("http_timeout_s", 30, low=1, high=86400),
        away_reasons=tuple(reasons),
    )
    reader.done()
    return settings
