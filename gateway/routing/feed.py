"""The event feed: every communication event of this gateway, to the routing server.

The core tells its :class:`gateway.routing.interfaces.IEventSink` what happens (a
conversation opened, answered, routed, queued, offered, accepted, rejected, lapsed,
revoked, transferred, requeued, redirected, ended; each message; agents logging in,
changing state, logging out). :class:`EventFeed` numbers each event (``seq``, one
sequence per run of the gateway, its ``epoch``), keeps it in a bounded buffer, and
sends the buffer to ``POST /v1/events`` in batches, in order, one batch at a time,
through the firewall's outbound reactor. An event stays in the buffer until the
router acknowledges it, so it is delivered at least once; the router drops repeats by
``seq``. While the router is away the buffer holds the backlog, sent when it is back;
past ``max_events`` the oldest events are dropped, counted
(``imgateway_router_feed_dropped_total``) and logged, and the router, seeing the gap
in ``seq``, asks for a snapshot of the gateway's state, which the next batch carries.

Per event the core pays one tuple appended to a deque; JSON is made per batch, off the
conversation's path. A message's text is sent only when the router asks (its answers
say ``"texts": true``). docs/routing.md ("The event feed") has the format.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import gateway
from gateway import logs
from gateway.routing.http import (
    RouterAnswerError,
    describe,
    headers,
    new_pool,
    post_json,
    router_agent,
    timed_out,
)
from gateway.routing.interfaces import IEventSink

# Every event type the core emits (docs/routing.md, "The event feed", lists each).
EVENT_TYPES = (
    "started",
    "snapshot",
    "opened",
    "answered",
    "routed",
    "queued",
    "escalated",
    "offered",
    "rejected",
    "lapsed",
    "revoked",
    "accepted",
    "transferred",
    "requeued",
    "redirected",
    "restored",
    "ended",
    "message",
    "agent_login",
    "agent_teams",
    "agent_state",
    "agent_logout",
)
EVENTS_PATH = "/v1/events"
MAX_REPLY = 4096
MESSAGE = "message"
# A batch's body at most (the router's max_body is 4 MiB by default), and the part of
# a message's text the feed carries when the router asks for texts.
MAX_BATCH_BYTES = 512 * 1024
MAX_TEXT = 4096
# One encoder, made once (json.dumps with separators makes one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


@implementer(IEventSink)
class NoEvents:
    """The sink when no routing server is configured: every event goes nowhere."""

    def emit(self, kind: str, subject: str, fields: dict | None = None) -> None:
        """Nothing."""

    def message(
        self, conversation: str, msg: str, sender: str, size: int, ts: float, text: str
    ) -> None:
        """Nothing."""

    def agent(self, presence: Any) -> None:
        """Nothing."""


def agent_state(presence: Any) -> dict[str, Any]:
    """What the feed says of an agent's state (``agent_state`` events, snapshots)."""
    return {
        "status": presence.status,
        "state": presence.state,
        "load": presence.load,
        "conversations": len(presence.conversations),
        "offers": len(presence.offers),
        "capacity": presence.capacity,
        "wrapping_up": presence.wrapping_up,
        "idle_since": presence.idle_since,
    }


