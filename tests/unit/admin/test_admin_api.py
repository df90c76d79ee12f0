"""The admin HTTP API: token checks, agents, queues, conversations, transcripts, mounts."""

from __future__ import annotations

import pytest
from admin_http_helpers import TOKEN, CapturedLog, request, service_of, site_for
from core_helpers import make_harness
from twisted.web.resource import Resource

from gateway.admin import api as adminapi
from gateway.admin import body as body_limits
from gateway.core import events as ev


@pytest.fixture
def h():
    return make_harness()


@pytest.fixture
def site(h):
    return site_for(service_of(h), h.clock)


def accept(h, agent_party, agent):
    offer = agent_party.last(ev.Offer)
    h.directory.get(agent).session.accept(offer.offer)


# -- the token ---------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_without_the_token_v1_answers_401_and_logs_one_line(h, site, token):
    with CapturedLog() as log:
        answer = request(site, "GET", "/v1/agents", token=token)
    assert answer.status == 401
    assert answer.json() == {"error": "unauthorized"}
    assert answer.header("www-authenticate") == 'Bearer realm="imgateway"'
    failures = [t for t in log.texts() if t.startswith("auth failure")]
    assert failures == ["auth failure protocol=admin user=- address=192.168.1.1"]
    assert h.gateway.metrics.auth_failures.labels("admin")._value.get() == 1


def test_the_right_bearer_token_is_let_in(site):
    answer = request(site, "GET", "/v1/agents")
    assert answer.status == 200
    assert answer.json() == []
    assert answer.header("content-type") == "application/json; charset=utf-8"
    assert answer.header("cache-control") == "no-store"


def test_unknown_paths_and_methods(site):
    assert request(site, "GET", "/v1/nothing").status == 404
    assert request(site, "DELETE", "/v1/agents").status == 405
    assert request(site, "GET", "/elsewhere").status == 404
    assert request(site, "GET", "/v1").json()["resources"][:2] == ["summary", "agents"]


# -- agents ------------------------------------------------------------------------


def test_agents_list_shows_state_and_load(h, site):
    h.agent("anna")
    h.agent("bob", available=False)
    agents = request(site, "GET", "/v1/agents").json()
    assert [(a["name"], a["state"], a["load"]) for a in agents] == [
        ("anna", "available", 0),
        ("bob", "away", 0),
    ]
    h.queued_customer()
    [anna] = [a for a in request(site, "GET", "/v1/agents").json() if a["name"] == "anna"]
    assert (anna["offers"], anna["load"]) == (1, 1)


def test_set_an_agents_status(h, site):
    party, _ = h.agent("anna")
    answer = request(site, "POST", "/v1/agents/anna/state", body={"status": "away"})
    assert answer.status == 200, answer.body
    assert h.directory.get("anna").status == "away"
    assert party.last(ev.Notice).text == "A supervisor set you away."


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/agents/anna/state", {"status": "asleep"}, 400),
        ("/v1/agents/anna/state", b"not json", 400),
        ("/v1/agents/anna/state", [1], 400),
        ("/v1/agents/nobody/state", {"status": "away"}, 404),
        ("/v1/agents/nobody/logout", None, 404),
    ],
)
def test_agent_actions_refuse_bad_requests(h, site, path, body, status):
    h.agent("anna")
    assert request(site, "POST", path, body=body).status == status


def test_oversized_bodies_are_refused(h, site):
    h.agent("anna")
    body = b'{"status": "' + b"a" * body_limits.MAX_BODY + b'"}'
    assert request(site, "POST", "/v1/agents/anna/state", body=body).status == 413


def test_log_an_agent_out_requeues_its_conversations(h, site):
    party, _ = h.agent("anna")
    _customer, session = h.queued_customer()
    accept(h, party, "anna")
    conv = session.conversation
    assert conv.state == "connected"
    answer = request(site, "POST", "/v1/agents/anna/logout")
    assert answer.status == 200
    assert party.closed == "logged out by a supervisor"
    assert h.directory.get("anna") is None
    assert conv.state == "queued"


# -- queues and conversations --------------------------------------------------------


def test_queues_show_depth_oldest_wait_and_estimate(h, site):
    [general] = [q for q in request(site, "GET", "/v1/queues").json() if q["name"] == "general"]
    assert (general["depth"], general["oldest_wait_s"]) == (0, 0)
    h.queued_customer()
    h.clock.advance(12)
    h.queued_customer("Eve")
    [general] = [q for q in request(site, "GET", "/v1/queues").json() if q["name"] == "general"]
    assert general["depth"] == 2
    assert general["oldest_wait_s"] == 12
    assert general["eta_s"] > 0


def test_live_conversations_and_ending_one(h, site):
    customer, session = h.queued_customer()
    conv_id = session.conversation.id
    [live] = request(site, "GET", "/v1/conversations").json()
    assert (live["id"], live["state"], live["queue"], live["agent"]) == (
        conv_id,
        "queued",
        "general",
        None,
    )
    assert request(site, "POST", f"/v1/conversations/{conv_id}/end").status == 200
    assert customer.last(ev.Ended).reason == "agent"
    assert request(site, "GET", "/v1/conversations").json() == []
    assert request(site, "POST", f"/v1/conversations/{conv_id}/end").status == 404


