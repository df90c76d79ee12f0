"""The routing server's configuration: defaults, site file, token, media and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.routerd.config import load

TOKEN = "t" * 16


def write(tmp_path: Path, text: str, name: str = "imrouter.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, environ=None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path, environ={} if environ is None else environ)
    return str(caught.value)


def test_packaged_defaults_with_the_token_from_the_environment(tmp_path):
    config = load(cwd=tmp_path, environ={"IMROUTER_TOKEN": TOKEN})
    assert config.sources == ("packaged defaults",)
    assert config.listen == ("tcp:7080:interface=127.0.0.1",)
    assert config.token == TOKEN
    assert config.queues == ("general",)
    assert config.max_body == 4 * 1024 * 1024
    assert config.log_level == "info"
    assert config.media == {"chat": None, "email": None, "voice": None, "task": None}
    assert TOKEN not in repr(config)


def test_no_token_anywhere_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(cwd=tmp_path, environ={})
    assert str(caught.value) == (
        "packaged defaults: router.token: is required "
        "(or set the environment variable IMROUTER_TOKEN)"
    )


def test_token_from_the_file_and_the_environment_wins(tmp_path):
    path = write(tmp_path, f'[router]\ntoken = "{"f" * 20}"\n')
    assert load(path, environ={}).token == "f" * 20
    assert load(path, environ={"IMROUTER_TOKEN": TOKEN}).token == TOKEN


def test_short_tokens_are_refused(tmp_path):
    path = write(tmp_path, '[router]\ntoken = "short"\n')
    assert error_of(path) == f"{path}: router.token: must be at least 16 characters"
    assert error_of(path, {"IMROUTER_TOKEN": "short"}) == (
        f"{path}: IMROUTER_TOKEN: must be at least 16 characters"
    )


def test_site_file_in_cwd_and_relative_rules_paths(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    write(
        etc,
        '[router]\nlisten = ["tcp:0"]\nqueues = ["general", "vip"]\n'
        '[media.chat]\nrules = "routing.toml"\n'
        '[media.email]\nrules = "/abs/email.toml"\n'
        "[media.voice]\nenabled = false\n"
        '[media.sms]\nrules = ""\n',
    )
    config = load(cwd=tmp_path, environ={"IMROUTER_TOKEN": TOKEN})
    assert config.sources == ("packaged defaults", str(etc / "imrouter.toml"))
    assert config.listen == ("tcp:0",)
    assert config.queues == ("general", "vip")
    assert config.media == {
        "chat": etc / "routing.toml",
        "email": Path("/abs/email.toml"),
        "task": None,
        "sms": None,
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[router]\nlisten = []\n", "router.listen: at least one endpoint is required"),
        ('[router]\nlisten = [""]\n', "router.listen[0]: must be a Twisted endpoint string"),
        ("[router]\nqueues = []\n", "router.queues: at least one queue is required"),
        ('[router]\nqueues = ["Bad Name"]\n', "router.queues[0]: 'Bad Name' is not a valid name"),
        ("[router]\nmax_body = 1\n", "router.max_body: must be between 256"),
        ("[router]\nport = 1\n", "router.port: unknown key"),
        ('[logging]\nlevel = "loud"\n', "logging.level: must be one of debug, info, warn, error"),
        ("[media.chat]\nrules = 3\n", "media.chat.rules: must be a string"),
        ('[media.chat]\nfile = "x"\n', "media.chat.file: unknown key"),
        ('[media."Chat!"]\n', "media.Chat!: 'Chat!' is not a valid name"),
        (
            "[media]\n"
            + "".join(f"{m} = {{ enabled = false }}\n" for m in ("chat", "email", "voice", "task")),
            "media: at least one media type is required",
        ),
        ("[nonsense]\n", "nonsense: unknown key"),
        ("not toml", "-: not valid TOML"),
    ],
)
def test_errors_are_one_line_naming_file_and_key(tmp_path, text, problem):
    path = write(tmp_path, f'[router]\ntoken = "{TOKEN}"\n' if "[router]" not in text else text)
    if "[router]" not in text:
        path.write_text(path.read_text() + text)
    else:
        path.write_text(text.replace("[router]\n", f'[router]\ntoken = "{TOKEN}"\n'))
    message = error_of(path)
    assert message.startswith(f"{path}: {problem}"), message
    assert "\n" not in message


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.toml") == f"{tmp_path / 'nope.toml'}: -: no such file"
