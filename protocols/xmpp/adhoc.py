"""XEP-0050 ad-hoc commands for XMPP agents, with XEP-0004 forms.

Gajim, Psi, Profanity (``/cmd``) and Converse.js list a contact's commands and show
their forms. The support address offers an agent four, each a form whose answer goes
to the service desk as the chat commands' would (gateway.desk.chat):

- ``status``: available, away, or away with one of ``[desk] away_reasons``;
- ``wrapup``: the disposition, tags and note of a conversation whose wrap-up is due;
- ``tasks``: the message a customer left that the agent was given: answer it or give
  it back;
- ``live`` (supervisors): a live conversation of their teams to monitor or barge into.

A command is one form and its answer (``execute``, then ``complete`` or ``cancel``);
its session lives until then, at most :data:`SESSION_S`, and an agent holds at most
:data:`MAX_SESSIONS` at once. What goes wrong in the desk comes back as the completed
command's ``error`` note; a malformed request gets the IQ error XEP-0050 names.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from gateway import logs
from gateway.core.errors import BadRequest, GatewayError, Unavailable
from protocols.xmpp import ns, stanzas
from protocols.xmpp.stanzas import xml_text

# node -> its name in the client's list.
NODES = {
    "status": "Set availability",
    "wrapup": "Wrap up a chat",
    "tasks": "Answer a message left",
    "live": "Monitor a conversation (supervisors)",
}
SESSION_S = 600.0
MAX_SESSIONS = 8
MAX_VALUE = 4000

Fields = dict[str, list[str]]


class AdHoc:
    """The ad-hoc commands of one hub: ``send`` puts a stanza on the wire."""

    def __init__(self, gateway: Any, send: Callable[[domish.Element], None], clock: Any) -> None:
        self._gateway = gateway
        self._send = send
        self._clock = clock
        # session id -> (node, agent's bare JID, started, what the form was about)
        self._sessions: dict[str, tuple[str, str, float, Any]] = {}

    def iq(self, request: domish.Element, payload: domish.Element, agent: Any, kind: str) -> bool:
        """An IQ to the support address: a command of ``agent`` (None: not an agent), or
        discovery of the commands; False when it is neither."""
        node = payload.getAttribute("node")
        if (payload.uri, payload.name, kind) == (ns.COMMANDS, "command", "set"):
            if agent is None:
                self._send(stanzas.error_reply(request, "cancel", "forbidden"))
            else:
                self.command(agent, request, payload)
        elif kind != "get" or payload.name != "query" or not node:
            return False
        elif payload.uri == ns.DISCO_ITEMS and node == ns.COMMANDS:
            support = request.getAttribute("to", "").partition("/")[0]
            self._send(self.items(request, support, agent is not None))
        elif payload.uri == ns.DISCO_INFO:
            answer = self.info(request, node)
            self._send(answer or stanzas.error_reply(request, "cancel", "item-not-found"))
        else:
            return False
        return True

    # -- discovery ---------------------------------------------------------------

    def items(self, request: domish.Element, support: str, agent: bool) -> domish.Element:
        """disco#items of the commands node: the commands, for agents only."""
        answer = stanzas.result(request)
        query = answer.addElement((ns.DISCO_ITEMS, "query"))
        query["node"] = ns.COMMANDS
        if agent:
            for node, name in NODES.items():
                item = query.addElement("item")
                item["jid"], item["node"], item["name"] = support, node, name
        return answer

    def info(self, request: domish.Element, node: str) -> domish.Element | None:
        """disco#info of one command's node (None: no such node)."""
        if node not in NODES and node != ns.COMMANDS:
            return None
        answer = stanzas.result(request)
        query = answer.addElement((ns.DISCO_INFO, "query"))
        query["node"] = node
        identity = query.addElement("identity")
        identity["category"], identity["type"] = (
            "automation",
            ("command-list" if node == ns.COMMANDS else "command-node"),
        )
        identity["name"] = NODES.get(node, "Commands")
        for feature in (ns.COMMANDS, ns.DATA_FORMS):
            query.addElement("feature")["var"] = feature
        return answer

    # -- execution ---------------------------------------------------------------

    def command(self, party: Any, request: domish.Element, command: domish.Element) -> None:
        """One ``<command/>`` of an agent: a new form, an answer to one, or a cancel."""
        self._expire()
        node = command.getAttribute("node", "")
        action = command.getAttribute("action", "execute")
        sessionid = command.getAttribute("sessionid")
        if node not in NODES:
            self._send(stanzas.error_reply(request, "cancel", "item-not-found"))
            return
        if action not in ("execute", "complete", "cancel"):
            self._send(_command_error(request, "modify", "bad-request", "bad-action"))
            return
        if sessionid is None:
            if action != "execute":
                self._send(_command_error(request, "modify", "bad-request", "bad-sessionid"))
                return
            self._start(party, request, node)
            return
        held = self._sessions.get(sessionid)
        if held is None or held[0] != node or held[1] != party.bare:
            self._send(_command_error(request, "modify", "bad-request", "bad-sessionid"))
            return
        del self._sessions[sessionid]
        if action == "cancel":
            self._send(_response(request, node, sessionid, "canceled"))
            return
        submitted = _submitted(command)
        if submitted is None:
            self._send(_command_error(request, "modify", "bad-request", "bad-payload"))
            return
        self._finish(party, request, node, sessionid, held[3], submitted)

    def _start(self, party: Any, request: domish.Element, node: str) -> None:
        mine = [s for s, held in self._sessions.items() if held[1] == party.bare]
        if len(mine) >= MAX_SESSIONS:
            self._sessions.pop(mine[0])
        d = maybeDeferred(_FORMS[node], self, party)

        def shown(made: tuple[domish.Element | None, Any, str | None]) -> None:
            form, about, note = made
            if form is None:
                self._send(_completed(request, node, None, note or "Nothing to do.", "info"))
                return
            sessionid = secrets.token_hex(8)
            self._sessions[sessionid] = (node, party.bare, self._clock.seconds(), about)
            response = _response(request, node, sessionid, "executing")
            actions = response.command.addElement("actions")
            actions["execute"] = "complete"
            actions.addElement("complete")
            response.command.addChild(form)
            self._send(response)

        d.addCallbacks(shown, lambda f: self._send(_failed(request, node, None, f)))

    def _finish(
        self, party: Any, request: domish.Element, node: str, sessionid: str, about: Any, fields
    ) -> None:
        d = maybeDeferred(_ANSWERS[node], self, party, about, fields)
        d.addCallbacks(
            lambda text: self._send(_completed(request, node, sessionid, text, "info")),
            lambda f: self._send(_failed(request, node, sessionid, f)),
        )

    def _expire(self) -> None:
        now = self._clock.seconds()
        for sessionid, held in list(self._sessions.items()):
            if now - held[2] > SESSION_S:
                del self._sessions[sessionid]

    def _desk(self) -> Any:
        desk = getattr(self._gateway, "service_desk", None)
        if desk is None:
            raise Unavailable("this gateway has no service desk")
        return desk

    # -- the four commands -------------------------------------------------------

    def _status_form(self, party: Any):
        reasons = self._desk().ctx.settings.away_reasons
        options = [("available", "Available"), ("away", "Away")]
        options += [(f"away:{r}", f"Away: {r}") for r in reasons]
        form = _form("Set availability", f"You are {party.session.agent.status}.")
        _list_single(form, "status", "Availability", options, required=True)
        return form, None, None

    def _status_answer(self, party: Any, about: Any, fields: Fields) -> Deferred | str:
        choice = _one(fields, "status")
        session = party.session
        if choice in ("available", "away"):
            session.set_presence(choice)
            return f"You are {choice}."
        if not choice.startswith("away:"):
            raise BadRequest("choose available, away or a reason")
        return (
            self._desk()
            .away(session, choice[5:])
            .addCallback(lambda r: f"You are away ({r['reason']}).")
        )

    def _wrapup_form(self, party: Any):
        due = self._desk().wrapups.owed(party.session.name)
        if not due:
            return None, None, "No wrap-up is due."
        form = _form("Wrap up a chat", "What came of the conversation, for the reports.")
        chats = [(w.conversation, f"{w.alias} ({w.conversation})") for w in due]
        # The newest first: the one just ended.
        _list_single(form, "conversation", "Chat", chats, required=True, default=chats[-1][0])
        codes = sorted({c for w in due for c in w.codes})
        required = any(w.required for w in due)
        options = ([] if required else [("-", "None")]) + [(c, c) for c in codes]
        _list_single(form, "disposition", "Disposition", options, required=required)
        _field(form, "tags", "text-single", "Tags (separated by spaces or commas)")
        _field(form, "note", "text-multi", "Note (private)")
        return form, None, None

    def _wrapup_answer(self, party: Any, about: Any, fields: Fields) -> Deferred:
        conversation = _one(fields, "conversation")
        code = _one(fields, "disposition", "") or None
        code = None if code == "-" else code
        tags = [t for t in _one(fields, "tags", "").replace(",", " ").split() if t]
        note = "\n".join(fields.get("note", [])).strip() or None

        def done(r: dict) -> str:
            tags_text = " ".join(f"#{t}" for t in r["tags"])
            return f"Wrapped up {r['conversation']}: {r['disposition'] or '-'} {tags_text}".rstrip()

        return self._desk().wrap_up(party.session, conversation, code, tags, note).addCallback(done)

    def _tasks_form(self, party: Any) -> Deferred:
        def shown(result: dict):
            held = [t for t in result["tasks"] if t.get("state") == "assigned"]
            if not held:
                return None, None, "No message to answer."
            task = held[0]
            form = _form(
                "Answer a message left", "The answer reaches the customer when they return."
            )
            who = task.get("name") or task.get("customer") or "a customer"
            _fixed(form, f"From {who} ({task.get('protocol')}), queue {task.get('queue') or '-'}:")
            _fixed(form, task.get("text") or "")
            _field(form, "answer", "text-multi", "Your answer")
            choices = [("answer", "Send the answer"), ("release", "Give it back")]
            _list_single(form, "action", "Action", choices, required=True, default="answer")
            return form, task["id"], None

        return self._desk().tasks(party.session).addCallback(shown)

    def _tasks_answer(self, party: Any, task: str, fields: Fields) -> Deferred:
        desk = self._desk()
        if _one(fields, "action", "answer") == "release":
            return desk.release(party.session, task).addCallback(
                lambda r: f"Gave {r['task']} back."
            )
        text = "\n".join(fields.get("answer", [])).strip()
        if not text:
            raise BadRequest("write the answer")
        return desk.reply(party.session, task, text).addCallback(
            lambda r: f"Answered {r['task']}; the customer gets it when they come back."
        )

    def _live_form(self, party: Any) -> Deferred:
        def shown(result: dict):
            live = result["conversations"]
            if not live:
                return None, None, "No live conversations."
            options = [
                (
                    c["id"],
                    f"{c['customer']}: {c['state']}, queue {c['queue'] or '-'},"
                    f" agent {c['agent'] or '-'}",
                )
                for c in live
            ]
            form = _form("Monitor a conversation", "Monitor silently, or barge in visibly.")
            _list_single(form, "conversation", "Conversation", options, required=True)
            actions = [("monitor", "Monitor"), ("barge", "Barge in")]
            _list_single(form, "action", "Action", actions, required=True, default="monitor")
            return form, None, None

        return self._desk().live(party.session).addCallback(shown)

    def _live_answer(self, party: Any, about: Any, fields: Fields) -> Deferred:
        conversation = _one(fields, "conversation")
        desk = self._desk()
        if _one(fields, "action", "monitor") == "barge":
            return desk.barge(party.session, conversation).addCallback(
                lambda r: f"You joined {r['customer']}'s chat: the customer sees your lines."
            )
        return desk.monitor(party.session, conversation).addCallback(
            lambda r: f"Monitoring {r['customer']}: what you write there is a whisper."
        )


