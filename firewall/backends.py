"""DNAT backends as HAProxy keeps them: several servers per listener, health checks,
failover, balancing.

One :class:`BackendPool` per DNAT listener of the running rules, rebuilt when ``fw
apply`` or SIGHUP changes its target. With ``check``, each server is connected to every
``interval`` (through the output chain and SNAT, as the traffic goes): ``fall`` failures
in a row mark it down, ``rise`` successes up again, and a state change is logged. A
failed connection of real traffic counts as a failed check. New connections go to the
servers that are up (backups only when no other is), in ``balance`` order:
``roundrobin`` (default), ``first`` (the first that is up) or ``leastconn``; if a server
cannot be reached, the next one is tried (each at most once per connection).
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from firewall.common import log_observer
from firewall.natrules import Backend, DnatTarget


@attrs.define(eq=False)
class Server:
    """One backend and what the pool knows of it."""

    backend: Backend
    up: bool = True
    successes: int = 0
    failures: int = 0
    active: int = 0
    checking: bool = False
    last_error: str = ""

    def as_json(self) -> dict[str, Any]:
        """As ``fw dnat list`` shows it."""
        return {
            "address": self.backend.text().removesuffix(" backup"),
            "backup": self.backend.backup,
            "state": "up" if self.up else "down",
            "active": self.active,
            "last_error": self.last_error or None,
        }


class _Probe(Protocol):
    def connectionMade(self) -> None:
        self.factory.pool.check_done(self.factory.server, None)
        self.transport.loseConnection()


class _ProbeFactory(ClientFactory):
    noisy = False
    protocol = _Probe

    def __init__(self, pool: BackendPool, server: Server) -> None:
        self.pool, self.server = pool, server

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.pool.check_done(self.server, reason.getErrorMessage())


class BackendPool:
    """The servers of one DNAT listener; ``reactor`` connects through the firewall."""

    _log = Logger(observer=log_observer)

    def __init__(self, name: str, target: DnatTarget, reactor: Any) -> None:
        self.name, self.target, self._reactor = name, target, reactor
        self.servers = [Server(b) for b in target.backends]
        self._next = 0
        self._checker: LoopingCall | None = None

    def start(self) -> None:
        """Start the health checks, if the target asks for them."""
        check = self.target.check
        if check is None or self._checker is not None:
            return
        self._checker = LoopingCall(self._check_all)
        self._checker.clock = self._reactor
        self._checker.start(check.interval_s, now=True)

    def stop(self) -> None:
        """Stop checking."""
        if self._checker is not None and self._checker.running:
            self._checker.stop()
        self._checker = None

    def candidates(self) -> list[Server]:
        """The servers to try for a new connection, in order."""
        up = [s for s in self.servers if s.up and not s.backend.backup]
        if not up:
            up = [s for s in self.servers if s.up]
        if not up:
            return []
        balance = self.target.balance
        if balance == "roundrobin":
            start = self._next % len(up)
            self._next += 1
            return up[start:] + up[:start]
        if balance == "leastconn":
            return sorted(up, key=lambda s: s.active)
        return up

    def _check_all(self) -> None:
        assert self.target.check is not None
        for server in self.servers:
            if server.checking:
                continue
            server.checking = True
            host, port = server.backend.address
            self._reactor.connectTCP(
                host, port, _ProbeFactory(self, server), self.target.check.timeout_s
            )

    def check_done(self, server: Server, error: str | None) -> None:
        """A health check (or a connection of real traffic) succeeded or failed."""
        server.checking = False
        check = self.target.check
        if check is None:
            return
        if error is None:
            server.successes += 1
            server.failures = 0
            if not server.up and server.successes >= check.rise:
                server.up = True
                self._log.warn(
                    "dnat.{name}: backend {backend} is up", name=self.name, backend=_show(server)
                )
            return
        server.failures += 1
        server.successes = 0
        server.last_error = error
        if server.up and server.failures >= check.fall:
            server.up = False
            self._log.warn(
                "dnat.{name}: backend {backend} is down: {error}",
                name=self.name,
                backend=_show(server),
                error=error,
            )

    def as_json(self) -> dict[str, Any]:
        """The pool as ``fw dnat list`` shows it."""
        return {
            "listener": self.name,
            "target": self.target.text(),
            "servers": [s.as_json() for s in self.servers],
        }


def _show(server: Server) -> str:
    return server.backend.text().removesuffix(" backup")


class DnatBackends:
    """The pools of every DNAT listener, following the running rules (``firewall``'s
    installs); health checks run between :meth:`start` and :meth:`stop`."""

    def __init__(self, firewall: Any, reactor: Any) -> None:
        self._reactor = reactor
        self._pools: dict[str, BackendPool] = {}
        self._running = False
        firewall.on_install.append(self._installed)
        self._installed(firewall.ruleset)

    def pool(self, name: str) -> BackendPool | None:
        """The pool of DNAT listener ``name`` under the running rules."""
        return self._pools.get(name)

    def _installed(self, ruleset: Any) -> None:
        for name in list(self._pools):
            target = ruleset.dnat.get(name)
            if target is None or target != self._pools[name].target:
                self._pools.pop(name).stop()
        for name, target in ruleset.dnat.items():
            if name not in self._pools:
                pool = self._pools[name] = BackendPool(name, target, self._reactor)
                if self._running:
                    pool.start()

    def start(self) -> None:
        """Start every pool's health checks."""
        self._running = True
        for pool in self._pools.values():
            pool.start()

    def stop(self) -> None:
        """Stop every pool's health checks."""
        self._running = False
        for pool in self._pools.values():
            pool.stop()

    def as_json(self) -> list[dict[str, Any]]:
        """Every pool, as ``fw dnat list`` shows them."""
        return [pool.as_json() for pool in self._pools.values()]
