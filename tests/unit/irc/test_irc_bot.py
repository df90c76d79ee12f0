"""Bot mode on a StringTransport: registration, nick collisions, PING, pacing, and
customers and agents writing to the bot, through the real core."""

from __future__ import annotations

import attrs
from core_helpers import make_harness
from twisted.internet.testing import MemoryReactorClock, StringTransport

from gateway.store.records import AgentRecord
from protocols.irc.botclient import BotFactory, make_service
from protocols.irc.message import parse
from protocols.irc.settings import BotSettings, IrcSettings


def bot(**changes):
    harness = make_harness(agents=())
    harness.store.add_agent(
        AgentRecord(
            name="anna",
            display_name="Robin",
            password_hash="hash:secret",
            capacity=2,
            addresses=("irc:anna",),
        )
    )
    options = {"enabled": True, "host": "irc.example", "agent_identity": "nick"}
    options.update(lines_per_second=100.0, line_burst=100)
    options.update(changes)
    settings = IrcSettings(bot=BotSettings(**options))
    factory = BotFactory(harness.gateway, settings, clock=harness.clock)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return harness, factory, protocol, transport


def lines(transport):
    data = transport.value()
    transport.clear()
    return data.decode().split("\r\n")[:-1] if data else []


def feed(protocol, *lines_in):
    protocol.dataReceived("".join(line + "\r\n" for line in lines_in).encode())


def registered(**changes):
    harness, factory, protocol, transport = bot(**changes)
    feed(protocol, ":srv CAP * LS :multi-prefix", ":srv 001 Support :Welcome")
    lines(transport)
    return harness, factory, protocol, transport


def test_registration_cap_nick_user_then_join():
    _harness, _factory, protocol, transport = bot()
    assert lines(transport) == ["CAP LS 302", "NICK Support", "USER support 0 * :Customer support"]
    feed(protocol, ":srv CAP * LS :multi-prefix message-tags")
    assert lines(transport) == ["CAP REQ message-tags"]
    feed(protocol, ":srv CAP Support ACK :message-tags")
    assert lines(transport) == ["CAP END"]
    feed(protocol, ":srv 001 Support :Welcome")
    assert lines(transport) == ["JOIN #support"]


def test_sasl_plain_login():
    _harness, _factory, protocol, transport = bot(auth="sasl", password="pw", account="supportbot")
    lines(transport)
    feed(protocol, ":srv CAP * LS :sasl=PLAIN")
    assert lines(transport) == ["CAP REQ sasl"]
    feed(protocol, ":srv CAP * ACK :sasl", "AUTHENTICATE +")
    assert lines(transport) == [
        "AUTHENTICATE PLAIN",
        "AUTHENTICATE c3VwcG9ydGJvdABzdXBwb3J0Ym90AHB3",
    ]
    feed(protocol, ":srv 903 Support :SASL authentication successful")
    assert lines(transport) == ["CAP END"]


def test_nick_collision_then_reclaim():
    harness, _factory, protocol, transport = bot()
    lines(transport)
    feed(protocol, ":srv 433 * Support :Nickname is already in use")
    assert lines(transport) == ["NICK Support_"]
    feed(protocol, ":srv 001 Support_ :Welcome")
    assert lines(transport) == ["JOIN #support"]
    harness.clock.advance(60)
    assert lines(transport) == ["NICK Support"]
    feed(protocol, ":Support_!support@h NICK :Support")
    assert protocol.nick == "Support"


def test_ping_pong_and_keepalive():
    harness, _factory, protocol, transport = registered(ping_interval_s=30)
    feed(protocol, "PING :srv.example")
    assert lines(transport) == ["PONG :srv.example"]
    harness.clock.advance(30)
    assert lines(transport) == ["PING :imgateway"]
    harness.clock.advance(30)
    assert transport.disconnecting


def test_kick_rejoins():
    harness, _factory, protocol, transport = registered()
    feed(protocol, ":op!o@h KICK #support Support :out")
    harness.clock.advance(5)
    assert lines(transport) == ["JOIN #support"]


def test_lines_are_paced():
    harness, _factory, protocol, transport = registered(lines_per_second=1.0, line_burst=2)
    lines(transport)
    for i in range(4):
        protocol.send("PRIVMSG", "x", f"line {i}")
    assert len(lines(transport)) == 1  # the JOIN took one token already
    harness.clock.advance(1)
    assert len(lines(transport)) == 1
    harness.clock.advance(2)
    assert len(lines(transport)) == 2


