"""The routing server's HTTP/JSON API, a twisted.web resource.

``POST /v1/classify`` (token) -> the plan; ``GET /v1/health`` -> status and rules in
use; ``POST /v1/reload`` (token) -> every rules file read again, all or nothing.
Every answer is JSON; errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource

from gateway import logs
from gateway.config import ConfigError
from gateway.routerd.rulebook import RuleBook
from gateway.routing.plan import REMOTE
from gateway.routing.wire import WireError, customer_from_json, plan_to_json

_JSON = b"application/json"


class RouterApi(Resource):
    """The whole API; mounted as a :class:`twisted.web.server.Site`'s root.

    ``reload`` reads every rules file again and returns the new generation, or raises
    :class:`gateway.config.ConfigError` (the rules in use then stay).
    """

    isLeaf = True  # noqa: N815 - Twisted's name
    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        book: RuleBook,
        *,
        token: str,
        max_body: int,
        reload: Callable[[], int],
        live: Any = None,
    ) -> None:
        super().__init__()
        self._book = book
        self._token = token.encode("utf-8")
        self._max_body = max_body
        self._reload = reload
        self._routes: dict[tuple[bytes, ...], tuple[bytes, Callable[[Any], bytes]]] = {
            (b"v1", b"classify"): (b"POST", self._classify),
            (b"v1", b"health"): (b"GET", self._health),
            (b"v1", b"reload"): (b"POST", self._reload_rules),
        }
        if live is not None:
            # The event feed, decisions with live state, and statistics
            # (gateway.routerd.live): each answers (status, JSON value).
            self._routes.update(
                {
                    (b"v1", b"events"): (b"POST", self._posted(live.events)),
                    (b"v1", b"decide"): (b"POST", self._posted(live.decide)),
                    (b"v1", b"stats"): (b"GET", self._read(live.stats)),
                    (b"v1", b"state"): (b"GET", self._read(live.state)),
                }
            )

    def _posted(self, handler: Callable[[Any], tuple[int, Any]]) -> Callable[[Any], bytes]:
        def render(request: Any) -> bytes:
            if not self._authorized(request):
                return self._unauthorized(request)
            body = _body(request, self._max_body)
            if body is None:
                return _error(request, 413, f"the body is larger than {self._max_body} bytes")
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                return _error(request, 400, "the body is not valid JSON")
            code, value = handler(data)
            return _json(request, code, value)

        return render

    def _read(self, handler: Callable[[], tuple[int, Any]]) -> Callable[[Any], bytes]:
        def render(request: Any) -> bytes:
            if not self._authorized(request):
                return self._unauthorized(request)
            code, value = handler()
            return _json(request, code, value)

        return render

    def render(self, request) -> bytes:
        """Dispatch on the path and method; every answer is JSON."""
        request.setHeader(b"content-type", _JSON)
        request.setHeader(b"cache-control", b"no-store")
        route = self._routes.get(tuple(request.postpath))
        if route is None:
            return _error(request, 404, "no such resource")
        method, handler = route
        if request.method != method:
            request.setHeader(b"allow", method)
            return _error(request, 405, f"use {method.decode()}")
        return handler(request)

    def _authorized(self, request) -> bool:
        header = request.getHeader(b"authorization") or b""
        if isinstance(header, str):
            header = header.encode("latin-1")
        scheme, _, supplied = header.partition(b" ")
        # compare_digest takes the same time wherever the first difference is.
        matches = hmac.compare_digest(supplied.strip(), self._token)
        return scheme.lower() == b"bearer" and matches

    def _unauthorized(self, request) -> bytes:
        request.setHeader(b"www-authenticate", b'Bearer realm="imrouter"')
        self._log.warn(
            "imrouter refused a request without a valid token from {peer}", peer=_peer(request)
        )
        return _error(request, 401, "a valid bearer token is required")

    def _classify(self, request) -> bytes:
        if not self._authorized(request):
            return self._unauthorized(request)
        body = _body(request, self._max_body)
        if body is None:
            return _error(request, 413, f"the body is larger than {self._max_body} bytes")
        try:
            customer = customer_from_json(json.loads(body))
        except (ValueError, RecursionError) as e:
            problem = str(e) if isinstance(e, WireError) else "the body is not valid JSON"
            return _error(request, 400, problem)
        rules = self._book.rules.get(customer.media)
        if rules is None:
            return _error(request, 404, f"unknown media {customer.media!r}")
        try:
            plan = attrs.evolve(rules.classify(customer), source=REMOTE)
        except Exception:
            self._log.failure("imrouter could not classify media={media}", media=customer.media)
            return _error(request, 500, "classification failed; see the router's log")
        self._log.info(
            "imrouter classified media={media} rule={rule} priority={priority}: {reason}",
            media=customer.media,
            rule=plan.rule,
            priority=plan.priority,
            reason=plan.reason,
        )
        return _json(request, 200, plan_to_json(plan))

    def _health(self, request) -> bytes:
        return _json(
            request,
            200,
            {
                "status": "ok",
                "media": sorted(self._book.rules),
                "rules": self._book.sources(),
                "generation": self._book.generation,
            },
        )

    def _reload_rules(self, request) -> bytes:
        if not self._authorized(request):
            return self._unauthorized(request)
        try:
            generation = self._reload()
        except ConfigError as e:
            return _error(request, 422, str(e))
        return _json(
            request,
            200,
            {"status": "reloaded", "generation": generation, "rules": self._book.sources()},
        )


class BoundedRequest(server.Request):
    """A request that keeps at most ``max_body`` bytes of its body, and notes the excess.

    twisted.web buffers a whole body before rendering; this bounds the memory one
    request may take. :class:`RouterApi` answers 413 when ``body_too_large`` is set.
    """

    max_body = 65536
    body_too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        """Stage the body in memory (it is bounded); note a declared oversize one."""
        if length is not None and length > self.max_body:
            self.body_too_large = True
        # twisted.web stages unknown-length and large bodies in a temporary file.
        staged = length if length is not None and not self.body_too_large else 0
        super().gotLength(min(staged, self.max_body))

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        """Keep the chunk while the body stays within ``max_body``; drop it after."""
        self._received += len(data)
        if self._received > self.max_body:
            self.body_too_large = True
            return
        super().handleContentChunk(data)


def request_factory(max_body: int) -> type[BoundedRequest]:
    """A :class:`BoundedRequest` class for a Site, keeping at most ``max_body`` bytes."""
    return type("BoundedRequest", (BoundedRequest,), {"max_body": max_body})


def _body(request, max_body: int) -> bytes | None:
    if getattr(request, "body_too_large", False):
        return None
    request.content.seek(0)
    data = request.content.read(max_body + 1)
    return None if len(data) > max_body else data


def _json(request, code: int, value: Mapping[str, Any]) -> bytes:
    request.setResponseCode(code)
    return json.dumps(value, separators=(",", ":")).encode("utf-8") + b"\n"


def _error(request, code: int, problem: str) -> bytes:
    return _json(request, code, {"error": problem})


def _peer(request) -> str:
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    return f"{host}:{peer.port}" if host is not None else str(peer)
