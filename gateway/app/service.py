"""The twistd service: store, core and listeners, started and stopped in order."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredSemaphore,
    inlineCallbacks,
    maybeDeferred,
)
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ServerFactory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

import gateway
from firewall.dnat import DnatFactory
from firewall.engine import Firewall
from firewall.outbound import FirewalledReactor
from firewall.ruleset import RulesError
from firewall.wrapper import FirewallFactory, wrap
from gateway import logs, passwords
from gateway.admin.service import Operations
from gateway.bots.service import faq_upstream
from gateway.config import Config, ConfigError
from gateway.core.gateway import Gateway
from gateway.directory.memory import AgentDirectory
from gateway.metrics import GatewayMetrics
from gateway.routing.remote import LocalPlans, RemotePlans
from gateway.routing.rules import RuleSet
from gateway.store import open_store
from protocols.irc import bot as irc_bot
from protocols.irc import server as irc_server
from protocols.jsonim.protocol import JsonImFactory
from protocols.xmpp import c2s as xmpp_c2s
from protocols.xmpp import component as xmpp_component


def _jsonim(gateway: Gateway, config: Config, reactor) -> JsonImFactory:
    return JsonImFactory(gateway, config.jsonim, server_name=config.name, clock=reactor)


# The listen queue of a socket endpoint that names none. Twisted's default of 50
# drops SYNs when many customers reconnect at once (after a network blip or a
# restart); each dropped one waits a second or more before its client retries.
BACKLOG = 1024
_QUEUED_ENDPOINTS = ("tcp:", "tcp6:", "ssl:", "unix:")


def with_backlog(description: str) -> str:
    """A server endpoint string with ``backlog=BACKLOG`` unless it sets its own."""
    if not description.startswith(_QUEUED_ENDPOINTS) or ":backlog=" in description:
        return description
    return f"{description}:backlog={BACKLOG}"


# Listener kind (a key of [listeners]) -> builder of its protocol factory.
LISTENERS: dict[str, Callable[[Gateway, Config, Any], ServerFactory]] = {
    "jsonim": _jsonim,
    "irc": irc_server.build,
    "xmpp": xmpp_c2s.starttls_factory,
    "xmpps": xmpp_c2s.direct_tls_factory,
}
# Builders of services that connect out to an IM server (an XMPP component, an IRC
# bot); each returns None when its section does not ask for it. Started with the
# gateway, stopped before the store closes.
UPSTREAMS: list[Callable[[Gateway, Config, Any], IService | None]] = [
    xmpp_component.build,
    irc_bot.build,
    faq_upstream,
]


# Password checks (scrypt) running at once.
PASSWORD_CHECKS = 2


class StartupError(SystemExit):
    """Startup cannot go on; the one line has been written to stderr."""

    def __init__(self, line: str) -> None:
        sys.stderr.write(f"imgateway: {line}\n")
        sys.stderr.flush()
        super().__init__(1)


class GatewayService(MultiService):
    """Runs one gateway: binds its listeners, opens its store, serves its core."""

    _log = Logger(observer=logs.observer)

    def __init__(self, config: Config, reactor) -> None:
        super().__init__()
        self.config = config
        self._reactor = reactor
        self.store = open_store(config, reactor)
        self.directory = AgentDirectory()
        self.metrics = GatewayMetrics()
        # The firewall first: outbound connections (upstreams, the routing server, DNAT)
        # go through ``self.outbound``, a reactor whose connectTCP it filters and SNATs.
        self.firewall = Firewall(reactor)
        self.firewall.proxy_header_timeout_s = config.sections["firewall"].proxy_header_timeout_s
        try:
            self.firewall.load_file(config.sections["firewall"].rules)
        except RulesError as e:
            raise StartupError(str(e)) from None
        self.outbound = FirewalledReactor(reactor, self.firewall)
        self._checks = DeferredSemaphore(PASSWORD_CHECKS)
        self.gateway = Gateway(
            config,
            store=self.store,
            plans=self._plans(config, self.outbound),
            directory=self.directory,
            clock=reactor,
            verify_password=self._verify_password,
            metrics=self.metrics,
            text_filter=self.firewall.translate_text,
        )
        self.factories = {
            kind: build(self.gateway, config, reactor)
            for kind, build in LISTENERS.items()
            if config.listeners.get(kind)
        }
        for build in UPSTREAMS:
            try:
                upstream = build(self.gateway, config, self.outbound)
            except ConfigError as e:
                raise StartupError(str(e)) from None
            if upstream is not None:
                upstream.setServiceParent(self)
        self.ports: list[tuple[str, str, IListeningPort]] = []
        self._previous_hup = None
        # Firewall-wrapped factories by listener kind; admin API, metrics, retention.
        self.firewalls: dict[str, Any] = {}
        self.operations = Operations(self, reactor)

    @staticmethod
    def _plans(config: Config, reactor):
        """Local rules, or the routing server with the local rules as its fallback."""
        try:
            rules = RuleSet.load(config.rules_file, queues=config.queues)
        except ConfigError as e:
            raise StartupError(str(e)) from None
        if not config.remote_url:
            return LocalPlans(rules)
        return RemotePlans(
            config.remote_url,
            config.remote_token,
            local=rules,
            reactor=reactor,
            deadline_s=config.remote_deadline_s,
        )

    def _verify_password(self, password: str, stored: str | None) -> Deferred[bool]:
        # scrypt is slow on purpose; keep it off the reactor thread.
        def check() -> bool:
            if stored is None:
                # Unknown agents cost the same time as known ones.
                passwords.verify_password(password, passwords.dummy_hash())
                return False
            return passwords.verify_password(password, stored)

        # At most two checks at once (16 MiB and tens of ms each): a login flood
        # queues here instead of taking every thread and the memory with it.
        return self._checks.run(
            deferToThreadPool, self._reactor, self._reactor.getThreadPool(), check
        )

    def privilegedStartService(self) -> None:
        """Bind every listener before anything else starts; any failure stops startup."""
        self._log.info(
            "imgateway {version} configuration: {sources}",
            version=gateway.__version__,
            sources=" + ".join(self.config.sources),
        )
        for proto, endpoints in self.config.listeners.items():
            if not endpoints:
                continue
            factory = wrap(
                self.factories[proto],
                listener=proto,
                max_connections=self.config.sections["firewall"].max_connections,
                max_connections_per_address=(
                    self.config.sections["firewall"].max_connections_per_address
                ),
                firewall=self.firewall,
            )
            self.firewalls[proto] = factory
            for description in endpoints:
                self._listen(proto, description, factory)
        for name, endpoints in self.config.sections["firewall"].dnat.items():
            factory = wrap(
                DnatFactory(name, self.firewall, self.outbound),
                listener=name,
                max_connections=self.config.sections["firewall"].max_connections,
                max_connections_per_address=(
                    self.config.sections["firewall"].max_connections_per_address
                ),
                firewall=self.firewall,
                protocol="tcp",
            )
            for description in endpoints:
                self._listen(f"dnat.{name}", description, factory)
        self.operations.bind(self._listen)
        super().privilegedStartService()

    def _listen(self, proto: str, description: str, factory) -> None:
        results: list = []
        try:
            endpoint = serverFromString(self._reactor, with_backlog(description))
        except (ValueError, KeyError, TypeError) as e:
            self._abort(f"listeners.{proto}: bad endpoint {description!r}: {e}")
        if isinstance(endpoint, SSL4ServerEndpoint) and isinstance(factory, FirewallFactory):
            # The firewall goes in front of TLS (a PROXY header precedes the handshake).
            factory = factory.over_tls(endpoint._sslContextFactory)
            endpoint = TCP4ServerEndpoint(
                self._reactor, endpoint._port, endpoint._backlog, endpoint._interface
            )
        endpoint.listen(factory).addBoth(results.append)
        if not results:
            self._abort(f"listeners.{proto}: {description!r} did not bind at startup")
        result = results[0]
        if not IListeningPort.providedBy(result):
            self._abort(f"listeners.{proto}: cannot listen on {description!r}: {result.value}")
        self.ports.append((proto, description, result))
        address = result.getHost()
        where = f"{address.host}:{address.port}" if hasattr(address, "port") else str(address)
        self._log.info(
            "{proto} listener {description} listening on {where}",
            proto=proto,
            description=description,
            where=where,
        )

    def _abort(self, line: str) -> None:
        # Nothing may stay half-started: release what was bound, then stop.
        for _, _, port in self.ports:
            port.stopListening()
        self.ports.clear()
        raise StartupError(line)

    def reload_rules(self) -> bool:
        """Read the routing rules file again; conversations keep the plans they have.

        A bad file is logged and changes nothing (the running rules stay).
        """
        try:
            rules = RuleSet.load(self.config.rules_file, queues=self.config.queues)
        except ConfigError as e:
            self._log.error("routing rules not reloaded: {error}", error=str(e))
            return False
        plans = self.gateway.dispatcher.plans
        if isinstance(plans, RemotePlans):
            plans.local = rules
        else:
            plans.ruleset = rules
        self._log.info("routing rules reloaded from {source}", source=rules.source)
        return True

    def _hangup(self, signum, frame) -> None:
        # Signal handlers must not touch the reactor's state directly.
        self._reactor.callFromThread(self.reload_rules)
        self._reactor.callFromThread(self.firewall.reload_in_thread, self._reactor)

    def startService(self) -> None:
        """Open the store, then let the core serve."""
        logs.set_level(self.config.log_level)
        if threading.current_thread() is threading.main_thread():
            self._previous_hup = signal.signal(signal.SIGHUP, self._hangup)
        try:
            self.store.start()
        except Exception as e:
            self._abort(
                f"gateway.data_dir: cannot open the database in {self.config.data_dir}: {e}"
            )
        # What a kill or crash left open: held for resuming, or marked interrupted.
        self.gateway.restore().addErrback(
            lambda f: self._log.failure("restoring open conversations failed", f)
        )
        self.operations.start()
        self.firewall.start(self.config.sections["firewall"].sweep_interval_s)
        super().startService()
        # What startup built (modules, classes, configuration: some 70,000 objects)
        # lives as long as the process: kept out of the cyclic collector, whose full
        # collections would otherwise walk them all (15-20 ms, mid reactor turn).
        gc.freeze()

    def stopService(self) -> Deferred:
        """Stop accepting, end conversations, finish writes; within shutdown_deadline_s."""
        return self.operations.within_deadline(self._stop())

    @inlineCallbacks
    def _stop(self):
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        yield DeferredList([maybeDeferred(port.stopListening) for _, _, port in self.ports])
        self.ports.clear()
        self.gateway.shutdown()
        yield super().stopService()
        plans = self.gateway.dispatcher.plans
        if isinstance(plans, RemotePlans):
            yield plans.close()
        yield self.store.close()
        self._log.info("imgateway stopped")
        self.operations.stop()
        self.firewall.stop()
