"""Identifiers handed to parties: unguessable, prefixed by kind."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Container


class IdFactory:
    """Makes session, conversation, message and offer ids and customer aliases.

    ``token_hex`` is injectable so tests can have predictable ids.
    """

    def __init__(self, token_hex: Callable[[int], str] = secrets.token_hex) -> None:
        self._token_hex = token_hex
        # Message ids need to be unique, not secret: a random prefix per process and a
        # counter, instead of the system's randomness on every message.
        self._message_prefix = "g-" + token_hex(6)
        self._messages = itertools.count(1)

    def session(self) -> str:
        """A session id, ``s-…``."""
        return "s-" + self._token_hex(8)

    def conversation(self) -> str:
        """A conversation id, ``c-…``."""
        return "c-" + self._token_hex(8)

    def message(self) -> str:
        """A stored message id, ``g-…``, unique across restarts of this database."""
        return f"{self._message_prefix}{next(self._messages):08x}"

    def offer(self) -> str:
        """An offer id, ``o-…``."""
        return "o-" + self._token_hex(8)

    def alias(self, taken: Container[str]) -> str:
        """A short customer alias (``c-7f3a``) not in ``taken``."""
        nbytes = 2
        while True:
            for _ in range(8):
                alias = "c-" + self._token_hex(nbytes)
                if alias not in taken:
                    return alias
            # Crowded at this length: grow rather than spin.
            nbytes += 1
