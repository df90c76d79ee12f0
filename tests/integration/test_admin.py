"""The admin CLI provisions agents in the database the gateway uses."""

from __future__ import annotations

import json

import harness


def test_agent_add_list_passwd_remove(tmp_path):
    config = harness.write_config(tmp_path)
    harness.admin(
        config,
        *("agent", "add", "carol", "--skill", "billing:4", "--skill", "tech:2"),
        *("--capacity", "3", "--display-name", "Carol", "--password-stdin"),
        stdin="carol-Secret-3\n",
    )
    listed = harness.admin(config, "agent", "list").stdout
    assert "carol" in listed and "Carol" in listed, listed
    assert "carol-Secret-3" not in listed
    as_json = harness.admin(config, "agent", "list", "--json").stdout
    assert "carol" in json.dumps(json.loads(as_json)), as_json
    assert "carol-Secret-3" not in as_json

    again = harness.admin(
        config, "agent", "add", "carol", "--password-stdin", stdin="x-Secret-4\n", check=False
    )
    assert again.returncode != 0, "adding an existing agent must fail"

    harness.admin(config, "agent", "passwd", "carol", "--password-stdin", stdin="new-Secret-5\n")
    harness.admin(config, "agent", "remove", "carol")
    assert "carol" not in harness.admin(config, "agent", "list").stdout
    gone = harness.admin(config, "agent", "remove", "carol", check=False)
    assert gone.returncode != 0, "removing a missing agent must fail"


def test_passwd_changes_what_the_gateway_accepts(tmp_path):
    config = harness.write_config(tmp_path)
    harness.add_agent(config, "dave", "old-Secret-6", "Dave")
    harness.admin(config, "agent", "passwd", "dave", "--password-stdin", stdin="new-Secret-7\n")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        for password, answer in (("old-Secret-6", "error"), ("new-Secret-7", "welcome")):
            client = gateway.connect(f"dave with {password}")
            hello_agent_frame = {
                "type": "hello",
                "protocol": "jsonim/1",
                "role": "agent",
                "client": {"name": "itest-desk", "version": "1.0"},
                "auth": {"user": "dave", "password": password},
            }
            client.send(hello_agent_frame)
            frame = client.expect_any(["welcome", "error"])
            assert frame["type"] == answer, frame
            client.close()
    finally:
        gateway.stop()
