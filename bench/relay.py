"""Relay throughput and latency: N customer-agent pairs through the gateway, beside peers.

Run from a checkout (``bench/run`` builds the venv; see bench/README.md)::

    bench/run relay.py --quick      # about three minutes
    bench/run relay.py              # more pairs, more and longer repeats

Cases, each on loopback in this one run (the load generator is one asyncio process,
raw sockets, never inside the measured server):

- ``jsonim``: customers and agents on the gateway's JSON-IM listener.
- ``irc``: customers and agents on the gateway's direct IRC listener, beside
  ``ngircd``: the same generator, user-to-user PRIVMSG between pairs of users on ngircd
  (users made IRC operators with user mode +F, ngircd's relaxed flood protection, as
  the gateway's own rate limits are lifted for the bench).
- ``xmpp``: customers (SASL ANONYMOUS) and agents (SCRAM-SHA-1) on the gateway's direct
  XMPP listener, beside ``prosody``: user-to-user chat messages between pairs of
  anonymous c2s users (plain TCP on loopback, no TLS on either side).
- ``component``: customers and agents are Prosody c2s users; the gateway is attached
  to Prosody as the XEP-0114 component ``support.localhost``; beside ``prosody`` again.
- ``web``: customers and agents speak JSON-IM over WebSocket on the web listener
  (``/ws``, one frame per text message), as the widget and the agent console do;
  beside the ``jsonim`` case (the same session over TCP lines) when both run.
- ``ircbot``: bot mode: customers and agents are users of an ngircd of its own that the
  gateway joins as the bot ``Support``; beside ``ngircd`` again.

Each conversation carries messages both ways. Per case: the maximum rate (closed loop,
``--window`` messages in flight per side of each conversation), then an open loop at 50%
and 90% of that rate with latency percentiles (send to delivery, one clock, µs). Ours
and the peer's are measured interleaved and repeated; each figure is the median of the
repeats, and messages per server CPU-second (from /proc) are printed for both.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import _loadgen as lg
import _profile

PASSWORD = "bench-Secret-1"


@attrs.define
class Rig:
    """One case set up: its connections and its senders (both sides of every pair)."""

    name: str
    pid: int
    conns: list[lg.Conn]
    senders: list[lg.Sender]
    # Other servers every message crosses (name: pid): Prosody for the component.
    via: dict[str, int] = attrs.Factory(dict)

    def close(self) -> None:
        """Close every connection."""
        for conn in self.conns:
            conn.close()


# -- JSON-IM ---------------------------------------------------------------------------


async def jsonim_rig(
    gateway: common.Gateway,
    pairs: int,
    agents: list[str],
    agents_on: common.Gateway | None = None,
    name: str = "jsonim",
) -> Rig:
    """``pairs`` JSON-IM customers, each in conversation with one of ``agents``; the
    agents log in to ``agents_on`` (another node of a cluster) when given."""
    port = gateway.ports["jsonim"]
    agent_port = (agents_on or gateway).ports["jsonim"]
    agent_conns = []
    for agent_name in agents:
        conn = await lg.connect(agent_port)
        hello = {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "bench", "version": "1"},
            "auth": {"user": agent_name, "password": PASSWORD},
        }
        conn.write(json.dumps(hello).encode() + b"\n")
        await conn.expect(rb'"type": ?"welcome"[^\n]*\n')
        conn.write(b'{"type":"presence","status":"available"}\n')
        agent_conns.append(conn)
    customers, senders = [], []
    hello = {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "customer",
        "client": {"name": "bench", "version": "1"},
        "topic": "billing",
    }
    line = json.dumps(hello).encode() + b"\n"
    for _ in range(pairs):
        conn = await lg.connect(port)
        conn.write(line)
        await conn.expect(rb'"type": ?"welcome"[^\n]*\n')
        agent, match = await lg.expect_any(agent_conns, r'[^\n]*"type": ?"offer"[^\n]*\n')
        offer = json.loads(match.group(0))
        agent.write(b'{"type":"accept","offer":"%s"}\n' % offer["offer"].encode())
        await conn.expect(rb'"type": ?"connected"[^\n]*\n')
        await agent.expect(rb'"type": ?"connected"[^\n]*\n')
        tail = lg.PAD.encode() + b'"}\n'
        senders.append(lg.Sender(conn, b'{"type":"message","text":"', tail))
        head = b'{"type":"message","conversation":"%s","text":"' % offer["conversation"].encode()
        senders.append(lg.Sender(agent, head, tail))
        customers.append(conn)
    return Rig(name, gateway.pid, agent_conns + customers, senders)


# -- JSON-IM over WebSocket (the web listener) -------------------------------------------


async def web_rig(gateway: common.Gateway, pairs: int, agents: list[str]) -> Rig:
    """``pairs`` WebSocket customers, each in conversation with one of ``agents``."""
    port = gateway.ports["web"]
    agent_conns = []
    for name in agents:
        conn = await lg.ws_connect(port)
        hello = {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "bench", "version": "1"},
            "auth": {"user": name, "password": PASSWORD},
        }
        conn.write(json.dumps(hello).encode())
        await conn.expect(rb'"type":"welcome"')
        conn.write(b'{"type":"presence","status":"available"}')
        agent_conns.append(conn)
    customers, senders = [], []
    hello = {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "customer",
        "client": {"name": "bench", "version": "1"},
        "topic": "billing",
    }
    offer_pattern = r'\{"type":"offer","offer":"(o-[^"]+)","conversation":"(c-[^"]+)"'
    for _ in range(pairs):
        conn = await lg.ws_connect(port)
        conn.write(json.dumps(hello).encode())
        await conn.expect(rb'"type":"welcome"')
        agent, match = await lg.expect_any(agent_conns, offer_pattern)
        offer, conversation = match.group(1), match.group(2)
        agent.write(b'{"type":"accept","offer":"%s"}' % offer)
        await conn.expect(rb'"type":"connected"')
        await agent.expect(rb'"type":"connected","conversation":"' + conversation)
        tail = lg.PAD.encode() + b'"}'
        senders.append(lg.Sender(conn, b'{"type":"message","text":"', tail))
        head = b'{"type":"message","conversation":"%s","text":"' % conversation
        senders.append(lg.Sender(agent, head, tail))
        customers.append(conn)
    return Rig("web", gateway.pid, agent_conns + customers, senders)


# -- IRC ---------------------------------------------------------------------------------


async def irc_register(conn: lg.Conn, nick: str, password: str | None = None) -> None:
    """NICK/USER (and PASS), then wait for the end of the welcome burst."""
    lines = f"PASS {password}\r\n" if password else ""
    lines += f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n"
    conn.write(lines.encode())
    await conn.expect(rb" 001 ")
    await conn.expect(rb" (376|422) ")


async def irc_gateway_rig(gateway: common.Gateway, pairs: int, agents: list[str]) -> Rig:
    """``pairs`` IRC customers on the direct listener, each talking to an IRC agent."""
    port = gateway.ports["irc"]
    agent_conns = []
    for name in agents:
        conn = await lg.connect(port)
        await irc_register(conn, f"{name}_desk", f"{name}:{PASSWORD}")
        agent_conns.append(conn)
    customers, senders = [], []
    tail = lg.PAD.encode() + b"\r\n"
    for i in range(pairs):
        conn = await lg.connect(port)
        await irc_register(conn, f"cust{i}")
        conn.write(b"PRIVMSG Support :hello\r\n")
        agent, match = await lg.expect_any(agent_conns, r"NOTICE \S+ :Offer (o-\S+): (c-[0-9a-f]+)")
        offer, alias = match.group(1), match.group(2)
        agent.write(b"PRIVMSG Support :/accept %s\r\n" % offer)
        talking = await conn.expect(rb"You are now talking with (\S+)\r\n")
        await agent.expect(rb"You are now talking with " + alias)
        senders.append(lg.Sender(conn, b"PRIVMSG %s :" % talking.group(1), tail))
        senders.append(lg.Sender(agent, b"PRIVMSG %s :" % alias, tail))
        customers.append(conn)
    return Rig("irc", gateway.pid, agent_conns + customers, senders)


async def ngircd_user(server: common.Ngircd, nick: str) -> lg.Conn:
    """One registered ngircd user, an operator with user mode +F (no flood throttling)."""
    conn = await lg.connect(server.port)
    await irc_register(conn, nick)
    conn.write(f"OPER bench {PASSWORD}\r\nMODE {nick} +F\r\n".encode())
    await conn.expect(rb" 381 ")
    await conn.expect(rb"MODE " + nick.encode() + rb" :?\+F")
    return conn


async def ngircd_rig(server: common.Ngircd, pairs: int) -> Rig:
    """``pairs`` pairs of ngircd users (opers with +F) who PRIVMSG each other.

    ngircd paces each new connection's first commands, so the users register in
    parallel.
    """
    nicks = [f"u{i}{side}" for i in range(pairs) for side in "ab"]
    conns = list(await asyncio.gather(*(ngircd_user(server, nick) for nick in nicks)))
    senders = []
    tail = lg.PAD.encode() + b"\r\n"
    for i in range(0, len(conns), 2):
        a, b = conns[i], conns[i + 1]
        senders.append(lg.Sender(a, f"PRIVMSG {nicks[i + 1]} :".encode(), tail))
        senders.append(lg.Sender(b, f"PRIVMSG {nicks[i]} :".encode(), tail))
    return Rig("ngircd", server.pid, conns, senders)


async def irc_bot_rig(
    gateway: common.Gateway, server: common.Ngircd, pairs: int, agents: list[str]
) -> Rig:
    """Bot mode: customers and agents are ngircd users writing to the gateway's bot
    ``Support``; every message crosses ngircd twice (to the bot, from the bot)."""
    deadline = time.monotonic() + 30
    while not gateway.logged(r"IRC bot: on \S+ as Support"):
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway's bot did not join ngircd")
        await asyncio.sleep(0.05)
    agent_conns = []
    for name in agents:
        conn = await ngircd_user(server, name)
        conn.write(b"PRIVMSG Support :status\r\n")
        await conn.expect(rb"You are available")
        agent_conns.append(conn)
    customers, senders = [], []
    tail = lg.PAD.encode() + b"\r\n"
    for i in range(pairs):
        conn = await ngircd_user(server, f"bcust{i}")
        conn.write(b"PRIVMSG Support :hello\r\n")
        agent, match = await lg.expect_any(agent_conns, r"Offer (o-\S+): (c-[0-9a-f]+)")
        offer, alias = match.group(1), match.group(2)
        agent.write(b"PRIVMSG Support :accept %s\r\n" % offer)
        await conn.expect(rb"You are now talking with \S+\r\n")
        await agent.expect(rb"talking with " + alias)
        senders.append(lg.Sender(conn, b"PRIVMSG Support :", tail))
        senders.append(lg.Sender(agent, b"PRIVMSG Support :%s: " % alias, tail))
        customers.append(conn)
    return Rig("ircbot", gateway.pid, agent_conns + customers, senders, {"ngircd": server.pid})


# -- XMPP ------------------------------------------------------------------------------

STREAM = (
    "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"


async def xmpp_login(
    conn: lg.Conn, user: str | None, password: str = "", domain: str = "localhost"
) -> str:
    """Open the stream, authenticate (ANONYMOUS, or SCRAM-SHA-1), bind; the full JID."""
    stream = STREAM.replace("to='localhost'", f"to='{domain}'").encode()
    conn.write(stream)
    await conn.expect(rb"</stream:features>")
    if user is None:
        conn.write(f"<auth xmlns='{SASL_NS}' mechanism='ANONYMOUS'/>".encode())
    else:
        nonce = base64.b64encode(os.urandom(12)).decode()
        first_bare = f"n={user},r={nonce}"
        initial = base64.b64encode(f"n,,{first_bare}".encode()).decode()
        conn.write(f"<auth xmlns='{SASL_NS}' mechanism='SCRAM-SHA-1'>{initial}</auth>".encode())
        match = await conn.expect(rb"<challenge[^>]*>([^<]+)</challenge>")
        server_first = base64.b64decode(match.group(1)).decode()
        fields = dict(part.split("=", 1) for part in server_first.split(","))
        salted = hashlib.pbkdf2_hmac(
            "sha1", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
        client_key = hmac.new(salted, b"Client Key", "sha1").digest()
        stored = hashlib.sha1(client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored, message, "sha1").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}"
        encoded = base64.b64encode(final.encode()).decode()
        conn.write(f"<response xmlns='{SASL_NS}'>{encoded}</response>".encode())
    await conn.expect(rb"<success")
    conn.write(stream)
    await conn.expect(rb"</stream:features>")
    conn.write(
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
        b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    )
    match = await conn.expect(rb"<jid>([^<]+)</jid>")
    await conn.expect(rb"id=.s1.")
    return match.group(1).decode()


def xmpp_sender(conn: lg.Conn, to: str) -> lg.Sender:
    """Chat messages to ``to``."""
    head = f"<message to='{to}' type='chat'><body>".encode()
    return lg.Sender(conn, head, lg.PAD.encode() + b"</body></message>")


async def xmpp_gateway_rig(gateway: common.Gateway, pairs: int, agents: list[str]) -> Rig:
    """``pairs`` anonymous XMPP customers on the direct listener, each with an agent."""
    port = gateway.ports["xmpp"]
    agent_conns = []
    for name in agents:
        conn = await lg.connect(port)
        await xmpp_login(conn, name, PASSWORD)
        conn.write(b"<presence/>")
        agent_conns.append(conn)
    customers, senders = [], []
    for _ in range(pairs):
        conn = await lg.connect(port)
        await xmpp_login(conn, None)
        conn.write(b"<message to='support@localhost' type='chat'><body>hello</body></message>")
        agent, match = await lg.expect_any(
            agent_conns, r"offer (o-[0-9a-f]+): customer \S+ \((c-[0-9a-f]+@localhost)\)"
        )
        offer, alias = match.group(1).decode(), match.group(2).decode()
        command = f"<body>/accept {offer}</body>"
        agent.write(f"<message to='support@localhost' type='chat'>{command}</message>".encode())
        await conn.expect(rb"<body>You are now chatting with")
        senders.append(xmpp_sender(conn, "support@localhost"))
        senders.append(xmpp_sender(agent, alias))
        customers.append(conn)
    return Rig("xmpp", gateway.pid, agent_conns + customers, senders)


async def component_rig(
    gateway: common.Gateway, server: common.Prosody, pairs: int, agents: list[str]
) -> Rig:
    """Customers (anonymous) and agents (``corp.localhost`` accounts) on Prosody, talking
    through the gateway attached as the component ``support.localhost``."""
    support = "support@support.localhost"
    deadline = time.monotonic() + 30
    while not gateway.logged(r"XMPP component \S+ attached"):
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not attach to Prosody as a component")
        await asyncio.sleep(0.05)
    agent_conns = []
    for name in agents:
        conn = await lg.connect(server.port)
        await xmpp_login(conn, name, PASSWORD, domain="corp.localhost")
        conn.write(f"<presence/><presence to='{support}'/>".encode())
        agent_conns.append(conn)
    await asyncio.sleep(0.5)  # the presences reach the gateway
    customers, senders = [], []
    for _ in range(pairs):
        conn = await lg.connect(server.port)
        await xmpp_login(conn, None)
        conn.write(
            f"<presence/><message to='{support}' type='chat'><body>hi</body></message>".encode()
        )
        agent, match = await lg.expect_any(
            agent_conns, r"offer (o-[0-9a-f]+): customer \S+ \((c-[0-9a-f]+@support\.localhost)\)"
        )
        offer, alias = match.group(1).decode(), match.group(2).decode()
        command = f"<body>/accept {offer}</body>"
        agent.write(f"<message to='{support}' type='chat'>{command}</message>".encode())
        await conn.expect(rb"<body>You are now chatting with")
        senders.append(xmpp_sender(conn, support))
        senders.append(xmpp_sender(agent, alias))
        customers.append(conn)
    return Rig("component", gateway.pid, agent_conns + customers, senders, {"prosody": server.pid})


async def prosody_user(server: common.Prosody) -> tuple[lg.Conn, str]:
    """One anonymous Prosody user, online; (connection, full JID)."""
    conn = await lg.connect(server.port)
    jid = await xmpp_login(conn, None)
    conn.write(b"<presence/>")
    return conn, jid


async def prosody_rig(server: common.Prosody, pairs: int) -> Rig:
    """``pairs`` pairs of anonymous Prosody users who write to each other."""
    users = await asyncio.gather(*(prosody_user(server) for _ in range(2 * pairs)))
    conns, senders = [], []
    for (a, a_jid), (b, b_jid) in zip(users[::2], users[1::2], strict=True):
        senders += [xmpp_sender(a, b_jid), xmpp_sender(b, a_jid)]
        conns += [a, b]
    return Rig("prosody", server.pid, conns, senders)


# -- measuring ------------------------------------------------------------------------------


@attrs.define
class Side:
    """One server's measurements in one case: every repeat of each point."""

    name: str
    maxima: list[lg.Result] = attrs.Factory(list)
    half: list[lg.Result] = attrs.Factory(list)
    ninety: list[lg.Result] = attrs.Factory(list)

    def max_rate(self) -> float:
        """The median of the maxima."""
        return median([r.rate for r in self.maxima])


