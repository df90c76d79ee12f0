"""The XEP-0114 component stream over a StringTransport, with a Clock."""

from __future__ import annotations

import hashlib

import attrs
import pytest
from twisted.application.internet import ClientService
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from xmpp_helpers import DOMAIN, SUPPORT, make_hub

from gateway.config import ConfigError, Reader
from protocols.xmpp import component, settings
from protocols.xmpp.component import ComponentFactory, handshake_digest
from protocols.xmpp.settings import XmppSettings

SERVER_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
    b"xmlns:stream='http://etherx.jabber.org/streams' from='support.example.com' id='3BF96D32'>"
)


def connect(**options):
    h = make_hub()
    h.hub.detached()  # the stream attaches it
    cfg = XmppSettings(domain=DOMAIN, secret="secret", **options)
    clock = Clock()
    stream = ComponentFactory(h.hub, cfg, clock).buildProtocol(None)
    transport = StringTransport()
    stream.makeConnection(transport)
    return h, stream, transport, clock


def handshake(stream, transport):
    stream.dataReceived(SERVER_HEADER)
    sent = transport.value()
    transport.clear()
    stream.dataReceived(b"<handshake/>")
    return sent


def test_handshake_digest_is_sha1_of_id_and_secret():
    assert handshake_digest("3BF96D32", "secret") == hashlib.sha1(b"3BF96D32secret").hexdigest()


def test_stream_opens_and_handshakes():
    h, stream, transport, _clock = connect()
    header = transport.value()
    assert b"xmlns='jabber:component:accept'" in header and b"to='support.example.com'" in header
    transport.clear()
    sent = handshake(stream, transport)
    digest = handshake_digest("3BF96D32", "secret").encode()
    assert sent == b"<handshake>" + digest + b"</handshake>"
    assert h.hub._send is not None
    # Stanzas now reach the hub, and the hub's go out on this stream.
    stream.dataReceived(
        f"<iq from='dana@example.org/x' to='{SUPPORT}' type='get' id='p'>"
        "<ping xmlns='urn:xmpp:ping'/></iq>".encode()
    )
    assert b"type='result'" in transport.value()


def test_no_handshake_in_time_is_connection_timeout():
    _h, _stream, transport, clock = connect(auth_timeout_s=5)
    clock.advance(6)
    assert b"<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in transport.value()
    assert transport.disconnecting


def test_refused_handshake_ends_the_link():
    h, stream, transport, _clock = connect()
    stream.dataReceived(SERVER_HEADER)
    stream.dataReceived(
        b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"</stream:error>"
    )
    assert transport.disconnecting
    assert h.hub._send is None


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (b"<!-- hi -->", b"restricted-xml"),
        (b"<message>" + b"<a>" * 40, b"policy-violation"),
        (b"<message>\xff</message>", b"not-well-formed"),
    ],
)
def test_hostile_xml_gets_its_stream_error(data, condition):
    h, stream, transport, _clock = connect()
    handshake(stream, transport)
    transport.clear()
    stream.dataReceived(data)
    assert condition in transport.value()
    assert transport.value().endswith(b"</stream:stream>")
    assert transport.disconnecting
    stream.connectionLost(None)
    assert h.hub._send is None


def test_oversize_stanza_is_cut_off_at_the_limit():
    _h, stream, transport, _clock = connect(max_stanza=4096)
    handshake(stream, transport)
    transport.clear()
    stream.dataReceived(b"<message><body>" + b"x" * 5000)
    assert b"policy-violation" in transport.value()


def test_link_lost_logs_everyone_out_and_the_secret_is_not_in_the_repr():
    h, stream, transport, _clock = connect()
    handshake(stream, transport)
    h.message("dana@example.org/x", "hello")
    assert h.hub.customers
    stream.connectionLost(None)
    assert not h.hub.customers
    assert "secret" not in repr(XmppSettings(domain=DOMAIN, secret="secret"))


def test_server_closing_the_stream_closes_ours():
    _h, stream, transport, _clock = connect()
    handshake(stream, transport)
    transport.clear()
    stream.dataReceived(b"</stream:stream>")
    assert transport.value() == b"</stream:stream>"
    assert transport.disconnecting


def test_build_makes_a_reconnecting_service_only_with_a_domain():
    @attrs.frozen
    class Cfg:
        sections: dict

    reactor = MemoryReactorClock()
    h = make_hub()
    assert component.build(h.core.gateway, Cfg({"xmpp": XmppSettings()}), reactor) is None
    service = component.build(
        h.core.gateway, Cfg({"xmpp": XmppSettings(domain=DOMAIN, secret="x")}), reactor
    )
    assert isinstance(service, ClientService)
    service.startService()
    host, port = reactor.tcpClients[0][:2]
    assert (host, port) == ("127.0.0.1", 5347)
    service.stopService()


def test_settings_parse_and_secret_from_environment(monkeypatch):
    assert settings.parse(Reader("t", {}, "xmpp")) == XmppSettings()
    with pytest.raises(ConfigError, match="secret"):
        settings.parse(Reader("t", {"domain": DOMAIN}, "xmpp"))
    monkeypatch.setenv(settings.SECRET_ENV, "from-env")
    parsed = settings.parse(Reader("t", {"domain": DOMAIN, "secret": "file"}, "xmpp"))
    assert parsed.secret == "from-env"
    with pytest.raises(ConfigError, match="domain"):
        settings.parse(Reader("t", {"domain": "Not A Domain"}, "xmpp"))
    with pytest.raises(ConfigError, match="support_user"):
        settings.parse(Reader("t", {"support_user": "c-1"}, "xmpp"))
    with pytest.raises(ConfigError, match="unknown key"):
        settings.parse(Reader("t", {"bogus": 1}, "xmpp"))


def test_reconnection_backs_off_until_the_link_attaches():
    h = make_hub()
    cfg = XmppSettings(domain=DOMAIN, secret="secret", reconnect_max_s=3)
    factory = ComponentFactory(h.hub, cfg, Clock(), jitter=lambda: 0.0)
    # ClientService passes its own count, reset by every TCP connect: it is not used.
    assert [factory.retry_delay(1) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    stream = factory.buildProtocol(None)
    stream.makeConnection(StringTransport())
    handshake(stream, stream.transport)
    assert factory.retry_delay(1) == 0.5
    jittered = ComponentFactory(h.hub, cfg, Clock(), jitter=lambda: 1.0)
    assert jittered.retry_delay(1) == pytest.approx(0.55)
