"""The leak test: an agent with an internal account, address and host converses, and no
byte the customer receives contains any of them (JSON-IM)."""

from __future__ import annotations

import fw_site
import harness
import pytest
from fw_site import Client
from jsonim_client import answer_interview, hello_agent, hello_customer
from leaks import assert_unseen

RULES = """\
translate {
    host db01.corp.internal -> "our systems";
    host *.corp.example -> "[internal host]";
    addr 10.0.0.0/8 -> "[internal]";
    addr fd00::/8 -> "[internal]";
    text "anna@corp.example" -> "Anna";
}
"""
SECRETS = [
    b"anna",  # the login (case-sensitive: the alias is "Anna")
    b"corp.example",
    b"corp.internal",
    b"10.20.30.40",
    b"fd00:",
    b"127.0.0.20",  # the agent's own address
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-leak")
    config, _ = fw_site.write_config(root, RULES)
    harness.admin(
        config,
        "agent",
        "add",
        "anna",
        "--password-stdin",
        "--display-name",
        "Anna",
        "--skill",
        "billing:4",
        "--address",
        "xmpp:anna@corp.example",
        stdin="anna-Secret-1\n",
    )
    gateway = harness.start_gateway(root / "cwd", config)
    yield gateway
    gateway.stop()


def test_no_byte_the_customer_receives_names_the_agents_internals(site):
    agent = Client(site.port, "127.0.0.20", "anna")
    hello_agent(agent, "anna", "anna-Secret-1")
    customer = Client(site.port, "127.0.0.21", "customer")
    hello_customer(customer)
    answer_interview(customer, {"name": "Dana", "topic": "billing"})
    offer = agent.expect("offer")
    conversation = offer["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=conversation)
    customer.expect("connected", conversation=conversation)
    said = [
        "I'm anna@corp.example, checking db01.corp.internal now.",
        "The invoice service at 10.20.30.40 (and fd00::17, mail.corp.example) is down.",
        "Please retry in five minutes.",
    ]
    for text in said:
        fid = agent.new_id("a")
        agent.send({"type": "message", "conversation": conversation, "text": text, "id": fid})
        msg = agent.expect("ack", id=fid)["msg"]
        customer.expect("message", msg=msg)
    texts = [f["text"] for f in customer.frames_of("message") if f.get("from") == "agent"]
    assert texts == [
        "I'm Anna, checking our systems now.",
        "The invoice service at [internal] (and [internal], [internal host]) is down.",
        "Please retry in five minutes.",
    ]
    customer.send({"type": "end"})
    customer.expect("ended", conversation=conversation)
    customer.hang_up()
    assert_unseen(b"\n".join(customer.raw_lines), *SECRETS)
