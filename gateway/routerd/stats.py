"""Queue statistics from the live state: the API's ``GET /v1/stats`` and Prometheus.

Per gateway and queue: customers waiting now and the longest wait; conversations that
entered the queue, were answered (an agent accepted), answered within the service
level, abandoned (the customer left while waiting) or unanswered (ended waiting for
another reason: the queue's longest wait, closing time, shutdown); the service level
(answered within ``service_level_s`` over answered plus abandoned); the average wait
of the answered and the average handle time (accept to the agent's leaving); transfers
and requeues. Each conversation counts once per queue it entered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.routerd.ingest import FeedIngest
from gateway.routerd.state import WAITING, LiveState


def queue_report(state: LiveState, now: float) -> list[dict[str, Any]]:
    """Every gateway's queues with their figures, by gateway then queue."""
    waiting: dict[tuple[str, str], list[float]] = {}
    for conv in state.conversations.values():
        if conv.state in WAITING and conv.queue is not None:
            since = conv.entered.get(conv.queue, conv.arrival or now)
            waiting.setdefault((conv.gateway, conv.queue), []).append(since)
    report = []
    for gateway, queue in sorted(set(state.stats) | set(waiting)):
        s = state.queue_stats(gateway, queue)
        waits = waiting.get((gateway, queue), [])
        judged = s.answered + s.abandoned
        report.append(
            {
                "gateway": gateway,
                "queue": queue,
                "waiting": len(waits),
                "longest_wait_s": round(max((now - t for t in waits), default=0.0), 3),
                "entered": s.entered,
                "answered": s.answered,
                "answered_in_service_level": s.answered_in_sl,
                "abandoned": s.abandoned,
                "unanswered": s.unanswered,
                "service_level": round(s.answered_in_sl / judged, 4) if judged else None,
                "service_level_s": state.service_level_s,
                "average_wait_s": round(s.wait_s / s.answered, 3) if s.answered else None,
                "handled": s.handled,
                "average_handle_s": round(s.handle_s / s.handled, 3) if s.handled else None,
                "transfers": s.transfers,
                "requeues": s.requeues,
            }
        )
    return report


def gateway_report(state: LiveState) -> list[dict[str, Any]]:
    """Per gateway: agents by state, conversations opened and ended by reason, messages."""
    gateways = (
        {g for g, _ in state.agents}
        | set(state.opened)
        | {g for g, _ in state.messages}
        | {g for g, _ in state.ended}
    )
    report = []
    for gateway in sorted(gateways):
        agents = Counter(a.state for a in state.agents_of(gateway))
        report.append(
            {
                "gateway": gateway,
                "agents": dict(sorted(agents.items())),
                "opened": state.opened.get(gateway, 0),
                "ended": {r: n for (g, r), n in sorted(state.ended.items()) if g == gateway},
                "messages": {s: n for (g, s), n in sorted(state.messages.items()) if g == gateway},
            }
        )
    return report


class RouterCollector(Collector):
    """The statistics as Prometheus metrics, read from the state at scrape time.

    ``ingest`` is called for the current :class:`FeedIngest` (its state is replaced
    when read from disk); ``clock`` gives the time.
    """

    def __init__(self, ingest: Callable[[], FeedIngest], clock: Any) -> None:
        self._ingest = ingest
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the families are built at each scrape."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The current figures."""
        ingest = self._ingest()
        state = ingest.state
        labels = ["gateway", "queue"]
        gauges = {
            "waiting": GaugeMetricFamily(
                "imrouter_queue_waiting", "Conversations waiting in the queue", labels=labels
            ),
            "longest_wait_s": GaugeMetricFamily(
                "imrouter_queue_longest_wait_seconds",
                "How long the longest waiter has waited",
                labels=labels,
            ),
            "service_level": GaugeMetricFamily(
                "imrouter_queue_service_level",
                "Answered within the service level over answered and abandoned",
                labels=labels,
            ),
        }
        counters = {
            "entered": ("imrouter_queue_entered", "Conversations that entered the queue"),
            "answered": ("imrouter_queue_answered", "Conversations an agent accepted"),
            "answered_in_service_level": (
                "imrouter_queue_answered_in_service_level",
                "Conversations accepted within the service level",
            ),
            "abandoned": ("imrouter_queue_abandoned", "Customers who left while waiting"),
            "unanswered": ("imrouter_queue_unanswered", "Conversations ended waiting otherwise"),
            "handled": ("imrouter_queue_handled", "Agent handlings that ended"),
            "transfers": ("imrouter_queue_transfers", "Conversations transferred away"),
            "requeues": ("imrouter_queue_requeues", "Conversations requeued (an agent dropped)"),
        }
        families = {
            key: CounterMetricFamily(name, text, labels=labels)
            for key, (name, text) in counters.items()
        }
        handle = CounterMetricFamily(
            "imrouter_queue_handle_seconds", "Time agents spent on conversations", labels=labels
        )
        wait = CounterMetricFamily(
            "imrouter_queue_wait_seconds", "Time answered customers waited", labels=labels
        )
        for row in queue_report(state, self._clock.seconds()):
            key = [row["gateway"], row["queue"]]
            for name, family in gauges.items():
                if row[name] is not None:
                    family.add_metric(key, row[name])
            for name, family in families.items():
                family.add_metric(key, row[name])
            s = state.queue_stats(row["gateway"], row["queue"])
            handle.add_metric(key, s.handle_s)
            wait.add_metric(key, s.wait_s)
        yield from gauges.values()
        yield from families.values()
        yield handle
        yield wait
        agents = GaugeMetricFamily(
            "imrouter_agents", "Logged-in agents by state", labels=["gateway", "state"]
        )
        messages = CounterMetricFamily(
            "imrouter_messages", "Messages by sender", labels=["gateway", "sender"]
        )
        for row in gateway_report(state):
            for agent_state, count in row["agents"].items():
                agents.add_metric([row["gateway"], agent_state], count)
            for sender, count in row["messages"].items():
                messages.add_metric([row["gateway"], sender], count)
        yield agents
        yield messages
        feed = CounterMetricFamily(
            "imrouter_feed_events", "Feed events by outcome", labels=["outcome"]
        )
        feed.add_metric(["applied"], ingest.applied)
        feed.add_metric(["repeated"], ingest.repeated)
        yield feed
        gaps = CounterMetricFamily("imrouter_feed_gaps", "Gaps seen in the gateways' feeds")
        gaps.add_metric([], ingest.gaps)
        yield gaps
