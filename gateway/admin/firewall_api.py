"""``/v1/fw/…``: the firewall's admin endpoints, mounted by ``gateway.admin.api``.

The parent resource checks the bearer token; everything here is JSON in and out, and
every error is ``{"error": "…"}``. Listings, diffs and saves of large rule sets are
built in a thread from a snapshot taken on the reactor thread, so the gateway keeps
serving meanwhile. ``persist`` (a body field, or ``?persist=1``) writes the running
rules to the rules file after the change, as ``fw save`` does.

Requests (paths under ``/v1/fw/``):

- ``GET ruleset[?full=1][&format=rules]``: ``{"rules": [...], "text"}``; large sets are
  summarised unless ``full``; ``format=rules`` is the rules file as ``fw save`` writes it
- ``GET sets/NAME``; ``POST sets/NAME/elements {"add", "delete", "persist"?}``
- ``POST check {"text"}``: validate, ``{"diff"}`` against the running rules (422 if not)
- ``POST trace {"address", "port"?, "listener"?, "role"?, "chain"?}``: verdict and steps
- ``POST apply {"text", "source"?}``: validate and swap in atomically (422 if invalid)
- ``POST save``: write the running rules to the rules file
- ``POST rules {"chain", "rule", "before"?, "after"?, "index"?, "comment"?, "persist"?}``
  (201 ``{"handle"}``); ``PUT rules/HANDLE {"rule", "comment"?}``;
  ``DELETE rules/HANDLE[?persist=1]``
- ``POST reset-counters``
- ``GET conntrack``, ``DELETE conntrack/ID``, ``POST conntrack/flush {"address"}``
- ``GET bans``, ``POST bans {"address", "for_s"?, "close"?}``, ``DELETE bans/ADDRESS``
- ``GET dnat``: the DNAT backends and their state
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

from firewall import edit, render, trace
from firewall.addrset import AddressError, network_text
from firewall.engine import Firewall
from firewall.persist import write_atomically
from firewall.ruleset import RulesError
from gateway.admin.body import ApiError, json_body

MAX_BODY = 16 * 1024 * 1024  # a rules file with 100,000+ set entries fits


def _json(request: Request, status: int, value: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ApiError(400, f"{name!r} must be a string")
    return value


def _optional(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise ApiError(400, f"{name!r} must be a {kind.__name__}")
    return value


def _arg(request: Request, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def _flag(request: Request, body: dict[str, Any] | None, name: str) -> bool:
    if body is not None and body.get(name) is not None:
        return _optional(body, name, bool)
    return _arg(request, name) in ("1", "true", "yes")


# Runs a slow, pure function (parsing or rendering a large rule set) and gives its
# result later.
Runner = Callable[..., Deferred]


def _at_once(function: Callable[..., Any], *args: Any) -> Deferred:
    return maybeDeferred(function, *args)


class FirewallResource(Resource):
    """The firewall endpoints over one :class:`Firewall`.

    ``run`` runs slow work (parsing, rendering, writing the rules file): at once by
    default; the gateway gives a thread pool runner. ``listeners()`` lists the bound
    listeners as (firewall listener name, protocol, port), so that ``trace`` finds the
    listener by port; ``backends`` are the DNAT pools.
    """

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(
        self,
        firewall: Firewall,
        run: Runner = _at_once,
        *,
        listeners: Callable[[], list[tuple[str, str, int]]] = list,
        backends: Any = None,
    ) -> None:
        super().__init__()
        self.firewall = firewall
        self._run = run
        self._listeners = listeners
        self._backends = backends

    def render(self, request: Request) -> bytes | int:
        """Route by method and the path after ``/v1/fw``."""
        method = request.method.decode("ascii", "replace")
        path = [unquote(p.decode("utf-8", "replace")) for p in request.postpath if p]
        try:
            result = self._route(method, path, request)
        except ApiError as e:
            return _json(request, e.status, {"error": e.message})
        except RulesError as e:
            return _json(request, 422, {"error": str(e)})
        if isinstance(result, Deferred):
            result.addErrback(self._failed).addCallback(self._finish, request)
            return NOT_DONE_YET
        status, value = result
        return _json(request, status, value)

    @staticmethod
    def _failed(failure: Failure) -> tuple[int, Any]:
        if failure.check(RulesError):
            return 422, {"error": str(failure.value)}
        if failure.check(ApiError):
            return failure.value.status, {"error": failure.value.message}
        if failure.check(OSError):
            return 500, {"error": f"cannot write the rules file: {failure.getErrorMessage()}"}
        return 500, {"error": "internal error"}

    @staticmethod
    def _finish(result: tuple[int, Any], request: Request) -> None:
        status, value = result
        if getattr(request, "_disconnected", False):
            return
        request.write(_json(request, status, value))
        request.finish()

    def _route(self, method: str, path: list[str], request: Request) -> tuple[int, Any] | Deferred:
        head = path[0] if path else ""
        rest = "/".join(path[1:])
        handler = _ROUTES.get((method, head, bool(rest)))
        if handler is None:
            raise ApiError(
                404 if method in ("GET", "POST", "PUT", "DELETE") else 405, "no such endpoint"
            )
        return handler(self, rest, request)

    # -- listing, saving ------------------------------------------------------------

    def _ruleset(self, rest: str, request: Request) -> Deferred:
        fw = self.firewall
        full = _flag(request, None, "full")
        as_rules = _arg(request, "format") == "rules"
        snap = fw.snapshot(full=full or as_rules)

        def build() -> tuple[int, Any]:
            text = (
                render.render(snap)
                if as_rules
                else render.render(snap, counters=True, handles=True)
            )
            return 200, {"source": snap.ruleset.source, "rules": render.listing(snap), "text": text}

        return self._run(build)

    def _set(self, rest: str, request: Request) -> tuple[int, Any] | Deferred:
        prefixes = self.firewall.ruleset.sets.get(rest)
        if prefixes is None:
            raise ApiError(404, f"no set named {rest!r}")
        copy = prefixes.copy()

        def build() -> tuple[int, Any]:
            elements = [network_text(n) for n in copy.networks()]
            return 200, {"set": rest, "size": len(elements), "elements": elements}

        return self._run(build)

    def save(self) -> Deferred:
        """Write the running rules to the rules file (in a thread); fires with its path."""
        path = self.firewall.rules_file
        if path is None:
            raise ApiError(409, "no rules file (firewall.rules) to write to")
        snap = self.firewall.snapshot(full=True)

        def write() -> str:
            write_atomically(path, render.render(snap))
            return str(path)

        return self._run(write)

    def _can_persist(self, request: Request, body: dict[str, Any] | None) -> None:
        # Refused before anything changes: a change that cannot be written is not made.
        if _flag(request, body, "persist") and self.firewall.rules_file is None:
            raise ApiError(409, "no rules file (firewall.rules) to write to")

    def _changed(self, request: Request, body: dict[str, Any] | None, answer: tuple[int, Any]):
        if not _flag(request, body, "persist"):
            return answer
        status, value = answer
        return self.save().addCallback(lambda path: (status, {**value, "saved": path}))

    def _save(self, rest: str, request: Request) -> Deferred:
        return self.save().addCallback(lambda path: (200, {"saved": path}))

    # -- checking -------------------------------------------------------------------

    def _check(self, rest: str, request: Request) -> Deferred:
        body = json_body(request)
        fw = self.firewall
        snap = fw.snapshot(full=True)
        d = self._run(fw.check, _text(body, "text"), str(body.get("source") or "new"), snap)
        return d.addCallback(lambda diff: (200, {"valid": True, "diff": diff}))

    def _trace(self, rest: str, request: Request) -> tuple[int, Any]:
        body = json_body(request)
        chain = body.get("chain") or "input"
        if chain not in ("input", "output"):
            raise ApiError(400, "'chain' must be input or output")
        port = _optional(body, "port", int)
        listener = _optional(body, "listener", str) or ""
        protocol = _optional(body, "protocol", str) or ""
        role = _optional(body, "role", str)
        if role is not None and role not in ("customer", "agent"):
            raise ApiError(400, "'role' must be customer or agent")
        if chain == "input" and port is not None and not listener:
            found = [(name, proto) for name, proto, p in self._listeners() if p == port]
            if not found:
                raise ApiError(404, f"no listener on port {port}")
            listener, protocol = found[0][0], protocol or found[0][1]
        if chain == "input" and listener and not protocol:
            known = {name: proto for name, proto, _ in self._listeners()}
            protocol = known.get(listener, listener)
        try:
            answer = trace.explain(
                self.firewall,
                _text(body, "address"),
                port=port,
                listener=listener,
                protocol=protocol,
                role=role,
                chain=chain,
            )
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        answer["listener"], answer["protocol"] = listener or None, protocol or None
        return 200, answer

    def _apply(self, rest: str, request: Request) -> Deferred:
        body = json_body(request)
        fw = self.firewall
        d = self._run(fw.parse, _text(body, "text"), str(body.get("source") or "admin API"))
        d.addCallback(fw.install)
        return d.addCallback(lambda rs: (200, {"applied": True, "rules": len(fw.listing())}))

    # -- single rules and elements --------------------------------------------------

    def _add(self, rest: str, request: Request) -> tuple[int, Any] | Deferred:
        body = json_body(request)
        chain = body.get("chain", "input")
        if not isinstance(chain, str):
            raise ApiError(400, "'chain' must be a string")
        self._can_persist(request, body)
        handle = self.firewall.add_rule(
            chain,
            _text(body, "rule"),
            before=_optional(body, "before", int),
            after=_optional(body, "after", int),
            index=_optional(body, "index", int),
            comment=_optional(body, "comment", str),
        )
        return self._changed(request, body, (201, {"handle": handle}))

    def _replace(self, rest: str, request: Request) -> tuple[int, Any] | Deferred:
        body = json_body(request)
        handle = _handle(rest)
        self._can_persist(request, body)
        comment = _optional(body, "comment", str)
        if not self.firewall.replace_rule(handle, _text(body, "rule"), comment):
            raise ApiError(404, f"no rule with handle {rest}")
        return self._changed(request, body, (200, {"replaced": handle}))

    def _delete(self, rest: str, request: Request) -> tuple[int, Any] | Deferred:
        self._can_persist(request, None)
        if not rest.isdigit() or not self.firewall.delete_rule(int(rest)):
            raise ApiError(404, f"no rule with handle {rest}")
        return self._changed(request, None, (200, {"deleted": int(rest)}))

    def _elements(self, rest: str, request: Request) -> tuple[int, Any] | Deferred:
        name, _, tail = rest.partition("/")
        if tail != "elements":
            raise ApiError(404, "no such endpoint")
        body = json_body(request)
        lists = {}
        for key in ("add", "delete"):
            value = body.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ApiError(400, f"{key!r} must be a list of addresses or networks")
            lists[key] = value
        self._can_persist(request, body)
        try:
            answer = edit.set_elements(self.firewall.ruleset, name, lists["add"], lists["delete"])
        except RulesError as e:
            raise ApiError(404 if "no set named" in str(e) else 400, str(e)) from None
        return self._changed(request, body, (200, answer))

    def _reset(self, rest: str, request: Request) -> tuple[int, Any]:
        self.firewall.reset_counters()
        return 200, {"reset": True}

    # -- conntrack, bans, DNAT --------------------------------------------------------

    def _conntrack(self, rest: str, request: Request) -> tuple[int, Any]:
        now = self.firewall.clock.seconds()
        return 200, {"connections": [e.as_json(now) for e in self.firewall.conntrack]}

    def _conntrack_post(self, rest: str, request: Request) -> tuple[int, Any]:
        if rest != "flush":
            raise ApiError(404, "no such endpoint")
        try:
            closed = self.firewall.flush(_text(json_body(request), "address"))
        except AddressError as e:
            raise ApiError(400, str(e)) from None
        return 200, {"flushed": closed}

    def _kill(self, rest: str, request: Request) -> tuple[int, Any]:
        if not rest.isdigit() or not self.firewall.conntrack.kill(int(rest)):
            raise ApiError(404, f"no tracked connection {rest}")
        return 200, {"killed": int(rest)}

    def _bans(self, rest: str, request: Request) -> tuple[int, Any]:
        return 200, {"bans": self.firewall.ban_list()}

    def _ban(self, rest: str, request: Request) -> tuple[int, Any]:
        body = json_body(request)
        for_s = body.get("for_s")
        if for_s is not None and (
            isinstance(for_s, bool) or not isinstance(for_s, int | float) or for_s <= 0
        ):
            raise ApiError(400, "'for_s' must be a positive number of seconds")
        close = bool(_optional(body, "close", bool))
        try:
            banned = self.firewall.ban(
                _text(body, "address"), None if for_s is None else float(for_s), close=close
            )
        except AddressError as e:
            raise ApiError(400, str(e)) from None
        return 201, {"banned": banned}

    def _unban(self, rest: str, request: Request) -> tuple[int, Any]:
        try:
            lifted = self.firewall.unban(rest)
        except AddressError as e:
            raise ApiError(400, str(e)) from None
        if not lifted:
            raise ApiError(404, f"{rest} is not banned")
        return 200, {"unbanned": rest}

    def _dnat(self, rest: str, request: Request) -> tuple[int, Any]:
        return 200, {"dnat": self._backends.as_json() if self._backends is not None else []}


def _handle(text: str) -> int:
    if not text.isdigit():
        raise ApiError(404, f"no rule with handle {text}")
    return int(text)


# (method, first path segment, whether more follows) -> handler(resource, rest, request)
_ROUTES: dict[tuple[str, str, bool], Callable[..., Any]] = {
    ("GET", "ruleset", False): FirewallResource._ruleset,
    ("GET", "sets", True): FirewallResource._set,
    ("POST", "sets", True): FirewallResource._elements,
    ("POST", "check", False): FirewallResource._check,
    ("POST", "trace", False): FirewallResource._trace,
    ("POST", "apply", False): FirewallResource._apply,
    ("POST", "save", False): FirewallResource._save,
    ("POST", "rules", False): FirewallResource._add,
    ("PUT", "rules", True): FirewallResource._replace,
    ("DELETE", "rules", True): FirewallResource._delete,
    ("POST", "reset-counters", False): FirewallResource._reset,
    ("GET", "conntrack", False): FirewallResource._conntrack,
    ("POST", "conntrack", True): FirewallResource._conntrack_post,
    ("DELETE", "conntrack", True): FirewallResource._kill,
    ("GET", "bans", False): FirewallResource._bans,
    ("POST", "bans", False): FirewallResource._ban,
    ("DELETE", "bans", True): FirewallResource._unban,
    ("GET", "dnat", False): FirewallResource._dnat,
}


def _listeners_of(service: Any) -> Callable[[], list[tuple[str, str, int]]]:
    def listeners() -> list[tuple[str, str, int]]:
        out = []
        for kind, _description, port in service.ports:
            address = port.getHost()
            number = getattr(address, "port", None)
            if number is None:
                continue
            factory = service.firewalls.get(kind)
            if kind.startswith("dnat."):
                out.append((kind.removeprefix("dnat."), "tcp", number))
            else:
                protocol = factory.wire_protocol if factory is not None else kind
                out.append((kind, protocol, number))
        return out

    return listeners


def resource(service: Any) -> FirewallResource:
    """The ``/v1/fw`` resource of a running gateway (``ADMIN_RESOURCES["fw"]``)."""
    reactor = service.reactor

    def in_thread(function: Callable[..., Any], *args: Any) -> Deferred:
        return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    return FirewallResource(
        service.firewall,
        in_thread,
        listeners=_listeners_of(service),
        backends=getattr(service, "dnat", None),
    )
