"""The twistd surface: options, makeService, listeners bound at startup."""

from __future__ import annotations

import pytest
from reactor_helpers import BindingReactor
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactor
from twisted.web.server import Site

from gateway.app import tap
from gateway.app.service import GatewayService, StartupError
from protocols.jsonim.protocol import JsonImFactory


def options(*argv: str) -> tap.Options:
    opts = tap.Options()
    opts.parseOptions(list(argv))
    return opts


def write_config(tmp_path, listeners='["tcp:7171:interface=127.0.0.1"]'):
    path = tmp_path / "gw.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n[listeners]\njsonim = {listeners}\n'
    )
    return path


def test_options():
    assert options()["config"] is None
    assert options("--config", "/etc/imgateway.toml")["config"] == "/etc/imgateway.toml"
    assert options("-c", "x.toml")["config"] == "x.toml"


def test_make_service_binds_the_configured_listeners(tmp_path):
    reactor = BindingReactor()
    service = tap.makeService(options("--config", str(write_config(tmp_path))), reactor)
    assert isinstance(service, GatewayService)
    service.privilegedStartService()
    servers = {(port, interface): f for port, f, _backlog, interface in reactor.tcpServers}
    # The JSON-IM listener, and the admin API and metrics listeners of the defaults.
    assert set(servers) == {(7171, "127.0.0.1"), (7071, "127.0.0.1"), (9464, "127.0.0.1")}
    assert isinstance(servers[7171, "127.0.0.1"].wrappedFactory, JsonImFactory)
    # Behind the firewall too.
    assert isinstance(servers[7071, "127.0.0.1"].wrappedFactory, Site)
    assert isinstance(servers[9464, "127.0.0.1"].wrappedFactory, Site)


def test_bad_config_is_one_line_and_exit(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[jsonim]\nmax_frame = -1\n")
    with pytest.raises(SystemExit) as caught:
        tap.makeService(options("--config", str(path)), MemoryReactor())
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert (
        err == f"imgateway: {path}: jsonim.max_frame: must be between 256 and 1.67772e+07, not -1\n"
    )


class RefusingReactor(MemoryReactor):
    """Binds the first port, refuses the second."""

    def listenTCP(self, port, factory, backlog=50, interface=""):  # noqa: N802
        if port == 7272:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        return super().listenTCP(port, factory, backlog, interface)


def test_a_listener_that_cannot_bind_stops_startup(tmp_path, capsys):
    reactor = RefusingReactor()
    path = write_config(
        tmp_path, '["tcp:7171:interface=127.0.0.1", "tcp:7272:interface=127.0.0.1"]'
    )
    service = tap.makeService(options("--config", str(path)), reactor)
    with pytest.raises(StartupError):
        service.privilegedStartService()
    assert "cannot listen on 'tcp:7272:interface=127.0.0.1'" in capsys.readouterr().err
    # The port that did bind was released: nothing stays half-started.
    assert service.ports == []
    assert not (tmp_path / "data").exists()


def test_rules_reload_keeps_the_old_rules_on_a_bad_file(tmp_path):
    rules = tmp_path / "routing.toml"
    rules.write_text('[default]\n[[default.targets]]\nstrategy = "round_robin"\n')
    path = write_config(tmp_path)
    path.write_text(path.read_text() + f'[routing]\nrules = "{rules}"\n')
    service = tap.makeService(options("--config", str(path)), MemoryReactor())
    plans = service.gateway.dispatcher.plans
    assert plans.ruleset.source == str(rules)
    before = plans.ruleset
    rules.write_text('[default]\n[[default.targets]]\nstrategy = "sideways"\n')
    assert service.reload_rules() is False
    assert plans.ruleset is before
    rules.write_text('[default]\n[[default.targets]]\nstrategy = "least_occupied"\n')
    assert service.reload_rules() is True
    assert plans.ruleset is not before
