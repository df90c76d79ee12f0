"""What ordinary clients and bouncers ask a server about itself: VERSION, TIME, INFO, ADMIN.

Answered for this server only (a server name given that is not ours gets 402), and
without anything a customer should not learn: no counts, no agents.
"""

from __future__ import annotations

import time

from protocols.irc import numerics as rpl
from protocols.irc.interfaces import Connection
from protocols.irc.message import Message

ERR_NOSUCHSERVER = "402"
INFO_LINES = (
    "imgateway: customers on IRC, XMPP and JSON-IM reach customer service agents.",
    "Message the service nick (or join the lobby) to talk with us.",
)


class InfoCommands:
    """VERSION, TIME, INFO and ADMIN for :class:`protocols.irc.server.IrcConnection`."""

    def _ours(self: Connection, message: Message) -> bool:
        target = message.param(0)
        if target and target.lower() != self.server.lower():
            self.reply(ERR_NOSUCHSERVER, target[:64], "No such server")
            return False
        return True

    def irc_VERSION(self: Connection, message: Message) -> None:  # noqa: N802
        """VERSION -> 351 and the ISUPPORT lines."""
        if self._ours(message):
            version = self.factory.version
            self.reply(rpl.RPL_VERSION, f"{version}.", self.server, "customer service gateway")
            self.send_isupport()

    def irc_TIME(self: Connection, message: Message) -> None:  # noqa: N802
        """TIME -> 391 with the server's time (UTC)."""
        if self._ours(message):
            now = self.clock.seconds()
            text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
            self.reply(rpl.RPL_TIME, self.server, text)

    def irc_INFO(self: Connection, message: Message) -> None:  # noqa: N802
        """INFO -> 371 lines and 374."""
        if self._ours(message):
            for line in (f"{self.factory.version}", *INFO_LINES):
                self.reply(rpl.RPL_INFO, line)
            self.reply(rpl.RPL_ENDOFINFO, "End of INFO list")

    def irc_ADMIN(self: Connection, message: Message) -> None:  # noqa: N802
        """ADMIN -> 256, 257, 258, 259 (``irc.admin_email``)."""
        if self._ours(message):
            s = self.settings
            self.reply(rpl.RPL_ADMINME, self.server, "Administrative info")
            self.reply(rpl.RPL_ADMINLOC1, f"The {s.network} customer service gateway")
            self.reply(rpl.RPL_ADMINLOC2, f"Message {s.service_nick} to talk with us")
            self.reply(rpl.RPL_ADMINEMAIL, s.admin_email or "No contact address is published")
