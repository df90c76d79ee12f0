"""The contract between the firewall and the protocols behind it.

A listener's connections are wrapped by the firewall (:mod:`firewall.wrapper`); the
protocol inside sees a transport that provides :class:`IFirewallTransport` (through
a TLS layer too). A protocol that provides :class:`IFirewalledProtocol` reports its
own messages and renders the firewall's refusals in its own words; one that does not
(a DNAT relay) is counted in lines per read and refused with a plain close.
"""

from __future__ import annotations

from zope.interface import Interface


class IFirewallTransport(Interface):
    """The transport of a connection that the firewall admitted."""

    def firewall_messages(count):
        """Count ``count`` whole protocol messages against the message rate.

        Returns False once the connection is dropped for going too fast (it is
        closing; the protocol should stop reading).
        """

    def firewall_role(role):
        """The connection's role (``customer`` or ``agent``) is now known.

        Role rules may refuse it: False means refused, and the connection is closing
        after the protocol's own refusal (:meth:`IFirewalledProtocol.firewall_reject`).
        """


class IFirewalledProtocol(Interface):
    """A protocol that reports each message it reads and speaks the firewall's refusals."""

    def firewall_reject(reason):
        """Tell the peer, in the protocol's own terms, that the firewall refuses it.

        The firewall closes the connection right after.
        """
