"""A bad-input corpus for the direct XMPP client listener, over raw sockets (issue 9, item 1).

One gateway serves the module, its XMPP listener plain TCP on loopback (no STARTTLS
configured, so ANONYMOUS works without TLS). A healthy XMPP customer (ANONYMOUS, bound)
is in a conversation with a JSON-IM agent from the start. Each named case opens its
own stream, gets as far as the case says (nothing, the stream header, or a bound
ANONYMOUS session), sends its bytes and must get exactly the RFC 6120 stream error it
names followed by ``</stream:stream>`` and a close, or carry on (proved with a ping
IQ, or an ANONYMOUS login before authentication). After every case the healthy pair
exchanges a message each way within a bound.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import attrs
import harness
import pytest
from jsonim_client import JsonImClient, hello_agent

AGENT, PASSWORD = "hal", "hal-Secret-9"
MAX_STANZA = 16384
AUTH_TIMEOUT_S = 2
HEALTHY_BOUND_S = 2.0
CASE_TIMEOUT = 5.0
LISTENING = r"xmpp listener \S+ listening on 127\.0\.0\.1:(\d+)"
SUPPORT = "support@localhost"
STREAMS_NS = "urn:ietf:params:xml:ns:xmpp-streams"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)
STREAM_ERROR = re.compile(rb"<stream:error[^>]*><([a-z-]+) xmlns='" + STREAMS_NS.encode() + b"'")
LAUGHS = (
    b"<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    b"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
)
QUADRATIC = b"<!DOCTYPE q [<!ENTITY a '" + b"A" * 5000 + b"'>]>"


class RawXmpp:
    """One blocking XMPP stream: everything the gateway sent, and waits with deadlines."""

    def __init__(self, port: int, name: str) -> None:
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CASE_TIMEOUT)
        self.data = b""
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.data += chunk
        return True

    def expect(self, pattern: bytes, start: int = 0, timeout: float = CASE_TIMEOUT) -> re.Match:
        """The first match of ``pattern`` in what arrived from offset ``start`` on."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.data, start)
            if match:
                return match
            if self.eof or not self._read(deadline):
                raise AssertionError(
                    f"{self.name}: no /{pattern!r}/ within {timeout:g}s"
                    f"{' (closed)' if self.eof else ''}; got {self.data[start:][-600:]!r}"
                )

    def closed(self, timeout: float = CASE_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._read(deadline):
                return False
        return True

    def open_stream(self) -> None:
        start = len(self.data)
        self.send(HEADER)
        self.expect(rb"</stream:features>", start)

    def anonymous(self) -> str:
        """Open a stream, log in ANONYMOUS, bind; the bound JID."""
        self.open_stream()
        start = len(self.data)
        self.send(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>".encode())
        self.expect(rb"<success", start)
        self.open_stream()
        start = len(self.data)
        self.send(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
        )
        return self.expect(rb"<jid>([^<]+)</jid>", start).group(1).decode()

    def ping(self, pid: str) -> None:
        start = len(self.data)
        self.send(f"<iq type='get' id='{pid}'><ping xmlns='urn:xmpp:ping'/></iq>".encode())
        self.expect(rf"<iq [^>]*id='{pid}'".encode(), start)

    def close(self) -> None:
        self.sock.close()


def chat(to: str, body: bytes | str, extra: bytes = b"") -> bytes:
    if isinstance(body, str):
        body = body.encode()
    return (
        b"<message to='"
        + to.encode()
        + b"' type='chat'><body>"
        + body
        + b"</body>"
        + extra
        + (b"</message>")
    )


@attrs.frozen
class Case:
    """One hostile input and exactly what it must get back.

    ``stage``: ``raw`` (nothing sent first), ``header`` (stream open, features read) or
    ``bound`` (ANONYMOUS, resource bound). ``condition``: the one stream error that
    must come, then the close; ``None`` with ``closes``: closed without a stream
    error. ``replies``: patterns that must appear in the answer. Without ``closes`` the
    stream must still work afterwards.
    """

    name: str
    data: bytes | Callable[[Site], bytes]
    condition: str | None
    stage: str = "raw"
    closes: bool = True
    replies: tuple[bytes, ...] = ()
    per_byte: bool = False
    half_close: bool = False


@attrs.define
class Site:
    gateway: harness.Gateway
    port: int
    customer: RawXmpp
    customer_jid: str
    agent: JsonImClient
    conversation: str
    rounds: int = 0

    def check(self) -> None:
        """The XMPP customer and the JSON-IM agent: one message each way, in time."""
        self.rounds += 1
        n = self.rounds
        start = time.perf_counter()
        self.customer.send(chat(SUPPORT, f"still there? {n}"))
        got = self.agent.expect("message", text=f"still there? {n}")
        assert got["conversation"] == self.conversation, got
        mark = len(self.customer.data)
        aid = self.agent.new_id("a")
        self.agent.send(
            {"type": "message", "conversation": self.conversation, "text": f"yes {n}", "id": aid}
        )
        self.agent.expect("ack", id=aid)
        self.customer.expect(rf"<body>yes {n}</body>".encode(), mark)
        took = time.perf_counter() - start
        assert took < HEALTHY_BOUND_S, f"healthy exchange took {took:.3f}s"
        assert b"<stream:error" not in self.customer.data, self.customer.data[-400:]
        assert not self.customer.eof
        troubles = self.agent.frames_of("error") + self.agent.frames_of("ended")
        assert not troubles, f"the healthy agent was affected: {troubles}"


def many_names(count: int, per_stanza: int = 100) -> bytes:
    out = []
    for first in range(0, count, per_stanza):
        names = b"".join(b"<n%d/>" % i for i in range(first, first + per_stanza))
        out.append(b"<iq type='result' id='r%d'>" % first + names + b"</iq>")
    return b"".join(out)


CASES = [
    # -- DTDs, entities, processing instructions, comments --------------------------------
    Case(
        "billion-laughs-before-header", b"<?xml version='1.0'?>" + LAUGHS + HEADER, "restricted-xml"
    ),
    Case("billion-laughs-in-stream", LAUGHS, "restricted-xml", "header"),
    Case("quadratic-blowup-before-header", QUADRATIC + HEADER, "restricted-xml"),
    Case("quadratic-blowup-in-stanza", chat(SUPPORT, b"&a;" * 1000), "restricted-xml", "bound"),
    Case(
        "external-entity-file",
        b"<!DOCTYPE s [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>" + HEADER,
        "restricted-xml",
    ),
    Case(
        "external-parameter-entity",
        b"<!DOCTYPE s [<!ENTITY % p SYSTEM 'http://127.0.0.1:9/x.dtd'> %p;]>" + HEADER,
        "restricted-xml",
    ),
    Case(
        "external-dtd-subset",
        b"<!DOCTYPE stream SYSTEM 'http://127.0.0.1:9/x'>" + HEADER,
        "restricted-xml",
    ),
    Case("plain-doctype", b"<!DOCTYPE stream>" + HEADER, "restricted-xml"),
    Case("undefined-entity-reference", chat(SUPPORT, b"&xxe;"), "restricted-xml", "bound"),
    Case("entity-reference-in-attribute", b"<message to='&xxe;'/>", "restricted-xml", "bound"),
    Case(
        "processing-instruction-before-header",
        b"<?xml-stylesheet href='x'?>" + HEADER,
        "restricted-xml",
    ),
    Case("processing-instruction-in-stream", b"<?php echo 1; ?>", "restricted-xml", "header"),
    Case("processing-instruction-in-stanza", chat(SUPPORT, b"<?pi x?>"), "restricted-xml", "bound"),
    Case("xml-declaration-in-stream", b"<?xml version='1.0'?>", "restricted-xml", "bound"),
    Case("comment-before-header", b"<!-- hi -->" + HEADER, "restricted-xml"),
    Case("comment-in-stream", b"<!-- hi -->", "restricted-xml", "header"),
    Case("comment-in-stanza", chat(SUPPORT, b"<!-- hi -->"), "restricted-xml", "bound"),
    Case("element-declaration-in-stream", b"<!ELEMENT a ANY>", "restricted-xml", "bound"),
    # -- sizes and nesting ------------------------------------------------------------------
    Case("oversize-stanza", chat(SUPPORT, b"x" * (MAX_STANZA + 10)), "policy-violation", "bound"),
    Case(
        "oversize-unclosed-text",
        b"<message><body>" + b"x" * (4 * MAX_STANZA),
        "policy-violation",
        "bound",
    ),
    Case(
        "oversize-attribute-value",
        b"<message to='" + b"a" * (4 * MAX_STANZA),
        "policy-violation",
        "bound",
    ),
    Case("oversize-tag-name", b"<" + b"m" * (4 * MAX_STANZA), "policy-violation", "bound"),
    Case(
        "oversize-header",
        b"<stream:stream xmlns='jabber:client' a='" + b"h" * (4 * MAX_STANZA),
        "policy-violation",
    ),
    Case("nesting-33", b"<message>" + b"<a>" * 32, "policy-violation", "bound"),
    Case("nesting-5000-unclosed", b"<a>" * 5000, "policy-violation", "bound"),
    Case(
        "too-many-elements",
        b"<iq type='result' id='e'>" + b"<a/>" * 1001 + b"</iq>",
        "policy-violation",
        "bound",
    ),
    Case("too-many-distinct-names", many_names(2100), "policy-violation", "bound"),
    Case(
        "whitespace-keepalives-are-fine",
        b" " * (3 * MAX_STANZA) + b"\n\t\r\n",
        None,
        "bound",
        closes=False,
    ),
    # -- encodings and bytes ------------------------------------------------------------------
    Case(
        "invalid-utf8-in-header", HEADER.replace(b"localhost", b"local\xffhost"), "not-well-formed"
    ),
    Case("invalid-utf8-in-body", chat(SUPPORT, b"caf\xe9"), "not-well-formed", "bound"),
    Case("overlong-utf8", chat(SUPPORT, b"\xc0\xaf"), "not-well-formed", "bound"),
    Case("utf8-encoded-surrogate", chat(SUPPORT, b"\xed\xa0\x80"), "not-well-formed", "bound"),
    Case("nul-byte", chat(SUPPORT, b"a\x00b"), "not-well-formed", "bound"),
    Case("nul-before-header", b"\x00" + HEADER, "unsupported-encoding"),
    Case("nuls-before-header", b"\x00\x00" + HEADER, "not-well-formed"),
    Case("nul-character-reference", chat(SUPPORT, b"a&#0;b"), "not-well-formed", "bound"),
    Case("control-character", chat(SUPPORT, b"a\x01b"), "not-well-formed", "bound"),
    Case("surrogate-character-reference", chat(SUPPORT, b"&#xD800;"), "not-well-formed", "bound"),
    Case("utf16-stream", HEADER.decode().encode("utf-16"), "unsupported-encoding"),
    Case(
        "utf16-big-endian-bom",
        b"\xfe\xff" + HEADER.decode().encode("utf-16-be"),
        "unsupported-encoding",
    ),
    Case("utf16-without-bom", HEADER.decode().encode("utf-16-le"), "unsupported-encoding"),
    Case("utf16-be-without-bom", HEADER.decode().encode("utf-16-be"), "unsupported-encoding"),
    Case(
        "tls-hello-on-plain-port", bytes.fromhex("160301020001") + b"\x00" * 40, "not-well-formed"
    ),
    Case("http-request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not-well-formed"),
    # -- malformed XML and streams -----------------------------------------------------------
    Case("mismatched-tags", b"<message></iq>", "not-well-formed", "bound"),
    Case("duplicate-attribute", b"<message to='a' to='b'/>", "not-well-formed", "bound"),
    Case("unbound-prefix", b"<x:message/>", "not-well-formed", "bound"),
    Case("text-between-stanzas", b"hello there", "bad-format", "bound"),
    Case("not-a-stream", b"<?xml version='1.0'?><html>", "bad-format"),
    Case(
        "stream-in-wrong-namespace",
        HEADER.replace(b"http://etherx.jabber.org/streams", b"urn:wrong"),
        "invalid-namespace",
    ),
    Case(
        "server-namespace", HEADER.replace(b"jabber:client", b"jabber:server"), "invalid-namespace"
    ),
    Case("unknown-host", HEADER.replace(b"to='localhost'", b"to='evil.example'"), "host-unknown"),
    Case("no-version", HEADER.replace(b"' version='1.0'>", b"'>"), "unsupported-version"),
    Case("unclosed-stream-then-fin", b"", None, "header", half_close=True),
    Case("unclosed-stanza-then-fin", b"<message><body>half", None, "bound", half_close=True),
    Case("header-then-silence", b"", "connection-timeout", "header"),
    Case("client-closes-stream", b"</stream:stream>", None, "bound"),
    Case(
        "client-stream-error",
        b"<stream:error><conflict xmlns='" + STREAMS_NS.encode() + b"'/></stream:error>",
        None,
        "bound",
    ),
    Case(
        "header-split-at-every-byte",
        HEADER,
        None,
        closes=False,
        replies=(b"</stream:features>",),
        per_byte=True,
    ),
    # -- out of order, before and after authentication -------------------------------------
    Case("message-before-auth", chat(SUPPORT, "hi"), "not-authorized", "header"),
    Case(
        "starttls-not-offered",
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "policy-violation",
        "header",
    ),
    Case(
        "plain-without-tls",
        f"<auth xmlns='{SASL}' mechanism='PLAIN'>AGEAYg==</auth>".encode(),
        None,
        "header",
        closes=False,
        replies=(b"<encryption-required/>",),
    ),
    Case(
        "unknown-mechanism",
        f"<auth xmlns='{SASL}' mechanism='X-EVIL'/>".encode(),
        None,
        "header",
        closes=False,
        replies=(b"<invalid-mechanism/>",),
    ),
    Case(
        "scram-bad-base64",
        f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-1'>!!!</auth>".encode(),
        None,
        "header",
        closes=False,
        replies=(b"<incorrect-encoding/>",),
    ),
    Case(
        "three-failed-auths",
        f"<auth xmlns='{SASL}' mechanism='X-EVIL'/>".encode() * 3,
        "policy-violation",
        "header",
    ),
    Case("stanza-after-auth-before-bind", chat(SUPPORT, "hi"), "not-authorized", "bound-unbound"),
    Case("unsupported-stanza", b"<foo/>", "unsupported-stanza-type", "bound"),
    Case(
        "stanza-in-other-namespace",
        b"<message xmlns='jabber:server'/>",
        "unsupported-stanza-type",
        "bound",
    ),
    Case(
        "stanza-flood",
        b"".join(b"<iq type='result' id='f%d'/>" % i for i in range(300)),
        "policy-violation",
        "bound",
    ),
    Case(
        "malformed-jid",
        chat("@@@/", "x"),
        None,
        "bound",
        closes=False,
        replies=(b"<jid-malformed",),
    ),
    Case(
        "remote-domain",
        chat("someone@evil.example", "x"),
        None,
        "bound",
        closes=False,
        replies=(b"<remote-server-not-found",),
    ),
    Case(
        "unknown-iq-payload",
        b"<iq type='get' id='u1'><query xmlns='urn:evil'/></iq>",
        None,
        "bound",
        closes=False,
        replies=(b"<service-unavailable",),
    ),
    Case(
        "message-to-unknown-local",
        chat("nobody@localhost", "x"),
        None,
        "bound",
        closes=False,
        replies=(b"<item-not-found",),
    ),
    Case(
        "escaped-markup-is-fine",
        chat("nobody@localhost", b"&lt;b&gt; &amp; &#x1F600; <![CDATA[<x>]]>"),
        None,
        "bound",
        closes=False,
        replies=(b"<item-not-found",),
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus-xmpp")
    config = harness.write_config(root)
    text = config.read_text().replace(
        "[listeners]\n", '[listeners]\nxmpp = ["tcp:0:interface=127.0.0.1"]\n', 1
    )
    text += (
        f'\n[xmpp]\nclient_domain = "localhost"\nmax_stanza = {MAX_STANZA}\n'
        f"auth_timeout_s = {AUTH_TIMEOUT_S}\nmessages_per_second = 100.0\nmessage_burst = 200\n"
    )
    config.write_text(text)
    harness.add_agent(config, AGENT, PASSWORD, "Hal")
    gateway = harness.start_gateway(root / "cwd", config, "corpus-xmpp")
    port = int(gateway.wait_for_log(LISTENING, 10).group(1))
    agent = gateway.connect("healthy agent")
    hello_agent(agent, AGENT, PASSWORD)
    customer = RawXmpp(port, "healthy customer")
    jid = customer.anonymous()
    for said, asked in (
        ("hello", rb"What is your name\?"),
        ("Hana", rb"What can we help you with\?"),
        ("billing", None),
    ):
        start = len(customer.data)
        customer.send(chat(SUPPORT, said))
        if asked:
            customer.expect(asked, start)
    offer = agent.expect("offer")
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    customer.expect(rb"chatting with Hal")
    yield Site(gateway, port, customer, jid, agent, offer["conversation"])
    customer.close()
    agent.close()
    gateway.stop()


def test_corpus_has_enough_distinct_cases():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    assert len(CASES) >= 50, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_stream_gets_its_own_error_and_harms_no_one(site, case):
    stream = RawXmpp(site.port, case.name)
    try:
        if case.stage == "header":
            stream.open_stream()
        elif case.stage == "bound":
            stream.anonymous()
        elif case.stage == "bound-unbound":  # authenticated, no resource bound yet
            stream.open_stream()
            stream.send(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>".encode())
            stream.expect(rb"<success")
            stream.open_stream()
        mark = len(stream.data)
        data = case.data(site) if callable(case.data) else case.data
        if case.per_byte:
            stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in data:
                stream.send(bytes([byte]))
        elif data:
            stream.send(data)
        if case.half_close:
            stream.sock.shutdown(socket.SHUT_WR)
        for pattern in case.replies:
            if not pattern.endswith(b"$"):
                stream.expect(pattern, mark)
        if case.closes:
            timeout = AUTH_TIMEOUT_S + CASE_TIMEOUT
            assert stream.closed(timeout), f"{case.name}: not closed; got {stream.data[mark:]!r}"
            answer = stream.data[mark:]
            conditions = [c.decode() for c in STREAM_ERROR.findall(answer)]
            wanted = [case.condition] if case.condition else []
            assert conditions == wanted, f"{case.name}: {answer[-600:]!r}"
            if case.condition or (case.stage != "raw" and not case.half_close):
                assert answer.endswith(b"</stream:stream>"), answer[-300:]
        else:
            if case.stage == "bound":
                stream.ping("alive")
            else:
                start = len(stream.data)
                stream.send(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>".encode())
                stream.expect(rb"<success", start)
            assert b"<stream:error" not in stream.data, stream.data[-600:]
            assert not stream.eof
    finally:
        stream.close()
    site.check()
