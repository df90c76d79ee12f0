"""Neutral events as IRC text: what the service, an alias or a customer nick says.

Rendering yields :class:`Said` values; the listener and the bot turn them into
PRIVMSG/NOTICE lines from the right nick (a bot has one nick, so it prefixes
what a peer says with the peer's name).
"""

from __future__ import annotations

import time

import attrs

from gateway.core import events as ev
from gateway.desk import chat

SERVICE = "service"  # the service nick (Support)
PEER = "peer"  # the other side: the agent's alias for a customer, c-7f3a for an agent

# Something the gateway tells a party outside any conversation (newer cores have it).
_NOTICE = getattr(ev, "Notice", None)

_END_REASONS = {
    "customer": "the customer ended it",
    "agent": "the agent ended it",
    "timeout": "it timed out",
    "no_agents": "no agent was available",
    "closed": "we are closed now",
    "shutdown": "the service is restarting",
}


@attrs.frozen
class Said:
    """One line of text for the party: from the service or the peer, PRIVMSG or NOTICE."""

    source: str
    text: str
    notice: bool = False
    # The peer's nick this line is about (an agent's view has many), if any.
    peer: str | None = None


def for_customer(event: object, agent_alias: str | None) -> list[Said]:
    """A customer's view of an event."""
    if _NOTICE is not None and isinstance(event, _NOTICE):
        return [Said(SERVICE, event.text, notice=True)]
    match event:
        case ev.Prompt(text=text):
            # The core's prompt text lists the choices, numbered, one a line.
            return [Said(SERVICE, text)]
        case ev.Queued(position=position, eta_s=None):
            return [Said(SERVICE, f"You are number {position} in the queue.")]
        case ev.Queued(position=position, eta_s=eta):
            return [Said(SERVICE, f"You are number {position} in the queue (about {_wait(eta)}).")]
        case ev.Connected():
            return [Said(SERVICE, f"You are now talking with {agent_alias}.")]
        case ev.Message(sender=ev.AGENT, text=text, alias=None):
            return [Said(PEER, text, peer=agent_alias)]
        case ev.Message(sender=ev.AGENT, text=text, alias=alias):
            # A second agent (a colleague in conference, a supervisor) is named.
            return [Said(SERVICE, f"[{alias}] {text}")]
        case ev.Message(text=text):
            return [Said(SERVICE, text)]
        case ev.Ended(reason=reason):
            why = _END_REASONS.get(reason, reason)
            return [
                Said(
                    SERVICE, f"The conversation has ended ({why}). Write again to start a new one."
                )
            ]
    return []


def for_agent(event: object, alias_of: dict[str, str]) -> list[Said]:
    """An agent's view of an event; ``alias_of`` maps conversation id -> customer nick."""
    if _NOTICE is not None and isinstance(event, _NOTICE):
        return [Said(SERVICE, event.text, notice=True)]
    desk_text = chat.event_text(event)
    if desk_text is not None:
        return [Said(SERVICE, line, notice=True) for line in desk_text.splitlines()]
    match event:
        case ev.Offer(offer=offer, expires_in_s=expires, customer=card) as event:
            details = [f"{card.protocol}, {card.client.name} {card.client.version}".rstrip()]
            if card.topic:
                details.append(f"topic {card.topic}")
            details += [f"{k}: {v}" for k, v in sorted(card.identity.items())]
            past = chat.past_text(card.history)
            if past:
                details.append(past)
            routing = f" Routing: {event.routing.text()}" if event.routing is not None else ""
            return [
                Said(
                    SERVICE,
                    f"Offer {offer}: {card.alias} ({'; '.join(details)}), "
                    f"expires in {expires}s. Reply: accept {offer} | reject {offer}.{routing}",
                    notice=True,
                )
            ]
        case ev.Revoked(offer=offer, reason=reason):
            return [Said(SERVICE, f"Offer {offer} withdrawn ({reason}).", notice=True)]
        case ev.Connected(conversation=conv, peer_alias=alias, history=history):
            joined = chat.joined_text(event) or f"You are now talking with {alias} ({conv})."
            lines = [Said(SERVICE, joined, notice=True)]
            lines += [
                Said(PEER, f"[{_clock(h.ts)} {h.sender}] {h.text}", notice=True, peer=alias)
                for h in history
            ]
            return lines
        case ev.Message(conversation=conv, sender=sender, text=text):
            alias = alias_of.get(conv)
            if alias is None:
                return []
            if sender == ev.CUSTOMER:
                return [Said(PEER, text, peer=alias)]
            prefix = chat.line_prefix(event, for_agent=True) or f"[{sender}] "
            return [Said(PEER, prefix + text, notice=True, peer=alias)]
        case ev.Ended(conversation=conv, reason=reason):
            alias = alias_of.get(conv, conv)
            why = _END_REASONS.get(reason, reason)
            return [Said(SERVICE, f"Conversation with {alias} ended ({why}).", notice=True)]
    return []


def _wait(seconds: int) -> str:
    if seconds < 90:
        return f"{max(seconds, 1)} seconds"
    return f"{round(seconds / 60)} minutes"


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))


def alias_nick(alias: str, avoid: set[str]) -> str:
    """An agent's alias as a valid nick (``Anna A.`` -> ``Anna_A``), not in ``avoid``.

    ``avoid`` holds lower-cased nicks the viewer already knows (its own, the service).
    """
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789[]\\`_^{|}-")
    nick = "".join(ch if ch in allowed else "_" for ch in alias.strip()).strip("_")[:24]
    if not nick or not (nick[0].isalpha() or nick[0] in "[]\\`_^{|}"):
        nick = "Agent_" + nick
    nick = nick[:24]
    candidate = nick
    n = 1
    while candidate.lower() in avoid or candidate.lower().startswith("c-"):
        candidate = f"{nick}_{n}"
        n += 1
    return candidate
