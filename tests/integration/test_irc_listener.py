"""The direct IRC listener over real sockets: registration as the RFCs say, a customer on
the ``irc`` library reaching a JSON-IM agent and an IRC agent (SASL over TLS), and hostile
lines that end only their own connection.
"""

from __future__ import annotations

import ssl

import harness
import pytest
from certs import self_signed
from irc_peers import LibClient, RawIrc, irc_ports, write_config
from jsonim_client import hello_agent, set_presence
from leaks import assert_unseen

PASSWORD = "anna-Secret-1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("irc")
    key, cert = self_signed(root)
    listeners = [
        "tcp:0:interface=127.0.0.1",
        f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
    ]
    config = write_config(
        root,
        listeners=listeners,
        irc="lines_per_second = 5.0\nline_burst = 20\nmax_lagged_lines = 10\n",
    )
    # The account names must never reach a customer; the display names are the aliases.
    harness.add_agent(config, "anna", PASSWORD, "Robin")
    harness.add_agent(config, "bert", PASSWORD, "Sam")
    gateway = harness.start_gateway(root / "cwd", config, "irc-gateway")
    ports = irc_ports(gateway, 2)
    context = ssl.create_default_context(cafile=str(cert))
    yield gateway, ports, context
    gateway.stop()


def test_registration_ping_and_quit_as_the_rfcs_say(site):
    _, ports, _ = site
    client = RawIrc(ports["tcp"], name="raw")
    client.send("NICK rfc", "USER rfc 0 * :RFC Tester")
    assert client.expect(r"^:irc\.itest 001 rfc :Welcome to the imgateway IRC Network rfc!")
    for numeric in ("002", "003", "004", "005", "251", "255", "375", "372", "376"):
        client.expect(rf"^:irc\.itest {numeric} rfc ")
    client.send("PING :tok-1")
    client.expect(r"^:irc\.itest PONG irc\.itest :tok-1$")
    client.send("PRIVMSG nobody :hi", "BOGUS")
    client.expect(r"^:irc\.itest 401 rfc nobody :No such nick/channel$")
    client.expect(r"^:irc\.itest 421 rfc BOGUS :Unknown command$")
    client.send("QUIT :done")
    client.expect(r"^ERROR :Closing Link: rfc \(Quit: done\)$")
    assert client.closed()


def test_nick_collision_and_a_line_one_byte_at_a_time(site):
    _, ports, _ = site
    first = RawIrc(ports["tcp"], name="first")
    first.register("samenick")
    second = RawIrc(ports["tcp"], name="second")
    for byte in b"NICK samenick\r\n":
        second.send(bytes([byte]))
    second.expect(r"^:irc\.itest 433 \* samenick :Nickname is already in use$")
    second.send("NICK othernick", "USER o 0 * :O")
    second.expect(r" 001 othernick ")
    first.close()
    second.close()


def test_irc_customer_reaches_a_jsonim_agent(site):
    gateway, ports, _ = site
    agent = gateway.connect("jsonim agent")
    hello_agent(agent, "anna", PASSWORD)
    set_presence(agent, "available")
    customer = LibClient(ports["tcp"], "dana", version="itest-irc 20.5.0")
    customer.wait(lambda e: e.type == "welcome")
    customer.say("Support", "hello, I need help")
    customer.wait_privmsg("What is your name", source="Support")
    customer.say("Support", "Dana")
    customer.wait_privmsg("What can we help you with", source="Support")
    customer.say("Support", "1")
    offer = agent.expect("offer")
    assert offer["customer"]["protocol"] == "irc"
    assert offer["customer"]["client"] == {"name": "itest-irc", "version": "20.5.0"}
    agent.send({"type": "accept", "offer": offer["offer"]})
    conversation = agent.expect("connected")["conversation"]
    customer.wait_privmsg("You are now talking with Robin", source="Support")
    agent.send({"type": "message", "conversation": conversation, "text": "Hi Dana!", "id": "a1"})
    event = customer.wait_privmsg("^Hi Dana!$", source="Robin")
    assert event.source == "Robin!agent@gateway.invalid"
    customer.say("Robin", "my invoice is wrong")
    assert agent.expect("message", conversation=conversation)["text"] == "my invoice is wrong"
    agent.send({"type": "end", "conversation": conversation})
    customer.wait_privmsg("The conversation has ended", source="Support")
    assert_unseen(customer.raw_text(), "anna", "127.0.0.1", fold_case=True)
    customer.close()
    agent.close()


