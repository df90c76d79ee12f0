"""A node's synchronous view of the directory, kept current by its change notifications."""

from __future__ import annotations

from collections.abc import Iterator

from gateway.directory.interfaces import IAgentDirectory
from gateway.directory.records import AgentPresence


class DirectoryView:
    """Every logged-in agent's latest record, as this node has been told of it.

    What must be answered at once (is this colleague free for a transfer, how many
    agents are logged in, the supervisor's and the metrics' tallies) reads here.
    """

    def __init__(self, directory: IAgentDirectory) -> None:
        self._agents: dict[str, AgentPresence] = {}
        directory.watch(self._changed)

    def _changed(self, name: str, presence: AgentPresence | None) -> None:
        if presence is None:
            self._agents.pop(name, None)
        else:
            self._agents[name] = presence

    def get(self, name: str) -> AgentPresence | None:
        """The record of ``name``, or None when not logged in."""
        return self._agents.get(name)

    def __iter__(self) -> Iterator[AgentPresence]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)
