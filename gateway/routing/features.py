"""What an agent's IM software can be granted, and the check that rules ask for no more.

Each protocol adapter declares the features it can grant an agent's session
(:class:`gateway.plugins.Adapter` ``features``: ``typing``, ``rich_text``, ...);
``plain_text`` every agent has. A compatibility entry that requires a feature no
adapter grants could never be served (its customers would wait until ``max_wait_s``),
so the rules loader refuses it, naming the entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping

PLAIN_TEXT = "plain_text"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def grantable_features(adapters: Collection[object]) -> dict[str, frozenset[str]]:
    """Adapter name -> the features it can grant, ``plain_text`` included."""
    return {a.name: frozenset(getattr(a, "features", ())) | {PLAIN_TEXT} for a in adapters}


def grantable_check(
    grantable: Mapping[str, Collection[str]] | None,
) -> Callable[[str], str | None]:
    """A check of one required feature's name: a problem's text, or None."""

    def check(feature: str) -> str | None:
        if not _NAME.match(feature):
            return f"{feature!r} is not a valid name (lowercase letters, digits, '-' and '_')"
        if grantable is None or any(feature in f for f in grantable.values()):
            return None
        offered = "; ".join(
            f"{name}: {', '.join(sorted(features))}" for name, features in sorted(grantable.items())
        )
        return (
            f"{feature!r}: no agent protocol grants it, so no agent could ever serve this"
            f" entry (what each grants: {offered or 'nothing'})"
        )

    return check
