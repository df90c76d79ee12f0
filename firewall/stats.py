"""What the firewall counts for metrics, in plain integers (read at scrape time).

Kept apart from the decisions so that counting costs a dictionary update and no
metrics library runs on the per-connection path.
"""

from __future__ import annotations

from collections import defaultdict

import attrs


@attrs.define
class FirewallStats:
    """Running totals: decisions by listener and verdict, limit hits by listener and
    limit, bans made. Current sizes (bans, conntrack) are read from the tables."""

    # listener -> connections accepted, dropped, rejected (defaultdicts: one increment
    # on the per-connection path)
    accepted: defaultdict[str, int] = attrs.field(factory=lambda: defaultdict(int))
    dropped: defaultdict[str, int] = attrs.field(factory=lambda: defaultdict(int))
    rejected: defaultdict[str, int] = attrs.field(factory=lambda: defaultdict(int))
    # (listener, limit) -> violations (concurrent, connections, messages)
    limit_hits: dict[tuple[str, str], int] = attrs.field(factory=dict)
    bans: int = 0

    def verdict(self, listener: str, verdict: str) -> None:
        """Count one decision (accept, drop or reject)."""
        {"accept": self.accepted, "drop": self.dropped, "reject": self.rejected}[verdict][
            listener
        ] += 1

    def limit_hit(self, listener: str, limit: str) -> None:
        """Count one violation of a limit."""
        key = (listener, limit)
        self.limit_hits[key] = self.limit_hits.get(key, 0) + 1

    def verdicts(self) -> dict[tuple[str, str], int]:
        """Every count: (listener, verdict) -> connections."""
        out = {}
        for verdict, counts in (
            ("accept", self.accepted),
            ("drop", self.dropped),
            ("reject", self.rejected),
        ):
            out.update({(listener, verdict): n for listener, n in list(counts.items())})
        return out
