"""The twistd service of ``twistd imgateway``: the composition root.

It builds the firewall, the store, the agent directory and the core, and finds every
protocol adapter and service part through the plugin system (:mod:`gateway.plugins`):
it imports no protocol. The service tree, started in order and stopped in reverse::

    GatewayService
      listeners    one Listener (StreamServerEndpointService) per endpoint string,
                   each behind the firewall
      upstreams    XMPP component, IRC bot, in-process bots (from the parts)
      admin        AdminService: admin API and metrics listeners, retention, JSON log
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredSemaphore, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

import gateway
from firewall.backends import DnatBackends
from firewall.dnat import DnatFactory
from firewall.engine import Firewall
from firewall.outbound import FirewalledReactor
from firewall.persist import BanStore
from firewall.ruleset import RulesError
from firewall.wrapper import FirewallFactory, wrap
from gateway import logs, passwords
from gateway.admin.interfaces import IAdministered
from gateway.admin.service import AdminService
from gateway.config import Config, ConfigError
from gateway.core.gateway import Gateway
from gateway.daemon import Listener, StartupError, release, where, with_backlog, within_deadline
from gateway.desk.service import ServiceDesk
from gateway.directory.memory import MemoryDirectory
from gateway.directory.teams import Teams
from gateway.metrics import FirewallCollector, GatewayMetrics
from gateway.plugins import adapters, parts
from gateway.routing.features import grantable_features
from gateway.routing.feed import EventFeed
from gateway.routing.remote import LocalPlans, RemotePlans
from gateway.routing.rules import RuleSet
from gateway.store import open_store

# Password checks (scrypt) running at once.
PASSWORD_CHECKS = 2
# Collections of the middle generation between two full collections (Python's default
# is 10); see GatewayService.startService.
FULL_COLLECTION_AFTER = 1000


def load_rules(config: Config) -> RuleSet:
    """The routing rules file, checked against the features the protocols can grant."""
    grantable = grantable_features(adapters())
    return RuleSet.load(config.rules_file, queues=config.queues, grantable=grantable)


class _FirewallFirst:
    """The reactor as an ``ssl:`` endpoint sees it, with the firewall in front of TLS.

    The firewall must see a connection before TLS does: a trusted proxy's PROXY header
    precedes the handshake (HAProxy ``send-proxy``), and a dropped connection should
    cost no handshake. So a firewalled factory is listened on with plain TCP, the
    firewall wrapping a TLS layer (:meth:`FirewallFactory.over_tls`).
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def listenSSL(self, port, factory, contextFactory, backlog=50, interface=""):  # noqa: N802, N803
        """IReactorSSL.listenSSL, the firewall first."""
        if isinstance(factory, FirewallFactory):
            return self._reactor.listenTCP(
                port, factory.over_tls(contextFactory), backlog, interface
            )
        return self._reactor.listenSSL(port, factory, contextFactory, backlog, interface)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def bans_file_name(config: Config) -> str:
    """The default bans file in the data directory: one per named cluster node, so that
    workers sharing a data directory (``node1-w0``, ``node1-w1``) each keep their own."""
    cluster = config.sections.get("cluster")
    node = getattr(cluster, "node", "")
    return f"firewall-{node}.bans" if node else "firewall.bans"


