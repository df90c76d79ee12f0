"""Verified customer identities, by which returning customers are recognised.

What a customer's connection proved (``verified``: an XMPP account, an IRC services
account, a site-signed identity's ``id`` or ``email``; see
gateway.core.relay.identity_of) names them; else, on JSON-IM, a customer token the
gateway hands out in ``welcome`` and the customer's software keeps and presents in the
next ``hello`` (``jsonim-token:``; only its SHA-256 is kept), as Chatwoot's widget keeps
its contact token.
"""

from __future__ import annotations

import hashlib
import secrets

MAX_TOKEN = 256


def new_token() -> str:
    """A fresh customer token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def usable_token(token: object) -> bool:
    """Whether a token a customer presents may name them (a string of 16 to 256)."""
    return isinstance(token, str) and 16 <= len(token) <= MAX_TOKEN and token.isascii()


def token_identity(token: str) -> str:
    """The identity a customer token stands for."""
    return "jsonim-token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()