def median(values: list[float]) -> float:
    """The median of the values that are numbers (nan if none)."""
    numbers = sorted(v for v in values if v == v)
    if not numbers:
        return math.nan
    middle = len(numbers) // 2
    return numbers[middle] if len(numbers) % 2 else (numbers[middle - 1] + numbers[middle]) / 2


def spread(values: list[float]) -> str:
    """``min-max`` of the values, as integers with thousands separators."""
    numbers = [v for v in values if v == v]
    if len(numbers) < 2:
        return ""
    return f" ({min(numbers):,.0f}-{max(numbers):,.0f})"


async def closed(rig: Rig, options: argparse.Namespace, profile: Path | None = None) -> lg.Result:
    """One maximum (closed loop); ``profile``: py-spy the server meanwhile."""
    spy = _profile.start(rig.pid, options.warmup + options.seconds, profile) if profile else None
    result = await lg.run_closed(
        rig.conns,
        rig.senders,
        options.window,
        options.warmup,
        options.seconds,
        rig.pid,
        list(rig.via.values()),
    )
    if spy is not None and profile is not None:
        spy.wait(30)
        if profile.exists():
            summary = _profile.summarise(profile)
            profile.with_suffix(".summary.txt").write_text(summary)
            print(
                f"  profile of {rig.name} at the maximum ({profile.with_suffix('.summary.txt')}):"
            )
            print("    " + "\n    ".join(summary.splitlines()[:22]))
    via = "".join(f", {name} CPU {result.others_cpu[pid]:.0%}" for name, pid in rig.via.items())
    print(
        f"    {rig.name}: max {result.rate:,.0f} msg/s, server CPU {result.server_cpu:.0%} "
        f"({result.per_cpu_second:,.0f} msg per CPU-second){via}, generator CPU "
        f"{result.generator_cpu:.0%}",
        flush=True,
    )
    return result