def test_transfer_a_connected_conversation_to_a_colleague(h, site):
    anna, _ = h.agent("anna")
    bob, _ = h.agent("bob", available=False)
    _customer, session = h.queued_customer()
    accept(h, anna, "anna")
    h.directory.get("bob").session.set_presence("available")
    conv_id = session.conversation.id
    answer = request(site, "POST", f"/v1/conversations/{conv_id}/transfer", body={"agent": "bob"})
    assert answer.status == 200, answer.body
    assert anna.last(ev.Ended).reason == "agent"
    assert bob.last(ev.Offer).conversation == conv_id


def test_transfer_a_waiting_conversation_to_another_queue(h, site):
    # The packaged defaults have one queue: moving within it puts it back in line.
    _customer, session = h.queued_customer()
    conv_id = session.conversation.id
    answer = request(
        site, "POST", f"/v1/conversations/{conv_id}/transfer", body={"queue": "general"}
    )
    assert answer.status == 200, answer.body
    assert session.conversation.state == "queued"
    assert session.conversation in h.gateway.queues["general"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"queue": "general", "agent": "bob"}, 400),
        ({"queue": "nowhere"}, 409),
        ({"agent": "nobody"}, 409),
        ({"queue": 5}, 400),
    ],
)
def test_transfer_refuses_bad_targets(h, site, body, status):
    _, session = h.queued_customer()
    path = f"/v1/conversations/{session.conversation.id}/transfer"
    assert request(site, "POST", path, body=body).status == status


def test_transcript_as_json_and_as_text(h, site):
    anna, agent_session = h.agent("anna")
    _customer, session = h.queued_customer()
    accept(h, anna, "anna")
    conv_id = session.conversation.id
    session.say("my invoice\x1b[2J is wrong")
    agent_session.say(conv_id, "Let me look.")
    answer = request(site, "GET", f"/v1/conversations/{conv_id}/transcript")
    assert answer.status == 200
    transcript = answer.json()
    assert transcript["conversation"]["id"] == conv_id
    texts = [(m["sender"], m["text"]) for m in transcript["messages"]]
    assert ("customer", "my invoice\x1b[2J is wrong") in texts
    assert ("agent", "Let me look.") in texts
    text = request(site, "GET", f"/v1/conversations/{conv_id}/transcript?format=text")
    assert text.header("content-type") == "text/plain; charset=utf-8"
    lines = text.body.decode().splitlines()
    assert lines[0].startswith(f"conversation {conv_id}: customer ")
    assert any(line.endswith("customer: my invoice\\u001b[2J is wrong") for line in lines)
    assert any(line.endswith("agent anna: Let me look.") for line in lines)
    missing = request(site, "GET", "/v1/conversations/c-none/transcript")
    assert missing.status == 404
    bad = request(site, "GET", f"/v1/conversations/{conv_id}/transcript?format=xml")
    assert bad.status == 400


def test_summary_has_queues_agents_and_conversations(h, site):
    h.agent("anna")
    h.queued_customer()
    summary = request(site, "GET", "/v1/summary").json()
    assert summary["server"] == h.gateway.config.name
    assert [a["name"] for a in summary["agents"]] == ["anna"]
    assert len(summary["conversations"]) == 1
    assert {q["name"] for q in summary["queues"]} == set(h.gateway.queues)


# -- mounted resources ------------------------------------------------------------


class _Hello(Resource):
    isLeaf = True  # noqa: N815 (Twisted's name)

    def render_GET(self, request):
        return b'{"hello": "fw"}'


def test_other_packages_mount_under_v1_behind_the_token(h):
    site = adminapi.admin_site(service_of(h), TOKEN, h.clock, {"fw": lambda service: _Hello()})
    assert request(site, "GET", "/v1/fw/rules").body == b'{"hello": "fw"}'
    assert request(site, "GET", "/v1/fw/rules", token=None).status == 401
    assert "fw" in request(site, "GET", "/v1").json()["resources"]


# -- the supervisor page's cookie -----------------------------------------------------


def test_page_login_moves_the_token_into_an_http_only_cookie(site):
    answer = request(site, "GET", f"/?token={TOKEN}", token=None)
    assert answer.status == 302
    assert answer.header("location") == "/"
    cookie = answer.header("set-cookie")
    assert cookie.startswith(f"imgateway_admin={TOKEN};")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    page = request(site, "GET", "/", token=None, cookie=f"imgateway_admin={TOKEN}")
    assert page.status == 200
    assert b'<table id="queues">' in page.body
    assert "script-src 'self'" in page.header("content-security-policy")
    summary = request(site, "GET", "/v1/summary", token=None, cookie=f"imgateway_admin={TOKEN}")
    assert summary.status == 200


def test_the_cookie_does_not_authorise_changes(h, site):
    h.agent("anna")
    answer = request(
        site,
        "POST",
        "/v1/agents/anna/state",
        token=None,
        cookie=f"imgateway_admin={TOKEN}",
        body={"status": "away"},
    )
    assert answer.status == 401
    assert h.directory.get("anna").status == "available"


def test_page_without_or_with_a_wrong_token(site):
    with CapturedLog() as log:
        assert request(site, "GET", "/", token=None).status == 401
        assert request(site, "GET", "/?token=nope", token=None).status == 401
    assert sum(t.startswith("auth failure protocol=admin") for t in log.texts()) == 2


def test_script_and_style_are_served_without_a_token(site):
    script = request(site, "GET", "/supervisor.js", token=None)
    assert script.status == 200
    assert b"/v1/summary" in script.body
    assert b"innerHTML" not in script.body
    assert request(site, "GET", "/supervisor.css", token=None).status == 200
