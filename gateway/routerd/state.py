"""The routing server's live state, built from the gateways' event feeds.

:class:`LiveState` applies each event of each gateway's feed (gateway.routing.feed;
docs/routing.md, "The event feed") in order: agents (who is logged in where, their
state, load, capacity, skills and the queues they serve), conversations (state, queue,
priority, place in line, agent) and, per gateway and queue, the statistics a contact
centre reads (entered, answered, answered within the service level, abandoned,
waiting and handle time, transfers, requeues). Several gateways share one state; every
key carries the gateway's name. The state is plain data, so that it can be written
to disk and read back (:meth:`LiveState.to_json`, :meth:`LiveState.from_json`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

WAITING = ("queued", "offered")


@attrs.define
class AgentView:
    """One logged-in agent as the router knows it."""

    gateway: str
    node: str
    name: str
    protocol: str = ""
    capacity: int = 1
    skills: dict[str, int] = attrs.field(factory=dict)
    location: str = "lan"
    bot: bool = False
    capabilities: list[str] = attrs.field(factory=list)
    teams: list[str] = attrs.field(factory=list)
    serves: list[str] = attrs.field(factory=list)
    status: str = "away"
    state: str = "away"
    load: int = 0
    conversations: int = 0
    offers: int = 0
    wrapping_up: bool = False
    idle_since: float = 0.0
    # When this router last assigned it a conversation (round robin).
    last_assigned: float = 0.0

    @property
    def has_room(self) -> bool:
        """Available, not wrapping up, below capacity."""
        return self.status == "available" and not self.wrapping_up and self.load < self.capacity


@attrs.define
class ConversationView:
    """One live conversation as the router knows it."""

    gateway: str
    node: str
    id: str
    state: str = "interview"
    started: float = 0.0
    protocol: str = ""
    queue: str | None = None
    priority: int = 0
    rule: str | None = None
    arrival: float | None = None
    agent: str | None = None
    accepted_at: float | None = None
    offers: int = 0
    # When it first entered each queue, and the queues it was answered from.
    entered: dict[str, float] = attrs.field(factory=dict)
    answered: list[str] = attrs.field(factory=list)


@attrs.define
class QueueStats:
    """The counters of one gateway's queue."""

    entered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    unanswered: int = 0
    wait_s: float = 0.0
    handled: int = 0
    handle_s: float = 0.0
    transfers: int = 0
    requeues: int = 0


