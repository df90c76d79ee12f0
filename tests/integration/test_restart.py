"""Restart without loss: SIGKILL the gateway during a busy conversation, start it again
on the same data directory, and find every acknowledged message; the customer resumes
the same conversation with its resume token and the agent gets it back.

Run on both stores: SQLite in the data directory, and PostgreSQL in the private
cluster of ``tests/conftest.py`` (``[store] backend = "postgresql"``).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time

import harness
import pytest
from jsonim_client import JsonImClient, answer_interview, exchange, hello_agent, hello_customer

PASSWORD = "anna-Secret-1"
BURST = 300  # messages each side sends without waiting for acks
MIN_ACKED_BEFORE_KILL = 40


def _drain(client: JsonImClient, timeout: float = 10.0) -> None:
    """Read whatever the server sent until it closed the connection (it was killed)."""
    assert client.closed(timeout), client._describe("no EOF after the gateway was killed")


def _restored(gateway: harness.Gateway, conversation: str) -> None:
    # Connections may arrive before the store has been read back; wait for it.
    gateway.wait_for_log(rf"conversation {conversation} restored", harness.START_TIMEOUT)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """("sqlite", None) or ("postgresql", DSN of a fresh database)."""
    if request.param == "postgresql":
        return "postgresql", request.getfixturevalue("pg_server").new_database()
    return "sqlite", None


def _stored(backend, tmp_path, conversation: str) -> tuple[dict[str, str], tuple | None]:
    """(message id -> text, (state,)) of a conversation, read by another client."""
    kind, dsn = backend
    if kind == "postgresql":
        import psycopg

        with psycopg.connect(dsn) as raw:
            rows = raw.execute(
                "SELECT id, text FROM messages WHERE conversation = %s", (conversation,)
            ).fetchall()
            state = raw.execute(
                "SELECT state FROM conversations WHERE id = %s", (conversation,)
            ).fetchone()
        return dict(rows), state
    raw = sqlite3.connect(tmp_path / "data" / "imgateway.sqlite3")
    try:
        rows = raw.execute(
            "SELECT id, text FROM messages WHERE conversation = ?", (conversation,)
        ).fetchall()
        state = raw.execute(
            "SELECT state FROM conversations WHERE id = ?", (conversation,)
        ).fetchone()
    finally:
        raw.close()
    return dict(rows), state


def test_sigkill_mid_conversation_loses_no_acknowledged_message(tmp_path, backend):
    config = harness.write_config(
        tmp_path, messages_per_second=100000, message_burst=100000, resume_grace_s=120
    )
    kind, dsn = backend
    if kind == "postgresql":
        with config.open("a") as f:
            f.write(f'\n[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n')
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(tmp_path / "cwd", config)

    agent = gateway.connect("agent")
    hello_agent(agent, "anna", PASSWORD)
    customer = gateway.connect("customer")
    welcome = hello_customer(customer)
    token = welcome.get("resume")
    assert isinstance(token, str) and len(token) >= 32, welcome
    answer_interview(customer, {"name": "Dana", "topic": "billing"})
    offer = agent.expect("offer")
    conversation = offer["conversation"]
    assert welcome.get("conversation") == conversation
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=conversation)
    customer.expect("connected", conversation=conversation)
    exchange(customer, agent, conversation, "Hello?", "Hello Dana, how can I help?")

    # A busy conversation: both sides pipeline messages; kill once acks are flowing.
    for i in range(BURST):
        customer.send({"type": "message", "text": f"customer line {i}", "id": f"cb{i}"})
        agent.send(
            {"type": "message", "conversation": conversation, "text": f"agent line {i}",
             "id": f"ab{i}"}
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while len(customer.acked()) + len(agent.acked()) < MIN_ACKED_BEFORE_KILL:
        assert time.monotonic() < deadline, "too few acks before the kill"
        customer.expect_any(["ack", "message"], 5)
    gateway.proc.send_signal(signal.SIGKILL)
    assert gateway.wait_exit(harness.STOP_TIMEOUT) == -signal.SIGKILL
    gateway.stop()
    _drain(customer)
    _drain(agent)
    acked = {**customer.acked(), **agent.acked()}
    assert len(acked) >= MIN_ACKED_BEFORE_KILL

    # Every acknowledged message is in the database, with its exact text.
    stored, state = _stored(backend, tmp_path, conversation)
    missing = {m: t for m, t in acked.items() if stored.get(m) != t}
    assert not missing, f"{len(missing)} acknowledged messages lost: {list(missing)[:5]}"
    assert state == ("connected",)

    # Restart on the same data directory; the conversation is held for its people.
    gateway = harness.start_gateway(tmp_path / "cwd", config, name="gateway-2")
    try:
        _restored(gateway, conversation)
        # The admin CLI reads the same transcript.
        shown = json.loads(harness.admin(config, "transcript", "--json", conversation).stdout)
        shown_ids = {m["id"] for m in shown["messages"]}
        assert set(acked) <= shown_ids
        said_before = [m["text"] for m in shown["messages"]]

        customer = gateway.connect("customer-again")
        welcome = hello_customer(customer, resume=token)
        assert welcome.get("conversation") == conversation, welcome
        assert welcome.get("resume") not in (None, token)
        agent = gateway.connect("agent-again")
        hello_agent(agent, "anna", PASSWORD)
        back = agent.expect("connected", conversation=conversation)
        # History from the transcript, up to its last line before the kill.
        history = [h.get("text") for h in back.get("history", [])]
        assert said_before[-1] in history, back
        customer.expect("connected", conversation=conversation)
        # They talk on in the same conversation.
        exchange(customer, agent, conversation, "Still there?", "Yes, go on.")
        texts = [m["text"] for m in json.loads(
            harness.admin(config, "transcript", "--json", conversation).stdout
        )["messages"]]  # fmt: skip
        assert texts[-2:] == ["Still there?", "Yes, go on."]
    finally:
        gateway.stop()


def test_a_dropped_customer_resumes_and_gets_what_it_missed(tmp_path):
    config = harness.write_config(tmp_path, resume_grace_s=120)
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        agent = gateway.connect("agent")
        hello_agent(agent, "anna", PASSWORD)
        customer = gateway.connect("customer")
        token = hello_customer(customer)["resume"]
        answer_interview(customer, {"name": "Dana", "topic": "billing"})
        offer = agent.expect("offer")
        conversation = offer["conversation"]
        agent.send({"type": "accept", "offer": offer["offer"]})
        customer.expect("connected", conversation=conversation)
        exchange(customer, agent, conversation, "Hi", "Hello Dana")

        customer.abort()  # a dropped connection, not `end`
        notice = agent.expect("message", **{"from": "system"})
        assert "lost the connection" in notice["text"], notice
        agent.send(
            {"type": "message", "conversation": conversation, "text": "Still there?", "id": "a9"}
        )
        missed = agent.expect("ack", id="a9")["msg"]

        customer = gateway.connect("customer-again")
        welcome = hello_customer(customer, resume=token)
        assert welcome.get("conversation") == conversation, welcome
        assert customer.expect("message", msg=missed)["text"] == "Still there?"
        customer.expect("connected", conversation=conversation)
        exchange(customer, agent, conversation, "Yes, back now", "Good")
    finally:
        gateway.stop()
