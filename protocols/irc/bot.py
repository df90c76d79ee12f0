"""Bot mode: the gateway as a client of an existing IRC network (see :mod:`.botclient`)."""

from __future__ import annotations

from typing import Any


def build(gateway: Any, config: Any, reactor: Any) -> Any:
    """The bot's service, or None when ``[irc.bot]`` is not enabled."""
    settings = config.sections["irc"]
    if not settings.bot.enabled:
        return None
    from protocols.irc.botclient import make_service

    return make_service(gateway, settings, reactor)
