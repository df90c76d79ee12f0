"""A JSON-IM/1 session: the protocol's state machine, apart from how frames travel.

One :class:`JsonImSession` per connection reads decoded client frames (hello, the
customer's and the agent's requests, pings) and answers with server frames; it is
the party the core talks to (:class:`IParty`). How frames travel is its
:class:`IFrameLink`'s business: TCP lines (:mod:`protocols.jsonim.protocol`) or
WebSocket messages, which therefore share every rule of the protocol.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from firewall.common import TokenBucket
from gateway import __version__, logs
from gateway.core.errors import AuthFailed, BadRequest, GatewayError, NotAllowed, Unavailable
from gateway.core.events import AGENT, CUSTOMER, ClientInfo, Connected, Message, Receipt, Typing
from gateway.core.interfaces import IParty, IPartyLimits
from protocols.jsonim import deskframes, identity, limits
from protocols.jsonim.codec import DecodeError, decode, error_frame, event_frame
from protocols.jsonim.interfaces import IFrameLink
from protocols.jsonim.markup import to_plain
from protocols.jsonim.receipts import ReceiptBook
from protocols.jsonim.settings import JsonImSettings

if TYPE_CHECKING:
    from gateway.core.interfaces import IAgentSession as AgentSession
    from gateway.core.interfaces import ICustomerSession as CustomerSession
    from gateway.core.interfaces import IGateway as Gateway

PROTOCOL = "jsonim"
VERSION = "jsonim/1"
# rich_text and receipts: proposed extensions (docs/jsonim-web.md).
SERVER_FEATURES = ("typing", "rich_text", "receipts")
TYPING_STATES = ("active", "paused")
MAX_PRESENCE_REASON = 64
# Frames an agent may send while its login is checked; later ones are refused.
MAX_FRAMES_DURING_LOGIN = 16
_RATE_LIMITED = frozenset({"message", "typing"}) | deskframes.LINES
_AGENT_ONLY = frozenset({"accept", "reject", "presence", "transfer"}) | deskframes.FRAME_TYPES

_HELLO, _LOGIN, _CUSTOMER, _AGENT = "hello", "login", "customer", "agent"


def _seconds(value: float) -> float | int:
    # 30.0 is stated as 30, as the contract shows it.
    return int(value) if value == int(value) else value


def _string(frame: dict[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def _text(frame: dict[str, Any]) -> str:
    text = frame.get("text")
    if not isinstance(text, str) or not text:
        raise BadRequest("text must be a non-empty string")
    return text


def _said(frame: dict[str, Any], rich: bool) -> tuple[str, str | None]:
    """A message's plain text and, from a rich_text client, its markup (if any)."""
    markup = frame.get("markup") if rich else None
    if markup is None:
        return _text(frame), None
    if not isinstance(markup, str) or not markup:
        raise BadRequest("markup must be a non-empty string")
    plain = to_plain(markup)
    return plain, (None if plain == markup else markup)


def _typing_state(frame: dict[str, Any]) -> str:
    state = frame.get("state")
    if state not in TYPING_STATES:
        raise BadRequest("state must be active or paused")
    return state


def _optional(frame: dict[str, Any], key: str, kind: type, what: str) -> Any:
    # A missing field and a null one both mean "not given".
    value = frame.get(key)
    if value is not None and not isinstance(value, kind):
        raise BadRequest(f"{key} must be {what}")
    return value


def _client_info(frame: dict[str, Any]) -> ClientInfo:
    client = _optional(frame, "client", dict, "an object") or {}
    name = _optional(client, "name", str, "a string")
    version = _optional(client, "version", str, "a string")
    return ClientInfo(
        name="unknown" if name is None else name,
        version="" if version is None else version,
    )


def _features(frame: dict[str, Any]) -> frozenset[str]:
    wanted = _optional(frame, "features", list, "a list of strings") or []
    if not all(isinstance(f, str) for f in wanted):
        raise BadRequest("features must be a list of strings")
    return frozenset(SERVER_FEATURES).intersection(wanted)


