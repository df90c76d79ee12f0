"""``twistd imrouter``: options and the service maker."""

from __future__ import annotations

from twisted.application.service import IService

from gateway.config import ConfigError
from gateway.daemon import ConfigOptions, StartupError
from gateway.routerd.config import load


class Options(ConfigOptions):
    """Command line of ``twistd imrouter``."""

    default_config = "./etc/imrouter.toml"


def makeService(config: Options, reactor=None) -> IService:
    """Build the routing server from the command line's configuration."""
    from gateway.routerd.service import RouterService

    if reactor is None:
        from twisted.internet import reactor
    try:
        settings = load(config["config"])
    except ConfigError as e:
        raise StartupError(str(e), "imrouter") from None
    return RouterService(settings, reactor)