_FORMS = {
    "status": AdHoc._status_form,
    "wrapup": AdHoc._wrapup_form,
    "tasks": AdHoc._tasks_form,
    "live": AdHoc._live_form,
}
_ANSWERS = {
    "status": AdHoc._status_answer,
    "wrapup": AdHoc._wrapup_answer,
    "tasks": AdHoc._tasks_answer,
    "live": AdHoc._live_answer,
}


# -- forms ---------------------------------------------------------------------------


def _form(title: str, instructions: str) -> domish.Element:
    form = domish.Element((ns.DATA_FORMS, "x"))
    form["type"] = "form"
    form.addElement("title", content=xml_text(title))
    form.addElement("instructions", content=xml_text(instructions))
    return form


def _field(form: domish.Element, var: str, kind: str, label: str) -> domish.Element:
    field = form.addElement("field")
    field["var"], field["type"], field["label"] = var, kind, label
    return field


def _fixed(form: domish.Element, text: str) -> None:
    field = form.addElement("field")
    field["type"] = "fixed"
    for line in text.splitlines() or [""]:
        field.addElement("value", content=xml_text(line))


def _list_single(
    form: domish.Element,
    var: str,
    label: str,
    options: Iterable[tuple[str, str]],
    *,
    required: bool = False,
    default: str | None = None,
) -> None:
    field = _field(form, var, "list-single", label)
    if required:
        field.addElement("required")
    if default is not None:
        field.addElement("value", content=xml_text(default))
    for value, text in options:
        option = field.addElement("option")
        option["label"] = xml_text(text)
        option.addElement("value", content=xml_text(value))


