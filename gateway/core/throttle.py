"""Failed agent logins: throttled per address and per account, in bounded memory."""

from __future__ import annotations

from collections import OrderedDict

import attrs
from twisted.internet.interfaces import IReactorTime

# Keys remembered at most; the oldest are forgotten first.
MAX_KEYS = 100_000


@attrs.define
class _Record:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    """After ``free`` failures from one key, each further failure locks that key out
    for twice as long as the last (1 s, 2 s, 4 s … up to ``max_lockout_s``); failures
    older than ``window_s`` are forgotten."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        free: int = 5,
        max_lockout_s: float = 300.0,
        window_s: float = 900.0,
    ) -> None:
        self._clock = clock
        self.free = free
        self.max_lockout_s = max_lockout_s
        self.window_s = window_s
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def blocked_for(self, key: str) -> float:
        """Seconds ``key`` must still wait before another attempt (0: go ahead)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        return max(0.0, record.locked_until - self._clock.seconds())

    def failed(self, key: str) -> None:
        """Count a failure of ``key``; past ``free`` ones, lock it out a while."""
        now = self._clock.seconds()
        record = self._records.pop(key, None) or _Record()
        if now - record.last > self.window_s:
            record = _Record()
        record.failures += 1
        record.last = now
        over = record.failures - self.free
        if over > 0:
            record.locked_until = now + min(self.max_lockout_s, 2.0 ** (over - 1))
        self._records[key] = record
        while len(self._records) > MAX_KEYS:
            self._records.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """A successful login clears the key's failures."""
        self._records.pop(key, None)
