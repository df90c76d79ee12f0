"""Web chat with the other channels: a widget customer (headless Chromium) served by an
XMPP agent (slixmpp on the direct listener) and by an IRC agent (SASL on the direct
listener), and a JSON-IM/TCP customer served from the agent console. Formatting meets
plain clients as plain text (the translate fallback), and plain text is never read as
formatting or HTML on the way back."""

from __future__ import annotations

import re

import harness
import pytest
from browser import chromium
from irc_peers import RawIrc, irc_ports
from jsonim_client import JsonImClient, answer_interview, hello_customer
from web_site import CompanySite, Console, Widget, screenshots_on_failure, web_port, write_config
from xmpp_peers import SlixClient

PASSWORDS = {"anna": "anna-Secret-1", "bert": "bert-Secret-2", "cleo": "cleo-Secret-3"}
SUPPORT = "support@localhost"
XMPP_LISTENING = r"xmpp listener \S+ listening on 127\.0\.0\.1:(\d+)"
RICH = "**Urgent**: see [the form](https://example.com/form) and https://example.com/a"
PLAIN = "Urgent: see the form (https://example.com/form) and https://example.com/a"
REPLY = "Thanks <b>Dana</b>, **not bold** here"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-peers")
    company = CompanySite()
    config = write_config(root, web=f'allowed_origins = ["{company.origin}"]\n')
    text = config.read_text().replace(
        "[listeners]\n",
        '[listeners]\nxmpp = ["tcp:0:interface=127.0.0.1"]\nirc = ["tcp:0:interface=127.0.0.1"]\n',
        1,
    )
    text += '\n[xmpp]\nclient_domain = "localhost"\n'
    text += '\n[irc]\nserver_name = "irc.itest"\nallow_plaintext_auth = true\n'
    config.write_text(text)
    for name, alias in (("anna", "Anna"), ("bert", "Sam"), ("cleo", "Cleo")):
        harness.add_agent(config, name, PASSWORDS[name], alias)
    gateway = harness.start_gateway(root / "cwd", config, "web-peers")
    gateway.web = web_port(gateway)
    gateway.xmpp = int(gateway.wait_for_log(XMPP_LISTENING, 10).group(1))
    gateway.irc = irc_ports(gateway, 1)["tcp"]
    gateway.page = company.embed("/shop.html", gateway.web)
    yield gateway
    gateway.stop()
    company.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("web-peers-browser") / "profile") as d:
        d.set_window_size(1200, 900)
        yield d


def line_with(lines: list[dict], text: str, sender: str) -> dict | None:
    return next((x for x in lines if text in x["text"] and x["from"] == sender), None)


def interview(widget: Widget, name: str) -> None:
    """Through the interview to the queue."""
    widget.open()
    widget.wait("the name question", lambda s: any("your name" in x["text"] for x in s["lines"]))
    widget.type(name)
    widget.wait("the choices", lambda s: s["choices"])
    widget.choose("Billing")
    widget.wait("queued", lambda s: s["phase"] == "queued")


def test_a_widget_customer_with_an_xmpp_agent(site, driver, tmp_path):
    agent = SlixClient("anna@localhost/desk", PASSWORDS["anna"], site.xmpp)
    try:
        with screenshots_on_failure(driver, tmp_path):
            mark = len(site.lines)
            agent.presence(SUPPORT)
            site.wait_for_log(r"agent anna is available", 10, start=mark)
            widget = Widget(driver, site.page)
            interview(widget, "Dana")
            offer = agent.expect("New chat offer", SUPPORT)
            assert "web, webchat 1.0" in offer["body"], offer["body"]
            agent.send(SUPPORT, "/accept")
            hello = agent.expect("You are now chatting with customer")
            alias = str(hello["from"]).partition("/")[0]
            widget.wait("connected", lambda s: s["status"] == "You are chatting with Anna.")
            widget.type(RICH)
            got = agent.expect("Urgent", alias)
            assert got["body"] == PLAIN
            agent.send(alias, REPLY)
            line = widget.wait("the reply", lambda s: line_with(s["lines"], "Thanks", "agent"))
            assert line["text"] == REPLY
            assert "&lt;b&gt;" in line["html"] and "<strong>" not in line["html"]
            # Stored (acknowledged); an XMPP agent's client reports nothing back, and no
            # receipt is made up for it.
            own = widget.wait(
                "the customer's line acknowledged",
                lambda s: (
                    line_with(s["lines"], "Urgent", "customer")["receipt"] != "sending"
                    and line_with(s["lines"], "Urgent", "customer")
                ),
            )
            assert own["receipt"] == "sent", own
            widget.end()
            agent.expect("ended", alias)
    finally:
        agent.stop()


