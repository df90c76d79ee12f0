"""The service desk's agent frames: proposed additions to JSON-IM/1 (docs/desk.md).

Each is a client frame an agent sends (``monitor``, ``wrap_up``, ``canned``...) and is
answered by a ``result`` frame repeating its ``id`` and naming the request (``of``),
or by an ``error`` frame; a frame that sends a line to the customer (``canned``) is
acknowledged as a message is, with ``ack``. Receivers that do not know them ignore
nothing: only agents that send them get them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from gateway.core.errors import BadRequest, Unavailable
from gateway.desk import identity


@attrs.define
class DeskLink:
    """What the handlers need of the JSON-IM session they serve (it makes one per frame)."""

    agent: Any  # the agent's session (gateway.core.interfaces.IAgentSession)
    desk: Any  # the gateway's service desk (gateway.desk.interfaces.IServiceDesk), or None
    send: Callable[[dict], None]  # a frame out
    failed: Callable[[Failure, str | None], None]  # a refused request's ``error`` frame
    ack: Callable[[str, str | None, dict], None]  # ``ack`` of a stored line

    def agent_session(self) -> Any:
        """The agent's session."""
        return self.agent

    def service_desk(self) -> Any:
        """The gateway's service desk, or None."""
        return self.desk

    def answer(self, d: Deferred, frame_id: str | None, of: str, quiet: bool = False) -> None:
        """Send ``result`` with what ``d`` fires with (unless ``quiet``), or ``error``."""

        def done(result: dict) -> None:
            if not quiet:
                frame = {"type": "result", "of": of, **result}
                self.send(frame if frame_id is None else {**frame, "id": frame_id})

        d.addCallbacks(done, self.failed, errbackArgs=(frame_id,))

    def acknowledge(self, d: Deferred, frame_id: str | None) -> None:
        """Send ``ack`` with the message id ``d`` fires with (or (id, extra fields))."""

        def done(result: Any) -> None:
            msg, extra = result if isinstance(result, tuple) else (result, {})
            self.ack(msg, frame_id, extra)

        d.addCallbacks(done, self.failed, errbackArgs=(frame_id,))


def customer_token(gateway: Any, frame: dict[str, Any]) -> tuple[str | None, str | None]:
    """The customer's identity by its customer token, and the token for ``welcome``: the
    one ``hello`` presents, else a new one (none without a service desk)."""
    if getattr(gateway, "service_desk", None) is None:
        return None, None
    token = frame.get("customer_token")
    token = token if identity.usable_token(token) else identity.new_token()
    return identity.token_identity(token), token


def _string(frame: dict[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key} must be a non-empty string")
    return value


def _optional(frame: dict[str, Any], key: str) -> str | None:
    value = frame.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value or None


def _desk(link: DeskLink) -> Any:
    desk = link.service_desk()
    if desk is None:
        raise Unavailable("this gateway has no service desk")
    return desk


def _monitor(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.monitor(session, _string(frame, "conversation"))


def _barge(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.barge(session, _string(frame, "conversation"))


def _leave(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.leave(session, _string(frame, "conversation"))


def _live(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.live(session)


def _team(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.team(session)


def _agent_state(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.set_state(session, _string(frame, "agent"), _string(frame, "status"))


def _consult(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    conversation = _string(frame, "conversation")
    return desk.consult(session, conversation, _string(frame, "agent"), _optional(frame, "text"))


def _conference(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.conference(session, _string(frame, "conversation"), _optional(frame, "agent"))


def _wrap_up(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    tags = frame.get("tags")
    if tags is not None and not isinstance(tags, list):
        raise BadRequest("tags must be a list of strings")
    return desk.wrap_up(
        session,
        _optional(frame, "conversation"),
        _optional(frame, "disposition"),
        tags or [],
        _optional(frame, "note"),
    )


def _note(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.note(session, _string(frame, "conversation"), _string(frame, "text"))


def _history(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    conversation = _string(frame, "conversation")
    earlier = _optional(frame, "of")
    if earlier is None:
        return desk.past(session, conversation)
    return desk.transcript(session, conversation, earlier)


def _canned_list(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.canned_list(session)


def _tasks(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.tasks(session)


def _task_reply(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.reply(session, _string(frame, "task"), _string(frame, "text"))


def _task_release(link: DeskLink, desk: Any, session: Any, frame: dict) -> Deferred:
    return desk.release(session, _string(frame, "task"))


_Request = Callable[[DeskLink, Any, Any, dict], Deferred]

# Frame type -> its request; each answered by a ``result`` frame.
REQUESTS: dict[str, _Request] = {
    "monitor": _monitor,
    "barge": _barge,
    "leave": _leave,
    "live": _live,
    "team": _team,
    "agent_state": _agent_state,
    "consult": _consult,
    "conference": _conference,
    "wrap_up": _wrap_up,
    "note": _note,
    "history": _history,
    "canned_list": _canned_list,
    "tasks": _tasks,
    "task_reply": _task_reply,
    "task_release": _task_release,
}
# Frames that send a line: acknowledged like a message, and rate-limited like one.
LINES = frozenset({"canned"})
FRAME_TYPES = frozenset(REQUESTS) | LINES


def handle(link: DeskLink, frame: dict[str, Any], frame_id: str | None) -> None:
    """Carry out one desk frame of an agent; GatewayError when it is refused at once."""
    kind = frame["type"]
    desk = _desk(link)
    session = link.agent_session()
    if kind == "canned":
        d = desk.canned(session, _string(frame, "conversation"), _string(frame, "name"))
        link.acknowledge(d.addCallback(_msg_and_text), frame_id)
        return
    link.answer(REQUESTS[kind](link, desk, session, frame), frame_id, kind)


def _msg_and_text(result: dict) -> tuple[str, dict]:
    return result["msg"], {"text": result["text"]}


def private_message(link: DeskLink, frame: dict[str, Any], frame_id: str | None) -> None:
    """``message`` with ``private: true``: a line to the other agents only (a whisper)."""
    desk = _desk(link)
    text = frame.get("text")
    if not isinstance(text, str) or not text:
        raise BadRequest("text must be a non-empty string")
    d = desk.whisper(link.agent_session(), _string(frame, "conversation"), text)
    link.acknowledge(d.addCallback(lambda result: result["msg"]), frame_id)


def away(link: DeskLink, frame: dict[str, Any], frame_id: str | None) -> bool:
    """``presence`` away with a ``reason``; False when the frame has no reason."""
    reason = frame.get("reason")
    if reason is None or frame.get("status") != "away" or link.service_desk() is None:
        return False
    if not isinstance(reason, str):
        raise BadRequest("reason must be a string")
    d = _desk(link).away(link.agent_session(), reason)
    # Presence is not answered, unless the frame asks with an id; errors always are.
    link.answer(d, frame_id, "presence", quiet=frame_id is None)
    return True


def transfer(link: DeskLink, frame: dict[str, Any], frame_id: str | None) -> bool:
    """``transfer`` to a colleague with ``introduction`` (or ``warm``): a warm transfer
    to the colleague consulted; False for a cold transfer (the core's)."""
    warm = frame.get("warm") is True or frame.get("introduction") is not None
    to = frame.get("to")
    if not warm or not isinstance(to, dict) or "agent" not in to:
        return False
    d = _desk(link).handover(
        link.agent_session(),
        _string(frame, "conversation"),
        _string(to, "agent"),
        _optional(frame, "introduction"),
    )
    link.answer(d, frame_id, "transfer")
    return True
