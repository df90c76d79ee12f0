"""Service start-up for load: long listen queues, and startup objects out of the GC."""

from __future__ import annotations

import gc
import queue

from reactor_helpers import BindingReactor, BindingReactorClock
from twisted.internet.defer import Deferred

from gateway.app import tap
from gateway.daemon import BACKLOG, with_backlog


def test_socket_endpoints_get_the_backlog_unless_they_set_one():
    assert BACKLOG == 1024
    assert with_backlog("tcp:7070") == "tcp:7070:backlog=1024"
    assert with_backlog("tcp6:7070:interface=\\:\\:1") == "tcp6:7070:interface=\\:\\:1:backlog=1024"
    assert with_backlog("ssl:6697:privateKey=k.pem") == "ssl:6697:privateKey=k.pem:backlog=1024"
    assert with_backlog("unix:/run/gw.sock") == "unix:/run/gw.sock:backlog=1024"
    assert with_backlog("tcp:7070:backlog=64") == "tcp:7070:backlog=64"
    assert with_backlog("systemd:domain=INET:index=0") == "systemd:domain=INET:index=0"


def test_the_service_listens_with_the_backlog(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n'
        '[listeners]\njsonim = ["tcp:7171:interface=127.0.0.1",'
        ' "tcp:7272:interface=127.0.0.1:backlog=64"]\n'
    )
    options = tap.Options()
    options.parseOptions(["--config", str(path)])
    reactor = BindingReactor()
    tap.makeService(options, reactor).privilegedStartService()
    backlogs = {port: backlog for port, _f, backlog, _interface in reactor.tcpServers}
    # JSON-IM's two, and the admin API and metrics listeners of the defaults.
    assert backlogs == {7171: 1024, 7272: 64, 7071: 1024, 9464: 1024}


class _Reactor(BindingReactorClock):
    """Enough reactor to start the service: the store thread's calls wait on a queue."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: queue.Queue = queue.Queue()

    def callFromThread(self, f, *args, **kwargs) -> None:
        self.from_threads.put((f, args, kwargs))

    def run_until(self, d: Deferred) -> None:
        fired: list = []
        d.addBoth(fired.append)
        while not fired:
            f, args, kwargs = self.from_threads.get(timeout=5)
            f(*args, **kwargs)


def test_startup_objects_are_frozen_out_of_the_collector(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n'
        '[listeners]\njsonim = ["tcp:7171:interface=127.0.0.1"]\n'
    )
    options = tap.Options()
    options.parseOptions(["--config", str(path)])
    reactor = _Reactor()
    service = tap.makeService(options, reactor)
    service.privilegedStartService()
    gc.unfreeze()
    try:
        service.startService()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        reactor.run_until(service.store.close())
