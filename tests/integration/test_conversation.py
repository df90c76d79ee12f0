"""The whole journey over real sockets: provision, interview, queue, offer, chat, end;
an agent dropping mid-chat; a transfer; shutdown; and what the store and the admin CLI
show afterwards.

The tests in this module share one gateway and run in order: the last but one stops it,
the last checks that everything acknowledged before is in the database.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import attrs
import harness
import pytest
from jsonim_client import (
    JsonImClient,
    answer_interview,
    exchange,
    hello_agent,
    hello_customer,
    set_presence,
)

PASSWORDS = {"anna": "anna-Secret-1", "bob": "bob-Secret-2"}
ACCOUNTS = tuple(PASSWORDS)


@attrs.define
class Site:
    """One gateway for this module and what its tests learnt."""

    root: Path
    config: Path
    gateway: harness.Gateway
    acked: dict[str, str] = attrs.Factory(dict)  # stored msg id -> exact text
    conversations: dict[str, list[str]] = attrs.Factory(dict)  # id -> texts said in it

    def record(self, conversation: str, *clients: JsonImClient) -> None:
        for client in clients:
            self.acked.update(client.acked())
        self.conversations.setdefault(conversation, [])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("conversation")
    config = harness.write_config(root)
    harness.add_agent(config, "anna", PASSWORDS["anna"], "Anna")
    harness.add_agent(config, "bob", PASSWORDS["bob"], "Bob")
    gateway = harness.start_gateway(root / "cwd", config)
    yield Site(root, config, gateway)
    gateway.stop()


def assert_no_account_names(customer: JsonImClient) -> None:
    """A customer never sees an agent's account name (case-sensitive, raw lines)."""
    leaks = [line for line in customer.raw_lines for name in ACCOUNTS if name.encode() in line]
    assert not leaks, f"agent account names reached the customer: {leaks}"


