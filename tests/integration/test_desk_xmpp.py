"""The service desk's agent commands on XMPP: agents and a supervisor on a real Prosody
(slixmpp clients, accounts provisioned with ``--address``), customers on Prosody too
(their account is the identity the desk recognises them by).

The tests share one Prosody and one gateway and run in order.
"""

from __future__ import annotations

import datetime as dt
import re

import desk_site
import harness
import pytest
from leaks import assert_unseen
from ops_helpers import admin_token, api
from xmpp_peers import Prosody, SlixClient

SECRET = "component-Secret-77"
SUPPORT = "support@support.localhost"
ACCOUNTS = {"annx": "Ann", "bobx": "Bo", "suex": "Sue"}
ALIAS = re.compile(r"\((c-[0-9a-f]+@support\.localhost)\)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("desk-xmpp")
    prosody = Prosody(root / "prosody", SECRET)
    prosody.start()
    clients: list[SlixClient] = []
    try:
        for user in ("dana", "erin", *ACCOUNTS):
            prosody.register(user, f"{user}-pw")
        config = desk_site.write(
            root,
            extra=(
                f'\n[xmpp]\ndomain = "support.localhost"\n'
                f"server_port = {prosody.component_port}\n"
                f'secret = "{SECRET}"\nversion_timeout_s = 2\n'
            ),
        )
        for name, alias in ACCOUNTS.items():
            harness.admin(
                config,
                "agent",
                "add",
                name,
                "--password-stdin",
                "--display-name",
                alias,
                "--address",
                f"xmpp:{name}@localhost",
                stdin=f"{name}-Secret-1\n",
            )
        harness.admin(config, "agent", "role", "suex", "supervisor")
        harness.admin(config, "canned", "add", "hello", "--text", "Hello {customer}, I am {agent}.")
        gateway = harness.start_gateway(root / "cwd", config)
        try:
            gateway.wait_for_log(r"XMPP component support\.localhost attached", 20)

            made: dict[str, SlixClient] = {}

            def client(user: str) -> SlixClient:
                # One session per account for the whole module: a second one with the
                # same resource would replace the first, mid-test.
                if user not in made:
                    made[user] = SlixClient(
                        f"{user}@localhost/desk", f"{user}-pw", prosody.c2s_port
                    )
                    clients.append(made[user])
                return made[user]

            port = gateway.listener_port("admin")
            token = admin_token(gateway)
            yield gateway, client, lambda m, p, b=None: api(port, token, m, p, b)
        finally:
            for made in clients:
                made.stop()
            gateway.stop()
    finally:
        prosody.stop()


ATTACHED: set[str] = set()


def on_duty(gateway: harness.Gateway, client: SlixClient, name: str, show: str | None = None):
    """Presence to the support address: the agent is looked up (once), then its status."""
    start = len(gateway.lines)
    client.presence(SUPPORT, show)
    if name not in ATTACHED:
        gateway.wait_for_log(rf"XMPP: agent {name} attached", 15, start)
        ATTACHED.add(name)
    if show is None:
        gateway.wait_for_log(rf"agent {name} is available", 15, start)


def interview(customer: SlixClient, name: str, choice: str = "1") -> None:
    customer.send(SUPPORT, "Hello")
    customer.expect("What is your name?", SUPPORT)
    customer.send(SUPPORT, name)
    customer.expect("What can we help you with?", SUPPORT)
    customer.send(SUPPORT, choice)


def accept(agent: SlixClient) -> str:
    offer = agent.expect("New chat offer", SUPPORT)
    alias = ALIAS.search(offer["body"]).group(1)
    agent.send(SUPPORT, "/accept")
    agent.expect("You are now chatting with customer", alias)
    return alias


def test_supervise_consult_hand_over_and_wrap_up_from_xmpp(site):
    gateway, client, _ = site
    ann, bo, sue = client("annx"), client("bobx"), client("suex")
    on_duty(gateway, ann, "annx")
    dana = client("dana")
    interview(dana, "Dana")
    chat = accept(ann)
    local = chat.partition("@")[0]
    dana.expect("You are now chatting with Ann", SUPPORT)
    on_duty(gateway, sue, "suex", "away")
    on_duty(gateway, bo, "bobx", "away")

    sue.send(SUPPORT, "/live")
    assert local in sue.expect("Live conversations", SUPPORT)["body"]
    sue.send(SUPPORT, f"/monitor {local}")
    assert "monitoring" in sue.expect("You are monitoring", chat)["body"]
    sue.expect("Monitoring", SUPPORT)
    dana.send(SUPPORT, "Is anyone there?")
    sue.expect("Is anyone there?", chat)
    ann.expect("Is anyone there?", chat)
    sue.send(chat, "WHISPER-x1 tell her about the discount")
    got = ann.expect("WHISPER-x1", chat)
    assert got["body"] == "[Sue, agents only] WHISPER-x1 tell her about the discount"
    sue.send(SUPPORT, f"/barge {local}")
    dana.expect("A supervisor, Sue, joined the conversation.", SUPPORT)
    sue.send(chat, "We value you, Dana.")
    assert dana.expect("We value you", SUPPORT)["body"] == "[Sue] We value you, Dana."
    sue.send(chat, "/leave")
    dana.expect("Sue left the conversation.", SUPPORT)

    ann.send(chat, "/consult @bobx WHISPER-x2 can you take this?")
    bo.expect("You are consulting", chat)
    assert bo.expect("WHISPER-x2", chat)["body"].startswith("[Ann, agents only]")
    bo.send(chat, "WHISPER-x3 sure")
    ann.expect("WHISPER-x3", chat)
    ann.send(chat, "/handover @bobx Bo knows discounts well.")
    dana.expect("Bo knows discounts well.", SUPPORT)
    dana.expect("You are now chatting with Bo", SUPPORT)
    ann.expect("took the conversation over", chat)
    bo.expect("You are now chatting with customer", chat)
    bo.send(chat, "Hi Dana, Bo here.")
    dana.expect("Hi Dana, Bo here.", SUPPORT)
    bo.send(chat, "/note WHISPER-x4 wants 20%")
    bo.expect("Noted.", chat)
    bo.send(chat, "/end")
    dana.expect("ended", SUPPORT)
    assert "disposition optional" in bo.expect("Wrap up", SUPPORT)["body"]
    bo.send(SUPPORT, f"/wrapup {local} resolved #discount happy in the end")
    assert bo.expect("Wrapped up", SUPPORT)["body"].endswith(": resolved #discount")

    raw = bytes(dana.raw)
    assert_unseen(raw, "WHISPER", "agents only", "annx", "bobx", "suex", "monitor", "consult")
    for agent in (ann, bo, sue):
        agent.presence(SUPPORT, "away")


def test_history_canned_away_and_offline_tasks_from_xmpp(site):
    gateway, client, call = site
    ann = client("annx")
    on_duty(gateway, ann, "annx")
    dana = client("dana")  # the same account as before: a returning customer
    interview(dana, "Dana")
    offer = ann.expect("New chat offer", SUPPORT)["body"]
    assert "Returning customer: 1 earlier conversation(s)" in offer, offer
    assert "resolved, with Bo" in offer, offer
    earlier = re.search(r"with Bo \((c-[0-9a-f]+)\)", offer).group(1)
    ann.send(SUPPORT, "/accept")
    chat = ALIAS.search(offer).group(1)
    ann.expect("You are now chatting with customer", chat)
    ann.send(chat, "/history")
    assert earlier in ann.expect("Earlier conversations", chat)["body"]
    ann.send(chat, f"/transcript {earlier}")
    old = ann.expect(f"Conversation {earlier}", chat)["body"]
    assert "Hi Dana, Bo here." in old and "Note by bobx: WHISPER-x4 wants 20%" in old
    ann.send(chat, "/canned hello")
    assert dana.expect("Hello Dana", SUPPORT)["body"] == "Hello Dana, I am Ann."
    ann.send(SUPPORT, "/canned")
    assert "hello: Hello {customer}, I am {agent}." in ann.expect("Canned", SUPPORT)["body"]
    ann.send(chat, "/end")
    dana.expect("ended", SUPPORT)
    ann.expect("Wrap up", SUPPORT)

    ann.send(SUPPORT, "/away lunch")
    ann.expect("You are away (lunch).", SUPPORT)
    status, agents = call("GET", "/v1/agents")
    assert next(a for a in agents if a["name"] == "annx")["reason"] == "lunch"

    # A message left out of hours reaches the XMPP agent as a task.
    today = dt.datetime.now(dt.UTC).date()
    spec = f"{today - dt.timedelta(days=1)}..{today + dt.timedelta(days=1)}"
    status, closure = call("POST", "/v1/desk/holidays", {"queue": "night", "spec": spec})
    assert status == 200, closure
    erin = client("erin")
    interview(erin, "Erin", "5")
    erin.expect("Write a message", SUPPORT)
    erin.send(SUPPORT, "Call me back please")
    erin.expect("Thank you. We have your message", SUPPORT)
    on_duty(gateway, ann, "annx")
    task = ann.expect("Message t-", SUPPORT)["body"]
    assert "Call me back please" in task
    task_id = re.search(r"Message (t-[0-9a-f]+)", task).group(1)
    ann.send(SUPPORT, "/tasks")
    assert task_id in ann.expect("Call me back", SUPPORT)["body"]
    ann.send(SUPPORT, f"/reply {task_id} We called you.")
    ann.expect(f"Answered {task_id}", SUPPORT)
    # Erin comes back: the answer comes over XMPP.
    erin.send(SUPPORT, "Hello again")
    erin.expect("answered the message you left: We called you.", SUPPORT)
    call("DELETE", f"/v1/desk/holidays/{closure['id']}")


COMMANDS_NS = "{http://jabber.org/protocol/commands}"
FORMS_NS = "{jabber:x:data}"


def adhoc(client: SlixClient, node: str, *, action: str = "execute", session=None, fields=None):
    """One XEP-0050 request to the support address; the ``<command/>`` answered (an
    ElementTree element), or the IQ error's condition as a string."""
    from xml.etree import ElementTree as ET

    from slixmpp.exceptions import IqError

    async def go():
        iq = client.client.make_iq_set(ito=SUPPORT)
        command = ET.Element(f"{COMMANDS_NS}command", node=node, action=action)
        if session is not None:
            command.set("sessionid", session)
        if fields is not None:
            form = ET.SubElement(command, f"{FORMS_NS}x", type="submit")
            for var, value in fields.items():
                field = ET.SubElement(form, f"{FORMS_NS}field", var=var)
                ET.SubElement(field, f"{FORMS_NS}value").text = value
        iq.xml.append(command)
        try:
            answer = await iq.send(timeout=10)
        except IqError as e:
            return e.iq["error"]["condition"]
        return answer.xml.find(f"{COMMANDS_NS}command")

    return client.run(go())


def form_of(command) -> dict[str, list[str]]:
    """The form's fields: var -> option values (a fixed field: its text, under "")."""
    fields: dict[str, list[str]] = {}
    for field in command.iter(f"{FORMS_NS}field"):
        if field.get("type") == "fixed":
            fields.setdefault("", []).extend(v.text or "" for v in field.iter(f"{FORMS_NS}value"))
        else:
            options = field.findall(f"{FORMS_NS}option/{FORMS_NS}value")
            fields[field.get("var")] = [o.text for o in options]
    return fields


def default_of(command, var: str) -> tuple[str, str]:
    """The value a form's list field proposes, and that option's label."""
    field = next(f for f in command.iter(f"{FORMS_NS}field") if f.get("var") == var)
    value = field.find(f"{FORMS_NS}value").text
    option = next(
        o for o in field.findall(f"{FORMS_NS}option") if o.find(f"{FORMS_NS}value").text == value
    )
    return value, option.get("label")


def note_of(command) -> tuple[str, str, str]:
    """(status, note type, note text) of a completed command."""
    note = command.find(f"{COMMANDS_NS}note")
    return command.get("status"), note.get("type"), note.text


def returning(customer: SlixClient, choice: str) -> None:
    """A customer who may still be at the name question of a conversation opened in the
    test before (its "Hello" then answers it): the interview to its end."""
    customer.send(SUPPORT, "Hello")
    if "name" in customer.expect("What ", SUPPORT)["body"]:
        customer.send(SUPPORT, "Erin")
        customer.expect("What can we help you with?", SUPPORT)
    customer.send(SUPPORT, choice)


def test_ad_hoc_commands_with_forms_for_xmpp_agents(site):
    gateway, client, call = site
    ann, sue, erin = client("annx"), client("suex"), client("erin")
    ann.presence(SUPPORT, "away")  # the test before left Ann available
    on_duty(gateway, ann, "annx")

    # The commands are listed to agents, and to nobody else.
    async def items(who: SlixClient):
        got = await who.client.plugin["xep_0030"].get_items(
            jid=SUPPORT, node="http://jabber.org/protocol/commands", timeout=10
        )
        return [(jid, node) for jid, node, _ in got["disco_items"]["items"]]

    nodes = ["status", "wrapup", "tasks", "live"]
    assert sorted(ann.run(items(ann))) == sorted((SUPPORT, n) for n in nodes)
    assert erin.run(items(erin)) == []
    assert adhoc(erin, "status") == "forbidden"
    assert adhoc(ann, "no-such-command") == "item-not-found"
    assert adhoc(ann, "status", action="complete", session="made-up") == "bad-request"

    # Availability with the desk's reasons.
    shown = adhoc(ann, "status")
    assert shown.get("status") == "executing" and shown.get("sessionid")
    assert "away:lunch" in form_of(shown)["status"]
    done = adhoc(ann, "status", session=shown.get("sessionid"), fields={"status": "away:training"})
    assert note_of(done) == ("completed", "info", "You are away (training).")
    status, agents = call("GET", "/v1/agents")
    assert next(a for a in agents if a["name"] == "annx")["reason"] == "training"
    # A session is used once.
    again = adhoc(ann, "status", session=shown.get("sessionid"), fields={"status": "available"})
    assert again == "bad-request"
    shown = adhoc(ann, "status")
    done = adhoc(ann, "status", session=shown.get("sessionid"), fields={"status": "available"})
    assert note_of(done) == ("completed", "info", "You are available.")
    status, agents = call("GET", "/v1/agents")
    annx = next(a for a in agents if a["name"] == "annx")
    assert (annx["status"], annx["reason"]) == ("available", None), annx

    # A wrap-up whose disposition is required (the strict queue), from its form.
    returning(erin, "4")
    chat = accept(ann)
    erin.expect("You are now chatting with Ann", SUPPORT)
    ann.send(chat, "/end")
    erin.expect("ended", SUPPORT)
    ann.expect("Wrap up", SUPPORT)
    shown = adhoc(ann, "wrapup")
    form = form_of(shown)
    # The chat just ended is proposed (an earlier one may still be owed).
    conversation, label = default_of(shown, "conversation")
    assert conversation in form["conversation"]
    assert label == f"{chat.partition('@')[0]} ({conversation})"
    assert "-" not in form["disposition"] and "resolved" in form["disposition"]
    cancelled = adhoc(ann, "wrapup", action="cancel", session=shown.get("sessionid"))
    assert cancelled.get("status") == "canceled"
    shown = adhoc(ann, "wrapup")
    done = adhoc(
        ann,
        "wrapup",
        session=shown.get("sessionid"),
        fields={
            "conversation": conversation,
            "disposition": "resolved",
            "tags": "vip, refund",
            "note": "Refund sent",
        },
    )
    assert note_of(done) == (
        "completed",
        "info",
        f"Wrapped up {conversation}: resolved #vip #refund",
    )
    remaining = adhoc(ann, "wrapup")
    if remaining.get("status") == "executing":  # the earlier test's chat, still owed
        assert conversation not in form_of(remaining)["conversation"]
        adhoc(ann, "wrapup", action="cancel", session=remaining.get("sessionid"))
    else:
        assert note_of(remaining)[1:] == ("info", "No wrap-up is due.")
    assert note_of(adhoc(ann, "tasks"))[1:] == ("info", "No message to answer.")

    # Live conversations: for supervisors only; a supervisor monitors from the form.
    returning(erin, "1")
    chat = accept(ann)
    refused = adhoc(ann, "live")
    assert note_of(refused)[:2] == ("completed", "error")
    assert note_of(refused)[2].startswith("not_allowed: ")
    on_duty(gateway, sue, "suex", "away")
    shown = adhoc(sue, "live")
    [live] = form_of(shown)["conversation"]
    assert default_of(shown, "action") == ("monitor", "Monitor")
    done = adhoc(
        sue,
        "live",
        session=shown.get("sessionid"),
        fields={"conversation": live, "action": "monitor"},
    )
    status, kind, text = note_of(done)
    assert (status, kind) == ("completed", "info") and text.startswith("Monitoring "), text
    sue.expect("You are monitoring", chat)
    erin.send(SUPPORT, "Are you there?")
    sue.expect("Are you there?", chat)
    ann.send(chat, "/end")
    erin.expect("ended", SUPPORT)
    for agent in (ann, sue):
        agent.presence(SUPPORT, "away")
