"""The imgateway-admin command line.

Every test runs twice: on SQLite (``data_dir``), and on PostgreSQL in the private
cluster of ``conftest.pg_server`` (which fails, not skips, without it), with the
same output and exit status.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.admin import cli as admin
from gateway.config import load
from gateway.passwords import verify_password
from gateway.store import engine_for
from gateway.store import sqlite as db
from gateway.store.interfaces import IEngine
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage
from gateway.store.settings import DSN_ENV

# 2026-11-29T10:00:00Z
T0 = 1795946400.0

_Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database the CLI works on; for postgresql, a fresh database's DSN too."""
    monkeypatch.delenv(DSN_ENV, raising=False)
    if request.param == "postgresql":
        return request.getfixturevalue("pg_server").new_database()
    return "sqlite"


@pytest.fixture
def config_file(tmp_path: Path, data_dir: Path, backend: str) -> Path:
    path = tmp_path / "imgateway.toml"
    text = f'[gateway]\ndata_dir = "{data_dir}"\n\n[agents]\ndefault_capacity = 3\n'
    if backend != "sqlite":
        text += f'\n[store]\nbackend = "postgresql"\ndsn = "{backend}"\n'
    path.write_text(text)
    return path


@pytest.fixture
def run(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> _Run:
    monkeypatch.setattr(admin, "_clock", lambda: T0)

    def run(*argv: str, stdin: str = "", config: bool = True) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        args = [*argv, "--config", str(config_file)] if config else list(argv)
        code = admin.main(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _engine(config_file: Path) -> IEngine:
    """The engine the CLI uses with ``config_file``, open."""
    engine = engine_for(load(config_file))
    engine.open()
    return engine


@pytest.fixture
def engine(config_file: Path) -> Iterator[IEngine]:
    engine = _engine(config_file)
    yield engine
    engine.close()


def _stored(config_file: Path, name: str) -> AgentRecord | None:
    engine = _engine(config_file)
    try:
        return engine.get_agent(name)
    finally:
        engine.close()


# agent add.


def test_agent_add(run: _Run, config_file: Path) -> None:
    code, out, err = run(
        "agent",
        "add",
        "anna",
        "--skill",
        "tech:2",
        "--skill",
        "billing:4",
        "--capacity",
        "4",
        "--display-name",
        "Anna",
        "--password-stdin",
        stdin=" s3cret pass \n",
    )
    assert (code, out, err) == (0, "agent anna added\n", "")
    agent = _stored(config_file, "anna")
    assert agent is not None
    assert (agent.display_name, agent.capacity, agent.created) == ("Anna", 4, T0)
    assert agent.skills == {"billing": 4, "tech": 2}
    # Only the line ending is stripped from the password.
    assert verify_password(" s3cret pass ", agent.password_hash)
    assert not verify_password("s3cret pass", agent.password_hash)


def test_agent_add_defaults(run: _Run, config_file: Path) -> None:
    code, out, _ = run("agent", "add", "bob.smith", "--password-stdin", stdin="pw")
    assert (code, out) == (0, "agent bob.smith added\n")
    agent = _stored(config_file, "bob.smith")
    assert agent is not None
    assert agent.capacity == 3  # agents.default_capacity of the site file
    assert agent.skills == {}
    # Customers see the display name: by default it must not reveal the account.
    assert re.fullmatch(r"Agent [0-9a-f]{4}", agent.display_name)
    assert verify_password("pw", agent.password_hash)


def test_config_before_the_command(run: _Run, config_file: Path) -> None:
    code, _, _ = run(
        "--config", str(config_file), "agent", "add", "anna", "--password-stdin",
        stdin="pw\n", config=False,
    )  # fmt: skip
    assert code == 0
    assert _stored(config_file, "anna") is not None


def test_config_between_commands(run: _Run, config_file: Path) -> None:
    code, _, _ = run(
        "agent", "--config", str(config_file), "add", "anna", "--password-stdin",
        stdin="pw\n", config=False,
    )  # fmt: skip
    assert code == 0
    assert _stored(config_file, "anna") is not None


def test_agent_add_existing(run: _Run) -> None:
    assert run("agent", "add", "anna", "--password-stdin", stdin="pw\n")[0] == 0
    code, out, err = run("agent", "add", "anna", "--password-stdin", stdin="other\n")
    assert (code, out, err) == (1, "", "imgateway-admin: agent 'anna' already exists\n")


def test_agent_add_needs_password_stdin(run: _Run, data_dir: Path) -> None:
    code, out, err = run("agent", "add", "anna", stdin="pw\n")
    assert (code, out) == (2, "")
    assert err == (
        "imgateway-admin: --password-stdin is required: the password is read from"
        " standard input, never from the command line\n"
    )
    assert not data_dir.exists()


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_agent_add_needs_a_password(run: _Run, stdin: str) -> None:
    code, out, err = run("agent", "add", "anna", "--password-stdin", stdin=stdin)
    assert (code, out, err) == (2, "", "imgateway-admin: no password on standard input\n")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["Anna"], "argument NAME: 'Anna' is not a valid agent name"),
        ([".anna"], "argument NAME: '.anna' is not a valid agent name"),
        (["a" * 65], "is not a valid agent name"),
        (["anna", "--skill", "tech"], "argument --skill: 'tech' is not SKILL:LEVEL"),
        (["anna", "--skill", "tech:6"], "level must be a whole number from 0 to 5"),
        (["anna", "--skill", "tech:-1"], "level must be a whole number from 0 to 5"),
        (["anna", "--capacity", "0"], "argument --capacity: '0' is not a whole number from 1"),
        (["anna", "--capacity", "x"], "argument --capacity: 'x' is not a whole number"),
    ],
)
def test_agent_add_bad_arguments(run: _Run, args: list[str], problem: str) -> None:
    code, out, err = run("agent", "add", *args, "--password-stdin", stdin="pw\n")
    assert (code, out) == (2, "")
    assert problem in err.splitlines()[-1]
    assert err.splitlines()[-1].startswith("imgateway-admin agent add: error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--skill", "tech:1", "--skill", "tech:2"], "skill 'tech' given twice"),
        (["--display-name", " "], "the display name must not be empty"),
        (["--display-name", "A\x1b[2J"], "the display name must not contain control characters"),
        (["--display-name", "x" * 65], "the display name must be at most 64 characters"),
        (
            ["--display-name", "anna"],
            "the display name must differ from the account name: customers see the"
            " display name, and the account name stays internal",
        ),
    ],
)
def test_agent_add_refused(run: _Run, args: list[str], message: str) -> None:
    code, out, err = run("agent", "add", "anna", *args, "--password-stdin", stdin="pw\n")
    assert (code, out, err) == (2, "", f"imgateway-admin: {message}\n")


