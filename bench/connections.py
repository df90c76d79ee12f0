"""Idle connections at scale, start-up time: the gateway beside Prosody and ngircd.

Run from a checkout (``bench/run`` builds the venv; see bench/README.md)::

    bench/run connections.py --quick     # 10,000 customers per server, under two minutes
    bench/run connections.py             # 10,000 and 50,000

For each server and count: open that many customer connections from 127.0.0.2 ...
(a new source address every 20,000 connections, so that no address runs out of
ephemeral ports), at most ``--concurrency`` handshakes at a time, and bring each to its
idle state:

- gateway JSON-IM: ``hello`` as a customer, then idle in the interview (``welcome``
  and the first ``prompt`` received);
- gateway IRC listener and ngircd: ``NICK``/``USER``, registered (``001`` … ``376``);
- gateway XMPP listener and Prosody: stream, SASL ANONYMOUS, resource bound.

Reported: the server's RSS growth divided by the count (KiB per connection, from
/proc), the accept rate (TCP connections per second until all are connected) and the
time until all are in their idle state. Each count has a deadline (``--deadline``);
the bench stops by itself. Also measured: seconds from ``twistd imgateway`` being
started to its listener being logged (median of ``--starts`` starts).

The container's hard ``RLIMIT_NOFILE`` bounds one process's sockets (20,000 on the
host these figures were taken on); a count above it is lowered to fit, and said so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import _loadgen as lg
from relay import irc_register, xmpp_login

PER_SOURCE = 20_000
INTERVIEW = """
[interview]
answer_timeout_s = 3600
greeting = ""

