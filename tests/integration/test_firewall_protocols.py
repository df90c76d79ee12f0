"""The firewall on the direct IRC and XMPP listeners: the leak test over IRC (an agent with
an internal account, address and host converses; no byte the IRC customer receives names
them), and rule counters in protocol messages (JSON-IM frames, IRC lines, XMPP stanzas,
over STARTTLS and direct TLS too), whatever the reads and TLS records carried them; and
a trusted proxy's PROXY header ahead of the TLS handshake on the ``ssl:`` listeners.

The tests share one gateway.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import time

import fw_site
import harness
import pytest
from certs import self_signed
from irc_peers import RawIrc, irc_ports

from firewall import proxyproto

PASSWORD = "annak-Secret-1"
RULES = """\
chain input {
    policy accept;
    ip saddr 127.0.0.41 accept;
    ip saddr 127.0.0.42 accept;
    ip saddr 127.0.0.43 accept;
    ip saddr 127.0.0.44 accept;
    ip saddr 198.51.100.7 accept;
    ip saddr 198.51.100.8 accept;
}
proxy { trusted 127.0.0.45; }
translate {
    host db01.corp.internal -> "our systems";
    host *.corp.example -> "[internal host]";
    addr 10.0.0.0/8 -> "[internal]";
    text "annak@corp.example" -> "Robin";
}
"""
# The agent: login annak, display name (alias) Robin, typing from 127.0.0.20 with an
# IRC nick, user and real name of its own.
SECRETS = [b"annak", b"desk01", b"corp.example", b"corp.internal", b"10.20.30.40", b"127.0.0.20"]
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-protocols")
    key, cert = self_signed(root)
    config, _ = fw_site.write_config(
        root,
        RULES,
        '\n[irc]\nserver_name = "irc.itest"\n'
        f'\n[xmpp]\nclient_domain = "localhost"\ntls_cert = "{cert}"\ntls_key = "{key}"\n',
    )
    text = config.read_text()
    tls = f"privateKey={key}:certKey={cert}"
    listeners = (
        'irc = ["tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1:' + tls + '"]\n'
        'xmpp = ["tcp:0:interface=127.0.0.1"]\n'
        'xmpps = ["ssl:0:interface=127.0.0.1:' + tls + '"]\n'
    )
    config.write_text(re.sub(r"(?m)^(jsonim = \[.*\]\n)", lambda m: m.group(1) + listeners, text))
    harness.admin(
        config,
        "agent",
        "add",
        "annak",
        "--password-stdin",
        "--display-name",
        "Robin",
        "--skill",
        "billing:4",
        "--address",
        "xmpp:annak@desk01.corp.example",
        stdin=PASSWORD + "\n",
    )
    gateway = harness.start_gateway(root / "cwd", config)
    try:
        gateway.irc = irc_ports(gateway, 2)
        gateway.xmpp = fw_site.port_of(gateway, "xmpp")
        gateway.xmpps = fw_site.port_of(gateway, "xmpps")
        gateway.admin_port = fw_site.port_of(gateway, "admin")
        gateway.tls = ssl.create_default_context(cafile=str(cert))
        gateway.config = config
        yield gateway
    finally:
        gateway.stop()


class BoundIrc(RawIrc):
    """A raw IRC client from a chosen loopback source address."""

    def __init__(self, port: int, source: str, *, name: str, tls=None) -> None:
        original = socket.create_connection

        def bound(address, timeout=None, source_address=None):
            return original(address, timeout=timeout, source_address=(source, 0))

        socket.create_connection = bound
        try:
            super().__init__(port, name=name, tls=tls)
        finally:
            socket.create_connection = original


def test_no_byte_the_irc_customer_receives_names_the_agents_internals(site):
    agent = BoundIrc(site.irc["ssl"], "127.0.0.20", name="agent", tls=site.tls)
    agent.send("CAP LS 302", "NICK annak_desk", "USER annak 0 * :Anna K desk01.corp.example")
    agent.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
    agent.expect(r"^AUTHENTICATE \+")
    token = base64.b64encode(f"\0annak\0{PASSWORD}".encode()).decode()
    agent.send(f"AUTHENTICATE {token}", "CAP END")
    agent.expect(r" 903 ")
    agent.expect(r" (376|422) ")
    agent.send("JOIN #agents,#support")
    agent.expect(r" 366 annak_desk #support ")

    customer = BoundIrc(site.irc["tcp"], "127.0.0.21", name="customer")
    customer.register("dana")
    customer.send("JOIN #support", "PRIVMSG Support :hello")
    customer.expect("What is your name")
    customer.send("PRIVMSG Support :Dana")
    customer.expect("What can we help you with")
    customer.send("PRIVMSG Support :billing")
    offer, alias = agent.expect(r"NOTICE annak_desk :Offer (o-\S+): (c-[0-9a-f]+) \(irc").groups()
    agent.send(f"PRIVMSG Support :/accept {offer}")
    agent.expect(rf"You are now talking with {alias}")
    customer.expect("You are now talking with Robin")
    said = [
        "I'm annak@corp.example, checking db01.corp.internal now.",
        "The invoice service at 10.20.30.40 (and mail.corp.example) is down.",
    ]
    for text in said:
        agent.send(f"PRIVMSG {alias} :{text}")
    assert customer.expect(r"^:Robin!\S+ PRIVMSG dana :I'm").string == (
        ":Robin!agent@gateway.invalid PRIVMSG dana :I'm Robin, checking our systems now."
    )
    assert customer.expect(r"^:Robin!\S+ PRIVMSG dana :The invoice").string == (
        ":Robin!agent@gateway.invalid PRIVMSG dana "
        ":The invoice service at [internal] (and [internal host]) is down."
    )
    customer.send("WHOIS Robin")
    assert customer.expect(r" 311 dana Robin ").string == (
        ":irc.itest 311 dana Robin agent gateway.invalid * Agent"
    )
    customer.expect(r" 318 dana Robin ")
    customer.send("WHO Robin")
    assert customer.expect(r" 352 dana ").string.startswith(
        ":irc.itest 352 dana * agent gateway.invalid irc.itest Robin H :0 "
    )
    customer.expect(r" 315 dana Robin ")
    for query in ("NAMES #support", "NAMES #agents", "WHO #support", "WHO #agents", "LIST"):
        customer.send(query)
    customer.expect(r" 323 dana ")
    customer.send("PRIVMSG Robin :thanks")
    agent.expect(rf"^:{alias}!\S+ PRIVMSG annak_desk :thanks$")
    agent.send(f"PRIVMSG Support :/end {alias}")
    customer.expect(r"The conversation has ended")
    customer.send("QUIT :bye")
    assert customer.closed()
    received = customer.raw()
    assert b"Robin" in received
    leaks = [secret for secret in SECRETS if secret in received.lower()]
    assert not leaks, f"the IRC customer received {leaks}: {received!r}"
    agent.close()


def counters(site) -> dict[str, int]:
    """Messages counted by each address's accept rule, from ``fw list --json``."""
    out = fw_site.fw(site.config, "list", "--json").stdout
    return {
        row["rule"].split()[2]: row["messages"]
        for row in json.loads(out)
        if row["rule"].startswith("ip saddr 127.0.0.4")
    }


