"""A cluster of three nodes on Redis and PostgreSQL behind HAProxy, on loopback.

Customers and agents on different nodes and protocols converse both ways; transfers
cross nodes; many agents and customers connect to all nodes at once and no agent is
ever over capacity, no conversation is offered twice at once, none is lost; a node
killed mid-conversation loses no acknowledged message and its queued customers keep
their order; a node drained with SIGTERM hands its conversations over; Redis and
PostgreSQL stopped and started again. One cluster serves the module.
"""

from __future__ import annotations

import random
import re
import time

import harness
import pytest
from cluster_site import HAProxy, Node, Redis, node_config
from irc_peers import LibClient
from jsonim_client import (
    JsonImClient,
    answer_interview,
    exchange,
    hello_agent,
    hello_customer,
    set_presence,
)
from pg_server import PgServer

NODES = ("node1", "node2", "node3")
AGENTS = {
    "anna": "anna-Secret-1",
    "bob": "bob-Secret-2",
    "cleo": "cleo-Secret-3",
}
STRESS_AGENTS = [f"s{i:02d}" for i in range(9)]
STRESS_PASSWORD = "stress-Secret-0"


class Cluster:
    """The module's cluster: Redis, PostgreSQL, HAProxy and the nodes, by name."""

    def __init__(self, tmp) -> None:
        self.tmp = tmp
        self.redis = Redis(tmp / "redis")
        self.pg = PgServer()
        self.nodes: dict[str, Node] = {}
        self.haproxy: HAProxy | None = None
        self.config = None

    def start(self) -> None:
        self.redis.start()
        self.pg.start()
        self.dsn = self.pg.new_database()
        for name in NODES:
            config = node_config(self.tmp / name, name, self.redis.port, self.dsn)
            self.nodes[name] = Node(name, self.tmp / name / "cwd", config)
        self.config = self.nodes["node1"].config
        for name, password in AGENTS.items():
            harness.add_agent(self.config, name, password, name.title())
        for name in STRESS_AGENTS:
            harness.admin(self.config, "agent", "add", name, "--password-stdin",
                          "--display-name", name.upper(), "--skill", "billing:4",
                          stdin=STRESS_PASSWORD + "\n")  # fmt: skip
        for node in self.nodes.values():
            node.start()
        self.haproxy = HAProxy(self.tmp / "haproxy", {n: x.port for n, x in self.nodes.items()})
        self.haproxy.start()

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.gateway is not None and node.gateway.proc.poll() is None:
                node.stop()
        if self.haproxy is not None:
            self.haproxy.stop()
        self.redis.stop()
        self.pg.stop()

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def stored(self, conversation: str) -> dict[str, str]:
        import psycopg

        with psycopg.connect(self.dsn) as raw:
            rows = raw.execute(
                "SELECT id, text FROM messages WHERE conversation = %s", (conversation,)
            ).fetchall()
        return dict(rows)

    def agent_load(self, name: str) -> dict[str, str]:
        """The load fields of an agent's Redis record."""
        out = self.redis.command("HGETALL", f"imgw:a:{name}").split("\n")
        pairs = dict(zip(out[::2], out[1::2], strict=False))
        return {k: v for k, v in pairs.items() if k.startswith(("o:", "c:"))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    site = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        site.start()
        yield site
    finally:
        site.stop()


def _agent(node: Node, name: str, status: str = "available") -> JsonImClient:
    client = node.connect(f"agent {name}@{node.name}")
    password = AGENTS.get(name, STRESS_PASSWORD)
    hello_agent(client, name, password, status=status)
    return client


def _customer(client: JsonImClient, name: str = "Dana") -> dict:
    welcome = hello_customer(client, identity={"name": name}, topic="billing")
    answer_interview(client, {"name": name, "topic": "billing"})
    return welcome


def _connect(customer: JsonImClient, agent: JsonImClient) -> str:
    offer = agent.expect("offer")
    agent.send({"type": "accept", "offer": offer["offer"]})
    conversation = agent.expect("connected")["conversation"]
    assert conversation == offer["conversation"]
    customer.expect("connected", conversation=conversation)
    return conversation


def _end(agent: JsonImClient, customer: JsonImClient, conversation: str) -> None:
    agent.send({"type": "end", "conversation": conversation})
    customer.expect("ended", conversation=conversation)
    agent.expect("ended", conversation=conversation)


def test_customer_and_agent_on_different_nodes_converse_both_ways(cluster):
    anna = _agent(cluster.node("node2"), "anna")
    customer = cluster.node("node1").connect("customer@node1")
    _customer(customer)
    conversation = _connect(customer, anna)
    exchange(customer, anna, conversation, "my invoice is wrong", "Let me look.")
    customer.send({"type": "typing", "state": "active"})
    anna.expect("typing", conversation=conversation, state="active")
    exchange(customer, anna, conversation, "thanks", "You are welcome.")
    stored = cluster.stored(conversation)
    assert {"my invoice is wrong", "Let me look.", "thanks", "You are welcome."} <= set(
        stored.values()
    )
    _end(anna, customer, conversation)
    # The agent's seat is free again in Redis, whichever node made the change.
    assert cluster.agent_load("anna") == {}
    anna.close()
    customer.close()


def test_irc_customer_through_one_node_with_a_jsonim_agent_on_another(cluster):
    bob = _agent(cluster.node("node1"), "bob")
    customer = LibClient(cluster.node("node3").irc_port, "dana", version="itest-irc 20.5.0")
    customer.wait(lambda e: e.type == "welcome")
    customer.say("Support", "hello")
    customer.wait_privmsg("What is your name", source="Support")
    customer.say("Support", "Dana")
    customer.wait_privmsg("What can we help you with", source="Support")
    customer.say("Support", "1")
    offer = bob.expect("offer")
    assert offer["customer"]["protocol"] == "irc"
    bob.send({"type": "accept", "offer": offer["offer"]})
    conversation = bob.expect("connected")["conversation"]
    customer.wait_privmsg("You are now talking with Bob", source="Support")
    bob.send({"type": "message", "conversation": conversation, "text": "Hi Dana!", "id": "a1"})
    assert bob.expect("ack", id="a1")["msg"]
    customer.wait_privmsg("^Hi Dana!$", source="Bob")
    customer.say("Bob", "my invoice is wrong")
    assert bob.expect("message", conversation=conversation)["text"] == "my invoice is wrong"
    bob.send({"type": "end", "conversation": conversation})
    customer.wait_privmsg("The conversation has ended", source="Support")
    bob.expect("ended", conversation=conversation)
    customer.close()
    bob.close()


def test_through_haproxy_with_the_customers_real_address(cluster):
    cleo = _agent(cluster.node("node3"), "cleo")
    customer = JsonImClient(cluster.haproxy.port, name="customer via haproxy")
    _customer(customer, "Hana")
    conversation = _connect(customer, cleo)
    exchange(customer, cleo, conversation, "hello through the balancer", "Hello!")
    _end(cleo, customer, conversation)
    cleo.close()
    customer.close()


def test_transfer_to_a_colleague_on_a_third_node(cluster):
    anna = _agent(cluster.node("node2"), "anna")
    customer = cluster.node("node1").connect("customer@node1")
    _customer(customer, "Ivo")
    conversation = _connect(customer, anna)
    exchange(customer, anna, conversation, "first question", "First answer.")
    bob = _agent(cluster.node("node3"), "bob")
    anna.send({"type": "transfer", "conversation": conversation, "to": {"agent": "bob"}})
    anna.expect("ended", conversation=conversation)
    offer = bob.expect("offer", conversation=conversation)
    bob.send({"type": "accept", "offer": offer["offer"]})
    connected = bob.expect("connected", conversation=conversation)
    assert "first question" in [h["text"] for h in connected.get("history", [])]
    exchange(customer, bob, conversation, "second question", "Second answer.")
    _end(bob, customer, conversation)
    assert cluster.agent_load("anna") == {} and cluster.agent_load("bob") == {}
    for c in (anna, bob, customer):
        c.close()
