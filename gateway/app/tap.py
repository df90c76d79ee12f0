"""``twistd imgateway``: options and the service maker."""

from __future__ import annotations

from twisted.application.service import IService

from gateway.config import ConfigError, load
from gateway.daemon import ConfigOptions, StartupError


class Options(ConfigOptions):
    """Command line of ``twistd imgateway``."""

    default_config = "./etc/imgateway.toml"


def makeService(config: Options, reactor=None) -> IService:
    """Build the gateway service from the command line's configuration."""
    from gateway.app.service import GatewayService

    if reactor is None:
        from twisted.internet import reactor
    try:
        settings = load(config["config"])
    except ConfigError as e:
        raise StartupError(str(e)) from None
    return GatewayService(settings, reactor)
