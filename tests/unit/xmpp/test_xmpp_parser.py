"""The hardened stream parser: well-formed streams in, hostile XML refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.xmpp.parser import StreamError, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>"
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>
<message><body>&lol9;</body></message>"""


class Recorder:
    """A parser whose callbacks are recorded."""

    def __init__(self, **limits) -> None:
        self.headers: list[dict] = []
        self.stanzas: list = []
        self.ended = False
        self.parser = StreamParser(
            on_header=self.headers.append,
            on_stanza=self.stanzas.append,
            on_end=self._end,
            **limits,
        )

    def _end(self) -> None:
        self.ended = True

    def feed(self, data: bytes) -> None:
        self.parser.feed(data)


def condition_of(data: bytes, **limits) -> str:
    recorder = Recorder(**limits)
    with pytest.raises(StreamError) as info:
        recorder.feed(data)
    return info.value.condition


def test_header_stanzas_and_end():
    r = Recorder()
    r.feed(HEADER + b"<message to='a@b' xml:lang='en'><body>1 &lt; 2 &amp; &#x263A;</body>")
    r.feed(b"</message>  <iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>")
    r.feed(b"</stream:stream>")
    assert r.headers == [
        {"to": "example.com", "version": "1.0", "xmlns": "jabber:client"},
    ]
    message, iq = r.stanzas
    assert (message.uri, message.name, message["to"]) == ("jabber:client", "message", "a@b")
    assert message[("http://www.w3.org/XML/1998/namespace", "lang")] == "en"
    assert str(message.body) == "1 < 2 & \u263a"
    assert iq.firstChildElement().uri == "urn:xmpp:ping"
    assert r.ended


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_split_gives_the_same_stanzas(cuts):
    data = HEADER + b"<message><body>h\xc3\xa9llo</body></message><presence/>" * 3
    r = Recorder()
    position = 0
    for cut in cuts:
        r.feed(data[position : position + cut])
        position += cut
    r.feed(data[position:])
    assert [s.name for s in r.stanzas] == ["message", "presence"] * 3
    assert str(r.stanzas[0].body) == "h\u00e9llo"


def test_billion_laughs_is_restricted_xml():
    assert condition_of(BILLION_LAUGHS) == "restricted-xml"


@pytest.mark.parametrize(
    "hostile",
    [
        b"<!DOCTYPE stream>",
        b"<message><!-- a comment --></message>",
        b"<?target data?>",
        b"<message><body>&ext;</body></message>",
        b"<!ENTITY x 'y'>",
    ],
    ids=["dtd-inside", "comment", "processing-instruction", "undeclared-entity", "entity-decl"],
)
def test_restricted_markup_inside_the_stream(hostile):
    assert condition_of(HEADER + hostile) == "restricted-xml"


def test_external_entity_before_the_stream():
    data = (
        b"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
        + HEADER[21:]
        + b"<message><body>&xxe;</body></message>"
    )
    assert condition_of(data) == "restricted-xml"


def test_oversize_stanza_is_refused_while_it_is_being_read():
    r = Recorder(max_stanza_bytes=8192)
    r.feed(HEADER + b"<message><body>")
    with pytest.raises(StreamError) as info:
        # Never closed: refused once the bytes read pass the limit, not at the end.
        for _ in range(10):
            r.feed(b"x" * 1024)
    assert info.value.condition == "policy-violation"


def test_an_endless_start_tag_is_refused():
    data = HEADER + b"<message a='" + b"x" * 20000
    assert condition_of(data, max_stanza_bytes=8192) == "policy-violation"


def test_the_size_limit_counts_each_stanza_afresh():
    r = Recorder(max_stanza_bytes=8192)
    r.feed(HEADER)
    stanza = b"<message><body>" + b"x" * 6000 + b"</body></message>"
    for _ in range(20):
        r.feed(stanza)
        r.feed(b" ")  # whitespace keepalives do not add up either
    assert len(r.stanzas) == 20


def test_deep_nesting_is_a_policy_violation():
    assert condition_of(HEADER + b"<a>" * 40, max_depth=32) == "policy-violation"


def test_too_many_elements_is_a_policy_violation():
    data = HEADER + b"<message>" + b"<x/>" * 200 + b"</message>"
    assert condition_of(data, max_elements=100) == "policy-violation"


def test_ever_new_names_are_a_policy_violation():
    data = HEADER + b"".join(b"<m%d/>" % i for i in range(300))
    assert condition_of(data, max_names=100) == "policy-violation"


def test_invalid_utf8_is_not_well_formed():
    assert condition_of(HEADER + b"<message><body>\xff\xfe</body></message>") == "not-well-formed"


def test_unbalanced_tags_are_not_well_formed():
    assert condition_of(HEADER + b"<message></iq>") == "not-well-formed"


def test_wrong_stream_namespace():
    data = b"<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>"
    assert condition_of(data) == "invalid-namespace"


def test_a_stream_must_start_with_stream():
    assert condition_of(b"<message/>") == "bad-format"


def test_text_between_stanzas_is_bad_format():
    assert condition_of(HEADER + b"hello") == "bad-format"


def test_a_failed_parser_stays_failed():
    r = Recorder()
    with pytest.raises(StreamError):
        r.feed(HEADER + b"<!-- x -->")
    with pytest.raises(StreamError):
        r.feed(b"<message/>")


def test_stop_ignores_the_rest():
    r = Recorder()
    r.feed(HEADER + b"<presence/>")
    r.parser.stop()
    r.feed(b"<message/><!-- ignored -->")
    assert [s.name for s in r.stanzas] == ["presence"]
