"""Agents as a cluster node sees them: its own, and other nodes' standing in for them.

A conversation lives on the node of its customer (its *home*). There its agent is a
:class:`LiveAgent` when the agent is logged in on the same node and a
:class:`RemoteAgent` when on another: the core treats both alike, and the remote one's
events go out over Redis (:class:`ClusterDelivery`) to the agent's node, which
renders them. What an agent does in a conversation homed elsewhere goes back to the
home node through :class:`DeskFront` and :class:`RelayFront`, the agent session's
view of the desk and the relay. Every change of an agent's load is an atomic script
in Redis (:class:`gateway.directory.redis.RedisDirectory`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from gateway import logs
from gateway.core.agents import LiveAgent
from gateway.core.interfaces import IDelivery
from gateway.directory.records import AgentPresence

_log = Logger(observer=logs.observer, namespace="gateway.cluster")


def _ignore(failure: Any) -> None:
    # Load changes while Redis is away are written again when it is back.
    return None


class ClusterAgent(LiveAgent):
    """An agent logged in on this node of a cluster: its load kept in Redis."""

    __slots__ = ("_directory",)

    def __init__(self, presence: AgentPresence, session: Any, publish: Any, directory: Any):
        super().__init__(presence, session, publish)
        self._directory = directory

    def _load(self, ops: list[str], now: float = 0.0) -> None:
        self._directory.changed_here(self.presence)
        self._directory.load(self.presence, ops, now).addErrback(_ignore)

    def joined(self, conversation: str, protocol: str) -> None:
        """The agent took a conversation: one more in Redis."""
        self.presence.took(conversation, protocol)
        self._load([f"+c:{conversation}={protocol}"])

    def left(self, conversation: str, protocol: str, now: float) -> None:
        """The agent left a conversation: one fewer in Redis (idle from ``now`` if none)."""
        self.presence.gave_up(conversation, protocol, now)
        self._load([f"-c:{conversation}"], now)

    def offered(self, offer: str) -> None:
        """An offer is being reserved (by :meth:`ClusterNode.reserve`): counted here at once."""
        self.presence.offers.add(offer)
        self._directory.changed_here(self.presence)

    def unoffered(self, offer: str) -> bool:
        """The offer stopped ringing: out of Redis too."""
        known = offer in self.presence.offers
        self.presence.offers.discard(offer)
        self._load([f"-o:{offer}"])
        return known


class RemoteAgent(ClusterAgent):
    """Another node's agent, in conversations and offers homed on this node.

    Its record is the directory view's latest for its login; changes of the record
    that only its own node may make (status, lapses, wrap-up) are asked of that node.
    """

    __slots__ = ("_cluster", "_last")

    def __init__(self, record: AgentPresence, cluster: Any) -> None:
        self._cluster = cluster
        self._last = record
        super().__init__(record, None, None, cluster.directory)
        self.session = RemoteAgentSession(self, record.session, record.node)

    @property
    def presence(self) -> AgentPresence:  # type: ignore[override]
        """The latest record of this login as this node knows it."""
        current = self._cluster.view.get(self._last.name)
        if current is not None and current.session == self._last.session:
            self._last = current
        return self._last

    @presence.setter
    def presence(self, value: AgentPresence) -> None:
        self._last = value

    def change(self, **fields: Any) -> AgentPresence:
        """Ask the agent's node to change its record."""
        self._cluster.ask_owner(self, fields)
        return self.presence

    def retire(self, **fields: Any) -> None:
        """Gone: nothing to tell its node, which told us."""


class RemoteAgentSession:
    """The session of a :class:`RemoteAgent`: the agent's login on another node."""

    def __init__(self, agent: RemoteAgent, session_id: str, node: str) -> None:
        self.agent = agent
        self.id = session_id
        self.node = node
        self.gone = False
        self.party = _RemoteParty(self)

    @property
    def name(self) -> str:
        """The agent's account name."""
        return self.agent.name