# agent passwd, list, remove.


def test_agent_passwd(run: _Run, config_file: Path) -> None:
    run("agent", "add", "anna", "--password-stdin", stdin="old\n")
    code, out, err = run("agent", "passwd", "anna", "--password-stdin", stdin="new\n")
    assert (code, out, err) == (0, "password of agent anna changed\n", "")
    agent = _stored(config_file, "anna")
    assert agent is not None
    assert verify_password("new", agent.password_hash)
    assert not verify_password("old", agent.password_hash)


def test_agent_passwd_failures(run: _Run) -> None:
    code, out, err = run("agent", "passwd", "nobody", "--password-stdin", stdin="pw\n")
    assert (code, out, err) == (1, "", "imgateway-admin: no such agent: nobody\n")
    code, _, err = run("agent", "passwd", "anna", stdin="pw\n")
    assert code == 2
    assert err.startswith("imgateway-admin: --password-stdin is required")


def test_agent_list(run: _Run) -> None:
    assert run("agent", "list") == (0, "no agents\n", "")
    run(
        "agent", "add", "bob", "--display-name", "Bob the Builder", "--capacity", "10",
        "--password-stdin", stdin="pw\n",
    )  # fmt: skip
    run(
        "agent", "add", "anna", "--display-name", "Anna", "--skill", "tech:2",
        "--skill", "billing:4", "--location", "remote", "--address", "xmpp:Anna@Corp.example",
        "--address", "irc:Anna", "--password-stdin", stdin="pw\n",
    )  # fmt: skip
    code, out, err = run("agent", "list")
    assert (code, err) == (0, "")
    assert out == (
        "NAME  DISPLAY NAME     CAPACITY  SKILLS            LOCATION  ADDRESSES\n"
        "anna  Anna             3         billing:4,tech:2  remote    "
        "irc:Anna,xmpp:anna@corp.example\n"
        "bob   Bob the Builder  10        -                 lan       -\n"
    )
    # An address names one agent only.
    code, _, err = run(
        "agent", "add", "carl", "--display-name", "Carl", "--address", "irc:Anna",
        "--password-stdin", stdin="pw\n",
    )  # fmt: skip
    assert code == 1 and "belongs to another agent" in err


