"""The in-memory store, for the core's unit tests and ephemeral runs.

:class:`MemoryStore` provides :class:`gateway.store.interfaces.IStore` with dicts:
every Deferred it returns has already fired, and it fails the same ways the
database engines do (gateway.store.errors). Nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from gateway.store.errors import (
    AgentExists,
    ConversationExists,
    MessageExists,
    StoreClosed,
    UnknownConversation,
)
from gateway.store.interfaces import IStore
from gateway.store.records import (
    AgentRecord,
    ConversationRecord,
    StoredMessage,
    TeamRecord,
    check_conversation_changes,
)


@implementer(IStore)
class MemoryStore:
    """An in-process store: nothing survives the process.

    For core unit tests and ephemeral runs. Every Deferred it returns has
    already fired; it fails the same ways the group-commit store does.
    """

    def __init__(self, agents: Iterable[AgentRecord] = ()) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.scram: dict[str, str] = {}  # agent name -> SCRAM keys (JSON)
        self.conversations: dict[str, ConversationRecord] = {}
        self.messages: dict[str, list[StoredMessage]] = {}
        # conversation id -> (resume token hash, customer key)
        self.resumes: dict[str, tuple[str | None, str | None]] = {}
        self._message_ids: set[str] = set()
        # Team name -> TeamRecord (members and queues included).
        self.team_records: dict[str, TeamRecord] = {}
        self._closed = False
        for agent in agents:
            self.add_agent(agent)

    def add_agent(self, agent: AgentRecord) -> None:
        """Provision an agent; raises :class:`AgentExists` if taken."""
        if agent.name in self.agents:
            raise AgentExists(agent.name)
        self.agents[agent.name] = agent

    def start(self) -> None:
        """Nothing to open."""

    def open_conversation(self, record: ConversationRecord) -> Deferred:
        """Record a new conversation."""
        return self._do(self._open_conversation, record)

    def update_conversation(self, conversation: str, **changes: Any) -> Deferred:
        """Change columns of a conversation."""
        return self._do(self._update_conversation, conversation, changes)

    def append(self, message: StoredMessage) -> Deferred:
        """Append a message to its conversation."""
        return self._do(self._append, message)

    def append_then(self, message: StoredMessage, done: Callable[[Any], Any]) -> None:
        """As :meth:`append`: ``done(None)`` once stored, ``done(failure)`` if not."""
        self.append(message).addCallbacks(lambda _: done(None), done)

    def get_agent(self, name: str) -> Deferred:
        """Fires with the :class:`AgentRecord` named ``name``, or None."""
        return self._do(self.agents.get, name)

    def scram_credentials(self, name: str) -> Deferred:
        """Fires with an agent's SCRAM keys (JSON), or None."""
        return self._do(self.scram.get, name)

    def find_agent(self, address: str) -> Deferred:
        """Fires with the :class:`AgentRecord` known by an IM address, or None."""

        def find(address: str) -> AgentRecord | None:
            for agent in self.agents.values():
                if address in agent.addresses:
                    return agent
            return None

        return self._do(find, address)

    def get_conversation(self, conversation: str) -> Deferred:
        """Fires with the :class:`ConversationRecord` of that id, or None."""
        return self._do(self.conversations.get, conversation)

    def transcript(self, conversation: str) -> Deferred:
        """Fires with the list of :class:`StoredMessage` of a conversation, in order."""
        return self._do(lambda c: list(self.messages.get(c, ())), conversation)

    def recent_conversations(self, limit: int) -> Deferred:
        """Fires with the ``limit`` newest conversations, newest first."""

        def recent(limit: int) -> list[ConversationRecord]:
            # Reversed insertion order first, so that equal start times put the
            # later-opened conversation first, as the database engines do.
            records = list(reversed(self.conversations.values()))
            records.sort(key=lambda r: r.started, reverse=True)
            return records[: max(limit, 0)]

        return self._do(recent, limit)

    def set_resume(self, conversation: str, token_hash: str | None, key: str | None) -> Deferred:
        """Record how a conversation's customer may resume it."""

        def record(conversation: str) -> None:
            if conversation not in self.conversations:
                raise UnknownConversation(conversation)
            self.resumes[conversation] = (token_hash, key)

        return self._do(record, conversation)

    def open_conversations(self) -> Deferred:
        """Fires with (ConversationRecord, token hash, key) of every conversation not ended."""

        def still_open() -> list[tuple[ConversationRecord, str | None, str | None]]:
            records = [r for r in self.conversations.values() if r.state != "ended"]
            records.sort(key=lambda r: (r.started, r.id))
            return [(r, *self.resumes.get(r.id, (None, None))) for r in records]

        return self._do(still_open)

    def purge_ended_before(self, ts: float) -> Deferred:
        """Delete conversations that ended before ``ts`` and their messages; the count."""

        def purge(ts: float) -> int:
            old = [c for c, r in self.conversations.items() if r.ended is not None and r.ended < ts]
            for conversation in old:
                del self.conversations[conversation]
                self.resumes.pop(conversation, None)
                for message in self.messages.pop(conversation, ()):
                    self._message_ids.discard(message.id)
            return len(old)

        return self._do(purge, ts)

    def teams(self) -> Deferred:
        """Fires with every :class:`TeamRecord`, by name."""
        return self._do(lambda: [self.team_records[n] for n in sorted(self.team_records)])

    def set_teams(self, records: Iterable[TeamRecord]) -> None:
        """Replace every team (tests)."""
        self.team_records = {r.name: r for r in records}

    def close(self) -> Deferred:
        """Refuse further operations."""
        self._closed = True
        return succeed(None)

    def _do(self, function: Callable[..., Any], *args: Any) -> Deferred:
        if self._closed:
            return fail(StoreClosed("the store is not running"))
        try:
            return succeed(function(*args))
        except Exception:
            return fail()

    def _open_conversation(self, record: ConversationRecord) -> None:
        if record.id in self.conversations:
            raise ConversationExists(record.id)
        self.conversations[record.id] = record
        self.messages[record.id] = []

    def _update_conversation(self, conversation: str, changes: dict[str, Any]) -> None:
        check_conversation_changes(changes)
        record = self.conversations.get(conversation)
        if record is None:
            raise UnknownConversation(conversation)
        if "identity" in changes:
            changes = {**changes, "identity": dict(changes["identity"])}
        self.conversations[conversation] = attrs.evolve(record, **changes)

    def _append(self, message: StoredMessage) -> None:
        if message.id in self._message_ids:
            raise MessageExists(message.id)
        if message.conversation not in self.conversations:
            raise UnknownConversation(message.conversation)
        self._message_ids.add(message.id)
        self.messages[message.conversation].append(message)
