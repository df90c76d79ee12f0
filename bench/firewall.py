"""The firewall's accept decision with 10, 10,000 and 100,000 rules and set entries.

For each size, two rule sets: N rules ``ip saddr PREFIX drop`` (then an accept), and one
rule ``ip saddr @blocked drop`` over a set of N prefixes. Prefixes are a fixed-seed mix
of IPv4 /32, /24 and /16 and IPv6 /128 and /48. Each decision is a new connection's
address (text, as Twisted gives it; half of them blocked) through
``Firewall.admit`` — bans, the input chain, limits — and, separately, through the
listener wrapper (``buildProtocol`` + ``makeConnection`` on a StringTransport, which adds
the connection caps, conntrack and the protocol's construction). The baseline is what a
naive firewall does: test the address against each rule's network in order
(``ipaddress``), stopping at the first match.

    PYTHONPATH=. python bench/firewall.py           # about a minute
    PYTHONPATH=. python bench/firewall.py --quick   # fewer samples
"""

from __future__ import annotations

import argparse
import ipaddress
import platform
import random
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file's name
# would hide the ``firewall`` package.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from firewall.engine import FastLogger, Firewall
from firewall.wrapper import wrap

SIZES = (10, 10_000, 100_000)


def prefixes(n: int, rng: random.Random) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``n`` distinct networks, a mix of IPv4 and IPv6 lengths."""
    out: set = set()
    while len(out) < n:
        kind = rng.random()
        if kind < 0.5:
            out.add(ipaddress.IPv4Network((rng.getrandbits(32), 32)))
        elif kind < 0.7:
            out.add(ipaddress.IPv4Network((rng.getrandbits(24) << 8, 24)))
        elif kind < 0.75:
            out.add(ipaddress.IPv4Network((rng.getrandbits(16) << 16, 16)))
        elif kind < 0.9:
            out.add(ipaddress.IPv6Network((rng.getrandbits(128), 128)))
        else:
            out.add(ipaddress.IPv6Network((rng.getrandbits(48) << 80, 48)))
    return sorted(out, key=lambda net: (net.version, int(net.network_address)))


def addresses(nets: list, count: int, rng: random.Random) -> list[str]:
    """Odd positions inside a listed network (dropped), even ones random (almost always
    outside: accepted)."""
    out = []
    for i in range(count):
        if i % 2:
            net = rng.choice(nets)
            offset = rng.randrange(net.num_addresses) if net.num_addresses > 1 else 0
            out.append(str(net.network_address + offset))
        elif rng.random() < 0.7:
            out.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
        else:
            out.append(str(ipaddress.IPv6Address(rng.getrandbits(128))))
    return out


def rules_text(nets: list, as_set: bool) -> str:
    """The rules file for one case."""
    if as_set:
        elements = ", ".join(str(n) for n in nets)
        return (
            f"set blocked {{ type addr; elements = {{ {elements} }} }}\n"
            "chain input { policy accept; ip saddr @blocked drop; accept; }\n"
        )
    lines = [f"    ip saddr {n} drop;" for n in nets]
    return "chain input {\n    policy accept;\n" + "\n".join(lines) + "\n    accept;\n}\n"


def quiet(fw: Firewall) -> None:
    """Log events are made as in production, but not written: the bench measures
    decisions, not the log file."""
    fw._log = FastLogger(observer=lambda event: None)


def time_each(fn, items) -> list[float]:
    """Per-call latencies in µs."""
    clock = time.perf_counter_ns
    out = []
    for item in items:
        start = clock()
        fn(item)
        out.append((clock() - start) / 1000)
    return out


def baseline(nets: list):
    """The naive first-match scan over the rules' networks."""

    def decide(text: str) -> str:
        addr = ipaddress.ip_address(text)
        for net in nets:
            if addr.version == net.version and addr in net:
                return "drop"
        return "accept"

    return decide


def run_case(n: int, as_set: bool, samples: int, naive_samples: int) -> dict:
    rng = random.Random(n * 2 + as_set)
    nets = prefixes(n, rng)
    fw = Firewall(Clock())
    quiet(fw)
    start = time.perf_counter()
    fw.apply(rules_text(nets, as_set), "bench")
    load_s = time.perf_counter() - start

    def decide(text: str) -> str:
        return fw.admit("jsonim", "jsonim", text).verdict

    probe = addresses(nets, samples, rng)
    # correctness: the same verdicts as the naive scan
    naive = baseline(nets)
    for text in probe[:200]:
        assert decide(text) == naive(text), text
    ours = time_each(decide, probe)

    factory = wrap(
        Factory.forProtocol(Protocol),
        listener="jsonim",
        max_connections=10**9,
        max_connections_per_address=10**9,
        firewall=fw,
    )
    factory._log = fw._log
    host = IPv4Address("TCP", "127.0.0.1", 7070)
    peers = [(IPv6Address if ":" in text else IPv4Address)("TCP", text, 40000) for text in probe]

    def connect(peer) -> None:
        protocol = factory.buildProtocol(peer)
        protocol.makeConnection(StringTransport(peerAddress=peer, hostAddress=host))
        protocol.connectionLost(None)

    wrapped = time_each(connect, peers)
    naive_times = time_each(naive, probe[:naive_samples])
    return {
        "n": n,
        "kind": "set entries" if as_set else "rules",
        "load_s": load_s,
        "ours": ours,
        "wrapped": wrapped,
        "naive": naive_times,
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args(argv)
    samples = 5_000 if args.quick else 50_000
    print(f"Python {platform.python_version()} on {platform.machine()}; {samples} decisions/case")
    header = (
        "| case | load | ours p50 / p99 µs | accepted / dropped p50 µs"
        " | through the wrapper p50 / p99 µs | naive scan p50 / p99 µs | p50 ratio |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|")
    for n in SIZES:
        for as_set in (False, True):
            naive_samples = max(20, min(samples, 2_000_000 // n))
            r = run_case(n, as_set, samples, naive_samples)
            ratio = statistics.median(r["naive"]) / statistics.median(r["ours"])
            print(
                f"| {n:,} {r['kind']} | {r['load_s']:.2f} s"
                f" | {pct(r['ours'], 50):.2f} / {pct(r['ours'], 99):.2f}"
                f" | {pct(r['ours'][0::2], 50):.2f} / {pct(r['ours'][1::2], 50):.2f}"
                f" | {pct(r['wrapped'], 50):.2f} / {pct(r['wrapped'], 99):.2f}"
                f" | {pct(r['naive'], 50):,.1f} / {pct(r['naive'], 99):,.1f}"
                f" | {ratio:,.0f}x |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
