"""The seam between a JSON-IM session and the transport its frames travel on."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IFrameLink(Interface):
    """How one session's frames travel: the transport side of a JSON-IM connection."""

    peer = Attribute("The peer's address as log lines show it.")
    peer_host = Attribute("The peer's IP address (for login throttling), or None.")

    def send(frame):
        """Send one server frame (a dict) to the client."""

    def close():
        """Close the connection once what was sent has gone out."""

    def claim_role(role):
        """Tell the firewall the session's role; False: refused (it is closing)."""
