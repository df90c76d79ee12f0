"""What the admin service needs of the gateway it administers."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IAdministered(Interface):
    """A running gateway node, as the admin API, metrics and retention see it.

    The composition root's GatewayService provides it; the admin room types against
    this, never against the service class.
    """

    config = Attribute("The gateway's configuration (gateway.config.Config).")
    reactor = Attribute("The reactor the node runs on.")
    gateway = Attribute("The core (gateway.core.interfaces.IGateway).")
    store = Attribute("The transcript store (gateway.store.interfaces.IStore).")
    firewall = Attribute("The firewall engine (firewall.engine.Firewall).")
    firewalls = Attribute("Firewall-wrapped listener factories by listener kind.")
    metrics = Attribute("The node's metrics (gateway.metrics.GatewayMetrics).")

    def listen(kind, description, factory, *, parent):
        """Serve ``factory`` on ``description`` under ``parent`` (bound at startup)."""

    def reload_rules():
        """Read the routing rules file again; False when it is bad (nothing changed)."""

    def reload_teams():
        """Read the teams from the database again; a Deferred firing with the new
        :class:`gateway.directory.teams.Teams`."""
