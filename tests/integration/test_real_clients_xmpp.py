"""What customers and agents on real XMPP clients ran into (issue "Real clients"), on a
real Prosody with the gateway attached as its component, driven by slixmpp.

Prosody here keeps no offline messages, so a message to a client that is gone comes
back as an error, as on a server whose offline storage honours XEP-0334 hints.
The tests share one Prosody and one gateway; each uses accounts of its own.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import attrs
import harness
import pytest
from jsonim_client import hello_agent, set_presence
from xmpp_peers import Prosody, SlixClient

SECRET = "component-Secret-43"
SUPPORT = "support@support.localhost"
AGENT_ACCOUNT = "csr-robin"
ATTACHED = r"XMPP component support\.localhost attached"
GRACE_S = 60
USERS = ("dana", "erin", "fred", "gus", "hana", "ivan", "jo", "kim")


@attrs.define
class Site:
    """Prosody and the gateway attached to it."""

    root: Path
    config: Path
    prosody: Prosody
    gateway: harness.Gateway
    clients: list = attrs.Factory(list)

    def customer(self, user: str, **options) -> SlixClient:
        options.setdefault("available", True)  # online, as a desktop client is
        client = SlixClient(f"{user}@localhost", f"{user}-pw", self.prosody.c2s_port, **options)
        self.clients.append(client)
        return client

    def xmpp_agent(self) -> SlixClient:
        agent = SlixClient(
            f"{AGENT_ACCOUNT}@localhost/desk",
            "robin-xmpp-pw",
            self.prosody.c2s_port,
            version=("Gajim", "1.8.4"),
        )
        self.clients.append(agent)
        mark = len(self.gateway.lines)
        agent.presence(SUPPORT)
        self.gateway.wait_for_log(r"agent robin is available", 15, start=mark)
        return agent

    def jsonim_agent(self):
        agent = self.gateway.connect("jsonim agent")
        hello_agent(agent, "anna", "anna-Secret-1")
        return agent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("xmpp-real")
    prosody = Prosody(root / "prosody", SECRET)
    prosody.start()
    try:
        for user in USERS:
            prosody.register(user, f"{user}-pw")
        prosody.register(AGENT_ACCOUNT, "robin-xmpp-pw")
        config = harness.write_config(root, resume_grace_s=GRACE_S)
        with config.open("a") as f:
            f.write(
                f'\n[xmpp]\ndomain = "support.localhost"\nserver_port = {prosody.component_port}\n'
                f'secret = "{SECRET}"\nversion_timeout_s = 2\n'
            )
        harness.add_agent(config, "anna", "anna-Secret-1", "Anna")
        harness.admin(
            config,
            "agent",
            "add",
            "robin",
            "--password-stdin",
            "--display-name",
            "Robin",
            "--address",
            f"xmpp:{AGENT_ACCOUNT}@localhost",
            stdin="robin-Secret-1\n",
        )
        gateway = harness.start_gateway(root / "cwd", config)
        site = Site(root, config, prosody, gateway)
        try:
            gateway.wait_for_log(ATTACHED, 20)
            yield site
        finally:
            for client in site.clients:
                client.stop()
            gateway.stop()
    finally:
        prosody.stop()


def interview(customer: SlixClient, opening: str, name: str) -> None:
    customer.send(SUPPORT, opening)
    customer.expect("What is your name?", SUPPORT)
    customer.send(SUPPORT, name)
    customer.expect("What can we help you with?", SUPPORT)
    customer.send(SUPPORT, "1")
    customer.expect("in line", SUPPORT)


def transcript(site: Site, conversation: str) -> str:
    return harness.admin(site.config, "transcript", conversation).stdout


def test_the_first_line_is_kept_and_the_agent_reads_it_first(site):
    agent = site.jsonim_agent()
    customer = site.customer("dana", version=("DanaChat", "4.2"))
    interview(customer, "hello, I have a billing question", "Dana")
    offer = agent.expect("offer", timeout=15)
    agent.send({"type": "accept", "offer": offer["offer"]})
    connected = agent.expect("connected", conversation=offer["conversation"])
    history = [(h["from"], h["text"]) for h in connected["history"]]
    assert history[0] == ("customer", "hello, I have a billing question"), history
    # Stored too, and it answered no question: the name is the second line.
    assert "hello, I have a billing question" in transcript(site, offer["conversation"])
    assert offer["customer"]["identity"]["name"] == "Dana"
    assert "topic" not in offer["customer"]["identity"]
    agent.send({"type": "end", "conversation": offer["conversation"]})
    customer.expect("ended", SUPPORT)
    agent.close()


def test_a_dropped_customer_is_held_and_its_missed_lines_follow_the_reconnection(site):
    agent = site.jsonim_agent()
    # A client that never approves the support contact's subscription: the gateway
    # learns it is gone only from a bounce.
    customer = site.customer("erin", authorize=False)
    interview(customer, "my order never came", "Erin")
    offer = agent.expect("offer", timeout=15)
    conversation = offer["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=conversation)
    customer.expect("You are now chatting with Anna", SUPPORT)
    customer.drop()
    agent.send(
        {"type": "message", "conversation": conversation, "text": "Still there?", "id": "a1"}
    )
    agent.expect("ack", id="a1")
    # The line bounced: the customer is away, and the agent is told so.
    notice = agent.expect("message", timeout=15, **{"from": "system"})
    assert "lost the connection" in notice["text"], notice
    again = site.customer("erin", authorize=False)
    again.send(SUPPORT, "sorry, my phone died")
    again.expect("Welcome back", SUPPORT)
    first = again.expect("", SUPPORT)
    second = again.expect("", SUPPORT)
    assert (first["body"], second["body"]) == ("You are now chatting with Anna.", "Still there?")
    line = agent.expect("message", conversation=conversation, **{"from": "customer"})
    assert line["text"] == "sorry, my phone died"
    agent.send({"type": "end", "conversation": conversation})
    again.expect("ended", SUPPORT)
    agent.close()


def test_going_offline_ends_the_conversation_and_a_gone_customer_is_not_offered(site):
    # The customer approves the support contact (as most users do when asked), so its
    # going offline reaches the gateway.
    customer = site.customer("fred")
    interview(customer, "is anybody there?", "Fred")
    mark = len(site.gateway.lines)
    customer.stop()
    site.gateway.wait_for_log(r"XMPP: customer \S+ left: went offline", 15, start=mark)
    site.gateway.wait_for_log(r"conversation \S+ ended \(customer\) while queued", 15, start=mark)
    agent = site.jsonim_agent()
    agent.sync()
    assert [f for f in agent.received if f["type"] == "offer"] == []
    agent.close()


def test_chat_states_alone_and_end_with_nothing_open_start_nothing(site):
    customer = site.customer("gus")
    # What Profanity sends after a chat ends: a chat state, no body.
    customer.call(customer.client.send_message, mto=SUPPORT, mbody=None, mtype="chat")
    customer.call(lambda: _chat_state(customer, "inactive"))
    customer.send(SUPPORT, "/end")
    reply = customer.expect("", SUPPORT)
    assert reply["body"] == "There is no conversation to end. Write to start one."
    assert not re.search(rb"What is your name", bytes(customer.raw))


def _chat_state(client: SlixClient, state: str) -> None:
    message = client.client.make_message(mto=SUPPORT, mtype="chat")
    message["chat_state"] = state
    message.send()


def test_an_xmpp_agent_uses_commands_without_a_slash(site):
    agent = site.xmpp_agent()
    customer = site.customer("hana")
    interview(customer, "hi", "Hana")
    offer = agent.expect("New chat offer", SUPPORT)
    number = re.search(r"offer (o-\S+):", offer["body"]).group(1)
    assert f"Reply accept {number} or reject {number}" in offer["body"], offer["body"]
    assert "with or without a leading / or !" in offer["body"]
    agent.send(SUPPORT, f"accept {number}")
    hello = agent.expect("You are now chatting with customer")
    alias = str(hello["from"]).partition("/")[0]
    customer.expect("You are now chatting with Robin", SUPPORT)
    agent.send(alias, "!end")
    customer.expect("The agent has ended the conversation", SUPPORT)
    # The gateway's own lines carry XEP-0334 hints: no server keeps them offline.
    raw = bytes(customer.raw)
    ended = raw[raw.rindex(b"The agent has ended") :]
    ended = ended[: ended.index(b"</message>")]
    assert b"no-store" in ended and b"urn:xmpp:hints" in ended, ended
    # The agent's software was asked too (XEP-0092).
    agents = _admin_agents(site)
    assert agents["robin"]["client"] == {"name": "Gajim", "version": "1.8.4"}
    agent.presence(SUPPORT, "away")


def _admin_agents(site: Site) -> dict:
    import json

    from ops_helpers import admin_token

    port = site.gateway.listener_port("admin")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/agents",
        headers={"Authorization": f"Bearer {admin_token(site.gateway)}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {a["name"]: a for a in json.loads(response.read())}


def test_approving_the_support_contact_shows_it_online_at_once(site):
    customer = site.customer("ivan", authorize=False)
    customer.send(SUPPORT, "hello")
    customer.expect("What is your name?", SUPPORT)
    # In conversation, the customer adds the support contact: approved, and its
    # presence follows at once (RFC 6121 3.1.5), not only after a later probe.
    customer.call(customer.client.send_presence, pto=SUPPORT, ptype="subscribe")
    customer.expect_presence(SUPPORT, "available")
    result = {}

    async def ask():
        info = await customer.client.plugin["xep_0030"].get_info(jid=SUPPORT, timeout=10)
        result["identities"] = info["disco_info"]["identities"]

    customer.run(ask())
    assert [(c, t) for c, t, _lang, _name in result["identities"]] == [("client", "bot")]
    customer.send(SUPPORT, "/end")
    customer.expect("ended", SUPPORT)


def test_caps_name_a_client_that_does_not_answer_its_version(site):
    agent = site.jsonim_agent()
    # No XEP-0092 plugin: the version query gets an error, and the caps it announced
    # in its presence are resolved (and their hash checked) instead.
    customer = site.customer("jo", caps_name="CapsChat")
    customer.presence(SUPPORT)
    interview(customer, "hello", "Jo")
    offer = agent.expect("offer", timeout=15)
    assert offer["customer"]["client"]["name"] == "CapsChat", offer
    agent.send({"type": "reject", "offer": offer["offer"]})
    customer.send(SUPPORT, "/end")
    customer.expect("ended", SUPPORT)
    agent.close()


def test_a_body_too_large_for_the_agent_is_refused_to_the_sender(site):
    agent = site.jsonim_agent()  # its welcome says max_frame 65536
    customer = site.customer("kim")
    interview(customer, "hello", "Kim")
    offer = agent.expect("offer", timeout=15)
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    customer.expect("You are now chatting with Anna", SUPPORT)
    customer.send(SUPPORT, "x" * 200_000)
    error = customer.expect_error()
    assert error["error"]["condition"] == "bad-request"
    assert "too long for the recipient" in error["error"]["text"], error
    customer.send(SUPPORT, "a short one")
    got = agent.expect("message", conversation=offer["conversation"], **{"from": "customer"})
    assert got["text"] == "a short one"
    assert max(len(line) for line in agent.raw_lines) <= 65536 + 1
    agent.send({"type": "end", "conversation": offer["conversation"]})
    agent.close()


def test_the_component_link_has_a_metric(site):
    port = site.gateway.listener_port("metrics")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'imgateway_upstream_up{upstream="xmpp-component"} 1.0' in text, text[-2000:]


def test_an_agent_logging_in_over_xmpp_tells_its_jsonim_session_why_it_closes(site):
    web = site.gateway.connect("robin on JSON-IM")
    hello_agent(web, "robin", "robin-Secret-1")
    set_presence(web, "available")
    site.xmpp_agent()
    notice = web.expect("message", timeout=15, **{"from": "system"})
    assert notice["text"] == "You are logged out: logged in from another connection (xmpp).", notice
    assert web.closed(10)
