"""XEP-0050 ad-hoc commands (protocols.xmpp.adhoc) on the real core and desk, with a Clock:
the session rules of the protocol, and what a desk refusal becomes."""

from __future__ import annotations

from types import SimpleNamespace

from desk_helpers import make_desk
from twisted.internet.task import Clock
from xmpp_helpers import SUPPORT, stanza

from protocols.xmpp import adhoc, ns

AGENT = "anna@corp.example/desk"
CMD = ns.COMMANDS


def request(node: str, action: str | None = "execute", session: str | None = None, form=""):
    attrs = f" node='{node}'"
    if action is not None:
        attrs += f" action='{action}'"
    if session is not None:
        attrs += f" sessionid='{session}'"
    return stanza(
        f"<iq type='set' id='q1' from='{AGENT}' to='{SUPPORT}'>"
        f"<command xmlns='{CMD}'{attrs}>{form}</command></iq>"
    )


def submit(**fields: str) -> str:
    inner = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
    return f"<x xmlns='{ns.DATA_FORMS}' type='submit'>{inner}</x>"


class Site:
    def __init__(self, tmp_path, desk=True) -> None:
        self.harness = make_desk(tmp_path)
        gateway = self.harness.gateway
        if not desk:
            gateway = SimpleNamespace(service_desk=None)
        self.clock = Clock()
        self.sent: list = []
        self.adhoc = adhoc.AdHoc(gateway, self.sent.append, self.clock)
        _, session = self.harness.agent("anna")
        self.party = SimpleNamespace(bare="anna@corp.example", session=session)

    def ask(self, element):
        """Send one request; the answer (the command element, or the error condition)."""
        self.sent.clear()
        self.adhoc.command(self.party, element, element.firstChildElement())
        [answer] = self.sent
        assert answer.getAttribute("id") == "q1" and answer.getAttribute("to") == AGENT
        if answer.getAttribute("type") == "error":
            error = answer.firstChildElement()
            conditions = [c.name for c in error.elements()]
            return conditions
        return answer.firstChildElement()


def note(command) -> tuple[str, str, str]:
    element = next(command.elements(CMD, "note"))
    return command["status"], element["type"], str(element)


def test_a_form_then_its_answer_and_the_session_is_used_once(tmp_path):
    site = Site(tmp_path)
    shown = site.ask(request("status"))
    assert shown["status"] == "executing" and shown["node"] == "status"
    form = next(shown.elements(ns.DATA_FORMS, "x"))
    values = [
        str(next(o.elements(ns.DATA_FORMS, "value")))
        for f in form.elements(ns.DATA_FORMS, "field")
        for o in f.elements(ns.DATA_FORMS, "option")
    ]
    assert values[:2] == ["available", "away"] and "away:lunch" in values
    session = shown["sessionid"]
    done = site.ask(request("status", "complete", session, submit(status="away:lunch")))
    assert note(done) == ("completed", "info", "You are away (lunch).")
    assert site.harness.gateway.core.local.get("anna").presence.reason == "lunch"
    again = site.ask(request("status", "complete", session, submit(status="available")))
    assert again == ["bad-request", "bad-sessionid"]


def test_cancel_a_bad_action_no_session_and_no_form(tmp_path):
    site = Site(tmp_path)
    session = site.ask(request("status"))["sessionid"]
    assert site.ask(request("status", "cancel", session))["status"] == "canceled"
    assert site.ask(request("status", "next", None)) == ["bad-request", "bad-action"]
    assert site.ask(request("status", "complete", None)) == ["bad-request", "bad-sessionid"]
    session = site.ask(request("status"))["sessionid"]
    assert site.ask(request("status", "complete", session)) == ["bad-request", "bad-payload"]
    assert site.ask(request("nothing")) == ["item-not-found"]
    # Another command's node with this session's id: refused.
    session = site.ask(request("status"))["sessionid"]
    assert site.ask(request("tasks", "complete", session, submit())) == [
        "bad-request",
        "bad-sessionid",
    ]


def test_sessions_expire_and_an_agent_holds_a_bounded_number(tmp_path):
    site = Site(tmp_path)
    old = site.ask(request("status"))["sessionid"]
    site.clock.advance(adhoc.SESSION_S + 1)
    answer = site.ask(request("status", "complete", old, submit(status="available")))
    assert answer == ["bad-request", "bad-sessionid"]
    sessions = [site.ask(request("status"))["sessionid"] for _ in range(adhoc.MAX_SESSIONS + 1)]
    first = site.ask(request("status", "complete", sessions[0], submit(status="available")))
    assert first == ["bad-request", "bad-sessionid"]
    last = site.ask(request("status", "complete", sessions[-1], submit(status="available")))
    assert note(last) == ("completed", "info", "You are available.")


def test_what_the_desk_refuses_is_the_completed_commands_error_note(tmp_path):
    site = Site(tmp_path)
    session = site.ask(request("status"))["sessionid"]
    refused = site.ask(request("status", "complete", session, submit(status="away:sleeping")))
    status, kind, text = note(refused)
    assert (status, kind) == ("completed", "error") and text.startswith("bad_request: "), text
    # Not a supervisor.
    status, kind, text = note(site.ask(request("live")))
    assert (status, kind) == ("completed", "error") and text.startswith("not_allowed: "), text
    # Nothing to do: said at once, no form.
    assert note(site.ask(request("wrapup"))) == ("completed", "info", "No wrap-up is due.")
    assert note(site.ask(request("tasks"))) == ("completed", "info", "No message to answer.")


def test_without_a_service_desk_every_command_says_so(tmp_path):
    site = Site(tmp_path, desk=False)
    status, kind, text = note(site.ask(request("status")))
    assert (status, kind, text) == (
        "completed",
        "error",
        "unavailable: this gateway has no service desk",
    )


def test_discovery_lists_the_commands_to_agents_only():
    sent: list = []
    commands = adhoc.AdHoc(SimpleNamespace(service_desk=None), sent.append, Clock())
    get = stanza(
        f"<iq type='get' id='d1' from='{AGENT}' to='{SUPPORT}'>"
        f"<query xmlns='{ns.DISCO_ITEMS}' node='{CMD}'/></iq>"
    )
    assert commands.iq(get, get.firstChildElement(), agent=object(), kind="get")
    items = [(i["jid"], i["node"]) for i in sent.pop().firstChildElement().elements()]
    assert items == [(SUPPORT, node) for node in adhoc.NODES]
    assert commands.iq(get, get.firstChildElement(), agent=None, kind="get")
    assert list(sent.pop().firstChildElement().elements()) == []
    info = stanza(
        f"<iq type='get' id='d2' from='{AGENT}' to='{SUPPORT}'>"
        f"<query xmlns='{ns.DISCO_INFO}' node='wrapup'/></iq>"
    )
    assert commands.iq(info, info.firstChildElement(), agent=None, kind="get")
    query = sent.pop().firstChildElement()
    identity = next(query.elements(ns.DISCO_INFO, "identity"))
    assert (identity["category"], identity["type"]) == ("automation", "command-node")
    # A plain disco#info (no node) is the hub's, not the commands'.
    plain = stanza(
        f"<iq type='get' id='d3' from='{AGENT}' to='{SUPPORT}'>"
        f"<query xmlns='{ns.DISCO_INFO}'/></iq>"
    )
    assert not commands.iq(plain, plain.firstChildElement(), agent=None, kind="get")
    # A command from someone who is not an agent: forbidden.
    command = request("status")
    assert commands.iq(command, command.firstChildElement(), agent=None, kind="set")
    assert [c.name for c in sent.pop().firstChildElement().elements()] == ["forbidden"]
