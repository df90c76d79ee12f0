"""The gateway's event feed (gateway.routing.feed) on a Clock, with a fake HTTP agent:
batches in order, at least once, the backlog kept and bounded, texts on request,
snapshots on request; and the core's events through it (gateway.core)."""

from __future__ import annotations

import json

import attrs
from prometheus_client import CollectorRegistry
from twisted.internet import error as net_error
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface.verify import verifyObject

from gateway.routing.feed import EventFeed, NoEvents
from gateway.routing.interfaces import IEventSink

URL = "http://127.0.0.1:7080"


@attrs.define
class Posted:
    uri: bytes
    body: dict
    deferred: Deferred


class _Body:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


@attrs.define
class Response:
    code: int
    body: bytes

    def deliverBody(self, protocol) -> None:  # noqa: N802
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


class FeedAgent:
    """Records each POST; the test answers it (``ack``, ``refuse``) when it likes."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []

    def request(self, method, uri, headers=None, bodyProducer=None):  # noqa: N803
        body = _Body()
        bodyProducer.startProducing(body)
        d: Deferred = Deferred()
        self.posted.append(Posted(uri, json.loads(body.data), d))
        return d

    def ack(self, n: int = -1, **extra) -> Posted:
        posted = self.posted[n]
        last = posted.body["events"][-1]["seq"]
        answer = {"ack": last, "texts": False, "snapshot": False, **extra}
        posted.deferred.callback(Response(200, json.dumps(answer).encode()))
        return posted

    def refuse(self, n: int = -1) -> None:
        self.posted[n].deferred.errback(Failure(net_error.ConnectionRefusedError()))


def make(max_events: int = 100_000, **kwargs):
    clock = Clock()
    agent = FeedAgent()
    registry = CollectorRegistry()
    feed = EventFeed(
        URL,
        "token-0123456789abcdef",
        reactor=clock,
        gateway_name="gw",
        node="n1",
        max_events=max_events,
        registry=registry,
        agent=agent,
        epoch="e1",
        **kwargs,
    )
    return feed, clock, agent, registry


def types(posted: Posted) -> list[str]:
    return [e["type"] for e in posted.body["events"]]


def test_the_sinks_provide_the_interface():
    assert verifyObject(IEventSink, NoEvents())
    assert verifyObject(IEventSink, make()[0])


def test_events_go_in_batches_in_order_and_leave_once_acknowledged():
    feed, clock, agent, registry = make()
    feed.emit("opened", "c-1", {"protocol": "jsonim"})
    feed.message("c-1", "g-1", "customer", 5, 12.5, "hello")
    assert agent.posted == []  # batched: sent a moment later, not per event
    clock.advance(0.05)
    [first] = agent.posted
    assert first.uri == b"http://127.0.0.1:7080/v1/events"
    assert (first.body["gateway"], first.body["node"], first.body["epoch"]) == ("gw", "n1", "e1")
    assert first.body["events"] == [
        {"seq": 1, "ts": 0.0, "type": "started", "version": first.body["events"][0]["version"]},
        {"seq": 2, "ts": 0.0, "type": "opened", "conversation": "c-1", "protocol": "jsonim"},
        # No text: the router has not asked for texts.
        {"seq": 3, "ts": 12.5, "type": "message", "conversation": "c-1", "msg": "g-1",
         "sender": "customer", "size": 5},
    ]  # fmt: skip
    feed.emit("ended", "c-1", {"reason": "customer"})
    clock.advance(1)
    assert len(agent.posted) == 1  # one batch in flight at a time
    agent.ack(0, texts=True)
    clock.advance(0)
    assert types(agent.posted[1]) == ["ended"]
    assert agent.posted[1].body["events"][0]["seq"] == 4
    agent.ack(1, texts=True)
    assert feed.acked == 4
    assert registry.get_sample_value("imgateway_router_feed_events_total") == 4
    assert registry.get_sample_value("imgateway_router_feed_backlog") == 0
    # The router asked for texts: the next message carries its text.
    feed.message("c-2", "g-2", "agent", 2, 20.0, "hi")
    clock.advance(0.05)
    assert agent.posted[2].body["events"][0]["text"] == "hi"


def test_a_router_away_gets_the_backlog_in_order_when_back():
    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        feed, clock, agent, _ = make()
        feed.emit("opened", "c-1")
        clock.advance(0.05)
        agent.refuse()
        for n in range(3):
            feed.emit("queued", f"c-{n}")
        waits = []
        for _ in range(6):
            before = len(agent.posted)
            clock.advance(10)
            waits.append(len(agent.posted) - before)
            agent.refuse()
        assert all(w == 1 for w in waits)  # retried, never more than one in flight
        # Retries back off but no further than 5 s apart.
        clock.advance(5)
        posted = agent.ack()
        assert types(posted) == ["started", "opened", "queued", "queued", "queued"]
        assert [e["seq"] for e in posted.body["events"]] == [1, 2, 3, 4, 5]
        assert feed.acked == 5
    finally:
        globalLogPublisher.removeObserver(logged.append)
    texts = [e.get("log_format", "") for e in logged]
    assert sum("events wait, sent when it is back" in t for t in texts) == 1
    assert any("takes events again" in t for t in texts)


def test_past_the_bound_the_oldest_are_dropped_counted_and_logged():
    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        feed, clock, agent, registry = make(max_events=10)
        for n in range(30):
            feed.emit("queued", f"c-{n}")
        assert feed.dropped == 21  # started + 20 of the 30
        assert registry.get_sample_value("imgateway_router_feed_dropped_total") == 21
        assert registry.get_sample_value("imgateway_router_feed_backlog") == 10
        clock.advance(0.05)
        posted = agent.ack()
        assert [e["seq"] for e in posted.body["events"]] == list(range(22, 32))
    finally:
        globalLogPublisher.removeObserver(logged.append)
    drops = [e for e in logged if "dropping the oldest" in e.get("log_format", "")]
    assert len(drops) == 1  # once per episode, not per event


def test_a_snapshot_follows_when_the_router_asks_for_one():
    feed, clock, agent, _ = make()
    feed.snapshot = lambda: {"agents": [{"agent": "anna"}], "conversations": []}
    clock.advance(0.05)
    agent.ack(snapshot=True)
    clock.advance(0)
    [event] = agent.posted[1].body["events"]
    assert event == {
        "seq": 2,
        "ts": 0.05,
        "type": "snapshot",
        "agents": [{"agent": "anna"}],
        "conversations": [],
    }


def test_an_agent_state_is_sent_only_when_it_moves():
    @attrs.define
    class Presence:
        name: str = "anna"
        session: str = "s-1"
        status: str = "available"
        state: str = "available"
        load: int = 0
        conversations: set = attrs.Factory(set)
        offers: set = attrs.Factory(set)
        capacity: int = 2
        wrapping_up: bool = False
        idle_since: float = 3.0

    feed, clock, agent, _ = make()
    presence = Presence()
    feed.agent(presence)
    feed.agent(presence)
    presence.load = 1
    feed.agent(presence)
    clock.advance(0.05)
    states = [e for e in agent.posted[0].body["events"] if e["type"] == "agent_state"]
    assert [(e["agent"], e["load"]) for e in states] == [("anna", 0), ("anna", 1)]


def test_close_sends_what_is_left_once():
    feed, clock, agent, _ = make()
    clock.advance(0.05)
    agent.ack()
    feed.emit("ended", "c-1", {"reason": "shutdown"})
    closed = feed.close()
    assert types(agent.posted[-1]) == ["ended"]
    agent.ack()
    done = []
    closed.addCallback(done.append)
    assert done
    feed.emit("opened", "c-2")
    clock.advance(1)
    assert types(agent.posted[-1]) == ["ended"]  # nothing after the close
