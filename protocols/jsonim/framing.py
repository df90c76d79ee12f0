"""JSON-IM framing: a byte stream cut into LF-terminated lines of bounded size."""

from __future__ import annotations


class FrameTooLarge(Exception):
    """A frame exceeded the framer's limit; the stream cannot be resynchronised."""


class LineFramer:
    """Cuts a byte stream into frames, each ended by LF.

    A CR just before the LF is dropped and empty lines are skipped. Frames may
    arrive split at any byte or many per chunk. Feed bytes with :meth:`feed`,
    then iterate to take the complete frames; iteration stops when no complete
    frame is left, and may be abandoned early without losing any data.

    No more than ``max_frame`` bytes (CR and LF not counted) are ever buffered
    for an unfinished frame: one byte more raises :class:`FrameTooLarge`.
    """

    def __init__(self, max_frame: int) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        # Bytes before this offset are known to hold no LF: each byte is scanned once.
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    def __iter__(self) -> LineFramer:
        return self

    def __next__(self) -> bytes:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(buffer)
                # A trailing CR may be the start of CR LF, so it is not counted yet.
                if len(buffer) - buffer.endswith(b"\r") > self._max_frame:
                    self._overflow()
                raise StopIteration
            stop = end - 1 if end and buffer[end - 1] == 0x0D else end
            frame = bytes(buffer[:stop])
            # Deleting a bytearray's head is cheap: CPython only moves its start.
            del buffer[: end + 1]
            self._scanned = 0
            if len(frame) > self._max_frame:
                self._overflow()
            if frame:
                return frame

    def _overflow(self) -> None:
        self._buffer.clear()
        self._scanned = 0
        raise FrameTooLarge(f"frame longer than {self._max_frame} bytes")
