"""Routing decisions per second and per-decision latency: our engine beside a naive router.

Run from a checkout::

    PYTHONPATH=. python bench/routing.py --quick    # under two minutes
    PYTHONPATH=. python bench/routing.py            # more events per case

Workload (deterministic, seeded): 100 skills; a handful of targets (one queue each,
one or two skill minimums at levels 1-3, strategy longest idle); agents with 3-8
skills at levels 0-5, one of whose targets they are guaranteed to satisfy (so every
agent serves some queue), capacity 3; waiting conversations spread over the targets,
one in ten at a higher priority. The system starts in steady state: every agent is at
capacity and the queues hold ``waiting`` conversations.

One measured *decision*: an agent finishes a chat (its load goes down, the engine is
told with ``agent_changed``) and ``matches()`` yields the best waiting conversation for
it; the conversation is taken by the agent (load up, ``agent_changed`` again) and
leaves the engine. ``time.perf_counter_ns`` brackets the event and the decision. A new
customer then arrives (``add`` and a drained ``matches()``, outside the bracket but
reported as its own p99), keeping the waiting count constant.

The naive router serves the same workload the way a simple router would: for each
event it scans every waiting conversation for the first in line that the agent is
eligible for, then scans every agent for the best one with room for that conversation.
At the big sizes it is sampled fewer times, since each decision costs milliseconds.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import sys
import time
from collections.abc import Sequence

import attrs

from gateway.directory.records import AVAILABLE, AgentPresence
from gateway.routing.engine import Engine, Task
from gateway.routing.plan import Plan, Target

SKILLS = [f"s{i:02d}" for i in range(100)]
TARGETS = 8
CAPACITY = 3
SEED = 20240611


@attrs.frozen
class Case:
    """One row of the table: how many agents, how many waiting, how many samples."""

    agents: int
    waiting: int
    events: int
    naive_events: int


@attrs.define
class Workload:
    """Agents (at capacity), plans (one target each) and the waiting tasks' plans."""

    agents: list[AgentPresence]
    plans: list[Plan]
    rng: random.Random


def make_plans(rng: random.Random) -> list[Plan]:
    """A handful of targets, one queue each, with one or two skill minimums."""
    plans = []
    for i in range(TARGETS):
        skills = rng.sample(SKILLS, rng.choice((1, 2)))
        target = Target(queue=f"q{i}", skills={s: rng.randint(1, 3) for s in skills})
        plans.append(Plan(rule=f"r{i}", targets=(target,)))
    return plans


def make_agents(n: int, plans: Sequence[Plan], rng: random.Random) -> list[AgentPresence]:
    """``n`` agents with 3-8 skills at 0-5, each qualified for at least one target."""
    agents = []
    for i in range(n):
        home = rng.choice(plans).targets[0]
        skills = {s: rng.randint(0, 5) for s in rng.sample(SKILLS, rng.randint(3, 8))}
        for skill, level in home.skills.items():
            skills[skill] = max(skills.get(skill, 0), rng.randint(level, 5))
        agent = AgentPresence(
            name=f"a{i}",
            alias=f"A{i}",
            capacity=CAPACITY,
            protocol="jsonim",
            session=f"s-{i}",
            client_name="bench",
            client_version="1",
            skills=skills,
            status=AVAILABLE,
            idle_since=float(i),
            conversations={f"busy-{i}-{k}" for k in range(CAPACITY)},
        )
        agents.append(agent)
    return agents


def make_workload(n_agents: int) -> Workload:
    """The same agents and targets for ours and for the naive router."""
    rng = random.Random(SEED + n_agents)
    plans = make_plans(rng)
    return Workload(agents=make_agents(n_agents, plans, rng), plans=plans, rng=rng)


def percentile(samples: Sequence[int], p: float) -> float:
    """The p-th percentile (nearest rank) of sorted nanosecond samples, in µs."""
    index = min(len(samples) - 1, max(0, round(p / 100 * len(samples)) - 1))
    return samples[index] / 1000


# -- ours -----------------------------------------------------------------


class OurRouter:
    """The gateway's Engine, driven the way the Dispatcher drives it."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.engine = Engine(lambda topic: "general")
        self._ids = itertools.count()
        self._vip = Plan(rule="vip", targets=work.plans[0].targets, priority=10)
        # As the directory would hold them: each agent's latest record, by name.
        self.agents = {agent.name: agent for agent in work.agents}
        for agent in work.agents:
            self.engine.agent_changed(agent)

    def _change(self, agent: AgentPresence) -> None:
        # The node changes the record in place and publishes it (the engine is told).
        self.engine.agent_changed(agent)

    def arrive(self, queue: int | None = None) -> None:
        """A customer arrives at target ``queue`` (random if None), one in ten with priority."""
        rng = self.work.rng
        n = next(self._ids)
        index = rng.randrange(len(self.work.plans)) if queue is None else queue
        plan = self.work.plans[index]
        if rng.random() < 0.1:
            plan = attrs.evolve(plan, priority=10)
        task = Task(id=f"t{n}", plan=plan, protocol="jsonim", arrival=(float(n), n))
        task.topic = str(index)
        self.engine.add(task)
        self._drain()

    def _drain(self) -> list[int]:
        taken = []
        for task, agents in self.engine.matches():
            taken.append(int(task.topic))
            self.engine.remove(task)
            for agent in agents:
                agent.conversations.add(task.id)
                self._change(agent)
        return taken

    def finish(self, name: str) -> list[int]:
        """The agent ends a chat; the best waiting task is matched to it.

        Returns the targets of the tasks taken, so that as many arrive there.
        """
        agent = self.agents[name]
        agent.conversations.pop()
        self._change(agent)
        return self._drain()


def run_ours(case: Case) -> dict:
    """Latency samples of ``case.events`` decisions by the Engine."""
    work = make_workload(case.agents)
    router = OurRouter(work)
    for _ in range(case.waiting):
        router.arrive()
    rng = random.Random(SEED)
    agents = work.agents
    samples: list[int] = []
    arrivals: list[int] = []
    decisions = 0
    clock = time.perf_counter_ns
    gc.collect()
    for _ in range(case.events):
        agent = agents[rng.randrange(len(agents))]
        start = clock()
        taken = router.finish(agent.name)
        end = clock()
        samples.append(end - start)
        decisions += len(taken)
        for queue in taken:
            start = clock()
            router.arrive(queue)
            arrivals.append(clock() - start)
    samples.sort()
    arrivals.sort()
    return {
        "samples": samples,
        "decisions": decisions,
        "arrival_p99": percentile(arrivals, 99) if arrivals else 0.0,
        "engine_decisions": router.engine.decisions,
    }


# -- the naive router -----------------------------------------------------


@attrs.define(eq=False)
class NaiveTask:
    """A waiting conversation in a flat list."""

    id: str
    target: Target
    priority: int
    arrival: int
    index: int


def eligible(agent: AgentPresence, target: Target) -> bool:
    """The target's skill minimums, checked on the spot."""
    return all(agent.skills.get(s, -1) >= level for s, level in target.skills.items())


