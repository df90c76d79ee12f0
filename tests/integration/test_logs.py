"""Logs of a real gateway: JSON lines with conversation and session ids, and one
fail2ban-friendly line per failed agent login."""

from __future__ import annotations

import json

import harness
from ops_helpers import queued_customer, wait_until

PASSWORD = "anna-Secret-1"


def json_records(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_json_lines_and_auth_failure_lines(tmp_path):
    config = harness.write_config(tmp_path)
    config.write_text(
        config.read_text().replace('level = "debug"\n', 'level = "debug"\nformat = "json"\n', 1)
    )
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        customer = queued_customer(gateway, "Dana")
        intruder = gateway.connect("intruder")
        intruder.send(
            {
                "type": "hello",
                "protocol": "jsonim/1",
                "role": "agent",
                "client": {"name": "x", "version": "1"},
                "auth": {"user": "anna", "password": "guess"},
            }
        )
        assert intruder.expect("error")["code"] == "auth_failed"
        # The text log (twistd's) has the one line fail2ban matches.
        gateway.wait_for_log(r"auth failure protocol=jsonim user=anna address=127\.0\.0\.1$", 10)

        path = tmp_path / "data" / "imgateway.log.jsonl"
        records = wait_until(
            lambda: [r for r in json_records(path) if r["text"].startswith("auth failure")],
            what="the auth failure in the JSON log",
        )
        assert records[0]["level"] == "warn", records
        assert (records[0]["user"], records[0]["address"]) == ("anna", "127.0.0.1"), records
        opened = [r for r in json_records(path) if "opened for" in r["text"]]
        assert opened and opened[0]["conversation"].startswith("c-"), opened
        sessions = [r for r in json_records(path) if "session" in r]
        assert sessions, json_records(path)[-20:]
        customer.close()
        intruder.close()
    finally:
        gateway.stop()
