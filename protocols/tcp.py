"""What every protocol's connections share: TCP options and the firewall's hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from firewall.common import no_delay
from firewall.interfaces import IFirewallTransport

__all__ = ["firewall_message_hook", "firewall_of", "firewall_role", "no_delay"]


def _let_through(_: object = None) -> bool:
    return True


def firewall_of(transport: Any) -> IFirewallTransport | None:
    """The firewall's side of this connection, below any TLS layer; None if unguarded."""
    # A TLS layer (TLSMemoryBIOProtocol) is the protocol's transport; the firewall's
    # wrapper is that layer's own transport.
    for _ in range(4):
        if transport is None or IFirewallTransport.providedBy(transport):
            return transport
        transport = getattr(transport, "transport", None)
    return None


def firewall_message_hook(transport: Any) -> Callable[[int], bool]:
    """The firewall's ``firewall_messages(n)`` on this connection, else one that lets all in.

    Looked up once per connection: it is called for every message read.
    """
    guard = firewall_of(transport)
    return _let_through if guard is None else guard.firewall_messages


def firewall_role(transport: Any, role: str) -> bool:
    """Tell the firewall the connection's role once known; False: refused, it is closing."""
    guard = firewall_of(transport)
    return True if guard is None else guard.firewall_role(role)
