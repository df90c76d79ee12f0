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
import signal
import subprocess
import time

import cluster_site
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
            harness.admin(
                self.config,
                "agent",
                "add",
                name,
                "--password-stdin",
                "--display-name",
                name.upper(),
                "--skill",
                "billing:4",
                stdin=STRESS_PASSWORD + "\n",
            )
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


@pytest.fixture(autouse=True)
def _clean_slate():
    """Whatever a test leaves open (it failed midway) is ended and closed after it."""
    yield
    cluster_site.close_opened()


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
    cluster_site.OPENED.append(customer)
    welcome = _customer(customer, "Hana")
    # The node saw the customer's own address (PROXY v2 from HAProxy), not HAProxy's.
    pattern = rf"JSON-IM (\S+): customer session {welcome['session']}"
    deadline = time.monotonic() + 10
    while not (
        seen := [
            m.group(1)
            for n in cluster.nodes.values()
            for line in list(n.gateway.lines)
            if (m := re.search(pattern, line))
        ]
    ):
        assert time.monotonic() < deadline, "no node logged the customer's session"
        time.sleep(0.05)
    assert len(seen) == 1 and seen[0].startswith("127.0.0.1:"), seen
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
    # The conversation's node decides the transfer: once it has heard that bob is free.
    cluster.node("node1").wait_sees("bob", "available")
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


def test_admin_cluster_and_metrics_show_every_node(cluster, monkeypatch):
    import json
    import urllib.request

    node = cluster.node("node2")
    admin_port = node.gateway.listener_port("admin")
    monkeypatch.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{admin_port}")
    monkeypatch.delenv("IMGATEWAY_ADMIN_TOKEN", raising=False)
    view = json.loads(harness.admin(node.config, "cluster", "--json").stdout)
    assert view["clustered"] is True and view["node"] == "node2" and view["redis"] is True
    assert [n["node"] for n in view["nodes"]] == list(NODES)
    assert {n["state"] for n in view["nodes"]} == {"up"}
    table = harness.admin(node.config, "cluster").stdout
    assert "node node2; redis reachable" in table and "node3" in table
    metrics_port = node.gateway.listener_port("metrics")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'imgateway_cluster_nodes{state="up"} 3.0' in text
    assert "imgateway_cluster_redis_up 1.0" in text
    assert 'imgateway_cluster_node_conversations{node="node1"}' in text


STRESS_SEED = 1717
STRESS_CUSTOMERS = 30
STRESS_CAPACITY = 2  # agents.default_capacity in harness.BASE_CONFIG


