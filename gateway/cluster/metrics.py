"""The cluster's figures for Prometheus: this node's, and every node's as last read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.threads import blockingCallFromThread
from twisted.python.threadable import isInIOThread

_PER_NODE = ("customers", "agents", "conversations", "held", "waiting")


class ClusterCollector(Collector):
    """``imgateway_cluster_*``: Redis reachable, nodes by state, each node's load, and
    this node's cross-node traffic. Read on the reactor thread at scrape time."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The current figures."""
        if not isInIOThread():
            return blockingCallFromThread(self._node.reactor, self._families)
        return self._families()

    def _families(self) -> list[Metric]:
        node = self._node
        up = GaugeMetricFamily("imgateway_cluster_redis_up", "1 while Redis is reachable")
        up.add_metric([], 1 if node.link.available else 0)
        nodes = GaugeMetricFamily(
            "imgateway_cluster_nodes", "Nodes of the cluster by state", labels=["state"]
        )
        draining = sum(1 for info in node.nodes.values() if info.get("draining"))
        nodes.add_metric(["up"], len(node.nodes) - draining)
        nodes.add_metric(["draining"], draining)
        nodes.add_metric(["lost"], len(node.members.lost))
        families: list[Metric] = [up, nodes]
        for field in _PER_NODE:
            family = GaugeMetricFamily(
                f"imgateway_cluster_node_{field}",
                f"{field.capitalize()} of each node, from its last record",
                labels=["node"],
            )
            for name, info in sorted(node.nodes.items()):
                family.add_metric([name], info.get(field, 0))
            families.append(family)
        bus = CounterMetricFamily(
            "imgateway_cluster_bus_messages",
            "Messages this node sent to and received from other nodes",
            labels=["direction"],
        )
        bus.add_metric(["sent"], node.stats["sent"])
        bus.add_metric(["received"], node.stats["received"])
        seats = CounterMetricFamily(
            "imgateway_cluster_reservations",
            "Agent seats this node asked Redis for, by result",
            labels=["result"],
        )
        seats.add_metric(["reserved"], node.stats["reserved"])
        seats.add_metric(["refused"], node.stats["refused"])
        taken = CounterMetricFamily(
            "imgateway_cluster_taken_over", "Conversations taken from lost nodes"
        )
        taken.add_metric([], node.stats["taken_over"])
        outages = CounterMetricFamily("imgateway_cluster_redis_outages", "Times Redis was lost")
        outages.add_metric([], node.link.outages)
        return [*families, bus, seats, taken, outages]
