"""Service hours: when a queue takes customers, in the queue's own time zone."""

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


class HoursError(ValueError):
    """A service-hours line that does not parse."""


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

    @classmethod
    def parse(cls, lines: Sequence[str], zone: str = "UTC") -> Hours:
        """Lines like ``mon-fri 08:00-18:00`` or ``sat 10:00-14:00``."""
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
        return cls(windows=tuple(windows), zone=zone)

    def is_open(self, timestamp: float) -> bool:
        """Whether the queue takes customers at this POSIX time."""
        if not self.windows:
            return True
        local = dt.datetime.fromtimestamp(timestamp, ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        return any(d == day and o <= minute < c for d, o, c in self.windows)
