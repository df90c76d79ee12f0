"""The gateway as an XEP-0114 component of a real Prosody, with slixmpp clients.

Customers on stock Prosody accounts write to support@support.localhost and reach a
JSON-IM agent and an XMPP agent (an account on the same Prosody, provisioned with
``--address``); a JSON-IM customer reaches the XMPP agent. The agent's real JID never
appears in the bytes a customer's client receives.

The tests in this module share one Prosody and one gateway and run in order.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import harness
import pytest
from jsonim_client import answer_interview, hello_agent, hello_customer, set_presence
from leaks import assert_unseen
from xmpp_peers import Prosody, SlixClient

SECRET = "component-Secret-42"
SUPPORT = "support@support.localhost"
AGENT_ACCOUNT = "csr-anna"  # the XMPP agent's Prosody account: no customer may see it
AGENT_RESOURCE = "desk-q7x"
ATTACHED = r"XMPP component support\.localhost attached"


@attrs.define
class Site:
    """Prosody and the gateway attached to it."""

    root: Path
    prosody: Prosody
    gateway: harness.Gateway
    clients: list = attrs.Factory(list)

    def customer(self, user: str, version: tuple[str, str]) -> SlixClient:
        client = SlixClient(
            f"{user}@localhost", f"{user}-pw", self.prosody.c2s_port, version=version
        )
        self.clients.append(client)
        return client


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("xmpp")
    prosody = Prosody(root / "prosody", SECRET)
    prosody.start()
    try:
        for user in ("dana", "erin", "fred"):
            prosody.register(user, f"{user}-pw")
        prosody.register(AGENT_ACCOUNT, "anna-xmpp-pw")
        config = harness.write_config(root)
        with config.open("a") as f:
            f.write(
                f'\n[xmpp]\ndomain = "support.localhost"\nserver_port = {prosody.component_port}\n'
                f'secret = "{SECRET}"\nversion_timeout_s = 10\n'
            )
        harness.add_agent(config, "anna", "anna-Secret-1", "Anna")
        harness.admin(
            config,
            "agent",
            "add",
            "annax",
            "--password-stdin",
            "--display-name",
            "Annie",
            "--address",
            f"xmpp:{AGENT_ACCOUNT}@localhost",
            stdin="annax-Secret-1\n",
        )
        gateway = harness.start_gateway(root / "cwd", config)
        site = Site(root, prosody, gateway)
        try:
            gateway.wait_for_log(ATTACHED, 20)
            yield site
        finally:
            for client in site.clients:
                client.stop()
            gateway.stop()
            assert SECRET not in gateway.log(), "the component secret was logged"
    finally:
        prosody.stop()


def interview(customer: SlixClient, name: str) -> None:
    """Open the conversation and answer the questions up to the queue."""
    customer.send(SUPPORT, "Hello, I need help")
    customer.expect("What is your name?", SUPPORT)
    customer.send(SUPPORT, name)
    prompt = customer.expect("What can we help you with?", SUPPORT)
    assert "1. Billing" in prompt["body"], prompt["body"]
    customer.send(SUPPORT, "1")
    customer.expect("in line", SUPPORT)


def assert_no_leak(customer: SlixClient, *secrets: str) -> None:
    assert_unseen(bytes(customer.raw), *secrets)


def test_xmpp_customer_reaches_jsonim_agent(site):
    agent = site.gateway.connect("anna")
    hello_agent(agent, "anna", "anna-Secret-1")
    customer = site.customer("dana", ("DanaChat", "4.2.1"))
    interview(customer, "Dana")
    offer = agent.expect("offer", timeout=15)
    card = offer["customer"]
    assert card["protocol"] == "xmpp"
    assert card["client"] == {"name": "DanaChat", "version": "4.2.1"}, card
    conversation = offer["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=conversation)
    customer.expect("You are now chatting with Anna", SUPPORT)

    cid = agent.new_id("a")
    agent.send({"type": "message", "conversation": conversation, "text": "Hi Dana <&>", "id": cid})
    agent.expect("ack", id=cid)
    got = customer.expect("Hi Dana", SUPPORT)
    assert got["body"] == "Hi Dana <&>"
    customer.send(SUPPORT, "My bill is wrong")
    message = agent.expect("message", conversation=conversation)
    assert message["text"] == "My bill is wrong"
    agent.send({"type": "end", "conversation": conversation})
    customer.expect("ended", SUPPORT)
    set_presence(agent, "away")
    agent.close()
    assert_no_leak(customer, "anna-Secret", '"anna"')


def test_xmpp_customer_reaches_xmpp_agent(site):
    agent = SlixClient(
        f"{AGENT_ACCOUNT}@localhost/{AGENT_RESOURCE}", "anna-xmpp-pw", site.prosody.c2s_port
    )
    site.clients.append(agent)
    agent.presence(SUPPORT)
    site.gateway.wait_for_log(r"XMPP: agent annax attached", 15)
    customer = site.customer("erin", ("ErinIM", "1.0"))
    interview(customer, "Erin")
    offer = agent.expect("New chat offer", SUPPORT)
    assert "ErinIM 1.0" in offer["body"], offer["body"]
    alias = re.search(r"\((c-[0-9a-f]+@support\.localhost)\)", offer["body"]).group(1)
    agent.send(SUPPORT, "/accept")
    agent.expect("You are now chatting with customer", alias)
    customer.expect("You are now chatting with Annie", SUPPORT)

    customer.send(SUPPORT, "Where is my refund?")
    got = agent.expect("Where is my refund?", alias)
    assert got["body"] == "Where is my refund?"
    agent.send(alias, "It is on its way, Erin.")
    got = customer.expect("It is on its way", SUPPORT)
    assert str(got["from"]).startswith(SUPPORT)

    agent.send(SUPPORT, "/status")
    status = agent.expect("Chats:", SUPPORT)
    assert alias in status["body"]
    agent.send(alias, "/end")
    customer.expect("ended", SUPPORT)
    assert_no_leak(customer, AGENT_ACCOUNT, AGENT_RESOURCE)

    # A JSON-IM customer reaches the same XMPP agent.
    web = site.gateway.connect("web customer")
    hello_customer(web)
    answer_interview(web, {"name": "Gus", "topic": "billing"})
    offer = agent.expect("New chat offer", SUPPORT)
    assert "jsonim, itest-widget 2.3.1" in offer["body"], offer["body"]
    alias = re.search(r"\((c-[0-9a-f]+@support\.localhost)\)", offer["body"]).group(1)
    agent.send(SUPPORT, "/accept")
    connected = web.expect("connected")
    assert connected["agent"]["alias"] == "Annie"
    agent.expect("You are now chatting with customer", alias)
    web.send({"type": "message", "text": "hello from the web", "id": "w1"})
    agent.expect("hello from the web", alias)
    agent.send(alias, "hello from XMPP")
    got = web.expect("message", **{"from": "agent"})
    assert got["text"] == "hello from XMPP"
    assert AGENT_ACCOUNT not in web.text() and AGENT_RESOURCE not in web.text()
    web.send({"type": "end"})
    agent.expect("customer left", alias)
    web.close()


def test_component_answers_disco_ping_and_version(site):
    client = site.customer("fred", ("FredIM", "0.1"))
    loop_result = {}

    async def ask():
        info = await client.client.plugin["xep_0030"].get_info(jid=SUPPORT, timeout=10)
        loop_result["features"] = info["disco_info"]["features"]
        version = await client.client.plugin["xep_0092"].get_version(SUPPORT, timeout=10)
        loop_result["version"] = version["software_version"]["name"]

    client.run(ask())
    assert "urn:xmpp:ping" in loop_result["features"]
    assert loop_result["version"] == "imgateway"


def test_the_component_reattaches_after_the_server_restarts(site):
    mark = len(site.gateway.lines)
    for client in site.clients:
        client.stop()
    site.clients.clear()
    site.prosody.stop()
    site.gateway.wait_for_log(r"XMPP component support\.localhost: link lost", 15, start=mark)
    site.prosody.start()
    site.gateway.wait_for_log(ATTACHED, 30, start=mark)
    customer = site.customer("dana", ("DanaChat", "4.2.1"))
    customer.send(SUPPORT, "back again")
    customer.expect("What is your name?", SUPPORT)
