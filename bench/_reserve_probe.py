"""One client's reservation round trips through Redis, as a node makes them.

Run by ``bench/cluster.py`` (routing case) with the bench venv's Python::

    python -P bench/_reserve_probe.py PORT AGENTS COUNT

(``-P``: bench/ off the path, whose firewall.py is not the firewall package.)

Reserves ``COUNT`` seats, one after the other, on agents already in Redis (``sim1`` ..
``simAGENTS``, as the routing case seeds them) with the node's own code
(:class:`gateway.directory.redis.RedisDirectory` over :class:`gateway.cluster.link.RedisLink`)
and prints one JSON line: p50, p99 and max in µs. The node's other work is not in it:
this is the floor a routing decision pays for its atomic reservation.
"""

from __future__ import annotations

import json
import sys
import time

from twisted.internet import defer, reactor, task

from gateway.cluster.link import RedisLink
from gateway.directory.records import AgentPresence
from gateway.directory.redis import RedisDirectory


@defer.inlineCallbacks
def probe(port: int, agents: int, count: int):
    link = RedisLink(f"redis://127.0.0.1:{port}/0", reactor)
    link.startService()
    deadline = time.monotonic() + 10
    while not link.available:
        if time.monotonic() > deadline:
            raise SystemExit("redis not reachable")
        yield task.deferLater(reactor, 0.01, lambda: None)
    directory = RedisDirectory(link, "probe")
    times = []
    for i in range(count):
        n = 1 + i % agents
        record = AgentPresence(
            name=f"sim{n}", alias="x", capacity=1000, protocol="jsonim", session=f"s-sim{n}"
        )
        began = time.perf_counter()
        ok = yield directory.reserve(record, f"o-probe-{i}", "jsonim")
        times.append(time.perf_counter() - began)
        if not ok:
            raise SystemExit(f"sim{n} refused a seat")
    times.sort()
    print(
        json.dumps(
            {
                "p50_us": times[len(times) // 2] * 1e6,
                "p99_us": times[int(len(times) * 0.99)] * 1e6,
                "max_us": times[-1] * 1e6,
            }
        )
    )
    yield link.stopService()


def main() -> None:
    port, agents, count = (int(a) for a in sys.argv[1:4])
    done = []
    reactor.callWhenRunning(
        lambda: probe(port, agents, count).addBoth(lambda r: (done.append(r), reactor.stop()))
    )
    reactor.run()
    if done and isinstance(done[0], Exception):
        raise done[0]


if __name__ == "__main__":
    main()
