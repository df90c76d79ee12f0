"""What protocol adapters and the admin API call on the service desk.

Every agent action takes the agent's session (gateway.core.interfaces.IAgentSession)
and returns a Deferred firing with a JSON-ready dict, or failing with a
gateway.core.errors.GatewayError that the adapter renders its own way. A
conversation is named by its id or its customer's alias.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IServiceDesk(Interface):
    """The service desk: supervision, colleagues, wrap-up, history, tasks, canned texts."""

    settings = Attribute("The [desk] settings (gateway.desk.settings.DeskSettings).")

    # Supervisors.
    def monitor(session, conversation):
        """Follow a conversation silently, with its history (supervisors)."""

    def barge(session, conversation):
        """Join a conversation visibly (supervisors)."""

    def live(session):
        """The live conversations this supervisor may monitor."""

    def team(session):
        """The supervisor's teams: their agents (state, reason, load) and queues."""

    def set_state(session, agent, status):
        """Set an agent of the supervisor's teams available, away or offline."""

    def whisper(session, conversation, text):
        """A private line to the other agents in the conversation (never the customer)."""

    def leave(session, conversation):
        """Stop monitoring, consulting or taking part in a conversation."""

    # Colleagues.
    def consult(session, conversation, agent, text=None):
        """Bring a colleague in privately."""

    def conference(session, conversation, agent=None):
        """Add a colleague (the one consulted) to the conversation visibly."""

    def handover(session, conversation, agent=None, introduction=None):
        """Warm transfer to the consulted colleague, after an introduction."""

    # Wrap-up.
    def wrap_up(session, conversation, disposition, tags=(), note=None):
        """Give a finished conversation's disposition, tags and note (conversation None:
        the only, else the oldest, wrap-up due)."""

    def note(session, conversation, text):
        """A private note on a conversation."""

    # History.
    def past(session, conversation):
        """The earlier conversations of this conversation's customer."""

    def transcript(session, conversation, earlier):
        """One of those earlier conversations, in full."""

    # Canned responses.
    def canned(session, conversation, name):
        """Send the canned response ``name``, its placeholders filled."""

    def canned_list(session):
        """The canned responses this agent may use."""

    # Not ready.
    def away(session, reason=None):
        """Go away with a reason code."""

    # Offline messages.
    def tasks(session):
        """The message the agent was given to answer, if any."""

    def reply(session, task, text):
        """Answer a message a customer left."""

    def release(session, task):
        """Give the message back for another agent."""
