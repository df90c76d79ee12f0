"""Log injection over real sockets: hostile names through every protocol (JSON-IM client
name, version and login; IRC SASL login, realname and CTCP VERSION; XMPP SASL login;
the web channel's origin, client name and login; the admin API) reach the log escaped,
in the text log and the JSON log alike: no line break, no ``key=value`` pair that a
fail2ban filter would read as a failure from an address the attacker chose."""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import urllib.error
import urllib.request

import harness
import pytest
from irc_peers import RawIrc, irc_ports, write_config
from jsonim_client import hello_customer
from web_site import web_port
from ws_client import WsClient
from xmpp_peers import self_signed

FORGED = "6.6.6.6"
# Line breaks of every kind, a terminal escape and forged fail2ban lines.
HOSTILE = (
    "evil\nauth failure protocol=jsonim user=root address=6.6.6.6"
    "\r\u2028firewall drop address=6.6.6.6 listener=jsonim rule=1 \x1b[2J\x85\\x0a=end"
)
ONE_LINE = "evil address=6.6.6.6 listener=irc\t=end"  # where a line break cannot go
JID_LOCAL = "address=6.6.6.6"  # what an XMPP login name can carry
FAILREGEX = [
    re.compile(r"auth failure protocol=\S+ user=\S* address=6\.6\.6\.6"),
    re.compile(r"firewall drop address=6\.6\.6\.6 listener="),
    re.compile(r"address=6\.6\.6\.6"),
]
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)
XMPPS_LISTENING = r"xmpps listener \S+ listening on 127\.0\.0\.1:(\d+)"
SHOP = "https://shop.example"
HOSTILE_ORIGIN = "https://evil address=6.6.6.6 listener=web\t=end"  # what a header can carry
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("log-injection")
    key, cert = self_signed(root)
    tls = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    config = write_config(root, listeners=["tcp:0:interface=127.0.0.1", tls])
    text = config.read_text().replace(
        "[listeners]\n",
        f'[listeners]\nxmpps = ["{tls}"]\nweb = ["tcp:0:interface=127.0.0.1"]\n',
        1,
    )
    text += f'\n[web]\nallowed_origins = ["{SHOP}"]\n'
    text = text.replace('level = "debug"\n', 'level = "debug"\nformat = "json"\n', 1)
    text += f'\n[xmpp]\nclient_domain = "localhost"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    config.write_text(text)
    gateway = harness.start_gateway(root / "cwd", config, "log-injection")
    gateway.irc_ports = irc_ports(gateway, 2)
    gateway.xmpps_port = int(gateway.wait_for_log(XMPPS_LISTENING, 10).group(1))
    gateway.admin_port = gateway.listener_port("admin")
    gateway.web_port = web_port(gateway)
    gateway.cert = cert
    gateway.json_log = root / "data" / "imgateway.log.jsonl"
    yield gateway
    gateway.stop()


def read_until(sock, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def hostile_jsonim(site) -> None:
    customer = site.connect("hostile customer")
    hello_customer(customer, client_name=HOSTILE, client_version=HOSTILE)
    customer.hang_up()
    agent = site.connect("hostile agent")
    agent.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": HOSTILE, "version": HOSTILE},
            "auth": {"user": HOSTILE, "password": "guess"},
        }
    )
    assert agent.expect("error")["code"] == "auth_failed"
    agent.close()


def hostile_irc(site) -> None:
    context = ssl.create_default_context(cafile=str(site.cert))
    login = RawIrc(site.irc_ports["ssl"], name="hostile irc login", tls=context)
    login.send("CAP LS 302", "NICK guesser", f"USER evil 0 * :{ONE_LINE}", "CAP REQ :sasl")
    login.expect(r" CAP \S+ ACK ")
    login.send("AUTHENTICATE PLAIN")
    login.expect(r"^AUTHENTICATE \+")
    login.send("AUTHENTICATE " + base64.b64encode(f"\0{HOSTILE}\0guess".encode()).decode())
    login.expect(r" 904 ")
    login.close()
    customer = RawIrc(site.irc_ports["tcp"], name="hostile irc customer")
    customer.register("dana")
    customer.send("PRIVMSG Support :hello")
    customer.expect("\x01VERSION\x01")
    customer.send(f"NOTICE Support :\x01VERSION {ONE_LINE}\x01")
    site.wait_for_log(r"IRC .*: client evil", 10)
    customer.close()


