"""The listener's two channels: the lobby and the agents' channel.

The lobby is an auditorium: each customer in it sees only themself and the
service, never another customer. The agents' channel is an ordinary channel
that only logged-in agents may join.
"""

from __future__ import annotations

from typing import Any

import attrs

LOBBY_TOPIC = "Write to {service} to talk with us; your conversation is private."
AGENTS_TOPIC = "Agents of {network}. Commands: /msg {service} help"


@attrs.define(eq=False)
class Channel:
    """One channel and the connections in it."""

    name: str
    topic: str
    created: float
    agents_only: bool
    members: set[Any] = attrs.Factory(set)

    def visible_nicks(self, viewer: Any, service: str, host: str = "", userhost=False) -> list[str]:
        """The nicks ``viewer`` may see in the channel, operators prefixed with '@'
        (the only prefix there is, so multi-prefix changes nothing); with ``userhost``
        (IRCv3 userhost-in-names) as ``nick!user@host``."""

        def shown(nick: str, user: str | None) -> str:
            return f"{nick}!{user or '*'}@{host}" if userhost else nick

        members = [viewer] if viewer in self.members else []
        if self.agents_only:
            members = sorted(self.members, key=lambda m: m.nick.lower())
        return ["@" + shown(service, "service"), *(shown(m.nick, m.user) for m in members)]

    def visible_members(self, viewer: Any) -> list[Any]:
        """The connections ``viewer`` may see in the channel (not the service)."""
        if not self.agents_only:
            return [viewer] if viewer in self.members else []
        return sorted(self.members, key=lambda m: m.nick.lower())

    def audience(self, actor: Any) -> list[Any]:
        """Who sees ``actor`` join, part, speak or change nick here (actor included)."""
        if not self.agents_only:
            return [actor]
        return [actor, *(m for m in self.members if m is not actor)]


def make_channels(settings: Any, now: float) -> dict[str, Channel]:
    """The lobby and the agents' channel, keyed by their lower-cased names."""
    fmt = {"service": settings.service_nick, "network": settings.network}
    lobby = Channel(settings.lobby_channel, LOBBY_TOPIC.format(**fmt), now, False)
    agents = Channel(settings.agents_channel, AGENTS_TOPIC.format(**fmt), now, True)
    return {lobby.name.lower(): lobby, agents.name.lower(): agents}
