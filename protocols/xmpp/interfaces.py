"""What an XMPP party needs of the hub that routes its stanzas."""

from __future__ import annotations

from typing import Any, Protocol


class PartyHost(Protocol):
    """The hub as the parties see it: rendering and dropping are its business."""

    def deliver_to_customer(self, party: Any, event: object) -> None:
        """Render an event for a customer."""

    def drop_customer(self, party: Any, reason: str, quit: bool = False) -> None:
        """The customer is gone (``quit``: it left on purpose)."""

    def deliver_to_agent(self, party: Any, event: object) -> None:
        """Render an event for an agent."""

    def drop_agent(self, party: Any, reason: str) -> None:
        """Log the agent out of the gateway."""
