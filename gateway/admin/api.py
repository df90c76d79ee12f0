"""The admin HTTP API, the supervisor page and the metrics listener.

``[admin] listen`` serves ``/v1/...`` (JSON, bearer token) and ``/`` (the supervisor
page); ``[admin] metrics`` serves Prometheus' text format on a listener of its own.
Other packages mount resources under ``/v1/NAME`` through :data:`ADMIN_RESOURCES`;
the token check covers them too.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable, Mapping
from math import ceil
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from prometheus_client.twisted import MetricsResource
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from gateway import logs
from gateway.admin import desk_api, firewall_api, supervisor, views
from gateway.admin.body import ApiError, json_body
from gateway.admin.interfaces import IAdministered
from gateway.admin.settings import TOKEN_FILE
from gateway.core.errors import BadRequest, GatewayError, NotAllowed, Unavailable
from gateway.core.throttle import LoginGuard
from gateway.directory.records import STATUSES

# Mount point under /v1 -> builder of the resource served there ("fw": the firewall).
ADMIN_RESOURCES: dict[str, Callable[[IAdministered], Resource]] = {
    "fw": firewall_api.resource,
    "desk": desk_api.resource,
}

COOKIE = b"imgateway_admin"
_SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"cache-control": b"no-store",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
_PAGE_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    b" frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


# -- the token ----------------------------------------------------------------


def token_path(data_dir: Path) -> Path:
    """Where a generated token is written for the local CLI."""
    return Path(data_dir) / TOKEN_FILE


def write_token(data_dir: Path, token: str) -> Path:
    """Write ``token`` to ``data_dir/admin.token``, readable by its owner only."""
    path = token_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def _same(given: bytes | str | None, token: str) -> bool:
    if not given:
        return False
    if isinstance(given, str):
        given = given.encode("utf-8", "replace")
    return hmac.compare_digest(given, token.encode())


# -- responses ----------------------------------------------------------------


def _headers(request: Request) -> None:
    for name, value in _SECURITY_HEADERS.items():
        request.setHeader(name, value)


def write_json(request: Request, status: int, value: Any) -> bytes:
    """Set the status and JSON headers; the body to return from render."""
    request.setResponseCode(status)
    _headers(request)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class AdminAuth:
    """Checks a request's token and logs every failure in one line.

    Wrong tokens lock their address out as failed agent logins do (``guard``, a
    :class:`gateway.core.throttle.LoginGuard`): while locked out, even the right token
    gets 429, so guessing stays slow; addresses the token was used from before are
    not held back by guesses from elsewhere.
    """

    def __init__(
        self, token: str, on_failure: Callable[[str], None], guard: LoginGuard | None = None
    ) -> None:
        self._token = token
        self._on_failure = on_failure
        self._guard = guard

    def locked_for(self, request: Request) -> float:
        """Seconds the request's address must wait before trying a token (0: go ahead)."""
        if self._guard is None:
            return 0.0
        return self._guard.blocked_for("admin", _host(request))

    def check(self, request: Request, *, cookie_ok: bool) -> bool:
        """True for ``Authorization: Bearer TOKEN`` or, when ``cookie_ok``, the cookie
        (and the address not locked out)."""
        if self.locked_for(request) > 0:
            self._on_failure(_host(request) or "-")
            return False
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and _same(given.strip(), self._token)
        cookie = request.getCookie(COOKIE) if cookie_ok and not ok else None
        if cookie is not None and _same(unquote(cookie.decode("latin-1")), self._token):
            ok = True
        if ok:
            if self._guard is not None:
                self._guard.succeeded("admin", _host(request))
            return True
        self.failed(request)
        return False

    def matches(self, given: str | None) -> bool:
        """Whether ``given`` is the token (constant time)."""
        return _same(given, self._token)

    def failed(self, request: Request) -> None:
        """Log one auth failure line for this request's peer and count it."""
        host = _host(request)
        if self._guard is not None:
            self._guard.failed("admin", host)
        self._on_failure(host or "-")


def _host(request: Request) -> str | None:
    return getattr(request.getClientAddress(), "host", None)


class _Unauthorized(Resource):
    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, wait_s: float = 0.0) -> None:
        super().__init__()
        self._wait_s = wait_s

    def render(self, request: Request) -> bytes:
        if self._wait_s > 0:
            seconds = max(1, ceil(self._wait_s))
            request.setHeader(b"retry-after", str(seconds).encode())
            return write_json(
                request, 429, {"error": f"too many wrong tokens; try again in {seconds} s"}
            )
        request.setHeader(b"www-authenticate", b'Bearer realm="imgateway"')
        return write_json(request, 401, {"error": "unauthorized"})


class _Missing(Resource):
    isLeaf = True  # noqa: N815 (Twisted's name)

    def render(self, request: Request) -> bytes:
        return write_json(request, 404, {"error": "not found"})


# -- /v1 ----------------------------------------------------------------------


