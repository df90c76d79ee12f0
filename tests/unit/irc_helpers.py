"""Test doubles for the IRC listener: clients over StringTransport on a Clock."""

from __future__ import annotations

from typing import Any

import attrs
from core_helpers import Harness, make_harness
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import directlyProvides

from protocols.irc.message import Message, parse
from protocols.irc.server import IrcConnection, IrcFactory
from protocols.irc.settings import IrcSettings

SERVER = "irc.test"


def settings(**changes: Any) -> IrcSettings:
    """Listener settings for tests: server name irc.test, generous flood limits."""
    base = {"server_name": SERVER, "lines_per_second": 100.0, "line_burst": 100}
    base.update(changes)
    return IrcSettings(**base)


@attrs.define
class Client:
    """One client connection to the listener."""

    protocol: IrcConnection
    transport: StringTransport
    clock: Clock
    seen: bytes = b""  # everything the server ever wrote to this client

    def send(self, *lines: str | bytes) -> None:
        """Send lines (str gets CR LF and UTF-8) in one read."""
        data = b"".join(
            line if isinstance(line, bytes) else line.encode() + b"\r\n" for line in lines
        )
        self.protocol.dataReceived(data)

    def raw(self) -> bytes:
        """What the server wrote since the last look, and forget it."""
        data = self.transport.value()
        self.transport.clear()
        self.seen += data
        return data

    def lines(self) -> list[str]:
        """The lines written since the last look, without CR LF."""
        data = self.raw()
        assert data == b"" or data.endswith(b"\r\n"), data
        return data.decode().split("\r\n")[:-1] if data else []

    def messages(self) -> list[Message]:
        """The lines written since the last look, parsed."""
        return [parse(line) for line in self.lines()]

    def commands(self) -> list[str]:
        """The command (or numeric) of each line written since the last look."""
        return [m.command for m in self.messages()]

    @property
    def closed(self) -> bool:
        """Whether the server closed the connection."""
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        """The connection goes away."""
        self.protocol.connectionLost(None)


@attrs.define
class Server:
    """A listener factory on a real core (see core_helpers) and its clock."""

    factory: IrcFactory
    harness: Harness

    @property
    def clock(self) -> Clock:
        return self.harness.clock

    def connect(self, *, tls: bool = False, port: int = 40000) -> Client:
        """A new client connection, made."""
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", port))
        if tls:
            directlyProvides(transport, ISSLTransport)
        protocol.makeConnection(transport)
        return Client(protocol, transport, self.clock)

    def register(self, nick: str = "dana", *, tls: bool = False) -> Client:
        """A registered customer; the welcome burst is taken."""
        client = self.connect(tls=tls)
        client.send(f"NICK {nick}", f"USER {nick} 0 * :Dana Doe")
        assert "001" in client.commands()
        return client

    def agent(self, name: str = "anna", nick: str = "anna") -> Client:
        """An agent registered with SASL PLAIN over TLS; the burst is taken."""
        import base64

        client = self.connect(tls=True)
        client.send("CAP LS 302", f"NICK {nick}", f"USER {name} 0 * :Anna")
        client.send("CAP REQ :sasl message-tags", "AUTHENTICATE PLAIN")
        token = base64.b64encode(f"\0{name}\0secret".encode()).decode()
        client.send(f"AUTHENTICATE {token}", "CAP END")
        commands = client.commands()
        assert "903" in commands and "001" in commands, commands
        return client


def server(tmp_path=None, harness: Harness | None = None, **changes: Any) -> Server:
    """A listener over a fresh core harness."""
    harness = harness or make_harness(tmp_path)
    factory = IrcFactory(harness.gateway, settings(**changes), clock=harness.clock)
    return Server(factory, harness)
