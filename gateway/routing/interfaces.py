"""The routing seam: where a conversation's plan comes from."""

from __future__ import annotations

from zope.interface import Interface


class IRouter(Interface):
    """Classifies a conversation into a routing plan (see gateway.routing.plan).

    Local rules, the enterprise routing server's client, and a fallback
    combination of both provide it; the gateway's matching engine then runs the
    plan against its live agents.
    """

    def plan(customer):
        """Return a Deferred firing with a :class:`gateway.routing.plan.Plan`
        for a :class:`gateway.routing.plan.Customer`."""
