"""``/v1/desk/…``: the service desk's admin endpoints, mounted by ``gateway.admin.api``.

The parent resource checks the bearer token (the supervisor page's cookie serves reads,
and its own actions with the page's header; see ``gateway.admin.api``). JSON in and
out; every error is ``{"error": "…"}``. Reports take ``since`` and ``until`` (a date
``2025-12-01`` in UTC, or POSIX seconds; default the last 7 days).

| Request | Does |
| --- | --- |
| ``GET conversations/ID`` | a live conversation: its lines (with who saw them), who is in it |
| ``POST conversations/ID/whisper {"text"}`` | the supervisor whispers to its agents |
| ``POST conversations/ID/say {"text"}`` | the supervisor writes to the customer too |
| ``GET offline?state=&limit=`` | messages customers left, newest first |
| ``GET canned`` / ``PUT canned/NAME {"text", "team"?}`` / ``DELETE canned/NAME?team=`` | |
| ``GET holidays`` / ``POST holidays {"queue", "spec", "name"?}`` / ``DELETE holidays/ID`` | |
| ``GET roles`` / ``PUT roles/AGENT {"role": "supervisor" or null}`` | desk roles |
| ``GET reports/dispositions`` / ``reports/csat`` / ``reports/states`` | per queue, agent |
| ``GET teams/NAME`` | a team's agents (state, reason, load), queues, live conversations |
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gateway import logs
from gateway.admin.body import ApiError, json_body
from gateway.core.errors import BadRequest, GatewayError, NotAllowed, Unavailable
from gateway.desk import canned as canned_module
from gateway.desk.records import OFFLINE_STATES, Canned
from gateway.desk.supervision import ROLE_NAMES, live_view

WEEK_S = 7 * 86400
MAX_LIMIT = 10_000
RESOURCES = ("conversations", "offline", "canned", "holidays", "roles", "reports", "teams")
# What the supervisor page may do with its cookie (and its header): its own actions.
PAGE_ACTIONS = ("whisper", "say")
PAGE_HEADER = b"x-imgateway-page"


def _json(request: Request, status: int, value: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{name!r} must be a non-empty string")
    return value


def _arg(request: Request, name: str) -> str | None:
    values = request.args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def moment(text: str | None, default: float) -> float:
    """POSIX seconds from a query value: a date (UTC midnight), a timestamp, or default."""
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        pass
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(400, f"{text[:32]!r} is neither a date (2025-12-01) nor seconds") from None
    return day.timestamp()


def _status(failure: Failure) -> tuple[int, dict]:
    if failure.check(ApiError):
        return failure.value.status, {"error": failure.value.message}
    if failure.check(BadRequest):
        return 400, {"error": failure.value.text}
    if failure.check(NotAllowed, Unavailable):
        return 409, {"error": failure.value.text}
    if failure.check(GatewayError):
        return 500, {"error": failure.value.text}
    DeskResource._log.failure("desk admin request failed", failure)
    return 500, {"error": "internal error"}


class DeskResource(Resource):
    """The desk's endpoints over one running gateway's service desk."""

    isLeaf = True  # noqa: N815 (Twisted's name)
    _log = Logger(observer=logs.observer)

    def __init__(self, service: Any) -> None:
        super().__init__()
        self._service = service

    @property
    def _desk(self) -> Any:
        desk = self._service.gateway.service_desk
        if desk is None:
            raise ApiError(404, "this gateway has no service desk")
        return desk

    def render(self, request: Request) -> bytes | int:
        """Route by method and the path after ``/v1/desk``."""
        method = request.method.decode("ascii", "replace")
        path = [unquote(p.decode("utf-8", "replace")) for p in request.postpath if p]
        d = maybeDeferred(self._route, method, path, request)
        d.addCallbacks(lambda value: (200, value), _status)
        d.addCallback(self._finish, request)
        return NOT_DONE_YET

    @staticmethod
    def _finish(result: tuple[int, Any], request: Request) -> None:
        status, value = result
        if getattr(request, "_disconnected", False):
            return
        request.write(_json(request, status, value))
        request.finish()

    def _route(self, method: str, path: list[str], request: Request) -> Any:
        desk = self._desk
        now = self._service.reactor.seconds()
        match method, path:
            case "GET", []:
                return {"resources": list(RESOURCES)}
            case "GET", ["conversations", cid]:
                return self._conversation(desk, cid)
            case "POST", ["conversations", cid, "whisper"]:
                text = _text(json_body(request), "text")
                d = desk.supervision.page_whisper(cid, text)
                return d.addCallback(lambda msg: {"conversation": cid, "msg": msg})
            case "POST", ["conversations", cid, "say"]:
                text = _text(json_body(request), "text")
                d = desk.supervision.page_say(cid, text)
                return d.addCallback(lambda msg: {"conversation": cid, "msg": msg})
            case "GET", ["offline"]:
                state = _arg(request, "state")
                if state is not None and state not in OFFLINE_STATES:
                    raise ApiError(400, f"state must be one of {', '.join(OFFLINE_STATES)}")
                limit = self._limit(request)
                d = desk.store.offline_list(state, limit)
                return d.addCallback(lambda ms: {"messages": [m.to_json() for m in ms]})
            case "GET", ["canned"]:
                d = desk.store.canned_list()
                return d.addCallback(lambda cs: {"responses": [c.to_json() for c in cs]})
            case "PUT", ["canned", name]:
                return self._put_canned(desk, name, json_body(request), now)
            case "DELETE", ["canned", name]:
                team = _arg(request, "team") or ""
                d = desk.store.canned_remove(name, team)
                return d.addCallback(lambda found: self._found(found, f"no canned {name!r}"))
            case "GET", ["holidays"]:
                return desk.calendar.reload().addCallback(lambda _: desk.calendar.view(now))
            case "POST", ["holidays"]:
                body = json_body(request)
                name = body.get("name", "")
                d = desk.calendar.add(body.get("queue"), body.get("spec"), name)
                return d.addCallback(lambda closure: {"id": closure})
            case "DELETE", ["holidays", closure]:
                if not closure.isdigit():
                    raise ApiError(404, f"no closure {closure[:32]}")
                d = desk.calendar.remove(int(closure))
                return d.addCallback(lambda found: self._found(found, f"no closure {closure}"))
            case "GET", ["roles"]:
                d = desk.store.roles()
                return d.addCallback(
                    lambda rows: {"roles": [{"agent": a, "role": r} for a, r in rows]}
                )
            case "PUT", ["roles", agent]:
                role = json_body(request).get("role")
                if role is not None and role not in ROLE_NAMES:
                    raise ApiError(400, f"role must be one of {', '.join(ROLE_NAMES)}, or null")
                d = desk.store.set_role(agent, role)
                d.addCallback(lambda found: self._found(found, f"no agent {agent!r}"))
                # A supervisor logged in now is one at once.
                return d.addCallback(lambda ok: (desk.roles.refresh(agent), ok)[1])
            case "GET", ["teams", name]:
                return self._team(name, now)
            case "GET", ["reports", kind]:
                return self._report(desk, kind, request, now)
        status = 404 if method in ("GET", "POST", "PUT", "DELETE") else 405
        raise ApiError(status, "no such endpoint")

    @staticmethod
    def _found(found: bool, missing: str) -> dict:
        if not found:
            raise ApiError(404, missing)
        return {"ok": True}

    @staticmethod
    def _limit(request: Request) -> int:
        text = _arg(request, "limit") or "100"
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
        return int(text)

    def _put_canned(self, desk: Any, name: str, body: dict, now: float) -> Deferred:
        problem = canned_module.check_name(name)
        if problem:
            raise ApiError(400, problem)
        text = _text(body, "text")
        if len(text) > desk.settings.max_canned:
            raise ApiError(400, f"the text is at most {desk.settings.max_canned} characters")
        team = body.get("team") or ""
        if not isinstance(team, str):
            raise ApiError(400, "'team' must be a string")
        d = desk.store.canned_put(Canned(name, text, team), now)
        return d.addCallback(lambda _: Canned(name, text, team).to_json())

    def _conversation(self, desk: Any, cid: str) -> Deferred:
        try:
            conv = desk.ctx.conversation(cid)
        except NotAllowed:
            raise ApiError(404, f"no live conversation {cid[:64]}") from None
        now = self._service.reactor.seconds()
        participants = [
            {"agent": p.agent.name, "alias": p.agent.alias, "role": p.role}
            for p in desk.rooms.of(conv.id)
        ]

        def lines(messages: list) -> dict:
            return {
                "id": conv.id,
                "customer": conv.alias,
                "state": conv.state,
                "queue": conv.queue,
                "agent": conv.agent.name if conv.agent is not None else None,
                "age_s": round(max(0.0, now - conv.started), 1),
                "participants": participants,
                "messages": [
                    {
                        "id": m.id,
                        "from": m.sender,
                        "agent": m.agent,
                        "text": m.text,
                        "ts": m.ts,
                        "audience": m.audience,
                    }
                    for m in messages
                ],
            }

        return self._service.store.transcript(conv.id).addCallback(lines)

    def _team(self, name: str, now: float) -> dict:
        gateway = self._service.gateway
        team = gateway.teams.get(name)
        if team is None:
            raise ApiError(404, f"no team {name[:64]!r}")
        presence = {a.name: a for a in gateway.agents}
        agents = []
        for member in sorted(team.members):
            a = presence.get(member)
            agents.append(
                {
                    "name": member,
                    "state": a.state if a is not None else "offline",
                    "reason": (a.reason or None) if a is not None else None,
                    "load": a.load if a is not None else 0,
                    "conversations": sorted(a.conversations) if a is not None else [],
                }
            )
        conversations = [
            c
            for c in gateway.conversations.values()
            if c.queue in team.queues or (c.agent is not None and c.agent.name in team.members)
        ]
        return {
            "name": team.name,
            "description": team.description,
            "agents": agents,
            "queues": [
                {"name": q, "depth": len(gateway.queues[q]), "active": gateway.queues[q].active}
                for q in sorted(team.queues)
                if q in gateway.queues
            ],
            "conversations": [
                live_view(c, now) for c in sorted(conversations, key=lambda c: (c.started, c.id))
            ],
        }

    def _report(self, desk: Any, kind: str, request: Request, now: float) -> Deferred:
        since = moment(_arg(request, "since"), now - WEEK_S)
        until = moment(_arg(request, "until"), now)
        if until <= since:
            raise ApiError(400, "until must be after since")
        store = desk.store
        if kind == "dispositions":
            d = store.dispositions_report(since, until)
        elif kind == "csat":
            d = store.csat_report(since, until)
        elif kind == "states":
            d = store.states_report(since, until, now)
        else:
            raise ApiError(404, f"no report {kind[:32]!r} (dispositions, csat, states)")
        return d.addCallback(lambda rows: {"since": since, "until": until, "rows": rows})


def page_action(request: Request) -> bool:
    """A request the supervisor page makes with its cookie: one of its own actions, with
    its header (which no other site's page can send without a CORS preflight, which
    this API never allows) and, when the browser says, from this very origin."""
    segments = [s.decode("utf-8", "replace") for s in request.postpath if s]
    if request.method != b"POST" or request.getHeader(PAGE_HEADER) != b"1":
        return False
    # Asked at /v1, the rest of the path still to come: desk/conversations/ID/ACTION.
    if len(segments) != 4 or segments[:2] != ["desk", "conversations"]:
        return False
    if segments[3] not in PAGE_ACTIONS:
        return False
    origin = request.getHeader(b"origin")
    host = request.getHeader(b"host") or b""
    return origin is None or origin in (b"http://" + host, b"https://" + host)


def resource(service: Any) -> DeskResource:
    """The ``/v1/desk`` resource of a running gateway (``ADMIN_RESOURCES["desk"]``)."""
    return DeskResource(service)
