"""The per-connection values of the firewall: a rule's counter, a decision, the flow of
an accepted connection and its rule-limit memory, and the two per-connection log lines
(the summary of a connection that ended; a refusal's is the engine's)."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import attrs
from twisted.logger import Logger, LogLevel

from firewall.addrset import IP
from firewall.common import TokenBucket
from firewall.conntrack import Entry
from firewall.ruleset import Rule

REFUSAL = "firewall {verdict} address={address} listener={listener} rule={rule}"
# The summary's counts go in as one field made here: formatting eleven fields costs
# Twisted's formatter three times as much, on a line written for every connection.
CLOSE = "firewall close address={address} listener={listener} {summary}"
_now = time.time
# How limit log lines name the limits (the metrics say concurrent, connections, messages).
LIMIT_NAMES = {
    "concurrent": "concurrent-connections",
    "connections": "connection-rate",
    "messages": "message-rate",
}


class FastLogger(Logger):
    """A Logger for the per-connection paths: ``emit`` without Twisted's check that the
    level is a LogLevel (a scan of the constants on every event, the larger part of a
    log call's cost). Callers here pass LogLevel constants only (``info``, ``error``)."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:
        """Send one event to the observer, as ``Logger.emit`` does."""
        kwargs.update(
            log_logger=self,
            log_level=level,
            log_namespace=self.namespace,
            log_source=self.source,
            log_format=format,
            log_time=time.time(),  # the event's timestamp, as Logger.emit sets it
        )
        self.observer(kwargs)


@attrs.define
class Counter:
    """What one rule has matched: connections, and the messages and bytes they carried."""

    connections: int = 0
    messages: int = 0
    bytes: int = 0
    # The rule's decision, made once and handed out for every connection it decides
    # (a NamedTuple costs more to make than the rest of a refusal).
    decision: Any = attrs.field(default=None, eq=False, repr=False)

    def describe(self) -> str:
        """As ``fw list`` prints it."""
        return f"connections {self.connections} messages {self.messages} bytes {self.bytes}"


class Decision(NamedTuple):
    """Whether a new connection may go on: verdict accept, drop or reject.

    ``taken`` holds the rule limits a walk that stopped at a role rule has already
    taken (handle -> under the rate), so that the walk with the role takes none twice.
    """

    verdict: str
    handle: int | None
    reason: str
    pending_role: bool = False
    taken: dict[int, bool] | None = None


ACCEPT_BY_POLICY = Decision("accept", None, "")


@attrs.define(eq=False)
class Flow:
    """One accepted connection as limits see it."""

    key: int | None
    listener: str
    protocol: str
    host: str | None
    ip: IP | None
    handle: int | None
    messages: TokenBucket | None = None
    violations: int = 0
    role: str | None = None
    pending_role: bool = False
    taken: dict[int, bool] | None = None
    # What finally became of it (a refusal once its role was known, a message flood).
    verdict: str = "accept"
    refused_by: str | None = None


class LimitMemory:
    """A rule-limit check for one connection that remembers what it took: a walk that
    stops at a role rule is walked again with the role, and a limit counts once.
    ``peek`` answers without taking (the speculative walks for every role)."""

    __slots__ = ("_fw", "peeked", "taken")

    def __init__(self, fw: Any, taken: dict[int, bool] | None = None) -> None:
        # fw: the Firewall whose rule buckets are taken from
        self._fw = fw
        self.taken: dict[int, bool] = dict(taken or {})
        self.peeked = False

    def __call__(self, handle: int, rule: Rule, key: int | None) -> bool:
        under = self.taken.get(handle)
        if under is None:
            under = self.taken[handle] = self._fw.take_limit(handle, rule, key)
        return under

    def peek(self, handle: int, rule: Rule, key: int | None) -> bool:
        """Whether the rule's limit would let this connection through, taking nothing."""
        under = self.taken.get(handle)
        if under is not None:
            return under
        self.peeked = True
        return self._fw.would_be_under(handle, rule, key)


class Summary:
    """The counts of a connection's summary line, written out only when a log
    observer formats the line (``{summary}``): emitting the event stays cheap."""

    __slots__ = ("bytes_in", "bytes_out", "duration", "end", "role", "rule", "verdict")

    def __init__(self, flow: Flow, entry: Entry | None, end: str, now: float) -> None:
        if entry is not None:
            self.end = entry.ended_by or end
            self.duration = now - entry.started
            self.bytes_in, self.bytes_out = entry.bytes_in, entry.bytes_out
        else:
            self.end, self.duration, self.bytes_in, self.bytes_out = end, 0.0, 0, 0
        self.verdict, self.role = flow.verdict, flow.role or "-"
        self.rule = flow.refused_by or (flow.handle if flow.handle is not None else "-")

    def __format__(self, spec: str) -> str:
        return (
            f"duration={self.duration:.3f}s bytes_in={self.bytes_in} bytes_out={self.bytes_out}"
            f" verdict={self.verdict} rule={self.rule} role={self.role} end={self.end}"
        )

    def __str__(self) -> str:
        return format(self, "")

    __repr__ = __str__


# Summary lines written per reactor turn at most (writing one costs some 30 µs).
LINES_PER_TURN = 100


class SummaryLines:
    """The summary lines of connections that ended, written after the reactor turn
    they ended in, LINES_PER_TURN a turn: when thousands of connections end at once,
    the others' traffic is not held up while their lines are formatted and written."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._pending: list[tuple[Logger, dict]] = []

    def add(self, log: Logger, flow: Flow, entry: Entry | None, end: str) -> None:
        """One connection ended (its line is timed now)."""
        now = self._clock.seconds()
        event = {
            "log_logger": log,
            "log_level": LogLevel.info,
            "log_namespace": log.namespace,
            "log_source": log.source,
            "log_format": CLOSE,
            "log_time": _now(),
            # Every value here is the firewall's own (addresses it parsed, names from
            # the configuration, counts): the log observer need not escape them.
            "log_safe": True,
            "address": flow.host if flow.host is not None else "-",
            "listener": flow.listener,
            "summary": Summary(flow, entry, end, now),
        }
        self._pending.append((log, event))
        if len(self._pending) == 1:
            self._clock.callLater(0, self._write)

    def _write(self) -> None:
        batch = self._pending[:LINES_PER_TURN]
        del self._pending[:LINES_PER_TURN]
        if self._pending:
            self._clock.callLater(0, self._write)
        for log, event in batch:
            log.observer(event)

    def flush(self) -> None:
        """Write every line waiting now (the gateway stops)."""
        pending, self._pending = self._pending, []
        for log, event in pending:
            log.observer(event)
