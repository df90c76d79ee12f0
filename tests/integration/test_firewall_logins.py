"""Login lockout over real sockets (addresses given by a trusted proxy's PROXY headers):
guesses spread over many addresses slow down the guessing but do not lock the real agent
out of the place it logs in from; a successful login of another account does not wipe an
address's failures."""

from __future__ import annotations

import fw_site
import harness
import pytest
from fw_site import Client
from jsonim_client import hello_agent

from firewall import proxyproto

RULES = "proxy { trusted 127.0.0.2; }\n"
ACCOUNTS = {"anna": "anna-Secret-1", "bob": "bob-Secret-2", "mallory": "mallory-Secret-3"}
HOME = "203.0.113.10"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-logins")
    config, _ = fw_site.write_config(root, RULES)
    config.write_text(
        config.read_text().replace("[agents]\n", "[agents]\nlogin_failures_free = 2\n", 1)
    )
    for name, password in ACCOUNTS.items():
        harness.add_agent(config, name, password, name.title())
    gateway = harness.start_gateway(root / "cwd", config)
    yield gateway
    gateway.stop()


def from_address(site, source: str, name: str) -> Client:
    header = proxyproto.v1_header((source, 40000), ("127.0.0.1", site.port))
    return Client(site.port, "127.0.0.2", name, first=header)


def attempt(site, source: str, user: str, password: str) -> dict:
    """One agent hello from ``source``; the welcome or the error."""
    client = from_address(site, source, f"{user} from {source}")
    client.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "desk", "version": "1"},
            "auth": {"user": user, "password": password},
        }
    )
    answer = client.expect_any(["welcome", "error"])
    client.close()
    return answer


def test_guessing_from_many_addresses_does_not_lock_the_agent_out_at_home(site):
    home = from_address(site, HOME, "anna at home")
    hello_agent(home, "anna", ACCOUNTS["anna"])
    home.hang_up()
    answers = [attempt(site, f"198.51.100.{i}", "anna", "guess") for i in range(1, 11)]
    assert answers[0]["text"] == "authentication failed"
    # The account's free failures (four times an address's) are spent: guessing from
    # anywhere new is held back ...
    assert answers[-1]["text"].startswith("too many failed logins"), answers
    # ... but not the agent, from where it logs in.
    assert attempt(site, HOME, "anna", ACCOUNTS["anna"])["type"] == "welcome"


def test_another_accounts_login_does_not_wipe_an_addresss_failures(site):
    attacker = "198.51.100.50"
    for _ in range(2):  # the free failures
        assert attempt(site, attacker, "bob", "guess")["text"] == "authentication failed"
    assert attempt(site, attacker, "mallory", ACCOUNTS["mallory"])["type"] == "welcome"
    assert attempt(site, attacker, "bob", "guess")["text"] == "authentication failed"
    assert attempt(site, attacker, "bob", "guess")["text"].startswith("too many failed logins")
