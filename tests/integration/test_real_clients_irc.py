"""What customers and agents on real IRC clients ran into (issue "Real clients"): on the
gateway's own IRC listener with the ``irc`` library and raw lines, and in bot mode on a
real ngircd. One gateway serves both, with a resume grace period; a JSON-IM agent
takes the conversations.

ngircd has no services, so bot mode trusts agents' nicks here
(``agent_identity = "nick"``): acceptable only on a private network like this one.
"""

from __future__ import annotations

import re
import socket
import ssl

import harness
import pytest
from certs import self_signed
from irc_peers import DEFAULT_TIMEOUT, LibClient, Ngircd, RawIrc, irc_ports, write_config
from jsonim_client import hello_agent

PASSWORD = "anna-Secret-1"
GRACE_S = 60
# ngircd reads about three lines a second from each client, the bot included.
SLOW = 30.0
BOT_UP = r"IRC bot: on 127\.0\.0\.1 as Support, joining #support"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("irc-real")
    ngircd = Ngircd(root / "ngircd")
    key, cert = self_signed(root)
    listeners = [
        "tcp:0:interface=127.0.0.1",
        f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
    ]
    irc = f"""ctcp_version_timeout_s = 0.5
lines_per_second = 20.0
line_burst = 40

[irc.bot]
enabled = true
host = "127.0.0.1"
port = {ngircd.port}
tls = false
channel = "#support"
agent_identity = "nick"
lines_per_second = 5.0
line_burst = 20
presence_poll_s = 0.5
"""
    config = write_config(root, listeners=listeners, irc=irc, resume_grace_s=GRACE_S)
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    harness.add_agent(config, "bert", PASSWORD, "Bert")
    gateway = harness.start_gateway(root / "cwd", config, "irc-real-gateway")
    try:
        ports = irc_ports(gateway, 2)
        gateway.wait_for_log(BOT_UP, harness.START_TIMEOUT)
        context = ssl.create_default_context(cafile=str(cert))
        yield gateway, ports, context, ngircd
    finally:
        gateway.stop()
        ngircd.stop()


def jsonim_agent(gateway):
    agent = gateway.connect("jsonim agent")
    hello_agent(agent, "anna", PASSWORD)
    return agent


def raw_interview(client: RawIrc, opening: str, name: str) -> None:
    client.send(f"PRIVMSG Support :{opening}")
    client.expect(r"PRIVMSG \S+ :What is your name\?")
    client.send(f"PRIVMSG Support :{name}")
    client.expect(r"PRIVMSG \S+ :What can we help you with\?")
    client.send("PRIVMSG Support :1")
    client.expect(r"in the queue")


def accept(agent) -> str:
    offer = agent.expect("offer", timeout=SLOW)
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    return offer["conversation"]


def lines_after(client: RawIrc, pattern: str, count: int) -> list[str]:
    """The PRIVMSG/NOTICE texts of the ``count`` lines from the one matching ``pattern``."""
    first = client.expect(pattern).string
    out = [first]
    while len(out) < count:
        out.append(client.expect(r" (PRIVMSG|NOTICE) ").string)
    return out


# -- the direct listener ---------------------------------------------------------------


def test_listener_keeps_the_first_line(site):
    gateway, ports, _, _ = site
    agent = jsonim_agent(gateway)
    customer = LibClient(ports["tcp"], "dana")
    customer.wait(lambda e: e.type == "welcome")
    customer.say("Support", "hello, I have a billing question")
    customer.wait_privmsg("What is your name", source="Support")
    customer.say("Support", "Dana")
    customer.wait_privmsg("What can we help you with", source="Support")
    customer.say("Support", "billing")
    offer = agent.expect("offer", timeout=SLOW)
    agent.send({"type": "accept", "offer": offer["offer"]})
    connected = agent.expect("connected", conversation=offer["conversation"])
    assert connected["history"][0]["text"] == "hello, I have a billing question"
    assert offer["customer"]["identity"]["name"] == "Dana"
    assert "topic" not in offer["customer"]["identity"]
    agent.send({"type": "end", "conversation": offer["conversation"]})
    customer.close()
    agent.close()


