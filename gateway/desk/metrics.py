"""The service desk's counters, in the gateway's registry (see gateway.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_SCORE_BUCKETS = (1, 2, 3, 4, 5)


class DeskMetrics:
    """Dispositions, survey scores, offline messages and supervision, as they happen."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.dispositions = Counter(
            "imgateway_dispositions",
            "Wrap-ups by queue and disposition ('none': tags or a note only)",
            ["queue", "disposition"],
            registry=r,
        )
        self.csat = Histogram(
            "imgateway_csat_score",
            "Survey scores (1-5) by queue and agent",
            ["queue", "agent"],
            buckets=_SCORE_BUCKETS,
            registry=r,
        )
        self.offline_messages = Counter(
            "imgateway_offline_messages",
            "Messages customers left, by queue",
            ["queue"],
            registry=r,
        )
        self.offline_answers = Counter(
            "imgateway_offline_answers", "Offline messages agents answered", registry=r
        )
        self.supervision = Counter(
            "imgateway_supervision",
            "Supervisors and colleagues joining conversations, by role",
            ["role"],
            registry=r,
        )
