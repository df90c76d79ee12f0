"""Configuration loading: defaults, the site file, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load


def site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_packaged_defaults(tmp_path):
    cfg = load(cwd=tmp_path)
    assert cfg.sources == ("packaged defaults",)
    assert cfg.listeners["jsonim"] == ("tcp:7070:interface=127.0.0.1",)
    # Other protocols listen only where a site asks them to.
    assert all(not eps for kind, eps in cfg.listeners.items() if kind != "jsonim")
    assert cfg.sections["jsonim"].max_frame == 65536 and cfg.sections["jsonim"].max_depth == 32
    assert [f.name for f in cfg.fields] == ["name", "topic"]
    assert cfg.default_queue == "general"
    assert cfg.data_dir == Path("imgateway-data")


def test_site_file_in_etc_is_merged(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "imgateway.toml").write_text("[jsonim]\nheartbeat_s = 45\n")
    cfg = load(cwd=tmp_path)
    assert cfg.sources == ("packaged defaults", str(tmp_path / "etc" / "imgateway.toml"))
    assert cfg.sections["jsonim"].heartbeat_s == 45.0
    assert cfg.sections["jsonim"].max_frame == 65536  # untouched keys keep their default


def test_explicit_file_and_queues(tmp_path):
    path = site(
        tmp_path,
        """
[listeners]
jsonim = ["tcp:0:interface=127.0.0.1", "tcp6:0:interface=\\\\:\\\\:1"]
[queues.billing]
topics = ["billing", "invoices"]
max_wait_s = 60
""",
    )
    cfg = load(path)
    assert cfg.sources == ("packaged defaults", str(path))
    assert len(cfg.listeners["jsonim"]) == 2
    assert cfg.queue_for_topic("invoices") == "billing"
    assert cfg.queue_for_topic("billing") == "billing"
    assert cfg.queue_for_topic("tech") == "general"
    assert cfg.queues["billing"].max_wait_s == 60.0


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[jsonim]\nmax_frams = 1\n", "jsonim.max_frams", "unknown key"),
        ('[jsonim]\nmax_frame = "big"\n', "jsonim.max_frame", "must be an integer, not str"),
        ("[jsonim]\nmax_frame = 10\n", "jsonim.max_frame", "must be between 256 and 1.67772e+07"),
        ("[agents]\noffer_timeout_s = true\n", "agents.offer_timeout_s", "not a boolean"),
        ('[routing]\ndefault_queue = "vip"\n', "routing.default_queue", "names no queue: 'vip'"),
        ('[routing]\nwhen_no_agents = "panic"\n', "routing.when_no_agents", "must be one of"),
        ('[logging]\nlevel = "loud"\n', "logging.level", "must be one of debug, info"),
        ("[listeners]\njsonim = [1]\n", "listeners.jsonim[0]", "endpoint string"),
        (
            '[[interview.fields]]\nname = "x"\nprompt = "X?"\nkind = "choice"\n',
            "interview.fields[0].choices",
            "at least one choice",
        ),
        (
            '[interview]\nfields = [{name = "a", prompt = "A?"}, {name = "a", prompt = "B?"}]\n',
            "interview.fields[1].name",
            "duplicate field 'a'",
        ),
        ("[queues.Bad]\n", "queues.Bad", "not a valid name"),
        ("gateway = 3\n", "gateway", "must be a table"),
    ],
)
def test_errors_name_file_key_and_problem(tmp_path, text, key, problem):
    path = site(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    err = caught.value
    assert (err.source, err.key) == (str(path), key)
    assert problem in err.problem
    assert str(err) == f"{path}: {key}: {err.problem}"
    assert "\n" not in str(err)


def test_interview_fields_append_by_replacing_the_list(tmp_path):
    # A list in the site file replaces the default list whole.
    path = site(tmp_path, '[[interview.fields]]\nname = "order"\nprompt = "Order number?"\n')
    cfg = load(path)
    assert [f.name for f in cfg.fields] == ["order"]


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "missing.toml")
    path = site(tmp_path, "[jsonim\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.key == "-" and caught.value.problem.startswith("not valid TOML")


def test_queue_hours_overflow_and_routing_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGATEWAY_ROUTER_TOKEN", "from-env")
    path = site(
        tmp_path,
        """
[routing]
rules = "etc/routing.toml"
remote_url = "http://127.0.0.1:7080"
[queues.billing]
hours = ["mon-fri 08:00-18:00"]
timezone = "Europe/Berlin"
overflow = "general"
""",
    )
    cfg = load(path)
    assert cfg.rules_file == Path("etc/routing.toml")
    assert cfg.remote_token == "from-env"
    billing = cfg.queues["billing"]
    assert billing.overflow == "general"
    monday = 1795996800  # 2026-11-30 00:00 UTC, 01:00 in Berlin
    assert not billing.hours.is_open(monday + 6 * 3600 + 59 * 60)  # 07:59 Berlin
    assert billing.hours.is_open(monday + 7 * 3600)  # 08:00 Berlin
    assert billing.hours.is_open(monday + 16 * 3600 + 59 * 60)  # 17:59 Berlin
    assert not billing.hours.is_open(monday + 17 * 3600)  # 18:00 Berlin
    assert not billing.hours.is_open(monday + 5 * 86400 + 10 * 3600)  # Saturday


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[queues.general]\nhours = ["someday 9-5"]\n', "queues.general.hours", "is not like"),
        ('[queues.general]\ntimezone = "Mars/Olympus"\n', "queues.general.timezone", "unknown"),
        ('[queues.general]\noverflow = "vip"\n', "queues.general.overflow", "names no queue"),
        ('[routing]\nremote_url = "ftp://x"\n', "routing.remote_url", "http:// or https://"),
    ],
)
def test_routing_and_queue_errors(tmp_path, text, key, problem):
    with pytest.raises(ConfigError) as caught:
        load(site(tmp_path, text))
    assert caught.value.key == key and problem in caught.value.problem
