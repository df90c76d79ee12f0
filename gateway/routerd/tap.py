"""``twistd imrouter``: options and the service maker."""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from gateway.config import ConfigError
from gateway.routerd.config import load


class Options(usage.Options):
    """Command line of ``twistd imrouter``."""

    optParameters = [
        [
            "config",
            "c",
            None,
            "Configuration file (TOML), merged over the packaged defaults. "
            "Default: ./etc/imrouter.toml if present.",
        ],
    ]


def makeService(config: Options, reactor=None) -> IService:
    """Build the routing server from the command line's configuration."""
    from gateway.routerd.service import RouterService, StartupError

    if reactor is None:
        from twisted.internet import reactor
    try:
        settings = load(config["config"])
    except ConfigError as e:
        raise StartupError(str(e)) from None
    return RouterService(settings, reactor)
