"""The parties the core talks to for XMPP users: one per customer, one per agent.

They hold what the hub needs to route stanzas and hand rendering back to it; they
never write to a transport themselves.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from firewall.common import TokenBucket
from gateway.core.interfaces import IParty
from protocols.xmpp.interfaces import PartyHost


@implementer(IParty)
class CustomerParty:
    """A customer writing from ``jid`` (full JID) to the support address."""

    def __init__(self, hub: PartyHost, jid: str, bare: str, bucket: TokenBucket) -> None:
        self.hub = hub
        self.jid = jid
        self.bare = bare
        self.bucket = bucket
        self.session: Any = None
        # What is asked of its client (protocols.xmpp.identify).
        self.inquiry: Any = None
        # Messages sent lately, by stanza id: what a bounce names is kept for a resume.
        self.sent: OrderedDict[str, object] = OrderedDict()
        # The client said (XEP-0030) that it fills in XEP-0004 forms.
        self.forms = False
        self.closed = False

    def deliver(self, event: object) -> None:
        """Render an event as a message from the support address."""
        if not self.closed:
            self.hub.deliver_to_customer(self, event)

    def close(self, reason: str) -> None:
        """Forget this customer; a later message starts a new conversation."""
        self.hub.drop_customer(self, reason)


@implementer(IParty)
class AgentParty:
    """An agent whose account is on the attached server (``xmpp:bare``)."""

    def __init__(self, hub: PartyHost, jid: str, bare: str) -> None:
        self.hub = hub
        self.jid = jid
        self.bare = bare
        self.session: Any = None
        # Offers in the order they came (oldest first) -> customer alias.
        self.offers: dict[str, str] = {}
        # Customer alias (the translated local part) -> conversation id, and back.
        self.chats: dict[str, str] = {}
        self.closed = False
        self.inquiry: Any = None
        # The direct listener closes the agent's connection when the core logs it out.
        self.on_close: Callable[[str], None] | None = None

    def conversation_of(self, alias: str) -> str | None:
        """The conversation the agent holds with the customer aliased ``alias``."""
        return self.chats.get(alias)

    def alias_of(self, conversation: str) -> str | None:
        """The alias of the customer in ``conversation``."""
        for alias, conv in self.chats.items():
            if conv == conversation:
                return alias
        return None

    def deliver(self, event: object) -> None:
        """Render an event: offers from the support address, chats from the alias."""
        if not self.closed:
            self.hub.deliver_to_agent(self, event)

    def close(self, reason: str) -> None:
        """Log the agent out of the gateway (not off its server)."""
        self.hub.drop_agent(self, reason)
