"""Soak run: customers and agents chat for minutes; every message sent is acknowledged,
delivered and stored.

Run from a checkout (``bench/run`` builds the venv; see bench/README.md)::

    bench/run soak.py --quick       # 200 customers, 20 agents, 45 s; about a minute
    bench/run soak.py               # 1,000 customers, 100 agents, 10 minutes

The gateway is the installed wheel run as ``twistd -n imgateway`` on loopback, with its
database on disk (the shipped WAL + ``synchronous = FULL``) and every rate and
connection limit lifted (``_common.gateway_config``). The load generator is this one
asyncio process, on JSON-IM:

- agents log in first (capacity enough for every customer, plus a little) and accept
  every offer at once;
- customers connect from several source addresses (127.0.0.2, ...), go through the
  interview (name, topic), are queued, offered and connected; then each sends a message
  every ``--interval`` seconds and the agent answers each one;
- after ``--talk`` seconds a conversation stops sending, waits for what it has in flight,
  and ends (by the customer, or by the agent for ``--agent-ends`` of them); a new
  customer takes its place, so conversations start and end throughout the run;
- at ``--duration`` sending stops; the run waits (``--drain`` at most) for every ack and
  delivery, stops the gateway with SIGTERM and reads its database.

Per direction (customer to agent, agent to customer) it counts messages **sent**
(frames written), **acknowledged** (``ack`` received by the sender; its ``msg`` id kept),
**delivered** (received by the other side, with the same ``msg`` id) and **stored**
(rows of the ``messages`` table with that id, read after the gateway exited). The four
must be equal; the exit status is 1 if they are not, if any ``error`` frame or other
surprise arrived (a duplicate, a delivery outside its conversation, a lost connection, an
unexpected end, a traceback in the gateway log) or if the gateway did not stop cleanly;
the ids that fell short are listed by stage. Also printed: messages per second, latency
percentiles from the send to the delivery and to the ack, the gateway's RSS at the
start, middle and end and its peak, its CPU and the generator's, conversations started
and ended, error frames by code. A progress line every ``--progress`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

PASSWORD = "bench-Secret-1"
TAG = "soak-"
PAD = " hello, this is one ordinary line of a customer chat"
TO_AGENT, TO_CUSTOMER = 0, 1
DIRECTIONS = ("customer->agent", "agent->customer")
SENDERS = ("customer", "agent")
CUSTOMER_HELLO = (
    json.dumps(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "customer",
            "client": {"name": "soak", "version": "1"},
        }
    ).encode()
    + b"\n"
)
INTERVIEW = """
[interview]
answer_timeout_s = 3600
greeting = ""

[[interview.fields]]
name = "name"
prompt = "What is your name?"
kind = "text"