def test_listener_quit_ends_at_once_and_a_lost_customer_is_not_offered(site):
    gateway, ports, _, _ = site
    leaving = RawIrc(ports["tcp"], name="fred")
    leaving.register("fred")
    raw_interview(leaving, "hi", "Fred")
    mark = len(gateway.lines)
    leaving.send("QUIT :bye")
    gateway.wait_for_log(r"conversation \S+ ended \(customer\) while queued", 10, mark)
    lost = RawIrc(ports["tcp"], name="gus")
    lost.register("gus")
    raw_interview(lost, "hi", "Gus")
    mark = len(gateway.lines)
    lost.close()
    gateway.wait_for_log(r"conversation \S+ held for 60(\.0)?s", 10, mark)
    agent = jsonim_agent(gateway)
    agent.sync()
    assert agent.frames_of("offer") == []
    agent.close()


def test_listener_resume_gives_the_agents_lines_from_its_alias_after_the_notice(site):
    gateway, ports, _, _ = site
    agent = jsonim_agent(gateway)
    customer = RawIrc(ports["tcp"], name="erin")
    customer.register("erin")
    raw_interview(customer, "hello", "Erin")
    conversation = accept(agent)
    customer.expect(r"PRIVMSG erin :You are now talking with Anna\.")
    customer.close()
    agent.expect("message", **{"from": "system"})  # "lost the connection"
    agent.send({"type": "message", "conversation": conversation, "text": "Still there?", "id": "s"})
    agent.expect("ack", id="s")
    again = RawIrc(ports["tcp"], name="erin again")
    again.register("erin")
    again.send("PRIVMSG Support :sorry, I was cut off")
    said = lines_after(again, r"PRIVMSG erin :Welcome back", 3)
    assert said[1].endswith("PRIVMSG erin :You are now talking with Anna."), said
    assert said[2].startswith(":Anna!agent@") and said[2].endswith(":Still there?"), said
    got = agent.expect("message", conversation=conversation, **{"from": "customer"})
    assert got["text"] == "sorry, I was cut off"
    # The alias is the agent's: the customer cannot take it as its nick.
    again.send("NICK Anna")
    again.expect(r" 433 erin Anna :Nickname is reserved")
    agent.send({"type": "end", "conversation": conversation})
    again.close()
    agent.close()


def test_listener_takes_a_late_ctcp_version_reply_until_the_offer(site):
    gateway, ports, _, _ = site
    customer = RawIrc(ports["tcp"], name="hana")
    customer.register("hana")
    mark = len(gateway.lines)
    customer.send("PRIVMSG Support :hello")
    customer.expect("\x01VERSION\x01")
    # irssi answers CTCP behind its own commands: after the wait is over.
    gateway.wait_for_log(r"no CTCP VERSION reply in time", 10, mark)
    customer.send("NOTICE Support :\x01VERSION irssi v1.4.3 - running on Linux x86_64\x01")
    customer.send("PRIVMSG Support :Hana", "PRIVMSG Support :1")
    customer.expect(r"in the queue")
    agent = jsonim_agent(gateway)
    offer = agent.expect("offer", timeout=SLOW)
    assert offer["customer"]["client"] == {"name": "irssi", "version": "1.4.3"}
    agent.send({"type": "reject", "offer": offer["offer"]})
    customer.send("QUIT")
    agent.close()


def test_listener_refuses_to_an_agent_what_a_customer_cannot_be_sent(site):
    gateway, ports, _, _ = site
    agent = jsonim_agent(gateway)
    customer = RawIrc(ports["tcp"], name="ivan")
    customer.register("ivan")
    raw_interview(customer, "hello", "Ivan")
    conversation = accept(agent)
    long_text = "\n".join(f"line {i} " + "x" * 300 for i in range(30))
    agent.send({"type": "message", "conversation": conversation, "text": long_text, "id": "l"})
    error = agent.expect("error", id="l")
    assert error["code"] == "bad_request"
    assert "too long for the recipient (more than 20 IRC lines)" in error["text"], error
    agent.send({"type": "end", "conversation": conversation})
    customer.send("QUIT")
    agent.close()


