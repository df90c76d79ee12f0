"""What customers ran into (issue "Real clients") on the gateway's own XMPP listener, with
slixmpp, and on JSON-IM: the first line, leaving and losing the connection, the support
contact's presence, a recipient's frame limit, and direct TLS from one certificate.
"""

from __future__ import annotations

import ssl

import harness
import pytest
from jsonim_client import answer_interview, hello_agent, hello_customer
from xmpp_peers import SlixClient, self_signed

SUPPORT = "support@localhost"
GRACE_S = 60
LISTENING = r"xmpp listener \S+ listening on 127\.0\.0\.1:(\d+)"
LISTENING_TLS = r"xmpps listener \S+ listening on 127\.0\.0\.1:(\d+)"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("direct-real")
    key, cert = self_signed(root)
    config = harness.write_config(root, resume_grace_s=GRACE_S)
    # xmpps on a plain tcp: endpoint: its TLS comes from the one tls_cert/tls_key.
    text = config.read_text().replace(
        "[listeners]\n",
        '[listeners]\nxmpp = ["tcp:0:interface=127.0.0.1"]\n'
        'xmpps = ["tcp:0:interface=127.0.0.1"]\n',
        1,
    )
    text += f'\n[xmpp]\nclient_domain = "localhost"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    config.write_text(text)
    harness.add_agent(config, "anna", "anna-Secret-1", "Anna")
    gateway = harness.start_gateway(root / "cwd", config)
    port = int(gateway.wait_for_log(LISTENING, 10).group(1))
    tls_port = int(gateway.wait_for_log(LISTENING_TLS, 10).group(1))
    clients: list[SlixClient] = []
    try:
        yield gateway, port, tls_port, str(cert), clients
    finally:
        for client in clients:
            client.stop()
        gateway.stop()


def customer(site, **options) -> SlixClient:
    _, port, _, cert, clients = site
    client = SlixClient(
        "localhost", "", port, starttls=True, cafile=cert, mechanism="ANONYMOUS", **options
    )
    clients.append(client)
    return client


def test_direct_customer_first_line_kept_and_a_closed_stream_ends_at_once(site):
    gateway = site[0]
    agent = gateway.connect("agent")
    hello_agent(agent, "anna", "anna-Secret-1")
    dana = customer(site, available=True)
    # Its initial presence is answered with the support contact's: shown online.
    dana.expect_presence(SUPPORT, "available")
    dana.send(SUPPORT, "hello, I have a billing question")
    dana.expect("What is your name?", SUPPORT)
    dana.send(SUPPORT, "Dana")
    dana.expect("What can we help you with?", SUPPORT)
    dana.send(SUPPORT, "1")
    offer = agent.expect("offer", timeout=15)
    agent.send({"type": "accept", "offer": offer["offer"]})
    connected = agent.expect("connected", conversation=offer["conversation"])
    assert connected["history"][0]["text"] == "hello, I have a billing question"
    dana.stop()  # </stream:stream>: the customer left
    ended = agent.expect("ended", conversation=offer["conversation"])
    assert ended["reason"] == "customer"
    agent.close()


def test_jsonim_customer_who_drops_is_held_and_not_offered_until_back(site):
    gateway = site[0]
    web = gateway.connect("web customer")
    welcome = hello_customer(web)
    answer_interview(web, {"name": "Erin", "topic": "billing"})
    mark = len(gateway.lines)
    web.close()
    gateway.wait_for_log(r"conversation \S+ held for 60(\.0)?s", 10, mark)
    agent = gateway.connect("agent")
    hello_agent(agent, "anna", "anna-Secret-1")
    agent.sync()
    assert agent.frames_of("offer") == []
    back = gateway.connect("web customer again")
    hello_customer(back, resume=welcome["resume"])
    offer = agent.expect("offer", timeout=15)
    assert offer["conversation"] == welcome["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    back.expect("connected", conversation=welcome["conversation"])
    agent.send({"type": "end", "conversation": welcome["conversation"]})
    back.close()
    agent.close()


def test_jsonim_recipient_frame_limit_is_honoured(site):
    gateway = site[0]
    agent = gateway.connect("agent")
    hello_agent(agent, "anna", "anna-Secret-1")
    web = gateway.connect("web customer")
    hello_customer(web)
    answer_interview(web, {"name": "Fay", "topic": "billing"})
    offer = agent.expect("offer", timeout=15)
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    # The customer's frame fits in 65 536 bytes; the agent's, with the conversation,
    # sender, message id and time around the same text, does not.
    web.send({"type": "message", "text": "a" * 65_450, "id": "big"})
    error = web.expect("error", id="big")
    assert error["code"] == "bad_request"
    assert "a JSON-IM frame is at most 65536 bytes" in error["text"], error
    web.send({"type": "message", "text": "fits", "id": "ok"})
    web.expect("ack", id="ok")
    assert agent.expect("message", conversation=offer["conversation"])["text"] == "fits"
    assert max(len(line) for line in agent.raw_lines) <= 65537
    agent.send({"type": "end", "conversation": offer["conversation"]})
    web.close()
    agent.close()


def test_xmpps_takes_its_certificate_from_tls_cert_once(site):
    _, _, tls_port, cert, _ = site
    context = ssl.create_default_context(cafile=cert)
    import socket

    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
            sock.sendall(
                b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
            )
            data = b""
            while b"</stream:features>" not in data:
                chunk = sock.recv(4096)
                assert chunk, data
                data += chunk
    # Direct TLS from the first byte: PLAIN is offered, STARTTLS is not.
    assert b"<mechanism>PLAIN</mechanism>" in data and b"starttls" not in data
