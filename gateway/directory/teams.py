"""Teams and queue membership: which agents may serve which queue.

Agents belong to teams; queues are served by teams. A queue that no team serves is
open to every agent (as it was before teams existed); a queue that one or more teams
serve is served by their members only, and only by those who also have the queue's
skills (``[queues.NAME] skills``). Routing applies this to every target of a plan that
waits in the queue, to transfers to the queue and to the FAQ bot's hand-over.

Teams live in the database (``imgateway-admin team ...``, gateway.store.teams); the
gateway reads them at startup and again on ``POST /v1/teams/reload`` (which
``imgateway-admin team`` calls after each change) and on SIGHUP. A :class:`Teams` is
an immutable snapshot of them; everything else asks it:

    teams = Teams.of(records)            # records: .name .description .members .queues
    teams.names                          # ("billing-desk", "tech-desk"), sorted
    teams.get("billing-desk")            # a Team, or None
    teams.teams_of("anna")               # ("billing-desk",): the agent's teams, sorted
    teams.members_of("billing-desk")     # frozenset of agent names
    teams.serving("billing")             # frozenset of team names, None: open to all
    teams.members_serving("billing")     # frozenset of agent names, None: open to all
    teams.serves(("billing-desk",), "billing")   # may an agent of these teams serve it?
    teams.queues_of("billing-desk")      # frozenset of queue names

Agents carry their team names in their presence record
(:class:`gateway.directory.records.AgentPresence` ``teams``), so that every node of a
cluster, and the matching engine, decide membership from the record alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen
class Team:
    """One team: its members (agent names) and the queues it serves."""

    name: str
    description: str = ""
    members: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()


@attrs.frozen
class Teams:
    """Every team, with the lookups routing and supervisors need; immutable."""

    _teams: Mapping[str, Team] = attrs.field(factory=dict)
    _by_agent: Mapping[str, tuple[str, ...]] = attrs.field(init=False, repr=False)
    _by_queue: Mapping[str, frozenset[str]] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_agent: dict[str, list[str]] = {}
        by_queue: dict[str, set[str]] = {}
        for name in sorted(self._teams):
            team = self._teams[name]
            for agent in team.members:
                by_agent.setdefault(agent, []).append(name)
            for queue in team.queues:
                by_queue.setdefault(queue, set()).add(name)
        object.__setattr__(self, "_by_agent", {a: tuple(t) for a, t in by_agent.items()})
        object.__setattr__(self, "_by_queue", {q: frozenset(t) for q, t in by_queue.items()})

    @classmethod
    def of(cls, records: Iterable[Any]) -> Teams:
        """Teams from records with ``name``, ``description``, ``members`` and ``queues``."""
        return cls(
            {
                r.name: Team(
                    name=r.name,
                    description=getattr(r, "description", ""),
                    members=frozenset(r.members),
                    queues=frozenset(r.queues),
                )
                for r in records
            }
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Every team's name, sorted."""
        return tuple(sorted(self._teams))

    def __iter__(self):
        return iter([self._teams[n] for n in self.names])

    def __len__(self) -> int:
        return len(self._teams)

    def get(self, name: str) -> Team | None:
        """The team ``name``, or None."""
        return self._teams.get(name)

    def teams_of(self, agent: str) -> tuple[str, ...]:
        """The teams ``agent`` belongs to, sorted (empty: none)."""
        return self._by_agent.get(agent, ())

    def members_of(self, team: str) -> frozenset[str]:
        """The agents of ``team`` (empty for an unknown team)."""
        found = self._teams.get(team)
        return found.members if found is not None else frozenset()

    def queues_of(self, team: str) -> frozenset[str]:
        """The queues ``team`` serves (empty for an unknown team)."""
        found = self._teams.get(team)
        return found.queues if found is not None else frozenset()

    def serving(self, queue: str) -> frozenset[str] | None:
        """The teams that serve ``queue``; None when no team does (open to every agent)."""
        return self._by_queue.get(queue)

    def members_serving(self, queue: str) -> frozenset[str] | None:
        """The agents who may serve ``queue``; None when it is open to every agent."""
        teams = self._by_queue.get(queue)
        if teams is None:
            return None
        return frozenset().union(*(self._teams[t].members for t in teams))

    def serves(self, agent_teams: Iterable[str], queue: str) -> bool:
        """Whether an agent of ``agent_teams`` may serve ``queue``."""
        teams = self._by_queue.get(queue)
        return teams is None or not teams.isdisjoint(agent_teams)


NO_TEAMS = Teams()
