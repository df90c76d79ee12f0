"""``imgateway-admin team ...`` on the database (SQLite and PostgreSQL).

That a running gateway reloads its teams after each command is shown over real
sockets in tests/integration/test_teams.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.admin import cli as admin
from gateway.admin import teams_cli
from gateway.config import load
from gateway.store import engine_for
from gateway.store.records import AgentRecord
from gateway.store.settings import DSN_ENV

_Run = Callable[..., tuple[int, str, str]]
NOT_RUNNING = "(no running gateway answered; it reads the teams when it starts)\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def config_file(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv(DSN_ENV, raising=False)
    monkeypatch.delenv("IMGATEWAY_ADMIN_TOKEN", raising=False)
    path = tmp_path / "imgateway.toml"
    text = f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n\n[queues.billing]\n[queues.tech]\n'
    if request.param == "postgresql":
        dsn = request.getfixturevalue("pg_server").new_database()
        text += f'\n[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
    path.write_text(text)
    engine = engine_for(load(path))
    engine.open()
    for name in ("anna", "bob"):
        engine.add_agent(
            AgentRecord(name=name, display_name=name.title(), password_hash="x", capacity=2)
        )
    engine.close()
    return path


@pytest.fixture
def run(config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> _Run:
    monkeypatch.setattr(teams_cli, "_clock", lambda: 1000.0)

    def run(*argv: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = admin.main([*argv, "--config", str(config_file)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_add_list_and_remove(run: _Run) -> None:
    code, out, err = run(
        "team", "add", "billing-desk", "--description", "Invoices", "--member", "anna",
        "--queue", "billing",
    )  # fmt: skip
    assert (code, out, err) == (0, "team billing-desk added\n" + NOT_RUNNING, "")
    assert run("team", "add", "tech-desk")[0] == 0
    code, out, _ = run("team", "list")
    assert code == 0
    assert out.splitlines() == [
        "TEAM          MEMBERS  QUEUES   DESCRIPTION",
        "billing-desk  anna     billing  Invoices",
        "tech-desk     -        -        -",
    ]
    code, out, _ = run("team", "list", "--json")
    assert json.loads(out)[0] == {
        "name": "billing-desk",
        "description": "Invoices",
        "members": ["anna"],
        "queues": ["billing"],
    }
    assert run("team", "remove", "tech-desk")[:2] == (0, "team tech-desk removed\n" + NOT_RUNNING)
    assert run("team", "remove", "tech-desk") == (
        1,
        "",
        "imgateway-admin: no such team: 'tech-desk'\n",
    )


def test_members_queues_and_description(run: _Run) -> None:
    run("team", "add", "front")
    assert run("team", "add-member", "front", "anna", "bob")[:2] == (
        0,
        "team front: anna, bob added\n" + NOT_RUNNING,
    )
    assert run("team", "serve", "front", "billing", "tech")[1].startswith(
        "team front serves billing, tech\n"
    )
    assert run("team", "remove-member", "front", "bob")[1].startswith(
        "team front: 1 member(s) removed\n"
    )
    assert run("team", "unserve", "front", "tech")[1].startswith(
        "team front: 1 queue(s) no longer served\n"
    )
    run("team", "describe", "front", "First line")
    assert json.loads(run("team", "list", "--json")[1]) == [
        {"name": "front", "description": "First line", "members": ["anna"], "queues": ["billing"]}
    ]


def test_mistakes_are_named(run: _Run) -> None:
    assert run("team", "add", "front", "--queue", "nowhere") == (
        2,
        "",
        "imgateway-admin: no such queue: 'nowhere' (queues: billing, general, tech)\n",
    )
    assert run("team", "add", "front", "--member", "zoe")[::2] == (
        1,
        "imgateway-admin: no such agent: 'zoe'\n",
    )
    # All or nothing: the team was not created without its member.
    assert run("team", "list")[1] == "no teams\n"
    run("team", "add", "front")
    assert run("team", "add", "front")[2] == "imgateway-admin: team 'front' already exists\n"
    assert run("team", "add-member", "ghosts", "anna")[2] == (
        "imgateway-admin: no such team: 'ghosts'\n"
    )
    code, _, err = run("team", "add", "Front Desk")
    assert code == 2 and "is not a valid team name" in err
