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


class IStore(Interface):
    """Durable records: agents, conversations and their transcripts.

    Writes are applied in the order they are made; each Deferred fires only
    once its write is committed to disk.
    """

    def open_conversation(record):
        """Record a new :class:`gateway.store.records.ConversationRecord`."""

    def update_conversation(conversation, **changes):
        """Change columns of a conversation (``state``, ``agent``, ``queue``,
        ``topic``, ``ended``, ``end_reason``)."""

    def append(message):
        """Append a :class:`gateway.store.records.StoredMessage`; the Deferred fires
        when it is committed."""

    def get_agent(name):
        """Deferred firing with the :class:`gateway.store.records.AgentRecord` or None."""

    def scram_credentials(name):
        """Deferred firing with an agent's SCRAM keys as stored (JSON text), or None."""

    def find_agent(address):
        """Deferred firing with the AgentRecord known by an IM address
        (``xmpp:anna@corp.example``), or None."""

    def transcript(conversation):
        """Deferred firing with the list of StoredMessage of a conversation."""

    def recent_conversations(limit):
        """Deferred firing with the newest ConversationRecords, newest first."""

    def set_resume(conversation, token_hash, key):
        """Record how a conversation's customer may resume it (see gateway.core.resume)."""

    def open_conversations():
        """Deferred firing with (ConversationRecord, token hash, key) for every
        conversation not ended, oldest first: what a restart finds."""

    def close():
        """Finish pending writes and release the database; returns a Deferred."""


class ISession(Interface):
    """What an adapter holds for one authenticated or anonymous party."""

    id = Attribute("The session id, e.g. 's-3f9c…'.")

    def disconnected():
        """The party's connection is gone."""