def test_listener_plaintext_agent_logins_get_one_clear_error(site):
    _, ports, context, _ = site
    plain = RawIrc(ports["tcp"], name="plain")
    plain.send("CAP LS 302")
    caps = plain.expect(r" CAP \* LS :?(.*)$").group(1).split()
    assert "sasl" not in {c.split("=")[0] for c in caps}, caps
    plain.send("AUTHENTICATE PLAIN")
    plain.expect(r" 904 \* :Agents log in over TLS only")
    plain.expect(r"^ERROR :Closing Link: \* \(Agents log in over TLS only")
    assert plain.closed()
    by_pass = RawIrc(ports["tcp"], name="pass")
    by_pass.send("PASS anna:anna-Secret-1", "NICK anna", "USER anna 0 * :Anna")
    by_pass.expect(r"^ERROR :Closing Link: anna \(Agents log in over TLS only")
    assert by_pass.closed()
    assert b" 464 " not in by_pass.raw() and b"Password incorrect" not in by_pass.raw()
    # Over TLS, an agent's commands may start with "!" (or "/", or nothing).
    agent = RawIrc(ports["ssl"], name="bert", tls=context)
    agent.register("bert", sasl=("bert", PASSWORD))
    agent.send("PRIVMSG Support :!status")
    agent.expect(r"NOTICE bert :You are available; conversations: none; offers: none\.")
    agent.send("QUIT")


def test_listener_conformance_ordinary_clients_expect(site):
    _, ports, _, _ = site
    others = []
    for i in range(3):
        other = RawIrc(ports["tcp"], name=f"other{i}")
        other.register(f"other{i}")
        others.append(other)
    client = RawIrc(ports["tcp"], name="conf")
    client.send("CAP LS 302", "NICK conf", "USER conf 0 * :")
    client.expect(r" 461 conf USER :Not enough parameters")
    client.send("CAP REQ :multi-prefix userhost-in-names", "USER conf 0 * :Conformance")
    client.expect(r" CAP \S+ ACK :multi-prefix userhost-in-names")
    client.send("CAP END")
    client.expect(r" 001 conf ")
    client.expect(r" (376|422) ")
    isupport = [line for line in client.lines if b" 005 " in line]
    for line in isupport:
        params = line.decode().split(" :", 1)[0].split()[2:]
        assert len(params) + 1 <= 15, line
    client.send("VERSION", "TIME", "INFO", "ADMIN", "LUSERS")
    client.expect(r" 351 conf ")
    client.expect(r" 391 conf irc\.itest :")
    client.expect(r" 374 conf :End of INFO list")
    client.expect(r" 259 conf :")
    lusers = client.expect(r" 251 conf :(.*)").group(1)
    assert lusers == "There are 2 users and 0 invisible on 1 servers", lusers
    client.send("JOIN #support")
    names = client.expect(r" 353 conf = #support :(.*)$").group(1).split()
    assert names == ["@Support!service@gateway.invalid", "conf!conf@gateway.invalid"], names
    client.send("QUIT")
    for other in others:
        other.send("QUIT")


def test_listener_connections_over_the_per_address_cap_get_an_error_line(site):
    _, ports, _, _ = site
    source = "127.0.0.77"  # an address of its own: the cap counts per address
    held = []
    try:
        for _ in range(50):
            sock = socket.create_connection(
                ("127.0.0.1", ports["tcp"]), timeout=DEFAULT_TIMEOUT, source_address=(source, 0)
            )
            held.append(sock)
        extra = socket.create_connection(
            ("127.0.0.1", ports["tcp"]), timeout=DEFAULT_TIMEOUT, source_address=(source, 0)
        )
        data = b""
        while chunk := extra.recv(4096):
            data += chunk
        extra.close()
        assert data == b"ERROR :Closing Link: * (50 connections open from this address)\r\n"
    finally:
        for sock in held:
            sock.close()


