"""The ``[jsonim]`` section: limits of the JSON-IM/1 listeners (see the JSON-IM spec)."""

from __future__ import annotations

import os
from typing import Any

import attrs

from protocols.jsonim.identity import SECRET_ENV


@attrs.frozen
class JsonImSettings:
    """JSON-IM/1 listener limits; defaults here are those of ``[jsonim]``."""

    max_frame: int = 65536
    max_depth: int = 32
    heartbeat_s: float = 30.0
    hello_timeout_s: float = 30.0
    max_bad_frames: int = 3
    messages_per_second: float = 5.0
    message_burst: int = 20
    # The key of site-signed identities (protocols.jsonim.identity); empty: none.
    identity_secret: str = attrs.field(default="", repr=False)


def parse(j: Any) -> JsonImSettings:
    """Read ``[jsonim]`` from its :class:`gateway.config.Reader`."""
    settings = JsonImSettings(
        max_frame=j.number("max_frame", low=256, high=16 * 1024 * 1024, integer=True),
        max_depth=j.number("max_depth", low=2, high=256, integer=True),
        heartbeat_s=j.number("heartbeat_s", low=1, high=86400),
        hello_timeout_s=j.number("hello_timeout_s", low=1, high=3600),
        max_bad_frames=j.number("max_bad_frames", low=1, high=1000, integer=True),
        messages_per_second=j.number("messages_per_second", low=0.01, high=1e6),
        message_burst=j.number("message_burst", low=1, high=1e6, integer=True),
        # A secret in the environment wins over the file.
        identity_secret=os.environ.get(SECRET_ENV) or j.text("identity_secret", ""),
    )
    j.done()
    return settings
