"""Service hours: when a queue takes customers, in the queue's own time zone.

Weekly windows (``mon-fri 08:00-18:00``) and, beside them, dated closures (holidays):
``2025-12-25`` (the whole day), ``2025-12-24 14:00-24:00`` (part of a day) or
``2025-12-24..2025-12-26`` (several days), each in the queue's zone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(
    r"^\s*(?P<first>[a-z]{3})(?:\s*-\s*(?P<last>[a-z]{3}))?\s+"
    r"(?P<open>\d{1,2}:\d{2})\s*-\s*(?P<close>\d{1,2}:\d{2})\s*$"
)


_CLOSURE = re.compile(
    r"^\s*(?P<first>\d{4}-\d{2}-\d{2})(?:\s*\.\.\s*(?P<last>\d{4}-\d{2}-\d{2}))?"
    r"(?:\s+(?P<open>\d{1,2}:\d{2})\s*-\s*(?P<close>\d{1,2}:\d{2}))?\s*$"
)


class HoursError(ValueError):
    """A service-hours line that does not parse."""


@attrs.frozen
class Closure:
    """A dated closure: days ``first`` to ``last``, from minute ``start`` to ``end`` of each."""

    first: dt.date
    last: dt.date
    start: int = 0
    end: int = 24 * 60

    @classmethod
    def parse(cls, text: str) -> Closure:
        """``2025-12-25``, ``2025-12-24 14:00-24:00`` or ``2025-12-24..2025-12-26``."""
        m = _CLOSURE.match(text)
        if not m:
            raise HoursError(f"{text!r} is not like '2025-12-25' or '2025-12-24 14:00-24:00'")
        try:
            first = dt.date.fromisoformat(m["first"])
            last = dt.date.fromisoformat(m["last"]) if m["last"] else first
        except ValueError:
            raise HoursError(f"{text!r} names a day that does not exist") from None
        if last < first:
            raise HoursError(f"{text!r} ends before it begins")
        start, end = (_minutes(m["open"]), _minutes(m["close"])) if m["open"] else (0, 24 * 60)
        if end <= start:
            raise HoursError(f"{text!r} closes before it opens")
        return cls(first=first, last=last, start=start, end=end)

    def covers(self, day: dt.date, minute: int) -> bool:
        """Whether the closure holds on ``day`` at ``minute`` past midnight."""
        return self.first <= day <= self.last and self.start <= minute < self.end


def _minutes(text: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise HoursError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


@attrs.frozen
class Hours:
    """Opening windows per weekday; no windows at all means always open."""

    windows: tuple[tuple[int, int, int], ...] = ()  # (weekday, open minute, close minute)
    zone: str = "UTC"
    closures: tuple[Closure, ...] = ()

    @classmethod
    def parse(cls, lines: Sequence[str], zone: str = "UTC", holidays: Sequence[str] = ()) -> Hours:
        """Lines like ``mon-fri 08:00-18:00`` or ``sat 10:00-14:00``; ``holidays`` are
        dated closures (see :class:`Closure`)."""
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise HoursError(f"unknown time zone {zone!r}") from None
        windows = []
        for line in lines:
            m = _SPEC.match(line.lower())
            if not m or m["first"] not in _DAYS or (m["last"] and m["last"] not in _DAYS):
                raise HoursError(f"{line!r} is not like 'mon-fri 08:00-18:00'")
            first = _DAYS.index(m["first"])
            last = _DAYS.index(m["last"]) if m["last"] else first
            opening, closing = _minutes(m["open"]), _minutes(m["close"])
            if closing <= opening:
                raise HoursError(f"{line!r} closes before it opens")
            day = first
            while True:
                windows.append((day, opening, closing))
                if day == last:
                    break
                day = (day + 1) % 7
        closures = tuple(Closure.parse(text) for text in holidays)
        return cls(windows=tuple(windows), zone=zone, closures=closures)

    def with_closures(self, closures: Sequence[Closure]) -> Hours:
        """These hours with more dated closures (the ones stored by the service desk)."""
        return attrs.evolve(self, closures=self.closures + tuple(closures))

    def is_open(self, timestamp: float) -> bool:
        """Whether the queue takes customers at this POSIX time."""
        if not self.windows and not self.closures:
            return True
        local = dt.datetime.fromtimestamp(timestamp, ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        if any(c.covers(local.date(), minute) for c in self.closures):
            return False
        if not self.windows:
            return True
        day = local.weekday()
        return any(d == day and o <= minute < c for d, o, c in self.windows)
