"""The admin and metrics listeners over real sockets: ``admin.allow_remote = false`` holds
whatever the endpoint string's spelling, decided from the address the listener bound."""

from __future__ import annotations

import re

import fw_site
import harness
import pytest

REMOTE_ENDPOINTS = [
    r"TCP6:0:interface=\:\:",
    "Tcp6:0",
    "tcp6:0",
    "tcp:0",
    "tcp:0:interface=0.0.0.0",
]


def with_admin(root, *, listen: str = "tcp:0:interface=127.0.0.1", metrics: str = "") -> object:
    config = harness.write_config(root)
    quoted = f"'{metrics}'" if metrics else ""
    text = re.sub(
        r"(?ms)^\[admin\]\n.*?(?=^\[)",
        f"[admin]\nlisten = ['{listen}']\nmetrics = [{quoted}]\n\n",
        config.read_text(),
        count=1,
    )
    config.write_text(text)
    return config


@pytest.mark.parametrize("kind", ["listen", "metrics"])
@pytest.mark.parametrize("endpoint", REMOTE_ENDPOINTS)
def test_allow_remote_false_refuses_every_spelling_of_a_remote_endpoint(tmp_path, kind, endpoint):
    if kind == "listen":
        config = with_admin(tmp_path, listen=endpoint)
    else:
        config = with_admin(tmp_path, metrics=endpoint)
    gateway = harness.Gateway(tmp_path / "cwd", config)
    try:
        status = gateway.wait_exit(harness.START_TIMEOUT)
        log = gateway.log()
        assert status == 1, log
        assert not re.search(r"(admin|metrics) listener .* listening on", log), log
        assert "not loopback" in log, log
    finally:
        gateway.stop()


def test_a_loopback_admin_listener_starts(tmp_path):
    config = with_admin(tmp_path, metrics=r"Tcp6:0:interface=\:\:1")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        fw_site.port_of(gateway, "admin")
        gateway.wait_for_log(r"metrics listener .* listening on ::1:\d+", harness.START_TIMEOUT)
    finally:
        gateway.stop()