async def opened(rig: Rig, options: argparse.Namespace, rate: float) -> lg.Result:
    """One open-loop point at ``rate``."""
    result = await lg.run_open(
        rig.conns, rig.senders, rate, options.warmup, options.seconds, rig.pid
    )
    print(
        f"    {rig.name} at {rate:,.0f} msg/s: p50/p99/p99.9 "
        f"{result.p50:,.0f}/{result.p99:,.0f}/{result.p999:,.0f} µs, server CPU "
        f"{result.server_cpu:.0%}",
        flush=True,
    )
    return result


async def measure(
    ours: Rig, peer: Rig | None, options: argparse.Namespace, profile: Path | None = None
) -> tuple[Side, Side | None]:
    """Ours and the peer, interleaved and repeated: the maxima (ABBA order), then the
    open loop at 50% of each one's median maximum (ours repeated, the peer's once
    between them), then ours at 90% once."""
    mine = Side(ours.name)
    theirs = Side(peer.name) if peer is not None else None
    rigs = [(ours, mine)] + ([(peer, theirs)] if peer is not None else [])
    for repeat in range(options.repeats):
        order = rigs if repeat % 2 == 0 else rigs[::-1]
        for rig, side in order:
            first = rig is ours and repeat == 0
            side.maxima.append(await closed(rig, options, profile if first else None))
    half = [(ours, mine)] * options.repeats
    if peer is not None:
        half.insert(1, (peer, theirs))
    for rig, side in half:
        rate = options.rates[0] if options.rates else side.max_rate() * 0.5
        side.half.append(await opened(rig, options, rate))
    rate = options.rates[1] if options.rates else mine.max_rate() * 0.9
    mine.ninety.append(await opened(ours, options, rate))
    return mine, theirs