# -- bot mode on ngircd ------------------------------------------------------------------


def bot_customer(ngircd: Ngircd, nick: str, user: str | None = None) -> RawIrc:
    client = RawIrc(ngircd.port, name=nick)
    client.send(f"NICK {nick}", f"USER {user or nick} 0 * :{nick}")
    client.expect(r" (376|422) ")
    client.send("JOIN #support")
    client.expect(r" 366 ")
    return client


def bot_interview(client: RawIrc, opening: str, name: str) -> None:
    client.send(f"PRIVMSG Support :{opening}")
    client.expect(r"PRIVMSG \S+ :What is your name", SLOW)
    client.send(f"PRIVMSG Support :{name}")
    client.expect(r"PRIVMSG \S+ :What can we help you with", SLOW)
    client.send("PRIVMSG Support :billing")
    client.expect(r"in the queue", SLOW)


def test_bot_keeps_the_first_line_and_quit_ends_at_once(site):
    gateway, _, _, ngircd = site
    agent = jsonim_agent(gateway)
    customer = bot_customer(ngircd, "kai")
    bot_interview(customer, "hello, I have a billing question", "Kai")
    offer = agent.expect("offer", timeout=SLOW)
    agent.send({"type": "accept", "offer": offer["offer"]})
    connected = agent.expect("connected", conversation=offer["conversation"])
    assert connected["history"][0]["text"] == "hello, I have a billing question"
    customer.send("QUIT :thanks, bye")
    ended = agent.expect("ended", SLOW, conversation=offer["conversation"])
    assert ended["reason"] == "customer"
    assert [f for f in agent.frames_of("message") if "lost the connection" in f["text"]] == []
    agent.close()


def test_bot_resumes_on_nick_user_and_host_only_and_in_order(site):
    gateway, _, _, ngircd = site
    agent = jsonim_agent(gateway)
    customer = bot_customer(ngircd, "lou")
    bot_interview(customer, "hello", "Lou")
    conversation = accept(agent)
    customer.expect(r"You are now talking with Anna", SLOW)
    mark = len(gateway.lines)
    customer.close()  # the connection is lost: ngircd says "Client closed connection"
    gateway.wait_for_log(r"conversation \S+ held for 60(\.0)?s", SLOW, mark)
    agent.send({"type": "message", "conversation": conversation, "text": "Still there?", "id": "s"})
    agent.expect("ack", id="s")
    # Someone else takes the nick (another user name): a stranger, not the customer.
    impostor = bot_customer(ngircd, "lou", user="mallory")
    impostor.send("PRIVMSG Support :hi there")
    impostor.expect(r"PRIVMSG lou :What is your name", SLOW)
    assert b"Still there?" not in impostor.raw() and b"Welcome back" not in impostor.raw()
    impostor.send("QUIT :wrong place")
    gateway.wait_for_log(r"ended \(customer\) while interview", SLOW, mark)
    # The customer, back with its nick and user name, takes its conversation back.
    again = bot_customer(ngircd, "lou")
    again.send("PRIVMSG Support :sorry, cut off")
    said = lines_after(again, r"PRIVMSG lou :Welcome back", 3)
    assert said[1].endswith("PRIVMSG lou :You are now talking with Anna."), said
    assert said[2].endswith("PRIVMSG lou :<Anna> Still there?"), said
    got = agent.expect("message", SLOW, conversation=conversation, **{"from": "customer"})
    assert got["text"] == "sorry, cut off"
    agent.send({"type": "end", "conversation": conversation})
    again.send("QUIT")
    agent.close()
    assert re.search(r"Welcome back", again.raw().decode())
