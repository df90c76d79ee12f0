"""Version ranges of the compatibility table: ``">=2.10, <3"`` over dotted numbers.

Versions compare number by number, missing numbers counting as zero, so ``2.10``
is above ``2.9`` and ``2`` equals ``2.0.0``. A customer version that is not purely
dotted numbers (``1.8.4-beta``, ``unknown``) satisfies only the range ``*``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

import attrs

# Longest customer version parsed; also keeps int() far from its digit limit.
MAX_VERSION_LENGTH = 64

_OPERATORS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*", re.ASCII)
# Longer operators first so that ">=" is not read as ">" then "=2".
_CLAUSE = re.compile(r"(==|!=|>=|<=|>|<)?\s*([0-9]{1,9}(?:\.[0-9]{1,9}){0,15})", re.ASCII)

Clause = tuple[Callable[[tuple[int, ...], tuple[int, ...]], bool], tuple[int, ...]]


def parse_version(text: str) -> tuple[int, ...] | None:
    """A version's canonical number tuple, or None if it is not dotted numbers.

    Trailing zeros are dropped so that plain tuple comparison equals comparison
    with zero padding: ``(2, 10)`` for ``2.10.0``.
    """
    text = text.strip()
    if len(text) > MAX_VERSION_LENGTH or not _VERSION.fullmatch(text):
        return None
    return _canonical(tuple(int(part) for part in text.split(".")))


def _canonical(numbers: tuple[int, ...]) -> tuple[int, ...]:
    end = len(numbers)
    while end and numbers[end - 1] == 0:
        end -= 1
    return numbers[:end]


@attrs.frozen
class VersionRange:
    """A parsed range: every comparison must hold. ``*`` (no comparisons) holds
    for any version, numeric or not, and for a customer who sent none."""

    text: str
    clauses: tuple[Clause, ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse ``"*"`` or comma-separated comparisons; ValueError says what is wrong."""
        if text.strip() == "*":
            return cls(text=text)
        clauses = []
        for item in text.split(","):
            item = item.strip()
            match = _CLAUSE.fullmatch(item)
            if not match:
                raise ValueError(_clause_problem(item))
            op, number = match.groups()
            clauses.append((_OPERATORS[op or "=="], _canonical(_numbers(number))))
        return cls(text=text, clauses=tuple(clauses))

    @property
    def is_any(self) -> bool:
        """Whether the range holds for every version (``*``)."""
        return not self.clauses

    def holds(self, version: tuple[int, ...] | None) -> bool:
        """Whether ``version`` (from :func:`parse_version`) is in the range."""
        if not self.clauses:
            return True
        if version is None:
            return False
        return all(compare(version, bound) for compare, bound in self.clauses)


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _clause_problem(item: str) -> str:
    if not item:
        return "an empty comparison (two commas, or a comma at an end)"
    if item == "*":
        return "'*' stands alone, not among comparisons"
    return (
        f"{item!r} is not a comparison such as '>=2.10' "
        "(operators ==, !=, >=, <=, >, <; dotted whole numbers)"
    )