class _Ledger:
    """What every agent has been sent, checked as it arrives: seats and rings."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.load: dict[str, set[str]] = {}  # agent -> offer ids and conversations held
        self.ringing: dict[str, str] = {}  # conversation -> the agent it rings now
        self.violations: list[str] = []
        self.served: set[str] = set()

    def offered(self, agent: str, offer: str, conversation: str) -> None:
        with self.lock:
            seats = self.load.setdefault(agent, set())
            seats.add(offer)
            if len(seats) > STRESS_CAPACITY:
                self.violations.append(f"{agent} over capacity: {sorted(seats)}")
            other = self.ringing.get(conversation)
            if other is not None and other != agent:
                self.violations.append(f"{conversation} rings {other} and {agent} at once")
            self.ringing[conversation] = agent

    def answered(self, agent: str, offer: str, conversation: str, taken: bool) -> None:
        with self.lock:
            seats = self.load.setdefault(agent, set())
            seats.discard(offer)
            if self.ringing.get(conversation) == agent:
                del self.ringing[conversation]
            if taken:
                seats.add(conversation)

    def ended(self, agent: str, conversation: str) -> None:
        with self.lock:
            self.load.get(agent, set()).discard(conversation)
            self.served.add(conversation)


def _stress_agent(node: Node, name: str, rng: random.Random, ledger: _Ledger, done, ready) -> None:
    client = _agent(node, name)
    ready.release()
    offers: dict[str, str] = {}
    try:
        while not done.is_set():
            try:
                frame = client.expect_any(["offer", "revoked", "message", "ended"], timeout=0.5)
            except AssertionError:
                if client._eof:
                    raise
                continue
            kind = frame["type"]
            if kind == "offer":
                offers[frame["offer"]] = frame["conversation"]
                ledger.offered(name, frame["offer"], frame["conversation"])
                take = rng.random() > 0.2
                ledger.answered(name, frame["offer"], frame["conversation"], take)
                client.send({"type": "accept" if take else "reject", "offer": frame["offer"]})
            elif kind == "revoked":
                conversation = offers.get(frame["offer"], "")
                ledger.answered(name, frame["offer"], conversation, False)
            elif kind == "message" and frame.get("from") == "customer":
                client.send(
                    {
                        "type": "message",
                        "conversation": frame["conversation"],
                        "text": "re: " + frame["text"],
                        "id": client.new_id("r"),
                    }
                )
            elif kind == "ended":
                ledger.ended(name, frame["conversation"])
    finally:
        client.close()


def _stress_customer(node: Node, index: int, results: dict) -> None:
    client = node.connect(f"stress customer {index}")
    try:
        _customer(client, f"Cust{index}")
        conversation = client.expect("connected", timeout=60)["conversation"]
        text = f"question {index}"
        client.send({"type": "message", "text": text, "id": "q"})
        client.expect("ack", id="q")
        client.expect("message", text="re: " + text, timeout=30)
        client.send({"type": "end"})
        client.expect("ended", conversation=conversation)
        results[index] = conversation
    finally:
        client.close()


def test_many_agents_and_customers_at_once_on_every_node(cluster):
    import threading

    rng = random.Random(STRESS_SEED)
    ledger = _Ledger()
    done = threading.Event()
    ready = threading.Semaphore(0)
    names = list(cluster.nodes)
    agents = [
        threading.Thread(
            target=_stress_agent,
            args=(
                cluster.node(names[i % 3]),
                name,
                random.Random(rng.random()),
                ledger,
                done,
                ready,
            ),
            daemon=True,
        )
        for i, name in enumerate(STRESS_AGENTS)
    ]
    for thread in agents:
        thread.start()
    # Every agent is logged in and available on its node before the customers come.
    for _ in STRESS_AGENTS:
        assert ready.acquire(timeout=20), "stress agents did not all log in"
    results: dict[int, str] = {}
    customers = [
        threading.Thread(
            target=_stress_customer,
            args=(cluster.node(rng.choice(names)), i, results),
            daemon=True,
        )
        for i in range(STRESS_CUSTOMERS)
    ]
    for thread in customers:
        thread.start()
    for thread in customers:
        thread.join(90)
    # Every seat is free again in Redis once the last conversation's end is recorded.
    deadline = time.monotonic() + 5
    while any(cluster.agent_load(name) for name in STRESS_AGENTS):
        assert time.monotonic() < deadline, {n: cluster.agent_load(n) for n in STRESS_AGENTS}
        time.sleep(0.05)
    done.set()
    for thread in agents:
        thread.join(10)
    assert ledger.violations == []
    assert sorted(results) == list(range(STRESS_CUSTOMERS)), "customers not served"
    assert len(set(results.values())) == STRESS_CUSTOMERS
    assert ledger.served == set(results.values())


def _refused(node: Node) -> dict:
    """A new customer on ``node`` is refused: the error frame."""
    client = node.connect("refused customer")
    try:
        client.send(
            {
                "type": "hello",
                "protocol": "jsonim/1",
                "role": "customer",
                "client": {"name": "itest", "version": "1"},
                "features": [],
            }
        )
        return client.expect("error")
    finally:
        client.close()


def test_redis_stopped_and_started_again(cluster):
    node = cluster.node("node1")
    anna = _agent(node, "anna")
    customer = node.connect("customer@node1")
    _customer(customer, "Ola")
    conversation = _connect(customer, anna)
    mark = node.log_mark()
    cluster.redis.stop()
    node.wait_log(r"redis \S+ not reachable", mark)
    # New work is refused with a clear error; the conversation hosted here goes on.
    assert _refused(node)["code"] == "unavailable"
    exchange(customer, anna, conversation, "still there?", "Yes, still here.")
    mark = node.log_mark()
    marks = {n.name: n.log_mark() for n in cluster.nodes.values()}
    cluster.redis.start()
    for other in cluster.nodes.values():
        other.wait_log(r"cluster: node \S+ in step with redis", marks[other.name])
    # Redis lost everything it held: every node wrote its part again.
    assert cluster.agent_load("anna") == {f"c:{conversation}": "jsonim|node1"}
    bob = _agent(cluster.node("node2"), "bob")
    late = cluster.node("node3").connect("customer after the outage")
    _customer(late, "Pia")
    second = _connect(late, bob)
    exchange(late, bob, second, "hello again", "Hello!")
    exchange(customer, anna, conversation, "and now?", "All good.")
    _end(anna, customer, conversation)
    _end(bob, late, second)
    for c in (anna, bob, customer, late):
        c.close()


def test_postgresql_stopped_and_started_again(cluster):
    node = cluster.node("node2")
    cleo = _agent(cluster.node("node3"), "cleo")
    customer = node.connect("customer@node2")
    _customer(customer, "Quinn")
    conversation = _connect(customer, cleo)
    exchange(customer, cleo, conversation, "before", "Before.")
    cluster.pg.halt()
    customer.send({"type": "message", "text": "while the database is down", "id": "down"})
    error = customer.expect("error", id="down")
    assert error["code"] == "internal", error
    mark = node.log_mark()
    cluster.pg.resume()
    # The store connects again at its next write; messages are acknowledged once stored.
    acked = None
    deadline = time.monotonic() + 20
    while acked is None:
        assert time.monotonic() < deadline, "no message stored after PostgreSQL came back"
        mid = customer.new_id("up")
        customer.send({"type": "message", "text": "after", "id": mid})
        frame = customer.expect_any(["ack", "error"], timeout=10, id=mid)
        if frame["type"] == "ack":
            acked = frame["msg"]
    assert node.gateway.proc.poll() is None and mark >= 0
    assert cluster.stored(conversation)[acked] == "after"
    _end(cleo, customer, conversation)
    cleo.close()
    customer.close()


def _resume(node: Node, token: str, name: str, timeout: float = 30.0) -> tuple[JsonImClient, dict]:
    """Resume with ``token`` on ``node``, again while told ``unavailable`` (moving here)."""
    deadline = time.monotonic() + timeout
    while True:
        client = node.connect(name)
        client.send(
            {
                "type": "hello",
                "protocol": "jsonim/1",
                "role": "customer",
                "client": {"name": "itest", "version": "1"},
                "features": ["typing"],
                "resume": token,
            }
        )
        frame = client.expect_any(["welcome", "error"], timeout=10)
        if frame["type"] == "welcome":
            return client, frame
        client.close()
        assert frame["code"] == "unavailable", frame
        assert time.monotonic() < deadline, f"could not resume on {node.name}: {frame}"
        # Told to come back in a moment: the hand-over is on its way.
        time.sleep(0.1)


def test_sigterm_hands_conversations_to_the_other_nodes_and_the_node_rejoins(cluster):
    draining = cluster.node("node3")
    cleo = _agent(cluster.node("node1"), "cleo")
    customer = draining.connect("customer@node3")
    welcome = _customer(customer, "Rosa")
    conversation = _connect(customer, cleo)
    exchange(customer, cleo, conversation, "before the restart", "Noted.")
    assert draining.stop() in (0, -signal.SIGTERM)
    assert customer.closed(10)
    back, _ = _resume(cluster.node("node2"), welcome["resume"], "customer back@node2")
    back.expect("connected", conversation=conversation)
    cleo.expect("connected", conversation=conversation)
    exchange(back, cleo, conversation, "after the restart", "Still here.")
    # The node starts again and takes load again.
    draining.start()
    bob = _agent(draining, "bob")
    set_presence(cleo, "away")
    cluster.node("node2").wait_sees("cleo", "away")
    cluster.node("node2").wait_sees("bob", "available")
    late = cluster.node("node2").connect("customer for the rejoined node")
    _customer(late, "Sven")
    second = _connect(late, bob)
    exchange(late, bob, second, "hi", "Hello from the rejoined node.")
    _end(bob, late, second)
    _end(cleo, back, conversation)
    for c in (cleo, bob, back, late, customer):
        c.close()


def test_kill_9_mid_conversation_loses_no_acknowledged_message(cluster):
    victim = cluster.node("node1")
    anna = _agent(cluster.node("node2"), "anna")
    customer = victim.connect("customer@node1")
    welcome = _customer(customer, "Tara")
    conversation = _connect(customer, anna)
    # Two more wait in line while Anna is away, in this order.
    set_presence(anna, "away")
    victim.wait_sees("anna", "away")
    queued, tokens = [], []
    for name in ("First", "Second"):
        client = victim.connect(f"queued {name}")
        tokens.append(_customer(client, name)["resume"])
        queued.append(client)
    for i in range(60):
        customer.send({"type": "message", "text": f"burst {i}", "id": f"b{i}"})
    customer.expect("ack", id="b10")
    victim.kill()
    customer.closed(10)
    acked = customer.acked()
    assert len(acked) >= 11
    for client in queued:
        client.closed(10)
    # A survivor takes the lost node's conversations; the customer resumes elsewhere.
    back, _ = _resume(cluster.node("node3"), welcome["resume"], "customer back@node3")
    back.expect("connected", conversation=conversation)
    again = anna.expect("connected", conversation=conversation, timeout=20)
    told = {h["text"] for h in again.get("history", [])} | {
        f["text"] for f in anna.frames_of("message") if f.get("conversation") == conversation
    }
    stored = cluster.stored(conversation)
    for msg, text in acked.items():
        assert stored.get(msg) == text, msg
        assert text in told, text
    exchange(back, anna, conversation, "are you there?", "Yes.")
    # The queued customers, held unoffered while their connections are gone, come
    # back (the second first) and keep their order: the first is offered first.
    returned = [
        _resume(cluster.node("node2"), token, f"queued back {i}")[0]
        for i, token in reversed(list(enumerate(tokens)))
    ]
    set_presence(anna, "available")
    first = anna.expect("offer", timeout=20)
    assert first["customer"]["identity"]["name"] == "First", first
    for c in (anna, back, customer, *queued, *returned):
        c.close()


def test_two_workers_on_one_host_share_the_listeners(cluster, tmp_path):
    config = node_config(tmp_path, "wk", cluster.redis.port, cluster.dsn)
    text = config.read_text().replace('prefix = "imgw:"', "")
    text = text.replace("[cluster]\n", '[cluster]\nworkers = 2\nprefix = "wk:"\n')
    config.write_text(text)
    supervisor = harness.Gateway(tmp_path / "cwd", config, "workers")
    try:
        shared = r"jsonim listener \S+ listening on 127\.0\.0\.1:(\d+) \(shared by 2 workers\)"
        port = int(supervisor.wait_for_log(shared, 20).group(1))
        supervisor.port = port
        for index in range(2):
            supervisor.wait_for_log(rf"cluster: node wk-w{index} in step with redis", 30)
        nodes = set(cluster.redis.command("SMEMBERS", "wk:nodes").split())
        assert nodes == {"wk-w0", "wk-w1"}
        # Wherever the kernel puts each connection, customers and agents converse.
        for i in range(4):
            agent = supervisor.connect(f"agent {i}")
            hello_agent(agent, STRESS_AGENTS[i], STRESS_PASSWORD)
            customer = supervisor.connect(f"customer {i}")
            _customer(customer, f"W{i}")
            conversation = _connect(customer, agent)
            exchange(customer, agent, conversation, f"question {i}", f"answer {i}")
            _end(agent, customer, conversation)
            agent.close()
            customer.close()
        # Each worker bans through its own admin listener, with the one token the
        # supervisor wrote for all, and keeps its bans in a file of its own in the
        # shared data directory.
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        admin = r"admin listener \S+ listening on 127\.0\.0\.1:(\d+)"
        ports = sorted({int(p) for p in re.findall(admin, "\n".join(supervisor.lines))})
        assert len(ports) == 2, ports
        for port, address in zip(ports, ("192.0.2.10", "192.0.2.11"), strict=True):
            env = harness.child_env()
            env["IMGATEWAY_ADMIN_URL"] = f"http://127.0.0.1:{port}"
            env["IMGATEWAY_ADMIN_TOKEN"] = token
            subprocess.run(
                [str(harness.BIN / "imgateway-admin"), "fw", "bans", "add", address],
                env=env,
                check=True,
                capture_output=True,
                timeout=harness.COMMAND_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
    finally:
        status = supervisor.stop()
    assert status in (0, -signal.SIGTERM), supervisor.log_tail()
    assert "worker 1 still running" not in supervisor.log()
    kept = {
        name: [
            line.split()[0]
            for line in (tmp_path / "data" / f"firewall-{name}.bans").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        for name in ("wk-w0", "wk-w1")
    }
    assert sorted(kept.values()) == [["192.0.2.10"], ["192.0.2.11"]], kept
