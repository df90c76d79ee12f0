"""A node among the others: its heartbeat, the resume index, hand-overs and take-overs.

Redis keys (``<prefix>`` first):

- ``n:<node>``: the node's record (JSON, see ClusterNode.info), expiring after
  ``node_timeout_s``; ``nodes``: every node that wrote one.
- ``c:<node>``: the conversations a node hosts (whoever finds it lost takes these).
- ``resume``: ``t:<token hash>`` and ``k:<customer key>`` of every live conversation,
  valued ``<node> <conversation>``: where a returning customer's conversation is.
  Every node keeps a copy, told of changes on the ``resume`` channel.
- ``lost:<node>``: held by the survivor taking a lost node's conversations.

A customer who comes back to a node that does not host their conversation is told
``unavailable`` (try again in a moment) while the conversation is handed over to that
node; on the next try it is there. A lost node's conversations are first taken by one
survivor, then handed on the same way.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.logger import Logger

from gateway import logs
from gateway.core.errors import Unavailable
from gateway.core.resume import token_hash

# KEYS: nodes set, node key prefix. name, record ('' when expired), name, record...
NODES = """
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = name
  out[#out + 1] = redis.call('GET', KEYS[2] .. name) or ''
end
return out
"""

MOVING = "your conversation is being moved to this server; please reconnect in a moment"
# A hand-over refused (the conversation's customer is still connected there): a new
# conversation for whoever presents that token here, for this long.
REFUSED_S = 30.0


class Membership:
    """The node's standing in the cluster (a collaborator of ClusterNode)."""

    _log = Logger(observer=logs.observer, namespace="gateway.cluster")

    def __init__(self, node: Any) -> None:
        self.node = node
        # Every live conversation's resume token hash and key -> (node, conversation).
        self.index: dict[str, tuple[str, str]] = {}
        self._written: set[str] | None = None
        self._refused: dict[str, float] = {}
        self.lost: set[str] = set()
        node.link.subscribe(node.prefix + "resume", self._index_changed)

    def forget_written(self) -> None:
        """Redis went away: write everything again when it is back."""
        self._written = None

    def _key(self, suffix: str) -> str:
        return self.node.prefix + suffix

    # -- the beat ------------------------------------------------------------

    @inlineCallbacks
    def beat(self):
        """Write this node's record and conversations; read the others'; take the lost."""
        node = self.node
        link = node.link
        if not link.available or node.gateway is None:
            return
        try:
            ttl = str(int(node.settings.node_timeout_s * 1000))
            yield link.call("SET", self._key(f"n:{node.name}"), json.dumps(node.info()), "PX", ttl)
            yield link.call("SADD", self._key("nodes"), node.name)
            yield self._write_conversations()
            raw = yield link.script(NODES, [self._key("nodes"), self._key("n:")], [])
        except Exception as e:
            self._log.warn("cluster heartbeat failed: {why}", why=str(e))
            return
        nodes, lost = {}, []
        for name, body in zip(raw[::2], raw[1::2], strict=True):
            if body:
                nodes[name] = json.loads(body)
            elif name != node.name:
                lost.append(name)
        node.nodes = nodes
        self.lost = set(lost)
        for name in lost:
            yield self._take_over(name)

    @inlineCallbacks
    def _write_conversations(self):
        link = self.node.link
        key = self._key(f"c:{self.node.name}")
        current = set(self.node.gateway.relay.conversations)
        if self._written is None:
            yield link.call("DEL", key)
            written: set[str] = set()
            # And the resume index: this node's conversations are where they are.
            for conv in self.node.gateway.relay.conversations.values():
                self.indexed(conv)
        else:
            written = self._written
        added, removed = current - written, written - current
        if added:
            yield link.call("SADD", key, *added)
        if removed:
            yield link.call("SREM", key, *removed)
        self._written = current

    @inlineCallbacks
    def reload(self):
        """Read the whole resume index (after connecting)."""
        raw = yield self.node.link.call("HGETALL", self._key("resume"))
        index = {}
        for field, value in zip(raw[::2], raw[1::2], strict=True):
            owner, _, conv = value.partition(" ")
            index[field] = (owner, conv)
        self.index = index

    # -- the resume index ----------------------------------------------------------

    def _fields(self, conv: Any) -> list[str]:
        fields = []
        if conv.resume_hash:
            fields.append(f"t:{conv.resume_hash}")
        if conv.resume_key:
            fields.append(f"k:{conv.resume_key}")
        return fields

    def indexed(self, conv: Any) -> None:
        """A conversation of this node got a resume token (or was adopted): index it."""
        node = self.node
        if not node.link.available:
            return
        fields = {f: f"{node.name} {conv.id}" for f in self._fields(conv)}
        if not fields:
            return
        for field in fields:
            self.index[field] = (node.name, conv.id)
        args = [x for pair in fields.items() for x in pair]
        node.link.call("HSET", self._key("resume"), *args).addErrback(lambda f: None)
        # Among this node's conversations at once, not at the next beat: a crash in
        # between must not hide it from the survivor.
        node.link.call("SADD", self._key(f"c:{node.name}"), conv.id).addErrback(lambda f: None)
        if self._written is not None:
            self._written.add(conv.id)
        node.link.publish(self._key("resume"), json.dumps({"set": fields})).addErrback(
            lambda f: None
        )

    def repointed(self, conv: Any, target: str) -> None:
        """A conversation of this node handed to ``target``: the index names the target
        at once, so that a customer who comes back meanwhile is told to try again
        (never left without an entry, and given a new conversation)."""
        node = self.node
        fields = {f: f"{target} {conv.id}" for f in self._fields(conv)}
        for field in fields:
            self.index[field] = (target, conv.id)
        if not fields or not node.link.available:
            return
        args = [x for pair in fields.items() for x in pair]
        node.link.call("HSET", self._key("resume"), *args).addErrback(lambda f: None)
        node.link.publish(self._key("resume"), json.dumps({"set": fields})).addErrback(
            lambda f: None
        )

    def unindexed(self, conv: Any) -> None:
        """A conversation of this node ended or moved away: out of the index."""
        node = self.node
        fields = [f for f in self._fields(conv) if self.index.get(f, (None,))[0] == node.name]
        for field in fields:
            self.index.pop(field, None)
        if not fields or not node.link.available:
            return
        node.link.call("HDEL", self._key("resume"), *fields).addErrback(lambda f: None)
        node.link.publish(self._key("resume"), json.dumps({"del": fields})).addErrback(
            lambda f: None
        )

    def _index_changed(self, channel: str, body: Any) -> None:
        try:
            change = json.loads(body)
        except ValueError:
            return
        for field, value in (change.get("set") or {}).items():
            owner, _, conv = value.partition(" ")
            self.index[field] = (owner, conv)
        for field in change.get("del") or ():
            self.index.pop(field, None)

    def resume_elsewhere(self, token: str | None, key: str | None) -> None:
        """A returning customer whose conversation is on another node: raise Unavailable
        (and have it handed over here), so that the next try resumes it here."""
        node = self.node
        fields = [f"t:{token_hash(token)}"] if token else []
        if key and not token:
            fields.append(f"k:{key}")
        now = node.reactor.seconds()
        for field in fields:
            if self._refused.get(field, 0) > now:
                continue
            owner, conv = self.index.get(field, (None, None))
            if owner is None or owner == node.name:
                continue
            if owner in node.nodes:
                node.send(owner, {"op": "handover", "conv": conv, "field": field})
            raise Unavailable(MOVING)
        if self.lost and (token or key):
            # A lost node's conversations are not taken yet: this may be one of them.
            raise Unavailable(MOVING)

    # -- hand-overs --------------------------------------------------------------------

    def handover_asked(self, message: dict) -> None:
        """Another node has this conversation's customer: hand it over if they left here."""
        node = self.node
        conv = node.gateway.relay.conversations.get(message["conv"])
        hold = node.gateway.holder.holds.get(message["conv"])
        owner = self.index.get(message.get("field"), (None,))[0]
        if conv is None and owner == node.name and not node.draining:
            # Handed here and not yet taken from the store: the customer's next try.
            return
        if conv is None or hold is None or hold.timer is None or node.draining:
            if not node.draining:
                node.send(message["from"], {"op": "refused", "field": message.get("field")})
            return
        self.hand_over(conv, message["from"])

    def handover_refused(self, message: dict) -> None:
        """The customer is still connected where the conversation is: a new one here."""
        field = message.get("field")
        if field:
            self._refused[field] = self.node.reactor.seconds() + REFUSED_S

    def hand_over(self, conv: Any, target: str) -> Deferred:
        """Give ``conv`` to node ``target``: it leaves this node, whole, once stored.

        Fires once the hand-over is sent."""
        node = self.node
        gw = node.gateway
        gw.holder.holds.release(conv.id)
        gw.dispatcher.withdraw(conv, "customer_left")
        agent = conv.agent
        if agent is not None:
            agent.left(conv.id, conv.protocol, node.reactor.seconds())
            conv.agent = None
        gw.relay.forget(conv)
        customer = conv.customer
        if getattr(customer, "conversation", None) is conv:
            customer.conversation = None
        self.repointed(conv, target)
        if self._written is not None:
            self._written.discard(conv.id)
        node.link.call("SREM", self._key(f"c:{node.name}"), conv.id).addErrback(lambda f: None)
        take = {
            "op": "take",
            "conv": conv.id,
            "token_hash": conv.resume_hash,
            "key": conv.resume_key,
            "agent": getattr(agent, "name", None),
        }
        self._log.info(
            "conversation {conversation} handed over to node {target}",
            conversation=conv.id,
            target=target,
        )
        # A read queues behind every write of the conversation: sent once they are stored.
        return gw.core.store.get_conversation(conv.id).addBoth(lambda _: node.send(target, take))

    def take(self, message: dict) -> None:
        """A conversation handed to this node: from the store, held for its parties."""
        gw = self.node.gateway

        def found(record: Any) -> None:
            if record is None or record.id in gw.relay.conversations:
                return
            gw.holder.adopt([(record, message.get("token_hash"), message.get("key"))])
            conv = gw.relay.conversations.get(record.id)
            if conv is not None:
                self.indexed(conv)

        d = gw.core.store.get_conversation(message["conv"]).addCallback(found)
        d.addErrback(lambda f: self._log.failure("taking {c} failed", f, c=message["conv"]))

    @inlineCallbacks
    def _take_over(self, lost: str):
        """A node's record expired: if this node wins the lock, it takes what was there."""
        node = self.node
        link = node.link
        won = yield link.call("SET", self._key(f"lost:{lost}"), node.name, "NX", "PX", "60000")
        if not won:
            return
        self._log.warn(
            "cluster: node {lost} is lost; node {node} takes over", lost=lost, node=node.name
        )
        yield node.directory.forget_node(lost)
        ids = yield link.call("SMEMBERS", self._key(f"c:{lost}"))
        rows = yield node.gateway.core.store.open_conversations()
        wanted = set(ids or ())
        mine = [row for row in rows if row[0].id in wanted]
        held = node.gateway.holder.adopt(mine)
        for record, _, _ in mine:
            conv = node.gateway.relay.conversations.get(record.id)
            if conv is not None:
                self.indexed(conv)
        node.stats["taken_over"] += len(mine)
        yield link.call("DEL", self._key(f"c:{lost}"), self._key(f"n:{lost}"))
        yield link.call("SREM", self._key("nodes"), lost)
        self.lost.discard(lost)
        self._log.info(
            "cluster: took {count} conversations of lost node {lost} ({held} held)",
            count=len(mine),
            lost=lost,
            held=held,
        )

    # -- leaving ---------------------------------------------------------------------------

    @inlineCallbacks
    def drain(self):
        """SIGTERM: tell the others, then hand every resumable conversation to one of them.

        Fires once the hand-overs are sent; the rest (not resumable) the gateway ends.
        Alone in the cluster, nothing is handed over: conversations stay open in the
        store and the next node to start takes them (as after a crash).
        """
        node = self.node
        node.draining = True
        others = sorted(
            n for n, info in node.nodes.items() if n != node.name and not info.get("draining")
        )
        if not node.link.available or not others:
            return 0
        for other in others:
            node.send(other, {"op": "draining"})
        yield self.beat()
        sent = []
        for i, conv in enumerate(list(node.gateway.relay.conversations.values())):
            if conv.resume_hash is None and conv.resume_key is None:
                continue
            if conv.state not in ("queued", "offered", "connected"):
                continue
            sent.append(self.hand_over(conv, others[i % len(others)]))
        yield DeferredList(sent)
        moved = len(sent)
        self._log.info(
            "cluster: drained {count} conversations to {nodes}",
            count=moved,
            nodes=", ".join(others),
        )
        return moved
