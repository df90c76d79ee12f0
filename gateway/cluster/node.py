"""One node of a cluster: its place among the others, and the messages between them.

Each node has a channel on Redis (``<prefix>to:<node>``) that the others publish to:
events for the agents it holds, what those agents do in conversations homed
elsewhere (answered, for a line, with its message id once stored), and conversations
handed over. Every ``heartbeat_s`` the node writes its record (``<prefix>n:<node>``,
expiring after ``node_timeout_s``), the conversations it hosts and the resume tokens
it holds, and reads the others'. A node whose record expired is lost: one survivor
(whoever takes its lock first) removes its agents and the load it made, and takes
its open conversations from the store, held for their customers and agents to come
back (see docs/cluster.md).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from typing import Any

from prometheus_client import Histogram
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway import logs
from gateway.cluster.membership import Membership
from gateway.cluster.metrics import ClusterCollector
from gateway.cluster.proxies import (
    ClusterAgent,
    ClusterDelivery,
    DeskFront,
    RelayFront,
    RemoteAgent,
)
from gateway.cluster.wire import decode_error, decode_event, encode_error, encode_event
from gateway.core import events as ev
from gateway.core.errors import GatewayError, NotAllowed, Unavailable

# Reservation times, in seconds: fine below 2 ms, where the target is.
RESERVE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.1,
    1.0,
)


def default_node_name() -> str:
    """``host-pid``: unique among the processes of a cluster."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterNode(MultiService):
    """This gateway process as a member of a cluster (its Redis link is a child service)."""

    _log = Logger(observer=logs.observer)

    def __init__(self, settings: Any, link: Any, directory: Any, reactor: Any) -> None:
        super().__init__()
        self.settings = settings
        self.link = link
        link.setServiceParent(self)
        self.directory = directory
        self.name = directory.node
        self.prefix = directory.prefix
        self.reactor = reactor
        self.gateway: Any = None
        self.core: Any = None
        self.view: Any = None
        # Proxies of other nodes' agents, by name (one per login).
        self._proxies: dict[str, RemoteAgent] = {}
        # Offers and conversations of this node's agents that live elsewhere.
        self.remote_offers: dict[str, str] = {}
        self.remote_conversations: dict[tuple[str, str], str] = {}
        # Requests waiting for their answer from another node.
        self._requests: dict[str, tuple[Deferred, Any]] = {}
        self._request_ids = itertools.count(1)
        # The cluster as last read: node -> its record; node of every held token/key.
        self.nodes: dict[str, dict] = {}
        self.draining = False
        self.kept = 0
        self._leaving: set[str] = set()
        self._synced = False
        self.members = Membership(self)
        self._beat = LoopingCall(self.members.beat)
        self._beat.clock = reactor
        self._started = reactor.seconds()
        self.reserve_seconds: Any = None
        self.stats = {"sent": 0, "received": 0, "reserved": 0, "refused": 0, "taken_over": 0}
        link.subscribe(self.channel(self.name), self._bus)
        link.on_change(self._link_changed)

    # -- wiring --------------------------------------------------------------

    def attach(self, gateway: Any) -> None:
        """Serve ``gateway``'s core (called once, when the core is made)."""
        self.gateway = gateway
        self.core = gateway.core
        self.view = gateway.core.view
        self.core.cluster = self
        self.core.delivery = ClusterDelivery(self.core.delivery, self)
        self.directory.watch(self._presence)
        gateway.metrics.watch(ClusterCollector(self))
        self.reserve_seconds = Histogram(
            "imgateway_cluster_reserve_seconds",
            "Time to reserve an agent's seat in Redis for an offer (the atomic script)",
            buckets=RESERVE_BUCKETS,
            registry=gateway.metrics.registry,
        )

    def channel(self, node: str) -> str:
        """The bus channel of ``node``."""
        return f"{self.prefix}to:{node}"

    @property
    def available(self) -> bool:
        """Redis is reachable and this node has caught up with it: it takes new work."""
        return self.link.available and self._synced and not self.draining

    def refusing(self) -> str | None:
        """Why new customers and logins are refused now, or None."""
        if self.draining:
            return "the service is restarting; please reconnect in a moment"
        if not self.available:
            return "the service is temporarily unavailable; please try again in a moment"
        return None

    def local_agent(self, presence: Any, session: Any, publish: Any) -> ClusterAgent:
        """A LiveAgent for an agent logging in here, its load kept in Redis."""
        return ClusterAgent(presence, session, publish, self.directory)

    def fronts(self, desk: Any, relay: Any) -> tuple[DeskFront, RelayFront]:
        """The desk and relay a local agent's session talks to."""
        return DeskFront(desk, self), RelayFront(relay, self)

    # -- agents elsewhere ------------------------------------------------------

    def proxy(self, presence: Any) -> RemoteAgent | None:
        """The stand-in for another node's agent login (None for this node's)."""
        if presence is None or presence.node == self.name:
            return None
        known = self._proxies.get(presence.name)
        if known is not None and known.session.id == presence.session:
            return known
        agent = self._proxies[presence.name] = RemoteAgent(presence, self)
        return agent

    def proxy_named(self, name: str) -> Any:
        """The stand-in for agent ``name`` if it is logged in on another node."""
        known = self._proxies.get(name)
        if known is not None and not known.session.gone:
            return known
        return self.proxy(self.view.get(name))

    def reserve(self, agent: Any, offer: str, protocol: str) -> Deferred:
        """Reserve a seat of ``agent`` for ``offer`` in Redis: fires True or False, or
        None when Redis could not be asked."""
        if not self.available:
            return succeed(None)
        began = self.reactor.seconds()
        d = self.directory.reserve(agent.presence, offer, protocol)

        def done(ok: bool) -> bool:
            self.stats["reserved" if ok else "refused"] += 1
            if self.reserve_seconds is not None:
                self.reserve_seconds.observe(max(0.0, self.reactor.seconds() - began))
            return ok

        def failed(failure: Any) -> None:
            self._log.warn(
                "cluster: reserving {agent} failed: {why}",
                agent=agent.name,
                why=failure.getErrorMessage(),
            )

        return d.addCallbacks(done, failed)

    def ask_owner(self, agent: RemoteAgent, fields: dict) -> None:
        """Ask the node of a remote agent to change its record."""
        self.send(
            agent.session.node,
            {"op": "change", "agent": agent.name, "session": agent.session.id, "fields": fields},
        )

    def _presence(self, name: str, presence: Any) -> None:
        proxy = self._proxies.get(name)
        if proxy is not None and (presence is None or presence.session != proxy.session.id):
            del self._proxies[name]
            self._proxy_gone(proxy)
        if presence is None or presence.node == self.name:
            return
        local = self.core.local.get(name)
        if local is not None and local.session.id != presence.session:
            # The newest login wins, wherever it is.
            local.session.party.close("logged in from another connection")
            self.gateway.desk.gone(local.session)
        if self.gateway.holder.holds.waiting_for(name):
            self.gateway.desk.reattach(self.proxy(presence))

    def _proxy_gone(self, proxy: RemoteAgent) -> None:
        session = proxy.session
        if session.gone:
            return
        if session.node in self._leaving or session.node not in self.nodes:
            # Its node is draining or lost: its conversations wait for it to log in again.
            conversations = proxy.presence.conversations
            for conv_id in list(conversations):
                conv = self.gateway.relay.conversations.get(conv_id)
                if conv is not None and conv.agent is proxy:
                    conversations.discard(conv_id)
                    conv.agent = None
                    self.gateway.holder.wait_for_agent(conv, proxy.name)
        self.gateway.desk.gone(session)

    # -- talking to other nodes ----------------------------------------------------

    def send(self, node: str, message: dict) -> Deferred:
        """Publish ``message`` on ``node``'s channel (from this node)."""
        message["from"] = self.name
        self.stats["sent"] += 1
        d = self.link.publish(self.channel(node), json.dumps(message, separators=(",", ":")))
        return d.addErrback(self._not_sent, node, message.get("op"))

    def _not_sent(self, failure: Any, node: str, op: Any) -> None:
        self._log.warn(
            "cluster: {op} for node {node} not sent: {why}",
            op=op,
            node=node,
            why=failure.getErrorMessage(),
        )

    def send_event(self, session: Any, event: Any) -> None:
        """Deliver a core event to a remote agent's session on its node."""
        self.send(
            session.node,
            {
                "op": "event",
                "agent": session.name,
                "session": session.id,
                "event": encode_event(event),
            },
        )

    def request(self, node: str, message: dict) -> Deferred:
        """Send ``message`` and fire with the answer's value, or fail with its error."""
        req = f"{self.name}:{next(self._request_ids)}"
        message["req"] = req
        d: Deferred = Deferred()
        timer = self.reactor.callLater(self.settings.request_timeout_s, self._timed_out, req)
        self._requests[req] = (d, timer)
        self.send(node, message)
        return d

    def _timed_out(self, req: str) -> None:
        d, _ = self._requests.pop(req, (None, None))
        if d is not None:
            d.errback(Unavailable("the conversation's node did not answer; send it again"))

    def _answer(self, message: dict, value: Any = None, error: Any = None) -> None:
        reply = {"op": "reply", "req": message["req"]}
        if error is not None:
            reply["error"] = error
        else:
            reply["value"] = value
        self.send(message["from"], reply)

    def _bus(self, channel: str, body: Any) -> None:
        try:
            message = json.loads(body)
            handler = getattr(self, "_on_" + message["op"])
        except (ValueError, KeyError, TypeError, AttributeError):
            self._log.warn(
                "cluster: bad message on {channel}: {body!r}", channel=channel, body=body
            )
            return
        self.stats["received"] += 1
        try:
            handler(message)
        except Exception:
            self._log.failure(
                "cluster: {op} from {node} failed", op=message["op"], node=message.get("from")
            )

    def _local_session(self, message: dict) -> Any:
        agent = self.core.local.get(message.get("agent", ""))
        if agent is None or agent.session is None or agent.session.id != message.get("session"):
            return None
        if agent.session.gone:
            return None
        return agent.session

    # Events and requests for this node's agents.

    def _on_event(self, message: dict) -> None:
        session = self._local_session(message)
        event = decode_event(message["event"])
        home = message["from"]
        name = message["agent"]
        if isinstance(event, ev.Offer):
            self.remote_offers[event.offer] = home
        elif isinstance(event, ev.Revoked):
            self.remote_offers.pop(event.offer, None)
        elif isinstance(event, ev.Connected):
            self.remote_conversations[(name, event.conversation)] = home
        elif isinstance(event, ev.Ended):
            self.remote_conversations.pop((name, event.conversation), None)
        if session is not None:
            self.core.delivery.deliver(session, event)

    def _on_change(self, message: dict) -> None:
        session = self._local_session(message)
        if session is None:
            return
        fields = {k: v for k, v in message["fields"].items() if k in _OWNER_CHANGES}
        agent = session.agent
        if fields.get("wrapping_up") is False and not agent.wrapping_up:
            return
        agent.change(**fields)
        if fields.get("wrapping_up") is True:
            # The home node ends the wrap-up; should it be lost meanwhile, this does.
            wrap_up = self.core.config.wrap_up_s
            self.reactor.callLater(wrap_up + self.settings.node_timeout_s, self._wrapped_up, agent)
        self.gateway.dispatcher.match()

    def _wrapped_up(self, agent: Any) -> None:
        if agent.session is not None and not agent.session.gone and agent.wrapping_up:
            agent.change(wrapping_up=False)
            self.gateway.dispatcher.match()

    def _on_close(self, message: dict) -> None:
        session = self._local_session(message)
        if session is not None:
            session.party.close(message.get("reason", "closed"))
            self.gateway.desk.gone(session)

    def _on_reply(self, message: dict) -> None:
        d, timer = self._requests.pop(message["req"], (None, None))
        if d is None:
            return
        if timer.active():
            timer.cancel()
        if "error" in message:
            d.errback(decode_error(message["error"]))
        else:
            d.callback(message.get("value"))

    def _on_notice(self, message: dict) -> None:
        session = self._local_session(message)
        if session is not None:
            self.core.delivery.deliver(session, ev.Notice(message["text"]))

    # What this node's agents do in conversations homed elsewhere.

    def forward_offer(self, session: Any, op: str, offer: str) -> bool:
        """Send an accept or reject to the offer's home node; False if it is this one's."""
        home = self.remote_offers.get(offer)
        if home is None:
            return False
        if op == "accept" or op == "reject":
            self.remote_offers.pop(offer, None)
        self.send(home, {"op": op, "agent": session.name, "session": session.id, "offer": offer})
        return True

    def forward(self, session: Any, conversation: str, message: dict) -> bool:
        """Send an agent's action to the conversation's home node; False if local."""
        home = self.remote_conversations.get((session.name, conversation))
        if home is None:
            return False
        message.update(agent=session.name, session=session.id, conv=conversation)
        self.send(home, message)
        return True

    def forward_say(
        self, session: Any, conversation: str, text: str, markup: str | None = None
    ) -> Deferred | None:
        """An agent's line in a conversation homed elsewhere: fires with its message id."""
        home = self.remote_conversations.get((session.name, conversation))
        if home is None:
            return None
        if not self.link.available:
            return fail(Unavailable("the service is temporarily unavailable; send it again"))
        message = {
            "op": "say",
            "agent": session.name,
            "session": session.id,
            "conv": conversation,
            "text": text,
            "markup": markup,
        }
        return self.request(home, message)

    def check_transfer(self, session: Any, queue: Any, agent: Any) -> None:
        """What a transfer can be refused for before it leaves this node."""
        if agent is not None and agent == session.name:
            raise NotAllowed("cannot transfer a conversation to yourself")

    # The home node's side of those actions.

    def _proxy_session(self, message: dict) -> Any:
        record = self.view.get(message["agent"])
        if record is None or record.session != message["session"]:
            raise NotAllowed(f"agent {message['agent']} is not logged in")
        return self.proxy(record).session

    def _refused(self, message: dict, error: GatewayError) -> None:
        self.send(
            message["from"],
            {
                "op": "notice",
                "agent": message["agent"],
                "session": message["session"],
                "text": error.text,
            },
        )

    def _on_accept(self, message: dict) -> None:
        try:
            self.gateway.desk.accept(self._proxy_session(message), message["offer"])
        except GatewayError as e:
            self._refused(message, e)

    def _on_reject(self, message: dict) -> None:
        try:
            self.gateway.desk.reject(self._proxy_session(message), message["offer"])
        except GatewayError as e:
            self._refused(message, e)

    def _on_say(self, message: dict) -> None:
        try:
            session = self._proxy_session(message)
            d = self.gateway.relay.agent_says(
                session, message["conv"], message["text"], message.get("markup")
            )
        except GatewayError as e:
            self._answer(message, error=encode_error(e))
            return

        def failed(failure: Any) -> None:
            error = failure.value if failure.check(GatewayError) else Unavailable("not stored")
            self._answer(message, error=encode_error(error))

        d.addCallbacks(lambda msg: self._answer(message, msg), failed)

    def _on_typing(self, message: dict) -> None:
        try:
            session = self._proxy_session(message)
            self.gateway.relay.agent_typing(session, message["conv"], message["state"])
        except GatewayError:
            pass

    def _on_receipt(self, message: dict) -> None:
        try:
            session = self._proxy_session(message)
            self.gateway.relay.agent_receipt(
                session, message["conv"], message["msg"], message["state"]
            )
        except GatewayError:
            pass

    def _on_end(self, message: dict) -> None:
        try:
            self.gateway.desk.end(self._proxy_session(message), message["conv"])
        except GatewayError as e:
            self._refused(message, e)

    def _on_transfer(self, message: dict) -> None:
        try:
            session = self._proxy_session(message)
            self.gateway.desk.transfer(
                session, message["conv"], queue=message.get("queue"), agent=message.get("target")
            )
        except GatewayError as e:
            self._refused(message, e)

    def _on_draining(self, message: dict) -> None:
        self._leaving.add(message["from"])

    def _on_handover(self, message: dict) -> None:
        self.members.handover_asked(message)

    def _on_take(self, message: dict) -> None:
        self.members.take(message)

    def _on_refused(self, message: dict) -> None:
        self.members.handover_refused(message)

    # -- Redis coming and going --------------------------------------------------

    def _link_changed(self, available: bool) -> None:
        if not available:
            self._synced = False
            self.members.forget_written()
            return
        self._catch_up()

    @inlineCallbacks
    def _catch_up(self):
        """Redis is (back) up: write what this node knows, read the rest, offer again."""
        try:
            yield self.directory.resync()
            yield self.members.reload()
            yield self.members.beat()
        except Exception:
            self._log.failure("cluster: catching up with redis failed")
            return
        self._synced = True
        self._log.info("cluster: node {node} in step with redis", node=self.name)
        # Whatever other nodes' agents missed meanwhile: the conversation again.
        for conv in list(self.gateway.relay.conversations.values()):
            agent = conv.agent
            if isinstance(agent, RemoteAgent) and not agent.session.gone:
                self.send_event(
                    agent.session, ev.Connected(conv.id, conv.alias, tuple(conv.history))
                )
        self.gateway.dispatcher.match()

    # -- service -------------------------------------------------------------------

    def startService(self) -> None:
        """Connect to Redis, then beat."""
        super().startService()
        self._beat.start(self.settings.heartbeat_s, now=False)

    @inlineCallbacks
    def leave(self):
        """SIGTERM: stop beating, hand conversations to the others (see Membership.drain).

        What stays (alone in the cluster) is left open in the store and in this node's
        set of conversations, for the next node to take once this one's record expires.
        """
        if self._beat.running:
            self._beat.stop()
        moved = yield self.members.drain()
        relay = self.gateway.relay
        kept = [
            c.id
            for c in relay.conversations.values()
            if (c.resume_hash or c.resume_key) and c.state in ("queued", "offered", "connected")
        ]
        self.kept = len(kept)
        if kept and self.link.available:
            yield self.link.call("SADD", f"{self.prefix}c:{self.name}", *kept).addErrback(
                lambda f: None
            )
        return moved

    def stopService(self) -> Deferred:
        """Stop beating; leave the cluster's record unless conversations were left open."""
        if self._beat.running:
            self._beat.stop()
        d = succeed(None)
        if self.link.available and not self.kept:
            d = self.link.call("DEL", f"{self.prefix}n:{self.name}", f"{self.prefix}c:{self.name}")
            d.addCallback(lambda _: self.link.call("SREM", f"{self.prefix}nodes", self.name))
            d.addErrback(lambda f: None)
        d.addCallback(lambda _: MultiService.stopService(self))
        return d

    def info(self) -> dict:
        """This node's record, as the others and ``imgateway-admin cluster`` read it."""
        gw = self.gateway
        return {
            "node": self.name,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self._started,
            "seen": self.reactor.seconds(),
            "draining": self.draining,
            "customers": len(gw.relay.customers),
            "agents": len(self.core.local),
            "conversations": len(gw.relay.conversations),
            "held": len(gw.holder.holds),
            "waiting": sum(len(q) for q in gw.queues.values()),
            "messages": {k: v for k, v in self.stats.items()},
        }


# Record fields another node may ask an agent's node to change.
_OWNER_CHANGES = frozenset({"lapses", "status", "wrapping_up"})