def test_customer_and_agent_through_the_bot():
    _harness, _factory, protocol, transport = registered()
    feed(protocol, ":anna!a@corp PRIVMSG Support :status")
    out = [parse(line) for line in lines(transport)]
    assert all(m.params[0] == "anna" for m in out)
    assert any("You are available" in m.params[1] for m in out)
    feed(protocol, ":dana!d@home PRIVMSG Support :hello")
    out = lines(transport)
    assert out[0] == "PRIVMSG dana :\x01VERSION\x01"
    assert out[-1] == "PRIVMSG dana :What is your name?"
    feed(protocol, ":dana!d@home NOTICE Support :\x01VERSION WeeChat 4.0.2\x01")
    feed(protocol, ":dana!d@home PRIVMSG Support :Dana", ":dana!d@home PRIVMSG Support :1")
    out = lines(transport)
    offer = [line for line in out if line.startswith("NOTICE anna :Offer")]
    assert offer and "WeeChat 4.0.2" in offer[0]
    feed(protocol, ":anna!a@corp PRIVMSG Support :accept")
    out = lines(transport)
    assert "PRIVMSG dana :You are now talking with Robin." in out
    alias = next(line for line in out if "talking with c-" in line).split("with ")[1].split()[0]
    feed(protocol, ":anna!a@corp PRIVMSG Support :Hello Dana")
    assert lines(transport) == ["PRIVMSG dana :<Robin> Hello Dana"]
    feed(protocol, ":dana!d@home PRIVMSG Support :hi Robin")
    assert lines(transport) == [f"PRIVMSG anna :<{alias}> hi Robin"]
    feed(protocol, ":dana!d@home QUIT :bye")
    assert any("ended" in line for line in lines(transport))


def test_strangers_are_customers_in_account_mode_without_an_account():
    _harness, factory, protocol, _transport = registered(agent_identity="account")
    feed(protocol, ":anna!a@corp PRIVMSG Support :status")
    assert "anna" in factory.directory.customers


def test_link_lost_ends_every_session():
    harness, factory, protocol, _transport = registered()
    feed(protocol, ":dana!d@home PRIVMSG Support :hello")
    assert len(harness.gateway.conversations) == 1
    protocol.connectionLost(None)
    assert harness.gateway.conversations == {}
    assert factory.directory.customers == {}


def test_make_service_builds_a_client_service():
    harness = make_harness()
    settings = IrcSettings(bot=BotSettings(enabled=True, host="127.0.0.1", port=6667, tls=False))
    reactor = MemoryReactorClock()
    service = make_service(harness.gateway, settings, reactor)
    assert service.name == "irc-bot"
    service.startService()
    assert reactor.tcpClients[0][:2] == ("127.0.0.1", 6667)
    service.stopService()
    tls = attrs.evolve(settings, bot=attrs.evolve(settings.bot, tls=True))
    assert make_service(harness.gateway, tls, reactor) is not None


def test_customers_who_left_the_network_are_found_by_ison():
    harness, factory, protocol, transport = registered(presence_poll_s=10)
    feed(protocol, ":dana!d@home PRIVMSG Support :hello", ":erin!e@home PRIVMSG Support :hello")
    lines(transport)
    harness.clock.advance(10)
    assert lines(transport) == ["ISON dana erin"]
    feed(protocol, ":srv 303 Support :erin")
    assert list(factory.directory.customers) == ["erin"]
    assert len(harness.gateway.conversations) == 1
    feed(protocol, ":anna!a@corp PRIVMSG Support :status")
    assert harness.directory.get("anna") is not None
    harness.clock.advance(10)
    assert lines(transport)[-1] == "ISON anna erin"
    feed(protocol, ":srv 303 Support :erin")
    assert harness.directory.get("anna") is None


def test_links_dropped_before_registration_back_off():
    harness = make_harness()
    settings = IrcSettings(
        bot=BotSettings(
            enabled=True,
            host="127.0.0.1",
            port=6667,
            tls=False,
            reconnect_initial_s=1,
            reconnect_max_s=300,
        )
    )
    reactor = MemoryReactorClock()
    service = make_service(harness.gateway, settings, reactor)
    factory = service.bot_factory
    for _ in range(6):
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.connectionLost(None)
    assert factory.failures == 6
    assert 2.0**5 <= service.bot_retry_policy(1) <= 2.0**5 * 1.1


