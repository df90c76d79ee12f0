"""Text longer than the parser's text buffer arrives whole, however it is split."""

from __future__ import annotations

from protocols.xmpp.parser import TEXT_BUFFER, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"
)
# Ten buffers' worth: two-byte letters, entity references and newlines.
TEXT = ("h\u00e9llo &amp; <b>\n" * (10 * TEXT_BUFFER // 16))[: 10 * TEXT_BUFFER]


def _stanzas(pieces: list[bytes]) -> list:
    stanzas: list = []
    parser = StreamParser(on_header=lambda _: None, on_stanza=stanzas.append, on_end=lambda: None)
    assert parser._parser.buffer_size == TEXT_BUFFER == 512
    for piece in pieces:
        parser.feed(piece)
    return stanzas


def test_long_text_is_whole_in_one_feed_or_in_small_pieces():
    escaped = TEXT.replace("&", "&amp;").replace("<", "&lt;").encode()
    data = HEADER + b"<message><body>" + escaped + b"</body></message>"
    for size in (len(data), 4096, 7):
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        (stanza,) = _stanzas(pieces)
        assert str(stanza.body) == TEXT
