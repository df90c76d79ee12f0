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


class IPartyLimits(Interface):
    """A party whose wire has limits a message must fit (optional beside IParty)."""

    def refuses(event):
        """Why ``event`` (a Message) cannot reach this party (a short text), or None."""


class IDelivery(Interface):
    """How an event reaches a party: in this process, or (in a cluster) on another node."""

    def deliver(session, event):
        """Render ``event`` to the party of ``session``; a broken party does not raise."""


class ISession(Interface):
    """What an adapter holds for one connected party."""

    id = Attribute("The session id, e.g. 's-3f9c…'.")

    def disconnected():
        """The party's connection is gone."""


class ICustomerSession(ISession):
    """A customer's session: the conversation it carries, and what the customer does."""

    def disconnected(quit=False, undelivered=()):
        """The customer's connection is gone: ``quit`` when the customer left on purpose
        (IRC QUIT, XMPP unavailable presence, a closed stream): the conversation ends at
        once; otherwise the connection was lost and the conversation is held for a
        resume, not offered to agents meanwhile. ``undelivered``: events the wire
        bounced (an XMPP error), delivered again on resume before later ones."""

    conversation = Attribute("The customer's conversation (None once gone).")
    resume_token = Attribute("A token to take the conversation back after a drop, or None.")

    def say(text, *, markup=None):
        """Store a customer line; a Deferred firing with its message id once committed.

        ``markup``: the line as formatted (rich_text), ``text`` its plain rendering.
        """

    def receipt(msg, state):
        """The customer's client has received (delivered) or shown (read) message ``msg``."""

    def say_then(text, done, *, markup=None):
        """As ``say``, without a Deferred (the adapters' path for every line): calls
        ``done(msg_id, None)`` once committed, or ``done(None, error)`` with the
        GatewayError the Deferred would have failed with."""

    def typing(state):
        """Relay a typing notification (active, paused) to the agent, if one is there."""

    def identify(client):
        """The customer's IM software became known after arrival (a ClientInfo)."""

    def end():
        """The customer ends the conversation."""


class IAgentSession(ISession):
    """A logged-in agent's session."""

    name = Attribute("The agent's account name (never shown to customers).")
    agent = Attribute("The live agent (gateway.core.agents.LiveAgent).")

    def set_presence(status):
        """available, away or offline; only available agents get offers."""

    def identify(client):
        """The agent's IM software became known after login (a ClientInfo)."""

    def accept(offer):
        """Take an offered conversation."""

    def reject(offer):
        """Decline an offered conversation."""

    def say(conversation, text, *, markup=None):
        """Store an agent line; a Deferred firing with its message id once committed."""

    def say_then(conversation, text, done, *, markup=None):
        """As ``say``, without a Deferred: ``done(msg_id, None)`` once committed, or
        ``done(None, error)``."""

    def receipt(conversation, msg, state):
        """The agent's client has received (delivered) or shown (read) message ``msg``."""

    def typing(conversation, state):
        """Relay a typing notification to the customer."""

    def transfer(conversation, *, queue=None, agent=None):
        """Hand the conversation to a queue or a named colleague."""

    def end(conversation):
        """The agent ends a conversation."""


class IGateway(Interface):
    """The core as protocol adapters and in-process bots see it."""

    config = Attribute("The gateway's configuration (gateway.config.Config).")
    queues = Attribute("Queues by name.")
    service_desk = Attribute(
        "The service desk's actions (gateway.desk.interfaces.IServiceDesk), or None."
    )

    def customer_arrived(
        party,
        *,
        protocol,
        client,
        answers,
        features=frozenset(),
        key=None,
        resume=None,
        resume_key=None,
        opening=None,
        verified=None,
        address=None,
        customer_id=None,
    ):
        """A customer connected: an ICustomerSession (its conversation opened or resumed).

        ``opening`` is the line that brought the customer (an XMPP or IRC message): it
        is stored and given to the agent, but answers no interview question.
        ``verified``: identity details the connection proved (trusted as ``account``);
        ``address``: where an attached IM server can carry the conversation directly.
        """

    def agent_login(party, *, protocol, name, password, client, features=frozenset(), address=None):
        """Authenticate an agent by password; a Deferred firing with its IAgentSession."""

    def agent_attach(party, *, protocol, address, client, features=frozenset()):
        """Log in an agent an attached IM server authenticated, by its IM address."""

    def agent_credentials(name, *, protocol="", address=None):
        """A Deferred firing with an agent's stored SCRAM keys (JSON text), or None;
        failing with AuthFailed while ``name`` is locked out at ``address``."""

    def agent_login_failed(protocol, name, address):
        """A login the adapter checked failed: count it against the lockouts, log it."""

    def agent_authenticated(party, *, protocol, name, client, features=frozenset(), address=None):
        """Log in an agent whose adapter verified it against agent_credentials()."""

    def agent_join(party, record, *, protocol="internal", client=None):
        """Log in an agent that runs inside the gateway (a bot); its IAgentSession."""

    def auth_failed(protocol, user, address):
        """Log one fail2ban-friendly line for a failed agent login, and count it."""
