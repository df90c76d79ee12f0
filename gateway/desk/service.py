"""The service desk: what agents and supervisors expect around a conversation.

:class:`ServiceDesk` is made by the composition root for a running gateway and
attached to its core: it becomes the core's hooks (gateway.core.hooks) and the
gateway's ``service_desk``, the actions protocol adapters call (IServiceDesk). It
composes one part per feature, each in its own module:

- rooms.py, supervision.py, consult.py: more than one agent in a conversation
  (monitor, whisper, barge; consult, warm transfer, conference);
- wrapup.py: dispositions, tags, notes; history.py: returning customers;
- offline.py: messages left when nobody can serve; survey.py: satisfaction;
- canned.py, states.py (not-ready reasons), calendar.py (holidays).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from gateway import logs
from gateway.core import events as ev
from gateway.core.conversation import ENDED, Conversation
from gateway.core.errors import NotAllowed
from gateway.core.hooks import IDeskHooks
from gateway.desk.calendar import Calendar
from gateway.desk.canned import CannedResponses
from gateway.desk.consult import Consults
from gateway.desk.context import LEAVING_MESSAGE, SURVEY, DeskContext
from gateway.desk.history import History
from gateway.desk.interfaces import IServiceDesk
from gateway.desk.metrics import DeskMetrics
from gateway.desk.offline import Offline
from gateway.desk.rooms import Rooms
from gateway.desk.settings import DeskSettings
from gateway.desk.states import States
from gateway.desk.store import DeskStore, Runner
from gateway.desk.supervision import Roles, Supervision
from gateway.desk.survey import Surveys
from gateway.desk.teams import TeamDesk, TeamScope
from gateway.desk.wrapup import WrapUps
from gateway.directory.records import AVAILABLE


def _hook(default: Any = None) -> Callable:
    """A hook the core calls: the desk's failure is logged and ``default`` returned, so
    that the core goes on serving (as a broken adapter does not stop delivery)."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def guarded(self: ServiceDesk, *args: Any) -> Any:
            try:
                return method(self, *args)
            except Exception:
                self._log.failure("service desk: the {hook} hook failed", hook=method.__name__)
                return default

        return guarded

    return wrap