def test_a_widget_customer_with_an_irc_agent(site, driver, tmp_path):
    agent = RawIrc(site.irc, name="irc agent")
    try:
        with screenshots_on_failure(driver, tmp_path):
            agent.register("bert_desk", caps="sasl message-tags", sasl=("bert", PASSWORDS["bert"]))
            widget = Widget(driver, site.page)
            interview(widget, "Erin")
            match = agent.expect(r"NOTICE bert_desk :Offer (o-\S+): (c-[0-9a-f]+) \(web, webchat")
            offer, alias = match.group(1), match.group(2)
            agent.send(f"PRIVMSG Support :/accept {offer}")
            agent.expect(rf"You are now talking with {alias}")
            widget.wait("connected", lambda s: s["status"] == "You are chatting with Sam.")
            widget.type(RICH)
            agent.expect(
                rf"^:{alias}!customer@gateway\.invalid PRIVMSG bert_desk :{re.escape(PLAIN)}$"
            )
            agent.send(f"PRIVMSG {alias} :{REPLY}")
            line = widget.wait("the reply", lambda s: line_with(s["lines"], "Thanks", "agent"))
            assert line["text"] == REPLY and "<strong>" not in line["html"]
            widget.end()
            agent.expect(rf"Conversation with {alias} ended")
    finally:
        agent.close()


def test_a_jsonim_customer_with_a_console_agent(site, driver, tmp_path):
    customer = JsonImClient(site.port, name="jsonim customer")
    try:
        with screenshots_on_failure(driver, tmp_path):
            cleo = Console(driver, site.web)
            cleo.login("cleo", PASSWORDS["cleo"])
            site.wait_for_log(r"agent cleo is available", 10)
            welcome = hello_customer(customer)  # features: typing only
            answer_interview(customer, {"name": "<b>Gus</b>", "topic": "billing"})
            offer = cleo.offer(welcome["conversation"])
            assert offer["details"]["Channel"] == "jsonim"
            assert offer["details"]["Client"] == "itest-widget 2.3.1"
            assert offer["details"]["name"] == "<b>Gus</b>"
            conversation = offer["conversation"]
            cleo.accept(offer)
            customer.expect("connected", conversation=conversation)
            cleo.type(conversation, "Hello", send=False)
            assert customer.expect("typing")["state"] == "active"
            cleo.type(conversation, " **Gus**, see [the form](https://example.com/form)")
            got = customer.expect("message", conversation=conversation, **{"from": "agent"})
            assert got["text"] == "Hello Gus, see the form (https://example.com/form)"
            assert "markup" not in got
            customer.send({"type": "typing", "state": "active"})
            cleo.wait("typing", lambda s: s["panes"][0]["typing"].endswith("is typing\u2026"))
            customer.send({"type": "message", "text": "**stars** <i>tags</i>", "id": "m1"})
            customer.expect("ack", id="m1")
            line = cleo.wait(
                "the customer's line",
                lambda s: line_with(s["panes"][0]["lines"], "stars", "customer"),
            )
            assert line["text"] == "**stars** <i>tags</i>" and "<i>" not in line["html"]
            # A plain JSON-IM customer negotiated no receipts: none are sent, none made up.
            customer.send({"type": "receipt", "msg": got["msg"], "state": "read", "id": "r1"})
            assert customer.expect("error", id="r1")["code"] == "not_allowed"
            mine = cleo.wait(
                "Cleo's line acknowledged",
                lambda s: (
                    line_with(s["panes"][0]["lines"], "Hello Gus", "agent")["receipt"] != "sending"
                    and line_with(s["panes"][0]["lines"], "Hello Gus", "agent")
                ),
            )
            assert mine["receipt"] == "sent", mine
            cleo.end(conversation)
            customer.expect("ended", conversation=conversation)
    finally:
        customer.close()
