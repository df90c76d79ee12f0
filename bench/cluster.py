"""Cluster figures: relay with 1, 2, 3 workers; a cross-node message; routing through Redis.

Run from a checkout (``bench/run`` builds the venv; Debian's redis-server, postgresql,
ngircd and prosody)::

    bench/run cluster.py --quick     # a few minutes
    bench/run cluster.py             # more pairs, longer windows, Prosody too

Cases, on loopback, with Redis and a private PostgreSQL cluster started here:

- ``workers``: JSON-IM relay through one gateway with ``[cluster] workers`` = 1, 2, 3
  (one shared listening socket; a customer and its agent land on whichever worker the
  kernel picks, so most pairs cross workers through Redis). Maximum rate (closed loop),
  p99 at 50% of it, the server CPU (every worker's), and messages per server
  CPU-second beside ngircd's (and Prosody's in full mode) on the same generator.
- ``crossnode``: two nodes; the same open-loop rate with each customer's agent on the
  customer's node, then on the other node: what a cross-node message adds at p99.
- ``routing``: three nodes and 10,000 agents in Redis; customers arrive on all three,
  each routing decision ends with the atomic reservation script. Decisions per second
  and the reservation's p99 from the nodes' ``imgateway_cluster_reserve_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

import _common as common
import _loadgen as lg
import relay
from pg_server import PgServer

PASSWORD = relay.PASSWORD
IN_STEP = re.compile(r"cluster: node (\S+) in step with redis")


@attrs.frozen
class Figures:
    """One server's medians over the repeats of :func:`relay.measure` (no peer)."""

    rate: float
    half_p99: float
    server_cpu: float
    generator_cpu: float


async def measure(rig: relay.Rig, options: argparse.Namespace) -> Figures:
    """The maximum, and p99 at half of it, as the relay bench measures them."""
    side, _ = await relay.measure(rig, None, options)
    return Figures(
        side.max_rate(),
        relay.median([r.p99 for r in side.half]),
        relay.median([r.server_cpu for r in side.maxima]),
        relay.median([r.generator_cpu for r in side.maxima]),
    )


def relay_row(label: str, figures: Figures, versus: str = "") -> list[object]:
    """One row of the relay table."""
    per_cpu = figures.rate / max(figures.server_cpu, 1e-9)
    return [
        label,
        f"{figures.rate:,.0f}",
        versus,
        f"{figures.half_p99:,.0f}",
        f"{figures.server_cpu:.0%}",
        f"{figures.generator_cpu:.0%}",
        f"{per_cpu:,.0f}",
    ]


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every process below it (a supervisor's workers)."""
    total = 0.0
    try:
        total = _own_cpu(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(tree_cpu(int(child)) for child in children)


_own_cpu = common.cpu_seconds
# The relay bench reads the server's CPU through these: count a supervisor's workers too.
common.cpu_seconds = tree_cpu
lg.process_cpu = lambda pid: 0.0 if pid is None else tree_cpu(pid)


class Redis:
    """redis-server on a free loopback port, no persistence."""

    def __init__(self, directory: Path) -> None:
        self.port = common.free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=common._child_setup,
        )
        common.wait_port(self.port, self.proc)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """redis-cli against this server."""
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def cluster_config(data: Path, dsn: str, redis: int, node: str, workers: int = 1) -> str:
    """The bench's gateway configuration, on PostgreSQL and Redis."""
    return common.gateway_config(data, log_level="info") + (
        f'\n[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
        f'\n[cluster]\nredis = "redis://127.0.0.1:{redis}/0"\nnode = "{node}"\n'
        f"workers = {workers}\nheartbeat_s = 0.5\nnode_timeout_s = 5\n"
    )


def start(gateway: common.Gateway, nodes: int) -> None:
    """Start and wait until ``nodes`` nodes (workers) are in step with Redis."""
    gateway.start(["jsonim"])
    deadline = time.monotonic() + 60
    while sum(1 for line in list(gateway.lines) if IN_STEP.search(line)) < nodes:
        if time.monotonic() > deadline or gateway.proc.poll() is not None:
            raise RuntimeError("nodes not in step:\n" + "\n".join(gateway.lines[-30:]))
        time.sleep(0.05)


def histogram_p(text: str, name: str, fraction: float) -> tuple[float, float]:
    """(count, the upper bound of the bucket holding the ``fraction`` quantile), summed
    over every node's scrape in ``text``."""
    buckets: dict[float, float] = {}
    for match in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M):
        bound = float("inf") if match.group(1) == "+Inf" else float(match.group(1))
        buckets[bound] = buckets.get(bound, 0.0) + float(match.group(2))
    if not buckets:
        return 0.0, float("nan")
    total = buckets[float("inf")]
    for bound in sorted(buckets):
        if buckets[bound] >= fraction * total:
            return total, bound
    return total, float("inf")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


