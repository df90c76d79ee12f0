"""The load generator: asyncio, raw sockets, one process, protocol-neutral.

A :class:`Conn` is one TCP connection. While a rig sets up its pairs it reads what the
server sends with :meth:`Conn.expect` (a regular expression over the bytes received and
not yet consumed). Then :func:`run_closed` and :func:`run_open` switch every connection
to a fast path that only looks for tokens ``Q<sender>_<monotonic ns>Q`` in the bytes it
receives: each is one delivered message and its latency.

A :class:`Sender` is one side of one conversation: it writes ``head + token + tail``
on its connection. Sender ``i``'s messages are delivered to the other side of the
conversation, whichever connection that is.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

TOKEN = re.compile(rb"Q(\d+)_(\d+)Q")
PAD = " hello, this is one ordinary line of a customer chat"
TAIL_KEEP = 64


class Conn(asyncio.Protocol):
    """One connection: a buffer for the setup phase, a token scanner for the run."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.transport: asyncio.Transport | None = None
        self.data = asyncio.Event()
        self.lost = False
        self.meter: Meter | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.data.set()

    def data_received(self, data: bytes) -> None:
        if self.meter is not None:
            self.meter.scan(self, data)
            return
        self.buf += data
        self.data.set()

    def write(self, data: bytes) -> None:
        """Write bytes."""
        assert self.transport is not None
        self.transport.write(data)

    def search(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        """The first match in the unconsumed bytes, consuming up to its end."""
        match = pattern.search(self.buf, self.pos)
        if match:
            self.pos = match.end()
        return match

    async def expect(self, pattern: bytes | str, timeout: float = 20.0) -> re.Match[bytes]:
        """Wait for ``pattern`` in the bytes received; the match."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = self.search(regex)
            if match:
                return match
            if self.lost:
                raise RuntimeError(f"closed waiting for {regex.pattern!r}: {self.tail()}")
            self.data.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no {regex.pattern!r} in {timeout:g}s: {self.tail()}")
            try:
                await asyncio.wait_for(self.data.wait(), remaining)
            except TimeoutError:
                pass

    def tail(self) -> str:
        """The last bytes received, for error messages."""
        return bytes(self.buf[-600:]).decode("utf-8", "replace")

    def start_run(self, meter: Meter) -> None:
        """Switch to the fast path: drop the setup buffer, scan for tokens."""
        self.meter = meter
        self.buf = bytearray()
        self.pos = 0

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Close with a RST (SO_LINGER 0): no TIME_WAIT left behind on our side."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()


class WsConn(Conn):
    """A WebSocket connection (after :func:`ws_connect`): each write is one masked text
    message. The mask key is zero, which servers accept and which costs nothing; the
    server's unmasked frames carry the tokens as they are."""

    framed = False

    def write(self, data: bytes) -> None:
        """One text message, or raw bytes before the handshake."""
        assert self.transport is not None
        if not self.framed:
            self.transport.write(data)
            return
        length = len(data)
        if length < 126:
            head = bytes((0x81, 0x80 | length))
        elif length < 1 << 16:
            head = bytes((0x81, 0x80 | 126)) + struct.pack("!H", length)
        else:
            head = bytes((0x81, 0x80 | 127)) + struct.pack("!Q", length)
        self.transport.write(head + b"\0\0\0\0" + data)


async def ws_connect(port: int, path: str = "/ws") -> WsConn:
    """A WebSocket to 127.0.0.1:``port`` after its opening handshake."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(WsConn, "127.0.0.1", port)
    conn.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: YmVuY2gtd2Vic29ja2V0IQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await conn.expect(rb"HTTP/1\.1 101 [^\r]*\r\n(?:[^\r]+\r\n)*\r\n")
    conn.framed = True
    return conn


# Linux: bind() picks no port; connect() does, by the whole 4-tuple. Without it, binding
# a source address makes the kernel search for a port no socket holds, TIME_WAIT ones
# from the previous run included, which slows connecting down to a crawl.
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


async def connect(port: int, source: str | None = None) -> Conn:
    """A new :class:`Conn` to 127.0.0.1:``port`` (from ``source``, if given)."""
    loop = asyncio.get_running_loop()
    if source is None:
        _, conn = await loop.create_connection(Conn, "127.0.0.1", port)
        return conn
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    _, conn = await loop.create_connection(Conn, sock=sock)
    return conn


async def expect_any(conns: Sequence[Conn], pattern: str, timeout: float = 20.0):
    """Wait for ``pattern`` on any of ``conns``; (conn, match)."""
    regex = re.compile(pattern.encode())
    deadline = time.monotonic() + timeout
    while True:
        for conn in conns:
            match = conn.search(regex)
            if match:
                return conn, match
        if time.monotonic() > deadline:
            tails = " / ".join(c.tail()[-200:] for c in conns[:3])
            raise RuntimeError(f"no {pattern!r} on any connection in {timeout:g}s: {tails}")
        await asyncio.sleep(0.002)


@attrs.define(eq=False)
class Sender:
    """One side of one conversation: writes ``head + token + tail`` on ``conn``."""

    conn: Conn
    head: bytes
    tail: bytes


class Meter:
    """Counts delivered tokens and their latencies; in closed-loop mode, refills."""

    def __init__(self, senders: Sequence[Sender], closed_loop: bool) -> None:
        self.senders = list(senders)
        self.closed_loop = closed_loop
        self.recording = False
        self.received = 0
        self.latencies: list[int] = []
        self._tails: dict[Conn, bytes] = {}

    def send(self, index: int) -> None:
        """Sender ``index`` sends one message now."""
        sender = self.senders[index]
        token = b"Q%d_%dQ" % (index, time.monotonic_ns())
        sender.conn.write(sender.head + token + sender.tail)

    def scan(self, conn: Conn, data: bytes) -> None:
        """Tokens in ``data`` are deliveries."""
        now = time.monotonic_ns()
        tail = self._tails.get(conn)
        if tail:
            data = tail + data
        last = 0
        for match in TOKEN.finditer(data):
            last = match.end()
            if self.recording:
                self.received += 1
                self.latencies.append(now - int(match.group(2)))
            if self.closed_loop:
                self.send(int(match.group(1)))
        rest = data[last:]
        self._tails[conn] = rest[-TAIL_KEEP:] if rest else b""


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) so far, from /proc; 0 if None."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@attrs.frozen
class Result:
    """Delivered messages per second and latency percentiles in µs."""

    rate: float
    offered: float
    p50: float
    p99: float
    p999: float
    generator_cpu: float  # fraction of one core the generator used
    server_cpu: float = float("nan")  # fraction of one core the server used (all threads)
    # Fractions of a core used by other servers in the path (Prosody, ngircd), by pid.
    others_cpu: dict[int, float] = attrs.field(factory=dict)

    @property
    def per_cpu_second(self) -> float:
        """Messages delivered per second of the server's CPU time."""
        if not self.server_cpu or self.server_cpu != self.server_cpu:
            return float("nan")
        return self.rate / self.server_cpu


def _summary(
    meter: Meter,
    seconds: float,
    offered: float,
    cpu: float,
    server_cpu: float = float("nan"),
    others_cpu: dict[int, float] | None = None,
) -> Result:
    values = sorted(meter.latencies)

    def pct(fraction: float) -> float:
        if not values:
            return float("nan")
        index = min(len(values) - 1, max(0, round(fraction * len(values)) - 1))
        return values[index] / 1000

    rate = meter.received / seconds
    return Result(rate, offered, pct(0.5), pct(0.99), pct(0.999), cpu, server_cpu, others_cpu or {})


def _attach(conns: Sequence[Conn], meter: Meter) -> None:
    for conn in conns:
        conn.start_run(meter)


async def run_closed(
    conns: Sequence[Conn],
    senders: Sequence[Sender],
    window: int,
    warmup: float,
    seconds: float,
    server_pid: int | None = None,
    other_pids: Sequence[int] = (),
) -> Result:
    """Closed loop: each sender keeps ``window`` messages in flight; the maximum rate.

    ``server_pid`` (and ``other_pids``, servers the messages also cross): CPU time is
    read over the same seconds as the rate.
    """
    meter = Meter(senders, closed_loop=True)
    _attach(conns, meter)
    for _ in range(window):
        for index in range(len(senders)):
            meter.send(index)
    await asyncio.sleep(warmup)
    meter.recording = True
    server0 = process_cpu(server_pid)
    others0 = {pid: process_cpu(pid) for pid in other_pids}
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    meter.recording = False
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    server = (process_cpu(server_pid) - server0) / elapsed if server_pid else float("nan")
    others = {pid: (process_cpu(pid) - others0[pid]) / elapsed for pid in other_pids}
    meter.closed_loop = False
    await asyncio.sleep(0.5)  # let the window drain
    return _summary(meter, elapsed, float("nan"), cpu / elapsed, server, others)


async def run_open(
    conns: Sequence[Conn],
    senders: Sequence[Sender],
    rate: float,
    warmup: float,
    seconds: float,
    server_pid: int | None = None,
) -> Result:
    """Open loop: ``rate`` messages per second over all senders, round robin."""
    meter = Meter(senders, closed_loop=False)
    _attach(conns, meter)
    count = len(senders)
    sent = 0
    begun = time.monotonic()
    record_at, stop_at = begun + warmup, begun + warmup + seconds
    cpu0 = t0 = None
    server0 = 0.0
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if cpu0 is None and now >= record_at:
            meter.recording = True
            server0 = process_cpu(server_pid)
            cpu0, t0 = time.process_time(), now
        due = int(rate * (now - begun)) - sent
        for _ in range(due):
            meter.send(sent % count)
            sent += 1
        await asyncio.sleep(0.0005)
    assert t0 is not None and cpu0 is not None
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    server = (process_cpu(server_pid) - server0) / elapsed if server_pid else float("nan")
    await asyncio.sleep(0.5)  # stragglers still count towards latency
    meter.recording = False
    return _summary(meter, elapsed, rate, cpu / elapsed, server)
