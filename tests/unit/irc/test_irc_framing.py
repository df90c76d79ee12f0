"""The IRC line framer: bounded lines, any split, CR LF / LF / CR endings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.irc.framing import TOO_LONG, LineFramer


def take(framer: LineFramer, data: bytes) -> list:
    framer.feed(data)
    return list(framer.lines())


def test_crlf_lf_and_cr_end_lines_and_empty_lines_are_skipped():
    framer = LineFramer()
    assert take(framer, b"NICK a\r\nUSER b\n\r\nPING c\rPONG d\r\n") == [
        b"NICK a",
        b"USER b",
        b"PING c",
        b"PONG d",
    ]


def test_a_cr_at_the_end_waits_for_its_lf():
    framer = LineFramer()
    assert take(framer, b"PING x\r") == []
    assert take(framer, b"\nPING y\r\n") == [b"PING x", b"PING y"]


@given(st.lists(st.integers(1, 40), max_size=30))
def test_lines_split_anywhere_come_out_whole(cuts):
    stream = b"".join(b"PRIVMSG Support :line %d\r\n" % i for i in range(20))
    framer = LineFramer()
    out, pos = [], 0
    for cut in [*cuts, len(stream)]:
        framer.feed(stream[pos : pos + cut])
        out.extend(framer.lines())
        pos += cut
    assert out == [b"PRIVMSG Support :line %d" % i for i in range(20)]


def test_one_byte_at_a_time():
    framer = LineFramer()
    out = []
    for byte in b"NICK dana\r\nUSER d 0 * :D\r\n":
        out += take(framer, bytes([byte]))
    assert out == [b"NICK dana", b"USER d 0 * :D"]


def test_512_bytes_with_crlf_fit_and_513_do_not():
    framer = LineFramer()
    fits = b"PRIVMSG x :" + b"a" * (510 - 11)
    assert len(fits) + 2 == 512
    assert take(framer, fits + b"\r\n") == [fits]
    assert take(framer, fits + b"a\r\nPING ok\r\n") == [TOO_LONG, b"PING ok"]


def test_tags_have_their_own_budget():
    framer = LineFramer()
    tags = b"@" + b"k=" + b"v" * 8000
    body = b"PRIVMSG x :" + b"a" * 400
    assert take(framer, tags + b" " + body + b"\r\n") == [tags + b" " + body]
    too_many = b"@" + b"k=" + b"v" * 8200
    assert take(framer, too_many + b" " + body + b"\r\n") == [TOO_LONG]


def test_an_endless_line_is_dropped_once_and_never_buffered():
    framer = LineFramer(max_line=512, max_tags=512)
    out = take(framer, b"x" * 5000)
    assert out == [TOO_LONG]
    for _ in range(100):
        assert take(framer, b"y" * 1000) == []
        assert len(framer._buffer) <= 1022
    assert take(framer, b"tail\r\nPING ok\r\n") == [b"PING ok"]
