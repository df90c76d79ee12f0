"""Errors the core raises for a party's request; each adapter renders them its own way."""

from __future__ import annotations


class GatewayError(Exception):
    """A request the core refused. ``code`` names the kind, as JSON-IM spells it."""

    code = "internal"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class NotAllowed(GatewayError):
    """A valid request in the wrong state or from the wrong role."""

    code = "not_allowed"


class BadRequest(GatewayError):
    """Fields missing or of the wrong kind."""

    code = "bad_request"


class Unavailable(GatewayError):
    """No service for this request (no such queue, queue full or closed)."""

    code = "unavailable"


class AuthFailed(GatewayError):
    """Credentials were missing or wrong."""

    code = "auth_failed"


class RateLimited(GatewayError):
    """The party sends faster than its limit allows."""

    code = "rate_limited"


class InternalError(GatewayError):
    """The gateway failed (a store write, say); the party's request was not done."""

    code = "internal"
