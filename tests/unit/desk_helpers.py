"""A gateway core with its service desk, on a Clock, over a real SQLite database.

The desk's records live in the gateway's own database (foreign keys to conversations),
so these tests use :class:`SyncStore`: IStore over a SqliteEngine, every call done at
once (no writer thread), which also runs the desk's statements (``run``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from core_helpers import CountingIds, FakeParty, Harness, RulePlans, result_of, verify
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from gateway import config as gwconfig
from gateway.core import events as ev
from gateway.core.gateway import Gateway
from gateway.desk.service import ServiceDesk
from gateway.desk.settings import DeskSettings
from gateway.directory.memory import MemoryDirectory
from gateway.routing.rules import RuleSet
from gateway.store.interfaces import IStore
from gateway.store.records import AgentRecord
from gateway.store.sqlite import SqliteEngine

__all__ = ["DeskHarness", "FakeParty", "SyncStore", "make_desk", "result_of"]


@implementer(IStore)
class SyncStore:
    """IStore over a SQLite engine, synchronously: each Deferred has fired already."""

    def __init__(self, path: Path) -> None:
        self.engine = SqliteEngine(path)
        self.engine.open()

    def _do(self, function, *args, **kwargs):
        try:
            return succeed(function(*args, **kwargs))
        except Exception:
            return fail()

    def start(self) -> None:
        pass

    def open_conversation(self, record):
        return self._do(self.engine.insert_conversation, record)

    def update_conversation(self, conversation, **changes):
        return self._do(self.engine.update_conversation, conversation, **changes)

    def append(self, message):
        return self._do(self.engine.insert_message, message)

    def append_then(self, message, done):
        self.append(message).addCallbacks(lambda _: done(None), done)

    def get_agent(self, name):
        return self._do(self.engine.get_agent, name)

    def scram_credentials(self, name):
        return self._do(self.engine.get_scram, name)

    def find_agent(self, address):
        return self._do(self.engine.find_agent, address)

    def get_conversation(self, conversation):
        return self._do(self.engine.get_conversation, conversation)

    def transcript(self, conversation):
        return self._do(self.engine.transcript, conversation)

    def recent_conversations(self, limit):
        return self._do(self.engine.recent_conversations, limit)

    def set_resume(self, conversation, token_hash, key):
        return self._do(self.engine.set_resume, conversation, token_hash, key)

    def open_conversations(self):
        return self._do(self.engine.open_conversations)

    def purge_ended_before(self, ts):
        return self._do(self.engine.purge_ended_before, ts)

    def close(self):
        self.engine.close()
        return succeed(None)

    def run(self, function, *args, **kwargs):
        return self._do(function, self.engine, *args, **kwargs)


@attrs.define
class DeskHarness(Harness):
    """The core harness, with the desk attached."""

    desk: ServiceDesk = None

    def customer_as(self, verified: str | None, answers=None, protocol="jsonim"):
        """A customer whose protocol verified an identity."""
        party = FakeParty()
        session = self.gateway.customer_arrived(
            party,
            protocol=protocol,
            client=ev.ClientInfo("acme", "2.3.1"),
            answers=answers or {"name": "Dana", "topic": "billing"},
            **({"verified": {"account": verified}} if verified else {}),
        )
        return party, session

    def connected(self, agent: str = "anna", answers=None, verified: str | None = None):
        """A customer connected to ``agent``: (customer party, session, agent party,
        agent session, conversation id)."""
        aparty, asession = self.agent(agent)
        cparty, csession = self.customer_as(verified, answers)
        offer = aparty.last(ev.Offer)
        asession.accept(offer.offer)
        return cparty, csession, aparty, asession, offer.conversation

    def sql(self, statement: str, *params: Any) -> list[tuple]:
        """Rows of a query on the database."""
        return self.store.engine.fetch(statement, params)


def make_desk(
    tmp_path: Path,
    agents=("anna", "bob", "carl", "sue"),
    desk: dict | None = None,
    **changes: Any,
) -> DeskHarness:
    """A gateway on a Clock with the desk; ``desk`` replaces [desk] settings."""
    cfg = gwconfig.load(cwd=Path("/nonexistent-imgateway"))
    changes.setdefault("resume_grace_s", 0.0)
    sections = dict(cfg.sections)
    sections["desk"] = attrs.evolve(DeskSettings(), **(desk or {}))
    cfg = attrs.evolve(cfg, sections=sections, **changes)
    clock = Clock()
    store = SyncStore(tmp_path / "data" / "imgateway.sqlite3")
    for name in agents:
        store.engine.add_agent(
            AgentRecord(
                name=name,
                display_name=name.capitalize() + " A.",
                password_hash="hash:secret",
                capacity=2,
            )
        )
    gateway = Gateway(
        cfg,
        store=store,
        plans=RulePlans(RuleSet.load(None, queues=cfg.queues)),
        directory=MemoryDirectory(),
        clock=clock,
        verify_password=verify,
        ids=CountingIds(),
    )
    service = ServiceDesk(gateway, store).attach()
    result_of(service.start())
    return DeskHarness(
        gateway=gateway, clock=clock, store=store, directory=gateway.core.local, desk=service
    )