[[interview.fields]]
name = "name"
prompt = "What is your name?"
kind = "text"
"""
HELLO = (
    json.dumps(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "customer",
            "client": {"name": "bench", "version": "1"},
        }
    ).encode()
    + b"\n"
)


async def jsonim_idle(conn: lg.Conn, index: int) -> None:
    """A JSON-IM customer, waiting in the interview."""
    conn.write(HELLO)
    await conn.expect(rb'"type": ?"prompt"', 60)


async def irc_idle(conn: lg.Conn, index: int) -> None:
    """An IRC user, registered."""
    await irc_register(conn, f"idle{index}")


async def xmpp_idle(conn: lg.Conn, index: int) -> None:
    """An anonymous XMPP user, resource bound."""
    await xmpp_login(conn, None)


@attrs.frozen
class Outcome:
    """One server, one count."""

    server: str
    wanted: int
    reached: int
    kib_per_conn: float
    accept_rate: float
    all_idle_s: float


async def open_idle(
    name: str,
    pid: int,
    port: int,
    count: int,
    idle: Callable[[lg.Conn, int], Awaitable[None]],
    options: argparse.Namespace,
) -> tuple[Outcome, list[lg.Conn]]:
    """Open ``count`` connections, each brought to its idle state; the outcome."""
    await asyncio.sleep(0.5)
    before = common.rss_kib(pid)
    conns: list[lg.Conn] = []
    gate = asyncio.Semaphore(options.concurrency)
    connected_at: list[float] = []
    failures: list[str] = []
    begun = time.monotonic()
    deadline = begun + options.deadline

    async def one(index: int) -> None:
        async with gate:
            if time.monotonic() > deadline or len(failures) > 20:
                return
            source = f"127.0.0.{2 + index // PER_SOURCE}"
            try:
                conn = await lg.connect(port, source)
                connected_at.append(time.monotonic())
                conns.append(conn)
                await asyncio.wait_for(idle(conn, index), max(0.1, deadline - time.monotonic()))
                conn.buf = bytearray()  # keep the generator small; nothing more is read
                conn.pos = 0
                conn.start_run(_DISCARD)
            except Exception as e:  # counted and reported, the run goes on
                failures.append(f"{type(e).__name__}: {e}"[:200])

    await asyncio.gather(*(one(i) for i in range(count)))
    done = time.monotonic()
    reached = sum(1 for c in conns if c.meter is _DISCARD and not c.lost)
    await asyncio.sleep(1.0)  # let the server settle before reading its RSS
    after = common.rss_kib(pid)
    accept_span = (max(connected_at) - begun) if connected_at else float("nan")
    if failures:
        print(f"  {name}: {len(failures)} failures, e.g. {failures[0]}", flush=True)
    outcome = Outcome(
        name,
        count,
        reached,
        (after - before) / reached if reached else float("nan"),
        len(connected_at) / accept_span if connected_at else float("nan"),
        done - begun,
    )
    print(
        f"  {name}: {reached:,}/{count:,} idle in {outcome.all_idle_s:.1f} s, "
        f"accept {outcome.accept_rate:,.0f}/s, RSS {before:,} -> {after:,} KiB "
        f"= {outcome.kib_per_conn:.1f} KiB each (load {common.load_average()})",
        flush=True,
    )
    return outcome, conns


class _Discard:
    """A meter that ignores whatever arrives on an idle connection."""

    def scan(self, conn: lg.Conn, data: bytes) -> None:
        """Drop it."""


_DISCARD = _Discard()


def startup_times(venv: Path, starts: int) -> list[float]:
    """Seconds from ``twistd imgateway`` started to its JSON-IM listener logged."""
    times = []
    for _ in range(starts):
        directory = common.workdir("start")
        gateway = common.Gateway(venv, directory, common.gateway_config(directory / "data"))
        try:
            times.append(gateway.start(["jsonim"]))
        finally:
            gateway.stop()
    return times


async def main_async(options: argparse.Namespace) -> int:
    """Every server, every count; then the table."""
    venv = Path(options.venv) if options.venv else common.default_venv()
    limit = common.raise_nofile()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    counts = []
    for wanted in options.counts:
        fitting = min(wanted, limit - 500, hard - 500)
        if fitting < wanted:
            print(f"{wanted:,} connections do not fit RLIMIT_NOFILE {hard:,}: using {fitting:,}")
        counts.append((wanted, fitting))
    wanted_servers = options.servers.split(",")
    outcomes: list[Outcome] = []

    starts = startup_times(venv, options.starts)
    print(f"start to listening: {', '.join(f'{s:.2f}' for s in starts)} s", flush=True)

    for wanted, count in counts:
        print(f"{count:,} idle connections per server (load {common.load_average()})")
        for server in wanted_servers:
            root = common.workdir(f"conn-{server}")
            if server.startswith("gateway-"):
                protocol = server.split("-", 1)[1]
                config = common.gateway_config(
                    root / "data", irc=protocol == "irc", xmpp=protocol == "xmpp"
                )
                config = config.replace('[interview]\nanswer_timeout_s = 3600\ngreeting = ""\n'
                                        'fields = []\n', INTERVIEW)  # fmt: skip
                process = common.Gateway(venv, root, config)
                process.start([protocol])
                port = process.ports[protocol]
                idle = {"jsonim": jsonim_idle, "irc": irc_idle, "xmpp": xmpp_idle}[protocol]
            elif server == "ngircd":
                process = common.Ngircd(root)
                process.start()
                port, idle = process.port, irc_idle
            elif server == "prosody":
                process = common.Prosody(root)
                process.start()
                port, idle = process.port, xmpp_idle
            else:
                raise SystemExit(f"unknown server {server}")
            conns: list[lg.Conn] = []
            try:
                outcome, conns = await open_idle(server, process.pid, port, count, idle, options)
                outcomes.append(attrs.evolve(outcome, wanted=wanted))
            finally:
                for conn in conns:
                    conn.reset()
                await asyncio.sleep(0.2)
                process.stop()

    print()
    print(
        f"start to listening (target ≤ 1 s): median {statistics.median(starts):.2f} s, "
        f"max {max(starts):.2f} s over {len(starts)} starts"
    )
    rows = []
    peers = {"gateway-irc": "ngircd", "gateway-xmpp": "prosody", "gateway-jsonim": "ngircd"}
    by_key = {(o.server, o.wanted): o for o in outcomes}
    for o in outcomes:
        if not o.server.startswith("gateway-"):
            continue
        peer = by_key.get((peers[o.server], o.wanted))
        label = f"{o.server} {o.reached:,}/{o.wanted:,}"
        rows.append(
            [
                f"{label}: KiB per idle connection",
                f"{o.kib_per_conn:.1f}",
                f"{peer.kib_per_conn:.1f} ({peer.server}, {peer.reached:,} idle)" if peer else "—",
                common.ratio(o.kib_per_conn, peer.kib_per_conn, False) if peer else "—",
            ]
        )
        rows.append(
            [
                f"{label}: accept rate /s",
                f"{o.accept_rate:,.0f}",
                f"{peer.accept_rate:,.0f}" if peer else "—",
                common.ratio(o.accept_rate, peer.accept_rate) if peer else "—",
            ]
        )
        rows.append(
            [
                f"{label}: s until all idle",
                f"{o.all_idle_s:.1f}",
                f"{peer.all_idle_s:.1f}" if peer else "—",
                common.ratio(o.all_idle_s, peer.all_idle_s, False) if peer else "—",
            ]
        )
    print(common.table(["metric", "ours", "peer", "ratio (>1: ours better)"], rows))
    print(f"load average {common.load_average()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 only, under two minutes")
    parser.add_argument("--venv", help="venv with imgateway installed (default: this one)")
    parser.add_argument(
        "--servers",
        default="gateway-jsonim,gateway-irc,ngircd,gateway-xmpp,prosody",
        help="comma-separated: gateway-jsonim, gateway-irc, gateway-xmpp, ngircd, prosody",
    )
    parser.add_argument("--counts", help="comma-separated connection counts")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes at once")
    parser.add_argument("--deadline", type=float, help="seconds allowed per server and count")
    parser.add_argument("--starts", type=int, default=5, help="start-up time samples")
    options = parser.parse_args(argv)
    if options.counts:
        options.counts = [int(c) for c in options.counts.split(",")]
    else:
        options.counts = [5_000] if options.quick else [10_000, 50_000]
    if options.deadline is None:
        options.deadline = 20.0 if options.quick else 120.0
    if options.quick:
        options.starts = min(options.starts, 3)
    return asyncio.run(main_async(options))


if __name__ == "__main__":
    sys.exit(main())
