"""The web listener against hostile input, over real sockets: frames over the limit, bad
UTF-8, binary messages, origins not allowed, too many connections from one origin or one
address, message floods, agent logins from a customer's page; behind the firewall like
every listener (drop, reject, role rules, PROXY headers, text translation). Each refusal
has its close code and reason, and ends only its own connection. No byte a widget
customer receives names the agent's account, address or internal hosts."""

from __future__ import annotations

import socket
import ssl

import harness
import pytest
from certs import self_signed
from fw_site import Client
from jsonim_client import answer_interview, hello_agent, hello_customer
from web_site import web_port, write_config
from ws_client import HandshakeRefused, WsClient

SHOP = "https://shop.example"
PASSWORD = "anna-Secret-1"
RULES = """\
chain input {
    policy accept;
    ip saddr 127.0.0.66 drop;
    ip saddr 127.0.0.67 reject;
    listener web role agent ip saddr 127.0.0.68 reject;
}
limits {
    messages rate 20/second burst 40;
    lag 1;
    disconnect after 2;
}
translate {
    host db01.corp.internal -> "our systems";
    text "anna@corp.example" -> "Anna";
}
proxy { trusted 127.0.0.70; }
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-hostile")
    key, cert = self_signed(root)
    config = write_config(
        root,
        max_frame=4096,
        messages_per_second=5,
        message_burst=10,
        web=f'allowed_origins = ["{SHOP}"]\nmax_connections_per_origin = 3\n',
    )
    rules = root / "firewall.rules"
    rules.write_text(RULES)
    tls = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    text = config.read_text().replace(
        'web = ["tcp:0:interface=127.0.0.1"]', f'web = ["tcp:0:interface=127.0.0.1", "{tls}"]'
    )
    config.write_text(text + f'\n[firewall]\nrules = "{rules}"\nmax_connections_per_address = 20\n')
    harness.admin(
        config,
        "agent",
        "add",
        "anna",
        "--password-stdin",
        "--display-name",
        "Anna",
        "--skill",
        "billing:4",
        "--address",
        "xmpp:anna@corp.example",
        stdin=PASSWORD + "\n",
    )
    gateway = harness.start_gateway(root / "cwd", config, "web-hostile")
    gateway.web = web_port(gateway)
    listening = r"web listener ssl:\S+ listening on 127\.0\.0\.1:(\d+)"
    gateway.web_tls = int(gateway.wait_for_log(listening, 10).group(1))
    gateway.tls = ssl.create_default_context(cafile=str(cert))
    yield gateway
    gateway.stop()


def customer(site, source: str = "127.0.0.1", origin: str | None = SHOP, **kw) -> WsClient:
    client = WsClient(site.web, name=f"ws {source}", origin=origin, source=source, **kw)
    hello_customer(client, client_name="webchat", features=("typing", "rich_text", "receipts"))
    return client


def test_a_frame_over_max_frame_is_too_large(site):
    bystander = customer(site)
    client = customer(site)
    client.send_frame(b'{"type":"message","text":"' + b"x" * 4100 + b'"}')
    error = client.expect("error")
    assert (error["code"], error["text"]) == ("too_large", "frame exceeds 4096 bytes")
    assert client.closed_with() == (1009, "too_large: frame exceeds 4096 bytes")
    # A stated length of 1 GiB is refused from its header.
    client = customer(site)
    client.send_frame(b"", length=1 << 30)
    assert client.expect("error")["code"] == "too_large"
    assert client.closed_with()[0] == 1009
    bystander.sync()
    bystander.close()


def test_bad_utf8_and_binary_messages_are_refused(site):
    client = customer(site)
    client.send_frame(b'{"type":"message","text":"caf\xc3"}')
    code, reason = client.closed_with()
    assert code == 1007 and "UTF-8" in reason, reason
    client = customer(site)
    client.send_binary(b'{"type":"ping"}')
    assert client.closed_with() == (1003, "JSON-IM frames travel as text messages")
    client = customer(site)
    for _ in range(3):
        client.send_frame(b"<script>alert(1)</script>")
    assert client.closed_with()[0] == 1007
    assert [e["code"] for e in client.frames_of("error")] == ["bad_frame"] * 3


def test_origins_not_allowed_are_told_so(site):
    for origin in ("https://evil.example", "http://shop.example", "null"):
        client = WsClient(site.web, origin=origin)
        assert client.closed_with() == (1008, f"origin not allowed: {origin}")
        assert client.received == []
    site.wait_for_log(r"web 127\.0\.0\.1:\d+: refused origin https://evil\.example: 1008", 10)


def test_connections_from_one_origin_are_limited(site):
    first = [customer(site) for _ in range(3)]
    refused = WsClient(site.web, origin=SHOP)
    assert refused.closed_with() == (1013, "too many connections from this origin; try again later")
    first[0].close()
    site.wait_for_log(r"connection closed", 10)
    late = None
    for _ in range(50):  # the close reaches the gateway within a few reads
        late = WsClient(site.web, origin=SHOP)
        if not late.closed(0.2):
            break
    hello_customer(late, client_name="webchat")
    for client in (*first[1:], late):
        client.close()


def test_agents_log_in_only_from_the_console_origin(site):
    client = WsClient(site.web, origin=SHOP)
    client.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "auth": {"user": "anna", "password": PASSWORD},
        }
    )
    error = client.expect("error")
    assert error["text"] == "agents log in from the console's own origin"
    assert client.closed_with() == (
        1008,
        "not_allowed: agents log in from the console's own origin",
    )


def test_a_message_flood_is_rate_limited_then_dropped(site):
    calm = customer(site, "127.0.0.51")
    for i in range(15):
        calm.send({"type": "message", "text": f"line {i}", "id": f"m{i}"})
    answers = [calm.expect_any(["ack", "error"], id=f"m{i}") for i in range(15)]
    kinds = [a.get("code", a["type"]) for a in answers]
    # The burst (10) is taken, the rest refused; the connection stays open.
    assert kinds[:10] == ["ack"] * 10 and set(kinds[10:]) <= {"ack", "rate_limited"}, kinds
    assert "rate_limited" in kinds
    calm.sync()
    flood = customer(site, "127.0.0.50")
    try:
        for i in range(400):
            flood.send({"type": "ping", "id": f"p{i}"})
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert flood.closed()
    site.wait_for_log(r"firewall drop address=127\.0\.0\.50 listener=web rule=limit-messages", 10)
    calm.sync()
    calm.close()


def test_too_many_connections_from_one_address_are_dropped(site):
    kept, refused = [], 0
    for _ in range(24):
        try:
            kept.append(WsClient(site.web, origin=None, source="127.0.0.40"))
        except (HandshakeRefused, ConnectionResetError):
            refused += 1
    assert (len(kept), refused) == (20, 4)
    for client in kept:
        client.close()


def test_the_firewall_drops_rejects_and_reads_proxy_headers(site):
    with pytest.raises((HandshakeRefused, ConnectionResetError)) as dropped:
        WsClient(site.web, source="127.0.0.66")
    assert getattr(dropped.value, "response", b"") in (b"", b"\r\n\r\n")
    with pytest.raises(HandshakeRefused) as rejected:
        WsClient(site.web, source="127.0.0.67")
    assert rejected.value.response.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    # A role rule: this address may be a customer, not an agent.
    agent = WsClient(site.web, source="127.0.0.68")
    agent.send({"type": "hello", "protocol": "jsonim/1", "role": "agent", "auth": {}})
    assert agent.expect("error")["text"] == "refused by the firewall"
    assert agent.closed_with() == (1008, "refused by the firewall")
    # Behind a trusted load balancer the customer's own address is the peer.
    proxied = customer(site, "127.0.0.70", preface=b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n")
    site.wait_for_log(r"JSON-IM web 203\.0\.113\.7:5555: customer session", 10)
    proxied.close()


def test_no_byte_the_widget_customer_receives_names_the_agents_internals(site):
    agent = Client(site.port, "127.0.0.20", "anna")
    hello_agent(agent, "anna", PASSWORD)
    client = customer(site, "127.0.0.21")
    answer_interview(client, {"name": "Dana", "topic": "billing"})
    offer = agent.expect("offer")
    conversation = offer["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    client.expect("connected", conversation=conversation)
    for i, text in enumerate(
        ["I'm anna@corp.example, on **db01.corp.internal** now.", "Fixed. <script>x</script>"]
    ):
        agent.send({"type": "message", "conversation": conversation, "text": text, "id": f"a{i}"})
        agent.expect("ack", id=f"a{i}")
    got = [client.expect("message", **{"from": "agent"})["text"] for _ in range(2)]
    assert got == ["I'm Anna, on **our systems** now.", "Fixed. <script>x</script>"]
    client.send({"type": "end"})
    client.expect("ended")
    client.close()
    agent.close()
    received = bytes(client.raw)
    leaks = [s for s in (b"anna", b"corp.", b"127.0.0.20") if s in received]
    assert not leaks, f"the widget customer received {leaks}: {received!r}"


def test_the_web_listener_over_tls(site):
    client = WsClient(site.web_tls, origin=SHOP, tls=site.tls)
    welcome = hello_customer(client, client_name="webchat", features=("rich_text",))
    assert welcome["features"] == ["rich_text"]
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    client.close()
    with site.tls.wrap_socket(
        socket.create_connection(("127.0.0.1", site.web_tls), timeout=10),
        server_hostname="localhost",
    ) as sock:
        sock.sendall(b"GET /widget.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head = response.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 200 ")
    assert "\r\nstrict-transport-security: max-age=31536000\r\n" in head + "\r\n", head
