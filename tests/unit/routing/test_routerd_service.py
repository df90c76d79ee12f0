"""``twistd imrouter``: options, makeService, listeners, startup errors, SIGHUP."""

from __future__ import annotations

import re
import signal

import pytest
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.server import Site

from gateway.daemon import StartupError
from gateway.routerd import tap
from gateway.routerd.api import BoundedRequest, RouterApi
from gateway.routerd.config import load
from gateway.routerd.service import RouterService

TOKEN = "unit-test-token-0123456789"

RULES = """\
[[rules]]
name = "{name}"
[rules.match]
topic = "billing"
[[rules.targets]]
strategy = "longest_idle"

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def options(*argv: str) -> tap.Options:
    opts = tap.Options()
    opts.parseOptions(list(argv))
    return opts


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("IMROUTER_TOKEN", TOKEN)


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def write_config(tmp_path, listen='["tcp:7080:interface=127.0.0.1"]', rules="chat.toml"):
    (tmp_path / "chat.toml").write_text(RULES.format(name="billing"))
    path = tmp_path / "imrouter.toml"
    path.write_text(f'[router]\nlisten = {listen}\n[media.chat]\nrules = "{rules}"\n')
    return path


def test_options():
    assert options()["config"] is None
    assert options("--config", "/etc/imrouter.toml")["config"] == "/etc/imrouter.toml"
    assert options("-c", "x.toml")["config"] == "x.toml"


def test_make_service_binds_a_site_serving_the_api(tmp_path, logged):
    reactor = MemoryReactor()
    service = tap.makeService(options("--config", str(write_config(tmp_path))), reactor)
    assert isinstance(service, RouterService)
    assert service.book.sources()["chat"] == str(tmp_path / "chat.toml")
    service.privilegedStartService()
    ((port, factory, _backlog, interface),) = reactor.tcpServers
    assert (port, interface) == (7080, "127.0.0.1")
    assert isinstance(factory, Site) and isinstance(factory.resource, RouterApi)
    assert issubclass(factory.requestFactory, BoundedRequest)
    assert factory.requestFactory.max_body == 4 * 1024 * 1024
    lines = [formatEvent(e) for e in logged]
    assert any(re.fullmatch(r"imrouter listening on \S+:\d+", line) for line in lines), lines


def test_bad_config_is_one_line_and_exit(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IMROUTER_TOKEN")
    path = tmp_path / "bad.toml"
    path.write_text('[router]\nlisten = ["tcp:0"]\n')
    with pytest.raises(SystemExit) as caught:
        tap.makeService(options("--config", str(path)), MemoryReactor())
    assert caught.value.code == 1
    assert capsys.readouterr().err == (
        f"imrouter: {path}: router.token: is required "
        "(or set the environment variable IMROUTER_TOKEN)\n"
    )


def test_a_bad_rules_file_stops_startup_with_one_line(tmp_path, capsys):
    path = write_config(tmp_path, rules="missing.toml")
    with pytest.raises(SystemExit) as caught:
        tap.makeService(options("--config", str(path)), MemoryReactor())
    assert caught.value.code == 1
    assert capsys.readouterr().err == f"imrouter: {tmp_path / 'missing.toml'}: -: no such file\n"


class RefusingReactor(MemoryReactor):
    """Binds the first port, refuses the second."""

    def listenTCP(self, port, factory, backlog=50, interface=""):  # noqa: N802
        if port == 7272:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        return super().listenTCP(port, factory, backlog, interface)


def test_an_endpoint_that_cannot_bind_stops_startup(tmp_path, capsys):
    reactor = RefusingReactor()
    path = write_config(tmp_path, '["tcp:7171:interface=127.0.0.1", "tcp:7272"]')
    service = tap.makeService(options("--config", str(path)), reactor)
    with pytest.raises(StartupError):
        service.privilegedStartService()
    assert "router.listen: cannot listen on 'tcp:7272'" in capsys.readouterr().err
    assert service.ports == []


def test_a_bad_endpoint_string_stops_startup(tmp_path, capsys):
    with pytest.raises(StartupError):
        tap.makeService(
            options("--config", str(write_config(tmp_path, '["nonsense:1"]'))), MemoryReactor()
        )
    assert capsys.readouterr().err.startswith("imrouter: router.listen: bad endpoint 'nonsense:1'")


class ThreadCallReactor(MemoryReactor):
    """Records callFromThread calls, as a signal handler makes them."""

    def __init__(self) -> None:
        super().__init__()
        self.from_thread: list = []

    def callFromThread(self, f, *args, **kwargs):
        self.from_thread.append((f, args, kwargs))


def test_sighup_reloads_while_running_and_is_restored_after(tmp_path, logged):
    reactor = ThreadCallReactor()
    path = write_config(tmp_path)
    service = RouterService(load(path), reactor)
    before = signal.getsignal(signal.SIGHUP)
    service.startService()
    try:
        handler = signal.getsignal(signal.SIGHUP)
        assert handler is not before and callable(handler)
        (tmp_path / "chat.toml").write_text(RULES.format(name="billing-v2"))
        handler(signal.SIGHUP, None)
        ((f, args, kwargs),) = reactor.from_thread
        f(*args, **kwargs)
        assert service.book.generation == 2
        # A bad file on SIGHUP is logged; the rules in use stay.
        (tmp_path / "chat.toml").write_text("nonsense = [")
        handler(signal.SIGHUP, None)
        f, args, kwargs = reactor.from_thread[-1]
        f(*args, **kwargs)
        assert service.book.generation == 2
        lines = [formatEvent(e) for e in logged]
        assert any(line.startswith("imrouter reload failed, rules unchanged: ") for line in lines)
    finally:
        service.stopService()
    assert signal.getsignal(signal.SIGHUP) is before
