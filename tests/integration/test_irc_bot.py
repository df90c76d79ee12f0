"""Bot mode against a real ngircd on loopback: the gateway joins the channel as a bot,
customers on the network reach an agent on the network or on JSON-IM, and the bot
comes back after the server restarts.

ngircd has no services, so the gateway trusts agents' nicks here
(``agent_identity = "nick"``): acceptable only on a private network like this one.
"""

from __future__ import annotations

import harness
import pytest
from certs import self_signed
from irc_peers import LibClient, Ngircd, write_config
from jsonim_client import hello_agent, set_presence
from leaks import assert_unseen

PASSWORD = "anna-Secret-1"
# ngircd reads about three lines a second from each client, the bot included: a
# conversation's lines take seconds to cross it.
SLOW = 30.0
BOT_UP = r"IRC bot: on 127\.0\.0\.1 as Support, joining #support"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    root = tmp_path_factory.mktemp("irc-bot")
    ngircd = Ngircd(root / "ngircd")
    bot = f"""
[irc.bot]
enabled = true
host = "127.0.0.1"
port = {ngircd.port}
tls = false
channel = "#support"
agent_identity = "nick"
lines_per_second = 5.0
line_burst = 20
reconnect_initial_s = 0.2
reconnect_max_s = 1
presence_poll_s = 0.5
"""
    config = write_config(root, listeners=[], irc=bot)
    harness.admin(
        config,
        "agent",
        "add",
        "anna",
        "--password-stdin",
        "--display-name",
        "Robin",
        "--address",
        "irc:anna",
        stdin=PASSWORD + "\n",
    )
    harness.admin(
        config,
        "agent",
        "add",
        "bert",
        "--password-stdin",
        "--display-name",
        "Sam",
        stdin=PASSWORD + "\n",
    )
    gateway = harness.start_gateway(root / "cwd", config, "irc-bot-gateway")
    gateway.wait_for_log(BOT_UP, harness.START_TIMEOUT)
    yield root, ngircd, gateway
    gateway.stop()
    ngircd.stop()


def interview(customer: LibClient, name: str) -> None:
    customer.say("Support", "hello")
    customer.wait_privmsg("What is your name", source="Support")
    customer.say("Support", name)
    customer.wait_privmsg("What can we help you with", source="Support")
    customer.say("Support", "billing")


def test_customer_on_the_network_reaches_an_agent_on_the_network(network):
    _, ngircd, _ = network
    customer = LibClient(ngircd.port, "dana", version="itest-irc 20.5.0", timeout=SLOW)
    customer.wait(lambda e: e.type == "welcome")
    customer.connection.join("#support")
    names = customer.wait(lambda e: e.type == "namreply")
    assert "Support" in names.arguments[2].replace("@", "").split()
    agent = LibClient(ngircd.port, "anna", timeout=SLOW)
    agent.wait(lambda e: e.type == "welcome")
    agent.say("Support", "status")
    agent.wait(lambda e: e.type == "privnotice" and "You are available" in e.arguments[0])
    interview(customer, "Dana")
    offer = agent.wait(lambda e: e.type == "privnotice" and "Offer o-" in e.arguments[0])
    assert "itest-irc 20.5.0" in offer.arguments[0]
    agent.say("Support", "accept")
    connected = agent.wait(lambda e: e.type == "privnotice" and "talking with c-" in e.arguments[0])
    alias = connected.arguments[0].split("talking with ")[1].split()[0]
    customer.wait_privmsg("You are now talking with Robin", source="Support")
    agent.say("Support", "Hello Dana, Robin here")
    customer.wait_privmsg("^<Robin> Hello Dana, Robin here$", source="Support")
    customer.say("Support", "my bill")
    agent.wait_privmsg(rf"^<{alias}> my bill$", source="Support")
    agent.say("Support", "end")
    customer.wait_privmsg("The conversation has ended", source="Support")
    assert_unseen(customer.raw_text(), "anna", fold_case=True)
    customer.close()
    agent.close()


def test_customer_on_the_network_reaches_a_jsonim_agent(network):
    _, ngircd, gateway = network
    agent = gateway.connect("jsonim agent")
    hello_agent(agent, "bert", PASSWORD)
    set_presence(agent, "available")
    customer = LibClient(ngircd.port, "erin", timeout=SLOW)
    customer.wait(lambda e: e.type == "welcome")
    interview(customer, "Erin")
    offer = agent.expect("offer", SLOW)
    assert offer["customer"]["protocol"] == "irc"
    agent.send({"type": "accept", "offer": offer["offer"]})
    conversation = agent.expect("connected", SLOW)["conversation"]
    customer.wait_privmsg("You are now talking with Sam")
    agent.send({"type": "message", "conversation": conversation, "text": "Hi Erin", "id": "m1"})
    customer.wait_privmsg("^<Sam> Hi Erin$")
    customer.say("Support", "thanks")
    assert agent.expect("message", SLOW, conversation=conversation)["text"] == "thanks"
    customer.close()
    agent.expect("ended", SLOW, conversation=conversation)
    agent.close()


def test_bot_reconnects_and_rejoins_after_the_server_restarts(network):
    root, ngircd, gateway = network
    port = ngircd.port
    mark = len(gateway.lines)
    ngircd.stop()
    gateway.wait_for_log("IRC bot: disconnected", harness.START_TIMEOUT, mark)
    again = Ngircd(root / "ngircd-again", port=port)
    try:
        gateway.wait_for_log(BOT_UP, harness.START_TIMEOUT, mark)
        customer = LibClient(port, "fred", timeout=SLOW)
        customer.wait(lambda e: e.type == "welcome")
        interview(customer, "Fred")
        customer.wait_privmsg("You are number 1 in the queue", source="Support")
        customer.close()
    finally:
        again.stop()


def _bot_config(root, port: int, extra: str):
    config = write_config(
        root,
        listeners=[],
        irc=f"""
[irc.bot]
enabled = true
port = {port}
reconnect_initial_s = 0.2
reconnect_max_s = 1
{extra}
""",
    )
    return config


def test_bot_over_tls_verifies_the_server_name(tmp_path):
    key, cert = self_signed(tmp_path)
    ngircd = Ngircd(tmp_path / "ngircd", tls=(key, cert))
    try:
        good = _bot_config(
            tmp_path / "good", ngircd.tls_port, f'host = "localhost"\nca_file = "{cert}"'
        )
        gateway = harness.start_gateway(tmp_path / "good" / "cwd", good, "tls-bot")
        try:
            gateway.wait_for_log(r"IRC bot: on localhost as Support", harness.START_TIMEOUT)
        finally:
            gateway.stop()
        # The certificate names localhost, not 127.0.0.1: no connection, only retries.
        bad = _bot_config(
            tmp_path / "bad", ngircd.tls_port, f'host = "127.0.0.1"\nca_file = "{cert}"'
        )
        gateway = harness.start_gateway(tmp_path / "bad" / "cwd", bad, "tls-bot-mismatch")
        try:
            gateway.wait_for_log(
                r"IRC bot: connection lost: .*(VerificationError|Mismatch|certificate)", 20
            )
            assert "IRC bot: on " not in gateway.log()
        finally:
            gateway.stop()
    finally:
        ngircd.stop()
