"""The single-process agent directory: records in a dict, changes told at once."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from gateway.directory.interfaces import IAgentDirectory
from gateway.directory.records import AgentPresence

Observer = Callable[[str, AgentPresence | None], None]


@implementer(IAgentDirectory)
class MemoryDirectory:
    """The default directory: this process's agents, nowhere else."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentPresence] = {}
        self._observers: list[Observer] = []

    def publish(self, presence: AgentPresence) -> Deferred:
        """Record ``presence`` and tell the observers, before returning."""
        self._agents[presence.name] = presence
        for observer in self._observers:
            observer(presence.name, presence)
        return succeed(None)

    def withdraw(self, name: str, session: str) -> Deferred:
        """Forget ``name`` if its record is still of login ``session``."""
        known = self._agents.get(name)
        if known is not None and known.session == session:
            del self._agents[name]
            for observer in self._observers:
                observer(name, None)
        return succeed(None)

    def get(self, name: str) -> Deferred:
        """The record of ``name``, or None."""
        return succeed(self._agents.get(name))

    def all(self) -> Deferred:
        """Every record."""
        return succeed(list(self._agents.values()))

    def watch(self, observer: Observer) -> None:
        """Tell ``observer`` of every change from now on."""
        self._observers.append(observer)
