"""The directory seam: where logged-in agents' presence lives."""

from __future__ import annotations

from zope.interface import Interface


class IAgentDirectory(Interface):
    """Logged-in agents' presence records (:class:`gateway.directory.records.AgentPresence`).

    Every call returns a Deferred, so that a shared backend (Redis) can sit behind it.
    Observers registered with :meth:`watch` are told of every change, whichever node
    made it: the matching engine and the node's view are fed from them.
    """

    def publish(presence):
        """Add or replace the record of ``presence.name``; fires once it is recorded."""

    def withdraw(name, session):
        """Remove ``name``'s record if it still belongs to login ``session``."""

    def get(name):
        """Fires with the record of ``name``, or None."""

    def all():
        """Fires with every record, in no particular order."""

    def watch(observer):
        """Call ``observer(name, presence)`` on every change (presence None: gone)."""
