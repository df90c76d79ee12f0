"""Operations: [admin] settings, the token file, JSON log lines, auth failure lines,
retention and the shutdown deadline."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from admin_http_helpers import CapturedLog
from core_helpers import make_harness, result_of
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, LogLevel

from gateway import config as gwconfig
from gateway import logs
from gateway.admin import api as adminapi
from gateway.admin import client as adminclient
from gateway.admin.service import loopback_only
from gateway.admin.settings import TOKEN_ENV, bound_to_loopback, is_loopback
from gateway.app import tap
from gateway.daemon import within_deadline
from gateway.store.records import ConversationRecord, StoredMessage
from gateway.store.retention import DAY_S, RetentionService
from gateway.store.sqlite import SqliteEngine


def load(tmp_path: Path, text: str) -> gwconfig.Config:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return gwconfig.load(path)


# -- [admin] ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp:7071:interface=127.0.0.1", True),
        ("tcp:7071:interface=127.1.2.3", True),
        ("tcp6:7071:interface=\\:\\:1", True),
        ("tcp:7071:interface=localhost", True),
        ("unix:/run/imgateway/admin.sock", True),
        ("tcp:7071", False),
        ("tcp:7071:interface=0.0.0.0", False),
        ("tcp:7071:interface=192.0.2.1", False),
        ("ssl:7071:privateKey=k.pem:interface=10.0.0.1", False),
        ("TCP6:7071:interface=\\:\\:", False),
        ("Tcp6:7071", False),
        ("SSL:7071:privateKey=k.pem", False),
        ("UNIX:/run/imgateway/admin.sock", True),
        ("systemd:domain=INET:index=0", None),  # the bound address decides
    ],
)
def test_loopback_endpoints(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        (IPv4Address("TCP", "127.0.0.1", 7071), True),
        (IPv4Address("TCP", "127.9.9.9", 7071), True),
        (IPv6Address("TCP", "::1", 7071), True),
        (IPv6Address("TCP", "::ffff:127.0.0.1", 7071), True),
        (UNIXAddress(b"/run/imgateway/admin.sock"), True),
        (IPv4Address("TCP", "0.0.0.0", 7071), False),
        (IPv6Address("TCP", "::", 7071), False),
        (IPv4Address("TCP", "192.0.2.1", 7071), False),
    ],
)
def test_the_bound_address_decides_loopback(address, loopback):
    assert bound_to_loopback(address) is loopback


def test_a_remote_bound_admin_port_is_closed_and_refused():
    class Port:
        stopped = False

        def getHost(self):
            return IPv6Address("TCP", "::", 7071)

        def stopListening(self):
            self.stopped = True

    port = Port()
    with pytest.raises(ValueError, match=r"bound to :::7071, which is not loopback"):
        loopback_only(port)
    assert port.stopped


def test_admin_defaults_are_loopback(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    settings = gwconfig.load(cwd=tmp_path).sections["admin"]
    assert settings.listen == ("tcp:7071:interface=127.0.0.1",)
    assert settings.metrics == ("tcp:9464:interface=127.0.0.1",)
    assert settings.token == ""


def test_non_loopback_listeners_need_allow_remote(tmp_path):
    with pytest.raises(gwconfig.ConfigError) as e:
        load(tmp_path, '[admin]\nlisten = ["tcp:7071"]\n')
    assert e.value.key == "admin.listen[0]"
    assert "allow_remote" in e.value.problem
    with pytest.raises(gwconfig.ConfigError) as e:
        load(tmp_path, '[admin]\nmetrics = ["tcp:9464:interface=0.0.0.0"]\n')
    assert e.value.key == "admin.metrics[0]"
    allowed = load(tmp_path, '[admin]\nlisten = ["tcp:7071"]\nallow_remote = true\n')
    assert allowed.sections["admin"].listen == ("tcp:7071",)


def test_the_environment_token_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert load(tmp_path, '[admin]\ntoken = "from-file"\n').sections["admin"].token == "from-env"
    monkeypatch.delenv(TOKEN_ENV)
    assert load(tmp_path, '[admin]\ntoken = "from-file"\n').sections["admin"].token == "from-file"


def test_new_gateway_and_logging_keys(tmp_path):
    cfg = load(
        tmp_path,
        '[gateway]\nshutdown_deadline_s = 2.5\n[logging]\nformat = "json"\nfile = "x.jsonl"\n',
    )
    assert (cfg.shutdown_deadline_s, cfg.log_format, cfg.log_file) == (2.5, "json", "x.jsonl")
    with pytest.raises(gwconfig.ConfigError) as e:
        load(tmp_path, '[logging]\nformat = "xml"\n')
    assert e.value.key == "logging.format"


def test_a_generated_token_is_written_for_the_owner_only(tmp_path):
    path = adminapi.write_token(tmp_path / "data", "abc")
    assert path.read_text() == "abc\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- the CLI's client ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("tcp:7071:interface=127.0.0.1", "http://127.0.0.1:7071"),
        ("tcp:7071", "http://127.0.0.1:7071"),
        ("tcp6:7071:interface=\\:\\:1", "http://[::1]:7071"),
        ("ssl:7443:privateKey=k.pem:interface=127.0.0.1", "https://127.0.0.1:7443"),
    ],
)
def test_client_url_of_an_endpoint(endpoint, url):
    assert adminclient.url_of(endpoint) == url


def test_client_token_from_env_then_config_then_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    cfg = load(tmp_path, f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n')
    with pytest.raises(adminclient.AdminUnavailable):
        adminclient.AdminClient.from_config(cfg, environ={})
    adminapi.write_token(tmp_path / "data", "from-file")
    client = adminclient.AdminClient.from_config(cfg, environ={})
    assert (client.base_url, client.token) == ("http://127.0.0.1:7071", "from-file")
    env = {TOKEN_ENV: "from-env", adminclient.URL_ENV: "http://127.0.0.1:1234/"}
    client = adminclient.AdminClient.from_config(cfg, environ=env)
    assert (client.base_url, client.token) == ("http://127.0.0.1:1234", "from-env")


# -- logs ---------------------------------------------------------------------------------


def test_json_lines_carry_level_namespace_text_and_ids():
    out = io.StringIO()
    observer = logs.JsonLinesObserver(out)
    log = Logger(namespace="gateway.core.gateway.Gateway", observer=observer)
    log.warn(
        "conversation {conversation} ended ({reason})",
        conversation="c-1",
        reason="agent",
        session="s-9",
        agent="anna",
    )
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "warn"
    assert record["namespace"] == "gateway.core.gateway.Gateway"
    assert record["text"] == "conversation c-1 ended (agent)"
    assert (record["conversation"], record["session"], record["agent"]) == ("c-1", "s-9", "anna")
    assert record["time"].endswith("+00:00")


def test_json_log_file_receives_gateway_events(tmp_path):
    observer, stream = logs.open_json_log(tmp_path / "logs" / "gw.jsonl")
    try:
        Logger(observer=logs.observer).info("hello {who}", who="world")
    finally:
        logs.close_json_log(observer, stream)
    records = [
        json.loads(line) for line in (tmp_path / "logs" / "gw.jsonl").read_text().splitlines()
    ]
    assert any(r["text"] == "hello world" for r in records)


def test_failed_agent_login_is_one_fail2ban_line():
    h = make_harness()
    with CapturedLog() as log:
        d = h.gateway.agent_login(
            object(),
            protocol="jsonim",
            name="anna smith\n",
            password="wrong",
            client=__import__("gateway.core.events").core.events.ClientInfo("x", "1"),
            address="203.0.113.9",
        )
        d.addErrback(lambda f: None)
    warn = [e for e in log.events if e.get("log_level") == LogLevel.warn]
    assert [logs.formatEvent(e) for e in warn] == [
        "auth failure protocol=jsonim user=anna\\x20smith\\n address=203.0.113.9"
    ]
    assert h.gateway.metrics.auth_failures.labels("jsonim")._value.get() == 1


# -- retention --------------------------------------------------------------------------


class EngineStore:
    """The store's purge, run at once on a real SQLite engine."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def purge_ended_before(self, ts):
        return succeed(self.engine.purge_ended_before(ts))