@implementer(IEventSink)
class EventFeed:
    """Sends this gateway's events to the routing server at ``url``.

    ``gateway`` and ``node`` name this gateway (several may share one router);
    ``snapshot``, set by the composition root, returns the gateway's live state
    (agents and conversations) when the router asks for it. ``agent`` replaces the
    HTTP client (tests).
    """

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        url: str,
        token: str,
        *,
        reactor: Any,
        gateway_name: str,
        node: str = "",
        max_events: int = 100_000,
        batch: int = 500,
        interval_s: float = 0.05,
        timeout_s: float = 5.0,
        retry_max_s: float = 5.0,
        registry: Any = None,
        tls_ca: Path | None = None,
        agent: Any = None,
        epoch: str | None = None,
    ) -> None:
        self.url = url.rstrip("/") + EVENTS_PATH
        self.gateway, self.node = gateway_name, node
        # This run of the gateway: its events are numbered from 1 again.
        self.epoch = epoch or f"{int(reactor.seconds())}-{secrets.token_hex(4)}"
        self._reactor = reactor
        self._max, self._batch = max_events, batch
        self._interval, self._timeout, self._retry_max = interval_s, timeout_s, retry_max_s
        self._headers = headers(token)
        self._pool = new_pool(reactor, size=1)
        self._agent = agent if agent is not None else router_agent(reactor, self._pool, tls_ca)
        # (seq, ts, kind, subject, fields): sent and not yet acknowledged, then unsent.
        self._pending: deque[tuple] = deque()
        self._seq = itertools.count(1)
        self._idle = True
        self._sending: Deferred | None = None
        self._failures = 0
        self._dropped_now = 0
        self._closed = False
        # The router asks for message texts in its answers.
        self.texts = False
        self.snapshot: Callable[[], dict[str, Any]] | None = None
        self._states: dict[str, tuple] = {}
        self.acked = self.dropped = 0
        self._sent = Counter(
            "imgateway_router_feed_events",
            "Events the routing server acknowledged",
            registry=registry,
        )
        self._dropped = Counter(
            "imgateway_router_feed_dropped",
            "Events dropped from the full buffer while the routing server was away",
            registry=registry,
        )
        backlog = Gauge(
            "imgateway_router_feed_backlog",
            "Events waiting for the routing server's acknowledgement",
            registry=registry,
        )
        backlog.set_function(lambda: len(self._pending))
        self.emit("started", "", {"version": gateway.__version__})

    # -- what the core calls (each one append) -----------------------------------

    def emit(self, kind: str, subject: str, fields: dict | None = None) -> None:
        """Queue one event."""
        self._pending.append((next(self._seq), self._reactor.seconds(), kind, subject, fields))
        if len(self._pending) > self._max:
            self._drop()
        if self._idle:
            self._wake()

    def message(
        self, conversation: str, msg: str, sender: str, size: int, ts: float, text: str
    ) -> None:
        """Queue a message event; its text only if the router asked for texts."""
        fields = (msg, sender, size, text if self.texts else None)
        self._pending.append((next(self._seq), ts, MESSAGE, conversation, fields))
        if len(self._pending) > self._max:
            self._drop()
        if self._idle:
            self._wake()

    def agent(self, presence: Any) -> None:
        """An agent's record was published: an ``agent_state`` event if its state moved."""
        state = agent_state(presence)
        key = (presence.session, *state.values())
        if self._states.get(presence.name) != key:
            self._states[presence.name] = key
            self.emit("agent_state", presence.name, state)

    # -- sending ----------------------------------------------------------------------

    def _drop(self) -> None:
        self._pending.popleft()
        self.dropped += 1
        self._dropped.inc()
        if not self._dropped_now:
            self._log.warn(
                "router feed: {max} events wait already; dropping the oldest",
                max=self._max,
            )
        self._dropped_now += 1

    def _wake(self) -> None:
        self._idle = False
        self._reactor.callLater(self._interval, self._send)

    def _send(self) -> None:
        if self._sending is not None:
            return
        if not self._pending or self._closed:
            self._idle = True
            return
        body, last = self._encode(itertools.islice(self._pending, self._batch))
        d = self._sending = post_json(self._agent, self.url, self._headers, body, MAX_REPLY)
        d.addTimeout(self._timeout, self._reactor, onTimeoutCancel=timed_out)
        d.addCallback(self._answered, last)
        d.addErrback(self._failed)

    def _encode(self, batch: Iterable[tuple]) -> tuple[bytes, int]:
        """A batch's body (at most MAX_BATCH_BYTES, but one event at least) and its last seq."""
        parts: list[bytes] = []
        size = last = 0
        for seq, ts, kind, subject, fields in batch:
            if kind == MESSAGE:
                msg, sender, length, text = fields
                event = {"seq": seq, "ts": ts, "type": kind, "conversation": subject}
                event.update(msg=msg, sender=sender, size=length)
                if text is not None:
                    event["text"] = text[:MAX_TEXT]
            elif not subject:
                event = {"seq": seq, "ts": ts, "type": kind, **(fields or {})}
            elif kind.startswith("agent_"):
                event = {"seq": seq, "ts": ts, "type": kind, "agent": subject, **(fields or {})}
            else:
                event = {"seq": seq, "ts": ts, "type": kind, "conversation": subject}
                if fields:
                    event.update(fields)
            part = _ENCODE(event).encode()
            if parts and size + len(part) > MAX_BATCH_BYTES:
                break
            parts.append(part)
            size += len(part) + 1
            last = seq
        stream = {"gateway": self.gateway, "node": self.node, "epoch": self.epoch}
        head = _ENCODE(stream).encode()[:-1]
        return head + b',"events":[' + b",".join(parts) + b"]}", last

    def _answered(self, reply: tuple[int, Any], last: int) -> None:
        code, data = reply
        if code != 200 or not isinstance(data, dict) or not isinstance(data.get("ack"), int):
            problem = data.get("error") if isinstance(data, dict) else None
            raise RouterAnswerError(
                f"routing server answered {code}: {problem or 'no ack'}", retry=True
            )
        self._sending = None
        ack = min(data["ack"], last)
        pending = self._pending
        while pending and pending[0][0] <= ack:
            pending.popleft()
            self.acked += 1
            self._sent.inc()
        self.texts = data.get("texts") is True
        if self._failures or self._dropped_now:
            self._log.info(
                "router feed: the routing server takes events again"
                " ({dropped} dropped meanwhile, {waiting} waiting)",
                dropped=self._dropped_now,
                waiting=len(pending),
            )
        self._failures = self._dropped_now = 0
        if data.get("snapshot") is True:
            self._snapshot()
        if pending:
            self._reactor.callLater(0, self._send)
        else:
            self._idle = True

    def _failed(self, failure: Failure) -> None:
        self._sending = None
        if self._closed:
            return
        self._failures += 1
        problem, _ = describe(failure, self._timeout)
        if self._failures == 1:
            self._log.warn(
                "router feed: {problem}; {waiting} events wait, sent when it is back",
                problem=problem,
                waiting=len(self._pending),
            )
        delay = min(self._retry_max, self._interval * 2 ** min(self._failures, 16))
        self._reactor.callLater(delay, self._send)

    def _snapshot(self) -> None:
        """The router asked for the whole state: it follows every event so far."""
        state = self.snapshot() if self.snapshot is not None else {}
        self.emit("snapshot", "", state)

    def close(self) -> Deferred[None]:
        """At shutdown: wait for the batch in flight and, while the router answers, send
        one more (the conversations the shutdown ended); then stop and close the
        connection. What the router never acknowledged is lost with the process."""

        def settled() -> Deferred:
            done: Deferred = Deferred()
            current = self._sending if self._sending is not None else succeed(None)
            current.addBoth(lambda _: done.callback(None))
            return done

        def last(_: object) -> Deferred | None:
            if self._pending and not self._failures:
                self._send()
                return settled()
            return None

        def stop(_: object) -> Deferred:
            self._closed = True
            return self._pool.closeCachedConnections()

        return settled().addCallback(last).addCallback(stop)
