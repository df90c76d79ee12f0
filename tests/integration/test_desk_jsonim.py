"""The service desk over real sockets, on JSON-IM: every feature of the desk, each shown
by customers and agents on JSON-IM against the installed gateway (desk_site.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import desk_site
import harness
import pytest
from desk_site import agent, customer, metric, refused, request, say, take
from leaks import assert_unseen
from ops_helpers import admin_token, api, scrape

WHISPERS = ("WHISPER-7f3a offer ten percent", "WHISPER-9c1e keep it short")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    gateway, config = desk_site.start(tmp_path_factory.mktemp("desk-jsonim"))
    token = admin_token(gateway)
    admin = gateway.listener_port("admin")
    metrics = gateway.listener_port("metrics")
    yield (
        gateway,
        config,
        lambda method, path, body=None: api(admin, token, method, path, body),
        metrics,
    )
    gateway.stop()


def test_supervisor_monitors_whispers_and_barges_and_the_customer_never_sees_a_whisper(site):
    gateway, _, call, _ = site
    anna = agent(gateway, "anna")
    dana = customer(gateway, "Dana", "billing")
    conv = take(anna, dana)
    say(dana, None, "My invoice is wrong")
    anna.expect("message", conversation=conv, text="My invoice is wrong")

    sue = agent(gateway, "sue", status="away")
    assert conv in [c["id"] for c in request(sue, {"type": "live"})["conversations"]]
    assert refused(anna, {"type": "monitor", "conversation": conv})["code"] == "not_allowed"
    request(sue, {"type": "monitor", "conversation": conv})
    joined = sue.expect("connected", conversation=conv)
    assert (joined["role"], joined["agent"]) == ("monitor", {"alias": "Anna"})
    assert "My invoice is wrong" in [h["text"] for h in joined["history"]]

    say(dana, None, "Hello?")
    assert sue.expect("message", conversation=conv, text="Hello?")["from"] == "customer"
    say(anna, conv, "Checking your invoice")
    seen = sue.expect("message", conversation=conv, text="Checking your invoice")
    assert seen["alias"] == "Anna"

    # A whisper (private: true), and a monitor's plain line, reach the agent only.
    say(sue, conv, WHISPERS[0], private=True)
    got = anna.expect("message", conversation=conv, text=WHISPERS[0])
    assert (got["alias"], got["private"]) == ("Sue", True)
    say(sue, conv, WHISPERS[1])
    assert anna.expect("message", text=WHISPERS[1])["private"] is True
    # The agent whispers back.
    say(anna, conv, "WHISPER-2b4d already did", private=True)
    assert sue.expect("message", text="WHISPER-2b4d already did")["private"] is True

    request(sue, {"type": "barge", "conversation": conv})
    told = dana.expect("message", text="A supervisor, Sue, joined the conversation.")
    assert told["from"] == "system"
    say(sue, conv, "I am sorry for the trouble")
    shown = dana.expect("message", text="I am sorry for the trouble")
    assert (shown["from"], shown["alias"]) == ("agent", "Sue")
    anna.expect("message", text="I am sorry for the trouble")

    anna.send({"type": "end", "conversation": conv})
    dana.expect("ended", conversation=conv)
    sue.expect("ended", conversation=conv)

    # The transcript says who saw what.
    status, transcript = call("GET", f"/v1/conversations/{conv}/transcript")
    assert status == 200, transcript
    audience = {m["text"]: m["audience"] for m in transcript["messages"]}
    assert audience[WHISPERS[0]] == audience[WHISPERS[1]] == "agents"
    assert audience["I am sorry for the trouble"] == "all"
    assert audience["sue joined as monitor"] == "agents"

    dana.hang_up()
    received = b"\n".join(dana.raw_lines)
    assert_unseen(received, *WHISPERS, "WHISPER-2b4d", '"private"', "monitor", "sue")
    anna.hang_up()
    sue.hang_up()


def test_consult_then_warm_transfer_and_a_conference(site):
    gateway, _, _, _ = site
    anna = agent(gateway, "anna")
    erin = customer(gateway, "Erin", "billing")
    conv = take(anna, erin)
    bob = agent(gateway, "bob", status="away")
    request(anna, {"type": "consult", "conversation": conv, "agent": "bob", "text": "Refund?"})
    assert bob.expect("connected", conversation=conv)["role"] == "consult"
    assert bob.expect("message", text="Refund?")["private"] is True
    say(bob, conv, "Yes, send it over")
    assert anna.expect("message", text="Yes, send it over")["private"] is True

    anna.send(
        {
            "type": "transfer",
            "conversation": conv,
            "to": {"agent": "bob"},
            "introduction": "Bob handles refunds; he knows your case.",
            "id": "warm",
        }
    )
    assert anna.expect("result", id="warm")["agent"] == "bob"
    erin.expect("message", text="Bob handles refunds; he knows your case.")
    assert erin.expect("connected", conversation=conv)["agent"] == {"alias": "Bob"}
    anna.expect("ended", conversation=conv)
    assert bob.expect("connected", conversation=conv).get("role") is None
    say(erin, None, "Thanks Bob")
    bob.expect("message", conversation=conv, text="Thanks Bob")

    # Bob brings Anna in, visibly.
    request(bob, {"type": "conference", "conversation": conv, "agent": "anna"})
    erin.expect("message", text="Anna joined the conversation.")
    assert anna.expect("connected", conversation=conv)["role"] == "conference"
    say(anna, conv, "Hi again, Erin")
    assert erin.expect("message", text="Hi again, Erin")["alias"] == "Anna"
    erin.send({"type": "end"})
    erin.expect("ended", conversation=conv)
    for client in (anna, bob, erin):
        client.hang_up()


def test_wrap_up_with_a_required_disposition_tags_and_a_note(site):
    gateway, config, call, metrics = site
    anna = agent(gateway, "anna")
    fay = customer(gateway, "Fay", "refund")
    conv = take(anna, fay)
    request(anna, {"type": "note", "conversation": conv, "text": "wants the money back"})
    anna.send({"type": "end", "conversation": conv})
    anna.expect("ended", conversation=conv)
    due = anna.expect("wrap_up", conversation=conv)
    assert due["required"] is True
    assert due["dispositions"] == ["resolved", "follow_up", "escalated", "no_response"]

    # No offer while the disposition is due.
    gus = customer(gateway, "Gus", "refund")
    anna.sync()
    assert not anna.frames_of("offer")[1:], anna.received
    assert refused(anna, {"type": "wrap_up"})["text"].startswith("a disposition is required")
    done = request(
        anna,
        {
            "type": "wrap_up",
            "conversation": conv,
            "disposition": "resolved",
            "tags": ["refund", "VIP"],
            "note": "refunded in full",
        },
    )
    assert (done["disposition"], done["tags"]) == ("resolved", ["refund", "vip"])
    take(anna, gus)  # offered at once
    gus.send({"type": "end"})
    gus.expect("ended")

    status, report = call("GET", "/v1/desk/reports/dispositions")
    assert status == 200, report
    assert {
        "queue": "strict",
        "disposition": "resolved",
        "count": 1,
        "tags": {"refund": 1, "vip": 1},
    } in report["rows"]
    assert (
        metric(
            scrape(metrics), "imgateway_dispositions_total", queue="strict", disposition="resolved"
        )
        == 1
    )
    case = json.loads(harness.admin(config, "case", conv, "--json").stdout)
    assert [n["text"] for n in case["notes"]] == ["wants the money back", "refunded in full"]
    listing = harness.admin(config, "report", "dispositions").stdout
    assert "strict" in listing and "resolved" in listing and "refund:1" in listing
    for client in (anna, fay, gus):
        client.hang_up()


def test_a_returning_customer_is_recognised_with_history_and_transcripts(site):
    gateway, _, _, _ = site
    bob = agent(gateway, "bob")
    hana = customer(gateway, "Hana", "billing")
    token = hana.welcome["customer_token"]
    first = take(bob, hana)
    say(hana, None, "Where is parcel 77?")
    bob.send({"type": "end", "conversation": first})
    bob.expect("wrap_up", conversation=first)
    request(bob, {"type": "wrap_up", "disposition": "follow_up"})
    hana.expect("ended")
    hana.hang_up()

    # A signed identity is refused when the signature is wrong...
    liar = gateway.connect("liar")
    liar.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "customer",
            "identity": {"id": "u-42"},
            "identity_signature": "00" * 32,
        }
    )
    assert liar.expect("error")["code"] == "bad_request"
    assert liar.closed()

    # ...and the same token is the same customer.
    again = customer(gateway, "Hana", "other", customer_token=token)
    assert again.welcome["customer_token"] == token
    offer = bob.expect("offer")
    [past] = offer["customer"]["history"]
    assert (past["conversation"], past["topic"], past["disposition"], past["agent"]) == (
        first,
        "billing",
        "follow_up",
        "Bob",
    )
    bob.send({"type": "accept", "offer": offer["offer"]})
    now = bob.expect("connected", conversation=offer["conversation"])
    assert now["past"] == offer["customer"]["history"]
    listing = request(bob, {"type": "history", "conversation": now["conversation"]})
    assert listing["recognised"] is True
    old = request(bob, {"type": "history", "conversation": now["conversation"], "of": first})
    assert "Where is parcel 77?" in [m["text"] for m in old["messages"]]
    assert old["wrap_ups"][0]["disposition"] == "follow_up"
    again.send({"type": "end"})
    again.expect("ended")

    # A site-signed identity names the customer across devices (no token needed).
    identity = {"id": "u-42", "name": "Ida"}
    signature = hmac.new(
        b"site-secret-0123456789",
        json.dumps(identity, sort_keys=True, separators=(",", ":")).encode(),
        hashlib.sha256,
    ).hexdigest()
    signed = customer(gateway, "Ida", "billing", identity=identity, identity_signature=signature)
    take(bob, signed)
    signed.send({"type": "end"})
    signed.expect("ended")
    signed.hang_up()
    again_signed = customer(
        gateway, "Ida", "billing", identity=identity, identity_signature=signature
    )
    offer = bob.expect("offer")
    assert [p["agent"] for p in offer["customer"]["history"]] == ["Bob"]
    bob.send({"type": "accept", "offer": offer["offer"]})
    again_signed.expect("connected")
    again_signed.send({"type": "end"})
    again_signed.expect("ended")
    for client in (bob, again, again_signed):
        client.hang_up()


def test_offline_message_out_of_hours_answered_when_the_customer_returns(site):
    gateway, config, call, _ = site
    today = dt.datetime.now(dt.UTC).date()
    spec = f"{today - dt.timedelta(days=1)}..{today + dt.timedelta(days=1)}"
    status, closure = call(
        "POST", "/v1/desk/holidays", {"queue": "night", "spec": spec, "name": "Inventory"}
    )
    assert status == 200, closure
    status, calendar = call("GET", "/v1/desk/holidays")
    night = next(q for q in calendar["queues"] if q["name"] == "night")
    assert night["open"] is False
    assert calendar["closures"][0]["name"] == "Inventory"

    jo = gateway.connect("customer-Jo")
    welcome = desk_site.hello_customer(jo)
    token = welcome["customer_token"]
    jo.expect("prompt", field="name")
    say(jo, None, "Jo")
    jo.expect("prompt", field="topic")
    say(jo, None, "night")
    jo.expect("message", text="We are closed right now. Please come back during our opening hours.")
    assert jo.expect("prompt")["field"] == "offline_message"
    say(jo, None, "Please reset my password")
    jo.expect("message", text="Thank you. We have your message and will answer it.")
    assert jo.expect("ended")["reason"] == "closed"
    jo.hang_up()

    status, listing = call("GET", "/v1/desk/offline?state=open")
    assert status == 200
    [left] = [m for m in listing["messages"] if m["text"] == "Please reset my password"]
    assert (left["queue"], left["name"], left["reply_path"]) == ("night", "Jo", True)

    carl = agent(gateway, "carl")
    task = carl.expect("task", task=left["id"])
    assert (task["text"], task["customer"]["identity"]) == (
        "Please reset my password",
        {"name": "Jo"},
    )
    assert request(carl, {"type": "tasks"})["tasks"][0]["id"] == left["id"]
    request(carl, {"type": "task_reply", "task": left["id"], "text": "Done: check your e-mail."})
    carl.hang_up()

    back = gateway.connect("customer-Jo-again")
    desk_site.hello_customer(back, customer_token=token)
    answer = back.expect(
        "message",
        text="While you were away, Carl answered the message you left: Done: check your e-mail.",
    )
    assert answer["from"] == "system"
    back.hang_up()
    status, listing = call("GET", "/v1/desk/offline?state=delivered")
    assert left["id"] in [m["id"] for m in listing["messages"]]
    assert left["id"] in harness.admin(config, "offline").stdout
    status, _ = call("DELETE", f"/v1/desk/holidays/{closure['id']}")
    assert status == 200


def test_satisfaction_survey_after_the_end(site):
    gateway, _, call, metrics = site
    anna = agent(gateway, "anna")
    kim = customer(gateway, "Kim", "feedback")
    conv = take(anna, kim)
    anna.send({"type": "end", "conversation": conv})
    anna.expect("ended", conversation=conv)
    prompt = kim.expect("prompt", field="csat_score")
    assert [c["value"] for c in prompt["choices"]] == ["1", "2", "3", "4", "5"]
    say(kim, None, "5")
    kim.expect("prompt", field="csat_comment")
    say(kim, None, "Very helpful")
    kim.expect("message", text="Thank you for your feedback.")
    assert kim.expect("ended", conversation=conv)["reason"] == "agent"
    status, report = call("GET", "/v1/desk/reports/csat")
    assert status == 200, report
    row = next(r for r in report["rows"] if r["queue"] == "survey")
    assert (row["agent"], row["count"], row["mean"]) == ("anna", 1, 5.0)
    samples = scrape(metrics)
    assert metric(samples, "imgateway_csat_score_sum", queue="survey", agent="anna") == 5
    assert metric(samples, "imgateway_csat_score_count", queue="survey", agent="anna") == 1
    for client in (anna, kim):
        client.hang_up()


def test_canned_responses_with_the_customer_name(site):
    gateway, config, call, _ = site
    harness.admin(config, "canned", "add", "hello", "--text", "Hello {customer}, I am {agent}.")
    status, _ = call("PUT", "/v1/desk/canned/bye", {"text": "Goodbye {customer}!"})
    assert status == 200
    anna = agent(gateway, "anna")
    assert [c["name"] for c in request(anna, {"type": "canned_list"})["responses"]] == [
        "bye",
        "hello",
    ]
    lu = customer(gateway, "Lu", "billing")
    conv = take(anna, lu)
    anna.send({"type": "canned", "conversation": conv, "name": "hello", "id": "c1"})
    ack = anna.expect("ack", id="c1")
    assert ack["text"] == "Hello Lu, I am Anna."
    assert lu.expect("message", msg=ack["msg"])["text"] == "Hello Lu, I am Anna."
    assert (
        refused(anna, {"type": "canned", "conversation": conv, "name": "nope"})["code"]
        == "bad_request"
    )
    lu.send({"type": "end"})
    lu.expect("ended")
    for client in (anna, lu):
        client.hang_up()


def test_not_ready_reasons_in_the_supervisor_view_and_reports(site):
    gateway, config, call, _ = site
    bob = agent(gateway, "bob")
    bob.send({"type": "presence", "status": "away", "reason": "training", "id": "p1"})
    assert bob.expect("result", id="p1")["reason"] == "training"
    status, agents = call("GET", "/v1/agents")
    assert next(a for a in agents if a["name"] == "bob")["reason"] == "training"
    bob.send({"type": "presence", "status": "away", "reason": "nap", "id": "p2"})
    assert bob.expect("error", id="p2")["code"] == "bad_request"
    bob.hang_up()
    status, report = call("GET", "/v1/desk/reports/states")
    assert status == 200, report
    assert {r["reason"] for r in report["rows"] if r["agent"] == "bob"} >= {"training"}
    assert "training" in harness.admin(config, "report", "states").stdout


def test_a_supervisor_sees_and_acts_on_its_teams_and_team_canned_responses(site):
    gateway, config, call, _ = site
    harness.admin(config, "team", "add", "desk-a", "--member", "anna", "--member", "sue")
    harness.admin(
        config, "canned", "add", "policy", "--team", "desk-a", "--text", "{customer}: 30 days."
    )
    # The CLI cannot tell a gateway on a port the system chose: reload it here.
    assert call("POST", "/v1/teams/reload")[0] == 200
    anna = agent(gateway, "anna")
    mo = customer(gateway, "Mo", "billing")
    ours = take(anna, mo)
    desk_site.set_presence(anna, "away")
    bob = agent(gateway, "bob")
    ned = customer(gateway, "Ned", "billing")
    theirs = take(bob, ned)

    sue = agent(gateway, "sue", status="away")
    assert [c["id"] for c in request(sue, {"type": "live"})["conversations"]] == [ours]
    assert refused(sue, {"type": "monitor", "conversation": theirs})["code"] == "not_allowed"
    view = request(sue, {"type": "team"})
    assert view["teams"] == ["desk-a"]
    assert [a["name"] for a in view["agents"]] == ["anna", "sue"]
    request(sue, {"type": "agent_state", "agent": "anna", "status": "available"})
    anna.expect("message", text="A supervisor set you available.")
    assert refused(sue, {"type": "agent_state", "agent": "bob", "status": "away"})["code"] == (
        "not_allowed"
    )
    status, team = call("GET", "/v1/desk/teams/desk-a")
    assert status == 200, team
    assert [c["id"] for c in team["conversations"]] == [ours]
    assert {a["name"]: a["state"] for a in team["agents"]}["anna"] == "available"

    names = [c["name"] for c in request(anna, {"type": "canned_list"})["responses"]]
    assert "policy" in names
    assert "policy" not in [c["name"] for c in request(bob, {"type": "canned_list"})["responses"]]
    anna.send({"type": "canned", "conversation": ours, "name": "policy", "id": "p"})
    assert anna.expect("ack", id="p")["text"] == "Mo: 30 days."
    for client in (mo, ned):
        client.send({"type": "end"})
        client.expect("ended")
    for client in (anna, bob, sue, mo, ned):
        client.hang_up()
    harness.admin(config, "team", "remove", "desk-a")
    assert call("POST", "/v1/teams/reload")[0] == 200
