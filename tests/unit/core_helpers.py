"""A gateway core wired to in-memory parts, for unit tests of the core."""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from gateway import config as gwconfig
from gateway.core import events as ev
from gateway.core.gateway import Gateway
from gateway.core.ids import IdFactory
from gateway.core.interfaces import IParty
from gateway.directory.memory import MemoryDirectory
from gateway.routing.interfaces import IRouter
from gateway.routing.rules import RuleSet
from gateway.store.memory import MemoryStore
from gateway.store.records import AgentRecord


@implementer(IParty)
class FakeParty:
    """Records what the core tells one party."""

    def __init__(self) -> None:
        self.events: list = []
        self.closed: str | None = None

    def deliver(self, event) -> None:
        self.events.append(event)

    def close(self, reason: str) -> None:
        self.closed = reason

    def of(self, kind: type) -> list:
        """Every event of one kind, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    def last(self, kind: type):
        found = self.of(kind)
        assert found, f"no {kind.__name__} among {self.events!r}"
        return found[-1]

    def take(self) -> list:
        """The events since the last take."""
        events, self.events = self.events, []
        return events


class CountingIds(IdFactory):
    """Predictable ids: c-0001, g-0002, …"""

    def __init__(self) -> None:
        self._n = 0
        super().__init__(self._next)

    def _next(self, nbytes: int) -> str:
        self._n += 1
        return f"{self._n:0{nbytes * 2}x}"


class FaultyStore(MemoryStore):
    """A MemoryStore whose appends fail for texts containing 'poison'."""

    def append(self, message):
        if "poison" in message.text:
            return fail(OSError("disk I/O error"))
        return super().append(message)


def verify(password: str, stored: str | None):
    return succeed(stored is not None and stored == "hash:" + password)


@attrs.define
class Harness:
    """A gateway on a Clock with a MemoryStore, and helpers to drive it."""

    gateway: Gateway
    clock: Clock
    store: MemoryStore
    directory: object

    def customer(self, answers=None, protocol="jsonim", client=("acme", "2.3.1")):
        party = FakeParty()
        session = self.gateway.customer_arrived(
            party,
            protocol=protocol,
            client=ev.ClientInfo(*client),
            answers=answers or {},
            features=frozenset({"typing"}),
        )
        return party, session

    def queued_customer(self, name="Dana", topic="billing"):
        return self.customer({"name": name, "topic": topic})

    def agent(self, name, available=True, password="secret"):
        party = FakeParty()
        results = []
        self.gateway.agent_login(
            party,
            protocol="jsonim",
            name=name,
            password=password,
            client=ev.ClientInfo("agent-desk", "1.0"),
        ).addBoth(results.append)
        session = results[0]
        if available and not isinstance(session, Exception) and hasattr(session, "set_presence"):
            session.set_presence("available")
        return party, session


@implementer(IRouter)
class RulePlans:
    """Plans from a rule set, at once."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset

    def plan(self, customer, request=None):
        if request is not None and request.fallback is not None:
            return succeed(request.fallback)
        return succeed(self.ruleset.classify(customer))


def make_harness(
    tmp_path=None,
    store=None,
    agents=("anna", "bob", "carl"),
    plans=None,
    text_filter=None,
    **changes,
) -> Harness:
    # A directory without etc/imgateway.toml: packaged defaults only.
    cfg = gwconfig.load(cwd=Path(tmp_path or "/nonexistent-imgateway"))
    # A drop ends the conversation at once here, as these tests expect; the grace
    # period of gateway.core.resume is tested with resume_grace_s set (test_resume.py).
    changes.setdefault("resume_grace_s", 0.0)
    cfg = attrs.evolve(cfg, **changes)
    clock = Clock()
    store = store or MemoryStore()
    for name in agents:
        store.add_agent(
            AgentRecord(
                name=name,
                display_name=name.capitalize() + " A.",
                password_hash="hash:secret",
                capacity=2,
            )
        )
    directory = MemoryDirectory()
    gateway = Gateway(
        cfg,
        store=store,
        plans=plans or RulePlans(RuleSet.load(None, queues=cfg.queues)),
        directory=directory,
        clock=clock,
        verify_password=verify,
        ids=CountingIds(),
        text_filter=text_filter,
    )
    # The agents logged in here, by name (LiveAgent: .session, .status, .load...).
    return Harness(gateway=gateway, clock=clock, store=store, directory=gateway.core.local)


def result_of(d):
    """The result of a Deferred that has already fired (raises its failure)."""
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]
