"""Prometheus metrics: a registry per gateway, read at scrape time where possible.

Live figures (conversations, queues, agents, connections) come from a collector that
reads the gateway's state when Prometheus scrapes; only events that leave no state
behind (offers, messages, routing decisions, waits and handle times) are counted as
they happen, each in one place (see gateway.core.dispatch and gateway.core.gateway).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.threads import blockingCallFromThread
from twisted.python.threadable import isInIOThread

# A conversation's live states (gateway.core.conversation), always reported, 0 or not.
# The service desk's (gateway.desk.context): the survey after the end, a message left.
CONVERSATION_STATES = (
    "interview",
    "queued",
    "offered",
    "connected",
    "survey",
    "leaving_message",
)
AGENT_STATES = ("available", "away", "offline", "full", "wrap_up")
_WAIT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
_HANDLE_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
_DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class GatewayMetrics:
    """The counters and histograms events feed, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.offers = Counter("imgateway_offers", "Offers made to agents", registry=r)
        self.accepts = Counter("imgateway_offer_accepts", "Offers agents accepted", registry=r)
        self.rejects = Counter("imgateway_offer_rejects", "Offers agents rejected", registry=r)
        self.timeouts = Counter(
            "imgateway_offer_timeouts", "Offers that lapsed unanswered", registry=r
        )
        self.messages = Counter(
            "imgateway_messages",
            "Messages stored and relayed, by the sender's protocol and side",
            ["protocol", "sender"],
            registry=r,
        )
        self.wait_seconds = Histogram(
            "imgateway_wait_seconds",
            "Time from entering a queue to an agent accepting",
            ["queue"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.handle_seconds = Histogram(
            "imgateway_handle_seconds",
            "Time an agent spent on a conversation",
            ["queue"],
            buckets=_HANDLE_BUCKETS,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "imgateway_routing_decision_seconds",
            "Time from asking for a routing plan to having one",
            buckets=_DECISION_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "imgateway_routing_decisions",
            "Routing plans by source (local, remote, fallback)",
            ["source"],
            registry=r,
        )
        # For the firewall: call firewall_connections.labels(listener, verdict).inc().
        self.firewall_connections = Counter(
            "imgateway_firewall_connections",
            "Connections the firewall judged, by listener and verdict",
            ["listener", "verdict"],
            registry=r,
        )
        self.auth_failures = Counter(
            "imgateway_auth_failures", "Failed agent logins, by protocol", ["protocol"], registry=r
        )

        # Labelled children looked up once: labels() costs a lock and a dict per call.
        self._message_counters: dict[tuple[str, str], Any] = {}

    def count_message(self, protocol: str, sender: str) -> None:
        """Count one message a ``sender`` side sent over ``protocol``."""
        key = (protocol, sender)
        child = self._message_counters.get(key)
        if child is None:
            child = self._message_counters[key] = self.messages.labels(protocol, sender)
        child.inc()

    def watch(self, collector: Collector) -> None:
        """Add a collector that reads live state at scrape time."""
        self.registry.register(collector)


class LiveStateCollector(Collector):
    """Conversations, queues, agents and connections, read from the running gateway.

    ``connections`` returns open connections per listener (the firewall's counts).
    Scrapes run in a thread (MetricsResource is a WSGI app), so with ``reactor`` given
    the figures are read on the reactor thread; without it, where collect() is called.
    """

    def __init__(
        self,
        gateway: Any,
        directory: Any,
        clock: Any,
        connections: Callable[[], Mapping[str, int]] = dict,
        reactor: Any = None,
    ) -> None:
        self._reactor = reactor
        self._gateway = gateway
        self._directory = directory
        self._clock = clock
        self._connections = connections

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The current figures, read on the reactor thread."""
        if self._reactor is not None and not isInIOThread():
            return blockingCallFromThread(self._reactor, self._families)
        return self._families()

    def _families(self) -> list[Metric]:
        return list(self._generate())

    def _generate(self) -> Iterable[Metric]:
        now = self._clock.seconds()
        by_state = Tally(c.state for c in self._gateway.conversations.values())
        conversations = GaugeMetricFamily(
            "imgateway_conversations", "Live conversations by state", labels=["state"]
        )
        for state in CONVERSATION_STATES:
            conversations.add_metric([state], by_state.get(state, 0))
        yield conversations

        depth = GaugeMetricFamily(
            "imgateway_queue_depth", "Conversations waiting in a queue", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "imgateway_queue_oldest_wait_seconds",
            "How long the first in line has waited",
            labels=["queue"],
        )
        active = GaugeMetricFamily(
            "imgateway_queue_active", "Conversations from a queue agents hold", labels=["queue"]
        )
        for name, queue in self._gateway.queues.items():
            depth.add_metric([name], len(queue))
            oldest.add_metric([name], oldest_wait(queue, now))
            active.add_metric([name], queue.active)
        yield depth
        yield oldest
        yield active

        agents = GaugeMetricFamily(
            "imgateway_agents", "Logged-in agents by state", labels=["state"]
        )
        by_agent_state = Tally(a.state for a in self._directory)
        for state in AGENT_STATES:
            agents.add_metric([state], by_agent_state.get(state, 0))
        yield agents

        connections = GaugeMetricFamily(
            "imgateway_connections", "Open connections per listener", labels=["listener"]
        )
        for listener, count in sorted(self._connections().items()):
            connections.add_metric([listener], count)
        yield connections


def oldest_wait(queue: Any, now: float) -> float:
    """Seconds the first conversation in line has waited (0 when the queue is empty)."""
    for conv in queue.in_order():
        if conv.arrival is not None:
            return max(0.0, now - conv.arrival[0])
    return 0.0
