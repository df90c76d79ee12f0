"""The ``[firewall]`` configuration section (the ``firewall`` part of gateway/app/parts.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


@attrs.frozen
class FirewallSettings:
    """Connection caps per listener, the rules file, DNAT listeners, housekeeping, the
    connection summary lines and where bans are kept."""

    max_connections: int = 10000
    max_connections_per_address: int = 50
    rules: Path | None = None
    dnat: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    proxy_header_timeout_s: float = 10.0
    sweep_interval_s: float = 1.0
    log_connections: bool = False
    # Where bans are kept across restarts (None: DATA_DIR/firewall.bans).
    bans_file: Path | None = None


def parse(section: Any) -> FirewallSettings:
    """Read ``[firewall]`` from its :class:`gateway.config.Reader`."""
    max_connections = section.number("max_connections", low=1, high=10_000_000, integer=True)
    per_address = section.number(
        "max_connections_per_address", low=1, high=10_000_000, integer=True
    )
    rules = section.text("rules", "")
    timeout = section.number("proxy_header_timeout_s", 10, low=0.1, high=3600)
    sweep = section.number("sweep_interval_s", 1, low=0.01, high=3600)
    log_connections = section.get("log_connections", bool, False)
    bans_file = section.text("bans_file", "")
    dnat_table = section.table_of("dnat")
    dnat: dict[str, tuple[str, ...]] = {}
    for name in dnat_table.table:
        if not name or not set(name) <= _NAME_CHARS:
            raise dnat_table.fail(
                name, "a DNAT listener name is lowercase letters, digits, - and _"
            )
        endpoints = dnat_table.get(name, list)
        if not endpoints or not all(isinstance(e, str) and e for e in endpoints):
            raise dnat_table.fail(name, "must be a non-empty list of Twisted endpoint strings")
        dnat[name] = tuple(endpoints)
    dnat_table.done()
    section.done()
    return FirewallSettings(
        max_connections=max_connections,
        max_connections_per_address=per_address,
        rules=Path(rules) if rules else None,
        dnat=dnat,
        proxy_header_timeout_s=timeout,
        sweep_interval_s=sweep,
        log_connections=log_connections,
        bans_file=Path(bans_file) if bans_file else None,
    )