def test_reconnection_starts_at_the_initial_delay_with_proportional_jitter():
    harness = make_harness()
    settings = IrcSettings(
        bot=BotSettings(
            enabled=True,
            host="127.0.0.1",
            port=6667,
            tls=False,
            reconnect_initial_s=0.2,
            reconnect_max_s=1,
        )
    )
    policy = make_service(harness.gateway, settings, MemoryReactorClock()).bot_retry_policy
    for attempt, base in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (40, 1.0)]:
        assert base <= policy(attempt) <= base * 1.1, attempt


def test_nickserv_identify_after_welcome():
    _harness, _factory, protocol, transport = bot(auth="nickserv", password="pw")
    lines(transport)
    feed(protocol, ":srv CAP * LS :", ":srv 001 Support :Welcome")
    assert lines(transport) == [
        "CAP END",
        "PRIVMSG NickServ :IDENTIFY Support pw",
        "JOIN #support",
    ]


def test_agents_by_services_account_in_account_mode():
    harness, factory, protocol, transport = bot(agent_identity="account")
    feed(protocol, ":srv CAP * LS :account-tag", ":srv CAP Support ACK :account-tag")
    feed(protocol, ":srv 001 Support :Welcome")
    lines(transport)
    feed(protocol, "@account=anna :somenick!a@corp PRIVMSG Support :status")
    assert "somenick" in factory.directory.agents
    assert harness.directory.get("anna") is not None
    feed(protocol, "@account=mallory :anna!m@evil PRIVMSG Support :status")
    assert "anna" in factory.directory.customers


def test_bot_parties_provide_iparty():
    from zope.interface.verify import verifyObject

    from gateway.core.interfaces import IParty
    from protocols.irc.botparties import BotAgent, BotCustomer

    _harness, factory, _protocol, _transport = bot()
    assert verifyObject(IParty, BotCustomer(factory.directory, "dana"))
    assert verifyObject(IParty, BotAgent(factory.directory, "anna"))


def _held(harness):
    return [c for c in harness.gateway.conversations.values() if c.customer.gone]


def _with_grace(harness) -> None:
    # The holder reads its grace from the configuration it was made with.
    harness.gateway.holder._config = attrs.evolve(harness.gateway.config, resume_grace_s=60.0)


def test_a_quit_by_the_users_own_reason_ends_and_by_the_servers_holds():
    harness, _factory, protocol, _transport = registered()
    _with_grace(harness)
    feed(protocol, ":dana!d@home PRIVMSG Support :hello", ":erin!e@home PRIVMSG Support :hi")
    feed(protocol, ":gus!g@home PRIVMSG Support :hey")
    assert len(harness.gateway.conversations) == 3
    feed(protocol, ':dana!d@home QUIT :"bye now"')  # ngircd quotes a user's reason
    feed(protocol, ":erin!e@home QUIT :Ping timeout: 120 seconds")
    feed(protocol, ":gus!g@home QUIT :Killed (oper (spam))")
    remaining = list(harness.gateway.conversations.values())
    assert [c.customer.gone for c in remaining] == [True]
    assert remaining[0].customer.party.nick == "erin"


def test_someone_else_with_a_held_customers_nick_is_a_stranger():
    harness, _factory, protocol, transport = registered()
    _with_grace(harness)
    feed(protocol, ":dana!dana@home.example PRIVMSG Support :hello")
    (first,) = harness.gateway.conversations
    feed(protocol, ":dana!dana@home.example QUIT :Read error: Connection reset by peer")
    assert _held(harness)
    lines(transport)
    feed(protocol, ":dana!mallory@evil.example PRIVMSG Support :hi")
    out = lines(transport)
    assert "PRIVMSG dana :What is your name?" in out and not any("Welcome back" in x for x in out)
    assert len(harness.gateway.conversations) == 2
    # The customer, back as nick, user and host together, takes its conversation back
    # (the stranger holding the nick meanwhile is gone as far as the bot can tell).
    feed(protocol, ":dana!dana@home.example PRIVMSG Support :it is me")
    assert any("Welcome back" in x for x in lines(transport))
    assert first in harness.gateway.conversations


def test_a_late_version_reply_reaches_the_router_until_the_offer():
    harness, _factory, protocol, _transport = registered()
    feed(protocol, ":dana!d@home PRIVMSG Support :hello")
    harness.clock.advance(13)  # irssi on a busy network: past irc.ctcp_version_timeout_s
    feed(protocol, ":dana!d@home NOTICE Support :\x01VERSION irssi v1.4.3\x01")
    (conv,) = harness.gateway.conversations.values()
    assert (conv.client.name, conv.client.version) == ("irssi", "1.4.3")
