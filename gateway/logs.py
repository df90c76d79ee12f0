"""The gateway's log level (one filter in front of the global log publisher) and JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from twisted.logger import (
    ILogObserver,
    formatEvent,
    globalLogPublisher,
)
from zope.interface import implementer

from firewall.common import log_observer, set_log_level

# Every logger of the product publishes through the firewall's level filter (the
# bottom layer, which imports nothing from here).
observer = log_observer


def set_level(name: str) -> None:
    """Set the lowest level the gateway's own loggers emit (debug, info, warn, error)."""
    set_log_level(name)


# Event keys copied into JSON lines when present: the ids an operator greps for.
JSON_FIELDS = (
    "conversation",
    "session",
    "agent",
    "protocol",
    "user",
    "address",
    "peer",
    "queue",
    "listener",
    "offer",
)


def event_as_json_line(event: dict) -> str:
    """One compact JSON object (no newline): time, level, namespace, text and the ids.

    ``time`` is ISO 8601 UTC; ``failure`` carries a traceback when the event has one.
    """
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0.0), UTC).isoformat(
            timespec="milliseconds"
        ),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", "-"),
        "text": formatEvent(event),
    }
    for key in JSON_FIELDS:
        value = event.get(key)
        if value is not None:
            record[key] = value if isinstance(value, int | float | bool) else str(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["failure"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@implementer(ILogObserver)
class JsonLinesObserver:
    """Writes each event as one JSON line to a text stream (flushed per line)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: dict) -> None:
        """Write one event."""
        self._stream.write(event_as_json_line(event) + "\n")
        self._stream.flush()


def json_observer() -> JsonLinesObserver:
    """For ``twistd --logger gateway.logs.json_observer``: JSON lines on standard output."""
    return JsonLinesObserver(sys.stdout)


def open_json_log(path: Path) -> tuple[JsonLinesObserver, IO[str]]:
    """Start writing the gateway's events as JSON lines to ``path`` (appending).

    Returns the observer (already added to the global publisher) and the open file;
    :func:`close_json_log` undoes it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a", encoding="utf-8")
    observer_ = JsonLinesObserver(stream)
    # The level filter already sits in front of the gateway's own loggers.
    globalLogPublisher.addObserver(observer_)
    return observer_, stream


def close_json_log(observer_: JsonLinesObserver, stream: IO[str]) -> None:
    """Stop writing JSON lines and close the file."""
    globalLogPublisher.removeObserver(observer_)
    stream.close()
