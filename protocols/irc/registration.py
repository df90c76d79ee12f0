"""Registration: CAP (302), PASS, NICK, USER, SASL PLAIN, and the welcome burst."""

from __future__ import annotations

import base64
import binascii
import re
import time

from twisted.python.failure import Failure

from gateway.core.errors import GatewayError
from gateway.core.events import ClientInfo
from protocols.irc import numerics as rpl
from protocols.irc.interfaces import Connection
from protocols.irc.message import Message
from protocols.tcp import firewall_role

NICK_PATTERN = re.compile(r"^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}$")
NICKLEN = 30
SUPPORTED_CAPS = ("message-tags", "multi-prefix", "userhost-in-names", "sasl")
MAX_SASL_ATTEMPTS = 3
# AUTHENTICATE carries 400 bytes of base64 a line; PLAIN needs little more.
MAX_SASL_BYTES = 1600
PLAINTEXT_AUTH = "Agents log in over TLS only: connect to the TLS port"
SERVER_PASSWORD = "This server needs a password (PASS)"
# RPL_ISUPPORT tokens a line carries at most: with the nick and the trailing text,
# 15 parameters (RFC 2812's limit).
ISUPPORT_PER_LINE = 13


class RegistrationCommands:
    """CAP, PASS, NICK, USER and AUTHENTICATE for :class:`protocols.irc.server.IrcConnection`."""

    def init_registration(self: Connection) -> None:
        """The registration state of a new connection."""
        self.cap_version = 0
        self.password: str | None = None
        self.server_password_given = False
        self.logging_in = False
        self._sasl_mechanism: str | None = None
        self._sasl_buffer = ""
        self._sasl_attempts = 0

    # -- CAP ---------------------------------------------------------------

    def _offered_caps(self: Connection) -> list[str]:
        caps = ["message-tags", "multi-prefix", "userhost-in-names"]
        # Not offered where it would be refused: a client would send the password first.
        if self._may_log_in():
            caps.append("sasl=PLAIN" if self.cap_version >= 302 else "sasl")
        return caps

    def _may_log_in(self: Connection) -> bool:
        return self.is_tls() or self.settings.allow_plaintext_auth

    def irc_CAP(self: Connection, message: Message) -> None:  # noqa: N802
        """CAP LS [302] | LIST | REQ :caps | END."""
        sub = message.param(0).upper()
        target = self.nick or "*"
        if sub == "LS":
            version = message.param(1)
            self.cap_version = max(self.cap_version, int(version) if version.isdigit() else 0)
            if not self.registered:
                self.cap_negotiating = True
            self.send_from(self.server, "CAP", target, "LS", " ".join(self._offered_caps()))
        elif sub == "LIST":
            self.send_from(self.server, "CAP", target, "LIST", " ".join(sorted(self.caps)))
        elif sub == "REQ":
            if not self.registered:
                self.cap_negotiating = True
            wanted = message.param(1).split()
            offered = {c.split("=")[0] for c in self._offered_caps()}
            names = [w.lstrip("-") for w in wanted]
            if "sasl" in names and not self._may_log_in():
                self.notice_from_service(PLAINTEXT_AUTH)
            if wanted and all(n in offered for n in names):
                for w in wanted:
                    if w.startswith("-"):
                        self.caps.discard(w[1:])
                    else:
                        self.caps.add(w)
                self.send_from(self.server, "CAP", target, "ACK", " ".join(wanted))
            else:
                self.send_from(self.server, "CAP", target, "NAK", message.param(1))
        elif sub == "END":
            self.cap_negotiating = False
            self.try_register()
        else:
            self.reply(rpl.ERR_INVALIDCAPCMD, sub[:32] or "*", "Invalid CAP command")

    # -- SASL PLAIN ------------------------------------------------------------

    def irc_AUTHENTICATE(self: Connection, message: Message) -> None:  # noqa: N802
        """AUTHENTICATE PLAIN, then the base64 credentials in 400-byte chunks."""
        if not self.need(message, 1):
            return
        arg = message.params[0]
        if not self._may_log_in():
            # One clear answer: not "failed", which reads as a wrong password.
            self.reply(rpl.ERR_SASLFAIL, PLAINTEXT_AUTH)
            self.quit(PLAINTEXT_AUTH)
            return
        # Clients REQ the sasl capability first; one that does not (irctest's cases)
        # is served all the same: the capability only announces the command.
        if self.agent is not None or self.registered:
            self.reply(rpl.ERR_SASLALREADY, "You have already authenticated using SASL")
            return
        if arg == "*":
            self._sasl_reset()
            self.reply(rpl.ERR_SASLABORTED, "SASL authentication aborted")
            return
        if self._sasl_mechanism is None:
            if arg.upper() != "PLAIN":
                self.reply(rpl.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
                self.reply(rpl.ERR_SASLFAIL, "SASL authentication failed")
                return
            self._sasl_mechanism = "PLAIN"
            self.send(Message("AUTHENTICATE", ("+",)))
            return
        if self.logging_in:
            return
        if arg != "+":
            self._sasl_buffer += arg
        if len(self._sasl_buffer) > MAX_SASL_BYTES:
            self._sasl_reset()
            self.reply(rpl.ERR_SASLTOOLONG, "SASL message too long")
            return
        if len(arg) == 400:
            return  # more to come
        self._sasl_plain(self._sasl_buffer)

    def _sasl_plain(self: Connection, encoded: str) -> None:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
            _authzid, authcid, password = decoded.split("\x00")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self._sasl_failed()
            return
        self._agent_login(authcid, password, sasl=True)

    def _sasl_reset(self: Connection) -> None:
        self._sasl_mechanism = None
        self._sasl_buffer = ""

    def _sasl_failed(self: Connection) -> None:
        self._sasl_reset()
        self._sasl_attempts += 1
        self.reply(rpl.ERR_SASLFAIL, "SASL authentication failed")
        if self._sasl_attempts >= MAX_SASL_ATTEMPTS:
            self.quit("Too many authentication failures")

    # -- agent login, shared by SASL and PASS -----------------------------------

    def _agent_login(self: Connection, name: str, password: str, *, sasl: bool) -> None:
        if not self._may_log_in():
            # The password may well be right: say why it is refused, once.
            self.quit(PLAINTEXT_AUTH)
            return
        self.logging_in = True
        try:
            d = self.gateway.agent_login(
                self,
                protocol="irc",
                name=name,
                password=password,
                client=ClientInfo("irc", ""),
                features=self.chat_features(),
                address=getattr(self.transport.getPeer(), "host", None),
            )
        except GatewayError as e:
            self.logging_in = False
            self._login_refused(e.text, sasl)
            return
        d.addCallbacks(self._logged_in, self._login_failed, (sasl,), None, (sasl, name))

    def _logged_in(self: Connection, session, sasl: bool) -> None:
        self.logging_in = False
        if self.closing:
            session.disconnected()
            return
        self._answered_login(session, sasl)
        self.login_answered()

    def _answered_login(self: Connection, session, sasl: bool) -> None:
        self.agent = session
        self._log.info("IRC {peer}: agent {agent} logged in", peer=self.peer, agent=session.name)
        if sasl:
            self._sasl_reset()
            mask = f"{self.nick or '*'}!{self.user or '*'}@{self.settings.gateway_host}"
            self.reply(
                rpl.RPL_LOGGEDIN, mask, session.name, f"You are now logged in as {session.name}"
            )
            self.reply(rpl.RPL_SASLSUCCESS, "SASL authentication successful")
        self.try_register()

    def _login_failed(self: Connection, failure: Failure, sasl: bool, name: str) -> None:
        self.logging_in = False
        self._refused_login(failure, sasl, name)
        self.login_answered()

    def _refused_login(self: Connection, failure: Failure, sasl: bool, name: str) -> None:
        if failure.check(GatewayError):
            self._log.info("IRC {peer}: login of {agent} refused", peer=self.peer, agent=name)
            self._login_refused(failure.value.text, sasl)
        else:
            self._log.failure(
                "IRC {peer}: login of {agent} failed", failure, peer=self.peer, agent=name
            )
            self._login_refused("internal error", sasl)

    def _login_refused(self: Connection, text: str, sasl: bool) -> None:
        if self.closing:
            return
        if sasl:
            self._sasl_failed()
        else:
            self.reply(rpl.ERR_PASSWDMISMATCH, "Password incorrect")
            self.quit("Bad password")

    # -- PASS, NICK, USER ---------------------------------------------------------

    def irc_PASS(self: Connection, message: Message) -> None:  # noqa: N802
        """PASS password: the server password (``irc.password``), or an agent's login
        (``name:password``), checked when registration completes."""
        if self.registered:
            self.reply(rpl.ERR_ALREADYREGISTRED, "You may not reregister")
            return
        if self.need(message, 1):
            self.password = message.params[0]

    def irc_USER(self: Connection, message: Message) -> None:  # noqa: N802
        """USER user mode unused :realname."""
        if self.registered or self.user is not None:
            self.reply(rpl.ERR_ALREADYREGISTRED, "You may not reregister")
            return
        if len(message.params) < 4 or not message.params[0] or not message.params[3]:
            self.reply(rpl.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        user = "".join(ch for ch in message.params[0] if ch.isalnum() or ch in "-_.")[:10]
        self.user = user or "user"
        self.realname = message.params[3][:100]
        self.try_register()

    def irc_NICK(self: Connection, message: Message) -> None:  # noqa: N802
        """NICK nick: set or change the nick (431, 432, 433 when it cannot be)."""
        if not message.params or not message.params[0]:
            self.reply(rpl.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = message.params[0]
        if not NICK_PATTERN.match(nick) or nick.lower().startswith("c-"):
            self.reply(rpl.ERR_ERRONEUSNICKNAME, nick[:NICKLEN], "Erroneous nickname")
            return
        if nick == self.nick:
            return
        if self.nick_taken(nick):
            self.reply(rpl.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
            return
        if self.nick_reserved(nick):
            # The customer's agent goes by this name here: it stays the agent's.
            self.reply(rpl.ERR_NICKNAMEINUSE, nick, "Nickname is reserved")
            return
        if not self.registered:
            self.nick = nick
            self.try_register()
            return
        old_mask, old = self.hostmask(), self.nick
        space = self.factory.nick_space(self)
        space.pop(old.lower(), None)
        space[nick.lower()] = self
        self.nick = nick
        seen = {self}
        for channel in self.channels:
            seen.update(channel.audience(self))
        for other in seen:
            other.send_from(old_mask, "NICK", nick)

    def nick_reserved(self: Connection, nick: str) -> bool:
        """Whether ``nick`` is the alias this customer sees its agent by."""
        alias = self.agent_alias
        return self.agent is None and alias is not None and alias.lower() == nick.lower()

    def nick_taken(self: Connection, nick: str) -> bool:
        """Whether ``nick`` is the service's or another client's in this role's nick space."""
        lower = nick.lower()
        if lower == self.service.lower():
            return True
        holder = self.factory.nick_space(self).get(lower)
        return holder is not None and holder is not self

    # -- completing registration ------------------------------------------------

    def try_register(self: Connection) -> None:
        """Finish registration once NICK, USER, CAP END and any login are done."""
        if self.registered or self.closing or self.logging_in or self.cap_negotiating:
            return
        if self.nick is None or self.user is None:
            return
        server_password = self.settings.password
        if self.password is not None and server_password and self.password == server_password:
            self.password, self.server_password_given = None, True
        if self.agent is None and self.password is not None:
            name, sep, password = self.password.partition(":")
            if not sep:
                name, password = self.user, self.password
            self.password = None
            self._agent_login(name, password, sasl=False)
            return
        if server_password and self.agent is None and not self.server_password_given:
            self.reply(rpl.ERR_PASSWDMISMATCH, "Password incorrect")
            self.quit(SERVER_PASSWORD)
            return
        if self.nick_taken(self.nick):
            # The nick was free in the nick space known at NICK time, not in this one.
            self.reply(rpl.ERR_NICKNAMEINUSE, self.nick, "Nickname is already in use")
            self.nick = None
            return
        # The firewall's rules may depend on the role: ask it again now it is known.
        role = "agent" if self.agent is not None else "customer"
        if not firewall_role(self.transport, role):
            self.closing = True
            return
        self.registered = True
        self.factory.nick_space(self)[self.nick.lower()] = self
        self.registration_done()
        self._welcome()
        self.chat_registered()

    def _welcome(self: Connection) -> None:
        s, f = self.settings, self.factory
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(f.created))
        self.reply(rpl.RPL_WELCOME, f"Welcome to the {s.network} IRC Network {self.hostmask()}")
        self.reply(rpl.RPL_YOURHOST, f"Your host is {self.server}, running version {f.version}")
        self.reply(rpl.RPL_CREATED, f"This server was created {created}")
        self.reply(rpl.RPL_MYINFO, self.server, f.version, "iw", "nt")
        self.send_isupport()
        self.send_lusers()
        self.send_motd()

    def send_isupport(self: Connection) -> None:
        """RPL_ISUPPORT, in lines of at most 15 parameters."""
        s = self.settings
        isupport = [
            "AWAYLEN=200",
            "CASEMAPPING=ascii",
            "CHANLIMIT=#&:2",
            "CHANMODES=b,,,nt",
            "CHANNELLEN=50",
            "CHANTYPES=#&",
            "KICKLEN=300",
            f"LINELEN={s.max_line}",
            "MODES=1",
            f"NETWORK={s.network}",
            f"NICKLEN={NICKLEN}",
            "PREFIX=(o)@",
            "TARGMAX=PRIVMSG:1,NOTICE:1,JOIN:2,PART:2,NAMES:1,WHOIS:1",
            "TOPICLEN=300",
        ]
        lines = -(-len(isupport) // ISUPPORT_PER_LINE)
        per_line = -(-len(isupport) // lines)
        for i in range(0, len(isupport), per_line):
            tokens = isupport[i : i + per_line]
            self.reply(rpl.RPL_ISUPPORT, *tokens, "are supported by this server")

    def send_lusers(self: Connection) -> None:
        """The LUSERS replies 251, 252, 254, 255, 265, 266.

        An agent gets the listener's counts; a customer only what it can see (itself,
        the service and its agent): how many people are connected is not its business.
        """
        if self.agent is not None:
            n = str(self.factory.user_count())
        else:
            n = str(2 + (self.agent_alias is not None))
        self.reply(rpl.RPL_LUSERCLIENT, f"There are {n} users and 0 invisible on 1 servers")
        self.reply(rpl.RPL_LUSEROP, "0", "operator(s) online")
        self.reply(rpl.RPL_LUSERCHANNELS, str(len(self.factory.channels)), "channels formed")
        self.reply(rpl.RPL_LUSERME, f"I have {n} clients and 0 servers")
        self.reply(rpl.RPL_LOCALUSERS, n, n, f"Current local users {n}, max {n}")
        self.reply(rpl.RPL_GLOBALUSERS, n, n, f"Current global users {n}, max {n}")

    def send_motd(self: Connection) -> None:
        """The MOTD replies (375, 372…, 376), or 422 when there is none."""
        lines = [line for line in self.settings.motd.splitlines() if line.strip()]
        if not lines:
            self.reply(rpl.ERR_NOMOTD, "MOTD File is missing")
            return
        self.reply(rpl.RPL_MOTDSTART, f"- {self.server} Message of the day - ")
        for line in lines:
            self.reply(rpl.RPL_MOTD, f"- {line}")
        self.reply(rpl.RPL_ENDOFMOTD, "End of /MOTD command.")

    def irc_LUSERS(self: Connection, message: Message) -> None:  # noqa: N802
        """LUSERS."""
        self.send_lusers()

    def irc_MOTD(self: Connection, message: Message) -> None:  # noqa: N802
        """MOTD."""
        self.send_motd()