def _answers(frame: dict[str, Any]) -> dict[str, str]:
    identity = _optional(frame, "identity", dict, "an object of strings") or {}
    if not all(isinstance(v, str) for v in identity.values()):
        raise BadRequest("identity must be an object of strings")
    answers = dict(identity)
    topic = _optional(frame, "topic", str, "a string")
    if topic is not None:
        answers["topic"] = topic
    return answers


def _credentials(frame: dict[str, Any]) -> tuple[str, str]:
    auth = frame.get("auth")
    if isinstance(auth, dict):
        user, password = auth.get("user"), auth.get("password")
        if isinstance(user, str) and isinstance(password, str):
            return user, password
    raise AuthFailed("auth with a string user and password is required")


@implementer(IParty, IPartyLimits)
class JsonImSession:
    """One JSON-IM/1 session; the party the core talks to for its customer or agent.

    The link hands it each decoded frame's bytes (:meth:`frame_received`); requests go
    to the session the core made for the hello; neutral events come back through
    :meth:`deliver`.
    """

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        link: IFrameLink,
        gateway: Gateway,
        config: JsonImSettings,
        *,
        server_name: str,
        clock: IReactorTime,
        protocol: str = PROTOCOL,
    ) -> None:
        self._link = link
        # The channel the core and routing see: jsonim (TCP), web (WebSocket).
        self._protocol = protocol
        self._gateway = gateway
        self._config = config
        self._server_name = server_name
        self._clock = clock
        self._state = _HELLO
        self._session: CustomerSession | AgentSession | None = None
        self._features: frozenset[str] = frozenset()
        self._rich = False
        # Messages this party may send receipts for (receipts negotiated).
        self._receipts: ReceiptBook | None = None
        self._bucket = TokenBucket(config.messages_per_second, config.message_burst, clock)
        self._bad_frames = 0
        self._peer = link.peer
        # The customer token given in welcome (gateway.desk.identity), if a customer.
        self._customer_token: str | None = None
        # Until welcome is sent, the core's events wait here (None: sent directly).
        self._held: list[object] | None = None
        self._close_when_welcomed = False
        # An agent's frames received while its login is checked (None: not logging in).
        self._queued: deque[bytes] | None = None
        self._hello_timer: IDelayedCall | None = self._clock.callLater(
            config.hello_timeout_s, self._hello_timed_out
        )
        self._heartbeat: IDelayedCall | None = None
        self._pings = 0
        self._awaiting_pong = False
        self._closing = False
        self._gone = False

    @property
    def closing(self) -> bool:
        """True once the session closes its connection (or lost it): read no more."""
        return self._closing

    def frame_too_large(self, problem: str) -> None:
        """The link met a frame over max_frame: too_large, and close."""
        self._log.info("JSON-IM {peer}: {problem}", peer=self._peer, problem=problem)
        self._refuse("too_large", problem, close=True)

    def stop_reading(self) -> None:
        """The firewall dropped the connection: handle nothing more."""
        self._closing = True

    def connection_lost(self) -> None:
        """End the session, once, and stop the timers."""
        self._gone = True
        self._closing = True
        self._cancel_timers()
        self._held = self._queued = None
        session, self._session = self._session, None
        self._log.info("JSON-IM {peer}: connection closed", peer=self._peer)
        if session is not None:
            try:
                session.disconnected()
            except Exception:
                self._log.failure("JSON-IM {peer}: ending the session failed", peer=self._peer)

    # -- IParty --------------------------------------------------------------

    def refuses(self, event: object) -> str | None:
        """IPartyLimits: a message whose frame would be over this session's max_frame."""
        return limits.refusal(event, self._config.max_frame, self._state == _AGENT, self._rich)

    def deliver(self, event: object) -> None:
        """Render a neutral event to the party (see :mod:`gateway.core.events`)."""
        if self._held is not None:
            self._held.append(event)
            return
        kind = type(event)
        if self._closing:
            return
        if kind is Typing and "typing" not in self._features:
            return
        if kind is Receipt and self._receipts is None:
            return
        agent = self._state == _AGENT
        try:
            frame = event_frame(event, agent=agent, rich=self._rich)
        except TypeError:
            self._log.failure(
                "JSON-IM {peer}: cannot render {event!r}", peer=self._peer, event=event
            )
            return
        if kind is Connected and event.history:
            frame = limits.fitted(event, frame, self._config.max_frame, rich=self._rich)
        if kind is Message and self._receipts is not None:
            if event.sender == (CUSTOMER if agent else AGENT):
                self._receipts.delivered(event.conversation, event.msg)
        self._link.send(frame)

    def close(self, reason: str) -> None:
        """Close the connection once what was sent has gone out."""
        self._log.info("JSON-IM {peer}: closing: {reason}", peer=self._peer, reason=reason)
        if self._held is not None:
            self._close_when_welcomed = True
            return
        self._close()

    # -- frames in -----------------------------------------------------------

    def frame_received(self, raw: bytes) -> None:
        """Handle one client frame (its bytes, without framing)."""
        self._seen()
        if self._queued is not None and len(self._queued) < MAX_FRAMES_DURING_LOGIN:
            self._queued.append(raw)
            return
        try:
            frame = decode(raw, self._config.max_depth)
        except DecodeError as e:
            self._decode_failed(e)
            return
        frame_id = frame.get("id")
        try:
            self._dispatch(frame, frame_id)
        except GatewayError as e:
            self._refuse(e.code, e.text, frame_id, close=self._state == _HELLO)
        except Exception:
            self._log.failure(
                "JSON-IM {peer}: {type} frame failed", peer=self._peer, type=frame["type"]
            )
            self._refuse("internal", "internal error", frame_id, close=self._state == _HELLO)

    def _decode_failed(self, error: DecodeError) -> None:
        self._log.debug(
            "JSON-IM {peer}: {code}: {problem}",
            peer=self._peer,
            code=error.code,
            problem=error.text,
        )
        if error.code == "bad_frame":
            self._bad_frames += 1
            close = self._bad_frames >= self._config.max_bad_frames
        else:
            # No session yet: a hello that cannot be read ends the connection.
            close = self._state == _HELLO
        self._refuse(error.code, error.text, error.frame_id, close=close)

    def _dispatch(self, frame: dict[str, Any], frame_id: str | None) -> None:
        kind = frame["type"]
        if self._state == _HELLO:
            self._hello(frame, frame_id)
            return
        if self._state == _LOGIN:
            raise NotAllowed("login in progress")
        handlers = _AGENT_HANDLERS if self._state == _AGENT else _CUSTOMER_HANDLERS
        handler = handlers.get(kind)
        if handler is None:
            if kind == "hello" or kind in _AGENT_ONLY:
                raise NotAllowed(f"{kind} is not allowed here")
            self._refuse("unknown_type", f"unknown type: {kind[:64]}", frame_id)
            return
        if kind in _RATE_LIMITED and not self._bucket.consume():
            self._refuse("rate_limited", "too many messages, slow down", frame_id)
            return
        handler(self, frame, frame_id)

    # -- session start ---------------------------------------------------------

    def _hello(self, frame: dict[str, Any], frame_id: str | None) -> None:
        if frame["type"] != "hello":
            raise NotAllowed("hello expected")
        protocol = _string(frame, "protocol")
        if protocol != VERSION:
            raise Unavailable(f"this server speaks {VERSION} only")
        role = frame.get("role")
        if role not in ("customer", "agent"):
            raise BadRequest("role must be customer or agent")
        # The firewall's rules may depend on the role (``role agent``); False: refused.
        if not self._link.claim_role(role):
            return
        client = _client_info(frame)
        features = _features(frame)
        if role == "customer":
            self._customer_hello(frame, frame_id, client, features)
        else:
            self._agent_hello(frame, frame_id, client, features)

    def _customer_hello(
        self,
        frame: dict[str, Any],
        frame_id: str | None,
        client: ClientInfo,
        features: frozenset[str],
    ) -> None:
        answers = _answers(frame)
        verified = identity.verified(
            frame.get("identity") or {},
            frame.get("identity_signature"),
            self._config.identity_secret,
        )
        customer_id, self._customer_token = deskframes.customer_token(self._gateway, frame)
        self._cancel_hello_timer()
        # The core may deliver a prompt before it returns the session that welcome
        # names: hold such events so that welcome goes first.
        self._held = []
        try:
            session = self._gateway.customer_arrived(
                self,
                protocol=self._protocol,
                client=client,
                answers=answers,
                features=features,
                **({"verified": verified} if verified else {}),
                **({"customer_id": customer_id} if customer_id else {}),
                **_resume_token(frame),
            )
        except BaseException:
            self._held = None
            raise
        self._state = _CUSTOMER
        self._log.info(
            "JSON-IM {peer}: customer session {session} ({client} {version})",
            peer=self._peer,
            session=session.id,
            client=client.name,
            version=client.version,
        )
        self._welcome(session, features)

    def _agent_hello(
        self,
        frame: dict[str, Any],
        frame_id: str | None,
        client: ClientInfo,
        features: frozenset[str],
    ) -> None:
        user, password = _credentials(frame)
        self._cancel_hello_timer()
        self._held = []
        try:
            d = self._gateway.agent_login(
                self,
                protocol=self._protocol,
                name=user,
                password=password,
                client=client,
                features=features,
                address=self._link.peer_host,
            )
        except BaseException:
            self._held = None
            raise
        self._state = _LOGIN
        self._queued = deque()
        d.addCallbacks(
            self._logged_in,
            self._login_failed,
            callbackArgs=(features,),
            errbackArgs=(frame_id, user),
        )
        d.addErrback(
            lambda f: self._log.failure("JSON-IM {peer}: login failed", f, peer=self._peer)
        )
        # A login answered at once has already welcomed the agent; if not, the
        # frames that follow wait for the answer.

    def _logged_in(self, session: AgentSession, features: frozenset[str]) -> None:
        if self._gone:
            session.disconnected()
            return
        self._state = _AGENT
        self._log.info(
            "JSON-IM {peer}: agent {agent} logged in, session {session}",
            peer=self._peer,
            agent=session.name,
            session=session.id,
        )
        queued, self._queued = self._queued or (), None
        self._welcome(session, features)
        for raw in queued:
            if self._closing:
                break
            self.frame_received(raw)

    def _login_failed(self, failure: Failure, frame_id: str | None, user: str) -> None:
        self._held = None
        self._queued = None
        if failure.check(GatewayError):
            code, text = failure.value.code, failure.value.text
            self._log.info(
                "JSON-IM {peer}: login of {agent} refused: {code}",
                peer=self._peer,
                agent=user,
                code=code,
            )
        else:
            code, text = "internal", "internal error"
            self._log.failure(
                "JSON-IM {peer}: login of {agent} failed", failure, peer=self._peer, agent=user
            )
        self._refuse(code, text, frame_id, close=True)

    def _welcome(self, session: CustomerSession | AgentSession, features: frozenset[str]) -> None:
        self._session = session
        self._features = features
        self._rich = "rich_text" in features
        if "receipts" in features:
            self._receipts = ReceiptBook()
        held, self._held = self._held or [], None
        self._send(
            {
                "type": "welcome",
                "session": session.id,
                "server": {"name": self._server_name, "version": __version__},
                "max_frame": self._config.max_frame,
                "heartbeat_s": _seconds(self._config.heartbeat_s),
                "features": [f for f in SERVER_FEATURES if f in features],
                # Proposed extension (docs/jsonim.md, "Resume"): hello {"resume": ...} within
                # the grace period takes this conversation back after a drop.
                **_resume_field(session),
                **({"customer_token": self._customer_token} if self._customer_token else {}),
            }
        )
        for event in held:
            self.deliver(event)
        if self._close_when_welcomed:
            self._close()
        elif not self._closing:
            self._heartbeat = self._clock.callLater(self._config.heartbeat_s, self._heartbeat_due)

    # -- customer frames -------------------------------------------------------

    def _customer_message(self, frame: dict[str, Any], frame_id: str | None) -> None:
        text, markup = _said(frame, self._rich)
        done = partial(self._answer, frame_id)
        if markup is None:
            self._session.say_then(text, done)
        else:
            self._session.say_then(text, done, markup=markup)

    def _customer_typing(self, frame: dict[str, Any], frame_id: str | None) -> None:
        self._session.typing(_typing_state(frame))

    def _customer_end(self, frame: dict[str, Any], frame_id: str | None) -> None:
        self._session.end()

    def _customer_receipt(self, frame: dict[str, Any], frame_id: str | None) -> None:
        if self._book().report(frame.get("msg"), frame.get("state")) is not None:
            self._session.receipt(frame["msg"], frame["state"])

    # -- agent frames ----------------------------------------------------------

    def _agent_presence(self, frame: dict[str, Any], frame_id: str | None) -> None:
        status = _string(frame, "status")
        reason = _optional(frame, "reason", str, "a string")
        if reason is not None and len(reason) > MAX_PRESENCE_REASON:
            raise BadRequest(f"reason must be at most {MAX_PRESENCE_REASON} characters")
        # With the service desk, an away reason is one of its codes, kept and reported.
        if deskframes.away(self._desk(), frame, frame_id):
            return
        self._session.set_presence(status)
        if reason:
            # Proposed extension: why an agent is away ("lunch"), for the log.
            self._log.info(
                "JSON-IM {peer}: agent {agent} is {status}: {reason}",
                peer=self._peer,
                agent=self._session.name,
                status=status,
                reason=reason,  # escaped by the log observer, as every value
            )

    def _agent_accept(self, frame: dict[str, Any], frame_id: str | None) -> None:
        self._session.accept(_string(frame, "offer"))

    def _agent_reject(self, frame: dict[str, Any], frame_id: str | None) -> None:
        self._session.reject(_string(frame, "offer"))

    def _agent_message(self, frame: dict[str, Any], frame_id: str | None) -> None:
        if frame.get("private") is True:
            deskframes.private_message(self._desk(), frame, frame_id)
            return
        conversation = _string(frame, "conversation")
        text, markup = _said(frame, self._rich)
        done = partial(self._answer, frame_id)
        if markup is None:
            self._session.say_then(conversation, text, done)
        else:
            self._session.say_then(conversation, text, done, markup=markup)

    def _agent_typing(self, frame: dict[str, Any], frame_id: str | None) -> None:
        self._session.typing(_string(frame, "conversation"), _typing_state(frame))

    def _agent_transfer(self, frame: dict[str, Any], frame_id: str | None) -> None:
        if deskframes.transfer(self._desk(), frame, frame_id):
            return
        conversation = _string(frame, "conversation")
        to = frame.get("to")
        if not isinstance(to, dict) or ("queue" in to) == ("agent" in to):
            raise BadRequest("to must name either a queue or an agent")
        target = "queue" if "queue" in to else "agent"
        name = _string(to, target)
        self._session.transfer(conversation, **{target: name})

    def _agent_end(self, frame: dict[str, Any], frame_id: str | None) -> None:
        self._session.end(_string(frame, "conversation"))

    def _agent_receipt(self, frame: dict[str, Any], frame_id: str | None) -> None:
        conversation = _string(frame, "conversation")
        if self._book().report(frame.get("msg"), frame.get("state"), conversation) is not None:
            self._session.receipt(conversation, frame["msg"], frame["state"])

    def _book(self) -> ReceiptBook:
        if self._receipts is None:
            raise NotAllowed("receipts was not negotiated in hello")
        return self._receipts

    def _agent_desk(self, frame: dict[str, Any], frame_id: str | None) -> None:
        deskframes.handle(self._desk(), frame, frame_id)

    def _desk(self) -> deskframes.DeskLink:
        desk = getattr(self._gateway, "service_desk", None)
        return deskframes.DeskLink(self._session, desk, self._send, self._request_failed, self._ack)

    # -- both roles ------------------------------------------------------------

    def _ping(self, frame: dict[str, Any], frame_id: str | None) -> None:
        self._send({"type": "pong"} if frame_id is None else {"type": "pong", "id": frame_id})

    def _pong(self, frame: dict[str, Any], frame_id: str | None) -> None:
        # Receiving it was the point: the heartbeat was reset on arrival.
        pass

    def _answer(self, frame_id: str | None, msg: str | None, error: Exception | None) -> None:
        # A message's outcome from the core: ack once committed, else the error.
        if error is not None:
            self._request_failed(Failure(error), frame_id)
        else:
            self._ack(msg, frame_id)

    def _ack(self, msg: str, frame_id: str | None, extra: dict | None = None) -> None:
        if frame_id is None:
            self._send({"type": "ack", "msg": msg, **(extra or {})})
        else:
            self._send({"type": "ack", "id": frame_id, "msg": msg, **(extra or {})})

    def _request_failed(self, failure: Failure, frame_id: str | None) -> None:
        if failure.check(GatewayError):
            self._refuse(failure.value.code, failure.value.text, frame_id)
            return
        self._log.failure("JSON-IM {peer}: request failed", failure, peer=self._peer)
        self._refuse("internal", "internal error", frame_id)

    # -- frames out and closing ------------------------------------------------

    def _send(self, frame: dict[str, Any]) -> None:
        if not self._closing:
            self._link.send(frame)

    def firewall_reject(self, reason: str) -> None:
        """The firewall rejects this connection: an error frame (the firewall then closes)."""
        self._send(error_frame("not_allowed", reason))

    def _refuse(
        self, code: str, text: str, frame_id: str | None = None, *, close: bool = False
    ) -> None:
        """Answer with an error frame, then close the connection if ``close``."""
        self._send(error_frame(code, text, frame_id))
        if close:
            self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._cancel_timers()
        self._link.close()

    # -- timers ----------------------------------------------------------------

    def _hello_timed_out(self) -> None:
        self._hello_timer = None
        self._log.info("JSON-IM {peer}: no hello in time", peer=self._peer)
        self._refuse("not_allowed", "hello expected", close=True)

    def _seen(self) -> None:
        if self._heartbeat is not None:
            self._awaiting_pong = False
            self._heartbeat.reset(self._config.heartbeat_s)

    def _heartbeat_due(self) -> None:
        if self._awaiting_pong:
            self._heartbeat = None
            self._log.info("JSON-IM {peer}: silent, closing", peer=self._peer)
            self._close()
            return
        self._pings += 1
        self._awaiting_pong = True
        self._send({"type": "ping", "id": f"hb-{self._pings}"})
        self._heartbeat = self._clock.callLater(self._config.heartbeat_s, self._heartbeat_due)

    def _cancel_hello_timer(self) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_hello_timer()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None


