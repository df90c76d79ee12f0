"""The ``[irc]`` and ``[irc.bot]`` configuration sections, parsed once at startup."""

from __future__ import annotations

import os
import re

import attrs

from gateway.config import Reader

# A channel name as the listener accepts it in configuration.
_CHANNEL = re.compile(r"^[#&][^\x00\x07\r\n ,:]{1,49}$")
# A nick as RFC 2812 allows it (a letter or special first), up to 30 characters.
_NICK = re.compile(r"^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")
BOT_PASSWORD_ENV = "IMGATEWAY_IRC_BOT_PASSWORD"
PASSWORD_ENV = "IMGATEWAY_IRC_PASSWORD"
AUTH_METHODS = ("none", "sasl", "nickserv")
AGENT_IDENTITIES = ("account", "nick")


def _check(pattern: re.Pattern, what: str):
    return lambda v: None if pattern.match(v) else f"{v!r} is not a valid {what}"


@attrs.frozen
class BotSettings:
    """Bot mode: the gateway as a client of an existing IRC network."""

    enabled: bool = False
    host: str = ""
    port: int = 6697
    tls: bool = True
    ca_file: str = ""
    nick: str = "Support"
    username: str = "support"
    realname: str = "Customer support"
    channel: str = "#support"
    auth: str = "none"
    account: str = ""
    password: str = attrs.field(default="", repr=False)
    agent_identity: str = "account"
    lines_per_second: float = 1.0
    line_burst: int = 5
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 300.0
    ping_interval_s: float = 120.0
    connect_timeout_s: float = 30.0
    presence_poll_s: float = 30.0


@attrs.frozen
class IrcSettings:
    """The direct IRC listener and, under ``bot``, bot mode."""

    server_name: str = "irc.imgateway.invalid"
    network: str = "imgateway"
    service_nick: str = "Support"
    gateway_host: str = "gateway.invalid"
    lobby_channel: str = "#support"
    agents_channel: str = "#agents"
    motd: str = "Welcome. Message Support or join #support to talk with us."
    max_line: int = 512
    max_tags: int = 8191
    registration_timeout_s: float = 30.0
    ping_interval_s: float = 120.0
    ping_timeout_s: float = 60.0
    lines_per_second: float = 2.0
    line_burst: int = 10
    max_lagged_lines: int = 20
    ctcp_version_timeout_s: float = 5.0
    allow_plaintext_auth: bool = False
    # The listener's own password (PASS), asked of every client; agents may instead
    # log in (SASL, or PASS name:password). Empty: none.
    password: str = attrs.field(default="", repr=False)
    # A message split into more lines than this is refused to its sender.
    max_message_lines: int = 20
    admin_email: str = ""
    bot: BotSettings = attrs.Factory(BotSettings)


def parse(reader: Reader) -> IrcSettings:
    """Read ``[irc]`` (and ``[irc.bot]``) into :class:`IrcSettings`."""
    r = reader
    settings = IrcSettings(
        server_name=r.text("server_name", check=_check(_HOST, "server name")),
        network=r.text("network", check=_check(_HOST, "network name")),
        service_nick=r.text("service_nick", check=_check(_NICK, "nick")),
        gateway_host=r.text("gateway_host", check=_check(_HOST, "host name")),
        lobby_channel=r.text("lobby_channel", check=_check(_CHANNEL, "channel")),
        agents_channel=r.text("agents_channel", check=_check(_CHANNEL, "channel")),
        motd=r.text("motd", ""),
        max_line=r.number("max_line", low=512, high=65536, integer=True),
        max_tags=r.number("max_tags", low=512, high=65536, integer=True),
        registration_timeout_s=r.number("registration_timeout_s", low=1, high=3600),
        ping_interval_s=r.number("ping_interval_s", low=1, high=86400),
        ping_timeout_s=r.number("ping_timeout_s", low=1, high=86400),
        lines_per_second=r.number("lines_per_second", low=0.01, high=1e6),
        line_burst=r.number("line_burst", low=1, high=1e6, integer=True),
        max_lagged_lines=r.number("max_lagged_lines", low=1, high=10000, integer=True),
        ctcp_version_timeout_s=r.number("ctcp_version_timeout_s", low=0.1, high=600),
        allow_plaintext_auth=r.get("allow_plaintext_auth", bool),
        password=os.environ.get(PASSWORD_ENV) or r.text("password", ""),
        max_message_lines=r.number("max_message_lines", low=1, high=10000, integer=True),
        admin_email=r.text("admin_email", ""),
        bot=_bot(r.table_of("bot")),
    )
    if settings.lobby_channel.lower() == settings.agents_channel.lower():
        raise r.fail("agents_channel", "must differ from lobby_channel")
    r.done()
    return settings


def _bot(b: Reader) -> BotSettings:
    enabled = b.get("enabled", bool)
    password = b.text("password", "")
    settings = BotSettings(
        enabled=enabled,
        host=b.text("host", ""),
        port=b.number("port", low=1, high=65535, integer=True),
        tls=b.get("tls", bool),
        ca_file=b.text("ca_file", ""),
        nick=b.text("nick", check=_check(_NICK, "nick")),
        username=b.text(
            "username", check=lambda v: None if v.isalnum() else "must be alphanumeric"
        ),
        realname=b.text("realname"),
        channel=b.text("channel", check=_check(_CHANNEL, "channel")),
        auth=b.text("auth", check=_one_of(AUTH_METHODS)),
        account=b.text("account", ""),
        password=os.environ.get(BOT_PASSWORD_ENV, password),
        agent_identity=b.text("agent_identity", check=_one_of(AGENT_IDENTITIES)),
        lines_per_second=b.number("lines_per_second", low=0.01, high=1e6),
        line_burst=b.number("line_burst", low=1, high=1e6, integer=True),
        reconnect_initial_s=b.number("reconnect_initial_s", low=0.01, high=3600),
        reconnect_max_s=b.number("reconnect_max_s", low=0.01, high=86400),
        ping_interval_s=b.number("ping_interval_s", low=1, high=86400),
        connect_timeout_s=b.number("connect_timeout_s", low=1, high=3600),
        presence_poll_s=b.number("presence_poll_s", low=0.1, high=3600),
    )
    if enabled and not settings.host:
        raise b.fail("host", "is required when bot mode is enabled")
    if settings.auth != "none" and not settings.password:
        raise b.fail("password", f"is required for auth {settings.auth!r} (or {BOT_PASSWORD_ENV})")
    b.done()
    return settings


def _one_of(options: tuple[str, ...]):
    return lambda v: None if v in options else f"must be one of {', '.join(options)}, not {v!r}"
