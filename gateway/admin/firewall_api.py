"""``/v1/fw/…``: the firewall's admin endpoints, mounted by ``gateway.admin.api``.

The parent resource checks the bearer token; everything here is JSON in and out, and
every error is ``{"error": "…"}``.

| Request | Does |
| --- | --- |
| ``GET ruleset`` | ``{"rules": [{chain, handle, rule, connections, messages, bytes}], "text"}`` |
| ``POST check {"text"}`` | validate, ``{"diff"}`` against the running rules; 422 if invalid |
| ``POST apply {"text", "source"?}`` | validate and swap in atomically; 422 if invalid |
| ``POST rules {"chain", "rule"}`` | append a rule: 201 ``{"handle"}`` |
| ``DELETE rules/HANDLE`` | remove a rule; 404 if none |
| ``POST reset-counters`` | zero the counters |
| ``GET conntrack`` / ``DELETE conntrack/ID`` | list / kill tracked connections |
| ``GET bans`` / ``POST bans {"address", "for_s"?}`` / ``DELETE bans/ADDRESS`` | bans |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from firewall.addrset import AddressError
from firewall.engine import Firewall
from firewall.ruleset import RulesError

MAX_BODY = 16 * 1024 * 1024  # a rules file with 100,000+ set entries fits


class _Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _json(request: Request, status: int, value: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"


def _body(request: Request) -> dict[str, Any]:
    raw = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(raw) > MAX_BODY:
        raise _Error(413, f"the body exceeds {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Error(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise _Error(400, "the body must be a JSON object")
    return value


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _Error(400, f"{name!r} must be a string")
    return value


# Runs a slow, pure function (parsing a large rules text) and gives its result later.
Runner = Callable[..., Deferred]


def _at_once(function: Callable[..., Any], *args: Any) -> Deferred:
    return maybeDeferred(function, *args)


class FirewallResource(Resource):
    """The firewall endpoints over one :class:`Firewall`.

    ``run`` runs rule parsing (``check``, ``apply``): at once by default; the gateway
    gives a thread pool runner, so a file of 100,000 entries does not stall the reactor
    (the swap itself happens on the reactor thread).
    """

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, firewall: Firewall, run: Runner = _at_once) -> None:
        super().__init__()
        self.firewall = firewall
        self._run = run

    def render(self, request: Request) -> bytes | int:
        """Route by method and the path after ``/v1/fw``."""
        method = request.method.decode("ascii", "replace")
        path = [unquote(p.decode("utf-8", "replace")) for p in request.postpath if p]
        try:
            result = self._route(method, path, request)
        except _Error as e:
            return _json(request, e.status, {"error": e.message})
        if isinstance(result, Deferred):
            result.addErrback(self._failed).addCallback(self._finish, request)
            return NOT_DONE_YET
        status, value = result
        return _json(request, status, value)

    @staticmethod
    def _failed(failure: Failure) -> tuple[int, Any]:
        if failure.check(RulesError):
            return 422, {"error": str(failure.value)}
        return 500, {"error": "internal error"}

    @staticmethod
    def _finish(result: tuple[int, Any], request: Request) -> None:
        status, value = result
        if getattr(request, "_disconnected", False):
            return
        request.write(_json(request, status, value))
        request.finish()

    def _route(self, method: str, path: list[str], request: Request) -> tuple[int, Any] | Deferred:
        fw = self.firewall
        head = path[0] if path else ""
        rest = "/".join(path[1:])
        if (method, head, rest) == ("GET", "ruleset", ""):
            return 200, {
                "source": fw.ruleset.source,
                "rules": fw.listing(),
                "text": fw.ruleset.render(fw.counters, handles=True),
            }
        if (method, head, rest) == ("POST", "check", ""):
            body = _body(request)
            d = self._run(fw.check, _text(body, "text"), str(body.get("source") or "new"))
            return d.addCallback(lambda diff: (200, {"valid": True, "diff": diff}))
        if (method, head, rest) == ("POST", "apply", ""):
            body = _body(request)
            d = self._run(fw.parse, _text(body, "text"), str(body.get("source") or "admin API"))
            d.addCallback(fw.install)
            return d.addCallback(lambda rs: (200, {"applied": True, "rules": len(fw.listing())}))
        if (method, head, rest) == ("POST", "rules", ""):
            body = _body(request)
            chain = body.get("chain", "input")
            if not isinstance(chain, str):
                raise _Error(400, "'chain' must be a string")
            try:
                handle = fw.add_rule(chain, _text(body, "rule"))
            except RulesError as e:
                raise _Error(422, str(e)) from None
            return 201, {"handle": handle}
        if method == "DELETE" and head == "rules" and rest:
            if not rest.isdigit() or not fw.delete_rule(int(rest)):
                raise _Error(404, f"no rule with handle {rest}")
            return 200, {"deleted": int(rest)}
        if (method, head, rest) == ("POST", "reset-counters", ""):
            fw.reset_counters()
            return 200, {"reset": True}
        if (method, head, rest) == ("GET", "conntrack", ""):
            now = fw._clock.seconds()
            return 200, {"connections": [e.as_json(now) for e in fw.conntrack]}
        if method == "DELETE" and head == "conntrack" and rest:
            if not rest.isdigit() or not fw.conntrack.kill(int(rest)):
                raise _Error(404, f"no tracked connection {rest}")
            return 200, {"killed": int(rest)}
        if (method, head, rest) == ("GET", "bans", ""):
            return 200, {"bans": fw.ban_list()}
        if (method, head, rest) == ("POST", "bans", ""):
            body = _body(request)
            for_s = body.get("for_s")
            if for_s is not None and (
                isinstance(for_s, bool) or not isinstance(for_s, int | float) or for_s <= 0
            ):
                raise _Error(400, "'for_s' must be a positive number of seconds")
            try:
                key = fw.ban(_text(body, "address"), None if for_s is None else float(for_s))
            except AddressError as e:
                raise _Error(400, str(e)) from None
            return 201, {"banned": key}
        if method == "DELETE" and head == "bans" and rest:
            try:
                lifted = fw.unban(rest)
            except AddressError as e:
                raise _Error(400, str(e)) from None
            if not lifted:
                raise _Error(404, f"{rest} is not banned")
            return 200, {"unbanned": rest}
        raise _Error(404 if method in ("GET", "POST", "DELETE") else 405, "no such endpoint")


def resource(service: Any) -> FirewallResource:
    """The ``/v1/fw`` resource of a running gateway (``ADMIN_RESOURCES["fw"]``)."""
    reactor = service.reactor

    def in_thread(function: Callable[..., Any], *args: Any) -> Deferred:
        return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    return FirewallResource(service.firewall, in_thread)
