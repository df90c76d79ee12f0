"""The admin and metrics listeners over real sockets: ``admin.allow_remote = false`` holds
whatever the endpoint string's spelling, decided from the address the listener bound;
both listeners are behind the firewall; wrong admin tokens lock their address out; the
admin listener speaks TLS (the CLI trusts the listener's own certificate)."""

from __future__ import annotations

import re

import fw_site
import harness
import pytest
from xmpp_peers import self_signed

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


# -- behind the firewall, a lockout for wrong tokens, TLS ------------------------------

BEHIND = """\
chain input {
    policy accept;
    ip saddr 127.0.0.60 drop;
    listener metrics ip saddr 127.0.0.61 drop;
    role customer drop;
    role agent drop;
}
"""


def http_from(source: str, port: int, token: str | None = None, path: str = "/v1/summary"):
    """One GET from the loopback address ``source``: (status, headers), or None when the
    connection is closed without an answer."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    try:
        sock = fw_site.dial(port, source)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode())
    except (ConnectionResetError, BrokenPipeError):
        return None
    answer = fw_site.closed_silently(sock)
    if not answer:
        return None
    head = answer.split(b"\r\n\r\n")[0].decode()
    status = int(head.split()[1])
    headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
    return status, {k.lower(): v for k, v in headers.items()}


@pytest.fixture(scope="module")
def behind(tmp_path_factory):
    root = tmp_path_factory.mktemp("admin-behind")
    config, _ = fw_site.write_config(root, BEHIND)
    text = config.read_text().replace("metrics = []", 'metrics = ["tcp:0:interface=127.0.0.1"]')
    text = text.replace("[agents]\n", "[agents]\nlogin_failures_free = 2\n", 1)
    config.write_text(text)
    gateway = harness.start_gateway(root / "cwd", config)
    gateway.admin_port = fw_site.port_of(gateway, "admin")
    gateway.metrics_port = fw_site.port_of(gateway, "metrics")
    gateway.wait_for_log(r"admin token written to", harness.START_TIMEOUT)
    gateway.token = (root / "data" / "admin.token").read_text().strip()
    yield gateway
    gateway.stop()


def test_the_admin_and_metrics_listeners_are_behind_the_firewall(behind):
    assert http_from("127.0.0.60", behind.admin_port, behind.token) is None
    assert http_from("127.0.0.60", behind.metrics_port, path="/metrics") is None
    behind.wait_for_log(r"firewall drop address=127\.0\.0\.60 listener=admin rule=1", 10)
    assert http_from("127.0.0.61", behind.metrics_port, path="/metrics") is None
    assert http_from("127.0.0.61", behind.admin_port, behind.token)[0] == 200
    assert http_from("127.0.0.62", behind.metrics_port, path="/metrics")[0] == 200
    fw_site.fw_of(behind, "bans", "add", "127.0.0.62")
    assert http_from("127.0.0.62", behind.metrics_port, path="/metrics") is None
    assert http_from("127.0.0.62", behind.admin_port, behind.token) is None
    behind.wait_for_log(r"firewall drop address=127\.0\.0\.62 listener=metrics rule=banned", 10)


def test_role_rules_never_match_the_admin_and_metrics_listeners(behind):
    # Refusing every role refuses what logs in; HTTP has no login, so no role rule
    # decides for it: the policy does.
    assert http_from("127.0.0.66", behind.admin_port, behind.token)[0] == 200
    assert http_from("127.0.0.66", behind.metrics_port, path="/metrics")[0] == 200
    checked = fw_site.fw_of(behind, "check", "127.0.0.66", "--listener", "admin")
    assert checked.stdout == "accept (policy)\n"
    traced = fw_site.fw_of(behind, "trace", "127.0.0.66", "--listener", "metrics")
    assert "rule 3: role customer drop: no match (http has no role)" in traced.stdout


def test_wrong_admin_tokens_lock_the_address_out(behind):
    for _ in range(3):  # two are free; the third locks the address for a second
        assert http_from("127.0.0.63", behind.admin_port, "wrong-token")[0] == 401
    status, headers = http_from("127.0.0.63", behind.admin_port, behind.token)
    assert (status, headers["retry-after"]) == (429, "1")
    # Elsewhere the token works.
    assert http_from("127.0.0.64", behind.admin_port, behind.token)[0] == 200
    failures = [line for line in behind.lines if "auth failure protocol=admin" in line]
    assert len([f for f in failures if f.endswith("address=127.0.0.63")]) == 4


def test_the_admin_listener_speaks_tls(tmp_path):
    key, cert = self_signed(tmp_path)
    tls = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    config = with_admin(tmp_path, listen=tls)
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        port = fw_site.port_of(gateway, "admin")
        listed = fw_site.fw_of(gateway, "list", scheme="https")
        assert "chain input {" in listed.stdout
        # Plain HTTP gets no HTTP answer: nothing is served in clear.
        answer = http_from("127.0.0.65", port, "anything")
        assert answer is None or answer[0] not in (200, 401)
    finally:
        gateway.stop()
