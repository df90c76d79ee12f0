"""The ``[xmpp]`` configuration section, parsed by :func:`parse`."""

from __future__ import annotations

import os
import re

import attrs

from gateway.config import Reader

SECRET_ENV = "IMGATEWAY_XMPP_SECRET"
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"
)
_LOCALPART = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@attrs.frozen
class XmppSettings:
    """XMPP component settings; ``domain`` empty means no component is attached."""

    domain: str = ""
    support_user: str = "support"
    server_host: str = "127.0.0.1"
    server_port: int = 5347
    # Never logged nor shown in a repr.
    secret: str = attrs.field(default="", repr=False)
    max_stanza: int = 256 * 1024
    max_depth: int = 32
    max_elements: int = 1000
    auth_timeout_s: float = 30.0
    # Direct listener: an idle stream is pinged (XEP-0199) after this; no answer in as
    # long again closes it.
    ping_s: float = 60.0
    version_timeout_s: float = 5.0
    reconnect_max_s: float = 60.0
    messages_per_second: float = 5.0
    message_burst: int = 20
    # Direct listener: stanzas one connection may send, on average and in a burst.
    stanzas_per_second: float = 20.0
    stanza_burst: int = 200
    max_customers: int = 10000
    # Ask each customer to share its presence (RFC 6121), to learn when it leaves.
    subscribe_customers: bool = True
    client_domain: str = "localhost"
    tls_cert: str = ""
    tls_key: str = ""

    @property
    def support_jid(self) -> str:
        """The published address customers write to."""
        return f"{self.support_user}@{self.domain}"


def _domain(value: str) -> str | None:
    if value == "" or _DOMAIN.match(value):
        return None
    return f"{value!r} is not a valid domain name (lowercase)"


def _client_domain(value: str) -> str | None:
    return "must not be empty" if not value else _domain(value)


def _localpart(value: str) -> str | None:
    if _LOCALPART.match(value) and not value.startswith("c-"):
        return None
    return f"{value!r} is not a valid local part (lowercase, not starting with 'c-')"


def parse(reader: Reader) -> XmppSettings:
    """Validate ``[xmpp]``; the secret may come from the environment instead."""
    # Read either way, so that the key is known; the environment wins.
    secret = reader.text("secret", "")
    settings = XmppSettings(
        domain=reader.text("domain", "", check=_domain),
        support_user=reader.text("support_user", "support", check=_localpart),
        server_host=reader.text("server_host", "127.0.0.1"),
        server_port=reader.number("server_port", 5347, low=1, high=65535, integer=True),
        secret=os.environ.get(SECRET_ENV) or secret,
        max_stanza=reader.number("max_stanza", 256 * 1024, low=4096, high=16 << 20, integer=True),
        max_depth=reader.number("max_depth", 32, low=4, high=256, integer=True),
        max_elements=reader.number("max_elements", 1000, low=16, high=1_000_000, integer=True),
        auth_timeout_s=reader.number("auth_timeout_s", 30, low=1, high=3600),
        ping_s=reader.number("ping_s", 60, low=1, high=86400),
        version_timeout_s=reader.number("version_timeout_s", 5, low=0.1, high=300),
        reconnect_max_s=reader.number("reconnect_max_s", 60, low=1, high=3600),
        messages_per_second=reader.number("messages_per_second", 5.0, low=0.01, high=1e6),
        message_burst=reader.number("message_burst", 20, low=1, high=1e6, integer=True),
        stanzas_per_second=reader.number("stanzas_per_second", 20.0, low=0.01, high=1e9),
        stanza_burst=reader.number("stanza_burst", 200, low=1, high=1e9, integer=True),
        max_customers=reader.number("max_customers", 10000, low=1, high=10_000_000, integer=True),
        subscribe_customers=reader.get("subscribe_customers", bool, True),
        client_domain=reader.text("client_domain", "localhost", check=_client_domain),
        tls_cert=reader.text("tls_cert", ""),
        tls_key=reader.text("tls_key", ""),
    )
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise reader.fail("tls_key", "tls_cert and tls_key go together")
    if settings.domain and not settings.secret:
        raise reader.fail("secret", f"is required with a domain (or set {SECRET_ENV})")
    reader.done()
    return settings
