"""A bad-input corpus for IRC, over real sockets (issue 9, item 1).

One gateway serves the module: a direct IRC listener, and bot mode connected to a fake
upstream network run by this module (so that it can send what no real server would).
A healthy IRC customer on the listener is in a conversation with a JSON-IM agent from
the start.

Each ``client`` case opens its own connection to the listener (registered first if
the case says so), sends its bytes and must get exactly the lines it lists, in order,
then be closed with its ERROR line, or carry on (proved with PING/PONG). Each
``upstream`` case is a line the fake network sends to the bot; the bot must still
answer a PING on the same connection (it did not drop and reconnect). After every
case the healthy pair exchanges a message each way within a bound.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable

import attrs
import harness
import pytest
from irc_peers import RawIrc, irc_ports, write_config
from jsonim_client import JsonImClient, hello_agent, set_presence
from xmpp_peers import SlixClient

AGENT, PASSWORD = "hal", "hal-Secret-9"
XMPP_AGENT, XMPP_PASSWORD = "xena", "xena-Secret-3"
XMPP_LISTENING = r"xmpp listener \S+ listening on 127\.0\.0\.1:(\d+)"
# Nicks a network may allow and the gateway's own listener would not: markup, quotes,
# a right-to-left override, XML's CDATA end. Relayed inside a /me to the agents.
ODD_NICKS = ('<b>&amp;"\u202e', "]]>&lt;'x[]\\`^{|}")
HEALTHY_BOUND_S = 2.0
CASE_TIMEOUT = 5.0
REGISTRATION_TIMEOUT_S = 2
S = r"^:irc\.itest "  # the start of a numeric reply
SUPPORT_JID = "support@localhost"


class FakeNetwork:
    """An upstream IRC server for the bot: registers it, then sends what the test says."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.lines: list[bytes] = []
        self._changed = threading.Condition()
        self.sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="fake-irc", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._changed:
                self.connections += 1
                self.sock = sock
                self._changed.notify_all()
            buffer = b""
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\r\n")
                for line in lines:
                    self._answer(sock, line)
                    with self._changed:
                        self.lines.append(line)
                        self._changed.notify_all()

    def _answer(self, sock: socket.socket, line: bytes) -> None:
        replies = {
            b"CAP LS": b":fake CAP * LS :\r\n",
            b"USER ": b":fake 001 Support :Welcome\r\n:fake 376 Support :End of MOTD\r\n",
            b"JOIN ": b":Support!support@bot.host JOIN #support\r\n",
        }
        for start, reply in replies.items():
            if line.startswith(start):
                sock.sendall(reply)

    def send(self, data: bytes) -> None:
        assert self.sock is not None, "the bot has not connected"
        self.sock.sendall(data)

    def wait_line(self, pattern: bytes, start: int = 0, timeout: float = CASE_TIMEOUT) -> int:
        """The index of the first line from the bot (from ``start`` on) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            index = start
            while True:
                while index < len(self.lines):
                    if regex.search(self.lines[index]):
                        return index
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"the bot sent no /{pattern!r}/ within {timeout:g}s; "
                        f"last lines: {self.lines[-20:]}"
                    )
                self._changed.wait(remaining)

    def close(self) -> None:
        self.listener.close()
        if self.sock is not None:
            self.sock.close()


@attrs.frozen
class Case:
    """One hostile input and exactly what it must get back.

    ``kind``: ``client`` (a connection to the listener; ``registered`` says whether
    it registers first) or ``upstream`` (a line from the network to the bot).
    ``replies``: regexes the connection's lines must match, in order. ``closes``:
    then an ERROR line (the last of ``replies``) and the close.
    """

    name: str
    data: bytes | Callable[[Site], bytes]
    replies: tuple[str, ...] = ()
    closes: bool = False
    registered: bool = True
    kind: str = "client"
    per_byte: bool = False
    bot_replies: tuple[bytes, ...] = ()


@attrs.define
class Site:
    gateway: harness.Gateway
    port: int
    network: FakeNetwork
    customer: RawIrc
    agent: JsonImClient
    conversation: str
    rounds: int = 0

    def check(self) -> None:
        """The IRC customer and the JSON-IM agent: one message each way, in time."""
        self.rounds += 1
        n = self.rounds
        start = time.perf_counter()
        self.customer.send(f"PRIVMSG Support :still there? {n}")
        got = self.agent.expect("message", text=f"still there? {n}")
        assert got["conversation"] == self.conversation, got
        aid = self.agent.new_id("a")
        self.agent.send(
            {"type": "message", "conversation": self.conversation, "text": f"yes {n}", "id": aid}
        )
        self.agent.expect("ack", id=aid)
        self.customer.expect(rf"^:Hal!\S+ PRIVMSG goodone :yes {n}$")
        took = time.perf_counter() - start
        assert took < HEALTHY_BOUND_S, f"healthy exchange took {took:.3f}s"
        assert not self.customer.eof
        assert not [line for line in self.customer.lines if line.startswith(b"ERROR")]
        ended = [f for f in self.agent.frames_of("ended") if f["conversation"] == self.conversation]
        troubles = self.agent.frames_of("error") + ended
        assert not troubles, f"the healthy agent was affected: {troubles}"


def closing(nick: str, reason: str) -> str:
    return rf"^ERROR :Closing Link: {re.escape(nick)} \({re.escape(reason)}\)$"


def ctcp(text: str) -> str:
    return "\x01" + text + "\x01"


CLIENT_CASES = [
    # -- line length and framing ---------------------------------------------------------
    Case(
        "overlong-privmsg",
        b"PRIVMSG Support :" + b"x" * 5000 + b"\r\n",
        (S + r"417 \S+ :Input line was too long$",),
    ),
    Case("line-of-512-is-fine", b"PING :" + b"p" * 504 + b"\r\n", (r"PONG irc\.itest :p{504}$",)),
    Case("line-of-513", b"PING :" + b"p" * 505 + b"\r\n", (S + r"417 ",)),
    Case(
        "endless-line-then-ping",
        b"x" * 20000 + b"\r\nPING :after\r\n",
        (S + r"417 ", r"PONG irc\.itest :after$"),
    ),
    Case("overlong-tags", b"@" + b"t" * 9000 + b" PING :t\r\n", (S + r"417 ",)),
    Case(
        "tags-within-limit",
        b"@a=" + b"v" * 4000 + b" PING :tagged\r\n",
        (r"PONG irc\.itest :tagged$",),
    ),
    Case("split-at-every-byte", b"PING :split\r\n", (r"PONG irc\.itest :split$",), per_byte=True),
    Case(
        "registration-split-at-every-byte",
        b"NICK bytewise\r\nUSER b 0 * :B\r\n",
        (S + r"001 bytewise ",),
        registered=False,
        per_byte=True,
    ),
    Case("lf-only", b"PING :lf\n", (r"PONG irc\.itest :lf$",)),
    Case("cr-only", b"PING :cr\rPING :cr2\r", (r"PONG irc\.itest :cr$",)),
    Case(
        "empty-lines",
        b"\r\n" * 200 + b"\n\r" * 200 + b"PING :empty\r\n",
        (r"PONG irc\.itest :empty$",),
    ),
    Case(
        "ten-lines-one-write",
        b"".join(b"PING :m%d\r\n" % i for i in range(10)),
        tuple(rf"PONG irc\.itest :m{i}$" for i in range(10)),
    ),
    # -- NUL and encodings ------------------------------------------------------------------
    Case(
        "nul-in-privmsg",
        b"PRIVMSG Support :a\x00b\r\n",
        (closing("k-nul-in-privmsg", "NUL byte in line"),),
        closes=True,
    ),
    Case(
        "nul-before-registration",
        b"NICK a\x00b\r\n",
        (closing("*", "NUL byte in line"),),
        closes=True,
        registered=False,
    ),
    Case(
        "nul-in-tags",
        b"@a=\x00 PING :x\r\n",
        (closing("k-nul-in-tags", "NUL byte in line"),),
        closes=True,
    ),
    Case("invalid-utf8-ping", b"PING :\xff\xfe\r\n", (r"PONG irc\.itest :\u00ff\u00fe$",)),
    Case("invalid-utf8-nick", b"NICK \xff\xfe\r\n", (S + r"432 \S+ \S+ :Erroneous nickname$",)),
    Case(
        "latin1-realname",
        b"NICK latin\r\nUSER latin 0 * :Ren\xe9e\r\n",
        (S + r"001 latin ",),
        registered=False,
    ),
    Case("overlong-utf8-text", b"PING :\xc0\xaf\r\n", (r"PONG irc\.itest :\u00c0\u00af$",)),
    Case(
        "encoded-surrogate-text",
        b"PING :\xed\xa0\x80\r\n",
        (r"PONG irc\.itest :\u00ed\u00a0\u0080$",),
    ),
    # -- CTCP --------------------------------------------------------------------------------
    Case(
        "ctcp-version",
        ("PRIVMSG Support :" + ctcp("VERSION") + "\r\n").encode(),
        (r"^:Support!\S+ NOTICE k-ctcp-version :\x01VERSION \S+",),
    ),
    Case(
        "ctcp-ping",
        ("PRIVMSG Support :" + ctcp("PING 12345") + "\r\n").encode(),
        (r"^:Support!\S+ NOTICE k-ctcp-ping :\x01PING 12345\x01$",),
    ),
    Case(
        "ctcp-ping-long-argument",
        ("PRIVMSG Support :" + ctcp("PING " + "z" * 300) + "\r\n").encode(),
        (r"^:Support!\S+ NOTICE \S+ :\x01PING z{64}\x01$",),
    ),
    Case("ctcp-unknown-ignored", ("PRIVMSG Support :" + ctcp("FROB x") + "\r\n").encode()),
    Case(
        "ctcp-dcc-ignored",
        ("PRIVMSG Support :" + ctcp("DCC SEND x 2130706433 1 1") + "\r\n").encode(),
    ),
    Case("ctcp-empty", ("PRIVMSG Support :" + ctcp("") + "\r\n").encode()),
    Case(
        "ctcp-to-nobody",
        ("PRIVMSG nobody :" + ctcp("VERSION") + "\r\n").encode(),
        (S + r"401 \S+ nobody :No such nick/channel$",),
    ),
    Case(
        "ctcp-flood",
        ("PRIVMSG Support :" + ctcp("PING 1") + "\r\n").encode() * 200,
        (closing("k-ctcp-flood", "Excess Flood"),),
        closes=True,
    ),
    # -- unknown and malformed commands ----------------------------------------------------
    Case("unknown-command", b"BOGUS a b\r\n", (S + r"421 \S+ BOGUS :Unknown command$",)),
    Case(
        "unknown-command-before-registration",
        b"BOGUS\r\n",
        (S + r"451 \* :You have not registered$",),
        registered=False,
    ),
    Case("long-command-name", b"Z" * 400 + b"\r\n", (S + r"421 \S+ Z{32} :Unknown command$",)),
    Case("numeric-from-client", b"001 x :hi\r\n", (S + r"421 \S+ 001 :Unknown command$",)),
    Case("prefix-only", b":someone\r\nPING :p\r\n", (r"PONG irc\.itest :p$",)),
    Case("spaces-only", b"      \r\nPING :s\r\n", (r"PONG irc\.itest :s$",)),
    Case("tags-only", b"@a=b;c\r\nPING :t\r\n", (r"PONG irc\.itest :t$",)),
    Case("tag-escapes", b"@a=\\:\\s\\\\\\;b=\\ PING :esc\r\n", (r"PONG irc\.itest :esc$",)),
    Case(
        "twenty-params",
        b"PING " + b" ".join(b"p%d" % i for i in range(20)) + b"\r\n",
        (r"PONG irc\.itest :p0$",),
    ),
    Case("privmsg-no-target", b"PRIVMSG\r\n", (S + r"411 \S+ :No recipient given \(PRIVMSG\)$",)),
    Case("privmsg-no-text", b"PRIVMSG Support\r\n", (S + r"412 \S+ :No text to send$",)),
    Case(
        "privmsg-nobody", b"PRIVMSG nobody :x\r\n", (S + r"401 \S+ nobody :No such nick/channel$",)
    ),
    Case("nick-missing", b"NICK\r\n", (S + r"431 \S+ :No nickname given$",)),
    Case("nick-invalid", b"NICK -bad\r\n", (S + r"432 \S+ -bad :Erroneous nickname$",)),
    Case(
        "nick-too-long",
        b"NICK " + b"n" * 40 + b"\r\n",
        (S + r"432 \S+ n{30} :Erroneous nickname$",),
    ),
    Case("nick-reserved-alias", b"NICK c-1234\r\n", (S + r"432 \S+ c-1234 :Erroneous nickname$",)),
    Case(
        "nick-of-the-service",
        b"NICK Support\r\n",
        (S + r"433 \S+ Support :Nickname is already in use$",),
    ),
    Case(
        "nick-of-another-customer",
        b"NICK goodone\r\n",
        (S + r"433 \S+ goodone :Nickname is already in use$",),
    ),
    Case(
        "user-too-few-params",
        b"NICK fewer\r\nUSER x\r\n",
        (S + r"461 fewer USER :Not enough parameters$",),
        registered=False,
    ),
    Case("user-again", b"USER a 0 * :again\r\n", (S + r"462 \S+ :You may not reregister$",)),
    Case("pass-again", b"PASS secret\r\n", (S + r"462 \S+ :You may not reregister$",)),
    Case("cap-garbage", b"CAP FROB\r\n", (S + r"410 \S+ FROB :Invalid CAP command$",)),
    # -- reaching others ----------------------------------------------------------------------
    Case(
        "message-another-customer",
        b"PRIVMSG goodone :psst\r\n",
        (S + r"401 \S+ goodone :No such nick/channel$",),
    ),
    Case(
        "message-the-healthy-agent",
        b"PRIVMSG Hal :psst\r\n",
        (S + r"401 \S+ Hal :No such nick/channel$",),
    ),
    Case(
        "message-agents-channel",
        b"PRIVMSG #agents :psst\r\n",
        (S + r"404 \S+ #agents :Cannot send to channel$",),
    ),
    # -- closing ---------------------------------------------------------------------------------
    Case(
        "agent-password-without-tls",
        b"PASS hal:wrong\r\nNICK badpass\r\nUSER hal 0 * :x\r\n",
        # One clear answer: not "Password incorrect" (the password may be right).
        (closing("badpass", "Agents log in over TLS only: connect to the TLS port"),),
        closes=True,
        registered=False,
    ),
    Case(
        "registration-timeout",
        b"NICK slow\r\n",
        (closing("slow", "Registration timed out"),),
        closes=True,
        registered=False,
    ),
    Case(
        "quit-with-long-reason",
        b"QUIT :" + b"q" * 400 + b"\r\n",
        (r"^ERROR :Closing Link: ",),
        closes=True,
    ),
    Case(
        "privmsg-flood",
        b"".join(b"PRIVMSG nobody :%d\r\n" % i for i in range(200)),
        (closing("k-privmsg-flood", "Excess Flood"),),
        closes=True,
    ),
    Case(
        "overlong-flood",
        (b"x" * 600 + b"\r\n") * 100,
        (closing("k-overlong-flood", "Excess Flood"),),
        closes=True,
    ),
]

UPSTREAM_CASES = [
    Case(f"upstream-{name}", data, kind="upstream", bot_replies=bot_replies)
    for name, data, bot_replies in [
        ("colon-only", b":\r\n", ()),
        ("prefix-only", b":fake\r\n", ()),
        ("numeric-without-params", b":fake 001\r\n:fake 433\r\n:fake 303\r\n", ()),
        ("privmsg-without-params", b":x!u@h PRIVMSG\r\n:x!u@h PRIVMSG Support\r\n", ()),
        ("privmsg-without-prefix", b"PRIVMSG Support :who am I\r\n", ()),
        ("empty-prefix", b": PRIVMSG Support :hello\r\n", ()),
        ("nul-in-line", b":nul!u@h PRIVMSG Support :a\x00b\r\n", ()),
        ("overlong-line", b":long!u@h PRIVMSG Support :" + b"y" * 9000 + b"\r\n", ()),
        ("invalid-utf8", b":bytes!u@h PRIVMSG Support :caf\xe9 \xff\r\n", (rb"^PRIVMSG bytes :",)),
        ("tag-garbage", b"@;;;===;\\ :tags!u@h PRIVMSG Support :hi\r\n", (rb"^PRIVMSG tags :",)),
        (
            "twenty-params",
            b":fake 005 Support " + b" ".join(b"A%d=1" % i for i in range(20)) + b"\r\n",
            (),
        ),
        ("join-without-channel", b":j!u@h JOIN\r\n:j!u@h PART\r\n:j!u@h KICK\r\n", ()),
        (
            "nick-and-quit-of-strangers",
            b":ghost!u@h NICK\r\n:ghost!u@h NICK :spook\r\n:ghost!u@h QUIT\r\n",
            (),
        ),
        ("ison-reply-garbage", b":fake 303 Support :" + b"? " * 300 + b"\r\n", ()),
        ("error-without-text", b"ERROR\r\n", ()),
        ("ctcp-flood-from-a-user", (b":flood!u@h PRIVMSG Support :\x01VERSION\x01\r\n") * 50, ()),
        (
            "odd-nick-customer",
            b":[]\\`^{|}!u@h PRIVMSG Support :hello\r\n",
            (rb"^PRIVMSG \[\]\\`\^\{\|\} :",),
        ),
        (
            "markup-nick-customer",
            b":<b>&amp;\xe2\x80\xae!u@h PRIVMSG Support :hello\r\n",
            (rb"^PRIVMSG <b>&amp;\xe2\x80\xae :",),
        ),
        ("numeric-nick", b":123!u@h PRIVMSG Support :hello\r\n", (rb"^PRIVMSG 123 :",)),
    ]
]

CASES = CLIENT_CASES + UPSTREAM_CASES


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus-irc")
    network = FakeNetwork()
    bot = f"""registration_timeout_s = {REGISTRATION_TIMEOUT_S}
