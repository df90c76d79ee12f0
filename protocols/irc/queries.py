"""Channels and queries: JOIN, PART, NAMES, TOPIC, LIST, WHOIS, WHO, MODE, AWAY, ISON.

A client sees only what its role allows: a customer sees itself, the service and
its agent's alias; an agent sees itself, the service, other agents and the
customer nicks of its own conversations.
"""

from __future__ import annotations

import attrs

from protocols.irc import numerics as rpl
from protocols.irc.channels import Channel
from protocols.irc.interfaces import Connection
from protocols.irc.message import Message

MAX_JOINS = 2


@attrs.frozen
class Visible:
    """A nick as one viewer may see it."""

    nick: str
    user: str
    host: str
    realname: str
    away: str | None = None


class QueryCommands:
    """Channel and query commands for :class:`protocols.irc.server.IrcConnection`."""

    def visible(self: Connection, nick: str) -> Visible | None:
        """What this client may know of ``nick``, or None if it may not see it."""
        lower = nick.lower()
        host = self.settings.gateway_host
        if lower == (self.nick or "").lower():
            return Visible(self.nick, self.user or "*", host, self.realname, self.away)
        if lower == self.service.lower():
            return Visible(self.service, "service", host, "Customer support")
        peer = self.chat_peer(nick)
        if peer is not None:
            return Visible(peer, self.chat_peer_user(), host, self.chat_peer_user().capitalize())
        if self.agent is not None:
            other = self.factory.agents.get(lower)
            if other is not None:
                return Visible(other.nick, other.user or "*", host, other.realname, other.away)
        return None

    # -- channels ----------------------------------------------------------

    def irc_JOIN(self: Connection, message: Message) -> None:  # noqa: N802
        """JOIN #chan[,#chan] [keys]; JOIN 0 leaves every channel."""
        if not self.need(message, 1):
            return
        if message.params[0] == "0":
            for channel in list(self.channels):
                self._part(channel, "Left all channels")
            return
        for name in message.params[0].split(",")[:MAX_JOINS]:
            channel = self.factory.channels.get(name.lower())
            if channel is None:
                self.reply(rpl.ERR_NOSUCHCHANNEL, name[:50], "No such channel")
                continue
            if channel in self.channels:
                continue
            if channel.agents_only and self.agent is None:
                self.reply(rpl.ERR_INVITEONLYCHAN, channel.name, "Cannot join channel (+i)")
                continue
            channel.members.add(self)
            self.channels.add(channel)
            for member in channel.audience(self):
                member.send_from(self.hostmask(), "JOIN", channel.name)
            self._topic(channel)
            self._names(channel)
            if not channel.agents_only:
                self.chat_lobby_joined(channel)

    def irc_PART(self: Connection, message: Message) -> None:  # noqa: N802
        """PART #chan[,#chan] [:reason]."""
        if not self.need(message, 1):
            return
        for name in message.params[0].split(","):
            channel = self.factory.channels.get(name.lower())
            if channel is None:
                self.reply(rpl.ERR_NOSUCHCHANNEL, name[:50], "No such channel")
            elif channel not in self.channels:
                self.reply(rpl.ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
            else:
                self._part(channel, message.param(1))

    def _part(self: Connection, channel: Channel, reason: str) -> None:
        for member in channel.audience(self):
            if reason:
                member.send_from(self.hostmask(), "PART", channel.name, reason)
            else:
                member.send_from(self.hostmask(), "PART", channel.name)
        channel.members.discard(self)
        self.channels.discard(channel)

    def irc_NAMES(self: Connection, message: Message) -> None:  # noqa: N802
        """NAMES #chan."""
        name = message.param(0).split(",")[0]
        channel = self.factory.channels.get(name.lower())
        if channel is not None and (not channel.agents_only or self.agent is not None):
            self._names(channel)
        else:
            self.reply(rpl.RPL_ENDOFNAMES, name[:50] or "*", "End of /NAMES list.")

    def _names(self: Connection, channel: Channel) -> None:
        userhost = "userhost-in-names" in self.caps
        nicks = channel.visible_nicks(self, self.service, self.settings.gateway_host, userhost)
        chunk: list[str] = []
        for nick in nicks:
            chunk.append(nick)
            if len(chunk) == 20:
                self.reply(rpl.RPL_NAMREPLY, "=", channel.name, " ".join(chunk))
                chunk = []
        if chunk:
            self.reply(rpl.RPL_NAMREPLY, "=", channel.name, " ".join(chunk))
        self.reply(rpl.RPL_ENDOFNAMES, channel.name, "End of /NAMES list.")

    def irc_TOPIC(self: Connection, message: Message) -> None:  # noqa: N802
        """TOPIC #chan [:topic]; only agents may set the agents' channel's topic."""
        if not self.need(message, 1):
            return
        channel = self.factory.channels.get(message.params[0].lower())
        if channel is None:
            self.reply(rpl.ERR_NOSUCHCHANNEL, message.params[0][:50], "No such channel")
            return
        if len(message.params) < 2:
            self._topic(channel)
            return
        if channel not in self.channels:
            self.reply(rpl.ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
            return
        if not channel.agents_only:
            self.reply(rpl.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
            return
        channel.topic = message.params[1][:300]
        for member in channel.audience(self):
            member.send_from(self.hostmask(), "TOPIC", channel.name, channel.topic)

    def _topic(self: Connection, channel: Channel) -> None:
        if channel.topic:
            self.reply(rpl.RPL_TOPIC, channel.name, channel.topic)
        else:
            self.reply(rpl.RPL_NOTOPIC, channel.name, "No topic is set")

    def irc_LIST(self: Connection, message: Message) -> None:  # noqa: N802
        """LIST: the channels this client may join."""
        self.reply(rpl.RPL_LISTSTART, "Channel", "Users  Name")
        for channel in self.factory.channels.values():
            if channel.agents_only and self.agent is None:
                continue
            count = len(channel.visible_nicks(self, self.service))
            self.reply(rpl.RPL_LIST, channel.name, str(count), channel.topic)
        self.reply(rpl.RPL_LISTEND, "End of /LIST")

    # -- users ---------------------------------------------------------------

    def irc_WHOIS(self: Connection, message: Message) -> None:  # noqa: N802
        """WHOIS [server] nick."""
        if not message.params:
            self.reply(rpl.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = message.params[-1].split(",")[0]
        seen = self.visible(nick)
        if seen is None:
            self.reply(rpl.ERR_NOSUCHNICK, nick[:30], "No such nick/channel")
            self.reply(rpl.RPL_ENDOFWHOIS, nick[:30], "End of /WHOIS list.")
            return
        self.reply(rpl.RPL_WHOISUSER, seen.nick, seen.user, seen.host, "*", seen.realname)
        if seen.nick == self.nick and self.channels:
            names = " ".join(sorted(c.name for c in self.channels))
            self.reply(rpl.RPL_WHOISCHANNELS, seen.nick, names)
        self.reply(rpl.RPL_WHOISSERVER, seen.nick, self.server, self.settings.network)
        if seen.away:
            self.reply(rpl.RPL_AWAY, seen.nick, seen.away)
        self.reply(rpl.RPL_ENDOFWHOIS, seen.nick, "End of /WHOIS list.")

    def irc_WHO(self: Connection, message: Message) -> None:  # noqa: N802
        """WHO #chan | WHO nick."""
        mask = message.param(0, "*")
        channel = self.factory.channels.get(mask.lower())
        host = self.settings.gateway_host
        if channel is not None:
            if not channel.agents_only or self.agent is not None:
                self._who_line(
                    channel.name, self.service, "service", host, "H@", "Customer support"
                )
                for member in channel.visible_members(self):
                    flags = "G" if member.away else "H"
                    self._who_line(
                        channel.name, member.nick, member.user or "*", host, flags, member.realname
                    )
        else:
            seen = self.visible(mask)
            if seen is not None:
                flags = "G" if seen.away else "H"
                self._who_line("*", seen.nick, seen.user, seen.host, flags, seen.realname)
        self.reply(rpl.RPL_ENDOFWHO, mask[:50], "End of /WHO list.")

    def _who_line(self: Connection, chan, nick, user, host, flags, realname) -> None:
        self.reply(rpl.RPL_WHOREPLY, chan, user, host, self.server, nick, flags, f"0 {realname}")

    def irc_MODE(self: Connection, message: Message) -> None:  # noqa: N802
        """MODE #chan [b] | MODE nick [+i|-i|+w|-w]."""
        if not self.need(message, 1):
            return
        target = message.params[0]
        channel = self.factory.channels.get(target.lower())
        if channel is not None:
            change = message.param(1)
            if not change:
                self.reply(rpl.RPL_CHANNELMODEIS, channel.name, "+nt")
                self.reply(rpl.RPL_CREATIONTIME, channel.name, str(int(channel.created)))
            elif change.lstrip("+") == "b":
                self.reply(rpl.RPL_ENDOFBANLIST, channel.name, "End of channel ban list")
            else:
                self.reply(rpl.ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
            return
        if target.startswith(("#", "&")):
            self.reply(rpl.ERR_NOSUCHCHANNEL, target[:50], "No such channel")
            return
        if target.lower() != (self.nick or "").lower():
            self.reply(rpl.ERR_USERSDONTMATCH, "Cant change mode for other users")
            return
        change = message.param(1)
        if not change:
            self.reply(rpl.RPL_UMODEIS, "+" + "".join(sorted(self.modes)))
            return
        adding, applied, unknown = True, "", False
        for ch in change:
            if ch in "+-":
                adding = ch == "+"
                applied += ch
            elif ch in "iw":
                if adding != (ch in self.modes):
                    (self.modes.add if adding else self.modes.discard)(ch)
                    applied += ch
            else:
                unknown = True
        if unknown:
            self.reply(rpl.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
        applied = _tidy_modes(applied)
        if applied:
            self.send_from(self.hostmask(), "MODE", self.nick, applied)

    def irc_AWAY(self: Connection, message: Message) -> None:  # noqa: N802
        """AWAY :text (an agent is then away) | AWAY (available again)."""
        text = message.param(0)
        if text:
            self.away = text[:200]
            self.reply(rpl.RPL_NOWAWAY, "You have been marked as being away")
        else:
            self.away = None
            self.reply(rpl.RPL_UNAWAY, "You are no longer marked as being away")
        self.chat_away_changed()

    def irc_ISON(self: Connection, message: Message) -> None:  # noqa: N802
        """ISON nick…: which of them this client may see online."""
        words = " ".join(message.params).split()
        online = [seen.nick for w in words[:30] if (seen := self.visible(w)) is not None]
        self.reply("303", " ".join(online))

    def irc_USERHOST(self: Connection, message: Message) -> None:  # noqa: N802
        """USERHOST nick…."""
        replies = []
        for nick in message.params[:5]:
            seen = self.visible(nick)
            if seen is not None:
                away = "-" if seen.away else "+"
                replies.append(f"{seen.nick}={away}{seen.user}@{seen.host}")
        self.reply("302", " ".join(replies))


def _tidy_modes(applied: str) -> str:
    """``+-i`` -> ``-i``; ``+i+w`` -> ``+iw``; ``+`` -> nothing."""
    out, current, sign = "", "", "+"
    for ch in applied:
        if ch in "+-":
            sign = ch
            continue
        if sign != current:
            out += sign
            current = sign
        out += ch
    return out
