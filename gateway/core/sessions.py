"""Sessions: what an adapter holds for a connected customer or agent.

A session forwards what its party does to the core's collaborators, through their
public ports (:mod:`gateway.core.ports`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.core import events as ev
from gateway.core.agents import LiveAgent
from gateway.core.interfaces import IAgentSession, ICustomerSession

# What a sender is told of its line (say_then): (message id, None) once committed, or
# (None, the error saying why not).
Done = Callable[[str | None, Exception | None], object]


@implementer(ICustomerSession)
class CustomerSession:
    """One customer's connection and the conversation it carries."""

    def __init__(self, relay: Any, party: Any, session_id: str) -> None:
        self._relay = relay
        self.party = party
        self.id = session_id
        self.conversation: Any = None
        self.gone = False
        # Given to the customer (JSON-IM welcome.resume) to take the conversation
        # back after a drop or a restart; see gateway.core.resume.
        self.resume_token: str | None = None

    def say(self, text: str, *, markup: str | None = None) -> Deferred[str]:
        """Store a customer line; fires with its message id once it is committed.

        ``markup``: the line as formatted (rich_text), ``text`` its plain rendering.
        """
        return self._relay.customer_says(self, text, markup)

    def receipt(self, msg: str, state: str) -> None:
        """The customer's client has received or shown the agent's message ``msg``."""
        self._relay.customer_receipt(self, msg, state)

    def say_then(self, text: str, done: Done, *, markup: str | None = None) -> None:
        """As :meth:`say` without a Deferred: ``done(msg_id, None)`` once committed, or
        ``done(None, error)``."""
        self._relay.customer_says_then(self, text, done, markup)

    def typing(self, state: str) -> None:
        """Relay a typing notification to the agent, if one is connected."""
        self._relay.customer_typing(self, state)

    def identify(self, client: ev.ClientInfo) -> None:
        """The customer's IM software became known (XEP-0092, CTCP VERSION) after arrival."""
        self._relay.customer_identified(self, client)

    def end(self) -> None:
        """The customer ends the conversation."""
        self._relay.customer_ends(self)

    def disconnected(self, quit: bool = False, undelivered: tuple = ()) -> None:
        """The customer's connection is gone; ``quit``: the customer left on purpose.
        ``undelivered``: events its wire bounced, kept (first) for a resume."""
        self._relay.customer_gone(self, quit=quit, undelivered=undelivered)


@implementer(IAgentSession)
class AgentSession:
    """One logged-in agent's connection."""

    def __init__(self, desk: Any, relay: Any, party: Any, session_id: str) -> None:
        self._desk = desk
        self._relay = relay
        self.party = party
        self.id = session_id
        self.agent: LiveAgent = None  # set by the desk right after
        self.gone = False

    @property
    def name(self) -> str:
        """The agent's account name (never shown to customers)."""
        return self.agent.name

    def set_presence(self, status: str) -> None:
        """available, away or offline; only available agents get offers."""
        self._desk.presence(self, status)

    def identify(self, client: ev.ClientInfo) -> None:
        """The agent's IM software became known after login (XEP-0092, CTCP VERSION)."""
        self.agent.change(client_name=client.name, client_version=client.version)

    def accept(self, offer: str) -> None:
        """Take an offered conversation."""
        self._desk.accept(self, offer)

    def reject(self, offer: str) -> None:
        """Decline an offered conversation; it is not offered to this agent again."""
        self._desk.reject(self, offer)

    def say(self, conversation: str, text: str, *, markup: str | None = None) -> Deferred[str]:
        """Store an agent line; fires with its message id once it is committed."""
        return self._relay.agent_says(self, conversation, text, markup)

    def receipt(self, conversation: str, msg: str, state: str) -> None:
        """The agent's client has received or shown the customer's message ``msg``."""
        self._relay.agent_receipt(self, conversation, msg, state)

    def say_then(
        self, conversation: str, text: str, done: Done, *, markup: str | None = None
    ) -> None:
        """As :meth:`say` without a Deferred: ``done(msg_id, None)`` once committed, or
        ``done(None, error)``."""
        self._relay.agent_says_then(self, conversation, text, done, markup)

    def typing(self, conversation: str, state: str) -> None:
        """Relay a typing notification to the customer."""
        self._relay.agent_typing(self, conversation, state)

    def transfer(self, conversation: str, *, queue: str | None = None, agent: str | None = None):
        """Hand the conversation to a queue or a named colleague."""
        self._desk.transfer(self, conversation, queue=queue, agent=agent)

    def end(self, conversation: str) -> None:
        """The agent ends a conversation."""
        self._desk.end(self, conversation)

    def disconnected(self) -> None:
        """The agent's connection is gone: its conversations are requeued."""
        self._desk.gone(self)


def errors_to(
    handler: Callable[[Failure], object],
) -> Callable[[str | None, Exception | None], None]:
    """A ``say_then`` completion handing a refusal to ``handler`` as a Failure (as the
    errback of ``say``'s Deferred would get it); a commit needs nothing."""

    def done(msg: str | None, error: Exception | None) -> None:
        if error is not None:
            handler(Failure(error))

    return done