lines_per_second = 20.0
line_burst = 40
max_lagged_lines = 20

[irc.bot]
enabled = true
host = "127.0.0.1"
port = {network.port}
tls = false
channel = "#support"
agent_identity = "nick"
lines_per_second = 200.0
line_burst = 400
reconnect_initial_s = 0.2
reconnect_max_s = 1
"""
    config = write_config(root, listeners=["tcp:0:interface=127.0.0.1"], irc=bot)
    text = config.read_text().replace(
        "[listeners]\n", '[listeners]\nxmpp = ["tcp:0:interface=127.0.0.1"]\n', 1
    )
    config.write_text(text + '\n[xmpp]\nclient_domain = "localhost"\n')
    harness.add_agent(config, AGENT, PASSWORD, "Hal")
    harness.add_agent(config, XMPP_AGENT, XMPP_PASSWORD, "Xena")
    gateway = harness.start_gateway(root / "cwd", config, "corpus-irc")
    port = irc_ports(gateway, 1)["tcp"]
    gateway.xmpp_port = int(gateway.wait_for_log(XMPP_LISTENING, 10).group(1))
    network.wait_line(rb"^JOIN #support", timeout=harness.START_TIMEOUT)
    agent = gateway.connect("healthy agent")
    hello_agent(agent, AGENT, PASSWORD)
    customer = RawIrc(port, name="healthy customer")
    customer.register("goodone")
    customer.send("PRIVMSG Support :hello")
    customer.expect("What is your name")
    customer.send("PRIVMSG Support :Good", "PRIVMSG Support :billing")
    offer = agent.expect("offer")
    agent.send({"type": "accept", "offer": offer["offer"]})
    conversation = agent.expect("connected")["conversation"]
    customer.expect("You are now talking with Hal")
    yield Site(gateway, port, network, customer, agent, conversation)
    customer.close()
    agent.close()
    gateway.stop()
    network.close()


def test_corpus_has_enough_distinct_cases():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    assert len(CASES) >= 50, len(CASES)


def run_client_case(site: Site, case: Case) -> None:
    client = RawIrc(site.port, name=case.name)
    try:
        if case.registered:
            client.register(f"k-{case.name}"[:30])
        data = case.data(site) if callable(case.data) else case.data
        if case.per_byte:
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in data:
                client.send(bytes([byte]))
        else:
            client.send(data)
        start = client._taken
        for pattern in case.replies:
            client.expect(pattern, REGISTRATION_TIMEOUT_S + CASE_TIMEOUT)
        if case.closes:
            assert client.closed(CASE_TIMEOUT), f"{case.name}: not closed"
        else:
            client.send("PING :alive")
            client.expect(r"PONG irc\.itest :alive$")
            assert not client.eof
        got = [line.decode("utf-8", "replace") for line in client.lines[start:]]
        errors = [line for line in got if line.startswith("ERROR")]
        assert len(errors) == (1 if case.closes else 0), got
    finally:
        client.close()


def run_upstream_case(site: Site, case: Case) -> None:
    network = site.network
    mark = len(network.lines)
    network.send(case.data(site) if callable(case.data) else case.data)
    for pattern in case.bot_replies:
        network.wait_line(pattern, mark)
    token = f"alive-{site.rounds}".encode()
    network.send(b"PING :" + token + b"\r\n")
    network.wait_line(rb"^PONG :?" + token + rb"$", mark)
    assert network.connections == 1, "the bot dropped the connection and reconnected"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_line_gets_its_own_answer_and_harms_no_one(site, case):
    if case.kind == "client":
        run_client_case(site, case)
    else:
        run_upstream_case(site, case)
    site.check()


def upstream_customer_to_offer(network: FakeNetwork, nick: str) -> None:
    """A customer with ``nick`` on the network answers the interview through the bot."""
    raw = nick.encode()
    mask = b":" + raw + b"!u@h PRIVMSG Support :"
    to_nick = rb"^PRIVMSG " + re.escape(raw) + rb" :"
    mark = len(network.lines)
    network.send(mask + b"hello\r\n")
    network.wait_line(to_nick + rb"What is your name", mark)
    network.send(mask + b"Odd\r\n")
    network.wait_line(to_nick + rb"What can we help you with", mark)
    network.send(mask + b"billing\r\n")


def test_odd_nicks_relayed_to_jsonim_and_xmpp_agents_exactly(site):
    network = site.network
    jsonim_nick, xmpp_nick = ODD_NICKS
    action = b"\x01ACTION waves\x01\r\n"

    # To the JSON-IM agent (the only one available): its /me arrives as exact text.
    upstream_customer_to_offer(network, jsonim_nick)
    offer = site.agent.expect("offer")
    assert offer["customer"]["protocol"] == "irc", offer
    assert jsonim_nick not in offer["customer"]["alias"], offer
    site.agent.send({"type": "accept", "offer": offer["offer"]})
    conversation = site.agent.expect("connected", conversation=offer["conversation"])
    network.send(b":" + jsonim_nick.encode() + b"!u@h PRIVMSG Support :" + action)
    got = site.agent.expect("message", conversation=conversation["conversation"])
    assert got["text"] == f"* {jsonim_nick} waves", got
    site.agent.send({"type": "end", "conversation": conversation["conversation"]})
    site.agent.expect("ended", conversation=conversation["conversation"])

    # To an XMPP agent (the JSON-IM one is away): well-formed XML, the same text.
    set_presence(site.agent, "away")
    mark = len(site.gateway.lines)
    xena = SlixClient(
        f"{XMPP_AGENT}@localhost/desk",
        XMPP_PASSWORD,
        site.gateway.xmpp_port,
        mechanism="SCRAM-SHA-256",
    )
    try:
        xena.presence(SUPPORT_JID)
        site.gateway.wait_for_log(rf"agent {XMPP_AGENT} is available", 10, start=mark)
        upstream_customer_to_offer(network, xmpp_nick)
        xena.expect("New chat offer", SUPPORT_JID)
        xena.send(SUPPORT_JID, "/accept")
        hello = xena.expect("You are now chatting with customer")
        alias = str(hello["from"]).partition("/")[0]
        network.send(b":" + xmpp_nick.encode() + b"!u@h PRIVMSG Support :" + action)
        got = xena.expect("waves", alias)
        assert got["body"] == f"* {xmpp_nick} waves", got["body"]
        assert b"<stream:error" not in bytes(xena.raw)
    finally:
        xena.stop()
        set_presence(site.agent, "available")
    site.check()