_Handler = Callable[[JsonImSession, dict[str, Any], str | None], None]

_CUSTOMER_HANDLERS: dict[str, _Handler] = {
    "message": JsonImSession._customer_message,
    "typing": JsonImSession._customer_typing,
    "end": JsonImSession._customer_end,
    "receipt": JsonImSession._customer_receipt,
    "ping": JsonImSession._ping,
    "pong": JsonImSession._pong,
}

_AGENT_HANDLERS: dict[str, _Handler] = {
    "presence": JsonImSession._agent_presence,
    "accept": JsonImSession._agent_accept,
    "reject": JsonImSession._agent_reject,
    "message": JsonImSession._agent_message,
    "typing": JsonImSession._agent_typing,
    "transfer": JsonImSession._agent_transfer,
    "end": JsonImSession._agent_end,
    "receipt": JsonImSession._agent_receipt,
    "ping": JsonImSession._ping,
    "pong": JsonImSession._pong,
    # The service desk's (proposed additions, docs/desk.md).
    **dict.fromkeys(deskframes.FRAME_TYPES, JsonImSession._agent_desk),
}


def _resume_token(frame: dict[str, Any]) -> dict[str, str]:
    """``resume=`` for the core when the customer's hello carries a usable token."""
    token = frame.get("resume")
    if isinstance(token, str) and 0 < len(token) <= 256:
        return {"resume": token}
    return {}


def _resume_field(session: Any) -> dict[str, Any]:
    token = getattr(session, "resume_token", None)
    if not token or session.conversation is None:
        return {}
    return {"resume": token, "conversation": session.conversation.id}
