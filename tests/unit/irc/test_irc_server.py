"""The direct IRC listener: registration, PING, NICK, QUIT, CAP/SASL, hostile input."""

from __future__ import annotations

import base64

from irc_helpers import SERVER, server
from zope.interface.verify import verifyObject

from gateway.core.interfaces import IParty


def test_connection_provides_iparty():
    client = server().connect()
    assert verifyObject(IParty, client.protocol)


def test_registration_replies_match_rfc_2812():
    client = server().connect()
    client.send("NICK dana")
    assert client.lines() == []
    client.send("USER dana 0 * :Dana Doe")
    lines = client.lines()
    assert lines == [
        f":{SERVER} 001 dana :Welcome to the imgateway IRC Network dana!dana@gateway.invalid",
        f":{SERVER} 002 dana :Your host is {SERVER}, running version imgateway-0.1.0",
        f":{SERVER} 003 dana :This server was created 1970-01-01 00:00:00 UTC",
        f":{SERVER} 004 dana {SERVER} imgateway-0.1.0 iw nt",
        # At most 15 parameters a line (RFC 2812): the nick, 13 tokens, the text.
        f":{SERVER} 005 dana AWAYLEN=200 CASEMAPPING=ascii CHANLIMIT=#&:2 CHANMODES=b,,,nt "
        "CHANNELLEN=50 CHANTYPES=#& KICKLEN=300 :are supported by this server",
        f":{SERVER} 005 dana LINELEN=512 MODES=1 NETWORK=imgateway "
        "NICKLEN=30 PREFIX=(o)@ TARGMAX=PRIVMSG:1,NOTICE:1,JOIN:2,PART:2,NAMES:1,WHOIS:1 "
        "TOPICLEN=300 :are supported by this server",
        f":{SERVER} 251 dana :There are 2 users and 0 invisible on 1 servers",
        f":{SERVER} 252 dana 0 :operator(s) online",
        f":{SERVER} 254 dana 2 :channels formed",
        f":{SERVER} 255 dana :I have 2 clients and 0 servers",
        f":{SERVER} 265 dana 2 2 :Current local users 2, max 2",
        f":{SERVER} 266 dana 2 2 :Current global users 2, max 2",
        f":{SERVER} 375 dana :- {SERVER} Message of the day - ",
        f":{SERVER} 372 dana :- Welcome. Message Support or join #support to talk with us.",
        f":{SERVER} 376 dana :End of /MOTD command.",
    ]


def test_server_name_is_configurable_and_no_motd_gives_422():
    client = server(server_name="chat.example.com", motd="").connect()
    client.send("NICK dana", "USER dana 0 * :Dana")
    lines = client.lines()
    assert all(line.startswith(":chat.example.com ") for line in lines)
    assert lines[-1] == ":chat.example.com 422 dana :MOTD File is missing"


def test_commands_before_registration_get_451_and_user_needs_params():
    client = server().connect()
    client.send("PRIVMSG Support :hi", "USER dana")
    assert client.lines() == [
        f":{SERVER} 451 * :You have not registered",
        f":{SERVER} 461 * USER :Not enough parameters",
    ]


def test_ping_pong_both_ways_and_ping_timeout():
    srv = server(ping_interval_s=60, ping_timeout_s=30)
    client = srv.register()
    client.send("PING :abc123")
    assert client.lines() == [f":{SERVER} PONG {SERVER} :abc123"]
    srv.clock.advance(60)
    assert client.lines() == [f"PING :{SERVER}"]
    client.send(f"PONG {SERVER}")
    srv.clock.advance(59)
    assert client.lines() == [] and not client.closed
    srv.clock.advance(1)
    assert client.lines() == [f"PING :{SERVER}"]
    srv.clock.advance(30)
    assert client.lines() == ["ERROR :Closing Link: dana (Ping timeout: 30 seconds)"]
    assert client.closed


def test_nick_collision_433_and_nick_change():
    srv = server()
    srv.register("dana")
    other = srv.connect()
    other.send("NICK Dana")
    assert other.lines() == [f":{SERVER} 433 * Dana :Nickname is already in use"]
    other.send("NICK support", "NICK c-1234", "NICK 9lives", "NICK")
    assert other.lines() == [
        f":{SERVER} 433 * support :Nickname is already in use",
        f":{SERVER} 432 * c-1234 :Erroneous nickname",
        f":{SERVER} 432 * 9lives :Erroneous nickname",
        f":{SERVER} 431 * :No nickname given",
    ]
    other.send("NICK eve", "USER eve 0 * :Eve")
    assert other.commands()[0] == "001"
    other.send("NICK evelyn")
    assert other.lines() == [":eve!eve@gateway.invalid NICK evelyn"]
    other.send("NICK dana")
    assert other.lines() == [f":{SERVER} 433 evelyn dana :Nickname is already in use"]


