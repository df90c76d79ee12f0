"""The firewall as gateway/service.py wires it: config section, rules file, listeners,
DNAT, outbound reactor, SIGHUP reload, identity translation hook; the example file."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from firewall.dnat import DnatFactory
from firewall.outbound import FirewalledReactor
from firewall.ruleset import parse
from firewall.settings import FirewallSettings
from firewall.wrapper import FirewallFactory
from gateway import config
from gateway.app import tap

REPO = Path(__file__).resolve().parents[3]


class Inline(ThreadPool):
    """Runs "threaded" work at once, in the test's thread."""

    def callInThreadWithCallback(self, on_result, func, *args, **kw):  # noqa: N802
        try:
            result = func(*args, **kw)
        except Exception:
            on_result(False, Failure())
        else:
            on_result(True, result)


def make(tmp_path, firewall: str = "", rules: str | None = None):
    path = tmp_path / "gw.toml"
    if rules is not None:
        (tmp_path / "fw.rules").write_text(rules)
        firewall = f'rules = "{tmp_path / "fw.rules"}"\n' + firewall
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n'
        '[listeners]\njsonim = ["tcp:7070:interface=127.0.0.1"]\n'
        "[admin]\nlisten = []\nmetrics = []\n"
        f"[firewall]\n{firewall}"
    )
    opts = tap.Options()
    opts.parseOptions(["--config", str(path)])
    reactor = MemoryReactorClock()
    return tap.makeService(opts, reactor), reactor, path


def test_the_section_keeps_the_old_keys_and_defaults(tmp_path):
    settings = config.load(cwd=tmp_path).sections["firewall"]
    assert settings == FirewallSettings()
    assert (settings.max_connections, settings.max_connections_per_address) == (10000, 50)


def test_section_mistakes_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[firewall.dnat]\ndesk = "tcp:1"\n')
    with pytest.raises(config.ConfigError, match=r"firewall\.dnat\.desk: must be a list"):
        config.load(bad)
    bad.write_text("[firewall]\nmax_connections = 0\n")
    with pytest.raises(config.ConfigError, match=r"firewall\.max_connections: must be between"):
        config.load(bad)


def test_every_listener_is_wrapped_and_dnat_listeners_are_bound(tmp_path):
    service, reactor, _ = make(
        tmp_path,
        'max_connections = 7\n[firewall.dnat]\ndesk = ["tcp:5280:interface=127.0.0.1"]\n',
        "nat { dnat listener desk to 127.0.0.1:5222; }",
    )
    service.privilegedStartService()
    (jsonim, desk) = reactor.tcpServers[:2]
    assert isinstance(jsonim[1], FirewallFactory) and jsonim[1].firewall is service.firewall
    assert jsonim[1].max_connections == 7
    assert desk[0] == 5280 and isinstance(desk[1].wrappedFactory, DnatFactory)
    assert service.firewall.dnat_target("desk") == ("127.0.0.1", 5222)
    assert isinstance(service.outbound, FirewalledReactor)
    service.firewall.stop()


def test_a_bad_rules_file_stops_startup(tmp_path, capsys):
    with pytest.raises(SystemExit):
        make(tmp_path, rules="chain input {\n  ip saddr nonsense drop;\n}\n")
    assert "fw.rules:2: 'nonsense' is not an IP address" in capsys.readouterr().err


def test_sighup_reloads_the_firewall_rules(tmp_path):
    service, reactor, _ = make(tmp_path, rules="chain input { policy accept; }")
    (tmp_path / "fw.rules").write_text("chain input { policy drop; }")
    called = []
    reactor.callFromThread = lambda f, *a, **kw: called.append(f) or f(*a, **kw)
    reactor.getThreadPool = lambda: Inline()
    service._hangup(1, None)
    assert service.firewall.ruleset.chains["input"].policy == "drop"
    assert called[:2] == [service.reload_rules, service.firewall.reload_in_thread]


def test_a_bad_file_on_sighup_keeps_the_running_rules(tmp_path):
    service, reactor, _ = make(tmp_path, rules="chain input { policy drop; }")
    running = service.firewall.ruleset
    (tmp_path / "fw.rules").write_text("chain input { policy maybe; }")
    reactor.callFromThread = lambda f, *a, **kw: f(*a, **kw)
    reactor.getThreadPool = lambda: Inline()
    results = []
    service.firewall.reload_in_thread(reactor).addCallback(results.append)
    assert results == [False] and service.firewall.ruleset is running


def test_agent_text_is_translated_by_the_gateway(tmp_path):
    service, _, _ = make(tmp_path, rules='translate { addr 10.0.0.0/8 -> "[internal]"; }')
    assert service.gateway.core.text_filter("ssh 10.1.2.3") == "ssh [internal]"


def test_the_example_rules_file_is_valid():
    rs = parse((REPO / "etc" / "firewall.rules").read_text(), "etc/firewall.rules")
    assert rs.chains["input"].rules and rs.translations and rs.dnat