def _sqlite(tmp_path):
    engine = SqliteEngine(tmp_path / "t.sqlite3")
    engine.open()
    return engine


def _conversation(engine, cid: str, started: float, ended: float | None) -> None:
    engine.insert_conversation(
        ConversationRecord(
            id=cid,
            customer_alias="c",
            protocol="jsonim",
            client_name="x",
            client_version="1",
            started=started,
            state="ended" if ended else "connected",
            ended=ended,
        ),
    )
    engine.insert_message(
        StoredMessage(id=f"m-{cid}", conversation=cid, sender="customer", text="hi", ts=started),
    )


def test_purge_ended_before_deletes_old_ended_conversations_and_their_messages(tmp_path):
    engine = _sqlite(tmp_path)
    _conversation(engine, "old", 100, 200)
    _conversation(engine, "recent", 100, 900)
    _conversation(engine, "open", 100, None)
    assert engine.purge_ended_before(500) == 1
    assert engine.get_conversation("old") is None
    assert engine.transcript("old") == []
    assert [m.id for m in engine.transcript("recent")] == ["m-recent"]
    assert engine.get_conversation("open") is not None


def test_retention_purges_at_start_and_daily(tmp_path):
    engine = _sqlite(tmp_path)
    clock = Clock()
    clock.advance(10 * DAY_S)
    _conversation(engine, "a", 0, 1 * DAY_S)  # ended 9 days ago
    _conversation(engine, "b", 0, 8 * DAY_S)  # ended 2 days ago
    service = RetentionService(EngineStore(engine), 7, clock)
    service.startService()
    assert engine.get_conversation("a") is None
    assert engine.get_conversation("b") is not None
    clock.advance(6 * DAY_S)  # b has now ended over 7 days ago
    assert engine.get_conversation("b") is None
    service.stopService()
    assert not clock.getDelayedCalls()


