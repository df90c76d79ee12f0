"""The firewall over real sockets: clients from several loopback addresses meet accept,
drop, reject, limits and bans; PROXY headers from trusted and untrusted sources; DNAT to
a real backend with SNAT checked by the address the backend sees; and the admin surface
(``imgateway-admin fw …``, SIGHUP) against the running gateway.

The tests share one gateway and run in order.
"""

from __future__ import annotations

import json
import signal

import attrs
import fw_site
import harness
import pytest
from fw_site import Client, EchoServer, closed_silently, dial, dropped
from jsonim_client import hello_agent, hello_customer

from firewall import proxyproto

RULES = """\
# test rules: one address per behaviour
set blocked { type addr; elements = { 127.0.0.3, 192.0.2.0/24 } }
chain input {
    policy accept;
    ip saddr @blocked drop;
    ip saddr 127.0.0.4 reject;
    ip saddr 127.0.0.6 log accept;
    role agent ip saddr 127.0.0.30 accept;
    role agent reject;
}
limits { concurrent 2; ban after 3 for 600; }
proxy { trusted 127.0.0.2; }
nat {
    dnat listener echo to 127.0.0.1:{echo};
    snat to 127.0.0.0/8 from 127.0.0.5;
}
"""


@attrs.define
class Site:
    config: object
    rules: object
    gateway: harness.Gateway
    echo: EchoServer
    admin_port: int
    dnat_port: int


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall")
    echo = EchoServer()
    config, rules = fw_site.write_config(
        root,
        RULES.replace("{echo}", str(echo.port)),
        '\n[firewall.dnat]\necho = ["tcp:0:interface=127.0.0.1"]\n',
    )
    harness.add_agent(config, "anna", "anna-Secret-1", "Anna")
    gateway = harness.start_gateway(root / "cwd", config)
    try:
        admin_port = fw_site.port_of(gateway, "admin")
        dnat_port = fw_site.port_of(gateway, "dnat.echo")
        yield Site(config, rules, gateway, echo, admin_port, dnat_port)
    finally:
        gateway.stop()
        echo.close()


@pytest.fixture
def cli_env(site, monkeypatch):
    monkeypatch.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{site.admin_port}")


def test_accepted_address_talks_to_the_gateway(site):
    client = Client(site.gateway.port, "127.0.0.6")
    welcome = hello_customer(client)
    assert welcome["type"] == "welcome"
    client.close()
    site.gateway.wait_for_log(r"firewall accept address=127\.0\.0\.6 listener=jsonim rule=3", 10)


def test_a_set_member_is_dropped_silently(site):
    assert dropped(site.gateway.port, "127.0.0.3", b'{"type":"hello"}\n')
    site.gateway.wait_for_log(r"firewall drop address=127\.0\.0\.3 listener=jsonim rule=1", 10)


def test_a_rejected_address_gets_the_protocols_error_then_a_close(site):
    sent = closed_silently(dial(site.gateway.port, "127.0.0.4"))
    (line,) = sent.splitlines()
    assert json.loads(line) == {
        "type": "error",
        "code": "not_allowed",
        "text": "refused by the firewall",
    }
    site.gateway.wait_for_log(r"firewall reject address=127\.0\.0\.4 listener=jsonim rule=2", 10)


def test_role_rules_apply_once_the_protocol_knows_the_role(site):
    outsider = Client(site.gateway.port, "127.0.0.31", "outside agent")
    outsider.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "desk", "version": "1"},
            "auth": {"user": "anna", "password": "anna-Secret-1"},
        }
    )
    error = outsider.expect("error")
    assert (error["code"], error["text"]) == ("not_allowed", "refused by the firewall")
    assert outsider.closed(10)
    site.gateway.wait_for_log(r"firewall reject address=127\.0\.0\.31 listener=jsonim rule=5", 10)
    hello_customer(Client(site.gateway.port, "127.0.0.31", "customer from there"))
    hello_agent(Client(site.gateway.port, "127.0.0.30", "inside agent"), "anna", "anna-Secret-1")


def test_limits_then_an_automatic_ban_that_admins_see_and_lift(site, cli_env):
    held = [Client(site.gateway.port, "127.0.0.7", f"held{i}") for i in range(2)]
    for client in held:
        hello_customer(client)
    for _ in range(3):  # over the concurrent limit three times: banned
        assert dropped(site.gateway.port, "127.0.0.7")
    site.gateway.wait_for_log(r"firewall ban address=127\.0\.0\.7 for=600s", 10)
    assert "127.0.0.7 expires in" in fw_site.fw(site.config, "bans", "list").stdout
    for client in held:
        client.hang_up()
    assert dropped(site.gateway.port, "127.0.0.7")
    site.gateway.wait_for_log(r"firewall drop address=127\.0\.0\.7 listener=jsonim rule=banned", 10)
    # another address is not affected
    hello_customer(Client(site.gateway.port, "127.0.0.8"))
    fw_site.fw(site.config, "bans", "remove", "127.0.0.7")
    assert "127.0.0.7" not in fw_site.fw(site.config, "bans", "list").stdout
    hello_customer(Client(site.gateway.port, "127.0.0.7"))
    fw_site.fw(site.config, "bans", "add", "127.0.0.9", "--for", "300")
    assert dropped(site.gateway.port, "127.0.0.9")