def _ratio(ours: float, peer: float, higher_is_better: bool = True) -> float:
    if not peer or not ours or ours != ours or peer != peer:
        return math.nan
    return ours / peer if higher_is_better else peer / ours


def _x(value: float) -> str:
    return "—" if value != value else f"{value:.2f}x"


def _paired(ours: list[lg.Result], peer: list[lg.Result], key) -> tuple[float, str]:
    """The median of the ratios of each repeat's pair, and their range."""
    ratios = [_ratio(key(a), key(b)) for a, b in zip(ours, peer, strict=False)]
    ratios = [r for r in ratios if r == r]
    if not ratios:
        return math.nan, ""
    return median(ratios), f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""


def _latency(results: list[lg.Result]) -> str:
    if not results:
        return "—"
    p50, p99, p999 = (median([getattr(r, k) for r in results]) for k in ("p50", "p99", "p999"))
    return f"{p50:,.0f} / {p99:,.0f} / {p999:,.0f}"


def report(ours: Side, peer: Side | None, via: dict[str, int]) -> list[list[object]]:
    """Rows of the table: metric, ours, peer, ratio (>1: ours is better).

    Every figure is the median of the repeats, with their range in brackets; a
    ratio is the median of the ratios of the interleaved pairs. ``via``: servers our
    messages also cross, whose CPU at the maximum is shown beside ours.
    """
    p = peer
    rows: list[list[object]] = []
    rate = [r.rate for r in ours.maxima]
    ratio, ratio_range = _paired(ours.maxima, p.maxima, lambda r: r.rate) if p else (math.nan, "")
    rows.append(
        [
            f"{ours.name}: max msg/s",
            f"{median(rate):,.0f}{spread(rate)}",
            f"{p.max_rate():,.0f}{spread([r.rate for r in p.maxima])}" if p else "—",
            _x(ratio) + ratio_range,
        ]
    )
    per_cpu = [r.per_cpu_second for r in ours.maxima]
    ratio, ratio_range = (
        _paired(ours.maxima, p.maxima, lambda r: r.per_cpu_second) if p else (math.nan, "")
    )
    rows.append(
        [
            f"{ours.name}: msg per server CPU-second at max",
            f"{median(per_cpu):,.0f}{spread(per_cpu)}",
            f"{median([r.per_cpu_second for r in p.maxima]):,.0f}"
            f"{spread([r.per_cpu_second for r in p.maxima])}"
            if p
            else "—",
            _x(ratio) + ratio_range,
        ]
    )
    for label, mine, theirs in (
        ("@50%", ours.half, p.half if p else []),
        ("@90%", ours.ninety, p.ninety if p else []),
    ):
        p99 = median([r.p99 for r in mine])
        rows.append(
            [
                f"{ours.name}: p50 / p99 / p99.9 µs {label}",
                _latency(mine) + (spread([r.p99 for r in mine]) if len(mine) > 1 else ""),
                _latency(theirs) if theirs else "—",
                _x(_ratio(p99, median([r.p99 for r in theirs]), False)) if theirs else "—",
            ]
        )
    cpu = f"{median([r.server_cpu for r in ours.maxima]):.0%}"
    for name, pid in via.items():
        cpu += f", {name} {median([r.others_cpu.get(pid, math.nan) for r in ours.maxima]):.0%}"
    rows.append(
        [
            f"{ours.name}: server CPU at max",
            cpu,
            f"{median([r.server_cpu for r in p.maxima]):.0%}" if p else "—",
            "",
        ]
    )
    return rows


