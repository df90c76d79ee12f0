"""Several processes of one gateway on one host, sharing its listening sockets.

With ``[cluster] workers = N`` (N > 1), ``twistd imgateway`` is a supervisor: it binds
every protocol listener itself (each a ``tcp:`` or ``tcp6:`` endpoint), then runs N
worker processes that inherit the bound sockets (as systemd passes them: fds from 3,
``LISTEN_FDS``, Twisted's ``systemd:`` endpoint) and accept on them, the kernel
handing each connection to one of them. Each worker is a node of the cluster
(``<node>-w<i>``), so a customer and an agent on different workers converse as on
different hosts. Worker ``i`` serves the admin API and metrics on the configured port
plus ``i`` (port 0 stays 0). A worker that dies is started again; on SIGTERM the
workers stop one after the other, each handing its conversations to those still up.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from gateway import logs
from gateway.daemon import BACKLOG, StartupError

WORKER_ENV = "IMGATEWAY_WORKER"
LISTENERS_ENV = "IMGATEWAY_WORKER_LISTENERS"
# A worker that dies is started again after this, doubled per quick death up to a minute.
RESTART_S = 1.0


def _endpoint(description: str) -> tuple[int, str, int, int]:
    """(address family, interface, port, backlog) of a ``tcp:``/``tcp6:`` endpoint."""
    parts = description.split(":")
    kind = parts[0].lower()
    if kind not in ("tcp", "tcp6") or len(parts) < 2:
        raise ValueError("workers share tcp: and tcp6: listeners only (terminate TLS at HAProxy)")
    options = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    family = socket.AF_INET6 if kind == "tcp6" else socket.AF_INET
    default = "::" if kind == "tcp6" else "0.0.0.0"
    return (
        family,
        options.get("interface", default),
        int(parts[1]),
        int(options.get("backlog", BACKLOG)),
    )


def shifted(description: str, index: int) -> str:
    """An endpoint string with its port moved up by ``index`` (port 0 stays 0)."""
    parts = description.split(":")
    if len(parts) > 1 and parts[1].isdigit() and int(parts[1]) and index:
        parts[1] = str(int(parts[1]) + index)
    return ":".join(parts)


def worker_config(config: Any, environ: Any = None) -> Any:
    """The configuration a worker runs with: inherited listeners, its own admin ports
    and node name. ``config`` unchanged outside a worker."""
    environ = os.environ if environ is None else environ
    if WORKER_ENV not in environ:
        return config
    index = int(environ[WORKER_ENV])
    listeners = json.loads(environ.get(LISTENERS_ENV, "{}"))
    sections = dict(config.sections)
    admin = sections["admin"]
    sections["admin"] = attrs.evolve(
        admin,
        listen=tuple(shifted(d, index) for d in admin.listen),
        metrics=tuple(shifted(d, index) for d in admin.metrics),
    )
    cluster = sections["cluster"]
    base = cluster.node or socket.gethostname()
    sections["cluster"] = attrs.evolve(cluster, node=f"{base}-w{index}", workers=1)
    merged = {kind: tuple(listeners.get(kind, ())) for kind in config.listeners}
    return attrs.evolve(config, listeners=merged, sections=sections)


class _Worker(ProcessProtocol):
    def __init__(self, supervisor: Workers, index: int) -> None:
        self.supervisor, self.index = supervisor, index
        self.ended: Deferred = Deferred()

    def processEnded(self, reason: Any) -> None:  # noqa: N802 (Twisted's name)
        self.ended.callback(reason.value.exitCode)
        self.supervisor._ended(self)


class Workers(Service):
    """The supervisor of ``workers`` gateway processes on shared sockets."""

    _log = Logger(observer=logs.observer)

    def __init__(self, config: Any, config_path: str | None, reactor: Any) -> None:
        self.config = config
        self.config_path = config_path
        self.reactor = reactor
        self.count = config.sections["cluster"].workers
        if not config.sections["cluster"].effective_redis():
            raise StartupError("cluster.workers: several workers need [cluster] redis")
        if config.sections["firewall"].dnat:
            raise StartupError("cluster.workers: DNAT listeners need workers = 1")
        self._sockets: list[socket.socket] = []
        self._listeners: dict[str, list[str]] = {}
        self._running: dict[int, _Worker] = {}
        self._quick_deaths: dict[int, int] = {}
        self._stopping = False

    def privilegedStartService(self) -> None:
        """Bind every protocol listener (before privileges are dropped)."""
        for kind, endpoints in self.config.listeners.items():
            for description in endpoints:
                try:
                    family, interface, port, backlog = _endpoint(description)
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((interface, port))
                    sock.listen(backlog)
                    sock.setblocking(False)
                except (ValueError, OSError) as e:
                    raise StartupError(
                        f"listeners.{kind}: cannot listen on {description!r}: {e}"
                    ) from None
                index = len(self._sockets)
                self._sockets.append(sock)
                self._listeners.setdefault(kind, []).append(
                    f"systemd:domain={'INET6' if family == socket.AF_INET6 else 'INET'}"
                    f":index={index}"
                )
                host, bound = sock.getsockname()[:2]
                self._log.info(
                    "{kind} listener {description} listening on {host}:{port} (shared by"
                    " {count} workers)",
                    kind=kind,
                    description=description,
                    host=host,
                    port=bound,
                    count=self.count,
                )
        super().privilegedStartService()

    def startService(self) -> None:
        """Start the workers."""
        super().startService()
        for index in range(self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
        env[WORKER_ENV] = str(index)
        env[LISTENERS_ENV] = json.dumps(self._listeners)
        env["LISTEN_FDS"] = str(len(self._sockets))
        env["LISTEN_FDNAMES"] = ":".join(f"fd{i}" for i in range(len(self._sockets)))
        args = [sys.executable, "-m", "gateway.cluster.worker_main", "-n", "--pidfile=",
                "--logfile=-", "imgateway"]  # fmt: skip
        if self.config_path:
            args += ["--config", self.config_path]
        fds: dict[int, Any] = {0: "w", 1: 1, 2: 2}
        for i, sock in enumerate(self._sockets):
            fds[3 + i] = sock.fileno()
        worker = _Worker(self, index)
        self.reactor.spawnProcess(worker, sys.executable, args, env=env, childFDs=fds)
        worker.started = self.reactor.seconds()
        self._running[index] = worker
        self._log.info("worker {index} started", index=index)

    def _ended(self, worker: _Worker) -> None:
        if self._running.get(worker.index) is worker:
            del self._running[worker.index]
        if self._stopping:
            return
        quick = self.reactor.seconds() - worker.started < 10
        deaths = self._quick_deaths[worker.index] = (
            self._quick_deaths.get(worker.index, 0) + 1 if quick else 0
        )
        delay = min(60.0, RESTART_S * 2**deaths)
        self._log.warn(
            "worker {index} exited; started again in {delay:g}s", index=worker.index, delay=delay
        )
        self.reactor.callLater(delay, self._respawn, worker.index)

    def _respawn(self, index: int) -> None:
        if not self._stopping and index not in self._running:
            self._spawn(index)

    @inlineCallbacks
    def stopService(self):
        """SIGTERM the workers one after the other, each waited for (with a deadline)."""
        self._stopping = True
        for sock in self._sockets:
            sock.close()
        deadline = self.config.shutdown_deadline_s + 5
        for index in sorted(self._running):
            worker = self._running.get(index)
            if worker is None:
                continue
            try:
                worker.transport.signalProcess("TERM")
            except Exception:
                continue
            timer = self.reactor.callLater(deadline, self._kill, worker)
            yield worker.ended
            if timer.active():
                timer.cancel()
        yield super().stopService()

    def _kill(self, worker: _Worker) -> None:
        self._log.warn("worker {index} still running; killed", index=worker.index)
        try:
            worker.transport.signalProcess("KILL")
        except Exception:
            pass
