"""JSON-ready views of the gateway's live state and of stored transcripts.

Plain functions of the state they read, so the admin API, the supervisor page and
tests share one shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.core.conversation import Conversation, Queue
from gateway.core.events import Decision
from gateway.directory.teams import NO_TEAMS, Teams
from gateway.metrics import oldest_wait
from gateway.store.records import ConversationRecord, StoredMessage


def agent_view(agent: Any, now: float) -> dict[str, Any]:
    """One logged-in agent as supervisors see it."""
    return {
        "name": agent.name,
        "alias": agent.alias,
        "state": agent.state,
        "status": agent.status,
        "reason": agent.reason or None,
        "protocol": agent.protocol,
        "client": {"name": agent.client_name, "version": agent.client_version},
        "bot": agent.bot,
        "capacity": agent.capacity,
        "load": agent.load,
        "conversations": sorted(agent.conversations),
        "offers": len(agent.offers),
        "teams": list(getattr(agent, "teams", ())),
        "idle_s": round(max(0.0, now - agent.idle_since), 1) if not agent.conversations else 0,
    }


def agents_view(agents: Iterable[Any], now: float) -> list[dict[str, Any]]:
    """Every logged-in agent, by name."""
    return [agent_view(a, now) for a in sorted(agents, key=lambda a: a.name)]


def queues_view(
    queues: Mapping[str, Queue], now: float, teams: Teams = NO_TEAMS
) -> list[dict[str, Any]]:
    """Every queue: depth, how long the first in line has waited, the wait estimate,
    and the teams that serve it (None: every agent may)."""
    views = []
    for name, queue in sorted(queues.items()):
        serving = teams.serving(name)
        views.append(
            {
                "name": name,
                "depth": len(queue),
                "oldest_wait_s": round(oldest_wait(queue, now), 1),
                "eta_s": queue.eta(len(queue) + 1),
                "active": queue.active,
                "teams": None if serving is None else sorted(serving),
                "skills": dict(queue.config.skills),
            }
        )
    return views


def teams_view(teams: Teams, agents: Any) -> list[dict[str, Any]]:
    """Every team: members, the queues it serves, and which members are logged in."""
    logged_in = {a.name for a in agents}
    return [
        {
            "name": team.name,
            "description": team.description,
            "members": sorted(team.members),
            "queues": sorted(team.queues),
            "logged_in": sorted(team.members & logged_in),
        }
        for team in teams
    ]


def conversation_view(conv: Conversation, now: float) -> dict[str, Any]:
    """One live conversation, without its words."""
    return {
        "id": conv.id,
        "state": conv.state,
        "customer": conv.alias,
        "protocol": conv.protocol,
        "client": f"{conv.client.name} {conv.client.version}".strip(),
        "topic": conv.topic,
        "queue": conv.queue,
        "agent": conv.agent.name if conv.agent is not None else None,
        "age_s": round(max(0.0, now - conv.started), 1),
        "waited_s": round(max(0.0, now - conv.arrival[0]), 1)
        if conv.arrival is not None and conv.waiting
        else None,
        "routing": conv.decision.to_dict() if conv.decision is not None else None,
    }


def conversations_view(conversations: Iterable[Conversation], now: float) -> list[dict[str, Any]]:
    """Live conversations, oldest first."""
    ordered = sorted(conversations, key=lambda c: (c.started, c.id))
    return [conversation_view(c, now) for c in ordered]


def cluster_view(gateway: Any, now: float) -> dict[str, Any]:
    """The cluster's nodes as this node last read them (one row when it is alone)."""
    core = getattr(gateway, "core", None)
    cluster = getattr(core, "cluster", None)
    if cluster is None:
        relay = getattr(gateway, "relay", None)
        here = {
            "node": "",
            "state": "shutting down" if gateway.shutting_down else "up",
            "customers": len(relay.customers) if relay is not None else 0,
            "agents": len(core.local) if core is not None else 0,
            "conversations": len(gateway.conversations),
            "held": len(gateway.holds) if hasattr(gateway, "holds") else 0,
            "waiting": sum(len(q) for q in gateway.queues.values()),
            "age_s": 0.0,
        }
        return {"clustered": False, "node": "", "redis": None, "nodes": [here]}
    nodes = []
    for name, info in sorted(cluster.nodes.items()):
        nodes.append(
            {
                "node": name,
                "state": "draining" if info.get("draining") else "up",
                "customers": info.get("customers", 0),
                "agents": info.get("agents", 0),
                "conversations": info.get("conversations", 0),
                "held": info.get("held", 0),
                "waiting": info.get("waiting", 0),
                "age_s": round(max(0.0, now - info.get("seen", now)), 1),
            }
        )
    for lost in sorted(cluster.members.lost):
        nodes.append({"node": lost, "state": "lost", "customers": 0, "agents": 0,
                      "conversations": 0, "held": 0, "waiting": 0, "age_s": None})  # fmt: skip
    return {
        "clustered": True,
        "node": cluster.name,
        "redis": cluster.link.available,
        "nodes": nodes,
    }


def summary_view(gateway: Any, agents: Any, now: float) -> dict[str, Any]:
    """Everything the supervisor page shows, in one object."""
    return {
        "server": gateway.config.name,
        "time": now,
        "shutting_down": gateway.shutting_down,
        "queues": queues_view(gateway.queues, now, gateway.teams),
        "agents": agents_view(agents, now),
        "conversations": conversations_view(gateway.conversations.values(), now),
        "cluster": cluster_view(gateway, now),
    }


def iso(ts: float | None) -> str | None:
    """A timestamp as ISO 8601 UTC (seconds), or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def transcript_json(record: ConversationRecord, messages: Sequence[StoredMessage]) -> dict:
    """A stored conversation and its messages, for export."""
    return {
        "conversation": {
            "id": record.id,
            "customer": record.customer_alias,
            "protocol": record.protocol,
            "client": {"name": record.client_name, "version": record.client_version},
            "queue": record.queue,
            "topic": record.topic,
            "state": record.state,
            "agent": record.agent,
            "started": iso(record.started),
            "ended": iso(record.ended),
            "end_reason": record.end_reason,
            "routing": None if record.routing is None else dict(record.routing),
        },
        "messages": [
            {
                "id": m.id,
                "sender": m.sender,
                "agent": m.agent,
                "text": m.text,
                "ts": iso(m.ts),
                "audience": m.audience,
            }
            for m in messages
        ],
    }


def _one_line(text: str) -> str:
    # Control characters (a forged second line, terminal escapes) are shown, not obeyed.
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def transcript_text(record: ConversationRecord, messages: Sequence[StoredMessage]) -> str:
    """A stored conversation as plain text, one line per message."""
    header = (
        f"conversation {record.id}: customer {record.customer_alias} via {record.protocol}"
        f" ({record.client_name} {record.client_version}), queue {record.queue or '-'},"
        f" agent {record.agent or '-'}, state {record.state}, started {iso(record.started)}"
    )
    if record.ended is not None:
        header += f", ended {iso(record.ended)} ({record.end_reason or '-'})"
    lines = [_one_line(header)]
    if record.routing:
        lines.append(_one_line(f"routing: {Decision.from_dict(record.routing).text()}"))
    for m in messages:
        who = f"agent {m.agent}" if m.sender == "agent" and m.agent else m.sender
        if m.audience != "all":
            who += f" (to {m.audience} only)"
        lines.append(f"[{iso(m.ts)}] {_one_line(who)}: {_one_line(m.text)}")
    return "\n".join(lines) + "\n"
