"""The routing server's end of the event feed: streams, de-duplication, the journal.

Each gateway process sends one *stream* per run: ``(gateway, node, epoch)``, its events
numbered by ``seq`` from 1 (gateway.routing.feed). :class:`FeedIngest` applies each
event of a batch to the :class:`gateway.routerd.state.LiveState` once, in ``seq``
order: an event it has seen (a batch sent again after a lost acknowledgement, the
backlog replayed after an outage) is dropped; an event past a gap (the gateway's full
buffer dropped some) is applied, counted, and answered with a request for a snapshot
of that gateway's state. The acknowledgement is the highest ``seq`` applied.

With a data directory, what it applies is first appended to a journal
(``feed.jsonl``, one line per batch, flushed and by default fsynced before the
acknowledgement), so that an acknowledged event survives the router's restart: at
start the last snapshot of the state (``state.json``) is read, the journal replayed on
it, and both written anew (the journal emptied); that is also done whenever the
journal holds ``compact_after`` batches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from twisted.logger import Logger

from gateway import logs
from gateway.routerd.state import LiveState

JOURNAL = "feed.jsonl"
SNAPSHOT = "state.json"
# Streams remembered (their last seq) at most; the oldest runs are forgotten first.
MAX_STREAMS = 10_000

Stream = tuple[str, str, str]


class FeedError(ValueError):
    """A batch that is not one: the message says what is wrong."""


@attrs.define
class Batch:
    """One ``POST /v1/events`` body, checked."""

    stream: Stream
    events: list[dict[str, Any]]

    @classmethod
    def parse(cls, data: Any) -> Batch:
        """A batch from its JSON; FeedError unless it has the shape docs/routing.md gives."""
        if not isinstance(data, Mapping):
            raise FeedError("the body must be an object")
        stream = []
        for key in ("gateway", "node", "epoch"):
            value = data.get(key)
            if not isinstance(value, str) or len(value) > 256:
                raise FeedError(f"{key} must be a string")
            stream.append(value)
        if not stream[2]:
            raise FeedError("epoch must not be empty")
        events = data.get("events")
        if not isinstance(events, list):
            raise FeedError("events must be a list")
        last = 0
        for i, event in enumerate(events):
            if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
                raise FeedError(f"events[{i}] must be an object with a type")
            seq = event.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq <= last:
                raise FeedError(f"events[{i}].seq must be a number above the one before")
            last = seq
        return cls(stream=(stream[0], stream[1], stream[2]), events=list(events))


@attrs.define
class Accepted:
    """What a batch came to: the acknowledgement, and what was new in it."""

    ack: int
    applied: int
    repeated: int
    gap: bool


class FeedIngest:
    """Applies batches to ``state`` once each, journaling them under ``data_dir``."""

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        state: LiveState,
        data_dir: Path | None = None,
        *,
        fsync: bool = True,
        compact_after: int = 10_000,
    ) -> None:
        self.state = state
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._fsync = fsync
        self._compact_after = compact_after
        # stream -> the last seq applied; insertion order is age.
        self.streams: dict[Stream, int] = {}
        # Streams whose next answer asks for a snapshot (a gap was seen).
        self.wants_snapshot: set[Stream] = set()
        self.repeated = self.gaps = self.applied = 0
        self._journal: Any = None
        self._batches = 0

    # -- at start ------------------------------------------------------------------

    def open(self) -> None:
        """Read the snapshot and replay the journal, then compact; without a data
        directory, nothing. Raises OSError or ValueError for unreadable files."""
        if self.data_dir is None:
            return
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        snapshot = self.data_dir / SNAPSHOT
        if snapshot.exists():
            data = json.loads(snapshot.read_text("utf-8"))
            self.state = LiveState.from_json(data["state"], self.state.service_level_s)
            self.streams = {tuple(s): seq for s, seq in data["streams"]}
        replayed = 0
        journal = self.data_dir / JOURNAL
        if journal.exists():
            with journal.open("r", encoding="utf-8") as lines:
                for line in lines:
                    try:
                        batch = Batch.parse(json.loads(line))
                    except (ValueError, FeedError):
                        # A line cut short by a crash was never acknowledged.
                        self._log.warn("imrouter journal: an unfinished line skipped")
                        continue
                    self._apply(batch)
                    replayed += 1
        self.compact()
        self._log.info(
            "imrouter feed state read from {dir}: {streams} streams, {agents} agents,"
            " {conversations} conversations ({replayed} journal batches replayed)",
            dir=str(self.data_dir),
            streams=len(self.streams),
            agents=len(self.state.agents),
            conversations=len(self.state.conversations),
            replayed=replayed,
        )

    def compact(self) -> None:
        """Write the state as the new snapshot and empty the journal."""
        if self.data_dir is None:
            return
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        data = {
            "state": self.state.to_json(),
            "streams": [[list(s), q] for s, q in self.streams.items()],
        }
        tmp = self.data_dir / (SNAPSHOT + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(data, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.data_dir / SNAPSHOT)
        self._journal = (self.data_dir / JOURNAL).open("w", encoding="utf-8")
        self._batches = 0

    def close(self) -> None:
        """Close the journal."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # -- batches ----------------------------------------------------------------------

    def accept(self, batch: Batch) -> Accepted:
        """Apply the batch's new events (journaled first); the acknowledgement."""
        last = self.streams.get(batch.stream, 0)
        fresh = [e for e in batch.events if e["seq"] > last]
        repeated = len(batch.events) - len(fresh)
        self.repeated += repeated
        if fresh and self._journal is not None:
            line = json.dumps(
                {
                    "gateway": batch.stream[0],
                    "node": batch.stream[1],
                    "epoch": batch.stream[2],
                    "events": fresh,
                },
                separators=(",", ":"),
            )
            self._journal.write(line + "\n")
            self._journal.flush()
            if self._fsync:
                os.fsync(self._journal.fileno())
            self._batches += 1
        gap = self._apply(Batch(batch.stream, fresh))
        if self._batches >= self._compact_after:
            self.compact()
        return Accepted(
            ack=self.streams.get(batch.stream, last), applied=len(fresh), repeated=repeated, gap=gap
        )

    def _apply(self, batch: Batch) -> bool:
        stream = batch.stream
        last = self.streams.get(stream, 0)
        gap = False
        gateway, node, _ = stream
        for event in batch.events:
            seq = event["seq"]
            if seq <= last:
                continue
            if seq != last + 1 and event.get("type") != "snapshot":
                gap = True
                self.gaps += 1
                self.wants_snapshot.add(stream)
                self._log.warn(
                    "imrouter feed of {gateway}/{node}: events {first} to {seq} never came"
                    " (dropped while the router was away); asking for a snapshot",
                    gateway=gateway,
                    node=node or "-",
                    first=last + 1,
                    seq=seq - 1,
                )
            if event.get("type") == "snapshot":
                self.wants_snapshot.discard(stream)
            self.state.apply(gateway, node, event)
            self.applied += 1
            last = seq
        if stream not in self.streams and len(self.streams) >= MAX_STREAMS:
            del self.streams[next(iter(self.streams))]
        self.streams[stream] = last
        return gap