def test_customers_cannot_learn_agent_nicks_from_collisions():
    srv = server()
    srv.agent("anna", nick="anna")
    customer = srv.connect()
    customer.send("NICK anna", "USER anna 0 * :Anna")
    assert customer.commands()[0] == "001"
    customer.send("WHOIS anna2")
    assert customer.commands() == ["401", "318"]


def test_quit_sends_error_and_closes():
    client = server().register()
    client.send("QUIT :gone fishing")
    assert client.lines() == ["ERROR :Closing Link: dana (Quit: gone fishing)"]
    assert client.closed


def test_unknown_command_421():
    client = server().register()
    client.send("FROBNICATE now")
    assert client.lines() == [f":{SERVER} 421 dana FROBNICATE :Unknown command"]


def test_registration_timeout():
    srv = server(registration_timeout_s=10)
    client = srv.connect()
    client.send("NICK dana")
    srv.clock.advance(10)
    assert client.lines() == ["ERROR :Closing Link: dana (Registration timed out)"]
    assert client.closed


def test_registration_one_byte_at_a_time():
    client = server().connect()
    for byte in b"NICK dana\r\nUSER dana 0 * :Dana Doe\r\nPING :x\r\n":
        client.send(bytes([byte]))
    commands = client.commands()
    assert commands[0] == "001" and commands[-1] == "PONG"


def test_overlong_line_gets_417_and_the_connection_goes_on():
    client = server().register()
    client.send(b"PRIVMSG Support :" + b"a" * 600 + b"\r\n", "PING :ok")
    assert client.lines() == [
        f":{SERVER} 417 dana :Input line was too long",
        f":{SERVER} PONG {SERVER} :ok",
    ]


def test_nul_closes_the_connection():
    client = server().register()
    client.send(b"PRIVMSG Support :a\x00b\r\n")
    assert client.lines() == ["ERROR :Closing Link: dana (NUL byte in line)"]
    assert client.closed


def test_invalid_utf8_is_read_as_latin1():
    srv = server()
    client = srv.connect()
    client.send(b"NICK dana\r\nUSER dana 0 * :Ren\xe9e\r\n")
    assert client.commands()[0] == "001"
    assert client.protocol.realname == "Renée"


def test_flood_lags_then_disconnects():
    srv = server(lines_per_second=1.0, line_burst=2, max_lagged_lines=5)
    client = srv.connect()
    client.send("NICK dana", "USER dana 0 * :D", "PING :1", "PING :2", "PING :3")
    commands = client.commands()
    assert commands[0] == "001" and "PONG" not in commands
    srv.clock.advance(1)
    assert client.lines() == [f":{SERVER} PONG {SERVER} :1"]
    srv.clock.advance(2)
    assert len(client.lines()) == 2
    client.send(*[f"PING :{i}" for i in range(10)])
    lines = client.lines()
    assert lines[-1] == "ERROR :Closing Link: dana (Excess Flood)"
    assert client.closed


def test_cap_302_sasl_plain_over_tls_logs_an_agent_in():
    srv = server()
    client = srv.connect(tls=True)
    client.send("CAP LS 302", "NICK anna", "USER anna 0 * :Anna")
    caps = "message-tags multi-prefix userhost-in-names sasl=PLAIN"
    assert client.lines() == [f":{SERVER} CAP * LS :{caps}"]
    client.send("CAP REQ :sasl message-tags")
    assert client.lines() == [f":{SERVER} CAP anna ACK :sasl message-tags"]
    client.send("AUTHENTICATE PLAIN")
    assert client.lines() == ["AUTHENTICATE +"]
    token = base64.b64encode(b"\0anna\0secret").decode()
    client.send(f"AUTHENTICATE {token}")
    assert client.lines() == [
        f":{SERVER} 900 anna anna!anna@gateway.invalid anna :You are now logged in as anna",
        f":{SERVER} 903 anna :SASL authentication successful",
    ]
    client.send("CAP END")
    assert client.commands()[0] == "001"
    assert srv.harness.directory.get("anna").status == "available"


