"""Held conversations: a customer who drops, or whom a restart cut off, may come back.

A customer's conversation is *held* when their connection drops without ``end`` and
when the gateway restarts with it open in the store. For ``[gateway] resume_grace_s``
it waits: a customer who comes back with the resume token from JSON-IM ``welcome``,
or from the same address (``xmpp:`` bare JID, ``irc:`` user@address key), takes it
over again. Events meant for them meanwhile are kept and delivered on resume.

Only a token's SHA-256 is stored: the token is a bearer secret for the transcript.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import attrs

# What a held customer is sent on resume at most; older events are in the transcript.
MAX_MISSED = 200
AWAY = "Customer {alias} lost the connection; they may come back for a while."
BACK = "Customer {alias} is back."
RESUMED = "Welcome back. Your conversation continues."


def new_token() -> str:
    """A fresh resume token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@attrs.define(eq=False)
class AbsentCustomer:
    """Stands in for the customer of a restored conversation until they come back.

    It has the shape of a gone :class:`gateway.core.gateway.CustomerSession`, so the core's
    deliveries to it are kept rather than sent.
    """

    conversation: Any = None
    party: Any = None
    id: str = "-"
    gone: bool = True


@attrs.define(eq=False)
class Hold:
    """One held conversation: its timer and what its customer missed."""

    conversation: Any
    timer: Any = None
    missed: list = attrs.field(factory=list)
    # For a conversation restored as connected: the agent it waits for.
    agent: str | None = None
    agent_timer: Any = None

    def keep(self, event: Any) -> None:
        """An event for the absent customer, to deliver on resume."""
        self.missed.append(event)
        if len(self.missed) > MAX_MISSED:
            del self.missed[0]


class Holds:
    """Held conversations, found by conversation id, token hash or customer key."""

    def __init__(self) -> None:
        self._by_id: dict[str, Hold] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, hold: Hold) -> None:
        """Hold a conversation."""
        self._by_id[hold.conversation.id] = hold

    def get(self, conversation: str) -> Hold | None:
        """The hold of a conversation, or None."""
        return self._by_id.get(conversation)

    def release(self, conversation: str) -> Hold | None:
        """Stop holding a conversation; cancels its timers; the hold, or None."""
        hold = self._by_id.pop(conversation, None)
        if hold is not None:
            for timer in (hold.timer, hold.agent_timer):
                if timer is not None and timer.active():
                    timer.cancel()
        return hold

    def find(self, *, token: str | None = None, key: str | None = None) -> Hold | None:
        """The hold a returning customer may take over: by token, else by key."""
        wanted = token_hash(token) if token else None
        for hold in self._by_id.values():
            conv = hold.conversation
            if wanted is not None and conv.resume_hash == wanted:
                return hold
            if wanted is None and key is not None and conv.resume_key == key:
                return hold
        return None

    def waiting_for(self, agent: str) -> list[Hold]:
        """Restored conversations that wait for ``agent`` to log in again."""
        return [h for h in self._by_id.values() if h.agent == agent]
