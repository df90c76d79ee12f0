"""The gateway's plan sources: local rules, and the routing server with deadline,
retry and fallback, timed exactly on a Clock (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import twisted
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, ResponseNeverReceived
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gateway.routerd.config import RouterConfig
from gateway.routerd.service import RouterService
from gateway.routing.interfaces import IRouter
from gateway.routing.plan import FALLBACK, LOCAL, REMOTE, Customer, Plan, Target
from gateway.routing.remote import MAX_REPLY, LocalPlans, RemotePlans
from gateway.routing.rules import RuleSet
from gateway.routing.wire import plan_to_json

TOKEN = "gateway-token-0123456789"
URL = "http://127.0.0.1:7080"
CUSTOMER = Customer(attributes={"topic": "billing", "protocol": "jsonim"}, media="chat")

LOCAL_RULES = {
    "rules": [
        {"name": "local-billing", "match": {"topic": "billing"}, "targets": [{"queue": "general"}]}
    ],
    "default": {"targets": [{"strategy": "longest_idle"}]},
}

REMOTE_PLAN = Plan(
    rule="remote-billing",
    targets=(Target(queue="general", skills={"billing": 3}, strategy="highest_skill"),),
    priority=9,
    source=REMOTE,
    reason="rule remote-billing; compatibility default",
)


@pytest.fixture
def local() -> RuleSet:
    return RuleSet.parse(LOCAL_RULES, source="test rules", queues=["general"])


@pytest.fixture
def clock() -> MemoryReactorClock:
    return MemoryReactorClock()


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


class _Body:
    """A consumer collecting what a body producer writes."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


@attrs.define
class Sent:
    """One request the fake agent received, and when it was cancelled."""

    at: float
    method: bytes
    uri: bytes
    headers: object
    body: bytes
    deferred: Deferred
    cancelled_at: float | None = None


class FakeAgent:
    """An IAgent whose answers each test decides: ``replies`` are used in order, each
    a response, a Failure, or None (never answers). With ``like_twisted``, cancelling a
    request fails it as twisted.web's Agent does (ResponseNeverReceived wrapping the
    CancelledError), not with a bare CancelledError."""

    def __init__(self, clock, replies, like_twisted: bool = False) -> None:
        self.clock = clock
        self.replies = list(replies)
        self.sent: list[Sent] = []
        self.like_twisted = like_twisted

    def request(self, method, uri, headers=None, bodyProducer=None):  # noqa: N803
        consumer = _Body()
        bodyProducer.startProducing(consumer)
        sent: Sent

        def cancel(d):
            sent.cancelled_at = self.clock.seconds()
            if self.like_twisted:
                d.errback(ResponseNeverReceived([Failure(CancelledError())]))

        d = Deferred(cancel)
        sent = Sent(self.clock.seconds(), method, uri, headers, consumer.data, d)
        self.sent.append(sent)
        reply = self.replies.pop(0) if self.replies else None
        if isinstance(reply, Failure):
            d.errback(reply)
        elif reply is not None:
            d.callback(reply)
        return d


@attrs.define
class FakeResponse:
    """An IResponse whose body arrives at once (or never, with ``hang``)."""

    code: int
    body: bytes
    hang: bool = False
    transport: StringTransport = attrs.field(factory=StringTransport)

    def deliverBody(self, protocol) -> None:  # noqa: N802
        protocol.makeConnection(self.transport)
        if self.hang:
            return
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


def ok(plan: Plan = REMOTE_PLAN) -> FakeResponse:
    return FakeResponse(200, json.dumps(plan_to_json(plan)).encode())


def remote(clock, local, replies, like_twisted=False, **kwargs) -> tuple[RemotePlans, FakeAgent]:
    agent = FakeAgent(clock, replies, like_twisted)
    plans = RemotePlans(URL, TOKEN, local=local, reactor=clock, agent=agent, **kwargs)
    return plans, agent


def result_of(d: Deferred):
    results: list = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def test_both_sources_provide_the_interface(clock, local):
    assert verifyObject(IRouter, LocalPlans(local))
    assert verifyObject(IRouter, remote(clock, local, [])[0])


def test_local_plans_are_immediate_with_source_local(local, logged):
    plan = result_of(LocalPlans(local).plan(CUSTOMER))
    assert (plan.rule, plan.source) == ("local-billing", LOCAL)
    (event,) = [e for e in logged if e.get("source") == LOCAL]
    assert (event["media"], event["rule"]) == ("chat", "local-billing")


def test_remote_plan_posts_the_customer_with_the_token(clock, local, logged):
    plans, agent = remote(clock, local, [ok()])
    plan = result_of(plans.plan(CUSTOMER))
    assert plan == REMOTE_PLAN
    (sent,) = agent.sent
    assert (sent.method, sent.uri) == (b"POST", b"http://127.0.0.1:7080/v1/classify")
    assert sent.headers.getRawHeaders(b"authorization") == [f"Bearer {TOKEN}".encode()]
    assert sent.headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert json.loads(sent.body) == {"media": "chat", "attributes": dict(CUSTOMER.attributes)}
    (event,) = [e for e in logged if e.get("source") == REMOTE]
    assert event["rule"] == "remote-billing" and event["reason"] == REMOTE_PLAN.reason


