"""What every protocol's connections share: TCP options and the firewall's hooks."""

from __future__ import annotations

from collections.abc import Callable
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


def _let_through(_: object = None) -> bool:
    return True


def firewall_message_hook(transport: Any) -> Callable[[int], bool]:
    """The firewall's ``firewall_messages(n)`` on this connection, else one that lets all in.

    A listener behind the firewall gives it (through a TLS layer too); it counts whole
    messages against the message rate and returns False once the connection is dropped.
    Looked up once per connection: it is called for every message read.
    """
    return getattr(transport, "firewall_messages", _let_through)


def firewall_role(transport: Any, role: str) -> bool:
    """Tell the firewall the connection's role once known; False: refused, it is closing."""
    return getattr(transport, "firewall_role", _let_through)(role)