class ApiEndpoints(Resource):
    """The built-in ``/v1`` endpoints; the path is routed here, not by child resources."""

    isLeaf = True  # noqa: N815 (Twisted's name)
    _log = Logger(observer=logs.observer)

    def __init__(self, service: IAdministered, clock: Any) -> None:
        super().__init__()
        self._service = service
        self._clock = clock

    @property
    def _gateway(self):
        return self._service.gateway

    def render(self, request: Request) -> bytes | int:
        """Route by method and path; errors become JSON answers."""
        segments = [s.decode("utf-8", "replace") for s in request.prepath[1:] + request.postpath]
        while segments and not segments[-1]:
            segments.pop()
        method = request.method.decode("ascii", "replace")
        try:
            result = self._route(method, segments, request)
        except ApiError as e:
            return write_json(request, e.status, {"error": e.message})
        except GatewayError as e:
            return write_json(request, _status_of(e), {"error": str(e)})
        if isinstance(result, Deferred):
            self._finish_later(request, result)
            return NOT_DONE_YET
        return write_json(request, 200, result)

    def _route(self, method: str, path: list[str], request: Request) -> Any:
        now = self._clock.seconds()
        gw = self._gateway
        match method, path:
            case "GET", ["summary"]:
                return views.summary_view(gw, gw.agents, now)
            case "GET", ["agents"]:
                return views.agents_view(self._gateway.agents, now)
            case "POST", ["agents", name, "state"]:
                status = json_body(request).get("status")
                if status not in STATUSES:
                    raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
                self._agent(name)
                gw.set_agent_status(name, status)
                return {"ok": True, "agent": name, "status": status}
            case "POST", ["agents", name, "logout"]:
                self._agent(name)
                gw.logout_agent(name)
                return {"ok": True, "agent": name}
            case "GET", ["queues"]:
                return views.queues_view(gw.queues, now, gw.teams)
            case "GET", ["teams"]:
                return views.teams_view(gw.teams, gw.agents)
            case "POST", ["teams", "reload"]:
                return self._service.reload_teams().addCallback(
                    lambda teams: {"ok": True, "teams": list(teams.names)}
                )
            case "GET", ["cluster"]:
                return views.cluster_view(gw, now)
            case "GET", ["conversations"]:
                return views.conversations_view(gw.conversations.values(), now)
            case "GET", ["conversations", cid, "transcript"]:
                return self._transcript(cid, request)
            case "POST", ["conversations", cid, "end"]:
                self._conversation(cid)
                gw.admin_end(cid)
                return {"ok": True, "conversation": cid}
            case "POST", ["conversations", cid, "transfer"]:
                body = json_body(request)
                queue, agent = body.get("queue"), body.get("agent")
                if not all(v is None or isinstance(v, str) for v in (queue, agent)):
                    raise ApiError(400, "queue and agent must be strings")
                self._conversation(cid)
                gw.admin_transfer(cid, queue=queue, agent=agent)
                return {"ok": True, "conversation": cid, "to": queue or agent}
        raise ApiError(405 if _known(path) else 404, f"no {method} /v1/{'/'.join(path)}")

    def _agent(self, name: str) -> None:
        if self._gateway.agents.get(name) is None:
            raise ApiError(404, f"agent {name} is not logged in")

    def _conversation(self, cid: str) -> None:
        if cid not in self._gateway.conversations:
            raise ApiError(404, f"no live conversation {cid}")

    def _transcript(self, cid: str, request: Request) -> Deferred:
        fmt = (request.args.get(b"format") or [b"json"])[0]
        if fmt not in (b"json", b"text"):
            raise ApiError(400, "format must be json or text")
        store = self._service.store

        def found(record):
            if record is None:
                raise ApiError(404, f"no such conversation: {cid}")
            return store.transcript(cid).addCallback(lambda messages: (record, messages))

        def render(pair):
            record, messages = pair
            if fmt == b"text":
                return _Text(views.transcript_text(record, messages))
            return views.transcript_json(record, messages)

        return store.get_conversation(cid).addCallback(found).addCallback(render)

    def _finish_later(self, request: Request, d: Deferred) -> None:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def done(result: Any) -> None:
            if gone:
                return
            if isinstance(result, _Text):
                request.setResponseCode(200)
                _headers(request)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                request.write(result.text.encode())
            else:
                request.write(write_json(request, 200, result))
            request.finish()

        def failed(failure: Failure) -> None:
            if gone:
                return
            if failure.check(ApiError):
                body = write_json(request, failure.value.status, {"error": failure.value.message})
            else:
                self._log.failure("admin request failed", failure)
                body = write_json(request, 500, {"error": "internal error"})
            request.write(body)
            request.finish()

        d.addCallbacks(done, failed)


class _Text:
    """A plain-text answer from a Deferred."""

    def __init__(self, text: str) -> None:
        self.text = text


def _status_of(error: GatewayError) -> int:
    if isinstance(error, BadRequest):
        return 400
    if isinstance(error, NotAllowed | Unavailable):
        return 409
    return 500


