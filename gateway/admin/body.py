"""What every admin API resource reads from a request: a bounded JSON object body."""

from __future__ import annotations

import json
from typing import Any

from twisted.web.server import Request

MAX_BODY = 64 * 1024


class ApiError(Exception):
    """An HTTP error answer with a JSON body ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_body(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object ({} when empty); ApiError 413 or 400 else."""
    raw = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"the body exceeds {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value
