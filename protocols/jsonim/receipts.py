"""The ``receipts`` feature: which delivered messages a party may report on.

A party that negotiated ``receipts`` says of a message the other side sent it that
its client has it (``delivered``) or has shown it (``read``). Only messages this
session was delivered are accepted, each state once, so that receipts cost the other
side at most two frames per message and name nothing the party was not sent.
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.core.errors import BadRequest
from gateway.core.events import RECEIPT_STATES

# Messages remembered per session for receipts; older ones can no longer be reported.
MAX_TRACKED = 512


class ReceiptBook:
    """The messages delivered to one party that it has not yet reported on in full."""

    def __init__(self, size: int = MAX_TRACKED) -> None:
        self._size = size
        # msg id -> (conversation, states already reported)
        self._open: OrderedDict[str, tuple[str, set[str]]] = OrderedDict()

    def delivered(self, conversation: str, msg: str) -> None:
        """The party was sent message ``msg`` of ``conversation``."""
        self._open[msg] = (conversation, set())
        if len(self._open) > self._size:
            self._open.popitem(last=False)

    def report(self, msg: object, state: object, conversation: str | None = None) -> str | None:
        """The conversation to pass the receipt on in, or None for one already given.

        Raises BadRequest for a receipt that names no message delivered to this party
        (or another conversation than the one it was in), or a state that is not one.
        """
        if state not in RECEIPT_STATES:
            raise BadRequest(f"state must be one of {', '.join(RECEIPT_STATES)}")
        if not isinstance(msg, str):
            raise BadRequest("msg must be a string")
        entry = self._open.get(msg)
        if entry is None or (conversation is not None and entry[0] != conversation):
            raise BadRequest(f"no message {msg[:64]} was delivered here")
        held, said = entry
        # Read is as far as a message goes: a later delivered says nothing new.
        if state in said or "read" in said:
            return None
        said.add(state)
        return held
