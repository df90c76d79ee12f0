"""IRC: a direct listener (RFC 1459/2812 with IRCv3 CAP, SASL, message-tags) and bot mode.

Listener: ``server`` (connection, pacing, timers; IParty) with its handlers in
``registration`` (CAP, SASL, PASS, NICK, USER, the welcome burst), ``queries``
(channels, WHOIS, WHO, MODE, AWAY) and ``chat`` (PRIVMSG/NOTICE/TAGMSG, rendering
events, agent commands); ``channels`` holds the lobby and the agents' channel.
Bot mode: ``botclient`` (the connection to a network, ClientService with backoff)
and ``botparties`` (each customer and agent the bot carries). Shared: ``framing``
(bounded lines), ``message`` (parse/serialise), ``numerics``, ``ctcp``,
``commands`` and ``desk`` (agent commands), ``render`` (events as text),
``settings`` (the ``[irc]`` section).
"""

from __future__ import annotations

from typing import Any

from gateway.plugins import Adapter
from protocols.irc import bot, settings


def _listener(gateway: Any, config: Any, reactor: Any) -> Any:
    from protocols.irc.server import build

    return build(gateway, config, reactor)


adapter = Adapter(
    name="irc",
    sections={"irc": settings.parse},
    listeners={"irc": _listener},
    upstreams=(bot.build,),
    address_scheme="irc",
    # Typing notifications to agents whose client has IRCv3 message-tags.
    features=frozenset({"typing"}),
)
