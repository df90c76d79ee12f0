"""Teams as the desk sees them: an agent's teams, and what a supervisor may see and do.

Teams and queue membership are the core's (gateway.directory.teams, ``core.teams``,
replaced whole on a reload; ``imgateway-admin team``). A supervisor in one or more
teams supervises their teams: the conversations of the queues those teams serve and
of those teams' agents, and the agents themselves (their state, set from the desk). A
supervisor in no team supervises everyone, as on a floor without teams. Canned
responses of a team are for its members.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from gateway.core.errors import BadRequest, NotAllowed
from gateway.directory.records import STATUSES


class TeamScope:
    """Which teams an agent is in, and what a supervisor may act on; read live."""

    def __init__(self, core: Any) -> None:
        self._core = core

    def teams_of(self, agent: str) -> frozenset[str]:
        """The agent's teams."""
        return frozenset(self._core.teams.teams_of(agent))

    def may_supervise(self, supervisor: str, conv: Any) -> bool:
        """A conversation of the supervisor's teams (any, for a supervisor of no team)."""
        teams = self._core.teams
        mine = set(teams.teams_of(supervisor))
        if not mine:
            return True
        if conv.queue is not None and any(conv.queue in teams.queues_of(t) for t in mine):
            return True
        agent = conv.agent
        return agent is not None and not mine.isdisjoint(teams.teams_of(agent.name))

    def may_manage(self, supervisor: str, agent: str) -> bool:
        """An agent of the supervisor's teams (anyone, for a supervisor of no team)."""
        mine = set(self._core.teams.teams_of(supervisor))
        return not mine or not mine.isdisjoint(self._core.teams.teams_of(agent))

    def members(self, supervisor: str) -> frozenset[str] | None:
        """The agents the supervisor manages; None: everyone."""
        teams = self._core.teams
        mine = teams.teams_of(supervisor)
        if not mine:
            return None
        return frozenset().union(*(teams.members_of(t) for t in mine))


class TeamDesk:
    """A supervisor's view of its teams, and its actions on their agents."""

    def __init__(self, ctx: Any, roles: Any, scope: TeamScope) -> None:
        self._ctx = ctx
        self._roles = roles
        self._scope = scope

    def view(self, session: Any) -> Deferred:
        """The supervisor's teams: their agents (state, reason, load) and queues."""
        return self._roles.supervisor(session).addCallback(lambda s: self._view(s.name))

    def _view(self, supervisor: str) -> dict:
        core = self._ctx.core
        teams = core.teams
        names = teams.teams_of(supervisor) or teams.names
        members = self._scope.members(supervisor)
        agents = [
            {
                "name": a.name,
                "alias": a.alias,
                "state": a.state,
                "reason": a.reason or None,
                "load": a.load,
                "teams": list(teams.teams_of(a.name)),
            }
            for a in sorted(core.view, key=lambda a: a.name)
            if members is None or a.name in members
        ]
        queues = sorted({q for t in names for q in teams.queues_of(t)} or core.queues)
        return {
            "teams": list(names),
            "agents": agents,
            "queues": [
                {"name": q, "depth": len(core.queues[q]), "active": core.queues[q].active}
                for q in queues
                if q in core.queues
            ],
        }

    def set_state(self, session: Any, agent: str, status: str) -> Deferred:
        """Set an agent of the supervisor's teams available, away or offline."""
        return self._roles.supervisor(session).addCallback(
            lambda s: maybeDeferred(self._set_state, s.name, agent, status)
        )

    def _set_state(self, supervisor: str, agent: str, status: str) -> dict:
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        if not isinstance(agent, str) or not self._scope.may_manage(supervisor, agent):
            raise NotAllowed(f"{str(agent)[:64]} is not an agent of your teams")
        self._ctx.desk.set_status(agent, status)
        return {"agent": agent, "status": status}
