"""The enterprise routing server sees every communication event and decides with live
state, over real sockets: a real ``twistd imrouter`` and real gateways.

- The full, ordered event stream of several conversations (a transfer, an agent's
  drop and requeue, a customer who leaves while waiting, ends) reaches the router, each
  event once, in order.
- The router decides with the live state the feed gave it (it assigns the agent its
  strategy picks from the agents' live load, where the gateway's own rules would pick
  another), and re-plans transfers.
- Its queue statistics equal the counts taken from the transcripts, on its API and as
  Prometheus metrics; several gateways share it, each counted apart.
- Stopped and started again, it gets the backlog the gateway kept meanwhile; what it
  acknowledged before survives (its journal and state on disk), and what it is sent
  twice it takes once.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import harness
import pytest
from jsonim_client import hello_agent, hello_customer, set_presence
from router_site import FeedRouter, gateway_config

PASSWORD = "feed-Secret-1"
QUICK = 5.0
# The feed sends every 50 ms; a router that is back gets the backlog within the feed's
# retry backoff (at most 5 s), plus scheduling on a busy machine.
FEED_WAIT = 20.0
TRANSFERRED = "You are being transferred to another agent. Please stay with us."
DROPPED = "Your agent was disconnected. We are connecting you with another agent."

# The router's rules: billing by least occupied.
ROUTER_RULES = """\
[[rules]]
name = "billing-least-occupied"
[rules.match]
topic = "billing"
[[rules.targets]]
strategy = "least_occupied"

