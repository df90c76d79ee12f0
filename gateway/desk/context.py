"""What the service desk's parts share: the core's collaborators, the store, settings."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred

from gateway.core.context import Core
from gateway.core.conversation import CONNECTED, ENDED, Conversation
from gateway.core.errors import NotAllowed
from gateway.core.ports import IDesk, IDispatch, IRelay
from gateway.desk.metrics import DeskMetrics
from gateway.desk.settings import DeskSettings
from gateway.desk.store import DeskStore

# A conversation's states the desk adds: the survey after the agent left, and a
# message being left when nobody could serve the customer.
SURVEY = "survey"
LEAVING_MESSAGE = "leaving_message"


@attrs.define(eq=False)
class DeskContext:
    """The core as the desk's parts reach it, with the desk's store and settings."""

    core: Core
    relay: IRelay
    desk: IDesk
    dispatcher: IDispatch
    store: DeskStore
    settings: DeskSettings
    metrics: DeskMetrics

    def now(self) -> float:
        """The core's clock."""
        return self.core.clock.seconds()

    def write(self, d: Deferred | None) -> None:
        """A write nobody waits on: its failure is logged."""
        self.core.write(d)

    def conversation(self, ref: str) -> Conversation:
        """A live conversation by id or customer alias, or NotAllowed."""
        conversations = self.relay.conversations
        conv = conversations.get(ref)
        if conv is None:
            folded = ref.partition("@")[0].lower()
            conv = next((c for c in conversations.values() if c.alias.lower() == folded), None)
        if conv is None or conv.state == ENDED:
            raise NotAllowed(f"no live conversation {ref[:64]}")
        return conv

    def own(self, session: Any, ref: str) -> Conversation:
        """The connected conversation ``ref`` whose agent is ``session``'s, or NotAllowed."""
        conv = self.conversation(ref)
        if conv.agent is not session.agent or conv.state != CONNECTED:
            raise NotAllowed(f"not in conversation {ref[:64]}")
        return conv
