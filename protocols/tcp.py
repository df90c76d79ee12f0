"""TCP options every protocol's connections share."""

from __future__ import annotations

from typing import Any


def no_delay(transport: Any) -> None:
    """Turn Nagle's algorithm off (``TCP_NODELAY``) where the transport is TCP.

    A chat line is one small write; with Nagle on, a write that follows another
    before its ACK waits for that ACK, which the peer may delay by up to 40 ms
    (delayed ACK): at a few hundred lines a second per connection that was the
    median latency of a relayed message. Transports without the option (in-memory
    test transports, UNIX sockets) are left as they are.
    """
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is None:
        return
    try:
        set_no_delay(True)
    except (OSError, AttributeError, NotImplementedError):
        pass
