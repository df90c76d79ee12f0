"""Neutral helpers the firewall shares with the gateway and the protocol adapters.

The firewall is the bottom layer: whatever it and the layers above both need lives
here, so that nothing in ``firewall/`` imports from ``gateway/`` and no adapter
reaches into the firewall's internals. Three things: the log level filter every
logger of the product publishes through, a token bucket, and address text.
"""

from __future__ import annotations

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

LOG_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)

# Every logger of the product publishes here, so events below the configured level
# are dropped before anything formats them (per-message debug lines cost nothing).
log_observer = FilteringLogObserver(globalLogPublisher, [_predicate])


def set_log_level(name: str) -> None:
    """Set the lowest level the product's loggers emit (debug, info, warn, error)."""
    _predicate.setLogLevelForNamespace("", LOG_LEVELS[name])


def describe_address(addr: IAddress) -> str:
    """A peer address as log lines show it: ``host:port``, ``[v6host]:port`` or the repr."""
    if isinstance(addr, IPv4Address):
        return f"{addr.host}:{addr.port}"
    if isinstance(addr, IPv6Address):
        return f"[{addr.host}]:{addr.port}"
    return repr(addr)


# Refills are computed in floating point; this absorbs rounding at whole tokens.
_EPSILON = 1e-9


# Validated once when made; no setattr hooks, as consume() runs for every message.
@attrs.define(on_setattr=attrs.setters.NO_OP)
class TokenBucket:
    """Allows ``rate`` units a second on average and bursts of up to ``burst``.

    The bucket starts full. Time comes from ``clock.seconds()``; a clock that
    steps backwards refills nothing rather than draining the bucket.
    """

    rate: float = attrs.field(validator=attrs.validators.gt(0))
    burst: int = attrs.field(validator=attrs.validators.ge(1))
    clock: IReactorTime
    _tokens: float = attrs.field(init=False)
    _stamp: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._stamp = self.clock.seconds()

    def consume(self, n: int = 1) -> bool:
        """Take ``n`` units if the bucket holds them; False (taking none) if not."""
        now = self.clock.seconds()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens + _EPSILON < n:
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def idle_since(self, now: float) -> bool:
        """Whether the bucket would be full at ``now`` (so it can be forgotten)."""
        return self._tokens + (now - self._stamp) * self.rate >= self.burst - _EPSILON
