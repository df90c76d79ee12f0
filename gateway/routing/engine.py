"""The matching engine: waiting conversations meet agents with room, without scans.

Every distinct target (queue + agent expression + strategy) has a *pool*: the
logged-in agents its expression admits, a heap of those with room ordered by the
target's strategy, and a heap of the tasks waiting at that target ordered by
priority then arrival. An event (an agent frees up, a task arrives or escalates)
marks only its pools dirty; matching then pops heads, so one decision costs
O(log n) in the agents and tasks of one pool, never a walk over all of them.
Heaps are lazy: an entry whose version is stale is dropped when it surfaces.

Agents are presence records (:class:`gateway.directory.records.AgentPresence`),
values fed in as the directory reports changes; the engine's own bookkeeping (each
agent's version and last offer, for round robin) is kept here, by name.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from gateway.routing.plan import Plan, Target

# Tasks passed over in one matching round because no ready agent suits them
# (every one declined them, or none is compatible); bounds the work per event.
MAX_PASSED_OVER = 64


def _has_room(agent) -> bool:
    return agent.has_room


def _target_key(target: Target, queue: str) -> tuple:
    return (
        queue,
        tuple(sorted(target.skills.items())),
        target.location,
        tuple(sorted(target.protocols)),
        tuple(sorted(target.agents)),
        target.bots,
        target.strategy,
    )


class _Slot:
    """The engine's bookkeeping of one agent login: its latest record and version."""

    __slots__ = ("capabilities", "last_offer", "record", "teams", "version")

    def __init__(self, record) -> None:
        self.record = record
        self.version = 0
        self.last_offer = 0
        # As counted in the engine's tally, and as pools were admitted by (a record
        # may change in place).
        self.capabilities = record.capabilities
        self.teams = getattr(record, "teams", ())


@attrs.define(eq=False)
class Task:
    """A conversation waiting for an agent, as the engine sees it."""

    id: str
    plan: Plan
    protocol: str
    arrival: tuple[float, int]
    owner: Any = None
    topic: str | None = None
    step: int = 0
    queue: str = ""
    exclude: set[str] = attrs.field(factory=set)
    # Capabilities the agent's software must have; emptied by the translate fallback.
    requires: frozenset[str] = frozenset()
    # Agents ringing now; while any ring, the task is not matched again.
    ringing: set[str] = attrs.field(factory=set)
    version: int = 0
    pool: Pool | None = None

    @property
    def target(self) -> Target:
        """The workflow step the task is at."""
        return self.plan.targets[self.step]

    @property
    def priority(self) -> int:
        """Higher is served first."""
        return self.plan.priority


# serves(queue, agent): whether the queue's membership (teams, skills) admits the agent.
Serves = Callable[[str, Any], bool]


class Pool:
    """Agents and waiting tasks of one target."""

    def __init__(
        self, target: Target, queue: str, key: tuple = (), serves: Serves | None = None
    ) -> None:
        self.target = target
        self.queue = queue
        self.key = key
        # Named agents (a transfer to a colleague, sticky routing, a rule's `agents`)
        # were chosen on purpose: the queue's membership does not narrow them.
        self._serves = serves if not target.agents else None
        self.members: set[str] = set()
        self._ready: list[tuple] = []
        self._waiting: list[tuple] = []
        self._tasks: dict[str, Task] = {}

    def admits(self, agent) -> bool:
        """Whether the target's agent expression admits this agent at all."""
        t = self.target
        if t.agents and agent.name not in t.agents:
            return False
        if t.location is not None and agent.location != t.location:
            return False
        if t.protocols and agent.protocol not in t.protocols:
            return False
        if t.bots is not None and agent.bot != t.bots:
            return False
        if self._serves is not None and not self._serves(self.queue, agent):
            return False
        return all(agent.skills.get(s, -1) >= level for s, level in t.skills.items())

    def order(self, slot: _Slot) -> tuple:
        """The strategy's sort key: smallest is offered first."""
        agent = slot.record
        strategy = self.target.strategy
        if strategy == "least_occupied":
            return (agent.load / agent.capacity, agent.idle_since)
        if strategy == "round_robin":
            return (slot.last_offer,)
        if strategy == "highest_skill":
            levels = [agent.skills.get(s, 0) for s in self.target.skills]
            return (-max(levels, default=0), agent.idle_since)
        # longest_idle, and broadcast rings the longest idle first
        return (agent.load, agent.idle_since)

    def push_agent(self, slot: _Slot) -> None:
        """Offer the agent in strategy order (again, with its current key)."""
        if len(self._ready) > 4 * len(self.members) + 64:
            # Lazy deletion leaves stale entries behind; a pool nobody waits in
            # would otherwise grow with every presence change for years.
            self._ready = [e for e in self._ready if e[3].version == e[2]]
            heapq.heapify(self._ready)
        heapq.heappush(self._ready, (self.order(slot), slot.record.name, slot.version, slot))

    def push_task(self, task: Task) -> None:
        """Put a task in line here by priority, then arrival."""
        self._tasks[task.id] = task
        if len(self._waiting) > 4 * len(self._tasks) + 64:
            live = self._tasks
            self._waiting = [
                e for e in self._waiting if e[2] in live and live[e[2]].version == e[3]
            ]
            heapq.heapify(self._waiting)
        heapq.heappush(self._waiting, (-task.priority, task.arrival, task.id, task.version))

    def drop_task(self, task: Task) -> None:
        self._tasks.pop(task.id, None)

    def __len__(self) -> int:
        return len(self._tasks)

    def head_task(self) -> Task | None:
        """The first task in line still waiting here (stale entries dropped)."""
        while self._waiting:
            _, _, task_id, version = self._waiting[0]
            task = self._tasks.get(task_id)
            if task is not None and task.version == version and not task.ringing:
                return task
            heapq.heappop(self._waiting)
        return None

    def pop_task(self) -> None:
        heapq.heappop(self._waiting)

    def head_agent(self, fits: Callable) -> Any:
        """The best ready agent's record; stale entries dropped."""
        while self._ready:
            _, name, version, slot = self._ready[0]
            if slot.version == version and name in self.members and fits(slot.record):
                return slot.record
            heapq.heappop(self._ready)
        return None