def read_until(sock, marker: bytes, timeout: float = fw_site.TIMEOUT) -> bytes:
    """Read until ``marker`` arrives (or fail at the deadline)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        assert time.monotonic() < deadline, data
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def anonymous_bound_pings(sock, pings: int) -> None:
    """SASL ANONYMOUS, bind, then ``pings`` pings in one write: 2 + ``pings`` stanzas."""
    sock.sendall(HEADER)
    read_until(sock, b"</stream:features>")
    sock.sendall(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>".encode())
    read_until(sock, b"<success")
    sock.sendall(HEADER)
    read_until(sock, b"</stream:features>")
    sock.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    read_until(sock, b"</iq>")
    sock.sendall(
        b"".join(
            f"<iq type='get' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>".encode()
            for i in range(pings)
        )
    )
    read_until(sock, f"id='p{pings - 1}'".encode())


def test_counters_count_protocol_messages_over_plain_and_tls(site, monkeypatch):
    monkeypatch.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{site.admin_port}")
    # XMPP over STARTTLS: starttls, auth, bind and two pings.
    with fw_site.dial(site.xmpp, "127.0.0.41") as raw:
        raw.sendall(HEADER)
        read_until(raw, b"</stream:features>")
        raw.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        read_until(raw, b"<proceed")
        with site.tls.wrap_socket(raw, server_hostname="localhost") as sock:
            anonymous_bound_pings(sock, 2)
    # XMPP over direct TLS: auth, bind and three pings.
    with fw_site.dial(site.xmpps, "127.0.0.42") as raw:
        with site.tls.wrap_socket(raw, server_hostname="localhost") as sock:
            anonymous_bound_pings(sock, 3)
    # JSON-IM: hello, then four pings, two of them in one write and one split over two.
    jsonim = fw_site.Client(site.port, "127.0.0.43", "jsonim customer")
    jsonim.send({"type": "hello", "protocol": "jsonim/1", "role": "customer"})
    jsonim.expect("welcome")
    jsonim.send_raw(b'{"type":"ping","id":"j1"}\n{"type":"ping","id":"j2"}\n{"type":')
    jsonim.send_raw(b'"ping","id":"j3"}\n')
    jsonim.send({"type": "ping", "id": "j4"})
    jsonim.expect("pong", id="j4")
    # IRC: NICK and USER, then three PINGs in one write (the empty line is no message).
    irc = BoundIrc(site.irc["tcp"], "127.0.0.44", name="irc customer")
    irc.send("NICK counted", "USER counted 0 * :Counted")
    irc.expect(r" (376|422) ")
    irc.send(b"PING :a\r\n\r\nPING :b\r\nPING :c\r\n")
    irc.expect(r"PONG irc\.itest :c$")
    assert counters(site) == {"127.0.0.41": 5, "127.0.0.42": 5, "127.0.0.43": 5, "127.0.0.44": 5}
    jsonim.close()
    irc.close()


def test_a_proxy_header_ahead_of_tls_gives_the_real_address(site, monkeypatch):
    # As HAProxy's send-proxy does in front of a TLS listener: the header first, then
    # the client's own TLS handshake, passed through.
    monkeypatch.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{site.admin_port}")
    with fw_site.dial(site.xmpps, "127.0.0.45") as raw:
        raw.sendall(proxyproto.v2_header(("198.51.100.7", 5000), ("127.0.0.1", site.xmpps)))
        with site.tls.wrap_socket(raw, server_hostname="localhost") as sock:
            anonymous_bound_pings(sock, 1)
            listed = fw_site.fw(site.config, "conntrack", "list").stdout
            assert "198.51.100.7:5000" in listed, listed
    with fw_site.dial(site.irc["ssl"], "127.0.0.45") as raw:
        raw.sendall(proxyproto.v1_header(("198.51.100.8", 5001), ("127.0.0.1", site.irc["ssl"])))
        with site.tls.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"NICK proxied\r\nUSER proxied 0 * :Proxied\r\n")
            read_until(sock, b" 001 ")
            sock.sendall(b"PING :x\r\n")
            read_until(sock, b"PONG")
            listed = fw_site.fw(site.config, "conntrack", "list").stdout
            assert "198.51.100.8:5001" in listed, listed
    out = fw_site.fw(site.config, "list", "--json").stdout
    seen = {
        row["rule"].split()[2]: (row["connections"], row["messages"])
        for row in json.loads(out)
        if row["rule"].startswith("ip saddr 198.51.100.")
    }
    # XMPP: auth, bind, one ping; IRC: NICK, USER, PING.
    assert seen == {"198.51.100.7": (1, 3), "198.51.100.8": (1, 3)}, seen
