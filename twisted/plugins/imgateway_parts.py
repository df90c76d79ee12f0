"""The parts of ``twistd imgateway``, for ``getPlugins(IGatewayPart)``: one line each.

A new protocol is one folder under ``protocols/`` and one line here.
"""

from gateway.app.parts import admin, bots, cluster, desk, firewall, store
from protocols.irc import adapter as irc
from protocols.jsonim import adapter as jsonim
from protocols.web import adapter as web
from protocols.xmpp import adapter as xmpp

__all__ = ["admin", "bots", "cluster", "desk", "firewall", "irc", "jsonim", "store", "web", "xmpp"]
