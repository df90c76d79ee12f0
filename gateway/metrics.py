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

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
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


class MessageCounts(Collector):
    """``imgateway_messages_total``: plain counts, turned into samples at scrape time.

    Counted on every message in the reactor thread; a prometheus_client Counter takes
    a lock per increment, which the message path does not need.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterable[Metric]:
        """The counts so far, by the sender's protocol and side."""
        family = CounterMetricFamily(
            "imgateway_messages",
            "Messages stored and relayed, by the sender's protocol and side",
            labels=["protocol", "sender"],
        )
        # copy(): one step under the GIL, as the scrape may run in another thread.
        for (protocol, sender), count in sorted(self.counts.copy().items()):
            family.add_metric([protocol, sender], count)
        yield family


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
        self.messages = MessageCounts()
        r.register(self.messages)
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
        self.auth_failures = Counter(
            "imgateway_auth_failures", "Failed agent logins, by protocol", ["protocol"], registry=r
        )
        # For upstream links (the XMPP component, the IRC bot): 1 while attached.
        self.upstream_up = Gauge(
            "imgateway_upstream_up",
            "Upstream links attached (1) or not (0), by upstream",
            ["upstream"],
            registry=r,
        )

    def count_message(self, protocol: str, sender: str) -> None:
        """Count one message a ``sender`` side sent over ``protocol``."""
        counts = self.messages.counts
        key = (protocol, sender)
        counts[key] = counts.get(key, 0) + 1

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


class FirewallCollector(Collector):
    """The firewall's figures, read from its tallies and tables at scrape time (the
    firewall counts in plain integers; see firewall.stats): connections by listener
    and verdict, limit hits by listener and limit, bans made and in force, tracked
    connections by direction. Read on whatever thread scrapes: plain reads of ints
    and dict copies, consistent enough for counters."""

    def __init__(self, firewall: Any) -> None:
        self._firewall = firewall

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The current figures."""
        fw = self._firewall
        stats = fw.stats
        connections = CounterMetricFamily(
            "imgateway_firewall_connections",
            "Connections the firewall decided, by listener and verdict (accept, drop,"
            " reject; a connection refused once its role is known counts twice)",
            labels=["listener", "verdict"],
        )
        for (listener, verdict), count in sorted(stats.verdicts().items()):
            connections.add_metric([listener, verdict], count)
        yield connections
        hits = CounterMetricFamily(
            "imgateway_firewall_limit_hits",
            "Violations of the per-address limits, by listener and limit",
            labels=["listener", "limit"],
        )
        for (listener, limit), count in sorted(dict(stats.limit_hits).items()):
            hits.add_metric([listener, limit], count)
        yield hits
        yield CounterMetricFamily(
            "imgateway_firewall_bans", "Bans made (by limits and by admins)", value=stats.bans
        )
        yield GaugeMetricFamily(
            "imgateway_firewall_bans_active",
            "Bans in force (addresses and networks)",
            value=len(fw.bans),
        )
        tracked = GaugeMetricFamily(
            "imgateway_firewall_conntrack_entries",
            "Tracked connections, by direction",
            labels=["direction"],
        )
        for direction, count in sorted(fw.conntrack.counts().items()):
            tracked.add_metric([direction], count)
        yield tracked


def oldest_wait(queue: Any, now: float) -> float:
    """Seconds the first conversation in line has waited (0 when the queue is empty)."""
    for conv in queue.in_order():
        if conv.arrival is not None:
            return max(0.0, now - conv.arrival[0])
    return 0.0