@implementer(IDeskHooks, IServiceDesk)
class ServiceDesk:
    """The desk of one gateway node."""

    _log = Logger(observer=logs.observer)

    def __init__(self, gateway: Any, runner: Runner, teams: Any = None) -> None:
        config = gateway.config
        self.settings: DeskSettings = config.sections.get("desk") or DeskSettings()
        source = config.sources[-1] if config.sources else "-"
        self.settings.check_queues(config.queues, source)
        self.gateway = gateway
        self.store = DeskStore(runner)
        self.teams = teams if teams is not None else TeamScope(gateway.core)
        ctx = self.ctx = DeskContext(
            core=gateway.core,
            relay=gateway.relay,
            desk=gateway.desk,
            dispatcher=gateway.dispatcher,
            store=self.store,
            settings=self.settings,
            metrics=DeskMetrics(gateway.metrics.registry),
        )
        self.rooms = Rooms(ctx)
        self.roles = Roles(ctx)
        self.supervision = Supervision(ctx, self.rooms, self.roles, self.teams)
        self.team_desk = TeamDesk(ctx, self.roles, self.teams)
        self.consults = Consults(ctx, self.rooms)
        self.wrapups = WrapUps(ctx)
        self.wrapups.in_room = self._in_room
        self.history = History(ctx, self._in_room)
        self.offline = Offline(ctx)
        self.surveys = Surveys(ctx)
        self.canned_responses = CannedResponses(ctx, self.teams)
        self.states = States(ctx)
        self.calendar = Calendar(ctx)
        self._sessions: dict[str, str] = {}

    def attach(self) -> ServiceDesk:
        """Become the core's hooks and the gateway's service desk."""
        self.gateway.core.hooks = self
        self.gateway.service_desk = self
        return self

    def start(self) -> Deferred:
        """Once the store is open: the calendar, waiting messages, interrupted states."""
        return DeferredList(
            [self.calendar.start(), self.offline.load(), self.states.start()],
            fireOnOneErrback=True,
            consumeErrors=True,
        )

    def stop(self) -> None:
        """Stop reloading the calendar."""
        self.calendar.stop()

    def _in_room(self, conversation: str, name: str) -> bool:
        return self.rooms.get(conversation, name) is not None

    # -- IDeskHooks ----------------------------------------------------------------------

    @_hook()
    def opened(self, conv: Conversation) -> None:
        """A recognised customer's history is looked up, and answers waiting delivered."""
        d = self.history.opened(conv)
        if d is not None:
            d.addCallback(lambda answers: self.offline.opened(conv, answers))
            d.addErrback(lambda f: self._log.failure("a returning customer, {c}", f, c=conv.id))

    @_hook()
    def before_route(self, conv: Conversation) -> Deferred:
        """Routing waits for the customer's history."""
        return self.history.before_route(conv)

    @_hook()
    def relayed(self, conv: Conversation, event: Any) -> None:
        """Participants see every line between the customer and the agent."""
        self.rooms.relayed(conv, event)

    @_hook()
    def customer_line(self, conv: Conversation, entry: Any) -> None:
        """A survey answer, a message left, or a line monitors see while it waits."""
        if conv.state == SURVEY:
            self.surveys.line(conv, entry)
        elif conv.state == LEAVING_MESSAGE:
            self.offline.line(conv, entry)
        else:
            self.rooms.customer_line(conv, entry)

    @_hook()
    def says(self, session: Any, conversation: str, text: str) -> Deferred | None:
        """A participant's line."""
        return self.rooms.says(session, conversation, text)

    @_hook(False)
    def ending(self, conv: Conversation, reason: str) -> bool:
        """A message may be left, or the survey asked, before the end."""
        if conv.state in (SURVEY, LEAVING_MESSAGE):
            return False
        if self.offline.applies(conv, reason):
            self.offline.start(conv, reason)
            return True
        if self.surveys.applies(conv, reason):
            agent = conv.agent
            conv.state = SURVEY
            self._agent_part_over(conv, agent, reason)
            self.surveys.start(conv, reason, agent.name)
            return True
        return False

    def _agent_part_over(self, conv: Conversation, agent: Any, reason: str) -> None:
        """What the end does for the agents, while the customer stays for the survey."""
        ctx = self.ctx
        ctx.relay.cancel_timer(conv)
        ctx.desk.leave(conv, agent)
        ctx.relay.deliver(agent, ev.Ended(conv.id, reason))
        self.rooms.ended(conv, reason)
        self.wrapups.tell(conv.id)

    @_hook()
    def ended(self, conv: Conversation, reason: str) -> None:
        """Everyone beside the agent leaves; wrap-ups are asked for."""
        self.rooms.ended(conv, reason)
        self.wrapups.tell(conv.id)
        self.history.forget(conv.id)
        self.offline.forget(conv.id)
        self.surveys.forget(conv)
        self.offline.dispatch()

    @_hook()
    def left(self, conv: Conversation, agent: Any) -> None:
        """A wrap-up is due when the conversation ended; consultations end with the agent."""
        finished = conv.state in (ENDED, SURVEY)
        self.wrapups.left(conv, agent, finished=finished)
        if not finished:
            self.rooms.agent_left(conv, agent)

    @_hook(True)
    def wrap_up_over(self, agent: Any) -> bool:
        """Not while a required disposition is due."""
        return self.wrapups.over(agent)

    @_hook()
    def presence(self, agent: Any, status: str) -> None:
        """A login: the agent's role is looked up. Available: it may get a message to answer."""
        session = agent.session.id if agent.session is not None else None
        if self._sessions.get(agent.name) != session:
            self._sessions[agent.name] = session
            self.roles.logged_in(agent)
        if status == AVAILABLE:
            self.offline.dispatch()

    @_hook()
    def logged_out(self, agent: Any) -> None:
        """The agent leaves every room; its task and wrap-ups go."""
        self._sessions.pop(agent.name, None)
        self.roles.logged_out(agent)
        self.rooms.agent_gone(agent, self.ctx.relay.conversations)
        self.offline.agent_gone(agent)
        self.wrapups.agent_gone(agent)

    # -- IServiceDesk ------------------------------------------------------------------------

    def monitor(self, session: Any, conversation: str) -> Deferred:
        """Follow a conversation silently (supervisors)."""
        return self.supervision.monitor(session, conversation)

    def barge(self, session: Any, conversation: str) -> Deferred:
        """Join a conversation visibly (supervisors)."""
        return self.supervision.barge(session, conversation)

    def live(self, session: Any) -> Deferred:
        """The live conversations this supervisor may monitor."""
        return self.supervision.live(session)

    def team(self, session: Any) -> Deferred:
        """The supervisor's teams: their agents and queues."""
        return self.team_desk.view(session)

    def set_state(self, session: Any, agent: str, status: str) -> Deferred:
        """A supervisor sets an agent of its teams available, away or offline."""
        return self.team_desk.set_state(session, agent, status)

    def whisper(self, session: Any, conversation: str, text: str) -> Deferred:
        """A private line to the other agents in the conversation."""
        return maybeDeferred(self._whisper, session, conversation, text)

    def _whisper(self, session: Any, conversation: str, text: str) -> Deferred:
        conv = self.ctx.conversation(conversation)
        agent = session.agent
        if conv.agent is not agent and not self._in_room(conv.id, agent.name):
            raise NotAllowed(f"not in conversation {conversation[:64]}")
        if conv.agent is agent and not self.rooms.of(conv.id):
            raise NotAllowed("nobody else is in this conversation")
        d = self.rooms.private_line(conv, agent, agent.alias, text)
        return d.addCallback(lambda msg: {"conversation": conv.id, "msg": msg, "private": True})

    def leave(self, session: Any, conversation: str) -> Deferred:
        """Leave a conversation one monitors, consults or takes part in."""
        return maybeDeferred(self._leave, session, conversation)

    def _leave(self, session: Any, conversation: str) -> dict:
        conv = self.ctx.conversation(conversation)
        participant = self.rooms.leave(conv, session.name)
        return {"conversation": conv.id, "left": participant.role}

    def consult(self, session: Any, conversation: str, agent: str, text: str | None = None):
        """Bring a colleague in privately."""
        return self.consults.consult(session, conversation, agent, text)

    def conference(self, session: Any, conversation: str, agent: str | None = None):
        """Add a colleague to the conversation visibly."""
        return self.consults.conference(session, conversation, agent)

    def handover(
        self,
        session: Any,
        conversation: str,
        agent: str | None = None,
        introduction: str | None = None,
    ) -> Deferred:
        """Warm transfer to the consulted colleague."""
        return self.consults.handover(session, conversation, agent, introduction)

    def wrap_up(
        self,
        session: Any,
        conversation: str | None,
        disposition: str | None,
        tags: Sequence[str] = (),
        note: str | None = None,
    ) -> Deferred:
        """Give a finished conversation's wrap-up."""
        return self.wrapups.submit(session, conversation, disposition, tags, note)

    def note(self, session: Any, conversation: str, text: str) -> Deferred:
        """A private note on a conversation."""
        return self.wrapups.note(session, conversation, text)

    def past(self, session: Any, conversation: str) -> Deferred:
        """The customer's earlier conversations."""
        return self.history.past(session, conversation)

    def transcript(self, session: Any, conversation: str, earlier: str) -> Deferred:
        """One earlier conversation, in full."""
        return self.history.transcript(session, conversation, earlier)

    def canned(self, session: Any, conversation: str, name: str) -> Deferred:
        """Send a canned response."""
        return self.canned_responses.send(session, conversation, name)

    def canned_list(self, session: Any) -> Deferred:
        """The canned responses this agent may use."""
        return self.canned_responses.available(session)

    def away(self, session: Any, reason: str | None = None) -> Deferred:
        """Go away with a reason."""
        return self.states.away(session, reason)

    def tasks(self, session: Any) -> Deferred:
        """The agent's message to answer."""
        return self.offline.mine(session)

    def reply(self, session: Any, task: str, text: str) -> Deferred:
        """Answer a message left."""
        return self.offline.reply(session, task, text)

    def release(self, session: Any, task: str) -> Deferred:
        """Give a message back."""
        return self.offline.release(session, task)
