"""A node's two connections to Redis: one for commands and scripts, one subscribed.

Built on txredisapi's protocols (the Twisted Redis client; see docs/cluster.md for
why), each kept up by a :class:`twisted.application.internet.ClientService` that
reconnects with a bounded back-off. The link is *available* while both are up;
watchers of :meth:`RedisLink.on_change` hear when that changes, so that the node
refuses new work while Redis is away and catches up when it is back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.application.internet import ClientService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from firewall.common import no_delay
from gateway import logs
from gateway.cluster.settings import describe_url, parse_url

# Longest wait between reconnection attempts, and for one reply.
RETRY_MAX_S = 2.0
REPLY_TIMEOUT_S = 5.0


class RedisUnavailable(Exception):
    """Redis is not reachable now."""


class _Commands(txredisapi.RedisProtocol):
    def connectionMade(self) -> Any:
        no_delay(self.transport)
        d = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.factory.link._up(self))
        return d

    def connectionLost(self, why: Any) -> None:
        super().connectionLost(why)
        self.factory.link._down(self)


class _Subscriber(txredisapi.SubscriberProtocol):
    def connectionMade(self) -> Any:
        no_delay(self.transport)
        d = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.factory.link._up(self))
        return d

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:  # noqa: N802
        self.factory.link._received(channel, message)

    def connectionLost(self, why: Any) -> None:
        super().connectionLost(why)
        self.factory.link._down(self)


class _Factory(Factory):
    def __init__(self, link: RedisLink, protocol: type, settings: dict[str, Any]) -> None:
        self.link = link
        self._protocol = protocol
        self._settings = settings

    def buildProtocol(self, addr: Any) -> Any:
        proto = self._protocol(
            password=self._settings["password"],
            dbid=self._settings["db"] or None,
            replyTimeout=REPLY_TIMEOUT_S,
            convertNumbers=False,
        )
        proto.factory = self
        return proto

    # What txredisapi's protocol calls when AUTH or SELECT fails.
    def stopTrying(self) -> None:  # noqa: N802
        pass

    def connectionError(self, why: str) -> None:  # noqa: N802
        self.link._log.error("redis: {why}", why=why)


class RedisLink(MultiService):
    """Commands, scripts and subscriptions on one Redis server, reconnecting."""

    _log = Logger(observer=logs.observer)

    def __init__(self, url: str, reactor: Any) -> None:
        super().__init__()
        self.url = url
        settings = parse_url(url)
        if "path" in settings:
            endpoint = UNIXClientEndpoint(reactor, settings["path"], timeout=5)
        else:
            endpoint = TCP4ClientEndpoint(reactor, settings["host"], settings["port"], timeout=5)
        self._commands: Any = None
        self._subscriber: Any = None
        self._handlers: dict[str, Callable[[str, str], None]] = {}
        self._watchers: list[Callable[[bool], None]] = []
        self.available = False
        self.outages = 0
        retry = _backoff
        for protocol in (_Commands, _Subscriber):
            ClientService(
                endpoint, _Factory(self, protocol, settings), retryPolicy=retry, clock=reactor
            ).setServiceParent(self)

    # -- what the node uses -----------------------------------------------

    def script(self, source: str, keys: list[str], args: list[Any]) -> Deferred:
        """Run a Lua script (by its SHA once loaded); fails with RedisUnavailable."""
        if self._commands is None:
            return fail(RedisUnavailable("redis is not reachable"))
        try:
            return self._commands.eval(source, keys, args)
        except txredisapi.ConnectionError as e:
            return fail(RedisUnavailable(str(e)))

    def call(self, *args: Any) -> Deferred:
        """One Redis command; fails with RedisUnavailable when the link is down."""
        if self._commands is None:
            return fail(RedisUnavailable("redis is not reachable"))
        try:
            return self._commands.execute_command(*args)
        except txredisapi.ConnectionError as e:
            return fail(RedisUnavailable(str(e)))

    def publish(self, channel: str, message: str) -> Deferred:
        """PUBLISH a message; fails with RedisUnavailable when the link is down."""
        return self.call("PUBLISH", channel, message)

    def subscribe(self, channel: str, handler: Callable[[str, str], None]) -> None:
        """Call ``handler(channel, message)`` for every message on ``channel``."""
        self._handlers[channel] = handler
        if self._subscriber is not None:
            self._subscriber.subscribe(channel)

    def on_change(self, watcher: Callable[[bool], None]) -> None:
        """Call ``watcher(available)`` whenever the link comes up or goes down."""
        self._watchers.append(watcher)

    # -- the protocols' side ----------------------------------------------

    def _up(self, proto: Any) -> None:
        if isinstance(proto, _Subscriber):
            self._subscriber = proto
            if self._handlers:
                proto.subscribe(list(self._handlers))
        else:
            self._commands = proto
        self._changed()

    def _down(self, proto: Any) -> None:
        if proto is self._subscriber:
            self._subscriber = None
        elif proto is self._commands:
            self._commands = None
        self._changed()

    def _received(self, channel: Any, message: Any) -> None:
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(channel, message)

    def _changed(self) -> None:
        available = self._commands is not None and self._subscriber is not None
        if available == self.available:
            return
        self.available = available
        if available:
            self._log.info("redis {url} reachable", url=describe_url(self.url))
        else:
            self.outages += 1
            self._log.error("redis {url} not reachable", url=describe_url(self.url))
        for watcher in list(self._watchers):
            try:
                watcher(available)
            except Exception:
                self._log.failure("redis link watcher failed")


def _backoff(attempt: int) -> float:
    return min(RETRY_MAX_S, 0.1 * 2**attempt)
