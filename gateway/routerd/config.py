"""The routing server's configuration: packaged defaults merged with a site TOML file.

A bad file yields one :class:`gateway.config.ConfigError` (``file: key: problem``),
exactly as the gateway's own configuration does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from gateway.config import LOG_LEVELS, ConfigError, Reader, read_layers

SITE_CONFIG = Path("etc/imrouter.toml")
TOKEN_ENV = "IMROUTER_TOKEN"
MIN_TOKEN = 16
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@attrs.frozen
class RouterConfig:
    """The whole validated configuration of ``twistd imrouter``.

    ``media`` maps each media type to its rules file, None for the packaged rules.
    """

    sources: tuple[str, ...]
    listen: tuple[str, ...]
    token: str = attrs.field(repr=False)
    queues: tuple[str, ...]
    max_body: int
    log_level: str
    media: Mapping[str, Path | None]
    # The event feed's journal and state (None: in memory only), and its settings.
    data_dir: Path | None = None
    metrics: tuple[str, ...] = ()
    service_level_s: float = 20.0
    feed_texts: bool = False
    fsync: bool = True
    compact_after: int = 10_000


def load(
    path: str | Path | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> RouterConfig:
    """Packaged defaults, merged with ``path`` or else ``./etc/imrouter.toml`` if present.

    The token comes from ``IMROUTER_TOKEN`` in ``environ`` (default ``os.environ``) when
    set, else from ``router.token``; there is no default token.
    """
    layers = read_layers("gateway.routerd", path, cwd, SITE_CONFIG)
    base = layers.site.parent if layers.site is not None else (cwd or Path.cwd())
    env = os.environ if environ is None else environ
    return _validate(layers.data, layers.sources, layers.source, base, env.get(TOKEN_ENV))


def _validate(
    data: dict, sources: tuple[str, ...], source: str, base: Path, env_token: str | None
) -> RouterConfig:
    root = Reader(source, data, "")

    router = root.table_of("router")
    listen = router.get("listen", list)
    if not listen:
        raise router.fail("listen", "at least one endpoint is required")
    for i, endpoint in enumerate(listen):
        if not isinstance(endpoint, str) or not endpoint:
            raise router.fail(f"listen[{i}]", "must be a Twisted endpoint string")
    token = router.text("token")
    if env_token:
        token = env_token
    if not token:
        raise router.fail("token", f"is required (or set the environment variable {TOKEN_ENV})")
    if len(token) < MIN_TOKEN:
        where = TOKEN_ENV if env_token else router.key("token")
        raise ConfigError(source, where, f"must be at least {MIN_TOKEN} characters")
    queues = router.get("queues", list)
    if not queues:
        raise router.fail("queues", "at least one queue is required")
    for i, queue in enumerate(queues):
        problem = _valid_name(queue) if isinstance(queue, str) else "must be a string"
        if problem:
            raise router.fail(f"queues[{i}]", problem)
    max_body = router.number("max_body", low=256, high=64 * 1024 * 1024, integer=True)
    data_dir = router.text("data_dir", "")
    metrics = router.get("metrics", list, [])
    for i, endpoint in enumerate(metrics):
        if not isinstance(endpoint, str) or not endpoint:
            raise router.fail(f"metrics[{i}]", "must be a Twisted endpoint string")
    service_level_s = router.number("service_level_s", 20, low=0, high=86400)
    router.done()

    feed = root.table_of("feed")
    feed_texts = feed.get("texts", bool, False)
    fsync = feed.get("fsync", bool, True)
    compact_after = feed.number("compact_after", 10_000, low=1, high=10_000_000, integer=True)
    feed.done()

    logging = root.table_of("logging")
    log_level = logging.text(
        "level",
        check=lambda v: None if v in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}",
    )
    logging.done()

    media_table = root.table_of("media")
    media: dict[str, Path | None] = {}
    for name in media_table.table:
        problem = _valid_name(name)
        if problem:
            raise media_table.fail(name, problem)
        m = media_table.table_of(name)
        rules = m.text("rules", "")
        enabled = m.get("enabled", bool, True)
        m.done()
        if enabled:
            media[name] = _resolve(base, rules) if rules else None
    media_table.done()
    if not media:
        raise ConfigError(source, "media", "at least one media type is required")

    root.done()
    return RouterConfig(
        sources=sources,
        listen=tuple(listen),
        token=token,
        queues=tuple(dict.fromkeys(queues)),
        max_body=max_body,
        log_level=log_level,
        media=media,
        data_dir=_resolve(base, data_dir) if data_dir else None,
        metrics=tuple(metrics),
        service_level_s=service_level_s,
        feed_texts=feed_texts,
        fsync=fsync,
        compact_after=compact_after,
    )


def _valid_name(value: str) -> str | None:
    if _NAME.match(value):
        return None
    return f"{value!r} is not a valid name (lowercase letters, digits, '-' and '_')"


def _resolve(base: Path, rules: str) -> Path:
    path = Path(rules)
    return path if path.is_absolute() else base / path
