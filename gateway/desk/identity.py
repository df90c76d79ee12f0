"""Verified customer identities, by which returning customers are recognised.

Each protocol verifies its own: an XMPP account's bare JID (``xmpp:``), an IRC services
account (``irc-account:``). JSON-IM has two: a customer token the gateway hands out in
``welcome`` and the customer's software keeps (``jsonim-token:``, only its SHA-256
kept), and a site's own customer id, signed with HMAC-SHA256 under ``[desk]
identity_secret`` as Chatwoot and Intercom do it (``site:``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MAX_TOKEN = 256
MAX_SITE_ID = 128


def new_token() -> str:
    """A fresh customer token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def usable_token(token: object) -> bool:
    """Whether a token a customer presents may name them (a string of 16 to 256)."""
    return isinstance(token, str) and 16 <= len(token) <= MAX_TOKEN and token.isascii()


def token_identity(token: str) -> str:
    """The identity a customer token stands for."""
    return "jsonim-token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def site_signature(secret: str, customer: str) -> str:
    """What a site sends beside its customer id: HMAC-SHA256 of the id, hex."""
    return hmac.new(secret.encode("utf-8"), customer.encode("utf-8"), hashlib.sha256).hexdigest()


def site_identity(secret: str, customer: object, signature: object) -> str | None:
    """The identity of a site-signed customer id, or None when it does not verify."""
    if not secret or not isinstance(customer, str) or not isinstance(signature, str):
        return None
    if not 0 < len(customer) <= MAX_SITE_ID:
        return None
    if not hmac.compare_digest(site_signature(secret, customer), signature.lower()):
        return None
    return "site:" + customer