def test_retention_zero_keeps_everything():
    clock = Clock()
    service = RetentionService(None, 0, clock)
    service.startService()
    assert not clock.getDelayedCalls()
    service.stopService()


# -- the shutdown deadline ----------------------------------------------------------------


def test_shutdown_gives_up_waiting_at_the_deadline():
    clock = Clock()
    hung: Deferred = Deferred()
    with CapturedLog() as log:
        done = within_deadline(hung, 3.0, clock)
        clock.advance(2.9)
        assert not done.called
        clock.advance(0.2)
    assert result_of(done) is None
    assert "shutdown took over 3.0s: exiting without waiting further" in log.texts()
    hung.callback(None)  # finishing late changes nothing


def test_shutdown_in_time_cancels_the_deadline():
    clock = Clock()
    stopping: Deferred = Deferred()
    done = within_deadline(stopping, 3.0, clock)
    stopping.callback(None)
    assert result_of(done) is None
    assert not clock.getDelayedCalls()


def test_a_failed_stop_still_lets_the_process_exit():
    clock = Clock()
    stopping: Deferred = Deferred()
    with CapturedLog() as log:
        done = within_deadline(stopping, 3.0, clock)
        stopping.errback(RuntimeError("upstream refused to stop"))
    assert result_of(done) is None
    assert "stopping the gateway failed" in log.texts()


# -- wired into the service -------------------------------------------------------------


def test_the_service_writes_its_token_and_json_log(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    path = tmp_path / "gw.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n[listeners]\njsonim = []\n'
        '[logging]\nformat = "json"\n'
    )
    opts = tap.Options()
    opts.parseOptions(["--config", str(path)])
    service = tap.makeService(opts, MemoryReactorClock())
    ops = service.admin
    ops.prepare()
    try:
        Logger(observer=logs.observer).info("hello {conversation}", conversation="c-7")
    finally:
        ops.close_json_log()
    token = tmp_path / "data" / "admin.token"
    assert token.read_text().strip() == ops.token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    lines = (tmp_path / "data" / "imgateway.log.jsonl").read_text().splitlines()
    assert {"text": "hello c-7", "conversation": "c-7"}.items() <= json.loads(lines[-1]).items()


def test_a_configured_token_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "given")
    path = tmp_path / "gw.toml"
    path.write_text(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n[listeners]\njsonim = []\n')
    opts = tap.Options()
    opts.parseOptions(["--config", str(path)])
    service = tap.makeService(opts, MemoryReactorClock())
    service.admin.prepare()
    assert service.admin.token == "given"
    assert not (tmp_path / "data" / "admin.token").exists()