class NaiveRouter:
    """A list of waiting tasks and a list of agents, scanned in full for each decision."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.waiting: list[NaiveTask] = []
        self._ids = itertools.count()
        self.agents = {agent.name: agent for agent in work.agents}

    def arrive(self, queue: int | None = None) -> None:
        """Append a customer (the same random stream as ours)."""
        rng = self.work.rng
        n = next(self._ids)
        index = rng.randrange(len(self.work.plans)) if queue is None else queue
        priority = 10 if rng.random() < 0.1 else 0
        self.waiting.append(
            NaiveTask(f"t{n}", self.work.plans[index].targets[0], priority, n, index)
        )

    def finish(self, name: str) -> list[int]:
        """The agent ends a chat; scan for the first task in line, then the best agent."""
        agent = self.agents[name]
        agent.conversations.pop()
        best = None
        for task in self.waiting:
            if eligible(agent, task.target) and (
                best is None or (-task.priority, task.arrival) < (-best.priority, best.arrival)
            ):
                best = task
        if best is None:
            return []
        chosen = None
        for other in self.agents.values():
            if (
                other.has_room
                and eligible(other, best.target)
                and (
                    chosen is None
                    or (other.load, other.idle_since) < (chosen.load, chosen.idle_since)
                )
            ):
                chosen = other
        if chosen is None:
            return []
        self.waiting.remove(best)
        chosen.conversations.add(best.id)
        return [best.index]


def run_naive(case: Case) -> dict:
    """Latency samples of ``case.naive_events`` decisions by the naive router."""
    work = make_workload(case.agents)
    router = NaiveRouter(work)
    for _ in range(case.waiting):
        router.arrive()
    rng = random.Random(SEED)
    agents = work.agents
    samples: list[int] = []
    decisions = 0
    clock = time.perf_counter_ns
    gc.collect()
    for _ in range(case.naive_events):
        agent = agents[rng.randrange(len(agents))]
        start = clock()
        taken = router.finish(agent.name)
        samples.append(clock() - start)
        decisions += len(taken)
        for queue in taken:
            router.arrive(queue)
    samples.sort()
    return {"samples": samples, "decisions": decisions}


# -- the table ------------------------------------------------------------


def cases(quick: bool) -> list[Case]:
    """Agents 10 / 1,000 / 10,000, each with 1,000 and 100,000 waiting."""
    ours = 20_000 if quick else 200_000
    out = []
    for agents in (10, 1_000, 10_000):
        for waiting in (1_000, 100_000):
            naive = 2_000 if waiting <= 1_000 else (40 if quick else 300)
            if agents == 10_000 and waiting > 1_000:
                naive = 25 if quick else 200
            out.append(Case(agents, waiting, ours, naive))
    return out


def rate(decisions: int, samples: Sequence[int]) -> float:
    """Decisions per second over the bracketed time."""
    return decisions / (sum(samples) / 1e9)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (under 2 minutes)")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {'quick' if args.quick else 'full'} mode, seed {SEED}")
    header = (
        f"{'agents':>7} {'waiting':>8} | {'ours p50':>8} {'p99':>7} {'p99.9':>7} {'dec/s':>9}"
        f" {'arr p99':>7} | {'naive p50':>9} {'p99':>9} {'dec/s':>7} | {'p99 ratio':>9}"
    )
    print("latencies in µs per decision; ratio = naive p99 / ours p99")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for case in cases(args.quick):
        ours = run_ours(case)
        naive = run_naive(case)
        o, n = ours["samples"], naive["samples"]
        o99, n99 = percentile(o, 99), percentile(n, 99)
        if case.agents == 10_000 and case.waiting == 100_000:
            worst = o99
        print(
            f"{case.agents:>7,} {case.waiting:>8,} | {percentile(o, 50):>8.1f} {o99:>7.1f}"
            f" {percentile(o, 99.9):>7.1f} {rate(ours['decisions'], o):>9,.0f}"
            f" {ours['arrival_p99']:>7.1f} | {percentile(n, 50):>9.1f} {n99:>9.1f}"
            f" {rate(naive['decisions'], n):>7,.0f} | {n99 / o99:>8.0f}x",
            flush=True,
        )
        assert ours["decisions"] >= 0.99 * case.events, "the steady state broke"
    verdict = "met" if worst <= 50 else "NOT met"
    print(f"target p99 <= 50 µs at 10,000 agents and 100,000 waiting: {verdict} ({worst:.1f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
