"""``twistd imgateway``: options and the service maker."""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from gateway.config import ConfigError, load


class Options(usage.Options):
    """Command line of ``twistd imgateway``."""

    optParameters = [
        [
            "config",
            "c",
            None,
            "Configuration file (TOML), merged over the packaged defaults. "
            "Default: ./etc/imgateway.toml if present.",
        ],
    ]


def makeService(config: Options, reactor=None) -> IService:
    """Build the gateway service from the command line's configuration."""
    from gateway.app.service import GatewayService, StartupError

    if reactor is None:
        from twisted.internet import reactor
    try:
        settings = load(config["config"])
    except ConfigError as e:
        raise StartupError(str(e)) from None
    return GatewayService(settings, reactor)