def test_the_reply_source_is_always_remote(clock, local):
    plans, _ = remote(clock, local, [ok(attrs.evolve(REMOTE_PLAN, source="local"))])
    assert result_of(plans.plan(CUSTOMER)).source == REMOTE


@pytest.mark.parametrize("like_twisted", [False, True])
def test_deadline_then_retry_then_fallback_exactly(clock, local, logged, like_twisted):
    plans, agent = remote(clock, local, [None, None], like_twisted, deadline_s=0.5, retries=1)
    d = plans.plan(CUSTOMER)
    results: list = []
    d.addBoth(results.append)
    clock.advance(0.4999)
    assert len(agent.sent) == 1 and not results
    clock.advance(0.0001)
    # The first attempt is cancelled at 0.5 and the retry goes out at once.
    first, second = agent.sent
    assert first.cancelled_at == pytest.approx(0.5)
    assert second.at == pytest.approx(0.5) and second.cancelled_at is None
    assert not results
    clock.advance(0.4999)
    assert not results
    clock.advance(0.0001)
    assert second.cancelled_at == pytest.approx(1.0)
    assert clock.seconds() == pytest.approx(1.0)
    (plan,) = results
    assert (plan.rule, plan.source) == ("local-billing", FALLBACK)
    assert plan.reason == (
        "routing server timed out after 0.5s (2 attempts); local rule local-billing"
    )
    assert len(agent.sent) == 2
    assert not clock.getDelayedCalls()
    (event,) = [e for e in logged if e.get("source") == FALLBACK]
    assert event["reason"] == plan.reason and event["elapsed_ms"] == pytest.approx(1000)


def test_a_retry_that_answers_in_time_is_remote(clock, local):
    plans, agent = remote(clock, local, [None])
    d = plans.plan(CUSTOMER)
    agent.replies.append(ok())
    clock.advance(0.5)
    assert result_of(d).source == REMOTE
    assert len(agent.sent) == 2
    assert not clock.getDelayedCalls()


def test_no_retries_falls_back_at_the_first_deadline(clock, local):
    plans, _ = remote(clock, local, [None], retries=0, deadline_s=0.25)
    d = plans.plan(CUSTOMER)
    clock.advance(0.25)
    plan = result_of(d)
    assert plan.source == FALLBACK
    assert plan.reason.startswith("routing server timed out after 0.25s (1 attempt);")


def test_a_body_that_never_ends_is_aborted_at_the_deadline(clock, local):
    hanging = [FakeResponse(200, b"", hang=True), FakeResponse(200, b"", hang=True)]
    plans, _ = remote(clock, local, hanging)
    d = plans.plan(CUSTOMER)
    clock.advance(0.5)
    clock.advance(0.5)
    assert result_of(d).source == FALLBACK
    assert all(r.transport.disconnecting or r.transport.aborting for r in hanging)


def test_refused_connections_retry_and_fall_back_at_once(clock, local):
    refused = Failure(net_error.ConnectionRefusedError())
    plans, agent = remote(clock, local, [refused, refused])
    plan = result_of(plans.plan(CUSTOMER))
    assert clock.seconds() == 0 and len(agent.sent) == 2
    assert plan.source == FALLBACK
    assert plan.reason == (
        "routing server refused the connection (2 attempts); local rule local-billing"
    )
    assert not clock.getDelayedCalls()


def test_a_dropped_connection_is_retried(clock, local):
    dropped = Failure(ResponseNeverReceived([Failure(net_error.ConnectionLost())]))
    plans, _ = remote(clock, local, [dropped, ok()])
    assert result_of(plans.plan(CUSTOMER)).source == REMOTE


def test_dropped_twice_names_the_cause(clock, local):
    dropped = Failure(ResponseNeverReceived([Failure(net_error.ConnectionDone())]))
    plans, agent = remote(clock, local, [dropped, dropped])
    plan = result_of(plans.plan(CUSTOMER))
    assert len(agent.sent) == 2
    assert plan.reason == (
        "routing server closed the connection (2 attempts); local rule local-billing"
    )


def test_a_certificate_that_does_not_verify_is_not_retried(clock, local):
    bad = Failure(ResponseNeverReceived([Failure(VerificationError(["host name mismatch"]))]))
    plans, agent = remote(clock, local, [bad, ok()])
    plan = result_of(plans.plan(CUSTOMER))
    assert len(agent.sent) == 1
    assert plan.source == FALLBACK
    assert plan.reason.startswith("routing server failed TLS verification: VerificationError")


