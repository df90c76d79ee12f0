"""A MemoryReactor whose listening ports report the interface they were asked to bind
(MemoryReactor's report 0.0.0.0), as the admin listeners' loopback check reads it."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactor, MemoryReactorClock


class _Bound:
    """Mixin: listenTCP's port tells the address it was bound to."""

    def listenTCP(self, port, factory, backlog=50, interface=""):  # noqa: N802
        bound = super().listenTCP(port, factory, backlog, interface)
        kind = IPv6Address if ":" in interface else IPv4Address
        bound._hostAddress = kind("TCP", interface or "0.0.0.0", port)
        return bound


class BindingReactor(_Bound, MemoryReactor):
    """MemoryReactor with truthful listening addresses."""


class BindingReactorClock(_Bound, MemoryReactorClock):
    """MemoryReactorClock with truthful listening addresses."""
