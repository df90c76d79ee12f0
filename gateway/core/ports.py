"""How the core's collaborators talk to each other: small interfaces, no privates.

The core is four collaborators sharing one :class:`gateway.core.context.Core`:
the relay (:mod:`gateway.core.relay`: conversations and their messages), the desk
(:mod:`gateway.core.desk`: agents' side), the dispatcher (:mod:`gateway.core.dispatch`:
queues and offers) and the holder (:mod:`gateway.core.holding`: hold, resume,
restore). Each reaches the others only through these interfaces; none imports
another's module.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IRelay(Interface):
    """Live conversations: what is said in them, and how they end."""

    conversations = Attribute("Live conversations by id.")

    def deliver(target, event):
        """Hand an event to a customer session or a live agent, if still connected."""

    def system_line(conv, text):
        """Tell the customer something; it goes in the transcript too."""

    def store_system(conv, text):
        """Put a system line in the transcript and the history only; the stored entry."""

    def end(conv, reason):
        """End a conversation in any state, telling whoever is still there."""

    def open_session(party, conv):
        """A new customer session for ``party``, carrying the existing ``conv``."""

    def adopt(conv):
        """Take a conversation restored from the store into the live ones."""

    def start_timer(conv, delay, action):
        """(Re)start the conversation's one timer."""

    def cancel_timer(conv):
        """Stop the conversation's timer."""


class IDispatch(Interface):
    """Queues, routing plans and offers."""

    plans = Attribute("Where plans come from (an IRouter).")

    def route(conv):
        """The interview is done: classify the conversation, then queue it."""

    def requeue(conv, queue=None, people_only=False, reason="requeue"):
        """Back in line after an agent dropped or transferred it (re-planned where a
        routing server decides); ``reason`` says why, for the event feed."""

    def agent_facts(presence):
        """What the event feed says of an agent at login (skills, teams, queues served)."""

    def withdraw(conv, reason="customer_left"):
        """The conversation stops waiting: out of queue and engine, its offers revoked."""

    def accept(session, offer_id):
        """The agent takes the offered conversation; returns it."""

    def reject(session, offer_id):
        """The agent declines an offer."""

    def agent_left(agent):
        """A logged-out agent's rings end."""

    def remember_agent(conv, agent):
        """Note who served this customer, for sticky routing."""

    def match():
        """Turn every possible match into offers, then update queue positions."""

    def queued(conv):
        """The Queued event of where a waiting conversation stands now, or None."""


class IDesk(Interface):
    """The agents' side of conversations."""

    def leave(conv, agent):
        """The agent is no longer in the conversation; wrap-up time may follow."""

    def reattach(agent):
        """An agent logged in: it gets back the restored conversations that were its."""


class IHolding(Interface):
    """Conversations whose customer (or, after a restart, agent) may come back."""

    def hold(conv):
        """Keep a dropped customer's conversation for the grace period; False: end it."""

    def release(conversation):
        """Stop holding a conversation."""

    def keep_for_absent(session, event):
        """An event for a customer who is away: kept for resume; False: not held."""

    def resume(party, token=None, key=None):
        """The session of a held conversation taken over by ``party``, or None."""

    def new_resume_token(conv, session):
        """Give the session a fresh resume token for its conversation."""

    def tell_if_away(conv):
        """An agent took a conversation whose customer is away: say so."""

    def reclaim(agent):
        """The restored conversations that waited for the agent named ``agent`` (who is
        back): they wait no more, and are returned for the desk to give back."""


class IDeskHooks(Interface):
    """What the core tells the service desk, and the few answers it takes from it."""

    def opened(conv):
        """A new conversation opened (its customer's verified identity is known)."""

    def before_route(conv):
        """A Deferred routing waits for (the customer's history, loaded), or None."""

    def relayed(conv, event):
        """A line (an ev.Message) went between the customer and the agent."""

    def customer_line(conv, entry):
        """A customer's stored line in a state the relay does not handle itself."""

    def says(session, conversation, text):
        """An agent's line in a conversation it is not the agent of: a Deferred (the
        message id), or None when the desk does not take it either."""

    def ending(conv, reason):
        """The conversation is about to end; True: the desk keeps it going (a survey,
        a message left) and ends it later itself."""

    def ended(conv, reason):
        """The conversation ended."""

    def left(conv, agent):
        """An agent left a conversation (it ended, was transferred, or the agent went)."""

    def wrap_up_over(agent):
        """The wrap-up time ran out: False keeps the agent in wrap-up (a disposition due)."""

    def presence(agent, status):
        """An agent's status changed (or it logged in, with its first status)."""

    def logged_out(agent):
        """An agent logged out."""
