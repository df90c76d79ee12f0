"""The ``[cluster]`` section: the Redis server a node shares with the others, and timings.

Registered as the ``cluster`` part (gateway/app/parts.py); ``Config.sections["cluster"]``
is then a :class:`ClusterSettings`. An empty ``redis`` (the default) is one process on
its own: the in-memory directory, no Redis.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from gateway.config import Reader

# Wins over [cluster] redis, so that a password need not be written in a config file.
REDIS_ENV = "IMGATEWAY_REDIS_URL"
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{0,32}$")


@attrs.frozen
class ClusterSettings:
    """How this node joins its cluster. Defaults here are the defaults of ``[cluster]``."""

    #: redis://[:password@]host[:port][/db] or unix:///path; empty: no cluster.
    redis: str = ""
    #: This node's name among the others; empty: host name and process id.
    node: str = ""
    #: Prefix of every Redis key and channel (several clusters on one Redis).
    prefix: str = "imgw:"
    #: How often a node writes its record and reads the others'.
    heartbeat_s: float = 1.0
    #: A node whose record is this old is lost: another takes its conversations.
    node_timeout_s: float = 5.0
    #: How long an agent's line in a conversation on another node waits for its ack.
    request_timeout_s: float = 5.0
    #: Worker processes of this gateway on this host, sharing its listening sockets.
    workers: int = 1

    def effective_redis(self, environ: os._Environ | dict | None = None) -> str:
        """The Redis URL to use: the environment's, else the configured one."""
        environ = os.environ if environ is None else environ
        return environ.get(REDIS_ENV) or self.redis


def parse_url(url: str) -> dict[str, Any]:
    """``redis://[:password@]host[:port][/db]`` or ``unix:///path[?db=N]`` as settings.

    Raises ValueError with the problem.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "unix"):
        raise ValueError("must start with redis:// or unix://")
    db_text = parts.path.strip("/") if parts.scheme == "redis" else ""
    if parts.scheme == "unix":
        for item in parts.query.split("&"):
            if item.startswith("db="):
                db_text = item[3:]
    if db_text and not db_text.isdigit():
        raise ValueError(f"database {db_text!r} is not a number")
    settings: dict[str, Any] = {
        "db": int(db_text) if db_text else 0,
        "password": unquote(parts.password) if parts.password else None,
    }
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs a socket path")
        settings["path"] = parts.path
    else:
        if not parts.hostname:
            raise ValueError("needs a host")
        settings["host"] = parts.hostname
        settings["port"] = parts.port or 6379
    return settings


def describe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[-1]
        return parts._replace(netloc=host).geturl()
    return url


def parse(reader: Reader) -> ClusterSettings:
    """Read ``[cluster]``."""

    def redis_url(value: str) -> str | None:
        if not value:
            return None
        try:
            parse_url(value)
        except ValueError as e:
            return str(e)
        return None

    settings = ClusterSettings(
        redis=reader.text("redis", "", check=redis_url),
        node=reader.text(
            "node", "", check=lambda v: None if not v or _NODE.match(v) else "must be a name"
        ),
        prefix=reader.text(
            "prefix", "imgw:", check=lambda v: None if _PREFIX.match(v) else "bad prefix"
        ),
        heartbeat_s=reader.number("heartbeat_s", 1.0, low=0.05, high=60),
        node_timeout_s=reader.number("node_timeout_s", 5.0, low=0.2, high=600),
        request_timeout_s=reader.number("request_timeout_s", 5.0, low=0.1, high=600),
        workers=reader.number("workers", 1, low=1, high=256, integer=True),
    )
    if settings.node_timeout_s <= settings.heartbeat_s:
        raise reader.fail("node_timeout_s", "must be longer than heartbeat_s")
    reader.done()
    return settings