@implementer(IAdministered)
class GatewayService(MultiService):
    """Runs one gateway: binds its listeners, opens its store, serves its core."""

    _log = Logger(observer=logs.observer)

    def __init__(self, config: Config, reactor) -> None:
        super().__init__()
        self.config = config
        self.reactor = self._reactor = reactor
        self._endpoints = _FirewallFirst(reactor)
        self.store = open_store(config, reactor)
        self.cluster = _cluster_node(config, reactor)
        self.directory = self.cluster.directory if self.cluster else MemoryDirectory()
        self.metrics = GatewayMetrics()
        # The firewall first: outbound connections (upstreams, the routing server, DNAT)
        # go through ``self.outbound``, a reactor whose connectTCP it filters and SNATs.
        fw_settings = config.sections["firewall"]
        self.firewall = Firewall(reactor)
        self.firewall.proxy_header_timeout_s = fw_settings.proxy_header_timeout_s
        self.firewall.log_connections = fw_settings.log_connections
        try:
            self.firewall.load_file(fw_settings.rules)
        except RulesError as e:
            raise StartupError(str(e)) from None
        self.bans = BanStore(
            self.firewall,
            fw_settings.bans_file or config.data_dir / bans_file_name(config),
            reactor,
            lambda f, *a: deferToThreadPool(reactor, reactor.getThreadPool(), f, *a),
        )
        self.bans.load()
        self.outbound = FirewalledReactor(reactor, self.firewall)
        self.dnat = DnatBackends(self.firewall, self.outbound)
        self.metrics.watch(FirewallCollector(self.firewall))
        self._checks = DeferredSemaphore(PASSWORD_CHECKS)
        self.feed = self._feed(config, self.outbound)
        self.gateway = Gateway(
            config,
            store=self.store,
            plans=self._plans(config, self.outbound),
            directory=self.directory,
            clock=reactor,
            verify_password=self._verify_password,
            metrics=self.metrics,
            text_filter=self.firewall.translate_text,
            node=self.cluster.name if self.cluster else "",
            events=self.feed,
        )
        if self.cluster is not None:
            self.cluster.attach(self.gateway)
        if self.feed is not None:
            self.feed.snapshot = self.gateway.feed_snapshot
        try:
            # The service desk, in the same database (its writes in the store's order).
            self.desk = ServiceDesk(self.gateway, self.store).attach()
        except ConfigError as e:
            raise StartupError(str(e)) from None
        found = parts()
        # Bound listening ports: (listener kind, endpoint string, port).
        self.ports: list[tuple[str, str, Any]] = []
        # Firewall-wrapped factories by listener kind (connection counts for metrics).
        self.firewalls: dict[str, FirewallFactory] = {}
        self.listeners = MultiService()
        self.listeners.setName("listeners")
        self.listeners.setServiceParent(self)
        self._add_protocol_listeners(found)
        self._add_dnat_listeners()
        for part in found:
            for build in part.upstreams:
                try:
                    upstream = build(self.gateway, config, self.outbound)
                except ConfigError as e:
                    raise StartupError(str(e)) from None
                if upstream is not None:
                    upstream.setServiceParent(self)
        self.admin = AdminService(self, reactor)
        self.admin.setServiceParent(self)
        if self.cluster is not None:
            # Last: started after the core is ready, stopped first.
            self.cluster.setServiceParent(self)
        self._previous_hup = None

    # -- building -------------------------------------------------------------

    def _wrap(
        self, factory: Any, kind: str, protocol: str | None = None, per_read: bool = False
    ) -> FirewallFactory:
        settings = self.config.sections["firewall"]
        return wrap(
            factory,
            listener=kind,
            max_connections=settings.max_connections,
            max_connections_per_address=settings.max_connections_per_address,
            firewall=self.firewall,
            per_read=per_read,
            **({"protocol": protocol} if protocol else {}),
        )

    def firewalled(self, factory: Any, kind: str, protocol: str) -> FirewallFactory:
        """``factory`` behind the firewall as listener ``kind`` (the admin and metrics
        listeners: ``protocol`` http, each read counted as one message)."""
        wrapped = self._wrap(factory, kind, protocol, per_read=True)
        self.firewalls[kind] = wrapped
        return wrapped

    def _add_protocol_listeners(self, found) -> None:
        builders = {
            kind: build for part in found for kind, build in getattr(part, "listeners", {}).items()
        }
        for kind, endpoints in self.config.listeners.items():
            if not endpoints:
                continue
            factory = self._wrap(builders[kind](self.gateway, self.config, self._reactor), kind)
            self.firewalls[kind] = factory
            for description in endpoints:
                self.listen(kind, description, factory, parent=self.listeners)

    def _add_dnat_listeners(self) -> None:
        for name, endpoints in self.config.sections["firewall"].dnat.items():
            factory = self._wrap(
                DnatFactory(name, self.firewall, self.outbound, self.dnat), name, protocol="tcp"
            )
            for description in endpoints:
                self.listen(f"dnat.{name}", description, factory, parent=self.listeners)

    def listen(
        self,
        kind: str,
        description: str,
        factory: Any,
        *,
        parent: MultiService,
        check: Callable[[Any], None] | None = None,
    ) -> None:
        """Add a :class:`Listener` for ``description`` under ``parent`` (bound at startup).

        ``check(port)``, if given, judges the bound port; raising stops startup.
        """
        try:
            endpoint = serverFromString(self._endpoints, with_backlog(description))
        except (ValueError, KeyError, TypeError) as e:
            raise StartupError(f"listeners.{kind}: bad endpoint {description!r}: {e}") from None

        def bound(listener: Listener) -> None:
            if check is not None:
                check(listener.port)
            self._bound(listener)

        Listener(
            f"listeners.{kind}", description, endpoint, factory, announce=bound
        ).setServiceParent(parent)

    def _bound(self, listener: Listener) -> None:
        kind = listener.key.removeprefix("listeners.")
        self.ports.append((kind, listener.description, listener.port))
        self._log.info(
            "{proto} listener {description} listening on {where}",
            proto=kind,
            description=listener.description,
            where=where(listener.port),
            log_safe=True,  # the site file's own endpoint, shown as written
        )

    @staticmethod
    def _plans(config: Config, reactor):
        """Local rules, or the routing server with the local rules as its fallback."""
        try:
            rules = load_rules(config)
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
            gateway=config.name,
            hold_s=config.offer_timeout_s,
        )

    def _feed(self, config: Config, reactor: Any) -> EventFeed | None:
        """The routing server's event feed, when there is a routing server."""
        if not config.remote_url:
            return None
        return EventFeed(
            config.remote_url,
            config.remote_token,
            reactor=reactor,
            gateway_name=config.name,
            max_events=config.feed_max_events,
            registry=self.metrics.registry,
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

    # -- running ----------------------------------------------------------------

    def privilegedStartService(self) -> None:
        """Bind every listener before anything else starts; any failure stops startup."""
        self._log.info(
            "imgateway {version} configuration: {sources}",
            version=gateway.__version__,
            sources=" + ".join(self.config.sources),
        )
        try:
            super().privilegedStartService()
        except StartupError:
            # Nothing may stay half-started: release what was bound.
            release(self.listeners)
            release(self.admin)
            self.ports.clear()
            raise

    def reload_rules(self) -> bool:
        """Read the routing rules file again; conversations keep the plans they have.

        A bad file is logged and changes nothing (the running rules stay).
        """
        try:
            rules = load_rules(self.config)
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

    def reload_teams(self) -> Deferred:
        """Read teams and the queues they serve from the database; fires with the Teams."""

        def loaded(records: list) -> Teams:
            teams = Teams.of(records)
            self.gateway.set_teams(teams)
            return teams

        return self.store.teams().addCallback(loaded)

    def _reload_teams_logged(self) -> None:
        self.reload_teams().addErrback(lambda f: self._log.failure("loading teams failed", f))

    def _hangup(self, signum, frame) -> None:
        # Signal handlers must not touch the reactor's state directly.
        self._reactor.callFromThread(self.reload_rules)
        self._reactor.callFromThread(self.firewall.reload_in_thread, self._reactor)
        self._reactor.callFromThread(self._reload_teams_logged)

    def startService(self) -> None:
        """Open the store, then let the core serve."""
        logs.set_level(self.config.log_level)
        if threading.current_thread() is threading.main_thread():
            self._previous_hup = signal.signal(signal.SIGHUP, self._hangup)
        try:
            self.store.start()
        except Exception as e:
            release(self.listeners)
            release(self.admin)
            self.ports.clear()
            raise StartupError(
                f"gateway.data_dir: cannot open the database in {self.config.data_dir}: {e}"
            ) from None
        self.admin.prepare()
        # Teams first: the writer answers in order, so the restore below routes with them.
        self._reload_teams_logged()
        self.desk.start().addErrback(
            lambda f: self._log.failure("starting the service desk failed", f)
        )
        if self.cluster is None:
            # What a kill or crash left open: held for resuming, or marked interrupted.
            # (In a cluster, a lost node's conversations are taken by a survivor.)
            self.gateway.restore().addErrback(
                lambda f: self._log.failure("restoring open conversations failed", f)
            )
        self.firewall.start(self.config.sections["firewall"].sweep_interval_s)
        self.dnat.start()
        super().startService()
        # What startup built (modules, classes, configuration: some 70,000 objects)
        # lives as long as the process: kept out of the cyclic collector, whose full
        # collections would otherwise walk them all (15-20 ms, mid reactor turn).
        gc.freeze()
        # Lines in flight (waiting for their commit) outlive the young generations, so
        # with the default thresholds a full collection came every few thousand
        # messages, each a pause of milliseconds in the middle of a turn: the latency
        # tail. Cycles are still found young; the whole heap is walked 100x less often.
        gen0, gen1, _ = gc.get_threshold()
        gc.set_threshold(gen0, gen1, FULL_COLLECTION_AFTER)

    def stopService(self) -> Deferred:
        """Stop accepting, end conversations, finish writes; within shutdown_deadline_s."""
        return within_deadline(self._stop(), self.config.shutdown_deadline_s, self._reactor)

    @inlineCallbacks
    def _stop(self):
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        yield self.listeners.stopService()
        self.ports.clear()
        if self.cluster is not None:
            # Hand conversations to the other nodes (a rolling upgrade), then leave.
            yield self.cluster.leave()
        self.desk.stop()
        self.gateway.shutdown()
        yield super().stopService()
        plans = self.gateway.dispatcher.plans
        if isinstance(plans, RemotePlans):
            yield plans.close()
        if self.feed is not None:
            yield self.feed.close()
        yield self.store.close()
        self._log.info("imgateway stopped")
        self.admin.close_json_log()
        self.firewall.stop()
        self.dnat.stop()
        self.bans.flush()


def _cluster_node(config: Config, reactor: Any) -> Any:
    """The node's cluster membership when ``[cluster] redis`` is set, else None."""
    settings = config.sections["cluster"]
    url = settings.effective_redis()
    if not url:
        return None
    try:
        from gateway.cluster.link import RedisLink
        from gateway.cluster.node import ClusterNode, default_node_name
        from gateway.directory.redis import RedisDirectory
    except ImportError as e:
        raise StartupError(
            f"cluster.redis: the cluster needs txredisapi: pip install 'imgateway[cluster]' ({e})"
        ) from None
    link = RedisLink(url, reactor)
    name = settings.node or default_node_name()
    directory = RedisDirectory(link, name, settings.prefix)
    return ClusterNode(settings, link, directory, reactor)


__all__ = ["GatewayService", "StartupError"]