[default]
[[default.targets]]
strategy = "longest_idle"
"""

# The gateway's own rules, its fallback: billing to Anna first, whatever her load.
LOCAL_RULES = """\
[[rules]]
name = "billing-anna-first"
[rules.match]
topic = "billing"
[[rules.targets]]
agents = ["anna"]
timeout_s = 30
[[rules.targets]]
strategy = "longest_idle"

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def wait_until(check, timeout: float = FEED_WAIT, what: str = "the router to catch up"):
    """Poll ``check()`` (bounded) until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}; last: {value!r}")
        time.sleep(0.05)


def start_gateway(root, router: FeedRouter, name: str) -> harness.Gateway:
    config = harness.write_config(root)
    rules = root / "routing.toml"
    rules.write_text(LOCAL_RULES)
    gateway_config(config, router, rules, name)
    text = config.read_text().replace("[queues.general]\n", "[queues.billing]\n[queues.general]\n")
    config.write_text(text)
    for agent, alias in (("anna", "Anna"), ("bob", "Bob")):
        harness.add_agent(config, agent, PASSWORD, alias)
    gateway = harness.start_gateway(root / "cwd", config, name)
    gateway.config = config
    return gateway


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    router = FeedRouter.start(
        tmp_path_factory.mktemp("router"), ROUTER_RULES, queues=("general", "billing"), texts=True
    )
    yield router
    router.stop()


def customer(gateway, name: str, topic: str = "other"):
    conn = gateway.connect(f"customer {name}")
    conn.conversation = hello_customer(conn, identity={"name": name}, topic=topic)["conversation"]
    return conn


def agent(gateway, name: str, status: str = "available"):
    conn = gateway.connect(name)
    hello_agent(conn, name, PASSWORD, status=status)
    return conn


def accept(agent_conn, customer_conn) -> dict:
    offer = agent_conn.expect("offer", QUICK)
    agent_conn.send({"type": "accept", "offer": offer["offer"]})
    agent_conn.expect("connected", QUICK, conversation=offer["conversation"])
    customer_conn.expect("connected", QUICK, conversation=offer["conversation"])
    return offer


def say(conn, conversation: str | None, text: str) -> None:
    frame = {"type": "message", "text": text, "id": conn.new_id()}
    if conversation is not None:
        frame["conversation"] = conversation
    conn.send(frame)
    conn.expect("ack", QUICK, id=frame["id"])


def events_of(router: FeedRouter, gateway: str, conversation: str) -> list[dict]:
    return [
        e
        for g, _, _, e in router.journal()
        if g == gateway and e.get("conversation") == conversation
    ]


def kinds(router: FeedRouter, gateway: str, conversation: str) -> list[str]:
    return [e["type"] for e in events_of(router, gateway, conversation)]


def ended(router: FeedRouter, gateway: str, conversation: str) -> bool:
    return kinds(router, gateway, conversation)[-1:] == ["ended"]


def scenario(gateway) -> dict[str, str]:
    """Dana (transferred), Eve (her agent drops), Fay (leaves while waiting)."""
    anna, bob = agent(gateway, "anna"), agent(gateway, "bob", status="away")
    dana = customer(gateway, "Dana")
    first = accept(anna, dana)["conversation"]
    say(dana, None, "my invoice is wrong")
    say(anna, first, "let me pass you to billing")
    set_presence(bob, "available")
    anna.send({"type": "transfer", "conversation": first, "to": {"queue": "billing"}})
    anna.expect("ended", QUICK, conversation=first)
    assert accept(bob, dana)["conversation"] == first
    say(bob, first, "fixed")
    bob.send({"type": "end", "conversation": first})
    dana.expect("ended", QUICK)

    set_presence(bob, "away")
    eve = customer(gateway, "Eve")
    second = accept(anna, eve)["conversation"]
    anna.abort()  # the agent's connection drops
    eve.expect("message", QUICK, text=DROPPED)
    set_presence(bob, "available")
    assert accept(bob, eve)["conversation"] == second
    eve.send({"type": "end"})
    eve.expect("ended", QUICK)

    set_presence(bob, "away")
    fay = customer(gateway, "Fay")
    fay.expect("queued", QUICK)
    fay.hang_up()
    bob.close()
    return {"dana": first, "eve": second, "fay": fay.conversation}


def test_the_router_gets_every_event_of_several_conversations_in_order(router, tmp_path):
    gateway = start_gateway(tmp_path / "gw-a", router, "gw-a")
    try:
        ids = scenario(gateway)
        for conversation in ids.values():
            wait_until(lambda c=conversation: ended(router, "gw-a", c))
        journal = [(g, e) for g, _, _, e in router.journal() if g == "gw-a"]
        # One stream, numbered from 1, every event once and in order.
        assert [e["seq"] for _, e in journal] == list(range(1, len(journal) + 1))
        assert journal[0][1]["type"] == "started"
        answered = ["answered", "answered"]  # name and topic, given in hello
        assert kinds(router, "gw-a", ids["dana"]) == [
            "opened", *answered, "routed", "queued", "offered", "accepted",
            "message", "message", "transferred", "message", "requeued", "routed", "queued",
            "offered", "accepted", "message", "ended",
        ]  # fmt: skip
        assert kinds(router, "gw-a", ids["eve"]) == [
            "opened", *answered, "routed", "queued", "offered", "accepted",
            "message", "requeued", "routed", "queued", "offered", "accepted", "ended",
        ]  # fmt: skip
        assert kinds(router, "gw-a", ids["fay"]) == [
            "opened", *answered, "routed", "queued", "ended",
        ]  # fmt: skip
        dana = events_of(router, "gw-a", ids["dana"])
        transfer = next(e for e in dana if e["type"] == "transferred")
        assert (transfer["agent"], transfer["to_queue"], transfer["by"]) == (
            "anna",
            "billing",
            "agent",
        )
        requeue = next(e for e in dana if e["type"] == "requeued")
        assert requeue["reason"] == "transfer"
        queued = [e["queue"] for e in dana if e["type"] == "queued"]
        assert queued == ["general", "billing"]
        texts = [(e["sender"], e.get("text")) for e in dana if e["type"] == "message"]
        assert texts == [
            ("customer", "my invoice is wrong"),
            ("agent", "let me pass you to billing"),
            ("system", TRANSFERRED),
            ("agent", "fixed"),
        ]
        assert dana[-1]["reason"] == "agent"
        eve = events_of(router, "gw-a", ids["eve"])
        assert next(e for e in eve if e["type"] == "requeued")["reason"] == "agent_dropped"
        assert eve[-1]["reason"] == "customer"
        fay = events_of(router, "gw-a", ids["fay"])
        assert (fay[-1]["reason"], fay[-1]["state"]) == ("customer", "queued")
        agents = [
            (e["type"], e.get("agent")) for _, e in journal if e["type"].startswith("agent_l")
        ]
        assert agents == [
            ("agent_login", "anna"), ("agent_login", "bob"), ("agent_logout", "anna"),
            ("agent_logout", "bob"),
        ]  # fmt: skip
    finally:
        gateway.stop()


def no_offer(agent_conn) -> None:
    agent_conn.sync(QUICK)
    offers = [f for f in agent_conn.pending() if f.get("type") == "offer"]
    assert not offers, offers


def test_the_router_decides_with_live_load_and_replans_transfers(router, tmp_path):
    gateway = start_gateway(tmp_path / "gw-b", router, "gw-b")
    try:
        anna = agent(gateway, "anna")
        bob = agent(gateway, "bob")
        ray = customer(gateway, "Ray")
        accept(anna, ray)  # the longest idle: Anna now holds one conversation

        def anna_busy():
            _, state = router.call("GET", "/v1/state")
            loads = {a["name"]: a["load"] for a in state["agents"] if a["gateway"] == "gw-b"}
            return loads == {"anna": 1, "bob": 0}

        wait_until(anna_busy, what="the router to see Anna's load")
        # Billing: the router's rule (least occupied) and its live view pick Bob; the
        # gateway's own rules would have offered Anna first.
        sam = customer(gateway, "Sam", topic="billing")
        offer = accept(bob, sam)
        assert offer["routing"]["source"] == "remote"
        assert offer["routing"]["rule"] == "billing-least-occupied"
        assert (
            "assigned bob by the routing server (least_occupied of 2 free in billing,"
            " 0 waiting ahead)" in offer["routing"]["reason"]
        ), offer["routing"]
        no_offer(anna)
        mark = len(router.lines)
        # Handed to a queue: the router re-plans it; Bob handed it on, Anna gets it.
        bob.send(
            {"type": "transfer", "conversation": offer["conversation"], "to": {"queue": "general"}}
        )
        again = accept(anna, sam)
        assert again["conversation"] == offer["conversation"]
        assert again["routing"]["reason"].startswith("transfer to general; "), again["routing"]
        assert "assigned anna by the routing server" in again["routing"]["reason"]
        router.wait_for_log(
            rf"imrouter decided {offer['conversation']} of gw-b \(transfer\): rule"
            r" billing-least-occupied; assigned anna",
            QUICK,
            mark,
        )
        for conn in (ray, sam, anna, bob):
            conn.close()
    finally:
        gateway.stop()


def transcripts(gateway) -> list[dict]:
    """Every stored conversation of a gateway with its messages (imgateway-admin)."""
    listed = json.loads(harness.admin(gateway.config, "conversations", "--json").stdout)
    return [
        json.loads(harness.admin(gateway.config, "transcript", c["id"], "--json").stdout)
        for c in listed
    ]


def test_the_router_statistics_are_the_counts_the_transcripts_give(router, tmp_path):
    gateway = start_gateway(tmp_path / "gw-c", router, "gw-c")
    try:
        ids = scenario(gateway)
        for conversation in ids.values():
            wait_until(lambda c=conversation: ended(router, "gw-c", c))
        stored = transcripts(gateway)
    finally:
        gateway.stop()
    records = [t["conversation"] for t in stored]
    lines = [(t["conversation"], m) for t in stored for m in t["messages"]]
    transfers = [c for c, m in lines if m["sender"] == "system" and m["text"] == TRANSFERRED]
    drops = [c for c, m in lines if m["sender"] == "system" and m["text"] == DROPPED]
    # Every customer arrives in general (topic "other"); a transfer was answered there.
    final = Counter((r["queue"], r["agent"] is not None) for r in records)
    expected = {
        "general": {
            "entered": len(records),
            "answered": final[("general", True)] + len(transfers),
            "abandoned": sum(
                1 for r in records if r["end_reason"] == "customer" and not r["agent"]
            ),
            "handled": final[("general", True)] + len(transfers) + len(drops),
            "transfers": len(transfers),
            "requeues": len(drops),
            "waiting": 0,
        },
        "billing": {
            "entered": sum(1 for r in records if r["queue"] == "billing"),
            "answered": final[("billing", True)],
            "abandoned": 0,
            "handled": final[("billing", True)],
            "transfers": 0,
            "requeues": 0,
            "waiting": 0,
        },
    }
    assert expected["general"] == {
        "entered": 3, "answered": 2, "abandoned": 1, "handled": 3, "transfers": 1,
        "requeues": 1, "waiting": 0,
    }  # fmt: skip
    code, stats = router.call("GET", "/v1/stats")
    assert code == 200
    queues = {q["queue"]: q for q in stats["queues"] if q["gateway"] == "gw-c"}
    for queue, figures in expected.items():
        got = {key: queues[queue][key] for key in figures}
        assert got == figures, queue
        # Each answered quickly: within the service level of 20 s.
        assert queues[queue]["answered_in_service_level"] == figures["answered"]
    assert queues["general"]["service_level"] == round(2 / 3, 4)
    [mine] = [g for g in stats["gateways"] if g["gateway"] == "gw-c"]
    assert mine["opened"] == len(records)
    assert mine["ended"] == dict(Counter(r["end_reason"] for r in records))
    assert mine["messages"] == dict(Counter(m["sender"] for _, m in lines))
    # The same figures for Prometheus, per gateway and queue.
    samples = router.metrics()
    for queue, figures in expected.items():
        labels = f'{{gateway="gw-c",queue="{queue}"}}'
        for key in ("entered", "answered", "abandoned", "handled", "transfers", "requeues"):
            assert samples[f"imrouter_queue_{key}_total{labels}"] == figures[key], (queue, key)
    for sender, count in Counter(m["sender"] for _, m in lines).items():
        assert samples[f'imrouter_messages_total{{gateway="gw-c",sender="{sender}"}}'] == count


def test_a_restarted_router_gets_the_backlog_once_and_keeps_what_it_had(router, tmp_path):
    gateway = start_gateway(tmp_path / "gw-d", router, "gw-d")
    try:
        anna = agent(gateway, "anna")
        uma = customer(gateway, "Uma")
        first = accept(anna, uma)["conversation"]
        say(uma, None, "before the restart")
        wait_until(lambda: "message" in kinds(router, "gw-d", first))
        before = [e["seq"] for g, _, _, e in router.journal() if g == "gw-d"]
        assert before == list(range(1, len(before) + 1))

        # Stopped: the router's answers stop until the restart below.
        port = router.port
        status = router.stop()
        assert status in (0, -signal.SIGTERM)
        mark = len(gateway.lines)
        # Meanwhile: Uma and Anna talk on, Vic arrives and is served.
        for text in ("while it is away 1", "while it is away 2"):
            say(uma, None, text)
        say(anna, first, "and an answer")
        vic = customer(gateway, "Vic")
        second = accept(anna, vic)["conversation"]
        gateway.wait_for_log(
            r"router feed: routing server refused the connection; \d+ events wait", QUICK, mark
        )

        router.port = port
        router.restart()  # the same port, data and rules
        router.wait_for_log(r"imrouter feed state read from .*: \d+ streams", QUICK)
        wait_until(lambda: "accepted" in kinds(router, "gw-d", second), what="the backlog")
        gateway.wait_for_log(r"router feed: the routing server takes events again", QUICK, mark)
        # The backlog follows what the router had before its restart, once, in order.
        after = [e["seq"] for g, _, _, e in router.journal() if g == "gw-d"]
        assert after[0] > before[-1]
        assert after == list(range(after[0], after[0] + len(after))), after
        held = [e for g, _, _, e in router.journal() if g == "gw-d" and e["type"] == "message"]
        assert [e.get("text") for e in held][:3] == [
            "while it is away 1",
            "while it is away 2",
            "and an answer",
        ]
        # What it acknowledged before the restart it still knows: all messages count.
        stored = transcripts(gateway)
        wanted = Counter(m["sender"] for t in stored for m in t["messages"])
        _, stats = router.call("GET", "/v1/stats")
        [mine] = [g for g in stats["gateways"] if g["gateway"] == "gw-d"]
        assert mine["messages"] == dict(wanted)
        assert mine["opened"] == 2
        for conn in (uma, vic, anna):
            conn.close()
    finally:
        gateway.stop()


STREAM = {"gateway": "gw-direct", "node": "n1", "epoch": "e1"}


def message_event(seq: int, sender: str = "customer") -> dict:
    return {"seq": seq, "ts": float(seq), "type": "message", "conversation": "c-x",
            "sender": sender, "msg": f"g-{seq}", "size": 1}  # fmt: skip


def batch(first: int, last: int) -> dict:
    """Events first..last of one stream: seq 1 starts it, the others are messages."""
    events = [{"seq": 1, "ts": 1.0, "type": "started"}] + [message_event(n) for n in range(2, 99)]
    return {**STREAM, "events": [e for e in events if first <= e["seq"] <= last]}


def test_what_is_sent_twice_is_taken_once_even_across_a_restart(router):
    def send(body: dict) -> tuple:
        code, answer = router.call("POST", "/v1/events", body)
        assert code == 200, answer
        return answer["ack"], answer["applied"], answer["repeated"], answer["snapshot"]

    assert send(batch(1, 3)) == (3, 3, 0, False)
    assert send(batch(1, 3)) == (3, 0, 3, False)  # its acknowledgement was lost
    assert send(batch(2, 5)) == (5, 2, 2, False)  # a retry overlapping the last batch
    assert router.restart() in (0, -signal.SIGTERM)
    assert send(batch(1, 6)) == (6, 1, 5, False)  # what it had, it kept
    _, stats = router.call("GET", "/v1/stats")
    [mine] = [g for g in stats["gateways"] if g["gateway"] == "gw-direct"]
    assert mine["messages"] == {"customer": 5}
    # A gap (events dropped on the way) is taken, counted, and answered with a request
    # for a snapshot of that gateway's state; the snapshot ends the request.
    assert send({**STREAM, "events": [message_event(9, "agent")]}) == (9, 1, 0, True)
    snapshot = {"seq": 10, "ts": 10.0, "type": "snapshot", "agents": [], "conversations": []}
    assert send({**STREAM, "events": [snapshot]}) == (10, 1, 0, False)
    code, answer = router.call("POST", "/v1/events", {**STREAM, "events": [{"seq": 0}]})
    assert (code, answer) == (400, {"error": "events[0] must be an object with a type"})
