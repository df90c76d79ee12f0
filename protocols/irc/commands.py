"""Agent commands written to the service nick: ``/accept``, ``/reject``, ``/transfer``…

Clients differ in what reaches the server: ``/msg Support /accept`` keeps the
slash, ``/msg Support accept`` does not, and a bare ``/accept o-1`` typed in a
client arrives as the raw command ``ACCEPT o-1``. All three mean the same.
"""

from __future__ import annotations

import attrs

from gateway.desk import chat

# The service desk's commands (gateway.desk.chat): monitor, whisper, wrapup, canned...
DESK = frozenset(chat.COMMANDS)
COMMANDS = ("accept", "reject", "transfer", "end", "status", "away", "back", "help", *DESK)

HELP = (
    "Commands (write them to me): "
    "accept [OFFER] | reject [OFFER] | transfer [CUSTOMER] QUEUE | transfer [CUSTOMER] @AGENT "
    "| end [CUSTOMER] | status | away [REASON] | back | help desk (supervise, consult, wrap up,"
    " canned...). Talk to a customer by writing to its nick."
)
DESK_HELP = "Service desk: " + " | ".join(
    f"{name} {usage}".rstrip() for name, (usage, _) in chat.COMMANDS.items()
)


@attrs.frozen
class Command:
    """One agent command: its name and its words."""

    name: str
    args: tuple[str, ...] = ()


def parse(text: str) -> Command | None:
    """The command in a line written to the service, or None if it is not one."""
    words = text.strip().split()
    if not words:
        return None
    name = words[0].lstrip("/").lower()
    if name not in COMMANDS:
        return None
    return Command(name, tuple(words[1:]))
