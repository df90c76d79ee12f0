"""A hand-driven client of the XMPP client listener (protocols.xmpp.c2s), for unit tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from core_helpers import make_harness
from twisted.internet.testing import StringTransport

from gateway.passwords import scram_credentials
from gateway.store.records import AgentRecord
from protocols.xmpp.c2s import ClientServer
from protocols.xmpp.settings import XmppSettings

DOMAIN = "chat.example.com"
SUPPORT = f"support@{DOMAIN}"
HEADER = (
    f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
).encode()
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def make_server(**options):
    core = make_harness()
    core.store.add_agent(
        AgentRecord(name="xanna", display_name="Anna X.", password_hash="hash:pw", capacity=2)
    )
    core.store.scram["xanna"] = scram_credentials("pw", iterations=64)
    settings = XmppSettings(client_domain=DOMAIN, **options)
    return core, ClientServer(core.gateway, settings, core.clock)


class Client:
    """One connection, driven by hand."""

    def __init__(self, server) -> None:
        self.transport = StringTransport()
        self.stream = server_factory_protocol(server)
        self.stream.makeConnection(self.transport)

    def send(self, data: str | bytes) -> str:
        self.transport.clear()
        self.stream.dataReceived(data.encode() if isinstance(data, str) else data)
        return self.transport.value().decode()

    def open(self) -> str:
        return self.send(HEADER)


def server_factory_protocol(server):
    from protocols.xmpp.c2s import ClientFactory

    return ClientFactory(server, direct_tls=False).buildProtocol(None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def anonymous(server) -> Client:
    client = Client(server)
    features = client.open()
    assert "<mechanism>ANONYMOUS</mechanism>" in features
    assert "PLAIN" not in features  # never without TLS
    assert "<success" in client.send(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>")
    assert "urn:ietf:params:xml:ns:xmpp-bind" in client.open()
    bound = client.send(
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>phone</resource></bind></iq>"
    )
    assert re.search(rf"<jid>anon-[0-9a-f]+@{DOMAIN}/phone</jid>", bound), bound
    return client


def scram_login(server, name="xanna", password="pw") -> tuple[Client, str]:
    client = Client(server)
    client.open()
    first_bare = f"n={name},r=clientnonce"
    out = client.send(
        f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{b64(b'n,,' + first_bare.encode())}</auth>"
    )
    challenge = base64.b64decode(re.search(r"<challenge[^>]*>([^<]*)<", out).group(1)).decode()
    fields = dict(part.split("=", 1) for part in challenge.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{challenge},{without_proof}".encode()
    signature = hmac.new(stored, auth_message, "sha256").digest()
    proof = b64(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    answer = client.send(
        f"<response xmlns='{SASL}'>{b64(f'{without_proof},p={proof}'.encode())}</response>"
    )
    return client, answer