def test_agent_list_json(run: _Run) -> None:
    run("agent", "add", "anna", "--display-name", "Anna", "--skill", "tech:2", "--bot",
        "--capacity-for", "irc:1",
        "--password-stdin", stdin="pw\n")  # fmt: skip
    code, out, _ = run("agent", "list", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "name": "anna",
            "display_name": "Anna",
            "capacity": 3,
            "skills": {"tech": 2},
            "location": "lan",
            "capacity_for": {"irc": 1},
            "bot": True,
            "addresses": [],
            "created": "2026-11-29T10:00:00.000Z",
        }
    ]
    assert "scrypt" not in out


def test_agent_remove(run: _Run, config_file: Path) -> None:
    run("agent", "add", "anna", "--password-stdin", stdin="pw\n")
    assert run("agent", "remove", "anna") == (0, "agent anna removed\n", "")
    assert _stored(config_file, "anna") is None
    assert run("agent", "remove", "anna") == (1, "", "imgateway-admin: no such agent: anna\n")


# conversations and transcript.


def _conversation(id_: str, started: float, **kw) -> ConversationRecord:
    values = dict(
        customer_alias="c-7f3a",
        protocol="jsonim",
        client_name="Gajim",
        client_version="1.8.4",
    )
    values.update(kw)
    return ConversationRecord(id=id_, started=started, **values)


@pytest.fixture
def history(engine: IEngine) -> None:
    engine.insert_conversation(
        _conversation(
            "c-1",
            T0 + 0.123,
            queue="billing",
            topic="billing",
            identity={"name": "Dana"},
            state="ended",
            agent="anna",
            ended=T0 + 300,
            end_reason="customer",
        ),
    )
    engine.insert_conversation(
        _conversation("c-2", T0 + 60, customer_alias="c-9b1e", protocol="xmpp")
    )
    messages = [
        StoredMessage("g-1", "c-1", "customer", "billing", T0 + 1.5),
        StoredMessage("g-2", "c-1", "system", "Anna joined", T0 + 2),
        StoredMessage("g-3", "c-1", "agent", "Hello!", T0 + 3.25, agent="anna"),
        StoredMessage("g-4", "c-1", "customer", "line one\nline two\x1b[31m", T0 + 4),
    ]
    for message in messages:
        engine.insert_message(message)


@pytest.mark.usefixtures("history")
def test_conversations(run: _Run) -> None:
    code, out, err = run("conversations")
    assert (code, err) == (0, "")
    assert out == (
        "ID   STARTED                   STATE      QUEUE    CUSTOMER  PROTOCOL  CLIENT       "
        "AGENT  END\n"
        "c-2  2026-11-29T10:01:00.000Z  interview  -        c-9b1e    xmpp      Gajim 1.8.4  "
        "-      -\n"
        "c-1  2026-11-29T10:00:00.123Z  ended      billing  c-7f3a    jsonim    Gajim 1.8.4  "
        "anna   customer\n"
    )
    code, out, _ = run("conversations", "--limit", "1")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["ID", "c-2"]


def test_no_conversations(run: _Run) -> None:
    assert run("conversations") == (0, "no conversations\n", "")


