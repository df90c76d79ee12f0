"""The direct client listener over StringTransports: negotiation, SASL, binding, chat."""

from __future__ import annotations

import re

from c2s_helpers import (
    DOMAIN,
    HEADER,
    SASL,
    SUPPORT,
    Client,
    anonymous,
    b64,
    make_server,
    scram_login,
)
from zope.interface import alsoProvides

from firewall.interfaces import IFirewallTransport
from gateway.core import events as ev


def test_anonymous_customer_binds_and_chats_with_support():
    core, server = make_server()
    client = anonymous(server)
    out = client.send(f"<message to='{SUPPORT}' type='chat'><body>hello</body></message>")
    assert "What is your name?" in out
    assert f"from='{SUPPORT}'" in out
    assert "jabber:iq:version" in out  # the client is asked what it is
    (conv,) = core.gateway.conversations.values()
    assert conv.protocol == "xmpp"


def test_scram_agent_logs_in_and_gets_offers():
    core, server = make_server()
    client, answer = scram_login(server)
    assert "<success" in answer, answer
    client.open()
    client.send(
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>desk</resource></bind></iq>"
    )
    client.send("<presence/>")
    assert core.directory.get("xanna").status == "available"
    customer = anonymous(server)
    customer.send(f"<message to='{SUPPORT}' type='chat'><body>hi</body></message>")
    customer.send(f"<message to='{SUPPORT}' type='chat'><body>Dana</body></message>")
    offer = client.send("")  # nothing new yet
    out = customer.send(f"<message to='{SUPPORT}' type='chat'><body>1</body></message>")
    assert "in line" in out
    offer = client.transport.value().decode()
    assert "New chat offer" in offer
    accepted = client.send(f"<message to='{SUPPORT}' type='chat'><body>/accept</body></message>")
    alias = re.search(r"from='(c-[0-9a-f]+@chat\.example\.com)'", accepted).group(1)
    out = client.send(f"<message to='{alias}' type='chat'><body>Hello Dana</body></message>")
    said = customer.transport.value().decode()
    assert "Hello Dana" in said and "xanna" not in said and "desk" not in said


def test_wrong_scram_password_fails_and_three_failures_close():
    core, server = make_server()
    _client, answer = scram_login(server, password="wrong")
    assert "<not-authorized/>" in answer
    assert core.directory.get("xanna") is None


def test_unknown_scram_user_fails_the_same_way():
    _core, server = make_server()
    _client, answer = scram_login(server, name="nobody")
    assert "<not-authorized/>" in answer


def test_plain_is_refused_without_tls():
    _core, server = make_server()
    client = Client(server)
    client.open()
    plain = b64(b"\0xanna\0pw")
    out = client.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>")
    assert "<encryption-required/>" in out


def test_stanzas_before_authentication_are_not_authorized():
    _core, server = make_server()
    client = Client(server)
    client.open()
    out = client.send("<message to='support@chat.example.com'><body>x</body></message>")
    assert "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in out
    assert client.transport.disconnecting


def test_wrong_host_is_host_unknown():
    _core, server = make_server()
    client = Client(server)
    out = client.send(HEADER.replace(DOMAIN.encode(), b"other.example"))
    assert out.startswith("<?xml") and "<host-unknown" in out


def test_authentication_timeout():
    core, server = make_server(auth_timeout_s=5)
    client = Client(server)
    client.open()
    core.clock.advance(6)
    assert "connection-timeout" in client.transport.value().decode()
    assert client.transport.disconnecting


def test_hostile_xml_ends_only_its_own_stream():
    _core, server = make_server()
    calm = anonymous(server)
    calm.send(f"<message to='{SUPPORT}' type='chat'><body>hello</body></message>")
    hostile = anonymous(server)
    out = hostile.send(b"<message><!DOCTYPE x [<!ENTITY a 'b'>]></message>")
    assert "restricted-xml" in out and hostile.transport.disconnecting
    hostile.stream.connectionLost(None)
    deep = anonymous(server)
    assert "policy-violation" in deep.send("<message>" + "<x>" * 40)
    big = anonymous(server)
    assert "policy-violation" in big.send("<message><body>" + "x" * 300_000)
    out = calm.send(f"<message to='{SUPPORT}' type='chat'><body>Dana</body></message>")
    assert "What can we help you with?" in out
    assert not calm.transport.disconnecting


def test_roster_and_ping_to_the_account_and_remote_domains():
    _core, server = make_server()
    client = anonymous(server)
    out = client.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
    assert "type='result'" in out and "jabber:iq:roster" in out
    out = client.send(
        "<message to='someone@elsewhere.example' type='chat'><body>x</body></message>"
    )
    assert "remote-server-not-found" in out


def test_customer_disconnect_ends_the_conversation():
    core, server = make_server()
    client = anonymous(server)
    client.send(f"<message to='{SUPPORT}' type='chat'><body>hello</body></message>")
    (conv,) = core.gateway.conversations.values()
    client.stream.connectionLost(None)
    assert conv.state == "ended"


def test_second_login_of_an_agent_closes_the_first_with_conflict():
    core, server = make_server()
    first, _ = scram_login(server)
    first.open()
    first.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    _second, answer = scram_login(server)
    assert "<success" in answer
    assert "<conflict" in first.transport.value().decode()
    assert core.directory.get("xanna") is not None
    assert isinstance(ev.ClientInfo(), ev.ClientInfo)


def test_a_stanza_flood_is_a_policy_violation():
    _core, server = make_server()
    client = anonymous(server)
    out = client.send("<presence/>" * 300)
    assert "policy-violation" in out and client.transport.disconnecting


def test_idle_stream_is_pinged_then_closed_when_silent():
    core, server = make_server(ping_s=60)
    client = anonymous(server)
    client.transport.clear()
    core.clock.advance(59)
    assert client.transport.value() == b""
    core.clock.advance(1)
    ping = client.transport.value().decode()
    assert re.fullmatch(
        rf"<iq type='get' id='ka-[0-9a-f]{{8}}' from='{DOMAIN}' to='anon-[0-9a-f]+@{DOMAIN}/phone'>"
        r"<ping xmlns='urn:xmpp:ping'/></iq>",
        ping,
    ), ping
    # An answer (any traffic) keeps the stream: the next ping comes a full interval later.
    ping_id = re.search(r"id='([^']+)'", ping).group(1)
    client.send(f"<iq type='result' id='{ping_id}' to='{DOMAIN}'/>")
    core.clock.advance(59)
    assert not client.transport.disconnecting
    core.clock.advance(1)
    assert "<ping xmlns='urn:xmpp:ping'/>" in client.transport.value().decode()
    core.clock.advance(60)  # unanswered
    assert "connection-timeout" in client.transport.value().decode()
    assert client.transport.disconnecting


def test_a_role_the_firewall_refuses_gets_no_session():
    _core, server = make_server()
    client = Client(server)
    asked = []
    alsoProvides(client.transport, IFirewallTransport)
    client.transport.firewall_role = lambda role: asked.append(role) or False
    client.open()
    out = client.send(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>")
    assert asked == ["customer"]
    assert "<success" not in out
    client.stream.firewall_reject("refused by the firewall")
    assert "<policy-violation" in client.transport.value().decode()
