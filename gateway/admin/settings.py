"""The ``[admin]`` section: the admin API's listeners, its token, the metrics listener."""

from __future__ import annotations

import ipaddress
import os
import re

import attrs
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress

from gateway.config import Reader

TOKEN_ENV = "IMGATEWAY_ADMIN_TOKEN"
TOKEN_FILE = "admin.token"
_LOOPBACK_NAMES = ("localhost", "ip6-localhost")
_SEPARATOR = re.compile(r"(?<!\\):")


@attrs.frozen
class AdminSettings:
    """Where the admin API and the metrics endpoint listen, and the API's token.

    ``token`` is empty when neither the file nor the environment gives one: the
    gateway then makes one at startup and writes it to ``data_dir/admin.token``.
    """

    listen: tuple[str, ...] = ("tcp:7071:interface=127.0.0.1",)
    metrics: tuple[str, ...] = ("tcp:9464:interface=127.0.0.1",)
    token: str = ""
    allow_remote: bool = False


def endpoint_parts(description: str) -> list[str]:
    """An endpoint string's ``:``-separated parts, with ``\\:`` escapes undone; the type
    (the first part) in lower case, as Twisted matches it."""
    parts = [p.replace("\\:", ":") for p in _SEPARATOR.split(description)]
    parts[0] = parts[0].strip().lower()
    return parts


def endpoint_interface(description: str) -> str | None:
    """The ``interface=`` of a tcp/ssl endpoint string; "" when it binds every address.

    None for endpoint kinds without a network interface (unix:) or unknown to this check.
    """
    parts = endpoint_parts(description)
    if parts[0] not in ("tcp", "tcp6", "ssl"):
        return None
    for part in parts[1:]:
        if part.startswith("interface="):
            return part.removeprefix("interface=")
    return ""


def is_loopback(description: str) -> bool | None:
    """Whether an endpoint string only accepts connections from this host, as far as
    its text tells; None when only the address it binds can tell (see
    :func:`bound_to_loopback`, which decides at startup in every case)."""
    if endpoint_parts(description)[0] == "unix":
        return True  # a UNIX socket: file permissions guard it
    interface = endpoint_interface(description)
    if interface is None:
        return None
    if interface in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def bound_to_loopback(address: IAddress) -> bool:
    """Whether a listening port's bound address takes connections from this host only:
    a loopback IP address (IPv4-mapped too), or a UNIX socket."""
    if isinstance(address, UNIXAddress):
        return True
    if not isinstance(address, IPv4Address | IPv6Address):
        return False
    try:
        ip = ipaddress.ip_address(address.host.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _endpoints(reader: Reader, name: str, allow_remote: bool) -> tuple[str, ...]:
    values = reader.get(name, list, [])
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise reader.fail(f"{name}[{i}]", "must be a Twisted endpoint string")
        if not allow_remote and is_loopback(value) is False:
            raise reader.fail(
                f"{name}[{i}]",
                f"{value!r} is not loopback-only; add interface=127.0.0.1, or set"
                " admin.allow_remote = true",
            )
    return tuple(values)


def parse(reader: Reader) -> AdminSettings:
    """Read ``[admin]``; non-loopback listeners are refused unless allow_remote is set."""
    allow_remote = reader.get("allow_remote", bool, False)
    settings = AdminSettings(
        listen=_endpoints(reader, "listen", allow_remote),
        metrics=_endpoints(reader, "metrics", allow_remote),
        token=os.environ.get(TOKEN_ENV) or reader.text("token", ""),
        allow_remote=allow_remote,
    )
    reader.seen.add("token")
    reader.done()
    return settings
