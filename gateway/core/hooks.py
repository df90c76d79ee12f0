"""Where the service desk (gateway.desk) joins the core: the moments it is told of.

The core calls these on ``Core.hooks`` at the points named; :class:`NoDesk`, the
default, changes nothing, so a core without a desk behaves as before. The desk
(:class:`gateway.desk.service.ServiceDesk`) attaches itself in the composition root;
the core never imports it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import Interface, implementer


class IDeskHooks(Interface):
    """What the core tells the service desk, and the few answers it takes from it."""

    def opened(conv):
        """A new conversation opened (its customer's verified identity is known)."""

    def before_route(conv):
        """A Deferred routing waits for (the customer's history, loaded), or None."""

    def relayed(conv, event):
        """A line (an ev.Message) went between the customer and the agent."""

    def customer_line(conv, entry):
        """A customer's stored line in a state the relay does not handle itself."""

    def says(session, conversation, text):
        """An agent's line in a conversation it is not the agent of: a Deferred (the
        message id), or None when the desk does not take it either."""

    def ending(conv, reason):
        """The conversation is about to end; True: the desk keeps it going (a survey,
        a message left) and ends it later itself."""

    def ended(conv, reason):
        """The conversation ended."""

    def left(conv, agent):
        """An agent left a conversation (it ended, was transferred, or the agent went)."""

    def wrap_up_over(agent):
        """The wrap-up time ran out: False keeps the agent in wrap-up (a disposition due)."""

    def presence(agent, status):
        """An agent's status changed (or it logged in, with its first status)."""

    def logged_out(agent):
        """An agent logged out."""


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
