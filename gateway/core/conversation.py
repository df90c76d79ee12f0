"""A conversation's state, and the queues conversations wait in."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from typing import Any

import attrs

from gateway.config import QueueConfig
from gateway.core.events import ClientInfo, HistoryEntry
from gateway.core.interview import Interview

INTERVIEW = "interview"
QUEUED = "queued"
OFFERED = "offered"
CONNECTED = "connected"
ENDED = "ended"

# Lines replayed to a joining agent; older ones stay in the transcript only.
HISTORY_LIMIT = 200

_arrivals = itertools.count()


@attrs.define(eq=False)
class PendingOffer:
    """An offer made to one agent, waiting for accept, reject or timeout."""

    id: str
    conversation: Conversation
    agent: str
    timer: Any = None
    # Why this agent (gateway.core.events.Decision).
    decision: Any = None


@attrs.define(eq=False)
class Conversation:
    """One customer's case, from the interview to its end, across agents."""

    id: str
    customer: Any
    alias: str
    protocol: str
    client: ClientInfo
    started: float
    interview: Interview
    state: str = INTERVIEW
    queue: str | None = None
    # (time, tie-breaker) of first entering a queue; kept across requeues so a
    # customer whose agent dropped does not go to the back of the line.
    arrival: tuple[float, int] | None = None
    agent: Any = None
    # Offers ringing now, by id (several with the broadcast strategy).
    offers: dict[str, PendingOffer] = attrs.field(factory=dict)
    # True while a plan is asked for; a requeue's token while it is asked again.
    routing: Any = False
    # The matching engine's view while waiting, and the timer of its plan step.
    task: Any = None
    step_timer: Any = None
    # A stable key for the customer (their address or e-mail), for sticky routing.
    key: str | None = None
    declined: set[str] = attrs.field(factory=set)
    lapsed: set[str] = attrs.field(factory=set)
    target_agent: str | None = None
    history: list[HistoryEntry] = attrs.field(factory=list)
    last_sent_position: tuple[int, int] | None = None
    timer: Any = None
    # When the current agent accepted it, for the queue's handle-time estimate.
    connected_at: float | None = None
    # SHA-256 of the customer's resume token, and the address key a customer may
    # resume by instead (gateway.core.resume).
    resume_hash: str | None = None
    resume_key: str | None = None
    # The routing decision behind the current (or last) offer or agent.
    decision: Any = None
    # What the gateway converts for the current agent (gateway.routing.translate).
    translated: frozenset[str] = frozenset()
    # The customer's own address on an IM server that can carry the conversation
    # without the gateway (component and bot modes), for redirect hosting; never shown.
    address: str | None = None
    # The customer's verified identity (an XMPP account, a site's signed id...), and
    # their earlier conversations the desk found by it (gateway.desk.history).
    customer_id: str | None = None
    past: tuple = ()

    @property
    def answers(self) -> dict[str, str]:
        """What the interview learnt (and what the customer gave up front)."""
        return self.interview.answers

    @property
    def topic(self) -> str | None:
        """The customer's topic, once known."""
        return self.answers.get("topic")

    @property
    def waiting(self) -> bool:
        """True while in a queue (offered conversations still hold their place)."""
        return self.state in (QUEUED, OFFERED)

    def remember(self, entry: HistoryEntry) -> None:
        """Keep a line for agents who join later."""
        self.history.append(entry)
        if len(self.history) > HISTORY_LIMIT:
            del self.history[0]

    def mark_arrival(self, now: float) -> None:
        """Take a place in line, unless one is held already."""
        if self.arrival is None:
            self.arrival = (now, next(_arrivals))


class Queue:
    """Conversations waiting for an agent, in the order they are served (priority, then
    arrival), with a wait estimate."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self._waiting: dict[str, Conversation] = {}
        # Kept sorted by (-priority, arrival, id), the order the matching engine serves
        # in: new arrivals go after their priority's line, requeued ones slot back in.
        self._keys: dict[str, tuple] = {}
        self._order: list[tuple] = []
        # Average handle time (seconds per conversation), refined as conversations end,
        # and the conversations from this queue agents are handling now.
        self._handle_s = config.expected_wait_s
        self.active = 0

    @property
    def name(self) -> str:
        """The queue's configured name."""
        return self.config.name

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, conversation: Conversation) -> bool:
        return conversation.id in self._waiting

    @staticmethod
    def _key(conversation: Conversation) -> tuple:
        task = conversation.task
        priority = task.priority if task is not None else 0
        return (-priority, conversation.arrival, conversation.id)

    def add(self, conversation: Conversation) -> None:
        """Put a conversation in line by its priority and arrival (again, if either changed)."""
        key = self._key(conversation)
        if self._keys.get(conversation.id) == key:
            return
        self.remove(conversation)
        self._waiting[conversation.id] = conversation
        self._keys[conversation.id] = key
        bisect.insort(self._order, key)

    def remove(self, conversation: Conversation) -> None:
        """Take a conversation out of line."""
        if self._waiting.pop(conversation.id, None) is not None:
            key = self._keys.pop(conversation.id)
            del self._order[bisect.bisect_left(self._order, key)]

    def position(self, conversation: Conversation) -> int:
        """1-based place in line, 0 when not waiting here."""
        key = self._keys.get(conversation.id)
        if key is None:
            return 0
        return bisect.bisect_left(self._order, key) + 1

    def in_order(self) -> Iterator[Conversation]:
        """Waiting conversations, first served first (a snapshot)."""
        return iter([self._waiting[key[2]] for key in self._order])

    def eta(self, position: int) -> int:
        """Estimated seconds until a customer at ``position`` is connected."""
        return round(position * self._handle_s / max(1, self.active))

    def observe_handle(self, handled: float) -> None:
        """Refine the estimate from a conversation an agent just finished."""
        self._handle_s = 0.8 * self._handle_s + 0.2 * handled
