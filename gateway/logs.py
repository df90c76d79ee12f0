"""The gateway's log level: one filter in front of the global log publisher."""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)

# Every gateway Logger publishes here, so events below the configured level are
# dropped before anything formats them (per-message debug lines cost nothing).
observer = FilteringLogObserver(globalLogPublisher, [_predicate])


def set_level(name: str) -> None:
    """Set the lowest level the gateway's own loggers emit (debug, info, warn, error)."""
    _predicate.setLogLevelForNamespace("", _LEVELS[name])