@pytest.mark.usefixtures("history")
def test_conversations_json(run: _Run) -> None:
    code, out, _ = run("conversations", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [c["id"] for c in listed] == ["c-2", "c-1"]
    assert listed[1] == {
        "id": "c-1",
        "started": "2026-11-29T10:00:00.123Z",
        "state": "ended",
        "queue": "billing",
        "topic": "billing",
        "customer_alias": "c-7f3a",
        "identity": {"name": "Dana"},
        "protocol": "jsonim",
        "client_name": "Gajim",
        "client_version": "1.8.4",
        "agent": "anna",
        "ended": "2026-11-29T10:05:00.000Z",
        "end_reason": "customer",
        "routing": None,
    }


@pytest.mark.usefixtures("history")
def test_transcript(run: _Run) -> None:
    code, out, err = run("transcript", "c-1")
    assert (code, err) == (0, "")
    assert out == (
        "conversation c-1: customer c-7f3a via jsonim (Gajim 1.8.4), queue billing,"
        " agent anna, state ended, started 2026-11-29T10:00:00.123Z,"
        " ended 2026-11-29T10:05:00.000Z (customer)\n"
        "[2026-11-29T10:00:01.500Z] customer: billing\n"
        "[2026-11-29T10:00:02.000Z] system: Anna joined\n"
        "[2026-11-29T10:00:03.250Z] agent (anna): Hello!\n"
        # A message cannot forge lines or send escape sequences to the terminal.
        "[2026-11-29T10:00:04.000Z] customer: line one\\nline two\\x1b[31m\n"
    )


@pytest.mark.usefixtures("history")
def test_transcript_of_an_open_conversation(run: _Run) -> None:
    code, out, _ = run("transcript", "c-2")
    assert (code, out) == (
        0,
        "conversation c-2: customer c-9b1e via xmpp (Gajim 1.8.4), queue -, agent -,"
        " state interview, started 2026-11-29T10:01:00.000Z\n",
    )


@pytest.mark.usefixtures("history")
def test_transcript_json(run: _Run) -> None:
    code, out, _ = run("transcript", "c-1", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["conversation"]["id"] == "c-1"
    assert document["messages"][2] == {
        "id": "g-3",
        "ts": "2026-11-29T10:00:03.250Z",
        "sender": "agent",
        "agent": "anna",
        "text": "Hello!",
        "audience": "all",
    }
    assert document["messages"][3]["text"] == "line one\nline two\x1b[31m"


def test_transcript_unknown(run: _Run) -> None:
    assert run("transcript", "c-9") == (1, "", "imgateway-admin: no such conversation: c-9\n")


# Configuration, database and usage errors.


def test_config_error(run: _Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nbogus = 1\n")
    code, out, err = run("agent", "list", "--config", str(bad), config=False)
    assert (code, out, err) == (2, "", f"imgateway-admin: {bad}: gateway.bogus: unknown key\n")


def test_missing_config_file(run: _Run, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    code, _, err = run("conversations", "--config", str(missing), config=False)
    assert (code, err) == (2, f"imgateway-admin: {missing}: -: no such file\n")


def test_newer_database_is_refused(
    run: _Run, config_file: Path, data_dir: Path, backend: str
) -> None:
    _engine(config_file).close()
    if backend == "sqlite":
        raw = sqlite3.connect(data_dir / db.DB_FILE)
        raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
        raw.close()
    else:
        import psycopg

        from gateway.store import postgres

        with psycopg.connect(backend, autocommit=True) as pg:
            pg.execute(
                "INSERT INTO schema_version (version) VALUES (%s)", (postgres.SCHEMA_VERSION + 1,)
            )
    code, out, err = run("agent", "list")
    assert (code, out) == (1, "")
    assert err.startswith("imgateway-admin: ")
    assert err.endswith("upgrade imgateway\n")


def test_a_refused_add_leaves_nothing(run: _Run, config_file: Path) -> None:
    run("agent", "add", "anna", "--address", "irc:Anna", "--password-stdin", stdin="pw\n")
    code, out, err = run(
        "agent", "add", "carl", "--address", "irc:carl", "--address", "irc:Anna",
        "--password-stdin", stdin="pw\n",
    )  # fmt: skip
    assert (code, out, err) == (
        1,
        "",
        "imgateway-admin: an address of carl belongs to another agent\n",
    )
    # Neither the account nor its first address: the command's writes are one.
    assert _stored(config_file, "carl") is None
    engine = _engine(config_file)
    try:
        assert engine.find_agent("irc:carl") is None
        assert engine.get_scram("carl") is None
    finally:
        engine.close()
    assert run("agent", "add", "carl", "--password-stdin", stdin="pw\n")[0] == 0


@pytest.mark.usefixtures("history")
def test_a_database_error(run: _Run, data_dir: Path, backend: str) -> None:
    if backend == "sqlite":
        raw = sqlite3.connect(data_dir / db.DB_FILE)
        raw.execute("DROP TABLE messages")
        raw.close()
        problem = "no such table: messages"
    else:
        import psycopg

        with psycopg.connect(backend, autocommit=True) as pg:
            pg.execute("DROP TABLE messages")
        problem = 'postgresql: relation "messages" does not exist'
    code, out, err = run("transcript", "c-1")
    assert (code, out) == (1, "")
    assert err.startswith(f"imgateway-admin: database error: {problem}\n")


@pytest.mark.parametrize(
    "argv", [[], ["agent"], ["frobnicate"], ["conversations", "--limit", "0"], ["transcript"]]
)
def test_usage_errors(run: _Run, argv: list[str]) -> None:
    code, out, err = run(*argv)
    assert (code, out) == (2, "")
    assert "error:" in err


def test_help(run: _Run) -> None:
    code, out, _ = run("--help", config=False)
    assert code == 0
    assert out.startswith("usage: imgateway-admin")
