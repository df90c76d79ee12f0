"""Routing results that were wrong in use, over real sockets against a real gateway:

- the decision's reason rides in the offer and stays with the conversation (item 3);
- a rules file requiring a feature no agent protocol grants stops startup (item 5);
- positions and waits follow the order customers are served, and no wait is promised
  while nobody can serve (item 7);
- redirect hosting never sends a customer of the gateway's own IRC listener elsewhere
  (item 8);
- a customer's hello claim promotes nobody; a site-signed identity does (item 9).
"""

from __future__ import annotations

import hashlib
import hmac
import json

import harness
import pytest
from irc_peers import LibClient, irc_ports
from irc_peers import write_config as irc_config
from jsonim_client import hello_agent, hello_customer, set_presence

PASSWORD = "gaps-Secret-1"
SECRET = "site-identity-secret-0123456789"
QUICK = 5.0

RULES = """\
[[rules]]
name = "vip"
priority = 10
[rules.match]
"identity.tier" = "vip"
[[rules.targets]]
strategy = "longest_idle"

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def signature(identity: dict) -> str:
    body = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaps")
    (root / "routing.toml").write_text(RULES)
    config = irc_config(root, listeners=["tcp:0:interface=127.0.0.1"])
    text = config.read_text()
    text = text.replace("[routing]\n", f'[routing]\nrules = "{root / "routing.toml"}"\n')
    text = text.replace("[queues.general]\n", '[queues.general]\nhosting = "redirect"\n')
    text = text.replace("[jsonim]\n", f'[jsonim]\nidentity_secret = "{SECRET}"\n')
    config.write_text(text)
    harness.admin(
        config, "agent", "add", "anna", "--password-stdin", "--display-name", "Robin",
        "--capacity", "1", "--address", "irc:anna", stdin=PASSWORD + "\n",
    )  # fmt: skip
    gateway = harness.start_gateway(root / "cwd", config, "gaps")
    ports = irc_ports(gateway, 1)
    yield gateway, config, ports
    gateway.stop()


def customer(gateway, name: str, **hello):
    conn = gateway.connect(f"customer {name}")
    identity = {"name": name, **hello.pop("identity", {})}
    hello_customer(conn, identity=identity, topic="billing", **hello)
    return conn


def agent(gateway):
    conn = gateway.connect("anna")
    hello_agent(conn, "anna", PASSWORD)
    return conn


def test_the_offer_carries_the_decision_and_the_transcript_keeps_it(site):
    gateway, config, _ = site
    anna = agent(gateway)
    set_presence(anna, "available")
    dana = customer(gateway, "Dana")
    offer = anna.expect("offer", QUICK)
    assert offer["routing"] == {
        "rule": "default",
        "target": 1,
        "strategy": "longest_idle",
        "compatibility": "default",
        "source": "local",
        "reason": "rule default; compatibility default",
        "queue": "general",
        "translated": [],
    }
    conv = offer["conversation"]
    anna.send({"type": "accept", "offer": offer["offer"]})
    dana.expect("connected", QUICK)
    anna.send({"type": "end", "conversation": conv})
    dana.expect("ended", QUICK)
    text = harness.admin(config, "transcript", conv).stdout.splitlines()
    assert text[1] == (
        "routing: rule default, target 1 (longest_idle) in general; compatibility default;"
        " local: rule default; compatibility default"
    )
    stored = json.loads(harness.admin(config, "transcript", conv, "--json").stdout)
    assert stored["conversation"]["routing"] == offer["routing"]
    for conn in (dana, anna):
        conn.close()


def test_positions_follow_the_serve_order_and_only_trusted_fields_promote(site):
    gateway, _, _ = site
    busy = customer(gateway, "Bo")
    # Nobody is logged in who could serve: no wait is promised.
    assert busy.expect("queued", QUICK) == {"type": "queued", "position": 1, "eta_s": None}
    anna = agent(gateway)
    set_presence(anna, "available")
    offer = anna.expect("offer", QUICK)
    anna.send({"type": "accept", "offer": offer["offer"]})
    busy.expect("connected", QUICK)  # Anna (capacity 1) is full now

    ned = customer(gateway, "Ned")
    assert ned.expect("queued", QUICK)["position"] == 1
    # A claim in hello: not trusted, so no priority; in line after Ned.
    mal = customer(gateway, "Mal", identity={"tier": "vip"})
    assert mal.expect("queued", QUICK)["position"] == 2
    # The same tier signed by the site: priority, so first in line, and Ned is told.
    vip = {"name": "Vera", "tier": "vip"}
    vera = customer(gateway, "Vera", identity=vip, identity_signature=signature(vip))
    told = vera.expect("queued", QUICK)
    assert told["position"] == 1 and isinstance(told["eta_s"], int), told
    assert ned.expect("queued", QUICK)["position"] == 2
    assert mal.expect("queued", QUICK)["position"] == 3

    # And she is served in the order she was told.
    anna.send({"type": "end", "conversation": offer["conversation"]})
    assert anna.expect("offer", QUICK)["customer"]["identity"] == vip
    for conn in (busy, ned, mal, vera, anna):
        conn.close()


def test_redirect_hosting_stays_off_on_the_gateways_own_irc_listener(site):
    gateway, _, ports = site
    anna = agent(gateway)
    set_presence(anna, "available")
    erin = LibClient(ports["tcp"], "erin")
    erin.wait(lambda e: e.type == "welcome")
    erin.say("Support", "hello")
    erin.wait_privmsg("What is your name", source="Support")
    erin.say("Support", "Erin")
    erin.wait_privmsg("What can we help you with", source="Support")
    erin.say("Support", "billing")
    offer = anna.expect("offer", QUICK)
    anna.send({"type": "accept", "offer": offer["offer"]})
    anna.expect("connected", QUICK)
    # Relayed: redirecting would send Erin to a nick that does not exist here.
    erin.wait_privmsg("You are now talking with Robin", source="Support")
    anna.send({"type": "message", "conversation": offer["conversation"], "text": "Hi", "id": "a"})
    erin.wait_privmsg("^Hi$", source="Robin")
    assert "directly" not in erin.raw_text()
    anna.sync()
    assert not [f for f in anna.received if "directly" in json.dumps(f)]
    erin.close()
    anna.close()


def test_rules_requiring_what_no_agent_protocol_grants_stop_startup(tmp_path):
    rules = tmp_path / "routing.toml"
    rules.write_text(
        '[[compatibility.entries]]\nname = "webchat"\nclient = "webchat*"\n'
        'requires = ["file_transfer"]\nfallback = "wait"\n\n'
        '[default]\n[[default.targets]]\nstrategy = "longest_idle"\n'
    )
    config = harness.write_config(tmp_path)
    config.write_text(config.read_text().replace("[routing]\n", f'[routing]\nrules = "{rules}"\n'))
    gateway = harness.Gateway(tmp_path / "cwd", config, "bad-rules")
    status = gateway.wait_exit(30)
    gateway.stop()
    lines = [line for line in gateway.lines if line.strip()]
    assert status not in (None, 0), gateway.log_tail()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"imgateway: {rules}: compatibility.entries[0].requires[0]: 'file_transfer': no agent"
        " protocol grants it"
    ), lines
