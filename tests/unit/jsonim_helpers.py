"""Test doubles for the JSON-IM adapter: a recording fake of the gateway core."""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from gateway import __version__
from protocols.jsonim import JsonImFactory, JsonImProtocol
from protocols.jsonim.settings import JsonImSettings


@attrs.define
class FakeSession:
    """A customer or agent session that records every call.

    ``raises`` maps a method name to the exception that method raises; ``say``
    returns a new Deferred each time, kept in ``says`` for the test to fire.
    """

    id: str
    name: str = ""
    calls: list[tuple[Any, ...]] = attrs.Factory(list)
    raises: dict[str, BaseException] = attrs.Factory(dict)
    says: list[Deferred[str]] = attrs.Factory(list)

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, *args, *sorted(kwargs.items())))
        if method in self.raises:
            raise self.raises[method]

    def say(self, *args: str, **kwargs: str) -> Deferred[str]:
        self._record("say", *args, **kwargs)
        d: Deferred[str] = Deferred()
        self.says.append(d)
        return d

    def say_then(self, *args: Any, **kwargs: str) -> None:
        # Recorded as say; the Deferred in ``says`` decides what ``done`` is told.
        *words, done = args
        said = self.say(*words, **kwargs)
        said.addCallbacks(lambda msg: done(msg, None), lambda f: done(None, f.value))

    def typing(self, *args: str) -> None:
        self._record("typing", *args)

    def end(self, *args: str) -> None:
        self._record("end", *args)

    def receipt(self, *args: str) -> None:
        self._record("receipt", *args)

    def set_presence(self, status: str) -> None:
        self._record("set_presence", status)

    def accept(self, offer: str) -> None:
        self._record("accept", offer)

    def reject(self, offer: str) -> None:
        self._record("reject", offer)

    def transfer(self, conversation: str, **target: str) -> None:
        self._record("transfer", conversation, **target)

    def disconnected(self) -> None:
        self._record("disconnected")


@attrs.define
class FakeGateway:
    """The core as the adapter sees it, recording arrivals and logins.

    ``on_arrival`` runs inside ``customer_arrived`` (to deliver events before it
    returns); ``arrival_error`` is raised by it. ``login`` is what ``agent_login``
    returns (default: the agent session, already fired); ``login_error`` is raised.
    """

    customer: FakeSession = attrs.Factory(lambda: FakeSession("s-c1"))
    agent: FakeSession = attrs.Factory(lambda: FakeSession("s-a1", name="anna"))
    arrivals: list[dict[str, Any]] = attrs.Factory(list)
    logins: list[dict[str, Any]] = attrs.Factory(list)
    on_arrival: Any = None
    arrival_error: BaseException | None = None
    login: Deferred[FakeSession] | None = None
    login_error: BaseException | None = None

    def customer_arrived(self, party: Any, **kwargs: Any) -> FakeSession:
        self.arrivals.append({"party": party, **kwargs})
        if self.on_arrival is not None:
            self.on_arrival(party)
        if self.arrival_error is not None:
            raise self.arrival_error
        return self.customer

    def agent_login(self, party: Any, **kwargs: Any) -> Deferred[FakeSession]:
        self.logins.append({"party": party, **kwargs})
        if self.login_error is not None:
            raise self.login_error
        return self.login if self.login is not None else succeed(self.agent)


@attrs.define
class Connection:
    """One JSON-IM connection over a StringTransport, driven by a Clock."""

    protocol: JsonImProtocol
    transport: StringTransport
    clock: Clock
    gateway: FakeGateway

    def send(self, *frames: dict[str, Any] | bytes) -> None:
        """Deliver frames (dicts are JSON-encoded and get an LF) in one read."""
        data = b"".join(
            f if isinstance(f, bytes) else json.dumps(f).encode() + b"\n" for f in frames
        )
        self.protocol.dataReceived(data)

    def raw(self) -> bytes:
        """What the server wrote since the last look, and forget it."""
        data = self.transport.value()
        self.transport.clear()
        return data

    def received(self) -> list[dict[str, Any]]:
        """The frames the server wrote since the last look, and forget them."""
        data = self.raw()
        assert data == b"" or data.endswith(b"\n")
        return [json.loads(line) for line in data.splitlines()]

    @property
    def closed(self) -> bool:
        """Whether the server asked the transport to close."""
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        """The connection goes away, as the reactor would report it."""
        self.protocol.connectionLost(None)


def connect(gateway: FakeGateway | None = None, config: JsonImSettings | None = None) -> Connection:
    """A new connection to a JSON-IM factory, with the connection made."""
    gateway = gateway if gateway is not None else FakeGateway()
    clock = Clock()
    factory = JsonImFactory(
        gateway, config or JsonImSettings(), server_name="imgateway", clock=clock
    )
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return Connection(protocol, transport, clock, gateway)


CUSTOMER_HELLO = {
    "type": "hello",
    "protocol": "jsonim/1",
    "role": "customer",
    "client": {"name": "acme-widget", "version": "2.3.1"},
    "features": ["typing"],
}

AGENT_HELLO = {
    "type": "hello",
    "protocol": "jsonim/1",
    "role": "agent",
    "client": {"name": "agent-desk", "version": "1.0"},
    "features": ["typing"],
    "auth": {"user": "anna", "password": "secret"},
}


def welcome(session: str, features: list[str] | None = None) -> dict[str, Any]:
    """The welcome frame the default configuration yields."""
    return {
        "type": "welcome",
        "session": session,
        "server": {"name": "imgateway", "version": __version__},
        "max_frame": 65536,
        "heartbeat_s": 30,
        "features": ["typing"] if features is None else features,
    }


def customer(gateway: FakeGateway | None = None, **config: Any) -> Connection:
    """A customer connection past its welcome."""
    conn = connect(gateway, JsonImSettings(**config))
    conn.send(CUSTOMER_HELLO)
    assert conn.received()[0]["type"] == "welcome"
    return conn


def agent(gateway: FakeGateway | None = None, **config: Any) -> Connection:
    """An agent connection past its welcome."""
    conn = connect(gateway, JsonImSettings(**config))
    conn.send(AGENT_HELLO)
    assert conn.received()[0]["type"] == "welcome"
    return conn