def test_irc_agent_over_tls_with_sasl_serves_an_irc_customer(site):
    _, ports, context = site
    agent = RawIrc(ports["ssl"], name="irc agent", tls=context)
    agent.register("bert_desk", caps="sasl message-tags", sasl=("bert", PASSWORD))
    customer = LibClient(ports["tcp"], "erin")
    customer.wait(lambda e: e.type == "welcome")
    customer.say("Support", "hi")
    customer.wait_privmsg("What is your name")
    customer.say("Support", "Erin")
    customer.wait_privmsg("What can we help you with")
    customer.say("Support", "tech")
    match = agent.expect(r"NOTICE bert_desk :Offer (o-\S+): (c-[0-9a-f]+) \(irc, itest-irc")
    offer, alias = match.group(1), match.group(2)
    agent.send(f"PRIVMSG Support :/accept {offer}")
    agent.expect(rf"You are now talking with {alias}")
    customer.wait_privmsg("You are now talking with Sam")
    agent.send(f"PRIVMSG {alias} :Hello from Sam")
    customer.wait_privmsg("^Hello from Sam$", source="Sam")
    customer.say("Sam", "thanks Sam")
    agent.expect(rf"^:{alias}!customer@gateway\.invalid PRIVMSG bert_desk :thanks Sam$")
    assert_unseen(customer.raw_text(), "bert", fold_case=True)
    customer.close()
    agent.expect(r"Conversation with c-[0-9a-f]+ ended")
    agent.close()


def test_hostile_lines_end_only_their_connection(site):
    gateway, ports, _ = site
    agent = gateway.connect("jsonim agent 2")
    hello_agent(agent, "anna", PASSWORD)
    set_presence(agent, "available")
    good = RawIrc(ports["tcp"], name="good customer")
    good.register("goodone")
    good.send("PRIVMSG Support :hi")
    good.expect("What is your name")
    good.send("PRIVMSG Support :Good", "PRIVMSG Support :billing")
    offer = agent.expect("offer")
    agent.send({"type": "accept", "offer": offer["offer"]})
    conversation = agent.expect("connected")["conversation"]

    overlong = RawIrc(ports["tcp"], name="overlong")
    overlong.register("longline")
    overlong.send(b"PRIVMSG Support :" + b"x" * 5000 + b"\r\n", "PING :after")
    overlong.expect(r" 417 longline :Input line was too long")
    overlong.expect(r"PONG irc\.itest :after")

    nul = RawIrc(ports["tcp"], name="nul")
    nul.register("nulsender")
    nul.send(b"PRIVMSG Support :a\x00b\r\n")
    nul.expect(r"^ERROR :Closing Link: nulsender \(NUL byte in line\)")
    assert nul.closed()

    latin = RawIrc(ports["tcp"], name="latin-1")
    latin.send(b"NICK latin\r\nUSER latin 0 * :Ren\xe9e\r\n")
    latin.expect(r" 001 latin ")
    latin.send(b"PING :\xff\xfe\r\n")
    latin.expect(r"PONG irc\.itest :")

    flood = RawIrc(ports["tcp"], name="flood")
    flood.register("flooder")
    flood.send(*[f"PRIVMSG nobody :{i}" for i in range(200)])
    flood.expect(r"^ERROR :Closing Link: flooder \(Excess Flood\)")
    assert flood.closed()

    good.send("PRIVMSG Support :still talking")
    assert agent.expect("message", conversation=conversation)["text"] == "still talking"
    agent.send({"type": "message", "conversation": conversation, "text": "still here", "id": "x"})
    good.expect(r"PRIVMSG goodone :still here$")
    assert b"anna" not in good.raw().lower()
    for client in (overlong, latin, good):
        client.close()
    agent.close()


def test_server_pings_and_registration_timeout(tmp_path):
    config = write_config(
        tmp_path,
        listeners=["tcp:0:interface=127.0.0.1"],
        irc="registration_timeout_s = 1\nping_interval_s = 1\nping_timeout_s = 1\n",
    )
    gateway = harness.start_gateway(tmp_path / "cwd", config, "irc-timers")
    try:
        port = irc_ports(gateway, 1)["tcp"]
        silent = RawIrc(port, name="silent")
        silent.expect(r"^ERROR :Closing Link: \* \(Registration timed out\)$")
        assert silent.closed()
        client = RawIrc(port, name="pinged")
        client.register("pinged")
        client.expect(r"^PING :irc\.itest$")
        client.send("PONG :irc.itest")
        client.expect(r"^PING :irc\.itest$")
        client.expect(r"^ERROR :Closing Link: pinged \(Ping timeout: 1 seconds\)$")
        assert client.closed()
    finally:
        gateway.stop()