def test_sasl_wrong_password_904_and_plaintext_offers_no_sasl():
    srv = server()
    plain = srv.connect()
    plain.send("CAP LS 302")
    assert plain.lines() == [f":{SERVER} CAP * LS :message-tags multi-prefix userhost-in-names"]
    plain.send("CAP REQ :sasl")
    assert plain.lines() == [
        ":Support!service@gateway.invalid NOTICE * :Agents log in over TLS only: connect to"
        " the TLS port",
        f":{SERVER} CAP * NAK sasl",
    ]
    # A client that tries anyway gets one clear answer, and is not made a customer.
    plain.send("AUTHENTICATE PLAIN")
    assert plain.lines() == [
        f":{SERVER} 904 * :Agents log in over TLS only: connect to the TLS port",
        "ERROR :Closing Link: * (Agents log in over TLS only: connect to the TLS port)",
    ]
    assert plain.closed
    client = srv.connect(tls=True)
    client.send("CAP LS 302", "CAP REQ sasl", "AUTHENTICATE PLAIN")
    client.lines()
    token = base64.b64encode(b"\0anna\0wrong").decode()
    client.send(f"AUTHENTICATE {token}")
    assert client.lines() == [f":{SERVER} 904 * :SASL authentication failed"]
    assert srv.harness.directory.get("anna") is None


def test_pass_over_tls_logs_an_agent_in_and_not_over_plaintext():
    srv = server()
    client = srv.connect(tls=True)
    client.send("PASS anna:secret", "NICK anna", "USER anna 0 * :Anna")
    assert client.commands()[0] == "001"
    assert srv.harness.directory.get("anna") is not None
    plain = srv.connect()
    plain.send("PASS bob:secret", "NICK bob", "USER bob 0 * :Bob")
    # Not "464 Password incorrect": the password may well be right.
    assert plain.lines() == [
        "ERROR :Closing Link: bob (Agents log in over TLS only: connect to the TLS port)"
    ]
    assert plain.closed
    assert srv.harness.directory.get("bob") is None


def test_mode_whois_who_away_queries():
    srv = server()
    client = srv.register()
    client.send("MODE dana +i", "MODE dana", "MODE #support", "WHOIS Support", "WHO dana")
    assert client.lines() == [
        ":dana!dana@gateway.invalid MODE dana +i",
        f":{SERVER} 221 dana +i",
        f":{SERVER} 324 dana #support +nt",
        f":{SERVER} 329 dana #support 0",
        f":{SERVER} 311 dana Support service gateway.invalid * :Customer support",
        f":{SERVER} 312 dana Support {SERVER} imgateway",
        f":{SERVER} 318 dana Support :End of /WHOIS list.",
        f":{SERVER} 352 dana * dana gateway.invalid {SERVER} dana H :0 Dana Doe",
        f":{SERVER} 315 dana dana :End of /WHO list.",
    ]
    client.send("AWAY :lunch", "AWAY")
    assert client.commands() == ["306", "305"]


def test_lobby_join_names_topic_part_list_and_agents_channel_refused():
    srv = server()
    other = srv.register("eve")
    other.send("JOIN #support")
    other.lines()
    client = srv.register("dana")
    client.send("JOIN #support")
    lines = client.lines()
    assert lines[:4] == [
        ":dana!dana@gateway.invalid JOIN #support",
        f":{SERVER} 332 dana #support :Write to Support to talk with us; your conversation is "
        "private.",
        f":{SERVER} 353 dana = #support :@Support dana",
        f":{SERVER} 366 dana #support :End of /NAMES list.",
    ]
    assert (
        lines[4] == ":Support!service@gateway.invalid PRIVMSG #support :Hello dana! I have "
        "opened a private conversation with you."
    )
    assert ":Support!service@gateway.invalid PRIVMSG dana :What is your name?" in lines
    assert other.lines() == []  # the lobby hides customers from each other
    client.send("JOIN #agents", "JOIN #elsewhere", "LIST", "PART #support :bye")
    assert client.lines() == [
        f":{SERVER} 473 dana #agents :Cannot join channel (+i)",
        f":{SERVER} 403 dana #elsewhere :No such channel",
        f":{SERVER} 321 dana Channel :Users  Name",
        f":{SERVER} 322 dana #support 2 :Write to Support to talk with us; your conversation "
        "is private.",
        f":{SERVER} 323 dana :End of /LIST",
        ":dana!dana@gateway.invalid PART #support :bye",
    ]