def start_chat(agent: JsonImClient, customer: JsonImClient, name: str):
    """Customer through the interview to ``agent``'s accept; returns (conversation, frames)."""
    prompts, queued = answer_interview(customer, {"name": name, "topic": "billing"})
    assert queued.get("position") == 1, queued
    offer = agent.expect("offer")
    conversation = offer["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent_connected = agent.expect("connected", conversation=conversation)
    customer_connected = customer.expect("connected", conversation=conversation)
    return conversation, {
        "prompts": prompts,
        "queued": queued,
        "offer": offer,
        "agent_connected": agent_connected,
        "customer_connected": customer_connected,
    }


def history_texts(connected: dict, sender: str) -> list[str]:
    return [h.get("text") for h in connected.get("history", []) if h.get("from") == sender]


def test_conversation_from_hello_to_end(site):
    anna = site.gateway.connect("anna")
    welcome = hello_agent(anna, "anna", PASSWORDS["anna"])
    assert welcome["server"]["name"] == "imgateway-itest", welcome
    assert welcome["max_frame"] == 65536 and welcome["heartbeat_s"] == 3600, welcome

    customer = site.gateway.connect("customer")
    welcome = hello_customer(customer, client_name="acme-widget", client_version="2.3.1")
    assert isinstance(welcome.get("session"), str) and welcome["session"], welcome
    assert "typing" in welcome.get("features", []), welcome

    conversation, f = start_chat(anna, customer, "Dana")

    assert [p["field"] for p in f["prompts"]] == ["name", "topic"], f["prompts"]
    topic_prompt = f["prompts"][1]
    assert [c["value"] for c in topic_prompt["choices"]] == ["billing", "tech", "other"]

    card = f["offer"]["customer"]
    assert card["protocol"] == "jsonim", card
    assert card["client"] == {"name": "acme-widget", "version": "2.3.1"}, card
    assert card["topic"] == "billing", card
    assert isinstance(card.get("alias"), str) and card["alias"], card
    assert isinstance(f["offer"].get("offer"), str), f["offer"]

    assert f["customer_connected"]["agent"] == {"alias": "Anna"}, f["customer_connected"]
    assert f["agent_connected"]["customer"]["alias"] == card["alias"], f["agent_connected"]
    said = history_texts(f["agent_connected"], "customer")
    assert "Dana" in said and "billing" in said, f["agent_connected"]

    asked, answered = "Hi, my invoice is wrong", "Hello! Let me look at it."
    exchange(customer, anna, conversation, asked, answered)
    site.conversations[conversation] = [asked, answered]

    customer.send({"type": "typing", "state": "active"})
    typing = anna.expect("typing")
    assert (typing.get("conversation"), typing.get("state")) == (conversation, "active"), typing
    anna.send({"type": "typing", "conversation": conversation, "state": "active"})
    assert customer.expect("typing").get("state") == "active"

    customer.send({"type": "end"})
    assert customer.expect("ended", conversation=conversation)["reason"] == "customer"
    assert anna.expect("ended", conversation=conversation)["reason"] == "customer"

    assert_no_account_names(customer)
    site.record(conversation, customer, anna)
    customer.close()
    anna.hang_up()


def test_agent_drop_requeues_and_next_agent_gets_history(site):
    anna = site.gateway.connect("anna")
    hello_agent(anna, "anna", PASSWORDS["anna"])
    bob = site.gateway.connect("bob")
    hello_agent(bob, "bob", PASSWORDS["bob"], status="away")  # so that anna gets the offer

    customer = site.gateway.connect("customer")
    hello_customer(customer, client_name="Gajim", client_version="1.8.4")
    conversation, f = start_chat(anna, customer, "Eve")
    assert f["customer_connected"]["agent"]["alias"] == "Anna"

    asked, answered = "My card was charged twice", "I see two charges, one moment."
    exchange(customer, anna, conversation, asked, answered)
    site.record(conversation, customer, anna)

    set_presence(bob, "available")
    mark = customer.mark()
    anna.abort()

    requeued = customer.expect("queued", since=mark)
    assert isinstance(requeued.get("position"), int), requeued
    offer = bob.expect("offer")
    assert offer["conversation"] == conversation, offer
    bob.send({"type": "accept", "offer": offer["offer"]})
    bob_connected = bob.expect("connected", conversation=conversation)
    assert asked in history_texts(bob_connected, "customer"), bob_connected
    assert answered in history_texts(bob_connected, "agent"), bob_connected
    assert customer.expect("connected", since=mark)["agent"]["alias"] == "Bob"

    asked2, answered2 = "Is it sorted?", "Yes, the second charge is refunded."
    exchange(customer, bob, conversation, asked2, answered2)
    site.conversations[conversation] = [asked, answered, asked2, answered2]

    customer.send({"type": "end"})
    assert customer.expect("ended", conversation=conversation)["reason"] == "customer"
    assert bob.expect("ended", conversation=conversation)["reason"] == "customer"

    assert_no_account_names(customer)
    site.record(conversation, customer, bob)
    customer.close()
    bob.hang_up()


def test_transfer_to_a_colleague_and_agent_ends(site):
    anna = site.gateway.connect("anna")
    hello_agent(anna, "anna", PASSWORDS["anna"])
    bob = site.gateway.connect("bob")
    hello_agent(bob, "bob", PASSWORDS["bob"], status="away")  # so that anna gets the offer

    customer = site.gateway.connect("customer")
    hello_customer(customer)
    conversation, _ = start_chat(anna, customer, "Finn")
    asked, answered = "The app crashes on start", "Bob knows this one, passing you on."
    exchange(customer, anna, conversation, asked, answered)
    site.record(conversation, customer, anna)

    set_presence(bob, "available")
    mark = customer.mark()
    anna.send({"type": "transfer", "conversation": conversation, "to": {"agent": "bob"}})
    offer = bob.expect("offer")
    assert offer["conversation"] == conversation, offer
    bob.send({"type": "accept", "offer": offer["offer"]})
    bob_connected = bob.expect("connected", conversation=conversation)
    assert asked in history_texts(bob_connected, "customer"), bob_connected
    assert answered in history_texts(bob_connected, "agent"), bob_connected
    assert customer.expect("connected", since=mark)["agent"] == {"alias": "Bob"}

    asked2, answered2 = "Hello Bob", "Reinstall 2.1, that fixes it."
    exchange(customer, bob, conversation, asked2, answered2)
    site.conversations[conversation] = [asked, answered, asked2, answered2]

    bob.send({"type": "end", "conversation": conversation})
    assert customer.expect("ended", conversation=conversation)["reason"] == "agent"
    assert bob.expect("ended", conversation=conversation)["reason"] == "agent"

    assert_no_account_names(customer)
    site.record(conversation, customer, bob)
    customer.close()
    anna.hang_up()
    bob.hang_up()


def test_sigterm_ends_open_conversations_with_reason_shutdown(site):
    anna = site.gateway.connect("anna")
    hello_agent(anna, "anna", PASSWORDS["anna"])
    customer = site.gateway.connect("customer")
    hello_customer(customer)
    conversation, _ = start_chat(anna, customer, "Gus")
    asked, answered = "Are you closing?", "Not before you are helped."
    exchange(customer, anna, conversation, asked, answered)
    site.record(conversation, customer, anna)
    site.conversations[conversation] = [asked, answered]

    status = site.gateway.stop()
    # twistd ends itself with the signal that stopped it, once shut down cleanly.
    assert status in (0, -signal.SIGTERM), f"exit {status} on SIGTERM\n{site.gateway.log_tail()}"
    assert customer.expect("ended", conversation=conversation)["reason"] == "shutdown"
    assert anna.expect("ended", conversation=conversation)["reason"] == "shutdown"
    assert customer.closed() and anna.closed()


def test_acknowledged_messages_are_stored_and_shown_by_the_admin_cli(site):
    assert len(site.conversations) == 4 and len(site.acked) >= 12, (
        "run the whole module: this test checks what the tests before it stored",
        site,
    )
    assert site.gateway.proc.poll() is not None, "the test before stops the gateway"

    database = site.root / "data" / "imgateway.sqlite3"
    assert database.is_file(), sorted(p.name for p in database.parent.iterdir())
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        stored = dict(db.execute("SELECT id, text FROM messages"))
    missing = {msg: text for msg, text in site.acked.items() if stored.get(msg) != text}
    assert not missing, f"acknowledged but not stored with that text: {missing}"

    listed = harness.admin(site.config, "conversations").stdout
    listed_json = json.dumps(
        json.loads(harness.admin(site.config, "conversations", "--json").stdout)
    )
    for conversation, texts in site.conversations.items():
        assert conversation in listed, listed
        assert conversation in listed_json, listed_json
        transcript = harness.admin(site.config, "transcript", conversation).stdout
        for text in texts:
            assert text in transcript, transcript
        transcript_json = json.loads(
            harness.admin(site.config, "transcript", conversation, "--json").stdout
        )
        assert all(text in json.dumps(transcript_json) for text in texts), transcript_json