class _RemoteParty:
    """What the core may ask of a remote agent's party: only to close it."""

    def __init__(self, session: RemoteAgentSession) -> None:
        self._session = session

    def deliver(self, event: Any) -> None:
        self._session.agent._cluster.send_event(self._session, event)

    def close(self, reason: str) -> None:
        cluster = self._session.agent._cluster
        cluster.send(
            self._session.node,
            {
                "op": "close",
                "agent": self._session.name,
                "session": self._session.id,
                "reason": reason,
            },
        )


@implementer(IDelivery)
class ClusterDelivery:
    """Events to parties on this node go straight to them, to other nodes' over Redis."""

    def __init__(self, local: IDelivery, cluster: Any) -> None:
        self._local = local
        self._cluster = cluster

    def deliver(self, session: Any, event: Any) -> None:
        """Render ``event`` to the session's party, wherever it is."""
        if isinstance(session, RemoteAgentSession):
            self._cluster.send_event(session, event)
        else:
            self._local.deliver(session, event)


class DeskFront:
    """The desk as a local agent's session sees it: other nodes' offers and
    conversations are answered by their home node."""

    def __init__(self, desk: Any, cluster: Any) -> None:
        self._desk = desk
        self._cluster = cluster

    def __getattr__(self, name: str) -> Any:
        return getattr(self._desk, name)

    def accept(self, session: Any, offer: str) -> None:
        """Take an offer, here or on its home node."""
        if not self._cluster.forward_offer(session, "accept", offer):
            self._desk.accept(session, offer)

    def reject(self, session: Any, offer: str) -> None:
        """Decline an offer, here or on its home node."""
        if not self._cluster.forward_offer(session, "reject", offer):
            self._desk.reject(session, offer)

    def end(self, session: Any, conversation: str) -> None:
        """End a conversation, here or on its home node."""
        if not self._cluster.forward(session, conversation, {"op": "end"}):
            self._desk.end(session, conversation)

    def transfer(self, session: Any, conversation: str, *, queue: Any, agent: Any) -> None:
        """Hand a conversation on, here or on its home node."""
        self._cluster.check_transfer(session, queue, agent)
        op = {"op": "transfer", "queue": queue, "target": agent}
        if not self._cluster.forward(session, conversation, op):
            self._desk.transfer(session, conversation, queue=queue, agent=agent)


class RelayFront:
    """The relay as a local agent's session sees it (see :class:`DeskFront`)."""

    def __init__(self, relay: Any, cluster: Any) -> None:
        self._relay = relay
        self._cluster = cluster

    def __getattr__(self, name: str) -> Any:
        return getattr(self._relay, name)

    def agent_says(
        self, session: Any, conversation: str, text: str, markup: str | None = None
    ) -> Deferred:
        """Store and deliver an agent's line on the conversation's home node."""
        d = self._cluster.forward_say(session, conversation, text, markup)
        if d is None:
            return self._relay.agent_says(session, conversation, text, markup)
        return d

    def agent_says_then(
        self,
        session: Any,
        conversation: str,
        text: str,
        done: Any,
        markup: str | None = None,
    ) -> None:
        """As :meth:`agent_says`, telling ``done(msg_id, None)`` or ``done(None, error)``."""
        d = self._cluster.forward_say(session, conversation, text, markup)
        if d is None:
            self._relay.agent_says_then(session, conversation, text, done, markup)
            return
        d.addCallbacks(lambda msg: done(msg, None), lambda f: done(None, f.value))

    def agent_receipt(self, session: Any, conversation: str, msg: str, state: str) -> None:
        """Tell the customer what became of its message, wherever the conversation lives."""
        op = {"op": "receipt", "msg": msg, "state": state}
        if not self._cluster.forward(session, conversation, op):
            self._relay.agent_receipt(session, conversation, msg, state)

    def agent_typing(self, session: Any, conversation: str, state: str) -> None:
        """Relay typing, from wherever the conversation lives."""
        if not self._cluster.forward(session, conversation, {"op": "typing", "state": state}):
            self._relay.agent_typing(session, conversation, state)
