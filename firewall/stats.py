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

    # listener -> connections accepted (counted on the per-connection path: one
    # defaultdict increment)
    accepted: defaultdict[str, int] = attrs.field(factory=lambda: defaultdict(int))
    # (listener, verdict) -> connections refused
    refused: dict[tuple[str, str], int] = attrs.field(factory=dict)
    # (listener, limit) -> violations (concurrent, connections, messages)
    limit_hits: dict[tuple[str, str], int] = attrs.field(factory=dict)
    bans: int = 0

    def verdict(self, listener: str, verdict: str) -> None:
        """Count one decision."""
        if verdict == "accept":
            self.accepted[listener] += 1
            return
        key = (listener, verdict)
        self.refused[key] = self.refused.get(key, 0) + 1

    def verdicts(self) -> dict[tuple[str, str], int]:
        """Every count: (listener, verdict) -> connections."""
        out = {(listener, "accept"): n for listener, n in list(self.accepted.items())}
        out.update(dict(self.refused))
        return out

    def limit_hit(self, listener: str, limit: str) -> None:
        """Count one violation of a limit."""
        key = (listener, limit)
        self.limit_hits[key] = self.limit_hits.get(key, 0) + 1