def test_agents_channel_is_a_channel_among_agents():
    srv = server()
    anna = srv.agent("anna", "anna")
    bob = srv.agent("bob", "bob")
    anna.send("JOIN #agents")
    anna.lines()
    bob.send("JOIN #agents")
    assert f":{SERVER} 353 bob = #agents :@Support anna bob" in bob.lines()
    assert anna.lines() == [":bob!bob@gateway.invalid JOIN #agents"]
    bob.send("PRIVMSG #agents :coffee?")
    assert anna.lines() == [":bob!bob@gateway.invalid PRIVMSG #agents :coffee?"]
    assert bob.lines() == []


def test_a_stream_of_overlong_lines_floods_out():
    srv = server(lines_per_second=1.0, line_burst=5, max_lagged_lines=5)
    client = srv.register()
    client.send(b"PRIVMSG x :" + b"a" * 600 + b"\r\n")
    assert client.commands() == ["417"]
    client.send(*[b"PRIVMSG x :" + b"a" * 600 + b"\r\n"] * 20)
    assert client.lines()[-1] == "ERROR :Closing Link: dana (Excess Flood)"


def test_channel_odds_and_ends():
    srv = server()
    client = srv.register()
    client.send(
        "PART #support",
        "TOPIC #support :mine now",
        "MODE #support b",
        "NAMES #agents",
        "ISON Support nobody dana",
        "USERHOST Support",
    )
    assert client.lines() == [
        f":{SERVER} 442 dana #support :You're not on that channel",
        f":{SERVER} 442 dana #support :You're not on that channel",
        f":{SERVER} 368 dana #support :End of channel ban list",
        f":{SERVER} 366 dana #agents :End of /NAMES list.",
        f":{SERVER} 303 dana :Support dana",
        f":{SERVER} 302 dana Support=+service@gateway.invalid",
    ]
    client.send("JOIN #support")
    client.lines()
    client.send("TOPIC #support :mine now")
    assert client.lines() == [f":{SERVER} 482 dana #support :You're not channel operator"]


def test_what_a_customer_says_in_the_lobby_goes_to_its_query():
    srv = server()
    client = srv.register()
    client.send("JOIN #support")
    assert client.lines()[-1].endswith("PRIVMSG dana :What is your name?")
    client.send("PRIVMSG #support :Dana")
    assert client.lines()[-1].endswith("PRIVMSG dana :3. Something else")


def test_user_with_an_empty_real_name_gets_461():
    client = server().connect()
    client.send("NICK dana", "USER dana 0 * :")
    assert client.lines() == [f":{SERVER} 461 dana USER :Not enough parameters"]
    client.send("USER dana 0 * :Dana")
    assert client.commands()[0] == "001"


def test_version_time_info_admin_and_lusers_tell_a_customer_no_counts():
    srv = server()
    others = [srv.register(f"other{i}") for i in range(3)]
    client = srv.register()
    client.send("VERSION", "TIME", "INFO", "ADMIN", "LUSERS", "VERSION elsewhere.example")
    commands = client.commands()
    assert commands[:2] == ["351", "005"] and "391" in commands
    assert {"371", "374", "256", "257", "258", "259", "251", "255"} <= set(commands)
    assert commands[-1] == "402"
    text = b"\n".join(line for line in client.seen.split(b"\r\n") if b" 25" in line)
    # Four customers are connected; this one is told of itself and the service.
    assert b"There are 2 users" in text and b"I have 2 clients" in text
    assert b"users 5" not in text and b"have 5" not in text
    assert all(not o.closed for o in others)


def test_a_customer_cannot_take_its_agents_alias_as_nick():
    srv = server()
    agent = srv.agent("anna")
    customer = srv.register()
    customer.send("PRIVMSG Support :hello", "PRIVMSG Support :Dana", "PRIVMSG Support :1")
    agent.send("ACCEPT")
    assert customer.lines()[-1].endswith("You are now talking with Anna_A.")
    for taken in ("Anna_A", "anna_a"):
        customer.send(f"NICK {taken}")
        assert customer.lines() == [f":{SERVER} 433 dana {taken} :Nickname is reserved"]
    customer.send("NICK Robin")
    assert customer.lines() == [":dana!dana@gateway.invalid NICK Robin"]
