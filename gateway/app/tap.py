"""``twistd imgateway``: options and the service maker."""

from __future__ import annotations

import os

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
    if settings.sections["cluster"].workers > 1:
        from gateway.cluster.workers import WORKER_ENV, Workers, worker_config

        if WORKER_ENV not in os.environ:
            # The supervisor: it binds the listeners and runs the workers.
            _one_admin_token(settings)
            return Workers(settings, config["config"], reactor)
        settings = worker_config(settings)
    return GatewayService(settings, reactor)


def _one_admin_token(settings) -> None:
    """Workers without a configured admin token share one, made here: each would
    otherwise write its own to the one ``admin.token`` and the CLI could hold the
    wrong worker's. They inherit it through the environment (``IMGATEWAY_ADMIN_TOKEN``)."""
    import secrets

    from gateway.admin.api import write_token
    from gateway.admin.settings import TOKEN_ENV

    admin = settings.sections["admin"]
    if admin.token or not admin.listen:
        return
    token = secrets.token_urlsafe(32)
    write_token(settings.data_dir, token)
    os.environ[TOKEN_ENV] = token