def _cls_from(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in attrs.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@attrs.define
class LiveState:
    """Every gateway's agents, conversations and queue statistics; see the module doc.

    ``service_level_s``: a conversation answered within this many seconds of entering a
    queue counts towards the queue's service level.
    """

    service_level_s: float = 20.0
    agents: dict[tuple[str, str], AgentView] = attrs.field(factory=dict)
    conversations: dict[str, ConversationView] = attrs.field(factory=dict)
    stats: dict[tuple[str, str], QueueStats] = attrs.field(factory=dict)
    # (gateway, sender) -> messages; (gateway, reason) -> conversations ended.
    messages: dict[tuple[str, str], int] = attrs.field(factory=dict)
    ended: dict[tuple[str, str], int] = attrs.field(factory=dict)
    opened: dict[str, int] = attrs.field(factory=dict)

    # -- reading --------------------------------------------------------------------

    def queue_stats(self, gateway: str, queue: str) -> QueueStats:
        """The counters of one gateway's queue (made on first use)."""
        key = (gateway, queue)
        found = self.stats.get(key)
        if found is None:
            found = self.stats[key] = QueueStats()
        return found

    def waiting(self, gateway: str, queue: str) -> list[ConversationView]:
        """Conversations waiting in a gateway's queue, in serve order."""
        found = [
            c
            for c in self.conversations.values()
            if c.gateway == gateway and c.queue == queue and c.state in WAITING
        ]
        found.sort(key=lambda c: (-c.priority, c.arrival or 0.0, c.id))
        return found

    def agents_of(self, gateway: str) -> Iterator[AgentView]:
        """The agents logged in at a gateway (any of its nodes)."""
        return (a for (g, _), a in self.agents.items() if g == gateway)

    # -- applying events ----------------------------------------------------------------

    def apply(self, gateway: str, node: str, event: dict[str, Any]) -> None:
        """Apply one event of the feed of ``gateway`` (at ``node``)."""
        kind = event.get("type")
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, gateway, node, event)

    def _started(self, gateway: str, node: str, event: dict) -> None:
        # A new run of that node: its agents log in again.
        for key in [k for k, a in self.agents.items() if k[0] == gateway and a.node == node]:
            del self.agents[key]

    def _snapshot(self, gateway: str, node: str, event: dict) -> None:
        self._started(gateway, node, event)
        for data in event.get("agents", ()):
            name = data.get("agent", "")
            values = {**data, "gateway": gateway, "node": node, "name": name}
            self.agents[(gateway, name)] = _cls_from(AgentView, values)
        live = {c.get("conversation") for c in event.get("conversations", ())}
        for conv_id in [
            i
            for i, c in self.conversations.items()
            if c.gateway == gateway and c.node == node and i not in live
        ]:
            del self.conversations[conv_id]  # gone while events were lost
        for data in event.get("conversations", ()):
            conv = self._conversation(gateway, node, data.get("conversation", ""))
            for name in ("state", "queue", "agent", "priority", "arrival", "started"):
                if name in data:
                    setattr(conv, name, data[name])

    def _conversation(self, gateway: str, node: str, conv_id: str) -> ConversationView:
        conv = self.conversations.get(conv_id)
        if conv is None:
            conv = self.conversations[conv_id] = ConversationView(gateway, node, conv_id)
        return conv

    def _opened(self, gateway: str, node: str, event: dict) -> None:
        conv = self._conversation(gateway, node, event["conversation"])
        conv.started, conv.protocol = event.get("ts", 0.0), event.get("protocol", "")
        self.opened[gateway] = self.opened.get(gateway, 0) + 1

    def _restored(self, gateway: str, node: str, event: dict) -> None:
        conv = self._conversation(gateway, node, event["conversation"])
        conv.state, conv.queue = event.get("state", conv.state), event.get("queue", conv.queue)

    def _routed(self, gateway: str, node: str, event: dict) -> None:
        conv = self._conversation(gateway, node, event["conversation"])
        conv.rule, conv.priority = event.get("rule"), event.get("priority", 0)

    def _queued(self, gateway: str, node: str, event: dict) -> None:
        conv = self._conversation(gateway, node, event["conversation"])
        queue = event.get("queue")
        conv.state, conv.queue = "queued", queue
        conv.priority = event.get("priority", conv.priority)
        conv.arrival = event.get("arrival", event.get("ts"))
        conv.agent = None
        if queue is not None and queue not in conv.entered:
            conv.entered[queue] = event.get("ts", 0.0)
            self.queue_stats(gateway, queue).entered += 1

    def _offered(self, gateway: str, node: str, event: dict) -> None:
        conv = self._conversation(gateway, node, event["conversation"])
        conv.state = "offered"
        conv.offers += 1

    def _offer_over(self, gateway: str, node: str, event: dict) -> None:
        conv = self.conversations.get(event.get("conversation", ""))
        if conv is None:
            return
        conv.offers = max(0, conv.offers - 1)
        if conv.state == "offered" and not conv.offers:
            conv.state = "queued"

    def _accepted(self, gateway: str, node: str, event: dict) -> None:
        conv = self._conversation(gateway, node, event["conversation"])
        ts = event.get("ts", 0.0)
        conv.state, conv.agent, conv.accepted_at = "connected", event.get("agent"), ts
        conv.offers = 0
        queue = event.get("queue") or conv.queue
        if queue is None or queue in conv.answered:
            return
        conv.answered.append(queue)
        stats = self.queue_stats(gateway, queue)
        waited = max(0.0, ts - conv.entered.get(queue, ts))
        stats.answered += 1
        stats.wait_s += waited
        if waited <= self.service_level_s:
            stats.answered_in_sl += 1

    def _handled(self, conv: ConversationView, ts: float) -> None:
        """The agent is no longer in the conversation: its handle time counts."""
        if conv.agent is not None and conv.accepted_at is not None and conv.queue is not None:
            stats = self.queue_stats(conv.gateway, conv.queue)
            stats.handled += 1
            stats.handle_s += max(0.0, ts - conv.accepted_at)
        conv.agent, conv.accepted_at = None, None

    def _transferred(self, gateway: str, node: str, event: dict) -> None:
        conv = self.conversations.get(event.get("conversation", ""))
        if conv is None:
            return
        if conv.queue is not None:
            self.queue_stats(gateway, conv.queue).transfers += 1
        self._handled(conv, event.get("ts", 0.0))

    def _requeued(self, gateway: str, node: str, event: dict) -> None:
        conv = self.conversations.get(event.get("conversation", ""))
        if conv is None:
            return
        if conv.queue is not None and event.get("reason") != "transfer":
            self.queue_stats(gateway, conv.queue).requeues += 1
        if conv.state == "connected":
            self._handled(conv, event.get("ts", 0.0))
        conv.state = "queued"

    def _ended(self, gateway: str, node: str, event: dict) -> None:
        conv = self.conversations.pop(event.get("conversation", ""), None)
        reason = event.get("reason", "")
        key = (gateway, reason)
        self.ended[key] = self.ended.get(key, 0) + 1
        if conv is None:
            return
        if conv.state in WAITING and conv.queue is not None:
            stats = self.queue_stats(gateway, conv.queue)
            if reason == "customer":
                stats.abandoned += 1
            else:
                stats.unanswered += 1
        elif conv.state == "connected":
            self._handled(conv, event.get("ts", 0.0))

    def _message(self, gateway: str, node: str, event: dict) -> None:
        key = (gateway, event.get("sender", ""))
        self.messages[key] = self.messages.get(key, 0) + 1

    def _agent_login(self, gateway: str, node: str, event: dict) -> None:
        name = event["agent"]
        agent = _cls_from(AgentView, {**event, "gateway": gateway, "node": node, "name": name})
        self.agents[(gateway, name)] = agent

    def _agent_teams(self, gateway: str, node: str, event: dict) -> None:
        agent = self.agents.get((gateway, event.get("agent", "")))
        if agent is not None:
            agent.teams = list(event.get("teams", agent.teams))
            agent.serves = list(event.get("serves", agent.serves))

    def _agent_state(self, gateway: str, node: str, event: dict) -> None:
        agent = self.agents.get((gateway, event.get("agent", "")))
        if agent is None:
            return
        for name in ("status", "state", "load", "conversations", "offers", "capacity"):
            if name in event:
                setattr(agent, name, event[name])
        agent.wrapping_up = bool(event.get("wrapping_up", agent.wrapping_up))
        agent.idle_since = event.get("idle_since", agent.idle_since)

    def _agent_logout(self, gateway: str, node: str, event: dict) -> None:
        self.agents.pop((gateway, event.get("agent", "")), None)

    # -- to and from disk -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The whole state as JSON-ready values."""
        return {
            "agents": [attrs.asdict(a) for a in self.agents.values()],
            "conversations": [attrs.asdict(c) for c in self.conversations.values()],
            "stats": [[g, q, attrs.asdict(s)] for (g, q), s in self.stats.items()],
            "messages": [[g, s, n] for (g, s), n in self.messages.items()],
            "ended": [[g, r, n] for (g, r), n in self.ended.items()],
            "opened": self.opened,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], service_level_s: float) -> LiveState:
        """A state :meth:`to_json` wrote."""
        state = cls(service_level_s=service_level_s)
        for a in data.get("agents", ()):
            agent = _cls_from(AgentView, a)
            state.agents[(agent.gateway, agent.name)] = agent
        for c in data.get("conversations", ()):
            conv = _cls_from(ConversationView, c)
            state.conversations[conv.id] = conv
        for g, q, s in data.get("stats", ()):
            state.stats[(g, q)] = _cls_from(QueueStats, s)
        state.messages = {(g, s): n for g, s, n in data.get("messages", ())}
        state.ended = {(g, r): n for g, r, n in data.get("ended", ())}
        state.opened = dict(data.get("opened", {}))
        return state


_HANDLERS = {
    "started": LiveState._started,
    "snapshot": LiveState._snapshot,
    "opened": LiveState._opened,
    "restored": LiveState._restored,
    "routed": LiveState._routed,
    "queued": LiveState._queued,
    "offered": LiveState._offered,
    # A lapse is followed by its revoke (timeout): only that ends the offer here.
    "rejected": LiveState._offer_over,
    "revoked": LiveState._offer_over,
    "accepted": LiveState._accepted,
    "transferred": LiveState._transferred,
    "requeued": LiveState._requeued,
    "ended": LiveState._ended,
    "message": LiveState._message,
    "agent_login": LiveState._agent_login,
    "agent_teams": LiveState._agent_teams,
    "agent_state": LiveState._agent_state,
    "agent_logout": LiveState._agent_logout,
}
