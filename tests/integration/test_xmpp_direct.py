"""The direct XMPP client listener: STARTTLS, SCRAM for agents, ANONYMOUS for customers,
and hostile XML that ends only its own stream. slixmpp clients, no XMPP server."""

from __future__ import annotations

import base64
import socket
import ssl
import time

import harness
import pytest
from jsonim_client import hello_customer
from leaks import assert_unseen
from xmpp_peers import SlixClient, self_signed

SUPPORT = "support@localhost"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
LISTENING = r"xmpp listener \S+ listening on 127\.0\.0\.1:(\d+)"
LISTENING_TLS = r"xmpps listener \S+ listening on 127\.0\.0\.1:(\d+)"
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)
BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("xmpp-direct")
    key, cert = self_signed(root)
    config = harness.write_config(root)
    text = config.read_text().replace(
        "[listeners]\n",
        '[listeners]\nxmpp = ["tcp:0:interface=127.0.0.1"]\n'
        f'xmpps = ["ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"]\n',
        1,
    )
    text += f'\n[xmpp]\nclient_domain = "localhost"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    config.write_text(text)
    harness.add_agent(config, "anna", "anna-Secret-1", "Anna")
    gateway = harness.start_gateway(root / "cwd", config)
    port = int(gateway.wait_for_log(LISTENING, 10).group(1))
    gateway.tls_port = int(gateway.wait_for_log(LISTENING_TLS, 10).group(1))
    clients: list[SlixClient] = []
    try:
        yield gateway, port, str(cert), clients
    finally:
        for client in clients:
            client.stop()
        gateway.stop()


def raw_stream(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection; everything the gateway sent until it closed."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                return received
            received += chunk
    raise AssertionError(f"the gateway did not close the stream; got {received[:400]!r}")


def test_starttls_scram_agent_and_anonymous_customer(site):
    gateway, port, cert, clients = site
    mark = len(gateway.lines)
    agent = SlixClient(
        "anna@localhost/desk-77q",
        "anna-Secret-1",
        port,
        starttls=True,
        cafile=cert,
        mechanism="SCRAM-SHA-256",
    )
    clients.append(agent)
    agent.presence(SUPPORT)
    gateway.wait_for_log(r"agent anna is available", 10, start=mark)
    customer = SlixClient(
        "localhost",
        "",
        port,
        starttls=True,
        cafile=cert,
        mechanism="ANONYMOUS",
        version=("DirectChat", "9.1"),
    )
    clients.append(customer)
    customer.send(SUPPORT, "hello")
    customer.expect("What is your name?", SUPPORT)
    customer.send(SUPPORT, "Dana")
    customer.expect("What can we help you with?", SUPPORT)
    customer.send(SUPPORT, "billing")
    customer.expect("in line", SUPPORT)
    offer = agent.expect("New chat offer", SUPPORT)
    assert "Client: xmpp, DirectChat 9.1" in offer["body"], offer["body"]
    agent.send(SUPPORT, "/accept")
    hello = agent.expect("You are now chatting with customer")
    alias = str(hello["from"]).partition("/")[0]
    assert alias.startswith("c-") and alias.endswith("@localhost")
    customer.expect("You are now chatting with Anna", SUPPORT)
    customer.send(SUPPORT, "my bill is wrong")
    agent.expect("my bill is wrong", alias)
    agent.send(alias, "Let me check, Dana.")
    got = customer.expect("Let me check", SUPPORT)
    assert str(got["from"]).startswith(SUPPORT)
    raw = bytes(customer.raw)
    assert_unseen(raw, "anna@", "desk-77q")
    for client in (agent, customer):
        # Both negotiated STARTTLS (TLS 1.2 or later) before SASL.
        assert "starttls" in client.client.features
        assert client.tls_version in ("TLSv1.2", "TLSv1.3"), client.tls_version
    assert agent.client.plugin["feature_mechanisms"].mech.name == "SCRAM-SHA-256"


def test_hostile_xml_ends_only_that_stream(site):
    gateway, port, _cert, _clients = site
    web = gateway.connect("web customer")
    hello_customer(web)
    web.expect("prompt")
    for hostile, condition in [
        (BILLION_LAUGHS + HEADER, b"restricted-xml"),
        (HEADER + b"<!DOCTYPE x>", b"restricted-xml"),
        (HEADER + b"<message>" + b"<a>" * 64, b"policy-violation"),
        (HEADER + b"<message><body>" + b"x" * 300_000, b"policy-violation"),
    ]:
        answer = raw_stream(port, hostile)
        assert condition in answer, answer[:400]
        assert answer.endswith(b"</stream:stream>"), answer[-200:]
    # The other conversation carries on.
    web.send({"type": "message", "text": "Gus", "id": "n"})
    web.expect("ack", id="n")
    web.expect("prompt", field="topic")
    web.close()


def test_plain_is_offered_only_after_tls(site):
    _gateway, port, cert, _clients = site
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(HEADER)
        data = b""
        while b"</stream:features>" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" in data
    assert b"PLAIN" not in data
    context = ssl.create_default_context(cafile=cert)
    assert context.minimum_version <= ssl.TLSVersion.TLSv1_2


def read_until(sock, marker: bytes, timeout: float = 10.0) -> bytes:
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


def test_direct_tls_offers_plain_and_an_agent_logs_in_with_it(site):
    gateway, _port, cert, _clients = site
    context = ssl.create_default_context(cafile=cert)
    with socket.create_connection(("127.0.0.1", gateway.tls_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
            sock.sendall(HEADER)
            features = read_until(sock, b"</stream:features>")
            assert b"<mechanism>PLAIN</mechanism>" in features
            assert b"starttls" not in features
            plain = base64.b64encode(b"\0anna\0anna-Secret-1").decode()
            auth = f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>"
            sock.sendall(auth.encode())
            assert b"<success" in read_until(sock, b"success")
            sock.sendall(HEADER)
            read_until(sock, b"</stream:features>")
            sock.sendall(
                b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
            )
            assert b"<jid>anna@localhost/" in read_until(sock, b"</iq>")
