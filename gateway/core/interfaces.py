"""The seams of the gateway core (see DESIGN.md, "Seams")."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IParty(Interface):
    """One connected party (customer or agent) as the core sees it.

    Every protocol adapter provides this; the core never touches a transport.
    """

    def deliver(event):
        """Render one neutral event from :mod:`gateway.core.events` to the party."""

    def close(reason):
        """Close the party's connection; ``reason`` is a short text for logs and the party."""


class IRouter(Interface):
    """Classifies a conversation into a routing plan (see gateway.routing.plan).

    Local rules, the enterprise routing server's client, and a fallback
    combination of both provide it; the gateway's matching engine then runs the
    plan against its live agents.
    """

    def plan(customer):
        """Return a Deferred firing with a :class:`gateway.routing.plan.Plan`
        for a :class:`gateway.routing.plan.Customer`."""


class IAgentDirectory(Interface):
    """The pool of logged-in agents and their live state."""

    def get(name):
        """The :class:`gateway.directory.memory.AgentState` named ``name``, or None."""

    def add(state):
        """Register a logged-in agent's state."""

    def remove(name):
        """Forget a logged-out agent."""

    def candidates():
        """Every logged-in agent's state, in no particular order."""


class ISession(Interface):
    """What an adapter holds for one authenticated or anonymous party."""

    id = Attribute("The session id, e.g. 's-3f9c…'.")

    def disconnected():
        """The party's connection is gone."""
