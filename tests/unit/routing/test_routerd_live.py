"""The routing server's live side, without sockets: the feed's batches taken once and
journaled (routerd.ingest), the state they build and its statistics (routerd.state,
routerd.stats), decisions with that state (routerd.decide), and their endpoints."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from gateway.routerd.api import RouterApi
from gateway.routerd.decide import decide
from gateway.routerd.ingest import JOURNAL, Batch, FeedError, FeedIngest
from gateway.routerd.live import LiveApi
from gateway.routerd.rulebook import RuleBook
from gateway.routerd.state import ConversationView, LiveState
from gateway.routerd.stats import queue_report
from gateway.routing.plan import REQUEUE, TRANSFER, Customer, PlanRequest
from gateway.routing.rules import RuleSet

TOKEN = "live-token-0123456789"
RULES = {
    "rules": [
        {
            "name": "billing",
            "priority": 5,
            "match": {"topic": "billing"},
            "targets": [
                {"queue": "billing", "skills": {"billing": 2}, "strategy": "least_occupied"}
            ],
        },
        {
            "name": "vip",
            "priority": 9,
            "match": {"topic": "vip"},
            "targets": [{"queue": "billing", "strategy": "broadcast", "broadcast": 2}],
        },
    ],
    "default": {"targets": [{"strategy": "longest_idle"}]},
}


def ev(seq: int, kind: str, ts: float = 0.0, **fields) -> dict:
    return {"seq": seq, "ts": ts, "type": kind, **fields}


def batch(*events: dict, gateway: str = "gw", epoch: str = "e1") -> Batch:
    return Batch.parse({"gateway": gateway, "node": "", "epoch": epoch, "events": list(events)})


def login(seq: int, name: str, **facts) -> dict:
    values = {"capacity": 2, "skills": {"billing": 3}, "serves": ["general", "billing"]}
    values.update(facts)
    return ev(seq, "agent_login", agent=name, **values)


def state_of(seq: int, name: str, **fields) -> dict:
    values = {"status": "available", "state": "available", "load": 0, "idle_since": 0.0}
    values.update(fields)
    return ev(seq, "agent_state", agent=name, **values)


# -- ingest ---------------------------------------------------------------------------


def test_batches_are_checked():
    with pytest.raises(FeedError, match="epoch must be a string"):
        Batch.parse({"gateway": "g", "node": "", "events": []})
    with pytest.raises(FeedError, match=r"events\[1\].seq must be a number above"):
        Batch.parse({"gateway": "g", "node": "", "epoch": "e", "events": [ev(2, "a"), ev(2, "b")]})


def test_each_event_is_taken_once_and_a_gap_asks_for_a_snapshot():
    ingest = FeedIngest(LiveState())
    first = ingest.accept(batch(ev(1, "started"), ev(2, "opened", conversation="c-1")))
    assert (first.ack, first.applied, first.repeated, first.gap) == (2, 2, 0, False)
    again = ingest.accept(
        batch(
            ev(2, "opened", conversation="c-1"),
            ev(3, "ended", conversation="c-1", reason="customer"),
        )
    )
    assert (again.ack, again.applied, again.repeated) == (3, 1, 1)
    assert ingest.state.opened == {"gw": 1}
    gap = ingest.accept(batch(ev(7, "opened", conversation="c-2")))
    assert (gap.ack, gap.gap) == (7, True)
    assert ("gw", "", "e1") in ingest.wants_snapshot and ingest.gaps == 1
    ingest.accept(batch(ev(8, "snapshot", agents=[], conversations=[])))
    assert ("gw", "", "e1") not in ingest.wants_snapshot
    # Another run of the gateway is another stream, numbered from 1 again.
    assert ingest.accept(batch(ev(1, "started"), epoch="e2")).applied == 1


def test_the_journal_survives_a_restart_and_a_torn_last_line(tmp_path):
    ingest = FeedIngest(LiveState(), tmp_path, fsync=False)
    ingest.open()
    ingest.accept(batch(ev(1, "started"), login(2, "anna")))
    ingest.accept(batch(ev(3, "opened", conversation="c-1")))
    with (tmp_path / JOURNAL).open("a") as journal:
        journal.write('{"gateway": "gw", "node": "", "epo')  # a crash mid-line
    ingest.close()
    again = FeedIngest(LiveState(), tmp_path, fsync=False)
    again.open()
    assert again.streams == {("gw", "", "e1"): 3}
    assert ("gw", "anna") in again.state.agents and "c-1" in again.state.conversations
    assert (tmp_path / JOURNAL).read_text() == ""  # compacted into state.json
    assert again.accept(batch(ev(3, "opened", conversation="c-1"))).repeated == 1


def test_the_journal_is_compacted_after_so_many_batches(tmp_path):
    ingest = FeedIngest(LiveState(), tmp_path, fsync=False, compact_after=2)
    ingest.open()
    ingest.accept(batch(ev(1, "started")))
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 1
    ingest.accept(batch(ev(2, "opened", conversation="c-1")))
    assert (tmp_path / JOURNAL).read_text() == ""
    assert json.loads((tmp_path / "state.json").read_text())["streams"] == [[["gw", "", "e1"], 2]]


# -- state and statistics -------------------------------------------------------------


def test_queue_statistics_follow_the_conversations():
    state = LiveState(service_level_s=20)
    ingest = FeedIngest(state)
    ingest.accept(
        batch(
            login(1, "anna"),
            ev(2, "opened", 0, conversation="c-1"),
            ev(3, "queued", 0, conversation="c-1", queue="billing", priority=5, arrival=0),
            ev(4, "offered", 5, conversation="c-1", agent="anna", offer="o-1"),
            ev(5, "accepted", 10, conversation="c-1", agent="anna", offer="o-1", queue="billing"),
            ev(6, "transferred", 70, conversation="c-1", agent="anna", to_queue="general"),
            ev(7, "requeued", 70, conversation="c-1", reason="transfer"),
            ev(8, "queued", 70, conversation="c-1", queue="general", priority=5, arrival=0),
            ev(9, "offered", 71, conversation="c-1", agent="anna", offer="o-2"),
            ev(10, "revoked", 101, conversation="c-1", agent="anna", offer="o-2", reason="timeout"),
            ev(11, "accepted", 130, conversation="c-1", agent="anna", offer="o-3", queue="general"),
            ev(12, "ended", 190, conversation="c-1", reason="agent"),
            ev(13, "opened", 200, conversation="c-2"),
            ev(14, "queued", 200, conversation="c-2", queue="general", priority=0, arrival=200),
            ev(15, "ended", 230, conversation="c-2", reason="customer", state="queued"),
            ev(16, "opened", 300, conversation="c-3"),
            ev(17, "queued", 300, conversation="c-3", queue="general", priority=0, arrival=300),
            ev(18, "message", 301, conversation="c-3", sender="customer", msg="g-1", size=2),
        )
    )
    report = {r["queue"]: r for r in queue_report(state, 310)}
    billing, general = report["billing"], report["general"]
    assert (billing["entered"], billing["answered"], billing["answered_in_service_level"]) == (
        1,
        1,
        1,
    )
    assert (billing["transfers"], billing["handled"], billing["average_handle_s"]) == (1, 1, 60.0)
    # c-1 waited 60 s in general (from 70 to 130): answered, not within 20 s.
    assert (general["entered"], general["answered"], general["answered_in_service_level"]) == (
        3,
        1,
        0,
    )
    assert (general["abandoned"], general["waiting"], general["longest_wait_s"]) == (1, 1, 10.0)
    assert general["service_level"] == 0.0
    assert (general["average_wait_s"], general["average_handle_s"]) == (60.0, 60.0)
    assert state.messages == {("gw", "customer"): 1}
    copy = LiveState.from_json(json.loads(json.dumps(state.to_json())), 20)
    assert queue_report(copy, 310) == queue_report(state, 310)


# -- decisions ------------------------------------------------------------------------


@pytest.fixture
def rules() -> RuleSet:
    return RuleSet.parse(RULES, source="r", queues=["general", "billing"])


def live(*agents: dict) -> LiveState:
    ingest = FeedIngest(LiveState())
    ingest.accept(batch(*[dict(a, seq=i) for i, a in enumerate(agents, 1)]))
    return ingest.state


def test_the_strategy_picks_from_live_load(rules):
    state = live(
        login(0, "anna"), state_of(0, "anna", load=1, idle_since=1.0),
        login(0, "bob"), state_of(0, "bob", load=0, idle_since=5.0),
        login(0, "carl", skills={"billing": 1}), state_of(0, "carl"),  # below the target
        login(0, "dora", serves=["general"]), state_of(0, "dora"),  # not a billing member
        login(0, "eli"), state_of(0, "eli", status="away"),
    )  # fmt: skip
    billing = Customer(attributes={"topic": "billing"})
    made = decide(state, rules, billing, PlanRequest("c-1", queue="billing"), "gw", 10.0)
    assert (made.agents, made.candidates, made.ahead) == (("bob",), 2, 0)
    assert (
        made.why
        == "bob by the routing server (least_occupied of 2 free in billing, 0 waiting ahead)"
    )
    assert made.plan.source == "remote" and made.plan.rule == "billing"
    # Bob declined it before: Anna.
    request = PlanRequest("c-1", reason=REQUEUE, queue="billing", exclude=frozenset({"bob"}))
    made = decide(state, rules, billing, request, "gw", 11.0)
    assert made.agents == ("anna",) and made.plan.reason.startswith("requeue; ")
    # Another gateway's agents are not this gateway's.
    assert decide(state, rules, billing, PlanRequest("c-1"), "gw-other", 12.0).agents == ()


def test_customers_waiting_ahead_keep_their_agents(rules):
    state = live(
        login(0, "anna"), state_of(0, "anna"), login(0, "bob"), state_of(0, "bob", idle_since=2.0)
    )
    ingest = FeedIngest(state)
    ingest.accept(
        batch(
            ev(1, "queued", 1, conversation="c-0", queue="billing", priority=5, arrival=1.0),
            epoch="x",
        )
    )
    billing = Customer(attributes={"topic": "billing"})
    made = decide(state, rules, billing, PlanRequest("c-1"), "gw", 10.0)
    assert (made.agents, made.ahead) == (("bob",), 1)  # Anna is c-0's
    vip = Customer(attributes={"topic": "vip"})
    made = decide(state, rules, vip, PlanRequest("c-2"), "gw", 10.0)
    assert made.agents == ("anna", "bob") and made.ahead == 0  # higher priority: first
    # One more ahead (earlier, as high a priority): Bob is kept for it too.
    state.conversations["c-9"] = ConversationView(
        "gw", "", "c-9", state="queued", queue="billing", priority=5, arrival=0.5
    )
    assert decide(state, rules, billing, PlanRequest("c-1"), "gw", 10.0).agents == ()


def test_a_transfer_is_planned_into_its_queue(rules):
    state = live(
        login(0, "anna", bot=True), state_of(0, "anna"), login(0, "bob"), state_of(0, "bob")
    )
    customer = Customer(attributes={"topic": "billing"})
    request = PlanRequest("c-1", reason=TRANSFER, queue="general", people_only=True)
    made = decide(state, rules, customer, request, "gw", 1.0)
    [target] = made.plan.targets
    assert (target.queue, target.bots) == ("general", False)
    assert made.plan.reason.startswith("transfer to general; rule billing")
    assert made.agents == ("bob",)


# -- the endpoints -------------------------------------------------------------------


def call(api: RouterApi, path: str, body=None, method: bytes = b"POST"):
    req = DummyRequest(path.strip("/").encode().split(b"/"))
    req.method = method
    req.content = BytesIO(b"" if body is None else json.dumps(body).encode())
    req.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {TOKEN}".encode()])
    out = api.render(req)
    return req.responseCode or 200, json.loads(out)


def test_the_live_endpoints(tmp_path):
    book = RuleBook(media={"chat": None}, queues=["general"])
    book.load()
    ingest = FeedIngest(LiveState())
    clock = Clock()
    api = RouterApi(
        book, token=TOKEN, max_body=65536, reload=lambda: 0,
        live=LiveApi(ingest=lambda: ingest, book=book, clock=clock, texts=True),
    )  # fmt: skip
    stream = {"gateway": "gw", "node": "n", "epoch": "e"}
    events = [login(1, "anna", serves=["general"]), state_of(2, "anna")]
    code, answer = call(api, "/v1/events", {**stream, "events": events})
    assert (code, answer) == (
        200,
        {"ack": 2, "applied": 2, "repeated": 0, "texts": True, "snapshot": False},
    )
    assert call(api, "/v1/events", {"events": []})[0] == 400
    body = {
        "media": "chat", "attributes": {"topic": "other"}, "gateway": "gw", "node": "n",
        "conversation": "c-1", "reason": "new", "queue": "general", "people_only": False,
        "exclude": [],
    }  # fmt: skip
    code, answer = call(api, "/v1/decide", body)
    assert code == 200
    assert answer["assigned"]["agents"] == ["anna"]
    assert answer["rule"] == "default" and answer["source"] == "remote"
    assert call(api, "/v1/decide", {**body, "reason": "whim"})[0] == 400
    code, stats = call(api, "/v1/stats", method=b"GET")
    assert code == 200 and stats["feed"] == {"streams": 1, "applied": 2, "repeated": 0, "gaps": 0}
    code, state = call(api, "/v1/state", method=b"GET")
    assert [a["name"] for a in state["agents"]] == ["anna"]