def summary(ours: Side, peer: Side | None) -> dict[str, object]:
    """The case's headline figures, for results.json."""
    p = peer
    return {
        "max": median([r.rate for r in ours.maxima]),
        "maxima": [r.rate for r in ours.maxima],
        "per_cpu_second": median([r.per_cpu_second for r in ours.maxima]),
        "p99_half_us": median([r.p99 for r in ours.half]),
        "p99_half_each": [r.p99 for r in ours.half],
        "peer": p.name if p else None,
        "peer_max": p.max_rate() if p else None,
        "peer_per_cpu_second": median([r.per_cpu_second for r in p.maxima]) if p else None,
        "ratio_max": _paired(ours.maxima, p.maxima, lambda r: r.rate)[0] if p else None,
        "ratio_per_cpu_second": (
            _paired(ours.maxima, p.maxima, lambda r: r.per_cpu_second)[0] if p else None
        ),
    }


Case = tuple[Callable[[], Awaitable[Rig]], str | None]


async def main_async(options: argparse.Namespace) -> int:
    """Start the servers, run every case, print the table."""
    venv = Path(options.venv) if options.venv else common.default_venv()
    root = common.workdir("relay")
    common.raise_nofile()
    wanted = options.cases.split(",")
    unknown = set(wanted) - {"jsonim", "web", "irc", "ircbot", "xmpp", "component"}
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    agents = {p: [f"{p[0]}agent{i}" for i in range(options.agents)] for p in ("jsonim", "irc")}
    agents["ircbot"] = [f"bagent{i}" for i in range(options.agents)]
    agents["web"] = [f"wagent{i}" for i in range(options.agents)]
    agents["xmpp"] = [f"xagent{i}" for i in range(options.agents)]
    agents["component"] = [f"cagent{i}" for i in range(options.agents)]
    capacity = math.ceil(options.pairs / options.agents) + 1

    (root / "gateway").mkdir()
    data_dir = root / "gateway" / "data"
    if options.data_dir:
        data_dir = Path(tempfile.mkdtemp(prefix="imgw-bench-data-", dir=options.data_dir))
    ngircd = network = prosody = None
    if "xmpp" in wanted or "component" in wanted:
        prosody = common.Prosody(root / "prosody")
    if "irc" in wanted or "ircbot" in wanted:
        ngircd = common.Ngircd(root / "ngircd")
    if "ircbot" in wanted:
        # The bot's network: an ngircd of its own, without flood penalties.
        network = common.Ngircd(root / "ngircd-network", penalties=False)
    gateway = common.Gateway(
        venv,
        root / "gateway",
        common.gateway_config(
            data_dir,
            irc=True,
            xmpp=True,
            web="web" in wanted,
            log_level="info",
            component_port=prosody.component_port if "component" in wanted else None,
            irc_bot_port=network.port if network is not None else None,
        ),
    )
    rows: list[list[object]] = []
    results: dict[str, object] = {}
    peer_rigs: dict[str, Rig] = {}
    try:
        if prosody is not None:
            prosody.start()
            if "component" in wanted:
                for name in agents["component"]:
                    prosody.register(name, "corp.localhost", PASSWORD)
        for server in (ngircd, network):
            if server is not None:
                server.start()
        # The web case's baseline is a JSON-IM rig: its agents too.
        provisioned = wanted + (["jsonim"] if "web" in wanted and "jsonim" not in wanted else [])
        for protocol in provisioned:
            for name in agents.get(protocol, []):
                address = {
                    "component": ["--address", f"xmpp:{name}@corp.localhost"],
                    "ircbot": ["--address", f"irc:{name}"],
                }.get(protocol, [])
                gateway.add_agent(name, PASSWORD, capacity, address)
        started = gateway.start(["jsonim", "irc", "xmpp"] + (["web"] if "web" in wanted else []))
        print(f"gateway listening {started:.2f} s after start (load {common.load_average()})")
        cases: dict[str, Case] = {
            "jsonim": (lambda: jsonim_rig(gateway, options.pairs, agents["jsonim"]), None),
            "web": (lambda: web_rig(gateway, options.pairs, agents["web"]), "jsonim"),
            "irc": (lambda: irc_gateway_rig(gateway, options.pairs, agents["irc"]), "ngircd"),
            "ircbot": (
                lambda: irc_bot_rig(gateway, network, options.pairs, agents["ircbot"]),
                "ngircd",
            ),
            "xmpp": (lambda: xmpp_gateway_rig(gateway, options.pairs, agents["xmpp"]), "prosody"),
            "component": (
                lambda: component_rig(gateway, prosody, options.pairs, agents["component"]),
                "prosody",
            ),
        }
        makers = {
            # The web case's baseline: the same JSON-IM session over TCP lines.
            "jsonim": lambda: jsonim_rig(gateway, options.pairs, agents["jsonim"]),
            "ngircd": lambda: ngircd_rig(ngircd, options.pairs),
            "prosody": lambda: prosody_rig(prosody, options.pairs),
        }
        for protocol in wanted:
            make_ours, peer_name = cases[protocol]
            print(f"{protocol}: {options.pairs} pairs (load {common.load_average()})", flush=True)
            rig = await make_ours()
            peer = None
            if peer_name is not None:
                if peer_name not in peer_rigs:
                    peer_rigs[peer_name] = await makers[peer_name]()
                peer = peer_rigs[peer_name]
            profile = root / f"profile-{protocol}.txt" if options.profile else None
            mine, theirs = await measure(rig, peer, options, profile)
            rig.close()
            rows += report(mine, theirs, rig.via)
            results[protocol] = summary(mine, theirs) | {"load": common.load_average()}
    finally:
        for peer_rig in peer_rigs.values():
            peer_rig.close()
        for server in (prosody, ngircd, network, gateway):
            if server is not None:
                server.stop()
    print()
    print(
        f"pairs {options.pairs}, window {options.window}, {options.repeats} repeats of "
        f"{options.seconds:g} s per point, ours and the peer interleaved; load average "
        f"{common.load_average()}, {os.cpu_count()} CPUs"
    )
    print("figures: median of the repeats (their range); ratio: median of the paired ratios")
    print(common.table(["metric", "ours", "peer", "ratio (>1: ours better)"], rows))
    (root / "results.json").write_text(json.dumps(results, indent=1))
    print(f"(work files: {root})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about two and a half minutes")
    parser.add_argument("--venv", help="venv with imgateway installed (default: this one)")
    parser.add_argument(
        "--cases",
        default="jsonim,web,irc,ircbot,xmpp,component",
        help="comma-separated: jsonim, web (JSON-IM over WebSocket, vs JSON-IM over TCP), irc "
        "(vs ngircd), ircbot (bot mode through ngircd, vs ngircd), xmpp (vs Prosody), "
        "component (XMPP through Prosody, vs Prosody)",
    )
    parser.add_argument("--pairs", type=int, help="customer-agent pairs (quick 50, full 200)")
    parser.add_argument("--agents", type=int, default=5, help="agent accounts per protocol")
    parser.add_argument("--window", type=int, default=8, help="closed loop: in flight per side")
    parser.add_argument("--seconds", type=float, help="measured seconds per point")
    parser.add_argument(
        "--repeats", type=int, help="repeats of each point, ours and the peer's interleaved"
    )
    parser.add_argument(
        "--data-dir",
        help="directory for the gateway's database (default: the work directory, on disk; "
        "/dev/shm takes fsync out of the figures)",
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        help="two open-loop rates (msg/s) instead of 50%% and 90%% of the maximum",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the gateway during its first maximum"
    )
    parser.add_argument("--warmup", type=float, help="seconds before measuring")
    options = parser.parse_args(argv)
    if options.pairs is None:
        options.pairs = 50 if options.quick else 200
    if options.seconds is None:
        options.seconds = 1.5 if options.quick else 5.0
    if options.repeats is None:
        options.repeats = 3 if options.quick else 5
    if options.warmup is None:
        options.warmup = 0.5 if options.quick else 1.0
    return asyncio.run(main_async(options))


if __name__ == "__main__":
    sys.exit(main())
