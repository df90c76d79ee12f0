"""``limit rate`` on role rules over real sockets: a connection counts once against its
own role's rule, and one role's connections never drain another role's bucket."""

from __future__ import annotations

import fw_site
import harness
import pytest
from fw_site import Client
from jsonim_client import hello_agent, hello_customer

RULES = """\
chain input {
    policy accept;
    role customer limit rate 1/hour burst 2 accept;
    role customer reject;
    role agent limit rate 1/hour burst 1 accept;
    role agent reject;
}
"""
AGENT, PASSWORD = "anna", "anna-Secret-1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-roles")
    config, _ = fw_site.write_config(root, RULES)
    harness.add_agent(config, AGENT, PASSWORD, "Anna")
    gateway = harness.start_gateway(root / "cwd", config)
    yield gateway
    gateway.stop()


def refused(client: Client) -> None:
    error = client.expect("error")
    assert (error["code"], error["text"]) == ("not_allowed", "refused by the firewall")
    assert client.closed(10)


def test_each_connection_counts_once_against_its_own_roles_bucket(site):
    # Customers first: the burst of 2 lets exactly two in.
    first, second = (Client(site.port, "127.0.0.61", f"customer {i}") for i in (1, 2))
    hello_customer(first)
    hello_customer(second)
    third = Client(site.port, "127.0.0.61", "customer 3")
    third.send({"type": "hello", "protocol": "jsonim/1", "role": "customer"})
    refused(third)
    # The agents' bucket (burst 1) is whole: customers took nothing from it.
    hello_agent(Client(site.port, "127.0.0.61", "agent 1"), AGENT, PASSWORD)
    again = Client(site.port, "127.0.0.61", "agent 2")
    again.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "desk", "version": "1"},
            "auth": {"user": AGENT, "password": PASSWORD},
        }
    )
    refused(again)
    rows = {r["handle"]: r["connections"] for r in fw_site.fw_json(site, "list")}
    assert rows == {1: 2, 2: 1, 3: 1, 4: 1}
