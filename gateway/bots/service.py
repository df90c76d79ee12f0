"""Running the FAQ bot with the gateway: a child service of ``GatewayService``.

``faq_upstream`` has the shape of ``gateway.app.service.UPSTREAMS`` builders; the gateway
service starts its children after the store is open and stops them after
``Gateway.shutdown`` has ended the conversations, before the store closes.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService, Service

from gateway.bots.faq import FaqBot
from gateway.bots.settings import FaqSettings
from gateway.config import Config, ConfigError
from gateway.core.interfaces import IGateway as Gateway

SECTION = "bots"


class FaqBotService(Service):
    """Logs the FAQ bot in when started and out when stopped."""

    def __init__(self, bot: FaqBot) -> None:
        self.bot = bot

    def startService(self) -> None:
        """Log the bot in; it becomes available at once."""
        super().startService()
        self.bot.start()

    def stopService(self) -> None:
        """Log the bot out (a no-op after the gateway's shutdown closed it)."""
        self.bot.stop()
        return super().stopService()


def faq_upstream(gateway: Gateway, config: Config, reactor: Any) -> IService | None:
    """The FAQ bot's service when ``[bots.faq]`` enables it, else None.

    Raises ConfigError when ``handover_queue`` names no ``[queues.NAME]``: only here are
    both sections known.
    """
    settings: FaqSettings | None = config.sections.get(SECTION)
    if settings is None:
        return None
    if settings.handover_queue not in gateway.queues:
        source = config.sources[-1]
        raise ConfigError(
            source,
            "bots.faq.handover_queue",
            f"names no queue: {settings.handover_queue!r}",
        )
    return FaqBotService(FaqBot(gateway, settings, reactor))