def hostile_xmpp(site) -> None:
    context = ssl.create_default_context(cafile=str(site.cert))
    with socket.create_connection(("127.0.0.1", site.xmpps_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(HEADER)
            read_until(sock, b"</stream:features>")
            plain = base64.b64encode(f"\0{JID_LOCAL}\0guess".encode()).decode()
            sock.sendall(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>".encode())
            assert b"<not-authorized/>" in read_until(sock, b"</failure>")


def hostile_web(site) -> None:
    refused = WsClient(site.web_port, name="hostile origin", origin=HOSTILE_ORIGIN)
    assert refused.closed_with()[0] == 1008
    customer = WsClient(site.web_port, name="hostile web customer", origin=SHOP)
    hello_customer(customer, client_name=HOSTILE, client_version=HOSTILE)
    customer.close()
    agent = WsClient(site.web_port, name="hostile web agent")
    agent.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": HOSTILE, "version": HOSTILE},
            "auth": {"user": HOSTILE, "password": "guess"},
        }
    )
    assert agent.expect("error")["code"] == "auth_failed"
    agent.close()


def hostile_admin(site) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{site.admin_port}/v1/summary",
        headers={"Authorization": "Bearer x address=6.6.6.6", "User-Agent": ONE_LINE},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_hostile_names_through_every_protocol_reach_the_log_escaped(site):
    mark = len(site.lines)
    hostile_jsonim(site)
    hostile_irc(site)
    hostile_xmpp(site)
    hostile_web(site)
    hostile_admin(site)
    site.wait_for_log(r"refused origin https://evil address\\x3d6\.6\.6\.6 ", 10, mark)
    for protocol in ("jsonim", "irc", "xmpp", "web", "admin"):
        site.wait_for_log(rf"auth failure protocol={protocol} user=\S+ address=127\.0\.0\.1$", 10)
    lines = site.lines[mark:]
    # Every line of the text log is one whole event: a timestamp starts each.
    strays = [line for line in lines if not TIMESTAMP.match(line)]
    assert not strays, strays
    forged = [line for line in lines if any(r.search(line) for r in FAILREGEX)]
    assert not forged, forged
    # The hostile values are there, escaped, not dropped.
    escaped = [line for line in lines if "evil\\nauth failure protocol\\x3djsonim" in line]
    assert escaped, "\n".join(lines)
    tokens = [line for line in lines if re.search(r"user=evil\\nauth\\x20failure\\x20", line)]
    assert tokens, "\n".join(lines)
    # The JSON log: one object a line, no text or field a filter would misread.
    records = [json.loads(line) for line in site.json_log.read_text().splitlines()]
    texts = [r["text"] for r in records] + [str(v) for r in records for v in r.values()]
    assert any("evil\\nauth" in text for text in texts)
    bad = [t for t in texts if any(r.search(t) for r in FAILREGEX) or re.search(r"[\n\r]", t)]
    assert not bad, bad


def test_the_site_files_own_endpoints_are_logged_as_written(site):
    # Escaping is for what peers choose: the listening lines show the endpoint strings
    # of the site file unchanged, so that an admin finds them as written there.
    shown = [line for line in site.lines if " listening on 127.0.0.1:" in line]
    assert any("jsonim listener tcp:0:interface=127.0.0.1 listening on" in s for s in shown)
    assert not [line for line in shown if "\\x3d" in line], shown
