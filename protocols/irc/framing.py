"""IRC framing: a byte stream cut into lines of bounded size.

A line ends with LF (a CR before it is dropped; a lone CR also ends a line, as
RFC 1459 allows). The part of a line after its IRCv3 tags may be at most
``max_line`` bytes counting the CR LF (512 by default); the tags, '@' and the space
after them included, at most ``max_tags`` (8191). Nothing beyond that is ever
buffered: a line that grows past the limit is dropped up to its end and reported
once as :data:`TOO_LONG`.
"""

from __future__ import annotations

from collections.abc import Iterator

# Yielded in place of a line that exceeded the limits (its bytes were discarded).
TOO_LONG = None


class LineFramer:
    """Cuts bytes into IRC lines; iterate after :meth:`feed` to take complete ones."""

    def __init__(self, max_line: int = 512, max_tags: int = 8191) -> None:
        self.max_line = max_line
        self.max_tags = max_tags
        # Longest possible line, terminator excluded.
        self._limit = max_line - 2 + max_tags
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> None:
        """Append received bytes (never more than one line's limit stays buffered)."""
        self._buffer += data

    def lines(self) -> Iterator[bytes | None]:
        """Complete lines (bytes without the terminator), or TOO_LONG for a dropped one.

        Empty lines are skipped. Stops when no complete line is left; may be
        abandoned early without losing data.
        """
        buffer = self._buffer
        while True:
            end = _terminator(buffer)
            if end < 0:
                if len(buffer) > self._limit:
                    buffer.clear()
                    if not self._discarding:
                        self._discarding = True
                        yield TOO_LONG
                return
            line = bytes(buffer[:end])
            skip = end + 1
            if buffer[end] == 0x0D and skip < len(buffer) and buffer[skip] == 0x0A:
                skip += 1
            elif buffer[end] == 0x0D and skip == len(buffer):
                # CR at the very end: the LF may still come; wait for it.
                if not self._discarding and len(buffer) <= self._limit:
                    return
            del buffer[:skip]
            if self._discarding:
                self._discarding = False
                continue
            if not line:
                continue
            if not self._fits(line):
                yield TOO_LONG
                continue
            yield line

    def _fits(self, line: bytes) -> bool:
        rest = line
        if line.startswith(b"@"):
            space = line.find(b" ")
            if space < 0:
                return len(line) <= self.max_tags
            if space + 1 > self.max_tags:
                return False
            rest = line[space + 1 :].lstrip(b" ")
        return len(rest) + 2 <= self.max_line


def _terminator(buffer: bytearray) -> int:
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r", 0, lf if lf >= 0 else len(buffer))
    if cr >= 0:
        return cr
    return lf