def test_server_errors_are_retried(clock, local):
    plans, agent = remote(clock, local, [FakeResponse(503, b'{"error":"busy"}'), ok()])
    assert result_of(plans.plan(CUSTOMER)).source == REMOTE
    assert len(agent.sent) == 2


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            FakeResponse(401, b'{"error":"a valid bearer token is required"}'),
            "routing server answered 401: a valid bearer token is required",
        ),
        (
            FakeResponse(404, b'{"error":"unknown media \'chat\'"}'),
            "routing server answered 404: unknown media 'chat'",
        ),
        (FakeResponse(400, b"<html>"), "routing server answered 400"),
        (FakeResponse(200, b"{nope"), "routing server's reply is not JSON"),
        (FakeResponse(200, b"[]"), "routing server's reply is not a plan: plan: must be an object"),
        (
            FakeResponse(200, json.dumps({**plan_to_json(REMOTE_PLAN), "targets": []}).encode()),
            "routing server's reply is not a plan: plan.targets: must hold 1 to 64 targets",
        ),
        (
            FakeResponse(200, b" " * (MAX_REPLY + 1)),
            f"routing server's reply is larger than {MAX_REPLY} bytes",
        ),
    ],
)
def test_client_errors_and_bad_replies_fall_back_without_retry(clock, local, response, reason):
    plans, agent = remote(clock, local, [response, ok()])
    plan = result_of(plans.plan(CUSTOMER))
    assert len(agent.sent) == 1
    assert plan.source == FALLBACK
    assert plan.reason == f"{reason} (1 attempt); local rule local-billing"


@pytest.mark.parametrize("like_twisted", [False, True])
def test_the_caller_may_cancel(clock, local, like_twisted):
    plans, agent = remote(clock, local, [None, None], like_twisted)
    d = plans.plan(CUSTOMER)
    d.cancel()
    with pytest.raises(CancelledError):
        result_of(d)
    assert len(agent.sent) == 1 and agent.sent[0].cancelled_at == 0
    assert not clock.getDelayedCalls()
    clock.advance(5)
    assert len(agent.sent) == 1


def test_the_local_rules_can_be_replaced(clock, local):
    plans, agent = remote(clock, local, [])
    other = RuleSet.parse(
        {"default": {"targets": [{"strategy": "round_robin"}]}}, source="other", queues=[]
    )
    plans.local = other
    refused = Failure(net_error.ConnectionRefusedError())
    agent.replies = [refused, refused]
    assert result_of(plans.plan(CUSTOMER)).rule == "default"


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("ftp://router", {}),
        ("router:7080", {}),
        ("http://", {}),
        (URL, {"deadline_s": 0}),
        (URL, {"retries": -1}),
    ],
)
def test_bad_arguments(clock, local, url, kwargs):
    with pytest.raises(ValueError):
        RemotePlans(url, TOKEN, local=local, reactor=clock, **kwargs)


def test_https_with_a_private_ca(clock, local):
    ca = Path(twisted.__file__).parent / "test" / "server.pem"
    plans = RemotePlans(
        "https://router.example:7443/", TOKEN, local=local, reactor=clock, tls_ca=ca
    )
    assert plans.url == "https://router.example:7443/v1/classify"


# The real Agent against the real routing server's Site, joined in memory by iosim.


@implementer(twisted.internet.interfaces.IStreamClientEndpoint)
class _SiteEndpoint:
    def __init__(self, site, pumps: list) -> None:
        self.site, self.pumps = site, pumps

    def connect(self, factory):
        client = factory.buildProtocol(None)
        server = self.site.buildProtocol(None)
        self.pumps.append(
            iosim.connect(
                server,
                iosim.makeFakeServer(server),
                client,
                iosim.makeFakeClient(client),
                greet=False,
            )
        )
        return succeed(client)


def test_the_real_agent_against_the_real_server_in_memory(clock, local, tmp_path):
    rules = tmp_path / "chat.toml"
    rules.write_text(
        '[[rules]]\nname = "server-billing"\npriority = 4\n[rules.match]\ntopic = "billing"\n'
        "[[rules.targets]]\nskills = { billing = 2 }\n[default]\n[[default.targets]]\n"
    )
    config = RouterConfig(
        sources=("test",),
        listen=("tcp:0",),
        token=TOKEN,
        queues=("general",),
        max_body=65536,
        log_level="info",
        media={"chat": rules},
    )
    site = RouterService(config, clock, handle_signals=False).site
    pumps: list = []
    pool = HTTPConnectionPool(clock, persistent=True)
    agent = Agent.usingEndpointFactory(
        clock,
        type("F", (), {"endpointForURI": lambda _s, _u: _SiteEndpoint(site, pumps)})(),
        pool=pool,
    )
    plans = RemotePlans(URL, TOKEN, local=local, reactor=clock, agent=agent)
    d = plans.plan(CUSTOMER)
    pumps[0].flush()
    plan = result_of(d)
    assert (plan.rule, plan.priority, plan.source) == ("server-billing", 4, REMOTE)
    assert plan.targets[0].skills == {"billing": 2}

    wrong = RemotePlans(URL, "not-the-token-0123456", local=local, reactor=clock, agent=agent)
    d = wrong.plan(CUSTOMER)
    for pump in pumps:
        pump.flush()
    plan = result_of(d)
    assert plan.source == FALLBACK
    assert plan.reason.startswith("routing server answered 401")
