"""Graceful shutdown: SIGTERM with an open chat and a stuck client; the gateway tells
both sides, finishes its writes and exits within gateway.shutdown_deadline_s."""

from __future__ import annotations

import signal
import socket
import sqlite3
import time

import harness
from jsonim_client import exchange, hello_customer
from ops_helpers import agent, queued_customer, take_offer

PASSWORD = "anna-Secret-1"
DEADLINE_S = 3
SLACK_S = 5  # interpreter exit, thread pool joins, a loaded test machine
BUSY_TIMEOUT_S = 5  # gateway.store.sqlite.BUSY_TIMEOUT_MS


def test_sigterm_with_an_open_chat_and_a_stuck_client_exits_in_time(tmp_path):
    config = harness.write_config(tmp_path)
    text = config.read_text().replace(
        "[gateway]\n", f"[gateway]\nshutdown_deadline_s = {DEADLINE_S}\n", 1
    )
    config.write_text(text)
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    stuck = silent = None
    try:
        customer = queued_customer(gateway, "Dana")
        anna = agent(gateway, "anna", PASSWORD)
        conversation = take_offer(anna, customer)
        exchange(customer, anna, conversation, "Still there?", "Yes, one moment.")
        acked = {**customer.acked(), **anna.acked()}

        # A peer that connected and never speaks, and a customer that never reads.
        stuck = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
        silent = gateway.connect("silent")
        hello_customer(silent)
        silent.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)

        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        status = gateway.wait_exit(DEADLINE_S + SLACK_S)
        elapsed = time.monotonic() - started
        assert status is not None, (
            f"still running {elapsed:.1f}s after SIGTERM\n{gateway.log_tail()}"
        )
        assert status in (0, -signal.SIGTERM), f"exit {status}\n{gateway.log_tail()}"

        assert customer.expect("ended", conversation=conversation)["reason"] == "shutdown"
        assert anna.expect("ended", conversation=conversation)["reason"] == "shutdown"
        assert customer.closed() and anna.closed()
        gateway.wait_for_log(r"imgateway stopped", 5)

        database = tmp_path / "data" / "imgateway.sqlite3"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            stored = dict(db.execute("SELECT id, text FROM messages"))
            (state, reason) = db.execute(
                "SELECT state, end_reason FROM conversations WHERE id = ?", (conversation,)
            ).fetchone()
        assert {m: stored.get(m) for m in acked} == acked
        assert (state, reason) == ("ended", "shutdown")
    finally:
        for sock in (stuck, silent and silent.sock):
            if sock is not None:
                sock.close()
        gateway.stop()


def test_a_write_that_hangs_does_not_hold_the_exit_past_the_deadline(tmp_path):
    deadline_s = 1
    config = harness.write_config(tmp_path)
    text = config.read_text().replace(
        "[gateway]\n", f"[gateway]\nshutdown_deadline_s = {deadline_s}\n", 1
    )
    config.write_text(text)
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    lock = None
    try:
        customer = queued_customer(gateway, "Dana")
        anna = agent(gateway, "anna", PASSWORD)
        conversation = take_offer(anna, customer)
        exchange(customer, anna, conversation, "Hello", "Hi")

        # Another process holds the database's write lock: the shutdown's writes wait
        # for SQLite's busy timeout (5 s), longer than the deadline.
        lock = sqlite3.connect(tmp_path / "data" / "imgateway.sqlite3", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")

        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        status = gateway.wait_exit(deadline_s + SLACK_S)
        elapsed = time.monotonic() - started
        assert status is not None, (
            f"still running {elapsed:.1f}s after SIGTERM\n{gateway.log_tail()}"
        )
        gateway.wait_for_log(rf"shutdown took over {deadline_s}(\.0)?s: exiting", 5)
        # Well before the busy timeout would have let the writes fail and the stop end.
        assert elapsed < BUSY_TIMEOUT_S - 1, f"exit took {elapsed:.1f}s\n{gateway.log_tail()}"
        assert customer.expect("ended", conversation=conversation)["reason"] == "shutdown"
        assert anna.expect("ended", conversation=conversation)["reason"] == "shutdown"
    finally:
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        gateway.stop()