# -- the cases ---------------------------------------------------------------------------


async def workers_case(options, root: Path, dsn: str, redis: Redis) -> list[list[object]]:
    rows = []
    agents = [f"wagent{i}" for i in range(options.agents)]
    capacity = options.pairs // options.agents + 2
    base = None
    for count in (1, 2, 3):
        redis.cli("FLUSHALL")
        directory = root / f"workers{count}"
        directory.mkdir()
        gateway = common.Gateway(
            options.venv, directory, cluster_config(directory / "data", dsn, redis.port, "w", count)
        )
        if count == 1:
            for name in agents:
                gateway.add_agent(name, PASSWORD, capacity)
        try:
            start(gateway, count)
            print(
                f"workers {count}: {options.pairs} pairs (load {common.load_average()})", flush=True
            )
            rig = await relay.jsonim_rig(gateway, options.pairs, agents)
            figures = await measure(rig, options)
            rig.close()
        finally:
            gateway.stop()
        base = base or figures.rate
        label = f"{count} worker{'s' if count > 1 else ''}"
        rows.append(relay_row(label, figures, f"{figures.rate / base:.2f}x"))
    return rows


async def peers_case(options, root: Path) -> list[list[object]]:
    rows = []
    ngircd = common.Ngircd(root / "ngircd")
    ngircd.start()
    try:
        print(f"ngircd: {options.pairs} pairs (load {common.load_average()})", flush=True)
        rig = await relay.ngircd_rig(ngircd, options.pairs)
        figures = await measure(rig, options)
        rig.close()
    finally:
        ngircd.stop()
    rows.append(relay_row("ngircd (IRC, user to user)", figures))
    if options.quick:
        return rows
    prosody = common.Prosody(root / "prosody")
    prosody.start()
    try:
        print(f"prosody: {options.pairs} pairs (load {common.load_average()})", flush=True)
        rig = await relay.prosody_rig(prosody, options.pairs)
        figures = await measure(rig, options)
        rig.close()
    finally:
        prosody.stop()
    rows.append(relay_row("Prosody (XMPP c2s)", figures))
    return rows


async def crossnode_case(options, root: Path, dsn: str, redis: Redis) -> list[list[object]]:
    redis.cli("FLUSHALL")
    agents = [f"xagent{i}" for i in range(options.agents)]
    capacity = options.pairs // options.agents + 2
    gateways = []
    for name in ("a", "b"):
        directory = root / f"node-{name}"
        directory.mkdir()
        gateways.append(
            common.Gateway(
                options.venv, directory, cluster_config(directory / "data", dsn, redis.port, name)
            )
        )
    for name in agents:
        gateways[0].add_agent(name, PASSWORD, capacity)
    rows = []
    try:
        for gateway in gateways:
            start(gateway, 1)
        results = {}
        for label, agent_gw in (("same node", gateways[0]), ("across nodes", gateways[1])):
            rig = await _crossing_rig(gateways[0], agent_gw, options.pairs, agents)
            print(
                f"crossnode {label}: rate {options.cross_rate:,.0f} msg/s "
                f"(load {common.load_average()})",
                flush=True,
            )
            result = await lg.run_open(
                rig.conns, rig.senders, options.cross_rate, options.warmup, options.seconds
            )
            rig.close()
            results[label] = result
            rows.append(
                [
                    label,
                    f"{options.cross_rate:,.0f}",
                    f"{result.p50:,.0f}",
                    f"{result.p99:,.0f}",
                    f"{result.p999:,.0f}",
                ]
            )
        added = results["across nodes"].p99 - results["same node"].p99
        rows.append(["cross-node adds (p99)", "", "", f"{added:,.0f}", ""])
    finally:
        for gateway in gateways:
            gateway.stop()
    return rows