def _submitted(command: domish.Element) -> Fields | None:
    """The fields of the submitted form in ``command`` (None: there is none)."""
    for form in command.elements(ns.DATA_FORMS, "x"):
        if form.getAttribute("type") != "submit":
            continue
        fields: Fields = {}
        for field in form.elements(ns.DATA_FORMS, "field"):
            var = field.getAttribute("var")
            if var:
                values = [str(v)[:MAX_VALUE] for v in field.elements(ns.DATA_FORMS, "value")]
                fields[var] = values[:64]
        return fields
    return None


def _one(fields: Fields, var: str, default: str | None = None) -> str:
    values = fields.get(var) or []
    if values and values[0].strip():
        return values[0].strip()
    if default is not None:
        return default
    raise BadRequest(f"the form's {var} is required")


# -- responses -----------------------------------------------------------------------


def _response(request: domish.Element, node: str, sessionid: str | None, status: str):
    answer = stanzas.result(request)
    command = answer.addElement((ns.COMMANDS, "command"))
    command["node"], command["status"] = node, status
    if sessionid is not None:
        command["sessionid"] = sessionid
    answer.command = command
    return answer


def _completed(request, node: str, sessionid: str | None, text: str, kind: str):
    answer = _response(request, node, sessionid or secrets.token_hex(8), "completed")
    note = answer.command.addElement("note", content=xml_text(text))
    note["type"] = kind
    return answer


_log = Logger(observer=logs.observer)


def _failed(request, node: str, sessionid: str | None, failure: Failure):
    if failure.check(GatewayError):
        text = f"{failure.value.code}: {failure.value.text}"
    else:
        _log.failure("ad-hoc command {node} failed", failure, node=node)
        text = "internal: the command failed"
    return _completed(request, node, sessionid, text, "error")


def _command_error(request, kind: str, condition: str, specific: str) -> domish.Element:
    reply = stanzas.error_reply(request, kind, condition)
    reply.error.addElement((ns.COMMANDS, specific))
    return reply


__all__ = ["NODES", "AdHoc"]
