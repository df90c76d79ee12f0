"""What the core's collaborators share: configuration, clock, store, agents, ids, metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway import logs
from gateway.config import Config
from gateway.core.agents import LocalAgents
from gateway.core.conversation import Queue
from gateway.core.hooks import NoDesk
from gateway.core.ids import IdFactory
from gateway.core.interfaces import IDelivery
from gateway.core.ports import IDeskHooks
from gateway.directory.interfaces import IAgentDirectory
from gateway.directory.teams import NO_TEAMS, Teams
from gateway.directory.view import DirectoryView
from gateway.metrics import GatewayMetrics
from gateway.routing.feed import NoEvents
from gateway.routing.interfaces import IEventSink
from gateway.store.interfaces import IStore

_log = Logger(observer=logs.observer, namespace="gateway.core")


@attrs.define(eq=False)
class Core:
    """The collaborators' common ground, made once per gateway."""

    config: Config
    clock: IReactorTime
    store: IStore
    directory: IAgentDirectory
    delivery: IDelivery
    ids: IdFactory
    metrics: GatewayMetrics
    # Rewrites agents' text before it is stored and sent (the firewall's identity
    # translation of internal hosts and addresses).
    text_filter: Callable[[str], str] | None = None
    # This gateway process among the cluster's nodes ("" when it is the only one).
    node: str = ""
    # Where communication events go: the routing server's feed, or nowhere.
    events: IEventSink = attrs.field(factory=NoEvents)
    queues: dict[str, Queue] = attrs.field(init=False)
    # Agents logged in on this node, and every node's agents as this node knows them.
    local: LocalAgents = attrs.field(init=False, factory=LocalAgents)
    view: DirectoryView = attrs.field(init=False)
    # Who serves which queue (gateway.directory.teams); replaced whole on a reload.
    teams: Teams = attrs.field(init=False, default=NO_TEAMS)
    shutting_down: bool = attrs.field(init=False, default=False)
    # The service desk, told of what happens (gateway.core.hooks); none by default.
    hooks: IDeskHooks = attrs.field(init=False, factory=NoDesk)
    # The node's cluster membership (gateway.cluster.node.ClusterNode), None when alone.
    cluster: Any = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.queues = {name: Queue(q) for name, q in self.config.queues.items()}
        self.view = DirectoryView(self.directory)

    def write(self, d: Deferred | None) -> None:
        """A write nobody waits on: its failure is logged, not lost."""
        if d is not None:
            d.addErrback(lambda f: _log.failure("store write failed", f))

    def publish(self, presence: Any) -> None:
        """Tell the directory of an agent's new presence record (and the event feed)."""
        self.write(self.directory.publish(presence))
        self.events.agent(presence)
