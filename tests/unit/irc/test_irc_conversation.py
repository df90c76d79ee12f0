"""An IRC customer and an IRC agent through the real core (unit, no sockets)."""

from __future__ import annotations

from core_helpers import FakeParty
from irc_helpers import server

from gateway.core import events as ev


def talking_with(lines):
    """The customer nick an agent's "now talking with" notice names."""
    found = [line for line in lines if "You are now talking with" in line]
    assert found, lines
    return found[-1].split("talking with ")[1].split()[0]


def interview(srv, nick="dana"):
    customer = srv.register(nick)
    customer.send("PRIVMSG Support :hello?")
    lines = customer.lines()
    assert lines[0] == f":Support!service@gateway.invalid PRIVMSG {nick} :\x01VERSION\x01"
    assert lines[-1] == f":Support!service@gateway.invalid PRIVMSG {nick} :What is your name?"
    customer.send("PRIVMSG Support :Dana", "PRIVMSG Support :1")
    return customer


def test_customer_reaches_an_irc_agent_and_never_sees_its_account():
    srv = server()
    agent = srv.agent("anna", nick="anna_real")
    customer = interview(srv)
    assert "You are number 1 in the queue" in customer.lines()[-1]
    offer = agent.lines()[-1]
    assert "Offer o-" in offer and "c-" in offer and "topic billing" in offer
    agent.send("ACCEPT")  # a bare /accept, as a client sends an unknown command
    alias = talking_with(agent.lines())
    assert customer.lines() == [
        ":Support!service@gateway.invalid PRIVMSG dana :You are now talking with Anna_A."
    ]
    agent.send(f"PRIVMSG {alias} :Hello Dana, how can I help?")
    assert customer.lines() == [
        ":Anna_A!agent@gateway.invalid PRIVMSG dana :Hello Dana, how can I help?"
    ]
    customer.send("PRIVMSG Anna_A :My bill is wrong")
    expected = f":{alias}!customer@gateway.invalid PRIVMSG anna_real :My bill is wrong"
    assert agent.lines() == [expected]
    customer.send("WHOIS Anna_A")
    whois = customer.lines()
    assert whois[0] == ":irc.test 311 dana Anna_A agent gateway.invalid * Agent"
    agent.send("PRIVMSG Support :/end")
    assert "ended" in agent.lines()[-1]
    assert "The conversation has ended (the agent ended it)" in customer.lines()[-1]
    customer.send("PRIVMSG Support :one more thing")
    assert customer.lines()[-1].endswith("PRIVMSG dana :What is your name?")
    assert len(srv.harness.gateway.conversations) == 1
    assert b"anna_real" not in customer.seen.lower()
    assert b"anna" not in customer.seen.lower().replace(b"anna_a", b"")
    assert b"192.0.2.7" not in customer.seen


def test_ctcp_version_reply_identifies_the_client():
    srv = server()
    customer = srv.register()
    customer.send("PRIVMSG Support :hi")
    customer.send("NOTICE Support :\x01VERSION HexChat 2.16.1 / Linux 6.1\x01")
    conv = next(iter(srv.harness.gateway.conversations.values()))
    assert conv.client == ev.ClientInfo("HexChat", "2.16.1")


def test_late_ctcp_version_reply_counts_until_the_offer_goes_out():
    # irssi queues its CTCP replies: 5 s and more are common.
    srv = server(ctcp_version_timeout_s=2)
    customer = srv.register()
    customer.send("PRIVMSG Support :hi")
    srv.clock.advance(13)
    customer.send("NOTICE Support :\x01VERSION irssi v1.4.3\x01")
    conv = next(iter(srv.harness.gateway.conversations.values()))
    assert conv.client == ev.ClientInfo("irssi", "1.4.3")


def test_a_version_reply_after_the_offer_changes_nothing():
    srv = server(ctcp_version_timeout_s=2)
    agent = srv.agent("anna")
    customer = interview(srv)
    assert "Offer o-" in agent.lines()[-1]
    customer.send("NOTICE Support :\x01VERSION irssi v1.4.3\x01")
    conv = next(iter(srv.harness.gateway.conversations.values()))
    assert conv.client == ev.ClientInfo()


def test_customer_with_a_non_irc_agent_and_a_new_conversation_after_the_end():
    srv = server()
    party = FakeParty()
    results = []
    srv.harness.gateway.agent_login(
        party, protocol="jsonim", name="bob", password="secret", client=ev.ClientInfo()
    ).addBoth(results.append)
    agent = results[0]
    agent.set_presence("available")
    customer = interview(srv)
    offer = party.last(ev.Offer)
    agent.accept(offer.offer)
    customer.lines()
    agent.say(offer.conversation, "line one\nline two")
    assert customer.lines() == [
        ":Bob_A!agent@gateway.invalid PRIVMSG dana :line one",
        ":Bob_A!agent@gateway.invalid PRIVMSG dana :line two",
    ]
    customer.send("PRIVMSG Support :thanks!")
    assert party.last(ev.Message).text == "thanks!"
    customer.send("QUIT")
    customer.lose()
    assert party.last(ev.Ended).reason == "customer"


def test_typing_with_message_tags():
    srv = server()
    agent = srv.agent()
    customer = srv.connect()
    customer.send("CAP LS 302", "CAP REQ :message-tags", "NICK dana", "USER d 0 * :D", "CAP END")
    customer.send("PRIVMSG Support :hi", "PRIVMSG Support :Dana", "PRIVMSG Support :1")
    agent.send("PRIVMSG Support :accept")
    alias = talking_with(agent.lines())
    customer.lines()
    customer.send("@+typing=active TAGMSG Anna_A")
    assert agent.lines() == [f"@+typing=active :{alias}!customer@gateway.invalid TAGMSG anna"]
    agent.send(f"@+typing=done TAGMSG {alias}")
    assert customer.lines() == ["@+typing=paused :Anna_A!agent@gateway.invalid TAGMSG dana"]


def test_agent_commands_errors_and_away():
    srv = server()
    agent = srv.agent()
    agent.send("PRIVMSG Support :accept", "PRIVMSG Support :transfer tech", "PRIVMSG c-ffff :hi")
    assert agent.lines() == [
        ":Support!service@gateway.invalid NOTICE anna :bad_request: no offer to accept",
        ":Support!service@gateway.invalid NOTICE anna :bad_request: name the customer (its nick) "
        "first",
        ":irc.test 401 anna c-ffff :No such nick/channel",
    ]
    agent.send("AWAY :lunch")
    assert srv.harness.directory.get("anna").status == "away"
    agent.send("AWAY")
    assert srv.harness.directory.get("anna").status == "available"


def test_hostile_customer_ends_only_its_own_connection():
    srv = server()
    agent = srv.agent()
    good = interview(srv, "dana")
    agent.send("PRIVMSG Support :accept")
    alias = talking_with(agent.lines())
    bad = interview(srv, "mallory")
    bad.send(b"PRIVMSG Support :\xff\xfe\x00\r\n")
    assert bad.closed
    bad.lose()
    good.lines()
    good.send("PRIVMSG Support :still here")
    assert agent.lines()[-1] == f":{alias}!customer@gateway.invalid PRIVMSG anna :still here"


def test_a_gateway_notice_reaches_the_agent_from_the_service():
    srv = server()
    agent = srv.agent()
    agent.protocol.deliver(ev.Notice("Queue billing is closing in 10 minutes"))
    assert agent.lines() == [
        ":Support!service@gateway.invalid NOTICE anna :Queue billing is closing in 10 minutes"
    ]
