"""LineFramer: LF-terminated frames, split anywhere, bounded."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.jsonim.framing import FrameTooLarge, LineFramer

STREAM = b'{"type":"ping","id":"1"}\r\n\n{"type":"pong"}\n\r\n{"a":"\xc3\xa9\r"}\r\n'
FRAMES = [b'{"type":"ping","id":"1"}', b'{"type":"pong"}', b'{"a":"\xc3\xa9\r"}']


def feed_chunks(framer: LineFramer, chunks: list[bytes]) -> list[bytes]:
    frames = []
    for chunk in chunks:
        framer.feed(chunk)
        frames.extend(framer)
    return frames


def test_one_read_many_frames() -> None:
    assert feed_chunks(LineFramer(100), [STREAM]) == FRAMES


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_every_split_point(cut: int) -> None:
    assert feed_chunks(LineFramer(100), [STREAM[:cut], STREAM[cut:]]) == FRAMES


def test_byte_by_byte() -> None:
    chunks = [STREAM[i : i + 1] for i in range(len(STREAM))]
    assert feed_chunks(LineFramer(100), chunks) == FRAMES


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_chunking(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in pairwise(bounds)]
    assert feed_chunks(LineFramer(100), chunks) == FRAMES


def test_cr_kept_unless_before_lf() -> None:
    framer = LineFramer(100)
    framer.feed(b"a\rb\r\r\n\r\n")
    assert list(framer) == [b"a\rb\r"]


def test_incomplete_frame_waits() -> None:
    framer = LineFramer(100)
    framer.feed(b'{"type":')
    assert list(framer) == []
    framer.feed(b'"ping"}')
    assert list(framer) == []
    framer.feed(b"\n")
    assert list(framer) == [b'{"type":"ping"}']


def test_iteration_may_stop_early_without_losing_frames() -> None:
    framer = LineFramer(100)
    framer.feed(b"a\nb\nc")
    assert next(framer) == b"a"
    framer.feed(b"\n")
    assert list(framer) == [b"b", b"c"]


def test_frame_of_exactly_the_limit_passes_with_crlf() -> None:
    framer = LineFramer(8)
    framer.feed(b"12345678\r")
    assert list(framer) == []
    framer.feed(b"\n12345678\n")
    assert list(framer) == [b"12345678", b"12345678"]


def test_unterminated_overflow_detected_at_once() -> None:
    framer = LineFramer(8)
    framer.feed(b"12345678")
    assert list(framer) == []
    framer.feed(b"9")
    with pytest.raises(FrameTooLarge):
        next(framer)


def test_cr_then_more_bytes_overflows() -> None:
    framer = LineFramer(8)
    framer.feed(b"12345678\r")
    assert list(framer) == []
    framer.feed(b"x")
    with pytest.raises(FrameTooLarge):
        next(framer)


def test_terminated_overflow_after_good_frames() -> None:
    framer = LineFramer(8)
    framer.feed(b"ok\n123456789\nlater\n")
    assert next(framer) == b"ok"
    with pytest.raises(FrameTooLarge):
        next(framer)


def test_buffer_is_bounded() -> None:
    framer = LineFramer(8)
    framer.feed(b"x" * 100_000)
    with pytest.raises(FrameTooLarge):
        next(framer)
    # Nothing of the oversized frame is kept.
    assert list(framer) == []


def test_byte_by_byte_scans_each_byte_once() -> None:
    # 60 000 single-byte reads of one frame: quadratic rescanning would take
    # seconds; the scan offset keeps it linear (the check is the offset itself).
    framer = LineFramer(65536)
    for _ in range(60_000):
        framer.feed(b"x")
        assert list(framer) == []
    assert framer._scanned == 60_000
    framer.feed(b"\n")
    assert list(framer) == [b"x" * 60_000]
