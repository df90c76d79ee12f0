"""The firewall with a real Prosody: the XMPP component's outbound link goes through the
output chain and SNAT (Prosody sees it from 127.0.0.5), and the leak test over XMPP — an
agent on an internal XMPP account types internal hosts, addresses and its own JID, and no
byte the XMPP customer's client receives contains them."""

from __future__ import annotations

import json
import re

import fw_site
import harness
import pytest
from leaks import assert_unseen
from xmpp_peers import Prosody, SlixClient

SECRET = "component-Secret-43"
SUPPORT = "support@support.localhost"
AGENT_ACCOUNT = "csr-internal7"
AGENT_RESOURCE = "desk-z9k"
RULES = """\
nat { snat to 127.0.0.0/8 from 127.0.0.5; }
translate {
    host db01.corp.internal -> "our systems";
    addr 10.0.0.0/8 -> "[internal]";
    text "csr-internal7@localhost" -> "Annie";
}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("firewall-xmpp")
    prosody = Prosody(root / "prosody", SECRET)
    prosody.start()
    clients: list[SlixClient] = []
    try:
        prosody.register("dana", "dana-pw")
        prosody.register(AGENT_ACCOUNT, "agent-xmpp-pw")
        config, _ = fw_site.write_config(
            root,
            RULES,
            f'\n[xmpp]\ndomain = "support.localhost"\nserver_port = {prosody.component_port}\n'
            f'secret = "{SECRET}"\nversion_timeout_s = 10\n',
        )
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
        try:
            gateway.wait_for_log(r"XMPP component support\.localhost attached", 20)
            admin_port = fw_site.port_of(gateway, "admin")
            monkeypatch_module.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{admin_port}")
            yield config, prosody, gateway, clients
        finally:
            for client in clients:
                client.stop()
            gateway.stop()
    finally:
        prosody.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_component_link_leaves_from_the_snat_address(site):
    config, prosody, _, _ = site
    listing = json.loads(fw_site.fw(config, "conntrack", "list", "--json").stdout)
    link = [e for e in listing if e["direction"] == "out"]
    assert link, listing
    assert link[0]["translated"]["src"].startswith("127.0.0.5:")
    assert link[0]["original"]["dst"].endswith(f":{prosody.component_port}")


def test_no_byte_the_xmpp_customer_receives_names_the_agents_internals(site):
    _, prosody, gateway, clients = site
    agent = SlixClient(
        f"{AGENT_ACCOUNT}@localhost/{AGENT_RESOURCE}", "agent-xmpp-pw", prosody.c2s_port
    )
    clients.append(agent)
    agent.presence(SUPPORT)
    gateway.wait_for_log(r"XMPP: agent annax attached", 15)
    customer = SlixClient("dana@localhost", "dana-pw", prosody.c2s_port, version=("Dana", "1"))
    clients.append(customer)
    customer.send(SUPPORT, "Hello, I need help")
    customer.expect("What is your name?", SUPPORT)
    customer.send(SUPPORT, "Dana")
    customer.expect("What can we help you with?", SUPPORT)
    customer.send(SUPPORT, "1")
    customer.expect("in line", SUPPORT)
    offer = agent.expect("New chat offer", SUPPORT)
    alias = re.search(r"\((c-[0-9a-f]+@support\.localhost)\)", offer["body"]).group(1)
    agent.send(SUPPORT, "/accept")
    customer.expect("You are now chatting with Annie", SUPPORT)
    agent.send(alias, f"I am {AGENT_ACCOUNT}@localhost; db01.corp.internal at 10.20.30.40 is down.")
    got = customer.expect("is down", SUPPORT)
    assert got["body"] == "I am Annie; our systems at [internal] is down."
    agent.send(alias, "/end")
    customer.expect("ended", SUPPORT)
    raw = bytes(customer.raw)
    assert_unseen(raw, AGENT_ACCOUNT, AGENT_RESOURCE, "corp.internal", "10.20.30.40")