[[interview.fields]]
name = "topic"
prompt = "What can we help you with?"
kind = "choice"
choices = [{ value = "billing", label = "Billing" }]
"""
# Linux: let connect() pick the port by the whole 4-tuple (see _loadgen.connect).
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class Ledger:
    """Every message the run sent, indexed by its number ``n`` (the frame's ``id``).

    Flat arrays, not objects per message: 600,000 messages in a full run.
    """

    def __init__(self) -> None:
        self.sent_ns = array("q")
        self.ack_ns = array("q")
        self.delivered_ns = array("q")
        self.direction = bytearray()
        self.msg: list[str | None] = []  # the gateway's id, from the ack or the delivery
        self.owner: list[Customer] = []
        self.sent = [0, 0]
        self.acked = [0, 0]
        self.delivered = [0, 0]

    def record_send(self, direction: int, owner: Customer) -> int:
        """A new message number, its send time now."""
        n = len(self.sent_ns)
        self.sent_ns.append(time.monotonic_ns())
        self.ack_ns.append(0)
        self.delivered_ns.append(0)
        self.direction.append(direction)
        self.msg.append(None)
        self.owner.append(owner)
        self.sent[direction] += 1
        return n

    def outstanding(self) -> int:
        """Acks and deliveries still awaited."""
        return 2 * sum(self.sent) - sum(self.acked) - sum(self.delivered)


class Soak:
    """The run's shared state: counters, the gateway's port, the customers' sources."""

    def __init__(self, options: argparse.Namespace, port: int) -> None:
        self.options = options
        self.port = port
        self.ledger = Ledger()
        self.errors: Counter[str] = Counter()  # error frames, by code
        self.surprises: Counter[str] = Counter()  # anything else that should not happen
        self.examples: dict[str, str] = {}
        self.ended_reasons: Counter[str] = Counter()
        self.started = 0
        self.ended = 0
        self.customers = 0  # customers who connected
        self.sending = True
        self.closing = False
        self.conversations: dict[str, Agent] = {}
        self._next_source = 0
        self.tasks: set[asyncio.Task] = set()

    def surprise(self, what: str, detail: str) -> None:
        """Count something unexpected; keep one example."""
        self.surprises[what] += 1
        self.examples.setdefault(what, detail[:300])

    def error_frame(self, frame: dict, where: str) -> None:
        """Count an ``error`` frame by its code."""
        code = str(frame.get("code"))
        if self.closing:
            code += " (while the gateway stopped)"
        self.errors[code] += 1
        self.examples.setdefault(f"error {code}", f"{where}: {json.dumps(frame)}"[:300])

    def source(self) -> str:
        """The next customer source address, round robin."""
        self._next_source = (self._next_source + 1) % self.options.sources
        return f"127.0.0.{2 + self._next_source}"

    def spawn_customer(self, delay: float = 0.0) -> None:
        """A new customer, after ``delay`` seconds."""
        if not self.sending:
            return
        task = asyncio.get_running_loop().create_task(Customer(self).run(delay))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- what both sides see ---------------------------------------------------------

    def acked(self, n: int, msg: str, direction: int, now: int) -> None:
        """The sender's ack for message ``n``."""
        ledger = self.ledger
        if n >= len(ledger.sent_ns) or ledger.direction[n] != direction:
            self.surprise("ack for a message not sent by this side", f"{n} {msg}")
            return
        if ledger.ack_ns[n]:
            self.surprise("duplicate ack", f"{n} {msg}")
            return
        ledger.ack_ns[n] = now
        ledger.acked[direction] += 1
        self._check_msg(n, msg)
        ledger.owner[n].settled()

    def delivered(
        self, frame: dict, direction: int, now: int, receiver: Agent | Customer
    ) -> int | None:
        """A message frame that reached the other side; its number, if it is one of ours.

        The caller settles it with the owner, after sending any answer it causes (so the
        conversation does not end with the answer still to come).
        """
        text = frame.get("text", "")
        if not text.startswith(TAG):
            if frame.get("from") != "system":
                self.surprise("foreign message", json.dumps(frame))
            return None
        ledger = self.ledger
        n = int(text[len(TAG) : text.index(" ")])
        if n >= len(ledger.sent_ns) or ledger.direction[n] != direction:
            self.surprise("delivered to the wrong side", json.dumps(frame))
            return None
        if frame.get("from") != SENDERS[direction]:
            self.surprise("wrong sender", json.dumps(frame))
        customer = ledger.owner[n]
        expected = (
            customer if direction == TO_CUSTOMER else self.conversations.get(customer.conversation)
        )
        if receiver is not expected or frame.get("conversation") != customer.conversation:
            self.surprise("delivered outside its conversation", json.dumps(frame))
        if ledger.delivered_ns[n]:
            self.surprise("duplicate delivery", json.dumps(frame))
            return None
        ledger.delivered_ns[n] = now
        ledger.delivered[direction] += 1
        self._check_msg(n, frame.get("msg"))
        return n

    def _check_msg(self, n: int, msg: object) -> None:
        known = self.ledger.msg[n]
        if known is None:
            self.ledger.msg[n] = msg  # type: ignore[assignment]
        elif known != msg:
            self.surprise("ack and delivery name different msg ids", f"{n}: {known} / {msg}")


class Line(asyncio.Protocol):
    """A JSON-IM connection: LF-framed JSON objects to ``on_frame``."""

    def __init__(self, on_frame, on_lost) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._on_frame = on_frame
        self._on_lost = on_lost
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        for line in lines:
            if line:
                self._on_frame(json.loads(line), now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._on_lost()

    def write(self, data: bytes) -> None:
        """Write bytes, unless the connection is gone."""
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, protocol: Line, source: str | None = None) -> Line:
    """Connect ``protocol`` to 127.0.0.1:``port``, from ``source`` if given."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if source is not None:
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    await loop.create_connection(lambda: protocol, sock=sock)
    return protocol


class Agent:
    """An agent session: accepts every offer, answers every customer message at once."""

    def __init__(self, soak: Soak, name: str) -> None:
        self.soak = soak
        self.name = name
        self.line = Line(self.on_frame, self.on_lost)
        self.ready = asyncio.get_running_loop().create_future()

    async def login(self) -> None:
        """Connect, authenticate, go available."""
        await connect(self.soak.port, self.line)
        hello = {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "soak", "version": "1"},
            "auth": {"user": self.name, "password": PASSWORD},
        }
        self.line.write(json.dumps(hello).encode() + b"\n")
        await asyncio.wait_for(self.ready, 30)

    def on_frame(self, frame: dict, now: int) -> None:
        """Dispatch one frame from the gateway."""
        kind = frame.get("type")
        soak = self.soak
        if kind == "message":
            n = soak.delivered(frame, TO_AGENT, now, self)
            if n is not None:
                customer = soak.ledger.owner[n]
                if soak.sending:
                    self.reply(frame["conversation"], customer)
                customer.settled()
        elif kind == "ack":
            soak.acked(int(frame["id"]), frame["msg"], TO_CUSTOMER, now)
        elif kind == "offer":
            if soak.sending:  # an accept racing the shutdown would be refused
                self.line.write(b'{"type":"accept","offer":"%s"}\n' % frame["offer"].encode())
        elif kind == "connected":
            soak.conversations[frame["conversation"]] = self
        elif kind == "ended":
            soak.conversations.pop(frame["conversation"], None)
        elif kind == "welcome":
            self.line.write(b'{"type":"presence","status":"available"}\n')
            self.ready.set_result(None)
        elif kind == "error":
            soak.error_frame(frame, f"agent {self.name}")
        elif kind == "ping":
            self.line.write(json.dumps({"type": "pong", "id": frame.get("id")}).encode() + b"\n")
        elif kind not in ("revoked", "wrap_up"):
            # A wrap-up is asked after every end; the site's disposition is optional,
            # so the soak's agents leave it to its timer.
            soak.surprise(f"agent got {kind}", json.dumps(frame))

    def reply(self, conversation: str, customer: Customer) -> None:
        """Answer the customer of ``conversation``."""
        n = self.soak.ledger.record_send(TO_CUSTOMER, customer)
        customer.pending += 2
        self.line.write(
            b'{"type":"message","conversation":"%s","id":"%d","text":"%s%d%s"}\n'
            % (conversation.encode(), n, TAG.encode(), n, PAD.encode())
        )

    def end(self, conversation: str) -> None:
        """End ``conversation`` from this side."""
        self.line.write(b'{"type":"end","conversation":"%s"}\n' % conversation.encode())

    def on_lost(self) -> None:
        """The gateway closed the agent's connection."""
        if not self.soak.closing:
            self.soak.surprise("agent connection lost", self.name)


class Customer:
    """One customer's life: interview, queue, conversation, end; then a successor."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.line = Line(self.on_frame, self.on_lost)
        self.conversation: str | None = None
        self.pending = 0  # acks and deliveries this conversation still awaits
        self.talking_until = 0.0
        self.draining = False
        self.ended = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    async def run(self, delay: float) -> None:
        """Wait ``delay``, connect and say hello; the frames drive the rest."""
        if delay:
            await asyncio.sleep(delay)
        if not self.soak.sending:
            return
        try:
            await connect(self.soak.port, self.line, self.soak.source())
        except OSError as e:
            self.soak.surprise("customer could not connect", str(e))
            self.soak.spawn_customer(1.0)
            return
        self.soak.customers += 1
        self.line.write(CUSTOMER_HELLO)

    def on_frame(self, frame: dict, now: int) -> None:
        """Dispatch one frame from the gateway."""
        kind = frame.get("type")
        soak = self.soak
        if kind == "message":
            if soak.delivered(frame, TO_CUSTOMER, now, self) is not None:
                self.settled()
        elif kind == "ack":
            if "id" in frame:  # the interview answers carry none
                soak.acked(int(frame["id"]), frame["msg"], TO_AGENT, now)
        elif kind == "prompt":
            if soak.sending:  # after that, wait in the interview for the shutdown
                answer = b"billing" if frame.get("field") == "topic" else b"Soak"
                self.line.write(b'{"type":"message","text":"%s"}\n' % answer)
        elif kind == "connected":
            self.conversation = frame["conversation"]
            soak.started += 1
            low, high = soak.options.talk
            self.talking_until = self._loop.time() + random.uniform(low, high)
            self._schedule()
        elif kind == "ended":
            self.on_ended(frame)
        elif kind == "error":
            soak.error_frame(frame, "customer")
        elif kind == "ping":
            self.line.write(json.dumps({"type": "pong", "id": frame.get("id")}).encode() + b"\n")
        elif kind not in ("welcome", "queued"):
            soak.surprise(f"customer got {kind}", json.dumps(frame))

    def _schedule(self) -> None:
        low, high = self.soak.options.interval
        self._timer = self._loop.call_later(random.uniform(low, high), self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.ended or not self.soak.sending:
            return
        if self._loop.time() >= self.talking_until:
            self.draining = True
            if self.pending == 0:
                self._end()
            else:
                self._timer = self._loop.call_later(self.soak.options.drain, self._stuck)
            return
        n = self.soak.ledger.record_send(TO_AGENT, self)
        self.pending += 2
        self.line.write(
            b'{"type":"message","id":"%d","text":"%s%d%s"}\n' % (n, TAG.encode(), n, PAD.encode())
        )
        self._schedule()

    def settled(self) -> None:
        """One ack or delivery of this conversation arrived."""
        self.pending -= 1
        if self.draining and self.pending == 0:
            self._end()

    def _stuck(self) -> None:
        self._timer = None
        self.soak.surprise(
            "conversation did not settle", f"{self.conversation}: {self.pending} awaited"
        )
        self._end()

    def _end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.draining = False
        agent = self.soak.conversations.get(self.conversation or "")
        if agent is not None and random.random() < self.soak.options.agent_ends:
            agent.end(self.conversation)
        else:
            self.line.write(b'{"type":"end"}\n')

    def on_ended(self, frame: dict) -> None:
        """The conversation ended: close, and let a new customer take the place."""
        soak = self.soak
        reason = frame.get("reason", "?")
        if self.conversation is None:
            soak.ended_reasons[f"{reason} before an agent"] += 1
        else:
            soak.ended += 1
            soak.ended_reasons[reason] += 1
        expected = ("customer", "agent") if soak.sending else ("customer", "agent", "shutdown")
        if reason not in expected:
            soak.surprise(f"ended: {reason}", json.dumps(frame))
        self.ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.line.close()
        soak.spawn_customer(random.uniform(0, soak.options.interval[0]))

    def on_lost(self) -> None:
        """The connection closed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.ended and not self.soak.closing:
            self.soak.surprise("customer connection lost", str(self.conversation))
            self.soak.spawn_customer(1.0)


# -- the run -------------------------------------------------------------------------


def peak_rss_kib(pid: int) -> int:
    """Peak resident set size of ``pid`` in KiB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def mib(kib: int) -> str:
    """KiB as MiB, one decimal."""
    return f"{kib / 1024:.1f} MiB"


def latencies(ledger: Ledger, direction: int, arrival: array) -> list[int]:
    """Sorted ns from send to ``arrival`` of the messages in ``direction`` that arrived."""
    sent, dirs = ledger.sent_ns, ledger.direction
    return sorted(
        arrival[n] - sent[n] for n in range(len(sent)) if dirs[n] == direction and arrival[n]
    )


def ms(values: list[int]) -> str:
    """p50 / p99 / p99.9 in ms."""
    return " / ".join(f"{common.percentile(values, f) / 1e6:.1f}" for f in (0.5, 0.99, 0.999))


def read_store(path: Path, ledger: Ledger, soak: Soak) -> tuple[list[int], bytearray]:
    """Rows of our messages in the database: per direction, and a flag per message."""
    stored = [0, 0]
    seen = bytearray(len(ledger.sent_ns))
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT id, sender, text FROM messages WHERE substr(text, 1, ?) = ?", (len(TAG), TAG)
        )
        for msg, sender, text in rows:
            n = int(text[len(TAG) : text.index(" ")])
            if n >= len(seen):
                soak.surprise("stored, never sent", f"{msg} {text[:40]}")
                continue
            direction = ledger.direction[n]
            if seen[n]:
                soak.surprise("stored twice", f"{n} {msg}")
                continue
            seen[n] = 1
            if sender != SENDERS[direction]:
                soak.surprise("stored with the wrong sender", f"{n} {msg} {sender}")
            if ledger.msg[n] is not None and ledger.msg[n] != msg:
                soak.surprise("stored under another msg id", f"{n}: {ledger.msg[n]} / {msg}")
            stored[direction] += 1
    finally:
        db.close()
    return stored, seen


def missing(ledger: Ledger, stored_flags: bytearray) -> list[str]:
    """Which messages fell short, at which stage (a few examples each)."""
    lines = []
    stages = {
        "not acknowledged": lambda n: not ledger.ack_ns[n],
        "not delivered": lambda n: not ledger.delivered_ns[n],
        "acknowledged, not stored": lambda n: ledger.ack_ns[n] and not stored_flags[n],
        "not stored": lambda n: not stored_flags[n],
    }
    for stage, test in stages.items():
        found = [n for n in range(len(ledger.sent_ns)) if test(n)]
        if found:
            examples = ", ".join(
                f"{n} ({DIRECTIONS[ledger.direction[n]]}, msg {ledger.msg[n]})" for n in found[:5]
            )
            lines.append(f"  {stage}: {len(found)}, e.g. {examples}")
    return lines


async def progress(soak: Soak, pid: int, begun: float) -> None:
    """A compact line every ``--progress`` seconds."""
    ledger = soak.ledger
    options = soak.options
    last_t, last_sent = begun, 0
    while True:
        await asyncio.sleep(options.progress)
        now = time.monotonic()
        elapsed = now - begun
        sent = sum(ledger.sent)
        print(
            f"  {elapsed:5.0f} s: {(sent - last_sent) / (now - last_t):6.0f}"
            f" msg/s; sent {sent:,} acked {sum(ledger.acked):,} "
            f"delivered {sum(ledger.delivered):,}; conversations {soak.started:,} started "
            f"{soak.ended:,} ended, {len(soak.conversations):,} open; gateway RSS "
            f"{mib(common.rss_kib(pid))}; errors {sum(soak.errors.values())}, surprises "
            f"{sum(soak.surprises.values())}; load {common.load_average()}",
            flush=True,
        )
        last_t, last_sent = now, sent


def provision(gateway: common.Gateway, names: list[str], capacity: int) -> None:
    """Agent accounts, a few ``imgateway-admin`` processes at a time."""
    with ThreadPoolExecutor(4) as pool:
        for _ in pool.map(lambda name: gateway.add_agent(name, PASSWORD, capacity), names):
            pass


async def main_async(options: argparse.Namespace) -> int:
    """Start the gateway, soak it, drain, stop it, count."""
    venv = Path(options.venv) if options.venv else common.default_venv()
    root = common.workdir("soak")
    common.raise_nofile()
    data_dir = root / "data"
    if options.data_dir:
        data_dir = Path(tempfile.mkdtemp(prefix="imgw-soak-data-", dir=options.data_dir))
    config = common.gateway_config(data_dir)
    no_interview = '[interview]\nanswer_timeout_s = 3600\ngreeting = ""\nfields = []\n'
    if no_interview not in config:
        raise SystemExit("bench/_common.py's configuration changed: update the interview here")
    config = config.replace(no_interview, INTERVIEW)
    gateway = common.Gateway(venv, root, config)
    names = [f"agent{i}" for i in range(options.agents)]
    capacity = math.ceil(options.customers / options.agents) + 2
    print(f"command: bench/run soak.py {' '.join(options.argv)}")
    print(
        f"soak: {options.customers:,} customers, {options.agents} agents (capacity "
        f"{capacity}), {options.duration:g} s, a message every {options.interval[0]:g}-"
        f"{options.interval[1]:g} s per customer, conversations of {options.talk[0]:g}-"
        f"{options.talk[1]:g} s; {os.cpu_count()} CPUs, load {common.load_average()}",
        flush=True,
    )
    provision(gateway, names, capacity)
    gateway.start(["jsonim"])
    pid = gateway.pid
    soak = Soak(options, gateway.ports["jsonim"])
    rss: dict[str, int] = {}
    ok = True
    try:
        await asyncio.gather(*(Agent(soak, name).login() for name in names))
        await asyncio.sleep(0.5)
        rss["start"] = common.rss_kib(pid)
        cpu0, gen0, begun = common.cpu_seconds(pid), time.process_time(), time.monotonic()
        ramp = options.ramp
        for i in range(options.customers):
            soak.spawn_customer(ramp * i / options.customers)
        reporter = asyncio.get_running_loop().create_task(progress(soak, pid, begun))
        await asyncio.sleep(options.duration / 2)
        rss["middle"] = common.rss_kib(pid)
        await asyncio.sleep(options.duration / 2)
        soak.sending = False
        sending_s = time.monotonic() - begun
        rss["end"] = common.rss_kib(pid)
        drain_deadline = time.monotonic() + options.drain
        while soak.ledger.outstanding() and time.monotonic() < drain_deadline:
            await asyncio.sleep(0.05)
        drained_s = time.monotonic() - begun - sending_s
        await asyncio.sleep(0.5)  # the last conversations' `end` frames, sent as they settled
        gateway_cpu = common.cpu_seconds(pid) - cpu0
        generator_cpu = time.process_time() - gen0
        peak = peak_rss_kib(pid)
        reporter.cancel()
        soak.closing = True
        await asyncio.to_thread(gateway.stop)
        # The gateway's shutdown frames (ended: shutdown) arrive while it stops.
        await asyncio.sleep(0.2)
    finally:
        soak.closing = True
        gateway.stop()
    returncode = gateway.proc.returncode if gateway.proc is not None else None
    # twistd re-raises SIGTERM once it has stopped: -15 is a clean exit too.
    if returncode not in (0, -signal.SIGTERM) or not gateway.logged(r"store closed"):
        soak.surprise("gateway did not stop cleanly", f"exit status {returncode}")
    tracebacks = sum(1 for line in gateway.lines if "Traceback" in line or "Unhandled" in line)
    if tracebacks:
        soak.surprise("tracebacks in the gateway log", f"{tracebacks}, see {root}/gateway.log")
    ledger = soak.ledger
    stored, stored_flags = read_store(data_dir / "imgateway.sqlite3", ledger, soak)

    print()
    print(
        f"{options.customers:,} customers, {options.agents} agents, {sending_s:.0f} s sending, "
        f"drained in {drained_s:.1f} s; load average {common.load_average()} "
        f"(1/5/15 min: {' '.join(f'{x:.2f}' for x in os.getloadavg())}), {os.cpu_count()} CPUs"
    )
    rows = []
    for d in (TO_AGENT, TO_CUSTOMER):
        counts = (ledger.sent[d], ledger.acked[d], ledger.delivered[d], stored[d])
        match = len(set(counts)) == 1
        ok &= match
        rows.append([DIRECTIONS[d], *(f"{c:,}" for c in counts), "yes" if match else "**NO**"])
    print(common.table(["direction", "sent", "acked", "delivered", "stored", "equal"], rows))
    if not all(r[-1] == "yes" for r in rows):
        print("missing:")
        print("\n".join(missing(ledger, stored_flags)))
    total = sum(ledger.sent)
    print()
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(soak.ended_reasons.items()))
    figures = [
        ["messages per second (sent, both directions)", f"{total / sending_s:,.0f}"],
    ]
    for d in (TO_AGENT, TO_CUSTOMER):
        figures.append(
            [
                f"{DIRECTIONS[d]}: send → delivery p50 / p99 / p99.9 ms",
                ms(latencies(ledger, d, ledger.delivered_ns)),
            ]
        )
        figures.append(
            [
                f"{DIRECTIONS[d]}: send → ack p50 / p99 / p99.9 ms",
                ms(latencies(ledger, d, ledger.ack_ns)),
            ]
        )
    figures += [
        [
            "gateway RSS start / middle / end (peak; second half)",
            f"{mib(rss['start'])} / {mib(rss['middle'])} / {mib(rss['end'])} "
            f"({mib(peak)}; {(rss['end'] - rss['middle']) / 1024:+.1f} MiB)",
        ],
        [
            "gateway CPU (of one core) / generator CPU",
            f"{gateway_cpu / sending_s:.0%} / {generator_cpu / sending_s:.0%}",
        ],
        [
            "conversations started / ended",
            f"{soak.started:,} / {soak.ended:,} ({reasons})",
        ],
        ["customers who arrived", f"{soak.customers:,}"],
        [
            "error frames by code",
            ", ".join(f"{k} {v}" for k, v in sorted(soak.errors.items())) or "none",
        ],
        [
            "other surprises",
            ", ".join(f"{k} {v}" for k, v in sorted(soak.surprises.items())) or "none",
        ],
        ["gateway exit status (after SIGTERM)", str(returncode)],
    ]
    print(common.table(["figure", "value"], figures))
    for what, example in soak.examples.items():
        print(f"  e.g. {what}: {example}")
    ok &= not soak.errors and not soak.surprises
    counts_match = all(r[-1] == "yes" for r in rows)
    print(
        f"\n{'PASS' if ok else 'FAIL'}: the four counts {'match' if counts_match else 'differ'}; "
        f"{sum(soak.errors.values())} error frames, {sum(soak.surprises.values())} surprises"
    )
    print(f"(work files, gateway log: {root})")
    return 0 if ok else 1


def _pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def main(argv: list[str] | None = None) -> int:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="200 customers, 20 agents, 45 s")
    parser.add_argument("--venv", help="venv with imgateway installed (default: this one)")
    parser.add_argument("--duration", type=float, help="seconds of sending (default 600)")
    parser.add_argument("--customers", type=int, help="customers at once (default 1000)")
    parser.add_argument("--agents", type=int, help="agents (default 100)")
    parser.add_argument(
        "--interval",
        type=_pair,
        default=(1.0, 3.0),
        help="LOW,HIGH s between a customer's messages (1,3)",
    )
    parser.add_argument(
        "--talk", type=_pair, help="LOW,HIGH s a conversation sends (quick 8,20; full 30,90)"
    )
    parser.add_argument(
        "--agent-ends",
        type=float,
        default=0.2,
        help="fraction of conversations the agent ends (0.2)",
    )
    parser.add_argument(
        "--sources", type=int, default=4, help="customer source addresses, from 127.0.0.2 (4)"
    )
    parser.add_argument(
        "--ramp", type=float, help="seconds over which customers first arrive (quick 5, full 20)"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=30.0,
        help="seconds to wait for acks and deliveries at the end, and per conversation (30)",
    )
    parser.add_argument(
        "--data-dir",
        help="directory for the gateway's database (default: the work directory, on disk)",
    )
    parser.add_argument(
        "--progress", type=float, help="seconds between progress lines (quick 10, full 30)"
    )
    options = parser.parse_args(argv)
    options.argv = sys.argv[1:] if argv is None else argv
    quick = options.quick
    defaults = {
        "duration": 45.0 if quick else 600.0,
        "customers": 200 if quick else 1000,
        "agents": 20 if quick else 100,
        "talk": (8.0, 20.0) if quick else (30.0, 90.0),
        "ramp": 5.0 if quick else 20.0,
        "progress": 10.0 if quick else 30.0,
    }
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    return asyncio.run(main_async(options))


if __name__ == "__main__":
    sys.exit(main())