def test_proxy_headers_from_the_trusted_source_give_the_real_address(site, cli_env):
    # v1 naming a blocked address: the real address meets the filter
    header = proxyproto.v1_header(("192.0.2.44", 5000), ("127.0.0.1", site.gateway.port))
    assert dropped(site.gateway.port, "127.0.0.2", header)
    site.gateway.wait_for_log(r"firewall drop address=192\.0\.2\.44 listener=jsonim rule=1", 10)
    # v2 naming an allowed address: served, and tracked under the real address
    header = proxyproto.v2_header(("203.0.113.9", 5001), ("127.0.0.1", site.gateway.port))
    client = Client(site.gateway.port, "127.0.0.2", "proxied", first=header)
    hello_customer(client)
    listing = json.loads(fw_site.fw(site.config, "conntrack", "list", "--json").stdout)
    entry = next(e for e in listing if e["original"]["src"] == "203.0.113.9:5001")
    assert entry["translated"]["src"].startswith("127.0.0.2:")
    assert entry["listener"] == "jsonim" and entry["direction"] == "in"
    fw_site.fw(site.config, "conntrack", "kill", str(entry["id"]))
    assert client.closed(10)


def test_an_untrusted_source_cannot_claim_an_address(site):
    mark = len(site.gateway.lines)
    sock = dial(site.gateway.port, "127.0.0.10")
    sock.sendall(proxyproto.v1_header(("127.0.0.6", 5000), ("127.0.0.1", site.gateway.port)))
    sock.settimeout(10)
    answer = sock.recv(65536)
    sock.close()
    # the header reached JSON-IM as a (bad) frame: no address was taken from it
    assert json.loads(answer.splitlines()[0])["type"] == "error"
    site.gateway.wait_for_log(r"127\.0\.0\.10", 10, start=mark)
    assert not [line for line in site.gateway.lines[mark:] if "address=127.0.0.6" in line]


def test_dnat_forwards_to_the_backend_which_sees_the_snat_address(site, cli_env):
    sock = dial(site.dnat_port, "127.0.0.11")
    sock.sendall(b"ping through the edge\n")
    sock.settimeout(10)
    got = b""
    while len(got) < 22:
        got += sock.recv(65536)
    assert got == b"ping through the edge\n"
    assert site.echo.peers and site.echo.peers[-1][0] == "127.0.0.5"
    listing = json.loads(fw_site.fw(site.config, "conntrack", "list", "--json").stdout)
    inbound = [e for e in listing if e["listener"] == "echo"]
    outbound = [e for e in listing if e["direction"] == "out"]
    assert inbound and inbound[0]["original"]["src"].startswith("127.0.0.11:")
    assert inbound[0]["bytes_in"] == 22 and inbound[0]["bytes_out"] == 22
    assert any(
        e["translated"]["src"].startswith("127.0.0.5:")
        and e["original"]["dst"] == f"127.0.0.1:{site.echo.port}"
        for e in outbound
    )
    sock.close()


def test_admin_lists_checks_applies_adds_and_deletes(site, cli_env, tmp_path):
    listed = fw_site.fw(site.config, "list").stdout
    assert "ip saddr @blocked drop; # counter connections" in listed
    assert "# handle 1" in listed and "# handle 3" in listed
    new = tmp_path / "new.rules"
    new.write_text(site.rules.read_text().replace("ip saddr 127.0.0.4 reject;", ""))
    diff = fw_site.fw(site.config, "check", str(new)).stdout
    assert "-    ip saddr 127.0.0.4 reject;" in diff
    assert "ip saddr 127.0.0.4 reject" in fw_site.fw(site.config, "list").stdout  # unchanged
    bad = tmp_path / "bad.rules"
    bad.write_text("chain input {\n  ip saddr 300.1.1.1 drop;\n}\n")
    failed = fw_site.fw(site.config, "apply", str(bad), check=False)
    assert failed.returncode == 1 and "bad.rules:2:" in failed.stderr
    assert "ip saddr 127.0.0.4 reject" in fw_site.fw(site.config, "list").stdout
    # an established conversation survives an apply
    survivor = Client(site.gateway.port, "127.0.0.12")
    hello_customer(survivor)
    fw_site.fw(site.config, "apply", str(new))
    assert "127.0.0.4 reject" not in fw_site.fw(site.config, "list").stdout
    hello_customer(Client(site.gateway.port, "127.0.0.4"))
    survivor.sync()
    handle = fw_site.fw(site.config, "add", "ip", "saddr", "127.0.0.13", "drop").stdout.split()[1]
    assert dropped(site.gateway.port, "127.0.0.13")
    fw_site.fw(site.config, "delete", handle)
    hello_customer(Client(site.gateway.port, "127.0.0.13"))
    fw_site.fw(site.config, "reset-counters")
    assert "connections 0 messages 0 bytes 0" in fw_site.fw(site.config, "list").stdout


def test_sighup_reloads_the_rules_file(site, cli_env):
    text = site.rules.read_text().replace(
        "ip saddr 127.0.0.6 log accept;",
        "ip saddr 127.0.0.6 log accept;\n    ip saddr 127.0.0.14 drop;",
    )
    site.rules.write_text(text)
    mark = len(site.gateway.lines)
    site.gateway.proc.send_signal(signal.SIGHUP)
    site.gateway.wait_for_log(r"firewall rules applied from .*firewall\.rules", 10, start=mark)
    assert dropped(site.gateway.port, "127.0.0.14")
