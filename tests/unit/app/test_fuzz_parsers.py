"""Property-based fuzzing of every parser and of the conversation state machine (issue 9,
item 2).

For each parser: any input raises nothing but the protocol's own error type, each input
is handled within a time bound (hypothesis ``deadline``) and with the buffer it keeps
bounded, and what the gateway writes reads back the same (round trips). The state
machine: random JSON-IM frames, well-formed or not, from customers and agents over
StringTransports into the real core on a Clock; the server never answers ``internal``
(an unexpected exception) and only ever writes well-formed frames of known types.
"""

from __future__ import annotations

import json

import pytest
from core_helpers import make_harness
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from twisted.internet.testing import StringTransport
from twisted.words.xish import domish

from protocols.irc import framing as irc_framing
from protocols.irc.message import Message, ParseError, decode, parse, serialise
from protocols.jsonim import JsonImFactory
from protocols.jsonim.codec import DecodeError
from protocols.jsonim.codec import decode as jsonim_decode
from protocols.jsonim.codec import encode as jsonim_encode
from protocols.jsonim.framing import FrameTooLarge, LineFramer
from protocols.jsonim.settings import JsonImSettings
from protocols.xmpp.parser import StreamError, StreamParser

# Per input: a parser that goes quadratic on some input would blow this.
DEADLINE_MS = 500
FUZZ = settings(max_examples=150, deadline=DEADLINE_MS)
JSONIM_CODES = {"bad_frame", "bad_request"}
XMPP_CONDITIONS = {
    "bad-format",
    "invalid-namespace",
    "not-well-formed",
    "policy-violation",
    "restricted-xml",
    "unsupported-encoding",
}
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given sizes (the rest as the last piece)."""
    pieces, position = [], 0
    for cut in cuts:
        pieces.append(data[position : position + cut])
        position += cut
    pieces.append(data[position:])
    return [p for p in pieces if p]


CUTS = st.lists(st.integers(min_value=1, max_value=64), max_size=40)

# -- JSON-IM codec ------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FRAMES = st.builds(
    lambda kind, fid, extra: {**extra, "type": kind, **({"id": fid} if fid is not None else {})},
    st.text(max_size=12),
    st.none() | st.text(max_size=64),
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in ("type", "id")), JSON_VALUES, max_size=4
    ),
)


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@FUZZ
@given(st.binary(max_size=2048))
def test_jsonim_decode_any_bytes_gives_a_frame_or_its_own_error(data):
    try:
        frame = jsonim_decode(data)
    except DecodeError as e:
        assert e.code in JSONIM_CODES, e.code
        assert e.frame_id is None or isinstance(e.frame_id, str)
        return
    assert isinstance(frame, dict) and isinstance(frame["type"], str)


@FUZZ
@given(st.text(max_size=400))
def test_jsonim_decode_any_text_gives_a_frame_or_its_own_error(text):
    # Text with surrogates cannot be UTF-8: escape them as JSON would.
    data = text.encode("utf-8", "backslashreplace")
    try:
        jsonim_decode(data)
    except DecodeError as e:
        assert e.code in JSONIM_CODES


@FUZZ
@given(FRAMES)
def test_jsonim_frames_round_trip_through_encode_and_decode(frame):
    assert depth(frame) <= 6  # far under the 32-level limit
    assert jsonim_decode(jsonim_encode(frame).rstrip(b"\n")) == frame
    # ASCII-escaped, as other clients send it, reads the same.
    assert jsonim_decode(json.dumps(frame).encode()) == frame


@FUZZ
@given(FRAMES, st.integers(min_value=0xD800, max_value=0xDFFF), st.booleans())
def test_jsonim_a_lone_surrogate_anywhere_is_bad_frame(frame, surrogate, in_key):
    escape = f"\\u{surrogate:04x}"
    extra = f'"{escape}":1' if in_key else f'"lone":"a{escape}b"'
    data = json.dumps(frame)[:-1].encode() + b"," + extra.encode() + b"}"
    with pytest.raises(DecodeError) as info:
        jsonim_decode(data)
    assert info.value.code == "bad_frame"


@FUZZ
@given(st.integers(min_value=1, max_value=200), st.sampled_from(["[", '{"a":']))
def test_jsonim_nesting_is_refused_exactly_past_the_limit(levels, opener):
    closer = "]" if opener == "[" else "}"
    data = ('{"type":"ping","x":' + opener * levels + "1" + closer * levels + "}").encode()
    if levels + 1 <= 32:
        assert jsonim_decode(data)["type"] == "ping"
    else:
        with pytest.raises(DecodeError) as info:
            jsonim_decode(data)
        assert info.value.code == "bad_frame"


@FUZZ
@given(st.integers(min_value=309, max_value=5000), st.booleans())
def test_jsonim_numbers_out_of_double_range_are_bad_frame(digits, negative):
    number = ("-" if negative else "") + "9" * digits
    with pytest.raises(DecodeError) as info:
        jsonim_decode(b'{"type":"ping","x":' + number.encode() + b"}")
    assert info.value.code == "bad_frame"


# -- JSON-IM framing -------------------------------------------------------------------------


@FUZZ
@given(
    st.lists(st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    CUTS,
    st.booleans(),
)
def test_jsonim_framing_gives_the_lines_whatever_the_segments(lines, cuts, crlf):
    max_frame = 64
    end = b"\r\n" if crlf else b"\n"
    stream = b"".join(line + end for line in lines)
    framer = LineFramer(max_frame)
    got = []
    try:
        for piece in splits(stream, cuts):
            framer.feed(piece)
            got.extend(framer)
            # Nothing unfinished beyond one frame (and a CR that may start CR LF) is kept.
            assert len(framer._buffer) <= max_frame + 1
    except FrameTooLarge:
        assert any(
            len(line.removesuffix(b"\r") if not crlf else line) > max_frame for line in lines
        )
        return
    expected = [(line if crlf else line.removesuffix(b"\r")) for line in lines]
    assert got == [line for line in expected if line]


# -- XMPP stream parser ---------------------------------------------------------------------

# Not "xml…": xmlns would declare a namespace rather than be an attribute.
XML_NAMES = st.from_regex(r"\A[a-z][a-z0-9]{0,6}\Z").filter(lambda n: not n.startswith("xml"))
# Characters XML 1.0 allows (no surrogates, no controls but tab, LF and CR).
XML_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="\ufffe\uffff",
    ),
    max_size=30,
)


def _element(name, attrs, text, children):
    element = domish.Element((None, name), attribs=dict(attrs))
    if text:
        element.addContent(text)
    for child in children:
        element.addChild(child)
    return element


ELEMENTS = st.recursive(
    st.builds(
        _element, XML_NAMES, st.dictionaries(XML_NAMES, XML_TEXT, max_size=3), XML_TEXT, st.just([])
    ),
    lambda inner: st.builds(
        _element,
        XML_NAMES,
        st.dictionaries(XML_NAMES, XML_TEXT, max_size=3),
        XML_TEXT,
        st.lists(inner, max_size=3),
    ),
    max_leaves=12,
)


class Stream:
    """A StreamParser and what it gave back."""

    def __init__(self, **limits) -> None:
        self.headers, self.stanzas, self.ended = [], [], False
        self.parser = StreamParser(
            on_header=self.headers.append,
            on_stanza=self.stanzas.append,
            on_end=self._end,
            **limits,
        )

    def _end(self) -> None:
        self.ended = True


def canonical(element: domish.Element) -> tuple:
    """An element as a comparable value: name, attributes, text and children."""
    texts = "".join(c for c in element.children if isinstance(c, str))
    kids = tuple(canonical(c) for c in element.elements())
    return (element.name, tuple(sorted(element.attributes.items())), texts, kids)


@FUZZ
@given(st.lists(ELEMENTS, min_size=1, max_size=4), CUTS)
def test_xmpp_stanzas_round_trip_whatever_the_segments(elements, cuts):
    data = HEADER + b"".join(e.toXml().encode("utf-8") for e in elements) + b"</stream:stream>"
    stream = Stream()
    for piece in splits(data, cuts):
        stream.parser.feed(piece)
    assert [canonical(s) for s in stream.stanzas] == [canonical(e) for e in elements]
    assert stream.ended


@FUZZ
@given(st.binary(max_size=2048), st.booleans(), CUTS)
def test_xmpp_any_bytes_raise_only_stream_errors(data, after_header, cuts):
    stream = Stream(max_stanza_bytes=4096)
    try:
        for piece in splits((HEADER if after_header else b"") + data, cuts):
            stream.parser.feed(piece)
    except StreamError as e:
        assert e.condition in XMPP_CONDITIONS, e.condition


HOSTILE_XML = [
    b"<!DOCTYPE x>",
    b"<!ENTITY a 'b'>",
    b"<!-- c -->",
    b"<?pi x?>",
    b"&undefined;",
    b"<!ELEMENT a ANY>",
]


@FUZZ
@given(st.lists(ELEMENTS, max_size=3), st.sampled_from(HOSTILE_XML), CUTS)
def test_xmpp_restricted_markup_is_refused_wherever_it_is_split(elements, hostile, cuts):
    body = b"".join(e.toXml().encode("utf-8") for e in elements)
    data = HEADER + body + b"<message>" + hostile
    stream = Stream()
    with pytest.raises(StreamError) as info:
        for piece in splits(data, cuts):
            stream.parser.feed(piece)
    assert info.value.condition == "restricted-xml"
    assert len(stream.stanzas) == len(elements)


@settings(max_examples=40, deadline=DEADLINE_MS)
@given(
    st.integers(min_value=5000, max_value=60000),
    st.sampled_from([(b"", b"<a>"), (b"<a x='", b"y"), (b"<body>", b"y"), (b"<", b"n")]),
)
def test_xmpp_unbounded_input_is_cut_at_the_stanza_limit(size, growth):
    # Never-ending nesting, attribute, text or tag name inside one stanza.
    prefix, unit = growth
    stream = Stream(max_stanza_bytes=4096)
    stream.parser.feed(HEADER + b"<message>" + prefix)
    with pytest.raises(StreamError) as info:
        for _ in range(size // len(unit) // 512 + 1):
            stream.parser.feed(unit * 512)
    assert info.value.condition == "policy-violation"


@pytest.mark.parametrize(
    "data",
    [
        HEADER.decode().encode("utf-16"),
        b"\xfe\xff" + HEADER.decode().encode("utf-16-be"),
        HEADER.decode().encode("utf-16-le"),
        HEADER.decode().encode("utf-16-be"),
    ],
    ids=["utf16-bom-le", "utf16-bom-be", "utf16-le", "utf16-be"],
)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_xmpp_utf16_streams_are_unsupported_encoding(data, bytewise):
    # expat would otherwise switch to UTF-16 despite being created for UTF-8.
    stream = Stream()
    with pytest.raises(StreamError) as info:
        for piece in [data[i : i + 1] for i in range(len(data))] if bytewise else [data]:
            stream.parser.feed(piece)
    assert info.value.condition == "unsupported-encoding"
    assert stream.headers == []


def test_xmpp_a_nul_before_a_declaration_is_not_called_restricted():
    stream = Stream()
    with pytest.raises(StreamError) as info:
        stream.parser.feed(b"\x00\x00" + HEADER)
    assert info.value.condition == "not-well-formed"


# -- IRC framing and messages ---------------------------------------------------------------


def irc_line_fits(line: bytes) -> bool:
    """The limits of the IRCv3 message-tags spec: 8191 bytes of tags, 512 for the rest."""
    if not line.startswith(b"@"):
        return len(line) + 2 <= 512
    tags, space, rest = line.partition(b" ")
    if not space:
        return len(line) <= 8191
    return len(tags) + 1 <= 8191 and len(rest.lstrip(b" ")) + 2 <= 512


@FUZZ
@given(
    st.lists(
        st.binary(max_size=700).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
        max_size=12,
    ),
    CUTS,
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
)
def test_irc_framing_gives_lines_or_too_long_whatever_the_segments(lines, cuts, end):
    framer = irc_framing.LineFramer(max_line=512, max_tags=8191)
    got = []
    # A lone CR at the very end waits for a possible LF: one more line flushes it.
    for piece in [*splits(b"".join(line + end for line in lines), cuts), b"PING\r\n"]:
        framer.feed(piece)
        got.extend(framer.lines())
        assert len(framer._buffer) <= 510 + 8191 + 1
    expected = []
    for line in lines:
        if line:
            expected.append(line if irc_line_fits(line) else irc_framing.TOO_LONG)
    assert got == [*expected, b"PING"]


@FUZZ
@given(st.binary(max_size=600).map(lambda b: b.translate(None, b"\x00\r\n")))
def test_irc_any_line_parses_or_raises_parse_error(raw):
    # As the framer gives lines: no CR or LF; lines with NUL are refused before parsing.
    text = decode(raw)
    assert isinstance(text, str)
    try:
        message = parse(text)
    except ParseError:
        return
    assert message.command and message.command == message.command.upper()
    assert len(message.params) <= 15
    # What parses serialises to one line without CR, LF or NUL inside.
    line = serialise(message)
    assert line.endswith(b"\r\n") and not {0, 10, 13} & set(line[:-2])


IRC_WORD = st.from_regex(r"\A[A-Za-z0-9#\[\]{}|^_\-.]{1,12}\Z")
IRC_TEXT = st.text(
    st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=60
)
IRC_MESSAGES = st.builds(
    Message,
    st.from_regex(r"\A([A-Z]{1,10}|[0-9]{3})\Z"),
    st.builds(lambda middles, last: (*middles, last), st.lists(IRC_WORD, max_size=5), IRC_TEXT),
    st.none() | st.from_regex(r"\A[A-Za-z][A-Za-z0-9]{0,8}![a-z]{1,8}@[a-z.]{1,12}\Z"),
    st.dictionaries(st.from_regex(r"\A\+?[a-z][a-z-]{0,8}\Z"), IRC_TEXT, max_size=3),
)


@FUZZ
@given(IRC_MESSAGES)
def test_irc_messages_round_trip_through_serialise_and_parse(message):
    line = serialise(message)
    assert parse(line[:-2].decode("utf-8")) == message


# -- the conversation state machine, fed over JSON-IM ---------------------------------------

SERVER_TYPES = {
    "welcome",
    "prompt",
    "queued",
    "connected",
    "message",
    "ack",
    "typing",
    "ended",
    "offer",
    "revoked",
    "error",
    "pong",
    "ping",
}
SERVER_CODES = {
    "bad_frame",
    "too_large",
    "unknown_type",
    "bad_request",
    "not_allowed",
    "auth_failed",
    "rate_limited",
    "unavailable",
}
HELLOS = {
    "customer": {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "customer",
        "client": {"name": "fuzz", "version": "1"},
        "features": ["typing"],
    },
    "agent": {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "agent",
        "client": {"name": "fuzz-desk", "version": "1"},
        "features": ["typing"],
    },
}


class Wire:
    """One JSON-IM connection over a StringTransport to the real core."""

    def __init__(self, factory, role: str, name: str | None) -> None:
        self.protocol = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.role, self.name = role, name
        self.frames: list[dict] = []
        self.offers: list[str] = []
        hello = dict(HELLOS[role])
        if name is not None:
            hello["auth"] = {"user": name, "password": "secret"}
        self.send(hello)

    def send(self, frame) -> None:
        data = frame if isinstance(frame, bytes) else json.dumps(frame).encode() + b"\n"
        if not self.transport.disconnecting:
            self.protocol.dataReceived(data)

    def read(self) -> list[dict]:
        data = self.transport.value()
        self.transport.clear()
        assert data == b"" or data.endswith(b"\n"), data[-200:]
        frames = [json.loads(line) for line in data.splitlines()]
        self.frames.extend(frames)
        self.offers.extend(f["offer"] for f in frames if f["type"] == "offer")
        return frames


class ConversationMachine(RuleBasedStateMachine):
    """Customers and agents send random frames; the core must never fail inside."""

    def __init__(self) -> None:
        super().__init__()
        self.harness = make_harness(agents=("anna", "bob"))
        self.factory = JsonImFactory(
            self.harness.gateway,
            JsonImSettings(messages_per_second=1000.0, message_burst=1000),
            server_name="imgateway",
            clock=self.harness.clock,
        )
        self.wires: list[Wire] = []
        self.ids: set[str] = {"o-nope", "c-nope", ""}

    def _learn(self) -> None:
        for wire in self.wires:
            for frame in wire.read():
                for key in ("offer", "conversation"):
                    if isinstance(frame.get(key), str):
                        self.ids.add(frame[key])

    @initialize()
    def an_agent_and_a_customer(self) -> None:
        self.agent_logs_in("anna")
        self.customer_arrives()

    @rule()
    def customer_arrives(self) -> None:
        if len(self.wires) < 12:
            self.wires.append(Wire(self.factory, "customer", None))

    @rule(name=st.sampled_from(["anna", "bob"]))
    def agent_logs_in(self, name) -> None:
        if len(self.wires) < 12:
            wire = Wire(self.factory, "agent", name)
            wire.send({"type": "presence", "status": "available"})
            self.wires.append(wire)

    @rule(
        index=st.integers(min_value=0, max_value=11),
        kind=st.sampled_from(
            [
                "message",
                "typing",
                "end",
                "accept",
                "reject",
                "transfer",
                "presence",
                "ping",
                "hello",
                "frob",
            ]
        ),
        pick=st.integers(min_value=0, max_value=10_000),
        text=st.sampled_from(["Dana", "billing", "tech"]) | st.text(max_size=20),
        garbage=st.none() | st.binary(max_size=40),
    )
    def someone_sends(self, index, kind, pick, text, garbage) -> None:
        if not self.wires:
            return
        wire = self.wires[index % len(self.wires)]
        self._learn()
        ids = sorted(self.ids)
        known = ids[pick % len(ids)]
        if garbage is not None:
            wire.send(garbage + b"\n")
            return
        frame = {
            "type": kind,
            "id": f"f{pick}",
            "text": text or "x",
            "offer": known,
            "conversation": known,
            "state": ["active", "paused", "bogus"][pick % 3],
            "status": ["available", "away", "offline", "x"][pick % 4],
            "to": [{"queue": "general"}, {"agent": "bob"}, {"agent": "anna"}, {}][pick % 4],
        }
        wire.send(frame)

    @rule(index=st.integers(min_value=0, max_value=11), answer=st.sampled_from(["Dana", "billing"]))
    def customer_answers(self, index, answer) -> None:
        customers = [w for w in self.wires if w.role == "customer"]
        if customers:
            customers[index % len(customers)].send({"type": "message", "text": answer})

    @rule(index=st.integers(min_value=0, max_value=11), accept=st.booleans())
    def agent_answers_an_offer(self, index, accept) -> None:
        self._learn()
        agents = [w for w in self.wires if w.role == "agent" and w.offers]
        if agents:
            agent = agents[index % len(agents)]
            kind = "accept" if accept else "reject"
            agent.send({"type": kind, "offer": agent.offers[-1]})

    @rule(index=st.integers(min_value=0, max_value=11))
    def someone_drops(self, index) -> None:
        if self.wires:
            wire = self.wires.pop(index % len(self.wires))
            wire.read()
            wire.protocol.connectionLost(None)

    @rule(seconds=st.sampled_from([0.1, 1.0, 5.0, 25.0]))
    def time_passes(self, seconds) -> None:
        self.harness.clock.advance(seconds)

    @invariant()
    def only_known_frames_and_no_internal_error(self) -> None:
        self._learn()
        for wire in self.wires:
            for frame in wire.frames:
                event(f"{wire.role} got {frame['type']}")
                assert frame["type"] in SERVER_TYPES, frame
                if frame["type"] == "error":
                    assert frame["code"] in SERVER_CODES, frame
            wire.frames.clear()

    def teardown(self) -> None:
        for wire in self.wires:
            wire.protocol.connectionLost(None)
        self.harness.clock.advance(1000)


TestConversationMachine = ConversationMachine.TestCase
TestConversationMachine.settings = settings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
