"""Connection tracking: every connection the firewall let through, in or out."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from firewall.addrset import IP, IPNetwork

NEW, ESTABLISHED, CLOSING = "new", "established", "closing"


@attrs.define(eq=False)
class Entry:
    """One tracked connection: original and translated address pairs, state, bytes."""

    id: int
    protocol: str
    direction: str  # in | out
    listener: str
    original: tuple[str, str]  # (source, destination) as "host:port"
    translated: tuple[str, str]
    started: float
    last_seen: float
    state: str = NEW
    bytes_in: int = 0
    bytes_out: int = 0
    closer: Callable[[], None] | None = attrs.field(default=None, repr=False)
    # The other party's address: the client (in), the destination (out).
    address: IP | None = None
    # Why it ended, when the firewall ended it (idle timeout, an admin's kill or flush).
    ended_by: str | None = None

    def as_json(self, now: float) -> dict[str, Any]:
        """The entry as the admin API shows it."""
        return {
            "id": self.id,
            "protocol": self.protocol,
            "direction": self.direction,
            "listener": self.listener,
            "original": {"src": self.original[0], "dst": self.original[1]},
            "translated": {"src": self.translated[0], "dst": self.translated[1]},
            "state": self.state,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "age_s": round(now - self.started, 3),
            "idle_s": round(now - self.last_seen, 3),
        }


class Conntrack:
    """The table of tracked connections; idle ones are closed by :meth:`expire`.

    ``timeouts`` maps a state (new, established, closing) to the idle seconds allowed.
    """

    def __init__(self, clock: IReactorTime, timeouts: Mapping[str, float]) -> None:
        self._clock = clock
        self.timeouts = dict(timeouts)
        self._entries: dict[int, Entry] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def get(self, entry_id: int) -> Entry | None:
        """The entry with this id, if tracked."""
        return self._entries.get(entry_id)

    def open(
        self,
        *,
        protocol: str,
        direction: str,
        listener: str,
        original: tuple[str, str],
        translated: tuple[str, str],
        closer: Callable[[], None],
        address: IP | None = None,
    ) -> Entry:
        """Track a new connection; ``address`` is the other party's (see :meth:`flush`)."""
        now = self._clock.seconds()
        entry = Entry(
            id=next(self._ids),
            protocol=protocol,
            direction=direction,
            listener=listener,
            original=original,
            translated=translated,
            started=now,
            last_seen=now,
            closer=closer,
            address=address,
        )
        self._entries[entry.id] = entry
        return entry

    def received(self, entry: Entry, count: int) -> None:
        """``count`` bytes came from the connection's originator."""
        entry.bytes_in += count
        entry.last_seen = self._clock.seconds()

    def sent(self, entry: Entry, count: int) -> None:
        """``count`` bytes went back to the originator."""
        entry.bytes_out += count
        entry.last_seen = self._clock.seconds()
        if entry.state == NEW and entry.bytes_in:
            entry.state = ESTABLISHED

    def closing(self, entry: Entry) -> None:
        """The connection is being closed."""
        entry.state = CLOSING
        entry.last_seen = self._clock.seconds()

    def close(self, entry: Entry) -> None:
        """The connection is gone: forget it."""
        self._entries.pop(entry.id, None)

    def counts(self) -> dict[str, int]:
        """Entries by direction (in, out), counted now (for metrics)."""
        out = {"in": 0, "out": 0}
        for entry in list(self._entries.values()):
            out[entry.direction] = out.get(entry.direction, 0) + 1
        return out

    def kill(self, entry_id: int, why: str = "killed") -> bool:
        """Close a tracked connection now (an admin's ``conntrack kill``)."""
        entry = self._entries.get(entry_id)
        if entry is None:
            return False
        self._end(entry, why)
        return True

    def _end(self, entry: Entry, why: str) -> None:
        entry.ended_by = entry.ended_by or why
        self.closing(entry)
        if entry.closer is not None:
            entry.closer()

    def flush(
        self, networks: list[IPNetwork], why: str = "flushed", direction: str | None = None
    ) -> list[Entry]:
        """Close every connection from (in) or to (out) an address of ``networks``
        (of one ``direction`` only, if given)."""
        matched = []
        for entry in list(self._entries.values()):
            if entry.address is None or (direction is not None and entry.direction != direction):
                continue
            bits, value = entry.address
            for net in networks:
                shift = bits - net.prefixlen
                if net.max_prefixlen == bits and value >> shift == (
                    int(net.network_address) >> shift
                ):
                    matched.append(entry)
                    break
        for entry in matched:
            self._end(entry, why)
        return matched

    def expire(self) -> list[Entry]:
        """Close every entry idle longer than its state's timeout; returns them."""
        now = self._clock.seconds()
        idle = [
            e
            for e in self._entries.values()
            if now - e.last_seen >= self.timeouts.get(e.state, self.timeouts[ESTABLISHED])
        ]
        for entry in idle:
            if entry.state == CLOSING:
                self.close(entry)  # a close that never completed: forget it
            self._end(entry, "idle-timeout")
        return idle
