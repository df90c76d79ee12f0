"""The cluster's parts that need no Redis: the wire format of events, the settings, and
what a worker process runs with."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from gateway import config as gwconfig
from gateway.cluster import settings as cluster_settings
from gateway.cluster.settings import parse_url
from gateway.cluster.wire import decode_error, decode_event, encode_error, encode_event
from gateway.cluster.workers import LISTENERS_ENV, WORKER_ENV, shifted, worker_config
from gateway.config import ConfigError
from gateway.core import events as ev
from gateway.core.errors import BadRequest, InternalError, NotAllowed, Unavailable

EVENTS = [
    ev.Prompt("topic", "What?", (ev.Choice("billing", "Billing"),)),
    ev.Queued(3, 120),
    ev.Connected("c-1", "Anna", (ev.HistoryEntry("customer", "hi", 1.5),)),
    ev.Connected(
        "c-1",
        "c-7f3a",
        (),
        role="monitor",
        agent_alias="Anna",
        past=(ev.PastConversation("c-0", 1.0, "billing", "solved", "Bob"),),
    ),
    ev.Message("c-1", "agent", "g-1", "Hello", 2.0, "<b>Hello</b>"),
    ev.Receipt("c-1", "g-1", "read"),
    ev.Typing("c-1", "active"),
    ev.Ended("c-1", "agent"),
    ev.Offer(
        "o-1",
        "c-1",
        20,
        ev.CustomerCard(
            "c-7f3a",
            "irc",
            ev.ClientInfo("hexchat", "2.16"),
            "billing",
            {"name": "D"},
            (ev.PastConversation("c-0", 1.0),),
        ),
        ev.Decision("default", 1, "longest_idle", "default", "local", "why", "general", ("x",)),
    ),
    ev.Revoked("o-1", "taken"),
    ev.Notice("A supervisor set you away."),
    ev.WrapUp("c-1", "c-7f3a", ("solved", "escalated"), True, 60),
    ev.Task("t-1", ev.CustomerCard("c-1", "web", ev.ClientInfo(), None, {}), "general", "hi", 3.0),
]


@pytest.mark.parametrize("event", EVENTS, ids=[type(e).__name__ for e in EVENTS])
def test_every_event_crosses_nodes_unchanged(event):
    import json

    assert decode_event(json.loads(json.dumps(encode_event(event)))) == event


def test_refusals_cross_nodes_with_their_code():
    for error in (BadRequest("b"), NotAllowed("n"), Unavailable("u"), InternalError("i")):
        back = decode_error(encode_error(error))
        assert type(back) is type(error) and back.text == error.text
    assert isinstance(decode_error({"code": "nonsense", "text": "x"}), InternalError)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1", {"host": "127.0.0.1", "port": 6379, "db": 0, "password": None}),
        (
            "redis://:s%40cret@r.example:6380/2",
            {"host": "r.example", "port": 6380, "db": 2, "password": "s@cret"},
        ),
        ("unix:///run/redis.sock?db=3", {"path": "/run/redis.sock", "db": 3, "password": None}),
    ],
)
def test_redis_urls(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://x", "must start with"),
        ("redis://", "needs a host"),
        ("redis://h/x", "not a number"),
    ],
)
def test_bad_redis_urls_are_refused_at_startup(tmp_path, url, problem):
    site = tmp_path / "site.toml"
    site.write_text(f'[cluster]\nredis = "{url}"\n')
    with pytest.raises(ConfigError, match=problem):
        gwconfig.load(site)


def test_no_redis_is_one_process_and_the_timeout_must_outlast_the_heartbeat(tmp_path):
    loaded = gwconfig.load(cwd=tmp_path)
    assert loaded.sections["cluster"] == cluster_settings.ClusterSettings()
    site = tmp_path / "site.toml"
    site.write_text("[cluster]\nheartbeat_s = 2\nnode_timeout_s = 1\n")
    with pytest.raises(ConfigError, match="node_timeout_s: must be longer than heartbeat_s"):
        gwconfig.load(site)


def test_the_environment_wins_over_the_file():
    settings = cluster_settings.ClusterSettings(redis="redis://a")
    assert settings.effective_redis({"IMGATEWAY_REDIS_URL": "redis://b"}) == "redis://b"
    assert settings.effective_redis({}) == "redis://a"


def test_a_worker_inherits_the_listeners_and_shifts_its_admin_ports():
    loaded = gwconfig.load(cwd=Path("/nonexistent-imgateway"))
    admin = attrs.evolve(
        loaded.sections["admin"],
        listen=("tcp:7071:interface=127.0.0.1",),
        metrics=("tcp:0:interface=127.0.0.1",),
    )
    sections = dict(loaded.sections)
    sections["admin"] = admin
    sections["cluster"] = attrs.evolve(sections["cluster"], node="n1", workers=3)
    base = attrs.evolve(loaded, sections=sections)
    assert worker_config(base, {}) is base
    env = {WORKER_ENV: "2", LISTENERS_ENV: '{"jsonim": ["systemd:domain=INET:index=0"]}'}
    worker = worker_config(base, env)
    assert worker.listeners["jsonim"] == ("systemd:domain=INET:index=0",)
    assert all(not v for k, v in worker.listeners.items() if k != "jsonim")
    assert worker.sections["admin"].listen == ("tcp:7073:interface=127.0.0.1",)
    assert worker.sections["admin"].metrics == ("tcp:0:interface=127.0.0.1",)
    assert worker.sections["cluster"].node == "n1-w2"
    assert worker.sections["cluster"].workers == 1
    assert shifted("unix:/run/x.sock", 3) == "unix:/run/x.sock"
