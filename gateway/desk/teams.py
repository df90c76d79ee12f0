"""Teams as the desk sees them: an agent's teams, and what a supervisor may act on.

Without team membership configured every supervisor supervises every conversation,
and only global canned responses apply.
"""

from __future__ import annotations

from typing import Any


class Everyone:
    """No teams: supervisors see every conversation; agents belong to no team."""

    def may_supervise(self, supervisor: str, conv: Any) -> bool:
        """Every conversation."""
        return True

    def teams_of(self, agent: str) -> frozenset[str]:
        """No team."""
        return frozenset()
