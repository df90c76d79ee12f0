"""Where the service desk (gateway.desk) joins the core: the moments it is told of.

The core calls :class:`gateway.core.ports.IDeskHooks` on ``Core.hooks`` at the points
named; :class:`NoDesk`, the default, changes nothing, so a core without a desk
behaves as before. The desk
(:class:`gateway.desk.service.ServiceDesk`) attaches itself in the composition root;
the core never imports it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from gateway.core.ports import IDeskHooks


@implementer(IDeskHooks)
class NoDesk:
    """No service desk: every hook does nothing."""

    def opened(self, conv: Any) -> None:
        """Nothing to look up."""

    def before_route(self, conv: Any) -> Deferred:
        """Route at once."""
        return succeed(None)

    def relayed(self, conv: Any, event: Any) -> None:
        """Nobody else to tell."""

    def customer_line(self, conv: Any, entry: Any) -> None:
        """Nothing to do with it."""

    def says(self, session: Any, conversation: str, text: str) -> None:
        """Not taken."""
        return None

    def ending(self, conv: Any, reason: str) -> bool:
        """End it."""
        return False

    def ended(self, conv: Any, reason: str) -> None:
        """Nothing to clean up."""

    def left(self, conv: Any, agent: Any) -> None:
        """No wrap-up to ask for."""

    def wrap_up_over(self, agent: Any) -> bool:
        """Wrap-up ends with its time."""
        return True

    def presence(self, agent: Any, status: str) -> None:
        """Nothing recorded."""

    def logged_out(self, agent: Any) -> None:
        """Nothing recorded."""
