"""One canonical address form over real sockets: a rule written in the IPv4-mapped form
matches the IPv4 client; the per-address connection cap counts one client once whichever
form its socket shows (a dual-stack listener sees ``::ffff:a.b.c.d``); the log names the
IPv4 address; the login throttle counts an IPv6 client per /64. And the identity
translation catches every form of an internal address in what an agent types."""

from __future__ import annotations

import fw_site
import harness
import pytest
from fw_site import Client, dropped
from jsonim_client import answer_interview, hello_agent, hello_customer

from firewall import proxyproto

RULES = """\
chain input {
    policy accept;
    ip saddr ::ffff:198.51.100.7 drop;
}
proxy { trusted 127.0.0.2; }
translate {
    host db01.corp.internal -> "our systems";
    addr 10.0.0.0/8 -> "[internal]";
    addr fd00::/8 -> "[internal]";
}
"""
DUAL_STACK = r"tcp6:0:interface=\:\:"
AGENT, PASSWORD = "anna", "anna-Secret-1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-addresses")
    config, _ = fw_site.write_config(root, RULES, "max_connections_per_address = 2\n")
    text = config.read_text().replace(
        'jsonim = ["tcp:0:interface=127.0.0.1"]',
        f"jsonim = [\"tcp:0:interface=127.0.0.1\", '{DUAL_STACK}']",
    )
    text = text.replace("[agents]\n", "[agents]\nlogin_failures_free = 2\n", 1)
    config.write_text(text)
    harness.add_agent(config, AGENT, PASSWORD, "Anna")
    gateway = harness.start_gateway(root / "cwd", config)
    gateway.dual_port = int(
        gateway.wait_for_log(r"jsonim listener tcp6:\S* listening on :+:(\d+)", 10).group(1)
    )
    yield gateway
    gateway.stop()


def proxied(site, source: str, name: str = "proxied") -> Client:
    destination = "::1" if ":" in source else "127.0.0.1"
    header = proxyproto.v1_header((source, 40000), (destination, site.port))
    return Client(site.port, "127.0.0.2", name, first=header)


def test_a_rule_in_the_ipv4_mapped_form_matches_the_ipv4_client(site):
    header = proxyproto.v1_header(("198.51.100.7", 40000), ("127.0.0.1", site.port))
    assert dropped(site.port, "127.0.0.2", header)
    site.wait_for_log(r"firewall drop address=198\.51\.100\.7 listener=jsonim rule=1", 10)
    header = proxyproto.v1_header(("::ffff:198.51.100.7", 40000), ("::1", site.port))
    assert dropped(site.port, "127.0.0.2", header)
    hello_customer(proxied(site, "198.51.100.8"))


def test_the_per_address_cap_counts_one_client_once_in_either_form(site):
    mark = len(site.lines)
    held = [Client(site.port, "127.0.0.51", f"v4-{i}") for i in range(2)]
    for client in held:
        hello_customer(client)
    # The same client through the dual-stack listener: its socket shows ::ffff:127.0.0.51.
    # Refused with the protocol's own error, then the close.
    third = fw_site.dial(site.dual_port, "127.0.0.51")
    assert fw_site.closed_silently(third) == (
        b'{"type":"error","code":"not_allowed","text":"2 connections open from this address"}\n'
    )
    site.wait_for_log(
        r"firewall reject address=127\.0\.0\.51 listener=jsonim rule=max-connections", 10, mark
    )
    assert not [line for line in site.lines[mark:] if "::ffff:" in line]
    for client in held:
        client.hang_up()


def test_the_login_throttle_counts_an_ipv6_client_per_64(site):
    # Two failures are free; the third locks the /64 out.
    for i in (1, 2, 3):
        guesser = proxied(site, f"2001:db8:5:6::{i}", f"guesser {i}")
        guesser.send(
            {
                "type": "hello",
                "protocol": "jsonim/1",
                "role": "agent",
                "client": {"name": "x", "version": "1"},
                "auth": {"user": AGENT, "password": "guess"},
            }
        )
        assert guesser.expect("error")["text"] == "authentication failed"
    fourth = proxied(site, "2001:db8:5:6::4", "guesser 4")
    fourth.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "x", "version": "1"},
            "auth": {"user": AGENT, "password": "guess"},
        }
    )
    error = fourth.expect("error")
    assert error["text"].startswith("too many failed logins"), error
    # Another /64 is not held back.
    other = proxied(site, "2001:db8:5:7::1", "elsewhere")
    hello_agent(other, AGENT, PASSWORD)
    other.hang_up()


TYPED = [
    "mapped ::ffff:10.20.30.40 and ::FFFF:0a14:1e28 and 0:0:0:0:0:ffff:10.20.30.40",
    "in words host_10.20.30.40, 10.20.30.40_backup, 10.20.30.40.nip.io, x10.20.30.40y",
    "padded 010.020.030.040 and dashed ip-10-20-30-40.ec2.internal",
    "v6 [FD00::17]:5222, fd00:0:0:0:0:0:0:17%eth0, host_fd00::17_x",
    "hosts x_db01.corp.internal, DB01.CORP.INTERNAL., db01.corp.internal_old",
]
SECRETS = ["10.20.30.40", "10-20-30-40", "0a14", "010.020", "fd00", "FD00", "db01", "DB01"]


def test_every_form_of_an_internal_address_is_translated(site):
    agent = Client(site.port, "127.0.0.52", AGENT)
    hello_agent(agent, AGENT, PASSWORD)
    customer = Client(site.port, "127.0.0.53", "customer")
    hello_customer(customer)
    answer_interview(customer, {"name": "Dana", "topic": "billing"})
    offer = agent.expect("offer")
    conversation = offer["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    customer.expect("connected", conversation=conversation)
    for text in TYPED:
        fid = agent.new_id("a")
        agent.send({"type": "message", "conversation": conversation, "text": text, "id": fid})
        msg = agent.expect("ack", id=fid)["msg"]
        customer.expect("message", msg=msg)
    texts = [f["text"] for f in customer.frames_of("message") if f.get("from") == "agent"]
    leaks = [(secret, text) for text in texts for secret in SECRETS if secret in text]
    assert not leaks, texts
    assert texts[1] == (
        "in words host_[internal], [internal]_backup, [internal].nip.io, x[internal]y"
    )
    customer.send({"type": "end"})
    customer.expect("ended", conversation=conversation)
    customer.hang_up()
    agent.hang_up()
