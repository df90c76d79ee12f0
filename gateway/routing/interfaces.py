"""The routing seam: where a conversation's plan comes from."""

from __future__ import annotations

from zope.interface import Interface


class IRouter(Interface):
    """Classifies a conversation into a routing plan (see gateway.routing.plan).

    Local rules, the enterprise routing server's client, and a fallback
    combination of both provide it; the gateway's matching engine then runs the
    plan against its live agents.
    """

    def plan(customer, request=None):
        """Return a Deferred firing with a :class:`gateway.routing.plan.Plan`
        for a :class:`gateway.routing.plan.Customer`.

        ``request`` (a :class:`gateway.routing.plan.PlanRequest`) says which
        conversation and why (new, requeue, transfer); a routing server decides with
        its live state, and a request's ``fallback`` plan is the answer when it cannot.
        """


class IEventSink(Interface):
    """Where the core's communication events go: the routing server's feed
    (:class:`gateway.routing.feed.EventFeed`), or nowhere (:class:`NoEvents`).

    Each call must cost next to nothing and never fail or wait: the core calls it
    where a conversation or an agent changes, and for every message.
    """

    def emit(kind, subject, fields=None):
        """A conversation event (``subject`` its id) or an agent event (``agent_*``,
        ``subject`` the agent's name), with a small dict of JSON-ready ``fields``."""

    def message(conversation, msg, sender, size, ts, text):
        """A message of ``conversation`` (id ``msg``, from ``sender``, ``size``
        characters, stored at ``ts``); ``text`` is sent on only if the router asks."""

    def agent(presence):
        """An agent's presence record changed (status, load, wrap-up): its state."""
