"""What the two daemons (``twistd imgateway``, ``twistd imrouter``) share.

The command line (:class:`ConfigOptions`), the one-line startup failure
(:class:`StartupError`), listeners as services (:class:`Listener`) and the shutdown
deadline (:func:`within_deadline`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway import logs

# The listen queue of a socket endpoint that names none. Twisted's default of 50
# drops SYNs when many clients reconnect at once (after a network blip or a
# restart); each dropped one waits a second or more before its client retries.
BACKLOG = 1024
_QUEUED_ENDPOINTS = ("tcp:", "tcp6:", "ssl:", "unix:")


class StartupError(SystemExit):
    """Startup cannot go on; the one line has been written to stderr."""

    def __init__(self, line: str, program: str = "imgateway") -> None:
        sys.stderr.write(f"{program}: {line}\n")
        sys.stderr.flush()
        self.line = line
        super().__init__(1)


class ConfigOptions(usage.Options):
    """A daemon's command line: ``--config PATH``; a subclass names its default file."""

    #: The site file read when --config is not given (set by each daemon).
    default_config = "./etc/imgateway.toml"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.optParameters = [
            [
                "config",
                "c",
                None,
                "Configuration file (TOML), merged over the packaged defaults. "
                f"Default: {cls.default_config} if present.",
            ],
        ]


def with_backlog(description: str) -> str:
    """A server endpoint string with ``backlog=BACKLOG`` unless it sets its own."""
    if not description.lower().startswith(_QUEUED_ENDPOINTS) or ":backlog=" in description:
        return description
    return f"{description}:backlog={BACKLOG}"


def where(port: IListeningPort) -> str:
    """``host:port`` of a bound port, or the address as text (a UNIX socket)."""
    address = port.getHost()
    return f"{address.host}:{address.port}" if hasattr(address, "port") else str(address)


@implementer(IStreamServerEndpoint)
class _Reporting:
    """An endpoint that tells its :class:`Listener` the port it bound."""

    def __init__(self, endpoint: IStreamServerEndpoint, bound: Callable[[Any], Any]) -> None:
        self._endpoint, self._bound = endpoint, bound

    def listen(self, factory: Any) -> Deferred:
        return self._endpoint.listen(factory).addCallback(self._bound)


class Listener(StreamServerEndpointService):
    """One endpoint string served by one factory, bound before anything starts.

    A failure to bind raises :class:`StartupError` from ``privilegedStartService``
    (as ``twisted.application.strports`` services do), naming ``key`` (the
    configuration key) and the endpoint string. ``announce(listener)`` is called once
    bound, for the log line that names the address.
    """

    # As twisted.application.strports.service(): a bind failure raises at startup.
    _raiseSynchronously = True  # noqa: N815 (Twisted's name)

    def __init__(
        self,
        key: str,
        description: str,
        endpoint: IStreamServerEndpoint,
        factory: Any,
        *,
        program: str = "imgateway",
        announce: Callable[[Listener], None] | None = None,
    ) -> None:
        super().__init__(_Reporting(endpoint, self._bound), factory)
        self.key, self.description, self.program = key, description, program
        self.port: IListeningPort | None = None
        self._announce = announce
        self._stopped = False
        self.setName(f"{key} {description}")

    def _bound(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        if self._announce is not None:
            self._announce(self)
        return port

    def privilegedStartService(self) -> None:
        """Bind now, or raise StartupError."""
        try:
            super().privilegedStartService()
        except Exception as e:
            raise StartupError(
                f"{self.key}: cannot listen on {self.description!r}: {e}", self.program
            ) from None
        if self.port is None:
            raise StartupError(
                f"{self.key}: {self.description!r} did not bind at startup", self.program
            )

    def stopService(self) -> Deferred:
        """Stop listening (once)."""
        if self._stopped or self.port is None:
            self._stopped = True
            self.running = False
            return succeed(None)
        self._stopped = True
        self.port = None
        return super().stopService()


def release(listeners: Any) -> None:
    """Stop every bound listener among ``listeners`` now (a startup that failed midway)."""
    for listener in listeners:
        if isinstance(listener, Listener) and listener.port is not None:
            listener.stopService()


_log = Logger(observer=logs.observer, namespace="gateway.daemon")


def within_deadline(
    stopping: Deferred, deadline_s: float, clock: Any, what: str = "the gateway"
) -> Deferred:
    """A Deferred that fires when ``stopping`` does, or ``deadline_s`` later at the latest.

    Past the deadline the process goes on exiting: a hung peer, a slow upstream or a
    blocked write must not keep the daemon (and its port) from a restart.
    """
    done: Deferred = Deferred()

    def late() -> None:
        if not done.called:
            _log.warn(
                "shutdown took over {deadline}s: exiting without waiting further",
                deadline=deadline_s,
            )
            done.callback(None)

    timer = clock.callLater(deadline_s, late)

    def finished(result: Any) -> None:
        if isinstance(result, Failure):
            _log.failure("stopping {what} failed", result, what=what)
        if timer.active():
            timer.cancel()
        if not done.called:
            done.callback(None)

    stopping.addBoth(finished)
    return done
