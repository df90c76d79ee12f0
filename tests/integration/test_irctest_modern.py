"""The conformance cases newer irctest releases have and the PyPI release (0.1.2, run by
test_irctest.py) lacks, written here after irctest's own: ``pingpong.PingPongTestCase``,
``utf8.Utf8TestCase`` and ``buffering.BufferingTestCase``. irctest's versions send
between two users; on this listener a customer writes to the service, so what arrives
is checked where the customer's words go: at the agent.
"""

from __future__ import annotations

import harness
import pytest
from irc_peers import RawIrc, irc_ports, write_config
from jsonim_client import hello_agent

PASSWORD = "anna-Secret-1"
LINE = 512
EMOJI = "\N{SMILING FACE WITH OPEN MOUTH}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("irctest-modern")
    config = write_config(
        root,
        listeners=["tcp:0:interface=127.0.0.1"],
        irc="lines_per_second = 1000.0\nline_burst = 1000\n",
    )
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(root / "cwd", config, "irctest-modern")
    try:
        yield gateway, irc_ports(gateway, 1)["tcp"]
    finally:
        gateway.stop()


@pytest.fixture
def talking(site):
    """A customer (raw lines) in conversation with a JSON-IM agent."""
    gateway, port = site
    agent = gateway.connect("agent")
    hello_agent(agent, "anna", PASSWORD)
    customer = RawIrc(port, name="nick1")
    customer.register("nick1")
    customer.send("PRIVMSG Support :hello", "PRIVMSG Support :Nick", "PRIVMSG Support :1")
    offer = agent.expect("offer")
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    customer.expect(r"You are now talking with Anna")
    yield customer, agent, offer["conversation"]
    agent.send({"type": "end", "conversation": offer["conversation"]})
    agent.close()
    customer.close()


class TestPingPong:
    """irctest ``pingpong.PingPongTestCase``."""

    def test_ping(self, site):
        client = RawIrc(site[1], name="foo")
        client.register("foo")
        client.send("PING abcdef")
        client.expect(r"^:irc\.itest PONG irc\.itest :?abcdef$")

    def test_ping_no_token(self, site):
        client = RawIrc(site[1], name="foo2")
        client.register("foo2")
        client.send("PING")
        client.expect(r"^:irc\.itest 409 foo2 :")

    def test_ping_empty_token(self, site):
        client = RawIrc(site[1], name="foo3")
        client.register("foo3")
        client.send("PING :")
        client.expect(r"^:irc\.itest PONG irc\.itest :$")


class TestUtf8:
    """irctest ``utf8.Utf8TestCase``: the listener does not claim UTF8ONLY; it reads
    invalid UTF-8 as Latin-1 and never sends invalid UTF-8 on."""

    def test_utf8_validation(self, talking):
        customer, agent, conversation = talking
        isupport = b" ".join(line for line in customer.lines if b" 005 " in line)
        assert b"UTF8ONLY" not in isupport
        customer.send(b"PRIVMSG Support :hi\xaa\r\n")
        got = agent.expect("message", conversation=conversation, **{"from": "customer"})
        assert got["text"] == "hi\u00aa"
        agent.send(
            {"type": "message", "conversation": conversation, "text": f"ok {EMOJI}", "id": "u"}
        )
        line = customer.expect(r"PRIVMSG nick1 :ok ").string
        assert line.endswith(f"ok {EMOJI}")


def _whole(client: RawIrc, line: str) -> None:
    client.send((line + "\r\n").encode())


def _char_per_char(client: RawIrc, line: str) -> None:
    for char in line + "\r\n":
        client.send(char.encode())


def _byte_per_byte(client: RawIrc, line: str) -> None:
    for byte in (line + "\r\n").encode():
        client.send(bytes([byte]))


class TestBuffering:
    """irctest ``buffering.BufferingTestCase``: lines reassembled however they arrive;
    a line over 512 bytes refused with 417 and nothing of it passed on."""

    @pytest.mark.parametrize("colon", ["", ":"], ids=["no colon", "colon"])
    @pytest.mark.parametrize(
        "sender", [_whole, _char_per_char, _byte_per_byte], ids=["whole", "char", "byte"]
    )
    def test_no_tags(self, talking, sender, colon):
        customer, agent, conversation = talking
        line = f"PRIVMSG Support {colon}"
        room = LINE - len(line) - len("\r\n")
        emoji = len(EMOJI.encode())
        payloads = [
            "a",
            EMOJI,
            "a" * room,
            "a" * (room - emoji) + EMOJI,
        ]
        if not colon:
            payloads = [p for p in payloads if " " not in p]
        for payload in payloads:
            sender(customer, line + payload)
            got = agent.expect("message", conversation=conversation, **{"from": "customer"})
            assert got["text"] == payload
        for payload in ("a" * (room + 1), "a" * (room - emoji + 1) + EMOJI):
            sender(customer, line + payload)
            customer.expect(r" 417 nick1 :Input line was too long")
        agent.sync()
        assert not [f for f in agent.pending() if f["type"] == "message"]
