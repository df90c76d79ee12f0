"""The admin HTTP API of a real gateway, and the imgateway-admin commands that use it."""

from __future__ import annotations

import json
import stat

import harness
import pytest
from jsonim_client import exchange
from ops_helpers import admin_token, agent, api, http, queued_customer, take_offer

PASSWORDS = {"anna": "anna-Secret-1", "bob": "bob-Secret-2"}


@pytest.fixture
def live(tmp_path, monkeypatch):
    config = harness.write_config(tmp_path)
    for name, password in PASSWORDS.items():
        harness.add_agent(config, name, password, name.capitalize())
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    port = gateway.listener_port("admin")
    # The CLI reads the token the gateway wrote; the port is a test's port 0.
    monkeypatch.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("IMGATEWAY_ADMIN_TOKEN", raising=False)
    yield config, gateway, port
    gateway.stop()


def test_token_file_and_refusals(live, tmp_path):
    _, gateway, port = live
    token = admin_token(gateway)
    token_file = tmp_path / "data" / "admin.token"
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    status, _, _ = http("GET", f"http://127.0.0.1:{port}/v1/queues", token="wrong")
    assert status == 401
    gateway.wait_for_log(r"auth failure protocol=admin user=- address=127\.0\.0\.1$", 5)
    status, queues = api(port, token, "GET", "/v1/queues")
    assert status == 200 and [q["name"] for q in queues] == ["general"], queues


def test_cli_queues_live_state_transfer_end_and_logout(live, tmp_path):
    config, gateway, port = live
    customer = queued_customer(gateway, "Dana")
    queues = json.loads(harness.admin(config, "queues", "--json").stdout)
    assert queues[0]["depth"] == 1, queues
    assert "general" in harness.admin(config, "queues").stdout

    anna = agent(gateway, "anna", PASSWORDS["anna"])
    conversation = take_offer(anna, customer)
    exchange(customer, anna, conversation, "Hello", "Hi there")
    [listed] = json.loads(harness.admin(config, "live", "--json").stdout)
    assert (listed["id"], listed["state"], listed["agent"]) == (conversation, "connected", "anna")
    assert conversation in harness.admin(config, "live").stdout

    bob = agent(gateway, "bob", PASSWORDS["bob"])
    out = harness.admin(config, "transfer", conversation, "--agent", "bob").stdout
    assert f"conversation {conversation} transferred to bob" in out
    assert anna.expect("ended", conversation=conversation)["reason"] == "agent"
    assert take_offer(bob, customer) == conversation

    harness.admin(config, "agent", "state", "anna", "away")
    assert anna.expect("message", text="A supervisor set you away.")["from"] == "system"
    status, agents = api(port, admin_token(gateway), "GET", "/v1/agents")
    assert {a["name"]: a["status"] for a in agents} == {"anna": "away", "bob": "available"}

    status, _, raw = http(
        "GET",
        f"http://127.0.0.1:{port}/v1/conversations/{conversation}/transcript?format=text",
        token=admin_token(gateway),
    )
    assert status == 200 and "customer: Hello" in raw.decode(), raw

    harness.admin(config, "end", conversation)
    assert customer.expect("ended", conversation=conversation)["reason"] == "agent"
    assert bob.expect("ended", conversation=conversation)["reason"] == "agent"
    assert "no live conversations" in harness.admin(config, "live").stdout

    harness.admin(config, "agent", "logout", "bob")
    assert bob.closed()
    failed = harness.admin(config, "agent", "logout", "bob", check=False)
    assert failed.returncode == 1 and "not logged in" in failed.stderr, failed
    failed = harness.admin(config, "end", "c-nonexistent", check=False)
    assert failed.returncode == 1, failed
    customer.close()
    anna.hang_up()


def test_cli_without_a_reachable_gateway_fails_cleanly(tmp_path, monkeypatch):
    config = harness.write_config(tmp_path)
    monkeypatch.setenv("IMGATEWAY_ADMIN_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("IMGATEWAY_ADMIN_TOKEN", "whatever")
    failed = harness.admin(config, "queues", check=False)
    assert failed.returncode == 1 and "cannot reach the admin API" in failed.stderr, failed
