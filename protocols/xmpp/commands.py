"""Agent chat commands: ``/accept``, ``/reject``, ``/transfer``, ``/end``, ``/status``."""

from __future__ import annotations

import attrs

from gateway.desk import chat

# The desk's commands (gateway.desk.chat) take their words as they come.
DESK = frozenset(chat.COMMANDS)
COMMANDS = ("accept", "reject", "transfer", "end", "status", "available", "away", "help", *DESK)
HELP = (
    "Commands (to the support address, or to a customer's address for that chat):\n"
    "/accept [OFFER]  take an offered chat\n"
    "/reject [OFFER]  decline it\n"
    "/transfer [CHAT] QUEUE  hand a chat to a queue (@NAME: to a colleague)\n"
    "/end [CHAT]  end a chat\n"
    "/status  your chats and offers\n"
    "/available, /away [REASON]  change your availability (a reason: break, training...)\n"
    "/help desk  the service desk's commands (supervise, consult, wrap up, canned...)"
)


class CommandError(ValueError):
    """A line that looks like a command but cannot be one."""


@attrs.frozen
class Command:
    """A parsed command line."""

    name: str
    args: tuple[str, ...] = ()


def parse(text: str) -> Command | None:
    """A command from a chat line, or None when the line is not one (no leading ``/``)."""
    line = text.strip()
    if not line.startswith("/") or line.startswith("//"):
        return None
    words = line[1:].split()
    if not words:
        raise CommandError("empty command; try /help")
    name, args = words[0].lower(), tuple(words[1:])
    if name not in COMMANDS:
        raise CommandError(f"unknown command /{name[:32]}; try /help")
    limits = {
        "transfer": (1, 2),
        "accept": (0, 1),
        "reject": (0, 1),
        "end": (0, 1),
        "away": (0, 1),
        "help": (0, 1),
    }
    low, high = (0, 10_000) if name in DESK else limits.get(name, (0, 0))
    if not low <= len(args) <= high:
        raise CommandError(f"/{name}: wrong number of arguments; try /help")
    return Command(name, args)


def for_desk(command: Command) -> bool:
    """Whether the service desk carries the command out (``/away`` with a reason too)."""
    return command.name in DESK or (command.name == "away" and bool(command.args))


def is_command(text: str) -> bool:
    """Whether a line written to a customer's address is meant as a command."""
    words = text.strip().split(maxsplit=1)
    return bool(words) and words[0].startswith("/") and words[0][1:].lower() in COMMANDS
