"""CTCP: requests and replies carried inside PRIVMSG and NOTICE text."""

from __future__ import annotations

import re

from gateway.core.events import ClientInfo

_VERSION_NUMBER = re.compile(r"^v?(\d[\w.+-]*)")


def unwrap(text: str) -> tuple[str, str] | None:
    """``(COMMAND, argument)`` of a CTCP message, or None for plain text."""
    if len(text) < 2 or not text.startswith("\x01"):
        return None
    body = text[1:-1] if text.endswith("\x01") else text[1:]
    command, _, argument = body.partition(" ")
    return command.upper(), argument


def wrap(command: str, argument: str = "") -> str:
    """A CTCP message's text."""
    body = f"{command} {argument}" if argument else command
    return "\x01" + body.replace("\x01", "") + "\x01"


def client_info(reply: str) -> ClientInfo:
    """The client name and version of a CTCP VERSION reply.

    ``irssi v1.4.3 - running on Linux`` -> (irssi, 1.4.3); ``HexChat 2.16.1 / Linux``
    -> (HexChat, 2.16.1); the first word is the name, the first word that looks
    like a version number is the version.
    """
    words = reply.replace(":", " ").split()
    if not words:
        return ClientInfo()
    name = words[0][:64]
    for word in words[1:]:
        match = _VERSION_NUMBER.match(word)
        if match:
            return ClientInfo(name=name, version=match.group(1)[:32])
    return ClientInfo(name=name, version="")
