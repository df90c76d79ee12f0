"""The [irc] and [irc.bot] sections."""

from __future__ import annotations

import pytest

from gateway import config
from protocols.irc.settings import BOT_PASSWORD_ENV, IrcSettings


def load(tmp_path, text: str):
    path = tmp_path / "site.toml"
    path.write_text(text)
    return config.load(path)


def test_defaults(tmp_path):
    cfg = config.load(cwd=tmp_path)
    assert cfg.sections["irc"] == IrcSettings()
    assert cfg.listeners["irc"] == ()


def test_site_values_and_the_password_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(BOT_PASSWORD_ENV, "from-env")
    cfg = load(
        tmp_path,
        '[listeners]\nirc = ["tcp:6667:interface=127.0.0.1"]\n'
        '[irc]\nserver_name = "chat.example.com"\nservice_nick = "Help"\n'
        '[irc.bot]\nenabled = true\nhost = "irc.example.net"\nauth = "sasl"\n'
        'password = "from-file"\n',
    )
    irc = cfg.sections["irc"]
    assert (irc.server_name, irc.service_nick) == ("chat.example.com", "Help")
    assert irc.bot.enabled and irc.bot.password == "from-env"
    assert "from-env" not in repr(irc)
    assert cfg.listeners["irc"] == ("tcp:6667:interface=127.0.0.1",)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[irc]\nserver_name = "bad name"', "irc.server_name", "not a valid server name"),
        ('[irc]\nservice_nick = "9x"', "irc.service_nick", "not a valid nick"),
        ('[irc]\nagents_channel = "#support"', "irc.agents_channel", "must differ"),
        ("[irc]\nmax_line = 100", "irc.max_line", "between 512"),
        ("[irc]\ncolour = 1", "irc.colour", "unknown key"),
        ("[irc.bot]\nenabled = true", "irc.bot.host", "is required"),
        ('[irc.bot]\nauth = "sasl"', "irc.bot.password", "is required"),
        ('[irc.bot]\nagent_identity = "host"', "irc.bot.agent_identity", "must be one of"),
    ],
)
def test_mistakes_name_the_key(tmp_path, monkeypatch, text, key, problem):
    monkeypatch.delenv(BOT_PASSWORD_ENV, raising=False)
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key
    assert problem in caught.value.problem