async def _crossing_rig(customer_gw, agent_gw, pairs: int, agents: list[str]) -> relay.Rig:
    """Agents log in on ``agent_gw``, customers arrive on ``customer_gw``."""
    return await relay.jsonim_rig(customer_gw, pairs, agents, agents_on=agent_gw, name="crossnode")


# 10,000 agents of a node that takes no offers ("sim"), written as the nodes write theirs.
SEED_AGENTS = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local name = 'sim' .. i
  local rec = cjson.encode({name = name, alias = name, capacity = 1000, protocol = 'jsonim',
    session = 's-sim' .. i, client_name = 'bench', client_version = '1',
    skills = {billing = 1 + (i % 5)}, location = 'lan', bot = false, addresses = {},
    features = {}, status = 'available', idle_since = i, protocol_capacity = {},
    wrapping_up = false, lapses = 0, node = 'sim'})
  redis.call('HSET', KEYS[1] .. name, 'rec', rec)
  redis.call('SADD', KEYS[2], name)
end
return n
"""


async def routing_case(options, root: Path, dsn: str, redis: Redis) -> list[list[object]]:
    redis.cli("FLUSHALL")
    redis.cli("EVAL", SEED_AGENTS, "2", "imgw:a:", "imgw:agents", str(options.agents_in_redis))
    # The floor: one client's reservations, one after another, nothing else running.
    probe = subprocess.run(
        [
            str(options.venv / "bin" / "python"),
            "-P",
            str(Path(__file__).parent / "_reserve_probe.py"),
            str(redis.port),
            str(options.agents_in_redis),
            str(options.customers),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    floor = json.loads(probe.stdout.strip().splitlines()[-1])
    print(
        f"routing: one client's reservations p50/p99 {floor['p50_us']:.0f}/"
        f"{floor['p99_us']:.0f} µs (load {common.load_average()})",
        flush=True,
    )
    gateways = []
    for name in ("r1", "r2", "r3"):
        directory = root / f"routing-{name}"
        directory.mkdir()
        gateways.append(
            common.Gateway(
                options.venv, directory, cluster_config(directory / "data", dsn, redis.port, name)
            )
        )
    try:
        for gateway in gateways:
            start(gateway, 1)
        print(
            f"routing: {options.agents_in_redis:,} agents in Redis, {options.customers:,} "
            f"customers on 3 nodes (load {common.load_average()})",
            flush=True,
        )
        line = (
            json.dumps(
                {
                    "type": "hello",
                    "protocol": "jsonim/1",
                    "role": "customer",
                    "client": {"name": "bench", "version": "1"},
                    "topic": "billing",
                }
            ).encode()
            + b"\n"
        )
        conns = []
        began = time.monotonic()
        # Arrivals paced at --arrivals per second (open loop), spread over the three nodes.
        for i in range(options.customers):
            due = began + i / options.arrivals
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            conn = await lg.connect(gateways[i % 3].ports["jsonim"])
            conn.write(line)
            conns.append(conn)
        for conn in conns:
            await conn.expect(rb'"type": ?"queued"[^\n]*\n')
        # Every decision ends with its reservation: wait until all are counted.
        metrics_ports = [_metrics_port(g) for g in gateways]
        while True:
            text = "".join(scrape(p) for p in metrics_ports)
            count, _ = histogram_p(text, "imgateway_cluster_reserve_seconds", 0.99)
            if count >= options.customers or time.monotonic() - began > 120:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - began
        _, p50 = histogram_p(text, "imgateway_cluster_reserve_seconds", 0.50)
        _, p99 = histogram_p(text, "imgateway_cluster_reserve_seconds", 0.99)
        for conn in conns:
            conn.close()
    finally:
        for gateway in gateways:
            gateway.stop()
    return [
        [
            f"{options.agents_in_redis:,}",
            f"{options.customers:,} at {options.arrivals:,.0f}/s",
            f"{count / elapsed:,.0f}",
            f"{floor['p50_us'] / 1e3:.2f} / {floor['p99_us'] / 1e3:.2f}",
            f"≤ {p50 * 1e3:g}",
            f"≤ {p99 * 1e3:g}",
        ]
    ]


def _metrics_port(gateway: common.Gateway) -> int:
    for line in gateway.lines:
        match = re.search(r"metrics listener \S+ listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError("no metrics listener")


async def main_async(options) -> int:
    options.venv = Path(options.venv) if options.venv else common.default_venv()
    root = common.workdir("cluster")
    common.raise_nofile()
    wanted = options.cases.split(",")
    redis = Redis(root)
    pg = PgServer()
    pg.start()
    out = []
    try:
        dsn = pg.new_database()
        if "workers" in wanted:
            rows = await workers_case(options, root, dsn, redis)
            rows += await peers_case(options, root)
            out.append(
                common.table(
                    [
                        "relay (JSON-IM)",
                        "max msg/s",
                        "vs 1",
                        "p99 µs @50%",
                        "server CPU",
                        "generator CPU",
                        "msg per server CPU-s",
                    ],
                    rows,
                )
            )
        if "crossnode" in wanted:
            rows = await crossnode_case(options, root, dsn, redis)
            out.append(
                common.table(["customer and agent", "msg/s", "p50 µs", "p99 µs", "p99.9 µs"], rows)
            )
        if "routing" in wanted:
            rows = await routing_case(options, root, dsn, redis)
            out.append(
                common.table(
                    [
                        "agents in Redis",
                        "customers",
                        "decisions/s",
                        "one client's reserve p50 / p99 ms",
                        "nodes: reserve p50 ms (bucket)",
                        "nodes: reserve p99 ms (bucket)",
                    ],
                    rows,
                )
            )
    finally:
        redis.stop()
        pg.stop()
    print()
    print(
        f"pairs {options.pairs}, {options.seconds:g} s per point, load average "
        f"{common.load_average()}, {os.cpu_count()} CPUs"
    )
    for table in out:
        print(table)
        print()
    print(f"(work files: {root})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes")
    parser.add_argument("--venv", help="venv with imgateway[cluster] installed (default: this one)")
    parser.add_argument(
        "--cases",
        default="workers,crossnode,routing",
        help="comma-separated: workers, crossnode, routing",
    )
    parser.add_argument("--pairs", type=int, help="customer-agent pairs (quick 40, full 150)")
    parser.add_argument("--agents", type=int, default=5, help="agent accounts")
    parser.add_argument("--window", type=int, default=8, help="closed loop: in flight per side")
    parser.add_argument("--seconds", type=float, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument(
        "--cross-rate", type=float, default=2000.0, help="open-loop msg/s of the cross-node case"
    )
    parser.add_argument("--agents-in-redis", type=int, default=10_000, help="routing case")
    parser.add_argument("--customers", type=int, help="routing case (quick 2,000, full 10,000)")
    parser.add_argument(
        "--arrivals", type=float, default=500.0, help="routing case: customers per second"
    )
    parser.add_argument("--repeats", type=int, help="repeats of each point (quick 1, full 3)")
    options = parser.parse_args(argv)
    options.rates = None
    if options.repeats is None:
        options.repeats = 1 if options.quick else 3
    if options.pairs is None:
        options.pairs = 40 if options.quick else 150
    if options.seconds is None:
        options.seconds = 3.0 if options.quick else 10.0
    if options.customers is None:
        options.customers = 2000 if options.quick else 10_000
    return asyncio.run(main_async(options))


if __name__ == "__main__":
    sys.exit(main())