class Engine:
    """Matches tasks to agents; the core turns each match into an offer."""

    def __init__(
        self, topic_queue: Callable[[str | None], str], serves: Serves | None = None
    ) -> None:
        self._topic_queue = topic_queue
        # Queue membership (gateway.directory.teams): None admits every agent anywhere.
        self._serves = serves
        self._pools: dict[tuple, Pool] = {}
        self._dirty: set[Pool] = set()
        self._capabilities: Counter[frozenset[str]] = Counter()
        self._seq = itertools.count(1)
        # Agent versions are drawn from one counter, so that no two heap entries
        # tie up to the slot itself (a re-login's count does not start again).
        self._versions = itertools.count(1)
        self._slots: dict[str, _Slot] = {}
        self.decisions = 0

    # -- agents -----------------------------------------------------------

    def agent_changed(self, agent) -> None:
        """An agent logged in, or its presence, load or wrap-up changed (its new record)."""
        slot = self._slots.get(agent.name)
        if slot is None or slot.record.session != agent.session:
            if slot is not None:
                self.agent_left(slot.record)
            slot = self._slots[agent.name] = _Slot(agent)
            self._capabilities[agent.capabilities] += 1
            for pool in self._pools.values():
                if pool.admits(agent):
                    pool.members.add(agent.name)
        else:
            if slot.capabilities is not agent.capabilities:
                self._forget_capabilities(slot)
                slot.capabilities = agent.capabilities
                self._capabilities[agent.capabilities] += 1
            slot.record = agent
            teams = getattr(agent, "teams", ())
            if teams != slot.teams:
                # Another team, other queues: its pools are worked out again.
                slot.teams = teams
                self._admit(slot)
        slot.version = next(self._versions)
        if agent.has_room:
            for pool in self._pools.values():
                if agent.name in pool.members:
                    pool.push_agent(slot)
                    if len(pool):
                        self._dirty.add(pool)

    def _admit(self, slot: _Slot) -> None:
        name = slot.record.name
        for pool in self._pools.values():
            if pool.target.agents and name not in pool.target.agents:
                continue
            if pool.admits(slot.record):
                pool.members.add(name)
            else:
                pool.members.discard(name)

    def membership_changed(self) -> None:
        """Teams or queue skills changed: every pool's members are worked out again."""
        for slot in self._slots.values():
            slot.teams = getattr(slot.record, "teams", ())
            self._admit(slot)
            if slot.record.has_room:
                slot.version = next(self._versions)
                for pool in self._pools.values():
                    if slot.record.name in pool.members:
                        pool.push_agent(slot)
                        if len(pool):
                            self._dirty.add(pool)

    def agent_left(self, agent) -> None:
        """An agent logged out (its last record)."""
        slot = self._slots.get(agent.name)
        if slot is None or slot.record.session != agent.session:
            return
        del self._slots[agent.name]
        self._forget_capabilities(slot)
        slot.version = next(self._versions)
        for pool in self._pools.values():
            pool.members.discard(agent.name)

    def agent(self, name: str) -> Any:
        """The latest record of a logged-in agent, or None."""
        slot = self._slots.get(name)
        return None if slot is None else slot.record

    def _forget_capabilities(self, slot: _Slot) -> None:
        self._capabilities[slot.capabilities] -= 1
        if not self._capabilities[slot.capabilities]:
            del self._capabilities[slot.capabilities]

    def any_compatible(self, requires: frozenset[str]) -> bool:
        """Whether any logged-in agent's software has these capabilities."""
        return any(requires <= caps for caps in self._capabilities)

    # -- tasks ------------------------------------------------------------

    def _pool(self, target: Target, queue: str) -> Pool:
        key = _target_key(target, queue)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool(target, queue, key, self._serves)
            # A pool of named agents (a transfer, sticky routing) looks only at them.
            if target.agents:
                slots = [self._slots[n] for n in target.agents if n in self._slots]
            else:
                slots = self._slots.values()
            for slot in slots:
                agent = slot.record
                if pool.admits(agent):
                    pool.members.add(agent.name)
                    if agent.has_room:
                        pool.push_agent(slot)
        return pool

    def queue_of(self, task: Task) -> str:
        """The queue the task's current target names (or its topic's queue)."""
        return task.target.queue or self._topic_queue(task.topic)

    def add(self, task: Task) -> None:
        """A task waits at its current target."""
        self.remove(task)
        task.version += 1
        task.queue = self.queue_of(task)
        pool = self._pool(task.target, task.queue)
        task.pool = pool
        pool.push_task(task)
        self._dirty.add(pool)

    def remove(self, task: Task) -> None:
        """A task stops waiting (connected, ended, or about to move)."""
        if task.pool is not None:
            pool = task.pool
            pool.drop_task(task)
            task.pool = None
            task.version += 1
            if pool.target.agents and not len(pool):
                # Named pools are made per transfer or returning customer; keep
                # them only while someone waits in them, or events grow costlier.
                self._pools.pop(pool.key, None)
                self._dirty.discard(pool)

    def retry(self, task: Task) -> None:
        """A task's ring ended without an accept: it may be matched again."""
        if task.pool is not None:
            task.version += 1
            task.pool.push_task(task)
            self._dirty.add(task.pool)

    # -- matching ---------------------------------------------------------

    def _fits(self, task: Task, agent) -> bool:
        return (
            agent.has_room
            and agent.name not in task.exclude
            and agent.name not in task.ringing
            and task.requires <= agent.capabilities
            and agent.room_for(task.protocol)
        )

    def matches(self) -> Iterator[tuple[Task, list]]:
        """Yield (task, agents to ring) for every match possible now.

        Each decision serves the best-ranked head (priority, then arrival) among
        the pools touched since the last round, so an agent in several pools of
        one queue gets the first in line of that queue; the cost is one heap head
        per touched pool, never a walk over agents or tasks. The caller makes the
        offers (which changes agents' load and calls ``agent_changed``) before
        asking for the next match.
        """
        passed: dict[Pool, list[Task]] = {}
        try:
            while self._dirty:
                pool, task = self._best_head()
                if pool is None:
                    break
                agents = self._pick(pool, task)
                if agents is None:
                    # No agent of this pool has room: nothing here can be matched
                    # now, so leave it rather than pass over its whole line.
                    self._dirty.discard(pool)
                    continue
                pool.pop_task()
                if not agents:
                    skipped = passed.setdefault(pool, [])
                    skipped.append(task)
                    if len(skipped) >= MAX_PASSED_OVER:
                        self._dirty.discard(pool)
                    continue
                self.decisions += 1
                for agent in agents:
                    self._slots[agent.name].last_offer = next(self._seq)
                yield task, agents
        finally:
            for pool, tasks in passed.items():
                for task in tasks:
                    if task.pool is pool:
                        pool.push_task(task)

    def _best_head(self) -> tuple[Pool | None, Task | None]:
        """The touched pool whose first task in line ranks best; empty pools leave."""
        best_pool = best_task = best_rank = None
        for pool in list(self._dirty):
            task = pool.head_task()
            if task is None:
                self._dirty.discard(pool)
                continue
            rank = (-task.priority, task.arrival)
            if best_rank is None or rank < best_rank:
                best_pool, best_task, best_rank = pool, task, rank
        return best_pool, best_task

    def _pick(self, pool: Pool, task: Task) -> list | None:
        """The agents to ring for ``task``; None when no agent of the pool has room."""
        if pool.head_agent(_has_room) is None:
            return None
        wanted = task.target.broadcast if task.target.strategy == "broadcast" else 1
        chosen: list = []
        skipped: list = []
        while len(chosen) < wanted and len(skipped) < MAX_PASSED_OVER:
            agent = pool.head_agent(_has_room)
            if agent is None:
                break
            entry = heapq.heappop(pool._ready)
            if self._fits(task, agent) and agent not in chosen:
                chosen.append(agent)
            skipped.append(entry)
        # Whoever was looked at and not offered keeps its place in line.
        for entry in skipped:
            if entry[3].record not in chosen:
                heapq.heappush(pool._ready, entry)
        return chosen
