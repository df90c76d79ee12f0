"""A site-signed identity in a customer's ``hello``: details the site vouches for.

A web site whose users are signed in knows who they are; its backend signs the
identity it hands the chat widget, so that the gateway can tell it from what any
client could claim. With ``[jsonim] identity_secret`` set (or the environment variable
``IMGATEWAY_JSONIM_IDENTITY_SECRET``), a hello may carry ``identity_signature``: the
hex HMAC-SHA256, keyed with that secret, of the identity object serialised as JSON
with sorted keys, no spaces, UTF-8 (:func:`canonical`). A matching signature makes every
identity field ``verified`` (an ``account`` source for routing rules, see
gateway.routing.trust); one that does not match is refused; without a signature the
fields are the customer's claims, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from gateway.core.errors import BadRequest

SECRET_ENV = "IMGATEWAY_JSONIM_IDENTITY_SECRET"


def canonical(identity: Mapping[str, str]) -> bytes:
    """The bytes a site signs: the identity as JSON, keys sorted, no spaces, UTF-8."""
    return json.dumps(
        dict(identity), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def sign(identity: Mapping[str, str], secret: str) -> str:
    """The signature a site's backend computes (hex HMAC-SHA256)."""
    return hmac.new(secret.encode(), canonical(identity), hashlib.sha256).hexdigest()


def verified(identity: Mapping[str, str], signature: object, secret: str) -> dict[str, str]:
    """The identity fields the site vouches for: all of them when ``signature`` matches,
    none without one; BadRequest for a signature that does not match (or no secret)."""
    if signature is None:
        return {}
    if not isinstance(signature, str):
        raise BadRequest("identity_signature must be a string")
    if not secret:
        raise BadRequest("this server verifies no identity_signature")
    if not hmac.compare_digest(signature.lower().encode(), sign(identity, secret).encode()):
        raise BadRequest("identity_signature does not match the identity")
    return dict(identity)