_RESOURCES = ("summary", "agents", "queues", "teams", "conversations")


def _known(path: list[str]) -> bool:
    return bool(path) and path[0] in _RESOURCES


class V1(Resource):
    """``/v1``: mounted resources by name, else the built-in endpoints."""

    def __init__(self, endpoints: Resource, mounted: dict[str, Resource]) -> None:
        super().__init__()
        self._endpoints = endpoints
        self._mounted = mounted

    def getChild(self, path: bytes, request: Request) -> Resource:  # noqa: N802 (Twisted's name)
        """A mounted resource, or the endpoints (which read the rest of the path)."""
        mounted = self._mounted.get(path.decode("utf-8", "replace"))
        return mounted if mounted is not None else self._endpoints

    def render(self, request: Request) -> bytes:
        """``/v1`` itself lists what is there."""
        return write_json(request, 200, {"resources": [*_RESOURCES, *sorted(self._mounted)]})


# -- / : the supervisor page ---------------------------------------------------


class _Static(Resource):
    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, body: str, content_type: bytes) -> None:
        super().__init__()
        self._body = body.encode()
        self._type = content_type

    def render_GET(self, request: Request) -> bytes:
        _headers(request)
        request.setHeader(b"content-type", self._type)
        return self._body


class SupervisorPage(Resource):
    """``/``: the page, for a session cookie; ``/?token=`` sets that cookie first."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, auth: AdminAuth) -> None:
        super().__init__()
        self._auth = auth

    def render_GET(self, request: Request) -> bytes:
        """The page, a redirect that sets the cookie, or a login hint (401)."""
        _headers(request)
        request.setHeader(b"content-security-policy", _PAGE_POLICY)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        given = (request.args.get(b"token") or [None])[0]
        if given is not None:
            if not self._auth.matches(given.decode("utf-8", "replace")):
                self._auth.failed(request)
                request.setResponseCode(401)
                return supervisor.LOGIN.encode()
            # Move the token from the URL (history, logs) into an HttpOnly cookie.
            request.addCookie(
                COOKIE,
                quote(given.decode()).encode(),
                path=b"/",
                httpOnly=True,
                sameSite="strict",
            )
            request.redirect(b"/")
            return b""
        if not self._auth.check(request, cookie_ok=True):
            request.setResponseCode(401)
            return supervisor.LOGIN.encode()
        return supervisor.PAGE.encode()


class AdminRoot(Resource):
    """The admin listener's root: ``/``, its script and style, and ``/v1``."""

    def __init__(self, auth: AdminAuth, v1: Resource) -> None:
        super().__init__()
        self._auth = auth
        self._v1 = v1
        self._page = SupervisorPage(auth)
        self._static = {
            b"supervisor.js": _Static(supervisor.SCRIPT, b"text/javascript; charset=utf-8"),
            b"supervisor.css": _Static(supervisor.STYLE, b"text/css; charset=utf-8"),
        }

    def getChild(self, path: bytes, request: Request) -> Resource:  # noqa: N802 (Twisted's name)
        """Route the first path segment; ``/v1`` needs the token."""
        if path == b"":
            return self._page
        if path in self._static:
            return self._static[path]
        if path == b"v1":
            # The cookie serves reads, and the supervisor page's own actions: a
            # cross-site form cannot act with it.
            cookie_ok = request.method in (b"GET", b"HEAD") or desk_api.page_action(request)
            wait = self._auth.locked_for(request)  # before: the failure that locks is a 401
            if not self._auth.check(request, cookie_ok=cookie_ok):
                return _Unauthorized(wait)
            return self._v1
        return _Missing()


def admin_resource(
    service: IAdministered,
    token: str,
    clock: Any,
    resources: Mapping[str, Callable[[IAdministered], Resource]] | None = None,
) -> AdminRoot:
    """The admin listener's resource tree for ``service`` (mounts: ADMIN_RESOURCES)."""
    config = service.config
    guard = LoginGuard(
        clock, free=config.login_failures_free, max_lockout_s=config.login_lockout_max_s
    )
    auth = AdminAuth(
        token, lambda host: service.gateway.auth_failed("admin", "-", host), guard=guard
    )
    builders = ADMIN_RESOURCES if resources is None else resources
    mounted = {name: build(service) for name, build in builders.items()}
    return AdminRoot(auth, V1(ApiEndpoints(service, clock), mounted))


def admin_site(
    service: IAdministered,
    token: str,
    clock: Any,
    resources: Mapping[str, Callable[[IAdministered], Resource]] | None = None,
) -> Site:
    """A Site serving :func:`admin_resource`, without access log lines per request."""
    site = Site(admin_resource(service, token, clock, resources))
    site.noisy = False
    site.log = lambda request: None
    return site


def metrics_site(registry: Any) -> Site:
    """Prometheus' text format for ``registry`` at any path (scrape ``/metrics``)."""
    site = Site(MetricsResource(registry=registry))
    site.noisy = False
    site.log = lambda request: None
    return site
