"""The IRC listener and the bot as gateway/service.py builds them."""

from __future__ import annotations

from twisted.application.internet import ClientService
from twisted.internet.testing import MemoryReactorClock

from gateway.app import tap
from protocols.irc.server import IrcFactory


def make(tmp_path, extra: str = ""):
    path = tmp_path / "gw.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n'
        '[listeners]\njsonim = []\nirc = ["tcp:6767:interface=127.0.0.1"]\n'
        "[admin]\nlisten = []\nmetrics = []\n" + extra
    )
    opts = tap.Options()
    opts.parseOptions(["--config", str(path)])
    reactor = MemoryReactorClock()
    return tap.makeService(opts, reactor), reactor


def test_the_irc_listener_is_bound(tmp_path):
    service, reactor = make(tmp_path)
    service.privilegedStartService()
    ((port, factory, _backlog, interface),) = reactor.tcpServers
    assert (port, interface) == (6767, "127.0.0.1")
    assert isinstance(factory.wrappedFactory, IrcFactory)
    assert not [s for s in service if isinstance(s, ClientService)]


def test_the_bot_is_an_upstream_when_enabled(tmp_path):
    service, _reactor = make(
        tmp_path, '[irc.bot]\nenabled = true\nhost = "127.0.0.1"\nport = 6668\ntls = false\n'
    )
    (bot,) = [s for s in service if isinstance(s, ClientService)]
    assert bot.name == "irc-bot"
